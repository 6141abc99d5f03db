//! JSON without `serde_json::Value`, shared by the codecs: writers that escape exactly as serde_json does, lenient
//! borrowing readers for upstream answers (any JSON value reads; a field of an unexpected type reads as absent), and
//! a borrowed request tree ([`J`]) whose chosen members stay raw JSON text so large schemas pass through unparsed.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

use crate::RequestError;

// ---------------------------------------------------------------------------------------------------------------
// Writing JSON by hand.

/// `s` as a JSON string, escaped exactly as serde_json escapes it.
pub(crate) fn esc(out: &mut Vec<u8>, s: &str) {
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

pub(crate) fn num(out: &mut Vec<u8>, mut n: u64) {
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
pub(crate) fn compact(raw: &str) -> Cow<'_, str> {
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

pub(crate) fn put(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

// ---------------------------------------------------------------------------------------------------------------
// Lenient, borrowing readers for chat answers and stream chunks.

/// An object key as bytes (not checked for UTF-8 twice), borrowed unless it has escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, [u8]>);

pub(crate) struct KeyVisitor;

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

pub(crate) use scalars_as_default;

/// Parses JSON text checked for UTF-8 once up front (serde_json then skips checking each string). Bytes that are
/// not UTF-8 fail as `serde_json::Value` parsing fails on them.
pub(crate) fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => Err(e),
            Ok(_) => serde_json::from_slice(bytes),
        },
    }
}

/// [`from_json`] through a seed.
pub(crate) fn from_json_seed<'a, S: DeserializeSeed<'a>>(
    bytes: &'a [u8],
    seed: S,
) -> Result<S::Value, serde_json::Error> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Err(serde::de::Error::custom(format!("invalid UTF-8: {e}"))),
    };
    let mut d = serde_json::Deserializer::from_str(text);
    let v = seed.deserialize(&mut d)?;
    d.end()?;
    Ok(v)
}

pub(crate) fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

pub(crate) fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A struct read from any JSON value: an object fills the named fields (last duplicate wins, others ignored),
/// anything else reads as the default (`is_obj` false).
macro_rules! lenient {
    ($name:ident { $($key:literal => $field:ident : $ty:ty,)* }) => {
        #[derive(Default)]
        pub(crate) struct $name<'a> {
            #[allow(dead_code)]
            pub(crate) is_obj: bool,
            $(pub(crate) $field: $ty,)*
            _borrow: ::std::marker::PhantomData<&'a ()>,
        }

        impl<'de> ::serde::Deserialize<'de> for $name<'de> {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str("any JSON value")
                    }
                    fn visit_map<A: ::serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut s = $name::default();
                        s.is_obj = true;
                        while let Some(k) = map.next_key::<$crate::json::Key<'de>>()? {
                            match &*k.0 {
                                $(k if k == $key.as_bytes() => s.$field = map.next_value()?,)*
                                _ => {
                                    map.next_value::<::serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(s)
                    }
                    fn visit_seq<A: ::serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                        $crate::json::skip_seq(seq)?;
                        Ok($name::default())
                    }
                    $crate::json::scalars_as_default!();
                }
                d.deserialize_any(V)
            }
        }
    };
}

pub(crate) use lenient;

/// A scalar field: a string (borrowed unless escaped), an unsigned integer, or anything else.
#[derive(Default)]
pub(crate) enum Sc<'a> {
    Str(Cow<'a, str>),
    U(u64),
    #[default]
    Other,
}

impl Sc<'_> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Sc::Str(s) => Some(s),
            _ => None,
        }
    }
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Sc::U(n) => Some(*n),
            _ => None,
        }
    }
    /// A non-empty string.
    pub(crate) fn text(&self) -> Option<&str> {
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
pub(crate) enum Args<'a> {
    Str(Cow<'a, str>),
    Obj(String),
    #[default]
    Other,
}

impl Args<'_> {
    pub(crate) fn text(&self) -> &str {
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
pub(crate) struct LVec<T>(pub(crate) Vec<T>);

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

// ---------------------------------------------------------------------------------------------------------------
// Requests: a borrowed JSON tree.

/// A JSON value borrowed from the request body. The values of `input` and `input_schema` keys stay raw JSON text
/// (passed through as they came).
pub(crate) enum J<'a> {
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
pub(crate) struct Obj<'a>(pub(crate) Vec<(Cow<'a, [u8]>, J<'a>)>);

impl<'a> Obj<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&J<'a>> {
        let key = key.as_bytes();
        self.0
            .iter()
            .rev()
            .find(|(k, _)| **k == *key)
            .map(|(_, v)| v)
    }
}

/// Reads a [`J`]; the values of members named in `raw` (at any depth) stay raw JSON text.
#[derive(Clone, Copy)]
pub(crate) struct JSeed {
    pub(crate) raw: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for JSeed {
    type Value = J<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<J<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JSeed {
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
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(x) = seq.next_element_seed(self)? {
            v.push(x);
        }
        Ok(J::Arr(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v = if self.raw.iter().any(|r| r.as_bytes() == &*k) {
                J::Raw(map.next_value::<&'de RawValue>()?)
            } else {
                map.next_value_seed(self)?
            };
            members.push((k, v));
        }
        Ok(J::Obj(Obj(members)))
    }
}

/// A request field's path, rendered only for errors: `messages[2].content[0].source`.
#[derive(Clone, Copy)]
pub(crate) enum P<'p> {
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

pub(crate) fn missing(param: &str) -> RequestError {
    RequestError::invalid(
        "missing_required_parameter",
        param,
        format!("`{param}` is required"),
    )
}

pub(crate) fn wrong_type(param: &str, what: &str) -> RequestError {
    RequestError::invalid("invalid_type", param, format!("`{param}` must be {what}"))
}

pub(crate) fn bad_value(param: &str, message: String) -> RequestError {
    RequestError::invalid("invalid_value", param, message)
}

pub(crate) fn unsupported(param: &str, message: &str) -> RequestError {
    RequestError::invalid("unsupported_content", param, message)
}

/// The request body as an object tree, the members named in `raw` kept as raw JSON text (see [`JSeed`]).
pub(crate) fn parse_root<'a>(
    body: &'a [u8],
    raw: &'static [&'static str],
) -> Result<Obj<'a>, RequestError> {
    let invalid = |message: String| RequestError {
        status: 400,
        code: "invalid_json",
        param: None,
        message,
    };
    match from_json_seed(body, JSeed { raw }) {
        Ok(J::Obj(o)) => Ok(o),
        Ok(_) => Err(invalid("request body must be a JSON object".into())),
        Err(e) => Err(invalid(format!("request body is not valid JSON: {e}"))),
    }
}

pub(crate) fn req_str<'a>(o: &'a Obj<'a>, key: &str, p: &P) -> Result<&'a str, RequestError> {
    match o.get(key) {
        Some(J::Str(s)) => Ok(s),
        None | Some(J::Null) => Err(missing(&format!("{p}.{key}"))),
        Some(_) => Err(wrong_type(&format!("{p}.{key}"), "a string")),
    }
}

pub(crate) fn opt_str<'a>(
    o: &'a Obj<'a>,
    key: &str,
    p: &P,
) -> Result<Option<&'a str>, RequestError> {
    match o.get(key) {
        Some(J::Str(s)) => Ok(Some(s)),
        None | Some(J::Null) => Ok(None),
        Some(_) => Err(wrong_type(&format!("{p}.{key}"), "a string")),
    }
}

/// A content block as an object with its `type`.
pub(crate) fn block<'a>(b: &'a J<'a>, p: &P) -> Result<(&'a Obj<'a>, &'a str), RequestError> {
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
pub(crate) fn join_line<'a>(acc: &mut Option<Cow<'a, str>>, s: Cow<'a, str>) {
    match acc {
        None => *acc = Some(s),
        Some(c) => {
            let o = c.to_mut();
            o.push('\n');
            o.push_str(&s);
        }
    }
}

/// Tokens estimated the way the gateway estimates a chat request: about four bytes of JSON per token, inline
/// images (`data:` URLs) a fixed 1000 tokens each.
pub(crate) fn estimate_json_tokens(text: &str) -> u64 {
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
