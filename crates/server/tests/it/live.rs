//! The dashboard's live feed and session routes: the WebSocket sees its own user's requests as they happen, the
//! playground relays like `/v1`, and statistics come from the request history.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::admin::login;
use crate::harness::*;

async fn next_json(
    ws: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
              + Unpin),
) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("a live event within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// The dashboard's WebSocket for a logged-in session, past its first `snapshot` message.
async fn live_socket(
    gw: &Gateway,
    cookie: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = (gw.url.replace("http://", "ws://") + "/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "snapshot");
    ws
}

#[tokio::test]
async fn websocket_shows_requests_live_and_only_to_their_owner() {
    let gw = start(&[("ok+chunks8+drip40", &["m"])]).await;
    let cookie = login(&gw).await;
    let ws_url = gw.url.replace("http://", "ws://") + "/ws";
    // Without a session: refused.
    assert!(tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .is_err());
    // From another site's page: refused.
    let mut foreign = ws_url.as_str().into_client_request().unwrap();
    foreign
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    foreign
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(foreign).await.is_err());

    let mut request = ws_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "snapshot");
    assert_eq!(first["keys"].as_array().unwrap().len(), 1);
    assert_eq!(first["keys"][0]["status"], "healthy");
    assert_eq!(
        first["keys"][0]["live_status"], "unknown",
        "never checked nor used yet: not called healthy"
    );

    let r = gw
        .chat(json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "hi" }] }))
        .header("x-request-id", "live-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.text().await.unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|t: &String| t == "request.finished") {
        let event = next_json(&mut ws).await;
        assert_eq!(event["req_id"], "live-test-1", "{event}");
        seen.push(event["type"].as_str().unwrap().to_owned());
        if event["type"] == "request.attempt" {
            assert_eq!(event["provider"], "custom");
            assert_eq!(event["model"], "m");
        }
        if event["type"] == "request.finished" {
            assert_eq!(event["status"], "success");
            assert!(event["output_tokens"].as_u64().unwrap() > 0, "{event}");
        }
    }
    assert_eq!(seen[0], "request.started");
    assert_eq!(seen[1], "request.attempt");
    assert!(
        seen.iter().any(|t| t == "request.tokens"),
        "a dripping stream reports its growing output: {seen:?}"
    );
    // A resync returns the totals.
    ws.send(Message::Text(r#"{"type":"resync"}"#.into()))
        .await
        .unwrap();
    let again = next_json(&mut ws).await;
    assert_eq!(again["type"], "snapshot");
    assert_eq!(again["totals"]["success"], 1);
    assert_eq!(
        again["keys"][0]["live_status"], "healthy",
        "it served a request"
    );
    assert!(again["in_flight"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn playground_models_stats_and_analytics() {
    let gw = start(&[("ok", &["m"]), ("500", &["m"])]).await;
    let cookie = login(&gw).await;
    let get = |path: &str| {
        gw.http
            .get(format!("{}{path}", gw.url))
            .header("cookie", &cookie)
    };
    // Session routes refuse anonymous callers.
    let anonymous = gw
        .http
        .get(format!("{}/api/models", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let models: Value = get("/api/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["auto", "m"]);

    for _ in 0..3 {
        let r = gw
            .http
            .post(format!("{}/api/playground/chat/completions", gw.url))
            .header("cookie", &cookie)
            .json(&json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-freellmapi-provider"));
        let text = r.text().await.unwrap();
        assert!(text.contains("[DONE]"), "{text}");
    }
    // The request log is written in batches: wait for it.
    let mut rows = 0;
    for _ in 0..100 {
        let v: Value = get("/api/analytics?range=24h")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        rows = v["totals"]["requests"].as_u64().unwrap();
        if rows == 3 {
            assert_eq!(v["series"].as_array().unwrap().len(), 24);
            assert_eq!(v["by_model"][0]["model"], "m");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows, 3);
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    let stats: Value = get(&format!("/api/keys/{}/stats", keys[0].id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["requests"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["hourly"].as_array().unwrap().len(), 24);
    assert!(stats["latency_ms"]["p50"].is_number());
    let bad = get("/api/analytics?range=1y").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_openai_error(&bad.json().await.unwrap(), "invalid_range");
    let missing = get("/api/keys/nope/stats").send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// A key that fails and is failed over from shows its attempts, not "no requests": every attempt through a key
/// counts in its statistics, with the last error in words.
#[tokio::test]
async fn key_stats_count_failed_attempts_that_were_failed_over() {
    let gw = start(&[("500", &["m"]), ("503+first1", &["m"]), ("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let (status, headers, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-freellmapi-attempts"], "3");
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    let stats = |id: String| {
        let (gw, cookie) = (&gw, &cookie);
        async move {
            gw.http
                .get(format!("{}/api/keys/{id}/stats", gw.url))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // History is written in the background.
    let mut failing = Value::Null;
    for _ in 0..100 {
        failing = stats(keys[0].id.clone()).await;
        if failing["requests"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(failing["requests"], 1, "{failing}");
    assert_eq!(failing["served"], 0);
    assert_eq!(failing["failed_attempts"], 1);
    assert_eq!(failing["errors"], 1);
    assert_eq!(failing["success_rate"], 0.0);
    assert_eq!(failing["last_error"]["code"], "server_error", "{failing}");
    assert!(
        failing["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{failing}"
    );
    assert_eq!(failing["by_error"][0]["code"], "server_error");
    assert_eq!(failing["recent"][0]["status"], "attempt_failed");
    let flaky = stats(keys[1].id.clone()).await;
    assert_eq!(flaky["failed_attempts"], 1, "{flaky}");
    let serving = stats(keys[2].id.clone()).await;
    assert_eq!(
        (serving["requests"].clone(), serving["served"].clone()),
        (json!(1), json!(1)),
        "{serving}"
    );
    assert_eq!(serving["failed_attempts"], 0);
    assert!(serving["last_error"].is_null());
}

#[tokio::test]
async fn routing_inspector_shows_each_candidates_state_and_score() {
    let gw = start(&[("429ra30", &["m"]), ("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    // The first key gets rate-limited and cools; the second answers.
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    let v: Value = gw
        .http
        .get(format!("{}/api/routing?model=m", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let candidates = v["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{v}");
    assert_eq!(candidates[0]["status"]["state"], "cooling", "{v}");
    assert!(candidates[0]["status"]["remaining_ms"].as_u64().unwrap() > 25_000);
    assert_eq!(candidates[1]["status"]["state"], "ready");
    assert_eq!(candidates[1]["status"]["order"], 1);
    assert!(candidates[1]["inputs"]["latency_ms"].is_number(), "{v}");
    assert!(candidates[0]["score"].as_f64().unwrap() < candidates[1]["score"].as_f64().unwrap());
    let missing = gw
        .http
        .get(format!("{}/api/routing?model=nope", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn capped_keys_push_their_gauge_live() {
    let gw = start(&[("ok", &["m"])]).await;
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    let patch = store::ProviderKeyPatch {
        limits: Some(store::KeyLimits {
            rpm: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    };
    gw.store
        .update_provider_key(&gw.user_id, &keys[0].id, &patch)
        .await
        .unwrap();
    gw.state.reload().await.unwrap();
    let cookie = login(&gw).await;
    let mut ws = live_socket(&gw, &cookie).await;
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    loop {
        let event = next_json(&mut ws).await;
        if event["type"] == "ratelimit.gauge" {
            assert_eq!(event["key_id"], keys[0].id.as_str());
            assert_eq!(event["rpm_used"], 1);
            assert_eq!(event["rpm_limit"], 5);
            break;
        }
        assert_ne!(
            event["type"], "request.finished",
            "no gauge before the end: {event}"
        );
    }
}

#[tokio::test]
async fn the_end_of_a_cooldown_is_announced_live() {
    // The first call answers 429 with Retry-After: 1; later ones succeed.
    let gw = start(&[("429ra1+first1", &["m"])]).await;
    let cookie = login(&gw).await;
    let mut ws = live_socket(&gw, &cookie).await;
    let (status, _, _) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 429);
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let event = next_json(&mut ws).await;
        if event["type"] == "key.status" {
            statuses.push((
                event["status"].as_str().unwrap().to_owned(),
                event["reason"].as_str().unwrap_or("").to_owned(),
                event["model"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    assert_eq!(statuses[0].0, "rate_limited", "{statuses:?}");
    assert_eq!(
        statuses[1],
        ("healthy".into(), "cooldown ended".into(), "m".into())
    );
    // And the key serves again.
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
}

#[tokio::test]
async fn a_cooling_key_says_why_it_rests() {
    let gw = start(&[("500+id1", &["broken"]), ("429ra60+id2", &["limited"])]).await;
    // Two different requests meet the 500 (one alone is not enough to cool the key); one meets the 429.
    for _ in 0..2 {
        assert_eq!(gw.chat_json(simple_chat("broken")).await.0, 502);
    }
    assert_eq!(gw.chat_json(simple_chat("limited")).await.0, 429);
    let cookie = login(&gw).await;
    let keys: Value = gw
        .http
        .get(format!("{}/api/keys", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let of = |model: &str| {
        keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["models"][0] == model)
            .unwrap()
            .clone()
    };
    let (broken, limited) = (of("broken"), of("limited"));
    assert_eq!(broken["live_status"], "error", "{broken}");
    assert_eq!(broken["cooldowns"][0]["reason"], "server_error", "{broken}");
    assert_eq!(limited["live_status"], "rate_limited", "{limited}");
    assert_eq!(
        limited["cooldowns"][0]["reason"], "rate_limited",
        "{limited}"
    );
    // The routing inspector says the same.
    let routing: Value = gw
        .http
        .get(format!("{}/api/routing?model=broken", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status = &routing["candidates"][0]["status"];
    assert_eq!(status["state"], "cooling", "{routing}");
    assert_eq!(status["reason"], "server_error", "{routing}");
}

#[tokio::test]
async fn a_queued_request_says_what_it_waits_for() {
    // The only key answers its first call with 429 and Retry-After: 1; the request waits for it instead of failing.
    let config = server::ServerConfig {
        queue_timeout: std::time::Duration::from_secs(5),
        ..fast_config()
    };
    let gw = start_with(config, &[("429ra1+first1", &["m"])]).await;
    let cookie = login(&gw).await;
    let mut ws = live_socket(&gw, &cookie).await;
    let sent_at = serde_json::json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64);
    let answer = tokio::spawn({
        let r = gw
            .chat(simple_chat("m"))
            .header("x-request-id", "queued-1")
            .send();
        async move { r.await.unwrap().status().as_u16() }
    });
    let mut kinds = Vec::new();
    let mut until = 0;
    while !kinds.iter().any(|k: &String| k == "request.finished") {
        let event = next_json(&mut ws).await;
        if event["req_id"] != "queued-1" {
            continue;
        }
        if event["type"] == "request.queued" {
            until = event["until_ms"].as_u64().unwrap();
        }
        kinds.push(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(answer.await.unwrap(), 200);
    let queued = kinds.iter().position(|k| k == "request.queued");
    assert!(queued.is_some(), "{kinds:?}");
    assert!(
        until > sent_at.as_u64().unwrap(),
        "the wait ends after the request was sent"
    );
    // The second attempt comes after the wait was announced.
    let last_attempt = kinds.iter().rposition(|k| k == "request.attempt").unwrap();
    assert!(queued.unwrap() < last_attempt, "{kinds:?}");
}
