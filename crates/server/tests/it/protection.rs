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
    // A browser that says the call is cross-site is believed, even with the gateway's own Origin; a configured
    // origin on another site may still call.
    let r = admin
        .request(reqwest::Method::POST, "/api/gateway-keys")
        .header("origin", &own_origin)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "label": "csrf" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = admin
        .request(reqwest::Method::POST, "/api/gateway-keys")
        .header("origin", "https://dash.example.com")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "label": "csrf" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
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

/// Refusals made by the framework itself (a wrong method, a body too large for `/api`, a path that does not
/// decode, `/ws` without an upgrade) come in the API's error shape too, not as plain text or an empty body.
#[tokio::test]
async fn the_frameworks_own_refusals_have_the_error_shape() {
    let gw = start(&[]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let expect = |status: u16, code: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status);
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"),
                "{:?}",
                r.headers()
            );
            let allow = r.headers().get("allow").cloned();
            let body: Value = r.json().await.unwrap();
            assert_openai_error(&body, code);
            (body, allow)
        }
    };
    let r = gw
        .http
        .get(format!("{}/v1/chat/completions", gw.url))
        .send()
        .await
        .unwrap();
    let (body, allow) = expect(405, "method_not_allowed")(r).await;
    assert_eq!(allow.unwrap(), "POST", "the Allow header is kept");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GET is not allowed on /v1/chat/completions"),
        "{body}"
    );
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .header("content-type", "application/json")
        .body(vec![b' '; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    expect(413, "request_too_large")(r).await;
    let r = admin
        .request(reqwest::Method::PATCH, "/api/keys/%FF%FE")
        .json(&json!({ "label": "x" }))
        .send()
        .await
        .unwrap();
    expect(400, "invalid_request")(r).await;
    let r = admin
        .request(reqwest::Method::GET, "/ws")
        .send()
        .await
        .unwrap();
    expect(400, "websocket_upgrade_required")(r).await;
    // Google's shape on the Gemini surface.
    let r = gw
        .http
        .delete(format!("{}/v1beta/models", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 405, "{body}");
    assert!(body["error"]["status"].is_string(), "{body}");
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

/// A database that stops answering (here: another process holding SQLite's write lock) does not hang `/api`: the
/// request gets a 503 in the error shape once `API_TIMEOUT_MS` has passed, and `/v1` is not affected.
#[tokio::test]
async fn a_stalled_database_gets_api_requests_a_503_in_time() {
    use sqlx::Connection;
    let config = server::ServerConfig {
        api_timeout: std::time::Duration::from_millis(400),
        ..fast_config()
    };
    let gw = start_with(config, &[("ok", &["m"])]).await;
    let file = gw.store.sqlite_file().unwrap().to_owned();
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "admin", "password": gw.admin_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_openai_error(&r.json().await.unwrap(), "api_timeout");
    let (status, _, _) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "/v1 reads no database");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "admin", "password": gw.admin_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "answers again once the database does");
}

/// A database that stays locked past its busy timeout is "unavailable" (503, worth a retry), not an internal error.
#[tokio::test]
async fn a_locked_database_is_a_503_not_a_500() {
    use sqlx::Connection;
    let config = server::ServerConfig {
        api_timeout: std::time::Duration::ZERO,
        ..fast_config()
    };
    let gw = start_with(config, &[]).await;
    let file = gw.store.sqlite_file().unwrap().to_owned();
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "admin", "password": gw.admin_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_openai_error(&r.json().await.unwrap(), "database_unavailable");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
}

/// The inference endpoints answer a request without `Origin` from the listener's lane and one with an `Origin` through
/// the router; both must answer alike (status, error shape, `Vary: origin`), the browser one with its CORS header.
#[tokio::test]
async fn the_lane_and_the_router_answer_alike() {
    let gw = start_with(config_with(&["https://dash.example.com"], true), &[]).await;
    let cases: [(&str, Option<&str>, &str, u16, &str); 6] = [
        ("/v1/chat/completions", None, "{}", 401, "missing_api_key"),
        (
            "/v1/chat/completions",
            Some(gw.key.as_str()),
            "{not json",
            400,
            "invalid_json",
        ),
        ("/v1/responses", Some(gw.key.as_str()), "[]", 400, ""),
        ("/v1/messages", None, "{}", 401, ""),
        (
            "/v1/embeddings",
            Some(gw.key.as_str()),
            "{\"model\":1}",
            400,
            "",
        ),
        (
            "/v1/chat/completions",
            Some(gw.key.as_str()),
            "{\"model\":\"nope\",\"messages\":[]}",
            400,
            "",
        ),
    ];
    for (path, key, body, status, code) in cases {
        let mut answers = Vec::new();
        for origin in [None, Some("https://dash.example.com")] {
            let mut r = gw
                .http
                .post(format!("{}{path}", gw.url))
                .header("content-type", "application/json")
                .body(body.to_owned());
            if let Some(k) = key {
                r = r.bearer_auth(k).header("x-api-key", k);
            }
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            let r = r.send().await.unwrap();
            let cors = r.headers().get("access-control-allow-origin").cloned();
            assert_eq!(cors.is_some(), origin.is_some(), "{path} {origin:?}");
            let vary: Vec<_> = r.headers().get_all("vary").iter().cloned().collect();
            assert!(
                vary.iter().any(|v| v == "origin"),
                "{path} {origin:?}: {vary:?}"
            );
            let got = r.status().as_u16();
            let json: Value = r.json().await.unwrap();
            answers.push((got, json));
        }
        assert_eq!(answers[0].0, status, "{path}: {}", answers[0].1);
        assert_eq!(answers[0].0, answers[1].0, "{path}");
        // The same error, word for word (no ids in these refusals).
        assert_eq!(answers[0].1, answers[1].1, "{path}");
        if !code.is_empty() {
            assert_eq!(
                answers[0].1["error"]["code"], code,
                "{path}: {}",
                answers[0].1
            );
        }
    }
}

#[tokio::test]
async fn a_browser_under_a_rebound_host_name_is_refused() {
    let gw = start_with(config_with(&[], true), &[]).await;
    let port = gw.url.rsplit(':').next().unwrap().to_owned();
    let evil = format!("evil.example:{port}");
    let login = |host: &str, origin: Option<String>| {
        let mut r = gw
            .http
            .post(format!("{}/api/auth/login", gw.url))
            .header("host", host)
            .json(&json!({ "username": "admin", "password": gw.admin_password }));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    // A page on a domain that resolves to the gateway: same origin as far as the browser knows.
    let r = login(&evil, Some(format!("http://{evil}"))).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_openai_error(&r.json().await.unwrap(), "host_not_allowed");
    let r = gw
        .http
        .get(format!("{}/api/ping", gw.url))
        .header("host", &evil)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The gateway's own loopback names pass, and so does a client that is not a browser, whatever its Host.
    let own = format!("127.0.0.1:{port}");
    let r = login(&own, Some(format!("http://{own}"))).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = login(
        &format!("localhost:{port}"),
        Some(format!("http://localhost:{port}")),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = login(&evil, None).await.unwrap();
    assert_eq!(r.status(), 200);
}
