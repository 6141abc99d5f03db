//! Reading an install of the Node original (FreeLLMAPI 1.x): its SQLite database (`server/data/freeapi.db`), opened
//! read-only and never written, and its AES-256-GCM provider keys (`api_keys.encrypted_key`, `iv`, `auth_tag` as
//! hex, a 16-byte IV and tag, the key from its 64-hex `ENCRYPTION_KEY`). Everything is decrypted before anything is
//! returned, so a wrong key is found before the caller imports anything.

use std::path::{Path, PathBuf};

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

/// The original's cipher: AES-256-GCM with a 16-byte nonce.
type LegacyCipher = AesGcm<Aes256, U16>;

/// Where an old install keeps what the migration needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyInstall {
    pub database: PathBuf,
    /// The `.env` that may hold `ENCRYPTION_KEY`.
    pub env_file: Option<PathBuf>,
    /// `.encryption-key` next to the database (the original's generated key).
    pub key_file: Option<PathBuf>,
}

impl LegacyInstall {
    /// Finds the database under `path` (the install directory, its `server/` directory, or the `.db` file itself).
    pub fn find(path: &Path) -> Result<Self, String> {
        let database = if path.is_file() {
            path.to_path_buf()
        } else {
            ["server/data/freeapi.db", "data/freeapi.db", "freeapi.db"]
                .iter()
                .map(|p| path.join(p))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    format!(
                        "no FreeLLMAPI 1.x database under {} (looked for server/data/freeapi.db, data/freeapi.db)",
                        path.display()
                    )
                })?
        };
        let data_dir = database.parent().unwrap_or(Path::new("."));
        let mut env_candidates = vec![path.join(".env"), path.join("server/.env")];
        if let Some(server) = data_dir.parent() {
            env_candidates.push(server.join(".env"));
            if let Some(root) = server.parent() {
                env_candidates.push(root.join(".env"));
            }
        }
        Ok(Self {
            env_file: env_candidates.into_iter().find(|p| p.is_file()),
            key_file: Some(data_dir.join(".encryption-key")).filter(|p| p.is_file()),
            database,
        })
    }

    /// The original's key, in its precedence: `explicit` (the caller's `--old-key` or environment), the `.env`, the
    /// key file next to the database, the legacy `settings.encryption_key`.
    pub fn encryption_key(&self, explicit: Option<&str>) -> Result<[u8; 32], String> {
        let from_env_file = self
            .env_file
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| env_value(&text, "ENCRYPTION_KEY"));
        let from_key_file = self
            .key_file
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned());
        let from_settings = || -> Option<String> {
            let conn = open_read_only(&self.database).ok()?;
            conn.query_row(
                "SELECT value FROM settings WHERE key = 'encryption_key'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .ok()
            .flatten()
        };
        let hex_key = explicit
            .map(str::to_owned)
            .or(from_env_file)
            .or(from_key_file)
            .or_else(from_settings)
            .filter(|k| !k.is_empty() && k != "your-64-char-hex-key-here")
            .ok_or("the old install's ENCRYPTION_KEY was not found (give it with --old-key)")?;
        let bytes = hex::decode(hex_key.trim())
            .map_err(|_| "the old ENCRYPTION_KEY is not hexadecimal".to_owned())?;
        bytes
            .try_into()
            .map_err(|_| "the old ENCRYPTION_KEY is not 64 hex characters (32 bytes)".to_owned())
    }
}

/// `NAME=value` from a dotenv file (quotes and `export ` allowed, comments ignored).
fn env_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=')?;
        (k.trim() == name).then(|| {
            let v = v.split(" #").next().unwrap_or(v).trim();
            v.trim_matches(|c| c == '"' || c == '\'').to_owned()
        })
    })
}

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    // Read-only, and without creating the -wal/-shm files of a database that is not ours.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// A provider key of the old install, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyKey {
    pub id: String,
    pub platform: String,
    pub label: String,
    pub secret: String,
    pub base_url: Option<String>,
    /// `model_scope_json`; empty: every model of the platform.
    pub models: Vec<String>,
    pub enabled: bool,
}

/// A request of the old install's analytics.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRequest {
    pub id: String,
    pub platform: Option<String>,
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub status: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub error: Option<String>,
    pub requested_model: Option<String>,
    pub request_type: Option<String>,
    pub created_at_ms: i64,
}

/// Decrypts one `api_keys` value.
pub fn decrypt(
    key: &[u8; 32],
    ciphertext_hex: &str,
    iv_hex: &str,
    tag_hex: &str,
) -> Result<String, String> {
    let iv = hex::decode(iv_hex).map_err(|_| "iv is not hex".to_owned())?;
    let tag = hex::decode(tag_hex).map_err(|_| "auth_tag is not hex".to_owned())?;
    let mut data =
        hex::decode(ciphertext_hex).map_err(|_| "encrypted_key is not hex".to_owned())?;
    if iv.len() != 16 || tag.len() != 16 {
        return Err(format!(
            "unexpected iv/tag lengths {}/{} (the original uses 16/16)",
            iv.len(),
            tag.len()
        ));
    }
    data.extend_from_slice(&tag);
    let cipher = LegacyCipher::new(key.into());
    let plain = cipher
        .decrypt(
            aes_gcm::Nonce::<U16>::from_slice(&iv),
            Payload {
                msg: &data,
                aad: b"",
            },
        )
        .map_err(|_| "does not decrypt with this ENCRYPTION_KEY".to_owned())?;
    String::from_utf8(plain).map_err(|_| "decrypts to bytes that are not text".to_owned())
}

/// Every provider key of the old database, decrypted with `key`; the first that does not decrypt is an error
/// naming it (nothing is returned then).
pub fn read_keys(database: &Path, key: &[u8; 32]) -> Result<Vec<LegacyKey>, String> {
    let conn = open_read_only(database).map_err(|e| format!("{}: {e}", database.display()))?;
    let columns = table_columns(&conn, "api_keys")?;
    let has = |c: &str| columns.iter().any(|x| x == c);
    let select = format!(
        "SELECT id, platform, label, encrypted_key, iv, auth_tag, {}, {}, {} FROM api_keys ORDER BY rowid",
        if has("base_url") { "base_url" } else { "NULL" },
        if has("model_scope_json") { "model_scope_json" } else { "NULL" },
        if has("enabled") { "enabled" } else { "1" },
    );
    let mut statement = conn.prepare(&select).map_err(|e| e.to_string())?;
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, rusqlite::types::Value>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for row in rows {
        let (id, platform, label, ct, iv, tag, base_url, scope, enabled) =
            row.map_err(|e| e.to_string())?;
        let id = match id {
            rusqlite::types::Value::Integer(n) => n.to_string(),
            rusqlite::types::Value::Text(s) => s,
            other => format!("{other:?}"),
        };
        let secret = decrypt(key, &ct, &iv, &tag).map_err(|e| format!("api_keys id {id}: {e}"))?;
        let models = scope
            .as_deref()
            .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
            .unwrap_or_default();
        keys.push(LegacyKey {
            label: label
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| platform.clone()),
            id,
            platform,
            secret,
            base_url: base_url.filter(|u| !u.trim().is_empty()),
            models,
            enabled: enabled.unwrap_or(1) != 0,
        });
    }
    Ok(keys)
}

/// The old install's request analytics, oldest first (empty when it has no `requests` table).
pub fn read_requests(database: &Path) -> Result<Vec<LegacyRequest>, String> {
    let conn = open_read_only(database).map_err(|e| format!("{}: {e}", database.display()))?;
    let columns = table_columns(&conn, "requests")?;
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let col = |c: &str| {
        if columns.iter().any(|x| x == c) {
            c.to_owned()
        } else {
            "NULL".to_owned()
        }
    };
    let select = format!(
        "SELECT id, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM requests ORDER BY rowid",
        col("platform"),
        col("model_id"),
        col("key_id"),
        col("status"),
        col("input_tokens"),
        col("output_tokens"),
        col("latency_ms"),
        col("ttfb_ms"),
        col("error"),
        col("requested_model"),
        col("request_type"),
        col("created_at"),
    );
    let mut statement = conn.prepare(&select).map_err(|e| e.to_string())?;
    let text = |v: rusqlite::types::Value| match v {
        rusqlite::types::Value::Integer(n) => Some(n.to_string()),
        rusqlite::types::Value::Text(s) => Some(s),
        rusqlite::types::Value::Real(f) => Some(f.to_string()),
        _ => None,
    };
    let rows = statement
        .query_map([], |r| {
            let v = |i: usize| r.get::<_, rusqlite::types::Value>(i);
            Ok((
                v(0)?,
                v(1)?,
                v(2)?,
                v(3)?,
                v(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, Option<i64>>(8)?,
                v(9)?,
                v(10)?,
                v(11)?,
                v(12)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for row in rows {
        let (
            id,
            platform,
            model,
            key_id,
            status,
            input,
            output,
            latency,
            ttfb,
            error,
            requested,
            kind,
            created,
        ) = row.map_err(|e| e.to_string())?;
        out.push(LegacyRequest {
            id: text(id).unwrap_or_default(),
            platform: text(platform),
            model: text(model),
            key_id: text(key_id),
            status: text(status).unwrap_or_else(|| "success".into()),
            input_tokens: input,
            output_tokens: output,
            latency_ms: latency.unwrap_or(0),
            ttfb_ms: ttfb,
            error: text(error),
            requested_model: text(requested),
            request_type: text(kind),
            created_at_ms: timestamp_ms(&created),
        });
    }
    Ok(out)
}

/// `created_at` as the original writes it: UTC text `YYYY-MM-DD HH:MM:SS` (or ISO 8601), or epoch seconds or
/// milliseconds.
fn timestamp_ms(v: &rusqlite::types::Value) -> i64 {
    match v {
        rusqlite::types::Value::Integer(n) if *n > 100_000_000_000 => *n,
        rusqlite::types::Value::Integer(n) => n * 1000,
        rusqlite::types::Value::Real(f) => (*f * 1000.0) as i64,
        rusqlite::types::Value::Text(s) => parse_utc(s).unwrap_or(0),
        _ => 0,
    }
}

fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once([' ', 'T']).unwrap_or((s, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split(['+', '.']).next().unwrap_or(time);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (
        t.next().flatten().unwrap_or(0),
        t.next().flatten().unwrap_or(0),
        t.next().flatten().unwrap_or(0),
    );
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000)
}

fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>, String> {
    let mut statement = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .map_err(|e| e.to_string())?;
    let names = statement
        .query_map([], |r| r.get::<_, String>(1))
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_and_numbers_become_milliseconds() {
        assert_eq!(parse_utc("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_utc("2026-06-10 12:30:05"), Some(1_781_094_605_000));
        assert_eq!(
            parse_utc("2026-06-10T12:30:05.123Z"),
            Some(1_781_094_605_000)
        );
        assert_eq!(
            timestamp_ms(&rusqlite::types::Value::Integer(1_781_094_605)),
            1_781_094_605_000
        );
        assert_eq!(
            env_value(
                "# x\nexport ENCRYPTION_KEY=\"ab\" # note\n",
                "ENCRYPTION_KEY"
            )
            .as_deref(),
            Some("ab")
        );
    }
}
