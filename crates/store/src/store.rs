//! The store: one pool, portable SQL, encryption of provider secrets.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::crypto::{
    hash_password, random_hex, token_hash, verify_password, Cipher, PasswordError,
};
use crate::migrations::{statements, MIGRATIONS};
use crate::records::*;

mod gateway_keys;
mod proxies;
mod requests;

const ENCRYPTION_CHECK_PLAINTEXT: &str = "freellmapi encryption check v1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ENCRYPTION_KEY must be exactly 64 hexadecimal characters (32 bytes)")]
    BadEncryptionKey,
    #[error("the encryption key file {0} is not 64 hexadecimal characters; fix or restore it (it is never overwritten)")]
    BadKeyFile(PathBuf),
    #[error(
        "this database was encrypted with a different ENCRYPTION_KEY; start with the key it was created with \
         (nothing was changed)"
    )]
    WrongEncryptionKey,
    #[error("stored value could not be decrypted")]
    Crypto,
    #[error("unsupported DATABASE_URL `{0}`: use sqlite://<path> or postgres://…")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Io(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error("{0}")]
    Conflict(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database could not be reached or did not answer (down, restarting, connections used up, locked
    /// past the busy timeout), rather than refusing what was asked: worth a 503 and a retry.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // PostgreSQL: connection exceptions (08…), operator intervention such as a shutdown (57…),
                    // insufficient resources (53…). SQLite: busy (5) and locked (6).
                    code.starts_with("08")
                        || code.starts_with("57")
                        || code.starts_with("53")
                        || code == "5"
                        || code == "6"
                }),
                _ => false,
            },
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// The durable store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    engine: Engine,
    cipher: Cipher,
    /// The database file, on SQLite with a file (not `:memory:`).
    sqlite_file: Option<Arc<Path>>,
}

/// Ids sort by creation: milliseconds, then a per-process sequence, then randomness. Listing and routing order
/// (`ORDER BY created_at, id`) therefore follows the order in which things were added.
pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("{:011x}{seq:04x}{}", now_ms(), random_hex(3))
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// The default SQLite location under the data directory.
pub fn default_sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("freellmapi.db")
}

impl Store {
    /// Opens (creating if needed) the database at `url`, runs migrations and checks the encryption key against the
    /// one the database was created with.
    pub async fn open(url: &str, cipher: Cipher) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let pool = match engine {
            Engine::Sqlite => {
                if let Some(path) = sqlite_path(url) {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            StoreError::Io(format!("cannot create {}: {e}", dir.display()))
                        })?;
                    }
                }
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                AnyPoolOptions::new()
                    .max_connections(2)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA journal_mode=WAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA busy_timeout=5000")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA foreign_keys=ON")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA synchronous=NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            // The request-history writer checkpoints every second (`HistoryConnection`), so that
                            // copying the WAL back does not interrupt requests every few hundred inserts; this
                            // automatic threshold (about 80 MB) is only the safety net.
                            sqlx::query("PRAGMA wal_autocheckpoint=20000")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Engine::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .connect(url)
                    .await?
            }
        };
        let store = Self {
            pool,
            engine,
            cipher,
            sqlite_file: sqlite_path(url).map(Arc::from),
        };
        store.migrate().await?;
        store.check_encryption_key().await?;
        Ok(store)
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The SQLite database file, when the store is one (not PostgreSQL, not in memory).
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let applied: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
            .fetch_one(&self.pool)
            .await?
            .try_get("v")?;
        let applied = applied.unwrap_or(0);
        for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
            let mut tx = self.pool.begin().await?;
            for statement in statements(migration.sql) {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied database migration"
            );
        }
        Ok(())
    }

    /// The schema version after migrations.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
            .fetch_one(&self.pool)
            .await?
            .try_get("v")?;
        Ok(v.unwrap_or(0))
    }

    async fn check_encryption_key(&self) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = 'encryption_check'")
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                let value: String = row.try_get("value")?;
                match self.cipher.decrypt(&value) {
                    Ok(text) if text == ENCRYPTION_CHECK_PLAINTEXT => Ok(()),
                    _ => Err(StoreError::WrongEncryptionKey),
                }
            }
            None => {
                let value = self.cipher.encrypt(ENCRYPTION_CHECK_PLAINTEXT)?;
                sqlx::query("INSERT INTO meta (key, value) VALUES ('encryption_check', $1)")
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// Whether the database already holds encrypted data (used to refuse generating a new key for it).
    pub async fn has_encrypted_data(url: &str) -> bool {
        // Only meaningful for an existing SQLite file; PostgreSQL callers must always pass the key.
        sqlite_path(url).is_some_and(|p| p.exists())
    }

    // ---- users and sessions ----

    fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            role: row.try_get("role")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at: row.try_get("created_at")?,
        })
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Creates the first admin if no user exists. With no credentials given, generates a password to print once.
    pub async fn bootstrap_admin(
        &self,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<AdminBootstrap, StoreError> {
        if self.user_count().await? > 0 {
            return Ok(AdminBootstrap::Existing);
        }
        let username = username
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or("admin")
            .to_owned();
        let (password, generated) = match password.filter(|p| !p.is_empty()) {
            Some(p) => (p.to_owned(), false),
            None => (random_hex(12), true),
        };
        self.create_user(&username, &password, "admin").await?;
        Ok(if generated {
            AdminBootstrap::Generated { username, password }
        } else {
            AdminBootstrap::Created { username }
        })
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: &str,
    ) -> Result<User, StoreError> {
        let username = username.trim();
        if username.is_empty() || username.len() > 64 {
            return Err(StoreError::Conflict(
                "username must be 1 to 64 characters".into(),
            ));
        }
        let owned = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
            .await
            .map_err(|e| StoreError::Io(format!("hashing task failed: {e}")))??;
        let user = User {
            id: new_id(),
            username: username.to_owned(),
            role: role.to_owned(),
            enabled: true,
            created_at: now_ms(),
        };
        let result = sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, enabled, created_at) VALUES ($1, $2, $3, $4, 1, $5)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(hash)
        .bind(&user.role)
        .bind(user.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(user),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(format!(
                "user `{username}` already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, role, enabled, created_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    /// The first admin (owner of objects declared in the config file without a `user`).
    pub async fn first_admin(&self) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, role, enabled, created_at FROM users WHERE role = 'admin' ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, username, role, enabled, created_at FROM users ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::user_from_row).collect()
    }

    /// Checks a username/password pair. Runs the hash on the blocking pool; always hashes, even for unknown users,
    /// so timing does not reveal which usernames exist.
    pub async fn verify_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, username, role, enabled, created_at, password_hash FROM users WHERE username = $1",
        )
        .bind(username.trim())
        .fetch_optional(&self.pool)
        .await?;
        let (user, hash) = match &row {
            Some(r) => (
                Some(Self::user_from_row(r)?),
                r.try_get::<String, _>("password_hash")?,
            ),
            None => (None, DUMMY_HASH.to_owned()),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| StoreError::Io(format!("hashing task failed: {e}")))?;
        Ok(user.filter(|u| ok && u.enabled))
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row =
            sqlx::query("SELECT id, username, role, enabled, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    /// Whether `password` is the user's current password (hashing on the blocking pool).
    pub async fn check_password(&self, user_id: &str, password: &str) -> Result<bool, StoreError> {
        let hash: Option<String> = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("password_hash"))
            .transpose()?;
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| StoreError::Io(format!("hashing task failed: {e}")))
    }

    /// Sets a new password (validated and hashed). Returns whether the user exists.
    pub async fn set_password(&self, user_id: &str, password: &str) -> Result<bool, StoreError> {
        let owned = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
            .await
            .map_err(|e| StoreError::Io(format!("hashing task failed: {e}")))??;
        let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn set_user_enabled(&self, user_id: &str, enabled: bool) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET enabled = $1 WHERE id = $2")
            .bind(flag(enabled))
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn set_user_role(&self, user_id: &str, role: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes a user with everything they own: sessions, provider keys, gateway keys and request history.
    pub async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "sessions",
            "gateway_keys",
            "provider_keys",
            "proxies",
            "profiles",
            "requests",
            "attempt_failures",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends every session of a user except the one whose raw token is `keep`. Returns how many ended.
    pub async fn delete_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let keep = keep.map(token_hash).unwrap_or_default();
        Ok(
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
                .bind(user_id)
                .bind(keep)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Creates a session; returns the raw token (only its hash is stored).
    pub async fn create_session(&self, user_id: &str, ttl: Duration) -> Result<String, StoreError> {
        let token = random_hex(32);
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash(&token))
            .bind(user_id)
            .bind(now)
            .bind(now + ttl.as_millis() as i64)
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    pub async fn session_user(&self, token: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.role, u.enabled, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash(token))
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .as_ref()
            .map(Self::user_from_row)
            .transpose()?
            .filter(|u| u.enabled))
    }

    pub async fn delete_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_expired_sessions(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    // ---- provider keys ----

    fn provider_key_from_row(row: &AnyRow) -> Result<ProviderKeyRow, StoreError> {
        let models: String = row.try_get("models")?;
        Ok(ProviderKeyRow {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            platform: row.try_get("platform")?,
            label: row.try_get("label")?,
            encrypted_secret: row.try_get("secret")?,
            base_url: row.try_get("base_url")?,
            models: serde_json::from_str(&models)
                .map_err(|e| StoreError::Corrupt(format!("models: {e}")))?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            status: row.try_get("status")?,
            status_reason: row.try_get("status_reason")?,
            config_name: row.try_get("config_name")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            limits: match row.try_get::<Option<String>, _>("limits")? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("limits: {e}")))?,
                None => KeyLimits::default(),
            },
        })
    }

    const PROVIDER_KEY_COLUMNS: &'static str =
        "id, user_id, platform, label, secret, base_url, models, enabled, status, \
         status_reason, config_name, created_at, updated_at, limits";

    /// Decrypts a stored secret.
    pub fn reveal(&self, row: &ProviderKeyRow) -> Result<Option<String>, StoreError> {
        row.encrypted_secret
            .as_deref()
            .map(|s| self.cipher.decrypt(s))
            .transpose()
    }

    pub async fn insert_provider_key(
        &self,
        new: &NewProviderKey,
    ) -> Result<ProviderKeyRow, StoreError> {
        let now = now_ms();
        let secret = new
            .secret
            .as_deref()
            .map(|s| self.cipher.encrypt(s))
            .transpose()?;
        let row = ProviderKeyRow {
            id: new_id(),
            user_id: new.user_id.clone(),
            platform: new.platform.clone(),
            label: new.label.clone(),
            encrypted_secret: secret,
            base_url: new.base_url.clone(),
            models: new.models.clone(),
            enabled: new.enabled,
            status: "unknown".into(),
            status_reason: None,
            config_name: new.config_name.clone(),
            created_at: now,
            updated_at: now,
            limits: KeyLimits::default(),
        };
        let models =
            serde_json::to_string(&row.models).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO provider_keys (id, user_id, platform, label, secret, base_url, models, enabled, status, \
             status_reason, config_name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unknown', NULL, \
             $9, $10, $11)",
        )
        .bind(&row.id)
        .bind(&row.user_id)
        .bind(&row.platform)
        .bind(&row.label)
        .bind(row.encrypted_secret.clone())
        .bind(row.base_url.clone())
        .bind(models)
        .bind(flag(row.enabled))
        .bind(row.config_name.clone())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(row)
    }

    pub async fn provider_key(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<ProviderKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM provider_keys WHERE id = $1 AND user_id = $2",
            Self::PROVIDER_KEY_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::provider_key_from_row).transpose()
    }

    pub async fn provider_keys_of(&self, user_id: &str) -> Result<Vec<ProviderKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM provider_keys WHERE user_id = $1 ORDER BY created_at, id",
            Self::PROVIDER_KEY_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::provider_key_from_row).collect()
    }

    pub async fn all_provider_keys(&self) -> Result<Vec<ProviderKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM provider_keys ORDER BY created_at, id",
            Self::PROVIDER_KEY_COLUMNS
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(Self::provider_key_from_row).collect()
    }

    /// Applies a patch. Editing resets the health status (the key will be judged afresh).
    pub async fn update_provider_key(
        &self,
        user_id: &str,
        id: &str,
        patch: &ProviderKeyPatch,
    ) -> Result<Option<ProviderKeyRow>, StoreError> {
        let Some(mut row) = self.provider_key(user_id, id).await? else {
            return Ok(None);
        };
        if let Some(label) = &patch.label {
            row.label = label.clone();
        }
        if let Some(secret) = &patch.secret {
            row.encrypted_secret = Some(self.cipher.encrypt(secret)?);
        }
        if let Some(base_url) = &patch.base_url {
            row.base_url = base_url.clone();
        }
        if let Some(models) = &patch.models {
            row.models = models.clone();
        }
        if let Some(enabled) = patch.enabled {
            row.enabled = enabled;
        }
        if let Some(limits) = patch.limits {
            row.limits = limits;
        }
        row.updated_at = now_ms();
        row.status = "unknown".into();
        row.status_reason = None;
        let models =
            serde_json::to_string(&row.models).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE provider_keys SET label = $1, secret = $2, base_url = $3, models = $4, enabled = $5, \
             status = 'unknown', status_reason = NULL, updated_at = $6, limits = $7 WHERE id = $8 AND user_id = $9",
        )
        .bind(&row.label)
        .bind(row.encrypted_secret.clone())
        .bind(row.base_url.clone())
        .bind(models)
        .bind(flag(row.enabled))
        .bind(row.updated_at)
        .bind(limits_json(&row.limits)?)
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(Some(row))
    }

    /// Sets the health status of the exact version of a key that was used: if the key was edited since
    /// (`updated_at` moved), the verdict is about an old version and is dropped. Returns whether it was applied.
    pub async fn set_provider_key_status_if_unchanged(
        &self,
        id: &str,
        updated_at: i64,
        status: &str,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE provider_keys SET status = $1, status_reason = $2 WHERE id = $3 AND updated_at = $4")
            .bind(status)
            .bind(reason.map(str::to_owned))
            .bind(id)
            .bind(updated_at)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn set_provider_key_status(
        &self,
        id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE provider_keys SET status = $1, status_reason = $2 WHERE id = $3")
            .bind(status)
            .bind(reason.map(str::to_owned))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_provider_key(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM provider_keys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Inserts or updates the provider key declared under `config_name` for `user_id`. Returns whether it changed.
    pub async fn upsert_config_provider_key(
        &self,
        new: &NewProviderKey,
    ) -> Result<(ProviderKeyRow, bool), StoreError> {
        let name = new.config_name.as_deref().unwrap_or_default();
        let sql = format!(
            "SELECT {} FROM provider_keys WHERE user_id = $1 AND config_name = $2",
            Self::PROVIDER_KEY_COLUMNS
        );
        let existing = sqlx::query(&sql)
            .bind(&new.user_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(existing) = existing
            .as_ref()
            .map(Self::provider_key_from_row)
            .transpose()?
        else {
            return Ok((self.insert_provider_key(new).await?, true));
        };
        let same = existing.platform == new.platform
            && existing.label == new.label
            && existing.base_url == new.base_url
            && existing.models == new.models
            && existing.enabled == new.enabled
            && self.reveal(&existing)? == new.secret;
        if same {
            return Ok((existing, false));
        }
        let secret = new
            .secret
            .as_deref()
            .map(|s| self.cipher.encrypt(s))
            .transpose()?;
        let models =
            serde_json::to_string(&new.models).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE provider_keys SET platform = $1, label = $2, secret = $3, base_url = $4, models = $5, enabled = $6, \
             status = 'unknown', status_reason = NULL, updated_at = $7 WHERE id = $8",
        )
        .bind(&new.platform)
        .bind(&new.label)
        .bind(secret)
        .bind(new.base_url.clone())
        .bind(models)
        .bind(flag(new.enabled))
        .bind(now_ms())
        .bind(&existing.id)
        .execute(&self.pool)
        .await?;
        let updated = self
            .provider_key(&new.user_id, &existing.id)
            .await?
            .ok_or(StoreError::Corrupt("vanished".into()))?;
        Ok((updated, true))
    }

    /// A persisted gateway-wide setting (kept in `meta` under `setting.<name>`).
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(format!("setting.{name}"))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(format!("setting.{name}"))
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// `freellmapi-ab12cd…`: enough to recognise a key in logs and lists, useless to an attacker.
pub fn gateway_key_prefix(raw: &str) -> String {
    let visible: String = raw.chars().take(16).collect();
    format!("{visible}…")
}

// A valid argon2id hash of a random string, verified against when the username is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$c29tZXNhbHRzb21lc2FsdA$7BqYqG5tC2Z0m5uXj0Zq3b6v8e8Qz4l0Fh2mB6m4s0Y";

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db.message().contains("UNIQUE constraint failed")
                || db.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// A database URL with any password removed, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://[redacted]@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The stored form of limit overrides: NULL when none is set.
fn limits_json(limits: &KeyLimits) -> Result<Option<String>, StoreError> {
    if *limits == KeyLimits::default() {
        return Ok(None);
    }
    serde_json::to_string(limits)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}
