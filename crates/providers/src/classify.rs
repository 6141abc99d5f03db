//! Classification of upstream failures, done once, from status, headers and body. The failover loop branches on
//! [`ErrorClass`], never on message strings.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

/// What kind of failure an upstream attempt ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 429 or an equivalent: this key is being throttled right now.
    RateLimited,
    /// The key's daily or monthly allowance (or credit) is used up.
    QuotaExhausted,
    /// 401/403: the credential was refused.
    Auth,
    /// The request itself is wrong; another key will refuse it too.
    BadRequest,
    /// The prompt does not fit this model's context window.
    ContextTooLong,
    /// The platform does not know the model (for this key).
    NotFound,
    /// 5xx, or a malformed / truncated answer.
    Server,
    /// Connection refused, reset, DNS or TLS failure.
    Network,
    /// No answer, or no first token, in time.
    Timeout,
    /// The outbound proxy itself failed: connection to it refused or timed out, proxy authentication (407), CONNECT
    /// tunnel or SOCKS handshake failure. Says nothing about the provider key, so it never cools one; the relay
    /// retries the same key through another proxy.
    Proxy,
}

impl ErrorClass {
    /// Whether another candidate may succeed where this one failed.
    pub fn retryable(self) -> bool {
        !matches!(self, ErrorClass::BadRequest)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::QuotaExhausted => "quota_exhausted",
            ErrorClass::Auth => "auth",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::ContextTooLong => "context_too_long",
            ErrorClass::NotFound => "model_not_found",
            ErrorClass::Server => "server_error",
            ErrorClass::Network => "network",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Proxy => "proxy",
        }
    }
}

/// One failed attempt, with what the router needs to react.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFailure {
    pub class: ErrorClass,
    pub status: Option<u16>,
    /// What the provider asked us to wait (`Retry-After` header or a retry hint in the body).
    pub retry_after: Option<Duration>,
    /// The provider's message, with anything secret-looking redacted, at most 300 characters.
    pub message: String,
}

impl UpstreamFailure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            status: None,
            retry_after: None,
            message: message.into(),
        }
    }
}

const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// Parses `Retry-After` (delta seconds or an HTTP date).
pub fn retry_after_header(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs).min(MAX_DELAY));
        }
        return None;
    }
    let when = parse_http_date(value)?;
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_DELAY),
    )
}

/// IMF-fixdate only (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires senders to use.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let mut parts = s.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| Some(*m) == parts.clone().next())? as u64
        + 1;
    parts.next();
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|x| x.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + sec))
}

/// Finds a retry hint in an error body: a `retry_after`/`retryDelay`-style field ("17s" or seconds) or prose such as
/// "try again in 7.66s".
fn retry_after_body(body: &str) -> Option<Duration> {
    let lower = body.to_ascii_lowercase();
    for key in [
        "\"retrydelay\"",
        "\"retry_after\"",
        "\"retryafterseconds\"",
        "\"retry_after_seconds\"",
    ] {
        if let Some(pos) = lower.find(key) {
            let rest = lower[pos + key.len()..]
                .trim_start()
                .trim_start_matches(':')
                .trim_start();
            let rest = rest.trim_start_matches('"');
            if let Some(d) = leading_seconds(rest) {
                return Some(d.min(MAX_DELAY));
            }
        }
    }
    for phrase in ["try again in ", "retry after ", "retry in "] {
        if let Some(pos) = lower.find(phrase) {
            if let Some(d) = leading_seconds(&lower[pos + phrase.len()..]) {
                return Some(d.min(MAX_DELAY));
            }
        }
    }
    None
}

fn leading_seconds(s: &str) -> Option<Duration> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    let unit = s[end..].trim_start();
    let secs = if unit.starts_with("ms") {
        n / 1000.0
    } else if unit.starts_with('m') && !unit.starts_with("mi") || unit.starts_with("min") {
        n * 60.0
    } else if unit.starts_with('h') {
        n * 3600.0
    } else {
        n
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Pulls the human message out of an error body (`error.message`, `message`, `detail`, or the raw text).
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            v.pointer("/error/message"),
            v.pointer("/message"),
            v.pointer("/detail"),
            v.pointer("/error"),
            v.pointer("/0/error/message"),
        ];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str() {
                return s.to_owned();
            }
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

/// Classifies a non-success HTTP response.
pub fn classify_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let raw_message = error_message(body);
    let lower = raw_message.to_ascii_lowercase();
    let body_text = String::from_utf8_lossy(body);
    let context_words = [
        "context_length_exceeded",
        "context length",
        "maximum context",
        "context window",
        "too many tokens",
        "prompt is too long",
    ];
    let quota_words = [
        "quota",
        "per day",
        "daily",
        "exhausted",
        "insufficient",
        "credit",
        "billing",
    ];
    let class = match status.as_u16() {
        401 | 403 => ErrorClass::Auth,
        402 => ErrorClass::QuotaExhausted,
        429 if quota_words.iter().any(|w| lower.contains(w)) && !lower.contains("per minute") => {
            ErrorClass::QuotaExhausted
        }
        429 => ErrorClass::RateLimited,
        413 => ErrorClass::ContextTooLong,
        400 | 422 if context_words.iter().any(|w| lower.contains(w)) => ErrorClass::ContextTooLong,
        400 | 422 if lower.contains("api key") || lower.contains("api_key_invalid") => {
            ErrorClass::Auth
        }
        400 | 422 => ErrorClass::BadRequest,
        404 | 410 => ErrorClass::NotFound,
        408 | 504 => ErrorClass::Timeout,
        // Only a proxy asks for proxy credentials; a provider never does.
        407 => ErrorClass::Proxy,
        _ => ErrorClass::Server,
    };
    let retry_after =
        retry_after_header(headers, SystemTime::now()).or_else(|| retry_after_body(&body_text));
    UpstreamFailure {
        class,
        status: Some(status.as_u16()),
        retry_after,
        message: sanitize_message(&raw_message),
    }
}

/// Classifies a transport error (no HTTP response).
pub fn classify_transport(err: &reqwest::Error) -> UpstreamFailure {
    let class = if err.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Network
    };
    // reqwest's Display includes the URL; `Endpoint::new` refuses base URLs with credentials or a query, and keys
    // travel in headers, so the URL holds no secret.
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    UpstreamFailure {
        class,
        status: None,
        retry_after: None,
        message: sanitize_message(&message),
    }
}

/// Classifies a transport error of a request sent through an outbound proxy. Every connection then goes to the
/// proxy, so a failure while connecting — TCP to the proxy, its authentication, the CONNECT tunnel or the SOCKS
/// handshake (reqwest reports all of them as connect errors) — is the proxy's, not the provider key's. Errors after
/// the connection was made (a reset mid-response, a read timeout) stay the upstream's.
pub fn classify_proxied_transport(err: &reqwest::Error) -> UpstreamFailure {
    let mut failure = classify_transport(err);
    if err.is_connect() {
        failure.class = ErrorClass::Proxy;
    }
    failure
}

/// Redacts anything that looks like a credential and truncates to 300 characters.
pub fn sanitize_message(message: &str) -> String {
    let redacted = redact_secrets(&redact_url_userinfo(message));
    let trimmed = redacted.trim();
    if trimmed.chars().count() > 300 {
        let cut: String = trimmed.chars().take(300).collect();
        format!("{cut}…")
    } else {
        trimmed.to_owned()
    }
}

/// Replaces the `user:password@` of every URL in `text` (a proxy URL, for instance) with `[redacted]@`.
pub fn redact_url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str("[redacted]");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

const SECRET_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "gsk_",
    "csk-",
    "nvapi-",
    "AIza",
    "hf_",
    "ghp_",
    "github_pat_",
    "freellmapi-",
    "xai-",
    "r8_",
];

/// Replaces secret-looking words with `[redacted]`: known key prefixes, anything after `Bearer`, and any run of 32 or
/// more key-like characters.
pub fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    for (is_word, piece) in split_words(text) {
        if !is_word {
            out.push_str(piece);
            continue;
        }
        let secret = after_bearer
            || SECRET_PREFIXES
                .iter()
                .any(|p| piece.starts_with(p) && piece.len() > p.len() + 3)
            || piece.len() >= 32;
        after_bearer = piece.eq_ignore_ascii_case("bearer");
        if secret {
            out.push_str("[redacted]");
        } else {
            out.push_str(piece);
        }
    }
    out
}

fn split_words(text: &str) -> impl Iterator<Item = (bool, &str)> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let word = is_key_char(first);
        let end = rest
            .find(|c: char| is_key_char(c) != word)
            .unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some((word, piece))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn classify(status: u16, body: &str) -> UpstreamFailure {
        classify_response(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn statuses_map_to_classes() {
        assert_eq!(
            classify(429, r#"{"error":{"message":"Rate limit reached"}}"#).class,
            ErrorClass::RateLimited
        );
        assert_eq!(
            classify(
                429,
                r#"{"error":{"message":"You exceeded your daily quota"}}"#
            )
            .class,
            ErrorClass::QuotaExhausted
        );
        assert_eq!(classify(401, "{}").class, ErrorClass::Auth);
        assert_eq!(classify(403, "{}").class, ErrorClass::Auth);
        assert_eq!(
            classify(
                400,
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens"}}"#
            )
            .class,
            ErrorClass::ContextTooLong
        );
        assert_eq!(
            classify(
                400,
                r#"{"error":{"message":"tools[0].function.name is invalid"}}"#
            )
            .class,
            ErrorClass::BadRequest
        );
        assert_eq!(classify(404, "{}").class, ErrorClass::NotFound);
        assert_eq!(classify(500, "oops").class, ErrorClass::Server);
        assert_eq!(classify(503, "{}").class, ErrorClass::Server);
        assert_eq!(classify(504, "{}").class, ErrorClass::Timeout);
        assert_eq!(classify(407, "").class, ErrorClass::Proxy);
        assert!(ErrorClass::Proxy.retryable());
        assert!(!ErrorClass::BadRequest.retryable());
        assert!(ErrorClass::RateLimited.retryable());
    }

    #[test]
    fn retry_after_from_header_and_body() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("7"));
        let f = classify_response(StatusCode::TOO_MANY_REQUESTS, &h, b"{}");
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(
            classify(429, r#"{"error":{"message":"Please try again in 7.5s."}}"#).retry_after,
            Some(Duration::from_secs_f64(7.5))
        );
        assert_eq!(
            classify(429, r#"{"error":{"details":[{"retryDelay":"17s"}]}}"#).retry_after,
            Some(Duration::from_secs(17))
        );
        assert_eq!(
            classify(429, r#"{"error":{"message":"retry after 2m"}}"#).retry_after,
            Some(Duration::from_secs(120))
        );
        assert_eq!(classify(429, "{}").retry_after, None);
    }

    #[test]
    fn http_date_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
        assert_eq!(retry_after_header(&h, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn secrets_are_redacted() {
        let msg = "Invalid key gsk_abcdefghijklmnop; header Authorization: Bearer abc.def and token 0123456789abcdef0123456789abcdef01";
        let out = sanitize_message(msg);
        assert!(!out.contains("gsk_abc"), "{out}");
        assert!(!out.contains("abc.def"), "{out}");
        assert!(!out.contains("0123456789abcdef0123"), "{out}");
        assert!(out.contains("Invalid key"), "{out}");
    }

    #[test]
    fn url_credentials_are_redacted() {
        let out = sanitize_message("via socks5://bob:hunter2@10.0.0.1:1080 and http://h/x@y");
        assert!(!out.contains("hunter2") && !out.contains("bob"), "{out}");
        assert!(out.contains("socks5://[redacted]@10.0.0.1:1080"), "{out}");
        assert!(out.contains("http://h/x@y"), "{out}");
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "word ".repeat(200);
        assert!(sanitize_message(&long).chars().count() <= 301);
    }
}
