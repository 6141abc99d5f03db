//! Native dialects end to end: Gemini and Cohere keys behind the one OpenAI-compatible endpoint, against the mock
//! provider's native routes — answers, streams, tool calls, embeddings, and failover between dialects.

use serde_json::{json, Value};

use crate::harness::*;

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "stream_options": { "include_usage": true },
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "hi" }
        ]
    })
}

#[tokio::test]
async fn gemini_and_cohere_answer_in_openai_format() {
    let gw = start(&[
        ("google:ok", &["gemini-2.5-flash"]),
        ("cohere:ok", &["command-a-03-2025"]),
    ])
    .await;
    for (model, provider) in [
        ("gemini-2.5-flash", "google"),
        ("command-a-03-2025", "cohere"),
    ] {
        let (status, headers, body) = gw.chat_json(chat(model, false)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-freellmapi-provider"], provider);
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["model"], model);
        assert_eq!(body["choices"][0]["message"]["role"], "assistant");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from mock.");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(
            body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
            "{body}"
        );
        assert_eq!(body["usage"]["completion_tokens"], 4);
    }
    // The key travels as Gemini's header, never in the URL.
    let recorded = gw.mock.requests("ok");
    let gemini = recorded
        .iter()
        .find(|r| r.path.contains("generateContent"))
        .unwrap();
    assert!(gemini
        .headers
        .iter()
        .any(|(n, v)| n == "x-goog-api-key" && v == PROVIDER_SECRET));
    assert!(!gemini.path.contains(PROVIDER_SECRET));
    let sent: Value = serde_json::from_slice(&gemini.body).unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["contents"][0]["role"], "user");
}

#[tokio::test]
async fn native_streams_become_openai_chunks() {
    let gw = start(&[
        ("google:ok+chunks3", &["gemini-2.5-flash"]),
        ("cohere:ok+chunks3", &["command-a-03-2025"]),
    ])
    .await;
    for model in ["gemini-2.5-flash", "command-a-03-2025"] {
        let r = gw.chat(chat(model, true)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let events = sse_events(r).await;
        assert_eq!(events.last().unwrap(), "[DONE]", "{events:?}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk"),
            "{chunks:?}"
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(!text.is_empty(), "{model}: {chunks:?}");
        assert!(
            chunks
                .iter()
                .any(|c| c["choices"][0]["finish_reason"] == "stop"),
            "{chunks:?}"
        );
        assert!(
            chunks
                .iter()
                .any(|c| c["usage"]["completion_tokens"].as_u64().is_some()),
            "include_usage gives a usage chunk: {chunks:?}"
        );
    }
}

#[tokio::test]
async fn native_tool_calls_translate_both_ways() {
    let gw = start(&[
        ("google:tool", &["gemini-2.5-flash"]),
        ("cohere:tool", &["command-a-03-2025"]),
    ])
    .await;
    for model in ["gemini-2.5-flash", "command-a-03-2025"] {
        let body = json!({
            "model": model,
            "messages": [{ "role": "user", "content": "weather in Paris?" }],
            "tools": [{ "type": "function", "function": {
                "name": "get_weather",
                "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] }
            }}]
        });
        let (status, _, answer) = gw.chat_json(body).await;
        assert_eq!(status, 200, "{answer}");
        let call = &answer["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function", "{answer}");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["city"], "Paris");
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    }
}

#[tokio::test]
async fn native_embeddings() {
    let gw = start(&[
        ("google:ok", &["gemini-embedding-001"]),
        ("cohere:ok", &["embed-v4.0"]),
    ])
    .await;
    for model in ["gemini-embedding-001", "embed-v4.0"] {
        let r = gw
            .http
            .post(format!("{}/v1/embeddings", gw.url))
            .bearer_auth(&gw.key)
            .json(&json!({ "model": model, "input": ["a", "b"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "list", "{v}");
        assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
        assert!(v["data"][1]["embedding"][0].is_number(), "{v}");
        assert_eq!(v["data"][1]["index"], 1);
    }
}

#[tokio::test]
async fn failover_crosses_dialects_and_in_band_errors_are_invisible() {
    // A Gemini key rate-limited, a Cohere key sending an in-band stream error, then an OpenAI-dialect key: the
    // client sees one clean stream.
    let gw = start(&[
        ("google:429ra30", &["shared-model"]),
        ("cohere:inbanderr", &["shared-model"]),
        ("ok+chunks2", &["shared-model"]),
    ])
    .await;
    let r = gw.chat(chat("shared-model", true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-freellmapi-provider"], "custom");
    assert_eq!(r.headers()["x-freellmapi-attempts"], "3");
    let text = r.text().await.unwrap();
    assert!(!text.contains("\"error\""), "{text}");
    assert_eq!(gw.mock.hits("429ra30"), 1);
    assert_eq!(gw.mock.hits("inbanderr"), 1);
}

#[tokio::test]
async fn untranslatable_requests_are_the_clients_error() {
    let gw = start(&[("cohere:ok", &["command-a-03-2025"])]).await;
    // Cohere has no `n`: the request cannot be expressed, and no provider is called.
    let mut body = chat("command-a-03-2025", false);
    body["n"] = json!(2);
    let (status, _, answer) = gw.chat_json(body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Cohere"),
        "{answer}"
    );
    assert_eq!(gw.mock.hits("ok"), 0);
}
