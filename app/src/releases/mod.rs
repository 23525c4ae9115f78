//! Releases: what a team ships on a stack — a version, the env variables it sets, the run it
//! starts — planned for a time T-0 with an owner, behind a checklist that gates it. Manual
//! items are ticked by a person of the item's role; automatic ones are evaluated by the
//! console with their evidence, again when the release ships. Shipping writes the settings to
//! the env file and starts the release's run; the release follows the run's outcome.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, Role};
use crate::components::Table;
use crate::errors::UserFacing;
use crate::runs::{status_enum, Operation};

#[cfg(feature = "ssr")]
pub mod calendar;
#[cfg(feature = "ssr")]
pub mod checks;
#[cfg(feature = "ssr")]
pub mod service;
#[cfg(feature = "ssr")]
pub mod templates;
pub mod timeline;
#[cfg(feature = "ssr")]
pub mod windows;

/// A stack's release policy (admins set it): changes only through releases, and the deploy
/// window in which they run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePolicy {
    /// Deploy, update and migrate run only as a release's run.
    pub releases_only: bool,
    /// IANA name; UTC when empty.
    pub time_zone: String,
    /// `mon-fri`, `mon,wed`; every day when empty.
    pub days: String,
    /// `09:00-17:00`; all day when empty.
    pub hours: String,
    /// One per line: `2026-12-20 to 2027-01-02 holidays` (times may follow the dates).
    pub freezes: String,
    /// The address the stack is served at (`https://portal.example.com`): a release checks
    /// that CORS_ORIGIN names it.
    #[serde(default)]
    pub public_url: String,
}

status_enum! {
    /// Where a release stands.
    ReleaseState {
        /// Planned; some required item does not pass yet.
        Planned => "planned",
        /// Every required item passes: it may ship (never stored: read from its items).
        Ready => "ready",
        /// Its run is under way.
        Running => "running",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl ReleaseState {
    /// Still to ship: its checklist can change.
    pub fn is_open(self) -> bool {
        matches!(self, ReleaseState::Planned | ReleaseState::Ready)
    }
}

status_enum! {
    /// Where a checklist item stands.
    ItemState {
        Open => "open",
        Pass => "pass",
        Fail => "fail",
    }
}

/// One item of a release's checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub key: String,
    pub section: String,
    pub title: String,
    /// Evaluated by the console rather than ticked.
    pub automatic: bool,
    pub required: bool,
    /// The least role that ticks it.
    pub role: Role,
    pub state: ItemState,
    /// What the console saw (automatic items).
    pub evidence: String,
    /// Who ticked it, or `slipway` for an evaluation, and when.
    pub checked_by: String,
    pub checked_at: String,
    pub note: String,
    /// Whether the caller may tick it now.
    #[serde(default)]
    pub can_tick: bool,
}

status_enum! {
    /// Where a milestone of the timeline stands.
    MilestoneState {
        Due => "due",
        /// Its planned time has passed and it is neither done nor skipped.
        Overdue => "overdue",
        Done => "done",
        Skipped => "skipped",
    }
}

/// One milestone of a release's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    pub key: String,
    pub offset_minutes: i64,
    pub action: String,
    /// The owning role: the least role that marks it.
    pub role: Role,
    pub notes: String,
    /// T-0 plus the offset.
    pub planned_at: String,
    pub state: MilestoneState,
    /// Who marked it (`slipway` for evidence), when, and what showed it.
    pub by: String,
    pub at: String,
    pub evidence: String,
    /// Why it was skipped.
    pub reason: String,
    /// Ticked from evidence rather than by a person.
    pub automatic: bool,
    #[serde(default)]
    pub can_mark: bool,
}

/// One app service's image now and once the release shipped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetImage {
    pub service: String,
    pub current: String,
    pub target: String,
    /// Whether the target image is on the engine (or is built from a context).
    pub present: bool,
}

/// What shipping would do, described when the page asks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePlan {
    /// The run it starts, in words.
    pub run: String,
    pub images: Vec<TargetImage>,
    /// Why the plan cannot be described (a compose file that does not read).
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub stack: String,
    pub version: String,
    /// `VAR=VALUE` written to the env file when it ships.
    pub sets: Vec<(String, String)>,
    pub operation: Operation,
    /// T-0.
    pub planned_at: String,
    pub owner: String,
    pub notes: String,
    pub state: ReleaseState,
    /// The run that shipped it, once it has.
    pub run_id: String,
    pub created_by: String,
    pub created_at: String,
    pub items: Vec<ChecklistItem>,
    #[serde(default)]
    pub timeline: Vec<Milestone>,
    /// When the release was read: where the timeline draws "now".
    #[serde(default)]
    pub now: String,
    #[serde(default)]
    pub plan: ReleasePlan,
    /// Whether the caller may ship it (the gate decides whether it goes).
    #[serde(default)]
    pub can_ship: bool,
    /// Why T-0 falls outside the stack's deploy window (empty when it does not).
    #[serde(default)]
    pub window_note: String,
}

impl Release {
    /// The settings it writes, as `VAR=VALUE, …`.
    pub fn sets_text(&self) -> String {
        self.sets
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The required items that do not pass, by title: what keeps the gate closed.
    pub fn closed_items(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|item| item.required && item.state != ItemState::Pass)
            .map(|item| format!("“{}” is {}", item.title, item.state))
            .collect()
    }

    pub fn title(&self) -> String {
        format!("{} {}", self.stack, self.version)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("There is no release {0}.")]
    NotFound(String),
    /// A request that cannot be done as asked; the message says why.
    #[error("{0}")]
    Refused(String),
    /// The checklist does not let the release ship; the message names the items.
    #[error("The gate is closed: {0}")]
    GateClosed(String),
    #[error(transparent)]
    Stack(#[from] crate::stacks::StackError),
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl UserFacing for ReleaseError {
    fn status(&self) -> u16 {
        match self {
            ReleaseError::Auth(error) => error.status(),
            ReleaseError::NotFound(_) => 404,
            ReleaseError::Refused(_) => 422,
            ReleaseError::GateClosed(_) => 409,
            ReleaseError::Stack(error) => error.status(),
            ReleaseError::Run(error) => error.status(),
            ReleaseError::Unavailable | ReleaseError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(ReleaseError);

crate::store_unavailable!(ReleaseError, "releases");

#[cfg(feature = "ssr")]
fn refuse(error: impl Into<ReleaseError>) -> ReleaseError {
    crate::errors::reject(error.into())
}

#[cfg(feature = "ssr")]
async fn caller(role: Role) -> Result<crate::auth::guard::Authorized, ReleaseError> {
    crate::auth::guard::authorized(role).await.map_err(refuse)
}

#[cfg(feature = "ssr")]
fn engine_of(
    caller: &crate::auth::guard::Authorized,
) -> Result<crate::stacks::engine::Engine, ReleaseError> {
    caller.console.engine.clone().map_err(refuse)
}

/// Every release, newest planned first; everyone signed in reads them.
#[server(prefix = "/api", endpoint = "releases")]
pub async fn releases() -> Result<Vec<Release>, ReleaseError> {
    let reader = crate::auth::guard::authorized_for(
        Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(refuse)?;
    service::list(&reader.console.store, "")
        .await
        .map_err(refuse)
}

/// One release with its checklist and what shipping it would do now.
#[server(prefix = "/api", endpoint = "release")]
pub async fn get_release(id: String) -> Result<Release, ReleaseError> {
    let reader = crate::auth::guard::authorized_for(
        Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(refuse)?;
    let store = &reader.console.store;
    let mut release = service::find(store, &id).await.map_err(refuse)?;
    if let Ok(engine) = reader.console.engine.clone() {
        release.plan = service::plan(store, &engine, &release)
            .await
            .map_err(refuse)?;
    }
    service::permit(&mut release, &reader.user);
    Ok(release)
}

/// Plans a release; operators and up. `sets` holds `VAR=VALUE` lines; `planned_at` a time
/// (UTC unless it says otherwise). Returns its id.
#[server(prefix = "/api", endpoint = "create_release")]
pub async fn create_release(
    stack: String,
    version: String,
    #[server(default)] sets: String,
    #[server(default)] operation: String,
    planned_at: String,
    #[server(default)] owner: String,
    #[server(default)] notes: String,
) -> Result<String, ReleaseError> {
    let operator = caller(Role::Operator).await?;
    let operation = if operation.is_empty() {
        Operation::Update
    } else {
        operation
            .parse()
            .map_err(|error: String| refuse(ReleaseError::Refused(error)))?
    };
    let new = service::NewRelease {
        stack,
        version,
        sets: service::parse_sets(&sets).map_err(refuse)?,
        operation,
        planned_at: service::parse_time(&planned_at).map_err(refuse)?,
        owner,
        notes,
    };
    service::create(&operator.console.store, &operator.actor, new)
        .await
        .map(|release| release.id)
        .map_err(refuse)
}

/// Ticks (or, with `ticked` false, unticks) a manual item; a person of the item's role.
#[server(prefix = "/api", endpoint = "tick_release_item")]
pub async fn tick_release_item(
    release: String,
    item: String,
    #[server(default)] ticked: bool,
    #[server(default)] note: String,
) -> Result<(), ReleaseError> {
    let person = caller(Role::Operator).await?;
    service::tick(
        &person.console.store,
        &person.user,
        &person.actor,
        (&release, &item),
        ticked,
        &note,
    )
    .await
    .map(|_| ())
    .map_err(refuse)
}

/// Marks a milestone `done`, `skipped` (with a reason) or `due` again; a person of its role.
#[server(prefix = "/api", endpoint = "mark_milestone")]
pub async fn mark_milestone(
    release: String,
    milestone: String,
    state: MilestoneState,
    #[server(default)] reason: String,
) -> Result<(), ReleaseError> {
    let person = caller(Role::Operator).await?;
    service::mark(
        &person.console.store,
        (&person.user, &person.actor),
        (&release, &milestone),
        state,
        &reason,
    )
    .await
    .map(|_| ())
    .map_err(refuse)
}

/// Evaluates the release's automatic items again; operators and up.
#[server(prefix = "/api", endpoint = "check_release")]
pub async fn check_release(id: String) -> Result<(), ReleaseError> {
    let operator = caller(Role::Operator).await?;
    let engine = engine_of(&operator)?;
    service::check(
        &operator.console.store,
        &engine,
        &operator.console.data_dir,
        &id,
    )
    .await
    .map(|_| ())
    .map_err(refuse)
}

/// What shipping a release started: its run, or the approval it waits for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShipAnswer {
    Run(String),
    Approval(String),
}

/// Ships the release when its gate is open; operators and up. Where the stack gates changes
/// behind approvals, or the run falls outside the deploy window (`override_reason` says why
/// it cannot wait), an approval is requested instead and the run starts once it is approved.
#[server(prefix = "/api", endpoint = "ship_release")]
pub async fn ship_release(
    id: String,
    #[server(default)] override_reason: String,
) -> Result<ShipAnswer, ReleaseError> {
    let operator = caller(Role::Operator).await?;
    let engine = engine_of(&operator)?;
    let console = &operator.console;
    let shipped = service::ship(
        (&console.store, &engine, &console.data_dir),
        &operator.actor,
        (&id, &override_reason),
        false,
    )
    .await
    .map_err(refuse)?;
    match shipped {
        service::Shipped::Started(handle, stack) => {
            let run = handle.run.id.clone();
            operator
                .console
                .runner
                .start(*handle, engine, stack)
                .map_err(|error| refuse(ReleaseError::from(error)))?;
            Ok(ShipAnswer::Run(run))
        }
        service::Shipped::NeedsApproval(request) => {
            let release = service::find(&console.store, &id).await.map_err(refuse)?;
            let reason = if override_reason.trim().is_empty() {
                format!("ship release {}", release.title())
            } else {
                override_reason.trim().to_owned()
            };
            crate::approvals::request_as(&operator, request, &release.stack, &reason)
                .await
                .map(ShipAnswer::Approval)
                .map_err(|error| refuse(ReleaseError::Refused(error.to_string())))
        }
    }
}

/// Makes the caller's calendar link token (an earlier one stops working); everyone signed in.
#[server(prefix = "/api", endpoint = "make_calendar_link")]
pub async fn make_calendar_link() -> Result<String, ReleaseError> {
    let person = caller(Role::Viewer).await?;
    calendar::issue(&person.console.store, &person.actor, &person.user.id)
        .await
        .map_err(refuse)
}

/// Revokes a user's calendar link; admins only.
#[server(prefix = "/api", endpoint = "revoke_calendar_link")]
pub async fn revoke_calendar_link(user: String) -> Result<bool, ReleaseError> {
    let admin = caller(Role::Admin).await?;
    let found = crate::auth::users::find_by_name(&admin.console.store, &user)
        .await
        .map_err(refuse)?
        .ok_or_else(|| refuse(ReleaseError::Refused(format!("there is no user {user:?}"))))?;
    calendar::revoke(&admin.console.store, &admin.actor, &found.id)
        .await
        .map_err(refuse)
}

/// The stack's release policy; everyone signed in reads it.
#[server(prefix = "/api", endpoint = "release_policy")]
pub async fn get_release_policy(stack: String) -> Result<ReleasePolicy, ReleaseError> {
    let reader = crate::auth::guard::authorized_for(
        Role::Viewer,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(refuse)?;
    service::policy(&reader.console.store, &stack)
        .await
        .map_err(refuse)
}

/// Sets the stack's release policy; admins only.
#[server(prefix = "/api", endpoint = "set_release_policy")]
pub async fn set_release_policy(
    stack: String,
    #[server(default)] releases_only: bool,
    #[server(default)] time_zone: String,
    #[server(default)] days: String,
    #[server(default)] hours: String,
    #[server(default)] freezes: String,
    #[server(default)] public_url: String,
) -> Result<(), ReleaseError> {
    let admin = caller(Role::Admin).await?;
    let policy = ReleasePolicy {
        releases_only,
        time_zone,
        days,
        hours,
        freezes,
        public_url,
    };
    service::set_policy(&admin.console.store, &admin.actor, &stack, &policy)
        .await
        .map_err(refuse)
}

/// The Admin page's form that revokes a user's calendar link.
#[component]
pub fn CalendarRevokeForm() -> impl IntoView {
    let revoke = ServerAction::<RevokeCalendarLink>::new();
    view! {
        <section class="card">
            <h2>"Calendar links"</h2>
            <ActionForm action=revoke attr:class="form-row">
                <label class="field">"User" <input name="user" required data-testid="revoke-calendar-user" /></label>
                <button class="button secondary" type="submit" data-testid="revoke-calendar">"Revoke their calendar link"</button>
            </ActionForm>
            {move || revoke.value().get().map(|outcome| match outcome {
                Ok(true) => view! { <p data-testid="calendar-revoked">"Revoked: that link answers nothing now."</p> }.into_any(),
                Ok(false) => view! { <p class="muted">"That user had no calendar link."</p> }.into_any(),
                Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}

/// Makes the caller's calendar link and shows it for each stack with releases.
#[component]
fn CalendarLink(stacks: Vec<String>) -> impl IntoView {
    let make = ServerAction::<MakeCalendarLink>::new();
    view! {
        <section class="card">
            <h2>"Calendar"</h2>
            <p class="muted">"Each stack's releases and milestones as a calendar feed for the calendar you already use. Making a link again stops the old one; an admin can revoke it."</p>
            <ActionForm action=make>
                <button class="button secondary" type="submit" data-testid="make-calendar-link">"Make my calendar link"</button>
            </ActionForm>
            {move || {
                let stacks = stacks.clone();
                make.value().get().map(|outcome| match outcome {
                    Ok(token) => view! {
                        <ul data-testid="calendar-links">
                            {stacks.into_iter().map(|stack| {
                                let href = format!("/calendar/{stack}.ics?token={token}");
                                view! { <li><a href=href.clone()>{format!("{stack}: {href}")}</a></li> }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                })
            }}
        </section>
    }
}

/// The stack's checklist and timeline templates as text (the procedure's where it has none);
/// operators and up read them.
#[server(prefix = "/api", endpoint = "release_templates")]
pub async fn release_templates(stack: String) -> Result<(String, String), ReleaseError> {
    let reader = crate::auth::guard::authorized_for(
        Role::Operator,
        crate::auth::service::Activity::Background,
    )
    .await
    .map_err(refuse)?;
    templates::get(&reader.console.store, &stack)
        .await
        .map_err(refuse)
}

/// Sets the stack's templates (an empty one goes back to the procedure's); admins only.
#[server(prefix = "/api", endpoint = "set_release_templates")]
pub async fn set_release_templates(
    stack: String,
    #[server(default)] checklist: String,
    #[server(default)] timeline: String,
) -> Result<(), ReleaseError> {
    let admin = caller(Role::Admin).await?;
    templates::set(
        &admin.console.store,
        &admin.actor,
        &stack,
        (&checklist, &timeline),
    )
    .await
    .map_err(refuse)
}

/// The stack's release templates as an admin's form on its page: a line per item.
#[component]
pub fn ReleaseTemplateForm(stack: String) -> impl IntoView {
    let saved = ServerAction::<SetReleaseTemplates>::new();
    let name = stack.clone();
    let current = Resource::new(
        move || (name.clone(), saved.version().get()),
        |(stack, _)| release_templates(stack),
    );
    view! {
        <section class="card" data-testid="release-templates">
            <h2>"Release templates"</h2>
            <p class="muted">"Checklist: KEY | Section | Title | manual ROLE or automatic | required or optional. Timeline: KEY | T-30m | Action | ROLE or evidence | Notes. Empty: the procedure's. A release copies them when it is planned."</p>
            <Transition fallback=|| ()>
                {move || {
                    let stack = stack.clone();
                    Suspend::new(async move {
                        current.await.map(|(checklist, timeline)| view! {
                            <ActionForm action=saved>
                                <input type="hidden" name="stack" value=stack />
                                <label class="field">"Checklist" <textarea name="checklist" rows="8" class="mono">{checklist}</textarea></label>
                                <label class="field">"Timeline" <textarea name="timeline" rows="6" class="mono">{timeline}</textarea></label>
                                <button class="button secondary" type="submit" data-testid="save-release-templates">"Save"</button>
                            </ActionForm>
                        })
                    })
                }}
            </Transition>
            {move || saved.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
    }
}

/// The stack's release policy as an admin's form on its page.
#[component]
pub fn ReleasePolicyForm(stack: String) -> impl IntoView {
    let saved = ServerAction::<SetReleasePolicy>::new();
    let name = stack.clone();
    let policy = Resource::new(
        move || (name.clone(), saved.version().get()),
        |(stack, _)| get_release_policy(stack),
    );
    view! {
        <section class="card" data-testid="release-policy">
            <h2>"Releases and deploy window"</h2>
            <Transition fallback=|| ()>
                {move || {
                    let stack = stack.clone();
                    Suspend::new(async move {
                        policy.await.map(|policy| view! {
                            <ActionForm action=saved>
                                <input type="hidden" name="stack" value=stack />
                                <label class="check"><input name="releases_only" type="checkbox" value="true" checked=policy.releases_only />" Deploy, update and migrate only through releases"</label>
                                <div class="form-row">
                                    <label class="field">"Time zone" <input name="time_zone" value=policy.time_zone placeholder="UTC" /></label>
                                    <label class="field">"Days" <input name="days" value=policy.days placeholder="mon-fri" /></label>
                                    <label class="field">"Hours" <input name="hours" value=policy.hours placeholder="09:00-17:00" /></label>
                                </div>
                                <label class="field">"Public address (what CORS_ORIGIN must name)" <input name="public_url" value=policy.public_url placeholder="https://portal.example.com" /></label>
                                <label class="field">"Freezes (FROM to TO why, one per line)" <textarea name="freezes" rows="2" placeholder="2026-12-20 to 2027-01-02 holidays">{policy.freezes}</textarea></label>
                                <button class="button secondary" type="submit" data-testid="save-release-policy">"Save"</button>
                            </ActionForm>
                        })
                    })
                }}
            </Transition>
            {move || saved.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
    }
}

fn state_class(state: ReleaseState) -> &'static str {
    match state {
        ReleaseState::Ready | ReleaseState::Done => "status on",
        ReleaseState::Failed | ReleaseState::Cancelled => "status off",
        _ => "status",
    }
}

/// The Releases section: upcoming, in progress and recent releases, and the form that plans
/// one (operators and up).
#[component]
pub fn ReleasesPage() -> impl IntoView {
    let create = ServerAction::<CreateRelease>::new();
    Effect::new(move |_| {
        if let Some(Ok(id)) = create.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/releases/{id}"), Default::default());
        }
    });
    let list = Resource::new(move || create.version().get(), |_| releases());
    let can_plan =
        crate::auth::signed_in_user().is_some_and(|user| user.role.allows(Role::Operator));
    view! {
        <Title text="Releases" />
        <h1>"Releases"</h1>
        <p class="lead">"What is shipped, when and by whom, behind its checklist: the release's run starts only once every required item passes."</p>
        <Transition fallback=|| view! { <p class="muted">"Loading releases…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted card" data-testid="no-releases">"No release is planned yet."</p> }.into_any(),
                    Ok(list) => {
                        let mut stacks: Vec<String> = list.iter().map(|r| r.stack.clone()).collect();
                        stacks.sort();
                        stacks.dedup();
                        view! { <ReleaseList list /><CalendarLink stacks /> }.into_any()
                    }
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
        {can_plan.then(|| view! {
            <section class="card">
                <h2>"Plan a release"</h2>
                <ActionForm action=create attr:data-testid="plan-release">
                    <div class="form-row">
                        <label class="field">"Stack" <input name="stack" required data-testid="release-stack" /></label>
                        <label class="field">"Version" <input name="version" required data-testid="release-version" /></label>
                        <label class="field">"T-0 (UTC)" <input name="planned_at" required placeholder="2026-12-01 14:00" data-testid="release-at" /></label>
                        <label class="field">"Owner" <input name="owner" placeholder="you" /></label>
                        <label class="field">"Run"
                            <select name="operation">
                                <option value="update" selected>"update (no downtime)"</option>
                                <option value="migrate">"migrate (app stopped)"</option>
                                <option value="deploy">"deploy"</option>
                            </select>
                        </label>
                    </div>
                    <label class="field">"Sets in the env file (VAR=VALUE, one per line)" <textarea name="sets" rows="2" placeholder="PORTAL_VERSION=1.1.0" data-testid="release-sets"></textarea></label>
                    <label class="field">"Notes" <textarea name="notes" rows="2"></textarea></label>
                    <button class="button" type="submit" data-testid="create-release">"Plan it"</button>
                </ActionForm>
                {move || create.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
            </section>
        })}
    }
}

#[component]
fn ReleaseList(list: Vec<Release>) -> impl IntoView {
    let rows = |wanted: &dyn Fn(ReleaseState) -> bool| -> Vec<Release> {
        list.iter().filter(|r| wanted(r.state)).cloned().collect()
    };
    let groups = [
        ("In progress", rows(&|state| state == ReleaseState::Running)),
        ("Upcoming", rows(&ReleaseState::is_open)),
        (
            "Recent",
            rows(&|state| !state.is_open() && state != ReleaseState::Running),
        ),
    ];
    groups
        .into_iter()
        .filter(|(_, releases)| !releases.is_empty())
        .map(|(heading, releases)| {
            view! {
                <section class="card">
                    <h2>{heading}</h2>
                    <Table testid="releases-table" headers=&["T-0", "Release", "State", "Checklist", "Owner"]>
                        {releases.into_iter().map(|release| {
                            let passed = release.items.iter().filter(|i| i.state == ItemState::Pass).count();
                            view! {
                                <tr data-release=release.id.clone() data-state=release.state.as_str()>
                                    <td class="nowrap">{release.planned_at.clone()}</td>
                                    <td><a href=format!("/releases/{}", release.id)>{release.title()}</a></td>
                                    <td><span class=state_class(release.state)>{release.state.as_str()}</span></td>
                                    <td>{format!("{passed} of {} pass", release.items.len())}</td>
                                    <td>{release.owner.clone()}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </Table>
                </section>
            }
        })
        .collect_view()
}

#[component]
pub fn ReleasePage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let tick = ServerAction::<TickReleaseItem>::new();
    let check = ServerAction::<CheckRelease>::new();
    let ship = ServerAction::<ShipRelease>::new();
    let mark = ServerAction::<MarkMilestone>::new();
    let ticker = crate::components::ticker(std::time::Duration::from_secs(5));
    let release = Resource::new(
        move || {
            (
                id(),
                (tick.version().get(), check.version().get()),
                (ship.version().get(), mark.version().get()),
                ticker.get(),
            )
        },
        |(id, ..)| get_release(id),
    );
    Effect::new(move |_| {
        let target = match ship.value().get() {
            Some(Ok(ShipAnswer::Run(run))) => format!("/runs/{run}"),
            Some(Ok(ShipAnswer::Approval(id))) => format!("/approvals/{id}"),
            _ => return,
        };
        let navigate = leptos_router::hooks::use_navigate();
        navigate(&target, Default::default());
    });
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the release…"</p> }>
            {move || Suspend::new(async move {
                match release.await {
                    Ok(release) => view! { <ReleaseView release tick check ship mark /> }.into_any(),
                    Err(error) => view! { <Title text="Release" /><p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ReleaseView(
    release: Release,
    tick: ServerAction<TickReleaseItem>,
    check: ServerAction<CheckRelease>,
    ship: ServerAction<ShipRelease>,
    mark: ServerAction<MarkMilestone>,
) -> impl IntoView {
    let closed = release.closed_items();
    let timeline = view! { <Timeline release=release.clone() mark /> };
    let mut sections: Vec<(String, Vec<ChecklistItem>)> = Vec::new();
    for item in release.items.clone() {
        match sections.iter_mut().find(|(name, _)| *name == item.section) {
            Some((_, items)) => items.push(item),
            None => sections.push((item.section.clone(), vec![item])),
        }
    }
    let run_link = (!release.run_id.is_empty()).then(|| view! {
        <p data-testid="release-run">"Run: " <a href=format!("/runs/{}", release.run_id)>{release.run_id.clone()}</a></p>
    });
    let id = release.id.clone();
    let actions = release.can_ship.then(|| {
        let (id_check, id_ship) = (id.clone(), id.clone());
        let gate = if closed.is_empty() {
            view! { <p data-testid="gate" data-open="true">"The gate is open: every required item passes."</p> }.into_any()
        } else {
            view! { <p class="error" data-testid="gate" data-open="false">{format!("The gate is closed: {}.", closed.join("; "))}</p> }.into_any()
        };
        view! {
            <section class="card">
                <h2>"Ship"</h2>
                {gate}
                <div class="actions">
                    <ActionForm action=check>
                        <input type="hidden" name="id" value=id_check />
                        <button class="button secondary" type="submit" data-testid="check-release">"Check again"</button>
                    </ActionForm>
                    <ActionForm action=ship attr:class="form-row">
                        <input type="hidden" name="id" value=id_ship />
                        <input name="override_reason" placeholder="outside the window? why it cannot wait" size="32" />
                        <button class="button" type="submit" data-testid="ship-release">"Ship it"</button>
                    </ActionForm>
                </div>
                {move || ship.value().get().and_then(Result::err).or_else(|| check.value().get().and_then(Result::err)).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
            </section>
        }
    });
    let sets = if release.sets.is_empty() {
        "nothing (the compose and env files as they are)".to_owned()
    } else {
        release
            .sets
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    view! {
        <Title text=release.title() />
        <h1>{release.title()}</h1>
        <p class="lead" data-testid="release-state" data-state=release.state.as_str()>
            <span class=state_class(release.state)>{release.state.as_str()}</span>
            {format!(" · T-0 {} · owner {} · planned by {}", release.planned_at, release.owner, release.created_by)}
        </p>
        {run_link}
        {(!release.window_note.is_empty()).then(|| view! { <p class="error" data-testid="window-note">{release.window_note.clone()}</p> })}
        <section class="card">
            <h2>"Plan"</h2>
            <p>{format!("Sets {sets}; ships with {}.", release.plan.run)}</p>
            {(!release.notes.is_empty()).then(|| view! { <p class="muted">{release.notes.clone()}</p> })}
            {release.plan.problems.iter().map(|problem| view! { <p class="error">{problem.clone()}</p> }).collect_view()}
            {(!release.plan.images.is_empty()).then(|| view! {
                <Table testid="release-images" headers=&["Service", "Now", "After", "Present"]>
                    {release.plan.images.clone().into_iter().map(|image| view! {
                        <tr><td>{image.service}</td><td><code>{image.current}</code></td><td><code>{image.target}</code></td><td>{if image.present { "yes" } else { "no" }}</td></tr>
                    }).collect_view()}
                </Table>
            })}
        </section>
        {timeline}
        {(!release.run_id.is_empty()).then(|| view! { <crate::history::ReleaseRuns release=release.id.clone() /> })}
        <section class="card" data-testid="checklist">
            <h2>"Checklist"</h2>
            {sections.into_iter().map(|(section, items)| view! {
                <h3>{section}</h3>
                <ul class="checklist">
                    {items.into_iter().map(|item| view! { <ItemRow item release=id.clone() tick /> }).collect_view()}
                </ul>
            }).collect_view()}
            {move || tick.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
        {actions}
    }
}

#[component]
fn ItemRow(
    item: ChecklistItem,
    release: String,
    tick: ServerAction<TickReleaseItem>,
) -> impl IntoView {
    let mark = match item.state {
        ItemState::Pass => "✔",
        ItemState::Fail => "✘",
        ItemState::Open => "○",
    };
    let who = (!item.checked_by.is_empty())
        .then(|| format!(" — {} at {}", item.checked_by, item.checked_at));
    let kind = if item.automatic {
        "checked by the console".to_owned()
    } else {
        format!("ticked by a {} or above", item.role)
    };
    let key = item.key.clone();
    let form = item.can_tick.then(|| {
        let ticked = item.state != ItemState::Pass;
        view! {
            <ActionForm action=tick attr:class="form-row">
                <input type="hidden" name="release" value=release />
                <input type="hidden" name="item" value=key.clone() />
                <input type="hidden" name="ticked" value=ticked.to_string() />
                {ticked.then(|| view! { <input name="note" placeholder="note (optional)" size="20" /> })}
                <button class="button small secondary" type="submit" data-testid=format!("tick-{key}")>{if ticked { "Tick" } else { "Untick" }}</button>
            </ActionForm>
        }
    });
    view! {
        <li data-item=item.key.clone() data-state=item.state.as_str()>
            <span class=if item.state == ItemState::Pass { "status on" } else if item.state == ItemState::Fail { "status off" } else { "status" }>{mark}</span>
            " " {item.title.clone()}
            {(!item.required).then_some(" (optional)")}
            <span class="muted">{format!(" · {kind}")}{who}</span>
            {(!item.evidence.is_empty()).then(|| view! { <div class="muted evidence">{item.evidence.clone()}</div> })}
            {(!item.note.is_empty()).then(|| view! { <div class="muted">{format!("Note: {}", item.note)}</div> })}
            {form}
        </li>
    }
}

fn milestone_colour(state: MilestoneState) -> &'static str {
    match state {
        MilestoneState::Done => "#0f766e",
        MilestoneState::Overdue => "#b91c1c",
        MilestoneState::Skipped => "#94a3b8",
        MilestoneState::Due => "#ffffff",
    }
}

/// The timeline: a chart of planned and actual times with a line for now (SVG, drawn on the
/// server so it reads without JavaScript), and the milestones with their marks.
#[component]
fn Timeline(release: Release, mark: ServerAction<MarkMilestone>) -> impl IntoView {
    use timeline::{epoch_seconds, offset_label, position};
    const LEFT: f64 = 60.0;
    let step = if release.timeline.len() > 1 {
        780.0 / (release.timeline.len() - 1) as f64
    } else {
        0.0
    };
    let planned: Vec<i64> = release
        .timeline
        .iter()
        .map(|m| epoch_seconds(&m.planned_at).unwrap_or_default())
        .collect();
    let now_x = epoch_seconds(&release.now).map(|now| position(&planned, now, (LEFT, step)));
    let marks = release
        .timeline
        .iter()
        .enumerate()
        .map(|(index, milestone)| {
            let x = LEFT + step * index as f64;
            let actual = (milestone.state == MilestoneState::Done)
                .then(|| epoch_seconds(&milestone.at))
                .flatten()
                .map(|at| position(&planned, at, (LEFT, step)));
            view! {
                <g data-milestone=milestone.key.clone() data-state=milestone.state.as_str()>
                    <title>{format!("{} {}: {}", offset_label(milestone.offset_minutes), milestone.action, milestone.state)}</title>
                    {actual.map(|ax| view! {
                        <line x1=x y1="40" x2=ax y2="70" stroke="#0f766e" stroke-width="1" />
                        <rect x=ax - 4.0 y="66" width="8" height="8" fill="#0f766e" />
                    })}
                    <circle cx=x cy="40" r="7" fill=milestone_colour(milestone.state) stroke="#0f172a" stroke-width="1.5" />
                    <text x=x y="100" text-anchor="middle" font-size="11">{offset_label(milestone.offset_minutes)}</text>
                </g>
            }
        })
        .collect_view();
    let rows = release
        .timeline
        .iter()
        .cloned()
        .map(|milestone| view! { <MilestoneRow milestone release=release.id.clone() mark /> })
        .collect_view();
    view! {
        <section class="card" data-testid="timeline">
            <h2>"Timeline"</h2>
            <svg viewBox="0 0 900 115" width="100%" role="img" aria-label="The release's timeline: planned milestones (circles), when each was done (squares), and now (the red line)" data-testid="timeline-chart">
                <line x1="30" y1="40" x2="870" y2="40" stroke="#cbd5e1" stroke-width="2" />
                {marks}
                {now_x.map(|x| view! {
                    <line x1=x y1="10" x2=x y2="85" stroke="#b91c1c" stroke-width="2" stroke-dasharray="4 3" data-testid="timeline-now" />
                    <text x=x y="9" text-anchor="middle" font-size="10" fill="#b91c1c">"now"</text>
                })}
            </svg>
            <Table testid="timeline-table" headers=&["When", "Planned", "Action", "Owner", "State", ""]>
                {rows}
            </Table>
            {move || mark.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
    }
}

#[component]
fn MilestoneRow(
    milestone: Milestone,
    release: String,
    mark: ServerAction<MarkMilestone>,
) -> impl IntoView {
    let detail = match milestone.state {
        MilestoneState::Done if !milestone.evidence.is_empty() => format!(
            "{} ({}, {})",
            milestone.state, milestone.evidence, milestone.at
        ),
        MilestoneState::Done => format!("done by {} at {}", milestone.by, milestone.at),
        MilestoneState::Skipped => format!("skipped by {}: {}", milestone.by, milestone.reason),
        state => state.to_string(),
    };
    let key = milestone.key.clone();
    let form = milestone.can_mark.then(|| {
        let done = milestone.state != MilestoneState::Done;
        let (release_skip, key_skip) = (release.clone(), key.clone());
        view! {
            <ActionForm action=mark attr:class="form-row">
                <input type="hidden" name="release" value=release />
                <input type="hidden" name="milestone" value=key.clone() />
                <input type="hidden" name="state" value=if done { "done" } else { "due" } />
                <button class="button small secondary" type="submit" data-testid=format!("mark-{key}")>{if done { "Done" } else { "Not done" }}</button>
            </ActionForm>
            {(milestone.state != MilestoneState::Skipped).then(|| view! {
                <ActionForm action=mark attr:class="form-row">
                    <input type="hidden" name="release" value=release_skip />
                    <input type="hidden" name="milestone" value=key_skip.clone() />
                    <input type="hidden" name="state" value="skipped" />
                    <input name="reason" placeholder="why skip" size="12" required />
                    <button class="button small secondary" type="submit" data-testid=format!("skip-{key_skip}")>"Skip"</button>
                </ActionForm>
            })}
        }
    });
    view! {
        <tr data-milestone=milestone.key.clone() data-state=milestone.state.as_str()>
            <td class="nowrap">{timeline::offset_label(milestone.offset_minutes)}</td>
            <td class="nowrap">{milestone.planned_at.clone()}</td>
            <td>{milestone.action.clone()}<div class="muted">{milestone.notes.clone()}</div></td>
            <td>{if milestone.automatic { "from evidence".to_owned() } else { milestone.role.to_string() }}</td>
            <td><span class=if milestone.state == MilestoneState::Overdue { "status off" } else if milestone.state == MilestoneState::Done { "status on" } else { "status" }>{detail}</span></td>
            <td>{form}</td>
        </tr>
    }
}
