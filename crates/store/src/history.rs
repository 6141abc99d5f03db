//! The request history's own SQLite connection, owned by the gateway's history writer thread.
//!
//! It bypasses the sqlx pool on purpose: a prepared statement bound straight from the rows costs about 0.9 µs per
//! row, and the thread that calls it is the one that pays, so the writer can pace itself (see the server's
//! `request_log`). The pool's connections and this one share the file through SQLite's write-ahead log.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::records::RequestLog;
use crate::store::StoreError;

const INSERT: &str = "INSERT INTO requests (id, user_id, gateway_key_id, endpoint, requested_model, platform, \
    model, provider_key_id, status, http_status, error_class, error_message, stream, attempts, input_tokens, \
    output_tokens, latency_ms, ttfb_ms, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

/// Writes request logs to an SQLite database file that `Store::open` has already created and migrated.
#[derive(Debug)]
pub struct HistoryConnection {
    conn: Connection,
}

impl HistoryConnection {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Never create: the store made the file and its schema, and a missing file means a misconfiguration.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Another connection may hold the write lock for a moment (an admin write, retention's deletes).
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             PRAGMA journal_size_limit=67108864;
             PRAGMA wal_autocheckpoint=20000;",
        )?;
        Ok(Self { conn })
    }

    /// The rowid at and below which rows are past retention: older than `max_age`, or beyond the newest `max_rows`.
    /// `None` when no row is. Rows are numbered in insertion order, and the writer inserts them in the order requests
    /// finished, so the oldest rows have the lowest rowids: both rules become one bound, found with two index seeks.
    pub fn retention_bound(
        &self,
        max_age: Option<Duration>,
        max_rows: Option<u64>,
        now_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut bound: Option<i64> = None;
        if let Some(max) = max_rows {
            let newest: Option<i64> =
                self.conn
                    .query_row("SELECT max(rowid) FROM requests", [], |r| r.get(0))?;
            let by_rows = newest.map(|n| n - i64::try_from(max).unwrap_or(i64::MAX));
            bound = by_rows.filter(|&b| b > 0);
        }
        if let Some(age) = max_age {
            let cutoff = now_ms - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let by_age: Option<i64> = self
                .conn
                .query_row(
                    "SELECT rowid FROM requests WHERE created_at < ?1 ORDER BY created_at DESC LIMIT 1",
                    [cutoff],
                    |r| r.get(0),
                )
                .optional()?;
            bound = bound.max(by_age);
        }
        Ok(bound)
    }

    /// Inserts `rows` and deletes at most `prune.1` of the oldest rows with a rowid up to `prune.0`, in one
    /// transaction. Returns how many rows were deleted.
    pub fn write(
        &mut self,
        rows: &[RequestLog],
        prune: Option<(i64, usize)>,
    ) -> Result<usize, StoreError> {
        // IMMEDIATE takes the write lock at BEGIN, where waiting for it is safe; a deferred transaction that later
        // finds another writer gets SQLITE_BUSY without waiting.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for log in rows {
                insert.execute(params![
                    &*log.id,
                    &*log.user_id,
                    log.gateway_key_id.as_deref(),
                    log.endpoint,
                    log.requested_model,
                    log.platform,
                    log.model.as_deref(),
                    log.provider_key_id.as_deref(),
                    log.status,
                    log.http_status,
                    log.error_class,
                    log.error_message,
                    i64::from(log.stream),
                    log.attempts,
                    log.input_tokens.map(|n| n as i64),
                    log.output_tokens.map(|n| n as i64),
                    log.latency_ms as i64,
                    log.ttfb_ms.map(|n| n as i64),
                    log.created_at,
                ])?;
            }
        }
        let deleted = match prune {
            Some((bound, limit)) => tx.execute(
                "DELETE FROM requests WHERE rowid IN \
                 (SELECT rowid FROM requests WHERE rowid <= ?1 ORDER BY rowid LIMIT ?2)",
                params![bound, i64::try_from(limit).unwrap_or(i64::MAX)],
            )?,
            None => 0,
        };
        tx.commit()?;
        Ok(deleted)
    }

    /// Copies what the write-ahead log holds back into the database without waiting for readers (PASSIVE), so
    /// that the log is reused from its start instead of growing; `journal_size_limit` trims the file then.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}
