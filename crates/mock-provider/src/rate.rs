//! The `rpm<N>` directive: a request-rate limit per scenario, counted like a free tier does it.
//!
//! A scenario with `rpm<N>` accepts at most N requests within any trailing window (60 s, or `rpmw<S>` seconds).
//! The next one is refused with 429 and `Retry-After` = whole seconds until the oldest accepted request leaves the
//! window. Refused requests do not count against the window, so a client that keeps knocking is not punished
//! beyond the limit itself (the common behaviour of OpenAI-compatible free tiers).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// What the window says about one arriving request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Accepted; `remaining` more fit in the window now, and the oldest accepted request leaves it after `reset`.
    Accepted { remaining: u32, reset: Duration },
    /// Over the limit: a request is accepted again after `retry_after`.
    Limited { retry_after: Duration },
}

/// Accepted requests of one scenario within the trailing window.
#[derive(Debug)]
pub(crate) struct RateWindow {
    limit: u32,
    window: Duration,
    accepted: VecDeque<Instant>,
}

impl RateWindow {
    pub(crate) fn new(limit: u32, window: Duration) -> RateWindow {
        RateWindow {
            limit,
            window,
            accepted: VecDeque::with_capacity(limit as usize),
        }
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Decides on a request arriving at `now` and records it when accepted.
    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        while let Some(&oldest) = self.accepted.front() {
            if now.saturating_duration_since(oldest) >= self.window {
                self.accepted.pop_front();
            } else {
                break;
            }
        }
        if self.accepted.len() >= self.limit as usize {
            let retry_after = self.accepted.front().map_or(Duration::ZERO, |&oldest| {
                (oldest + self.window).saturating_duration_since(now)
            });
            return Admission::Limited { retry_after };
        }
        self.accepted.push_back(now);
        let remaining = self.limit.saturating_sub(self.accepted.len() as u32);
        let reset = self.accepted.front().map_or(self.window, |&oldest| {
            (oldest + self.window).saturating_duration_since(now)
        });
        Admission::Accepted { remaining, reset }
    }
}

/// `Retry-After` in whole seconds, rounded up and at least 1, so a client that obeys it is never early.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn accepts_up_to_the_limit_then_refuses_until_the_oldest_leaves() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(3, MINUTE);
        assert_eq!(
            w.admit(t0),
            Admission::Accepted {
                remaining: 2,
                reset: MINUTE
            }
        );
        assert!(matches!(
            w.admit(t0 + Duration::from_secs(10)),
            Admission::Accepted { remaining: 1, .. }
        ));
        assert_eq!(
            w.admit(t0 + Duration::from_secs(20)),
            Admission::Accepted {
                remaining: 0,
                reset: Duration::from_secs(40)
            }
        );
        // Full: the oldest (t0) leaves at t0 + 60 s.
        assert_eq!(
            w.admit(t0 + Duration::from_millis(30_500)),
            Admission::Limited {
                retry_after: Duration::from_millis(29_500)
            }
        );
        // Refused requests do not count: at t0 + 60 s exactly one slot is free again.
        assert!(matches!(
            w.admit(t0 + MINUTE),
            Admission::Accepted { remaining: 0, .. }
        ));
        assert_eq!(
            w.admit(t0 + MINUTE),
            Admission::Limited {
                retry_after: Duration::from_secs(10)
            }
        );
    }

    #[test]
    fn a_quiet_window_empties() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(2, Duration::from_secs(5));
        assert!(matches!(w.admit(t0), Admission::Accepted { .. }));
        assert!(matches!(w.admit(t0), Admission::Accepted { .. }));
        assert!(matches!(w.admit(t0), Admission::Limited { .. }));
        let later = t0 + Duration::from_secs(5);
        assert!(matches!(
            w.admit(later),
            Admission::Accepted { remaining: 1, .. }
        ));
        assert!(matches!(
            w.admit(later),
            Admission::Accepted { remaining: 0, .. }
        ));
        assert_eq!(w.limit(), 2);
    }

    #[test]
    fn zero_limit_refuses_everything() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(0, MINUTE);
        assert_eq!(
            w.admit(t0),
            Admission::Limited {
                retry_after: Duration::ZERO
            }
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2_001)), 3);
    }
}
