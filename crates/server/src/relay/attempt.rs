//! One attempt: build the adapter's request, send it directly or through the key's proxy (failing over between
//! proxies without penalising the key), classify a failure, read a complete answer, or translate and hold a stream
//! until its commit point.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header;
use providers::dialect::DialectError;
use providers::{
    classify_proxied_transport, classify_response, classify_transport, ChatStreamTranslator,
    ErrorClass, UpstreamFailure,
};
use router::Outcome;
use tokio::time::Instant;
use wire::{SseSplitter, Usage};

use crate::proxy::{Egress, KeyRoute};
use crate::runtime::snapshot::ProviderKeyEntry;
use crate::runtime::state::AppState;
use crate::upstream::{self, Transport, TransportError, UpstreamBody, UpstreamStream};

use super::*;

/// A successful upstream answer.
pub(super) enum Upstream {
    Complete { body: Bytes, usage: Option<Usage> },
    Stream(Committed),
}

/// A stream past its commit point: what was held back, and the rest.
pub(super) struct Committed {
    pub(super) held: Vec<Bytes>,
    pub(super) rest: UpstreamStream,
    pub(super) watch: StreamWatch,
    /// The gateway asked the upstream for usage the client did not ask for: its usage-only chunk is not relayed.
    pub(super) strip_usage: bool,
}

pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;
pub(super) const MAX_HELD_BYTES: usize = 1024 * 1024;

pub(super) async fn read_error_body(body: UpstreamBody) -> Bytes {
    let mut stream = body.into_stream();
    let mut out = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            let room = MAX_ERROR_BODY - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    Bytes::from(out)
}

#[derive(serde::Deserialize)]
pub(super) struct UsageOnly {
    #[serde(default)]
    usage: Option<Usage>,
}

/// A translation the dialect refused: the client's request cannot be expressed for this provider.
pub(super) fn dialect_failure(key: &ProviderKeyEntry, e: DialectError) -> UpstreamFailure {
    match e {
        DialectError::BadRequest { message, .. } => UpstreamFailure {
            class: ErrorClass::BadRequest,
            status: Some(400),
            retry_after: None,
            message: format!(
                "the request cannot be expressed in {}'s format: {message}",
                key.platform.info().display_name
            ),
        },
        DialectError::Upstream(message) => UpstreamFailure::new(ErrorClass::Server, message),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(serde::Deserialize)]
pub(super) struct StreamOptionsOnly {
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// One attempt of `key` through its egress. When the proxy itself fails, the proxy is marked unhealthy and the same
/// key is retried through another proxy (or direct, when the settings allow it), up to `max_proxies_per_attempt`
/// proxies, without penalising the key; `on_switch` announces each new proxy. Keeps each proxy's statistics.
#[allow(clippy::too_many_arguments)]
pub(super) async fn attempt_through(
    state: &AppState,
    key: &ProviderKeyEntry,
    model: &str,
    request_id: &str,
    route: KeyRoute<'_>,
    egress: &mut Egress,
    body: Bytes,
    operation: Operation,
    on_switch: &(dyn Fn(&Egress) + Sync),
) -> Result<Upstream, UpstreamFailure> {
    let mut tried: Vec<Arc<str>> = Vec::new();
    loop {
        let Some(proxy) = egress.proxy().cloned() else {
            return attempt(
                state,
                key,
                Transport::Direct(&state.direct),
                model,
                request_id,
                body,
                operation,
            )
            .await;
        };
        let stats = &proxy.stats;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats
            .bytes_out
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        let result = attempt(
            state,
            key,
            Transport::Proxied(&proxy.client),
            model,
            request_id,
            body.clone(),
            operation,
        )
        .await;
        let failure = match result {
            Err(f) if f.class == ErrorClass::Proxy => f,
            other => {
                let latency = started.elapsed();
                let answered = match &other {
                    Ok(_) => true,
                    Err(f) => f.status.is_some(),
                };
                if answered {
                    // The proxy relayed an answer, whatever the upstream said.
                    stats.record_latency(latency);
                    proxy
                        .health
                        .success(latency, state.proxies.config.healthy_after);
                }
                return match other {
                    Ok(Upstream::Complete { body, usage }) => {
                        stats.successes.fetch_add(1, Ordering::Relaxed);
                        stats
                            .bytes_in
                            .fetch_add(body.len() as u64, Ordering::Relaxed);
                        Ok(Upstream::Complete { body, usage })
                    }
                    Ok(Upstream::Stream(mut committed)) => {
                        stats.successes.fetch_add(1, Ordering::Relaxed);
                        let held: usize = committed.held.iter().map(Bytes::len).sum();
                        stats.bytes_in.fetch_add(held as u64, Ordering::Relaxed);
                        let counter = proxy.stats.clone();
                        committed.rest = Box::pin(committed.rest.inspect(move |chunk| {
                            if let Ok(chunk) = chunk {
                                counter
                                    .bytes_in
                                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            }
                        }));
                        Ok(Upstream::Stream(committed))
                    }
                    Err(f) => {
                        stats.set_last_error(&f.message);
                        Err(f)
                    }
                };
            }
        };
        stats.proxy_errors.fetch_add(1, Ordering::Relaxed);
        stats.set_last_error(&failure.message);
        proxy.health.request_failure();
        tracing::warn!(
            target: "freellmapi::proxy",
            proxy = %proxy.label,
            address = %proxy.url,
            provider_key = %key.id,
            message = %failure.message,
            "outbound proxy failed; marked unhealthy, the key is not penalised"
        );
        tried.push(proxy.id.clone());
        if tried.len() >= state.proxies.config.max_proxies_per_attempt {
            return Err(failure);
        }
        match state
            .proxies
            .failover(route, &proxy, &tried, Instant::now())
        {
            Some(next) => {
                *egress = next;
                on_switch(egress);
            }
            None => return Err(failure),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn attempt(
    state: &AppState,
    key: &ProviderKeyEntry,
    transport: Transport<'_>,
    model: &str,
    request_id: &str,
    body: Bytes,
    operation: Operation,
) -> Result<Upstream, UpstreamFailure> {
    let config = &state.config;
    let deadline = Instant::now() + config.upstream_timeout;
    let adapter = key.adapter;
    // What a native answer needs to be translated back (the OpenAI dialect needs nothing).
    let native = adapter.is_native().then(|| {
        let include_usage = serde_json::from_slice::<StreamOptionsOnly>(&body)
            .ok()
            .and_then(|o| o.stream_options)
            .is_some_and(|o| o.include_usage);
        let base64 = providers::dialect::openai_embeddings_wants_base64(&body);
        (include_usage, base64)
    });
    // A stream's usage from the provider, where the platform gives it, rather than an estimate from its text.
    let mut usage_added = false;
    let body = match operation {
        Operation::Chat { stream: true }
            if !adapter.is_native() && providers::quirks::asks_stream_usage(key.platform) =>
        {
            match wire::stream_usage::with_usage_requested(&body) {
                Some(asked) => {
                    usage_added = true;
                    Bytes::from(asked)
                }
                None => body,
            }
        }
        _ => body,
    };
    let request = match operation {
        Operation::Chat { stream } => adapter.chat_request(&key.endpoint, model, body, stream),
        Operation::Embeddings => adapter.embeddings_request(&key.endpoint, model, body),
    }
    .map_err(|e| dialect_failure(key, e))?;
    // An upstream that takes the request and sends nothing is abandoned as soon as one that sends headers and
    // no delta would be: streams get their first-token allowance, other calls the first-byte deadline.
    let headers_within = if operation.stream() {
        config.first_token_stall
    } else {
        config.first_byte_timeout
    }
    .min(config.upstream_timeout);
    let headers_by = Instant::now() + headers_within;
    let response = match tokio::time::timeout_at(headers_by, transport.send(request)).await {
        Err(_) => {
            return Err(UpstreamFailure::new(
                ErrorClass::Timeout,
                format!(
                    "no response headers within {} ms",
                    headers_within.as_millis()
                ),
            ))
        }
        Ok(Err(e)) => {
            return Err(match transport {
                Transport::Proxied(_) => {
                    classify_proxied_transport(&*e.error, e.timeout, e.connect)
                }
                Transport::Direct(_) => classify_transport(&*e.error, e.timeout),
            })
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if !status.is_success() {
        let (head, body) = response.into_parts();
        let body = read_error_body(body).await;
        let mut failure = classify_response(status, &head.headers, &body);
        if status.is_redirection() {
            let location = head
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            failure.message = providers::sanitize_message(&format!(
                "the provider redirected to {location}; redirects are not followed, so set the key's base URL to \
                 the address it redirects to"
            ));
        }
        return Err(failure);
    }
    learn_from_headers(state, key, model, response.headers());
    if !operation.stream() {
        let body = match tokio::time::timeout_at(deadline, response.into_body().bytes()).await {
            Err(_) => {
                return Err(UpstreamFailure::new(
                    ErrorClass::Timeout,
                    "response body not complete in time",
                ))
            }
            Ok(Err(e)) => return Err(upstream::classify_body_error(&e)),
            Ok(Ok(b)) => b,
        };
        let body = match (native, operation) {
            (None, Operation::Chat { .. }) => {
                providers::quirks::openai_chat_response(key.platform, body)
            }
            (None, Operation::Embeddings) => body,
            (Some((_, base64)), Operation::Embeddings) => adapter
                .embeddings_response(body, model, base64)
                .map_err(|e| dialect_failure(key, e))?,
            (Some(_), Operation::Chat { .. }) => adapter
                .chat_response(body, model, &format!("chatcmpl-{request_id}"), unix_now())
                .map_err(|e| dialect_failure(key, e))?,
        };
        return match serde_json::from_slice::<UsageOnly>(&body) {
            Ok(parsed) => Ok(Upstream::Complete {
                body,
                usage: parsed.usage,
            }),
            Err(_) => Err(UpstreamFailure {
                class: ErrorClass::Server,
                status: Some(status.as_u16()),
                retry_after: None,
                message: "upstream answered 200 with a body that is not a JSON object".into(),
            }),
        };
    }
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Err(UpstreamFailure::new(
            ErrorClass::Server,
            "upstream did not answer with an event stream",
        ));
    }
    let upstream = response.into_body().into_stream();
    let upstream = match native.and_then(|(include_usage, _)| {
        adapter.chat_stream(
            model,
            &format!("chatcmpl-{request_id}"),
            unix_now(),
            include_usage,
        )
    }) {
        Some(translator) => Box::pin(TranslatedStream {
            inner: upstream,
            splitter: SseSplitter::default(),
            translator,
            out: Vec::new(),
            ended: false,
        }),
        None => upstream,
    };
    let mut held = hold_until_first_delta(upstream, config.first_token_stall).await?;
    if let Upstream::Stream(committed) = &mut held {
        committed.strip_usage = usage_added;
    }
    Ok(held)
}

/// A provider's own rate-limit headers: the remaining share feeds the score's headroom, and a used-up allowance
/// rests the candidate until it resets, so the next request goes elsewhere instead of provoking a 429.
pub(super) fn learn_from_headers(
    state: &AppState,
    key: &ProviderKeyEntry,
    model: &str,
    headers: &http::HeaderMap,
) {
    let Some(hint) = providers::ratelimit::rate_limit_hint(headers) else {
        return;
    };
    let now = Instant::now();
    let model: Arc<str> = Arc::from(model);
    state
        .books
        .scores
        .record_hint(&key.id, &model, hint.remaining_fraction, now);
    if let Some(reset) = hint.exhausted_for {
        state.cool(
            (&key.id, &model),
            Outcome::RateLimited {
                retry_after: Some(reset),
            },
            now,
        );
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A native dialect's event stream, translated on the fly into OpenAI `chat.completion.chunk` frames; everything
/// downstream (the commit-point watch, the relay) sees an OpenAI stream.
pub(super) struct TranslatedStream {
    inner: UpstreamStream,
    splitter: SseSplitter,
    translator: ChatStreamTranslator,
    out: Vec<u8>,
    ended: bool,
}

impl Stream for TranslatedStream {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Bytes::from(std::mem::take(&mut this.out)))));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let (translator, out) = (&mut this.translator, &mut this.out);
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    // An in-band error is written as an OpenAI error frame; the watch downstream acts on it.
                    this.splitter.push(&chunk, |event| {
                        let _ = translator.push(event, out);
                    });
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.splitter.finish(|event| {
                        let _ = translator.push(event, out);
                    });
                    translator.finish(out);
                    this.ended = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
