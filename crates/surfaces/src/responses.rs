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

use crate::{ChatRequest, RequestError};

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";

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

/// An unsigned integer member (`as_u64`).
#[derive(Default, Clone, Copy)]
struct Num(Option<u64>);

impl<'de> Lax<'de> for Num {
    fn unsigned(v: u64) -> Self {
        Num(Some(v))
    }
    fn signed(v: i64) -> Self {
        Num(u64::try_from(v).ok())
    }
}

impl<'de> Deserialize<'de> for Num {
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

/// The first element of an array member (`pointer("/x/0")`).
struct First<T>(Option<T>);

impl<T> Default for First<T> {
    fn default() -> Self {
        First(None)
    }
}

impl<'de, T: Deserialize<'de>> Lax<'de> for First<T> {
    fn seq<A: SeqAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        let first = a.next_element()?;
        drain_seq(&mut a)?;
        Ok(First(first))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lax(d)
    }
}

/// A member that was present (even as `null`): `Value::get(..).is_some()`.
struct Had<T>(Option<T>);

impl<T> Default for Had<T> {
    fn default() -> Self {
        Had(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Had<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|t| Had(Some(t)))
    }
}

/// A string, or the concatenated `text` of an array of parts; empty for anything else.
struct TextOf<'de>(Cow<'de, str>);

impl Default for TextOf<'_> {
    fn default() -> Self {
        TextOf(Cow::Borrowed(""))
    }
}

impl<'de> Lax<'de> for TextOf<'de> {
    fn string(s: Cow<'de, str>) -> Self {
        TextOf(s)
    }
    fn seq<A: SeqAccess<'de>>(mut a: A) -> Result<Self, A::Error> {
        let mut text = String::new();
        while let Some(Obj(part)) = a.next_element::<Obj<TextPart>>()? {
            if let Some(t) = part.as_ref().and_then(|p| p.text.get()) {
                text.push_str(t);
            }
        }
        Ok(TextOf(Cow::Owned(text)))
    }
}

impl<'de> Deserialize<'de> for TextOf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lax(d)
    }
}

/// Any value: strings borrowed, `null`/absent apart, everything else (rare) as a `Value`.
#[derive(Default)]
enum Any<'de> {
    #[default]
    Null,
    Str(Cow<'de, str>),
    Other(Value),
}

impl<'de> Lax<'de> for Any<'de> {
    fn string(s: Cow<'de, str>) -> Self {
        Any::Str(s)
    }
    fn unsigned(v: u64) -> Self {
        Any::Other(v.into())
    }
    fn signed(v: i64) -> Self {
        Any::Other(v.into())
    }
    fn float(v: f64) -> Self {
        Any::Other(v.into())
    }
    fn boolean(v: bool) -> Self {
        Any::Other(v.into())
    }
    fn map<A: MapAccess<'de>>(a: A) -> Result<Self, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(a)).map(Any::Other)
    }
    fn seq<A: SeqAccess<'de>>(a: A) -> Result<Self, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(a)).map(Any::Other)
    }
}

impl<'de> Deserialize<'de> for Any<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lax(d)
    }
}

/// Tool-call arguments: a string as is, anything else (an object some upstreams send) serialized.
fn args_of<'a>(v: &'a Any<'_>) -> Cow<'a, str> {
    match v {
        Any::Str(s) => Cow::Borrowed(s),
        Any::Null => Cow::Borrowed(""),
        Any::Other(other) => Cow::Owned(other.to_string()),
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
view!(Completion<'de> {
    error: Raw<'de> = "error",
    model: Str<'de> = "model",
    choices: First<Obj<Choice<'de>>> = "choices",
    usage: Obj<UsageView<'de>> = "usage",
});
view!(Choice<'de> {
    message: Obj<MessageView<'de>> = "message",
    finish_reason: Str<'de> = "finish_reason",
});
view!(Chunk<'de> {
    error: Raw<'de> = "error",
    model: Str<'de> = "model",
    choices: First<Obj<ChunkChoice<'de>>> = "choices",
    usage: Obj<UsageView<'de>> = "usage",
});
view!(ChunkChoice<'de> {
    delta: Obj<Delta<'de>> = "delta",
    finish_reason: Str<'de> = "finish_reason",
});
view!(MessageView<'de> {
    reasoning_content: Had<TextOf<'de>> = "reasoning_content",
    reasoning: Had<TextOf<'de>> = "reasoning",
    content: TextOf<'de> = "content",
    refusal: TextOf<'de> = "refusal",
    tool_calls: Arr<Obj<CallView<'de>>> = "tool_calls",
});
view!(Delta<'de> {
    reasoning_content: Str<'de> = "reasoning_content",
    reasoning: Str<'de> = "reasoning",
    content: Str<'de> = "content",
    refusal: Str<'de> = "refusal",
    tool_calls: Arr<Obj<CallView<'de>>> = "tool_calls",
});
view!(CallView<'de> {
    index: Num = "index",
    id: Str<'de> = "id",
    function: Obj<FunctionView<'de>> = "function",
});
view!(FunctionView<'de> {
    name: Str<'de> = "name",
    arguments: Any<'de> = "arguments",
});
view!(UsageView<'de> {
    prompt_tokens: Num = "prompt_tokens",
    completion_tokens: Num = "completion_tokens",
    total_tokens: Num = "total_tokens",
    prompt_tokens_details: Obj<CachedView<'de>> = "prompt_tokens_details",
    completion_tokens_details: Obj<ReasoningTokensView<'de>> = "completion_tokens_details",
});
view!(CachedView<'de> { cached_tokens: Num = "cached_tokens" });
view!(ReasoningTokensView<'de> { reasoning_tokens: Num = "reasoning_tokens" });

// ---- JSON writing -----------------------------------------------------------------------------------------------

/// A JSON string, escaped.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    let _ = serde_json::to_writer(&mut *out, &n);
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

// ---- request direction ------------------------------------------------------------------------------------------

/// What the request leaves for the answer: ids, the model the client named, and the request parameters every
/// Responses `response` object echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseContext {
    pub response_id: String,
    pub model: String,
    pub created_at: u64,
    pub stream: bool,
    /// Names (or types, for unnamed ones) of the hosted / non-function tools that were dropped, for the caller to log.
    pub dropped_tools: Vec<String>,
    /// The echoed fields (`instructions`, `tools`, `tool_choice`, `parallel_tool_calls`, `text`, `reasoning`,
    /// `max_output_tokens`, `temperature`, `top_p`, `metadata`, `store`, `truncation`, …), rendered once as the
    /// compact members of a JSON object without the braces: `"instructions":…,"tools":[…],…`.
    pub echo: String,
}

impl ResponseContext {
    /// Builds the context from the raw request body. Lenient: a body the codec refuses still yields a context.
    pub fn from_request(body: &[u8], response_id: String, created_at: u64) -> Self {
        let m = std::str::from_utf8(body)
            .ok()
            .and_then(|s| parse_top::<Req>(s).ok())
            .unwrap_or_default();
        let dropped = map_tools(m.tools).map(|(_, d)| d).unwrap_or_default();
        build_context(&m, response_id, created_at, dropped)
    }
}

/// Parses the request once, returning both the chat-completions request and the context for the answer.
pub fn parse(
    body: &[u8],
    response_id: String,
    created_at: u64,
) -> Result<(ChatRequest, ResponseContext), RequestError> {
    let m = parse_object(body)?;
    let (chat, dropped) = build_chat(&m)?;
    Ok((chat, build_context(&m, response_id, created_at, dropped)))
}

/// Request direction: a Responses request body → the chat-completions request.
pub fn responses_to_chat_request(body: &[u8]) -> Result<ChatRequest, RequestError> {
    build_chat(&parse_object(body)?).map(|(chat, _)| chat)
}

fn parse_object(body: &[u8]) -> Result<Req<'_>, RequestError> {
    let typed = std::str::from_utf8(body).map(parse_top::<Req>);
    let message = match typed {
        Ok(Ok(m)) => return Ok(m),
        // The error text is the one a `Value` parse gives.
        _ => match serde_json::from_slice::<Value>(body) {
            Ok(v) if v.is_object() => "the request body is not valid JSON".to_string(),
            Ok(_) => "the request body must be a JSON object".to_string(),
            Err(e) => format!("the request body is not valid JSON: {e}"),
        },
    };
    Err(RequestError {
        status: 400,
        code: "invalid_json",
        param: None,
        message,
    })
}

fn err(code: &'static str, param: impl Into<String>, message: impl Into<String>) -> RequestError {
    RequestError::invalid(code, param, message)
}

fn type_err(param: &str, want: &str) -> RequestError {
    err("invalid_type", param, format!("`{param}` must be {want}"))
}

fn missing(param: String) -> RequestError {
    let message = format!("`{param}` is required");
    err("missing_required_parameter", param, message)
}

/// A present member that must be a string: its raw text.
fn opt_str<'a>(r: Raw<'a>, param: &str) -> Result<Option<&'a RawValue>, RequestError> {
    match r.present() {
        None => Ok(None),
        Some(x) if is_str(x) => Ok(Some(x)),
        Some(_) => Err(type_err(param, "a string")),
    }
}

/// A required string member `{prefix}.{key}`: its raw text.
fn req_str<'a>(r: Raw<'a>, prefix: &str, key: &str) -> Result<&'a RawValue, RequestError> {
    match r.present() {
        Some(x) if is_str(x) => Ok(x),
        Some(_) => Err(type_err(&format!("{prefix}.{key}"), "a string")),
        None => Err(missing(format!("{prefix}.{key}"))),
    }
}

/// The decoded text of a raw JSON string.
fn text(r: &RawValue) -> Cow<'_, str> {
    raw_str(r).unwrap_or(Cow::Borrowed(""))
}

fn opt_bool(r: Raw, key: &str) -> Result<Option<bool>, RequestError> {
    match r.present().map(RawValue::get) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(type_err(key, "a boolean")),
    }
}

/// A member that must be a number (`integer`: an integer), passed through as is.
fn num<'a>(r: Raw<'a>, key: &str, integer: bool) -> Result<Option<&'a RawValue>, RequestError> {
    let Some(v) = r.present() else {
        return Ok(None);
    };
    let (ok, want) = if integer {
        (is_int(v), "an integer")
    } else {
        (is_num(v), "a number")
    };
    if !ok {
        return Err(type_err(key, want));
    }
    Ok(Some(v))
}

fn stateless(code: &'static str, param: &str, what: &str) -> RequestError {
    let message = format!(
        "this gateway is stateless and keeps no {what}; resend the full conversation in `input`"
    );
    err(code, param, message)
}

/// Chat text: raw JSON string text from the request, or a string built here.
enum Txt<'a> {
    Raw(&'a RawValue),
    Str(Cow<'a, str>),
}

impl Txt<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Txt::Raw(r) => r.get() == "\"\"",
            Txt::Str(s) => s.is_empty(),
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Txt::Raw(r) => put_raw(out, r),
            Txt::Str(s) => put_str(out, s),
        }
    }
}

enum ChatPart<'a> {
    Text(&'a RawValue),
    Image {
        url: &'a RawValue,
        detail: Option<&'a RawValue>,
    },
}

enum Content<'a> {
    Null,
    Text(Txt<'a>),
    Parts(Vec<ChatPart<'a>>),
}

struct ChatCall<'a> {
    id: &'a RawValue,
    name: &'a RawValue,
    arguments: Txt<'a>,
}

struct ChatMsg<'a> {
    role: &'static str,
    content: Content<'a>,
    tool_call_id: Option<&'a RawValue>,
    tool_calls: Vec<ChatCall<'a>>,
}

impl<'a> ChatMsg<'a> {
    fn new(role: &'static str, content: Content<'a>) -> Self {
        ChatMsg {
            role,
            content,
            tool_call_id: None,
            tool_calls: Vec::new(),
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"role\":\"");
        out.extend_from_slice(self.role.as_bytes());
        out.extend_from_slice(b"\",\"content\":");
        match &self.content {
            Content::Null => out.extend_from_slice(b"null"),
            Content::Text(t) => t.put(out),
            Content::Parts(parts) => {
                out.push(b'[');
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match p {
                        ChatPart::Text(t) => {
                            out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                            put_raw(out, t);
                        }
                        ChatPart::Image { url, detail } => {
                            out.extend_from_slice(
                                b"{\"type\":\"image_url\",\"image_url\":{\"url\":",
                            );
                            put_raw(out, url);
                            if let Some(d) = detail {
                                out.extend_from_slice(b",\"detail\":");
                                put_raw(out, d);
                            }
                            out.push(b'}');
                        }
                    }
                    out.push(b'}');
                }
                out.push(b']');
            }
        }
        if let Some(id) = self.tool_call_id {
            out.extend_from_slice(b",\"tool_call_id\":");
            put_raw(out, id);
        }
        if !self.tool_calls.is_empty() {
            out.extend_from_slice(b",\"tool_calls\":[");
            for (i, c) in self.tool_calls.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"id\":");
                put_raw(out, c.id);
                out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                put_raw(out, c.name);
                out.extend_from_slice(b",\"arguments\":");
                c.arguments.put(out);
                out.extend_from_slice(b"}}");
            }
            out.push(b']');
        }
        out.push(b'}');
    }
}

struct ChatTool<'a> {
    name: &'a RawValue,
    description: Option<&'a RawValue>,
    parameters: Option<&'a RawValue>,
    strict: Option<&'a RawValue>,
}

enum ToolChoice<'a> {
    Raw(&'a RawValue),
    Auto,
    Function(&'a RawValue),
}

enum Format<'a> {
    JsonObject,
    JsonSchema {
        name: Option<&'a RawValue>,
        schema: Option<&'a RawValue>,
        strict: Option<&'a RawValue>,
        description: Option<&'a RawValue>,
    },
}

fn build_chat<'a>(m: &'a Req<'a>) -> Result<(ChatRequest, Vec<String>), RequestError> {
    let missing_model = || err("missing_model", "model", "`model` is required");
    let model = match m.model.present() {
        Some(r) if is_str(r) => match raw_str(r) {
            Some(s) if !s.is_empty() => s.into_owned(),
            _ => return Err(missing_model()),
        },
        None => return Err(missing_model()),
        Some(_) => return Err(type_err("model", "a string")),
    };
    let stream = opt_bool(m.stream, "stream")?.unwrap_or(false);
    opt_bool(m.store, "store")?; // accepted either way; nothing is ever stored (responses say `"store": false`)
    if m.previous_response_id.present().is_some() {
        return Err(stateless(
            "previous_response_not_supported",
            "previous_response_id",
            "previous responses",
        ));
    }
    if m.conversation.present().is_some() {
        return Err(stateless(
            "conversation_not_supported",
            "conversation",
            "conversations",
        ));
    }
    if opt_bool(m.background, "background")? == Some(true) {
        return Err(err(
            "background_not_supported",
            "background",
            "background responses are not supported",
        ));
    }

    let mut messages = Vec::new();
    if let Some(s) = opt_str(m.instructions, "instructions")?.filter(|s| s.get() != "\"\"") {
        messages.push(ChatMsg::new("system", Content::Text(Txt::Raw(s))));
    }
    match &m.input {
        Input::Null => {}
        Input::Str(s) => messages.push(ChatMsg::new(
            "user",
            Content::Text(Txt::Str(Cow::Borrowed(s))),
        )),
        Input::Items(items) => {
            for (i, item) in items.iter().enumerate() {
                map_item(i, item, &mut messages)?;
            }
        }
        Input::Other => return Err(type_err("input", "a string or an array of input items")),
    }
    if messages.is_empty() {
        return Err(err(
            "missing_input",
            "input",
            "`input` must contain at least one message",
        ));
    }

    let (tools, dropped) = map_tools(m.tools)?;
    let tool_choice = map_tool_choice(m.tool_choice)?;
    let parallel = opt_bool(m.parallel_tool_calls, "parallel_tool_calls")?;
    let max_tokens = num(m.max_output_tokens, "max_output_tokens", true)?;
    let temperature = num(m.temperature, "temperature", false)?;
    let top_p = num(m.top_p, "top_p", false)?;
    let seed = num(m.seed, "seed", true)?;
    let user = opt_str(m.user, "user")?;
    let format = map_text_format(m.text)?;
    let mut effort = None;
    if let Some(r) = m.reasoning.present() {
        if !is_obj(r) {
            return Err(type_err("reasoning", "an object"));
        }
        // Not every reasoning upstream knows "minimal"; "low" is the nearest value they all accept. Other
        // efforts pass as given. `reasoning.summary` has no chat equivalent and is ignored.
        let r: ReasoningView = obj_of(r);
        effort = opt_str(r.effort, "reasoning.effort")?;
    }
    // `metadata`, `include`, `prompt_cache_key`, `client_metadata`, `safety_identifier`, `service_tier`,
    // `truncation`, `top_logprobs`, `stream_options` and `store` are accepted and not forwarded.

    let mut out = Vec::with_capacity(128 + m.input_len_hint());
    out.extend_from_slice(b"{\"model\":");
    put_str(&mut out, &model);
    out.extend_from_slice(b",\"messages\":[");
    for (i, msg) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        msg.put(&mut out);
    }
    out.push(b']');
    if stream {
        out.extend_from_slice(b",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    }
    // With no function tool left there is nothing to choose from; many upstreams reject a bare `tool_choice`.
    if !tools.is_empty() {
        out.extend_from_slice(b",\"tools\":[");
        for (i, t) in tools.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"type\":\"function\",\"function\":{\"name\":");
            put_raw(&mut out, t.name);
            for (key, v) in [
                (&b",\"description\":"[..], t.description),
                (b",\"parameters\":", t.parameters),
                (b",\"strict\":", t.strict),
            ] {
                if let Some(v) = v {
                    out.extend_from_slice(key);
                    put_raw(&mut out, v);
                }
            }
            out.extend_from_slice(b"}}");
        }
        out.push(b']');
        match tool_choice {
            None => {}
            Some(ToolChoice::Raw(r)) => {
                out.extend_from_slice(b",\"tool_choice\":");
                put_raw(&mut out, r);
            }
            Some(ToolChoice::Auto) => out.extend_from_slice(b",\"tool_choice\":\"auto\""),
            Some(ToolChoice::Function(name)) => {
                out.extend_from_slice(
                    b",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":",
                );
                put_raw(&mut out, name);
                out.extend_from_slice(b"}}");
            }
        }
        if let Some(p) = parallel {
            out.extend_from_slice(if p {
                b",\"parallel_tool_calls\":true"
            } else {
                b",\"parallel_tool_calls\":false"
            });
        }
    }
    for (key, v) in [
        (&b",\"max_tokens\":"[..], max_tokens),
        (b",\"temperature\":", temperature),
        (b",\"top_p\":", top_p),
        (b",\"seed\":", seed),
        (b",\"user\":", user),
    ] {
        if let Some(v) = v {
            out.extend_from_slice(key);
            put_raw(&mut out, v);
        }
    }
    match format {
        None => {}
        Some(Format::JsonObject) => {
            out.extend_from_slice(b",\"response_format\":{\"type\":\"json_object\"}")
        }
        Some(Format::JsonSchema {
            name,
            schema,
            strict,
            description,
        }) => {
            out.extend_from_slice(
                b",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":",
            );
            put_raw_or(&mut out, name, "\"response\"");
            for (key, v) in [
                (&b",\"schema\":"[..], schema),
                (b",\"strict\":", strict),
                (b",\"description\":", description),
            ] {
                if let Some(v) = v {
                    out.extend_from_slice(key);
                    put_raw(&mut out, v);
                }
            }
            out.extend_from_slice(b"}}");
        }
    }
    if let Some(e) = effort {
        out.extend_from_slice(b",\"reasoning_effort\":");
        if e.get() == "\"minimal\"" || raw_str(e).as_deref() == Some("minimal") {
            out.extend_from_slice(b"\"low\"");
        } else {
            put_raw(&mut out, e);
        }
    }
    out.push(b'}');
    let chat = ChatRequest {
        body: out,
        model,
        stream,
    };
    Ok((chat, dropped))
}

impl Req<'_> {
    /// A rough size for the chat body buffer.
    fn input_len_hint(&self) -> usize {
        match &self.input {
            Input::Str(s) => s.len(),
            _ => 256,
        }
    }
}

fn map_item<'a>(
    i: usize,
    item: &'a Obj<Item<'a>>,
    messages: &mut Vec<ChatMsg<'a>>,
) -> Result<(), RequestError> {
    let p = format!("input[{i}]");
    let Some(item) = &item.0 else {
        return Err(type_err(&p, "an object"));
    };
    let kind = match item.kind.present() {
        Some(t) if is_str(t) => text(t),
        None if item.role.0.is_some() => Cow::Borrowed("message"),
        _ => {
            return Err(err(
                "unsupported_input_item",
                format!("{p}.type"),
                "every input item needs a `type`",
            ))
        }
    };
    match &*kind {
        "message" => map_message(&p, item, messages),
        "function_call" => {
            let (id, name) = (
                req_str(item.call_id, &p, "call_id")?,
                req_str(item.name, &p, "name")?,
            );
            let arguments = match item.arguments.present() {
                None => Txt::Str(Cow::Borrowed("{}")),
                Some(s) if is_str(s) => Txt::Raw(s),
                Some(v) if is_obj(v) => Txt::Str(Cow::Owned(value_of(v).to_string())),
                Some(_) => return Err(type_err(&format!("{p}.arguments"), "a string")),
            };
            let call = ChatCall {
                id,
                name,
                arguments,
            };
            // Parallel calls (consecutive function_call items) and a directly preceding assistant text message
            // form one chat assistant message.
            if let Some(last) = messages.last_mut().filter(|l| l.role == "assistant") {
                if matches!(&last.content, Content::Text(t) if t.is_empty()) {
                    last.content = Content::Null;
                }
                last.tool_calls.push(call);
            } else {
                let mut msg = ChatMsg::new("assistant", Content::Null);
                msg.tool_calls.push(call);
                messages.push(msg);
            }
            Ok(())
        }
        "function_call_output" => {
            let call_id = req_str(item.call_id, &p, "call_id")?;
            let output = match item.output.present() {
                None => Txt::Str(Cow::Borrowed("")),
                Some(s) if is_str(s) => Txt::Raw(s),
                Some(a) if is_arr(a) => {
                    let Arr(parts) = view_of::<Arr<Obj<TextPart>>>(a);
                    let texts: Vec<&str> = parts
                        .iter()
                        .flatten()
                        .filter_map(|x| x.0.as_ref().and_then(|x| x.text.get()))
                        .collect();
                    Txt::Str(Cow::Owned(texts.join("\n")))
                }
                Some(v) => Txt::Str(Cow::Owned(value_of(v).to_string())),
            };
            let mut msg = ChatMsg::new("tool", Content::Text(output));
            msg.tool_call_id = Some(call_id);
            messages.push(msg);
            Ok(())
        }
        // Reasoning items Codex passes back (summaries, encrypted content) have no chat equivalent.
        "reasoning" => Ok(()),
        other => Err(err(
            "unsupported_input_item",
            format!("{p}.type"),
            format!("input items of type `{other}` are not supported by this gateway"),
        )),
    }
}

fn map_message<'a>(
    p: &str,
    item: &Item<'a>,
    messages: &mut Vec<ChatMsg<'a>>,
) -> Result<(), RequestError> {
    let role_param = || format!("{p}.role");
    let role = match opt_str(item.role, &role_param())?.map(text).as_deref() {
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some("system" | "developer") => "system",
        Some(other) => {
            return Err(err(
                "invalid_value",
                role_param(),
                format!("unsupported role `{other}`"),
            ))
        }
        None => return Err(missing(role_param())),
    };
    let content = match item.content.present() {
        None => Content::Text(Txt::Str(Cow::Borrowed(""))),
        Some(s) if is_str(s) => Content::Text(Txt::Raw(s)),
        Some(a) if is_arr(a) => map_parts(p, role, a)?,
        Some(_) => {
            return Err(type_err(
                &format!("{p}.content"),
                "a string or an array of content parts",
            ))
        }
    };
    messages.push(ChatMsg::new(role, content));
    Ok(())
}

fn unsupported_content(param: String, message: impl Into<String>) -> RequestError {
    err("unsupported_content", param, message)
}

/// Content parts → chat content: text-only content becomes a string, anything with an image a parts array.
fn map_parts<'a>(p: &str, role: &str, raw: &'a RawValue) -> Result<Content<'a>, RequestError> {
    let Arr(parts) = view_of::<Arr<Obj<Part<'a>>>>(raw);
    let parts = parts.unwrap_or_default();
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let pp = format!("{p}.content[{j}]");
        let part = part.0.as_ref();
        let kind = part
            .and_then(|x| x.kind.0)
            .filter(|t| is_str(t))
            .map_or(Cow::Borrowed(""), text);
        let Some(part) = part.filter(|_| !kind.is_empty()) else {
            return Err(unsupported_content(
                format!("{pp}.type"),
                format!("unsupported content part `{kind}`"),
            ));
        };
        match &*kind {
            "input_text" | "output_text" | "text" => {
                out.push(ChatPart::Text(req_str(part.text, &pp, "text")?))
            }
            "refusal" => out.push(ChatPart::Text(req_str(part.refusal, &pp, "refusal")?)),
            "input_image" if role == "user" => {
                if part.file_id.present().is_some() {
                    let why =
                        "file ids need stored files, which this stateless gateway does not have; \
                               send the image as a URL or data URL in `image_url`";
                    return Err(unsupported_content(format!("{pp}.file_id"), why));
                }
                let url = match part.image_url.present() {
                    Some(s) if is_str(s) => s,
                    Some(u) if is_obj(u) => {
                        let u: UrlView = obj_of(u);
                        req_str(u.url, &format!("{pp}.image_url"), "url")?
                    }
                    _ => return Err(missing(format!("{pp}.image_url"))),
                };
                let detail = part.detail.present();
                out.push(ChatPart::Image { url, detail });
            }
            "input_image" | "input_file" | "input_audio" => {
                let why = format!(
                    "content parts of type `{kind}` are not supported in {role} messages here"
                );
                return Err(unsupported_content(pp, why));
            }
            _ => {
                return Err(unsupported_content(
                    format!("{pp}.type"),
                    format!("unsupported content part `{kind}`"),
                ))
            }
        }
    }
    if out.iter().all(|x| matches!(x, ChatPart::Text(_))) {
        // Separate parts are separate blocks in user/system messages; assistant output_text parts are pieces of
        // one answer.
        if let [ChatPart::Text(only)] = out[..] {
            return Ok(Content::Text(Txt::Raw(only)));
        }
        let texts: Vec<Cow<str>> = out
            .iter()
            .filter_map(|x| match x {
                ChatPart::Text(t) => Some(text(t)),
                ChatPart::Image { .. } => None,
            })
            .collect();
        let sep = if role == "assistant" { "" } else { "\n\n" };
        return Ok(Content::Text(Txt::Str(Cow::Owned(texts.join(sep)))));
    }
    Ok(Content::Parts(out))
}

/// Function tools → chat tools; namespace tools are flattened; everything else is dropped and named.
///
/// A request with only hosted tools keeps working too: they are all dropped and the model answers without them
/// (refusing would break clients such as Codex, which always sends `web_search`). Only a `tool_choice` that forces
/// a hosted tool is refused (see [`map_tool_choice`]).
fn map_tools(v: Raw) -> Result<(Vec<ChatTool>, Vec<String>), RequestError> {
    let (mut chat, mut dropped) = (Vec::new(), Vec::new());
    match v.present() {
        None => {}
        Some(a) if is_arr(a) => {
            let Arr(tools) = view_of::<Arr<Obj<Tool>>>(a);
            for (k, t) in tools.iter().flatten().enumerate() {
                map_tool(&format!("tools[{k}]"), t, &mut chat, &mut dropped)?;
            }
        }
        Some(_) => return Err(type_err("tools", "an array")),
    }
    Ok((chat, dropped))
}

fn map_tool<'a>(
    p: &str,
    t: &Obj<Tool<'a>>,
    chat: &mut Vec<ChatTool<'a>>,
    dropped: &mut Vec<String>,
) -> Result<(), RequestError> {
    let Some(t) = &t.0 else {
        return Err(type_err(p, "an object"));
    };
    let kind = text(req_str(t.kind, p, "type")?);
    match (&*kind, t.tools.present().filter(|x| is_arr(x))) {
        ("function", _) => {
            let name = req_str(t.name, p, "name")?;
            chat.push(ChatTool {
                name,
                description: t.description.present(),
                parameters: t.parameters.present(),
                strict: t.strict.0.filter(|s| is_bool(s)),
            });
        }
        ("namespace", Some(nested)) => {
            let Arr(nested) = view_of::<Arr<Obj<Tool<'a>>>>(nested);
            for (n, inner) in nested.iter().flatten().enumerate() {
                map_tool(&format!("{p}.tools[{n}]"), inner, chat, dropped)?;
            }
        }
        // Hosted and custom tools: web_search, file_search, code_interpreter, mcp, custom, local_shell, ….
        _ => {
            let name = t.name.0.filter(|n| is_str(n)).map(text);
            dropped.push(name.unwrap_or(kind).into_owned());
        }
    }
    Ok(())
}

fn map_tool_choice<'a>(v: Raw<'a>) -> Result<Option<ToolChoice<'a>>, RequestError> {
    let Some(v) = v.present() else {
        return Ok(None);
    };
    if is_str(v) {
        return match &*text(v) {
            "auto" | "none" | "required" => Ok(Some(ToolChoice::Raw(v))),
            s => Err(err(
                "invalid_value",
                "tool_choice",
                format!("unsupported tool_choice `{s}`"),
            )),
        };
    }
    if !is_obj(v) {
        return Err(type_err("tool_choice", "a string or an object"));
    }
    let c: ChoiceView = obj_of(v);
    let str_of = |r: Raw<'a>| kept(r, is_str);
    let kind = str_of(c.kind).map_or(Cow::Borrowed(""), text);
    match &*kind {
        "function" => {
            let nested = || {
                c.function
                    .0
                    .filter(|f| is_obj(f))
                    .and_then(|f| str_of(obj_of::<NameView>(f).name))
            };
            let name = str_of(c.name).or_else(nested);
            let name = name.ok_or_else(|| missing("tool_choice.name".into()))?;
            Ok(Some(ToolChoice::Function(name)))
        }
        // The allowed-tools restriction has no chat equivalent; its mode is kept.
        "allowed_tools" => Ok(Some(str_of(c.mode).map_or(ToolChoice::Auto, ToolChoice::Raw))),
        other => Err(err(
            "unsupported_tool",
            "tool_choice",
            format!("`tool_choice` requires the hosted tool `{other}`, which this gateway does not provide"),
        )),
    }
}

fn map_text_format(t: Raw) -> Result<Option<Format>, RequestError> {
    let Some(t) = t.present() else {
        return Ok(None);
    };
    if !is_obj(t) {
        return Err(type_err("text", "an object"));
    }
    let Some(f) = obj_of::<TextView>(t).format.present() else {
        return Ok(None);
    };
    if !is_obj(f) {
        return Err(type_err("text.format", "an object"));
    }
    let f: FormatView = obj_of(f);
    let kind = f
        .kind
        .0
        .filter(|k| is_str(k))
        .map_or(Cow::Borrowed("text"), text);
    match &*kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(Format::JsonObject)),
        "json_schema" => Ok(Some(Format::JsonSchema {
            name: opt_str(f.name, "text.format.name")?,
            schema: f.schema.present(),
            strict: f.strict.present(),
            description: f.description.present(),
        })),
        other => Err(err(
            "invalid_value",
            "text.format.type",
            format!("unsupported text format `{other}`"),
        )),
    }
}

/// A member that is there (not absent) and passes `ok`.
fn kept(r: Raw<'_>, ok: fn(&RawValue) -> bool) -> Option<&RawValue> {
    r.0.filter(|v| ok(v))
}

fn build_context(
    m: &Req,
    response_id: String,
    created_at: u64,
    dropped_tools: Vec<String>,
) -> ResponseContext {
    let mut e = Vec::with_capacity(320);
    e.extend_from_slice(b"\"instructions\":");
    put_compact_or(&mut e, kept(m.instructions, is_str), "null");
    e.extend_from_slice(b",\"tools\":");
    put_compact_or(&mut e, kept(m.tools, is_arr), "[]");
    e.extend_from_slice(b",\"tool_choice\":");
    put_compact_or(&mut e, m.tool_choice.present(), "\"auto\"");
    e.extend_from_slice(b",\"parallel_tool_calls\":");
    let parallel = m.parallel_tool_calls.0.filter(|p| is_bool(p));
    e.extend_from_slice(parallel.map_or("true", RawValue::get).as_bytes());
    e.extend_from_slice(b",\"text\":");
    match kept(m.text, is_obj) {
        None => e.extend_from_slice(b"{\"format\":{\"type\":\"text\"}}"),
        Some(t) if obj_of::<TextView>(t).format.present().is_some() => put_compact(&mut e, t),
        Some(t) => {
            let mut t = value_of(t);
            t["format"] = serde_json::json!({"type": "text"});
            let _ = serde_json::to_writer(&mut e, &t);
        }
    }
    e.extend_from_slice(b",\"reasoning\":{\"effort\":");
    let effort =
        kept(m.reasoning, is_obj).and_then(|r| obj_of::<ReasoningView>(r).effort.present());
    put_compact_or(&mut e, effort, "null");
    e.extend_from_slice(b",\"summary\":null}");
    for (key, v) in [
        (&b",\"max_output_tokens\":"[..], m.max_output_tokens),
        (b",\"temperature\":", m.temperature),
        (b",\"top_p\":", m.top_p),
    ] {
        e.extend_from_slice(key);
        put_compact_or(&mut e, v.present(), "null");
    }
    e.extend_from_slice(b",\"metadata\":");
    put_compact_or(&mut e, kept(m.metadata, is_obj), "{}");
    e.extend_from_slice(b",\"user\":");
    put_compact_or(&mut e, kept(m.user, is_str), "null");
    e.extend_from_slice(
        b",\"store\":false,\"truncation\":\"disabled\",\"previous_response_id\":null",
    );
    ResponseContext {
        response_id,
        model: kept(m.model, is_str)
            .map(text)
            .unwrap_or_default()
            .into_owned(),
        created_at,
        stream: m.stream.0.is_some_and(|s| s.get() == "true"),
        dropped_tools,
        echo: String::from_utf8(e).unwrap_or_default(),
    }
}

// ---- answer direction -------------------------------------------------------------------------------------------

/// An error body in the OpenAI shape. The status travels on the HTTP status line, not in the body.
pub fn error_body(
    status: u16,
    kind: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Vec<u8> {
    let _ = status;
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"error\":{\"message\":");
    put_str(&mut out, message);
    out.extend_from_slice(b",\"type\":");
    put_str(&mut out, kind);
    out.extend_from_slice(b",\"code\":");
    put_str(&mut out, code);
    out.extend_from_slice(b",\"param\":");
    match param {
        Some(p) => put_str(&mut out, p),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}}");
    out
}

/// Item ids derive from the response id and the output index: `msg_<suffix>_0`, `fc_<suffix>_1`, ….
fn item_id(ctx: &ResponseContext, prefix: &str, index: usize) -> String {
    let suffix = ctx
        .response_id
        .strip_prefix("resp_")
        .unwrap_or(&ctx.response_id);
    format!("{prefix}_{suffix}_{index}")
}

/// Chat usage, as the Responses `usage` object needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tokens {
    input: u64,
    output: u64,
    total: u64,
    cached: u64,
    reasoning: u64,
}

fn tokens(u: &UsageView) -> Tokens {
    let (input, output) = (
        u.prompt_tokens.0.unwrap_or(0),
        u.completion_tokens.0.unwrap_or(0),
    );
    let nested = |n: Option<Num>| n.and_then(|n| n.0).unwrap_or(0);
    Tokens {
        input,
        output,
        total: u.total_tokens.0.unwrap_or(input.wrapping_add(output)),
        cached: nested(u.prompt_tokens_details.0.as_ref().map(|d| d.cached_tokens)),
        reasoning: nested(
            u.completion_tokens_details
                .0
                .as_ref()
                .map(|d| d.reasoning_tokens),
        ),
    }
}

/// Chat usage → Responses usage (`null` when the upstream reported none).
fn put_usage(out: &mut Vec<u8>, u: Option<&Tokens>) {
    let Some(u) = u else {
        out.extend_from_slice(b"null");
        return;
    };
    out.extend_from_slice(b"{\"input_tokens\":");
    put_u64(out, u.input);
    out.extend_from_slice(b",\"input_tokens_details\":{\"cached_tokens\":");
    put_u64(out, u.cached);
    out.extend_from_slice(b"},\"output_tokens\":");
    put_u64(out, u.output);
    out.extend_from_slice(b",\"output_tokens_details\":{\"reasoning_tokens\":");
    put_u64(out, u.reasoning);
    out.extend_from_slice(b"},\"total_tokens\":");
    put_u64(out, u.total);
    out.push(b'}');
}

/// How a response ends (or stands): its status, `incomplete_details` and `error`.
enum End<'a> {
    InProgress,
    Completed,
    Incomplete(&'static str),
    Failed { code: &'a str, message: &'a str },
}

/// The end state for a chat finish_reason.
fn end_state(finish_reason: Option<&str>) -> End<'static> {
    match finish_reason {
        Some("length") => End::Incomplete("max_output_tokens"),
        Some("content_filter") => End::Incomplete("content_filter"),
        _ => End::Completed,
    }
}

#[derive(Clone, Debug)]
enum OutPart {
    Text(String),
    Refusal(String),
}

/// An output item: as announced (in progress) or finished.
#[derive(Clone, Debug)]
enum OutItem {
    /// `text: None` is the in-progress item with an empty summary.
    Reasoning { id: String, text: Option<String> },
    Message {
        id: String,
        status: &'static str,
        parts: Vec<OutPart>,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: &'static str,
    },
}

fn put_part(out: &mut Vec<u8>, p: &OutPart) {
    match p {
        OutPart::Text(t) => {
            out.extend_from_slice(b"{\"type\":\"output_text\",\"text\":");
            put_str(out, t);
            out.extend_from_slice(b",\"annotations\":[]}");
        }
        OutPart::Refusal(t) => {
            out.extend_from_slice(b"{\"type\":\"refusal\",\"refusal\":");
            put_str(out, t);
            out.push(b'}');
        }
    }
}

fn put_item(out: &mut Vec<u8>, item: &OutItem) {
    match item {
        OutItem::Reasoning { id, text } => {
            out.extend_from_slice(b"{\"type\":\"reasoning\",\"id\":");
            put_str(out, id);
            out.extend_from_slice(b",\"summary\":[");
            if let Some(t) = text {
                out.extend_from_slice(b"{\"type\":\"summary_text\",\"text\":");
                put_str(out, t);
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
        }
        OutItem::Message { id, status, parts } => {
            out.extend_from_slice(b"{\"type\":\"message\",\"id\":");
            put_str(out, id);
            out.extend_from_slice(b",\"status\":\"");
            out.extend_from_slice(status.as_bytes());
            out.extend_from_slice(b"\",\"role\":\"assistant\",\"content\":[");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                put_part(out, p);
            }
            out.extend_from_slice(b"]}");
        }
        OutItem::Call {
            id,
            call_id,
            name,
            arguments,
            status,
        } => {
            out.extend_from_slice(b"{\"type\":\"function_call\",\"id\":");
            put_str(out, id);
            out.extend_from_slice(b",\"call_id\":");
            put_str(out, call_id);
            out.extend_from_slice(b",\"name\":");
            put_str(out, name);
            out.extend_from_slice(b",\"arguments\":");
            put_str(out, arguments);
            out.extend_from_slice(b",\"status\":\"");
            out.extend_from_slice(status.as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
}

/// A Responses `response` object.
fn put_response(
    out: &mut Vec<u8>,
    ctx: &ResponseContext,
    end: &End,
    model: &str,
    output: &[OutItem],
    usage: Option<&Tokens>,
) {
    out.extend_from_slice(b"{\"id\":");
    put_str(out, &ctx.response_id);
    out.extend_from_slice(b",\"object\":\"response\",\"created_at\":");
    put_u64(out, ctx.created_at);
    out.extend_from_slice(b",\"status\":");
    let (status, reason, error) = match end {
        End::InProgress => ("\"in_progress\"", None, None),
        End::Completed => ("\"completed\"", None, None),
        End::Incomplete(r) => ("\"incomplete\"", Some(*r), None),
        End::Failed { code, message } => ("\"failed\"", None, Some((*code, *message))),
    };
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b",\"error\":");
    match error {
        None => out.extend_from_slice(b"null"),
        Some((code, message)) => {
            out.extend_from_slice(b"{\"code\":");
            put_str(out, code);
            out.extend_from_slice(b",\"message\":");
            put_str(out, message);
            out.push(b'}');
        }
    }
    out.extend_from_slice(b",\"incomplete_details\":");
    match reason {
        None => out.extend_from_slice(b"null"),
        Some(r) => {
            out.extend_from_slice(b"{\"reason\":\"");
            out.extend_from_slice(r.as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
    out.extend_from_slice(b",\"model\":");
    put_str(out, model);
    out.extend_from_slice(b",\"output\":[");
    for (i, item) in output.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_item(out, item);
    }
    out.extend_from_slice(b"],\"usage\":");
    put_usage(out, usage);
    out.push(b',');
    out.extend_from_slice(ctx.echo.as_bytes());
    out.push(b'}');
}

/// Splits a leading `<think>…</think>` block off `content`: (reasoning, rest). An unclosed block is all reasoning.
fn split_think(content: &str) -> (String, String) {
    let Some(rest) = content.trim_start().strip_prefix(THINK_OPEN) else {
        return (String::new(), content.to_string());
    };
    match rest.find(THINK_CLOSE) {
        Some(end) => (
            rest[..end].trim().into(),
            rest[end + THINK_CLOSE.len()..].trim_start().into(),
        ),
        None => (rest.trim().into(), String::new()),
    }
}

/// Parses an upstream answer; the error text on failure is the one a `Value` parse gives.
fn parse_answer(chat: &[u8]) -> Result<Completion<'_>, String> {
    if let Ok(Ok(c)) = std::str::from_utf8(chat).map(parse_top::<Completion>) {
        return Ok(c);
    }
    Err(match serde_json::from_slice::<Value>(chat) {
        Err(e) => format!("the upstream answer is not valid JSON: {e}"),
        Ok(_) => "the upstream answer is not a JSON object".into(),
    })
}

/// Non-streamed answer: a chat.completion body → a Responses `response` object.
pub fn chat_to_responses_response(chat: &[u8], ctx: &ResponseContext) -> Result<Vec<u8>, String> {
    let c = parse_answer(chat)?;
    if let Some(e) = c.error.present() {
        return Err(format!(
            "the upstream answered with an error: {}",
            value_of(e)
        ));
    }
    let choice = c.choices.0.and_then(|c| c.0).unwrap_or_default();
    let msg = choice.message.0.unwrap_or_default();
    let reasoning = msg
        .reasoning_content
        .0
        .or(msg.reasoning.0)
        .unwrap_or_default();
    let mut reasoning = reasoning.0.into_owned();
    let (think, content) = split_think(&msg.content.0);
    if !think.is_empty() {
        reasoning = if reasoning.is_empty() {
            think
        } else {
            format!("{reasoning}\n\n{think}")
        };
    }
    let mut output = Vec::new();
    if !reasoning.is_empty() {
        let id = item_id(ctx, "rs", 0);
        output.push(OutItem::Reasoning {
            id,
            text: Some(reasoning),
        });
    }
    let mut parts = Vec::new();
    if !content.is_empty() {
        parts.push(OutPart::Text(content));
    }
    if !msg.refusal.0.is_empty() {
        parts.push(OutPart::Refusal(msg.refusal.0.into_owned()));
    }
    if !parts.is_empty() {
        output.push(OutItem::Message {
            id: item_id(ctx, "msg", output.len()),
            status: "completed",
            parts,
        });
    }
    for tc in msg.tool_calls.0.into_iter().flatten() {
        let tc = tc.0.unwrap_or_default();
        let index = output.len();
        let call_id = tc
            .id
            .0
            .map_or_else(|| item_id(ctx, "call", index), Cow::into_owned);
        let f = tc.function.0.unwrap_or_default();
        output.push(OutItem::Call {
            id: item_id(ctx, "fc", index),
            call_id,
            name: f.name.get().unwrap_or("").to_string(),
            arguments: args_of(&f.arguments).into_owned(),
            status: "completed",
        });
    }
    let end = end_state(choice.finish_reason.get());
    let model = c
        .model
        .get()
        .filter(|m| !m.is_empty())
        .unwrap_or(&ctx.model);
    let usage = c.usage.0.as_ref().map(tokens);
    let mut out = Vec::with_capacity(512 + ctx.echo.len());
    put_response(&mut out, ctx, &end, model, &output, usage.as_ref());
    Ok(out)
}

// ---- streaming --------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

/// An output item's place: output_index, id, and the `,"item_id":…,"output_index":…` members its events share.
struct Place {
    index: usize,
    id: String,
    head: Vec<u8>,
}

impl Place {
    fn new(index: usize, id: String) -> Self {
        let mut head = Vec::with_capacity(id.len() + 40);
        head.extend_from_slice(b",\"item_id\":");
        put_str(&mut head, &id);
        head.extend_from_slice(b",\"output_index\":");
        put_u64(&mut head, index as u64);
        Place { index, id, head }
    }
}

/// An open message: its finished content parts and the one being streamed.
struct Msg {
    parts: Vec<OutPart>,
    cur: Option<PartKind>,
    buf: String,
}

/// The open message or reasoning item (at most one at a time).
enum Open {
    Message(Place, Msg),
    Reasoning(Place, String),
}

/// An open function_call item, keyed by the chat tool-call index. `added` is set once
/// `response.output_item.added` went out — which waits for the name, since some upstreams send it after the id.
struct ToolSlot {
    chat_index: u64,
    call_id: Option<String>,
    name: String,
    args: String,
    added: Option<Place>,
}

/// Where the content stream stands with respect to a leading `<think>` block.
enum Think {
    /// Start of content: buffered until it is clear whether it opens with `<think>`.
    Detect(String),
    /// Inside the block; holds a possible partial `</think>` held back from the reasoning.
    Inside(String),
    /// Just after `</think>`: leading whitespace is dropped.
    After,
    Off,
}

/// Numbers and frames SSE events; `kind` is the event type without its `response.` prefix. An event is
/// `begin`, its members (each starting with a comma), then `end`.
struct Sink {
    seq: u64,
}

impl Sink {
    fn begin(&mut self, out: &mut Vec<u8>, kind: &str) {
        out.extend_from_slice(b"event: response.");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"response.");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"sequence_number\":");
        put_u64(out, self.seq);
        self.seq += 1;
    }

    fn end(out: &mut Vec<u8>) {
        out.extend_from_slice(b"}\n\n");
    }

    /// An event with `head` and an index member (`,"content_index":N`).
    fn begin_at(&mut self, out: &mut Vec<u8>, kind: &str, at: &Place, index: &[u8], n: usize) {
        self.begin(out, kind);
        out.extend_from_slice(&at.head);
        out.extend_from_slice(index);
        put_u64(out, n as u64);
    }

    /// Closes the message's current content part, if any: `*.done` then `response.content_part.done`.
    fn close_part(&mut self, out: &mut Vec<u8>, at: &Place, msg: &mut Msg) {
        let Some(kind) = msg.cur.take() else {
            return;
        };
        let text = std::mem::take(&mut msg.buf);
        let ci = msg.parts.len();
        let (done, member, tail): (&str, &[u8], &[u8]) = match kind {
            PartKind::Text => ("output_text.done", b",\"text\":", b",\"logprobs\":[]"),
            PartKind::Refusal => ("refusal.done", b",\"refusal\":", b""),
        };
        self.begin_at(out, done, at, b",\"content_index\":", ci);
        out.extend_from_slice(member);
        put_str(out, &text);
        out.extend_from_slice(tail);
        Sink::end(out);
        self.begin_at(out, "content_part.done", at, b",\"content_index\":", ci);
        out.extend_from_slice(member);
        put_str(out, &text);
        out.extend_from_slice(tail);
        out.extend_from_slice(b",\"part\":");
        let part = match kind {
            PartKind::Text => OutPart::Text(text),
            PartKind::Refusal => OutPart::Refusal(text),
        };
        put_part(out, &part);
        Sink::end(out);
        msg.parts.push(part);
    }
}

/// Turns the chat-completions chunk stream into Responses SSE events.
///
/// Message and reasoning items are open one at a time; starting any other item closes them. Function calls stay
/// open together while only tool-call deltas arrive (some upstreams interleave parallel calls by index), and close
/// in output order when other output starts or the stream ends. Deltas for a tool-call index (and id) that was
/// already closed are ignored.
pub struct ResponsesStreamEncoder {
    ctx: ResponseContext,
    sink: Sink,
    started: bool,
    ended: bool,
    /// Items by output_index: the in-progress snapshot until the item is done, then the finished item.
    output: Vec<OutItem>,
    open: Option<Open>,
    tools: Vec<ToolSlot>,
    /// (chat index, call id) of the function calls already closed.
    closed_tools: Vec<(u64, Option<String>)>,
    next_anon_index: u64,
    think: Think,
    finish_reason: Option<String>,
    usage: Option<Tokens>,
    model: Option<String>,
    produced: bool,
}

impl ResponsesStreamEncoder {
    pub fn new(ctx: ResponseContext) -> Self {
        Self {
            ctx,
            sink: Sink { seq: 0 },
            started: false,
            ended: false,
            output: Vec::new(),
            open: None,
            tools: Vec::new(),
            closed_tools: Vec::new(),
            next_anon_index: 1 << 32,
            think: Think::Detect(String::new()),
            finish_reason: None,
            usage: None,
            model: None,
            produced: false,
        }
    }

    /// Emits `response.created` and `response.in_progress` (once).
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            out.reserve(2 * (self.ctx.echo.len() + 400));
            self.sink.begin(out, "created");
            out.extend_from_slice(b",\"response\":");
            let from = out.len();
            self.put_snapshot(out, &End::InProgress);
            let to = out.len();
            Sink::end(out);
            self.sink.begin(out, "in_progress");
            out.extend_from_slice(b",\"response\":");
            out.extend_from_within(from..to);
            Sink::end(out);
        }
    }

    /// One chat SSE payload: a `chat.completion.chunk`, `[DONE]`, or the gateway's terminal `{"error":…}`.
    pub fn push(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        if event.trim_ascii() == b"[DONE]" {
            return self.finalize(true, out);
        }
        let Ok(Ok(c)) = std::str::from_utf8(event).map(parse_top::<Chunk>) else {
            return;
        };
        if let Some(e) = c.error.present() {
            return self.fail_with(&value_of(e), out);
        }
        if self.model.is_none() {
            self.model = c.model.get().filter(|m| !m.is_empty()).map(Into::into);
        }
        if let Some(u) = &c.usage.0 {
            self.usage = Some(tokens(u));
        }
        let Some(choice) = c.choices.0 else {
            return;
        };
        let Some(choice) = choice.0 else {
            return;
        };
        if let Some(d) = choice.delta.0 {
            let reasoning = d.reasoning_content.get().filter(|s| !s.is_empty());
            if let Some(r) = reasoning.or_else(|| d.reasoning.get()) {
                self.reasoning(r, out);
            }
            if let Some(s) = d.content.get() {
                self.content(s, out);
            }
            if let Some(s) = d.refusal.get() {
                self.message_delta(PartKind::Refusal, s, out);
            }
            for tc in d.tool_calls.0.into_iter().flatten() {
                self.tool_delta(tc.0.unwrap_or_default(), out);
            }
        }
        if let Some(f) = choice.finish_reason.get() {
            self.finish_reason = Some(f.to_string());
        }
    }

    /// The upstream ended: closes open items and emits the terminal event, unless one went out already.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.finalize(false, out);
    }

    pub fn usage(&self) -> Option<wire::Usage> {
        let u = self.usage.as_ref()?;
        Some(wire::Usage {
            prompt_tokens: u.input,
            completion_tokens: u.output,
        })
    }

    fn put_snapshot(&self, out: &mut Vec<u8>, end: &End) {
        let model = self.model.as_deref().unwrap_or(&self.ctx.model);
        put_response(
            out,
            &self.ctx,
            end,
            model,
            &self.output,
            self.usage.as_ref(),
        );
    }

    /// A terminal event carrying the response.
    fn emit_response(&mut self, out: &mut Vec<u8>, kind: &str, end: &End) {
        self.sink.begin(out, kind);
        out.extend_from_slice(b",\"response\":");
        self.put_snapshot(out, end);
        Sink::end(out);
        self.ended = true;
    }

    fn finalize(&mut self, saw_done: bool, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.start(out);
        self.flush_detect(out);
        if let Think::Inside(held) = std::mem::replace(&mut self.think, Think::Off) {
            self.reasoning(&held, out);
        }
        self.close_all(out);
        if self.finish_reason.is_none() && !saw_done && !self.produced {
            // A stream that ended without [DONE], finish_reason or a single piece of output is no answer.
            let message = "the upstream stream ended without a response";
            return self.fail(out, "server_error", message);
        }
        let end = end_state(self.finish_reason.as_deref());
        let kind = if matches!(end, End::Completed) {
            "completed"
        } else {
            "incomplete"
        };
        self.emit_response(out, kind, &end);
    }

    /// Terminal failure from the gateway's `{"error":…}` event.
    fn fail_with(&mut self, e: &Value, out: &mut Vec<u8>) {
        let str_of = |k: &str| e.get(k).and_then(Value::as_str);
        let code = str_of("code").or_else(|| str_of("type"));
        let message = str_of("message").map_or_else(|| e.to_string(), Into::into);
        self.fail(out, code.unwrap_or("server_error"), &message);
    }

    /// Terminal failure: open items stay as they are; `response.failed` carries the error.
    fn fail(&mut self, out: &mut Vec<u8>, code: &str, message: &str) {
        self.emit_response(out, "failed", &End::Failed { code, message });
    }

    /// Ends `<think>` detection: buffered content goes out as text, unless it is only whitespace.
    fn flush_detect(&mut self, out: &mut Vec<u8>) {
        if let Think::Detect(buf) = &mut self.think {
            let buf = std::mem::take(buf);
            self.think = Think::Off;
            if !buf.trim().is_empty() {
                self.message_delta(PartKind::Text, &buf, out);
            }
        }
    }

    /// Content, minding a leading `<think>` block that may be split across chunks.
    fn content(&mut self, s: &str, out: &mut Vec<u8>) {
        if let Think::Off = self.think {
            return self.message_delta(PartKind::Text, s, out);
        }
        match std::mem::replace(&mut self.think, Think::Off) {
            Think::Off => self.message_delta(PartKind::Text, s, out),
            Think::Detect(mut buf) => {
                buf.push_str(s);
                let t = buf.trim_start();
                if let Some(rest) = t.strip_prefix(THINK_OPEN) {
                    let rest = rest.to_string();
                    self.think = Think::Inside(String::new());
                    self.content(&rest, out);
                } else if THINK_OPEN.starts_with(t) {
                    self.think = Think::Detect(buf);
                } else {
                    self.message_delta(PartKind::Text, &buf, out);
                }
            }
            Think::Inside(mut buf) => {
                buf.push_str(s);
                if let Some(end) = buf.find(THINK_CLOSE) {
                    self.reasoning(&buf[..end], out);
                    self.think = Think::After;
                    self.content(&buf[end + THINK_CLOSE.len()..], out);
                } else {
                    // Hold back a tail that may be the start of `</think>`.
                    let tag = |k: &usize| buf.ends_with(&THINK_CLOSE[..*k]);
                    let split = buf.len() - (1..THINK_CLOSE.len()).rev().find(tag).unwrap_or(0);
                    self.reasoning(&buf[..split], out);
                    self.think = Think::Inside(buf[split..].to_string());
                }
            }
            Think::After => match s.trim_start() {
                "" => self.think = Think::After,
                t => self.message_delta(PartKind::Text, t, out),
            },
        }
    }

    /// Appends an in-progress item to the output and announces it.
    fn add_item(
        &mut self,
        out: &mut Vec<u8>,
        prefix: &str,
        item: impl FnOnce(String) -> OutItem,
    ) -> Place {
        let index = self.output.len();
        let id = item_id(&self.ctx, prefix, index);
        let item = item(id.clone());
        self.sink.begin(out, "output_item.added");
        out.extend_from_slice(b",\"output_index\":");
        put_u64(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        put_item(out, &item);
        Sink::end(out);
        self.output.push(item);
        self.produced = true;
        Place::new(index, id)
    }

    fn reasoning(&mut self, s: &str, out: &mut Vec<u8>) {
        if s.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Open::Reasoning(..))) {
            self.close_all(out);
            let at = self.add_item(out, "rs", |id| OutItem::Reasoning { id, text: None });
            self.sink.begin_at(
                out,
                "reasoning_summary_part.added",
                &at,
                b",\"summary_index\":",
                0,
            );
            out.extend_from_slice(b",\"part\":{\"type\":\"summary_text\",\"text\":\"\"}");
            Sink::end(out);
            self.open = Some(Open::Reasoning(at, String::new()));
        }
        if let Some(Open::Reasoning(at, text)) = &mut self.open {
            text.push_str(s);
            self.sink.begin_at(
                out,
                "reasoning_summary_text.delta",
                at,
                b",\"summary_index\":",
                0,
            );
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
            Sink::end(out);
        }
    }

    fn message_delta(&mut self, kind: PartKind, s: &str, out: &mut Vec<u8>) {
        if s.is_empty() {
            return;
        }
        if !matches!(self.open, Some(Open::Message(..))) {
            self.close_all(out);
            let at = self.add_item(out, "msg", |id| OutItem::Message {
                id,
                status: "in_progress",
                parts: Vec::new(),
            });
            let msg = Msg {
                parts: Vec::new(),
                cur: None,
                buf: String::new(),
            };
            self.open = Some(Open::Message(at, msg));
        }
        let Some(Open::Message(at, msg)) = &mut self.open else {
            return;
        };
        if msg.cur != Some(kind) {
            self.sink.close_part(out, at, msg);
            let ci = msg.parts.len();
            self.sink
                .begin_at(out, "content_part.added", at, b",\"content_index\":", ci);
            out.extend_from_slice(match kind {
                PartKind::Text => {
                    b",\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}"
                }
                PartKind::Refusal => b",\"part\":{\"type\":\"refusal\",\"refusal\":\"\"}",
            });
            Sink::end(out);
            msg.cur = Some(kind);
        }
        msg.buf.push_str(s);
        let ci = msg.parts.len();
        if kind == PartKind::Text {
            self.sink
                .begin_at(out, "output_text.delta", at, b",\"content_index\":", ci);
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
            out.extend_from_slice(b",\"logprobs\":[]");
        } else {
            self.sink
                .begin_at(out, "refusal.delta", at, b",\"content_index\":", ci);
            out.extend_from_slice(b",\"delta\":");
            put_str(out, s);
        }
        Sink::end(out);
    }

    fn args_delta(sink: &mut Sink, out: &mut Vec<u8>, at: &Place, args: &str) {
        sink.begin(out, "function_call_arguments.delta");
        out.extend_from_slice(&at.head);
        out.extend_from_slice(b",\"delta\":");
        put_str(out, args);
        Sink::end(out);
    }

    fn tool_delta(&mut self, tc: CallView, out: &mut Vec<u8>) {
        let id = tc.id.get().filter(|s| !s.is_empty());
        let f = tc.function.0.unwrap_or_default();
        let name = f.name.get().filter(|s| !s.is_empty());
        let args = args_of(&f.arguments);
        let chat_index = match (tc.index.0, id) {
            (Some(i), _) => i,
            (None, Some(id)) if !self.tools.iter().any(|t| t.call_id.as_deref() == Some(id)) => {
                self.next_anon_index += 1;
                self.next_anon_index
            }
            (None, _) => self.tools.last().map_or(0, |t| t.chat_index),
        };
        // A different id on a known index is a new call (some upstreams send every call with index 0).
        let same_call =
            |i: u64, c: Option<&str>| i == chat_index && (id.is_none() || c.is_none() || c == id);
        let pos = match self
            .tools
            .iter()
            .rposition(|t| same_call(t.chat_index, t.call_id.as_deref()))
        {
            Some(pos) => pos,
            None => {
                let late = self
                    .closed_tools
                    .iter()
                    .any(|(i, c)| same_call(*i, c.as_deref()));
                if late || (id.is_none() && name.is_none() && args.is_empty()) {
                    return;
                }
                self.flush_detect(out);
                self.close_open(out);
                let (call_id, name, args) = (None, String::new(), String::new());
                self.tools.push(ToolSlot {
                    chat_index,
                    call_id,
                    name,
                    args,
                    added: None,
                });
                self.tools.len() - 1
            }
        };
        let Some(slot) = self.tools.get_mut(pos) else {
            return;
        };
        if slot.call_id.is_none() {
            slot.call_id = id.map(Into::into);
        }
        if let (true, Some(n)) = (slot.name.is_empty(), name) {
            slot.name = n.to_string();
        }
        // Some upstreams repeat the complete arguments in a final chunk: a delta equal to everything accumulated so
        // far, when that already is a complete JSON value, is such a repeat and is skipped.
        let complete = || serde_json::from_str::<IgnoredAny>(&slot.args).is_ok();
        if !slot.args.is_empty() && *args == *slot.args && complete() {
            return;
        }
        slot.args.push_str(&args);
        match &slot.added {
            None if !slot.name.is_empty() => self.add_tool(pos, out),
            Some(at) if !args.is_empty() => Self::args_delta(&mut self.sink, out, at, &args),
            _ => {}
        }
    }

    /// Emits `output_item.added` for a tool slot, followed by the arguments buffered until then.
    fn add_tool(&mut self, pos: usize, out: &mut Vec<u8>) {
        let Some(slot) = self.tools.get(pos) else {
            return;
        };
        let call = slot
            .call_id
            .clone()
            .unwrap_or_else(|| item_id(&self.ctx, "call", self.output.len()));
        let (name, args) = (slot.name.clone(), slot.args.clone());
        let call_id = call.clone();
        let at = self.add_item(out, "fc", |id| OutItem::Call {
            id,
            call_id,
            name,
            arguments: String::new(),
            status: "in_progress",
        });
        if !args.is_empty() {
            Self::args_delta(&mut self.sink, out, &at, &args);
        }
        if let Some(slot) = self.tools.get_mut(pos) {
            (slot.call_id, slot.added) = (Some(call), Some(at));
        }
    }

    fn close_all(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        for pos in 0..self.tools.len() {
            let unannounced =
                |s: &ToolSlot| s.added.is_none() && !(s.name.is_empty() && s.args.is_empty());
            if self.tools.get(pos).is_some_and(unannounced) {
                self.add_tool(pos, out);
            }
        }
        for slot in std::mem::take(&mut self.tools) {
            self.closed_tools
                .push((slot.chat_index, slot.call_id.clone()));
            let Some(at) = slot.added else {
                continue;
            };
            self.sink.begin(out, "function_call_arguments.done");
            out.extend_from_slice(&at.head);
            out.extend_from_slice(b",\"arguments\":");
            put_str(out, &slot.args);
            out.extend_from_slice(b",\"name\":");
            put_str(out, &slot.name);
            Sink::end(out);
            let item = OutItem::Call {
                id: at.id,
                call_id: slot.call_id.unwrap_or_default(),
                name: slot.name,
                arguments: slot.args,
                status: "completed",
            };
            self.item_done(at.index, item, out);
        }
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            None => {}
            Some(Open::Message(at, mut msg)) => {
                self.sink.close_part(out, &at, &mut msg);
                let item = OutItem::Message {
                    id: at.id,
                    status: "completed",
                    parts: msg.parts,
                };
                self.item_done(at.index, item, out);
            }
            Some(Open::Reasoning(at, text)) => {
                let si = b",\"summary_index\":";
                self.sink
                    .begin_at(out, "reasoning_summary_text.done", &at, si, 0);
                out.extend_from_slice(b",\"text\":");
                put_str(out, &text);
                Sink::end(out);
                self.sink
                    .begin_at(out, "reasoning_summary_part.done", &at, si, 0);
                out.extend_from_slice(b",\"part\":{\"type\":\"summary_text\",\"text\":");
                put_str(out, &text);
                out.push(b'}');
                Sink::end(out);
                let item = OutItem::Reasoning {
                    id: at.id,
                    text: Some(text),
                };
                self.item_done(at.index, item, out);
            }
        }
    }

    fn item_done(&mut self, index: usize, item: OutItem, out: &mut Vec<u8>) {
        self.sink.begin(out, "output_item.done");
        out.extend_from_slice(b",\"output_index\":");
        put_u64(out, index as u64);
        out.extend_from_slice(b",\"item\":");
        put_item(out, &item);
        Sink::end(out);
        if let Some(slot) = self.output.get_mut(index) {
            *slot = item;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The echoed request fields as a JSON object.
    fn echo_of(ctx: &ResponseContext) -> Value {
        serde_json::from_str(&format!("{{{}}}", ctx.echo)).unwrap()
    }

    fn ctx_of(req: &Value) -> ResponseContext {
        ResponseContext::from_request(req.to_string().as_bytes(), "resp_abc".into(), 1700)
    }

    fn chat_of(req: &Value) -> (Value, ResponseContext) {
        let (chat, ctx) = parse(req.to_string().as_bytes(), "resp_abc".into(), 1700).unwrap();
        (serde_json::from_slice(&chat.body).unwrap(), ctx)
    }

    fn err_of(req: &[u8]) -> RequestError {
        responses_to_chat_request(req).unwrap_err()
    }

    /// Parses emitted SSE, checking `event:` matches `type` and sequence numbers run 0, 1, 2, ….
    fn events(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n"));
        let evs: Vec<Value> = text
            .split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|block| {
                let (ev, data) = block.split_once('\n').unwrap();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(ev.strip_prefix("event: ").unwrap(), v["type"]);
                v
            })
            .collect();
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e["sequence_number"], json!(i));
        }
        evs
    }

    fn stream(chunks: &[&str]) -> (Vec<Value>, ResponsesStreamEncoder) {
        let ctx = ctx_of(&json!({"model": "m", "stream": true, "input": "hi"}));
        let mut enc = ResponsesStreamEncoder::new(ctx);
        let mut out = Vec::new();
        enc.start(&mut out);
        for c in chunks {
            enc.push(c.as_bytes(), &mut out);
        }
        enc.finish(&mut out);
        let again = out.len();
        enc.finish(&mut out);
        assert_eq!(out.len(), again, "finish is idempotent");
        (events(&out), enc)
    }

    /// The event types, without their `response.` prefix, space-separated.
    fn types(evs: &[Value]) -> String {
        let short = |e: &Value| {
            e["type"]
                .as_str()
                .unwrap()
                .trim_start_matches("response.")
                .to_string()
        };
        evs.iter().map(short).collect::<Vec<_>>().join(" ")
    }

    fn delta(d: Value) -> String {
        json!({"id": "c1", "model": "up-model", "choices": [{"index": 0, "delta": d, "finish_reason": null}]}).to_string()
    }

    fn finish_chunk(reason: &str) -> String {
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
    }

    const USAGE: &str =
        r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;

    #[test]
    fn codex_request_maps_to_chat() {
        let req = json!({
            "model": "gpt-5", "instructions": "You are Codex.", "stream": true, "store": false,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k1",
            "input": [
                {"type": "message", "role": "developer", "content": [
                    {"type": "input_text", "text": "perm A"}, {"type": "input_text", "text": "perm B"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": "x"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
                {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"cmd\":\"ls\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": "{\"cmd\":\"pwd\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "/work"}]},
                {"role": "user", "content": "thanks"}
            ],
            "tools": [
                {"type": "function", "name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false},
                {"type": "namespace", "name": "mcp__fs", "tools": [
                    {"type": "function", "name": "read_file", "parameters": {"type": "object"}},
                    {"type": "custom", "name": "apply_patch"}]},
                {"type": "web_search"}
            ],
            "tool_choice": "auto", "parallel_tool_calls": true, "reasoning": {"effort": "minimal", "summary": "auto"}
        });
        let (chat, ctx) = chat_of(&req);
        let call = |id: &str, cmd: &str| {
            json!({"id": id, "type": "function",
            "function": {"name": "shell", "arguments": format!("{{\"cmd\":\"{cmd}\"}}")}})
        };
        assert_eq!(
            chat,
            json!({
                "model": "gpt-5",
                "messages": [
                    {"role": "system", "content": "You are Codex."},
                    {"role": "system", "content": "perm A\n\nperm B"},
                    {"role": "user", "content": "list files"},
                    {"role": "assistant", "content": "Let me look.", "tool_calls": [call("call_1", "ls"), call("call_2", "pwd")]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                    {"role": "tool", "tool_call_id": "call_2", "content": "/work"},
                    {"role": "user", "content": "thanks"}
                ],
                "stream": true, "stream_options": {"include_usage": true},
                "tools": [
                    {"type": "function", "function": {"name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false}},
                    {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
                ],
                "tool_choice": "auto", "parallel_tool_calls": true, "reasoning_effort": "low"
            })
        );
        assert_eq!(ctx.dropped_tools, ["apply_patch", "web_search"]);
        assert!(ctx.stream);
        assert_eq!(ctx.model, "gpt-5");
        assert_eq!(ctx, ctx_of(&req), "from_request agrees with parse");
        let plain = responses_to_chat_request(req.to_string().as_bytes()).unwrap();
        assert!(plain.stream);
        assert_eq!(plain.model, "gpt-5");
    }

    #[test]
    fn params_formats_images_and_tool_choice_map() {
        let (chat, _) = chat_of(&json!({
            "model": "m", "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "low"}]}],
            "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 4, "user": "u1", "metadata": {"a": "b"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}},
            "tools": [{"type": "function", "name": "f", "parameters": {}}],
            "tool_choice": {"type": "function", "name": "f"}
        }));
        assert_eq!(
            chat,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}}]}],
                "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 4, "user": "u1",
                "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}},
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}}
            })
        );
        // Only hosted tools: all dropped, and no dangling tool_choice reaches the upstream.
        let (chat, ctx) = chat_of(
            &json!({"model": "m", "input": "hi", "tools": [{"type": "web_search_preview"}],
            "tool_choice": "auto", "text": {"format": {"type": "json_object"}}}),
        );
        assert_eq!(
            chat,
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"}})
        );
        assert_eq!(ctx.dropped_tools, ["web_search_preview"]);
    }

    #[test]
    fn refused_requests_name_the_field() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (b"{not json", "invalid_json", None),
            (b"[1,2]", "invalid_json", None),
            (br#"{"input":"hi"}"#, "missing_model", Some("model")),
            (br#"{"model":"m","input":"hi","previous_response_id":"resp_1"}"#, "previous_response_not_supported", Some("previous_response_id")),
            (br#"{"model":"m","input":"hi","conversation":"c"}"#, "conversation_not_supported", Some("conversation")),
            (br#"{"model":"m","input":"hi","background":true}"#, "background_not_supported", Some("background")),
            (br#"{"model":"m","input":42}"#, "invalid_type", Some("input")),
            (br#"{"model":"m","input":[{"type":"item_reference","id":"x"}]}"#, "unsupported_input_item", Some("input[0].type")),
            (br#"{"model":"m","input":"hi","tools":[{"type":"function","name":"f"},{"type":"web_search"}],"tool_choice":{"type":"web_search"}}"#, "unsupported_tool", Some("tool_choice")),
            (br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_data":"x"}]}]}"#, "unsupported_content", Some("input[0].content[0]")),
            (br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}"#, "unsupported_content", Some("input[0].content[0].file_id")),
            (br#"{"model":"m","input":[{"role":"tool","content":"x"}]}"#, "invalid_value", Some("input[0].role")),
            (br#"{"model":"m","input":[{"type":"function_call","name":"f"}]}"#, "missing_required_parameter", Some("input[0].call_id")),
            (br#"{"model":"m","input":"hi","temperature":"hot"}"#, "invalid_type", Some("temperature")),
            (br#"{"model":"m","input":[]}"#, "missing_input", Some("input")),
        ];
        for (body, code, param) in cases {
            let e = err_of(body);
            assert_eq!(
                (e.status, e.code, e.param.as_deref()),
                (400, *code, *param),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!e.message.is_empty());
        }
        assert!(
            err_of(br#"{"model":"m","input":"hi","previous_response_id":"r"}"#)
                .message
                .contains("stateless")
        );
        // store:true, null previous_response_id and unknown extras are accepted.
        assert!(responses_to_chat_request(br#"{"model":"m","input":"hi","store":true,"previous_response_id":null,"truncation":"auto","service_tier":"auto"}"#).is_ok());
    }

    #[test]
    fn error_body_has_openai_shape() {
        let v: Value = serde_json::from_slice(&error_body(
            400,
            "invalid_request_error",
            "missing_model",
            "no model",
            Some("model"),
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "no model", "type": "invalid_request_error", "code": "missing_model", "param": "model"}})
        );
    }

    fn answer(chat: Value, req: Value) -> Value {
        serde_json::from_slice(
            &chat_to_responses_response(chat.to_string().as_bytes(), &ctx_of(&req)).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn non_stream_text_answer() {
        let r = answer(
            json!({"id": "c", "model": "up", "choices": [{"message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": {"cached_tokens": 3}}}),
            json!({"model": "m", "input": "hi", "instructions": "be nice", "temperature": 0.5, "store": true}),
        );
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(r["object"], "response");
        assert_eq!(r["created_at"], 1700);
        assert_eq!(r["status"], "completed");
        assert_eq!(r["model"], "up");
        assert_eq!(r["incomplete_details"], Value::Null);
        assert_eq!(
            r["output"],
            json!([{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}])
        );
        assert_eq!(
            r["usage"],
            json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7})
        );
        assert_eq!(
            (&r["instructions"], &r["temperature"], &r["store"]),
            (&json!("be nice"), &json!(0.5), &json!(false))
        );
        assert_eq!(r["text"], json!({"format": {"type": "text"}}));
        assert_eq!(r["tool_choice"], "auto");
        assert_eq!(r["previous_response_id"], Value::Null);
        assert!(chat_to_responses_response(b"oops", &ctx_of(&json!({}))).is_err());
    }

    #[test]
    fn non_stream_tool_calls_and_reasoning() {
        let r = answer(
            json!({"choices": [{"message": {"content": null, "reasoning_content": "need a tool", "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\":\"ls\"}"}},
                {"id": "call_10", "type": "function", "function": {"name": "read", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"model": "m", "input": "hi"}),
        );
        assert_eq!(r["model"], "m");
        assert_eq!(r["status"], "completed");
        assert_eq!(r["usage"], Value::Null);
        assert_eq!(
            r["output"],
            json!([
                {"type": "reasoning", "id": "rs_abc_0", "summary": [{"type": "summary_text", "text": "need a tool"}]},
                {"type": "function_call", "id": "fc_abc_1", "call_id": "call_9", "name": "shell", "arguments": "{\"cmd\":\"ls\"}", "status": "completed"},
                {"type": "function_call", "id": "fc_abc_2", "call_id": "call_10", "name": "read", "arguments": "{}", "status": "completed"}
            ])
        );
    }

    #[test]
    fn non_stream_think_tags_and_length() {
        let r = answer(
            json!({"choices": [{"message": {"content": "\n<think>\nhmm\n</think>\n\nThe answer"}, "finish_reason": "length"}]}),
            json!({"model": "m", "input": "hi", "max_output_tokens": 9}),
        );
        assert_eq!(r["status"], "incomplete");
        assert_eq!(
            r["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(r["max_output_tokens"], 9);
        assert_eq!(r["output"][0]["summary"][0]["text"], "hmm");
        assert_eq!(r["output"][1]["content"][0]["text"], "The answer");
        let r = answer(
            json!({"choices": [{"message": {"content": "", "refusal": "no"}, "finish_reason": "content_filter"}]}),
            json!({"model": "m"}),
        );
        assert_eq!(r["incomplete_details"], json!({"reason": "content_filter"}));
        assert_eq!(
            r["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "no"}])
        );
    }

    #[test]
    fn stream_text() {
        let chunks = [
            json!({"choices": [{"delta": {"role": "assistant"}}]}).to_string(),
            ": keepalive-ish garbage".to_string(),
            delta(json!({"content": "Hel"})),
            delta(json!({"content": "lo"})),
            delta(json!({"content": " world"})),
            finish_chunk("stop"),
            USAGE.to_string(),
            "[DONE]".to_string(),
            delta(json!({"content": "ignored after the end"})),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, enc) = stream(&refs);
        let want = "created in_progress output_item.added content_part.added output_text.delta \
            output_text.delta output_text.delta output_text.done content_part.done \
            output_item.done completed";
        assert_eq!(types(&evs), want);
        assert_eq!(evs[0]["response"]["status"], "in_progress");
        assert_eq!(evs[0]["response"]["output"], json!([]));
        let text: String = evs
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Hello world");
        assert_eq!(evs[7]["text"], "Hello world");
        assert_eq!(evs[4]["item_id"], "msg_abc_0");
        let done = &evs[10]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["model"], "up-model");
        assert_eq!(done["usage"]["input_tokens"], 7);
        assert_eq!(done["usage"]["total_tokens"], 10);
        assert_eq!(
            done["output"],
            json!([{"type": "message", "id": "msg_abc_0", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello world", "annotations": []}]}])
        );
        assert_eq!(
            enc.usage(),
            Some(wire::Usage {
                prompt_tokens: 7,
                completion_tokens: 3
            })
        );
    }

    #[test]
    fn stream_tool_calls() {
        let tc = |v: Value| delta(json!({"tool_calls": [v]}));
        let chunks = [
            delta(json!({"content": "Checking."})),
            // id first, name later (OpenRouter-style duplicate with empty arguments in between).
            tc(
                json!({"index": 0, "id": "call_a", "type": "function", "function": {"arguments": ""}}),
            ),
            tc(json!({"index": 0, "id": "call_a", "function": {"name": "shell", "arguments": ""}})),
            tc(json!({"index": 0, "function": {"arguments": "{\"cmd\":"}})),
            tc(json!({"index": 0, "function": {"arguments": "\"ls\"}"}})),
            // The whole arguments repeated in a final chunk: skipped.
            tc(json!({"index": 0, "function": {"arguments": "{\"cmd\":\"ls\"}"}})),
            // A second, parallel call arriving complete in one delta.
            tc(
                json!({"index": 1, "id": "call_b", "function": {"name": "read", "arguments": "{\"path\":\"a\"}"}}),
            ),
            finish_chunk("tool_calls"),
            USAGE.to_string(),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let want = "created in_progress output_item.added content_part.added output_text.delta \
            output_text.done content_part.done output_item.done output_item.added \
            function_call_arguments.delta function_call_arguments.delta output_item.added \
            function_call_arguments.delta function_call_arguments.done output_item.done \
            function_call_arguments.done output_item.done completed";
        assert_eq!(types(&evs), want);
        assert_eq!(
            evs[8]["item"],
            json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "shell",
            "arguments": "", "status": "in_progress"})
        );
        let args: String = evs
            .iter()
            .filter(|e| {
                e["type"] == "response.function_call_arguments.delta" && e["output_index"] == 1
            })
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(args, "{\"cmd\":\"ls\"}");
        assert_eq!(evs[13]["arguments"], "{\"cmd\":\"ls\"}");
        assert_eq!(evs[13]["name"], "shell");
        let out = &evs[17]["response"]["output"];
        assert_eq!(out.as_array().unwrap().len(), 3);
        assert_eq!(
            out[1],
            json!({"type": "function_call", "id": "fc_abc_1", "call_id": "call_a", "name": "shell",
            "arguments": "{\"cmd\":\"ls\"}", "status": "completed"})
        );
        assert_eq!(
            out[2],
            json!({"type": "function_call", "id": "fc_abc_2", "call_id": "call_b", "name": "read",
            "arguments": "{\"path\":\"a\"}", "status": "completed"})
        );
        assert_eq!(evs[17]["response"]["usage"]["output_tokens"], 3);
    }

    #[test]
    fn stream_error_mid_stream_fails_once() {
        let chunks = [
            delta(json!({"content": "partial"})),
            r#"{"error":{"message":"upstream broke","type":"stream_error","code":"upstream_error"}}"#.to_string(),
            delta(json!({"content": "more"})),
            "[DONE]".to_string(),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let want = "created in_progress output_item.added content_part.added output_text.delta \
            failed";
        assert_eq!(types(&evs), want);
        let failed = &evs[5]["response"];
        assert_eq!(failed["status"], "failed");
        assert_eq!(
            failed["error"],
            json!({"code": "upstream_error", "message": "upstream broke"})
        );
    }

    #[test]
    fn stream_think_tags_split_across_chunks() {
        let chunks = [
            delta(json!({"content": "<thi"})),
            delta(json!({"content": "nk>step one, "})),
            delta(json!({"content": "step two</th"})),
            delta(json!({"content": "ink>\n\n"})),
            delta(json!({"content": "Answer"})),
            finish_chunk("stop"),
            "[DONE]".to_string(),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let want = "created in_progress output_item.added reasoning_summary_part.added \
            reasoning_summary_text.delta reasoning_summary_text.delta \
            reasoning_summary_text.done reasoning_summary_part.done output_item.done \
            output_item.added content_part.added output_text.delta output_text.done \
            content_part.done output_item.done completed";
        assert_eq!(types(&evs), want);
        assert_eq!(evs[6]["text"], "step one, step two");
        let out = &evs[15]["response"]["output"];
        assert_eq!(
            out[0],
            json!({"type": "reasoning", "id": "rs_abc_0", "summary": [{"type": "summary_text", "text": "step one, step two"}]})
        );
        assert_eq!(out[1]["content"][0]["text"], "Answer");
        assert_eq!(out[1]["id"], "msg_abc_1");
    }

    #[test]
    fn stream_reasoning_content_then_text_with_length() {
        let chunks = [
            delta(json!({"reasoning_content": "let me think"})),
            delta(json!({"reasoning": "ignored duplicate", "reasoning_content": " more"})),
            delta(json!({"content": "<b>bold</b>"})),
            finish_chunk("length"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(
            last["response"]["output"][0]["summary"][0]["text"],
            "let me think more"
        );
        assert_eq!(
            last["response"]["output"][1]["content"][0]["text"],
            "<b>bold</b>"
        );
    }

    #[test]
    fn stream_end_without_done() {
        // Output but neither finish_reason nor [DONE]: completed.
        let chunk = delta(json!({"content": "hi"}));
        let (evs, enc) = stream(&[&chunk]);
        assert_eq!(evs.last().unwrap()["type"], "response.completed");
        assert_eq!(enc.usage(), None);
        // Nothing at all (keep-alives only): failed.
        let (evs, _) = stream(&[
            r#"{"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":""}}]}"#,
        ]);
        assert_eq!(types(&evs), "created in_progress failed");
        // Whitespace before a tool call does not become a message item.
        let a = delta(json!({"content": "\n"}));
        let b = delta(
            json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
        );
        let (evs, _) = stream(&[&a, &b, "[DONE]"]);
        let out = &evs.last().unwrap()["response"]["output"];
        assert_eq!(out.as_array().unwrap().len(), 1);
        assert_eq!(out[0]["type"], "function_call");
    }

    #[test]
    fn stream_calls_sharing_index_zero_and_late_names() {
        let tc = |v: Value| delta(json!({"tool_calls": [v]}));
        let chunks = [
            // Arguments before the name: buffered until the item can be announced.
            tc(json!({"index": 0, "id": "call_x", "function": {"arguments": "{\"a\":1}"}})),
            tc(json!({"index": 0, "function": {"name": "first"}})),
            // Another call reusing index 0 with its own id (seen from some upstreams).
            tc(
                json!({"index": 0, "id": "call_y", "function": {"name": "second", "arguments": "{}"}}),
            ),
            delta(json!({"refusal": "no more"})),
            finish_chunk("stop"),
        ];
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (evs, _) = stream(&refs);
        let out = evs.last().unwrap()["response"]["output"]
            .as_array()
            .unwrap()
            .clone();
        let calls: Vec<(&str, &str, &str)> = out[..2]
            .iter()
            .map(|o| {
                (
                    o["call_id"].as_str().unwrap(),
                    o["name"].as_str().unwrap(),
                    o["arguments"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [("call_x", "first", "{\"a\":1}"), ("call_y", "second", "{}")]
        );
        assert_eq!(
            out[2]["content"],
            json!([{"type": "refusal", "refusal": "no more"}])
        );
        assert!(evs
            .iter()
            .any(|e| e["type"] == "response.refusal.done" && e["refusal"] == "no more"));
        // The context builder never fails, even on a body the codec refuses.
        let ctx = ResponseContext::from_request(b"nonsense", "resp_q".into(), 1);
        assert_eq!(
            (ctx.model.as_str(), &echo_of(&ctx)["tool_choice"]),
            ("", &json!("auto"))
        );
    }
}
