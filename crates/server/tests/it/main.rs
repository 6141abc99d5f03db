//! Integration tests: the real server on a loopback port, a real SQLite store, and the scriptable mock provider.
//! Every behaviour of the `/v1` surface and the minimal admin API is driven over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod admin;
mod connections;
mod failover;
mod faults;
mod fleet;
mod gemini_surface;
mod groups;
mod harness;
mod history;
mod isolation;
mod key_checks;
mod live;
mod metrics;
mod native;
mod openai_surface;
mod platforms;
mod profiles;
mod protection;
mod proxies;
mod proxy_servers;
mod streaming;
mod surfaces;
mod tls;
