//! The live event bus: every request's life (started, each attempt, each failed attempt, growing output, finished)
//! and every key status change, published to the owner's WebSocket subscribers. Also the board of requests in
//! flight and per-user totals, from which a subscriber gets its first `snapshot`.
//!
//! Events are built only when someone listens: with no dashboard open, publishing costs one atomic load. Each event
//! is serialised once and shared by every subscriber; slow subscribers lose old events (and are told to resync)
//! rather than slowing requests down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

/// One serialised event and the user it belongs to.
#[derive(Debug, Clone)]
pub struct Event {
    pub user_id: Arc<str>,
    pub json: Arc<str>,
}

/// A request in flight, as the live dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InFlight {
    pub req_id: Arc<str>,
    #[serde(skip)]
    pub user_id: Arc<str>,
    pub requested_model: String,
    pub stream: bool,
    pub started_at_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub attempt: u32,
    pub provider: Option<&'static str>,
    pub model: Option<Arc<str>>,
    pub key_id: Option<Arc<str>>,
    /// The outbound proxy's label; `None` while direct.
    pub proxy: Option<Arc<str>>,
    /// While the request waits in the queue: when the soonest candidate frees up (Unix ms; `0` when it waits for
    /// its turn behind earlier requests). `None` while it is routed or running.
    pub queued_until_ms: Option<u64>,
}

/// Per-user counters since the server started.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub success: u64,
    pub errors: u64,
    pub canceled: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    in_flight: Mutex<HashMap<Arc<str>, InFlight>>,
    totals: Mutex<HashMap<Arc<str>, Totals>>,
    published: AtomicU64,
    /// In a fleet: where events go for the users watching on another instance.
    fleet: OnceLock<Arc<fleet::Fleet>>,
    /// Users with a live dashboard open on another instance, until when (renewed while it stays open).
    watched_elsewhere: Mutex<HashMap<Arc<str>, Instant>>,
    any_watched_elsewhere: AtomicBool,
}

/// How long another instance's "watching" notice counts (it is repeated every [`WATCH_RENEWAL`]).
const WATCH_TTL: Duration = Duration::from_secs(30);
/// How often an instance with a live dashboard open repeats that it is watching.
pub const WATCH_RENEWAL: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender,
            in_flight: Mutex::new(HashMap::new()),
            totals: Mutex::new(HashMap::new()),
            published: AtomicU64::new(0),
            fleet: OnceLock::new(),
            watched_elsewhere: Mutex::new(HashMap::new()),
            any_watched_elsewhere: AtomicBool::new(false),
        }
    }

    /// Joins a fleet: events of users watching on other instances are sent to them.
    pub fn forward_to(&self, fleet: Arc<fleet::Fleet>) {
        let _ = self.fleet.set(fleet);
    }

    /// Another instance has a live dashboard of `user` open.
    pub fn watched_elsewhere(&self, user: &str, now: Instant) {
        lock(&self.watched_elsewhere).insert(Arc::from(user), now + WATCH_TTL);
        self.any_watched_elsewhere.store(true, Ordering::Relaxed);
    }

    /// An event another instance published for `user`: to this instance's subscribers only.
    pub fn relay_remote(&self, user: &str, json: String) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Event {
                user_id: Arc::from(user),
                json: Arc::from(json),
            });
        }
    }

    /// Whether `user` has a live dashboard open on another instance (expired marks are dropped on the way).
    fn is_watched_elsewhere(&self, user: &str) -> bool {
        if !self.any_watched_elsewhere.load(Ordering::Relaxed) {
            return false;
        }
        let mut watched = lock(&self.watched_elsewhere);
        let now = Instant::now();
        let live = watched.get(user).is_some_and(|until| *until > now);
        if !live && watched.remove(user).is_some() {
            watched.retain(|_, until| *until > now);
            self.any_watched_elsewhere
                .store(!watched.is_empty(), Ordering::Relaxed);
        }
        live
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Whether anyone listens (then events are worth building).
    pub fn listening(&self) -> bool {
        self.sender.receiver_count() > 0 || self.any_watched_elsewhere.load(Ordering::Relaxed)
    }

    /// Publishes `kind` with the fields `build` returns, if anyone listens.
    pub fn publish(&self, user_id: &Arc<str>, kind: &str, build: impl FnOnce() -> Value) {
        if !self.listening() {
            return;
        }
        let mut body = build();
        if let Value::Object(map) = &mut body {
            map.insert("type".into(), Value::String(kind.to_owned()));
        }
        self.published.fetch_add(1, Ordering::Relaxed);
        let json = body.to_string();
        if let Some(fleet) = self.fleet.get() {
            if self.is_watched_elsewhere(user_id) {
                fleet.publish(&fleet::Notice::Live {
                    user: user_id.to_string(),
                    event: json.clone(),
                });
            }
        }
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Event {
                user_id: Arc::clone(user_id),
                json: Arc::from(json),
            });
        }
    }

    /// A request began.
    pub fn started(&self, entry: InFlight) {
        let user = Arc::clone(&entry.user_id);
        let event = self.listening().then(|| {
            serde_json::json!({
                "req_id": entry.req_id,
                "requested_model": entry.requested_model,
                "stream": entry.stream,
                "input_tokens": entry.input_tokens,
                "ts_ms": entry.started_at_ms,
            })
        });
        lock(&self.in_flight).insert(Arc::clone(&entry.req_id), entry);
        if let Some(event) = event {
            self.publish(&user, "request.started", || event);
        }
    }

    /// An attempt at a candidate began (or moved to another proxy: same attempt number, new `proxy`).
    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        &self,
        user: &Arc<str>,
        req_id: &Arc<str>,
        attempt: u32,
        provider: &'static str,
        model: &Arc<str>,
        key_id: &Arc<str>,
        proxy: Option<&Arc<str>>,
    ) {
        if let Some(entry) = lock(&self.in_flight).get_mut(req_id) {
            entry.queued_until_ms = None;
            entry.attempt = attempt;
            entry.provider = Some(provider);
            entry.model = Some(Arc::clone(model));
            entry.key_id = Some(Arc::clone(key_id));
            entry.proxy = proxy.cloned();
        }
        self.publish(user, "request.attempt", || {
            serde_json::json!({
                "req_id": req_id, "attempt": attempt, "provider": provider, "model": model,
                "key_id": key_id, "proxy": proxy, "ts_ms": now_ms(),
            })
        });
    }

    /// The request waits in the queue until about `until_ms` (`0`: for its turn behind earlier requests).
    pub fn queued(&self, user: &Arc<str>, req_id: &Arc<str>, until_ms: u64) {
        if let Some(entry) = lock(&self.in_flight).get_mut(req_id) {
            entry.queued_until_ms = Some(until_ms);
        }
        self.publish(
            user,
            "request.queued",
            || serde_json::json!({ "req_id": req_id, "until_ms": until_ms, "ts_ms": now_ms() }),
        );
    }

    /// The output of a streaming request grew.
    pub fn tokens(&self, user: &Arc<str>, req_id: &Arc<str>, output_tokens: u64) {
        if let Some(entry) = lock(&self.in_flight).get_mut(req_id) {
            entry.output_tokens = output_tokens;
        }
        self.publish(
            user,
            "request.tokens",
            || serde_json::json!({ "req_id": req_id, "output_tokens": output_tokens }),
        );
    }

    /// A request ended (`status`: success, error or canceled).
    pub fn finished(&self, user: &Arc<str>, req_id: &Arc<str>, finished: Finished) {
        lock(&self.in_flight).remove(req_id);
        {
            let mut totals = lock(&self.totals);
            let t = totals.entry(Arc::clone(user)).or_default();
            t.requests += 1;
            match finished.status {
                "success" => t.success += 1,
                "canceled" => t.canceled += 1,
                _ => t.errors += 1,
            }
            t.tokens_in += finished.input_tokens;
            t.tokens_out += finished.output_tokens;
        }
        self.publish(user, "request.finished", || {
            serde_json::json!({
                "req_id": req_id, "status": finished.status, "provider": finished.provider,
                "model": finished.model.as_deref(), "latency_ms": finished.latency_ms,
                "input_tokens": finished.input_tokens, "output_tokens": finished.output_tokens,
                "attempts": finished.attempts, "error_code": finished.error_code,
            })
        });
    }

    /// The requests of `user` in flight now.
    pub fn in_flight_of(&self, user: &str) -> Vec<InFlight> {
        let mut rows: Vec<InFlight> = lock(&self.in_flight)
            .values()
            .filter(|e| &*e.user_id == user)
            .cloned()
            .collect();
        rows.sort_by_key(|e| e.started_at_ms);
        rows
    }

    pub fn totals_of(&self, user: &str) -> Totals {
        lock(&self.totals).get(user).copied().unwrap_or_default()
    }

    /// Requests in flight over all users.
    pub fn in_flight_count(&self) -> usize {
        lock(&self.in_flight).len()
    }
}

/// How a request ended, for the bus.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: &'static str,
    pub provider: Option<&'static str>,
    pub model: Option<Arc<str>>,
    pub latency_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub attempts: u32,
    pub error_code: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(req: &str, user: &str) -> InFlight {
        InFlight {
            req_id: Arc::from(req),
            user_id: Arc::from(user),
            requested_model: "m".into(),
            stream: true,
            started_at_ms: 1,
            input_tokens: 10,
            output_tokens: 0,
            attempt: 0,
            provider: None,
            model: None,
            key_id: None,
            proxy: None,
            queued_until_ms: None,
        }
    }

    #[tokio::test]
    async fn events_carry_their_user_and_the_board_follows_requests() {
        let bus = EventBus::new(16);
        let mut rx = bus.subscribe();
        let (u1, u2): (Arc<str>, Arc<str>) = (Arc::from("u1"), Arc::from("u2"));
        bus.started(entry("r1", "u1"));
        bus.started(entry("r2", "u2"));
        bus.tokens(&u1, &Arc::from("r1"), 5);
        assert_eq!(bus.in_flight_of("u1")[0].output_tokens, 5);
        assert_eq!(bus.in_flight_of("u2").len(), 1);
        bus.finished(
            &u1,
            &Arc::from("r1"),
            Finished {
                status: "success",
                provider: Some("groq"),
                model: Some("m".into()),
                latency_ms: 3,
                input_tokens: 10,
                output_tokens: 5,
                attempts: 1,
                error_code: None,
            },
        );
        assert!(bus.in_flight_of("u1").is_empty());
        assert_eq!(bus.totals_of("u1").tokens_out, 5);
        assert_eq!(bus.totals_of("u2").requests, 0);
        let first = rx.recv().await.unwrap();
        assert_eq!(&*first.user_id, "u1");
        assert!(first.json.contains("\"type\":\"request.started\""));
        let second = rx.recv().await.unwrap();
        assert_eq!(&*second.user_id, "u2");
        let _ = u2;
    }

    #[test]
    fn nothing_is_built_without_listeners() {
        let bus = EventBus::new(4);
        let user: Arc<str> = Arc::from("u");
        bus.publish(&user, "x", || unreachable!("built without a listener"));
    }
}
