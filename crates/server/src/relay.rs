//! The attempt loop: try the ordered candidates until one answers, classify each failure once, cool the candidate
//! down, and move on while nothing has reached the client. Streams are held until their first real delta (content,
//! tool call or reasoning) — the commit point — and then relayed chunk by chunk with an inactivity timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{header, HeaderName, HeaderValue};
use http_body::Frame;
use providers::dialect::DialectError;
use providers::{
    classify_proxied_transport, classify_response, classify_transport, ChatStreamTranslator,
    ErrorClass, UpstreamFailure,
};
use router::{retry_after_secs, Candidate, Day, Outcome, Permit, Place, QueueFull, Strategy, Turn};
use store::RequestLog;
use tokio::time::{Instant, Sleep};
use wire::{inspect_chunk, ApiError, ErrorType, SseSplitter, Usage};

use crate::error::error_response;
use crate::events::{Finished, InFlight};
use crate::handoff;
use crate::proxy::{Egress, KeyRoute};
use crate::snapshot::{ProviderKeyEntry, Route, Tenant};
use crate::state::AppState;
use crate::upstream::{self, Transport, TransportError, UpstreamBody, UpstreamStream};

/// Which upstream operation a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat { stream: bool },
    Embeddings,
}

impl Operation {
    fn endpoint(self) -> &'static str {
        match self {
            Operation::Chat { .. } => "chat",
            Operation::Embeddings => "embeddings",
        }
    }

    fn stream(self) -> bool {
        matches!(self, Operation::Chat { stream: true })
    }
}

/// Who asked for what; owned by the request and, after the commit point, by the relayed stream.
#[derive(Debug)]
pub struct RequestMeta {
    pub request_id: Arc<str>,
    pub tenant: Arc<Tenant>,
    pub gateway_key_id: Arc<str>,
    pub gateway_key_prefix: Arc<str>,
    pub requested_model: String,
    pub operation: Operation,
    pub input_estimate: u64,
    pub started: std::time::Instant,
}

/// Records the request exactly once: explicitly on completion, or as `canceled` if the client goes away first.
struct RequestGuard {
    state: AppState,
    meta: RequestMeta,
    attempts: u32,
    served: Option<(Arc<ProviderKeyEntry>, Arc<str>)>,
    /// The proxy that carried the answer (`None`: direct).
    proxy: Option<Arc<str>>,
    recorded: bool,
    /// The limit permit of a stream being relayed, reconciled with the reported usage when it ends.
    permit: Option<Permit>,
}

struct Completion {
    status: &'static str,
    http_status: u16,
    error: Option<(&'static str, String)>,
    usage: Option<Usage>,
    output_estimate: Option<u64>,
    ttfb: Option<Duration>,
}

impl RequestGuard {
    fn record(&mut self, c: Completion) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let meta = &self.meta;
        let latency = meta.started.elapsed();
        let (platform, model, key_id) = match &self.served {
            Some((key, model)) => (
                Some(key.platform.id()),
                Some(Arc::clone(model)),
                Some(Arc::clone(&key.id)),
            ),
            None => (None, None, None),
        };
        let input_tokens = c
            .usage
            .map(|u| u.prompt_tokens)
            .or((c.status == "success").then_some(meta.input_estimate));
        let output_tokens = c.usage.map(|u| u.completion_tokens).or(c.output_estimate);
        self.state.gateway_usage.add_tokens(
            &meta.gateway_key_id,
            input_tokens.unwrap_or(0) + output_tokens.unwrap_or(0),
        );
        if let (Some(permit), Some(u)) = (self.permit.take(), c.usage) {
            self.state
                .books
                .limits
                .reconcile(&permit, u.prompt_tokens + u.completion_tokens);
        }
        self.state.events.finished(
            &meta.tenant.user_id,
            &meta.request_id,
            Finished {
                status: c.status,
                provider: platform,
                model: model.clone(),
                latency_ms: latency.as_millis() as u64,
                input_tokens: input_tokens.unwrap_or(0),
                output_tokens: output_tokens.unwrap_or(0),
                attempts: self.attempts,
                error_code: c.error.as_ref().map(|e| e.0),
            },
        );
        tracing::info!(
            target: "freellmapi::request",
            req_id = &*meta.request_id,
            user = &*meta.tenant.username,
            key = &*meta.gateway_key_prefix,
            endpoint = meta.operation.endpoint(),
            stream = meta.operation.stream(),
            requested_model = meta.requested_model.as_str(),
            provider = platform.unwrap_or("-"),
            model = model.as_deref().unwrap_or("-"),
            provider_key = key_id.as_deref().unwrap_or("-"),
            proxy = self.proxy.as_deref().unwrap_or("-"),
            status = c.status,
            http_status = c.http_status,
            attempts = self.attempts,
            latency_ms = latency.as_millis() as u64,
            ttfb_ms = c.ttfb.map(|t| t.as_millis() as u64),
            input_tokens,
            output_tokens,
            error_class = c.error.as_ref().map(|e| e.0),
            "request finished"
        );
        // Recorded once: the request is over, and its model name is no longer needed here.
        let requested_model = std::mem::take(&mut self.meta.requested_model);
        let meta = &self.meta;
        self.state.logs.send(RequestLog {
            id: Arc::clone(&meta.request_id),
            user_id: Arc::clone(&meta.tenant.user_id),
            gateway_key_id: Some(Arc::clone(&meta.gateway_key_id)),
            endpoint: meta.operation.endpoint(),
            requested_model,
            platform,
            model,
            provider_key_id: key_id,
            status: c.status,
            http_status: c.http_status,
            error_class: c.error.as_ref().map(|e| e.0),
            error_message: c.error.map(|e| e.1),
            stream: meta.operation.stream(),
            attempts: self.attempts,
            input_tokens,
            output_tokens,
            latency_ms: latency.as_millis() as u64,
            ttfb_ms: c.ttfb.map(|t| t.as_millis() as u64),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        });
    }

    fn record_error(&mut self, e: &ApiError) {
        self.record(Completion {
            status: "error",
            http_status: e.status,
            error: Some((e.code, e.message.clone())),
            usage: None,
            output_estimate: None,
            ttfb: None,
        });
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(Completion {
                status: "canceled",
                http_status: 499,
                error: Some(("client_closed", "the client closed the connection".into())),
                usage: None,
                output_estimate: None,
                ttfb: None,
            });
        }
    }
}

/// Time until the next UTC midnight, when most free tiers reset their daily allowance.
fn until_utc_midnight() -> Duration {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(86_400 - secs % 86_400)
}

fn outcome_for(failure: &UpstreamFailure) -> Outcome {
    match failure.class {
        ErrorClass::RateLimited => Outcome::RateLimited {
            retry_after: failure.retry_after,
        },
        ErrorClass::QuotaExhausted => Outcome::QuotaExhausted {
            retry_after: failure.retry_after,
            until_daily_reset: until_utc_midnight(),
        },
        ErrorClass::Auth => Outcome::InvalidCredential,
        // A proxy's failure says nothing about the key.
        ErrorClass::BadRequest | ErrorClass::ContextTooLong | ErrorClass::Proxy => {
            Outcome::NoPenalty
        }
        ErrorClass::NotFound | ErrorClass::Server | ErrorClass::Network | ErrorClass::Timeout => {
            Outcome::Transient {
                retry_after: failure.retry_after,
            }
        }
    }
}

/// Replaces the `model` field of a JSON object body (for `auto`), keeping every other value byte for byte.
fn with_model(body: &Bytes, model: &str) -> Result<Bytes, serde_json::Error> {
    let mut map: std::collections::BTreeMap<&str, &serde_json::value::RawValue> =
        serde_json::from_slice(body)?;
    let value = serde_json::value::to_raw_value(model)?;
    map.insert("model", &value);
    Ok(Bytes::from(serde_json::to_vec(&map)?))
}

/// The candidates of one request and what it asks of them.
#[derive(Debug)]
pub struct RouteSet {
    pub routes: Vec<Route>,
    /// Per route: whether it can serve this request at all (context window, capabilities).
    pub fits: Vec<bool>,
    /// Per route: its model's position in the profile (0 outside profiles).
    pub priorities: Vec<u32>,
    pub strategy: Strategy,
    /// Tokens to reserve against the keys' token limits (prompt estimate plus output allowance).
    pub tokens: u64,
}

fn all_cooling_error(model: &str, wait: u64) -> ApiError {
    ApiError::new(
        429,
        ErrorType::RateLimitError,
        "all_keys_cooling",
        format!(
            "every provider key for `{model}` is rate-limited, cooling down or at its configured limit; retry in about {wait}s"
        ),
    )
    .with_retry_after(wait)
}

/// Runs a request over its candidates: plan, take limit permits, attempt in score order; when nothing may run now,
/// wait in the queue (in arrival order, up to the queue timeout) for the soonest candidate to free up.
pub async fn run(state: AppState, meta: RequestMeta, body: Bytes, set: RouteSet) -> Response {
    let tenant = meta.tenant.clone();
    state.events.started(InFlight {
        req_id: meta.request_id.clone(),
        user_id: tenant.user_id.clone(),
        requested_model: meta.requested_model.clone(),
        stream: meta.operation.stream(),
        started_at_ms: crate::events::now_ms(),
        input_tokens: meta.input_estimate,
        output_tokens: 0,
        attempt: 0,
        provider: None,
        model: None,
        key_id: None,
        proxy: None,
    });
    let mut guard = RequestGuard {
        state: state.clone(),
        meta,
        attempts: 0,
        served: None,
        proxy: None,
        recorded: false,
        permit: None,
    };
    let deadline = Instant::now() + state.config.queue_timeout;
    let lane = format!("{}\u{0}{}", tenant.user_id, guard.meta.requested_model);
    let mut place: Option<Place> = None;
    let mut turn: Option<Turn> = None;
    // Candidates refused for the request itself (not cooled): never tried twice.
    let mut fits = set.fits.clone();
    let mut failures: Vec<(usize, Arc<str>, UpstreamFailure)> = Vec::new();
    let rotation = state.rotation.fetch_add(1, Ordering::Relaxed);
    let turn_of_conversation = (state.config.context_handoff
        && matches!(guard.meta.operation, Operation::Chat { .. }))
    .then(|| handoff::recognise(&tenant.user_id, &body))
    .flatten();
    loop {
        let now = Instant::now();
        let day = Day::from_system_time();
        let candidates: Vec<Candidate<'_>> = set
            .routes
            .iter()
            .zip(&fits)
            .zip(&set.priorities)
            .map(|((r, fits), priority)| Candidate {
                key: &tenant.keys[r.key].id,
                model: &r.model,
                scopes: &r.scopes,
                fits: *fits,
                priority: *priority,
            })
            .collect();
        let plan = state
            .books
            .plan(&candidates, set.tokens, now, day, rotation, set.strategy);
        let may_run = turn.is_some() || !state.queue.has_waiters(&lane);
        if !plan.ready.is_empty() && may_run {
            for &i in &plan.ready {
                if guard.attempts as usize >= state.config.max_attempts {
                    break;
                }
                let Ok(permit) = state.books.acquire(&candidates[i], set.tokens, now, day) else {
                    // Taken by a concurrent request since planning; the next candidate may be free.
                    continue;
                };
                let route = &set.routes[i];
                let key = tenant.keys[route.key].clone();
                let model = &route.model;
                let attempt_body = if **model == *guard.meta.requested_model {
                    body.clone()
                } else {
                    match with_model(&body, model) {
                        Ok(b) => b,
                        Err(_) => {
                            state.books.limits.refund(&permit);
                            let err = ApiError::invalid_request(
                                "invalid_json",
                                "request body is not a valid JSON object",
                            );
                            guard.record_error(&err);
                            return error_response(&err);
                        }
                    }
                };
                let attempt_body = match turn_of_conversation
                    .as_ref()
                    .and_then(|t| state.conversations.switched_from(t, model, Instant::now()))
                    .and_then(|previous| handoff::with_note(&attempt_body, &previous, model))
                {
                    Some(noted) => noted,
                    None => attempt_body,
                };
                guard.attempts += 1;
                let key_route = KeyRoute {
                    user_id: &tenant.user_id,
                    key_id: &key.id,
                    platform: key.platform.id(),
                    base_url: &key.endpoint.base_url,
                };
                let mut egress = state.proxies.egress_for(key_route, Instant::now());
                let announce = |egress: &Egress| {
                    state.events.attempt(
                        &tenant.user_id,
                        &guard.meta.request_id,
                        guard.attempts,
                        key.platform.id(),
                        model,
                        &key.id,
                        egress.label(),
                    )
                };
                announce(&egress);
                if !key.limits.is_unlimited() && state.events.listening() {
                    // The key's gauge moved: one request (and its token estimate) more this minute.
                    let usage = state.books.limits.usage(&key.id, now, day);
                    state
                        .events
                        .publish(&tenant.user_id, "ratelimit.gauge", || {
                            serde_json::json!({
                                "key_id": key.id, "rpm_used": usage.rpm_used, "rpm_limit": key.limits.rpm,
                                "tpm_used": usage.tpm_used, "tpm_limit": key.limits.tpm,
                            })
                        });
                }
                let attempt_started = Instant::now();
                let result = attempt_through(
                    &state,
                    &key,
                    model,
                    &guard.meta.request_id,
                    key_route,
                    &mut egress,
                    attempt_body,
                    guard.meta.operation,
                    &announce,
                )
                .await;
                guard.proxy = egress.label().cloned();
                let failure = match result {
                    Ok(Upstream::Complete { body, usage }) => {
                        drop(turn.take());
                        let latency = attempt_started.elapsed();
                        state.books.cooldowns.record_success((&key.id, model));
                        if let Some(t) = &turn_of_conversation {
                            state.conversations.served(t, model, Instant::now());
                        }
                        state
                            .books
                            .scores
                            .record(&key.id, model, true, Some(latency));
                        if let Some(u) = usage {
                            state
                                .books
                                .limits
                                .reconcile(&permit, u.prompt_tokens + u.completion_tokens);
                        }
                        guard.served = Some((key.clone(), model.clone()));
                        let response = success_response(
                            &guard,
                            &key,
                            model,
                            "application/json",
                            Body::from(body),
                        );
                        guard.record(Completion {
                            status: "success",
                            http_status: 200,
                            error: None,
                            usage,
                            output_estimate: None,
                            ttfb: Some(latency),
                        });
                        return response;
                    }
                    Ok(Upstream::Stream(committed)) => {
                        drop(turn.take());
                        let ttft = attempt_started.elapsed();
                        state.books.cooldowns.record_success((&key.id, model));
                        if let Some(t) = &turn_of_conversation {
                            state.conversations.served(t, model, Instant::now());
                        }
                        state.books.scores.record(&key.id, model, true, Some(ttft));
                        guard.served = Some((key.clone(), model.clone()));
                        guard.permit = Some(permit);
                        let ttfb = guard.meta.started.elapsed();
                        let idle = state.config.stream_idle_timeout;
                        let mut response = success_response(
                            &guard,
                            &key,
                            model,
                            "text/event-stream",
                            Body::empty(),
                        );
                        response
                            .headers_mut()
                            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                        *response.body_mut() =
                            Body::new(RelayBody::new(committed, idle, guard, ttfb));
                        return response;
                    }
                    Err(failure) => failure,
                };
                // A request that never reached the provider (connection refused, DNS, a failed proxy) used none of
                // its allowance.
                if matches!(failure.class, ErrorClass::Network | ErrorClass::Proxy)
                    && failure.status.is_none()
                {
                    state.books.limits.refund(&permit);
                }
                let cooldown = on_failure(&state, &tenant.user_id, &key, model, &failure);
                if cooldown.is_some() {
                    // Only the candidate's own failures count against it, not a request it could not take.
                    state.books.scores.record(&key.id, model, false, None);
                }
                state
                    .events
                    .publish(&tenant.user_id, "request.attempt_failed", || {
                        serde_json::json!({
                            "req_id": guard.meta.request_id, "attempt": guard.attempts,
                            "provider": key.platform.id(), "model": model, "key_id": key.id,
                            "error_class": failure.class.as_str(), "status": failure.status,
                            "message": failure.message,
                            "latency_ms": attempt_started.elapsed().as_millis() as u64,
                            "cooldown_ms": cooldown.map(|d| d.as_millis() as u64),
                        })
                    });
                if !failure.class.retryable() {
                    let status = failure
                        .status
                        .filter(|s| (400..500).contains(s))
                        .unwrap_or(400);
                    let err = ApiError::new(
                        status,
                        ErrorType::InvalidRequestError,
                        "upstream_rejected_request",
                        format!(
                            "{} rejected the request: {}",
                            key.platform.info().display_name,
                            failure.message
                        ),
                    );
                    guard.record_error(&err);
                    return error_response(&err);
                }
                if cooldown.is_none() {
                    fits[i] = false;
                }
                failures.push((route.key, model.clone(), failure));
            }
            if guard.attempts as usize >= state.config.max_attempts {
                let err = exhausted_error(&state, &tenant, &guard.meta.requested_model, &failures);
                guard.record_error(&err);
                return error_response(&err);
            }
            // Every ready candidate failed or was taken meanwhile: plan again (and wait if nothing is ready).
            continue;
        }
        // Nothing may run now.
        let now = Instant::now();
        let Some(free) = plan.soonest_free else {
            if !plan.ready.is_empty() {
                // Candidates are ready but others queued first: wait for our turn.
                if place.is_none() {
                    match state.queue.join(&lane) {
                        Ok(p) => place = Some(p),
                        Err(QueueFull) => {
                            let err = all_cooling_error(&guard.meta.requested_model, 1);
                            guard.record_error(&err);
                            return error_response(&err);
                        }
                    }
                }
                if let Some(p) = &place {
                    match tokio::time::timeout_at(deadline, p.turn()).await {
                        Ok(t) => turn = Some(t),
                        Err(_) => {
                            let err = all_cooling_error(&guard.meta.requested_model, 1);
                            guard.record_error(&err);
                            return error_response(&err);
                        }
                    }
                }
                continue;
            }
            let err = if failures.is_empty() {
                no_candidate_error(&guard.meta.requested_model, &plan)
            } else {
                exhausted_error(&state, &tenant, &guard.meta.requested_model, &failures)
            };
            guard.record_error(&err);
            return error_response(&err);
        };
        if free > deadline {
            let err = if failures.is_empty() {
                all_cooling_error(&guard.meta.requested_model, retry_after_secs(free, now))
            } else {
                exhausted_error(&state, &tenant, &guard.meta.requested_model, &failures)
            };
            guard.record_error(&err);
            return error_response(&err);
        }
        if place.is_none() {
            match state.queue.join(&lane) {
                Ok(p) => place = Some(p),
                Err(QueueFull) => {
                    let err =
                        all_cooling_error(&guard.meta.requested_model, retry_after_secs(free, now));
                    guard.record_error(&err);
                    return error_response(&err);
                }
            }
        }
        if turn.is_none() {
            if let Some(p) = &place {
                match tokio::time::timeout_at(deadline, p.turn()).await {
                    Ok(t) => {
                        // Whoever held the turn may have taken what freed up: plan again first.
                        turn = Some(t);
                        continue;
                    }
                    Err(_) => {
                        let err = all_cooling_error(&guard.meta.requested_model, 1);
                        guard.record_error(&err);
                        return error_response(&err);
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(free) => {}
            _ = state.queue.changed() => {}
        }
    }
}

/// No candidate could ever run: every key is invalid or none fits the request.
fn no_candidate_error(model: &str, plan: &router::Plan) -> ApiError {
    if plan.invalid > 0 && plan.unfit == 0 {
        return ApiError::new(
            503,
            ErrorType::ServiceUnavailable,
            "no_provider_available",
            format!(
                "every provider key for `{model}` was refused by its provider (invalid credentials); fix or re-check the keys"
            ),
        );
    }
    ApiError::invalid_request(
        "context_length_exceeded",
        format!(
            "no provider for `{model}` can take this request: the prompt plus max_tokens exceeds every candidate's context window or per-minute token limit"
        ),
    )
    .with_param("messages")
}

/// Response headers naming what served the request. Built once: a name given as `&str` is parsed, and a custom
/// one copied into a new allocation, on every insert.
static PROVIDER_HEADER: HeaderName = HeaderName::from_static("x-freellmapi-provider");
static MODEL_HEADER: HeaderName = HeaderName::from_static("x-freellmapi-model");
static PROVIDER_KEY_HEADER: HeaderName = HeaderName::from_static("x-freellmapi-provider-key");
static ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("x-freellmapi-attempts");
static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

fn success_response(
    guard: &RequestGuard,
    key: &ProviderKeyEntry,
    model: &str,
    content_type: &'static str,
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        PROVIDER_HEADER.clone(),
        HeaderValue::from_static(key.platform.id()),
    );
    if let Ok(v) = HeaderValue::from_str(model) {
        headers.insert(MODEL_HEADER.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&key.id) {
        headers.insert(PROVIDER_KEY_HEADER.clone(), v);
    }
    const SMALL: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    let attempts = match SMALL.get(guard.attempts as usize) {
        Some(n) => HeaderValue::from_static(n),
        None => HeaderValue::from(guard.attempts),
    };
    headers.insert(ATTEMPTS_HEADER.clone(), attempts);
    if let Ok(v) = HeaderValue::from_str(&guard.meta.request_id) {
        headers.insert(REQUEST_ID_HEADER.clone(), v);
    }
    response
}

/// Cools the candidate (or marks its key invalid) and logs the failure; returns the cooldown set, if any.
fn on_failure(
    state: &AppState,
    user: &Arc<str>,
    key: &ProviderKeyEntry,
    model: &str,
    failure: &UpstreamFailure,
) -> Option<Duration> {
    let cooldown = state.books.cooldowns.record_failure(
        (&key.id, model),
        outcome_for(failure),
        Instant::now(),
    );
    if let Some(d) = cooldown {
        let until = crate::events::now_ms() + d.as_millis() as u64;
        state.events.publish(user, "key.status", || {
            serde_json::json!({
                "key_id": key.id, "model": model, "status": if failure.class == ErrorClass::RateLimited
                    || failure.class == ErrorClass::QuotaExhausted { "rate_limited" } else { "error" },
                "reason": failure.class.as_str(), "cooldown_until_ms": until,
            })
        });
    }
    tracing::warn!(
        target: "freellmapi::attempt",
        provider = key.platform.id(),
        model,
        provider_key = %key.id,
        class = failure.class.as_str(),
        status = failure.status,
        cooldown_s = cooldown.map(|d| d.as_secs()),
        message = %failure.message,
        "upstream attempt failed"
    );
    if failure.class == ErrorClass::Auth {
        state.books.cooldowns.mark_invalid(&key.id, key.updated_at);
        state.events.publish(user, "key.status", || {
            serde_json::json!({ "key_id": key.id, "status": "invalid", "reason": failure.message })
        });
        let state = state.clone();
        let key_id = key.id.to_string();
        let reason = format!(
            "{} {}",
            failure.status.map_or(String::new(), |s| s.to_string()),
            failure.message
        );
        let version = key.updated_at;
        tokio::spawn(async move {
            let persisted = state
                .store
                .set_provider_key_status_if_unchanged(
                    &key_id,
                    version,
                    "invalid",
                    Some(reason.trim()),
                )
                .await;
            match persisted {
                Ok(true) => {
                    if let Err(e) = state.reload().await {
                        tracing::error!(error = %e, "could not reload the key pool");
                    }
                }
                // The key was edited meanwhile: the verdict was about its old version.
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "could not persist invalid key status"),
            }
        });
    }
    cooldown
}

fn exhausted_error(
    state: &AppState,
    tenant: &Tenant,
    model: &str,
    failures: &[(usize, Arc<str>, UpstreamFailure)],
) -> ApiError {
    let all = |f: &dyn Fn(ErrorClass) -> bool| failures.iter().all(|(_, _, x)| f(x.class));
    let mut trail: Vec<String> = failures
        .iter()
        .take(10)
        .map(|(k, m, f)| {
            let key = &tenant.keys[*k];
            let status = f.status.map_or(String::new(), |s| format!(" {s}"));
            format!(
                "{}/{} (key {}): {}{} {}",
                key.platform.id(),
                m,
                key.id,
                f.class.as_str(),
                status,
                f.message
            )
        })
        .collect();
    if failures.len() > 10 {
        trail.push(format!("+{} more", failures.len() - 10));
    }
    let trail = trail.join("; ");
    if all(&|c| c == ErrorClass::Auth) {
        return ApiError::new(
            502,
            ErrorType::ProviderError,
            "provider_authentication_failed",
            format!("every provider key tried for `{model}` was refused by its provider: {trail}"),
        );
    }
    if all(&|c| c == ErrorClass::Proxy) {
        return ApiError::new(
            502,
            ErrorType::ProviderError,
            "proxy_unavailable",
            format!("every outbound proxy tried for `{model}` failed: {trail}"),
        );
    }
    if all(&|c| c == ErrorClass::ContextTooLong) {
        return ApiError::invalid_request(
            "context_length_exceeded",
            format!(
                "the prompt does not fit the context window of any provider for `{model}`: {trail}"
            ),
        )
        .with_param("messages");
    }
    if all(&|c| matches!(c, ErrorClass::RateLimited | ErrorClass::QuotaExhausted)) {
        let now = Instant::now();
        let soonest = failures
            .iter()
            .filter_map(|(k, m, _)| {
                state
                    .books
                    .cooldowns
                    .cooling_until((&tenant.keys[*k].id, m), now)
            })
            .min()
            .map_or(1, |t| t.saturating_duration_since(now).as_secs().max(1));
        return ApiError::new(
            429,
            ErrorType::RateLimitError,
            "rate_limit_exceeded",
            format!(
                "every provider for `{model}` is rate-limited; retry in about {soonest}s: {trail}"
            ),
        )
        .with_retry_after(soonest);
    }
    ApiError::new(
        502,
        ErrorType::ProviderError,
        "upstream_failed",
        format!(
            "all {} attempts for `{model}` failed: {trail}",
            failures.len()
        ),
    )
}

/// A successful upstream answer.
enum Upstream {
    Complete { body: Bytes, usage: Option<Usage> },
    Stream(Committed),
}

/// A stream past its commit point: what was held back, and the rest.
struct Committed {
    held: Vec<Bytes>,
    rest: UpstreamStream,
    watch: StreamWatch,
}

const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_HELD_BYTES: usize = 1024 * 1024;

async fn read_error_body(body: UpstreamBody) -> Bytes {
    let mut stream = body.into_stream();
    let mut out = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            let room = MAX_ERROR_BODY - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    Bytes::from(out)
}

#[derive(serde::Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Usage>,
}

/// A translation the dialect refused: the client's request cannot be expressed for this provider.
fn dialect_failure(key: &ProviderKeyEntry, e: DialectError) -> UpstreamFailure {
    match e {
        DialectError::BadRequest { message, .. } => UpstreamFailure {
            class: ErrorClass::BadRequest,
            status: Some(400),
            retry_after: None,
            message: format!(
                "the request cannot be expressed in {}'s format: {message}",
                key.platform.info().display_name
            ),
        },
        DialectError::Upstream(message) => UpstreamFailure::new(ErrorClass::Server, message),
    }
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(serde::Deserialize)]
struct StreamOptionsOnly {
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// One attempt of `key` through its egress. When the proxy itself fails, the proxy is marked unhealthy and the same
/// key is retried through another proxy (or direct, when the settings allow it), up to `max_proxies_per_attempt`
/// proxies, without penalising the key; `on_switch` announces each new proxy. Keeps each proxy's statistics.
#[allow(clippy::too_many_arguments)]
async fn attempt_through(
    state: &AppState,
    key: &ProviderKeyEntry,
    model: &str,
    request_id: &str,
    route: KeyRoute<'_>,
    egress: &mut Egress,
    body: Bytes,
    operation: Operation,
    on_switch: &(dyn Fn(&Egress) + Sync),
) -> Result<Upstream, UpstreamFailure> {
    let mut tried: Vec<Arc<str>> = Vec::new();
    loop {
        let Some(proxy) = egress.proxy().cloned() else {
            return attempt(
                state,
                key,
                Transport::Direct(&state.direct),
                model,
                request_id,
                body,
                operation,
            )
            .await;
        };
        let stats = &proxy.stats;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes_out
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        let result = attempt(
            state,
            key,
            Transport::Proxied(&proxy.client),
            model,
            request_id,
            body.clone(),
            operation,
        )
        .await;
        let failure = match result {
            Err(f) if f.class == ErrorClass::Proxy => f,
            other => {
                let latency = started.elapsed();
                let answered = match &other {
                    Ok(_) => true,
                    Err(f) => f.status.is_some(),
                };
                if answered {
                    // The proxy relayed an answer, whatever the upstream said.
                    stats.record_latency(latency);
                    proxy
                        .health
                        .success(latency, state.proxies.config.healthy_after);
                }
                return match other {
                    Ok(Upstream::Complete { body, usage }) => {
                        stats.successes.fetch_add(1, Ordering::Relaxed);
                        stats
                            .bytes_in
                            .fetch_add(body.len() as u64, Ordering::Relaxed);
                        Ok(Upstream::Complete { body, usage })
                    }
                    Ok(Upstream::Stream(mut committed)) => {
                        stats.successes.fetch_add(1, Ordering::Relaxed);
                        let held: usize = committed.held.iter().map(Bytes::len).sum();
                        stats.bytes_in.fetch_add(held as u64, Ordering::Relaxed);
                        let counter = proxy.stats.clone();
                        committed.rest = Box::pin(committed.rest.inspect(move |chunk| {
                            if let Ok(chunk) = chunk {
                                counter
                                    .bytes_in
                                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            }
                        }));
                        Ok(Upstream::Stream(committed))
                    }
                    Err(f) => {
                        stats.set_last_error(&f.message);
                        Err(f)
                    }
                };
            }
        };
        stats.proxy_errors.fetch_add(1, Ordering::Relaxed);
        stats.set_last_error(&failure.message);
        proxy.health.request_failure();
        tracing::warn!(
            target: "freellmapi::proxy",
            proxy = %proxy.label,
            address = %proxy.url,
            provider_key = %key.id,
            message = %failure.message,
            "outbound proxy failed; marked unhealthy, the key is not penalised"
        );
        tried.push(proxy.id.clone());
        if tried.len() >= state.proxies.config.max_proxies_per_attempt {
            return Err(failure);
        }
        match state
            .proxies
            .failover(route, &proxy, &tried, Instant::now())
        {
            Some(next) => {
                *egress = next;
                on_switch(egress);
            }
            None => return Err(failure),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    state: &AppState,
    key: &ProviderKeyEntry,
    transport: Transport<'_>,
    model: &str,
    request_id: &str,
    body: Bytes,
    operation: Operation,
) -> Result<Upstream, UpstreamFailure> {
    let config = &state.config;
    let deadline = Instant::now() + config.upstream_timeout;
    let adapter = key.adapter;
    // What a native answer needs to be translated back (the OpenAI dialect needs nothing).
    let native = adapter.is_native().then(|| {
        let include_usage = serde_json::from_slice::<StreamOptionsOnly>(&body)
            .ok()
            .and_then(|o| o.stream_options)
            .is_some_and(|o| o.include_usage);
        let base64 = providers::dialect::openai_embeddings_wants_base64(&body);
        (include_usage, base64)
    });
    let request = match operation {
        Operation::Chat { stream } => adapter.chat_request(&key.endpoint, model, body, stream),
        Operation::Embeddings => adapter.embeddings_request(&key.endpoint, model, body),
    }
    .map_err(|e| dialect_failure(key, e))?;
    let response = match tokio::time::timeout_at(deadline, transport.send(request)).await {
        Err(_) => {
            return Err(UpstreamFailure::new(
                ErrorClass::Timeout,
                format!(
                    "no response within {} ms",
                    config.upstream_timeout.as_millis()
                ),
            ))
        }
        Ok(Err(e)) => {
            return Err(match transport {
                Transport::Proxied(_) => {
                    classify_proxied_transport(&*e.error, e.timeout, e.connect)
                }
                Transport::Direct(_) => classify_transport(&*e.error, e.timeout),
            })
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if !status.is_success() {
        let (head, body) = response.into_parts();
        let body = read_error_body(body).await;
        let mut failure = classify_response(status, &head.headers, &body);
        if status.is_redirection() {
            let location = head
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            failure.message = providers::sanitize_message(&format!(
                "the provider redirected to {location}; redirects are not followed, so set the key's base URL to \
                 the address it redirects to"
            ));
        }
        return Err(failure);
    }
    learn_from_headers(state, key, model, response.headers());
    if !operation.stream() {
        let body = match tokio::time::timeout_at(deadline, response.into_body().bytes()).await {
            Err(_) => {
                return Err(UpstreamFailure::new(
                    ErrorClass::Timeout,
                    "response body not complete in time",
                ))
            }
            Ok(Err(e)) => return Err(upstream::classify_body_error(&e)),
            Ok(Ok(b)) => b,
        };
        let body = match (native, operation) {
            (None, Operation::Chat { .. }) => {
                providers::quirks::openai_chat_response(key.platform, body)
            }
            (None, Operation::Embeddings) => body,
            (Some((_, base64)), Operation::Embeddings) => adapter
                .embeddings_response(body, model, base64)
                .map_err(|e| dialect_failure(key, e))?,
            (Some(_), Operation::Chat { .. }) => adapter
                .chat_response(body, model, &format!("chatcmpl-{request_id}"), unix_now())
                .map_err(|e| dialect_failure(key, e))?,
        };
        return match serde_json::from_slice::<UsageOnly>(&body) {
            Ok(parsed) => Ok(Upstream::Complete {
                body,
                usage: parsed.usage,
            }),
            Err(_) => Err(UpstreamFailure {
                class: ErrorClass::Server,
                status: Some(status.as_u16()),
                retry_after: None,
                message: "upstream answered 200 with a body that is not a JSON object".into(),
            }),
        };
    }
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Err(UpstreamFailure::new(
            ErrorClass::Server,
            "upstream did not answer with an event stream",
        ));
    }
    let upstream = response.into_body().into_stream();
    let upstream = match native.and_then(|(include_usage, _)| {
        adapter.chat_stream(
            model,
            &format!("chatcmpl-{request_id}"),
            unix_now(),
            include_usage,
        )
    }) {
        Some(translator) => Box::pin(TranslatedStream {
            inner: upstream,
            splitter: SseSplitter::default(),
            translator,
            out: Vec::new(),
            ended: false,
        }),
        None => upstream,
    };
    hold_until_first_delta(upstream, config.first_token_stall).await
}

/// A provider's own rate-limit headers: the remaining share feeds the score's headroom, and a used-up allowance
/// rests the candidate until it resets, so the next request goes elsewhere instead of provoking a 429.
fn learn_from_headers(
    state: &AppState,
    key: &ProviderKeyEntry,
    model: &str,
    headers: &http::HeaderMap,
) {
    let Some(hint) = providers::ratelimit::rate_limit_hint(headers) else {
        return;
    };
    let now = Instant::now();
    let model: Arc<str> = Arc::from(model);
    state
        .books
        .scores
        .record_hint(&key.id, &model, hint.remaining_fraction, now);
    if let Some(reset) = hint.exhausted_for {
        state.books.cooldowns.record_failure(
            (&key.id, &model),
            Outcome::RateLimited {
                retry_after: Some(reset),
            },
            now,
        );
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A native dialect's event stream, translated on the fly into OpenAI `chat.completion.chunk` frames; everything
/// downstream (the commit-point watch, the relay) sees an OpenAI stream.
struct TranslatedStream {
    inner: UpstreamStream,
    splitter: SseSplitter,
    translator: ChatStreamTranslator,
    out: Vec<u8>,
    ended: bool,
}

impl Stream for TranslatedStream {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Bytes::from(std::mem::take(&mut this.out)))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let (translator, out) = (&mut this.translator, &mut this.out);
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    // An in-band error is written as an OpenAI error frame; the watch downstream acts on it.
                    this.splitter.push(&chunk, |event| {
                        let _ = translator.push(event, out);
                    });
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.splitter.finish(|event| {
                        let _ = translator.push(event, out);
                    });
                    translator.finish(out);
                    this.ended = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Reads a stream until its first content, tool-call or reasoning delta (or a clean finish), holding the bytes back.
/// Gives up — so the next candidate can be tried invisibly — on a stall, a broken or empty stream, or an in-band
/// error frame.
async fn hold_until_first_delta(
    mut rest: UpstreamStream,
    stall: Duration,
) -> Result<Upstream, UpstreamFailure> {
    let deadline = Instant::now() + stall;
    let mut held = Vec::new();
    let mut held_bytes = 0;
    let mut watch = StreamWatch::default();
    loop {
        let next = match tokio::time::timeout_at(deadline, rest.next()).await {
            Err(_) => {
                return Err(UpstreamFailure::new(
                    ErrorClass::Timeout,
                    format!(
                        "no content, tool or reasoning delta within {} ms",
                        stall.as_millis()
                    ),
                ))
            }
            Ok(next) => next,
        };
        match next {
            None => {
                watch.finish_splitter();
                if watch.finished {
                    return Ok(Upstream::Stream(Committed { held, rest, watch }));
                }
                return Err(UpstreamFailure::new(
                    ErrorClass::Server,
                    "stream ended before any output",
                ));
            }
            Some(Err(e)) => {
                let mut f = upstream::classify_body_error(&e);
                if f.class == ErrorClass::Network {
                    f.class = ErrorClass::Server;
                }
                f.message = format!("stream broke before any output: {}", f.message);
                return Err(f);
            }
            Some(Ok(chunk)) => {
                let signal = watch.inspect_fully(&chunk);
                held_bytes += chunk.len();
                held.push(chunk);
                if signal.error {
                    return Err(UpstreamFailure::new(
                        ErrorClass::Server,
                        "upstream sent an in-band error before any output",
                    ));
                }
                // A finish reason without output is a legitimately empty answer; `[DONE]` without either is not.
                if signal.output || watch.finished || held_bytes > MAX_HELD_BYTES {
                    return Ok(Upstream::Stream(Committed { held, rest, watch }));
                }
                if watch.done {
                    return Err(UpstreamFailure::new(
                        ErrorClass::Server,
                        "stream ended with no output and no finish reason",
                    ));
                }
            }
        }
    }
}

/// Whether a relayed event may carry a finish reason or usage: `"finish_reason"` with a string value, or `"usage"` with
/// an object (`null` values are the common case and are skipped). Only those events are parsed after the commit point.
fn worth_parsing(event: &[u8]) -> bool {
    use std::sync::LazyLock;
    static FINISH: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"finish_reason\""));
    static USAGE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    /// The first byte of the value after the key at `at` (`len` bytes long).
    fn value_starts_with(event: &[u8], at: usize, len: usize, first: u8) -> bool {
        event[at + len..]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':'))
            == Some(&first)
    }
    FINISH
        .find_iter(event)
        .any(|at| value_starts_with(event, at, FINISH.needle().len(), b'"'))
        || USAGE
            .find_iter(event)
            .any(|at| value_starts_with(event, at, USAGE.needle().len(), b'{'))
}

/// What the gateway learns from a stream while relaying it.
#[derive(Debug, Default)]
struct StreamWatch {
    splitter: SseSplitter,
    done: bool,
    finished: bool,
    usage: Option<Usage>,
    output_events: u64,
}

impl StreamWatch {
    /// Before the commit point: every event is parsed.
    fn inspect_fully(&mut self, chunk: &[u8]) -> wire::ChunkSignal {
        let mut total = wire::ChunkSignal::default();
        let (done, finished, usage, output_events) = (
            &mut self.done,
            &mut self.finished,
            &mut self.usage,
            &mut self.output_events,
        );
        self.splitter.push(chunk, |event| {
            let s = inspect_chunk(event);
            *done |= s.done;
            *finished |= s.finished;
            if s.usage.is_some() {
                *usage = s.usage;
            }
            if s.output {
                *output_events += 1;
            }
            total.output |= s.output;
            total.error |= s.error;
        });
        total
    }

    /// After the commit point: only events that can carry usage or a finish are parsed; the rest are counted.
    fn observe(&mut self, chunk: &[u8]) {
        let (done, finished, usage, output_events) = (
            &mut self.done,
            &mut self.finished,
            &mut self.usage,
            &mut self.output_events,
        );
        self.splitter.push(chunk, |event| {
            if event == b"[DONE]" {
                *done = true;
                return;
            }
            if worth_parsing(event) {
                let s = inspect_chunk(event);
                *finished |= s.finished;
                if s.usage.is_some() {
                    *usage = s.usage;
                }
                if s.output {
                    *output_events += 1;
                }
            } else {
                *output_events += 1;
            }
        });
    }

    fn finish_splitter(&mut self) {
        let (done, finished) = (&mut self.done, &mut self.finished);
        self.splitter.finish(|event| {
            let s = inspect_chunk(event);
            *done |= s.done;
            *finished |= s.finished;
        });
    }
}

/// The relayed stream: held chunks first, then the upstream's, with an inactivity timeout. Ends with an SSE error
/// event if the upstream stalls, breaks or closes before finishing. Dropping it (client gone) drops the upstream
/// response, which closes that connection.
///
/// Chunks that are already available are coalesced into one frame: after taking a chunk, the body gives the
/// upstream connection task one scheduler turn to produce the next before handing the batch to hyper. A burst of
/// SSE events then costs one socket write instead of one per event, while a model producing tokens one at a time
/// still has each token written as soon as it arrives.
struct RelayBody {
    batch: BytesMut,
    /// Scheduler turns given to the upstream connection since the last chunk.
    turns_given: u8,
    /// Set once the upstream is done: the terminal frame still to send (`Some(None)`: just end).
    ending: Option<Option<Bytes>>,
    upstream: Option<UpstreamStream>,
    /// The inactivity watch ticks every quarter of the timeout instead of being re-armed per chunk (a clock read and
    /// a timer move per chunk): a chunk sets `active`; four silent ticks in a row end the stream, so a stall is
    /// reported between 1 and 1.25 timeouts after the last chunk.
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    active: bool,
    silent_ticks: u8,
    watch: StreamWatch,
    guard: RequestGuard,
    ttfb: Duration,
    /// When the live board last heard this stream's output count.
    last_progress: Option<Instant>,
}

/// Inactivity checks per idle timeout (see `RelayBody::idle`).
const IDLE_TICKS: u32 = 4;

/// Output-count events per stream are sent at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

const MAX_BATCH: usize = 64 * 1024;
/// Scheduler turns without a new chunk before the batch is written. The upstream connection task needs more than
/// one turn to hand over its next decoded chunk.
const TURNS_BEFORE_FLUSH: u8 = 3;

type FramePoll = Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>>;

impl RelayBody {
    fn new(
        committed: Committed,
        idle_timeout: Duration,
        guard: RequestGuard,
        ttfb: Duration,
    ) -> Self {
        let held_len = committed.held.iter().map(Bytes::len).sum::<usize>();
        let mut batch = BytesMut::with_capacity(held_len.max(4096));
        for chunk in &committed.held {
            batch.extend_from_slice(chunk);
        }
        Self {
            batch,
            turns_given: 0,
            ending: None,
            upstream: Some(committed.rest),
            idle: Box::pin(tokio::time::sleep(idle_timeout / IDLE_TICKS)),
            idle_timeout,
            active: false,
            silent_ticks: 0,
            watch: committed.watch,
            guard,
            ttfb,
            last_progress: None,
        }
    }

    /// Whether the idle timeout passed without a chunk (polls the tick timer, re-arming it on every tick).
    fn idle_elapsed(&mut self, cx: &mut Context<'_>) -> bool {
        while self.idle.as_mut().poll(cx).is_ready() {
            if std::mem::take(&mut self.active) {
                self.silent_ticks = 0;
            } else {
                self.silent_ticks += 1;
                if u32::from(self.silent_ticks) >= IDLE_TICKS {
                    return true;
                }
            }
            let next = Instant::now() + self.idle_timeout / IDLE_TICKS;
            self.idle.as_mut().reset(next);
        }
        false
    }

    /// Tells the live board how much output has streamed (throttled; free when nobody watches).
    fn progress(&mut self) {
        let events = &self.guard.state.events;
        if !events.listening() {
            return;
        }
        let now = Instant::now();
        if self
            .last_progress
            .is_some_and(|last| now.duration_since(last) < PROGRESS_INTERVAL)
        {
            return;
        }
        self.last_progress = Some(now);
        let meta = &self.guard.meta;
        events.tokens(
            &meta.tenant.user_id,
            &meta.request_id,
            self.watch.output_events,
        );
    }

    fn complete(&mut self, status: &'static str, error: Option<ApiError>) -> Option<Bytes> {
        self.upstream = None;
        let event = error.as_ref().map(|e| Bytes::from(e.to_sse_event()));
        self.guard.record(Completion {
            status,
            http_status: 200,
            error: error.map(|e| (e.code, e.message)),
            usage: self.watch.usage,
            output_estimate: Some(self.watch.output_events),
            ttfb: Some(self.ttfb),
        });
        event
    }

    fn flush(&mut self) -> FramePoll {
        self.turns_given = 0;
        Poll::Ready(Some(Ok(Frame::data(self.batch.split().freeze()))))
    }

    /// Sends what is batched, then the terminal frame (if any), then ends.
    fn finish_with(&mut self, terminal: Option<Bytes>) -> FramePoll {
        if !self.batch.is_empty() {
            self.ending = Some(terminal);
            return self.flush();
        }
        match terminal {
            Some(event) => {
                self.ending = Some(None);
                Poll::Ready(Some(Ok(Frame::data(event))))
            }
            None => Poll::Ready(None),
        }
    }
}

fn stream_error(code: &'static str, message: String) -> ApiError {
    ApiError::new(502, ErrorType::StreamError, code, message)
}

impl http_body::Body for RelayBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> FramePoll {
        let this = self.get_mut();
        if let Some(terminal) = this.ending.take() {
            return this.finish_with(terminal);
        }
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return this.finish_with(None);
            };
            match upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.watch.observe(&chunk);
                    this.progress();
                    this.active = true;
                    this.turns_given = 0;
                    this.batch.extend_from_slice(&chunk);
                    if this.batch.len() >= MAX_BATCH {
                        return this.flush();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = format!(
                        "the upstream stream broke: {}",
                        upstream::classify_body_error(&e).message
                    );
                    let event = this.complete(
                        "error",
                        Some(stream_error("upstream_stream_broken", message)),
                    );
                    return this.finish_with(event);
                }
                Poll::Ready(None) => {
                    this.watch.finish_splitter();
                    let event = if this.watch.done || this.watch.finished {
                        this.complete("success", None)
                    } else {
                        let err = stream_error(
                            "upstream_stream_incomplete",
                            "the upstream closed the stream before finishing".into(),
                        );
                        this.complete("error", Some(err))
                    };
                    return this.finish_with(event);
                }
                Poll::Pending => {
                    if !this.batch.is_empty() {
                        if this.turns_given < TURNS_BEFORE_FLUSH {
                            // Let the upstream connection task run; we are polled again right after it.
                            this.turns_given += 1;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        return this.flush();
                    }
                    if this.idle_elapsed(cx) {
                        let message = format!(
                            "the upstream sent nothing for {} ms",
                            this.idle_timeout.as_millis()
                        );
                        let event = this.complete(
                            "error",
                            Some(stream_error("upstream_stream_stalled", message)),
                        );
                        return this.finish_with(event);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_rewrite_keeps_other_fields_verbatim() {
        let body = Bytes::from_static(br#"{"model":"auto","messages":[{"role":"user","content":"h\u00e9"}],"x_vendor":{"a":1.50}}"#);
        let out = with_model(&body, "real").unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(r#""model":"real""#), "{text}");
        assert!(text.contains(r#""content":"h\u00e9""#), "{text}");
        assert!(text.contains(r#"{"a":1.50}"#), "{text}");
    }

    #[test]
    fn only_events_with_a_finish_reason_or_usage_are_parsed() {
        assert!(!worth_parsing(
            br#"{"choices":[{"delta":{"content":"hi"},"finish_reason":null}],"usage":null}"#
        ));
        assert!(worth_parsing(
            br#"{"choices":[{"delta":{},"finish_reason": "stop"}]}"#
        ));
        assert!(worth_parsing(
            br#"{"choices":[],"usage" : {"prompt_tokens":1,"completion_tokens":2}}"#
        ));
        // A key inside content is escaped, so it never matches the unescaped needle.
        assert!(!worth_parsing(
            br#"{"choices":[{"delta":{"content":"\"usage\" {"},"finish_reason":null}]}"#
        ));
    }

    #[test]
    fn midnight_is_within_a_day() {
        let d = until_utc_midnight();
        assert!(d > Duration::ZERO && d <= Duration::from_secs(86_400));
    }
}
