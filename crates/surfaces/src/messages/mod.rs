//! The Anthropic Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`), as Claude Code and the
//! Anthropic SDKs speak it, turned into chat completions and back.
//!
//! Decisions worth knowing:
//! - Requests are lenient where Claude Code sends things no upstream can use: `cache_control`, `citations`,
//!   `context_management`, `container`, `mcp_servers`, `service_tier`, `top_k` and unknown top-level fields are
//!   ignored; `thinking` / `redacted_thinking` history blocks are dropped (their signatures mean nothing upstream).
//!   Other unknown content blocks (`server_tool_use`, `web_search_tool_result`, …) are dropped and counted in
//!   [`MessageContext::dropped_blocks`]; server tools (`type` other than `custom`) are dropped and named in
//!   [`MessageContext::dropped_tools`], unless `tool_choice` forces one (400 `unsupported_tool`).
//! - Things that would silently change what the model sees are refused: PDF (or URL / file) documents and image
//!   sources other than `base64` / `url` are 400 `unsupported_content`.
//! - A `tool_result` becomes a `tool` message placed before the rest of its user message (chat wants tool messages
//!   right after the assistant's `tool_calls`); `is_error` prefixes its text with `[tool error] `; images inside it
//!   become `[image omitted]`. Text blocks of one message are joined with `\n`.
//! - Answers echo the model name the client sent. `input_tokens` is the upstream `prompt_tokens` minus its cached
//!   tokens (Anthropic counts cache reads separately, in `cache_read_input_tokens`). Tool-call arguments that are
//!   not a JSON object become `{}`. `length` wins over tool calls for `stop_reason` (a truncated call is
//!   `max_tokens`, not a usable `tool_use`).
//! - Reasoning (`reasoning_content` / `reasoning`, or a leading `<think>…</think>`) becomes a `thinking` block with
//!   an empty signature; in streams it closes with an empty `signature_delta`, as Anthropic's own streams do.
//! - Streams: one block open at a time; a new kind of output (or another tool call) closes the open block. Tool-call
//!   deltas for a block already closed are dropped (no provider interleaves calls in practice), and a delta that
//!   repeats the whole accumulated arguments (valid JSON) is skipped, as some providers re-send them at the end.

//!
//! Performance: nothing here builds a `serde_json::Value`. Requests are read into a borrowed tree ([`J`]: strings
//! borrowed from the body unless escaped, objects as small vectors, tool schemas and `tool_use` inputs kept as raw
//! JSON text) and the chat body is written straight to bytes. Answers and stream chunks are read with lenient,
//! borrowing visitors (any JSON value reads; a field of an unexpected type reads as absent, as `Value` indexing
//! did) and every output is written by hand, keys in the order `Value` (a sorted map) used to print them.

use crate::chat::*;
use crate::json::*;

mod answer;
mod request;
mod stream;
#[cfg(test)]
mod tests;

use answer::*;

pub use answer::{
    chat_to_messages_response, claude_family, error_body, error_type_for_status, request_error_body,
};
pub use request::{count_tokens, messages_to_chat_request, parse};
pub use stream::MessagesStreamEncoder;

/// What the answer needs to know about the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContext {
    /// The `id` of the answer (the caller makes it; Anthropic's look like `msg_…`).
    pub message_id: String,
    /// The model as the client named it, echoed in the answer.
    pub model: String,
    pub stream: bool,
    /// Content blocks of unknown or server-side types dropped from the history.
    pub dropped_blocks: u32,
    /// Names of server tools (`web_search_…`, `bash_…`, …) dropped from `tools`.
    pub dropped_tools: Vec<String>,
}
