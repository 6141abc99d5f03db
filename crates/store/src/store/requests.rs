//! The request history: batched inserts with their failed attempts, the queries of statistics and analytics, and
//! retention (on PostgreSQL under an advisory lock, so that one instance of a fleet prunes at a time).

use super::*;

impl Store {
    /// The requests refused per gateway key of `user_id` since `since_ms`, with the latest refusal's code.
    pub async fn gateway_key_refusals_since(
        &self,
        user_id: &str,
        since_ms: i64,
    ) -> Result<Vec<Refusals>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.gateway_key_id AS gateway_key_id, COUNT(*) AS n, MAX(r.created_at) AS last_at, \
             (SELECT l.error_class FROM requests l WHERE l.user_id = $1 AND l.gateway_key_id = r.gateway_key_id \
              AND l.status = 'refused' ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS last_code \
             FROM requests r WHERE r.user_id = $1 AND r.status = 'refused' AND r.created_at >= $2 \
             AND r.gateway_key_id IS NOT NULL GROUP BY r.gateway_key_id",
        )
        .bind(user_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Refusals {
                    gateway_key_id: r.try_get("gateway_key_id")?,
                    count: r.try_get("n")?,
                    last_at: r.try_get("last_at")?,
                    last_code: r.try_get("last_code")?,
                })
            })
            .collect()
    }

    /// Tokens recorded per gateway key since `since_ms` (to restore per-day counters after a restart).
    pub async fn gateway_key_tokens_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT gateway_key_id, CAST(SUM(COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)) AS BIGINT) AS tokens \
             FROM requests WHERE created_at >= $1 AND gateway_key_id IS NOT NULL GROUP BY gateway_key_id",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("gateway_key_id")?,
                    r.try_get::<Option<i64>, _>("tokens")?.unwrap_or(0),
                ))
            })
            .collect()
    }

    // ---- request logs ----

    /// Inserts a batch of request logs in one transaction, 50 rows per statement, yielding to other tasks between
    /// statements: building and binding a statement runs on the caller's thread, and long stretches of it there
    /// showed up as the p99 of concurrent requests (bench/RESULTS.md).
    pub async fn insert_request_logs(&self, logs: &[RequestLog]) -> Result<(), StoreError> {
        const COLUMNS: usize = 19;
        const ROWS_PER_STATEMENT: usize = 50;
        let mut tx = self.pool.begin().await?;
        for chunk in logs.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::with_capacity(400 + chunk.len() * COLUMNS * 5);
            sql.push_str(
                "INSERT INTO requests (id, user_id, gateway_key_id, endpoint, requested_model, platform, model, \
                 provider_key_id, status, http_status, error_class, error_message, stream, attempts, input_tokens, \
                 output_tokens, latency_ms, ttfb_ms, created_at) VALUES ",
            );
            for row in 0..chunk.len() {
                sql.push_str(if row == 0 { "(" } else { ", (" });
                for col in 0..COLUMNS {
                    if col > 0 {
                        sql.push_str(", ");
                    }
                    // Positional `?` on SQLite: named `$N` parameters make its binder look every name up.
                    match self.engine {
                        Engine::Sqlite => sql.push('?'),
                        Engine::Postgres => {
                            sql.push('$');
                            sql.push_str(&(row * COLUMNS + col + 1).to_string());
                        }
                    }
                }
                sql.push(')');
            }
            let mut query = sqlx::query(&sql);
            for log in chunk {
                query = query
                    .bind(log.id.to_string())
                    .bind(log.user_id.to_string())
                    .bind(log.gateway_key_id.as_deref().map(str::to_owned))
                    .bind(log.endpoint)
                    .bind(log.requested_model.clone())
                    .bind(log.platform.map(str::to_owned))
                    .bind(log.model.as_deref().map(str::to_owned))
                    .bind(log.provider_key_id.as_deref().map(str::to_owned))
                    .bind(log.status)
                    .bind(i64::from(log.http_status))
                    .bind(log.error_class.map(str::to_owned))
                    .bind(log.error_message.clone())
                    .bind(flag(log.stream))
                    .bind(i64::from(log.attempts))
                    .bind(log.input_tokens.map(|n| n as i64))
                    .bind(log.output_tokens.map(|n| n as i64))
                    .bind(log.latency_ms as i64)
                    .bind(log.ttfb_ms.map(|n| n as i64))
                    .bind(log.created_at);
            }
            query.execute(&mut *tx).await?;
            // Building and binding a statement runs on the runtime's thread: let waiting requests go first.
            tokio::task::yield_now().await;
        }
        for log in logs {
            for f in &log.failed_attempts {
                sqlx::query(
                    "INSERT INTO attempt_failures (request_id, user_id, provider_key_id, platform, model, \
                     error_class, http_status, error_message, latency_ms, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(log.id.to_string())
                .bind(log.user_id.to_string())
                .bind(f.provider_key_id.to_string())
                .bind(f.platform)
                .bind(f.model.to_string())
                .bind(f.error_class)
                .bind(f.http_status.map(i64::from))
                .bind(f.error_message.clone())
                .bind(f.latency_ms as i64)
                .bind(f.created_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether a request with this id is in the history.
    pub async fn request_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 FROM requests WHERE id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// The failed attempts through one provider key of a user since `since_ms` (newest first, at most `limit`).
    pub async fn attempt_failures_since(
        &self,
        user_id: &str,
        provider_key_id: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<AttemptFailureStat>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, model, error_class, http_status, error_message, latency_ms, created_at \
             FROM attempt_failures WHERE provider_key_id = $1 AND created_at >= $2 AND user_id = $3 \
             ORDER BY created_at DESC LIMIT $4",
        )
        .bind(provider_key_id)
        .bind(since_ms)
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptFailureStat {
                    request_id: r.try_get("request_id")?,
                    model: r.try_get("model")?,
                    error_class: r.try_get("error_class")?,
                    http_status: r.try_get("http_status")?,
                    error_message: r.try_get("error_message")?,
                    latency_ms: r.try_get("latency_ms")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The newest request logs of a user (most recent first).
    /// The user's requests since `since_ms` (newest first, at most `limit`), optionally of one provider key: the
    /// raw material of the statistics pages.
    pub async fn request_stats_since(
        &self,
        user_id: &str,
        since_ms: i64,
        provider_key_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RequestStat>, StoreError> {
        let filter = if provider_key_id.is_some() {
            " AND provider_key_id = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, requested_model, platform, model, provider_key_id, status, http_status, error_class, latency_ms, \
             input_tokens, output_tokens, created_at FROM requests WHERE user_id = $1 AND created_at >= $2{filter} \
             ORDER BY created_at DESC LIMIT $3"
        );
        let mut query = sqlx::query(&sql).bind(user_id).bind(since_ms).bind(limit);
        if let Some(key) = provider_key_id {
            query = query.bind(key);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(RequestStat {
                    id: r.try_get("id")?,
                    requested_model: r.try_get("requested_model")?,
                    platform: r.try_get("platform")?,
                    model: r.try_get("model")?,
                    provider_key_id: r.try_get("provider_key_id")?,
                    status: r.try_get("status")?,
                    http_status: r.try_get("http_status")?,
                    error_class: r.try_get("error_class")?,
                    latency_ms: r.try_get("latency_ms")?,
                    input_tokens: r.try_get("input_tokens")?,
                    output_tokens: r.try_get("output_tokens")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn recent_requests(
        &self,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, gateway_key_id, endpoint, requested_model, platform, model, provider_key_id, status, http_status, \
             error_class, error_message, stream, attempts, input_tokens, output_tokens, latency_ms, ttfb_ms, created_at \
             FROM requests WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "id": r.try_get::<String, _>("id")?,
                    "gateway_key_id": r.try_get::<Option<String>, _>("gateway_key_id")?,
                    "endpoint": r.try_get::<String, _>("endpoint")?,
                    "requested_model": r.try_get::<String, _>("requested_model")?,
                    "platform": r.try_get::<Option<String>, _>("platform")?,
                    "model": r.try_get::<Option<String>, _>("model")?,
                    "provider_key_id": r.try_get::<Option<String>, _>("provider_key_id")?,
                    "status": r.try_get::<String, _>("status")?,
                    "http_status": r.try_get::<i64, _>("http_status")?,
                    "error_class": r.try_get::<Option<String>, _>("error_class")?,
                    "error_message": r.try_get::<Option<String>, _>("error_message")?,
                    "stream": r.try_get::<i64, _>("stream")? != 0,
                    "attempts": r.try_get::<i64, _>("attempts")?,
                    "input_tokens": r.try_get::<Option<i64>, _>("input_tokens")?,
                    "output_tokens": r.try_get::<Option<i64>, _>("output_tokens")?,
                    "latency_ms": r.try_get::<i64, _>("latency_ms")?,
                    "ttfb_ms": r.try_get::<Option<i64>, _>("ttfb_ms")?,
                    "created_at": r.try_get::<i64, _>("created_at")?,
                }))
            })
            .collect()
    }

    /// Applies retention: deletes request logs older than `max_age` and beyond the newest `max_rows`. Deletes in
    /// chunks of a few thousand rows, oldest first, so that a large backlog never holds the database (or the CPU)
    /// for long in one statement.
    pub async fn prune_requests(
        &self,
        max_age: Option<Duration>,
        max_rows: Option<u64>,
    ) -> Result<u64, StoreError> {
        if self.engine != Engine::Postgres {
            return self.prune_requests_now(max_age, max_rows).await;
        }
        // Several gateway instances may share the database: one prunes at a time (a session lock on a connection
        // of its own, held for the pass), the others skip their turn.
        const RETENTION_LOCK: i64 = 0x6672_6565_6c6c_6d01;
        let mut lock_conn = self.pool.acquire().await?;
        let row = sqlx::query("SELECT pg_try_advisory_lock($1) AS taken")
            .bind(RETENTION_LOCK)
            .fetch_one(&mut *lock_conn)
            .await?;
        if !row.try_get::<bool, _>("taken")? {
            return Ok(0);
        }
        let pruned = self.prune_requests_now(max_age, max_rows).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(RETENTION_LOCK)
            .execute(&mut *lock_conn)
            .await;
        if unlocked.is_err() {
            // The lock dies with its connection: do not hand it back to the pool still holding it.
            let _ = lock_conn.close().await;
        }
        pruned
    }

    async fn prune_requests_now(
        &self,
        max_age: Option<Duration>,
        max_rows: Option<u64>,
    ) -> Result<u64, StoreError> {
        // Small chunks with a pause between them: on a gateway sharing one core, a long DELETE holds the core for
        // milliseconds and shows up in request latency.
        const CHUNK: i64 = 1000;
        const PAUSE: Duration = Duration::from_millis(5);
        // Rows with `created_at` below the cutoff go.
        let mut cutoff: Option<i64> = max_age.map(|age| now_ms() - age.as_millis() as i64);
        if let Some(max) = max_rows {
            let row = sqlx::query(
                "SELECT created_at FROM requests ORDER BY created_at DESC LIMIT 1 OFFSET $1",
            )
            .bind(max as i64)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                let oldest_kept_excluded: i64 = row.try_get("created_at")?;
                let by_rows = oldest_kept_excluded + 1;
                cutoff = Some(cutoff.map_or(by_rows, |c| c.max(by_rows)));
            }
        }
        let Some(cutoff) = cutoff else {
            return Ok(0);
        };
        let mut removed = 0;
        loop {
            let chunk_end = sqlx::query(
                "SELECT created_at FROM requests WHERE created_at < $1 ORDER BY created_at LIMIT 1 OFFSET $2",
            )
            .bind(cutoff)
            .bind(CHUNK)
            .fetch_optional(&self.pool)
            .await?;
            match chunk_end {
                Some(row) => {
                    let end: i64 = row.try_get("created_at")?;
                    removed += sqlx::query("DELETE FROM requests WHERE created_at <= $1")
                        .bind(end)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    tokio::time::sleep(PAUSE).await;
                }
                None => {
                    removed += sqlx::query("DELETE FROM requests WHERE created_at < $1")
                        .bind(cutoff)
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                    sqlx::query("DELETE FROM attempt_failures WHERE created_at < $1")
                        .bind(cutoff)
                        .execute(&self.pool)
                        .await?;
                    return Ok(removed);
                }
            }
        }
    }
}
