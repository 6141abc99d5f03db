//! `GET /metrics`: off unless a token is configured, refused without it, and a scrape whose counters match the
//! traffic sent (served, failed over, refused), in the text format Prometheus reads.

use crate::harness::*;

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_the_traffic_and_need_the_token() {
    let off = start(&[("ok", &["m"])]).await;
    let r = off
        .http
        .get(format!("{}/metrics", off.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    off.stop().await;

    let mut config = fast_config();
    config.metrics_token_hash = Some(server::runtime::snapshot::hash_token("scrape-token"));
    let gw = start_with(config, &[("500", &["m"]), ("ok", &["m"])]).await;
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    assert_eq!(gw.chat_json(simple_chat("m")).await.0, 200);
    assert_eq!(gw.chat_json(simple_chat("missing")).await.0, 404);
    let events = sse_events(gw.chat(stream_chat("m")).send().await.unwrap()).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    let scrape = |token: &'static str| {
        gw.http
            .get(format!("{}/metrics", gw.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(scrape("wrong").await.unwrap().status(), 401);
    let r = scrape("scrape-token").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            r#"freellmapi_requests_total{surface="chat",status="success",reason=""}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"freellmapi_requests_total{surface="chat",status="refused",reason="model_not_found"}"#
        ),
        1.0
    );
    // The 500 key failed the first two requests over (one request's 5xx does not cool a key; a second request's
    // does), then rested.
    assert_eq!(
        metric(
            &text,
            r#"freellmapi_upstream_attempt_failures_total{platform="custom",class="server_error"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            r#"freellmapi_request_duration_seconds_count{surface="chat"}"#
        ),
        4.0
    );
    assert_eq!(
        metric(
            &text,
            r#"freellmapi_time_to_first_byte_seconds_bucket{surface="chat",le="+Inf"}"#
        ),
        3.0
    );
    assert!(
        metric(
            &text,
            r#"freellmapi_tokens_total{surface="chat",direction="output"}"#
        ) > 0.0
    );
    assert_eq!(metric(&text, "freellmapi_cooling_candidates"), 1.0);
    assert_eq!(metric(&text, "freellmapi_provider_keys"), 2.0);
    assert_eq!(metric(&text, "freellmapi_queue_depth"), 0.0);
    // No secret, key id or request id in any label.
    assert!(!text.contains(&gw.key) && !text.contains("scrape-token"));
    gw.stop().await;
}
