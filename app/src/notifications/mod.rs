//! Notifications: what happened, told where the team reads — Slack and Microsoft Teams
//! incoming webhooks, and a generic JSON webhook signed with HMAC-SHA256. Admins manage the
//! channels and the events each wants; a message is written to an outbox in the transaction
//! of the change it tells of (`outbox`, called by the audit trail's append) and delivered by
//! the console's sender outside every request (`sender`), with retries and a delivery log.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::components::Table;

#[cfg(feature = "ssr")]
pub mod message;
#[cfg(feature = "ssr")]
pub mod outbox;
#[cfg(feature = "ssr")]
pub mod reminders;
#[cfg(feature = "ssr")]
mod seal;
#[cfg(feature = "ssr")]
pub mod sender;
#[cfg(feature = "ssr")]
pub mod service;

/// The product a channel posts to: each gets the message in its own shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelKind {
    /// A Slack incoming webhook (or a product that takes Slack's payload: Mattermost, Rocket.Chat).
    Slack,
    /// A Microsoft Teams incoming webhook (an Adaptive Card).
    Teams,
    /// Any receiver: the message as JSON, signed (`X-Slipway-Signature`).
    Webhook,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] =
        [ChannelKind::Slack, ChannelKind::Teams, ChannelKind::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::Webhook => "webhook",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ChannelKind::Slack => "Slack (incoming webhook)",
            ChannelKind::Teams => "Microsoft Teams (incoming webhook)",
            ChannelKind::Webhook => "JSON webhook, signed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// What a channel can be told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    RunStarted,
    RunSucceeded,
    RunFailed,
    ApprovalRequested,
    ApprovalDecided,
    BackupFailed,
    /// A stack's newest backup has gone a day without a restore drill.
    BackupUnverified,
    EmergencyRollback,
    /// A change's verification failed and the change stayed.
    VerificationFailed,
    /// A change's verification failed and the stack's policy put the previous version back.
    AutomaticRollback,
    /// A release's milestone whose time has come, and one still open 15 minutes later.
    MilestoneDue,
    MilestoneOverdue,
    /// An admin's "Send test": goes to that one channel whatever it wants.
    Test,
}

impl Event {
    /// The events a channel may choose.
    pub const CHOICES: [Event; 12] = [
        Event::RunStarted,
        Event::RunSucceeded,
        Event::RunFailed,
        Event::ApprovalRequested,
        Event::ApprovalDecided,
        Event::BackupFailed,
        Event::BackupUnverified,
        Event::EmergencyRollback,
        Event::VerificationFailed,
        Event::AutomaticRollback,
        Event::MilestoneDue,
        Event::MilestoneOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::RunStarted => "run.started",
            Event::RunSucceeded => "run.succeeded",
            Event::RunFailed => "run.failed",
            Event::ApprovalRequested => "approval.requested",
            Event::ApprovalDecided => "approval.decided",
            Event::BackupFailed => "backup.failed",
            Event::BackupUnverified => "backup.unverified",
            Event::EmergencyRollback => "rollback.emergency",
            Event::VerificationFailed => "verification.failed",
            Event::AutomaticRollback => "rollback.automatic",
            Event::MilestoneDue => "release.milestone_due",
            Event::MilestoneOverdue => "release.milestone_overdue",
            Event::Test => "test",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Event::RunStarted => "Run started",
            Event::RunSucceeded => "Run succeeded",
            Event::RunFailed => "Run failed",
            Event::ApprovalRequested => "Approval requested",
            Event::ApprovalDecided => "Approval decided",
            Event::BackupFailed => "Backup or restore drill failed",
            Event::BackupUnverified => "Newest backup unproven for a day",
            Event::EmergencyRollback => "Emergency rollback done",
            Event::VerificationFailed => "Verification failed",
            Event::AutomaticRollback => "Automatic rollback done",
            Event::MilestoneDue => "Release milestone due",
            Event::MilestoneOverdue => "Release milestone overdue",
            Event::Test => "Test message",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::CHOICES
            .into_iter()
            .chain([Event::Test])
            .find(|event| event.as_str() == text)
    }
}

/// A channel as pages show it: never its address, only a hint of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: ChannelKind,
    /// Scheme, host and the address's last characters: enough to tell two apart.
    pub address_hint: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: String,
    /// Messages waiting to be sent and given up on.
    pub pending: i64,
    pub failed: i64,
}

/// One message to one channel, as its delivery log shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub title: String,
    /// `pending`, `sent` or `failed` (given up on).
    pub status: String,
    pub attempts: i64,
    /// The receiver's HTTP status of the last attempt; 0 when none answered.
    pub last_status: i64,
    pub last_error: String,
    pub created_at: String,
    pub sent_at: String,
    /// When a pending message is tried next.
    pub next_attempt_at: String,
}

/// A channel's page: the channel and its newest deliveries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelDetail {
    pub channel: Channel,
    pub deliveries: Vec<Delivery>,
}

/// A channel just added. A webhook's signing secret is shown this once: the receiver needs
/// it to verify signatures, and the console never shows it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedChannel {
    pub id: String,
    pub signing_secret: String,
}

/// Why a notification request could not be done, in words the browser may show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NotificationError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The request cannot be used; the message says which part and why.
    #[error("{0}")]
    Invalid(String),
    #[error("There is no such channel.")]
    NotFound,
    #[error("A channel named {0} exists already.")]
    Duplicate(String),
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl crate::errors::UserFacing for NotificationError {
    fn status(&self) -> u16 {
        match self {
            NotificationError::Auth(error) => error.status(),
            NotificationError::Invalid(_) => 422,
            NotificationError::NotFound => 404,
            NotificationError::Duplicate(_) => 409,
            NotificationError::Unavailable | NotificationError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(NotificationError);

crate::store_unavailable!(NotificationError, "notifications");

/// Every channel; admins only.
#[server(prefix = "/api", endpoint = "notification_channels")]
pub async fn notification_channels() -> Result<Vec<Channel>, NotificationError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    service::channels(&admin.console.store)
        .await
        .map_err(reject)
}

/// Adds a channel; admins only, audited (never with its address).
#[server(prefix = "/api", endpoint = "add_notification_channel")]
pub async fn add_notification_channel(
    name: String,
    kind: String,
    address: String,
    #[server(default)] events: Vec<String>,
) -> Result<AddedChannel, NotificationError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    let request = service::NewChannel {
        name,
        kind,
        address,
        events,
    };
    service::add(&admin.console.store, &admin.actor, &request)
        .await
        .map_err(reject)
}

/// A channel and its delivery log; admins only.
#[server(prefix = "/api", endpoint = "notification_channel")]
pub async fn notification_channel(id: String) -> Result<ChannelDetail, NotificationError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    service::detail(&admin.console.store, &id)
        .await
        .map_err(reject)
}

/// Turns a channel on or off (an off channel is sent nothing); admins only, audited.
#[server(prefix = "/api", endpoint = "set_notification_channel_enabled")]
pub async fn set_notification_channel_enabled(
    id: String,
    enabled: bool,
) -> Result<(), NotificationError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    service::set_enabled(&admin.console.store, &admin.actor, &id, enabled)
        .await
        .map_err(reject)
}

/// Removes a channel and its delivery log; admins only, audited.
#[server(prefix = "/api", endpoint = "remove_notification_channel")]
pub async fn remove_notification_channel(id: String) -> Result<(), NotificationError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    service::remove(&admin.console.store, &admin.actor, &id)
        .await
        .map_err(reject)?;
    leptos_axum::redirect("/notifications");
    Ok(())
}

/// Queues a test message for one channel; admins only, audited.
#[server(prefix = "/api", endpoint = "send_test_notification")]
pub async fn send_test_notification(id: String) -> Result<(), NotificationError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    service::send_test(&admin.console.store, &admin.actor, &id)
        .await
        .map_err(reject)
}

/// The Notifications page: the channels, and the form that adds one.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    let add = ServerAction::<AddNotificationChannel>::new();
    let channels = Resource::new(move || add.version().get(), |_| notification_channels());
    view! {
        <Title text="Notifications" />
        <h1>"Notifications"</h1>
        <p class="lead">
            "Where the console tells the team what happened. Messages leave from an outbox, outside every run and request: "
            "a receiver that is slow or down is retried with growing pauses, then given up on, and never holds up a run."
        </p>
        <section class="card">
            <h2>"Add a channel"</h2>
            <ActionForm action=add>
                <div class="form-row">
                    <label class="field">"Name" <input name="name" required autocomplete="off" data-testid="channel-name" /></label>
                    <label class="field">"Kind"
                        <select name="kind" data-testid="channel-kind">
                            {ChannelKind::ALL.iter().map(|kind| view! { <option value=kind.as_str()>{kind.label()}</option> }).collect_view()}
                        </select>
                    </label>
                    <label class="field wide">"Webhook address (kept sealed; shown back only as a hint)"
                        <input name="address" type="url" required autocomplete="off" placeholder="https://hooks.slack.com/services/…" data-testid="channel-address" />
                    </label>
                </div>
                <fieldset class="choices">
                    <legend>"Events"</legend>
                    {Event::CHOICES.iter().map(|event| view! {
                        <label class="choice">
                            <input type="checkbox" name="events[]" value=event.as_str() checked=matches!(event, Event::RunFailed | Event::EmergencyRollback | Event::BackupFailed | Event::BackupUnverified) />
                            {event.label()}
                        </label>
                    }).collect_view()}
                </fieldset>
                <button class="button" type="submit" data-testid="add-channel">"Add channel"</button>
            </ActionForm>
            {move || match add.value().get() {
                Some(Ok(added)) if !added.signing_secret.is_empty() => Some(view! {
                    <p class="notice" data-testid="signing-secret">
                        "Signing secret, shown this once — give it to the receiver: " <code>{added.signing_secret}</code>
                    </p>
                }.into_any()),
                Some(Err(error)) => Some(view! { <p class="error" role="alert" data-testid="channel-error">{error.to_string()}</p> }.into_any()),
                _ => None,
            }}
        </section>
        <section class="card">
            <h2>"Channels"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading channels…"</p> }>
                {move || Suspend::new(async move {
                    match channels.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted" data-testid="no-channels">"No channel yet."</p> }.into_any(),
                        Ok(list) => view! { <ChannelTable list /> }.into_any(),
                        Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <SignatureHelp />
    }
}

#[component]
fn ChannelTable(list: Vec<Channel>) -> impl IntoView {
    view! {
        <Table testid="channels-table" headers=&["Name", "Kind", "Address", "Events", "State", "Waiting", "Given up"]>
            {list.into_iter().map(|channel| view! {
                <tr data-channel=channel.name.clone()>
                    <td><a href=format!("/notifications/{}", channel.id)>{channel.name.clone()}</a></td>
                    <td>{channel.kind.as_str()}</td>
                    <td><code>{channel.address_hint.clone()}</code></td>
                    <td>{channel.events.join(", ")}</td>
                    <td>{if channel.enabled { "on" } else { "off" }}</td>
                    <td>{channel.pending}</td>
                    <td>{channel.failed}</td>
                </tr>
            }).collect_view()}
        </Table>
    }
}

/// How a receiver checks a signed webhook, where admins set one up.
#[component]
fn SignatureHelp() -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Verifying a signed webhook"</h2>
            <p>
                "Each request carries " <code>"X-Slipway-Timestamp"</code> " (seconds since 1970, UTC) and "
                <code>"X-Slipway-Signature: sha256=HEX"</code> ", the HMAC-SHA256 under the channel's signing secret of "
                "the timestamp, a full stop and the raw body. Recompute it over the bytes received, compare in constant "
                "time, and refuse a timestamp more than five minutes away from your clock. "
                <code>"X-Slipway-Delivery"</code> " names the message: a retried one keeps it, so a receiver can drop repeats."
            </p>
        </section>
    }
}

/// One channel's page: what it is, its delivery log, Send test, on/off and Remove.
#[component]
pub fn ChannelPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.with(|p| p.get("id").unwrap_or_default());
    let test = ServerAction::<SendTestNotification>::new();
    let toggle = ServerAction::<SetNotificationChannelEnabled>::new();
    let remove = ServerAction::<RemoveNotificationChannel>::new();
    // The log reloads after each action and every few seconds while the page is open.
    let tick = crate::components::ticker(std::time::Duration::from_secs(3));
    let detail = Resource::new(
        move || {
            (
                id(),
                test.version().get(),
                toggle.version().get(),
                tick.get(),
            )
        },
        |(id, ..)| notification_channel(id),
    );
    let failure = move || {
        [
            test.value().get().and_then(Result::err),
            toggle.value().get().and_then(Result::err),
            remove.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
    };
    view! {
        <Title text="Notification channel" />
        {move || failure().map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
        <Transition fallback=|| view! { <p class="muted">"Loading the channel…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <ChannelView detail test toggle remove /> }.into_any(),
                    Err(error) => {
                        crate::errors::set_response_status(crate::errors::UserFacing::status(&error));
                        view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn ChannelView(
    detail: ChannelDetail,
    test: ServerAction<SendTestNotification>,
    toggle: ServerAction<SetNotificationChannelEnabled>,
    remove: ServerAction<RemoveNotificationChannel>,
) -> impl IntoView {
    let channel = detail.channel;
    let (for_test, for_toggle, for_remove) =
        (channel.id.clone(), channel.id.clone(), channel.id.clone());
    view! {
        <h1>{format!("Channel {}", channel.name)}</h1>
        <p class="lead">
            {channel.kind.label()} " · " <code>{channel.address_hint.clone()}</code> " · "
            {if channel.enabled { "on" } else { "off" }} " · added by " {channel.created_by.clone()} " on " {channel.created_at.clone()}
        </p>
        <p>"Events: " {channel.events.join(", ")}</p>
        <div class="form-row">
            <ActionForm action=test attr:class="inline">
                <input type="hidden" name="id" value=for_test />
                <button class="button" type="submit" data-testid="send-test">"Send test"</button>
            </ActionForm>
            <ActionForm action=toggle attr:class="inline">
                <input type="hidden" name="id" value=for_toggle />
                <input type="hidden" name="enabled" value=(!channel.enabled).to_string() />
                <button class="button secondary" type="submit">{if channel.enabled { "Turn off" } else { "Turn on" }}</button>
            </ActionForm>
            <ActionForm action=remove attr:class="inline">
                <input type="hidden" name="id" value=for_remove />
                <button class="button secondary danger" type="submit">"Remove"</button>
            </ActionForm>
        </div>
        <h2>"Delivery log"</h2>
        {if detail.deliveries.is_empty() {
            view! { <p class="muted" data-testid="no-deliveries">"Nothing sent yet."</p> }.into_any()
        } else {
            view! {
                <Table testid="deliveries-table" headers=&["Queued", "Event", "Message", "Status", "Attempts", "Answer", "Last error", "Sent / next try"]>
                    {detail.deliveries.into_iter().map(|delivery| {
                        let when = if delivery.status == "pending" { delivery.next_attempt_at.clone() } else { delivery.sent_at.clone() };
                        view! {
                            <tr data-status=delivery.status.clone()>
                                <td>{delivery.created_at.clone()}</td>
                                <td>{delivery.event.clone()}</td>
                                <td>{delivery.title.clone()}</td>
                                <td>{delivery.status.clone()}</td>
                                <td>{delivery.attempts}</td>
                                <td>{(delivery.last_status > 0).then(|| delivery.last_status.to_string())}</td>
                                <td>{delivery.last_error.clone()}</td>
                                <td>{when}</td>
                            </tr>
                        }
                    }).collect_view()}
                </Table>
            }.into_any()
        }}
    }
}
