//! `bench-load`: a small closed-loop HTTP/1.1 load generator for loopback benchmarks.
//!
//! Opens `--concurrency` keep-alive connections (TCP_NODELAY), each driven by its own
//! task that sends POST requests back to back. After an optional warm-up (discarded),
//! every request started inside the measurement window is recorded: time to response
//! headers, time to the first non-empty body frame, time to the end of the body, and
//! the status. The result is one JSON line on stdout.
//!
//! The run is bounded: no request is started after warm-up + duration, and whatever is
//! still in flight is abandoned (and counted as an error) 10 s after that.
//!
//! With `--rate` the load is open-loop instead (`open_loop`): requests leave on a fixed
//! schedule, to one target or round-robin over several upstreams.

mod args;
mod open_loop;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use args::{Args, Command, Target};
use stats::{Report, WorkerStats};

/// How long in-flight requests may run past the end of the measurement window.
const GRACE: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed connect so a dead target does not turn into a busy loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(20);
/// Bytes of the body tail kept to check that an SSE stream ended with `[DONE]`.
const TAIL: usize = 32;

/// A marker other than `[DONE]` that ends a complete stream (`--stream-end`, for the Responses and Messages
/// surfaces), searched anywhere in the body; set once at start-up.
static STREAM_END: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

pub(crate) type Sender = SendRequest<Full<Bytes>>;

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-load: {err}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Result<(), String> {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return Ok(());
        }
        Err(err) => return Err(format!("{err}\n{}", args::USAGE)),
    };
    if let Some(marker) = &args.stream_end {
        let _ = STREAM_END.set(marker.as_bytes().to_vec());
    }
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("building runtime: {e}"))?;
    let line = if args.open_loop.is_some() {
        runtime.block_on(open_loop::run(*args))?
    } else {
        runtime.block_on(run(*args))?.to_json_line()
    };
    // Do not wait for stray connection tasks: everything that matters is measured.
    runtime.shutdown_background();
    println!("{line}");
    Ok(())
}

/// Everything a worker needs; shared read-only.
struct Plan {
    target: Target,
    headers: HeaderMap,
    body: Bytes,
    stream: bool,
    /// Requests started before this instant are warm-up and are not recorded.
    measure_start: Instant,
    /// No request is started at or after this instant.
    end: Instant,
    /// In-flight requests are abandoned at this instant.
    hard_deadline: Instant,
}

impl Plan {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.target.path.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let headers = request_headers(&args.target, &args.headers)?;

    // Open every connection before the clock starts, so the warm-up (and the
    // measurement when there is no warm-up) does not include connection setup.
    let mut senders = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let sender = connect(&args.target)
            .await
            .map_err(|e| format!("connection {} to {}: {e}", i + 1, args.target.addr))?;
        senders.push(sender);
    }

    let started = Instant::now();
    let measure_start = started + args.warmup;
    let end = measure_start + args.duration;
    let plan = Arc::new(Plan {
        target: args.target,
        headers,
        body: args.body,
        stream: args.stream,
        measure_start,
        end,
        hard_deadline: end + GRACE,
    });

    let mut set = JoinSet::new();
    for sender in senders {
        set.spawn(worker(plan.clone(), sender));
    }
    let mut merged = WorkerStats::default();
    // Workers observe the hard deadline themselves; this outer bound is a backstop.
    let backstop = plan.hard_deadline + Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(backstop, set.join_next()).await {
            Ok(Some(Ok(stats))) => merged.merge(stats),
            Ok(Some(Err(err))) => return Err(format!("worker task failed: {err}")),
            Ok(None) => break,
            Err(_) => {
                merged.errors += set.len() as u64;
                set.abort_all();
                break;
            }
        }
    }

    let window_end = merged.last_done.map_or(plan.end, |t| t.max(plan.end));
    let duration = window_end.saturating_duration_since(plan.measure_start);
    Ok(Report::new(
        args.label,
        args.concurrency,
        args.stream,
        merged,
        duration,
    ))
}

/// `Host` (from the target), `Content-Type: application/json`, then the user's headers.
pub(crate) fn request_headers(
    target: &Target,
    extra: &[(http::HeaderName, HeaderValue)],
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    let host = HeaderValue::from_str(&target.authority)
        .map_err(|e| format!("bad Host header value: {e}"))?;
    headers.insert(HOST, host);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        // A user-given header replaces the defaults above; repeats are appended.
        if extra.iter().filter(|(n, _)| n == name).count() == 1 {
            headers.insert(name.clone(), value.clone());
        } else {
            headers.append(name.clone(), value.clone());
        }
    }
    Ok(headers)
}

pub(crate) async fn connect(target: &Target) -> Result<Sender, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        // Ends when the peer closes or the sender is dropped; errors surface on the sender.
        let _ = conn.await;
    });
    Ok(sender)
}

/// One finished exchange.
pub(crate) struct Sample {
    pub(crate) status: u16,
    ok: bool,
    headers: Duration,
    first_byte: Duration,
    total: Duration,
    /// Streaming only: whether the body ended with the SSE `[DONE]` sentinel.
    done_seen: bool,
}

pub(crate) async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
    stream: bool,
    started: Instant,
) -> Result<Sample, String> {
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let headers = started.elapsed();
    let status = resp.status().as_u16();
    let ok = resp.status().is_success();
    let mut body = resp.into_body();
    let mut first_byte = None;
    let mut tail: Vec<u8> = Vec::with_capacity(TAIL * 2);
    let marker = STREAM_END.get().map(Vec::as_slice);
    let mut marker_seen = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if first_byte.is_none() {
            first_byte = Some(started.elapsed());
        }
        if let (true, Some(marker), false) = (stream, marker, marker_seen) {
            // The last bytes of the previous chunk, then this one: a marker cut between chunks is found too.
            tail.extend_from_slice(data);
            marker_seen = tail.windows(marker.len()).any(|w| w == marker);
            tail.drain(..tail.len().saturating_sub(marker.len()));
        } else if stream && marker.is_none() {
            tail.extend_from_slice(&data[data.len().saturating_sub(TAIL)..]);
            if tail.len() > TAIL {
                tail.drain(..tail.len() - TAIL);
            }
        }
    }
    let total = started.elapsed();
    Ok(Sample {
        status,
        ok,
        headers,
        first_byte: first_byte.unwrap_or(total),
        total,
        done_seen: match marker {
            Some(_) => marker_seen,
            None => tail.windows(6).any(|w| w == b"[DONE]"),
        },
    })
}

async fn worker(plan: Arc<Plan>, sender: Sender) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut sender = Some(sender);
    loop {
        let now = Instant::now();
        if now >= plan.end {
            break;
        }
        let measured = now >= plan.measure_start;

        // Make sure there is a usable connection. A server-side keep-alive close
        // (e.g. a max-requests-per-connection limit) is not an error: reconnect.
        let ready = match sender.as_mut() {
            Some(s) => matches!(
                tokio::time::timeout_at(plan.hard_deadline, s.ready()).await,
                Ok(Ok(()))
            ),
            None => false,
        };
        if !ready {
            sender = None;
            match tokio::time::timeout_at(plan.hard_deadline, connect(&plan.target)).await {
                Ok(Ok(s)) => {
                    stats.reconnects += 1;
                    sender = Some(s);
                }
                _ => {
                    if measured {
                        stats.errors += 1;
                        stats.requests += 1;
                    }
                    tokio::time::sleep_until((Instant::now() + RECONNECT_BACKOFF).min(plan.end))
                        .await;
                }
            }
            continue;
        }
        let Some(s) = sender.as_mut() else { continue };

        let started = Instant::now();
        let measured = started >= plan.measure_start;
        let outcome = tokio::time::timeout_at(
            plan.hard_deadline,
            exchange(s, plan.request(), plan.stream, started),
        )
        .await;
        stats.all_requests += 1;
        let done = Instant::now();
        match outcome {
            Ok(Ok(sample)) => {
                if measured {
                    stats.record(&sample_to_record(&sample, plan.stream), done);
                }
            }
            Ok(Err(_)) => {
                // Transport failure: the connection is unusable from here on.
                sender = None;
                if measured {
                    stats.requests += 1;
                    stats.errors += 1;
                    stats.last_done = Some(done);
                }
            }
            Err(_) => {
                // Hit the hard deadline while in flight.
                if measured {
                    stats.requests += 1;
                    stats.errors += 1;
                }
                break;
            }
        }
    }
    stats
}

impl Sample {
    /// 2xx, and for a stream, ended with `[DONE]`.
    pub(crate) fn complete(&self, stream: bool) -> bool {
        self.ok && (!stream || self.done_seen)
    }
}

fn sample_to_record(sample: &Sample, stream: bool) -> stats::Record {
    stats::Record {
        ok: sample.ok,
        headers_us: micros(sample.headers),
        ttfb_us: micros(sample.first_byte),
        total_us: micros(sample.total),
        incomplete_stream: stream && sample.ok && !sample.done_seen,
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
