//! `GET /v1/models` (the tenant's precomputed list body) and `GET /v1/models/{id}`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};

use super::auth::authenticate;
use super::candidates::{model_not_allowed, model_not_found};
use crate::error::GatewayError;
use crate::runtime::state::AppState;

fn json_response(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) async fn list_models(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let caller = authenticate(&state, &headers, peer)?;
    Ok(json_response(caller.tenant.models_body.clone()))
}

pub(crate) async fn get_model(
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
