//! Outbound limits: requests and tokens per minute and per day, counted per scope (a provider key, or a key and
//! one of its models) before a request is sent, so the gateway never knowingly sends what the provider would
//! refuse.
//!
//! A request takes a [`Permit`] from every scope it falls under, all or nothing. Tokens are reserved from an
//! estimate (prompt estimate plus the output allowance) and reconciled with the usage the provider reports. The
//! minute window slides (each request leaves it exactly 60 s after it was sent); day counters reset at UTC midnight,
//! when the free tiers reset theirs. A permit whose request was never sent is refunded.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Caps of one scope; `None` means no cap on that dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub rpm: Option<u32>,
    /// Requests per hour (a few keyless platforms count per hour).
    pub rph: Option<u32>,
    pub rpd: Option<u32>,
    pub tpm: Option<u64>,
    pub tpd: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }

    /// `overrides` wins on every dimension it sets.
    pub fn overridden_by(self, overrides: Limits) -> Limits {
        Limits {
            rpm: overrides.rpm.or(self.rpm),
            rph: overrides.rph.or(self.rph),
            rpd: overrides.rpd.or(self.rpd),
            tpm: overrides.tpm.or(self.tpm),
            tpd: overrides.tpd.or(self.tpd),
        }
    }
}

/// The wall-clock facts the ledger needs besides the monotonic `now`: which UTC day it is and how long until the
/// next one begins.
#[derive(Debug, Clone, Copy)]
pub struct Day {
    pub index: u64,
    pub until_next: Duration,
}

impl Day {
    pub fn from_system_time() -> Day {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Day {
            index: secs / 86_400,
            until_next: Duration::from_secs(86_400 - secs % 86_400),
        }
    }
}

/// Why a permit could not be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Capped now; the caps allow this request again at that instant.
    Until(Instant),
    /// This request alone exceeds a per-minute token cap: it can never be sent through this scope.
    TooLarge,
}

/// Tokens and requests reserved for one request; give it back to the ledger with `reconcile` or `refund`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    scopes: Vec<Arc<str>>,
    at: Instant,
    day: u64,
    tokens: u64,
}

impl Permit {
    /// The capped scopes the permit was taken from (empty: nothing capped, nothing to share).
    pub fn scopes(&self) -> &[Arc<str>] {
        &self.scopes
    }

    /// The tokens reserved.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}

#[derive(Debug, Default)]
struct Window {
    /// (sent at, tokens) of the requests of the last minute, oldest first.
    minute: VecDeque<(Instant, u64)>,
    minute_tokens: u64,
    /// Send times of the last hour, kept only for scopes with an hourly cap.
    hour: VecDeque<Instant>,
    day: u64,
    day_requests: u32,
    day_tokens: u64,
    /// Capped until then by what the other instances of a fleet sent (the shared ledger said so).
    held_until: Option<Instant>,
}

impl Window {
    fn slide(&mut self, now: Instant, day: u64) {
        while let Some(&(at, tokens)) = self.minute.front() {
            if now.saturating_duration_since(at) < MINUTE {
                break;
            }
            self.minute.pop_front();
            self.minute_tokens = self.minute_tokens.saturating_sub(tokens);
        }
        while self
            .hour
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= HOUR)
        {
            self.hour.pop_front();
        }
        if self.day != day {
            self.day = day;
            self.day_requests = 0;
            self.day_tokens = 0;
        }
    }

    /// When this scope allows one more request of `tokens`, or `None` if it allows it now.
    fn blocked_until(
        &self,
        limits: &Limits,
        tokens: u64,
        now: Instant,
        day: &Day,
    ) -> Result<Option<Instant>, Denied> {
        let mut until: Option<Instant> = None;
        let mut later = |t: Instant| until = Some(until.map_or(t, |u| u.max(t)));
        if let Some(held) = self.held_until.filter(|h| *h > now) {
            later(held);
        }
        if let Some(rpd) = limits.rpd {
            if self.day_requests >= rpd {
                later(now + day.until_next);
            }
        }
        if let Some(tpd) = limits.tpd {
            if self.day_tokens.saturating_add(tokens) > tpd && self.day_tokens > 0 {
                later(now + day.until_next);
            }
        }
        if let Some(rph) = limits.rph {
            let rph = rph.max(1) as usize;
            if self.hour.len() >= rph {
                later(self.hour[self.hour.len() - rph] + HOUR);
            }
        }
        if let Some(rpm) = limits.rpm {
            let rpm = rpm.max(1) as usize;
            if self.minute.len() >= rpm {
                // The request that must leave the window first.
                let (at, _) = self.minute[self.minute.len() - rpm];
                later(at + MINUTE);
            }
        }
        if let Some(tpm) = limits.tpm {
            if tokens > tpm {
                return Err(Denied::TooLarge);
            }
            let mut excess = (self.minute_tokens + tokens).saturating_sub(tpm);
            if excess > 0 {
                for &(at, t) in &self.minute {
                    excess = excess.saturating_sub(t);
                    if excess == 0 {
                        later(at + MINUTE);
                        break;
                    }
                }
            }
        }
        Ok(until)
    }

    /// (requests, tokens) in the current minute.
    fn minute_usage(&self) -> (u32, u64) {
        (self.minute.len() as u32, self.minute_tokens)
    }
}

/// Usage of one scope right now, for gauges and the scoring router's headroom.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub rpm_used: u32,
    pub tpm_used: u64,
    pub rph_used: u32,
    pub rpd_used: u32,
    pub tpd_used: u64,
}

impl Usage {
    /// The smallest remaining fraction over the capped dimensions (1.0 when nothing is capped).
    pub fn headroom(&self, limits: &Limits) -> f64 {
        let fraction = |used: f64, cap: Option<f64>| {
            cap.filter(|c| *c > 0.0)
                .map_or(1.0, |c| (1.0 - used / c).clamp(0.0, 1.0))
        };
        [
            fraction(f64::from(self.rpm_used), limits.rpm.map(f64::from)),
            fraction(f64::from(self.rph_used), limits.rph.map(f64::from)),
            fraction(self.tpm_used as f64, limits.tpm.map(|t| t as f64)),
            fraction(f64::from(self.rpd_used), limits.rpd.map(f64::from)),
            fraction(self.tpd_used as f64, limits.tpd.map(|t| t as f64)),
        ]
        .into_iter()
        .fold(1.0, f64::min)
    }
}

/// The per-scope counters of this instance.
#[derive(Debug)]
pub struct LimitLedger {
    windows: Mutex<HashMap<Arc<str>, Window>>,
    /// This instance's share of every cap: 1 alone or while a shared ledger keeps the fleet's counts; N (the
    /// instances seen) while the shared ledger is unreachable, so N instances together stay within each cap.
    share: AtomicU32,
}

impl Default for LimitLedger {
    fn default() -> Self {
        Self {
            windows: Mutex::default(),
            share: AtomicU32::new(1),
        }
    }
}

impl Limits {
    /// One `n`-th of every cap (at least 1), for one of `n` instances counting on their own.
    pub fn share(self, n: u32) -> Limits {
        if n <= 1 {
            return self;
        }
        Limits {
            rpm: self.rpm.map(|v| (v / n).max(1)),
            rph: self.rph.map(|v| (v / n).max(1)),
            rpd: self.rpd.map(|v| (v / n).max(1)),
            tpm: self.tpm.map(|v| (v / u64::from(n)).max(1)),
            tpd: self.tpd.map(|v| (v / u64::from(n)).max(1)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LimitLedger {
    /// Takes one request and `tokens` from every scope, or from none. Unlimited scopes are not tracked.
    pub fn try_acquire(
        &self,
        scopes: &[(&Arc<str>, Limits)],
        tokens: u64,
        now: Instant,
        day: Day,
    ) -> Result<Permit, Denied> {
        let share = self.share.load(Ordering::Relaxed);
        let mut windows = lock(&self.windows);
        let mut until: Option<Instant> = None;
        for (scope, limits) in scopes.iter().filter(|(_, l)| !l.is_unlimited()) {
            let window = windows.entry(Arc::clone(scope)).or_default();
            window.slide(now, day.index);
            if let Some(t) = window.blocked_until(&limits.share(share), tokens, now, &day)? {
                until = Some(until.map_or(t, |u| u.max(t)));
            }
        }
        if let Some(until) = until {
            return Err(Denied::Until(until));
        }
        let mut taken = Vec::with_capacity(scopes.len());
        for (scope, limits) in scopes.iter().filter(|(_, l)| !l.is_unlimited()) {
            if let Some(window) = windows.get_mut(*scope) {
                window.minute.push_back((now, tokens));
                window.minute_tokens += tokens;
                if limits.rph.is_some() {
                    window.hour.push_back(now);
                }
                window.day_requests = window.day_requests.saturating_add(1);
                window.day_tokens = window.day_tokens.saturating_add(tokens);
                taken.push(Arc::clone(scope));
            }
        }
        Ok(Permit {
            scopes: taken,
            at: now,
            day: day.index,
            tokens,
        })
    }

    /// When every scope would allow a request of `tokens` (`None`: now). Does not reserve anything.
    pub fn free_at(
        &self,
        scopes: &[(&Arc<str>, Limits)],
        tokens: u64,
        now: Instant,
        day: Day,
    ) -> Result<Option<Instant>, Denied> {
        let share = self.share.load(Ordering::Relaxed);
        let mut windows = lock(&self.windows);
        let mut until: Option<Instant> = None;
        for (scope, limits) in scopes.iter().filter(|(_, l)| !l.is_unlimited()) {
            let limits = limits.share(share);
            let Some(window) = windows.get_mut(*scope) else {
                if limits.tpm.is_some_and(|tpm| tokens > tpm) {
                    return Err(Denied::TooLarge);
                }
                continue;
            };
            window.slide(now, day.index);
            if let Some(t) = window.blocked_until(&limits, tokens, now, &day)? {
                until = Some(until.map_or(t, |u| u.max(t)));
            }
        }
        Ok(until)
    }

    /// Replaces the reserved estimate with what the provider reported.
    pub fn reconcile(&self, permit: &Permit, actual_tokens: u64) {
        if permit.tokens == actual_tokens || permit.scopes.is_empty() {
            return;
        }
        let mut windows = lock(&self.windows);
        for scope in &permit.scopes {
            let Some(window) = windows.get_mut(scope) else {
                continue;
            };
            // From the newest end: a permit is reconciled soon after it was taken, and a busy key's minute holds
            // thousands of entries.
            if let Some(entry) = window
                .minute
                .iter_mut()
                .rev()
                .find(|(at, t)| *at == permit.at && *t == permit.tokens)
            {
                entry.1 = actual_tokens;
                window.minute_tokens = window.minute_tokens - permit.tokens + actual_tokens;
            }
            if window.day == permit.day {
                window.day_tokens = window.day_tokens.saturating_sub(permit.tokens) + actual_tokens;
            }
        }
    }

    /// Gives back a permit whose request never reached the provider.
    pub fn refund(&self, permit: &Permit) {
        let mut windows = lock(&self.windows);
        for scope in &permit.scopes {
            let Some(window) = windows.get_mut(scope) else {
                continue;
            };
            if let Some(i) = window
                .minute
                .iter()
                .rposition(|&(at, t)| at == permit.at && t == permit.tokens)
            {
                window.minute.remove(i);
                window.minute_tokens = window.minute_tokens.saturating_sub(permit.tokens);
            }
            if let Some(i) = window.hour.iter().rposition(|at| *at == permit.at) {
                window.hour.remove(i);
            }
            if window.day == permit.day {
                window.day_requests = window.day_requests.saturating_sub(1);
                window.day_tokens = window.day_tokens.saturating_sub(permit.tokens);
            }
        }
    }

    /// Current usage of a scope.
    pub fn usage(&self, scope: &str, now: Instant, day: Day) -> Usage {
        let mut windows = lock(&self.windows);
        let Some(window) = windows.get_mut(scope) else {
            return Usage::default();
        };
        window.slide(now, day.index);
        let (rpm_used, tpm_used) = window.minute_usage();
        Usage {
            rpm_used,
            tpm_used,
            rph_used: window.hour.len() as u32,
            rpd_used: window.day_requests,
            tpd_used: window.day_tokens,
        }
    }

    /// Sets this instance's share of every cap (see [`LimitLedger`]'s `share`).
    pub fn set_share(&self, n: u32) {
        self.share.store(n.max(1), Ordering::Relaxed);
    }

    pub fn share(&self) -> u32 {
        self.share.load(Ordering::Relaxed)
    }

    /// Records that the shared ledger refused `scope` until `until`: planning sees it capped until then.
    pub fn hold(&self, scope: &Arc<str>, until: Instant) {
        let mut windows = lock(&self.windows);
        let window = windows.entry(Arc::clone(scope)).or_default();
        window.held_until = Some(window.held_until.map_or(until, |h| h.max(until)));
    }

    /// Forgets a scope (its key was deleted).
    pub fn forget(&self, scope: &str) {
        lock(&self.windows).remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(index: u64, secs_left: u64) -> Day {
        Day {
            index,
            until_next: Duration::from_secs(secs_left),
        }
    }

    fn rpm(n: u32) -> Limits {
        Limits {
            rpm: Some(n),
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_slides_over_the_minute() {
        let ledger = LimitLedger::default();
        let scope: Arc<str> = Arc::from("k");
        let scopes = [(&scope, rpm(2))];
        let t0 = Instant::now();
        ledger.try_acquire(&scopes, 10, t0, day(1, 9999)).unwrap();
        tokio::time::advance(Duration::from_secs(20)).await;
        let t1 = Instant::now();
        ledger.try_acquire(&scopes, 10, t1, day(1, 9999)).unwrap();
        // The third must wait for the first to leave the window, 60 s after it was sent.
        assert_eq!(
            ledger
                .try_acquire(&scopes, 10, t1, day(1, 9999))
                .unwrap_err(),
            Denied::Until(t0 + MINUTE)
        );
        assert_eq!(
            ledger.free_at(&scopes, 10, t1, day(1, 9999)),
            Ok(Some(t0 + MINUTE))
        );
        tokio::time::advance(Duration::from_secs(40)).await;
        ledger
            .try_acquire(&scopes, 10, Instant::now(), day(1, 9999))
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn all_or_nothing_across_scopes() {
        let ledger = LimitLedger::default();
        let key: Arc<str> = Arc::from("k");
        let model: Arc<str> = Arc::from("k\0m");
        let now = Instant::now();
        ledger
            .try_acquire(&[(&model, rpm(1))], 1, now, day(1, 100))
            .unwrap();
        let both = [(&key, rpm(5)), (&model, rpm(1))];
        assert!(ledger.try_acquire(&both, 1, now, day(1, 100)).is_err());
        assert_eq!(
            ledger.usage("k", now, day(1, 100)).rpm_used,
            0,
            "a refused request takes nothing from the other scope"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_per_minute_with_reconcile_and_refund() {
        let ledger = LimitLedger::default();
        let scope: Arc<str> = Arc::from("k");
        let limits = Limits {
            tpm: Some(1000),
            ..Limits::default()
        };
        let scopes = [(&scope, limits)];
        let now = Instant::now();
        let d = day(1, 100);
        assert_eq!(
            ledger.try_acquire(&scopes, 1001, now, d).unwrap_err(),
            Denied::TooLarge
        );
        let p = ledger.try_acquire(&scopes, 800, now, d).unwrap();
        assert!(ledger.try_acquire(&scopes, 300, now, d).is_err());
        // The provider reported less than estimated: the difference is free again.
        ledger.reconcile(&p, 500);
        let p2 = ledger.try_acquire(&scopes, 300, now, d).unwrap();
        assert_eq!(ledger.usage("k", now, d).tpm_used, 800);
        ledger.refund(&p2);
        let u = ledger.usage("k", now, d);
        assert_eq!((u.rpm_used, u.tpm_used, u.rpd_used), (1, 500, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn daily_caps_wait_for_the_next_utc_day() {
        let ledger = LimitLedger::default();
        let scope: Arc<str> = Arc::from("k");
        let limits = Limits {
            rpd: Some(2),
            ..Limits::default()
        };
        let scopes = [(&scope, limits)];
        let now = Instant::now();
        ledger.try_acquire(&scopes, 1, now, day(7, 3600)).unwrap();
        ledger.try_acquire(&scopes, 1, now, day(7, 3600)).unwrap();
        assert_eq!(
            ledger.try_acquire(&scopes, 1, now, day(7, 3600)),
            Err(Denied::Until(now + Duration::from_secs(3600)))
        );
        // A new day: the counter starts again.
        ledger.try_acquire(&scopes, 1, now, day(8, 86_400)).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_divides_every_cap_and_a_hold_caps_until_its_instant() {
        let ledger = LimitLedger::default();
        let scope: Arc<str> = Arc::from("k");
        let scopes = [(&scope, rpm(10))];
        let now = Instant::now();
        let d = day(1, 9999);
        ledger.set_share(3);
        for _ in 0..3 {
            ledger.try_acquire(&scopes, 1, now, d).unwrap();
        }
        assert_eq!(
            ledger.try_acquire(&scopes, 1, now, d),
            Err(Denied::Until(now + MINUTE)),
            "one of three instances takes 3 of 10 a minute"
        );
        ledger.set_share(1);
        ledger.try_acquire(&scopes, 1, now, d).unwrap();
        let later = now + Duration::from_secs(5);
        ledger.hold(&scope, later);
        assert_eq!(ledger.free_at(&scopes, 1, now, d), Ok(Some(later)));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(ledger.free_at(&scopes, 1, Instant::now(), d), Ok(None));
    }

    #[test]
    fn headroom_is_the_tightest_dimension() {
        let limits = Limits {
            rpm: Some(10),
            tpm: Some(1000),
            ..Limits::default()
        };
        let usage = Usage {
            rpm_used: 5,
            tpm_used: 900,
            ..Usage::default()
        };
        assert!((usage.headroom(&limits) - 0.1).abs() < 1e-9);
        assert_eq!(usage.headroom(&Limits::default()), 1.0);
    }

    #[test]
    fn overrides_win_per_dimension() {
        let catalog = Limits {
            rpm: Some(30),
            rpd: Some(1000),
            ..Limits::default()
        };
        let user = Limits {
            rpm: Some(5),
            tpm: Some(6000),
            ..Limits::default()
        };
        assert_eq!(
            catalog.overridden_by(user),
            Limits {
                rpm: Some(5),
                rph: None,
                rpd: Some(1000),
                tpm: Some(6000),
                tpd: None
            }
        );
    }
}
