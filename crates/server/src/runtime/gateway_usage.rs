//! Per-gateway-key limits and usage, in memory: requests per minute (a sliding window of request instants, kept only
//! for a key with that limit, so it never holds more than the limit), requests of the last minute for display (60
//! one-second buckets: fixed memory at any rate), tokens per UTC day, and the counters (requests, tokens, last use) that a background task adds to the store every few
//! seconds. One short lock per key; no database on the request path. The book outlives snapshots: a reload hands
//! each gateway key entry the same counters it had.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use router::Day;
use store::GatewayKeyUsageDelta;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

/// Admitted requests per second over the last minute: `(second, count)` in slot `second % 60`.
#[derive(Debug)]
struct MinuteBuckets([(u64, u32); 60]);

impl Default for MinuteBuckets {
    fn default() -> Self {
        Self([(0, 0); 60])
    }
}

impl MinuteBuckets {
    fn add(&mut self, second: u64) {
        let slot = &mut self.0[(second % 60) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += 1;
    }

    fn last_minute(&self, second: u64) -> u64 {
        self.0
            .iter()
            .filter(|(s, _)| second.saturating_sub(*s) < 60 && *s <= second)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }
}

/// Whole seconds since the first instant this process asked about (buckets only need a common origin).
fn second_of(now: Instant) -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    // Offset by a minute so that instants slightly before the origin still land in distinct seconds.
    now.saturating_duration_since(*ORIGIN.get_or_init(|| now))
        .as_secs()
        + 60
}

#[derive(Debug, Default)]
struct Counters {
    /// Admitted requests of the last minute, oldest first; only while the key has a requests-per-minute limit.
    window: VecDeque<Instant>,
    recent: MinuteBuckets,
    day: u64,
    tokens_today: u64,
    /// Not yet flushed to the store.
    pending_requests: i64,
    pending_tokens: i64,
    last_used_ms: i64,
}

impl Counters {
    fn roll_day(&mut self, day: u64) {
        if self.day != day {
            self.day = day;
            self.tokens_today = 0;
        }
    }
}

/// The live counters of one gateway key.
#[derive(Debug, Default)]
pub struct GatewayKeyUsage {
    counters: Mutex<Counters>,
}

/// Why a request was refused by its gateway key's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLimitDenied {
    RequestsPerMinute { limit: u32, retry_after: Duration },
    TokensPerDay { limit: u64, retry_after: Duration },
}

/// What the dashboard shows next to a gateway key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UsageNow {
    pub requests_last_minute: u64,
    pub tokens_today: u64,
}

impl GatewayKeyUsage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one request if the key's limits allow it.
    pub fn admit(
        &self,
        rpm_limit: Option<u32>,
        tpd_limit: Option<u64>,
        now: Instant,
        day: Day,
        now_ms: i64,
    ) -> Result<(), KeyLimitDenied> {
        let mut c = self.lock();
        c.roll_day(day.index);
        if let Some(limit) = tpd_limit {
            if c.tokens_today >= limit {
                return Err(KeyLimitDenied::TokensPerDay {
                    limit,
                    retry_after: day.until_next,
                });
            }
        }
        while c
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            c.window.pop_front();
        }
        match rpm_limit {
            Some(limit) => {
                if c.window.len() >= limit as usize {
                    let oldest = c.window.front().copied().unwrap_or(now);
                    return Err(KeyLimitDenied::RequestsPerMinute {
                        limit,
                        retry_after: MINUTE.saturating_sub(now.duration_since(oldest)),
                    });
                }
                c.window.push_back(now);
            }
            // Without a limit nothing needs the instants (at thousands of requests per second they would cost
            // megabytes).
            None if !c.window.is_empty() => c.window = VecDeque::new(),
            None => {}
        }
        c.recent.add(second_of(now));
        c.pending_requests += 1;
        c.last_used_ms = c.last_used_ms.max(now_ms);
        Ok(())
    }

    /// Adds the tokens of a finished request.
    pub fn add_tokens(&self, tokens: u64, day: Day) {
        let mut c = self.lock();
        c.roll_day(day.index);
        c.tokens_today = c.tokens_today.saturating_add(tokens);
        c.pending_tokens = c
            .pending_tokens
            .saturating_add(i64::try_from(tokens).unwrap_or(i64::MAX));
    }

    pub fn now(&self, now: Instant, day: Day) -> UsageNow {
        let mut c = self.lock();
        c.roll_day(day.index);
        UsageNow {
            requests_last_minute: c.recent.last_minute(second_of(now)),
            tokens_today: c.tokens_today,
        }
    }
}

/// Every gateway key's counters, by key id.
#[derive(Debug, Default)]
pub struct GatewayUsageBook {
    keys: RwLock<HashMap<Arc<str>, Arc<GatewayKeyUsage>>>,
}

impl GatewayUsageBook {
    /// The counters of a key, created on first use.
    pub fn entry(&self, id: &Arc<str>) -> Arc<GatewayKeyUsage> {
        if let Some(usage) = self.get(id) {
            return usage;
        }
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id.clone())
            .or_default()
            .clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<GatewayKeyUsage>> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Adds a finished request's tokens to its key (no-op for callers without a gateway key, e.g. the playground).
    pub fn add_tokens(&self, id: &str, tokens: u64) {
        if let Some(usage) = self.get(id) {
            usage.add_tokens(tokens, Day::from_system_time());
        }
    }

    /// Seeds today's token counts (after a restart, from the request history).
    pub fn seed_tokens_today(&self, tokens: &[(String, i64)]) {
        let day = Day::from_system_time();
        for (id, n) in tokens {
            let usage = self.entry(&Arc::from(id.as_str()));
            let mut c = usage.lock();
            c.roll_day(day.index);
            c.tokens_today = u64::try_from(*n).unwrap_or(0);
        }
    }

    /// Takes the usage gathered since the last call, for the store.
    pub fn take_deltas(&self) -> Vec<GatewayKeyUsageDelta> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        for (id, usage) in keys.iter() {
            let mut c = usage.lock();
            if c.pending_requests == 0 && c.pending_tokens == 0 {
                continue;
            }
            out.push(GatewayKeyUsageDelta {
                id: id.to_string(),
                last_used_at: c.last_used_ms,
                requests: std::mem::take(&mut c.pending_requests),
                tokens: std::mem::take(&mut c.pending_tokens),
            });
        }
        out
    }

    /// Puts deltas back after a failed flush, so nothing is lost.
    pub fn restore(&self, deltas: &[GatewayKeyUsageDelta]) {
        for d in deltas {
            let usage = self.entry(&Arc::from(d.id.as_str()));
            let mut c = usage.lock();
            c.pending_requests += d.requests;
            c.pending_tokens += d.tokens;
            c.last_used_ms = c.last_used_ms.max(d.last_used_at);
        }
    }

    /// Forgets keys that no longer exist (deleted keys, deleted users).
    pub fn retain(&self, live: &std::collections::HashSet<&str>) {
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|id, _| live.contains(&**id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(index: u64) -> Day {
        Day {
            index,
            until_next: Duration::from_secs(3600),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rpm_is_a_sliding_minute() {
        let u = GatewayKeyUsage::default();
        assert!(u.admit(Some(2), None, Instant::now(), day(1), 1).is_ok());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(u.admit(Some(2), None, Instant::now(), day(1), 2).is_ok());
        match u.admit(Some(2), None, Instant::now(), day(1), 3) {
            Err(KeyLimitDenied::RequestsPerMinute { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_secs(40))
            }
            other => panic!("{other:?}"),
        }
        tokio::time::advance(Duration::from_secs(40)).await;
        assert!(u.admit(Some(2), None, Instant::now(), day(1), 4).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn last_minute_counts_in_fixed_memory_without_a_limit() {
        let u = GatewayKeyUsage::default();
        for _ in 0..5_000 {
            u.admit(None, None, Instant::now(), day(1), 1).unwrap();
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        for _ in 0..3 {
            u.admit(None, None, Instant::now(), day(1), 2).unwrap();
        }
        assert!(
            u.lock().window.is_empty(),
            "no instants kept without a limit"
        );
        assert_eq!(u.now(Instant::now(), day(1)).requests_last_minute, 5_003);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(u.now(Instant::now(), day(1)).requests_last_minute, 3);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(u.now(Instant::now(), day(1)).requests_last_minute, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn tpd_resets_with_the_day() {
        let u = GatewayKeyUsage::default();
        assert!(u.admit(None, Some(100), Instant::now(), day(1), 1).is_ok());
        u.add_tokens(100, day(1));
        assert!(matches!(
            u.admit(None, Some(100), Instant::now(), day(1), 2),
            Err(KeyLimitDenied::TokensPerDay { limit: 100, .. })
        ));
        assert!(u.admit(None, Some(100), Instant::now(), day(2), 3).is_ok());
    }

    #[test]
    fn deltas_are_taken_once_and_restored() {
        let book = GatewayUsageBook::default();
        let id: Arc<str> = Arc::from("k1");
        let usage = book.entry(&id);
        usage.admit(None, None, Instant::now(), day(1), 42).unwrap();
        usage.add_tokens(7, day(1));
        let deltas = book.take_deltas();
        assert_eq!(deltas.len(), 1);
        assert_eq!((deltas[0].requests, deltas[0].tokens), (1, 7));
        assert_eq!(deltas[0].last_used_at, 42);
        assert!(book.take_deltas().is_empty());
        book.restore(&deltas);
        assert_eq!(book.take_deltas()[0].tokens, 7);
    }
}
