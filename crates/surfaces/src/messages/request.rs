//! Request direction: a Messages request → the chat-completions request; `count_tokens`.

use std::borrow::Cow;

use super::*;
use crate::{ChatRequest, RequestError};

/// Members passed through as raw JSON text: tool-call inputs and tool schemas.
const RAW_MEMBERS: &[&str] = &["input", "input_schema"];

/// Parses a Messages request into the chat-completions request for the relay.
pub fn messages_to_chat_request(body: &[u8]) -> Result<ChatRequest, RequestError> {
    parse(body, String::new()).map(|(chat, _)| chat)
}

/// Parses a Messages request once: the chat request and what the answer needs.
pub fn parse(
    body: &[u8],
    message_id: String,
) -> Result<(ChatRequest, MessageContext), RequestError> {
    let root = parse_root(body, RAW_MEMBERS)?;
    let (chat, ctx) = convert(&root, message_id)?;
    let mut out = Vec::with_capacity(body.len() + 64);
    write_chat(&chat, &mut out);
    let request = ChatRequest {
        body: out,
        model: ctx.model.clone(),
        stream: ctx.stream,
    };
    Ok((request, ctx))
}

pub(super) fn convert<'a>(
    root: &'a Obj<'a>,
    message_id: String,
) -> Result<(Chat<'a>, MessageContext), RequestError> {
    let model: &str = match root.get("model") {
        Some(J::Str(s)) if !s.trim().is_empty() => s,
        Some(J::Str(_)) => return Err(bad_value("model", "`model` must not be empty".into())),
        None | Some(J::Null) => return Err(missing("model")),
        Some(_) => return Err(wrong_type("model", "a string")),
    };
    let stream = match root.get("stream") {
        None | Some(J::Null) => false,
        Some(J::Bool(b)) => *b,
        Some(_) => return Err(wrong_type("stream", "a boolean")),
    };
    let mut ctx = MessageContext {
        message_id,
        model: model.to_string(),
        stream,
        ..MessageContext::default()
    };

    let mut messages = Vec::new();
    match root.get("system") {
        None | Some(J::Null) => {}
        Some(J::Str(s)) => push_system(&mut messages, Cow::Borrowed(s)),
        Some(J::Arr(blocks)) => {
            let text = text_blocks(blocks, &P::Root("system"), &mut ctx)?;
            push_system(&mut messages, text);
        }
        Some(_) => return Err(wrong_type("system", "a string or an array of text blocks")),
    }
    let history = match root.get("messages") {
        Some(J::Arr(a)) if !a.is_empty() => a,
        Some(J::Arr(_)) => {
            return Err(bad_value(
                "messages",
                "`messages` must contain at least one message".into(),
            ))
        }
        None | Some(J::Null) => return Err(missing("messages")),
        Some(_) => return Err(wrong_type("messages", "an array")),
    };
    messages.reserve(history.len());
    let mp = P::Root("messages");
    for (i, m) in history.iter().enumerate() {
        convert_message(m, &P::Idx(&mp, i), &mut messages, &mut ctx)?;
    }
    if messages.iter().all(|m| matches!(m, Msg::System(_))) {
        return Err(bad_value(
            "messages",
            "no message has content that can be forwarded".into(),
        ));
    }

    let max_tokens = match root.get("max_tokens") {
        None | Some(J::Null) => None,
        Some(J::U(n)) => Some(*n),
        Some(_) => return Err(wrong_type("max_tokens", "a non-negative integer")),
    };
    let number = |key: &'static str| match root.get(key) {
        None | Some(J::Null) => Ok(None),
        Some(v @ (J::U(_) | J::I(_) | J::F(_))) => Ok(Some(v)),
        Some(_) => Err(wrong_type(key, "a number")),
    };
    let temperature = number("temperature")?;
    let top_p = number("top_p")?;
    let stop = match root.get("stop_sequences") {
        None | Some(J::Null) => None,
        Some(J::Arr(a)) => {
            for (k, s) in a.iter().enumerate() {
                if !matches!(s, J::Str(_)) {
                    return Err(wrong_type(&format!("stop_sequences[{k}]"), "a string"));
                }
            }
            (!a.is_empty()).then_some(a.as_slice())
        }
        Some(_) => return Err(wrong_type("stop_sequences", "an array of strings")),
    };
    let user = match root.get("metadata") {
        Some(J::Obj(meta)) => opt_str(meta, "user_id", &P::Root("metadata"))?,
        _ => None,
    };
    let reasoning_effort = reasoning_effort(root)?;
    let mut chat = Chat {
        model,
        messages,
        max_tokens,
        stream,
        temperature,
        top_p,
        stop,
        user,
        reasoning_effort,
        ..Chat::default()
    };
    convert_tools(root, &mut chat, &mut ctx)?;
    Ok((chat, ctx))
}

pub(super) fn push_system<'a>(messages: &mut Vec<Msg<'a>>, text: Cow<'a, str>) {
    if !text.is_empty() {
        messages.push(Msg::System(text));
    }
}

/// The text of `system`-like block arrays: text blocks joined by `\n`, anything else dropped and counted.
pub(super) fn text_blocks<'a>(
    blocks: &'a [J<'a>],
    p: &P,
    ctx: &mut MessageContext,
) -> Result<Cow<'a, str>, RequestError> {
    let mut text = None;
    for (j, b) in blocks.iter().enumerate() {
        let bp = P::Idx(p, j);
        match block(b, &bp)? {
            (o, "text") => join_line(&mut text, Cow::Borrowed(req_str(o, "text", &bp)?)),
            _ => ctx.dropped_blocks += 1,
        }
    }
    Ok(text.unwrap_or_default())
}

pub(super) fn convert_message<'a>(
    m: &'a J<'a>,
    p: &P,
    out: &mut Vec<Msg<'a>>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let J::Obj(m) = m else {
        return Err(wrong_type(&p.to_string(), "an object"));
    };
    let role = req_str(m, "role", p)?;
    let cp = P::Key(p, "content");
    let content = m.get("content").unwrap_or(&J::Null);
    let (text, blocks): (Option<&str>, &[J]) = match content {
        J::Str(s) => (Some(s), &[]),
        J::Arr(a) => (None, a),
        J::Null => (None, &[]),
        _ => {
            return Err(wrong_type(
                &cp.to_string(),
                "a string or an array of content blocks",
            ))
        }
    };
    match role {
        "system" => {
            let text = match text {
                Some(s) => Cow::Borrowed(s),
                None => text_blocks(blocks, &cp, ctx)?,
            };
            push_system(out, text);
        }
        "user" => match text {
            Some(s) => out.push(Msg::User(Cow::Borrowed(s))),
            None => user_blocks(blocks, &cp, out, ctx)?,
        },
        "assistant" => match text {
            Some("") => {}
            Some(s) => out.push(Msg::Assistant {
                content: Some(Cow::Borrowed(s)),
                calls: Vec::new(),
            }),
            None => assistant_blocks(blocks, &cp, out, ctx)?,
        },
        other => {
            return Err(bad_value(
                &format!("{p}.role"),
                format!("unknown role `{other}`; expected `user` or `assistant`"),
            ))
        }
    }
    Ok(())
}

pub(super) fn user_blocks<'a>(
    blocks: &'a [J<'a>],
    cp: &P,
    out: &mut Vec<Msg<'a>>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = P::Idx(cp, j);
        match block(b, &bp)? {
            (o, "text") => parts.push(Part::Text(Cow::Borrowed(req_str(o, "text", &bp)?))),
            (o, "image") => parts.push(Part::Image(image_url(o, &bp)?)),
            (o, "document") => parts.push(Part::Text(Cow::Owned(document_text(o, &bp, ctx)?))),
            // Tool messages go first, in order, before the rest of this user message.
            (o, "tool_result") => out.push(tool_result(o, &bp, ctx)?),
            (_, "thinking" | "redacted_thinking") => {}
            _ => ctx.dropped_blocks += 1,
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    if parts.iter().all(|p| matches!(p, Part::Text(_))) {
        let mut text = None;
        for p in parts {
            if let Part::Text(t) = p {
                join_line(&mut text, t);
            }
        }
        out.push(Msg::User(text.unwrap_or_default()));
    } else {
        out.push(Msg::UserParts(parts));
    }
    Ok(())
}

pub(super) fn image_url<'a>(o: &'a Obj<'a>, p: &P) -> Result<Cow<'a, str>, RequestError> {
    let sp = P::Key(p, "source");
    let Some(J::Obj(source)) = o.get("source") else {
        return Err(wrong_type(&sp.to_string(), "an object"));
    };
    Ok(match req_str(source, "type", &sp)? {
        "base64" => Cow::Owned(format!(
            "data:{};base64,{}",
            req_str(source, "media_type", &sp)?,
            req_str(source, "data", &sp)?
        )),
        "url" => Cow::Borrowed(req_str(source, "url", &sp)?),
        other => {
            return Err(unsupported(
                &format!("{sp}.type"),
                &format!("image source type `{other}` is not supported; send `base64` or `url`"),
            ))
        }
    })
}

pub(super) fn document_text(
    o: &Obj,
    p: &P,
    ctx: &mut MessageContext,
) -> Result<String, RequestError> {
    let sp = P::Key(p, "source");
    let Some(J::Obj(source)) = o.get("source") else {
        return Err(wrong_type(&sp.to_string(), "an object"));
    };
    let body = match req_str(source, "type", &sp)? {
        "text" => req_str(source, "data", &sp)?.to_string(),
        "content" => match source.get("content") {
            Some(J::Str(s)) => s.to_string(),
            Some(J::Arr(blocks)) => text_blocks(blocks, &P::Key(&sp, "content"), ctx)?.into_owned(),
            _ => {
                return Err(wrong_type(
                    &format!("{sp}.content"),
                    "a string or an array of blocks",
                ))
            }
        },
        _ => {
            return Err(unsupported(
                &p.to_string(),
                "PDF and file documents are not supported by the upstream models; send the text instead",
            ))
        }
    };
    Ok(match opt_str(o, "title", p)? {
        Some(title) if !title.is_empty() => format!("{title}\n\n{body}"),
        _ => body,
    })
}

pub(super) fn tool_result<'a>(
    o: &'a Obj<'a>,
    p: &P,
    ctx: &mut MessageContext,
) -> Result<Msg<'a>, RequestError> {
    let id = req_str(o, "tool_use_id", p)?;
    let cp = P::Key(p, "content");
    let text: Cow<str> = match o.get("content") {
        None | Some(J::Null) => Cow::Borrowed(""),
        Some(J::Str(s)) => Cow::Borrowed(s),
        Some(J::Arr(blocks)) => {
            let mut text = None;
            for (k, b) in blocks.iter().enumerate() {
                let bp = P::Idx(&cp, k);
                match block(b, &bp)? {
                    (o, "text") => join_line(&mut text, Cow::Borrowed(req_str(o, "text", &bp)?)),
                    (_, "image") => join_line(&mut text, Cow::Borrowed("[image omitted]")),
                    (o, "document") => {
                        join_line(&mut text, Cow::Owned(document_text(o, &bp, ctx)?))
                    }
                    _ => ctx.dropped_blocks += 1,
                }
            }
            text.unwrap_or_default()
        }
        Some(_) => {
            return Err(wrong_type(
                &cp.to_string(),
                "a string or an array of content blocks",
            ))
        }
    };
    let content = if matches!(o.get("is_error"), Some(J::Bool(true))) {
        Cow::Owned(format!("[tool error] {text}"))
    } else {
        text
    };
    Ok(Msg::Tool {
        id: Cow::Borrowed(id),
        content,
    })
}

pub(super) fn assistant_blocks<'a>(
    blocks: &'a [J<'a>],
    cp: &P,
    out: &mut Vec<Msg<'a>>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut text = None;
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = P::Idx(cp, j);
        match block(b, &bp)? {
            (o, "text") => join_line(&mut text, Cow::Borrowed(req_str(o, "text", &bp)?)),
            (o, "tool_use") => {
                let arguments = match o.get("input") {
                    Some(J::Raw(r)) => compact(r.get()),
                    _ => Cow::Borrowed("{}"),
                };
                let id = req_str(o, "id", &bp)?;
                let name = req_str(o, "name", &bp)?;
                calls.push(ToolCall {
                    id: Cow::Borrowed(id),
                    name,
                    arguments,
                });
            }
            (_, "thinking" | "redacted_thinking") => {}
            _ => ctx.dropped_blocks += 1,
        }
    }
    let content = text.filter(|t| !t.is_empty());
    if content.is_some() || !calls.is_empty() {
        out.push(Msg::Assistant { content, calls });
    }
    Ok(())
}

pub(super) fn reasoning_effort(root: &Obj) -> Result<Option<&'static str>, RequestError> {
    if let Some(J::Obj(cfg)) = root.get("output_config") {
        match opt_str(cfg, "effort", &P::Root("output_config"))? {
            Some("low") => return Ok(Some("low")),
            Some("medium") => return Ok(Some("medium")),
            Some("high" | "max") => return Ok(Some("high")),
            _ => {}
        }
    }
    let Some(J::Obj(thinking)) = root.get("thinking") else {
        return Ok(None);
    };
    Ok(match opt_str(thinking, "type", &P::Root("thinking"))? {
        Some("enabled") => match thinking.get("budget_tokens") {
            Some(J::U(n)) if *n < 4096 => Some("low"),
            Some(J::U(n)) if *n >= 16384 => Some("high"),
            _ => Some("medium"),
        },
        Some("adaptive") => Some("medium"),
        _ => None,
    })
}

pub(super) const EMPTY_SCHEMA: &str = r#"{"properties":{},"type":"object"}"#;

pub(super) fn convert_tools<'a>(
    root: &'a Obj<'a>,
    chat: &mut Chat<'a>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut tools = Vec::new();
    match root.get("tools") {
        None | Some(J::Null) => {}
        Some(J::Arr(list)) => {
            tools.reserve(list.len());
            let tsp = P::Root("tools");
            for (k, t) in list.iter().enumerate() {
                let tp = P::Idx(&tsp, k);
                let J::Obj(t) = t else {
                    return Err(wrong_type(&tp.to_string(), "an object"));
                };
                let name = req_str(t, "name", &tp)?;
                match opt_str(t, "type", &tp)? {
                    None | Some("custom") => {}
                    Some(_) => {
                        ctx.dropped_tools.push(name.to_string());
                        continue;
                    }
                }
                let description = opt_str(t, "description", &tp)?;
                let parameters = match t.get("input_schema") {
                    None | Some(J::Null) => Cow::Borrowed(EMPTY_SCHEMA),
                    Some(J::Raw(r)) if r.get().starts_with('{') => compact(r.get()),
                    Some(J::Raw(r)) if r.get() == "null" => Cow::Borrowed(EMPTY_SCHEMA),
                    Some(_) => return Err(wrong_type(&format!("{tp}.input_schema"), "an object")),
                };
                tools.push(Tool {
                    name,
                    description,
                    parameters,
                });
            }
        }
        Some(_) => return Err(wrong_type("tools", "an array")),
    }
    let forced_unsupported =
        |message: String| RequestError::invalid("unsupported_tool", "tool_choice", message);
    let tcp = P::Root("tool_choice");
    let choice = match root.get("tool_choice") {
        None | Some(J::Null) => None,
        Some(J::Obj(tc)) => {
            let choice = match req_str(tc, "type", &tcp)? {
                "auto" => ToolChoice::Mode("auto"),
                "none" => ToolChoice::Mode("none"),
                "any" if tools.is_empty() && !ctx.dropped_tools.is_empty() => {
                    return Err(forced_unsupported(
                        "`tool_choice` `any` needs a custom tool; server tools are not supported"
                            .into(),
                    ))
                }
                "any" => ToolChoice::Mode("required"),
                "tool" => {
                    let name = req_str(tc, "name", &tcp)?;
                    if ctx.dropped_tools.iter().any(|d| d == name) {
                        return Err(RequestError::invalid(
                            "unsupported_tool",
                            "tool_choice.name",
                            format!(
                                "`{name}` is a server tool, which the gateway does not support"
                            ),
                        ));
                    }
                    if !tools.iter().any(|t| t.name == name) {
                        return Err(bad_value(
                            "tool_choice.name",
                            format!("no tool named `{name}` in `tools`"),
                        ));
                    }
                    ToolChoice::Function(name)
                }
                other => {
                    return Err(bad_value(
                        "tool_choice.type",
                        format!("unknown tool_choice type `{other}`"),
                    ))
                }
            };
            if matches!(tc.get("disable_parallel_tool_use"), Some(J::Bool(true)))
                && !tools.is_empty()
            {
                chat.parallel_tool_calls_off = true;
            }
            Some(choice)
        }
        Some(_) => return Err(wrong_type("tool_choice", "an object")),
    };
    if !tools.is_empty() {
        chat.tools = tools;
        chat.tool_choice = choice;
    }
    Ok(())
}

/// `count_tokens`: the estimated `input_tokens` of a Messages request — its translated messages (system, text,
/// tool_use input, tool_result content, images) and tool definitions, counted as the relay estimates a request.
pub fn count_tokens(body: &[u8]) -> Result<u64, RequestError> {
    let root = parse_root(body, RAW_MEMBERS)?;
    let (chat, _) = convert(&root, String::new())?;
    let mut out = Vec::with_capacity(body.len() + 64);
    let (messages, tools) = write_chat(&chat, &mut out);
    let messages = out
        .get(messages)
        .and_then(|m| std::str::from_utf8(m).ok())
        .unwrap_or_default();
    Ok(estimate_json_tokens(messages) + (tools.len() as u64).div_ceil(4))
}
