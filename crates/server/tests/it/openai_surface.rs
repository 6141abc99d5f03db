//! The OpenAI-compatible surface: pass-through, models, embeddings and every client error.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn chat_passes_unknown_fields_both_ways_and_names_the_server() {
    let gw = start(&[("ok", &["mock-model"])]).await;
    let body = json!({
        "model": "mock-model",
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": "what is this?" },
                      { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } }] }],
        "tools": [{ "type": "function", "function": { "name": "get_weather", "parameters": { "type": "object" } } }],
        "response_format": { "type": "json_object" },
        "x_vendor_extension": { "nested": [1, 2.50, "three"] },
        "temperature": 0.2
    });
    let (status, headers, resp) = gw.chat_json(body.clone()).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["x_mock_extra"]["kept"], true,
        "response field dropped: {resp}"
    );
    assert_eq!(resp["choices"][0]["message"]["content"], "Hello from mock.");
    assert_eq!(headers["x-freellmapi-provider"], "custom");
    assert_eq!(headers["x-freellmapi-model"], "mock-model");
    assert!(headers.contains_key("x-request-id"));
    let recorded = gw.mock.requests("ok");
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].json().unwrap(),
        body,
        "request body was altered"
    );
    assert_eq!(
        recorded[0].header("authorization"),
        Some(format!("Bearer {PROVIDER_SECRET}").as_str())
    );
}

#[tokio::test]
async fn inbound_request_id_is_echoed() {
    let gw = start(&[("ok", &["m"])]).await;
    for _ in 0..2 {
        let r = gw
            .chat(simple_chat("m"))
            .header("x-request-id", "abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "abc-123");
    }
    // A reused request id is still logged twice (it is not a key).
    let user = gw.user_id.clone();
    let rows = gw.stop().await.recent_requests(&user, 10).await.unwrap();
    assert_eq!(
        rows.iter().filter(|r| r["id"] == "abc-123").count(),
        2,
        "{rows:?}"
    );
}

#[tokio::test]
async fn auto_rewrites_only_the_model() {
    let gw = start(&[("ok", &["mock-model"])]).await;
    let mut body = simple_chat("auto");
    body["x_extra"] = json!({"a": 1});
    let (status, headers, _) = gw.chat_json(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-freellmapi-model"], "mock-model");
    let sent = gw.mock.requests("ok")[0].json().unwrap();
    assert_eq!(sent["model"], "mock-model");
    assert_eq!(sent["x_extra"], json!({"a": 1}));
}

#[tokio::test]
async fn models_lists_only_reachable_models_plus_auto() {
    let gw = start(&[("ok", &["a", "b"]), ("ok+x", &["b", "c"])]).await;
    let disabled = add_key(&gw.store, &gw.user_id, &gw.mock.base_url("ok"), &["hidden"]).await;
    gw.store
        .update_provider_key(
            &gw.user_id,
            &disabled,
            &store::ProviderKeyPatch {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    gw.state.reload().await.unwrap();
    let list: serde_json::Value = gw
        .http
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["auto", "a", "b", "c"]);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["object"] == "model"));
    let one = gw
        .http
        .get(format!("{}/v1/models/b", gw.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<serde_json::Value>().await.unwrap()["id"], "b");
    let missing = gw
        .http
        .get(format!("{}/v1/models/hidden", gw.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_openai_error(&missing.json().await.unwrap(), "model_not_found");
}

#[tokio::test]
async fn embeddings_route_and_pass_through() {
    let gw = start(&[("500", &["mock-embed"]), ("ok", &["mock-embed"])]).await;
    let body = json!({ "model": "mock-embed", "input": ["one", "two"], "encoding_format": "float", "dimensions": 4 });
    let r = gw
        .http
        .post(format!("{}/v1/embeddings", gw.url))
        .bearer_auth(&gw.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let sent = gw.mock.requests("ok");
    assert_eq!(sent[0].json().unwrap(), body);
    assert_eq!(sent[0].path, "/ok/v1/embeddings");
    let bad = gw
        .http
        .post(format!("{}/v1/embeddings", gw.url))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "mock-embed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let v: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(v["error"]["param"], "input");
}

#[tokio::test]
async fn client_errors_have_openai_shape_and_status() {
    let gw = start_with(
        server::ServerConfig {
            body_limit_bytes: 2048,
            ..fast_config()
        },
        &[("ok", &["m"])],
    )
    .await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let raw = |body: &'static str| {
        gw.http
            .post(&url)
            .bearer_auth(&gw.key)
            .header("content-type", "application/json")
            .body(body)
    };

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (raw("{not json"), 400, "invalid_json"),
        (
            raw(r#"{"messages":[{"role":"user","content":"x"}]}"#),
            400,
            "missing_required_parameter",
        ),
        (raw(r#"{"model":"m"}"#), 400, "missing_required_parameter"),
        (raw(r#"{"model":"m","messages":"hi"}"#), 400, "invalid_type"),
        (
            raw(r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#),
            404,
            "model_not_found",
        ),
        (
            gw.http.post(&url).json(&simple_chat("m")),
            401,
            "missing_api_key",
        ),
        (
            gw.http
                .post(&url)
                .bearer_auth("freellmapi-wrong")
                .json(&simple_chat("m")),
            401,
            "invalid_api_key",
        ),
        (
            gw.http
                .post(&url)
                .bearer_auth(&gw.key)
                .json(&json!({"model":"m","messages":[{"content":"x".repeat(4096)}]})),
            413,
            "request_too_large",
        ),
        (
            gw.http
                .get(format!("{}/v1/nothing-here", gw.url))
                .bearer_auth(&gw.key),
            404,
            "unknown_endpoint",
        ),
    ];
    for (request, status, code) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{code}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_openai_error(&body, code);
    }
    // The server is still up and serving.
    assert_eq!(
        gw.chat(simple_chat("m")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn disabled_gateway_key_is_refused() {
    let gw = start(&[("ok", &["m"])]).await;
    let keys = gw.store.gateway_keys_of(&gw.user_id).await.unwrap();
    gw.store
        .update_gateway_key(&gw.user_id, &keys[0].id, None, Some(false))
        .await
        .unwrap();
    gw.state.reload().await.unwrap();
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 401);
    assert_openai_error(&body, "api_key_disabled");
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "refused");
    assert_eq!(rows[0]["error_class"], "api_key_disabled");
    assert_eq!(rows[0]["gateway_key_id"], *keys[0].id);
}

/// Refusals by the gateway itself are recorded like served requests: a gateway key over its rpm limit, a model
/// outside its allow-list, a body no surface can read — each with its reason, on the surface it came to.
#[tokio::test]
async fn the_gateways_own_refusals_are_recorded() {
    let gw = start(&[("ok", &["m", "other"])]).await;
    let keys = gw.store.gateway_keys_of(&gw.user_id).await.unwrap();
    gw.store
        .set_gateway_key_policy(
            &gw.user_id,
            &keys[0].id,
            &store::GatewayKeyPolicy {
                rpm_limit: Some(3),
                allowed_models: Some(vec!["m".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    gw.state.reload().await.unwrap();
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    assert_eq!(gw.chat_json(simple_chat("other")).await.0, 403);
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", &gw.key)
        .json(&serde_json::json!({"model": "m", "messages": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 429);
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 10).await.unwrap();
    // Rows written in the same millisecond have no order: compare them sorted.
    let mut reasons: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                format!(
                    "{}:{}",
                    r["endpoint"].as_str().unwrap(),
                    r["error_class"].as_str().unwrap_or("-")
                ),
                r["http_status"].as_i64().unwrap(),
            )
        })
        .collect();
    reasons.sort();
    let refused = |what: &str, status: i64| ("refused".to_owned(), what.to_owned(), status);
    assert_eq!(
        reasons,
        vec![
            refused("chat:gateway_key_rate_limited", 429),
            refused("chat:model_not_allowed", 403),
            refused("messages:invalid_type", 400),
            ("success".to_owned(), "chat:-".to_owned(), 200),
        ],
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r["gateway_key_id"] == *keys[0].id));
}

#[tokio::test]
async fn no_provider_configured_is_503() {
    let gw = start(&[]).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 503);
    assert_openai_error(&body, "no_providers_configured");
}

#[tokio::test]
async fn client_address_rate_limit() {
    let gw = start_with(
        server::ServerConfig {
            ip_rate_limit_rpm: 2,
            ..fast_config()
        },
        &[("ok", &["m"])],
    )
    .await;
    assert_eq!(
        gw.chat(simple_chat("m")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        gw.chat(simple_chat("m")).send().await.unwrap().status(),
        200
    );
    let r = gw.chat(simple_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_openai_error(&r.json().await.unwrap(), "client_rate_limited");
}

/// Behind a trusted reverse proxy each client has its own per-address limit; from anyone else the forwarding
/// headers are ignored, so a client cannot pick the address it is limited under.
#[tokio::test]
async fn trusted_proxies_name_the_client() {
    for trusted in [true, false] {
        let mut config = fast_config();
        config.ip_rate_limit_rpm = 2;
        if trusted {
            config.trusted_proxies = std::sync::Arc::new(
                server::guard::forwarded::TrustedProxies::parse("127.0.0.0/8").unwrap(),
            );
        }
        let gw = start_with(config, &[("ok", &["m"])]).await;
        let from = |client: &'static str| {
            gw.chat(simple_chat("m"))
                .header("x-forwarded-for", format!("{client}, 127.0.0.1"))
                .send()
        };
        assert_eq!(from("203.0.113.1").await.unwrap().status(), 200);
        assert_eq!(from("203.0.113.1").await.unwrap().status(), 200);
        assert_eq!(from("203.0.113.1").await.unwrap().status(), 429);
        let other = from("203.0.113.2").await.unwrap().status();
        assert_eq!(other, if trusted { 200 } else { 429 }, "trusted: {trusted}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn every_request_is_logged_once() {
    let gw = start(&[("ok", &["m"])]).await;
    assert_eq!(
        gw.chat(simple_chat("m")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        gw.chat(simple_chat("missing"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = gw.chat(stream_chat("m")).send().await.unwrap();
    let _ = sse_events(r).await;
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 10).await.unwrap();
    // The 404 is refused before routing: recorded as refused (its reason and gateway key), no upstream attempt.
    assert_eq!(rows.len(), 3, "{rows:?}");
    let refused: Vec<_> = rows.iter().filter(|r| r["status"] == "refused").collect();
    assert_eq!(refused.len(), 1, "{rows:?}");
    assert_eq!(refused[0]["http_status"], 404);
    assert_eq!(refused[0]["error_class"], "model_not_found");
    assert_eq!(refused[0]["requested_model"], "missing");
    assert_eq!(refused[0]["attempts"], 0);
    assert!(refused[0]["gateway_key_id"].is_string(), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r["status"] == "success").count(), 2);
    let streamed = rows.iter().find(|r| r["stream"] == true).unwrap();
    assert_eq!(
        streamed["output_tokens"], 20,
        "usage from the stream's usage chunk: {streamed}"
    );
}
