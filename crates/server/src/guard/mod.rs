//! What protects the gateway at its edges: the listener's connection limits and timeouts, CORS/CSRF and security
//! headers on every answer, the client-address rate limit, the failed-login throttle, the client address behind trusted proxies, and the outbound address guard
//! every provider URL and proxy passes. Leaves of the module graph: they use only `error`, `config` and state types.

pub mod forwarded;
pub mod inbound;
pub mod ip_limit;
pub mod listener;
pub mod login_throttle;
pub mod url_guard;
