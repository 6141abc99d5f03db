//! Failed-login throttling, in memory: per account (username) and per client address. After a few failures in a
//! row the subject is locked for a window that doubles with every further failure (capped); a success clears the
//! account's record. Checked before the password is hashed, so a locked-out guesser costs no argon2 work. Tracking
//! is capped so a flood of usernames or addresses cannot grow memory without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::time::{Duration, Instant};

/// Failures allowed per account before a lockout.
pub const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Failures allowed per client address (several people may share one address) before a lockout.
pub const ADDRESS_FREE_FAILURES: u32 = 20;
/// First lockout; doubles with each further failure.
const BASE_LOCKOUT: Duration = Duration::from_secs(30);
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// A record untouched this long is forgotten (the failures in a row start again).
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
struct Book<K> {
    free_failures: u32,
    records: Mutex<HashMap<K, Record>>,
}

impl<K: std::hash::Hash + Eq + Clone> Book<K> {
    fn new(free_failures: u32) -> Self {
        Self {
            free_failures,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Record>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn locked_for(&self, key: &K, now: Instant) -> Option<Duration> {
        let records = self.lock();
        let until = records.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&self, key: K, now: Instant) {
        let mut records = self.lock();
        if records.len() >= MAX_TRACKED && !records.contains_key(&key) {
            records.retain(|_, r| {
                now.duration_since(r.last_failure) < FORGET_AFTER
                    || r.locked_until.is_some_and(|u| u > now)
            });
            if records.len() >= MAX_TRACKED {
                // Still full of fresh records: drop the oldest one.
                if let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(k, _)| k.clone())
                {
                    records.remove(&oldest);
                }
            }
        }
        let record = records.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.duration_since(record.last_failure) >= FORGET_AFTER {
            record.failures = 0;
        }
        record.failures += 1;
        record.last_failure = now;
        if record.failures >= self.free_failures {
            let doublings = (record.failures - self.free_failures).min(10);
            let lockout = BASE_LOCKOUT
                .saturating_mul(1u32 << doublings)
                .min(MAX_LOCKOUT);
            record.locked_until = Some(now + lockout);
        }
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

#[derive(Debug)]
pub struct LoginThrottle {
    accounts: Book<String>,
    addresses: Book<IpAddr>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            accounts: Book::new(ACCOUNT_FREE_FAILURES),
            addresses: Book::new(ADDRESS_FREE_FAILURES),
        }
    }
}

fn account_key(username: &str) -> String {
    username.trim().to_lowercase()
}

impl LoginThrottle {
    /// `Err(wait)` when this account or this address is locked out.
    pub fn check(&self, username: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let account = self.accounts.locked_for(&account_key(username), now);
        let address = self.addresses.locked_for(&ip, now);
        match account.max(address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn failed(&self, username: &str, ip: IpAddr, now: Instant) {
        self.accounts.fail(account_key(username), now);
        self.addresses.fail(ip, now);
    }

    /// A successful login clears the account's failures (the address keeps its record: one right password must not
    /// reset a guessing run against other accounts).
    pub fn succeeded(&self, username: &str) {
        self.accounts.clear(&account_key(username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[tokio::test(start_paused = true)]
    async fn locks_after_free_failures_and_doubles() {
        let t = LoginThrottle::default();
        for _ in 0..ACCOUNT_FREE_FAILURES - 1 {
            t.failed("Alice", IP, Instant::now());
            assert!(t.check("alice", IP, Instant::now()).is_ok());
        }
        t.failed("alice", IP, Instant::now());
        assert_eq!(t.check("ALICE", IP, Instant::now()), Err(BASE_LOCKOUT));
        // Another account from another address is not affected.
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(t.check("bob", other, Instant::now()).is_ok());
        tokio::time::advance(BASE_LOCKOUT).await;
        assert!(t.check("alice", IP, Instant::now()).is_ok());
        t.failed("alice", IP, Instant::now());
        assert_eq!(t.check("alice", IP, Instant::now()), Err(BASE_LOCKOUT * 2));
        t.succeeded("alice");
        assert!(t.check("alice", IP, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn address_locks_across_accounts() {
        let t = LoginThrottle::default();
        for i in 0..ADDRESS_FREE_FAILURES {
            t.failed(&format!("user{i}"), IP, Instant::now());
        }
        assert!(t.check("someone-else", IP, Instant::now()).is_err());
        assert!(t
            .check("someone-else", "10.9.9.9".parse().unwrap(), Instant::now())
            .is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn lockout_is_capped() {
        let t = LoginThrottle::default();
        for _ in 0..40 {
            t.failed("a", IP, Instant::now());
        }
        assert_eq!(t.check("a", IP, Instant::now()), Err(MAX_LOCKOUT));
    }
}
