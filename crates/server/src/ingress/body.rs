//! Reading a request body into one `Bytes`, bounded.

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use wire::{ApiError, ErrorType};

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        ErrorType::InvalidRequestError,
        "request_too_large",
        format!("request body exceeds the limit of {} bytes", limit),
    )
}

/// Reads the whole body, refusing it (413) past `limit` bytes, early when `Content-Length` already says so, and
/// (408) when it has not fully arrived within `timeout`.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let collected = match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(result) => result,
        Err(_) => {
            return Err(ApiError::new(
                408,
                ErrorType::InvalidRequestError,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(_) => Err(ApiError::invalid_request(
            "body_read_failed",
            "the request body could not be read",
        )),
    }
}
