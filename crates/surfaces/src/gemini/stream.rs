//! Streaming: the chat-completion chunks turned into `GenerateContentResponse` chunks, as SSE events (`alt=sse`) or
//! as the elements of one JSON array.

use super::answer::*;
use super::*;

#[derive(Debug, Default)]
struct StreamCall {
    chat_index: Option<u64>,
    id: Option<String>,
    name: Option<String>,
    args: String,
}

/// Turns the relay's chat-completion stream into Gemini stream chunks.
#[derive(Debug)]
pub struct GeminiStreamEncoder {
    ctx: GeminiContext,
    input_estimate: u64,
    sse: bool,
    started: bool,
    ended: bool,
    /// Chunks written (the array form separates them with commas).
    chunks: u32,
    /// Parts in the chunk being written; `None` outside a chunk.
    parts: Option<u32>,
    think: ThinkSplit,
    calls: Vec<StreamCall>,
    finish_reason: Option<String>,
    usage: Option<(u64, u64, u64)>,
    output_bytes: u64,
}

impl GeminiStreamEncoder {
    /// `sse`: server-sent events (`alt=sse`); otherwise a JSON array.
    pub fn new(ctx: GeminiContext, input_tokens_estimate: u64, sse: bool) -> Self {
        Self {
            ctx,
            input_estimate: input_tokens_estimate,
            sse,
            started: false,
            ended: false,
            chunks: 0,
            parts: None,
            think: ThinkSplit::default(),
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
            output_bytes: 0,
        }
    }

    /// The `Content-Type` of what this encoder writes.
    pub fn content_type(&self) -> &'static str {
        if self.sse {
            "text/event-stream"
        } else {
            "application/json"
        }
    }

    /// Opens the array (array form); once.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if !self.sse {
            out.push(b'[');
        }
    }

    fn begin_frame(&mut self, out: &mut Vec<u8>) {
        if self.sse {
            put(out, "data: ");
        } else if self.chunks > 0 {
            put(out, ",\r\n");
        }
        self.chunks += 1;
    }

    fn end_frame(&self, out: &mut Vec<u8>) {
        if self.sse {
            put(out, "\r\n\r\n");
        }
    }

    /// Writes one part into the chunk being written, opening it first if needed.
    fn part(&mut self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
        match &mut self.parts {
            Some(n) => {
                out.push(b',');
                *n += 1;
            }
            None => {
                self.begin_frame(out);
                open_candidate(out);
                self.parts = Some(1);
            }
        }
        write(out);
    }

    fn piece(&mut self, piece: Piece, s: &str, out: &mut Vec<u8>) {
        self.output_bytes += s.len() as u64;
        match piece {
            Piece::Text => self.part(out, |out| write_text_part(out, s, false)),
            Piece::Thinking if self.ctx.include_thoughts => {
                self.part(out, |out| write_text_part(out, s, true))
            }
            Piece::Thinking => {}
        }
    }

    /// Ends the chunk being written, if any (no finish reason: more follows).
    fn flush_chunk(&mut self, out: &mut Vec<u8>) {
        if self.parts.take().is_some() {
            close_candidate(out, &self.ctx, None, None);
            self.end_frame(out);
        }
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
            self.flush_chunk(out);
            let status = match v.error.kind.as_str().unwrap_or_default() {
                "rate_limit_error" => 429,
                "service_unavailable" | "provider_error" => 503,
                _ => 500,
            };
            self.begin_frame(out);
            write_error(
                out,
                status,
                v.error.message.as_str().unwrap_or("upstream error"),
            );
            self.end_frame(out);
            if !self.sse {
                out.push(b']');
            }
            self.ended = true;
            return;
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
                self.piece(Piece::Thinking, r, out);
            }
            if let Some(c) = d.content.text() {
                if self.think.is_plain() {
                    self.piece(Piece::Text, c, out);
                } else {
                    let mut think = std::mem::take(&mut self.think);
                    think.push(c, &mut |piece, s| self.piece(piece, s, out));
                    self.think = think;
                }
            }
            if let Some(r) = d.refusal.text() {
                self.piece(Piece::Text, r, out);
            }
            for call in &d.tool_calls.0 {
                self.call_delta(call);
            }
            if let Some(reason) = choice.finish_reason.as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
        self.flush_chunk(out);
    }

    /// Accumulates a streamed tool call: by `index` unless it carries another `id` (some providers number every
    /// call 0); without `index`, by `id`, else the latest call.
    fn call_delta(&mut self, call: &Call) {
        let index = call.index.as_u64();
        let id = call.id.text();
        let found = match index {
            Some(ix) => self
                .calls
                .iter()
                .rposition(|t| t.chat_index == Some(ix))
                .filter(|&s| match (id, &self.calls[s].id) {
                    (Some(new), Some(old)) => new == old,
                    _ => true,
                }),
            None => match id {
                Some(id) => self.calls.iter().rposition(|t| t.id.as_deref() == Some(id)),
                None => self.calls.len().checked_sub(1),
            },
        };
        let slot = found.unwrap_or_else(|| {
            self.calls.push(StreamCall {
                chat_index: index,
                ..StreamCall::default()
            });
            self.calls.len() - 1
        });
        let t = &mut self.calls[slot];
        if t.id.is_none() {
            t.id = id.map(str::to_string);
        }
        if t.name.is_none() {
            t.name = call.function.name.text().map(str::to_string);
        }
        let args = call.function.arguments.text();
        // Some providers re-send the whole arguments at the end.
        let repeat = !t.args.is_empty()
            && args == t.args
            && serde_json::from_str::<serde::de::IgnoredAny>(&t.args).is_ok();
        if !repeat {
            t.args.push_str(args);
            self.output_bytes += args.len() as u64;
        }
    }

    /// Sends what is held back, the function calls, the finish reason and usage; once, and not after an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        let mut think = std::mem::take(&mut self.think);
        think.finish(&mut |piece, s| self.piece(piece, s, out));
        self.think = think;
        self.flush_chunk(out);
        let calls = std::mem::take(&mut self.calls);
        for c in calls.iter().filter(|c| c.name.is_some()) {
            self.part(out, |out| {
                write_call_part(
                    out,
                    c.id.as_deref().unwrap_or_default(),
                    c.name.as_deref().unwrap_or_default(),
                    &c.args,
                )
            });
        }
        if self.parts.is_none() {
            self.part(out, |out| write_text_part(out, "", false));
        }
        self.parts = None;
        let usage = self
            .usage
            .unwrap_or((self.input_estimate, self.output_bytes.div_ceil(4), 0));
        close_candidate(
            out,
            &self.ctx,
            Some(finish_reason(self.finish_reason.as_deref())),
            Some(usage),
        );
        self.end_frame(out);
        if !self.sse {
            out.push(b']');
        }
        self.ended = true;
    }
}
