//! `/v1` (and Gemini's `/v1beta`): the inference surfaces. Each handler authenticates from the snapshot ([`auth`]), reads the body once
//! ([`body`]), turns its request into the internal chat-completions request, finds the candidates ([`candidates`])
//! and hands over to [`crate::relay`] — the one attempt loop every surface shares.

pub mod auth;
pub mod body;
pub mod candidates;
pub mod chat;
pub mod embeddings;
pub mod gemini;
pub mod messages;
pub mod models;
pub mod refused;
pub mod responses;
pub mod translate;

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use wire::{ApiError, ErrorType};

use crate::error::error_response;
use crate::runtime::state::AppState;

pub use auth::{authenticate, Caller};
pub(crate) use candidates::resolve_routes;
pub(crate) use chat::serve_chat;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/responses", post(responses::create))
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/models", get(models::list_models))
        // google-genai 3 calls Gemini's methods under `/v1` (`POST /v1/models/{model}:generateContent`).
        .route(
            "/v1/models/{*id}",
            get(models::get_model).post(gemini::call),
        )
        .route("/v1/{*rest}", axum::routing::any(unknown_endpoint))
        .route("/v1beta/models", get(gemini::list_models))
        .route(
            "/v1beta/models/{target}",
            post(gemini::call).get(gemini::get_model),
        )
        .route("/v1beta/{*rest}", axum::routing::any(unknown_endpoint))
}

/// The inference endpoints served straight from the listener (see [`crate::guard::listener::Lane`]): a `POST` to
/// one of them without an `Origin` header goes to its handler directly. Everything else — browser requests, which
/// need the CORS answer of [`crate::guard::inbound::protect`], other methods, other paths — goes through the router,
/// and the answers are the same either way: these handlers answer every error in JSON themselves, so
/// [`crate::error::uniform_errors`] has nothing to rewrite, and `Vary: origin` is added here as `protect` does.
// The request is handed back by value when the lane does not take it: boxing it would cost the router's path an
// allocation per request.
#[allow(clippy::result_large_err)]
pub fn lane(state: AppState) -> crate::guard::listener::Lane {
    use axum::extract::{ConnectInfo, State};
    std::sync::Arc::new(move |request: Request, client| {
        if request.method() != http::Method::POST
            || request.headers().contains_key(http::header::ORIGIN)
        {
            return Err(request);
        }
        let state = state.clone();
        Ok(match request.uri().path() {
            "/v1/chat/completions" => varied(async move {
                chat::chat_completions(State(state), ConnectInfo(client), request)
                    .await
                    .into_response()
            }),
            "/v1/responses" => varied(responses::create(
                State(state),
                ConnectInfo(client),
                request,
            )),
            "/v1/messages" => varied(messages::create(State(state), ConnectInfo(client), request)),
            "/v1/embeddings" => varied(async move {
                embeddings::embeddings(State(state), ConnectInfo(client), request)
                    .await
                    .into_response()
            }),
            _ => return Err(request),
        })
    })
}

/// A lane's answer with the `Vary: origin` that [`crate::guard::inbound::protect`] gives every `/v1` answer.
fn varied(
    answer: impl std::future::Future<Output = axum::response::Response> + Send + 'static,
) -> crate::guard::listener::BoxFuture<axum::response::Response> {
    Box::pin(async move {
        let mut response = answer.await;
        response
            .headers_mut()
            .append(http::header::VARY, http::HeaderValue::from_static("origin"));
        response
    })
}

async fn unknown_endpoint(request: Request) -> impl IntoResponse {
    // Logged so an operator sees what a client wanted (a surface or path the gateway does not serve).
    tracing::info!(
        target: "freellmapi::refused",
        method = %request.method(),
        path = request.uri().path(),
        status = 404,
        "unknown /v1 endpoint"
    );
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
