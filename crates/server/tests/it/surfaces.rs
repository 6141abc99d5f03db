//! The agent-facing surfaces end to end over loopback: `/v1/responses` (OpenAI Responses) and `/v1/messages`
//! (Anthropic Messages) run through the same relay as chat completions — answers and streams in their own wire
//! format, failover before the commit point invisible to the client, errors in each surface's own shape, the
//! surface recorded in history.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn stream_config() -> server::ServerConfig {
    let mut config = fast_config();
    config.first_token_stall = Duration::from_millis(300);
    config
}

/// `event:` names and parsed `data:` payloads of an SSE body.
async fn typed_events(response: reqwest::Response) -> Vec<(String, Value)> {
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            let value = serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {e}"));
            (name, value)
        })
        .collect()
}

fn responses(gw: &Gateway, body: Value) -> reqwest::RequestBuilder {
    gw.http
        .post(format!("{}/v1/responses", gw.url))
        .bearer_auth(&gw.key)
        .json(&body)
}

fn messages(gw: &Gateway, body: Value) -> reqwest::RequestBuilder {
    gw.http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
}

#[tokio::test]
async fn responses_answer_text_and_function_calls() {
    let gw = start(&[("ok", &["m"]), ("tool", &["t"])]).await;
    let r = responses(
        &gw,
        json!({"model": "m", "instructions": "be brief", "input": "hi"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-freellmapi-provider"], "custom");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    let message = &body["output"][0];
    assert_eq!(message["type"], "message");
    assert!(
        !message["content"][0]["text"].as_str().unwrap().is_empty(),
        "{body}"
    );
    assert!(body["usage"]["input_tokens"].as_u64().is_some(), "{body}");

    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
                       {"type": "web_search"}]);
    let r = responses(
        &gw,
        json!({"model": "t", "input": "weather?", "tools": tools, "store": false}),
    )
    .send()
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    let call = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"Paris"}"#);
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 10).await.unwrap();
    assert!(
        rows.iter().filter(|r| r["endpoint"] == "responses").count() == 2,
        "{rows:?}"
    );
}

#[tokio::test]
async fn responses_stream_emits_the_event_sequence_after_a_failover() {
    let gw = start_with(stream_config(), &[("stall", &["m"]), ("ok", &["m"])]).await;
    let r = responses(&gw, json!({"model": "m", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-freellmapi-attempts"], "2");
    let events = typed_events(r).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds[0], "response.created", "{kinds:?}");
    assert_eq!(kinds[1], "response.in_progress", "{kinds:?}");
    assert_eq!(*kinds.last().unwrap(), "response.completed", "{kinds:?}");
    for (i, (kind, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], kind.as_str());
        assert_eq!(data["sequence_number"], i as u64, "{kind}");
    }
    let text: String = events
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let done = events
        .iter()
        .find(|(k, _)| k == "response.output_text.done")
        .unwrap();
    assert_eq!(done.1["text"], text.as_str());
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["output"][0]["content"][0]["text"], text.as_str());
    assert!(
        completed["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{completed}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn responses_refuse_what_a_stateless_gateway_cannot_do() {
    let gw = start(&[("ok", &["m"])]).await;
    let r = responses(
        &gw,
        json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["param"], "previous_response_id", "{body}");
    let r = responses(&gw, json!({"model": "nope", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_openai_error(&body, "model_not_found");
    gw.stop().await;
}

#[tokio::test]
async fn messages_answer_with_tool_use_and_map_claude_names() {
    // No key serves a `claude-*` model: the name goes to `auto`.
    let gw = start(&[("tool", &["t"])]).await;
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100,
        "system": [{"type": "text", "text": "you are terse", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "thinking": {"type": "adaptive"}, "context_management": {"edits": []},
    });
    let r = messages(&gw, body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["stop_reason"], "tool_use", "{body}");
    let tool_use = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(tool_use["input"], json!({"city": "Paris"}));
    gw.stop().await;
}

#[tokio::test]
async fn messages_stream_after_a_failover_and_errors_in_anthropic_shape() {
    let gw = start_with(stream_config(), &[("stall", &["m"]), ("ok", &["m"])]).await;
    let r = messages(
        &gw,
        json!({"model": "m", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-freellmapi-attempts"], "2");
    let events = typed_events(r).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"message_start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"message_stop"), "{kinds:?}");
    assert!(
        kinds.contains(&"content_block_start") && kinds.contains(&"content_block_stop"),
        "{kinds:?}"
    );
    let text: String = events
        .iter()
        .filter(|(k, d)| k == "content_block_delta" && d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert!(!text.is_empty());
    let delta = events.iter().find(|(k, _)| k == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "end_turn");

    // A wrong key and an unknown model answer in Anthropic's error shape.
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "freellmapi-wrong")
        .json(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "authentication_error");
    let r = messages(&gw, json!({"model": "gpt-nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error", "{body}");
    let r = messages(&gw, json!({"model": "m", "messages": "not a list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages"),
        "{body}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn count_tokens_and_the_anthropic_model_list() {
    let gw = start(&[("ok", &["m"])]).await;
    let count = |text: &str| {
        gw.http
            .post(format!("{}/v1/messages/count_tokens", gw.url))
            .header("x-api-key", &gw.key)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": text}]}))
            .send()
    };
    let short: Value = count("hi").await.unwrap().json().await.unwrap();
    let long: Value = count(&"word ".repeat(400))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(long["input_tokens"].as_u64().unwrap() > short["input_tokens"].as_u64().unwrap() + 100);
    let list: Value = gw
        .http
        .get(format!("{}/v1/models", gw.url))
        .header("x-api-key", &gw.key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["has_more"], false);
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "m" && m["type"] == "model"),
        "{list}"
    );
    gw.stop().await;
}
