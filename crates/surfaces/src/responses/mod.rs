//! The OpenAI Responses API surface (`POST /v1/responses`, as used by Codex CLI and `client.responses.create`).
//!
//! The gateway is stateless, so whatever needs server-side state (`previous_response_id`, `conversation`,
//! `background`, file ids, item references) is refused with a 400 that says so; `store` is accepted and every
//! response reports `"store": false`. Hosted tools (`web_search`, `file_search`, …) cannot run here: they are dropped
//! (their names land in [`ResponseContext::dropped_tools`]) unless `tool_choice` forces one, which is a 400.
//!
//! Nothing here builds `serde_json::Value` trees on the common paths: requests and upstream answers are read through
//! lenient, borrowing views (below), pass-through fields stay raw JSON text, and output is written straight into the
//! byte buffer.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

mod answer;
mod request;
mod stream;
#[cfg(test)]
mod tests;

use answer::*;

pub use answer::{chat_to_responses_response, error_body};
pub use request::{parse, responses_to_chat_request, ResponseContext};
pub use stream::ResponsesStreamEncoder;

// ---- lenient JSON views -----------------------------------------------------------------------------------------
//
// A view reads only the members it names (a repeated member's last value wins, as with `Value`) and never fails on
// a member of an unexpected type: each kind of value it does not take reads as the view's default, the way
// `Value::get(..).and_then(Value::as_str)` and friends would see it.

/// A member's raw JSON text, `null` included; `Raw(None)` when the member is absent.
#[derive(Clone, Copy, Default, Debug)]
struct Raw<'a>(Option<&'a RawValue>);

impl<'a> Raw<'a> {
    /// The value, unless it is absent or `null`.
    fn present(self) -> Option<&'a RawValue> {
        self.0.filter(|r| r.get() != "null")
    }
}

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Raw(Some(r)))
    }
}

fn first_byte(r: &RawValue) -> u8 {
    r.get().as_bytes().first().copied().unwrap_or(b'n')
}

fn is_str(r: &RawValue) -> bool {
    first_byte(r) == b'"'
}

fn is_obj(r: &RawValue) -> bool {
    first_byte(r) == b'{'
}

fn is_arr(r: &RawValue) -> bool {
    first_byte(r) == b'['
}

fn is_bool(r: &RawValue) -> bool {
    matches!(r.get(), "true" | "false")
}

fn is_num(r: &RawValue) -> bool {
    matches!(first_byte(r), b'-' | b'0'..=b'9')
}

/// Whether a JSON number is one `Value` would hold as an integer (`is_i64() || is_u64()`).
fn is_int(r: &RawValue) -> bool {
    let s = r.get();
    is_num(r)
        && !s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
        && (s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok())
}

/// The string a raw JSON string holds: borrowed when it has no escapes.
fn raw_str(r: &RawValue) -> Option<Cow<'_, str>> {
    let s = r.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(s).ok().map(Cow::Owned)
}

/// A raw value read as a view (views accept any JSON, so this only defaults on text that is not JSON).
fn view_of<'a, T: Deserialize<'a> + Default>(r: &'a RawValue) -> T {
    serde_json::from_str(r.get()).unwrap_or_default()
}

/// A raw object read through a view (the default when it is not an object).
fn obj_of<'a, T: FromMap<'a>>(r: &'a RawValue) -> T {
    parse_top(r.get()).unwrap_or_default()
}

/// A raw value as a `Value`, for the rare paths that re-serialize it the way `Value` does.
fn value_of(r: &RawValue) -> Value {
    serde_json::from_str(r.get()).unwrap_or(Value::Null)
}

/// An object view: takes the members it knows.
trait FromMap<'de>: Default {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, a: &mut A) -> Result<(), A::Error>;
}

fn read_map<'de, T: FromMap<'de>, A: MapAccess<'de>>(mut a: A) -> Result<T, A::Error> {
    let mut out = T::default();
    while let Some(Key(k)) = a.next_key()? {
        out.field(&k, &mut a)?;
    }
    Ok(out)
}

/// An object key, borrowed unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A top-level JSON object read through a view; anything else is an error.
fn parse_top<'de, T: FromMap<'de>>(s: &'de str) -> Result<T, serde_json::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: FromMap<'de>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<T, A::Error> {
            read_map(a)
        }
    }
    let mut d = serde_json::Deserializer::from_str(s);
    let v = Deserializer::deserialize_map(&mut d, V(PhantomData))?;
    d.end()?;
    Ok(v)
}

fn drain_map<'de, A: MapAccess<'de>>(a: &mut A) -> Result<(), A::Error> {
    while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_seq<'de, A: SeqAccess<'de>>(a: &mut A) -> Result<(), A::Error> {
    while a.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// How a lenient value takes each kind of JSON value; what it does not take is skipped and reads as the default.
trait Lax<'de>: Default {
    fn string(_: Cow<'de, str>) -> Self {
        Self::default()
    }
    fn unsigned(_: u64) -> Self {
        Self::default()
    }
    fn signed(_: i64) -> Self {
        Self::default()
    }
    fn float(_: f64) -> Self {
        Self::default()
    }
    fn boolean(_: bool) -> Self {
        Self::default()
    }
    fn null() -> Self {
        Self::default()
    }
    fn map<A: MapAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        drain_map(&mut a)?;
        Ok(Self::default())
    }
    fn seq<A: SeqAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        drain_seq(&mut a)?;
        Ok(Self::default())
    }
}

struct LaxV<T>(PhantomData<T>);

impl<'de, T: Lax<'de>> Visitor<'de> for LaxV<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok(T::boolean(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok(T::signed(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::unsigned(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Ok(T::float(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok(T::string(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::string(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        Ok(T::string(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::null())
    }
    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<T, A::Error> {
        T::map(a)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<T, A::Error> {
        T::seq(a)
    }
}

fn lax<'de, D: Deserializer<'de>, T: Lax<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(LaxV(PhantomData))
}

/// A string member (`str_of`).
#[derive(Default)]
struct Str<'de>(Option<Cow<'de, str>>);

impl<'de> Str<'de> {
    fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de> Lax<'de> for Str<'de> {
    fn string(s: Cow<'de, str>) -> Self {
        Str(Some(s))
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lax(d)
    }
}

/// An object member read through a view; `None` for anything but an object.
struct Obj<T>(Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<'de, T: FromMap<'de>> Lax<'de> for Obj<T> {
    fn map<A: MapAccess<'de>>(a: A) -> Result<Self, A::Error> {
        read_map(a).map(|t| Obj(Some(t)))
    }
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lax(d)
    }
}

/// An array member; `None` for anything but an array.
struct Arr<T>(Option<Vec<T>>);

impl<T> Default for Arr<T> {
    fn default() -> Self {
        Arr(None)
    }
}

impl<'de, T: Deserialize<'de>> Lax<'de> for Arr<T> {
    fn seq<A: SeqAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element()? {
            v.push(x);
        }
        Ok(Arr(Some(v)))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lax(d)
    }
}

/// Declares an object view: `name<'de> { field: Type = "key", … }`.
macro_rules! view {
    ($name:ident<$de:lifetime> { $($field:ident: $ty:ty = $key:literal),* $(,)? }) => {
        #[derive(Default)]
        struct $name<$de> {
            $($field: $ty,)*
            _de: PhantomData<&$de ()>,
        }
        impl<$de> FromMap<$de> for $name<$de> {
            fn field<A: MapAccess<$de>>(&mut self, key: &str, a: &mut A) -> Result<(), A::Error> {
                match key {
                    $($key => self.$field = a.next_value()?,)*
                    _ => {
                        a.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(())
            }
        }
    };
}

view!(TextPart<'de> { text: Str<'de> = "text" });

// Request views.
view!(Req<'de> {
    model: Raw<'de> = "model",
    stream: Raw<'de> = "stream",
    store: Raw<'de> = "store",
    previous_response_id: Raw<'de> = "previous_response_id",
    conversation: Raw<'de> = "conversation",
    background: Raw<'de> = "background",
    instructions: Raw<'de> = "instructions",
    input: Input<'de> = "input",
    tools: Raw<'de> = "tools",
    tool_choice: Raw<'de> = "tool_choice",
    parallel_tool_calls: Raw<'de> = "parallel_tool_calls",
    max_output_tokens: Raw<'de> = "max_output_tokens",
    temperature: Raw<'de> = "temperature",
    top_p: Raw<'de> = "top_p",
    seed: Raw<'de> = "seed",
    user: Raw<'de> = "user",
    text: Raw<'de> = "text",
    reasoning: Raw<'de> = "reasoning",
    metadata: Raw<'de> = "metadata",
});
view!(Item<'de> {
    kind: Raw<'de> = "type",
    role: Raw<'de> = "role",
    content: Raw<'de> = "content",
    call_id: Raw<'de> = "call_id",
    name: Raw<'de> = "name",
    arguments: Raw<'de> = "arguments",
    output: Raw<'de> = "output",
});
view!(Part<'de> {
    kind: Raw<'de> = "type",
    text: Raw<'de> = "text",
    refusal: Raw<'de> = "refusal",
    file_id: Raw<'de> = "file_id",
    image_url: Raw<'de> = "image_url",
    detail: Raw<'de> = "detail",
});
view!(UrlView<'de> { url: Raw<'de> = "url" });
view!(Tool<'de> {
    kind: Raw<'de> = "type",
    name: Raw<'de> = "name",
    description: Raw<'de> = "description",
    parameters: Raw<'de> = "parameters",
    strict: Raw<'de> = "strict",
    tools: Raw<'de> = "tools",
});
view!(ChoiceView<'de> {
    kind: Raw<'de> = "type",
    name: Raw<'de> = "name",
    function: Raw<'de> = "function",
    mode: Raw<'de> = "mode",
});
view!(NameView<'de> { name: Raw<'de> = "name" });
view!(TextView<'de> { format: Raw<'de> = "format" });
view!(FormatView<'de> {
    kind: Raw<'de> = "type",
    name: Raw<'de> = "name",
    schema: Raw<'de> = "schema",
    strict: Raw<'de> = "strict",
    description: Raw<'de> = "description",
});
view!(ReasoningView<'de> { effort: Raw<'de> = "effort" });

/// The request's `input`.
#[derive(Default)]
enum Input<'de> {
    #[default]
    Null,
    Str(Cow<'de, str>),
    Items(Vec<Obj<Item<'de>>>),
    Other,
}

impl<'de> Lax<'de> for Input<'de> {
    fn string(s: Cow<'de, str>) -> Self {
        Input::Str(s)
    }
    fn unsigned(_: u64) -> Self {
        Input::Other
    }
    fn signed(_: i64) -> Self {
        Input::Other
    }
    fn float(_: f64) -> Self {
        Input::Other
    }
    fn boolean(_: bool) -> Self {
        Input::Other
    }
    fn map<A: MapAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        drain_map(&mut a)?;
        Ok(Input::Other)
    }
    fn seq<A: SeqAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(x) = a.next_element()? {
            items.push(x);
        }
        Ok(Input::Items(items))
    }
}

impl<'de> Deserialize<'de> for Input<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lax(d)
    }
}

// Answer views: a chat.completion, and a chat.completion.chunk.

// ---- JSON writing -----------------------------------------------------------------------------------------------

/// A JSON string, escaped.
fn put_str(out: &mut Vec<u8>, s: &str) {
    crate::json::esc(out, s);
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    crate::json::num(out, n);
}

fn put_raw(out: &mut Vec<u8>, r: &RawValue) {
    out.extend_from_slice(r.get().as_bytes());
}

fn put_raw_or(out: &mut Vec<u8>, r: Option<&RawValue>, default: &str) {
    out.extend_from_slice(r.map_or(default, RawValue::get).as_bytes());
}

/// Raw JSON without insignificant whitespace (echoed request fields go into one-line SSE `data:`).
fn put_compact(out: &mut Vec<u8>, r: &RawValue) {
    let s = r.get().as_bytes();
    let ws = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
    if !s.iter().copied().any(ws) {
        out.extend_from_slice(s);
        return;
    }
    let (mut in_str, mut esc) = (false, false);
    for &b in s {
        if in_str {
            out.push(b);
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if b == b'"' {
            in_str = true;
            out.push(b);
        } else if !ws(b) {
            out.push(b);
        }
    }
}

fn put_compact_or(out: &mut Vec<u8>, r: Option<&RawValue>, default: &str) {
    match r {
        Some(r) => put_compact(out, r),
        None => out.extend_from_slice(default.as_bytes()),
    }
}
