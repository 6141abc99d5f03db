//! Command line and environment. Every option can be given as a flag or as the environment variable named in
//! `--help`; the variable names and defaults are those of the original FreeLLMAPI where it had one.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `freellmapi --version`: the crate version, the commit and the build date (UTC) stamped by build.rs.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FREELLMAPI_GIT_COMMIT"),
    ", built ",
    env!("FREELLMAPI_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "freellmapi",
    version = VERSION,
    about = "One OpenAI-compatible endpoint in front of every free LLM tier you own keys for."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: Box<ServeArgs>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Outbound proxy tools.
    #[command(subcommand)]
    Proxies(ProxiesCommand),
    /// Ask the local gateway's /api/ping and exit 0 if it answers (for container health checks).
    Healthcheck(HealthcheckArgs),
    /// Import the provider keys (and optionally the request history) of a FreeLLMAPI 1.x install (the Node
    /// original). Its database is only read; every key is decrypted with its ENCRYPTION_KEY before anything is
    /// written; keys already present are skipped.
    MigrateFromOld(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The old install's directory (or its freeapi.db).
    #[arg(default_value = ".")]
    pub path: PathBuf,

    /// The old install's ENCRYPTION_KEY (64 hex); else read from its .env, its .encryption-key file or its
    /// settings table.
    #[arg(long, env = "OLD_ENCRYPTION_KEY", hide_env_values = true)]
    pub old_key: Option<String>,

    /// The user who receives the keys (default: the first admin).
    #[arg(long)]
    pub user: Option<String>,

    /// Also import the old request history.
    #[arg(long)]
    pub with_history: bool,

    /// Check and count only; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// This gateway's settings (DATA_DIR, DATABASE_URL, ENCRYPTION_KEY, ADMIN_*), as for `serve`.
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Port of the gateway to ask.
    #[arg(long, env = "PORT", default_value_t = 3001)]
    pub port: u16,

    /// Address of the gateway to ask; 0.0.0.0 and :: (listening everywhere) are asked on loopback.
    #[arg(long = "host", env = "HOST_BIND", default_value = "127.0.0.1")]
    pub host: String,

    /// How long the whole check may take, in milliseconds.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum ProxiesCommand {
    /// Test candidate proxies concurrently and write the working ones in the import format
    /// (`POST /api/proxies/import`).
    Find(FindArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FindArgs {
    /// Files or http(s) URLs of candidate lists: one proxy URL (or host:port, taken as HTTP) per line.
    #[arg(required = true)]
    pub sources: Vec<String>,

    /// Where to write the working proxies; `-` writes to standard output.
    #[arg(long, short, default_value = "working-proxies.txt")]
    pub output: PathBuf,

    /// Candidates tested at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// Time each candidate has to answer, in milliseconds.
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,

    /// URL fetched through each candidate; any HTTP answer counts as working.
    #[arg(long, default_value = DEFAULT_PROBE_TARGET)]
    pub target: String,

    /// Geo-IP service fetched through each working candidate; it must answer JSON with `country_code`,
    /// `countryCode` or a two-letter `country` for the caller's address. Off by default (no third party is asked).
    #[arg(long)]
    pub geo_url: Option<String>,

    /// Keep only proxies whose exit country is one of these ISO codes (comma-separated); needs --geo-url.
    #[arg(long = "country", value_delimiter = ',')]
    pub countries: Vec<String>,
}

/// What a proxy probe fetches by default: a tiny HTTPS answer.
pub const DEFAULT_PROBE_TARGET: &str = "https://www.gstatic.com/generate_204";

/// What the binary was asked to do.
#[derive(Debug)]
pub enum Action {
    Serve(Box<ServeArgs>),
    FindProxies(FindArgs),
    Healthcheck(HealthcheckArgs),
    MigrateFromOld(MigrateArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3001)]
    pub port: u16,

    /// Interface to bind; 0.0.0.0 exposes the gateway to the network.
    #[arg(long = "host", env = "HOST_BIND", default_value = "127.0.0.1")]
    pub host_bind: String,

    /// Directory for the SQLite database and the generated encryption key file.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL: sqlite://<path> or postgres://user:pass@host/db. Default: SQLite at <DATA_DIR>/freellmapi.db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// 64 hex characters (32 bytes) encrypting provider keys at rest. If unset, read from <DATA_DIR>/encryption.key,
    /// or generated there (mode 0600) on the first start.
    #[arg(long, env = "ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// Username of the admin created on the first start.
    #[arg(long, env = "ADMIN_USERNAME", default_value = "admin")]
    pub admin_username: String,

    /// Password of the admin created on the first start (at least 8 characters). If unset on the first start, one
    /// is generated and printed once.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Declarative TOML file of provider keys and gateway keys, applied idempotently at start-up.
    #[arg(long = "config", env = "FREELLMAPI_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log verbosity.
    #[arg(
        long,
        env = "LOG_LEVEL",
        value_enum,
        ignore_case = true,
        default_value = "info"
    )]
    pub log_level: LogLevel,

    /// Log line format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Also write the log lines to daily files in this directory (`freellmapi-YYYY-MM-DD.log`, UTC days).
    #[arg(long, env = "LOG_DIR")]
    pub log_dir: Option<PathBuf>,

    /// Days of log files kept besides today's (with LOG_DIR); 0 keeps them all.
    #[arg(long, env = "LOG_RETENTION_DAYS", default_value_t = 14)]
    pub log_retention_days: u64,

    /// Requests per minute per client address on /v1; 0 turns the limit off.
    #[arg(long, env = "PROXY_RATE_LIMIT_RPM", default_value_t = 120)]
    pub proxy_rate_limit_rpm: u32,

    /// Largest accepted request body, in MiB.
    #[arg(long, env = "REQUEST_BODY_LIMIT_MB", default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub request_body_limit_mb: u32,

    /// Seconds a request waits, in arrival order, for a rate-limited or capped provider key to free up before it
    /// gets a 429 with Retry-After; 0 answers 429 at once.
    #[arg(long, env = "REQUEST_QUEUE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub request_queue_timeout_seconds: u64,

    /// Minutes between refreshes of every provider key's model list (new models are added, vanished ones logged);
    /// 0 turns the refresh off.
    #[arg(long, env = "MODEL_REFRESH_INTERVAL_MINUTES", default_value_t = 0)]
    pub model_refresh_interval_minutes: u64,

    /// Deadline of a whole non-streaming upstream call, in milliseconds.
    #[arg(long, env = "PROVIDER_TIMEOUT_MS", default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub provider_timeout_ms: u64,

    /// A client must send a request's head (request line and headers) within this many milliseconds; an idle
    /// keep-alive connection is closed after it too.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_read_timeout_ms: u64,

    /// A request body must have fully arrived within this many milliseconds (408 otherwise).
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub body_read_timeout_ms: u64,

    /// Most open client connections; past it new connections get an immediate 503. 0: no cap (keep it below the
    /// process's open-file limit, which upstream connections share).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 8192)]
    pub max_connections: usize,

    /// Most open connections from one client address (a reverse proxy in front counts as one); past it, 429. 0: no cap.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 2048)]
    pub max_connections_per_ip: usize,

    /// On SIGTERM, how long in-flight requests and streams may take to finish before their connections are closed
    /// (milliseconds). Below systemd's 90 s and Docker's default 10 s stop timeout, set it lower there.
    #[arg(long, env = "SHUTDOWN_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub shutdown_drain_timeout_ms: u64,

    /// Before anything reached the client, a stream with no content, tool or reasoning delta for this long is
    /// abandoned and the next key is tried (milliseconds).
    #[arg(long, env = "STREAM_FIRST_TOKEN_STALL_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_first_token_stall_ms: u64,

    /// A non-streamed upstream call whose response headers have not come this long after it was sent is abandoned
    /// and the next key tried (milliseconds). Many providers send headers only with the finished answer: raise it
    /// for long non-streamed generations. Streams wait for headers STREAM_FIRST_TOKEN_STALL_MS.
    #[arg(long, env = "PROVIDER_FIRST_BYTE_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub provider_first_byte_timeout_ms: u64,

    /// After the first byte reached the client, a stream silent for this long is ended with an error event
    /// (milliseconds).
    #[arg(long, env = "PROVIDER_STREAM_STALL_TIMEOUT_MS", default_value_t = 90_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub provider_stream_stall_timeout_ms: u64,

    /// `on_model_switch`: when the model serving a conversation changes between turns, tell the new model in a
    /// short system note that the earlier assistant turns came from another model. `off` (default) never alters
    /// the messages.
    #[arg(long, env = "FREELLMAPI_CONTEXT_HANDOFF", default_value = "off", value_parser = ["off", "on_model_switch"])]
    pub context_handoff: String,

    /// Most provider keys tried for one request.
    #[arg(long, env = "FALLBACK_MAX_RETRIES", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub fallback_max_retries: u32,

    /// Days of request history to keep; 0 keeps everything.
    #[arg(long, env = "REQUEST_ANALYTICS_RETENTION_DAYS", default_value_t = 90)]
    pub request_analytics_retention_days: u64,

    /// Most request-history rows to keep; 0 means no limit.
    #[arg(long, env = "REQUEST_ANALYTICS_MAX_ROWS", default_value_t = 100_000)]
    pub request_analytics_max_rows: u64,

    /// One proxy for every proxied request, over the pool: http://, https://, socks5://, socks5h:// or socks4://,
    /// with optional user:password@. Plain-HTTP upstreams never go through it.
    #[arg(long, env = "PROXY_URL", hide_env_values = true)]
    pub proxy_url: Option<String>,

    /// Proxy pool strategy: none, random, round-robin or least-latency. When given it is saved and overrides the
    /// value set in the dashboard; unset, the saved value applies (default none).
    #[arg(long, env = "PROXY_POOL_STRATEGY")]
    pub proxy_pool_strategy: Option<String>,

    /// Comma-separated platform ids that always go direct (e.g. groq,google). Saved like the strategy.
    #[arg(long, env = "PROXY_BYPASS")]
    pub proxy_bypass: Option<String>,

    /// When every proxy tried for an attempt failed, send it direct instead of failing the attempt (true/false).
    /// Saved like the strategy; default false.
    #[arg(long, env = "PROXY_DIRECT_FALLBACK")]
    pub proxy_direct_fallback: Option<bool>,

    /// Seconds between health probes of every enabled proxy; 0 turns the checker off. Default 60.
    #[arg(long, env = "PROXY_HEALTH_INTERVAL_SECONDS")]
    pub proxy_health_interval_seconds: Option<u64>,

    /// URL each health probe fetches through the proxy. Default https://www.gstatic.com/generate_204.
    #[arg(long, env = "PROXY_HEALTH_TARGET")]
    pub proxy_health_target: Option<String>,

    /// Reverse proxies (addresses or CIDR networks, comma-separated) whose `Forwarded` / `X-Forwarded-For` headers
    /// name the client for the per-address limit, login throttling and logs. Empty: the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// An /api request (the dashboard, the admin API) not answered within this many milliseconds gets a 503
    /// `api_timeout` instead of hanging on a stalled disk or database (the playground and proxy tests excepted).
    /// 0 never times out.
    #[arg(long, env = "API_TIMEOUT_MS", default_value_t = 30_000)]
    pub api_timeout_ms: u64,

    /// Redis (or Valkey) shared by several gateway instances on one PostgreSQL DATABASE_URL: outbound limits, gateway
    /// keys' limits, cooldowns, invalid keys, admin changes and live events become fleet-wide. Unset: one instance.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Serve Prometheus metrics at GET /metrics to `Authorization: Bearer <this token>`. Unset: /metrics is off.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Extra CA certificates (PEM files, comma- or colon-separated) trusted for outbound TLS on top of the bundled
    /// web roots and the system's (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured too): an internal CA, a
    /// TLS-inspecting corporate proxy.
    #[arg(long, env = "EXTRA_CA_CERTS", default_value = "")]
    pub extra_ca_certs: String,

    /// Browser origins besides the gateway's own allowed to call /api and /v1 (CORS, CSRF), comma-separated,
    /// e.g. https://dash.example.com,http://localhost:5173.
    #[arg(long, env = "DASHBOARD_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub dashboard_origins: Vec<String>,

    /// Host names a browser may reach the gateway under (DNS-rebinding guard), comma-separated; `.example.com`
    /// also matches subdomains, `*` any name. Unset: localhost, *.localhost and IP literals when bound to loopback,
    /// any name otherwise. The hosts of DASHBOARD_ORIGINS are always allowed.
    #[arg(long, env = "ALLOWED_HOSTS", default_value = "")]
    pub allowed_hosts: String,

    /// Whether provider base URLs may point at loopback and private networks (local llama.cpp, vLLM, Ollama).
    /// Cloud-metadata and link-local addresses are refused either way.
    #[arg(long, env = "ALLOW_PRIVATE_PROVIDER_URLS", default_value = "true", action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_private_provider_urls: bool,

    /// Hours a dashboard login session lasts.
    #[arg(long, env = "SESSION_TTL_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub session_ttl_hours: u64,
}

/// One `DASHBOARD_ORIGINS` entry: `scheme://host[:port]`, normalised to lowercase without a trailing slash.
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    if value.is_empty() {
        return Ok(String::new());
    }
    match server::guard::inbound::origin_of(value) {
        Some(origin)
            if origin == value.to_ascii_lowercase()
                && (origin.starts_with("http://") || origin.starts_with("https://")) =>
        {
            Ok(origin)
        }
        _ => Err(format!(
            "`{value}` is not an origin (scheme://host[:port], no path)"
        )),
    }
}

impl Cli {
    /// What to do: serve (whether `serve` was given or the options were passed at the top level) or a tool.
    pub fn action(self) -> Action {
        match self.command {
            Some(Command::Serve(args)) => Action::Serve(args),
            Some(Command::Proxies(ProxiesCommand::Find(args))) => Action::FindProxies(args),
            Some(Command::Healthcheck(args)) => Action::Healthcheck(args),
            Some(Command::MigrateFromOld(args)) => Action::MigrateFromOld(args),
            None => Action::Serve(self.serve),
        }
    }

    /// The serve arguments (the top-level ones when a tool was asked for).
    pub fn serve_args(self) -> ServeArgs {
        match self.command {
            Some(Command::Serve(args)) => *args,
            _ => *self.serve,
        }
    }
}

impl ServeArgs {
    /// The daily log files asked for with `LOG_DIR`.
    pub fn log_files(&self) -> Option<crate::log_files::LogFiles> {
        self.log_dir
            .as_ref()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|dir| crate::log_files::LogFiles {
                dir: dir.clone(),
                retention_days: self.log_retention_days,
            })
    }
}
