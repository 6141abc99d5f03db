//! End-to-end checks of the mock over a raw HTTP/1.1 client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::net::SocketAddr;
use std::time::Duration;

use mock_provider::{MockOptions, MockProvider};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    /// De-chunked body.
    body: Vec<u8>,
    /// Chunked terminator (or full Content-Length) seen.
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    /// SSE `data:` payloads.
    fn events(&self) -> Vec<String> {
        let text = std::str::from_utf8(&self.body).expect("utf8");
        assert!(text.is_empty() || text.ends_with("\n\n") || !self.complete);
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").expect("data prefix").to_owned())
            .collect()
    }
}

fn request_bytes(method: &str, path: &str, extra_headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: mock\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&request_bytes(method, path, headers, body))
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = std::str::from_utf8(&raw[..head_end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let (body, complete) = if chunked {
        dechunk(rest)
    } else {
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(rest.len());
        (rest[..len.min(rest.len())].to_vec(), rest.len() >= len)
    };
    Resp {
        status,
        headers,
        body,
        complete,
    }
}

/// Decodes a chunked body; `complete` is false when the terminating chunk is missing.
fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return (out, data.starts_with(b"\r\n"));
        }
        if data.len() < size + 2 {
            out.extend_from_slice(&data[..size.min(data.len())]);
            return (out, false);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn chat_body(stream: bool) -> String {
    json!({
        "model": "gpt-test",
        "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Say hello please"}],
    })
    .to_string()
}

#[tokio::test]
async fn ok_non_stream_shape_and_recording() {
    let mock = MockProvider::start().await.unwrap();
    assert_eq!(mock.base_url("ok"), format!("http://{}/ok/v1", mock.addr()));
    let resp = send(
        mock.addr(),
        "POST",
        "/ok/v1/chat/completions",
        &[("Authorization", "Bearer sk-up")],
        &chat_body(false),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.complete);
    let v = resp.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "gpt-test");
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["logprobs"].is_null());
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(v["system_fingerprint"], "fp_mock");
    assert_eq!(v["x_mock_extra"]["kept"], true);

    assert_eq!(mock.hits("ok"), 1);
    assert_eq!(mock.hits("other"), 0);
    let reqs = mock.requests("ok");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/ok/v1/chat/completions");
    assert_eq!(reqs[0].header("authorization"), Some("Bearer sk-up"));
    assert!(reqs[0].headers.iter().any(|(k, _)| k == "authorization"));
    assert_eq!(reqs[0].json().unwrap()["model"], "gpt-test");
    assert_eq!(mock.cancelled("ok"), 0);
}

#[tokio::test]
async fn stream_event_sequence_with_usage() {
    let mock = MockProvider::start().await.unwrap();
    let resp = send(
        mock.addr(),
        "POST",
        "/chunks3/v1/chat/completions",
        &[],
        &chat_body(true),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.complete);
    let events = resp.events();
    // role, 3 content, finish, usage, [DONE]
    assert_eq!(events.len(), 7, "{events:?}");
    assert_eq!(events[6], "[DONE]");
    let chunks: Vec<Value> = events[..6]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let id = chunks[0]["id"].as_str().unwrap();
    for c in &chunks {
        assert_eq!(c["id"], id);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-test");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks[1..4]
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["finish_reason"].is_null());
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "tok0 tok1 tok2 ");
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[5]["choices"], json!([]));
    assert_eq!(chunks[5]["usage"]["completion_tokens"], 3);

    // Without include_usage there is no usage chunk; default chunk count comes from the options.
    let body = json!({"model": "m", "stream": true, "messages": []}).to_string();
    let resp = send(mock.addr(), "POST", "/ok/v1/chat/completions", &[], &body).await;
    assert_eq!(resp.events().len(), 1 + 20 + 1 + 1);
}

#[tokio::test]
async fn error_statuses_and_retry_after() {
    let mock = MockProvider::start().await.unwrap();
    for scenario in ["429ra5", "429+ra5"] {
        let path = format!("/{scenario}/v1/chat/completions");
        let resp = send(mock.addr(), "POST", &path, &[], &chat_body(false)).await;
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("retry-after"), Some("5"));
        let v = resp.json();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "mock 429");
        assert_eq!(mock.hits(scenario), 1);
    }
    let resp = send(
        mock.addr(),
        "POST",
        "/503/v1/chat/completions",
        &[],
        &chat_body(true),
    )
    .await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["error"]["type"], "server_error");
    assert_eq!(resp.header("retry-after"), None);
}

#[tokio::test]
async fn rpm_window_refuses_with_retry_after_and_counts() {
    let mock = MockProvider::start().await.unwrap();
    let scenario = "rpm2+rpmw1+id1";
    let path = format!("/{scenario}/v1/chat/completions");
    for remaining in ["1", "0"] {
        let resp = send(mock.addr(), "POST", &path, &[], &chat_body(false)).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-ratelimit-limit-requests"), Some("2"));
        assert_eq!(
            resp.header("x-ratelimit-remaining-requests"),
            Some(remaining)
        );
        assert!(resp
            .header("x-ratelimit-reset-requests")
            .unwrap()
            .ends_with('s'));
    }
    let resp = send(mock.addr(), "POST", &path, &[], &chat_body(false)).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(resp.header("x-ratelimit-remaining-requests"), Some("0"));
    let v = resp.json();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("per minute") && message.contains("Limit 2"),
        "{message}"
    );
    // Another scenario has its own window.
    let other = send(
        mock.addr(),
        "POST",
        "/rpm2+rpmw1+id2/v1/chat/completions",
        &[],
        &chat_body(false),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(mock.hits(scenario), 3);
    assert_eq!(mock.rate_limited(scenario), 1);

    // The window slides: a second later the oldest requests have left it.
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let resp = send(mock.addr(), "POST", &path, &[], &chat_body(false)).await;
    assert_eq!(resp.status, 200);

    let stats = send(mock.addr(), "GET", "/__stats", &[], "").await;
    assert_eq!(stats.status, 200);
    let v = stats.json();
    assert_eq!(v["scenarios"][scenario]["hits"], 4);
    assert_eq!(v["scenarios"][scenario]["rate_limited"], 1);
    assert_eq!(v["scenarios"]["rpm2+rpmw1+id2"]["hits"], 1);
    assert_eq!(v["totals"]["hits"], 5);
    assert_eq!(v["totals"]["rate_limited"], 1);
    assert_eq!(v["totals"]["scripted_errors"], 0);
    assert_eq!(
        v,
        serde_json::from_str::<Value>(&mock.stats_json()).unwrap()
    );

    // `noratehdr`: the same window, no `x-ratelimit-*` headers.
    let path = "/rpm1+noratehdr/v1/chat/completions";
    let ok = send(mock.addr(), "POST", path, &[], &chat_body(false)).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-ratelimit-remaining-requests"), None);
    let refused = send(mock.addr(), "POST", path, &[], &chat_body(false)).await;
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.header("x-ratelimit-limit-requests"), None);
}

#[tokio::test]
async fn every_makes_faults_intermittent() {
    let mock = MockProvider::start().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = send(
            mock.addr(),
            "POST",
            "/500+every3/v1/chat/completions",
            &[],
            &chat_body(false),
        )
        .await;
        statuses.push(resp.status);
    }
    assert_eq!(statuses, [200, 200, 500, 200, 200, 500]);
    let v: Value = serde_json::from_str(&mock.stats_json()).unwrap();
    assert_eq!(v["scenarios"]["500+every3"]["scripted_errors"], 2);

    // `hang+every2`: the first request is answered, the second hangs.
    let first = send(
        mock.addr(),
        "POST",
        "/hang+every2/v1/chat/completions",
        &[],
        &chat_body(false),
    )
    .await;
    assert_eq!(first.status, 200);
    let second = tokio::time::timeout(
        Duration::from_millis(200),
        send(
            mock.addr(),
            "POST",
            "/hang+every2/v1/chat/completions",
            &[],
            &chat_body(false),
        ),
    )
    .await;
    assert!(second.is_err(), "the second request should hang");
}

#[tokio::test]
async fn unknown_directive_is_400_naming_it() {
    let mock = MockProvider::start().await.unwrap();
    let resp = send(
        mock.addr(),
        "POST",
        "/ok+slwo5/v1/chat/completions",
        &[],
        &chat_body(false),
    )
    .await;
    assert_eq!(resp.status, 400);
    let msg = resp.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("slwo5"), "{msg}");
    assert_eq!(mock.hits("ok+slwo5"), 1);
}

#[tokio::test]
async fn stall_then_client_drop_counts_cancelled() {
    let mock = MockProvider::start().await.unwrap();
    let mut stream = TcpStream::connect(mock.addr()).await.unwrap();
    stream
        .write_all(&request_bytes(
            "POST",
            "/stall/v1/chat/completions",
            &[],
            &chat_body(true),
        ))
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&raw).contains("\"role\":\"assistant\"") {
        let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
    }
    // Nothing more arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf))
            .await
            .is_err()
    );
    assert_eq!(mock.cancelled("stall"), 0);
    drop(stream);
    assert!(
        mock.wait_cancelled("stall", 1, Duration::from_secs(2))
            .await
    );
    assert_eq!(mock.cancelled("stall"), 1);
}

#[tokio::test]
async fn hang_and_slow_drop_count_cancelled() {
    let mock = MockProvider::start().await.unwrap();
    for scenario in ["hang", "slow5000", "stallafter1"] {
        let mut stream = TcpStream::connect(mock.addr()).await.unwrap();
        let path = format!("/{scenario}/v1/chat/completions");
        // Non-stream `stallafter` behaves like `hang`.
        stream
            .write_all(&request_bytes("POST", &path, &[], &chat_body(false)))
            .await
            .unwrap();
        // Wait until the request has been received.
        for _ in 0..200 {
            if mock.hits(scenario) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(mock.hits(scenario), 1);
        drop(stream);
        assert!(
            mock.wait_cancelled(scenario, 1, Duration::from_secs(2))
                .await,
            "{scenario}"
        );
    }
}

#[tokio::test]
async fn cut_ends_body_with_error() {
    let mock = MockProvider::start().await.unwrap();
    let resp = send(
        mock.addr(),
        "POST",
        "/cut2/v1/chat/completions",
        &[],
        &chat_body(true),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert!(!resp.complete, "chunked terminator must be missing");
    let events = resp.events();
    assert_eq!(events.len(), 3, "{events:?}"); // role + 2 content chunks
    assert!(!events.iter().any(|e| e == "[DONE]"));
    // A deliberate cut is not a cancellation.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(mock.cancelled("cut2"), 0);
}

#[tokio::test]
async fn auth_directive() {
    let mock = MockProvider::start().await.unwrap();
    let path = "/auth=s3cret/v1/chat/completions";
    let resp = send(mock.addr(), "POST", path, &[], &chat_body(false)).await;
    assert_eq!(resp.status, 401);
    let resp = send(
        mock.addr(),
        "POST",
        path,
        &[("authorization", "Bearer nope")],
        &chat_body(false),
    )
    .await;
    assert_eq!(resp.status, 401);
    let resp = send(
        mock.addr(),
        "POST",
        path,
        &[("authorization", "Bearer s3cret")],
        &chat_body(false),
    )
    .await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn embeddings_models_and_404() {
    let mock = MockProvider::start().await.unwrap();
    let body = json!({"model": "emb", "input": ["a", "bb", "ccc"]}).to_string();
    let resp = send(mock.addr(), "POST", "/ok/v1/embeddings", &[], &body).await;
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "emb");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["index"], 2);
    assert_eq!(data[2]["embedding"], json!([0.1, 0.2, 0.3, 0.4]));
    assert_eq!(v["usage"]["prompt_tokens"], v["usage"]["total_tokens"]);

    let resp = send(mock.addr(), "GET", "/ok/v1/models", &[], "").await;
    assert_eq!(resp.status, 200);
    let v = resp.json();
    assert_eq!(v["data"][0]["id"], "mock-model");
    assert_eq!(v["data"][1]["id"], "mock-embed");

    let resp = send(mock.addr(), "POST", "/ok/v1/nope", &[], "{}").await;
    assert_eq!(resp.status, 404);
    assert!(resp.json()["error"]["message"].is_string());
    let resp = send(mock.addr(), "GET", "/v1/models", &[], "").await;
    assert_eq!(resp.status, 404);
    assert_eq!(mock.hits("ok"), 3);
}

#[tokio::test]
async fn tool_calls() {
    let mock = MockProvider::start().await.unwrap();
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {}}}]);
    let body = json!({"model": "m", "messages": [], "tools": tools}).to_string();
    let v = send(mock.addr(), "POST", "/tool/v1/chat/completions", &[], &body)
        .await
        .json();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_1");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

    let body = json!({"model": "m", "stream": true, "messages": [], "tools": tools}).to_string();
    let resp = send(mock.addr(), "POST", "/tool/v1/chat/completions", &[], &body).await;
    let events = resp.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let mut name = String::new();
    let mut args = String::new();
    for c in &chunks {
        if let Some(calls) = c["choices"][0]["delta"]["tool_calls"].as_array() {
            assert_eq!(calls[0]["index"], 0);
            name += calls[0]["function"]["name"].as_str().unwrap_or("");
            args += calls[0]["function"]["arguments"].as_str().unwrap_or("");
        }
    }
    assert_eq!(name, "lookup");
    assert_eq!(args, "{\"city\":\"Paris\"}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // `tool` without tools in the request: plain answer.
    let v = send(
        mock.addr(),
        "POST",
        "/tool/v1/chat/completions",
        &[],
        &chat_body(false),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock.");
}

#[tokio::test]
async fn stream_variants() {
    let mock = MockProvider::start_on(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        MockOptions {
            stream_chunks: 2,
            record: false,
        },
    )
    .await
    .unwrap();
    let body = json!({"model": "m", "stream": true, "messages": []}).to_string();

    let events = send(
        mock.addr(),
        "POST",
        "/empty/v1/chat/completions",
        &[],
        &body,
    )
    .await
    .events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], "[DONE]");

    let resp = send(
        mock.addr(),
        "POST",
        "/inbanderr/v1/chat/completions",
        &[],
        &body,
    )
    .await;
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    let events = resp.events();
    assert_eq!(events.len(), 1);
    let v: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(v["error"]["message"], "mock in-band error");

    let events = send(
        mock.addr(),
        "POST",
        "/reason+drip1/v1/chat/completions",
        &[],
        &body,
    )
    .await
    .events();
    // role, 2 reasoning, 2 content, finish, [DONE]
    assert_eq!(events.len(), 7, "{events:?}");
    let c1: Value = serde_json::from_str(&events[1]).unwrap();
    assert!(c1["choices"][0]["delta"]["reasoning_content"].is_string());
    let c3: Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(c3["choices"][0]["delta"]["content"], "tok0 ");

    // record=false keeps only the counters.
    assert_eq!(mock.hits("empty"), 1);
    assert!(mock.requests("empty").is_empty());
}
