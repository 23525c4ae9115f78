//! The release store and its rules: planning a release with its checklist, ticking manual
//! items, evaluating the automatic ones, the gate, and shipping (a run that first writes the
//! release's settings to the env file). Every change by a person is audited in its own
//! transaction.

use std::path::Path;

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::auth::{CurrentUser, Role};
use crate::runs::{Operation, RunOptions, RunRequest, RunStatus};
use crate::stacks::engine::Engine;
use crate::stacks::StackSummary;
use crate::store::{now_utc, Store, StoreError};

use super::checks::Subject;
use super::timeline::{evidence_of, Evidence};
use super::{
    ChecklistItem, ItemState, Milestone, MilestoneState, Release, ReleaseError, ReleasePlan,
    ReleaseState, TargetImage,
};

/// What a person asks for when planning a release.
pub struct NewRelease {
    pub stack: String,
    pub version: String,
    /// `VAR=VALUE` settings written to the env file when the release ships.
    pub sets: Vec<(String, String)>,
    pub operation: Operation,
    /// T-0, RFC 3339 (UTC when no offset is given).
    pub planned_at: String,
    pub owner: String,
    pub notes: String,
}

/// `VAR=VALUE` lines (blank lines skipped) as settings, each checked.
pub fn parse_sets(text: &str) -> Result<Vec<(String, String)>, ReleaseError> {
    let mut sets: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| ReleaseError::Refused(format!("{line:?} is not VAR=VALUE")))?;
        let (name, value) = (name.trim(), value.trim());
        if !crate::stacks::compose::is_variable_name(name) {
            return Err(ReleaseError::Refused(format!(
                "{name:?} is not a variable name"
            )));
        }
        if crate::stacks::secrets::is_secret_name(name) {
            return Err(ReleaseError::Refused(format!(
                "{name} holds a secret: a release shows what it sets, so set secrets in the env file"
            )));
        }
        crate::stacks::env_file::check_plain(name, value).map_err(ReleaseError::Refused)?;
        if value.contains("://") && value.contains('@') {
            return Err(ReleaseError::Refused(format!(
                "{name} holds a URL with credentials: a release shows what it sets, so set it in the env file"
            )));
        }
        if name.starts_with("COMPOSE_") || name.starts_with("DOCKER_") {
            return Err(ReleaseError::Refused(format!(
                "{name} steers Compose or Docker itself, not the application: a release does not set it"
            )));
        }
        sets.retain(|(other, _)| other != name);
        sets.push((name.to_owned(), value.to_owned()));
    }
    Ok(sets)
}

/// A time as people write it (`2026-12-01T14:00:00Z`, `2026-12-01 14:00`, UTC unless an offset
/// is given), in the store's form.
pub fn parse_time(text: &str) -> Result<String, ReleaseError> {
    let text = text.trim();
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&chrono::Utc))
        .or_else(|_| {
            [
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S",
            ]
            .iter()
            .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
            .map(|naive| naive.and_utc())
            .ok_or(())
        })
        .map_err(|()| {
            ReleaseError::Refused(format!(
                "{text:?} is not a time such as 2026-12-01 14:00 (UTC) or 2026-12-01T14:00:00+01:00"
            ))
        })?;
    Ok(crate::store::utc_text(parsed))
}

/// Plans a release with the template's checklist; audited as `release.planned`.
pub async fn create(
    store: &Store,
    actor: &Actor,
    new: NewRelease,
) -> Result<Release, ReleaseError> {
    let version = new.version.trim();
    if version.is_empty() || version.chars().count() > 64 {
        return Err(ReleaseError::Refused(
            "a release's version is 1 to 64 characters".into(),
        ));
    }
    if !matches!(
        new.operation,
        Operation::Update | Operation::Migrate | Operation::Deploy
    ) {
        return Err(ReleaseError::Refused(format!(
            "a release ships with an update, a migrate or a deploy, not a {}",
            new.operation
        )));
    }
    if new.notes.chars().count() > 2000 || new.owner.chars().count() > 100 {
        return Err(ReleaseError::Refused(
            "notes are at most 2000 characters and the owner's name 100".into(),
        ));
    }
    let stack = crate::stacks::service::find(store, &new.stack).await?;
    if !new.sets.is_empty() && stack.env_file.is_none() {
        return Err(ReleaseError::Refused(format!(
            "stack {} has no env file to write the release's settings to",
            stack.name
        )));
    }
    // A release sets what the compose file reads (an image tag, a version), nothing else.
    let definition = if new.sets.is_empty() {
        None
    } else {
        Some(
            crate::stacks::service::definition_with(&stack, &new.sets)
                .map_err(|error| ReleaseError::Refused(error.to_string()))?,
        )
    };
    if let Some((name, _)) = new.sets.iter().find(|(name, _)| {
        let Some(definition) = &definition else {
            return false;
        };
        !definition
            .services
            .iter()
            .any(|service| service.variables.contains(name))
    }) {
        return Err(ReleaseError::Refused(format!(
            "the compose file of {} reads no variable {name}: a release sets what its services read",
            stack.name
        )));
    }
    // The stack's templates as they are now: later edits never change this release.
    let (checklist, timeline) = super::templates::get(store, &stack.name).await?;
    let unreadable = |why: String| ReleaseError::Refused(format!("the stack's templates: {why}"));
    let checklist = super::templates::parse_checklist(&checklist).map_err(unreadable)?;
    let timeline = super::templates::parse_timeline(&timeline).map_err(unreadable)?;
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_utc();
    let owner = if new.owner.trim().is_empty() {
        actor.name.clone()
    } else {
        new.owner.trim().to_owned()
    };
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "INSERT INTO releases (id, stack, version, sets, operation, planned_at, owner, notes, state, run_id, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10, $11)",
    )
    .bind(&id)
    .bind(&stack.name)
    .bind(version)
    .bind(serde_json::to_string(&new.sets).unwrap_or_default())
    .bind(new.operation.as_str())
    .bind(&new.planned_at)
    .bind(&owner)
    .bind(new.notes.trim())
    .bind(ReleaseState::Planned.as_str())
    .bind(&actor.name)
    .bind(&now)
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    for (position, item) in checklist.iter().enumerate() {
        sqlx::query(
            "INSERT INTO release_items (release_id, position, item_key, section, title, automatic, required, role, state, evidence, files_digest, checked_by, checked_at, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', '', '', '', '', '')",
        )
        .bind(&id)
        .bind(position as i64)
        .bind(&item.key)
        .bind(&item.section)
        .bind(&item.title)
        .bind(i64::from(item.automatic))
        .bind(i64::from(item.required))
        .bind(item.role.as_str())
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    }
    for (position, milestone) in timeline.iter().enumerate() {
        sqlx::query(
            "INSERT INTO release_milestones (release_id, position, milestone_key, offset_minutes, action, role, notes, state, marked_by, marked_at, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'due', '', '', '')",
        )
        .bind(&id)
        .bind(position as i64)
        .bind(&milestone.key)
        .bind(milestone.offset_minutes)
        .bind(&milestone.action)
        .bind(milestone.role.as_str())
        .bind(&milestone.notes)
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    }
    audited
        .append(
            actor,
            "release.planned",
            &stack.name,
            json!({ "release": id, "version": version, "sets": new.sets, "operation": new.operation.as_str(), "planned_at": new.planned_at }),
        )
        .await?;
    audited.commit().await?;
    find(store, &id).await
}

#[derive(sqlx::FromRow)]
struct ReleaseRecord {
    id: String,
    stack: String,
    version: String,
    sets: String,
    operation: String,
    planned_at: String,
    owner: String,
    notes: String,
    state: String,
    run_id: String,
    created_by: String,
    created_at: String,
}

#[derive(sqlx::FromRow)]
struct ItemRecord {
    item_key: String,
    section: String,
    title: String,
    automatic: i64,
    required: i64,
    role: String,
    state: String,
    evidence: String,
    files_digest: String,
    checked_by: String,
    checked_at: String,
    note: String,
}

const COLUMNS: &str = "id, stack, version, sets, operation, planned_at, owner, notes, state, \
                       run_id, created_by, created_at";

/// SHA-256 over the stack's compose and env files: an automatic item that passed on other
/// files is open again.
fn files_digest(stack: &StackSummary) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for path in std::iter::once(stack.compose_file.as_str()).chain(stack.env_file.as_deref()) {
        digest.update(std::fs::read(path).unwrap_or_default());
        digest.update([0]);
    }
    hex::encode(digest.finalize())
}

async fn with_items(store: &Store, record: ReleaseRecord) -> Result<Release, ReleaseError> {
    let rows: Vec<ItemRecord> = sqlx::query_as(
        "SELECT item_key, section, title, automatic, required, role, state, evidence, files_digest, \
         checked_by, checked_at, note FROM release_items WHERE release_id = $1 ORDER BY position",
    )
    .bind(&record.id)
    .fetch_all(store.pool())
    .await
    .map_err(StoreError::from)?;
    let stack = crate::stacks::service::find(store, &record.stack)
        .await
        .ok();
    let digest_now = stack.as_ref().map(files_digest).unwrap_or_default();
    let still_planned = record.state == ReleaseState::Planned.as_str();
    let items: Vec<ChecklistItem> = rows
        .into_iter()
        .map(|row| {
            let mut state = row.state.parse().unwrap_or(ItemState::Open);
            let mut evidence = row.evidence;
            // Only this module writes these columns, from the typed values. A shipped
            // release's checklist is what it shipped on (its own run wrote the env file).
            if still_planned
                && row.automatic != 0
                && state == ItemState::Pass
                && row.files_digest != digest_now
            {
                state = ItemState::Open;
                evidence = format!(
                    "open again: the compose or env file changed since it passed ({evidence})"
                );
            }
            ChecklistItem {
                key: row.item_key,
                section: row.section,
                title: row.title,
                automatic: row.automatic != 0,
                required: row.required != 0,
                role: row.role.parse().unwrap_or(Role::Admin),
                state,
                evidence,
                checked_by: row.checked_by,
                checked_at: row.checked_at,
                note: row.note,
                can_tick: false,
            }
        })
        .collect();
    let timeline = timeline(store, &record, &items).await?;
    let mut release = Release {
        timeline,
        now: now_utc(),
        id: record.id,
        stack: record.stack,
        version: record.version,
        sets: serde_json::from_str(&record.sets).unwrap_or_default(),
        operation: record.operation.parse().unwrap_or(Operation::Update),
        planned_at: record.planned_at,
        owner: record.owner,
        notes: record.notes,
        state: record.state.parse().unwrap_or(ReleaseState::Planned),
        run_id: record.run_id,
        created_by: record.created_by,
        created_at: record.created_at,
        items,
        plan: ReleasePlan::default(),
        can_ship: false,
        window_note: String::new(),
    };
    if release.state.is_open() || release.state == ReleaseState::Planned {
        let policy = policy(store, &release.stack).await?;
        release.window_note = super::windows::refusal(&policy, Some(&release.planned_at))
            .map(|why| format!("T-0 is {why}"))
            .unwrap_or_default();
    }
    if release.state == ReleaseState::Planned && release.closed_items().is_empty() {
        release.state = ReleaseState::Ready;
    }
    Ok(release)
}

#[derive(sqlx::FromRow)]
struct MilestoneRecord {
    milestone_key: String,
    offset_minutes: i64,
    action: String,
    role: String,
    notes: String,
    state: String,
    marked_by: String,
    marked_at: String,
    reason: String,
}

/// The release's milestones with their planned times and where each stands: marked by a
/// person, or read from the evidence of the checklist, the backups and the release's run.
async fn timeline(
    store: &Store,
    record: &ReleaseRecord,
    items: &[ChecklistItem],
) -> Result<Vec<Milestone>, ReleaseError> {
    let rows: Vec<MilestoneRecord> = sqlx::query_as(
        "SELECT milestone_key, offset_minutes, action, role, notes, state, marked_by, marked_at, reason \
         FROM release_milestones WHERE release_id = $1 ORDER BY position",
    )
    .bind(&record.id)
    .fetch_all(store.pool())
    .await
    .map_err(StoreError::from)?;
    let run: Option<(String, String, String)> =
        sqlx::query_as("SELECT status, started_at, finished_at FROM runs WHERE id = $1")
            .bind(&record.run_id)
            .fetch_optional(store.pool())
            .await
            .map_err(StoreError::from)?;
    let backup: Option<(String, String)> = sqlx::query_as(
        "SELECT id, verified_at FROM backups WHERE stack = $1 AND verification = 'verified' \
         AND started_at >= $2 ORDER BY started_at DESC LIMIT 1",
    )
    .bind(&record.stack)
    .bind(&record.created_at)
    .fetch_optional(store.pool())
    .await
    .map_err(StoreError::from)?;
    let t0 = chrono::DateTime::parse_from_rfc3339(&record.planned_at)
        .map(|at| at.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let now = chrono::Utc::now();
    let shipped = record.state != ReleaseState::Planned.as_str();
    let checklist_done = shipped
        || items
            .iter()
            .all(|item| !item.required || item.state == ItemState::Pass);
    let last_checked = items
        .iter()
        .map(|item| item.checked_at.clone())
        .max()
        .unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|row| {
            let planned = t0 + chrono::Duration::minutes(row.offset_minutes);
            let kind = evidence_of(&row.milestone_key);
            // Evidence: when, and what showed it.
            let found: Option<(String, String)> = match kind {
                Some(Evidence::ChecklistComplete) => checklist_done.then(|| {
                    (
                        last_checked.clone(),
                        "every required checklist item passed".to_owned(),
                    )
                }),
                Some(Evidence::VerifiedBackup) => backup.as_ref().map(|(id, verified_at)| {
                    (
                        verified_at.clone(),
                        format!("backup {id}, verified by a restore drill"),
                    )
                }),
                Some(Evidence::RunStarted) => run.as_ref().map(|(_, started, _)| {
                    (started.clone(), format!("run {} started", record.run_id))
                }),
                Some(Evidence::RunPassed) => run
                    .as_ref()
                    .filter(|(status, ..)| status == RunStatus::Succeeded.as_str())
                    .map(|(_, _, finished)| {
                        (
                            finished.clone(),
                            format!("run {} passed its health checks", record.run_id),
                        )
                    }),
                None => None,
            };
            let stored: MilestoneState = row.state.parse().unwrap_or(MilestoneState::Due);
            let (state, by, at, evidence) = match (found, stored) {
                (_, MilestoneState::Skipped) => (
                    MilestoneState::Skipped,
                    row.marked_by,
                    row.marked_at,
                    String::new(),
                ),
                (Some((at, evidence)), _) => {
                    (MilestoneState::Done, "slipway".to_owned(), at, evidence)
                }
                (None, MilestoneState::Done) => (
                    MilestoneState::Done,
                    row.marked_by,
                    row.marked_at,
                    String::new(),
                ),
                (None, _) if planned < now => (
                    MilestoneState::Overdue,
                    String::new(),
                    String::new(),
                    String::new(),
                ),
                (None, _) => (
                    MilestoneState::Due,
                    String::new(),
                    String::new(),
                    String::new(),
                ),
            };
            Milestone {
                key: row.milestone_key,
                offset_minutes: row.offset_minutes,
                action: row.action,
                role: row.role.parse().unwrap_or(Role::Admin),
                notes: row.notes,
                planned_at: crate::store::utc_text(planned),
                state,
                by,
                at,
                evidence,
                reason: row.reason,
                automatic: kind.is_some(),
                can_mark: false,
            }
        })
        .collect())
}

/// Marks a milestone done, skipped (with a reason) or due again, as `user` of its role;
/// audited. Milestones with evidence follow it and are not marked by hand.
pub async fn mark(
    store: &Store,
    (user, actor): (&CurrentUser, &Actor),
    (release_id, key): (&str, &str),
    state: MilestoneState,
    reason: &str,
) -> Result<Release, ReleaseError> {
    let reason = reason.trim();
    if reason.chars().count() > 500 {
        return Err(ReleaseError::Refused(
            "a reason is at most 500 characters".into(),
        ));
    }
    if state == MilestoneState::Skipped && reason.is_empty() {
        return Err(ReleaseError::Refused(
            "say why the milestone is skipped".into(),
        ));
    }
    if state == MilestoneState::Overdue {
        return Err(ReleaseError::Refused(
            "a milestone is marked done, skipped or due".into(),
        ));
    }
    let mut release = find(store, release_id).await?;
    permit(&mut release, user);
    let milestone = release
        .timeline
        .iter()
        .find(|m| m.key == key)
        .ok_or_else(|| {
            ReleaseError::Refused(format!("release {release_id} has no milestone {key:?}"))
        })?;
    if milestone.automatic {
        return Err(ReleaseError::Refused(format!(
            "“{}” ticks itself from evidence",
            milestone.action
        )));
    }
    if !milestone.can_mark {
        return Err(ReleaseError::Refused(format!(
            "“{}” is marked by a {} or above",
            milestone.action, milestone.role
        )));
    }
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "UPDATE release_milestones SET state = $1, marked_by = $2, marked_at = $3, reason = $4 \
         WHERE release_id = $5 AND milestone_key = $6",
    )
    .bind(state.as_str())
    .bind(&user.name)
    .bind(now_utc())
    .bind(reason)
    .bind(release_id)
    .bind(key)
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(
            actor,
            &format!("release.milestone_{state}"),
            &release.stack,
            json!({ "release": release_id, "milestone": key, "reason": reason }),
        )
        .await?;
    audited.commit().await?;
    find(store, release_id).await
}

/// The stack's release policy; the defaults (anything goes, any time) when none is set.
pub async fn policy(store: &Store, stack: &str) -> Result<super::ReleasePolicy, StoreError> {
    let row: Option<(i64, String, String, String, String, String)> = sqlx::query_as(
        "SELECT releases_only, time_zone, days, hours, freezes, public_url FROM release_policies WHERE stack = $1",
    )
    .bind(stack)
    .fetch_optional(store.pool())
    .await?;
    Ok(row
        .map(
            |(releases_only, time_zone, days, hours, freezes, public_url)| super::ReleasePolicy {
                releases_only: releases_only != 0,
                time_zone,
                days,
                hours,
                freezes,
                public_url,
            },
        )
        .unwrap_or_default())
}

/// Sets the stack's release policy (checked first); audited as `release.policy_set`.
pub async fn set_policy(
    store: &Store,
    actor: &Actor,
    stack: &str,
    policy: &super::ReleasePolicy,
) -> Result<(), ReleaseError> {
    super::windows::Window::of(policy).map_err(ReleaseError::Refused)?;
    let public_url = policy.public_url.trim();
    if !public_url.is_empty()
        && !matches!(url::Url::parse(public_url), Ok(url) if ["http", "https"].contains(&url.scheme()) && url.host().is_some())
    {
        return Err(ReleaseError::Refused(format!(
            "{public_url:?} is not an address such as https://portal.example.com"
        )));
    }
    if [&policy.time_zone, &policy.days, &policy.hours]
        .iter()
        .any(|text| text.chars().count() > 100)
        || policy.freezes.chars().count() > 2000
    {
        return Err(ReleaseError::Refused(
            "the policy's texts are too long".into(),
        ));
    }
    crate::stacks::service::find(store, stack).await?;
    let mut audited = Audited::begin(store).await?;
    sqlx::query("DELETE FROM release_policies WHERE stack = $1")
        .bind(stack)
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    sqlx::query(
        "INSERT INTO release_policies (stack, releases_only, time_zone, days, hours, freezes, updated_by, updated_at, public_url) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(stack)
    .bind(i64::from(policy.releases_only))
    .bind(policy.time_zone.trim())
    .bind(policy.days.trim())
    .bind(policy.hours.trim())
    .bind(policy.freezes.trim())
    .bind(&actor.name)
    .bind(now_utc())
    .bind(public_url.trim_end_matches('/'))
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(actor, "release.policy_set", stack, json!(policy))
        .await?;
    Ok(audited.commit().await?)
}

/// Why a change run of `request` on `stack` may not start now: only through a release, or
/// outside the deploy window without an admin's override. What `lock::begin` asks.
pub async fn change_refusal(
    store: &Store,
    stack: &str,
    request: &RunRequest,
) -> Result<Option<String>, StoreError> {
    if !matches!(
        request.operation,
        Operation::Deploy | Operation::Update | Operation::Migrate
    ) {
        return Ok(None);
    }
    let policy = policy(store, stack).await?;
    if policy.releases_only && request.options.release.is_empty() {
        return Ok(Some(format!(
            "stack {stack} changes only through releases: plan one on the Releases page (or `slipway release create`)"
        )));
    }
    if !request.options.window_override.is_empty() {
        return Ok(None);
    }
    Ok(super::windows::refusal(&policy, None).map(|why| {
        format!(
            "a {} of {stack} is {why}; an admin may ship a release anyway, saying why",
            request.operation
        )
    }))
}

/// One release with its checklist.
pub async fn find(store: &Store, id: &str) -> Result<Release, ReleaseError> {
    let record: Option<ReleaseRecord> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM releases WHERE id = $1"))
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(StoreError::from)?;
    let record = record.ok_or_else(|| ReleaseError::NotFound(id.to_owned()))?;
    with_items(store, record).await
}

/// Releases of `stack` (every stack when empty), by planned time: the newest 200.
pub async fn list(store: &Store, stack: &str) -> Result<Vec<Release>, ReleaseError> {
    let records: Vec<ReleaseRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM releases WHERE ($1 = '' OR stack = $1) ORDER BY planned_at DESC LIMIT 200"
    ))
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(StoreError::from)?;
    let mut list = Vec::with_capacity(records.len());
    for record in records {
        list.push(with_items(store, record).await?);
    }
    Ok(list)
}

/// Marks what `user` may do with the release's items.
pub fn permit(release: &mut Release, user: &CurrentUser) {
    let open = release.state.is_open();
    for item in &mut release.items {
        item.can_tick = open && !item.automatic && user.role.allows(item.role);
    }
    release.can_ship = open && user.role.allows(Role::Operator);
    let closed = matches!(release.state, ReleaseState::Cancelled);
    for milestone in &mut release.timeline {
        milestone.can_mark = !closed && !milestone.automatic && user.role.allows(milestone.role);
    }
}

/// Ticks or unticks a manual item as `user`, with a note; audited.
pub async fn tick(
    store: &Store,
    user: &CurrentUser,
    actor: &Actor,
    (release_id, key): (&str, &str),
    ticked: bool,
    note: &str,
) -> Result<Release, ReleaseError> {
    if note.chars().count() > 500 {
        return Err(ReleaseError::Refused(
            "a note is at most 500 characters".into(),
        ));
    }
    let mut release = find(store, release_id).await?;
    permit(&mut release, user);
    let item = release
        .items
        .iter()
        .find(|item| item.key == key)
        .ok_or_else(|| {
            ReleaseError::Refused(format!("release {release_id} has no item {key:?}"))
        })?;
    if !release.state.is_open() {
        return Err(ReleaseError::Refused(format!(
            "the release is {}: its checklist is closed",
            release.state
        )));
    }
    if item.automatic {
        return Err(ReleaseError::Refused(format!(
            "“{}” is checked by the console, not ticked",
            item.title
        )));
    }
    if !item.can_tick {
        return Err(ReleaseError::Refused(format!(
            "“{}” is ticked by a {} or above",
            item.title, item.role
        )));
    }
    let state = if ticked {
        ItemState::Pass
    } else {
        ItemState::Open
    };
    let mut audited = Audited::begin(store).await?;
    // Only while the release waits to ship: a tick racing the ship changes nothing.
    let ticked_row = sqlx::query(
        "UPDATE release_items SET state = $1, checked_by = $2, checked_at = $3, note = $4 \
         WHERE release_id = $5 AND item_key = $6 \
         AND EXISTS (SELECT 1 FROM releases WHERE id = $5 AND state = 'planned')",
    )
    .bind(state.as_str())
    .bind(&user.name)
    .bind(now_utc())
    .bind(note.trim())
    .bind(release_id)
    .bind(key)
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    if ticked_row.rows_affected() == 0 {
        audited.rollback().await?;
        return Err(ReleaseError::Refused(
            "the release has shipped: its checklist is closed".into(),
        ));
    }
    let action = if ticked {
        "release.item_ticked"
    } else {
        "release.item_unticked"
    };
    audited
        .append(
            actor,
            action,
            &release.stack,
            json!({ "release": release_id, "item": key, "note": note.trim() }),
        )
        .await?;
    audited.commit().await?;
    find(store, release_id).await
}

/// Checks start containers: one evaluation at a time in this process, however many ask.
static CHECKS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Evaluates every automatic item again and stores what each found (a shipped release's
/// checklist stays as it shipped).
pub async fn check(
    store: &Store,
    engine: &Engine,
    data_dir: &Path,
    release_id: &str,
) -> Result<Release, ReleaseError> {
    let release = find(store, release_id).await?;
    // A shipped release keeps the checklist it shipped on.
    if !release.state.is_open() {
        return Ok(release);
    }
    let _one_at_a_time = CHECKS.lock().await;
    let stack = crate::stacks::service::find(store, &release.stack).await?;
    let digest = files_digest(&stack);
    let subject = Subject {
        store,
        engine,
        stack: &stack,
        sets: &release.sets,
        operation: release.operation,
        public_url: policy(store, &release.stack).await?.public_url,
        data_dir,
    };
    let now = now_utc();
    for item in release.items.iter().filter(|item| item.automatic) {
        let (state, evidence) = subject.evaluate(&item.key).await;
        // Never a value that may be a secret, and nothing when the secrets cannot be known.
        let evidence = match crate::stacks::secrets::secret_values(
            Path::new(&stack.compose_file),
            stack.env_file.as_deref().map(Path::new),
        ) {
            Ok(secrets) => crate::stacks::secrets::redact(&evidence, &secrets),
            Err(_) => "evidence withheld: the stack's secrets could not be read to mask it".into(),
        };
        sqlx::query(
            "UPDATE release_items SET state = $1, evidence = $2, files_digest = $3, checked_by = 'slipway', checked_at = $4 \
             WHERE release_id = $5 AND item_key = $6",
        )
        .bind(state.as_str())
        .bind(&evidence)
        .bind(&digest)
        .bind(&now)
        .bind(release_id)
        .bind(&item.key)
        .execute(store.pool())
        .await
        .map_err(StoreError::from)?;
    }
    find(store, release_id).await
}

/// What shipping the release would do now: per app service the image now and after.
pub async fn plan(
    store: &Store,
    engine: &Engine,
    release: &Release,
) -> Result<ReleasePlan, ReleaseError> {
    let stack = crate::stacks::service::find(store, &release.stack).await?;
    let mut plan = ReleasePlan {
        run: format!(
            "{}{}",
            release.operation,
            if release.sets.is_empty() {
                String::new()
            } else {
                format!(" after writing {} to the env file", release.sets_text())
            }
        ),
        ..ReleasePlan::default()
    };
    let definition = match crate::stacks::service::definition_with(&stack, &release.sets) {
        Ok(definition) => definition,
        Err(error) => {
            plan.problems.push(error.to_string());
            return Ok(plan);
        }
    };
    let running = engine
        .project_containers(&stack.project)
        .await
        .unwrap_or_default();
    for service in definition
        .services
        .iter()
        .filter(|s| s.role == crate::stacks::ServiceRole::App)
    {
        let target = service.image_name(&stack.project);
        let target_id = engine.image_id(&target).await.ok();
        let current = running
            .iter()
            .find(|c| c.service == service.name && c.state == "running")
            .map(|c| format!("{} ({})", c.image, short(&c.image_id)))
            .unwrap_or_else(|| "not running".into());
        plan.images.push(TargetImage {
            service: service.name.clone(),
            current,
            target: match &target_id {
                Some(id) => format!("{target} ({})", short(id)),
                None => target.clone(),
            },
            present: target_id.is_some() || service.build.is_some(),
        });
    }
    Ok(plan)
}

fn short(id: &str) -> &str {
    let id = id.trim_start_matches("sha256:");
    id.get(..12).unwrap_or(id)
}

/// What shipping did: started the release's run, or found that it needs an approval first
/// (the stack gates changes, or the run falls outside the deploy window) — the request to ask
/// for.
pub enum Shipped {
    Started(Box<crate::runs::recorder::RunHandle>, StackSummary),
    NeedsApproval(RunRequest),
}

/// Ships the release: the automatic items evaluated again, refused while a required item
/// is not passed (named); outside the deploy window only with a reason, as an approval
/// request; then its run started (which writes the settings first, and marks the release
/// `running` until it ends).
pub async fn ship(
    (store, engine, data_dir): (&Store, &Engine, &Path),
    actor: &Actor,
    (release_id, window_override): (&str, &str),
    echo: bool,
) -> Result<Shipped, ReleaseError> {
    if window_override.chars().count() > 500 {
        return Err(ReleaseError::Refused(
            "an override's reason is at most 500 characters".into(),
        ));
    }
    let release = find(store, release_id).await?;
    if !release.state.is_open() {
        return Err(ReleaseError::Refused(format!(
            "release {} is {}: it ships once",
            release.version, release.state
        )));
    }
    let release = check(store, engine, data_dir, release_id).await?;
    let closed = release.closed_items();
    if !closed.is_empty() {
        return Err(ReleaseError::GateClosed(closed.join("; ")));
    }
    let request = RunRequest {
        operation: release.operation,
        target: String::new(),
        options: RunOptions {
            release: release.id.clone(),
            window_override: String::new(),
            ..RunOptions::default()
        },
    };
    let outside = super::windows::refusal(&policy(store, &release.stack).await?, None);
    if let (Some(why), true) = (&outside, window_override.trim().is_empty()) {
        return Err(ReleaseError::Refused(format!(
            "the release's run is {why}: say why it cannot wait to ask for an approval"
        )));
    }
    // A reason only counts where the run falls outside the window.
    let request = RunRequest {
        options: RunOptions {
            window_override: if outside.is_some() {
                window_override.trim().to_owned()
            } else {
                String::new()
            },
            ..request.options
        },
        ..request
    };
    if crate::approvals::service::is_gated(store, &release.stack, &request).await? {
        return Ok(Shipped::NeedsApproval(request));
    }
    let (handle, stack) =
        crate::runs::lock::start(store, &release.stack, request, actor, echo).await?;
    Ok(Shipped::Started(Box::new(handle), stack))
}

/// The required items of the release that do not pass, by title; what `lock::begin` checks
/// for a release's run (a run can only start through [`ship`], which evaluated them).
pub async fn gate(store: &Store, stack: &str, release_id: &str) -> Result<(), String> {
    let release = find(store, release_id)
        .await
        .map_err(|error| error.to_string())?;
    if release.stack != stack || !release.state.is_open() {
        return Err(format!(
            "release {release_id} is not waiting to ship on {stack}"
        ));
    }
    let closed = release.closed_items();
    if closed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the release's gate is closed: {}",
            closed.join("; ")
        ))
    }
}

/// The settings a release's run writes to the env file.
pub async fn sets(store: &Store, release_id: &str) -> Result<Vec<(String, String)>, String> {
    find(store, release_id)
        .await
        .map(|release| release.sets)
        .map_err(|error| error.to_string())
}

/// Where a release stands once its run ended (in the run's finishing transaction).
pub async fn finish_run<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    release_id: &str,
    status: RunStatus,
) -> Result<(), StoreError> {
    let state = match status {
        RunStatus::Succeeded => ReleaseState::Done,
        RunStatus::Cancelled => ReleaseState::Cancelled,
        RunStatus::Running => return Ok(()),
        RunStatus::Failed | RunStatus::Interrupted => ReleaseState::Failed,
    };
    sqlx::query("UPDATE releases SET state = $1 WHERE id = $2")
        .bind(state.as_str())
        .bind(release_id)
        .execute(db)
        .await?;
    Ok(())
}
