//! Versioned schema migrations, written in the SQL subset SQLite and PostgreSQL share (TEXT and BIGINT columns,
//! application-generated ids), applied in order at start-up inside one transaction each.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: r#"
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE provider_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    platform TEXT NOT NULL,
    label TEXT NOT NULL,
    secret TEXT,
    base_url TEXT,
    models TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'unknown',
    status_reason TEXT,
    config_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX provider_keys_user ON provider_keys(user_id);
CREATE UNIQUE INDEX provider_keys_config ON provider_keys(user_id, config_name);
CREATE TABLE gateway_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    config_name TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX gateway_keys_user ON gateway_keys(user_id);
CREATE UNIQUE INDEX gateway_keys_config ON gateway_keys(user_id, config_name);
-- `id` is the request id, which a client may choose (X-Request-ID) and reuse, so it is not a key.
CREATE TABLE requests (
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    gateway_key_id TEXT,
    endpoint TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    platform TEXT,
    model TEXT,
    provider_key_id TEXT,
    status TEXT NOT NULL,
    http_status BIGINT NOT NULL,
    error_class TEXT,
    error_message TEXT,
    stream BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    input_tokens BIGINT,
    output_tokens BIGINT,
    latency_ms BIGINT NOT NULL,
    ttfb_ms BIGINT,
    created_at BIGINT NOT NULL
);
-- One index only: every request inserts a row and retention deletes one, so each index is paid twice per request.
-- Per-user history reads walk this index newest first and filter by user.
CREATE INDEX requests_time ON requests(created_at)
"#,
    },
    Migration {
        version: 2,
        name: "per-key outbound limit overrides",
        sql: r#"
-- JSON object {"rpm","rph","rpd","tpm","tpd"}: NULL or a missing field means the catalog default.
ALTER TABLE provider_keys ADD COLUMN limits TEXT
"#,
    },
    Migration {
        version: 3,
        name: "outbound proxies",
        sql: r#"
-- `url` is scheme://host:port without credentials, `credentials` the encrypted user:password (if any).
CREATE TABLE proxies (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    url TEXT NOT NULL,
    credentials TEXT,
    country TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX proxies_user ON proxies(user_id)
"#,
    },
    Migration {
        version: 4,
        name: "AI profiles",
        sql: r#"
CREATE TABLE profiles (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    strategy TEXT NOT NULL,
    models TEXT NOT NULL,
    config_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX profiles_name ON profiles(user_id, name)
"#,
    },
    Migration {
        version: 5,
        name: "gateway key limits, allow-list and usage counters",
        sql: r#"
-- NULL limits mean no limit. `allowed_models` is a JSON array of model ids, NULL for every model.
ALTER TABLE gateway_keys ADD COLUMN rpm_limit BIGINT;
ALTER TABLE gateway_keys ADD COLUMN tpd_limit BIGINT;
ALTER TABLE gateway_keys ADD COLUMN allowed_models TEXT;
-- Totals since the key was created, flushed from memory every few seconds.
ALTER TABLE gateway_keys ADD COLUMN request_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE gateway_keys ADD COLUMN token_count BIGINT NOT NULL DEFAULT 0
"#,
    },
    Migration {
        version: 6,
        name: "failed upstream attempts",
        sql: r#"
-- One row per upstream attempt that failed (the attempt that served a request is its `requests` row), so a key's
-- numbers count every attempt made through it. Written with the request's row, pruned with the history.
CREATE TABLE attempt_failures (
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    provider_key_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    model TEXT NOT NULL,
    error_class TEXT NOT NULL,
    http_status BIGINT,
    error_message TEXT,
    latency_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attempt_failures_key ON attempt_failures(provider_key_id, created_at);
CREATE INDEX attempt_failures_time ON attempt_failures(created_at)
"#,
    },
];

/// Splits a migration into statements (the schema SQL contains no semicolons inside literals).
pub fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| !s.is_empty())
}
