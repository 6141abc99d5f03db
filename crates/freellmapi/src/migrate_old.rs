//! `freellmapi migrate-from-old [PATH]`: imports the provider keys (and, when asked, the request history) of an
//! install of the Node original. The old database is opened read-only and every key is decrypted with the old
//! `ENCRYPTION_KEY` before anything is written here; keys are re-encrypted with this gateway's key; a key already
//! present (same platform and secret) is skipped, so running it twice imports nothing twice.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Context};
use providers::Platform;
use store::legacy::{self, LegacyInstall};
use store::{NewProviderKey, RequestLog};

use crate::cli::MigrateArgs;

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub database: PathBuf,
    pub keys_found: usize,
    pub keys_imported: usize,
    pub keys_already_present: usize,
    /// Keys of platforms this gateway does not serve, with their platform names.
    pub keys_unsupported: Vec<String>,
    pub history_imported: usize,
    /// The history was imported by an earlier run.
    pub history_already_present: bool,
    pub dry_run: bool,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "FreeLLMAPI 1.x database: {}", self.database.display())?;
        writeln!(
            f,
            "  provider keys: {} found, all decrypted with the old ENCRYPTION_KEY",
            self.keys_found
        )?;
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        writeln!(
            f,
            "  {verb} {}, {} already present (skipped)",
            self.keys_imported, self.keys_already_present
        )?;
        if !self.keys_unsupported.is_empty() {
            writeln!(
                f,
                "  skipped {} of platforms not served here: {}",
                self.keys_unsupported.len(),
                self.keys_unsupported.join(", ")
            )?;
        }
        if self.history_already_present {
            writeln!(f, "  request history: imported by an earlier run (skipped)")?;
        } else if self.history_imported > 0 {
            writeln!(
                f,
                "  request history: {verb} {} rows",
                self.history_imported
            )?;
        }
        if self.dry_run {
            writeln!(f, "  dry run: nothing was written")?;
        }
        Ok(())
    }
}

/// The old platform's base URL where it differs from this gateway's default for that platform.
fn legacy_base_url(platform: &str, stored: Option<String>) -> Option<String> {
    match platform {
        // The original's `zhipu` is BigModel's China endpoint; this gateway's `zai` default is z.ai's.
        "zhipu" => stored.or_else(|| Some("https://open.bigmodel.cn/api/paas/v4".to_owned())),
        _ => stored,
    }
}

pub async fn run(args: &MigrateArgs) -> anyhow::Result<MigrationReport> {
    let install = LegacyInstall::find(&args.path).map_err(anyhow::Error::msg)?;
    let key = install
        .encryption_key(args.old_key.as_deref())
        .map_err(anyhow::Error::msg)?;
    // Everything is read and decrypted before anything is written.
    let keys = legacy::read_keys(&install.database, &key)
        .map_err(anyhow::Error::msg)
        .context("the old install's keys could not all be decrypted: nothing was imported")?;
    let history = if args.with_history {
        legacy::read_requests(&install.database).map_err(anyhow::Error::msg)?
    } else {
        Vec::new()
    };
    if keys.is_empty() && history.is_empty() {
        bail!("the old database holds no provider keys and no history");
    }
    let mut report = MigrationReport {
        database: install.database.clone(),
        keys_found: keys.len(),
        dry_run: args.dry_run,
        ..MigrationReport::default()
    };
    if args.dry_run && !crate::startup::store_exists(&args.serve) {
        // Nothing to compare with, and a dry run creates nothing: every key of a served platform would be new.
        for k in &keys {
            match k.platform.parse::<Platform>() {
                Ok(_) => report.keys_imported += 1,
                Err(_) => report.keys_unsupported.push(k.platform.clone()),
            }
        }
        report.history_imported = history.len();
        return Ok(report);
    }
    let store = crate::startup::open_store_for_tool(&args.serve).await?;
    let owner = match &args.user {
        Some(name) => store
            .user_by_username(name)
            .await?
            .with_context(|| format!("no user `{name}` in this gateway"))?,
        None => store
            .first_admin()
            .await?
            .context("this gateway has no admin yet: set ADMIN_PASSWORD or start it once")?,
    };
    let mut present: HashSet<(String, String)> = HashSet::new();
    for row in store.provider_keys_of(&owner.id).await? {
        if let Ok(Some(secret)) = store.reveal(&row) {
            present.insert((row.platform.clone(), secret));
        }
    }
    let mut new_ids: HashMap<String, String> = HashMap::new();
    for k in &keys {
        let Ok(platform) = k.platform.parse::<Platform>() else {
            report.keys_unsupported.push(k.platform.clone());
            continue;
        };
        let platform_id = platform.id().to_owned();
        if !present.insert((platform_id.clone(), k.secret.clone())) {
            report.keys_already_present += 1;
            continue;
        }
        report.keys_imported += 1;
        if args.dry_run {
            continue;
        }
        let row = store
            .insert_provider_key(&NewProviderKey {
                user_id: owner.id.clone(),
                platform: platform_id,
                label: k.label.clone(),
                secret: (!k.secret.is_empty()).then(|| k.secret.clone()),
                base_url: legacy_base_url(&k.platform, k.base_url.clone()),
                models: k.models.clone(),
                enabled: k.enabled,
                config_name: None,
            })
            .await
            .with_context(|| format!("importing the old key {} ({})", k.id, k.label))?;
        new_ids.insert(k.id.clone(), row.id);
    }
    if let Some(first) = history.first() {
        if store
            .request_exists(&format!("legacy-{}", first.id))
            .await?
        {
            report.history_already_present = true;
        } else {
            let owner_id: std::sync::Arc<str> = std::sync::Arc::from(owner.id.as_str());
            let rows: Vec<RequestLog> = history
                .iter()
                .map(|r| RequestLog {
                    id: format!("legacy-{}", r.id).into(),
                    user_id: owner_id.clone(),
                    gateway_key_id: None,
                    endpoint: match r.request_type.as_deref() {
                        Some("embedding" | "embeddings") => "embeddings",
                        _ => "chat",
                    },
                    requested_model: r.requested_model.clone().unwrap_or_else(|| "auto".into()),
                    platform: r
                        .platform
                        .as_deref()
                        .and_then(|p| p.parse::<Platform>().ok())
                        .map(|p| p.id()),
                    model: r.model.as_deref().map(Into::into),
                    provider_key_id: r
                        .key_id
                        .as_ref()
                        .and_then(|id| new_ids.get(id))
                        .map(|id| id.as_str().into()),
                    status: match r.status.as_str() {
                        "success" => "success",
                        "canceled" | "cancelled" => "canceled",
                        _ => "error",
                    },
                    http_status: if r.status == "success" { 200 } else { 0 },
                    error_class: (r.status != "success" && r.status != "canceled")
                        .then_some("legacy"),
                    error_message: r.error.clone(),
                    stream: false,
                    attempts: 1,
                    input_tokens: r.input_tokens.map(|n| n.max(0) as u64),
                    output_tokens: r.output_tokens.map(|n| n.max(0) as u64),
                    latency_ms: r.latency_ms.max(0) as u64,
                    ttfb_ms: r.ttfb_ms.map(|n| n.max(0) as u64),
                    created_at: r.created_at_ms,
                    failed_attempts: Vec::new(),
                })
                .collect();
            report.history_imported = rows.len();
            if !args.dry_run {
                for chunk in rows.chunks(500) {
                    store.insert_request_logs(chunk).await?;
                }
            }
        }
    }
    store.close().await;
    Ok(report)
}
