//! Model groups: the catalog's one name for the same model across platforms. A request for the group may go to
//! any key serving a member, each with its own platform's model id; the group is listed in `/v1/models`.

use serde_json::{json, Value};

use crate::harness::*;

const GROQ_ID: &str = "llama-3.3-70b-versatile";
const NVIDIA_ID: &str = "meta/llama-3.3-70b-instruct";

async fn models(gw: &Gateway) -> Vec<Value> {
    let v: Value = gw
        .http
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(&gw.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_group_name_reaches_every_platform_serving_the_model() {
    // Groq's key always answers 429; Nvidia's serves.
    let gw = start(&[("groq:429ra60", &[GROQ_ID]), ("nvidia:ok", &[NVIDIA_ID])]).await;

    let listed = models(&gw).await;
    let group = listed
        .iter()
        .find(|m| m["id"] == "llama-3.3-70b")
        .expect("the group is listed");
    assert_eq!(group["owned_by"], "freellmapi-group");
    assert_eq!(group["members"], json!([GROQ_ID, NVIDIA_ID]));
    assert!(
        listed.iter().any(|m| m["id"] == GROQ_ID),
        "members stay listed"
    );

    for _ in 0..3 {
        let (status, headers, body) = gw.chat_json(simple_chat("llama-3.3-70b")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-freellmapi-provider"], "nvidia");
    }
    // Each upstream was sent its own platform's id.
    let sent_nvidia = gw.mock.requests("ok");
    assert!(!sent_nvidia.is_empty());
    for r in &sent_nvidia {
        assert_eq!(r.json().unwrap()["model"], NVIDIA_ID);
    }
    for r in gw.mock.requests("429ra60") {
        assert_eq!(r.json().unwrap()["model"], GROQ_ID);
    }

    // The platform's own id still names that platform only.
    let (status, _, body) = gw.chat_json(simple_chat(GROQ_ID)).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn a_gateway_key_allowed_only_the_group_may_use_it() {
    let gw = start(&[("groq:ok", &[GROQ_ID]), ("nvidia:ok+id2", &[NVIDIA_ID])]).await;
    let admin = crate::accounts::login_as(&gw, "admin", &gw.admin_password).await;
    let (status, created) = admin
        .call(
            "POST",
            "/api/gateway-keys",
            Some(json!({ "allowed_models": ["llama-3.3-70b"] })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let chat = |model: &str| {
        gw.http
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&key)
            .json(&simple_chat(model))
            .send()
    };
    assert_eq!(chat("llama-3.3-70b").await.unwrap().status(), 200);
    assert_eq!(chat(GROQ_ID).await.unwrap().status(), 403);
}
