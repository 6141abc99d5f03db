//! `/api` provider keys: list, add (with model discovery and the URL guard), edit, delete, re-discover. Keys are
//! owned by the session's user; every change rebuilds the snapshot. Checks live in [`super::key_check`].

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use providers::{parse_model_list, Adapter, Endpoint, Platform, UpstreamCredentials};
use serde::Deserialize;
use serde_json::{json, Value};
use store::{mask_secret, NewProviderKey, ProviderKeyPatch, ProviderKeyRow};
use wire::{ApiError, ErrorType};

use crate::error::{not_found, GatewayError};
use crate::runtime::state::AppState;

use super::session::{parse_json, session_user, ApiResult};
/// A key's state in words, for the Keys page and the live feed: `disabled`, `invalid`, `rate_limited` (cooling
/// after a rate limit or quota), `error` (cooling after server errors, timeouts or connection errors), `healthy` (it served a request since the start), `cooldown_ended` (it failed and rested, with no success yet),
/// `unknown` (never checked, not used since the start), or the verdict of its last check.
#[allow(clippy::too_many_arguments)]
pub(crate) fn live_status<'m>(
    state: &AppState,
    key_id: &str,
    upstream_models: impl Iterator<Item = &'m str>,
    enabled: bool,
    invalid: bool,
    cooling: Option<router::Reason>,
    stored_status: &str,
) -> &'static str {
    // What the router learned from requests through the key since the gateway started: a latency is measured on
    // successes only, samples count failures that cooled it too.
    let mut scores = Vec::new();
    state.books.scores.inputs(
        upstream_models.map(|m| (key_id, m, 1.0)),
        tokio::time::Instant::now(),
        &mut scores,
    );
    let served = scores.iter().any(|s| s.latency_ms.is_some());
    let failed = scores.iter().any(|s| s.samples > 0.0);
    if !enabled {
        "disabled"
    } else if invalid {
        "invalid"
    } else if let Some(reason) = cooling {
        if reason.is_rate_limit() {
            "rate_limited"
        } else {
            "error"
        }
    } else if served {
        "healthy"
    } else if failed {
        // Failed and rested; no success yet: the next request that needs it tries it again.
        "cooldown_ended"
    } else {
        match stored_status {
            "healthy" => "healthy",
            "invalid" => "invalid",
            "rate_limited" => "rate_limited",
            "error" => "error",
            // Never checked and not used since the start: nothing is known about it yet.
            _ => "unknown",
        }
    }
}

fn key_view(state: &AppState, row: &ProviderKeyRow) -> Value {
    let masked = match state.store.reveal(row) {
        Ok(Some(secret)) => Some(mask_secret(&secret)),
        Ok(None) => None,
        Err(_) => Some("(cannot decrypt)".into()),
    };
    let now = tokio::time::Instant::now();
    let cooling = state.books.cooldowns.cooldowns_of(&row.id, now);
    // The reason of the rest that ends last.
    let cooling_reason = cooling.iter().max_by_key(|c| c.1).map(|c| c.2);
    let cooldowns: Vec<Value> = cooling
        .into_iter()
        .map(|(model, remaining, reason)| {
            json!({ "model": model, "remaining_ms": remaining.as_millis() as u64, "reason": reason.as_str() })
        })
        .collect();
    let invalid = state.books.cooldowns.is_invalid(&row.id);
    let snapshot = state.snapshot.load();
    let tenant = snapshot.tenants.get(row.user_id.as_str());
    let index = tenant.and_then(|t| t.keys.iter().position(|k| *k.id == *row.id));
    let entry = tenant.zip(index).map(|(t, i)| &t.keys[i]);
    // The per-model scopes the key's requests also fall under (the catalog's per-model figures, with the key's own
    // fields in their place), and the upstream models the router may have tried on it.
    let mut model_limits = serde_json::Map::new();
    let mut upstream_models: Vec<&str> = Vec::new();
    if let (Some(t), Some(i)) = (tenant, index) {
        for (model, routes) in &t.models {
            for r in routes.iter().filter(|r| r.key == i) {
                upstream_models.push(&r.model);
                for (_, l) in r.scopes.iter().skip(1) {
                    model_limits.insert(
                        model.to_string(),
                        json!({ "rpm": l.rpm, "rph": l.rph, "rpd": l.rpd, "tpm": l.tpm, "tpd": l.tpd }),
                    );
                }
            }
        }
    }
    let live_status = live_status(
        state,
        &row.id,
        upstream_models.iter().copied(),
        row.enabled,
        invalid || row.status == "invalid",
        cooling_reason,
        &row.status,
    );
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
        "effective_model_limits": model_limits,
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
    let mut views = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut view = key_view(&state, row);
        add_cooldown_reasons(&state, row, &mut view).await;
        views.push(view);
    }
    Ok(Json(json!({ "data": views })))
}

/// Failure classes that cool a candidate (the others leave it alone or mark the key invalid).
const COOLING_CLASSES: [&str; 6] = [
    "rate_limited",
    "quota_exhausted",
    "server_error",
    "network",
    "timeout",
    "model_not_found",
];

/// Adds to each active cooldown of a key why it began: the class and message of the newest failed attempt on that
/// model. Failures reach the history in batches: a cooldown of the last moments keeps the cooldown book's reason
/// and has a `null` message.
async fn add_cooldown_reasons(state: &AppState, row: &ProviderKeyRow, view: &mut Value) {
    let Some(cooldowns) = view["cooldowns"].as_array_mut().filter(|c| !c.is_empty()) else {
        return;
    };
    // The longest cooldown is a day.
    let since = crate::runtime::events::now_ms() as i64 - 25 * 3_600_000;
    let failures = match state
        .store
        .attempt_failures_since(&row.user_id, &row.id, since, 200)
        .await
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the failures behind a key's cooldowns");
            Vec::new()
        }
    };
    for c in cooldowns.iter_mut() {
        let model = c["model"].as_str().unwrap_or_default();
        let cause = failures
            .iter()
            .find(|f| f.model == model && COOLING_CLASSES.contains(&f.error_class.as_str()));
        // The history's class is the finer one (timeout vs connection error); until the failure is written, the
        // cooldown book's own reason stands.
        if let Some(f) = cause {
            c["reason"] = json!(f.error_class.as_str());
        }
        c["message"] = json!(cause.and_then(|f| f.error_message.as_deref()));
    }
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

pub(crate) fn bad(code: &'static str, message: impl Into<String>) -> GatewayError {
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
    crate::guard::url_guard::check_url(url, state.config.allow_private_provider_urls)
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
pub(crate) fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A single limit field of a key update: `Ok(None)` when absent, `Ok(Some(None))` to clear.
pub(crate) fn limit_field(
    value: Option<&Value>,
    name: &str,
) -> Result<Option<Option<u64>>, GatewayError> {
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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/keys", get(list_keys).post(create_key))
        .route("/api/keys/{id}", patch(update_key).delete(delete_key))
        .route("/api/keys/{id}/discover", post(discover_key_models))
}
