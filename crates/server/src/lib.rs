//! The gateway's HTTP application: `/v1` (OpenAI-compatible inference), `/api` (dashboard and admin REST) and the
//! background tasks that serve them (request-log writer, retention). Routing decisions come from `router`, upstream
//! wire details from `providers`, persistence from `store`.
//!
//! Request path for `/v1/chat/completions`, in order (see ARCHITECTURE.md):
//! 1. `openai::authenticate` — client-address rate limit, then the gateway key (SHA-256) looked up in the in-memory
//!    [`snapshot::Snapshot`]; no database query.
//! 2. `body::read_limited` — the body as one `Bytes`, refused over the configured limit.
//! 3. `wire::ChatRequestView::parse` — borrowed `model`/`stream`/`messages`/`max_tokens`; the rest stays raw.
//! 4. `relay::run_chat` — candidates for the model, ordered by `router`, tried until one answers; streams are
//!    watched until their first real delta before anything is sent to the client (the commit point).
//! 5. `request_log` — one row per request through a bounded channel to the batch writer.

pub mod admin;
pub mod body;
pub mod config;
pub mod error;
pub mod ip_limit;
pub mod openai;
pub mod relay;
pub mod request_log;
pub mod snapshot;
pub mod state;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use state::AppState;

/// Builds the application router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", axum::routing::get(landing_page))
        .merge(openai::routes())
        .merge(admin::routes())
        .fallback(not_found)
        .with_state(state)
}

/// A plain status page at `/` until the dashboard is embedded.
async fn landing_page() -> axum::response::Html<&'static str> {
    axum::response::Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>FreeLLMAPI</title>",
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}",
        "code{background:#8882;padding:0 .3em;border-radius:4px}",
        "@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}}</style></head><body>",
        "<h1>FreeLLMAPI is running</h1><p>Version ",
        env!("CARGO_PKG_VERSION"),
        ". The OpenAI-compatible API is at <code>/v1</code> (for example <code>GET /v1/models</code> with ",
        "<code>Authorization: Bearer freellmapi-…</code>).</p><p>This build has no dashboard yet: add provider ",
        "keys and mint gateway keys through the admin API (<code>/api/auth/login</code>, <code>/api/keys</code>, ",
        "<code>/api/gateway-keys</code>) or the configuration file, as described in ",
        "<code>docs/configuration.md</code>.</p><p>Health: <a href=\"/api/ping\"><code>/api/ping</code></a></p>",
        "</body></html>"
    ))
}

/// Anything outside `/`, `/v1` and `/api`: a 404 in the same error shape as the rest.
async fn not_found(uri: http::Uri) -> axum::response::Response {
    error::error_response(&wire::ApiError::new(
        404,
        wire::ErrorType::NotFoundError,
        "not_found",
        format!("nothing at {}", uri.path()),
    ))
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests and flushes request logs.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Without TCP_NODELAY small SSE frames wait for delayed ACKs (tens of ms per stream).
        let _ = tcp.set_nodelay(true);
    });
    let app = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    state.shutdown().await;
    result
}
