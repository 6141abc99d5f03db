//! The Gemini API surface (Gemini CLI with `GOOGLE_GEMINI_BASE_URL`, the Google Gen AI SDKs):
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent` (`?alt=sse` for server-sent events, else
//! a streamed JSON array) and `:countTokens`; `GET /v1beta/models` and `/v1beta/models/{model}`. The gateway key
//! comes as `x-goog-api-key`, `?key=`, or `Authorization: Bearer`. Gemini model names the caller has no key or
//! profile for are mapped per user: the profile `gemini-<family>` (`gemini-pro`, `gemini-flash`,
//! `gemini-flash-lite`), else `gemini`, else `auto`. Every error, the gateway's own included, is in Google's shape.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use surfaces::gemini::{self as codec, GeminiStreamEncoder};
use wire::ApiError;

use super::auth::{authenticate, authenticated_body, random_id, Caller};
use super::candidates::vendor_target;
use super::chat::plan_chat;
use super::models::model_ids;
use super::refused::codec_error;
use super::translate::{take_apart, translated_stream, with_json_body, RelayAnswer};
use crate::relay;
use crate::runtime::state::AppState;

/// An error in Google's shape, with `Retry-After` when the gateway gave one.
fn google_error(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let mut response = with_json_body(
        Response::new(axum::body::Body::empty()),
        codec::error_body(status, message),
    );
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn from_api_error(e: &ApiError) -> Response {
    google_error(e.status, &e.message, e.retry_after_secs)
}

/// A query parameter's value (first occurrence), not percent-decoded: keys and `alt` values need none.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `?key=` as the gateway key when no header carries one. The URL (and so the key) is never logged.
fn key_from_query(headers: &mut HeaderMap, query: Option<&str>) {
    let has_header = headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key("x-api-key")
        || headers.contains_key("x-goog-api-key");
    if has_header {
        return;
    }
    if let Some(v) = query_param(query, "key").and_then(|k| HeaderValue::from_str(k).ok()) {
        headers.insert("x-goog-api-key", v);
    }
}

enum Method {
    Generate,
    Stream,
    CountTokens,
}

/// `gemini-2.5-pro:streamGenerateContent` → the model and the method.
/// Errors are 404s: the message.
fn split_target(target: &str) -> Result<(&str, Method), String> {
    let target = target.strip_prefix("models/").unwrap_or(target);
    let Some((model, method)) = target.rsplit_once(':') else {
        return Err(format!(
            "unknown method: `models/{target}` names no method (`:generateContent`, …)"
        ));
    };
    let method = match method {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream,
        "countTokens" => Method::CountTokens,
        other => {
            return Err(format!(
                "method `{other}` is not served here (generateContent, streamGenerateContent, countTokens)"
            ))
        }
    };
    Ok((model, method))
}

/// `POST /v1beta/models/{model}:{method}`.
pub(crate) async fn call(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(target): Path<String>,
    mut request: Request,
) -> Response {
    let (model, method) = match split_target(&target) {
        Ok(x) => x,
        Err(message) => return google_error(404, &message, None),
    };
    let query = request.uri().query().map(str::to_owned);
    key_from_query(request.headers_mut(), query.as_deref());
    let (caller, headers, body) = match authenticated_body(&state, peer, request, "gemini").await {
        Ok(x) => x,
        Err(e) => return from_api_error(&e),
    };
    let stream = match method {
        Method::Generate => false,
        Method::Stream => true,
        Method::CountTokens => return count_tokens(&body, model),
    };
    let sse = query_param(query.as_deref(), "alt") == Some("sse");
    generate(state, caller, headers, body, model, stream, sse).await
}

fn count_tokens(body: &[u8], model: &str) -> Response {
    match codec::count_tokens(body, model) {
        Ok(n) => with_json_body(
            Response::new(axum::body::Body::empty()),
            format!("{{\"totalTokens\":{n}}}").into_bytes(),
        ),
        Err(e) => google_error(e.status, &request_error_message(&e), None),
    }
}

fn request_error_message(e: &surfaces::RequestError) -> String {
    match &e.param {
        Some(p) => format!("{p}: {}", e.message),
        None => e.message.clone(),
    }
}

async fn generate(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
    model: &str,
    stream: bool,
    sse: bool,
) -> Response {
    let response_id = random_id("", 24);
    let (chat, ctx) = match codec::parse(&body, model, stream, response_id) {
        Ok(x) => x,
        Err(e) => {
            caller.refused(&state, &headers, "gemini", model, &codec_error(&e));
            return google_error(e.status, &request_error_message(&e), None);
        }
    };
    if !ctx.dropped_tools.is_empty() || ctx.dropped_parts > 0 {
        tracing::debug!(tools = ?ctx.dropped_tools, parts = ctx.dropped_parts, "gemini: tools or parts no upstream can use were dropped");
    }
    let mut chat_body = Bytes::from(chat.body);
    let family = codec::gemini_family(model);
    let mapped = vendor_target(&caller.tenant, model, "gemini", family);
    if let Some(target) = &mapped {
        chat_body = match relay::with_model(&chat_body, target) {
            Ok(b) => b,
            Err(_) => return google_error(400, "request body is not a JSON object", None),
        };
    }
    let mut plan = match plan_chat(&state, caller, &headers, &chat_body, "gemini") {
        Ok(plan) => plan,
        Err(e) => return from_api_error(&e),
    };
    if mapped.is_some() {
        plan.meta.client_model = Some(model.to_owned());
    }
    let input_estimate = plan.meta.input_estimate;
    let answer = relay::run(state, plan.meta, chat_body, plan.set).await;
    match take_apart(answer).await {
        RelayAnswer::Complete(head, completion) => {
            match codec::chat_to_gemini_response(&completion, &ctx) {
                Ok(body) => with_json_body(head, body),
                Err(e) => google_error(502, &e, None),
            }
        }
        RelayAnswer::Stream(stream) => {
            let encoder = GeminiStreamEncoder::new(ctx, input_estimate, sse);
            let content_type = encoder.content_type();
            let mut response = translated_stream(stream, encoder);
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        RelayAnswer::Error(head, e) => {
            let status = head.status().as_u16();
            with_json_body(head, codec::error_body(status, &e.message))
        }
    }
}

/// One model in Google's list shape.
fn model_entry(id: &str) -> serde_json::Value {
    serde_json::json!({
        "name": format!("models/{id}"),
        "version": "001",
        "displayName": id,
        "description": "",
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

fn authenticated_caller(
    state: &AppState,
    headers: &mut HeaderMap,
    query: Option<&str>,
    peer: SocketAddr,
) -> Result<Caller, ApiError> {
    key_from_query(headers, query);
    authenticate(state, headers, peer, "gemini")
}

/// `GET /v1beta/models`: the caller's models (the same list as `/v1/models`), on one page.
pub(crate) async fn list_models(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let caller = match authenticated_caller(&state, &mut parts.headers, parts.uri.query(), peer) {
        Ok(c) => c,
        Err(e) => return from_api_error(&e),
    };
    let models: Vec<serde_json::Value> = model_ids(&caller.tenant.models_body)
        .iter()
        .map(|id| model_entry(id))
        .collect();
    with_json_body(
        Response::new(axum::body::Body::empty()),
        serde_json::json!({ "models": models })
            .to_string()
            .into_bytes(),
    )
}

/// `GET /v1beta/models/{model}`: a model the caller can reach (Gemini names the caller has nothing for are reached
/// through their mapping, so they are found too).
pub(crate) async fn get_model(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let caller = match authenticated_caller(&state, &mut parts.headers, parts.uri.query(), peer) {
        Ok(c) => c,
        Err(e) => return from_api_error(&e),
    };
    let id = id.strip_prefix("models/").unwrap_or(&id);
    let known = id == "auto"
        || codec::gemini_family(id).is_some()
        || caller.tenant.routes_of(id).is_some()
        || caller.tenant.profiles.contains_key(id);
    if !known {
        return google_error(404, &format!("model `{id}` is not available"), None);
    }
    with_json_body(
        Response::new(axum::body::Body::empty()),
        model_entry(id).to_string().into_bytes(),
    )
}
