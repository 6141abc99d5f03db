//! The one place where gateway errors become HTTP responses in OpenAI's error shape.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use wire::{ApiError, ErrorType};

/// Wrapper so `wire::ApiError` can be returned from handlers.
#[derive(Debug)]
pub struct GatewayError(pub ApiError);

impl From<ApiError> for GatewayError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<store::StoreError> for GatewayError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Conflict(msg) => Self(ApiError::new(
                409,
                ErrorType::InvalidRequestError,
                "conflict",
                msg,
            )),
            store::StoreError::Password(p) => {
                Self(ApiError::invalid_request("invalid_password", p.to_string()))
            }
            other if other.is_unavailable() => {
                tracing::warn!(error = %other, "the database is unavailable");
                Self(ApiError::new(
                    503,
                    ErrorType::ServiceUnavailable,
                    "database_unavailable",
                    "the database is unavailable right now (requests to /v1 are still served); try again shortly",
                ))
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self(internal("the database could not complete the operation"))
            }
        }
    }
}

pub fn internal(message: &str) -> ApiError {
    ApiError::new(500, ErrorType::ServerError, "internal_error", message)
}

pub fn not_found(what: &str) -> ApiError {
    ApiError::new(
        404,
        ErrorType::NotFoundError,
        "not_found",
        format!("{what} not found"),
    )
}

pub fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Bytes::from(e.to_json())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = e.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

impl From<wire::RequestFieldError> for GatewayError {
    fn from(e: wire::RequestFieldError) -> Self {
        Self(e.into())
    }
}

/// Gives the framework's own refusals the API's error shape: a wrong method (405, empty body), a body or path the
/// extractors refused (plain text), a `/ws` request that is no WebSocket upgrade. Handlers' errors are JSON already
/// and pass untouched, as does every success. `/v1beta` answers in Google's shape, like the rest of that surface.
pub async fn uniform_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let under = |path: &str, prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let path = request.uri().path();
    let surface = if under(path, "/v1beta") {
        Surface::Google
    } else if under(path, "/v1") || under(path, "/api") || under(path, "/ws") {
        Surface::OpenAi
    } else {
        return next.run(request).await;
    };
    // Cheap clones (a reference count, a small enum): kept only to name them in a message.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let path = uri.path();
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // The framework's messages are one line; anything longer is not one of them and is cut.
    let text =
        match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, 1024)).await {
            Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
                .trim()
                .to_owned(),
            Err(_) => String::new(),
        };
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "request_too_large",
            "the request body is larger than this endpoint accepts".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as application/json".to_owned(),
        ),
        _ if under(path, "/ws") => (
            "websocket_upgrade_required",
            "/ws is a WebSocket: connect with an Upgrade: websocket request".to_owned(),
        ),
        _ if text.is_empty() => ("invalid_request", status.to_string()),
        _ => ("invalid_request", text),
    };
    let mut shaped = match surface {
        Surface::OpenAi => {
            let kind = if status.is_server_error() {
                ErrorType::ServerError
            } else {
                ErrorType::InvalidRequestError
            };
            error_response(&ApiError::new(status.as_u16(), kind, code, message))
        }
        Surface::Google => {
            let mut r = Response::new(axum::body::Body::from(surfaces::gemini::error_body(
                status.as_u16(),
                &message,
            )));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    };
    *shaped.status_mut() = status;
    // Keep what the framework said besides the body (`Allow` on a 405, say).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name, value.clone());
        }
    }
    shaped
}

#[derive(Clone, Copy)]
enum Surface {
    OpenAi,
    Google,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_a_503_and_a_refused_write_a_500() {
        let down = GatewayError::from(store::StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!((down.0.status, down.0.code), (503, "database_unavailable"));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let down = GatewayError::from(store::StoreError::Database(sqlx::Error::Io(io)));
        assert_eq!(down.0.status, 503);
        let other = GatewayError::from(store::StoreError::Database(sqlx::Error::RowNotFound));
        assert_eq!(other.0.status, 500);
    }
}
