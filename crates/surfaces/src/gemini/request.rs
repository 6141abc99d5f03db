//! Request direction: a `generateContent` request → the chat-completions request; `countTokens`.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;

use super::*;
use crate::{ChatRequest, RequestError};

/// Members passed through as raw JSON text: function-call arguments, function responses and schemas.
const RAW_MEMBERS: &[&str] = &[
    "args",
    "response",
    "parameters",
    "parametersJsonSchema",
    "parameters_json_schema",
    "responseSchema",
    "response_schema",
    "responseJsonSchema",
    "response_json_schema",
];

/// A member under either of its protobuf JSON names.
fn get2<'o, 'a>(o: &'o Obj<'a>, camel: &str, snake: &str) -> Option<&'o J<'a>> {
    o.get(camel).or_else(|| o.get(snake))
}

/// Parses a request into the chat-completions request for the relay (`model` from the URL path).
pub fn gemini_to_chat_request(
    body: &[u8],
    model: &str,
    stream: bool,
) -> Result<ChatRequest, RequestError> {
    parse(body, model, stream, String::new()).map(|(chat, _)| chat)
}

/// Parses a request once: the chat request and what the answer needs.
pub fn parse(
    body: &[u8],
    model: &str,
    stream: bool,
    response_id: String,
) -> Result<(ChatRequest, GeminiContext), RequestError> {
    let root = parse_root(body, RAW_MEMBERS)?;
    let mut ctx = GeminiContext {
        response_id,
        model: model.to_string(),
        stream,
        ..GeminiContext::default()
    };
    let chat = convert(&root, model, stream, &mut ctx)?;
    let mut out = Vec::with_capacity(body.len() + 64);
    write_chat(&chat, &mut out);
    Ok((
        ChatRequest {
            body: out,
            model: model.to_string(),
            stream,
        },
        ctx,
    ))
}

fn convert<'a>(
    root: &'a Obj<'a>,
    model: &'a str,
    stream: bool,
    ctx: &mut GeminiContext,
) -> Result<Chat<'a>, RequestError> {
    if model.trim().is_empty() {
        return Err(bad_value(
            "model",
            "the model in the path must not be empty".into(),
        ));
    }
    if get2(root, "cachedContent", "cached_content").is_some_and(|v| !matches!(v, J::Null)) {
        return Err(RequestError::invalid(
            "unsupported_parameter",
            "cachedContent",
            "cached contents are not kept by this gateway: send the contents in the request",
        ));
    }
    let mut messages = Vec::new();
    if let Some(system) = get2(root, "systemInstruction", "system_instruction") {
        let p = P::Root("systemInstruction");
        let text = match system {
            J::Null => None,
            J::Str(s) => Some(Cow::Borrowed(&**s)),
            J::Obj(o) => parts_text(o, &p)?,
            _ => return Err(wrong_type("systemInstruction", "a Content object")),
        };
        if let Some(t) = text.filter(|t| !t.is_empty()) {
            messages.push(Msg::System(t));
        }
    }
    let contents = match root.get("contents") {
        Some(J::Arr(a)) if !a.is_empty() => a,
        Some(J::Arr(_)) => {
            return Err(bad_value(
                "contents",
                "`contents` must contain at least one Content".into(),
            ))
        }
        None | Some(J::Null) => return Err(missing("contents")),
        Some(_) => return Err(wrong_type("contents", "an array")),
    };
    let cp = P::Root("contents");
    let mut calls = Calls::default();
    for (turn, c) in contents.iter().enumerate() {
        convert_content(c, turn, &P::Idx(&cp, turn), &mut messages, &mut calls, ctx)?;
    }
    if messages.iter().all(|m| matches!(m, Msg::System(_))) {
        return Err(bad_value(
            "contents",
            "no Content has parts that can be forwarded".into(),
        ));
    }
    let mut chat = Chat {
        model,
        messages,
        stream,
        ..Chat::default()
    };
    if let Some(config) = get2(root, "generationConfig", "generation_config") {
        match config {
            J::Null => {}
            J::Obj(g) => generation_config(g, &mut chat, ctx)?,
            _ => return Err(wrong_type("generationConfig", "an object")),
        }
    }
    convert_tools(root, &mut chat, ctx)?;
    Ok(chat)
}

/// The text parts of a Content (`systemInstruction`), joined with `\n`.
fn parts_text<'a>(o: &'a Obj<'a>, p: &P) -> Result<Option<Cow<'a, str>>, RequestError> {
    let parts = match o.get("parts") {
        Some(J::Arr(a)) => a,
        None | Some(J::Null) => return Ok(None),
        Some(_) => return Err(wrong_type(&format!("{p}.parts"), "an array")),
    };
    let mut text = None;
    for (i, part) in parts.iter().enumerate() {
        let J::Obj(part) = part else {
            return Err(wrong_type(&format!("{p}.parts[{i}]"), "an object"));
        };
        if let Some(t) = opt_str(part, "text", &P::Idx(&P::Key(p, "parts"), i))? {
            join_line(&mut text, Cow::Borrowed(t));
        }
    }
    Ok(text)
}

/// Function calls of the latest model turn, waiting for their responses.
#[derive(Default)]
struct Calls<'a> {
    open: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Calls<'a> {
    /// The id of the call a response answers (taken off the list), if any.
    fn answer(&mut self, name: &str, id: Option<&str>) -> Option<Cow<'a, str>> {
        let at = match id {
            Some(id) => self.open.iter().position(|(_, i)| i == id),
            None => None,
        }
        .or_else(|| self.open.iter().position(|(n, _)| *n == name))?;
        Some(self.open.remove(at).1)
    }
}

fn convert_content<'a>(
    c: &'a J<'a>,
    turn: usize,
    p: &P,
    messages: &mut Vec<Msg<'a>>,
    calls: &mut Calls<'a>,
    ctx: &mut GeminiContext,
) -> Result<(), RequestError> {
    let J::Obj(o) = c else {
        return Err(wrong_type(&p.to_string(), "a Content object"));
    };
    let role = opt_str(o, "role", p)?.unwrap_or("user");
    let parts = match o.get("parts") {
        Some(J::Arr(a)) => a.as_slice(),
        None | Some(J::Null) => &[],
        Some(_) => return Err(wrong_type(&format!("{p}.parts"), "an array")),
    };
    let pp = P::Key(p, "parts");
    match role {
        "model" | "assistant" => {
            let mut text: Option<Cow<'a, str>> = None;
            let mut tool_calls = Vec::new();
            calls.open.clear();
            for (i, part) in parts.iter().enumerate() {
                let ip = P::Idx(&pp, i);
                let J::Obj(part) = part else {
                    return Err(wrong_type(&ip.to_string(), "an object"));
                };
                if matches!(part.get("thought"), Some(J::Bool(true))) {
                    continue;
                }
                if let Some(t) = opt_str(part, "text", &ip)? {
                    join_line(&mut text, Cow::Borrowed(t));
                } else if let Some(call) = get2(part, "functionCall", "function_call") {
                    let cp = P::Key(&ip, "functionCall");
                    let J::Obj(call) = call else {
                        return Err(wrong_type(&cp.to_string(), "an object"));
                    };
                    let name = req_str(call, "name", &cp)?;
                    let id = match opt_str(call, "id", &cp)? {
                        Some(id) if !id.is_empty() => Cow::Borrowed(id),
                        _ => Cow::Owned(format!("call_{turn}_{}", tool_calls.len())),
                    };
                    let arguments = match call.get("args") {
                        Some(J::Raw(r)) if r.get().trim_start().starts_with('{') => {
                            compact(r.get())
                        }
                        _ => Cow::Borrowed("{}"),
                    };
                    calls.open.push((name, id.clone()));
                    tool_calls.push(ToolCall {
                        id,
                        name,
                        arguments,
                    });
                } else {
                    ctx.dropped_parts += 1;
                }
            }
            if text.is_some() || !tool_calls.is_empty() {
                messages.push(Msg::Assistant {
                    content: text,
                    calls: tool_calls,
                });
            }
        }
        "user" | "function" | "tool" => {
            let mut text: Option<Cow<'a, str>> = None;
            let mut rich: Vec<Part<'a>> = Vec::new();
            let mut images = false;
            for (i, part) in parts.iter().enumerate() {
                let ip = P::Idx(&pp, i);
                let J::Obj(part) = part else {
                    return Err(wrong_type(&ip.to_string(), "an object"));
                };
                if matches!(part.get("thought"), Some(J::Bool(true))) {
                    continue;
                }
                if let Some(t) = opt_str(part, "text", &ip)? {
                    rich.push(Part::Text(Cow::Borrowed(t)));
                    join_line(&mut text, Cow::Borrowed(t));
                } else if let Some(r) = get2(part, "functionResponse", "function_response") {
                    let rp = P::Key(&ip, "functionResponse");
                    let J::Obj(r) = r else {
                        return Err(wrong_type(&rp.to_string(), "an object"));
                    };
                    let name = req_str(r, "name", &rp)?;
                    let output = match r.get("response") {
                        Some(J::Raw(raw)) => tool_output(raw),
                        _ => Cow::Borrowed(""),
                    };
                    match calls.answer(name, opt_str(r, "id", &rp)?) {
                        Some(id) => messages.push(Msg::Tool {
                            id,
                            content: output,
                        }),
                        None => {
                            let t: Cow<'a, str> =
                                Cow::Owned(format!("[result of {name}] {output}"));
                            rich.push(Part::Text(t.clone()));
                            join_line(&mut text, t);
                        }
                    }
                } else if let Some(d) = get2(part, "inlineData", "inline_data") {
                    rich.push(Part::Image(inline_image(d, &P::Key(&ip, "inlineData"))?));
                    images = true;
                } else if let Some(d) = get2(part, "fileData", "file_data") {
                    rich.push(Part::Image(file_image(d, &P::Key(&ip, "fileData"))?));
                    images = true;
                } else {
                    ctx.dropped_parts += 1;
                }
            }
            if images {
                messages.push(Msg::UserParts(rich));
            } else if let Some(t) = text {
                messages.push(Msg::User(t));
            }
        }
        other => {
            return Err(bad_value(
                &format!("{p}.role"),
                format!("role `{other}` is not one of `user`, `model`"),
            ))
        }
    }
    Ok(())
}

/// A function response as tool text: the `output` string when that is all it holds (Gemini CLI's shape), else
/// its JSON.
fn tool_output<'a>(raw: &'a RawValue) -> Cow<'a, str> {
    if let Ok(map) = serde_json::from_str::<HashMap<&str, &RawValue>>(raw.get()) {
        if map.len() == 1 {
            if let Some(out) = map.get("output").or_else(|| map.get("content")) {
                if let Ok(s) = serde_json::from_str::<Cow<'a, str>>(out.get()) {
                    return s;
                }
            }
        }
    }
    compact(raw.get())
}

fn mime_is_image(mime: &str) -> bool {
    mime.get(..6)
        .is_some_and(|m| m.eq_ignore_ascii_case("image/"))
}

fn inline_image<'a>(d: &'a J<'a>, p: &P) -> Result<Cow<'a, str>, RequestError> {
    let J::Obj(d) = d else {
        return Err(wrong_type(&p.to_string(), "an object"));
    };
    let mime = match get2(d, "mimeType", "mime_type") {
        Some(J::Str(s)) => s,
        _ => return Err(missing(&format!("{p}.mimeType"))),
    };
    if !mime_is_image(mime) {
        return Err(unsupported(
            &format!("{p}.mimeType"),
            "only images can be forwarded inline; audio, video and documents are not supported",
        ));
    }
    let data = req_str(d, "data", p)?;
    Ok(Cow::Owned(format!("data:{mime};base64,{data}")))
}

fn file_image<'a>(d: &'a J<'a>, p: &P) -> Result<Cow<'a, str>, RequestError> {
    let J::Obj(d) = d else {
        return Err(wrong_type(&p.to_string(), "an object"));
    };
    let uri = match get2(d, "fileUri", "file_uri") {
        Some(J::Str(s)) => s,
        _ => return Err(missing(&format!("{p}.fileUri"))),
    };
    let image = match get2(d, "mimeType", "mime_type") {
        Some(J::Str(m)) => mime_is_image(m),
        _ => true,
    };
    if !image || !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return Err(unsupported(
            &format!("{p}.fileUri"),
            "only images at http(s) URLs can be forwarded; uploaded files and other media are not supported",
        ));
    }
    Ok(Cow::Borrowed(uri))
}

fn generation_config<'a>(
    g: &'a Obj<'a>,
    chat: &mut Chat<'a>,
    ctx: &mut GeminiContext,
) -> Result<(), RequestError> {
    let p = P::Root("generationConfig");
    let number = |camel: &'static str, snake: &'static str| match get2(g, camel, snake) {
        None | Some(J::Null) => Ok(None),
        Some(v @ (J::U(_) | J::I(_) | J::F(_))) => Ok(Some(v)),
        Some(_) => Err(wrong_type(&format!("generationConfig.{camel}"), "a number")),
    };
    chat.temperature = number("temperature", "temperature")?;
    chat.top_p = number("topP", "top_p")?;
    chat.presence_penalty = number("presencePenalty", "presence_penalty")?;
    chat.frequency_penalty = number("frequencyPenalty", "frequency_penalty")?;
    chat.seed = number("seed", "seed")?;
    chat.max_tokens = match get2(g, "maxOutputTokens", "max_output_tokens") {
        None | Some(J::Null) => None,
        Some(J::U(n)) => Some(*n),
        Some(_) => {
            return Err(wrong_type(
                "generationConfig.maxOutputTokens",
                "a non-negative integer",
            ))
        }
    };
    match get2(g, "candidateCount", "candidate_count") {
        None | Some(J::Null) | Some(J::U(1)) => {}
        Some(J::U(_)) => {
            return Err(RequestError::invalid(
                "unsupported_parameter",
                "generationConfig.candidateCount",
                "only one candidate per request is supported",
            ))
        }
        Some(_) => {
            return Err(wrong_type(
                "generationConfig.candidateCount",
                "a positive integer",
            ))
        }
    }
    chat.stop = match get2(g, "stopSequences", "stop_sequences") {
        None | Some(J::Null) => None,
        Some(J::Arr(a)) => {
            for (k, s) in a.iter().enumerate() {
                if !matches!(s, J::Str(_)) {
                    return Err(wrong_type(
                        &format!("generationConfig.stopSequences[{k}]"),
                        "a string",
                    ));
                }
            }
            (!a.is_empty()).then_some(a.as_slice())
        }
        Some(_) => {
            return Err(wrong_type(
                "generationConfig.stopSequences",
                "an array of strings",
            ))
        }
    };
    if let Some(J::Arr(modalities)) = get2(g, "responseModalities", "response_modalities") {
        if modalities
            .iter()
            .any(|m| !matches!(m, J::Str(s) if s.eq_ignore_ascii_case("text")))
        {
            return Err(unsupported(
                "generationConfig.responseModalities",
                "only TEXT answers can be produced",
            ));
        }
    }
    let json_mime = match get2(g, "responseMimeType", "response_mime_type") {
        None | Some(J::Null) => false,
        Some(J::Str(m)) => m.eq_ignore_ascii_case("application/json"),
        Some(_) => return Err(wrong_type("generationConfig.responseMimeType", "a string")),
    };
    let schema = match get2(g, "responseJsonSchema", "response_json_schema") {
        Some(J::Raw(r)) if is_object(r) => Some(compact(r.get())),
        _ => match get2(g, "responseSchema", "response_schema") {
            Some(J::Raw(r)) if is_object(r) => Some(Cow::Owned(openapi_to_json_schema(r))),
            _ => None,
        },
    };
    chat.response_format = match schema {
        Some(s) => Some(ResponseFormat::JsonSchema(s)),
        None if json_mime => Some(ResponseFormat::JsonObject),
        None => None,
    };
    if let Some(t) = get2(g, "thinkingConfig", "thinking_config") {
        let tp = P::Key(&p, "thinkingConfig");
        match t {
            J::Null => {}
            J::Obj(t) => {
                ctx.include_thoughts = matches!(
                    get2(t, "includeThoughts", "include_thoughts"),
                    Some(J::Bool(true))
                );
                chat.reasoning_effort = thinking_effort(t, &tp)?;
            }
            _ => return Err(wrong_type(&tp.to_string(), "an object")),
        }
    }
    Ok(())
}

/// `thinkingLevel`, or a `thinkingBudget` in tokens, as a chat `reasoning_effort`. A budget of 0 (off) or -1
/// (dynamic) leaves the upstream's default.
fn thinking_effort(t: &Obj, p: &P) -> Result<Option<&'static str>, RequestError> {
    if let Some(level) = get2(t, "thinkingLevel", "thinking_level") {
        return match level {
            J::Null => Ok(None),
            J::Str(s) => match s.to_ascii_lowercase().as_str() {
                "minimal" | "low" => Ok(Some("low")),
                "medium" => Ok(Some("medium")),
                "high" => Ok(Some("high")),
                "thinking_level_unspecified" => Ok(None),
                _ => Err(bad_value(
                    &format!("{p}.thinkingLevel"),
                    format!("`{s}` is not one of MINIMAL, LOW, MEDIUM, HIGH"),
                )),
            },
            _ => Err(wrong_type(&format!("{p}.thinkingLevel"), "a string")),
        };
    }
    Ok(match get2(t, "thinkingBudget", "thinking_budget") {
        Some(J::U(1..=2048)) => Some("low"),
        Some(J::U(2049..=8192)) => Some("medium"),
        Some(J::U(n)) if *n > 8192 => Some("high"),
        Some(J::U(_) | J::I(_) | J::Null) | None => None,
        Some(_) => return Err(wrong_type(&format!("{p}.thinkingBudget"), "an integer")),
    })
}

fn is_object(r: &RawValue) -> bool {
    r.get().trim_start().starts_with('{')
}

/// An OpenAPI-style Gemini `Schema` (`type: "OBJECT"`, `nullable`) as JSON Schema: type names in lower case, and a
/// nullable type as `[type, "null"]`.
fn openapi_to_json_schema(r: &RawValue) -> String {
    fn fix(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                let nullable = matches!(m.remove("nullable"), Some(serde_json::Value::Bool(true)));
                if let Some(serde_json::Value::String(t)) = m.get_mut("type") {
                    t.make_ascii_lowercase();
                    if t == "type_unspecified" {
                        m.remove("type");
                    } else if nullable {
                        let t = serde_json::Value::String(std::mem::take(t));
                        m.insert("type".into(), serde_json::json!([t, "null"]));
                    }
                }
                for (k, child) in m.iter_mut() {
                    // Property names are data, not schema keywords.
                    if k == "properties" {
                        if let serde_json::Value::Object(props) = child {
                            props.values_mut().for_each(fix);
                        }
                    } else {
                        fix(child);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(fix),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(r.get()) {
        Ok(mut v) => {
            fix(&mut v);
            v.to_string()
        }
        Err(_) => r.get().to_string(),
    }
}

fn convert_tools<'a>(
    root: &'a Obj<'a>,
    chat: &mut Chat<'a>,
    ctx: &mut GeminiContext,
) -> Result<(), RequestError> {
    let tools = match root.get("tools") {
        None | Some(J::Null) => &[][..],
        Some(J::Arr(a)) => a.as_slice(),
        Some(_) => return Err(wrong_type("tools", "an array")),
    };
    let tp = P::Root("tools");
    for (i, tool) in tools.iter().enumerate() {
        let ip = P::Idx(&tp, i);
        let J::Obj(tool) = tool else {
            return Err(wrong_type(&ip.to_string(), "an object"));
        };
        for (key, value) in &tool.0 {
            if **key != *b"functionDeclarations" && **key != *b"function_declarations" {
                ctx.dropped_tools
                    .push(String::from_utf8_lossy(key).into_owned());
                continue;
            }
            let dp = P::Key(&ip, "functionDeclarations");
            let decls = match value {
                J::Arr(a) => a,
                J::Null => continue,
                _ => return Err(wrong_type(&dp.to_string(), "an array")),
            };
            for (k, d) in decls.iter().enumerate() {
                let fp = P::Idx(&dp, k);
                let J::Obj(d) = d else {
                    return Err(wrong_type(&fp.to_string(), "an object"));
                };
                let name = req_str(d, "name", &fp)?;
                let description = opt_str(d, "description", &fp)?;
                let parameters = match get2(d, "parametersJsonSchema", "parameters_json_schema") {
                    Some(J::Raw(r)) if is_object(r) => compact(r.get()),
                    _ => match d.get("parameters") {
                        Some(J::Raw(r)) if is_object(r) => Cow::Owned(openapi_to_json_schema(r)),
                        _ => Cow::Borrowed(r#"{"properties":{},"type":"object"}"#),
                    },
                };
                chat.tools.push(Tool {
                    name,
                    description,
                    parameters,
                });
            }
        }
    }
    let config = match get2(root, "toolConfig", "tool_config") {
        Some(J::Obj(c)) => get2(c, "functionCallingConfig", "function_calling_config"),
        _ => None,
    };
    let Some(J::Obj(config)) = config else {
        return Ok(());
    };
    let cp = P::Root("toolConfig.functionCallingConfig");
    let allowed: Vec<&str> = match get2(config, "allowedFunctionNames", "allowed_function_names") {
        Some(J::Arr(a)) => a
            .iter()
            .filter_map(|n| match n {
                J::Str(s) => Some(&**s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    chat.tool_choice = match opt_str(config, "mode", &cp)? {
        None => None,
        Some(m) => match m.to_ascii_uppercase().as_str() {
            "AUTO" | "VALIDATED" | "MODE_UNSPECIFIED" => None,
            "NONE" => Some(ToolChoice::Mode("none")),
            "ANY" => {
                if chat.tools.is_empty() {
                    return Err(RequestError::invalid(
                        "unsupported_tool",
                        "toolConfig.functionCallingConfig.mode",
                        "mode ANY needs at least one function declaration (other tools cannot run here)",
                    ));
                }
                match allowed.as_slice() {
                    [one] => Some(ToolChoice::Function(one)),
                    _ => Some(ToolChoice::Mode("required")),
                }
            }
            _ => {
                return Err(bad_value(
                    "toolConfig.functionCallingConfig.mode",
                    format!("`{m}` is not one of AUTO, ANY, NONE, VALIDATED"),
                ))
            }
        },
    };
    if !allowed.is_empty() {
        chat.tools.retain(|t| allowed.contains(&t.name));
    }
    Ok(())
}

/// `countTokens`: the estimated `totalTokens` of a request (its own shape, or wrapped in
/// `generateContentRequest`), counted as the relay estimates a request.
pub fn count_tokens(body: &[u8], model: &str) -> Result<u64, RequestError> {
    let root = parse_root(body, RAW_MEMBERS)?;
    let inner = match get2(&root, "generateContentRequest", "generate_content_request") {
        Some(J::Obj(o)) => o,
        _ => &root,
    };
    let mut ctx = GeminiContext::default();
    let chat = convert(inner, model, false, &mut ctx)?;
    let mut out = Vec::with_capacity(body.len() + 64);
    let (messages, tools) = write_chat(&chat, &mut out);
    let messages = out
        .get(messages)
        .and_then(|m| std::str::from_utf8(m).ok())
        .unwrap_or_default();
    Ok(estimate_json_tokens(messages) + (tools.len() as u64).div_ceil(4))
}
