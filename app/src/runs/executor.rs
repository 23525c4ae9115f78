//! Runs a plan: each step in order, its lines stored as they come, cancel and console stop
//! checked between steps, and an update put back as a whole when any step fails.

use std::path::Path;

use crate::stacks::compose::{ServiceDefinition, StackDefinition};
use crate::stacks::engine::Engine;
use crate::stacks::secrets;
use crate::stacks::{lifecycle, ServiceRole, StackSummary};

use super::plan::{plan, Step};
use super::probe::{RolloutProbe, SETTLE};
use super::recorder::{RunEnd, RunHandle};
use super::{Operation, RunError, RunSummary, StepStatus};

/// Runs every step in order and finishes the run; the first failing step ends it.
#[tracing::instrument(skip_all, fields(run = handle.run.id, stack = stack.name))]
pub async fn execute(
    mut handle: RunHandle,
    engine: &Engine,
    stack: &StackSummary,
    backups: &Path,
) -> Result<RunSummary, RunError> {
    let env_file = stack.env_file.as_deref().map(Path::new);
    handle.secrets = match secrets::secret_values(Path::new(&stack.compose_file), env_file) {
        Ok(secrets) => secrets,
        // Nothing runs when the masks cannot be known; the error names file and line only.
        Err(error) => return handle.finish(&Err(RunEnd::Failed(error.to_string()))).await,
    };
    let outcome = run_steps(&handle, engine, stack, backups).await;
    let outcome = outcome.map_err(|end| match end {
        RunEnd::Failed(error) => RunEnd::Failed(crate::store::printable(&secrets::redact(
            &error,
            &handle.secrets,
        ))),
        other => other,
    });
    handle.finish(&outcome).await
}

async fn run_steps(
    handle: &RunHandle,
    engine: &Engine,
    stack: &StackSummary,
    backups: &Path,
) -> Result<(), RunEnd> {
    let request = handle.run.request();
    let (definition, policy) = prepare(&handle.store, engine, stack, &request).await?;
    let health = crate::health::service::policy(&handle.store, &stack.name)
        .await
        .map_err(|error| error.to_string())?;
    let steps = plan(
        request.operation,
        &request.target,
        &request.options,
        &policy,
        &definition,
    )?;
    let names: Vec<String> = steps.iter().map(Step::name).collect();
    handle.plan(&names).await.map_err(|e| e.to_string())?;
    let probe = matches!(
        handle.run.operation,
        Operation::Update | Operation::Rollback | Operation::Flag
    )
    .then(|| RolloutProbe::start(&definition))
    .flatten();
    let context = StepContext {
        engine,
        stack,
        probe: probe.as_ref(),
        replaced: std::sync::Mutex::new(Vec::new()),
        backups: backups.join(&stack.name),
        taken: std::sync::Mutex::new(None),
        env_written: std::sync::Mutex::new(None),
        restored: std::sync::atomic::AtomicBool::new(false),
        health,
        verification_failed: std::sync::atomic::AtomicBool::new(false),
        rolled_back: std::sync::Mutex::new(None),
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
        // An update is all or nothing: however it ends early, what it replaced goes back;
        // a restore that ends early starts the app services it stopped again.
        let between = StepLog {
            handle,
            step: position,
        };
        if handle.console_stopping() {
            context.put_back(&between).await;
            return end_from(position, RunEnd::Interrupted).await;
        }
        if handle.cancel_requested().await.map_err(|e| e.to_string())? {
            context.put_back(&between).await;
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
                    let _ = log.say("cancelled while waiting").await;
                    context.put_back(&log).await;
                    return cancel_from(position).await;
                }
            }
        } else {
            context.run(step, &log).await
        };
        if let Err(error) = &result {
            // The restore comes first: a line that cannot be stored must not stop it.
            context.put_back(&log).await;
            let _ = log.say(error).await;
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

/// The stack's definition as the run will use it (a rollback's app images pinned to the
/// recorded ones; a flag's value set, and the app kept on the images it runs) and its
/// backup policy.
async fn prepare(
    store: &crate::store::Store,
    engine: &Engine,
    stack: &StackSummary,
    request: &super::RunRequest,
) -> Result<(StackDefinition, crate::backups::BackupPolicy), String> {
    let target = request.target.as_str();
    let set = match request.operation {
        Operation::Flag => vec![(target.to_owned(), request.options.flag_value.clone())],
        _ if !request.options.release.is_empty() => {
            crate::releases::service::sets(store, &request.options.release).await?
        }
        _ => Vec::new(),
    };
    let definition =
        crate::stacks::service::definition_with(stack, &set).map_err(|error| error.to_string())?;
    let definition = match request.operation {
        Operation::Rollback => {
            let recorded = super::queries::recorded_images(store, &stack.name, target)
                .await
                .map_err(|error| error.to_string())?;
            if recorded.is_empty() {
                return Err(format!("run {target} recorded no images to roll back to"));
            }
            super::plan::pin(&definition, &recorded)
        }
        // Only the flag changes: each app service keeps the image reference it runs (the
        // flag step refuses one whose tag or definition moved meanwhile).
        Operation::Flag => super::plan::pin(&definition, &running_images(engine, stack).await?),
        _ => definition,
    };
    let policy = crate::backups::service::policy(store, &stack.name)
        .await
        .map_err(|error| error.to_string())?;
    Ok((definition, policy))
}

/// Service → the image reference its running container was made from.
pub(in crate::runs) async fn running_images(
    engine: &Engine,
    stack: &StackSummary,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    Ok(engine
        .project_containers(&stack.project)
        .await
        .map_err(|error| crate::stacks::StackError::from(error).to_string())?
        .into_iter()
        .filter(|container| container.state == "running")
        .map(|container| (container.service, container.image))
        .collect())
}

/// The steps a run of `request` on `stack` would take now, by name: what an approval shows.
pub async fn steps_of(
    store: &crate::store::Store,
    engine: &Engine,
    stack: &StackSummary,
    request: &super::RunRequest,
) -> Result<Vec<String>, String> {
    let (definition, policy) = prepare(store, engine, stack, request).await?;
    let steps = plan(
        request.operation,
        &request.target,
        &request.options,
        &policy,
        &definition,
    )?;
    Ok(steps.iter().map(Step::name).collect())
}

/// Where a step's lines go: each is stored the moment the step says it.
pub(super) struct StepLog<'a> {
    pub(super) handle: &'a RunHandle,
    pub(super) step: i64,
}

impl StepLog<'_> {
    pub(super) async fn say(&self, text: impl AsRef<str>) -> Result<(), String> {
        self.handle
            .line(self.step, text.as_ref())
            .await
            .map_err(|e| e.to_string())
    }
}

pub(super) struct StepContext<'a> {
    pub(super) engine: &'a Engine,
    pub(super) stack: &'a StackSummary,
    pub(super) probe: Option<&'a RolloutProbe>,
    /// What an update has replaced so far: put back if the update fails at any later point.
    pub(super) replaced: std::sync::Mutex<Vec<(&'a ServiceDefinition, lifecycle::Replacement)>>,
    /// Where this stack's backups go.
    pub(super) backups: std::path::PathBuf,
    /// The backup this run took, for the steps after it (a scheduled backup's drill).
    pub(super) taken: std::sync::Mutex<Option<String>>,
    /// What the run wrote to the env file (a flag, a release's settings): put back if the
    /// run fails after it.
    pub(super) env_written: std::sync::Mutex<Option<crate::stacks::env_file::Written>>,
    /// Whether the live database was restored: an emergency rollback that ends early before
    /// that starts the containers it stopped as they were, not the older images.
    pub(super) restored: std::sync::atomic::AtomicBool,
    /// The stack's health policy: its watch window and what a failed verification does.
    pub(super) health: crate::health::HealthPolicy,
    /// The verification failed and the change stays (the watch is skipped).
    pub(super) verification_failed: std::sync::atomic::AtomicBool,
    /// The verification failed and the policy puts the previous version back: when the
    /// failure was seen and why, reported once the previous containers serve.
    pub(super) rolled_back: std::sync::Mutex<Option<(tokio::time::Instant, String)>>,
    pub(super) definition: &'a StackDefinition,
    pub(super) compose_dir: std::path::PathBuf,
}

impl<'a> StepContext<'a> {
    /// Runs one step; every line it reports is stored as it comes.
    async fn run(&self, step: &Step<'a>, log: &StepLog<'_>) -> Result<(), String> {
        let project = self.stack.project.as_str();
        let text = |error: crate::stacks::StackError| error.to_string();
        match step {
            Step::CheckEnv => self.check_env(log).await,
            Step::Build(service) => self.build(service, log).await,
            Step::Prepare => {
                for line in lifecycle::prepare(self.engine, self.definition, project)
                    .await
                    .map_err(text)?
                {
                    log.say(line).await?;
                }
                Ok(())
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
                    .filter(|s| s.role == ServiceRole::App && s.upstream.is_some())
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
            Step::ReplaceInPlace(service) => self.replace_in_place(service, log).await,
            Step::VerifyMigrations(service) => self.verify_migrations(service, log).await,
            Step::RemoveStoppedContainers => self.remove_stopped_containers(log).await,
            Step::RemoveUnusedImages => self.remove_unused_images(log).await,
            Step::CheckProbe => {
                let Some(probe) = self.probe else {
                    return log
                        .say("no rollout probe: no edge publishes a port with the services' probes behind it")
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
            Step::BackUp(service, reason) => self.back_up(service, *reason, log).await,
            Step::CheckBackup => self.check_backup(log).await,
            Step::RestoreDrill => self.restore_drill(log).await,
            Step::CheckRestorable => self.check_restorable(log).await,
            Step::RestoreLive => self.restore_live(log).await,
            Step::StartAsBackedUp(service) => self.start_as_backed_up(service, log).await,
            Step::Prune => self.prune(log).await,
            Step::UndoMigrations(service) => self.undo_migrations(service, log).await,
            Step::RemoveReplaced => {
                let replaced = std::mem::take(&mut *self.replaced_list());
                for (_, replacement) in &replaced {
                    lifecycle::remove(self.engine, &replacement.old.id)
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
            Step::SetFlag => self.set_flag(log).await,
            Step::ApplyRelease => self.apply_release(log).await,
            Step::RestartDependents => self.restart_dependents(log).await,
            Step::Verify => self.verify(log).await,
            Step::Watch => self.watch(log).await,
            Step::Notify => self.notify_emergency(log).await,
        }
    }

    /// What a run that ends early puts back: an update's replaced containers, a flag's env
    /// file, and the app services a restore stopped (started again; those still running are
    /// left as they are).
    async fn put_back(&self, log: &StepLog<'_>) {
        let all_back = self.restore_replaced(log).await;
        self.report_rollback(log, all_back).await;
        self.put_env_back(log).await;
        let run = &log.handle.run;
        let restored = self.restored.load(std::sync::atomic::Ordering::SeqCst);
        if run.operation == Operation::Restore || (run.options.emergency && restored) {
            self.start_apps_again(log).await;
        } else if run.options.emergency {
            self.start_stopped_as_they_were(log).await;
        }
    }

    /// The containers of the stack's project, as the engine reports them now.
    pub(super) async fn containers(&self) -> Result<Vec<crate::stacks::ContainerStatus>, String> {
        self.engine
            .project_containers(&self.stack.project)
            .await
            .map_err(|e| e.to_string())
    }

    pub(super) fn edge(&self) -> Result<&ServiceDefinition, String> {
        self.definition
            .services
            .iter()
            .find(|s| s.role == ServiceRole::Edge)
            .ok_or_else(|| "the stack has no service with role edge to switch".to_owned())
    }
}
