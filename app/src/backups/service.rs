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
                       requested_by, reason, run_id, migration_head, images, verification";

/// The backups of `stack` (every stack when empty), newest first.
pub async fn list(store: &Store, stack: &str) -> Result<Vec<Backup>, StoreError> {
    let rows: Vec<BackupRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups WHERE ($1 = '' OR stack = $1) \
         ORDER BY started_at DESC, id LIMIT 500"
    ))
    .bind(stack)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

type BackupRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn from_row(row: BackupRow) -> Backup {
    let (
        id,
        stack,
        service,
        file,
        size_bytes,
        sha256,
        started_at,
        finished_at,
        requested_by,
        reason,
        run_id,
        migration_head,
        images,
        verification,
    ) = row;
    Backup {
        id,
        stack,
        service,
        file,
        size_bytes,
        sha256,
        started_at,
        finished_at,
        requested_by,
        reason,
        run_id,
        migration_head,
        images,
        verification,
    }
}
