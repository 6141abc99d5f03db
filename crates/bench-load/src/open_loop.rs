//! Open-loop load (`--rate`): requests leave on a fixed schedule whatever the answers, so a slow or refusing
//! target cannot slow the offered load down (a closed loop would). This is what "offered load ≤ 80 % of
//! capacity" means.
//!
//! With one upstream each request is one attempt. With several, this is a naive round-robin balancer: every
//! attempt takes the next upstream of one shared rotation, and a 429, a 5xx, a transport error or an attempt
//! timeout moves the request on to the next upstream, up to `--tries` attempts. It knows nothing about limits
//! and never waits: the baseline a router must beat.
//!
//! Latency is measured from the instant a request was due, not when it got a connection, so a client-side
//! delay cannot hide (no coordinated omission). Requests due while `--max-in-flight` are in flight are shed
//! and counted; requests still in flight `--grace-secs` after the end are abandoned and counted unfinished.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::Full;
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::args::{Args, Target};
use crate::stats::percentile;
use crate::{connect, exchange, micros, request_headers, Sample, Sender};

/// How long a pooled connection may take to become ready before it is given up for a new one.
const POOL_READY_TIMEOUT: Duration = Duration::from_secs(1);

struct Upstream {
    target: Target,
    headers: HeaderMap,
}

impl Upstream {
    fn request(&self, body: &Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.target.path.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// How one request ended, as its client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Ok,
    Status(u16),
    /// 2xx stream without `[DONE]`.
    IncompleteStream,
    Transport,
    Timeout,
}

/// How one attempt ended.
enum Attempt {
    Answer(Sample),
    Transport,
    Timeout,
}

#[derive(Default)]
struct Counts {
    offered: u64,
    shed: u64,
    ok: u64,
    client_429: u64,
    client_5xx: u64,
    client_other_status: u64,
    incomplete_streams: u64,
    transport_errors: u64,
    timeouts: u64,
    attempts: u64,
    attempt_429: u64,
    attempt_5xx: u64,
    attempt_transport_errors: u64,
    attempt_timeouts: u64,
    /// Latency of the requests that ended `Ok`, µs from the instant each was due.
    ok_latency_us: Vec<u32>,
}

struct Shared {
    upstreams: Vec<Upstream>,
    body: Bytes,
    stream: bool,
    tries: usize,
    attempt_timeout: Option<Duration>,
    rotation: AtomicUsize,
    in_flight: AtomicUsize,
    idle: Mutex<HashMap<SocketAddr, Vec<Sender>>>,
    counts: Mutex<Counts>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Releases the in-flight slot however the request task ends (finished or aborted).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub async fn run(args: Args) -> Result<String, String> {
    let Some(open) = args.open_loop else {
        return Err("open_loop::run without --rate".to_owned());
    };
    let upstreams = open
        .upstreams
        .into_iter()
        .map(|target| {
            let headers = request_headers(&target, &args.headers)?;
            Ok(Upstream { target, headers })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let shared = Arc::new(Shared {
        upstreams,
        body: args.body,
        stream: args.stream,
        tries: open.tries,
        attempt_timeout: open.attempt_timeout,
        rotation: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        idle: Mutex::new(HashMap::new()),
        counts: Mutex::new(Counts::default()),
    });

    let start = Instant::now();
    let end = start + args.duration;
    let hard_deadline = end + open.grace;
    let mut set = JoinSet::new();
    for i in 0u64.. {
        let due = start + Duration::from_secs_f64(i as f64 / open.rate);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        while set.try_join_next().is_some() {}
        lock(&shared.counts).offered += 1;
        if shared.in_flight.load(Ordering::SeqCst) >= open.max_in_flight {
            lock(&shared.counts).shed += 1;
            continue;
        }
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(shared.clone());
        set.spawn(async move {
            let ending = one_request(&guard.0).await;
            record_ending(&guard.0, ending, due);
        });
    }
    let mut unfinished = 0usize;
    loop {
        match tokio::time::timeout_at(hard_deadline, set.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                unfinished = set.len();
                set.abort_all();
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    let counts = std::mem::take(&mut *lock(&shared.counts));
    let summary = Summary {
        rate: open.rate,
        upstreams: shared.upstreams.len(),
        tries: open.tries,
    };
    Ok(report(
        &args.label,
        &summary,
        counts,
        unfinished as u64,
        elapsed,
    ))
}

/// The settings echoed in the report.
struct Summary {
    rate: f64,
    upstreams: usize,
    tries: usize,
}

/// Tries upstreams in turn until one answers with something not worth retrying elsewhere.
async fn one_request(shared: &Shared) -> Ending {
    let mut ending = Ending::Transport;
    for _ in 0..shared.tries {
        let index = shared.rotation.fetch_add(1, Ordering::Relaxed) % shared.upstreams.len();
        let Some(upstream) = shared.upstreams.get(index) else {
            break;
        };
        let attempt = attempt(shared, upstream).await;
        let mut counts = lock(&shared.counts);
        counts.attempts += 1;
        ending = match attempt {
            Attempt::Answer(sample) => {
                let status = sample.status;
                if status == 429 {
                    counts.attempt_429 += 1;
                } else if status >= 500 {
                    counts.attempt_5xx += 1;
                }
                if sample.complete(shared.stream) {
                    return Ending::Ok;
                }
                if (200..300).contains(&status) {
                    // A broken stream is not retried: the client may already have shown part of it.
                    return Ending::IncompleteStream;
                }
                if status != 429 && status < 500 {
                    // The request's own fault (4xx): another upstream would say the same.
                    return Ending::Status(status);
                }
                Ending::Status(status)
            }
            Attempt::Transport => {
                counts.attempt_transport_errors += 1;
                Ending::Transport
            }
            Attempt::Timeout => {
                counts.attempt_timeouts += 1;
                Ending::Timeout
            }
        };
        drop(counts);
    }
    ending
}

async fn attempt(shared: &Shared, upstream: &Upstream) -> Attempt {
    let work = async {
        let mut sender = checkout(shared, &upstream.target).await?;
        let sample = exchange(
            &mut sender,
            upstream.request(&shared.body),
            shared.stream,
            Instant::now(),
        )
        .await?;
        lock(&shared.idle)
            .entry(upstream.target.addr)
            .or_default()
            .push(sender);
        Ok::<Sample, String>(sample)
    };
    let outcome = match shared.attempt_timeout {
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(outcome) => outcome,
            Err(_) => return Attempt::Timeout,
        },
        None => work.await,
    };
    match outcome {
        Ok(sample) => Attempt::Answer(sample),
        Err(_) => Attempt::Transport,
    }
}

/// An idle keep-alive connection to `target`'s address, or a new one.
async fn checkout(shared: &Shared, target: &Target) -> Result<Sender, String> {
    loop {
        let pooled = lock(&shared.idle).get_mut(&target.addr).and_then(Vec::pop);
        let Some(mut sender) = pooled else {
            return connect(target).await;
        };
        if sender.is_closed() {
            continue;
        }
        if let Ok(Ok(())) = tokio::time::timeout(POOL_READY_TIMEOUT, sender.ready()).await {
            return Ok(sender);
        }
    }
}

fn record_ending(shared: &Shared, ending: Ending, due: Instant) {
    let mut counts = lock(&shared.counts);
    match ending {
        Ending::Ok => {
            counts.ok += 1;
            counts.ok_latency_us.push(micros(due.elapsed()));
        }
        Ending::Status(429) => counts.client_429 += 1,
        Ending::Status(s) if s >= 500 => counts.client_5xx += 1,
        Ending::Status(_) => counts.client_other_status += 1,
        Ending::IncompleteStream => counts.incomplete_streams += 1,
        Ending::Transport => counts.transport_errors += 1,
        Ending::Timeout => counts.timeouts += 1,
    }
}

fn report(
    label: &str,
    summary: &Summary,
    mut c: Counts,
    unfinished: u64,
    elapsed: Duration,
) -> String {
    c.ok_latency_us.sort_unstable();
    let ms = |p: f64| percentile(&c.ok_latency_us, p).map(|us| round3(f64::from(us) / 1000.0));
    let sent = c.offered - c.shed;
    let success_rate = if c.offered > 0 {
        c.ok as f64 / c.offered as f64
    } else {
        0.0
    };
    json!({
        "label": label,
        "mode": if summary.upstreams > 1 { "round-robin" } else { "open" },
        "rate": summary.rate,
        "upstreams": summary.upstreams,
        "tries": summary.tries,
        "elapsed_s": round3(elapsed.as_secs_f64()),
        "offered": c.offered,
        "shed": c.shed,
        "sent": sent,
        "ok": c.ok,
        "success_rate": (success_rate * 1e6).round() / 1e6,
        "client_429": c.client_429,
        "client_5xx": c.client_5xx,
        "client_other_status": c.client_other_status,
        "incomplete_streams": c.incomplete_streams,
        "transport_errors": c.transport_errors,
        "timeouts": c.timeouts,
        "unfinished": unfinished,
        "attempts": c.attempts,
        "attempt_429": c.attempt_429,
        "attempt_5xx": c.attempt_5xx,
        "attempt_transport_errors": c.attempt_transport_errors,
        "attempt_timeouts": c.attempt_timeouts,
        "p50_ms": ms(50.0),
        "p90_ms": ms(90.0),
        "p99_ms": ms(99.0),
        "max_ms": c.ok_latency_us.last().map(|&us| round3(f64::from(us) / 1000.0)),
    })
    .to_string()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse, Command};
    use mock_provider::MockProvider;

    async fn run_with(argv: &[String]) -> serde_json::Value {
        let Ok(Command::Run(args)) = parse(argv.iter().cloned()) else {
            panic!("bad test arguments {argv:?}")
        };
        let line = run(*args).await.unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[tokio::test]
    async fn round_robin_moves_past_refusing_upstreams() {
        let mock = MockProvider::start().await.unwrap();
        let url = |scenario: &str| format!("{}/chat/completions", mock.base_url(scenario));
        let argv: Vec<String> = [
            "--rate",
            "40",
            "--duration-secs",
            "0.5",
            "--tries",
            "3",
            "--label",
            "rr",
            "--upstream",
            &url("ok+id1"),
            "--upstream",
            &url("429ra1"),
            "--upstream",
            &url("500+every2"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let v = run_with(&argv).await;
        assert_eq!(v["mode"], "round-robin");
        assert_eq!(v["offered"], 20);
        assert_eq!(v["ok"], 20, "{v}");
        assert_eq!(v["success_rate"], 1.0);
        assert_eq!(v["client_429"], 0);
        let attempt_429 = v["attempt_429"].as_u64().unwrap();
        assert_eq!(attempt_429, mock.hits("429ra1") as u64);
        assert!(attempt_429 > 0);
        assert_eq!(
            v["attempts"].as_u64().unwrap(),
            (mock.hits("ok+id1") + mock.hits("429ra1") + mock.hits("500+every2")) as u64
        );
        assert!(v["p50_ms"].as_f64().unwrap() > 0.0);
    }

    #[tokio::test]
    async fn single_target_reports_what_the_client_sees() {
        let mock = MockProvider::start().await.unwrap();
        let url = format!("{}/chat/completions", mock.base_url("rpm5+id9"));
        let argv: Vec<String> = ["--rate", "20", "--duration-secs", "0.5", "--url", &url]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let v = run_with(&argv).await;
        assert_eq!(v["mode"], "open");
        assert_eq!(v["offered"], 10);
        assert_eq!(v["ok"], 5);
        assert_eq!(v["client_429"], 5);
        assert_eq!(v["attempts"], 10);
        assert_eq!(mock.rate_limited("rpm5+id9"), 5);
    }

    #[tokio::test]
    async fn attempt_timeout_and_shedding() {
        let mock = MockProvider::start().await.unwrap();
        let url = format!("{}/chat/completions", mock.base_url("hang"));
        let argv: Vec<String> = [
            "--rate",
            "20",
            "--duration-secs",
            "0.5",
            "--url",
            &url,
            "--timeout-secs",
            "0.2",
            "--max-in-flight",
            "2",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let v = run_with(&argv).await;
        assert_eq!(v["ok"], 0);
        let timeouts = v["timeouts"].as_u64().unwrap();
        let shed = v["shed"].as_u64().unwrap();
        assert!(timeouts >= 2 && shed >= 2, "{v}");
        assert_eq!(timeouts + shed, 10);
        assert_eq!(v["unfinished"], 0);
    }
}
