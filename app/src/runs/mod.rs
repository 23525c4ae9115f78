//! Runs: one operation on a stack, made of steps; every step's status, times and lines are
//! stored as they happen. One run per stack at a time.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::components::Table;
use crate::errors::UserFacing;

#[cfg(feature = "ssr")]
pub mod service;

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
        }
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
            other => Err(format!("unknown operation {other:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub stack: String,
    pub operation: Operation,
    /// running, succeeded, failed, cancelled or interrupted.
    pub status: String,
    pub requested_by: String,
    pub started_at: String,
    /// Empty while the run goes on.
    pub finished_at: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStep {
    pub position: i64,
    pub name: String,
    /// pending, running, succeeded, failed or interrupted.
    pub status: String,
    pub started_at: String,
    pub finished_at: String,
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Another run holds the stack; the message says which, by whom and since when.
    #[error("{0}")]
    Busy(String),
    #[error("There is no run {0}.")]
    NotFound(String),
    #[error("{0}")]
    Stack(String),
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
            RunError::NotFound(_) => 404,
            RunError::Stack(_) => 422,
            RunError::Unavailable | RunError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(RunError);

#[cfg(feature = "ssr")]
impl From<crate::store::StoreError> for RunError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(error = %error, cause = ?error, "store failure in runs");
        RunError::Unavailable
    }
}

#[cfg(feature = "ssr")]
impl From<crate::stacks::StackError> for RunError {
    fn from(error: crate::stacks::StackError) -> Self {
        RunError::Stack(error.to_string())
    }
}

/// Starts a run of `operation` on the stack and returns its id at once; operators and up.
#[server(prefix = "/api", endpoint = "start_run")]
pub async fn start_run(stack: String, operation: Operation) -> Result<String, RunError> {
    use crate::errors::reject;
    let operator = crate::auth::guard::authorized(crate::auth::Role::Operator).await?;
    let store = operator.console.store.clone();
    let summary = crate::stacks::service::find(&store, &stack)
        .await
        .map_err(|error| reject(RunError::from(error)))?;
    let engine = crate::stacks::engine::Engine::connect()
        .map_err(|error| reject(RunError::Stack(error.to_string())))?;
    let handle = service::begin(&store, &summary, operation, &operator.actor, false)
        .await
        .map_err(reject)?;
    let id = handle.run.id.clone();
    tokio::spawn(async move {
        if let Err(error) = service::execute(handle, &engine, &summary).await {
            tracing::error!(error = %error, "run could not be recorded to the end");
        }
    });
    Ok(id)
}

/// Asks a running run to stop before its next step; operators and up.
#[server(prefix = "/api", endpoint = "cancel_run")]
pub async fn cancel_run(id: String) -> Result<(), RunError> {
    use crate::errors::reject;
    let operator = crate::auth::guard::authorized(crate::auth::Role::Operator).await?;
    service::request_cancel(&operator.console.store, &operator.actor, &id)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "runs")]
pub async fn list_runs(stack: String) -> Result<Vec<RunSummary>, RunError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    service::list(&caller.console.store, &stack)
        .await
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "run")]
pub async fn get_run(id: String) -> Result<RunDetail, RunError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    service::detail(&caller.console.store, &id)
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
                                <td><span class=status_class(&run.status)>{run.status.clone()}</span></td>
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

fn status_class(status: &str) -> &'static str {
    match status {
        "succeeded" => "status on",
        "running" | "pending" => "status",
        _ => "status off",
    }
}

/// How often a run's page asks again while the run goes on.
const RUN_REFRESH: Duration = Duration::from_secs(1);

/// One run: its steps with status and duration, a progress bar and its stored lines. While
/// the run goes on the page asks again every second; without WASM it reloads itself.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let tick = crate::stacks::ticker(RUN_REFRESH);
    let detail = Resource::new(move || (id(), tick.get()), |(id, _)| get_run(id));
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

#[component]
fn RunView(detail: RunDetail) -> impl IntoView {
    let run = detail.run;
    let done = detail
        .steps
        .iter()
        .filter(|s| s.status == "succeeded")
        .count();
    let total = detail.steps.len().max(1);
    let percent = done * 100 / total;
    let running = run.status == "running";
    let is_operator = crate::auth::signed_in_user()
        .is_some_and(|user| user.role.allows(crate::auth::Role::Operator));
    let cancel = ServerAction::<CancelRun>::new();
    let id = run.id.clone();
    view! {
        {running.then(|| view! { <noscript><meta http-equiv="refresh" content="2" /></noscript> })}
        <h1>{format!("{} {}", run.operation, run.stack)}</h1>
        <p class="lead" data-testid="run-status" data-status=run.status.clone()>
            <span class=status_class(&run.status)>{run.status.clone()}</span>
            " · started by " {run.requested_by} " at " {run.started_at}
            {(!run.error.is_empty()).then(|| view! { <span class="error">" · " {run.error.clone()}</span> })}
        </p>
        {(running && is_operator).then(|| view! {
            <ActionForm action=cancel attr:class="inline">
                <input type="hidden" name="id" value=id.clone() />
                <button class="button secondary" type="submit" data-testid="cancel-run">"Cancel"</button>
            </ActionForm>
        })}
        <div class="progress" role="progressbar" aria-valuenow=percent aria-valuemin="0" aria-valuemax="100">
            <div class="progress-bar" style=format!("width: {percent}%")></div>
        </div>
        <section class="card">
            <Table testid="run-steps" headers=&["#", "Step", "Status", "Started", "Finished"]>
                {detail
                    .steps
                    .into_iter()
                    .map(|step| {
                        view! {
                            <tr data-step=step.position data-status=step.status.clone()>
                                <td>{step.position + 1}</td>
                                <td>{step.name}</td>
                                <td><span class=status_class(&step.status)>{step.status.clone()}</span></td>
                                <td class="nowrap">{step.started_at}</td>
                                <td class="nowrap">{step.finished_at}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </Table>
        </section>
        <pre class="log" data-testid="run-lines">
            {detail.lines.into_iter().map(|line| format!("{}  {}\n", line.at, line.text)).collect::<String>()}
        </pre>
    }
}
