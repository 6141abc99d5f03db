//! Streaming: the chat-completion chunks turned into the Responses event sequence.

use super::*;
use crate::chunks::{ChatStream, Sink, Step, ToolCalls, ToolDelta};

// ---- streaming --------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum PartKind {
    Text,
    Refusal,
}

/// An output item's place: output_index, id, and the `,"item_id":…,"output_index":…` members its events share.
pub(super) struct Place {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) head: Vec<u8>,
}

impl Place {
    pub(super) fn new(index: usize, id: String) -> Self {
        let mut head = Vec::with_capacity(id.len() + 40);
        head.extend_from_slice(b",\"item_id\":");
        put_str(&mut head, &id);
        head.extend_from_slice(b",\"output_index\":");
        put_u64(&mut head, index as u64);
        Place { index, id, head }
    }
}

/// An open message: its finished content parts and the one being streamed.
pub(super) struct Msg {
    pub(super) parts: Vec<OutPart>,
    pub(super) cur: Option<PartKind>,
    pub(super) buf: String,
}

/// The open message or reasoning item (at most one at a time).
pub(super) enum Open {
    Message(Place, Msg),
    Reasoning(Place, String),
}

/// Numbers and frames SSE events; `kind` is the event type without its `response.` prefix. An event is
/// `begin`, its members (each starting with a comma), then `end`.
pub(super) struct Seq {
    pub(super) seq: u64,
}

impl Seq {
    pub(super) fn begin(&mut self, out: &mut Vec<u8>, kind: &str) {
        out.extend_from_slice(b"event: response.");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"response.");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"sequence_number\":");
        put_u64(out, self.seq);
        self.seq += 1;
    }

    pub(super) fn end(out: &mut Vec<u8>) {
        out.extend_from_slice(b"}\n\n");
    }

    /// An event with `head` and an index member (`,"content_index":N`).
    pub(super) fn begin_at(
        &mut self,
        out: &mut Vec<u8>,
        kind: &str,
        at: &Place,
        index: &[u8],
        n: usize,
    ) {
        self.begin(out, kind);
        out.extend_from_slice(&at.head);
        out.extend_from_slice(index);
        put_u64(out, n as u64);
    }

    /// Closes the message's current content part, if any: `*.done` then `response.content_part.done`.
    pub(super) fn close_part(&mut self, out: &mut Vec<u8>, at: &Place, msg: &mut Msg) {
        let Some(kind) = msg.cur.take() else {
            return;
        };
        let text = std::mem::take(&mut msg.buf);
        let ci = msg.parts.len();
        let (done, member, tail): (&str, &[u8], &[u8]) = match kind {
            PartKind::Text => ("output_text.done", b",\"text\":", b",\"logprobs\":[]"),
            PartKind::Refusal => ("refusal.done", b",\"refusal\":", b""),
        };
        self.begin_at(out, done, at, b",\"content_index\":", ci);
        out.extend_from_slice(member);
        put_str(out, &text);
        out.extend_from_slice(tail);
        Seq::end(out);
        self.begin_at(out, "content_part.done", at, b",\"content_index\":", ci);
        out.extend_from_slice(member);
        put_str(out, &text);
        out.extend_from_slice(tail);
        out.extend_from_slice(b",\"part\":");
        let part = match kind {
            PartKind::Text => OutPart::Text(text),
            PartKind::Refusal => OutPart::Refusal(text),
        };
        put_part(out, &part);
        Seq::end(out);
        msg.parts.push(part);
    }
}

/// Turns the chat-completions chunk stream into Responses SSE events.
///
/// Message and reasoning items are open one at a time; starting any other item closes them. Function calls stay
/// open together while only tool-call deltas arrive (some upstreams interleave parallel calls by index), and close
/// in output order when other output starts or the stream ends. Deltas for a tool-call index (and id) that was
/// already closed are ignored.
pub struct ResponsesStreamEncoder {
    chat: ChatStream,
    items: Items,
    started: bool,
}

/// The output items: the [`Sink`] side of the encoder.
struct Items {
    ctx: ResponseContext,
    seq: Seq,
    ended: bool,
    /// Items by output_index: the in-progress snapshot until the item is done, then the finished item.
    output: Vec<OutItem>,
    open: Option<Open>,
    /// The place of each tool call's item (by the stream's tool slot), once `response.output_item.added` went out —
    /// which waits for the name, since some upstreams send it after the id.
    calls: Vec<Option<Place>>,
}

impl ResponsesStreamEncoder {
    pub fn new(ctx: ResponseContext) -> Self {
        Self {
            chat: ChatStream::default(),
            items: Items {
                ctx,
                seq: Seq { seq: 0 },
                ended: false,
                output: Vec::new(),
                open: None,
                calls: Vec::new(),
            },
            started: false,
        }
    }

    /// Emits `response.created` and `response.in_progress` (once).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let items = &mut self.items;
        out.reserve(2 * (items.ctx.echo.len() + 400));
        items.seq.begin(out, "created");
        out.extend_from_slice(b",\"response\":");
        let from = out.len();
        items.put_snapshot(out, &End::InProgress, &self.chat);
        let to = out.len();
        Seq::end(out);
        items.seq.begin(out, "in_progress");
        out.extend_from_slice(b",\"response\":");
        out.extend_from_within(from..to);
        Seq::end(out);
    }

    /// One chat SSE payload: a `chat.completion.chunk`, `[DONE]`, or the gateway's terminal `{"error":…}`.
    pub fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.items.ended {
            return;
        }
        self.start(out);
        match self.chat.read(event, &mut self.items, out) {
            Step::Chunk => {}
            Step::Done => self.finalize(true, out),
            Step::Error(e) => {
                let code = e.code.as_deref().or(e.kind.as_deref());
                let end = End::Failed {
                    code: code.unwrap_or("server_error"),
                    message: &e.message,
                };
                self.items.emit_response(out, "failed", &end, &self.chat);
            }
        }
    }

    /// The upstream ended: closes open items and emits the terminal event, unless one went out already.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.finalize(false, out);
    }

    pub fn usage(&self) -> Option<wire::Usage> {
        let u = self.chat.usage?;
        Some(wire::Usage {
            prompt_tokens: u.prompt,
            completion_tokens: u.completion,
        })
    }

    fn finalize(&mut self, saw_done: bool, out: &mut Vec<u8>) {
        if self.items.ended {
            return;
        }
        self.start(out);
        self.chat.finish(&mut self.items, out);
        self.items.close_all(&mut self.chat.calls, out);
        let chat = &self.chat;
        let end = if chat.finish_reason.is_none() && !saw_done && self.items.output.is_empty() {
            // A stream that ended without [DONE], finish_reason or a single piece of output is no answer.
            let message = "the upstream stream ended without a response";
            End::Failed {
                code: "server_error",
                message,
            }
        } else {
            end_state(chat.finish_reason.as_deref())
        };
        let kind = match end {
            End::Completed => "completed",
            End::Failed { .. } => "failed",
            _ => "incomplete",
        };
        self.items.emit_response(out, kind, &end, chat);
    }
}

impl Sink for Items {
    fn thinking(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Reasoning(..))) {
            self.close_all(calls, out);
            let at = self.add_item(out, "rs", |id| OutItem::Reasoning { id, text: None });
            self.seq.begin_at(
                out,
                "reasoning_summary_part.added",
                &at,
                b",\"summary_index\":",
                0,
            );
            out.extend_from_slice(b",\"part\":{\"type\":\"summary_text\",\"text\":\"\"}");
            Seq::end(out);
            self.open = Some(Open::Reasoning(at, String::new()));
        }
        if let Some(Open::Reasoning(at, text)) = &mut self.open {
            text.push_str(s);
            self.seq.begin_at(
                out,
                "reasoning_summary_text.delta",
                at,
                b",\"summary_index\":",
                0,
            );
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
            Seq::end(out);
        }
    }

    fn text(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        self.message_delta(calls, PartKind::Text, s, out);
    }

    fn refusal(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        self.message_delta(calls, PartKind::Refusal, s, out);
    }

    fn tool(&mut self, calls: &mut ToolCalls, d: ToolDelta, out: &mut Vec<u8>) {
        if d.fresh {
            self.close_open(out);
        }
        match self.calls.get(d.slot) {
            Some(Some(at)) if !d.args.is_empty() => {
                Self::args_delta(&mut self.seq, out, at, d.args)
            }
            Some(Some(_)) => {}
            _ if calls.slots[d.slot].name.is_some() => self.add_tool(calls, d.slot, out),
            _ => {}
        }
    }
}

impl Items {
    fn put_snapshot(&self, out: &mut Vec<u8>, end: &End, chat: &ChatStream) {
        let model = chat.model.as_deref().unwrap_or(&self.ctx.model);
        put_response(
            out,
            &self.ctx,
            end,
            model,
            &self.output,
            chat.usage.as_ref(),
        );
    }

    /// A terminal event carrying the response.
    fn emit_response(&mut self, out: &mut Vec<u8>, kind: &str, end: &End, chat: &ChatStream) {
        self.seq.begin(out, kind);
        out.extend_from_slice(b",\"response\":");
        self.put_snapshot(out, end, chat);
        Seq::end(out);
        self.ended = true;
    }

    /// Appends an in-progress item to the output and announces it.
    fn add_item(
        &mut self,
        out: &mut Vec<u8>,
        prefix: &str,
        item: impl FnOnce(String) -> OutItem,
    ) -> Place {
        let index = self.output.len();
        let id = item_id(&self.ctx, prefix, index);
        let item = item(id.clone());
        self.seq.begin(out, "output_item.added");
        out.extend_from_slice(b",\"output_index\":");
        put_u64(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        put_item(out, &item);
        Seq::end(out);
        self.output.push(item);
        Place::new(index, id)
    }

    fn message_delta(&mut self, calls: &mut ToolCalls, kind: PartKind, s: &str, out: &mut Vec<u8>) {
        if !matches!(self.open, Some(Open::Message(..))) {
            self.close_all(calls, out);
            let at = self.add_item(out, "msg", |id| OutItem::Message {
                id,
                status: "in_progress",
                parts: Vec::new(),
            });
            let msg = Msg {
                parts: Vec::new(),
                cur: None,
                buf: String::new(),
            };
            self.open = Some(Open::Message(at, msg));
        }
        let Some(Open::Message(at, msg)) = &mut self.open else {
            return;
        };
        if msg.cur != Some(kind) {
            self.seq.close_part(out, at, msg);
            let ci = msg.parts.len();
            self.seq
                .begin_at(out, "content_part.added", at, b",\"content_index\":", ci);
            out.extend_from_slice(match kind {
                PartKind::Text => {
                    b",\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}"
                }
                PartKind::Refusal => b",\"part\":{\"type\":\"refusal\",\"refusal\":\"\"}",
            });
            Seq::end(out);
            msg.cur = Some(kind);
        }
        msg.buf.push_str(s);
        let ci = msg.parts.len();
        if kind == PartKind::Text {
            self.seq
                .begin_at(out, "output_text.delta", at, b",\"content_index\":", ci);
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
            out.extend_from_slice(b",\"logprobs\":[]");
        } else {
            self.seq
                .begin_at(out, "refusal.delta", at, b",\"content_index\":", ci);
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
        }
        Seq::end(out);
    }

    fn args_delta(seq: &mut Seq, out: &mut Vec<u8>, at: &Place, args: &str) {
        seq.begin(out, "function_call_arguments.delta");
        out.extend_from_slice(&at.head);
        out.extend_from_slice(b",\"delta\":");
        put_str(out, args);
        Seq::end(out);
    }

    /// Emits `output_item.added` for a tool call, followed by the arguments buffered until then.
    fn add_tool(&mut self, calls: &mut ToolCalls, slot: usize, out: &mut Vec<u8>) {
        let Some(t) = calls.slots.get_mut(slot) else {
            return;
        };
        let call_id = match &t.id {
            Some(id) => id.clone(),
            None => item_id(&self.ctx, "call", self.output.len()),
        };
        t.id = Some(call_id.clone());
        t.started = true;
        let name = t.name.clone().unwrap_or_default();
        let at = self.add_item(out, "fc", |id| OutItem::Call {
            id,
            call_id,
            name,
            arguments: String::new(),
            status: "in_progress",
        });
        if !t.args.is_empty() {
            Self::args_delta(&mut self.seq, out, &at, &t.args);
        }
        if self.calls.len() <= slot {
            self.calls.resize_with(slot + 1, || None);
        }
        self.calls[slot] = Some(at);
    }

    /// Closes the open message or reasoning item and every open function call.
    fn close_all(&mut self, calls: &mut ToolCalls, out: &mut Vec<u8>) {
        self.close_open(out);
        for slot in 0..calls.slots.len() {
            let t = &calls.slots[slot];
            let announced = self.calls.get(slot).is_some_and(Option::is_some);
            let empty = t.name.is_none() && t.args.is_empty();
            if !(t.closed || announced || empty) {
                self.add_tool(calls, slot, out);
            }
        }
        for (slot, t) in calls.slots.iter_mut().enumerate() {
            if std::mem::replace(&mut t.closed, true) {
                continue;
            }
            let Some(at) = self.calls.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            let name = t.name.clone().unwrap_or_default();
            self.seq.begin(out, "function_call_arguments.done");
            out.extend_from_slice(&at.head);
            out.extend_from_slice(b",\"arguments\":");
            put_str(out, &t.args);
            out.extend_from_slice(b",\"name\":");
            put_str(out, &name);
            Seq::end(out);
            let item = OutItem::Call {
                id: at.id,
                call_id: t.id.clone().unwrap_or_default(),
                name,
                arguments: t.args.clone(),
                status: "completed",
            };
            self.item_done(at.index, item, out);
        }
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            None => {}
            Some(Open::Message(at, mut msg)) => {
                self.seq.close_part(out, &at, &mut msg);
                let item = OutItem::Message {
                    id: at.id,
                    status: "completed",
                    parts: msg.parts,
                };
                self.item_done(at.index, item, out);
            }
            Some(Open::Reasoning(at, text)) => {
                let si = b",\"summary_index\":";
                self.seq
                    .begin_at(out, "reasoning_summary_text.done", &at, si, 0);
                out.extend_from_slice(b",\"text\":");
                put_str(out, &text);
                Seq::end(out);
                self.seq
                    .begin_at(out, "reasoning_summary_part.done", &at, si, 0);
                out.extend_from_slice(b",\"part\":{\"type\":\"summary_text\",\"text\":");
                put_str(out, &text);
                out.push(b'}');
                Seq::end(out);
                let item = OutItem::Reasoning {
                    id: at.id,
                    text: Some(text),
                };
                self.item_done(at.index, item, out);
            }
        }
    }

    fn item_done(&mut self, index: usize, item: OutItem, out: &mut Vec<u8>) {
        self.seq.begin(out, "output_item.done");
        out.extend_from_slice(b",\"output_index\":");
        put_u64(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        put_item(out, &item);
        Seq::end(out);
        if let Some(slot) = self.output.get_mut(index) {
            *slot = item;
        }
    }
}
