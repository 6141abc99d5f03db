//! Routing decisions as pure logic: which (provider key, model) candidates may be tried now, in what order, how
//! long a failed candidate rests, what each key may still send, and where a request waits when nothing may run.
//! No I/O and no HTTP here; time comes from `tokio::time::Instant`, so tests run on paused time. The server feeds
//! outcomes in and asks for a plan.

pub mod cooldown;
pub mod limits;
pub mod output;
pub mod plan;
pub mod queue;
pub mod score;

pub use cooldown::{Attempted, Claim, CooldownBook, CooldownPolicy, Outcome, Reason, PROBE_HOLD};
pub use limits::{Day, Denied, LimitLedger, Limits, Permit};
pub use output::{OutputBook, TokenAsk};
pub use plan::{retry_after_secs, Candidate, Plan, RoutingBooks, Strategy};
pub use queue::{Place, QueueFull, Turn, WaitQueue};
pub use score::{ScoreBook, ScoreInputs};
