//! `/api/users` (admin only) and `/api/auth/password` (everyone): accounts. Disabling or deleting a user ends their
//! sessions and rebuilds the snapshot, so their gateway keys stop working at once; changing a password ends every
//! other session of that user. An admin cannot disable, demote or delete their own account, so at least one
//! enabled admin always remains.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use store::User;
use wire::{ApiError, ErrorType};

use crate::api::session::{parse_json, session_token, session_user, ApiResult};
use crate::error::{not_found, GatewayError};
use crate::runtime::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{id}", patch(update_user).delete(delete_user))
        .route("/api/auth/password", post(change_password))
}

/// The session's user, who must be an admin (403 otherwise).
pub(crate) async fn admin_user(state: &AppState, headers: &HeaderMap) -> ApiResult<User> {
    let user = session_user(state, headers).await?;
    if !user.is_admin() {
        return Err(GatewayError(ApiError::new(
            403,
            ErrorType::PermissionError,
            "admin_required",
            "only an admin can manage users",
        )));
    }
    Ok(user)
}

fn user_view(user: &User) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "enabled": user.enabled,
        "disabled": !user.enabled,
        "created_at": user.created_at,
    })
}

fn bad(code: &'static str, message: impl Into<String>) -> GatewayError {
    GatewayError(ApiError::invalid_request(code, message))
}

fn valid_role(role: &str) -> Result<&'static str, GatewayError> {
    match role {
        "admin" => Ok("admin"),
        "user" => Ok("user"),
        _ => Err(bad("invalid_role", "`role` must be \"admin\" or \"user\"")),
    }
}

async fn list_users(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    admin_user(&state, &headers).await?;
    let users = state.store.users().await?;
    Ok(Json(
        json!({ "data": users.iter().map(user_view).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

fn valid_username(username: &str) -> Result<String, GatewayError> {
    let username = username.trim();
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !ok {
        return Err(bad(
            "invalid_username",
            "a username is 1 to 64 letters, digits, `-`, `_`, `.` or `@`",
        ));
    }
    Ok(username.to_owned())
}

async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let admin = admin_user(&state, &headers).await?;
    let body: CreateUserBody = parse_json(&headers, &body)?;
    let username = valid_username(&body.username)?;
    let role = valid_role(body.role.as_deref().unwrap_or("user"))?;
    let user = state
        .store
        .create_user(&username, &body.password, role)
        .await?;
    state.reload().await?;
    tracing::info!(admin = %admin.username, user = %user.username, role, "user created");
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

async fn update_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let admin = admin_user(&state, &headers).await?;
    let body: UpdateUserBody = parse_json(&headers, &body)?;
    let Some(target) = state.store.user_by_id(&id).await? else {
        return Err(not_found("user").into());
    };
    let enabled = match (body.enabled, body.disabled) {
        (Some(e), Some(d)) if e == d => {
            return Err(bad(
                "invalid_body",
                "`enabled` and `disabled` contradict each other",
            ))
        }
        (Some(e), _) => Some(e),
        (None, Some(d)) => Some(!d),
        (None, None) => None,
    };
    let role = body.role.as_deref().map(valid_role).transpose()?;
    if target.id == admin.id && (enabled == Some(false) || role == Some("user")) {
        return Err(bad(
            "cannot_modify_self",
            "you cannot disable or demote your own account",
        ));
    }
    if let Some(password) = &body.password {
        state.store.set_password(&target.id, password).await?;
        // A reset password ends the user's sessions (the admin's own session stays when resetting their own).
        let keep = (target.id == admin.id)
            .then(|| session_token(&headers))
            .flatten();
        state
            .store
            .delete_sessions_of(&target.id, keep.as_deref())
            .await?;
        tracing::info!(admin = %admin.username, user = %target.username, "password reset by an admin");
    }
    if let Some(role) = role {
        state.store.set_user_role(&target.id, role).await?;
    }
    if let Some(enabled) = enabled {
        state.store.set_user_enabled(&target.id, enabled).await?;
        if !enabled {
            state.store.delete_sessions_of(&target.id, None).await?;
        }
        tracing::info!(admin = %admin.username, user = %target.username, enabled, "user enabled flag changed");
    }
    state.reload().await?;
    let user = state
        .store
        .user_by_id(&target.id)
        .await?
        .ok_or_else(|| GatewayError(not_found("user")))?;
    Ok(Json(user_view(&user)))
}

async fn delete_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let admin = admin_user(&state, &headers).await?;
    if id == admin.id {
        return Err(bad(
            "cannot_modify_self",
            "you cannot delete your own account",
        ));
    }
    let Some(target) = state.store.user_by_id(&id).await? else {
        return Err(not_found("user").into());
    };
    state.store.delete_user(&target.id).await?;
    state.reload().await?;
    tracing::info!(admin = %admin.username, user = %target.username, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let body: ChangePasswordBody = parse_json(&headers, &body)?;
    // Guessing the current password through a stolen session is throttled like logins.
    let now = tokio::time::Instant::now();
    state
        .login_throttle
        .check(&user.username, peer.ip(), now)
        .map_err(crate::api::session::too_many_attempts)?;
    if !state
        .store
        .check_password(&user.id, &body.current_password)
        .await?
    {
        state.login_failed(&user.username, peer.ip(), now);
        return Err(GatewayError(ApiError::new(
            403,
            ErrorType::PermissionError,
            "wrong_password",
            "the current password is not correct",
        )));
    }
    state
        .store
        .set_password(&user.id, &body.new_password)
        .await?;
    let keep = session_token(&headers);
    let revoked = state
        .store
        .delete_sessions_of(&user.id, keep.as_deref())
        .await?;
    tracing::info!(user = %user.username, other_sessions_ended = revoked, "password changed");
    Ok(Json(
        json!({ "changed": true, "other_sessions_ended": revoked }),
    ))
}
