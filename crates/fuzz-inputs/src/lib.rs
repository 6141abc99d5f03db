//! Inputs for the property tests of every parser and translator: arbitrary JSON whose object keys are mostly the
//! field names the wire formats use (so that generated values reach deep into the parsers instead of being refused
//! at the first field), arbitrary bytes, and SSE streams cut at arbitrary points.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Field names of the chat, Responses, Messages, Gemini and Cohere formats.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "text",
    "type",
    "tools",
    "tool_calls",
    "tool_call_id",
    "function",
    "name",
    "arguments",
    "parameters",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_output_tokens",
    "temperature",
    "input",
    "instructions",
    "output",
    "call_id",
    "system",
    "contents",
    "parts",
    "functionCall",
    "functionResponse",
    "args",
    "response",
    "candidates",
    "usage",
    "choices",
    "delta",
    "finish_reason",
    "index",
    "id",
    "image_url",
    "url",
    "source",
    "data",
    "media_type",
    "tool_choice",
    "response_format",
    "json_schema",
    "schema",
    "reasoning",
    "effort",
    "thinking",
    "budget_tokens",
    "generationConfig",
    "systemInstruction",
    "functionDeclarations",
    "message",
    "event",
    "error",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(KEYS).prop_map(|k| Value::String(k.to_owned())),
        prop::sample::select(
            &[
                "user",
                "assistant",
                "system",
                "tool",
                "developer",
                "function_call",
                "function_call_output",
                "input_text",
                "output_text",
                "image",
                "tool_use",
                "tool_result",
                "auto",
                "none",
                "required",
                "stop",
                "low",
                "high",
                "[DONE]"
            ][..]
        )
        .prop_map(|k| Value::String(k.to_owned())),
        any::<String>().prop_map(Value::String),
    ]
}

/// Any JSON value, nested up to a few levels, keys mostly from the wire formats.
pub fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
                        1 => any::<String>(),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object (what every request body is), serialised.
pub fn json_object_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop::sample::select(KEYS).prop_map(str::to_owned),
            json_value(),
        ),
        0..8,
    )
    .prop_map(|pairs| {
        serde_json::to_vec(&Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
            .unwrap_or_default()
    })
}

/// Either a JSON object or raw bytes: well-formed and malformed inputs alike.
pub fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json_object_bytes(),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// An SSE byte stream (`data:` events of JSON values, comments, `event:` lines, `[DONE]`) and the points at which it
/// is cut into chunks.
pub fn sse_stream() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    let event = prop_oneof![
        4 => json_value().prop_map(|v| format!("data: {v}\n\n").into_bytes()),
        1 => Just(b"data: [DONE]\n\n".to_vec()),
        1 => Just(b": keep-alive\n\n".to_vec()),
        1 => prop::sample::select(KEYS).prop_map(|k| format!("event: {k}\n").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..32),
    ];
    prop::collection::vec(event, 0..12).prop_flat_map(|events| {
        let bytes: Vec<u8> = events.concat();
        let len = bytes.len();
        (Just(bytes), prop::collection::vec(0..=len, 0..8))
    })
}

/// `bytes` cut at `cuts` (sorted, deduplicated), in order.
pub fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| (*c).min(bytes.len())).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        out.push(bytes[from..cut].to_vec());
        from = cut;
    }
    out.push(bytes[from..].to_vec());
    out
}

/// Text, often plain, sometimes with what needs escaping.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        1 => prop::sample::select(&["", "\"", "\\", "\n\n", "data: x\n\n", "<think>a</think>b", "\u{0}"][..])
            .prop_map(str::to_owned),
    ]
}

/// A chat-completions request in its shape (messages of every role, tool calls and results, tools, options), with
/// arbitrary values mixed in.
pub fn chat_request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let content = prop_oneof![
        3 => text().prop_map(Value::String),
        1 => (text(), text()).prop_map(|(a, url)| serde_json::json!([
            { "type": "text", "text": a },
            { "type": "image_url", "image_url": { "url": format!("data:image/png;base64,{url}") } },
        ])),
        1 => json_value(),
    ];
    let message = (
        prop::sample::select(&["system", "user", "assistant", "tool", "developer"][..]),
        content,
        prop::option::of((text(), text())),
    )
        .prop_map(|(role, content, call)| {
            let mut m = serde_json::json!({ "role": role, "content": content });
            if let Some((name, args)) = call {
                if role == "assistant" {
                    m["tool_calls"] = serde_json::json!([{ "id": "call_1", "type": "function",
                        "function": { "name": name, "arguments": args } }]);
                } else if role == "tool" {
                    m["tool_call_id"] = Value::String("call_1".into());
                }
            }
            m
        });
    (
        prop::collection::vec(message, 1..5),
        prop_oneof![2 => Just(Value::Null), 1 => json_value()],
        prop_oneof![2 => Just(Value::Null), 1 => json_value()],
        any::<bool>(),
    )
        .prop_map(|(messages, tools, extra, stream)| {
            let mut body =
                serde_json::json!({ "model": "m", "messages": messages, "stream": stream });
            if !tools.is_null() {
                body["tools"] = tools;
            }
            if !extra.is_null() {
                body["response_format"] = extra.clone();
                body["max_tokens"] = extra;
            }
            serde_json::to_vec(&body).unwrap_or_default()
        })
}

/// Panics, naming `what` and showing the bytes, unless `bytes` is one JSON value.
#[allow(clippy::panic)] // test support: the panic is the property failing
pub fn assert_json(bytes: &[u8], what: &str) {
    if let Err(e) = serde_json::from_slice::<Value>(bytes) {
        panic!(
            "{what} is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// Panics unless every `data:` payload of an SSE output is JSON (or `[DONE]`).
pub fn assert_sse_json(out: &[u8]) {
    for line in out.split(|b| *b == b'\n') {
        if let Some(data) = line.strip_prefix(b"data: ") {
            if data != b"[DONE]" {
                assert_json(data, "an SSE data line");
            }
        }
    }
}
