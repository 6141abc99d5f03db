//! Requests the gateway refuses itself — a gateway key over its limits or disabled, an unknown or not-allowed
//! model, a body no surface can read — are recorded like served ones once the caller is known: a history row with
//! status `refused` (the reason code in `error_class`, the gateway key, no upstream attempt), the log line and the
//! live `request.finished` event, so a misconfigured client shows up in Live, history and analytics instead of
//! nowhere. Refusals before the caller is known (no or an unknown key, the client-address limit) are logged only.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use store::RequestLog;
use wire::ApiError;

use super::auth::request_id;
use crate::runtime::events::Finished;
use crate::runtime::snapshot::Tenant;
use crate::runtime::state::AppState;

/// Who a refused request came from.
pub(crate) struct Refused<'a> {
    pub tenant: &'a Tenant,
    pub gateway_key_id: &'a Arc<str>,
    pub gateway_key_prefix: &'a str,
}

impl Refused<'_> {
    /// Records `e` as the answer to a request for `requested_model` (empty when the body was not read) on
    /// `endpoint`.
    pub(crate) fn record(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        endpoint: &'static str,
        requested_model: &str,
        e: &ApiError,
    ) {
        let id = request_id(headers);
        tracing::info!(
            target: "freellmapi::refused",
            req_id = &*id,
            user = &*self.tenant.username,
            key = self.gateway_key_prefix,
            endpoint,
            requested_model,
            http_status = e.status,
            reason = e.code,
            "request refused"
        );
        state
            .metrics
            .request(crate::runtime::metrics::RequestSample {
                surface: endpoint,
                status: "refused",
                reason: e.code,
                duration: std::time::Duration::ZERO,
                ttfb: None,
                input_tokens: 0,
                output_tokens: 0,
            });
        state.events.finished(
            &self.tenant.user_id,
            &id,
            Finished {
                status: "refused",
                provider: None,
                model: None,
                latency_ms: 0,
                input_tokens: 0,
                output_tokens: 0,
                attempts: 0,
                error_code: Some(e.code),
            },
        );
        state.logs.send(RequestLog {
            id,
            user_id: Arc::clone(&self.tenant.user_id),
            gateway_key_id: Some(Arc::clone(self.gateway_key_id)),
            endpoint,
            requested_model: requested_model.to_owned(),
            platform: None,
            model: None,
            provider_key_id: None,
            status: "refused",
            http_status: e.status,
            error_class: Some(e.code),
            error_message: Some(e.message.clone()),
            stream: false,
            attempts: 0,
            input_tokens: None,
            output_tokens: None,
            latency_ms: 0,
            ttfb_ms: None,
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            failed_attempts: Vec::new(),
        });
    }
}

/// A codec's refusal as the gateway's error, for the record (the field it names leads the message).
pub(crate) fn codec_error(e: &surfaces::RequestError) -> ApiError {
    let message = match &e.param {
        Some(p) => format!("{p}: {}", e.message),
        None => e.message.clone(),
    };
    ApiError::new(
        e.status,
        wire::ErrorType::InvalidRequestError,
        e.code,
        message,
    )
}
