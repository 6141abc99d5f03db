//! What the request path and the admin surface share at run time: the application state and its swapped
//! [`snapshot::Snapshot`], the live event bus, the request-history writer, gateway-key usage counters and the
//! conversation book of the context handoff, and this instance's part in a fleet (`fleet`). Nothing here knows HTTP routes; `ingress`, `relay` and `api` read it.

pub mod events;
pub mod fleet;
pub mod gateway_usage;
pub mod handoff;
pub mod metrics;
pub mod request_log;
pub mod snapshot;
pub mod state;
