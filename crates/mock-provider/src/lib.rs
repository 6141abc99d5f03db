//! Scriptable mock LLM provider speaking the OpenAI dialect.
//!
//! Every request path starts with a *scenario* segment that scripts the answer:
//! `http://127.0.0.1:PORT/<scenario>/v1/chat/completions` (segments may come between the scenario and `v1`, e.g.
//! `/<scenario>/client/v4/accounts/<id>/ai/v1/…`). A scenario is a list of
//! directives joined by `+`, e.g. `ok`, `429ra5`, `slow300+ok`, `drip5+chunks3`.
//!
//! | directive | effect |
//! |---|---|
//! | `ok` | normal success (the default) |
//! | `<status>` (400..=599) | that status with an OpenAI-style error body; `200` is `ok` |
//! | `ra<secs>` | `Retry-After: <secs>` header (also `429ra5` shorthand) |
//! | `slow<ms>` | wait before sending the response headers |
//! | `hang` | never answer (counted as cancelled when the client goes away) |
//! | `stall` | stream: role chunk then silence; non-stream: like `hang` |
//! | `stallafter<n>` | stream: n delta chunks then silence; non-stream: like `hang` |
//! | `cut<n>` | stream: n delta chunks then the connection is aborted mid-body |
//! | `empty` | stream: role chunk then `[DONE]` |
//! | `drip<ms>` | stream: delay between delta chunks |
//! | `chunks<n>` | number of content chunks (overrides [`MockOptions::stream_chunks`]) |
//! | `tool` | answer with a tool call when the request has `tools` |
//! | `agent` | one scripted coding-agent turn: a tool call writing `<<content:…>>` to `<<path:…>>` through the agent's own file or shell tool, then a final text once a tool result is in the conversation |
//! | `reason` | 2 `reasoning_content` deltas before the content (non-stream: `reasoning_content` field) |
//! | `think` | non-stream: the reasoning as a `<think>…</think>` block opening `content` |
//! | `reasononly` | non-stream: empty `content`, the answer in `reasoning_content` |
//! | (route) | `GET /<scenario>/v1beta/models` lists two Gemini models (or answers the scenario's error status) |
//! | `inbanderr` | stream: 200 then a single `data: {"error":...}` event |
//! | `auth=<token>` | require `Authorization: Bearer <token>`, else 401 |
//! | `first<n>` | the error `<status>` answers only the first n hits of the scenario; later hits succeed |
//! | `every<n>` | the faults (`<status>`, `hang`, `stall`, `stallafter`, `cut`) hit only every n-th request |
//! | `rpm<n>` | at most n accepted requests in the trailing window; more get 429 with `Retry-After` (seconds until the oldest leaves the window) and `x-ratelimit-*` headers |
//! | `rpmw<secs>` | the `rpm` window (default 60 s) |
//! | `noratehdr` | the `rpm` window sends no `x-ratelimit-*` headers, only `Retry-After` on a refusal |
//! | `id<n>` | nothing but a name: alike scenarios keep separate counters and rate windows |
//!
//! "Delta chunks" are every chunk after the role chunk that carries reasoning, content or a
//! tool-call fragment. Stream-only directives (`cut`, `empty`, `drip`, `inbanderr`) are ignored
//! for non-stream requests. Precedence: unknown directive (400) → `rpm` (429) → `slow` →
//! `auth` (401) → `hang` → `<status>` → the endpoint's normal answer. `ra<secs>` applies to any
//! answer except an `rpm` refusal, which states its own wait.
//!
//! `GET /__stats` answers the counters of every scenario seen so far as JSON (`hits`,
//! `rate_limited`, `scripted_errors`, `cancelled` per scenario, and their totals).
//!
//! Unknown directives answer 400 with a message naming the directive.

mod agent;
mod body;
pub mod native;
mod rate;
mod render;
mod scenario;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use body::{CancelGuard, MockBody, Scripted, Sse, SseConfig};
use rate::{Admission, RateWindow};
use render::Answer;
use scenario::{LimitKind, Scenario};

/// Server options.
#[derive(Clone, Debug)]
pub struct MockOptions {
    /// Content chunks per streamed answer (default 20); the `chunks<n>` directive overrides it.
    pub stream_chunks: usize,
    /// Store every request (headers and body) for [`MockProvider::requests`] (default true).
    /// When false only the counters are kept.
    pub record: bool,
}

impl Default for MockOptions {
    fn default() -> MockOptions {
        MockOptions {
            stream_chunks: 20,
            record: true,
        }
    }
}

/// A request received by the mock.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query, e.g. `/ok/v1/chat/completions`.
    pub path: String,
    /// Header names are lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`None` if it is not JSON).
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Per-scenario state: parsed directives and counters.
pub(crate) struct Entry {
    scenario: Result<Scenario, String>,
    hits: AtomicUsize,
    cancelled: AtomicUsize,
    /// Requests refused by the `rpm` window.
    rate_limited: AtomicUsize,
    /// Error statuses answered because the scenario scripts them (`<status>`).
    scripted_errors: AtomicUsize,
    /// The `rpm` window, when the scenario has one.
    rate: Option<Mutex<RateWindow>>,
    notify: Notify,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Entry {
    pub(crate) fn mark_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

struct Shared {
    opts: MockOptions,
    scenarios: RwLock<HashMap<Box<str>, Arc<Entry>>>,
    next_id: AtomicU64,
}

impl Shared {
    fn get(&self, scenario: &str) -> Option<Arc<Entry>> {
        let map = self.scenarios.read().unwrap_or_else(|e| e.into_inner());
        map.get(scenario).cloned()
    }

    /// `{"scenarios":{"<name>":{"hits":…,"rate_limited":…,"scripted_errors":…,"cancelled":…}},"totals":{…}}`,
    /// scenarios sorted by name.
    fn stats_json(&self) -> String {
        let map = self.scenarios.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&Box<str>> = map.keys().collect();
        names.sort();
        let mut scenarios = serde_json::Map::new();
        let mut totals = [0usize; 4];
        for name in names {
            let Some(e) = map.get(name) else { continue };
            let counts = [
                e.hits.load(Ordering::SeqCst),
                e.rate_limited.load(Ordering::SeqCst),
                e.scripted_errors.load(Ordering::SeqCst),
                e.cancelled.load(Ordering::SeqCst),
            ];
            for (total, n) in totals.iter_mut().zip(counts) {
                *total += n;
            }
            scenarios.insert(name.to_string(), counters_json(counts));
        }
        serde_json::json!({ "scenarios": scenarios, "totals": counters_json(totals) }).to_string()
    }

    fn entry(&self, scenario: &str) -> Arc<Entry> {
        if let Some(entry) = self.get(scenario) {
            return entry;
        }
        let mut map = self.scenarios.write().unwrap_or_else(|e| e.into_inner());
        map.entry(Box::from(scenario))
            .or_insert_with(|| {
                let parsed = Scenario::parse(scenario);
                let rate = parsed.as_ref().ok().and_then(|sc| {
                    let window = sc.rpm_window.unwrap_or(Duration::from_secs(60));
                    sc.rpm.map(|n| Mutex::new(RateWindow::new(n, window)))
                });
                Arc::new(Entry {
                    scenario: parsed,
                    hits: AtomicUsize::new(0),
                    cancelled: AtomicUsize::new(0),
                    rate_limited: AtomicUsize::new(0),
                    scripted_errors: AtomicUsize::new(0),
                    rate,
                    notify: Notify::new(),
                    requests: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }
}

/// A running mock provider. The accept loop stops when this is dropped (connections already
/// open keep being served until they close).
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider")
            .field("addr", &self.addr)
            .field("opts", &self.shared.opts)
            .finish()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockProvider {
    /// Binds `127.0.0.1:0` with default options and serves on a spawned task.
    pub async fn start() -> std::io::Result<MockProvider> {
        MockProvider::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            MockOptions::default(),
        )
        .await
    }

    /// Binds `addr` and serves on a spawned task.
    pub async fn start_on(addr: SocketAddr, opts: MockOptions) -> std::io::Result<MockProvider> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            opts,
            scenarios: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(MockProvider { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/<scenario>/v1`
    pub fn base_url(&self, scenario: &str) -> String {
        format!("http://{}/{}/v1", self.addr, scenario)
    }

    /// Requests received for `scenario` (any endpoint).
    pub fn hits(&self, scenario: &str) -> usize {
        self.shared
            .get(scenario)
            .map_or(0, |e| e.hits.load(Ordering::SeqCst))
    }

    /// Recorded requests for `scenario` (empty when recording is off).
    pub fn requests(&self, scenario: &str) -> Vec<RecordedRequest> {
        self.shared.get(scenario).map_or_else(Vec::new, |e| {
            e.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }

    /// Requests of `scenario` refused by its `rpm` window.
    pub fn rate_limited(&self, scenario: &str) -> usize {
        self.shared
            .get(scenario)
            .map_or(0, |e| e.rate_limited.load(Ordering::SeqCst))
    }

    /// The counters of every scenario seen so far, as served by `GET /__stats`.
    pub fn stats_json(&self) -> String {
        self.shared.stats_json()
    }

    /// Responses dropped before completing (the client went away mid-wait or mid-stream).
    pub fn cancelled(&self, scenario: &str) -> usize {
        self.shared
            .get(scenario)
            .map_or(0, |e| e.cancelled.load(Ordering::SeqCst))
    }

    /// Waits until `cancelled(scenario) >= n`; false on timeout.
    pub async fn wait_cancelled(&self, scenario: &str, n: usize, timeout: Duration) -> bool {
        let entry = self.shared.entry(scenario);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut notified = std::pin::pin!(entry.notify.notified());
            notified.as_mut().enable();
            if entry.cancelled.load(Ordering::SeqCst) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return entry.cancelled.load(Ordering::SeqCst) >= n;
            }
        }
    }
}

fn counters_json([hits, rate_limited, scripted_errors, cancelled]: [usize; 4]) -> Value {
    serde_json::json!({
        "hits": hits,
        "rate_limited": rate_limited,
        "scripted_errors": scripted_errors,
        "cancelled": cancelled,
    })
}

/// Where a request stands against its scenario's `rpm` window: what the `x-ratelimit-*` headers say.
#[derive(Clone, Copy)]
struct RateState {
    limit: u32,
    remaining: u32,
    /// Until the oldest accepted request leaves the window.
    reset: Duration,
}

/// Applies the scenario's `rpm` window to one arriving request: `Ok` with the state to report on the answer
/// (none without a window), `Err` when refused (the caller answers 429 with [`add_rate_limit_refusal`]).
fn admit(entry: &Entry) -> Result<Option<RateState>, RateState> {
    let Some(rate) = &entry.rate else {
        return Ok(None);
    };
    let mut window = rate.lock().unwrap_or_else(|e| e.into_inner());
    let limit = window.limit();
    match window.admit(tokio::time::Instant::now()) {
        Admission::Accepted { remaining, reset } => Ok(Some(RateState {
            limit,
            remaining,
            reset,
        })),
        Admission::Limited { retry_after } => {
            drop(window);
            entry.rate_limited.fetch_add(1, Ordering::SeqCst);
            Err(RateState {
                limit,
                remaining: 0,
                reset: retry_after,
            })
        }
    }
}

/// Message of an `rpm` refusal, worded like OpenAI's.
fn rate_limit_message(state: RateState) -> String {
    format!(
        "Rate limit reached for requests per minute: Limit {limit}, Used {limit}, Requested 1. \
         Please try again in {secs}s.",
        limit = state.limit,
        secs = rate::retry_after_secs(state.reset)
    )
}

/// `Retry-After` (whole seconds, rounded up) and, when `with_headers`, the request-limit headers on an `rpm`
/// refusal.
fn add_rate_limit_refusal(resp: &mut Response<MockBody>, state: RateState, with_headers: bool) {
    resp.headers_mut().insert(
        RETRY_AFTER,
        HeaderValue::from(rate::retry_after_secs(state.reset)),
    );
    if with_headers {
        add_rate_headers(resp, state);
    }
}

/// The OpenAI-style request-limit headers (`x-ratelimit-reset-requests` as `"<secs>s"`).
fn add_rate_headers(resp: &mut Response<MockBody>, state: RateState) {
    let headers = resp.headers_mut();
    headers.insert("x-ratelimit-limit-requests", HeaderValue::from(state.limit));
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from(state.remaining),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{:.3}s", state.reset.as_secs_f64())) {
        headers.insert("x-ratelimit-reset-requests", value);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .header_read_timeout(None)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: MockBody) -> Response<MockBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<MockBody> {
    respond(status, "application/json", MockBody::full(body))
}

fn error_response(status: u16, message: &str) -> Response<MockBody> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, render::error_body(status, message))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Embeddings,
    Models,
    Unknown,
}

/// Splits `/<scenario>/v1/<rest>`. Segments between the scenario and `v1` are allowed, so a base URL can mimic a
/// platform's own path (Cloudflare's `/<scenario>/client/v4/accounts/<account>/ai/v1`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (scenario, mut rest) = rest.split_once('/')?;
    if scenario.is_empty() {
        return None;
    }
    loop {
        let (segment, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if segment == "v1" {
            return Some((scenario, tail.trim_start_matches('/')));
        }
        if segment.is_empty() || tail.is_empty() {
            return None;
        }
        rest = tail;
    }
}

/// Gemini's model list, `GET /<scenario>/v1beta/models` (a status directive answers that error instead).
fn gemini_models(shared: &Shared, scenario: &str) -> Response<MockBody> {
    let entry = shared.entry(scenario);
    entry.hits.fetch_add(1, Ordering::SeqCst);
    if let Ok(Some(status)) = entry.scenario.as_ref().map(|sc| sc.status) {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_response(
            code,
            native::gemini_error_body(status, &format!("mock {status}")),
        );
    }
    json_response(
        StatusCode::OK,
        Bytes::from_static(
            br#"{"models":[{"name":"models/gemini-2.5-flash","supportedGenerationMethods":["generateContent"]},{"name":"models/gemini-embedding-001","supportedGenerationMethods":["embedContent"]}]}"#,
        ),
    )
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<MockBody> {
    if req.uri().path() == "/__stats" && req.method() == Method::GET {
        return json_response(StatusCode::OK, shared.stats_json());
    }
    if req.method() == Method::GET {
        let path = req.uri().path().trim_end_matches('/');
        if let Some(scenario) = path
            .strip_suffix("/v1beta/models")
            .and_then(|p| p.strip_prefix('/'))
            .filter(|s| !s.is_empty() && !s.contains('/'))
        {
            return gemini_models(&shared, scenario);
        }
    }
    if let Some((scenario, route)) = native::native_route(req.uri().path()) {
        let route = owned_route(route);
        let scenario = scenario.to_owned();
        return handle_native(shared, &scenario, route, req).await;
    }
    let Some((scenario, rest)) = split_path(req.uri().path()) else {
        return error_response(404, &format!("mock: no route for {}", req.uri().path()));
    };
    let entry = shared.entry(scenario);
    let hit = entry.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let endpoint = match (req.method(), rest.trim_end_matches('/')) {
        (&Method::POST, "chat/completions") => Endpoint::Chat,
        (&Method::POST, "embeddings") => Endpoint::Embeddings,
        (&Method::GET, "models") => Endpoint::Models,
        _ => Endpoint::Unknown,
    };

    let (parts, incoming) = req.into_parts();
    let body = match incoming.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error_response(400, "mock: failed to read request body"),
    };
    if shared.opts.record {
        let recorded = RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.clone(),
        };
        entry
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(recorded);
    }

    let sc = match &entry.scenario {
        Ok(sc) => sc,
        Err(message) => return error_response(400, message),
    };
    let rate_state = match admit(&entry) {
        Ok(state) => state,
        Err(state) => {
            let mut resp = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                render::error_body_typed(
                    "requests",
                    "rate_limit_exceeded",
                    &rate_limit_message(state),
                ),
            );
            add_rate_limit_refusal(&mut resp, state, !sc.no_rate_headers);
            return resp;
        }
    };
    let faulty = sc.faulty(hit);
    // From here on, going away before the response completes counts as a cancellation.
    let mut guard = CancelGuard::new(entry.clone());

    if let Some(delay) = sc.slow {
        tokio::time::sleep(delay).await;
    }
    if let Some(token) = &sc.auth {
        let ok = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|t| t == token.as_bytes());
        if !ok {
            guard.disarm();
            return error_response(401, "mock 401: invalid or missing bearer token");
        }
    }
    if sc.hang && faulty {
        std::future::pending::<()>().await;
    }
    if let Some(status) = sc.status_for(hit) {
        guard.disarm();
        entry.scripted_errors.fetch_add(1, Ordering::SeqCst);
        let mut resp = error_response(status, &format!("mock {status}"));
        add_retry_after(&mut resp, sc);
        return resp;
    }

    let mut resp = match endpoint {
        Endpoint::Chat => chat(&shared, sc, faulty, &body, guard).await,
        Endpoint::Embeddings => {
            guard.disarm();
            embeddings(&body)
        }
        Endpoint::Models => {
            guard.disarm();
            json_response(
                StatusCode::OK,
                Bytes::from_static(render::MODELS_BODY.as_bytes()),
            )
        }
        Endpoint::Unknown => {
            guard.disarm();
            error_response(
                404,
                &format!("mock: no route for {} {}", parts.method, parts.uri.path()),
            )
        }
    };
    add_retry_after(&mut resp, sc);
    if let Some(state) = rate_state.filter(|_| !sc.no_rate_headers) {
        add_rate_headers(&mut resp, state);
    }
    resp
}

/// A native route with its model owned, so the request can be consumed.
enum OwnedRoute {
    GeminiGenerate(String),
    GeminiStream(String),
    GeminiEmbed,
    CohereChat,
    CohereEmbed,
}

fn owned_route(route: native::NativeRoute<'_>) -> OwnedRoute {
    match route {
        native::NativeRoute::GeminiGenerate { model } => {
            OwnedRoute::GeminiGenerate(model.to_owned())
        }
        native::NativeRoute::GeminiStream { model } => OwnedRoute::GeminiStream(model.to_owned()),
        native::NativeRoute::GeminiEmbed { .. } => OwnedRoute::GeminiEmbed,
        native::NativeRoute::CohereChat => OwnedRoute::CohereChat,
        native::NativeRoute::CohereEmbed => OwnedRoute::CohereEmbed,
    }
}

/// Gemini and Cohere endpoints: the same scenarios as the OpenAI ones (status, `first`, `ra`, `slow`, `hang`,
/// `auth`, `tool`, `reason`, `chunks`, `drip`, `stallafter`, `cut`, `inbanderr`), answered in the native format.
async fn handle_native(
    shared: Arc<Shared>,
    scenario: &str,
    route: OwnedRoute,
    req: Request<Incoming>,
) -> Response<MockBody> {
    let entry = shared.entry(scenario);
    let hit = entry.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let gemini = matches!(
        route,
        OwnedRoute::GeminiGenerate(_) | OwnedRoute::GeminiStream(_) | OwnedRoute::GeminiEmbed
    );
    let (parts, incoming) = req.into_parts();
    let body = match incoming.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error_response(400, "mock: failed to read request body"),
    };
    if shared.opts.record {
        entry
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(RecordedRequest {
                method: parts.method.as_str().to_owned(),
                path: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: body.clone(),
            });
    }
    let native_error = |status: u16, message: &str| {
        let text = if gemini {
            native::gemini_error_body(status, message)
        } else {
            native::cohere_error_body(message)
        };
        json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            text,
        )
    };
    let mut sc = match &entry.scenario {
        Ok(sc) => sc.clone(),
        Err(message) => return native_error(400, message),
    };
    // Native dialects get the refusal and its `Retry-After`, not the OpenAI-only `x-ratelimit-*` on success.
    if let Err(state) = admit(&entry) {
        let mut resp = native_error(429, &rate_limit_message(state));
        add_rate_limit_refusal(&mut resp, state, false);
        return resp;
    }
    let faulty = sc.faulty(hit);
    if !faulty {
        sc.limit = None;
    }
    let mut guard = CancelGuard::new(entry.clone());
    if let Some(delay) = sc.slow {
        tokio::time::sleep(delay).await;
    }
    if let Some(token) = &sc.auth {
        let header = if gemini {
            "x-goog-api-key"
        } else {
            "authorization"
        };
        let presented = parts.headers.get(header).map(|v| v.as_bytes().to_vec());
        let ok = presented.is_some_and(|v| {
            v == token.as_bytes() || v.strip_prefix(b"Bearer ") == Some(token.as_bytes())
        });
        if !ok {
            guard.disarm();
            return native_error(401, "mock 401: invalid or missing credential");
        }
    }
    if sc.hang && faulty {
        std::future::pending::<()>().await;
    }
    if let Some(status) = sc.status_for(hit) {
        guard.disarm();
        entry.scripted_errors.fetch_add(1, Ordering::SeqCst);
        let mut resp = native_error(status, &format!("mock {status}"));
        add_retry_after(&mut resp, &sc);
        return resp;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            guard.disarm();
            return native_error(400, "mock: request body is not a JSON object");
        }
    };
    let cohere_tool = req
        .get("tools")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(|t| t.pointer("/function/name"))
        .and_then(Value::as_str);
    let cohere_model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("command-mock");
    let (model, prompt_tokens, tool_name) = match &route {
        OwnedRoute::GeminiGenerate(m) | OwnedRoute::GeminiStream(m) => (
            m.as_str(),
            native::gemini_prompt_tokens(&req),
            native::gemini_first_tool_name(&req),
        ),
        _ => (cohere_model, prompt_tokens(&req), cohere_tool),
    };
    let answer = native::NativeAnswer {
        model,
        prompt_tokens,
        tool_name: tool_name.filter(|_| sc.tool),
        reasoning: sc.reason,
        content_chunks: sc.chunks.unwrap_or(shared.opts.stream_chunks),
    };
    let stream = match &route {
        OwnedRoute::GeminiStream(_) => true,
        OwnedRoute::CohereChat => req.get("stream").and_then(Value::as_bool).unwrap_or(false),
        _ => false,
    };
    if !stream {
        if sc.limit.is_some_and(|(_, kind)| kind == LimitKind::Stall) {
            std::future::pending::<()>().await;
        }
        guard.disarm();
        let text = match &route {
            OwnedRoute::GeminiGenerate(_) => native::gemini_generate_content(&answer),
            OwnedRoute::GeminiEmbed => {
                let inputs = req
                    .get("requests")
                    .and_then(Value::as_array)
                    .map_or(1, Vec::len);
                native::gemini_batch_embed(inputs)
            }
            OwnedRoute::CohereEmbed => {
                let (inputs, tokens) = native::cohere_embed_inputs(&req);
                native::cohere_embed(inputs, tokens)
            }
            _ => native::cohere_chat(&answer),
        };
        return json_response(StatusCode::OK, text);
    }
    let script = if sc.inband_err {
        let error = if gemini {
            native::gemini_stream_error()
        } else {
            native::cohere_stream_error()
        };
        Scripted::new(vec![error], Vec::new(), Vec::new(), None, None)
    } else {
        let events = if gemini {
            native::gemini_stream(&answer)
        } else {
            native::cohere_stream(&answer)
        };
        Scripted::new(events.head, events.deltas, events.tail, sc.limit, sc.drip)
    };
    let mut resp = respond(
        StatusCode::OK,
        "text/event-stream",
        MockBody::scripted(script, guard),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

fn add_retry_after(resp: &mut Response<MockBody>, sc: &Scenario) {
    if let Some(secs) = sc.retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
}

/// Rough token estimate: one token per 4 characters, at least 1.
fn tokens_for(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// Prompt tokens of a chat request: text of every message plus a small per-message overhead.
fn prompt_tokens(req: &Value) -> u64 {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return 1;
    };
    let mut chars = 0usize;
    for m in messages {
        match m.get("content") {
            Some(Value::String(s)) => chars += s.len(),
            Some(Value::Array(parts)) => {
                chars += parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(str::len)
                    .sum::<usize>();
            }
            _ => {}
        }
    }
    tokens_for(chars) + 3 * messages.len() as u64
}

async fn chat(
    shared: &Shared,
    sc: &Scenario,
    faulty: bool,
    body: &Bytes,
    mut guard: CancelGuard,
) -> Response<MockBody> {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            guard.disarm();
            return error_response(400, "mock: request body is not a JSON object");
        }
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model");
    let model_json = render::json_string(model);
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let tool_name_json = if sc.tool {
        req.get("tools")
            .and_then(Value::as_array)
            .and_then(|tools| tools.first())
            .map(|tool| {
                let name = tool
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("get_weather");
                render::json_string(name)
            })
    } else {
        None
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let created = render::unix_now();
    let prompt = prompt_tokens(&req);
    let limit = sc.limit.filter(|_| faulty);
    // A stall or cut scripted with `agent` (`stall+agent`) applies: the stream below never reaches the script.
    if sc.agent && !(stream && limit.is_some()) {
        guard.disarm();
        let turn = agent::next_turn(&req);
        if !stream {
            return json_response(
                StatusCode::OK,
                agent::completion(id, created, model, prompt, &turn),
            );
        }
        let usage = req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let body = agent::stream(id, created, model, prompt, usage, &turn);
        return respond(StatusCode::OK, "text/event-stream", MockBody::full(body));
    }

    if !stream {
        if limit.is_some_and(|(_, kind)| kind == LimitKind::Stall) {
            // A non-stream stall never produces headers: identical to `hang`.
            std::future::pending::<()>().await;
        }
        guard.disarm();
        let answer = match &tool_name_json {
            Some(name_json) => Answer::Tool { name_json },
            None if sc.think => Answer::ThinkTagged,
            None if sc.reason_only => Answer::ReasoningOnly,
            None => Answer::Text {
                reasoning: sc.reason,
            },
        };
        let text = render::chat_completion(id, created, &model_json, prompt, &answer);
        return json_response(StatusCode::OK, text);
    }

    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let sse = Sse::new(SseConfig {
        id,
        created,
        model_json,
        content_chunks: sc.chunks.unwrap_or(shared.opts.stream_chunks),
        tool_name_json,
        reason: sc.reason,
        empty: sc.empty,
        inband_err: sc.inband_err,
        limit,
        drip: sc.drip,
        usage_prompt: include_usage.then_some(prompt),
    });
    let mut resp = respond(
        StatusCode::OK,
        "text/event-stream",
        MockBody::sse(sse, guard),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

fn embeddings(body: &Bytes) -> Response<MockBody> {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error_response(400, "mock: request body is not a JSON object"),
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-embed");
    let (inputs, tokens) = match req.get("input") {
        Some(Value::String(s)) => (1, tokens_for(s.len())),
        // A single pre-tokenized input.
        Some(Value::Array(items)) if items.first().is_some_and(Value::is_number) => {
            (1, items.len().max(1) as u64)
        }
        Some(Value::Array(items)) => (
            items.len(),
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => tokens_for(s.len()),
                    Value::Array(toks) => toks.len().max(1) as u64,
                    _ => 1,
                })
                .sum(),
        ),
        _ => return error_response(400, "mock: embeddings request needs `input`"),
    };
    let text = render::embeddings(inputs, &render::json_string(model), tokens);
    json_response(StatusCode::OK, text)
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn splits_paths() {
        assert_eq!(
            split_path("/ok/v1/chat/completions"),
            Some(("ok", "chat/completions"))
        );
        assert_eq!(split_path("/429ra5/v1/models"), Some(("429ra5", "models")));
        assert_eq!(split_path("/ok/v1"), Some(("ok", "")));
        assert_eq!(split_path("/v1/models"), None);
        assert_eq!(split_path("/ok/v2/models"), None);
        assert_eq!(split_path("/ok/v1x/models"), None);
        assert_eq!(
            split_path("/ok/client/v4/accounts/abc/ai/v1/chat/completions"),
            Some(("ok", "chat/completions"))
        );
        assert_eq!(split_path("//v1/models"), None);
    }
}
