//! `POST /v1/chat/completions`: the gateway's own dialect and its internal request; the other surfaces turn their
//! requests into this and call [`serve_chat`] too.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use wire::{ApiError, ChatRequestView};

use super::auth::{authenticated_body, request_meta, Caller};
use super::candidates::{chat_route_set, no_providers};
use crate::error::GatewayError;
use crate::relay::{self, Operation, RequestMeta, RouteSet};
use crate::runtime::state::AppState;

pub(crate) async fn chat_completions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, GatewayError> {
    let (caller, headers, body) = authenticated_body(&state, peer, request, "chat").await?;
    serve_chat(state, caller, &headers, body).await
}

/// A chat request ready for the relay: who asked for what, and its candidates.
pub(crate) struct ChatPlan {
    pub meta: RequestMeta,
    pub set: RouteSet,
}

/// Parses the chat body once and finds its candidates; `endpoint` names the surface the client called. A request
/// refused here (unreadable body, unknown or not-allowed model, no provider) is recorded as refused.
pub(crate) fn plan_chat(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    body: &[u8],
    endpoint: &'static str,
) -> Result<ChatPlan, ApiError> {
    let view = match ChatRequestView::parse(body) {
        Ok(v) => v,
        Err(e) => {
            let e = ApiError::from(e);
            caller.refused(state, headers, endpoint, "", &e);
            return Err(e);
        }
    };
    let refuse = |e: ApiError| {
        caller.refused(state, headers, endpoint, &view.model, &e);
        e
    };
    if let Some(e) = no_providers(&caller.tenant) {
        return Err(refuse(e));
    }
    let estimate = view.estimated_prompt_tokens();
    let set = chat_route_set(&caller.tenant, &view, estimate).map_err(refuse)?;
    let operation = Operation::Chat {
        stream: view.stream,
    };
    let mut meta = request_meta(
        caller,
        headers,
        view.model.into_owned(),
        operation,
        estimate,
    );
    meta.endpoint = endpoint;
    Ok(ChatPlan { meta, set })
}

/// Chat for an authenticated caller (a gateway key, or the dashboard's playground session).
pub(crate) async fn serve_chat(
    state: AppState,
    caller: Caller,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let plan = plan_chat(&state, caller, headers, &body, "chat")?;
    Ok(relay::run(state, plan.meta, body, plan.set).await)
}
