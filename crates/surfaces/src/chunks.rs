//! The relay's chat stream read once for every surface. [`ChatStream`] parses each chat SSE payload, folds the
//! reasoning fields (`reasoning_content`, `reasoning`, a leading `<think>…</think>` split across chunks), merges
//! streamed tool calls (by index unless another id arrives on it, repeated whole arguments skipped) and keeps the
//! finish reason, usage and model. A surface's encoder only decides what to write: it implements [`Sink`] and is
//! told about thinking, text, refusals and tool-call changes in the order they came.

use serde::de::IgnoredAny;

use crate::chat::{usage_of, Call, Chunk, Piece, ThinkSplit, Usage};
use crate::json::from_json;

/// A streamed tool call, merged from its deltas.
#[derive(Debug, Default)]
pub(crate) struct ToolSlot {
    /// The chat `index` the deltas carried (none when the upstream sent none).
    pub(crate) chat_index: Option<u64>,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    /// Every argument fragment so far.
    pub(crate) args: String,
    /// Set by the surface once it announced the call.
    pub(crate) started: bool,
    /// Set by the surface once the call is over: later deltas for it are ignored.
    pub(crate) closed: bool,
}

/// The tool calls of a stream, in the order they appeared.
#[derive(Debug, Default)]
pub(crate) struct ToolCalls {
    pub(crate) slots: Vec<ToolSlot>,
}

impl ToolCalls {
    /// The slot a delta belongs to: by `index`, unless it carries a different `id` (some providers number every
    /// call 0); without `index`, by `id`, else the latest call.
    fn find(&self, index: Option<u64>, id: Option<&str>) -> Option<usize> {
        match index {
            Some(ix) => self
                .slots
                .iter()
                .rposition(|t| t.chat_index == Some(ix))
                .filter(|&s| match (id, &self.slots[s].id) {
                    (Some(new), Some(old)) => new == old,
                    _ => true,
                }),
            None => match id {
                Some(id) => self.slots.iter().rposition(|t| t.id.as_deref() == Some(id)),
                None => self.slots.len().checked_sub(1),
            },
        }
    }
}

/// What changed in a tool call.
pub(crate) struct ToolDelta<'s> {
    pub(crate) slot: usize,
    /// This delta opened the call.
    pub(crate) fresh: bool,
    /// The argument text it added (empty for none, or for a repeat of the whole arguments).
    pub(crate) args: &'s str,
}

/// A surface's side of the stream: writes its own events for what [`ChatStream`] read.
/// Every call gets the stream's tool calls, which content may close.
pub(crate) trait Sink {
    fn thinking(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>);
    fn text(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>);
    fn refusal(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        self.text(calls, s, out);
    }
    /// A tool call got a delta. A fresh call comes after all content before it (held-back text included).
    fn tool(&mut self, calls: &mut ToolCalls, delta: ToolDelta, out: &mut Vec<u8>);
}

/// The gateway's terminal `{"error":…}` event.
pub(crate) struct StreamError {
    pub(crate) kind: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) message: String,
}

/// What one payload was.
pub(crate) enum Step {
    /// A chunk (or something unreadable, which is skipped).
    Chunk,
    /// `[DONE]`.
    Done,
    Error(StreamError),
}

/// The chat stream's state that every surface needs.
#[derive(Debug, Default)]
pub(crate) struct ChatStream {
    think: ThinkSplit,
    pub(crate) calls: ToolCalls,
    pub(crate) finish_reason: Option<String>,
    /// The upstream's counts, once a chunk carried usage.
    pub(crate) usage: Option<Usage>,
    /// The first non-empty `model` a chunk named.
    pub(crate) model: Option<String>,
    /// Bytes of output text, reasoning and arguments (the estimate's base when no usage comes).
    pub(crate) output_bytes: u64,
    /// Some output (text, reasoning or a tool call) was read.
    pub(crate) produced: bool,
}

impl ChatStream {
    /// Reads one chat SSE payload, telling `sink` what it carried.
    pub(crate) fn read(&mut self, event: &[u8], sink: &mut impl Sink, out: &mut Vec<u8>) -> Step {
        let data = event.trim_ascii();
        if data == b"[DONE]" {
            return Step::Done;
        }
        let Ok(v) = from_json::<Chunk>(data) else {
            return Step::Chunk;
        };
        if v.error.is_obj {
            let own = |s: Option<&str>| s.map(str::to_string);
            return Step::Error(StreamError {
                kind: own(v.error.kind.as_str()),
                code: own(v.error.code.as_str()),
                message: v
                    .error
                    .message
                    .as_str()
                    .unwrap_or("upstream error")
                    .to_string(),
            });
        }
        if self.model.is_none() {
            self.model = v.model.text().map(str::to_string);
        }
        if v.usage.is_obj {
            self.usage = Some(usage_of(&v.usage));
        }
        for choice in v
            .choices
            .0
            .iter()
            .filter(|c| c.index.as_u64().unwrap_or(0) == 0)
        {
            let d = &choice.delta;
            if let Some(r) = d.reasoning_content.text().or(d.reasoning.text()) {
                self.piece(Piece::Thinking, r, sink, out);
            }
            if let Some(c) = d.content.text() {
                if self.think.is_plain() {
                    self.piece(Piece::Text, c, sink, out);
                } else {
                    let mut think = std::mem::take(&mut self.think);
                    think.push(c, &mut |piece, s| self.piece(piece, s, sink, out));
                    self.think = think;
                }
            }
            if let Some(r) = d.refusal.text() {
                self.output_bytes += r.len() as u64;
                self.produced = true;
                sink.refusal(&mut self.calls, r, out);
            }
            for call in &d.tool_calls.0 {
                self.tool_delta(call, sink, out);
            }
            if let Some(reason) = choice.finish_reason.as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
        Step::Chunk
    }

    /// The content ended (the stream, or a tool call began): what the `<think>` splitter held back goes out, unless
    /// it is only the whitespace some models send before a tool call.
    pub(crate) fn finish(&mut self, sink: &mut impl Sink, out: &mut Vec<u8>) {
        let mut think = std::mem::take(&mut self.think);
        think.finish(&mut |piece, s| {
            if piece == Piece::Thinking || !s.trim().is_empty() {
                self.piece(piece, s, sink, out)
            }
        });
        self.think = think;
    }

    /// Whether a tool call was announced by the surface.
    pub(crate) fn any_tool_started(&self) -> bool {
        self.calls.slots.iter().any(|t| t.started)
    }

    fn piece(&mut self, piece: Piece, s: &str, sink: &mut impl Sink, out: &mut Vec<u8>) {
        if s.is_empty() {
            return;
        }
        self.output_bytes += s.len() as u64;
        self.produced = true;
        match piece {
            Piece::Thinking => sink.thinking(&mut self.calls, s, out),
            Piece::Text => sink.text(&mut self.calls, s, out),
        }
    }

    fn tool_delta(&mut self, call: &Call, sink: &mut impl Sink, out: &mut Vec<u8>) {
        let index = call.index.as_u64();
        let id = call.id.text();
        let name = call.function.name.text();
        let args = call.function.arguments.text();
        let (slot, fresh) = match self.calls.find(index, id) {
            Some(slot) => (slot, false),
            // Nothing to open a call with.
            None if id.is_none() && name.is_none() && args.is_empty() => return,
            None => {
                // Content held back by the `<think>` splitter came before this call.
                self.finish(sink, out);
                self.calls.slots.push(ToolSlot {
                    chat_index: index,
                    ..ToolSlot::default()
                });
                (self.calls.slots.len() - 1, true)
            }
        };
        let t = &mut self.calls.slots[slot];
        if t.closed {
            return;
        }
        if t.id.is_none() {
            t.id = id.map(str::to_string);
        }
        if t.name.is_none() {
            t.name = name.map(str::to_string);
        }
        // Some providers repeat the complete arguments in a final chunk: a delta equal to everything so far, when
        // that already is a complete JSON value, is such a repeat.
        let repeat = !t.args.is_empty()
            && args == t.args
            && serde_json::from_str::<IgnoredAny>(&t.args).is_ok();
        let added = if repeat { "" } else { args };
        t.args.push_str(added);
        self.output_bytes += added.len() as u64;
        self.produced = true;
        let delta = ToolDelta {
            slot,
            fresh,
            args: added,
        };
        sink.tool(&mut self.calls, delta, out);
    }
}
