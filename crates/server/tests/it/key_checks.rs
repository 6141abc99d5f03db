//! "Check key", "check all", discovery and model refresh against the mock: each key's cheap probe, the verdict stored
//! with its reason, and the router's view of it.

use serde_json::{json, Value};

use crate::admin::login;
use crate::harness::*;

async fn post(gw: &Gateway, cookie: &str, path: &str) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}{path}", gw.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn keys(gw: &Gateway, cookie: &str) -> Vec<Value> {
    let r = gw
        .http
        .get(format!("{}/api/keys", gw.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["data"].as_array().cloned().unwrap()
}

#[tokio::test]
async fn check_all_marks_each_key_with_its_reason() {
    let gw = start(&[
        ("groq:ok", &["llama-a"]),
        ("groq:401", &["llama-b"]),
        ("groq:429ra5", &["llama-c"]),
        ("groq:500", &["llama-d"]),
        ("google:ok", &["gemini-2.5-flash"]),
        ("openrouter:ok", &["free-a"]),
        ("cloudflare:403", &["@cf/meta/llama"]),
        ("ovh:ok", &["ovh-model"]),
    ])
    .await;
    let cookie = login(&gw).await;
    let (status, body) = post(&gw, &cookie, "/api/keys/check-all").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checked"], 8, "{body}");
    assert_eq!(body["healthy"], 4, "{body}");
    assert_eq!(body["invalid"], 2, "{body}");
    assert_eq!(body["rate_limited"], 1, "{body}");
    assert_eq!(body["error"], 1, "{body}");

    let listed = keys(&gw, &cookie).await;
    let by_model = |model: &str| {
        listed
            .iter()
            .find(|k| k["models"][0] == model)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_model("llama-a")["status"], "healthy");
    let invalid = by_model("llama-b");
    assert_eq!(invalid["status"], "invalid");
    assert!(
        invalid["status_reason"]
            .as_str()
            .unwrap()
            .starts_with("401"),
        "{invalid}"
    );
    assert_eq!(by_model("llama-c")["status"], "rate_limited");
    assert_eq!(by_model("llama-d")["status"], "error");
    assert_eq!(by_model("@cf/meta/llama")["status"], "invalid");

    // Listing models is the probe where the list needs the key; a one-token chat where it does not.
    let groq = gw.mock.requests("ok");
    assert!(groq
        .iter()
        .any(|r| r.method == "GET" && r.path == "/ok/v1/models"));
    let openrouter = groq
        .iter()
        .find(|r| r.method == "POST")
        .expect("OpenRouter is checked with a chat call");
    assert_eq!(openrouter.path, "/ok/v1/chat/completions");
    assert_eq!(openrouter.json().unwrap()["max_tokens"], 1);
    assert_eq!(gw.mock.hits("403"), 1);
    let ovh = groq.iter().filter(|r| r.header("authorization").is_none());
    assert_eq!(
        ovh.count(),
        1,
        "the keyless OVH probe carries no credential"
    );

    // The invalid key is out of rotation.
    let (status, _, body) = gw.chat_json(simple_chat("llama-b")).await;
    assert_ne!(status, 200, "{body}");
    assert_eq!(gw.mock.hits("401"), 1, "no request reached the invalid key");
}

#[tokio::test]
async fn a_healthy_check_puts_an_invalid_key_back() {
    let gw = start(&[("groq:first1+401", &["llama"])]).await;
    let cookie = login(&gw).await;
    // The first request meets the 401: the key is marked invalid.
    let (status, _, _) = gw.chat_json(simple_chat("llama")).await;
    assert_ne!(status, 200);
    let id = keys(&gw, &cookie).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wait for the verdict to be stored (it is persisted in the background; `status` is the live mark, shown at
    // once, `status_reason` is the stored row's).
    for _ in 0..200 {
        if !keys(&gw, &cookie).await[0]["status_reason"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(keys(&gw, &cookie).await[0]["status"], "invalid");
    assert!(gw.state.books.cooldowns.is_invalid(&id));
    let (status, body) = post(&gw, &cookie, &format!("/api/keys/{id}/check")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["recorded"], true);
    assert!(!gw.state.books.cooldowns.is_invalid(&id));
    let (status, _, body) = gw.chat_json(simple_chat("llama")).await;
    assert_eq!(status, 200, "{body}");

    let (status, _) = post(&gw, &cookie, "/api/keys/nope/check").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn discovery_reports_added_and_vanished_models() {
    let gw = start(&[("custom:ok", &["mock-model", "retired-model"])]).await;
    let cookie = login(&gw).await;
    let id = keys(&gw, &cookie).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post(&gw, &cookie, &format!("/api/keys/{id}/discover")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["discovered"]["added"], json!(["mock-embed"]));
    assert_eq!(body["discovered"]["vanished"], json!(["retired-model"]));
    // A vanished model is reported, not removed.
    assert_eq!(
        body["models"],
        json!(["mock-model", "retired-model", "mock-embed"])
    );

    // The periodic refresh does the same for every key, through the same function.
    let gw = start(&[("google:ok", &["gemini-2.5-flash", "gemini-1.0-pro"])]).await;
    let row = gw
        .store
        .provider_keys_of(&gw.user_id)
        .await
        .unwrap()
        .remove(0);
    let changes = server::api::key_check::refresh_models(&gw.state, &row)
        .await
        .unwrap();
    assert_eq!(changes.added, vec!["gemini-embedding-001"]);
    assert_eq!(changes.vanished, vec!["gemini-1.0-pro"]);
    let row = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    assert_eq!(row[0].models.len(), 3);
}
