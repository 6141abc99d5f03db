//! AI profiles: virtual models over ordered real models, managed through `/api/profiles`, listed in `/v1/models`
//! and routed by their strategy.

use serde_json::{json, Value};

use crate::admin::login;
use crate::harness::*;

async fn create_profile(gw: &Gateway, cookie: &str, body: Value) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/api/profiles", gw.url))
        .header("cookie", cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn failover_profile_prefers_its_first_model_and_falls_back() {
    let gw = start(&[("500", &["big"]), ("ok", &["small"])]).await;
    let cookie = login(&gw).await;
    let (status, profile) = create_profile(
        &gw,
        &cookie,
        json!({ "name": "smart", "strategy": "failover", "models": ["big", "small", "not-served"] }),
    )
    .await;
    assert_eq!(status, 201, "{profile}");
    assert_eq!(profile["reachable_models"], json!(["big", "small"]));

    let models: Value = gw
        .http
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "smart")
        .unwrap();
    assert_eq!(listed["owned_by"], "freellmapi-profile");
    assert_eq!(listed["members"], json!(["big", "small", "not-served"]));

    let (status, headers, body) = gw.chat_json(simple_chat("smart")).await;
    assert_eq!(status, 200, "{body}");
    // `big` was tried first (and failed), then `small` answered; the upstream saw the real model id.
    assert_eq!(headers["x-freellmapi-model"], "small");
    assert_eq!(headers["x-freellmapi-attempts"], "2");
    assert_eq!(gw.mock.hits("500"), 1);
    let sent: Value = serde_json::from_slice(&gw.mock.requests("ok")[0].body).unwrap();
    assert_eq!(sent["model"], "small");
}

#[tokio::test]
async fn round_robin_profile_takes_turns() {
    let gw = start(&[("ok", &["a"]), ("ok+chunks2", &["b"])]).await;
    let cookie = login(&gw).await;
    let (status, _) = create_profile(
        &gw,
        &cookie,
        json!({ "name": "spread", "strategy": "round-robin", "models": ["a", "b"] }),
    )
    .await;
    assert_eq!(status, 201);
    let mut served = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = gw.chat_json(simple_chat("spread")).await;
        assert_eq!(status, 200);
        served.push(headers["x-freellmapi-model"].to_str().unwrap().to_owned());
    }
    assert_eq!(served.iter().filter(|m| *m == "a").count(), 2, "{served:?}");
    assert_eq!(served.iter().filter(|m| *m == "b").count(), 2, "{served:?}");
}

#[tokio::test]
async fn profile_validation_update_and_delete() {
    let gw = start(&[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    for (body, code) in [
        (json!({ "name": "auto", "models": ["m"] }), "invalid_name"),
        (json!({ "name": "p", "models": [] }), "invalid_models"),
        (
            json!({ "name": "p", "strategy": "fastest", "models": ["m"] }),
            "invalid_strategy",
        ),
        (json!({ "name": "p", "models": ["auto"] }), "invalid_models"),
    ] {
        let (status, err) = create_profile(&gw, &cookie, body).await;
        assert_eq!(status, 400, "{err}");
        assert_openai_error(&err, code);
    }
    let (_, p) = create_profile(&gw, &cookie, json!({ "name": "p", "models": ["m"] })).await;
    let (status, dup) = create_profile(&gw, &cookie, json!({ "name": "p", "models": ["m"] })).await;
    assert_eq!(status, 409, "{dup}");
    let id = p["id"].as_str().unwrap();
    let r = gw
        .http
        .patch(format!("{}/api/profiles/{id}", gw.url))
        .header("cookie", &cookie)
        .json(&json!({ "name": "renamed", "strategy": "least-latency", "models": ["m"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.chat_json(simple_chat("renamed")).await.0, 200);
    assert_eq!(gw.chat_json(simple_chat("p")).await.0, 404);
    let r = gw
        .http
        .delete(format!("{}/api/profiles/{id}", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(gw.chat_json(simple_chat("renamed")).await.0, 404);
}

#[tokio::test]
async fn context_handoff_notes_a_model_switch_between_turns() {
    let config = server::ServerConfig {
        context_handoff: true,
        ..fast_config()
    };
    let gw = start_with(config, &[("ok", &["a"]), ("ok+chunks2", &["b"])]).await;
    let cookie = login(&gw).await;
    create_profile(
        &gw,
        &cookie,
        json!({ "name": "duo", "strategy": "round-robin", "models": ["a", "b"] }),
    )
    .await;
    let first = json!({ "model": "duo", "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": "Plan a trip" }
    ]});
    let (_, headers, _) = gw.chat_json(first).await;
    let first_model = headers["x-freellmapi-model"].to_str().unwrap().to_owned();
    let second = json!({ "model": "duo", "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": "Plan a trip" },
        { "role": "assistant", "content": "Rome." },
        { "role": "user", "content": "Cheaper?" }
    ]});
    let (status, headers, _) = gw.chat_json(second).await;
    assert_eq!(status, 200);
    let second_model = headers["x-freellmapi-model"].to_str().unwrap().to_owned();
    assert_ne!(first_model, second_model, "round-robin switched models");
    // The second model received the note right after the system prompt; the first turn had none.
    let all: Vec<Value> = ["ok", "ok+chunks2"]
        .iter()
        .flat_map(|s| gw.mock.requests(s))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let noted: Vec<&Value> = all
        .iter()
        .filter(|b| b["messages"].to_string().contains("Context handoff"))
        .collect();
    assert_eq!(noted.len(), 1, "{all:?}");
    assert_eq!(noted[0]["model"], second_model.as_str());
    assert_eq!(noted[0]["messages"][1]["role"], "system");
    assert!(noted[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains(&format!("`{first_model}`")));
}

#[tokio::test]
async fn profile_no_key_serves_is_503_for_requests_and_an_empty_routing_preview() {
    let gw = start(&[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let (status, profile) = create_profile(
        &gw,
        &cookie,
        json!({ "name": "orphan", "strategy": "failover", "models": ["gone-1", "gone-2"] }),
    )
    .await;
    assert_eq!(status, 201, "{profile}");

    let (status, _, body) = gw.chat_json(simple_chat("orphan")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "no_provider_available");

    // The preview is an admin's question, not a request: nothing serves it, so the list is empty (not a 5xx).
    let r = gw
        .http
        .get(format!("{}/api/routing?model=orphan", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["strategy"], "failover", "{v}");
    assert_eq!(v["candidates"], json!([]), "{v}");
}
