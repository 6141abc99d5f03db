//! Failover before the commit point: 429, 5xx, connect errors, timeouts and invalid keys move to the next key and
//! cool the failed one; a client's own bad request is returned, not retried.

use std::time::Duration;

use crate::harness::*;

#[tokio::test]
async fn rate_limited_key_fails_over_and_cools_for_retry_after() {
    let gw = start(&[("429ra30", &["m"]), ("ok", &["m"])]).await;
    for _ in 0..4 {
        let (status, headers, body) = gw.chat_json(simple_chat("m")).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers["x-freellmapi-attempts"] == "1" || headers["x-freellmapi-attempts"] == "2");
    }
    // The throttled key was tried once, then rested for its Retry-After.
    assert_eq!(gw.mock.hits("429ra30"), 1);
    assert_eq!(gw.mock.hits("ok"), 4);
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    let cooling = gw
        .state
        .books
        .cooldowns
        .cooldowns_of(&keys[0].id, tokio::time::Instant::now());
    assert_eq!(cooling.len(), 1);
    assert!(
        cooling[0].1 > Duration::from_secs(25) && cooling[0].1 <= Duration::from_secs(30),
        "{cooling:?}"
    );
}

#[tokio::test]
async fn server_errors_and_dead_hosts_fail_over() {
    let gw = start(&[("500", &["m"]), ("503", &["m"]), ("ok", &["m"])]).await;
    // A key whose host refuses connections.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    add_key(&gw.store, &gw.user_id, &dead_url, &["m"]).await;
    gw.state.reload().await.unwrap();
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.mock.hits("ok"), 1);
}

#[tokio::test]
async fn all_rate_limited_gives_429_with_retry_after() {
    let gw = start(&[("429ra7", &["m"]), ("429ra9", &["m"])]).await;
    let r = gw.chat(simple_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((5..=7).contains(&retry), "retry-after {retry}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_openai_error(&body, "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // While both cool, no upstream call is made at all.
    let r = gw.chat(simple_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_openai_error(&r.json().await.unwrap(), "all_keys_cooling");
    assert_eq!(gw.mock.hits("429ra7") + gw.mock.hits("429ra9"), 2);
}

#[tokio::test]
async fn invalid_key_is_skipped_until_edited() {
    let gw = start(&[("401", &["m"]), ("ok", &["m"])]).await;
    for _ in 0..3 {
        assert_eq!(
            gw.chat(simple_chat("m")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(gw.mock.hits("401"), 1, "an invalid key must not be retried");
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    assert!(gw.state.books.cooldowns.is_invalid(&keys[0].id));
    // Editing the key (here: pointing it at a working endpoint) puts it back in rotation.
    let patch = store::ProviderKeyPatch {
        base_url: Some(Some(gw.mock.base_url("ok+chunks5"))),
        ..Default::default()
    };
    gw.store
        .update_provider_key(&gw.user_id, &keys[0].id, &patch)
        .await
        .unwrap();
    gw.state.books.cooldowns.reset_key(&keys[0].id);
    gw.state.reload().await.unwrap();
    for _ in 0..4 {
        assert_eq!(
            gw.chat(simple_chat("m")).send().await.unwrap().status(),
            200
        );
    }
    assert!(gw.mock.hits("ok+chunks5") >= 1);
}

#[tokio::test]
async fn all_keys_invalid_is_reported() {
    let gw = start(&[("401", &["m"]), ("403", &["m"])]).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 502);
    assert_openai_error(&body, "provider_authentication_failed");
    assert!(!body.to_string().contains(PROVIDER_SECRET));
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 503);
    assert_openai_error(&body, "no_provider_available");
}

#[tokio::test]
async fn clients_bad_request_is_returned_not_retried() {
    let gw = start(&[("400", &["m"]), ("ok", &["m"])]).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 400);
    assert_openai_error(&body, "upstream_rejected_request");
    assert_eq!(gw.mock.hits("ok"), 0);
    // A bad request does not cool the key.
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    let now = tokio::time::Instant::now();
    assert!(gw
        .state
        .books
        .cooldowns
        .cooldowns_of(&keys[0].id, now)
        .is_empty());
    assert!(!gw.state.books.cooldowns.is_invalid(&keys[0].id));
    let only = start(&[("400", &["m"])]).await;
    for _ in 0..2 {
        assert_eq!(only.chat_json(simple_chat("m")).await.0, 400);
    }
    assert_eq!(only.mock.hits("400"), 2);
}

#[tokio::test]
async fn slow_first_byte_times_out_and_fails_over() {
    let config = server::ServerConfig {
        upstream_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let gw = start_with(config, &[("slow5000", &["m"]), ("ok", &["m"])]).await;
    let started = std::time::Instant::now();
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        gw.mock
            .wait_cancelled("slow5000", 1, Duration::from_secs(5))
            .await,
        "abandoned upstream call not cancelled"
    );
}

/// An upstream that accepts the request and never sends headers is abandoned after the first-token allowance
/// (streams) or the first-byte deadline (other calls), not held for the whole `upstream_timeout`.
#[tokio::test]
async fn an_upstream_silent_before_its_headers_is_abandoned_early() {
    let config = || server::ServerConfig {
        upstream_timeout: Duration::from_secs(30),
        first_token_stall: Duration::from_millis(300),
        first_byte_timeout: Duration::from_millis(300),
        ..fast_config()
    };
    let gw = start_with(config(), &[("hang", &["m"]), ("ok", &["m"])]).await;
    let started = std::time::Instant::now();
    let response = gw.chat(stream_chat("m")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-freellmapi-attempts"], "2");
    let events = sse_events(response).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(
        started.elapsed() < Duration::from_millis(300 + 2_000),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;

    let gw = start_with(config(), &[("hang", &["m"]), ("ok", &["m"])]).await;
    let started = std::time::Instant::now();
    let (status, headers, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-freellmapi-attempts"], "2");
    assert!(
        started.elapsed() < Duration::from_millis(300 + 2_000),
        "{:?}",
        started.elapsed()
    );
    gw.stop().await;
}

/// One request whose content makes the only key answer 500 ends with its error; the key stays available to
/// everyone else. A 5xx cools a key only once two different requests met one.
#[tokio::test]
async fn one_requests_server_error_does_not_take_the_key_away() {
    let gw = start(&[("500+first1", &["m"])]).await;
    let started = std::time::Instant::now();
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("500"),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Not retried on the same key, and the next client is served at once.
    assert_eq!(gw.mock.hits("500+first1"), 1);
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    gw.stop().await;

    // A key failing for every request is rested after the second request that meets it.
    let gw = start(&[("500", &["m"]), ("ok", &["m"])]).await;
    for _ in 0..4 {
        assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    }
    assert_eq!(gw.mock.hits("500"), 2);
    assert!(gw
        .state
        .books
        .cooldowns
        .cooling_until(
            (
                &gw.store.provider_keys_of(&gw.user_id).await.unwrap()[0].id,
                "m"
            ),
            tokio::time::Instant::now()
        )
        .is_some());
    gw.stop().await;
}

#[tokio::test]
async fn every_attempt_failing_names_the_trail() {
    let gw = start(&[("500", &["m"]), ("502", &["m"])]).await;
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 502);
    assert_openai_error(&body, "upstream_failed");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("server_error 500") && msg.contains("server_error 502"),
        "{msg}"
    );
}

#[tokio::test]
async fn non_json_success_body_fails_over() {
    // An endpoint answering 200 with something that is not JSON (a misconfigured base URL) counts as a failure.
    let gw = start(&[("ok", &["m"])]).await;
    let html = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let html_url = format!("http://{}/v1", html.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = html.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html></html>")
                .await;
        }
    });
    let store = gw.store.clone();
    // Make the HTML key the first candidate: delete and re-add the good one after it.
    let keys = store.provider_keys_of(&gw.user_id).await.unwrap();
    store
        .delete_provider_key(&gw.user_id, &keys[0].id)
        .await
        .unwrap();
    add_key(&store, &gw.user_id, &html_url, &["m"]).await;
    add_key(&store, &gw.user_id, &gw.mock.base_url("ok"), &["m"]).await;
    gw.state.reload().await.unwrap();
    for _ in 0..2 {
        let (status, _, body) = gw.chat_json(simple_chat("m")).await;
        assert_eq!(status, 200, "{body}");
    }
}

fn queue_config(timeout_secs: u64) -> server::ServerConfig {
    server::ServerConfig {
        queue_timeout: std::time::Duration::from_secs(timeout_secs),
        ..fast_config()
    }
}

#[tokio::test]
async fn a_request_waits_in_the_queue_for_a_cooling_key_instead_of_failing() {
    // The only key answers 429 with Retry-After: 1 once, then recovers.
    let gw = start_with(queue_config(10), &[("429ra1+first1", &["m"])]).await;
    let started = std::time::Instant::now();
    let (status, headers, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 200, "{body}");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "the retry honoured Retry-After: {waited:?}"
    );
    assert_eq!(headers["x-freellmapi-attempts"], "2");
    assert_eq!(gw.mock.hits("429ra1+first1"), 2);
    assert_eq!(gw.state.queue.depth(), 0);
}

#[tokio::test]
async fn the_queue_gives_up_at_once_when_nothing_frees_before_its_timeout() {
    // Retry-After 30 s is beyond a 2 s queue timeout: answer 429 now rather than wait for nothing.
    let gw = start_with(queue_config(2), &[("429ra30", &["m"])]).await;
    let started = std::time::Instant::now();
    let r = gw.chat(simple_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((28..=30).contains(&retry), "{retry}");
}

#[tokio::test]
async fn queued_requests_are_served_in_arrival_order_and_leavers_free_their_place() {
    let gw = start_with(queue_config(10), &[("429ra1+first1", &["m"])]).await;
    // Cool the key: the first request takes the 429 and waits.
    let first = {
        let req = gw.chat(simple_chat("m"));
        tokio::spawn(async move { req.send().await.unwrap().status() })
    };
    wait_for_queue_depth(&gw, 1).await;
    // A client that gives up while queued.
    let leaver = gw
        .chat(simple_chat("m"))
        .timeout(std::time::Duration::from_millis(300))
        .send();
    let second = {
        let req = gw.chat(simple_chat("m"));
        tokio::spawn(async move { req.send().await.unwrap().status() })
    };
    let left = leaver.await;
    assert!(
        left.is_err(),
        "the leaver timed out: {:?}",
        left.map(|r| r.status())
    );
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(second.await.unwrap(), 200);
    assert_eq!(gw.state.queue.depth(), 0);
    // The leaver never reached the provider; the other two did, after the one 429.
    assert_eq!(gw.mock.hits("429ra1+first1"), 3);
}

/// Limits set on a key replace the catalog's in every scope its requests fall under, the per-model ones included
/// (`gemini-2.5-flash` is catalogued at 10 rpm per key and model); `no_catalog_limits` drops the catalog's figures.
#[tokio::test]
async fn key_limits_replace_the_catalogs_per_model_figures_too() {
    for limits in [
        store::KeyLimits {
            rpm: Some(1000),
            rpd: Some(100_000),
            tpm: Some(10_000_000),
            ..Default::default()
        },
        store::KeyLimits {
            no_catalog_limits: true,
            ..Default::default()
        },
    ] {
        let gw = start(&[("google:ok", &["gemini-2.5-flash"])]).await;
        let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
        let patch = store::ProviderKeyPatch {
            limits: Some(limits),
            ..Default::default()
        };
        gw.store
            .update_provider_key(&gw.user_id, &keys[0].id, &patch)
            .await
            .unwrap();
        gw.state.reload().await.unwrap();
        for i in 0..12 {
            let (status, _, body) = gw.chat_json(simple_chat("gemini-2.5-flash")).await;
            assert_eq!(status, 200, "request {i} with {limits:?}: {body}");
        }
        gw.stop().await;
    }
    // Without overrides the catalog's 10 per minute holds.
    let gw = start(&[("google:ok", &["gemini-2.5-flash"])]).await;
    for _ in 0..10 {
        assert_eq!(gw.chat_json(simple_chat("gemini-2.5-flash")).await.0, 200);
    }
    assert_eq!(gw.chat_json(simple_chat("gemini-2.5-flash")).await.0, 429);
    gw.stop().await;
}

#[tokio::test]
async fn per_key_rpm_limit_is_enforced_before_sending() {
    let gw = start(&[("ok", &["m"])]).await;
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    let patch = store::ProviderKeyPatch {
        limits: Some(store::KeyLimits {
            rpm: Some(2),
            ..Default::default()
        }),
        ..Default::default()
    };
    gw.store
        .update_provider_key(&gw.user_id, &keys[0].id, &patch)
        .await
        .unwrap();
    gw.state.reload().await.unwrap();
    for _ in 0..2 {
        assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    }
    // The third would exceed the key's 2 requests per minute: refused here, the provider never sees it.
    let r = gw.chat(simple_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((55..=60).contains(&retry), "{retry}");
    assert_openai_error(&r.json().await.unwrap(), "all_keys_cooling");
    assert_eq!(gw.mock.hits("ok"), 2);
}

/// Polls until `depth` requests wait in the queue (bounded: fails after 5 s).
async fn wait_for_queue_depth(gw: &Gateway, depth: usize) {
    for _ in 0..500 {
        if gw.state.queue.depth() == depth {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("queue depth never reached {depth}");
}

/// An upstream that answers every request with a redirect (an LLM API behind a moved base URL).
async fn redirecting_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 308 Permanent Redirect\r\nLocation: https://moved.example/v1/chat/completions\r\n\
                          Content-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn redirects_are_reported_not_followed_and_fail_over() {
    let gw = start(&[]).await;
    let moved = redirecting_upstream().await;
    add_key(&gw.store, &gw.user_id, &moved, &["m"]).await;
    gw.state.reload().await.unwrap();
    let (status, _, body) = gw.chat_json(simple_chat("m")).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("redirected to https://moved.example/v1/chat/completions"),
        "{message}"
    );
    // With a working key next to it, the client never sees the redirect.
    add_key(&gw.store, &gw.user_id, &gw.mock.base_url("ok"), &["m"]).await;
    gw.state.reload().await.unwrap();
    for _ in 0..3 {
        let (status, _, body) = gw.chat_json(simple_chat("m")).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn token_limited_keys_reserve_what_answers_really_use_once_learned() {
    // A 1,200-TPM key answering slowly. Without `max_tokens`, a request used to reserve 1,024 output tokens: two
    // at once did not fit. Once the key's real answer sizes are known, the reservation follows them.
    let gw = start(&[("slow300", &["m"])]).await;
    let keys = gw.store.provider_keys_of(&gw.user_id).await.unwrap();
    let patch = store::ProviderKeyPatch {
        limits: Some(store::KeyLimits {
            tpm: Some(1_200),
            ..Default::default()
        }),
        ..Default::default()
    };
    gw.store
        .update_provider_key(&gw.user_id, &keys[0].id, &patch)
        .await
        .unwrap();
    gw.state.reload().await.unwrap();
    let burst = |n: usize| {
        let gw = &gw;
        async move {
            let requests =
                (0..n).map(|_| async { gw.chat(simple_chat("m")).send().await.unwrap().status() });
            futures_util::future::join_all(requests).await
        }
    };
    // Nothing learned yet: of two concurrent requests one is refused (the queue timeout is zero here).
    let first = burst(2).await;
    assert_eq!(
        first.iter().filter(|s| s.as_u16() == 200).count(),
        1,
        "{first:?}"
    );
    // Learn the key's answer size (the mock's answers are a few tokens), one request at a time.
    for _ in 0..4 {
        assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    }
    // Now five fit at once within the same minute's 1,200 tokens.
    let learned = burst(5).await;
    assert!(learned.iter().all(|s| s.as_u16() == 200), "{learned:?}");
    gw.stop().await;
}
