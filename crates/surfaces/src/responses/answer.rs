//! Answer direction, shared: error bodies, usage, output items, the `response` object, and a complete chat answer
//! turned into it.

use std::borrow::Cow;

use serde_json::Value;

use super::*;

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
    format!("{prefix}_{suffix}_{index}")
}

/// Chat usage, as the Responses `usage` object needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Tokens {
    pub(super) input: u64,
    pub(super) output: u64,
    pub(super) total: u64,
    pub(super) cached: u64,
    pub(super) reasoning: u64,
}

pub(super) fn tokens(u: &UsageView) -> Tokens {
    let (input, output) = (
        u.prompt_tokens.0.unwrap_or(0),
        u.completion_tokens.0.unwrap_or(0),
    );
    let nested = |n: Option<Num>| n.and_then(|n| n.0).unwrap_or(0);
    Tokens {
        input,
        output,
        total: u.total_tokens.0.unwrap_or(input.wrapping_add(output)),
        cached: nested(u.prompt_tokens_details.0.as_ref().map(|d| d.cached_tokens)),
        reasoning: nested(
            u.completion_tokens_details
                .0
                .as_ref()
                .map(|d| d.reasoning_tokens),
        ),
    }
}

/// Chat usage → Responses usage (`null` when the upstream reported none).
pub(super) fn put_usage(out: &mut Vec<u8>, u: Option<&Tokens>) {
    let Some(u) = u else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"input_tokens\":");
    put_u64(out, u.input);
    out.extend_from_slice(b",\"input_tokens_details\":{\"cached_tokens\":");
    put_u64(out, u.cached);
    out.extend_from_slice(b"},\"output_tokens\":");
    put_u64(out, u.output);
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
    usage: Option<&Tokens>,
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

/// Splits a leading `<think>…</think>` block off `content`: (reasoning, rest). An unclosed block is all reasoning.
pub(super) fn split_think(content: &str) -> (String, String) {
    let Some(rest) = content.trim_start().strip_prefix(THINK_OPEN) else {
        return (String::new(), content.to_string());
    };
    match rest.find(THINK_CLOSE) {
        Some(end) => (
            rest[..end].trim().into(),
            rest[end + THINK_CLOSE.len()..].trim_start().into(),
        ),
        None => (rest.trim().into(), String::new()),
    }
}

/// Parses an upstream answer; the error text on failure is the one a `Value` parse gives.
pub(super) fn parse_answer(chat: &[u8]) -> Result<Completion<'_>, String> {
    if let Ok(Ok(c)) = std::str::from_utf8(chat).map(parse_top::<Completion>) {
        return Ok(c);
    }
    Err(match serde_json::from_slice::<Value>(chat) {
        Err(e) => format!("the upstream answer is not valid JSON: {e}"),
        Ok(_) => "the upstream answer is not a JSON object".into(),
    })
}

/// Non-streamed answer: a chat.completion body → a Responses `response` object.
pub fn chat_to_responses_response(chat: &[u8], ctx: &ResponseContext) -> Result<Vec<u8>, String> {
    let c = parse_answer(chat)?;
    if let Some(e) = c.error.present() {
        return Err(format!(
            "the upstream answered with an error: {}",
            value_of(e)
        ));
    }
    let choice = c.choices.0.and_then(|c| c.0).unwrap_or_default();
    let msg = choice.message.0.unwrap_or_default();
    let reasoning = msg
        .reasoning_content
        .0
        .or(msg.reasoning.0)
        .unwrap_or_default();
    let mut reasoning = reasoning.0.into_owned();
    let (think, content) = split_think(&msg.content.0);
    if !think.is_empty() {
        reasoning = if reasoning.is_empty() {
            think
        } else {
            format!("{reasoning}\n\n{think}")
        };
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
        parts.push(OutPart::Text(content));
    }
    if !msg.refusal.0.is_empty() {
        parts.push(OutPart::Refusal(msg.refusal.0.into_owned()));
    }
    if !parts.is_empty() {
        output.push(OutItem::Message {
            id: item_id(ctx, "msg", output.len()),
            status: "completed",
            parts,
        });
    }
    for tc in msg.tool_calls.0.into_iter().flatten() {
        let tc = tc.0.unwrap_or_default();
        let index = output.len();
        let call_id = tc
            .id
            .0
            .map_or_else(|| item_id(ctx, "call", index), Cow::into_owned);
        let f = tc.function.0.unwrap_or_default();
        output.push(OutItem::Call {
            id: item_id(ctx, "fc", index),
            call_id,
            name: f.name.get().unwrap_or("").to_string(),
            arguments: args_of(&f.arguments).into_owned(),
            status: "completed",
        });
    }
    let end = end_state(choice.finish_reason.get());
    let model = c
        .model
        .get()
        .filter(|m| !m.is_empty())
        .unwrap_or(&ctx.model);
    let usage = c.usage.0.as_ref().map(tokens);
    let mut out = Vec::with_capacity(512 + ctx.echo.len());
    put_response(&mut out, ctx, &end, model, &output, usage.as_ref());
    Ok(out)
}
