//! Gateway keys: what clients send as their API key (stored as a SHA-256 hash), their limits and allow-lists, and
//! the usage counters the server adds every second.

use super::*;

impl Store {
    fn gateway_key_from_row(row: &AnyRow) -> Result<GatewayKeyRow, StoreError> {
        Ok(GatewayKeyRow {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            label: row.try_get("label")?,
            key_hash: row.try_get("key_hash")?,
            prefix: row.try_get("prefix")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            config_name: row.try_get("config_name")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            rpm_limit: row
                .try_get::<Option<i64>, _>("rpm_limit")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            tpd_limit: row
                .try_get::<Option<i64>, _>("tpd_limit")?
                .map(|n| u64::try_from(n).unwrap_or(0)),
            allowed_models: match row.try_get::<Option<String>, _>("allowed_models")? {
                Some(text) => Some(
                    serde_json::from_str(&text)
                        .map_err(|e| StoreError::Corrupt(format!("allowed_models: {e}")))?,
                ),
                None => None,
            },
            request_count: row.try_get("request_count")?,
            token_count: row.try_get("token_count")?,
        })
    }

    const GATEWAY_KEY_COLUMNS: &'static str =
        "id, user_id, label, key_hash, prefix, enabled, config_name, created_at, last_used_at, rpm_limit, \
         tpd_limit, allowed_models, request_count, token_count";

    /// Mints a gateway key (or stores an explicit one). Returns the row and the raw key, which is not kept.
    pub async fn create_gateway_key(
        &self,
        user_id: &str,
        label: &str,
        explicit: Option<&str>,
        config_name: Option<&str>,
    ) -> Result<(GatewayKeyRow, String), StoreError> {
        let raw = match explicit {
            Some(k) => k.to_owned(),
            None => format!("freellmapi-{}", random_hex(24)),
        };
        let row = GatewayKeyRow {
            id: new_id(),
            user_id: user_id.to_owned(),
            label: label.to_owned(),
            key_hash: token_hash(&raw),
            prefix: gateway_key_prefix(&raw),
            enabled: true,
            config_name: config_name.map(str::to_owned),
            created_at: now_ms(),
            last_used_at: None,
            rpm_limit: None,
            tpd_limit: None,
            allowed_models: None,
            request_count: 0,
            token_count: 0,
        };
        let result = sqlx::query(
            "INSERT INTO gateway_keys (id, user_id, label, key_hash, prefix, enabled, config_name, created_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
        )
        .bind(&row.id)
        .bind(&row.user_id)
        .bind(&row.label)
        .bind(&row.key_hash)
        .bind(&row.prefix)
        .bind(row.config_name.clone())
        .bind(row.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok((row, raw)),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict(
                "that gateway key already exists".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn gateway_keys_of(&self, user_id: &str) -> Result<Vec<GatewayKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM gateway_keys WHERE user_id = $1 ORDER BY created_at, id",
            Self::GATEWAY_KEY_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::gateway_key_from_row).collect()
    }

    pub async fn all_gateway_keys(&self) -> Result<Vec<GatewayKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM gateway_keys ORDER BY created_at, id",
            Self::GATEWAY_KEY_COLUMNS
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(Self::gateway_key_from_row).collect()
    }

    pub async fn gateway_key_by_config_name(
        &self,
        user_id: &str,
        name: &str,
    ) -> Result<Option<GatewayKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM gateway_keys WHERE user_id = $1 AND config_name = $2",
            Self::GATEWAY_KEY_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(user_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::gateway_key_from_row).transpose()
    }

    /// Replaces the key value and label of a config-declared gateway key (its id, history and usage stay).
    pub async fn rekey_gateway_key(
        &self,
        id: &str,
        label: &str,
        raw: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE gateway_keys SET label = $1, key_hash = $2, prefix = $3 WHERE id = $4")
            .bind(label)
            .bind(token_hash(raw))
            .bind(gateway_key_prefix(raw))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update_gateway_key(
        &self,
        user_id: &str,
        id: &str,
        label: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Option<GatewayKeyRow>, StoreError> {
        if let Some(label) = label {
            sqlx::query("UPDATE gateway_keys SET label = $1 WHERE id = $2 AND user_id = $3")
                .bind(label)
                .bind(id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        }
        if let Some(enabled) = enabled {
            sqlx::query("UPDATE gateway_keys SET enabled = $1 WHERE id = $2 AND user_id = $3")
                .bind(flag(enabled))
                .bind(id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        }
        let sql = format!(
            "SELECT {} FROM gateway_keys WHERE id = $1 AND user_id = $2",
            Self::GATEWAY_KEY_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::gateway_key_from_row).transpose()
    }

    pub async fn delete_gateway_key(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM gateway_keys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Replaces the limits and allow-list of a gateway key. Returns the updated row (`None`: not this user's key).
    pub async fn set_gateway_key_policy(
        &self,
        user_id: &str,
        id: &str,
        policy: &GatewayKeyPolicy,
    ) -> Result<Option<GatewayKeyRow>, StoreError> {
        let allowed = policy
            .allowed_models
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE gateway_keys SET rpm_limit = $1, tpd_limit = $2, allowed_models = $3 WHERE id = $4 AND user_id = $5",
        )
        .bind(policy.rpm_limit.map(i64::from))
        .bind(policy.tpd_limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
        .bind(allowed)
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        self.gateway_key(user_id, id).await
    }

    pub async fn gateway_key(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<Option<GatewayKeyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM gateway_keys WHERE id = $1 AND user_id = $2",
            Self::GATEWAY_KEY_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::gateway_key_from_row).transpose()
    }

    /// Adds usage gathered in memory to the stored counters and moves `last_used_at` forward.
    pub async fn flush_gateway_key_usage(
        &self,
        deltas: &[GatewayKeyUsageDelta],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for d in deltas {
            sqlx::query(
                "UPDATE gateway_keys SET request_count = request_count + $1, token_count = token_count + $2, \
                 last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $3 THEN $3 ELSE last_used_at END \
                 WHERE id = $4",
            )
            .bind(d.requests)
            .bind(d.tokens)
            .bind(d.last_used_at)
            .bind(&d.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
