//! Runs: one operation on a stack, made of steps; every step's status, times and lines are
//! stored as they happen. One run per stack at a time.

use std::fmt;
use std::str::FromStr;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::components::Table;
use crate::errors::UserFacing;

// The server half, by concern: the lock, the recorder, the plan, the executor and its steps,
// the rollout probe, recovery, queries and the live follow; the runner holds console runs.
#[cfg(feature = "ssr")]
pub mod changes;
#[cfg(feature = "ssr")]
mod executor;
#[cfg(feature = "ssr")]
pub mod follow;
#[cfg(feature = "ssr")]
pub mod lock;
#[cfg(feature = "ssr")]
mod plan;
#[cfg(feature = "ssr")]
pub(crate) mod probe;
#[cfg(feature = "ssr")]
pub mod queries;
#[cfg(feature = "ssr")]
pub mod recorder;
#[cfg(feature = "ssr")]
pub mod recovery;
#[cfg(feature = "ssr")]
pub mod runner;
#[cfg(feature = "ssr")]
mod steps;

#[cfg(feature = "ssr")]
pub use executor::{execute, steps_of};
#[cfg(feature = "ssr")]
pub use steps::migrations_since_run;

/// What a run does to its stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// From nothing: env check, data services, migrations, app services, health, record.
    Deploy,
    /// App services replaced one by one beside the running ones: no request dropped.
    Update,
    /// App services stopped, migrations run against the database alone, all started again.
    Migrate,
    /// Stopped containers and unused images older than `SLIPWAY_CLEANUP_AFTER` (24 h) removed,
    /// never an image a recorded run could roll back to.
    Cleanup,
    Start,
    Stop,
    /// The database dumped (pg_dump, custom format) into the backup directory, recorded in
    /// the inventory.
    Backup,
    /// A restore drill of one backup (the run's target): checksum, then a restore into a
    /// throwaway database compared with what the backup recorded.
    Verify,
    /// One backup (the run's target) restored into the live database: app services stopped,
    /// `pg_restore --clean --if-exists --single-transaction`, row counts compared, app
    /// services started on the current images or those recorded with the backup.
    Restore,
    /// Backups outside the stack's retention rule deleted; each survivor says why it stays.
    Prune,
    /// The app services put back on the images an earlier successful run recorded (the
    /// run's target), the zero-downtime way an update goes: beside, healthy, switch, drain.
    /// An emergency rollback stops the app, restores the newest verified backup and starts
    /// the target's images.
    Rollback,
    /// A feature flag (the run's target) written to the env file, then the app services that
    /// read it replaced the way an update replaces them; the env file goes back on failure.
    Flag,
}

/// What a run is asked to do: an operation, and for some the thing it acts on (the backup a
/// verify or restore run uses) and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRequest {
    pub operation: Operation,
    pub target: String,
    pub options: RunOptions,
}

impl From<Operation> for RunRequest {
    fn from(operation: Operation) -> Self {
        Self {
            operation,
            target: String::new(),
            options: RunOptions::default(),
        }
    }
}

/// How a run goes about its operation, beyond the target; stored with the run, so what was
/// asked is what is done (and, later, what an approval approves).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// A restore of a backup that no drill has verified (never a corrupt one).
    #[serde(default)]
    pub force: bool,
    /// A restore starts the app services on the images recorded with the backup, not on the
    /// current ones.
    #[serde(default)]
    pub recorded_images: bool,
    /// A backup run the console's schedule started (never set from a request).
    #[serde(default)]
    pub scheduled: bool,
    /// A rollback that also undoes the migrations applied since its target run (down
    /// migrations), with the app stopped.
    #[serde(default)]
    pub undo_migrations: bool,
    /// An emergency rollback: everything stopped, `backup` restored, the target's images
    /// started.
    #[serde(default)]
    pub emergency: bool,
    /// The backup an emergency rollback restores.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backup: String,
    /// The value a flag run writes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flag_value: String,
    /// The release this run ships (never set from a request: only a release's ship sets it,
    /// and the run starts only while the release's gate is open).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub release: String,
    /// Why an admin ships a release outside the stack's deploy window (never set from a
    /// request that is not an admin's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub window_override: String,
    /// A backup's note, in the words of whoever asked for it (`slipway backup --why`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// The approval that let the run start (never set from a request: only an approval's
    /// execution sets it, and the run's start consumes the approval).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub approval: String,
}

impl RunOptions {
    /// The stored form: empty for the defaults.
    pub fn to_stored(&self) -> String {
        if *self == Self::default() {
            String::new()
        } else {
            serde_json::to_string(self).unwrap_or_default()
        }
    }

    pub fn from_stored(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Update => "update",
            Operation::Migrate => "migrate",
            Operation::Cleanup => "cleanup",
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Backup => "backup",
            Operation::Verify => "verify",
            Operation::Restore => "restore",
            Operation::Prune => "prune",
            Operation::Rollback => "rollback",
            Operation::Flag => "flag",
        }
    }

    /// Whether it runs only once an approval covers it, whatever the stack's policy: what
    /// puts a stack back (a rollback, a restore). A stack's policy can gate deploy, update
    /// and migrate too.
    pub fn always_approved(self) -> bool {
        matches!(self, Operation::Rollback | Operation::Restore)
    }

    /// Whether a stack's policy can ask for an approval in front of it: what changes the
    /// versions that run (start too, since it recreates containers whose definition changed).
    pub fn may_be_gated(self) -> bool {
        self.always_approved()
            || matches!(
                self,
                Operation::Deploy | Operation::Update | Operation::Migrate | Operation::Start
            )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "deploy" => Ok(Operation::Deploy),
            "update" => Ok(Operation::Update),
            "migrate" => Ok(Operation::Migrate),
            "cleanup" => Ok(Operation::Cleanup),
            "start" => Ok(Operation::Start),
            "stop" => Ok(Operation::Stop),
            "backup" => Ok(Operation::Backup),
            "verify" => Ok(Operation::Verify),
            "restore" => Ok(Operation::Restore),
            "prune" => Ok(Operation::Prune),
            "rollback" => Ok(Operation::Rollback),
            "flag" => Ok(Operation::Flag),
            other => Err(format!("unknown operation {other:?}")),
        }
    }
}

/// Declares a status enum with its one text form, used in the store, the browser (serde)
/// and on pages alike.
macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }
    };
}

pub(crate) use status_enum;

status_enum! {
    /// Where a run stands.
    RunStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        /// Its process stopped before it finished (a crash, or a console stop past the grace).
        Interrupted => "interrupted",
    }
}

status_enum! {
    /// Where one step of a run stands.
    StepStatus {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        Interrupted => "interrupted",
    }
}

/// What a run's verification found, as `runs.verification` keeps it (empty: the run has
/// none): every check passed through the watch window; a check failed and the change stayed;
/// a check failed and the previous version was put back.
pub const VERIFICATION_PASSED: &str = "passed";
pub const VERIFICATION_FAILED: &str = "failed";
pub const VERIFICATION_ROLLED_BACK: &str = "rolled back";

/// A run's verification as pages show it: `—` without one.
pub fn verification_in_words(verification: &str) -> String {
    if verification.is_empty() {
        "—".to_owned()
    } else {
        verification.to_owned()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub stack: String,
    pub operation: Operation,
    /// What the run acts on beyond its stack (a verify run's backup); empty for most.
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub options: RunOptions,
    pub status: RunStatus,
    pub requested_by: String,
    pub started_at: String,
    /// Empty while the run goes on.
    pub finished_at: String,
    pub error: String,
    /// What its verification found (see [`VERIFICATION_PASSED`] and the others); empty
    /// while it has not ended, or for a run without one.
    #[serde(default)]
    pub verification: String,
}

impl RunSummary {
    /// What the run was asked to do.
    pub fn request(&self) -> RunRequest {
        RunRequest {
            operation: self.operation,
            target: self.target.clone(),
            options: self.options.clone(),
        }
    }

    /// What was asked beyond the operation: ` · backup 1f…, forced, on the recorded images`.
    pub fn asked_in_words(&self) -> String {
        let mut parts = Vec::new();
        if !self.target.is_empty() {
            let what = match self.operation {
                Operation::Rollback => "to the images of run",
                Operation::Flag => "set",
                _ => "backup",
            };
            parts.push(format!("{what} {}", self.target));
        }
        if self.operation == Operation::Flag {
            parts.push(format!("to {}", self.options.flag_value));
        }
        if !self.options.release.is_empty() {
            parts.push(format!("shipping release {}", self.options.release));
        }
        if self.options.emergency {
            parts.push(format!(
                "emergency, restoring backup {}",
                self.options.backup
            ));
        }
        if !self.options.approval.is_empty() {
            parts.push(format!("approved ({})", self.options.approval));
        }
        if self.options.scheduled {
            parts.push("scheduled".to_owned());
        }
        if self.options.force {
            parts.push("forced".to_owned());
        }
        if self.options.recorded_images {
            parts.push("on the images recorded with the backup".to_owned());
        }
        if self.options.undo_migrations {
            parts.push("undoing the migrations applied since".to_owned());
        }
        if !self.options.why.is_empty() {
            parts.push(format!("“{}”", self.options.why));
        }
        parts.iter().map(|part| format!(" · {part}")).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStep {
    pub position: i64,
    pub name: String,
    pub status: StepStatus,
    pub started_at: String,
    pub finished_at: String,
    /// How long it took (`3.2 s`), once it has finished.
    pub took: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLine {
    pub seq: i64,
    pub step: i64,
    pub at: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: RunSummary,
    pub steps: Vec<RunStep>,
    pub lines: Vec<RunLine>,
}

/// One change of a run, as its live stream (`/api/runs/{id}/events`) carries it: the run
/// when its status changes, all steps when one changes, each new line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "lowercase")]
pub enum RunEvent {
    Run(Box<RunSummary>),
    Steps(Vec<RunStep>),
    Line(RunLine),
}

/// Where the browser follows a run live.
pub fn events_path(id: &str) -> String {
    format!("/api/runs/{id}/events")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Another run holds the stack; the message says which, by whom and since when.
    #[error("{0}")]
    Busy(String),
    #[error("There is no run {0}.")]
    NotFound(String),
    /// The stack could not be read or driven: unknown (404), a file it cannot use (422),
    /// an engine that does not answer (503).
    #[error(transparent)]
    Stack(#[from] crate::stacks::StackError),
    /// The operation runs only once an approval covers it; the message says how to ask.
    #[error("{0}")]
    NeedsApproval(String),
    /// What was asked cannot be done as asked (an unknown flag, a value it cannot take).
    #[error("{0}")]
    Refused(String),
    /// The console is stopping and takes no new run.
    #[error("The console is stopping; start the run again once it is back.")]
    Stopping,
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl UserFacing for RunError {
    fn status(&self) -> u16 {
        match self {
            RunError::Auth(error) => error.status(),
            RunError::Busy(_) => 409,
            RunError::NeedsApproval(_) => 403,
            RunError::Refused(_) => 422,
            RunError::NotFound(_) => 404,
            RunError::Stack(error) => error.status(),
            RunError::Stopping | RunError::Unavailable | RunError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(RunError);

crate::store_unavailable!(RunError, "runs");

/// Starts a run of `operation` on the stack and returns its id at once; operators and up.
/// An operation that needs an approval is refused here (it is requested on the Approvals
/// page and starts when approved). `target` names what the run acts on where the operation needs it
/// (the backup a verify or restore run uses); `force` and `recorded_images` are a restore's.
#[server(prefix = "/api", endpoint = "start_run")]
pub async fn start_run(
    stack: String,
    operation: Operation,
    #[server(default)] target: String,
    #[server(default)] force: bool,
    #[server(default)] recorded_images: bool,
) -> Result<String, RunError> {
    use crate::errors::reject;
    let operator = crate::auth::guard::authorized(crate::auth::Role::Operator)
        .await
        .map_err(|error| reject(RunError::from(error)))?;
    let options = RunOptions {
        force,
        recorded_images,
        ..RunOptions::default()
    };
    let request = RunRequest {
        operation,
        target,
        options,
    };
    start_in_console(&operator, &stack, request)
        .await
        .map_err(reject)
}

/// Begins `request` on `stack` for the caller and hands it to the console's runner;
/// returns the run's id at once.
#[cfg(feature = "ssr")]
pub async fn start_in_console(
    caller: &crate::auth::guard::Authorized,
    stack: &str,
    request: RunRequest,
) -> Result<String, RunError> {
    let engine = caller.console.engine.clone()?;
    let (handle, summary) =
        lock::start(&caller.console.store, stack, request, &caller.actor, false).await?;
    let id = handle.run.id.clone();
    caller.console.runner.start(handle, engine, summary)?;
    Ok(id)
}

/// A button that starts a run of `operation` on `stack` (with `target`). With `follow` the browser goes to the run's page;
/// otherwise the form says the run started and links to it.
#[component]
pub fn RunForm(
    stack: String,
    operation: Operation,
    #[prop(optional, into)] target: String,
    label: &'static str,
    testid: String,
    #[prop(optional)] follow: bool,
    #[prop(optional)] secondary: bool,
) -> impl IntoView {
    let start = ServerAction::<StartRun>::new();
    if follow {
        Effect::new(move |_| {
            if let Some(Ok(id)) = start.value().get() {
                let navigate = leptos_router::hooks::use_navigate();
                navigate(&format!("/runs/{id}"), Default::default());
            }
        });
    }
    let class = if secondary {
        "button secondary"
    } else {
        "button"
    };
    let (stack_for_ask, target_for_ask) = (stack.clone(), target.clone());
    view! {
        <ActionForm action=start attr:class="inline">
            <input type="hidden" name="stack" value=stack />
            <input type="hidden" name="operation" value=operation.as_str() />
            <input type="hidden" name="target" value=target />
            <button class=class type="submit" data-testid=testid disabled=move || start.pending().get()>
                {label}
            </button>
        </ActionForm>
        {move || match start.value().get() {
            Some(Ok(id)) if !follow => Some(view! {
                <p class="muted" data-testid="run-started">
                    "Started: " <a href=format!("/runs/{id}")>{format!("run {}", &id[..8.min(id.len())])}</a>
                </p>
            }.into_any()),
            // The stack's policy wants an approval in front of it: ask for one here.
            Some(Err(RunError::NeedsApproval(why))) => Some(view! {
                <ApprovalAsk stack=stack_for_ask.clone() operation target=target_for_ask.clone() why />
            }.into_any()),
            Some(Err(error)) => Some(view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()),
            _ => None,
        }}
    }
}

/// A request for the approval a gated run needs: why it is wanted, then the approval's page.
#[component]
fn ApprovalAsk(stack: String, operation: Operation, target: String, why: String) -> impl IntoView {
    let request = ServerAction::<crate::approvals::RequestApproval>::new();
    Effect::new(move |_| {
        if let Some(Ok(id)) = request.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/approvals/{id}"), Default::default());
        }
    });
    view! {
        <div class="notice" data-testid="needs-approval">
            <p>{why}</p>
            <ActionForm action=request attr:class="form-row">
                <input type="hidden" name="stack" value=stack />
                <input type="hidden" name="operation" value=operation.as_str() />
                <input type="hidden" name="target" value=target />
                <label class="field">"Why" <input name="reason" required /></label>
                <button class="button" type="submit" data-testid="request-approval">"Request approval"</button>
            </ActionForm>
            {move || request.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </div>
    }
}

/// Asks a running run to stop before its next step; operators and up.
#[server(prefix = "/api", endpoint = "cancel_run")]
pub async fn cancel_run(id: String) -> Result<(), RunError> {
    use crate::errors::reject;
    let operator = crate::auth::guard::authorized(crate::auth::Role::Operator).await?;
    lock::request_cancel(&operator.console.store, &operator.actor, &id)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "runs")]
pub async fn list_runs(stack: String) -> Result<Vec<RunSummary>, RunError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    queries::list(&caller.console.store, &stack)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "run")]
pub async fn get_run(id: String) -> Result<RunDetail, RunError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    queries::detail(&caller.console.store, &id)
        .await
        .map_err(reject)
}

/// The newest runs of every stack.
#[component]
pub fn RunsPage() -> impl IntoView {
    let runs = Resource::new(|| (), |_| list_runs(String::new()));
    view! {
        <Title text="Runs" />
        <h1>"Runs"</h1>
        <p class="lead">"Every operation on a stack, step by step, newest first."</p>
        <Transition fallback=|| view! { <p class="muted">"Loading runs…"</p> }>
            {move || Suspend::new(async move {
                match runs.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted card">"No runs yet. Start or stop a stack from its page."</p> }.into_any(),
                    Ok(list) => view! { <RunList list /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RunList(list: Vec<RunSummary>) -> impl IntoView {
    view! {
        <section class="card">
            <Table testid="runs-table" headers=&["Run", "Stack", "Operation", "Status", "By", "Started"]>
                {list
                    .into_iter()
                    .map(|run| {
                        view! {
                            <tr>
                                <td><a href=format!("/runs/{}", run.id)>{run.id.chars().take(8).collect::<String>()}</a></td>
                                <td>{run.stack}</td>
                                <td>{run.operation.as_str()}</td>
                                <td><span class=status_class(run.status.as_str())>{run.status.as_str()}</span></td>
                                <td>{run.requested_by}</td>
                                <td class="nowrap">{run.started_at}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </Table>
        </section>
    }
}

/// The badge of a run's or a step's status, by its text form (the two enums share it).
pub(crate) fn status_class(status: &str) -> &'static str {
    if status == StepStatus::Succeeded.as_str() {
        "status on"
    } else if status == StepStatus::Running.as_str() || status == StepStatus::Pending.as_str() {
        "status"
    } else {
        "status off"
    }
}

/// One run: its steps with status and duration, a progress bar and its lines. The page is
/// rendered from the stored run (so a reload resumes where it was), then follows the run live
/// over server-sent events until it ends; without WASM it reloads itself while it runs.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let detail = Resource::new(id, get_run);
    view! {
        <Title text="Run" />
        <Transition fallback=|| view! { <p class="muted">"Loading the run…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <RunView detail /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// A run as the page shows it; the live stream changes these.
#[derive(Clone, Copy)]
struct LiveRun {
    run: RwSignal<RunSummary>,
    steps: RwSignal<Vec<RunStep>>,
    lines: RwSignal<Vec<RunLine>>,
}

impl LiveRun {
    fn apply(&self, event: RunEvent) {
        match event {
            RunEvent::Run(run) => self.run.set(*run),
            RunEvent::Steps(steps) => self.steps.set(steps),
            RunEvent::Line(line) => self.lines.update(|lines| {
                if lines.last().is_none_or(|last| last.seq < line.seq) {
                    lines.push(line);
                }
            }),
        }
    }
}

#[component]
fn RunView(detail: RunDetail) -> impl IntoView {
    let live = LiveRun {
        run: RwSignal::new(detail.run),
        steps: RwSignal::new(detail.steps),
        lines: RwSignal::new(detail.lines),
    };
    Effect::new(move || follow_live(live));
    let running = move || live.run.with(|run| run.status == RunStatus::Running);
    let status = move || live.run.with(|run| run.status.as_str());
    let percent = move || {
        live.steps.with(|steps| {
            let done = steps
                .iter()
                .filter(|s| s.status == StepStatus::Succeeded)
                .count();
            done * 100 / steps.len().max(1)
        })
    };
    let is_operator = crate::auth::signed_in_user()
        .is_some_and(|user| user.role.allows(crate::auth::Role::Operator));
    let cancel = ServerAction::<CancelRun>::new();
    let (title, started) = live.run.with_untracked(|run| {
        (
            format!("{} {}", run.operation, run.stack),
            format!(
                "{} · started by {} at {}",
                run.asked_in_words(),
                run.requested_by,
                run.started_at
            ),
        )
    });
    let error = move || live.run.with(|run| run.error.clone());
    let verification = move || live.run.with(|run| run.verification.clone());
    view! {
        // As markup, not elements: a meta refresh created by script would reload the page.
        {live.run.with_untracked(|run| run.status == RunStatus::Running).then(|| view! {
            <noscript inner_html=r#"<meta http-equiv="refresh" content="2">"# />
        })}
        <h1>{title}</h1>
        <p class="lead" data-testid="run-status" data-status=status>
            <span class=move || status_class(status())>{status}</span>
            {started}
            {move || {
                let verification = verification();
                (!verification.is_empty()).then(|| view! {
                    <span data-testid="run-verification" data-verification=verification.clone()>" · verification " {verification.clone()}</span>
                })
            }}
            {move || {
                let error = error();
                (!error.is_empty()).then(|| view! { <span class="error">" · " {error}</span> })
            }}
        </p>
        <Show when=move || running() && is_operator>
            <ActionForm action=cancel attr:class="inline">
                <input type="hidden" name="id" value=move || live.run.with(|run| run.id.clone()) />
                <button class="button secondary" type="submit" data-testid="cancel-run">"Cancel"</button>
            </ActionForm>
        </Show>
        <div class="progress" role="progressbar" aria-valuenow=percent aria-valuemin="0" aria-valuemax="100">
            <div class="progress-bar" style=move || format!("width: {}%", percent())></div>
        </div>
        <section class="card">
            <Table testid="run-steps" headers=&["#", "Step", "Status", "Started", "Took"]>
                <For each=move || live.steps.get() key=|step| (step.position, step.status) let:step>
                    <tr data-step=step.position data-status=step.status.as_str()>
                        <td>{step.position + 1}</td>
                        <td>{step.name}</td>
                        <td><span class=status_class(step.status.as_str())>{step.status.as_str()}</span></td>
                        <td class="nowrap">{step.started_at}</td>
                        <td class="nowrap">{step.took}</td>
                    </tr>
                </For>
            </Table>
        </section>
        <pre class="log" data-testid="run-lines">
            {move || live.lines.with(|lines| {
                lines.iter().map(|line| format!("{}  {}\n", line.at, line.text)).collect::<String>()
            })}
        </pre>
    }
}

/// While the run goes on, follows it over server-sent events (see [`events_path`]) from the
/// last line the page has, until the run ends; a reconnect resumes by `Last-Event-ID`.
fn follow_live(live: LiveRun) {
    let (id, running) = live
        .run
        .with_untracked(|run| (run.id.clone(), run.status == RunStatus::Running));
    if !running {
        return;
    }
    let after = live
        .lines
        .with_untracked(|lines| lines.last().map_or(0, |line| line.seq));
    crate::live::subscribe(
        format!("{}?after={after}", events_path(&id)),
        &["run", "steps", "line"],
        move |data| {
            let Ok(event) = serde_json::from_str::<RunEvent>(&data) else {
                return true;
            };
            let ended = matches!(&event, RunEvent::Run(run) if run.status != RunStatus::Running);
            live.apply(event);
            !ended
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: i64) -> RunLine {
        RunLine {
            seq,
            step: 0,
            at: String::new(),
            text: format!("line {seq}"),
        }
    }

    #[test]
    fn a_line_the_page_already_has_is_not_shown_twice() {
        // Signals live in an owner's arena, as they do under a rendered page.
        Owner::new_root(None).with(lines_are_applied_once);
    }

    fn lines_are_applied_once() {
        let live = LiveRun {
            run: RwSignal::new(RunSummary {
                id: "r".into(),
                stack: "s".into(),
                operation: Operation::Deploy,
                target: String::new(),
                options: RunOptions::default(),
                status: RunStatus::Running,
                requested_by: "otto".into(),
                started_at: String::new(),
                finished_at: String::new(),
                error: String::new(),
                verification: String::new(),
            }),
            steps: RwSignal::new(Vec::new()),
            lines: RwSignal::new(vec![line(1), line(2)]),
        };
        // A reconnect may send again what the page rendered from the store.
        for seq in [2, 3, 3, 4] {
            live.apply(RunEvent::Line(line(seq)));
        }
        let seqs: Vec<i64> = live.lines.get_untracked().iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        live.apply(RunEvent::Run(Box::new(RunSummary {
            status: RunStatus::Succeeded,
            ..live.run.get_untracked()
        })));
        assert_eq!(live.run.get_untracked().status, RunStatus::Succeeded);
    }
}
