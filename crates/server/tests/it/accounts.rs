//! Accounts: users managed by the admin, password changes, throttled logins, expired and revoked sessions, and
//! gateway keys with limits and allow-lists — each driven over HTTP.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// A logged-in dashboard session (the cookie, as a browser would send it).
pub struct Session {
    pub base: String,
    pub cookie: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub async fn login_as(gw: &Gateway, username: &str, password: &str) -> Session {
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "login of {username}");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    Session {
        base: gw.url.clone(),
        cookie: cookie.split(';').next().unwrap().to_owned(),
        token: body["token"].as_str().unwrap().to_owned(),
        http: gw.http.clone(),
    }
}

impl Session {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
    }

    /// Sends a call (JSON body for POST/PATCH) and returns the status and the body as JSON (Null when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method: reqwest::Method = method.parse().unwrap();
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }
}

pub async fn create_user(admin: &Session, username: &str, password: &str) -> String {
    let (status, body) = admin
        .call(
            "POST",
            "/api/users",
            Some(json!({ "username": username, "password": password, "role": "user" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn gateway_key_of(session: &Session, body: Value) -> (String, String) {
    let (status, created) = session.call("POST", "/api/gateway-keys", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    )
}

async fn chat_with(
    gw: &Gateway,
    key: &str,
    model: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&simple_chat(model))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap())
}

#[tokio::test]
async fn admin_manages_users_and_others_get_403() {
    let gw = start(&[]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let bob_id = create_user(&admin, "bob", "bob-password-1").await;
    let (status, list) = admin.call("GET", "/api/users", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bob"]);
    assert!(!list.to_string().contains("password"), "{list}");
    // Duplicate names, bad roles and short passwords are refused.
    let (status, _) = admin
        .call(
            "POST",
            "/api/users",
            Some(json!({ "username": "bob", "password": "another-pass" })),
        )
        .await;
    assert_eq!(status, 409);
    let (status, body) = admin
        .call(
            "POST",
            "/api/users",
            Some(json!({ "username": "carol", "password": "x", "role": "user" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = admin
        .call(
            "POST",
            "/api/users",
            Some(json!({ "username": "carol", "password": "long-enough", "role": "root" })),
        )
        .await;
    assert_eq!(status, 400);

    // A non-admin gets 403 on every user-management route.
    let bob = login_as(&gw, "bob", "bob-password-1").await;
    for (method, path, body) in [
        ("GET", "/api/users".to_owned(), None),
        (
            "POST",
            "/api/users".to_owned(),
            Some(json!({ "username": "eve", "password": "eve-password" })),
        ),
        (
            "PATCH",
            format!("/api/users/{bob_id}"),
            Some(json!({ "role": "admin" })),
        ),
        ("DELETE", format!("/api/users/{bob_id}"), None),
    ] {
        let (status, body) = bob.call(method, &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_openai_error(&body, "admin_required");
    }
    // The admin cannot lock themselves out.
    let (_, me) = admin.call("GET", "/api/auth/me", None).await;
    let admin_id = me["id"].as_str().unwrap();
    let (status, _) = admin
        .call(
            "PATCH",
            &format!("/api/users/{admin_id}"),
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = admin
        .call("DELETE", &format!("/api/users/{admin_id}"), None)
        .await;
    assert_eq!(status, 400);
    // Unknown ids are 404.
    let (status, _) = admin.call("DELETE", "/api/users/nope", None).await;
    assert_eq!(status, 404);

    // A password reset by the admin ends bob's sessions; the new password works.
    let (status, body) = admin
        .call(
            "PATCH",
            &format!("/api/users/{bob_id}"),
            Some(json!({ "password": "bob-password-2" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bob.call("GET", "/api/auth/me", None).await.0, 401);
    let bob = login_as(&gw, "bob", "bob-password-2").await;
    assert_eq!(bob.call("GET", "/api/auth/me", None).await.0, 200);
    // Delete: sessions end, login fails.
    assert_eq!(
        admin
            .call("DELETE", &format!("/api/users/{bob_id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(bob.call("GET", "/api/auth/me", None).await.0, 401);
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "bob", "password": "bob-password-2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn disabling_a_user_stops_their_gateway_keys_at_once() {
    let gw = start(&[("ok", &["m1"])]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let dana_id = create_user(&admin, "dana", "dana-password").await;
    let dana = login_as(&gw, "dana", "dana-password").await;
    let (status, _) = dana
        .call(
            "POST",
            "/api/keys",
            Some(json!({ "platform": "custom", "key": "sk-dana-upstream-000111", "base_url": gw.mock.base_url("ok"), "models": ["m1"] })),
        )
        .await;
    assert_eq!(status, 201);
    let (_, key) = gateway_key_of(&dana, json!({ "label": "app" })).await;
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 200);

    let (status, body) = admin
        .call(
            "PATCH",
            &format!("/api/users/{dana_id}"),
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["disabled"], true);
    let (status, _, body) = chat_with(&gw, &key, "m1").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(dana.call("GET", "/api/auth/me", None).await.0, 401);
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "dana", "password": "dana-password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Enabled again: the same key works again.
    admin
        .call(
            "PATCH",
            &format!("/api/users/{dana_id}"),
            Some(json!({ "disabled": false })),
        )
        .await;
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 200);
    // Deleted: refused at once.
    admin
        .call("DELETE", &format!("/api/users/{dana_id}"), None)
        .await;
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 401);
}

#[tokio::test]
async fn password_change_needs_the_current_one_and_ends_other_sessions() {
    let gw = start(&[]).await;
    let first = login_as(&gw, "admin", &gw.admin_password).await;
    let second = login_as(&gw, "admin", &gw.admin_password).await;
    let (status, body) = first
        .call(
            "POST",
            "/api/auth/password",
            Some(
                json!({ "current_password": "not-the-password", "new_password": "new-password-1" }),
            ),
        )
        .await;
    assert_eq!(status, 403);
    assert_openai_error(&body, "wrong_password");
    let (status, body) = first
        .call(
            "POST",
            "/api/auth/password",
            Some(json!({ "current_password": gw.admin_password, "new_password": "short" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = first
        .call(
            "POST",
            "/api/auth/password",
            Some(
                json!({ "current_password": gw.admin_password, "new_password": "new-password-1" }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["other_sessions_ended"], 1);
    assert_eq!(first.call("GET", "/api/auth/me", None).await.0, 200);
    assert_eq!(second.call("GET", "/api/auth/me", None).await.0, 401);
    login_as(&gw, "admin", "new-password-1").await;
}

#[tokio::test]
async fn failed_logins_are_throttled_with_retry_after() {
    let gw = start(&[]).await;
    let attempt = |password: &'static str| {
        gw.http
            .post(format!("{}/api/auth/login", gw.url))
            .json(&json!({ "username": "admin", "password": password }))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong-password").await.unwrap().status(), 401);
    }
    // Locked: even the right password waits, with Retry-After in OpenAI's error shape.
    let r = attempt("admin-password-1").await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert_openai_error(&r.json().await.unwrap(), "too_many_login_attempts");
    // Unknown users are throttled the same way (and cost a hash, so timing does not tell them apart).
    for _ in 0..5 {
        let r = gw
            .http
            .post(format!("{}/api/auth/login", gw.url))
            .json(&json!({ "username": "ghost", "password": "whatever-1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "ghost", "password": "whatever-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn expired_and_revoked_sessions_are_refused() {
    let gw = start(&[]).await;
    let expired = gw
        .store
        .create_session(&gw.user_id, Duration::ZERO)
        .await
        .unwrap();
    let r = gw
        .http
        .get(format!("{}/api/auth/me", gw.url))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let session = login_as(&gw, "admin", &gw.admin_password).await;
    // The bearer form of the same session works until logout.
    let r = gw
        .http
        .get(format!("{}/api/auth/me", gw.url))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = session
        .request(reqwest::Method::POST, "/api/auth/logout")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(session.call("GET", "/api/auth/me", None).await.0, 401);
    // Secure is added behind HTTPS.
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "username": "admin", "password": gw.admin_password }))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.contains("Max-Age="), "{cookie}");
}

#[tokio::test]
async fn gateway_key_rpm_limit_gives_429_with_retry_after() {
    let gw = start(&[("ok", &["m1"])]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let (id, key) = gateway_key_of(&admin, json!({ "label": "limited", "rpm_limit": 2 })).await;
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 200);
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 200);
    let (status, headers, body) = chat_with(&gw, &key, "m1").await;
    assert_eq!(status, 429, "{body}");
    assert_openai_error(&body, "gateway_key_rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Other keys are not affected; lifting the limit takes effect at once.
    assert_eq!(chat_with(&gw, &gw.key, "m1").await.0, 200);
    let (status, row) = admin
        .call(
            "PATCH",
            &format!("/api/gateway-keys/{id}"),
            Some(json!({ "rpm_limit": null })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(row["rpm_limit"], Value::Null);
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 200);
    // Usage is visible in the listing.
    let (_, list) = admin.call("GET", "/api/gateway-keys", None).await;
    let row = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(row["usage"]["requests_last_minute"], 3);
    assert!(row["usage"]["tokens_today"].as_u64().unwrap() > 0, "{row}");
    // Counters reach the store through the background flush.
    gw.state.flush_usage().await;
    let stored = gw
        .store
        .gateway_key(&gw.user_id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.request_count, 3);
    assert!(stored.token_count > 0 && stored.last_used_at.is_some());
}

#[tokio::test]
async fn gateway_key_token_per_day_limit() {
    let gw = start(&[("ok", &["m1"])]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let (_, key) = gateway_key_of(&admin, json!({ "tpd_limit": 5 })).await;
    // The first request is admitted (nothing used yet) and uses more than 5 tokens.
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 200);
    let (status, headers, body) = chat_with(&gw, &key, "m1").await;
    assert_eq!(status, 429, "{body}");
    assert_openai_error(&body, "gateway_key_rate_limited");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("tokens per day"));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    // Invalid limits are refused.
    let (status, _) = admin
        .call(
            "POST",
            "/api/gateway-keys",
            Some(json!({ "tpd_limit": -3 })),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn gateway_key_allow_list_limits_models() {
    let gw = start(&[("ok", &["m1", "m2"])]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let (id, key) = gateway_key_of(&admin, json!({ "allowed_models": ["m2"] })).await;
    let models: Value = gw
        .http
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth(&key)
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
    assert_eq!(ids, ["auto", "m2"]);
    assert_eq!(chat_with(&gw, &key, "m2").await.0, 200);
    let (status, _, body) = chat_with(&gw, &key, "m1").await;
    assert_eq!(status, 403);
    assert_openai_error(&body, "model_not_allowed");
    assert!(body["error"]["message"].as_str().unwrap().contains("m2"));
    let r = gw
        .http
        .get(format!("{}/v1/models/m1", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // `auto` chooses among the allowed models only.
    let (status, headers, _) = chat_with(&gw, &key, "auto").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-freellmapi-model"], "m2");
    // Clearing the list allows everything again; disabling the key refuses it.
    admin
        .call(
            "PATCH",
            &format!("/api/gateway-keys/{id}"),
            Some(json!({ "allowed_models": null })),
        )
        .await;
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 200);
    admin
        .call(
            "PATCH",
            &format!("/api/gateway-keys/{id}"),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 401);
}

#[tokio::test]
async fn refusals_are_counted_per_gateway_key_with_the_latest_reason() {
    let gw = start(&[("ok", &["m1", "m2"])]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let (limited, key) = gateway_key_of(&admin, json!({ "allowed_models": ["m2"] })).await;
    let (other, other_key) = gateway_key_of(&admin, json!({})).await;
    assert_eq!(chat_with(&gw, &key, "m1").await.0, 403);
    assert_eq!(chat_with(&gw, &key, "no-such-model").await.0, 403);
    assert_eq!(chat_with(&gw, &key, "m2").await.0, 200);
    assert_eq!(chat_with(&gw, &other_key, "m1").await.0, 200);
    // Refusals reach the history through its writer, within a fraction of a second.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let listed = loop {
        let (status, list) = admin.call("GET", "/api/gateway-keys", None).await;
        assert_eq!(status, 200);
        let of = |id: &str| {
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["id"] == id)
                .unwrap()
                .clone()
        };
        let (l, o) = (of(&limited), of(&other));
        if l["refused_24h"] == 2 || std::time::Instant::now() > deadline {
            break (l, o);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let (l, o) = listed;
    assert_eq!(l["refused_24h"], 2, "{l}");
    assert_eq!(l["last_refusal"]["code"], "model_not_allowed", "{l}");
    assert!(l["last_refusal"]["at"].as_i64().unwrap() > 0);
    assert_eq!(o["refused_24h"], 0, "{o}");
    assert!(o["last_refusal"].is_null());
}

#[tokio::test]
async fn key_export_imports_into_another_instance_skipping_duplicates() {
    let first = start(&[]).await;
    let admin = login_as(&first, "admin", &first.admin_password).await;
    for (secret, models) in [
        ("sk-export-one-1234567890", json!(["m1"])),
        ("sk-export-two-1234567890", json!(["m2"])),
    ] {
        let (status, _) = admin
            .call(
                "POST",
                "/api/keys",
                Some(json!({ "platform": "custom", "key": secret, "base_url": first.mock.base_url("ok"), "models": models })),
            )
            .await;
        assert_eq!(status, 201);
    }
    // The account password is required.
    let (status, _) = admin
        .call(
            "POST",
            "/api/keys/export",
            Some(json!({ "password": "not-it-at-all" })),
        )
        .await;
    assert_eq!(status, 403);
    let r = admin
        .request(reqwest::Method::POST, "/api/keys/export")
        .json(&json!({ "password": first.admin_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let file = r.text().await.unwrap();
    assert!(!file.contains("sk-export-one"), "the file is encrypted");
    let envelope: Value = serde_json::from_str(&file).unwrap();
    assert_eq!(envelope["version"], 1);
    assert_eq!(envelope["kdf"]["algorithm"], "argon2id");

    // Another instance, another ENCRYPTION_KEY, another user with another password.
    let second = start_with_encryption_key(fast_config(), &[], [77u8; 32]).await;
    let admin2 = login_as(&second, "admin", &second.admin_password).await;
    create_user(&admin2, "erin", "erin-password").await;
    let erin = login_as(&second, "erin", "erin-password").await;
    let (status, body) = erin
        .call(
            "POST",
            "/api/keys/import",
            Some(json!({ "file": file, "password": "wrong-password" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_openai_error(&body, "invalid_export_file");
    let (status, body) = erin
        .call(
            "POST",
            "/api/keys/import",
            Some(json!({ "file": envelope, "password": first.admin_password })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["imported"], 2);
    assert_eq!(body["skipped_duplicates"], 0);
    // Importing again skips both.
    let (_, body) = erin
        .call(
            "POST",
            "/api/keys/import",
            Some(json!({ "file": file, "password": first.admin_password })),
        )
        .await;
    assert_eq!(
        (
            body["imported"].as_u64(),
            body["skipped_duplicates"].as_u64()
        ),
        (Some(0), Some(2))
    );
    // The keys belong to erin only, are masked, and route.
    let (_, keys) = erin.call("GET", "/api/keys", None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
    assert!(!keys.to_string().contains("sk-export-one-1234567890"));
    let (_, admin_keys) = admin2.call("GET", "/api/keys", None).await;
    assert!(admin_keys["data"].as_array().unwrap().is_empty());
    let (_, created) = erin
        .call("POST", "/api/gateway-keys", Some(json!({})))
        .await;
    let (status, _, _) = chat_with(&second, created["key"].as_str().unwrap(), "m2").await;
    assert_eq!(status, 200);
}
