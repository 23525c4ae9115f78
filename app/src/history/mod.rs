//! History for stakeholders: every run that touched a stack, newest first — when, what
//! (operation, release version, the images it changed), who started and who approved it,
//! outcome and duration — filtered by stack, operation, outcome, person, dates and version,
//! a page at a time, and exported as CSV (`/history.csv`, `slipway history --csv`).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::Table;

#[cfg(feature = "ssr")]
pub mod delivery;
#[cfg(feature = "ssr")]
pub mod service;

/// What the history shows; every field empty shows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryFilter {
    #[serde(default)]
    pub stack: String,
    /// `deploy`, `update`, … (an [`crate::runs::Operation`]).
    #[serde(default)]
    pub operation: String,
    /// `succeeded`, `failed`, … (a [`crate::runs::RunStatus`]).
    #[serde(default)]
    pub outcome: String,
    /// Who started or approved the run.
    #[serde(default)]
    pub person: String,
    /// From this day (`YYYY-MM-DD`, UTC).
    #[serde(default)]
    pub since: String,
    /// Until the end of this day.
    #[serde(default)]
    pub until: String,
    /// Text in the version of the release the run shipped.
    #[serde(default)]
    pub version: String,
    /// Where the page starts: the `next` of the page before.
    #[serde(default)]
    pub before: String,
}

impl HistoryFilter {
    /// The filter as the query of a link (without the cursor).
    pub fn query(&self) -> String {
        [
            ("stack", &self.stack),
            ("operation", &self.operation),
            ("outcome", &self.outcome),
            ("person", &self.person),
            ("since", &self.since),
            ("until", &self.until),
            ("version", &self.version),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// A query value percent-encoded.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One service whose image a run changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChange {
    pub service: String,
    /// Empty when the service did not run before.
    pub from: String,
    pub to: String,
}

impl std::fmt::Display for ImageChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = if self.from.is_empty() {
            "—"
        } else {
            &self.from
        };
        write!(f, "{}: {from} → {}", self.service, self.to)
    }
}

/// One run as the history tells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub run_id: String,
    pub stack: String,
    pub operation: String,
    pub status: String,
    pub requested_by: String,
    pub approved_by: Vec<String>,
    /// The release the run shipped, when a release started it.
    pub release_id: String,
    pub release_version: String,
    pub started_at: String,
    /// Empty while the run goes on.
    pub finished_at: String,
    pub duration_seconds: Option<f64>,
    /// The services whose image the run changed, from → to.
    pub images: Vec<ImageChange>,
    pub error: String,
    /// What the run's verification found: passed, failed, rolled back; empty without one.
    #[serde(default)]
    pub verification: String,
}

/// What a service of a stack runs now, since when, and which run (and release) put it there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct RunningService {
    pub service: String,
    pub image: String,
    pub image_id: String,
    /// When the run that put the image there ended.
    pub since: String,
    pub run_id: String,
    pub operation: String,
    pub release_id: String,
    pub release_version: String,
}

/// A page of the history and where the next one starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryList {
    pub entries: Vec<HistoryEntry>,
    pub next: Option<String>,
}

/// Delivery metrics (DORA) of one stack, or of all (`stack` empty), over `days`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryMetrics {
    pub stack: String,
    pub days: i64,
    /// Deploy, update and migrate runs that ended.
    pub changes: i64,
    /// Those that succeeded.
    pub deployments: i64,
    pub per_week: f64,
    /// Median, over the changes whose start is known.
    pub lead_time_hours: Option<f64>,
    pub lead_time_samples: i64,
    pub failed_changes: i64,
    pub failure_rate: Option<f64>,
    /// Median, over the failed changes that were restored.
    pub time_to_restore_hours: Option<f64>,
    pub restore_samples: i64,
    /// Successful and failed changes per week, oldest first.
    pub weekly: Vec<WeekOfChanges>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekOfChanges {
    /// The week's first day, `YYYY-MM-DD`.
    pub starts: String,
    pub deployments: i64,
    pub failed: i64,
}

/// How each delivery metric is computed, as the page and `slipway delivery` say it.
pub const DEFINITIONS: [(&str, &str); 4] = [
    (
        "Deployment frequency",
        "deploy, update and migrate runs that succeeded, per week",
    ),
    (
        "Lead time for changes",
        "median, from the newest build among the images the change changed (their org.opencontainers.image.created label), else the release's creation, to the end of the run that shipped it",
    ),
    (
        "Change failure rate",
        "changes (deploy, update, migrate runs that succeeded or failed) that failed, or were rolled back or restored before the stack's next change, over all changes",
    ),
    (
        "Time to restore",
        "median, from a failed change's end to the end of the stack's next run that succeeded",
    ),
];

/// The windows the delivery metrics are shown for, in days.
pub const WINDOWS: [i64; 2] = [30, 90];

/// Why the history could not be shown, in words the browser may show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A filter that cannot be used; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl crate::errors::UserFacing for HistoryError {
    fn status(&self) -> u16 {
        match self {
            HistoryError::Auth(error) => error.status(),
            HistoryError::Invalid(_) => 422,
            HistoryError::Unavailable | HistoryError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(HistoryError);

crate::store_unavailable!(HistoryError, "history");

/// One page of the filtered history; viewers and up.
#[server(prefix = "/api", endpoint = "history")]
pub async fn history(
    #[server(default)] filter: HistoryFilter,
) -> Result<HistoryList, HistoryError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    service::page(&caller.console.store, &filter)
        .await
        .map_err(reject)
}

/// Delivery metrics of one stack (`""`: all) over 30 and 90 days; viewers and up.
#[server(prefix = "/api", endpoint = "delivery_report")]
pub async fn delivery_report(
    #[server(default)] stack: String,
) -> Result<Vec<DeliveryMetrics>, HistoryError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    delivery::report(&caller.console.store, &stack)
        .await
        .map_err(reject)
}

/// The runs of a release: the one that shipped it and those after it until the next
/// release; viewers and up.
#[server(prefix = "/api", endpoint = "release_runs")]
pub async fn release_runs(release: String) -> Result<Vec<HistoryEntry>, HistoryError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    service::release_runs(&caller.console.store, &release)
        .await
        .map_err(reject)
}

/// What each service of a stack runs now and since when; viewers and up.
#[server(prefix = "/api", endpoint = "running_now")]
pub async fn running_now(stack: String) -> Result<Vec<RunningService>, HistoryError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    service::running_now(&caller.console.store, &stack)
        .await
        .map_err(reject)
}

/// A release's runs, on its page.
#[component]
pub fn ReleaseRuns(release: String) -> impl IntoView {
    let runs = Resource::new(move || release.clone(), release_runs);
    view! {
        <section class="card" data-testid="release-runs">
            <h2>"Runs"</h2>
            <p class="muted">"The run that shipped this release, and what changed the stack after it until the next release shipped (backups, drills and prunes left out)."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading the runs…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(entries) if entries.is_empty() => view! { <p class="muted">"Not shipped yet."</p> }.into_any(),
                        Ok(entries) => view! { <HistoryTable entries /> }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// What each service of a stack runs and since when, on the stack's page.
#[component]
pub fn RunningNow(stack: String) -> impl IntoView {
    let running = Resource::new(move || stack.clone(), running_now);
    view! {
        <section class="card" data-testid="running-now">
            <h2>"Running now"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match running.await {
                        Ok(services) if services.is_empty() => view! { <p class="muted">"Nothing runs: the stack was stopped, or no run has recorded its images yet."</p> }.into_any(),
                        Ok(services) => view! {
                            <Table testid="running-now-table" headers=&["Service", "Image", "Since", "Put there by"]>
                                {services.into_iter().map(|now| {
                                    let by = format!("{} run {}", now.operation, now.run_id.chars().take(8).collect::<String>());
                                    view! {
                                        <tr data-service=now.service.clone()>
                                            <td>{now.service.clone()}</td>
                                            <td><code>{now.image.clone()}</code> " " <span class="muted">{now.image_id.trim_start_matches("sha256:").chars().take(12).collect::<String>()}</span></td>
                                            <td class="nowrap">{now.since.clone()}</td>
                                            <td>
                                                <a href=format!("/runs/{}", now.run_id)>{by}</a>
                                                {(!now.release_id.is_empty()).then(|| view! {
                                                    ", release " <a href=format!("/releases/{}", now.release_id)>{now.release_version.clone()}</a>
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </Table>
                        }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

const OPERATIONS: [&str; 13] = [
    "", "deploy", "update", "migrate", "rollback", "restore", "flag", "start", "stop", "backup",
    "verify", "prune", "cleanup",
];
const OUTCOMES: [&str; 6] = [
    "",
    "succeeded",
    "failed",
    "cancelled",
    "interrupted",
    "running",
];

/// The History page: a filter form (a plain GET form: it works without JavaScript), the
/// entries, a link to the next page and the CSV export of the filtered view.
#[component]
pub fn HistoryPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move || {
        query.with(|q| {
            let get = |name: &str| q.get(name).unwrap_or_default();
            HistoryFilter {
                stack: get("stack"),
                operation: get("operation"),
                outcome: get("outcome"),
                person: get("person"),
                since: get("since"),
                until: get("until"),
                version: get("version"),
                before: get("before"),
            }
        })
    };
    let page = Resource::new(filter, history);
    let field = move |name: &'static str| move || query.with(|q| q.get(name).unwrap_or_default());
    let choice = move |name: &'static str, options: &'static [&'static str]| {
        let current = field(name);
        view! {
            <select name=name prop:value=current>
                {options
                    .iter()
                    .map(|option| {
                        let shown = if option.is_empty() { "any" } else { option };
                        view! { <option value=*option selected=move || current() == *option>{shown}</option> }
                    })
                    .collect_view()}
            </select>
        }
    };
    view! {
        <Title text="History" />
        <h1>"History"</h1>
        <p class="lead">"Every run that touched a stack, newest first: what shipped, who started and who approved it, and how it ended."</p>
        <form class="filters card" method="get" action="/history" data-testid="history-filters">
            <label>"Stack" <input name="stack" value=field("stack") prop:value=field("stack") /></label>
            <label>"Operation" {choice("operation", &OPERATIONS)}</label>
            <label>"Outcome" {choice("outcome", &OUTCOMES)}</label>
            <label>"Person" <input name="person" value=field("person") prop:value=field("person") /></label>
            <label>"Since" <input name="since" type="date" value=field("since") prop:value=field("since") /></label>
            <label>"Until" <input name="until" type="date" value=field("until") prop:value=field("until") /></label>
            <label>"Version" <input name="version" value=field("version") prop:value=field("version") /></label>
            <button class="button" type="submit" data-testid="filter-history">"Filter"</button>
            <a class="button secondary" href="/history">"Everything"</a>
            <a class="button secondary" data-testid="history-csv" href=move || format!("/history.csv?{}", filter().query())>"CSV"</a>
        </form>
        <Delivery stack=Signal::derive(move || filter().stack) />
        <Transition fallback=|| view! { <p class="muted">"Loading the history…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(page) if page.entries.is_empty() => view! {
                        <p class="muted card" data-testid="history-empty">"Nothing matches."</p>
                    }.into_any(),
                    Ok(page) => {
                        let next = page.next.clone().map(|cursor| {
                            let query = filter().query();
                            let joiner = if query.is_empty() { "" } else { "&" };
                            format!("/history?{query}{joiner}before={}", encode(&cursor))
                        });
                        view! {
                            <HistoryTable entries=page.entries />
                            {next.map(|href| view! { <a class="button secondary" data-testid="history-older" href=href>"Older"</a> })}
                        }.into_any()
                    }
                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The delivery metrics of the filtered stack (or all) for each window, how each is computed,
/// and a chart of the 90 days' weekly changes: server-rendered SVG, readable without
/// JavaScript, the numbers in the table beside it.
#[component]
fn Delivery(stack: Signal<String>) -> impl IntoView {
    let metrics = Resource::new(move || stack.get(), delivery_report);
    view! {
        <section class="card" data-testid="delivery">
            <h2>{move || if stack.get().is_empty() { "Delivery, all stacks".to_owned() } else { format!("Delivery, {}", stack.get()) }}</h2>
            <Transition fallback=|| view! { <p class="muted">"Counting…"</p> }>
                {move || Suspend::new(async move {
                    match metrics.await {
                        Ok(windows) => view! { <DeliveryView windows /> }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn hours(value: Option<f64>, samples: i64) -> String {
    match value {
        Some(hours) if hours < 1.0 => format!("{:.0} min (of {samples})", hours * 60.0),
        Some(hours) => format!("{hours:.1} h (of {samples})"),
        None => "—".into(),
    }
}

/// The value of the metric numbered as in [`DEFINITIONS`] for one window, in words.
pub fn metric_text(metric: usize, window: &DeliveryMetrics) -> String {
    match metric {
        0 => format!("{:.1} / week ({})", window.per_week, window.deployments),
        1 => hours(window.lead_time_hours, window.lead_time_samples),
        2 => window.failure_rate.map_or_else(
            || "—".into(),
            |rate| {
                format!(
                    "{:.0} % ({} of {})",
                    rate * 100.0,
                    window.failed_changes,
                    window.changes
                )
            },
        ),
        _ => hours(window.time_to_restore_hours, window.restore_samples),
    }
}

#[component]
fn DeliveryView(windows: Vec<DeliveryMetrics>) -> impl IntoView {
    let longest = windows.last().cloned();
    view! {
        <Table testid="delivery-table" headers=&["Metric", "30 days", "90 days", "How it is computed"]>
            {DEFINITIONS
                .iter()
                .enumerate()
                .map(|(metric, (name, how))| {
                    view! {
                        <tr>
                            <td>{*name}</td>
                            {windows.iter().map(|window| view! { <td class="nowrap">{metric_text(metric, window)}</td> }).collect_view()}
                            <td class="muted">{*how}</td>
                        </tr>
                    }
                })
                .collect_view()}
        </Table>
        {longest.map(|window| view! { <WeeklyChart weeks=window.weekly /> })}
    }
}

/// Bars of the changes that succeeded each week (failed ones stacked above, in red) and the
/// trend line of the three weeks' average.
#[component]
fn WeeklyChart(weeks: Vec<WeekOfChanges>) -> impl IntoView {
    const BAR: f64 = 24.0;
    const HEIGHT: f64 = 90.0;
    let most = weeks
        .iter()
        .map(|week| week.deployments + week.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let scale = |count: f64| count / most * (HEIGHT - 10.0);
    let width = BAR * weeks.len() as f64;
    let trend: String = weeks
        .iter()
        .enumerate()
        .map(|(at, _)| {
            let window = &weeks[at.saturating_sub(2)..=at];
            let average = window.iter().map(|week| week.deployments).sum::<i64>() as f64
                / window.len() as f64;
            format!(
                "{:.1},{:.1}",
                BAR * at as f64 + BAR / 2.0,
                HEIGHT - scale(average)
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let label = weeks
        .iter()
        .map(|week| {
            format!(
                "week of {}: {} succeeded, {} failed",
                week.starts, week.deployments, week.failed
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    view! {
        <svg class="chart" data-testid="delivery-chart" viewBox=format!("0 0 {width} {HEIGHT}") width=width height=HEIGHT role="img" aria-label=label>
            {weeks
                .iter()
                .enumerate()
                .map(|(at, week)| {
                    let x = BAR * at as f64 + 3.0;
                    let succeeded = scale(week.deployments as f64);
                    let failed = scale(week.failed as f64);
                    view! {
                        <g>
                            <title>{format!("week of {}: {} succeeded, {} failed", week.starts, week.deployments, week.failed)}</title>
                            <rect class="bar" x=x y=HEIGHT - succeeded width=BAR - 6.0 height=succeeded />
                            <rect class="bar failed" x=x y=HEIGHT - succeeded - failed width=BAR - 6.0 height=failed />
                        </g>
                    }
                })
                .collect_view()}
            <polyline class="trend" points=trend />
        </svg>
    }
}

#[component]
fn HistoryTable(entries: Vec<HistoryEntry>) -> impl IntoView {
    view! {
        <section class="card">
            <Table testid="history-table" headers=&["When", "Stack", "What", "Changed", "By", "Approved by", "Outcome", "Verification", "Took"]>
                {entries
                    .into_iter()
                    .map(|entry| {
                        let what = if entry.release_version.is_empty() {
                            entry.operation.clone()
                        } else {
                            format!("{} of release {}", entry.operation, entry.release_version)
                        };
                        let changed = if entry.images.is_empty() {
                            "—".to_owned()
                        } else {
                            entry.images.iter().map(ImageChange::to_string).collect::<Vec<_>>().join("; ")
                        };
                        let approved = if entry.approved_by.is_empty() { "—".to_owned() } else { entry.approved_by.join(", ") };
                        let status_class = crate::runs::status_class(&entry.status);
                        let took = entry.duration_seconds.map(|seconds| format!("{seconds:.1} s")).unwrap_or_else(|| "—".into());
                        view! {
                            <tr data-run=entry.run_id.clone()>
                                <td class="nowrap"><a href=format!("/runs/{}", entry.run_id)>{entry.started_at}</a></td>
                                <td>{entry.stack}</td>
                                <td>{what}</td>
                                <td><code class="detail">{changed}</code></td>
                                <td>{entry.requested_by}</td>
                                <td>{approved}</td>
                                <td><span class=status_class title=entry.error>{entry.status}</span></td>
                                <td class="nowrap" data-testid="history-verification">{crate::runs::verification_in_words(&entry.verification)}</td>
                                <td class="nowrap">{took}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </Table>
        </section>
    }
}
