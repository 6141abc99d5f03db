//! Borrowed views of inbound request bodies. The gateway reads only the fields it routes on; the body itself is
//! forwarded as the client sent it, so every other field travels untouched.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// Why a body was refused, with the offending parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFieldError {
    pub code: &'static str,
    pub param: Option<&'static str>,
    pub message: String,
}

impl From<RequestFieldError> for ApiError {
    fn from(e: RequestFieldError) -> Self {
        let err = ApiError::invalid_request(e.code, e.message);
        match e.param {
            Some(p) => err.with_param(p),
            None => err,
        }
    }
}

fn field_error(
    code: &'static str,
    param: Option<&'static str>,
    message: impl Into<String>,
) -> RequestFieldError {
    RequestFieldError {
        code,
        param,
        message: message.into(),
    }
}

#[derive(Deserialize)]
struct RawChat<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response_format: Option<&'a RawValue>,
    #[serde(default)]
    max_tokens: Option<serde_json::Value>,
    #[serde(default)]
    max_completion_tokens: Option<serde_json::Value>,
}

/// What the router needs from `POST /v1/chat/completions`.
#[derive(Debug)]
pub struct ChatRequestView<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The raw `messages` array, for token estimates and (later) dialect translation.
    pub messages: &'a RawValue,
    pub max_tokens: Option<u64>,
    /// Capabilities a model needs to serve this request.
    pub needs: Needs,
}

/// What a request needs from a model, judged from its shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// `tools` is a non-empty array.
    pub tools: bool,
    /// Some message carries an `image_url` part.
    pub vision: bool,
    /// `response_format` asks for JSON (`json_object` or `json_schema`).
    pub json: bool,
}

/// Tokens counted for each image part, whatever its encoded size.
const IMAGE_TOKENS: u64 = 1000;

fn parse_object<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, RequestFieldError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => {
            return Err(field_error(
                "invalid_json",
                None,
                "request body is empty; expected a JSON object",
            ))
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(field_error(
                "invalid_json",
                None,
                "request body must be a JSON object",
            ))
        }
    }
    serde_json::from_slice(body).map_err(|e| {
        field_error(
            "invalid_json",
            None,
            format!("request body is not valid JSON: {e}"),
        )
    })
}

fn parse_model<'a>(raw: Option<&'a RawValue>) -> Result<Cow<'a, str>, RequestFieldError> {
    let raw = raw.ok_or_else(|| {
        field_error(
            "missing_required_parameter",
            Some("model"),
            "you must provide a `model` parameter",
        )
    })?;
    let model: Cow<'a, str> = serde_json::from_str(raw.get())
        .map_err(|_| field_error("invalid_type", Some("model"), "`model` must be a string"))?;
    if model.trim().is_empty() {
        return Err(field_error(
            "invalid_value",
            Some("model"),
            "`model` must not be empty",
        ));
    }
    Ok(model)
}

fn parse_optional_tokens(
    v: Option<serde_json::Value>,
    param: &'static str,
) -> Result<Option<u64>, RequestFieldError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(n) => Ok(Some(n)),
            None => Err(field_error(
                "invalid_value",
                Some(param),
                format!("`{param}` must be a non-negative integer"),
            )),
        },
        Some(_) => Err(field_error(
            "invalid_type",
            Some(param),
            format!("`{param}` must be an integer"),
        )),
    }
}

impl<'a> ChatRequestView<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestFieldError> {
        let raw: RawChat<'a> = parse_object(body)?;
        let model = parse_model(raw.model)?;
        let messages = raw.messages.ok_or_else(|| {
            field_error(
                "missing_required_parameter",
                Some("messages"),
                "you must provide a `messages` array",
            )
        })?;
        let trimmed = messages.get().trim_start();
        if !trimmed.starts_with('[') {
            return Err(field_error(
                "invalid_type",
                Some("messages"),
                "`messages` must be an array",
            ));
        }
        if trimmed[1..].trim_start().starts_with(']') {
            return Err(field_error(
                "invalid_value",
                Some("messages"),
                "`messages` must contain at least one message",
            ));
        }
        let stream = match raw.stream.map(|s| s.get()) {
            None | Some("null") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(field_error(
                    "invalid_type",
                    Some("stream"),
                    "`stream` must be a boolean",
                ))
            }
        };
        let max_tokens =
            match parse_optional_tokens(raw.max_completion_tokens, "max_completion_tokens")? {
                Some(n) => Some(n),
                None => parse_optional_tokens(raw.max_tokens, "max_tokens")?,
            };
        let tools = raw.tools.is_some_and(|t| {
            let t = t.get().trim_start();
            t.starts_with('[') && !t[1..].trim_start().starts_with(']')
        });
        let json = raw.response_format.is_some_and(|f| {
            let f = f.get();
            f.contains("\"json_object\"") || f.contains("\"json_schema\"")
        });
        let needs = Needs {
            tools,
            vision: messages.get().contains("\"image_url\""),
            json,
        };
        Ok(Self {
            model,
            stream,
            messages,
            max_tokens,
            needs,
        })
    }

    /// A cheap estimate of prompt tokens: about four bytes of JSON text per token, with inline images (`data:`
    /// URLs, often megabytes of base64) counted as a fixed number of tokens each instead of by size.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        let text = self.messages.get();
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
}

#[derive(Deserialize)]
struct RawEmbeddings<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

/// What the router needs from `POST /v1/embeddings`.
#[derive(Debug)]
pub struct EmbeddingsRequestView<'a> {
    pub model: Cow<'a, str>,
    pub input: &'a RawValue,
}

impl<'a> EmbeddingsRequestView<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestFieldError> {
        let raw: RawEmbeddings<'a> = parse_object(body)?;
        let model = parse_model(raw.model)?;
        let input = raw.input.ok_or_else(|| {
            field_error(
                "missing_required_parameter",
                Some("input"),
                "you must provide an `input`",
            )
        })?;
        let text = input.get().trim_start();
        if !(text.starts_with('"') || text.starts_with('[')) {
            return Err(field_error(
                "invalid_type",
                Some("input"),
                "`input` must be a string, an array of strings, or an array of token arrays",
            ));
        }
        Ok(Self { model, input })
    }

    pub fn estimated_tokens(&self) -> u64 {
        (self.input.get().len() as u64).div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_routing_fields_only() {
        let body = br#"{"model":"m1","messages":[{"role":"user","content":"hi"}],"stream":true,"tools":[{"x":1}],"max_tokens":12}"#;
        let v = ChatRequestView::parse(body).unwrap();
        assert_eq!(v.model, "m1");
        assert!(v.stream);
        assert_eq!(v.max_tokens, Some(12));
        assert!(v.estimated_prompt_tokens() > 0);
        assert!(v.needs.tools && !v.needs.vision && !v.needs.json);
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        let v = ChatRequestView::parse(br#"{"model":"a\/b","messages":[{}]}"#).unwrap();
        assert_eq!(v.model, "a/b");
    }

    #[test]
    fn precise_errors() {
        let cases: &[(&[u8], &str, Option<&str>)] = &[
            (b"", "invalid_json", None),
            (b"[1]", "invalid_json", None),
            (b"{\"model\":", "invalid_json", None),
            (
                br#"{"messages":[{}]}"#,
                "missing_required_parameter",
                Some("model"),
            ),
            (
                br#"{"model":3,"messages":[{}]}"#,
                "invalid_type",
                Some("model"),
            ),
            (
                br#"{"model":"  ","messages":[{}]}"#,
                "invalid_value",
                Some("model"),
            ),
            (
                br#"{"model":"m"}"#,
                "missing_required_parameter",
                Some("messages"),
            ),
            (
                br#"{"model":"m","messages":{}}"#,
                "invalid_type",
                Some("messages"),
            ),
            (
                br#"{"model":"m","messages":[ ]}"#,
                "invalid_value",
                Some("messages"),
            ),
            (
                br#"{"model":"m","messages":[{}],"stream":"yes"}"#,
                "invalid_type",
                Some("stream"),
            ),
            (
                br#"{"model":"m","messages":[{}],"max_tokens":-1}"#,
                "invalid_value",
                Some("max_tokens"),
            ),
        ];
        for (body, code, param) in cases {
            let err = ChatRequestView::parse(body).unwrap_err();
            assert_eq!(err.code, *code, "{}", String::from_utf8_lossy(body));
            assert_eq!(err.param, *param, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn embeddings_input_required() {
        assert!(EmbeddingsRequestView::parse(br#"{"model":"e","input":"hello"}"#).is_ok());
        assert!(EmbeddingsRequestView::parse(br#"{"model":"e","input":["a","b"]}"#).is_ok());
        assert_eq!(
            EmbeddingsRequestView::parse(br#"{"model":"e"}"#)
                .unwrap_err()
                .param,
            Some("input")
        );
        assert_eq!(
            EmbeddingsRequestView::parse(br#"{"model":"e","input":5}"#)
                .unwrap_err()
                .code,
            "invalid_type"
        );
    }

    #[test]
    fn needs_and_image_estimates() {
        let image = "A".repeat(400_000);
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"what is this"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}}],"tools":[{{"type":"function","function":{{"name":"f"}}}}],"response_format":{{"type":"json_schema","json_schema":{{"name":"x","schema":{{}}}}}}}}"#
        );
        let v = ChatRequestView::parse(body.as_bytes()).unwrap();
        assert_eq!(
            v.needs,
            Needs {
                tools: true,
                vision: true,
                json: true
            }
        );
        let estimate = v.estimated_prompt_tokens();
        assert!(
            (IMAGE_TOKENS..IMAGE_TOKENS + 100).contains(&estimate),
            "{estimate}"
        );
        let v = ChatRequestView::parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[],"response_format":{"type":"text"}}"#).unwrap();
        assert_eq!(v.needs, Needs::default());
    }
}
