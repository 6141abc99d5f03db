//! Planning one request: which candidates may be tried now and in what order, and — when none may — when the
//! soonest one frees up. Invalid keys, cooling candidates, capped candidates and candidates that cannot fit the
//! request are set aside (counted, so errors can say why); the rest are ranked by score.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cooldown::CooldownBook;
use crate::limits::{Day, Denied, LimitLedger, Limits};
use crate::output::{OutputBook, TokenAsk};
use crate::score::{rank, ScoreBook, ScoreInputs};

/// One candidate as the planner sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub key: &'a Arc<str>,
    pub model: &'a Arc<str>,
    /// Every limit scope the candidate falls under (the key's, the key-and-model's).
    pub scopes: &'a [(Arc<str>, Limits)],
    /// False when the candidate cannot serve this request (context window, capabilities).
    pub fits: bool,
    /// The position of the candidate's model in a profile (0 outside profiles).
    pub priority: u32,
}

/// How ready candidates are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Best score first (the default, and `auto`).
    #[default]
    Score,
    /// A profile's models in their listed order; keys of one model by score.
    Failover,
    /// A profile's models taking turns as the first choice, one request each; then in listed order.
    RoundRobin { members: u32 },
    /// Lowest measured latency first (unmeasured candidates first, so they get measured); ties by score.
    LeastLatency,
}

/// The plan for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Indexes into the candidate slice, best first.
    pub ready: Vec<usize>,
    /// Score inputs of every candidate, by candidate index (unfit and invalid ones included, for observability).
    pub scores: Vec<ScoreInputs>,
    pub cooling: usize,
    pub capped: usize,
    pub invalid: usize,
    pub unfit: usize,
    /// When the soonest cooling or capped candidate frees up.
    pub soonest_free: Option<Instant>,
}

/// The shared routing state of one instance: cooldowns, statistics, outbound limits.
#[derive(Debug, Default)]
pub struct RoutingBooks {
    pub cooldowns: CooldownBook,
    pub scores: ScoreBook,
    pub limits: LimitLedger,
    /// Recent completion sizes, for output reservations.
    pub output: OutputBook,
}

fn limit_view(scopes: &[(Arc<str>, Limits)]) -> impl Iterator<Item = (&Arc<str>, Limits)> {
    scopes.iter().map(|(s, l)| (s, *l))
}

impl RoutingBooks {
    /// Plans a request asking `ask` of the token limits over `candidates`, ordered by `strategy`. Each candidate is
    /// judged on its own reservation: the prompt plus the output it usually produces ([`OutputBook`]).
    pub fn plan(
        &self,
        candidates: &[Candidate<'_>],
        ask: TokenAsk,
        now: Instant,
        day: Day,
        rotation: usize,
        strategy: Strategy,
    ) -> Plan {
        let mut plan = Plan {
            ready: Vec::with_capacity(candidates.len()),
            scores: Vec::with_capacity(candidates.len()),
            ..Plan::default()
        };
        let free_at = |t: Instant, plan: &mut Plan| {
            plan.soonest_free = Some(plan.soonest_free.map_or(t, |s| s.min(t)));
        };
        let mut headrooms = Vec::with_capacity(candidates.len());
        let mut scopes_buf = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            scopes_buf.clear();
            scopes_buf.extend(limit_view(c.scopes));
            let headroom = c
                .scopes
                .iter()
                .filter(|(_, l)| !l.is_unlimited())
                .map(|(s, l)| self.limits.usage(s, now, day).headroom(l))
                .fold(1.0, f64::min);
            headrooms.push(headroom);
            if !c.fits {
                plan.unfit += 1;
            } else if self.cooldowns.is_invalid(c.key) {
                plan.invalid += 1;
            } else if let Some(until) = self.cooldowns.cooling_until((c.key, c.model), now) {
                plan.cooling += 1;
                free_at(until, &mut plan);
            } else {
                let tokens = if scopes_buf.iter().all(|(_, l)| l.is_unlimited()) {
                    // No token limit to check: skip the estimate.
                    ask.prompt
                } else {
                    self.output.tokens(c.key, c.model, ask)
                };
                match self.limits.free_at(&scopes_buf, tokens, now, day) {
                    Ok(None) => plan.ready.push(i),
                    Ok(Some(until)) => {
                        plan.capped += 1;
                        free_at(until, &mut plan);
                    }
                    Err(Denied::TooLarge) => plan.unfit += 1,
                    Err(Denied::Until(until)) => {
                        plan.capped += 1;
                        free_at(until, &mut plan);
                    }
                }
            }
        }
        self.scores.inputs(
            candidates
                .iter()
                .zip(&headrooms)
                .map(|(c, h)| (&**c.key, &**c.model, *h)),
            now,
            &mut plan.scores,
        );
        let scores: Vec<f64> = plan.scores.iter().map(|s| s.score).collect();
        rank(&scores, &mut plan.ready, rotation);
        // `rank` leaves equal candidates rotated; the stable sorts below keep that order within a tier.
        match strategy {
            Strategy::Score => {}
            Strategy::Failover => plan.ready.sort_by_key(|&i| candidates[i].priority),
            Strategy::RoundRobin { members } => {
                let n = members.max(1);
                let turn = (rotation % n as usize) as u32;
                plan.ready
                    .sort_by_key(|&i| (candidates[i].priority + n - turn) % n);
            }
            Strategy::LeastLatency => {
                let latency = |i: usize| plan.scores[i].latency_ms.unwrap_or(0.0);
                let mut ready = std::mem::take(&mut plan.ready);
                ready.sort_by(|&a, &b| latency(a).total_cmp(&latency(b)));
                plan.ready = ready;
            }
        }
        plan
    }

    /// Takes the candidate's limit permits for a request asking `ask` (its own reservation, as planned).
    pub fn acquire(
        &self,
        candidate: &Candidate<'_>,
        ask: TokenAsk,
        now: Instant,
        day: Day,
    ) -> Result<crate::limits::Permit, Denied> {
        let scopes: Vec<(&Arc<str>, Limits)> = limit_view(candidate.scopes).collect();
        let tokens = if scopes.iter().all(|(_, l)| l.is_unlimited()) {
            ask.prompt
        } else {
            self.output.tokens(candidate.key, candidate.model, ask)
        };
        self.limits.try_acquire(&scopes, tokens, now, day)
    }
}

/// Seconds to tell a client in `Retry-After` for an instant (at least 1).
pub fn retry_after_secs(until: Instant, now: Instant) -> u64 {
    until
        .saturating_duration_since(now)
        .max(Duration::from_secs(1))
        .as_secs_f64()
        .ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cooldown::Outcome;

    fn arc(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[tokio::test(start_paused = true)]
    async fn sets_aside_what_cannot_run_and_ranks_the_rest() {
        let books = RoutingBooks::default();
        let now = Instant::now();
        let day = Day {
            index: 1,
            until_next: Duration::from_secs(1000),
        };
        let keys: Vec<Arc<str>> = ["a", "b", "c", "d", "e"].into_iter().map(arc).collect();
        let model = arc("m");
        let capped_scope = vec![(
            arc("d"),
            Limits {
                rpm: Some(1),
                ..Limits::default()
            },
        )];
        books
            .limits
            .try_acquire(&[(&capped_scope[0].0, capped_scope[0].1)], 1, now, day)
            .unwrap();
        books.cooldowns.record_failure(
            ("b", "m"),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(5)),
            },
            now,
        );
        books.cooldowns.mark_invalid("c", 1);
        // `e` is slow, `a` is fast: `a` must come first.
        books
            .scores
            .record(&keys[0], &model, true, Some(Duration::from_millis(100)));
        books
            .scores
            .record(&keys[4], &model, true, Some(Duration::from_millis(9000)));
        let none: Vec<(Arc<str>, Limits)> = Vec::new();
        let cands: Vec<Candidate> = keys
            .iter()
            .map(|k| Candidate {
                key: k,
                model: &model,
                scopes: if &**k == "d" { &capped_scope } else { &none },
                fits: true,
                priority: 0,
            })
            .collect();
        let plan = books.plan(&cands, TokenAsk::exact(10), now, day, 0, Strategy::Score);
        assert_eq!(plan.ready, vec![0, 4]);
        assert_eq!((plan.cooling, plan.invalid, plan.capped), (1, 1, 1));
        assert_eq!(plan.soonest_free, Some(now + Duration::from_secs(5)));
        assert_eq!(plan.scores.len(), 5);
        let mut unfit = cands.clone();
        unfit[0].fits = false;
        let plan = books.plan(&unfit, TokenAsk::exact(10), now, day, 0, Strategy::Score);
        assert_eq!((plan.ready.clone(), plan.unfit), (vec![4], 1));
    }

    #[tokio::test(start_paused = true)]
    async fn profile_strategies() {
        let books = RoutingBooks::default();
        let now = Instant::now();
        let day = Day {
            index: 1,
            until_next: Duration::from_secs(1000),
        };
        let keys: Vec<Arc<str>> = ["k0", "k1", "k2"].into_iter().map(arc).collect();
        let models: Vec<Arc<str>> = ["first", "second", "third"].into_iter().map(arc).collect();
        // The first model is slow, the third fast.
        for (i, ms) in [(0, 3000), (1, 1000), (2, 100)] {
            books
                .scores
                .record(&keys[i], &models[i], true, Some(Duration::from_millis(ms)));
        }
        let none: Vec<(Arc<str>, Limits)> = Vec::new();
        let cands: Vec<Candidate> = (0..3)
            .map(|i| Candidate {
                key: &keys[i],
                model: &models[i],
                scopes: &none,
                fits: true,
                priority: i as u32,
            })
            .collect();
        let plan = |rotation, strategy| {
            books
                .plan(&cands, TokenAsk::exact(1), now, day, rotation, strategy)
                .ready
        };
        assert_eq!(plan(0, Strategy::Failover), vec![0, 1, 2]);
        assert_eq!(plan(5, Strategy::Failover), vec![0, 1, 2]);
        assert_eq!(plan(0, Strategy::Score), vec![2, 1, 0]);
        assert_eq!(plan(0, Strategy::LeastLatency), vec![2, 1, 0]);
        let firsts: Vec<usize> = (0..3)
            .map(|r| plan(r, Strategy::RoundRobin { members: 3 })[0])
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
        assert_eq!(plan(1, Strategy::RoundRobin { members: 3 }), vec![1, 2, 0]);
    }

    #[test]
    fn retry_after_rounds_up() {
        let now = Instant::now();
        assert_eq!(retry_after_secs(now, now), 1);
        assert_eq!(retry_after_secs(now + Duration::from_millis(2100), now), 3);
    }
}
