//! Every platform of the table end to end: a key of that platform whose base URL points at the mock, a request
//! through the gateway, then the exact request the platform received (path, credential header, body after the
//! platform's quirks) and the answer the client got.

use serde_json::{json, Value};

use crate::harness::*;

/// One platform's key and what its requests must look like.
struct Case {
    platform: &'static str,
    model: &'static str,
    /// The path the platform receives for a non-streamed chat on scenario `ok`.
    path: &'static str,
    /// `(header, value)` carrying the credential; `None` for keyless platforms.
    credential: Option<(&'static str, &'static str)>,
}

const BEARER: Option<(&str, &str)> =
    Some(("authorization", "Bearer sk-provider-secret-abcdef123456"));
const OPENAI_PATH: &str = "/ok/v1/chat/completions";

const CASES: &[Case] = &[
    Case {
        platform: "google",
        model: "gemini-2.5-flash",
        path: "/ok/v1beta/models/gemini-2.5-flash:generateContent",
        credential: Some(("x-goog-api-key", PROVIDER_SECRET)),
    },
    Case {
        platform: "groq",
        model: "llama-3.3-70b-versatile",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "cerebras",
        model: "gpt-oss-120b",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "mistral",
        model: "mistral-small-latest",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "openrouter",
        model: "meta-llama/llama-3.3-70b-instruct:free",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "github",
        model: "openai/gpt-4.1",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "cloudflare",
        model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        path: "/ok/client/v4/accounts/acct0123/ai/v1/chat/completions",
        credential: BEARER,
    },
    Case {
        platform: "cohere",
        model: "command-a-03-2025",
        path: "/ok/v2/chat",
        credential: BEARER,
    },
    Case {
        platform: "nvidia",
        model: "meta/llama-3.3-70b-instruct",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "huggingface",
        model: "meta-llama/Llama-3.3-70B-Instruct",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "zai",
        model: "glm-4.5-flash",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "ollama",
        model: "gpt-oss:120b",
        path: OPENAI_PATH,
        credential: BEARER,
    },
    Case {
        platform: "kilo",
        model: "kilo-free-model",
        path: OPENAI_PATH,
        credential: None,
    },
    Case {
        platform: "pollinations",
        model: "openai-fast",
        path: OPENAI_PATH,
        credential: None,
    },
    Case {
        platform: "llm7",
        model: "llm7-free-model",
        path: OPENAI_PATH,
        credential: None,
    },
    Case {
        platform: "ovh",
        model: "ovh-free-model",
        path: OPENAI_PATH,
        credential: None,
    },
    Case {
        platform: "custom",
        model: "local-model",
        path: OPENAI_PATH,
        credential: BEARER,
    },
];

async fn gateway(platform: &str, scenario: &str, model: &str) -> Gateway {
    let spec = format!("{platform}:{scenario}");
    start(&[(spec.as_str(), &[model])]).await
}

fn chat(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "Say hello" }
        ]
    })
}

/// The one request the mock recorded for `scenario`, as JSON.
fn sent(gw: &Gateway, scenario: &str) -> (mock_provider::RecordedRequest, Value) {
    let requests = gw.mock.requests(scenario);
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = requests.into_iter().next().unwrap();
    let body = request.json().unwrap();
    (request, body)
}

#[tokio::test]
async fn every_platform_answers_chat_and_streams_with_its_own_request() {
    assert_eq!(CASES.len(), 17);
    for case in CASES {
        let gw = gateway(case.platform, "ok", case.model).await;
        let request = chat(case.model);
        let (status, headers, body) = gw.chat_json(request.clone()).await;
        let who = case.platform;
        assert_eq!(status, 200, "{who}: {body}");
        assert_eq!(headers["x-freellmapi-provider"], who);
        assert_eq!(body["object"], "chat.completion", "{who}");
        assert_eq!(body["model"], case.model, "{who}");
        assert_eq!(
            body["choices"][0]["message"]["content"], "Hello from mock.",
            "{who}: {body}"
        );

        let (upstream, sent_body) = sent(&gw, "ok");
        assert_eq!(upstream.method, "POST", "{who}");
        assert_eq!(upstream.path, case.path, "{who}");
        match case.credential {
            Some((name, value)) => assert_eq!(upstream.header(name), Some(value), "{who}"),
            None => {
                assert_eq!(upstream.header("authorization"), None, "{who}");
                assert_eq!(upstream.header("x-goog-api-key"), None, "{who}");
            }
        }
        // The secret travels in its header only.
        assert!(!upstream.path.contains(PROVIDER_SECRET), "{who}");
        match who {
            "google" => {
                assert_eq!(
                    sent_body["systemInstruction"]["parts"][0]["text"],
                    "Be brief."
                );
            }
            "cohere" => assert_eq!(sent_body["messages"][0]["role"], "system"),
            // Cloudflare's quirks add the default output length.
            "cloudflare" => assert_eq!(sent_body["max_tokens"], 8192),
            // Every other platform receives the client's bytes as they were sent.
            _ => assert_eq!(
                upstream.body,
                serde_json::to_vec(&request).unwrap(),
                "{who}: {sent_body}"
            ),
        }
        if who == "openrouter" {
            assert!(upstream.header("http-referer").is_some());
            assert_eq!(upstream.header("x-title"), Some("FreeLLMAPI"));
        }

        let r = gw.chat(stream_chat(case.model)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{who}");
        let events = sse_events(r).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{who}");
        let text: String = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str::<Value>(e).unwrap())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert!(!text.is_empty(), "{who}: {events:?}");
        let _ = gw.stop().await;
    }
}

#[tokio::test]
async fn groq_never_receives_the_fields_it_refuses() {
    let gw = gateway("groq", "ok", "llama-3.1-8b-instant").await;
    let (status, _, body) = gw
        .chat_json(json!({
            "model": "llama-3.1-8b-instant",
            "logprobs": true, "top_logprobs": 3, "logit_bias": { "42": 1 }, "temperature": 0.2,
            "messages": [{ "role": "user", "name": "ann", "content": "hi" }]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, sent) = sent(&gw, "ok");
    assert_eq!(
        sent,
        json!({ "model": "llama-3.1-8b-instant", "temperature": 0.2, "messages": [{ "role": "user", "content": "hi" }] })
    );
}

#[tokio::test]
async fn mistral_gets_random_seed_and_no_replayed_reasoning() {
    let gw = gateway("mistral", "ok", "mistral-small-latest").await;
    let (status, _, body) = gw
        .chat_json(json!({
            "model": "mistral-small-latest", "seed": 11, "top_k": 4, "reasoning_effort": "low",
            "messages": [
                { "role": "user", "content": "hi" },
                { "role": "assistant", "content": "hello", "reasoning_content": "greeting back" },
                { "role": "user", "content": "again" }
            ]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, sent) = sent(&gw, "ok");
    assert_eq!(sent["random_seed"], 11);
    assert!(sent.get("seed").is_none() && sent.get("top_k").is_none());
    assert!(sent.get("reasoning_effort").is_none());
    assert!(sent["messages"][1].get("reasoning_content").is_none());
    assert_eq!(sent["messages"][1]["content"], "hello");
}

#[tokio::test]
async fn github_output_is_capped_at_the_free_tier_limit() {
    let gw = gateway("github", "ok", "openai/gpt-4.1").await;
    let mut request = chat("openai/gpt-4.1");
    request["max_tokens"] = json!(6000);
    let (status, _, body) = gw.chat_json(request).await;
    assert_eq!(status, 200, "{body}");
    let (_, sent) = sent(&gw, "ok");
    assert_eq!(sent["max_tokens"], 4000);
}

#[tokio::test]
async fn cloudflare_flattens_content_and_moves_think_tags_to_reasoning() {
    let model = "@cf/qwen/qwq-32b";
    let gw = gateway("cloudflare", "think", model).await;
    let (status, _, body) = gw
        .chat_json(json!({
            "model": model, "max_tokens": 64,
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": "2+2" }, { "type": "text", "text": "?" }] }]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], "Hello from mock.");
    assert_eq!(message["reasoning_content"], "Mock reasoning.");
    let (upstream, sent) = sent(&gw, "think");
    assert_eq!(
        upstream.path,
        "/think/client/v4/accounts/acct0123/ai/v1/chat/completions"
    );
    assert_eq!(
        upstream.header("authorization"),
        Some(format!("Bearer {PROVIDER_SECRET}").as_str())
    );
    assert_eq!(sent["messages"][0]["content"], "2+2?");
    assert_eq!(sent["max_tokens"], 64);
}

#[tokio::test]
async fn nvidia_tool_calls_are_serial() {
    let model = "meta/llama-3.3-70b-instruct";
    let gw = gateway("nvidia", "tool", model).await;
    let (status, _, body) = gw
        .chat_json(json!({
            "model": model,
            "messages": [{ "role": "user", "content": "weather in Paris?" }],
            "tools": [{ "type": "function", "function": {
                "name": "get_weather",
                "parameters": { "type": "object", "properties": { "city": { "type": "string" } } }
            }}]
        }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let (_, sent) = sent(&gw, "tool");
    assert_eq!(sent["parallel_tool_calls"], false);
}

#[tokio::test]
async fn zai_reasoning_only_answers_get_content() {
    let gw = gateway("zai", "reasononly", "glm-4.7-flash").await;
    let (status, _, body) = gw.chat_json(chat("glm-4.7-flash")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from mock.");
    // Another platform passes the same answer through untouched.
    let gw = gateway("groq", "reasononly", "qwen/qwen3-32b").await;
    let (_, _, body) = gw.chat_json(chat("qwen/qwen3-32b")).await;
    assert_eq!(body["choices"][0]["message"]["content"], "");
}

#[tokio::test]
async fn kilo_is_keyless_and_drops_response_format() {
    let gw = gateway("kilo", "ok", "kilo-free-model").await;
    let mut request = chat("kilo-free-model");
    request["response_format"] = json!({ "type": "json_object" });
    let (status, _, body) = gw.chat_json(request).await;
    assert_eq!(status, 200, "{body}");
    let (upstream, sent) = sent(&gw, "ok");
    assert!(sent.get("response_format").is_none());
    assert_eq!(upstream.header("authorization"), None);
}

#[tokio::test]
async fn huggingface_out_of_credits_fails_over() {
    let gw = start(&[("huggingface:402", &["llama"]), ("groq:ok", &["llama"])]).await;
    let (status, headers, body) = gw.chat_json(chat("llama")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-freellmapi-provider"], "groq");
    assert_eq!(gw.mock.hits("402"), 1);
}
