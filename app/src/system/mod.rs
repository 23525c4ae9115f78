//! The console itself: its version, its store and when it started — what the Overview
//! shows before any stack exists.

use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::errors::UserFacing;

#[cfg(feature = "ssr")]
mod service;
#[cfg(feature = "ssr")]
pub use service::{recent_starts, record_start, status, ConsoleStart};

/// What the console reports about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemStatus {
    pub version: String,
    pub store_backend: String,
    pub store_location: String,
    pub migrations_applied: i64,
    pub store_round_trip_ms: f64,
    pub started_at: String,
    pub checked_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum SystemError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("The console's database did not answer. Try again in a moment.")]
    StoreUnavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl UserFacing for SystemError {
    fn status(&self) -> u16 {
        match self {
            SystemError::Auth(error) => error.status(),
            SystemError::StoreUnavailable | SystemError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(SystemError);

#[server(prefix = "/api", endpoint = "console_status")]
pub async fn console_status() -> Result<SystemStatus, SystemError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    status(&caller.console).await.map_err(|error| {
        tracing::error!(error = %error, cause = ?error, "console status failed");
        reject(SystemError::StoreUnavailable)
    })
}

#[component]
pub fn OverviewPage() -> impl IntoView {
    view! {
        <Title text="Overview" />
        <h1>"Overview"</h1>
        <p class="lead">
            "Slipway runs your team's release procedure: checklist, deployment, verification, rollback, backups and the record of all of it."
        </p>
        <ConsoleCard />
        <crate::health::HealthSummary />
        <crate::stacks::StackOverview />
    }
}

/// The console's own vital signs, refreshed on demand from the server.
#[component]
fn ConsoleCard() -> impl IntoView {
    let status = Resource::new(|| (), |_| console_status());
    view! {
        <section class="card" data-testid="console-card">
            <div class="card-head">
                <h2>"Console"</h2>
                <button
                    class="button"
                    type="button"
                    data-testid="refresh-status"
                    on:click=move |_| status.refetch()
                >
                    "Check again"
                </button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Checking the console…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(status) => view! { <StatusList status /> }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn StatusList(status: SystemStatus) -> impl IntoView {
    view! {
        <dl class="facts">
            <dt>"Version"</dt>
            <dd>{status.version}</dd>
            <dt>"Store"</dt>
            <dd>
                {status.store_backend} " · " <code>{status.store_location}</code>
            </dd>
            <dt>"Migrations applied"</dt>
            <dd>{status.migrations_applied}</dd>
            <dt>"Store round trip"</dt>
            <dd>{format!("{:.2} ms", status.store_round_trip_ms)}</dd>
            <dt>"Running since"</dt>
            <dd>{status.started_at}</dd>
            <dt>"Checked at"</dt>
            <dd data-testid="checked-at">{status.checked_at}</dd>
        </dl>
    }
}
