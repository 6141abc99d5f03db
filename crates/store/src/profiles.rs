//! AI profiles: per-user named virtual models over an ordered list of real models, with a routing strategy.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::records::ProfileRow;
use crate::store::{is_unique_violation, new_id, now_ms, Store, StoreError};

const COLUMNS: &str = "id, user_id, name, strategy, models, config_name, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<ProfileRow, StoreError> {
    let models: String = row.try_get("models")?;
    Ok(ProfileRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        strategy: row.try_get("strategy")?,
        models: serde_json::from_str(&models)
            .map_err(|e| StoreError::Corrupt(format!("profile models: {e}")))?,
        config_name: row.try_get("config_name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn models_json(models: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(models).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn conflict(name: &str) -> StoreError {
    StoreError::Conflict(format!("a profile named `{name}` already exists"))
}

impl Store {
    pub async fn all_profiles(&self) -> Result<Vec<ProfileRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM profiles ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn profiles_of(&self, user_id: &str) -> Result<Vec<ProfileRow>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM profiles WHERE user_id = $1 ORDER BY created_at, id");
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn profile(&self, user_id: &str, id: &str) -> Result<Option<ProfileRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM profiles WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn create_profile(
        &self,
        user_id: &str,
        name: &str,
        strategy: &str,
        models: &[String],
        config_name: Option<&str>,
    ) -> Result<ProfileRow, StoreError> {
        let now = now_ms();
        let row = ProfileRow {
            id: new_id(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            strategy: strategy.to_owned(),
            models: models.to_vec(),
            config_name: config_name.map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        let result = sqlx::query(
            "INSERT INTO profiles (id, user_id, name, strategy, models, config_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&row.user_id)
        .bind(&row.name)
        .bind(&row.strategy)
        .bind(models_json(models)?)
        .bind(row.config_name.clone())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(row),
            Err(e) if is_unique_violation(&e) => Err(conflict(name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces a profile's name, strategy and models.
    pub async fn update_profile(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        strategy: &str,
        models: &[String],
    ) -> Result<Option<ProfileRow>, StoreError> {
        let Some(mut row) = self.profile(user_id, id).await? else {
            return Ok(None);
        };
        row.name = name.to_owned();
        row.strategy = strategy.to_owned();
        row.models = models.to_vec();
        row.updated_at = now_ms();
        let result = sqlx::query(
            "UPDATE profiles SET name = $1, strategy = $2, models = $3, updated_at = $4 WHERE id = $5 AND user_id = $6",
        )
        .bind(name)
        .bind(strategy)
        .bind(models_json(models)?)
        .bind(row.updated_at)
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(Some(row)),
            Err(e) if is_unique_violation(&e) => Err(conflict(name)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete_profile(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM profiles WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Creates or updates the profile the configuration file declares under `config_name`; idempotent.
    pub async fn upsert_config_profile(
        &self,
        user_id: &str,
        config_name: &str,
        strategy: &str,
        models: &[String],
    ) -> Result<ProfileRow, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM profiles WHERE user_id = $1 AND name = $2");
        let existing = sqlx::query(&sql)
            .bind(user_id)
            .bind(config_name)
            .fetch_optional(&self.pool)
            .await?;
        match existing.as_ref().map(from_row).transpose()? {
            Some(row) if row.strategy == strategy && row.models == models => Ok(row),
            Some(row) => self
                .update_profile(user_id, &row.id, config_name, strategy, models)
                .await?
                .ok_or_else(|| StoreError::Conflict("profile vanished while updating".into())),
            None => {
                self.create_profile(user_id, config_name, strategy, models, Some(config_name))
                    .await
            }
        }
    }
}
