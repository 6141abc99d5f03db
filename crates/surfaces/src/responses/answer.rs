//! Answer direction, shared: error bodies, usage, output items, the `response` object, and a complete chat answer
//! turned into it.

use super::*;
use crate::chat::{self, usage_of, Answer, Content, Usage};
use crate::json::from_json;

// ---- answer direction -------------------------------------------------------------------------------------------

/// An error body in the OpenAI shape. The status travels on the HTTP status line, not in the body.
pub fn error_body(
    status: u16,
    kind: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Vec<u8> {
    let _ = status;
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"error\":{\"message\":");
    put_str(&mut out, message);
    out.extend_from_slice(b",\"type\":");
    put_str(&mut out, kind);
    out.extend_from_slice(b",\"code\":");
    put_str(&mut out, code);
    out.extend_from_slice(b",\"param\":");
    match param {
        Some(p) => put_str(&mut out, p),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
    out
}

/// Item ids derive from the response id and the output index: `msg_<suffix>_0`, `fc_<suffix>_1`, ….
pub(super) fn item_id(ctx: &ResponseContext, prefix: &str, index: usize) -> String {
    let suffix = ctx
        .response_id
        .strip_prefix("resp_")
        .unwrap_or(&ctx.response_id);
    let mut id = String::with_capacity(prefix.len() + suffix.len() + 4);
    id.push_str(prefix);
    id.push('_');
    id.push_str(suffix);
    id.push('_');
    let mut digits = Vec::with_capacity(4);
    crate::json::num(&mut digits, index as u64);
    id.extend(digits.iter().map(|&d| char::from(d)));
    id
}

/// Chat usage → Responses usage (`null` when the upstream reported none).
pub(super) fn put_usage(out: &mut Vec<u8>, u: Option<&Usage>) {
    let Some(u) = u else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"input_tokens\":");
    put_u64(out, u.prompt);
    out.extend_from_slice(b",\"input_tokens_details\":{\"cached_tokens\":");
    put_u64(out, u.cached);
    out.extend_from_slice(b"},\"output_tokens\":");
    put_u64(out, u.completion);
    out.extend_from_slice(b",\"output_tokens_details\":{\"reasoning_tokens\":");
    put_u64(out, u.reasoning);
    out.extend_from_slice(b"},\"total_tokens\":");
    put_u64(out, u.total);
    out.push(b'}');
}

/// How a response ends (or stands): its status, `incomplete_details` and `error`.
pub(super) enum End<'a> {
    InProgress,
    Completed,
    Incomplete(&'static str),
    Failed { code: &'a str, message: &'a str },
}

/// The end state for a chat finish_reason.
pub(super) fn end_state(finish_reason: Option<&str>) -> End<'static> {
    match finish_reason {
        Some("length") => End::Incomplete("max_output_tokens"),
        Some("content_filter") => End::Incomplete("content_filter"),
        _ => End::Completed,
    }
}

#[derive(Clone, Debug)]
pub(super) enum OutPart {
    Text(String),
    Refusal(String),
}

/// An output item: as announced (in progress) or finished.
#[derive(Clone, Debug)]
pub(super) enum OutItem {
    /// `text: None` is the in-progress item with an empty summary.
    Reasoning { id: String, text: Option<String> },
    Message {
        id: String,
        status: &'static str,
        parts: Vec<OutPart>,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: &'static str,
    },
}

pub(super) fn put_part(out: &mut Vec<u8>, p: &OutPart) {
    match p {
        OutPart::Text(t) => {
            out.extend_from_slice(b"{\"type\":\"output_text\",\"text\":");
            put_str(out, t);
            out.extend_from_slice(b",\"annotations\":[]}");
        }
        OutPart::Refusal(t) => {
            out.extend_from_slice(b"{\"type\":\"refusal\",\"refusal\":");
            put_str(out, t);
            out.push(b'}');
        }
    }
}

pub(super) fn put_item(out: &mut Vec<u8>, item: &OutItem) {
    match item {
        OutItem::Reasoning { id, text } => {
            out.extend_from_slice(b"{\"type\":\"reasoning\",\"id\":");
            put_str(out, id);
            out.extend_from_slice(b",\"summary\":[");
            if let Some(t) = text {
                out.extend_from_slice(b"{\"type\":\"summary_text\",\"text\":");
                put_str(out, t);
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        }
        OutItem::Message { id, status, parts } => {
            out.extend_from_slice(b"{\"type\":\"message\",\"id\":");
            put_str(out, id);
            out.extend_from_slice(b",\"status\":\"");
            out.extend_from_slice(status.as_bytes());
            out.extend_from_slice(b"\",\"role\":\"assistant\",\"content\":[");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                put_part(out, p);
            }
            out.extend_from_slice(b"]}");
        }
        OutItem::Call {
            id,
            call_id,
            name,
            arguments,
            status,
        } => {
            out.extend_from_slice(b"{\"type\":\"function_call\",\"id\":");
            put_str(out, id);
            out.extend_from_slice(b",\"call_id\":");
            put_str(out, call_id);
            out.extend_from_slice(b",\"name\":");
            put_str(out, name);
            out.extend_from_slice(b",\"arguments\":");
            put_str(out, arguments);
            out.extend_from_slice(b",\"status\":\"");
            out.extend_from_slice(status.as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
}

/// A Responses `response` object.
pub(super) fn put_response(
    out: &mut Vec<u8>,
    ctx: &ResponseContext,
    end: &End,
    model: &str,
    output: &[OutItem],
    usage: Option<&Usage>,
) {
    out.extend_from_slice(b"{\"id\":");
    put_str(out, &ctx.response_id);
    out.extend_from_slice(b",\"object\":\"response\",\"created_at\":");
    put_u64(out, ctx.created_at);
    out.extend_from_slice(b",\"status\":");
    let (status, reason, error) = match end {
        End::InProgress => ("\"in_progress\"", None, None),
        End::Completed => ("\"completed\"", None, None),
        End::Incomplete(r) => ("\"incomplete\"", Some(*r), None),
        End::Failed { code, message } => ("\"failed\"", None, Some((*code, *message))),
    };
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b",\"error\":");
    match error {
        None => out.extend_from_slice(b"null"),
        Some((code, message)) => {
            out.extend_from_slice(b"{\"code\":");
            put_str(out, code);
            out.extend_from_slice(b",\"message\":");
            put_str(out, message);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"incomplete_details\":");
    match reason {
        None => out.extend_from_slice(b"null"),
        Some(r) => {
            out.extend_from_slice(b"{\"reason\":\"");
            out.extend_from_slice(r.as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
    out.extend_from_slice(b",\"model\":");
    put_str(out, model);
    out.extend_from_slice(b",\"output\":[");
    for (i, item) in output.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_item(out, item);
    }
    out.extend_from_slice(b"],\"usage\":");
    put_usage(out, usage);
    out.push(b',');
    out.extend_from_slice(ctx.echo.as_bytes());
    out.push(b'}');
}

/// Non-streamed answer: a chat.completion body → a Responses `response` object.
pub fn chat_to_responses_response(chat: &[u8], ctx: &ResponseContext) -> Result<Vec<u8>, String> {
    let c: Answer =
        from_json(chat).map_err(|e| format!("the upstream answer is not valid JSON: {e}"))?;
    if !c.is_obj {
        return Err("the upstream answer is not a JSON object".into());
    }
    if c.error.is_obj {
        let message = c.error.message.as_str().unwrap_or("upstream error");
        return Err(format!("the upstream answered with an error: {message}"));
    }
    let choice = c.choices.0.first();
    let msg = choice.map(|c| &c.message);
    let content = match msg.map(|m| &m.content) {
        Some(Content::Str(s)) => &**s,
        Some(Content::Parts(s)) => s.as_str(),
        _ => "",
    };
    let mut reasoning = msg
        .and_then(|m| m.reasoning_content.text().or(m.reasoning.text()))
        .unwrap_or_default()
        .to_string();
    let (think, content) = match chat::split_think(content) {
        Some((think, rest)) => (think.trim(), rest),
        None => ("", content),
    };
    if !think.is_empty() {
        if !reasoning.is_empty() {
            reasoning.push_str("\n\n");
        }
        reasoning.push_str(think);
    }
    let mut output = Vec::new();
    if !reasoning.is_empty() {
        let id = item_id(ctx, "rs", 0);
        output.push(OutItem::Reasoning {
            id,
            text: Some(reasoning),
        });
    }
    let mut parts = Vec::new();
    if !content.is_empty() {
        parts.push(OutPart::Text(content.to_string()));
    }
    if let Some(refusal) = msg.and_then(|m| m.refusal.text()) {
        parts.push(OutPart::Refusal(refusal.to_string()));
    }
    if !parts.is_empty() {
        output.push(OutItem::Message {
            id: item_id(ctx, "msg", output.len()),
            status: "completed",
            parts,
        });
    }
    for tc in msg.map_or(&[][..], |m| &m.tool_calls.0[..]) {
        let index = output.len();
        let call_id = match tc.id.as_str() {
            Some(id) => id.to_string(),
            None => item_id(ctx, "call", index),
        };
        output.push(OutItem::Call {
            id: item_id(ctx, "fc", index),
            call_id,
            name: tc.function.name.as_str().unwrap_or("").to_string(),
            arguments: tc.function.arguments.text().to_string(),
            status: "completed",
        });
    }
    let end = end_state(choice.and_then(|c| c.finish_reason.as_str()));
    let model = c.model.text().unwrap_or(&ctx.model);
    let usage = c.usage.is_obj.then(|| usage_of(&c.usage));
    let mut out = Vec::with_capacity(512 + ctx.echo.len());
    put_response(&mut out, ctx, &end, model, &output, usage.as_ref());
    Ok(out)
}
