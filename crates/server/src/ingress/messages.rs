//! `POST /v1/messages` and `POST /v1/messages/count_tokens` — the Anthropic Messages API (Claude Code, the Anthropic
//! SDKs). Gateway keys come as `x-api-key` or `Authorization: Bearer`; `anthropic-version`/`anthropic-beta` are
//! accepted and ignored. Claude model names the caller has no key or profile for are mapped per user: to the
//! profile `claude-<family>` (`claude-opus`, `claude-sonnet`, `claude-haiku`) if it exists, else the profile
//! `claude`, else `auto`. Every error, the gateway's own included, is in Anthropic's shape.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use surfaces::messages::{self as codec, MessagesStreamEncoder};
use wire::ApiError;

use super::auth::{authenticated_body, random_id, Caller};
use super::candidates::vendor_target;
use super::chat::plan_chat;
use super::refused::codec_error;
use super::translate::{take_apart, translated_stream, with_json_body, RelayAnswer};
use crate::relay;
use crate::runtime::state::AppState;

/// An error in Anthropic's shape, with `Retry-After` when the gateway gave one.
fn anthropic_error(status: u16, body: Vec<u8>, retry_after: Option<u64>) -> Response {
    let mut response = with_json_body(Response::new(axum::body::Body::empty()), body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn from_api_error(e: &ApiError) -> Response {
    anthropic_error(
        e.status,
        codec::error_body(e.status, &e.message),
        e.retry_after_secs,
    )
}

async fn read(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
) -> Result<(Caller, http::HeaderMap, Bytes), Response> {
    authenticated_body(state, peer, request, "messages")
        .await
        .map_err(|e| from_api_error(&e))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (caller, headers, body) = match read(&state, peer, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let message_id = random_id("msg_", 24);
    let (chat, ctx) = match codec::parse(&body, message_id) {
        Ok(x) => x,
        Err(e) => {
            caller.refused(&state, &headers, "messages", "", &codec_error(&e));
            return anthropic_error(e.status, codec::request_error_body(&e), None);
        }
    };
    if !ctx.dropped_tools.is_empty() || ctx.dropped_blocks > 0 {
        tracing::debug!(tools = ?ctx.dropped_tools, blocks = ctx.dropped_blocks, "messages: server tools or blocks no upstream can use were dropped");
    }
    let mut chat_body = Bytes::from(chat.body);
    let family = codec::claude_family(&chat.model);
    let mapped = vendor_target(&caller.tenant, &chat.model, "claude", family);
    if let Some(target) = &mapped {
        chat_body = match relay::with_model(&chat_body, target) {
            Ok(b) => b,
            Err(_) => {
                return anthropic_error(
                    400,
                    codec::error_body(400, "request body is not a JSON object"),
                    None,
                )
            }
        };
    }
    let mut plan = match plan_chat(&state, caller, &headers, &chat_body, "messages") {
        Ok(plan) => plan,
        Err(e) => return from_api_error(&e),
    };
    if mapped.is_some() {
        plan.meta.client_model = Some(chat.model.clone());
    }
    let input_estimate = plan.meta.input_estimate;
    let answer = relay::run(state, plan.meta, chat_body, plan.set).await;
    match take_apart(answer).await {
        RelayAnswer::Complete(head, completion) => {
            match codec::chat_to_messages_response(&completion, &ctx) {
                Ok(body) => with_json_body(head, body),
                Err(e) => anthropic_error(502, codec::error_body(502, &e), None),
            }
        }
        RelayAnswer::Stream(stream) => {
            translated_stream(stream, MessagesStreamEncoder::new(ctx, input_estimate))
        }
        RelayAnswer::Error(head, e) => {
            let status = head.status().as_u16();
            with_json_body(head, codec::error_body(status, &e.message))
        }
    }
}

pub(crate) async fn count_tokens(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (_, _, body) = match read(&state, peer, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    match codec::count_tokens(&body) {
        Ok(n) => with_json_body(
            Response::new(axum::body::Body::empty()),
            serde_json::json!({ "input_tokens": n })
                .to_string()
                .into_bytes(),
        ),
        Err(e) => anthropic_error(e.status, codec::request_error_body(&e), None),
    }
}
