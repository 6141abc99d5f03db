//! Shared application state: one `Arc` holding the configuration, the swapped snapshot, the cooldown book, the
//! upstream HTTP client, the request-log writer and the client-address limiter.

use std::sync::Arc;

use arc_swap::ArcSwap;
use router::{RoutingBooks, WaitQueue};
use store::Store;

use crate::config::ServerConfig;
use crate::guard::ip_limit::IpLimiter;
use crate::guard::login_throttle::LoginThrottle;
use crate::proxy::ProxyPool;
use crate::runtime::events::EventBus;
use crate::runtime::gateway_usage::GatewayUsageBook;
use crate::runtime::request_log::{RequestLogWriter, Retention};
use crate::runtime::snapshot::Snapshot;

#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: ServerConfig,
    pub store: Store,
    pub snapshot: ArcSwap<Snapshot>,
    /// Cooldowns, scores and outbound limit counters.
    pub books: RoutingBooks,
    pub queue: WaitQueue,
    pub events: EventBus,
    /// The last model of each recent conversation, for context handoff.
    pub conversations: crate::runtime::handoff::Conversations,
    /// Changes per request, to rotate equally good candidates.
    pub rotation: std::sync::atomic::AtomicUsize,
    /// The direct upstream client of the request path.
    pub direct: crate::upstream::DirectClient,
    /// The direct client of key checks and model discovery (follows guarded redirects).
    pub http: reqwest::Client,
    /// Outbound proxies, their clients and the keys' assignments.
    pub proxies: ProxyPool,
    pub logs: RequestLogWriter,
    pub ip_limiter: IpLimiter,
    pub login_throttle: LoginThrottle,
    /// Per-gateway-key limits and usage counters (outlive snapshots).
    pub gateway_usage: GatewayUsageBook,
    /// Prometheus counters and histograms (`GET /metrics`).
    pub metrics: crate::runtime::metrics::Metrics,
    /// The fleet's shared state on Redis (`REDIS_URL`); `None` alone.
    pub fleet: Option<Arc<fleet::Fleet>>,
    /// Attempt outcomes not yet told to the fleet.
    pub score_outbox: crate::runtime::fleet::ScoreOutbox,
    reload_lock: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The upstream client: one pool for every provider, TCP_NODELAY, no automatic retries or redirects to other hosts.
/// Direct connections go through the URL guard: names resolve to allowed addresses only, and redirects to refused
/// address literals are not followed (through a proxy, the proxy resolves and connects).
pub fn upstream_client(config: &ServerConfig) -> Result<reqwest::Client, reqwest::Error> {
    let allow_private = config.allow_private_provider_urls;
    crate::upstream::upstream_client_builder(config.connect_timeout, &config.trust)
        .redirect(crate::guard::url_guard::redirect_policy(allow_private))
        .dns_resolver(crate::guard::url_guard::resolver(allow_private))
        .build()
}

impl AppState {
    /// Builds the state and loads the first snapshot.
    pub async fn new(config: ServerConfig, store: Store) -> Result<Self, StateError> {
        let mut snapshot = Snapshot::load(&store, config.allow_private_provider_urls).await?;
        let gateway_usage = GatewayUsageBook::default();
        let day = router::Day::from_system_time();
        let midnight_ms = (day.index * 86_400_000) as i64;
        gateway_usage.seed_tokens_today(&store.gateway_key_tokens_since(midnight_ms).await?);
        attach_usage(&gateway_usage, &mut snapshot);
        let http = upstream_client(&config).map_err(|e| StateError::Http(e.to_string()))?;
        let direct = crate::upstream::DirectClient::new(
            config.connect_timeout,
            config.allow_private_provider_urls,
            &config.trust,
        );
        let retention = Retention {
            max_age: config.log_retention,
            max_rows: config.log_max_rows,
        };
        let logs = RequestLogWriter::start(store.clone(), config.log_channel_capacity, retention)
            .map_err(|e| StateError::Thread(format!("request-history writer: {e}")))?;
        let ip_limiter = IpLimiter::new(config.ip_rate_limit_rpm);
        let queue = WaitQueue::new(config.queue_max_waiting);
        let proxies = ProxyPool::new(
            config.proxy.clone(),
            config.connect_timeout,
            config.allow_private_provider_urls,
            config.trust.clone(),
        );
        proxies.apply_startup_settings(&store).await?;
        proxies.reload(&store).await?;
        let (fleet, inbox) = match &config.redis_url {
            Some(url) => {
                if store.engine() != store::Engine::Postgres {
                    return Err(StateError::Fleet(
                        "REDIS_URL needs DATABASE_URL on PostgreSQL: the instances of a fleet share one database"
                            .into(),
                    ));
                }
                let (fleet, inbox) = fleet::Fleet::start(url)
                    .await
                    .map_err(|e| StateError::Fleet(e.to_string()))?;
                (Some(fleet), Some(inbox))
            }
            None => (None, None),
        };
        let events = EventBus::default();
        if let Some(fleet) = &fleet {
            events.forward_to(Arc::clone(fleet));
        }
        let state = Self(Arc::new(Inner {
            config,
            store,
            snapshot: ArcSwap::from_pointee(snapshot),
            books: RoutingBooks::default(),
            queue,
            events,
            conversations: crate::runtime::handoff::Conversations::default(),
            rotation: std::sync::atomic::AtomicUsize::new(0),
            direct,
            http,
            proxies,
            logs,
            ip_limiter,
            login_throttle: LoginThrottle::default(),
            gateway_usage,
            metrics: crate::runtime::metrics::Metrics::default(),
            fleet,
            score_outbox: Default::default(),
            reload_lock: tokio::sync::Mutex::new(()),
        }));
        if let (Some(fleet), Some(inbox)) = (&state.fleet, inbox) {
            crate::runtime::fleet::spawn(&state, fleet, inbox);
        }
        state.mark_stored_invalid(&state.snapshot.load());
        state.spawn_retention();
        state.spawn_proxy_health();
        state.spawn_usage_flush();
        Ok(state)
    }

    /// Rebuilds the snapshot after an admin change, here and (in a fleet) on every other instance.
    pub async fn reload(&self) -> Result<(), store::StoreError> {
        let rebuilt = self.rebuild().await;
        // Told even if this rebuild failed: the change is stored, the others may read it.
        self.tell_fleet(|| fleet::Notice::Reload);
        rebuilt
    }

    /// Rebuilds the snapshot from the store and swaps it in. Serialised so two admin changes cannot race an older
    /// view over a newer one.
    pub(crate) async fn rebuild(&self) -> Result<(), store::StoreError> {
        let _guard = self.reload_lock.lock().await;
        let mut snapshot =
            Snapshot::load(&self.store, self.config.allow_private_provider_urls).await?;
        self.proxies.reload(&self.store).await?;
        attach_usage(&self.gateway_usage, &mut snapshot);
        self.mark_stored_invalid(&snapshot);
        self.snapshot.store(Arc::new(snapshot));
        // Waiting requests re-check: a key may have been added or re-enabled.
        self.queue.wake_all();
        Ok(())
    }

    fn mark_stored_invalid(&self, snapshot: &Snapshot) {
        let keys = snapshot.tenants.values().flat_map(|t| t.keys.iter());
        self.books
            .cooldowns
            .sync_invalid(keys.map(|k| (&*k.id, k.updated_at, k.stored_invalid)));
    }

    /// A handle for background tasks that does not keep the state alive.
    pub fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    pub fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(Self)
    }

    /// Flushes the request logs and gateway-key usage. Called once the HTTP server has drained.
    pub async fn shutdown(&self) {
        self.logs.shutdown().await;
        self.flush_usage().await;
    }

    /// Adds the gateway-key usage gathered in memory to the store (put back if the store fails).
    pub async fn flush_usage(&self) {
        flush_usage(&self.store, &self.gateway_usage).await;
    }

    fn spawn_usage_flush(&self) {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            // Every second: a crash loses at most a second of the totals (daily token limits are re-read from the
            // request history at start, so a crash never lets a key exceed them).
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                flush_usage(&inner.store, &inner.gateway_usage).await;
            }
        });
    }

    /// Probes every enabled proxy each `health_interval` (the first round one interval after start).
    fn spawn_proxy_health(&self) {
        let period = self.config.proxy.health_interval;
        if period.is_zero() {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else {
                    break;
                };
                inner.proxies.check_all().await;
            }
        });
    }

    fn spawn_retention(&self) {
        let (age, rows) = (self.config.log_retention, self.config.log_max_rows);
        if age.is_none() && rows.is_none() {
            return;
        }
        let store = self.store.clone();
        let weak = Arc::downgrade(&self.0);
        // On SQLite the history writer prunes, a chunk per transaction, paced with its inserts.
        let prune_here = !self.logs.prunes();
        tokio::spawn(async move {
            // Every 15 s, so that at high request rates each pass deletes a modest backlog.
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                tick.tick().await;
                if weak.strong_count() == 0 {
                    break;
                }
                if prune_here {
                    match store.prune_requests(age, rows).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(rows = n, "request history pruned by retention settings")
                        }
                        Err(e) => tracing::warn!(error = %e, "request history pruning failed"),
                    }
                }
                let _ = store.delete_expired_sessions().await;
            }
        });
    }
}

/// Hands every gateway key of a fresh snapshot its live counters, and forgets the counters of deleted keys.
fn attach_usage(book: &GatewayUsageBook, snapshot: &mut Snapshot) {
    for entry in snapshot.gateway_keys.values_mut() {
        entry.usage = book.entry(&entry.id);
    }
    let live: std::collections::HashSet<&str> =
        snapshot.gateway_keys.values().map(|e| &*e.id).collect();
    book.retain(&live);
}

async fn flush_usage(store: &Store, book: &GatewayUsageBook) {
    let deltas = book.take_deltas();
    if deltas.is_empty() {
        return;
    }
    if let Err(e) = store.flush_gateway_key_usage(&deltas).await {
        tracing::warn!(error = %e, "gateway key usage could not be saved; kept for the next flush");
        book.restore(&deltas);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("cannot start a thread: {0}")]
    Thread(String),
    #[error("{0}")]
    Fleet(String),
}
