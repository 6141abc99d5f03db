//! The Anthropic Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`), as Claude Code and the
//! Anthropic SDKs speak it, turned into chat completions and back.
//!
//! Decisions worth knowing:
//! - Requests are lenient where Claude Code sends things no upstream can use: `cache_control`, `citations`,
//!   `context_management`, `container`, `mcp_servers`, `service_tier`, `top_k` and unknown top-level fields are
//!   ignored; `thinking` / `redacted_thinking` history blocks are dropped (their signatures mean nothing upstream).
//!   Other unknown content blocks (`server_tool_use`, `web_search_tool_result`, …) are dropped and counted in
//!   [`MessageContext::dropped_blocks`]; server tools (`type` other than `custom`) are dropped and named in
//!   [`MessageContext::dropped_tools`], unless `tool_choice` forces one (400 `unsupported_tool`).
//! - Things that would silently change what the model sees are refused: PDF (or URL / file) documents and image
//!   sources other than `base64` / `url` are 400 `unsupported_content`.
//! - A `tool_result` becomes a `tool` message placed before the rest of its user message (chat wants tool messages
//!   right after the assistant's `tool_calls`); `is_error` prefixes its text with `[tool error] `; images inside it
//!   become `[image omitted]`. Text blocks of one message are joined with `\n`.
//! - Answers echo the model name the client sent. `input_tokens` is the upstream `prompt_tokens` minus its cached
//!   tokens (Anthropic counts cache reads separately, in `cache_read_input_tokens`). Tool-call arguments that are
//!   not a JSON object become `{}`. `length` wins over tool calls for `stop_reason` (a truncated call is
//!   `max_tokens`, not a usable `tool_use`).
//! - Reasoning (`reasoning_content` / `reasoning`, or a leading `<think>…</think>`) becomes a `thinking` block with
//!   an empty signature; in streams it closes with an empty `signature_delta`, as Anthropic's own streams do.
//! - Streams: one block open at a time; a new kind of output (or another tool call) closes the open block. Tool-call
//!   deltas for a block already closed are dropped (no provider interleaves calls in practice), and a delta that
//!   repeats the whole accumulated arguments (valid JSON) is skipped, as some providers re-send them at the end.

//!
//! Performance: nothing here builds a `serde_json::Value`. Requests are read into a borrowed tree ([`J`]: strings
//! borrowed from the body unless escaped, objects as small vectors, tool schemas and `tool_use` inputs kept as raw
//! JSON text) and the chat body is written straight to bytes. Answers and stream chunks are read with lenient,
//! borrowing visitors (any JSON value reads; a field of an unexpected type reads as absent, as `Value` indexing
//! did) and every output is written by hand, keys in the order `Value` (a sorted map) used to print them.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::{ChatRequest, RequestError};

/// What the answer needs to know about the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContext {
    /// The `id` of the answer (the caller makes it; Anthropic's look like `msg_…`).
    pub message_id: String,
    /// The model as the client named it, echoed in the answer.
    pub model: String,
    pub stream: bool,
    /// Content blocks of unknown or server-side types dropped from the history.
    pub dropped_blocks: u32,
    /// Names of server tools (`web_search_…`, `bash_…`, …) dropped from `tools`.
    pub dropped_tools: Vec<String>,
}

// ---------------------------------------------------------------------------------------------------------------
// Writing JSON by hand.

/// `s` as a JSON string, escaped exactly as serde_json escapes it.
fn esc(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let short: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x20.. => continue,
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => {
                out.extend_from_slice(&b[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
                start = i + 1;
                continue;
            }
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(short);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

fn num(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Raw JSON text without whitespace between tokens (as a parsed value would print), borrowed when it has none.
fn compact(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    let (mut in_str, mut escaped) = (false, false);
    let mut out: Option<Vec<u8>> = None;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            out.get_or_insert_with(|| b[..i].to_vec());
            continue;
        }
        if let Some(o) = &mut out {
            o.push(c);
        }
    }
    match out {
        None => Cow::Borrowed(raw),
        Some(o) => Cow::Owned(String::from_utf8_lossy(&o).into_owned()),
    }
}

fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

// ---------------------------------------------------------------------------------------------------------------
// Lenient, borrowing readers for chat answers and stream chunks.

/// An object key as bytes (not checked for UTF-8 twice), borrowed unless it has escapes.
struct Key<'a>(Cow<'a, [u8]>);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.to_vec())))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Borrowed(v.as_bytes())))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key(Cow::Owned(v.as_bytes().to_vec())))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

/// Visits every scalar as the default value, sequences consumed and ignored.
macro_rules! scalars_as_default {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
    };
}

/// Parses JSON text checked for UTF-8 once up front (serde_json then skips checking each string). Bytes that are
/// not UTF-8 fail as `serde_json::Value` parsing fails on them.
fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => Err(e),
            Ok(_) => serde_json::from_slice(bytes),
        },
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A struct read from any JSON value: an object fills the named fields (last duplicate wins, others ignored),
/// anything else reads as the default (`is_obj` false).
macro_rules! lenient {
    ($name:ident { $($key:literal => $field:ident : $ty:ty,)* }) => {
        #[derive(Default)]
        struct $name<'a> {
            #[allow(dead_code)]
            is_obj: bool,
            $($field: $ty,)*
            _borrow: PhantomData<&'a ()>,
        }

        impl<'de> Deserialize<'de> for $name<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("any JSON value")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut s = $name::default();
                        s.is_obj = true;
                        while let Some(k) = map.next_key::<Key<'de>>()? {
                            match &*k.0 {
                                $(k if k == $key.as_bytes() => s.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(s)
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                        skip_seq(seq)?;
                        Ok($name::default())
                    }
                    scalars_as_default!();
                }
                d.deserialize_any(V)
            }
        }
    };
}

/// A scalar field: a string (borrowed unless escaped), an unsigned integer, or anything else.
#[derive(Default)]
enum Sc<'a> {
    Str(Cow<'a, str>),
    U(u64),
    #[default]
    Other,
}

impl Sc<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Sc::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_u64(&self) -> Option<u64> {
        match self {
            Sc::U(n) => Some(*n),
            _ => None,
        }
    }
    /// A non-empty string.
    fn text(&self) -> Option<&str> {
        self.as_str().filter(|s| !s.is_empty())
    }
}

impl<'de> Deserialize<'de> for Sc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Sc<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Sc::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Sc::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Sc::Str(Cow::Owned(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Sc::U(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Sc::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Sc::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Sc::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Sc::Other)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Sc::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(Sc::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map)?;
                Ok(Sc::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Tool-call `arguments`: a string, or an object (kept as its compact JSON text), or anything else (none).
#[derive(Default)]
enum Args<'a> {
    Str(Cow<'a, str>),
    Obj(String),
    #[default]
    Other,
}

impl Args<'_> {
    fn text(&self) -> &str {
        match self {
            Args::Str(s) => s,
            Args::Obj(s) => s,
            Args::Other => "",
        }
    }
}

impl<'de> Deserialize<'de> for Args<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Args<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Args::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Args::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Args::Str(Cow::Owned(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                // Rare (some providers send an object): normalised as serde_json prints a Value.
                let v = serde_json::Value::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(Args::Obj(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(Args::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Args::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Args::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Args::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Args::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Args::Other)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Args::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// An array field: its elements, or empty for anything else.
struct LVec<T>(Vec<T>);

impl<T> Default for LVec<T> {
    fn default() -> Self {
        LVec(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for LVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = LVec<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(LVec(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map)?;
                Ok(LVec::default())
            }
            scalars_as_default!();
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Chat `message.content`: a string, the concatenated `text` of an array of parts, or anything else.
#[derive(Default)]
enum Content<'a> {
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

lenient!(TextPart { "text" => text: Sc<'a>, });
lenient!(ErrObj { "type" => kind: Sc<'a>, "message" => message: Sc<'a>, });
lenient!(Details { "cached_tokens" => cached: Sc<'a>, });
lenient!(UsageIn {
    "prompt_tokens" => prompt: Sc<'a>,
    "completion_tokens" => completion: Sc<'a>,
    "prompt_tokens_details" => details: Details<'a>,
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
    "error" => error: ErrObj<'a>,
    "choices" => choices: LVec<AnswerChoice<'a>>,
    "usage" => usage: UsageIn<'a>,
});

// ---------------------------------------------------------------------------------------------------------------
// Requests: a borrowed JSON tree.

/// A JSON value borrowed from the request body. The values of `input` and `input_schema` keys stay raw JSON text
/// (passed through as they came).
enum J<'a> {
    Null,
    Bool(bool),
    U(u64),
    I(i64),
    F(f64),
    Str(Cow<'a, str>),
    Arr(Vec<J<'a>>),
    Obj(Obj<'a>),
    Raw(&'a RawValue),
}

/// An object's members in order; lookups take the last of duplicate keys (as a parsed map would).
struct Obj<'a>(Vec<(Cow<'a, [u8]>, J<'a>)>);

impl<'a> Obj<'a> {
    fn get(&self, key: &str) -> Option<&J<'a>> {
        let key = key.as_bytes();
        self.0
            .iter()
            .rev()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for J<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(J::I(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(J::U(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(J::F(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(J::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(J::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(J::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(J::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(J::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        J::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(J::Arr(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v = if *k == *b"input" || *k == *b"input_schema" {
                J::Raw(map.next_value::<&'de RawValue>()?)
            } else {
                map.next_value::<J<'de>>()?
            };
            members.push((k, v));
        }
        Ok(J::Obj(Obj(members)))
    }
}

/// A request field's path, rendered only for errors: `messages[2].content[0].source`.
#[derive(Clone, Copy)]
enum P<'p> {
    Root(&'static str),
    Key(&'p P<'p>, &'static str),
    Idx(&'p P<'p>, usize),
}

impl fmt::Display for P<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            P::Root(s) => f.write_str(s),
            P::Key(p, k) => write!(f, "{p}.{k}"),
            P::Idx(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

fn missing(param: &str) -> RequestError {
    RequestError::invalid(
        "missing_required_parameter",
        param,
        format!("`{param}` is required"),
    )
}

fn wrong_type(param: &str, what: &str) -> RequestError {
    RequestError::invalid("invalid_type", param, format!("`{param}` must be {what}"))
}

fn bad_value(param: &str, message: String) -> RequestError {
    RequestError::invalid("invalid_value", param, message)
}

fn unsupported(param: &str, message: &str) -> RequestError {
    RequestError::invalid("unsupported_content", param, message)
}

fn parse_root(body: &[u8]) -> Result<Obj<'_>, RequestError> {
    let invalid = |message: String| RequestError {
        status: 400,
        code: "invalid_json",
        param: None,
        message,
    };
    match from_json::<J>(body) {
        Ok(J::Obj(o)) => Ok(o),
        Ok(_) => Err(invalid("request body must be a JSON object".into())),
        Err(e) => Err(invalid(format!("request body is not valid JSON: {e}"))),
    }
}

fn req_str<'a>(o: &'a Obj<'a>, key: &str, p: &P) -> Result<&'a str, RequestError> {
    match o.get(key) {
        Some(J::Str(s)) => Ok(s),
        None | Some(J::Null) => Err(missing(&format!("{p}.{key}"))),
        Some(_) => Err(wrong_type(&format!("{p}.{key}"), "a string")),
    }
}

fn opt_str<'a>(o: &'a Obj<'a>, key: &str, p: &P) -> Result<Option<&'a str>, RequestError> {
    match o.get(key) {
        Some(J::Str(s)) => Ok(Some(s)),
        None | Some(J::Null) => Ok(None),
        Some(_) => Err(wrong_type(&format!("{p}.{key}"), "a string")),
    }
}

/// A content block as an object with its `type`.
fn block<'a>(b: &'a J<'a>, p: &P) -> Result<(&'a Obj<'a>, &'a str), RequestError> {
    let J::Obj(o) = b else {
        return Err(wrong_type(&p.to_string(), "an object"));
    };
    match o.get("type") {
        Some(J::Str(t)) => Ok((o, t)),
        None | Some(J::Null) => Err(missing(&format!("{p}.type"))),
        Some(_) => Err(wrong_type(&format!("{p}.type"), "a string")),
    }
}

/// Appends `s` to a `\n`-joined text, borrowing while there is one part.
fn join_line<'a>(acc: &mut Option<Cow<'a, str>>, s: Cow<'a, str>) {
    match acc {
        None => *acc = Some(s),
        Some(c) => {
            let o = c.to_mut();
            o.push('\n');
            o.push_str(&s);
        }
    }
}

/// The chat request, borrowed from the parsed Messages request, written by [`write_chat`].
struct Chat<'a> {
    model: &'a str,
    messages: Vec<Msg<'a>>,
    max_tokens: Option<u64>,
    stream: bool,
    temperature: Option<&'a J<'a>>,
    top_p: Option<&'a J<'a>>,
    stop: Option<&'a [J<'a>]>,
    user: Option<&'a str>,
    reasoning_effort: Option<&'static str>,
    parallel_tool_calls_off: bool,
    tools: Vec<Tool<'a>>,
    tool_choice: Option<ToolChoice<'a>>,
}

enum Msg<'a> {
    System(Cow<'a, str>),
    User(Cow<'a, str>),
    UserParts(Vec<Part<'a>>),
    Assistant {
        content: Option<Cow<'a, str>>,
        calls: Vec<ToolCall<'a>>,
    },
    Tool {
        id: &'a str,
        content: Cow<'a, str>,
    },
}

enum Part<'a> {
    Text(Cow<'a, str>),
    Image(Cow<'a, str>),
}

struct ToolCall<'a> {
    id: &'a str,
    name: &'a str,
    /// JSON text of the `input`.
    arguments: Cow<'a, str>,
}

struct Tool<'a> {
    name: &'a str,
    description: Option<&'a str>,
    /// JSON text of the schema.
    parameters: Cow<'a, str>,
}

enum ToolChoice<'a> {
    Mode(&'static str),
    Function(&'a str),
}

/// Parses a Messages request into the chat-completions request for the relay.
pub fn messages_to_chat_request(body: &[u8]) -> Result<ChatRequest, RequestError> {
    parse(body, String::new()).map(|(chat, _)| chat)
}

/// Parses a Messages request once: the chat request and what the answer needs.
pub fn parse(
    body: &[u8],
    message_id: String,
) -> Result<(ChatRequest, MessageContext), RequestError> {
    let root = parse_root(body)?;
    let (chat, ctx) = convert(&root, message_id)?;
    let mut out = Vec::with_capacity(body.len() + 64);
    write_chat(&chat, &mut out);
    let request = ChatRequest {
        body: out,
        model: ctx.model.clone(),
        stream: ctx.stream,
    };
    Ok((request, ctx))
}

fn convert<'a>(
    root: &'a Obj<'a>,
    message_id: String,
) -> Result<(Chat<'a>, MessageContext), RequestError> {
    let model: &str = match root.get("model") {
        Some(J::Str(s)) if !s.trim().is_empty() => s,
        Some(J::Str(_)) => return Err(bad_value("model", "`model` must not be empty".into())),
        None | Some(J::Null) => return Err(missing("model")),
        Some(_) => return Err(wrong_type("model", "a string")),
    };
    let stream = match root.get("stream") {
        None | Some(J::Null) => false,
        Some(J::Bool(b)) => *b,
        Some(_) => return Err(wrong_type("stream", "a boolean")),
    };
    let mut ctx = MessageContext {
        message_id,
        model: model.to_string(),
        stream,
        ..MessageContext::default()
    };

    let mut messages = Vec::new();
    match root.get("system") {
        None | Some(J::Null) => {}
        Some(J::Str(s)) => push_system(&mut messages, Cow::Borrowed(s)),
        Some(J::Arr(blocks)) => {
            let text = text_blocks(blocks, &P::Root("system"), &mut ctx)?;
            push_system(&mut messages, text);
        }
        Some(_) => return Err(wrong_type("system", "a string or an array of text blocks")),
    }
    let history = match root.get("messages") {
        Some(J::Arr(a)) if !a.is_empty() => a,
        Some(J::Arr(_)) => {
            return Err(bad_value(
                "messages",
                "`messages` must contain at least one message".into(),
            ))
        }
        None | Some(J::Null) => return Err(missing("messages")),
        Some(_) => return Err(wrong_type("messages", "an array")),
    };
    messages.reserve(history.len());
    let mp = P::Root("messages");
    for (i, m) in history.iter().enumerate() {
        convert_message(m, &P::Idx(&mp, i), &mut messages, &mut ctx)?;
    }
    if messages.iter().all(|m| matches!(m, Msg::System(_))) {
        return Err(bad_value(
            "messages",
            "no message has content that can be forwarded".into(),
        ));
    }

    let max_tokens = match root.get("max_tokens") {
        None | Some(J::Null) => None,
        Some(J::U(n)) => Some(*n),
        Some(_) => return Err(wrong_type("max_tokens", "a non-negative integer")),
    };
    let number = |key: &'static str| match root.get(key) {
        None | Some(J::Null) => Ok(None),
        Some(v @ (J::U(_) | J::I(_) | J::F(_))) => Ok(Some(v)),
        Some(_) => Err(wrong_type(key, "a number")),
    };
    let temperature = number("temperature")?;
    let top_p = number("top_p")?;
    let stop = match root.get("stop_sequences") {
        None | Some(J::Null) => None,
        Some(J::Arr(a)) => {
            for (k, s) in a.iter().enumerate() {
                if !matches!(s, J::Str(_)) {
                    return Err(wrong_type(&format!("stop_sequences[{k}]"), "a string"));
                }
            }
            (!a.is_empty()).then_some(a.as_slice())
        }
        Some(_) => return Err(wrong_type("stop_sequences", "an array of strings")),
    };
    let user = match root.get("metadata") {
        Some(J::Obj(meta)) => opt_str(meta, "user_id", &P::Root("metadata"))?,
        _ => None,
    };
    let reasoning_effort = reasoning_effort(root)?;
    let mut chat = Chat {
        model,
        messages,
        max_tokens,
        stream,
        temperature,
        top_p,
        stop,
        user,
        reasoning_effort,
        parallel_tool_calls_off: false,
        tools: Vec::new(),
        tool_choice: None,
    };
    convert_tools(root, &mut chat, &mut ctx)?;
    Ok((chat, ctx))
}

fn push_system<'a>(messages: &mut Vec<Msg<'a>>, text: Cow<'a, str>) {
    if !text.is_empty() {
        messages.push(Msg::System(text));
    }
}

/// The text of `system`-like block arrays: text blocks joined by `\n`, anything else dropped and counted.
fn text_blocks<'a>(
    blocks: &'a [J<'a>],
    p: &P,
    ctx: &mut MessageContext,
) -> Result<Cow<'a, str>, RequestError> {
    let mut text = None;
    for (j, b) in blocks.iter().enumerate() {
        let bp = P::Idx(p, j);
        match block(b, &bp)? {
            (o, "text") => join_line(&mut text, Cow::Borrowed(req_str(o, "text", &bp)?)),
            _ => ctx.dropped_blocks += 1,
        }
    }
    Ok(text.unwrap_or_default())
}

fn convert_message<'a>(
    m: &'a J<'a>,
    p: &P,
    out: &mut Vec<Msg<'a>>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let J::Obj(m) = m else {
        return Err(wrong_type(&p.to_string(), "an object"));
    };
    let role = req_str(m, "role", p)?;
    let cp = P::Key(p, "content");
    let content = m.get("content").unwrap_or(&J::Null);
    let (text, blocks): (Option<&str>, &[J]) = match content {
        J::Str(s) => (Some(s), &[]),
        J::Arr(a) => (None, a),
        J::Null => (None, &[]),
        _ => {
            return Err(wrong_type(
                &cp.to_string(),
                "a string or an array of content blocks",
            ))
        }
    };
    match role {
        "system" => {
            let text = match text {
                Some(s) => Cow::Borrowed(s),
                None => text_blocks(blocks, &cp, ctx)?,
            };
            push_system(out, text);
        }
        "user" => match text {
            Some(s) => out.push(Msg::User(Cow::Borrowed(s))),
            None => user_blocks(blocks, &cp, out, ctx)?,
        },
        "assistant" => match text {
            Some("") => {}
            Some(s) => out.push(Msg::Assistant {
                content: Some(Cow::Borrowed(s)),
                calls: Vec::new(),
            }),
            None => assistant_blocks(blocks, &cp, out, ctx)?,
        },
        other => {
            return Err(bad_value(
                &format!("{p}.role"),
                format!("unknown role `{other}`; expected `user` or `assistant`"),
            ))
        }
    }
    Ok(())
}

fn user_blocks<'a>(
    blocks: &'a [J<'a>],
    cp: &P,
    out: &mut Vec<Msg<'a>>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut parts = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = P::Idx(cp, j);
        match block(b, &bp)? {
            (o, "text") => parts.push(Part::Text(Cow::Borrowed(req_str(o, "text", &bp)?))),
            (o, "image") => parts.push(Part::Image(image_url(o, &bp)?)),
            (o, "document") => parts.push(Part::Text(Cow::Owned(document_text(o, &bp, ctx)?))),
            // Tool messages go first, in order, before the rest of this user message.
            (o, "tool_result") => out.push(tool_result(o, &bp, ctx)?),
            (_, "thinking" | "redacted_thinking") => {}
            _ => ctx.dropped_blocks += 1,
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    if parts.iter().all(|p| matches!(p, Part::Text(_))) {
        let mut text = None;
        for p in parts {
            if let Part::Text(t) = p {
                join_line(&mut text, t);
            }
        }
        out.push(Msg::User(text.unwrap_or_default()));
    } else {
        out.push(Msg::UserParts(parts));
    }
    Ok(())
}

fn image_url<'a>(o: &'a Obj<'a>, p: &P) -> Result<Cow<'a, str>, RequestError> {
    let sp = P::Key(p, "source");
    let Some(J::Obj(source)) = o.get("source") else {
        return Err(wrong_type(&sp.to_string(), "an object"));
    };
    Ok(match req_str(source, "type", &sp)? {
        "base64" => Cow::Owned(format!(
            "data:{};base64,{}",
            req_str(source, "media_type", &sp)?,
            req_str(source, "data", &sp)?
        )),
        "url" => Cow::Borrowed(req_str(source, "url", &sp)?),
        other => {
            return Err(unsupported(
                &format!("{sp}.type"),
                &format!("image source type `{other}` is not supported; send `base64` or `url`"),
            ))
        }
    })
}

fn document_text(o: &Obj, p: &P, ctx: &mut MessageContext) -> Result<String, RequestError> {
    let sp = P::Key(p, "source");
    let Some(J::Obj(source)) = o.get("source") else {
        return Err(wrong_type(&sp.to_string(), "an object"));
    };
    let body = match req_str(source, "type", &sp)? {
        "text" => req_str(source, "data", &sp)?.to_string(),
        "content" => match source.get("content") {
            Some(J::Str(s)) => s.to_string(),
            Some(J::Arr(blocks)) => text_blocks(blocks, &P::Key(&sp, "content"), ctx)?.into_owned(),
            _ => {
                return Err(wrong_type(
                    &format!("{sp}.content"),
                    "a string or an array of blocks",
                ))
            }
        },
        _ => {
            return Err(unsupported(
                &p.to_string(),
                "PDF and file documents are not supported by the upstream models; send the text instead",
            ))
        }
    };
    Ok(match opt_str(o, "title", p)? {
        Some(title) if !title.is_empty() => format!("{title}\n\n{body}"),
        _ => body,
    })
}

fn tool_result<'a>(
    o: &'a Obj<'a>,
    p: &P,
    ctx: &mut MessageContext,
) -> Result<Msg<'a>, RequestError> {
    let id = req_str(o, "tool_use_id", p)?;
    let cp = P::Key(p, "content");
    let text: Cow<str> = match o.get("content") {
        None | Some(J::Null) => Cow::Borrowed(""),
        Some(J::Str(s)) => Cow::Borrowed(s),
        Some(J::Arr(blocks)) => {
            let mut text = None;
            for (k, b) in blocks.iter().enumerate() {
                let bp = P::Idx(&cp, k);
                match block(b, &bp)? {
                    (o, "text") => join_line(&mut text, Cow::Borrowed(req_str(o, "text", &bp)?)),
                    (_, "image") => join_line(&mut text, Cow::Borrowed("[image omitted]")),
                    (o, "document") => {
                        join_line(&mut text, Cow::Owned(document_text(o, &bp, ctx)?))
                    }
                    _ => ctx.dropped_blocks += 1,
                }
            }
            text.unwrap_or_default()
        }
        Some(_) => {
            return Err(wrong_type(
                &cp.to_string(),
                "a string or an array of content blocks",
            ))
        }
    };
    let content = if matches!(o.get("is_error"), Some(J::Bool(true))) {
        Cow::Owned(format!("[tool error] {text}"))
    } else {
        text
    };
    Ok(Msg::Tool { id, content })
}

fn assistant_blocks<'a>(
    blocks: &'a [J<'a>],
    cp: &P,
    out: &mut Vec<Msg<'a>>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut text = None;
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bp = P::Idx(cp, j);
        match block(b, &bp)? {
            (o, "text") => join_line(&mut text, Cow::Borrowed(req_str(o, "text", &bp)?)),
            (o, "tool_use") => {
                let arguments = match o.get("input") {
                    Some(J::Raw(r)) => compact(r.get()),
                    _ => Cow::Borrowed("{}"),
                };
                let id = req_str(o, "id", &bp)?;
                let name = req_str(o, "name", &bp)?;
                calls.push(ToolCall {
                    id,
                    name,
                    arguments,
                });
            }
            (_, "thinking" | "redacted_thinking") => {}
            _ => ctx.dropped_blocks += 1,
        }
    }
    let content = text.filter(|t| !t.is_empty());
    if content.is_some() || !calls.is_empty() {
        out.push(Msg::Assistant { content, calls });
    }
    Ok(())
}

fn reasoning_effort(root: &Obj) -> Result<Option<&'static str>, RequestError> {
    if let Some(J::Obj(cfg)) = root.get("output_config") {
        match opt_str(cfg, "effort", &P::Root("output_config"))? {
            Some("low") => return Ok(Some("low")),
            Some("medium") => return Ok(Some("medium")),
            Some("high" | "max") => return Ok(Some("high")),
            _ => {}
        }
    }
    let Some(J::Obj(thinking)) = root.get("thinking") else {
        return Ok(None);
    };
    Ok(match opt_str(thinking, "type", &P::Root("thinking"))? {
        Some("enabled") => match thinking.get("budget_tokens") {
            Some(J::U(n)) if *n < 4096 => Some("low"),
            Some(J::U(n)) if *n >= 16384 => Some("high"),
            _ => Some("medium"),
        },
        Some("adaptive") => Some("medium"),
        _ => None,
    })
}

const EMPTY_SCHEMA: &str = r#"{"properties":{},"type":"object"}"#;

fn convert_tools<'a>(
    root: &'a Obj<'a>,
    chat: &mut Chat<'a>,
    ctx: &mut MessageContext,
) -> Result<(), RequestError> {
    let mut tools = Vec::new();
    match root.get("tools") {
        None | Some(J::Null) => {}
        Some(J::Arr(list)) => {
            tools.reserve(list.len());
            let tsp = P::Root("tools");
            for (k, t) in list.iter().enumerate() {
                let tp = P::Idx(&tsp, k);
                let J::Obj(t) = t else {
                    return Err(wrong_type(&tp.to_string(), "an object"));
                };
                let name = req_str(t, "name", &tp)?;
                match opt_str(t, "type", &tp)? {
                    None | Some("custom") => {}
                    Some(_) => {
                        ctx.dropped_tools.push(name.to_string());
                        continue;
                    }
                }
                let description = opt_str(t, "description", &tp)?;
                let parameters = match t.get("input_schema") {
                    None | Some(J::Null) => Cow::Borrowed(EMPTY_SCHEMA),
                    Some(J::Raw(r)) if r.get().starts_with('{') => compact(r.get()),
                    Some(J::Raw(r)) if r.get() == "null" => Cow::Borrowed(EMPTY_SCHEMA),
                    Some(_) => return Err(wrong_type(&format!("{tp}.input_schema"), "an object")),
                };
                tools.push(Tool {
                    name,
                    description,
                    parameters,
                });
            }
        }
        Some(_) => return Err(wrong_type("tools", "an array")),
    }
    let forced_unsupported =
        |message: String| RequestError::invalid("unsupported_tool", "tool_choice", message);
    let tcp = P::Root("tool_choice");
    let choice = match root.get("tool_choice") {
        None | Some(J::Null) => None,
        Some(J::Obj(tc)) => {
            let choice = match req_str(tc, "type", &tcp)? {
                "auto" => ToolChoice::Mode("auto"),
                "none" => ToolChoice::Mode("none"),
                "any" if tools.is_empty() && !ctx.dropped_tools.is_empty() => {
                    return Err(forced_unsupported(
                        "`tool_choice` `any` needs a custom tool; server tools are not supported"
                            .into(),
                    ))
                }
                "any" => ToolChoice::Mode("required"),
                "tool" => {
                    let name = req_str(tc, "name", &tcp)?;
                    if ctx.dropped_tools.iter().any(|d| d == name) {
                        return Err(RequestError::invalid(
                            "unsupported_tool",
                            "tool_choice.name",
                            format!(
                                "`{name}` is a server tool, which the gateway does not support"
                            ),
                        ));
                    }
                    if !tools.iter().any(|t| t.name == name) {
                        return Err(bad_value(
                            "tool_choice.name",
                            format!("no tool named `{name}` in `tools`"),
                        ));
                    }
                    ToolChoice::Function(name)
                }
                other => {
                    return Err(bad_value(
                        "tool_choice.type",
                        format!("unknown tool_choice type `{other}`"),
                    ))
                }
            };
            if matches!(tc.get("disable_parallel_tool_use"), Some(J::Bool(true)))
                && !tools.is_empty()
            {
                chat.parallel_tool_calls_off = true;
            }
            Some(choice)
        }
        Some(_) => return Err(wrong_type("tool_choice", "an object")),
    };
    if !tools.is_empty() {
        chat.tools = tools;
        chat.tool_choice = choice;
    }
    Ok(())
}

fn write_number(out: &mut Vec<u8>, v: &J) {
    match v {
        J::U(n) => num(out, *n),
        J::I(n) => put(out, &n.to_string()),
        // Written as serde_json writes an f64; a Vec never fails.
        J::F(f) => out.extend_from_slice(&serde_json::to_vec(f).unwrap_or_default()),
        _ => put(out, "null"),
    }
}

fn write_message(out: &mut Vec<u8>, m: &Msg) {
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
                    esc(out, c.id);
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
fn write_chat(c: &Chat, out: &mut Vec<u8>) -> (Range<usize>, Range<usize>) {
    out.push(b'{');
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
    if let Some(effort) = c.reasoning_effort {
        put(out, r#","reasoning_effort":"#);
        esc(out, effort);
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

/// Tokens estimated the way the gateway estimates a chat request: about four bytes of JSON per token, inline
/// images (`data:` URLs) a fixed 1000 tokens each.
fn estimate_json_tokens(text: &str) -> u64 {
    const IMAGE_TOKENS: u64 = 1000;
    let mut bytes = text.len() as u64;
    let mut images = 0u64;
    let mut rest = text;
    while let Some(start) = rest.find("\"data:") {
        let after = &rest[start + 1..];
        let end = after.find('"').unwrap_or(after.len());
        bytes = bytes.saturating_sub(end as u64);
        images += 1;
        rest = &after[end..];
    }
    bytes.div_ceil(4) + images * IMAGE_TOKENS
}

/// `count_tokens`: the estimated `input_tokens` of a Messages request — its translated messages (system, text,
/// tool_use input, tool_result content, images) and tool definitions, counted as the relay estimates a request.
pub fn count_tokens(body: &[u8]) -> Result<u64, RequestError> {
    let root = parse_root(body)?;
    let (chat, _) = convert(&root, String::new())?;
    let mut out = Vec::with_capacity(body.len() + 64);
    let (messages, tools) = write_chat(&chat, &mut out);
    let messages = out
        .get(messages)
        .and_then(|m| std::str::from_utf8(m).ok())
        .unwrap_or_default();
    Ok(estimate_json_tokens(messages) + (tools.len() as u64).div_ceil(4))
}

/// "opus" | "sonnet" | "haiku" for Claude model names (`claude-opus-4-1-20250805`, `claude-3-5-haiku-latest`,
/// `anthropic/claude-sonnet-4.5`); `None` for anything else.
pub fn claude_family(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    if !m.contains("claude") {
        return None;
    }
    ["opus", "sonnet", "haiku"]
        .into_iter()
        .find(|f| m.contains(f))
}

/// The Anthropic error `type` for an HTTP status. 502/503/504 and 529 are `overloaded_error`, which Claude Code and
/// the SDKs retry; other 5xx `api_error`; other 4xx `invalid_request_error`.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        502..=504 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"error":{"message":…,"type":…},"type":"error"}`.
fn write_error(out: &mut Vec<u8>, kind: &str, message: &str) {
    put(out, r#"{"error":{"message":"#);
    esc(out, message);
    put(out, r#","type":"#);
    esc(out, kind);
    put(out, r#"},"type":"error"}"#);
}

/// Anthropic error body `{"type":"error","error":{"type","message"}}` for an HTTP status.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    write_error(&mut out, error_type_for_status(status), message);
    out
}

/// [`error_body`] for a refused request, the offending field named in the message (Anthropic has no `param`).
pub fn request_error_body(e: &RequestError) -> Vec<u8> {
    match &e.param {
        Some(p) => error_body(e.status, &format!("{p}: {}", e.message)),
        None => error_body(e.status, &e.message),
    }
}

fn stop_reason(finish: Option<&str>, tool_calls: bool) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        _ if tool_calls => "tool_use",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// `prompt_tokens`, `completion_tokens` and cached prompt tokens from a chat `usage` object.
fn usage_of(u: &UsageIn) -> (u64, u64, u64) {
    let prompt = u.prompt.as_u64().unwrap_or(0);
    let cached = u.details.cached.as_u64().unwrap_or(0).min(prompt);
    (prompt, u.completion.as_u64().unwrap_or(0), cached)
}

fn tool_id<'a>(id: Option<&'a str>, ctx: &MessageContext, n: usize) -> Cow<'a, str> {
    match id {
        Some(id) if !id.is_empty() => Cow::Borrowed(id),
        _ => {
            let stem = ctx
                .message_id
                .strip_prefix("msg_")
                .unwrap_or(&ctx.message_id);
            Cow::Owned(format!("toolu_{stem}_{n}"))
        }
    }
}

/// A leading `<think>…</think>` split off content: (thinking, rest). No closing tag: all of it is thinking.
fn split_think(content: &str) -> Option<(&str, &str)> {
    let body = content.trim_start().strip_prefix("<think>")?;
    Some(match body.find("</think>") {
        Some(end) => (&body[..end], body[end + "</think>".len()..].trim_start()),
        None => (body, ""),
    })
}

/// `"usage":{…}` of Messages answers and `message_delta`.
fn write_usage(out: &mut Vec<u8>, input: u64, output: u64, cached: u64) {
    put(
        out,
        r#""usage":{"cache_creation_input_tokens":0,"cache_read_input_tokens":"#,
    );
    num(out, cached);
    put(out, r#","input_tokens":"#);
    num(out, input);
    put(out, r#","output_tokens":"#);
    num(out, output);
    out.push(b'}');
}

/// Turns a `chat.completion` body into a Messages `message`.
pub fn chat_to_messages_response(chat: &[u8], ctx: &MessageContext) -> Result<Vec<u8>, String> {
    let v: Answer = from_json(chat).map_err(|e| format!("upstream answer is not JSON: {e}"))?;
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
    let calls = &msg.tool_calls.0;
    let mut out = Vec::with_capacity(text.len() + 320);
    put(&mut out, r#"{"content":["#);
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
        sep(&mut out);
        put(&mut out, r#"{"signature":"","thinking":"#);
        esc(&mut out, r);
        put(&mut out, r#","type":"thinking"}"#);
    }
    if !text.is_empty() {
        sep(&mut out);
        put(&mut out, r#"{"text":"#);
        esc(&mut out, text);
        put(&mut out, r#","type":"text"}"#);
    }
    for (n, call) in calls.iter().enumerate() {
        let f = &call.function;
        let input = match &f.arguments {
            Args::Str(s) => serde_json::from_str::<&RawValue>(s)
                .ok()
                .map(RawValue::get)
                .filter(|r| r.starts_with('{'))
                .map(compact),
            Args::Obj(s) => Some(Cow::Borrowed(s.as_str())),
            Args::Other => None,
        };
        sep(&mut out);
        put(&mut out, r#"{"id":"#);
        esc(&mut out, &tool_id(call.id.as_str(), ctx, n));
        put(&mut out, r#","input":"#);
        put(&mut out, input.as_deref().unwrap_or("{}"));
        put(&mut out, r#","name":"#);
        esc(&mut out, f.name.as_str().unwrap_or_default());
        put(&mut out, r#","type":"tool_use"}"#);
    }
    let (prompt, completion, cached) = usage_of(&v.usage);
    put(&mut out, r#"],"id":"#);
    esc(&mut out, &ctx.message_id);
    put(&mut out, r#","model":"#);
    esc(&mut out, &ctx.model);
    put(&mut out, r#","role":"assistant","stop_reason":"#);
    esc(
        &mut out,
        stop_reason(choice.finish_reason.as_str(), !calls.is_empty()),
    );
    put(&mut out, r#","stop_sequence":null,"type":"message","#);
    write_usage(&mut out, prompt - cached, completion, cached);
    out.push(b'}');
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// Stream events, written straight into the output.

fn event_start(out: &mut Vec<u8>, event: &str) {
    put(out, "event: ");
    put(out, event);
    put(out, "\ndata: ");
}

fn event_end(out: &mut Vec<u8>) {
    put(out, "\n\n");
}

/// `content_block_delta` whose delta is `{"<field>": s, "type": kind}`.
fn delta_event(out: &mut Vec<u8>, index: u32, kind: &str, field: &str, s: &str) {
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
fn block_start_event(out: &mut Vec<u8>, index: u32, block: impl FnOnce(&mut Vec<u8>)) {
    event_start(out, "content_block_start");
    put(out, r#"{"content_block":"#);
    block(out);
    put(out, r#","index":"#);
    num(out, u64::from(index));
    put(out, r#","type":"content_block_start"}"#);
    event_end(out);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Thinking(u32),
    Text(u32),
    /// Block index and the slot in `tools`.
    Tool(u32, usize),
}

/// Where a leading `<think>` tag stands in streamed content.
#[derive(Debug)]
enum Think {
    /// Content so far could still open with `<think>`.
    Detect(String),
    /// Inside the tag; holds a tail that might be the start of `</think>`.
    Inside(String),
    /// Plain text; `trim` drops whitespace right after `</think>`.
    Text { trim: bool },
}

#[derive(Debug, Default)]
struct StreamTool {
    chat_index: Option<u64>,
    id: Option<String>,
    name: Option<String>,
    /// Arguments: buffered until the block starts, then those sent.
    args: String,
    started: bool,
    closed: bool,
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
    think: Think,
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
            think: Think::Detect(String::new()),
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

    fn delta(&mut self, d: &Delta, out: &mut Vec<u8>) {
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

    fn content(&mut self, c: &str, out: &mut Vec<u8>) {
        const OPEN: &str = "<think>";
        const CLOSE: &str = "</think>";
        match &mut self.think {
            // The common case, without moving state around.
            Think::Text { trim: false } => {
                if !c.is_empty() {
                    self.text(c, out);
                }
                return;
            }
            Think::Text { trim: true } => {
                let s = c.trim_start();
                if s.is_empty() {
                    return;
                }
                self.think = Think::Text { trim: false };
                return self.text(s, out);
            }
            _ => {}
        }
        match std::mem::replace(&mut self.think, Think::Text { trim: false }) {
            Think::Text { .. } => {}
            Think::Detect(mut buf) => {
                buf.push_str(c);
                let t = buf.trim_start();
                if let Some(rest) = t.strip_prefix(OPEN) {
                    let rest = rest.to_string();
                    self.think = Think::Inside(String::new());
                    self.content(&rest, out);
                } else if OPEN.starts_with(t) {
                    self.think = Think::Detect(buf);
                } else {
                    self.text(&buf, out);
                }
            }
            Think::Inside(mut held) => {
                held.push_str(c);
                if let Some(end) = held.find(CLOSE) {
                    if end > 0 {
                        self.thinking(&held[..end], out);
                    }
                    let rest = held[end + CLOSE.len()..].to_string();
                    self.think = Think::Text { trim: true };
                    if !rest.is_empty() {
                        self.content(&rest, out);
                    }
                } else {
                    let keep = (1..CLOSE.len())
                        .rev()
                        .find(|&k| held.ends_with(&CLOSE[..k]))
                        .unwrap_or(0);
                    let tail = held.split_off(held.len() - keep);
                    if !held.is_empty() {
                        self.thinking(&held, out);
                    }
                    self.think = Think::Inside(tail);
                }
            }
        }
    }

    /// Closes the open block and numbers the next.
    fn begin_block(&mut self, out: &mut Vec<u8>) -> u32 {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    fn thinking(&mut self, s: &str, out: &mut Vec<u8>) {
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

    fn text(&mut self, s: &str, out: &mut Vec<u8>) {
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
    fn slot_for(&mut self, index: Option<u64>, id: Option<&str>) -> usize {
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

    fn tool_delta(&mut self, call: &Call, out: &mut Vec<u8>) {
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
    fn start_tool(&mut self, slot: usize, out: &mut Vec<u8>) {
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

    fn close(&mut self, out: &mut Vec<u8>) {
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
        match std::mem::replace(&mut self.think, Think::Text { trim: false }) {
            Think::Detect(buf) if !buf.is_empty() => self.text(&buf, out),
            Think::Inside(held) if !held.is_empty() => self.thinking(&held, out),
            _ => {}
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn chat_of(req: &Value) -> Value {
        let (chat, _) = parse(req.to_string().as_bytes(), "msg_1".into()).unwrap();
        serde_json::from_slice(&chat.body).unwrap()
    }

    fn err_of(req: &[u8]) -> RequestError {
        messages_to_chat_request(req).unwrap_err()
    }

    fn ctx() -> MessageContext {
        MessageContext {
            message_id: "msg_abc".into(),
            model: "claude-sonnet-4-5".into(),
            stream: true,
            ..MessageContext::default()
        }
    }

    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n") || text.is_empty(), "{text}");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (head, data) = e.split_once('\n').unwrap();
                let name = head.strip_prefix("event: ").unwrap().to_string();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    fn run(chunks: &[&str]) -> Vec<(String, Value)> {
        let mut enc = MessagesStreamEncoder::new(ctx(), 42);
        let mut out = Vec::new();
        enc.start(&mut out);
        for c in chunks {
            enc.push(c.as_bytes(), &mut out);
        }
        enc.finish(&mut out);
        enc.finish(&mut out);
        events(&out)
    }

    /// Checks event order the way the SDK's accumulator relies on it and returns the blocks as accumulated:
    /// (start block, concatenated text / thinking / partial_json).
    fn blocks(ev: &[(String, Value)]) -> Vec<(Value, String)> {
        assert_eq!(ev[0].0, "message_start");
        assert_eq!(ev[0].1["message"]["model"], "claude-sonnet-4-5");
        assert_eq!(ev[1].0, "ping");
        let mut blocks: Vec<(Value, String)> = Vec::new();
        let mut open: Option<u64> = None;
        let n = ev.len();
        for (name, data) in &ev[2..n - 2] {
            match name.as_str() {
                "content_block_start" => {
                    assert!(open.is_none(), "block opened while another is open");
                    assert_eq!(data["index"], blocks.len() as u64);
                    open = data["index"].as_u64();
                    blocks.push((data["content_block"].clone(), String::new()));
                }
                "content_block_delta" => {
                    assert_eq!(data["index"].as_u64(), open);
                    let d = &data["delta"];
                    let piece = match d["type"].as_str().unwrap() {
                        "text_delta" => d["text"].as_str(),
                        "thinking_delta" => d["thinking"].as_str(),
                        "input_json_delta" => d["partial_json"].as_str(),
                        "signature_delta" => Some(""),
                        other => panic!("unexpected delta {other}"),
                    };
                    blocks.last_mut().unwrap().1.push_str(piece.unwrap());
                }
                "content_block_stop" => {
                    assert_eq!(data["index"].as_u64(), open.take());
                }
                other => panic!("unexpected event {other}"),
            }
        }
        assert!(open.is_none());
        assert_eq!(ev[n - 2].0, "message_delta");
        assert_eq!(ev[n - 1].0, "message_stop");
        blocks
    }

    fn chunk(delta: Value) -> String {
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}).to_string()
    }

    fn finish_chunk(reason: &str) -> String {
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
    }

    #[test]
    fn claude_code_request() {
        let req = json!({
            "model": "claude-opus-4-1-20250805",
            "max_tokens": 32000,
            "stream": true,
            "system": [
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be terse."}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Listing."},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "a"}}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "and now?"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a\nb"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "no such file"}, {"type": "image", "source": {}}]},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"}}
                ]},
                {"role": "system", "content": "mid-conversation note"},
                {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search"}]},
                {"role": "user", "content": "go on"}
            ],
            "tools": [
                {"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                {"type": "custom", "name": "Read", "input_schema": {"type": "object"}}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "low"},
            "context_management": {"edits": []},
            "metadata": {"user_id": "user_123"},
            "temperature": 1,
            "top_k": 5,
            "stop_sequences": ["STOP"]
        });
        let (chat, ctx) = parse(req.to_string().as_bytes(), "msg_1".into()).unwrap();
        assert!(chat.stream);
        assert_eq!(chat.model, "claude-opus-4-1-20250805");
        assert_eq!(ctx.model, "claude-opus-4-1-20250805");
        assert_eq!(ctx.dropped_tools, vec!["web_search".to_string()]);
        assert_eq!(ctx.dropped_blocks, 1);
        let c: Value = serde_json::from_slice(&chat.body).unwrap();
        let expected_messages = json!([
            {"role": "system", "content": "You are Claude Code.\nBe terse."},
            {"role": "user", "content": "<system-reminder>ctx</system-reminder>\nlist files"},
            {"role": "assistant", "content": "Listing.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"a\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a\nb"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] no such file\n[image omitted]"},
            {"role": "user", "content": [
                {"type": "text", "text": "and now?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}
            ]},
            {"role": "system", "content": "mid-conversation note"},
            {"role": "user", "content": "go on"}
        ]);
        assert_eq!(c["messages"], expected_messages);
        assert_eq!(c["max_tokens"], 32000);
        assert_eq!(c["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            c["reasoning_effort"], "low",
            "output_config.effort overrides thinking"
        );
        assert_eq!(c["user"], "user_123");
        assert_eq!(c["temperature"], 1);
        assert_eq!(c["stop"], json!(["STOP"]));
        assert_eq!(c["tool_choice"], "auto");
        assert_eq!(c["parallel_tool_calls"], false);
        assert_eq!(c["tools"].as_array().unwrap().len(), 2);
        assert_eq!(c["tools"][0]["function"]["name"], "Bash");
        assert_eq!(
            c["tools"][0]["function"]["parameters"]["properties"]["command"]["type"],
            "string"
        );
        assert_eq!(c["tools"][1]["function"]["name"], "Read");
        for absent in [
            "top_k",
            "context_management",
            "metadata",
            "thinking",
            "output_config",
            "system",
        ] {
            assert!(c.get(absent).is_none(), "{absent} leaked");
        }
    }

    #[test]
    fn request_options() {
        let base = |extra: Value| {
            let mut r = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            r.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            chat_of(&r)
        };
        let c = base(json!({}));
        assert_eq!(c["messages"], json!([{"role": "user", "content": "hi"}]));
        assert!(c.get("stream").is_none() && c.get("max_tokens").is_none());
        for (budget, effort) in [(1024, "low"), (8000, "medium"), (20000, "high")] {
            let c = base(json!({"thinking": {"type": "enabled", "budget_tokens": budget}}));
            assert_eq!(c["reasoning_effort"], effort);
        }
        assert!(base(json!({"thinking": {"type": "disabled"}}))
            .get("reasoning_effort")
            .is_none());
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        let choice =
            |tc: Value| base(json!({"tools": tools, "tool_choice": tc}))["tool_choice"].clone();
        assert_eq!(choice(json!({"type": "any"})), "required");
        assert_eq!(choice(json!({"type": "none"})), "none");
        assert_eq!(
            choice(json!({"type": "tool", "name": "f"})),
            json!({"type": "function", "function": {"name": "f"}})
        );
        let c = base(json!({"system": "sys", "messages": [
            {"role": "user", "content": [{"type": "document", "title": "T", "source": {"type": "text", "data": "body"}}]},
            {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}
        ]}));
        assert_eq!(
            c["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(c["messages"][1]["content"], "T\n\nbody");
        assert_eq!(
            c["messages"][2]["content"][0]["image_url"]["url"],
            "https://x/y.png"
        );
        // Only server tools: no tools, no tool_choice.
        let c = base(
            json!({"tools": [{"type": "bash_20250124", "name": "bash"}], "tool_choice": {"type": "auto"}}),
        );
        assert!(c.get("tools").is_none() && c.get("tool_choice").is_none());
    }

    #[test]
    fn request_errors() {
        let e = err_of(b"{not json");
        assert_eq!((e.status, e.code), (400, "invalid_json"));
        assert_eq!(err_of(b"[1]").code, "invalid_json");
        let e = err_of(br#"{"messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("missing_required_parameter", Some("model"))
        );
        assert_eq!(
            err_of(br#"{"model":"m","messages":[]}"#).param.as_deref(),
            Some("messages")
        );
        let e = err_of(br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":3}]}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_type", Some("messages[1].content[0].type"))
        );
        let e = err_of(br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_value", Some("messages[0].role"))
        );
        let pdf = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"read"},
            {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}]}]}"#;
        let e = err_of(pdf);
        assert_eq!(
            (e.status, e.code, e.param.as_deref()),
            (400, "unsupported_content", Some("messages[0].content[1]"))
        );
        let e = err_of(br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#);
        assert_eq!(
            (e.code, e.param.as_deref()),
            (
                "unsupported_content",
                Some("messages[0].content[0].source.type")
            )
        );
        let forced = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "tools":[{"type":"web_search_20250305","name":"web_search"},{"name":"f"}],
            "tool_choice":{"type":"tool","name":"web_search"}}"#;
        let e = err_of(forced);
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("unsupported_tool", Some("tool_choice.name"))
        );
        let any = br#"{"model":"m","messages":[{"role":"user","content":"x"}],
            "tools":[{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"any"}}"#;
        assert_eq!(err_of(any).code, "unsupported_tool");
        let e =
            err_of(br#"{"model":"m","max_tokens":"9","messages":[{"role":"user","content":"x"}]}"#);
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = err_of(br#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"tool_use","name":"f","input":{}}]}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].id"));
        let body = request_error_body(&e);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("messages[0].content[0].id"));
    }

    #[test]
    fn count_tokens_grows_with_input() {
        let req = |text: &str, tools: Value, result: &str| {
            json!({"model": "m", "system": "sys", "tools": tools, "messages": [
                {"role": "user", "content": text},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"q": "x"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": result}]}
            ]})
            .to_string()
        };
        let small = count_tokens(req("hi", json!([]), "r").as_bytes()).unwrap();
        let long = count_tokens(req(&"word ".repeat(400), json!([]), "r").as_bytes()).unwrap();
        let tools = json!([{"name": "f", "description": "d".repeat(400), "input_schema": {"type": "object"}}]);
        let with_tools = count_tokens(req("hi", tools, "r").as_bytes()).unwrap();
        let big_result = count_tokens(req("hi", json!([]), &"r".repeat(400)).as_bytes()).unwrap();
        assert!(small > 0);
        assert!(long >= small + 450, "{small} {long}");
        assert!(with_tools >= small + 100, "{small} {with_tools}");
        assert!(big_result >= small + 90, "{small} {big_result}");
        let image = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A".repeat(100_000)}}]}]});
        let n = count_tokens(image.to_string().as_bytes()).unwrap();
        assert!((1000..1100).contains(&n), "{n}");
        assert_eq!(count_tokens(b"nope").unwrap_err().code, "invalid_json");
    }

    fn answer(message: Value, finish: &str) -> Value {
        let chat = json!({"id": "c", "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}}});
        let body = chat_to_messages_response(chat.to_string().as_bytes(), &ctx()).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn non_stream_text() {
        let v = answer(json!({"role": "assistant", "content": "Hello"}), "stop");
        assert_eq!(v["id"], "msg_abc");
        assert_eq!(v["type"], "message");
        assert_eq!(v["model"], "claude-sonnet-4-5");
        assert_eq!(v["content"], json!([{"type": "text", "text": "Hello"}]));
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["stop_sequence"], Value::Null);
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 40, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 60})
        );
        let v = answer(json!({"role": "assistant", "content": "Hel"}), "length");
        assert_eq!(v["stop_reason"], "max_tokens");
        let v = answer(
            json!({"role": "assistant", "content": null, "refusal": "no"}),
            "content_filter",
        );
        assert_eq!(v["stop_reason"], "refusal");
        assert_eq!(v["content"][0]["text"], "no");
        assert!(chat_to_messages_response(b"{\"choices\":[]}", &ctx()).is_err());
        assert!(chat_to_messages_response(b"<html>", &ctx()).is_err());
    }

    #[test]
    fn non_stream_tool_use_and_thinking() {
        let v = answer(
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                {"type": "function", "function": {"name": "Read", "arguments": "{broken"}}
            ]}),
            "stop",
        );
        assert_eq!(
            v["content"],
            json!([
                {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_abc_1", "name": "Read", "input": {}}
            ])
        );
        assert_eq!(v["stop_reason"], "tool_use");
        let v = answer(
            json!({"role": "assistant", "content": "  <think>plan</think>\n\nAnswer"}),
            "stop",
        );
        assert_eq!(
            v["content"],
            json!([{"type": "thinking", "thinking": "plan", "signature": ""}, {"type": "text", "text": "Answer"}])
        );
        let v = answer(
            json!({"role": "assistant", "content": "Answer", "reasoning_content": "why"}),
            "stop",
        );
        assert_eq!(
            v["content"][0],
            json!({"type": "thinking", "thinking": "why", "signature": ""})
        );
        assert_eq!(v["content"][1]["text"], "Answer");
    }

    #[test]
    fn stream_text_with_late_usage() {
        let ev = run(&[
            &chunk(json!({"role": "assistant", "content": ""})),
            &chunk(json!({"content": "Hel"})),
            &chunk(json!({"content": "lo"})),
            &finish_chunk("stop"),
            &json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
                .to_string(),
            "[DONE]",
            &chunk(json!({"content": "ignored"})),
        ]);
        assert_eq!(ev[0].1["message"]["usage"]["input_tokens"], 42);
        let b = blocks(&ev);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0, json!({"type": "text", "text": ""}));
        assert_eq!(b[0].1, "Hello");
        let delta = &ev[ev.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["output_tokens"], 3);
        assert_eq!(delta["usage"]["input_tokens"], 12);
        assert_eq!(ev.iter().filter(|e| e.0 == "message_stop").count(), 1);
    }

    #[test]
    fn stream_tool_calls_split_and_repeated() {
        let mut enc = MessagesStreamEncoder::new(ctx(), 1);
        let mut out = Vec::new();
        let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
            let mut c = json!({"index": index, "function": {"arguments": args}});
            if let Some(id) = id {
                c["id"] = json!(id);
                c["type"] = json!("function");
            }
            if let Some(name) = name {
                c["function"]["name"] = json!(name);
            }
            chunk(json!({"tool_calls": [c]}))
        };
        for c in [
            chunk(json!({"content": "Let me look."})),
            call(0, Some("call_a"), None, ""),
            call(0, None, Some("Bash"), "{\"comm"),
            call(0, Some("call_a"), Some("Bash"), ""),
            call(0, None, None, "and\":\"ls\"}"),
            call(0, None, None, "{\"command\":\"ls\"}"),
            call(1, Some("call_b"), Some("Read"), "{\"path\":"),
            call(1, None, None, "\"x\"}"),
            finish_chunk("tool_calls"),
        ] {
            enc.push(c.as_bytes(), &mut out);
        }
        enc.push(b"[DONE]", &mut out);
        let ev = events(&out);
        let b = blocks(&ev);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].1, "Let me look.");
        assert_eq!(
            b[1].0,
            json!({"type": "tool_use", "id": "call_a", "name": "Bash", "input": {}})
        );
        assert_eq!(b[1].1, "{\"command\":\"ls\"}");
        serde_json::from_str::<Value>(&b[1].1).unwrap();
        assert_eq!(b[2].0["id"], "call_b");
        assert_eq!(b[2].0["name"], "Read");
        assert_eq!(b[2].1, "{\"path\":\"x\"}");
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
        assert!(enc.usage().is_none());
        // Output estimate from the bytes sent when the upstream reports no usage.
        assert!(
            ev[ev.len() - 2].1["usage"]["output_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
    }

    #[test]
    fn stream_each_call_numbered_zero_and_no_arguments() {
        let ev = run(&[
            &chunk(
                json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
            ),
            &chunk(
                json!({"tool_calls": [{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{\"x\":1}"}}]}),
            ),
            &chunk(json!({"tool_calls": [{"index": 1, "function": {"name": "h"}}]})),
            &finish_chunk("stop"),
        ]);
        let b = blocks(&ev);
        let names: Vec<&str> = b.iter().map(|(s, _)| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["f", "g", "h"]);
        assert_eq!(b[1].1, "{\"x\":1}");
        assert_eq!(b[2].0["id"], "toolu_abc_2");
        assert_eq!(b[2].1, "");
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn stream_reasoning_then_text() {
        let ev = run(&[
            &chunk(json!({"reasoning_content": "Think"})),
            &chunk(json!({"reasoning": "ing."})),
            &chunk(json!({"content": "Done"})),
            &finish_chunk("length"),
        ]);
        let b = blocks(&ev);
        assert_eq!(
            b[0].0,
            json!({"type": "thinking", "thinking": "", "signature": ""})
        );
        assert_eq!(b[0].1, "Thinking.");
        assert_eq!(b[1].1, "Done");
        let sig = ev
            .iter()
            .position(|e| e.1["delta"]["type"] == "signature_delta")
            .unwrap();
        assert_eq!(ev[sig + 1].0, "content_block_stop");
        assert_eq!(ev[sig + 1].1["index"], 0);
        assert_eq!(ev[ev.len() - 2].1["delta"]["stop_reason"], "max_tokens");
    }

    #[test]
    fn stream_think_tags_split_across_chunks() {
        let ev = run(&[
            &chunk(json!({"content": "\n<th"})),
            &chunk(json!({"content": "ink>I should"})),
            &chunk(json!({"content": " say hi</th"})),
            &chunk(json!({"content": "ink>\n\n"})),
            &chunk(json!({"content": "Hi <b>there</b>"})),
            &finish_chunk("stop"),
        ]);
        let b = blocks(&ev);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0["type"], "thinking");
        assert_eq!(b[0].1, "I should say hi");
        assert_eq!(b[1].1, "Hi <b>there</b>");
        // Content that merely starts with `<` is text.
        let b = blocks(&run(&[
            &chunk(json!({"content": "<"})),
            &chunk(json!({"content": "html>"})),
        ]));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].1, "<html>");
    }

    #[test]
    fn stream_error_ends_without_message_stop() {
        let mut enc = MessagesStreamEncoder::new(ctx(), 5);
        let mut out = Vec::new();
        enc.push(chunk(json!({"content": "partial"})).as_bytes(), &mut out);
        let err = json!({"error": {"message": "upstream died", "type": "stream_error", "code": "upstream_stream_error"}});
        enc.push(err.to_string().as_bytes(), &mut out);
        enc.push(chunk(json!({"content": "more"})).as_bytes(), &mut out);
        enc.push(b"[DONE]", &mut out);
        enc.finish(&mut out);
        let ev = events(&out);
        let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "error"
            ]
        );
        assert_eq!(
            ev[4].1["error"],
            json!({"type": "api_error", "message": "upstream died"})
        );
        let mut enc = MessagesStreamEncoder::new(ctx(), 5);
        let mut out = Vec::new();
        enc.push(
            br#"{"error":{"message":"busy","type":"service_unavailable","code":"no_capacity"}}"#,
            &mut out,
        );
        assert_eq!(events(&out)[2].1["error"]["type"], "overloaded_error");
    }

    #[test]
    fn stream_empty_is_a_valid_message() {
        let ev = run(&["[DONE]"]);
        let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["message_start", "ping", "message_delta", "message_stop"]
        );
        assert_eq!(ev[2].1["delta"]["stop_reason"], "end_turn");
        assert_eq!(ev[2].1["usage"]["input_tokens"], 42);
        assert_eq!(ev[0].1["message"]["content"], json!([]));
        // finish() alone, without start(), also makes a whole message.
        let mut enc = MessagesStreamEncoder::new(ctx(), 0);
        let mut out = Vec::new();
        enc.finish(&mut out);
        assert_eq!(events(&out).len(), 4);
    }

    #[test]
    fn families_and_error_types() {
        assert_eq!(claude_family("claude-opus-4-1-20250805"), Some("opus"));
        assert_eq!(claude_family("claude-3-5-haiku-latest"), Some("haiku"));
        assert_eq!(claude_family("claude-sonnet-4-5"), Some("sonnet"));
        assert_eq!(claude_family("claude-haiku-4-5-20251001"), Some("haiku"));
        assert_eq!(claude_family("anthropic/claude-3.7-sonnet"), Some("sonnet"));
        assert_eq!(claude_family("gpt-4o"), None);
        assert_eq!(claude_family("sonnet-imitation"), None);
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "overloaded_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
            (501, "api_error"),
        ] {
            assert_eq!(error_type_for_status(status), kind, "{status}");
        }
        let v: Value = serde_json::from_slice(&error_body(429, "slow down")).unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
        );
    }
}
