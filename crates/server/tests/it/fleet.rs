//! Three gateway instances on one PostgreSQL database and one Redis (a private `redis-server` per test), requests
//! spread round-robin: limits hold fleet-wide, what one instance learns or is told reaches the others within a
//! second, and losing Redis fails no request. Skipped, loudly, without `FREELLMAPI_TEST_POSTGRES_URL`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fleet::test_redis::TestRedis;
use futures_util::StreamExt;
use mock_provider::MockProvider;
use serde_json::{json, Value};
use server::AppState;
use store::{Cipher, GatewayKeyPolicy, KeyLimits, ProviderKeyPatch, Store};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{fast_config, insert_key, PROVIDER_SECRET};

struct Instance {
    url: String,
    state: AppState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

struct Fleet {
    redis: TestRedis,
    mock: MockProvider,
    store: Store,
    user_id: String,
    key: String,
    gateway_key_id: String,
    /// The provider keys' ids, in the order given.
    key_ids: Vec<String>,
    instances: Vec<Instance>,
    http: reqwest::Client,
}

const ENCRYPTION_KEY: [u8; 32] = [7u8; 32];

/// A fleet of `n` instances whose admin owns one provider key per `(scenario, models, limits)`.
async fn fleet(n: usize, keys: &[(&str, &[&str], KeyLimits)]) -> Option<Fleet> {
    let Some(base) = store::testing::postgres_base() else {
        eprintln!(
            "\n!!!! NOTICE: FREELLMAPI_TEST_POSTGRES_URL is not set; the fleet tests (Redis + PostgreSQL) did NOT run !!!!\n"
        );
        return None;
    };
    let redis = TestRedis::try_start()?;
    let database = store::testing::fresh_postgres_database(&base)
        .await
        .unwrap();
    let mock = MockProvider::start().await.unwrap();
    let store = Store::open(&database, Cipher::new(&ENCRYPTION_KEY))
        .await
        .unwrap();
    let user = store
        .create_user("admin", "admin-password-1", "admin")
        .await
        .unwrap();
    let mut key_ids = Vec::new();
    for (scenario, models, limits) in keys {
        let id = insert_key(
            &store,
            &user.id,
            "custom",
            &mock.base_url(scenario),
            Some(PROVIDER_SECRET.to_owned()),
            models,
        )
        .await;
        if *limits != KeyLimits::default() {
            let patch = ProviderKeyPatch {
                limits: Some(*limits),
                ..ProviderKeyPatch::default()
            };
            store
                .update_provider_key(&user.id, &id, &patch)
                .await
                .unwrap()
                .unwrap();
        }
        key_ids.push(id);
    }
    let (row, key) = store
        .create_gateway_key(&user.id, "fleet", None, None)
        .await
        .unwrap();
    let mut instances = Vec::new();
    for _ in 0..n {
        let config = server::ServerConfig {
            redis_url: Some(redis.url()),
            ..fast_config()
        };
        let own_store = Store::open(&database, Cipher::new(&ENCRYPTION_KEY))
            .await
            .unwrap();
        let state = AppState::new(config, own_store).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = server::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await;
        });
        instances.push(Instance {
            url: format!("http://{addr}"),
            state,
            _shutdown: tx,
        });
    }
    // The notice subscriptions are made in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Some(Fleet {
        redis,
        mock,
        store,
        user_id: user.id,
        key,
        gateway_key_id: row.id,
        key_ids,
        instances,
        http: reqwest::Client::new(),
    })
}

impl Fleet {
    async fn chat(&self, instance: usize, model: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!(
                "{}/v1/chat/completions",
                self.instances[instance].url
            ))
            .bearer_auth(&self.key)
            .json(&json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `total` requests for `model`, all at once, spread round-robin over the instances; the statuses.
    async fn burst(&self, model: &str, total: usize) -> Vec<(u16, Value)> {
        let n = self.instances.len();
        futures_util::future::join_all((0..total).map(|i| self.chat(i % n, model))).await
    }

    async fn ping(&self, instance: usize) -> Value {
        self.http
            .get(format!("{}/api/ping", self.instances[instance].url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn successes(answers: &[(u16, Value)]) -> usize {
    answers.iter().filter(|(s, _)| *s == 200).count()
}

async fn within(limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < limit,
            "not within {limit:?} (waited {:?})",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_key_with_rpm_10_gets_10_upstream_requests_a_minute_over_three_instances() {
    let rpm10 = KeyLimits {
        rpm: Some(10),
        ..KeyLimits::default()
    };
    let Some(f) = fleet(3, &[("ok+id1", &["m"], rpm10)]).await else {
        return;
    };
    let answers = f.burst("m", 30).await;
    assert_eq!(
        successes(&answers),
        10,
        "alone, each instance would have sent 10: {answers:?}"
    );
    assert_eq!(f.mock.hits("ok+id1"), 10);
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
    }
    // Every instance now plans the key as capped (held until the window frees), without asking Redis again.
    let more = f.burst("m", 6).await;
    assert_eq!(successes(&more), 0);
    assert_eq!(f.mock.hits("ok+id1"), 10);
}

#[tokio::test]
async fn a_refused_credential_seen_by_one_instance_takes_the_key_out_on_all() {
    let none = KeyLimits::default();
    let Some(f) = fleet(3, &[("auth=other", &["m"], none), ("ok+id2", &["m"], none)]).await else {
        return;
    };
    let bad = f.key_ids[0].clone();
    // Instance 0 meets the 401 (the request fails over to the good key).
    for _ in 0..10 {
        assert_eq!(f.chat(0, "m").await.0, 200);
        if f.mock.hits("auth=other") > 0 {
            break;
        }
    }
    assert_eq!(f.mock.hits("auth=other"), 1);
    let took = within(Duration::from_secs(1), async || {
        f.instances
            .iter()
            .all(|i| i.state.books.cooldowns.is_invalid(&bad))
    })
    .await;
    eprintln!("invalid mark on every instance after {took:?}");
    for i in 0..12 {
        assert_eq!(f.chat(1 + i % 2, "m").await.0, 200);
    }
    assert_eq!(
        f.mock.hits("auth=other"),
        1,
        "the other instances never tried the refused key"
    );
}

#[tokio::test]
async fn admin_changes_through_one_instance_apply_on_all_within_a_second() {
    let none = KeyLimits::default();
    let Some(f) = fleet(3, &[("ok+id3", &["m"], none)]).await else {
        return;
    };
    // A new key (and so a new model), stored and announced by instance 0, serves through instance 2.
    assert_eq!(f.chat(2, "fresh").await.0, 404);
    insert_key(
        &f.store,
        &f.user_id,
        "custom",
        &f.mock.base_url("ok+id4"),
        Some(PROVIDER_SECRET.to_owned()),
        &["fresh"],
    )
    .await;
    f.instances[0].state.reload().await.unwrap();
    let took = within(Duration::from_secs(1), async || {
        f.chat(2, "fresh").await.0 == 200
    })
    .await;
    eprintln!("new key served by another instance after {took:?}");

    // A gateway key's requests-per-minute limit holds over the fleet.
    let policy = GatewayKeyPolicy {
        rpm_limit: Some(6),
        tpd_limit: None,
        allowed_models: None,
    };
    f.store
        .set_gateway_key_policy(&f.user_id, &f.gateway_key_id, &policy)
        .await
        .unwrap();
    f.instances[1].state.reload().await.unwrap();
    within(Duration::from_secs(1), async || {
        f.instances.iter().all(|i| {
            i.state
                .snapshot
                .load()
                .gateway_keys
                .values()
                .all(|k| k.rpm_limit == Some(6))
        })
    })
    .await;
    let answers = f.burst("m", 12).await;
    assert_eq!(successes(&answers), 6, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429);
        assert_eq!(body["error"]["code"], "gateway_key_rate_limited", "{body}");
    }
}

#[tokio::test]
async fn the_live_feed_of_one_instance_shows_requests_served_by_another() {
    let none = KeyLimits::default();
    let Some(f) = fleet(2, &[("ok+id5", &["m"], none)]).await else {
        return;
    };
    let r = f
        .http
        .post(format!("{}/api/auth/login", f.instances[1].url))
        .json(&json!({ "username": "admin", "password": "admin-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let mut request = (f.instances[1].url.replace("http://", "ws://") + "/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // Instance 0 hears that the user watches on instance 1.
    within(Duration::from_secs(2), async || {
        f.instances[0].state.events.listening()
    })
    .await;
    let r = f
        .http
        .post(format!("{}/v1/chat/completions", f.instances[0].url))
        .bearer_auth(&f.key)
        .header("x-request-id", "served-by-instance-0")
        .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no request.finished arrived");
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let event: Value = serde_json::from_str(&text).unwrap();
        if event["type"] == "request.finished" {
            assert_eq!(event["req_id"], "served-by-instance-0", "{event}");
            assert_eq!(event["status"], "success");
            break;
        }
    }
}

#[tokio::test]
async fn losing_redis_fails_no_request_and_limits_are_shared_again_when_it_is_back() {
    let rpm6 = KeyLimits {
        rpm: Some(6),
        ..KeyLimits::default()
    };
    let none = KeyLimits::default();
    let Some(mut f) = fleet(
        3,
        &[("ok+id6", &["m"], none), ("ok+id7", &["capped"], rpm6)],
    )
    .await
    else {
        return;
    };
    assert_eq!(f.ping(0).await["degraded"], false);
    // Each instance counts the live ones at its heartbeat (every second).
    within(Duration::from_secs(3), async || {
        f.instances
            .iter()
            .all(|i| i.state.fleet_health().is_some_and(|h| h.instances == 3))
    })
    .await;
    let first = f.burst("m", 15).await;
    f.redis.kill();
    let during = f.burst("m", 30).await;
    assert_eq!(successes(&first) + successes(&during), 45, "{during:?}");
    for i in 0..3 {
        within(Duration::from_secs(3), async || {
            f.ping(i).await["degraded"] == true
        })
        .await;
        // Counting alone, each instance takes a third of every cap.
        assert_eq!(f.instances[i].state.books.limits.share(), 3);
    }
    let capped_alone = f.burst("capped", 12).await;
    assert_eq!(
        successes(&capped_alone),
        6,
        "3 instances × (6 / 3): {capped_alone:?}"
    );
    f.redis.restart();
    for i in 0..3 {
        within(Duration::from_secs(3), async || {
            f.ping(i).await["degraded"] == false
        })
        .await;
        assert_eq!(f.instances[i].state.books.limits.share(), 1);
    }
    assert_eq!(successes(&f.burst("m", 15).await), 15);
}

#[tokio::test]
async fn failed_logins_count_over_the_fleet() {
    let Some(f) = fleet(3, &[]).await else {
        return;
    };
    let login = |i: usize, password: &'static str| {
        f.http
            .post(format!("{}/api/auth/login", f.instances[i].url))
            .json(&json!({ "username": "admin", "password": password }))
            .send()
    };
    // Five wrong passwords spread over three instances: alone, none of them would have seen enough to lock.
    for i in 0..5 {
        assert_eq!(login(i % 3, "wrong-password").await.unwrap().status(), 401);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = login(2, "admin-password-1").await.unwrap();
    assert_eq!(r.status(), 429, "the account is locked on every instance");
    assert!(r.headers().contains_key("retry-after"));
}

/// When a candidate's rest ends, the fleet sends it one probe, not one per instance.
#[tokio::test]
async fn a_rested_candidate_gets_one_probe_from_the_whole_fleet() {
    let none = KeyLimits::default();
    // The first hit answers 429 with Retry-After: 1; later ones succeed, slowly enough to overlap.
    let Some(f) = fleet(3, &[("429+ra1+first1+slow300", &["m"], none)]).await else {
        return;
    };
    let scenario = "429+ra1+first1+slow300";
    let key = f.key_ids[0].clone();
    assert_eq!(f.chat(0, "m").await.0, 429);
    assert_eq!(f.mock.hits(scenario), 1);
    within(Duration::from_secs(1), async || {
        f.instances.iter().all(|i| {
            i.state
                .books
                .cooldowns
                .cooling_until((&key, "m"), tokio::time::Instant::now())
                .is_some()
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answers = f.burst("m", 6).await;
    assert_eq!(
        f.mock.hits(scenario),
        2,
        "one probe over three instances: {answers:?}"
    );
    assert_eq!(successes(&answers), 1, "{answers:?}");
}

/// What one instance learns about a candidate's reliability and speed reaches the others' scores within seconds.
#[tokio::test]
async fn scores_learned_on_one_instance_reach_the_others() {
    let none = KeyLimits::default();
    let Some(f) = fleet(2, &[("ok+slow150+id8", &["m"], none)]).await else {
        return;
    };
    let key = f.key_ids[0].clone();
    for _ in 0..4 {
        assert_eq!(f.chat(0, "m").await.0, 200);
    }
    let inputs = |i: usize| {
        let mut out = Vec::new();
        f.instances[i].state.books.scores.inputs(
            [(key.as_str(), "m", 1.0)].into_iter(),
            tokio::time::Instant::now(),
            &mut out,
        );
        out[0]
    };
    within(Duration::from_secs(3), async || inputs(1).samples > 3.0).await;
    let seen = inputs(1);
    assert!(
        seen.latency_ms.is_some_and(|ms| ms >= 150.0),
        "instance 1 never served the key, yet knows its speed: {seen:?}"
    );
    assert_eq!(f.mock.hits("ok+slow150+id8"), 4);
}
