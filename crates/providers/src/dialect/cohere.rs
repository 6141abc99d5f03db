//! Cohere API v2 (`POST /v2/chat`, plain and with `"stream": true`, and `POST /v2/embed`; Bearer key) ⇄ OpenAI.
//! Requests keep OpenAI's message roles (Cohere v2 shares them): assistant tool calls keep their shape, with the
//! replayed `reasoning_content` sent back as `tool_plan`; tool results answer by `tool_call_id`; images travel as
//! `image_url` parts; `top_p`/`top_k` become `p`/`k`, `stop` becomes `stop_sequences`, a strict tool turns on
//! `strict_tools`, and `reasoning_effort` becomes `thinking` on Cohere's reasoning models (ids containing
//! `reasoning`) only. Out-of-range values are clamped to Cohere's ranges (`p` 0.01–0.99, `k` ≤ 500, penalties 0–1).
//! Dropped, having no Cohere meaning here: `logprobs`, `top_logprobs`, `logit_bias`, `user`, `parallel_tool_calls`,
//! `metadata`, `store`, `service_tier`, `modalities`, `audio`, `prediction`, `stream_options`. Answers: text parts
//! become content, `thinking` parts and the `tool_plan` become `reasoning_content`, citations are dropped (OpenAI
//! has no place for them). Finish reasons ERROR and TIMEOUT mean the generation failed: they are reported as
//! upstream failures so the gateway can fail over; ERROR_TOXIC becomes `content_filter`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    bad_request, parse_chat_request, parse_embeddings_request, render_completion,
    render_embeddings, ChoiceOut, ChunkWriter, ContentPart, DeltaOut, DialectError, Message,
    ReasoningEffort, ResponseFormat, Role, ToolCallDelta, ToolCallOut, ToolChoice, UsageOut,
};

const DEFAULT_BASE_URL: &str = "https://api.cohere.com/v2";

fn base(base_url: &str) -> &str {
    let base = base_url.trim().trim_end_matches('/');
    if base.is_empty() {
        DEFAULT_BASE_URL
    } else {
        base
    }
}

/// `{base}/chat` (the model and the stream flag travel in the body).
pub fn chat_url(base_url: &str, model: &str, stream: bool) -> String {
    let _ = (model, stream);
    format!("{}/chat", base(base_url))
}

/// `{base}/embed`.
pub fn embeddings_url(base_url: &str, model: &str) -> String {
    let _ = model;
    format!("{}/embed", base(base_url))
}

// ---------------------------------------------------------------------------------------------------------------
// Request: OpenAI → Cohere.
// ---------------------------------------------------------------------------------------------------------------

fn content_param(message: &Message, j: usize) -> String {
    format!("messages[{}].content[{j}]", message.index)
}

fn text_only(message: &Message, what: &str) -> Result<String, DialectError> {
    message.text().map_err(|j| {
        bad_request(
            format!("{what} can only carry text for Cohere"),
            content_param(message, j),
        )
    })
}

fn user_content(message: &Message) -> Result<Value, DialectError> {
    if let [ContentPart::Text(text)] = message.content.as_slice() {
        return Ok(Value::String(text.clone()));
    }
    let mut parts = Vec::with_capacity(message.content.len());
    for (j, part) in message.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) => parts.push(json!({ "type": "text", "text": text })),
            ContentPart::Image { url, detail } => {
                let mut image = json!({ "url": url });
                if let (Some(detail), Value::Object(map)) = (detail, &mut image) {
                    map.insert("detail".into(), Value::String(detail.clone()));
                }
                parts.push(json!({ "type": "image_url", "image_url": image }));
            }
            ContentPart::Audio { .. } | ContentPart::File { .. } => {
                return Err(bad_request(
                    "Cohere accepts only text and image parts",
                    format!("{}.type", content_param(message, j)),
                ))
            }
        }
    }
    Ok(Value::Array(parts))
}

fn translate_message(message: &Message) -> Result<Value, DialectError> {
    Ok(match message.role {
        Role::System => {
            json!({ "role": "system", "content": text_only(message, "system messages")? })
        }
        Role::User => json!({ "role": "user", "content": user_content(message)? }),
        Role::Assistant => {
            let text = text_only(message, "assistant messages")?;
            let mut out = Map::new();
            out.insert("role".into(), json!("assistant"));
            if !text.is_empty() || message.tool_calls.is_empty() {
                out.insert("content".into(), Value::String(text));
            }
            if !message.tool_calls.is_empty() {
                let calls: Vec<Value> = message
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "type": "function",
                            "function": { "name": c.name, "arguments": c.arguments }
                        })
                    })
                    .collect();
                out.insert("tool_calls".into(), Value::Array(calls));
                if let Some(plan) = &message.reasoning {
                    out.insert("tool_plan".into(), Value::String(plan.clone()));
                }
            }
            Value::Object(out)
        }
        Role::Tool => {
            let Some(id) = &message.tool_call_id else {
                return Err(bad_request(
                    "a tool result needs the `tool_call_id` of the call it answers",
                    format!("messages[{}].tool_call_id", message.index),
                ));
            };
            json!({
                "role": "tool",
                "tool_call_id": id,
                "content": text_only(message, "tool results")?,
            })
        }
    })
}

/// Removes the JSON-schema keys Cohere refuses (`$schema`, `additionalProperties`), at every depth.
fn strip_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "additionalProperties"))
                .map(|(k, v)| (k.clone(), strip_schema(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_schema).collect()),
        other => other.clone(),
    }
}

/// Translates an OpenAI chat-completions body into a Cohere v2 `/chat` body; `stream` sets `"stream": true`.
/// `n` above 1 cannot be expressed (Cohere returns one message) and is refused.
pub fn openai_to_cohere_chat_request(
    body: &[u8],
    model: &str,
    stream: bool,
) -> Result<Vec<u8>, DialectError> {
    let req = parse_chat_request(body)?;
    if req.n.is_some_and(|n| n > 1) {
        return Err(bad_request(
            "Cohere returns a single choice; `n` must be 1",
            "n",
        ));
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_owned()));
    let messages = req
        .messages
        .iter()
        .map(translate_message)
        .collect::<Result<Vec<_>, _>>()?;
    out.insert("messages".into(), Value::Array(messages));
    if stream {
        out.insert("stream".into(), Value::Bool(true));
    }

    // A named tool choice has no Cohere form of its own: offer only that tool, and require a call.
    let named = match &req.tool_choice {
        Some(ToolChoice::Named(name)) => {
            if !req.tools.iter().any(|t| &t.name == name) {
                return Err(bad_request(
                    format!("`tool_choice` names `{name}`, which is not in `tools`"),
                    "tool_choice",
                ));
            }
            Some(name.as_str())
        }
        _ => None,
    };
    let tools: Vec<Value> = req
        .tools
        .iter()
        .filter(|t| named.is_none_or(|n| n == t.name))
        .map(|t| {
            let mut function = Map::new();
            function.insert("name".into(), Value::String(t.name.clone()));
            if let Some(description) = &t.description {
                function.insert("description".into(), Value::String(description.clone()));
            }
            if let Some(parameters) = &t.parameters {
                function.insert("parameters".into(), strip_schema(parameters));
            }
            json!({ "type": "function", "function": function })
        })
        .collect();
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if req.tools.iter().any(|t| t.strict) {
            out.insert("strict_tools".into(), Value::Bool(true));
        }
        match &req.tool_choice {
            Some(ToolChoice::None) => {
                out.insert("tool_choice".into(), json!("NONE"));
            }
            Some(ToolChoice::Required | ToolChoice::Named(_)) => {
                out.insert("tool_choice".into(), json!("REQUIRED"));
            }
            Some(ToolChoice::Auto) | None => {}
        }
    }

    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            out.insert("response_format".into(), json!({ "type": "json_object" }));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            let mut format = json!({ "type": "json_object" });
            if let (Some(schema), Value::Object(map)) = (schema, &mut format) {
                map.insert("json_schema".into(), strip_schema(schema));
            }
            out.insert("response_format".into(), format);
        }
        None => {}
    }

    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            out.insert(key.into(), value);
        }
    };
    put("temperature", req.temperature.map(Value::from));
    put("p", req.top_p.map(|p| Value::from(p.clamp(0.01, 0.99))));
    put("k", req.top_k.map(|k| Value::from(k.min(500))));
    put("max_tokens", req.max_tokens.map(Value::from));
    put(
        "stop_sequences",
        (!req.stop.is_empty()).then(|| Value::from(req.stop.clone())),
    );
    put("seed", req.seed.map(Value::from));
    put(
        "frequency_penalty",
        req.frequency_penalty
            .map(|v| Value::from(v.clamp(0.0, 1.0))),
    );
    put(
        "presence_penalty",
        req.presence_penalty.map(|v| Value::from(v.clamp(0.0, 1.0))),
    );
    if model.contains("reasoning") {
        put(
            "thinking",
            req.reasoning_effort.map(|effort| match effort {
                ReasoningEffort::None | ReasoningEffort::Minimal => json!({ "type": "disabled" }),
                _ => json!({ "type": "enabled", "token_budget": effort.budget_tokens() }),
            }),
        );
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| bad_request(e.to_string(), "messages"))
}

// ---------------------------------------------------------------------------------------------------------------
// Response: Cohere → OpenAI.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    message: Option<AssistantMessage>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct AssistantMessage {
    #[serde(default)]
    content: Option<Vec<ContentItem>>,
    #[serde(default)]
    tool_plan: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Deserialize)]
struct ContentItem {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct FunctionIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    billed_units: Option<Units>,
    #[serde(default)]
    tokens: Option<Units>,
}

/// Cohere documents these counts as numbers that may be written as `5.0`.
#[derive(Deserialize)]
struct Units {
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
}

impl Usage {
    /// `tokens` (what the model saw) when present, else `billed_units`.
    fn to_openai(&self) -> Option<UsageOut> {
        let units = self.tokens.as_ref().or(self.billed_units.as_ref())?;
        let count = |v: Option<f64>| v.map_or(0, |v| v.max(0.0).round() as u64);
        Some(UsageOut::new(
            count(units.input_tokens),
            count(units.output_tokens),
            None,
            None,
        ))
    }
}

/// What a Cohere finish reason means for the client.
enum Finish {
    Reason(&'static str),
    /// The generation failed (ERROR, TIMEOUT, v1's ERROR_LIMIT): an upstream failure.
    Failed,
}

fn finish_reason(reason: &str, has_calls: bool) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::Reason("length"),
        "TOOL_CALL" => Finish::Reason("tool_calls"),
        "ERROR_TOXIC" => Finish::Reason("content_filter"),
        "ERROR" | "TIMEOUT" | "ERROR_LIMIT" => Finish::Failed,
        _ if has_calls => Finish::Reason("tool_calls"),
        _ => Finish::Reason("stop"),
    }
}

/// Makes ids for tool calls Cohere sent without one.
fn generated_call_id(response_id: &str, n: usize) -> String {
    let tail: String = response_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("call_{tail}_{n}")
}

/// Translates a Cohere v2 chat answer into an OpenAI `chat.completion` with one choice.
pub fn cohere_to_openai_chat_response(
    body: &[u8],
    model: &str,
    id: &str,
    created: u64,
) -> Result<Vec<u8>, DialectError> {
    let response: ChatResponse = serde_json::from_slice(body).map_err(|e| {
        DialectError::Upstream(format!("Cohere answer is not a chat response: {e}"))
    })?;
    let Some(message) = response.message else {
        return Err(DialectError::Upstream(
            "Cohere answer has no `message`".into(),
        ));
    };
    let mut choice = ChoiceOut::default();
    for item in message.content.unwrap_or_default() {
        match item.kind.as_deref() {
            Some("thinking") => choice.reasoning.push_str(
                item.thinking
                    .as_deref()
                    .or(item.text.as_deref())
                    .unwrap_or_default(),
            ),
            _ => choice
                .text
                .push_str(item.text.as_deref().unwrap_or_default()),
        }
    }
    if let Some(plan) = message.tool_plan.filter(|p| !p.is_empty()) {
        if !choice.reasoning.is_empty() {
            choice.reasoning.push('\n');
        }
        choice.reasoning.push_str(&plan);
    }
    for (n, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let function = call.function.unwrap_or(FunctionIn {
            name: None,
            arguments: None,
        });
        let Some(name) = function.name.filter(|n| !n.is_empty()) else {
            return Err(DialectError::Upstream(
                "Cohere tool call has no function name".into(),
            ));
        };
        choice.tool_calls.push(ToolCallOut {
            id: call
                .id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| generated_call_id(id, n)),
            name,
            arguments: function
                .arguments
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "{}".to_owned()),
            extra_content: None,
        });
    }
    let reason = response.finish_reason.as_deref().unwrap_or("COMPLETE");
    choice.finish_reason = match finish_reason(reason, !choice.tool_calls.is_empty()) {
        Finish::Reason(r) => r,
        Finish::Failed => {
            return Err(DialectError::Upstream(format!(
                "Cohere generation ended with {reason}"
            )))
        }
    };
    let usage = response.usage.as_ref().and_then(Usage::to_openai);
    render_completion(id, created, model, &[choice], usage.as_ref())
}

// ---------------------------------------------------------------------------------------------------------------
// Stream: Cohere SSE events → OpenAI chunks.
// ---------------------------------------------------------------------------------------------------------------

/// Translates a `/v2/chat` stream. Each event's kind is read from its JSON `type` (the SSE `event:` name is used
/// only when `type` is missing, so `None` is always fine). `content-delta` text and thinking, `tool-plan-delta`,
/// `tool-call-start`/`-delta` and `message-end` become OpenAI deltas; a tool call's first delta carries its id and
/// name, later ones argument fragments under the same index.
pub struct CohereChatStream {
    writer: ChunkWriter,
    id: String,
    include_usage: bool,
    started: bool,
    /// Cohere's tool-call index → OpenAI's, in the order calls started.
    tool_indexes: Vec<(usize, usize)>,
    usage: Option<UsageOut>,
    finished: bool,
    failed: bool,
    done: bool,
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

impl CohereChatStream {
    pub fn new(model: &str, id: &str, created: u64, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(model, id, created),
            id: id.to_owned(),
            include_usage,
            started: false,
            tool_indexes: Vec::new(),
            usage: None,
            finished: false,
            failed: false,
            done: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, mut delta: DeltaOut<'_>, finish: Option<&str>) {
        delta.role = !self.started;
        self.started = true;
        if !delta.is_empty() || finish.is_some() {
            self.writer.delta(out, 0, &delta, finish);
        }
    }

    fn fail(&mut self, out: &mut Vec<u8>, message: &str, code: &str) -> DialectError {
        self.failed = true;
        ChunkWriter::error(out, message, code);
        DialectError::Upstream(format!("Cohere stream error {code}: {message}"))
    }

    /// Feeds one upstream SSE event (`event` is the `event:` name if the caller has it, `data` the `data:` payload)
    /// and appends the OpenAI frames it yields to `out`. A failed generation (finish reason ERROR or TIMEOUT), an
    /// `error` event or a payload that is not JSON appends an in-band error frame and returns
    /// [`DialectError::Upstream`].
    pub fn push(
        &mut self,
        event: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DialectError> {
        let data = data.trim_ascii();
        if data.is_empty() || data == b"[DONE]" || self.done || self.failed {
            return Ok(());
        }
        let value: Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => {
                let message = format!("Cohere stream event is not JSON: {e}");
                return Err(self.fail(out, &message, "upstream_error"));
            }
        };
        let event_name = event
            .and_then(|e| std::str::from_utf8(e).ok())
            .map(str::trim);
        let kind = str_at(&value, "/type").or(event_name).unwrap_or_default();
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        match kind {
            "message-start" => self.emit(out, DeltaOut::default(), None),
            "content-start" | "content-delta" => {
                let text = str_at(&value, "/delta/message/content/text").unwrap_or_default();
                let thinking =
                    str_at(&value, "/delta/message/content/thinking").unwrap_or_default();
                let delta = DeltaOut {
                    content: text,
                    reasoning: thinking,
                    ..DeltaOut::default()
                };
                if !delta.is_empty() || !self.started {
                    self.emit(out, delta, None);
                }
            }
            "tool-plan-delta" => {
                let plan = str_at(&value, "/delta/message/tool_plan").unwrap_or_default();
                if !plan.is_empty() || !self.started {
                    let delta = DeltaOut {
                        reasoning: plan,
                        ..DeltaOut::default()
                    };
                    self.emit(out, delta, None);
                }
            }
            "tool-call-start" => {
                let call = match value.pointer("/delta/message/tool_calls") {
                    Some(Value::Array(calls)) => calls.first().cloned().unwrap_or(Value::Null),
                    Some(call) => call.clone(),
                    None => Value::Null,
                };
                let Some(name) = str_at(&call, "/function/name").filter(|n| !n.is_empty()) else {
                    let message = "Cohere tool-call-start has no function name";
                    return Err(self.fail(out, message, "upstream_error"));
                };
                let openai_index = self.tool_indexes.len();
                self.tool_indexes.push((index, openai_index));
                let id = match str_at(&call, "/id").filter(|i| !i.is_empty()) {
                    Some(id) => id.to_owned(),
                    None => generated_call_id(&self.id, openai_index),
                };
                let arguments = str_at(&call, "/function/arguments").unwrap_or_default();
                let delta = DeltaOut {
                    tool_calls: vec![ToolCallDelta {
                        index: openai_index,
                        id: Some(&id),
                        name: Some(name),
                        arguments,
                        extra_content: None,
                    }],
                    ..DeltaOut::default()
                };
                self.emit(out, delta, None);
            }
            "tool-call-delta" => {
                let fragment = str_at(&value, "/delta/message/tool_calls/function/arguments")
                    .unwrap_or_default();
                let openai_index = self
                    .tool_indexes
                    .iter()
                    .rev()
                    .find(|(cohere, _)| *cohere == index)
                    .or(self.tool_indexes.last())
                    .map(|(_, openai)| *openai);
                let Some(openai_index) = openai_index else {
                    let message = "Cohere tool-call-delta before any tool-call-start";
                    return Err(self.fail(out, message, "upstream_error"));
                };
                if !fragment.is_empty() {
                    let delta = DeltaOut {
                        tool_calls: vec![ToolCallDelta {
                            index: openai_index,
                            id: None,
                            name: None,
                            arguments: fragment,
                            extra_content: None,
                        }],
                        ..DeltaOut::default()
                    };
                    self.emit(out, delta, None);
                }
            }
            "message-end" => {
                if let Some(usage) = value
                    .pointer("/delta/usage")
                    .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok())
                    .and_then(|u| u.to_openai())
                {
                    self.usage = Some(usage);
                }
                let reason = str_at(&value, "/delta/finish_reason").unwrap_or("COMPLETE");
                match finish_reason(reason, !self.tool_indexes.is_empty()) {
                    Finish::Reason(r) => {
                        self.finished = true;
                        self.emit(out, DeltaOut::default(), Some(r));
                    }
                    Finish::Failed => {
                        let message = str_at(&value, "/delta/error").map_or_else(
                            || format!("generation ended with {reason}"),
                            str::to_owned,
                        );
                        return Err(self.fail(out, &message, reason));
                    }
                }
            }
            "error" => {
                let message = str_at(&value, "/message")
                    .or_else(|| str_at(&value, "/delta/error"))
                    .or_else(|| str_at(&value, "/error/message"))
                    .unwrap_or("Cohere reported an error")
                    .to_owned();
                return Err(self.fail(out, &message, "upstream_error"));
            }
            // content-end, tool-call-end, citation-start/-end, debug: nothing for the client.
            _ => {}
        }
        Ok(())
    }

    /// Appends what is still owed: the finish chunk if `message-end` never came (`stop`, or `tool_calls` after
    /// calls), the usage chunk when asked for and known, then `data: [DONE]`. After an error only `[DONE]` follows.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.failed {
            if self.started && !self.finished {
                let reason = if self.tool_indexes.is_empty() {
                    "stop"
                } else {
                    "tool_calls"
                };
                self.writer
                    .delta(out, 0, &DeltaOut::default(), Some(reason));
            }
            if let (true, Some(usage)) = (self.include_usage, &self.usage) {
                self.writer.usage(out, usage);
            }
        }
        ChunkWriter::done(out);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Embeddings.
// ---------------------------------------------------------------------------------------------------------------

/// Translates an OpenAI embeddings body into a `/v2/embed` body: `texts`, float embeddings (base64 is encoded by
/// the gateway from the floats), `input_type` `search_document` unless the client sent its own `input_type`, and
/// `dimensions` as `output_dimension`.
pub fn openai_to_cohere_embeddings_request(
    body: &[u8],
    model: &str,
) -> Result<Vec<u8>, DialectError> {
    let req = parse_embeddings_request(body)?;
    let mut out = json!({
        "model": model,
        "texts": req.inputs,
        "input_type": req.input_type.as_deref().unwrap_or("search_document"),
        "embedding_types": ["float"],
    });
    if let (Some(d), Value::Object(map)) = (req.dimensions, &mut out) {
        map.insert("output_dimension".into(), Value::from(d));
    }
    serde_json::to_vec(&out).map_err(|e| bad_request(e.to_string(), "input"))
}

#[derive(Deserialize)]
struct EmbedResponse {
    embeddings: EmbedVectors,
    #[serde(default)]
    meta: Option<EmbedMeta>,
}

/// `embeddings_by_type` (`{"float": [[…]]}`) or the older `embeddings_floats` (`[[…]]`).
#[derive(Deserialize)]
#[serde(untagged)]
enum EmbedVectors {
    ByType {
        #[serde(default)]
        float: Option<Vec<Vec<f64>>>,
    },
    Floats(Vec<Vec<f64>>),
}

#[derive(Deserialize)]
struct EmbedMeta {
    #[serde(default)]
    billed_units: Option<Units>,
}

/// Translates a `/v2/embed` answer into an OpenAI embeddings list; `base64` is the client's
/// `encoding_format: "base64"` (see [`super::openai_embeddings_wants_base64`]). Usage is
/// `meta.billed_units.input_tokens`.
pub fn cohere_to_openai_embeddings_response(
    body: &[u8],
    model: &str,
    base64: bool,
) -> Result<Vec<u8>, DialectError> {
    let response: EmbedResponse = serde_json::from_slice(body).map_err(|e| {
        DialectError::Upstream(format!("Cohere answer is not an embed response: {e}"))
    })?;
    let vectors = match response.embeddings {
        EmbedVectors::ByType { float: Some(v) } | EmbedVectors::Floats(v) => v,
        EmbedVectors::ByType { float: None } => {
            return Err(DialectError::Upstream(
                "Cohere embed answer has no float embeddings".into(),
            ))
        }
    };
    let tokens = response
        .meta
        .and_then(|m| m.billed_units)
        .and_then(|u| u.input_tokens)
        .map_or(0, |t| t.max(0.0).round() as u64);
    render_embeddings(&vectors, model, base64, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str, model: &str, stream: bool) -> Value {
        let out = openai_to_cohere_chat_request(body.as_bytes(), model, stream).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn response(body: &str) -> Value {
        let out =
            cohere_to_openai_chat_response(body.as_bytes(), "command-a-03-2025", "chatcmpl-xyz", 5)
                .unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn param_of(err: DialectError) -> String {
        match err {
            DialectError::BadRequest { param, .. } => param.unwrap_or_default(),
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    /// The payloads of emitted SSE frames, each checked to be recognised by the gateway.
    fn sse_payloads(out: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        text.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let payload = f.strip_prefix("data: ").unwrap();
                assert!(
                    !wire::inspect_chunk(payload.as_bytes()).malformed,
                    "{payload}"
                );
                payload.to_owned()
            })
            .collect()
    }

    /// Feeds Cohere events framed as Cohere sends them (`event:` + `data:`), through the gateway's own splitter.
    fn feed(
        stream: &mut CohereChatStream,
        events: &[&str],
        out: &mut Vec<u8>,
    ) -> Result<(), DialectError> {
        let mut raw = String::new();
        for data in events {
            let kind: Value = serde_json::from_str(data).unwrap();
            raw.push_str(&format!(
                "event: {}\ndata: {data}\n\n",
                kind["type"].as_str().unwrap()
            ));
        }
        let mut payloads = Vec::new();
        let mut splitter = wire::SseSplitter::new();
        splitter.push(raw.as_bytes(), |e| payloads.push(e.to_vec()));
        for payload in payloads {
            stream.push(None, &payload, out)?;
        }
        Ok(())
    }

    #[test]
    fn urls() {
        assert_eq!(
            chat_url("", "command-a-03-2025", true),
            "https://api.cohere.com/v2/chat"
        );
        assert_eq!(
            embeddings_url("https://proxy.example/v2/", "embed-v4.0"),
            "https://proxy.example/v2/embed"
        );
    }

    #[test]
    fn messages_roles_images_tool_calls_and_results() {
        let body = request(
            r#"{"model":"x","messages":[
                {"role":"developer","content":"Be brief."},
                {"role":"user","content":[{"type":"text","text":"What is this and the weather?"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]},
                {"role":"assistant","content":null,"reasoning_content":"I will look up the weather.","tool_calls":[
                    {"id":"get_weather_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
                {"role":"tool","tool_call_id":"get_weather_abc","content":[{"type":"text","text":"18C"}]},
                {"role":"assistant","content":"It is 18C."},
                {"role":"user","content":"Thanks"}],
              "stream":true}"#,
            "command-a-vision-07-2025",
            true,
        );
        assert_eq!(
            body,
            json!({
                "model":"command-a-vision-07-2025",
                "stream":true,
                "messages":[
                    {"role":"system","content":"Be brief."},
                    {"role":"user","content":[
                        {"type":"text","text":"What is this and the weather?"},
                        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]},
                    {"role":"assistant","tool_calls":[
                        {"id":"get_weather_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}],
                     "tool_plan":"I will look up the weather."},
                    {"role":"tool","tool_call_id":"get_weather_abc","content":"18C"},
                    {"role":"assistant","content":"It is 18C."},
                    {"role":"user","content":"Thanks"}
                ]
            })
        );
        let plain = request(
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
            "command-a-03-2025",
            false,
        );
        assert!(plain.get("stream").is_none());
    }

    #[test]
    fn untranslatable_inputs_are_bad_requests() {
        for (body, param) in [
            (&b"nope"[..], ""),
            (br#"{"model":"m"}"#, "messages"),
            (br#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]}"#,
             "messages[0].content[0].type"),
            (br#"{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}"#,
             "messages[0].content[0]"),
            (br#"{"messages":[{"role":"user","content":"x"},{"role":"tool","content":"orphan"}]}"#, "messages[1].tool_call_id"),
            (br#"{"messages":[{"role":"user","content":"x"}],"n":3}"#, "n"),
            (br#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}"#,
             "tool_choice"),
        ] {
            let err = openai_to_cohere_chat_request(body, "command-a-03-2025", false).unwrap_err();
            assert_eq!(param_of(err), param, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn tools_tool_choice_and_response_format() {
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],
                "tools":[{"type":"function","function":{"name":"lookup","description":"Find","strict":true,
                    "parameters":{"$schema":"x","type":"object","additionalProperties":false,
                      "properties":{"q":{"type":"object","additionalProperties":false,"properties":{"s":{"type":"string"}}}},"required":["q"]}}},
                  {"type":"function","function":{"name":"other"}}],
                "tool_choice":"required",
                "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"$schema":"x","type":"object","properties":{"a":{"type":"string"}}}}}}"#,
            "command-a-03-2025",
            false,
        );
        assert_eq!(
            body["tools"],
            json!([
                {"type":"function","function":{"name":"lookup","description":"Find","parameters":{
                    "type":"object","properties":{"q":{"type":"object","properties":{"s":{"type":"string"}}}},"required":["q"]}}},
                {"type":"function","function":{"name":"other"}}
            ])
        );
        assert_eq!(body["strict_tools"], true);
        assert_eq!(body["tool_choice"], "REQUIRED");
        assert_eq!(
            body["response_format"],
            json!({"type":"json_object","json_schema":{"type":"object","properties":{"a":{"type":"string"}}}})
        );

        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}],
                "tool_choice":{"type":"function","function":{"name":"b"}},"response_format":{"type":"json_object"}}"#,
            "command-a-03-2025",
            false,
        );
        assert_eq!(
            body["tools"],
            json!([{"type":"function","function":{"name":"b"}}])
        );
        assert_eq!(body["tool_choice"], "REQUIRED");
        assert_eq!(body["response_format"], json!({"type":"json_object"}));

        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":"none"}"#,
            "command-a-03-2025",
            false,
        );
        assert_eq!(body["tool_choice"], "NONE");
        assert!(body.get("strict_tools").is_none());
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":"auto"}"#,
            "command-a-03-2025",
            false,
        );
        assert!(body.get("tool_choice").is_none());
    }

    #[test]
    fn sampling_fields_and_reasoning() {
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":0.3,"top_p":1,"top_k":900,"max_tokens":100,
                "stop":"END","seed":9,"frequency_penalty":1.5,"presence_penalty":-1,"logprobs":true,"reasoning_effort":"high"}"#,
            "command-a-03-2025",
            false,
        );
        let expected = json!({
            "model":"command-a-03-2025","messages":[{"role":"user","content":"x"}],
            "temperature":0.3,"p":0.99,"k":500,"max_tokens":100,"stop_sequences":["END"],"seed":9,
            "frequency_penalty":1.0,"presence_penalty":0.0
        });
        assert_eq!(body, expected);
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"low"}"#,
            "command-a-reasoning-08-2025",
            false,
        );
        assert_eq!(
            body["thinking"],
            json!({"type":"enabled","token_budget":1024})
        );
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"none"}"#,
            "command-a-reasoning-08-2025",
            false,
        );
        assert_eq!(body["thinking"], json!({"type":"disabled"}));
    }

    #[test]
    fn response_text_and_usage_prefers_tokens() {
        let body = response(
            r#"{"id":"c14c80c3","finish_reason":"COMPLETE",
                "message":{"role":"assistant","content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}],"citations":[]},
                "usage":{"billed_units":{"input_tokens":5,"output_tokens":2},"tokens":{"input_tokens":71,"output_tokens":2.0}}}"#,
        );
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "chatcmpl-xyz");
        assert_eq!(body["model"], "command-a-03-2025");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello there");
        assert!(body["choices"][0]["message"]
            .get("reasoning_content")
            .is_none());
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens":71,"completion_tokens":2,"total_tokens":73})
        );
        let body = response(
            r#"{"finish_reason":"MAX_TOKENS","message":{"role":"assistant","content":[{"type":"text","text":"cut"}]},
                "usage":{"billed_units":{"input_tokens":5,"output_tokens":3}}}"#,
        );
        assert_eq!(body["choices"][0]["finish_reason"], "length");
        assert_eq!(body["usage"]["prompt_tokens"], 5);
    }

    #[test]
    fn response_tool_calls_plan_and_thinking() {
        let body = response(
            r#"{"id":"x","finish_reason":"TOOL_CALL","message":{"role":"assistant",
                "content":[{"type":"thinking","thinking":"Need weather."}],
                "tool_plan":"I will call get_weather for both cities.",
                "tool_calls":[
                  {"id":"get_weather_1byjy32y4hvq","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                  {"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]}}"#,
        );
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert!(choice["message"]["content"].is_null());
        assert_eq!(
            choice["message"]["reasoning_content"],
            "Need weather.\nI will call get_weather for both cities."
        );
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([
                {"id":"get_weather_1byjy32y4hvq","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_chatcmplxyz_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}
            ])
        );
    }

    #[test]
    fn every_finish_reason_class() {
        for (reason, expected) in [
            ("COMPLETE", Some("stop")),
            ("STOP_SEQUENCE", Some("stop")),
            ("MAX_TOKENS", Some("length")),
            ("TOOL_CALL", Some("tool_calls")),
            ("ERROR_TOXIC", Some("content_filter")),
            ("ERROR", None),
            ("TIMEOUT", None),
        ] {
            let body = format!(
                r#"{{"finish_reason":"{reason}","message":{{"role":"assistant","content":[{{"type":"text","text":"x"}}]}}}}"#
            );
            let result = cohere_to_openai_chat_response(body.as_bytes(), "m", "id", 0);
            match expected {
                Some(r) => {
                    let v: Value = serde_json::from_slice(&result.unwrap()).unwrap();
                    assert_eq!(v["choices"][0]["finish_reason"], r, "{reason}");
                }
                None => assert!(matches!(result, Err(DialectError::Upstream(_))), "{reason}"),
            }
        }
        for bad in [&b"<html>"[..], br#"{"finish_reason":"COMPLETE"}"#] {
            assert!(matches!(
                cohere_to_openai_chat_response(bad, "m", "id", 0),
                Err(DialectError::Upstream(_))
            ));
        }
    }

    #[test]
    fn stream_text_with_usage() {
        let mut stream = CohereChatStream::new("command-a-03-2025", "chatcmpl-s", 11, true);
        let mut out = Vec::new();
        feed(
            &mut stream,
            &[
                r#"{"id":"29f14a5a","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}"#,
                r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#,
                r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hello"}}}}"#,
                r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":" world"}}}}"#,
                r#"{"type":"content-end","index":0}"#,
                r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":3,"output_tokens":2},"tokens":{"input_tokens":70,"output_tokens":2}}}}"#,
            ],
            &mut out,
        )
        .unwrap();
        stream.finish(&mut out);
        let frames = sse_payloads(&out);
        let json: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        assert_eq!(json.len(), 5, "{frames:#?}");
        assert_eq!(
            json[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":""})
        );
        assert_eq!(json[0]["object"], "chat.completion.chunk");
        assert_eq!(json[0]["id"], "chatcmpl-s");
        assert_eq!(json[0]["created"], 11);
        assert_eq!(json[1]["choices"][0]["delta"], json!({"content":"Hello"}));
        assert_eq!(json[2]["choices"][0]["delta"], json!({"content":" world"}));
        assert_eq!(json[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(json[4]["choices"], json!([]));
        assert_eq!(
            json[4]["usage"],
            json!({"prompt_tokens":70,"completion_tokens":2,"total_tokens":72})
        );
        assert_eq!(frames.last().unwrap(), "[DONE]");
        let signals: Vec<wire::ChunkSignal> = frames
            .iter()
            .map(|f| wire::inspect_chunk(f.as_bytes()))
            .collect();
        assert!(!signals[0].output);
        assert!(signals[1].output && signals[2].output);
        assert!(signals[3].finished);
        assert_eq!(
            signals[4].usage,
            Some(wire::Usage {
                prompt_tokens: 70,
                completion_tokens: 2
            })
        );
        assert!(signals[5].done);
    }

    #[test]
    fn stream_tool_plan_and_call_split_across_events() {
        let mut stream = CohereChatStream::new("m", "chatcmpl-t", 1, false);
        let mut out = Vec::new();
        feed(
            &mut stream,
            &[
                r#"{"id":"a","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}"#,
                r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will check"}}}"#,
                r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":" the weather."}}}"#,
                r#"{"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"get_weather_nsz5zm3w56q3","type":"function","function":{"name":"get_weather","arguments":""}}}}}"#,
                r#"{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\n    \""}}}}}"#,
                r#"{"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"city\": \"Paris\"}"}}}}}"#,
                r#"{"type":"tool-call-end","index":0}"#,
                r#"{"type":"tool-call-start","index":1,"delta":{"message":{"tool_calls":{"id":"get_weather_2","type":"function","function":{"name":"get_weather","arguments":""}}}}}"#,
                r#"{"type":"tool-call-delta","index":1,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\"city\":\"Rome\"}"}}}}}"#,
                r#"{"type":"tool-call-end","index":1}"#,
                r#"{"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"billed_units":{"input_tokens":37,"output_tokens":28},"tokens":{"input_tokens":913,"output_tokens":83}}}}"#,
            ],
            &mut out,
        )
        .unwrap();
        stream.finish(&mut out);
        let frames = sse_payloads(&out);
        let deltas: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str::<Value>(f).unwrap()["choices"][0].clone())
            .collect();
        assert_eq!(deltas.len(), 9, "{frames:#?}");
        assert_eq!(
            deltas[1]["delta"],
            json!({"reasoning_content":"I will check"})
        );
        assert_eq!(
            deltas[2]["delta"],
            json!({"reasoning_content":" the weather."})
        );
        assert_eq!(
            deltas[3]["delta"]["tool_calls"],
            json!([{"index":0,"id":"get_weather_nsz5zm3w56q3","type":"function","function":{"name":"get_weather","arguments":""}}])
        );
        assert_eq!(
            deltas[4]["delta"]["tool_calls"],
            json!([{"index":0,"function":{"arguments":"{\n    \""}}])
        );
        assert_eq!(
            deltas[5]["delta"]["tool_calls"],
            json!([{"index":0,"function":{"arguments":"city\": \"Paris\"}"}}])
        );
        assert_eq!(deltas[6]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(deltas[6]["delta"]["tool_calls"][0]["id"], "get_weather_2");
        assert_eq!(
            deltas[7]["delta"]["tool_calls"],
            json!([{"index":1,"function":{"arguments":"{\"city\":\"Rome\"}"}}])
        );
        assert_eq!(deltas[8]["finish_reason"], "tool_calls");
        // Fragments joined per index give the full arguments.
        let joined: String = deltas[3..6]
            .iter()
            .map(|d| {
                d["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&joined).unwrap(),
            json!({"city":"Paris"})
        );
        assert!(
            frames.iter().all(|f| !f.contains("\"usage\"")),
            "no usage chunk unless asked"
        );
        assert!(wire::inspect_chunk(frames[3].as_bytes()).output);
    }

    #[test]
    fn stream_event_name_is_used_when_type_is_missing() {
        let mut stream = CohereChatStream::new("m", "id", 1, false);
        let mut out = Vec::new();
        stream
            .push(
                Some(b"content-delta"),
                br#"{"index":0,"delta":{"message":{"content":{"text":"Hi"}}}}"#,
                &mut out,
            )
            .unwrap();
        stream.finish(&mut out);
        let frames = sse_payloads(&out);
        assert_eq!(frames.len(), 3);
        assert!(frames[0].contains(r#""role":"assistant","content":"Hi""#));
        assert!(frames[1].contains(r#""finish_reason":"stop""#));
    }

    #[test]
    fn stream_in_band_error_and_failed_generation() {
        let mut stream = CohereChatStream::new("m", "id", 1, true);
        let mut out = Vec::new();
        let err = feed(
            &mut stream,
            &[
                r#"{"type":"message-start","delta":{"message":{"role":"assistant"}}}"#,
                r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"par"}}}}"#,
                r#"{"type":"message-end","delta":{"finish_reason":"ERROR","error":"internal server error"}}"#,
            ],
            &mut out,
        )
        .unwrap_err();
        assert!(matches!(err, DialectError::Upstream(m) if m.contains("internal server error")));
        stream.finish(&mut out);
        let frames = sse_payloads(&out);
        assert_eq!(frames.len(), 4);
        let error: Value = serde_json::from_str(&frames[2]).unwrap();
        assert_eq!(
            error,
            json!({"error":{"message":"internal server error","type":"provider_error","code":"ERROR"}})
        );
        assert!(wire::inspect_chunk(frames[2].as_bytes()).error);
        assert_eq!(frames[3], "[DONE]");

        let mut stream = CohereChatStream::new("m", "id", 1, false);
        let mut out = Vec::new();
        assert!(matches!(
            stream.push(None, b"{oops", &mut out),
            Err(DialectError::Upstream(_))
        ));
        assert!(wire::inspect_chunk(sse_payloads(&out)[0].as_bytes()).error);
    }

    #[test]
    fn embeddings_both_ways() {
        let out = openai_to_cohere_embeddings_request(
            br#"{"model":"embed-v4.0","input":["alpha","beta"],"dimensions":1024,"encoding_format":"base64"}"#,
            "embed-v4.0",
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            body,
            json!({"model":"embed-v4.0","texts":["alpha","beta"],"input_type":"search_document",
                   "embedding_types":["float"],"output_dimension":1024})
        );
        let out = openai_to_cohere_embeddings_request(
            br#"{"input":"q","input_type":"search_query"}"#,
            "embed-v4.0",
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(body["input_type"], "search_query");
        assert_eq!(body["texts"], json!(["q"]));
        let err = openai_to_cohere_embeddings_request(br#"{"input":[101,2023]}"#, "embed-v4.0")
            .unwrap_err();
        assert_eq!(param_of(err), "input");

        let upstream = br#"{"id":"e1","embeddings":{"float":[[0.5,-1.0],[1.0,0.0]]},"texts":["alpha","beta"],
            "meta":{"api_version":{"version":"2"},"billed_units":{"input_tokens":4}},"response_type":"embeddings_by_type"}"#;
        let body: Value = serde_json::from_slice(
            &cohere_to_openai_embeddings_response(upstream, "embed-v4.0", false).unwrap(),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"object":"list","data":[
                {"object":"embedding","index":0,"embedding":[0.5,-1.0]},
                {"object":"embedding","index":1,"embedding":[1.0,0.0]}],
                "model":"embed-v4.0","usage":{"prompt_tokens":4,"total_tokens":4}})
        );
        let body: Value = serde_json::from_slice(
            &cohere_to_openai_embeddings_response(upstream, "embed-v4.0", true).unwrap(),
        )
        .unwrap();
        assert_eq!(body["data"][0]["embedding"], "AAAAPwAAgL8=");
        let older = br#"{"embeddings":[[0.25]],"meta":{"billed_units":{"input_tokens":1}}}"#;
        let body: Value = serde_json::from_slice(
            &cohere_to_openai_embeddings_response(older, "m", false).unwrap(),
        )
        .unwrap();
        assert_eq!(body["data"][0]["embedding"], json!([0.25]));
        assert!(matches!(
            cohere_to_openai_embeddings_response(br#"{"embeddings":{"int8":[[1]]}}"#, "m", false),
            Err(DialectError::Upstream(_))
        ));
    }
}
