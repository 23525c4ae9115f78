//! Server half of the console's self-report.

use crate::context::ConsoleContext;
use crate::store::{now_utc, Store, StoreError};

use super::SystemStatus;

/// One start of the console, as recorded in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleStart {
    pub id: String,
    pub started_at: String,
    pub version: String,
}

/// Writes down that this console process has started against the store.
#[tracing::instrument(skip_all)]
pub async fn record_start(store: &Store, version: &str) -> Result<ConsoleStart, StoreError> {
    let now = now_utc();
    let start = ConsoleStart {
        id: uuid::Uuid::new_v4().to_string(),
        started_at: now.clone(),
        version: version.to_owned(),
    };
    sqlx::query(
        "INSERT INTO console_starts (id, started_at, version, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&start.id)
    .bind(&start.started_at)
    .bind(&start.version)
    .bind(&now)
    .execute(store.pool())
    .await?;
    Ok(start)
}

/// The most recent starts, newest first.
pub async fn recent_starts(store: &Store, limit: i64) -> Result<Vec<ConsoleStart>, StoreError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, started_at, version FROM console_starts ORDER BY started_at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, started_at, version)| ConsoleStart {
            id,
            started_at,
            version,
        })
        .collect())
}

/// Measures the store and reports on the running console.
#[tracing::instrument(skip_all)]
pub async fn status(console: &ConsoleContext) -> Result<SystemStatus, StoreError> {
    let round_trip = console.store.ping().await?;
    let migrations_applied = console.store.migrations_applied().await?;
    Ok(SystemStatus {
        version: console.start.version.clone(),
        store_backend: console.store.backend().label().to_owned(),
        store_location: console.store.shown_location().to_owned(),
        migrations_applied,
        store_round_trip_ms: round_trip.as_secs_f64() * 1000.0,
        started_at: console.start.started_at.clone(),
        checked_at: now_utc(),
    })
}
