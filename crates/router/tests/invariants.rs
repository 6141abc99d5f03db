//! Invariants of the router, checked over many random sequences on paused time (a small deterministic generator:
//! every failure prints its seed):
//! - a cooling or invalid candidate is never planned, and every candidate is accounted for exactly once;
//! - within any 60 s window a scope never grants more requests than its RPM cap, nor more tokens than its TPM cap;
//! - the wait queue is bounded and counts every waiter exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use router::{Candidate, Day, Limits, Outcome, RoutingBooks, Strategy, TokenAsk, WaitQueue};
use tokio::time::Instant;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn day() -> Day {
    Day {
        index: 1,
        until_next: Duration::from_secs(80_000),
    }
}

#[tokio::test(start_paused = true)]
async fn cooling_and_invalid_candidates_are_never_planned() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let books = RoutingBooks::default();
        let keys: Vec<Arc<str>> = (0..6).map(|i| Arc::from(format!("k{i}"))).collect();
        let models: Vec<Arc<str>> = (0..2).map(|i| Arc::from(format!("m{i}"))).collect();
        let none: Vec<(Arc<str>, Limits)> = Vec::new();
        for _step in 0..60 {
            let k = rng.below(6) as usize;
            let m = rng.below(2) as usize;
            let now = Instant::now();
            match rng.below(6) {
                0 => {
                    books.cooldowns.record_failure(
                        (&keys[k], &models[m]),
                        Outcome::RateLimited {
                            retry_after: Some(Duration::from_secs(rng.below(20) + 1)),
                        },
                        now,
                    );
                }
                1 => {
                    books.cooldowns.record_failure(
                        (&keys[k], &models[m]),
                        Outcome::Transient { retry_after: None },
                        now,
                    );
                }
                2 if rng.below(4) == 0 => books.cooldowns.mark_invalid(&keys[k], 1),
                3 => {
                    books.cooldowns.record_success((&keys[k], &models[m]));
                }
                4 => books.scores.record(
                    &keys[k],
                    &models[m],
                    rng.below(2) == 0,
                    Some(Duration::from_millis(rng.below(3000))),
                ),
                _ => tokio::time::advance(Duration::from_millis(rng.below(8000))).await,
            }
            let candidates: Vec<Candidate> = keys
                .iter()
                .flat_map(|k| models.iter().map(move |m| (k, m)))
                .map(|(k, m)| Candidate {
                    key: k,
                    model: m,
                    scopes: &none,
                    fits: true,
                    priority: 0,
                })
                .collect();
            let now = Instant::now();
            let rotation = rng.below(100) as usize;
            let plan = books.plan(
                &candidates,
                TokenAsk::exact(1),
                now,
                day(),
                rotation,
                Strategy::Score,
            );
            for &i in &plan.ready {
                let c = &candidates[i];
                assert!(
                    books
                        .cooldowns
                        .cooling_until((c.key, c.model), now)
                        .is_none(),
                    "seed {seed}: cooling candidate {}/{} planned",
                    c.key,
                    c.model
                );
                assert!(
                    !books.cooldowns.is_invalid(c.key),
                    "seed {seed}: invalid key planned"
                );
            }
            assert_eq!(
                plan.ready.len() + plan.cooling + plan.invalid + plan.capped + plan.unfit,
                candidates.len(),
                "seed {seed}: every candidate is accounted for exactly once"
            );
            // Under the score strategy, a candidate is never tried before a clearly better one.
            for pair in plan.ready.windows(2) {
                let (a, b) = (plan.scores[pair[0]].score, plan.scores[pair[1]].score);
                assert!(
                    a + router::score::TIE >= b,
                    "seed {seed}: {a} ranked before {b}"
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn limits_are_never_exceeded_within_any_window() {
    for seed in 1..=100u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let books = RoutingBooks::default();
        let key: Arc<str> = Arc::from("k");
        let rpm = 1 + rng.below(20) as u32;
        let tpm = 500 + rng.below(5000);
        let scopes = vec![(
            key.clone(),
            Limits {
                rpm: Some(rpm),
                tpm: Some(tpm),
                ..Limits::default()
            },
        )];
        let model: Arc<str> = Arc::from("m");
        let candidate = Candidate {
            key: &key,
            model: &model,
            scopes: &scopes,
            fits: true,
            priority: 0,
        };
        // (sent at, tokens) of every granted request.
        let mut granted: Vec<(Instant, u64)> = Vec::new();
        for _ in 0..300 {
            tokio::time::advance(Duration::from_millis(rng.below(3000))).await;
            let now = Instant::now();
            let tokens = 1 + rng.below(tpm / 2);
            if let Ok(permit) = books.acquire(&candidate, TokenAsk::exact(tokens), now, day()) {
                granted.push((now, tokens));
                // Sometimes the request never left (refund) or used fewer tokens (reconcile).
                match rng.below(5) {
                    0 => {
                        books.limits.refund(&permit);
                        granted.pop();
                    }
                    1 => {
                        let actual = tokens / 2;
                        books.limits.reconcile(&permit, actual);
                        if let Some(last) = granted.last_mut() {
                            last.1 = actual;
                        }
                    }
                    _ => {}
                }
            }
            let window: Vec<&(Instant, u64)> = granted
                .iter()
                .filter(|(at, _)| now.saturating_duration_since(*at) < Duration::from_secs(60))
                .collect();
            assert!(
                window.len() as u32 <= rpm,
                "seed {seed}: {} requests in a minute, cap {rpm}",
                window.len()
            );
            let tokens: u64 = window.iter().map(|(_, t)| t).sum();
            assert!(
                tokens <= tpm,
                "seed {seed}: {tokens} tokens in a minute, cap {tpm}"
            );
        }
        assert!(
            !granted.is_empty(),
            "seed {seed}: the cap never let anything through"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_bounded_and_counts_exactly() {
    for seed in 1..=50u64 {
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F));
        let max = 1 + rng.below(10) as usize;
        let queue = WaitQueue::new(max);
        let mut places = Vec::new();
        for _ in 0..200 {
            if rng.below(2) == 0 {
                let lane = format!("lane{}", rng.below(3));
                match queue.join(&lane) {
                    Ok(p) => places.push(p),
                    Err(_) => assert_eq!(places.len(), max, "seed {seed}: refused below the bound"),
                }
            } else if !places.is_empty() {
                let i = rng.below(places.len() as u64) as usize;
                places.swap_remove(i);
            }
            assert!(places.len() <= max, "seed {seed}: bound exceeded");
            assert_eq!(queue.depth(), places.len(), "seed {seed}: depth miscounted");
        }
    }
}
