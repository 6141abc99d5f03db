//! What each OpenAI-dialect platform does differently, in one table: one [`Quirks`] row per platform that has any,
//! applied to the chat request before it leaves ([`openai_chat_request`]) and to a complete chat answer before it
//! reaches the client ([`openai_chat_response`]). A platform without a row — and a body a row would not change —
//! travels byte for byte, with no parse and no allocation. Error bodies are classified in [`crate::classify`]; the
//! native dialects (Gemini, Cohere) handle theirs in [`crate::dialect`].
//!
//! Sources: each provider's API documentation where it says so (see docs/providers.md), otherwise the behaviour of
//! the original project (`freellmapi-inventory.md` §B.2, §B.3).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::platform::Platform;

/// The differences of one platform from OpenAI's chat API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Top-level request fields the platform refuses; removed before sending.
    pub drop_params: &'static [&'static str],
    /// Fields removed from every message (and from every tool call of an assistant message).
    pub drop_message_fields: &'static [&'static str],
    /// Top-level fields the platform spells differently: `(openai, platform)`.
    pub rename_params: &'static [(&'static str, &'static str)],
    /// The largest `max_tokens` / `max_completion_tokens` the platform accepts; larger values are lowered.
    pub max_tokens_cap: Option<u64>,
    /// `max_tokens` sent when the client set neither `max_tokens` nor `max_completion_tokens`.
    pub default_max_tokens: Option<u64>,
    /// Message content must be a string: text-part arrays are joined, `null` becomes `""`. Arrays holding images or
    /// other non-text parts are left alone (joining them would lose the image).
    pub flatten_content: bool,
    /// `parallel_tool_calls: false` whenever the request has tools.
    pub serial_tool_calls: bool,
    /// `reasoning_effort` must be `low`, `medium` or `high`: stronger values are lowered to `high`, weaker ones raised
    /// to `low`.
    pub clamp_reasoning_effort: bool,
    /// Answers: a `<think>…</think>` block opening the content moves to `reasoning_content`.
    pub think_tags: bool,
    /// Answers: `message.reasoning` is renamed `reasoning_content`.
    pub reasoning_field: bool,
    /// Answers: empty content with no tool calls takes the `reasoning_content` text.
    pub fold_reasoning: bool,
    /// Answers: array content becomes a string; `thinking` parts go to `reasoning_content`.
    pub flatten_answer: bool,
}

const NONE: Quirks = Quirks {
    drop_params: &[],
    drop_message_fields: &[],
    rename_params: &[],
    max_tokens_cap: None,
    default_max_tokens: None,
    flatten_content: false,
    serial_tool_calls: false,
    clamp_reasoning_effort: false,
    think_tags: false,
    reasoning_field: false,
    fold_reasoning: false,
    flatten_answer: false,
};

/// Groq: `logprobs`, `logit_bias`, `top_logprobs` and `messages[].name` answer 400
/// (<https://console.groq.com/docs/openai>).
const GROQ: Quirks = Quirks {
    drop_params: &["logprobs", "top_logprobs", "logit_bias"],
    drop_message_fields: &["name"],
    ..NONE
};

/// Mistral: a strict schema (422 on unknown fields), `random_seed` instead of `seed`, Magistral answers with
/// content arrays (<https://docs.mistral.ai/api/>).
const MISTRAL: Quirks = Quirks {
    drop_params: &[
        "top_k",
        "min_p",
        "repetition_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
    ],
    drop_message_fields: &["reasoning_content", "thought_signature"],
    rename_params: &[("seed", "random_seed")],
    flatten_answer: true,
    ..NONE
};

/// GitHub Models: 4000 output tokens per request on the free tier
/// (<https://docs.github.com/en/github-models/use-github-models/prototyping-with-ai-models#rate-limits>).
const GITHUB: Quirks = Quirks {
    drop_params: &["top_k", "min_p", "repetition_penalty"],
    max_tokens_cap: Some(4000),
    clamp_reasoning_effort: true,
    ..NONE
};

/// Cloudflare Workers AI: string content only, a small default output length.
const CLOUDFLARE: Quirks = Quirks {
    drop_params: &[
        "min_p",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
    ],
    default_max_tokens: Some(8192),
    flatten_content: true,
    think_tags: true,
    ..NONE
};

/// NVIDIA NIM: tool calls one at a time. Its RFC 7807 error bodies are read in [`crate::classify`].
const NVIDIA: Quirks = Quirks {
    serial_tool_calls: true,
    ..NONE
};

/// Z.ai: reasoning-first models may answer with all their text in `reasoning_content`.
const ZAI: Quirks = Quirks {
    fold_reasoning: true,
    ..NONE
};

/// Ollama Cloud: reasoning arrives as `message.reasoning`.
const OLLAMA: Quirks = Quirks {
    reasoning_field: true,
    ..NONE
};

/// Kilo Gateway: `response_format` is not honoured (no Kilo model is marked `json` in the catalog).
const KILO: Quirks = Quirks {
    drop_params: &["response_format"],
    ..NONE
};

/// The platform's quirks, `None` when it behaves like OpenAI.
pub fn quirks_of(platform: Platform) -> Option<&'static Quirks> {
    match platform {
        Platform::Groq => Some(&GROQ),
        Platform::Mistral => Some(&MISTRAL),
        Platform::GitHub => Some(&GITHUB),
        Platform::Cloudflare => Some(&CLOUDFLARE),
        Platform::Nvidia => Some(&NVIDIA),
        Platform::Zai => Some(&ZAI),
        Platform::Ollama => Some(&OLLAMA),
        Platform::Kilo => Some(&KILO),
        Platform::Google
        | Platform::Cerebras
        | Platform::OpenRouter
        | Platform::Cohere
        | Platform::HuggingFace
        | Platform::Pollinations
        | Platform::Llm7
        | Platform::Ovh
        | Platform::Custom => None,
    }
}

impl Quirks {
    fn touches_request(&self) -> bool {
        !self.drop_params.is_empty()
            || !self.drop_message_fields.is_empty()
            || !self.rename_params.is_empty()
            || self.max_tokens_cap.is_some()
            || self.default_max_tokens.is_some()
            || self.flatten_content
            || self.serial_tool_calls
            || self.clamp_reasoning_effort
    }

    fn touches_response(&self) -> bool {
        self.think_tags || self.reasoning_field || self.fold_reasoning || self.flatten_answer
    }

    /// Rewrites a chat request in place; returns whether anything changed.
    pub fn apply_to_request(&self, req: &mut Map<String, Value>) -> bool {
        let mut changed = false;
        for name in self.drop_params {
            changed |= req.remove(*name).is_some();
        }
        for (from, to) in self.rename_params {
            if let Some(value) = req.remove(*from) {
                if !req.contains_key(*to) {
                    req.insert((*to).to_owned(), value);
                }
                changed = true;
            }
        }
        if let Some(Value::Array(messages)) = req.get_mut("messages") {
            for message in messages.iter_mut().filter_map(Value::as_object_mut) {
                changed |= self.apply_to_message(message);
            }
        }
        if let Some(cap) = self.max_tokens_cap {
            for name in ["max_tokens", "max_completion_tokens"] {
                if let Some(value) = req.get_mut(name) {
                    if value.as_u64().is_some_and(|v| v > cap) {
                        *value = Value::from(cap);
                        changed = true;
                    }
                }
            }
        }
        if let Some(default) = self.default_max_tokens {
            let set = |name| req.get(name).is_some_and(|v: &Value| !v.is_null());
            if !set("max_tokens") && !set("max_completion_tokens") {
                req.insert("max_tokens".into(), Value::from(default));
                changed = true;
            }
        }
        if self.serial_tool_calls
            && req
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
            && req.get("parallel_tool_calls") != Some(&Value::Bool(false))
        {
            req.insert("parallel_tool_calls".into(), Value::Bool(false));
            changed = true;
        }
        if self.clamp_reasoning_effort {
            if let Some(Value::String(effort)) = req.get_mut("reasoning_effort") {
                let clamped = match effort.as_str() {
                    "low" | "medium" | "high" => None,
                    "xhigh" | "max" | "maximum" => Some("high"),
                    _ => Some("low"),
                };
                if let Some(clamped) = clamped {
                    *effort = clamped.to_owned();
                    changed = true;
                }
            }
        }
        changed
    }

    fn apply_to_message(&self, message: &mut Map<String, Value>) -> bool {
        let mut changed = false;
        for name in self.drop_message_fields {
            changed |= message.remove(*name).is_some();
            if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
                for call in calls.iter_mut().filter_map(Value::as_object_mut) {
                    changed |= call.remove(*name).is_some();
                }
            }
        }
        if self.flatten_content {
            match message.get_mut("content") {
                Some(content @ Value::Null) | Some(content @ Value::Array(_)) => {
                    if let Some(text) = joined_text(content) {
                        *content = Value::String(text);
                        changed = true;
                    }
                }
                None => {
                    message.insert("content".into(), Value::String(String::new()));
                    changed = true;
                }
                Some(_) => {}
            }
        }
        changed
    }

    /// Rewrites a complete chat answer in place; returns whether anything changed.
    pub fn apply_to_response(&self, answer: &mut Map<String, Value>) -> bool {
        let mut changed = false;
        let Some(Value::Array(choices)) = answer.get_mut("choices") else {
            return false;
        };
        for choice in choices.iter_mut() {
            let Some(Value::Object(message)) = choice.get_mut("message") else {
                continue;
            };
            if self.flatten_answer {
                changed |= flatten_answer_content(message);
            }
            if self.reasoning_field && !has_text(message, "reasoning_content") {
                if let Some(reasoning) = message.remove("reasoning") {
                    message.insert("reasoning_content".into(), reasoning);
                    changed = true;
                }
            }
            if self.think_tags && !has_text(message, "reasoning_content") {
                changed |= extract_think_tags(message);
            }
            if self.fold_reasoning
                && !has_text(message, "content")
                && message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .is_none_or(|c| c.is_empty())
            {
                if let Some(Value::String(reasoning)) = message.get("reasoning_content") {
                    if !reasoning.is_empty() {
                        let text = Value::String(reasoning.clone());
                        message.insert("content".into(), text);
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

/// The text of a `null` or all-text content array; `None` when it holds anything else.
fn joined_text(content: &Value) -> Option<String> {
    match content {
        Value::Null => Some(String::new()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part {
                    Value::String(s) => text.push_str(s),
                    Value::Object(p) if p.get("type").and_then(Value::as_str) == Some("text") => {
                        text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    _ => return None,
                }
            }
            Some(text)
        }
        _ => None,
    }
}

fn has_text(message: &Map<String, Value>, field: &str) -> bool {
    message
        .get(field)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// Mistral's Magistral answers `content: [{type:"thinking", thinking:[{type:"text",text}]}, {type:"text",text}]`.
fn flatten_answer_content(message: &mut Map<String, Value>) -> bool {
    let Some(Value::Array(parts)) = message.get("content") else {
        return false;
    };
    let (mut text, mut thinking) = (String::new(), String::new());
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(part.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("thinking") => match part.get("thinking") {
                Some(Value::String(s)) => thinking.push_str(s),
                Some(inner @ Value::Array(_)) => {
                    thinking.push_str(&joined_text(inner).unwrap_or_default())
                }
                _ => {}
            },
            _ => {}
        }
    }
    message.insert("content".into(), Value::String(text));
    if !thinking.is_empty() && !has_text(message, "reasoning_content") {
        message.insert("reasoning_content".into(), Value::String(thinking));
    }
    true
}

/// Moves a `<think>…</think>` block that opens the content (after whitespace) to `reasoning_content`. Only a closed
/// block counts.
fn extract_think_tags(message: &mut Map<String, Value>) -> bool {
    let Some(Value::String(content)) = message.get("content") else {
        return false;
    };
    let Some(rest) = content.trim_start().strip_prefix("<think>") else {
        return false;
    };
    let Some((reasoning, answer)) = rest.split_once("</think>") else {
        return false;
    };
    let (reasoning, answer) = (reasoning.trim().to_owned(), answer.trim_start().to_owned());
    message.insert("content".into(), Value::String(answer));
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::String(reasoning));
    }
    true
}

/// Whether the platform honours `stream_options.include_usage`, so that the gateway may ask for the usage of a
/// stream whose client did not (and take the extra chunk out again): the token counts of the limit ledger, the
/// gateway keys' daily tokens and the history then come from the provider instead of an estimate from the text.
/// Platforms not known to accept the field (Mistral's strict schema refuses unknown ones; custom servers vary) are
/// left alone.
pub fn asks_stream_usage(platform: Platform) -> bool {
    matches!(
        platform,
        Platform::Groq
            | Platform::Cerebras
            | Platform::OpenRouter
            | Platform::GitHub
            | Platform::Nvidia
    )
}

/// The chat request body for an OpenAI-dialect platform: the client's bytes untouched unless the platform has a
/// request quirk that changes them.
pub fn openai_chat_request(platform: Platform, body: Bytes) -> Bytes {
    let Some(quirks) = quirks_of(platform).filter(|q| q.touches_request()) else {
        return body;
    };
    rewrite(body, |req| quirks.apply_to_request(req))
}

/// A complete chat answer from an OpenAI-dialect platform, with the platform's answer quirks undone.
pub fn openai_chat_response(platform: Platform, body: Bytes) -> Bytes {
    let Some(quirks) = quirks_of(platform).filter(|q| q.touches_response()) else {
        return body;
    };
    rewrite(body, |answer| quirks.apply_to_response(answer))
}

fn rewrite(body: Bytes, edit: impl FnOnce(&mut Map<String, Value>) -> bool) -> Bytes {
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    if !edit(&mut object) {
        return body;
    }
    match serde_json::to_vec(&object) {
        Ok(bytes) => Bytes::from(bytes),
        Err(_) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(platform: Platform, body: Value) -> Value {
        let out = openai_chat_request(platform, Bytes::from(body.to_string()));
        serde_json::from_slice(&out).unwrap()
    }

    fn response(platform: Platform, body: Value) -> Value {
        let out = openai_chat_response(platform, Bytes::from(body.to_string()));
        serde_json::from_slice(&out).unwrap()
    }

    fn answer(message: Value) -> Value {
        json!({ "object": "chat.completion", "choices": [{ "index": 0, "message": message }] })
    }

    #[test]
    fn platforms_without_quirks_forward_the_exact_bytes() {
        let raw = Bytes::from_static(
            br#"{"model":"m",  "logprobs":true, "seed":1, "messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}"#,
        );
        for platform in Platform::all() {
            if quirks_of(platform).is_none() {
                let out = openai_chat_request(platform, raw.clone());
                assert_eq!(out.as_ptr(), raw.as_ptr(), "{platform}");
                let out = openai_chat_response(platform, raw.clone());
                assert_eq!(out.as_ptr(), raw.as_ptr(), "{platform}");
            }
        }
    }

    #[test]
    fn a_body_the_quirks_do_not_change_is_forwarded_as_is() {
        let raw = Bytes::from_static(
            br#"{"model":"llama",  "messages":[{"role":"user","content":"hi"}]}"#,
        );
        let out = openai_chat_request(Platform::Groq, raw.clone());
        assert_eq!(out, raw);
        let out = openai_chat_response(Platform::Zai, raw.clone());
        assert_eq!(out, raw);
    }

    #[test]
    fn groq_drops_logprobs_logit_bias_and_message_names() {
        let out = request(
            Platform::Groq,
            json!({
                "model": "llama", "logprobs": true, "top_logprobs": 2, "logit_bias": {"1": 2}, "temperature": 0.5,
                "messages": [{ "role": "user", "name": "ann", "content": "hi" }]
            }),
        );
        assert_eq!(
            out,
            json!({ "model": "llama", "temperature": 0.5, "messages": [{ "role": "user", "content": "hi" }] })
        );
    }

    #[test]
    fn mistral_renames_seed_and_strips_what_its_schema_refuses() {
        let out = request(
            Platform::Mistral,
            json!({
                "model": "mistral-small-latest", "seed": 7, "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.1,
                "reasoning_effort": "high",
                "messages": [
                    { "role": "user", "content": [{ "type": "text", "text": "hi" }] },
                    { "role": "assistant", "content": "", "reasoning_content": "hmm",
                      "tool_calls": [{ "id": "c1", "type": "function", "thought_signature": "sig",
                                       "function": { "name": "f", "arguments": "{}" } }] }
                ]
            }),
        );
        assert_eq!(out["random_seed"], 7);
        for gone in [
            "seed",
            "top_k",
            "min_p",
            "repetition_penalty",
            "reasoning_effort",
        ] {
            assert!(out.get(gone).is_none(), "{gone}: {out}");
        }
        assert!(out["messages"][1].get("reasoning_content").is_none());
        assert!(out["messages"][1]["tool_calls"][0]
            .get("thought_signature")
            .is_none());
        // Mistral takes content arrays in requests: they stay.
        assert_eq!(out["messages"][0]["content"][0]["text"], "hi");
    }

    #[test]
    fn mistral_keeps_an_explicit_random_seed() {
        let out = request(
            Platform::Mistral,
            json!({ "model": "m", "seed": 1, "random_seed": 2, "messages": [] }),
        );
        assert_eq!(out["random_seed"], 2);
        assert!(out.get("seed").is_none());
    }

    #[test]
    fn mistral_array_answers_become_strings() {
        let out = response(
            Platform::Mistral,
            answer(json!({ "role": "assistant", "content": [
                { "type": "thinking", "thinking": [{ "type": "text", "text": "Let me see." }] },
                { "type": "text", "text": "Paris." }
            ]})),
        );
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "Paris.");
        assert_eq!(message["reasoning_content"], "Let me see.");
    }

    #[test]
    fn github_caps_output_tokens_and_clamps_reasoning_effort() {
        let out = request(
            Platform::GitHub,
            json!({ "model": "openai/gpt-4.1", "max_tokens": 100000, "max_completion_tokens": 9000,
                    "top_k": 3, "reasoning_effort": "minimal", "messages": [] }),
        );
        assert_eq!(out["max_tokens"], 4000);
        assert_eq!(out["max_completion_tokens"], 4000);
        assert_eq!(out["reasoning_effort"], "low");
        assert!(out.get("top_k").is_none());
        let out = request(
            Platform::GitHub,
            json!({ "model": "m", "max_tokens": 300, "reasoning_effort": "xhigh", "messages": [] }),
        );
        assert_eq!(out["max_tokens"], 300);
        assert_eq!(out["reasoning_effort"], "high");
    }

    #[test]
    fn cloudflare_flattens_content_and_sets_a_default_output_length() {
        let out = request(
            Platform::Cloudflare,
            json!({ "model": "@cf/meta/llama-3.3-70b-instruct-fp8-fast", "min_p": 0.2, "messages": [
                { "role": "system", "content": [{ "type": "text", "text": "Be " }, { "type": "text", "text": "brief." }] },
                { "role": "assistant", "content": null, "tool_calls": [] },
                { "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "data:x" } }] }
            ]}),
        );
        assert_eq!(out["max_tokens"], 8192);
        assert!(out.get("min_p").is_none());
        assert_eq!(out["messages"][0]["content"], "Be brief.");
        assert_eq!(out["messages"][1]["content"], "");
        // An image cannot become a string: left for the model to accept or refuse.
        assert_eq!(out["messages"][2]["content"][0]["type"], "image_url");
        let out = request(
            Platform::Cloudflare,
            json!({ "model": "m", "max_completion_tokens": 50, "messages": [] }),
        );
        assert!(out.get("max_tokens").is_none(), "{out}");
    }

    #[test]
    fn cloudflare_think_tags_become_reasoning() {
        let out = response(
            Platform::Cloudflare,
            answer(
                json!({ "role": "assistant", "content": "\n<think>\nTwo plus two.\n</think>\n\nFour." }),
            ),
        );
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "Four.");
        assert_eq!(message["reasoning_content"], "Two plus two.");
        // A tag later in the text, or an unclosed one, is content.
        for content in ["Answer: <think>x</think>", "<think>never closed"] {
            let out = response(
                Platform::Cloudflare,
                answer(json!({ "role": "assistant", "content": content })),
            );
            assert_eq!(out["choices"][0]["message"]["content"], content);
        }
    }

    #[test]
    fn nvidia_calls_tools_one_at_a_time() {
        let tools = json!([{ "type": "function", "function": { "name": "f", "parameters": {} } }]);
        let out = request(
            Platform::Nvidia,
            json!({ "model": "m", "tools": tools, "parallel_tool_calls": true, "messages": [] }),
        );
        assert_eq!(out["parallel_tool_calls"], false);
        let out = request(Platform::Nvidia, json!({ "model": "m", "messages": [] }));
        assert!(out.get("parallel_tool_calls").is_none());
    }

    #[test]
    fn zai_folds_reasoning_into_empty_content() {
        let out = response(
            Platform::Zai,
            answer(
                json!({ "role": "assistant", "content": "", "reasoning_content": "The answer is 4." }),
            ),
        );
        assert_eq!(out["choices"][0]["message"]["content"], "The answer is 4.");
        assert_eq!(
            out["choices"][0]["message"]["reasoning_content"],
            "The answer is 4."
        );
        // Not when the model called a tool.
        let calls = json!([{ "id": "c", "type": "function", "function": { "name": "f", "arguments": "{}" } }]);
        let out = response(
            Platform::Zai,
            answer(
                json!({ "role": "assistant", "content": null, "reasoning_content": "x", "tool_calls": calls }),
            ),
        );
        assert!(out["choices"][0]["message"]["content"].is_null());
    }

    #[test]
    fn ollama_reasoning_is_renamed() {
        let out = response(
            Platform::Ollama,
            answer(json!({ "role": "assistant", "content": "4", "reasoning": "2+2" })),
        );
        let message = &out["choices"][0]["message"];
        assert_eq!(message["reasoning_content"], "2+2");
        assert!(message.get("reasoning").is_none());
    }

    #[test]
    fn kilo_drops_response_format() {
        let out = request(
            Platform::Kilo,
            json!({ "model": "m", "response_format": { "type": "json_object" }, "messages": [] }),
        );
        assert!(out.get("response_format").is_none());
    }
}
