//! The fault matrix: each upstream fault the relay must survive (429 storms, hangs before the headers, stalls
//! before and after the first token, mid-stream resets, 5xx, 401, in-band errors, slow upstreams) and each client
//! behaviour (slow readers, clients that vanish mid-stream), streamed and not. Every request is tagged and checked
//! on its own:
//! - the client got exactly one of a full answer, an OpenAI-style error, or a stream ended by a terminal SSE error
//!   event (never a stream that just stops, never an error in another shape);
//! - the upstream answered it at most once (never a second key after one had started answering), and exactly once
//!   for a full answer;
//! - request history has exactly one row for it, whose status agrees with what the client saw.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn matrix_config() -> server::ServerConfig {
    server::ServerConfig {
        upstream_timeout: Duration::from_millis(800),
        first_token_stall: Duration::from_millis(400),
        stream_idle_timeout: Duration::from_millis(400),
        ..fast_config()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    /// Reads the whole answer at once.
    Normal,
    /// Waits 20 ms between reads of a stream.
    Slow,
    /// Goes away after the first bytes of a stream.
    Vanishing,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Full,
    /// An OpenAI-style error: status and code.
    Error(u16, String),
    /// A 200 stream whose last event (before `[DONE]`) is an error object: its code.
    StreamError(String),
    /// The client left on purpose.
    Left,
}

struct Case {
    name: &'static str,
    /// Provider keys for model `m`, as mock scenarios.
    keys: &'static [&'static str],
    /// Scenarios that answer 200 with content (a stream counts once it started): the upstream answers.
    producing: &'static [&'static str],
    stream: bool,
    client: Client,
    allowed: fn(&Outcome) -> bool,
}

fn full(o: &Outcome) -> bool {
    *o == Outcome::Full
}

fn full_or_stream_error(o: &Outcome) -> bool {
    matches!(o, Outcome::Full | Outcome::StreamError(_))
}

fn rate_limited(o: &Outcome) -> bool {
    matches!(o, Outcome::Error(429, _))
}

fn server_side_error(o: &Outcome) -> bool {
    matches!(o, Outcome::Error(s, _) if (500..600).contains(s))
}

fn left(o: &Outcome) -> bool {
    *o == Outcome::Left
}

const CASES: &[Case] = &[
    Case {
        name: "429-storm-with-a-spare-key",
        keys: &["429ra1+id1", "429ra1+id2", "ok"],
        producing: &["ok"],
        stream: false,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "429-everywhere",
        keys: &["429ra30+id1", "429ra30+id2"],
        producing: &[],
        stream: false,
        client: Client::Normal,
        allowed: rate_limited,
    },
    Case {
        name: "hang-before-headers",
        keys: &["hang", "ok"],
        producing: &["ok"],
        stream: false,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "hang-on-the-only-key",
        keys: &["hang"],
        producing: &[],
        stream: true,
        client: Client::Normal,
        allowed: server_side_error,
    },
    Case {
        name: "stall-before-first-token",
        keys: &["stall", "ok"],
        producing: &["ok"],
        stream: true,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "stall-after-first-token",
        keys: &["stallafter3", "ok"],
        producing: &["stallafter3", "ok"],
        stream: true,
        client: Client::Normal,
        allowed: full_or_stream_error,
    },
    Case {
        name: "mid-stream-reset",
        keys: &["cut3", "ok"],
        producing: &["cut3", "ok"],
        stream: true,
        client: Client::Normal,
        allowed: full_or_stream_error,
    },
    Case {
        name: "server-errors-non-streamed",
        keys: &["500+id1", "503+id2", "ok"],
        producing: &["ok"],
        stream: false,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "server-errors-streamed",
        keys: &["502+id1", "500+id2", "ok"],
        producing: &["ok"],
        stream: true,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "revoked-provider-key",
        keys: &["auth=other-secret", "ok"],
        producing: &["ok"],
        stream: false,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "in-band-error-before-first-token",
        keys: &["inbanderr", "ok"],
        producing: &["ok"],
        stream: true,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "slow-upstream",
        keys: &["slow250"],
        producing: &["slow250"],
        stream: false,
        client: Client::Normal,
        allowed: full,
    },
    Case {
        name: "slow-reader",
        keys: &["ok+chunks30"],
        producing: &["ok+chunks30"],
        stream: true,
        client: Client::Slow,
        allowed: full,
    },
    Case {
        name: "vanishing-client",
        keys: &["drip100+chunks20"],
        producing: &["drip100+chunks20"],
        stream: true,
        client: Client::Vanishing,
        allowed: left,
    },
];

const PER_CASE: usize = 6;

/// What the client saw, classified; anything outside the three documented endings is a failure with the reason.
async fn outcome(r: reqwest::Response, stream: bool, client: Client) -> Result<Outcome, String> {
    let status = r.status().as_u16();
    let is_sse = r
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if status != 200 {
        let body: Value = r
            .json()
            .await
            .map_err(|e| format!("{status} with a body that is not JSON: {e}"))?;
        let err = &body["error"];
        if err["message"].as_str().is_none_or(|m| m.is_empty()) || !err["type"].is_string() {
            return Err(format!("{status} not in the OpenAI error shape: {body}"));
        }
        return Ok(Outcome::Error(
            status,
            err["code"].as_str().unwrap_or("").to_owned(),
        ));
    }
    if !stream {
        let body: Value = r.json().await.map_err(|e| format!("200 not JSON: {e}"))?;
        return match body["choices"][0]["message"]["content"].as_str() {
            Some(c) if !c.is_empty() => Ok(Outcome::Full),
            _ => Err(format!("200 without an answer: {body}")),
        };
    }
    if !is_sse {
        return Err("a streamed request answered 200 without text/event-stream".into());
    }
    let mut r = r;
    let mut text = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(bytes)) => {
                text.extend_from_slice(&bytes);
                match client {
                    Client::Vanishing => return Ok(Outcome::Left),
                    Client::Slow => tokio::time::sleep(Duration::from_millis(20)).await,
                    Client::Normal => {}
                }
            }
            Ok(None) => break,
            Err(e) => return Err(format!("the stream failed at the client: {e}")),
        }
    }
    let text = String::from_utf8(text).map_err(|_| "a stream that is not UTF-8".to_string())?;
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: "))
        .collect();
    // A full stream ends with `[DONE]`; one that failed after the commit point ends with its error event (the
    // gateway, like OpenAI, sends no `[DONE]` after it).
    let done = events.last() == Some(&"[DONE]");
    let before = if done {
        &events[..events.len() - 1]
    } else {
        &events[..]
    };
    let parsed: Vec<Value> = before
        .iter()
        .map(|e| serde_json::from_str(e).map_err(|_| format!("an event that is not JSON: {e}")))
        .collect::<Result<_, _>>()?;
    let errors: Vec<usize> = (0..parsed.len())
        .filter(|&i| parsed[i].get("error").is_some())
        .collect();
    match errors[..] {
        [] if !done => Err(format!(
            "a stream that just stops after: {:?}",
            before.last()
        )),
        [] => {
            let content: String = parsed
                .iter()
                .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
                .collect();
            if content.is_empty() {
                return Err("a stream with no content and no error".into());
            }
            Ok(Outcome::Full)
        }
        [i] if i + 1 == parsed.len() => {
            let e = &parsed[i]["error"];
            if !e["message"].is_string() || !e["type"].is_string() {
                return Err(format!(
                    "a terminal error event not in the OpenAI shape: {e}"
                ));
            }
            Ok(Outcome::StreamError(
                e["code"].as_str().unwrap_or("").to_owned(),
            ))
        }
        _ => Err(format!(
            "error events not at the end: {errors:?} of {}",
            parsed.len()
        )),
    }
}

async fn run_case(case: &Case) -> Result<(), String> {
    let keys: Vec<(&str, &[&str])> = case.keys.iter().map(|k| (*k, &["m"][..])).collect();
    let gw = start_with(matrix_config(), &keys).await;
    let tag = |n: usize| format!("fm-{}-{n}", case.name);
    let requests = (0..PER_CASE).map(|n| {
        let mut body = if case.stream {
            stream_chat("m")
        } else {
            simple_chat("m")
        };
        body["messages"] = json!([{ "role": "user", "content": format!("tag {}", tag(n)) }]);
        let send = gw.chat(body).header("x-request-id", tag(n)).send();
        async move {
            let r = tokio::time::timeout(Duration::from_secs(20), send)
                .await
                .map_err(|_| "no answer head within 20 s".to_string())?
                .map_err(|e| format!("the request failed at the client: {e}"))?;
            tokio::time::timeout(
                Duration::from_secs(20),
                outcome(r, case.stream, case.client),
            )
            .await
            .map_err(|_| "no end of the answer within 20 s".to_string())?
        }
    });
    let outcomes = futures_util::future::join_all(requests).await;
    let mut seen = Vec::new();
    for (n, o) in outcomes.into_iter().enumerate() {
        let o = o.map_err(|e| format!("{}: {e}", tag(n)))?;
        if !(case.allowed)(&o) {
            return Err(format!("{}: outcome {o:?} is not allowed here", tag(n)));
        }
        seen.push(o);
    }

    // The upstream side: answers per tag on the scenarios that answer.
    if case.client == Client::Vanishing {
        let sc = case.keys[0];
        if !gw
            .mock
            .wait_cancelled(sc, PER_CASE, Duration::from_secs(5))
            .await
        {
            return Err(format!(
                "the upstream calls of vanished clients were not all cancelled: {} of {PER_CASE}",
                gw.mock.cancelled(sc)
            ));
        }
    }
    for (n, o) in seen.iter().enumerate() {
        let needle = tag(n);
        let answered: usize = case
            .producing
            .iter()
            .map(|sc| {
                gw.mock
                    .requests(sc)
                    .iter()
                    .filter(|r| String::from_utf8_lossy(&r.body).contains(&needle))
                    .count()
            })
            .sum();
        let want = match o {
            Outcome::Full | Outcome::StreamError(_) | Outcome::Left => 1,
            Outcome::Error(..) => 0,
        };
        if answered != want {
            return Err(format!(
                "{needle}: {o:?} but the upstream answered it {answered} times"
            ));
        }
    }

    // History: one row per request, agreeing with the client.
    let user = gw.user_id.clone();
    let store = gw.stop().await;
    let rows = store.recent_requests(&user, 1_000).await.unwrap();
    for (n, o) in seen.iter().enumerate() {
        let id = tag(n);
        let mine: Vec<&Value> = rows.iter().filter(|r| r["id"] == id.as_str()).collect();
        let [row] = mine[..] else {
            return Err(format!("{id}: {} history rows, not 1", mine.len()));
        };
        let status = row["status"].as_str().unwrap_or("");
        let ok = match o {
            Outcome::Full => status == "success" && row["http_status"] == 200,
            Outcome::Error(code, _) => status == "error" && row["http_status"] == *code,
            Outcome::StreamError(_) => status == "error",
            Outcome::Left => status == "canceled",
        };
        if !ok {
            return Err(format!("{id}: the client saw {o:?}, history says {row}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_ends_one_documented_way_under_every_fault() {
    let results = futures_util::future::join_all(CASES.iter().map(run_case)).await;
    let failures: Vec<String> = CASES
        .iter()
        .zip(results)
        .filter_map(|(case, r)| r.err().map(|e| format!("{}: {e}", case.name)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
