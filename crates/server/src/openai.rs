//! `/v1`: the OpenAI-compatible surface. Handlers authenticate from the snapshot, read the body once, parse only
//! the routing fields, and hand over to [`crate::relay`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use router::Strategy;
use tokio::time::Instant;
use wire::{ApiError, ChatRequestView, EmbeddingsRequestView, ErrorType};

use crate::body::read_limited;
use crate::error::{error_response, GatewayError};
use crate::gateway_usage::KeyLimitDenied;
use crate::relay::{self, Operation, RequestMeta, RouteSet};
use crate::snapshot::{hash_token, ProfileStrategy, Route, Tenant};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{*id}", get(get_model))
        .route("/v1/{*rest}", axum::routing::any(unknown_endpoint))
}

/// The authenticated caller of a `/v1` request.
pub struct Caller {
    pub tenant: Arc<Tenant>,
    pub gateway_key_id: Arc<str>,
    pub gateway_key_prefix: Arc<str>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn auth_error(message: &str, code: &'static str) -> ApiError {
    ApiError::new(401, ErrorType::AuthenticationError, code, message)
}

/// Client-address limit, then gateway key. No database access.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Caller, ApiError> {
    if let Err(retry) = state.ip_limiter.check(peer.ip(), Instant::now()) {
        return Err(ApiError::new(
            429,
            ErrorType::RateLimitError,
            "client_rate_limited",
            format!(
                "too many requests from this address (limit {}/min)",
                state.config.ip_rate_limit_rpm
            ),
        )
        .with_retry_after(retry));
    }
    let token = bearer(headers).filter(|t| !t.is_empty()).ok_or_else(|| {
        auth_error(
            "missing API key: send `Authorization: Bearer <gateway key>`",
            "missing_api_key",
        )
    })?;
    let snapshot = state.snapshot.load();
    let entry = snapshot
        .gateway_keys
        .get(&hash_token(token))
        .ok_or_else(|| auth_error("invalid API key", "invalid_api_key"))?;
    if !entry.enabled {
        return Err(auth_error(
            "this gateway key is disabled",
            "api_key_disabled",
        ));
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    entry
        .usage
        .admit(
            entry.rpm_limit,
            entry.tpd_limit,
            Instant::now(),
            router::Day::from_system_time(),
            now_ms,
        )
        .map_err(key_limit_error)?;
    Ok(Caller {
        tenant: entry.tenant.clone(),
        gateway_key_id: entry.id.clone(),
        gateway_key_prefix: entry.prefix.clone(),
    })
}

fn key_limit_error(denied: KeyLimitDenied) -> ApiError {
    let (message, retry_after) = match denied {
        KeyLimitDenied::RequestsPerMinute { limit, retry_after } => (
            format!("this gateway key's limit of {limit} requests per minute is reached"),
            retry_after,
        ),
        KeyLimitDenied::TokensPerDay { limit, retry_after } => (
            format!("this gateway key's limit of {limit} tokens per day (UTC) is reached"),
            retry_after,
        ),
    };
    ApiError::new(
        429,
        ErrorType::RateLimitError,
        "gateway_key_rate_limited",
        message,
    )
    .with_retry_after(retry_after.as_secs().max(1))
}

fn request_id(headers: &HeaderMap) -> Arc<str> {
    let inbound = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()));
    match inbound {
        Some(v) => Arc::from(v),
        // Not a secret: a fast thread-local generator, no system call per request.
        None => Arc::from(format!("{:016x}", rand::random::<u64>()).as_str()),
    }
}

fn no_providers(tenant: &Tenant) -> Option<ApiError> {
    tenant.keys.is_empty().then(|| {
        ApiError::new(
            503,
            ErrorType::ServiceUnavailable,
            "no_providers_configured",
            "no provider keys are configured for this account; add one in the dashboard, the admin API or the config file",
        )
    })
}

fn model_not_found(model: &str) -> ApiError {
    ApiError::new(
        404,
        ErrorType::NotFoundError,
        "model_not_found",
        format!("The model `{model}` does not exist or you do not have access to it. GET /v1/models lists the models you can use."),
    )
    .with_param("model")
}

/// Authenticates the caller (before reading anything), then reads the body once, bounded.
async fn authenticated_body(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
) -> Result<(Caller, HeaderMap, Bytes), ApiError> {
    let caller = authenticate(state, request.headers(), peer)?;
    let (parts, body) = request.into_parts();
    let bytes = read_limited(
        &parts.headers,
        body,
        state.config.body_limit_bytes,
        state.config.body_read_timeout,
    )
    .await?;
    Ok((caller, parts.headers, bytes))
}

fn model_not_allowed(model: &str, allowed: &[String]) -> ApiError {
    ApiError::new(
        403,
        ErrorType::PermissionError,
        "model_not_allowed",
        format!(
            "this gateway key may not use the model `{model}`; it is limited to: {}",
            allowed.join(", ")
        ),
    )
    .with_param("model")
}

/// The candidates for a name: a profile's members in order (with the profile's strategy), or every key of the
/// caller that serves the model.
pub(crate) fn named_routes(
    tenant: &Tenant,
    model: &str,
) -> Result<(Vec<Route>, Vec<u32>, Strategy), ApiError> {
    let resolved = resolve_routes(tenant, model)?;
    if resolved.0.is_empty() {
        if let Some(profile) = tenant.profiles.get(model) {
            return Err(ApiError::new(
                503,
                ErrorType::ServiceUnavailable,
                "no_provider_available",
                format!(
                    "none of the models of profile `{model}` ({}) is served by your provider keys",
                    profile
                        .members
                        .iter()
                        .map(|m| m.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(resolved)
}

/// The routes of a model or profile name for this tenant, in the profile's strategy. A profile whose models no key
/// serves has none (the routing preview shows that; a request gets `no_provider_available`).
pub(crate) fn resolve_routes(
    tenant: &Tenant,
    model: &str,
) -> Result<(Vec<Route>, Vec<u32>, Strategy), ApiError> {
    if let Some(allowed) = &tenant.allowed_models {
        if !allowed.iter().any(|a| a == model) {
            return Err(model_not_allowed(model, allowed));
        }
    }
    if let Some(profile) = tenant.profiles.get(model) {
        let (routes, priorities) = tenant.profile_routes(profile);
        let strategy = match profile.strategy {
            ProfileStrategy::Failover => Strategy::Failover,
            ProfileStrategy::RoundRobin => Strategy::RoundRobin {
                members: profile.members.len() as u32,
            },
            ProfileStrategy::LeastLatency => Strategy::LeastLatency,
        };
        return Ok((routes, priorities, strategy));
    }
    let routes = tenant
        .models
        .get(model)
        .cloned()
        .ok_or_else(|| model_not_found(model))?;
    let priorities = vec![0; routes.len()];
    Ok((routes, priorities, Strategy::Score))
}

/// Output tokens reserved against token limits when the request sets no `max_tokens`.
const DEFAULT_OUTPUT_RESERVE: u64 = 1024;

/// The chat candidates with their fit: the context window must hold the prompt and the requested output. For
/// `auto`, capabilities the request needs (tools, vision, JSON) are required too; for a named model they are the
/// caller's call (the catalog may lag behind the provider).
fn chat_route_set(
    tenant: &Tenant,
    view: &ChatRequestView<'_>,
    prompt_tokens: u64,
) -> Result<RouteSet, ApiError> {
    let auto = view.model == "auto";
    let (routes, priorities, strategy) = if auto {
        let all = tenant.chat_candidates();
        let capable: Vec<Route> = all
            .into_iter()
            .filter(|r| r.has_capabilities(view.needs))
            .collect();
        if capable.is_empty() {
            return Err(ApiError::invalid_request(
                "no_capable_model",
                format!(
                    "none of your models supports what this request needs ({}); add a key for a model that does, or name a model",
                    describe_needs(view.needs)
                ),
            )
            .with_param("model"));
        }
        let priorities = vec![0; capable.len()];
        (capable, priorities, Strategy::Score)
    } else {
        named_routes(tenant, &view.model)?
    };
    let fits: Vec<bool> = routes
        .iter()
        .map(|r| r.fits_context(prompt_tokens, view.max_tokens))
        .collect();
    if !fits.iter().any(|f| *f) {
        let smallest = routes
            .iter()
            .filter_map(|r| r.context_window)
            .max()
            .unwrap_or(0);
        return Err(ApiError::invalid_request(
            "context_length_exceeded",
            format!(
                "this request needs about {} tokens (prompt estimate {prompt_tokens} plus max_tokens {}), more than the largest context window available for `{}` ({smallest} tokens)",
                prompt_tokens + view.max_tokens.unwrap_or(0),
                view.max_tokens.unwrap_or(0),
                view.model
            ),
        )
        .with_param("messages"));
    }
    Ok(RouteSet {
        routes,
        fits,
        priorities,
        strategy,
        tokens: prompt_tokens + view.max_tokens.unwrap_or(DEFAULT_OUTPUT_RESERVE),
    })
}

fn describe_needs(needs: wire::Needs) -> String {
    let mut parts = Vec::new();
    if needs.tools {
        parts.push("tools");
    }
    if needs.vision {
        parts.push("image input");
    }
    if needs.json {
        parts.push("JSON output");
    }
    parts.join(", ")
}

fn request_meta(
    caller: Caller,
    headers: &HeaderMap,
    model: String,
    operation: Operation,
    input_estimate: u64,
) -> RequestMeta {
    RequestMeta {
        request_id: request_id(headers),
        requested_model: model,
        operation,
        input_estimate,
        tenant: caller.tenant,
        gateway_key_id: caller.gateway_key_id,
        gateway_key_prefix: caller.gateway_key_prefix,
        started: std::time::Instant::now(),
    }
}

async fn chat_completions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, GatewayError> {
    let (caller, headers, body) = authenticated_body(&state, peer, request).await?;
    serve_chat(state, caller, &headers, body).await
}

/// Chat for an authenticated caller (a gateway key, or the dashboard's playground session).
pub(crate) async fn serve_chat(
    state: AppState,
    caller: Caller,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let view = ChatRequestView::parse(&body)?;
    if let Some(e) = no_providers(&caller.tenant) {
        return Err(e.into());
    }
    let estimate = view.estimated_prompt_tokens();
    let set = chat_route_set(&caller.tenant, &view, estimate)?;
    let operation = Operation::Chat {
        stream: view.stream,
    };
    let meta = request_meta(
        caller,
        headers,
        view.model.into_owned(),
        operation,
        estimate,
    );
    Ok(relay::run(state, meta, body, set).await)
}

async fn embeddings(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, GatewayError> {
    let (caller, headers, body) = authenticated_body(&state, peer, request).await?;
    let view = EmbeddingsRequestView::parse(&body)?;
    if let Some(e) = no_providers(&caller.tenant) {
        return Err(e.into());
    }
    if view.model == "auto" {
        return Err(ApiError::invalid_request(
            "model_required",
            "embeddings need a named embedding model (vectors from different models are not comparable)",
        )
        .with_param("model")
        .into());
    }
    let (routes, priorities, strategy) = named_routes(&caller.tenant, &view.model)?;
    let estimate = view.estimated_tokens();
    let set = RouteSet {
        fits: vec![true; routes.len()],
        routes,
        priorities,
        strategy,
        tokens: estimate,
    };
    let meta = request_meta(
        caller,
        &headers,
        view.model.into_owned(),
        Operation::Embeddings,
        estimate,
    );
    Ok(relay::run(state, meta, body, set).await)
}

fn json_response(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn list_models(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let caller = authenticate(&state, &headers, peer)?;
    Ok(json_response(caller.tenant.models_body.clone()))
}

async fn get_model(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let caller = authenticate(&state, &headers, peer)?;
    let tenant = &caller.tenant;
    let owner = if id == "auto" {
        "freellmapi"
    } else if let Some(allowed) = tenant.allowed_models.as_ref().filter(|a| !a.contains(&id)) {
        return Err(model_not_allowed(&id, allowed).into());
    } else if tenant.profiles.contains_key(id.as_str()) {
        "freellmapi-profile"
    } else {
        match tenant
            .models
            .get(id.as_str())
            .and_then(|routes| routes.first())
        {
            Some(r) => tenant.keys[r.key].platform.id(),
            None => return Err(model_not_found(&id).into()),
        }
    };
    let body = serde_json::json!({ "id": id, "object": "model", "created": 0, "owned_by": owner });
    Ok(json_response(Bytes::from(body.to_string())))
}

async fn unknown_endpoint(request: Request) -> impl IntoResponse {
    let err = ApiError::new(
        404,
        ErrorType::InvalidRequestError,
        "unknown_endpoint",
        format!(
            "Unknown request URL: {} {}",
            request.method(),
            request.uri().path()
        ),
    );
    error_response(&err)
}
