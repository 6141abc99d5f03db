//! Outbound proxies end to end: requests really traverse the assigned proxy (HTTP and SOCKS5, with and without
//! credentials), a failing proxy is skipped without cooling the key, the bypass list and the plain-HTTP rule keep
//! traffic direct, the health checker marks and restores, credentials never appear in answers or logs, and the
//! candidate search keeps the live proxies of a mixed list.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use server::proxy::{FindOptions, ProxyUrl, Strategy};
use server::ServerConfig;

use crate::admin::login;
use crate::harness::*;
use crate::proxy_servers::*;

const CHAT_PATH: &str = "/chat/completions";

fn proxy_config(strategy: Strategy) -> ServerConfig {
    let mut config = fast_config();
    config.proxy.strategy = Some(strategy);
    config.proxy.allow_plain_http_loopback = true;
    config.proxy.health_interval = Duration::ZERO;
    config
}

async fn add_proxy(gw: &Gateway, cookie: &str, url: &str) -> Value {
    let r = gw
        .http
        .post(format!("{}/api/proxies", gw.url))
        .header("cookie", cookie)
        .json(&json!({ "url": url, "country": "fr" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn list(gw: &Gateway, cookie: &str) -> Value {
    let r = gw
        .http
        .get(format!("{}/api/proxies", gw.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn find<'a>(list: &'a Value, id: &Value) -> &'a Value {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == *id)
        .unwrap()
}

#[tokio::test]
async fn requests_traverse_the_http_proxy() {
    let gw = start_with(proxy_config(Strategy::RoundRobin), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let proxy = TestProxy::http(None).await;
    let view = add_proxy(&gw, &cookie, &proxy.url()).await;
    assert_eq!(view["country"], "FR");
    for _ in 0..3 {
        let (status, _, body) = gw.chat_json(simple_chat("m")).await;
        assert_eq!(status, 200, "{body}");
    }
    let r = gw.chat(stream_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(sse_events(r).await.last().is_some_and(|e| e == "[DONE]"));
    assert_eq!(proxy.requests_for(CHAT_PATH), 4, "{}", proxy.relayed_text());
    assert_eq!(gw.mock.hits("ok"), 4);
    // The proxy's own client pools its connections: four requests, one connection through the proxy.
    assert_eq!(proxy.targets().len(), 1, "{:?}", proxy.targets());
    // An unrelated admin change reloads the pool but keeps the entry (and its client) of an unchanged proxy.
    let id = view["id"].as_str().unwrap();
    let before = gw.state.proxies.view().by_id.get(id).unwrap().clone();
    add_key(&gw.store, &gw.user_id, &gw.mock.base_url("ok"), &["other"]).await;
    gw.state.reload().await.unwrap();
    assert!(Arc::ptr_eq(
        &before,
        gw.state.proxies.view().by_id.get(id).unwrap()
    ));
    // The key stays on its proxy: one assignment, reused.
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    assert_eq!(
        gw.state.proxies.assigned(&keys[0].id).as_deref(),
        view["id"].as_str()
    );
    let listed = list(&gw, &cookie).await;
    let stats = &find(&listed, &view["id"])["stats"];
    assert_eq!(stats["requests"], 4, "{listed}");
    assert_eq!(stats["successes"], 4);
    assert_eq!(stats["success_rate"], 1.0);
    assert!(stats["bytes_in"].as_u64().unwrap() > 0 && stats["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(listed["settings"]["strategy"], "round-robin");
    // Model discovery goes out through the pool too.
    let created = gw
        .http
        .post(format!("{}/api/keys", gw.url))
        .header("cookie", &cookie)
        .json(&json!({ "platform": "custom", "base_url": gw.mock.base_url("ok") }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["models"], json!(["mock-model", "mock-embed"]));
    assert_eq!(proxy.requests_for("/v1/models"), 1);
}

#[tokio::test]
async fn requests_traverse_the_socks5_proxy_with_credentials() {
    let gw = start_with(proxy_config(Strategy::Random), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let proxy = TestProxy::socks5(Some(("alice", "s0cks-Pa55word"))).await;
    let view = add_proxy(&gw, &cookie, &proxy.url_with("alice", "s0cks-Pa55word")).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.requests_for(CHAT_PATH), 1);
    assert_eq!(
        proxy.targets()[0],
        gw.mock.base_url("ok")[7..].split('/').next().unwrap()
    );
    // Write-only credentials: masked in answers, encrypted at rest.
    let listed = list(&gw, &cookie).await;
    for text in [view.to_string(), listed.to_string()] {
        assert!(!text.contains("s0cks-Pa55word"), "{text}");
    }
    assert_eq!(find(&listed, &view["id"])["credentials"], "al…:****");
    assert_eq!(find(&listed, &view["id"])["url"], proxy.url());
    let rows = gw.store.proxies_of(&gw.user_id).await.unwrap();
    assert!(!rows[0]
        .encrypted_credentials
        .as_deref()
        .unwrap()
        .contains("s0cks"));
}

fn assert_not_cooling(gw: &Gateway, key_id: &str) {
    let now = tokio::time::Instant::now();
    assert!(gw
        .state
        .books
        .cooldowns
        .cooldowns_of(key_id, now)
        .is_empty());
    assert!(!gw.state.books.cooldowns.is_invalid(key_id));
}

#[tokio::test]
async fn failed_proxies_are_skipped_without_cooling_the_key() {
    let gw = start_with(proxy_config(Strategy::RoundRobin), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let key_id = gw.store.provider_keys_of(&gw.user_id).await.unwrap()[0]
        .id
        .clone();
    // Round-robin over creation order: the key first gets the dead proxy.
    let dead = add_proxy(&gw, &cookie, &format!("http://{}", dead_port().await)).await;
    let live = TestProxy::socks5(None).await;
    let live_view = add_proxy(&gw, &cookie, &live.url()).await;
    let mut events = gw.state.events.subscribe();
    let (status, headers, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    // One attempt of the one key: the proxy changed underneath it, and the live feed saw both.
    assert_eq!(headers["x-freellmapi-attempts"], "1");
    let mut proxies_seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        let event: Value = serde_json::from_str(&event.json).unwrap();
        if event["type"] == "request.attempt" {
            assert_eq!(event["attempt"], 1);
            proxies_seen.push(event["proxy"].clone());
        }
    }
    assert_eq!(
        proxies_seen,
        vec![dead["label"].clone(), live_view["label"].clone()]
    );
    assert_eq!(live.requests_for(CHAT_PATH), 1);
    assert_not_cooling(&gw, &key_id);
    assert_eq!(
        gw.state.proxies.assigned(&key_id).as_deref(),
        live_view["id"].as_str()
    );
    let listed = list(&gw, &cookie).await;
    let p = find(&listed, &dead["id"]);
    assert_eq!(p["healthy"], false, "{p}");
    assert_eq!(p["stats"]["proxy_errors"], 1, "{p}");
    assert!(p["stats"]["last_error"].is_string(), "{p}");
    assert_eq!(find(&listed, &live_view["id"])["healthy"], true);
    // The next request goes straight to the live proxy.
    let (status, headers, _) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-freellmapi-attempts"], "1");
    assert_eq!(live.requests_for(CHAT_PATH), 2);

    // A proxy refusing our credentials (407) is a proxy failure too.
    let locked = TestProxy::http(Some(("u", "right"))).await;
    let locked_view = add_proxy(&gw, &cookie, &locked.url_with("u", "wrong")).await;
    let r = gw
        .http
        .patch(format!(
            "{}/api/proxies/{}",
            gw.url,
            live_view["id"].as_str().unwrap()
        ))
        .header("cookie", &cookie)
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 502, "{body}");
    assert_openai_error(&body, "proxy_unavailable");
    assert_eq!(locked.requests_for(CHAT_PATH), 0);
    assert_not_cooling(&gw, &key_id);
    let listed = list(&gw, &cookie).await;
    let p = find(&listed, &locked_view["id"]);
    assert_eq!(p["healthy"], false, "{p}");
    assert!(!p.to_string().contains("wrong"), "{p}");
}

#[tokio::test]
async fn every_proxy_failing_is_a_proxy_error_not_a_key_error() {
    let gw = start_with(proxy_config(Strategy::RoundRobin), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    add_proxy(&gw, &cookie, &format!("socks5://{}", dead_port().await)).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 502, "{body}");
    assert_openai_error(&body, "proxy_unavailable");
    assert_eq!(gw.mock.hits("ok"), 0);
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    assert_not_cooling(&gw, &keys[0].id);
    // With direct fallback allowed, the same request goes out direct.
    let r = gw
        .http
        .put(format!("{}/api/proxies/settings", gw.url))
        .header("cookie", &cookie)
        .json(&json!({ "direct_fallback": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.mock.hits("ok"), 1);
}

#[tokio::test]
async fn bypass_list_and_plain_http_rule_go_direct() {
    let gw = start_with(proxy_config(Strategy::RoundRobin), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let proxy = TestProxy::http(None).await;
    add_proxy(&gw, &cookie, &proxy.url()).await;
    let r = gw
        .http
        .put(format!("{}/api/proxies/settings", gw.url))
        .header("cookie", &cookie)
        .json(&json!({ "bypass": "custom, groq" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["bypass"],
        json!(["custom", "groq"])
    );
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    assert_eq!(proxy.requests_for(CHAT_PATH), 0);
    assert_eq!(gw.mock.hits("ok"), 1);
    // Unknown platforms are refused.
    let r = gw
        .http
        .put(format!("{}/api/proxies/settings", gw.url))
        .header("cookie", &cookie)
        .json(&json!({ "bypass": ["nope"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Without the loopback opt-in, a plain-HTTP upstream never goes through a proxy.
    let mut config = proxy_config(Strategy::RoundRobin);
    config.proxy.allow_plain_http_loopback = false;
    let gw = start_with(config, &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    add_proxy(&gw, &cookie, &proxy.url()).await;
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    assert_eq!(proxy.requests_for(CHAT_PATH), 0);
}

#[tokio::test]
async fn health_checker_marks_and_restores() {
    // The probe target: a loopback stand-in for the real one.
    let (target, _target_task) = json_server("{}").await;
    let mut config = proxy_config(Strategy::RoundRobin);
    config.proxy.unhealthy_after = 2;
    config.proxy.healthy_after = 2;
    config.proxy.health_timeout = Duration::from_secs(2);
    config.proxy.health_target = target;
    let gw = start_with(config, &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let proxy = TestProxy::http(None).await;
    let view = add_proxy(&gw, &cookie, &proxy.url()).await;
    let id = view["id"].as_str().unwrap();
    let entry = gw.state.proxies.view().by_id.get(id).unwrap().clone();
    let pool = &gw.state.proxies;
    proxy.set_failing(true);
    pool.check_all().await;
    assert!(entry.health.is_healthy(), "one failure is not enough");
    pool.check_all().await;
    assert!(!entry.health.is_healthy());
    proxy.set_failing(false);
    pool.check_all().await;
    assert!(!entry.health.is_healthy(), "one success is not enough");
    pool.check_all().await;
    assert!(entry.health.is_healthy());
    assert!(entry.health.latency_ms().is_some());
    // Testing on demand goes through the same probe, one proxy or many.
    let r = gw
        .http
        .post(format!("{}/api/proxies/{id}/test", gw.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["ok"], true, "{result}");
    proxy.set_failing(true);
    let r = gw
        .http
        .post(format!("{}/api/proxies/bulk", gw.url))
        .header("cookie", &cookie)
        .json(&json!({ "action": "test", "ids": [id, "unknown"] }))
        .send()
        .await
        .unwrap();
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["affected"], 1, "{result}");
    assert_eq!(result["results"][0]["ok"], false, "{result}");
}

#[tokio::test]
async fn bulk_actions_and_import() {
    let gw = start_with(proxy_config(Strategy::RoundRobin), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let text = "# found\nsocks5://10.0.0.1:1080 FR\nhttp://u:pw-secret@10.0.0.2:3128\n10.0.0.3:8080 de\nnot a proxy\nsocks5://10.0.0.1:1080\n";
    let r = gw
        .http
        .post(format!("{}/api/proxies/import", gw.url))
        .header("cookie", &cookie)
        .header("content-type", "text/plain")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["added"], 3, "{report}");
    assert_eq!(report["skipped"], 1, "{report}");
    assert_eq!(report["errors"][0]["line"], 5, "{report}");
    let listed = list(&gw, &cookie).await;
    assert!(!listed.to_string().contains("pw-secret"));
    let ids: Vec<Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(listed["data"][2]["country"], "DE");
    let bulk = |action: &str, ids: Vec<Value>| {
        gw.http
            .post(format!("{}/api/proxies/bulk", gw.url))
            .header("cookie", &cookie)
            .json(&json!({ "action": action, "ids": ids }))
            .send()
    };
    let r: Value = bulk("disable", ids.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["affected"], 3);
    assert!(
        gw.state.proxies.view().by_user.is_empty(),
        "disabled proxies are out of rotation"
    );
    let r: Value = bulk("enable", ids[..1].to_vec())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["affected"], 1);
    assert_eq!(bulk("explode", ids.clone()).await.unwrap().status(), 400);
    let r: Value = bulk("delete", ids.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["affected"], 3);
    assert!(list(&gw, &cookie).await["data"]
        .as_array()
        .unwrap()
        .is_empty());
    // Invalid URLs are refused with the reason.
    let r = gw
        .http
        .post(format!("{}/api/proxies", gw.url))
        .header("cookie", &cookie)
        .json(&json!({ "url": "ftp://10.0.0.1:21" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn proxy_credentials_are_never_logged() {
    let buffer = captured_logs();
    let gw = start_with(proxy_config(Strategy::RoundRobin), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    let locked = TestProxy::http(Some(("bob", "right-Secret"))).await;
    add_proxy(&gw, &cookie, &locked.url_with("bob", "Wr0ng-Secret")).await;
    add_proxy(
        &gw,
        &cookie,
        &format!("socks5://carol:Dead-Secret@{}", dead_port().await),
    )
    .await;
    let good = TestProxy::http(Some(("dave", "Go0d-Secret"))).await;
    add_proxy(&gw, &cookie, &good.url_with("dave", "Go0d-Secret")).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(good.requests_for(CHAT_PATH), 1);
    let listed = list(&gw, &cookie).await.to_string();
    gw.stop().await;
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("outbound proxy failed"),
        "the failures were logged: {logs}"
    );
    for secret in ["Wr0ng-Secret", "Dead-Secret", "Go0d-Secret"] {
        assert!(!logs.contains(secret), "{secret} logged: {logs}");
        assert!(!listed.contains(secret), "{secret} returned: {listed}");
    }
}

#[tokio::test]
async fn find_keeps_the_live_proxies_of_a_mixed_list() {
    let mock = mock_provider::MockProvider::start().await.unwrap();
    let http_proxy = TestProxy::http(None).await;
    let socks_proxy = TestProxy::socks5(Some(("f", "find-pass"))).await;
    let (geo, _geo_task) = json_server(r#"{"ip":"192.0.2.1","country_code":"fr"}"#).await;
    let list = format!(
        "# candidates\n{}\n{}\nhttp://{}\nsocks5://{}\n127.0.0.1:{}\ngarbage line\n",
        http_proxy.url(),
        socks_proxy.url_with("f", "find-pass"),
        dead_port().await,
        dead_port().await,
        dead_port().await.port(),
    );
    let (candidates, rejected) = server::proxy::parse_candidates(&list);
    assert_eq!(candidates.len(), 5);
    assert_eq!(rejected, vec!["garbage".to_owned()]);
    let options = FindOptions {
        target: format!("{}/models", mock.base_url("ok")),
        timeout: Duration::from_secs(3),
        concurrency: 2,
        geo_url: Some(geo),
        countries: vec!["FR".into()],
        connect_timeout: Duration::from_secs(2),
        trust: server::trust::TrustStore::platform(),
    };
    let started = std::time::Instant::now();
    let found = server::proxy::find_working(candidates.clone(), &options).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut urls: Vec<String> = found.iter().map(|f| f.url.address()).collect();
    urls.sort();
    let mut expected = vec![http_proxy.url(), socks_proxy.url()];
    expected.sort();
    assert_eq!(urls, expected);
    assert!(found.iter().all(|f| f.country.as_deref() == Some("FR")));
    // The probes really went through the proxies.
    assert!(http_proxy.requests_for("/models") >= 1);
    assert!(socks_proxy.requests_for("/models") >= 1);
    // The output is the import format: it parses back to the same proxies, credentials included.
    let text = server::proxy::import_format(&found);
    let (again, rejected) = server::proxy::parse_candidates(&text);
    assert!(rejected.is_empty());
    assert_eq!(again.len(), 2);
    assert!(again.iter().any(|u| u.credentials() == Some("f:find-pass")));
    assert!(text.lines().skip(1).all(|l| l.ends_with(" FR")), "{text}");
    // A country filter nobody matches keeps nothing.
    let options = FindOptions {
        countries: vec!["JP".into()],
        ..options
    };
    assert!(server::proxy::find_working(candidates, &options)
        .await
        .is_empty());
    let _ = ProxyUrl::parse(&http_proxy.url()).unwrap();
}

#[tokio::test]
async fn proxy_urls_pass_the_outbound_address_guard() {
    let gw = start_with(proxy_config(Strategy::RoundRobin), &[("ok", &["m"])]).await;
    let cookie = login(&gw).await;
    for url in [
        "http://169.254.169.254:80",
        "socks5://[::169.254.169.254]:1080",
        "http://[2002:a9fe:a9fe::1]:3128",
        "http://metadata.google.internal:80",
    ] {
        let r = gw
            .http
            .post(format!("{}/api/proxies", gw.url))
            .header("cookie", &cookie)
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{url}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "proxy_url_refused", "{url}: {body}");
        // The import refuses the same lines.
        let r = gw
            .http
            .post(format!("{}/api/proxies/import", gw.url))
            .header("cookie", &cookie)
            .header("content-type", "text/plain")
            .body(url.to_owned())
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["added"], 0, "{url}: {body}");
    }
    assert_eq!(
        list(&gw, &cookie).await["data"].as_array().unwrap().len(),
        0
    );
    gw.stop().await;
}
