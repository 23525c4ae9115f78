//! The per-stack lock: one run per stack at a time, across the console and the command line.
//! The lock is a row of `stack_locks`; beginning a run takes it, finishing or interrupting
//! the run frees it. Runs are held by a process (`host:pid`), so a dead holder is found.

use std::path::Path;
use std::sync::atomic::AtomicI64;

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::stacks::StackSummary;
use crate::store::{now_utc, Store};

use super::recorder::{store_error, RunHandle};
use super::{RunError, RunRequest, RunStatus, RunSummary};

/// This process, as run holders are written: `host:pid`.
pub fn this_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether the process behind `holder` still runs; only this host's processes can be checked.
pub fn holder_alive(holder: &str) -> bool {
    let this_host = this_holder();
    let this_host = this_host.split(':').next().unwrap_or_default();
    match holder.rsplit_once(':') {
        Some((host, pid)) if host == this_host => Path::new(&format!("/proc/{pid}")).exists(),
        _ => true,
    }
}

/// Asks a running run to stop before its next step; the step under way finishes first.
pub async fn request_cancel(store: &Store, actor: &Actor, id: &str) -> Result<(), RunError> {
    let mut audited = Audited::begin(store).await?;
    let updated = sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status = $2")
        .bind(id)
        .bind(RunStatus::Running.as_str())
        .execute(audited.db())
        .await
        .map_err(store_error)?;
    if updated.rows_affected() == 0 {
        audited.rollback().await?;
        return Err(RunError::NotFound(format!("{id} (or it is not running)")));
    }
    audited
        .append(actor, "run.cancel_requested", id, json!({}))
        .await?;
    Ok(audited.commit().await?)
}

/// Finds the stack and begins a run of `operation` on it: the one start that the console's
/// buttons and the command line share.
pub async fn start(
    store: &Store,
    stack: &str,
    request: impl Into<RunRequest>,
    actor: &Actor,
    echo: bool,
) -> Result<(RunHandle, StackSummary), RunError> {
    let stack = crate::stacks::service::find(store, stack).await?;
    let handle = begin(store, &stack, request, actor, echo).await?;
    Ok((handle, stack))
}

/// Takes the stack's lock and records a new run; refused while another run holds the stack.
pub async fn begin(
    store: &Store,
    stack: &StackSummary,
    request: impl Into<RunRequest>,
    actor: &Actor,
    echo: bool,
) -> Result<RunHandle, RunError> {
    let RunRequest {
        operation,
        target,
        options,
    } = request.into();
    let now = now_utc();
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        stack: stack.name.clone(),
        operation,
        target,
        options,
        status: RunStatus::Running,
        requested_by: actor.name.clone(),
        started_at: now.clone(),
        finished_at: String::new(),
        error: String::new(),
        verification: String::new(),
    };
    let holder = this_holder();
    let gated = crate::approvals::service::is_gated(store, &run.stack, &run.request()).await?;
    if gated && run.options.approval.is_empty() {
        return Err(RunError::NeedsApproval(format!(
            "{} on {} needs an approval: ask for one on the console (or with `slipway rollback` / `slipway restore`); it starts once approved",
            run.operation, run.stack
        )));
    }
    let asked = run.request();
    if let Some(why) = crate::releases::service::change_refusal(store, &run.stack, &asked)
        .await
        .map_err(RunError::from)?
    {
        return Err(RunError::Refused(why));
    }
    if !run.options.release.is_empty() {
        crate::releases::service::gate(store, &run.stack, &run.options.release)
            .await
            .map_err(RunError::Refused)?;
    }
    if run.operation == super::Operation::Flag {
        crate::flags::service::check(stack, &run.target, &run.options.flag_value)
            .map_err(RunError::Refused)?;
    }
    let mut audited = Audited::begin(store).await?;
    // The approval is consumed by the run it starts, in the same transaction: once, and only
    // for exactly what it approved — also when the policy stopped gating it meanwhile.
    if gated || !run.options.approval.is_empty() {
        let approved = crate::runs::RunOptions {
            approval: String::new(),
            ..run.options.clone()
        };
        let consumed = sqlx::query(
            "UPDATE approvals SET status = 'executed', run_id = $1 WHERE id = $2 AND status = 'approved' \
             AND run_id = '' AND stack = $3 AND operation = $4 AND target = $5 AND options = $6",
        )
        .bind(&run.id)
        .bind(&run.options.approval)
        .bind(&run.stack)
        .bind(run.operation.as_str())
        .bind(&run.target)
        .bind(approved.to_stored())
        .execute(audited.db())
        .await
        .map_err(store_error)?;
        if consumed.rows_affected() == 0 {
            audited.rollback().await?;
            return Err(RunError::NeedsApproval(format!(
                "approval {} does not cover this run, or was used already",
                run.options.approval
            )));
        }
    }
    let locked = sqlx::query(
        "INSERT INTO stack_locks (stack, run_id, holder, requested_by, since, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&run.stack)
    .bind(&run.id)
    .bind(&holder)
    .bind(&run.requested_by)
    .bind(&now)
    .bind(&now)
    .execute(audited.db())
    .await;
    if let Err(sqlx::Error::Database(db)) = &locked {
        if db.is_unique_violation() {
            audited.rollback().await?;
            return Err(busy(store, &run.stack).await);
        }
    }
    locked.map_err(store_error)?;
    sqlx::query(
        "INSERT INTO runs (id, stack, operation, target, options, status, requested_by, holder, started_at, finished_at, error, cancel_requested, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', '', 0, $10)",
    )
    .bind(&run.id)
    .bind(&run.stack)
    .bind(run.operation.as_str())
    .bind(&run.target)
    .bind(run.options.to_stored())
    .bind(run.status.as_str())
    .bind(&run.requested_by)
    .bind(&holder)
    .bind(&now)
    .bind(&now)
    .execute(audited.db())
    .await
    .map_err(store_error)?;
    // A release's run marks it running in the same transaction, whichever path started it.
    if !run.options.release.is_empty() {
        let marked = sqlx::query(
            "UPDATE releases SET state = 'running', run_id = $1 WHERE id = $2 AND state = 'planned'",
        )
        .bind(&run.id)
        .bind(&run.options.release)
        .execute(audited.db())
        .await
        .map_err(store_error)?;
        if marked.rows_affected() == 0 {
            audited.rollback().await?;
            return Err(RunError::Refused(format!(
                "release {} is not waiting to ship",
                run.options.release
            )));
        }
        audited
            .append(
                actor,
                "release.shipped",
                &run.stack,
                json!({
                    "release": run.options.release,
                    "run": run.id,
                    "window_override": run.options.window_override,
                    "approval": run.options.approval,
                }),
            )
            .await?;
    }
    audited
        .append(
            actor,
            "run.started",
            &run.stack,
            json!({
                "run": run.id,
                "operation": run.operation.as_str(),
                "target": run.target,
                "options": run.options,
            }),
        )
        .await?;
    audited.commit().await?;
    Ok(RunHandle {
        store: store.clone(),
        run,
        next_seq: AtomicI64::new(1),
        echo,
        secrets: Vec::new(),
        released: false,
        stopping: None,
    })
}

/// Who holds a busy stack, in words.
async fn busy(store: &Store, stack: &str) -> RunError {
    let holder: Option<(String, String, String)> =
        sqlx::query_as("SELECT run_id, requested_by, since FROM stack_locks WHERE stack = $1")
            .bind(stack)
            .fetch_optional(store.pool())
            .await
            .unwrap_or(None);
    match holder {
        Some((run, who, since)) => RunError::Busy(format!(
            "stack {stack} is busy: run {run}, started by {who} at {since}; wait for it or cancel it"
        )),
        None => RunError::Busy(format!("stack {stack} is busy; try again in a moment")),
    }
}

pub(super) async fn release<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    run_id: &str,
) -> Result<(), RunError> {
    sqlx::query("DELETE FROM stack_locks WHERE run_id = $1")
        .bind(run_id)
        .execute(db)
        .await
        .map_err(store_error)?;
    Ok(())
}
