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

use serde_json::{json, Map, Value};

use crate::{ChatRequest, RequestError};

type Obj = Map<String, Value>;

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

fn missing(param: &str) -> RequestError {
    RequestError::invalid(
        "missing_required_parameter",
        param,
        format!("`{param}` is required"),
    )
}

fn wrong_type(param: &str, what: &str) -> RequestError {
    RequestError::invalid("invalid_type", param, format!("`{param}` must be {what}"))
}

fn bad_value(param: &str, message: String) -> RequestError {
    RequestError::invalid("invalid_value", param, message)
}

fn unsupported(param: &str, message: &str) -> RequestError {
    RequestError::invalid("unsupported_content", param, message)
}

fn parse_root(body: &[u8]) -> Result<Obj, RequestError> {
    let invalid = |message: String| RequestError {
        status: 400,
        code: "invalid_json",
        param: None,
        message,
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(invalid("request body must be a JSON object".into())),
        Err(e) => Err(invalid(format!("request body is not valid JSON: {e}"))),
    }
}

fn req_str<'a>(o: &'a Obj, key: &str, p: &str) -> Result<&'a str, RequestError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(missing(&format!("{p}.{key}"))),
        Some(_) => Err(wrong_type(&format!("{p}.{key}"), "a string")),
    }
}

fn opt_str<'a>(o: &'a Obj, key: &str, p: &str) -> Result<Option<&'a str>, RequestError> {
    match o.get(key) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(wrong_type(&join_param(p, key), "a string")),
    }
}

fn join_param(p: &str, key: &str) -> String {
    if p.is_empty() {
        key.to_string()
    } else {
        format!("{p}.{key}")
    }
}

/// A content block as an object with its `type`.
fn block<'a>(b: &'a Value, p: &str) -> Result<(&'a Obj, &'a str), RequestError> {
    let Value::Object(o) = b else {
        return Err(wrong_type(p, "an object"));
    };
    match o.get("type") {
        Some(Value::String(t)) => Ok((o, t)),
        None | Some(Value::Null) => Err(missing(&format!("{p}.type"))),
        Some(_) => Err(wrong_type(&format!("{p}.type"), "a string")),
    }
}

/// Parses a Messages request into the chat-completions request for the relay.
pub fn messages_to_chat_request(body: &[u8]) -> Result<ChatRequest, RequestError> {
    parse(body, String::new()).map(|(chat, _)| chat)
}

/// Parses a Messages request once: the chat request and what the answer needs.
pub fn parse(
    body: &[u8],
    message_id: String,
) -> Result<(ChatRequest, MessageContext), RequestError> {
    let (chat, ctx) = convert(&parse_root(body)?, message_id)?;
    let request = ChatRequest {
        body: Value::Object(chat).to_string().into_bytes(),
        model: ctx.model.clone(),
        stream: ctx.stream,
    };
    Ok((request, ctx))
}

fn convert(root: &Obj, message_id: String) -> Result<(Obj, MessageContext), RequestError> {
    let model = match root.get("model") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(bad_value("model", "`model` must not be empty".into()))
        }
        None | Some(Value::Null) => return Err(missing("model")),
        Some(_) => return Err(wrong_type("model", "a string")),
    };
    let stream = match root.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(wrong_type("stream", "a boolean")),
    };
    let mut ctx = MessageContext {
        message_id,
        model: model.clone(),
        stream,
        ..MessageContext::default()
    };
    let mut chat = Obj::new();
    chat.insert("model".into(), Value::String(model));

    let mut messages = Vec::new();
    match root.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => push_system(&mut messages, s.clone()),
        Some(Value::Array(blocks)) => {
            let text = text_blocks(blocks, "system", &mut ctx)?;
            push_system(&mut messages, text);
        }
        Some(_) => return Err(wrong_type("system", "a string or an array of text blocks")),
    }
    let history = match root.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(bad_value(
                "messages",
                "`messages` must contain at least one message".into(),
            ))
        }
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(_) => return Err(wrong_type("messages", "an array")),
    };
    for (i, m) in history.iter().enumerate() {
        convert_message(m, &format!("messages[{i}]"), &mut messages, &mut ctx)?;
    }
    if !messages.iter().any(|m| m["role"] != "system") {
        return Err(bad_value(
            "messages",
            "no message has content that can be forwarded".into(),
        ));
    }
    chat.insert("messages".into(), Value::Array(messages));

    match root.get("max_tokens") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some() => {
            chat.insert("max_tokens".into(), Value::Number(n.clone()));
        }
        Some(_) => return Err(wrong_type("max_tokens", "a non-negative integer")),
    }
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    for key in ["temperature", "top_p"] {
        match root.get(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                chat.insert(key.into(), v.clone());
            }
            Some(_) => return Err(wrong_type(key, "a number")),
        }
    }
    match root.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (k, s) in a.iter().enumerate() {
                if !s.is_string() {
                    return Err(wrong_type(&format!("stop_sequences[{k}]"), "a string"));
                }
            }
            if !a.is_empty() {
                chat.insert("stop".into(), Value::Array(a.clone()));
            }
        }
        Some(_) => return Err(wrong_type("stop_sequences", "an array of strings")),
    }
    if let Some(Value::Object(meta)) = root.get("metadata") {
        if let Some(user) = opt_str(meta, "user_id", "metadata")? {
            chat.insert("user".into(), Value::String(user.into()));
        }
    }
    if let Some(effort) = reasoning_effort(root)? {
        chat.insert("reasoning_effort".into(), Value::String(effort.into()));
    }
    convert_tools(root, &mut chat, &mut ctx)?;
    Ok((chat, ctx))
}

fn push_system(messages: &mut Vec<Value>, text: String) {
    if !text.is_empty() {
        messages.push(json!({"role": "system", "content": text}));
    }
}

/// The text of `system`-like block arrays: text blocks joined by `\n`, anything else dropped and counted.
fn text_blocks(
    blocks: &[Value],
    p: &str,
    ctx: &mut MessageContext,
) -> Result<String, RequestError> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = format!("{p}[{j}]");
        match block(b, &bp)? {
            (o, "text") => parts.push(req_str(o, "text", &bp)?),
            _ => ctx.dropped_blocks += 1,
        }
    }
    Ok(parts.join("\n"))
}

fn convert_message(
    m: &Value,
    p: &str,
    out: &mut Vec<Value>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let Value::Object(m) = m else {
        return Err(wrong_type(p, "an object"));
    };
    let role = req_str(m, "role", p)?;
    let cp = format!("{p}.content");
    let content = m.get("content").unwrap_or(&Value::Null);
    if !matches!(content, Value::String(_) | Value::Array(_) | Value::Null) {
        return Err(wrong_type(&cp, "a string or an array of content blocks"));
    }
    let blocks = content.as_array().map(Vec::as_slice).unwrap_or_default();
    match role {
        "system" => {
            let text = match content.as_str() {
                Some(s) => s.to_string(),
                None => text_blocks(blocks, &cp, ctx)?,
            };
            push_system(out, text);
        }
        "user" => {
            if let Some(s) = content.as_str() {
                out.push(json!({"role": "user", "content": s}));
            } else {
                user_blocks(blocks, &cp, out, ctx)?;
            }
        }
        "assistant" => {
            if let Some(s) = content.as_str() {
                if !s.is_empty() {
                    out.push(json!({"role": "assistant", "content": s}));
                }
            } else {
                assistant_blocks(blocks, &cp, out, ctx)?;
            }
        }
        other => {
            return Err(bad_value(
                &format!("{p}.role"),
                format!("unknown role `{other}`; expected `user` or `assistant`"),
            ))
        }
    }
    Ok(())
}

fn user_blocks(
    blocks: &[Value],
    cp: &str,
    out: &mut Vec<Value>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = format!("{cp}[{j}]");
        match block(b, &bp)? {
            (o, "text") => parts.push(text_part(req_str(o, "text", &bp)?)),
            (o, "image") => parts.push(image_part(o, &bp)?),
            (o, "document") => parts.push(text_part(&document_text(o, &bp, ctx)?)),
            // Tool messages go first, in order, before the rest of this user message.
            (o, "tool_result") => out.push(tool_result(o, &bp, ctx)?),
            (_, "thinking" | "redacted_thinking") => {}
            _ => ctx.dropped_blocks += 1,
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = if parts.iter().all(|p| p["type"] == "text") {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        Value::String(texts.join("\n"))
    } else {
        Value::Array(parts)
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn image_part(o: &Obj, p: &str) -> Result<Value, RequestError> {
    let sp = format!("{p}.source");
    let Some(Value::Object(source)) = o.get("source") else {
        return Err(wrong_type(&sp, "an object"));
    };
    let url = match req_str(source, "type", &sp)? {
        "base64" => format!(
            "data:{};base64,{}",
            req_str(source, "media_type", &sp)?,
            req_str(source, "data", &sp)?
        ),
        "url" => req_str(source, "url", &sp)?.to_string(),
        other => {
            return Err(unsupported(
                &format!("{sp}.type"),
                &format!("image source type `{other}` is not supported; send `base64` or `url`"),
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn document_text(o: &Obj, p: &str, ctx: &mut MessageContext) -> Result<String, RequestError> {
    let sp = format!("{p}.source");
    let Some(Value::Object(source)) = o.get("source") else {
        return Err(wrong_type(&sp, "an object"));
    };
    let body = match req_str(source, "type", &sp)? {
        "text" => req_str(source, "data", &sp)?.to_string(),
        "content" => match source.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(blocks)) => text_blocks(blocks, &format!("{sp}.content"), ctx)?,
            _ => return Err(wrong_type(&format!("{sp}.content"), "a string or an array of blocks")),
        },
        _ => {
            return Err(unsupported(
                p,
                "PDF and file documents are not supported by the upstream models; send the text instead",
            ))
        }
    };
    Ok(match opt_str(o, "title", p)? {
        Some(title) if !title.is_empty() => format!("{title}\n\n{body}"),
        _ => body,
    })
}

fn tool_result(o: &Obj, p: &str, ctx: &mut MessageContext) -> Result<Value, RequestError> {
    let id = req_str(o, "tool_use_id", p)?;
    let cp = format!("{p}.content");
    let mut text = match o.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::new();
            for (k, b) in blocks.iter().enumerate() {
                let bp = format!("{cp}[{k}]");
                match block(b, &bp)? {
                    (o, "text") => parts.push(req_str(o, "text", &bp)?.to_string()),
                    (_, "image") => parts.push("[image omitted]".to_string()),
                    (o, "document") => parts.push(document_text(o, &bp, ctx)?),
                    _ => ctx.dropped_blocks += 1,
                }
            }
            parts.join("\n")
        }
        Some(_) => return Err(wrong_type(&cp, "a string or an array of content blocks")),
    };
    if o.get("is_error") == Some(&Value::Bool(true)) {
        text.insert_str(0, "[tool error] ");
    }
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

fn assistant_blocks(
    blocks: &[Value],
    cp: &str,
    out: &mut Vec<Value>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = format!("{cp}[{j}]");
        match block(b, &bp)? {
            (o, "text") => texts.push(req_str(o, "text", &bp)?),
            (o, "tool_use") => {
                let input = o.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": req_str(o, "id", &bp)?,
                    "type": "function",
                    "function": {"name": req_str(o, "name", &bp)?, "arguments": input.to_string()},
                }));
            }
            (_, "thinking" | "redacted_thinking") => {}
            _ => ctx.dropped_blocks += 1,
        }
    }
    let text = texts.join("\n");
    let mut msg = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        msg["tool_calls"] = Value::Array(calls);
    } else if msg["content"].is_null() {
        return Ok(());
    }
    out.push(msg);
    Ok(())
}

fn reasoning_effort(root: &Obj) -> Result<Option<&'static str>, RequestError> {
    if let Some(Value::Object(cfg)) = root.get("output_config") {
        match opt_str(cfg, "effort", "output_config")? {
            Some("low") => return Ok(Some("low")),
            Some("medium") => return Ok(Some("medium")),
            Some("high" | "max") => return Ok(Some("high")),
            _ => {}
        }
    }
    let Some(Value::Object(thinking)) = root.get("thinking") else {
        return Ok(None);
    };
    Ok(match opt_str(thinking, "type", "thinking")? {
        Some("enabled") => match thinking.get("budget_tokens").and_then(Value::as_u64) {
            Some(n) if n < 4096 => Some("low"),
            Some(n) if n >= 16384 => Some("high"),
            _ => Some("medium"),
        },
        Some("adaptive") => Some("medium"),
        _ => None,
    })
}

fn convert_tools(root: &Obj, chat: &mut Obj, ctx: &mut MessageContext) -> Result<(), RequestError> {
    let mut tools = Vec::new();
    let mut names = Vec::new();
    match root.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (k, t) in list.iter().enumerate() {
                let tp = format!("tools[{k}]");
                let Value::Object(t) = t else {
                    return Err(wrong_type(&tp, "an object"));
                };
                let name = req_str(t, "name", &tp)?;
                match opt_str(t, "type", &tp)? {
                    None | Some("custom") => {}
                    Some(_) => {
                        ctx.dropped_tools.push(name.to_string());
                        continue;
                    }
                }
                let mut function = json!({"name": name});
                if let Some(d) = opt_str(t, "description", &tp)? {
                    function["description"] = Value::String(d.into());
                }
                function["parameters"] = match t.get("input_schema") {
                    Some(s @ Value::Object(_)) => s.clone(),
                    None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                    Some(_) => return Err(wrong_type(&format!("{tp}.input_schema"), "an object")),
                };
                names.push(name);
                tools.push(json!({"type": "function", "function": function}));
            }
        }
        Some(_) => return Err(wrong_type("tools", "an array")),
    }
    let forced_unsupported =
        |message: String| RequestError::invalid("unsupported_tool", "tool_choice", message);
    let choice = match root.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::Object(tc)) => {
            let choice = match req_str(tc, "type", "tool_choice")? {
                "auto" => json!("auto"),
                "none" => json!("none"),
                "any" if tools.is_empty() && !ctx.dropped_tools.is_empty() => {
                    return Err(forced_unsupported(
                        "`tool_choice` `any` needs a custom tool; server tools are not supported"
                            .into(),
                    ))
                }
                "any" => json!("required"),
                "tool" => {
                    let name = req_str(tc, "name", "tool_choice")?;
                    if ctx.dropped_tools.iter().any(|d| d == name) {
                        return Err(RequestError::invalid(
                            "unsupported_tool",
                            "tool_choice.name",
                            format!(
                                "`{name}` is a server tool, which the gateway does not support"
                            ),
                        ));
                    }
                    if !names.contains(&name) {
                        return Err(bad_value(
                            "tool_choice.name",
                            format!("no tool named `{name}` in `tools`"),
                        ));
                    }
                    json!({"type": "function", "function": {"name": name}})
                }
                other => {
                    return Err(bad_value(
                        "tool_choice.type",
                        format!("unknown tool_choice type `{other}`"),
                    ))
                }
            };
            if tc.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) && !tools.is_empty()
            {
                chat.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
            Some(choice)
        }
        Some(_) => return Err(wrong_type("tool_choice", "an object")),
    };
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = choice {
            chat.insert("tool_choice".into(), choice);
        }
    }
    Ok(())
}

/// Tokens estimated the way the gateway estimates a chat request: about four bytes of JSON per token, inline
/// images (`data:` URLs) a fixed 1000 tokens each.
fn estimate_json_tokens(text: &str) -> u64 {
    const IMAGE_TOKENS: u64 = 1000;
    let mut bytes = text.len() as u64;
    let mut images = 0u64;
    let mut rest = text;
    while let Some(start) = rest.find("\"data:") {
        let after = &rest[start + 1..];
        let end = after.find('"').unwrap_or(after.len());
        bytes = bytes.saturating_sub(end as u64);
        images += 1;
        rest = &after[end..];
    }
    bytes.div_ceil(4) + images * IMAGE_TOKENS
}

/// `count_tokens`: the estimated `input_tokens` of a Messages request — its translated messages (system, text,
/// tool_use input, tool_result content, images) and tool definitions, counted as the relay estimates a request.
pub fn count_tokens(body: &[u8]) -> Result<u64, RequestError> {
    let (chat, _) = convert(&parse_root(body)?, String::new())?;
    let messages = chat
        .get("messages")
        .map(Value::to_string)
        .unwrap_or_default();
    let tools = chat.get("tools").map(Value::to_string).unwrap_or_default();
    Ok(estimate_json_tokens(&messages) + (tools.len() as u64).div_ceil(4))
}

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

/// Anthropic error body `{"type":"error","error":{"type","message"}}` for an HTTP status.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    json!({"type": "error", "error": {"type": error_type_for_status(status), "message": message}})
        .to_string()
        .into_bytes()
}

/// [`error_body`] for a refused request, the offending field named in the message (Anthropic has no `param`).
pub fn request_error_body(e: &RequestError) -> Vec<u8> {
    match &e.param {
        Some(p) => error_body(e.status, &format!("{p}: {}", e.message)),
        None => error_body(e.status, &e.message),
    }
}

fn stop_reason(finish: Option<&str>, tool_calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        _ if tool_calls => "tool_use",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// `input_tokens` (without cache reads) and `cache_read_input_tokens` from a chat `usage` object.
fn usage_of(u: &Value) -> (u64, u64, u64) {
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0)
        .min(prompt);
    (prompt, u["completion_tokens"].as_u64().unwrap_or(0), cached)
}

fn tool_id(id: Option<&str>, ctx: &MessageContext, n: usize) -> String {
    match id {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => {
            let stem = ctx
                .message_id
                .strip_prefix("msg_")
                .unwrap_or(&ctx.message_id);
            format!("toolu_{stem}_{n}")
        }
    }
}

/// A leading `<think>…</think>` split off content: (thinking, rest). No closing tag: all of it is thinking.
fn split_think(content: &str) -> Option<(&str, &str)> {
    let body = content.trim_start().strip_prefix("<think>")?;
    Some(match body.find("</think>") {
        Some(end) => (&body[..end], body[end + "</think>".len()..].trim_start()),
        None => (body, ""),
    })
}

/// Turns a `chat.completion` body into a Messages `message`.
pub fn chat_to_messages_response(chat: &[u8], ctx: &MessageContext) -> Result<Vec<u8>, String> {
    let v: Value =
        serde_json::from_slice(chat).map_err(|e| format!("upstream answer is not JSON: {e}"))?;
    if let Some(err) = v.get("error").filter(|e| e.is_object()) {
        return Err(err["message"]
            .as_str()
            .unwrap_or("upstream error")
            .to_string());
    }
    let choice = v["choices"]
        .get(0)
        .ok_or("upstream answer has no choices")?;
    let msg = &choice["message"];
    let mut text = match &msg["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    if text.is_empty() {
        text = msg["refusal"].as_str().unwrap_or_default().to_string();
    }
    let mut reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| msg[k].as_str().filter(|s| !s.is_empty()))
        .map(str::to_string);
    if reasoning.is_none() {
        if let Some((thought, rest)) = split_think(&text) {
            reasoning = Some(thought.to_string());
            text = rest.to_string();
        }
    }
    let mut content = Vec::new();
    if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = msg["tool_calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (n, call) in calls.iter().enumerate() {
        let f = &call["function"];
        let input = match &f["arguments"] {
            Value::String(s) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(Value::is_object),
            obj @ Value::Object(_) => Some(obj.clone()),
            _ => None,
        };
        content.push(json!({
            "type": "tool_use",
            "id": tool_id(call["id"].as_str(), ctx, n),
            "name": f["name"].as_str().unwrap_or_default(),
            "input": input.unwrap_or_else(|| json!({})),
        }));
    }
    let (prompt, completion, cached) = usage_of(&v["usage"]);
    let body = json!({
        "id": ctx.message_id,
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str(), !calls.is_empty()),
        "stop_sequence": null,
        "usage": {
            "input_tokens": prompt - cached,
            "output_tokens": completion,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        },
    });
    Ok(body.to_string().into_bytes())
}

fn sse(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Thinking(u32),
    Text(u32),
    /// Block index and the slot in `tools`.
    Tool(u32, usize),
}

/// Where a leading `<think>` tag stands in streamed content.
#[derive(Debug)]
enum Think {
    /// Content so far could still open with `<think>`.
    Detect(String),
    /// Inside the tag; holds a tail that might be the start of `</think>`.
    Inside(String),
    /// Plain text; `trim` drops whitespace right after `</think>`.
    Text { trim: bool },
}

#[derive(Debug, Default)]
struct StreamTool {
    chat_index: Option<u64>,
    id: Option<String>,
    name: Option<String>,
    /// Arguments: buffered until the block starts, then those sent.
    args: String,
    started: bool,
    closed: bool,
}

/// Turns the relay's chat-completion stream into Messages stream events.
#[derive(Debug)]
pub struct MessagesStreamEncoder {
    ctx: MessageContext,
    input_estimate: u64,
    started: bool,
    ended: bool,
    next_index: u32,
    open: Open,
    think: Think,
    tools: Vec<StreamTool>,
    finish_reason: Option<String>,
    usage: Option<wire::Usage>,
    cached: u64,
    output_bytes: u64,
}

impl MessagesStreamEncoder {
    pub fn new(ctx: MessageContext, input_tokens_estimate: u64) -> Self {
        Self {
            ctx,
            input_estimate: input_tokens_estimate,
            started: false,
            ended: false,
            next_index: 0,
            open: Open::None,
            think: Think::Detect(String::new()),
            tools: Vec::new(),
            finish_reason: None,
            usage: None,
            cached: 0,
            output_bytes: 0,
        }
    }

    /// `message_start` and a `ping`; once.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": self.ctx.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.ctx.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {
                "input_tokens": self.input_estimate,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        });
        sse(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        sse(out, "ping", &json!({"type": "ping"}));
    }

    /// Feeds one chat SSE payload: a `chat.completion.chunk`, `[DONE]`, or the gateway's terminal `{"error":…}`.
    pub fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        let data = event.trim_ascii();
        if data == b"[DONE]" {
            self.finish(out);
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if let Some(err) = v.get("error").filter(|e| e.is_object()) {
            let kind = match err["type"].as_str().unwrap_or_default() {
                "rate_limit_error" | "service_unavailable" | "provider_error" => "overloaded_error",
                _ => "api_error",
            };
            let message = err["message"].as_str().unwrap_or("upstream error");
            sse(
                out,
                "error",
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            );
            self.ended = true;
            return;
        }
        if v["usage"].is_object() {
            let (prompt, completion, cached) = usage_of(&v["usage"]);
            self.usage = Some(wire::Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
            });
            self.cached = cached;
        }
        let choices = v["choices"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for choice in choices
            .iter()
            .filter(|c| c["index"].as_u64().unwrap_or(0) == 0)
        {
            self.delta(&choice["delta"], out);
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
    }

    fn delta(&mut self, d: &Value, out: &mut Vec<u8>) {
        let reasoning = ["reasoning_content", "reasoning"]
            .iter()
            .find_map(|k| d[k].as_str().filter(|s| !s.is_empty()));
        if let Some(r) = reasoning {
            self.thinking(r, out);
        }
        if let Some(c) = d["content"].as_str().filter(|s| !s.is_empty()) {
            self.content(c, out);
        }
        if let Some(r) = d["refusal"].as_str().filter(|s| !s.is_empty()) {
            self.text(r, out);
        }
        for call in d["tool_calls"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            self.tool_delta(call, out);
        }
    }

    fn content(&mut self, c: &str, out: &mut Vec<u8>) {
        const OPEN: &str = "<think>";
        const CLOSE: &str = "</think>";
        match std::mem::replace(&mut self.think, Think::Text { trim: false }) {
            Think::Text { trim } => {
                let s = if trim { c.trim_start() } else { c };
                self.think = Think::Text {
                    trim: trim && s.is_empty(),
                };
                if !s.is_empty() {
                    self.text(s, out);
                }
            }
            Think::Detect(mut buf) => {
                buf.push_str(c);
                let t = buf.trim_start();
                if let Some(rest) = t.strip_prefix(OPEN) {
                    let rest = rest.to_string();
                    self.think = Think::Inside(String::new());
                    self.content(&rest, out);
                } else if OPEN.starts_with(t) {
                    self.think = Think::Detect(buf);
                } else {
                    self.text(&buf, out);
                }
            }
            Think::Inside(mut held) => {
                held.push_str(c);
                if let Some(end) = held.find(CLOSE) {
                    if end > 0 {
                        self.thinking(&held[..end], out);
                    }
                    let rest = held[end + CLOSE.len()..].to_string();
                    self.think = Think::Text { trim: true };
                    if !rest.is_empty() {
                        self.content(&rest, out);
                    }
                } else {
                    let keep = (1..CLOSE.len())
                        .rev()
                        .find(|&k| held.ends_with(&CLOSE[..k]))
                        .unwrap_or(0);
                    let tail = held.split_off(held.len() - keep);
                    if !held.is_empty() {
                        self.thinking(&held, out);
                    }
                    self.think = Think::Inside(tail);
                }
            }
        }
    }

    fn new_block(&mut self, out: &mut Vec<u8>, content_block: Value) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        sse(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": content_block}),
        );
        index
    }

    fn block_delta(&mut self, out: &mut Vec<u8>, index: u32, delta: Value, bytes: usize) {
        self.output_bytes += bytes as u64;
        sse(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    fn thinking(&mut self, s: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::Thinking(i) => i,
            _ => {
                let i = self.new_block(
                    out,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                );
                self.open = Open::Thinking(i);
                i
            }
        };
        self.block_delta(
            out,
            index,
            json!({"type": "thinking_delta", "thinking": s}),
            s.len(),
        );
    }

    fn text(&mut self, s: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::Text(i) => i,
            _ => {
                let i = self.new_block(out, json!({"type": "text", "text": ""}));
                self.open = Open::Text(i);
                i
            }
        };
        self.block_delta(
            out,
            index,
            json!({"type": "text_delta", "text": s}),
            s.len(),
        );
    }

    /// The slot of the tool call a delta belongs to: by `index`, unless it carries a different `id` (some
    /// providers number every call 0); without `index`, by `id`, else the latest call.
    fn slot_for(&mut self, index: Option<u64>, id: Option<&str>) -> usize {
        let found = match index {
            Some(ix) => self
                .tools
                .iter()
                .rposition(|t| t.chat_index == Some(ix))
                .filter(|&s| match (id, &self.tools[s].id) {
                    (Some(new), Some(old)) => new == old,
                    _ => true,
                }),
            None => match id {
                Some(id) => self.tools.iter().rposition(|t| t.id.as_deref() == Some(id)),
                None => self.tools.len().checked_sub(1),
            },
        };
        found.unwrap_or_else(|| {
            self.tools.push(StreamTool {
                chat_index: index,
                ..StreamTool::default()
            });
            self.tools.len() - 1
        })
    }

    fn tool_delta(&mut self, call: &Value, out: &mut Vec<u8>) {
        let id = call["id"].as_str().filter(|s| !s.is_empty());
        let f = &call["function"];
        let name = f["name"].as_str().filter(|s| !s.is_empty());
        let args = match &f["arguments"] {
            Value::String(s) => s.clone(),
            obj @ Value::Object(_) => obj.to_string(),
            _ => String::new(),
        };
        let slot = self.slot_for(call["index"].as_u64(), id);
        let t = &mut self.tools[slot];
        if t.closed {
            return;
        }
        if t.id.is_none() {
            t.id = id.map(str::to_string);
        }
        if t.name.is_none() {
            t.name = name.map(str::to_string);
        }
        let repeat = !t.args.is_empty()
            && args == t.args
            && serde_json::from_str::<serde::de::IgnoredAny>(&t.args).is_ok();
        if args.is_empty() || repeat {
            if !t.started && t.name.is_some() && t.id.is_some() {
                self.start_tool(slot, out);
            }
            return;
        }
        if t.started {
            t.args.push_str(&args);
            if let Open::Tool(index, open) = self.open {
                if open != slot {
                    return;
                }
                self.block_delta(
                    out,
                    index,
                    json!({"type": "input_json_delta", "partial_json": args}),
                    args.len(),
                );
            }
        } else {
            t.args.push_str(&args);
            if t.name.is_some() {
                self.start_tool(slot, out);
            }
        }
    }

    /// Opens the block of a named tool call, sending the arguments buffered so far.
    fn start_tool(&mut self, slot: usize, out: &mut Vec<u8>) {
        let id = tool_id(self.tools[slot].id.as_deref(), &self.ctx, slot);
        let name = self.tools[slot].name.clone().unwrap_or_default();
        let index = self.new_block(
            out,
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
        );
        self.open = Open::Tool(index, slot);
        let t = &mut self.tools[slot];
        t.started = true;
        if !t.args.is_empty() {
            let args = t.args.clone();
            self.block_delta(
                out,
                index,
                json!({"type": "input_json_delta", "partial_json": args}),
                args.len(),
            );
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::None => return,
            Open::Thinking(i) => {
                self.block_delta(
                    out,
                    i,
                    json!({"type": "signature_delta", "signature": ""}),
                    0,
                );
                i
            }
            Open::Text(i) => i,
            Open::Tool(i, slot) => {
                if let Some(t) = self.tools.get_mut(slot) {
                    t.closed = true;
                }
                i
            }
        };
        self.open = Open::None;
        sse(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }

    /// Closes the open block and ends the message (`message_delta`, `message_stop`); once, and not after an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        match std::mem::replace(&mut self.think, Think::Text { trim: false }) {
            Think::Detect(buf) if !buf.is_empty() => self.text(&buf, out),
            Think::Inside(held) if !held.is_empty() => self.thinking(&held, out),
            _ => {}
        }
        for slot in 0..self.tools.len() {
            let t = &self.tools[slot];
            if !t.started && t.name.is_some() {
                self.start_tool(slot, out);
            }
        }
        self.close(out);
        let tool_calls = self.tools.iter().any(|t| t.started);
        let (input, output) = match self.usage {
            Some(u) => (
                u.prompt_tokens.saturating_sub(self.cached),
                u.completion_tokens,
            ),
            None => (self.input_estimate, self.output_bytes.div_ceil(4)),
        };
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish_reason.as_deref(), tool_calls), "stop_sequence": null},
            "usage": {
                "input_tokens": input,
                "output_tokens": output,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": self.cached,
            },
        });
        sse(out, "message_delta", &delta);
        sse(out, "message_stop", &json!({"type": "message_stop"}));
        self.ended = true;
    }

    /// The upstream's reported usage, once a chunk carried it.
    pub fn usage(&self) -> Option<wire::Usage> {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_of(req: &Value) -> Value {
        let (chat, _) = parse(req.to_string().as_bytes(), "msg_1".into()).unwrap();
        serde_json::from_slice(&chat.body).unwrap()
    }

    fn err_of(req: &[u8]) -> RequestError {
        messages_to_chat_request(req).unwrap_err()
    }

    fn ctx() -> MessageContext {
        MessageContext {
            message_id: "msg_abc".into(),
            model: "claude-sonnet-4-5".into(),
            stream: true,
            ..MessageContext::default()
        }
    }

    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n") || text.is_empty(), "{text}");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (head, data) = e.split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap().to_string();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    fn run(chunks: &[&str]) -> Vec<(String, Value)> {
        let mut enc = MessagesStreamEncoder::new(ctx(), 42);
        let mut out = Vec::new();
        enc.start(&mut out);
        for c in chunks {
            enc.push(c.as_bytes(), &mut out);
        }
        enc.finish(&mut out);
        enc.finish(&mut out);
        events(&out)
    }

    /// Checks event order the way the SDK's accumulator relies on it and returns the blocks as accumulated:
    /// (start block, concatenated text / thinking / partial_json).
    fn blocks(ev: &[(String, Value)]) -> Vec<(Value, String)> {
        assert_eq!(ev[0].0, "message_start");
        assert_eq!(ev[0].1["message"]["model"], "claude-sonnet-4-5");
        assert_eq!(ev[1].0, "ping");
        let mut blocks: Vec<(Value, String)> = Vec::new();
        let mut open: Option<u64> = None;
        let n = ev.len();
        for (name, data) in &ev[2..n - 2] {
            match name.as_str() {
                "content_block_start" => {
                    assert!(open.is_none(), "block opened while another is open");
                    assert_eq!(data["index"], blocks.len() as u64);
                    open = data["index"].as_u64();
                    blocks.push((data["content_block"].clone(), String::new()));
                }
                "content_block_delta" => {
                    assert_eq!(data["index"].as_u64(), open);
                    let d = &data["delta"];
                    let piece = match d["type"].as_str().unwrap() {
                        "text_delta" => d["text"].as_str(),
                        "thinking_delta" => d["thinking"].as_str(),
                        "input_json_delta" => d["partial_json"].as_str(),
                        "signature_delta" => Some(""),
                        other => panic!("unexpected delta {other}"),
                    };
                    blocks.last_mut().unwrap().1.push_str(piece.unwrap());
                }
                "content_block_stop" => {
                    assert_eq!(data["index"].as_u64(), open.take());
                }
                other => panic!("unexpected event {other}"),
            }
        }
        assert!(open.is_none());
        assert_eq!(ev[n - 2].0, "message_delta");
        assert_eq!(ev[n - 1].0, "message_stop");
        blocks
    }

    fn chunk(delta: Value) -> String {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}).to_string()
    }

    fn finish_chunk(reason: &str) -> String {
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
    }

    #[test]
    fn claude_code_request() {
        let req = json!({
            "model": "claude-opus-4-1-20250805",
            "max_tokens": 32000,
            "stream": true,
            "system": [
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be terse."}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Listing."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "a"}}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "and now?"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a\nb"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "no such file"}, {"type": "image", "source": {}}]},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}
                ]},
                {"role": "system", "content": "mid-conversation note"},
                {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search"}]},
                {"role": "user", "content": "go on"}
            ],
            "tools": [
                {"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                {"type": "custom", "name": "Read", "input_schema": {"type": "object"}}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "low"},
            "context_management": {"edits": []},
            "metadata": {"user_id": "user_123"},
            "temperature": 1,
            "top_k": 5,
            "stop_sequences": ["STOP"]
        });
        let (chat, ctx) = parse(req.to_string().as_bytes(), "msg_1".into()).unwrap();
        assert!(chat.stream);
        assert_eq!(chat.model, "claude-opus-4-1-20250805");
        assert_eq!(ctx.model, "claude-opus-4-1-20250805");
        assert_eq!(ctx.dropped_tools, vec!["web_search".to_string()]);
        assert_eq!(ctx.dropped_blocks, 1);
        let c: Value = serde_json::from_slice(&chat.body).unwrap();
        let expected_messages = json!([
            {"role": "system", "content": "You are Claude Code.\nBe terse."},
            {"role": "user", "content": "<system-reminder>ctx</system-reminder>\nlist files"},
            {"role": "assistant", "content": "Listing.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a\nb"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] no such file\n[image omitted]"},
            {"role": "user", "content": [
                {"type": "text", "text": "and now?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}
            ]},
            {"role": "system", "content": "mid-conversation note"},
            {"role": "user", "content": "go on"}
        ]);
        assert_eq!(c["messages"], expected_messages);
        assert_eq!(c["max_tokens"], 32000);
        assert_eq!(c["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            c["reasoning_effort"], "low",
            "output_config.effort overrides thinking"
        );
        assert_eq!(c["user"], "user_123");
        assert_eq!(c["temperature"], 1);
        assert_eq!(c["stop"], json!(["STOP"]));
        assert_eq!(c["tool_choice"], "auto");
        assert_eq!(c["parallel_tool_calls"], false);
        assert_eq!(c["tools"].as_array().unwrap().len(), 2);
        assert_eq!(c["tools"][0]["function"]["name"], "Bash");
        assert_eq!(
            c["tools"][0]["function"]["parameters"]["properties"]["command"]["type"],
            "string"
        );
        assert_eq!(c["tools"][1]["function"]["name"], "Read");
        for absent in [
            "top_k",
            "context_management",
            "metadata",
            "thinking",
            "output_config",
            "system",
        ] {
            assert!(c.get(absent).is_none(), "{absent} leaked");
        }
    }

    #[test]
    fn request_options() {
        let base = |extra: Value| {
            let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            r.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            chat_of(&r)
        };
        let c = base(json!({}));
        assert_eq!(c["messages"], json!([{"role": "user", "content": "hi"}]));
        assert!(c.get("stream").is_none() && c.get("max_tokens").is_none());
        for (budget, effort) in [(1024, "low"), (8000, "medium"), (20000, "high")] {
            let c = base(json!({"thinking": {"type": "enabled", "budget_tokens": budget}}));
            assert_eq!(c["reasoning_effort"], effort);
        }
        assert!(base(json!({"thinking": {"type": "disabled"}}))
            .get("reasoning_effort")
            .is_none());
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        let choice =
            |tc: Value| base(json!({"tools": tools, "tool_choice": tc}))["tool_choice"].clone();
        assert_eq!(choice(json!({"type": "any"})), "required");
        assert_eq!(choice(json!({"type": "none"})), "none");
        assert_eq!(
            choice(json!({"type": "tool", "name": "f"})),
            json!({"type": "function", "function": {"name": "f"}})
        );
        let c = base(json!({"system": "sys", "messages": [
            {"role": "user", "content": [{"type": "document", "title": "T", "source": {"type": "text", "data": "body"}}]},
            {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}
        ]}));
        assert_eq!(
            c["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(c["messages"][1]["content"], "T\n\nbody");
        assert_eq!(
            c["messages"][2]["content"][0]["image_url"]["url"],
            "https://x/y.png"
        );
        // Only server tools: no tools, no tool_choice.
        let c = base(
            json!({"tools": [{"type": "bash_20250124", "name": "bash"}], "tool_choice": {"type": "auto"}}),
        );
        assert!(c.get("tools").is_none() && c.get("tool_choice").is_none());
    }

    #[test]
    fn request_errors() {
        let e = err_of(b"{not json");
        assert_eq!((e.status, e.code), (400, "invalid_json"));
        assert_eq!(err_of(b"[1]").code, "invalid_json");
        let e = err_of(br#"{"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("missing_required_parameter", Some("model"))
        );
        assert_eq!(
            err_of(br#"{"model":"m","messages":[]}"#).param.as_deref(),
            Some("messages")
        );
        let e = err_of(br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":3}]}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_type", Some("messages[1].content[0].type"))
        );
        let e = err_of(br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_value", Some("messages[0].role"))
        );
        let pdf = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"read"},
            {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}]}]}"#;
        let e = err_of(pdf);
        assert_eq!(
            (e.status, e.code, e.param.as_deref()),
            (400, "unsupported_content", Some("messages[0].content[1]"))
        );
        let e = err_of(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            (
                "unsupported_content",
                Some("messages[0].content[0].source.type")
            )
        );
        let forced = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "tools":[{"type":"web_search_20250305","name":"web_search"},{"name":"f"}],
            "tool_choice":{"type":"tool","name":"web_search"}}"#;
        let e = err_of(forced);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("unsupported_tool", Some("tool_choice.name"))
        );
        let any = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "tools":[{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"any"}}"#;
        assert_eq!(err_of(any).code, "unsupported_tool");
        let e =
            err_of(br#"{"model":"m","max_tokens":"9","messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = err_of(br#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].id"));
        let body = request_error_body(&e);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("messages[0].content[0].id"));
    }

    #[test]
    fn count_tokens_grows_with_input() {
        let req = |text: &str, tools: Value, result: &str| {
            json!({"model": "m", "system": "sys", "tools": tools, "messages": [
                {"role": "user", "content": text},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"q": "x"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": result}]}
            ]})
            .to_string()
        };
        let small = count_tokens(req("hi", json!([]), "r").as_bytes()).unwrap();
        let long = count_tokens(req(&"word ".repeat(400), json!([]), "r").as_bytes()).unwrap();
        let tools = json!([{"name": "f", "description": "d".repeat(400), "input_schema": {"type": "object"}}]);
        let with_tools = count_tokens(req("hi", tools, "r").as_bytes()).unwrap();
        let big_result = count_tokens(req("hi", json!([]), &"r".repeat(400)).as_bytes()).unwrap();
        assert!(small > 0);
        assert!(long >= small + 450, "{small} {long}");
        assert!(with_tools >= small + 100, "{small} {with_tools}");
        assert!(big_result >= small + 90, "{small} {big_result}");
        let image = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A".repeat(100_000)}}]}]});
        let n = count_tokens(image.to_string().as_bytes()).unwrap();
        assert!((1000..1100).contains(&n), "{n}");
        assert_eq!(count_tokens(b"nope").unwrap_err().code, "invalid_json");
    }

    fn answer(message: Value, finish: &str) -> Value {
        let chat = json!({"id": "c", "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}}});
        let body = chat_to_messages_response(chat.to_string().as_bytes(), &ctx()).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn non_stream_text() {
        let v = answer(json!({"role": "assistant", "content": "Hello"}), "stop");
        assert_eq!(v["id"], "msg_abc");
        assert_eq!(v["type"], "message");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["content"], json!([{"type": "text", "text": "Hello"}]));
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 40, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60})
        );
        let v = answer(json!({"role": "assistant", "content": "Hel"}), "length");
        assert_eq!(v["stop_reason"], "max_tokens");
        let v = answer(
            json!({"role": "assistant", "content": null, "refusal": "no"}),
            "content_filter",
        );
        assert_eq!(v["stop_reason"], "refusal");
        assert_eq!(v["content"][0]["text"], "no");
        assert!(chat_to_messages_response(b"{\"choices\":[]}", &ctx()).is_err());
        assert!(chat_to_messages_response(b"<html>", &ctx()).is_err());
    }

    #[test]
    fn non_stream_tool_use_and_thinking() {
        let v = answer(
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                {"type": "function", "function": {"name": "Read", "arguments": "{broken"}}
            ]}),
            "stop",
        );
        assert_eq!(
            v["content"],
            json!([
                {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_abc_1", "name": "Read", "input": {}}
            ])
        );
        assert_eq!(v["stop_reason"], "tool_use");
        let v = answer(
            json!({"role": "assistant", "content": "  <think>plan</think>\n\nAnswer"}),
            "stop",
        );
        assert_eq!(
            v["content"],
            json!([{"type": "thinking", "thinking": "plan", "signature": ""}, {"type": "text", "text": "Answer"}])
        );
        let v = answer(
            json!({"role": "assistant", "content": "Answer", "reasoning_content": "why"}),
            "stop",
        );
        assert_eq!(
            v["content"][0],
            json!({"type": "thinking", "thinking": "why", "signature": ""})
        );
        assert_eq!(v["content"][1]["text"], "Answer");
    }

    #[test]
    fn stream_text_with_late_usage() {
        let ev = run(&[
            &chunk(json!({"role": "assistant", "content": ""})),
            &chunk(json!({"content": "Hel"})),
            &chunk(json!({"content": "lo"})),
            &finish_chunk("stop"),
            &json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
                .to_string(),
            "[DONE]",
            &chunk(json!({"content": "ignored"})),
        ]);
        assert_eq!(ev[0].1["message"]["usage"]["input_tokens"], 42);
        let b = blocks(&ev);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0, json!({"type": "text", "text": ""}));
        assert_eq!(b[0].1, "Hello");
        let delta = &ev[ev.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["output_tokens"], 3);
        assert_eq!(delta["usage"]["input_tokens"], 12);
        assert_eq!(ev.iter().filter(|e| e.0 == "message_stop").count(), 1);
    }

    #[test]
    fn stream_tool_calls_split_and_repeated() {
        let mut enc = MessagesStreamEncoder::new(ctx(), 1);
        let mut out = Vec::new();
        let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
            let mut c = json!({"index": index, "function": {"arguments": args}});
            if let Some(id) = id {
                c["id"] = json!(id);
                c["type"] = json!("function");
            }
            if let Some(name) = name {
                c["function"]["name"] = json!(name);
            }
            chunk(json!({"tool_calls": [c]}))
        };
        for c in [
            chunk(json!({"content": "Let me look."})),
            call(0, Some("call_a"), None, ""),
            call(0, None, Some("Bash"), "{\"comm"),
            call(0, Some("call_a"), Some("Bash"), ""),
            call(0, None, None, "and\":\"ls\"}"),
            call(0, None, None, "{\"command\":\"ls\"}"),
            call(1, Some("call_b"), Some("Read"), "{\"path\":"),
            call(1, None, None, "\"x\"}"),
            finish_chunk("tool_calls"),
        ] {
            enc.push(c.as_bytes(), &mut out);
        }
        enc.push(b"[DONE]", &mut out);
        let ev = events(&out);
        let b = blocks(&ev);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].1, "Let me look.");
        assert_eq!(
            b[1].0,
            json!({"type": "tool_use", "id": "call_a", "name": "Bash", "input": {}})
        );
        assert_eq!(b[1].1, "{\"command\":\"ls\"}");
        serde_json::from_str::<Value>(&b[1].1).unwrap();
        assert_eq!(b[2].0["id"], "call_b");
        assert_eq!(b[2].0["name"], "Read");
        assert_eq!(b[2].1, "{\"path\":\"x\"}");
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
        assert!(enc.usage().is_none());
        // Output estimate from the bytes sent when the upstream reports no usage.
        assert!(
            ev[ev.len() - 2].1["usage"]["output_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
    }

    #[test]
    fn stream_each_call_numbered_zero_and_no_arguments() {
        let ev = run(&[
            &chunk(
                json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
            ),
            &chunk(
                json!({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{\"x\":1}"}}]}),
            ),
            &chunk(json!({"tool_calls": [{"index": 1, "function": {"name": "h"}}]})),
            &finish_chunk("stop"),
        ]);
        let b = blocks(&ev);
        let names: Vec<&str> = b.iter().map(|(s, _)| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["f", "g", "h"]);
        assert_eq!(b[1].1, "{\"x\":1}");
        assert_eq!(b[2].0["id"], "toolu_abc_2");
        assert_eq!(b[2].1, "");
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn stream_reasoning_then_text() {
        let ev = run(&[
            &chunk(json!({"reasoning_content": "Think"})),
            &chunk(json!({"reasoning": "ing."})),
            &chunk(json!({"content": "Done"})),
            &finish_chunk("length"),
        ]);
        let b = blocks(&ev);
        assert_eq!(
            b[0].0,
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(b[0].1, "Thinking.");
        assert_eq!(b[1].1, "Done");
        let sig = ev
            .iter()
            .position(|e| e.1["delta"]["type"] == "signature_delta")
            .unwrap();
        assert_eq!(ev[sig + 1].0, "content_block_stop");
        assert_eq!(ev[sig + 1].1["index"], 0);
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "max_tokens");
    }

    #[test]
    fn stream_think_tags_split_across_chunks() {
        let ev = run(&[
            &chunk(json!({"content": "\n<th"})),
            &chunk(json!({"content": "ink>I should"})),
            &chunk(json!({"content": " say hi</th"})),
            &chunk(json!({"content": "ink>\n\n"})),
            &chunk(json!({"content": "Hi <b>there</b>"})),
            &finish_chunk("stop"),
        ]);
        let b = blocks(&ev);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0["type"], "thinking");
        assert_eq!(b[0].1, "I should say hi");
        assert_eq!(b[1].1, "Hi <b>there</b>");
        // Content that merely starts with `<` is text.
        let b = blocks(&run(&[
            &chunk(json!({"content": "<"})),
            &chunk(json!({"content": "html>"})),
        ]));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].1, "<html>");
    }

    #[test]
    fn stream_error_ends_without_message_stop() {
        let mut enc = MessagesStreamEncoder::new(ctx(), 5);
        let mut out = Vec::new();
        enc.push(chunk(json!({"content": "partial"})).as_bytes(), &mut out);
        let err = json!({"error": {"message": "upstream died", "type": "stream_error", "code": "upstream_stream_error"}});
        enc.push(err.to_string().as_bytes(), &mut out);
        enc.push(chunk(json!({"content": "more"})).as_bytes(), &mut out);
        enc.push(b"[DONE]", &mut out);
        enc.finish(&mut out);
        let ev = events(&out);
        let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "error"
            ]
        );
        assert_eq!(
            ev[4].1["error"],
            json!({"type": "api_error", "message": "upstream died"})
        );
        let mut enc = MessagesStreamEncoder::new(ctx(), 5);
        let mut out = Vec::new();
        enc.push(
            br#"{"error":{"message":"busy","type":"service_unavailable","code":"no_capacity"}}"#,
            &mut out,
        );
        assert_eq!(events(&out)[2].1["error"]["type"], "overloaded_error");
    }

    #[test]
    fn stream_empty_is_a_valid_message() {
        let ev = run(&["[DONE]"]);
        let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["message_start", "ping", "message_delta", "message_stop"]
        );
        assert_eq!(ev[2].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(ev[2].1["usage"]["input_tokens"], 42);
        assert_eq!(ev[0].1["message"]["content"], json!([]));
        // finish() alone, without start(), also makes a whole message.
        let mut enc = MessagesStreamEncoder::new(ctx(), 0);
        let mut out = Vec::new();
        enc.finish(&mut out);
        assert_eq!(events(&out).len(), 4);
    }

    #[test]
    fn families_and_error_types() {
        assert_eq!(claude_family("claude-opus-4-1-20250805"), Some("opus"));
        assert_eq!(claude_family("claude-3-5-haiku-latest"), Some("haiku"));
        assert_eq!(claude_family("claude-sonnet-4-5"), Some("sonnet"));
        assert_eq!(claude_family("claude-haiku-4-5-20251001"), Some("haiku"));
        assert_eq!(claude_family("anthropic/claude-3.7-sonnet"), Some("sonnet"));
        assert_eq!(claude_family("gpt-4o"), None);
        assert_eq!(claude_family("sonnet-imitation"), None);
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "overloaded_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
            (501, "api_error"),
        ] {
            assert_eq!(error_type_for_status(status), kind, "{status}");
        }
        let v: Value = serde_json::from_slice(&error_body(429, "slow down")).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }
}
