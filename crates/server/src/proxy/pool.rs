//! The proxy pool: every stored proxy (and `PROXY_URL`) with its own pooled HTTP client, health and statistics, and
//! the sticky assignment of provider keys to proxies. The request path reads the swapped [`PoolView`] and one short
//! lock on the assignment table; it never queries the database.
//!
//! Assignment rules, in order, for one attempt of one provider key:
//! 1. platforms on the bypass list, and plain-HTTP upstreams (see [`may_proxy`]), go direct;
//! 2. `PROXY_URL`, when set, carries everything else;
//! 3. strategy `none`, or a user without enabled proxies: direct;
//! 4. otherwise the key keeps its proxy for the rotation period (an hour), then gets another one by the strategy; a
//!    proxy found unhealthy, disabled or deleted is replaced at once. When every proxy is unhealthy the pool fails
//!    open and picks among all enabled ones (a health verdict can be stale; refusing would stop all traffic).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::Rng;
use store::Store;
use tokio::time::Instant;

use super::url::{may_proxy, ProxyUrl};

/// How keys are spread over the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// The pool is off: everything goes direct (or through `PROXY_URL`).
    #[default]
    None,
    Random,
    RoundRobin,
    /// The proxy with the lowest measured latency (health probes and requests); unmeasured ones last.
    LeastLatency,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Random => "random",
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastLatency => "least-latency",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" | "off" => Ok(Strategy::None),
            "random" => Ok(Strategy::Random),
            "round-robin" | "round_robin" | "roundrobin" => Ok(Strategy::RoundRobin),
            "least-latency" | "least_latency" => Ok(Strategy::LeastLatency),
            other => Err(format!(
                "unknown proxy pool strategy `{other}`: use none, random, round-robin or least-latency"
            )),
        }
    }
}

/// The persisted pool settings (`PUT /api/proxies/settings`; start-up flags overwrite them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    pub strategy: Strategy,
    /// Platform ids that always go direct.
    pub bypass: Vec<String>,
    /// When every proxy tried for an attempt failed, send it direct instead of failing the attempt.
    pub direct_fallback: bool,
}

pub const SETTING_STRATEGY: &str = "proxy_pool_strategy";
pub const SETTING_BYPASS: &str = "proxy_bypass";
pub const SETTING_DIRECT_FALLBACK: &str = "proxy_direct_fallback";

/// Splits a comma-separated bypass list into trimmed, lower-case platform ids.
pub fn parse_bypass(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in text.split(',').map(|s| s.trim().to_ascii_lowercase()) {
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

impl ProxySettings {
    pub async fn load(store: &Store) -> Result<Self, store::StoreError> {
        let strategy = match store.setting(SETTING_STRATEGY).await? {
            Some(text) => text.parse().unwrap_or_else(|e: String| {
                tracing::warn!(error = %e, "stored proxy strategy ignored");
                Strategy::None
            }),
            None => Strategy::None,
        };
        Ok(Self {
            strategy,
            bypass: parse_bypass(&store.setting(SETTING_BYPASS).await?.unwrap_or_default()),
            direct_fallback: store.setting(SETTING_DIRECT_FALLBACK).await?.as_deref()
                == Some("true"),
        })
    }

    pub async fn save(&self, store: &Store) -> Result<(), store::StoreError> {
        store
            .set_setting(SETTING_STRATEGY, self.strategy.as_str())
            .await?;
        store
            .set_setting(SETTING_BYPASS, &self.bypass.join(","))
            .await?;
        store
            .set_setting(
                SETTING_DIRECT_FALLBACK,
                if self.direct_fallback {
                    "true"
                } else {
                    "false"
                },
            )
            .await
    }
}

/// Static proxy settings of the process (flags and environment); the persisted ones are [`ProxySettings`].
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `PROXY_URL`: one proxy for every proxied request, over the pool.
    pub single: Option<ProxyUrl>,
    /// Settings given at start-up (`PROXY_POOL_STRATEGY`, `PROXY_BYPASS`, …): written to the store, overriding the
    /// persisted ones. `None` fields keep what is stored.
    pub strategy: Option<Strategy>,
    pub bypass: Option<Vec<String>>,
    pub direct_fallback: Option<bool>,
    /// How long a key keeps its proxy before rotation.
    pub rotation: Duration,
    /// Health probe period; zero turns the checker off.
    pub health_interval: Duration,
    /// What a probe fetches through each proxy (any HTTP answer counts as the proxy working).
    pub health_target: String,
    pub health_timeout: Duration,
    /// Consecutive failed probes that mark a proxy unhealthy.
    pub unhealthy_after: u32,
    /// Consecutive successful probes that bring it back.
    pub healthy_after: u32,
    /// Let plain-HTTP upstreams on loopback go through a proxy. For tests against a local mock only: a plain-HTTP
    /// upstream elsewhere never goes through a proxy, whatever this says.
    pub allow_plain_http_loopback: bool,
    /// Most proxies one attempt tries before giving up on the attempt.
    pub max_proxies_per_attempt: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            single: None,
            strategy: None,
            bypass: None,
            direct_fallback: None,
            rotation: Duration::from_secs(3600),
            health_interval: Duration::from_secs(60),
            health_target: "https://www.gstatic.com/generate_204".into(),
            health_timeout: Duration::from_secs(10),
            unhealthy_after: 3,
            healthy_after: 2,
            allow_plain_http_loopback: false,
            max_proxies_per_attempt: 3,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Counters of one proxy since the process started (kept across edits of the proxy).
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Attempts sent through the proxy.
    pub requests: AtomicU64,
    /// Attempts the upstream answered with success.
    pub successes: AtomicU64,
    /// Attempts the proxy itself failed.
    pub proxy_errors: AtomicU64,
    latency_total_ms: AtomicU64,
    latency_count: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    last_error: Mutex<Option<(i64, String)>>,
}

impl ProxyStats {
    pub fn record_latency(&self, latency: Duration) {
        self.latency_total_ms
            .fetch_add(latency.as_millis() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn avg_latency_ms(&self) -> Option<u64> {
        let n = self.latency_count.load(Ordering::Relaxed);
        (n > 0).then(|| self.latency_total_ms.load(Ordering::Relaxed) / n)
    }

    pub fn set_last_error(&self, message: &str) {
        *lock(&self.last_error) = Some((now_ms(), providers::sanitize_message(message)));
    }

    pub fn last_error(&self) -> Option<(i64, String)> {
        lock(&self.last_error).clone()
    }
}

/// Health of one proxy: probes and request failures move it.
#[derive(Debug)]
pub struct ProxyHealth {
    healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    consecutive_successes: AtomicU32,
    /// Smoothed latency of probes and requests; 0 while unmeasured.
    latency_ms: AtomicU64,
    last_check_ms: AtomicI64,
}

impl Default for ProxyHealth {
    fn default() -> Self {
        Self {
            // Unknown counts as healthy: a new proxy is usable before its first probe.
            healthy: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            consecutive_successes: AtomicU32::new(0),
            latency_ms: AtomicU64::new(0),
            last_check_ms: AtomicI64::new(0),
        }
    }
}

impl ProxyHealth {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    pub fn consecutive_successes(&self) -> u32 {
        self.consecutive_successes.load(Ordering::Relaxed)
    }

    pub fn latency_ms(&self) -> Option<u64> {
        Some(self.latency_ms.load(Ordering::Relaxed)).filter(|l| *l > 0)
    }

    pub fn last_check_ms(&self) -> Option<i64> {
        Some(self.last_check_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    fn observe_latency(&self, latency: Duration) {
        let sample = (latency.as_millis() as u64).max(1);
        let old = self.latency_ms.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 3 + sample) / 4
        };
        self.latency_ms.store(new.max(1), Ordering::Relaxed);
    }

    /// A success (probe or request): enough in a row bring an unhealthy proxy back.
    pub fn success(&self, latency: Duration, healthy_after: u32) {
        self.observe_latency(latency);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let streak = self.consecutive_successes.fetch_add(1, Ordering::Relaxed) + 1;
        if streak >= healthy_after {
            self.healthy.store(true, Ordering::Relaxed);
        }
    }

    /// A failed probe: enough in a row mark the proxy unhealthy.
    pub fn probe_failure(&self, unhealthy_after: u32) {
        self.consecutive_successes.store(0, Ordering::Relaxed);
        let streak = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if streak >= unhealthy_after {
            self.healthy.store(false, Ordering::Relaxed);
        }
    }

    /// A request the proxy failed: unhealthy at once (a live request is better evidence than a probe).
    pub fn request_failure(&self) {
        self.consecutive_successes.store(0, Ordering::Relaxed);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Relaxed);
    }

    pub fn checked(&self) {
        self.last_check_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// One usable proxy: its address, its own pooled client (created once, when the pool is loaded), health and stats.
#[derive(Debug)]
pub struct ProxyEntry {
    pub id: Arc<str>,
    /// The owner; `None` for `PROXY_URL`.
    pub user_id: Option<Arc<str>>,
    pub label: Arc<str>,
    pub url: ProxyUrl,
    pub country: Option<String>,
    pub enabled: bool,
    /// The stored version (`updated_at`) the entry was built from.
    pub version: i64,
    pub client: reqwest::Client,
    pub health: ProxyHealth,
    pub stats: Arc<ProxyStats>,
}

/// The client of one proxy: the upstream client's settings, this proxy only (no proxy from the environment).
///
/// Every name this client resolves itself goes through the outbound address guard: the proxy's own host name, and
/// for `socks5://` and `socks4://` (names resolved by the gateway) the upstream's host name too — so a name that
/// later resolves to a metadata or (unless allowed) private address is refused at connect time, as on direct
/// connections. With `socks5h://` and HTTP proxies the proxy resolves upstream names on its own network.
pub fn proxied_client(
    connect_timeout: Duration,
    url: &ProxyUrl,
    trust: &crate::trust::TrustStore,
    allow_private: bool,
) -> Result<reqwest::Client, String> {
    let proxy = url
        .to_reqwest()
        .map_err(|_| format!("{url} is not a usable proxy"))?;
    crate::upstream::upstream_client_builder(connect_timeout, trust)
        .dns_resolver(Arc::new(crate::guard::url_guard::GuardedResolver {
            allow_private,
        }))
        .no_proxy()
        .proxy(proxy)
        .build()
        .map_err(|_| format!("cannot build an HTTP client for {url}"))
}

/// Where one attempt goes out.
#[derive(Debug, Clone)]
pub enum Egress {
    Direct,
    Proxy(Arc<ProxyEntry>),
}

impl Egress {
    pub fn proxy(&self) -> Option<&Arc<ProxyEntry>> {
        match self {
            Egress::Direct => None,
            Egress::Proxy(p) => Some(p),
        }
    }

    /// The label shown in events and logs (`None`: direct).
    pub fn label(&self) -> Option<&Arc<str>> {
        self.proxy().map(|p| &p.label)
    }

    pub fn client<'a>(&'a self, direct: &'a reqwest::Client) -> &'a reqwest::Client {
        match self {
            Egress::Direct => direct,
            Egress::Proxy(p) => &p.client,
        }
    }
}

/// The swapped view of the pool.
#[derive(Debug, Default)]
pub struct PoolView {
    pub settings: ProxySettings,
    pub single: Option<Arc<ProxyEntry>>,
    /// Per user, the enabled proxies in creation order.
    pub by_user: HashMap<Arc<str>, Vec<Arc<ProxyEntry>>>,
    /// Every stored proxy (enabled or not) by id.
    pub by_id: HashMap<Arc<str>, Arc<ProxyEntry>>,
}

impl PoolView {
    /// Every proxy the health checker probes: `PROXY_URL` and each enabled pool proxy.
    pub fn probed(&self) -> Vec<Arc<ProxyEntry>> {
        let mut out: Vec<Arc<ProxyEntry>> = self.single.iter().cloned().collect();
        out.extend(self.by_user.values().flatten().cloned());
        out
    }
}

#[derive(Debug)]
struct Assignment {
    proxy: Arc<str>,
    since: Instant,
}

/// What one key asks of the pool.
#[derive(Debug, Clone, Copy)]
pub struct KeyRoute<'a> {
    pub user_id: &'a str,
    pub key_id: &'a str,
    pub platform: &'a str,
    pub base_url: &'a str,
}

#[derive(Debug)]
pub struct ProxyPool {
    pub config: ProxyConfig,
    connect_timeout: Duration,
    /// The outbound address guard's setting, applied to every proxy before it is used.
    allow_private: bool,
    /// What TLS through the proxies trusts.
    trust: crate::trust::TrustStore,
    view: ArcSwap<PoolView>,
    /// Provider key id → its current proxy.
    assignments: Mutex<HashMap<Arc<str>, Assignment>>,
    cursor: AtomicUsize,
}

impl ProxyPool {
    pub fn new(
        config: ProxyConfig,
        connect_timeout: Duration,
        allow_private: bool,
        trust: crate::trust::TrustStore,
    ) -> Self {
        Self {
            config,
            connect_timeout,
            allow_private,
            trust,
            view: ArcSwap::from_pointee(PoolView::default()),
            assignments: Mutex::new(HashMap::new()),
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn view(&self) -> arc_swap::Guard<Arc<PoolView>> {
        self.view.load()
    }

    /// Writes the settings given at start-up over the persisted ones.
    pub async fn apply_startup_settings(&self, store: &Store) -> Result<(), store::StoreError> {
        if let Some(s) = self.config.strategy {
            store.set_setting(SETTING_STRATEGY, s.as_str()).await?;
        }
        if let Some(b) = &self.config.bypass {
            store.set_setting(SETTING_BYPASS, &b.join(",")).await?;
        }
        if let Some(d) = self.config.direct_fallback {
            store
                .set_setting(SETTING_DIRECT_FALLBACK, if d { "true" } else { "false" })
                .await?;
        }
        Ok(())
    }

    /// Rebuilds the view from the store. Unchanged proxies keep their entry (client, connections, health); edited
    /// ones get a new client and fresh health but keep their statistics.
    pub async fn reload(&self, store: &Store) -> Result<(), store::StoreError> {
        let settings = ProxySettings::load(store).await?;
        let rows = store.all_proxies().await?;
        let previous = self.view.load_full();
        let single = match (&previous.single, &self.config.single) {
            (Some(entry), _) => Some(entry.clone()),
            (None, Some(url)) => match url
                .check_as_written(self.allow_private)
                .map_err(|e| e.0)
                .and_then(|()| {
                    proxied_client(self.connect_timeout, url, &self.trust, self.allow_private)
                }) {
                Ok(client) => Some(Arc::new(ProxyEntry {
                    id: Arc::from("env"),
                    user_id: None,
                    label: Arc::from(format!("PROXY_URL {}", url.host_port())),
                    url: url.clone(),
                    country: None,
                    enabled: true,
                    version: 0,
                    client,
                    health: ProxyHealth::default(),
                    stats: Arc::default(),
                })),
                Err(e) => {
                    tracing::error!(error = %e, "PROXY_URL unusable; requests go direct");
                    None
                }
            },
            (None, None) => None,
        };
        let mut view = PoolView {
            settings,
            single,
            ..PoolView::default()
        };
        for row in rows {
            let id: Arc<str> = Arc::from(row.id.as_str());
            let reused = previous
                .by_id
                .get(&id)
                .filter(|e| e.version == row.updated_at)
                .cloned();
            let entry = match reused {
                Some(e) => e,
                None => {
                    let credentials = match store.reveal_proxy_credentials(&row) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!(proxy_id = %row.id, error = %e, "proxy credentials could not be decrypted; skipped");
                            continue;
                        }
                    };
                    let url = match ProxyUrl::parse(&row.url)
                        .map_err(|e| e.to_string())
                        .and_then(|u| match u.check_as_written(self.allow_private) {
                            // A row stored before the guard covered proxies, or written by hand, is never used.
                            Ok(()) => Ok(u),
                            Err(e) => Err(e.0),
                        }) {
                        Ok(u) => u.with_credentials(credentials),
                        Err(e) => {
                            tracing::warn!(proxy_id = %row.id, error = %e, "stored proxy unusable; skipped");
                            continue;
                        }
                    };
                    let client = match proxied_client(
                        self.connect_timeout,
                        &url,
                        &self.trust,
                        self.allow_private,
                    ) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(proxy_id = %row.id, error = %e, "stored proxy unusable; skipped");
                            continue;
                        }
                    };
                    Arc::new(ProxyEntry {
                        stats: previous
                            .by_id
                            .get(&id)
                            .map(|e| e.stats.clone())
                            .unwrap_or_default(),
                        id: id.clone(),
                        user_id: Some(Arc::from(row.user_id.as_str())),
                        label: Arc::from(row.label.as_str()),
                        url,
                        country: row.country.clone(),
                        enabled: row.enabled,
                        version: row.updated_at,
                        client,
                        health: ProxyHealth::default(),
                    })
                }
            };
            if entry.enabled {
                view.by_user
                    .entry(Arc::from(row.user_id.as_str()))
                    .or_default()
                    .push(entry.clone());
            }
            view.by_id.insert(id, entry);
        }
        // Assignments to proxies that are gone or disabled are dropped now rather than on the next request.
        lock(&self.assignments).retain(|_, a| view.by_id.get(&a.proxy).is_some_and(|e| e.enabled));
        self.view.store(Arc::new(view));
        Ok(())
    }

    /// The egress of one attempt of `key` at `now`.
    pub fn egress_for(&self, key: KeyRoute<'_>, now: Instant) -> Egress {
        let view = self.view.load();
        // Cheapest checks first: with no proxy configured (the common case) nothing else is looked at.
        let pool = match &view.single {
            Some(_) => None,
            None if view.settings.strategy == Strategy::None => return Egress::Direct,
            None => match view.by_user.get(key.user_id).filter(|p| !p.is_empty()) {
                Some(pool) => Some(pool),
                None => return Egress::Direct,
            },
        };
        if view.settings.bypass.iter().any(|b| b == key.platform)
            || !may_proxy(key.base_url, self.config.allow_plain_http_loopback)
        {
            return Egress::Direct;
        }
        let Some(pool) = pool else {
            return view.single.clone().map_or(Egress::Direct, Egress::Proxy);
        };
        let mut assignments = lock(&self.assignments);
        let current = assignments.get(key.key_id).and_then(|a| {
            let entry = pool.iter().find(|e| e.id == a.proxy)?;
            Some((entry.clone(), a.since))
        });
        if let Some((entry, since)) = &current {
            if entry.health.is_healthy() && now.duration_since(*since) < self.config.rotation {
                return Egress::Proxy(entry.clone());
            }
        }
        let healthy: Vec<Arc<ProxyEntry>> = pool
            .iter()
            .filter(|e| e.health.is_healthy())
            .cloned()
            .collect();
        let candidates = if healthy.is_empty() {
            pool.clone()
        } else {
            healthy
        };
        let exclude = current.as_ref().map(|(e, _)| &*e.id);
        let Some(chosen) = self.pick(view.settings.strategy, &candidates, exclude) else {
            return Egress::Direct;
        };
        assignments.insert(
            Arc::from(key.key_id),
            Assignment {
                proxy: chosen.id.clone(),
                since: now,
            },
        );
        Egress::Proxy(chosen)
    }

    /// The egress of a model discovery call for `user_id`: the same rules as an attempt, with one sticky
    /// assignment per user for discovery.
    pub fn egress_for_discovery(&self, user_id: &str, endpoint: &providers::Endpoint) -> Egress {
        let key_id = format!("\u{0}discovery\u{0}{user_id}");
        self.egress_for(
            KeyRoute {
                user_id,
                key_id: &key_id,
                platform: endpoint.platform.id(),
                base_url: &endpoint.base_url,
            },
            Instant::now(),
        )
    }

    /// After `failed` failed an attempt of `key`: another healthy proxy not yet `tried` (and the key's new
    /// assignment), direct when the settings allow it, or `None` to give the attempt up.
    pub fn failover(
        &self,
        key: KeyRoute<'_>,
        failed: &ProxyEntry,
        tried: &[Arc<str>],
        now: Instant,
    ) -> Option<Egress> {
        let view = self.view.load();
        let direct = view.settings.direct_fallback.then_some(Egress::Direct);
        if failed.user_id.is_none() {
            // `PROXY_URL` has no alternative but going direct.
            return direct;
        }
        let candidates: Vec<Arc<ProxyEntry>> = view
            .by_user
            .get(key.user_id)
            .into_iter()
            .flatten()
            .filter(|e| e.health.is_healthy() && !tried.contains(&e.id))
            .cloned()
            .collect();
        let Some(next) = self.pick(view.settings.strategy, &candidates, None) else {
            return direct;
        };
        lock(&self.assignments).insert(
            Arc::from(key.key_id),
            Assignment {
                proxy: next.id.clone(),
                since: now,
            },
        );
        Some(Egress::Proxy(next))
    }

    /// The id of the proxy `key_id` is assigned to now, if any.
    pub fn assigned(&self, key_id: &str) -> Option<Arc<str>> {
        lock(&self.assignments).get(key_id).map(|a| a.proxy.clone())
    }

    fn pick(
        &self,
        strategy: Strategy,
        candidates: &[Arc<ProxyEntry>],
        exclude: Option<&str>,
    ) -> Option<Arc<ProxyEntry>> {
        let others: Vec<&Arc<ProxyEntry>> = candidates
            .iter()
            .filter(|e| Some(&*e.id) != exclude)
            .collect();
        // Rotation prefers a different proxy, but keeps the same one when it is the only choice.
        let list: Vec<&Arc<ProxyEntry>> = if others.is_empty() {
            candidates.iter().collect()
        } else {
            others
        };
        if list.is_empty() {
            return None;
        }
        let chosen = match strategy {
            Strategy::None => list[0],
            Strategy::Random => list[rand::thread_rng().gen_range(0..list.len())],
            Strategy::RoundRobin => list[self.cursor.fetch_add(1, Ordering::Relaxed) % list.len()],
            Strategy::LeastLatency => *list
                .iter()
                .min_by_key(|e| e.health.latency_ms().unwrap_or(u64::MAX))?,
        };
        Some(chosen.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error chain of a request, as one string.
    async fn refusal(client: &reqwest::Client, url: &str) -> String {
        let e = client.get(url).send().await.expect_err("refused");
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    }

    #[tokio::test]
    async fn names_the_gateway_resolves_for_a_proxied_call_pass_the_address_guard() {
        let trust = crate::trust::TrustStore::platform();
        // socks5: the gateway resolves the upstream's name, so `localhost` (private) is refused before the proxy
        // (an unroutable documentation address) is ever dialled.
        let socks = ProxyUrl::parse("socks5://203.0.113.1:1080").unwrap();
        let client = proxied_client(Duration::from_secs(5), &socks, &trust, false).unwrap();
        let started = std::time::Instant::now();
        let text = refusal(&client, "http://localhost:9/v1/models").await;
        assert!(text.contains("does not allow"), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused at once"
        );
        // The proxy's own host name goes through the guard too: a proxy listening on loopback under the name
        // `localhost` is never dialled.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let named = ProxyUrl::parse(&format!("socks5h://localhost:{port}")).unwrap();
        let client = proxied_client(Duration::from_secs(5), &named, &trust, false).unwrap();
        refusal(&client, "http://203.0.113.2:9/v1/models").await;
        let dialled = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(
            dialled.is_err(),
            "the proxy under a refused name was dialled"
        );
        // The same proxy is used when private addresses are allowed (the listener sees the connection).
        let client = proxied_client(Duration::from_secs(5), &named, &trust, true).unwrap();
        let call = tokio::spawn(async move { client.get("http://203.0.113.2:9/").send().await });
        let dialled = tokio::time::timeout(Duration::from_secs(2), listener.accept()).await;
        assert!(dialled.is_ok(), "an allowed proxy was not dialled");
        call.abort();
    }

    fn entry(id: &str, user: &str) -> Arc<ProxyEntry> {
        let url = ProxyUrl::parse(&format!("http://127.0.0.1:{}", 1000 + id.len())).unwrap();
        Arc::new(ProxyEntry {
            id: Arc::from(id),
            user_id: Some(Arc::from(user)),
            label: Arc::from(id),
            client: proxied_client(
                Duration::from_secs(1),
                &url,
                &crate::trust::TrustStore::platform(),
                true,
            )
            .unwrap(),
            url,
            country: None,
            enabled: true,
            version: 1,
            health: ProxyHealth::default(),
            stats: Arc::default(),
        })
    }

    fn pool(strategy: Strategy, ids: &[&str]) -> (ProxyPool, Vec<Arc<ProxyEntry>>) {
        let pool = ProxyPool::new(
            ProxyConfig::default(),
            Duration::from_secs(1),
            true,
            crate::trust::TrustStore::platform(),
        );
        let entries: Vec<Arc<ProxyEntry>> = ids.iter().map(|id| entry(id, "u")).collect();
        let mut view = PoolView {
            settings: ProxySettings {
                strategy,
                ..ProxySettings::default()
            },
            ..PoolView::default()
        };
        view.by_user.insert(Arc::from("u"), entries.clone());
        for e in &entries {
            view.by_id.insert(e.id.clone(), e.clone());
        }
        pool.view.store(Arc::new(view));
        (pool, entries)
    }

    fn key(id: &str) -> KeyRoute<'_> {
        KeyRoute {
            user_id: "u",
            key_id: id,
            platform: "groq",
            base_url: "https://api.groq.com/openai/v1",
        }
    }

    fn id_of(e: &Egress) -> &str {
        e.proxy().map_or("direct", |p| &p.id)
    }

    #[tokio::test(start_paused = true)]
    async fn assignment_is_sticky_for_an_hour_then_rotates() {
        let (pool, _) = pool(Strategy::RoundRobin, &["a", "bb", "ccc"]);
        let first = id_of(&pool.egress_for(key("k1"), Instant::now())).to_owned();
        let other = id_of(&pool.egress_for(key("k2"), Instant::now())).to_owned();
        assert_ne!(first, other, "round-robin spreads keys");
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(350)).await;
            assert_eq!(id_of(&pool.egress_for(key("k1"), Instant::now())), first);
        }
        // 3500 s so far; past the hour the key moves to another proxy and stays there.
        tokio::time::advance(Duration::from_secs(101)).await;
        let rotated = id_of(&pool.egress_for(key("k1"), Instant::now())).to_owned();
        assert_ne!(rotated, first);
        tokio::time::advance(Duration::from_secs(1800)).await;
        assert_eq!(id_of(&pool.egress_for(key("k1"), Instant::now())), rotated);
    }

    #[tokio::test(start_paused = true)]
    async fn unhealthy_proxies_are_replaced_at_once_and_failover_skips_tried_ones() {
        let (pool, entries) = pool(Strategy::LeastLatency, &["a", "bb", "ccc"]);
        entries[0].health.success(Duration::from_millis(300), 2);
        entries[1].health.success(Duration::from_millis(100), 2);
        entries[2].health.success(Duration::from_millis(200), 2);
        let now = Instant::now();
        assert_eq!(id_of(&pool.egress_for(key("k"), now)), "bb");
        entries[1].health.request_failure();
        assert_eq!(id_of(&pool.egress_for(key("k"), now)), "ccc");
        let tried = vec![Arc::from("ccc")];
        entries[2].health.request_failure();
        let next = pool.failover(key("k"), &entries[2], &tried, now).unwrap();
        assert_eq!(id_of(&next), "a");
        assert_eq!(pool.assigned("k").as_deref(), Some("a"));
        entries[0].health.request_failure();
        let tried: Vec<Arc<str>> = vec![Arc::from("ccc"), Arc::from("a")];
        assert!(pool.failover(key("k"), &entries[0], &tried, now).is_none());
        // Everything unhealthy: the pool fails open rather than stopping traffic.
        assert!(pool.egress_for(key("k"), now).proxy().is_some());
        // Two successes bring a proxy back.
        entries[1].health.success(Duration::from_millis(100), 2);
        assert!(!entries[1].health.is_healthy());
        entries[1].health.success(Duration::from_millis(100), 2);
        assert!(entries[1].health.is_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn direct_cases() {
        let (pool, _) = pool(Strategy::None, &["a"]);
        assert!(pool.egress_for(key("k"), Instant::now()).proxy().is_none());
        let (pool, _) = pool_with_bypass();
        assert!(pool.egress_for(key("k"), Instant::now()).proxy().is_none());
        let (pool, _) = self::pool(Strategy::Random, &["a"]);
        let plain = KeyRoute {
            base_url: "http://example.com/v1",
            ..key("k")
        };
        assert!(pool.egress_for(plain, Instant::now()).proxy().is_none());
        let other_user = KeyRoute {
            user_id: "v",
            ..key("k")
        };
        assert!(pool
            .egress_for(other_user, Instant::now())
            .proxy()
            .is_none());
    }

    fn pool_with_bypass() -> (ProxyPool, Vec<Arc<ProxyEntry>>) {
        let (pool, entries) = pool(Strategy::RoundRobin, &["a"]);
        let mut view = PoolView {
            settings: ProxySettings {
                strategy: Strategy::RoundRobin,
                bypass: parse_bypass(" Groq ,custom"),
                direct_fallback: false,
            },
            ..PoolView::default()
        };
        view.by_user.insert(Arc::from("u"), entries.clone());
        pool.view.store(Arc::new(view));
        (pool, entries)
    }

    #[test]
    fn strategies_parse() {
        for s in [
            Strategy::None,
            Strategy::Random,
            Strategy::RoundRobin,
            Strategy::LeastLatency,
        ] {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
        }
        assert!("fastest".parse::<Strategy>().is_err());
    }
}
