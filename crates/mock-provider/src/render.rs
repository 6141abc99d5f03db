//! Hand-rolled JSON text for the hot paths (no `serde_json::Value` building per response).

use std::fmt::Write as _;

/// Content of the non-stream answer.
pub(crate) const CONTENT: &str = "Hello from mock.";
/// Completion tokens reported for [`CONTENT`].
pub(crate) const CONTENT_TOKENS: u64 = 4;
/// Completion tokens reported for a tool call answer.
pub(crate) const TOOL_TOKENS: u64 = 10;
/// Completion tokens reported for the non-stream reasoning text.
pub(crate) const REASON_TOKENS: u64 = 2;
/// Arguments of the mock tool call (JSON text, itself JSON-escaped for embedding).
pub(crate) const TOOL_ARGS_ESCAPED: &str = r#""{\"city\":\"Paris\"}""#;

/// Returns `s` as a JSON string literal (with quotes).
pub(crate) fn json_string(s: &str) -> String {
    let plain = s
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f);
    if plain {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        out
    } else {
        serde_json::Value::String(s.to_owned()).to_string()
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Usage object text.
pub(crate) fn usage(out: &mut String, prompt: u64, completion: u64) {
    let _ = write!(
        out,
        r#"{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{}}}"#,
        prompt + completion
    );
}

/// What the non-stream chat completion answers with.
pub(crate) enum Answer<'a> {
    Text {
        reasoning: bool,
    },
    /// `<think>reasoning</think>` opening the content.
    ThinkTagged,
    /// Empty content; the answer text in `reasoning_content`.
    ReasoningOnly,
    Tool {
        name_json: &'a str,
    },
}

/// Full non-stream `chat.completion` body.
pub(crate) fn chat_completion(
    id: u64,
    created: u64,
    model_json: &str,
    prompt_tokens: u64,
    answer: &Answer<'_>,
) -> String {
    let mut out = String::with_capacity(420 + model_json.len());
    let _ = write!(
        out,
        r#"{{"id":"chatcmpl-mock-{id}","object":"chat.completion","created":{created},"model":{model_json},"choices":[{{"index":0,"message":"#
    );
    let (completion, finish) = match answer {
        Answer::Text { reasoning } => {
            out.push_str(r#"{"role":"assistant","content":""#);
            out.push_str(CONTENT);
            out.push('"');
            let mut completion = CONTENT_TOKENS;
            if *reasoning {
                out.push_str(r#","reasoning_content":"Mock reasoning.""#);
                completion += REASON_TOKENS;
            }
            out.push_str(r#","refusal":null}"#);
            (completion, "stop")
        }
        Answer::ThinkTagged => {
            out.push_str(r#"{"role":"assistant","content":"<think>Mock reasoning.</think>"#);
            out.push_str(CONTENT);
            out.push_str(r#""}"#);
            (CONTENT_TOKENS + REASON_TOKENS, "stop")
        }
        Answer::ReasoningOnly => {
            out.push_str(r#"{"role":"assistant","content":"","reasoning_content":""#);
            out.push_str(CONTENT);
            out.push_str(r#""}"#);
            (CONTENT_TOKENS, "stop")
        }
        Answer::Tool { name_json } => {
            let _ = write!(
                out,
                r#"{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_1","type":"function","function":{{"name":{name_json},"arguments":{TOOL_ARGS_ESCAPED}}}}}],"refusal":null}}"#
            );
            (TOOL_TOKENS, "tool_calls")
        }
    };
    let _ = write!(
        out,
        r#","logprobs":null,"finish_reason":"{finish}"}}],"usage":"#
    );
    usage(&mut out, prompt_tokens, completion);
    out.push_str(r#","system_fingerprint":"fp_mock","x_mock_extra":{"kept":true}}"#);
    out
}

/// OpenAI-style `type` and `code` for an error status.
pub(crate) fn error_kind(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalid_request_error", "invalid_request"),
        401 => ("authentication_error", "invalid_api_key"),
        403 => ("permission_error", "permission_denied"),
        404 => ("not_found_error", "not_found"),
        408 => ("timeout_error", "timeout"),
        413 => ("invalid_request_error", "request_too_large"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        500 => ("server_error", "internal_error"),
        502 => ("server_error", "bad_gateway"),
        503 => ("server_error", "service_unavailable"),
        504 => ("server_error", "gateway_timeout"),
        501 | 505..=599 => ("server_error", "server_error"),
        _ => ("invalid_request_error", "invalid_request"),
    }
}

/// OpenAI-style error body.
pub(crate) fn error_body(status: u16, message: &str) -> String {
    let (kind, code) = error_kind(status);
    format!(
        r#"{{"error":{{"message":{},"type":"{kind}","param":null,"code":"{code}"}}}}"#,
        json_string(message)
    )
}

/// An OpenAI-style error body with an explicit `type` and `code`.
pub(crate) fn error_body_typed(kind: &str, code: &str, message: &str) -> String {
    format!(
        r#"{{"error":{{"message":{},"type":{},"param":null,"code":{}}}}}"#,
        json_string(message),
        json_string(kind),
        json_string(code)
    )
}

/// `/v1/models` body (constant).
pub(crate) const MODELS_BODY: &str = r#"{"object":"list","data":[{"id":"mock-model","object":"model","created":0,"owned_by":"mock"},{"id":"mock-embed","object":"model","created":0,"owned_by":"mock"}]}"#;

/// `/v1/embeddings` body.
pub(crate) fn embeddings(inputs: usize, model_json: &str, prompt_tokens: u64) -> String {
    const ITEM_MAX: usize = 80;
    let mut out = String::with_capacity(96 + inputs * ITEM_MAX + model_json.len());
    out.push_str(r#"{"object":"list","data":["#);
    for i in 0..inputs {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"object":"embedding","index":{i},"embedding":[0.1,0.2,0.3,0.4]}}"#
        );
    }
    let _ = write!(
        out,
        r#"],"model":{model_json},"usage":{{"prompt_tokens":{prompt_tokens},"total_tokens":{prompt_tokens}}}}}"#
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
    }

    #[test]
    fn bodies_are_valid_json() {
        let m = json_string("we\"ird\nmodel");
        assert_eq!(parse(&m), serde_json::json!("we\"ird\nmodel"));
        let v = parse(&chat_completion(
            3,
            10,
            &m,
            7,
            &Answer::Text { reasoning: true },
        ));
        assert_eq!(v["model"], "we\"ird\nmodel");
        assert_eq!(v["choices"][0]["message"]["content"], CONTENT);
        assert_eq!(
            v["usage"]["total_tokens"],
            7 + CONTENT_TOKENS + REASON_TOKENS
        );
        let name = json_string("f");
        let v = parse(&chat_completion(
            3,
            10,
            &m,
            7,
            &Answer::Tool { name_json: &name },
        ));
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let v = parse(&embeddings(3, &m, 5));
        assert_eq!(v["data"].as_array().map(Vec::len), Some(3));
        assert_eq!(v["usage"]["total_tokens"], 5);
        assert_eq!(parse(MODELS_BODY)["data"][1]["id"], "mock-embed");
        let v = parse(&error_body(429, "mock 429"));
        assert_eq!(v["error"]["type"], "rate_limit_error");
    }
}
