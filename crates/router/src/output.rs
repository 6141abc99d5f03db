//! How many output tokens to reserve against a key's token limits for a request that does not bound its output, or
//! bounds it far above what it will use (Claude Code sends `max_tokens: 32000`).
//!
//! A fixed allowance either starves token-limited keys (1,024 reserved per request lets a 1,200-TPM key take about
//! one request at a time, while real answers use a few hundred) or overruns them. Instead each (key, model) keeps
//! its last [`SAMPLES`] completion sizes, and a request reserves their [`QUANTILE`] — enough for nine answers in ten
//! — never less than [`FLOOR`], never more than the request's own `max_tokens`. Until a candidate has
//! [`MIN_SAMPLES`] completions the old allowance ([`DEFAULT_RESERVE`]) applies. Reservations are reconciled with
//! the real usage when the request ends, so an estimate that is too low costs a little overshoot in one window, not
//! a refused request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Completions remembered per (key, model).
pub const SAMPLES: usize = 32;
/// Completions needed before the learned estimate replaces [`DEFAULT_RESERVE`].
pub const MIN_SAMPLES: usize = 4;
/// The share of recent completions the reservation covers.
pub const QUANTILE: f64 = 0.9;
/// Output tokens reserved at least.
pub const FLOOR: u64 = 64;
/// Output tokens reserved for a candidate that has not answered enough yet.
pub const DEFAULT_RESERVE: u64 = 1024;

/// What a request asks of the token limits: its prompt estimate and its output bound, if it set one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenAsk {
    pub prompt: u64,
    pub max_output: Option<u64>,
}

impl TokenAsk {
    /// A request whose size is known (embeddings: no output).
    pub fn exact(tokens: u64) -> Self {
        Self {
            prompt: tokens,
            max_output: Some(0),
        }
    }
}

#[derive(Debug, Default)]
struct Samples {
    ring: [u32; SAMPLES],
    len: usize,
    next: usize,
    /// The quantile of `ring`, recomputed on every record (reads are far more frequent than writes' sort).
    quantile: u64,
}

impl Samples {
    fn record(&mut self, tokens: u64) {
        self.ring[self.next] = u32::try_from(tokens).unwrap_or(u32::MAX);
        self.next = (self.next + 1) % SAMPLES;
        self.len = (self.len + 1).min(SAMPLES);
        let mut sorted = self.ring;
        let sorted = &mut sorted[..self.len];
        sorted.sort_unstable();
        let at = ((self.len as f64 * QUANTILE).ceil() as usize).clamp(1, self.len) - 1;
        self.quantile = u64::from(sorted[at]);
    }
}

/// A candidate: (provider key id, model).
type CandidateId = (Arc<str>, Arc<str>);

/// Recent completion sizes of every (key, model).
#[derive(Debug, Default)]
pub struct OutputBook {
    samples: Mutex<HashMap<CandidateId, Samples>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OutputBook {
    /// Records the output tokens of a completed answer of (key, model).
    pub fn record(&self, key: &Arc<str>, model: &Arc<str>, output_tokens: u64) {
        let mut samples = lock(&self.samples);
        match samples.get_mut(&(Arc::clone(key), Arc::clone(model))) {
            Some(s) => s.record(output_tokens),
            None => {
                let mut s = Samples::default();
                s.record(output_tokens);
                samples.insert((Arc::clone(key), Arc::clone(model)), s);
            }
        }
    }

    /// Output tokens to reserve for (key, model) under the request's own bound.
    pub fn reserve(&self, key: &Arc<str>, model: &Arc<str>, max_output: Option<u64>) -> u64 {
        if max_output.is_some_and(|m| m <= FLOOR) {
            return max_output.unwrap_or(FLOOR);
        }
        let learned = {
            let samples = lock(&self.samples);
            samples
                .get(&(Arc::clone(key), Arc::clone(model)))
                .filter(|s| s.len >= MIN_SAMPLES)
                .map(|s| s.quantile.max(FLOOR))
        };
        let estimate = learned.unwrap_or(DEFAULT_RESERVE);
        max_output.map_or(estimate, |m| m.min(estimate))
    }

    /// Prompt plus output reservation of `ask` for (key, model).
    pub fn tokens(&self, key: &Arc<str>, model: &Arc<str>, ask: TokenAsk) -> u64 {
        ask.prompt + self.reserve(key, model, ask.max_output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arc(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn reserves_the_default_until_learned_then_the_recent_quantile_within_bounds() {
        let book = OutputBook::default();
        let (k, m) = (arc("k"), arc("m"));
        assert_eq!(book.reserve(&k, &m, None), DEFAULT_RESERVE);
        assert_eq!(book.reserve(&k, &m, Some(200)), 200);
        for t in [100, 120, 90, 110, 105, 95, 115, 400, 100, 98] {
            book.record(&k, &m, t);
        }
        // Nine answers in ten fit in 120; the one outlier (400) does not drive the reservation.
        assert_eq!(book.reserve(&k, &m, None), 120);
        assert_eq!(book.reserve(&k, &m, Some(32_000)), 120);
        assert_eq!(book.reserve(&k, &m, Some(50)), 50);
        assert_eq!(
            book.tokens(
                &k,
                &m,
                TokenAsk {
                    prompt: 30,
                    max_output: None
                }
            ),
            150
        );
        // Other candidates keep their own history.
        assert_eq!(book.reserve(&k, &arc("other"), None), DEFAULT_RESERVE);
        // Tiny answers reserve the floor.
        let tiny = arc("tiny");
        for _ in 0..SAMPLES {
            book.record(&k, &tiny, 3);
        }
        assert_eq!(book.reserve(&k, &tiny, None), FLOOR);
        assert_eq!(book.tokens(&k, &tiny, TokenAsk::exact(7)), 7);
    }

    #[test]
    fn only_the_last_samples_count() {
        let book = OutputBook::default();
        let (k, m) = (arc("k"), arc("m"));
        for _ in 0..SAMPLES {
            book.record(&k, &m, 2000);
        }
        assert_eq!(book.reserve(&k, &m, None), 2000);
        for _ in 0..SAMPLES {
            book.record(&k, &m, 300);
        }
        assert_eq!(book.reserve(&k, &m, None), 300);
    }
}
