//! Adapters turn the client's OpenAI-shaped request into the provider's wire request. The OpenAI dialect needs no
//! translation: the body the client sent is forwarded byte for byte, so every field travels untouched. Native
//! dialects (Gemini, Cohere v2) get their own variant with request, response and stream-chunk conversions.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Uri};

use crate::dialect::{cohere, gemini, DialectError};
use crate::platform::{AuthStyle, Dialect, Platform};
use crate::quirks;

/// A provider credential. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub enum UpstreamCredentials {
    None,
    Secret(String),
}

impl std::fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamCredentials::None => f.write_str("None"),
            UpstreamCredentials::Secret(_) => f.write_str("Secret([redacted])"),
        }
    }
}

/// Why an endpoint could not be built from a key's settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("platform `{0}` needs a base URL")]
    MissingBaseUrl(Platform),
    #[error("base URL must start with http:// or https://")]
    BadScheme,
    #[error("base URL is not a valid URL: {0}")]
    BadUrl(String),
    #[error("base URL must not carry credentials (user:password@); put the key in `key`")]
    CredentialsInUrl,
    #[error("base URL must not have a query string or fragment")]
    QueryInUrl,
    #[error("platform `{0}` needs an API key")]
    MissingKey(Platform),
    #[error("Cloudflare keys must be given as `<account_id>:<api_token>`")]
    CloudflareKeyFormat,
    #[error("the API key contains characters that cannot be sent in an HTTP header")]
    KeyNotHeaderSafe,
}

/// Everything needed to call one provider key, computed once when the key pool is loaded so the request path only
/// clones cheap handles.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub platform: Platform,
    pub base_url: String,
    // Parsed once: parsing a URL on every request costs more than the rest of building it.
    chat_url: Uri,
    embeddings_url: Uri,
    models_url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `Host`, as hyper would write it (the port only when it is not the scheme's default). Every URL of an
    /// endpoint has the same authority; given here, the client does not format it again for every request.
    host: Option<HeaderValue>,
}

impl Endpoint {
    /// Builds the endpoint for a key. `base_url` overrides the platform default (required for `custom`).
    pub fn new(
        platform: Platform,
        base_url: Option<&str>,
        credentials: &UpstreamCredentials,
    ) -> Result<Self, EndpointError> {
        let info = platform.info();
        let mut base = match base_url.map(str::trim).filter(|s| !s.is_empty()) {
            Some(url) => url.to_owned(),
            None if info.default_base_url.is_empty() => {
                return Err(EndpointError::MissingBaseUrl(platform))
            }
            None => info.default_base_url.to_owned(),
        };
        while base.ends_with('/') {
            base.pop();
        }
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(EndpointError::BadScheme);
        }
        // URLs appear in transport error messages and in key listings: they must never hold a secret.
        let parsed = url::Url::parse(&base).map_err(|e| EndpointError::BadUrl(e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(EndpointError::CredentialsInUrl);
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(EndpointError::QueryInUrl);
        }
        let mut headers = Vec::new();
        let secret = match credentials {
            UpstreamCredentials::Secret(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        };
        let token = match (info.auth, secret) {
            (AuthStyle::None, _) => None,
            (AuthStyle::AccountIdAndToken, Some(s)) => {
                let (account, token) = s
                    .split_once(':')
                    .ok_or(EndpointError::CloudflareKeyFormat)?;
                if account.is_empty()
                    || token.is_empty()
                    || !account.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    return Err(EndpointError::CloudflareKeyFormat);
                }
                base = base.replace("{account_id}", account);
                Some(token)
            }
            (_, Some(s)) => Some(s),
            // A custom endpoint may be keyless (a local llama.cpp or vLLM).
            (_, None) if platform == Platform::Custom => None,
            (_, None) => return Err(EndpointError::MissingKey(platform)),
        };
        if let Some(token) = token {
            let (name, value) = match info.auth {
                AuthStyle::GoogApiKeyHeader => {
                    (HeaderName::from_static("x-goog-api-key"), token.to_owned())
                }
                _ => (http::header::AUTHORIZATION, format!("Bearer {token}")),
            };
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| EndpointError::KeyNotHeaderSafe)?;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        if platform == Platform::OpenRouter {
            // OpenRouter attributes traffic by these two headers.
            headers.push((
                HeaderName::from_static("http-referer"),
                HeaderValue::from_static("https://github.com/freellmapi"),
            ));
            headers.push((
                HeaderName::from_static("x-title"),
                HeaderValue::from_static("FreeLLMAPI"),
            ));
        }
        // Gemini's chat and embeddings URLs name the model: they are built per request from `base_url`.
        let (chat, embeddings, models) = match info.dialect {
            Dialect::OpenAi => (
                format!("{base}/chat/completions"),
                format!("{base}/embeddings"),
                format!("{base}/models"),
            ),
            Dialect::Gemini => (
                format!("{base}/models"),
                format!("{base}/models"),
                format!("{base}/models"),
            ),
            Dialect::Cohere => (
                cohere::chat_url(&base, "", false),
                cohere::embeddings_url(&base, ""),
                // Cohere lists models under v1 only.
                format!("{}/v1/models", base.trim_end_matches("/v2")),
            ),
        };
        let chat_url = parse_url(&chat)?;
        let host = host_header(&chat_url);
        Ok(Self {
            platform,
            chat_url,
            embeddings_url: parse_url(&embeddings)?,
            models_url: parse_url(&models)?,
            base_url: base,
            headers,
            host,
        })
    }

    /// A request to `uri` with this endpoint's credential and attribution headers. `accept`: the media type wanted
    /// back; a body is sent as JSON.
    fn request(
        &self,
        method: Method,
        uri: Uri,
        accept: &'static str,
        body: Option<Bytes>,
    ) -> http::Request<Bytes> {
        let has_body = body.is_some();
        let mut request = http::Request::new(body.unwrap_or_default());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.reserve(4 + self.headers.len());
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
        if has_body {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        }
        request
    }
}

/// The `Host` header for requests to `uri`: its host, and its port unless it is the scheme's default.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    match uri.port_u16() {
        Some(port) if Some(port) != default_port => {
            HeaderValue::from_str(&format!("{host}:{port}")).ok()
        }
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// Sent as `User-Agent` on every provider request.
pub const USER_AGENT: &str = concat!("freellmapi/", env!("CARGO_PKG_VERSION"));

/// Parses (and normalises, percent-encoding what needs it) a URL into the form an HTTP request carries.
fn parse_uri(text: &str) -> Result<Uri, String> {
    let url = url::Url::parse(text).map_err(|e| e.to_string())?;
    Uri::try_from(url.as_str()).map_err(|e| e.to_string())
}

fn parse_url(text: &str) -> Result<Uri, EndpointError> {
    parse_uri(text).map_err(EndpointError::BadUrl)
}

/// The adapter for a platform's dialect (static dispatch). The OpenAI dialect forwards the client's bytes as they
/// are; the native ones translate the request, the answer and the stream (see [`crate::dialect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    OpenAiCompatible,
    Gemini,
    Cohere,
}

/// A native stream's translator: upstream SSE events in, OpenAI `chat.completion.chunk` frames out.
pub enum ChatStreamTranslator {
    Gemini(gemini::GeminiChatStream),
    Cohere(cohere::CohereChatStream),
}

impl std::fmt::Debug for ChatStreamTranslator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChatStreamTranslator::Gemini(_) => "ChatStreamTranslator::Gemini",
            ChatStreamTranslator::Cohere(_) => "ChatStreamTranslator::Cohere",
        })
    }
}

impl ChatStreamTranslator {
    /// Feeds one upstream event's data; appends OpenAI frames to `out`. An in-band upstream error appends an
    /// OpenAI error frame and returns an error.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), DialectError> {
        match self {
            ChatStreamTranslator::Gemini(t) => t.push(None, data, out),
            ChatStreamTranslator::Cohere(t) => t.push(None, data, out),
        }
    }

    /// Appends what is still owed at the end of the stream, `data: [DONE]` included.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            ChatStreamTranslator::Gemini(t) => t.finish(out),
            ChatStreamTranslator::Cohere(t) => t.finish(out),
        }
    }
}

fn url(text: &str) -> Result<Uri, DialectError> {
    parse_uri(text).map_err(|e| DialectError::BadRequest {
        message: format!("the model id does not fit in the provider's URL: {e}"),
        param: Some("model".into()),
    })
}

impl Adapter {
    pub fn for_platform(platform: Platform) -> Adapter {
        match platform.info().dialect {
            Dialect::OpenAi => Adapter::OpenAiCompatible,
            Dialect::Gemini => Adapter::Gemini,
            Dialect::Cohere => Adapter::Cohere,
        }
    }

    /// Whether answers need translating back to OpenAI's format.
    pub fn is_native(self) -> bool {
        self != Adapter::OpenAiCompatible
    }

    /// The chat request for `model`: the client's body for the OpenAI dialect (as is, unless the platform has a
    /// request quirk: [`crate::quirks`]), translated otherwise (a request the dialect cannot express is a
    /// [`DialectError::BadRequest`]).
    pub fn chat_request(
        self,
        endpoint: &Endpoint,
        model: &str,
        body: Bytes,
        stream: bool,
    ) -> Result<http::Request<Bytes>, DialectError> {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let (target, body) = match self {
            Adapter::OpenAiCompatible => (
                endpoint.chat_url.clone(),
                quirks::openai_chat_request(endpoint.platform, body),
            ),
            Adapter::Gemini => (
                url(&gemini::chat_url(&endpoint.base_url, model, stream))?,
                Bytes::from(gemini::openai_to_gemini_chat_request(&body, model, stream)?),
            ),
            Adapter::Cohere => (
                endpoint.chat_url.clone(),
                Bytes::from(cohere::openai_to_cohere_chat_request(&body, model, stream)?),
            ),
        };
        Ok(endpoint.request(Method::POST, target, accept, Some(body)))
    }

    /// The embeddings request for `model` (see [`Adapter::chat_request`]).
    pub fn embeddings_request(
        self,
        endpoint: &Endpoint,
        model: &str,
        body: Bytes,
    ) -> Result<http::Request<Bytes>, DialectError> {
        let (target, body) = match self {
            Adapter::OpenAiCompatible => (endpoint.embeddings_url.clone(), body),
            Adapter::Gemini => (
                url(&gemini::embeddings_url(&endpoint.base_url, model))?,
                Bytes::from(gemini::openai_to_gemini_embeddings_request(&body, model)?),
            ),
            Adapter::Cohere => (
                endpoint.embeddings_url.clone(),
                Bytes::from(cohere::openai_to_cohere_embeddings_request(&body, model)?),
            ),
        };
        Ok(endpoint.request(Method::POST, target, "application/json", Some(body)))
    }

    /// A complete chat answer in OpenAI's format.
    pub fn chat_response(
        self,
        body: Bytes,
        model: &str,
        id: &str,
        created: u64,
    ) -> Result<Bytes, DialectError> {
        match self {
            Adapter::OpenAiCompatible => Ok(body),
            Adapter::Gemini => {
                gemini::gemini_to_openai_chat_response(&body, model, id, created).map(Bytes::from)
            }
            Adapter::Cohere => {
                cohere::cohere_to_openai_chat_response(&body, model, id, created).map(Bytes::from)
            }
        }
    }

    /// An embeddings answer in OpenAI's format; `base64` is what the client asked for.
    pub fn embeddings_response(
        self,
        body: Bytes,
        model: &str,
        base64: bool,
    ) -> Result<Bytes, DialectError> {
        match self {
            Adapter::OpenAiCompatible => Ok(body),
            Adapter::Gemini => {
                gemini::gemini_to_openai_embeddings_response(&body, model, base64).map(Bytes::from)
            }
            Adapter::Cohere => {
                cohere::cohere_to_openai_embeddings_response(&body, model, base64).map(Bytes::from)
            }
        }
    }

    /// The stream translator of a native dialect (`None`: OpenAI streams are relayed as they are).
    pub fn chat_stream(
        self,
        model: &str,
        id: &str,
        created: u64,
        include_usage: bool,
    ) -> Option<ChatStreamTranslator> {
        match self {
            Adapter::OpenAiCompatible => None,
            Adapter::Gemini => Some(ChatStreamTranslator::Gemini(gemini::GeminiChatStream::new(
                model,
                id,
                created,
                include_usage,
            ))),
            Adapter::Cohere => Some(ChatStreamTranslator::Cohere(cohere::CohereChatStream::new(
                model,
                id,
                created,
                include_usage,
            ))),
        }
    }

    /// `GET …/models`, for discovery and key checks.
    pub fn models_request(self, endpoint: &Endpoint) -> http::Request<Bytes> {
        endpoint.request(
            Method::GET,
            endpoint.models_url.clone(),
            "application/json",
            None,
        )
    }
}

/// Reads the ids out of an OpenAI `GET /models` answer.
pub fn parse_model_list(body: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let data = v
        .get("data")
        .or_else(|| v.get("models"))
        .unwrap_or(&v)
        .as_array()?;
    Some(
        data.iter()
            .filter_map(|m| {
                m.get("id")
                    .or_else(|| m.get("name"))
                    .and_then(|id| id.as_str())
                    // Gemini names its models `models/<id>`.
                    .map(|id| id.strip_prefix("models/").unwrap_or(id).to_owned())
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> UpstreamCredentials {
        UpstreamCredentials::Secret(s.to_owned())
    }

    #[test]
    fn custom_needs_base_url_and_may_be_keyless() {
        assert_eq!(
            Endpoint::new(Platform::Custom, None, &UpstreamCredentials::None).unwrap_err(),
            EndpointError::MissingBaseUrl(Platform::Custom)
        );
        let ep = Endpoint::new(
            Platform::Custom,
            Some("http://127.0.0.1:8080/v1/"),
            &UpstreamCredentials::None,
        )
        .unwrap();
        assert_eq!(ep.chat_url, "http://127.0.0.1:8080/v1/chat/completions");
        assert!(ep.headers.is_empty());
    }

    #[test]
    fn host_header_names_the_port_only_when_it_is_not_the_default() {
        let host = |base: &str| {
            let ep =
                Endpoint::new(Platform::Custom, Some(base), &UpstreamCredentials::None).unwrap();
            let request = ep.request(Method::POST, ep.chat_url.clone(), "application/json", None);
            request.headers()[header::HOST].to_str().unwrap().to_owned()
        };
        assert_eq!(host("http://127.0.0.1:8080/v1"), "127.0.0.1:8080");
        assert_eq!(host("http://example.com:80/v1"), "example.com");
        assert_eq!(host("https://example.com:443/v1"), "example.com");
        assert_eq!(host("https://example.com/v1"), "example.com");
        assert_eq!(host("http://example.com:443/v1"), "example.com:443");
        assert_eq!(host("http://[::1]:9000/v1"), "[::1]:9000");
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let ep = Endpoint::new(Platform::Groq, None, &secret("gsk_test")).unwrap();
        assert_eq!(
            ep.chat_url,
            "https://api.groq.com/openai/v1/chat/completions"
        );
        let (name, value) = &ep.headers[0];
        assert_eq!(name, http::header::AUTHORIZATION);
        assert!(value.is_sensitive());
        assert!(!format!("{ep:?}").contains("gsk_test"));
    }

    #[test]
    fn base_urls_never_hold_secrets() {
        let none = UpstreamCredentials::None;
        assert_eq!(
            Endpoint::new(
                Platform::Custom,
                Some("http://user:pw@127.0.0.1:8080/v1"),
                &none
            )
            .unwrap_err(),
            EndpointError::CredentialsInUrl
        );
        assert_eq!(
            Endpoint::new(
                Platform::Custom,
                Some("http://127.0.0.1:8080/v1?api_key=x"),
                &none
            )
            .unwrap_err(),
            EndpointError::QueryInUrl
        );
        assert!(matches!(
            Endpoint::new(Platform::Custom, Some("http://[bad"), &none),
            Err(EndpointError::BadUrl(_))
        ));
    }

    #[test]
    fn keyed_platform_without_key_is_refused() {
        assert_eq!(
            Endpoint::new(Platform::Groq, None, &UpstreamCredentials::None).unwrap_err(),
            EndpointError::MissingKey(Platform::Groq)
        );
    }

    #[test]
    fn keyless_platform_sends_no_credential() {
        let ep = Endpoint::new(Platform::Ovh, None, &secret("ignored")).unwrap();
        assert!(ep.headers.is_empty());
    }

    #[test]
    fn cloudflare_account_goes_into_url() {
        let ep = Endpoint::new(Platform::Cloudflare, None, &secret("abc123:tok")).unwrap();
        assert_eq!(
            ep.chat_url,
            "https://api.cloudflare.com/client/v4/accounts/abc123/ai/v1/chat/completions"
        );
        assert_eq!(
            Endpoint::new(Platform::Cloudflare, None, &secret("nocolon")).unwrap_err(),
            EndpointError::CloudflareKeyFormat
        );
    }

    #[test]
    fn native_dialect_endpoints() {
        let ep = Endpoint::new(Platform::Google, None, &secret("AIza")).unwrap();
        assert_eq!(ep.headers[0].0, "x-goog-api-key");
        assert!(ep.headers[0].1.is_sensitive());
        let body = Bytes::from_static(
            br#"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#,
        );
        let request = Adapter::Gemini
            .chat_request(&ep, "gemini-2.5-flash", body.clone(), true)
            .unwrap();
        assert_eq!(request.headers()["accept"], "text/event-stream");
        assert_eq!(request.headers()["x-goog-api-key"], "AIza");
        assert_eq!(
            request.uri(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let ep = Endpoint::new(Platform::Cohere, None, &secret("co")).unwrap();
        assert_eq!(ep.chat_url, "https://api.cohere.com/v2/chat");
        assert_eq!(ep.models_url, "https://api.cohere.com/v1/models");
        let bad = Adapter::Cohere.chat_request(&ep, "command-a", Bytes::from_static(b"[]"), false);
        assert!(matches!(bad, Err(DialectError::BadRequest { .. })));
    }

    #[test]
    fn model_list_shapes() {
        assert_eq!(
            parse_model_list(br#"{"object":"list","data":[{"id":"a"},{"id":"b"}]}"#).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(parse_model_list(br#"[{"id":"x"}]"#).unwrap(), vec!["x"]);
        assert_eq!(
            parse_model_list(br#"{"models":[{"name":"models/gemini-2.5-flash"}]}"#).unwrap(),
            vec!["gemini-2.5-flash"]
        );
        assert!(parse_model_list(b"nope").is_none());
    }
}
