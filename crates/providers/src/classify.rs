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
    for phrase in ["try again in ", "retry after ", "retry in ", "please wait "] {
        if let Some(pos) = lower.find(phrase) {
            if let Some(d) = leading_seconds(&lower[pos + phrase.len()..]) {
                return Some(d.min(MAX_DELAY));
            }
        }
    }
    None
}

/// Reads a duration at the start of `s`: `17`, `7.66s`, `250ms`, `2m`, `1m26.4s` (Groq), `39617 seconds`.
fn leading_seconds(s: &str) -> Option<Duration> {
    let mut rest = s;
    let mut total = 0.0;
    let mut any = false;
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let Ok(n) = rest[..end].parse::<f64>() else {
            break;
        };
        let unit = &rest[end..];
        let spaced = unit.trim_start();
        let (factor, unit_len) = if unit.starts_with("ms") {
            (0.001, 2)
        } else if spaced.starts_with("min") {
            (60.0, unit.len() - spaced.len() + 3)
        } else if unit.starts_with('m') {
            (60.0, 1)
        } else if unit.starts_with('h') {
            (3600.0, 1)
        } else if unit.starts_with('s') {
            (1.0, 1)
        } else {
            (1.0, 0)
        };
        total += n * factor;
        any = true;
        rest = &unit[unit_len..];
        // Groq writes `1m26.4s`: another number right after a unit continues the duration.
        if unit_len == 0 || !rest.starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
    }
    (any && total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

/// Pulls the human message out of an error body (`error.message`, `message`, `detail`, or the raw text).
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            v.pointer("/error/message"),
            v.pointer("/message"),
            // RFC 7807 problem details (NVIDIA): `detail`, else `title`.
            v.pointer("/detail"),
            v.pointer("/title"),
            v.pointer("/error"),
            // Cloudflare's API envelope.
            v.pointer("/errors/0/message"),
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

/// Classifies a non-success HTTP response. Platform-specific bodies are recognised by their content, so one
/// function serves every platform (the tests hold a real error body of each).
pub fn classify_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamFailure {
    let raw_message = error_message(body);
    let lower = raw_message.to_ascii_lowercase();
    let body_text = String::from_utf8_lossy(body);
    let body_lower = body_text.to_ascii_lowercase();
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
        "per-day",
        "daily",
        "exhausted",
        "insufficient",
        "credit",
        "billing",
        "/ month",
        "per month",
        "monthly",
    ];
    // Per-minute limits are rate limits even when the provider calls them a quota (Gemini's quota ids, Groq's TPM,
    // OpenRouter's `free-models-per-min`, Cohere's trial `20 API calls / minute`).
    let minute_words = [
        "per minute",
        "perminute",
        "per-min",
        "/ minute",
        "per_minute",
    ];
    // A daily quota named without quota words (GitHub `UserByModelByDay`, Gemini `PerDay` quota ids).
    let day_words = ["byday", "perday", "per 86400s"];
    let per_minute = minute_words
        .iter()
        .any(|w| lower.contains(w) || body_lower.contains(w));
    let per_day = day_words.iter().any(|w| body_lower.contains(w));
    // A model the key's plan or tier does not include (GitHub Models, Ollama Cloud): the key itself is fine.
    let gated_words = [
        "no access to model",
        "unavailable model",
        "requires a subscription",
        "not available on your tier",
        "upgrade your plan",
    ];
    let gated = gated_words.iter().any(|w| lower.contains(w));
    let mut retry_after = None;
    let class = match status.as_u16() {
        401 | 403 if gated => {
            retry_after = Some(Duration::from_secs(24 * 3600));
            ErrorClass::NotFound
        }
        401 | 403 => ErrorClass::Auth,
        // HuggingFace (credits) and OpenRouter (negative balance): another key or platform may still serve.
        402 => ErrorClass::QuotaExhausted,
        429 if per_day => ErrorClass::QuotaExhausted,
        429 if quota_words.iter().any(|w| lower.contains(w)) && !per_minute => {
            ErrorClass::QuotaExhausted
        }
        429 => ErrorClass::RateLimited,
        413 => ErrorClass::ContextTooLong,
        // NVIDIA: the model's function is down, whatever status it comes with.
        _ if lower.contains("degraded function") => ErrorClass::Server,
        400 | 422 if context_words.iter().any(|w| lower.contains(w)) => ErrorClass::ContextTooLong,
        400 | 422 if lower.contains("api key") || lower.contains("api_key_invalid") => {
            ErrorClass::Auth
        }
        // Groq's `tool_use_failed` (with the model's `failed_generation`): the model wrote a malformed tool call.
        // The request is fine; another candidate (or another sample) may well produce a valid one.
        400 if body_lower.contains("tool_use_failed")
            || body_lower.contains("failed_generation") =>
        {
            ErrorClass::Server
        }
        400 | 422 => ErrorClass::BadRequest,
        404 | 410 => ErrorClass::NotFound,
        408 | 504 => ErrorClass::Timeout,
        // Only a proxy asks for proxy credentials; a provider never does.
        407 => ErrorClass::Proxy,
        _ => ErrorClass::Server,
    };
    let now = SystemTime::now();
    // Cloudflare's free allocation of neurons is daily and comes back at 00:00 UTC.
    if class == ErrorClass::QuotaExhausted && lower.contains("neurons") {
        retry_after = Some(until_utc_midnight(now));
    }
    let retry_after = retry_after
        .or_else(|| retry_after_header(headers, now))
        .or_else(|| retry_after_body(&body_text))
        .or_else(|| ratelimit_reset_in_body(&body_lower, now));
    UpstreamFailure {
        class,
        status: Some(status.as_u16()),
        retry_after,
        message: sanitize_message(&raw_message),
    }
}

fn until_utc_midnight(now: SystemTime) -> Duration {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(86_400 - secs % 86_400)
}

/// OpenRouter copies the limit's headers into the body: `"X-RateLimit-Reset":"1745020800000"` (milliseconds since the
/// epoch).
fn ratelimit_reset_in_body(body_lower: &str, now: SystemTime) -> Option<Duration> {
    let key = "\"x-ratelimit-reset\"";
    let pos = body_lower.find(key)?;
    let rest = body_lower[pos + key.len()..]
        .trim_start()
        .trim_start_matches(':')
        .trim_start()
        .trim_start_matches('"');
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let value: u64 = rest[..end].parse().ok()?;
    // Milliseconds when it looks like a millisecond timestamp, seconds otherwise.
    let at = if value > 100_000_000_000 {
        Duration::from_millis(value)
    } else {
        Duration::from_secs(value)
    };
    let when = SystemTime::UNIX_EPOCH + at;
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_DELAY),
    )
}

/// Classifies a transport error (no HTTP response): `err` and its chain of causes make the message; `timeout` says
/// whether the transport gave up waiting.
pub fn classify_transport(
    err: &(dyn std::error::Error + 'static),
    timeout: bool,
) -> UpstreamFailure {
    let class = if timeout || chain_timed_out(err) {
        ErrorClass::Timeout
    } else {
        ErrorClass::Network
    };
    // Transport messages may include the URL; `Endpoint::new` refuses base URLs with credentials or a query, and
    // keys travel in headers, so the URL holds no secret. The message is sanitised all the same.
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Wrappers often repeat their cause's text.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    UpstreamFailure {
        class,
        status: None,
        retry_after: None,
        message: sanitize_message(&message),
    }
}

/// Whether an I/O error in the chain is a timeout.
fn chain_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Classifies a transport error of a request sent through an outbound proxy. Every connection then goes to the
/// proxy, so a failure while connecting — TCP to the proxy, its authentication, the CONNECT tunnel or the SOCKS
/// handshake (the client reports all of them as connect errors: `connect`) — is the proxy's, not the provider
/// key's. Errors after the connection was made (a reset mid-response, a read timeout) stay the upstream's.
pub fn classify_proxied_transport(
    err: &(dyn std::error::Error + 'static),
    timeout: bool,
    connect: bool,
) -> UpstreamFailure {
    let mut failure = classify_transport(err, timeout);
    if connect {
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
        let groq = classify(
            400,
            r#"{"error":{"message":"Failed to call a function. Please adjust your prompt.","type":"invalid_request_error","code":"tool_use_failed","failed_generation":"<function=get_weather{\"city\": \"Paris\"}</function>"}}"#,
        );
        assert_eq!(groq.class, ErrorClass::Server);
        assert!(groq.class.retryable());
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

    /// Real error bodies of each platform (shapes from the providers' documentation and observed answers).
    #[test]
    fn platform_error_bodies() {
        // Groq: TPM is a rate limit, RPD a daily quota; `1m26.4s` is one duration.
        let f = classify(
            429,
            r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_1` service tier `on_demand` on tokens per minute (TPM): Limit 12000, Used 11000, Requested 2000. Please try again in 5s. Need more tokens?","type":"tokens","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(5)));
        let f = classify(
            429,
            r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_1` service tier `on_demand` on requests per day (RPD): Limit 1000, Used 1000, Requested 1. Please try again in 1m26.4s.","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(f.class, ErrorClass::QuotaExhausted);
        assert_eq!(f.retry_after, Some(Duration::from_secs_f64(86.4)));
        // Groq: a tool call the model wrote malformed is the model's failure, worth another candidate.
        assert_eq!(
            classify(400, r#"{"error":{"message":"Failed to call a function. Please adjust your prompt.","type":"invalid_request_error","code":"tool_use_failed","failed_generation":"<function=x>"}}"#).class,
            ErrorClass::Server
        );

        // Gemini: RESOURCE_EXHAUSTED on a per-minute quota id is a rate limit with RetryInfo's delay; per day a quota.
        let gemini = |quota_id: &str| {
            format!(
                r#"{{"error":{{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"{quota_id}"}}]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"17s"}}]}}}}"#
            )
        };
        let f = classify(
            429,
            &gemini("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
        );
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(17)));
        assert_eq!(
            classify(
                429,
                &gemini("GenerateRequestsPerDayPerProjectPerModel-FreeTier")
            )
            .class,
            ErrorClass::QuotaExhausted
        );
        assert_eq!(
            classify(400, r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#).class,
            ErrorClass::Auth
        );

        // Cohere trial keys: per minute is a rate limit, per month a quota.
        assert_eq!(
            classify(429, r#"{"id":"a1","message":"You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits."}"#).class,
            ErrorClass::RateLimited
        );
        assert_eq!(
            classify(429, r#"{"id":"a2","message":"You are using a Trial key, which is limited to 1000 API calls / month. You can continue to use the Trial key for free or upgrade to a Production key."}"#).class,
            ErrorClass::QuotaExhausted
        );

        // NVIDIA: RFC 7807 problem details; a DEGRADED function is the platform's fault, not the request's.
        let f = classify(
            429,
            r#"{"type":"about:blank","status":429,"title":"Too Many Requests","detail":"Rate limit exceeded"}"#,
        );
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.message, "Rate limit exceeded");
        assert_eq!(
            classify(
                500,
                r#"{"type":"about:blank","status":500,"title":"Internal Server Error"}"#
            )
            .message,
            "Internal Server Error"
        );
        let f = classify(
            400,
            r#"{"type":"urn:nvcf-worker-service:problem-details:bad-request","status":400,"title":"Bad Request","detail":"Function id '9b96': DEGRADED function cannot be invoked"}"#,
        );
        assert_eq!(f.class, ErrorClass::Server);
        assert!(f.class.retryable());

        // OpenRouter: the free daily cap with its reset time in the body; the per-minute cap is a rate limit.
        let reset_ms = (SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 3_600_000) as u64;
        let f = classify(
            429,
            &format!(
                r#"{{"error":{{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{{"headers":{{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"{reset_ms}"}}}}}}}}"#
            ),
        );
        assert_eq!(f.class, ErrorClass::QuotaExhausted);
        let wait = f.retry_after.unwrap();
        assert!(
            wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600),
            "{wait:?}"
        );
        assert_eq!(
            classify(
                429,
                r#"{"error":{"message":"Rate limit exceeded: free-models-per-min.","code":429}}"#
            )
            .class,
            ErrorClass::RateLimited
        );
        assert_eq!(
            classify(402, r#"{"error":{"message":"This request requires more credits, or fewer max_tokens.","code":402}}"#).class,
            ErrorClass::QuotaExhausted
        );

        // Cloudflare: the daily neuron allocation lasts until 00:00 UTC.
        let f = classify(
            429,
            r#"{"errors":[{"message":"you have used up your daily free allocation of 10,000 neurons, please upgrade to Cloudflare's Workers Paid plan if you would like to continue usage.","code":4006}],"success":false,"result":{},"messages":[]}"#,
        );
        assert_eq!(f.class, ErrorClass::QuotaExhausted);
        assert!(f.message.starts_with("you have used up"), "{}", f.message);
        let wait = f.retry_after.unwrap();
        assert!(wait <= Duration::from_secs(86_400) && wait > Duration::ZERO);
        let midnight = until_utc_midnight(SystemTime::now()).as_secs();
        assert!(wait.as_secs().abs_diff(midnight) <= 2);
        assert_eq!(
            classify(429, r#"{"errors":[{"message":"AiError: Capacity temporarily exceeded, please try again.","code":3040}],"success":false}"#).class,
            ErrorClass::RateLimited
        );

        // GitHub Models: a model above the account's tier is gated for this key only; the daily cap is a quota.
        let f = classify(
            403,
            r#"{"error":{"code":"no_access","message":"No access to model: openai/o3","details":"No access to model: openai/o3"}}"#,
        );
        assert_eq!(f.class, ErrorClass::NotFound);
        assert_eq!(f.retry_after, Some(Duration::from_secs(24 * 3600)));
        let f = classify(
            429,
            r#"{"error":{"code":"RateLimitReached","message":"Rate limit of 50 per 86400s exceeded for UserByModelByDay. Please wait 39617 seconds before retrying.","details":"Rate limit of 50 per 86400s exceeded for UserByModelByDay."}}"#,
        );
        assert_eq!(f.class, ErrorClass::QuotaExhausted);
        assert_eq!(f.retry_after, Some(Duration::from_secs(39617)));
        assert_eq!(
            classify(
                401,
                r#"{"error":{"code":"unauthorized","message":"Bad credentials"}}"#
            )
            .class,
            ErrorClass::Auth
        );

        // HuggingFace: out of monthly credits is worth retrying elsewhere.
        let f = classify(
            402,
            r#"{"error":"You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO to get 20x more monthly included credits."}"#,
        );
        assert_eq!(f.class, ErrorClass::QuotaExhausted);
        assert!(f.class.retryable());

        // Ollama Cloud: a paid model on a free key.
        assert_eq!(
            classify(403, r#"{"error":"this model requires a subscription, upgrade for access: https://ollama.com/upgrade"}"#).class,
            ErrorClass::NotFound
        );

        // Mistral: its strict schema's 422 is the request's fault.
        assert_eq!(
            classify(422, r#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","top_k"],"msg":"Extra inputs are not permitted"}]},"type":"invalid_request_message_error"}"#).class,
            ErrorClass::BadRequest
        );
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
