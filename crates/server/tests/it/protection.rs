//! Inbound protection (CORS, CSRF, security headers) and the URL guard on provider base URLs.

use serde_json::{json, Value};

use crate::accounts::login_as;
use crate::harness::*;

fn config_with(origins: &[&str], allow_private: bool) -> server::ServerConfig {
    server::ServerConfig {
        dashboard_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        allow_private_provider_urls: allow_private,
        ..fast_config()
    }
}

#[tokio::test]
async fn cross_site_requests_with_a_valid_cookie_are_refused() {
    let gw = start_with(config_with(&["https://dash.example.com"], true), &[]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let own_origin = gw.url.clone();
    let attempt = |origin: Option<&str>, referer: Option<&str>| {
        let mut r = admin
            .request(reqwest::Method::POST, "/api/gateway-keys")
            .json(&json!({ "label": "csrf" }));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(o) = referer {
            r = r.header("referer", o);
        }
        r.send()
    };
    let r = attempt(Some("https://evil.example"), None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert_openai_error(&r.json().await.unwrap(), "cross_site_request");
    let r = attempt(None, Some("https://evil.example/page"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = attempt(Some("null"), None).await.unwrap();
    assert_eq!(r.status(), 403);
    // Deleting and logging in are state changes too.
    let r = admin
        .request(reqwest::Method::DELETE, "/api/gateway-keys/x")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .header("origin", "https://evil.example")
        .json(&json!({ "username": "admin", "password": gw.admin_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing was created by the refused calls.
    let (_, list) = admin.call("GET", "/api/gateway-keys", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    // The dashboard's own origin and a configured one pass.
    assert_eq!(
        attempt(Some(&own_origin), None).await.unwrap().status(),
        201
    );
    let r = attempt(Some("https://dash.example.com"), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(
        attempt(None, Some(&format!("{own_origin}/gateway-keys")))
            .await
            .unwrap()
            .status(),
        201
    );
    // Reads are not state changes.
    let r = admin
        .request(reqwest::Method::GET, "/api/gateway-keys")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_preflight_for_allowed_and_refused_origins() {
    let gw = start_with(config_with(&["https://dash.example.com"], true), &[]).await;
    let preflight = |origin: &str, path: &str| {
        gw.http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", gw.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    for path in ["/api/gateway-keys", "/v1/chat/completions"] {
        let ok = preflight("https://dash.example.com", path).await.unwrap();
        assert_eq!(ok.status(), 204, "{path}");
        assert_eq!(
            ok.headers()["access-control-allow-origin"],
            "https://dash.example.com"
        );
        assert!(ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert!(ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("content-type"));
        let refused = preflight("https://evil.example", path).await.unwrap();
        assert_eq!(refused.status(), 403, "{path}");
        assert!(refused
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        assert_openai_error(&refused.json().await.unwrap(), "cors_origin_refused");
    }
}

#[tokio::test]
async fn api_answers_carry_security_headers() {
    let gw = start(&[]).await;
    for path in ["/api/ping", "/api/auth/me", "/api/nothing"] {
        let r = gw
            .http
            .get(format!("{}{path}", gw.url))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
}

async fn add_custom_key(admin: &crate::accounts::Session, base_url: &str) -> (u16, Value) {
    admin
        .call(
            "POST",
            "/api/keys",
            Some(json!({ "platform": "custom", "key": "sk-guard-test-123456", "base_url": base_url, "models": ["m1"] })),
        )
        .await
}

#[tokio::test]
async fn metadata_addresses_are_refused_whatever_the_setting() {
    let gw = start_with(config_with(&[], true), &[]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://[fd00:ec2::254]/v1",
        "http://100.100.100.200/v1",
        "http://[fe80::1]/v1",
        "http://[::ffff:169.254.169.254]/v1",
        "http://0xa9fea9fe/v1",
    ] {
        let (status, body) = add_custom_key(&admin, url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_openai_error(&body, "base_url_refused");
    }
    // Editing an existing key to point at metadata is refused as well.
    let (status, key) = add_custom_key(&admin, &gw.mock.base_url("ok")).await;
    assert_eq!(status, 201, "{key}");
    let id = key["id"].as_str().unwrap();
    let (status, _) = admin
        .call(
            "PATCH",
            &format!("/api/keys/{id}"),
            Some(json!({ "base_url": "http://169.254.169.254/v1" })),
        )
        .await;
    assert_eq!(status, 400);
    // A row planted in the store directly never reaches the routing snapshot.
    add_key(
        &gw.store,
        &gw.user_id,
        "http://169.254.169.254/v1",
        &["planted"],
    )
    .await;
    gw.state.reload().await.unwrap();
    let (status, _, body) = gw.chat_json(simple_chat("planted")).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn loopback_follows_the_setting() {
    let allowed = start_with(config_with(&[], true), &[]).await;
    let admin = login_as(&allowed, "admin", &allowed.admin_password).await;
    let (status, body) = add_custom_key(&admin, &allowed.mock.base_url("ok")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(allowed.chat_json(simple_chat("m1")).await.0, 200);

    let refused = start_with(config_with(&[], false), &[]).await;
    let admin = login_as(&refused, "admin", &refused.admin_password).await;
    for url in [
        refused.mock.base_url("ok"),
        "http://localhost:8080/v1".to_owned(),
        "http://10.0.0.5:8000/v1".to_owned(),
        "http://[::1]:8080/v1".to_owned(),
    ] {
        let (status, body) = add_custom_key(&admin, &url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ALLOW_PRIVATE_PROVIDER_URLS"));
    }
    // A loopback key stored before the setting changed is left out of routing.
    add_key(
        &refused.store,
        &refused.user_id,
        &refused.mock.base_url("ok"),
        &["m1"],
    )
    .await;
    refused.state.reload().await.unwrap();
    let (status, _, _) = refused.chat_json(simple_chat("m1")).await;
    assert_ne!(status, 200);
    // The settings page shows the effective setting and no secrets.
    let (status, settings) = admin.call("GET", "/api/settings", None).await;
    assert_eq!(status, 200);
    assert_eq!(settings["allow_private_provider_urls"], false);
    assert!(settings
        .as_object()
        .unwrap()
        .values()
        .all(|v| !v.is_object() && !v.is_array()));
    let text = settings.to_string().to_lowercase();
    assert!(
        !text.contains("encryption") && !text.contains("password\":\""),
        "{text}"
    );
}
