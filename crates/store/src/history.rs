//! The request history's own SQLite connection, owned by the gateway's history writer thread.
//!
//! It bypasses the sqlx pool on purpose: prepared statements bound straight from the rows, sixteen rows per
//! `INSERT`, cost under a microsecond per row, and the thread that calls them is the one that pays, so the writer can
//! pace itself (see the server's `request_log`). The pool's connections and this one share the file through SQLite's write-ahead log.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Statement, TransactionBehavior};

use crate::records::RequestLog;
use crate::store::StoreError;

const INSERT_INTO: &str = "INSERT INTO requests (id, user_id, gateway_key_id, endpoint, requested_model, platform, \
    model, provider_key_id, status, http_status, error_class, error_message, stream, attempts, input_tokens, \
    output_tokens, latency_ms, ttfb_ms, created_at) VALUES ";
const COLUMNS: usize = 19;
/// Rows per multi-row `INSERT`: one statement run instead of sixteen saves about a fifth of the work per row (the
/// statement's set-up, its end, the seek to the table's last page).
const ROWS_PER_INSERT: usize = 16;
/// The rowid of the `?2`-th oldest row at or below `?1`: the upper end of one pruning chunk. (`DELETE … WHERE rowid IN
/// (SELECT … LIMIT n)` first copies the chosen rowids into a temporary table, an extra B-tree insert per row.)
const CHUNK_END: &str =
    "SELECT rowid FROM requests WHERE rowid <= ?1 ORDER BY rowid LIMIT 1 OFFSET ?2";
const DELETE_THROUGH: &str = "DELETE FROM requests WHERE rowid <= ?1";
const INSERT_FAILURE: &str = "INSERT INTO attempt_failures (request_id, user_id, provider_key_id, platform, model, \
    error_class, http_status, error_message, latency_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// Failed attempts go with the history they belong to: older than the oldest request kept.
const PRUNE_FAILURES: &str =
    "DELETE FROM attempt_failures WHERE created_at < (SELECT coalesce(min(created_at), 0) FROM requests)";

/// `INSERT INTO requests (…) VALUES (?, …), …` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; COLUMNS].join(", "));
    format!("{INSERT_INTO}{}", vec![one; rows].join(", "))
}

/// Binds `log` to the parameters after the first `base`.
fn bind_row(statement: &mut Statement<'_>, base: usize, log: &RequestLog) -> rusqlite::Result<()> {
    let at = |i: usize| base + i;
    statement.raw_bind_parameter(at(1), &*log.id)?;
    statement.raw_bind_parameter(at(2), &*log.user_id)?;
    statement.raw_bind_parameter(at(3), log.gateway_key_id.as_deref())?;
    statement.raw_bind_parameter(at(4), log.endpoint)?;
    statement.raw_bind_parameter(at(5), log.requested_model.as_str())?;
    statement.raw_bind_parameter(at(6), log.platform)?;
    statement.raw_bind_parameter(at(7), log.model.as_deref())?;
    statement.raw_bind_parameter(at(8), log.provider_key_id.as_deref())?;
    statement.raw_bind_parameter(at(9), log.status)?;
    statement.raw_bind_parameter(at(10), log.http_status)?;
    statement.raw_bind_parameter(at(11), log.error_class)?;
    statement.raw_bind_parameter(at(12), log.error_message.as_deref())?;
    statement.raw_bind_parameter(at(13), i64::from(log.stream))?;
    statement.raw_bind_parameter(at(14), log.attempts)?;
    statement.raw_bind_parameter(at(15), log.input_tokens.map(|n| n as i64))?;
    statement.raw_bind_parameter(at(16), log.output_tokens.map(|n| n as i64))?;
    statement.raw_bind_parameter(at(17), log.latency_ms as i64)?;
    statement.raw_bind_parameter(at(18), log.ttfb_ms.map(|n| n as i64))?;
    statement.raw_bind_parameter(at(19), log.created_at)
}

/// Writes request logs to an SQLite database file that `Store::open` has already created and migrated.
#[derive(Debug)]
pub struct HistoryConnection {
    conn: Connection,
    insert_one: String,
    insert_many: String,
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
        Ok(Self {
            conn,
            insert_one: insert_sql(1),
            insert_many: insert_sql(ROWS_PER_INSERT),
        })
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
            let mut many = tx.prepare_cached(&self.insert_many)?;
            let mut one = tx.prepare_cached(&self.insert_one)?;
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                if chunk.len() == ROWS_PER_INSERT {
                    for (i, log) in chunk.iter().enumerate() {
                        bind_row(&mut many, i * COLUMNS, log)?;
                    }
                    many.raw_execute()?;
                } else {
                    for log in chunk {
                        bind_row(&mut one, 0, log)?;
                        one.raw_execute()?;
                    }
                }
            }
            // Rare (most requests are served by their first attempt): no statement is prepared until one comes.
            for log in rows.iter().filter(|l| !l.failed_attempts.is_empty()) {
                let mut insert = tx.prepare_cached(INSERT_FAILURE)?;
                for f in &log.failed_attempts {
                    insert.execute(params![
                        &*log.id,
                        &*log.user_id,
                        &*f.provider_key_id,
                        f.platform,
                        &*f.model,
                        f.error_class,
                        f.http_status,
                        f.error_message,
                        f.latency_ms as i64,
                        f.created_at,
                    ])?;
                }
            }
        }
        let deleted = match prune {
            Some((bound, limit)) if limit > 0 => {
                let offset = i64::try_from(limit - 1).unwrap_or(i64::MAX);
                let end: Option<i64> = tx
                    .prepare_cached(CHUNK_END)?
                    .query_row(params![bound, offset], |r| r.get(0))
                    .optional()?;
                let deleted = tx
                    .prepare_cached(DELETE_THROUGH)?
                    .execute([end.unwrap_or(bound)])?;
                if deleted > 0 {
                    tx.prepare_cached(PRUNE_FAILURES)?.execute([])?;
                }
                deleted
            }
            _ => 0,
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
