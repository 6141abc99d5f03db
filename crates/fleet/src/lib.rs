//! What the instances of one gateway fleet share on Redis (`REDIS_URL`): the outbound limit ledger (every permit
//! taken and settled by one Lua script, on Redis's clock, so N instances together send no more than a key's caps),
//! gateway keys' request and token counts, notices between instances (pub/sub: cooldowns, invalid keys, snapshot
//! changes, live events) and how many instances are alive.
//!
//! Redis is never on the critical path of availability: every call has a short deadline, and the first failure marks
//! the fleet *down*. While down, nothing here touches the network: `acquire` answers [`Shared::Unavailable`] at once,
//! notices are dropped, and the caller counts on its own (the server scales each cap to its share, 1/N). A heartbeat
//! every second reconnects; notices missed meanwhile are replaced by one [`Notice::Resync`].

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use router::Limits;
use tokio::sync::{mpsc, watch};

mod notice;
pub mod test_redis;

pub use notice::{Notice, Outcomes};

/// The pub/sub channel of notices.
const CHANNEL: &str = "freellmapi:notices";
/// The sorted set of live instances (score: last heartbeat, Redis time in ms).
const INSTANCES: &str = "freellmapi:instances";
/// An instance unseen for this long no longer counts.
const INSTANCE_TTL_MS: u64 = 10_000;
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Deadline of one call: past it the fleet is treated as down (a loopback or same-zone Redis answers in well under
/// a millisecond).
const CALL_DEADLINE: Duration = Duration::from_millis(250);
const CONNECT_DEADLINE: Duration = Duration::from_millis(1000);
/// Notices waiting to be published; past it new ones are dropped (and counted).
const OUTBOX: usize = 8192;

/// How the fleet looks from this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Redis answered the last call.
    pub up: bool,
    /// Instances alive at the last heartbeat (this one included; at least 1).
    pub instances: u32,
}

/// A permit taken from the shared ledger; settle it with [`Fleet::reconcile`] or [`Fleet::refund`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPermit {
    keys: Vec<String>,
    member: String,
    day: i64,
}

/// The shared ledger's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    Granted(SharedPermit),
    /// Capped fleet-wide; free again after this long.
    Capped(Duration),
    /// A per-minute token cap is smaller than the request.
    TooLarge,
    /// Redis is down or slow: the caller decides alone.
    Unavailable,
}

#[derive(Debug)]
pub struct Fleet {
    client: redis::Client,
    connection: Mutex<Option<MultiplexedConnection>>,
    up: AtomicBool,
    /// Redis answered at least once since start.
    was_up: AtomicBool,
    instances: AtomicU32,
    instance: String,
    sequence: AtomicU64,
    scripts: Scripts,
    outbox: mpsc::Sender<String>,
    health: watch::Sender<Health>,
    /// Notices not published (fleet down or outbox full).
    pub dropped_notices: AtomicU64,
}

#[derive(Debug)]
struct Scripts {
    acquire: Script,
    settle: Script,
    count: Script,
    heartbeat: Script,
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("REDIS_URL is not a Redis URL: {0}")]
    Url(String),
}

/// A notice from another instance.
pub type Inbox = mpsc::Receiver<Notice>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The Redis keys of one limit scope.
fn scope_keys(scope: &str, keys: &mut Vec<String>) {
    for suffix in ["m", "mt", "h", "d"] {
        keys.push(format!("freellmapi:l:{scope}:{suffix}"));
    }
}

fn cap<T: Into<i64>>(v: Option<T>) -> i64 {
    v.map_or(-1, Into::into)
}

impl Fleet {
    /// Starts the fleet link: connects (or starts down and keeps trying), subscribes to notices and beats every
    /// second. Background tasks end when the returned `Arc` is dropped.
    pub async fn start(url: &str) -> Result<(Arc<Fleet>, Inbox), FleetError> {
        let client = redis::Client::open(url).map_err(|e| FleetError::Url(e.to_string()))?;
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        let (inbox_tx, inbox) = mpsc::channel(OUTBOX);
        let instance = format!("{:016x}", rand::random::<u64>());
        let fleet = Arc::new(Fleet {
            client,
            connection: Mutex::new(None),
            up: AtomicBool::new(false),
            was_up: AtomicBool::new(false),
            instances: AtomicU32::new(1),
            instance,
            sequence: AtomicU64::new(0),
            scripts: Scripts {
                acquire: Script::new(include_str!("acquire.lua")),
                settle: Script::new(include_str!("settle.lua")),
                count: Script::new(include_str!("count.lua")),
                heartbeat: Script::new(include_str!("heartbeat.lua")),
            },
            outbox,
            health: watch::channel(Health {
                up: false,
                instances: 1,
            })
            .0,
            dropped_notices: AtomicU64::new(0),
        });
        fleet.beat().await;
        if !fleet.is_up() {
            tracing::warn!(
                "Redis is unreachable at start: serving with local limits (each cap divided by the instances last \
                 seen) until it answers"
            );
        }
        tokio::spawn(heartbeat_loop(Arc::downgrade(&fleet)));
        tokio::spawn(publisher(Arc::downgrade(&fleet), outgoing));
        tokio::spawn(subscriber(Arc::downgrade(&fleet), inbox_tx));
        Ok((fleet, inbox))
    }

    /// This instance's id (random per process).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> Health {
        *self.health.borrow()
    }

    /// Changes of [`Health`] (up/down, instance count).
    pub fn watch(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    fn connection(&self) -> Option<MultiplexedConnection> {
        if !self.is_up() {
            return None;
        }
        lock(&self.connection).clone()
    }

    fn down(&self, what: &str, error: &dyn std::fmt::Display) {
        *lock(&self.connection) = None;
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = %error,
                call = what,
                "Redis stopped answering: serving with local limits (each cap divided by the instances last seen) \
                 until it is back"
            );
            self.publish_health();
        }
    }

    fn publish_health(&self) {
        let health = Health {
            up: self.is_up(),
            instances: self.instances.load(Ordering::Relaxed).max(1),
        };
        self.health.send_if_modified(|h| {
            let changed = *h != health;
            *h = health;
            changed
        });
    }

    /// One heartbeat: reconnects if needed, marks this instance alive, counts the live ones.
    async fn beat(&self) {
        let mut connection = lock(&self.connection).clone();
        if connection.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_DEADLINE))
                .set_response_timeout(Some(CALL_DEADLINE));
            match self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(c) => connection = Some(c),
                Err(e) => {
                    self.down("connect", &e);
                    return;
                }
            }
        }
        let Some(mut connection) = connection else {
            return;
        };
        let alive: Result<u32, _> = self
            .scripts
            .heartbeat
            .key(INSTANCES)
            .arg(&self.instance)
            .arg(INSTANCE_TTL_MS)
            .invoke_async(&mut connection)
            .await;
        match alive {
            Ok(n) => {
                self.instances.store(n.max(1), Ordering::Relaxed);
                *lock(&self.connection) = Some(connection);
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        instances = n,
                        "Redis answers: limits are shared by the fleet"
                    );
                    if self.was_up.swap(true, Ordering::Relaxed) {
                        // Back after a gap: what this instance changed meanwhile never reached the others.
                        self.publish(&Notice::Resync);
                    }
                }
                self.publish_health();
            }
            Err(e) => self.down("heartbeat", &e),
        }
    }

    /// Takes one request and `tokens` from every scope (scope name, its caps), all or nothing, fleet-wide.
    /// Unlimited scopes are skipped; with none left the permit is empty and nothing is sent.
    pub async fn acquire(&self, scopes: &[(&str, Limits)], tokens: u64) -> Shared {
        let capped = || scopes.iter().filter(|(_, l)| !l.is_unlimited());
        if capped().next().is_none() {
            return Shared::Granted(SharedPermit {
                keys: Vec::new(),
                member: String::new(),
                day: 0,
            });
        }
        let Some(mut connection) = self.connection() else {
            return Shared::Unavailable;
        };
        let mut keys = Vec::with_capacity(scopes.len() * 4);
        let tag = format!(
            "{}-{}",
            self.instance,
            self.sequence.fetch_add(1, Ordering::Relaxed)
        );
        let mut call = self.scripts.acquire.prepare_invoke();
        call.arg(tokens).arg(&tag);
        for (scope, l) in capped() {
            scope_keys(scope, &mut keys);
            call.arg(cap(l.rpm))
                .arg(cap(l.rph))
                .arg(cap(l.rpd))
                .arg(cap(l.tpm.map(|v| v as i64)))
                .arg(cap(l.tpd.map(|v| v as i64)));
        }
        for k in &keys {
            call.key(k);
        }
        let answer: Result<(i64, i64, String), _> = call.invoke_async(&mut connection).await;
        match answer {
            Ok((1, day, member)) => Shared::Granted(SharedPermit { keys, member, day }),
            Ok((0, wait_ms, _)) => Shared::Capped(Duration::from_millis(wait_ms.max(1) as u64)),
            Ok(_) => Shared::TooLarge,
            Err(e) => {
                self.down("acquire", &e);
                Shared::Unavailable
            }
        }
    }

    /// Replaces a permit's reserved tokens with what the provider reported.
    pub async fn reconcile(&self, permit: &SharedPermit, actual_tokens: u64) {
        self.settle(permit, actual_tokens as i64).await;
    }

    /// Gives back a permit whose request never reached the provider.
    pub async fn refund(&self, permit: &SharedPermit) {
        self.settle(permit, -1).await;
    }

    async fn settle(&self, permit: &SharedPermit, tokens: i64) {
        if permit.keys.is_empty() {
            return;
        }
        let Some(mut connection) = self.connection() else {
            return;
        };
        let mut call = self.scripts.settle.prepare_invoke();
        for k in &permit.keys {
            call.key(k);
        }
        call.arg(&permit.member).arg(permit.day).arg(tokens);
        let done: Result<i64, _> = call.invoke_async(&mut connection).await;
        if let Err(e) = done {
            self.down("settle", &e);
        }
    }

    /// Adds tokens to a scope's count of today (checked by later `acquire`s against its `tpd`).
    pub async fn count_tokens(&self, scope: &str, tokens: u64) {
        let Some(mut connection) = self.connection() else {
            return;
        };
        let key = format!("freellmapi:l:{scope}:d");
        let done: Result<i64, _> = self
            .scripts
            .count
            .key(key)
            .arg(tokens)
            .invoke_async(&mut connection)
            .await;
        if let Err(e) = done {
            self.down("count", &e);
        }
    }

    /// Takes the fleet's one probe of a candidate whose rest ended, for `hold`; false when another instance holds
    /// it. While Redis is down every instance decides alone (true).
    pub async fn claim_probe(&self, key: &str, model: &str, hold: Duration) -> bool {
        let Some(mut connection) = self.connection() else {
            return true;
        };
        let taken: Result<Option<String>, _> = redis::cmd("SET")
            .arg(format!("freellmapi:probe:{key}:{model}"))
            .arg(&self.instance)
            .arg("NX")
            .arg("PX")
            .arg(hold.as_millis() as u64)
            .query_async(&mut connection)
            .await;
        match taken {
            Ok(answer) => answer.is_some(),
            Err(e) => {
                self.down("probe", &e);
                true
            }
        }
    }

    /// Tells the other instances (never this one) about `notice`. Never waits; dropped while the fleet is down.
    pub fn publish(&self, notice: &Notice) {
        if !self.is_up() {
            self.dropped_notices.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let text = notice.encode(&self.instance);
        if self.outbox.try_send(text).is_err() {
            self.dropped_notices.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn heartbeat_loop(weak: Weak<Fleet>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(fleet) = weak.upgrade() else { break };
        fleet.beat().await;
    }
}

async fn publisher(weak: Weak<Fleet>, mut outgoing: mpsc::Receiver<String>) {
    while let Some(text) = outgoing.recv().await {
        let Some(fleet) = weak.upgrade() else { break };
        let Some(mut connection) = fleet.connection() else {
            fleet.dropped_notices.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(text)
            .query_async(&mut connection)
            .await;
        if let Err(e) = sent {
            fleet.dropped_notices.fetch_add(1, Ordering::Relaxed);
            fleet.down("publish", &e);
        }
    }
}

/// Receives the other instances' notices; after any gap (start, Redis down) the first thing delivered is a
/// [`Notice::Resync`].
async fn subscriber(weak: Weak<Fleet>, inbox: mpsc::Sender<Notice>) {
    let mut first = true;
    loop {
        let (client, instance) = match weak.upgrade() {
            Some(f) => (f.client.clone(), f.instance.clone()),
            None => break,
        };
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(CONNECT_DEADLINE, subscribed).await {
            Ok(Ok(pubsub)) => {
                if !first && inbox.send(Notice::Resync).await.is_err() {
                    break;
                }
                first = false;
                let mut messages = pubsub.into_on_message();
                loop {
                    // Wake now and then to notice that the fleet was dropped.
                    match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
                        Ok(Some(msg)) => {
                            let Some(notice) = Notice::decode(msg.get_payload_bytes(), &instance)
                            else {
                                continue;
                            };
                            if inbox.send(notice).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(_) if weak.strong_count() == 0 => return,
                        Err(_) => {}
                    }
                }
                tracing::debug!("notice subscription ended; resubscribing");
            }
            Ok(Err(_)) | Err(_) => {
                first = false;
            }
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

#[cfg(test)]
mod tests;
