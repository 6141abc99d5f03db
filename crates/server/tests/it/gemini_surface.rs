//! The Gemini surface end to end over loopback: `/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` run through the same relay as chat completions — keys from `x-goog-api-key` or
//! `?key=`, Gemini names mapped to `auto`, failover before the commit point invisible, errors in Google's shape, the
//! surface recorded in history.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn gemini(gw: &Gateway, target: &str, body: Value) -> reqwest::RequestBuilder {
    gw.http
        .post(format!("{}/v1beta/models/{target}", gw.url))
        .header("x-goog-api-key", &gw.key)
        .json(&body)
}

fn hello() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
}

fn parts(chunk: &Value) -> Vec<Value> {
    chunk["candidates"][0]["content"]["parts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn generate_content_answers_text_and_function_calls() {
    let gw = start(&[("ok", &["m"]), ("tool", &["t"])]).await;
    let r = gemini(&gw, "m:generateContent", hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-freellmapi-provider"], "custom");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["modelVersion"], "m");
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");
    assert!(
        !parts(&body)[0]["text"].as_str().unwrap().is_empty(),
        "{body}"
    );
    assert!(
        body["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0,
        "{body}"
    );

    // A tool round trip, the key in the query string as Google's SDKs may send it.
    let tools = json!([{"functionDeclarations": [{"name": "get_weather",
        "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]},
        {"googleSearch": {}}]);
    let r = gw
        .http
        .post(format!("{}/v1beta/models/t:generateContent?key={}", gw.url, gw.key))
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "weather?"}]}], "tools": tools}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let call = parts(&body)
        .into_iter()
        .find_map(|p| p.get("functionCall").cloned())
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["args"], json!({"city": "Paris"}));
    let follow_up = json!({"contents": [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"functionCall": call}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]}
    ], "tools": tools});
    let r = gemini(&gw, "m:generateContent", follow_up)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 10).await.unwrap();
    assert_eq!(
        rows.iter().filter(|r| r["endpoint"] == "gemini").count(),
        3,
        "{rows:?}"
    );
}

#[tokio::test]
async fn streams_after_a_failover_as_sse_or_a_json_array() {
    let mut config = fast_config();
    config.first_token_stall = Duration::from_millis(300);
    let gw = start_with(config, &[("stall", &["m"]), ("ok", &["m"])]).await;
    // A Gemini name nobody serves goes to `auto`.
    let r = gemini(&gw, "gemini-2.5-pro:streamGenerateContent?alt=sse", hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["x-freellmapi-attempts"], "2");
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(events.len() >= 2, "{text}");
    let streamed: String = events
        .iter()
        .flat_map(parts)
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect();
    assert!(!streamed.is_empty(), "{text}");
    let last = events.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["modelVersion"], "gemini-2.5-pro");
    assert!(last["usageMetadata"]["candidatesTokenCount"]
        .as_u64()
        .is_some());

    let r = gemini(&gw, "m:streamGenerateContent", hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let array: Value = r.json().await.unwrap();
    let array = array.as_array().unwrap();
    assert_eq!(
        array.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
    // History shows the name the client asked for, not what it was mapped to.
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 10).await.unwrap();
    assert!(
        rows.iter()
            .any(|r| r["requested_model"] == "gemini-2.5-pro" && r["model"] == "m"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn errors_count_tokens_and_models_in_googles_shape() {
    let gw = start(&[("ok", &["m"])]).await;
    let google_error = |body: &Value, status: u16, name: &str| {
        assert_eq!(body["error"]["code"], status, "{body}");
        assert_eq!(body["error"]["status"], name, "{body}");
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    };
    let r = gw
        .http
        .post(format!("{}/v1beta/models/m:generateContent", gw.url))
        .header("x-goog-api-key", "freellmapi-wrong")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    google_error(&r.json().await.unwrap(), 401, "UNAUTHENTICATED");

    let r = gemini(&gw, "nope-model:generateContent", hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    google_error(&r.json().await.unwrap(), 404, "NOT_FOUND");

    let r = gemini(&gw, "m:embedContent", hello()).send().await.unwrap();
    assert_eq!(r.status(), 404);
    google_error(&r.json().await.unwrap(), 404, "NOT_FOUND");

    let audio = json!({"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}]});
    let r = gemini(&gw, "m:generateContent", audio)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    google_error(&body, 400, "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contents[0].parts[0].inlineData.mimeType"),
        "{body}"
    );

    let count = |text: String| {
        gemini(
            &gw,
            "m:countTokens",
            json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}),
        )
        .send()
    };
    let short: Value = count("hi".into()).await.unwrap().json().await.unwrap();
    let long: Value = count("word ".repeat(400))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(long["totalTokens"].as_u64().unwrap() > short["totalTokens"].as_u64().unwrap() + 100);

    let list: Value = gw
        .http
        .get(format!("{}/v1beta/models?key={}", gw.url, gw.key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "models/m"),
        "{list}"
    );
    let one = gw
        .http
        .get(format!("{}/v1beta/models/gemini-2.5-flash", gw.url))
        .header("x-goog-api-key", &gw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let r = gw
        .http
        .get(format!("{}/v1beta/models/unknown", gw.url))
        .header("x-goog-api-key", &gw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    gw.stop().await;
}

#[tokio::test]
async fn gemini_methods_are_served_under_v1_too() {
    // google-genai 3 sends `POST /v1/models/{model}:generateContent`; `GET /v1/models/{id}` stays OpenAI's.
    let gw = start(&[("ok", &["m"])]).await;
    let r = gw
        .http
        .post(format!("{}/v1/models/m:generateContent", gw.url))
        .header("x-goog-api-key", &gw.key)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        !parts(&body)[0]["text"].as_str().unwrap().is_empty(),
        "{body}"
    );
    let r = gw
        .http
        .post(format!("{}/v1/models/m:countTokens", gw.url))
        .header("x-goog-api-key", &gw.key)
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.json::<Value>().await.unwrap()["totalTokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let listed: Value = gw
        .http
        .get(format!("{}/v1/models/m", gw.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["object"], "model", "{listed}");
}
