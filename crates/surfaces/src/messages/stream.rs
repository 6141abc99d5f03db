//! Streaming: the chat-completion chunks turned into the Messages event sequence.

use super::*;

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
    /// Block index and the slot in `tools`.
    Tool(u32, usize),
}

#[derive(Debug, Default)]
pub(super) struct StreamTool {
    pub(super) chat_index: Option<u64>,
    pub(super) id: Option<String>,
    pub(super) name: Option<String>,
    /// Arguments: buffered until the block starts, then those sent.
    pub(super) args: String,
    pub(super) started: bool,
    pub(super) closed: bool,
}

/// Turns the relay's chat-completion stream into Messages stream events.
#[derive(Debug)]
pub struct MessagesStreamEncoder {
    ctx: MessageContext,
    input_estimate: u64,
    started: bool,
    ended: bool,
    next_index: u32,
    open: Open,
    think: ThinkSplit,
    tools: Vec<StreamTool>,
    finish_reason: Option<String>,
    usage: Option<wire::Usage>,
    cached: u64,
    output_bytes: u64,
}

impl MessagesStreamEncoder {
    pub fn new(ctx: MessageContext, input_tokens_estimate: u64) -> Self {
        Self {
            ctx,
            input_estimate: input_tokens_estimate,
            started: false,
            ended: false,
            next_index: 0,
            open: Open::None,
            think: ThinkSplit::default(),
            tools: Vec::new(),
            finish_reason: None,
            usage: None,
            cached: 0,
            output_bytes: 0,
        }
    }

    /// `message_start` and a `ping`; once.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        event_start(out, "message_start");
        put(out, r#"{"message":{"content":[],"id":"#);
        esc(out, &self.ctx.message_id);
        put(out, r#","model":"#);
        esc(out, &self.ctx.model);
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
        let data = event.trim_ascii();
        if data == b"[DONE]" {
            self.finish(out);
            return;
        }
        let Ok(v) = from_json::<Chunk>(data) else {
            return;
        };
        if v.error.is_obj {
            let kind = match v.error.kind.as_str().unwrap_or_default() {
                "rate_limit_error" | "service_unavailable" | "provider_error" => "overloaded_error",
                _ => "api_error",
            };
            let message = v.error.message.as_str().unwrap_or("upstream error");
            event_start(out, "error");
            write_error(out, kind, message);
            event_end(out);
            self.ended = true;
            return;
        }
        if v.usage.is_obj {
            let (prompt, completion, cached) = usage_of(&v.usage);
            self.usage = Some(wire::Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
            });
            self.cached = cached;
        }
        for choice in v
            .choices
            .0
            .iter()
            .filter(|c| c.index.as_u64().unwrap_or(0) == 0)
        {
            self.delta(&choice.delta, out);
            if let Some(reason) = choice.finish_reason.as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
    }

    pub(super) fn delta(&mut self, d: &Delta, out: &mut Vec<u8>) {
        if let Some(r) = d.reasoning_content.text().or(d.reasoning.text()) {
            self.thinking(r, out);
        }
        if let Some(c) = d.content.text() {
            self.content(c, out);
        }
        if let Some(r) = d.refusal.text() {
            self.text(r, out);
        }
        for call in &d.tool_calls.0 {
            self.tool_delta(call, out);
        }
    }

    pub(super) fn content(&mut self, c: &str, out: &mut Vec<u8>) {
        if self.think.is_plain() {
            // The common case, without moving state around.
            if !c.is_empty() {
                self.text(c, out);
            }
            return;
        }
        let mut think = std::mem::take(&mut self.think);
        think.push(c, &mut |piece, s| self.piece(piece, s, out));
        self.think = think;
    }

    fn piece(&mut self, piece: Piece, s: &str, out: &mut Vec<u8>) {
        match piece {
            Piece::Thinking => self.thinking(s, out),
            Piece::Text => self.text(s, out),
        }
    }

    /// Closes the open block and numbers the next.
    pub(super) fn begin_block(&mut self, out: &mut Vec<u8>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    pub(super) fn thinking(&mut self, s: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::Thinking(i) => i,
            _ => {
                let i = self.begin_block(out);
                block_start_event(out, i, |out| {
                    put(out, r#"{"signature":"","thinking":"","type":"thinking"}"#)
                });
                self.open = Open::Thinking(i);
                i
            }
        };
        self.output_bytes += s.len() as u64;
        delta_event(out, index, "thinking_delta", "thinking", s);
    }

    pub(super) fn text(&mut self, s: &str, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::Text(i) => i,
            _ => {
                let i = self.begin_block(out);
                block_start_event(out, i, |out| put(out, r#"{"text":"","type":"text"}"#));
                self.open = Open::Text(i);
                i
            }
        };
        self.output_bytes += s.len() as u64;
        delta_event(out, index, "text_delta", "text", s);
    }

    /// The slot of the tool call a delta belongs to: by `index`, unless it carries a different `id` (some
    /// providers number every call 0); without `index`, by `id`, else the latest call.
    pub(super) fn slot_for(&mut self, index: Option<u64>, id: Option<&str>) -> usize {
        let found = match index {
            Some(ix) => self
                .tools
                .iter()
                .rposition(|t| t.chat_index == Some(ix))
                .filter(|&s| match (id, &self.tools[s].id) {
                    (Some(new), Some(old)) => new == old,
                    _ => true,
                }),
            None => match id {
                Some(id) => self.tools.iter().rposition(|t| t.id.as_deref() == Some(id)),
                None => self.tools.len().checked_sub(1),
            },
        };
        found.unwrap_or_else(|| {
            self.tools.push(StreamTool {
                chat_index: index,
                ..StreamTool::default()
            });
            self.tools.len() - 1
        })
    }

    pub(super) fn tool_delta(&mut self, call: &Call, out: &mut Vec<u8>) {
        let id = call.id.text();
        let name = call.function.name.text();
        let args = call.function.arguments.text();
        let slot = self.slot_for(call.index.as_u64(), id);
        let t = &mut self.tools[slot];
        if t.closed {
            return;
        }
        if t.id.is_none() {
            t.id = id.map(str::to_string);
        }
        if t.name.is_none() {
            t.name = name.map(str::to_string);
        }
        let repeat = !t.args.is_empty()
            && args == t.args
            && serde_json::from_str::<IgnoredAny>(&t.args).is_ok();
        if args.is_empty() || repeat {
            if !t.started && t.name.is_some() && t.id.is_some() {
                self.start_tool(slot, out);
            }
            return;
        }
        t.args.push_str(args);
        if t.started {
            if let Open::Tool(index, open) = self.open {
                if open != slot {
                    return;
                }
                self.output_bytes += args.len() as u64;
                delta_event(out, index, "input_json_delta", "partial_json", args);
            }
        } else if t.name.is_some() {
            self.start_tool(slot, out);
        }
    }

    /// Opens the block of a named tool call, sending the arguments buffered so far.
    pub(super) fn start_tool(&mut self, slot: usize, out: &mut Vec<u8>) {
        let index = self.begin_block(out);
        let Some(t) = self.tools.get_mut(slot) else {
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
            self.output_bytes += t.args.len() as u64;
            delta_event(out, index, "input_json_delta", "partial_json", &t.args);
        }
    }

    pub(super) fn close(&mut self, out: &mut Vec<u8>) {
        let index = match self.open {
            Open::None => return,
            Open::Thinking(i) => {
                delta_event(out, i, "signature_delta", "signature", "");
                i
            }
            Open::Text(i) => i,
            Open::Tool(i, slot) => {
                if let Some(t) = self.tools.get_mut(slot) {
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

    /// Closes the open block and ends the message (`message_delta`, `message_stop`); once, and not after an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        let mut think = std::mem::take(&mut self.think);
        think.finish(&mut |piece, s| self.piece(piece, s, out));
        self.think = think;
        for slot in 0..self.tools.len() {
            let t = &self.tools[slot];
            if !t.started && t.name.is_some() {
                self.start_tool(slot, out);
            }
        }
        self.close(out);
        let tool_calls = self.tools.iter().any(|t| t.started);
        let (input, output) = match self.usage {
            Some(u) => (
                u.prompt_tokens.saturating_sub(self.cached),
                u.completion_tokens,
            ),
            None => (self.input_estimate, self.output_bytes.div_ceil(4)),
        };
        event_start(out, "message_delta");
        put(out, r#"{"delta":{"stop_reason":"#);
        esc(out, stop_reason(self.finish_reason.as_deref(), tool_calls));
        put(out, r#","stop_sequence":null},"type":"message_delta","#);
        write_usage(out, input, output, self.cached);
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
        self.usage
    }
}
