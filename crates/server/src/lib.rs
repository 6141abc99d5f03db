//! The gateway's HTTP application: `/v1` (OpenAI-compatible inference), `/api` (dashboard and admin REST) and the
//! background tasks that serve them (request-log writer, retention). Routing decisions come from `router`, upstream
//! wire details from `providers`, persistence from `store`.
//!
//! Request path for every `/v1` surface, in order (see ARCHITECTURE.md):
//! 0. `guard::listener` — the connection is admitted under the caps; its head must arrive in time.
//! 1. `ingress::auth::authenticate` — client-address rate limit, then the gateway key (SHA-256) looked up in the
//!    in-memory [`runtime::snapshot::Snapshot`]; no database query.
//! 2. `ingress::body::read_limited` — the body as one `Bytes`, refused over the size limit or the read deadline.
//! 3. the surface's codec — chat completions are the internal request (`wire::ChatRequestView::parse` borrows
//!    `model`/`stream`/`messages`/`max_tokens`; the rest stays raw); Responses and Messages are turned into it.
//! 4. `ingress::candidates` — the routes of the model or profile, with their fit.
//! 5. `relay::run` — candidates ordered by `router`, tried until one answers; streams are watched until their first
//!    real delta before anything is sent to the client (the commit point).
//! 6. `runtime::request_log` — one row per request through a bounded channel to the history writer.

pub mod api;
pub mod config;
pub mod error;
pub mod guard;
pub mod ingress;
pub mod proxy;
pub mod relay;
pub mod runtime;
pub mod trust;
pub mod upstream;

use axum::Router;
use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use runtime::state::AppState;

/// Builds the application router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(ingress::routes())
        .merge(api::dashboard::routes())
        .merge(api::profiles::routes())
        .merge(api::users::routes())
        .merge(api::transfer::routes())
        .merge(api::openapi::routes())
        .merge(api::metrics::routes())
        .merge(api::session::routes())
        .merge(api::keys::routes())
        .merge(api::key_check::routes())
        .merge(api::gateway_keys::routes())
        .merge(api::settings::routes())
        .merge(proxy::admin::routes())
        .fallback(dashboard)
        .layer(axum::middleware::from_fn(error::uniform_errors))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(guard::inbound::Inbound {
                origins: state.config.dashboard_origins.clone(),
                api_timeout: state.config.api_timeout,
                hosts: state.config.allowed_hosts.clone(),
            }),
            guard::inbound::protect,
        ))
        .with_state(state)
}

/// The dashboard: embedded files by path, and `index.html` for every other GET outside `/v1`, `/api` and `/ws`
/// (client-side routes). Anything else is a 404 in the same error shape as the rest of the API.
async fn dashboard(
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    let is_api = ["/v1", "/api", "/ws"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if is_api || !(method == http::Method::GET || method == http::Method::HEAD) {
        return error::error_response(&wire::ApiError::new(
            404,
            wire::ErrorType::NotFoundError,
            "not_found",
            format!("nothing at {path}"),
        ));
    }
    let asset = match web_assets::get(path) {
        Some(asset) => asset,
        // A missing hashed file is a stale page asking for an old build: 404, not the HTML shell.
        None if path.starts_with("/assets/") => {
            return (http::StatusCode::NOT_FOUND, "not found").into_response()
        }
        None => web_assets::index(),
    };
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let accepts_gzip = headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            // `gzip;q=0` refuses it.
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        });
    let (body, encoding) = match asset.gzip {
        Some(gz) if accepts_gzip => (gz, Some("gzip")),
        _ => (asset.bytes, None),
    };
    let mut response = (
        [
            (http::header::CONTENT_TYPE, asset.content_type),
            (http::header::CACHE_CONTROL, cache),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (http::header::X_FRAME_OPTIONS, "DENY"),
            (http::header::REFERRER_POLICY, "same-origin"),
            (
                http::header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
            ),
        ],
        body,
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(
        http::header::VARY,
        http::HeaderValue::from_static("accept-encoding"),
    );
    if let Some(e) = encoding {
        h.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static(e),
        );
    }
    response
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests (up to the drain deadline)
/// and flushes request logs.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.connections;
    if let Some(every) = state.config.model_refresh {
        api::key_check::spawn_model_refresh(&state, every);
    }
    let trusted = state.config.trusted_proxies.clone();
    let result = guard::listener::run(
        listener,
        app(state.clone()),
        Some(ingress::lane(state.clone())),
        limits,
        trusted,
        shutdown,
    )
    .await;
    state.shutdown().await;
    result
}
