//! Property tests of the ingress codecs: any request body, any upstream answer and any upstream stream give either
//! a clean refusal or well-formed output — never a panic, never JSON a client cannot parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fuzz_inputs::{assert_json, assert_sse_json, body_bytes, json_value};
use proptest::prelude::*;
use serde_json::Value;

const RESPONSES_REQUEST: &[u8] = br#"{"model":"m","input":"hi","stream":true}"#;
const MESSAGES_REQUEST: &[u8] =
    br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
const GEMINI_REQUEST: &[u8] = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;

/// A delta or message body: text, reasoning, tool calls, or anything.
fn message_body() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => any::<String>().prop_map(|t| serde_json::json!({ "role": "assistant", "content": t })),
        1 => any::<String>().prop_map(|t| serde_json::json!({ "reasoning_content": t })),
        2 => (any::<u8>(), prop::option::of("[a-z]{0,8}".prop_map(String::from)), any::<String>()).prop_map(
            |(index, name, args)| serde_json::json!({ "tool_calls": [{
                "index": index % 3, "id": name.as_ref().map(|n| format!("call_{n}")), "type": "function",
                "function": { "name": name, "arguments": args },
            }] }),
        ),
        1 => json_value(),
    ]
}

/// A chat-completions answer in its shape, with arbitrary values inside.
fn shaped_answer() -> impl Strategy<Value = Value> {
    (
        message_body(),
        prop::option::of(prop::sample::select(
            &["stop", "length", "tool_calls", "content_filter"][..],
        )),
        json_value(),
    )
        .prop_map(|(message, finish, usage)| {
            serde_json::json!({
                "id": "c1", "object": "chat.completion", "model": "m",
                "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
                "usage": usage,
            })
        })
}

/// A chat-completions stream chunk built from arbitrary parts, sometimes the shape the encoders look for.
fn chat_chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (
            message_body(),
            json_value(),
            prop::option::of(prop::sample::select(&["stop", "length", "tool_calls"][..]))
        )
            .prop_map(|(delta, usage, finish)| {
                serde_json::json!({
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
                    "usage": usage,
                })
                .to_string()
                .into_bytes()
            }),
        Just(b"[DONE]".to_vec()),
    ]
}

/// A role, sometimes one the format knows.
fn role() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(&["user", "assistant", "system", "model", "function", "developer"][..])
            .prop_map(|r| Value::String(r.into())),
        1 => json_value(),
    ]
}

/// Requests in each format's own shape, with arbitrary values inside: they get past the first checks.
fn shaped_requests() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, Vec<u8>)> {
    let content = prop_oneof![
        3 => any::<String>().prop_map(Value::String),
        1 => any::<String>().prop_map(|t| serde_json::json!([{ "type": "text", "text": t }])),
        1 => json_value(),
    ];
    let message = (role(), content)
        .prop_map(|(role, content)| serde_json::json!({ "role": role, "content": content }));
    let part = prop_oneof![
        3 => any::<String>().prop_map(|t| serde_json::json!({ "text": t })),
        1 => json_value(),
    ];
    (
        prop::collection::vec(message, 1..4),
        prop::collection::vec(part, 0..4),
        prop_oneof![2 => Just(Value::Null), 1 => json_value()],
        prop_oneof![2 => Just(Value::Null), 1 => json_value()],
        any::<bool>(),
    )
        .prop_map(|(messages, parts, tools, extra, stream)| {
            let responses = serde_json::json!({
                "model": "m", "input": messages.clone(), "tools": tools.clone(), "stream": stream,
                "text": extra.clone(), "reasoning": extra.clone(),
            });
            let anthropic = serde_json::json!({
                "model": "m", "max_tokens": 64, "messages": messages, "system": extra.clone(),
                "tools": tools.clone(), "tool_choice": extra.clone(), "stream": stream,
            });
            let gemini = serde_json::json!({
                "contents": [{ "role": "user", "parts": parts }], "tools": tools,
                "generationConfig": extra.clone(), "systemInstruction": extra,
            });
            (
                responses.to_string().into_bytes(),
                anthropic.to_string().into_bytes(),
                gemini.to_string().into_bytes(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_are_refused_or_become_chat_json(body in body_bytes()) {
        if let Ok((chat, _)) = surfaces::responses::parse(&body, "resp_1".into(), 1) {
            assert_json(&chat.body, "the chat request of a Responses request");
        }
        if let Ok((chat, _)) = surfaces::messages::parse(&body, "msg_1".into()) {
            assert_json(&chat.body, "the chat request of a Messages request");
        }
        for stream in [false, true] {
            if let Ok((chat, _)) = surfaces::gemini::parse(&body, "gemini-2.5-flash", stream, "r1".into()) {
                assert_json(&chat.body, "the chat request of a Gemini request");
            }
        }
        let _ = surfaces::messages::count_tokens(&body);
        let _ = surfaces::gemini::count_tokens(&body, "gemini-2.5-flash");
    }

    #[test]
    fn shaped_requests_are_refused_or_become_chat_json((responses, messages, gemini) in shaped_requests()) {
        if let Ok((chat, _)) = surfaces::responses::parse(&responses, "resp_1".into(), 1) {
            assert_json(&chat.body, "the chat request of a Responses request");
        }
        if let Ok((chat, _)) = surfaces::messages::parse(&messages, "msg_1".into()) {
            assert_json(&chat.body, "the chat request of a Messages request");
        }
        if let Ok((chat, _)) = surfaces::gemini::parse(&gemini, "gemini-2.5-flash", true, "r1".into()) {
            assert_json(&chat.body, "the chat request of a Gemini request");
        }
    }

    #[test]
    fn answers_are_refused_or_become_json(answer in prop_oneof![json_value(), shaped_answer()]) {
        let answer = answer.to_string().into_bytes();
        let (_, ctx) = surfaces::responses::parse(RESPONSES_REQUEST, "resp_1".into(), 1).unwrap();
        if let Ok(out) = surfaces::responses::chat_to_responses_response(&answer, &ctx) {
            assert_json(&out, "a Responses answer");
        }
        let (_, ctx) = surfaces::messages::parse(MESSAGES_REQUEST, "msg_1".into()).unwrap();
        if let Ok(out) = surfaces::messages::chat_to_messages_response(&answer, &ctx) {
            assert_json(&out, "a Messages answer");
        }
        let (_, ctx) = surfaces::gemini::parse(GEMINI_REQUEST, "gemini-2.5-flash", false, "r1".into()).unwrap();
        if let Ok(out) = surfaces::gemini::chat_to_gemini_response(&answer, &ctx) {
            assert_json(&out, "a Gemini answer");
        }
    }

    #[test]
    fn streams_encode_to_parseable_events(events in prop::collection::vec(chat_chunk(), 0..10)) {
        let (_, ctx) = surfaces::responses::parse(RESPONSES_REQUEST, "resp_1".into(), 1).unwrap();
        let mut encoder = surfaces::responses::ResponsesStreamEncoder::new(ctx);
        let mut out = Vec::new();
        for e in &events {
            encoder.push(e, &mut out);
        }
        encoder.finish(&mut out);
        assert_sse_json(&out);

        let (_, ctx) = surfaces::messages::parse(MESSAGES_REQUEST, "msg_1".into()).unwrap();
        let mut encoder = surfaces::messages::MessagesStreamEncoder::new(ctx, 5);
        let mut out = Vec::new();
        for e in &events {
            encoder.push(e, &mut out);
        }
        encoder.finish(&mut out);
        assert_sse_json(&out);

        let (_, ctx) = surfaces::gemini::parse(GEMINI_REQUEST, "gemini-2.5-flash", true, "r1".into()).unwrap();
        let mut encoder = surfaces::gemini::GeminiStreamEncoder::new(ctx, 5, true);
        let mut out = Vec::new();
        for e in &events {
            encoder.push(e, &mut out);
        }
        encoder.finish(&mut out);
        assert_sse_json(&out);
    }
}
