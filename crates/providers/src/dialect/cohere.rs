//! Cohere v2 `chat` (plain and streamed) and `embed` ⇄ OpenAI.
