//! Backups: database dumps taken by backup runs, listed in an inventory with what each holds
//! and how it was made. The Backups page shows them to viewers and up; operators take one
//! with the stack page's "Back up" (a run, like deploy) or `slipway backup STACK`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::Table;

#[cfg(feature = "ssr")]
pub mod service;

/// One dump and what is known about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct Backup {
    pub id: String,
    pub stack: String,
    /// The data service that was dumped.
    pub service: String,
    /// Where the dump is, on the console's machine.
    pub file: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub started_at: String,
    pub finished_at: String,
    /// Who asked for it: a user, or the run that took it on its own.
    pub requested_by: String,
    /// Why: manual, pre-deploy, pre-update, pre-migrate or scheduled.
    pub reason: String,
    pub run_id: String,
    /// The newest migration recorded in the database at that moment; empty when the stack
    /// names no migrations table.
    pub migration_head: String,
    /// JSON: service → image id the stack ran.
    pub images: String,
    /// unverified until a restore drill proves the dump restores; then verified, failed,
    /// or corrupt (its file no longer matches its checksum: it can never be restored).
    pub verification: String,
    /// When the last restore drill ended; empty before one.
    #[serde(default)]
    pub verified_at: String,
    /// How long the drill's restore took, in milliseconds.
    #[serde(default)]
    pub restore_ms: i64,
    /// What the last drill found: the first difference, or why it could not run.
    #[serde(default)]
    pub verify_note: String,
}

/// Labels a restore drill's throwaway container, so one left by a console that died is
/// found and removed at the next start.
pub const DRILL_LABEL: &str = "slipway.drill";
/// The process (`host:pid`) that runs a drill: only a drill whose process is gone is removed.
pub const DRILL_HOLDER_LABEL: &str = "slipway.drill.holder";

/// Why a backup was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupReason {
    /// Someone asked for it (the Back up button, `slipway backup`).
    Manual,
    /// The first steps of a deploy, when the database already runs.
    PreDeploy,
    /// The first step of an update.
    PreUpdate,
    /// The first step of a migrate run.
    PreMigrate,
}

impl BackupReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupReason::Manual => "manual",
            BackupReason::PreDeploy => "pre-deploy",
            BackupReason::PreUpdate => "pre-update",
            BackupReason::PreMigrate => "pre-migrate",
        }
    }
}

crate::read_error!(
    /// Why the backups could not be listed, in words the browser may show.
    BackupError,
    "backups"
);

/// The backups of one stack, or of every stack when `stack` is empty, newest first.
#[server(prefix = "/api", endpoint = "backups")]
pub async fn list_backups(stack: String) -> Result<Vec<Backup>, BackupError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer)
        .await
        .map_err(|error| reject(BackupError::from(error)))?;
    service::list(&caller.console.store, stack.trim())
        .await
        .map_err(|error| reject(error.into()))
}

#[component]
pub fn BackupsPage() -> impl IntoView {
    let query = use_query_map();
    let stack = move || query.with(|q| q.get("stack").unwrap_or_default());
    let backups = Resource::new(stack, list_backups);
    view! {
        <Title text="Backups" />
        <h1>"Backups"</h1>
        <p class="lead">
            "Database dumps, newest first. Take one with a stack's Back up button or "
            <code>"slipway backup STACK"</code> "."
        </p>
        <form class="filters card" method="get" action="/backups">
            <label>"Stack" <input name="stack" prop:value=stack /></label>
            <button class="button" type="submit">"Filter"</button>
            <a class="button secondary" href="/backups">"All stacks"</a>
        </form>
        <Transition fallback=|| view! { <p class="muted">"Loading backups…"</p> }>
            {move || Suspend::new(async move {
                match backups.await {
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted card" data-testid="no-backups">"No backups yet."</p>
                    }.into_any(),
                    Ok(list) => view! { <BackupList list /> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Starts a restore drill of one backup and follows it on its run page.
#[component]
fn VerifyButton(stack: String, backup: String) -> impl IntoView {
    let verify = ServerAction::<crate::runs::StartRun>::new();
    Effect::new(move |_| {
        if let Some(Ok(id)) = verify.value().get() {
            let navigate = leptos_router::hooks::use_navigate();
            navigate(&format!("/runs/{id}"), Default::default());
        }
    });
    view! {
        <ActionForm action=verify>
            <input type="hidden" name="stack" value=stack />
            <input type="hidden" name="operation" value="verify" />
            <input type="hidden" name="target" value=backup.clone() />
            <button class="button secondary" type="submit" data-testid=format!("verify-{backup}")>"Verify"</button>
        </ActionForm>
        {move || verify.value().get().and_then(Result::err).map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })}
    }
}

#[component]
fn BackupList(list: Vec<Backup>) -> impl IntoView {
    let can_verify = crate::auth::signed_in_user()
        .is_some_and(|user| user.role.allows(crate::auth::Role::Operator));
    view! {
        <section class="card">
            <Table
                testid="backups-table"
                headers=&["When", "Stack", "Why", "By", "Size", "SHA-256", "Migration head", "State", ""]
            >
                {list
                    .into_iter()
                    .map(|backup| {
                        let (stack, id) = (backup.stack.clone(), backup.id.clone());
                        view! {
                            <tr data-backup=backup.id.clone()>
                                <td class="nowrap">{backup.finished_at}</td>
                                <td><a href=format!("/stacks/{}", backup.stack)>{backup.stack.clone()}</a></td>
                                <td>{backup.reason}</td>
                                <td>{backup.requested_by}</td>
                                <td class="nowrap">{size_in_words(backup.size_bytes)}</td>
                                <td><code title=backup.sha256.clone()>{backup.sha256.chars().take(12).collect::<String>()}</code></td>
                                <td><code>{backup.migration_head}</code></td>
                                <td data-testid="backup-state">
                                    <span class=if backup.verification == "verified" { "status on" } else if backup.verification == "unverified" { "status" } else { "status off" }>
                                        {backup.verification.clone()}
                                    </span>
                                    {(backup.restore_ms > 0).then(|| format!(" (restored in {:.1} s)", backup.restore_ms as f64 / 1000.0))}
                                    {(!backup.verify_note.is_empty()).then(|| view! { <span class="muted">" " {backup.verify_note.clone()}</span> })}
                                </td>
                                <td>
                                    <Show when=move || can_verify>
                                        <VerifyButton stack=stack.clone() backup=id.clone() />
                                    </Show>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </Table>
        </section>
    }
}

/// `12.3 MB`, `840 kB`, `512 B`.
pub fn size_in_words(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::size_in_words;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size_in_words(512), "512 B");
        assert_eq!(size_in_words(840_000), "840.0 kB");
        assert_eq!(size_in_words(12_345_678), "12.3 MB");
        assert_eq!(size_in_words(3_000_000_000), "3.0 GB");
    }
}
