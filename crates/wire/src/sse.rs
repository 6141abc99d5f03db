//! Server-Sent Events as OpenAI streams them: an incremental splitter that survives events cut across network chunks,
//! and an inspector that tells whether a `chat.completion.chunk` carries real output (content, a tool call or a
//! reasoning delta), finishes the choice, reports usage or is an in-band error.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Splits a byte stream into SSE event payloads (the joined `data:` lines of each event).
#[derive(Debug, Default)]
pub struct SseSplitter {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one network chunk; calls `on_event` for every event completed by it.
    pub fn push(&mut self, chunk: &[u8], mut on_event: impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(pos);
            rest = &tail[1..];
            if self.line.is_empty() {
                self.finish_line(head, &mut on_event);
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                self.finish_line(&line, &mut on_event);
            }
        }
        self.line.extend_from_slice(rest);
    }

    /// Flushes an event left open when the stream ends without its blank line.
    pub fn finish(&mut self, mut on_event: impl FnMut(&[u8])) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.finish_line(&line, &mut on_event);
        }
        if self.has_data {
            on_event(&self.data);
            self.data.clear();
            self.has_data = false;
        }
    }

    fn finish_line(&mut self, line: &[u8], on_event: &mut impl FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_event(&self.data);
                self.data.clear();
                self.has_data = false;
            }
            return;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // Comments (`:`), `event:`, `id:` and `retry:` lines carry nothing the gateway needs.
    }
}

/// Token counts as reported by the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// What one SSE payload says about the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkSignal {
    /// The `[DONE]` sentinel.
    pub done: bool,
    /// A non-empty content, refusal, tool-call or reasoning delta.
    pub output: bool,
    /// A choice carried a non-null `finish_reason`.
    pub finished: bool,
    /// An in-band `{"error": …}` frame.
    pub error: bool,
    /// The payload was not JSON.
    pub malformed: bool,
    /// Bytes of output in the event: the raw (JSON-escaped) text of its content, refusal, reasoning and tool-call
    /// values, without their quotes. About four bytes make a token.
    pub output_bytes: usize,
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
}

/// The length of a value's text as it is written (a string without its quotes).
fn raw_len(v: Option<&RawValue>) -> usize {
    match v.map(|v| v.get().trim()) {
        None | Some("null") => 0,
        Some(t) if t.len() >= 2 && t.starts_with('"') => t.len() - 2,
        Some(t) => t.len(),
    }
}

fn meaningful(v: Option<&RawValue>) -> bool {
    match v.map(|v| v.get().trim()) {
        None | Some("null") | Some("\"\"") | Some("[]") => false,
        Some(_) => true,
    }
}

/// Inspects one SSE payload of a chat-completion stream.
pub fn inspect_chunk(data: &[u8]) -> ChunkSignal {
    let trimmed = data.trim_ascii();
    if trimmed == b"[DONE]" {
        return ChunkSignal {
            done: true,
            ..ChunkSignal::default()
        };
    }
    let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(trimmed) else {
        return ChunkSignal {
            malformed: true,
            ..ChunkSignal::default()
        };
    };
    let mut signal = ChunkSignal {
        usage: chunk.usage,
        error: meaningful(chunk.error),
        ..ChunkSignal::default()
    };
    for choice in &chunk.choices {
        if let Some(delta) = &choice.delta {
            signal.output |= meaningful(delta.content)
                || meaningful(delta.refusal)
                || meaningful(delta.tool_calls)
                || meaningful(delta.reasoning_content)
                || meaningful(delta.reasoning);
            signal.output_bytes += raw_len(delta.content)
                + raw_len(delta.refusal)
                + raw_len(delta.tool_calls)
                + raw_len(delta.reasoning_content)
                + raw_len(delta.reasoning);
        }
        signal.finished |= meaningful(choice.finish_reason);
    }
    signal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = SseSplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |e| out.push(String::from_utf8_lossy(e).into_owned()));
        }
        s.finish(|e| out.push(String::from_utf8_lossy(e).into_owned()));
        out
    }

    #[test]
    fn splits_events_across_chunks_and_line_endings() {
        let ev = collect(&[b"data: {\"a\"", b":1}\n", b"\ndata: [DONE]\r\n\r\n"]);
        assert_eq!(ev, vec!["{\"a\":1}", "[DONE]"]);
    }

    #[test]
    fn ignores_comments_and_joins_multiline_data() {
        let ev = collect(&[b": keep-alive\n\nevent: x\ndata: a\ndata: b\n\n"]);
        assert_eq!(ev, vec!["a\nb"]);
    }

    #[test]
    fn unterminated_last_event_is_flushed() {
        assert_eq!(collect(&[b"data: [DONE]"]), vec!["[DONE]"]);
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let full: &[u8] = b"data: {\"x\":1}\n\n: c\n\ndata: {\"y\":2}\r\n\r\ndata: [DONE]\n\n";
        let whole = collect(&[full]);
        for i in 0..full.len() {
            for j in i..full.len() {
                assert_eq!(
                    collect(&[&full[..i], &full[i..j], &full[j..]]),
                    whole,
                    "split {i}/{j}"
                );
            }
        }
    }

    #[test]
    fn role_only_chunk_is_not_output() {
        let s = inspect_chunk(br#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#);
        assert!(!s.output && !s.finished);
    }

    #[test]
    fn content_tool_and_reasoning_are_output() {
        for d in [
            r#"{"content":"hi"}"#,
            r#"{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":""}}]}"#,
            r#"{"reasoning_content":"think"}"#,
            r#"{"reasoning":"think"}"#,
        ] {
            let chunk = format!(r#"{{"choices":[{{"delta":{d}}}]}}"#);
            assert!(inspect_chunk(chunk.as_bytes()).output, "{d}");
        }
    }

    #[test]
    fn usage_finish_done_error() {
        let s = inspect_chunk(
            br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#,
        );
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 5
            })
        );
        assert!(inspect_chunk(br#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#).finished);
        assert!(inspect_chunk(b" [DONE] ").done);
        assert!(inspect_chunk(br#"{"error":{"message":"boom"}}"#).error);
        assert!(inspect_chunk(b"not json").malformed);
    }

    #[test]
    fn output_bytes_are_the_written_text_of_the_deltas() {
        let s = inspect_chunk(
            br#"{"choices":[{"delta":{"content":"hello \"x\""},"finish_reason":null}]}"#,
        );
        assert_eq!(s.output_bytes, r#"hello \"x\""#.len());
        let s = inspect_chunk(br#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        assert_eq!(s.output_bytes, 0);
        let s =
            inspect_chunk(br#"{"choices":[{"delta":{"reasoning_content":"abc","content":"de"}}]}"#);
        assert_eq!(s.output_bytes, 5);
    }
}
