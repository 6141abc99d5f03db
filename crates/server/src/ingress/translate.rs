//! The answer side of a translated surface. The relay answers in chat completions — a JSON body, an event stream
//! after its commit point, or an OpenAI-style error — and a surface's codec ([`surfaces`]) turns that into its own
//! wire format here. The relay and its failover never know which surface asked: a stream reaches this wrapper only
//! after the commit point, so the surface's first event is sent only once a candidate has really answered.
//! Dropping the wrapped body drops the relay's body, which cancels the upstream call as on `/v1/chat/completions`.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use http_body::Frame;
use wire::SseSplitter;

/// A surface's stream encoder: fed every chat SSE payload, writes the surface's own events.
pub(crate) trait StreamEncoder: Send + Unpin + 'static {
    fn start(&mut self, out: &mut Vec<u8>);
    fn push(&mut self, event: &[u8], out: &mut Vec<u8>);
    fn finish(&mut self, out: &mut Vec<u8>);
}

impl StreamEncoder for surfaces::responses::ResponsesStreamEncoder {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.start(out)
    }
    fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        self.push(event, out)
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        self.finish(out)
    }
}

impl StreamEncoder for surfaces::messages::MessagesStreamEncoder {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.start(out)
    }
    fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        self.push(event, out)
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        self.finish(out)
    }
}

impl StreamEncoder for surfaces::gemini::GeminiStreamEncoder {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.start(out)
    }
    fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        self.push(event, out)
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        self.finish(out)
    }
}

/// What the relay answered, taken apart for a codec.
pub(crate) enum RelayAnswer {
    /// A complete chat completion (status 200).
    Complete(Response, Bytes),
    /// A committed chat stream (status 200, `text/event-stream`).
    Stream(Response),
    /// An OpenAI-style error: status, the parsed body, and the response (for its headers).
    Error(Response, ErrorParts),
}

/// The fields of an OpenAI-style error body.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ErrorParts {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
}

#[derive(serde::Deserialize)]
struct ErrorEnvelope {
    error: ErrorParts,
}

/// Largest chat completion read back for translation (the relay already bounds what it holds).
const MAX_COMPLETE_BODY: usize = 64 * 1024 * 1024;

pub(crate) async fn take_apart(response: Response) -> RelayAnswer {
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if response.status() == StatusCode::OK && is_stream {
        return RelayAnswer::Stream(response);
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_COMPLETE_BODY)
        .await
        .unwrap_or_default();
    let head = Response::from_parts(parts, Body::empty());
    if status == StatusCode::OK {
        return RelayAnswer::Complete(head, bytes);
    }
    let error = serde_json::from_slice::<ErrorEnvelope>(&bytes)
        .map(|e| e.error)
        .unwrap_or_else(|_| ErrorParts {
            message: String::from_utf8_lossy(&bytes).into_owned(),
            ..ErrorParts::default()
        });
    RelayAnswer::Error(head, error)
}

/// `head` (status and headers kept) with a new JSON body.
pub(crate) fn with_json_body(mut head: Response, body: Vec<u8>) -> Response {
    let headers = head.headers_mut();
    // The relay's answers are JSON already: the header map is only written when it must change.
    if headers
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes() != b"application/json")
    {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if headers.contains_key(header::CONTENT_LENGTH) {
        headers.remove(header::CONTENT_LENGTH);
    }
    *head.body_mut() = Body::from(body);
    head
}

/// The committed chat stream `response`, re-encoded by `encoder` as it flows.
pub(crate) fn translated_stream(response: Response, encoder: impl StreamEncoder) -> Response {
    let (parts, body) = response.into_parts();
    let body = TranslatedBody {
        inner: body,
        splitter: SseSplitter::default(),
        encoder,
        started: false,
        ended: false,
        out: Vec::new(),
    };
    Response::from_parts(parts, Body::new(body))
}

struct TranslatedBody<E> {
    inner: Body,
    splitter: SseSplitter,
    encoder: E,
    started: bool,
    ended: bool,
    out: Vec<u8>,
}

impl<E: StreamEncoder> http_body::Body for TranslatedBody<E> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if !this.started {
            this.started = true;
            this.encoder.start(&mut this.out);
        }
        loop {
            if this.ended {
                if this.out.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from(std::mem::take(
                    &mut this.out,
                ))))));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let (encoder, out) = (&mut this.encoder, &mut this.out);
                        this.splitter.push(&data, |event| encoder.push(event, out));
                    }
                    if !this.out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(std::mem::take(
                            &mut this.out,
                        ))))));
                    }
                }
                // The relay's body never fails (its errors are SSE events); end cleanly either way.
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    let (encoder, out) = (&mut this.encoder, &mut this.out);
                    this.splitter.finish(|event| encoder.push(event, out));
                    this.encoder.finish(&mut this.out);
                    this.ended = true;
                }
                Poll::Pending => {
                    if !this.out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(std::mem::take(
                            &mut this.out,
                        ))))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
