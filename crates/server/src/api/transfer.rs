//! `/api/keys/export` and `/api/keys/import`: a user's provider keys in a file encrypted with their password
//! (argon2id + AES-256-GCM, `store::seal_with_password`), so it can be restored on any instance whatever its
//! `ENCRYPTION_KEY`. Exporting asks for the account password again (a stolen session alone cannot take the keys
//! away) and is throttled like logins. Importing adds to the caller's account only, runs every key through the
//! same checks as a new key (platform, base URL guard), and skips duplicates: same platform, secret and base URL.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use providers::Platform;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::{KeyLimits, NewProviderKey, ProviderKeyPatch};
use wire::{ApiError, ErrorType};

use crate::api::keys::{guard_base_url, validate_key_settings};
use crate::api::session::{parse_json, session_user, too_many_attempts, ApiResult};
use crate::error::{internal, GatewayError};
use crate::runtime::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/keys/export", post(export_keys))
        .route("/api/keys/import", post(import_keys))
}

/// One key inside the encrypted payload.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportedKey {
    platform: String,
    label: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    limits: KeyLimits,
}

fn yes() -> bool {
    true
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportPayload {
    keys: Vec<ExportedKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportBody {
    password: String,
}

fn blocking_failed() -> GatewayError {
    GatewayError(internal("the encryption task failed"))
}

async fn export_keys(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let user = session_user(&state, &headers).await?;
    let body: ExportBody = parse_json(&headers, &body)?;
    let now = tokio::time::Instant::now();
    state
        .login_throttle
        .check(&user.username, peer.ip(), now)
        .map_err(too_many_attempts)?;
    if !state.store.check_password(&user.id, &body.password).await? {
        state.login_failed(&user.username, peer.ip(), now);
        return Err(GatewayError(ApiError::new(
            403,
            ErrorType::PermissionError,
            "wrong_password",
            "give your account password to export your keys",
        )));
    }
    let mut keys = Vec::new();
    for row in state.store.provider_keys_of(&user.id).await? {
        keys.push(ExportedKey {
            key: state.store.reveal(&row)?,
            platform: row.platform,
            label: row.label,
            base_url: row.base_url,
            models: row.models,
            enabled: row.enabled,
            limits: row.limits,
        });
    }
    let count = keys.len();
    let plaintext = serde_json::to_vec(&ExportPayload { keys })
        .map_err(|_| GatewayError(internal("serialisation failed")))?;
    let password = body.password;
    let file =
        tokio::task::spawn_blocking(move || store::seal_with_password(&password, &plaintext))
            .await
            .map_err(|_| blocking_failed())??;
    tracing::info!(user = %user.username, keys = count, "provider keys exported");
    let mut response = file.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"freellmapi-keys.json\""),
    );
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// The export file: its JSON object, or its text.
    file: Value,
    password: String,
}

async fn import_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let user = session_user(&state, &headers).await?;
    let body: ImportBody = parse_json(&headers, &body)?;
    let file = match body.file {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let password = body.password;
    let opened = tokio::task::spawn_blocking(move || store::open_with_password(&password, &file))
        .await
        .map_err(|_| blocking_failed())?
        .map_err(|e| {
            GatewayError(ApiError::invalid_request(
                "invalid_export_file",
                e.to_string(),
            ))
        })?;
    let payload: ExportPayload = serde_json::from_slice(&opened).map_err(|_| {
        GatewayError(ApiError::invalid_request(
            "invalid_export_file",
            "the file's contents are not a key list",
        ))
    })?;
    let mut seen: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for row in state.store.provider_keys_of(&user.id).await? {
        seen.push((
            row.platform.clone(),
            state.store.reveal(&row)?,
            row.base_url,
        ));
    }
    let (mut imported, mut duplicates) = (0u32, 0u32);
    let mut refused = Vec::new();
    for (index, key) in payload.keys.into_iter().enumerate() {
        let identity = (key.platform.clone(), key.key.clone(), key.base_url.clone());
        if seen.contains(&identity) {
            duplicates += 1;
            continue;
        }
        let checked = match key.platform.parse::<Platform>() {
            Ok(platform) => {
                match validate_key_settings(platform, key.key.as_deref(), key.base_url.as_deref()) {
                    Ok(_) => guard_base_url(&state, key.base_url.as_deref()).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(GatewayError(ApiError::invalid_request(
                "unknown_platform",
                e.to_string(),
            ))),
        };
        if let Err(GatewayError(e)) = checked {
            refused.push(json!({ "index": index, "label": key.label, "reason": e.message }));
            continue;
        }
        let row = state
            .store
            .insert_provider_key(&NewProviderKey {
                user_id: user.id.clone(),
                platform: key.platform.clone(),
                label: key.label.clone(),
                secret: key.key.clone(),
                base_url: key.base_url.clone(),
                models: key.models.clone(),
                enabled: key.enabled,
                config_name: None,
            })
            .await?;
        if key.limits != KeyLimits::default() {
            let patch = ProviderKeyPatch {
                limits: Some(key.limits),
                ..ProviderKeyPatch::default()
            };
            state
                .store
                .update_provider_key(&user.id, &row.id, &patch)
                .await?;
        }
        seen.push(identity);
        imported += 1;
    }
    state.reload().await?;
    tracing::info!(user = %user.username, imported, duplicates, refused = refused.len(), "provider keys imported");
    Ok(Json(json!({
        "imported": imported,
        "skipped_duplicates": duplicates,
        "refused": refused,
    })))
}
