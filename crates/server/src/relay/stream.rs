//! Streams: the commit-point watch before anything reaches the client, and [`RelayBody`], which relays the rest
//! with an inactivity timeout and ends with an SSE error event when the upstream stalls or breaks.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::Frame;
use providers::{ErrorClass, UpstreamFailure};
use tokio::time::{Instant, Sleep};
use wire::{inspect_chunk, ApiError, ErrorType, SseSplitter, Usage};

use crate::upstream::{self, UpstreamStream};

use router::Outcome;

use super::*;

/// Reads a stream until its first content, tool-call or reasoning delta (or a clean finish), holding the bytes back.
/// Gives up — so the next candidate can be tried invisibly — on a stall, a broken or empty stream, or an in-band
/// error frame.
pub(super) async fn hold_until_first_delta(
    mut rest: UpstreamStream,
    stall: Duration,
) -> Result<Upstream, UpstreamFailure> {
    let deadline = Instant::now() + stall;
    let mut held = Vec::new();
    let mut held_bytes = 0;
    let mut watch = StreamWatch::default();
    loop {
        let next = match tokio::time::timeout_at(deadline, rest.next()).await {
            Err(_) => {
                return Err(UpstreamFailure::new(
                    ErrorClass::Timeout,
                    format!(
                        "no content, tool or reasoning delta within {} ms",
                        stall.as_millis()
                    ),
                ))
            }
            Ok(next) => next,
        };
        match next {
            None => {
                watch.finish_splitter();
                if watch.finished {
                    return Ok(Upstream::Stream(Committed {
                        held,
                        rest,
                        watch,
                        strip_usage: false,
                    }));
                }
                return Err(UpstreamFailure::new(
                    ErrorClass::Server,
                    "stream ended before any output",
                ));
            }
            Some(Err(e)) => {
                let mut f = upstream::classify_body_error(&e);
                if f.class == ErrorClass::Network {
                    f.class = ErrorClass::Server;
                }
                f.message = format!("stream broke before any output: {}", f.message);
                return Err(f);
            }
            Some(Ok(chunk)) => {
                let signal = watch.inspect_fully(&chunk);
                held_bytes += chunk.len();
                held.push(chunk);
                if signal.error {
                    return Err(UpstreamFailure::new(
                        ErrorClass::Server,
                        "upstream sent an in-band error before any output",
                    ));
                }
                // A finish reason without output is a legitimately empty answer; `[DONE]` without either is not.
                if signal.output || watch.finished || held_bytes > MAX_HELD_BYTES {
                    return Ok(Upstream::Stream(Committed {
                        held,
                        rest,
                        watch,
                        strip_usage: false,
                    }));
                }
                if watch.done {
                    return Err(UpstreamFailure::new(
                        ErrorClass::Server,
                        "stream ended with no output and no finish reason",
                    ));
                }
            }
        }
    }
}

/// Whether a relayed event may carry a finish reason or usage: `"finish_reason"` with a string value, or `"usage"` with
/// an object (`null` values are the common case and are skipped). Only those events are parsed after the commit point.
pub(super) fn worth_parsing(event: &[u8]) -> bool {
    use std::sync::LazyLock;
    static FINISH: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"finish_reason\""));
    static USAGE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    /// The first byte of the value after the key at `at` (`len` bytes long).
    pub(super) fn value_starts_with(event: &[u8], at: usize, len: usize, first: u8) -> bool {
        event[at + len..]
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':'))
            == Some(&first)
    }
    FINISH
        .find_iter(event)
        .any(|at| value_starts_with(event, at, FINISH.needle().len(), b'"'))
        || USAGE
            .find_iter(event)
            .any(|at| value_starts_with(event, at, USAGE.needle().len(), b'{'))
}

/// What the gateway learns from a stream while relaying it.
#[derive(Debug, Default)]
pub(super) struct StreamWatch {
    pub(super) splitter: SseSplitter,
    pub(super) done: bool,
    pub(super) finished: bool,
    pub(super) usage: Option<Usage>,
    pub(super) output_events: u64,
    /// Bytes of output text relayed (see `wire::ChunkSignal::output_bytes`); after the commit point, events that are
    /// not parsed count their length minus the envelope learned from the parsed ones.
    pub(super) output_bytes: u64,
    /// Bytes of an output event that are not output (ids, model, JSON structure), from the last parsed one.
    pub(super) envelope: Option<usize>,
}

/// Bytes per token of the output estimate when the upstream reports no usage.
const BYTES_PER_TOKEN: u64 = 4;

impl StreamWatch {
    /// Output tokens of the stream as far as the text says: for streams whose upstream reports no usage.
    pub(super) fn estimated_output_tokens(&self) -> u64 {
        self.output_bytes.div_ceil(BYTES_PER_TOKEN)
    }

    /// Before the commit point: every event is parsed.
    pub(super) fn inspect_fully(&mut self, chunk: &[u8]) -> wire::ChunkSignal {
        let mut total = wire::ChunkSignal::default();
        let (done, finished, usage, output_events, output_bytes, envelope) = (
            &mut self.done,
            &mut self.finished,
            &mut self.usage,
            &mut self.output_events,
            &mut self.output_bytes,
            &mut self.envelope,
        );
        self.splitter.push(chunk, |event| {
            let s = inspect_chunk(event);
            *done |= s.done;
            *finished |= s.finished;
            if s.usage.is_some() {
                *usage = s.usage;
            }
            if s.output {
                *output_events += 1;
                *output_bytes += s.output_bytes as u64;
                *envelope = Some(event.len().saturating_sub(s.output_bytes));
            }
            total.output |= s.output;
            total.error |= s.error;
        });
        total
    }

    /// After the commit point: only events that can carry usage or a finish are parsed; the rest are counted.
    pub(super) fn observe(&mut self, chunk: &[u8]) {
        let (done, finished, usage, output_events, output_bytes, envelope) = (
            &mut self.done,
            &mut self.finished,
            &mut self.usage,
            &mut self.output_events,
            &mut self.output_bytes,
            &mut self.envelope,
        );
        self.splitter.push(chunk, |event| {
            if event == b"[DONE]" {
                *done = true;
                return;
            }
            if worth_parsing(event) {
                let s = inspect_chunk(event);
                *finished |= s.finished;
                if s.usage.is_some() {
                    *usage = s.usage;
                }
                if s.output {
                    *output_events += 1;
                    *output_bytes += s.output_bytes as u64;
                }
            } else {
                *output_events += 1;
                // Not parsed (the hot path): the event's length less the envelope of a parsed output event.
                *output_bytes += event.len().saturating_sub(envelope.unwrap_or(event.len())) as u64;
            }
        });
    }

    pub(super) fn finish_splitter(&mut self) {
        let (done, finished) = (&mut self.done, &mut self.finished);
        self.splitter.finish(|event| {
            let s = inspect_chunk(event);
            *done |= s.done;
            *finished |= s.finished;
        });
    }
}

/// The relayed stream: held chunks first, then the upstream's, with an inactivity timeout. Ends with an SSE error
/// event if the upstream stalls, breaks or closes before finishing. Dropping it (client gone) drops the upstream
/// response, which closes that connection.
///
/// Chunks that are already available are coalesced into one frame: after taking a chunk, the body gives the
/// upstream connection task one scheduler turn to produce the next before handing the batch to hyper. A burst of
/// SSE events then costs one socket write instead of one per event, while a model producing tokens one at a time
/// still has each token written as soon as it arrives.
pub(super) struct RelayBody {
    batch: BytesMut,
    /// Scheduler turns given to the upstream connection since the last chunk.
    turns_given: u8,
    /// Set once the upstream is done: the terminal frame still to send (`Some(None)`: just end).
    ending: Option<Option<Bytes>>,
    upstream: Option<UpstreamStream>,
    /// The inactivity watch ticks every quarter of the timeout instead of being re-armed per chunk (a clock read and
    /// a timer move per chunk): a chunk sets `active`; four silent ticks in a row end the stream, so a stall is
    /// reported between 1 and 1.25 timeouts after the last chunk.
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    active: bool,
    silent_ticks: u8,
    watch: StreamWatch,
    guard: RequestGuard,
    ttfb: Duration,
    /// When the live board last heard this stream's output count.
    last_progress: Option<Instant>,
    /// Usage-only events are not relayed (the gateway asked for them, the client did not).
    strip_usage: bool,
}

/// Adds a chunk to the outgoing batch, without its usage-only events when the client did not ask for usage.
fn push_chunk(batch: &mut BytesMut, chunk: &[u8], strip_usage: bool) {
    if strip_usage {
        wire::stream_usage::without_usage_events(chunk, |b| batch.extend_from_slice(b));
    } else {
        batch.extend_from_slice(chunk);
    }
}

/// Inactivity checks per idle timeout (see `RelayBody::idle`).
pub(super) const IDLE_TICKS: u32 = 4;

/// Output-count events per stream are sent at most this often.
pub(super) const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

pub(super) const MAX_BATCH: usize = 64 * 1024;
/// Scheduler turns without a new chunk before the batch is written. The upstream connection task needs more than
/// one turn to hand over its next decoded chunk.
pub(super) const TURNS_BEFORE_FLUSH: u8 = 3;

pub(super) type FramePoll = Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>>;

impl RelayBody {
    pub(super) fn new(
        committed: Committed,
        idle_timeout: Duration,
        guard: RequestGuard,
        ttfb: Duration,
    ) -> Self {
        let held_len = committed.held.iter().map(Bytes::len).sum::<usize>();
        let mut batch = BytesMut::with_capacity(held_len.max(4096));
        for chunk in &committed.held {
            push_chunk(&mut batch, chunk, committed.strip_usage);
        }
        Self {
            batch,
            turns_given: 0,
            ending: None,
            upstream: Some(committed.rest),
            idle: Box::pin(tokio::time::sleep(idle_timeout / IDLE_TICKS)),
            idle_timeout,
            active: false,
            silent_ticks: 0,
            watch: committed.watch,
            guard,
            ttfb,
            last_progress: None,
            strip_usage: committed.strip_usage,
        }
    }

    /// Whether the idle timeout passed without a chunk (polls the tick timer, re-arming it on every tick).
    pub(super) fn idle_elapsed(&mut self, cx: &mut Context<'_>) -> bool {
        while self.idle.as_mut().poll(cx).is_ready() {
            if std::mem::take(&mut self.active) {
                self.silent_ticks = 0;
            } else {
                self.silent_ticks += 1;
                if u32::from(self.silent_ticks) >= IDLE_TICKS {
                    return true;
                }
            }
            let next = Instant::now() + self.idle_timeout / IDLE_TICKS;
            self.idle.as_mut().reset(next);
        }
        false
    }

    /// Tells the live board how much output has streamed (throttled; free when nobody watches).
    pub(super) fn progress(&mut self) {
        let events = &self.guard.state.events;
        if !events.listening() {
            return;
        }
        let now = Instant::now();
        if self
            .last_progress
            .is_some_and(|last| now.duration_since(last) < PROGRESS_INTERVAL)
        {
            return;
        }
        self.last_progress = Some(now);
        let meta = &self.guard.meta;
        events.tokens(
            &meta.tenant.user_id,
            &meta.request_id,
            self.watch.output_events,
        );
    }

    /// A stream that broke, stalled or ended early after its commit point was the candidate's failure as much as
    /// one before it: it cools the candidate and lowers its score, so the next requests go elsewhere (the client
    /// already has the error event; there is no failover after the commit point).
    fn count_against_key(&self) {
        let Some((key, model)) = &self.guard.served else {
            return;
        };
        let state = &self.guard.state;
        let cooldown = state.cool(
            (&key.id, model),
            Outcome::Transient { retry_after: None },
            Instant::now(),
        );
        state.scored(&key.id, model, false, None);
        tracing::warn!(
            target: "freellmapi::attempt",
            provider = key.platform.id(),
            model = &**model,
            provider_key = %key.id,
            cooldown_s = cooldown.map(|d| d.as_secs()),
            "stream failed after the commit point; counted against the key"
        );
    }

    pub(super) fn complete(
        &mut self,
        status: &'static str,
        error: Option<ApiError>,
    ) -> Option<Bytes> {
        self.upstream = None;
        let event = error.as_ref().map(|e| Bytes::from(e.to_sse_event()));
        if error.is_some() {
            self.count_against_key();
        }
        self.guard.record(Completion {
            status,
            http_status: 200,
            error: error.map(|e| (e.code, e.message)),
            usage: self.watch.usage,
            output_estimate: Some(self.watch.estimated_output_tokens()),
            ttfb: Some(self.ttfb),
        });
        event
    }

    pub(super) fn flush(&mut self) -> FramePoll {
        self.turns_given = 0;
        Poll::Ready(Some(Ok(Frame::data(self.batch.split().freeze()))))
    }

    /// Sends what is batched, then the terminal frame (if any), then ends.
    pub(super) fn finish_with(&mut self, terminal: Option<Bytes>) -> FramePoll {
        if !self.batch.is_empty() {
            self.ending = Some(terminal);
            return self.flush();
        }
        match terminal {
            Some(event) => {
                self.ending = Some(None);
                Poll::Ready(Some(Ok(Frame::data(event))))
            }
            None => Poll::Ready(None),
        }
    }
}

pub(super) fn stream_error(code: &'static str, message: String) -> ApiError {
    ApiError::new(502, ErrorType::StreamError, code, message)
}

impl http_body::Body for RelayBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> FramePoll {
        let this = self.get_mut();
        if let Some(terminal) = this.ending.take() {
            return this.finish_with(terminal);
        }
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return this.finish_with(None);
            };
            match upstream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.watch.observe(&chunk);
                    this.progress();
                    this.active = true;
                    this.turns_given = 0;
                    push_chunk(&mut this.batch, &chunk, this.strip_usage);
                    if this.batch.len() >= MAX_BATCH {
                        return this.flush();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let message = format!(
                        "the upstream stream broke: {}",
                        upstream::classify_body_error(&e).message
                    );
                    let event = this.complete(
                        "error",
                        Some(stream_error("upstream_stream_broken", message)),
                    );
                    return this.finish_with(event);
                }
                Poll::Ready(None) => {
                    this.watch.finish_splitter();
                    let event = if this.watch.done || this.watch.finished {
                        this.complete("success", None)
                    } else {
                        let err = stream_error(
                            "upstream_stream_incomplete",
                            "the upstream closed the stream before finishing".into(),
                        );
                        this.complete("error", Some(err))
                    };
                    return this.finish_with(event);
                }
                Poll::Pending => {
                    if !this.batch.is_empty() {
                        if this.turns_given < TURNS_BEFORE_FLUSH {
                            // Let the upstream connection task run; we are polled again right after it.
                            this.turns_given += 1;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        return this.flush();
                    }
                    if this.idle_elapsed(cx) {
                        let message = format!(
                            "the upstream sent nothing for {} ms",
                            this.idle_timeout.as_millis()
                        );
                        let event = this.complete(
                            "error",
                            Some(stream_error("upstream_stream_stalled", message)),
                        );
                        return this.finish_with(event);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
