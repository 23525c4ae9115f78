//! The `backups` table: recording a dump in the same transaction as its audit entry, and
//! reading the inventory back.

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::store::{now_utc, Store, StoreError};

use super::Backup;

/// Records a finished dump, audited as `backup.taken` in the same transaction.
pub async fn record(store: &Store, actor: &Actor, backup: &Backup) -> Result<(), StoreError> {
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "INSERT INTO backups (id, stack, service, file, size_bytes, sha256, started_at, finished_at, \
         requested_by, reason, run_id, migration_head, images, verification, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(&backup.id)
    .bind(&backup.stack)
    .bind(&backup.service)
    .bind(&backup.file)
    .bind(backup.size_bytes)
    .bind(&backup.sha256)
    .bind(&backup.started_at)
    .bind(&backup.finished_at)
    .bind(&backup.requested_by)
    .bind(&backup.reason)
    .bind(&backup.run_id)
    .bind(&backup.migration_head)
    .bind(&backup.images)
    .bind(&backup.verification)
    .bind(now_utc())
    .execute(audited.db())
    .await?;
    audited
        .append(
            actor,
            "backup.taken",
            &backup.stack,
            json!({
                "backup": backup.id,
                "service": backup.service,
                "size_bytes": backup.size_bytes,
                "sha256": backup.sha256,
                "reason": backup.reason,
                "run": backup.run_id,
            }),
        )
        .await?;
    audited.commit().await
}

const COLUMNS: &str = "id, stack, service, file, size_bytes, sha256, started_at, finished_at, \
                       requested_by, reason, run_id, migration_head, images, verification, \
                       verified_at, restore_ms, verify_note";

/// One backup of `stack`, by id.
pub async fn find(store: &Store, stack: &str, id: &str) -> Result<Option<Backup>, StoreError> {
    let row: Option<Backup> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups WHERE stack = $1 AND id = $2"
    ))
    .bind(stack)
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    Ok(row)
}

/// What a restore drill found, audited as `backup.verified` in the same transaction.
pub async fn set_verification(
    store: &Store,
    backup: &Backup,
    state: &str,
    restore_ms: i64,
    note: &str,
) -> Result<(), StoreError> {
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "UPDATE backups SET verification = $1, verified_at = $2, restore_ms = $3, verify_note = $4 \
         WHERE id = $5",
    )
    .bind(state)
    .bind(now_utc())
    .bind(restore_ms)
    .bind(note)
    .bind(&backup.id)
    .execute(audited.db())
    .await?;
    audited
        .append(
            &Actor::system(),
            "backup.verified",
            &backup.stack,
            json!({ "backup": backup.id, "state": state, "restore_ms": restore_ms, "note": note }),
        )
        .await?;
    audited.commit().await
}

/// The backups of `stack` (every stack when empty), newest first.
pub async fn list(store: &Store, stack: &str) -> Result<Vec<Backup>, StoreError> {
    let rows: Vec<Backup> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups WHERE ($1 = '' OR stack = $1) \
         ORDER BY started_at DESC, id LIMIT 500"
    ))
    .bind(stack)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}
