//! Tests of the Responses codec.

use super::*;
use crate::RequestError;
use serde_json::json;

/// The echoed request fields as a JSON object.
fn echo_of(ctx: &ResponseContext) -> Value {
    serde_json::from_str(&format!("{{{}}}", ctx.echo)).unwrap()
}

fn ctx_of(req: &Value) -> ResponseContext {
    ResponseContext::from_request(req.to_string().as_bytes(), "resp_abc".into(), 1700)
}

fn chat_of(req: &Value) -> (Value, ResponseContext) {
    let (chat, ctx) = parse(req.to_string().as_bytes(), "resp_abc".into(), 1700).unwrap();
    (serde_json::from_slice(&chat.body).unwrap(), ctx)
}

fn err_of(req: &[u8]) -> RequestError {
    responses_to_chat_request(req).unwrap_err()
}

/// Parses emitted SSE, checking `event:` matches `type` and sequence numbers run 0, 1, 2, ….
fn events(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.ends_with("\n\n"));
    let evs: Vec<Value> = text
        .split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|block| {
            let (ev, data) = block.split_once('\n').unwrap();
            let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(ev.strip_prefix("event: ").unwrap(), v["type"]);
            v
        })
        .collect();
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i));
    }
    evs
}

fn stream(chunks: &[&str]) -> (Vec<Value>, ResponsesStreamEncoder) {
    let ctx = ctx_of(&json!({"model": "m", "stream": true, "input": "hi"}));
    let mut enc = ResponsesStreamEncoder::new(ctx);
    let mut out = Vec::new();
    enc.start(&mut out);
    for c in chunks {
        enc.push(c.as_bytes(), &mut out);
    }
    enc.finish(&mut out);
    let again = out.len();
    enc.finish(&mut out);
    assert_eq!(out.len(), again, "finish is idempotent");
    (events(&out), enc)
}

/// The event types, without their `response.` prefix, space-separated.
fn types(evs: &[Value]) -> String {
    let short = |e: &Value| {
        e["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("response.")
            .to_string()
    };
    evs.iter().map(short).collect::<Vec<_>>().join(" ")
}

fn delta(d: Value) -> String {
    json!({"id": "c1", "model": "up-model", "choices": [{"index": 0, "delta": d, "finish_reason": null}]}).to_string()
}

fn finish_chunk(reason: &str) -> String {
    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
}

const USAGE: &str =
    r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;

#[test]
fn codex_request_maps_to_chat() {
    let req = json!({
        "model": "gpt-5", "instructions": "You are Codex.", "stream": true, "store": false,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k1",
        "input": [
            {"type": "message", "role": "developer", "content": [
                {"type": "input_text", "text": "perm A"}, {"type": "input_text", "text": "perm B"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": "x"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
            {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": "{\"cmd\":\"pwd\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "/work"}]},
            {"role": "user", "content": "thanks"}
        ],
        "tools": [
            {"type": "function", "name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false},
            {"type": "namespace", "name": "mcp__fs", "tools": [
                {"type": "function", "name": "read_file", "parameters": {"type": "object"}},
                {"type": "custom", "name": "apply_patch"}]},
            {"type": "web_search"}
        ],
        "tool_choice": "auto", "parallel_tool_calls": true, "reasoning": {"effort": "minimal", "summary": "auto"}
    });
    let (chat, ctx) = chat_of(&req);
    let call = |id: &str, cmd: &str| {
        json!({"id": id, "type": "function",
        "function": {"name": "shell", "arguments": format!("{{\"cmd\":\"{cmd}\"}}")}})
    };
    assert_eq!(
        chat,
        json!({
            "model": "gpt-5",
            "messages": [
                {"role": "system", "content": "You are Codex."},
                {"role": "system", "content": "perm A\n\nperm B"},
                {"role": "user", "content": "list files"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [call("call_1", "ls"), call("call_2", "pwd")]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                {"role": "tool", "tool_call_id": "call_2", "content": "/work"},
                {"role": "user", "content": "thanks"}
            ],
            "stream": true, "stream_options": {"include_usage": true},
            "tools": [
                {"type": "function", "function": {"name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false}},
                {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
            ],
            "tool_choice": "auto", "parallel_tool_calls": true, "reasoning_effort": "low"
        })
    );
    assert_eq!(ctx.dropped_tools, ["apply_patch", "web_search"]);
    assert!(ctx.stream);
    assert_eq!(ctx.model, "gpt-5");
    assert_eq!(ctx, ctx_of(&req), "from_request agrees with parse");
    let plain = responses_to_chat_request(req.to_string().as_bytes()).unwrap();
    assert!(plain.stream);
    assert_eq!(plain.model, "gpt-5");
}

#[test]
fn params_formats_images_and_tool_choice_map() {
    let (chat, _) = chat_of(&json!({
        "model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "low"}]}],
        "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 4, "user": "u1", "metadata": {"a": "b"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
        "tools": [{"type": "function", "name": "f", "parameters": {}}],
        "tool_choice": {"type": "function", "name": "f"}
    }));
    assert_eq!(
        chat,
        json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}}]}],
            "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 4, "user": "u1",
            "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}
        })
    );
    // Only hosted tools: all dropped, and no dangling tool_choice reaches the upstream.
    let (chat, ctx) = chat_of(
        &json!({"model": "m", "input": "hi", "tools": [{"type": "web_search_preview"}],
        "tool_choice": "auto", "text": {"format": {"type": "json_object"}}}),
    );
    assert_eq!(
        chat,
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"}})
    );
    assert_eq!(ctx.dropped_tools, ["web_search_preview"]);
}

#[test]
fn refused_requests_name_the_field() {
    let cases: &[(&[u8], &str, Option<&str>)] = &[
        (b"{not json", "invalid_json", None),
        (b"[1,2]", "invalid_json", None),
        (br#"{"input":"hi"}"#, "missing_model", Some("model")),
        (br#"{"model":"m","input":"hi","previous_response_id":"resp_1"}"#, "previous_response_not_supported", Some("previous_response_id")),
        (br#"{"model":"m","input":"hi","conversation":"c"}"#, "conversation_not_supported", Some("conversation")),
        (br#"{"model":"m","input":"hi","background":true}"#, "background_not_supported", Some("background")),
        (br#"{"model":"m","input":42}"#, "invalid_type", Some("input")),
        (br#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#, "unsupported_input_item", Some("input[0].type")),
        (br#"{"model":"m","input":"hi","tools":[{"type":"function","name":"f"},{"type":"web_search"}],"tool_choice":{"type":"web_search"}}"#, "unsupported_tool", Some("tool_choice")),
        (br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_data":"x"}]}]}"#, "unsupported_content", Some("input[0].content[0]")),
        (br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#, "unsupported_content", Some("input[0].content[0].file_id")),
        (br#"{"model":"m","input":[{"role":"tool","content":"x"}]}"#, "invalid_value", Some("input[0].role")),
        (br#"{"model":"m","input":[{"type":"function_call","name":"f"}]}"#, "missing_required_parameter", Some("input[0].call_id")),
        (br#"{"model":"m","input":"hi","temperature":"hot"}"#, "invalid_type", Some("temperature")),
        (br#"{"model":"m","input":[]}"#, "missing_input", Some("input")),
    ];
    for (body, code, param) in cases {
        let e = err_of(body);
        assert_eq!(
            (e.status, e.code, e.param.as_deref()),
            (400, *code, *param),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(!e.message.is_empty());
    }
    assert!(
        err_of(br#"{"model":"m","input":"hi","previous_response_id":"r"}"#)
            .message
            .contains("stateless")
    );
    // store:true, null previous_response_id and unknown extras are accepted.
    assert!(responses_to_chat_request(br#"{"model":"m","input":"hi","store":true,"previous_response_id":null,"truncation":"auto","service_tier":"auto"}"#).is_ok());
}

#[test]
fn error_body_has_openai_shape() {
    let v: Value = serde_json::from_slice(&error_body(
        400,
        "invalid_request_error",
        "missing_model",
        "no model",
        Some("model"),
    ))
    .unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "no model", "type": "invalid_request_error", "code": "missing_model", "param": "model"}})
    );
}

fn answer(chat: Value, req: Value) -> Value {
    serde_json::from_slice(
        &chat_to_responses_response(chat.to_string().as_bytes(), &ctx_of(&req)).unwrap(),
    )
    .unwrap()
}

#[test]
fn non_stream_text_answer() {
    let r = answer(
        json!({"id": "c", "model": "up", "choices": [{"message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 3}}}),
        json!({"model": "m", "input": "hi", "instructions": "be nice", "temperature": 0.5, "store": true}),
    );
    assert_eq!(r["id"], "resp_abc");
    assert_eq!(r["object"], "response");
    assert_eq!(r["created_at"], 1700);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["model"], "up");
    assert_eq!(r["incomplete_details"], Value::Null);
    assert_eq!(
        r["output"],
        json!([{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}])
    );
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7})
    );
    assert_eq!(
        (&r["instructions"], &r["temperature"], &r["store"]),
        (&json!("be nice"), &json!(0.5), &json!(false))
    );
    assert_eq!(r["text"], json!({"format": {"type": "text"}}));
    assert_eq!(r["tool_choice"], "auto");
    assert_eq!(r["previous_response_id"], Value::Null);
    assert!(chat_to_responses_response(b"oops", &ctx_of(&json!({}))).is_err());
}

#[test]
fn non_stream_tool_calls_and_reasoning() {
    let r = answer(
        json!({"choices": [{"message": {"content": null, "reasoning_content": "need a tool", "tool_calls": [
            {"id": "call_9", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":\"ls\"}"}},
            {"id": "call_10", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}),
        json!({"model": "m", "input": "hi"}),
    );
    assert_eq!(r["model"], "m");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["usage"], Value::Null);
    assert_eq!(
        r["output"],
        json!([
            {"type": "reasoning", "id": "rs_abc_0", "summary": [{"type": "summary_text", "text": "need a tool"}]},
            {"type": "function_call", "id": "fc_abc_1", "call_id": "call_9", "name": "shell", "arguments": "{\"cmd\":\"ls\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_abc_2", "call_id": "call_10", "name": "read", "arguments": "{}", "status": "completed"}
        ])
    );
}

#[test]
fn non_stream_think_tags_and_length() {
    let r = answer(
        json!({"choices": [{"message": {"content": "\n<think>\nhmm\n</think>\n\nThe answer"}, "finish_reason": "length"}]}),
        json!({"model": "m", "input": "hi", "max_output_tokens": 9}),
    );
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(r["max_output_tokens"], 9);
    assert_eq!(r["output"][0]["summary"][0]["text"], "hmm");
    assert_eq!(r["output"][1]["content"][0]["text"], "The answer");
    let r = answer(
        json!({"choices": [{"message": {"content": "", "refusal": "no"}, "finish_reason": "content_filter"}]}),
        json!({"model": "m"}),
    );
    assert_eq!(r["incomplete_details"], json!({"reason": "content_filter"}));
    assert_eq!(
        r["output"][0]["content"],
        json!([{"type": "refusal", "refusal": "no"}])
    );
}

#[test]
fn stream_text() {
    let chunks = [
        json!({"choices": [{"delta": {"role": "assistant"}}]}).to_string(),
        ": keepalive-ish garbage".to_string(),
        delta(json!({"content": "Hel"})),
        delta(json!({"content": "lo"})),
        delta(json!({"content": " world"})),
        finish_chunk("stop"),
        USAGE.to_string(),
        "[DONE]".to_string(),
        delta(json!({"content": "ignored after the end"})),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let (evs, enc) = stream(&refs);
    let want = "created in_progress output_item.added content_part.added output_text.delta \
        output_text.delta output_text.delta output_text.done content_part.done \
        output_item.done completed";
    assert_eq!(types(&evs), want);
    assert_eq!(evs[0]["response"]["status"], "in_progress");
    assert_eq!(evs[0]["response"]["output"], json!([]));
    let text: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello world");
    assert_eq!(evs[7]["text"], "Hello world");
    assert_eq!(evs[4]["item_id"], "msg_abc_0");
    let done = &evs[10]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["model"], "up-model");
    assert_eq!(done["usage"]["input_tokens"], 7);
    assert_eq!(done["usage"]["total_tokens"], 10);
    assert_eq!(
        done["output"],
        json!([{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello world", "annotations": []}]}])
    );
    assert_eq!(
        enc.usage(),
        Some(wire::Usage {
            prompt_tokens: 7,
            completion_tokens: 3
        })
    );
}

#[test]
fn stream_tool_calls() {
    let tc = |v: Value| delta(json!({"tool_calls": [v]}));
    let chunks = [
        delta(json!({"content": "Checking."})),
        // id first, name later (OpenRouter-style duplicate with empty arguments in between).
        tc(json!({"index": 0, "id": "call_a", "type": "function", "function": {"arguments": ""}})),
        tc(json!({"index": 0, "id": "call_a", "function": {"name": "shell", "arguments": ""}})),
        tc(json!({"index": 0, "function": {"arguments": "{\"cmd\":"}})),
        tc(json!({"index": 0, "function": {"arguments": "\"ls\"}"}})),
        // The whole arguments repeated in a final chunk: skipped.
        tc(json!({"index": 0, "function": {"arguments": "{\"cmd\":\"ls\"}"}})),
        // A second, parallel call arriving complete in one delta.
        tc(
            json!({"index": 1, "id": "call_b", "function": {"name": "read", "arguments": "{\"path\":\"a\"}"}}),
        ),
        finish_chunk("tool_calls"),
        USAGE.to_string(),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let (evs, _) = stream(&refs);
    let want = "created in_progress output_item.added content_part.added output_text.delta \
        output_text.done content_part.done output_item.done output_item.added \
        function_call_arguments.delta function_call_arguments.delta output_item.added \
        function_call_arguments.delta function_call_arguments.done output_item.done \
        function_call_arguments.done output_item.done completed";
    assert_eq!(types(&evs), want);
    assert_eq!(
        evs[8]["item"],
        json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "shell",
        "arguments": "", "status": "in_progress"})
    );
    let args: String = evs
        .iter()
        .filter(|e| e["type"] == "response.function_call_arguments.delta" && e["output_index"] == 1)
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(args, "{\"cmd\":\"ls\"}");
    assert_eq!(evs[13]["arguments"], "{\"cmd\":\"ls\"}");
    assert_eq!(evs[13]["name"], "shell");
    let out = &evs[17]["response"]["output"];
    assert_eq!(out.as_array().unwrap().len(), 3);
    assert_eq!(
        out[1],
        json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "shell",
        "arguments": "{\"cmd\":\"ls\"}", "status": "completed"})
    );
    assert_eq!(
        out[2],
        json!({"type": "function_call", "id": "fc_abc_2", "call_id": "call_b", "name": "read",
        "arguments": "{\"path\":\"a\"}", "status": "completed"})
    );
    assert_eq!(evs[17]["response"]["usage"]["output_tokens"], 3);
}

#[test]
fn stream_error_mid_stream_fails_once() {
    let chunks = [
        delta(json!({"content": "partial"})),
        r#"{"error":{"message":"upstream broke","type":"stream_error","code":"upstream_error"}}"#
            .to_string(),
        delta(json!({"content": "more"})),
        "[DONE]".to_string(),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let (evs, _) = stream(&refs);
    let want = "created in_progress output_item.added content_part.added output_text.delta \
        failed";
    assert_eq!(types(&evs), want);
    let failed = &evs[5]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "upstream_error", "message": "upstream broke"})
    );
}

#[test]
fn stream_think_tags_split_across_chunks() {
    let chunks = [
        delta(json!({"content": "<thi"})),
        delta(json!({"content": "nk>step one, "})),
        delta(json!({"content": "step two</th"})),
        delta(json!({"content": "ink>\n\n"})),
        delta(json!({"content": "Answer"})),
        finish_chunk("stop"),
        "[DONE]".to_string(),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let (evs, _) = stream(&refs);
    let want = "created in_progress output_item.added reasoning_summary_part.added \
        reasoning_summary_text.delta reasoning_summary_text.delta \
        reasoning_summary_text.done reasoning_summary_part.done output_item.done \
        output_item.added content_part.added output_text.delta output_text.done \
        content_part.done output_item.done completed";
    assert_eq!(types(&evs), want);
    assert_eq!(evs[6]["text"], "step one, step two");
    let out = &evs[15]["response"]["output"];
    assert_eq!(
        out[0],
        json!({"type": "reasoning", "id": "rs_abc_0", "summary": [{"type": "summary_text", "text": "step one, step two"}]})
    );
    assert_eq!(out[1]["content"][0]["text"], "Answer");
    assert_eq!(out[1]["id"], "msg_abc_1");
}

#[test]
fn stream_reasoning_content_then_text_with_length() {
    let chunks = [
        delta(json!({"reasoning_content": "let me think"})),
        delta(json!({"reasoning": "ignored duplicate", "reasoning_content": " more"})),
        delta(json!({"content": "<b>bold</b>"})),
        finish_chunk("length"),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let (evs, _) = stream(&refs);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(
        last["response"]["output"][0]["summary"][0]["text"],
        "let me think more"
    );
    assert_eq!(
        last["response"]["output"][1]["content"][0]["text"],
        "<b>bold</b>"
    );
}

#[test]
fn stream_end_without_done() {
    // Output but neither finish_reason nor [DONE]: completed.
    let chunk = delta(json!({"content": "hi"}));
    let (evs, enc) = stream(&[&chunk]);
    assert_eq!(evs.last().unwrap()["type"], "response.completed");
    assert_eq!(enc.usage(), None);
    // Nothing at all (keep-alives only): failed.
    let (evs, _) = stream(&[
        r#"{"choices":[]}"#,
        r#"{"choices":[{"delta":{"content":""}}]}"#,
    ]);
    assert_eq!(types(&evs), "created in_progress failed");
    // Whitespace before a tool call does not become a message item.
    let a = delta(json!({"content": "\n"}));
    let b = delta(
        json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
    );
    let (evs, _) = stream(&[&a, &b, "[DONE]"]);
    let out = &evs.last().unwrap()["response"]["output"];
    assert_eq!(out.as_array().unwrap().len(), 1);
    assert_eq!(out[0]["type"], "function_call");
}

#[test]
fn stream_calls_sharing_index_zero_and_late_names() {
    let tc = |v: Value| delta(json!({"tool_calls": [v]}));
    let chunks = [
        // Arguments before the name: buffered until the item can be announced.
        tc(json!({"index": 0, "id": "call_x", "function": {"arguments": "{\"a\":1}"}})),
        tc(json!({"index": 0, "function": {"name": "first"}})),
        // Another call reusing index 0 with its own id (seen from some upstreams).
        tc(json!({"index": 0, "id": "call_y", "function": {"name": "second", "arguments": "{}"}})),
        delta(json!({"refusal": "no more"})),
        finish_chunk("stop"),
    ];
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let (evs, _) = stream(&refs);
    let out = evs.last().unwrap()["response"]["output"]
        .as_array()
        .unwrap()
        .clone();
    let calls: Vec<(&str, &str, &str)> = out[..2]
        .iter()
        .map(|o| {
            (
                o["call_id"].as_str().unwrap(),
                o["name"].as_str().unwrap(),
                o["arguments"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        [("call_x", "first", "{\"a\":1}"), ("call_y", "second", "{}")]
    );
    assert_eq!(
        out[2]["content"],
        json!([{"type": "refusal", "refusal": "no more"}])
    );
    assert!(evs
        .iter()
        .any(|e| e["type"] == "response.refusal.done" && e["refusal"] == "no more"));
    // The context builder never fails, even on a body the codec refuses.
    let ctx = ResponseContext::from_request(b"nonsense", "resp_q".into(), 1);
    assert_eq!(
        (ctx.model.as_str(), &echo_of(&ctx)["tool_choice"]),
        ("", &json!("auto"))
    );
}
