//! Response body: either a fixed buffer or a lazily generated SSE stream.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::render;
use crate::scenario::LimitKind;
use crate::Entry;

/// Counts a response as cancelled when dropped while still armed.
pub(crate) struct CancelGuard {
    entry: Option<Arc<Entry>>,
}

impl CancelGuard {
    pub(crate) fn new(entry: Arc<Entry>) -> CancelGuard {
        CancelGuard { entry: Some(entry) }
    }

    /// The response completed (or was deliberately aborted): not a cancellation.
    pub(crate) fn disarm(&mut self) {
        self.entry = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry.mark_cancelled();
        }
    }
}

/// Body type of every mock response.
pub(crate) struct MockBody {
    inner: Inner,
    guard: Option<CancelGuard>,
}

enum Inner {
    Full(Option<Bytes>),
    Sse(Box<Sse>),
    Scripted(Box<Scripted>),
}

impl MockBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> MockBody {
        MockBody {
            inner: Inner::Full(Some(bytes.into())),
            guard: None,
        }
    }

    pub(crate) fn sse(sse: Sse, guard: CancelGuard) -> MockBody {
        MockBody {
            inner: Inner::Sse(Box::new(sse)),
            guard: Some(guard),
        }
    }

    pub(crate) fn scripted(script: Scripted, guard: CancelGuard) -> MockBody {
        MockBody {
            inner: Inner::Scripted(Box::new(script)),
            guard: Some(guard),
        }
    }

    fn disarm(&mut self) {
        if let Some(guard) = self.guard.as_mut() {
            guard.disarm();
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::Full(data) => Poll::Ready(data.take().map(|b| Ok(Frame::data(b)))),
            Inner::Scripted(script) => {
                let action = ready!(script.poll_next(cx));
                match action {
                    Action::Data(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                    Action::Abort => {
                        this.disarm();
                        Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "mock-provider: stream cut",
                        ))))
                    }
                    Action::End => {
                        this.disarm();
                        Poll::Ready(None)
                    }
                }
            }
            Inner::Sse(sse) => {
                let action = ready!(sse.poll_next(cx));
                let finished = sse.is_finished();
                match action {
                    Action::Data(bytes) => {
                        if finished {
                            this.disarm();
                        }
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    Action::Abort => {
                        this.disarm();
                        Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "mock-provider: stream cut",
                        ))))
                    }
                    Action::End => {
                        this.disarm();
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(data) => data.is_none(),
            Inner::Sse(sse) => sse.is_finished(),
            Inner::Scripted(script) => script.is_finished(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Sse(_) | Inner::Scripted(_) => SizeHint::default(),
        }
    }
}

/// What the SSE generator produces next.
enum Action {
    Data(Bytes),
    Abort,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    InBandError,
    Role,
    Delta(usize),
    Finish,
    Usage,
    Done,
    Stalled,
    /// Yielded once so hyper flushes what was sent; the next poll aborts.
    Cutting,
    End,
}

/// Configuration of one streamed chat completion.
pub(crate) struct SseConfig {
    pub id: u64,
    pub created: u64,
    pub model_json: String,
    pub content_chunks: usize,
    /// JSON string literal of the tool name, when answering with a tool call.
    pub tool_name_json: Option<String>,
    pub reason: bool,
    pub empty: bool,
    pub inband_err: bool,
    pub limit: Option<(usize, LimitKind)>,
    pub drip: Option<Duration>,
    /// Prompt tokens, when `stream_options.include_usage` is set.
    pub usage_prompt: Option<u64>,
}

/// Number of reasoning deltas emitted by `reason`.
const REASON_CHUNKS: usize = 2;
/// Number of tool-call deltas.
const TOOL_CHUNKS: usize = 3;

/// Lazily generated `chat.completion.chunk` event stream.
pub(crate) struct Sse {
    /// `data: {"id":...,"object":"chat.completion.chunk","created":..,"model":..,"system_fingerprint":"fp_mock",`
    prefix: String,
    step: Step,
    reason_chunks: usize,
    total_deltas: usize,
    tool_name_json: Option<String>,
    limit: Option<(usize, LimitKind)>,
    drip: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    usage_prompt: Option<u64>,
    empty: bool,
}

impl Sse {
    pub(crate) fn new(cfg: SseConfig) -> Sse {
        let mut prefix = String::with_capacity(128 + cfg.model_json.len());
        let _ = write!(
            prefix,
            r#"data: {{"id":"chatcmpl-mock-{}","object":"chat.completion.chunk","created":{},"model":{},"system_fingerprint":"fp_mock","#,
            cfg.id, cfg.created, cfg.model_json
        );
        let reason_chunks = if cfg.reason { REASON_CHUNKS } else { 0 };
        let body_chunks = if cfg.tool_name_json.is_some() {
            TOOL_CHUNKS
        } else {
            cfg.content_chunks
        };
        Sse {
            prefix,
            step: if cfg.inband_err {
                Step::InBandError
            } else {
                Step::Role
            },
            reason_chunks,
            total_deltas: reason_chunks + body_chunks,
            tool_name_json: cfg.tool_name_json,
            limit: cfg.limit,
            drip: cfg.drip.filter(|d| !d.is_zero()),
            sleep: None,
            usage_prompt: cfg.usage_prompt,
            empty: cfg.empty,
        }
    }

    fn is_finished(&self) -> bool {
        self.step == Step::End
    }

    fn chunk(&self, delta: &str, finish_reason: Option<&str>) -> Bytes {
        let mut out = String::with_capacity(self.prefix.len() + delta.len() + 80);
        out.push_str(&self.prefix);
        out.push_str(r#""choices":[{"index":0,"delta":"#);
        out.push_str(delta);
        out.push_str(r#","logprobs":null,"finish_reason":"#);
        match finish_reason {
            Some(reason) => {
                out.push('"');
                out.push_str(reason);
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push_str("}]}\n\n");
        Bytes::from(out)
    }

    fn delta(&self, i: usize) -> Bytes {
        let mut delta = String::with_capacity(160);
        if i < self.reason_chunks {
            let _ = write!(delta, r#"{{"reasoning_content":"think{i} "}}"#);
        } else {
            let j = i - self.reason_chunks;
            match &self.tool_name_json {
                Some(name) => match j {
                    0 => {
                        let _ = write!(
                            delta,
                            r#"{{"tool_calls":[{{"index":0,"id":"call_1","type":"function","function":{{"name":{name},"arguments":""}}}}]}}"#
                        );
                    }
                    1 => delta.push_str(
                        r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#,
                    ),
                    _ => delta.push_str(
                        r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#,
                    ),
                },
                None => {
                    let _ = write!(delta, r#"{{"content":"tok{j} "}}"#);
                }
            }
        }
        self.chunk(&delta, None)
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Action> {
        if let Some(sleep) = self.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        loop {
            match self.step {
                Step::InBandError => {
                    self.step = Step::End;
                    return Poll::Ready(Action::Data(Bytes::from_static(
                        b"data: {\"error\":{\"message\":\"mock in-band error\",\"type\":\"server_error\"}}\n\n",
                    )));
                }
                Step::Role => {
                    self.step = if self.empty {
                        Step::Done
                    } else {
                        Step::Delta(0)
                    };
                    return Poll::Ready(Action::Data(
                        self.chunk(r#"{"role":"assistant","content":""}"#, None),
                    ));
                }
                Step::Delta(i) => {
                    if let Some((n, kind)) = self.limit {
                        if i >= n {
                            match kind {
                                LimitKind::Stall => {
                                    self.step = Step::Stalled;
                                    continue;
                                }
                                LimitKind::Cut => {
                                    // Let hyper flush the chunks sent so far before aborting,
                                    // otherwise they are discarded with the connection.
                                    self.step = Step::Cutting;
                                    cx.waker().wake_by_ref();
                                    return Poll::Pending;
                                }
                            }
                        }
                    }
                    if i >= self.total_deltas {
                        self.step = Step::Finish;
                        continue;
                    }
                    let bytes = self.delta(i);
                    self.step = Step::Delta(i + 1);
                    if let Some(drip) = self.drip {
                        if i + 1 < self.total_deltas {
                            self.sleep = Some(Box::pin(tokio::time::sleep(drip)));
                        }
                    }
                    return Poll::Ready(Action::Data(bytes));
                }
                Step::Finish => {
                    self.step = if self.usage_prompt.is_some() {
                        Step::Usage
                    } else {
                        Step::Done
                    };
                    let reason = if self.tool_name_json.is_some() {
                        "tool_calls"
                    } else {
                        "stop"
                    };
                    return Poll::Ready(Action::Data(self.chunk("{}", Some(reason))));
                }
                Step::Usage => {
                    self.step = Step::Done;
                    let prompt = self.usage_prompt.unwrap_or(0);
                    let mut out = String::with_capacity(self.prefix.len() + 120);
                    out.push_str(&self.prefix);
                    out.push_str(r#""choices":[],"usage":"#);
                    render::usage(&mut out, prompt, self.total_deltas as u64);
                    out.push_str("}\n\n");
                    return Poll::Ready(Action::Data(Bytes::from(out)));
                }
                Step::Done => {
                    self.step = Step::End;
                    return Poll::Ready(Action::Data(Bytes::from_static(b"data: [DONE]\n\n")));
                }
                // Nothing more will ever be sent; the connection stays open until the peer goes away.
                Step::Stalled => return Poll::Pending,
                Step::Cutting => {
                    self.step = Step::End;
                    return Poll::Ready(Action::Abort);
                }
                Step::End => return Poll::Ready(Action::End),
            }
        }
    }
}

/// A prepared event stream (the native dialects' answers): head events, delta events, tail events, with the same
/// `drip`, `stallafter` and `cut` behaviour as the OpenAI stream, counted in delta events.
pub(crate) struct Scripted {
    events: std::collections::VecDeque<(Bytes, bool)>,
    deltas_sent: usize,
    limit: Option<(usize, LimitKind)>,
    drip: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    cutting: bool,
    stalled: bool,
    ended: bool,
}

impl Scripted {
    pub(crate) fn new(
        head: Vec<String>,
        deltas: Vec<String>,
        tail: Vec<String>,
        limit: Option<(usize, LimitKind)>,
        drip: Option<Duration>,
    ) -> Scripted {
        let events = head
            .into_iter()
            .map(|e| (Bytes::from(e), false))
            .chain(deltas.into_iter().map(|e| (Bytes::from(e), true)))
            .chain(tail.into_iter().map(|e| (Bytes::from(e), false)))
            .collect();
        Scripted {
            events,
            deltas_sent: 0,
            limit,
            drip: drip.filter(|d| !d.is_zero()),
            sleep: None,
            cutting: false,
            stalled: false,
            ended: false,
        }
    }

    fn is_finished(&self) -> bool {
        self.ended
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Action> {
        if self.stalled {
            return Poll::Pending;
        }
        if self.cutting {
            self.ended = true;
            return Poll::Ready(Action::Abort);
        }
        if let Some(sleep) = self.sleep.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
        }
        let Some(&(_, is_delta)) = self.events.front() else {
            self.ended = true;
            return Poll::Ready(Action::End);
        };
        if is_delta {
            if let Some((n, kind)) = self.limit {
                if self.deltas_sent >= n {
                    match kind {
                        LimitKind::Stall => {
                            self.stalled = true;
                            return Poll::Pending;
                        }
                        LimitKind::Cut => {
                            // Let hyper flush what was sent before aborting.
                            self.cutting = true;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
        let Some((bytes, _)) = self.events.pop_front() else {
            self.ended = true;
            return Poll::Ready(Action::End);
        };
        if is_delta {
            self.deltas_sent += 1;
            let more_deltas = self.events.front().is_some_and(|(_, d)| *d);
            if let (Some(drip), true) = (self.drip, more_deltas) {
                self.sleep = Some(Box::pin(tokio::time::sleep(drip)));
            }
        }
        Poll::Ready(Action::Data(bytes))
    }
}
