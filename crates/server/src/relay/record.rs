//! The one record of a request: history row, log line, live `finished` event, gateway-key tokens and the
//! reconciliation of a stream's limit permit — written exactly once, on completion or (through `Drop`) as `canceled`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store::RequestLog;
use wire::{ApiError, Usage};

use crate::runtime::events::Finished;
use crate::runtime::snapshot::ProviderKeyEntry;
use crate::runtime::state::AppState;

use super::*;

/// Records the request exactly once: explicitly on completion, or as `canceled` if the client goes away first.
pub(super) struct RequestGuard {
    pub(super) state: AppState,
    pub(super) meta: RequestMeta,
    pub(super) attempts: u32,
    pub(super) served: Option<(Arc<ProviderKeyEntry>, Arc<str>)>,
    /// The proxy that carried the answer (`None`: direct).
    pub(super) proxy: Option<Arc<str>>,
    pub(super) recorded: bool,
    /// The attempts that failed before the one that answered (or all of them).
    pub(super) failed: Vec<store::FailedAttempt>,
    /// The limit permit of a stream being relayed, reconciled with the reported usage when it ends.
    pub(super) permit: Option<crate::runtime::fleet::Lease>,
}

pub(super) struct Completion {
    pub(super) status: &'static str,
    pub(super) http_status: u16,
    pub(super) error: Option<(&'static str, String)>,
    pub(super) usage: Option<Usage>,
    pub(super) output_estimate: Option<u64>,
    pub(super) ttfb: Option<Duration>,
}

impl RequestGuard {
    pub(super) fn record(&mut self, c: Completion) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let meta = &self.meta;
        let latency = meta.started.elapsed();
        let (platform, model, key_id) = match &self.served {
            Some((key, model)) => (
                Some(key.platform.id()),
                Some(Arc::clone(model)),
                Some(Arc::clone(&key.id)),
            ),
            None => (None, None, None),
        };
        let input_tokens = c
            .usage
            .map(|u| u.prompt_tokens)
            .or((c.status == "success").then_some(meta.input_estimate));
        let output_tokens = c.usage.map(|u| u.completion_tokens).or(c.output_estimate);
        let tokens = input_tokens.unwrap_or(0) + output_tokens.unwrap_or(0);
        self.state
            .gateway_usage
            .add_tokens(&meta.gateway_key_id, tokens);
        self.state
            .count_gateway_tokens(&meta.gateway_key_id, tokens);
        let books = &self.state.books;
        if let (Some(permit), Some(input), Some(output)) =
            (self.permit.take(), input_tokens, output_tokens)
        {
            // A stream's reservation becomes what it used (reported, or estimated from its text); what it frees
            // may let a queued request run now rather than at the next window roll.
            self.state.reconcile(&permit, input + output);
            self.state.queue.wake_all();
        }
        if let (true, Some((key, model)), Some(output)) =
            (c.status == "success", &self.served, output_tokens)
        {
            books.output.record(&key.id, model, output);
        }
        self.state
            .metrics
            .request(crate::runtime::metrics::RequestSample {
                surface: meta.endpoint,
                status: c.status,
                reason: c.error.as_ref().map_or("", |e| e.0),
                duration: latency,
                ttfb: c.ttfb,
                input_tokens: input_tokens.unwrap_or(0),
                output_tokens: output_tokens.unwrap_or(0),
            });
        self.state.events.finished(
            &meta.tenant.user_id,
            &meta.request_id,
            Finished {
                status: c.status,
                provider: platform,
                model: model.clone(),
                latency_ms: latency.as_millis() as u64,
                input_tokens: input_tokens.unwrap_or(0),
                output_tokens: output_tokens.unwrap_or(0),
                attempts: self.attempts,
                error_code: c.error.as_ref().map(|e| e.0),
            },
        );
        tracing::info!(
            target: "freellmapi::request",
            req_id = &*meta.request_id,
            user = &*meta.tenant.username,
            key = &*meta.gateway_key_prefix,
            endpoint = meta.endpoint,
            stream = meta.operation.stream(),
            requested_model = meta.client_model.as_deref().unwrap_or(&meta.requested_model),
            provider = platform.unwrap_or("-"),
            model = model.as_deref().unwrap_or("-"),
            provider_key = key_id.as_deref().unwrap_or("-"),
            proxy = self.proxy.as_deref().unwrap_or("-"),
            status = c.status,
            http_status = c.http_status,
            attempts = self.attempts,
            latency_ms = latency.as_millis() as u64,
            ttfb_ms = c.ttfb.map(|t| t.as_millis() as u64),
            input_tokens,
            output_tokens,
            error_class = c.error.as_ref().map(|e| e.0),
            "request finished"
        );
        // Recorded once: the request is over, and its model name is no longer needed here.
        let requested_model = self
            .meta
            .client_model
            .take()
            .unwrap_or_else(|| std::mem::take(&mut self.meta.requested_model));
        let meta = &self.meta;
        self.state.logs.send(RequestLog {
            id: Arc::clone(&meta.request_id),
            user_id: Arc::clone(&meta.tenant.user_id),
            gateway_key_id: Some(Arc::clone(&meta.gateway_key_id)),
            endpoint: meta.endpoint,
            requested_model,
            platform,
            model,
            provider_key_id: key_id,
            status: c.status,
            http_status: c.http_status,
            error_class: c.error.as_ref().map(|e| e.0),
            error_message: c.error.map(|e| e.1),
            stream: meta.operation.stream(),
            attempts: self.attempts,
            input_tokens,
            output_tokens,
            latency_ms: latency.as_millis() as u64,
            ttfb_ms: c.ttfb.map(|t| t.as_millis() as u64),
            created_at: now_ms(),
            failed_attempts: std::mem::take(&mut self.failed),
        });
    }

    /// Notes a failed upstream attempt for the request's record.
    pub(super) fn attempt_failed(
        &mut self,
        key: &ProviderKeyEntry,
        model: &Arc<str>,
        failure: &providers::UpstreamFailure,
        latency: Duration,
    ) {
        self.state
            .metrics
            .attempt_failed(key.platform.id(), failure.class.as_str());
        self.failed.push(store::FailedAttempt {
            provider_key_id: Arc::clone(&key.id),
            platform: key.platform.id(),
            model: Arc::clone(model),
            error_class: failure.class.as_str(),
            http_status: failure.status,
            error_message: failure.message.clone(),
            latency_ms: latency.as_millis() as u64,
            created_at: now_ms(),
        });
    }

    pub(super) fn record_error(&mut self, e: &ApiError) {
        self.record(Completion {
            status: "error",
            http_status: e.status,
            error: Some((e.code, e.message.clone())),
            usage: None,
            output_estimate: None,
            ttfb: None,
        });
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(Completion {
                status: "canceled",
                http_status: 499,
                error: Some(("client_closed", "the client closed the connection".into())),
                usage: None,
                output_estimate: None,
                ttfb: None,
            });
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
