//! `/api/gateway-keys`: the keys clients send as their OpenAI API key — minted (shown once, stored as a hash),
//! listed with their live usage, limited (requests per minute, tokens per day, model allow-list), disabled, deleted.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{not_found, GatewayError};
use crate::runtime::state::AppState;

use super::keys::{bad, limit_field, present};
use super::session::{parse_json, session_user, ApiResult};
/// Refusals over the last 24 hours, by gateway key id.
type RefusalBook = std::collections::HashMap<String, store::Refusals>;

async fn refusals(state: &AppState, user_id: &str) -> Result<RefusalBook, GatewayError> {
    let since = crate::runtime::events::now_ms() as i64 - 24 * 3_600_000;
    Ok(state
        .store
        .gateway_key_refusals_since(user_id, since)
        .await?
        .into_iter()
        .map(|r| (r.gateway_key_id.clone(), r))
        .collect())
}

/// A gateway key as the API shows it: the stored row (never the hash) with its live usage and the requests the
/// gateway refused for it over the last 24 hours (with the latest refusal's reason).
fn gateway_key_view(state: &AppState, row: &store::GatewayKeyRow, refusals: &RefusalBook) -> Value {
    let refused = refusals.get(&row.id);
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
        "refused_24h": refused.map_or(0, |r| r.count),
        "last_refusal": refused.map(|r| json!({ "code": r.last_code, "at": r.last_at })),
    })
}

async fn list_gateway_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let rows = state.store.gateway_keys_of(&user.id).await?;
    let refused = refusals(&state, &user.id).await?;
    Ok(Json(json!({
        "data": rows.iter().map(|r| gateway_key_view(&state, r, &refused)).collect::<Vec<_>>()
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
    let mut view = gateway_key_view(&state, &row, &RefusalBook::new());
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
    let refused = refusals(&state, &user.id).await?;
    Ok(Json(gateway_key_view(&state, &row, &refused)))
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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/gateway-keys",
            get(list_gateway_keys).post(create_gateway_key),
        )
        .route(
            "/api/gateway-keys/{id}",
            patch(update_gateway_key).delete(delete_gateway_key),
        )
}
