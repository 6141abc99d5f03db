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

mod answer;
mod request;
mod stream;
#[cfg(test)]
mod tests;

use answer::*;

pub use answer::{
    chat_to_messages_response, claude_family, error_body, error_type_for_status, request_error_body,
};
pub use request::{count_tokens, messages_to_chat_request, parse};
pub use stream::MessagesStreamEncoder;

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
