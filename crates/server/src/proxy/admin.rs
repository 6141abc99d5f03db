//! `/api/proxies`: the session user's proxies (list with live stats, add, edit, delete, bulk actions, import, test)
//! and the pool settings (everyone reads them; only an admin changes them, since they apply to the whole gateway).
//! Credentials are write-only: listings show `user:****`, never the password.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use store::{NewProxy, ProxyPatch, ProxyRow};
use wire::{ApiError, ErrorType};

use super::pool::{parse_bypass, ProxyEntry, ProxySettings, Strategy};
use super::url::ProxyUrl;
use crate::api::session::{parse_json, session_user, ApiResult};
use crate::error::{not_found, GatewayError};
use crate::runtime::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/proxies", get(list).post(create))
        .route("/api/proxies/settings", get(get_settings).put(put_settings))
        .route("/api/proxies/bulk", post(bulk))
        .route("/api/proxies/import", post(import))
        .route("/api/proxies/{id}", patch(update).delete(remove))
        .route("/api/proxies/{id}/test", post(test_one))
}

fn bad(code: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError(ApiError::invalid_request(code, message))
}

/// `user:****`: enough to recognise which account, nothing of the password.
fn masked_credentials(credentials: Option<&str>) -> Option<String> {
    credentials.map(|c| {
        let user: String = c.split(':').next().unwrap_or("").chars().take(2).collect();
        format!("{user}…:****")
    })
}

fn entry_view(entry: &ProxyEntry) -> Value {
    let s = &entry.stats;
    let requests = s.requests.load(Ordering::Relaxed);
    let successes = s.successes.load(Ordering::Relaxed);
    let last_error = s.last_error();
    json!({
        "healthy": entry.health.is_healthy(),
        "health": {
            "consecutive_failures": entry.health.consecutive_failures(),
            "consecutive_successes": entry.health.consecutive_successes(),
            "latency_ms": entry.health.latency_ms(),
            "last_check_at": entry.health.last_check_ms(),
        },
        "stats": {
            "requests": requests,
            "successes": successes,
            "proxy_errors": s.proxy_errors.load(Ordering::Relaxed),
            "success_rate": (requests > 0).then(|| successes as f64 / requests as f64),
            "avg_latency_ms": s.avg_latency_ms(),
            "bytes_in": s.bytes_in.load(Ordering::Relaxed),
            "bytes_out": s.bytes_out.load(Ordering::Relaxed),
            "last_error": last_error.as_ref().map(|e| e.1.clone()),
            "last_error_at": last_error.map(|e| e.0),
        },
    })
}

fn proxy_view(state: &AppState, row: &ProxyRow) -> Value {
    let credentials = state.store.reveal_proxy_credentials(row).ok().flatten();
    let mut view = json!({
        "id": row.id,
        "label": row.label,
        "url": row.url,
        "credentials": masked_credentials(credentials.as_deref()),
        "country": row.country,
        "enabled": row.enabled,
        "source": "api",
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    });
    let pool = state.proxies.view();
    match pool.by_id.get(row.id.as_str()) {
        Some(entry) => {
            if let (Value::Object(v), Value::Object(live)) = (&mut view, entry_view(entry)) {
                v.extend(live);
            }
        }
        None => view["healthy"] = Value::Null,
    }
    view
}

fn settings_view(settings: &ProxySettings, state: &AppState) -> Value {
    json!({
        "strategy": settings.strategy.as_str(),
        "bypass": settings.bypass,
        "direct_fallback": settings.direct_fallback,
        "single_proxy": state.proxies.config.single.as_ref().map(|u| u.address()),
        "rotation_seconds": state.proxies.config.rotation.as_secs(),
        "health_interval_seconds": state.proxies.config.health_interval.as_secs(),
    })
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let rows = state.store.proxies_of(&user.id).await?;
    let data: Vec<Value> = rows.iter().map(|r| proxy_view(&state, r)).collect();
    let pool = state.proxies.view();
    // `PROXY_URL` is the gateway's, so only admins see its statistics.
    let single = pool.single.as_ref().filter(|_| user.is_admin()).map(|e| {
        let mut v = entry_view(e);
        v["id"] = json!(e.id);
        v["label"] = json!(e.label);
        v["url"] = json!(e.url.address());
        v["credentials"] = json!(masked_credentials(e.url.credentials()));
        v["source"] = json!("env");
        v
    });
    Ok(Json(json!({
        "data": data,
        "single": single,
        "settings": settings_view(&pool.settings, &state),
    })))
}

/// A proxy URL from a client: parsed, and passed through the outbound address guard (the host as written and
/// every address it resolves to now).
async fn checked_url(state: &AppState, text: &str) -> Result<ProxyUrl, GatewayError> {
    let url = ProxyUrl::parse(text).map_err(|e| bad("invalid_proxy_url", e.to_string()))?;
    url.check(state.config.allow_private_provider_urls)
        .await
        .map_err(|e| bad("proxy_url_refused", e.0))?;
    Ok(url)
}

fn clean_country(country: Option<String>) -> Result<Option<String>, GatewayError> {
    match country
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
    {
        Some(c) if c.len() == 2 && c.chars().all(|x| x.is_ascii_alphabetic()) => Ok(Some(c)),
        Some(_) => Err(bad(
            "invalid_country",
            "`country` must be a two-letter ISO 3166 code",
        )),
        None => Ok(None),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user = session_user(&state, &headers).await?;
    let body: CreateBody = parse_json(&headers, &body)?;
    let url = checked_url(&state, &body.url).await?;
    let label = body
        .label
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| url.host_port());
    let row = state
        .store
        .insert_proxy(&NewProxy {
            user_id: user.id.clone(),
            label,
            url: url.address(),
            credentials: url.credentials().map(str::to_owned),
            country: clean_country(body.country)?,
            enabled: body.enabled.unwrap_or(true),
        })
        .await?;
    state.reload().await?;
    tracing::info!(user = %user.username, proxy_id = %row.id, address = %row.url, "proxy added");
    Ok((StatusCode::CREATED, Json(proxy_view(&state, &row))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    /// A new address; its credentials (or their absence) replace the stored ones.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    label: Option<String>,
    /// An empty string clears it.
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let body: UpdateBody = parse_json(&headers, &body)?;
    let url = match body.url.as_deref() {
        Some(text) => Some(checked_url(&state, text).await?),
        None => None,
    };
    let patch = ProxyPatch {
        label: body
            .label
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty()),
        credentials: url.as_ref().map(|u| u.credentials().map(str::to_owned)),
        url: url.map(|u| u.address()),
        country: body.country.map(|c| clean_country(Some(c))).transpose()?,
        enabled: body.enabled,
    };
    let row = state
        .store
        .update_proxy(&user.id, &id, &patch)
        .await?
        .ok_or_else(|| GatewayError(not_found("proxy")))?;
    state.reload().await?;
    Ok(Json(proxy_view(&state, &row)))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = session_user(&state, &headers).await?;
    if state.store.delete_proxies(&user.id, &[id]).await? == 0 {
        return Err(not_found("proxy").into());
    }
    state.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn probe_view(entry: &ProxyEntry, r: &super::ProbeResult) -> Value {
    json!({
        "id": entry.id, "ok": r.ok, "latency_ms": r.latency.as_millis() as u64, "error": r.error,
        "healthy": entry.health.is_healthy(),
    })
}

/// The user's entries among `ids` (unknown or foreign ids are skipped).
fn own_entries(state: &AppState, user_id: &str, ids: &[String]) -> Vec<Arc<ProxyEntry>> {
    let pool = state.proxies.view();
    ids.iter()
        .filter_map(|id| pool.by_id.get(id.as_str()))
        .filter(|e| e.user_id.as_deref() == Some(user_id))
        .cloned()
        .collect()
}

async fn test_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let entry = if id == "env" && user.is_admin() {
        state.proxies.view().single.clone()
    } else {
        own_entries(&state, &user.id, std::slice::from_ref(&id)).pop()
    };
    let entry = entry.ok_or_else(|| GatewayError(not_found("proxy")))?;
    let result = state.proxies.check(&entry).await;
    Ok(Json(probe_view(&entry, &result)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    action: String,
    ids: Vec<String>,
}

async fn bulk(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let body: BulkBody = parse_json(&headers, &body)?;
    if body.ids.len() > 10_000 {
        return Err(bad("too_many_ids", "at most 10000 ids per bulk action"));
    }
    let affected = match body.action.as_str() {
        "enable" | "disable" => {
            state
                .store
                .set_proxies_enabled(&user.id, &body.ids, body.action == "enable")
                .await?
        }
        "delete" => state.store.delete_proxies(&user.id, &body.ids).await?,
        "test" => {
            let entries = own_entries(&state, &user.id, &body.ids);
            let results = state.proxies.check_many(entries).await;
            let views: Vec<Value> = results.iter().map(|(e, r)| probe_view(e, r)).collect();
            return Ok(Json(
                json!({ "action": "test", "affected": views.len(), "results": views }),
            ));
        }
        other => {
            return Err(bad(
                "invalid_action",
                format!("unknown action `{other}`: use enable, disable, delete or test"),
            ))
        }
    };
    state.reload().await?;
    Ok(Json(json!({ "action": body.action, "affected": affected })))
}

/// Imports a text body: one `url [country]` per line (the format `freellmapi proxies find` writes). Addresses the
/// user already has are skipped; lines that are not proxy URLs are reported by number.
async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user = session_user(&state, &headers).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| bad("invalid_body", "send the list as UTF-8 text"))?;
    let mut known: Vec<String> = state
        .store
        .proxies_of(&user.id)
        .await?
        .into_iter()
        .map(|r| r.url)
        .collect();
    let (mut added, mut skipped) = (0u64, 0u64);
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let url_text = parts.next().unwrap_or_default();
        let parsed = ProxyUrl::parse(url_text)
            .map_err(|e| e.to_string())
            .and_then(|u| {
                clean_country(parts.next().map(str::to_owned))
                    .map(|c| (u, c))
                    .map_err(|e| e.0.message)
            });
        let (url, country) = match parsed {
            Ok(p) => p,
            Err(e) => {
                errors.push(json!({ "line": n + 1, "error": e }));
                continue;
            }
        };
        if let Err(e) = url.check(state.config.allow_private_provider_urls).await {
            errors.push(json!({ "line": n + 1, "error": e.0 }));
            continue;
        }
        if known.contains(&url.address()) {
            skipped += 1;
            continue;
        }
        state
            .store
            .insert_proxy(&NewProxy {
                user_id: user.id.clone(),
                label: url.host_port(),
                url: url.address(),
                credentials: url.credentials().map(str::to_owned),
                country,
                enabled: true,
            })
            .await?;
        known.push(url.address());
        added += 1;
    }
    state.reload().await?;
    tracing::info!(user = %user.username, added, skipped, "proxies imported");
    let status = if added > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "added": added, "skipped": skipped, "errors": errors })),
    )
        .into_response())
}

async fn get_settings(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    session_user(&state, &headers).await?;
    let pool = state.proxies.view();
    Ok(Json(settings_view(&pool.settings, &state)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    #[serde(default)]
    strategy: Option<String>,
    /// A list of platform ids, or one comma-separated string.
    #[serde(default)]
    bypass: Option<Value>,
    #[serde(default)]
    direct_fallback: Option<bool>,
}

async fn put_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    if !user.is_admin() {
        return Err(GatewayError(ApiError::new(
            403,
            ErrorType::PermissionError,
            "admin_only",
            "the proxy pool settings apply to the whole gateway: only an admin changes them",
        )));
    }
    let body: SettingsBody = parse_json(&headers, &body)?;
    let mut settings = state.proxies.view().settings.clone();
    if let Some(s) = body.strategy {
        settings.strategy = s
            .parse::<Strategy>()
            .map_err(|e| bad("invalid_strategy", e))?;
    }
    if let Some(b) = body.bypass {
        let text = match b {
            Value::String(s) => s,
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or(()))
                .collect::<Result<Vec<_>, ()>>()
                .map_err(|_| bad("invalid_bypass", "`bypass` must list platform ids"))?
                .join(","),
            Value::Null => String::new(),
            _ => return Err(bad("invalid_bypass", "`bypass` must list platform ids")),
        };
        let ids = parse_bypass(&text);
        if let Some(unknown) = ids
            .iter()
            .find(|id| id.parse::<providers::Platform>().is_err())
        {
            return Err(bad(
                "invalid_bypass",
                format!("unknown platform `{unknown}`"),
            ));
        }
        settings.bypass = ids;
    }
    if let Some(d) = body.direct_fallback {
        settings.direct_fallback = d;
    }
    settings.save(&state.store).await?;
    state.reload().await?;
    tracing::info!(user = %user.username, strategy = settings.strategy.as_str(), "proxy pool settings changed");
    Ok(Json(settings_view(&state.proxies.view().settings, &state)))
}
