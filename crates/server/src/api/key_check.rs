//! Key checks and model refresh. A check is one cheap call per provider key (`GET …/models`, or a one-token chat
//! where the model list is public: [`providers::KeyProbe`]) and a verdict — `healthy`, `rate_limited`, `invalid` (the
//! credential was refused) or `error` (unreachable or failing) — with its reason. The verdict is stored on the key
//! version that earned it and reaches the router: an invalid key leaves rotation, a healthy one returns to it.
//! The periodic model refresh (`MODEL_REFRESH_INTERVAL_MINUTES`) lives here too.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use providers::{classify_response, classify_transport, Adapter, ErrorClass, KeyProbe, Platform};
use serde_json::{json, Value};
use store::{ProviderKeyPatch, ProviderKeyRow};

use crate::api::keys::{discover_models, validate_key_settings};
use crate::api::session::{session_user, ApiResult};
use crate::error::not_found;
use crate::runtime::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Keys checked at once by "check all".
const CHECK_CONCURRENCY: usize = 4;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `healthy`, `rate_limited`, `invalid` or `error`.
    pub status: &'static str,
    pub reason: Option<String>,
}

impl Verdict {
    fn healthy() -> Self {
        Self {
            status: "healthy",
            reason: None,
        }
    }

    fn failed(class: ErrorClass, reason: String) -> Self {
        let status = match class {
            ErrorClass::Auth => "invalid",
            ErrorClass::RateLimited | ErrorClass::QuotaExhausted => "rate_limited",
            _ => "error",
        };
        Self {
            status,
            reason: Some(reason),
        }
    }
}

/// Probes one key without recording anything.
pub async fn probe_key(state: &AppState, row: &ProviderKeyRow) -> Verdict {
    let Ok(platform) = row.platform.parse::<Platform>() else {
        return Verdict::failed(ErrorClass::BadRequest, "unknown platform".into());
    };
    let secret = match state.store.reveal(row) {
        Ok(secret) => secret,
        Err(e) => return Verdict::failed(ErrorClass::Auth, format!("cannot decrypt: {e}")),
    };
    let endpoint = match validate_key_settings(platform, secret.as_deref(), row.base_url.as_deref())
    {
        Ok(endpoint) => endpoint,
        Err(e) => return Verdict::failed(ErrorClass::Auth, e.0.message.clone()),
    };
    let adapter = Adapter::for_platform(platform);
    // Through the user's proxy pool, as an attempt or a discovery would go.
    let egress = state.proxies.egress_for_discovery(&row.user_id, &endpoint);
    let client = egress.client(&state.http);
    let first_model = row.models.first();
    let request = match (platform.key_probe(), first_model) {
        (KeyProbe::MinimalChat, Some(model)) => {
            let body = json!({
                "model": model,
                "messages": [{ "role": "user", "content": "hi" }],
                "max_tokens": 1
            });
            match adapter.chat_request(&endpoint, model, Bytes::from(body.to_string()), false) {
                Ok(request) => request,
                Err(e) => return Verdict::failed(ErrorClass::BadRequest, e.to_string()),
            }
        }
        _ => adapter.models_request(&endpoint),
    };
    let sent = match crate::upstream::for_reqwest(request, CHECK_TIMEOUT) {
        Ok(request) => client.execute(request).await,
        Err(e) => Err(e),
    };
    let response = match sent {
        Ok(response) => response,
        Err(e) => {
            let failure = classify_transport(&e, e.is_timeout());
            return Verdict::failed(failure.class, failure.message);
        }
    };
    let status = response.status();
    if status.is_success() {
        return Verdict::healthy();
    }
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap_or_default();
    let failure = classify_response(status, &headers, &body);
    Verdict::failed(
        failure.class,
        format!("{} {}", status.as_u16(), failure.message),
    )
}

/// Probes a key, stores the verdict on the version checked and tells the router.
pub async fn check_key(state: &AppState, row: &ProviderKeyRow) -> ApiResult<Value> {
    let verdict = probe_key(state, row).await;
    let applied = state
        .store
        .set_provider_key_status_if_unchanged(
            &row.id,
            row.updated_at,
            verdict.status,
            verdict.reason.as_deref(),
        )
        .await?;
    if applied {
        match verdict.status {
            "invalid" => state.mark_invalid(&row.id, row.updated_at),
            // A key that works again is tried again at once.
            "healthy" => state.books.cooldowns.reset_key(&row.id),
            _ => {}
        }
        let user: std::sync::Arc<str> = std::sync::Arc::from(row.user_id.as_str());
        state.events.publish(
            &user,
            "key.status",
            || json!({ "key_id": row.id, "status": verdict.status, "reason": verdict.reason }),
        );
    }
    Ok(json!({
        "id": row.id,
        "platform": row.platform,
        "label": row.label,
        "status": verdict.status,
        "reason": verdict.reason,
        // False when the key was edited while it was being checked: the verdict was about its old version.
        "recorded": applied,
    }))
}

/// `POST /api/keys/{id}/check`.
pub async fn check_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let Some(row) = state.store.provider_key(&user.id, &id).await? else {
        return Err(not_found("provider key").into());
    };
    let result = check_key(&state, &row).await?;
    state.reload().await?;
    Ok(Json(result))
}

/// `POST /api/keys/check-all`: every key of the session's user, a few at a time.
pub async fn check_all(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let rows = state.store.provider_keys_of(&user.id).await?;
    let results: Vec<ApiResult<Value>> = futures_util::stream::iter(rows)
        .map(|row| {
            let state = state.clone();
            async move { check_key(&state, &row).await }
        })
        .buffered(CHECK_CONCURRENCY)
        .collect()
        .await;
    let results = results.into_iter().collect::<ApiResult<Vec<Value>>>()?;
    state.reload().await?;
    let count = |status: &str| results.iter().filter(|r| r["status"] == status).count();
    Ok(Json(json!({
        "checked": results.len(),
        "healthy": count("healthy"),
        "rate_limited": count("rate_limited"),
        "invalid": count("invalid"),
        "error": count("error"),
        "results": results,
    })))
}

/// What one refresh of a key's model list changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ModelChanges {
    pub added: Vec<String>,
    /// Listed on the key but no longer advertised by the platform. They stay on the key (a profile may use them);
    /// the caller reports them.
    pub vanished: Vec<String>,
}

/// Asks a key's platform for its models and adds the new ones to the key. Custom endpoints register everything
/// they advertise; catalog platforms too, since the key's list is what the router serves.
pub async fn refresh_models(
    state: &AppState,
    row: &ProviderKeyRow,
) -> Result<ModelChanges, String> {
    let platform: Platform = row.platform.parse().map_err(|_| "unknown platform")?;
    let secret = state.store.reveal(row).map_err(|e| e.to_string())?;
    let endpoint = validate_key_settings(platform, secret.as_deref(), row.base_url.as_deref())
        .map_err(|e| e.0.message.clone())?;
    let found = discover_models(state, &row.user_id, &endpoint).await?;
    let changes = ModelChanges {
        added: found
            .iter()
            .filter(|m| !row.models.contains(m))
            .cloned()
            .collect(),
        vanished: row
            .models
            .iter()
            .filter(|m| !found.contains(m))
            .cloned()
            .collect(),
    };
    if !changes.added.is_empty() {
        let mut merged = row.models.clone();
        merged.extend(changes.added.iter().cloned());
        let patch = ProviderKeyPatch {
            models: Some(merged),
            ..ProviderKeyPatch::default()
        };
        state
            .store
            .update_provider_key(&row.user_id, &row.id, &patch)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(changes)
}

/// Refreshes the model lists of every enabled key every `every`, until the state is dropped.
pub fn spawn_model_refresh(state: &AppState, every: Duration) {
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        // The first tick is immediate: start-up already loaded the lists.
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = AppState::upgrade(&weak) else {
                break;
            };
            let rows = match state.store.all_provider_keys().await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "model refresh could not list keys");
                    continue;
                }
            };
            let mut changed = false;
            for row in rows.iter().filter(|r| r.enabled) {
                match refresh_models(&state, row).await {
                    Ok(c) => {
                        changed |= !c.added.is_empty();
                        if !c.added.is_empty() || !c.vanished.is_empty() {
                            tracing::info!(
                                provider_key = %row.id, platform = %row.platform,
                                added = ?c.added, vanished = ?c.vanished,
                                "model list refreshed"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::debug!(provider_key = %row.id, error = %e, "model refresh failed")
                    }
                }
            }
            if changed {
                if let Err(e) = state.reload().await {
                    tracing::error!(error = %e, "could not reload the key pool");
                }
            }
        }
    });
}

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/keys/{id}/check", axum::routing::post(check_one))
        .route("/api/keys/check-all", axum::routing::post(check_all))
}
