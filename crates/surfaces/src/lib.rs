//! Ingress codecs for the surfaces other than chat completions: the OpenAI Responses API (`responses`) and the
//! Anthropic Messages API (`messages`). Each codec turns its request into an OpenAI chat-completions request (the
//! gateway's one internal request), and turns the relay's chat-completions answer — a JSON body or the
//! `chat.completion.chunk` event stream — back into its own wire format. Pure functions and state machines: no I/O,
//! no HTTP, no knowledge of keys or routing, so every surface shares the one relay and its failover.
//!
//! Direction is in the names: `*_to_chat_request`, `chat_to_*_response`, and a `*StreamEncoder` fed the payload of
//! each chat SSE event (`data:` value, `[DONE]` included, and the gateway's terminal `{"error":…}` event).

mod chat;
mod chunks;
pub mod gemini;
mod json;
pub mod messages;
pub mod responses;

/// A request turned into chat completions.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The chat-completions JSON body to hand to the relay.
    pub body: Vec<u8>,
    /// The model the client named (before any mapping).
    pub model: String,
    pub stream: bool,
}

/// A request the codec refuses: the client's mistake, answered as a 400 (or the given status) in the surface's own
/// error shape, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub status: u16,
    /// Machine-readable reason, e.g. `invalid_request_error`-style codes such as `unsupported_tool`.
    pub code: &'static str,
    /// The offending field, dotted (`input[2].type`), when there is one.
    pub param: Option<String>,
    pub message: String,
}

impl RequestError {
    pub fn invalid(
        code: &'static str,
        param: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status: 400,
            code,
            param: Some(param.into()),
            message: message.into(),
        }
    }
}
