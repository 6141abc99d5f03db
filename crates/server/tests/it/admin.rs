//! The minimal admin API: login sessions, provider keys (masked, discovered), gateway keys (shown once).

use serde_json::{json, Value};

use crate::harness::*;

pub async fn login(gw: &Gateway) -> String {
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "admin", "password": gw.admin_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

/// The dashboard's script is sent gzip-compressed to clients that accept it, and as is to the others.
#[tokio::test]
async fn dashboard_assets_are_compressed_for_clients_that_accept_gzip() {
    if !web_assets::BUILT {
        eprintln!("dashboard not built into this binary: nothing to compress");
        return;
    }
    let gw = start(&[]).await;
    let html = gw
        .http
        .get(format!("{}/", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start_at = html.find("/assets/").expect("the shell names its script");
    let script: String = html[start_at..].chars().take_while(|c| *c != '"').collect();
    let get = |encoding: Option<&'static str>| {
        let mut r = gw.http.get(format!("{}{script}", gw.url));
        if let Some(e) = encoding {
            r = r.header("accept-encoding", e);
        }
        r.send()
    };
    let plain = get(None).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    let plain = plain.bytes().await.unwrap();
    let gz = get(Some("br, gzip;q=0.8")).await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip", "{script}");
    let gz = gz.bytes().await.unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert!(
        gz.len() * 2 < plain.len(),
        "{} vs {}",
        gz.len(),
        plain.len()
    );
    let refused = get(Some("gzip;q=0")).await.unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn dashboard_shell_and_unknown_paths() {
    let gw = start(&[]).await;
    // `/` and client-side routes get the dashboard's HTML shell (or the fallback page when it was not built).
    for path in ["/", "/keys", "/playground/x"] {
        let page = gw
            .http
            .get(format!("{}{path}", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert!(page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(page.headers().contains_key("content-security-policy"));
        assert!(page.text().await.unwrap().contains("<html"), "{path}");
    }
    // API namespaces and non-GET methods never fall back to HTML.
    for path in ["/v1/nothing", "/api/nothing", "/ws/x"] {
        let missing = gw
            .http
            .get(format!("{}{path}", gw.url))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404, "{path}");
        let body: Value = missing.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    let post = gw
        .http
        .post(format!("{}/keys", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404);
    assert_openai_error(&post.json().await.unwrap(), "not_found");
    let stale = gw
        .http
        .get(format!("{}/assets/gone-1234.js", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
}

#[tokio::test]
async fn ping_is_public() {
    let gw = start(&[]).await;
    let v: Value = gw
        .http
        .get(format!("{}/api/ping", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn login_logout_and_refusals() {
    let gw = start(&[]).await;
    let wrong = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({"username":"admin","password":"nope-nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_openai_error(&wrong.json().await.unwrap(), "invalid_credentials");
    let anon = gw
        .http
        .get(format!("{}/api/keys", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let cookie = login(&gw).await;
    let me: Value = gw
        .http
        .get(format!("{}/api/auth/me", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "admin");
    let out = gw
        .http
        .post(format!("{}/api/auth/logout", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let after = gw
        .http
        .get(format!("{}/api/auth/me", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn provider_key_lifecycle_through_the_api() {
    let gw = start(&[]).await;
    let cookie = login(&gw).await;
    let api = |path: &str| format!("{}/api{path}", gw.url);
    // Without a model list, the endpoint's own list is discovered.
    let created = gw
        .http
        .post(api("/keys"))
        .header("cookie", &cookie)
        .json(&json!({ "platform": "custom", "key": "sk-live-very-secret-value-123", "base_url": gw.mock.base_url("ok"), "label": "local" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["models"], json!(["mock-model", "mock-embed"]));
    assert_eq!(created["masked_key"], "sk-l…-123");
    let id = created["id"].as_str().unwrap().to_owned();
    let listed = gw
        .http
        .get(api("/keys"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains("very-secret"),
        "listing leaked the key: {listed}"
    );
    // Mint a gateway key and use it.
    let minted: Value = gw
        .http
        .post(api("/gateway-keys"))
        .header("cookie", &cookie)
        .json(&json!({"label":"app"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw = minted["key"].as_str().unwrap().to_owned();
    assert!(raw.starts_with("freellmapi-"));
    let gk_id = minted["id"].as_str().unwrap().to_owned();
    let listed = gw
        .http
        .get(api("/gateway-keys"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !listed.contains(&raw[11..]),
        "gateway key shown again: {listed}"
    );
    let chat = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&raw)
        .json(&simple_chat("mock-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // Disable the gateway key: refused at once.
    let r = gw
        .http
        .patch(api(&format!("/gateway-keys/{gk_id}")))
        .header("cookie", &cookie)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let chat = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&raw)
        .json(&simple_chat("mock-model"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 401);
    // Patch the provider key's models; delete it.
    let r = gw
        .http
        .patch(api(&format!("/keys/{id}")))
        .header("cookie", &cookie)
        .json(&json!({"models": ["only-this"], "label": "renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["models"], json!(["only-this"]));
    assert_eq!(v["label"], "renamed");
    let r = gw
        .http
        .delete(api(&format!("/keys/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = gw
        .http
        .delete(api(&format!("/keys/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bad_admin_input_is_refused_in_words() {
    let gw = start(&[]).await;
    let cookie = login(&gw).await;
    let url = format!("{}/api/keys", gw.url);
    let cases = [
        (json!({"platform": "nope", "key": "x"}), "unknown_platform"),
        (json!({"platform": "groq"}), "missing_key"),
        (
            json!({"platform": "custom", "base_url": "ftp://x"}),
            "invalid_key_settings",
        ),
        (
            json!({"platform": "google", "key": "AIza\u{1}bad"}),
            "invalid_key_settings",
        ),
        (
            json!({"platform": "groq", "key": "k", "models": ["auto"]}),
            "invalid_models",
        ),
        (
            json!({"platform": "groq", "key": "k", "surprise": 1}),
            "invalid_body",
        ),
    ];
    for (body, code) in cases {
        let r = gw
            .http
            .post(&url)
            .header("cookie", &cookie)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_openai_error(&r.json().await.unwrap(), code);
    }
    let r = gw
        .http
        .post(&url)
        .header("cookie", &cookie)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test]
async fn keyless_platform_stores_a_marker_without_secret() {
    let gw = start(&[]).await;
    let cookie = login(&gw).await;
    let r = gw
        .http
        .post(format!("{}/api/keys", gw.url))
        .header("cookie", &cookie)
        .json(&json!({"platform": "ovh", "key": "ignored-for-keyless", "models": ["Meta-Llama-3_3-70B-Instruct"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["masked_key"], Value::Null);
    let rows = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    assert!(rows[0].encrypted_secret.is_none());
}
