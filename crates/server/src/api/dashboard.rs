//! What the dashboard needs beyond the admin REST: the live WebSocket (`/ws`), the model list with profiles and
//! `auto` (`/api/models`), the playground (`/api/playground/chat/completions`, the same relay as `/v1` under the
//! session), per-key statistics and analytics computed from the request history. Everything is scoped to the
//! session's user.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};
use store::RequestStat;
use tokio::sync::broadcast::error::RecvError;
use wire::{ApiError, ErrorType};

use crate::api::session::{session_user, ApiResult};
use crate::error::{not_found, GatewayError};
use crate::ingress::body::read_limited;
use crate::ingress::{serve_chat, Caller};
use crate::runtime::events::now_ms;
use crate::runtime::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws", get(websocket))
        .route("/api/models", get(models))
        .route("/api/playground/chat/completions", post(playground_chat))
        .route("/api/keys/{id}/stats", get(key_stats))
        .route("/api/analytics", get(analytics))
        .route("/api/routing", get(routing))
}

/// The user's routing pool, for the caller of a session route.
fn tenant_of(
    state: &AppState,
    user_id: &str,
) -> Result<Arc<crate::runtime::snapshot::Tenant>, GatewayError> {
    state
        .snapshot
        .load()
        .tenants
        .get(user_id)
        .cloned()
        .ok_or_else(|| {
            GatewayError(ApiError::new(
                403,
                ErrorType::PermissionError,
                "account_disabled",
                "this account is disabled",
            ))
        })
}

/// A cross-site page must not open a socket with the user's cookie: the `Origin`, when sent, must be this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    origin_host.eq_ignore_ascii_case(host)
}

async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    if !same_origin(&headers) {
        return Err(GatewayError(ApiError::new(
            403,
            ErrorType::PermissionError,
            "cross_origin",
            "the live feed only accepts connections from the dashboard's own origin",
        )));
    }
    let user = session_user(&state, &headers).await?;
    let user_id: Arc<str> = Arc::from(user.id.as_str());
    Ok(upgrade.on_upgrade(move |socket| live_feed(state, user_id, socket)))
}

/// The first message of a live feed, and the answer to `{"type":"resync"}`.
fn snapshot_message(state: &AppState, user_id: &str) -> String {
    let now = tokio::time::Instant::now();
    let day = router::Day::from_system_time();
    let snapshot = state.snapshot.load();
    let keys: Vec<Value> = snapshot
        .tenants
        .get(user_id)
        .map(|t| {
            t.keys
                .iter()
                .map(|k| {
                    let usage = state.books.limits.usage(&k.id, now, day);
                    let cooling = state.books.cooldowns.cooldowns_of(&k.id, now);
                    let status = if state.books.cooldowns.is_invalid(&k.id) {
                        "invalid"
                    } else if !cooling.is_empty() {
                        "rate_limited"
                    } else {
                        "healthy"
                    };
                    let longest = cooling.iter().max_by_key(|c| c.1);
                    let until = longest.map(|c| now_ms() + c.1.as_millis() as u64);
                    // The same words as `/api/keys` (the status above only says cooling or invalid or neither).
                    let live = super::keys::live_status(
                        state,
                        &k.id,
                        k.models.iter().map(|m| &**m),
                        true,
                        status == "invalid" || k.stored_invalid,
                        longest.map(|c| c.2),
                        &k.stored_status,
                    );
                    json!({
                        "id": k.id, "platform": k.platform.id(), "label": k.label, "status": status,
                        "live_status": live,
                        "cooldown_until_ms": until, "cooldown_reason": longest.map(|c| c.2.as_str()),
                        "rpm_used": usage.rpm_used, "rpm_limit": k.limits.rpm,
                        "tpm_used": usage.tpm_used, "tpm_limit": k.limits.tpm,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "type": "snapshot",
        "in_flight": state.events.in_flight_of(user_id),
        "totals": state.events.totals_of(user_id),
        "keys": keys,
        // This user's waiting requests only: other tenants' queue is not theirs to see.
        "queue_depth": state.queue.depth_of(&format!("{user_id}\u{0}")),
    })
    .to_string()
}

async fn live_feed(state: AppState, user_id: Arc<str>, mut socket: WebSocket) {
    let mut events = state.events.subscribe();
    if socket
        .send(Message::Text(snapshot_message(&state, &user_id).into()))
        .await
        .is_err()
    {
        return;
    }
    // In a fleet, the other instances send this user's events here while the socket stays open.
    let mut watching = tokio::time::interval(crate::runtime::events::WATCH_RENEWAL);
    loop {
        tokio::select! {
            _ = watching.tick() => {
                state.tell_fleet(|| fleet::Notice::Watching { user: user_id.to_string() });
            }
            event = events.recv() => match event {
                Ok(event) if event.user_id == user_id => {
                    if socket.send(Message::Text((*event.json).into())).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // Too slow to keep up: start over from a fresh snapshot rather than show a wrong picture.
                Err(RecvError::Lagged(_)) => {
                    if socket.send(Message::Text(snapshot_message(&state, &user_id).into())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) if text.contains("\"resync\"") => {
                    if socket.send(Message::Text(snapshot_message(&state, &user_id).into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let tenant = tenant_of(&state, &user.id)?;
    let mut data = vec![json!({ "id": "auto", "kind": "auto", "providers": [] })];
    for (name, routes) in &tenant.groups {
        let mut providers: Vec<&str> = routes
            .iter()
            .map(|r| tenant.keys[r.key].platform.id())
            .collect();
        providers.sort_unstable();
        providers.dedup();
        data.push(json!({
            "id": name,
            "kind": "group",
            "embedding": routes.iter().any(|r| r.embedding),
            "context_window": routes.iter().filter_map(|r| r.context_window).min(),
            "providers": providers,
        }));
    }
    for (model, routes) in tenant
        .models
        .iter()
        .filter(|(m, _)| !tenant.groups.contains_key(*m))
    {
        let mut providers: Vec<&str> = routes
            .iter()
            .map(|r| tenant.keys[r.key].platform.id())
            .collect();
        providers.dedup();
        data.push(json!({
            "id": model,
            "kind": "model",
            "embedding": routes.iter().any(|r| r.embedding),
            "context_window": routes.iter().filter_map(|r| r.context_window).min(),
            "providers": providers,
        }));
    }
    for (name, profile) in &tenant.profiles {
        let mut providers: Vec<&str> = profile
            .members
            .iter()
            .flat_map(|m| tenant.routes_of(m).into_iter().flatten())
            .map(|r| tenant.keys[r.key].platform.id())
            .collect();
        providers.sort_unstable();
        providers.dedup();
        data.push(json!({
            "id": name,
            "kind": "profile",
            "strategy": profile.strategy.as_str(),
            "members": profile.members.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            "context_window": tenant.profile_context_window(profile),
            "providers": providers,
        }));
    }
    Ok(Json(json!({ "data": data })))
}

async fn playground_chat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, GatewayError> {
    let user = session_user(&state, &headers).await?;
    let tenant = tenant_of(&state, &user.id)?;
    let body: Bytes = read_limited(
        &headers,
        body,
        state.config.body_limit_bytes,
        state.config.body_read_timeout,
    )
    .await?;
    let caller = Caller {
        tenant,
        gateway_key_id: Arc::from("playground"),
        gateway_key_prefix: Arc::from("playground"),
        key_limits: (None, None),
    };
    serve_chat(state, caller, &headers, body).await
}

/// The first value of `name` in a query string. Read by hand so that a malformed query (a repeated field, say) is
/// answered in the API's error shape, not the framework's plain-text one.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| percent_decode(v))
}

/// `application/x-www-form-urlencoded` decoding of one value (`+` is a space; a broken escape stays as written).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct RoutingQuery {
    model: String,
}

struct RangeQuery {
    range: Option<String>,
}

/// (window length, bucket length) in milliseconds.
fn range_of(q: &RangeQuery) -> Result<(i64, i64), GatewayError> {
    const HOUR: i64 = 3_600_000;
    match q.range.as_deref().unwrap_or("24h") {
        "24h" => Ok((24 * HOUR, HOUR)),
        "7d" => Ok((7 * 24 * HOUR, 6 * HOUR)),
        "30d" => Ok((30 * 24 * HOUR, 24 * HOUR)),
        "90d" => Ok((90 * 24 * HOUR, 24 * HOUR)),
        other => Err(GatewayError(
            ApiError::invalid_request(
                "invalid_range",
                format!("`range` must be 24h, 7d, 30d or 90d, not `{other}`"),
            )
            .with_param("range"),
        )),
    }
}

/// Most rows read for one statistics page.
const STATS_ROWS: i64 = 100_000;

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Successes over finished attempts: a request its client canceled is neither.
fn success_rate(success: u64, errors: u64) -> Value {
    if success + errors == 0 {
        Value::Null
    } else {
        json!(success as f64 / (success + errors) as f64)
    }
}

fn is_error(r: &RequestStat) -> bool {
    r.status == "error" || r.status == "refused" || r.status == ATTEMPT_FAILED
}

/// The status of a failed upstream attempt among a key's rows (the attempt that served a request is that request's
/// own row).
const ATTEMPT_FAILED: &str = "attempt_failed";

/// Hourly (or `bucket`-wide) counts, oldest first, covering the whole window.
fn series(rows: &[RequestStat], start: i64, window: i64, bucket: i64) -> Vec<Value> {
    let buckets = (window / bucket) as usize;
    let mut counts = vec![(0u64, 0u64, 0i64, 0i64); buckets];
    for r in rows {
        let i = ((r.created_at - start) / bucket) as usize;
        if let Some(c) = counts.get_mut(i) {
            c.0 += 1;
            c.1 += u64::from(is_error(r));
            c.2 += r.input_tokens.unwrap_or(0);
            c.3 += r.output_tokens.unwrap_or(0);
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, (requests, errors, tin, tout))| {
            json!({
                "bucket_start_ms": start + i as i64 * bucket, "hour_start_ms": start + i as i64 * bucket,
                "requests": requests, "errors": errors, "tokens_in": tin, "tokens_out": tout,
            })
        })
        .collect()
}

/// (requests, errors, summed latency ms, tokens in, tokens out).
type Tally = (u64, u64, i64, i64, i64);

/// Requests, errors and mean latency per value of `group`.
fn breakdown<'a>(
    rows: &'a [RequestStat],
    group: impl Fn(&'a RequestStat) -> Option<&'a str>,
) -> BTreeMap<&'a str, Tally> {
    let mut map: BTreeMap<&str, Tally> = BTreeMap::new();
    for r in rows {
        let Some(g) = group(r) else { continue };
        let e = map.entry(g).or_default();
        e.0 += 1;
        e.1 += u64::from(is_error(r));
        e.2 += r.latency_ms;
        e.3 += r.input_tokens.unwrap_or(0);
        e.4 += r.output_tokens.unwrap_or(0);
    }
    map
}

fn latency_summary(rows: &[RequestStat]) -> Value {
    let mut latencies: Vec<i64> = rows
        .iter()
        .filter(|r| r.status == "success")
        .map(|r| r.latency_ms)
        .collect();
    latencies.sort_unstable();
    let avg = if latencies.is_empty() {
        0
    } else {
        latencies.iter().sum::<i64>() / latencies.len() as i64
    };
    json!({
        "min": latencies.first().copied().unwrap_or(0), "p50": percentile(&latencies, 50.0), "avg": avg,
        "p95": percentile(&latencies, 95.0), "p99": percentile(&latencies, 99.0),
        "max": latencies.last().copied().unwrap_or(0),
    })
}

async fn key_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let q = RangeQuery {
        range: query_param(query.as_deref(), "range"),
    };
    if state.store.provider_key(&user.id, &id).await?.is_none() {
        return Err(not_found("provider key").into());
    }
    let (window, bucket) = range_of(&q)?;
    let now = now_ms() as i64;
    let start = (now - window) / bucket * bucket + bucket;
    let mut rows = state
        .store
        .request_stats_since(&user.id, start, Some(&id), STATS_ROWS)
        .await?;
    let served = rows.iter().filter(|r| r.status == "success").count() as u64;
    // Every attempt through the key counts: a key that fails and is then failed over from is not "unused".
    let failures = state
        .store
        .attempt_failures_since(&user.id, &id, start, STATS_ROWS)
        .await?;
    let failed_attempts = failures.len() as u64;
    let last_error = failures
        .first()
        .map(|f| (f.created_at, f.error_class.clone(), f.error_message.clone()))
        .into_iter()
        .chain(rows.iter().find(|r| r.status == "error").map(|r| {
            (
                r.created_at,
                r.error_class.clone().unwrap_or_default(),
                None,
            )
        }))
        .max_by_key(|e| e.0)
        .map(|(at, code, message)| json!({ "at_ms": at, "code": code, "message": message }));
    let mut messages: std::collections::HashMap<(String, i64), String> = Default::default();
    for f in failures {
        if let Some(m) = f.error_message {
            messages.insert((f.request_id.clone(), f.created_at), m);
        }
        rows.push(RequestStat {
            id: f.request_id,
            requested_model: String::new(),
            platform: None,
            model: Some(f.model),
            provider_key_id: Some(id.clone()),
            status: ATTEMPT_FAILED.to_owned(),
            http_status: f.http_status.unwrap_or(0),
            error_class: Some(f.error_class),
            latency_ms: f.latency_ms,
            input_tokens: None,
            output_tokens: None,
            created_at: f.created_at,
        });
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let requests = rows.len() as u64;
    let errors = rows.iter().filter(|r| is_error(r)).count() as u64;
    let success = rows.iter().filter(|r| r.status == "success").count() as u64;
    let rate_limited = rows
        .iter()
        .filter(|r| r.http_status == 429 || r.error_class.as_deref() == Some("rate_limited"))
        .count();
    let by_model: Vec<Value> = breakdown(&rows, |r| r.model.as_deref())
        .into_iter()
        .map(|(model, (n, e, lat, _, _))| {
            json!({ "model": model, "requests": n, "errors": e, "avg_latency_ms": lat / n.max(1) as i64 })
        })
        .collect();
    let by_error: Vec<Value> = breakdown(&rows, |r| r.error_class.as_deref())
        .into_iter()
        .map(|(code, (n, ..))| json!({ "code": code, "count": n }))
        .collect();
    let recent: Vec<Value> = rows
        .iter()
        .take(25)
        .map(|r| {
            json!({
                "id": r.id, "created_at_ms": r.created_at, "model": r.model, "status": r.status,
                "http_status": r.http_status, "latency_ms": r.latency_ms, "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens, "error_code": r.error_class,
                "error_message": messages.get(&(r.id.clone(), r.created_at)),
            })
        })
        .collect();
    let clock = tokio::time::Instant::now();
    let cooldowns: Vec<Value> = state
        .books
        .cooldowns
        .cooldowns_of(&id, clock)
        .into_iter()
        .map(|(model, remaining, reason)| {
            json!({ "model": model, "until_ms": now as u64 + remaining.as_millis() as u64, "reason": reason.as_str() })
        })
        .collect();
    Ok(Json(json!({
        // Attempts through the key: the requests it served or failed as the last candidate, and the attempts that
        // failed before another key answered.
        "requests": requests,
        "served": served,
        "failed_attempts": failed_attempts,
        "last_error": last_error,
        "success_rate": success_rate(success, errors),
        "errors": errors,
        "rate_limited": rate_limited,
        "latency_ms": latency_summary(&rows),
        "hourly": series(&rows, start, window, bucket),
        "by_model": by_model,
        "by_error": by_error,
        "recent": recent,
        "cooldowns": cooldowns,
    })))
}

async fn analytics(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let q = RangeQuery {
        range: query_param(query.as_deref(), "range"),
    };
    let (window, bucket) = range_of(&q)?;
    let now = now_ms() as i64;
    let start = (now - window) / bucket * bucket + bucket;
    let rows = state
        .store
        .request_stats_since(&user.id, start, None, STATS_ROWS)
        .await?;
    let requests = rows.len() as u64;
    let errors = rows.iter().filter(|r| is_error(r)).count() as u64;
    let success = rows.iter().filter(|r| r.status == "success").count() as u64;
    let latency = latency_summary(&rows);
    let by_provider: Vec<Value> = breakdown(&rows, |r| r.platform.as_deref())
        .into_iter()
        .map(|(provider, (n, e, lat, tin, tout))| {
            json!({ "provider": provider, "requests": n, "errors": e, "avg_latency_ms": lat / n.max(1) as i64,
                    "tokens_in": tin, "tokens_out": tout })
        })
        .collect();
    let mut models: BTreeMap<(&str, &str), Tally> = BTreeMap::new();
    for r in &rows {
        let (Some(model), Some(platform)) = (r.model.as_deref(), r.platform.as_deref()) else {
            continue;
        };
        let e = models.entry((model, platform)).or_default();
        e.0 += 1;
        e.1 += u64::from(is_error(r));
        e.2 += r.latency_ms;
        e.3 += r.input_tokens.unwrap_or(0);
        e.4 += r.output_tokens.unwrap_or(0);
    }
    let by_model: Vec<Value> = models
        .into_iter()
        .map(|((model, provider), (n, e, lat, tin, tout))| {
            json!({ "model": model, "provider": provider, "requests": n, "errors": e,
                    "avg_latency_ms": lat / n.max(1) as i64, "tokens_in": tin, "tokens_out": tout })
        })
        .collect();
    Ok(Json(json!({
        "totals": {
            "requests": requests,
            "success_rate": success_rate(success, errors),
            "errors": errors,
            "tokens_in": rows.iter().filter_map(|r| r.input_tokens).sum::<i64>(),
            "tokens_out": rows.iter().filter_map(|r| r.output_tokens).sum::<i64>(),
            "avg_latency_ms": latency["avg"],
            "p95_latency_ms": latency["p95"],
        },
        "series": series(&rows, start, window, bucket),
        "by_provider": by_provider,
        "by_model": by_model,
        "truncated": rows.len() as i64 >= STATS_ROWS,
    })))
}

/// How the router sees a model (or profile, or `auto`) right now: every candidate with its state, score inputs,
/// limits and usage, in the order the next request would try them.
async fn routing(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let model = query_param(query.as_deref(), "model").ok_or_else(|| {
        GatewayError(
            ApiError::invalid_request("missing_model", "name a model: ?model=<id>")
                .with_param("model"),
        )
    })?;
    let q = RoutingQuery { model };
    let tenant = tenant_of(&state, &user.id)?;
    let (routes, priorities, strategy) = if q.model == "auto" {
        let routes = tenant.chat_candidates();
        let priorities = vec![0; routes.len()];
        (routes, priorities, router::Strategy::Score)
    } else {
        crate::ingress::resolve_routes(&tenant, &q.model).map_err(GatewayError)?
    };
    let now = tokio::time::Instant::now();
    let day = router::Day::from_system_time();
    let candidates: Vec<router::Candidate<'_>> = routes
        .iter()
        .zip(&priorities)
        .map(|(r, p)| router::Candidate {
            key: &tenant.keys[r.key].id,
            model: &r.model,
            scopes: &r.scopes,
            fits: true,
            priority: *p,
        })
        .collect();
    let rotation = state.rotation.load(std::sync::atomic::Ordering::Relaxed);
    let plan = state.books.plan(
        &candidates,
        router::TokenAsk::exact(1),
        now,
        day,
        rotation,
        strategy,
    );
    let rows: Vec<Value> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let key = &tenant.keys[r.key];
            let inputs = &plan.scores[i];
            let cooling = state
                .books
                .cooldowns
                .cooling_until((&key.id, &r.model), now)
                .map(|t| t.saturating_duration_since(now).as_millis() as u64);
            let status = if let Some(position) = plan.ready.iter().position(|&j| j == i) {
                json!({ "state": "ready", "order": position + 1 })
            } else if state.books.cooldowns.is_invalid(&key.id) {
                json!({ "state": "invalid" })
            } else if cooling.is_some() {
                let reason = state
                    .books
                    .cooldowns
                    .cooling_reason((&key.id, &r.model), now)
                    .map(router::Reason::as_str);
                json!({ "state": "cooling", "remaining_ms": cooling, "reason": reason })
            } else {
                json!({ "state": "capped" })
            };
            let scopes: Vec<Value> = r
                .scopes
                .iter()
                .map(|(scope, l)| {
                    let u = state.books.limits.usage(scope, now, day);
                    json!({
                        "scope": if **scope == *key.id { "key" } else { "key+model" },
                        "limits": { "rpm": l.rpm, "rph": l.rph, "rpd": l.rpd, "tpm": l.tpm, "tpd": l.tpd },
                        "used": { "rpm": u.rpm_used, "rph": u.rph_used, "rpd": u.rpd_used, "tpm": u.tpm_used, "tpd": u.tpd_used },
                    })
                })
                .collect();
            json!({
                "key_id": key.id,
                "key_label": key.label,
                "provider": key.platform.id(),
                "model": r.model,
                "priority": priorities[i],
                "status": status,
                "score": inputs.score,
                "inputs": {
                    "reliability": inputs.reliability,
                    "samples": inputs.samples,
                    "latency_ms": inputs.latency_ms,
                    "headroom": inputs.headroom,
                },
                "limits": scopes,
                "context_window": r.context_window,
            })
        })
        .collect();
    Ok(Json(json!({
        "model": q.model,
        "strategy": match strategy {
            router::Strategy::Score => "score",
            router::Strategy::Failover => "failover",
            router::Strategy::RoundRobin { .. } => "round-robin",
            router::Strategy::LeastLatency => "least-latency",
        },
        "formula": "score = 0.55 × reliability + 0.25 × 1/(1 + latency_ms/1000) + 0.20 × headroom (docs/routing.md)",
        // This user's requests waiting for the model.
        "queue_depth": state.queue.lane_depth(&format!("{}\u{0}{}", user.id, q.model)),
        "candidates": rows,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_values() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 51);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[], 95.0), 0);
    }

    #[test]
    fn query_values_are_decoded() {
        let q = Some("model=meta-llama%2Fllama-3%3Afree&x=a+b&bad=%zz%4");
        assert_eq!(
            query_param(q, "model").as_deref(),
            Some("meta-llama/llama-3:free")
        );
        assert_eq!(query_param(q, "x").as_deref(), Some("a b"));
        assert_eq!(query_param(q, "bad").as_deref(), Some("%zz%4"));
        assert_eq!(query_param(q, "none"), None);
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, "127.0.0.1:3001".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(
            http::header::ORIGIN,
            "http://127.0.0.1:3001".parse().unwrap(),
        );
        assert!(same_origin(&h));
        h.insert(
            http::header::ORIGIN,
            "https://evil.example".parse().unwrap(),
        );
        assert!(!same_origin(&h));
    }
}
