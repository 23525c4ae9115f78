//! Runs whose process is gone, found at console start, and the console's own runs still going
//! when it stops: marked interrupted at the step they were on, their stacks freed.

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::store::{now_utc, Store, StoreError};

use super::lock::{holder_alive, this_holder};
use super::{RunStatus, StepStatus};

/// At console start: runs whose process is gone are marked interrupted at the step they were
/// on, and their stacks freed. Returns how many.
pub async fn recover_interrupted(store: &Store) -> Result<usize, StoreError> {
    let running = running_runs(store).await?;
    let mut recovered = 0;
    for (id, holder) in running
        .into_iter()
        .filter(|(_, holder)| !holder_alive(holder))
    {
        let reason = format!("the process running it ({holder}) stopped before it finished");
        interrupt(store, &id, &holder, &reason).await?;
        recovered += 1;
    }
    Ok(recovered)
}

/// At console start: restore drills whose process is gone leave a throwaway database behind;
/// it is removed. Drills of processes still running (another console, the command line) are
/// theirs. Returns how many were removed.
pub async fn remove_orphaned_drills(
    engine: &crate::stacks::engine::Engine,
) -> Result<usize, crate::stacks::engine::EngineError> {
    use crate::backups::{DRILL_HOLDER_LABEL, DRILL_LABEL};
    let mut removed = 0;
    for (id, labels) in engine.labelled(DRILL_LABEL).await? {
        let holder = labels.get(DRILL_HOLDER_LABEL).map_or("", String::as_str);
        if !holder_alive(holder) || holder.is_empty() {
            engine.remove_container(&id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// At console stop, once the grace period is over: this process's runs still going are
/// marked interrupted at the step they are on, and their stacks freed. Returns how many.
pub async fn interrupt_own(store: &Store) -> Result<usize, StoreError> {
    let holder = this_holder();
    let own: Vec<String> = running_runs(store)
        .await?
        .into_iter()
        .filter(|(_, held_by)| *held_by == holder)
        .map(|(id, _)| id)
        .collect();
    for id in &own {
        interrupt(store, id, &holder, "the console stopped before it finished").await?;
    }
    Ok(own.len())
}

async fn running_runs(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, holder FROM runs WHERE status = $1")
            .bind(RunStatus::Running.as_str())
            .fetch_all(store.pool())
            .await?,
    )
}

/// Marks one run interrupted at the step it is on and frees its stack, audited.
pub(super) async fn interrupt(
    store: &Store,
    id: &str,
    holder: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let now = now_utc();
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "UPDATE run_steps SET status = $1, finished_at = $2 WHERE run_id = $3 AND status = $4",
    )
    .bind(StepStatus::Interrupted.as_str())
    .bind(&now)
    .bind(id)
    .bind(StepStatus::Running.as_str())
    .execute(audited.db())
    .await?;
    sqlx::query(
        "UPDATE runs SET status = $1, finished_at = $2, error = $3 WHERE id = $4 AND status = $5",
    )
    .bind(RunStatus::Interrupted.as_str())
    .bind(&now)
    .bind(reason)
    .bind(id)
    .bind(RunStatus::Running.as_str())
    .execute(audited.db())
    .await?;
    sqlx::query("DELETE FROM stack_locks WHERE run_id = $1")
        .bind(id)
        .execute(audited.db())
        .await?;
    // A release shipped by the run ends with it.
    sqlx::query("UPDATE releases SET state = 'failed' WHERE run_id = $1 AND state = 'running'")
        .bind(id)
        .execute(audited.db())
        .await?;
    audited
        .append(
            &Actor::system(),
            "run.interrupted",
            id,
            json!({ "holder": holder, "reason": reason }),
        )
        .await?;
    audited.commit().await
}
