//! Streaming: the chat-completion chunks turned into the Messages event sequence.

use super::*;
use crate::chunks::{ChatStream, Sink, Step, ToolCalls, ToolDelta};

// ---------------------------------------------------------------------------------------------------------------
// Stream events, written straight into the output.

pub(super) fn event_start(out: &mut Vec<u8>, event: &str) {
    put(out, "event: ");
    put(out, event);
    put(out, "\ndata: ");
}

pub(super) fn event_end(out: &mut Vec<u8>) {
    put(out, "\n\n");
}

/// `content_block_delta` whose delta is `{"<field>": s, "type": kind}`.
pub(super) fn delta_event(out: &mut Vec<u8>, index: u32, kind: &str, field: &str, s: &str) {
    out.reserve(s.len() + 112);
    put(out, "event: content_block_delta\ndata: {\"delta\":{\"");
    put(out, field);
    put(out, "\":");
    esc(out, s);
    put(out, ",\"type\":\"");
    put(out, kind);
    put(out, "\"},\"index\":");
    num(out, u64::from(index));
    put(out, ",\"type\":\"content_block_delta\"}\n\n");
}

/// `content_block_start`, the block written by `block`.
pub(super) fn block_start_event(out: &mut Vec<u8>, index: u32, block: impl FnOnce(&mut Vec<u8>)) {
    event_start(out, "content_block_start");
    put(out, r#"{"content_block":"#);
    block(out);
    put(out, r#","index":"#);
    num(out, u64::from(index));
    put(out, r#","type":"content_block_start"}"#);
    event_end(out);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Open {
    None,
    Thinking(u32),
    Text(u32),
    /// Block index and the slot in the stream's tool calls.
    Tool(u32, usize),
}

/// The content blocks: the [`Sink`] side of the encoder.
#[derive(Debug)]
struct Blocks {
    ctx: MessageContext,
    next_index: u32,
    open: Open,
}

/// Turns the relay's chat-completion stream into Messages stream events.
#[derive(Debug)]
pub struct MessagesStreamEncoder {
    chat: ChatStream,
    blocks: Blocks,
    input_estimate: u64,
    started: bool,
    ended: bool,
}

impl MessagesStreamEncoder {
    pub fn new(ctx: MessageContext, input_tokens_estimate: u64) -> Self {
        Self {
            chat: ChatStream::default(),
            blocks: Blocks {
                ctx,
                next_index: 0,
                open: Open::None,
            },
            input_estimate: input_tokens_estimate,
            started: false,
            ended: false,
        }
    }

    /// `message_start` and a `ping`; once.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let ctx = &self.blocks.ctx;
        event_start(out, "message_start");
        put(out, r#"{"message":{"content":[],"id":"#);
        esc(out, &ctx.message_id);
        put(out, r#","model":"#);
        esc(out, &ctx.model);
        put(
            out,
            r#","role":"assistant","stop_reason":null,"stop_sequence":null,"type":"message","#,
        );
        write_usage(out, self.input_estimate, 0, 0);
        put(out, r#"},"type":"message_start"}"#);
        event_end(out);
        put(out, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }

    /// Feeds one chat SSE payload: a `chat.completion.chunk`, `[DONE]`, or the gateway's terminal `{"error":…}`.
    pub fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        match self.chat.read(event, &mut self.blocks, out) {
            Step::Chunk => {}
            Step::Done => self.finish(out),
            Step::Error(e) => {
                let kind = match e.kind.as_deref().unwrap_or_default() {
                    "rate_limit_error" | "service_unavailable" | "provider_error" => {
                        "overloaded_error"
                    }
                    _ => "api_error",
                };
                event_start(out, "error");
                write_error(out, kind, &e.message);
                event_end(out);
                self.ended = true;
            }
        }
    }

    /// Closes the open block and ends the message (`message_delta`, `message_stop`); once, and not after an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.chat.finish(&mut self.blocks, out);
        let calls = &mut self.chat.calls;
        for slot in 0..calls.slots.len() {
            let t = &calls.slots[slot];
            if !t.started && t.name.is_some() {
                self.blocks.start_tool(calls, slot, out);
            }
        }
        self.blocks.close(calls, out);
        let tool_calls = self.chat.any_tool_started();
        let (input, output, cached) = match self.chat.usage {
            Some(u) => (u.prompt.saturating_sub(u.cached), u.completion, u.cached),
            None => (self.input_estimate, self.chat.output_bytes.div_ceil(4), 0),
        };
        event_start(out, "message_delta");
        put(out, r#"{"delta":{"stop_reason":"#);
        esc(
            out,
            stop_reason(self.chat.finish_reason.as_deref(), tool_calls),
        );
        put(out, r#","stop_sequence":null},"type":"message_delta","#);
        write_usage(out, input, output, cached);
        out.push(b'}');
        event_end(out);
        put(
            out,
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        self.ended = true;
    }

    /// The upstream's reported usage, once a chunk carried it.
    pub fn usage(&self) -> Option<wire::Usage> {
        let u = self.chat.usage?;
        Some(wire::Usage {
            prompt_tokens: u.prompt,
            completion_tokens: u.completion,
        })
    }
}

impl Sink for Blocks {
    fn thinking(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::Thinking(i) => i,
            _ => {
                let i = self.begin_block(calls, out);
                block_start_event(out, i, |out| {
                    put(out, r#"{"signature":"","thinking":"","type":"thinking"}"#)
                });
                self.open = Open::Thinking(i);
                i
            }
        };
        delta_event(out, index, "thinking_delta", "thinking", s);
    }

    fn text(&mut self, calls: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::Text(i) => i,
            _ => {
                let i = self.begin_block(calls, out);
                block_start_event(out, i, |out| put(out, r#"{"text":"","type":"text"}"#));
                self.open = Open::Text(i);
                i
            }
        };
        delta_event(out, index, "text_delta", "text", s);
    }

    fn tool(&mut self, calls: &mut ToolCalls, d: ToolDelta, out: &mut Vec<u8>) {
        let t = &calls.slots[d.slot];
        if d.args.is_empty() {
            if !t.started && t.name.is_some() && t.id.is_some() {
                self.start_tool(calls, d.slot, out);
            }
        } else if t.started {
            if let Open::Tool(index, slot) = self.open {
                if slot == d.slot {
                    delta_event(out, index, "input_json_delta", "partial_json", d.args);
                }
            }
        } else if t.name.is_some() {
            self.start_tool(calls, d.slot, out);
        }
    }
}

impl Blocks {
    /// Closes the open block and numbers the next.
    fn begin_block(&mut self, calls: &mut ToolCalls, out: &mut Vec<u8>) -> u32 {
        self.close(calls, out);
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// Opens the block of a named tool call, sending the arguments buffered so far.
    fn start_tool(&mut self, calls: &mut ToolCalls, slot: usize, out: &mut Vec<u8>) {
        let index = self.begin_block(calls, out);
        let Some(t) = calls.slots.get_mut(slot) else {
            return;
        };
        let id = tool_id(t.id.as_deref(), &self.ctx, slot);
        let name = t.name.as_deref().unwrap_or_default();
        block_start_event(out, index, |out| {
            put(out, r#"{"id":"#);
            esc(out, &id);
            put(out, r#","input":{},"name":"#);
            esc(out, name);
            put(out, r#","type":"tool_use"}"#);
        });
        self.open = Open::Tool(index, slot);
        t.started = true;
        if !t.args.is_empty() {
            delta_event(out, index, "input_json_delta", "partial_json", &t.args);
        }
    }

    fn close(&mut self, calls: &mut ToolCalls, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::None => return,
            Open::Thinking(i) => {
                delta_event(out, i, "signature_delta", "signature", "");
                i
            }
            Open::Text(i) => i,
            Open::Tool(i, slot) => {
                if let Some(t) = calls.slots.get_mut(slot) {
                    t.closed = true;
                }
                i
            }
        };
        self.open = Open::None;
        put(out, "event: content_block_stop\ndata: {\"index\":");
        num(out, u64::from(index));
        put(out, ",\"type\":\"content_block_stop\"}\n\n");
    }
}
