//! The attempt loop: try the ordered candidates until one answers, classify each failure once, cool the candidate
//! down, and move on while nothing has reached the client. Streams are held until their first real delta (content,
//! tool call or reasoning) — the commit point — and then relayed chunk by chunk with an inactivity timeout.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue};
use providers::{ErrorClass, UpstreamFailure};
use router::{retry_after_secs, Candidate, Day, Place, QueueFull, Strategy, Turn};
use tokio::time::Instant;
use wire::{ApiError, ErrorType};

mod attempt;

pub(crate) use attempt::unix_now;
mod failure;
mod record;
mod stream;

use attempt::*;
use failure::*;
use record::*;
use stream::*;

use crate::error::error_response;
use crate::proxy::{Egress, KeyRoute};
use crate::runtime::events::InFlight;
use crate::runtime::handoff;
use crate::runtime::snapshot::{ProviderKeyEntry, Route, Tenant};
use crate::runtime::state::AppState;

/// Which upstream operation a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Chat { stream: bool },
    Embeddings,
}

impl Operation {
    pub fn endpoint(self) -> &'static str {
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
    /// The model routed: the client's, or what a vendor name was mapped to (`claude-sonnet-…` → `auto`).
    pub requested_model: String,
    /// The client's own model name when it was mapped, for history, logs and the live board.
    pub client_model: Option<String>,
    pub operation: Operation,
    /// The surface the client called (`chat`, `responses`, `messages`, `embeddings`), for history and logs.
    pub endpoint: &'static str,
    pub input_estimate: u64,
    pub started: std::time::Instant,
}

/// Replaces the `model` field of a JSON object body (for `auto`), keeping every other value byte for byte.
pub(crate) fn with_model(body: &Bytes, model: &str) -> Result<Bytes, serde_json::Error> {
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
    /// What the request asks of the keys' token limits (prompt estimate, output bound); each candidate reserves
    /// the prompt plus its own output estimate (`router::OutputBook`).
    pub ask: router::TokenAsk,
}

/// Runs a request over its candidates: plan, take limit permits, attempt in score order; when nothing may run now,
/// wait in the queue (in arrival order, up to the queue timeout) for the soonest candidate to free up.
pub async fn run(state: AppState, meta: RequestMeta, body: Bytes, set: RouteSet) -> Response {
    let tenant = meta.tenant.clone();
    state.events.started(InFlight {
        req_id: meta.request_id.clone(),
        user_id: tenant.user_id.clone(),
        requested_model: meta
            .client_model
            .clone()
            .unwrap_or_else(|| meta.requested_model.clone()),
        stream: meta.operation.stream(),
        started_at_ms: crate::runtime::events::now_ms(),
        input_tokens: meta.input_estimate,
        output_tokens: 0,
        attempt: 0,
        provider: None,
        model: None,
        key_id: None,
        proxy: None,
        queued_until_ms: None,
    });
    let mut guard = RequestGuard {
        state: state.clone(),
        meta,
        attempts: 0,
        served: None,
        proxy: None,
        recorded: false,
        failed: Vec::new(),
        permit: None,
    };
    let deadline = Instant::now() + state.config.queue_timeout;
    let lane = format!("{}\u{0}{}", tenant.user_id, guard.meta.requested_model);
    let mut place: Option<Place> = None;
    let mut turn: Option<Turn> = None;
    // The queue wait last told to the dashboard (Unix ms), so that Live says what the request waits for.
    let mut announced: Option<u64> = None;
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
            .plan(&candidates, set.ask, now, day, rotation, set.strategy);
        let may_run = turn.is_some() || !state.queue.has_waiters(&lane);
        if !plan.ready.is_empty() && may_run {
            for &i in &plan.ready {
                if guard.attempts as usize >= state.config.max_attempts {
                    break;
                }
                let Ok(permit) = state.acquire(&candidates[i], set.ask, now, day).await else {
                    // Taken by a concurrent request since planning; the next candidate may be free.
                    continue;
                };
                // A candidate whose rest just ended is probed by one request; another got there first.
                if !state
                    .claim_probe((candidates[i].key, candidates[i].model), now)
                    .await
                {
                    state.refund(&permit);
                    continue;
                }
                let route = &set.routes[i];
                let key = tenant.keys[route.key].clone();
                let model = &route.model;
                let attempt_body = if **model == *guard.meta.requested_model {
                    body.clone()
                } else {
                    match with_model(&body, model) {
                        Ok(b) => b,
                        Err(_) => {
                            state.refund(&permit);
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
                // A later wait in the queue is news again.
                announced = None;
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
                        if state.recovered((&key.id, model)) {
                            // Back from a rest (its probe answered): requests queued for it may go now.
                            state.queue.wake_all();
                        }
                        if let Some(t) = &turn_of_conversation {
                            state.conversations.served(t, model, Instant::now());
                        }
                        state.scored(&key.id, model, true, Some(latency));
                        if let Some(u) = usage {
                            state.reconcile(&permit, u.prompt_tokens + u.completion_tokens);
                            state.queue.wake_all();
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
                        if state.recovered((&key.id, model)) {
                            // Back from a rest (its probe answered): requests queued for it may go now.
                            state.queue.wake_all();
                        }
                        if let Some(t) = &turn_of_conversation {
                            state.conversations.served(t, model, Instant::now());
                        }
                        state.scored(&key.id, model, true, Some(ttft));
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
                    state.refund(&permit);
                    state.queue.wake_all();
                }
                guard.attempt_failed(&key, model, &failure, attempt_started.elapsed());
                let cooldown = on_failure(
                    &state,
                    &guard.meta.request_id,
                    &tenant.user_id,
                    &key,
                    model,
                    &failure,
                );
                if cooldown.is_some() {
                    // Only the candidate's own failures count against it, not a request it could not take.
                    state.scored(&key.id, model, false, None);
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
                    announce_queued(&state, &tenant, &guard, &mut announced, 0);
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
        let free_ms = crate::runtime::events::now_ms()
            + free.saturating_duration_since(now).as_millis() as u64;
        announce_queued(&state, &tenant, &guard, &mut announced, free_ms);
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

/// Tells the dashboard that the request waits in the queue until about `until_ms` (`0`: for its turn), unless it
/// was already told about the same wait.
fn announce_queued(
    state: &AppState,
    tenant: &Tenant,
    guard: &RequestGuard,
    announced: &mut Option<u64>,
    until_ms: u64,
) {
    if announced.is_some_and(|a| a.abs_diff(until_ms) < 250) {
        return;
    }
    *announced = Some(until_ms);
    state
        .events
        .queued(&tenant.user_id, &guard.meta.request_id, until_ms);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
