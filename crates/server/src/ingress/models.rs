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
    let caller = authenticate(&state, &headers, peer, "models")?;
    if headers.contains_key("anthropic-version") {
        return Ok(json_response(anthropic_model_list(
            &caller.tenant.models_body,
        )));
    }
    Ok(json_response(caller.tenant.models_body.clone()))
}

/// The model list in Anthropic's shape (`GET /v1/models` with an `anthropic-version` header), built from the
/// prebuilt OpenAI list: the same ids, in the same order, on one page.
fn anthropic_model_list(openai_list: &[u8]) -> Bytes {
    let ids = model_ids(openai_list);
    let data: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z",
            })
        })
        .collect();
    let body = serde_json::json!({
        "data": data, "has_more": false, "first_id": ids.first(), "last_id": ids.last(),
    });
    Bytes::from(body.to_string())
}

/// The ids of a prebuilt OpenAI model list, in order (for the other surfaces' list shapes).
pub(crate) fn model_ids(openai_list: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        id: String,
    }
    serde_json::from_slice::<List>(openai_list)
        .map(|l| l.data.into_iter().map(|e| e.id).collect())
        .unwrap_or_default()
}

pub(crate) async fn get_model(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GatewayError> {
    let caller = authenticate(&state, &headers, peer, "models")?;
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
