//! The Gemini API (`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`, `:countTokens`), as
//! Gemini CLI and the Google Gen AI SDKs speak it, turned into chat completions and back.
//!
//! Decisions worth knowing:
//! - Field names are read in both spellings protobuf JSON accepts (`systemInstruction` / `system_instruction`).
//! - `contents` roles: `user` (and the older `function`/`tool`, which carry function responses) become user or tool
//!   messages, `model` becomes the assistant. `thought` parts of the history are dropped (their signatures mean
//!   nothing upstream), as are `executableCode` / `codeExecutionResult` parts (counted in
//!   [`GeminiContext::dropped_parts`]).
//! - Function calls without an `id` get one (`call_<turn>_<n>`); a `functionResponse` answers the earliest
//!   unanswered call of the same name (or the call with its `id`). A response that answers no call becomes user text,
//!   since chat only takes tool messages right after the assistant's calls.
//! - `functionDeclarations` keep `parametersJsonSchema` as it came; the OpenAPI-style `parameters` (upper-case
//!   `type` names such as `OBJECT`) are rewritten as JSON Schema. Other tools (`googleSearch`, `codeExecution`,
//!   `urlContext`, …) cannot run here: they are dropped and named in [`GeminiContext::dropped_tools`], unless
//!   `toolConfig` forces a call while no function is declared (400).
//! - Things that would silently change what the model sees are refused: `inlineData` / `fileData` that is not an
//!   image (audio, video, PDF) is 400 `unsupported_content`; `candidateCount` above 1 is 400; `cachedContent` is 400
//!   (the gateway keeps no caches).
//! - Answers echo the model name the client sent as `modelVersion`. Thoughts (`reasoning_content`, or a leading
//!   `<think>…</think>`) come back as `thought: true` parts only when `thinkingConfig.includeThoughts` is set, as
//!   Gemini does. Function-call arguments that are not a JSON object become `{}`; streamed calls are sent whole, in
//!   the last chunk, as Gemini sends them. `finishReason` is `STOP` for tool calls, `MAX_TOKENS` for `length`,
//!   `SAFETY` for `content_filter`.
//! - Streams are SSE (`alt=sse`, what Gemini CLI asks for) or, without it, one JSON array written as it grows.

use crate::chat::*;
use crate::json::*;

mod answer;
mod request;
mod stream;
#[cfg(test)]
mod tests;

pub use answer::{chat_to_gemini_response, error_body, gemini_family, status_name};
pub use request::{count_tokens, gemini_to_chat_request, parse};
pub use stream::GeminiStreamEncoder;

/// What the answer needs to know about the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeminiContext {
    /// `responseId` of the answer (the caller makes it).
    pub response_id: String,
    /// The model as the client named it, echoed as `modelVersion`.
    pub model: String,
    pub stream: bool,
    /// `thinkingConfig.includeThoughts`: reasoning is sent back as `thought` parts.
    pub include_thoughts: bool,
    /// Parts of unknown or server-side kinds dropped from the history.
    pub dropped_parts: u32,
    /// Tools other than function declarations (`googleSearch`, …) dropped from `tools`.
    pub dropped_tools: Vec<String>,
}
