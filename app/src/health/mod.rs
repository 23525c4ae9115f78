//! Health: the console probes every stack on its own — each service's container, and the HTTP
//! probes its compose file names (`x-slipway.probes`) — and keeps what it finds as history.
//! The Health page shows each probe's state, the last change of state, uptime over 24 hours
//! and 7 days and a 24-hour sparkline; a service's page shows the evidence of its recent
//! results; `slipway health STACK` prints the same now-view; `/metrics` exports it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::components::{readable_time, Table};

#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod probes;
#[cfg(feature = "ssr")]
pub mod scheduler;
#[cfg(feature = "ssr")]
pub mod series;
#[cfg(feature = "ssr")]
pub mod service;

/// Bars of a sparkline: ten minutes each, 24 hours.
pub const SPARK_BARS: usize = 144;
/// How often the Health page reads the results again.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(3);

/// Ten minutes of one probe: how many checks, how many failed, their mean latency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkBar {
    pub checks: i64,
    pub failures: i64,
    pub latency_ms: i64,
}

/// One probe's newest result and its history in figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeHealth {
    pub stack: String,
    pub service: String,
    /// `container`, or `http PATH`.
    pub probe: String,
    pub ok: bool,
    /// When the probe last turned from passing to failing or back (or was first checked).
    pub since: String,
    /// When it was last checked.
    pub last_at: String,
    pub latency_ms: i64,
    /// The reason, or the evidence of a pass (secrets masked).
    pub detail: String,
    /// Passing checks in thousandths over 24 hours and 7 days; `None` without checks.
    pub uptime_24h: Option<i64>,
    pub uptime_7d: Option<i64>,
    /// [`SPARK_BARS`] bars, oldest first, the last one holding now.
    pub spark: Vec<SparkBar>,
}

/// A stack's probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackHealth {
    pub stack: String,
    pub policy: HealthPolicy,
    /// Empty while the stack does not run (never deployed, or stopped).
    pub probes: Vec<ProbeHealth>,
}

impl StackHealth {
    pub fn failing(&self) -> usize {
        self.probes.iter().filter(|probe| !probe.ok).count()
    }

    /// `healthy: all 11 checks pass`, `failing: 2 of 11 checks fail`, `not running`.
    pub fn summary(&self) -> String {
        let total = self.probes.len();
        match self.failing() {
            _ if total == 0 => "not running: nothing to probe".to_owned(),
            0 => format!("healthy: all {total} checks pass"),
            failing => format!("failing: {failing} of {total} checks fail"),
        }
    }
}

/// One probe result as it was stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub probe: String,
    pub at: String,
    pub ok: bool,
    pub latency_ms: i64,
    pub detail: String,
}

/// A service's probes and its newest results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceProbes {
    pub stack: String,
    pub service: String,
    pub probes: Vec<ProbeHealth>,
    pub recent: Vec<Sample>,
}

/// What a failed verification does to the change it verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailedVerification {
    /// The change stays; the run says why and the team is told.
    #[default]
    Alert,
    /// An update (or a flag's change) puts the previous containers back the zero-downtime
    /// way; the admin who set the policy approved that in advance.
    Rollback,
}

impl OnFailedVerification {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailedVerification::Alert => "alert",
            OnFailedVerification::Rollback => "rollback",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [OnFailedVerification::Alert, OnFailedVerification::Rollback]
            .into_iter()
            .find(|choice| choice.as_str() == text)
    }
}

/// A stack's health policy (an admin's setting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPolicy {
    /// How often the console probes the stack.
    pub every_seconds: i64,
    /// How long a change's probes and error rate are watched after its verification; 0: not.
    pub watch_seconds: i64,
    pub on_failed_verification: OnFailedVerification,
    /// Who set it and when; empty for the defaults.
    pub set_by: String,
    pub set_at: String,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            every_seconds: 15,
            watch_seconds: 300,
            on_failed_verification: OnFailedVerification::Alert,
            set_by: String::new(),
            set_at: String::new(),
        }
    }
}

/// Why health could not be shown or set, in words the browser may show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum HealthError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("no stack or service named {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl crate::errors::UserFacing for HealthError {
    fn status(&self) -> u16 {
        match self {
            HealthError::Auth(error) => error.status(),
            HealthError::NotFound(_) => 404,
            HealthError::Invalid(_) => 422,
            HealthError::Unavailable | HealthError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(HealthError);
crate::store_unavailable!(HealthError, "health");

/// Every stack's probes (or one stack's); viewers and up.
#[server(prefix = "/api", endpoint = "health")]
pub async fn health(#[server(default)] stack: String) -> Result<Vec<StackHealth>, HealthError> {
    use crate::errors::reject;
    // The pages read it every few seconds: that is no sign of a person at the keyboard.
    let caller = crate::auth::guard::authorized_for(
        crate::auth::Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await?;
    service::now_view(&caller.console.store, &stack, chrono::Utc::now())
        .await
        .map_err(reject)
}

/// One service's probes and recent results; viewers and up.
#[server(prefix = "/api", endpoint = "service_health")]
pub async fn service_health(stack: String, service: String) -> Result<ServiceProbes, HealthError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized_for(
        crate::auth::Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await?;
    service::service_view(&caller.console.store, &stack, &service, chrono::Utc::now())
        .await
        .map_err(reject)
}

/// Sets a stack's health policy; admins only.
#[server(prefix = "/api", endpoint = "set_health_policy")]
pub async fn set_health_policy(
    stack: String,
    every_seconds: i64,
    watch_seconds: i64,
    on_failed_verification: String,
) -> Result<HealthPolicy, HealthError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    let on_failed = OnFailedVerification::parse(&on_failed_verification).ok_or_else(|| {
        reject(HealthError::Invalid(
            "on failed verification: alert or rollback".into(),
        ))
    })?;
    let policy = HealthPolicy {
        every_seconds,
        watch_seconds,
        on_failed_verification: on_failed,
        ..HealthPolicy::default()
    };
    service::set_policy(&admin.console.store, &admin.actor, &stack, policy)
        .await
        .map_err(reject)
}

/// Evidence as the Health page's table shows it: the first 120 characters (all of it on the
/// service's page and in the cell's title).
fn shortened(detail: &str) -> String {
    match detail.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &detail[..end]),
        None => detail.to_owned(),
    }
}

/// A check's time to answer; a container's state is read, not asked.
fn latency(probe: &str, ms: i64) -> String {
    if probe == "container" {
        "–".to_owned()
    } else {
        format!("{ms} ms")
    }
}

/// `99.9 %` from thousandths; `–` without checks.
fn percent(per_mille: Option<i64>) -> String {
    per_mille.map_or("–".to_owned(), |p| format!("{}.{} %", p / 10, p % 10))
}

/// The health of every stack, read again every few seconds while the page is open.
#[component]
pub fn HealthPage() -> impl IntoView {
    let tick = crate::components::ticker(REFRESH);
    let stacks = Resource::new(move || tick.get(), |_| health(String::new()));
    let admin = crate::auth::signed_in_user()
        .is_some_and(|user| user.role.allows(crate::auth::Role::Admin));
    view! {
        <Title text="Health" />
        <h1>"Health"</h1>
        <p class="lead">
            "Every service's container and HTTP probes, checked by the console on its own. Bars: ten minutes each over the last 24 hours, red where a check failed."
        </p>
        <Transition fallback=|| view! { <p class="muted">"Reading the probes…"</p> }>
            {move || Suspend::new(async move {
                match stacks.await {
                    Ok(stacks) if stacks.is_empty() => view! { <p class="muted">"No stacks yet."</p> }.into_any(),
                    Ok(stacks) => stacks
                        .into_iter()
                        .map(|stack| view! { <StackSection stack admin /> })
                        .collect_view()
                        .into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn StackSection(stack: StackHealth, admin: bool) -> impl IntoView {
    let state = if stack.probes.is_empty() {
        "idle"
    } else if stack.failing() > 0 {
        "failing"
    } else {
        "healthy"
    };
    let name = stack.stack.clone();
    view! {
        <section class="card" data-testid="health-stack" data-stack=stack.stack.clone() data-state=state>
            <div class="card-head">
                <h2>{stack.stack.clone()}</h2>
                <span class=format!("health-state {state}") data-testid="health-summary">{stack.summary()}</span>
            </div>
            <p class="muted" data-testid="health-policy">{policy_in_words(&stack.policy)}</p>
            {(!stack.probes.is_empty()).then(|| view! { <ProbeTable probes=stack.probes.clone() link=true /> })}
            {admin.then(|| view! { <PolicyForm stack=name policy=stack.policy.clone() /> })}
        </section>
    }
}

#[component]
fn ProbeTable(probes: Vec<ProbeHealth>, link: bool) -> impl IntoView {
    view! {
        <Table
            testid="health-probes"
            headers=&["Service", "Check", "State, since", "Evidence", "Latency", "Uptime 24 h · 7 d", "Last 24 hours"]
        >
            {probes
                .into_iter()
                .map(|probe| {
                    let state = if probe.ok { "passing" } else { "failing" };
                    let service = if link {
                        view! { <a href=format!("/health/{}/{}", probe.stack, probe.service)>{probe.service.clone()}</a> }.into_any()
                    } else {
                        view! { <span>{probe.service.clone()}</span> }.into_any()
                    };
                    view! {
                        <tr data-testid="health-probe" data-service=probe.service.clone() data-probe=probe.probe.clone() data-state=state>
                            <td>{service}</td>
                            <td><code class="nowrap">{probe.probe.clone()}</code></td>
                            <td>
                                <span class=format!("health-state {state}")>{state}</span>
                                <br />
                                <time class="muted small nowrap" datetime=probe.since.clone()>{readable_time(&probe.since)}</time>
                            </td>
                            <td class="evidence" data-testid="health-detail" title=probe.detail.clone()>{shortened(&probe.detail)}</td>
                            <td class="nowrap">{latency(&probe.probe, probe.latency_ms)}</td>
                            <td class="nowrap">{format!("{} · {}", percent(probe.uptime_24h), percent(probe.uptime_7d))}</td>
                            <td><Sparkline bars=probe.spark.clone() /></td>
                        </tr>
                    }
                })
                .collect_view()}
        </Table>
    }
}

/// A probe's last 24 hours as an SVG: a bar per ten minutes, as high as its mean latency
/// against the highest, red where a check failed, nothing where nothing was checked.
#[component]
pub fn Sparkline(bars: Vec<SparkBar>) -> impl IntoView {
    // A pixel per ten minutes: 24 hours in 144 pixels, narrow enough for the table.
    const WIDTH: usize = 1;
    const HEIGHT: i64 = 20;
    let highest = bars
        .iter()
        .map(|bar| bar.latency_ms)
        .max()
        .unwrap_or(0)
        .max(1);
    let checked = bars.iter().filter(|bar| bar.checks > 0).count();
    let failing = bars.iter().filter(|bar| bar.failures > 0).count();
    let width = bars.len() * WIDTH;
    let label = format!(
        "{checked} of {} ten-minute spans checked, {failing} with failures",
        bars.len()
    );
    view! {
        <svg
            class="sparkline"
            data-testid="sparkline"
            viewBox=format!("0 0 {width} {HEIGHT}")
            width=width
            height=HEIGHT
            role="img"
            aria-label=label
        >
            {bars
                .into_iter()
                .enumerate()
                .filter(|(_, bar)| bar.checks > 0)
                .map(|(index, bar)| {
                    let failed = bar.failures > 0;
                    // A failed span is drawn whole; a passing one by its latency, never flat.
                    let height = if failed { HEIGHT } else { (bar.latency_ms * (HEIGHT - 4) / highest + 4).min(HEIGHT) };
                    view! {
                        <rect
                            class=if failed { "bar failed" } else { "bar" }
                            data-bar=index
                            x=index * WIDTH
                            y=HEIGHT - height
                            width=WIDTH
                            height=height
                        >
                            <title>{format!("{} checks, {} failed, {} ms", bar.checks, bar.failures, bar.latency_ms)}</title>
                        </rect>
                    }
                })
                .collect_view()}
        </svg>
    }
}

/// `Probed every 15 s. A change is watched for 300 s after its verification; a failed
/// verification alerts (set by ada at …).`
pub fn policy_in_words(policy: &HealthPolicy) -> String {
    let watch = match policy.watch_seconds {
        0 => "A change is verified once, not watched".to_owned(),
        seconds => format!("A change is watched for {seconds} s after its verification"),
    };
    let on_failed = match policy.on_failed_verification {
        OnFailedVerification::Alert => "a failed verification alerts the team",
        OnFailedVerification::Rollback => {
            "a failed verification of an update puts the previous version back"
        }
    };
    let by = if policy.set_by.is_empty() {
        " (the defaults)".to_owned()
    } else {
        format!(
            " (set by {} at {})",
            policy.set_by,
            readable_time(&policy.set_at)
        )
    };
    format!(
        "Probed every {} s. {watch}; {on_failed}{by}.",
        policy.every_seconds
    )
}

/// An admin's form: the stack's health policy.
#[component]
fn PolicyForm(stack: String, policy: HealthPolicy) -> impl IntoView {
    let set = ServerAction::<SetHealthPolicy>::new();
    let rollback = policy.on_failed_verification == OnFailedVerification::Rollback;
    view! {
        <ActionForm action=set attr:class="inline-form" attr:data-testid="health-policy-form">
            <input type="hidden" name="stack" value=stack />
            <label>
                "Probe every (s) "
                <input type="number" name="every_seconds" min="2" max="3600" value=policy.every_seconds required />
            </label>
            <label>
                "Watch a change for (s) "
                <input type="number" name="watch_seconds" min="0" max="3600" value=policy.watch_seconds required />
            </label>
            <label>
                "On failed verification "
                <select name="on_failed_verification">
                    <option value="alert" selected=!rollback>"alert"</option>
                    <option value="rollback" selected=rollback>"roll back an update"</option>
                </select>
            </label>
            <button class="button" type="submit">"Save"</button>
            {move || set.value().get().map(|answer| match answer {
                Ok(policy) => view! { <span class="muted">{format!("Saved. {}", policy_in_words(&policy))}</span> }.into_any(),
                Err(error) => view! { <span class="error">{error.to_string()}</span> }.into_any(),
            })}
        </ActionForm>
    }
}

/// One service's probes and the evidence of its recent results.
#[component]
pub fn ServiceHealthPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || {
        params.with(|p| {
            (
                p.get("stack").unwrap_or_default(),
                p.get("service").unwrap_or_default(),
            )
        })
    };
    let tick = crate::components::ticker(REFRESH);
    let found = Resource::new(
        move || (key(), tick.get()),
        |((stack, service), _)| service_health(stack, service),
    );
    view! {
        <Transition fallback=|| view! { <p class="muted">"Reading the probes…"</p> }>
            {move || Suspend::new(async move {
                match found.await {
                    Ok(found) => view! {
                        <Title text=format!("{} · {} · Health", found.service, found.stack) />
                        <h1>{format!("{} / {}", found.stack, found.service)}</h1>
                        <p><a href="/health">"All stacks"</a></p>
                        <ProbeTable probes=found.probes link=false />
                        <h2>"Recent results"</h2>
                        <Table testid="health-recent" headers=&["When", "Check", "Result", "Latency", "Evidence"]>
                            {found
                                .recent
                                .into_iter()
                                .map(|sample| view! {
                                    <tr>
                                        <td class="nowrap"><time datetime=sample.at.clone()>{readable_time(&sample.at)}</time></td>
                                        <td><code>{sample.probe.clone()}</code></td>
                                        <td>{if sample.ok { "passed" } else { "failed" }}</td>
                                        <td class="nowrap">{latency(&sample.probe, sample.latency_ms)}</td>
                                        <td class="evidence">{sample.detail}</td>
                                    </tr>
                                })
                                .collect_view()}
                        </Table>
                    }
                    .into_any(),
                    Err(error) => {
                        crate::errors::set_response_status(crate::errors::UserFacing::status(&error));
                        view! {
                            <Title text="Health" />
                            <h1>"Health"</h1>
                            <p class="error">{error.to_string()}</p>
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// The Overview's line per stack: healthy, failing or not running.
#[component]
pub fn HealthSummary() -> impl IntoView {
    let stacks = Resource::new(|| (), |_| health(String::new()));
    view! {
        <section class="card" data-testid="health-overview">
            <h2><a href="/health">"Health"</a></h2>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match stacks.await {
                        Ok(stacks) => view! {
                            <ul class="plain">
                                {stacks
                                    .into_iter()
                                    .map(|stack| view! {
                                        <li data-testid="health-overview-stack">
                                            <strong>{stack.stack.clone()}</strong>": "{stack.summary()}
                                        </li>
                                    })
                                    .collect_view()}
                            </ul>
                        }
                        .into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
