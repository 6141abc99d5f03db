//! Validated runtime settings of the HTTP layer (the binary turns environment and flags into this).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body (`REQUEST_BODY_LIMIT_MB`).
    pub body_limit_bytes: usize,
    /// Deadline for a non-streaming upstream call, and for a stream's response headers (`PROVIDER_TIMEOUT_MS`).
    pub upstream_timeout: Duration,
    /// A stream that shows no content, tool or reasoning delta this long before the commit point is abandoned
    /// (`STREAM_FIRST_TOKEN_STALL_MS`).
    pub first_token_stall: Duration,
    /// After the commit point, a stream silent this long is ended with an error event
    /// (`PROVIDER_STREAM_STALL_TIMEOUT_MS`).
    pub stream_idle_timeout: Duration,
    /// A non-streamed request whose response headers have not come this long after it was sent is abandoned and
    /// the next key tried (`PROVIDER_FIRST_BYTE_TIMEOUT_MS`). Streams wait for their headers `first_token_stall`.
    pub first_byte_timeout: Duration,
    pub connect_timeout: Duration,
    /// Most candidates tried for one request (`FALLBACK_MAX_RETRIES`).
    pub max_attempts: usize,
    /// Requests per minute per client address on `/v1` (`PROXY_RATE_LIMIT_RPM`); 0 turns the limit off.
    pub ip_rate_limit_rpm: u32,
    pub session_ttl: Duration,
    /// Request-log retention (`REQUEST_ANALYTICS_RETENTION_DAYS`, `REQUEST_ANALYTICS_MAX_ROWS`); `None` keeps all.
    pub log_retention: Option<Duration>,
    pub log_max_rows: Option<u64>,
    /// How long a request waits for a cooling or capped candidate before a 429 (`REQUEST_QUEUE_TIMEOUT_SECONDS`);
    /// zero answers 429 at once.
    pub queue_timeout: Duration,
    /// Context handoff on a model switch within a conversation (`FREELLMAPI_CONTEXT_HANDOFF=on_model_switch`).
    pub context_handoff: bool,
    /// Most requests waiting at once, over all users; past it, requests get 429 at once.
    pub queue_max_waiting: usize,
    /// How often every key's model list is refreshed from its platform (`MODEL_REFRESH_INTERVAL_MINUTES`); `None`
    /// never.
    pub model_refresh: Option<Duration>,
    /// Capacity of the request-log channel; when full, rows are counted as dropped instead of blocking requests.
    pub log_channel_capacity: usize,
    /// Outbound proxies (`PROXY_URL`, the pool's start-up settings, rotation and health checking).
    pub proxy: crate::proxy::ProxyConfig,
    /// Origins besides the gateway's own allowed to call `/api` and `/v1` from a browser (`DASHBOARD_ORIGINS`),
    /// as `scheme://host[:port]`, lowercase, without a trailing slash.
    pub dashboard_origins: Vec<String>,
    /// The host names a browser may reach the gateway under (`ALLOWED_HOSTS`; the DNS-rebinding guard).
    pub allowed_hosts: crate::guard::inbound::AllowedHosts,
    /// Whether provider base URLs may point at loopback and private networks (`ALLOW_PRIVATE_PROVIDER_URLS`).
    /// Cloud-metadata and link-local addresses are refused either way.
    pub allow_private_provider_urls: bool,
    /// The listener's header read timeout, connection caps and shutdown drain deadline.
    pub connections: crate::guard::listener::ConnectionLimits,
    /// A request body must arrive within this (`BODY_READ_TIMEOUT_MS`): a trickled or endless body is cut with a 408.
    pub body_read_timeout: Duration,
    /// The certificates outbound TLS trusts: bundled and platform roots plus `EXTRA_CA_CERTS`.
    pub trust: crate::trust::TrustStore,
    /// `GET /metrics` is served to `Authorization: Bearer <token>` (`METRICS_TOKEN`); `None`: not served. Only
    /// the token's SHA-256 is kept.
    pub metrics_token_hash: Option<[u8; 32]>,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` name the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: std::sync::Arc<crate::guard::forwarded::TrustedProxies>,
    /// The fleet's shared state (`REDIS_URL`): limits, cooldowns, admin changes and live events shared with the
    /// other instances on the same PostgreSQL database. `None`: this instance is alone.
    pub redis_url: Option<String>,
    /// An `/api` request not answered within this gets a 503 (`API_TIMEOUT_MS`); zero never times out.
    pub api_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 25 * 1024 * 1024,
            upstream_timeout: Duration::from_secs(120),
            first_token_stall: Duration::from_millis(30_000),
            stream_idle_timeout: Duration::from_millis(90_000),
            first_byte_timeout: Duration::from_millis(30_000),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 20,
            ip_rate_limit_rpm: 120,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            log_retention: Some(Duration::from_secs(90 * 24 * 3600)),
            log_max_rows: Some(100_000),
            log_channel_capacity: 8192,
            queue_timeout: Duration::from_secs(60),
            queue_max_waiting: 1024,
            context_handoff: false,
            proxy: crate::proxy::ProxyConfig::default(),
            dashboard_origins: Vec::new(),
            allowed_hosts: crate::guard::inbound::AllowedHosts::Listed(Vec::new()),
            trust: crate::trust::TrustStore::platform(),
            metrics_token_hash: None,
            trusted_proxies: Default::default(),
            redis_url: None,
            api_timeout: Duration::from_secs(30),
            allow_private_provider_urls: true,
            model_refresh: None,
            connections: crate::guard::listener::ConnectionLimits::default(),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}
