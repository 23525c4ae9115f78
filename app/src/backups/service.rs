//! The `backups` table: recording a dump in the same transaction as its audit entry, and
//! reading the inventory back.

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::store::{now_utc, Store, StoreError};

use super::{Backup, BackupError, BackupPolicy, BackupSummaryData, PolicyChange};

/// Records a finished dump, audited as `backup.taken` in the same transaction.
pub async fn record(store: &Store, actor: &Actor, backup: &Backup) -> Result<(), StoreError> {
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "INSERT INTO backups (id, stack, service, file, size_bytes, sha256, started_at, finished_at, \
         requested_by, reason, note, run_id, migration_head, images, row_counts, verification, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
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
    .bind(&backup.note)
    .bind(&backup.run_id)
    .bind(&backup.migration_head)
    .bind(&backup.images)
    .bind(&backup.row_counts)
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
                       requested_by, reason, note, run_id, migration_head, images, row_counts, \
                       verification, verified_at, restore_ms, verify_note";

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

/// The newest `limit` backups of `stack` (every stack when empty), newest first.
pub async fn list(store: &Store, stack: &str, limit: i64) -> Result<Vec<Backup>, StoreError> {
    let rows: Vec<Backup> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups WHERE ($1 = '' OR stack = $1) \
         ORDER BY started_at DESC, id LIMIT $2"
    ))
    .bind(stack)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// Changes whenever a backup of `stack` (every stack when empty) is added, verified or
/// pruned.
pub async fn version(store: &Store, stack: &str) -> Result<String, StoreError> {
    let (count, newest, verified): (i64, String, String) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MAX(started_at), ''), COALESCE(MAX(verified_at), '') \
         FROM backups WHERE ($1 = '' OR stack = $1)",
    )
    .bind(stack)
    .fetch_one(store.pool())
    .await?;
    Ok(format!("{count}/{newest}/{verified}"))
}

/// The stack's newest backup a restore drill has verified.
pub async fn newest_verified(store: &Store, stack: &str) -> Result<Option<Backup>, StoreError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM backups WHERE stack = $1 AND verification = 'verified' \
         ORDER BY started_at DESC LIMIT 1"
    ))
    .bind(stack)
    .fetch_optional(store.pool())
    .await
    .map_err(StoreError::from)
}

/// What the stack's page and backups card show about its backups.
pub async fn overview(store: &Store, stack: &str) -> Result<BackupSummaryData, BackupError> {
    let summary = crate::stacks::service::find(store, stack)
        .await
        .map_err(|_| BackupError::UnknownStack(stack.to_owned()))?;
    let cannot_back_up = match crate::stacks::service::definition(&summary) {
        Ok(definition) if definition.services.iter().any(|s| s.backup.is_some()) => String::new(),
        Ok(_) => format!("Stack {stack}: {}.", super::NOTHING_TO_BACK_UP),
        Err(error) => format!("Stack {stack} cannot be read: {error}"),
    };
    let newest_verified = newest_verified(store, stack).await?;
    let newest_verified_age = newest_verified
        .as_ref()
        .and_then(|backup| chrono::DateTime::parse_from_rfc3339(&backup.finished_at).ok())
        .map(|at| {
            let seconds = (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_seconds();
            super::age_in_words(seconds)
        })
        .unwrap_or_default();
    Ok(BackupSummaryData {
        cannot_back_up,
        newest_verified,
        newest_verified_age,
        policy: policy(store, stack).await?,
    })
}

/// The stack's backup policy; the defaults when an admin has set none.
pub async fn policy(store: &Store, stack: &str) -> Result<BackupPolicy, StoreError> {
    let row: Option<(i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT every_seconds, keep_last, keep_daily, keep_weekly, before_update \
         FROM backup_policies WHERE stack = $1",
    )
    .bind(stack)
    .fetch_optional(store.pool())
    .await?;
    Ok(match row {
        None => BackupPolicy::default(),
        Some((every_seconds, keep_last, keep_daily, keep_weekly, before_update)) => BackupPolicy {
            every_seconds,
            keep_last,
            keep_daily,
            keep_weekly,
            before_update: before_update != 0,
        },
    })
}

/// Why a policy cannot be used; `None` when it can.
pub fn policy_fault(policy: &BackupPolicy) -> Option<String> {
    if policy.every_seconds != 0 && policy.every_seconds < 300 {
        return Some("a schedule runs at most every 5 minutes (every 5m or longer)".into());
    }
    let counts = [
        ("keep-last", policy.keep_last),
        ("keep-daily", policy.keep_daily),
        ("keep-weekly", policy.keep_weekly),
    ];
    counts
        .iter()
        .find(|(_, value)| !(0..=1000).contains(value))
        .map(|(name, value)| format!("{name} must be between 0 and 1000, not {value}"))
}

/// Changes the parts of the stack's policy given (none: reads it) and returns the policy
/// now in force; a policy that cannot be used is refused whole.
pub async fn change_policy(
    store: &Store,
    actor: &Actor,
    stack: &str,
    change: &PolicyChange,
) -> Result<BackupPolicy, BackupError> {
    crate::stacks::service::find(store, stack)
        .await
        .map_err(|_| BackupError::UnknownStack(stack.to_owned()))?;
    let current = policy(store, stack).await?;
    if change.is_empty() {
        return Ok(current);
    }
    let wanted = change.applied_to(current);
    if let Some(fault) = policy_fault(&wanted) {
        return Err(BackupError::Invalid(fault));
    }
    set_policy(store, actor, stack, &wanted).await?;
    Ok(wanted)
}

/// Sets the stack's backup policy, audited as `backup.policy_set` in the same transaction.
pub async fn set_policy(
    store: &Store,
    actor: &Actor,
    stack: &str,
    policy: &BackupPolicy,
) -> Result<(), StoreError> {
    let mut audited = Audited::begin(store).await?;
    sqlx::query("DELETE FROM backup_policies WHERE stack = $1")
        .bind(stack)
        .execute(audited.db())
        .await?;
    sqlx::query(
        "INSERT INTO backup_policies (stack, every_seconds, keep_last, keep_daily, keep_weekly, \
         before_update, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(stack)
    .bind(policy.every_seconds)
    .bind(policy.keep_last)
    .bind(policy.keep_daily)
    .bind(policy.keep_weekly)
    .bind(i64::from(policy.before_update))
    .bind(&actor.name)
    .bind(now_utc())
    .execute(audited.db())
    .await?;
    audited
        .append(actor, "backup.policy_set", stack, json!(policy))
        .await?;
    audited.commit().await
}

/// The stacks with a schedule, each with its interval and when its newest scheduled backup
/// run started (empty when none has).
pub async fn schedules(store: &Store) -> Result<Vec<(String, i64, String)>, StoreError> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT p.stack, p.every_seconds, \
         COALESCE((SELECT MAX(r.started_at) FROM runs r WHERE r.stack = p.stack \
                   AND r.operation = 'backup' AND r.options LIKE $1), '') \
         FROM backup_policies p WHERE p.every_seconds > 0 ORDER BY p.stack",
    )
    // Only the console's schedule sets the option (never a request), so no user named
    // like the scheduler can push its backups back.
    .bind("%\"scheduled\":true%")
    .fetch_all(store.pool())
    .await?;
    Ok(rows)
}

/// Who starts scheduled backups, as runs and the audit trail name it.
pub const SCHEDULER: &str = "slipway-schedule";

/// The backups something else needs, with why: those the stack's newest successful deploy,
/// update or migrate took first (the data a rollback of that change restores).
pub async fn protected(
    store: &Store,
    stack: &str,
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT b.id, r.operation FROM backups b JOIN runs r ON r.id = b.run_id \
         WHERE b.stack = $1 AND r.id = (SELECT id FROM runs WHERE stack = $1 AND status = 'succeeded' \
           AND operation IN ('deploy', 'update', 'migrate') ORDER BY started_at DESC LIMIT 1) \
         ORDER BY b.started_at",
    )
    .bind(stack)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, operation)| {
            (
                id,
                format!("the data from before the last {operation}: what its rollback restores"),
            )
        })
        .collect())
}

/// Removes a pruned backup from the inventory, audited as `backup.pruned` with why.
pub async fn forget(store: &Store, actor: &Actor, backup: &Backup) -> Result<(), StoreError> {
    let mut audited = Audited::begin(store).await?;
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(&backup.id)
        .execute(audited.db())
        .await?;
    audited
        .append(
            actor,
            "backup.pruned",
            &backup.stack,
            json!({ "backup": backup.id, "file": backup.file, "sha256": backup.sha256 }),
        )
        .await?;
    audited.commit().await
}
