//! Gemini (v1beta) and Cohere (v2) answers for the mock provider, so the gateway's native dialects can be tested
//! end to end without the real services. Only rendering lives here (bodies, SSE events, error bodies, the route
//! parser and the prompt-token count of a native request); the HTTP routes, scenarios and the streaming body stay in
//! `lib.rs`/`body.rs`. The answers mirror the OpenAI ones: the same text, reasoning and tool-call scripts, streams
//! split into the same number of "delta" events, so `stallafter<n>`, `cut<n>` and `drip<ms>` mean the same here.
//!
//! Routes: `/<scenario>/v1beta/models/<model>:generateContent`, `…:streamGenerateContent?alt=sse`,
//! `…:batchEmbedContents`, `/<scenario>/v2/chat` (streamed when the body has `"stream": true`) and
//! `/<scenario>/v2/embed`. See [`native_route`].

use serde_json::{json, Value};

/// Text of every non-stream answer (the same as the OpenAI mock's).
const CONTENT: &str = "Hello from mock.";
const CONTENT_TOKENS: u64 = 4;
const REASONING: &str = "Mock reasoning.";
const REASON_TOKENS: u64 = 2;
const TOOL_TOKENS: u64 = 10;
/// Reasoning deltas of a streamed answer with `reason`.
const REASON_CHUNKS: usize = 2;
/// A thought signature the Gemini mock attaches to its function calls (base64 of `mock-signature`).
pub const GEMINI_THOUGHT_SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

/// An endpoint of a native dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeRoute<'a> {
    GeminiGenerate { model: &'a str },
    GeminiStream { model: &'a str },
    GeminiEmbed { model: &'a str },
    CohereChat,
    CohereEmbed,
}

/// Splits `/<scenario>/v1beta/models/<model>:<method>` and `/<scenario>/v2/<chat|embed>` into the scenario and the
/// route (query strings such as `?alt=sse` are ignored: pass the path only). `None` for anything else, including
/// the OpenAI `/v1/…` paths.
pub fn native_route(path: &str) -> Option<(&str, NativeRoute<'_>)> {
    let rest = path.strip_prefix('/')?;
    let (scenario, rest) = rest.split_once('/')?;
    if scenario.is_empty() {
        return None;
    }
    if let Some(call) = rest.strip_prefix("v1beta/models/") {
        let (model, method) = call.rsplit_once(':')?;
        if model.is_empty() || model.contains('/') {
            return None;
        }
        let route = match method {
            "generateContent" => NativeRoute::GeminiGenerate { model },
            "streamGenerateContent" => NativeRoute::GeminiStream { model },
            "batchEmbedContents" => NativeRoute::GeminiEmbed { model },
            _ => return None,
        };
        return Some((scenario, route));
    }
    match rest.trim_end_matches('/') {
        "v2/chat" => Some((scenario, NativeRoute::CohereChat)),
        "v2/embed" => Some((scenario, NativeRoute::CohereEmbed)),
        _ => None,
    }
}

/// What the mock answers with, as decided from the scenario and the request.
#[derive(Debug, Clone, Copy)]
pub struct NativeAnswer<'a> {
    pub model: &'a str,
    pub prompt_tokens: u64,
    /// Answer with a call to this function (the request's first tool) instead of text.
    pub tool_name: Option<&'a str>,
    /// Add reasoning (Gemini thought parts, Cohere thinking content) before the answer.
    pub reasoning: bool,
    /// Content deltas of a streamed text answer (`chunks<n>`).
    pub content_chunks: usize,
}

impl NativeAnswer<'_> {
    fn completion_tokens(&self) -> u64 {
        let body = if self.tool_name.is_some() {
            TOOL_TOKENS
        } else {
            CONTENT_TOKENS
        };
        body + self.reasoning_tokens()
    }

    fn reasoning_tokens(&self) -> u64 {
        if self.reasoning {
            REASON_TOKENS
        } else {
            0
        }
    }
}

/// A streamed answer: `head` before the first delta, the `deltas` (the events `stallafter<n>`, `cut<n>` and
/// `drip<ms>` count; one string may hold a bracketing event with its delta), then `tail`. Every string is whole
/// SSE events, blank line included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NativeStream {
    pub head: Vec<String>,
    pub deltas: Vec<String>,
    pub tail: Vec<String>,
}

impl NativeStream {
    /// The whole stream as one body.
    pub fn concat(&self) -> String {
        self.head
            .iter()
            .chain(&self.deltas)
            .chain(&self.tail)
            .map(String::as_str)
            .collect()
    }
}

fn tokens_for(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

// ---------------------------------------------------------------------------------------------------------------
// Gemini.
// ---------------------------------------------------------------------------------------------------------------

/// Prompt tokens of a `GenerateContentRequest`: the text of every part (system instruction included) plus a small
/// per-turn overhead, like the OpenAI mock's estimate.
pub fn gemini_prompt_tokens(req: &Value) -> u64 {
    let mut chars = 0usize;
    let mut turns = 0u64;
    let system = req.get("systemInstruction").into_iter();
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for turn in system.chain(contents) {
        turns += 1;
        for part in turn
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            chars += part.get("text").and_then(Value::as_str).map_or(0, str::len);
        }
    }
    tokens_for(chars) + 3 * turns
}

/// The first declared function of a `GenerateContentRequest`, for the `tool` scenario.
pub fn gemini_first_tool_name(req: &Value) -> Option<&str> {
    req.get("tools")?
        .as_array()?
        .iter()
        .find_map(|t| t.pointer("/functionDeclarations/0/name"))
        .and_then(Value::as_str)
}

fn gemini_usage(answer: &NativeAnswer<'_>) -> Value {
    let mut usage = json!({
        "promptTokenCount": answer.prompt_tokens,
        "candidatesTokenCount": answer.completion_tokens() - answer.reasoning_tokens(),
        "totalTokenCount": answer.prompt_tokens + answer.completion_tokens(),
    });
    if answer.reasoning {
        usage["thoughtsTokenCount"] = json!(answer.reasoning_tokens());
    }
    usage
}

fn gemini_call_part(name: &str) -> Value {
    json!({
        "functionCall": { "name": name, "args": { "city": "Paris" } },
        "thoughtSignature": GEMINI_THOUGHT_SIGNATURE,
    })
}

/// A `generateContent` answer.
pub fn gemini_generate_content(answer: &NativeAnswer<'_>) -> String {
    let mut parts = Vec::new();
    if answer.reasoning {
        parts.push(json!({ "text": REASONING, "thought": true }));
    }
    match answer.tool_name {
        Some(name) => parts.push(gemini_call_part(name)),
        None => parts.push(json!({ "text": CONTENT })),
    }
    json!({
        "candidates": [{
            "content": { "role": "model", "parts": parts },
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": gemini_usage(answer),
        "modelVersion": answer.model,
        "responseId": "mock-response",
    })
    .to_string()
}

fn gemini_event(value: &Value) -> String {
    // Gemini ends its SSE events with CRLF pairs.
    format!("data: {value}\r\n\r\n")
}

fn gemini_fragment(answer: &NativeAnswer<'_>, part: Value, usage: Value) -> String {
    gemini_event(&json!({
        "candidates": [{ "content": { "role": "model", "parts": [part] }, "index": 0 }],
        "usageMetadata": usage,
        "modelVersion": answer.model,
        "responseId": "mock-response",
    }))
}

/// A `streamGenerateContent?alt=sse` answer: reasoning and content fragments (or one function-call fragment), then
/// a last event with `finishReason` and the full usage. Gemini has no role event, so `head` is empty.
pub fn gemini_stream(answer: &NativeAnswer<'_>) -> NativeStream {
    let early_usage = json!({ "promptTokenCount": answer.prompt_tokens, "totalTokenCount": answer.prompt_tokens });
    let mut deltas = Vec::new();
    if answer.reasoning {
        for i in 0..REASON_CHUNKS {
            let part = json!({ "text": format!("think{i} "), "thought": true });
            deltas.push(gemini_fragment(answer, part, early_usage.clone()));
        }
    }
    match answer.tool_name {
        Some(name) => deltas.push(gemini_fragment(answer, gemini_call_part(name), early_usage)),
        None => {
            for j in 0..answer.content_chunks {
                let part = json!({ "text": format!("tok{j} ") });
                deltas.push(gemini_fragment(answer, part, early_usage.clone()));
            }
        }
    }
    let last = gemini_event(&json!({
        "candidates": [{
            "content": { "role": "model", "parts": [{ "text": "" }] },
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": gemini_usage(answer),
        "modelVersion": answer.model,
        "responseId": "mock-response",
    }));
    NativeStream {
        head: Vec::new(),
        deltas,
        tail: vec![last],
    }
}

/// The in-band error event of the `inbanderr` scenario.
pub fn gemini_stream_error() -> String {
    gemini_event(&json!({
        "error": { "code": 500, "message": "mock in-band error", "status": "INTERNAL" }
    }))
}

/// A `batchEmbedContents` answer with one 4-dimension vector per input.
pub fn gemini_batch_embed(inputs: usize) -> String {
    let embeddings: Vec<Value> = (0..inputs)
        .map(|_| json!({ "values": [0.1, 0.2, 0.3, 0.4] }))
        .collect();
    json!({ "embeddings": embeddings }).to_string()
}

/// Google's status name for an HTTP status.
fn google_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if status < 500 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// A Google API error body: `{"error":{"code","message","status"}}`.
pub fn gemini_error_body(status: u16, message: &str) -> String {
    json!({ "error": { "code": status, "message": message, "status": google_status(status) } })
        .to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// Cohere.
// ---------------------------------------------------------------------------------------------------------------

fn cohere_usage(answer: &NativeAnswer<'_>) -> Value {
    let units = json!({
        "input_tokens": answer.prompt_tokens,
        "output_tokens": answer.completion_tokens(),
    });
    json!({ "billed_units": units, "tokens": units })
}

fn cohere_call_id(name: &str) -> String {
    format!("{name}_mock1")
}

/// A `/v2/chat` answer (Cohere's request `messages` have OpenAI's shape, so the OpenAI mock's prompt estimate and
/// first-tool lookup apply to it unchanged).
pub fn cohere_chat(answer: &NativeAnswer<'_>) -> String {
    let mut content = Vec::new();
    if answer.reasoning {
        content.push(json!({ "type": "thinking", "thinking": REASONING }));
    }
    let (message, finish) = match answer.tool_name {
        Some(name) => (
            json!({
                "role": "assistant",
                "content": content,
                "tool_plan": format!("I will call {name}."),
                "tool_calls": [{
                    "id": cohere_call_id(name),
                    "type": "function",
                    "function": { "name": name, "arguments": "{\"city\":\"Paris\"}" },
                }],
            }),
            "TOOL_CALL",
        ),
        None => {
            content.push(json!({ "type": "text", "text": CONTENT }));
            (
                json!({ "role": "assistant", "content": content }),
                "COMPLETE",
            )
        }
    };
    json!({
        "id": "mock-chat",
        "finish_reason": finish,
        "message": message,
        "usage": cohere_usage(answer),
    })
    .to_string()
}

fn cohere_event(value: &Value) -> String {
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("debug");
    format!("event: {kind}\ndata: {value}\n\n")
}

/// A streamed `/v2/chat` answer: `message-start`; thinking deltas, then text deltas (the `content-start` and
/// `content-end` events ride with the first and last delta of their block) or, for a tool call,
/// `tool-call-start` and two argument fragments; then `message-end` with the finish reason and usage.
pub fn cohere_stream(answer: &NativeAnswer<'_>) -> NativeStream {
    let head = vec![cohere_event(&json!({
        "id": "mock-chat",
        "type": "message-start",
        "delta": { "message": { "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": [] } },
    }))];
    let mut deltas = Vec::new();
    let mut block = 0usize;
    let mut content_block = |deltas: &mut Vec<String>, kind: &str, pieces: Vec<String>| {
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut events = String::new();
            if i == 0 {
                events.push_str(&cohere_event(&json!({
                    "type": "content-start", "index": block,
                    "delta": { "message": { "content": { "type": kind, kind: "" } } },
                })));
            }
            events.push_str(&cohere_event(&json!({
                "type": "content-delta", "index": block,
                "delta": { "message": { "content": { kind: piece } } },
            })));
            if i + 1 == count {
                events.push_str(&cohere_event(
                    &json!({ "type": "content-end", "index": block }),
                ));
            }
            deltas.push(events);
        }
        block += 1;
    };
    if answer.reasoning {
        let pieces = (0..REASON_CHUNKS).map(|i| format!("think{i} ")).collect();
        content_block(&mut deltas, "thinking", pieces);
    }
    let finish = match answer.tool_name {
        Some(name) => {
            deltas.push(cohere_event(&json!({
                "type": "tool-call-start", "index": 0,
                "delta": { "message": { "tool_calls": {
                    "id": cohere_call_id(name), "type": "function",
                    "function": { "name": name, "arguments": "" },
                } } },
            })));
            for fragment in ["{\"city\":", "\"Paris\"}"] {
                deltas.push(cohere_event(&json!({
                    "type": "tool-call-delta", "index": 0,
                    "delta": { "message": { "tool_calls": { "function": { "arguments": fragment } } } },
                })));
            }
            if let Some(last) = deltas.last_mut() {
                last.push_str(&cohere_event(
                    &json!({ "type": "tool-call-end", "index": 0 }),
                ));
            }
            "TOOL_CALL"
        }
        None => {
            let pieces = (0..answer.content_chunks)
                .map(|j| format!("tok{j} "))
                .collect();
            content_block(&mut deltas, "text", pieces);
            "COMPLETE"
        }
    };
    let tail = vec![cohere_event(&json!({
        "type": "message-end",
        "delta": { "finish_reason": finish, "usage": cohere_usage(answer) },
    }))];
    NativeStream { head, deltas, tail }
}

/// The in-band failure of the `inbanderr` scenario: a `message-end` whose generation failed.
pub fn cohere_stream_error() -> String {
    cohere_event(&json!({
        "type": "message-end",
        "delta": { "finish_reason": "ERROR", "error": "mock in-band error" },
    }))
}

/// A `/v2/embed` answer (`embeddings_by_type`, floats) with one 4-dimension vector per input.
pub fn cohere_embed(inputs: usize, input_tokens: u64) -> String {
    let vectors: Vec<Value> = (0..inputs).map(|_| json!([0.1, 0.2, 0.3, 0.4])).collect();
    json!({
        "id": "mock-embed",
        "embeddings": { "float": vectors },
        "texts": [],
        "meta": { "api_version": { "version": "2" }, "billed_units": { "input_tokens": input_tokens } },
        "response_type": "embeddings_by_type",
    })
    .to_string()
}

/// The number of `texts` in a `/v2/embed` request and their token estimate.
pub fn cohere_embed_inputs(req: &Value) -> (usize, u64) {
    let texts = req.get("texts").and_then(Value::as_array);
    let count = texts.map_or(0, Vec::len);
    let tokens = texts
        .into_iter()
        .flatten()
        .map(|t| tokens_for(t.as_str().map_or(0, str::len)))
        .sum();
    (count, tokens)
}

/// A Cohere error body: `{"id","message"}`.
pub fn cohere_error_body(message: &str) -> String {
    json!({ "id": "mock-error", "message": message }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(tool_name: Option<&str>, reasoning: bool) -> NativeAnswer<'_> {
        NativeAnswer {
            model: "mock-model",
            prompt_tokens: 7,
            tool_name,
            reasoning,
            content_chunks: 3,
        }
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    /// The `data:` payloads of SSE text, with the `event:` names when present.
    fn events(text: &str) -> Vec<(Option<String>, Value)> {
        let text = text.replace("\r\n", "\n");
        assert!(text.ends_with("\n\n"));
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut name = None;
                let mut data = None;
                for line in e.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = Some(n.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(parse(d));
                    }
                }
                (name, data.unwrap())
            })
            .collect()
    }

    #[test]
    fn routes() {
        assert_eq!(
            native_route("/ok/v1beta/models/gemini-2.5-flash:generateContent"),
            Some((
                "ok",
                NativeRoute::GeminiGenerate {
                    model: "gemini-2.5-flash"
                }
            ))
        );
        assert_eq!(
            native_route("/429ra5/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some((
                "429ra5",
                NativeRoute::GeminiStream {
                    model: "gemini-2.5-flash"
                }
            ))
        );
        assert_eq!(
            native_route("/ok/v1beta/models/gemini-embedding-001:batchEmbedContents"),
            Some((
                "ok",
                NativeRoute::GeminiEmbed {
                    model: "gemini-embedding-001"
                }
            ))
        );
        assert_eq!(
            native_route("/tool/v2/chat"),
            Some(("tool", NativeRoute::CohereChat))
        );
        assert_eq!(
            native_route("/ok/v2/embed/"),
            Some(("ok", NativeRoute::CohereEmbed))
        );
        for other in [
            "/ok/v1/chat/completions",
            "/v2/chat",
            "//v2/chat",
            "/ok/v1beta/models/x:countTokens",
            "/ok/v1beta/models/:generateContent",
            "/ok/v1beta/models/a/b:generateContent",
        ] {
            assert_eq!(native_route(other), None, "{other}");
        }
    }

    #[test]
    fn gemini_bodies() {
        let v = parse(&gemini_generate_content(&answer(None, true)));
        let parts = &v["candidates"][0]["content"]["parts"];
        assert_eq!(parts[0], json!({ "text": REASONING, "thought": true }));
        assert_eq!(parts[1]["text"], CONTENT);
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            v["usageMetadata"],
            json!({"promptTokenCount":7,"candidatesTokenCount":4,"thoughtsTokenCount":2,"totalTokenCount":13})
        );
        let v = parse(&gemini_generate_content(&answer(
            Some("get_weather"),
            false,
        )));
        assert_eq!(
            v["candidates"][0]["content"]["parts"][0]["functionCall"],
            json!({"name":"get_weather","args":{"city":"Paris"}})
        );
        assert_eq!(
            parse(&gemini_batch_embed(2))["embeddings"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let v = parse(&gemini_error_body(429, "quota"));
        assert_eq!(
            v,
            json!({"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}})
        );
        let req = json!({
            "systemInstruction": {"parts":[{"text":"abcd"}]},
            "contents":[{"role":"user","parts":[{"text":"abcdefgh"}]}],
            "tools":[{"googleSearch":{}},{"functionDeclarations":[{"name":"lookup"}]}]
        });
        assert_eq!(gemini_prompt_tokens(&req), 3 + 6);
        assert_eq!(gemini_first_tool_name(&req), Some("lookup"));
    }

    #[test]
    fn gemini_streams() {
        let s = gemini_stream(&answer(None, true));
        assert!(s.head.is_empty());
        assert_eq!(s.deltas.len(), REASON_CHUNKS + 3);
        let all = events(&s.concat());
        assert_eq!(all.len(), REASON_CHUNKS + 3 + 1);
        assert_eq!(
            all[0].1["candidates"][0]["content"]["parts"][0]["thought"],
            true
        );
        assert_eq!(
            all[2].1["candidates"][0]["content"]["parts"][0]["text"],
            "tok0 "
        );
        assert_eq!(all[5].1["candidates"][0]["finishReason"], "STOP");
        assert_eq!(all[5].1["usageMetadata"]["totalTokenCount"], 13);
        let s = gemini_stream(&answer(Some("f"), false));
        assert_eq!(s.deltas.len(), 1);
        assert!(s.deltas[0].contains("functionCall"));
        assert_eq!(
            events(&gemini_stream_error())[0].1["error"]["status"],
            "INTERNAL"
        );
    }

    #[test]
    fn cohere_bodies() {
        let v = parse(&cohere_chat(&answer(None, true)));
        assert_eq!(v["finish_reason"], "COMPLETE");
        assert_eq!(v["message"]["content"][0]["type"], "thinking");
        assert_eq!(
            v["message"]["content"][1],
            json!({"type":"text","text":CONTENT})
        );
        assert_eq!(
            v["usage"]["tokens"],
            json!({"input_tokens":7,"output_tokens":6})
        );
        let v = parse(&cohere_chat(&answer(Some("get_weather"), false)));
        assert_eq!(v["finish_reason"], "TOOL_CALL");
        assert_eq!(
            v["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        let v = parse(&cohere_embed(3, 5));
        assert_eq!(v["embeddings"]["float"].as_array().map(Vec::len), Some(3));
        assert_eq!(v["meta"]["billed_units"]["input_tokens"], 5);
        assert_eq!(
            cohere_embed_inputs(&json!({"texts":["abcd","abcdefgh"]})),
            (2, 3)
        );
        assert_eq!(parse(&cohere_error_body("nope"))["message"], "nope");
    }

    #[test]
    fn cohere_streams() {
        let s = cohere_stream(&answer(None, true));
        assert_eq!(s.head.len(), 1);
        assert_eq!(s.deltas.len(), REASON_CHUNKS + 3);
        let all = events(&s.concat());
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
        assert_eq!(
            names,
            [
                "message-start",
                "content-start",
                "content-delta",
                "content-delta",
                "content-end",
                "content-start",
                "content-delta",
                "content-delta",
                "content-delta",
                "content-end",
                "message-end"
            ]
        );
        for (name, data) in &all {
            assert_eq!(data["type"].as_str(), name.as_deref());
        }
        assert_eq!(
            all[2].1["delta"]["message"]["content"]["thinking"],
            "think0 "
        );
        assert_eq!(all[6].1["delta"]["message"]["content"]["text"], "tok0 ");
        assert_eq!(all[10].1["delta"]["finish_reason"], "COMPLETE");

        let s = cohere_stream(&answer(Some("get_weather"), false));
        assert_eq!(s.deltas.len(), 3);
        let all = events(&s.concat());
        let args: String = all
            .iter()
            .filter(|(n, _)| n.as_deref() == Some("tool-call-delta"))
            .map(|(_, d)| {
                d["delta"]["message"]["tool_calls"]["function"]["arguments"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(parse(&args), json!({"city":"Paris"}));
        assert_eq!(all.last().unwrap().1["delta"]["finish_reason"], "TOOL_CALL");
        assert_eq!(
            events(&cohere_stream_error())[0].1["delta"]["finish_reason"],
            "ERROR"
        );
    }
}
