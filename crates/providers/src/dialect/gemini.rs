//! Google Gemini API v1beta (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//! `:batchEmbedContents`, key in the `x-goog-api-key` header) ⇄ OpenAI. Requests: roles become `user`/`model`
//! with consecutive same-role turns merged, system text becomes `systemInstruction` (folded into the first user turn
//! on `gemma-*`), tool results become `functionResponse` parts, tools become `functionDeclarations` with their JSON
//! schema cut down to the subset Gemini accepts, sampling fields move into `generationConfig`. Fields with no Gemini
//! meaning are dropped: `logprobs`, `top_logprobs`, `logit_bias`, `user`, `parallel_tool_calls`, `metadata`, `store`,
//! `service_tier`, `modalities`, `audio`, `prediction`, `stream_options` (usage is always reported by Gemini).
//! A function call's `thoughtSignature` travels to the client as `extra_content.google.thought_signature` on the
//! tool call (the convention of Google's own OpenAI endpoint) and is put back on the `functionCall` part when the
//! client replays the call; for Gemini 3 and later, a replayed call that lost it gets Google's documented
//! `skip_thought_signature_validator` placeholder. No I/O here: image URLs are referenced (`fileData`), never fetched.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    bad_request, parse_chat_request, parse_embeddings_request, render_completion,
    render_embeddings, split_data_url, ChoiceOut, ChunkWriter, ContentPart, DeltaOut, DialectError,
    Message, ResponseFormat, Role, ToolCallDelta, ToolCallOut, ToolChoice, UsageOut,
};

const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// Names that mean "Google Search grounding" rather than a client function.
const GROUNDING_TOOL_NAMES: [&str; 3] =
    ["google_search", "googlesearch", "google_search_retrieval"];

/// The placeholder Google documents for replayed function calls whose signature was lost.
const SIGNATURE_PLACEHOLDER: &str = "skip_thought_signature_validator";

fn base(base_url: &str) -> &str {
    let base = base_url.trim().trim_end_matches('/');
    if base.is_empty() {
        DEFAULT_BASE_URL
    } else {
        base
    }
}

/// The bare model id: `models/gemini-2.5-flash` and `gemini-2.5-flash` name the same model.
fn model_id(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// `{base}/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` when streaming.
pub fn chat_url(base_url: &str, model: &str, stream: bool) -> String {
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    format!("{}/models/{}:{method}", base(base_url), model_id(model))
}

/// `{base}/models/{model}:batchEmbedContents`.
pub fn embeddings_url(base_url: &str, model: &str) -> String {
    format!(
        "{}/models/{}:batchEmbedContents",
        base(base_url),
        model_id(model)
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Request: OpenAI → Gemini.
// ---------------------------------------------------------------------------------------------------------------

struct Turn {
    role: &'static str,
    parts: Vec<Value>,
}

/// Whether the model validates thought signatures on replayed function calls (Gemini 3 and later).
fn requires_signatures(model: &str) -> bool {
    let Some(rest) = model.strip_prefix("gemini-") else {
        return false;
    };
    let major: String = rest.chars().take_while(char::is_ascii_digit).collect();
    major.parse::<u32>().is_ok_and(|m| m >= 3)
}

/// Translates an OpenAI chat-completions body into a `GenerateContentRequest`. The body is the same for streamed
/// and plain calls (`stream` only changes the URL, see [`chat_url`]); `model` is the provider's model id.
pub fn openai_to_gemini_chat_request(
    body: &[u8],
    model: &str,
    stream: bool,
) -> Result<Vec<u8>, DialectError> {
    let _ = stream;
    let req = parse_chat_request(body)?;
    let model = model_id(model);
    let mut system = Vec::new();
    let mut contents: Vec<Turn> = Vec::new();
    for message in &req.messages {
        let (role, parts) = match message.role {
            Role::System => {
                let text = message.text().map_err(|j| {
                    bad_request(
                        "system messages can only carry text",
                        format!("messages[{}].content[{j}]", message.index),
                    )
                })?;
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::User => ("user", user_parts(message)?),
            Role::Assistant => ("model", model_parts(message, requires_signatures(model))?),
            Role::Tool => ("user", vec![function_response(message)?]),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(turn) if turn.role == role => turn.parts.extend(parts),
            _ => contents.push(Turn { role, parts }),
        }
    }

    let mut out = Map::new();
    if !system.is_empty() {
        let text = system.join("\n\n");
        if model.starts_with("gemma-") || contents.is_empty() {
            // Gemma has no system instruction; a request with only system text has nothing else to send.
            match contents.first_mut() {
                Some(turn) if turn.role == "user" => turn.parts.insert(0, json!({ "text": text })),
                _ => contents.insert(
                    0,
                    Turn {
                        role: "user",
                        parts: vec![json!({ "text": text })],
                    },
                ),
            }
        } else {
            let parts: Vec<Value> = system.iter().map(|t| json!({ "text": t })).collect();
            out.insert("systemInstruction".into(), json!({ "parts": parts }));
        }
    }
    if contents.is_empty() {
        return Err(bad_request(
            "`messages` holds nothing Gemini can be sent",
            "messages",
        ));
    }
    let contents: Vec<Value> = contents
        .into_iter()
        .map(|t| json!({ "role": t.role, "parts": t.parts }))
        .collect();
    out.insert("contents".into(), Value::Array(contents));

    let mut declarations = Vec::new();
    let mut grounding = false;
    for tool in &req.tools {
        if GROUNDING_TOOL_NAMES.contains(&tool.name.to_ascii_lowercase().as_str()) {
            grounding = true;
            continue;
        }
        let mut declaration = Map::new();
        declaration.insert("name".into(), Value::String(tool.name.clone()));
        if let Some(description) = &tool.description {
            declaration.insert("description".into(), Value::String(description.clone()));
        }
        if let Some(parameters) = tool.parameters.as_ref().and_then(sanitize_parameters) {
            declaration.insert("parameters".into(), parameters);
        }
        declarations.push(Value::Object(declaration));
    }
    let has_functions = !declarations.is_empty();
    let mut tools = Vec::new();
    if has_functions {
        tools.push(json!({ "functionDeclarations": declarations }));
    }
    if grounding {
        tools.push(json!({ "googleSearch": {} }));
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let (Some(choice), true) = (&req.tool_choice, has_functions) {
        let config = match choice {
            ToolChoice::None => json!({ "mode": "NONE" }),
            ToolChoice::Auto => json!({ "mode": "AUTO" }),
            ToolChoice::Required => json!({ "mode": "ANY" }),
            ToolChoice::Named(name) => {
                if !req.tools.iter().any(|t| &t.name == name) {
                    return Err(bad_request(
                        format!("`tool_choice` names `{name}`, which is not in `tools`"),
                        "tool_choice",
                    ));
                }
                json!({ "mode": "ANY", "allowedFunctionNames": [name] })
            }
        };
        out.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": config }),
        );
    }

    let mut config = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            config.insert(key.into(), value);
        }
    };
    put("temperature", req.temperature.map(Value::from));
    put("topP", req.top_p.map(Value::from));
    put("topK", req.top_k.map(Value::from));
    put("maxOutputTokens", req.max_tokens.map(Value::from));
    put(
        "stopSequences",
        (!req.stop.is_empty()).then(|| Value::from(req.stop.clone())),
    );
    put("candidateCount", req.n.filter(|n| *n > 1).map(Value::from));
    put("seed", req.seed.map(Value::from));
    put("presencePenalty", req.presence_penalty.map(Value::from));
    put("frequencyPenalty", req.frequency_penalty.map(Value::from));
    // Gemini refuses a response schema next to function declarations.
    if !has_functions {
        match &req.response_format {
            Some(ResponseFormat::JsonObject) => {
                put("responseMimeType", Some(json!("application/json")));
            }
            Some(ResponseFormat::JsonSchema { schema, .. }) => {
                put("responseMimeType", Some(json!("application/json")));
                put("responseSchema", schema.as_ref().map(sanitize_schema));
            }
            None => {}
        }
    }
    if let Some(effort) = req.reasoning_effort {
        let budget = effort.budget_tokens();
        put(
            "thinkingConfig",
            Some(if budget == 0 {
                json!({ "thinkingBudget": 0 })
            } else {
                json!({ "thinkingBudget": budget, "includeThoughts": true })
            }),
        );
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| bad_request(e.to_string(), "messages"))
}

fn content_param(message: &Message, j: usize) -> String {
    format!("messages[{}].content[{j}]", message.index)
}

fn user_parts(message: &Message) -> Result<Vec<Value>, DialectError> {
    let mut parts = Vec::with_capacity(message.content.len());
    for (j, part) in message.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) if text.is_empty() => {}
            ContentPart::Text(text) => parts.push(json!({ "text": text })),
            ContentPart::Image { url, .. } => parts.push(media_part(
                url,
                &format!("{}.image_url.url", content_param(message, j)),
            )?),
            ContentPart::Audio { data, format } => parts.push(json!({
                "inlineData": { "mimeType": audio_mime(format), "data": data }
            })),
            ContentPart::File { data_url, .. } => {
                let Some((mime, data)) = split_data_url(data_url) else {
                    return Err(bad_request(
                        "`file.file_data` must be a base64 `data:` URL",
                        format!("{}.file.file_data", content_param(message, j)),
                    ));
                };
                parts.push(json!({ "inlineData": { "mimeType": mime, "data": data } }));
            }
        }
    }
    Ok(parts)
}

/// An image: `data:` URLs are inlined, http(s) and `gs://` URLs are referenced for Gemini to fetch.
fn media_part(url: &str, param: &str) -> Result<Value, DialectError> {
    if url.starts_with("data:") {
        let Some((mime, data)) = split_data_url(url) else {
            return Err(bad_request(
                "image `data:` URLs must be base64 encoded",
                param,
            ));
        };
        return Ok(json!({ "inlineData": { "mimeType": mime, "data": data } }));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("gs://") {
        return Ok(
            json!({ "fileData": { "mimeType": image_mime_from_url(&lower), "fileUri": url } }),
        );
    }
    Err(bad_request(
        "image URLs must be `data:`, http(s) or gs:// URLs",
        param,
    ))
}

fn image_mime_from_url(lower_url: &str) -> &'static str {
    let path = lower_url.split(['?', '#']).next().unwrap_or(lower_url);
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

fn audio_mime(format: &str) -> String {
    match format {
        "mp3" => "audio/mp3".to_owned(),
        other => format!("audio/{other}"),
    }
}

fn model_parts(message: &Message, placeholder_signature: bool) -> Result<Vec<Value>, DialectError> {
    let mut parts = Vec::new();
    for (j, part) in message.content.iter().enumerate() {
        match part {
            ContentPart::Text(text) if text.is_empty() => {}
            ContentPart::Text(text) => parts.push(json!({ "text": text })),
            _ => {
                return Err(bad_request(
                    "assistant messages can only carry text",
                    content_param(message, j),
                ))
            }
        }
    }
    let signed = message
        .tool_calls
        .iter()
        .any(|c| c.thought_signature.is_some());
    for (k, call) in message.tool_calls.iter().enumerate() {
        let args = if call.arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_str::<Value>(&call.arguments) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(bad_request(
                        "tool-call arguments must be a JSON object",
                        format!(
                            "messages[{}].tool_calls[{k}].function.arguments",
                            message.index
                        ),
                    ))
                }
            }
        };
        let mut part = json!({ "functionCall": { "name": call.name, "args": args } });
        let signature = match &call.thought_signature {
            Some(s) => Some(s.as_str()),
            // Only the first call of a turn carries a signature.
            None if placeholder_signature && !signed && k == 0 => Some(SIGNATURE_PLACEHOLDER),
            None => None,
        };
        if let (Some(signature), Value::Object(map)) = (signature, &mut part) {
            map.insert(
                "thoughtSignature".into(),
                Value::String(signature.to_owned()),
            );
        }
        parts.push(part);
    }
    Ok(parts)
}

/// A tool result. Gemini wants an object: a JSON-object result is sent as is, anything else as `{"output": …}`
/// (Gemini's documented key for a function's output).
fn function_response(message: &Message) -> Result<Value, DialectError> {
    let Some(name) = &message.name else {
        return Err(bad_request(
            "this tool result answers no earlier assistant tool call, so its function name is unknown",
            format!("messages[{}].tool_call_id", message.index),
        ));
    };
    let text = message.text().map_err(|j| {
        bad_request(
            "tool results can only carry text for Gemini",
            content_param(message, j),
        )
    })?;
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => json!({ "output": other }),
        Err(_) => json!({ "output": text }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

/// Function parameters for Gemini; `None` when the function takes no parameters (Gemini refuses an object schema
/// with no properties there).
fn sanitize_parameters(schema: &Value) -> Option<Value> {
    let sanitized = sanitize_schema(schema);
    let empty = sanitized
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    let is_object = sanitized.get("type").and_then(Value::as_str) == Some("object");
    if is_object && empty {
        None
    } else {
        Some(sanitized)
    }
}

/// Cuts a JSON schema down to the OpenAPI subset Gemini accepts: keeps type, format (the ones Gemini knows),
/// title, description, nullable, enum (strings), properties, required, items, anyOf, min/max bounds, pattern and
/// propertyOrdering; inlines local `$ref`s (`#/$defs/…`, `#/definitions/…`, eight levels deep at most); turns
/// `oneOf` into `anyOf`, merges `allOf`, turns a string `const` into a one-value enum and a `["T","null"]` type
/// into `nullable`; drops everything else (`$schema`, `$defs`, `additionalProperties`, `not`, `examples`,
/// `default`, `if`/`then`/`else`, …).
fn sanitize_schema(schema: &Value) -> Value {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = schema.get(key) {
            for (name, def) in d {
                defs.insert(format!("#/{key}/{name}"), def.clone());
            }
        }
    }
    sanitize_node(schema, &defs, 0)
}

const MAX_REF_DEPTH: usize = 8;

fn sanitize_node(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Value::Object(src) = schema else {
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    if let Some(target) = src.get("$ref").and_then(Value::as_str) {
        if let (Some(def), true) = (defs.get(target), depth < MAX_REF_DEPTH) {
            if let Value::Object(resolved) = sanitize_node(def, defs, depth + 1) {
                out = resolved;
            }
        } else {
            out.insert("type".into(), json!("object"));
        }
    }
    for (key, value) in src {
        match key.as_str() {
            "type" => match value {
                Value::String(t) => {
                    out.insert("type".into(), Value::String(t.clone()));
                }
                Value::Array(types) => {
                    let named: Vec<&str> = types
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|t| *t != "null")
                        .collect();
                    if named.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    match named.as_slice() {
                        [] => {}
                        [one] => {
                            out.insert("type".into(), json!(one));
                        }
                        many => {
                            let any: Vec<Value> =
                                many.iter().map(|t| json!({ "type": t })).collect();
                            out.insert("anyOf".into(), Value::Array(any));
                        }
                    }
                }
                _ => {}
            },
            "format" => {
                if let Some(f @ ("enum" | "date-time" | "int32" | "int64" | "float" | "double")) =
                    value.as_str()
                {
                    out.insert("format".into(), json!(f));
                }
            }
            "title" | "description" | "nullable" | "minItems" | "maxItems" | "minimum"
            | "maximum" | "minLength" | "maxLength" | "pattern" | "minProperties"
            | "maxProperties" | "propertyOrdering" => {
                out.insert(key.clone(), value.clone());
            }
            "enum" => {
                if let Value::Array(values) = value {
                    if values.iter().any(Value::is_null) {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    let strings: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
                    if !strings.is_empty() && strings.iter().all(|v| v.is_string()) {
                        out.insert("enum".into(), json!(strings));
                    }
                }
            }
            "const" if !src.contains_key("enum") && value.is_string() => {
                out.insert("enum".into(), json!([value]));
                out.entry("type").or_insert_with(|| json!("string"));
            }
            "properties" => {
                if let Value::Object(props) = value {
                    let props: Map<String, Value> = props
                        .iter()
                        .map(|(name, s)| (name.clone(), sanitize_node(s, defs, depth)))
                        .collect();
                    out.insert("properties".into(), Value::Object(props));
                }
            }
            "items" => {
                let item = match value {
                    Value::Array(tuple) => tuple.first().cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                out.insert("items".into(), sanitize_node(&item, defs, depth));
            }
            "anyOf" | "oneOf" => {
                if let Value::Array(options) = value {
                    let mut any = Vec::new();
                    for option in options {
                        if option.get("type").and_then(Value::as_str) == Some("null") {
                            out.insert("nullable".into(), Value::Bool(true));
                        } else {
                            any.push(sanitize_node(option, defs, depth));
                        }
                    }
                    match any.len() {
                        0 => {}
                        1 => {
                            if let Some(Value::Object(only)) = any.pop() {
                                for (k, v) in only {
                                    out.entry(k).or_insert(v);
                                }
                            }
                        }
                        _ => {
                            out.insert("anyOf".into(), Value::Array(any));
                        }
                    }
                }
            }
            "allOf" => {
                if let Value::Array(parts) = value {
                    for part in parts {
                        if let Value::Object(merged) = sanitize_node(part, defs, depth) {
                            merge_schema(&mut out, merged);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // `required` last, so it can be checked against the final properties.
    if let Some(Value::Array(required)) = src.get("required") {
        let props = out.get("properties").and_then(Value::as_object);
        let kept: Vec<Value> = required
            .iter()
            .filter(|r| {
                r.as_str()
                    .is_some_and(|r| props.is_some_and(|p| p.contains_key(r)))
            })
            .cloned()
            .collect();
        let mut all = match out.remove("required") {
            Some(Value::Array(earlier)) => earlier,
            _ => Vec::new(),
        };
        for r in kept {
            if !all.contains(&r) {
                all.push(r);
            }
        }
        if !all.is_empty() {
            out.insert("required".into(), Value::Array(all));
        }
    }
    Value::Object(out)
}

fn merge_schema(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (key.as_str(), into.get_mut(&key), value) {
            ("properties", Some(Value::Object(existing)), Value::Object(more)) => {
                for (k, v) in more {
                    existing.entry(k).or_insert(v);
                }
            }
            ("required", Some(Value::Array(existing)), Value::Array(more)) => {
                for r in more {
                    if !existing.contains(&r) {
                        existing.push(r);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                into.insert(key, value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Response: Gemini → OpenAI.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    error: Option<ApiErrorBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<usize>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    thought_signature: Option<String>,
    #[serde(default)]
    function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl ApiErrorBody {
    fn message(&self) -> String {
        self.message
            .clone()
            .unwrap_or_else(|| "Gemini reported an error".to_owned())
    }

    fn code(&self) -> String {
        match (&self.status, &self.code) {
            (Some(status), _) => status.clone(),
            (None, Some(Value::String(code))) => code.clone(),
            (None, Some(code)) => code.to_string(),
            (None, None) => "upstream_error".to_owned(),
        }
    }
}

impl UsageMetadata {
    /// Thought tokens count as completion tokens, as OpenAI counts reasoning tokens.
    fn to_openai(&self) -> UsageOut {
        UsageOut::new(
            self.prompt_token_count + self.tool_use_prompt_token_count,
            self.candidates_token_count + self.thoughts_token_count,
            Some(self.thoughts_token_count),
            self.cached_content_token_count,
        )
    }
}

/// Maps a Gemini `finishReason`. MALFORMED_FUNCTION_CALL, LANGUAGE, OTHER and unknown reasons end the choice as
/// `stop` (with no tool call when none was produced), since OpenAI has no closer class.
fn finish_reason(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// Makes tool-call ids for calls Gemini gave none: `call_<response tail>_<n>`, unique within the conversation as
/// long as response ids are.
struct CallIds {
    prefix: String,
    next: usize,
}

impl CallIds {
    fn new(response_id: &str) -> Self {
        let tail: String = response_id
            .chars()
            .rev()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let prefix = if tail.is_empty() {
            "call_".to_owned()
        } else {
            format!("call_{tail}_")
        };
        Self { prefix, next: 0 }
    }

    fn take(&mut self, given: Option<&str>) -> String {
        match given {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                let id = format!("{}{}", self.prefix, self.next);
                self.next += 1;
                id
            }
        }
    }
}

/// What the parts of one candidate (or one streamed fragment of it) say.
#[derive(Default)]
struct PartsOut {
    text: String,
    reasoning: String,
    calls: Vec<ToolCallOut>,
}

fn read_parts(parts: Vec<Part>, ids: &mut CallIds) -> PartsOut {
    let mut out = PartsOut::default();
    for part in parts {
        if let Some(call) = part.function_call {
            out.calls.push(ToolCallOut {
                id: ids.take(call.id.as_deref()),
                arguments: call
                    .args
                    .filter(|a| !a.is_null())
                    .map_or_else(|| "{}".to_owned(), |a| a.to_string()),
                name: call.name,
                extra_content: part
                    .thought_signature
                    .map(|s| json!({ "google": { "thought_signature": s } })),
            });
        } else if let Some(text) = part.text {
            if part.thought {
                out.reasoning.push_str(&text);
            } else {
                out.text.push_str(&text);
            }
        }
    }
    out
}

fn parse_response(body: &[u8]) -> Result<GenerateContentResponse, DialectError> {
    let response: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
        DialectError::Upstream(format!(
            "Gemini answer is not a GenerateContentResponse: {e}"
        ))
    })?;
    if let Some(error) = &response.error {
        return Err(DialectError::Upstream(format!(
            "Gemini error {}: {}",
            error.code(),
            error.message()
        )));
    }
    Ok(response)
}

/// Translates a `GenerateContentResponse` into an OpenAI `chat.completion`. Each candidate becomes a choice; a
/// prompt blocked before any candidate becomes one empty choice finished by `content_filter`.
pub fn gemini_to_openai_chat_response(
    body: &[u8],
    model: &str,
    id: &str,
    created: u64,
) -> Result<Vec<u8>, DialectError> {
    let mut response = parse_response(body)?;
    let usage = response
        .usage_metadata
        .as_ref()
        .map(UsageMetadata::to_openai);
    if response.candidates.is_empty() {
        return match response.prompt_feedback.and_then(|f| f.block_reason) {
            Some(_) => {
                let choice = ChoiceOut {
                    finish_reason: "content_filter",
                    ..ChoiceOut::default()
                };
                render_completion(id, created, model, &[choice], usage.as_ref())
            }
            None => Err(DialectError::Upstream(
                "Gemini answered with no candidates and no block reason".into(),
            )),
        };
    }
    response.candidates.sort_by_key(|c| c.index.unwrap_or(0));
    let mut ids = CallIds::new(id);
    let choices: Vec<ChoiceOut> = response
        .candidates
        .into_iter()
        .map(|candidate| {
            let parts = read_parts(
                candidate.content.map(|c| c.parts).unwrap_or_default(),
                &mut ids,
            );
            ChoiceOut {
                finish_reason: finish_reason(
                    candidate.finish_reason.as_deref().unwrap_or("STOP"),
                    !parts.calls.is_empty(),
                ),
                text: parts.text,
                reasoning: parts.reasoning,
                tool_calls: parts.calls,
            }
        })
        .collect();
    render_completion(id, created, model, &choices, usage.as_ref())
}

// ---------------------------------------------------------------------------------------------------------------
// Stream: Gemini SSE events → OpenAI chunks.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Default, Clone)]
struct StreamChoice {
    started: bool,
    tool_calls: usize,
    finished: bool,
}

/// Translates a `streamGenerateContent?alt=sse` stream: every event is a whole `GenerateContentResponse` fragment.
/// Text and thought parts become content and `reasoning_content` deltas, each function call one complete
/// tool-call delta with its own index. Usage (Gemini repeats it on every event) is sent once, at the end.
pub struct GeminiChatStream {
    writer: ChunkWriter,
    include_usage: bool,
    choices: Vec<StreamChoice>,
    ids: CallIds,
    usage: Option<UsageOut>,
    failed: bool,
    done: bool,
}

impl GeminiChatStream {
    pub fn new(model: &str, id: &str, created: u64, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(model, id, created),
            include_usage,
            choices: Vec::new(),
            ids: CallIds::new(id),
            usage: None,
            failed: false,
            done: false,
        }
    }

    fn choice(&mut self, index: usize) -> &mut StreamChoice {
        if self.choices.len() <= index {
            self.choices.resize(index + 1, StreamChoice::default());
        }
        &mut self.choices[index]
    }

    /// Feeds the `data:` payload of one upstream SSE event (`event` is ignored: Gemini names no events) and appends
    /// the OpenAI frames it yields to `out`. An `{"error": …}` payload or one that is not JSON appends an in-band
    /// error frame and returns [`DialectError::Upstream`].
    pub fn push(
        &mut self,
        event: Option<&[u8]>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DialectError> {
        let _ = event;
        let data = data.trim_ascii();
        if data.is_empty() || data == b"[DONE]" || self.done || self.failed {
            return Ok(());
        }
        let response: GenerateContentResponse = match serde_json::from_slice(data) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("Gemini stream event is not JSON: {e}");
                return Err(self.fail(out, &message, "upstream_error"));
            }
        };
        if let Some(error) = &response.error {
            let message = error.message();
            return Err(self.fail(out, &message, &error.code()));
        }
        if let Some(usage) = &response.usage_metadata {
            self.usage = Some(usage.to_openai());
        }
        if response.candidates.is_empty() {
            if response
                .prompt_feedback
                .is_some_and(|f| f.block_reason.is_some())
            {
                let choice = self.choice(0);
                let first = !choice.started;
                choice.started = true;
                choice.finished = true;
                let delta = DeltaOut {
                    role: first,
                    ..DeltaOut::default()
                };
                self.writer.delta(out, 0, &delta, Some("content_filter"));
            }
            return Ok(());
        }
        for candidate in response.candidates {
            let index = candidate.index.unwrap_or(0);
            let parts = read_parts(
                candidate.content.map(|c| c.parts).unwrap_or_default(),
                &mut self.ids,
            );
            let choice = self.choice(index);
            if choice.finished {
                continue;
            }
            let first_call = choice.tool_calls;
            choice.tool_calls += parts.calls.len();
            let has_calls = choice.tool_calls > 0;
            let delta = DeltaOut {
                role: !choice.started,
                content: &parts.text,
                reasoning: &parts.reasoning,
                tool_calls: parts
                    .calls
                    .iter()
                    .enumerate()
                    .map(|(k, call)| ToolCallDelta {
                        index: first_call + k,
                        id: Some(&call.id),
                        name: Some(&call.name),
                        arguments: &call.arguments,
                        extra_content: call.extra_content.as_ref(),
                    })
                    .collect(),
            };
            choice.started = true;
            if !delta.is_empty() {
                self.writer.delta(out, index, &delta, None);
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                self.choice(index).finished = true;
                self.writer.delta(
                    out,
                    index,
                    &DeltaOut::default(),
                    Some(finish_reason(reason, has_calls)),
                );
            }
        }
        Ok(())
    }

    fn fail(&mut self, out: &mut Vec<u8>, message: &str, code: &str) -> DialectError {
        self.failed = true;
        ChunkWriter::error(out, message, code);
        DialectError::Upstream(format!("Gemini stream error {code}: {message}"))
    }

    /// Appends what is still owed: a finish chunk for every choice Gemini left open (`stop`, or `tool_calls` after
    /// calls), the usage chunk when asked for and known, then `data: [DONE]`. After an error only `[DONE]` follows.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.failed {
            for (index, choice) in self.choices.iter().enumerate() {
                if choice.started && !choice.finished {
                    let reason = if choice.tool_calls > 0 {
                        "tool_calls"
                    } else {
                        "stop"
                    };
                    self.writer
                        .delta(out, index, &DeltaOut::default(), Some(reason));
                }
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

/// Translates an OpenAI embeddings body into a `batchEmbedContents` request: one request per input, with
/// `dimensions` as `outputDimensionality` and a non-standard `input_type` (`search_query`, `search_document`,
/// `classification`, `clustering`, …) as `taskType`. Token-array inputs cannot be expressed (Gemini takes text only).
pub fn openai_to_gemini_embeddings_request(
    body: &[u8],
    model: &str,
) -> Result<Vec<u8>, DialectError> {
    let req = parse_embeddings_request(body)?;
    let model_name = format!("models/{}", model_id(model));
    let task_type = req.input_type.as_deref().and_then(task_type);
    let requests: Vec<Value> = req
        .inputs
        .iter()
        .map(|text| {
            let mut r = json!({ "model": model_name, "content": { "parts": [{ "text": text }] } });
            if let Value::Object(map) = &mut r {
                if let Some(d) = req.dimensions {
                    map.insert("outputDimensionality".into(), Value::from(d));
                }
                if let Some(task) = task_type {
                    map.insert("taskType".into(), Value::from(task));
                }
            }
            r
        })
        .collect();
    serde_json::to_vec(&json!({ "requests": requests }))
        .map_err(|e| bad_request(e.to_string(), "input"))
}

/// Gemini's `taskType` for a non-standard `input_type` (Cohere's vocabulary, or Gemini's own names).
fn task_type(input_type: &str) -> Option<&'static str> {
    Some(match input_type.to_ascii_lowercase().as_str() {
        "search_document" | "retrieval_document" => "RETRIEVAL_DOCUMENT",
        "search_query" | "retrieval_query" => "RETRIEVAL_QUERY",
        "classification" => "CLASSIFICATION",
        "clustering" => "CLUSTERING",
        "semantic_similarity" => "SEMANTIC_SIMILARITY",
        "question_answering" => "QUESTION_ANSWERING",
        "fact_verification" => "FACT_VERIFICATION",
        "code_retrieval_query" => "CODE_RETRIEVAL_QUERY",
        _ => return None,
    })
}

#[derive(Deserialize)]
struct BatchEmbedResponse {
    embeddings: Vec<ContentEmbedding>,
}

#[derive(Deserialize)]
struct ContentEmbedding {
    values: Vec<f64>,
}

/// Translates a `batchEmbedContents` answer into an OpenAI embeddings list; `base64` is the client's
/// `encoding_format: "base64"` (see [`super::openai_embeddings_wants_base64`]). Gemini reports no token usage, so
/// `usage` is zero.
pub fn gemini_to_openai_embeddings_response(
    body: &[u8],
    model: &str,
    base64: bool,
) -> Result<Vec<u8>, DialectError> {
    let response: BatchEmbedResponse = serde_json::from_slice(body).map_err(|e| {
        DialectError::Upstream(format!(
            "Gemini answer is not a BatchEmbedContentsResponse: {e}"
        ))
    })?;
    let vectors: Vec<Vec<f64>> = response.embeddings.into_iter().map(|e| e.values).collect();
    render_embeddings(&vectors, model, base64, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str, model: &str) -> Value {
        let out = openai_to_gemini_chat_request(body.as_bytes(), model, false).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn response(body: &str) -> Value {
        let out =
            gemini_to_openai_chat_response(body.as_bytes(), "gemini-2.5-flash", "chatcmpl-abc", 7)
                .unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn param_of(err: DialectError) -> String {
        match err {
            DialectError::BadRequest { param, .. } => param.unwrap_or_default(),
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }

    /// Splits emitted SSE frames into their payloads and checks each one is recognised by the gateway.
    fn sse_payloads(out: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(
            text.ends_with("\n\n"),
            "frames end with a blank line: {text:?}"
        );
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

    #[test]
    fn urls() {
        assert_eq!(
            chat_url("", "gemini-2.5-flash", false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            chat_url(
                "https://proxy.example/v1beta/",
                "models/gemini-2.5-flash",
                true
            ),
            "https://proxy.example/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            embeddings_url("", "gemini-embedding-001"),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
        );
    }

    #[test]
    fn roles_system_and_merging() {
        let body = request(
            r#"{"model":"x","messages":[
                {"role":"system","content":"Be brief."},
                {"role":"developer","content":[{"type":"text","text":"Use metric."}]},
                {"role":"user","content":"Hi"},
                {"role":"user","content":"Anyone there?"},
                {"role":"assistant","content":"Hello!"},
                {"role":"user","content":"Weather?"}]}"#,
            "gemini-2.5-flash",
        );
        assert_eq!(
            body["systemInstruction"],
            json!({"parts":[{"text":"Be brief."},{"text":"Use metric."}]})
        );
        assert_eq!(
            body["contents"],
            json!([
                {"role":"user","parts":[{"text":"Hi"},{"text":"Anyone there?"}]},
                {"role":"model","parts":[{"text":"Hello!"}]},
                {"role":"user","parts":[{"text":"Weather?"}]}
            ])
        );
    }

    #[test]
    fn gemma_folds_system_into_first_user_turn() {
        let body = request(
            r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#,
            "gemma-3-27b-it",
        );
        assert!(body.get("systemInstruction").is_none());
        assert_eq!(
            body["contents"],
            json!([{"role":"user","parts":[{"text":"Be brief."},{"text":"Hi"}]}])
        );
    }

    #[test]
    fn images_inline_and_by_reference() {
        let body = request(
            r#"{"messages":[{"role":"user","content":[
                {"type":"text","text":"Compare"},
                {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                {"type":"image_url","image_url":{"url":"https://example.com/cat.webp?size=2","detail":"high"}},
                {"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}]}"#,
            "gemini-2.5-flash",
        );
        assert_eq!(
            body["contents"][0]["parts"],
            json!([
                {"text":"Compare"},
                {"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},
                {"fileData":{"mimeType":"image/webp","fileUri":"https://example.com/cat.webp?size=2"}},
                {"inlineData":{"mimeType":"audio/wav","data":"UklGRg=="}}
            ])
        );
        let err = openai_to_gemini_chat_request(
            br#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}"#,
            "gemini-2.5-flash",
            false,
        )
        .unwrap_err();
        assert_eq!(param_of(err), "messages[0].content[1].image_url.url");
    }

    #[test]
    fn tool_calls_and_results_round_trip_with_signatures() {
        let body = request(
            r#"{"messages":[
                {"role":"user","content":"Weather in Paris and Rome?"},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
                     "extra_content":{"google":{"thought_signature":"c2lnLTE="}}},
                    {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
                {"role":"tool","tool_call_id":"call_1","content":"{\"temp\":21}"},
                {"role":"tool","tool_call_id":"call_2","content":"sunny, 25C"}]}"#,
            "gemini-2.5-flash",
        );
        assert_eq!(
            body["contents"],
            json!([
                {"role":"user","parts":[{"text":"Weather in Paris and Rome?"}]},
                {"role":"model","parts":[
                    {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2lnLTE="},
                    {"functionCall":{"name":"get_weather","args":{"city":"Rome"}}}]},
                {"role":"user","parts":[
                    {"functionResponse":{"name":"get_weather","response":{"temp":21}}},
                    {"functionResponse":{"name":"get_weather","response":{"output":"sunny, 25C"}}}]}
            ])
        );
    }

    #[test]
    fn gemini_3_gets_a_placeholder_signature_only_when_none_was_kept() {
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"},
                {"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}},{"id":"b","function":{"name":"f","arguments":""}}]},
                {"role":"tool","tool_call_id":"a","content":"1"},{"role":"tool","tool_call_id":"b","content":"2"}]}"#,
            "gemini-3-pro-preview",
        );
        let parts = &body["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], SIGNATURE_PLACEHOLDER);
        assert!(parts[1].get("thoughtSignature").is_none());
        assert_eq!(parts[1]["functionCall"]["args"], json!({}));
        assert!(!requires_signatures("gemini-2.5-pro"));
        assert!(requires_signatures("gemini-3.1-flash"));
    }

    #[test]
    fn tool_result_without_a_call_and_bad_arguments_are_bad_requests() {
        let err = openai_to_gemini_chat_request(
            br#"{"messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"1"}]}"#,
            "gemini-2.5-flash",
            false,
        )
        .unwrap_err();
        assert_eq!(param_of(err), "messages[1].tool_call_id");
        let err = openai_to_gemini_chat_request(
            br#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"[1]"}}]}]}"#,
            "gemini-2.5-flash",
            false,
        )
        .unwrap_err();
        assert_eq!(
            param_of(err),
            "messages[1].tool_calls[0].function.arguments"
        );
        let err =
            openai_to_gemini_chat_request(b"{not json", "gemini-2.5-flash", false).unwrap_err();
        assert!(matches!(err, DialectError::BadRequest { param: None, .. }));
    }

    #[test]
    fn tools_schema_sanitising_and_tool_choice() {
        let body = request(
            r##"{"messages":[{"role":"user","content":"x"}],
                "tools":[
                  {"type":"function","function":{"name":"lookup","description":"Find a thing",
                    "parameters":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
                      "additionalProperties":false,
                      "$defs":{"Unit":{"type":"string","enum":["c","f"],"default":"c"}},
                      "properties":{
                        "query":{"type":"string","examples":["x"],"format":"uri","minLength":1},
                        "unit":{"$ref":"#/$defs/Unit"},
                        "limit":{"type":["integer","null"],"minimum":1},
                        "mode":{"const":"fast"},
                        "tags":{"type":"array","items":{"type":"string"}},
                        "either":{"oneOf":[{"type":"string"},{"type":"number"}]},
                        "cond":{"if":{"type":"string"},"then":{"type":"string"},"not":{"type":"null"}}
                      },
                      "required":["query","ghost"]}}},
                  {"type":"function","function":{"name":"ping","parameters":{"type":"object","properties":{}}}},
                  {"type":"function","function":{"name":"google_search"}}],
                "tool_choice":{"type":"function","function":{"name":"lookup"}},
                "response_format":{"type":"json_object"}}"##,
            "gemini-2.5-flash",
        );
        assert_eq!(
            body["tools"],
            json!([
                {"functionDeclarations":[
                    {"name":"lookup","description":"Find a thing","parameters":{
                        "type":"object",
                        "properties":{
                            "query":{"type":"string","minLength":1},
                            "unit":{"type":"string","enum":["c","f"]},
                            "limit":{"type":"integer","nullable":true,"minimum":1},
                            "mode":{"type":"string","enum":["fast"]},
                            "tags":{"type":"array","items":{"type":"string"}},
                            "either":{"anyOf":[{"type":"string"},{"type":"number"}]},
                            "cond":{}
                        },
                        "required":["query"]}},
                    {"name":"ping"}]},
                {"googleSearch":{}}
            ])
        );
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["lookup"]}})
        );
        // response_format is dropped next to function tools.
        assert!(body.get("generationConfig").is_none());

        for (choice, mode) in [
            ("\"none\"", "NONE"),
            ("\"auto\"", "AUTO"),
            ("\"required\"", "ANY"),
        ] {
            let body = request(
                &format!(
                    r#"{{"messages":[{{"role":"user","content":"x"}}],"tools":[{{"type":"function","function":{{"name":"f"}}}}],"tool_choice":{choice}}}"#
                ),
                "gemini-2.5-flash",
            );
            assert_eq!(
                body["toolConfig"]["functionCallingConfig"],
                json!({ "mode": mode })
            );
        }
        let err = openai_to_gemini_chat_request(
            br#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}"#,
            "gemini-2.5-flash",
            false,
        )
        .unwrap_err();
        assert_eq!(param_of(err), "tool_choice");
        let err = openai_to_gemini_chat_request(
            br#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"code_interpreter"}]}"#,
            "gemini-2.5-flash",
            false,
        )
        .unwrap_err();
        assert_eq!(param_of(err), "tools[0].type");
    }

    #[test]
    fn generation_config_response_format_and_reasoning() {
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":0.2,"top_p":0.9,"top_k":40,
                "max_completion_tokens":256,"stop":["END","STOP"],"n":2,"seed":42,"presence_penalty":0.5,
                "frequency_penalty":-0.5,"reasoning_effort":"medium","logprobs":true,"user":"u1",
                "response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,
                  "schema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}}}}"#,
            "gemini-2.5-flash",
        );
        assert_eq!(
            body["generationConfig"],
            json!({
                "temperature":0.2,"topP":0.9,"topK":40,"maxOutputTokens":256,"stopSequences":["END","STOP"],
                "candidateCount":2,"seed":42,"presencePenalty":0.5,"frequencyPenalty":-0.5,
                "responseMimeType":"application/json",
                "responseSchema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},
                "thinkingConfig":{"thinkingBudget":8192,"includeThoughts":true}
            })
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "only contents and generationConfig: {body}"
        );
        let body = request(
            r#"{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"minimal","response_format":{"type":"json_object"},"max_tokens":10}"#,
            "gemini-2.5-flash",
        );
        assert_eq!(
            body["generationConfig"],
            json!({"maxOutputTokens":10,"responseMimeType":"application/json","thinkingConfig":{"thinkingBudget":0}})
        );
        for (effort, budget) in [("low", 1024), ("high", 24576)] {
            let body = request(
                &format!(
                    r#"{{"messages":[{{"role":"user","content":"x"}}],"reasoning_effort":"{effort}"}}"#
                ),
                "gemini-2.5-flash",
            );
            assert_eq!(
                body["generationConfig"]["thinkingConfig"]["thinkingBudget"],
                budget
            );
        }
    }

    #[test]
    fn response_text_thoughts_and_usage() {
        let body = response(
            r#"{"candidates":[{"content":{"role":"model","parts":[
                    {"text":"Let me think.","thought":true},{"text":"Hello"},{"text":", world"}]},
                  "finishReason":"STOP","index":0}],
                "usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"thoughtsTokenCount":3,
                  "totalTokenCount":18,"cachedContentTokenCount":4},
                "modelVersion":"gemini-2.5-flash","responseId":"abc"}"#,
        );
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "chatcmpl-abc");
        assert_eq!(body["created"], 7);
        assert_eq!(body["model"], "gemini-2.5-flash");
        let choice = &body["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "Hello, world");
        assert_eq!(choice["message"]["reasoning_content"], "Let me think.");
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens":10,"completion_tokens":8,"total_tokens":18,
                   "prompt_tokens_details":{"cached_tokens":4},
                   "completion_tokens_details":{"reasoning_tokens":3}})
        );
    }

    #[test]
    fn response_parallel_function_calls() {
        let body = response(
            r#"{"candidates":[{"content":{"role":"model","parts":[
                    {"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"U0lH"},
                    {"functionCall":{"name":"get_weather","args":{"city":"Rome"}}}]},
                  "finishReason":"STOP"}],
                "usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":10,"totalTokenCount":30}}"#,
        );
        let message = &body["choices"][0]["message"];
        assert!(message["content"].is_null());
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            message["tool_calls"],
            json!([
                {"id":"call_chatcmplabc_0","type":"function",
                 "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
                 "extra_content":{"google":{"thought_signature":"U0lH"}}},
                {"id":"call_chatcmplabc_1","type":"function",
                 "function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}
            ])
        );
        // The calls replay as Gemini parts with the signature back in place.
        let replay = json!({"messages":[{"role":"user","content":"w"}, message, 
            {"role":"tool","tool_call_id":"call_chatcmplabc_0","content":"18C"},
            {"role":"tool","tool_call_id":"call_chatcmplabc_1","content":"25C"}]});
        let body = request(&replay.to_string(), "gemini-3-flash");
        assert_eq!(body["contents"][1]["parts"][0]["thoughtSignature"], "U0lH");
        assert!(body["contents"][1]["parts"][1]
            .get("thoughtSignature")
            .is_none());
        assert_eq!(
            body["contents"][2]["parts"][1]["functionResponse"]["response"],
            json!({"output":"25C"})
        );
    }

    #[test]
    fn every_finish_reason_class_and_several_candidates() {
        for (reason, expected) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("OTHER", "stop"),
        ] {
            let body = response(&format!(
                r#"{{"candidates":[{{"content":{{"parts":[{{"text":"x"}}]}},"finishReason":"{reason}"}}]}}"#
            ));
            assert_eq!(body["choices"][0]["finish_reason"], expected, "{reason}");
        }
        let body = response(
            r#"{"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"MAX_TOKENS","index":1},
                              {"content":{"parts":[{"text":"a"}]},"finishReason":"STOP","index":0}]}"#,
        );
        assert_eq!(body["choices"][0]["message"]["content"], "a");
        assert_eq!(body["choices"][1]["message"]["content"], "b");
        assert_eq!(body["choices"][1]["index"], 1);
        assert_eq!(body["choices"][1]["finish_reason"], "length");
        // A candidate cut by safety with no content at all.
        let body = response(r#"{"candidates":[{"finishReason":"SAFETY","index":0}]}"#);
        assert_eq!(body["choices"][0]["message"]["content"], "");
    }

    #[test]
    fn blocked_prompt_is_an_answer_and_garbage_is_upstream() {
        let body = response(
            r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}"#,
        );
        assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(body["usage"]["prompt_tokens"], 9);
        for bad in [
            &b"<html>"[..],
            br#"{}"#,
            br#"{"error":{"code":500,"message":"boom","status":"INTERNAL"}}"#,
        ] {
            assert!(matches!(
                gemini_to_openai_chat_response(bad, "m", "id", 0),
                Err(DialectError::Upstream(_))
            ));
        }
    }

    #[test]
    fn stream_text_thoughts_calls_finish_and_usage() {
        let mut stream = GeminiChatStream::new("gemini-2.5-flash", "chatcmpl-s1", 99, true);
        let mut out = Vec::new();
        for event in [
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Planning","thought":true}]},"index":0}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Checking both."}]},"index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":3,"thoughtsTokenCount":5,"totalTokenCount":20}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"w","args":{"c":"P"}},"thoughtSignature":"U0k="},{"functionCall":{"name":"w","args":{"c":"R"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":9,"thoughtsTokenCount":5,"totalTokenCount":26}}"#,
        ] {
            stream.push(None, event.as_bytes(), &mut out).unwrap();
        }
        stream.finish(&mut out);
        stream.finish(&mut out); // idempotent
        let frames = sse_payloads(&out);
        let json: Vec<Value> = frames[..frames.len() - 1]
            .iter()
            .map(|f| serde_json::from_str(f).unwrap())
            .collect();
        assert_eq!(json.len(), 5, "{frames:#?}");
        for chunk in &json[..4] {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], "chatcmpl-s1");
            assert_eq!(chunk["created"], 99);
            assert_eq!(chunk["model"], "gemini-2.5-flash");
        }
        assert_eq!(
            json[0]["choices"][0]["delta"],
            json!({"role":"assistant","content":"","reasoning_content":"Planning"})
        );
        assert_eq!(
            json[1]["choices"][0]["delta"],
            json!({"content":"Checking both."})
        );
        assert_eq!(
            json[2]["choices"][0]["delta"]["tool_calls"],
            json!([
                {"index":0,"id":"call_chatcmpls1_0","type":"function","function":{"name":"w","arguments":"{\"c\":\"P\"}"},
                 "extra_content":{"google":{"thought_signature":"U0k="}}},
                {"index":1,"id":"call_chatcmpls1_1","type":"function","function":{"name":"w","arguments":"{\"c\":\"R\"}"}}
            ])
        );
        assert_eq!(json[3]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(json[4]["choices"], json!([]));
        assert_eq!(
            json[4]["usage"],
            json!({"prompt_tokens":12,"completion_tokens":14,"total_tokens":26,"completion_tokens_details":{"reasoning_tokens":5}})
        );
        assert_eq!(frames.last().unwrap(), "[DONE]");

        // What the gateway's watchdog sees.
        let signals: Vec<wire::ChunkSignal> = frames
            .iter()
            .map(|f| wire::inspect_chunk(f.as_bytes()))
            .collect();
        assert!(signals[0].output && signals[1].output && signals[2].output);
        assert!(signals[3].finished && !signals[3].output);
        assert_eq!(
            signals[4].usage,
            Some(wire::Usage {
                prompt_tokens: 12,
                completion_tokens: 14
            })
        );
        assert!(signals[5].done);
    }

    #[test]
    fn stream_without_finish_reason_is_closed_by_finish_and_usage_is_optional() {
        let mut stream = GeminiChatStream::new("m", "id", 1, false);
        let mut out = Vec::new();
        stream
            .push(None, br#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}],"usageMetadata":{"promptTokenCount":1}}"#, &mut out)
            .unwrap();
        stream.push(None, b"", &mut out).unwrap();
        stream.finish(&mut out);
        let frames = sse_payloads(&out);
        assert_eq!(frames.len(), 3);
        assert!(wire::inspect_chunk(frames[1].as_bytes()).finished);
        assert!(frames[1].contains(r#""finish_reason":"stop""#));
        assert_eq!(frames[2], "[DONE]");
    }

    #[test]
    fn stream_blocked_prompt_and_max_tokens() {
        let mut stream = GeminiChatStream::new("m", "id", 1, false);
        let mut out = Vec::new();
        stream
            .push(
                None,
                br#"{"promptFeedback":{"blockReason":"SAFETY"}}"#,
                &mut out,
            )
            .unwrap();
        stream.finish(&mut out);
        let frames = sse_payloads(&out);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].contains(r#""finish_reason":"content_filter""#));

        let mut stream = GeminiChatStream::new("m", "id", 1, false);
        let mut out = Vec::new();
        stream
            .push(None, br#"{"candidates":[{"content":{"parts":[{"text":"cut"}]},"finishReason":"MAX_TOKENS"}]}"#, &mut out)
            .unwrap();
        stream.finish(&mut out);
        let frames = sse_payloads(&out);
        assert_eq!(frames.len(), 3);
        assert!(frames[1].contains(r#""finish_reason":"length""#));
    }

    #[test]
    fn stream_in_band_error_is_reported() {
        let mut stream = GeminiChatStream::new("m", "id", 1, true);
        let mut out = Vec::new();
        stream
            .push(
                None,
                br#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}"#,
                &mut out,
            )
            .unwrap();
        let err = stream
            .push(
                None,
                br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#,
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(err, DialectError::Upstream(m) if m.contains("RESOURCE_EXHAUSTED")));
        stream.finish(&mut out);
        let all = sse_payloads(&out);
        assert_eq!(all.len(), 3);
        let error: Value = serde_json::from_str(&all[1]).unwrap();
        assert_eq!(
            error,
            json!({"error":{"message":"Resource has been exhausted","type":"provider_error","code":"RESOURCE_EXHAUSTED"}})
        );
        assert!(wire::inspect_chunk(all[1].as_bytes()).error);
        assert_eq!(all[2], "[DONE]");

        let mut stream = GeminiChatStream::new("m", "id", 1, true);
        let mut out = Vec::new();
        assert!(stream.push(None, b"<html>502</html>", &mut out).is_err());
        assert!(wire::inspect_chunk(frames_payload(&out).as_bytes()).error);
    }

    fn frames_payload(out: &[u8]) -> String {
        sse_payloads(out).remove(0)
    }

    #[test]
    fn embeddings_both_ways() {
        let out = openai_to_gemini_embeddings_request(
            br#"{"model":"gemini-embedding-001","input":["alpha","beta"],"dimensions":768}"#,
            "gemini-embedding-001",
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            body,
            json!({"requests":[
                {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"alpha"}]},"outputDimensionality":768},
                {"model":"models/gemini-embedding-001","content":{"parts":[{"text":"beta"}]},"outputDimensionality":768}
            ]})
        );
        let out = openai_to_gemini_embeddings_request(
            br#"{"input":"q","input_type":"search_query"}"#,
            "m",
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(body["requests"][0]["taskType"], "RETRIEVAL_QUERY");
        assert!(body["requests"][0].get("outputDimensionality").is_none());
        let err = openai_to_gemini_embeddings_request(br#"{"input":[[1,2,3]]}"#, "m").unwrap_err();
        assert_eq!(param_of(err), "input");

        let upstream = br#"{"embeddings":[{"values":[0.5,-1.0]},{"values":[0.25,2.0]}]}"#;
        let out =
            gemini_to_openai_embeddings_response(upstream, "gemini-embedding-001", false).unwrap();
        let body: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            body,
            json!({"object":"list","data":[
                {"object":"embedding","index":0,"embedding":[0.5,-1.0]},
                {"object":"embedding","index":1,"embedding":[0.25,2.0]}],
                "model":"gemini-embedding-001","usage":{"prompt_tokens":0,"total_tokens":0}})
        );
        let out = gemini_to_openai_embeddings_response(upstream, "m", true).unwrap();
        let body: Value = serde_json::from_slice(&out).unwrap();
        // 0.5f32 = 00 00 00 3f, -1.0f32 = 00 00 80 bf (little endian).
        assert_eq!(body["data"][0]["embedding"], "AAAAPwAAgL8=");
        assert!(super::super::openai_embeddings_wants_base64(
            br#"{"input":"a","encoding_format":"base64"}"#
        ));
        assert!(matches!(
            gemini_to_openai_embeddings_response(b"{}", "m", false),
            Err(DialectError::Upstream(_))
        ));
    }
}
