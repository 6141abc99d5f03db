//! Adapters turn the client's OpenAI-shaped request into the provider's wire request. The OpenAI dialect needs no
//! translation: the body the client sent is forwarded byte for byte, so every field travels untouched. Native
//! dialects (Gemini, Cohere v2) get their own variant with request, response and stream-chunk conversions.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::platform::{AuthStyle, Dialect, Platform};

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
    #[error("platform `{0}` speaks a native dialect that this build does not serve yet")]
    DialectNotServed(Platform),
}

/// Everything needed to call one provider key, computed once when the key pool is loaded so the request path only
/// clones cheap handles.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub platform: Platform,
    pub base_url: String,
    // Parsed once: parsing a URL on every request costs more than the rest of building it.
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    models_url: reqwest::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Endpoint {
    /// Builds the endpoint for a key. `base_url` overrides the platform default (required for `custom`).
    pub fn new(
        platform: Platform,
        base_url: Option<&str>,
        credentials: &UpstreamCredentials,
    ) -> Result<Self, EndpointError> {
        let info = platform.info();
        if info.dialect != Dialect::OpenAi {
            return Err(EndpointError::DialectNotServed(platform));
        }
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
        let parsed = parse_url(&base)?;
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
        Ok(Self {
            platform,
            chat_url: parse_url(&format!("{base}/chat/completions"))?,
            embeddings_url: parse_url(&format!("{base}/embeddings"))?,
            models_url: parse_url(&format!("{base}/models"))?,
            base_url: base,
            headers,
        })
    }

    fn apply(&self, mut builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        builder
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, EndpointError> {
    reqwest::Url::parse(text).map_err(|e| EndpointError::BadUrl(e.to_string()))
}

/// The adapter for a platform's dialect (static dispatch; native dialects add variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    OpenAiCompatible,
}

impl Adapter {
    pub fn for_platform(platform: Platform) -> Option<Adapter> {
        match platform.info().dialect {
            Dialect::OpenAi => Some(Adapter::OpenAiCompatible),
            Dialect::Gemini | Dialect::Cohere => None,
        }
    }

    /// `POST …/chat/completions` with the client's body as is.
    pub fn chat_request(
        self,
        client: &reqwest::Client,
        endpoint: &Endpoint,
        body: Bytes,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let builder = client
            .post(endpoint.chat_url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, accept)
            .body(body);
        endpoint.apply(builder)
    }

    /// `POST …/embeddings` with the client's body as is.
    pub fn embeddings_request(
        self,
        client: &reqwest::Client,
        endpoint: &Endpoint,
        body: Bytes,
    ) -> reqwest::RequestBuilder {
        let builder = client
            .post(endpoint.embeddings_url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        endpoint.apply(builder)
    }

    /// `GET …/models`, for discovery and key checks.
    pub fn models_request(
        self,
        client: &reqwest::Client,
        endpoint: &Endpoint,
    ) -> reqwest::RequestBuilder {
        endpoint.apply(client.get(endpoint.models_url.clone()))
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
                    .map(str::to_owned)
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
        assert_eq!(
            ep.chat_url.as_str(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert!(ep.headers.is_empty());
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let ep = Endpoint::new(Platform::Groq, None, &secret("gsk_test")).unwrap();
        assert_eq!(
            ep.chat_url.as_str(),
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
            ep.chat_url.as_str(),
            "https://api.cloudflare.com/client/v4/accounts/abc123/ai/v1/chat/completions"
        );
        assert_eq!(
            Endpoint::new(Platform::Cloudflare, None, &secret("nocolon")).unwrap_err(),
            EndpointError::CloudflareKeyFormat
        );
    }

    #[test]
    fn native_dialects_are_not_served_yet() {
        assert_eq!(
            Endpoint::new(Platform::Google, None, &secret("AIza")).unwrap_err(),
            EndpointError::DialectNotServed(Platform::Google)
        );
    }

    #[test]
    fn model_list_shapes() {
        assert_eq!(
            parse_model_list(br#"{"object":"list","data":[{"id":"a"},{"id":"b"}]}"#).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(parse_model_list(br#"[{"id":"x"}]"#).unwrap(), vec!["x"]);
        assert!(parse_model_list(b"nope").is_none());
    }
}
