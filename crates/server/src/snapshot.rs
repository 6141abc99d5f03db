//! The in-memory view the request path reads: gateway keys (by SHA-256), and per user the routable provider keys
//! with decrypted credentials, the model → keys index and the prebuilt `/v1/models` body. Rebuilt from the store
//! after every admin change and swapped in whole, so a reader never sees half an update.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use providers::{Adapter, Endpoint, Platform, UpstreamCredentials};
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
    /// The store says a provider refused this key's credential; it stays out of rotation until edited.
    pub stored_invalid: bool,
    /// The stored version this entry was built from.
    pub updated_at: i64,
}

/// Everything one user can route to.
#[derive(Debug, Default)]
pub struct Tenant {
    pub user_id: Arc<str>,
    pub username: Arc<str>,
    pub keys: Vec<Arc<ProviderKeyEntry>>,
    /// Model id → indexes into `keys`, in key creation order.
    pub models: BTreeMap<Arc<str>, Vec<usize>>,
    /// `GET /v1/models`, prebuilt.
    pub models_body: Bytes,
}

impl Tenant {
    /// Every (key, model) pair, for `auto`.
    pub fn all_candidates(&self) -> Vec<(usize, Arc<str>)> {
        let mut out = Vec::new();
        for (model, keys) in &self.models {
            for &k in keys {
                out.push((k, model.clone()));
            }
        }
        // Spread `auto` across keys first, models second.
        out.sort_by_key(|(k, _)| *k);
        out
    }
}

#[derive(Debug)]
pub struct GatewayKeyEntry {
    pub id: Arc<str>,
    pub prefix: Arc<str>,
    pub enabled: bool,
    pub tenant: Arc<Tenant>,
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
    for (model, keys) in &tenant.models {
        let owner = keys
            .first()
            .map_or("freellmapi", |&k| tenant.keys[k].platform.id());
        data.push(model_object(model, owner));
    }
    serde_json::json!({ "object": "list", "data": data })
}

impl Snapshot {
    /// Loads everything from the store. Keys that cannot be used (disabled, marked invalid, undecryptable, or of a
    /// platform this build does not serve) are left out of routing and reported in the log.
    pub async fn load(store: &Store) -> Result<Self, store::StoreError> {
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
            let Ok(platform) = row.platform.parse::<Platform>() else {
                tracing::warn!(key_id = %row.id, platform = %row.platform, "provider key of unknown platform skipped");
                continue;
            };
            let Some(adapter) = Adapter::for_platform(platform) else {
                continue;
            };
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
            let models: Vec<Arc<str>> = row.models.iter().map(|m| Arc::from(m.as_str())).collect();
            for model in &models {
                tenant.models.entry(model.clone()).or_default().push(index);
            }
            tenant.keys.push(Arc::new(ProviderKeyEntry {
                id: Arc::from(row.id.as_str()),
                platform,
                label: row.label.clone(),
                endpoint,
                adapter,
                models,
                stored_invalid: row.status == "invalid",
                updated_at: row.updated_at,
            }));
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
            gateway_keys.insert(
                hash,
                GatewayKeyEntry {
                    id: Arc::from(row.id.as_str()),
                    prefix: Arc::from(row.prefix.as_str()),
                    enabled: row.enabled,
                    tenant: tenant.clone(),
                },
            );
        }
        Ok(Self {
            gateway_keys,
            tenants,
        })
    }
}
