//! The start-up sequence: data directory, encryption key, database and migrations, admin bootstrap, declarative
//! configuration, then the HTTP server. Any failure stops start-up with a message that says what to fix.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use server::proxy::{ProxyConfig, ProxyUrl, Strategy};
use server::{AppState, ServerConfig};
use store::{AdminBootstrap, KeySource, Store, StoreError};
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::declarative;

/// Everything `serve` prepared, before listening.
pub struct Prepared {
    pub state: AppState,
    pub listener: TcpListener,
}

/// The proxy settings: flags and environment first, then the file's `[proxy]` section, then the defaults.
fn proxy_config(
    args: &ServeArgs,
    file: Option<&declarative::ProxySection>,
) -> anyhow::Result<ProxyConfig> {
    let file = file.cloned().unwrap_or_default();
    let single = match args
        .proxy_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    {
        Some(text) => Some(ProxyUrl::parse(text).map_err(|e| anyhow::anyhow!("PROXY_URL: {e}"))?),
        None => file.url,
    };
    let strategy = match &args.proxy_pool_strategy {
        Some(text) => Some(
            text.parse::<Strategy>()
                .map_err(|e| anyhow::anyhow!("PROXY_POOL_STRATEGY: {e}"))?,
        ),
        None => file.strategy,
    };
    let bypass = match &args.proxy_bypass {
        Some(text) => Some(
            declarative::validate_bypass(std::slice::from_ref(text), "PROXY_BYPASS")
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => file.bypass,
    };
    let defaults = ProxyConfig::default();
    let health_target = match &args.proxy_health_target {
        Some(t) => declarative::validate_target(t, "PROXY_HEALTH_TARGET")
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        None => file.health_target.unwrap_or(defaults.health_target),
    };
    Ok(ProxyConfig {
        single,
        strategy,
        bypass,
        direct_fallback: args.proxy_direct_fallback.or(file.direct_fallback),
        health_interval: args
            .proxy_health_interval_seconds
            .map(Duration::from_secs)
            .or(file.health_interval)
            .unwrap_or(defaults.health_interval),
        health_target,
        ..defaults
    })
}

fn server_config(
    args: &ServeArgs,
    proxy: ProxyConfig,
    trust: server::trust::TrustStore,
    trusted_proxies: server::guard::forwarded::TrustedProxies,
) -> ServerConfig {
    let dashboard_origins: Vec<String> = args
        .dashboard_origins
        .iter()
        .filter(|o| !o.is_empty())
        .cloned()
        .collect();
    ServerConfig {
        trust,
        trusted_proxies: std::sync::Arc::new(trusted_proxies),
        redis_url: args.redis_url.clone().filter(|u| !u.trim().is_empty()),
        api_timeout: Duration::from_millis(args.api_timeout_ms),
        metrics_token_hash: args
            .metrics_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(server::runtime::snapshot::hash_token),
        proxy,
        body_limit_bytes: args.request_body_limit_mb as usize * 1024 * 1024,
        upstream_timeout: Duration::from_millis(args.provider_timeout_ms),
        first_token_stall: Duration::from_millis(args.stream_first_token_stall_ms),
        stream_idle_timeout: Duration::from_millis(args.provider_stream_stall_timeout_ms),
        first_byte_timeout: Duration::from_millis(args.provider_first_byte_timeout_ms),
        max_attempts: args.fallback_max_retries as usize,
        ip_rate_limit_rpm: args.proxy_rate_limit_rpm,
        queue_timeout: Duration::from_secs(args.request_queue_timeout_seconds),
        context_handoff: args.context_handoff == "on_model_switch",
        session_ttl: Duration::from_secs(args.session_ttl_hours * 3600),
        log_retention: (args.request_analytics_retention_days > 0)
            .then(|| Duration::from_secs(args.request_analytics_retention_days * 86_400)),
        log_max_rows: (args.request_analytics_max_rows > 0)
            .then_some(args.request_analytics_max_rows),
        dashboard_origins: dashboard_origins.clone(),
        allowed_hosts: server::guard::inbound::AllowedHosts::new(
            &args.allowed_hosts,
            &args.host_bind,
            &dashboard_origins,
        ),
        allow_private_provider_urls: args.allow_private_provider_urls,
        model_refresh: (args.model_refresh_interval_minutes > 0)
            .then(|| Duration::from_secs(args.model_refresh_interval_minutes * 60)),
        connections: server::guard::listener::ConnectionLimits {
            header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
            max_connections: args.max_connections,
            max_per_address: args.max_connections_per_ip,
            drain_timeout: Duration::from_millis(args.shutdown_drain_timeout_ms),
        },
        body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
        ..ServerConfig::default()
    }
}

/// Opens the store with the resolved encryption key. A freshly generated key that does not open an existing database
/// is removed again, so a missing key never leaves a wrong key file behind.
async fn open_store(args: &ServeArgs, url: &str) -> anyhow::Result<Store> {
    let (cipher, source) =
        store::resolve_encryption_key(args.encryption_key.as_deref(), &args.data_dir)?;
    match Store::open(url, cipher).await {
        Ok(store) => {
            match &source {
                KeySource::Generated(path) => tracing::warn!(
                    path = %path.display(),
                    "no ENCRYPTION_KEY set: generated one and saved it (mode 0600); back this file up with the database"
                ),
                KeySource::KeyFile(path) => {
                    tracing::info!(path = %path.display(), "encryption key read from key file")
                }
                KeySource::Environment => tracing::info!("encryption key read from ENCRYPTION_KEY"),
            }
            Ok(store)
        }
        Err(StoreError::WrongEncryptionKey) => {
            if let KeySource::Generated(path) = &source {
                let _ = std::fs::remove_file(path);
                bail!(
                    "the database at {} already holds data encrypted with another key, and no key was given: set \
                     ENCRYPTION_KEY or restore {} (nothing was changed)",
                    store::redact_url(url),
                    path.display()
                );
            }
            Err(StoreError::WrongEncryptionKey.into())
        }
        Err(e) => {
            if let KeySource::Generated(path) = &source {
                let _ = std::fs::remove_file(path);
            }
            Err(e).with_context(|| format!("cannot open the database {}", store::redact_url(url)))
        }
    }
}

/// Whether this gateway's database exists already (a PostgreSQL URL is taken to).
pub fn store_exists(args: &ServeArgs) -> bool {
    match &args.database_url {
        Some(url) if !url.trim().is_empty() => true,
        _ => store::default_sqlite_path(&args.data_dir).exists(),
    }
}

/// The store for a tool (`migrate-from-old`): the data directory, the encryption key and the database as `serve`
/// resolves them, and the admin bootstrapped the same way (a generated password is printed once).
pub async fn open_store_for_tool(args: &ServeArgs) -> anyhow::Result<Store> {
    ensure_data_dir(&args.data_dir)?;
    let url = database_url(args);
    let store = open_store(args, &url).await?;
    bootstrap_admin(&store, args, "the gateway").await?;
    Ok(store)
}

async fn bootstrap_admin(store: &Store, args: &ServeArgs, at: &str) -> anyhow::Result<()> {
    match store
        .bootstrap_admin(Some(&args.admin_username), args.admin_password.as_deref())
        .await?
    {
        AdminBootstrap::Existing => {}
        AdminBootstrap::Created { username } => {
            tracing::info!(%username, "admin user created from ADMIN_USERNAME/ADMIN_PASSWORD")
        }
        AdminBootstrap::Generated { username, password } => {
            // Printed once, to the terminal, not through the log pipeline.
            eprintln!(
                "\n  First start: created admin user `{username}` with password: {password}\n  \
                 Log in at {at} and change it. This password is not shown again.\n"
            );
        }
    }
    Ok(())
}

pub fn database_url(args: &ServeArgs) -> String {
    match &args.database_url {
        Some(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => format!(
            "sqlite://{}",
            store::default_sqlite_path(&args.data_dir).display()
        ),
    }
}

fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Runs everything up to (not including) serving.
/// Loads what outbound TLS trusts; a named CA file that cannot be used stops the start.
fn trust_store(args: &ServeArgs) -> anyhow::Result<server::trust::TrustStore> {
    let extra = server::trust::parse_path_list(&args.extra_ca_certs);
    let trust = server::trust::TrustStore::load(&extra)
        .map_err(|e| anyhow::anyhow!("EXTRA_CA_CERTS: {e}"))?;
    for error in &trust.platform_errors {
        tracing::warn!(%error, "could not read part of the system trust store (SSL_CERT_FILE / SSL_CERT_DIR)");
    }
    tracing::info!(
        bundled = trust.bundled,
        system = trust.platform,
        extra = trust.extra,
        "outbound TLS trust store loaded"
    );
    Ok(trust)
}

pub async fn prepare(args: &ServeArgs) -> anyhow::Result<Prepared> {
    if let Some(p) = args.admin_password.as_deref().filter(|p| !p.is_empty()) {
        if p.chars().count() < 8 {
            bail!("ADMIN_PASSWORD must be at least 8 characters");
        }
    }
    // Validate the declarative file before touching anything.
    let env = |name: &str| std::env::var(name).ok();
    let config_file = match &args.config {
        Some(path) => Some(
            declarative::load(path, &env)
                .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?,
        ),
        None => None,
    };
    let proxy = proxy_config(args, config_file.as_ref().map(|c| &c.proxy))?;
    let trust = trust_store(args)?;
    let trusted_proxies = server::guard::forwarded::TrustedProxies::parse(&args.trusted_proxies)
        .map_err(|e| anyhow::anyhow!("TRUSTED_PROXIES: {e}"))?;
    let address: SocketAddr = format!("{}:{}", args.host_bind, args.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", args.host_bind, args.port).parse())
        .with_context(|| format!("HOST_BIND `{}` is not an IP address", args.host_bind))?;
    ensure_data_dir(&args.data_dir)?;
    let url = database_url(args);
    let store = open_store(args, &url).await?;
    bootstrap_admin(&store, args, &format!("http://{address}/")).await?;
    if let Some(config_file) = &config_file {
        let report = declarative::apply(&store, config_file).await?;
        tracing::info!(
            provider_keys_changed = report.provider_keys_changed,
            provider_keys_unchanged = report.provider_keys_unchanged,
            gateway_keys_created = report.gateway_keys_created,
            "configuration file applied"
        );
        for (name, raw) in &report.minted {
            eprintln!("\n  Gateway key `{name}` created from the configuration file: {raw}\n  It is shown only once.\n");
        }
        for item in &report.undeclared {
            tracing::warn!(item = %item, "declared by an earlier configuration file but not this one; kept (delete it in the admin API if unwanted)");
        }
    }
    let state = AppState::new(server_config(args, proxy, trust, trusted_proxies), store).await?;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    Ok(Prepared { state, listener })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: draining requests and flushing request logs");
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let prepared = prepare(&args).await?;
    let addr = prepared.listener.local_addr()?;
    tracing::info!(address = %addr, database = store::redact_url(&database_url(&args)), "FreeLLMAPI listening on http://{addr}");
    server::serve(prepared.listener, prepared.state, shutdown_signal()).await?;
    Ok(())
}
