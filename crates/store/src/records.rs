//! Rows as the rest of the gateway sees them.

use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: String,
    pub enabled: bool,
    pub created_at: i64,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

/// A provider key as stored, secret still encrypted. Never serialised as is.
#[derive(Debug, Clone)]
pub struct ProviderKeyRow {
    pub id: String,
    pub user_id: String,
    pub platform: String,
    pub label: String,
    pub encrypted_secret: Option<String>,
    pub base_url: Option<String>,
    pub models: Vec<String>,
    pub enabled: bool,
    pub status: String,
    pub status_reason: Option<String>,
    pub config_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The user's outbound limit overrides for this key (unset fields: catalog defaults).
    pub limits: KeyLimits,
}

/// An AI profile: a named virtual model over an ordered list of real models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// `failover`, `round-robin`, `least-latency` or `score`.
    pub strategy: String,
    pub models: Vec<String>,
    pub config_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The requests the gateway refused for one gateway key over a period: how many, and the latest one's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusals {
    pub gateway_key_id: String,
    pub count: i64,
    pub last_at: i64,
    /// The error code of the latest refusal (`model_not_allowed`, `gateway_key_rate_limited`, …).
    pub last_code: Option<String>,
}

/// One request, as the statistics pages need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestStat {
    pub id: String,
    pub requested_model: String,
    pub platform: Option<String>,
    pub model: Option<String>,
    pub provider_key_id: Option<String>,
    pub status: String,
    pub http_status: i64,
    pub error_class: Option<String>,
    pub latency_ms: i64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub created_at: i64,
}

/// Outbound limit overrides of one provider key. Unset: the catalog's default applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rph: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpd: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd: Option<u64>,
    /// The catalog's figures do not apply at all (a paid tier): only the fields set here limit the key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_catalog_limits: bool,
}

/// What a caller supplies to create (or, from the config file, upsert) a provider key.
#[derive(Debug, Clone, Default)]
pub struct NewProviderKey {
    pub user_id: String,
    pub platform: String,
    pub label: String,
    pub secret: Option<String>,
    pub base_url: Option<String>,
    pub models: Vec<String>,
    pub enabled: bool,
    pub config_name: Option<String>,
}

/// A partial update of a provider key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProviderKeyPatch {
    pub label: Option<String>,
    pub secret: Option<String>,
    pub base_url: Option<Option<String>>,
    pub models: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub limits: Option<KeyLimits>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayKeyRow {
    pub id: String,
    pub user_id: String,
    pub label: String,
    #[serde(skip)]
    pub key_hash: String,
    pub prefix: String,
    pub enabled: bool,
    pub config_name: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Requests per minute through this key; `None`: no limit.
    pub rpm_limit: Option<u32>,
    /// Tokens (prompt and completion) per UTC day through this key; `None`: no limit.
    pub tpd_limit: Option<u64>,
    /// Models this key may use; `None`: every model of its owner.
    pub allowed_models: Option<Vec<String>>,
    /// Requests and tokens since the key was created (flushed from memory, so a few seconds behind).
    pub request_count: i64,
    pub token_count: i64,
}

/// The limits and allow-list of a gateway key, replaced as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayKeyPolicy {
    pub rpm_limit: Option<u32>,
    pub tpd_limit: Option<u64>,
    pub allowed_models: Option<Vec<String>>,
}

/// Usage of one gateway key since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayKeyUsageDelta {
    pub id: String,
    pub last_used_at: i64,
    pub requests: i64,
    pub tokens: i64,
}

/// One finished request, as the batch writer stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestLog {
    pub id: Arc<str>,
    pub user_id: Arc<str>,
    pub gateway_key_id: Option<Arc<str>>,
    pub endpoint: &'static str,
    pub requested_model: String,
    pub platform: Option<&'static str>,
    pub model: Option<Arc<str>>,
    pub provider_key_id: Option<Arc<str>>,
    /// `success`, `error` or `canceled`.
    pub status: &'static str,
    pub http_status: u16,
    pub error_class: Option<&'static str>,
    pub error_message: Option<String>,
    pub stream: bool,
    pub attempts: u32,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub latency_ms: u64,
    pub ttfb_ms: Option<u64>,
    pub created_at: i64,
    /// The request's failed upstream attempts, in order (usually none).
    pub failed_attempts: Vec<FailedAttempt>,
}

/// An upstream attempt that failed: the key and model tried, how it failed, how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedAttempt {
    pub provider_key_id: Arc<str>,
    pub platform: &'static str,
    pub model: Arc<str>,
    pub error_class: &'static str,
    pub http_status: Option<u16>,
    pub error_message: String,
    pub latency_ms: u64,
    pub created_at: i64,
}

/// A failed attempt as read back for a key's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailureStat {
    pub request_id: String,
    pub model: String,
    pub error_class: String,
    pub http_status: Option<i64>,
    pub error_message: Option<String>,
    pub latency_ms: i64,
    pub created_at: i64,
}

/// Outcome of the admin bootstrap at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// Users already exist; nothing was done.
    Existing,
    /// Created from `ADMIN_USERNAME`/`ADMIN_PASSWORD`.
    Created { username: String },
    /// Created with a generated password, to be shown once.
    Generated { username: String, password: String },
}

/// An outbound proxy as stored, credentials still encrypted. Never serialised as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRow {
    pub id: String,
    pub user_id: String,
    pub label: String,
    /// `scheme://host:port`, never with credentials.
    pub url: String,
    /// `user:password` (as written in the URL), encrypted.
    pub encrypted_credentials: Option<String>,
    /// ISO 3166 alpha-2 country of the exit address, when known.
    pub country: Option<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a caller supplies to add a proxy. `credentials` is plaintext here; the store encrypts it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewProxy {
    pub user_id: String,
    pub label: String,
    pub url: String,
    pub credentials: Option<String>,
    pub country: Option<String>,
    pub enabled: bool,
}

impl std::fmt::Debug for NewProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewProxy")
            .field("user_id", &self.user_id)
            .field("label", &self.label)
            .field("url", &self.url)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[redacted]"),
            )
            .field("country", &self.country)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// A partial update of a proxy; `None` leaves a field as it is. Changing `url` without `credentials` keeps the
/// stored credentials; `Some(None)` clears them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxyPatch {
    pub label: Option<String>,
    pub url: Option<String>,
    pub credentials: Option<Option<String>>,
    pub country: Option<Option<String>>,
    pub enabled: Option<bool>,
}

impl std::fmt::Debug for ProxyPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyPatch")
            .field("label", &self.label)
            .field("url", &self.url)
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|c| c.as_ref().map(|_| "[redacted]")),
            )
            .field("country", &self.country)
            .field("enabled", &self.enabled)
            .finish()
    }
}
