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
    Run(RunSummary),
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
            RunEvent::Run(run) => self.run.set(run),
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
    let running = move || live.run.with(|run| run.status == "running");
    let status = move || live.run.with(|run| run.status.clone());
    let percent = move || {
        live.steps.with(|steps| {
            let done = steps.iter().filter(|s| s.status == "succeeded").count();
            done * 100 / steps.len().max(1)
        })
    };
    let is_operator = crate::auth::signed_in_user()
        .is_some_and(|user| user.role.allows(crate::auth::Role::Operator));
    let cancel = ServerAction::<CancelRun>::new();
    let (title, started) = live.run.with_untracked(|run| {
        (
            format!("{} {}", run.operation, run.stack),
            format!(" · started by {} at {}", run.requested_by, run.started_at),
        )
    });
    let error = move || live.run.with(|run| run.error.clone());
    view! {
        // As markup, not elements: a meta refresh created by script would reload the page.
        {live.run.with_untracked(|run| run.status == "running").then(|| view! {
            <noscript inner_html=r#"<meta http-equiv="refresh" content="2">"# />
        })}
        <h1>{title}</h1>
        <p class="lead" data-testid="run-status" data-status=status>
            <span class=move || status_class(&status())>{status}</span>
            {started}
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
                <For each=move || live.steps.get() key=|step| (step.position, step.status.clone()) let:step>
                    <tr data-step=step.position data-status=step.status.clone()>
                        <td>{step.position + 1}</td>
                        <td>{step.name}</td>
                        <td><span class=status_class(&step.status)>{step.status.clone()}</span></td>
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
        .with_untracked(|run| (run.id.clone(), run.status == "running"));
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
            let ended = matches!(&event, RunEvent::Run(run) if run.status != "running");
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
                status: "running".into(),
                requested_by: "otto".into(),
                started_at: String::new(),
                finished_at: String::new(),
                error: String::new(),
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
        live.apply(RunEvent::Run(RunSummary {
            status: "succeeded".into(),
            ..live.run.get_untracked()
        }));
        assert_eq!(live.run.get_untracked().status, "succeeded");
    }
}
