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
