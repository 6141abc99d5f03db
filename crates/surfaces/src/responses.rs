//! The OpenAI Responses API surface (`POST /v1/responses`, as used by Codex CLI and `client.responses.create`).
//!
//! The gateway is stateless, so whatever needs server-side state (`previous_response_id`, `conversation`,
//! `background`, file ids, item references) is refused with a 400 that says so; `store` is accepted and every
//! response reports `"store": false`. Hosted tools (`web_search`, `file_search`, …) cannot run here: they are dropped
//! (their names land in [`ResponseContext::dropped_tools`]) unless `tool_choice` forces one, which is a 400.

use serde_json::{json, Map, Value};

use crate::{ChatRequest, RequestError};

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";

// ---- request direction ------------------------------------------------------------------------------------------

/// What the request leaves for the answer: ids, the model the client named, and the request parameters every
/// Responses `response` object echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseContext {
    pub response_id: String,
    pub model: String,
    pub created_at: u64,
    pub stream: bool,
    /// Names (or types, for unnamed ones) of the hosted / non-function tools that were dropped, for the caller to log.
    pub dropped_tools: Vec<String>,
    /// The echoed fields (`instructions`, `tools`, `tool_choice`, `parallel_tool_calls`, `text`, `reasoning`,
    /// `max_output_tokens`, `temperature`, `top_p`, `metadata`, `store`, `truncation`, …).
    pub echo: Map<String, Value>,
}

impl ResponseContext {
    /// Builds the context from the raw request body. Lenient: a body the codec refuses still yields a context.
    pub fn from_request(body: &[u8], response_id: String, created_at: u64) -> Self {
        let m = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        let dropped = map_tools(m.get("tools"))
            .map(|(_, d)| d)
            .unwrap_or_default();
        build_context(&m, response_id, created_at, dropped)
    }
}

/// Parses the request once, returning both the chat-completions request and the context for the answer.
pub fn parse(
    body: &[u8],
    response_id: String,
    created_at: u64,
) -> Result<(ChatRequest, ResponseContext), RequestError> {
    let m = parse_object(body)?;
    let (chat, dropped) = build_chat(&m)?;
    Ok((chat, build_context(&m, response_id, created_at, dropped)))
}

/// Request direction: a Responses request body → the chat-completions request.
pub fn responses_to_chat_request(body: &[u8]) -> Result<ChatRequest, RequestError> {
    build_chat(&parse_object(body)?).map(|(chat, _)| chat)
}

fn parse_object(body: &[u8]) -> Result<Value, RequestError> {
    let message = match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => return Ok(v),
        Ok(_) => "the request body must be a JSON object".to_string(),
        Err(e) => format!("the request body is not valid JSON: {e}"),
    };
    Err(RequestError {
        status: 400,
        code: "invalid_json",
        param: None,
        message,
    })
}

fn err(code: &'static str, param: impl Into<String>, message: impl Into<String>) -> RequestError {
    RequestError::invalid(code, param, message)
}

fn type_err(param: &str, want: &str) -> RequestError {
    err("invalid_type", param, format!("`{param}` must be {want}"))
}

fn missing(param: String) -> RequestError {
    let message = format!("`{param}` is required");
    err("missing_required_parameter", param, message)
}

/// A field that is present and not null.
fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn opt_str<'a>(v: &'a Value, key: &str, param: &str) -> Result<Option<&'a str>, RequestError> {
    match present(v, key) {
        None => Ok(None),
        Some(x) => x
            .as_str()
            .map(Some)
            .ok_or_else(|| type_err(param, "a string")),
    }
}

fn req_str<'a>(v: &'a Value, key: &str, prefix: &str) -> Result<&'a str, RequestError> {
    let param = format!("{prefix}.{key}");
    opt_str(v, key, &param)?.ok_or_else(|| missing(param))
}

fn opt_bool(v: &Value, key: &str) -> Result<Option<bool>, RequestError> {
    match present(v, key) {
        None => Ok(None),
        Some(x) => x
            .as_bool()
            .map(Some)
            .ok_or_else(|| type_err(key, "a boolean")),
    }
}

/// Copies `from` into `out[to]` after checking it is a number (`integer`: an integer).
fn copy_num(
    m: &Value,
    from: &str,
    to: &str,
    integer: bool,
    out: &mut Map<String, Value>,
) -> Result<(), RequestError> {
    if let Some(v) = present(m, from) {
        let (ok, want) = if integer {
            (v.is_i64() || v.is_u64(), "an integer")
        } else {
            (v.is_number(), "a number")
        };
        if !ok {
            return Err(type_err(from, want));
        }
        out.insert(to.into(), v.clone());
    }
    Ok(())
}

fn stateless(code: &'static str, param: &str, what: &str) -> RequestError {
    let message = format!(
        "this gateway is stateless and keeps no {what}; resend the full conversation in `input`"
    );
    err(code, param, message)
}

fn build_chat(m: &Value) -> Result<(ChatRequest, Vec<String>), RequestError> {
    let model = match present(m, "model") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None => {
            return Err(err("missing_model", "model", "`model` is required"))
        }
        Some(_) => return Err(type_err("model", "a string")),
    };
    let stream = opt_bool(m, "stream")?.unwrap_or(false);
    opt_bool(m, "store")?; // accepted either way; nothing is ever stored (responses say `"store": false`)
    if present(m, "previous_response_id").is_some() {
        return Err(stateless(
            "previous_response_not_supported",
            "previous_response_id",
            "previous responses",
        ));
    }
    if present(m, "conversation").is_some() {
        return Err(stateless(
            "conversation_not_supported",
            "conversation",
            "conversations",
        ));
    }
    if opt_bool(m, "background")? == Some(true) {
        return Err(err(
            "background_not_supported",
            "background",
            "background responses are not supported",
        ));
    }

    let mut messages = Vec::new();
    if let Some(s) = opt_str(m, "instructions", "instructions")?.filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": s}));
    }
    match present(m, "input") {
        None => {}
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                map_item(i, item, &mut messages)?;
            }
        }
        Some(_) => return Err(type_err("input", "a string or an array of input items")),
    }
    if messages.is_empty() {
        return Err(err(
            "missing_input",
            "input",
            "`input` must contain at least one message",
        ));
    }

    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    if stream {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let (tools, dropped) = map_tools(m.get("tools"))?;
    let tool_choice = map_tool_choice(m.get("tool_choice"))?;
    let parallel = opt_bool(m, "parallel_tool_calls")?;
    // With no function tool left there is nothing to choose from; many upstreams reject a bare `tool_choice`.
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(tc) = tool_choice {
            out.insert("tool_choice".into(), tc);
        }
        if let Some(p) = parallel {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    copy_num(m, "max_output_tokens", "max_tokens", true, &mut out)?;
    copy_num(m, "temperature", "temperature", false, &mut out)?;
    copy_num(m, "top_p", "top_p", false, &mut out)?;
    copy_num(m, "seed", "seed", true, &mut out)?;
    if let Some(u) = opt_str(m, "user", "user")? {
        out.insert("user".into(), json!(u));
    }
    if let Some(format) = map_text_format(m)? {
        out.insert("response_format".into(), format);
    }
    if let Some(r) = present(m, "reasoning") {
        if !r.is_object() {
            return Err(type_err("reasoning", "an object"));
        }
        // Not every reasoning upstream knows "minimal"; "low" is the nearest value they all accept. Other
        // efforts pass as given. `reasoning.summary` has no chat equivalent and is ignored.
        if let Some(effort) = opt_str(r, "effort", "reasoning.effort")? {
            out.insert(
                "reasoning_effort".into(),
                json!(if effort == "minimal" { "low" } else { effort }),
            );
        }
    }
    // `metadata`, `include`, `prompt_cache_key`, `client_metadata`, `safety_identifier`, `service_tier`,
    // `truncation`, `top_logprobs`, `stream_options` and `store` are accepted and not forwarded.
    let body = serde_json::to_vec(&Value::Object(out)).unwrap_or_default();
    let chat = ChatRequest {
        body,
        model,
        stream,
    };
    Ok((chat, dropped))
}

fn map_item(i: usize, item: &Value, messages: &mut Vec<Value>) -> Result<(), RequestError> {
    let p = format!("input[{i}]");
    if !item.is_object() {
        return Err(type_err(&p, "an object"));
    }
    let kind = match present(item, "type") {
        Some(Value::String(t)) => t.as_str(),
        None if item.get("role").is_some() => "message",
        _ => {
            return Err(err(
                "unsupported_input_item",
                format!("{p}.type"),
                "every input item needs a `type`",
            ))
        }
    };
    match kind {
        "message" => map_message(&p, item, messages),
        "function_call" => {
            let (call_id, name) = (req_str(item, "call_id", &p)?, req_str(item, "name", &p)?);
            let arguments = match present(item, "arguments") {
                None => "{}".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Object(_)) => v.to_string(),
                Some(_) => return Err(type_err(&format!("{p}.arguments"), "a string")),
            };
            let call = json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}});
            // Parallel calls (consecutive function_call items) and a directly preceding assistant text message
            // form one chat assistant message.
            if let Some(last) = messages
                .last_mut()
                .filter(|l| str_of(l, "role") == Some("assistant"))
            {
                if str_of(last, "content") == Some("") {
                    last["content"] = Value::Null;
                }
                match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    Some(calls) => calls.push(call),
                    None => last["tool_calls"] = json!([call]),
                }
            } else {
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
            }
            Ok(())
        }
        "function_call_output" => {
            let call_id = req_str(item, "call_id", &p)?;
            let output = match present(item, "output") {
                None => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(|x| str_of(x, "text"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Some(v) => v.to_string(),
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
            Ok(())
        }
        // Reasoning items Codex passes back (summaries, encrypted content) have no chat equivalent.
        "reasoning" => Ok(()),
        other => Err(err(
            "unsupported_input_item",
            format!("{p}.type"),
            format!("input items of type `{other}` are not supported by this gateway"),
        )),
    }
}

fn map_message(p: &str, item: &Value, messages: &mut Vec<Value>) -> Result<(), RequestError> {
    let role_param = format!("{p}.role");
    let role = match opt_str(item, "role", &role_param)? {
        Some(r @ ("user" | "assistant" | "system")) => r,
        Some("developer") => "system",
        Some(other) => {
            return Err(err(
                "invalid_value",
                role_param,
                format!("unsupported role `{other}`"),
            ))
        }
        None => return Err(missing(role_param)),
    };
    let content = match present(item, "content") {
        None => json!(""),
        Some(Value::String(s)) => json!(s),
        Some(Value::Array(parts)) => map_parts(p, role, parts)?,
        Some(_) => {
            return Err(type_err(
                &format!("{p}.content"),
                "a string or an array of content parts",
            ))
        }
    };
    messages.push(json!({"role": role, "content": content}));
    Ok(())
}

fn unsupported_content(param: String, message: impl Into<String>) -> RequestError {
    err("unsupported_content", param, message)
}

/// Content parts → chat content: text-only content becomes a string, anything with an image a parts array.
fn map_parts(p: &str, role: &str, parts: &[Value]) -> Result<Value, RequestError> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}.content[{j}]");
        let kind = str_of(part, "type").unwrap_or("");
        match kind {
            "input_text" | "output_text" | "text" => out.push(json!(req_str(part, "text", &pp)?)),
            "refusal" => out.push(json!(req_str(part, "refusal", &pp)?)),
            "input_image" if role == "user" => {
                if present(part, "file_id").is_some() {
                    let why =
                        "file ids need stored files, which this stateless gateway does not have; \
                               send the image as a URL or data URL in `image_url`";
                    return Err(unsupported_content(format!("{pp}.file_id"), why));
                }
                let url = match present(part, "image_url") {
                    Some(Value::String(s)) => s.as_str(),
                    Some(u @ Value::Object(_)) => req_str(u, "url", &format!("{pp}.image_url"))?,
                    _ => return Err(missing(format!("{pp}.image_url"))),
                };
                let mut image = json!({"url": url});
                if let Some(d) = present(part, "detail") {
                    image["detail"] = d.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            "input_image" | "input_file" | "input_audio" => {
                let why = format!(
                    "content parts of type `{kind}` are not supported in {role} messages here"
                );
                return Err(unsupported_content(pp, why));
            }
            _ => {
                return Err(unsupported_content(
                    format!("{pp}.type"),
                    format!("unsupported content part `{kind}`"),
                ))
            }
        }
    }
    if out.iter().all(Value::is_string) {
        // Separate parts are separate blocks in user/system messages; assistant output_text parts are pieces of
        // one answer.
        let texts: Vec<&str> = out.iter().filter_map(Value::as_str).collect();
        return Ok(json!(texts.join(if role == "assistant" {
            ""
        } else {
            "\n\n"
        })));
    }
    let parts = out.into_iter().map(|x| {
        if x.is_string() {
            json!({"type": "text", "text": x})
        } else {
            x
        }
    });
    Ok(Value::Array(parts.collect()))
}

/// Function tools → chat tools; namespace tools are flattened; everything else is dropped and named.
///
/// A request with only hosted tools keeps working too: they are all dropped and the model answers without them
/// (refusing would break clients such as Codex, which always sends `web_search`). Only a `tool_choice` that forces
/// a hosted tool is refused (see [`map_tool_choice`]).
fn map_tools(v: Option<&Value>) -> Result<(Vec<Value>, Vec<String>), RequestError> {
    let (mut chat, mut dropped) = (Vec::new(), Vec::new());
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            for (k, t) in tools.iter().enumerate() {
                map_tool(&format!("tools[{k}]"), t, &mut chat, &mut dropped)?;
            }
        }
        Some(_) => return Err(type_err("tools", "an array")),
    }
    Ok((chat, dropped))
}

fn map_tool(
    p: &str,
    t: &Value,
    chat: &mut Vec<Value>,
    dropped: &mut Vec<String>,
) -> Result<(), RequestError> {
    if !t.is_object() {
        return Err(type_err(p, "an object"));
    }
    let kind = req_str(t, "type", p)?;
    match (kind, t.get("tools").and_then(Value::as_array)) {
        ("function", _) => {
            let mut f = json!({"name": req_str(t, "name", p)?});
            for key in ["description", "parameters"] {
                if let Some(v) = present(t, key) {
                    f[key] = v.clone();
                }
            }
            if let Some(s) = t.get("strict").filter(|s| s.is_boolean()) {
                f["strict"] = s.clone();
            }
            chat.push(json!({"type": "function", "function": f}));
        }
        ("namespace", Some(nested)) => {
            for (n, inner) in nested.iter().enumerate() {
                map_tool(&format!("{p}.tools[{n}]"), inner, chat, dropped)?;
            }
        }
        // Hosted and custom tools: web_search, file_search, code_interpreter, mcp, custom, local_shell, ….
        _ => dropped.push(str_of(t, "name").unwrap_or(kind).to_string()),
    }
    Ok(())
}

fn map_tool_choice(v: Option<&Value>) -> Result<Option<Value>, RequestError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if let Some(s) = v.as_str() {
        return match s {
            "auto" | "none" | "required" => Ok(Some(json!(s))),
            _ => Err(err(
                "invalid_value",
                "tool_choice",
                format!("unsupported tool_choice `{s}`"),
            )),
        };
    }
    match v.as_object().map(|_| str_of(v, "type").unwrap_or("")) {
        None => Err(type_err("tool_choice", "a string or an object")),
        Some("function") => {
            let name = str_of(v, "name").or_else(|| v.get("function").and_then(|f| str_of(f, "name")));
            let name = name.ok_or_else(|| missing("tool_choice.name".into()))?;
            Ok(Some(json!({"type": "function", "function": {"name": name}})))
        }
        // The allowed-tools restriction has no chat equivalent; its mode is kept.
        Some("allowed_tools") => Ok(Some(json!(str_of(v, "mode").unwrap_or("auto")))),
        Some(other) => Err(err(
            "unsupported_tool",
            "tool_choice",
            format!("`tool_choice` requires the hosted tool `{other}`, which this gateway does not provide"),
        )),
    }
}

fn map_text_format(m: &Value) -> Result<Option<Value>, RequestError> {
    let Some(text) = present(m, "text") else {
        return Ok(None);
    };
    if !text.is_object() {
        return Err(type_err("text", "an object"));
    }
    let Some(f) = present(text, "format") else {
        return Ok(None);
    };
    if !f.is_object() {
        return Err(type_err("text.format", "an object"));
    }
    match str_of(f, "type").unwrap_or("text") {
        "text" => Ok(None),
        "json_object" => Ok(Some(json!({"type": "json_object"}))),
        "json_schema" => {
            let mut js =
                json!({"name": opt_str(f, "name", "text.format.name")?.unwrap_or("response")});
            for key in ["schema", "strict", "description"] {
                if let Some(v) = present(f, key) {
                    js[key] = v.clone();
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": js})))
        }
        other => Err(err(
            "invalid_value",
            "text.format.type",
            format!("unsupported text format `{other}`"),
        )),
    }
}

fn build_context(
    m: &Value,
    response_id: String,
    created_at: u64,
    dropped_tools: Vec<String>,
) -> ResponseContext {
    let kept = |key: &str, ok: fn(&Value) -> bool| m.get(key).filter(|v| ok(v)).cloned();
    let mut text = kept("text", Value::is_object).unwrap_or_else(|| json!({}));
    if present(&text, "format").is_none() {
        text["format"] = json!({"type": "text"});
    }
    let echo = json!({
        "instructions": kept("instructions", Value::is_string),
        "tools": kept("tools", Value::is_array).unwrap_or_else(|| json!([])),
        "tool_choice": present(m, "tool_choice").cloned().unwrap_or_else(|| json!("auto")),
        "parallel_tool_calls": m.get("parallel_tool_calls").and_then(Value::as_bool).unwrap_or(true),
        "text": text,
        "reasoning": {"effort": m.get("reasoning").and_then(|r| present(r, "effort")), "summary": null},
        "max_output_tokens": present(m, "max_output_tokens"),
        "temperature": present(m, "temperature"),
        "top_p": present(m, "top_p"),
        "metadata": kept("metadata", Value::is_object).unwrap_or_else(|| json!({})),
        "user": kept("user", Value::is_string),
        "store": false,
        "truncation": "disabled",
        "previous_response_id": null,
    });
    ResponseContext {
        response_id,
        model: str_of(m, "model").unwrap_or("").to_string(),
        created_at,
        stream: m.get("stream").and_then(Value::as_bool).unwrap_or(false),
        dropped_tools,
        echo: match echo {
            Value::Object(o) => o,
            _ => Map::new(),
        },
    }
}

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
    let body = json!({"error": {"message": message, "type": kind, "code": code, "param": param}});
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Item ids derive from the response id and the output index: `msg_<suffix>_0`, `fc_<suffix>_1`, ….
fn item_id(ctx: &ResponseContext, prefix: &str, index: usize) -> String {
    let suffix = ctx
        .response_id
        .strip_prefix("resp_")
        .unwrap_or(&ctx.response_id);
    format!("{prefix}_{suffix}_{index}")
}

/// A Responses `response` object. `end` is (status, incomplete_details, error).
fn response_object(
    ctx: &ResponseContext,
    end: (&str, Value, Value),
    model: &str,
    output: &[Value],
    usage: Option<&Value>,
) -> Value {
    let mut o = ctx.echo.clone();
    let (status, incomplete, error) = end;
    let fields = json!({"id": ctx.response_id, "object": "response", "created_at": ctx.created_at, "status": status,
        "model": model, "output": output, "usage": usage_json(usage), "error": error, "incomplete_details": incomplete});
    if let Value::Object(f) = fields {
        o.extend(f);
    }
    Value::Object(o)
}

/// Chat usage → Responses usage (`null` when the upstream reported none).
fn usage_json(u: Option<&Value>) -> Value {
    let Some(u) = u.filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let num = |path: &str| u.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (num("/prompt_tokens"), num("/completion_tokens"));
    let total = u
        .get("total_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(input + output);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": num("/prompt_tokens_details/cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": num("/completion_tokens_details/reasoning_tokens")},
        "total_tokens": total,
    })
}

/// (status, incomplete_details, error) for a chat finish_reason.
fn end_state(finish_reason: Option<&str>) -> (&'static str, Value, Value) {
    match finish_reason {
        Some("length") => (
            "incomplete",
            json!({"reason": "max_output_tokens"}),
            Value::Null,
        ),
        Some("content_filter") => (
            "incomplete",
            json!({"reason": "content_filter"}),
            Value::Null,
        ),
        _ => ("completed", Value::Null, Value::Null),
    }
}

/// Splits a leading `<think>…</think>` block off `content`: (reasoning, rest). An unclosed block is all reasoning.
fn split_think(content: &str) -> (String, String) {
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

/// A string, or the concatenated `text` of an array of parts.
fn text_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| str_of(p, "text")).collect(),
        _ => String::new(),
    }
}

/// Tool-call arguments: a string as is, anything else (an object some upstreams send) serialized.
fn args_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]})
}

fn message_item(id: &str, status: &str, content: &[Value]) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn function_call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status})
}

/// Non-streamed answer: a chat.completion body → a Responses `response` object.
pub fn chat_to_responses_response(chat: &[u8], ctx: &ResponseContext) -> Result<Vec<u8>, String> {
    let c: Value = serde_json::from_slice(chat)
        .map_err(|e| format!("the upstream answer is not valid JSON: {e}"))?;
    if !c.is_object() {
        return Err("the upstream answer is not a JSON object".into());
    }
    if let Some(e) = present(&c, "error") {
        return Err(format!("the upstream answered with an error: {e}"));
    }
    let choice = c.pointer("/choices/0").unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut reasoning = text_of(
        msg.get("reasoning_content")
            .or_else(|| msg.get("reasoning")),
    );
    let (think, content) = split_think(&text_of(msg.get("content")));
    if !think.is_empty() {
        reasoning = if reasoning.is_empty() {
            think
        } else {
            format!("{reasoning}\n\n{think}")
        };
    }
    let mut output = Vec::new();
    if !reasoning.is_empty() {
        output.push(reasoning_item(&item_id(ctx, "rs", 0), &reasoning));
    }
    let mut parts = Vec::new();
    if !content.is_empty() {
        parts.push(json!({"type": "output_text", "text": content, "annotations": []}));
    }
    let refusal = text_of(msg.get("refusal"));
    if !refusal.is_empty() {
        parts.push(json!({"type": "refusal", "refusal": refusal}));
    }
    if !parts.is_empty() {
        output.push(message_item(
            &item_id(ctx, "msg", output.len()),
            "completed",
            &parts,
        ));
    }
    for tc in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let index = output.len();
        let call_id = str_of(tc, "id").map_or_else(|| item_id(ctx, "call", index), str::to_string);
        let f = tc.get("function").unwrap_or(&Value::Null);
        let (name, arguments) = (str_of(f, "name").unwrap_or(""), args_of(f.get("arguments")));
        output.push(function_call_item(
            &item_id(ctx, "fc", index),
            &call_id,
            name,
            &arguments,
            "completed",
        ));
    }
    let end = end_state(str_of(choice, "finish_reason"));
    let model = str_of(&c, "model")
        .filter(|m| !m.is_empty())
        .unwrap_or(&ctx.model);
    serde_json::to_vec(&response_object(ctx, end, model, &output, c.get("usage")))
        .map_err(|e| e.to_string())
}

// ---- streaming --------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

/// An output item's place: output_index and id.
struct Place {
    index: usize,
    id: String,
}

/// An open message: its finished content parts and the one being streamed.
struct Msg {
    parts: Vec<Value>,
    cur: Option<PartKind>,
    buf: String,
}

/// The open message or reasoning item (at most one at a time).
enum Open {
    Message(Place, Msg),
    Reasoning(Place, String),
}

/// An open function_call item, keyed by the chat tool-call index. `added` is set once
/// `response.output_item.added` went out — which waits for the name, since some upstreams send it after the id.
struct ToolSlot {
    chat_index: u64,
    call_id: Option<String>,
    name: String,
    args: String,
    added: Option<Place>,
}

/// Where the content stream stands with respect to a leading `<think>` block.
enum Think {
    /// Start of content: buffered until it is clear whether it opens with `<think>`.
    Detect(String),
    /// Inside the block; holds a possible partial `</think>` held back from the reasoning.
    Inside(String),
    /// Just after `</think>`: leading whitespace is dropped.
    After,
    Off,
}

/// Numbers and writes SSE events; `kind` is the event type without its `response.` prefix.
struct Sink {
    seq: u64,
}

impl Sink {
    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, fields: Value) {
        let mut m = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("type".into(), json!(format!("response.{kind}")));
        m.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        out.extend_from_slice(format!("event: response.{kind}\ndata: ").as_bytes());
        let _ = serde_json::to_writer(&mut *out, &Value::Object(m));
        out.extend_from_slice(b"\n\n");
    }

    /// Closes the message's current content part, if any: `*.done` then `response.content_part.done`.
    fn close_part(&mut self, out: &mut Vec<u8>, at: &Place, msg: &mut Msg) {
        let Some(kind) = msg.cur.take() else {
            return;
        };
        let text = std::mem::take(&mut msg.buf);
        let mut fields =
            json!({"item_id": at.id, "output_index": at.index, "content_index": msg.parts.len()});
        let part = if kind == PartKind::Text {
            fields["text"] = json!(text);
            fields["logprobs"] = json!([]);
            self.emit(out, "output_text.done", fields.clone());
            json!({"type": "output_text", "text": text, "annotations": []})
        } else {
            fields["refusal"] = json!(text);
            self.emit(out, "refusal.done", fields.clone());
            json!({"type": "refusal", "refusal": text})
        };
        fields["part"] = part.clone();
        self.emit(out, "content_part.done", fields);
        msg.parts.push(part);
    }
}

/// Turns the chat-completions chunk stream into Responses SSE events.
///
/// Message and reasoning items are open one at a time; starting any other item closes them. Function calls stay
/// open together while only tool-call deltas arrive (some upstreams interleave parallel calls by index), and close
/// in output order when other output starts or the stream ends. Deltas for a tool-call index (and id) that was
/// already closed are ignored.
pub struct ResponsesStreamEncoder {
    ctx: ResponseContext,
    sink: Sink,
    started: bool,
    ended: bool,
    /// Items by output_index: the in-progress snapshot until the item is done, then the finished item.
    output: Vec<Value>,
    open: Option<Open>,
    tools: Vec<ToolSlot>,
    /// (chat index, call id) of the function calls already closed.
    closed_tools: Vec<(u64, Option<String>)>,
    next_anon_index: u64,
    think: Think,
    finish_reason: Option<String>,
    usage: Option<Value>,
    model: Option<String>,
    produced: bool,
}

impl ResponsesStreamEncoder {
    pub fn new(ctx: ResponseContext) -> Self {
        Self {
            ctx,
            sink: Sink { seq: 0 },
            started: false,
            ended: false,
            output: Vec::new(),
            open: None,
            tools: Vec::new(),
            closed_tools: Vec::new(),
            next_anon_index: 1 << 32,
            think: Think::Detect(String::new()),
            finish_reason: None,
            usage: None,
            model: None,
            produced: false,
        }
    }

    /// Emits `response.created` and `response.in_progress` (once).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let resp =
                json!({"response": self.snapshot(("in_progress", Value::Null, Value::Null))});
            self.sink.emit(out, "created", resp.clone());
            self.sink.emit(out, "in_progress", resp);
        }
    }

    /// One chat SSE payload: a `chat.completion.chunk`, `[DONE]`, or the gateway's terminal `{"error":…}`.
    pub fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        if event.trim_ascii() == b"[DONE]" {
            return self.finalize(true, out);
        }
        let Ok(c) = serde_json::from_slice::<Value>(event) else {
            return;
        };
        if let Some(e) = present(&c, "error") {
            return self.fail(e, out);
        }
        if self.model.is_none() {
            self.model = str_of(&c, "model")
                .filter(|m| !m.is_empty())
                .map(Into::into);
        }
        if let Some(u) = c.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = c.pointer("/choices/0") else {
            return;
        };
        if let Some(d) = choice.get("delta") {
            let reasoning = str_of(d, "reasoning_content").filter(|s| !s.is_empty());
            if let Some(r) = reasoning.or_else(|| str_of(d, "reasoning")) {
                self.reasoning(r, out);
            }
            if let Some(s) = str_of(d, "content") {
                self.content(s, out);
            }
            if let Some(s) = str_of(d, "refusal") {
                self.message_delta(PartKind::Refusal, s, out);
            }
            if let Some(calls) = d.get("tool_calls").and_then(Value::as_array) {
                calls.iter().for_each(|tc| self.tool_delta(tc, out));
            }
        }
        if let Some(f) = str_of(choice, "finish_reason") {
            self.finish_reason = Some(f.to_string());
        }
    }

    /// The upstream ended: closes open items and emits the terminal event, unless one went out already.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.finalize(false, out);
    }

    pub fn usage(&self) -> Option<wire::Usage> {
        let u = self.usage.as_ref()?;
        let num = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        let (prompt_tokens, completion_tokens) = (num("prompt_tokens"), num("completion_tokens"));
        Some(wire::Usage {
            prompt_tokens,
            completion_tokens,
        })
    }

    fn snapshot(&self, end: (&str, Value, Value)) -> Value {
        let model = self.model.as_deref().unwrap_or(&self.ctx.model);
        response_object(&self.ctx, end, model, &self.output, self.usage.as_ref())
    }

    fn finalize(&mut self, saw_done: bool, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.flush_detect(out);
        if let Think::Inside(held) = std::mem::replace(&mut self.think, Think::Off) {
            self.reasoning(&held, out);
        }
        self.close_all(out);
        if self.finish_reason.is_none() && !saw_done && !self.produced {
            // A stream that ended without [DONE], finish_reason or a single piece of output is no answer.
            let e = json!({"code": "server_error", "message": "the upstream stream ended without a response"});
            return self.fail(&e, out);
        }
        let end = end_state(self.finish_reason.as_deref());
        let kind = if end.0 == "completed" {
            "completed"
        } else {
            "incomplete"
        };
        let resp = json!({"response": self.snapshot(end)});
        self.sink.emit(out, kind, resp);
        self.ended = true;
    }

    /// Terminal failure: open items stay as they are; `response.failed` carries the error.
    fn fail(&mut self, e: &Value, out: &mut Vec<u8>) {
        let code = str_of(e, "code").or_else(|| str_of(e, "type"));
        let message = str_of(e, "message").map_or_else(|| e.to_string(), Into::into);
        let error = json!({"code": code.unwrap_or("server_error"), "message": message});
        let resp = json!({"response": self.snapshot(("failed", Value::Null, error))});
        self.sink.emit(out, "failed", resp);
        self.ended = true;
    }

    /// Ends `<think>` detection: buffered content goes out as text, unless it is only whitespace.
    fn flush_detect(&mut self, out: &mut Vec<u8>) {
        if let Think::Detect(buf) = &mut self.think {
            let buf = std::mem::take(buf);
            self.think = Think::Off;
            if !buf.trim().is_empty() {
                self.message_delta(PartKind::Text, &buf, out);
            }
        }
    }

    /// Content, minding a leading `<think>` block that may be split across chunks.
    fn content(&mut self, s: &str, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.think, Think::Off) {
            Think::Off => self.message_delta(PartKind::Text, s, out),
            Think::Detect(mut buf) => {
                buf.push_str(s);
                let t = buf.trim_start();
                if let Some(rest) = t.strip_prefix(THINK_OPEN) {
                    let rest = rest.to_string();
                    self.think = Think::Inside(String::new());
                    self.content(&rest, out);
                } else if THINK_OPEN.starts_with(t) {
                    self.think = Think::Detect(buf);
                } else {
                    self.message_delta(PartKind::Text, &buf, out);
                }
            }
            Think::Inside(mut buf) => {
                buf.push_str(s);
                if let Some(end) = buf.find(THINK_CLOSE) {
                    self.reasoning(&buf[..end], out);
                    self.think = Think::After;
                    self.content(&buf[end + THINK_CLOSE.len()..], out);
                } else {
                    // Hold back a tail that may be the start of `</think>`.
                    let tag = |k: &usize| buf.ends_with(&THINK_CLOSE[..*k]);
                    let split = buf.len() - (1..THINK_CLOSE.len()).rev().find(tag).unwrap_or(0);
                    self.reasoning(&buf[..split], out);
                    self.think = Think::Inside(buf[split..].to_string());
                }
            }
            Think::After => match s.trim_start() {
                "" => self.think = Think::After,
                t => self.message_delta(PartKind::Text, t, out),
            },
        }
    }

    /// Appends an in-progress item to the output and announces it.
    fn add_item(
        &mut self,
        out: &mut Vec<u8>,
        prefix: &str,
        item: impl FnOnce(&str) -> Value,
    ) -> Place {
        let index = self.output.len();
        let id = item_id(&self.ctx, prefix, index);
        let item = item(&id);
        self.sink.emit(
            out,
            "output_item.added",
            json!({"output_index": index, "item": item}),
        );
        self.output.push(item);
        self.produced = true;
        Place { index, id }
    }

    fn reasoning(&mut self, s: &str, out: &mut Vec<u8>) {
        if s.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Open::Reasoning(..))) {
            self.close_all(out);
            let at = self.add_item(
                out,
                "rs",
                |id| json!({"type": "reasoning", "id": id, "summary": []}),
            );
            let part = json!({"type": "summary_text", "text": ""});
            let fields = json!({"item_id": at.id, "output_index": at.index, "summary_index": 0, "part": part});
            self.sink.emit(out, "reasoning_summary_part.added", fields);
            self.open = Some(Open::Reasoning(at, String::new()));
        }
        if let Some(Open::Reasoning(at, text)) = &mut self.open {
            text.push_str(s);
            let fields =
                json!({"item_id": at.id, "output_index": at.index, "summary_index": 0, "delta": s});
            self.sink.emit(out, "reasoning_summary_text.delta", fields);
        }
    }

    fn message_delta(&mut self, kind: PartKind, s: &str, out: &mut Vec<u8>) {
        if s.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Open::Message(..))) {
            self.close_all(out);
            let at = self.add_item(out, "msg", |id| message_item(id, "in_progress", &[]));
            let msg = Msg {
                parts: Vec::new(),
                cur: None,
                buf: String::new(),
            };
            self.open = Some(Open::Message(at, msg));
        }
        let Some(Open::Message(at, msg)) = &mut self.open else {
            return;
        };
        let mut fields = json!({"item_id": at.id, "output_index": at.index});
        if msg.cur != Some(kind) {
            self.sink.close_part(out, at, msg);
            fields["content_index"] = json!(msg.parts.len());
            fields["part"] = match kind {
                PartKind::Text => json!({"type": "output_text", "text": "", "annotations": []}),
                PartKind::Refusal => json!({"type": "refusal", "refusal": ""}),
            };
            self.sink.emit(out, "content_part.added", fields.clone());
            msg.cur = Some(kind);
        }
        msg.buf.push_str(s);
        let mut fields =
            json!({"item_id": at.id, "output_index": at.index, "content_index": msg.parts.len()});
        fields["delta"] = json!(s);
        if kind == PartKind::Text {
            fields["logprobs"] = json!([]);
            self.sink.emit(out, "output_text.delta", fields);
        } else {
            self.sink.emit(out, "refusal.delta", fields);
        }
    }

    fn tool_delta(&mut self, tc: &Value, out: &mut Vec<u8>) {
        let id = str_of(tc, "id").filter(|s| !s.is_empty());
        let f = tc.get("function").unwrap_or(&Value::Null);
        let name = str_of(f, "name").filter(|s| !s.is_empty());
        let args = args_of(f.get("arguments"));
        let chat_index = match (tc.get("index").and_then(Value::as_u64), id) {
            (Some(i), _) => i,
            (None, Some(id)) if !self.tools.iter().any(|t| t.call_id.as_deref() == Some(id)) => {
                self.next_anon_index += 1;
                self.next_anon_index
            }
            (None, _) => self.tools.last().map_or(0, |t| t.chat_index),
        };
        // A different id on a known index is a new call (some upstreams send every call with index 0).
        let same_call =
            |i: u64, c: Option<&str>| i == chat_index && (id.is_none() || c.is_none() || c == id);
        let pos = match self
            .tools
            .iter()
            .rposition(|t| same_call(t.chat_index, t.call_id.as_deref()))
        {
            Some(pos) => pos,
            None => {
                let late = self
                    .closed_tools
                    .iter()
                    .any(|(i, c)| same_call(*i, c.as_deref()));
                if late || (id.is_none() && name.is_none() && args.is_empty()) {
                    return;
                }
                self.flush_detect(out);
                self.close_open(out);
                let (call_id, name, args) = (None, String::new(), String::new());
                self.tools.push(ToolSlot {
                    chat_index,
                    call_id,
                    name,
                    args,
                    added: None,
                });
                self.tools.len() - 1
            }
        };
        let Some(slot) = self.tools.get_mut(pos) else {
            return;
        };
        if slot.call_id.is_none() {
            slot.call_id = id.map(Into::into);
        }
        if let (true, Some(n)) = (slot.name.is_empty(), name) {
            slot.name = n.to_string();
        }
        // Some upstreams repeat the complete arguments in a final chunk: a delta equal to everything accumulated so
        // far, when that already is a complete JSON value, is such a repeat and is skipped.
        let complete = || serde_json::from_str::<serde::de::IgnoredAny>(&slot.args).is_ok();
        if !slot.args.is_empty() && args == slot.args && complete() {
            return;
        }
        slot.args.push_str(&args);
        match &slot.added {
            None if !slot.name.is_empty() => self.add_tool(pos, out),
            Some(at) if !args.is_empty() => {
                let fields = json!({"item_id": at.id, "output_index": at.index, "delta": args});
                self.sink.emit(out, "function_call_arguments.delta", fields);
            }
            _ => {}
        }
    }

    /// Emits `output_item.added` for a tool slot, followed by the arguments buffered until then.
    fn add_tool(&mut self, pos: usize, out: &mut Vec<u8>) {
        let Some(slot) = self.tools.get(pos) else {
            return;
        };
        let call = slot
            .call_id
            .clone()
            .unwrap_or_else(|| item_id(&self.ctx, "call", self.output.len()));
        let (name, args) = (slot.name.clone(), slot.args.clone());
        let at = self.add_item(out, "fc", |id| {
            function_call_item(id, &call, &name, "", "in_progress")
        });
        if !args.is_empty() {
            let fields = json!({"item_id": at.id, "output_index": at.index, "delta": args});
            self.sink.emit(out, "function_call_arguments.delta", fields);
        }
        if let Some(slot) = self.tools.get_mut(pos) {
            (slot.call_id, slot.added) = (Some(call), Some(at));
        }
    }

    fn close_all(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        for pos in 0..self.tools.len() {
            let unannounced =
                |s: &ToolSlot| s.added.is_none() && !(s.name.is_empty() && s.args.is_empty());
            if self.tools.get(pos).is_some_and(unannounced) {
                self.add_tool(pos, out);
            }
        }
        for slot in std::mem::take(&mut self.tools) {
            self.closed_tools
                .push((slot.chat_index, slot.call_id.clone()));
            let Some(at) = slot.added else {
                continue;
            };
            let (args, name) = (&slot.args, &slot.name);
            let fields = json!({"item_id": at.id, "output_index": at.index, "arguments": args, "name": name});
            self.sink.emit(out, "function_call_arguments.done", fields);
            let call_id = slot.call_id.unwrap_or_default();
            self.item_done(
                at.index,
                function_call_item(&at.id, &call_id, name, args, "completed"),
                out,
            );
        }
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            None => {}
            Some(Open::Message(at, mut msg)) => {
                self.sink.close_part(out, &at, &mut msg);
                self.item_done(at.index, message_item(&at.id, "completed", &msg.parts), out);
            }
            Some(Open::Reasoning(at, text)) => {
                let mut fields =
                    json!({"item_id": at.id, "output_index": at.index, "summary_index": 0});
                fields["text"] = json!(text);
                self.sink
                    .emit(out, "reasoning_summary_text.done", fields.clone());
                fields["part"] = json!({"type": "summary_text", "text": text});
                if let Some(f) = fields.as_object_mut() {
                    f.remove("text");
                }
                self.sink.emit(out, "reasoning_summary_part.done", fields);
                self.item_done(at.index, reasoning_item(&at.id, &text), out);
            }
        }
    }

    fn item_done(&mut self, index: usize, item: Value, out: &mut Vec<u8>) {
        self.sink.emit(
            out,
            "output_item.done",
            json!({"output_index": index, "item": item}),
        );
        if let Some(slot) = self.output.get_mut(index) {
            *slot = item;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_of(req: &Value) -> ResponseContext {
        ResponseContext::from_request(req.to_string().as_bytes(), "resp_abc".into(), 1700)
    }

    fn chat_of(req: &Value) -> (Value, ResponseContext) {
        let (chat, ctx) = parse(req.to_string().as_bytes(), "resp_abc".into(), 1700).unwrap();
        (serde_json::from_slice(&chat.body).unwrap(), ctx)
    }

    fn err_of(req: &[u8]) -> RequestError {
        responses_to_chat_request(req).unwrap_err()
    }

    /// Parses emitted SSE, checking `event:` matches `type` and sequence numbers run 0, 1, 2, ….
    fn events(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n"));
        let evs: Vec<Value> = text
            .split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|block| {
                let (ev, data) = block.split_once('\n').unwrap();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(ev.strip_prefix("event: ").unwrap(), v["type"]);
                v
            })
            .collect();
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e["sequence_number"], json!(i));
        }
        evs
    }

    fn stream(chunks: &[&str]) -> (Vec<Value>, ResponsesStreamEncoder) {
        let ctx = ctx_of(&json!({"model": "m", "stream": true, "input": "hi"}));
        let mut enc = ResponsesStreamEncoder::new(ctx);
        let mut out = Vec::new();
        enc.start(&mut out);
        for c in chunks {
            enc.push(c.as_bytes(), &mut out);
        }
        enc.finish(&mut out);
        let again = out.len();
        enc.finish(&mut out);
        assert_eq!(out.len(), again, "finish is idempotent");
        (events(&out), enc)
    }

    /// The event types, without their `response.` prefix, space-separated.
    fn types(evs: &[Value]) -> String {
        let short = |e: &Value| {
            e["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("response.")
                .to_string()
        };
        evs.iter().map(short).collect::<Vec<_>>().join(" ")
    }

    fn delta(d: Value) -> String {
        json!({"id": "c1", "model": "up-model", "choices": [{"index": 0, "delta": d, "finish_reason": null}]}).to_string()
    }

    fn finish_chunk(reason: &str) -> String {
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
    }

    const USAGE: &str =
        r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;

    #[test]
    fn codex_request_maps_to_chat() {
        let req = json!({
            "model": "gpt-5", "instructions": "You are Codex.", "stream": true, "store": false,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k1",
            "input": [
                {"type": "message", "role": "developer", "content": [
                    {"type": "input_text", "text": "perm A"}, {"type": "input_text", "text": "perm B"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": "x"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
                {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": "{\"cmd\":\"pwd\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "/work"}]},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [
                {"type": "function", "name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false},
                {"type": "namespace", "name": "mcp__fs", "tools": [
                    {"type": "function", "name": "read_file", "parameters": {"type": "object"}},
                    {"type": "custom", "name": "apply_patch"}]},
                {"type": "web_search"}
            ],
            "tool_choice": "auto", "parallel_tool_calls": true, "reasoning": {"effort": "minimal", "summary": "auto"}
        });
        let (chat, ctx) = chat_of(&req);
        let call = |id: &str, cmd: &str| {
            json!({"id": id, "type": "function",
            "function": {"name": "shell", "arguments": format!("{{\"cmd\":\"{cmd}\"}}")}})
        };
        assert_eq!(
            chat,
            json!({
                "model": "gpt-5",
                "messages": [
                    {"role": "system", "content": "You are Codex."},
                    {"role": "system", "content": "perm A\n\nperm B"},
                    {"role": "user", "content": "list files"},
                    {"role": "assistant", "content": "Let me look.", "tool_calls": [call("call_1", "ls"), call("call_2", "pwd")]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                    {"role": "tool", "tool_call_id": "call_2", "content": "/work"},
                    {"role": "user", "content": "thanks"}
                ],
                "stream": true, "stream_options": {"include_usage": true},
                "tools": [
                    {"type": "function", "function": {"name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false}},
                    {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
                ],
                "tool_choice": "auto", "parallel_tool_calls": true, "reasoning_effort": "low"
            })
        );
        assert_eq!(ctx.dropped_tools, ["apply_patch", "web_search"]);
        assert!(ctx.stream);
        assert_eq!(ctx.model, "gpt-5");
        assert_eq!(ctx, ctx_of(&req), "from_request agrees with parse");
        let plain = responses_to_chat_request(req.to_string().as_bytes()).unwrap();
        assert!(plain.stream);
        assert_eq!(plain.model, "gpt-5");
    }

    #[test]
    fn params_formats_images_and_tool_choice_map() {
        let (chat, _) = chat_of(&json!({
            "model": "m", "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "low"}]}],
            "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 4, "user": "u1", "metadata": {"a": "b"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
            "tools": [{"type": "function", "name": "f", "parameters": {}}],
            "tool_choice": {"type": "function", "name": "f"}
        }));
        assert_eq!(
            chat,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}}]}],
                "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 4, "user": "u1",
                "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}}
            })
        );
        // Only hosted tools: all dropped, and no dangling tool_choice reaches the upstream.
        let (chat, ctx) = chat_of(
            &json!({"model": "m", "input": "hi", "tools": [{"type": "web_search_preview"}],
            "tool_choice": "auto", "text": {"format": {"type": "json_object"}}}),
        );
        assert_eq!(
            chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"}})
        );
        assert_eq!(ctx.dropped_tools, ["web_search_preview"]);
    }

    #[test]
    fn refused_requests_name_the_field() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (b"{not json", "invalid_json", None),
            (b"[1,2]", "invalid_json", None),
            (br#"{"input":"hi"}"#, "missing_model", Some("model")),
            (br#"{"model":"m","input":"hi","previous_response_id":"resp_1"}"#, "previous_response_not_supported", Some("previous_response_id")),
            (br#"{"model":"m","input":"hi","conversation":"c"}"#, "conversation_not_supported", Some("conversation")),
            (br#"{"model":"m","input":"hi","background":true}"#, "background_not_supported", Some("background")),
            (br#"{"model":"m","input":42}"#, "invalid_type", Some("input")),
            (br#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#, "unsupported_input_item", Some("input[0].type")),
            (br#"{"model":"m","input":"hi","tools":[{"type":"function","name":"f"},{"type":"web_search"}],"tool_choice":{"type":"web_search"}}"#, "unsupported_tool", Some("tool_choice")),
            (br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_data":"x"}]}]}"#, "unsupported_content", Some("input[0].content[0]")),
            (br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#, "unsupported_content", Some("input[0].content[0].file_id")),
            (br#"{"model":"m","input":[{"role":"tool","content":"x"}]}"#, "invalid_value", Some("input[0].role")),
            (br#"{"model":"m","input":[{"type":"function_call","name":"f"}]}"#, "missing_required_parameter", Some("input[0].call_id")),
            (br#"{"model":"m","input":"hi","temperature":"hot"}"#, "invalid_type", Some("temperature")),
            (br#"{"model":"m","input":[]}"#, "missing_input", Some("input")),
        ];
        for (body, code, param) in cases {
            let e = err_of(body);
            assert_eq!(
                (e.status, e.code, e.param.as_deref()),
                (400, *code, *param),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!e.message.is_empty());
        }
        assert!(
            err_of(br#"{"model":"m","input":"hi","previous_response_id":"r"}"#)
                .message
                .contains("stateless")
        );
        // store:true, null previous_response_id and unknown extras are accepted.
        assert!(responses_to_chat_request(br#"{"model":"m","input":"hi","store":true,"previous_response_id":null,"truncation":"auto","service_tier":"auto"}"#).is_ok());
    }

    #[test]
    fn error_body_has_openai_shape() {
        let v: Value = serde_json::from_slice(&error_body(
            400,
            "invalid_request_error",
            "missing_model",
            "no model",
            Some("model"),
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "no model", "type": "invalid_request_error", "code": "missing_model", "param": "model"}})
        );
    }

    fn answer(chat: Value, req: Value) -> Value {
        serde_json::from_slice(
            &chat_to_responses_response(chat.to_string().as_bytes(), &ctx_of(&req)).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn non_stream_text_answer() {
        let r = answer(
            json!({"id": "c", "model": "up", "choices": [{"message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 3}}}),
            json!({"model": "m", "input": "hi", "instructions": "be nice", "temperature": 0.5, "store": true}),
        );
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(r["object"], "response");
        assert_eq!(r["created_at"], 1700);
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], "up");
        assert_eq!(r["incomplete_details"], Value::Null);
        assert_eq!(
            r["output"],
            json!([{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}])
        );
        assert_eq!(
            r["usage"],
            json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7})
        );
        assert_eq!(
            (&r["instructions"], &r["temperature"], &r["store"]),
            (&json!("be nice"), &json!(0.5), &json!(false))
        );
        assert_eq!(r["text"], json!({"format": {"type": "text"}}));
        assert_eq!(r["tool_choice"], "auto");
        assert_eq!(r["previous_response_id"], Value::Null);
        assert!(chat_to_responses_response(b"oops", &ctx_of(&json!({}))).is_err());
    }

    #[test]
    fn non_stream_tool_calls_and_reasoning() {
        let r = answer(
            json!({"choices": [{"message": {"content": null, "reasoning_content": "need a tool", "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":\"ls\"}"}},
                {"id": "call_10", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"model": "m", "input": "hi"}),
        );
        assert_eq!(r["model"], "m");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["usage"], Value::Null);
        assert_eq!(
            r["output"],
            json!([
                {"type": "reasoning", "id": "rs_abc_0", "summary": [{"type": "summary_text", "text": "need a tool"}]},
                {"type": "function_call", "id": "fc_abc_1", "call_id": "call_9", "name": "shell", "arguments": "{\"cmd\":\"ls\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_abc_2", "call_id": "call_10", "name": "read", "arguments": "{}", "status": "completed"}
            ])
        );
    }

    #[test]
    fn non_stream_think_tags_and_length() {
        let r = answer(
            json!({"choices": [{"message": {"content": "\n<think>\nhmm\n</think>\n\nThe answer"}, "finish_reason": "length"}]}),
            json!({"model": "m", "input": "hi", "max_output_tokens": 9}),
        );
        assert_eq!(r["status"], "incomplete");
        assert_eq!(
            r["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(r["max_output_tokens"], 9);
        assert_eq!(r["output"][0]["summary"][0]["text"], "hmm");
        assert_eq!(r["output"][1]["content"][0]["text"], "The answer");
        let r = answer(
            json!({"choices": [{"message": {"content": "", "refusal": "no"}, "finish_reason": "content_filter"}]}),
            json!({"model": "m"}),
        );
        assert_eq!(r["incomplete_details"], json!({"reason": "content_filter"}));
        assert_eq!(
            r["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "no"}])
        );
    }

    #[test]
    fn stream_text() {
        let chunks = [
            json!({"choices": [{"delta": {"role": "assistant"}}]}).to_string(),
            ": keepalive-ish garbage".to_string(),
            delta(json!({"content": "Hel"})),
            delta(json!({"content": "lo"})),
            delta(json!({"content": " world"})),
            finish_chunk("stop"),
            USAGE.to_string(),
            "[DONE]".to_string(),
            delta(json!({"content": "ignored after the end"})),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, enc) = stream(&refs);
        let want = "created in_progress output_item.added content_part.added output_text.delta \
            output_text.delta output_text.delta output_text.done content_part.done \
            output_item.done completed";
        assert_eq!(types(&evs), want);
        assert_eq!(evs[0]["response"]["status"], "in_progress");
        assert_eq!(evs[0]["response"]["output"], json!([]));
        let text: String = evs
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Hello world");
        assert_eq!(evs[7]["text"], "Hello world");
        assert_eq!(evs[4]["item_id"], "msg_abc_0");
        let done = &evs[10]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["model"], "up-model");
        assert_eq!(done["usage"]["input_tokens"], 7);
        assert_eq!(done["usage"]["total_tokens"], 10);
        assert_eq!(
            done["output"],
            json!([{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello world", "annotations": []}]}])
        );
        assert_eq!(
            enc.usage(),
            Some(wire::Usage {
                prompt_tokens: 7,
                completion_tokens: 3
            })
        );
    }

    #[test]
    fn stream_tool_calls() {
        let tc = |v: Value| delta(json!({"tool_calls": [v]}));
        let chunks = [
            delta(json!({"content": "Checking."})),
            // id first, name later (OpenRouter-style duplicate with empty arguments in between).
            tc(
                json!({"index": 0, "id": "call_a", "type": "function", "function": {"arguments": ""}}),
            ),
            tc(json!({"index": 0, "id": "call_a", "function": {"name": "shell", "arguments": ""}})),
            tc(json!({"index": 0, "function": {"arguments": "{\"cmd\":"}})),
            tc(json!({"index": 0, "function": {"arguments": "\"ls\"}"}})),
            // The whole arguments repeated in a final chunk: skipped.
            tc(json!({"index": 0, "function": {"arguments": "{\"cmd\":\"ls\"}"}})),
            // A second, parallel call arriving complete in one delta.
            tc(
                json!({"index": 1, "id": "call_b", "function": {"name": "read", "arguments": "{\"path\":\"a\"}"}}),
            ),
            finish_chunk("tool_calls"),
            USAGE.to_string(),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let want = "created in_progress output_item.added content_part.added output_text.delta \
            output_text.done content_part.done output_item.done output_item.added \
            function_call_arguments.delta function_call_arguments.delta output_item.added \
            function_call_arguments.delta function_call_arguments.done output_item.done \
            function_call_arguments.done output_item.done completed";
        assert_eq!(types(&evs), want);
        assert_eq!(
            evs[8]["item"],
            json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "shell",
            "arguments": "", "status": "in_progress"})
        );
        let args: String = evs
            .iter()
            .filter(|e| {
                e["type"] == "response.function_call_arguments.delta" && e["output_index"] == 1
            })
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(args, "{\"cmd\":\"ls\"}");
        assert_eq!(evs[13]["arguments"], "{\"cmd\":\"ls\"}");
        assert_eq!(evs[13]["name"], "shell");
        let out = &evs[17]["response"]["output"];
        assert_eq!(out.as_array().unwrap().len(), 3);
        assert_eq!(
            out[1],
            json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "shell",
            "arguments": "{\"cmd\":\"ls\"}", "status": "completed"})
        );
        assert_eq!(
            out[2],
            json!({"type": "function_call", "id": "fc_abc_2", "call_id": "call_b", "name": "read",
            "arguments": "{\"path\":\"a\"}", "status": "completed"})
        );
        assert_eq!(evs[17]["response"]["usage"]["output_tokens"], 3);
    }

    #[test]
    fn stream_error_mid_stream_fails_once() {
        let chunks = [
            delta(json!({"content": "partial"})),
            r#"{"error":{"message":"upstream broke","type":"stream_error","code":"upstream_error"}}"#.to_string(),
            delta(json!({"content": "more"})),
            "[DONE]".to_string(),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let want = "created in_progress output_item.added content_part.added output_text.delta \
            failed";
        assert_eq!(types(&evs), want);
        let failed = &evs[5]["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(
            failed["error"],
            json!({"code": "upstream_error", "message": "upstream broke"})
        );
    }

    #[test]
    fn stream_think_tags_split_across_chunks() {
        let chunks = [
            delta(json!({"content": "<thi"})),
            delta(json!({"content": "nk>step one, "})),
            delta(json!({"content": "step two</th"})),
            delta(json!({"content": "ink>\n\n"})),
            delta(json!({"content": "Answer"})),
            finish_chunk("stop"),
            "[DONE]".to_string(),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let want = "created in_progress output_item.added reasoning_summary_part.added \
            reasoning_summary_text.delta reasoning_summary_text.delta \
            reasoning_summary_text.done reasoning_summary_part.done output_item.done \
            output_item.added content_part.added output_text.delta output_text.done \
            content_part.done output_item.done completed";
        assert_eq!(types(&evs), want);
        assert_eq!(evs[6]["text"], "step one, step two");
        let out = &evs[15]["response"]["output"];
        assert_eq!(
            out[0],
            json!({"type": "reasoning", "id": "rs_abc_0", "summary": [{"type": "summary_text", "text": "step one, step two"}]})
        );
        assert_eq!(out[1]["content"][0]["text"], "Answer");
        assert_eq!(out[1]["id"], "msg_abc_1");
    }

    #[test]
    fn stream_reasoning_content_then_text_with_length() {
        let chunks = [
            delta(json!({"reasoning_content": "let me think"})),
            delta(json!({"reasoning": "ignored duplicate", "reasoning_content": " more"})),
            delta(json!({"content": "<b>bold</b>"})),
            finish_chunk("length"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(
            last["response"]["output"][0]["summary"][0]["text"],
            "let me think more"
        );
        assert_eq!(
            last["response"]["output"][1]["content"][0]["text"],
            "<b>bold</b>"
        );
    }

    #[test]
    fn stream_end_without_done() {
        // Output but neither finish_reason nor [DONE]: completed.
        let chunk = delta(json!({"content": "hi"}));
        let (evs, enc) = stream(&[&chunk]);
        assert_eq!(evs.last().unwrap()["type"], "response.completed");
        assert_eq!(enc.usage(), None);
        // Nothing at all (keep-alives only): failed.
        let (evs, _) = stream(&[
            r#"{"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":""}}]}"#,
        ]);
        assert_eq!(types(&evs), "created in_progress failed");
        // Whitespace before a tool call does not become a message item.
        let a = delta(json!({"content": "\n"}));
        let b = delta(
            json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
        );
        let (evs, _) = stream(&[&a, &b, "[DONE]"]);
        let out = &evs.last().unwrap()["response"]["output"];
        assert_eq!(out.as_array().unwrap().len(), 1);
        assert_eq!(out[0]["type"], "function_call");
    }

    #[test]
    fn stream_calls_sharing_index_zero_and_late_names() {
        let tc = |v: Value| delta(json!({"tool_calls": [v]}));
        let chunks = [
            // Arguments before the name: buffered until the item can be announced.
            tc(json!({"index": 0, "id": "call_x", "function": {"arguments": "{\"a\":1}"}})),
            tc(json!({"index": 0, "function": {"name": "first"}})),
            // Another call reusing index 0 with its own id (seen from some upstreams).
            tc(
                json!({"index": 0, "id": "call_y", "function": {"name": "second", "arguments": "{}"}}),
            ),
            delta(json!({"refusal": "no more"})),
            finish_chunk("stop"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let out = evs.last().unwrap()["response"]["output"]
            .as_array()
            .unwrap()
            .clone();
        let calls: Vec<(&str, &str, &str)> = out[..2]
            .iter()
            .map(|o| {
                (
                    o["call_id"].as_str().unwrap(),
                    o["name"].as_str().unwrap(),
                    o["arguments"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [("call_x", "first", "{\"a\":1}"), ("call_y", "second", "{}")]
        );
        assert_eq!(
            out[2]["content"],
            json!([{"type": "refusal", "refusal": "no more"}])
        );
        assert!(evs
            .iter()
            .any(|e| e["type"] == "response.refusal.done" && e["refusal"] == "no more"));
        // The context builder never fails, even on a body the codec refuses.
        let ctx = ResponseContext::from_request(b"nonsense", "resp_q".into(), 1);
        assert_eq!(
            (ctx.model.as_str(), &ctx.echo["tool_choice"]),
            ("", &json!("auto"))
        );
    }
}
