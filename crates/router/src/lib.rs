//! Routing decisions as pure logic: which (provider key, model) candidates may be tried now, in what order, and how
//! long a failed candidate rests. No I/O and no HTTP here; time comes from `tokio::time::Instant`, so tests run on
//! paused time. The server feeds outcomes in and asks for an order.

pub mod cooldown;
pub mod order;

pub use cooldown::{Attempted, CooldownBook, CooldownPolicy, Outcome};
pub use order::{order_candidates, Ordered};
