//! Native dialects: pure translations between the OpenAI wire format the gateway speaks to clients and a provider's
//! own format, both ways, streaming included. No I/O here; the relay feeds bytes in and takes bytes out. This module
//! holds what both dialects share: the error type, one validated reading of an OpenAI chat or embeddings request
//! (so every dialect refuses the same inputs with the same `param`), and the writers of OpenAI `chat.completion`,
//! `chat.completion.chunk` and embeddings bodies. Provider wire types stay inside their own module.

pub mod cohere;
pub mod gemini;

use serde::Serialize;
use serde_json::{Map, Value};

/// Why a translation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    /// The client's request cannot be expressed in the target dialect (→ HTTP 400 to the client). `param` names the
    /// offending OpenAI field when known, e.g. `messages[2].content`.
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    /// The provider answered something that is not the documented shape (→ treated as an upstream server failure,
    /// so the gateway fails over).
    #[error("upstream answer could not be translated: {0}")]
    Upstream(String),
}

pub(crate) fn bad_request(message: impl Into<String>, param: impl Into<String>) -> DialectError {
    DialectError::BadRequest {
        message: message.into(),
        param: Some(param.into()),
    }
}

fn bad_body(message: impl Into<String>) -> DialectError {
    DialectError::BadRequest {
        message: message.into(),
        param: None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The OpenAI chat request, read once and validated.
// ---------------------------------------------------------------------------------------------------------------

/// An OpenAI chat request reduced to what a native dialect can express. Fields with no meaning outside OpenAI
/// (`logprobs`, `top_logprobs`, `logit_bias`, `user`, `metadata`, `store`, `service_tier`, `parallel_tool_calls`,
/// `modalities`, `audio`, `prediction`, `web_search_options`, `stream_options`, `min_p`, `repetition_penalty`) are
/// not read at all.
#[derive(Debug, Default)]
pub(crate) struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<FunctionTool>,
    pub tool_choice: Option<ToolChoice>,
    pub response_format: Option<ResponseFormat>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    /// `max_tokens`, else `max_completion_tokens`; zero or negative means unset.
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub n: Option<u64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub reasoning_effort: Option<ReasoningEffort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `system` and `developer`.
    System,
    User,
    Assistant,
    /// `tool` and the legacy `function`.
    Tool,
}

#[derive(Debug)]
pub(crate) struct Message {
    /// Position in the client's `messages` array, for error `param`s.
    pub index: usize,
    pub role: Role,
    /// In order; a string content is one `Text` part. `content[j]` in a `param` is the position in this list.
    pub content: Vec<ContentPart>,
    pub tool_calls: Vec<ToolCall>,
    /// For tool messages: the call answered, given by the client or paired by order with the open calls.
    pub tool_call_id: Option<String>,
    /// For tool messages: the function's name, given by the client or looked up from the call.
    pub name: Option<String>,
    /// An assistant's `reasoning_content` (or a non-standard `tool_plan`), as a client replays it.
    pub reasoning: Option<String>,
}

impl Message {
    /// The text parts joined; `None` names the first non-text part's index.
    pub fn text(&self) -> Result<String, usize> {
        let mut text = String::new();
        for (j, part) in self.content.iter().enumerate() {
            match part {
                ContentPart::Text(t) => text.push_str(t),
                _ => return Err(j),
            }
        }
        Ok(text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ContentPart {
    Text(String),
    /// `image_url`: a `data:` URL or an http(s) URL.
    Image {
        url: String,
        detail: Option<String>,
    },
    /// `input_audio`: base64 data and a format such as `wav` or `mp3`.
    Audio {
        data: String,
        format: String,
    },
    /// `file` with inline `file_data` (a `data:` URL).
    File {
        data_url: String,
        filename: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    /// The JSON text of the arguments (objects sent by the client are serialised).
    pub arguments: String,
    /// Gemini's `thoughtSignature`, carried by OpenAI clients in `extra_content.google.thought_signature`.
    pub thought_signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionTool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub strict: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResponseFormat {
    JsonObject,
    JsonSchema {
        name: Option<String>,
        schema: Option<Value>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReasoningEffort {
    None,
    Minimal,
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    /// The spellings the gateway accepts; anything else is dropped.
    fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "none" | "off" | "disabled" => Self::None,
            "minimal" | "min" | "lowest" => Self::Minimal,
            "low" => Self::Low,
            "medium" | "mid" | "normal" => Self::Medium,
            "high" | "max" | "xhigh" => Self::High,
            _ => return None,
        })
    }

    /// The thinking budget in tokens the gateway uses for each level (0 = thinking off).
    pub fn budget_tokens(self) -> u64 {
        match self {
            Self::None | Self::Minimal => 0,
            Self::Low => 1024,
            Self::Medium => 8192,
            Self::High => 24576,
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, DialectError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(bad_body("the request body must be a JSON object")),
        Err(e) => Err(bad_body(format!("the request body is not valid JSON: {e}"))),
    }
}

/// A field that is absent or `null` is `None`.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, DialectError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad_request(format!("`{key}` must be a number"), key)),
    }
}

/// Integers, also written as `100.0`.
fn opt_i64(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, DialectError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => match (v.as_i64(), v.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            _ => Err(bad_request(format!("`{key}` must be an integer"), key)),
        },
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a str>, DialectError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_request(format!("`{param}` must be a string"), param)),
    }
}

/// Reads and validates an OpenAI chat-completions body.
pub(crate) fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, DialectError> {
    let obj = parse_object(body)?;
    let mut req = ChatRequest {
        messages: parse_messages(&obj)?,
        ..ChatRequest::default()
    };
    req.tools = parse_tools(&obj)?;
    req.tool_choice = parse_tool_choice(&obj)?;
    req.response_format = parse_response_format(&obj)?;
    req.temperature = opt_f64(&obj, "temperature")?;
    req.top_p = opt_f64(&obj, "top_p")?;
    req.top_k = opt_i64(&obj, "top_k")?.filter(|k| *k > 0).map(|k| k as u64);
    let max_tokens = match opt_i64(&obj, "max_tokens")? {
        Some(v) => Some(v),
        None => opt_i64(&obj, "max_completion_tokens")?,
    };
    req.max_tokens = max_tokens.filter(|v| *v > 0).map(|v| v as u64);
    req.stop = match field(&obj, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    bad_request("`stop` entries must be strings", format!("stop[{i}]"))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(bad_request(
                "`stop` must be a string or an array of strings",
                "stop",
            ))
        }
    };
    req.n = opt_i64(&obj, "n")?.filter(|n| *n > 0).map(|n| n as u64);
    req.seed = opt_i64(&obj, "seed")?;
    req.presence_penalty = opt_f64(&obj, "presence_penalty")?;
    req.frequency_penalty = opt_f64(&obj, "frequency_penalty")?;
    let effort = match opt_str(&obj, "reasoning_effort", "reasoning_effort")? {
        Some(s) => Some(s),
        None => match field(&obj, "reasoning") {
            Some(Value::Object(r)) => opt_str(r, "effort", "reasoning.effort")?,
            _ => None,
        },
    };
    req.reasoning_effort = effort.and_then(ReasoningEffort::parse);
    Ok(req)
}

fn parse_messages(obj: &Map<String, Value>) -> Result<Vec<Message>, DialectError> {
    let items = match field(obj, "messages") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) => {
            return Err(bad_request("`messages` must not be empty", "messages"))
        }
        Some(_) => return Err(bad_request("`messages` must be an array", "messages")),
        None => return Err(bad_request("`messages` is required", "messages")),
    };
    let mut messages = Vec::with_capacity(items.len());
    // Calls of the latest assistant turn not answered yet, in order: id-less tool results take them in turn.
    let mut open_calls: Vec<(String, String)> = Vec::new();
    let mut auto_ids = 0usize;
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(bad_request(
                "each message must be an object",
                format!("messages[{i}]"),
            ));
        };
        let role_param = format!("messages[{i}].role");
        let role = match opt_str(m, "role", &role_param)? {
            Some("system" | "developer") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("tool" | "function") => Role::Tool,
            Some(other) => {
                return Err(bad_request(
                    format!("unknown message role `{other}`"),
                    role_param,
                ))
            }
            None => return Err(bad_request("every message needs a `role`", role_param)),
        };
        let content = parse_content(m, i)?;
        let mut message = Message {
            index: i,
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: opt_str(m, "name", &format!("messages[{i}].name"))?.map(str::to_owned),
            reasoning: None,
        };
        match role {
            Role::Assistant => {
                message.tool_calls = parse_tool_calls(m, i, &mut auto_ids)?;
                message.reasoning = match opt_str(m, "reasoning_content", "")
                    .ok()
                    .flatten()
                    .or_else(|| opt_str(m, "tool_plan", "").ok().flatten())
                {
                    Some(s) if !s.is_empty() => Some(s.to_owned()),
                    _ => None,
                };
                open_calls = message
                    .tool_calls
                    .iter()
                    .map(|c| (c.id.clone(), c.name.clone()))
                    .collect();
                message.name = None;
            }
            Role::Tool => {
                let id_param = format!("messages[{i}].tool_call_id");
                let given = opt_str(m, "tool_call_id", &id_param)?.map(str::to_owned);
                let position = match &given {
                    Some(id) => open_calls.iter().position(|(open, _)| open == id),
                    None => match &message.name {
                        Some(name) => open_calls.iter().position(|(_, n)| n == name),
                        None => (!open_calls.is_empty()).then_some(0),
                    },
                };
                let paired = position.map(|p| open_calls.remove(p));
                message.tool_call_id = given.or_else(|| paired.as_ref().map(|(id, _)| id.clone()));
                if message.name.is_none() {
                    message.name = paired.map(|(_, name)| name).or_else(|| {
                        // A result for a call of an older turn: look the name up further back.
                        let id = message.tool_call_id.as_deref()?;
                        messages.iter().rev().find_map(|earlier: &Message| {
                            earlier
                                .tool_calls
                                .iter()
                                .find(|c| c.id == id)
                                .map(|c| c.name.clone())
                        })
                    });
                }
            }
            Role::User | Role::System => {}
        }
        messages.push(message);
    }
    Ok(messages)
}

fn parse_content(m: &Map<String, Value>, i: usize) -> Result<Vec<ContentPart>, DialectError> {
    match field(m, "content") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![ContentPart::Text(s.clone())]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| parse_content_part(part, &format!("messages[{i}].content[{j}]")))
            .collect(),
        Some(_) => Err(bad_request(
            "message content must be a string, an array of parts or null",
            format!("messages[{i}].content"),
        )),
    }
}

fn parse_content_part(part: &Value, param: &str) -> Result<ContentPart, DialectError> {
    let Value::Object(p) = part else {
        // Some clients send bare strings inside the array.
        return match part {
            Value::String(s) => Ok(ContentPart::Text(s.clone())),
            _ => Err(bad_request("content parts must be objects", param)),
        };
    };
    let kind = opt_str(p, "type", &format!("{param}.type"))?.unwrap_or("text");
    match kind {
        "text" | "input_text" | "refusal" => {
            let key = if kind == "refusal" { "refusal" } else { "text" };
            let text = opt_str(p, key, &format!("{param}.{key}"))?.unwrap_or_default();
            Ok(ContentPart::Text(text.to_owned()))
        }
        "image_url" => {
            let (url, detail) = match field(p, "image_url") {
                Some(Value::String(url)) => (url.clone(), None),
                Some(Value::Object(img)) => {
                    let url_param = format!("{param}.image_url.url");
                    let url = opt_str(img, "url", &url_param)?
                        .ok_or_else(|| bad_request("`image_url.url` is required", &url_param))?;
                    let detail = opt_str(img, "detail", &format!("{param}.image_url.detail"))?;
                    (url.to_owned(), detail.map(str::to_owned))
                }
                _ => {
                    return Err(bad_request(
                        "`image_url` must be an object with a `url`",
                        format!("{param}.image_url"),
                    ))
                }
            };
            Ok(ContentPart::Image { url, detail })
        }
        "input_audio" => {
            let Some(Value::Object(audio)) = field(p, "input_audio") else {
                return Err(bad_request(
                    "`input_audio` must be an object with `data` and `format`",
                    format!("{param}.input_audio"),
                ));
            };
            let data = opt_str(audio, "data", &format!("{param}.input_audio.data"))?;
            let format = opt_str(audio, "format", &format!("{param}.input_audio.format"))?;
            match (data, format) {
                (Some(data), Some(format)) => Ok(ContentPart::Audio {
                    data: data.to_owned(),
                    format: format.to_owned(),
                }),
                _ => Err(bad_request(
                    "`input_audio` needs `data` and `format`",
                    format!("{param}.input_audio"),
                )),
            }
        }
        "file" => {
            let Some(Value::Object(file)) = field(p, "file") else {
                return Err(bad_request(
                    "`file` must be an object",
                    format!("{param}.file"),
                ));
            };
            let data = opt_str(file, "file_data", &format!("{param}.file.file_data"))?;
            let Some(data) = data else {
                return Err(bad_request(
                    "only inline files (`file.file_data`) can be translated; uploaded file ids cannot",
                    format!("{param}.file"),
                ));
            };
            let filename = opt_str(file, "filename", &format!("{param}.file.filename"))?;
            Ok(ContentPart::File {
                data_url: data.to_owned(),
                filename: filename.map(str::to_owned),
            })
        }
        other => Err(bad_request(
            format!("content part type `{other}` cannot be translated"),
            format!("{param}.type"),
        )),
    }
}

fn parse_tool_calls(
    m: &Map<String, Value>,
    i: usize,
    auto_ids: &mut usize,
) -> Result<Vec<ToolCall>, DialectError> {
    let mut calls = Vec::new();
    let mut read_call = |call: &Map<String, Value>, param: String| -> Result<(), DialectError> {
        let id = match opt_str(call, "id", &format!("{param}.id"))? {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                *auto_ids += 1;
                format!("call_auto_{auto_ids}")
            }
        };
        let function = match field(call, "function") {
            Some(Value::Object(f)) => f,
            // The legacy `function_call` is the function object itself.
            _ if call.contains_key("name") => call,
            _ => {
                return Err(bad_request(
                    "a tool call needs a `function` object",
                    format!("{param}.function"),
                ))
            }
        };
        let name = opt_str(function, "name", &format!("{param}.function.name"))?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                bad_request(
                    "a tool call needs a function name",
                    format!("{param}.function.name"),
                )
            })?;
        let arguments = match field(function, "arguments") {
            None => "{}".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let thought_signature = call
            .get("extra_content")
            .and_then(|e| e.get("google"))
            .and_then(|g| g.get("thought_signature"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        calls.push(ToolCall {
            id,
            name: name.to_owned(),
            arguments,
            thought_signature,
        });
        Ok(())
    };
    match field(m, "tool_calls") {
        None => {}
        Some(Value::Array(items)) => {
            for (k, item) in items.iter().enumerate() {
                let param = format!("messages[{i}].tool_calls[{k}]");
                let Value::Object(call) = item else {
                    return Err(bad_request("a tool call must be an object", param));
                };
                read_call(call, param)?;
            }
        }
        Some(_) => {
            return Err(bad_request(
                "`tool_calls` must be an array",
                format!("messages[{i}].tool_calls"),
            ))
        }
    }
    if let Some(Value::Object(call)) = field(m, "function_call") {
        read_call(call, format!("messages[{i}].function_call"))?;
    }
    Ok(calls)
}

fn parse_tools(obj: &Map<String, Value>) -> Result<Vec<FunctionTool>, DialectError> {
    let items = match field(obj, "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad_request("`tools` must be an array", "tools")),
    };
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(tool) = item else {
            return Err(bad_request(
                "a tool must be an object",
                format!("tools[{i}]"),
            ));
        };
        let kind = opt_str(tool, "type", &format!("tools[{i}].type"))?.unwrap_or("function");
        if kind != "function" {
            return Err(bad_request(
                format!("tool type `{kind}` cannot be translated; only `function` tools can"),
                format!("tools[{i}].type"),
            ));
        }
        let Some(Value::Object(function)) = field(tool, "function") else {
            return Err(bad_request(
                "a function tool needs a `function` object",
                format!("tools[{i}].function"),
            ));
        };
        let name_param = format!("tools[{i}].function.name");
        let name = opt_str(function, "name", &name_param)?
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad_request("a function tool needs a name", &name_param))?;
        let parameters = match field(function, "parameters") {
            None => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => {
                return Err(bad_request(
                    "`parameters` must be a JSON-schema object",
                    format!("tools[{i}].function.parameters"),
                ))
            }
        };
        tools.push(FunctionTool {
            name: name.to_owned(),
            description: opt_str(
                function,
                "description",
                &format!("tools[{i}].function.description"),
            )?
            .map(str::to_owned),
            parameters,
            strict: function
                .get("strict")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
    Ok(tools)
}

fn parse_tool_choice(obj: &Map<String, Value>) -> Result<Option<ToolChoice>, DialectError> {
    let choice = match field(obj, "tool_choice") {
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" | "any" => ToolChoice::Required,
            other => {
                return Err(bad_request(
                    format!("unknown `tool_choice` `{other}`"),
                    "tool_choice",
                ))
            }
        },
        Some(Value::Object(c)) => {
            let name = c
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| c.get("name"))
                .and_then(Value::as_str);
            match name {
                Some(name) => ToolChoice::Named(name.to_owned()),
                None => {
                    return Err(bad_request(
                        "`tool_choice` object must name a function",
                        "tool_choice",
                    ))
                }
            }
        }
        Some(_) => {
            return Err(bad_request(
                "`tool_choice` must be a string or an object",
                "tool_choice",
            ))
        }
    };
    Ok(Some(choice))
}

fn parse_response_format(obj: &Map<String, Value>) -> Result<Option<ResponseFormat>, DialectError> {
    let Some(format) = field(obj, "response_format") else {
        return Ok(None);
    };
    let Value::Object(f) = format else {
        return Err(bad_request(
            "`response_format` must be an object",
            "response_format",
        ));
    };
    match opt_str(f, "type", "response_format.type")? {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let spec = f.get("json_schema").and_then(Value::as_object);
            Ok(Some(ResponseFormat::JsonSchema {
                name: spec
                    .and_then(|s| s.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                schema: spec
                    .and_then(|s| s.get("schema"))
                    .filter(|s| s.is_object())
                    .cloned(),
            }))
        }
        Some(other) => Err(bad_request(
            format!("`response_format` type `{other}` cannot be translated"),
            "response_format.type",
        )),
    }
}

/// Splits a `data:<mime>;base64,<data>` URL.
pub(crate) fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    let mime = mime.split(';').next().unwrap_or(mime);
    Some((
        if mime.is_empty() {
            "application/octet-stream"
        } else {
            mime
        },
        data,
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// The OpenAI embeddings request.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
pub(crate) struct EmbeddingsRequest {
    pub inputs: Vec<String>,
    pub dimensions: Option<u64>,
    /// `encoding_format: "base64"`.
    pub base64: bool,
    /// A non-standard `input_type` (Cohere's vocabulary), passed through when present.
    pub input_type: Option<String>,
}

pub(crate) fn parse_embeddings_request(body: &[u8]) -> Result<EmbeddingsRequest, DialectError> {
    let obj = parse_object(body)?;
    let token_arrays = || {
        bad_request(
            "token-array `input` cannot be translated for this provider; send text",
            "input",
        )
    };
    let inputs = match field(&obj, "input") {
        None => return Err(bad_request("`input` is required", "input")),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(bad_request("`input` must not be empty", "input"))
        }
        Some(Value::Array(items)) => {
            let mut inputs = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => inputs.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => return Err(token_arrays()),
                    _ => {
                        return Err(bad_request(
                            "`input` entries must be strings",
                            format!("input[{i}]"),
                        ))
                    }
                }
            }
            inputs
        }
        Some(_) => {
            return Err(bad_request(
                "`input` must be a string or an array of strings",
                "input",
            ))
        }
    };
    let base64 = match opt_str(&obj, "encoding_format", "encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(bad_request(
                format!("unknown `encoding_format` `{other}`"),
                "encoding_format",
            ))
        }
    };
    Ok(EmbeddingsRequest {
        inputs,
        dimensions: opt_i64(&obj, "dimensions")?
            .filter(|d| *d > 0)
            .map(|d| d as u64),
        base64,
        input_type: opt_str(&obj, "input_type", "input_type")?.map(str::to_owned),
    })
}

/// Whether an OpenAI embeddings request asked for `encoding_format: "base64"`, for the response translators.
/// A body that cannot be read answers `false` (the request translator has refused it already).
pub fn openai_embeddings_wants_base64(body: &[u8]) -> bool {
    parse_embeddings_request(body).is_ok_and(|r| r.base64)
}

#[derive(Serialize)]
struct EmbeddingsOut<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut>,
    model: &'a str,
    usage: EmbeddingsUsageOut,
}

#[derive(Serialize)]
struct EmbeddingOut {
    object: &'static str,
    index: usize,
    embedding: Value,
}

#[derive(Serialize)]
struct EmbeddingsUsageOut {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// An OpenAI embeddings list. With `base64`, each vector is its f32 little-endian bytes in standard base64, as
/// OpenAI sends it.
pub(crate) fn render_embeddings(
    vectors: &[Vec<f64>],
    model: &str,
    base64: bool,
    prompt_tokens: u64,
) -> Result<Vec<u8>, DialectError> {
    let data = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| EmbeddingOut {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                Value::String(base64_encode(&bytes))
            } else {
                Value::from(v.clone())
            },
        })
        .collect();
    let out = EmbeddingsOut {
        object: "list",
        data,
        model,
        usage: EmbeddingsUsageOut {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    };
    serde_json::to_vec(&out).map_err(|e| DialectError::Upstream(e.to_string()))
}

/// Standard base64 (RFC 4648) with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// OpenAI responses: `chat.completion`, `chat.completion.chunk` frames.
// ---------------------------------------------------------------------------------------------------------------

/// One choice of a non-streamed answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ChoiceOut {
    pub text: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCallOut>,
    pub finish_reason: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCallOut {
    pub id: String,
    pub name: String,
    pub arguments: String,
    /// Provider data the client must send back with the call (`extra_content` on the tool call).
    pub extra_content: Option<Value>,
}

/// Token counts in OpenAI's terms.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct UsageOut {
    pub prompt_tokens: u64,
    /// Includes reasoning tokens, as OpenAI counts them.
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetailsOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetailsOut>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct PromptDetailsOut {
    pub cached_tokens: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct CompletionDetailsOut {
    pub reasoning_tokens: u64,
}

impl UsageOut {
    pub fn new(prompt: u64, completion: u64, reasoning: Option<u64>, cached: Option<u64>) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: cached.map(|cached_tokens| PromptDetailsOut { cached_tokens }),
            completion_tokens_details: reasoning
                .map(|reasoning_tokens| CompletionDetailsOut { reasoning_tokens }),
        }
    }
}

#[derive(Serialize)]
struct CompletionOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<CompletionChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a UsageOut>,
}

#[derive(Serialize)]
struct CompletionChoiceOut<'a> {
    index: usize,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    /// `null` when the answer is only tool calls, as OpenAI sends it.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallDeltaOut<'a>>,
}

#[derive(Serialize)]
struct ToolCallDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_content: Option<&'a Value>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Renders an OpenAI `chat.completion` object.
pub(crate) fn render_completion(
    id: &str,
    created: u64,
    model: &str,
    choices: &[ChoiceOut],
    usage: Option<&UsageOut>,
) -> Result<Vec<u8>, DialectError> {
    let choices = choices
        .iter()
        .enumerate()
        .map(|(index, c)| CompletionChoiceOut {
            index,
            message: MessageOut {
                role: "assistant",
                content: if c.text.is_empty() && !c.tool_calls.is_empty() {
                    None
                } else {
                    Some(&c.text)
                },
                reasoning_content: (!c.reasoning.is_empty()).then_some(c.reasoning.as_str()),
                tool_calls: c
                    .tool_calls
                    .iter()
                    .map(|t| ToolCallDeltaOut {
                        index: None,
                        id: Some(&t.id),
                        kind: Some("function"),
                        function: FunctionOut {
                            name: Some(&t.name),
                            arguments: &t.arguments,
                        },
                        extra_content: t.extra_content.as_ref(),
                    })
                    .collect(),
            },
            logprobs: None,
            finish_reason: c.finish_reason,
        })
        .collect();
    let out = CompletionOut {
        id,
        object: "chat.completion",
        created,
        model,
        choices,
        usage,
    };
    serde_json::to_vec(&out).map_err(|e| DialectError::Upstream(e.to_string()))
}

/// What one streamed delta carries. Empty fields are left out of the frame.
#[derive(Debug, Default)]
pub(crate) struct DeltaOut<'a> {
    pub role: bool,
    pub content: &'a str,
    pub reasoning: &'a str,
    pub tool_calls: Vec<ToolCallDelta<'a>>,
}

/// A tool-call delta: the first one of a call carries `id` and `name`, later ones only argument fragments.
#[derive(Debug)]
pub(crate) struct ToolCallDelta<'a> {
    pub index: usize,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub arguments: &'a str,
    pub extra_content: Option<&'a Value>,
}

impl DeltaOut<'_> {
    pub fn is_empty(&self) -> bool {
        !self.role
            && self.content.is_empty()
            && self.reasoning.is_empty()
            && self.tool_calls.is_empty()
    }
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a UsageOut>,
}

#[derive(Serialize)]
struct ChunkChoiceOut<'a> {
    index: usize,
    delta: ChunkDeltaOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ChunkDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallDeltaOut<'a>>,
}

#[derive(Serialize)]
struct ErrorFrameOut<'a> {
    error: ErrorFrameInner<'a>,
}

#[derive(Serialize)]
struct ErrorFrameInner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'a str,
}

/// Writes OpenAI SSE frames for one response: the identity every chunk repeats.
#[derive(Debug, Clone)]
pub(crate) struct ChunkWriter {
    id: String,
    model: String,
    created: u64,
}

impl ChunkWriter {
    pub fn new(model: &str, id: &str, created: u64) -> Self {
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            created,
        }
    }

    fn frame<T: Serialize>(out: &mut Vec<u8>, value: &T) {
        // Serialising these plain structs cannot fail; a failure would drop the frame rather than half-write it.
        if let Ok(json) = serde_json::to_vec(value) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&json);
            out.extend_from_slice(b"\n\n");
        }
    }

    /// One `chat.completion.chunk` for choice `index`.
    pub fn delta(
        &self,
        out: &mut Vec<u8>,
        index: usize,
        delta: &DeltaOut<'_>,
        finish_reason: Option<&str>,
    ) {
        fn nonempty(s: &str) -> Option<&str> {
            (!s.is_empty()).then_some(s)
        }
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoiceOut {
                index,
                delta: ChunkDeltaOut {
                    role: delta.role.then_some("assistant"),
                    // OpenAI's first chunk is `{"role":"assistant","content":""}`.
                    content: if delta.role {
                        Some(delta.content)
                    } else {
                        nonempty(delta.content)
                    },
                    reasoning_content: nonempty(delta.reasoning),
                    tool_calls: delta
                        .tool_calls
                        .iter()
                        .map(|t| ToolCallDeltaOut {
                            index: Some(t.index),
                            id: t.id,
                            kind: t.id.map(|_| "function"),
                            function: FunctionOut {
                                name: t.name,
                                arguments: t.arguments,
                            },
                            extra_content: t.extra_content,
                        })
                        .collect(),
                },
                logprobs: None,
                finish_reason,
            }],
            usage: None,
        };
        Self::frame(out, &chunk);
    }

    /// The usage chunk OpenAI sends last when `stream_options.include_usage` is set: `choices: []`.
    pub fn usage(&self, out: &mut Vec<u8>, usage: &UsageOut) {
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(usage),
        };
        Self::frame(out, &chunk);
    }

    /// An in-band error frame: `data: {"error":{"message","type","code"}}`.
    pub fn error(out: &mut Vec<u8>, message: &str, code: &str) {
        Self::frame(
            out,
            &ErrorFrameOut {
                error: ErrorFrameInner {
                    message,
                    kind: "provider_error",
                    code,
                },
            },
        );
    }

    pub fn done(out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
        assert_eq!(base64_encode(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn non_json_and_missing_messages_are_bad_requests() {
        assert!(matches!(
            parse_chat_request(b"not json"),
            Err(DialectError::BadRequest { param: None, .. })
        ));
        assert!(matches!(
            parse_chat_request(b"[1]"),
            Err(DialectError::BadRequest { param: None, .. })
        ));
        let err = parse_chat_request(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(
            err,
            DialectError::BadRequest {
                message: "`messages` is required".into(),
                param: Some("messages".into())
            }
        );
        let err =
            parse_chat_request(br#"{"messages":[{"role":"user","content":"a"},{"role":"robot"}]}"#)
                .unwrap_err();
        assert!(
            matches!(err, DialectError::BadRequest { param: Some(p), .. } if p == "messages[1].role")
        );
        let err = parse_chat_request(
            br#"{"messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}"#,
        )
        .unwrap_err();
        assert!(
            matches!(err, DialectError::BadRequest { param: Some(p), .. } if p == "messages[0].content[0].type")
        );
        let err = parse_chat_request(
            br#"{"messages":[{"role":"user","content":"a"}],"temperature":"hot"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(err, DialectError::BadRequest { param: Some(p), .. } if p == "temperature")
        );
    }

    #[test]
    fn id_less_tool_results_pair_by_order_and_names_are_found() {
        let req = parse_chat_request(
            br#"{"messages":[
                {"role":"user","content":"hi"},
                {"role":"assistant","content":null,"tool_calls":[
                    {"type":"function","function":{"name":"a","arguments":{"x":1}}},
                    {"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}}]},
                {"role":"tool","content":"one"},
                {"role":"tool","tool_call_id":"c2","content":"two"}]}"#,
        )
        .unwrap();
        let calls = &req.messages[1].tool_calls;
        assert_eq!(calls[0].id, "call_auto_1");
        assert_eq!(calls[0].arguments, r#"{"x":1}"#);
        assert_eq!(req.messages[2].tool_call_id.as_deref(), Some("call_auto_1"));
        assert_eq!(req.messages[2].name.as_deref(), Some("a"));
        assert_eq!(req.messages[3].name.as_deref(), Some("b"));
    }

    #[test]
    fn sampling_fields_and_reasoning_aliases() {
        let req = parse_chat_request(
            br#"{"messages":[{"role":"user","content":"a"}],"max_tokens":0,"max_completion_tokens":50,
                "stop":"END","n":2,"seed":7,"top_k":40.0,"reasoning":{"effort":"xhigh"}}"#,
        )
        .unwrap();
        // max_tokens 0 means unset, but does not fall back: the client did send max_tokens.
        assert_eq!(req.max_tokens, None);
        assert_eq!(req.stop, vec!["END"]);
        assert_eq!((req.n, req.seed, req.top_k), (Some(2), Some(7), Some(40)));
        assert_eq!(req.reasoning_effort, Some(ReasoningEffort::High));
        let req = parse_chat_request(
            br#"{"messages":[{"role":"user","content":"a"}],"max_completion_tokens":50,"reasoning_effort":"bogus"}"#,
        )
        .unwrap();
        assert_eq!(req.max_tokens, Some(50));
        assert_eq!(req.reasoning_effort, None);
    }

    #[test]
    fn embeddings_input_forms() {
        let req = parse_embeddings_request(
            br#"{"input":"a","dimensions":256,"encoding_format":"base64"}"#,
        )
        .unwrap();
        assert_eq!(req.inputs, vec!["a"]);
        assert_eq!(req.dimensions, Some(256));
        assert!(req.base64);
        for body in [
            &br#"{"input":[1,2,3]}"#[..],
            br#"{"input":[[1,2],[3]]}"#,
            br#"{"input":[]}"#,
            br#"{}"#,
        ] {
            let err = parse_embeddings_request(body).unwrap_err();
            assert!(matches!(err, DialectError::BadRequest { param: Some(p), .. } if p == "input"));
        }
    }

    #[test]
    fn data_urls_split() {
        assert_eq!(
            split_data_url("data:image/png;base64,AAAA"),
            Some(("image/png", "AAAA"))
        );
        assert_eq!(split_data_url("data:image/png,plain"), None);
        assert_eq!(split_data_url("https://x/y.png"), None);
    }
}
