//! The Stacks list and a stack's page with the live state of its services.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::{
    AddStack, ContainerStatus, Diagnostics, LogLine, ServiceStatus, SetManagedEdge,
    SetStackProfiles, StackConfig, StackDiagnostics, StackError, StackStatus, StackSummary,
};
use crate::auth::{signed_in_user, Role};
use crate::components::{ticker, Table};
use crate::runs::{Operation, RunForm};

/// How often a stack's page asks the engine again.
const REFRESH: Duration = Duration::from_secs(5);
/// The runs an operator can start from a stack's page: operation, label, secondary button.
const RUN_BUTTONS: [(Operation, &str, bool); 7] = [
    (Operation::Deploy, "Deploy", false),
    (Operation::Update, "Update", true),
    (Operation::Migrate, "Migrate", true),
    (Operation::Start, "Start", true),
    (Operation::Cleanup, "Clean up", true),
    (Operation::Backup, "Back up", true),
    (Operation::Stop, "Stop", true),
];

/// The stacks, listed or said to be none; `reload` asks again when it changes.
#[component]
fn StacksCard(#[prop(into)] reload: Signal<usize>) -> impl IntoView {
    let stacks = Resource::new(move || reload.get(), |_| super::list_stacks());
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading stacks…"</p> }>
            {move || Suspend::new(async move {
                match stacks.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted card" data-testid="no-stacks">
                            "No stacks yet. An admin adds one on the Stacks page or with "
                            <code>"slipway stack add NAME --compose FILE"</code> "."
                        </p>
                    }.into_any(),
                    Ok(list) => view! { <StackList list /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The Overview's view of the stacks.
#[component]
pub fn StackOverview() -> impl IntoView {
    view! {
        <h2 class="section-title">"Stacks"</h2>
        <StacksCard reload=Signal::derive(|| 0) />
    }
}

#[component]
pub fn StacksPage() -> impl IntoView {
    let add = ServerAction::<AddStack>::new();
    let is_admin = signed_in_user().is_some_and(|user| user.role.allows(Role::Admin));
    view! {
        <Title text="Stacks" />
        <h1>"Stacks"</h1>
        <p class="lead">"Compose applications under Slipway's care. Each one's compose file stays the source of truth."</p>
        <StacksCard reload=add.version() />
        <Show when=move || is_admin>
            <section class="card">
                <h2>"Add a stack"</h2>
                <ActionForm action=add>
                    <div class="form-row">
                        <label class="field">"Name" <input name="name" required placeholder="portal" /></label>
                        <label class="field">
                            "Compose file (on the console's machine)"
                            <input name="compose_file" required placeholder="/srv/portal/docker-compose.yml" />
                        </label>
                        <label class="field">"Env file" <input name="env_file" placeholder="/srv/portal/.env" /></label>
                        <label class="field">"Project" <input name="project" placeholder="same as the name" /></label>
                        <button class="button" type="submit" data-testid="add-stack">"Add stack"</button>
                    </div>
                </ActionForm>
                {move || {
                    add.value()
                        .get()
                        .and_then(Result::err)
                        .map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })
                }}
            </section>
        </Show>
    }
}

#[component]
fn StackList(list: Vec<StackSummary>) -> impl IntoView {
    view! {
        <section class="card"><Table testid="stacks-table" headers=&["Stack", "Project", "Compose file"]>
                    {list
                        .into_iter()
                        .map(|stack| {
                            view! {
                                <tr>
                                    <td><a href=format!("/stacks/{}", stack.name)>{stack.name.clone()}</a></td>
                                    <td>{stack.project}</td>
                                    <td><code>{stack.compose_file}</code></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </Table></section>
    }
}

#[component]
pub fn StackPage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.with(|p| p.get("name").unwrap_or_default());
    // Live state: ask again every few seconds while the page is open.
    let tick = ticker(REFRESH);
    let status = Resource::new(
        move || (name(), tick.get()),
        |(name, tick)| super::get_stack_status(name, tick > 0),
    );
    let is_operator = signed_in_user().is_some_and(|user| user.role.allows(Role::Operator));
    let is_admin = signed_in_user().is_some_and(|user| user.role.allows(Role::Admin));
    // The title reads a signal kept outside the reactive arena: leptos_meta reads a title's
    // text while it writes the head, outside the request's arena, and a text that read the
    // route's parameters there panicked now and then under load. One <Title> for the page's
    // life: leptos_meta 0.8 leaves an entry behind for each <Title> made anew.
    let title = ArcRwSignal::new(params.with_untracked(|p| p.get("name").unwrap_or_default()));
    Effect::new({
        let title = title.clone();
        move |_| title.set(name())
    });
    view! {
        <Title text=move || title.get() />
        <div class="card-head">
            <h1>{name}</h1>
            <Show when=move || is_operator>
                <div class="actions">
                    {move || {
                        RUN_BUTTONS
                            .iter()
                            .map(|&(operation, label, secondary)| {
                                // A started run is followed on its own page.
                                view! {
                                    <RunForm
                                        stack=name()
                                        operation
                                        label
                                        testid=format!("{operation}-stack")
                                        secondary
                                        follow=true
                                    />
                                }
                            })
                            .collect_view()
                    }}
                </div>
            </Show>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Asking the engine…"</p> }>
            {move || Suspend::new(async move {
                match status.await {
                    Ok(status) => view! { <StackServices status /> }.into_any(),
                    Err(error) => view! { <p class="error" data-testid="stack-error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        <crate::approvals::BrokenGlassBanner stack=Signal::derive(name) />
        <crate::history::RunningNow stack=name() />
        <StackBackupsSummary name=Signal::derive(name) />
        <crate::flags::FlagsSection stack=name() can_set=is_operator />
        {move || is_operator.then(|| view! { <crate::approvals::RollbackForm stack=name() /> })}
        {move || is_admin.then(|| view! { <ManagedEdgeForm stack=name() /> })}
        {move || is_operator.then(|| view! { <ComposeModel stack=name() is_admin /> })}
        {move || is_admin.then(|| view! { <crate::approvals::ApprovalPolicyForm stack=name() /> })}
        {move || is_admin.then(|| view! { <crate::releases::ReleasePolicyForm stack=name() /> })}
        {move || is_admin.then(|| view! { <crate::releases::ReleaseTemplateForm stack=name() /> })}
        <StackLogs name=Signal::derive(name) />
        <Troubleshooting name=Signal::derive(name) />
    }
}

/// The newest verified backup and its age (or why the stack has none), with the way to the
/// stack's backups.
#[component]
fn StackBackupsSummary(name: Signal<String>) -> impl IntoView {
    let overview = Resource::new(move || name.get(), crate::backups::backup_overview);
    view! {
        <section class="card">
            <div class="card-head">
                <h2>"Backups"</h2>
                <a class="button secondary" href=move || format!("/backups?stack={}", name.get())>"All backups"</a>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading backups…"</p> }>
                {move || Suspend::new(async move {
                    match overview.await {
                        Ok(overview) => view! { <crate::backups::BackupSummary overview /> }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// On demand, since container statistics take the engine a second: engine, disks, CPU and
/// memory, database connections.
#[component]
fn Troubleshooting(name: Signal<String>) -> impl IntoView {
    let check = ServerAction::<StackDiagnostics>::new();
    view! {
        <section class="card" data-testid="troubleshooting">
            <div class="card-head">
                <h2>"Troubleshooting"</h2>
                <ActionForm action=check attr:class="inline">
                    <input type="hidden" name="name" value=name />
                    <button class="button secondary" type="submit" data-testid="run-checks" disabled=move || check.pending().get()>
                        "Run checks"
                    </button>
                </ActionForm>
            </div>
            {move || match check.value().get() {
                None if check.pending().get() => view! { <p class="muted">"Checking…"</p> }.into_any(),
                None => view! { <p class="muted">"Engine, disks, CPU and memory, database connections."</p> }.into_any(),
                Some(Ok(diagnostics)) => view! { <DiagnosticsView diagnostics /> }.into_any(),
                Some(Err(error)) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
            }}
        </section>
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn gibibytes(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

#[component]
fn DiagnosticsView(diagnostics: Diagnostics) -> impl IntoView {
    let engine = diagnostics.engine;
    view! {
        <dl class="facts" data-testid="engine-facts">
            <dt>"Engine"</dt>
            <dd>{format!("Docker {} (API {}) at {}", engine.version, engine.api_version, engine.address)}</dd>
            <dt>"Containers"</dt>
            <dd>{format!("{} running of {}; {} images", engine.containers_running, engine.containers, engine.images)}</dd>
            {diagnostics
                .disks
                .into_iter()
                .map(|disk| {
                    view! {
                        <dt>{disk.purpose}</dt>
                        <dd>{format!("{} free of {} ({})", gibibytes(disk.free_bytes), gibibytes(disk.total_bytes), disk.path)}</dd>
                    }
                })
                .collect_view()}
            {diagnostics
                .database_connections
                .into_iter()
                .map(|(service, count)| {
                    view! {
                        <dt>{format!("{service}: connections")}</dt>
                        <dd data-testid="db-connections">
                            {match count {
                                Ok(count) => count.to_string(),
                                Err(reason) => format!("unknown ({reason})"),
                            }}
                        </dd>
                    }
                })
                .collect_view()}
        </dl>
        <Table testid="usage-table" headers=&["Service", "CPU", "Memory"]>
                    {diagnostics
                        .usage
                        .into_iter()
                        .map(|usage| {
                            let limit = if usage.memory_limit_bytes > 0 {
                                format!(" of {}", mebibytes(usage.memory_limit_bytes))
                            } else {
                                String::new()
                            };
                            view! {
                                <tr>
                                    <td>{usage.service}</td>
                                    <td>{format!("{:.1} %", usage.cpu_percent)}</td>
                                    <td>{format!("{}{limit}", mebibytes(usage.memory_bytes))}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </Table>
    }
}

/// How many lines the log view keeps while it follows.
const KEPT_LOG_LINES: usize = 500;

/// What the stack's containers wrote: all services or one, optionally errors only, followed live.
#[component]
fn StackLogs(name: Signal<String>) -> impl IntoView {
    let (service, set_service) = signal(String::new());
    let (errors_only, set_errors_only) = signal(false);
    let (follow, set_follow) = signal(true);
    let services = Resource::new(
        move || name.get(),
        |name| super::get_stack_status(name, false),
    );
    // The newest lines; while following, what the containers write next is added to them.
    let newest = Resource::new(
        move || (name.get(), service.get(), errors_only.get(), follow.get()),
        |(name, service, errors_only, _)| super::stack_logs(name, service, errors_only),
    );
    view! {
        <section class="card logs">
            <div class="card-head">
                <h2>"Logs"</h2>
                <div class="form-row">
                    <Suspense>
                        {move || Suspend::new(async move {
                            let names: Vec<String> = services
                                .await
                                .map(|status| status.services.into_iter().map(|s| s.name).collect())
                                .unwrap_or_default();
                            view! {
                                <select
                                    aria-label="Service"
                                    data-testid="log-service"
                                    on:change=move |event| set_service.set(event_target_value(&event))
                                >
                                    <option value="">"all services"</option>
                                    {names.into_iter().map(|name| view! { <option value=name.clone()>{name.clone()}</option> }).collect_view()}
                                </select>
                            }
                        })}
                    </Suspense>
                    <label class="check">
                        <input type="checkbox" data-testid="log-errors" on:change=move |event| set_errors_only.set(event_target_checked(&event)) />
                        " errors only"
                    </label>
                    <label class="check">
                        <input type="checkbox" checked data-testid="log-follow" on:change=move |event| set_follow.set(event_target_checked(&event)) />
                        " follow"
                    </label>
                </div>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Reading logs…"</p> }>
                {move || Suspend::new(async move {
                    match newest.await {
                        Ok(lines) => {
                            let live = follow.get_untracked().then(|| {
                                let query: leptos_router::params::ParamsMap = [
                                    ("service", service.get_untracked()),
                                    ("errors", errors_only.get_untracked().to_string()),
                                ]
                                .into_iter()
                                .collect();
                                format!(
                                    "{}{}",
                                    super::log_events_path(&name.get_untracked()),
                                    query.to_query_string()
                                )
                            });
                            view! { <FollowedLogs lines live /> }.into_any()
                        }
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The lines, and, when `live` names a stream, each line the containers write next.
#[component]
fn FollowedLogs(lines: Vec<LogLine>, live: Option<String>) -> impl IntoView {
    let lines = RwSignal::new(lines);
    if let Some(url) = live {
        Effect::new(move || {
            crate::live::subscribe(url.clone(), &["line"], move |data| {
                if let Ok(line) = serde_json::from_str::<LogLine>(&data) {
                    lines.update(|lines| {
                        lines.push(line);
                        let excess = lines.len().saturating_sub(KEPT_LOG_LINES);
                        lines.drain(..excess);
                    });
                }
                true
            })
        });
    }
    move || {
        let shown = lines.get();
        if shown.is_empty() {
            view! { <p class="muted">"No lines."</p> }.into_any()
        } else {
            view! { <LogView lines=shown /> }.into_any()
        }
    }
}

#[component]
fn LogView(lines: Vec<LogLine>) -> impl IntoView {
    view! {
        <pre class="log" data-testid="log-lines">
            {lines
                .into_iter()
                .map(|line| {
                    let class = if line.is_error() { "line error-line" } else { "line" };
                    view! {
                        <span class=class>
                            <span class="log-service">{line.service}</span>
                            " "
                            {line.text}
                            "\n"
                        </span>
                    }
                })
                .collect_view()}
        </pre>
    }
}

#[component]
fn StackServices(status: StackStatus) -> impl IntoView {
    let up = status.services.iter().filter(|s| s.is_up()).count();
    let total = status.services.len();
    view! {
        <p class="lead">
            "Project " <code>{status.stack.project.clone()}</code> " · " {up} " of " {total}
            " services up · " <code>{status.stack.compose_file.clone()}</code>
        </p>
        <section class="card"><Table testid="services-table" headers=&["Service", "Role", "State", "Health", "Image", "Ports", "Running since", "Restarts"]>
                    {status.services.into_iter().map(|service| view! { <ServiceRows service /> }).collect_view()}
                </Table></section>
    }
}

#[component]
fn ServiceRows(service: ServiceStatus) -> impl IntoView {
    if service.containers.is_empty() {
        return view! {
            <tr data-service=service.name.clone()>
                <td>{service.name.clone()}</td>
                <td>{service.role.as_str()}</td>
                <td><span class="status off">"no container"</span></td>
                <td>"—"</td>
                <td><code>{service.image.unwrap_or_default()}</code></td>
                <td></td>
                <td></td>
                <td></td>
            </tr>
        }
        .into_any();
    }
    let role = service.role.as_str();
    service
        .containers
        .into_iter()
        .map(|container| view! { <ContainerRow service=service.name.clone() role container /> })
        .collect_view()
        .into_any()
}

#[component]
fn ContainerRow(service: String, role: &'static str, container: ContainerStatus) -> impl IntoView {
    let state_class = if container.state == "running" {
        "status on"
    } else {
        "status off"
    };
    let health_class = match container.health.as_str() {
        "healthy" => "status on",
        "none" => "status",
        _ => "status off",
    };
    let (service_attr, state_attr, health_attr) = (
        service.clone(),
        container.state.clone(),
        container.health.clone(),
    );
    view! {
        <tr data-service=service_attr data-state=state_attr data-health=health_attr>
            <td title=container.name>{service}</td>
            <td>{role}</td>
            <td><span class=state_class>{container.state}</span></td>
            <td><span class=health_class>{container.health}</span></td>
            <td><code>{container.image}</code> " " <code class="muted small">{container.image_id}</code></td>
            <td>{container.ports.join(", ")}</td>
            <td class="nowrap">{container.started_at.as_deref().map(crate::components::readable_time).unwrap_or_default()}</td>
            <td>{container.restarts}</td>
        </tr>
    }
}

/// One of the stack's settings as stored, read again after each save (`saved`, the saving
/// action's version).
fn stack_setting<T>(
    stack: String,
    saved: RwSignal<usize>,
    pick: fn(&StackSummary) -> T,
) -> Resource<Result<T, StackError>>
where
    T: Clone + Default + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    Resource::new(
        move || (stack.clone(), saved.get()),
        move |(stack, _)| async move {
            super::list_stacks().await.map(|stacks| {
                stacks
                    .iter()
                    .find(|s| s.name == stack)
                    .map(pick)
                    .unwrap_or_default()
            })
        },
    )
}

/// The managed edge, as an admin's form on the stack's page.
#[component]
fn ManagedEdgeForm(stack: String) -> impl IntoView {
    let saved = ServerAction::<SetManagedEdge>::new();
    let managed = stack_setting(stack.clone(), saved.version(), |s| s.managed_edge);
    view! {
        <section class="card" data-testid="managed-edge">
            <h2>"Edge"</h2>
            <p class="muted">
                "With Slipway's edge in front, the edge publishes the app services' ports and an update starts each new container beside the old one and switches to it: no request is dropped. "
                "Without it, an update replaces each service in place, with a short outage it measures. "
                "The edge is one more hop per request, and the containers differ from what plain Compose starts. The next deploy applies a change."
            </p>
            <Transition fallback=|| ()>
                {move || {
                    let stack = stack.clone();
                    Suspend::new(async move {
                        managed.await.map(|managed| view! {
                            <ActionForm action=saved attr:class="form-row">
                                <input type="hidden" name="stack" value=stack />
                                <label class="field check"><input name="managed" type="checkbox" value="true" checked=managed />" Slipway's edge in front"</label>
                                <button class="button secondary" type="submit" data-testid="save-managed-edge">"Save"</button>
                            </ActionForm>
                        }).map_err(|error| error.to_string())
                    })
                }}
            </Transition>
            {move || saved.value().get().map(saved_note)}
        </section>
    }
}

/// What saving one of the stack's settings said.
fn saved_note<T>(saved: Result<T, StackError>) -> AnyView {
    match saved {
        Ok(_) => {
            view! { <p class="muted" role="status">"Saved: deploy the stack to apply it."</p> }
                .into_any()
        }
        Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
    }
}

/// The model Slipway runs for the stack, on demand, as `docker compose config` prints it
/// (secrets masked); admins choose the active Compose profiles here.
#[component]
fn ComposeModel(stack: String, is_admin: bool) -> impl IntoView {
    let show = ServerAction::<StackConfig>::new();
    let saved = ServerAction::<SetStackProfiles>::new();
    let active = stack_setting(stack.clone(), saved.version(), |s| s.profiles.join(" "));
    let profiles_form = move |stack: String| {
        view! {
            <Transition fallback=|| ()>
                {move || {
                    let stack = stack.clone();
                    Suspend::new(async move {
                        active.await.map(|active| view! {
                            <ActionForm action=saved attr:class="form-row">
                                <input type="hidden" name="stack" value=stack />
                                <label class="field">"Active profiles (space-separated)"
                                    <input name="profiles" value=active data-testid="profiles" />
                                </label>
                                <button class="button secondary" type="submit" data-testid="save-profiles">"Save"</button>
                            </ActionForm>
                        }).map_err(|error| error.to_string())
                    })
                }}
            </Transition>
            {move || saved.value().get().map(saved_note)}
        }
    };
    let for_profiles = stack.clone();
    view! {
        <section class="card" data-testid="compose-model">
            <div class="card-head">
                <h2>"Compose model"</h2>
                <ActionForm action=show attr:class="inline">
                    <input type="hidden" name="stack" value=stack />
                    <button class="button secondary" type="submit" data-testid="show-compose-model">"Show"</button>
                </ActionForm>
            </div>
            <p class="muted">
                "What Slipway runs: the compose file with its variables, env files, defaults and active profiles applied, in the long syntax "
                <code>"docker compose config"</code>" prints. Secrets are masked."
            </p>
            {is_admin.then(|| profiles_form(for_profiles))}
            {move || show.value().get().map(|model| match model {
                Ok(model) => view! { <pre class="log" data-testid="compose-model-text">{model}</pre> }.into_any(),
                Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}
