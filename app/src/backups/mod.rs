//! Backups: database dumps taken by backup runs, listed in an inventory with what each holds
//! and how it was made. The Backups page shows them to viewers and up; operators take one
//! with the stack page's "Back up" (a run, like deploy) or `slipway backup STACK`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::Table;

#[cfg(feature = "ssr")]
pub mod retention;
#[cfg(feature = "ssr")]
pub mod schedule;
#[cfg(feature = "ssr")]
pub mod service;

/// One dump and what is known about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct Backup {
    pub id: String,
    pub stack: String,
    /// The data service that was dumped.
    pub service: String,
    /// Where the dump is, on the console's machine.
    pub file: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub started_at: String,
    pub finished_at: String,
    /// Who asked for it: a user, or the run that took it on its own.
    pub requested_by: String,
    /// Why: manual, pre-deploy, pre-update, pre-migrate or scheduled.
    pub reason: String,
    /// What whoever asked for it said about it (`slipway backup --why`); often empty.
    #[serde(default)]
    pub note: String,
    pub run_id: String,
    /// The newest migration recorded in the database at that moment; empty when the stack
    /// names no migrations table.
    pub migration_head: String,
    /// JSON: service → image id the stack ran.
    pub images: String,
    /// JSON: every user table (`schema.table`) → its exact row count, read in the dump's
    /// own snapshot; empty for backups taken before row counts were recorded.
    #[serde(default)]
    pub row_counts: String,
    /// unverified until a restore drill proves the dump restores; then verified, failed,
    /// or corrupt (its file no longer matches its checksum: it can never be restored).
    pub verification: String,
    /// When the last restore drill ended; empty before one.
    #[serde(default)]
    pub verified_at: String,
    /// How long the drill's restore took, in milliseconds.
    #[serde(default)]
    pub restore_ms: i64,
    /// What the last drill found: the first difference, or why it could not run.
    #[serde(default)]
    pub verify_note: String,
}

/// Every user table's row count, by `schema.table`.
pub type RowCounts = std::collections::BTreeMap<String, i64>;

impl Backup {
    /// The row counts recorded with the dump; `None` when none were.
    pub fn row_counts(&self) -> Option<RowCounts> {
        serde_json::from_str(&self.row_counts).ok()
    }

    /// `1204 rows in 3 tables`.
    pub fn rows_in_words(&self) -> String {
        match self.row_counts() {
            Some(counts) => format!(
                "{} rows in {} tables",
                counts.values().sum::<i64>(),
                counts.len()
            ),
            None => "rows not counted".into(),
        }
    }
}

/// Why a stack cannot be backed up.
pub const NOTHING_TO_BACK_UP: &str =
    "the stack has no service with x-slipway.backup: pg_dump, so there is nothing to back up";

/// Labels a restore drill's throwaway container, so one left by a console that died is
/// found and removed at the next start.
pub const DRILL_LABEL: &str = "slipway.drill";
/// The process (`host:pid`) that runs a drill: only a drill whose process is gone is removed.
pub const DRILL_HOLDER_LABEL: &str = "slipway.drill.holder";

/// Why a backup was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupReason {
    /// Someone asked for it (the Back up button, `slipway backup`).
    Manual,
    /// The first steps of a deploy, when the database already runs.
    PreDeploy,
    /// The first step of an update.
    PreUpdate,
    /// The first step of a migrate run.
    PreMigrate,
    /// The console's schedule (the stack's backup policy).
    Scheduled,
    /// The first step of a rollback that undoes migrations.
    PreRollback,
}

impl BackupReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupReason::Manual => "manual",
            BackupReason::PreDeploy => "pre-deploy",
            BackupReason::PreUpdate => "pre-update",
            BackupReason::PreMigrate => "pre-migrate",
            BackupReason::Scheduled => "scheduled",
            BackupReason::PreRollback => "pre-rollback",
        }
    }
}

/// A stack's backup policy: its schedule, its retention rule, and whether an update backs
/// up first. Admins set it; a stack without one has the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct BackupPolicy {
    /// A scheduled backup (then its restore drill and a prune) this often; 0: no schedule.
    pub every_seconds: i64,
    /// Keep the newest N backups…
    pub keep_last: i64,
    /// …plus the newest of each of the last D days…
    pub keep_daily: i64,
    /// …plus the newest of each of the last W weeks.
    pub keep_weekly: i64,
    /// An update backs the database up first (on unless an admin turns it off).
    pub before_update: bool,
}

impl Default for BackupPolicy {
    fn default() -> Self {
        Self {
            every_seconds: 0,
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            before_update: true,
        }
    }
}

impl BackupPolicy {
    /// `every 6h; keep the newest 7, one a day for 7 days, one a week for 4 weeks`.
    pub fn in_words(&self) -> String {
        let schedule = if self.every_seconds > 0 {
            format!("every {}", duration_in_words(self.every_seconds))
        } else {
            "no schedule".to_owned()
        };
        format!(
            "{schedule}; keep the newest {}, one a day for {} days, one a week for {} weeks; {}",
            self.keep_last,
            self.keep_daily,
            self.keep_weekly,
            if self.before_update {
                "updates back up first"
            } else {
                "updates do not back up first"
            }
        )
    }
}

/// The parts of a policy someone changes; the others stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyChange {
    pub every_seconds: Option<i64>,
    pub keep_last: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub before_update: Option<bool>,
}

impl PolicyChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn applied_to(&self, policy: BackupPolicy) -> BackupPolicy {
        BackupPolicy {
            every_seconds: self.every_seconds.unwrap_or(policy.every_seconds),
            keep_last: self.keep_last.unwrap_or(policy.keep_last),
            keep_daily: self.keep_daily.unwrap_or(policy.keep_daily),
            keep_weekly: self.keep_weekly.unwrap_or(policy.keep_weekly),
            before_update: self.before_update.unwrap_or(policy.before_update),
        }
    }
}

/// `6h`, `30m`, `1d` as seconds; `off` (or `0`) for no schedule.
#[cfg(feature = "ssr")]
pub fn parse_every(value: &str) -> Result<i64, String> {
    let value = value.trim();
    if value == "off" || value == "0" || value.is_empty() {
        return Ok(0);
    }
    humantime::parse_duration(value)
        .map(|every| every.as_secs() as i64)
        .map_err(|error| format!("{value:?}: {error}; write it like 6h, 30m or 1d, or off"))
}

/// `45 s`, `12 min`, `3 h`, `2 d`: an age, rounded down to its largest unit.
pub fn age_in_words(seconds: i64) -> String {
    match seconds.max(0) {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// `6h`, `90m`, `2d`: the largest unit that divides the seconds.
pub fn duration_in_words(seconds: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds >= size && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// Why a backups request failed, in words the browser may show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A policy that cannot be used; the message says which value and why.
    #[error("{0}")]
    Invalid(String),
    #[error("There is no stack {0}.")]
    UnknownStack(String),
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl crate::errors::UserFacing for BackupError {
    fn status(&self) -> u16 {
        match self {
            BackupError::Auth(error) => error.status(),
            BackupError::Invalid(_) => 422,
            BackupError::UnknownStack(_) => 404,
            BackupError::Unavailable | BackupError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(BackupError);

crate::store_unavailable!(BackupError, "backups");

/// The backups of one stack, or of every stack when `stack` is empty, newest first;
/// `state` keeps only those in one verification state.
#[server(prefix = "/api", endpoint = "backups")]
pub async fn list_backups(
    stack: String,
    #[server(default)] state: String,
) -> Result<Vec<Backup>, BackupError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized_for(
        crate::auth::Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(|error| reject(BackupError::from(error)))?;
    let mut backups = service::list(&caller.console.store, stack.trim(), 500)
        .await
        .map_err(|error| reject(BackupError::from(error)))?;
    if !state.is_empty() {
        backups.retain(|backup| backup.verification == state);
    }
    Ok(backups)
}

/// A short mark that changes whenever the inventory of `stack` (every stack when empty)
/// does: a backup added, verified or pruned. The Backups page polls it and reads the list
/// again only when it changes, so an open form is not redrawn under the user.
#[server(prefix = "/api", endpoint = "backups_version")]
pub async fn backups_version(stack: String) -> Result<String, BackupError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized_for(
        crate::auth::Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(|error| reject(BackupError::from(error)))?;
    service::version(&caller.console.store, stack.trim())
        .await
        .map_err(|error| reject(BackupError::from(error)))
}

/// What a stack's page and its backups card show: whether it can be backed up, the newest
/// verified backup and its age, and the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSummaryData {
    /// Empty when the stack can be backed up; else why not.
    pub cannot_back_up: String,
    pub newest_verified: Option<Backup>,
    /// How long ago the newest verified backup was taken (`3 h`).
    pub newest_verified_age: String,
    pub policy: BackupPolicy,
}

#[server(prefix = "/api", endpoint = "backup_overview")]
pub async fn backup_overview(stack: String) -> Result<BackupSummaryData, BackupError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized_for(
        crate::auth::Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(|error| reject(BackupError::from(error)))?;
    service::overview(&caller.console.store, &stack)
        .await
        .map_err(reject)
}

/// Changes a stack's backup policy; admins only. `every` reads like `6h`, or `off`.
#[server(prefix = "/api", endpoint = "set_backup_policy")]
pub async fn set_backup_policy(
    stack: String,
    every: String,
    keep_last: i64,
    keep_daily: i64,
    keep_weekly: i64,
    #[server(default)] before_update: bool,
) -> Result<BackupPolicy, BackupError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin)
        .await
        .map_err(|error| reject(BackupError::from(error)))?;
    let change = PolicyChange {
        every_seconds: Some(parse_every(&every).map_err(|e| reject(BackupError::Invalid(e)))?),
        keep_last: Some(keep_last),
        keep_daily: Some(keep_daily),
        keep_weekly: Some(keep_weekly),
        before_update: Some(before_update),
    };
    service::change_policy(&admin.console.store, &admin.actor, &stack, &change)
        .await
        .map_err(reject)
}

/// How often the Backups page asks again, so runs' backups and drills appear as they end.
const LIST_REFRESH: std::time::Duration = std::time::Duration::from_secs(3);

#[component]
pub fn BackupsPage() -> impl IntoView {
    let query = use_query_map();
    let stack = move || query.with(|q| q.get("stack").unwrap_or_default());
    let state = move || query.with(|q| q.get("state").unwrap_or_default());
    let tick = crate::components::ticker(LIST_REFRESH);
    let polled = Resource::new(
        move || (stack(), tick.get()),
        |(stack, _)| backups_version(stack),
    );
    let version = Memo::new(move |_| polled.get().and_then(Result::ok));
    let backups = Resource::new(
        move || (stack(), state(), version.get()),
        |(stack, state, _)| list_backups(stack, state),
    );
    view! {
        <Title text="Backups" />
        <h1>"Backups"</h1>
        <p class="lead">
            "Database dumps, newest first, each proved by a restore drill. Take one here, with a stack's Back up button or "
            <code>"slipway backup STACK"</code> "."
        </p>
        <form class="filters card" method="get" action="/backups">
            <label>"Stack" <input name="stack" prop:value=stack /></label>
            <label>
                "State"
                <select name="state">
                    {["", "unverified", "verified", "failed", "corrupt"]
                        .map(|option| {
                            let shown = if option.is_empty() { "any" } else { option };
                            view! { <option value=option selected=move || state() == option>{shown}</option> }
                        })
                        .collect_view()}
                </select>
            </label>
            <button class="button" type="submit">"Filter"</button>
            <a class="button secondary" href="/backups">"All stacks"</a>
        </form>
        <Show when=move || !stack().is_empty()>
            <StackBackups stack=Signal::derive(stack) />
        </Show>
        <Transition fallback=|| view! { <p class="muted">"Loading backups…"</p> }>
            {move || Suspend::new(async move {
                match backups.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted card" data-testid="no-backups">"No backups yet."</p>
                    }.into_any(),
                    Ok(list) => view! { <BackupList list /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// One stack's backup state and policy: "Back up now" for operators, the policy form for
/// admins.
#[component]
fn StackBackups(stack: Signal<String>) -> impl IntoView {
    let saved = ServerAction::<SetBackupPolicy>::new();
    let overview = Resource::new(
        move || (stack.get(), saved.version().get()),
        |(stack, _)| backup_overview(stack),
    );
    let role = crate::auth::signed_in_user().map(|user| user.role);
    let is = move |needed| role.is_some_and(|role| role.allows(needed));
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let overview = match overview.await {
                    Ok(overview) => overview,
                    Err(error) => return view! { <p class="error card">{error.to_string()}</p> }.into_any(),
                };
                let name = stack.get_untracked();
                let policy = overview.policy.clone();
                let every = if policy.every_seconds > 0 {
                    duration_in_words(policy.every_seconds)
                } else {
                    "off".to_owned()
                };
                let can_back_up = is(crate::auth::Role::Operator) && overview.cannot_back_up.is_empty();
                let back_up = can_back_up.then(|| view! {
                    <crate::runs::RunForm
                        stack=name.clone()
                        operation=crate::runs::Operation::Backup
                        label="Back up now"
                        testid="back-up-now".to_owned()
                    />
                });
                let (policy_stack, prune_stack) = (name.clone(), name.clone());
                let admin = is(crate::auth::Role::Admin).then(move || view! {
                    <ActionForm action=saved attr:class="form-row" attr:data-testid="policy-form">
                        <input type="hidden" name="stack" value=policy_stack />
                        <label class="field">"Back up every" <input name="every" value=every /></label>
                        <label class="field">"Keep newest" <input name="keep_last" type="number" min="0" value=policy.keep_last /></label>
                        <label class="field">"Daily for (days)" <input name="keep_daily" type="number" min="0" value=policy.keep_daily /></label>
                        <label class="field">"Weekly for (weeks)" <input name="keep_weekly" type="number" min="0" value=policy.keep_weekly /></label>
                        <label class="field check"><input name="before_update" type="checkbox" value="true" checked=policy.before_update /> "Back up before each update"</label>
                        <button class="button secondary" type="submit" data-testid="save-policy">"Save policy"</button>
                    </ActionForm>
                    {move || saved.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
                    <crate::runs::RunForm
                        stack=prune_stack
                        operation=crate::runs::Operation::Prune
                        label="Prune now"
                        testid="prune-now".to_owned()
                        secondary=true
                        follow=true
                    />
                });
                view! {
                    <section class="card" data-testid="stack-backups">
                        <div class="card-head">
                            <h2>{format!("{name}: backups")}</h2>
                            {back_up}
                        </div>
                        <BackupSummary overview=overview.clone() />
                        {admin}
                    </section>
                }.into_any()
            })}
        </Transition>
    }
}

/// The newest verified backup and its age, the policy in words, or why the stack cannot be
/// backed up; the stack's page shows it too.
#[component]
pub fn BackupSummary(overview: BackupSummaryData) -> impl IntoView {
    if !overview.cannot_back_up.is_empty() {
        return view! { <p class="muted" data-testid="backup-summary">{overview.cannot_back_up}</p> }.into_any();
    }
    let newest = match &overview.newest_verified {
        Some(backup) => format!(
            "Newest verified backup: {} ({} ago), {}.",
            backup.finished_at,
            overview.newest_verified_age,
            backup.rows_in_words()
        ),
        None => "No verified backup yet: take one and verify it.".to_owned(),
    };
    view! {
        <p data-testid="backup-summary">
            <span class=if overview.newest_verified.is_some() { "status on" } else { "status off" }>{newest}</span>
            " "
            <span class="muted">{format!("Policy: {}.", overview.policy.in_words())}</span>
        </p>
    }
    .into_any()
}

#[component]
fn BackupList(list: Vec<Backup>) -> impl IntoView {
    let role = crate::auth::signed_in_user().map(|user| user.role);
    let can_verify = role.is_some_and(|role| role.allows(crate::auth::Role::Operator));
    let can_restore = can_verify;
    view! {
        <section class="card">
            <Table
                testid="backups-table"
                headers=&["When", "Stack", "Why", "By", "Size", "SHA-256", "Rows", "Migration head", "State", ""]
            >
                {list
                    .into_iter()
                    .map(|backup| {
                        let restorable = can_restore && backup.verification != "corrupt";
                        let (stack, id) = (backup.stack.clone(), backup.id.clone());
                        let why = if backup.note.is_empty() { backup.reason.clone() } else { format!("{}: {}", backup.reason, backup.note) };
                        view! {
                            <tr data-backup=backup.id.clone()>
                                <td class="nowrap">{backup.finished_at.clone()}</td>
                                <td><a href=format!("/stacks/{}", backup.stack)>{backup.stack.clone()}</a></td>
                                <td>{why}</td>
                                <td>{backup.requested_by.clone()}</td>
                                <td class="nowrap">{size_in_words(backup.size_bytes)}</td>
                                <td><code title=backup.sha256.clone()>{backup.sha256.chars().take(12).collect::<String>()}</code></td>
                                <td class="nowrap" title=backup.row_counts.clone()>{backup.rows_in_words()}</td>
                                <td><code>{backup.migration_head.clone()}</code></td>
                                <td data-testid="backup-state">
                                    <span class=if backup.verification == "verified" { "status on" } else if backup.verification == "unverified" { "status" } else { "status off" }>
                                        {backup.verification.clone()}
                                    </span>
                                    {(backup.restore_ms > 0).then(|| format!(" (restored in {:.1} s)", backup.restore_ms as f64 / 1000.0))}
                                    {(!backup.verify_note.is_empty()).then(|| view! { <span class="muted">" " {backup.verify_note.clone()}</span> })}
                                </td>
                                <td>
                                    <Show when=move || can_verify>
                                        <crate::runs::RunForm
                                            stack=stack.clone()
                                            operation=crate::runs::Operation::Verify
                                            target=id.clone()
                                            label="Verify"
                                            testid=format!("verify-{id}")
                                            secondary=true
                                            follow=true
                                        />
                                    </Show>
                                    {restorable.then(|| view! {
                                        <crate::approvals::RestoreRequestForm
                                            stack=backup.stack.clone()
                                            backup=backup.id.clone()
                                            verified=backup.verification == "verified"
                                        />
                                    })}
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </Table>
        </section>
    }
}

/// `12.3 MB`, `840 kB`, `512 B`.
pub fn size_in_words(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::size_in_words;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size_in_words(512), "512 B");
        assert_eq!(size_in_words(840_000), "840.0 kB");
        assert_eq!(size_in_words(12_345_678), "12.3 MB");
        assert_eq!(size_in_words(3_000_000_000), "3.0 GB");
    }
}
