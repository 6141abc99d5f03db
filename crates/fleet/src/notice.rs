//! Notices between the instances of a fleet, one small JSON object per pub/sub message. Each carries its sender's
//! instance id, so an instance never applies its own.

use serde::{Deserialize, Serialize};

/// Something one instance learned that the others should apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "n", rename_all = "snake_case")]
pub enum Notice {
    /// An admin change was stored: rebuild the snapshot from the database.
    Reload,
    /// Notices may have been missed (Redis was unreachable): rebuild everything that notices keep in step.
    Resync,
    /// A candidate was cooled for `ms` from now.
    Cooled { key: String, model: String, ms: u64 },
    /// A resting candidate answered again.
    Recovered { key: String, model: String },
    /// The provider refused a key's credential (at that stored version of the key).
    Invalid { key: String, generation: i64 },
    /// One live-dashboard event of `user` (already serialised).
    Live { user: String, event: String },
    /// `user` has a live dashboard open on some instance (repeated while it stays open).
    Watching { user: String },
    /// A failed login (or password confirmation) for `account` from `address`: counted by every instance's throttle.
    LoginFailed { account: String, address: String },
    /// `account` logged in: its failures are cleared everywhere.
    LoginSucceeded { account: String },
    /// Attempt outcomes of the last second on the sender, per candidate, for the others' scores.
    Scores { outcomes: Vec<Outcomes> },
}

/// One candidate's attempts over a period on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    pub key: String,
    pub model: String,
    pub successes: u32,
    pub failures: u32,
    /// Mean latency of the successes, in milliseconds.
    pub latency_ms: Option<u64>,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    from: &'a str,
    #[serde(flatten)]
    notice: &'a Notice,
}

#[derive(Deserialize)]
struct Incoming {
    from: String,
    #[serde(flatten)]
    notice: Notice,
}

impl Notice {
    pub(crate) fn encode(&self, from: &str) -> String {
        serde_json::to_string(&Outgoing { from, notice: self }).unwrap_or_default()
    }

    /// The notice in `bytes`, unless it is malformed or this instance (`me`) sent it.
    pub(crate) fn decode(bytes: &[u8], me: &str) -> Option<Notice> {
        let incoming: Incoming = serde_json::from_slice(bytes).ok()?;
        (incoming.from != me).then_some(incoming.notice)
    }
}
