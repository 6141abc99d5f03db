//! Property tests of the native dialect translators (Gemini, Cohere): any chat request, any upstream answer and any
//! upstream stream give a clean error or well-formed output — never a panic, never JSON a client cannot parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fuzz_inputs::{
    assert_json, assert_sse_json, body_bytes, chat_request_bytes, chunks, json_value, sse_stream,
    text,
};
use proptest::prelude::*;
use providers::dialect::{cohere, gemini};

/// The `data:` payloads of an SSE byte stream cut into chunks, in order, as the relay hands them over.
fn payloads(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut splitter = wire::SseSplitter::default();
    let mut out = Vec::new();
    for part in chunks(bytes, cuts) {
        splitter.push(&part, |e| out.push(e.to_vec()));
    }
    splitter.finish(|e| out.push(e.to_vec()));
    out
}

/// Native answers and stream events in their platforms' shapes, with arbitrary values inside.
fn native_payload() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        2 => json_value(),
        2 => (text(), prop::option::of((text(), json_value())), prop::option::of(prop::sample::select(&["STOP", "MAX_TOKENS", "SAFETY"][..])), json_value())
            .prop_map(|(t, call, finish, usage)| {
                let mut parts = vec![serde_json::json!({ "text": t })];
                if let Some((name, args)) = call {
                    parts.push(serde_json::json!({ "functionCall": { "name": name, "args": args } }));
                }
                serde_json::json!({
                    "candidates": [{ "content": { "role": "model", "parts": parts }, "finishReason": finish }],
                    "usageMetadata": usage,
                })
            }),
        2 => (prop::sample::select(&["message-start", "content-delta", "tool-call-start", "tool-call-delta", "message-end", "content-start"][..]), text(), json_value())
            .prop_map(|(kind, t, extra)| serde_json::json!({
                "type": kind, "index": 0,
                "delta": { "message": { "content": { "text": t }, "tool_calls": extra.clone() }, "finish_reason": "COMPLETE", "usage": extra },
            })),
        1 => (text(), json_value()).prop_map(|(t, usage)| serde_json::json!({
            "id": "r1", "finish_reason": "COMPLETE",
            "message": { "role": "assistant", "content": [{ "type": "text", "text": t }] },
            "usage": usage,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chat_requests_translate_or_refuse(body in prop_oneof![body_bytes(), chat_request_bytes()], stream in any::<bool>()) {
        if let Ok(out) = gemini::openai_to_gemini_chat_request(&body, "gemini-2.5-flash", stream) {
            assert_json(&out, "a Gemini request");
        }
        if let Ok(out) = cohere::openai_to_cohere_chat_request(&body, "command-a", stream) {
            assert_json(&out, "a Cohere request");
        }
        if let Ok(out) = gemini::openai_to_gemini_embeddings_request(&body, "text-embedding-004") {
            assert_json(&out, "a Gemini embeddings request");
        }
        if let Ok(out) = cohere::openai_to_cohere_embeddings_request(&body, "embed-v4.0") {
            assert_json(&out, "a Cohere embeddings request");
        }
    }

    #[test]
    fn answers_translate_or_refuse(answer in native_payload()) {
        let answer = answer.to_string().into_bytes();
        if let Ok(out) = gemini::gemini_to_openai_chat_response(&answer, "m", "c1", 1) {
            assert_json(&out, "a translated Gemini answer");
        }
        if let Ok(out) = cohere::cohere_to_openai_chat_response(&answer, "m", "c1", 1) {
            assert_json(&out, "a translated Cohere answer");
        }
    }

    #[test]
    fn streams_translate_to_parseable_chunks(
        (bytes, cuts) in sse_stream(),
        shaped in prop::collection::vec(native_payload(), 0..8),
        include_usage in any::<bool>(),
    ) {
        let mut events = payloads(&bytes, &cuts);
        events.extend(shaped.iter().map(|v| v.to_string().into_bytes()));
        let mut g = gemini::GeminiChatStream::new("m", "c1", 1, include_usage);
        let mut c = cohere::CohereChatStream::new("m", "c1", 1, include_usage);
        let (mut g_out, mut c_out) = (Vec::new(), Vec::new());
        for e in &events {
            let _ = g.push(None, e, &mut g_out);
            let _ = c.push(None, e, &mut c_out);
        }
        assert_sse_json(&g_out);
        assert_sse_json(&c_out);
    }
}
