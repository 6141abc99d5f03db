//! The in-memory view the request path reads: gateway keys (by SHA-256), and per user the routable provider keys
//! with decrypted credentials, the model → keys index and the prebuilt `/v1/models` body. Rebuilt from the store
//! after every admin change and swapped in whole, so a reader never sees half an update.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use providers::catalog::{Capabilities, Catalog};
use providers::{Adapter, Endpoint, Platform, UpstreamCredentials};
use router::Limits;
use sha2::{Digest, Sha256};
use store::Store;

/// One provider key ready to be called.
#[derive(Debug)]
pub struct ProviderKeyEntry {
    pub id: Arc<str>,
    pub platform: Platform,
    pub label: String,
    pub endpoint: Endpoint,
    pub adapter: Adapter,
    pub models: Vec<Arc<str>>,
    /// The key's own limit scope: the platform's free-tier caps, overridden by the user's settings for this key.
    pub limits: Limits,
    /// The store says a provider refused this key's credential; it stays out of rotation until edited.
    pub stored_invalid: bool,
    /// The verdict of the key's last check as stored (`unknown` when never checked).
    pub stored_status: Arc<str>,
    /// The stored version this entry was built from.
    pub updated_at: i64,
}

/// One candidate: a provider key serving a model, with what the router needs to judge it.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index into the tenant's keys.
    pub key: usize,
    pub model: Arc<str>,
    /// Limit scopes the candidate falls under (the key's; the key-and-model's when the catalog caps the model).
    pub scopes: Arc<[(Arc<str>, Limits)]>,
    /// From the catalog; `None` when unknown (custom endpoints, models the catalog does not list).
    pub context_window: Option<u32>,
    pub capabilities: Option<Capabilities>,
    pub embedding: bool,
}

impl Route {
    /// Whether the candidate can hold `prompt_tokens` plus `max_tokens` of output.
    pub fn fits_context(&self, prompt_tokens: u64, max_tokens: Option<u64>) -> bool {
        self.context_window
            .is_none_or(|w| prompt_tokens + max_tokens.unwrap_or(0) <= u64::from(w))
    }

    /// Whether the candidate has every capability the request needs (unknown capabilities count as present).
    pub fn has_capabilities(&self, needs: wire::Needs) -> bool {
        self.capabilities.is_none_or(|c| {
            (!needs.tools || c.tools) && (!needs.vision || c.vision) && (!needs.json || c.json)
        })
    }
}

/// Converts the catalog's limits to the router's.
fn router_limits(l: &providers::catalog::Limits) -> Limits {
    Limits {
        rpm: l.rpm,
        rph: l.rph,
        rpd: l.rpd,
        tpm: l.tpm,
        tpd: l.tpd,
    }
}

/// Everything one user can route to.
#[derive(Debug, Default)]
pub struct Tenant {
    pub user_id: Arc<str>,
    pub username: Arc<str>,
    pub keys: Vec<Arc<ProviderKeyEntry>>,
    /// Model id → the candidates serving it, in key creation order.
    pub models: BTreeMap<Arc<str>, Vec<Route>>,
    /// Model group (the catalog's one name for the same model across platforms, e.g. `llama-3.3-70b`) → the
    /// candidates serving any of its members. A group name wins over a model id of the same name (the group
    /// includes that model).
    pub groups: BTreeMap<Arc<str>, Vec<Route>>,
    /// Profile name → profile.
    pub profiles: BTreeMap<Arc<str>, Arc<ProfileEntry>>,
    /// `GET /v1/models`, prebuilt.
    pub models_body: Bytes,
    /// Set in the view of a gateway key with an allow-list: the models it may use (`models` holds only these).
    pub allowed_models: Option<Arc<[String]>>,
}

impl Tenant {
    /// This tenant seen through a gateway key's allow-list of model and profile names: `/v1/models` lists only
    /// the allowed ones; an allowed profile brings its members along (it routes through them, and `auto` may
    /// choose them); every other name is refused by `openai::named_routes`.
    fn restricted_to(&self, allowed: &[String]) -> Tenant {
        let is_allowed = |name: &str| allowed.iter().any(|a| a == name);
        let profiles: BTreeMap<Arc<str>, Arc<ProfileEntry>> = self
            .profiles
            .iter()
            .filter(|(name, _)| is_allowed(name))
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        let reachable = |model: &str| {
            is_allowed(model)
                || profiles
                    .values()
                    .any(|p| p.members.iter().any(|m| &**m == model))
        };
        let pick = |keep: &dyn Fn(&str) -> bool| -> BTreeMap<Arc<str>, Vec<Route>> {
            self.models
                .iter()
                .filter(|(m, _)| keep(m))
                .map(|(m, r)| (m.clone(), r.clone()))
                .collect()
        };
        let groups: BTreeMap<Arc<str>, Vec<Route>> = self
            .groups
            .iter()
            .filter(|(name, _)| is_allowed(name))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        let view = |models| Tenant {
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            keys: self.keys.clone(),
            models,
            groups: groups.clone(),
            profiles: profiles.clone(),
            models_body: Bytes::new(),
            allowed_models: Some(Arc::from(allowed)),
        };
        let listing = view(pick(&is_allowed));
        let mut routing = view(pick(&reachable));
        routing.models_body = Bytes::from(models_list(&listing).to_string());
        routing
    }
}

/// An AI profile: a virtual model over an ordered list of real models.
#[derive(Debug)]
pub struct ProfileEntry {
    pub id: Arc<str>,
    pub name: Arc<str>,
    pub strategy: ProfileStrategy,
    pub members: Vec<Arc<str>>,
}

/// How a profile orders its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileStrategy {
    Failover,
    RoundRobin,
    LeastLatency,
    /// Every key of every member by the router's score, as for one model: a model group of the user's own.
    Score,
}

impl ProfileStrategy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "failover" => Some(Self::Failover),
            "round-robin" => Some(Self::RoundRobin),
            "least-latency" => Some(Self::LeastLatency),
            "score" => Some(Self::Score),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failover => "failover",
            Self::RoundRobin => "round-robin",
            Self::LeastLatency => "least-latency",
            Self::Score => "score",
        }
    }
}

impl Tenant {
    /// The candidates of a model or model-group name (a group first).
    pub fn routes_of(&self, name: &str) -> Option<&Vec<Route>> {
        self.groups.get(name).or_else(|| self.models.get(name))
    }

    /// The candidates of a profile, with each one's member position, in member order. Members none of the keys
    /// serve are skipped; a member may be a model group.
    pub fn profile_routes(&self, profile: &ProfileEntry) -> (Vec<Route>, Vec<u32>) {
        let mut routes = Vec::new();
        let mut priorities = Vec::new();
        for (position, member) in profile.members.iter().enumerate() {
            for route in self.routes_of(member).into_iter().flatten() {
                routes.push(route.clone());
                priorities.push(position as u32);
            }
        }
        (routes, priorities)
    }

    /// The smallest context window among a profile's reachable members.
    pub fn profile_context_window(&self, profile: &ProfileEntry) -> Option<u32> {
        profile
            .members
            .iter()
            .flat_map(|m| self.routes_of(m).into_iter().flatten())
            .filter_map(|r| r.context_window)
            .min()
    }
}

impl Tenant {
    /// Every chat candidate, for `auto`.
    pub fn chat_candidates(&self) -> Vec<Route> {
        let mut out: Vec<Route> = self
            .models
            .values()
            .flatten()
            .filter(|r| !r.embedding)
            .cloned()
            .collect();
        out.sort_by_key(|r| r.key);
        out
    }
}

#[derive(Debug)]
pub struct GatewayKeyEntry {
    pub id: Arc<str>,
    pub prefix: Arc<str>,
    pub enabled: bool,
    pub tenant: Arc<Tenant>,
    pub rpm_limit: Option<u32>,
    pub tpd_limit: Option<u64>,
    /// Live counters, shared across snapshots (attached by `AppState` from its usage book).
    pub usage: Arc<crate::runtime::gateway_usage::GatewayKeyUsage>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub gateway_keys: HashMap<[u8; 32], GatewayKeyEntry>,
    pub tenants: HashMap<Arc<str>, Arc<Tenant>>,
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn model_object(id: &str, owned_by: &str) -> serde_json::Value {
    serde_json::json!({ "id": id, "object": "model", "created": 0, "owned_by": owned_by })
}

/// The `/v1/models` list for a tenant: `auto` first, then every reachable model once.
pub fn models_list(tenant: &Tenant) -> serde_json::Value {
    let mut data = vec![model_object("auto", "freellmapi")];
    for (name, routes) in &tenant.groups {
        let mut object = model_object(name, "freellmapi-group");
        let mut members: Vec<&str> = routes.iter().map(|r| &*r.model).collect();
        members.sort_unstable();
        members.dedup();
        object["members"] = members.into();
        if let Some(window) = routes.iter().filter_map(|r| r.context_window).min() {
            object["context_window"] = window.into();
        }
        data.push(object);
    }
    // A model id that is also a group's name is listed once, as the group.
    for (model, routes) in tenant
        .models
        .iter()
        .filter(|(m, _)| !tenant.groups.contains_key(*m))
    {
        let owner = routes
            .first()
            .map_or("freellmapi", |r| tenant.keys[r.key].platform.id());
        let mut object = model_object(model, owner);
        if let Some(window) = routes.iter().filter_map(|r| r.context_window).min() {
            object["context_window"] = window.into();
        }
        data.push(object);
    }
    for (name, profile) in &tenant.profiles {
        let mut object = model_object(name, "freellmapi-profile");
        object["strategy"] = profile.strategy.as_str().into();
        object["members"] = profile.members.iter().map(|m| m.to_string()).collect();
        if let Some(window) = tenant.profile_context_window(profile) {
            object["context_window"] = window.into();
        }
        data.push(object);
    }
    serde_json::json!({ "object": "list", "data": data })
}

impl Snapshot {
    /// Loads everything from the store. Keys that cannot be used (disabled, marked invalid, undecryptable, or of a
    /// platform this build does not serve) are left out of routing and reported in the log.
    /// Base URLs are checked as written against the URL guard (`allow_private_urls`: `ALLOW_PRIVATE_PROVIDER_URLS`).
    pub async fn load(store: &Store, allow_private_urls: bool) -> Result<Self, store::StoreError> {
        let users = store.users().await?;
        let mut tenants: HashMap<Arc<str>, Tenant> = users
            .iter()
            .filter(|u| u.enabled)
            .map(|u| {
                let id: Arc<str> = Arc::from(u.id.as_str());
                (
                    id.clone(),
                    Tenant {
                        user_id: id,
                        username: Arc::from(u.username.as_str()),
                        ..Tenant::default()
                    },
                )
            })
            .collect();
        for row in store.all_provider_keys().await? {
            let Some(tenant) = tenants.get_mut(row.user_id.as_str()) else {
                continue;
            };
            if !row.enabled {
                continue;
            }
            if let Some(url) = row.base_url.as_deref() {
                if let Err(e) =
                    crate::guard::url_guard::check_url_as_written(url, allow_private_urls)
                {
                    tracing::warn!(key_id = %row.id, error = %e, "provider key refused by the URL guard; skipped");
                    continue;
                }
            }
            let Ok(platform) = row.platform.parse::<Platform>() else {
                tracing::warn!(key_id = %row.id, platform = %row.platform, "provider key of unknown platform skipped");
                continue;
            };
            let adapter = Adapter::for_platform(platform);
            let secret = match store.reveal(&row) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(key_id = %row.id, error = %e, "provider key could not be decrypted; skipped");
                    continue;
                }
            };
            let credentials = secret.map_or(UpstreamCredentials::None, UpstreamCredentials::Secret);
            let endpoint = match Endpoint::new(platform, row.base_url.as_deref(), &credentials) {
                Ok(ep) => ep,
                Err(e) => {
                    tracing::warn!(key_id = %row.id, error = %e, "provider key unusable; skipped");
                    continue;
                }
            };
            let index = tenant.keys.len();
            let catalog = Catalog::builtin();
            // A key with no model list serves its platform's catalogued free models.
            let models: Vec<Arc<str>> = if row.models.is_empty() {
                catalog
                    .models(platform)
                    .iter()
                    .map(|m| Arc::from(m.id.as_str()))
                    .collect()
            } else {
                row.models.iter().map(|m| Arc::from(m.as_str())).collect()
            };
            let key_id: Arc<str> = Arc::from(row.id.as_str());
            let overrides = Limits {
                rpm: row.limits.rpm,
                rph: row.limits.rph,
                rpd: row.limits.rpd,
                tpm: row.limits.tpm,
                tpd: row.limits.tpd,
            };
            // Fields set on the key replace the catalog's in every scope its requests fall under (the key's, and
            // each model's); `no_catalog_limits` drops the catalog's figures altogether.
            let from_catalog = |l: Option<&providers::catalog::Limits>| {
                if row.limits.no_catalog_limits {
                    Limits::default()
                } else {
                    l.map(router_limits).unwrap_or_default()
                }
            };
            let limits = from_catalog(catalog.platform_limits(platform)).overridden_by(overrides);
            for model in &models {
                let info = catalog.model(platform, model);
                let mut scopes = vec![(key_id.clone(), limits)];
                let model_limits = from_catalog(info.map(|i| &i.limits));
                if !model_limits.is_unlimited() {
                    scopes.push((
                        Arc::from(format!("{key_id}\u{0}{model}")),
                        model_limits.overridden_by(overrides),
                    ));
                }
                tenant.models.entry(model.clone()).or_default().push(Route {
                    key: index,
                    model: model.clone(),
                    scopes: Arc::from(scopes),
                    context_window: info.map(|i| i.context_window),
                    capabilities: info.map(|i| i.capabilities),
                    embedding: info.is_some_and(|i| i.is_embedding()),
                });
            }
            tenant.keys.push(Arc::new(ProviderKeyEntry {
                id: key_id,
                platform,
                label: row.label.clone(),
                endpoint,
                adapter,
                models,
                limits,
                stored_invalid: row.status == "invalid",
                stored_status: Arc::from(row.status.as_str()),
                updated_at: row.updated_at,
            }));
        }
        for row in store.all_profiles().await? {
            let Some(tenant) = tenants.get_mut(row.user_id.as_str()) else {
                continue;
            };
            let Some(strategy) = ProfileStrategy::parse(&row.strategy) else {
                tracing::warn!(profile = %row.name, strategy = %row.strategy, "profile with an unknown strategy skipped");
                continue;
            };
            let name: Arc<str> = Arc::from(row.name.as_str());
            tenant.profiles.insert(
                name.clone(),
                Arc::new(ProfileEntry {
                    id: Arc::from(row.id.as_str()),
                    name,
                    strategy,
                    members: row.models.iter().map(|m| Arc::from(m.as_str())).collect(),
                }),
            );
        }
        let catalog = Catalog::builtin();
        for tenant in tenants.values_mut() {
            let mut groups: BTreeMap<Arc<str>, Vec<Route>> = BTreeMap::new();
            for (model, routes) in &tenant.models {
                for route in routes {
                    let platform = tenant.keys[route.key].platform;
                    if let Some(group) = catalog
                        .model(platform, model)
                        .and_then(|m| m.group.as_deref())
                    {
                        groups
                            .entry(Arc::from(group))
                            .or_default()
                            .push(route.clone());
                    }
                }
            }
            for routes in groups.values_mut() {
                routes.sort_by_key(|r| r.key);
            }
            tenant.groups = groups;
        }
        let tenants: HashMap<Arc<str>, Arc<Tenant>> = tenants
            .into_iter()
            .map(|(id, mut t)| {
                t.models_body = Bytes::from(models_list(&t).to_string());
                (id, Arc::new(t))
            })
            .collect();
        let mut gateway_keys = HashMap::new();
        for row in store.all_gateway_keys().await? {
            let Some(tenant) = tenants.get(row.user_id.as_str()) else {
                continue;
            };
            let mut hash = [0u8; 32];
            if hex::decode_to_slice(&row.key_hash, &mut hash).is_err() {
                continue;
            }
            let tenant = match &row.allowed_models {
                Some(allowed) => Arc::new(tenant.restricted_to(allowed)),
                None => tenant.clone(),
            };
            gateway_keys.insert(
                hash,
                GatewayKeyEntry {
                    id: Arc::from(row.id.as_str()),
                    prefix: Arc::from(row.prefix.as_str()),
                    enabled: row.enabled,
                    tenant,
                    rpm_limit: row.rpm_limit,
                    tpd_limit: row.tpd_limit,
                    usage: Arc::default(),
                },
            );
        }
        Ok(Self {
            gateway_keys,
            tenants,
        })
    }
}
