//! Tenancy: user B walks every documented `/api` operation against user A's objects and must get 403/404 and
//! nothing of A's. The same run captures every log line and response body and scans them for secrets (provider
//! keys, gateway keys, passwords, session tokens).

use serde_json::{json, Value};

use crate::accounts::{create_user, login_as, Session};
use crate::harness::*;

const A_SECRET: &str = "sk-alice-upstream-secret-9f8e7d6c5b4a";
const A_KEY_LABEL: &str = "label-of-alice-7731";
const A_GATEWAY_LABEL: &str = "gateway-of-alice-7732";
const A_MODEL: &str = "model-of-alice-7733";
const A_REQUEST_ID: &str = "req-of-alice-7734";
const B_PASSWORD: &str = "bob-password-7735";
const NEW_ADMIN_PASSWORD: &str = "admin-new-password-7736";
const A_PROFILE: &str = "profile-of-alice-7738";
const A_PROXY_LABEL: &str = "proxy-of-alice-7739";

/// Every documented operation, as (method, path template).
fn documented_operations() -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(server::api::openapi::DOCUMENT).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A plausible body for each state-changing call, so the walk gets past body validation to the object lookup.
fn body_for(method: &str, path: &str) -> Option<Value> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    Some(match path {
        "/api/users" => {
            json!({ "username": "mallory", "password": "mallory-password", "role": "admin" })
        }
        "/api/users/{id}" => json!({ "disabled": true, "password": "taken-over-1" }),
        "/api/keys/{id}" => json!({ "label": "stolen", "enabled": false }),
        "/api/profiles" => json!({ "name": "bobs-profile", "models": ["m"] }),
        "/api/profiles/{id}" => {
            json!({ "name": "stolen", "strategy": "failover", "models": ["m"] })
        }
        "/api/proxies" => json!({ "url": "http://127.0.0.1:9", "label": "bobs-proxy" }),
        "/api/proxies/{id}" => json!({ "label": "stolen", "enabled": false }),
        "/api/proxies/bulk" => json!({ "action": "delete", "ids": ["x"] }),
        "/api/gateway-keys/{id}" => json!({ "label": "stolen", "enabled": false }),
        "/api/keys/export" => json!({ "password": B_PASSWORD }),
        "/api/auth/password" => {
            json!({ "current_password": "wrong-current", "new_password": "whatever-123" })
        }
        "/api/auth/login" => json!({ "username": "bob", "password": B_PASSWORD }),
        _ => json!({}),
    })
}

struct Alice {
    key_id: String,
    profile_id: String,
    proxy_id: String,
    gateway_id: String,
    gateway_key: String,
    gateway_prefix: String,
    user_id: String,
}

async fn alice_objects(gw: &Gateway, admin: &Session) -> Alice {
    let (status, key) = admin
        .call(
            "POST",
            "/api/keys",
            Some(json!({ "platform": "custom", "key": A_SECRET, "label": A_KEY_LABEL, "base_url": gw.mock.base_url("ok"), "models": [A_MODEL] })),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let (status, gk) = admin
        .call(
            "POST",
            "/api/gateway-keys",
            Some(json!({ "label": A_GATEWAY_LABEL })),
        )
        .await;
    assert_eq!(status, 201);
    let gateway_key = gk["key"].as_str().unwrap().to_owned();
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gateway_key)
        .header("x-request-id", A_REQUEST_ID)
        .json(&simple_chat(A_MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, me) = admin.call("GET", "/api/auth/me", None).await;
    let (status, profile) = admin
        .call(
            "POST",
            "/api/profiles",
            Some(json!({ "name": A_PROFILE, "models": [A_MODEL] })),
        )
        .await;
    assert_eq!(status, 201, "{profile}");
    // A proxy on a closed loopback port: never reached, nothing leaves the machine.
    let (status, proxy) = admin
        .call(
            "POST",
            "/api/proxies",
            Some(json!({ "url": "http://127.0.0.1:9", "label": A_PROXY_LABEL, "enabled": false })),
        )
        .await;
    assert_eq!(status, 201, "{proxy}");
    Alice {
        profile_id: profile["id"].as_str().unwrap().to_owned(),
        proxy_id: proxy["id"].as_str().unwrap().to_owned(),
        key_id: key["id"].as_str().unwrap().to_owned(),
        gateway_id: gk["id"].as_str().unwrap().to_owned(),
        gateway_prefix: gk["prefix"]
            .as_str()
            .unwrap()
            .trim_end_matches('…')
            .to_owned(),
        gateway_key,
        user_id: me["id"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test]
async fn user_b_gets_nothing_of_user_a_and_no_secret_leaks() {
    // The process-wide capture: this test's lines and those of every other test of this binary run so far.
    let logs = captured_logs();

    let gw = start(&[]).await;
    let admin = login_as(&gw, "admin", &gw.admin_password).await;
    let alice = alice_objects(&gw, &admin).await;
    create_user(&admin, "bob", B_PASSWORD).await;
    let bob = login_as(&gw, "bob", B_PASSWORD).await;
    // Wait (bounded) until the batch writer stored A's request, so history and statistics hold it.
    for _ in 0..500 {
        if gw.state.logs.written() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (_, history) = admin.call("GET", "/api/requests", None).await;
    assert!(history.to_string().contains(A_REQUEST_ID), "{history}");

    let mut bodies: Vec<String> = Vec::new();
    let a_markers = [
        A_SECRET,
        &A_SECRET[A_SECRET.len() - 4..],
        A_KEY_LABEL,
        A_GATEWAY_LABEL,
        A_MODEL,
        A_REQUEST_ID,
        &alice.key_id,
        &alice.gateway_id,
        &alice.gateway_prefix,
        &alice.user_id,
        A_PROFILE,
        A_PROXY_LABEL,
        &alice.profile_id,
        &alice.proxy_id,
    ];
    for (method, template) in documented_operations() {
        if template == "/api/auth/logout" || template == "/ws" || template.starts_with("/v1/") {
            continue;
        }
        let ids: Vec<&str> = if template.contains("{id}") {
            vec![
                &alice.key_id,
                &alice.gateway_id,
                &alice.user_id,
                &alice.profile_id,
                &alice.proxy_id,
            ]
        } else {
            vec![""]
        };
        for id in ids {
            let path = template.replace("{id}", id);
            let (status, body) = bob.call(&method, &path, body_for(&method, &template)).await;
            let text = body.to_string();
            for marker in a_markers {
                assert!(
                    !text.contains(marker),
                    "{method} {path} leaked `{marker}`: {text}"
                );
            }
            if template.contains("{id}") {
                assert!(
                    status == 404 || status == 403,
                    "{method} {path} as another user: {status} {text}"
                );
            }
            if template.starts_with("/api/users") {
                assert_eq!(status, 403, "{method} {path}: {text}");
            }
            bodies.push(text);
        }
    }
    assert!(bodies.len() > 40, "the walk covered {} calls", bodies.len());
    // A's objects are intact and still work.
    let (_, keys) = admin.call("GET", "/api/keys", None).await;
    assert_eq!(keys["data"][0]["label"], A_KEY_LABEL);
    assert_eq!(keys["data"][0]["enabled"], true);
    let (_, gks) = admin.call("GET", "/api/gateway-keys", None).await;
    assert!(gks.to_string().contains(A_GATEWAY_LABEL));
    let (_, users) = admin.call("GET", "/api/users", None).await;
    assert!(!users.to_string().contains("mallory"));
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&alice.gateway_key)
        .json(&simple_chat(A_MODEL))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // B's gateway key does not reach A's models.
    let (_, own) = bob.call("POST", "/api/gateway-keys", Some(json!({}))).await;
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(own["key"].as_str().unwrap())
        .json(&simple_chat(A_MODEL))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(A_SECRET) && !text.contains(A_KEY_LABEL),
        "{text}"
    );

    // More flows for the secret scan: failed logins, a password change, an export and its import.
    let r = gw
        .http
        .post(format!("{}/api/auth/login", gw.url))
        .json(&json!({ "username": "admin", "password": "a-wrong-password-7737" }))
        .send()
        .await
        .unwrap();
    bodies.push(r.text().await.unwrap());
    let (_, body) = admin
        .call(
            "POST",
            "/api/auth/password",
            Some(json!({ "current_password": gw.admin_password, "new_password": NEW_ADMIN_PASSWORD })),
        )
        .await;
    bodies.push(body.to_string());
    let (status, file) = admin
        .call(
            "POST",
            "/api/keys/export",
            Some(json!({ "password": NEW_ADMIN_PASSWORD })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = bob
        .call(
            "POST",
            "/api/keys/import",
            Some(json!({ "file": file, "password": NEW_ADMIN_PASSWORD })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    bodies.push(body.to_string());
    let (_, body) = bob.call("GET", "/api/keys", None).await;
    bodies.push(body.to_string());
    gw.stop().await;

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request finished"), "the capture works");
    let secrets = [
        A_SECRET,
        PROVIDER_SECRET,
        &alice.gateway_key,
        &alice.gateway_key["freellmapi-".len()..],
        "admin-password-1",
        NEW_ADMIN_PASSWORD,
        B_PASSWORD,
        "a-wrong-password-7737",
        "mallory-password",
        "taken-over-1",
        &admin.token,
        &bob.token,
    ];
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "a log line holds a secret: {secret}"
        );
        for body in &bodies {
            assert!(
                !body.contains(secret),
                "a response holds a secret ({secret}): {body}"
            );
        }
    }
}
