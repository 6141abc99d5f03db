//! Request direction: a Responses request → the chat-completions request, and the context its answer needs.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::Value;

use super::*;
use crate::{ChatRequest, RequestError};

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
    /// `max_output_tokens`, `temperature`, `top_p`, `metadata`, `store`, `truncation`, …), rendered once as the
    /// compact members of a JSON object without the braces: `"instructions":…,"tools":[…],…`.
    pub echo: String,
}

impl ResponseContext {
    /// Builds the context from the raw request body. Lenient: a body the codec refuses still yields a context.
    pub fn from_request(body: &[u8], response_id: String, created_at: u64) -> Self {
        let m = std::str::from_utf8(body)
            .ok()
            .and_then(|s| parse_top::<Req>(s).ok())
            .unwrap_or_default();
        let dropped = map_tools(m.tools).map(|(_, d)| d).unwrap_or_default();
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

pub(super) fn parse_object(body: &[u8]) -> Result<Req<'_>, RequestError> {
    let typed = std::str::from_utf8(body).map(parse_top::<Req>);
    let message = match typed {
        Ok(Ok(m)) => return Ok(m),
        // The error text is the one a `Value` parse gives.
        _ => match serde_json::from_slice::<Value>(body) {
            Ok(v) if v.is_object() => "the request body is not valid JSON".to_string(),
            Ok(_) => "the request body must be a JSON object".to_string(),
            Err(e) => format!("the request body is not valid JSON: {e}"),
        },
    };
    Err(RequestError {
        status: 400,
        code: "invalid_json",
        param: None,
        message,
    })
}

pub(super) fn err(
    code: &'static str,
    param: impl Into<String>,
    message: impl Into<String>,
) -> RequestError {
    RequestError::invalid(code, param, message)
}

pub(super) fn type_err(param: &str, want: &str) -> RequestError {
    err("invalid_type", param, format!("`{param}` must be {want}"))
}

pub(super) fn missing(param: String) -> RequestError {
    let message = format!("`{param}` is required");
    err("missing_required_parameter", param, message)
}

/// A present member that must be a string: its raw text.
pub(super) fn opt_str<'a>(r: Raw<'a>, param: &str) -> Result<Option<&'a RawValue>, RequestError> {
    match r.present() {
        None => Ok(None),
        Some(x) if is_str(x) => Ok(Some(x)),
        Some(_) => Err(type_err(param, "a string")),
    }
}

/// A required string member `{prefix}.{key}`: its raw text.
pub(super) fn req_str<'a>(
    r: Raw<'a>,
    prefix: &str,
    key: &str,
) -> Result<&'a RawValue, RequestError> {
    match r.present() {
        Some(x) if is_str(x) => Ok(x),
        Some(_) => Err(type_err(&format!("{prefix}.{key}"), "a string")),
        None => Err(missing(format!("{prefix}.{key}"))),
    }
}

/// The decoded text of a raw JSON string.
pub(super) fn text(r: &RawValue) -> Cow<'_, str> {
    raw_str(r).unwrap_or(Cow::Borrowed(""))
}

pub(super) fn opt_bool(r: Raw, key: &str) -> Result<Option<bool>, RequestError> {
    match r.present().map(RawValue::get) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(type_err(key, "a boolean")),
    }
}

/// A member that must be a number (`integer`: an integer), passed through as is.
pub(super) fn num<'a>(
    r: Raw<'a>,
    key: &str,
    integer: bool,
) -> Result<Option<&'a RawValue>, RequestError> {
    let Some(v) = r.present() else {
        return Ok(None);
    };
    let (ok, want) = if integer {
        (is_int(v), "an integer")
    } else {
        (is_num(v), "a number")
    };
    if !ok {
        return Err(type_err(key, want));
    }
    Ok(Some(v))
}

pub(super) fn stateless(code: &'static str, param: &str, what: &str) -> RequestError {
    let message = format!(
        "this gateway is stateless and keeps no {what}; resend the full conversation in `input`"
    );
    err(code, param, message)
}

/// Chat text: raw JSON string text from the request, or a string built here.
pub(super) enum Txt<'a> {
    Raw(&'a RawValue),
    Str(Cow<'a, str>),
}

impl Txt<'_> {
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Txt::Raw(r) => r.get() == "\"\"",
            Txt::Str(s) => s.is_empty(),
        }
    }

    pub(super) fn put(&self, out: &mut Vec<u8>) {
        match self {
            Txt::Raw(r) => put_raw(out, r),
            Txt::Str(s) => put_str(out, s),
        }
    }
}

pub(super) enum ChatPart<'a> {
    Text(&'a RawValue),
    Image {
        url: &'a RawValue,
        detail: Option<&'a RawValue>,
    },
}

pub(super) enum Content<'a> {
    Null,
    Text(Txt<'a>),
    Parts(Vec<ChatPart<'a>>),
}

pub(super) struct ChatCall<'a> {
    pub(super) id: &'a RawValue,
    pub(super) name: &'a RawValue,
    pub(super) arguments: Txt<'a>,
}

pub(super) struct ChatMsg<'a> {
    pub(super) role: &'static str,
    pub(super) content: Content<'a>,
    pub(super) tool_call_id: Option<&'a RawValue>,
    pub(super) tool_calls: Vec<ChatCall<'a>>,
}

impl<'a> ChatMsg<'a> {
    pub(super) fn new(role: &'static str, content: Content<'a>) -> Self {
        ChatMsg {
            role,
            content,
            tool_call_id: None,
            tool_calls: Vec::new(),
        }
    }

    pub(super) fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"role\":\"");
        out.extend_from_slice(self.role.as_bytes());
        out.extend_from_slice(b"\",\"content\":");
        match &self.content {
            Content::Null => out.extend_from_slice(b"null"),
            Content::Text(t) => t.put(out),
            Content::Parts(parts) => {
                out.push(b'[');
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match p {
                        ChatPart::Text(t) => {
                            out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                            put_raw(out, t);
                        }
                        ChatPart::Image { url, detail } => {
                            out.extend_from_slice(
                                b"{\"type\":\"image_url\",\"image_url\":{\"url\":",
                            );
                            put_raw(out, url);
                            if let Some(d) = detail {
                                out.extend_from_slice(b",\"detail\":");
                                put_raw(out, d);
                            }
                            out.push(b'}');
                        }
                    }
                    out.push(b'}');
                }
                out.push(b']');
            }
        }
        if let Some(id) = self.tool_call_id {
            out.extend_from_slice(b",\"tool_call_id\":");
            put_raw(out, id);
        }
        if !self.tool_calls.is_empty() {
            out.extend_from_slice(b",\"tool_calls\":[");
            for (i, c) in self.tool_calls.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"id\":");
                put_raw(out, c.id);
                out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                put_raw(out, c.name);
                out.extend_from_slice(b",\"arguments\":");
                c.arguments.put(out);
                out.extend_from_slice(b"}}");
            }
            out.push(b']');
        }
        out.push(b'}');
    }
}

pub(super) struct ChatTool<'a> {
    pub(super) name: &'a RawValue,
    pub(super) description: Option<&'a RawValue>,
    pub(super) parameters: Option<&'a RawValue>,
    pub(super) strict: Option<&'a RawValue>,
}

pub(super) enum ToolChoice<'a> {
    Raw(&'a RawValue),
    Auto,
    Function(&'a RawValue),
}

pub(super) enum Format<'a> {
    JsonObject,
    JsonSchema {
        name: Option<&'a RawValue>,
        schema: Option<&'a RawValue>,
        strict: Option<&'a RawValue>,
        description: Option<&'a RawValue>,
    },
}

pub(super) fn build_chat<'a>(m: &'a Req<'a>) -> Result<(ChatRequest, Vec<String>), RequestError> {
    let missing_model = || err("missing_model", "model", "`model` is required");
    let model = match m.model.present() {
        Some(r) if is_str(r) => match raw_str(r) {
            Some(s) if !s.is_empty() => s.into_owned(),
            _ => return Err(missing_model()),
        },
        None => return Err(missing_model()),
        Some(_) => return Err(type_err("model", "a string")),
    };
    let stream = opt_bool(m.stream, "stream")?.unwrap_or(false);
    opt_bool(m.store, "store")?; // accepted either way; nothing is ever stored (responses say `"store": false`)
    if m.previous_response_id.present().is_some() {
        return Err(stateless(
            "previous_response_not_supported",
            "previous_response_id",
            "previous responses",
        ));
    }
    if m.conversation.present().is_some() {
        return Err(stateless(
            "conversation_not_supported",
            "conversation",
            "conversations",
        ));
    }
    if opt_bool(m.background, "background")? == Some(true) {
        return Err(err(
            "background_not_supported",
            "background",
            "background responses are not supported",
        ));
    }

    let mut messages = Vec::new();
    if let Some(s) = opt_str(m.instructions, "instructions")?.filter(|s| s.get() != "\"\"") {
        messages.push(ChatMsg::new("system", Content::Text(Txt::Raw(s))));
    }
    match &m.input {
        Input::Null => {}
        Input::Str(s) => messages.push(ChatMsg::new(
            "user",
            Content::Text(Txt::Str(Cow::Borrowed(s))),
        )),
        Input::Items(items) => {
            for (i, item) in items.iter().enumerate() {
                map_item(i, item, &mut messages)?;
            }
        }
        Input::Other => return Err(type_err("input", "a string or an array of input items")),
    }
    if messages.is_empty() {
        return Err(err(
            "missing_input",
            "input",
            "`input` must contain at least one message",
        ));
    }

    let (tools, dropped) = map_tools(m.tools)?;
    let tool_choice = map_tool_choice(m.tool_choice)?;
    let parallel = opt_bool(m.parallel_tool_calls, "parallel_tool_calls")?;
    let max_tokens = num(m.max_output_tokens, "max_output_tokens", true)?;
    let temperature = num(m.temperature, "temperature", false)?;
    let top_p = num(m.top_p, "top_p", false)?;
    let seed = num(m.seed, "seed", true)?;
    let user = opt_str(m.user, "user")?;
    let format = map_text_format(m.text)?;
    let mut effort = None;
    if let Some(r) = m.reasoning.present() {
        if !is_obj(r) {
            return Err(type_err("reasoning", "an object"));
        }
        // Not every reasoning upstream knows "minimal"; "low" is the nearest value they all accept. Other
        // efforts pass as given. `reasoning.summary` has no chat equivalent and is ignored.
        let r: ReasoningView = obj_of(r);
        effort = opt_str(r.effort, "reasoning.effort")?;
    }
    // `metadata`, `include`, `prompt_cache_key`, `client_metadata`, `safety_identifier`, `service_tier`,
    // `truncation`, `top_logprobs`, `stream_options` and `store` are accepted and not forwarded.

    let mut out = Vec::with_capacity(128 + m.input_len_hint());
    out.extend_from_slice(b"{\"model\":");
    put_str(&mut out, &model);
    out.extend_from_slice(b",\"messages\":[");
    for (i, msg) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        msg.put(&mut out);
    }
    out.push(b']');
    if stream {
        out.extend_from_slice(b",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    }
    // With no function tool left there is nothing to choose from; many upstreams reject a bare `tool_choice`.
    if !tools.is_empty() {
        out.extend_from_slice(b",\"tools\":[");
        for (i, t) in tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":");
            put_raw(&mut out, t.name);
            for (key, v) in [
                (&b",\"description\":"[..], t.description),
                (b",\"parameters\":", t.parameters),
                (b",\"strict\":", t.strict),
            ] {
                if let Some(v) = v {
                    out.extend_from_slice(key);
                    put_raw(&mut out, v);
                }
            }
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
        match tool_choice {
            None => {}
            Some(ToolChoice::Raw(r)) => {
                out.extend_from_slice(b",\"tool_choice\":");
                put_raw(&mut out, r);
            }
            Some(ToolChoice::Auto) => out.extend_from_slice(b",\"tool_choice\":\"auto\""),
            Some(ToolChoice::Function(name)) => {
                out.extend_from_slice(
                    b",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":",
                );
                put_raw(&mut out, name);
                out.extend_from_slice(b"}}");
            }
        }
        if let Some(p) = parallel {
            out.extend_from_slice(if p {
                b",\"parallel_tool_calls\":true"
            } else {
                b",\"parallel_tool_calls\":false"
            });
        }
    }
    for (key, v) in [
        (&b",\"max_tokens\":"[..], max_tokens),
        (b",\"temperature\":", temperature),
        (b",\"top_p\":", top_p),
        (b",\"seed\":", seed),
        (b",\"user\":", user),
    ] {
        if let Some(v) = v {
            out.extend_from_slice(key);
            put_raw(&mut out, v);
        }
    }
    match format {
        None => {}
        Some(Format::JsonObject) => {
            out.extend_from_slice(b",\"response_format\":{\"type\":\"json_object\"}")
        }
        Some(Format::JsonSchema {
            name,
            schema,
            strict,
            description,
        }) => {
            out.extend_from_slice(
                b",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":",
            );
            put_raw_or(&mut out, name, "\"response\"");
            for (key, v) in [
                (&b",\"schema\":"[..], schema),
                (b",\"strict\":", strict),
                (b",\"description\":", description),
            ] {
                if let Some(v) = v {
                    out.extend_from_slice(key);
                    put_raw(&mut out, v);
                }
            }
            out.extend_from_slice(b"}}");
        }
    }
    if let Some(e) = effort {
        out.extend_from_slice(b",\"reasoning_effort\":");
        if e.get() == "\"minimal\"" || raw_str(e).as_deref() == Some("minimal") {
            out.extend_from_slice(b"\"low\"");
        } else {
            put_raw(&mut out, e);
        }
    }
    out.push(b'}');
    let chat = ChatRequest {
        body: out,
        model,
        stream,
    };
    Ok((chat, dropped))
}

impl Req<'_> {
    /// A rough size for the chat body buffer.
    pub(super) fn input_len_hint(&self) -> usize {
        match &self.input {
            Input::Str(s) => s.len(),
            _ => 256,
        }
    }
}

pub(super) fn map_item<'a>(
    i: usize,
    item: &'a Obj<Item<'a>>,
    messages: &mut Vec<ChatMsg<'a>>,
) -> Result<(), RequestError> {
    let p = format!("input[{i}]");
    let Some(item) = &item.0 else {
        return Err(type_err(&p, "an object"));
    };
    let kind = match item.kind.present() {
        Some(t) if is_str(t) => text(t),
        None if item.role.0.is_some() => Cow::Borrowed("message"),
        _ => {
            return Err(err(
                "unsupported_input_item",
                format!("{p}.type"),
                "every input item needs a `type`",
            ))
        }
    };
    match &*kind {
        "message" => map_message(&p, item, messages),
        "function_call" => {
            let (id, name) = (
                req_str(item.call_id, &p, "call_id")?,
                req_str(item.name, &p, "name")?,
            );
            let arguments = match item.arguments.present() {
                None => Txt::Str(Cow::Borrowed("{}")),
                Some(s) if is_str(s) => Txt::Raw(s),
                Some(v) if is_obj(v) => Txt::Str(Cow::Owned(value_of(v).to_string())),
                Some(_) => return Err(type_err(&format!("{p}.arguments"), "a string")),
            };
            let call = ChatCall {
                id,
                name,
                arguments,
            };
            // Parallel calls (consecutive function_call items) and a directly preceding assistant text message
            // form one chat assistant message.
            if let Some(last) = messages.last_mut().filter(|l| l.role == "assistant") {
                if matches!(&last.content, Content::Text(t) if t.is_empty()) {
                    last.content = Content::Null;
                }
                last.tool_calls.push(call);
            } else {
                let mut msg = ChatMsg::new("assistant", Content::Null);
                msg.tool_calls.push(call);
                messages.push(msg);
            }
            Ok(())
        }
        "function_call_output" => {
            let call_id = req_str(item.call_id, &p, "call_id")?;
            let output = match item.output.present() {
                None => Txt::Str(Cow::Borrowed("")),
                Some(s) if is_str(s) => Txt::Raw(s),
                Some(a) if is_arr(a) => {
                    let Arr(parts) = view_of::<Arr<Obj<TextPart>>>(a);
                    let texts: Vec<&str> = parts
                        .iter()
                        .flatten()
                        .filter_map(|x| x.0.as_ref().and_then(|x| x.text.get()))
                        .collect();
                    Txt::Str(Cow::Owned(texts.join("\n")))
                }
                Some(v) => Txt::Str(Cow::Owned(value_of(v).to_string())),
            };
            let mut msg = ChatMsg::new("tool", Content::Text(output));
            msg.tool_call_id = Some(call_id);
            messages.push(msg);
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

pub(super) fn map_message<'a>(
    p: &str,
    item: &Item<'a>,
    messages: &mut Vec<ChatMsg<'a>>,
) -> Result<(), RequestError> {
    let role_param = || format!("{p}.role");
    let role = match opt_str(item.role, &role_param())?.map(text).as_deref() {
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some("system" | "developer") => "system",
        Some(other) => {
            return Err(err(
                "invalid_value",
                role_param(),
                format!("unsupported role `{other}`"),
            ))
        }
        None => return Err(missing(role_param())),
    };
    let content = match item.content.present() {
        None => Content::Text(Txt::Str(Cow::Borrowed(""))),
        Some(s) if is_str(s) => Content::Text(Txt::Raw(s)),
        Some(a) if is_arr(a) => map_parts(p, role, a)?,
        Some(_) => {
            return Err(type_err(
                &format!("{p}.content"),
                "a string or an array of content parts",
            ))
        }
    };
    messages.push(ChatMsg::new(role, content));
    Ok(())
}

pub(super) fn unsupported_content(param: String, message: impl Into<String>) -> RequestError {
    err("unsupported_content", param, message)
}

/// Content parts → chat content: text-only content becomes a string, anything with an image a parts array.
pub(super) fn map_parts<'a>(
    p: &str,
    role: &str,
    raw: &'a RawValue,
) -> Result<Content<'a>, RequestError> {
    let Arr(parts) = view_of::<Arr<Obj<Part<'a>>>>(raw);
    let parts = parts.unwrap_or_default();
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}.content[{j}]");
        let part = part.0.as_ref();
        let kind = part
            .and_then(|x| x.kind.0)
            .filter(|t| is_str(t))
            .map_or(Cow::Borrowed(""), text);
        let Some(part) = part.filter(|_| !kind.is_empty()) else {
            return Err(unsupported_content(
                format!("{pp}.type"),
                format!("unsupported content part `{kind}`"),
            ));
        };
        match &*kind {
            "input_text" | "output_text" | "text" => {
                out.push(ChatPart::Text(req_str(part.text, &pp, "text")?))
            }
            "refusal" => out.push(ChatPart::Text(req_str(part.refusal, &pp, "refusal")?)),
            "input_image" if role == "user" => {
                if part.file_id.present().is_some() {
                    let why =
                        "file ids need stored files, which this stateless gateway does not have; \
                               send the image as a URL or data URL in `image_url`";
                    return Err(unsupported_content(format!("{pp}.file_id"), why));
                }
                let url = match part.image_url.present() {
                    Some(s) if is_str(s) => s,
                    Some(u) if is_obj(u) => {
                        let u: UrlView = obj_of(u);
                        req_str(u.url, &format!("{pp}.image_url"), "url")?
                    }
                    _ => return Err(missing(format!("{pp}.image_url"))),
                };
                let detail = part.detail.present();
                out.push(ChatPart::Image { url, detail });
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
    if out.iter().all(|x| matches!(x, ChatPart::Text(_))) {
        // Separate parts are separate blocks in user/system messages; assistant output_text parts are pieces of
        // one answer.
        if let [ChatPart::Text(only)] = out[..] {
            return Ok(Content::Text(Txt::Raw(only)));
        }
        let texts: Vec<Cow<str>> = out
            .iter()
            .filter_map(|x| match x {
                ChatPart::Text(t) => Some(text(t)),
                ChatPart::Image { .. } => None,
            })
            .collect();
        let sep = if role == "assistant" { "" } else { "\n\n" };
        return Ok(Content::Text(Txt::Str(Cow::Owned(texts.join(sep)))));
    }
    Ok(Content::Parts(out))
}

/// Function tools → chat tools; namespace tools are flattened; everything else is dropped and named.
///
/// A request with only hosted tools keeps working too: they are all dropped and the model answers without them
/// (refusing would break clients such as Codex, which always sends `web_search`). Only a `tool_choice` that forces
/// a hosted tool is refused (see [`map_tool_choice`]).
pub(super) fn map_tools(v: Raw) -> Result<(Vec<ChatTool>, Vec<String>), RequestError> {
    let (mut chat, mut dropped) = (Vec::new(), Vec::new());
    match v.present() {
        None => {}
        Some(a) if is_arr(a) => {
            let Arr(tools) = view_of::<Arr<Obj<Tool>>>(a);
            for (k, t) in tools.iter().flatten().enumerate() {
                map_tool(&format!("tools[{k}]"), t, &mut chat, &mut dropped)?;
            }
        }
        Some(_) => return Err(type_err("tools", "an array")),
    }
    Ok((chat, dropped))
}

pub(super) fn map_tool<'a>(
    p: &str,
    t: &Obj<Tool<'a>>,
    chat: &mut Vec<ChatTool<'a>>,
    dropped: &mut Vec<String>,
) -> Result<(), RequestError> {
    let Some(t) = &t.0 else {
        return Err(type_err(p, "an object"));
    };
    let kind = text(req_str(t.kind, p, "type")?);
    match (&*kind, t.tools.present().filter(|x| is_arr(x))) {
        ("function", _) => {
            let name = req_str(t.name, p, "name")?;
            chat.push(ChatTool {
                name,
                description: t.description.present(),
                parameters: t.parameters.present(),
                strict: t.strict.0.filter(|s| is_bool(s)),
            });
        }
        ("namespace", Some(nested)) => {
            let Arr(nested) = view_of::<Arr<Obj<Tool<'a>>>>(nested);
            for (n, inner) in nested.iter().flatten().enumerate() {
                map_tool(&format!("{p}.tools[{n}]"), inner, chat, dropped)?;
            }
        }
        // Hosted and custom tools: web_search, file_search, code_interpreter, mcp, custom, local_shell, ….
        _ => {
            let name = t.name.0.filter(|n| is_str(n)).map(text);
            dropped.push(name.unwrap_or(kind).into_owned());
        }
    }
    Ok(())
}

pub(super) fn map_tool_choice<'a>(v: Raw<'a>) -> Result<Option<ToolChoice<'a>>, RequestError> {
    let Some(v) = v.present() else {
        return Ok(None);
    };
    if is_str(v) {
        return match &*text(v) {
            "auto" | "none" | "required" => Ok(Some(ToolChoice::Raw(v))),
            s => Err(err(
                "invalid_value",
                "tool_choice",
                format!("unsupported tool_choice `{s}`"),
            )),
        };
    }
    if !is_obj(v) {
        return Err(type_err("tool_choice", "a string or an object"));
    }
    let c: ChoiceView = obj_of(v);
    let str_of = |r: Raw<'a>| kept(r, is_str);
    let kind = str_of(c.kind).map_or(Cow::Borrowed(""), text);
    match &*kind {
        "function" => {
            let nested = || {
                c.function
                    .0
                    .filter(|f| is_obj(f))
                    .and_then(|f| str_of(obj_of::<NameView>(f).name))
            };
            let name = str_of(c.name).or_else(nested);
            let name = name.ok_or_else(|| missing("tool_choice.name".into()))?;
            Ok(Some(ToolChoice::Function(name)))
        }
        // The allowed-tools restriction has no chat equivalent; its mode is kept.
        "allowed_tools" => Ok(Some(str_of(c.mode).map_or(ToolChoice::Auto, ToolChoice::Raw))),
        other => Err(err(
            "unsupported_tool",
            "tool_choice",
            format!("`tool_choice` requires the hosted tool `{other}`, which this gateway does not provide"),
        )),
    }
}

pub(super) fn map_text_format(t: Raw) -> Result<Option<Format>, RequestError> {
    let Some(t) = t.present() else {
        return Ok(None);
    };
    if !is_obj(t) {
        return Err(type_err("text", "an object"));
    }
    let Some(f) = obj_of::<TextView>(t).format.present() else {
        return Ok(None);
    };
    if !is_obj(f) {
        return Err(type_err("text.format", "an object"));
    }
    let f: FormatView = obj_of(f);
    let kind = f
        .kind
        .0
        .filter(|k| is_str(k))
        .map_or(Cow::Borrowed("text"), text);
    match &*kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(Format::JsonObject)),
        "json_schema" => Ok(Some(Format::JsonSchema {
            name: opt_str(f.name, "text.format.name")?,
            schema: f.schema.present(),
            strict: f.strict.present(),
            description: f.description.present(),
        })),
        other => Err(err(
            "invalid_value",
            "text.format.type",
            format!("unsupported text format `{other}`"),
        )),
    }
}

/// A member that is there (not absent) and passes `ok`.
pub(super) fn kept(r: Raw<'_>, ok: fn(&RawValue) -> bool) -> Option<&RawValue> {
    r.0.filter(|v| ok(v))
}

pub(super) fn build_context(
    m: &Req,
    response_id: String,
    created_at: u64,
    dropped_tools: Vec<String>,
) -> ResponseContext {
    let mut e = Vec::with_capacity(320);
    e.extend_from_slice(b"\"instructions\":");
    put_compact_or(&mut e, kept(m.instructions, is_str), "null");
    e.extend_from_slice(b",\"tools\":");
    put_compact_or(&mut e, kept(m.tools, is_arr), "[]");
    e.extend_from_slice(b",\"tool_choice\":");
    put_compact_or(&mut e, m.tool_choice.present(), "\"auto\"");
    e.extend_from_slice(b",\"parallel_tool_calls\":");
    let parallel = m.parallel_tool_calls.0.filter(|p| is_bool(p));
    e.extend_from_slice(parallel.map_or("true", RawValue::get).as_bytes());
    e.extend_from_slice(b",\"text\":");
    match kept(m.text, is_obj) {
        None => e.extend_from_slice(b"{\"format\":{\"type\":\"text\"}}"),
        Some(t) if obj_of::<TextView>(t).format.present().is_some() => put_compact(&mut e, t),
        Some(t) => {
            let mut t = value_of(t);
            t["format"] = serde_json::json!({"type": "text"});
            let _ = serde_json::to_writer(&mut e, &t);
        }
    }
    e.extend_from_slice(b",\"reasoning\":{\"effort\":");
    let effort =
        kept(m.reasoning, is_obj).and_then(|r| obj_of::<ReasoningView>(r).effort.present());
    put_compact_or(&mut e, effort, "null");
    e.extend_from_slice(b",\"summary\":null}");
    for (key, v) in [
        (&b",\"max_output_tokens\":"[..], m.max_output_tokens),
        (b",\"temperature\":", m.temperature),
        (b",\"top_p\":", m.top_p),
    ] {
        e.extend_from_slice(key);
        put_compact_or(&mut e, v.present(), "null");
    }
    e.extend_from_slice(b",\"metadata\":");
    put_compact_or(&mut e, kept(m.metadata, is_obj), "{}");
    e.extend_from_slice(b",\"user\":");
    put_compact_or(&mut e, kept(m.user, is_str), "null");
    e.extend_from_slice(
        b",\"store\":false,\"truncation\":\"disabled\",\"previous_response_id\":null",
    );
    ResponseContext {
        response_id,
        model: kept(m.model, is_str)
            .map(text)
            .unwrap_or_default()
            .into_owned(),
        created_at,
        stream: m.stream.0.is_some_and(|s| s.get() == "true"),
        dropped_tools,
        echo: String::from_utf8(e).unwrap_or_default(),
    }
}
