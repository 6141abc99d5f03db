//! Scoring: each (provider key, model) candidate's recent success rate and latency, kept as moving averages that
//! forget, combined with its limit headroom into one number. Higher is better. docs/routing.md explains the formula.
//!
//! ```text
//! reliability = (successes + 2) / (attempts + 2)            decayed counts: each new sample weighs 1, older ones × 0.9;
//!                                                             a candidate is trusted until it fails
//! speed       = 1 / (1 + latency_ms / 1000)                  latency: time to first token for streams, total otherwise;
//!                                                             unmeasured candidates get speed 1 (optimistic, so
//!                                                             a new key is tried and measured)
//! headroom    = smallest remaining fraction of any capped limit (1 when uncapped), and the provider's own
//!               x-ratelimit-remaining / limit when it sent one in the last minute
//! score       = 0.55 × reliability + 0.25 × speed + 0.20 × headroom
//! ```
//! Candidates whose scores are within [`TIE`] of each other are treated as equal and rotated per request, so
//! identical free keys share the load instead of the first one taking everything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Weight of the success-rate prior, in attempts.
const PRIOR_WEIGHT: f64 = 2.0;
/// Success rate assumed before anything is known: full trust, so new keys share the load at once.
const PRIOR_SUCCESS: f64 = 1.0;
/// Each new sample multiplies the weight of the older ones by this (about 7 samples of memory).
const DECAY: f64 = 0.9;
/// Latency moving average: weight of the newest sample.
const LATENCY_ALPHA: f64 = 0.3;
/// Latency assumed before anything is known: none, so that unmeasured candidates are tried and measured.
const DEFAULT_LATENCY_MS: f64 = 0.0;
/// Scores closer than this are equal (rotated, not ranked).
pub const TIE: f64 = 0.02;
/// Most samples replayed when another instance's outcomes are merged (0.9^20 ≈ 0.12: older ones barely count).
pub const MERGED_SAMPLES: u32 = 20;
/// A provider's own rate-limit headers are trusted for this long.
const HINT_TTL: Duration = Duration::from_secs(60);

/// The inputs of one candidate's score, as shown by the admin API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreInputs {
    pub reliability: f64,
    /// Decayed number of attempts behind `reliability`.
    pub samples: f64,
    pub latency_ms: Option<f64>,
    pub headroom: f64,
    pub score: f64,
}

/// The score from its parts.
pub fn score(reliability: f64, latency_ms: Option<f64>, headroom: f64) -> f64 {
    let speed = 1.0 / (1.0 + latency_ms.unwrap_or(DEFAULT_LATENCY_MS).max(0.0) / 1000.0);
    0.55 * reliability + 0.25 * speed + 0.20 * headroom.clamp(0.0, 1.0)
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    successes: f64,
    attempts: f64,
    latency_ms: Option<f64>,
    /// The provider's own remaining fraction, from its rate-limit headers, and when it was seen.
    hint: Option<(f64, Instant)>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            successes: 0.0,
            attempts: 0.0,
            latency_ms: None,
            hint: None,
        }
    }
}

impl Stats {
    fn reliability(&self) -> f64 {
        (self.successes + PRIOR_WEIGHT * PRIOR_SUCCESS) / (self.attempts + PRIOR_WEIGHT)
    }
}

type CandidateId = (Arc<str>, Arc<str>);

/// Runtime statistics of every candidate of this instance.
#[derive(Debug, Default)]
pub struct ScoreBook {
    stats: Mutex<HashMap<CandidateId, Stats>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ScoreBook {
    /// Records one attempt's outcome. `latency` is the time to first token (streams) or the total (others);
    /// failures carry none, since a fast error says nothing about speed.
    pub fn record(
        &self,
        key: &Arc<str>,
        model: &Arc<str>,
        success: bool,
        latency: Option<Duration>,
    ) {
        let mut stats = lock(&self.stats);
        let entry = stats
            .entry((Arc::clone(key), Arc::clone(model)))
            .or_default();
        entry.successes = entry.successes * DECAY + f64::from(u8::from(success));
        entry.attempts = entry.attempts * DECAY + 1.0;
        if let Some(latency) = latency {
            let ms = latency.as_secs_f64() * 1000.0;
            entry.latency_ms = Some(match entry.latency_ms {
                Some(avg) => avg + LATENCY_ALPHA * (ms - avg),
                None => ms,
            });
        }
    }

    /// Merges another instance's outcomes of one candidate: its latest samples (at most [`MERGED_SAMPLES`], since
    /// older ones would have decayed away anyway) are replayed here, successes and failures interleaved.
    pub fn merge(
        &self,
        key: &Arc<str>,
        model: &Arc<str>,
        successes: u32,
        failures: u32,
        latency: Option<Duration>,
    ) {
        let total = successes.saturating_add(failures);
        if total == 0 {
            return;
        }
        let replayed = total.min(MERGED_SAMPLES);
        let ok = (u64::from(replayed) * u64::from(successes)).div_ceil(u64::from(total)) as u32;
        let mut stats = lock(&self.stats);
        let entry = stats
            .entry((Arc::clone(key), Arc::clone(model)))
            .or_default();
        for i in 0..replayed {
            // Spread the successes over the replay (Bresenham), so that neither kind ends up weighing more.
            let success = (u64::from(i + 1) * u64::from(ok) / u64::from(replayed))
                > (u64::from(i) * u64::from(ok) / u64::from(replayed));
            entry.successes = entry.successes * DECAY + f64::from(u8::from(success));
            entry.attempts = entry.attempts * DECAY + 1.0;
        }
        if let Some(latency) = latency.filter(|_| successes > 0) {
            let ms = latency.as_secs_f64() * 1000.0;
            entry.latency_ms = Some(match entry.latency_ms {
                Some(avg) => avg + LATENCY_ALPHA * (ms - avg),
                None => ms,
            });
        }
    }

    /// Records the provider's own view of the remaining allowance (`remaining / limit`).
    pub fn record_hint(
        &self,
        key: &Arc<str>,
        model: &Arc<str>,
        remaining_fraction: f64,
        now: Instant,
    ) {
        let mut stats = lock(&self.stats);
        let entry = stats
            .entry((Arc::clone(key), Arc::clone(model)))
            .or_default();
        entry.hint = Some((remaining_fraction.clamp(0.0, 1.0), now));
    }

    /// The score inputs of each candidate, given each one's local headroom.
    pub fn inputs<'a>(
        &self,
        candidates: impl Iterator<Item = (&'a str, &'a str, f64)>,
        now: Instant,
        out: &mut Vec<ScoreInputs>,
    ) {
        let stats = lock(&self.stats);
        for (key, model, local_headroom) in candidates {
            let found = if stats.is_empty() {
                None
            } else {
                stats.get(&(Arc::from(key), Arc::from(model))).copied()
            };
            let s = found.unwrap_or_default();
            let hint = s
                .hint
                .filter(|(_, at)| now.saturating_duration_since(*at) < HINT_TTL)
                .map_or(1.0, |(f, _)| f);
            let headroom = local_headroom.min(hint);
            let reliability = s.reliability();
            out.push(ScoreInputs {
                reliability,
                samples: s.attempts,
                latency_ms: s.latency_ms,
                headroom,
                score: score(reliability, s.latency_ms, headroom),
            });
        }
    }

    /// Forgets a key's statistics (it was edited or deleted).
    pub fn forget_key(&self, key: &str) {
        lock(&self.stats).retain(|(k, _), _| &**k != key);
    }
}

/// Orders candidate indexes by score, best first; runs of near-equal scores are rotated by `rotation`.
pub fn rank(scores: &[f64], ready: &mut [usize], rotation: usize) {
    ready.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let mut start = 0;
    while start < ready.len() {
        let top = scores[ready[start]];
        let mut end = start + 1;
        while end < ready.len() && top - scores[ready[end]] <= TIE {
            end += 1;
        }
        let run = &mut ready[start..end];
        if run.len() > 1 {
            let shift = rotation % run.len();
            run.rotate_left(shift);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn merged_outcomes_move_the_score_like_local_ones() {
        let (local, merged) = (ScoreBook::default(), ScoreBook::default());
        let (k, m): (Arc<str>, Arc<str>) = (Arc::from("k"), Arc::from("m"));
        for i in 0..10 {
            local.record(
                &k,
                &m,
                i % 2 == 0,
                (i % 2 == 0).then(|| Duration::from_millis(200)),
            );
        }
        merged.merge(&k, &m, 5, 5, Some(Duration::from_millis(200)));
        let now = Instant::now();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        local.inputs([("k", "m", 1.0)].into_iter(), now, &mut a);
        merged.inputs([("k", "m", 1.0)].into_iter(), now, &mut b);
        assert!(
            (a[0].reliability - b[0].reliability).abs() < 0.05,
            "{a:?} {b:?}"
        );
        assert!(b[0].reliability < 0.7);
        assert_eq!(b[0].latency_ms, Some(200.0));
        // A flood of failures elsewhere weighs like the last 20 of them.
        merged.merge(&k, &m, 0, 5000, None);
        let mut c = Vec::new();
        merged.inputs([("k", "m", 1.0)].into_iter(), now, &mut c);
        assert!(c[0].reliability < 0.25, "{c:?}");
    }

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn one(book: &ScoreBook, key: &str, model: &str, headroom: f64) -> ScoreInputs {
        let mut out = Vec::new();
        book.inputs(
            [(key, model, headroom)].into_iter(),
            Instant::now(),
            &mut out,
        );
        out[0]
    }

    #[test]
    fn unknown_candidates_start_from_the_prior() {
        let book = ScoreBook::default();
        let s = one(&book, "k", "m", 1.0);
        assert!((s.reliability - 1.0).abs() < 1e-9);
        assert_eq!(s.latency_ms, None);
        assert!((s.score - 1.0).abs() < 1e-9);
    }

    #[test]
    fn failures_lower_and_successes_restore_reliability() {
        let book = ScoreBook::default();
        let (k, m) = (id("k"), id("m"));
        for _ in 0..5 {
            book.record(&k, &m, false, None);
        }
        let low = one(&book, "k", "m", 1.0).reliability;
        assert!(low < 0.35, "{low}");
        for _ in 0..20 {
            book.record(&k, &m, true, Some(Duration::from_millis(200)));
        }
        let high = one(&book, "k", "m", 1.0).reliability;
        assert!(high > 0.9, "old failures are forgotten: {high}");
    }

    #[test]
    fn latency_is_a_moving_average() {
        let book = ScoreBook::default();
        let (k, m) = (id("k"), id("m"));
        book.record(&k, &m, true, Some(Duration::from_millis(1000)));
        book.record(&k, &m, true, Some(Duration::from_millis(2000)));
        let l = one(&book, "k", "m", 1.0).latency_ms.unwrap();
        assert!((l - 1300.0).abs() < 1e-6, "{l}");
    }

    #[tokio::test(start_paused = true)]
    async fn provider_hints_expire() {
        let book = ScoreBook::default();
        let (k, m) = (id("k"), id("m"));
        book.record_hint(&k, &m, 0.1, Instant::now());
        assert!((one(&book, "k", "m", 0.5).headroom - 0.1).abs() < 1e-9);
        tokio::time::advance(HINT_TTL).await;
        assert!((one(&book, "k", "m", 0.5).headroom - 0.5).abs() < 1e-9);
    }

    #[test]
    fn rank_orders_by_score_and_rotates_ties() {
        let scores = [0.5, 0.9, 0.895, 0.7];
        let mut firsts = Vec::new();
        for rotation in 0..4 {
            let mut ready = vec![0, 1, 2, 3];
            rank(&scores, &mut ready, rotation);
            assert_eq!(&ready[2..], &[3, 0]);
            firsts.push(ready[0]);
        }
        assert_eq!(firsts, vec![1, 2, 1, 2]);
    }

    #[test]
    fn a_faster_key_outranks_a_slower_one_of_equal_reliability() {
        assert!(score(0.9, Some(200.0), 1.0) > score(0.9, Some(3000.0), 1.0) + TIE);
        assert!(score(0.99, Some(3000.0), 1.0) < score(0.99, Some(200.0), 0.9));
        // Reliability dominates: a key failing half the time loses to a slow but sound one.
        assert!(score(0.5, Some(100.0), 1.0) < score(0.95, Some(4000.0), 1.0));
    }
}
