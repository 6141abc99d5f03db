//! `/api` read-only views: the platform table, recent requests, the effective non-secret settings, and the 404 for
//! unknown `/api` routes.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use wire::ApiError;

use crate::error::{error_response, not_found, GatewayError};
use crate::runtime::state::AppState;

use super::session::{session_user, ApiResult};
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

async fn recent_requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let limit = match crate::api::dashboard::query_param(query.as_deref(), "limit") {
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
        "login_failures_before_lockout": crate::guard::login_throttle::ACCOUNT_FREE_FAILURES,
    })))
}

async fn unknown_api() -> Response {
    error_response(&not_found("API route"))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/platforms", get(platforms))
        .route("/api/requests", get(recent_requests))
        .route("/api/settings", get(settings))
        .route("/api/{*rest}", axum::routing::any(unknown_api))
}
