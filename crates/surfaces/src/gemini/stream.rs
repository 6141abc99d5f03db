//! Streaming: the chat-completion chunks turned into `GenerateContentResponse` chunks, as SSE events (`alt=sse`) or
//! as the elements of one JSON array.

use super::answer::*;
use super::*;
use crate::chunks::{ChatStream, Sink, Step, ToolCalls, ToolDelta};

/// The chunks being written: the [`Sink`] side of the encoder.
#[derive(Debug)]
struct Frames {
    ctx: GeminiContext,
    sse: bool,
    /// Chunks written (the array form separates them with commas).
    chunks: u32,
    /// Parts in the chunk being written; `None` outside a chunk.
    parts: Option<u32>,
}

/// Turns the relay's chat-completion stream into Gemini stream chunks.
#[derive(Debug)]
pub struct GeminiStreamEncoder {
    chat: ChatStream,
    frames: Frames,
    input_estimate: u64,
    started: bool,
    ended: bool,
}

impl GeminiStreamEncoder {
    /// `sse`: server-sent events (`alt=sse`); otherwise a JSON array.
    pub fn new(ctx: GeminiContext, input_tokens_estimate: u64, sse: bool) -> Self {
        Self {
            chat: ChatStream::default(),
            frames: Frames {
                ctx,
                sse,
                chunks: 0,
                parts: None,
            },
            input_estimate: input_tokens_estimate,
            started: false,
            ended: false,
        }
    }

    /// The `Content-Type` of what this encoder writes.
    pub fn content_type(&self) -> &'static str {
        if self.frames.sse {
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
        if !self.frames.sse {
            out.push(b'[');
        }
    }

    /// Feeds one chat SSE payload: a `chat.completion.chunk`, `[DONE]`, or the gateway's terminal `{"error":…}`.
    pub fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        match self.chat.read(event, &mut self.frames, out) {
            Step::Chunk => self.frames.flush_chunk(out),
            Step::Done => self.finish(out),
            Step::Error(e) => {
                let f = &mut self.frames;
                f.flush_chunk(out);
                let status = match e.kind.as_deref().unwrap_or_default() {
                    "rate_limit_error" => 429,
                    "service_unavailable" | "provider_error" => 503,
                    _ => 500,
                };
                f.begin_frame(out);
                write_error(out, status, &e.message);
                f.end_frame(out);
                if !f.sse {
                    out.push(b']');
                }
                self.ended = true;
            }
        }
    }

    /// Sends what is held back, the function calls, the finish reason and usage; once, and not after an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.chat.finish(&mut self.frames, out);
        let f = &mut self.frames;
        f.flush_chunk(out);
        for c in self.chat.calls.slots.iter().filter(|c| c.name.is_some()) {
            f.part(out, |out| {
                write_call_part(
                    out,
                    c.id.as_deref().unwrap_or_default(),
                    c.name.as_deref().unwrap_or_default(),
                    &c.args,
                )
            });
        }
        if f.parts.is_none() {
            f.part(out, |out| write_text_part(out, "", false));
        }
        f.parts = None;
        let usage = match self.chat.usage {
            Some(u) => (u.prompt, u.completion, u.cached),
            None => (self.input_estimate, self.chat.output_bytes.div_ceil(4), 0),
        };
        close_candidate(
            out,
            &f.ctx,
            Some(finish_reason(self.chat.finish_reason.as_deref())),
            Some(usage),
        );
        f.end_frame(out);
        if !f.sse {
            out.push(b']');
        }
        self.ended = true;
    }
}

impl Sink for Frames {
    fn thinking(&mut self, _: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        if self.ctx.include_thoughts {
            self.part(out, |out| write_text_part(out, s, true));
        }
    }

    fn text(&mut self, _: &mut ToolCalls, s: &str, out: &mut Vec<u8>) {
        self.part(out, |out| write_text_part(out, s, false));
    }

    /// Calls are sent whole, in the last chunk, as Gemini sends them.
    fn tool(&mut self, _: &mut ToolCalls, _: ToolDelta, _: &mut Vec<u8>) {}
}

impl Frames {
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

    /// Ends the chunk being written, if any (no finish reason: more follows).
    fn flush_chunk(&mut self, out: &mut Vec<u8>) {
        if self.parts.take().is_some() {
            close_candidate(out, &self.ctx, None, None);
            self.end_frame(out);
        }
    }
}
