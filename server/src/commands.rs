//! The commands besides `serve`: they open the same store and call the same services.

use std::io::{BufRead, IsTerminal};

use std::path::Path;

use app::audit::service::{verify, Actor, ChainReport};
use app::auth::{service, AuthError, Role};
use app::runs::RunRequest;
use app::stacks::engine::{Engine, Reading};
use app::stacks::{StackError, StackStatus};

use crate::cli::StoreArgs;
use crate::startup::{open_store, StartupError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("cannot read the password from standard input ({0})")]
    Input(std::io::Error),
    #[error("the two passwords differ; nothing was changed")]
    Mismatch,
    #[error("audit trail broken at entry {seq}: {reason}")]
    BrokenChain { seq: i64, reason: String },
    #[error("{0}")]
    Stack(#[from] StackError),
    #[error("{0}")]
    Run(String),
    #[error("{0}")]
    Backup(#[from] app::backups::BackupError),
    #[error("{0}")]
    History(#[from] app::history::HistoryError),
    #[error("{0}")]
    Approval(#[from] app::approvals::ApprovalError),
    #[error("{0}")]
    Flag(#[from] app::flags::FlagError),
    #[error("{0}")]
    Release(#[from] app::releases::ReleaseError),
    #[error("{0}")]
    Notification(#[from] app::notifications::NotificationError),
    #[error("{0}")]
    Health(#[from] app::health::HealthError),
}

/// `slipway user add NAME --role ROLE`: the password comes from standard input, unechoed
/// and asked twice on a terminal, as one line from a pipe.
pub async fn add_user(
    name: &str,
    role: Role,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let password = read_new_password()?;
    let store = open_store(store_args).await?;
    let outcome = service::add_user(&store, &Actor::command_line(), name, role, password).await;
    store.close().await;
    let user = outcome?;
    Ok(format!("added {} as {}", user.name, user.role))
}

fn read_new_password() -> Result<String, CommandError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(CommandError::Input)?;
        let second = rpassword::prompt_password("Again: ").map_err(CommandError::Input)?;
        if first != second {
            return Err(CommandError::Mismatch);
        }
        return Ok(first);
    }
    read_password_line()
}

/// A secret asked once on a terminal (not echoed), else one line from standard input.
fn read_secret(prompt: &str) -> Result<String, CommandError> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).map_err(CommandError::Input);
    }
    read_password_line()
}

fn read_password_line() -> Result<String, CommandError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(CommandError::Input)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `slipway audit verify [--head SEQ:HASH]`: walks the chain; a broken chain is an error
/// naming the entry.
pub async fn verify_audit(
    store_args: &StoreArgs,
    exported_head: Option<(i64, &str)>,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let report = verify(&store, exported_head).await;
    store.close().await;
    match report.map_err(StartupError::from)? {
        ChainReport::Intact { entries } => Ok(format!("audit trail intact: {entries} entries")),
        ChainReport::Broken { seq, reason } => Err(CommandError::BrokenChain { seq, reason }),
    }
}

/// `slipway audit init-key`: the first key of a store written without one.
pub async fn init_audit_key(store_args: &StoreArgs) -> Result<String, CommandError> {
    let store = app::store::Store::open(&crate::startup::store_location(store_args))
        .await
        .map_err(StartupError::from)?;
    let path = crate::startup::audit_key_file(store_args);
    let created = app::audit::service::init_key(&store, &path).await;
    store.close().await;
    let key = created.map_err(StartupError::from)?;
    Ok(format!(
        "audit key written to {}: entries from {} on are keyed; back it up with the store",
        path.display(),
        key.keyed_from
    ))
}

/// `slipway audit head`: the newest entry as SEQ:HASH, for keeping outside the console.
pub async fn audit_head(store_args: &StoreArgs) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let head = app::audit::service::head(&store).await;
    store.close().await;
    Ok(match head.map_err(StartupError::from)? {
        Some((seq, hash)) => format!("{seq}:{hash}"),
        None => "0:".to_owned() + app::audit::service::GENESIS_HASH,
    })
}

/// `slipway stack add NAME --compose FILE [--env-file FILE] [--project NAME]`.
pub async fn add_stack(
    name: &str,
    compose: &Path,
    env_file: Option<&Path>,
    project: Option<&str>,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = app::stacks::service::add(
        &store,
        &Actor::command_line(),
        name,
        compose,
        env_file,
        project,
    )
    .await;
    store.close().await;
    let stack = outcome?;
    Ok(format!(
        "added stack {} (project {})",
        stack.name, stack.project
    ))
}

pub use app::backups::PolicyChange;

/// `slipway stack policy NAME [--backup-every …]`: the policy after the change, in words.
pub async fn backup_policy(
    name: &str,
    change: PolicyChange,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome =
        app::backups::service::change_policy(&store, &Actor::command_line(), name, &change).await;
    store.close().await;
    let policy = outcome?;
    Ok(format!("{name}: {}", policy.in_words()))
}

/// `slipway status NAME [--json]`: the same facts as the stack's page.
pub async fn stack_status(
    name: &str,
    json: bool,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = match Engine::connect() {
        Ok(engine) => app::stacks::service::status(&store, &engine, name).await,
        Err(error) => Err(error.into()),
    };
    store.close().await;
    let status = outcome?;
    if json {
        return Ok(serde_json::to_string_pretty(&status).unwrap_or_default());
    }
    Ok(status_table(&status))
}

fn status_table(status: &StackStatus) -> String {
    let up = status.services.iter().filter(|s| s.is_up()).count();
    let mut rows = vec![[
        "SERVICE", "ROLE", "STATE", "HEALTH", "IMAGE", "PORTS", "SINCE", "RESTARTS",
    ]
    .map(str::to_owned)];
    for service in &status.services {
        if service.containers.is_empty() {
            rows.push([
                service.name.clone(),
                service.role.to_string(),
                "no container".into(),
                "-".into(),
                service.image.clone().unwrap_or_default(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for container in &service.containers {
            rows.push([
                service.name.clone(),
                service.role.to_string(),
                container.state.clone(),
                container.health.clone(),
                container.image.clone(),
                container.ports.join(","),
                container.started_at.clone().unwrap_or_default(),
                container.restarts.to_string(),
            ]);
        }
    }
    format!(
        "{} (project {}): {up} of {} services up\n{}",
        status.stack.name,
        status.stack.project,
        status.services.len(),
        aligned(&rows)
    )
}

/// Rows as columns aligned by their widest cell.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect();
    lines.join("\n")
}

/// `slipway backups NAME [--json]`: the stack's backups, newest first.
pub async fn list_backups(
    name: &str,
    json: bool,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let stack = app::stacks::service::find(&store, name).await;
    let backups = app::backups::service::list(&store, name, i64::MAX).await;
    store.close().await;
    stack?;
    let backups = backups.map_err(StartupError::from)?;
    if json {
        return Ok(serde_json::to_string_pretty(&backups).unwrap_or_default());
    }
    if backups.is_empty() {
        return Ok(format!("{name} has no backups yet"));
    }
    let mut rows = vec![[
        "WHEN", "ID", "WHY", "BY", "SIZE", "SHA-256", "STATE", "FILE",
    ]
    .map(str::to_owned)];
    rows.extend(backups.iter().map(|backup| {
        [
            backup.finished_at.clone(),
            backup.id.chars().take(8).collect(),
            backup.reason.clone(),
            backup.requested_by.clone(),
            app::backups::size_in_words(backup.size_bytes),
            backup.sha256.chars().take(12).collect(),
            backup.verification.clone(),
            backup.file.clone(),
        ]
    }));
    Ok(aligned(&rows))
}

/// `slipway start NAME` / `slipway stop NAME`: a run, as the Start and Stop buttons make,
/// sharing the stack's lock with any console; steps and lines are printed as they happen.
pub async fn run_operation(
    name: &str,
    request: RunRequest,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let operation = request.operation;
    let store = open_store(store_args).await?;
    let outcome = async {
        let engine = Engine::connect().map_err(StackError::from)?;
        let (handle, stack) =
            app::runs::lock::start(&store, name, request, &Actor::command_line(), true)
                .await
                .map_err(|error| CommandError::Run(error.to_string()))?;
        println!("run {} ({operation} {name})", handle.run.id);
        execute_here(handle, &engine, &stack, store_args).await
    }
    .await;
    store.close().await;
    let run = outcome?;
    answer(&run, format!("run {} succeeded", run.id))
}

/// Executes a run in this process, its steps and lines printed as they happen.
async fn execute_here(
    handle: app::runs::recorder::RunHandle,
    engine: &Engine,
    stack: &app::stacks::StackSummary,
    store_args: &StoreArgs,
) -> Result<app::runs::RunSummary, CommandError> {
    app::runs::execute(
        handle,
        engine,
        stack,
        &crate::startup::backup_dir(store_args),
    )
    .await
    .map_err(|error| CommandError::Run(error.to_string()))
}

/// A finished run as the command's answer: `succeeded` when it did, its error otherwise.
fn answer(run: &app::runs::RunSummary, succeeded: String) -> Result<String, CommandError> {
    if run.status == app::runs::RunStatus::Succeeded {
        Ok(succeeded)
    } else {
        Err(CommandError::Run(format!(
            "run {} {}: {}",
            run.id, run.status, run.error
        )))
    }
}

/// What `slipway logs` was asked for.
pub struct LogsRequest<'a> {
    pub name: &'a str,
    pub service: Option<&'a str>,
    pub follow: bool,
    pub errors_only: bool,
    pub tail: usize,
}

/// `slipway logs NAME [SERVICE] [--follow] [--errors]`: lines as `service | text`.
pub async fn print_logs(
    request: LogsRequest<'_>,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    use futures::StreamExt;
    let store = open_store(store_args).await?;
    let engine = Engine::connect().map_err(StackError::from)?;
    let lines = app::stacks::service::logs(
        &store,
        &engine,
        request.name,
        request.service,
        request.tail,
        request.errors_only,
    )
    .await;
    // Only new lines from here on: the newest ones are printed first.
    let followed = match (&lines, request.follow) {
        (Ok(_), true) => Some(
            app::stacks::service::follow_logs(
                &store,
                &engine,
                request.name,
                request.service,
                request.errors_only,
            )
            .await,
        ),
        _ => None,
    };
    store.close().await;
    for line in lines? {
        println!("{} | {}", line.service, line.text);
    }
    if let Some(followed) = followed {
        let mut followed = std::pin::pin!(followed?);
        while let Some(line) = followed.next().await {
            let line = line?;
            println!("{} | {}", line.service, line.text);
        }
    }
    Ok(String::new())
}

/// The command line as a requester: a console user (`--as NAME`) proved by their password,
/// so that they, too, can never approve their own request. Wrong passwords count like
/// sign-in's.
async fn command_line_person(
    store: &app::store::Store,
    name: &str,
) -> Result<app::approvals::service::Person, CommandError> {
    let password = read_secret("Password: ")?;
    let user = service::check_password(store, name, password, "cli", "approval.password_failed")
        .await
        .map_err(|error| match error {
            AuthError::SignInFailed => CommandError::Run(format!(
                "{name}: the password is wrong, or the account is locked for a while"
            )),
            other => other.into(),
        })?;
    if !user.role.allows(Role::Operator) {
        return Err(CommandError::Run(format!(
            "{name} is a {}: requests are made by operators and up",
            user.role
        )));
    }
    Ok(app::approvals::service::Person {
        user_id: user.id,
        session: String::new(),
        actor: Actor {
            name: user.name,
            client_addr: "cli".into(),
        },
    })
}

/// `slipway restore …` (and any gated run): records the request and says where to decide it.
pub async fn request_approval(
    name: &str,
    request: RunRequest,
    (as_user, reason): (&str, &str),
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = async {
        let requester = command_line_person(&store, as_user).await?;
        let engine = Engine::connect().map_err(StackError::from)?;
        let approval =
            app::approvals::service::request(&store, &engine, &requester, name, request, reason)
                .await?;
        Ok::<_, CommandError>(approval)
    }
    .await;
    store.close().await;
    let approval = outcome?;
    Ok(format!(
        "approval {id} requested: {title}\nIt runs once approved on the console at /approvals/{id}; `slipway approval wait {id}` follows it.",
        id = approval.id,
        title = approval.title()
    ))
}

/// Which rollback `slipway rollback` asks for.
pub struct RollbackChoice {
    pub to: Option<String>,
    pub undo_migrations: bool,
    pub emergency: bool,
}

/// `slipway rollback NAME [--to RUN | --emergency] --reason …`: by default to the
/// last-known-good before the current images.
pub async fn request_rollback(
    name: &str,
    RollbackChoice {
        to,
        undo_migrations,
        emergency,
    }: RollbackChoice,
    (as_user, reason): (&str, &str),
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    if emergency {
        let store = open_store(store_args).await?;
        let request = async {
            let engine = Engine::connect().map_err(StackError::from)?;
            Ok::<_, CommandError>(app::approvals::plan::emergency(&store, &engine, name).await?)
        }
        .await;
        store.close().await;
        return request_approval(name, request?, (as_user, reason), store_args).await;
    }
    let target = match to {
        Some(run) => run,
        None => {
            let store = open_store(store_args).await?;
            let engine = Engine::connect().map_err(StackError::from);
            let targets = app::approvals::plan::rollback_targets(
                &store,
                engine.as_ref().ok().map(|engine| (engine, Reading::Now)),
                name,
            )
            .await;
            store.close().await;
            targets?
                .into_iter()
                .find(|target| target.suggested)
                .map(|target| target.run_id)
                .ok_or_else(|| {
                    CommandError::Run(format!(
                        "{name} has no earlier run whose images differ from the running ones; name one with --to"
                    ))
                })?
        }
    };
    let request = RunRequest {
        operation: app::runs::Operation::Rollback,
        target,
        options: app::runs::RunOptions {
            undo_migrations,
            ..app::runs::RunOptions::default()
        },
    };
    request_approval(name, request, (as_user, reason), store_args).await
}

/// `slipway stack templates NAME [--checklist FILE] [--timeline FILE]`.
pub async fn release_templates(
    name: &str,
    (checklist, timeline): (Option<std::path::PathBuf>, Option<std::path::PathBuf>),
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let read = |path: Option<std::path::PathBuf>| {
        path.map(|path| {
            std::fs::read_to_string(&path).map_err(|error| {
                CommandError::Run(format!("cannot read {}: {error}", path.display()))
            })
        })
        .transpose()
    };
    let (checklist, timeline) = (read(checklist)?, read(timeline)?);
    let store = open_store(store_args).await?;
    let outcome = async {
        let (current_checklist, current_timeline) = app::releases::templates::get(&store, name)
            .await
            .map_err(StartupError::from)?;
        if checklist.is_some() || timeline.is_some() {
            let wanted = (
                checklist.unwrap_or(current_checklist),
                timeline.unwrap_or(current_timeline),
            );
            app::releases::templates::set(
                &store,
                &Actor::command_line(),
                name,
                (&wanted.0, &wanted.1),
            )
            .await?;
        }
        Ok::<_, CommandError>(
            app::releases::templates::get(&store, name)
                .await
                .map_err(StartupError::from)?,
        )
    }
    .await;
    store.close().await;
    let (checklist, timeline) = outcome?;
    Ok(format!("# checklist\n{checklist}\n# timeline\n{timeline}"))
}

/// What `slipway stack releases` was asked to change.
pub struct ReleasePolicyChange {
    pub only: Option<bool>,
    pub time_zone: Option<String>,
    pub days: Option<String>,
    pub hours: Option<String>,
    pub freezes: Option<String>,
    pub public_url: Option<String>,
}

/// `slipway stack releases NAME [--only BOOL] [--time-zone TZ] [--days D] [--hours H] [--freezes F]`.
pub async fn release_policy(
    name: &str,
    change: ReleasePolicyChange,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = async {
        let current = app::releases::service::policy(&store, name)
            .await
            .map_err(StartupError::from)?;
        let wanted = app::releases::ReleasePolicy {
            releases_only: change.only.unwrap_or(current.releases_only),
            time_zone: change
                .time_zone
                .unwrap_or_else(|| current.time_zone.clone()),
            days: change.days.unwrap_or_else(|| current.days.clone()),
            hours: change.hours.unwrap_or_else(|| current.hours.clone()),
            freezes: change.freezes.unwrap_or_else(|| current.freezes.clone()),
            public_url: change
                .public_url
                .unwrap_or_else(|| current.public_url.clone()),
        };
        if wanted != current {
            app::releases::service::set_policy(&store, &Actor::command_line(), name, &wanted)
                .await?;
        }
        Ok::<_, CommandError>(wanted)
    }
    .await;
    store.close().await;
    let policy = outcome?;
    let or = |text: &str, default: &str| {
        if text.is_empty() {
            default.to_owned()
        } else {
            text.to_owned()
        }
    };
    Ok(format!(
        "{name}: deploy/update/migrate {}; window {} {} {}; freezes: {}; public address: {}",
        if policy.releases_only {
            "only through releases"
        } else {
            "run directly too"
        },
        or(&policy.days, "every day"),
        or(&policy.hours, "all day"),
        or(&policy.time_zone, "UTC"),
        or(&policy.freezes.replace('\n', "; "), "none"),
        or(&policy.public_url, "not set")
    ))
}

/// `slipway flags NAME [--json]`.
pub async fn list_flags(
    name: &str,
    json: bool,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let stack = app::stacks::service::find(&store, name).await;
    store.close().await;
    let flags = app::flags::service::list(&stack?)?;
    if json {
        return Ok(serde_json::to_string_pretty(&flags).unwrap_or_default());
    }
    if flags.is_empty() {
        return Ok(format!("{name} has no flags"));
    }
    let mut rows = vec![[
        "FLAG".to_owned(),
        "VALUE".to_owned(),
        "READ BY".to_owned(),
        "REPLACED WHEN SET".to_owned(),
    ]];
    rows.extend(flags.into_iter().map(|flag| {
        [
            flag.name,
            if flag.in_env_file {
                flag.value
            } else {
                "(unset)".into()
            },
            flag.readers.join(","),
            flag.replaced.join(","),
        ]
    }));
    Ok(aligned(&rows))
}

/// `slipway approvals [--json]`.
pub async fn list_approvals(json: bool, store_args: &StoreArgs) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = async {
        app::approvals::service::expire_due(&store).await?;
        app::approvals::service::list(&store, "").await
    }
    .await;
    store.close().await;
    let list = outcome.map_err(StartupError::from)?;
    if json {
        return Ok(serde_json::to_string_pretty(&list).unwrap_or_default());
    }
    if list.is_empty() {
        return Ok("no approval requests".into());
    }
    let mut rows = vec![["REQUESTED", "ID", "WHAT", "BY", "STATE", "APPROVALS"].map(str::to_owned)];
    rows.extend(list.iter().map(|approval| {
        [
            approval.created_at.clone(),
            approval.id.clone(),
            approval.title(),
            approval.requested_by.clone(),
            approval.status.to_string(),
            format!("{} of {}", approval.approvals(), approval.required),
        ]
    }));
    Ok(aligned(&rows))
}

/// `slipway approval wait ID`: the decision, then the run it started, line by line.
pub async fn wait_for_approval(id: &str, store_args: &StoreArgs) -> Result<String, CommandError> {
    use app::approvals::ApprovalStatus;
    let store = open_store(store_args).await?;
    let outcome = async {
        let mut said = ApprovalStatus::Executed;
        let run_id = loop {
            app::approvals::service::expire_due(&store)
                .await
                .map_err(StartupError::from)?;
            let approval = app::approvals::service::find(&store, id).await?;
            if approval.status != said {
                println!("approval {id}: {}", approval.status);
                said = approval.status;
            }
            match approval.status {
                ApprovalStatus::Executed if !approval.run_id.is_empty() => break approval.run_id,
                ApprovalStatus::Waiting | ApprovalStatus::Approved | ApprovalStatus::Executed => {}
                other => {
                    return Err(CommandError::Run(format!(
                        "approval {id} is {other}{}",
                        if approval.status_note.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", approval.status_note)
                        }
                    )))
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        };
        println!("run {run_id}");
        let (mut seen, mut steps_said) = (0, 0);
        let failed = |error: app::runs::RunError| CommandError::Run(error.to_string());
        loop {
            let run = app::runs::queries::summary(&store, &run_id)
                .await
                .map_err(failed)?;
            let steps = app::runs::queries::steps(&store, &run_id)
                .await
                .map_err(failed)?;
            let lines = app::runs::queries::lines_after(&store, &run_id, seen, 500)
                .await
                .map_err(failed)?;
            // Each step's name before its lines, as a run started here prints them.
            for line in lines {
                while steps_said <= line.step as usize && steps_said < steps.len() {
                    println!("{}", steps[steps_said].name);
                    steps_said += 1;
                }
                println!("{}", line.text);
                seen = line.seq;
            }
            if run.status != app::runs::RunStatus::Running {
                return if run.status == app::runs::RunStatus::Succeeded {
                    Ok(format!("run {run_id} succeeded"))
                } else {
                    Err(CommandError::Run(format!(
                        "run {run_id} {}: {}",
                        run.status, run.error
                    )))
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
    .await;
    store.close().await;
    outcome
}

/// `slipway delivery`: each metric for 30 and 90 days, and how it is computed.
pub async fn print_delivery(stack: &str, store_args: &StoreArgs) -> Result<String, CommandError> {
    use app::history::{delivery, metric_text, DEFINITIONS};
    let store = open_store(store_args).await?;
    let windows = delivery::report(&store, stack).await;
    store.close().await;
    let windows = windows?;
    let scope = if stack.trim().is_empty() {
        "all stacks"
    } else {
        stack.trim()
    };
    let windows_in_days: Vec<String> = app::history::WINDOWS
        .iter()
        .map(|days| format!("{days} days"))
        .collect();
    let mut lines = vec![format!("{scope}: {}", windows_in_days.join(" | "))];
    for (metric, (name, how)) in DEFINITIONS.iter().enumerate() {
        let cells: Vec<String> = windows
            .iter()
            .map(|window| metric_text(metric, window))
            .collect();
        lines.push(format!("{name}: {}\n    {how}", cells.join(" | ")));
    }
    Ok(lines.join("\n"))
}

/// `slipway history`: the newest page as lines, or every matching run as CSV.
pub async fn print_history(
    filter: &app::history::HistoryFilter,
    csv: bool,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = if csv {
        app::history::service::csv(&store, filter).await
    } else {
        app::history::service::page(&store, filter)
            .await
            .map(|page| history_lines(&page))
    };
    store.close().await;
    Ok(outcome?.trim_end().to_owned())
}

fn history_lines(page: &app::history::HistoryList) -> String {
    if page.entries.is_empty() {
        return "nothing matches".into();
    }
    let mut lines = Vec::new();
    for entry in &page.entries {
        let release = if entry.release_version.is_empty() {
            String::new()
        } else {
            format!(" of release {}", entry.release_version)
        };
        let approved = if entry.approved_by.is_empty() {
            String::new()
        } else {
            format!(", approved by {}", entry.approved_by.join(", "))
        };
        let took = entry
            .duration_seconds
            .map(|seconds| format!(" in {seconds:.1} s"))
            .unwrap_or_default();
        lines.push(format!(
            "{}  {}  {}{release}  {}{took}  by {}{approved}  (run {})",
            entry.started_at,
            entry.stack,
            entry.operation,
            entry.status,
            entry.requested_by,
            entry.run_id
        ));
        for change in &entry.images {
            lines.push(format!("    {change}"));
        }
    }
    if page.next.is_some() {
        lines.push(format!(
            "(the newest {}; narrow the filters or use --csv for all)",
            page.entries.len()
        ));
    }
    lines.join("\n")
}

/// `slipway config`: the model for a compose file that is not a stack yet.
pub fn compose_config(
    compose_file: &Path,
    env_file: Option<&Path>,
    profiles: &[String],
    project: Option<String>,
    unmasked: bool,
) -> Result<String, CommandError> {
    let compose_error = |error: app::stacks::compose::ComposeError, secrets: &[String]| {
        let said = app::stacks::secrets::redact(&error.to_string(), secrets);
        CommandError::from(StackError::Compose(said))
    };
    let project = match project {
        Some(project) => project,
        None => default_project(compose_file)?,
    };
    let secrets = if unmasked {
        Vec::new()
    } else {
        app::stacks::secrets::secret_values(compose_file, env_file)
            .map_err(|error| compose_error(error, &[]))?
    };
    app::stacks::compose::config(compose_file, env_file, profiles, &project, &secrets)
        .map_err(|error| compose_error(error, &secrets))
}

/// Compose's project name for a file: its folder's name, lower case, with only the letters,
/// digits, dashes and underscores Compose keeps.
fn default_project(compose_file: &Path) -> Result<String, CommandError> {
    let folder = std::path::absolute(compose_file)
        .ok()
        .and_then(|path| path.parent()?.file_name()?.to_str().map(str::to_owned))
        .unwrap_or_default();
    let project: String = folder
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if project.is_empty() {
        return Err(StackError::Invalid(
            "the compose file's folder gives no project name: name one with --project".into(),
        )
        .into());
    }
    Ok(project)
}

/// `slipway stack config NAME`.
pub async fn stack_config(name: &str, store_args: &StoreArgs) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let stack = app::stacks::service::find(&store, name).await;
    store.close().await;
    Ok(app::stacks::service::config(&stack?)?)
}

/// `slipway stack profiles NAME [--set a,b]`.
pub async fn stack_profiles(
    name: &str,
    set: Option<Vec<String>>,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = match set {
        Some(profiles) => {
            app::stacks::service::set_profiles(&store, &Actor::command_line(), name, &profiles)
                .await
        }
        None => app::stacks::service::find(&store, name).await,
    };
    store.close().await;
    let stack = outcome?;
    let named = app::stacks::service::definition(&stack)?.profiles;
    let list = |profiles: Vec<String>| {
        if profiles.is_empty() {
            "none".to_owned()
        } else {
            profiles.join(", ")
        }
    };
    Ok(format!(
        "{name}: active profiles: {}; the compose file names: {}",
        list(stack.profiles),
        list(named.into_iter().collect())
    ))
}

/// `slipway stack edge NAME [--managed B]`: the setting after the change, in words.
pub async fn managed_edge(
    name: &str,
    managed: Option<bool>,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = match managed {
        Some(managed) => {
            app::stacks::service::set_managed_edge(&store, &Actor::command_line(), name, managed)
                .await
        }
        None => app::stacks::service::find(&store, name).await,
    };
    store.close().await;
    let stack = outcome?;
    let definition = app::stacks::service::definition(&stack)?;
    if !app::stacks::managed_edge::is_in_front(&definition) {
        return Ok(format!(
            "{name}: no managed edge; updates replace services without an edge in place (deploy to apply a change)"
        ));
    }
    let why = if stack.managed_edge {
        "deploy to apply a change"
    } else {
        "the compose file asks for it"
    };
    let mut lines = vec![format!("{name}: Slipway's edge is in front ({why})")];
    for service in &definition.services {
        match (&service.published_by_edge, service.ports.is_empty()) {
            (Some(port), _) => lines.push(format!(
                "  {}: behind the edge, on {}",
                service.name,
                port.rsplit_once(':')
                    .map_or("a port the engine picks", |(host, _)| host)
            )),
            (None, false) => lines.push(format!(
                "  {}: keeps its own ports ({}){}",
                service.name,
                service.ports.join(", "),
                if service.role == app::stacks::ServiceRole::App {
                    ", replaced in place"
                } else {
                    ""
                }
            )),
            (None, true) => {}
        }
    }
    Ok(lines.join("\n"))
}

/// `slipway stack approvals NAME [--required N] [--expires 60m] [--gate-changes B]`.
pub async fn approval_policy(
    name: &str,
    (required, expires_minutes, gate_changes): (Option<i64>, Option<i64>, Option<bool>),
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let outcome = async {
        let current = app::approvals::service::policy(&store, name)
            .await
            .map_err(StartupError::from)?;
        let wanted = app::approvals::ApprovalPolicy {
            required: required.unwrap_or(current.required),
            expires_minutes: expires_minutes.unwrap_or(current.expires_minutes),
            gate_changes: gate_changes.unwrap_or(current.gate_changes),
        };
        if wanted != current {
            app::approvals::service::set_policy(&store, &Actor::command_line(), name, &wanted)
                .await?;
        }
        Ok::<_, CommandError>(wanted)
    }
    .await;
    store.close().await;
    let policy = outcome?;
    Ok(format!(
        "{name}: {} approval(s) per request, requests expire after {} min, deploy/update/migrate {}",
        policy.required,
        policy.expires_minutes,
        if policy.gate_changes {
            "need an approval"
        } else {
            "need none"
        }
    ))
}

/// `slipway release create NAME --version V [--set VAR=VALUE]… [--at TIME]`: prints its id.
pub async fn create_release(
    name: &str,
    (version, sets, at): (&str, &[String], Option<&str>),
    (owner, run, notes): (&str, &str, &str),
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    use app::releases::service;
    let operation = run
        .parse()
        .map_err(|error: String| CommandError::Run(error))?;
    let new = service::NewRelease {
        stack: name.to_owned(),
        version: version.to_owned(),
        sets: service::parse_sets(&sets.join("\n"))?,
        operation,
        planned_at: match at {
            Some(at) => service::parse_time(at)?,
            None => app::store::now_utc(),
        },
        owner: owner.to_owned(),
        notes: notes.to_owned(),
    };
    let store = open_store(store_args).await?;
    let created = service::create(&store, &Actor::command_line(), new).await;
    store.close().await;
    let release = created?;
    Ok(format!(
        "release {} planned: {} (the console's /releases/{} shows it)",
        release.id,
        release.title(),
        release.id
    ))
}

/// `slipway release show ID [--json]`: the automatic items are evaluated first.
pub async fn show_release(
    id: &str,
    json: bool,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let shown = async {
        let engine = Engine::connect().map_err(StackError::from)?;
        let mut release =
            app::releases::service::check(&store, &engine, &store_args.data_dir, id).await?;
        release.plan = app::releases::service::plan(&store, &engine, &release).await?;
        Ok::<_, CommandError>(release)
    }
    .await;
    store.close().await;
    let release = shown?;
    if json {
        return Ok(serde_json::to_string_pretty(&release).unwrap_or_default());
    }
    let mut lines = vec![
        format!(
            "{} · {} · T-0 {}",
            release.title(),
            release.state,
            release.planned_at
        ),
        format!("ships with {}", release.plan.run),
    ];
    lines.extend(
        release
            .plan
            .images
            .iter()
            .map(|image| format!("  {}: {} → {}", image.service, image.current, image.target)),
    );
    lines.extend(release.items.iter().map(|item| {
        format!(
            "[{}] {} {}{}{}",
            item.state,
            item.key,
            item.title,
            if item.required { "" } else { " (optional)" },
            if item.evidence.is_empty() {
                String::new()
            } else {
                format!(" — {}", item.evidence)
            }
        )
    }));
    let closed = release.closed_items();
    lines.push(if closed.is_empty() {
        "the gate is open".to_owned()
    } else {
        format!("the gate is closed: {}", closed.join("; "))
    });
    Ok(lines.join("\n"))
}

/// `slipway release tick ID ITEM [--undo] --as NAME`: the password from standard input.
pub async fn tick_release(
    (id, item): (&str, &str),
    (undo, note): (bool, &str),
    as_user: &str,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let ticked = async {
        let person = command_line_person(&store, as_user).await?;
        let user = app::auth::users::find_by_id(store.pool(), &person.user_id)
            .await
            .map_err(|error| CommandError::Run(error.to_string()))?
            .ok_or_else(|| CommandError::Run(format!("{as_user} is gone")))?;
        let current = app::auth::CurrentUser {
            id: user.id,
            name: user.name,
            role: user.role,
        };
        Ok::<_, CommandError>(
            app::releases::service::tick(&store, &current, &person.actor, (id, item), !undo, note)
                .await?,
        )
    }
    .await;
    store.close().await;
    let release = ticked?;
    Ok(format!(
        "{} {item} on {}; {}",
        if undo { "unticked" } else { "ticked" },
        release.title(),
        match release.closed_items() {
            closed if closed.is_empty() => "the gate is open".to_owned(),
            closed => format!("still closed: {}", closed.join("; ")),
        }
    ))
}

/// `slipway release ship ID [--override WHY] [--as NAME]`: refused while the gate is closed;
/// the run follows here, or — where it needs an approval — the request is made as NAME.
pub async fn ship_release(
    id: &str,
    (override_reason, as_user): (&str, Option<&str>),
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    use app::releases::service::Shipped;
    let store = open_store(store_args).await?;
    let outcome = async {
        let engine = Engine::connect().map_err(StackError::from)?;
        let shipped = app::releases::service::ship(
            (&store, &engine, &store_args.data_dir),
            &Actor::command_line(),
            (id, override_reason),
            true,
        )
        .await?;
        match shipped {
            Shipped::Started(handle, stack) => {
                println!("run {} (shipping release {id})", handle.run.id);
                let run = execute_here(*handle, &engine, &stack, store_args).await?;
                answer(&run, format!("release {id} shipped: run {} succeeded", run.id))
            }
            Shipped::NeedsApproval(request) => {
                let Some(name) = as_user else {
                    return Err(CommandError::Run(format!(
                        "release {id} ships only once approved: ask with --as NAME (your password on standard input)"
                    )));
                };
                let release = app::releases::service::find(&store, id).await?;
                let requester = command_line_person(&store, name).await?;
                let reason = if override_reason.trim().is_empty() {
                    format!("ship release {}", release.title())
                } else {
                    override_reason.trim().to_owned()
                };
                let approval = app::approvals::service::request(
                    &store,
                    &engine,
                    &requester,
                    &release.stack,
                    request,
                    &reason,
                )
                .await?;
                Ok(format!(
                    "approval {} requested: release {} ships once approved on the console at /approvals/{}",
                    approval.id,
                    release.title(),
                    approval.id
                ))
            }
        }
    }
    .await;
    store.close().await;
    outcome
}

/// `slipway channel …`: notification channels, as the Notifications page manages them.
pub async fn channel(command: crate::cli::ChannelCommand) -> Result<String, CommandError> {
    use crate::cli::ChannelCommand;
    use app::notifications::service;
    let actor = Actor::command_line();
    match command {
        ChannelCommand::List { store } => {
            let store = open_store(&store).await?;
            let channels = service::channels(&store).await;
            store.close().await;
            let lines: Vec<String> = channels?
                .iter()
                .map(|c| {
                    format!(
                        "{}  {}  {}  {}  {}  waiting {}  given up {}",
                        c.name,
                        c.kind.as_str(),
                        c.address_hint,
                        c.events.join(","),
                        if c.enabled { "on" } else { "off" },
                        c.pending,
                        c.failed
                    )
                })
                .collect();
            Ok(if lines.is_empty() {
                "no channel yet".to_owned()
            } else {
                lines.join("\n")
            })
        }
        ChannelCommand::Add {
            name,
            kind,
            events,
            store,
        } => {
            let address = read_secret("Webhook address: ")?;
            let store = open_store(&store).await?;
            let request = service::NewChannel {
                name: name.clone(),
                kind,
                address,
                events,
            };
            let added = service::add(&store, &actor, &request).await;
            store.close().await;
            let added = added?;
            Ok(if added.signing_secret.is_empty() {
                format!("added channel {name}")
            } else {
                format!(
                    "added channel {name}\nsigning secret (shown this once; give it to the receiver): {}",
                    added.signing_secret
                )
            })
        }
        ChannelCommand::Test { name, store } => {
            let store = open_store(&store).await?;
            let queued = async {
                let id = service::id_of(&store, &name).await?;
                service::send_test(&store, &actor, &id).await
            }
            .await;
            store.close().await;
            queued?;
            Ok(format!(
                "a test message for {name} is queued; the console sends it (see `slipway channel log {name}`)"
            ))
        }
        ChannelCommand::Log { name, store } => {
            let store = open_store(&store).await?;
            let detail = async {
                let id = service::id_of(&store, &name).await?;
                service::detail(&store, &id).await
            }
            .await;
            store.close().await;
            let lines: Vec<String> = detail?
                .deliveries
                .iter()
                .map(|d| {
                    format!(
                        "{}  {}  {}  {} after {} attempt(s){}",
                        d.created_at,
                        d.event,
                        d.title,
                        d.status,
                        d.attempts,
                        if d.last_error.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", d.last_error)
                        }
                    )
                })
                .collect();
            Ok(if lines.is_empty() {
                "nothing sent yet".to_owned()
            } else {
                lines.join("\n")
            })
        }
    }
}

/// What `slipway stack health` changes; nothing named shows the policy.
pub struct HealthPolicyChange {
    pub every: Option<std::time::Duration>,
    pub watch: Option<std::time::Duration>,
    pub on_failed_verification: Option<String>,
}

/// `slipway stack health NAME [--every D] [--watch D] [--on-failed-verification X]`: the
/// stack's health policy after the change, in words.
pub async fn health_policy(
    name: &str,
    change: HealthPolicyChange,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    use app::health::{service, HealthError, OnFailedVerification};
    let store = open_store(store_args).await?;
    let outcome = async {
        app::stacks::service::find(&store, name).await?;
        let mut policy = service::policy(&store, name)
            .await
            .map_err(HealthError::from)?;
        if change.every.is_none()
            && change.watch.is_none()
            && change.on_failed_verification.is_none()
        {
            return Ok(policy);
        }
        let seconds =
            |duration: std::time::Duration| i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        if let Some(every) = change.every {
            policy.every_seconds = seconds(every);
        }
        if let Some(watch) = change.watch {
            policy.watch_seconds = seconds(watch);
        }
        if let Some(choice) = change.on_failed_verification.as_deref() {
            policy.on_failed_verification = OnFailedVerification::parse(choice).unwrap_or_default();
        }
        Ok::<_, CommandError>(
            service::set_policy(&store, &Actor::command_line(), name, policy).await?,
        )
    }
    .await;
    store.close().await;
    Ok(format!(
        "{name}: {}",
        app::health::policy_in_words(&outcome?)
    ))
}

/// `slipway health NAME [--json]`: every probe's newest result, and whether all pass. When no
/// console has probed the stack within two of its intervals, the checks run once now.
pub async fn health_report(
    name: &str,
    json: bool,
    store_args: &StoreArgs,
) -> Result<(String, bool), CommandError> {
    let store = open_store(store_args).await?;
    let outcome = health_now(&store, name).await;
    store.close().await;
    let stack = outcome?;
    let healthy = stack.failing() == 0;
    if json {
        return Ok((
            serde_json::to_string_pretty(&stack).unwrap_or_default(),
            healthy,
        ));
    }
    let mut lines = vec![format!(
        "{name}: {} (probed every {} s)",
        stack.summary(),
        stack.policy.every_seconds
    )];
    for probe in &stack.probes {
        lines.push(format!(
            "  {} {} {} since {} ({} ms): {}",
            probe.service,
            probe.probe,
            if probe.ok { "passing" } else { "FAILING" },
            probe.since,
            probe.latency_ms,
            probe.detail
        ));
    }
    Ok((lines.join("\n"), healthy))
}

async fn health_now(
    store: &app::store::Store,
    name: &str,
) -> Result<app::health::StackHealth, CommandError> {
    use app::health::{scheduler, service};
    let now = chrono::Utc::now();
    let stack = newest_view(service::now_view(store, name, now).await?, name)?;
    // Results count while a console keeps them fresh and nothing changed the stack since.
    let lately =
        app::store::utc_text(now - chrono::Duration::seconds(2 * stack.policy.every_seconds + 5));
    let changed: Option<(String,)> = sqlx::query_as(
        "SELECT finished_at FROM runs WHERE stack = $1 AND finished_at <> '' \
         ORDER BY finished_at DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(store.pool())
    .await
    .map_err(app::store::StoreError::from)
    .map_err(app::health::HealthError::from)?;
    let changed = changed.map(|(at,)| at).unwrap_or_default();
    let fresh = stack
        .probes
        .iter()
        .all(|probe| probe.last_at > lately && probe.last_at > changed);
    if fresh && !stack.probes.is_empty() {
        return Ok(stack);
    }
    let plan = scheduler::plan_of(store, name)
        .await
        .map_err(app::health::HealthError::Invalid)?;
    let engine = app::stacks::engine::Engine::connect().map_err(StackError::from)?;
    scheduler::probe_once(store, &engine, &plan)
        .await
        .map_err(app::health::HealthError::Invalid)?;
    newest_view(
        service::now_view(store, name, chrono::Utc::now()).await?,
        name,
    )
}

fn newest_view(
    view: Vec<app::health::StackHealth>,
    name: &str,
) -> Result<app::health::StackHealth, CommandError> {
    view.into_iter()
        .next()
        .ok_or_else(|| app::health::HealthError::NotFound(name.to_owned()).into())
}
