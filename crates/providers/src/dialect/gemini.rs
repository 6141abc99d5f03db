//! Google Gemini `generateContent` / `streamGenerateContent` / `batchEmbedContents` ⇄ OpenAI.
