//! This instance's part in a fleet (`REDIS_URL`): limit permits taken from the shared ledger as well as the local
//! one, what this instance learns (cooldowns, invalid keys, admin changes, live events) told to the others, and
//! what they tell applied here. Without a fleet every function here is the local book alone.
//!
//! The local ledger stays the first check: it counts this instance's own requests, which never exceed the fleet's,
//! so a local refusal needs no round trip. A shared refusal is held locally until the instant Redis named, so the
//! planner and the queue see the candidate capped and wake when it frees. While Redis is down the local ledger
//! counts alone with every cap divided by the instances last seen.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use fleet::{Fleet, Health, Inbox, Notice, Outcomes, Shared, SharedPermit};
use router::{Candidate, Claim, Day, Denied, Limits, Outcome, Permit, TokenAsk};
use tokio::time::Instant;

use crate::runtime::gateway_usage::KeyLimitDenied;
use crate::runtime::state::AppState;

/// The permits of one attempt: the local ledger's and, in a fleet, the shared ledger's.
#[derive(Debug)]
pub struct Lease {
    pub local: Permit,
    shared: Option<SharedPermit>,
    /// Whether a scope caps tokens (only then is the shared permit reconciled with the reported usage).
    counts_tokens: bool,
}

/// This instance's attempt outcomes since they were last told to the fleet, per candidate: (successes, failures,
/// latency sum of the successes in ms). Filled only in a fleet.
#[derive(Debug, Default)]
pub struct ScoreOutbox {
    pending: std::sync::Mutex<HashMap<CandidateId, Tally>>,
}

type CandidateId = (Arc<str>, Arc<str>);
/// (successes, failures, latency sum of the successes in ms).
type Tally = (u32, u32, u64);

impl ScoreOutbox {
    fn add(&self, key: &Arc<str>, model: &Arc<str>, success: bool, latency: Option<Duration>) {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = pending
            .entry((Arc::clone(key), Arc::clone(model)))
            .or_default();
        if success {
            entry.0 += 1;
            entry.2 += latency.map_or(0, |d| d.as_millis() as u64);
        } else {
            entry.1 += 1;
        }
    }

    fn take(&self) -> Vec<Outcomes> {
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        pending
            .into_iter()
            .map(
                |((key, model), (successes, failures, latency_sum))| Outcomes {
                    key: key.to_string(),
                    model: model.to_string(),
                    successes,
                    failures,
                    latency_ms: (successes > 0).then(|| latency_sum / u64::from(successes)),
                },
            )
            .collect()
    }
}

/// How often this instance tells the fleet its attempt outcomes.
const SCORES_EVERY: Duration = Duration::from_secs(1);

/// A gateway key's limit scope in the shared ledger.
fn gateway_scope(id: &str) -> String {
    format!("gw:{id}")
}

impl AppState {
    /// Takes the candidate's permits: local first, then the fleet's. A shared refusal is remembered locally (the
    /// scope is held until Redis said it frees) and reported like a local one.
    pub(crate) async fn acquire(
        &self,
        candidate: &Candidate<'_>,
        ask: TokenAsk,
        now: Instant,
        day: Day,
    ) -> Result<Lease, Denied> {
        let local = self.books.acquire(candidate, ask, now, day)?;
        let counts_tokens = candidate
            .scopes
            .iter()
            .any(|(_, l)| l.tpm.is_some() || l.tpd.is_some());
        let Some(fleet) = self.fleet.as_ref().filter(|_| !local.scopes().is_empty()) else {
            return Ok(Lease {
                local,
                shared: None,
                counts_tokens,
            });
        };
        let scopes: Vec<(&str, Limits)> =
            candidate.scopes.iter().map(|(s, l)| (&**s, *l)).collect();
        match fleet.acquire(&scopes, local.tokens()).await {
            Shared::Granted(p) => Ok(Lease {
                local,
                shared: Some(p),
                counts_tokens,
            }),
            Shared::Unavailable => Ok(Lease {
                local,
                shared: None,
                counts_tokens,
            }),
            Shared::Capped(wait) => {
                self.books.limits.refund(&local);
                let until = Instant::now() + wait;
                for (scope, limits) in candidate.scopes {
                    if !limits.is_unlimited() {
                        self.books.limits.hold(scope, until);
                    }
                }
                Err(Denied::Until(until))
            }
            Shared::TooLarge => {
                self.books.limits.refund(&local);
                Err(Denied::TooLarge)
            }
        }
    }

    /// Gives back a lease whose request never reached the provider.
    pub(crate) fn refund(&self, lease: &Lease) {
        self.books.limits.refund(&lease.local);
        if let (Some(fleet), Some(shared)) = (&self.fleet, &lease.shared) {
            let (fleet, shared) = (Arc::clone(fleet), shared.clone());
            tokio::spawn(async move { fleet.refund(&shared).await });
        }
    }

    /// Replaces a lease's reserved tokens with what the provider reported.
    pub(crate) fn reconcile(&self, lease: &Lease, tokens: u64) {
        self.books.limits.reconcile(&lease.local, tokens);
        if let (Some(fleet), Some(shared)) = (&self.fleet, &lease.shared) {
            if lease.counts_tokens && lease.local.tokens() != tokens {
                let (fleet, shared) = (Arc::clone(fleet), shared.clone());
                tokio::spawn(async move { fleet.reconcile(&shared, tokens).await });
            }
        }
    }

    /// Whether a gateway key's limits are counted by the fleet (then the local book skips its per-minute window).
    pub(crate) fn fleet_counts_gateway_keys(&self) -> bool {
        self.fleet.as_ref().is_some_and(|f| f.is_up())
    }

    /// Takes one request from a gateway key's fleet-wide limits. Without a fleet (or while it is down) the local
    /// admission alone decides.
    pub(crate) async fn admit_gateway_key(
        &self,
        id: &str,
        rpm_limit: Option<u32>,
        tpd_limit: Option<u64>,
    ) -> Result<(), KeyLimitDenied> {
        let Some(fleet) = &self.fleet else {
            return Ok(());
        };
        let limits = Limits {
            rpm: rpm_limit,
            tpd: tpd_limit,
            ..Limits::default()
        };
        if limits.is_unlimited() {
            return Ok(());
        }
        let Shared::Capped(retry_after) = fleet.acquire(&[(&gateway_scope(id), limits)], 0).await
        else {
            return Ok(());
        };
        // Past a minute away, only the day's tokens can be what is spent.
        Err(match (rpm_limit, tpd_limit) {
            (Some(limit), None) => KeyLimitDenied::RequestsPerMinute { limit, retry_after },
            (Some(limit), Some(_)) if retry_after <= Duration::from_secs(60) => {
                KeyLimitDenied::RequestsPerMinute { limit, retry_after }
            }
            (_, Some(limit)) => KeyLimitDenied::TokensPerDay { limit, retry_after },
            (None, None) => return Ok(()),
        })
    }

    /// Adds a finished request's tokens to its gateway key's fleet-wide count of today.
    pub(crate) fn count_gateway_tokens(&self, id: &str, tokens: u64) {
        if let Some(fleet) = self.fleet.as_ref().filter(|f| f.is_up() && tokens > 0) {
            let (fleet, scope) = (Arc::clone(fleet), gateway_scope(id));
            tokio::spawn(async move { fleet.count_tokens(&scope, tokens).await });
        }
    }

    /// Whether this request may try the candidate now: not while it rests or another request (on any instance of
    /// the fleet) probes it after its rest.
    pub(crate) async fn claim_probe(&self, (key, model): (&str, &str), now: Instant) -> bool {
        match self.books.cooldowns.claim((key, model), now) {
            Claim::Free => true,
            Claim::Busy => false,
            // Another instance probing keeps this one's hold in place: the candidate rests here until that
            // probe's outcome arrives (a recovery or a new cooldown) or the hold ends.
            Claim::Probe => match &self.fleet {
                Some(fleet) => fleet.claim_probe(key, model, router::PROBE_HOLD).await,
                None => true,
            },
        }
    }

    /// Records an attempt's outcome in the score book (and, in a fleet, for the others' books: sent every second).
    pub(crate) fn scored(
        &self,
        key: &Arc<str>,
        model: &Arc<str>,
        success: bool,
        latency: Option<Duration>,
    ) {
        self.books.scores.record(key, model, success, latency);
        if self.fleet.is_some() {
            self.score_outbox.add(key, model, success, latency);
        }
    }

    /// Records a failed attempt in the cooldown book; a cooldown it sets is told to the fleet.
    pub(crate) fn cool(
        &self,
        (key, model): (&str, &str),
        outcome: Outcome,
        now: Instant,
    ) -> Option<Duration> {
        let cooldown = self
            .books
            .cooldowns
            .record_failure((key, model), outcome, now);
        if let Some(d) = cooldown {
            self.tell_fleet(|| Notice::Cooled {
                key: key.to_owned(),
                model: model.to_owned(),
                ms: d.as_millis() as u64,
            });
        }
        cooldown
    }

    /// Records a success; returns whether the candidate was resting or probed (then the fleet is told too).
    pub(crate) fn recovered(&self, (key, model): (&str, &str)) -> bool {
        let was_resting = self.books.cooldowns.record_success((key, model));
        if was_resting {
            self.tell_fleet(|| Notice::Recovered {
                key: key.to_owned(),
                model: model.to_owned(),
            });
        }
        was_resting
    }

    /// Marks a key invalid here and on every instance of the fleet.
    pub(crate) fn mark_invalid(&self, key: &str, generation: i64) {
        self.books.cooldowns.mark_invalid(key, generation);
        self.tell_fleet(|| Notice::Invalid {
            key: key.to_owned(),
            generation,
        });
    }

    /// Counts a failed login here and on every instance of the fleet (a guesser behind a load balancer gets the
    /// attempts of one instance, not of N).
    pub(crate) fn login_failed(&self, username: &str, address: std::net::IpAddr, now: Instant) {
        self.login_throttle.failed(username, address, now);
        self.tell_fleet(|| Notice::LoginFailed {
            account: username.to_owned(),
            address: address.to_string(),
        });
    }

    /// Clears an account's failed logins here and on every instance.
    pub(crate) fn login_succeeded(&self, username: &str) {
        self.login_throttle.succeeded(username);
        self.tell_fleet(|| Notice::LoginSucceeded {
            account: username.to_owned(),
        });
    }

    /// Tells the other instances something this one learned (no-op outside a fleet).
    pub(crate) fn tell_fleet(&self, notice: impl FnOnce() -> Notice) {
        if let Some(fleet) = &self.fleet {
            fleet.publish(&notice());
        }
    }

    /// Whether this instance serves in a fleet whose shared state is unreachable.
    pub fn fleet_degraded(&self) -> bool {
        self.fleet.as_ref().is_some_and(|f| !f.is_up())
    }

    /// The fleet's health as this instance sees it, if it is in one.
    pub fn fleet_health(&self) -> Option<Health> {
        self.fleet.as_ref().map(|f| f.health())
    }
}

/// Applies the other instances' notices and follows the fleet's health; ends with the state.
pub(crate) fn spawn(state: &AppState, fleet: &Fleet, mut inbox: Inbox) {
    let weak = state.downgrade();
    tokio::spawn(async move {
        while let Some(notice) = inbox.recv().await {
            let Some(state) = AppState::upgrade(&weak) else {
                break;
            };
            apply(&state, notice).await;
        }
    });
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SCORES_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(state) = AppState::upgrade(&weak) else {
                break;
            };
            let outcomes = state.score_outbox.take();
            if !outcomes.is_empty() {
                state.tell_fleet(|| Notice::Scores { outcomes });
            }
        }
    });
    let weak = state.downgrade();
    let mut health = fleet.watch();
    tokio::spawn(async move {
        loop {
            let now = *health.borrow_and_update();
            let Some(state) = AppState::upgrade(&weak) else {
                break;
            };
            // Down: this instance counts alone, with its share of every cap. Up: the fleet's ledger decides.
            let share = if now.up { 1 } else { now.instances };
            state.books.limits.set_share(share);
            drop(state);
            if health.changed().await.is_err() {
                break;
            }
        }
    });
}

async fn apply(state: &AppState, notice: Notice) {
    let now = Instant::now();
    match notice {
        Notice::Reload | Notice::Resync => {
            if let Err(e) = state.rebuild().await {
                tracing::warn!(error = %e, "snapshot not rebuilt after another instance's change");
            }
        }
        Notice::Cooled { key, model, ms } => {
            state
                .books
                .cooldowns
                .rest_until((&key, &model), now + Duration::from_millis(ms));
        }
        Notice::Recovered { key, model } => {
            if state.books.cooldowns.record_success((&key, &model)) {
                state.queue.wake_all();
            }
        }
        Notice::Invalid { key, generation } => state.books.cooldowns.mark_invalid(&key, generation),
        Notice::Live { user, event } => state.events.relay_remote(&user, event),
        Notice::Watching { user } => state.events.watched_elsewhere(&user, now),
        Notice::LoginFailed { account, address } => {
            if let Ok(address) = address.parse() {
                state.login_throttle.failed(&account, address, now);
            }
        }
        Notice::LoginSucceeded { account } => state.login_throttle.succeeded(&account),
        Notice::Scores { outcomes } => {
            for o in outcomes {
                let (key, model): (Arc<str>, Arc<str>) = (Arc::from(o.key), Arc::from(o.model));
                let latency = o.latency_ms.map(Duration::from_millis);
                state
                    .books
                    .scores
                    .merge(&key, &model, o.successes, o.failures, latency);
            }
        }
    }
}
