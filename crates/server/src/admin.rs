//! `/api`: health, login sessions and the admin REST for provider keys and gateway keys. Every route here except
//! `ping` and `login` needs a session (cookie `freellmapi_session`, or `Authorization: Bearer <session token>`), and
//! every object is scoped to the session's user: another user's id answers 404. Mutations rebuild the snapshot.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use providers::{parse_model_list, Adapter, Endpoint, Platform, UpstreamCredentials};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use store::{mask_secret, NewProviderKey, ProviderKeyPatch, ProviderKeyRow, User};
use wire::{ApiError, ErrorType};

use crate::error::{error_response, not_found, GatewayError};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "freellmapi_session";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/ping", get(ping))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/platforms", get(platforms))
        .route("/api/keys", get(list_keys).post(create_key))
        .route("/api/keys/{id}", patch(update_key).delete(delete_key))
        .route("/api/keys/{id}/discover", post(discover_key_models))
        .route("/api/keys/{id}/check", post(crate::key_check::check_one))
        .route("/api/keys/check-all", post(crate::key_check::check_all))
        .route(
            "/api/gateway-keys",
            get(list_gateway_keys).post(create_gateway_key),
        )
        .route(
            "/api/gateway-keys/{id}",
            patch(update_gateway_key).delete(delete_gateway_key),
        )
        .route("/api/requests", get(recent_requests))
        .route("/api/settings", get(settings))
        .route("/api/{*rest}", axum::routing::any(unknown_api))
}

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

async fn ping() -> Json<Value> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Json(json!({ "status": "ok", "timestamp": ts }))
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
        state.login_throttle.failed(&body.username, peer.ip(), now);
        return Err(ApiError::new(
            401,
            ErrorType::AuthenticationError,
            "invalid_credentials",
            "wrong username or password",
        )
        .into());
    };
    state.login_throttle.succeeded(&body.username);
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

async fn platforms(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    session_user(&state, &headers).await?;
    let rows: Vec<Value> = providers::platform::PLATFORMS
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.display_name,
                "default_base_url": p.default_base_url,
                "keyless": p.keyless,
                "served": p.platform.is_served(),
            })
        })
        .collect();
    Ok(Json(json!({ "data": rows })))
}

fn key_view(state: &AppState, row: &ProviderKeyRow) -> Value {
    let masked = match state.store.reveal(row) {
        Ok(Some(secret)) => Some(mask_secret(&secret)),
        Ok(None) => None,
        Err(_) => Some("(cannot decrypt)".into()),
    };
    let now = tokio::time::Instant::now();
    let cooldowns: Vec<Value> = state
        .books
        .cooldowns
        .cooldowns_of(&row.id, now)
        .into_iter()
        .map(|(model, remaining)| json!({ "model": model, "remaining_ms": remaining.as_millis() as u64 }))
        .collect();
    let invalid = state.books.cooldowns.is_invalid(&row.id);
    let live_status = if !row.enabled {
        "disabled"
    } else if invalid || row.status == "invalid" {
        "invalid"
    } else if !cooldowns.is_empty() {
        "rate_limited"
    } else {
        "healthy"
    };
    let snapshot = state.snapshot.load();
    let entry = snapshot
        .tenants
        .get(row.user_id.as_str())
        .and_then(|t| t.keys.iter().find(|k| *k.id == *row.id));
    let day = router::Day::from_system_time();
    let (effective, usage) = match entry {
        Some(k) => {
            let u = state.books.limits.usage(&k.id, now, day);
            (
                json!({ "rpm": k.limits.rpm, "rph": k.limits.rph, "rpd": k.limits.rpd, "tpm": k.limits.tpm, "tpd": k.limits.tpd }),
                json!({ "rpm": u.rpm_used, "rph": u.rph_used, "rpd": u.rpd_used, "tpm": u.tpm_used, "tpd": u.tpd_used }),
            )
        }
        None => (Value::Null, Value::Null),
    };
    let platform_name = row
        .platform
        .parse::<Platform>()
        .map(|p| p.info().display_name)
        .unwrap_or("unknown");
    json!({
        "id": row.id,
        "platform": row.platform,
        "platform_name": platform_name,
        "label": row.label,
        "masked_key": masked,
        "base_url": row.base_url,
        "models": row.models,
        "enabled": row.enabled,
        "status": if state.books.cooldowns.is_invalid(&row.id) { "invalid" } else { row.status.as_str() },
        "status_reason": row.status_reason,
        "cooldowns": cooldowns,
        "limits": row.limits,
        "effective_limits": effective,
        "usage": usage,
        "live_status": live_status,
        "source": if row.config_name.is_some() { "config" } else { "api" },
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

async fn list_keys(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let rows = state.store.provider_keys_of(&user.id).await?;
    Ok(Json(
        json!({ "data": rows.iter().map(|r| key_view(&state, r)).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeyBody {
    platform: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    enabled: Option<bool>,
}

fn bad(code: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError(ApiError::invalid_request(code, message))
}

/// Validates a key's settings by building its endpoint, as the snapshot will.
pub fn validate_key_settings(
    platform: Platform,
    secret: Option<&str>,
    base_url: Option<&str>,
) -> Result<Endpoint, GatewayError> {
    let credentials = match (platform.info().keyless, secret) {
        (true, _) | (false, None) => UpstreamCredentials::None,
        (false, Some(s)) => UpstreamCredentials::Secret(s.to_owned()),
    };
    Endpoint::new(platform, base_url, &credentials)
        .map_err(|e| bad("invalid_key_settings", e.to_string()))
}

/// The URL guard on a key's base URL: refused addresses are a 400 naming why (and the setting, when one applies).
pub async fn guard_base_url(state: &AppState, base_url: Option<&str>) -> Result<(), GatewayError> {
    let Some(url) = base_url else {
        return Ok(());
    };
    crate::url_guard::check_url(url, state.config.allow_private_provider_urls)
        .await
        .map_err(|e| bad("base_url_refused", e.to_string()))
}

fn clean_models(models: Vec<String>) -> Result<Vec<String>, GatewayError> {
    let mut out: Vec<String> = Vec::new();
    for m in models {
        let m = m.trim().to_owned();
        if m.is_empty() || m.len() > 200 {
            return Err(bad(
                "invalid_models",
                "model ids must be 1 to 200 characters",
            ));
        }
        if m == "auto" {
            return Err(bad("invalid_models", "`auto` is reserved for the router"));
        }
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

/// Asks the endpoint for its model list (`GET …/models`), bounded to 10 s, through the user's proxy pool like an
/// attempt would go.
pub async fn discover_models(
    state: &AppState,
    user_id: &str,
    endpoint: &Endpoint,
) -> Result<Vec<String>, String> {
    let adapter = Adapter::for_platform(endpoint.platform);
    let egress = state.proxies.egress_for_discovery(user_id, endpoint);
    let failed = |e: reqwest::Error| providers::classify_transport(&e, e.is_timeout()).message;
    let request =
        crate::upstream::for_reqwest(adapter.models_request(endpoint), Duration::from_secs(10))
            .map_err(failed)?;
    let response = egress
        .client(&state.http)
        .execute(request)
        .await
        .map_err(failed)?;
    let status = response.status();
    let body = response.bytes().await.map_err(failed)?;
    if !status.is_success() {
        let failure = providers::classify_response(status, &HeaderMap::new(), &body);
        return Err(format!("{} {}", status.as_u16(), failure.message));
    }
    let mut models = parse_model_list(&body)
        .ok_or_else(|| "the model list is not in OpenAI's shape".to_owned())?;
    models.retain(|m| m != "auto");
    models.dedup();
    Ok(models)
}

async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user = session_user(&state, &headers).await?;
    let body: CreateKeyBody = parse_json(&headers, &body)?;
    let platform: Platform =
        body.platform
            .parse()
            .map_err(|e: providers::platform::UnknownPlatform| {
                bad("unknown_platform", e.to_string())
            })?;
    let secret = if platform.info().keyless {
        None
    } else {
        body.key
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
    };
    if secret.is_none() && !platform.info().keyless && platform != Platform::Custom {
        return Err(bad(
            "missing_key",
            format!("{} needs an API key (`key`)", platform.info().display_name),
        ));
    }
    let base_url = body
        .base_url
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty());
    let endpoint = validate_key_settings(platform, secret.as_deref(), base_url.as_deref())?;
    guard_base_url(&state, base_url.as_deref()).await?;
    let mut models = clean_models(body.models.unwrap_or_default())?;
    let mut notice = None;
    if models.is_empty() {
        match discover_models(&state, &user.id, &endpoint).await {
            Ok(found) if !found.is_empty() => {
                notice = Some(format!(
                    "discovered {} models from the endpoint",
                    found.len()
                ));
                models = found;
            }
            Ok(_) => {
                notice = Some(
                    "the endpoint lists no models; set `models` to route requests to this key"
                        .to_owned(),
                )
            }
            Err(e) => {
                notice = Some(format!(
                    "model discovery failed ({e}); set `models` to route requests to this key"
                ))
            }
        }
    }
    let label = body
        .label
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| platform.info().display_name.to_owned());
    let row = state
        .store
        .insert_provider_key(&NewProviderKey {
            user_id: user.id.clone(),
            platform: platform.id().to_owned(),
            label,
            secret,
            base_url,
            models,
            enabled: body.enabled.unwrap_or(true),
            config_name: None,
        })
        .await?;
    state.reload().await?;
    tracing::info!(user = %user.username, key_id = %row.id, platform = %row.platform, "provider key added");
    let mut view = key_view(&state, &row);
    view["notice"] = json!(notice);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateKeyBody {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    label: Option<String>,
    /// An empty string clears the override.
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    /// Replaces every limit override at once (missing fields: the catalog default).
    #[serde(default)]
    limits: Option<store::KeyLimits>,
    /// One override at a time: a number sets it, `null` or 0 returns to the catalog default.
    #[serde(default, deserialize_with = "present")]
    rpm_limit: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    tpm_limit: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    rpd_limit: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    tpd_limit: Option<Value>,
}

/// A field that is present, even as `null`, is `Some` (serde's default would read `null` as absent, and `null`
/// means "clear this").
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A single limit field of a key update: `Ok(None)` when absent, `Ok(Some(None))` to clear.
fn limit_field(value: Option<&Value>, name: &str) -> Result<Option<Option<u64>>, GatewayError> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64() {
            Some(0) => Ok(Some(None)),
            Some(n) if n <= u64::from(u32::MAX) => Ok(Some(Some(n))),
            _ => Err(bad(
                "invalid_limit",
                format!("`{name}` must be a non-negative integer or null"),
            )),
        },
    }
}

fn merged_limits(
    existing: store::KeyLimits,
    body: &UpdateKeyBody,
) -> Result<Option<store::KeyLimits>, GatewayError> {
    let mut limits = body.limits.unwrap_or(existing);
    let mut changed = body.limits.is_some();
    let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    if let Some(v) = limit_field(body.rpm_limit.as_ref(), "rpm_limit")? {
        limits.rpm = v.map(narrow);
        changed = true;
    }
    if let Some(v) = limit_field(body.rpd_limit.as_ref(), "rpd_limit")? {
        limits.rpd = v.map(narrow);
        changed = true;
    }
    if let Some(v) = limit_field(body.tpm_limit.as_ref(), "tpm_limit")? {
        limits.tpm = v;
        changed = true;
    }
    if let Some(v) = limit_field(body.tpd_limit.as_ref(), "tpd_limit")? {
        limits.tpd = v;
        changed = true;
    }
    Ok(changed.then_some(limits))
}

async fn update_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let body: UpdateKeyBody = parse_json(&headers, &body)?;
    let Some(existing) = state.store.provider_key(&user.id, &id).await? else {
        return Err(not_found("provider key").into());
    };
    let platform: Platform = existing
        .platform
        .parse()
        .map_err(|_| bad("unknown_platform", "stored platform is unknown"))?;
    let secret = match &body.key {
        Some(k) if !k.trim().is_empty() => Some(k.trim().to_owned()),
        Some(_) => return Err(bad("missing_key", "`key` must not be empty")),
        None => state.store.reveal(&existing)?,
    };
    let base_url = match &body.base_url {
        Some(u) if u.trim().is_empty() => None,
        Some(u) => Some(u.trim().to_owned()),
        None => existing.base_url.clone(),
    };
    validate_key_settings(platform, secret.as_deref(), base_url.as_deref())?;
    guard_base_url(&state, base_url.as_deref()).await?;
    let limits = merged_limits(existing.limits, &body)?;
    let patch = ProviderKeyPatch {
        limits,
        label: body
            .label
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty()),
        secret: body.key.map(|k| k.trim().to_owned()),
        base_url: body.base_url.as_ref().map(|_| base_url.clone()),
        models: body.models.map(clean_models).transpose()?,
        enabled: body.enabled,
    };
    let row = state
        .store
        .update_provider_key(&user.id, &id, &patch)
        .await?
        .ok_or_else(|| GatewayError(not_found("provider key")))?;
    state.books.cooldowns.reset_key(&id);
    state.books.scores.forget_key(&id);
    state.reload().await?;
    Ok(Json(key_view(&state, &row)))
}

async fn delete_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = session_user(&state, &headers).await?;
    if !state.store.delete_provider_key(&user.id, &id).await? {
        return Err(not_found("provider key").into());
    }
    state.books.cooldowns.reset_key(&id);
    state.books.scores.forget_key(&id);
    state.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn discover_key_models(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let Some(existing) = state.store.provider_key(&user.id, &id).await? else {
        return Err(not_found("provider key").into());
    };
    let platform: Platform = existing
        .platform
        .parse()
        .map_err(|_| bad("unknown_platform", "stored platform is unknown"))?;
    let secret = state.store.reveal(&existing)?;
    let endpoint =
        validate_key_settings(platform, secret.as_deref(), existing.base_url.as_deref())?;
    guard_base_url(&state, existing.base_url.as_deref()).await?;
    let found = discover_models(&state, &user.id, &endpoint)
        .await
        .map_err(|e| {
            GatewayError(ApiError::new(
                502,
                ErrorType::ProviderError,
                "discovery_failed",
                format!("model discovery failed: {e}"),
            ))
        })?;
    let added: Vec<&String> = found
        .iter()
        .filter(|m| !existing.models.contains(m))
        .collect();
    let missing: Vec<&String> = existing
        .models
        .iter()
        .filter(|m| !found.contains(m))
        .collect();
    let mut merged = existing.models.clone();
    merged.extend(added.iter().map(|m| (*m).clone()));
    let patch = ProviderKeyPatch {
        models: Some(merged),
        ..ProviderKeyPatch::default()
    };
    let row = state
        .store
        .update_provider_key(&user.id, &id, &patch)
        .await?
        .ok_or_else(|| GatewayError(not_found("provider key")))?;
    state.reload().await?;
    let mut view = key_view(&state, &row);
    // Vanished models stay on the key (a profile may name them); the caller decides whether to remove them.
    view["discovered"] =
        json!({ "added": added, "vanished": missing, "not_listed_by_endpoint": missing });
    Ok(Json(view))
}

/// A gateway key as the API shows it: the stored row (never the hash) with its live usage.
fn gateway_key_view(state: &AppState, row: &store::GatewayKeyRow) -> Value {
    let usage = state
        .gateway_usage
        .get(&row.id)
        .map(|u| u.now(tokio::time::Instant::now(), router::Day::from_system_time()));
    json!({
        "id": row.id,
        "label": row.label,
        "prefix": row.prefix,
        "enabled": row.enabled,
        "config_name": row.config_name,
        "created_at": row.created_at,
        "last_used_at": row.last_used_at,
        "rpm_limit": row.rpm_limit,
        "tpd_limit": row.tpd_limit,
        "allowed_models": row.allowed_models,
        "request_count": row.request_count,
        "token_count": row.token_count,
        "usage": usage,
    })
}

async fn list_gateway_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let rows = state.store.gateway_keys_of(&user.id).await?;
    Ok(Json(json!({
        "data": rows.iter().map(|r| gateway_key_view(&state, r)).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GatewayKeyBody {
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    /// A number sets the limit; `null` or 0 removes it.
    #[serde(default, deserialize_with = "present")]
    rpm_limit: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    tpd_limit: Option<Value>,
    /// A list of model ids; `null` (or an empty list) allows every model.
    #[serde(default, deserialize_with = "present")]
    allowed_models: Option<Value>,
}

impl GatewayKeyBody {
    fn touches_policy(&self) -> bool {
        self.rpm_limit.is_some() || self.tpd_limit.is_some() || self.allowed_models.is_some()
    }

    /// The policy after applying this body's fields to `existing`.
    fn policy(&self, existing: store::GatewayKeyPolicy) -> ApiResult<store::GatewayKeyPolicy> {
        let mut policy = existing;
        if let Some(v) = limit_field(self.rpm_limit.as_ref(), "rpm_limit")? {
            policy.rpm_limit = v.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        }
        if let Some(v) = limit_field(self.tpd_limit.as_ref(), "tpd_limit")? {
            policy.tpd_limit = v;
        }
        match &self.allowed_models {
            None => {}
            Some(Value::Null) => policy.allowed_models = None,
            Some(v) => {
                let list: Vec<String> = serde_json::from_value(v.clone()).map_err(|_| {
                    bad(
                        "invalid_allowed_models",
                        "`allowed_models` must be a list of model ids or null",
                    )
                })?;
                let mut clean: Vec<String> = Vec::new();
                for m in list {
                    let m = m.trim().to_owned();
                    if m.is_empty() || m.len() > 200 {
                        return Err(bad(
                            "invalid_allowed_models",
                            "model ids must be 1 to 200 characters",
                        ));
                    }
                    if !clean.contains(&m) {
                        clean.push(m);
                    }
                }
                if clean.len() > 1000 {
                    return Err(bad(
                        "invalid_allowed_models",
                        "at most 1000 models in an allow-list",
                    ));
                }
                policy.allowed_models = (!clean.is_empty()).then_some(clean);
            }
        }
        Ok(policy)
    }
}

fn policy_of(row: &store::GatewayKeyRow) -> store::GatewayKeyPolicy {
    store::GatewayKeyPolicy {
        rpm_limit: row.rpm_limit,
        tpd_limit: row.tpd_limit,
        allowed_models: row.allowed_models.clone(),
    }
}

async fn create_gateway_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user = session_user(&state, &headers).await?;
    let body: GatewayKeyBody = if body.is_empty() {
        GatewayKeyBody::default()
    } else {
        parse_json(&headers, &body)?
    };
    let policy = body.policy(store::GatewayKeyPolicy::default())?;
    let label = body
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or("default")
        .to_owned();
    if label.len() > 200 {
        return Err(bad("invalid_label", "a label is at most 200 characters"));
    }
    let (mut row, raw) = state
        .store
        .create_gateway_key(&user.id, &label, None, None)
        .await?;
    if policy != store::GatewayKeyPolicy::default() {
        row = state
            .store
            .set_gateway_key_policy(&user.id, &row.id, &policy)
            .await?
            .ok_or_else(|| GatewayError(not_found("gateway key")))?;
    }
    if body.enabled == Some(false) {
        row = state
            .store
            .update_gateway_key(&user.id, &row.id, None, Some(false))
            .await?
            .ok_or_else(|| GatewayError(not_found("gateway key")))?;
    }
    state.reload().await?;
    tracing::info!(user = %user.username, gateway_key = %row.prefix, "gateway key created");
    let mut view = gateway_key_view(&state, &row);
    view["key"] = json!(raw);
    view["notice"] = json!("store this key now: it is shown only once");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn update_gateway_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let body: GatewayKeyBody = parse_json(&headers, &body)?;
    let Some(existing) = state.store.gateway_key(&user.id, &id).await? else {
        return Err(not_found("gateway key").into());
    };
    let label = body
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    if label.is_some_and(|l| l.len() > 200) {
        return Err(bad("invalid_label", "a label is at most 200 characters"));
    }
    // Validated before anything is written, so a bad field changes nothing.
    let policy = body
        .touches_policy()
        .then(|| body.policy(policy_of(&existing)))
        .transpose()?;
    let mut row = state
        .store
        .update_gateway_key(&user.id, &id, label, body.enabled)
        .await?
        .ok_or_else(|| GatewayError(not_found("gateway key")))?;
    if let Some(policy) = policy {
        row = state
            .store
            .set_gateway_key_policy(&user.id, &id, &policy)
            .await?
            .ok_or_else(|| GatewayError(not_found("gateway key")))?;
    }
    state.reload().await?;
    Ok(Json(gateway_key_view(&state, &row)))
}

async fn delete_gateway_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = session_user(&state, &headers).await?;
    if !state.store.delete_gateway_key(&user.id, &id).await? {
        return Err(not_found("gateway key").into());
    }
    state.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn recent_requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let limit = match crate::dashboard_api::query_param(query.as_deref(), "limit") {
        None => 50,
        Some(v) => v.parse::<i64>().map_err(|_| {
            GatewayError(
                ApiError::invalid_request("invalid_limit", "`limit` must be an integer")
                    .with_param("limit"),
            )
        })?,
    }
    .clamp(1, 500);
    let rows = state.store.recent_requests(&user.id, limit).await?;
    Ok(Json(json!({ "data": rows })))
}

/// The effective settings that are not secret, flat, for the dashboard's read-only Settings page.
async fn settings(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    session_user(&state, &headers).await?;
    let c = &state.config;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "database": match state.store.engine() {
            store::Engine::Sqlite => "sqlite",
            store::Engine::Postgres => "postgres",
        },
        "request_body_limit_mb": c.body_limit_bytes / (1024 * 1024),
        "provider_timeout_ms": c.upstream_timeout.as_millis() as u64,
        "stream_first_token_stall_ms": c.first_token_stall.as_millis() as u64,
        "provider_stream_stall_timeout_ms": c.stream_idle_timeout.as_millis() as u64,
        "fallback_max_retries": c.max_attempts,
        "proxy_rate_limit_rpm": c.ip_rate_limit_rpm,
        "request_queue_timeout_seconds": c.queue_timeout.as_secs(),
        "session_ttl_hours": c.session_ttl.as_secs() / 3600,
        "request_analytics_retention_days": c.log_retention.map_or(0, |d| d.as_secs() / 86_400),
        "request_analytics_max_rows": c.log_max_rows.unwrap_or(0),
        "dashboard_origins": c.dashboard_origins.join(","),
        "allow_private_provider_urls": c.allow_private_provider_urls,
        "login_failures_before_lockout": crate::login_throttle::ACCOUNT_FREE_FAILURES,
    })))
}

async fn unknown_api() -> Response {
    error_response(&not_found("API route"))
}
