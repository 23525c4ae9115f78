//! Approvals: a gated run (a rollback, a restore, and where a stack's policy says so a
//! deploy, update or migrate) is requested with a reason, shows exactly what will happen,
//! and starts by itself once enough other people have approved it with their password.
//! The approval is bound to a digest of what it covers; if any of that changes before the
//! run starts, the approval is void.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::components::Table;
use crate::errors::UserFacing;
use crate::runs::{status_enum, Operation, RunOptions};

#[cfg(feature = "ssr")]
pub mod plan;
#[cfg(feature = "ssr")]
pub mod service;

status_enum! {
    /// Where an approval request stands.
    ApprovalStatus {
        /// Waiting for decisions.
        Waiting => "waiting",
        /// Approved by enough people; its run starts as soon as the stack is free.
        Approved => "approved",
        /// Its run started (the run consumed it).
        Executed => "executed",
        Rejected => "rejected",
        /// Not decided in time.
        Expired => "expired",
        /// Something it covered changed before its run started.
        Void => "void",
    }
}

/// One service's image now and after the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageChange {
    pub service: String,
    pub current: String,
    pub target: String,
}

/// What an approved run will do, shown to whoever decides and stored with the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPlan {
    /// What the run acts on, in sentences (the backup, its age and state, what is lost).
    pub facts: Vec<String>,
    pub images: Vec<ImageChange>,
    /// What the decider should weigh (a schema newer than the images, an unverified backup).
    pub warnings: Vec<String>,
    /// The run's steps, as its page will list them.
    pub steps: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub user_name: String,
    /// `approved` or `rejected`.
    pub decision: String,
    pub comment: String,
    pub decided_at: String,
}

/// An approval request and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub stack: String,
    pub operation: Operation,
    pub target: String,
    pub options: RunOptions,
    pub reason: String,
    pub requested_by: String,
    pub status: ApprovalStatus,
    /// Why it is void or expired; empty otherwise.
    pub status_note: String,
    /// How many approvals it needs.
    pub required: i64,
    pub plan: ApprovalPlan,
    pub digest: String,
    pub created_at: String,
    pub expires_at: String,
    /// The run it started, once it has.
    pub run_id: String,
    pub decisions: Vec<Decision>,
    /// Why an admin approved their own emergency request (break glass); empty otherwise.
    #[serde(default)]
    pub break_glass: String,
    /// Who acknowledged the broken glass afterwards, and when; empty until someone has.
    #[serde(default)]
    pub acknowledged_by: String,
    #[serde(default)]
    pub acknowledged_at: String,
    /// Whether the caller may decide it now (an approver who is not its requester).
    #[serde(default)]
    pub can_decide: bool,
    /// Whether the caller may approve it alone: an admin's own emergency request.
    #[serde(default)]
    pub can_break_glass: bool,
    /// Whether the caller may acknowledge its broken glass (another approver).
    #[serde(default)]
    pub can_acknowledge: bool,
}

impl Approval {
    pub fn approvals(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.decision == "approved")
            .count()
    }

    /// Whether the glass was broken and nobody has acknowledged it yet.
    pub fn flagged(&self) -> bool {
        !self.break_glass.is_empty() && self.acknowledged_by.is_empty()
    }

    /// `rollback portal to the images of run 1f…`.
    pub fn title(&self) -> String {
        let what = match self.operation {
            Operation::Rollback if self.options.emergency => format!(
                " (EMERGENCY) restoring backup {} and the images of run {}",
                short(&self.options.backup),
                short(&self.target)
            ),
            Operation::Rollback => format!(" to the images of run {}", short(&self.target)),
            Operation::Restore => format!(" of backup {}", short(&self.target)),
            _ => String::new(),
        };
        format!("{} {}{what}", self.operation, self.stack)
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A stack's approval policy (admins set it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Approvals a request needs.
    pub required: i64,
    /// Minutes a request waits before it expires.
    pub expires_minutes: i64,
    /// Deploy, update and migrate need an approval too.
    pub gate_changes: bool,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            required: 1,
            expires_minutes: 60,
            gate_changes: false,
        }
    }
}

/// An earlier run whose recorded images a rollback can go back to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackTarget {
    pub run_id: String,
    pub operation: Operation,
    pub finished_at: String,
    /// `backend 1.0.0 (ab12…), frontend …`.
    pub images: String,
    /// The last-known-good before the current images: the default choice.
    pub suggested: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("There is no approval {0}.")]
    NotFound(String),
    /// A request or decision that cannot be made; the message says why.
    #[error("{0}")]
    Refused(String),
    #[error("The password is wrong, or the account is locked for a while.")]
    WrongPassword,
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl UserFacing for ApprovalError {
    fn status(&self) -> u16 {
        match self {
            ApprovalError::Auth(error) => error.status(),
            ApprovalError::NotFound(_) => 404,
            ApprovalError::Refused(_) => 409,
            ApprovalError::WrongPassword => 401,
            ApprovalError::Run(error) => error.status(),
            ApprovalError::Unavailable | ApprovalError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(ApprovalError);

crate::store_unavailable!(ApprovalError, "approvals");

/// Any of this domain's failures as the browser sees it (status and all).
#[cfg(feature = "ssr")]
fn refuse(error: impl Into<ApprovalError>) -> ApprovalError {
    crate::errors::reject(error.into())
}

/// The caller of a server function that only reads (a page asking again does not count as
/// the person's activity).
#[cfg(feature = "ssr")]
async fn reader(role: crate::auth::Role) -> Result<crate::auth::guard::Authorized, ApprovalError> {
    crate::auth::guard::authorized_for(role, crate::auth::service::Activity::Background)
        .await
        .map_err(refuse)
}

/// A hash of the caller's session id, to tell a decision from the session that requested.
#[cfg(feature = "ssr")]
async fn session_mark() -> String {
    use sha2::{Digest, Sha256};
    match crate::auth::guard::console_and_session().await {
        Ok((_, session)) => session
            .id()
            .map(|id| hex::encode(Sha256::digest(id.to_string())))
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Requests a gated run; operators and up. Returns the approval's id.
#[server(prefix = "/api", endpoint = "request_approval")]
pub async fn request_approval(
    stack: String,
    operation: Operation,
    #[server(default)] target: String,
    #[server(default)] force: bool,
    #[server(default)] recorded_images: bool,
    #[server(default)] undo_migrations: bool,
    reason: String,
) -> Result<String, ApprovalError> {
    let operator = crate::auth::guard::authorized(crate::auth::Role::Operator)
        .await
        .map_err(refuse)?;
    let request = crate::runs::RunRequest {
        operation,
        target,
        options: RunOptions {
            force,
            recorded_images,
            undo_migrations,
            ..RunOptions::default()
        },
    };
    request_as(&operator, request, &stack, &reason).await
}

/// Requests an emergency rollback of `stack`; operators and up. The console chooses what it
/// does — the newest verified backup, the last-known-good images — and shows it in the plan.
#[server(prefix = "/api", endpoint = "request_emergency")]
pub async fn request_emergency(stack: String, reason: String) -> Result<String, ApprovalError> {
    let operator = crate::auth::guard::authorized(crate::auth::Role::Operator)
        .await
        .map_err(refuse)?;
    let engine = console_engine(&operator)?;
    let request = plan::emergency(&operator.console.store, &engine, &stack)
        .await
        .map_err(refuse)?;
    request_as(&operator, request, &stack, &reason).await
}

/// The console's engine, or why it cannot be reached.
#[cfg(feature = "ssr")]
fn console_engine(
    caller: &crate::auth::guard::Authorized,
) -> Result<crate::stacks::engine::Engine, ApprovalError> {
    caller
        .console
        .engine
        .clone()
        .map_err(|error| refuse(ApprovalError::Run(error.into())))
}

/// Records `request` for the caller; the approval's id.
#[cfg(feature = "ssr")]
pub(crate) async fn request_as(
    operator: &crate::auth::guard::Authorized,
    request: crate::runs::RunRequest,
    stack: &str,
    reason: &str,
) -> Result<String, ApprovalError> {
    let engine = console_engine(operator)?;
    let requester = service::Person {
        user_id: operator.user.id.clone(),
        session: session_mark().await,
        actor: operator.actor.clone(),
    };
    service::request(
        &operator.console.store,
        &engine,
        &requester,
        stack,
        request,
        reason,
    )
    .await
    .map(|approval| approval.id)
    .map_err(refuse)
}

/// The caller, an approver or admin, proved again by their password (a wrong one records
/// nothing but an audit line, and counts like a failed sign-in).
#[cfg(feature = "ssr")]
async fn approver_with_password(
    password: String,
) -> Result<(crate::auth::guard::Authorized, service::Person), ApprovalError> {
    let approver = crate::auth::guard::authorized(crate::auth::Role::Approver)
        .await
        .map_err(refuse)?;
    let client = crate::auth::guard::client_addr().await;
    crate::auth::service::check_password(
        &approver.console.store,
        &approver.user.name,
        password,
        &client,
        "approval.password_failed",
    )
    .await
    .map_err(|error| {
        refuse(match error {
            AuthError::SignInFailed => ApprovalError::WrongPassword,
            other => other.into(),
        })
    })?;
    let person = service::Person {
        user_id: approver.user.id.clone(),
        session: session_mark().await,
        actor: approver.actor.clone(),
    };
    Ok((approver, person))
}

/// Approves or rejects a request; approvers and admins who did not request it, with their
/// password. The last approval it needs starts its run. With `break_glass` an admin
/// approves their own emergency request alone, saying why in the comment.
#[server(prefix = "/api", endpoint = "decide_approval")]
pub async fn decide_approval(
    id: String,
    decision: String,
    #[server(default)] comment: String,
    #[server(default)] break_glass: bool,
    password: String,
) -> Result<ApprovalStatus, ApprovalError> {
    let (approver, decider) = approver_with_password(password).await?;
    let store = &approver.console.store;
    let approve = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(refuse(ApprovalError::Refused(format!(
                "unknown decision {other:?}: approve or reject"
            ))))
        }
    };
    let status = service::decide(store, &decider, &id, (approve, break_glass), comment.trim())
        .await
        .map_err(refuse)?;
    if status == ApprovalStatus::Approved {
        service::start_approved(&approver.console, &id)
            .await
            .map_err(refuse)
    } else {
        Ok(status)
    }
}

/// Acknowledges an admin's broken glass: another approver has looked at it. With the
/// password, like a decision.
#[server(prefix = "/api", endpoint = "acknowledge_approval")]
pub async fn acknowledge_approval(
    id: String,
    #[server(default)] comment: String,
    password: String,
) -> Result<(), ApprovalError> {
    let (approver, person) = approver_with_password(password).await?;
    service::acknowledge(&approver.console.store, &person, &id, comment.trim())
        .await
        .map_err(refuse)
}

/// A broken glass that waits for acknowledgement, as every signed-in page may show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlassBroken {
    pub approval_id: String,
    pub stack: String,
    pub title: String,
    pub by: String,
    pub reason: String,
    pub run_id: String,
}

/// Requests approved by breaking the glass and not yet acknowledged, of `stack` (every
/// stack when empty); everyone signed in sees them.
#[server(prefix = "/api", endpoint = "broken_glass")]
pub async fn broken_glass(stack: String) -> Result<Vec<GlassBroken>, ApprovalError> {
    let caller = reader(crate::auth::Role::Viewer).await?;
    let list = service::unacknowledged(&caller.console.store, &stack)
        .await
        .map_err(refuse)?;
    Ok(list
        .into_iter()
        .map(|approval| GlassBroken {
            title: approval.title(),
            approval_id: approval.id,
            stack: approval.stack,
            by: approval.requested_by,
            reason: approval.break_glass,
            run_id: approval.run_id,
        })
        .collect())
}

/// Approval requests, newest first: `show` is `mine` (waiting for the caller), `requested`
/// (the caller's own), `open` (all waiting), or `closed` (decided, expired, void).
#[server(prefix = "/api", endpoint = "approvals")]
pub async fn list_approvals(show: String) -> Result<Vec<Approval>, ApprovalError> {
    let caller = reader(crate::auth::Role::Operator).await?;
    let store = &caller.console.store;
    service::expire_due(store).await.map_err(refuse)?;
    let mut list = service::list(store, "").await.map_err(refuse)?;
    let session = session_mark().await;
    for approval in &mut list {
        service::permit(store, approval, &caller.user, &session).await?;
    }
    list.retain(|approval| match show.as_str() {
        "mine" => approval.can_decide || approval.can_break_glass || approval.can_acknowledge,
        "requested" => approval.requested_by == caller.actor.name,
        "closed" => !matches!(
            approval.status,
            ApprovalStatus::Waiting | ApprovalStatus::Approved
        ),
        _ => matches!(
            approval.status,
            ApprovalStatus::Waiting | ApprovalStatus::Approved
        ),
    });
    Ok(list)
}

/// One request with its plan and decisions.
#[server(prefix = "/api", endpoint = "approval")]
pub async fn get_approval(id: String) -> Result<Approval, ApprovalError> {
    let caller = reader(crate::auth::Role::Operator).await?;
    let store = &caller.console.store;
    service::expire_due(store).await.map_err(refuse)?;
    let mut approval = service::find(store, &id).await.map_err(refuse)?;
    service::permit(store, &mut approval, &caller.user, &session_mark().await).await?;
    Ok(approval)
}

/// How many requests wait for the caller's decision (0 for those who cannot decide).
#[server(prefix = "/api", endpoint = "approvals_waiting")]
pub async fn approvals_waiting() -> Result<usize, ApprovalError> {
    let caller = reader(crate::auth::Role::Viewer).await?;
    if !caller.user.role.allows(crate::auth::Role::Approver) {
        return Ok(0);
    }
    let session = session_mark().await;
    let list = service::list_for(&caller.console.store, &caller.user, &session).await?;
    Ok(list
        .iter()
        .filter(|approval| approval.can_decide || approval.can_acknowledge)
        .count())
}

/// The runs a rollback of `stack` can go back to, newest first.
#[server(prefix = "/api", endpoint = "rollback_targets")]
pub async fn rollback_targets(stack: String) -> Result<Vec<RollbackTarget>, ApprovalError> {
    let caller = reader(crate::auth::Role::Operator).await?;
    let engine = caller.console.engine.clone().ok();
    // The page's list: the engine's answer of the last second, shared by its viewers.
    let reading = engine
        .as_ref()
        .map(|engine| (engine, crate::stacks::engine::Reading::Recent));
    plan::rollback_targets(&caller.console.store, reading, &stack)
        .await
        .map_err(refuse)
}

/// The stack's approval policy; operators and up read it.
#[server(prefix = "/api", endpoint = "approval_policy")]
pub async fn get_approval_policy(stack: String) -> Result<ApprovalPolicy, ApprovalError> {
    let caller = reader(crate::auth::Role::Operator).await?;
    service::policy(&caller.console.store, &stack)
        .await
        .map_err(refuse)
}

/// Sets the stack's approval policy; admins only.
#[server(prefix = "/api", endpoint = "set_approval_policy")]
pub async fn set_approval_policy(
    stack: String,
    required: i64,
    expires_minutes: i64,
    #[server(default)] gate_changes: bool,
) -> Result<ApprovalPolicy, ApprovalError> {
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin)
        .await
        .map_err(refuse)?;
    let policy = ApprovalPolicy {
        required,
        expires_minutes,
        gate_changes,
    };
    service::set_policy(&admin.console.store, &admin.actor, &stack, &policy)
        .await
        .map_err(refuse)?;
    Ok(policy)
}

/// The approval policy of a stack, as an admin's form on its page.
#[component]
pub fn ApprovalPolicyForm(stack: String) -> impl IntoView {
    let saved = ServerAction::<SetApprovalPolicy>::new();
    let name = stack.clone();
    let policy = Resource::new(
        move || (name.clone(), saved.version().get()),
        |(stack, _)| get_approval_policy(stack),
    );
    view! {
        <section class="card" data-testid="approval-policy">
            <h2>"Approvals"</h2>
            <Transition fallback=|| ()>
                {move || {
                    let stack = stack.clone();
                    Suspend::new(async move {
                        policy.await.map(|policy| view! {
                            <ActionForm action=saved attr:class="form-row">
                                <input type="hidden" name="stack" value=stack />
                                <label class="field">"Approvals per request" <input name="required" type="number" min="1" max="10" value=policy.required /></label>
                                <label class="field">"Expire after (minutes)" <input name="expires_minutes" type="number" min="5" value=policy.expires_minutes /></label>
                                <label class="field check"><input name="gate_changes" type="checkbox" value="true" checked=policy.gate_changes />" Deploy, update and migrate need one too"</label>
                                <button class="button secondary" type="submit" data-testid="save-approval-policy">"Save"</button>
                            </ActionForm>
                        }).map_err(|error| error.to_string())
                    })
                }}
            </Transition>
            {move || saved.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
    }
}

/// How often the approval pages ask again.
const REFRESH: std::time::Duration = std::time::Duration::from_secs(3);

/// The count of requests waiting for the signed-in approver, for the navigation.
#[component]
pub fn WaitingBadge() -> impl IntoView {
    let tick = crate::components::ticker(std::time::Duration::from_secs(10));
    let waiting = Resource::new(move || tick.get(), |_| approvals_waiting());
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match waiting.await {
                    Ok(count) if count > 0 => Some(view! { <span class="badge" data-testid="approvals-waiting">{count}</span> }),
                    _ => None,
                }
            })}
        </Transition>
    }
}

#[component]
pub fn ApprovalsPage() -> impl IntoView {
    let query = use_query_map();
    let show = move || query.with(|q| q.get("show").unwrap_or_else(|| "open".into()));
    let tick = crate::components::ticker(REFRESH);
    let list = Resource::new(
        move || (show(), tick.get()),
        |(show, _)| list_approvals(show),
    );
    let tabs = [
        ("mine", "Waiting for me"),
        ("requested", "Requested by me"),
        ("open", "All open"),
        ("closed", "Decided, expired, void"),
    ];
    view! {
        <Title text="Approvals" />
        <h1>"Approvals"</h1>
        <BrokenGlassBanner stack=String::new() />
        <p class="lead">
            "Rollbacks, restores and, where a stack asks for it, deploys wait here for someone other than the requester. "
            "Each shows exactly what will happen; the last approval starts the run."
        </p>
        <nav class="tabs">
            {tabs
                .map(|(key, label)| {
                    view! {
                        <a href=format!("/approvals?show={key}") class=move || if show() == key { "tab active" } else { "tab" }>{label}</a>
                    }
                })
                .collect_view()}
        </nav>
        <Transition fallback=|| view! { <p class="muted">"Loading approvals…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted card" data-testid="no-approvals">"Nothing here."</p> }.into_any(),
                    Ok(list) => view! { <ApprovalList list /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ApprovalList(list: Vec<Approval>) -> impl IntoView {
    view! {
        <section class="card">
            <Table testid="approvals-table" headers=&["Requested", "What", "Why", "By", "State", "Approvals", "Expires"]>
                {list
                    .into_iter()
                    .map(|approval| {
                        view! {
                            <tr data-approval=approval.id.clone() data-status=approval.status.as_str()>
                                <td class="nowrap">{approval.created_at.clone()}</td>
                                <td><a href=format!("/approvals/{}", approval.id)>{approval.title()}</a></td>
                                <td>{approval.reason.clone()}</td>
                                <td>{approval.requested_by.clone()}</td>
                                <td><span class=status_class(approval.status)>{approval.status.as_str()}</span></td>
                                <td>{format!("{} of {}", approval.approvals(), approval.required)}</td>
                                <td class="nowrap">{approval.expires_at.clone()}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </Table>
        </section>
    }
}

fn status_class(status: ApprovalStatus) -> &'static str {
    match status {
        ApprovalStatus::Approved | ApprovalStatus::Executed => "status on",
        ApprovalStatus::Waiting => "status",
        _ => "status off",
    }
}

#[component]
pub fn ApprovalPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let tick = crate::components::ticker(REFRESH);
    let decide = ServerAction::<DecideApproval>::new();
    let acknowledge = ServerAction::<AcknowledgeApproval>::new();
    let approval = Resource::new(
        move || {
            (
                id(),
                tick.get(),
                decide.version().get(),
                acknowledge.version().get(),
            )
        },
        |(id, ..)| get_approval(id),
    );
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the request…"</p> }>
            {move || Suspend::new(async move {
                match approval.await {
                    Ok(approval) => view! { <ApprovalView approval decide acknowledge /> }.into_any(),
                    Err(error) => view! { <Title text="Approval" /><p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ApprovalView(
    approval: Approval,
    decide: ServerAction<DecideApproval>,
    acknowledge: ServerAction<AcknowledgeApproval>,
) -> impl IntoView {
    let plan = approval.plan.clone();
    let decisions = approval.decisions.clone();
    let run_link = (!approval.run_id.is_empty()).then(|| {
        view! {
            <p data-testid="approval-run">"Run: " <a href=format!("/runs/{}", approval.run_id)>{approval.run_id.clone()}</a></p>
        }
    });
    let note = (!approval.status_note.is_empty())
        .then(|| view! { <p class="error" data-testid="approval-note">{approval.status_note.clone()}</p> });
    let form = approval.can_decide.then(|| {
        let id = approval.id.clone();
        view! {
            <section class="card">
                <h2>"Decide"</h2>
                <ActionForm action=decide attr:data-testid="decide-form">
                    <input type="hidden" name="id" value=id />
                    <label class="field">"Comment" <input name="comment" /></label>
                    <label class="field">"Your password" <input name="password" type="password" required autocomplete="current-password" /></label>
                    <div class="actions">
                        <button class="button" type="submit" name="decision" value="approve" data-testid="approve">"Approve"</button>
                        <button class="button secondary" type="submit" name="decision" value="reject" data-testid="reject">"Reject"</button>
                    </div>
                </ActionForm>
                {move || decide.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
            </section>
        }
    });
    let glass = (!approval.break_glass.is_empty()).then(|| {
        let state = if approval.acknowledged_by.is_empty() {
            "Not yet acknowledged by another approver.".to_owned()
        } else {
            format!("Acknowledged by {} at {}.", approval.acknowledged_by, approval.acknowledged_at)
        };
        let id = approval.id.clone();
        let form = approval.can_acknowledge.then(|| view! {
            <ActionForm action=acknowledge attr:data-testid="acknowledge-form">
                <input type="hidden" name="id" value=id />
                <label class="field">"Comment" <input name="comment" /></label>
                <label class="field">"Your password" <input name="password" type="password" required autocomplete="current-password" /></label>
                <button class="button" type="submit" data-testid="acknowledge">"Acknowledge"</button>
            </ActionForm>
            {move || acknowledge.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        });
        view! {
            <section class="card flagged" data-testid="break-glass">
                <h2>"Break glass"</h2>
                <p>{format!("{} approved their own emergency request: “{}”. ", approval.requested_by, approval.break_glass)}{state}</p>
                {form}
            </section>
        }
    });
    let id = approval.id.clone();
    let break_glass_form = approval.can_break_glass.then(|| view! {
        <section class="card flagged">
            <h2>"Break glass"</h2>
            <p>"As an admin you may approve your own emergency request alone. It is flagged on the Approvals page and the stack's page until another approver acknowledges it."</p>
            <ActionForm action=decide attr:data-testid="break-glass-form">
                <input type="hidden" name="id" value=id />
                <input type="hidden" name="decision" value="approve" />
                <input type="hidden" name="break_glass" value="true" />
                <label class="field">"Why (at least 20 characters)" <input name="comment" required minlength="20" data-testid="break-glass-reason" /></label>
                <label class="field">"Your password" <input name="password" type="password" required autocomplete="current-password" /></label>
                <button class="button danger" type="submit" data-testid="break-glass">"Break the glass and approve"</button>
            </ActionForm>
            {move || decide.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
    });
    view! {
        <Title text=approval.title() />
        <h1>{approval.title()}</h1>
        <p class="lead" data-testid="approval-status" data-status=approval.status.as_str()>
            <span class=status_class(approval.status)>{approval.status.as_str()}</span>
            {format!(
                " · requested by {} at {} · {} of {} approvals · expires {}",
                approval.requested_by,
                approval.created_at,
                approval.approvals(),
                approval.required,
                approval.expires_at
            )}
        </p>
        {note}
        {run_link}
        <section class="card">
            <h2>"Why"</h2>
            <p data-testid="approval-reason">{approval.reason.clone()}</p>
            <h2>"What will happen"</h2>
            <ul data-testid="approval-facts">{plan.facts.into_iter().map(|fact| view! { <li>{fact}</li> }).collect_view()}</ul>
            {(!plan.warnings.is_empty()).then(|| view! {
                <ul class="warnings" data-testid="approval-warnings">
                    {plan.warnings.clone().into_iter().map(|warning| view! { <li class="error">{warning}</li> }).collect_view()}
                </ul>
            })}
            {(!plan.images.is_empty()).then(|| view! {
                <Table testid="approval-images" headers=&["Service", "Now", "After"]>
                    {plan.images.clone().into_iter().map(|change| view! {
                        <tr><td>{change.service}</td><td><code>{change.current}</code></td><td><code>{change.target}</code></td></tr>
                    }).collect_view()}
                </Table>
            })}
            <h2>"Steps"</h2>
            <ol data-testid="approval-steps">{plan.steps.into_iter().map(|step| view! { <li>{step}</li> }).collect_view()}</ol>
            <p class="muted">"Bound to digest " <code>{approval.digest.chars().take(16).collect::<String>()}</code> ": if what it covers changes before the run starts, the approval is void."</p>
        </section>
        <section class="card">
            <h2>"Decisions"</h2>
            {if decisions.is_empty() {
                view! { <p class="muted">"None yet."</p> }.into_any()
            } else {
                view! {
                    <ul data-testid="approval-decisions">
                        {decisions.into_iter().map(|d| view! {
                            <li>{format!("{} {} at {}", d.user_name, d.decision, d.decided_at)}{(!d.comment.is_empty()).then(|| format!(": {}", d.comment))}</li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
        {glass}
        {form}
        {break_glass_form}
    }
}

/// Broken glass nobody has acknowledged yet, of `stack` (every stack when empty): a banner
/// that stays until another approver acknowledges it.
#[component]
pub fn BrokenGlassBanner(#[prop(into)] stack: Signal<String>) -> impl IntoView {
    let tick = crate::components::ticker(REFRESH);
    let list = Resource::new(
        move || (stack.get(), tick.get()),
        |(stack, _)| broken_glass(stack),
    );
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                list.await.ok().filter(|list| !list.is_empty()).map(|list| view! {
                    <section class="card flagged" data-testid="broken-glass">
                        <h2>"Break glass, not yet acknowledged"</h2>
                        <ul>
                            {list.into_iter().map(|glass| view! {
                                <li>
                                    <a href=format!("/approvals/{}", glass.approval_id)>{glass.title}</a>
                                    {format!(": {} approved their own request — “{}”", glass.by, glass.reason)}
                                </li>
                            }).collect_view()}
                        </ul>
                    </section>
                })
            })}
        </Transition>
    }
}

/// A rollback request from the stack's page: which earlier run's images, and why.
#[component]
pub fn RollbackForm(stack: String) -> impl IntoView {
    let request = ServerAction::<RequestApproval>::new();
    let emergency = ServerAction::<RequestEmergency>::new();
    Effect::new(move |_| {
        let requested = request.value().get().or_else(|| emergency.value().get());
        if let Some(Ok(id)) = requested {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/approvals/{id}"), Default::default());
        }
    });
    let name = stack.clone();
    let name_for_emergency = stack.clone();
    let targets = Resource::new(move || name.clone(), rollback_targets);
    view! {
        <section class="card" data-testid="rollback">
            <h2>"Roll back"</h2>
            <Transition fallback=|| view! { <p class="muted">"Looking for earlier runs…"</p> }>
                {move || {
                    let stack = stack.clone();
                    Suspend::new(async move {
                        match targets.await {
                            Ok(list) if list.is_empty() => view! { <p class="muted">"No earlier run recorded images to roll back to."</p> }.into_any(),
                            Ok(list) => view! {
                                <ActionForm action=request attr:class="form-row">
                                    <input type="hidden" name="stack" value=stack />
                                    <input type="hidden" name="operation" value="rollback" />
                                    <label class="field">
                                        "To the images of"
                                        <select name="target" data-testid="rollback-target">
                                            {list.into_iter().map(|target| view! {
                                                <option value=target.run_id.clone() selected=target.suggested>
                                                    {format!("{} {} at {}: {}", target.operation, short(&target.run_id), target.finished_at, target.images)}
                                                </option>
                                            }).collect_view()}
                                        </select>
                                    </label>
                                    <label class="check"><input type="checkbox" name="undo_migrations" value="true" data-testid="rollback-undo-migrations" />" Also undo the migrations applied since (the app stops)"</label>
                                    <label class="field">"Why" <input name="reason" required data-testid="rollback-reason" /></label>
                                    <button class="button" type="submit" data-testid="request-rollback">"Request the rollback"</button>
                                </ActionForm>
                            }.into_any(),
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        }
                    })
                }}
            </Transition>
            <details class="emergency">
                <summary data-testid="emergency-open">"Emergency rollback…"</summary>
                <p>"Stops the app and the edge, backs up the database as it is, restores the newest verified backup and starts the last-known-good images. An admin may approve their own request by breaking the glass."</p>
                <ActionForm action=emergency attr:class="form-row">
                    <input type="hidden" name="stack" value=name_for_emergency />
                    <label class="field">"Why" <input name="reason" required data-testid="emergency-reason" /></label>
                    <button class="button danger" type="submit" data-testid="request-emergency">"Request the emergency rollback"</button>
                </ActionForm>
                {move || emergency.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
            </details>
            {move || request.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </section>
    }
}

/// A restore request from the Backups page.
#[component]
pub fn RestoreRequestForm(stack: String, backup: String, verified: bool) -> impl IntoView {
    let request = ServerAction::<RequestApproval>::new();
    Effect::new(move |_| {
        if let Some(Ok(id)) = request.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/approvals/{id}"), Default::default());
        }
    });
    view! {
        <details class="restore">
            <summary data-testid=format!("restore-{backup}")>"Restore…"</summary>
            <ActionForm action=request>
                <input type="hidden" name="stack" value=stack />
                <input type="hidden" name="operation" value="restore" />
                <input type="hidden" name="target" value=backup.clone() />
                <label class="check"><input type="checkbox" name="recorded_images" value="true" />" Start the app on the images recorded with it"</label>
                {(!verified).then(|| view! {
                    <label class="check"><input type="checkbox" name="force" value="true" />" Restore it although no drill has verified it"</label>
                })}
                <label class="field">"Why" <input name="reason" required /></label>
                <label class="check"><input type="checkbox" required />" The live data since this backup is replaced"</label>
                <button class="button" type="submit" data-testid=format!("restore-run-{backup}")>"Request the restore"</button>
            </ActionForm>
            {move || request.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        </details>
    }
}
