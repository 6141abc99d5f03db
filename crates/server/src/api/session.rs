//! `/api` sessions: the JSON body parser and the session check every handler starts with, and the routes that
//! open and close a session (`ping`, `login`, `logout`, `me`). A session is the `freellmapi_session` cookie or
//! `Authorization: Bearer <session token>`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use store::User;
use wire::{ApiError, ErrorType};

use crate::error::GatewayError;
use crate::runtime::state::AppState;

pub const SESSION_COOKIE: &str = "freellmapi_session";

pub(crate) type ApiResult<T> = Result<T, GatewayError>;

/// Parses a JSON body. Requiring `application/json` also keeps cross-site form posts out (they cannot set it
/// without a CORS preflight).
pub(crate) fn parse_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(ApiError::new(
            415,
            ErrorType::InvalidRequestError,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_request("invalid_body", format!("invalid request body: {e}"))
    })
}

pub(crate) fn session_token(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, token)) = auth.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some(token.trim().to_owned());
            }
        }
    }
    let cookies = headers.get_all(header::COOKIE);
    for value in cookies.iter().filter_map(|v| v.to_str().ok()) {
        for pair in value.split(';') {
            if let Some((name, token)) = pair.trim().split_once('=') {
                if name == SESSION_COOKIE && !token.is_empty() {
                    return Some(token.to_owned());
                }
            }
        }
    }
    None
}

pub(crate) async fn session_user(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<User, GatewayError> {
    let unauthorized = || {
        GatewayError(ApiError::new(
            401,
            ErrorType::AuthenticationError,
            "not_authenticated",
            "log in first (POST /api/auth/login)",
        ))
    };
    let token = session_token(headers).ok_or_else(unauthorized)?;
    // Session tokens are 64 hex characters; anything else is not worth a database query.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unauthorized());
    }
    state
        .store
        .session_user(&token)
        .await?
        .ok_or_else(unauthorized)
}

async fn ping(State(state): State<AppState>) -> Json<Value> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut body = json!({ "status": "ok", "timestamp": ts });
    if let Some(health) = state.fleet_health() {
        // Still serving while degraded: each instance counts limits alone, with its share of every cap.
        body["degraded"] = json!(!health.up);
        body["fleet"] = json!({ "redis": if health.up { "up" } else { "down" }, "instances": health.instances });
    }
    Json(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

fn session_cookie(token: &str, max_age: Duration, headers: &HeaderMap) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("freellmapi_session=; Max-Age=0"))
}

/// 429 for a throttled login (or password check), in OpenAI's error shape with `Retry-After`.
pub(crate) fn too_many_attempts(wait: Duration) -> GatewayError {
    GatewayError(
        ApiError::new(
            429,
            ErrorType::RateLimitError,
            "too_many_login_attempts",
            "too many failed login attempts; wait before trying again",
        )
        .with_retry_after(wait.as_secs().max(1)),
    )
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let body: LoginBody = parse_json(&headers, &body)?;
    let now = tokio::time::Instant::now();
    state
        .login_throttle
        .check(&body.username, peer.ip(), now)
        .map_err(too_many_attempts)?;
    // Unknown users cost the same argon2 verification as known ones (`verify_login` hashes a dummy).
    let Some(user) = state
        .store
        .verify_login(&body.username, &body.password)
        .await?
    else {
        state.login_failed(&body.username, peer.ip(), now);
        return Err(ApiError::new(
            401,
            ErrorType::AuthenticationError,
            "invalid_credentials",
            "wrong username or password",
        )
        .into());
    };
    state.login_succeeded(&body.username);
    let ttl = state.config.session_ttl;
    let token = state.store.create_session(&user.id, ttl).await?;
    tracing::info!(user = %user.username, "login");
    let mut response =
        Json(json!({ "user": user, "token": token, "expires_in": ttl.as_secs() })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&token, ttl, &headers));
    Ok(response)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = session_token(&headers) {
        state.store.delete_session(&token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", Duration::ZERO, &headers),
    );
    Ok(response)
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<User>> {
    Ok(Json(session_user(&state, &headers).await?))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
}
