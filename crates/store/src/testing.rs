//! Test support shared by the crates' integration tests: a fresh PostgreSQL database per test.

use sqlx::Connection;

use crate::StoreError;

/// The PostgreSQL server named by `FREELLMAPI_TEST_POSTGRES_URL`, if any (tests skip PostgreSQL without it, loudly).
pub fn postgres_base() -> Option<String> {
    std::env::var("FREELLMAPI_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Creates an empty database with a random name on the server of `base` (a `postgres://…/db` URL) and returns its
/// URL.
pub async fn fresh_postgres_database(base: &str) -> Result<String, StoreError> {
    let name = format!("freellmapi_test_{}", crate::random_hex(6));
    let mut conn = sqlx::PgConnection::connect(base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let head = base.rsplit_once('/').map_or(base, |(head, _)| head);
    Ok(format!("{head}/{name}"))
}
