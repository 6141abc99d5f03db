//! The declarative configuration file (`--config` / `FREELLMAPI_CONFIG`): provider keys and gateway keys declared in
//! TOML, with `${VAR}` references to the environment for secrets, applied idempotently at every start.
//!
//! Two stages: the serde form ([`RawConfigFile`], unknown fields refused) is validated into [`ConfigFile`], whose
//! errors name the field (`provider_keys[2].base_url: …`). Applying upserts each entry by its `name`; entries that
//! disappeared from the file are left in place (nothing stored is deleted silently) and reported in the log.

use std::collections::HashSet;
use std::path::Path;

use providers::{Endpoint, Platform, UpstreamCredentials};
use serde::Deserialize;
use server::proxy::{ProxyUrl, Strategy};
use store::{NewProviderKey, Store};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfigFile {
    #[serde(default)]
    pub provider_keys: Vec<RawProviderKey>,
    #[serde(default)]
    pub gateway_keys: Vec<RawGatewayKey>,
    #[serde(default)]
    pub proxy: Option<RawProxySection>,
    #[serde(default)]
    pub profiles: Vec<RawProfile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Option<String>,
    pub strategy: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileConfig {
    pub name: String,
    /// `failover`, `round-robin`, `least-latency` or `score`.
    pub strategy: String,
    pub models: Vec<String>,
    pub user: Option<String>,
}

/// `[proxy]`: the same settings as the `PROXY_*` variables, which win over the file when both are given.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawProxySection {
    pub url: Option<String>,
    pub strategy: Option<String>,
    pub bypass: Option<Vec<String>>,
    pub direct_fallback: Option<bool>,
    pub health_interval_seconds: Option<u64>,
    pub health_target: Option<String>,
}

/// The validated `[proxy]` section; unset fields leave the setting to the environment or its default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySection {
    pub url: Option<ProxyUrl>,
    pub strategy: Option<Strategy>,
    pub bypass: Option<Vec<String>>,
    pub direct_fallback: Option<bool>,
    pub health_interval: Option<std::time::Duration>,
    pub health_target: Option<String>,
}

/// Validates a bypass list: known platform ids, lower-cased, without duplicates.
pub fn validate_bypass(ids: &[String], field: &str) -> Result<Vec<String>, ConfigError> {
    let list = server::proxy::parse_bypass(&ids.join(","));
    if let Some(unknown) = list.iter().find(|id| id.parse::<Platform>().is_err()) {
        return Err(err(field, format!("unknown platform `{unknown}`")));
    }
    Ok(list)
}

/// Validates a probe target URL.
pub fn validate_target(url: &str, field: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(err(field, "must be an http:// or https:// URL"));
    }
    Ok(url.to_owned())
}

impl RawProxySection {
    fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> Result<ProxySection, ConfigError> {
        let url = self
            .url
            .map(|u| interpolate(&u, "proxy.url", env))
            .transpose()?
            .filter(|u| !u.trim().is_empty())
            .map(|u| ProxyUrl::parse(&u).map_err(|e| err("proxy.url", e.to_string())))
            .transpose()?;
        Ok(ProxySection {
            url,
            strategy: self
                .strategy
                .map(|s| s.parse::<Strategy>().map_err(|e| err("proxy.strategy", e)))
                .transpose()?,
            bypass: self
                .bypass
                .map(|b| validate_bypass(&b, "proxy.bypass"))
                .transpose()?,
            direct_fallback: self.direct_fallback,
            health_interval: self
                .health_interval_seconds
                .map(std::time::Duration::from_secs),
            health_target: self
                .health_target
                .map(|t| validate_target(&t, "proxy.health_target"))
                .transpose()?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProviderKey {
    pub name: Option<String>,
    pub platform: Option<String>,
    pub key: Option<String>,
    pub label: Option<String>,
    pub base_url: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    pub enabled: Option<bool>,
    pub user: Option<String>,
    /// Outbound limits replacing the catalog's (`rpm`, `rph`, `rpd`, `tpm`, `tpd`, `no_catalog_limits`).
    pub limits: Option<store::KeyLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayKey {
    pub name: Option<String>,
    pub key: Option<String>,
    pub label: Option<String>,
    pub enabled: Option<bool>,
    pub user: Option<String>,
    pub rpm_limit: Option<u32>,
    pub tpd_limit: Option<u64>,
    pub allowed_models: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKeyConfig {
    pub name: String,
    pub platform: Platform,
    pub key: Option<String>,
    pub label: String,
    pub base_url: Option<String>,
    pub models: Vec<String>,
    pub enabled: bool,
    pub user: Option<String>,
    /// Declared limits; `None` leaves what the admin API set.
    pub limits: Option<store::KeyLimits>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayKeyConfig {
    pub name: String,
    pub key: Option<String>,
    pub label: String,
    pub enabled: bool,
    pub user: Option<String>,
    /// Each declared field replaces the stored one; undeclared fields keep what the admin API set.
    pub rpm_limit: Option<u32>,
    pub tpd_limit: Option<u64>,
    pub allowed_models: Option<Vec<String>>,
}

/// The validated file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    pub provider_keys: Vec<ProviderKeyConfig>,
    pub gateway_keys: Vec<GatewayKeyConfig>,
    pub proxy: ProxySection,
    pub profiles: Vec<ProfileConfig>,
}

/// A configuration problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
}

impl std::error::Error for ConfigError {}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Replaces `${NAME}` with the value of `NAME` from `env`. `$${` escapes a literal `${`.
pub fn interpolate(
    value: &str,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| err(field, "unterminated `${` reference"))?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(
                    field,
                    format!("`${{{name}}}` is not a valid environment variable reference"),
                ));
            }
            let resolved = env(name)
                .ok_or_else(|| err(field, format!("environment variable {name} is not set")))?;
            out.push_str(&resolved);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// An entry's `name`: present, well-formed and unique per user.
fn entry_name(
    name: Option<String>,
    user: &Option<String>,
    seen: &mut HashSet<(Option<String>, String)>,
    field: String,
) -> Result<String, ConfigError> {
    let name = name.ok_or_else(|| {
        err(
            &field,
            "is required (it identifies the entry across restarts)",
        )
    })?;
    if !valid_name(&name) {
        return Err(err(&field, "use 1 to 64 letters, digits, `-`, `_` or `.`"));
    }
    if !seen.insert((user.clone(), name.clone())) {
        return Err(err(&field, format!("`{name}` is declared twice")));
    }
    Ok(name)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RawConfigFile {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let field = match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}")
                }
                None => "config file".to_owned(),
            };
            err(field, message)
        })
    }

    /// Validates every entry; `env` resolves `${VAR}` references.
    pub fn validate(self, env: &dyn Fn(&str) -> Option<String>) -> Result<ConfigFile, ConfigError> {
        let mut out = ConfigFile {
            proxy: self.proxy.unwrap_or_default().validate(env)?,
            ..ConfigFile::default()
        };
        let mut names = HashSet::new();
        for (i, raw) in self.provider_keys.into_iter().enumerate() {
            let at = |f: &str| format!("provider_keys[{i}].{f}");
            let name = entry_name(raw.name, &raw.user, &mut names, at("name"))?;
            let platform_text = raw
                .platform
                .ok_or_else(|| err(at("platform"), "is required"))?;
            let platform: Platform =
                platform_text
                    .parse()
                    .map_err(|e: providers::platform::UnknownPlatform| {
                        err(at("platform"), e.to_string())
                    })?;
            let key = raw
                .key
                .map(|k| interpolate(&k, &at("key"), env))
                .transpose()?
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty());
            let keyless = platform.info().keyless;
            if key.is_none() && !keyless && platform != Platform::Custom {
                return Err(err(
                    at("key"),
                    format!("is required for platform `{platform}`"),
                ));
            }
            let key = if keyless { None } else { key };
            let base_url = raw
                .base_url
                .map(|u| interpolate(&u, &at("base_url"), env))
                .transpose()?
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty());
            let credentials = key
                .clone()
                .map_or(UpstreamCredentials::None, UpstreamCredentials::Secret);
            Endpoint::new(platform, base_url.as_deref(), &credentials).map_err(|e| {
                let field = match e {
                    providers::EndpointError::MissingBaseUrl(_)
                    | providers::EndpointError::BadScheme
                    | providers::EndpointError::BadUrl(_)
                    | providers::EndpointError::CredentialsInUrl
                    | providers::EndpointError::QueryInUrl => "base_url",
                    _ => "key",
                };
                err(at(field), e.to_string())
            })?;
            let mut models = Vec::new();
            for (j, m) in raw.models.iter().enumerate() {
                let m = m.trim();
                if m.is_empty() || m == "auto" {
                    return Err(err(
                        format!("provider_keys[{i}].models[{j}]"),
                        "must be a model id (not empty, not `auto`)",
                    ));
                }
                if !models.iter().any(|x: &String| x == m) {
                    models.push(m.to_owned());
                }
            }
            if models.is_empty() {
                return Err(err(at("models"), "list at least one model this key serves"));
            }
            if let Some(l) = &raw.limits {
                let zero =
                    [l.rpm, l.rph, l.rpd].contains(&Some(0)) || [l.tpm, l.tpd].contains(&Some(0));
                if zero {
                    return Err(err(
                        at("limits"),
                        "a limit must be above 0 (leave it out for the catalog's)",
                    ));
                }
            }
            out.provider_keys.push(ProviderKeyConfig {
                label: raw.label.unwrap_or_else(|| name.clone()),
                name,
                platform,
                key,
                base_url,
                models,
                enabled: raw.enabled.unwrap_or(true),
                user: raw.user,
                limits: raw.limits,
            });
        }
        let mut names = HashSet::new();
        let mut values = HashSet::new();
        for (i, raw) in self.gateway_keys.into_iter().enumerate() {
            let at = |f: &str| format!("gateway_keys[{i}].{f}");
            let name = entry_name(raw.name, &raw.user, &mut names, at("name"))?;
            let key = raw
                .key
                .map(|k| interpolate(&k, &at("key"), env))
                .transpose()?
                .map(|k| k.trim().to_owned());
            if let Some(k) = &key {
                if k.len() < 24 || k.len() > 200 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(err(at("key"), "must be 24 to 200 visible ASCII characters (for example freellmapi-<random>)"));
                }
                if !values.insert(k.clone()) {
                    return Err(err(at("key"), "the same key value is declared twice"));
                }
            }
            if raw.rpm_limit == Some(0) {
                return Err(err(
                    at("rpm_limit"),
                    "must be above 0 (leave it out for no limit)",
                ));
            }
            if raw.tpd_limit == Some(0) {
                return Err(err(
                    at("tpd_limit"),
                    "must be above 0 (leave it out for no limit)",
                ));
            }
            let allowed_models = match raw.allowed_models {
                Some(models) => {
                    let models: Vec<String> = models
                        .into_iter()
                        .map(|m| m.trim().to_owned())
                        .filter(|m| !m.is_empty())
                        .collect();
                    if models.is_empty() {
                        return Err(err(
                            at("allowed_models"),
                            "list at least one model id or profile (leave it out for every model)",
                        ));
                    }
                    Some(models)
                }
                None => None,
            };
            out.gateway_keys.push(GatewayKeyConfig {
                label: raw.label.unwrap_or_else(|| name.clone()),
                name,
                key,
                enabled: raw.enabled.unwrap_or(true),
                user: raw.user,
                rpm_limit: raw.rpm_limit,
                tpd_limit: raw.tpd_limit,
                allowed_models,
            });
        }
        let mut names = HashSet::new();
        for (i, raw) in self.profiles.into_iter().enumerate() {
            let at = |f: &str| format!("profiles[{i}].{f}");
            let name = raw
                .name
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty() && n.chars().count() <= 64 && n != "auto")
                .ok_or_else(|| err(at("name"), "is required: 1 to 64 characters, not `auto`"))?;
            if !names.insert((raw.user.clone(), name.clone())) {
                return Err(err(
                    at("name"),
                    format!("profile `{name}` is declared twice"),
                ));
            }
            let strategy = raw.strategy.unwrap_or_else(|| "failover".into());
            if !["failover", "round-robin", "least-latency", "score"].contains(&strategy.as_str()) {
                return Err(err(
                    at("strategy"),
                    format!(
                        "must be failover, round-robin, least-latency or score, not `{strategy}`"
                    ),
                ));
            }
            let mut models: Vec<String> = Vec::new();
            for m in raw.models {
                let m = m.trim().to_owned();
                if m.is_empty() || m == "auto" || m == name {
                    return Err(err(at("models"), "must list real model ids"));
                }
                if !models.contains(&m) {
                    models.push(m);
                }
            }
            if models.is_empty() || models.len() > 32 {
                return Err(err(at("models"), "must list 1 to 32 models"));
            }
            out.profiles.push(ProfileConfig {
                name,
                strategy,
                models,
                user: raw.user,
            });
        }
        Ok(out)
    }
}

/// Reads, parses and validates a file; errors name the file and the field.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
    let raw = RawConfigFile::parse(&text)
        .map_err(|e| err(format!("{}: {}", path.display(), e.field), e.problem))?;
    raw.validate(env)
        .map_err(|e| err(format!("{}: {}", path.display(), e.field), e.problem))
}

/// What applying the file did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub provider_keys_changed: usize,
    pub provider_keys_unchanged: usize,
    pub gateway_keys_created: usize,
    pub gateway_keys_unchanged: usize,
    /// Keys minted because the file gave no value: (name, raw key), to be shown once.
    pub minted: Vec<(String, String)>,
    /// Entries in the store that the file no longer declares.
    pub undeclared: Vec<String>,
}

async fn owner(store: &Store, user: Option<&str>, field: &str) -> anyhow::Result<String> {
    match user {
        Some(name) => Ok(store
            .user_by_username(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{field}: user `{name}` does not exist"))?
            .id),
        None => Ok(store
            .first_admin()
            .await?
            .ok_or_else(|| anyhow::anyhow!("no admin user exists"))?
            .id),
    }
}

/// Applies the file to the store, idempotently.
pub async fn apply(store: &Store, config: &ConfigFile) -> anyhow::Result<ApplyReport> {
    let mut report = ApplyReport::default();
    for (i, k) in config.provider_keys.iter().enumerate() {
        let user_id = owner(
            store,
            k.user.as_deref(),
            &format!("provider_keys[{i}].user"),
        )
        .await?;
        let (row, mut changed) = store
            .upsert_config_provider_key(&NewProviderKey {
                user_id,
                platform: k.platform.id().to_owned(),
                label: k.label.clone(),
                secret: k.key.clone(),
                base_url: k.base_url.clone(),
                models: k.models.clone(),
                enabled: k.enabled,
                config_name: Some(k.name.clone()),
            })
            .await?;
        if let Some(limits) = k.limits.filter(|l| *l != row.limits) {
            store
                .update_provider_key(
                    &row.user_id,
                    &row.id,
                    &store::ProviderKeyPatch {
                        limits: Some(limits),
                        ..Default::default()
                    },
                )
                .await?;
            changed = true;
        }
        if changed {
            report.provider_keys_changed += 1;
        } else {
            report.provider_keys_unchanged += 1;
        }
    }
    for (i, g) in config.gateway_keys.iter().enumerate() {
        let user_id = owner(store, g.user.as_deref(), &format!("gateway_keys[{i}].user")).await?;
        let id = match store.gateway_key_by_config_name(&user_id, &g.name).await? {
            Some(existing) => {
                if let Some(raw) = &g.key {
                    if existing.key_hash != store::token_hash(raw) || existing.label != g.label {
                        store.rekey_gateway_key(&existing.id, &g.label, raw).await?;
                    }
                } else if existing.label != g.label {
                    store
                        .update_gateway_key(&user_id, &existing.id, Some(&g.label), None)
                        .await?;
                }
                if existing.enabled != g.enabled {
                    store
                        .update_gateway_key(&user_id, &existing.id, None, Some(g.enabled))
                        .await?;
                }
                report.gateway_keys_unchanged += 1;
                existing.id
            }
            None => {
                let (row, raw) = store
                    .create_gateway_key(&user_id, &g.label, g.key.as_deref(), Some(&g.name))
                    .await?;
                if !g.enabled {
                    store
                        .update_gateway_key(&user_id, &row.id, None, Some(false))
                        .await?;
                }
                if g.key.is_none() {
                    report.minted.push((g.name.clone(), raw));
                }
                report.gateway_keys_created += 1;
                row.id
            }
        };
        if g.rpm_limit.is_some() || g.tpd_limit.is_some() || g.allowed_models.is_some() {
            if let Some(current) = store.gateway_key(&user_id, &id).await? {
                let policy = store::GatewayKeyPolicy {
                    rpm_limit: g.rpm_limit.or(current.rpm_limit),
                    tpd_limit: g.tpd_limit.or(current.tpd_limit),
                    allowed_models: g.allowed_models.clone().or(current.allowed_models.clone()),
                };
                let unchanged = (policy.rpm_limit, policy.tpd_limit, &policy.allowed_models)
                    == (
                        current.rpm_limit,
                        current.tpd_limit,
                        &current.allowed_models,
                    );
                if !unchanged {
                    store.set_gateway_key_policy(&user_id, &id, &policy).await?;
                }
            }
        }
    }
    for (i, p) in config.profiles.iter().enumerate() {
        let user_id = owner(store, p.user.as_deref(), &format!("profiles[{i}].user")).await?;
        store
            .upsert_config_profile(&user_id, &p.name, &p.strategy, &p.models)
            .await?;
    }
    let declared: HashSet<&str> = config
        .provider_keys
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    for row in store.all_provider_keys().await? {
        if let Some(name) = row.config_name.as_deref().filter(|n| !declared.contains(n)) {
            report.undeclared.push(format!("provider key `{name}`"));
        }
    }
    let declared: HashSet<&str> = config
        .gateway_keys
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    for row in store.all_gateway_keys().await? {
        if let Some(name) = row.config_name.as_deref().filter(|n| !declared.contains(n)) {
            report.undeclared.push(format!("gateway key `{name}`"));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "GROQ_KEY" => Some("gsk_from_env".into()),
            _ => None,
        }
    }

    fn validate(text: &str) -> Result<ConfigFile, ConfigError> {
        RawConfigFile::parse(text)?.validate(&env)
    }

    #[test]
    fn full_example_validates() {
        let cfg = validate(
            r#"
            [[provider_keys]]
            name = "groq-main"
            platform = "groq"
            key = "${GROQ_KEY}"
            models = ["llama-3.3-70b-versatile", "llama-3.3-70b-versatile"]

            [[provider_keys]]
            name = "local"
            platform = "custom"
            base_url = "http://127.0.0.1:8080/v1"
            models = ["qwen"]

            [[provider_keys]]
            name = "ovh"
            platform = "ovh"
            models = ["Meta-Llama-3_3-70B-Instruct"]

            [[gateway_keys]]
            name = "ci"
            key = "freellmapi-0123456789abcdef0123"

            [[profiles]]
            name = "smart"
            strategy = "round-robin"
            models = ["qwen", "Meta-Llama-3_3-70B-Instruct", "qwen"]
            "#,
        )
        .unwrap();
        assert_eq!(cfg.provider_keys[0].key.as_deref(), Some("gsk_from_env"));
        assert_eq!(cfg.provider_keys[0].models.len(), 1);
        assert_eq!(cfg.provider_keys[0].label, "groq-main");
        assert_eq!(cfg.provider_keys[2].key, None);
        assert_eq!(
            cfg.gateway_keys[0].key.as_deref(),
            Some("freellmapi-0123456789abcdef0123")
        );
        assert_eq!(cfg.profiles[0].strategy, "round-robin");
        assert_eq!(
            cfg.profiles[0].models,
            vec!["qwen", "Meta-Llama-3_3-70B-Instruct"],
            "duplicates are dropped"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[[provider_keys]]\nplatform = \"groq\"", "provider_keys[0].name"),
            ("[[provider_keys]]\nname = \"a\"\nplatform = \"nope\"\nmodels=[\"m\"]", "provider_keys[0].platform"),
            ("[[provider_keys]]\nname = \"a\"\nplatform = \"groq\"\nmodels=[\"m\"]", "provider_keys[0].key"),
            ("[[provider_keys]]\nname = \"a\"\nplatform = \"groq\"\nkey = \"${MISSING}\"\nmodels=[\"m\"]", "provider_keys[0].key"),
            ("[[provider_keys]]\nname = \"a\"\nplatform = \"custom\"\nmodels=[\"m\"]", "provider_keys[0].base_url"),
            ("[[provider_keys]]\nname = \"a\"\nplatform = \"custom\"\nbase_url = \"ftp://x\"\nmodels=[\"m\"]", "provider_keys[0].base_url"),
            ("[[provider_keys]]\nname = \"a\"\nplatform = \"ovh\"\nmodels=[]", "provider_keys[0].models"),
            ("[[provider_keys]]\nname = \"a\"\nplatform = \"gemini-typo\"\nkey=\"k\"\nmodels=[\"m\"]", "provider_keys[0].platform"),
            ("[[gateway_keys]]\nname = \"g\"\nkey = \"short\"", "gateway_keys[0].key"),
            ("[[gateway_keys]]\nname = \"g\"\n[[gateway_keys]]\nname = \"g\"", "gateway_keys[1].name"),
            ("[[gateway_keys]]\nname = \"g\"\nbogus = 1", "line 3"),
            ("profiles = 3", "line 1"),
            ("[[profiles]]\nname = \"auto\"\nmodels = [\"m\"]", "profiles[0].name"),
            ("[[profiles]]\nname = \"p\"\nstrategy = \"fastest\"\nmodels = [\"m\"]", "profiles[0].strategy"),
            ("[[profiles]]\nname = \"p\"\nmodels = []", "profiles[0].models"),
        ];
        for (text, field) in cases {
            let e = validate(text).unwrap_err();
            assert!(e.field.starts_with(field), "{text:?}: got {e}");
        }
    }

    #[test]
    fn proxy_section() {
        let cfg = validate(
            "[proxy]\nurl = \"socks5h://u:${GROQ_KEY}@10.0.0.1:1080\"\nstrategy = \"least-latency\"\nbypass = [\"Groq\", \"custom\"]\nhealth_interval_seconds = 0\n",
        )
        .unwrap();
        let url = cfg.proxy.url.unwrap();
        assert_eq!(url.address(), "socks5h://10.0.0.1:1080");
        assert_eq!(url.credentials(), Some("u:gsk_from_env"));
        assert_eq!(cfg.proxy.strategy, Some(Strategy::LeastLatency));
        assert_eq!(
            cfg.proxy.bypass,
            Some(vec!["groq".to_owned(), "custom".to_owned()])
        );
        assert_eq!(cfg.proxy.health_interval, Some(std::time::Duration::ZERO));
        for (text, field) in [
            ("[proxy]\nurl = \"ftp://x:1\"", "proxy.url"),
            ("[proxy]\nstrategy = \"fastest\"", "proxy.strategy"),
            ("[proxy]\nbypass = [\"nope\"]", "proxy.bypass"),
            ("[proxy]\nhealth_target = \"x\"", "proxy.health_target"),
            ("[proxy]\nurls = 1", "line 2"),
        ] {
            let e = validate(text).unwrap_err();
            assert!(e.field.starts_with(field), "{text:?}: got {e}");
        }
    }

    #[test]
    fn interpolation() {
        assert_eq!(
            interpolate("a${GROQ_KEY}b", "f", &env).unwrap(),
            "agsk_from_envb"
        );
        assert_eq!(
            interpolate("$${GROQ_KEY} $5", "f", &env).unwrap(),
            "${GROQ_KEY} $5"
        );
        assert!(interpolate("${GROQ_KEY", "f", &env).is_err());
        assert!(interpolate("${bad-name}", "f", &env).is_err());
    }
}
