//! Answer direction: Claude model families, error bodies, and a complete chat answer turned into a message.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::*;
use crate::RequestError;

/// "opus" | "sonnet" | "haiku" for Claude model names (`claude-opus-4-1-20250805`, `claude-3-5-haiku-latest`,
/// `anthropic/claude-sonnet-4.5`); `None` for anything else.
pub fn claude_family(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    if !m.contains("claude") {
        return None;
    }
    ["opus", "sonnet", "haiku"]
        .into_iter()
        .find(|f| m.contains(f))
}

/// The Anthropic error `type` for an HTTP status. 502/503/504 and 529 are `overloaded_error`, which Claude Code and
/// the SDKs retry; other 5xx `api_error`; other 4xx `invalid_request_error`.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        502..=504 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"error":{"message":…,"type":…},"type":"error"}`.
pub(super) fn write_error(out: &mut Vec<u8>, kind: &str, message: &str) {
    put(out, r#"{"error":{"message":"#);
    esc(out, message);
    put(out, r#","type":"#);
    esc(out, kind);
    put(out, r#"},"type":"error"}"#);
}

/// Anthropic error body `{"type":"error","error":{"type","message"}}` for an HTTP status.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    write_error(&mut out, error_type_for_status(status), message);
    out
}

/// [`error_body`] for a refused request, the offending field named in the message (Anthropic has no `param`).
pub fn request_error_body(e: &RequestError) -> Vec<u8> {
    match &e.param {
        Some(p) => error_body(e.status, &format!("{p}: {}", e.message)),
        None => error_body(e.status, &e.message),
    }
}

pub(super) fn stop_reason(finish: Option<&str>, tool_calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        _ if tool_calls => "tool_use",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

pub(super) fn tool_id<'a>(id: Option<&'a str>, ctx: &MessageContext, n: usize) -> Cow<'a, str> {
    match id {
        Some(id) if !id.is_empty() => Cow::Borrowed(id),
        _ => {
            let stem = ctx
                .message_id
                .strip_prefix("msg_")
                .unwrap_or(&ctx.message_id);
            Cow::Owned(format!("toolu_{stem}_{n}"))
        }
    }
}

/// `"usage":{…}` of Messages answers and `message_delta`.
pub(super) fn write_usage(out: &mut Vec<u8>, input: u64, output: u64, cached: u64) {
    put(
        out,
        r#""usage":{"cache_creation_input_tokens":0,"cache_read_input_tokens":"#,
    );
    num(out, cached);
    put(out, r#","input_tokens":"#);
    num(out, input);
    put(out, r#","output_tokens":"#);
    num(out, output);
    out.push(b'}');
}

/// Turns a `chat.completion` body into a Messages `message`.
pub fn chat_to_messages_response(chat: &[u8], ctx: &MessageContext) -> Result<Vec<u8>, String> {
    let v: Answer = from_json(chat).map_err(|e| format!("upstream answer is not JSON: {e}"))?;
    let (choice, text, reasoning) = answer_text(&v)?;
    let msg = &choice.message;
    let calls = &msg.tool_calls.0;
    let mut out = Vec::with_capacity(text.len() + 320);
    put(&mut out, r#"{"content":["#);
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
        sep(&mut out);
        put(&mut out, r#"{"signature":"","thinking":"#);
        esc(&mut out, r);
        put(&mut out, r#","type":"thinking"}"#);
    }
    if !text.is_empty() {
        sep(&mut out);
        put(&mut out, r#"{"text":"#);
        esc(&mut out, text);
        put(&mut out, r#","type":"text"}"#);
    }
    for (n, call) in calls.iter().enumerate() {
        let f = &call.function;
        let input = match &f.arguments {
            Args::Str(s) => serde_json::from_str::<&RawValue>(s)
                .ok()
                .map(RawValue::get)
                .filter(|r| r.starts_with('{'))
                .map(compact),
            Args::Obj(s) => Some(Cow::Borrowed(s.as_str())),
            Args::Other => None,
        };
        sep(&mut out);
        put(&mut out, r#"{"id":"#);
        esc(&mut out, &tool_id(call.id.as_str(), ctx, n));
        put(&mut out, r#","input":"#);
        put(&mut out, input.as_deref().unwrap_or("{}"));
        put(&mut out, r#","name":"#);
        esc(&mut out, f.name.as_str().unwrap_or_default());
        put(&mut out, r#","type":"tool_use"}"#);
    }
    let Usage {
        prompt,
        completion,
        cached,
        ..
    } = usage_of(&v.usage);
    put(&mut out, r#"],"id":"#);
    esc(&mut out, &ctx.message_id);
    put(&mut out, r#","model":"#);
    esc(&mut out, &ctx.model);
    put(&mut out, r#","role":"assistant","stop_reason":"#);
    esc(
        &mut out,
        stop_reason(choice.finish_reason.as_str(), !calls.is_empty()),
    );
    put(&mut out, r#","stop_sequence":null,"type":"message","#);
    write_usage(&mut out, prompt - cached, completion, cached);
    out.push(b'}');
    Ok(out)
}
