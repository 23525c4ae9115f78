//! The plan of a run: which steps an operation takes on a stack, in order. A pure function of
//! the operation and the compose file.

use crate::stacks::compose::{ServiceDefinition, StackDefinition};
use crate::stacks::{lifecycle, ServiceRole};

use super::{Operation, RunOptions};
use crate::backups::{BackupPolicy, BackupReason, NOTHING_TO_BACK_UP};

/// One step of a run.
pub(super) enum Step<'a> {
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
    /// No edge switches this service: its container is replaced where it stands.
    ReplaceInPlace(&'a ServiceDefinition),
    BackUp(&'a ServiceDefinition, BackupReason),
    CheckBackup,
    /// The backup's own database (the service it was taken from) restored into a throwaway.
    RestoreDrill,
    /// A restore refuses a backup no drill has verified, unless forced.
    CheckRestorable,
    RestoreLive,
    /// Start on the image the service ran when the backup was taken.
    StartAsBackedUp(&'a ServiceDefinition),
    /// A rollback's down migrations: each migration applied since its target run undone.
    UndoMigrations(&'a ServiceDefinition),
    Prune,
    CheckProbe,
    /// Every check of the stack once: its containers and its HTTP probes.
    Verify,
    /// The checks and the app services' error rate watched for the stack's window.
    Watch,
    RemoveReplaced,
    RecordImages,
    /// A flag's new value written to the env file (the previous file kept beside it).
    SetFlag,
    /// An emergency rollback's end said in the run and the audit trail.
    Notify,
    /// A release's settings written to the env file before its run changes anything.
    ApplyRelease,
    /// The services that restart with one that was replaced (`depends_on: {X: {restart: true}}`).
    RestartDependents,
}

impl Step<'_> {
    /// Steps that only wait (for health, for a build) stop at once when the run is cancelled;
    /// the others change the stack and finish first.
    pub(super) fn is_a_wait(&self) -> bool {
        matches!(
            self,
            Step::WaitReady(_) | Step::Build(_) | Step::CheckProbe | Step::Verify | Step::Watch
        )
    }

    pub(super) fn name(&self) -> String {
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
            Step::ReplaceInPlace(service) => {
                format!("Replace {} in place (no edge in front)", service.name)
            }
            Step::CheckProbe => "Check the rollout probe".into(),
            Step::Verify => "Verify: every container and probe passes".into(),
            Step::Watch => "Watch the probes and the error rate".into(),
            Step::BackUp(service, _) => format!("Back up {}", service.name),
            Step::CheckBackup => "Check the backup's checksum".into(),
            Step::RestoreDrill => "Restore the backup into a throwaway database".into(),
            Step::CheckRestorable => "Check that the backup may be restored".into(),
            Step::RestoreLive => "Restore the backup into the live database".into(),
            Step::StartAsBackedUp(service) => {
                format!(
                    "Start {} on the image recorded with the backup",
                    service.name
                )
            }
            Step::Prune => "Prune backups outside the retention rule".into(),
            Step::UndoMigrations(service) => {
                format!("Undo the migrations of {} applied since", service.name)
            }
            Step::RemoveReplaced => "Remove the replaced containers".into(),
            Step::RecordImages => "Record the running images".into(),
            Step::SetFlag => "Write the flag to the env file".into(),
            Step::Notify => "Notify: the emergency rollback is done".into(),
            Step::ApplyRelease => "Write the release's settings to the env file".into(),
            Step::RestartDependents => {
                "Restart the services that restart with a replaced one".into()
            }
        }
    }
}

/// The steps of an operation on this stack, in order.
pub(super) fn plan<'a>(
    operation: Operation,
    target: &str,
    options: &RunOptions,
    policy: &BackupPolicy,
    definition: &'a StackDefinition,
) -> Result<Vec<Step<'a>>, String> {
    let order = lifecycle::dependency_order(definition).map_err(|e| e.to_string())?;
    let (data, others): (Vec<&ServiceDefinition>, Vec<&ServiceDefinition>) = order
        .iter()
        .copied()
        .partition(|s| s.role == ServiceRole::Data);
    // The databases a change backs up first; a failed backup stops the run before it changes
    // anything.
    let databases: Vec<&ServiceDefinition> = order
        .iter()
        .copied()
        .filter(|s| s.backup.is_some())
        .collect();
    let backups =
        |reason| -> Vec<Step<'_>> { databases.iter().map(|s| Step::BackUp(s, reason)).collect() };
    // App containers made anew (another image) are new names: the edge is pointed at them.
    let pin_edge = || {
        order
            .iter()
            .any(|s| s.role == ServiceRole::Edge && s.switch.is_some())
            .then_some(Step::PinEdge)
    };
    let replace = |service: &'a ServiceDefinition| {
        if replaced_beside(definition, service) {
            Step::Replace(service)
        } else {
            Step::ReplaceInPlace(service)
        }
    };
    // Compose restarts a service whose dependency it names with `restart: true` once that
    // dependency is replaced.
    let restart_dependents = || {
        order
            .iter()
            .any(|s| {
                s.depends_on
                    .iter()
                    .any(|name| s.dependency(name).restart == Some(true))
            })
            .then_some(Step::RestartDependents)
    };
    let replace_apps = || {
        others
            .iter()
            .filter(|s| s.role == ServiceRole::App)
            .map(|s| replace(s))
            .chain(restart_dependents())
            .collect::<Vec<_>>()
    };
    // A change that replaced containers keeps the replaced ones until it has held: through
    // the rollout probe, the verification and the watch window (a failure puts them back).
    let held = || {
        [
            Step::CheckProbe,
            Step::Verify,
            Step::Watch,
            Step::RemoveReplaced,
            Step::RecordImages,
        ]
    };
    let steps = match operation {
        Operation::Start => std::iter::once(Step::Prepare)
            .chain(order.iter().map(|s| Step::Start(s)))
            .chain(pin_edge())
            .collect(),
        Operation::Stop => order.iter().rev().map(|s| Step::Stop(s)).collect(),
        Operation::Deploy => {
            let mut steps = vec![Step::CheckEnv];
            steps.extend(builds(&order));
            steps.extend(backups(BackupReason::PreDeploy));
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
            // A container made anew has a new name; an edge still routing to the one it
            // replaced would answer 502.
            steps.extend(pin_edge());
            steps.extend([Step::RecordImages, Step::Verify, Step::Watch]);
            steps
        }
        Operation::Cleanup => vec![Step::RemoveStoppedContainers, Step::RemoveUnusedImages],
        Operation::Backup | Operation::Verify | Operation::Restore if databases.is_empty() => {
            return Err(NOTHING_TO_BACK_UP.into())
        }
        // A scheduled backup is proved at once and the rule applied after it.
        Operation::Backup if options.scheduled => {
            let mut steps = Vec::new();
            for database in &databases {
                steps.extend([
                    Step::BackUp(database, BackupReason::Scheduled),
                    Step::CheckBackup,
                    Step::RestoreDrill,
                ]);
            }
            steps.push(Step::Prune);
            steps
        }
        Operation::Backup => backups(BackupReason::Manual),
        Operation::Verify => vec![Step::CheckBackup, Step::RestoreDrill],
        Operation::Prune => vec![Step::Prune],
        Operation::Restore => {
            let mut steps = vec![Step::CheckBackup, Step::CheckRestorable];
            steps.extend(others.iter().rev().map(|s| Step::Stop(s)));
            steps.extend(data.iter().map(|s| Step::Start(s)));
            if !data.is_empty() {
                steps.push(Step::WaitReady(data.clone()));
            }
            steps.push(Step::RestoreLive);
            steps.extend(others.iter().map(|s| {
                if options.recorded_images {
                    Step::StartAsBackedUp(s)
                } else {
                    Step::Start(s)
                }
            }));
            steps.push(Step::WaitReady(order.clone()));
            steps.extend(pin_edge());
            steps.extend([Step::RecordImages, Step::Verify, Step::Watch]);
            steps
        }
        Operation::Migrate => {
            let mut steps = backups(BackupReason::PreMigrate);
            steps.extend(others.iter().rev().map(|s| Step::Stop(s)));
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
            steps.extend([Step::WaitReady(order.clone()), Step::Verify, Step::Watch]);
            steps
        }
        // Everything stops, the chosen backup is restored (after a backup of what is there
        // now), and the target run's images start (see [`pin`]).
        Operation::Rollback if options.emergency => {
            if databases.is_empty() {
                return Err(NOTHING_TO_BACK_UP.into());
            }
            // The backup is checked before anything stops.
            let mut steps = vec![Step::CheckBackup, Step::CheckRestorable];
            steps.extend(others.iter().rev().map(|s| Step::Stop(s)));
            steps.extend(data.iter().map(|s| Step::Start(s)));
            if !data.is_empty() {
                steps.push(Step::WaitReady(data.clone()));
            }
            steps.extend(backups(BackupReason::PreRollback));
            steps.push(Step::RestoreLive);
            steps.extend(others.iter().map(|s| Step::Start(s)));
            steps.push(Step::WaitReady(order.clone()));
            steps.extend(pin_edge());
            steps.extend([Step::RecordImages, Step::Notify, Step::Verify, Step::Watch]);
            steps
        }
        // With down migrations the schema changes under the app: the app services stop, the
        // database is backed up first, the migrations are undone, the older images start.
        Operation::Rollback if options.undo_migrations => {
            let down: Vec<&ServiceDefinition> = order
                .iter()
                .copied()
                .filter(|s| s.rollback_migration.is_some())
                .collect();
            if down.is_empty() {
                return Err("no service names x-slipway.rollback_migration: the migrations cannot be undone".into());
            }
            // Stopped before the backup, so that nothing written after it is lost.
            let mut steps: Vec<Step<'_>> = others.iter().rev().map(|s| Step::Stop(s)).collect();
            steps.extend(data.iter().map(|s| Step::Start(s)));
            if !data.is_empty() {
                steps.push(Step::WaitReady(data.clone()));
            }
            steps.extend(backups(BackupReason::PreRollback));
            steps.extend(down.into_iter().map(Step::UndoMigrations));
            steps.extend(others.iter().map(|s| Step::Start(s)));
            steps.push(Step::WaitReady(order.clone()));
            steps.extend(pin_edge());
            steps.extend([Step::RecordImages, Step::Verify, Step::Watch]);
            steps
        }
        // The definition's app images are pinned to the recorded ones (see [`pin`]): the
        // rest is an update's, without builds, and without a backup (no data changes).
        Operation::Rollback => {
            let mut steps: Vec<Step<'_>> = pin_edge().into_iter().collect();
            steps.extend(replace_apps());
            steps.extend(held());
            steps
        }
        // Only the app services whose definition names the flag are replaced; the others
        // read it at their next start.
        Operation::Flag => {
            let mut steps = vec![Step::SetFlag];
            let readers: Vec<Step<'_>> = others
                .iter()
                .filter(|s| s.role == ServiceRole::App && s.variables.contains(target))
                .map(|s| replace(s))
                .collect();
            if !readers.is_empty() {
                steps.extend(pin_edge());
                steps.extend(readers);
                steps.extend(restart_dependents());
                steps.extend(held());
            }
            steps
        }
        Operation::Update => {
            let mut steps = if policy.before_update {
                backups(BackupReason::PreUpdate)
            } else {
                Vec::new()
            };
            steps.extend(builds(&order));
            steps.extend(pin_edge());
            steps.extend(replace_apps());
            steps.extend(held());
            steps
        }
    };
    // A release's run writes its settings before anything else.
    Ok(if options.release.is_empty() {
        steps
    } else {
        std::iter::once(Step::ApplyRelease).chain(steps).collect()
    })
}

/// Behind an edge that can switch it, an app service is replaced beside its running
/// container; any other (or one with a fixed `container_name`) is replaced in place, one at a
/// time in dependency order.
pub(super) fn replaced_beside(definition: &StackDefinition, service: &ServiceDefinition) -> bool {
    // A fixed `container_name` or address cannot stand beside itself.
    service.upstream.is_some()
        && service.compose.container_name.is_none()
        && service
            .networks
            .iter()
            .all(|network| network.ipv4_address.is_none())
        && definition
            .services
            .iter()
            .any(|s| s.role == ServiceRole::Edge && s.switch.is_some())
}

/// The stack with each app service's image pinned to the image id a run recorded for it
/// (service → image id); services the run did not record keep their image.
pub(in crate::runs) fn pin(
    definition: &StackDefinition,
    recorded: &std::collections::BTreeMap<String, String>,
) -> StackDefinition {
    let mut pinned = definition.clone();
    for service in pinned
        .services
        .iter_mut()
        .filter(|s| s.role == ServiceRole::App)
    {
        if let Some(image) = recorded.get(&service.name) {
            service.image = Some(image.clone());
            service.build = None;
        }
    }
    pinned
}

/// A build step for each service with a build context.
fn builds<'a>(order: &[&'a ServiceDefinition]) -> Vec<Step<'a>> {
    order
        .iter()
        .filter(|s| s.build.is_some())
        .map(|s| Step::Build(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use compose_lens::interpolation::MapEnvironment;

    use super::*;

    /// A stack with one service of every kind: a database, an app with migrations, an app
    /// built from a context, a job and the edge.
    const STACK: &str = "services:
  database:
    image: pg
    x-slipway: { role: data, backup: pg_dump }
  backend:
    image: be
    depends_on: [database]
    x-slipway: { role: app, upstream: \"http://{container}:4000\", migrate: [migrate], migrations_table: _migrations, rollback_migration: [down, \"{migration}\"] }
  frontend:
    build: ./web
    x-slipway: { role: app, upstream: \"http://{container}:3000\" }
  seed:
    image: be
    depends_on: [backend]
    x-slipway: { role: job }
  edge:
    image: edge
    depends_on: [backend, frontend]
    x-slipway: { role: edge, switch: [route, \"{service}\", \"{upstream}\"] }
";

    fn test_stack() -> StackDefinition {
        crate::stacks::compose::parse(
            std::path::Path::new("docker-compose.yml"),
            STACK,
            &MapEnvironment::new(),
        )
        .expect("the test stack parses")
    }

    fn steps_of(operation: Operation) -> Vec<String> {
        steps_with(operation, &RunOptions::default(), &BackupPolicy::default())
    }

    /// The names of the steps of `operation` on `definition`, default options and policy.
    fn step_names(operation: Operation, definition: &StackDefinition) -> Vec<String> {
        plan(
            operation,
            "",
            &RunOptions::default(),
            &BackupPolicy::default(),
            definition,
        )
        .expect("a plan")
        .iter()
        .map(Step::name)
        .collect()
    }

    fn steps_with(
        operation: Operation,
        options: &RunOptions,
        policy: &BackupPolicy,
    ) -> Vec<String> {
        let definition = test_stack();
        plan(operation, "", options, policy, &definition)
            .expect("a plan")
            .iter()
            .map(Step::name)
            .collect()
    }

    #[test]
    fn a_rollback_replaces_the_app_services_on_the_pinned_images_without_a_build() {
        let definition = test_stack();
        let recorded = std::collections::BTreeMap::from([
            ("frontend".to_owned(), "aaa111".to_owned()),
            ("backend".to_owned(), "bbb222".to_owned()),
            ("database".to_owned(), "ccc333".to_owned()),
        ]);
        let pinned = pin(&definition, &recorded);
        let image = |name: &str| pinned.service(name).unwrap().image.clone();
        assert_eq!(image("frontend").as_deref(), Some("aaa111"));
        assert!(pinned.service("frontend").unwrap().build.is_none());
        assert_eq!(image("backend").as_deref(), Some("bbb222"));
        assert_eq!(
            image("database").as_deref(),
            Some("pg"),
            "data is not an app"
        );
        let steps = step_names(Operation::Rollback, &pinned);
        assert_eq!(
            steps,
            [
                "Pin the edge to the running containers",
                "Update frontend beside the running one",
                "Update backend beside the running one",
                "Check the rollout probe",
                "Verify: every container and probe passes",
                "Watch the probes and the error rate",
                "Remove the replaced containers",
                "Record the running images",
            ]
        );
    }

    #[test]
    fn a_rollback_that_undoes_migrations_stops_the_app_then_backs_up() {
        let undo = RunOptions {
            undo_migrations: true,
            ..RunOptions::default()
        };
        assert_eq!(
            steps_with(Operation::Rollback, &undo, &BackupPolicy::default()),
            [
                "Stop edge",
                "Stop seed",
                "Stop backend",
                "Stop frontend",
                "Start database",
                "Wait until database are healthy",
                "Back up database",
                "Undo the migrations of backend applied since",
                "Start frontend",
                "Start backend",
                "Start seed",
                "Start edge",
                "Wait until database, frontend, backend, seed, edge are healthy",
                "Pin the edge to the running containers",
                "Record the running images",
                "Verify: every container and probe passes",
                "Watch the probes and the error rate",
            ]
        );
    }

    #[test]
    fn without_an_edge_an_update_replaces_each_app_service_in_place_and_leaves_the_store() {
        let text = "services:
  db:
    image: postgres:16
  web:
    image: web:2
    ports: [\"127.0.0.1:8080:8080\"]
    depends_on: [db]
  worker:
    image: worker:2
    depends_on: [web]
  proxy:
    image: nginx
    x-slipway: { role: edge }
";
        let definition = crate::stacks::compose::parse(
            std::path::Path::new("docker-compose.yml"),
            text,
            &MapEnvironment::new(),
        )
        .unwrap();
        let steps = step_names(Operation::Update, &definition);
        assert_eq!(
            steps,
            [
                "Replace web in place (no edge in front)",
                "Replace worker in place (no edge in front)",
                "Check the rollout probe",
                "Verify: every container and probe passes",
                "Watch the probes and the error rate",
                "Remove the replaced containers",
                "Record the running images",
            ],
            "an edge that cannot be switched is not pinned; the database is never replaced"
        );
    }

    #[test]
    fn a_flag_replaces_only_the_app_services_that_read_it() {
        let text = "services:
  database:
    image: pg
    environment: { MODE: \"${FEATURE_DB:-off}\" }
    x-slipway: { role: data }
  backend:
    image: be
    environment: { CHECKOUT: \"${FEATURE_CHECKOUT:-false}\" }
    x-slipway: { upstream: \"http://{container}:4000\" }
  frontend:
    image: fe
  edge:
    image: edge
    x-slipway: { role: edge, switch: [route, \"{service}\", \"{upstream}\"] }
";
        let definition = crate::stacks::compose::parse(
            std::path::Path::new("docker-compose.yml"),
            text,
            &MapEnvironment::new(),
        )
        .unwrap();
        let steps = |flag: &str| -> Vec<String> {
            let options = RunOptions {
                flag_value: "true".into(),
                ..RunOptions::default()
            };
            plan(
                Operation::Flag,
                flag,
                &options,
                &BackupPolicy::default(),
                &definition,
            )
            .unwrap()
            .iter()
            .map(Step::name)
            .collect()
        };
        assert_eq!(
            steps("FEATURE_CHECKOUT"),
            [
                "Write the flag to the env file",
                "Pin the edge to the running containers",
                "Update backend beside the running one",
                "Check the rollout probe",
                "Verify: every container and probe passes",
                "Watch the probes and the error rate",
                "Remove the replaced containers",
                "Record the running images",
            ]
        );
        // A data service reads it at its next start: nothing is replaced now.
        assert_eq!(steps("FEATURE_DB"), ["Write the flag to the env file"]);
    }

    #[test]
    fn an_emergency_rollback_backs_up_restores_and_starts_the_target_images() {
        let emergency = RunOptions {
            emergency: true,
            backup: "b1".into(),
            ..RunOptions::default()
        };
        assert_eq!(
            steps_with(Operation::Rollback, &emergency, &BackupPolicy::default()),
            [
                "Check the backup's checksum",
                "Check that the backup may be restored",
                "Stop edge",
                "Stop seed",
                "Stop backend",
                "Stop frontend",
                "Start database",
                "Wait until database are healthy",
                "Back up database",
                "Restore the backup into the live database",
                "Start frontend",
                "Start backend",
                "Start seed",
                "Start edge",
                "Wait until database, frontend, backend, seed, edge are healthy",
                "Pin the edge to the running containers",
                "Record the running images",
                "Notify: the emergency rollback is done",
                "Verify: every container and probe passes",
                "Watch the probes and the error rate",
            ]
        );
    }

    #[test]
    fn options_and_the_policy_change_the_plan() {
        let recorded = RunOptions {
            recorded_images: true,
            ..RunOptions::default()
        };
        let policy = BackupPolicy::default();
        let restore = |options: &RunOptions| steps_with(Operation::Restore, options, &policy);
        let expected = |start: &dyn Fn(&str) -> String| {
            let mut steps: Vec<String> = [
                "Check the backup's checksum",
                "Check that the backup may be restored",
                "Stop edge",
                "Stop seed",
                "Stop backend",
                "Stop frontend",
                "Start database",
                "Wait until database are healthy",
                "Restore the backup into the live database",
            ]
            .map(String::from)
            .to_vec();
            steps.extend(["frontend", "backend", "seed", "edge"].map(start));
            steps.push("Wait until database, frontend, backend, seed, edge are healthy".into());
            steps.push("Pin the edge to the running containers".into());
            steps.push("Record the running images".into());
            steps.push("Verify: every container and probe passes".into());
            steps.push("Watch the probes and the error rate".into());
            steps
        };
        assert_eq!(
            restore(&RunOptions::default()),
            expected(&|s| format!("Start {s}"))
        );
        assert_eq!(
            restore(&recorded),
            expected(&|s| format!("Start {s} on the image recorded with the backup"))
        );
        let scheduled = RunOptions {
            scheduled: true,
            ..RunOptions::default()
        };
        assert_eq!(
            steps_with(Operation::Backup, &scheduled, &policy),
            [
                "Back up database",
                "Check the backup's checksum",
                "Restore the backup into a throwaway database",
                "Prune backups outside the retention rule",
            ]
        );
        let no_backup = BackupPolicy {
            before_update: false,
            ..BackupPolicy::default()
        };
        let update = steps_with(Operation::Update, &RunOptions::default(), &no_backup);
        assert_eq!(update[0], "Build the image of frontend");
        assert!(!update.iter().any(|step| step.starts_with("Back up")));
        assert_eq!(
            steps_of(Operation::Prune),
            ["Prune backups outside the retention rule"]
        );
    }

    #[test]
    fn every_operation_has_its_steps_in_order() {
        // Dependency order: database and frontend depend on nothing, backend on the
        // database, the job on the backend, the edge on both apps.
        let table: [(Operation, &[&str]); 8] = [
            (
                Operation::Verify,
                &[
                    "Check the backup's checksum",
                    "Restore the backup into a throwaway database",
                ],
            ),
            (Operation::Backup, &["Back up database"]),
            (
                Operation::Deploy,
                &[
                    "Check the env file",
                    "Build the image of frontend",
                    "Back up database",
                    "Prepare the network and volumes",
                    "Start database",
                    "Wait until database are healthy",
                    "Run the migrations of backend",
                    "Start frontend",
                    "Start backend",
                    "Start seed",
                    "Start edge",
                    "Wait until database, frontend, backend, seed, edge are healthy",
                    "Pin the edge to the running containers",
                    "Record the running images",
                    "Verify: every container and probe passes",
                    "Watch the probes and the error rate",
                ],
            ),
            (
                Operation::Update,
                &[
                    "Back up database",
                    "Build the image of frontend",
                    "Pin the edge to the running containers",
                    "Update frontend beside the running one",
                    "Update backend beside the running one",
                    "Check the rollout probe",
                    "Verify: every container and probe passes",
                    "Watch the probes and the error rate",
                    "Remove the replaced containers",
                    "Record the running images",
                ],
            ),
            (
                Operation::Migrate,
                &[
                    "Back up database",
                    "Stop edge",
                    "Stop seed",
                    "Stop backend",
                    "Stop frontend",
                    "Start database",
                    "Wait until database are healthy",
                    "Run the migrations of backend",
                    "Verify the migration records of backend",
                    "Start frontend",
                    "Start backend",
                    "Start seed",
                    "Start edge",
                    "Wait until database, frontend, backend, seed, edge are healthy",
                    "Verify: every container and probe passes",
                    "Watch the probes and the error rate",
                ],
            ),
            (
                Operation::Cleanup,
                &["Remove stopped containers", "Remove unused images"],
            ),
            (
                Operation::Start,
                &[
                    "Prepare the network and volumes",
                    "Start database",
                    "Start frontend",
                    "Start backend",
                    "Start seed",
                    "Start edge",
                    "Pin the edge to the running containers",
                ],
            ),
            (
                Operation::Stop,
                &[
                    "Stop edge",
                    "Stop seed",
                    "Stop backend",
                    "Stop frontend",
                    "Stop database",
                ],
            ),
        ];
        for (operation, expected) in table {
            assert_eq!(steps_of(operation), expected, "{operation}");
        }
    }

    #[test]
    fn only_waits_stop_at_once_when_a_run_is_cancelled() {
        let definition = test_stack();
        let waits: Vec<String> = plan(
            Operation::Update,
            "",
            &RunOptions::default(),
            &BackupPolicy::default(),
            &definition,
        )
        .unwrap()
        .iter()
        .filter(|step| step.is_a_wait())
        .map(Step::name)
        .collect();
        assert_eq!(
            waits,
            [
                "Build the image of frontend",
                "Check the rollout probe",
                "Verify: every container and probe passes",
                "Watch the probes and the error rate"
            ]
        );
    }
}
