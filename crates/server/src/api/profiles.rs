//! `/api/profiles`: the session user's AI profiles — named virtual models over an ordered list of real models,
//! with a strategy (`failover`, `round-robin`, `least-latency`, `score`). Listed with their reachable members, the smallest
//! context window and the last 24 hours' counters. Changes rebuild the snapshot.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use store::ProfileRow;
use wire::ApiError;

use crate::api::session::{parse_json, session_user, ApiResult};
use crate::error::{not_found, GatewayError};
use crate::runtime::snapshot::ProfileStrategy;
use crate::runtime::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/profiles", get(list).post(create))
        .route("/api/profiles/{id}", patch(update).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    name: String,
    #[serde(default = "default_strategy")]
    strategy: String,
    models: Vec<String>,
}

fn default_strategy() -> String {
    "failover".into()
}

const MAX_MEMBERS: usize = 32;

fn bad(code: &'static str, param: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError(ApiError::invalid_request(code, message).with_param(param))
}

/// Validates a profile body into (name, strategy, members).
fn validated(body: ProfileBody) -> Result<(String, ProfileStrategy, Vec<String>), GatewayError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(bad(
            "invalid_name",
            "name",
            "`name` must be 1 to 64 printable characters",
        ));
    }
    if name == "auto" {
        return Err(bad(
            "invalid_name",
            "name",
            "`auto` is reserved for the router's own choice",
        ));
    }
    let strategy = ProfileStrategy::parse(body.strategy.trim()).ok_or_else(|| {
        bad(
            "invalid_strategy",
            "strategy",
            format!(
                "`strategy` must be failover, round-robin, least-latency or score, not `{}`",
                body.strategy
            ),
        )
    })?;
    let mut members: Vec<String> = Vec::new();
    for model in body.models {
        let model = model.trim().to_owned();
        if model.is_empty() || model == "auto" || model == name {
            return Err(bad(
                "invalid_models",
                "models",
                "`models` must list real model ids (not empty, `auto` or the profile itself)",
            ));
        }
        if !members.contains(&model) {
            members.push(model);
        }
    }
    if members.is_empty() || members.len() > MAX_MEMBERS {
        return Err(bad(
            "invalid_models",
            "models",
            format!("`models` must list 1 to {MAX_MEMBERS} models"),
        ));
    }
    Ok((name, strategy, members))
}

/// Request counters per profile name over the last 24 hours.
async fn counters(
    state: &AppState,
    user_id: &str,
) -> Result<HashMap<String, (u64, u64)>, GatewayError> {
    let since = crate::runtime::events::now_ms() as i64 - 24 * 3_600_000;
    let rows = state
        .store
        .request_stats_since(user_id, since, None, 100_000)
        .await?;
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    for r in rows {
        let e = out.entry(r.requested_model).or_default();
        e.0 += 1;
        e.1 += u64::from(r.status == "error");
    }
    Ok(out)
}

fn view(state: &AppState, row: &ProfileRow, counts: &HashMap<String, (u64, u64)>) -> Value {
    let snapshot = state.snapshot.load();
    let tenant = snapshot.tenants.get(row.user_id.as_str());
    let reachable: Vec<&String> = row
        .models
        .iter()
        .filter(|m| tenant.is_some_and(|t| t.routes_of(m.as_str()).is_some()))
        .collect();
    let context_window = tenant
        .and_then(|t| t.profiles.get(row.name.as_str()))
        .and_then(|p| tenant.and_then(|t| t.profile_context_window(p)));
    let (requests, errors) = counts.get(&row.name).copied().unwrap_or_default();
    json!({
        "id": row.id,
        "name": row.name,
        "strategy": row.strategy,
        "models": row.models,
        "reachable_models": reachable,
        "context_window": context_window,
        "source": if row.config_name.is_some() { "config" } else { "api" },
        "stats_24h": { "requests": requests, "errors": errors },
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let rows = state.store.profiles_of(&user.id).await?;
    let counts = counters(&state, &user.id).await?;
    let data: Vec<Value> = rows.iter().map(|r| view(&state, r, &counts)).collect();
    Ok(Json(json!({ "data": data })))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user = session_user(&state, &headers).await?;
    let (name, strategy, members) = validated(parse_json(&headers, &body)?)?;
    let row = state
        .store
        .create_profile(&user.id, &name, strategy.as_str(), &members, None)
        .await?;
    state.reload().await?;
    let counts = HashMap::new();
    Ok((StatusCode::CREATED, Json(view(&state, &row, &counts))).into_response())
}

async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let (name, strategy, members) = validated(parse_json(&headers, &body)?)?;
    let row = state
        .store
        .update_profile(&user.id, &id, &name, strategy.as_str(), &members)
        .await?
        .ok_or_else(|| GatewayError(not_found("profile")))?;
    state.reload().await?;
    let counts = counters(&state, &user.id).await?;
    Ok(Json(view(&state, &row, &counts)))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let user = session_user(&state, &headers).await?;
    if !state.store.delete_profile(&user.id, &id).await? {
        return Err(not_found("profile").into());
    }
    state.reload().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
