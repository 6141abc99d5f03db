//! The gateway's one internal request and answer, as the codecs see them: a chat-completions request borrowed from
//! the surface's parsed body and written straight to bytes ([`Chat`], [`write_chat`]), and lenient views of the
//! chat answers and stream chunks the relay hands back.

use std::borrow::Cow;
use std::ops::Range;

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::json::*;

/// The chat request, borrowed from a surface's parsed request, written by [`write_chat`].
#[derive(Default)]
pub(crate) struct Chat<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: Vec<Msg<'a>>,
    pub(crate) max_tokens: Option<u64>,
    pub(crate) stream: bool,
    pub(crate) temperature: Option<&'a J<'a>>,
    pub(crate) top_p: Option<&'a J<'a>>,
    pub(crate) stop: Option<&'a [J<'a>]>,
    pub(crate) user: Option<&'a str>,
    pub(crate) reasoning_effort: Option<&'static str>,
    pub(crate) parallel_tool_calls_off: bool,
    pub(crate) tools: Vec<Tool<'a>>,
    pub(crate) tool_choice: Option<ToolChoice<'a>>,
    pub(crate) frequency_penalty: Option<&'a J<'a>>,
    pub(crate) presence_penalty: Option<&'a J<'a>>,
    pub(crate) seed: Option<&'a J<'a>>,
    pub(crate) response_format: Option<ResponseFormat<'a>>,
}

pub(crate) enum ResponseFormat<'a> {
    JsonObject,
    /// A JSON schema (its JSON text) the answer must follow.
    JsonSchema(Cow<'a, str>),
}

pub(crate) enum Msg<'a> {
    System(Cow<'a, str>),
    User(Cow<'a, str>),
    UserParts(Vec<Part<'a>>),
    Assistant {
        content: Option<Cow<'a, str>>,
        calls: Vec<ToolCall<'a>>,
    },
    Tool {
        id: Cow<'a, str>,
        content: Cow<'a, str>,
    },
}

pub(crate) enum Part<'a> {
    Text(Cow<'a, str>),
    Image(Cow<'a, str>),
}

pub(crate) struct ToolCall<'a> {
    pub(crate) id: Cow<'a, str>,
    pub(crate) name: &'a str,
    /// JSON text of the `input`.
    pub(crate) arguments: Cow<'a, str>,
}

pub(crate) struct Tool<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: Option<&'a str>,
    /// JSON text of the schema.
    pub(crate) parameters: Cow<'a, str>,
}

pub(crate) enum ToolChoice<'a> {
    Mode(&'static str),
    Function(&'a str),
}

pub(crate) fn write_number(out: &mut Vec<u8>, v: &J) {
    match v {
        J::U(n) => num(out, *n),
        J::I(n) => put(out, &n.to_string()),
        // Written as serde_json writes an f64; a Vec never fails.
        J::F(f) => out.extend_from_slice(&serde_json::to_vec(f).unwrap_or_default()),
        _ => put(out, "null"),
    }
}

pub(crate) fn write_message(out: &mut Vec<u8>, m: &Msg) {
    match m {
        Msg::System(s) => {
            put(out, r#"{"content":"#);
            esc(out, s);
            put(out, r#","role":"system"}"#);
        }
        Msg::User(s) => {
            put(out, r#"{"content":"#);
            esc(out, s);
            put(out, r#","role":"user"}"#);
        }
        Msg::UserParts(parts) => {
            put(out, r#"{"content":["#);
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match p {
                    Part::Text(t) => {
                        put(out, r#"{"text":"#);
                        esc(out, t);
                        put(out, r#","type":"text"}"#);
                    }
                    Part::Image(url) => {
                        put(out, r#"{"image_url":{"url":"#);
                        esc(out, url);
                        put(out, r#"},"type":"image_url"}"#);
                    }
                }
            }
            put(out, r#"],"role":"user"}"#);
        }
        Msg::Assistant { content, calls } => {
            put(out, r#"{"content":"#);
            match content {
                Some(s) => esc(out, s),
                None => put(out, "null"),
            }
            put(out, r#","role":"assistant""#);
            if !calls.is_empty() {
                put(out, r#","tool_calls":["#);
                for (i, c) in calls.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    put(out, r#"{"function":{"arguments":"#);
                    esc(out, &c.arguments);
                    put(out, r#","name":"#);
                    esc(out, c.name);
                    put(out, r#"},"id":"#);
                    esc(out, &c.id);
                    put(out, r#","type":"function"}"#);
                }
                out.push(b']');
            }
            out.push(b'}');
        }
        Msg::Tool { id, content } => {
            put(out, r#"{"content":"#);
            esc(out, content);
            put(out, r#","role":"tool","tool_call_id":"#);
            esc(out, id);
            out.push(b'}');
        }
    }
}

/// Writes the chat body (keys sorted, as before); returns where its `messages` and `tools` arrays are.
pub(crate) fn write_chat(c: &Chat, out: &mut Vec<u8>) -> (Range<usize>, Range<usize>) {
    out.push(b'{');
    if let Some(v) = c.frequency_penalty {
        put(out, r#""frequency_penalty":"#);
        write_number(out, v);
        out.push(b',');
    }
    if let Some(n) = c.max_tokens {
        put(out, r#""max_tokens":"#);
        num(out, n);
        out.push(b',');
    }
    put(out, r#""messages":"#);
    let start = out.len();
    out.push(b'[');
    for (i, m) in c.messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_message(out, m);
    }
    out.push(b']');
    let messages = start..out.len();
    put(out, r#","model":"#);
    esc(out, c.model);
    if c.parallel_tool_calls_off {
        put(out, r#","parallel_tool_calls":false"#);
    }
    if let Some(v) = c.presence_penalty {
        put(out, r#","presence_penalty":"#);
        write_number(out, v);
    }
    if let Some(effort) = c.reasoning_effort {
        put(out, r#","reasoning_effort":"#);
        esc(out, effort);
    }
    match &c.response_format {
        None => {}
        Some(ResponseFormat::JsonObject) => {
            put(out, r#","response_format":{"type":"json_object"}"#);
        }
        Some(ResponseFormat::JsonSchema(schema)) => {
            put(
                out,
                r#","response_format":{"json_schema":{"name":"response","schema":"#,
            );
            put(out, schema);
            put(out, r#"},"type":"json_schema"}"#);
        }
    }
    if let Some(v) = c.seed {
        put(out, r#","seed":"#);
        write_number(out, v);
    }
    if let Some(stop) = c.stop {
        put(out, r#","stop":["#);
        for (i, s) in stop.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if let J::Str(s) = s {
                esc(out, s);
            }
        }
        out.push(b']');
    }
    if c.stream {
        put(
            out,
            r#","stream":true,"stream_options":{"include_usage":true}"#,
        );
    }
    if let Some(t) = c.temperature {
        put(out, r#","temperature":"#);
        write_number(out, t);
    }
    if let Some(choice) = &c.tool_choice {
        put(out, r#","tool_choice":"#);
        match choice {
            ToolChoice::Mode(m) => esc(out, m),
            ToolChoice::Function(name) => {
                put(out, r#"{"function":{"name":"#);
                esc(out, name);
                put(out, r#"},"type":"function"}"#);
            }
        }
    }
    let mut tools = 0..0;
    if !c.tools.is_empty() {
        put(out, r#","tools":"#);
        let start = out.len();
        out.push(b'[');
        for (i, t) in c.tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            put(out, r#"{"function":{"#);
            if let Some(d) = t.description {
                put(out, r#""description":"#);
                esc(out, d);
                out.push(b',');
            }
            put(out, r#""name":"#);
            esc(out, t.name);
            put(out, r#","parameters":"#);
            put(out, &t.parameters);
            put(out, r#"},"type":"function"}"#);
        }
        out.push(b']');
        tools = start..out.len();
    }
    if let Some(t) = c.top_p {
        put(out, r#","top_p":"#);
        write_number(out, t);
    }
    if let Some(user) = c.user {
        put(out, r#","user":"#);
        esc(out, user);
    }
    out.push(b'}');
    (messages, tools)
}

/// A chat `usage` object's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Usage {
    pub(crate) prompt: u64,
    pub(crate) completion: u64,
    /// Cached prompt tokens (at most `prompt`).
    pub(crate) cached: u64,
    /// `total_tokens`, or the sum when the upstream sent none.
    pub(crate) total: u64,
    pub(crate) reasoning: u64,
}

pub(crate) fn usage_of(u: &UsageIn) -> Usage {
    let prompt = u.prompt.as_u64().unwrap_or(0);
    let completion = u.completion.as_u64().unwrap_or(0);
    Usage {
        prompt,
        completion,
        cached: u.details.cached.as_u64().unwrap_or(0).min(prompt),
        total: u.total.as_u64().unwrap_or(prompt.wrapping_add(completion)),
        reasoning: u.completion_details.reasoning.as_u64().unwrap_or(0),
    }
}

/// A leading `<think>…</think>` split off content: (thinking, rest). No closing tag: all of it is thinking.
pub(crate) fn split_think(content: &str) -> Option<(&str, &str)> {
    let body = content.trim_start().strip_prefix("<think>")?;
    Some(match body.find("</think>") {
        Some(end) => (&body[..end], body[end + "</think>".len()..].trim_start()),
        None => (body, ""),
    })
}

lenient!(TextPart { "text" => text: Sc<'a>, });
lenient!(ErrObj { "type" => kind: Sc<'a>, "code" => code: Sc<'a>, "message" => message: Sc<'a>, });
lenient!(Details { "cached_tokens" => cached: Sc<'a>, });
lenient!(OutDetails { "reasoning_tokens" => reasoning: Sc<'a>, });
lenient!(UsageIn {
    "prompt_tokens" => prompt: Sc<'a>,
    "completion_tokens" => completion: Sc<'a>,
    "total_tokens" => total: Sc<'a>,
    "prompt_tokens_details" => details: Details<'a>,
    "completion_tokens_details" => completion_details: OutDetails<'a>,
});
lenient!(Function { "name" => name: Sc<'a>, "arguments" => arguments: Args<'a>, });
lenient!(Call { "id" => id: Sc<'a>, "index" => index: Sc<'a>, "function" => function: Function<'a>, });
lenient!(Delta {
    "reasoning_content" => reasoning_content: Sc<'a>,
    "reasoning" => reasoning: Sc<'a>,
    "content" => content: Sc<'a>,
    "refusal" => refusal: Sc<'a>,
    "tool_calls" => tool_calls: LVec<Call<'a>>,
});
lenient!(StreamChoice {
    "index" => index: Sc<'a>,
    "delta" => delta: Delta<'a>,
    "finish_reason" => finish_reason: Sc<'a>,
});
lenient!(Chunk {
    "model" => model: Sc<'a>,
    "error" => error: ErrObj<'a>,
    "usage" => usage: UsageIn<'a>,
    "choices" => choices: LVec<StreamChoice<'a>>,
});
lenient!(AnswerMessage {
    "content" => content: Content<'a>,
    "refusal" => refusal: Sc<'a>,
    "reasoning_content" => reasoning_content: Sc<'a>,
    "reasoning" => reasoning: Sc<'a>,
    "tool_calls" => tool_calls: LVec<Call<'a>>,
});
lenient!(AnswerChoice {
    "message" => message: AnswerMessage<'a>,
    "finish_reason" => finish_reason: Sc<'a>,
});
lenient!(Answer {
    "model" => model: Sc<'a>,
    "error" => error: ErrObj<'a>,
    "choices" => choices: LVec<AnswerChoice<'a>>,
    "usage" => usage: UsageIn<'a>,
});

/// Chat `message.content`: a string, the concatenated `text` of an array of parts, or anything else.
#[derive(Default)]
pub(crate) enum Content<'a> {
    Str(Cow<'a, str>),
    Parts(String),
    #[default]
    Other,
}

impl<'de> Deserialize<'de> for Content<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut text = String::new();
                while let Some(part) = seq.next_element::<TextPart>()? {
                    if let Some(t) = part.text.as_str() {
                        text.push_str(t);
                    }
                }
                Ok(Content::Parts(text))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map)?;
                Ok(Content::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A piece of streamed content once a leading `<think>…</think>` is split off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Thinking,
    Text,
}

/// Splits a leading `<think>…</think>` off streamed content, whatever the chunk boundaries: what is inside the tag
/// comes out as [`Piece::Thinking`], the rest as [`Piece::Text`] (whitespace right after the closing tag dropped).
#[derive(Debug)]
pub(crate) enum ThinkSplit {
    /// Content so far could still open with `<think>`.
    Detect(String),
    /// Inside the tag; holds a tail that might be the start of `</think>`.
    Inside(String),
    /// Plain text; `trim` drops whitespace right after `</think>`.
    Text { trim: bool },
}

impl Default for ThinkSplit {
    fn default() -> Self {
        ThinkSplit::Detect(String::new())
    }
}

impl ThinkSplit {
    const OPEN: &str = "<think>";
    const CLOSE: &str = "</think>";

    /// Past any tag: content is text as it comes.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self, ThinkSplit::Text { trim: false })
    }

    pub(crate) fn push(&mut self, c: &str, emit: &mut impl FnMut(Piece, &str)) {
        match self {
            ThinkSplit::Text { trim: false } => {
                if !c.is_empty() {
                    emit(Piece::Text, c);
                }
                return;
            }
            ThinkSplit::Text { trim: true } => {
                let s = c.trim_start();
                if !s.is_empty() {
                    *self = ThinkSplit::Text { trim: false };
                    emit(Piece::Text, s);
                }
                return;
            }
            _ => {}
        }
        match std::mem::replace(self, ThinkSplit::Text { trim: false }) {
            ThinkSplit::Text { .. } => {}
            ThinkSplit::Detect(mut buf) => {
                buf.push_str(c);
                let t = buf.trim_start();
                if let Some(rest) = t.strip_prefix(Self::OPEN) {
                    let rest = rest.to_string();
                    *self = ThinkSplit::Inside(String::new());
                    self.push(&rest, emit);
                } else if Self::OPEN.starts_with(t) {
                    *self = ThinkSplit::Detect(buf);
                } else {
                    emit(Piece::Text, &buf);
                }
            }
            ThinkSplit::Inside(mut held) => {
                held.push_str(c);
                if let Some(end) = held.find(Self::CLOSE) {
                    if end > 0 {
                        emit(Piece::Thinking, &held[..end]);
                    }
                    let rest = held[end + Self::CLOSE.len()..].to_string();
                    *self = ThinkSplit::Text { trim: true };
                    if !rest.is_empty() {
                        self.push(&rest, emit);
                    }
                } else {
                    let keep = (1..Self::CLOSE.len())
                        .rev()
                        .find(|&k| held.ends_with(&Self::CLOSE[..k]))
                        .unwrap_or(0);
                    let tail = held.split_off(held.len() - keep);
                    if !held.is_empty() {
                        emit(Piece::Thinking, &held);
                    }
                    *self = ThinkSplit::Inside(tail);
                }
            }
        }
    }

    /// At the end of the stream: what was held back.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(Piece, &str)) {
        match std::mem::replace(self, ThinkSplit::Text { trim: false }) {
            ThinkSplit::Detect(buf) if !buf.is_empty() => emit(Piece::Text, &buf),
            ThinkSplit::Inside(held) if !held.is_empty() => emit(Piece::Thinking, &held),
            _ => {}
        }
    }
}

/// The first choice of a `chat.completion`, its text (the refusal when there is no content) and its reasoning
/// (`reasoning_content` / `reasoning`, or a leading `<think>…</think>` split off the text); an error answer is
/// its message.
pub(crate) fn answer_text<'v, 'a>(
    v: &'v Answer<'a>,
) -> Result<(&'v AnswerChoice<'a>, &'v str, Option<&'v str>), String> {
    if v.error.is_obj {
        return Err(v
            .error
            .message
            .as_str()
            .unwrap_or("upstream error")
            .to_string());
    }
    let choice = v
        .choices
        .0
        .first()
        .ok_or("upstream answer has no choices")?;
    let msg = &choice.message;
    let mut text: &str = match &msg.content {
        Content::Str(s) => s,
        Content::Parts(s) => s,
        Content::Other => "",
    };
    if text.is_empty() {
        text = msg.refusal.as_str().unwrap_or_default();
    }
    let mut reasoning = msg.reasoning_content.text().or(msg.reasoning.text());
    if reasoning.is_none() {
        if let Some((thought, rest)) = split_think(text) {
            reasoning = Some(thought);
            text = rest;
        }
    }
    Ok((choice, text, reasoning))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&str]) -> (String, String) {
        let (mut thinking, mut text) = (String::new(), String::new());
        let mut emit = |p: Piece, s: &str| match p {
            Piece::Thinking => thinking.push_str(s),
            Piece::Text => text.push_str(s),
        };
        let mut t = ThinkSplit::default();
        for c in chunks {
            t.push(c, &mut emit);
        }
        t.finish(&mut emit);
        (thinking, text)
    }

    #[test]
    fn think_tags_split_the_same_at_every_chunk_boundary() {
        let whole = "  <think>plan it</think>\n\nAnswer <b>here</b>";
        for i in 0..=whole.len() {
            for j in i..=whole.len() {
                let got = split(&[&whole[..i], &whole[i..j], &whole[j..]]);
                assert_eq!(
                    got,
                    ("plan it".to_string(), "Answer <b>here</b>".to_string()),
                    "{i} {j}"
                );
            }
        }
        assert_eq!(
            split(&["Hi <think>x</think>"]),
            (String::new(), "Hi <think>x</think>".into())
        );
        assert_eq!(split(&["<thi"]), (String::new(), "<thi".into()));
        assert_eq!(
            split(&["<think>unclosed </th"]),
            ("unclosed </th".into(), String::new())
        );
    }
}
