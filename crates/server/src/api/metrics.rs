//! `GET /metrics`: the Prometheus scrape, served only when `METRICS_TOKEN` is set and only to
//! `Authorization: Bearer <that token>` (a 404 otherwise, so an unconfigured gateway shows no such route).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use wire::{ApiError, ErrorType};

use crate::error::error_response;
use crate::ingress::auth::bearer;
use crate::runtime::metrics::Gauges;
use crate::runtime::snapshot::hash_token;
use crate::runtime::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.config.metrics_token_hash else {
        return error_response(&ApiError::new(
            404,
            ErrorType::InvalidRequestError,
            "not_found",
            "metrics are off: set METRICS_TOKEN to serve them",
        ));
    };
    // Compared as hashes: the comparison's time says nothing about the token.
    let allowed = bearer(&headers).is_some_and(|t| hash_token(t) == expected);
    if !allowed {
        let mut response = error_response(&ApiError::new(
            401,
            ErrorType::AuthenticationError,
            "invalid_metrics_token",
            "send `Authorization: Bearer <METRICS_TOKEN>`",
        ));
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return response;
    }
    let (cooling, invalid) = state.books.cooldowns.counts(tokio::time::Instant::now());
    let snapshot = state.snapshot.load();
    let pool = state.proxies.view();
    let probed = pool.probed();
    let gauges = Gauges {
        in_flight: state.events.in_flight_count(),
        queue_depth: state.queue.depth(),
        cooling_candidates: cooling,
        invalid_keys: invalid,
        provider_keys: snapshot.tenants.values().map(|t| t.keys.len()).sum(),
        history_written: state.logs.written(),
        history_dropped: state
            .logs
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        history_lost: state.logs.lost(),
        history_held: state.logs.held(),
        proxies: probed.len(),
        proxies_healthy: probed.iter().filter(|p| p.health.is_healthy()).count(),
        fleet: state.fleet.as_ref().map(|f| {
            let h = f.health();
            (
                h.up,
                h.instances,
                f.dropped_notices.load(std::sync::atomic::Ordering::Relaxed),
            )
        }),
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(gauges),
    )
        .into_response()
}
