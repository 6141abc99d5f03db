//! `POST /v1/responses` — the OpenAI Responses API (Codex CLI, the Agents SDK, `client.responses.create`). The
//! codec ([`surfaces::responses`]) turns the request into chat completions; the relay serves it with the same
//! failover, queue, limits and history as `/v1/chat/completions`; [`super::translate`] turns the answer back into a
//! `response` object or the Responses event stream. Stateless: `previous_response_id` is refused by the codec.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use bytes::Bytes;
use surfaces::responses::{self as codec, ResponsesStreamEncoder};

use super::auth::{authenticated_body, random_id};
use super::chat::plan_chat;
use super::refused::codec_error;
use super::translate::{take_apart, translated_stream, with_json_body, RelayAnswer};
use crate::error::error_response;
use crate::relay;
use crate::runtime::state::AppState;

fn refusal(status: u16, kind: &str, code: &str, message: &str, param: Option<&str>) -> Response {
    let body = codec::error_body(status, kind, code, message, param);
    let mut response = with_json_body(Response::new(axum::body::Body::empty()), body);
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}

pub(crate) async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (caller, headers, body) = match authenticated_body(&state, peer, request, "responses").await
    {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    let created_at = relay::unix_now();
    let response_id = random_id("resp_", 24);
    let (chat, ctx) = match codec::parse(&body, response_id, created_at) {
        Ok(x) => x,
        Err(e) => {
            caller.refused(&state, &headers, "responses", "", &codec_error(&e));
            return refusal(
                e.status,
                "invalid_request_error",
                e.code,
                &e.message,
                e.param.as_deref(),
            );
        }
    };
    if !ctx.dropped_tools.is_empty() {
        tracing::debug!(tools = ?ctx.dropped_tools, "responses: tools no upstream can run were dropped");
    }
    let plan = match plan_chat(&state, caller, &headers, &chat.body, "responses") {
        Ok(plan) => plan,
        Err(e) => return error_response(&e),
    };
    let answer = relay::run(state, plan.meta, Bytes::from(chat.body), plan.set).await;
    match take_apart(answer).await {
        RelayAnswer::Complete(head, completion) => {
            match codec::chat_to_responses_response(&completion, &ctx) {
                Ok(body) => with_json_body(head, body),
                Err(e) => refusal(502, "provider_error", "untranslatable_answer", &e, None),
            }
        }
        RelayAnswer::Stream(stream) => translated_stream(stream, ResponsesStreamEncoder::new(ctx)),
        RelayAnswer::Error(head, e) => {
            let status = head.status().as_u16();
            let body = codec::error_body(
                status,
                e.kind.as_deref().unwrap_or("server_error"),
                e.code.as_deref().unwrap_or("upstream_failed"),
                &e.message,
                e.param.as_deref(),
            );
            with_json_body(head, body)
        }
    }
}
