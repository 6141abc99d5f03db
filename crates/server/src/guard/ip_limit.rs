//! Per-client-address fixed-window limit on `/v1` (`PROXY_RATE_LIMIT_RPM`). Sharded so concurrent requests rarely
//! contend on one lock; tracking is capped so a flood of addresses cannot grow memory without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::time::{Duration, Instant};

const SHARDS: usize = 16;
const MAX_TRACKED_PER_SHARD: usize = 4096;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct IpLimiter {
    per_minute: u32,
    shards: Vec<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

impl IpLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Counts one request; `Err(seconds until the window resets)` when over the limit.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let shard = match ip {
            IpAddr::V4(v4) => v4.octets()[3] as usize,
            IpAddr::V6(v6) => v6.octets()[15] as usize,
        } % SHARDS;
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_TRACKED_PER_SHARD && !map.contains_key(&ip) {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            let reset = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(reset.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_then_resets() {
        let l = IpLimiter::new(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.check(ip, Instant::now()).is_ok());
        assert!(l.check(ip, Instant::now()).is_ok());
        assert_eq!(l.check(ip, Instant::now()), Err(60));
        assert!(l.check(other, Instant::now()).is_ok());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(l.check(ip, Instant::now()).is_ok());
    }

    #[test]
    fn zero_disables() {
        let l = IpLimiter::new(0);
        for _ in 0..1000 {
            assert!(l.check("10.0.0.1".parse().unwrap(), Instant::now()).is_ok());
        }
    }
}
