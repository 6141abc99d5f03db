//! Outbound proxies of the users' pools: credentials sealed like provider keys.

use super::*;

impl Store {
    const PROXY_COLUMNS: &'static str =
        "id, user_id, label, url, credentials, country, enabled, created_at, updated_at";

    fn proxy_from_row(row: &AnyRow) -> Result<ProxyRow, StoreError> {
        Ok(ProxyRow {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            label: row.try_get("label")?,
            url: row.try_get("url")?,
            encrypted_credentials: row.try_get("credentials")?,
            country: row.try_get("country")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Decrypts a proxy's stored credentials (`user:password`).
    pub fn reveal_proxy_credentials(&self, row: &ProxyRow) -> Result<Option<String>, StoreError> {
        row.encrypted_credentials
            .as_deref()
            .map(|s| self.cipher.decrypt(s))
            .transpose()
    }

    pub async fn insert_proxy(&self, new: &NewProxy) -> Result<ProxyRow, StoreError> {
        let now = now_ms();
        let row = ProxyRow {
            id: new_id(),
            user_id: new.user_id.clone(),
            label: new.label.clone(),
            url: new.url.clone(),
            encrypted_credentials: new
                .credentials
                .as_deref()
                .map(|c| self.cipher.encrypt(c))
                .transpose()?,
            country: new.country.clone(),
            enabled: new.enabled,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO proxies (id, user_id, label, url, credentials, country, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&row.id)
        .bind(&row.user_id)
        .bind(&row.label)
        .bind(&row.url)
        .bind(row.encrypted_credentials.clone())
        .bind(row.country.clone())
        .bind(flag(row.enabled))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(row)
    }

    pub async fn proxy(&self, user_id: &str, id: &str) -> Result<Option<ProxyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM proxies WHERE id = $1 AND user_id = $2",
            Self::PROXY_COLUMNS
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::proxy_from_row).transpose()
    }

    pub async fn proxies_of(&self, user_id: &str) -> Result<Vec<ProxyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM proxies WHERE user_id = $1 ORDER BY created_at, id",
            Self::PROXY_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::proxy_from_row).collect()
    }

    pub async fn all_proxies(&self) -> Result<Vec<ProxyRow>, StoreError> {
        let sql = format!(
            "SELECT {} FROM proxies ORDER BY created_at, id",
            Self::PROXY_COLUMNS
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(Self::proxy_from_row).collect()
    }

    pub async fn update_proxy(
        &self,
        user_id: &str,
        id: &str,
        patch: &ProxyPatch,
    ) -> Result<Option<ProxyRow>, StoreError> {
        let Some(mut row) = self.proxy(user_id, id).await? else {
            return Ok(None);
        };
        if let Some(label) = &patch.label {
            row.label = label.clone();
        }
        if let Some(url) = &patch.url {
            row.url = url.clone();
        }
        if let Some(credentials) = &patch.credentials {
            row.encrypted_credentials = credentials
                .as_deref()
                .map(|c| self.cipher.encrypt(c))
                .transpose()?;
        }
        if let Some(country) = &patch.country {
            row.country = country.clone();
        }
        if let Some(enabled) = patch.enabled {
            row.enabled = enabled;
        }
        // Strictly increasing, so an edit within the same millisecond still reads as a new version.
        row.updated_at = now_ms().max(row.updated_at + 1);
        sqlx::query(
            "UPDATE proxies SET label = $1, url = $2, credentials = $3, country = $4, enabled = $5, updated_at = $6 \
             WHERE id = $7 AND user_id = $8",
        )
        .bind(&row.label)
        .bind(&row.url)
        .bind(row.encrypted_credentials.clone())
        .bind(row.country.clone())
        .bind(flag(row.enabled))
        .bind(row.updated_at)
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(Some(row))
    }

    /// Enables or disables the user's proxies among `ids`; returns how many rows changed.
    pub async fn set_proxies_enabled(
        &self,
        user_id: &str,
        ids: &[String],
        enabled: bool,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut changed = 0;
        for id in ids {
            changed += sqlx::query(
                "UPDATE proxies SET enabled = $1, updated_at = $2 WHERE id = $3 AND user_id = $4",
            )
            .bind(flag(enabled))
            .bind(now_ms())
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Deletes the user's proxies among `ids`; returns how many were deleted.
    pub async fn delete_proxies(&self, user_id: &str, ids: &[String]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        for id in ids {
            deleted += sqlx::query("DELETE FROM proxies WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    // ---- settings ----
}
