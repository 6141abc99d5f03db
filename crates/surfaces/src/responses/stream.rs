//! Streaming: the chat-completion chunks turned into the Responses event sequence.

use serde_json::Value;

use super::*;

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

/// An open function_call item, keyed by the chat tool-call index. `added` is set once
/// `response.output_item.added` went out — which waits for the name, since some upstreams send it after the id.
pub(super) struct ToolSlot {
    pub(super) chat_index: u64,
    pub(super) call_id: Option<String>,
    pub(super) name: String,
    pub(super) args: String,
    pub(super) added: Option<Place>,
}

/// Where the content stream stands with respect to a leading `<think>` block.
pub(super) enum Think {
    /// Start of content: buffered until it is clear whether it opens with `<think>`.
    Detect(String),
    /// Inside the block; holds a possible partial `</think>` held back from the reasoning.
    Inside(String),
    /// Just after `</think>`: leading whitespace is dropped.
    After,
    Off,
}

/// Numbers and frames SSE events; `kind` is the event type without its `response.` prefix. An event is
/// `begin`, its members (each starting with a comma), then `end`.
pub(super) struct Sink {
    pub(super) seq: u64,
}

impl Sink {
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
        Sink::end(out);
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
        Sink::end(out);
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
    ctx: ResponseContext,
    sink: Sink,
    started: bool,
    ended: bool,
    /// Items by output_index: the in-progress snapshot until the item is done, then the finished item.
    output: Vec<OutItem>,
    open: Option<Open>,
    tools: Vec<ToolSlot>,
    /// (chat index, call id) of the function calls already closed.
    closed_tools: Vec<(u64, Option<String>)>,
    next_anon_index: u64,
    think: Think,
    finish_reason: Option<String>,
    usage: Option<Tokens>,
    model: Option<String>,
    produced: bool,
}

impl ResponsesStreamEncoder {
    pub fn new(ctx: ResponseContext) -> Self {
        Self {
            ctx,
            sink: Sink { seq: 0 },
            started: false,
            ended: false,
            output: Vec::new(),
            open: None,
            tools: Vec::new(),
            closed_tools: Vec::new(),
            next_anon_index: 1 << 32,
            think: Think::Detect(String::new()),
            finish_reason: None,
            usage: None,
            model: None,
            produced: false,
        }
    }

    /// Emits `response.created` and `response.in_progress` (once).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            out.reserve(2 * (self.ctx.echo.len() + 400));
            self.sink.begin(out, "created");
            out.extend_from_slice(b",\"response\":");
            let from = out.len();
            self.put_snapshot(out, &End::InProgress);
            let to = out.len();
            Sink::end(out);
            self.sink.begin(out, "in_progress");
            out.extend_from_slice(b",\"response\":");
            out.extend_from_within(from..to);
            Sink::end(out);
        }
    }

    /// One chat SSE payload: a `chat.completion.chunk`, `[DONE]`, or the gateway's terminal `{"error":…}`.
    pub fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        if event.trim_ascii() == b"[DONE]" {
            return self.finalize(true, out);
        }
        let Ok(Ok(c)) = std::str::from_utf8(event).map(parse_top::<Chunk>) else {
            return;
        };
        if let Some(e) = c.error.present() {
            return self.fail_with(&value_of(e), out);
        }
        if self.model.is_none() {
            self.model = c.model.get().filter(|m| !m.is_empty()).map(Into::into);
        }
        if let Some(u) = &c.usage.0 {
            self.usage = Some(tokens(u));
        }
        let Some(choice) = c.choices.0 else {
            return;
        };
        let Some(choice) = choice.0 else {
            return;
        };
        if let Some(d) = choice.delta.0 {
            let reasoning = d.reasoning_content.get().filter(|s| !s.is_empty());
            if let Some(r) = reasoning.or_else(|| d.reasoning.get()) {
                self.reasoning(r, out);
            }
            if let Some(s) = d.content.get() {
                self.content(s, out);
            }
            if let Some(s) = d.refusal.get() {
                self.message_delta(PartKind::Refusal, s, out);
            }
            for tc in d.tool_calls.0.into_iter().flatten() {
                self.tool_delta(tc.0.unwrap_or_default(), out);
            }
        }
        if let Some(f) = choice.finish_reason.get() {
            self.finish_reason = Some(f.to_string());
        }
    }

    /// The upstream ended: closes open items and emits the terminal event, unless one went out already.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.finalize(false, out);
    }

    pub fn usage(&self) -> Option<wire::Usage> {
        let u = self.usage.as_ref()?;
        Some(wire::Usage {
            prompt_tokens: u.input,
            completion_tokens: u.output,
        })
    }

    pub(super) fn put_snapshot(&self, out: &mut Vec<u8>, end: &End) {
        let model = self.model.as_deref().unwrap_or(&self.ctx.model);
        put_response(
            out,
            &self.ctx,
            end,
            model,
            &self.output,
            self.usage.as_ref(),
        );
    }

    /// A terminal event carrying the response.
    pub(super) fn emit_response(&mut self, out: &mut Vec<u8>, kind: &str, end: &End) {
        self.sink.begin(out, kind);
        out.extend_from_slice(b",\"response\":");
        self.put_snapshot(out, end);
        Sink::end(out);
        self.ended = true;
    }

    pub(super) fn finalize(&mut self, saw_done: bool, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.flush_detect(out);
        if let Think::Inside(held) = std::mem::replace(&mut self.think, Think::Off) {
            self.reasoning(&held, out);
        }
        self.close_all(out);
        if self.finish_reason.is_none() && !saw_done && !self.produced {
            // A stream that ended without [DONE], finish_reason or a single piece of output is no answer.
            let message = "the upstream stream ended without a response";
            return self.fail(out, "server_error", message);
        }
        let end = end_state(self.finish_reason.as_deref());
        let kind = if matches!(end, End::Completed) {
            "completed"
        } else {
            "incomplete"
        };
        self.emit_response(out, kind, &end);
    }

    /// Terminal failure from the gateway's `{"error":…}` event.
    pub(super) fn fail_with(&mut self, e: &Value, out: &mut Vec<u8>) {
        let str_of = |k: &str| e.get(k).and_then(Value::as_str);
        let code = str_of("code").or_else(|| str_of("type"));
        let message = str_of("message").map_or_else(|| e.to_string(), Into::into);
        self.fail(out, code.unwrap_or("server_error"), &message);
    }

    /// Terminal failure: open items stay as they are; `response.failed` carries the error.
    pub(super) fn fail(&mut self, out: &mut Vec<u8>, code: &str, message: &str) {
        self.emit_response(out, "failed", &End::Failed { code, message });
    }

    /// Ends `<think>` detection: buffered content goes out as text, unless it is only whitespace.
    pub(super) fn flush_detect(&mut self, out: &mut Vec<u8>) {
        if let Think::Detect(buf) = &mut self.think {
            let buf = std::mem::take(buf);
            self.think = Think::Off;
            if !buf.trim().is_empty() {
                self.message_delta(PartKind::Text, &buf, out);
            }
        }
    }

    /// Content, minding a leading `<think>` block that may be split across chunks.
    pub(super) fn content(&mut self, s: &str, out: &mut Vec<u8>) {
        if let Think::Off = self.think {
            return self.message_delta(PartKind::Text, s, out);
        }
        match std::mem::replace(&mut self.think, Think::Off) {
            Think::Off => self.message_delta(PartKind::Text, s, out),
            Think::Detect(mut buf) => {
                buf.push_str(s);
                let t = buf.trim_start();
                if let Some(rest) = t.strip_prefix(THINK_OPEN) {
                    let rest = rest.to_string();
                    self.think = Think::Inside(String::new());
                    self.content(&rest, out);
                } else if THINK_OPEN.starts_with(t) {
                    self.think = Think::Detect(buf);
                } else {
                    self.message_delta(PartKind::Text, &buf, out);
                }
            }
            Think::Inside(mut buf) => {
                buf.push_str(s);
                if let Some(end) = buf.find(THINK_CLOSE) {
                    self.reasoning(&buf[..end], out);
                    self.think = Think::After;
                    self.content(&buf[end + THINK_CLOSE.len()..], out);
                } else {
                    // Hold back a tail that may be the start of `</think>`.
                    let tag = |k: &usize| buf.ends_with(&THINK_CLOSE[..*k]);
                    let split = buf.len() - (1..THINK_CLOSE.len()).rev().find(tag).unwrap_or(0);
                    self.reasoning(&buf[..split], out);
                    self.think = Think::Inside(buf[split..].to_string());
                }
            }
            Think::After => match s.trim_start() {
                "" => self.think = Think::After,
                t => self.message_delta(PartKind::Text, t, out),
            },
        }
    }

    /// Appends an in-progress item to the output and announces it.
    pub(super) fn add_item(
        &mut self,
        out: &mut Vec<u8>,
        prefix: &str,
        item: impl FnOnce(String) -> OutItem,
    ) -> Place {
        let index = self.output.len();
        let id = item_id(&self.ctx, prefix, index);
        let item = item(id.clone());
        self.sink.begin(out, "output_item.added");
        out.extend_from_slice(b",\"output_index\":");
        put_u64(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        put_item(out, &item);
        Sink::end(out);
        self.output.push(item);
        self.produced = true;
        Place::new(index, id)
    }

    pub(super) fn reasoning(&mut self, s: &str, out: &mut Vec<u8>) {
        if s.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Open::Reasoning(..))) {
            self.close_all(out);
            let at = self.add_item(out, "rs", |id| OutItem::Reasoning { id, text: None });
            self.sink.begin_at(
                out,
                "reasoning_summary_part.added",
                &at,
                b",\"summary_index\":",
                0,
            );
            out.extend_from_slice(b",\"part\":{\"type\":\"summary_text\",\"text\":\"\"}");
            Sink::end(out);
            self.open = Some(Open::Reasoning(at, String::new()));
        }
        if let Some(Open::Reasoning(at, text)) = &mut self.open {
            text.push_str(s);
            self.sink.begin_at(
                out,
                "reasoning_summary_text.delta",
                at,
                b",\"summary_index\":",
                0,
            );
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
            Sink::end(out);
        }
    }

    pub(super) fn message_delta(&mut self, kind: PartKind, s: &str, out: &mut Vec<u8>) {
        if s.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Open::Message(..))) {
            self.close_all(out);
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
            self.sink.close_part(out, at, msg);
            let ci = msg.parts.len();
            self.sink
                .begin_at(out, "content_part.added", at, b",\"content_index\":", ci);
            out.extend_from_slice(match kind {
                PartKind::Text => {
                    b",\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}"
                }
                PartKind::Refusal => b",\"part\":{\"type\":\"refusal\",\"refusal\":\"\"}",
            });
            Sink::end(out);
            msg.cur = Some(kind);
        }
        msg.buf.push_str(s);
        let ci = msg.parts.len();
        if kind == PartKind::Text {
            self.sink
                .begin_at(out, "output_text.delta", at, b",\"content_index\":", ci);
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
            out.extend_from_slice(b",\"logprobs\":[]");
        } else {
            self.sink
                .begin_at(out, "refusal.delta", at, b",\"content_index\":", ci);
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
        }
        Sink::end(out);
    }

    pub(super) fn args_delta(sink: &mut Sink, out: &mut Vec<u8>, at: &Place, args: &str) {
        sink.begin(out, "function_call_arguments.delta");
        out.extend_from_slice(&at.head);
        out.extend_from_slice(b",\"delta\":");
        put_str(out, args);
        Sink::end(out);
    }

    pub(super) fn tool_delta(&mut self, tc: CallView, out: &mut Vec<u8>) {
        let id = tc.id.get().filter(|s| !s.is_empty());
        let f = tc.function.0.unwrap_or_default();
        let name = f.name.get().filter(|s| !s.is_empty());
        let args = args_of(&f.arguments);
        let chat_index = match (tc.index.0, id) {
            (Some(i), _) => i,
            (None, Some(id)) if !self.tools.iter().any(|t| t.call_id.as_deref() == Some(id)) => {
                self.next_anon_index += 1;
                self.next_anon_index
            }
            (None, _) => self.tools.last().map_or(0, |t| t.chat_index),
        };
        // A different id on a known index is a new call (some upstreams send every call with index 0).
        let same_call =
            |i: u64, c: Option<&str>| i == chat_index && (id.is_none() || c.is_none() || c == id);
        let pos = match self
            .tools
            .iter()
            .rposition(|t| same_call(t.chat_index, t.call_id.as_deref()))
        {
            Some(pos) => pos,
            None => {
                let late = self
                    .closed_tools
                    .iter()
                    .any(|(i, c)| same_call(*i, c.as_deref()));
                if late || (id.is_none() && name.is_none() && args.is_empty()) {
                    return;
                }
                self.flush_detect(out);
                self.close_open(out);
                let (call_id, name, args) = (None, String::new(), String::new());
                self.tools.push(ToolSlot {
                    chat_index,
                    call_id,
                    name,
                    args,
                    added: None,
                });
                self.tools.len() - 1
            }
        };
        let Some(slot) = self.tools.get_mut(pos) else {
            return;
        };
        if slot.call_id.is_none() {
            slot.call_id = id.map(Into::into);
        }
        if let (true, Some(n)) = (slot.name.is_empty(), name) {
            slot.name = n.to_string();
        }
        // Some upstreams repeat the complete arguments in a final chunk: a delta equal to everything accumulated so
        // far, when that already is a complete JSON value, is such a repeat and is skipped.
        let complete = || serde_json::from_str::<IgnoredAny>(&slot.args).is_ok();
        if !slot.args.is_empty() && *args == *slot.args && complete() {
            return;
        }
        slot.args.push_str(&args);
        match &slot.added {
            None if !slot.name.is_empty() => self.add_tool(pos, out),
            Some(at) if !args.is_empty() => Self::args_delta(&mut self.sink, out, at, &args),
            _ => {}
        }
    }

    /// Emits `output_item.added` for a tool slot, followed by the arguments buffered until then.
    pub(super) fn add_tool(&mut self, pos: usize, out: &mut Vec<u8>) {
        let Some(slot) = self.tools.get(pos) else {
            return;
        };
        let call = slot
            .call_id
            .clone()
            .unwrap_or_else(|| item_id(&self.ctx, "call", self.output.len()));
        let (name, args) = (slot.name.clone(), slot.args.clone());
        let call_id = call.clone();
        let at = self.add_item(out, "fc", |id| OutItem::Call {
            id,
            call_id,
            name,
            arguments: String::new(),
            status: "in_progress",
        });
        if !args.is_empty() {
            Self::args_delta(&mut self.sink, out, &at, &args);
        }
        if let Some(slot) = self.tools.get_mut(pos) {
            (slot.call_id, slot.added) = (Some(call), Some(at));
        }
    }

    pub(super) fn close_all(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        for pos in 0..self.tools.len() {
            let unannounced =
                |s: &ToolSlot| s.added.is_none() && !(s.name.is_empty() && s.args.is_empty());
            if self.tools.get(pos).is_some_and(unannounced) {
                self.add_tool(pos, out);
            }
        }
        for slot in std::mem::take(&mut self.tools) {
            self.closed_tools
                .push((slot.chat_index, slot.call_id.clone()));
            let Some(at) = slot.added else {
                continue;
            };
            self.sink.begin(out, "function_call_arguments.done");
            out.extend_from_slice(&at.head);
            out.extend_from_slice(b",\"arguments\":");
            put_str(out, &slot.args);
            out.extend_from_slice(b",\"name\":");
            put_str(out, &slot.name);
            Sink::end(out);
            let item = OutItem::Call {
                id: at.id,
                call_id: slot.call_id.unwrap_or_default(),
                name: slot.name,
                arguments: slot.args,
                status: "completed",
            };
            self.item_done(at.index, item, out);
        }
    }

    pub(super) fn close_open(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            None => {}
            Some(Open::Message(at, mut msg)) => {
                self.sink.close_part(out, &at, &mut msg);
                let item = OutItem::Message {
                    id: at.id,
                    status: "completed",
                    parts: msg.parts,
                };
                self.item_done(at.index, item, out);
            }
            Some(Open::Reasoning(at, text)) => {
                let si = b",\"summary_index\":";
                self.sink
                    .begin_at(out, "reasoning_summary_text.done", &at, si, 0);
                out.extend_from_slice(b",\"text\":");
                put_str(out, &text);
                Sink::end(out);
                self.sink
                    .begin_at(out, "reasoning_summary_part.done", &at, si, 0);
                out.extend_from_slice(b",\"part\":{\"type\":\"summary_text\",\"text\":");
                put_str(out, &text);
                out.push(b'}');
                Sink::end(out);
                let item = OutItem::Reasoning {
                    id: at.id,
                    text: Some(text),
                };
                self.item_done(at.index, item, out);
            }
        }
    }

    pub(super) fn item_done(&mut self, index: usize, item: OutItem, out: &mut Vec<u8>) {
        self.sink.begin(out, "output_item.done");
        out.extend_from_slice(b",\"output_index\":");
        put_u64(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        put_item(out, &item);
        Sink::end(out);
        if let Some(slot) = self.output.get_mut(index) {
            *slot = item;
        }
    }
}
