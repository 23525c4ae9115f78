//! Server half of runs: the per-stack lock, the executor that runs steps and stores every
//! line before anyone sees it, and recovery of runs whose process died.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::stacks::compose::{self, ServiceDefinition, StackDefinition};
use crate::stacks::engine::Engine;
use crate::stacks::secrets;
use crate::stacks::{lifecycle, ServiceRole, StackSummary};
use crate::store::{now_utc, Store, StoreError};

use super::{
    Operation, RunDetail, RunError, RunEvent, RunLine, RunStatus, RunStep, RunSummary, StepStatus,
};

/// This process, as run holders are written: `host:pid`.
pub fn this_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether the process behind `holder` still runs; only this host's processes can be checked.
fn holder_alive(holder: &str) -> bool {
    let this_host = this_holder();
    let this_host = this_host.split(':').next().unwrap_or_default();
    match holder.rsplit_once(':') {
        Some((host, pid)) if host == this_host => Path::new(&format!("/proc/{pid}")).exists(),
        _ => true,
    }
}

fn store_error(error: sqlx::Error) -> RunError {
    RunError::from(StoreError::from(error))
}

/// A run in progress: every line and step change goes to the store first.
pub struct RunHandle {
    store: Store,
    pub run: RunSummary,
    next_seq: AtomicI64,
    /// Print lines to stdout as well (the command line).
    echo: bool,
    /// Values masked in every stored line.
    secrets: Vec<String>,
    released: bool,
    /// Set when the console is stopping: the run ends before its next step.
    stopping: Option<tokio_util::sync::CancellationToken>,
}

/// How a run that did not succeed ended.
#[derive(Debug)]
enum RunEnd {
    /// A step failed; the words say why (secrets masked before they are stored).
    Failed(String),
    /// Someone cancelled it.
    Cancelled,
    /// The console was stopping: the run stopped before its next step.
    Interrupted,
}

impl From<String> for RunEnd {
    fn from(reason: String) -> Self {
        RunEnd::Failed(reason)
    }
}

/// Asks a running run to stop before its next step; the step under way finishes first.
pub async fn request_cancel(store: &Store, actor: &Actor, id: &str) -> Result<(), RunError> {
    let mut audited = Audited::begin(store).await?;
    let updated = sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1 AND status = $2")
        .bind(id)
        .bind(RunStatus::Running.as_str())
        .execute(audited.db())
        .await
        .map_err(store_error)?;
    if updated.rows_affected() == 0 {
        audited.rollback().await?;
        return Err(RunError::NotFound(format!("{id} (or it is not running)")));
    }
    audited
        .append(actor, "run.cancel_requested", id, json!({}))
        .await?;
    Ok(audited.commit().await?)
}

/// Finds the stack and begins a run of `operation` on it: the one start that the console's
/// buttons and the command line share.
pub async fn start(
    store: &Store,
    stack: &str,
    operation: Operation,
    actor: &Actor,
    echo: bool,
) -> Result<(RunHandle, StackSummary), RunError> {
    let stack = crate::stacks::service::find(store, stack).await?;
    let handle = begin(store, &stack, operation, actor, echo).await?;
    Ok((handle, stack))
}

/// Takes the stack's lock and records a new run; refused while another run holds the stack.
pub async fn begin(
    store: &Store,
    stack: &StackSummary,
    operation: Operation,
    actor: &Actor,
    echo: bool,
) -> Result<RunHandle, RunError> {
    let now = now_utc();
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        stack: stack.name.clone(),
        operation,
        status: RunStatus::Running,
        requested_by: actor.name.clone(),
        started_at: now.clone(),
        finished_at: String::new(),
        error: String::new(),
    };
    let holder = this_holder();
    let mut audited = Audited::begin(store).await?;
    let locked = sqlx::query(
        "INSERT INTO stack_locks (stack, run_id, holder, requested_by, since, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&run.stack)
    .bind(&run.id)
    .bind(&holder)
    .bind(&run.requested_by)
    .bind(&now)
    .bind(&now)
    .execute(audited.db())
    .await;
    if let Err(sqlx::Error::Database(db)) = &locked {
        if db.is_unique_violation() {
            audited.rollback().await?;
            return Err(busy(store, &run.stack).await);
        }
    }
    locked.map_err(store_error)?;
    sqlx::query(
        "INSERT INTO runs (id, stack, operation, status, requested_by, holder, started_at, finished_at, error, cancel_requested, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, '', '', 0, $8)",
    )
    .bind(&run.id)
    .bind(&run.stack)
    .bind(run.operation.as_str())
    .bind(run.status.as_str())
    .bind(&run.requested_by)
    .bind(&holder)
    .bind(&now)
    .bind(&now)
    .execute(audited.db())
    .await
    .map_err(store_error)?;
    audited
        .append(
            actor,
            "run.started",
            &run.stack,
            json!({ "run": run.id, "operation": run.operation.as_str() }),
        )
        .await?;
    audited.commit().await?;
    Ok(RunHandle {
        store: store.clone(),
        run,
        next_seq: AtomicI64::new(1),
        echo,
        secrets: Vec::new(),
        released: false,
        stopping: None,
    })
}

/// Who holds a busy stack, in words.
async fn busy(store: &Store, stack: &str) -> RunError {
    let holder: Option<(String, String, String)> =
        sqlx::query_as("SELECT run_id, requested_by, since FROM stack_locks WHERE stack = $1")
            .bind(stack)
            .fetch_optional(store.pool())
            .await
            .unwrap_or(None);
    match holder {
        Some((run, who, since)) => RunError::Busy(format!(
            "stack {stack} is busy: run {run}, started by {who} at {since}; wait for it or cancel it"
        )),
        None => RunError::Busy(format!("stack {stack} is busy; try again in a moment")),
    }
}

impl RunHandle {
    /// Records the steps the run will take, all pending.
    pub async fn plan(&self, names: &[String]) -> Result<(), RunError> {
        for (index, name) in names.iter().enumerate() {
            sqlx::query(
                "INSERT INTO run_steps (run_id, position, name, status, started_at, finished_at, created_at) \
                 VALUES ($1, $2, $3, $4, '', '', $5)",
            )
            .bind(&self.run.id)
            .bind(index as i64)
            .bind(name)
            .bind(StepStatus::Pending.as_str())
            .bind(now_utc())
            .execute(self.store.pool())
            .await
            .map_err(store_error)?;
        }
        Ok(())
    }

    async fn set_step(&self, position: i64, status: StepStatus) -> Result<(), RunError> {
        let column = if status == StepStatus::Running {
            "started_at"
        } else {
            "finished_at"
        };
        sqlx::query(&format!(
            "UPDATE run_steps SET status = $1, {column} = $2 WHERE run_id = $3 AND position = $4"
        ))
        .bind(status.as_str())
        .bind(now_utc())
        .bind(&self.run.id)
        .bind(position)
        .execute(self.store.pool())
        .await
        .map_err(store_error)?;
        Ok(())
    }

    /// Stores one line of step `step`'s output.
    pub async fn line(&self, step: i64, text: &str) -> Result<(), RunError> {
        let text = secrets::redact(text, &self.secrets);
        let text = text.as_str();
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        sqlx::query(
            "INSERT INTO run_lines (run_id, seq, step, at, text, created_at) VALUES ($1, $2, $3, $4, $5, $4)",
        )
        .bind(&self.run.id)
        .bind(seq)
        .bind(step)
        .bind(now_utc())
        .bind(text)
        .execute(self.store.pool())
        .await
        .map_err(store_error)?;
        if self.echo {
            println!("  {text}");
        }
        Ok(())
    }

    /// Makes the run end before its next step once `stopping` is cancelled.
    pub fn stop_with(&mut self, stopping: tokio_util::sync::CancellationToken) {
        self.stopping = Some(stopping);
    }

    fn console_stopping(&self) -> bool {
        self.stopping
            .as_ref()
            .is_some_and(tokio_util::sync::CancellationToken::is_cancelled)
    }

    /// Whether someone asked to cancel the run.
    async fn cancel_requested(&self) -> Result<bool, RunError> {
        let (requested,): (i64,) =
            sqlx::query_as("SELECT cancel_requested FROM runs WHERE id = $1")
                .bind(&self.run.id)
                .fetch_one(self.store.pool())
                .await
                .map_err(store_error)?;
        Ok(requested != 0)
    }

    /// Resolves once someone has asked to cancel the run (looked up every half second).
    async fn cancelled(&self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            // A store that does not answer is no request to cancel.
            if self.cancel_requested().await.unwrap_or(false) {
                return;
            }
        }
    }

    /// Ends the run, frees the stack and audits the outcome.
    async fn finish(mut self, outcome: &Result<(), RunEnd>) -> Result<RunSummary, RunError> {
        let (status, error) = match outcome {
            Ok(()) => (RunStatus::Succeeded, String::new()),
            Err(RunEnd::Cancelled) => (RunStatus::Cancelled, String::new()),
            Err(RunEnd::Interrupted) => (
                RunStatus::Interrupted,
                "the console was stopping: the run stopped before its next step".to_owned(),
            ),
            Err(RunEnd::Failed(error)) => (RunStatus::Failed, error.clone()),
        };
        let now = now_utc();
        let mut audited = Audited::begin(&self.store).await?;
        sqlx::query("UPDATE runs SET status = $1, finished_at = $2, error = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(&now)
            .bind(&error)
            .bind(&self.run.id)
            .execute(audited.db())
            .await
            .map_err(store_error)?;
        release(audited.db(), &self.run.id).await?;
        audited
            .append(
                &Actor::system(),
                "run.finished",
                &self.run.stack,
                json!({ "run": self.run.id, "status": status.as_str(), "error": error }),
            )
            .await?;
        audited.commit().await?;
        self.released = true;
        self.run.status = status;
        self.run.finished_at = now;
        self.run.error = error;
        Ok(self.run.clone())
    }
}

impl Drop for RunHandle {
    /// A run dropped before it finished (a panic, a cancelled task) still frees its stack.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, run_id) = (self.store.clone(), self.run.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = sqlx::query(
                    "UPDATE runs SET status = $1, finished_at = $2 WHERE id = $3 AND status = $4",
                )
                .bind(RunStatus::Interrupted.as_str())
                .bind(now_utc())
                .bind(&run_id)
                .bind(RunStatus::Running.as_str())
                .execute(store.pool())
                .await;
                let _ = release(store.pool(), &run_id).await;
            });
        }
    }
}

async fn release<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    run_id: &str,
) -> Result<(), RunError> {
    sqlx::query("DELETE FROM stack_locks WHERE run_id = $1")
        .bind(run_id)
        .execute(db)
        .await
        .map_err(store_error)?;
    Ok(())
}

/// One step of a run.
enum Step<'a> {
    CheckEnv,
    Build(&'a ServiceDefinition),
    Prepare,
    Start(&'a ServiceDefinition),
    WaitReady(Vec<&'a ServiceDefinition>),
    Migrate(&'a ServiceDefinition),
    Stop(&'a ServiceDefinition),
    PinEdge,
    VerifyMigrations(&'a ServiceDefinition),
    RemoveStoppedContainers,
    RemoveUnusedImages,
    Replace(&'a ServiceDefinition),
    CheckProbe,
    RemoveReplaced,
    RecordImages,
}

impl Step<'_> {
    /// Steps that only wait (for health, for a build) stop at once when the run is cancelled;
    /// the others change the stack and finish first.
    fn is_a_wait(&self) -> bool {
        matches!(self, Step::WaitReady(_) | Step::Build(_) | Step::CheckProbe)
    }

    fn name(&self) -> String {
        match self {
            Step::CheckEnv => "Check the env file".into(),
            Step::Build(service) => format!("Build the image of {}", service.name),
            Step::Prepare => "Prepare the network and volumes".into(),
            Step::Start(service) => format!("Start {}", service.name),
            Step::WaitReady(services) => format!(
                "Wait until {} are healthy",
                services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Step::Migrate(service) => format!("Run the migrations of {}", service.name),
            Step::Stop(service) => format!("Stop {}", service.name),
            Step::PinEdge => "Pin the edge to the running containers".into(),
            Step::VerifyMigrations(service) => {
                format!("Verify the migration records of {}", service.name)
            }
            Step::RemoveStoppedContainers => "Remove stopped containers".into(),
            Step::RemoveUnusedImages => "Remove unused images".into(),
            Step::Replace(service) => format!("Update {} beside the running one", service.name),
            Step::CheckProbe => "Check the rollout probe".into(),
            Step::RemoveReplaced => "Remove the replaced containers".into(),
            Step::RecordImages => "Record the running images".into(),
        }
    }
}

/// The steps of an operation on this stack, in order.
fn plan(operation: Operation, definition: &StackDefinition) -> Result<Vec<Step<'_>>, String> {
    let order = lifecycle::dependency_order(definition).map_err(|e| e.to_string())?;
    let (data, others): (Vec<&ServiceDefinition>, Vec<&ServiceDefinition>) = order
        .iter()
        .copied()
        .partition(|s| s.role == ServiceRole::Data);
    Ok(match operation {
        Operation::Start => std::iter::once(Step::Prepare)
            .chain(order.iter().map(|s| Step::Start(s)))
            .collect(),
        Operation::Stop => order.iter().rev().map(|s| Step::Stop(s)).collect(),
        Operation::Deploy => {
            let mut steps = vec![Step::CheckEnv];
            steps.extend(builds(&order));
            steps.push(Step::Prepare);
            steps.extend(data.iter().map(|s| Step::Start(s)));
            if !data.is_empty() {
                steps.push(Step::WaitReady(data.clone()));
            }
            steps.extend(
                order
                    .iter()
                    .filter(|s| s.migrate.is_some())
                    .map(|s| Step::Migrate(s)),
            );
            steps.extend(others.iter().map(|s| Step::Start(s)));
            steps.push(Step::WaitReady(order.clone()));
            steps.push(Step::RecordImages);
            steps
        }
        Operation::Cleanup => vec![Step::RemoveStoppedContainers, Step::RemoveUnusedImages],
        Operation::Migrate => {
            let mut steps: Vec<Step> = others.iter().rev().map(|s| Step::Stop(s)).collect();
            steps.extend(data.iter().map(|s| Step::Start(s)));
            if !data.is_empty() {
                steps.push(Step::WaitReady(data.clone()));
            }
            for service in order.iter().filter(|s| s.migrate.is_some()) {
                steps.push(Step::Migrate(service));
                if service.migrations_table.is_some() {
                    steps.push(Step::VerifyMigrations(service));
                }
            }
            steps.extend(others.iter().map(|s| Step::Start(s)));
            steps.push(Step::WaitReady(order.clone()));
            steps
        }
        Operation::Update => {
            let mut steps = builds(&order);
            steps.push(Step::PinEdge);
            steps.extend(
                others
                    .iter()
                    .filter(|s| s.role == ServiceRole::App)
                    .map(|s| Step::Replace(s)),
            );
            steps.push(Step::CheckProbe);
            steps.push(Step::RemoveReplaced);
            steps.push(Step::RecordImages);
            steps
        }
    })
}

/// A build step for each service with a build context.
fn builds<'a>(order: &[&'a ServiceDefinition]) -> Vec<Step<'a>> {
    order
        .iter()
        .filter(|s| s.build.is_some())
        .map(|s| Step::Build(s))
        .collect()
}

/// Runs every step in order and finishes the run; the first failing step ends it.
#[tracing::instrument(skip_all, fields(run = handle.run.id, stack = stack.name))]
pub async fn execute(
    mut handle: RunHandle,
    engine: &Engine,
    stack: &StackSummary,
) -> Result<RunSummary, RunError> {
    let env_file = stack.env_file.as_deref().map(Path::new);
    handle.secrets = secrets::secret_values(Path::new(&stack.compose_file), env_file);
    let outcome = run_steps(&handle, engine, stack).await;
    let outcome = outcome.map_err(|end| match end {
        RunEnd::Failed(error) => RunEnd::Failed(secrets::redact(&error, &handle.secrets)),
        other => other,
    });
    handle.finish(&outcome).await
}

async fn run_steps(
    handle: &RunHandle,
    engine: &Engine,
    stack: &StackSummary,
) -> Result<(), RunEnd> {
    let env_file = stack.env_file.as_deref().map(Path::new);
    let definition = compose::load(Path::new(&stack.compose_file), env_file)
        .map_err(|error| error.to_string())?;
    let steps = plan(handle.run.operation, &definition)?;
    let names: Vec<String> = steps.iter().map(Step::name).collect();
    handle.plan(&names).await.map_err(|e| e.to_string())?;
    let probe = (handle.run.operation == Operation::Update)
        .then(|| RolloutProbe::start(&definition))
        .flatten();
    let context = StepContext {
        engine,
        stack,
        probe: probe.as_ref(),
        replaced: std::sync::Mutex::new(Vec::new()),
        definition: &definition,
        compose_dir: Path::new(&stack.compose_file)
            .parent()
            .unwrap_or(Path::new("/"))
            .to_path_buf(),
    };
    let step_count = names.len() as i64;
    let end_from = |position: i64, end: RunEnd| async move {
        let status = match end {
            RunEnd::Interrupted => StepStatus::Interrupted,
            _ => StepStatus::Cancelled,
        };
        for later in position..step_count {
            handle
                .set_step(later, status)
                .await
                .map_err(|e| e.to_string())?;
        }
        Err::<(), RunEnd>(end)
    };
    let cancel_from = |position: i64| end_from(position, RunEnd::Cancelled);
    for (position, step) in steps.iter().enumerate() {
        let position = position as i64;
        if handle.console_stopping() {
            context
                .restore_replaced(&StepLog {
                    handle,
                    step: position,
                })
                .await?;
            return end_from(position, RunEnd::Interrupted).await;
        }
        if handle.cancel_requested().await.map_err(|e| e.to_string())? {
            return cancel_from(position).await;
        }
        handle
            .set_step(position, StepStatus::Running)
            .await
            .map_err(|e| e.to_string())?;
        if handle.echo {
            println!("{}", names[position as usize]);
        }
        let log = StepLog {
            handle,
            step: position,
        };
        let result = if step.is_a_wait() {
            tokio::select! {
                result = context.run(step, &log) => result,
                () = handle.cancelled() => {
                    log.say("cancelled while waiting").await?;
                    context.restore_replaced(&log).await?;
                    return cancel_from(position).await;
                }
            }
        } else {
            context.run(step, &log).await
        };
        if let Err(error) = &result {
            log.say(error).await?;
            // An update is all or nothing: every service it replaced goes back.
            context.restore_replaced(&log).await?;
        }
        let status = if result.is_ok() {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        };
        handle
            .set_step(position, status)
            .await
            .map_err(|e| e.to_string())?;
        result?;
    }
    Ok(())
}

/// Where a step's lines go: each is stored the moment the step says it.
struct StepLog<'a> {
    handle: &'a RunHandle,
    step: i64,
}

impl StepLog<'_> {
    async fn say(&self, text: impl AsRef<str>) -> Result<(), String> {
        self.handle
            .line(self.step, text.as_ref())
            .await
            .map_err(|e| e.to_string())
    }
}

struct StepContext<'a> {
    engine: &'a Engine,
    stack: &'a StackSummary,
    probe: Option<&'a RolloutProbe>,
    /// What an update has replaced so far: put back if the update fails at any later point.
    replaced: std::sync::Mutex<Vec<(&'a ServiceDefinition, lifecycle::Replacement)>>,
    definition: &'a StackDefinition,
    compose_dir: std::path::PathBuf,
}

/// What cleanup removes must be at least this old, unless `SLIPWAY_CLEANUP_AFTER` says otherwise.
const CLEANUP_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Unix seconds before which stopped containers and unused images may go.
fn cleanup_cutoff() -> Result<i64, String> {
    let age = match std::env::var("SLIPWAY_CLEANUP_AFTER") {
        Ok(text) => humantime::parse_duration(&text)
            .map_err(|_| format!("SLIPWAY_CLEANUP_AFTER={text:?} is not a duration such as 24h"))?,
        Err(_) => CLEANUP_AFTER,
    };
    Ok(crate::store::now_epoch() - age.as_secs() as i64)
}

/// `text` as an SQL string literal; callers have checked it holds only name characters.
fn sql_text(text: &str) -> String {
    format!("$q${text}$q$")
}

/// Names with "secret" must be at least this long; passwords, tokens and keys this.
const MIN_SECRET_CHARS: usize = 32;
const MIN_PASSWORD_CHARS: usize = 12;

impl<'a> StepContext<'a> {
    /// Runs one step; every line it reports is stored as it comes.
    async fn run(&self, step: &Step<'a>, log: &StepLog<'_>) -> Result<(), String> {
        let project = self.stack.project.as_str();
        let text = |error: crate::stacks::StackError| error.to_string();
        match step {
            Step::CheckEnv => self.check_env(log).await,
            Step::Build(service) => self.build(service, log).await,
            Step::Prepare => {
                lifecycle::prepare(self.engine, self.definition, project)
                    .await
                    .map_err(text)?;
                log.say(format!("network {project}_default ready")).await
            }
            Step::Start(service) => {
                let started =
                    lifecycle::start_service(self.engine, project, service, &self.compose_dir)
                        .await
                        .map_err(text)?;
                log.say(format!(
                    "{}: {}",
                    service.name,
                    format!("{started:?}").to_lowercase()
                ))
                .await
            }
            Step::WaitReady(services) => {
                for service in services {
                    lifecycle::wait_ready(self.engine, project, service)
                        .await
                        .map_err(text)?;
                    let ready = if service.role == ServiceRole::Job {
                        "finished (exit code 0)"
                    } else {
                        "ready"
                    };
                    log.say(format!("{}: {ready}", service.name)).await?;
                }
                Ok(())
            }
            Step::Migrate(service) => {
                let command = service.migrate.clone().unwrap_or_default();
                let code = lifecycle::run_once(
                    self.engine,
                    project,
                    service,
                    &self.compose_dir,
                    &command,
                    |line| log.say(line),
                )
                .await
                .map_err(text)?;
                if code != 0 {
                    return Err(format!("{} exited with {code}", command.join(" ")));
                }
                log.say(format!("{} finished", command.join(" "))).await
            }
            Step::Stop(service) => {
                let stopped = lifecycle::stop_service(self.engine, project, service)
                    .await
                    .map_err(text)?;
                log.say(format!("{}: stopped {stopped} container(s)", service.name))
                    .await
            }
            Step::PinEdge => {
                let edge = self.edge()?;
                for service in self
                    .definition
                    .services
                    .iter()
                    .filter(|s| s.role == ServiceRole::App)
                {
                    let running = lifecycle::running_container(self.engine, project, &service.name)
                        .await
                        .map_err(text)?;
                    log.say(
                        lifecycle::switch_edge(self.engine, project, edge, service, &running)
                            .await
                            .map_err(text)?,
                    )
                    .await?;
                }
                Ok(())
            }
            Step::Replace(service) => self.replace(service, log).await,
            Step::VerifyMigrations(service) => self.verify_migrations(service, log).await,
            Step::RemoveStoppedContainers => self.remove_stopped_containers(log).await,
            Step::RemoveUnusedImages => self.remove_unused_images(log).await,
            Step::CheckProbe => {
                let Some(probe) = self.probe else {
                    return log
                        .say("no rollout probe: the edge publishes no port")
                        .await;
                };
                // The new containers serve a while before the update counts as held.
                let held = tokio::time::timeout(SETTLE, probe.exceeded())
                    .await
                    .is_err();
                let (failed, total) = probe.counts();
                let line = format!("rollout probe: {failed} failed of {total} requests");
                if !held {
                    return Err(format!("{line}: over the error budget"));
                }
                log.say(line).await
            }
            Step::RemoveReplaced => {
                let replaced = std::mem::take(&mut *self.replaced_list());
                for (_, replacement) in &replaced {
                    lifecycle::remove_replaced(self.engine, &replacement.old)
                        .await
                        .map_err(text)?;
                    log.say(format!("removed {}", replacement.old.name)).await?;
                }
                if replaced.is_empty() {
                    log.say("nothing was replaced").await?;
                }
                Ok(())
            }
            Step::RecordImages => self.record_images(log).await,
        }
    }

    /// The containers of the stack's project, as the engine reports them now.
    async fn containers(&self) -> Result<Vec<crate::stacks::ContainerStatus>, String> {
        self.engine
            .project_containers(&self.stack.project)
            .await
            .map_err(|e| e.to_string())
    }

    /// Stopped containers of the project older than the cleanup age.
    async fn remove_stopped_containers(&self, log: &StepLog<'_>) -> Result<(), String> {
        let cutoff = cleanup_cutoff()?;
        let containers = self.containers().await?;
        let mut removed = 0;
        for container in containers.iter().filter(|c| {
            matches!(c.state.as_str(), "exited" | "created" | "dead") && c.created_unix < cutoff
        }) {
            self.engine
                .remove_container(&container.id)
                .await
                .map_err(|e| e.to_string())?;
            log.say(format!("removed {} ({})", container.name, container.state))
                .await?;
            removed += 1;
        }
        if removed == 0 {
            log.say("no stopped container old enough").await?;
        }
        Ok(())
    }

    /// The stack's own untagged images (built for its project) older than the cleanup age,
    /// except any a recorded run ran; other projects' images are never touched.
    async fn remove_unused_images(&self, log: &StepLog<'_>) -> Result<(), String> {
        let cutoff = cleanup_cutoff()?;
        let recorded: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT image_id FROM run_images")
            .fetch_all(log.handle.store.pool())
            .await
            .map_err(|e| e.to_string())?;
        let images = self
            .engine
            .dangling_images(&self.stack.project)
            .await
            .map_err(|e| e.to_string())?;
        let mut said = 0;
        for (id, created) in images {
            let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
            let line = if recorded.iter().any(|(kept,)| *kept == short) {
                format!("kept {short}: a recorded run could roll back to it")
            } else if created >= cutoff {
                continue;
            } else {
                match self.engine.remove_image(&id).await {
                    Ok(()) => format!("removed image {short}"),
                    Err(error) => format!("left image {short}: {error}"),
                }
            };
            log.say(line).await?;
            said += 1;
        }
        if said == 0 {
            log.say("no unused image old enough").await?;
        }
        Ok(())
    }

    /// The newest rows of the service's migrations table, read in the database container.
    async fn verify_migrations(
        &self,
        service: &ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let table = service.migrations_table.as_deref().unwrap_or_default();
        if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{table:?} is not a table name"));
        }
        let database = self
            .definition
            .services
            .iter()
            .find(|s| s.backup.as_deref() == Some("pg_dump"))
            .ok_or("no PostgreSQL service (backup: pg_dump) to read the records from")?;
        let container =
            lifecycle::running_container(self.engine, &self.stack.project, &database.name)
                .await
                .map_err(|e| e.to_string())?;
        // Slipway reads the records as Prisma keeps them; another shape is named, not guessed.
        let columns = lifecycle::psql(
            self.engine,
            &container,
            &format!(
                "SELECT column_name FROM information_schema.columns WHERE table_name = {}",
                sql_text(table)
            ),
        )
        .await?;
        let has = |column: &str| columns.lines().any(|line| line.trim() == column);
        if !has("migration_name") || !has("finished_at") {
            return Err(format!(
                "{table} has no migration_name and finished_at columns: migrations_table must \
                 name a table shaped like Prisma's _prisma_migrations"
            ));
        }
        let sql = format!(
            "SELECT migration_name, finished_at FROM {table} ORDER BY finished_at DESC LIMIT 5"
        );
        let rows = lifecycle::psql(self.engine, &container, &sql).await?;
        let records: Vec<&str> = rows.lines().filter(|l| !l.trim().is_empty()).collect();
        if records.is_empty() {
            return Err(format!("{table} has no records"));
        }
        for record in records {
            log.say(record).await?;
        }
        Ok(())
    }

    fn edge(&self) -> Result<&ServiceDefinition, String> {
        self.definition
            .services
            .iter()
            .find(|s| s.role == ServiceRole::Edge)
            .ok_or_else(|| "the stack has no service with role edge to switch".to_owned())
    }

    /// New container beside the old, healthy within the bound, edge switched, old drained
    /// and stopped; past the error budget the old one is put back.
    async fn replace(
        &self,
        service: &'a ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let project = self.stack.project.as_str();
        let text = |error: crate::stacks::StackError| error.to_string();
        let edge = self.edge()?;
        let Some(replacement) =
            lifecycle::start_beside(self.engine, project, service, &self.compose_dir)
                .await
                .map_err(text)?
        else {
            return log.say(format!("{}: already current", service.name)).await;
        };
        log.say(format!(
            "started {} beside {}",
            replacement.new_name, replacement.old.name
        ))
        .await?;
        match lifecycle::wait_new_healthy(self.engine, project, service, &replacement.new_id).await
        {
            Ok(took) => {
                log.say(format!(
                    "{} healthy after {:.1} s",
                    replacement.new_name,
                    took.as_secs_f64()
                ))
                .await?
            }
            Err(error) => {
                let _ = lifecycle::abandon(self.engine, &replacement.new_id).await;
                return Err(format!("{error}; {} keeps serving", replacement.old.name));
            }
        }
        log.say(
            lifecycle::switch_edge(self.engine, project, edge, service, &replacement.new_name)
                .await
                .map_err(text)?,
        )
        .await?;
        lifecycle::drain().await;
        // From here on, a failure anywhere in the update puts this container back too.
        let old = replacement.old.clone();
        self.replaced_list().push((service, replacement));
        if let Some(over) = self.over_budget() {
            return Err(over);
        }
        lifecycle::stop_replaced(self.engine, service, &old)
            .await
            .map_err(text)?;
        log.say(format!(
            "drained and stopped {}; it is removed once the update has held",
            old.name
        ))
        .await
    }

    fn replaced_list(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<(&'a ServiceDefinition, lifecycle::Replacement)>> {
        self.replaced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The probe's verdict when it is past the error budget.
    fn over_budget(&self) -> Option<String> {
        let probe = self.probe.filter(|probe| probe.over_budget())?;
        let (failed, total) = probe.counts();
        Some(format!(
            "{failed} of {total} requests failed, over the error budget"
        ))
    }

    /// Puts back every container the update replaced, newest first.
    async fn restore_replaced(&self, log: &StepLog<'_>) -> Result<(), String> {
        let replaced = std::mem::take(&mut *self.replaced_list());
        if replaced.is_empty() {
            return Ok(());
        }
        let edge = self.edge()?;
        for (service, replacement) in replaced.iter().rev() {
            let line =
                lifecycle::reinstate(self.engine, &self.stack.project, edge, service, replacement)
                    .await
                    .unwrap_or_else(|error| {
                        format!(
                            "{}: could not put {} back: {error}",
                            service.name, replacement.old.name
                        )
                    });
            log.say(line).await?;
        }
        Ok(())
    }

    /// Builds the service's image, every line of the builder's output stored as it comes,
    /// the whole build bounded by [`lifecycle::BUILD_WITHIN`].
    async fn build(&self, service: &ServiceDefinition, log: &StepLog<'_>) -> Result<(), String> {
        use futures::StreamExt;
        let tag = service.image_name(&self.stack.project);
        let started = std::time::Instant::now();
        let building = async {
            let output =
                lifecycle::build(self.engine, &self.stack.project, service, &self.compose_dir)
                    .await
                    .map_err(|e| e.to_string())?;
            let mut output = std::pin::pin!(output);
            while let Some(line) = output.next().await {
                log.say(line.map_err(|e| format!("building {tag}: {e}"))?)
                    .await?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(lifecycle::BUILD_WITHIN, building)
            .await
            .map_err(|_| {
                format!(
                    "building {tag} took longer than {} minutes; it was stopped",
                    lifecycle::BUILD_WITHIN.as_secs() / 60
                )
            })??;
        log.say(format!(
            "built {tag} in {:.1} s",
            started.elapsed().as_secs_f64()
        ))
        .await
    }

    /// Secrets must be long enough; only names and lengths are reported, never values.
    async fn check_env(&self, log: &StepLog<'_>) -> Result<(), String> {
        let Some(path) = self.stack.env_file.as_deref() else {
            return log.say("no env file").await;
        };
        let entries = compose::env_file_entries(Path::new(path)).map_err(|e| e.to_string())?;
        log.say(format!("{} variables in {path}", entries.len()))
            .await?;
        for (name, value) in entries
            .iter()
            .filter(|(name, _)| secrets::is_secret_name(name))
        {
            let needed = if name.to_ascii_uppercase().contains("SECRET") {
                MIN_SECRET_CHARS
            } else {
                MIN_PASSWORD_CHARS
            };
            let length = value.chars().count();
            if length < needed {
                return Err(format!(
                    "{name} has {length} characters; it needs at least {needed}"
                ));
            }
            log.say(format!("{name}: {length} characters")).await?;
        }
        Ok(())
    }

    /// The image ids now running become this run's record: the stack's last-known-good.
    async fn record_images(&self, log: &StepLog<'_>) -> Result<(), String> {
        let containers = self.containers().await?;
        for container in containers.iter().filter(|c| c.state == "running") {
            sqlx::query("INSERT INTO run_images (run_id, service, image, image_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&log.handle.run.id)
                .bind(&container.service)
                .bind(&container.image)
                .bind(&container.image_id)
                .bind(now_utc())
                .execute(log.handle.store.pool())
                .await
                .map_err(|e| e.to_string())?;
            log.say(format!(
                "{}: {} ({})",
                container.service, container.image, container.image_id
            ))
            .await?;
        }
        Ok(())
    }
}

/// At console start: runs whose process is gone are marked interrupted at the step they were
/// on, and their stacks freed. Returns how many.
pub async fn recover_interrupted(store: &Store) -> Result<usize, StoreError> {
    let running = running_runs(store).await?;
    let mut recovered = 0;
    for (id, holder) in running
        .into_iter()
        .filter(|(_, holder)| !holder_alive(holder))
    {
        let reason = format!("the process running it ({holder}) stopped before it finished");
        interrupt(store, &id, &holder, &reason).await?;
        recovered += 1;
    }
    Ok(recovered)
}

/// At console stop, once the grace period is over: this process's runs still going are
/// marked interrupted at the step they are on, and their stacks freed. Returns how many.
pub async fn interrupt_own(store: &Store) -> Result<usize, StoreError> {
    let holder = this_holder();
    let own: Vec<String> = running_runs(store)
        .await?
        .into_iter()
        .filter(|(_, held_by)| *held_by == holder)
        .map(|(id, _)| id)
        .collect();
    for id in &own {
        interrupt(store, id, &holder, "the console stopped before it finished").await?;
    }
    Ok(own.len())
}

async fn running_runs(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, holder FROM runs WHERE status = $1")
            .bind(RunStatus::Running.as_str())
            .fetch_all(store.pool())
            .await?,
    )
}

/// Marks one run interrupted at the step it is on and frees its stack, audited.
async fn interrupt(store: &Store, id: &str, holder: &str, reason: &str) -> Result<(), StoreError> {
    let now = now_utc();
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "UPDATE run_steps SET status = $1, finished_at = $2 WHERE run_id = $3 AND status = $4",
    )
    .bind(StepStatus::Interrupted.as_str())
    .bind(&now)
    .bind(id)
    .bind(StepStatus::Running.as_str())
    .execute(audited.db())
    .await?;
    sqlx::query(
        "UPDATE runs SET status = $1, finished_at = $2, error = $3 WHERE id = $4 AND status = $5",
    )
    .bind(RunStatus::Interrupted.as_str())
    .bind(&now)
    .bind(reason)
    .bind(id)
    .bind(RunStatus::Running.as_str())
    .execute(audited.db())
    .await?;
    sqlx::query("DELETE FROM stack_locks WHERE run_id = $1")
        .bind(id)
        .execute(audited.db())
        .await?;
    audited
        .append(
            &Actor::system(),
            "run.interrupted",
            id,
            json!({ "holder": holder, "reason": reason }),
        )
        .await?;
    audited.commit().await
}

type RunRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);
const RUN_COLUMNS: &str =
    "id, stack, operation, status, requested_by, started_at, finished_at, error";

fn run_from_row(
    (id, stack, operation, status, requested_by, started_at, finished_at, error): RunRow,
) -> RunSummary {
    RunSummary {
        id,
        stack,
        operation: operation.parse().unwrap_or(Operation::Start),
        // Only this module writes the column, always from a `RunStatus`.
        status: status.parse().unwrap_or(RunStatus::Failed),
        requested_by,
        started_at,
        finished_at,
        error,
    }
}

/// The newest runs, of one stack or of all.
pub async fn list(store: &Store, stack: &str) -> Result<Vec<RunSummary>, RunError> {
    let rows: Vec<RunRow> = sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE ($1 = '' OR stack = $1) ORDER BY started_at DESC LIMIT 100"
    ))
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows.into_iter().map(run_from_row).collect())
}

/// A run with its steps and every stored line.
pub async fn detail(store: &Store, id: &str) -> Result<RunDetail, RunError> {
    Ok(RunDetail {
        run: summary(store, id).await?,
        steps: steps(store, id).await?,
        lines: lines_after(store, id, 0, i64::MAX).await?,
    })
}

/// The run alone; `NotFound` when there is no such run.
pub async fn summary(store: &Store, id: &str) -> Result<RunSummary, RunError> {
    let row: Option<RunRow> =
        sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(store_error)?;
    row.map(run_from_row)
        .ok_or_else(|| RunError::NotFound(id.to_owned()))
}

async fn steps(store: &Store, id: &str) -> Result<Vec<RunStep>, RunError> {
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT position, name, status, started_at, finished_at FROM run_steps WHERE run_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(
            |(position, name, status, started_at, finished_at)| RunStep {
                took: took(&started_at, &finished_at),
                position,
                name,
                // Only this module writes the column, always from a `StepStatus`.
                status: status.parse().unwrap_or(StepStatus::Failed),
                started_at,
                finished_at,
            },
        )
        .collect())
}

/// How long a finished step took, in words; empty while it runs or before it starts.
fn took(started_at: &str, finished_at: &str) -> String {
    let parse = |at: &str| chrono::DateTime::parse_from_rfc3339(at).ok();
    match (parse(started_at), parse(finished_at)) {
        (Some(start), Some(end)) => {
            let millis = (end - start).num_milliseconds().max(0);
            if millis < 60_000 {
                format!("{:.1} s", millis as f64 / 1000.0)
            } else {
                format!("{} min {} s", millis / 60_000, millis % 60_000 / 1000)
            }
        }
        _ => String::new(),
    }
}

/// At most `limit` lines after line `after`, oldest first.
async fn lines_after(
    store: &Store,
    id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<RunLine>, RunError> {
    let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
        "SELECT seq, step, at, text FROM run_lines WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|(seq, step, at, text)| RunLine {
            seq,
            step,
            at,
            text,
        })
        .collect())
}

/// How often a followed run is read again from the store.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Lines sent per read, so a long log reaches a late viewer in pieces.
const FOLLOW_BATCH: i64 = 500;

/// The run as it changes, read from the store, after line `after`: first the run and its
/// steps, then each new line and every change of the steps or the run, until the run has
/// ended and its last line is sent. Reading the store rather than the executor means a run
/// held by another process (the command line) streams the same.
pub fn follow(
    store: Store,
    id: String,
    after: i64,
) -> impl futures::Stream<Item = Result<RunEvent, RunError>> {
    struct Follower {
        store: Store,
        id: String,
        after: i64,
        run: Option<RunSummary>,
        steps: Option<Vec<RunStep>>,
        ended: bool,
    }
    impl Follower {
        /// What changed since the last read, and whether the run has ended with all sent.
        async fn read(&mut self) -> Result<Vec<RunEvent>, RunError> {
            // The run first: lines stored before it ended are then certain to be read below.
            let run = summary(&self.store, &self.id).await?;
            let steps = steps(&self.store, &self.id).await?;
            let lines = lines_after(&self.store, &self.id, self.after, FOLLOW_BATCH).await?;
            let all_lines_read = (lines.len() as i64) < FOLLOW_BATCH;
            let mut events = Vec::new();
            if self.steps.as_ref() != Some(&steps) {
                self.steps = Some(steps.clone());
                events.push(RunEvent::Steps(steps));
            }
            if let Some(last) = lines.last() {
                self.after = last.seq;
            }
            events.extend(lines.into_iter().map(RunEvent::Line));
            let finished = run.status != RunStatus::Running;
            self.ended = finished && all_lines_read;
            // The end is told only after the last line: a page stops listening when it hears it.
            if self.run.as_ref() != Some(&run) && (!finished || all_lines_read) {
                self.run = Some(run.clone());
                events.push(RunEvent::Run(run));
            }
            Ok(events)
        }
    }
    let follower = Follower {
        store,
        id,
        after,
        run: None,
        steps: None,
        ended: false,
    };
    use futures::StreamExt;
    futures::stream::unfold((follower, true), |(mut follower, first)| async move {
        if follower.ended {
            return None;
        }
        if !first {
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
        let events = match follower.read().await {
            Ok(events) => events.into_iter().map(Ok).collect(),
            Err(error) => {
                follower.ended = true;
                vec![Err(error)]
            }
        };
        Some((futures::stream::iter(events), (follower, false)))
    })
    .flatten()
}

/// Requests through the edge during an update, each on a new connection, counting failures.
pub struct RolloutProbe {
    failed: std::sync::Arc<AtomicI64>,
    total: std::sync::Arc<AtomicI64>,
    /// Turns true the moment the failures pass the error budget.
    exceeded: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Failures allowed during an update, in thousandths of the requests.
const ERROR_BUDGET_PER_MILLE: i64 = 10;
/// The budget is counted over at least this many requests.
const BUDGET_SAMPLE: i64 = 100;
/// How long the new containers must serve within the error budget before an update holds.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);
/// A probe never outlives this, whatever happens to the run.
const PROBE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(600);

impl RolloutProbe {
    /// Probes every app service the edge publishes (its `via_edge` path and first probe).
    fn start(definition: &StackDefinition) -> Option<Self> {
        let edge = definition
            .services
            .iter()
            .find(|s| s.role == ServiceRole::Edge)?;
        let published = edge.ports.first()?;
        let parts: Vec<&str> = published.split(':').collect();
        let (host, port) = match parts.as_slice() {
            [ip, host_port, _] => (ip.to_string(), host_port.to_string()),
            [host_port, _] => ("127.0.0.1".to_owned(), host_port.to_string()),
            _ => return None,
        };
        let urls: Vec<String> = definition
            .services
            .iter()
            .filter(|s| s.role == ServiceRole::App)
            .filter_map(|s| {
                Some(format!(
                    "http://{host}:{port}{}{}",
                    s.via_edge.as_ref()?,
                    s.probes.first()?.http
                ))
            })
            .collect();
        if urls.is_empty() {
            return None;
        }
        let failed = std::sync::Arc::new(AtomicI64::new(0));
        let total = std::sync::Arc::new(AtomicI64::new(0));
        let (f, t) = (failed.clone(), total.clone());
        let (exceed, exceeded) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let Ok(client) = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(std::time::Duration::from_secs(5))
                .build()
            else {
                return;
            };
            let deadline = tokio::time::Instant::now() + PROBE_AT_MOST;
            for url in urls.iter().cycle() {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                let ok = matches!(client.get(url).send().await, Ok(answer) if answer.status().is_success());
                let total = t.fetch_add(1, Ordering::SeqCst) + 1;
                if !ok {
                    let failed = f.fetch_add(1, Ordering::SeqCst) + 1;
                    if past_budget(failed, total) {
                        exceed.send_replace(true);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        Some(Self {
            failed,
            total,
            exceeded,
            task,
        })
    }

    /// Resolves once the failures pass the error budget.
    async fn exceeded(&self) {
        let mut exceeded = self.exceeded.clone();
        if exceeded.wait_for(|over| *over).await.is_err() {
            // The probe ended (its time is up): it can no longer exceed.
            std::future::pending::<()>().await;
        }
    }

    fn counts(&self) -> (i64, i64) {
        (
            self.failed.load(Ordering::SeqCst),
            self.total.load(Ordering::SeqCst),
        )
    }

    fn over_budget(&self) -> bool {
        let (failed, total) = self.counts();
        past_budget(failed, total)
    }
}

/// Past the error budget: more than 1 % of the requests failed, counted over at least a
/// hundred, so one unlucky request at the very start is not a verdict.
fn past_budget(failed: i64, total: i64) -> bool {
    failed * 1000 > total.max(BUDGET_SAMPLE) * ERROR_BUDGET_PER_MILLE
}

impl Drop for RolloutProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::{past_budget, took};

    #[test]
    fn the_error_budget_is_one_percent_of_at_least_a_hundred_requests() {
        assert!(!past_budget(0, 0));
        assert!(
            !past_budget(1, 1),
            "one failure at the start is not a verdict"
        );
        assert!(past_budget(2, 10));
        assert!(!past_budget(10, 1000));
        assert!(past_budget(11, 1000));
    }

    #[test]
    fn a_step_took_what_its_times_say() {
        assert_eq!(
            took("2026-11-28T10:00:00.000Z", "2026-11-28T10:00:03.300Z"),
            "3.3 s"
        );
        assert_eq!(
            took("2026-11-28T10:00:00.000Z", "2026-11-28T10:02:05.000Z"),
            "2 min 5 s"
        );
        assert_eq!(took("2026-11-28T10:00:00.000Z", ""), "");
        assert_eq!(took("", ""), "");
    }
}
