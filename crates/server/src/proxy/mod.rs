//! Outbound proxies: parsing and validation of proxy URLs (`url`), the in-memory pool with per-key sticky
//! assignment, per-proxy clients, health and statistics (`pool`), probing — health checker, tests on demand and the
//! candidate search of `freellmapi proxies find` (`health`) — and the admin REST under `/api/proxies` (`admin`).
//!
//! A proxy's failure is told apart from the provider's when the attempt is classified
//! ([`providers::classify_proxied_transport`]): it marks the proxy unhealthy and the relay retries the same key
//! through another proxy, without cooling the key. docs/proxies.md has the user-facing rules.

pub mod admin;
pub mod health;
pub mod pool;
pub mod url;

pub use health::{
    find_working, import_format, parse_candidates, probe, FindOptions, FoundProxy, ProbeResult,
};
pub use pool::{
    parse_bypass, Egress, KeyRoute, PoolView, ProxyConfig, ProxyEntry, ProxyPool, ProxySettings,
    ProxyStats, Strategy,
};
pub use url::{may_proxy, ProxyScheme, ProxyUrl, ProxyUrlError};
