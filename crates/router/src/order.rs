//! Candidate ordering: drop keys marked invalid, keep cooling candidates aside (remembering the soonest one to free
//! up), and rotate the ready ones so that several keys serving the same model share the load.

use tokio::time::Instant;

use crate::cooldown::{Attempted, CooldownBook};

/// The outcome of ordering: candidates to try now, in order, and when the soonest cooling one frees up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordered {
    /// Indexes into the candidate slice given to [`order_candidates`].
    pub ready: Vec<usize>,
    pub cooling: usize,
    pub invalid: usize,
    pub soonest_free: Option<Instant>,
}

/// Orders `candidates` for one request. `rotation` is any counter that changes between requests; ready candidates
/// are rotated by it so load spreads evenly while the relative order (the preference) is otherwise kept.
pub fn order_candidates<'a>(
    candidates: impl ExactSizeIterator<Item = Attempted<'a>>,
    book: &CooldownBook,
    now: Instant,
    rotation: usize,
) -> Ordered {
    let mut ordered = Ordered {
        ready: Vec::with_capacity(candidates.len()),
        cooling: 0,
        invalid: 0,
        soonest_free: None,
    };
    for (i, (key, model)) in candidates.enumerate() {
        if book.is_invalid(key) {
            ordered.invalid += 1;
        } else if let Some(until) = book.cooling_until((key, model), now) {
            ordered.cooling += 1;
            ordered.soonest_free = Some(ordered.soonest_free.map_or(until, |s| s.min(until)));
        } else {
            ordered.ready.push(i);
        }
    }
    if ordered.ready.len() > 1 {
        let shift = rotation % ordered.ready.len();
        ordered.ready.rotate_left(shift);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cooldown::Outcome;

    #[test]
    fn cooling_and_invalid_are_never_ready() {
        let book = CooldownBook::default();
        let now = Instant::now();
        book.record_failure(
            ("b", "m"),
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(9)),
            },
            now,
        );
        book.mark_invalid("c", 1);
        let cands = [("a", "m"), ("b", "m"), ("c", "m"), ("d", "m")];
        for rotation in 0..5 {
            let o = order_candidates(cands.iter().copied(), &book, now, rotation);
            let mut ready = o.ready.clone();
            ready.sort();
            assert_eq!(ready, vec![0, 3]);
            assert_eq!((o.cooling, o.invalid), (1, 1));
            assert_eq!(o.soonest_free, Some(now + Duration::from_secs(9)));
        }
    }

    #[test]
    fn rotation_spreads_first_choice() {
        let book = CooldownBook::default();
        let cands = [("a", "m"), ("b", "m"), ("c", "m")];
        let firsts: Vec<usize> = (0..3)
            .map(|r| order_candidates(cands.iter().copied(), &book, Instant::now(), r).ready[0])
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }
}
