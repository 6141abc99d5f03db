//! Streaming: relay, the first-token watchdog before the commit point, the inactivity timeout after it, broken
//! streams, and cancellation when the client leaves.

use std::time::Duration;

use futures_util::StreamExt;

use crate::harness::*;

fn stream_config() -> server::ServerConfig {
    server::ServerConfig {
        first_token_stall: Duration::from_millis(300),
        stream_idle_timeout: Duration::from_millis(300),
        ..fast_config()
    }
}

fn contents(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn stream_is_relayed_with_usage_and_done() {
    let gw = start(&[("ok", &["m"])]).await;
    let r = gw.chat(stream_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["x-freellmapi-provider"], "custom");
    let events = sse_events(r).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(contents(&events).starts_with("tok0 tok1 "));
    let usage: Vec<_> = events.iter().filter(|e| e.contains("\"usage\"")).collect();
    assert_eq!(usage.len(), 1, "include_usage chunk relayed once");
    let sent = gw.mock.requests("ok")[0].json().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn tool_call_and_reasoning_deltas_count_as_first_token() {
    // Chunks 200 ms apart with a 300 ms first-token budget: if the tool or reasoning delta did not count as the first
    // token, the next chunk would come too late and the (only) key would be abandoned.
    let config = server::ServerConfig {
        stream_idle_timeout: Duration::from_secs(5),
        ..stream_config()
    };
    let gw = start_with(
        config,
        &[
            ("tool+drip200+chunks2", &["m"]),
            ("reason+drip200+chunks2", &["r"]),
        ],
    )
    .await;
    let mut body = stream_chat("m");
    body["tools"] = serde_json::json!([{ "type": "function", "function": { "name": "lookup", "parameters": {} } }]);
    let events = sse_events(gw.chat(body).send().await.unwrap()).await;
    assert!(
        events.iter().any(|e| e.contains("tool_calls")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"finish_reason\":\"tool_calls\"")),
        "{events:?}"
    );
    let events = sse_events(gw.chat(stream_chat("r")).send().await.unwrap()).await;
    assert!(events.iter().any(|e| e.contains("reasoning_content")));
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn stall_before_first_token_fails_over_invisibly() {
    let gw = start_with(stream_config(), &[("stall", &["m"]), ("ok", &["m"])]).await;
    let r = gw.chat(stream_chat("m")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-freellmapi-attempts"], "2");
    let events = sse_events(r).await;
    assert!(contents(&events).starts_with("tok0"));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.contains("\"role\":\"assistant\""))
            .count(),
        1,
        "stalled key's bytes leaked"
    );
    assert!(
        gw.mock
            .wait_cancelled("stall", 1, Duration::from_secs(5))
            .await
    );
}

#[tokio::test]
async fn empty_stream_and_in_band_error_fail_over() {
    let gw = start_with(
        stream_config(),
        &[("empty", &["m"]), ("inbanderr", &["m"]), ("ok", &["m"])],
    )
    .await;
    let r = gw.chat(stream_chat("m")).send().await.unwrap();
    assert_eq!(r.headers()["x-freellmapi-attempts"], "3");
    let events = sse_events(r).await;
    assert!(!events.iter().any(|e| e.contains("error")), "{events:?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn stall_after_first_token_ends_with_error_event() {
    let gw = start_with(stream_config(), &[("stallafter3", &["m"]), ("ok", &["m"])]).await;
    let started = std::time::Instant::now();
    let events = sse_events(gw.chat(stream_chat("m")).send().await.unwrap()).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(contents(&events), "tok0 tok1 tok2 ");
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_stalled");
    assert_eq!(gw.mock.hits("ok"), 0, "no failover after the commit point");
    assert!(
        gw.mock
            .wait_cancelled("stallafter3", 1, Duration::from_secs(5))
            .await
    );
}

#[tokio::test]
async fn broken_stream_ends_with_error_event() {
    let gw = start_with(stream_config(), &[("cut3", &["m"])]).await;
    let events = sse_events(gw.chat(stream_chat("m")).send().await.unwrap()).await;
    assert_eq!(contents(&events), "tok0 tok1 tok2 ");
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    let code = last["error"]["code"].as_str().unwrap();
    assert!(
        code == "upstream_stream_broken" || code == "upstream_stream_incomplete",
        "{last}"
    );
}

#[tokio::test]
async fn client_leaving_mid_stream_cancels_upstream() {
    let config = server::ServerConfig {
        stream_idle_timeout: Duration::from_secs(60),
        ..stream_config()
    };
    let gw = start_with(config, &[("stallafter2", &["m"])]).await;
    let r = gw.chat(stream_chat("m")).send().await.unwrap();
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    assert!(
        gw.mock
            .wait_cancelled("stallafter2", 1, Duration::from_secs(5))
            .await,
        "upstream not cancelled"
    );
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 5).await.unwrap();
    assert_eq!(rows[0]["status"], "canceled", "{rows:?}");
}

#[tokio::test]
async fn client_leaving_while_waiting_cancels_upstream() {
    let config = server::ServerConfig {
        upstream_timeout: Duration::from_secs(60),
        ..fast_config()
    };
    let gw = start_with(config, &[("hang", &["m"])]).await;
    let attempt = gw
        .chat(simple_chat("m"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(attempt.is_err(), "expected the client-side timeout");
    assert!(
        gw.mock
            .wait_cancelled("hang", 1, Duration::from_secs(5))
            .await,
        "upstream call outlived the client"
    );
}

#[tokio::test]
async fn a_key_that_breaks_streams_after_the_commit_point_loses_its_traffic() {
    let gw = start_with(stream_config(), &[("cut3", &["m"]), ("ok", &["m"])]).await;
    let mut broken = 0;
    for _ in 0..12 {
        let r = gw.chat(stream_chat("m")).send().await.unwrap();
        let events = sse_events(r).await;
        if events.iter().any(|e| e.contains("upstream_stream_")) {
            broken += 1;
        }
    }
    // The first break cools the key; the rest go to the healthy one.
    assert!(broken <= 1, "{broken} of 12 streams broke");
    gw.stop().await;
}

#[tokio::test]
async fn a_stream_without_usage_is_counted_from_its_text_not_its_delta_count() {
    let gw = start_with(stream_config(), &[("chunks40", &["m"])]).await;
    let body = serde_json::json!({
        "model": "m", "stream": true, "messages": [{ "role": "user", "content": "Say hello" }]
    });
    let events = sse_events(gw.chat(body).send().await.unwrap()).await;
    let text = contents(&events);
    assert_eq!(text.len(), 230, "{text}");
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 1).await.unwrap();
    let output = rows[0]["output_tokens"].as_u64().unwrap();
    // 230 bytes of text are about 58 tokens; the 40 deltas were what used to be recorded.
    assert!((52..=64).contains(&output), "output_tokens {output}");
}

/// On a platform that honours `stream_options.include_usage`, the gateway asks for the usage the client did not:
/// the history (and the limit ledger) get the provider's token counts, and the client gets exactly the stream it
/// asked for, without the extra usage chunk.
#[tokio::test]
async fn usage_the_client_did_not_ask_for_is_asked_for_upstream_and_not_relayed() {
    let gw = start_with(stream_config(), &[("groq:chunks40", &["m"])]).await;
    let body = serde_json::json!({
        "model": "m", "stream": true, "messages": [{ "role": "user", "content": "Say hello" }]
    });
    let r = gw.chat(body).send().await.unwrap();
    assert_eq!(r.headers()["x-freellmapi-provider"], "groq");
    let events = sse_events(r).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert_eq!(contents(&events).len(), 230);
    assert!(
        !events.iter().any(|e| e.contains("\"usage\"")),
        "no usage chunk for a client that did not ask: {events:?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| *e != "[DONE]")
            .all(|e| e.contains("\"choices\":[{")),
        "every relayed chunk has a choice: {events:?}"
    );
    let sent = gw.mock.requests("chunks40")[0].json().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 1).await.unwrap();
    // The provider's count (the mock reports one token per delta), not the estimate from the text (about 58).
    assert_eq!(rows[0]["output_tokens"], 40, "{}", rows[0]);
}
