//! Upstream providers: the platform table (base URL, authentication style, dialect, keyless or not), the adapters
//! that turn an OpenAI-shaped request into a provider's wire request, and the classification of upstream failures.
//! This crate knows HTTP but not the database, the router's state or the gateway's own HTTP server.

pub mod adapter;
pub mod catalog;
pub mod classify;
pub mod dialect;
pub mod platform;
pub mod quirks;
pub mod ratelimit;

pub use adapter::{
    parse_model_list, Adapter, ChatStreamTranslator, Endpoint, EndpointError, UpstreamCredentials,
};
pub use classify::{
    classify_proxied_transport, classify_response, classify_transport, redact_secrets,
    redact_url_userinfo, sanitize_message, ErrorClass, UpstreamFailure,
};
pub use platform::{AuthStyle, Dialect, KeyProbe, Platform, PlatformInfo};
