//! Answer direction: Gemini model families, error bodies, and a complete chat answer turned into a
//! `GenerateContentResponse`.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::*;

/// The family of a Gemini model name — `"pro"`, `"flash-lite"`, `"flash"`, or `"other"` for another Gemini name
/// (`gemini-exp-1206`) — and `None` for names that are not Gemini's.
pub fn gemini_family(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    if !m.contains("gemini") {
        return None;
    }
    Some(if m.contains("flash-lite") || m.contains("flash_lite") {
        "flash-lite"
    } else if m.contains("flash") {
        "flash"
    } else if m.contains("pro") {
        "pro"
    } else {
        "other"
    })
}

/// The `google.rpc.Code` name Google's APIs pair with an HTTP status.
pub fn status_name(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        502 | 503 | 529 => "UNAVAILABLE",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

pub(super) fn write_error(out: &mut Vec<u8>, status: u16, message: &str) {
    put(out, r#"{"error":{"code":"#);
    num(out, u64::from(status));
    put(out, r#","message":"#);
    esc(out, message);
    put(out, r#","status":""#);
    put(out, status_name(status));
    put(out, r#""}}"#);
}

/// Google's error body `{"error":{"code","message","status"}}` for an HTTP status.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    write_error(&mut out, status, message);
    out
}

pub(super) fn finish_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        _ => "STOP",
    }
}

/// Tool-call arguments as a compact JSON object; `{}` when they are not one.
pub(super) fn args_object(args: &str) -> Cow<'_, str> {
    match serde_json::from_str::<&RawValue>(args) {
        Ok(r) if r.get().starts_with('{') => compact(r.get()),
        _ => Cow::Borrowed("{}"),
    }
}

pub(super) fn write_text_part(out: &mut Vec<u8>, text: &str, thought: bool) {
    put(out, r#"{"text":"#);
    esc(out, text);
    if thought {
        put(out, r#","thought":true"#);
    }
    out.push(b'}');
}

pub(super) fn write_call_part(out: &mut Vec<u8>, id: &str, name: &str, args: &str) {
    put(out, r#"{"functionCall":{"args":"#);
    put(out, &args_object(args));
    if !id.is_empty() {
        put(out, r#","id":"#);
        esc(out, id);
    }
    put(out, r#","name":"#);
    esc(out, name);
    put(out, "}}");
}

/// `"usageMetadata":{…}`.
pub(super) fn write_usage(out: &mut Vec<u8>, prompt: u64, completion: u64, cached: u64) {
    put(out, r#""usageMetadata":{"#);
    if cached > 0 {
        put(out, r#""cachedContentTokenCount":"#);
        num(out, cached);
        out.push(b',');
    }
    put(out, r#""candidatesTokenCount":"#);
    num(out, completion);
    put(out, r#","promptTokenCount":"#);
    num(out, prompt);
    put(out, r#","totalTokenCount":"#);
    num(out, prompt + completion);
    out.push(b'}');
}

/// `{"candidates":[{"content":{"parts":[` — the parts follow.
pub(super) fn open_candidate(out: &mut Vec<u8>) {
    put(out, r#"{"candidates":[{"content":{"parts":["#);
}

/// Closes what [`open_candidate`] opened, with the finish reason when there is one; the top-level members follow
/// (`usage`, then `modelVersion` and `responseId`).
pub(super) fn close_candidate(
    out: &mut Vec<u8>,
    ctx: &GeminiContext,
    finish: Option<&str>,
    usage: Option<(u64, u64, u64)>,
) {
    put(out, r#"],"role":"model"}"#);
    if let Some(f) = finish {
        put(out, r#","finishReason":""#);
        put(out, f);
        out.push(b'"');
    }
    put(out, r#","index":0}],"#);
    put(out, r#""modelVersion":"#);
    esc(out, &ctx.model);
    put(out, r#","responseId":"#);
    esc(out, &ctx.response_id);
    if let Some((prompt, completion, cached)) = usage {
        out.push(b',');
        write_usage(out, prompt, completion, cached);
    }
    out.push(b'}');
}

/// Turns a `chat.completion` body into a `GenerateContentResponse`.
pub fn chat_to_gemini_response(chat: &[u8], ctx: &GeminiContext) -> Result<Vec<u8>, String> {
    let v: Answer = from_json(chat).map_err(|e| format!("upstream answer is not JSON: {e}"))?;
    let (choice, text, reasoning) = answer_text(&v)?;
    let msg = &choice.message;
    let mut out = Vec::with_capacity(text.len() + 320);
    open_candidate(&mut out);
    let mut parts = 0;
    let mut sep = |out: &mut Vec<u8>| {
        if parts > 0 {
            out.push(b',');
        }
        parts += 1;
    };
    if let Some(r) = reasoning.filter(|r| !r.is_empty() && ctx.include_thoughts) {
        sep(&mut out);
        write_text_part(&mut out, r, true);
    }
    if !text.is_empty() {
        sep(&mut out);
        write_text_part(&mut out, text, false);
    }
    for call in &msg.tool_calls.0 {
        let f = &call.function;
        sep(&mut out);
        write_call_part(
            &mut out,
            call.id.as_str().unwrap_or_default(),
            f.name.as_str().unwrap_or_default(),
            f.arguments.text(),
        );
    }
    if parts == 0 {
        write_text_part(&mut out, "", false);
    }
    close_candidate(
        &mut out,
        ctx,
        Some(finish_reason(choice.finish_reason.as_str())),
        Some({
            let u = usage_of(&v.usage);
            (u.prompt, u.completion, u.cached)
        }),
    );
    Ok(out)
}
