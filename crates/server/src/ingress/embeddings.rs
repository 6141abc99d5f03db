//! `POST /v1/embeddings`: a named embedding model only (vectors of different models are not comparable).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use wire::{ApiError, EmbeddingsRequestView};

use super::auth::{authenticated_body, request_meta};
use super::candidates::{named_routes, no_providers};
use crate::error::GatewayError;
use crate::relay::{self, Operation, RouteSet};
use crate::runtime::state::AppState;

pub(crate) async fn embeddings(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, GatewayError> {
    let (caller, headers, body) = authenticated_body(&state, peer, request, "embeddings").await?;
    let view = match EmbeddingsRequestView::parse(&body) {
        Ok(v) => v,
        Err(e) => {
            let e = ApiError::from(e);
            caller.refused(&state, &headers, "embeddings", "", &e);
            return Err(e.into());
        }
    };
    let refuse = |e: ApiError| -> GatewayError {
        caller.refused(&state, &headers, "embeddings", &view.model, &e);
        e.into()
    };
    if let Some(e) = no_providers(&caller.tenant) {
        return Err(refuse(e));
    }
    if view.model == "auto" {
        return Err(refuse(
            ApiError::invalid_request(
                "model_required",
                "embeddings need a named embedding model (vectors from different models are not comparable)",
            )
            .with_param("model"),
        ));
    }
    let (routes, priorities, strategy) =
        named_routes(&caller.tenant, &view.model).map_err(refuse)?;
    let estimate = view.estimated_tokens();
    let set = RouteSet {
        fits: vec![true; routes.len()],
        routes,
        priorities,
        strategy,
        ask: router::TokenAsk::exact(estimate),
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
