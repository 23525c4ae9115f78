//! The approval store and its rules: requesting, deciding, expiring, voiding, and starting
//! the approved run. Every change is audited in its own transaction (which also serializes
//! decisions: each takes the audit head's lock).

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::auth::{CurrentUser, Role};
use crate::context::ConsoleContext;
use crate::runs::{Operation, RunOptions, RunRequest};
use crate::stacks::engine::Engine;
use crate::store::{now_utc, Store, StoreError};

use super::plan::{describe, Facts};
use super::{Approval, ApprovalError, ApprovalPolicy, ApprovalStatus, Decision};

/// Who requests or decides: the user (empty id for the command line), a mark of their
/// session (empty for the command line) and their audit identity.
pub struct Person {
    pub user_id: String,
    pub session: String,
    pub actor: Actor,
}

/// The stack's approval policy; the defaults when an admin has set none.
pub async fn policy(store: &Store, stack: &str) -> Result<ApprovalPolicy, StoreError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT required, expires_minutes, gate_changes FROM approval_policies WHERE stack = $1",
    )
    .bind(stack)
    .fetch_optional(store.pool())
    .await?;
    Ok(match row {
        None => ApprovalPolicy::default(),
        Some((required, expires_minutes, gate_changes)) => ApprovalPolicy {
            required,
            expires_minutes,
            gate_changes: gate_changes != 0,
        },
    })
}

/// Sets the stack's approval policy, audited as `approval.policy_set`.
pub async fn set_policy(
    store: &Store,
    actor: &Actor,
    stack: &str,
    policy: &ApprovalPolicy,
) -> Result<(), ApprovalError> {
    if !(1..=10).contains(&policy.required) {
        return Err(ApprovalError::Refused(
            "a request needs between 1 and 10 approvals".into(),
        ));
    }
    if !(5..=7 * 24 * 60).contains(&policy.expires_minutes) {
        return Err(ApprovalError::Refused(
            "requests expire after between 5 minutes and 7 days".into(),
        ));
    }
    crate::stacks::service::find(store, stack)
        .await
        .map_err(|error| ApprovalError::Run(error.into()))?;
    let mut audited = Audited::begin(store).await?;
    sqlx::query("DELETE FROM approval_policies WHERE stack = $1")
        .bind(stack)
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    sqlx::query(
        "INSERT INTO approval_policies (stack, required, expires_minutes, gate_changes, updated_by, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(stack)
    .bind(policy.required)
    .bind(policy.expires_minutes)
    .bind(i64::from(policy.gate_changes))
    .bind(&actor.name)
    .bind(now_utc())
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(actor, "approval.policy_set", stack, json!(policy))
        .await?;
    Ok(audited.commit().await?)
}

/// Whether `request` on `stack` runs only with an approval: what always needs one, what the
/// stack's policy gates, and a release shipped outside the deploy window.
pub async fn is_gated(
    store: &Store,
    stack: &str,
    request: &RunRequest,
) -> Result<bool, StoreError> {
    let operation = request.operation;
    Ok(operation.always_approved()
        || !request.options.window_override.is_empty()
        || (operation.may_be_gated() && policy(store, stack).await?.gate_changes))
}

/// The digest an approval is bound to: SHA-256 over what it covers, by name.
pub fn digest(facts: &Facts) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        serde_json::to_vec(facts).unwrap_or_default(),
    ))
}

/// Records a request for a gated run, with what it will do and the digest of what it
/// covers; audited as `approval.requested`.
pub async fn request(
    store: &Store,
    engine: &Engine,
    requester: &Person,
    stack: &str,
    request: RunRequest,
    reason: &str,
) -> Result<Approval, ApprovalError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApprovalError::Refused(
            "say why, in at most 500 characters".into(),
        ));
    }
    if !is_gated(store, stack, &request).await? {
        return Err(ApprovalError::Refused(format!(
            "{} on {stack} needs no approval: start it directly",
            request.operation
        )));
    }
    let summary = crate::stacks::service::find(store, stack)
        .await
        .map_err(|error| ApprovalError::Run(error.into()))?;
    let (plan, facts) = describe(store, engine, &summary, &request).await?;
    let policy = policy(store, stack).await?;
    let now = chrono::Utc::now();
    let approval = Approval {
        id: uuid::Uuid::new_v4().to_string(),
        stack: stack.to_owned(),
        operation: request.operation,
        target: request.target.clone(),
        options: request.options.clone(),
        reason: reason.to_owned(),
        requested_by: requester.actor.name.clone(),
        status: ApprovalStatus::Waiting,
        status_note: String::new(),
        required: policy.required,
        plan,
        digest: digest(&facts),
        created_at: crate::store::utc_text(now),
        expires_at: crate::store::utc_text(now + chrono::Duration::minutes(policy.expires_minutes)),
        run_id: String::new(),
        decisions: Vec::new(),
        break_glass: String::new(),
        acknowledged_by: String::new(),
        acknowledged_at: String::new(),
        can_decide: false,
        can_break_glass: false,
        can_acknowledge: false,
    };
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "INSERT INTO approvals (id, stack, operation, target, options, reason, requested_by, \
         requester_id, requester_session, plan, facts, digest, required, status, status_note, \
         run_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, '', '', $15, $16)",
    )
    .bind(&approval.id)
    .bind(&approval.stack)
    .bind(approval.operation.as_str())
    .bind(&approval.target)
    .bind(approval.options.to_stored())
    .bind(&approval.reason)
    .bind(&approval.requested_by)
    .bind(&requester.user_id)
    .bind(&requester.session)
    .bind(serde_json::to_string(&approval.plan).unwrap_or_default())
    .bind(serde_json::to_string(&facts).unwrap_or_default())
    .bind(&approval.digest)
    .bind(approval.required)
    .bind(approval.status.as_str())
    .bind(&approval.created_at)
    .bind(&approval.expires_at)
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(
            &requester.actor,
            "approval.requested",
            stack,
            json!({
                "approval": approval.id,
                "operation": approval.operation.as_str(),
                "target": approval.target,
                "options": approval.options,
                "reason": approval.reason,
                "digest": approval.digest,
            }),
        )
        .await?;
    audited.commit().await?;
    Ok(approval)
}

/// A row of `approvals` as stored, with the facts its digest covers (never sent to the
/// browser).
#[derive(sqlx::FromRow)]
struct ApprovalRecord {
    id: String,
    stack: String,
    operation: String,
    target: String,
    options: String,
    reason: String,
    requested_by: String,
    status: String,
    status_note: String,
    plan: String,
    facts: String,
    required: i64,
    digest: String,
    run_id: String,
    created_at: String,
    expires_at: String,
    break_glass: String,
    acknowledged_by: String,
    acknowledged_at: String,
}

const COLUMNS: &str = "id, stack, operation, target, options, reason, requested_by, status, \
                       status_note, plan, facts, required, digest, run_id, created_at, expires_at, \
                       break_glass, acknowledged_by, acknowledged_at";

/// The approval a record holds, with its decisions, and the facts it was approved on.
async fn with_decisions(
    store: &Store,
    record: ApprovalRecord,
) -> Result<(Approval, Facts), StoreError> {
    let decisions: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT user_name, decision, comment, decided_at FROM approval_decisions \
         WHERE approval_id = $1 ORDER BY decided_at",
    )
    .bind(&record.id)
    .fetch_all(store.pool())
    .await?;
    let approval = Approval {
        id: record.id,
        stack: record.stack,
        // Only this module writes these columns, from the typed values.
        operation: record.operation.parse().unwrap_or(Operation::Rollback),
        target: record.target,
        options: RunOptions::from_stored(&record.options),
        reason: record.reason,
        requested_by: record.requested_by,
        status: record.status.parse().unwrap_or(ApprovalStatus::Void),
        status_note: record.status_note,
        required: record.required,
        plan: serde_json::from_str(&record.plan).unwrap_or_default(),
        digest: record.digest,
        created_at: record.created_at,
        expires_at: record.expires_at,
        run_id: record.run_id,
        decisions: decisions
            .into_iter()
            .map(|(user_name, decision, comment, decided_at)| Decision {
                user_name,
                decision,
                comment,
                decided_at,
            })
            .collect(),
        break_glass: record.break_glass,
        acknowledged_by: record.acknowledged_by,
        acknowledged_at: record.acknowledged_at,
        can_decide: false,
        can_break_glass: false,
        can_acknowledge: false,
    };
    Ok((
        approval,
        serde_json::from_str(&record.facts).unwrap_or_default(),
    ))
}

/// One request with its decisions, and the facts it covers.
async fn find_with_facts(store: &Store, id: &str) -> Result<(Approval, Facts), ApprovalError> {
    let record: Option<ApprovalRecord> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(StoreError::from)?;
    let record = record.ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
    Ok(with_decisions(store, record).await?)
}

/// One request, with its decisions.
pub async fn find(store: &Store, id: &str) -> Result<Approval, ApprovalError> {
    Ok(find_with_facts(store, id).await?.0)
}

/// The newest requests of `stack` (every stack when empty).
pub async fn list(store: &Store, stack: &str) -> Result<Vec<Approval>, StoreError> {
    of_stack(store, stack, "1 = 1", 200).await
}

/// The newest requests of `stack` (every stack when empty) that meet `condition` (SQL
/// written here, never from input), with their decisions.
async fn of_stack(
    store: &Store,
    stack: &str,
    condition: &str,
    limit: i64,
) -> Result<Vec<Approval>, StoreError> {
    let rows: Vec<ApprovalRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM approvals WHERE ($1 = '' OR stack = $1) AND {condition} \
         ORDER BY created_at DESC LIMIT {limit}"
    ))
    .bind(stack)
    .fetch_all(store.pool())
    .await?;
    let mut list = Vec::with_capacity(rows.len());
    for row in rows {
        list.push(with_decisions(store, row).await?.0);
    }
    Ok(list)
}

/// The newest requests (closed past their time first), each saying whether `user` may
/// decide it now.
pub async fn list_for(
    store: &Store,
    user: &CurrentUser,
    session: &str,
) -> Result<Vec<Approval>, StoreError> {
    expire_due(store).await?;
    let mut list = list(store, "").await?;
    for approval in &mut list {
        permit(store, approval, user, session).await?;
    }
    Ok(list)
}

/// Why `user` (in the session marked `session`) may not decide the request — or, with
/// `break_glass`, approve their own emergency request alone; `None` when they may.
async fn refusal(
    db: &mut sqlx::AnyConnection,
    approval_id: &str,
    user: &CurrentUser,
    session: &str,
    break_glass: bool,
) -> Result<Option<String>, StoreError> {
    if !user.role.allows(Role::Approver) {
        return Ok(Some("only approvers and admins decide".into()));
    }
    let row: Option<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT status, expires_at, requester_id, requester_session, options FROM approvals WHERE id = $1",
    )
    .bind(approval_id)
    .fetch_optional(&mut *db)
    .await?;
    let Some((status, expires_at, requester_id, requester_session, options)) = row else {
        return Ok(Some("there is no such request".into()));
    };
    if status != ApprovalStatus::Waiting.as_str() {
        return Ok(Some(format!("the request is {status}")));
    }
    if expires_at < now_utc() {
        return Ok(Some("the request has expired".into()));
    }
    let own = requester_id == user.id;
    if break_glass {
        return Ok(if !user.role.allows(Role::Admin) {
            Some("only an admin breaks the glass".into())
        } else if !RunOptions::from_stored(&options).emergency {
            Some("the glass is broken only for an emergency rollback".into())
        } else if !own {
            Some("the glass is broken only for your own request: decide this one normally".into())
        } else {
            None
        });
    }
    if own {
        return Ok(Some("nobody approves their own request".into()));
    }
    if !requester_session.is_empty() && requester_session == session {
        return Ok(Some(
            "the request was made from this same session: another person decides".into(),
        ));
    }
    let decided: Option<(String,)> = sqlx::query_as(
        "SELECT decision FROM approval_decisions WHERE approval_id = $1 AND user_id = $2",
    )
    .bind(approval_id)
    .bind(&user.id)
    .fetch_optional(&mut *db)
    .await?;
    Ok(decided.map(|(decision,)| format!("you have {decision} it already")))
}

/// Why `user` may not acknowledge the request's break glass; `None` when they may.
async fn acknowledge_refusal(
    db: &mut sqlx::AnyConnection,
    approval_id: &str,
    user: &CurrentUser,
) -> Result<Option<String>, StoreError> {
    if !user.role.allows(Role::Approver) {
        return Ok(Some("only approvers and admins acknowledge".into()));
    }
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT break_glass, acknowledged_by, requester_id FROM approvals WHERE id = $1",
    )
    .bind(approval_id)
    .fetch_optional(&mut *db)
    .await?;
    Ok(match row {
        None => Some("there is no such request".into()),
        Some((reason, _, _)) if reason.is_empty() => {
            Some("nobody broke the glass on this request".into())
        }
        Some((_, by, _)) if !by.is_empty() => Some(format!("{by} acknowledged it already")),
        Some((_, _, requester)) if requester == user.id => {
            Some("another approver acknowledges it, not the admin who broke the glass".into())
        }
        Some(_) => None,
    })
}

/// Sets what `user` (in the session marked `session`) may do with the request now: decide
/// it, break the glass, acknowledge a broken glass.
pub async fn permit(
    store: &Store,
    approval: &mut Approval,
    user: &CurrentUser,
    session: &str,
) -> Result<(), StoreError> {
    let mut db = store.pool().acquire().await?;
    let waiting = approval.status == ApprovalStatus::Waiting;
    approval.can_decide = waiting
        && refusal(&mut db, &approval.id, user, session, false)
            .await?
            .is_none();
    approval.can_break_glass = waiting
        && refusal(&mut db, &approval.id, user, session, true)
            .await?
            .is_none();
    approval.can_acknowledge = acknowledge_refusal(&mut db, &approval.id, user)
        .await?
        .is_none();
    Ok(())
}

/// The shortest reason an admin gives for approving their own emergency request.
pub const BREAK_GLASS_REASON: usize = 20;

/// Records one decision (the password was checked by the caller). Returns where the
/// request stands: rejected at the first rejection, approved once it has enough approvals.
pub async fn decide(
    store: &Store,
    decider: &Person,
    id: &str,
    (approve, break_glass): (bool, bool),
    comment: &str,
) -> Result<ApprovalStatus, ApprovalError> {
    if comment.chars().count() > 500 {
        return Err(ApprovalError::Refused(
            "a comment is at most 500 characters".into(),
        ));
    }
    if break_glass && (!approve || comment.chars().count() < BREAK_GLASS_REASON) {
        return Err(ApprovalError::Refused(format!(
            "breaking the glass approves your own emergency request: say why in at least {BREAK_GLASS_REASON} characters"
        )));
    }
    expire_due(store).await?;
    let user = crate::auth::users::find_by_id(store.pool(), &decider.user_id)
        .await?
        .ok_or(ApprovalError::Auth(crate::auth::AuthError::UnknownUser))?;
    let current = CurrentUser {
        id: user.id.clone(),
        name: user.name.clone(),
        role: user.role,
    };
    let mut audited = Audited::begin(store).await?;
    // Checked inside the transaction: decisions are serialized by the audit head's lock.
    if let Some(why) = refusal(audited.db(), id, &current, &decider.session, break_glass).await? {
        audited.rollback().await?;
        return Err(ApprovalError::Refused(format!("cannot decide: {why}")));
    }
    let decision = if approve { "approved" } else { "rejected" };
    sqlx::query(
        "INSERT INTO approval_decisions (approval_id, user_id, user_name, decision, comment, decided_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&current.id)
    .bind(&current.name)
    .bind(decision)
    .bind(comment)
    .bind(now_utc())
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    let (approvals, required): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM approval_decisions WHERE approval_id = $1 AND decision = 'approved'), \
         required FROM approvals WHERE id = $1",
    )
    .bind(id)
    .fetch_one(audited.db())
    .await
    .map_err(StoreError::from)?;
    // Broken glass approves alone; it stays flagged until another approver acknowledges it.
    let status = match (approve, break_glass || approvals >= required) {
        (false, _) => ApprovalStatus::Rejected,
        (true, true) => ApprovalStatus::Approved,
        (true, false) => ApprovalStatus::Waiting,
    };
    sqlx::query("UPDATE approvals SET status = $1, break_glass = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(if break_glass { comment } else { "" })
        .bind(id)
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    let action = if break_glass {
        "approval.break_glass"
    } else {
        &format!("approval.{decision}")
    };
    audited
        .append(
            &decider.actor,
            action,
            id,
            json!({ "comment": comment, "status": status.as_str(), "approvals": approvals, "required": required }),
        )
        .await?;
    audited.commit().await?;
    Ok(status)
}

/// Acknowledges another admin's broken glass (the password was checked by the caller);
/// audited as `approval.acknowledged`.
pub async fn acknowledge(
    store: &Store,
    approver: &Person,
    id: &str,
    comment: &str,
) -> Result<(), ApprovalError> {
    if comment.chars().count() > 500 {
        return Err(ApprovalError::Refused(
            "a comment is at most 500 characters".into(),
        ));
    }
    let user = crate::auth::users::find_by_id(store.pool(), &approver.user_id)
        .await?
        .ok_or(ApprovalError::Auth(crate::auth::AuthError::UnknownUser))?;
    let current = CurrentUser {
        id: user.id,
        name: user.name,
        role: user.role,
    };
    let mut audited = Audited::begin(store).await?;
    if let Some(why) = acknowledge_refusal(audited.db(), id, &current).await? {
        audited.rollback().await?;
        return Err(ApprovalError::Refused(format!("cannot acknowledge: {why}")));
    }
    sqlx::query("UPDATE approvals SET acknowledged_by = $1, acknowledged_at = $2 WHERE id = $3")
        .bind(&current.name)
        .bind(now_utc())
        .bind(id)
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    audited
        .append(
            &approver.actor,
            "approval.acknowledged",
            id,
            json!({ "comment": comment }),
        )
        .await?;
    Ok(audited.commit().await?)
}

/// Requests approved by breaking the glass that nobody has acknowledged yet, of `stack`
/// (every stack when empty), newest first.
pub async fn unacknowledged(store: &Store, stack: &str) -> Result<Vec<Approval>, StoreError> {
    of_stack(
        store,
        stack,
        "break_glass <> '' AND acknowledged_by = ''",
        200,
    )
    .await
}

/// Marks requests past their time expired — waiting ones, and approved ones whose run never
/// started —, each audited as `approval.expired`.
pub async fn expire_due(store: &Store) -> Result<usize, StoreError> {
    let due: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, stack FROM approvals WHERE status IN ('waiting', 'approved') AND run_id = '' \
         AND expires_at < $1",
    )
    .bind(now_utc())
    .fetch_all(store.pool())
    .await?;
    for (id, stack) in &due {
        close(
            store,
            id,
            stack,
            ApprovalStatus::Expired,
            "not decided in time",
        )
        .await?;
    }
    Ok(due.len())
}

/// Closes a waiting or approved request as expired or void, with why; audited.
/// Closes an approved request that can no longer start as approved (never retried).
async fn void(
    store: &Store,
    id: &str,
    stack: &str,
    why: &str,
) -> Result<ApprovalStatus, ApprovalError> {
    close(
        store,
        id,
        stack,
        ApprovalStatus::Void,
        &format!("void: {why}"),
    )
    .await?;
    Ok(ApprovalStatus::Void)
}

async fn close(
    store: &Store,
    id: &str,
    stack: &str,
    status: ApprovalStatus,
    note: &str,
) -> Result<(), StoreError> {
    let mut audited = Audited::begin(store).await?;
    let closed = sqlx::query(
        "UPDATE approvals SET status = $1, status_note = $2 WHERE id = $3 AND status IN ('waiting', 'approved')",
    )
    .bind(status.as_str())
    .bind(note)
    .bind(id)
    .execute(audited.db())
    .await?;
    if closed.rows_affected() == 0 {
        return audited.rollback().await;
    }
    audited
        .append(
            &Actor::system(),
            &format!("approval.{}", status.as_str()),
            id,
            json!({ "stack": stack, "note": note }),
        )
        .await?;
    audited.commit().await
}

/// Starts the run of an approved request: what it covers is described again and compared
/// with what was approved — anything changed makes it void — then the run begins (and
/// consumes the approval). A busy stack leaves it approved; the console tries again.
pub async fn start_approved(
    console: &ConsoleContext,
    id: &str,
) -> Result<ApprovalStatus, ApprovalError> {
    let store = &console.store;
    let (approval, approved) = find_with_facts(store, id).await?;
    if approval.status != ApprovalStatus::Approved {
        return Ok(approval.status);
    }
    let engine = console
        .engine
        .clone()
        .map_err(|error| ApprovalError::Run(error.into()))?;
    let request = RunRequest {
        operation: approval.operation,
        target: approval.target.clone(),
        options: approval.options.clone(),
    };
    let Ok(summary) = crate::stacks::service::find(store, &approval.stack).await else {
        let note = format!("void: the stack {} is gone", approval.stack);
        close(store, id, &approval.stack, ApprovalStatus::Void, &note).await?;
        return Ok(ApprovalStatus::Void);
    };
    let now = match describe(store, &engine, &summary, &request).await {
        Ok((_, facts)) => facts,
        Err(error) => {
            let note = format!("void: {error}");
            close(store, id, &approval.stack, ApprovalStatus::Void, &note).await?;
            return Ok(ApprovalStatus::Void);
        }
    };
    let changed = super::plan::changes(&approved, &now);
    if !changed.is_empty() {
        let note = format!("void: since it was requested, {}", changed.join("; "));
        close(store, id, &approval.stack, ApprovalStatus::Void, &note).await?;
        return Ok(ApprovalStatus::Void);
    }
    let actor = Actor {
        name: approval.requested_by.clone(),
        client_addr: "approval".into(),
    };
    let request = RunRequest {
        options: RunOptions {
            approval: approval.id.clone(),
            ..request.options
        },
        ..request
    };
    // A release's automatic items are evaluated again: what passed when it was requested
    // (a fresh backup, an image) may no longer hold.
    if !request.options.release.is_empty() {
        let checked = crate::releases::service::check(
            store,
            &engine,
            &console.data_dir,
            &request.options.release,
        )
        .await;
        let closed = match checked {
            Ok(release) if !release.state.is_open() => {
                Some(format!("the release is {}", release.state))
            }
            Ok(release) if !release.closed_items().is_empty() => Some(format!(
                "the release's gate closed: {}",
                release.closed_items().join("; ")
            )),
            Ok(_) => None,
            Err(error) => Some(error.to_string()),
        };
        if let Some(why) = closed {
            return void(store, id, &approval.stack, &why).await;
        }
    }
    match crate::runs::lock::start(store, &approval.stack, request, &actor, false).await {
        Ok((handle, stack)) => {
            console.runner.start(handle, engine, stack)?;
            Ok(ApprovalStatus::Executed)
        }
        Err(crate::runs::RunError::Busy(why)) => {
            tracing::info!(approval = id, why, "approved run waits for its stack");
            Ok(ApprovalStatus::Approved)
        }
        // What can no longer start as approved is void, not retried.
        Err(crate::runs::RunError::Refused(why)) => void(store, id, &approval.stack, &why).await,
        Err(error) => Err(error.into()),
    }
}

/// The console's background look: expired requests closed, approved runs whose stack was
/// busy started.
pub async fn start_waiting_runs(console: &ConsoleContext) -> Result<(), ApprovalError> {
    expire_due(&console.store).await?;
    let waiting: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM approvals WHERE status = 'approved' AND run_id = '' ORDER BY created_at",
    )
    .fetch_all(console.store.pool())
    .await
    .map_err(StoreError::from)?;
    // One request that cannot start does not hold up the others.
    for (id,) in waiting {
        if let Err(error) = start_approved(console, &id).await {
            tracing::warn!(approval = id, error = %error, "approved run not started");
        }
    }
    Ok(())
}
