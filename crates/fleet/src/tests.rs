use std::time::{Duration, Instant};

use super::*;
use crate::test_redis::TestRedis;

fn rpm(n: u32) -> Limits {
    Limits {
        rpm: Some(n),
        ..Limits::default()
    }
}

fn granted(answer: Shared) -> SharedPermit {
    match answer {
        Shared::Granted(p) => p,
        other => panic!("expected a permit, got {other:?}"),
    }
}

async fn next_notice(inbox: &mut Inbox) -> Notice {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv())
        .await
        .expect("a notice within 5 s")
        .expect("inbox open")
}

#[tokio::test]
async fn two_instances_share_one_requests_per_minute_cap() {
    let Some(redis) = TestRedis::try_start() else {
        return;
    };
    let (a, _) = Fleet::start(&redis.url()).await.unwrap();
    let (b, _) = Fleet::start(&redis.url()).await.unwrap();
    assert!(a.is_up() && b.is_up());
    let scopes = [("key1", rpm(3)), ("key1\0model", Limits::default())];
    let first = granted(a.acquire(&scopes, 10).await);
    granted(b.acquire(&scopes, 10).await);
    granted(a.acquire(&scopes, 10).await);
    match b.acquire(&scopes, 10).await {
        Shared::Capped(wait) => assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        ),
        other => panic!("the fourth request of the minute must be capped: {other:?}"),
    }
    // A request that never reached the provider is given back, fleet-wide.
    a.refund(&first).await;
    granted(b.acquire(&scopes, 10).await);
    // Another scope is counted apart.
    granted(b.acquire(&[("key2", rpm(1))], 1).await);
}

#[tokio::test]
async fn tokens_are_reserved_then_reconciled_across_instances() {
    let Some(redis) = TestRedis::try_start() else {
        return;
    };
    let (a, _) = Fleet::start(&redis.url()).await.unwrap();
    let (b, _) = Fleet::start(&redis.url()).await.unwrap();
    let tpm = Limits {
        tpm: Some(1000),
        tpd: Some(5000),
        ..Limits::default()
    };
    let scopes = [("k", tpm)];
    assert_eq!(a.acquire(&scopes, 1001).await, Shared::TooLarge);
    let big = granted(a.acquire(&scopes, 800).await);
    assert!(matches!(b.acquire(&scopes, 300).await, Shared::Capped(_)));
    // The provider reported 500: 300 fit again.
    a.reconcile(&big, 500).await;
    granted(b.acquire(&scopes, 300).await);
    assert!(matches!(b.acquire(&scopes, 300).await, Shared::Capped(_)));
    // Tokens counted after the fact (a gateway key's) go to the same day total.
    b.count_tokens("k", 4500).await;
    match a.acquire(&scopes, 100).await {
        Shared::Capped(wait) => assert!(wait > Duration::from_secs(60), "until midnight: {wait:?}"),
        other => panic!("the day's tokens are spent: {other:?}"),
    }
}

#[tokio::test]
async fn notices_reach_the_other_instances_only() {
    let Some(redis) = TestRedis::try_start() else {
        return;
    };
    let (a, mut a_inbox) = Fleet::start(&redis.url()).await.unwrap();
    let (_b, mut b_inbox) = Fleet::start(&redis.url()).await.unwrap();
    // The subscriptions are made in the background: publish until the first one arrives.
    let cooled = Notice::Cooled {
        key: "k".into(),
        model: "m".into(),
        ms: 30_000,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        a.publish(&cooled);
        if let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(100), b_inbox.recv()).await
        {
            assert_eq!(n, cooled);
            break;
        }
        assert!(Instant::now() < deadline, "no notice arrived");
    }
    a.publish(&Notice::Reload);
    loop {
        // Earlier repeats of the first notice may still be in flight.
        if next_notice(&mut b_inbox).await == Notice::Reload {
            break;
        }
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), a_inbox.recv())
            .await
            .is_err(),
        "an instance never receives its own notices"
    );
    // Each instance counts the live ones at its heartbeat (every second).
    let mut health = a.watch();
    tokio::time::timeout(
        Duration::from_secs(3),
        health.wait_for(|h| h.instances == 2),
    )
    .await
    .expect("two instances seen within 3 s")
    .unwrap();
}

#[tokio::test]
async fn redis_down_answers_unavailable_at_once_and_comes_back() {
    let Some(mut redis) = TestRedis::try_start() else {
        return;
    };
    let (a, mut inbox) = Fleet::start(&redis.url()).await.unwrap();
    granted(a.acquire(&[("k", rpm(5))], 1).await);
    redis.kill();
    // The first call after the loss fails (and marks the fleet down); later ones do not touch the network.
    let started = Instant::now();
    assert_eq!(a.acquire(&[("k", rpm(5))], 1).await, Shared::Unavailable);
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(!a.is_up());
    let started = Instant::now();
    assert_eq!(a.acquire(&[("k", rpm(5))], 1).await, Shared::Unavailable);
    assert!(started.elapsed() < Duration::from_millis(5));
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.is_up() {
        assert!(Instant::now() < deadline, "not back within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An empty Redis: the window starts again.
    granted(a.acquire(&[("k", rpm(5))], 1).await);
    // The subscription came back too, and says that notices may have been missed.
    assert_eq!(next_notice(&mut inbox).await, Notice::Resync);
}
