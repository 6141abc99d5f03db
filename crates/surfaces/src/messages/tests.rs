//! Tests of the Messages codec.

use super::*;
use crate::RequestError;
use serde_json::{json, Value};

fn chat_of(req: &Value) -> Value {
    let (chat, _) = parse(req.to_string().as_bytes(), "msg_1".into()).unwrap();
    serde_json::from_slice(&chat.body).unwrap()
}

fn err_of(req: &[u8]) -> RequestError {
    messages_to_chat_request(req).unwrap_err()
}

fn ctx() -> MessageContext {
    MessageContext {
        message_id: "msg_abc".into(),
        model: "claude-sonnet-4-5".into(),
        stream: true,
        ..MessageContext::default()
    }
}

fn events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.ends_with("\n\n") || text.is_empty(), "{text}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (head, data) = e.split_once('\n').unwrap();
            let name = head.strip_prefix("event: ").unwrap().to_string();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn run(chunks: &[&str]) -> Vec<(String, Value)> {
    let mut enc = MessagesStreamEncoder::new(ctx(), 42);
    let mut out = Vec::new();
    enc.start(&mut out);
    for c in chunks {
        enc.push(c.as_bytes(), &mut out);
    }
    enc.finish(&mut out);
    enc.finish(&mut out);
    events(&out)
}

/// Checks event order the way the SDK's accumulator relies on it and returns the blocks as accumulated:
/// (start block, concatenated text / thinking / partial_json).
fn blocks(ev: &[(String, Value)]) -> Vec<(Value, String)> {
    assert_eq!(ev[0].0, "message_start");
    assert_eq!(ev[0].1["message"]["model"], "claude-sonnet-4-5");
    assert_eq!(ev[1].0, "ping");
    let mut blocks: Vec<(Value, String)> = Vec::new();
    let mut open: Option<u64> = None;
    let n = ev.len();
    for (name, data) in &ev[2..n - 2] {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "block opened while another is open");
                assert_eq!(data["index"], blocks.len() as u64);
                open = data["index"].as_u64();
                blocks.push((data["content_block"].clone(), String::new()));
            }
            "content_block_delta" => {
                assert_eq!(data["index"].as_u64(), open);
                let d = &data["delta"];
                let piece = match d["type"].as_str().unwrap() {
                    "text_delta" => d["text"].as_str(),
                    "thinking_delta" => d["thinking"].as_str(),
                    "input_json_delta" => d["partial_json"].as_str(),
                    "signature_delta" => Some(""),
                    other => panic!("unexpected delta {other}"),
                };
                blocks.last_mut().unwrap().1.push_str(piece.unwrap());
            }
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open.take());
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(open.is_none());
    assert_eq!(ev[n - 2].0, "message_delta");
    assert_eq!(ev[n - 1].0, "message_stop");
    blocks
}

fn chunk(delta: Value) -> String {
    json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}).to_string()
}

fn finish_chunk(reason: &str) -> String {
    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
}

#[test]
fn claude_code_request() {
    let req = json!({
        "model": "claude-opus-4-1-20250805",
        "max_tokens": 32000,
        "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be terse."}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Listing."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "a"}}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "and now?"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a\nb"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                 "content": [{"type": "text", "text": "no such file"}, {"type": "image", "source": {}}]},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}
            ]},
            {"role": "system", "content": "mid-conversation note"},
            {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search"}]},
            {"role": "user", "content": "go on"}
        ],
        "tools": [
            {"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"type": "custom", "name": "Read", "input_schema": {"type": "object"}}
        ],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low"},
        "context_management": {"edits": []},
        "metadata": {"user_id": "user_123"},
        "temperature": 1,
        "top_k": 5,
        "stop_sequences": ["STOP"]
    });
    let (chat, ctx) = parse(req.to_string().as_bytes(), "msg_1".into()).unwrap();
    assert!(chat.stream);
    assert_eq!(chat.model, "claude-opus-4-1-20250805");
    assert_eq!(ctx.model, "claude-opus-4-1-20250805");
    assert_eq!(ctx.dropped_tools, vec!["web_search".to_string()]);
    assert_eq!(ctx.dropped_blocks, 1);
    let c: Value = serde_json::from_slice(&chat.body).unwrap();
    let expected_messages = json!([
        {"role": "system", "content": "You are Claude Code.\nBe terse."},
        {"role": "user", "content": "<system-reminder>ctx</system-reminder>\nlist files"},
        {"role": "assistant", "content": "Listing.", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
            {"id": "toolu_2", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a\nb"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] no such file\n[image omitted]"},
        {"role": "user", "content": [
            {"type": "text", "text": "and now?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}
        ]},
        {"role": "system", "content": "mid-conversation note"},
        {"role": "user", "content": "go on"}
    ]);
    assert_eq!(c["messages"], expected_messages);
    assert_eq!(c["max_tokens"], 32000);
    assert_eq!(c["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        c["reasoning_effort"], "low",
        "output_config.effort overrides thinking"
    );
    assert_eq!(c["user"], "user_123");
    assert_eq!(c["temperature"], 1);
    assert_eq!(c["stop"], json!(["STOP"]));
    assert_eq!(c["tool_choice"], "auto");
    assert_eq!(c["parallel_tool_calls"], false);
    assert_eq!(c["tools"].as_array().unwrap().len(), 2);
    assert_eq!(c["tools"][0]["function"]["name"], "Bash");
    assert_eq!(
        c["tools"][0]["function"]["parameters"]["properties"]["command"]["type"],
        "string"
    );
    assert_eq!(c["tools"][1]["function"]["name"], "Read");
    for absent in [
        "top_k",
        "context_management",
        "metadata",
        "thinking",
        "output_config",
        "system",
    ] {
        assert!(c.get(absent).is_none(), "{absent} leaked");
    }
}

#[test]
fn request_options() {
    let base = |extra: Value| {
        let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        chat_of(&r)
    };
    let c = base(json!({}));
    assert_eq!(c["messages"], json!([{"role": "user", "content": "hi"}]));
    assert!(c.get("stream").is_none() && c.get("max_tokens").is_none());
    for (budget, effort) in [(1024, "low"), (8000, "medium"), (20000, "high")] {
        let c = base(json!({"thinking": {"type": "enabled", "budget_tokens": budget}}));
        assert_eq!(c["reasoning_effort"], effort);
    }
    assert!(base(json!({"thinking": {"type": "disabled"}}))
        .get("reasoning_effort")
        .is_none());
    let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
    let choice =
        |tc: Value| base(json!({"tools": tools, "tool_choice": tc}))["tool_choice"].clone();
    assert_eq!(choice(json!({"type": "any"})), "required");
    assert_eq!(choice(json!({"type": "none"})), "none");
    assert_eq!(
        choice(json!({"type": "tool", "name": "f"})),
        json!({"type": "function", "function": {"name": "f"}})
    );
    let c = base(json!({"system": "sys", "messages": [
        {"role": "user", "content": [{"type": "document", "title": "T", "source": {"type": "text", "data": "body"}}]},
        {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}
    ]}));
    assert_eq!(
        c["messages"][0],
        json!({"role": "system", "content": "sys"})
    );
    assert_eq!(c["messages"][1]["content"], "T\n\nbody");
    assert_eq!(
        c["messages"][2]["content"][0]["image_url"]["url"],
        "https://x/y.png"
    );
    // Only server tools: no tools, no tool_choice.
    let c = base(
        json!({"tools": [{"type": "bash_20250124", "name": "bash"}], "tool_choice": {"type": "auto"}}),
    );
    assert!(c.get("tools").is_none() && c.get("tool_choice").is_none());
}

#[test]
fn request_errors() {
    let e = err_of(b"{not json");
    assert_eq!((e.status, e.code), (400, "invalid_json"));
    assert_eq!(err_of(b"[1]").code, "invalid_json");
    let e = err_of(br#"{"messages":[{"role":"user","content":"x"}]}"#);
    assert_eq!(
        (e.code, e.param.as_deref()),
        ("missing_required_parameter", Some("model"))
    );
    assert_eq!(
        err_of(br#"{"model":"m","messages":[]}"#).param.as_deref(),
        Some("messages")
    );
    let e = err_of(br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":3}]}]}"#);
    assert_eq!(
        (e.code, e.param.as_deref()),
        ("invalid_type", Some("messages[1].content[0].type"))
    );
    let e = err_of(br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#);
    assert_eq!(
        (e.code, e.param.as_deref()),
        ("invalid_value", Some("messages[0].role"))
    );
    let pdf = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"read"},
        {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}]}]}"#;
    let e = err_of(pdf);
    assert_eq!(
        (e.status, e.code, e.param.as_deref()),
        (400, "unsupported_content", Some("messages[0].content[1]"))
    );
    let e = err_of(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#);
    assert_eq!(
        (e.code, e.param.as_deref()),
        (
            "unsupported_content",
            Some("messages[0].content[0].source.type")
        )
    );
    let forced = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
        "tools":[{"type":"web_search_20250305","name":"web_search"},{"name":"f"}],
        "tool_choice":{"type":"tool","name":"web_search"}}"#;
    let e = err_of(forced);
    assert_eq!(
        (e.code, e.param.as_deref()),
        ("unsupported_tool", Some("tool_choice.name"))
    );
    let any = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
        "tools":[{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"any"}}"#;
    assert_eq!(err_of(any).code, "unsupported_tool");
    let e = err_of(br#"{"model":"m","max_tokens":"9","messages":[{"role":"user","content":"x"}]}"#);
    assert_eq!(e.param.as_deref(), Some("max_tokens"));
    let e = err_of(br#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}"#);
    assert_eq!(e.param.as_deref(), Some("messages[0].content[0].id"));
    let body = request_error_body(&e);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("messages[0].content[0].id"));
}

#[test]
fn count_tokens_grows_with_input() {
    let req = |text: &str, tools: Value, result: &str| {
        json!({"model": "m", "system": "sys", "tools": tools, "messages": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"q": "x"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": result}]}
        ]})
        .to_string()
    };
    let small = count_tokens(req("hi", json!([]), "r").as_bytes()).unwrap();
    let long = count_tokens(req(&"word ".repeat(400), json!([]), "r").as_bytes()).unwrap();
    let tools =
        json!([{"name": "f", "description": "d".repeat(400), "input_schema": {"type": "object"}}]);
    let with_tools = count_tokens(req("hi", tools, "r").as_bytes()).unwrap();
    let big_result = count_tokens(req("hi", json!([]), &"r".repeat(400)).as_bytes()).unwrap();
    assert!(small > 0);
    assert!(long >= small + 450, "{small} {long}");
    assert!(with_tools >= small + 100, "{small} {with_tools}");
    assert!(big_result >= small + 90, "{small} {big_result}");
    let image = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A".repeat(100_000)}}]}]});
    let n = count_tokens(image.to_string().as_bytes()).unwrap();
    assert!((1000..1100).contains(&n), "{n}");
    assert_eq!(count_tokens(b"nope").unwrap_err().code, "invalid_json");
}

fn answer(message: Value, finish: &str) -> Value {
    let chat = json!({"id": "c", "object": "chat.completion", "choices": [
        {"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}}});
    let body = chat_to_messages_response(chat.to_string().as_bytes(), &ctx()).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn non_stream_text() {
    let v = answer(json!({"role": "assistant", "content": "Hello"}), "stop");
    assert_eq!(v["id"], "msg_abc");
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["content"], json!([{"type": "text", "text": "Hello"}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 40, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60})
    );
    let v = answer(json!({"role": "assistant", "content": "Hel"}), "length");
    assert_eq!(v["stop_reason"], "max_tokens");
    let v = answer(
        json!({"role": "assistant", "content": null, "refusal": "no"}),
        "content_filter",
    );
    assert_eq!(v["stop_reason"], "refusal");
    assert_eq!(v["content"][0]["text"], "no");
    assert!(chat_to_messages_response(b"{\"choices\":[]}", &ctx()).is_err());
    assert!(chat_to_messages_response(b"<html>", &ctx()).is_err());
}

#[test]
fn non_stream_tool_use_and_thinking() {
    let v = answer(
        json!({"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
            {"type": "function", "function": {"name": "Read", "arguments": "{broken"}}
        ]}),
        "stop",
    );
    assert_eq!(
        v["content"],
        json!([
            {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "toolu_abc_1", "name": "Read", "input": {}}
        ])
    );
    assert_eq!(v["stop_reason"], "tool_use");
    let v = answer(
        json!({"role": "assistant", "content": "  <think>plan</think>\n\nAnswer"}),
        "stop",
    );
    assert_eq!(
        v["content"],
        json!([{"type": "thinking", "thinking": "plan", "signature": ""}, {"type": "text", "text": "Answer"}])
    );
    let v = answer(
        json!({"role": "assistant", "content": "Answer", "reasoning_content": "why"}),
        "stop",
    );
    assert_eq!(
        v["content"][0],
        json!({"type": "thinking", "thinking": "why", "signature": ""})
    );
    assert_eq!(v["content"][1]["text"], "Answer");
}

#[test]
fn stream_text_with_late_usage() {
    let ev = run(&[
        &chunk(json!({"role": "assistant", "content": ""})),
        &chunk(json!({"content": "Hel"})),
        &chunk(json!({"content": "lo"})),
        &finish_chunk("stop"),
        &json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}).to_string(),
        "[DONE]",
        &chunk(json!({"content": "ignored"})),
    ]);
    assert_eq!(ev[0].1["message"]["usage"]["input_tokens"], 42);
    let b = blocks(&ev);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0, json!({"type": "text", "text": ""}));
    assert_eq!(b[0].1, "Hello");
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);
    assert_eq!(delta["usage"]["input_tokens"], 12);
    assert_eq!(ev.iter().filter(|e| e.0 == "message_stop").count(), 1);
}

#[test]
fn stream_tool_calls_split_and_repeated() {
    let mut enc = MessagesStreamEncoder::new(ctx(), 1);
    let mut out = Vec::new();
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        if let Some(name) = name {
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}))
    };
    for c in [
        chunk(json!({"content": "Let me look."})),
        call(0, Some("call_a"), None, ""),
        call(0, None, Some("Bash"), "{\"comm"),
        call(0, Some("call_a"), Some("Bash"), ""),
        call(0, None, None, "and\":\"ls\"}"),
        call(0, None, None, "{\"command\":\"ls\"}"),
        call(1, Some("call_b"), Some("Read"), "{\"path\":"),
        call(1, None, None, "\"x\"}"),
        finish_chunk("tool_calls"),
    ] {
        enc.push(c.as_bytes(), &mut out);
    }
    enc.push(b"[DONE]", &mut out);
    let ev = events(&out);
    let b = blocks(&ev);
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].1, "Let me look.");
    assert_eq!(
        b[1].0,
        json!({"type": "tool_use", "id": "call_a", "name": "Bash", "input": {}})
    );
    assert_eq!(b[1].1, "{\"command\":\"ls\"}");
    serde_json::from_str::<Value>(&b[1].1).unwrap();
    assert_eq!(b[2].0["id"], "call_b");
    assert_eq!(b[2].0["name"], "Read");
    assert_eq!(b[2].1, "{\"path\":\"x\"}");
    assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
    assert!(enc.usage().is_none());
    // Output estimate from the bytes sent when the upstream reports no usage.
    assert!(
        ev[ev.len() - 2].1["usage"]["output_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn stream_each_call_numbered_zero_and_no_arguments() {
    let ev = run(&[
        &chunk(
            json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
        ),
        &chunk(
            json!({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{\"x\":1}"}}]}),
        ),
        &chunk(json!({"tool_calls": [{"index": 1, "function": {"name": "h"}}]})),
        &finish_chunk("stop"),
    ]);
    let b = blocks(&ev);
    let names: Vec<&str> = b.iter().map(|(s, _)| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["f", "g", "h"]);
    assert_eq!(b[1].1, "{\"x\":1}");
    assert_eq!(b[2].0["id"], "toolu_abc_2");
    assert_eq!(b[2].1, "");
    assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
}

#[test]
fn stream_reasoning_then_text() {
    let ev = run(&[
        &chunk(json!({"reasoning_content": "Think"})),
        &chunk(json!({"reasoning": "ing."})),
        &chunk(json!({"content": "Done"})),
        &finish_chunk("length"),
    ]);
    let b = blocks(&ev);
    assert_eq!(
        b[0].0,
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(b[0].1, "Thinking.");
    assert_eq!(b[1].1, "Done");
    let sig = ev
        .iter()
        .position(|e| e.1["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(ev[sig + 1].0, "content_block_stop");
    assert_eq!(ev[sig + 1].1["index"], 0);
    assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "max_tokens");
}

#[test]
fn stream_think_tags_split_across_chunks() {
    let ev = run(&[
        &chunk(json!({"content": "\n<th"})),
        &chunk(json!({"content": "ink>I should"})),
        &chunk(json!({"content": " say hi</th"})),
        &chunk(json!({"content": "ink>\n\n"})),
        &chunk(json!({"content": "Hi <b>there</b>"})),
        &finish_chunk("stop"),
    ]);
    let b = blocks(&ev);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].0["type"], "thinking");
    assert_eq!(b[0].1, "I should say hi");
    assert_eq!(b[1].1, "Hi <b>there</b>");
    // Content that merely starts with `<` is text.
    let b = blocks(&run(&[
        &chunk(json!({"content": "<"})),
        &chunk(json!({"content": "html>"})),
    ]));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].1, "<html>");
}

#[test]
fn stream_error_ends_without_message_stop() {
    let mut enc = MessagesStreamEncoder::new(ctx(), 5);
    let mut out = Vec::new();
    enc.push(chunk(json!({"content": "partial"})).as_bytes(), &mut out);
    let err = json!({"error": {"message": "upstream died", "type": "stream_error", "code": "upstream_stream_error"}});
    enc.push(err.to_string().as_bytes(), &mut out);
    enc.push(chunk(json!({"content": "more"})).as_bytes(), &mut out);
    enc.push(b"[DONE]", &mut out);
    enc.finish(&mut out);
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        ev[4].1["error"],
        json!({"type": "api_error", "message": "upstream died"})
    );
    let mut enc = MessagesStreamEncoder::new(ctx(), 5);
    let mut out = Vec::new();
    enc.push(
        br#"{"error":{"message":"busy","type":"service_unavailable","code":"no_capacity"}}"#,
        &mut out,
    );
    assert_eq!(events(&out)[2].1["error"]["type"], "overloaded_error");
}

#[test]
fn stream_empty_is_a_valid_message() {
    let ev = run(&["[DONE]"]);
    let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["message_start", "ping", "message_delta", "message_stop"]
    );
    assert_eq!(ev[2].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(ev[2].1["usage"]["input_tokens"], 42);
    assert_eq!(ev[0].1["message"]["content"], json!([]));
    // finish() alone, without start(), also makes a whole message.
    let mut enc = MessagesStreamEncoder::new(ctx(), 0);
    let mut out = Vec::new();
    enc.finish(&mut out);
    assert_eq!(events(&out).len(), 4);
}

#[test]
fn families_and_error_types() {
    assert_eq!(claude_family("claude-opus-4-1-20250805"), Some("opus"));
    assert_eq!(claude_family("claude-3-5-haiku-latest"), Some("haiku"));
    assert_eq!(claude_family("claude-sonnet-4-5"), Some("sonnet"));
    assert_eq!(claude_family("claude-haiku-4-5-20251001"), Some("haiku"));
    assert_eq!(claude_family("anthropic/claude-3.7-sonnet"), Some("sonnet"));
    assert_eq!(claude_family("gpt-4o"), None);
    assert_eq!(claude_family("sonnet-imitation"), None);
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "overloaded_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (501, "api_error"),
    ] {
        assert_eq!(error_type_for_status(status), kind, "{status}");
    }
    let v: Value = serde_json::from_slice(&error_body(429, "slow down")).unwrap();
    assert_eq!(
        v,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    );
}
