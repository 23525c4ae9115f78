//! What an approved run will do, and the facts its approval is bound to: described from the
//! store, the compose and env files and the engine when the request is made, and described
//! again before the run starts — if any fact changed, the approval is void.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::backups::Backup;
use crate::runs::{Operation, RunRequest};
use crate::stacks::engine::{Engine, Reading};
use crate::stacks::{lifecycle, ServiceRole, StackSummary};
use crate::store::Store;

use super::{ApprovalError, ApprovalPlan, ImageChange, RollbackTarget};

/// What an approval covers, by name (the names say what changed when one does).
pub type Facts = BTreeMap<String, String>;

/// The names of the facts that differ, as a sentence each.
pub fn changes(approved: &Facts, now: &Facts) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = approved.keys().chain(now.keys()).collect();
    names
        .into_iter()
        .filter(|name| approved.get(*name) != now.get(*name))
        .map(|name| format!("{name} changed"))
        .collect()
}

fn sha256_of_file(path: &str) -> String {
    match std::fs::read(path) {
        Ok(bytes) => hex::encode(Sha256::digest(bytes)),
        Err(error) => format!("unreadable: {}", error.kind()),
    }
}

fn refused(error: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Refused(error.to_string())
}

/// The plan shown to deciders and the facts the approval is bound to.
pub async fn describe(
    store: &Store,
    engine: &Engine,
    stack: &StackSummary,
    request: &RunRequest,
) -> Result<(ApprovalPlan, Facts), ApprovalError> {
    let definition = crate::stacks::service::definition(stack).map_err(refused)?;
    let running = engine
        .project_containers(&stack.project)
        .await
        .map_err(|error| ApprovalError::Run(crate::stacks::StackError::from(error).into()))?;
    let running: BTreeMap<String, (String, String)> = running
        .into_iter()
        .filter(|c| c.state == "running")
        .map(|c| (c.service, (c.image, c.image_id)))
        .collect();
    let mut facts = Facts::new();
    facts.insert(
        "the compose file".into(),
        sha256_of_file(&stack.compose_file),
    );
    // What the files resolve to: the files they include or extend, the services' own env
    // files, the active profiles. A change to any of them changes what would ship.
    let model = crate::stacks::compose::config(
        std::path::Path::new(&stack.compose_file),
        stack.env_file.as_deref().map(std::path::Path::new),
        &stack.profiles,
        &stack.project,
        &[],
    );
    facts.insert(
        "the compose model".into(),
        model.map_or_else(
            |error| format!("unreadable: {error}"),
            |model| hex::encode(Sha256::digest(model)),
        ),
    );
    facts.insert(
        "the env file".into(),
        stack
            .env_file
            .as_deref()
            .map_or_else(|| "none".to_owned(), sha256_of_file),
    );
    facts.insert(
        "the running images".into(),
        serde_json::to_string(
            &running
                .iter()
                .map(|(service, (_, id))| (service, id))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap_or_default(),
    );
    facts.insert(
        "the stack's newest change".into(),
        newest_change(store, &stack.name).await?,
    );
    facts.insert("the options".into(), request.options.to_stored());
    // Turning the managed edge on or off moves every published port: an approval covers it.
    facts.insert("the managed edge".into(), stack.managed_edge.to_string());
    // So does a profile: it adds or takes away services.
    facts.insert("the active profiles".into(), stack.profiles.join(" "));
    let mut plan = ApprovalPlan::default();
    let now_of = |service: &str| {
        running
            .get(service)
            .map(|(image, id)| format!("{image} ({id})"))
            .unwrap_or_else(|| "not running".into())
    };
    match request.operation {
        Operation::Rollback => {
            let recorded = recorded_with_tags(store, &stack.name, &request.target).await?;
            if recorded.is_empty() {
                return Err(refused(format!(
                    "run {} of {} recorded no images to roll back to",
                    request.target, stack.name
                )));
            }
            facts.insert(
                "the target images".into(),
                serde_json::to_string(
                    &recorded
                        .iter()
                        .map(|(service, (_, id))| (service, id))
                        .collect::<BTreeMap<_, _>>(),
                )
                .unwrap_or_default(),
            );
            let apps = definition
                .services
                .iter()
                .filter(|s| s.role == ServiceRole::App);
            let mut differs = false;
            for service in apps {
                let target = match recorded.get(&service.name) {
                    Some((image, id)) => {
                        differs |= running.get(&service.name).map(|(_, now)| now) != Some(id);
                        format!("{image} ({id})")
                    }
                    None => "unchanged (none recorded)".into(),
                };
                plan.images.push(ImageChange {
                    service: service.name.clone(),
                    current: now_of(&service.name),
                    target,
                });
            }
            // In an emergency the data may be what is wrong: the images may stay.
            if !differs && !request.options.emergency {
                return Err(refused(format!(
                    "{} already runs the images of run {}",
                    stack.name, request.target
                )));
            }
            let finished = finished_at(store, &stack.name, &request.target).await?;
            if request.options.emergency {
                let backup =
                    crate::backups::service::find(store, &stack.name, &request.options.backup)
                        .await?
                        .filter(|backup| backup.verification == "verified")
                        .ok_or_else(|| {
                            refused(format!(
                                "stack {} has no verified backup {:?} to restore",
                                stack.name, request.options.backup
                            ))
                        })?;
                plan.facts.push(format!(
                    "EMERGENCY: the app services and the edge stop; the database is backed up as it is, then backup {} (taken {}, verified by a restore drill at {}; {}) is restored; rows written after {} are lost.",
                    backup.id, backup.finished_at, backup.verified_at, backup.rows_in_words(), backup.finished_at
                ));
                plan.facts.push(format!(
                    "Then everything starts on the images run {} recorded when it finished at {finished}, and the run says it is done in its lines and the audit trail.",
                    request.target
                ));
                facts.insert(
                    "the backup".into(),
                    format!("{}:{}:{}", backup.id, backup.sha256, backup.verification),
                );
            } else if request.options.undo_migrations {
                let undo = crate::runs::migrations_since_run(
                    store,
                    engine,
                    stack,
                    &definition,
                    &request.target,
                )
                .await
                .map_err(refused)?;
                plan.facts.push(format!(
                    "The database is backed up, the app services stop, {}, and the images run {} recorded when it finished at {finished} start.",
                    if undo.is_empty() {
                        "no migration needs undoing".to_owned()
                    } else {
                        format!(
                            "these migrations are undone newest first and their records removed: {}",
                            undo.join(", ")
                        )
                    },
                    request.target
                ));
                facts.insert("the migrations to undo".into(), undo.join(","));
            } else {
                plan.facts.push(format!(
                    "The app services go back, one by one and without downtime, to the images run {} recorded when it finished at {finished}; the data stays as it is.",
                    request.target
                ));
                if let Some(warning) =
                    schema_warning(store, engine, stack, &definition, &finished).await?
                {
                    plan.warnings.push(warning);
                }
            }
        }
        Operation::Restore => {
            let backup = crate::backups::service::find(store, &stack.name, &request.target)
                .await?
                .ok_or_else(|| {
                    refused(format!(
                        "stack {} has no backup {:?}",
                        stack.name, request.target
                    ))
                })?;
            restore_plan(&backup, request, &running, &mut plan)?;
            facts.insert(
                "the backup".into(),
                format!("{}:{}:{}", backup.id, backup.sha256, backup.verification),
            );
            if request.options.recorded_images {
                let images: BTreeMap<String, String> =
                    serde_json::from_str(&backup.images).unwrap_or_default();
                for (service, id) in images {
                    let role = definition.service(&service).map(|s| s.role);
                    if role != Some(ServiceRole::Data) {
                        plan.images.push(ImageChange {
                            current: now_of(&service),
                            service,
                            target: id,
                        });
                    }
                }
            }
        }
        _ if !request.options.release.is_empty() => {
            let release = crate::releases::service::find(store, &request.options.release)
                .await
                .map_err(refused)?;
            plan.facts.push(format!(
                "Ships release {} with a {}: {}, then the run's steps.",
                release.title(),
                request.operation,
                if release.sets.is_empty() {
                    "the compose and env files as they are".to_owned()
                } else {
                    format!("writes {} to the env file first", release.sets_text())
                }
            ));
            let window = crate::releases::service::policy(store, &stack.name).await?;
            if let Some(why) = crate::releases::windows::refusal(&window, None) {
                plan.warnings.push(format!(
                    "The run is {why}; the requester says it cannot wait: “{}”.",
                    request.options.window_override
                ));
            }
        }
        _ => plan.facts.push(format!(
            "A {} of {} with the compose and env files as they are now.",
            request.operation, stack.name
        )),
    }
    plan.steps = crate::runs::steps_of(store, engine, stack, request)
        .await
        .map_err(refused)?;
    Ok((plan, facts))
}

/// What a restore of `backup` does and loses, or why it cannot be asked for.
fn restore_plan(
    backup: &Backup,
    request: &RunRequest,
    running: &BTreeMap<String, (String, String)>,
    plan: &mut ApprovalPlan,
) -> Result<(), ApprovalError> {
    if backup.verification == "corrupt" {
        return Err(refused(format!(
            "backup {} is corrupt and can never be restored: {}",
            backup.id, backup.verify_note
        )));
    }
    let verified = backup.verification == "verified";
    if !verified && !request.options.force {
        return Err(refused(format!(
            "backup {} is {}: verify it first, or ask for the restore with force",
            backup.id, backup.verification
        )));
    }
    plan.facts.push(format!(
        "Backup {} of {}, taken {} ({} by {}), {}, {}; sha256 {}.",
        backup.id,
        backup.service,
        backup.finished_at,
        backup.reason,
        backup.requested_by,
        if verified {
            format!(
                "verified by a restore drill at {} (restored in {:.1} s)",
                backup.verified_at,
                backup.restore_ms as f64 / 1000.0
            )
        } else {
            backup.verification.clone()
        },
        backup.rows_in_words(),
        backup.sha256
    ));
    plan.facts.push(format!(
        "The app services stop; the live database is restored in one transaction; rows written after {} are lost.",
        backup.finished_at
    ));
    plan.facts.push(if request.options.recorded_images {
        "The app services start again on the images recorded with the backup.".to_owned()
    } else {
        format!(
            "The app services start again on their current images ({}).",
            running
                .iter()
                .map(|(service, (image, _))| format!("{service} {image}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    if !verified {
        plan.warnings.push(format!(
            "No restore drill has verified backup {}: it is restored only because force was asked.",
            backup.id
        ));
    }
    Ok(())
}

/// The newest successful run that changed the stack: a newer one voids an approval.
async fn newest_change(store: &Store, stack: &str) -> Result<String, ApprovalError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM runs WHERE stack = $1 AND status = 'succeeded' \
         AND operation IN ('deploy', 'update', 'migrate', 'rollback', 'restore') \
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(stack)
    .fetch_optional(store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    Ok(row.map(|(id,)| id).unwrap_or_default())
}

async fn finished_at(store: &Store, stack: &str, run: &str) -> Result<String, ApprovalError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT finished_at FROM runs WHERE id = $1 AND stack = $2")
            .bind(run)
            .bind(stack)
            .fetch_optional(store.pool())
            .await
            .map_err(crate::store::StoreError::from)?;
    Ok(row.map(|(at,)| at).unwrap_or_default())
}

/// Service → (image, image id) a successful run of `stack` recorded.
async fn recorded_with_tags(
    store: &Store,
    stack: &str,
    run: &str,
) -> Result<BTreeMap<String, (String, String)>, ApprovalError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT i.service, i.image, i.image_id FROM run_images i JOIN runs r ON r.id = i.run_id \
         WHERE i.run_id = $1 AND r.stack = $2 AND r.status = 'succeeded'",
    )
    .bind(run)
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    Ok(rows
        .into_iter()
        .map(|(service, image, id)| (service, (image, id)))
        .collect())
}

/// When the migration head now is not the one the target's images ran with — the head the
/// first backup after that run recorded (taken while they still ran) —, the older images may
/// not work with the newer schema: the warning names the backup to restore instead.
async fn schema_warning(
    store: &Store,
    engine: &Engine,
    stack: &StackSummary,
    definition: &crate::stacks::compose::StackDefinition,
    finished: &str,
) -> Result<Option<String>, ApprovalError> {
    let Some(database) = definition.services.iter().find(|s| s.backup.is_some()) else {
        return Ok(None);
    };
    let then: Option<(String, String)> = sqlx::query_as(
        "SELECT id, migration_head FROM backups WHERE stack = $1 AND started_at >= $2 \
         AND migration_head <> '' ORDER BY started_at LIMIT 1",
    )
    .bind(&stack.name)
    .bind(finished)
    .fetch_optional(store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    let Some((backup, head_then)) = then else {
        return Ok(None);
    };
    let Ok(container) = lifecycle::running_container(engine, &stack.project, &database.name).await
    else {
        return Ok(None);
    };
    let Some(Ok(head_now)) = lifecycle::migration_head(engine, &container, definition).await else {
        return Ok(None);
    };
    Ok((head_now != head_then).then(|| {
        format!(
            "Migrations were applied since (head {head_then} then, {head_now} now): the older images may not work with the newer schema. A database rollback restores backup {backup}, taken before them."
        )
    }))
}

/// An emergency rollback of `stack`: to the last-known-good images (the newest recorded
/// ones when the running images are those), restoring the newest verified backup.
pub async fn emergency(
    store: &Store,
    engine: &Engine,
    stack: &str,
) -> Result<RunRequest, ApprovalError> {
    let targets = rollback_targets(store, Some((engine, Reading::Now)), stack).await?;
    let target = targets
        .iter()
        .find(|target| target.suggested)
        .or_else(|| targets.first())
        .ok_or_else(|| refused(format!("{stack} has no run that recorded images to start")))?;
    let backup = crate::backups::service::newest_verified(store, stack)
        .await?
        .ok_or_else(|| {
            refused(format!(
                "{stack} has no verified backup: an emergency rollback restores the newest one a restore drill proved"
            ))
        })?;
    Ok(RunRequest {
        operation: Operation::Rollback,
        target: target.run_id.clone(),
        options: crate::runs::RunOptions {
            emergency: true,
            backup: backup.id,
            ..crate::runs::RunOptions::default()
        },
    })
}

/// The runs whose recorded images a rollback can go back to, newest first; the suggested one
/// is the newest whose images are not the ones running now (the last-known-good before the
/// current images).
pub async fn rollback_targets(
    store: &Store,
    engine: Option<(&Engine, Reading)>,
    stack: &str,
) -> Result<Vec<RollbackTarget>, ApprovalError> {
    let summary = crate::stacks::service::find(store, stack)
        .await
        .map_err(|error| ApprovalError::Run(error.into()))?;
    let running: BTreeMap<String, String> = match engine {
        Some((engine, reading)) => engine
            .project_containers_read(&summary.project, reading)
            .await
            .map(|containers| {
                containers
                    .into_iter()
                    .filter(|c| c.state == "running")
                    .map(|c| (c.service, c.image_id))
                    .collect()
            })
            .unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let runs: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, operation, finished_at FROM runs WHERE stack = $1 AND status = 'succeeded' \
         AND id IN (SELECT run_id FROM run_images) ORDER BY started_at DESC LIMIT 20",
    )
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(crate::store::StoreError::from)?;
    let mut targets = Vec::new();
    let mut suggested = false;
    for (run_id, operation, finished_at) in runs {
        let recorded = recorded_with_tags(store, stack, &run_id).await?;
        let differs = running
            .iter()
            .any(|(service, id)| recorded.get(service).is_some_and(|(_, then)| then != id));
        let images = recorded
            .iter()
            .filter(|(service, _)| running.is_empty() || running.contains_key(*service))
            .map(|(service, (image, id))| format!("{service} {image} ({id})"))
            .collect::<Vec<_>>()
            .join(", ");
        targets.push(RollbackTarget {
            suggested: differs && !suggested,
            run_id,
            operation: operation.parse().unwrap_or(Operation::Deploy),
            finished_at,
            images,
        });
        suggested |= differs;
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_fact_that_differs_appears_or_goes() {
        let approved = Facts::from([
            ("the env file".to_owned(), "a".to_owned()),
            ("the running images".to_owned(), "x".to_owned()),
            ("the backup".to_owned(), "b".to_owned()),
        ]);
        let mut now = approved.clone();
        assert!(changes(&approved, &now).is_empty());
        now.insert("the env file".into(), "c".into());
        now.remove("the backup");
        now.insert("the target images".into(), "t".into());
        assert_eq!(
            changes(&approved, &now),
            [
                "the backup changed",
                "the env file changed",
                "the target images changed"
            ]
        );
    }
}
