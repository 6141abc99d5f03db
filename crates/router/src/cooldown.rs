//! Cooldowns per (provider key, model) and the invalid mark per provider key.
//!
//! Policy (first version; the scoring router refines it):
//! - rate limited: the provider's `Retry-After` when given, else 30 s doubling per consecutive 429 up to 10 min;
//! - quota exhausted: the provider's hint, else until the next UTC midnight (the usual daily reset), at least 60 s;
//! - transient (network, timeout, unknown model): 10 s doubling per consecutive failure up to 5 min;
//! - server error (5xx without `Retry-After`): the same, but only once failures span two different requests within
//!   a minute — one request's content can make an upstream fail, and that must end that request with its error,
//!   not take the key away from every other client; the request that failed moves on to another candidate;
//! - invalid credential (401/403): the key is out of rotation until it is edited or re-checked;
//! - a success clears the candidate's failure streak; failures of requests that were already in flight when the
//!   candidate started resting do not lengthen the streak;
//! - half-open: when a rest ends, exactly one request probes the candidate ([`CooldownBook::claim_probe`]); the
//!   others keep treating it as resting until the probe succeeds (the candidate is back), fails (a longer rest) or
//!   [`PROBE_HOLD`] passes without an answer (another request may probe).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What happened on one attempt, as far as cooldowns care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    RateLimited {
        retry_after: Option<Duration>,
    },
    QuotaExhausted {
        retry_after: Option<Duration>,
        until_daily_reset: Duration,
    },
    Transient {
        retry_after: Option<Duration>,
    },
    /// An upstream 5xx; `request` identifies the request that met it (any stable hash of its id).
    ServerError {
        retry_after: Option<Duration>,
        request: u64,
    },
    InvalidCredential,
    /// The request could not fit or was refused for itself; the candidate is fine.
    NoPenalty,
}

/// Tunable durations.
#[derive(Debug, Clone, Copy)]
pub struct CooldownPolicy {
    pub rate_limit_base: Duration,
    pub rate_limit_max: Duration,
    pub transient_base: Duration,
    pub transient_max: Duration,
    pub quota_min: Duration,
    pub longest: Duration,
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        Self {
            rate_limit_base: Duration::from_secs(30),
            rate_limit_max: Duration::from_secs(600),
            transient_base: Duration::from_secs(10),
            transient_max: Duration::from_secs(300),
            quota_min: Duration::from_secs(60),
            longest: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    until: Instant,
    streak: u32,
    /// What the rest is for (the latest failure's kind).
    reason: Reason,
    /// A request is probing the candidate after its rest: others wait until this.
    probe_until: Option<Instant>,
}

/// Why a candidate rests, in words for the dashboard and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The provider said too many requests (429, or its own rate-limit headers).
    RateLimited,
    /// A daily or account quota is used up.
    QuotaExhausted,
    /// The provider failed with 5xx for more than one request.
    ServerError,
    /// No answer in time, a connection error, or a stalled stream.
    Unreachable,
    /// Another instance of the fleet set the rest.
    Fleet,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RateLimited => "rate_limited",
            Reason::QuotaExhausted => "quota_exhausted",
            Reason::ServerError => "server_error",
            Reason::Unreachable => "unreachable",
            Reason::Fleet => "set_by_another_instance",
        }
    }

    /// Whether the provider asked for the rest (a rate limit or quota), rather than failing.
    pub fn is_rate_limit(self) -> bool {
        matches!(self, Reason::RateLimited | Reason::QuotaExhausted)
    }
}

/// What a request about to try a candidate found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The candidate is not resting.
    Free,
    /// Its rest ended and this request is its one probe.
    Probe,
    /// It rests, or another request is probing it.
    Busy,
}

/// How long one probe keeps the others off a candidate whose rest ended.
pub const PROBE_HOLD: Duration = Duration::from_secs(10);

/// (provider key id, model id).
type CandidateId = (Arc<str>, Arc<str>);

/// A candidate as the book sees it: the provider key id and the upstream model id.
pub type Attempted<'a> = (&'a str, &'a str);

/// Cooldown state shared by every request of this instance. Locks are held for a map lookup only.
#[derive(Debug, Default)]
pub struct CooldownBook {
    policy: CooldownPolicy,
    cooling: Mutex<HashMap<CandidateId, Entry>>,
    /// Keys whose credential was refused, with the generation (stored version) of the key that was refused.
    invalid: Mutex<HashMap<Arc<str>, i64>>,
    /// Candidates that answered one request with a 5xx: (that request, when). A 5xx for another request within
    /// [`SUSPECT_WINDOW`] cools the candidate.
    suspects: Mutex<HashMap<CandidateId, (u64, Instant)>>,
}

/// How long a lone 5xx is remembered, waiting for another request's to confirm that the candidate is failing.
pub const SUSPECT_WINDOW: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps inconsistent (single inserts and removes).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn doubled(base: Duration, streak: u32, max: Duration) -> Duration {
    let factor = 1u32 << streak.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(max)
}

impl CooldownBook {
    pub fn new(policy: CooldownPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Records a failed attempt; returns the cooldown it set, if any.
    pub fn record_failure(
        &self,
        (key, model): Attempted<'_>,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Duration> {
        if outcome == Outcome::InvalidCredential {
            // Invalid credentials are recorded with `mark_invalid`, which knows the key's generation.
            return None;
        }
        if outcome == Outcome::NoPenalty {
            return None;
        }
        if let Outcome::ServerError {
            retry_after: None,
            request,
        } = outcome
        {
            let mut suspects = lock(&self.suspects);
            let id = (Arc::from(key), Arc::from(model));
            match suspects.get(&id) {
                Some(&(other, at))
                    if other != request && now.duration_since(at) < SUSPECT_WINDOW =>
                {
                    suspects.remove(&id);
                }
                _ => {
                    suspects.insert(id, (request, now));
                    return None;
                }
            }
        }
        let p = &self.policy;
        let mut cooling = lock(&self.cooling);
        let id = (Arc::from(key), Arc::from(model));
        // A failure while the candidate is already resting comes from a request sent before the rest began (several
        // were in flight when it started failing): it is the same incident, not one more in the streak.
        let streak = match cooling.get(&id) {
            Some(e) if e.until > now => e.streak.max(1),
            Some(e) => e.streak.saturating_add(1),
            None => 1,
        };
        let reason = match outcome {
            Outcome::RateLimited { .. } => Reason::RateLimited,
            Outcome::QuotaExhausted { .. } => Reason::QuotaExhausted,
            Outcome::ServerError { .. } => Reason::ServerError,
            _ => Reason::Unreachable,
        };
        let duration = match outcome {
            Outcome::RateLimited {
                retry_after: Some(d),
            } => d.max(Duration::from_secs(1)),
            Outcome::RateLimited { retry_after: None } => {
                doubled(p.rate_limit_base, streak, p.rate_limit_max)
            }
            Outcome::QuotaExhausted {
                retry_after,
                until_daily_reset,
            } => retry_after.unwrap_or(until_daily_reset).max(p.quota_min),
            Outcome::Transient { retry_after } | Outcome::ServerError { retry_after, .. } => {
                retry_after.unwrap_or_else(|| doubled(p.transient_base, streak, p.transient_max))
            }
            Outcome::InvalidCredential | Outcome::NoPenalty => return None,
        }
        .min(p.longest);
        let until = now + duration;
        // Never shorten a longer cooldown already in place.
        let until = cooling.get(&id).map_or(until, |e| e.until.max(until));
        cooling.insert(
            id,
            Entry {
                until,
                streak,
                reason,
                probe_until: None,
            },
        );
        Some(duration)
    }

    /// Applies a cooldown another instance of the fleet set: the candidate rests at least until `until` (a longer
    /// rest already in place stays).
    pub fn rest_until(&self, (key, model): Attempted<'_>, until: Instant) {
        let mut cooling = lock(&self.cooling);
        let id = (Arc::from(key), Arc::from(model));
        let entry = cooling.entry(id).or_insert(Entry {
            until,
            streak: 1,
            reason: Reason::Fleet,
            probe_until: None,
        });
        entry.until = entry.until.max(until);
    }

    /// Records a success: the candidate's streak and cooldown are cleared. Returns whether it was resting or
    /// being probed (requests waiting for it may go now).
    pub fn record_success(&self, (key, model): Attempted<'_>) -> bool {
        {
            let mut suspects = lock(&self.suspects);
            if !suspects.is_empty() {
                suspects.retain(|(k, m), _| !(&**k == key && &**m == model));
            }
        }
        let mut cooling = lock(&self.cooling);
        if cooling.is_empty() {
            return false;
        }
        let before = cooling.len();
        cooling.retain(|(k, m), _| !(&**k == key && &**m == model));
        cooling.len() != before
    }

    /// When the candidate may be tried again, if it is cooling now.
    pub fn cooling_until(&self, (key, model): Attempted<'_>, now: Instant) -> Option<Instant> {
        let cooling = lock(&self.cooling);
        if cooling.is_empty() {
            return None;
        }
        let probe = (Arc::<str>::from(key), Arc::<str>::from(model));
        let e = cooling.get(&probe)?;
        if e.until > now {
            return Some(e.until);
        }
        // Rest over, but another request is probing: still resting for everyone else.
        e.probe_until.filter(|p| *p > now)
    }

    /// Called by a request about to try the candidate. `true` unless another request is probing it. When its rest
    /// has just ended, the caller becomes the one probe: others see the candidate resting for up to
    /// [`PROBE_HOLD`], until the probe's outcome is recorded.
    pub fn claim_probe(&self, attempted: Attempted<'_>, now: Instant) -> bool {
        self.claim(attempted, now) != Claim::Busy
    }

    /// Like [`CooldownBook::claim_probe`], saying whether the caller became the candidate's probe.
    pub fn claim(&self, (key, model): Attempted<'_>, now: Instant) -> Claim {
        let mut cooling = lock(&self.cooling);
        if cooling.is_empty() {
            return Claim::Free;
        }
        let id = (Arc::<str>::from(key), Arc::<str>::from(model));
        let Some(e) = cooling.get_mut(&id) else {
            return Claim::Free;
        };
        if e.until > now || e.probe_until.is_some_and(|p| p > now) {
            return Claim::Busy;
        }
        e.probe_until = Some(now + PROBE_HOLD);
        Claim::Probe
    }

    /// A probe ended without saying anything about the candidate (the client left, the request did not fit):
    /// another request may probe at once.
    pub fn release_probe(&self, (key, model): Attempted<'_>) {
        let mut cooling = lock(&self.cooling);
        if cooling.is_empty() {
            return;
        }
        let id = (Arc::<str>::from(key), Arc::<str>::from(model));
        if let Some(e) = cooling.get_mut(&id) {
            e.probe_until = None;
        }
    }

    /// Marks a key invalid: its credential, at `generation` (the stored version of the key), was refused.
    pub fn mark_invalid(&self, key: &str, generation: i64) {
        lock(&self.invalid).insert(Arc::from(key), generation);
    }

    /// Re-derives the invalid set after the key pool was reloaded. `keys` yields every key with its current
    /// generation and whether the store records it as invalid. A mark survives if the store has it or if it was set
    /// for the key's current generation (its verdict may not be persisted yet); a key edited since its verdict comes
    /// back into rotation; deleted keys are forgotten.
    pub fn sync_invalid<'a>(&self, keys: impl Iterator<Item = (&'a str, i64, bool)>) {
        let mut invalid = lock(&self.invalid);
        let mut next = HashMap::new();
        for (key, generation, stored_invalid) in keys {
            if stored_invalid || invalid.get(key) == Some(&generation) {
                next.insert(Arc::from(key), generation);
            }
        }
        *invalid = next;
    }

    pub fn is_invalid(&self, key: &str) -> bool {
        let invalid = lock(&self.invalid);
        !invalid.is_empty() && invalid.contains_key(key)
    }

    /// How many candidates are cooling at `now`, and how many keys are marked invalid (for metrics).
    pub fn counts(&self, now: Instant) -> (usize, usize) {
        let cooling = lock(&self.cooling)
            .values()
            .filter(|e| e.until > now)
            .count();
        (cooling, lock(&self.invalid).len())
    }

    /// Forgets everything about a key (it was edited, re-checked or deleted).
    pub fn reset_key(&self, key: &str) {
        lock(&self.invalid).remove(key);
        lock(&self.cooling).retain(|(k, _), _| &**k != key);
    }

    /// Active cooldowns of a key: (model, remaining).
    pub fn cooldowns_of(&self, key: &str, now: Instant) -> Vec<(String, Duration, Reason)> {
        lock(&self.cooling)
            .iter()
            .filter(|((k, _), e)| &**k == key && e.until > now)
            .map(|((_, m), e)| (m.to_string(), e.until - now, e.reason))
            .collect()
    }

    /// Why the candidate rests, if it does now.
    pub fn cooling_reason(&self, (key, model): Attempted<'_>, now: Instant) -> Option<Reason> {
        let cooling = lock(&self.cooling);
        let probe = (Arc::<str>::from(key), Arc::<str>::from(model));
        cooling
            .get(&probe)
            .filter(|e| e.until > now)
            .map(|e| e.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_request_probes_a_candidate_whose_rest_ended() {
        let book = CooldownBook::default();
        let c = ("k", "m");
        let transient = Outcome::Transient { retry_after: None };
        let now = Instant::now();
        assert!(book.claim_probe(c, now), "a candidate never failed is free");
        assert_eq!(
            book.record_failure(c, transient, now),
            Some(Duration::from_secs(10))
        );
        assert!(!book.claim_probe(c, now), "resting");
        let later = now + Duration::from_secs(11);
        assert!(book.cooling_until(c, later).is_none());
        assert!(
            book.claim_probe(c, later),
            "the first request after the rest probes"
        );
        assert!(
            book.cooling_until(c, later).is_some(),
            "others wait for the probe"
        );
        assert!(!book.claim_probe(c, later));
        // A probe that never answers frees the candidate for another probe.
        let stale = later + PROBE_HOLD + Duration::from_secs(1);
        assert!(book.claim_probe(c, stale));
        // The probe failed: a longer rest; then a probe that succeeds brings it back for everyone.
        assert_eq!(
            book.record_failure(c, transient, stale),
            Some(Duration::from_secs(20))
        );
        let after = stale + Duration::from_secs(21);
        assert!(book.claim_probe(c, after));
        book.release_probe(c);
        assert!(
            book.claim_probe(c, after),
            "a released probe lets the next request probe"
        );
        book.record_success(c);
        assert!(book.cooling_until(c, after).is_none());
        assert!(book.claim_probe(c, after) && book.claim_probe(c, after));
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_error_cools_only_when_two_requests_meet_one() {
        let book = CooldownBook::default();
        let err = |request| Outcome::ServerError {
            retry_after: None,
            request,
        };
        let c = ("k1", "m");
        let now = Instant::now();
        // The same request failing again (a retry) is still one request's problem.
        assert_eq!(book.record_failure(c, err(1), now), None);
        assert_eq!(book.record_failure(c, err(1), now), None);
        assert!(book.cooling_until(c, now).is_none());
        // Another request meets it: the candidate rests.
        assert_eq!(
            book.record_failure(c, err(2), now),
            Some(Duration::from_secs(10))
        );
        assert!(book.cooling_until(c, now).is_some());
        // A lone failure is forgotten after the window, and a success forgets it at once.
        let c2 = ("k2", "m");
        assert_eq!(book.record_failure(c2, err(3), now), None);
        let later = now + SUSPECT_WINDOW + Duration::from_secs(1);
        assert_eq!(book.record_failure(c2, err(4), later), None);
        book.record_success(c2);
        assert_eq!(book.record_failure(c2, err(5), later), None);
        // The provider's own Retry-After is a signal about the key: honoured at once.
        let c3 = ("k3", "m");
        let told = Outcome::ServerError {
            retry_after: Some(Duration::from_secs(7)),
            request: 9,
        };
        assert_eq!(
            book.record_failure(c3, told, now),
            Some(Duration::from_secs(7))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_then_expires() {
        let book = CooldownBook::default();
        let now = Instant::now();
        let set = book.record_failure(
            ("k1", "m"),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(5)),
            },
            now,
        );
        assert_eq!(set, Some(Duration::from_secs(5)));
        assert!(book.cooling_until(("k1", "m"), now).is_some());
        assert!(book.cooling_until(("k1", "other"), now).is_none());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(book.cooling_until(("k1", "m"), Instant::now()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_grow_and_success_resets() {
        let book = CooldownBook::default();
        let t = Outcome::Transient { retry_after: None };
        // Each failure comes from the probe after the previous rest ended: the rest doubles.
        for expected in [10, 20, 40, 80, 160, 300, 300] {
            assert_eq!(
                book.record_failure(("k", "m"), t, Instant::now()),
                Some(Duration::from_secs(expected))
            );
            tokio::time::advance(Duration::from_secs(expected)).await;
        }
        book.record_success(("k", "m"));
        let now = Instant::now();
        assert!(book.cooling_until(("k", "m"), now).is_none());
        assert_eq!(
            book.record_failure(("k", "m"), t, now),
            Some(Duration::from_secs(10))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_of_requests_already_in_flight_do_not_lengthen_the_rest() {
        let book = CooldownBook::default();
        let t = Outcome::Transient { retry_after: None };
        let now = Instant::now();
        assert_eq!(
            book.record_failure(("k", "m"), t, now),
            Some(Duration::from_secs(10))
        );
        // Five more requests sent before the first failure time out one after another.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            assert_eq!(
                book.record_failure(("k", "m"), t, Instant::now()),
                Some(Duration::from_secs(10))
            );
        }
        // The rest ends 10 s after the last of them; the next probe's failure doubles it.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            book.record_failure(("k", "m"), t, Instant::now()),
            Some(Duration::from_secs(20))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_cooldown_never_shortens_a_longer_one() {
        let book = CooldownBook::default();
        let now = Instant::now();
        book.record_failure(
            ("k", "m"),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(100)),
            },
            now,
        );
        book.record_failure(
            ("k", "m"),
            Outcome::Transient {
                retry_after: Some(Duration::from_secs(1)),
            },
            now,
        );
        assert_eq!(
            book.cooling_until(("k", "m"), now),
            Some(now + Duration::from_secs(100))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn quota_waits_for_daily_reset() {
        let book = CooldownBook::default();
        let now = Instant::now();
        let q = Outcome::QuotaExhausted {
            retry_after: None,
            until_daily_reset: Duration::from_secs(3 * 3600),
        };
        assert_eq!(
            book.record_failure(("k", "m"), q, now),
            Some(Duration::from_secs(3 * 3600))
        );
        let q = Outcome::QuotaExhausted {
            retry_after: None,
            until_daily_reset: Duration::from_secs(5),
        };
        assert_eq!(
            book.record_failure(("k2", "m"), q, now),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn invalid_until_reset() {
        let book = CooldownBook::default();
        assert_eq!(
            book.record_failure(("k", "m"), Outcome::InvalidCredential, Instant::now()),
            None
        );
        assert!(
            !book.is_invalid("k"),
            "invalid verdicts go through mark_invalid"
        );
        book.mark_invalid("k", 7);
        assert!(book.is_invalid("k"));
        assert!(!book.is_invalid("k2"));
        book.reset_key("k");
        assert!(!book.is_invalid("k"));
        // A reload keeps a mark for the same generation and drops it once the key was edited.
        book.mark_invalid("k", 7);
        book.sync_invalid([("k", 7, false), ("s", 1, true)].into_iter());
        assert!(book.is_invalid("k") && book.is_invalid("s"));
        book.sync_invalid([("k", 8, false), ("s", 1, true)].into_iter());
        assert!(!book.is_invalid("k") && book.is_invalid("s"));
        book.sync_invalid(std::iter::empty());
        assert!(!book.is_invalid("s"), "deleted keys are forgotten");
    }
}
