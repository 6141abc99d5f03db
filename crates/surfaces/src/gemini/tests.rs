//! Tests of the Gemini codec.

use super::*;
use crate::RequestError;
use serde_json::{json, Value};

fn chat_of(req: &Value) -> Value {
    let (chat, _) = parse(
        req.to_string().as_bytes(),
        "gemini-2.5-pro",
        true,
        "r1".into(),
    )
    .unwrap();
    assert_eq!(chat.model, "gemini-2.5-pro");
    serde_json::from_slice(&chat.body).unwrap()
}

fn err_of(req: &Value) -> RequestError {
    gemini_to_chat_request(req.to_string().as_bytes(), "gemini-2.5-pro", false).unwrap_err()
}

fn ctx(include_thoughts: bool) -> GeminiContext {
    GeminiContext {
        response_id: "resp_1".into(),
        model: "gemini-2.5-pro".into(),
        stream: true,
        include_thoughts,
        ..GeminiContext::default()
    }
}

fn chunk(delta: Value) -> String {
    json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}).to_string()
}

fn finish_chunk(reason: &str) -> String {
    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
}

/// The SSE form, each event parsed.
fn run_sse(chunks: &[&str], include_thoughts: bool) -> Vec<Value> {
    let mut enc = GeminiStreamEncoder::new(ctx(include_thoughts), 42, true);
    assert_eq!(enc.content_type(), "text/event-stream");
    let mut out = Vec::new();
    enc.start(&mut out);
    for c in chunks {
        enc.push(c.as_bytes(), &mut out);
    }
    enc.finish(&mut out);
    enc.finish(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("\r\n\r\n"), "{text}");
    text.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

/// (text, thoughts, function calls) as Gemini CLI accumulates them.
fn accumulate(events: &[Value]) -> (String, String, Vec<Value>) {
    let (mut text, mut thoughts, mut calls) = (String::new(), String::new(), Vec::new());
    for e in events {
        assert_eq!(e["modelVersion"], "gemini-2.5-pro");
        assert_eq!(e["responseId"], "resp_1");
        for p in e["candidates"][0]["content"]["parts"].as_array().unwrap() {
            if let Some(c) = p.get("functionCall") {
                calls.push(c.clone());
            } else if p["thought"] == true {
                thoughts.push_str(p["text"].as_str().unwrap());
            } else {
                text.push_str(p["text"].as_str().unwrap());
            }
        }
    }
    (text, thoughts, calls)
}

#[test]
fn gemini_cli_request() {
    let req = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Write hello.txt"}]},
            {"role": "model", "parts": [
                {"text": "thinking it over", "thought": true, "thoughtSignature": "abc"},
                {"text": "I'll write it."},
                {"functionCall": {"name": "write_file", "args": {"file_path": "hello.txt", "content": "hi"}}},
                {"functionCall": {"name": "read_file", "args": {"absolute_path": "/a"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "read_file", "response": {"output": "file a"}}},
                {"functionResponse": {"name": "write_file", "response": {"output": "ok", "bytes": 2}}}
            ]}
        ],
        "systemInstruction": {"role": "user", "parts": [{"text": "You are Gemini CLI."}, {"text": "Be brief."}]},
        "tools": [
            {"functionDeclarations": [
                {"name": "write_file", "description": "Writes a file",
                 "parametersJsonSchema": {"type": "object", "properties": {"file_path": {"type": "string"}}}},
                {"name": "legacy", "parameters": {"type": "OBJECT", "properties": {
                    "type": {"type": "STRING", "nullable": true}, "n": {"type": "INTEGER"}}}}
            ]},
            {"googleSearch": {}}
        ],
        "generationConfig": {
            "temperature": 0.2, "topP": 0.9, "topK": 40, "maxOutputTokens": 512,
            "stopSequences": ["END"], "seed": 7,
            "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 4096}
        }
    });
    let (chat, ctx) = parse(
        req.to_string().as_bytes(),
        "gemini-2.5-pro",
        true,
        "r".into(),
    )
    .unwrap();
    assert!(ctx.include_thoughts);
    assert_eq!(ctx.dropped_tools, vec!["googleSearch"]);
    let chat: Value = serde_json::from_slice(&chat.body).unwrap();
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "system", "content": "You are Gemini CLI.\nBe brief."},
            {"role": "user", "content": "Write hello.txt"},
            {"role": "assistant", "content": "I'll write it.", "tool_calls": [
                {"id": "call_1_0", "type": "function",
                 "function": {"name": "write_file", "arguments": "{\"content\":\"hi\",\"file_path\":\"hello.txt\"}"}},
                {"id": "call_1_1", "type": "function",
                 "function": {"name": "read_file", "arguments": "{\"absolute_path\":\"/a\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1_1", "content": "file a"},
            {"role": "tool", "tool_call_id": "call_1_0", "content": "{\"bytes\":2,\"output\":\"ok\"}"}
        ])
    );
    assert_eq!(chat["model"], "gemini-2.5-pro");
    assert_eq!(chat["max_tokens"], 512);
    assert_eq!(chat["temperature"], 0.2);
    assert_eq!(chat["top_p"], 0.9);
    assert_eq!(chat["seed"], 7);
    assert_eq!(chat["stop"], json!(["END"]));
    assert_eq!(chat["reasoning_effort"], "medium");
    assert_eq!(chat["stream"], true);
    assert_eq!(chat["stream_options"]["include_usage"], true);
    assert!(chat.get("topK").is_none() && chat.get("top_k").is_none());
    let tools = chat["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0]["function"]["name"], "write_file");
    assert_eq!(tools[0]["function"]["description"], "Writes a file");
    assert_eq!(
        tools[0]["function"]["parameters"],
        json!({"type": "object", "properties": {"file_path": {"type": "string"}}})
    );
    // OpenAPI-style types become JSON Schema; a property named `type` stays a property.
    assert_eq!(
        tools[1]["function"]["parameters"],
        json!({"type": "object", "properties": {
            "type": {"type": ["string", "null"]}, "n": {"type": "integer"}}})
    );
}

#[test]
fn function_responses_by_id_and_orphans() {
    let req = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {"role": "model", "parts": [
                {"functionCall": {"id": "a1", "name": "shell", "args": {"cmd": "ls"}}},
                {"functionCall": {"id": "a2", "name": "shell", "args": "not an object"}}
            ]},
            {"role": "function", "parts": [
                {"functionResponse": {"id": "a2", "name": "shell", "response": {"output": "two"}}},
                {"functionResponse": {"name": "shell", "response": {"output": "one"}}},
                {"functionResponse": {"name": "shell", "response": {"error": "late"}}},
                {"text": "and then?"}
            ]}
        ]
    });
    let chat = chat_of(&req);
    assert_eq!(
        chat["messages"],
        json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a1", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":\"ls\"}"}},
                {"id": "a2", "type": "function", "function": {"name": "shell", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "a2", "content": "two"},
            {"role": "tool", "tool_call_id": "a1", "content": "one"},
            {"role": "user", "content": "[result of shell] {\"error\":\"late\"}\nand then?"}
        ])
    );
}

#[test]
fn images_json_output_tool_config_and_snake_case() {
    let req = json!({
        "system_instruction": "Plain string system.",
        "contents": [{"parts": [
            {"text": "What is this?"},
            {"inline_data": {"mime_type": "image/png", "data": "iVBOR"}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a.jpg"}}
        ]}],
        "tools": [{"function_declarations": [{"name": "lookup"}, {"name": "other"}]}],
        "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["lookup"]}},
        "generation_config": {"response_mime_type": "application/json",
                              "response_json_schema": {"type": "object"}}
    });
    let chat = chat_of(&req);
    assert_eq!(
        chat["messages"][0],
        json!({"role": "system", "content": "Plain string system."})
    );
    assert_eq!(
        chat["messages"][1]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
        ])
    );
    assert_eq!(
        chat["tool_choice"],
        json!({"type": "function", "function": {"name": "lookup"}})
    );
    assert_eq!(chat["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        chat["tools"][0]["function"]["parameters"],
        json!({"type": "object", "properties": {}})
    );
    assert_eq!(
        chat["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}})
    );
    let req = json!({
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
        "generationConfig": {"responseMimeType": "application/json", "thinkingConfig": {"thinkingLevel": "HIGH"}}
    });
    let chat = chat_of(&req);
    assert_eq!(chat["tool_choice"], "none");
    assert_eq!(chat["response_format"], json!({"type": "json_object"}));
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(chat["stream"], true);
}

#[test]
fn bad_requests_name_the_field() {
    let cases = [
        (json!({}), "contents"),
        (json!({"contents": []}), "contents"),
        (json!({"contents": "hi"}), "contents"),
        (
            json!({"contents": [{"role": "wizard", "parts": [{"text": "x"}]}]}),
            "contents[0].role",
        ),
        (json!({"contents": [{"parts": "x"}]}), "contents[0].parts"),
        (
            json!({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAA"}}]}]}),
            "contents[0].parts[0].inlineData.mimeType",
        ),
        (
            json!({"contents": [{"parts": [{"fileData": {"fileUri": "files/abc"}}]}]}),
            "contents[0].parts[0].fileData.fileUri",
        ),
        (
            json!({"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]}),
            "contents[0].parts[0].functionCall.name",
        ),
        (
            json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}}),
            "generationConfig.candidateCount",
        ),
        (
            json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}}),
            "generationConfig.temperature",
        ),
        (
            json!({"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/1"}),
            "cachedContent",
        ),
        (
            json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"codeExecution": {}}],
                   "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}),
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            json!({"contents": [{"parts": [{"text": "x"}]}],
                   "generationConfig": {"responseModalities": ["AUDIO"]}}),
            "generationConfig.responseModalities",
        ),
        (
            json!({"contents": [{"role": "model", "parts": [{"executableCode": {}}]}]}),
            "contents",
        ),
    ];
    for (req, param) in cases {
        let e = err_of(&req);
        assert_eq!(e.status, 400, "{req}");
        assert_eq!(e.param.as_deref(), Some(param), "{req}: {e:?}");
    }
    let e = gemini_to_chat_request(b"{not json", "m", false).unwrap_err();
    assert_eq!(e.code, "invalid_json");
}

#[test]
fn answers() {
    let chat = json!({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "<think>plan</think>\n\nHere.",
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "write_file", "arguments": "{\"a\": 1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}}
    });
    let body = chat.to_string();
    let with: Value =
        serde_json::from_slice(&chat_to_gemini_response(body.as_bytes(), &ctx(true)).unwrap())
            .unwrap();
    assert_eq!(
        with,
        json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "plan", "thought": true},
                {"text": "Here."},
                {"functionCall": {"id": "call_9", "name": "write_file", "args": {"a": 1}}}
            ]}, "finishReason": "STOP", "index": 0}],
            "modelVersion": "gemini-2.5-pro",
            "responseId": "resp_1",
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15,
                              "cachedContentTokenCount": 4}
        })
    );
    let without: Value =
        serde_json::from_slice(&chat_to_gemini_response(body.as_bytes(), &ctx(false)).unwrap())
            .unwrap();
    assert_eq!(
        without["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let truncated = json!({"choices": [{"finish_reason": "length", "message": {"content": null}}]});
    let v: Value = serde_json::from_slice(
        &chat_to_gemini_response(truncated.to_string().as_bytes(), &ctx(false)).unwrap(),
    )
    .unwrap();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(
        v["candidates"][0]["content"]["parts"],
        json!([{"text": ""}])
    );
    assert!(chat_to_gemini_response(br#"{"error":{"message":"boom"}}"#, &ctx(false)).is_err());
    assert!(chat_to_gemini_response(b"nope", &ctx(false)).is_err());
}

#[test]
fn error_bodies_and_families() {
    let v: Value = serde_json::from_slice(&error_body(429, "slow \"down\"")).unwrap();
    assert_eq!(
        v,
        json!({"error": {"code": 429, "message": "slow \"down\"", "status": "RESOURCE_EXHAUSTED"}})
    );
    assert_eq!(status_name(401), "UNAUTHENTICATED");
    assert_eq!(status_name(503), "UNAVAILABLE");
    assert_eq!(gemini_family("gemini-2.5-pro"), Some("pro"));
    assert_eq!(
        gemini_family("models/gemini-2.5-flash-lite"),
        Some("flash-lite")
    );
    assert_eq!(gemini_family("gemini-3-flash-preview"), Some("flash"));
    assert_eq!(gemini_family("gemini-exp-1206"), Some("other"));
    assert_eq!(gemini_family("llama-3.3-70b"), None);
}

#[test]
fn stream_text_thoughts_and_usage() {
    let chunks = [
        chunk(json!({"role": "assistant"})),
        chunk(json!({"reasoning_content": "hmm"})),
        chunk(json!({"content": "Hel"})),
        chunk(json!({"content": "lo"})),
        finish_chunk("stop"),
        json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}).to_string(),
        "[DONE]".to_string(),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let events = run_sse(&refs, true);
    let (text, thoughts, calls) = accumulate(&events);
    assert_eq!((text.as_str(), thoughts.as_str()), ("Hello", "hmm"));
    assert!(calls.is_empty());
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"],
        json!({"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9})
    );
    // Only the last event has a finish reason; text came as it arrived.
    assert!(events[..events.len() - 1]
        .iter()
        .all(|e| e["candidates"][0].get("finishReason").is_none()
            && e.get("usageMetadata").is_none()));
    assert_eq!(events.len(), 4);
    // Thoughts are not sent unless asked for.
    let (text, thoughts, _) = accumulate(&run_sse(&refs, false));
    assert_eq!((text.as_str(), thoughts.as_str()), ("Hello", ""));
}

#[test]
fn stream_tool_calls_are_sent_whole_at_the_end() {
    let chunks = [
        chunk(json!({"content": "Writing."})),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                      "function": {"name": "write_file", "arguments": ""}}]}),
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"file_path\":"}}]})),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"a.txt\"}"}}]})),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"file_path\":\"a.txt\"}"}}]}),
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "ls", "arguments": "{}"}}]}),
        ),
        finish_chunk("tool_calls"),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let events = run_sse(&refs, false);
    let (text, _, calls) = accumulate(&events);
    assert_eq!(text, "Writing.");
    assert_eq!(
        calls,
        vec![
            json!({"id": "c1", "name": "write_file", "args": {"file_path": "a.txt"}}),
            json!({"id": "c2", "name": "ls", "args": {}})
        ]
    );
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["candidates"][0]["content"]["parts"][0]
        .get("functionCall")
        .is_some());
    // No usage upstream: estimated (42 prompt tokens given, text and arguments by bytes/4).
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 42);
    assert!(
        last["usageMetadata"]["candidatesTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn stream_as_json_array_and_errors() {
    let mut enc = GeminiStreamEncoder::new(ctx(false), 1, false);
    assert_eq!(enc.content_type(), "application/json");
    let mut out = Vec::new();
    enc.start(&mut out);
    for c in [
        chunk(json!({"content": "<think>x</think>A"})),
        chunk(json!({"content": "B"})),
    ] {
        enc.push(c.as_bytes(), &mut out);
    }
    enc.push(b"[DONE]", &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let events = v.as_array().unwrap();
    let (text, thoughts, _) = accumulate(events);
    assert_eq!((text.as_str(), thoughts.as_str()), ("AB", ""));

    // A failure after the commit point ends the stream with Google's error shape.
    let mut enc = GeminiStreamEncoder::new(ctx(false), 1, false);
    let mut out = Vec::new();
    enc.start(&mut out);
    enc.push(chunk(json!({"content": "par"})).as_bytes(), &mut out);
    enc.push(
        br#"{"error":{"message":"upstream_stream_broken","type":"provider_error"}}"#,
        &mut out,
    );
    enc.finish(&mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let events = v.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["error"]["status"], "UNAVAILABLE");

    let mut enc = GeminiStreamEncoder::new(ctx(false), 1, true);
    let mut out = Vec::new();
    enc.push(
        br#"{"error":{"message":"no","type":"rate_limit_error"}}"#,
        &mut out,
    );
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("data: {\"error\":{\"code\":429"), "{text}");
}

#[test]
fn count_tokens_plain_and_wrapped() {
    let inner = json!({"contents": [{"role": "user", "parts": [{"text": "a".repeat(400)}]}]});
    let plain = count_tokens(inner.to_string().as_bytes(), "m").unwrap();
    let wrapped = count_tokens(
        json!({"generateContentRequest": {"model": "models/m", "contents": inner["contents"]}})
            .to_string()
            .as_bytes(),
        "m",
    )
    .unwrap();
    assert_eq!(plain, wrapped);
    assert!((100..=120).contains(&plain), "{plain}");
}
