//! Durable state: users, sessions, provider keys (encrypted), gateway keys (hashed) and request logs, on embedded
//! SQLite (default) or PostgreSQL through one sqlx `Any` pool and portable SQL. Versioned migrations run at open.
//! This crate knows nothing of HTTP or routing; it is never called on the request path except by the batch log
//! writer.

mod crypto;
mod history;
mod migrations;
mod profiles;
mod records;
mod store;

pub use crypto::{
    hash_password, mask_secret, resolve_encryption_key, verify_password, Cipher, KeySource,
    PasswordError,
};
pub use crypto::{open_with_password, random_hex, seal_with_password, token_hash, ExportFileError};
pub use history::HistoryConnection;
pub mod legacy;
pub mod testing;
pub use migrations::MIGRATIONS;
pub use records::*;
pub use store::{default_sqlite_path, gateway_key_prefix, redact_url, Engine, Store, StoreError};
