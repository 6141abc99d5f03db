//! Who is calling `/v1`: the client-address limit, then the gateway key (SHA-256 of the bearer token, or of
//! `x-api-key` or `x-goog-api-key`) found in the in-memory snapshot, then its own limits. No database access. Also the request id and the
//! [`RequestMeta`] every surface hands to the relay.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use bytes::Bytes;
use http::{header, HeaderMap};
use tokio::time::Instant;
use wire::{ApiError, ErrorType};

use super::body::read_limited;
use super::refused::Refused;
use crate::relay::{Operation, RequestMeta};
use crate::runtime::gateway_usage::KeyLimitDenied;
use crate::runtime::snapshot::{hash_token, Tenant};
use crate::runtime::state::AppState;

/// The authenticated caller of a `/v1` request.
pub struct Caller {
    pub tenant: Arc<Tenant>,
    pub gateway_key_id: Arc<str>,
    pub gateway_key_prefix: Arc<str>,
    /// The gateway key's requests-per-minute and tokens-per-day limits (checked fleet-wide in a fleet).
    pub key_limits: (Option<u32>, Option<u64>),
}

impl Caller {
    /// Records `e` as the gateway's own refusal of this caller's request (see [`super::refused`]).
    pub(crate) fn refused(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        endpoint: &'static str,
        requested_model: &str,
        e: &ApiError,
    ) {
        Refused {
            tenant: &self.tenant,
            gateway_key_id: &self.gateway_key_id,
            gateway_key_prefix: &self.gateway_key_prefix,
        }
        .record(state, headers, endpoint, requested_model, e);
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-api-key")
        .or_else(|| headers.get("x-goog-api-key"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn auth_error(message: &str, code: &'static str) -> ApiError {
    ApiError::new(401, ErrorType::AuthenticationError, code, message)
}

/// Client-address limit, then gateway key. No database access. A known gateway key refused (disabled, over its
/// limits) is recorded as a refused request on `endpoint`.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    endpoint: &'static str,
) -> Result<Caller, ApiError> {
    if let Err(retry) = state.ip_limiter.check(peer.ip(), Instant::now()) {
        return Err(ApiError::new(
            429,
            ErrorType::RateLimitError,
            "client_rate_limited",
            format!(
                "too many requests from this address (limit {}/min)",
                state.config.ip_rate_limit_rpm
            ),
        )
        .with_retry_after(retry));
    }
    let token = bearer(headers).filter(|t| !t.is_empty()).ok_or_else(|| {
        auth_error(
            "missing API key: send `Authorization: Bearer <gateway key>`",
            "missing_api_key",
        )
    })?;
    let snapshot = state.snapshot.load();
    let entry = snapshot
        .gateway_keys
        .get(&hash_token(token))
        .ok_or_else(|| auth_error("invalid API key", "invalid_api_key"))?;
    let refuse = |e: ApiError| {
        Refused {
            tenant: &entry.tenant,
            gateway_key_id: &entry.id,
            gateway_key_prefix: &entry.prefix,
        }
        .record(state, headers, endpoint, "", &e);
        e
    };
    if !entry.enabled {
        return Err(refuse(auth_error(
            "this gateway key is disabled",
            "api_key_disabled",
        )));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // In a fleet whose ledger answers, the per-minute window is the fleet's (checked after this, in
    // `authenticated_body`); while it is down, this instance takes its share of each limit.
    let share = state.books.limits.share();
    let rpm_limit = match state.fleet_counts_gateway_keys() {
        true => None,
        false => entry.rpm_limit.map(|l| (l / share).max(1)),
    };
    let tpd_limit = entry.tpd_limit.map(|l| (l / u64::from(share)).max(1));
    entry
        .usage
        .admit(
            rpm_limit,
            tpd_limit,
            Instant::now(),
            router::Day::from_system_time(),
            now_ms,
        )
        .map_err(|denied| refuse(key_limit_error(denied)))?;
    Ok(Caller {
        tenant: entry.tenant.clone(),
        gateway_key_id: entry.id.clone(),
        gateway_key_prefix: entry.prefix.clone(),
        key_limits: (entry.rpm_limit, entry.tpd_limit),
    })
}

pub(crate) fn key_limit_error(denied: KeyLimitDenied) -> ApiError {
    let (message, retry_after) = match denied {
        KeyLimitDenied::RequestsPerMinute { limit, retry_after } => (
            format!("this gateway key's limit of {limit} requests per minute is reached"),
            retry_after,
        ),
        KeyLimitDenied::TokensPerDay { limit, retry_after } => (
            format!("this gateway key's limit of {limit} tokens per day (UTC) is reached"),
            retry_after,
        ),
    };
    ApiError::new(
        429,
        ErrorType::RateLimitError,
        "gateway_key_rate_limited",
        message,
    )
    .with_retry_after(retry_after.as_secs().max(1))
}

pub(crate) fn request_id(headers: &HeaderMap) -> Arc<str> {
    let inbound = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()));
    match inbound {
        Some(v) => Arc::from(v),
        None => Arc::from(random_id("", 16).as_str()),
    }
}

/// `prefix` then `hex_digits` (at most 32) random lowercase hex digits: request, response and message ids. Not a
/// secret: a fast thread-local generator, no system call, and no formatting machinery on the request path.
pub(crate) fn random_id(prefix: &str, hex_digits: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = rand::random::<u128>();
    let mut id = String::with_capacity(prefix.len() + hex_digits);
    id.push_str(prefix);
    for _ in 0..hex_digits.min(32) {
        id.push(char::from(HEX[(bits & 0xf) as usize]));
        bits >>= 4;
    }
    id
}

/// Authenticates the caller (before reading anything), then reads the body once, bounded.
pub(crate) async fn authenticated_body(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    endpoint: &'static str,
) -> Result<(Caller, HeaderMap, Bytes), ApiError> {
    let caller = authenticate(state, request.headers(), peer, endpoint)?;
    let (rpm_limit, tpd_limit) = caller.key_limits;
    if let Err(denied) = state
        .admit_gateway_key(&caller.gateway_key_id, rpm_limit, tpd_limit)
        .await
    {
        let e = key_limit_error(denied);
        caller.refused(state, request.headers(), endpoint, "", &e);
        return Err(e);
    }
    let (parts, body) = request.into_parts();
    let bytes = read_limited(
        &parts.headers,
        body,
        state.config.body_limit_bytes,
        state.config.body_read_timeout,
    )
    .await?;
    Ok((caller, parts.headers, bytes))
}

pub(crate) fn request_meta(
    caller: Caller,
    headers: &HeaderMap,
    model: String,
    operation: Operation,
    input_estimate: u64,
) -> RequestMeta {
    RequestMeta {
        request_id: request_id(headers),
        requested_model: model,
        client_model: None,
        operation,
        endpoint: operation.endpoint(),
        input_estimate,
        tenant: caller.tenant,
        gateway_key_id: caller.gateway_key_id,
        gateway_key_prefix: caller.gateway_key_prefix,
        started: std::time::Instant::now(),
    }
}
