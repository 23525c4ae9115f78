//! The audit trail: who changed what, when and from where — append-only and hash-chained.
//! The Audit page lists and filters it for approvers and admins.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::Table;

#[cfg(feature = "ssr")]
pub mod key;
#[cfg(feature = "ssr")]
pub mod service;

/// One entry of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub client_addr: String,
    /// JSON with the specifics of the change.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What the Audit page asks for; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub actor: String,
    /// A prefix such as `auth.` or `auth.sign_in`.
    pub action: String,
    pub target: String,
    pub limit: i64,
}

crate::read_error!(
    /// Why the trail could not be read, in words the browser may show.
    AuditError,
    "audit"
);

/// The newest entries that match `filter`; approvers and admins only.
#[server(prefix = "/api", endpoint = "audit_events")]
pub async fn audit_events(filter: AuditFilter) -> Result<Vec<AuditEvent>, AuditError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Approver)
        .await
        .map_err(|error| reject(AuditError::from(error)))?;
    let filter = AuditFilter {
        limit: if filter.limit <= 0 { 200 } else { filter.limit },
        ..filter
    };
    service::list(&caller.console.store, &filter)
        .await
        .map_err(|error| reject(error.into()))
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move || {
        query.with(|q| AuditFilter {
            actor: q.get("actor").unwrap_or_default(),
            action: q.get("action").unwrap_or_default(),
            target: q.get("target").unwrap_or_default(),
            limit: 200,
        })
    };
    let events = Resource::new(filter, audit_events);
    view! {
        <Title text="Audit" />
        <h1>"Audit"</h1>
        <p class="lead">
            "Every sign-in, failure, lockout and change, oldest entries chained to newest so that an edit behind the console's back shows. Check the chain with "
            <code>"slipway audit verify"</code> "."
        </p>
        // A plain GET form: filtering works with or without WASM.
        <form class="filters card" method="get" action="/audit">
            <label>"Actor" <input name="actor" prop:value=move || filter().actor /></label>
            <label>
                "Action starts with" <input name="action" placeholder="auth." prop:value=move || filter().action />
            </label>
            <label>"Target contains" <input name="target" prop:value=move || filter().target /></label>
            <button class="button" type="submit">"Filter"</button>
            <a class="button secondary" href="/audit">"Clear"</a>
        </form>
        <Transition fallback=|| view! { <p class="muted">"Loading the trail…"</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(events) if events.is_empty() => {
                        view! { <p class="muted">"No entries match."</p> }.into_any()
                    }
                    Ok(events) => view! { <AuditTable events /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn AuditTable(events: Vec<AuditEvent>) -> impl IntoView {
    view! {
        <Table testid="audit-table" headers=&["#", "When (UTC)", "Who", "Action", "Target", "From", "Details"]>
                    {events
                        .into_iter()
                        .map(|event| {
                            view! {
                                <tr>
                                    <td>{event.seq}</td>
                                    <td class="nowrap">{event.at}</td>
                                    <td>{event.actor}</td>
                                    <td><code>{event.action}</code></td>
                                    <td>{event.target}</td>
                                    <td>{event.client_addr}</td>
                                    <td><code class="detail">{event.detail}</code></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </Table>
    }
}
