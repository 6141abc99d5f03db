//! The wait queue: when every candidate for a request is cooling or capped, the request waits — in arrival order,
//! per lane (one user's requests for one model) — until the earliest candidate frees, instead of failing with 429.
//!
//! A lane admits one waiter at a time (its *turn*): the head sleeps until the earliest candidate frees (or until
//! [`WaitQueue::wake_all`] says something changed), tries, and hands the turn on. Newcomers queue behind existing
//! waiters even when a candidate happens to be free, so nobody is overtaken. Dropping a [`Place`] (the client went
//! away) leaves the queue at once. The number of waiters is bounded; past it, requests fail fast.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, OwnedMutexGuard};

#[derive(Debug, Default)]
struct Lane {
    turn: Arc<tokio::sync::Mutex<()>>,
    waiters: AtomicUsize,
}

/// Every lane of this instance.
#[derive(Debug)]
pub struct WaitQueue {
    max_waiting: usize,
    waiting: Arc<AtomicUsize>,
    lanes: Mutex<HashMap<Box<str>, Arc<Lane>>>,
    changed: Notify,
}

/// The queue is at its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// A request's place in its lane; leaving (drop) frees it.
#[derive(Debug)]
pub struct Place {
    lane: Arc<Lane>,
    waiting: Arc<AtomicUsize>,
}

/// Holding this, the request is at the head of its lane.
#[derive(Debug)]
pub struct Turn {
    _guard: OwnedMutexGuard<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WaitQueue {
    pub fn new(max_waiting: usize) -> Self {
        Self {
            max_waiting,
            waiting: Arc::new(AtomicUsize::new(0)),
            lanes: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        }
    }

    /// Requests waiting now, over all lanes.
    pub fn depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests waiting in the lanes whose name starts with `prefix` (one user's lanes: `"<user>\0"`).
    pub fn depth_of(&self, prefix: &str) -> usize {
        if self.depth() == 0 {
            return 0;
        }
        lock(&self.lanes)
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, l)| l.waiters.load(Ordering::Relaxed))
            .sum()
    }

    /// Requests waiting in `lane`.
    pub fn lane_depth(&self, lane: &str) -> usize {
        if self.depth() == 0 {
            return 0;
        }
        lock(&self.lanes)
            .get(lane)
            .map_or(0, |l| l.waiters.load(Ordering::Relaxed))
    }

    /// Whether someone is already waiting in `lane` (a newcomer must then queue behind them).
    pub fn has_waiters(&self, lane: &str) -> bool {
        if self.depth() == 0 {
            return false;
        }
        lock(&self.lanes)
            .get(lane)
            .is_some_and(|l| l.waiters.load(Ordering::Relaxed) > 0)
    }

    /// Joins the tail of `lane`.
    pub fn join(&self, lane: &str) -> Result<Place, QueueFull> {
        let previous = self.waiting.fetch_add(1, Ordering::Relaxed);
        if previous >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(QueueFull);
        }
        let mut lanes = lock(&self.lanes);
        if lanes.len() > 4096 {
            // Lanes nobody waits in are recreated on demand.
            lanes.retain(|_, l| Arc::strong_count(l) > 1);
        }
        let lane = Arc::clone(lanes.entry(Box::from(lane)).or_default());
        lane.waiters.fetch_add(1, Ordering::Relaxed);
        Ok(Place {
            lane,
            waiting: Arc::clone(&self.waiting),
        })
    }

    /// Wakes every head of lane so it re-checks now (a key was added, a cooldown cleared, a permit refunded).
    pub fn wake_all(&self) {
        if self.depth() > 0 {
            self.changed.notify_waiters();
        }
    }

    /// Resolves at the next [`WaitQueue::wake_all`].
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

impl Place {
    /// Waits until this request heads its lane. Turns are granted in the order they were asked for.
    pub async fn turn(&self) -> Turn {
        Turn {
            _guard: Arc::clone(&self.lane.turn).lock_owned().await,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.lane.waiters.fetch_sub(1, Ordering::Relaxed);
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn depths_per_user_and_per_lane() {
        let q = WaitQueue::new(10);
        let _a = q.join("alice\u{0}m").unwrap();
        let _b = q.join("alice\u{0}m-large").unwrap();
        let _c = q.join("bob\u{0}m").unwrap();
        assert_eq!(q.depth(), 3);
        assert_eq!(q.depth_of("alice\u{0}"), 2);
        assert_eq!(q.depth_of("bob\u{0}"), 1);
        assert_eq!(q.depth_of("carol\u{0}"), 0);
        assert_eq!(q.lane_depth("alice\u{0}m"), 1);
        drop(_c);
        assert_eq!(q.depth_of("bob\u{0}"), 0);
    }

    #[test]
    fn bounded_and_counted() {
        let q = WaitQueue::new(2);
        let a = q.join("u/m").unwrap();
        let _b = q.join("u/other").unwrap();
        assert_eq!(q.join("u/m").unwrap_err(), QueueFull);
        assert_eq!(q.depth(), 2);
        assert!(q.has_waiters("u/m") && !q.has_waiters("v/m"));
        drop(a);
        assert_eq!(q.depth(), 1);
        assert!(!q.has_waiters("u/m"));
    }

    #[tokio::test(start_paused = true)]
    async fn turns_follow_arrival_order_and_leavers_do_not_block() {
        let q = Arc::new(WaitQueue::new(10));
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = q.join("lane").unwrap();
        let held = first.turn().await;
        let mut tasks = Vec::new();
        for i in 0..4 {
            let place = q.join("lane").unwrap();
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                if i == 2 {
                    // This client leaves while waiting.
                    let _ = tokio::time::timeout(Duration::from_millis(5), place.turn()).await;
                    return;
                }
                let _turn = place.turn().await;
                lock(&order).push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock(&order), vec![0, 1, 3]);
        assert_eq!(q.depth(), 0);
    }

    #[tokio::test]
    async fn wake_all_reaches_waiters() {
        let q = Arc::new(WaitQueue::new(10));
        let _place = q.join("lane").unwrap();
        let waiter = {
            let q = Arc::clone(&q);
            tokio::spawn(async move { q.changed().await })
        };
        tokio::task::yield_now().await;
        q.wake_all();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
