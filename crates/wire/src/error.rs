//! OpenAI-style error bodies: `{"error":{"message","type","code","param"}}` with the HTTP status that goes with them.

use serde::Serialize;

/// The `type` field of an OpenAI error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ProviderError,
    ServiceUnavailable,
    StreamError,
}

/// An error as the client sees it. Built in one place per cause, rendered in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: ErrorType,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    /// Seconds the client should wait before retrying (sent as `Retry-After`).
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: ErrorType,
    code: &'a str,
    param: Option<&'a str>,
}

impl ApiError {
    pub fn new(
        status: u16,
        kind: ErrorType,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after_secs: None,
        }
    }

    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, ErrorType::InvalidRequestError, code, message)
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The JSON body, as bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let body = Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                code: self.code,
                param: self.param,
            },
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":{"message":"internal error","type":"server_error","code":"internal_error","param":null}}"#.to_vec())
    }

    /// The same body as an SSE `data:` event, for errors that happen after a stream has started.
    pub fn to_sse_event(&self) -> Vec<u8> {
        let mut out = b"data: ".to_vec();
        out.extend_from_slice(&self.to_json());
        out.extend_from_slice(b"\n\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_shape() {
        let e =
            ApiError::invalid_request("missing_field", "`model` is required").with_param("model");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "missing_field");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "`model` is required");
    }

    #[test]
    fn sse_event_is_terminated() {
        let e = ApiError::new(502, ErrorType::StreamError, "stream_stalled", "x");
        let ev = e.to_sse_event();
        assert!(ev.starts_with(b"data: {"));
        assert!(ev.ends_with(b"\n\n"));
    }
}
