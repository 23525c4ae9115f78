//! Backups of a stack's database: `pg_dump --format=custom` run inside the database's own
//! container, streamed into a temporary file whose SHA-256 is taken on the way, renamed only
//! when complete, and recorded in the inventory with what the database held at that moment.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::backups::{Backup, BackupReason, DRILL_HOLDER_LABEL, DRILL_LABEL};
use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::compose::ServiceDefinition;
use crate::stacks::engine::ExecOutput;
use crate::stacks::lifecycle;
use crate::store::now_utc;

/// The dump, as the database container's own user and password (from its environment:
/// nothing of them passes through Slipway).
const PG_DUMP: &str = "PGPASSWORD=\"$POSTGRES_PASSWORD\" exec pg_dump --format=custom \
                       -h 127.0.0.1 -U \"${POSTGRES_USER:-postgres}\" \
                       -d \"${POSTGRES_DB:-${POSTGRES_USER:-postgres}}\"";

impl<'a> StepContext<'a> {
    pub(in crate::runs) async fn back_up(
        &self,
        service: &ServiceDefinition,
        reason: BackupReason,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let project = self.stack.project.as_str();
        let running = lifecycle::running_container(self.engine, project, &service.name).await;
        let container = match running {
            Ok(container) => container,
            // A deploy from nothing has no data yet.
            Err(_) if reason == BackupReason::PreDeploy => {
                return log
                    .say(format!(
                        "{} is not running: no data to back up yet",
                        service.name
                    ))
                    .await;
            }
            Err(error) => return Err(format!("{error}; a backup needs the database running")),
        };
        let started_at = now_utc();
        let id = uuid::Uuid::new_v4().to_string();
        let stamp: String = started_at
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(15)
            .collect();
        let file = self
            .backups
            .join(format!("{stamp}-{}-{}.dump", service.name, &id[..8]));
        let partial = file.with_extension("dump.partial");
        let recorded = async {
            let (size_bytes, sha256) = self.dump_into(&container, &partial, log).await?;
            let backup = Backup {
                id,
                stack: self.stack.name.clone(),
                service: service.name.clone(),
                file: file.display().to_string(),
                size_bytes,
                sha256,
                started_at,
                finished_at: now_utc(),
                requested_by: log.handle.run.requested_by.clone(),
                reason: reason.as_str().into(),
                run_id: log.handle.run.id.clone(),
                migration_head: self.recorded_head(&container, log).await?,
                images: self.running_images().await?,
                verification: "unverified".into(),
                verified_at: String::new(),
                restore_ms: 0,
                verify_note: String::new(),
            };
            tokio::fs::rename(&partial, &file)
                .await
                .map_err(|error| format!("cannot name the backup {}: {error}", file.display()))?;
            crate::backups::service::record(
                &log.handle.store,
                &crate::audit::service::Actor::system(),
                &backup,
            )
            .await
            .map_err(|error| error.to_string())?;
            Ok::<Backup, String>(backup)
        };
        let backup = match recorded.await {
            Ok(backup) => backup,
            Err(error) => {
                // A dump that is not in the inventory is left under no name at all.
                let _ = tokio::fs::remove_file(&partial).await;
                let _ = tokio::fs::remove_file(&file).await;
                return Err(error);
            }
        };
        log.say(format!(
            "{}: {} written to {} (sha256 {})",
            service.name,
            crate::backups::size_in_words(backup.size_bytes),
            backup.file,
            short(&backup.sha256)
        ))
        .await?;
        if !backup.migration_head.is_empty() {
            log.say(format!("migration head: {}", backup.migration_head))
                .await?;
        }
        Ok(())
    }

    /// Streams the dump into `partial`, hashing it on the way; returns its size and SHA-256.
    async fn dump_into(
        &self,
        container: &str,
        partial: &std::path::Path,
        log: &StepLog<'_>,
    ) -> Result<(i64, String), String> {
        let cannot_write = |error: std::io::Error| {
            format!("cannot write the backup {}: {error}", partial.display())
        };
        if let Some(folder) = partial.parent() {
            tokio::fs::create_dir_all(folder)
                .await
                .map_err(cannot_write)?;
        }
        let mut file = tokio::fs::File::create(partial)
            .await
            .map_err(cannot_write)?;
        let command = vec!["sh".to_owned(), "-c".to_owned(), PG_DUMP.to_owned()];
        let (exec, output) = self
            .engine
            .exec_streaming(container, command)
            .await
            .map_err(|error| error.to_string())?;
        let mut output = std::pin::pin!(output);
        let (mut hasher, mut size, mut complaints) = (Sha256::new(), 0_i64, Vec::new());
        while let Some(chunk) = output.next().await {
            match chunk.map_err(|error| format!("pg_dump: {error}"))? {
                ExecOutput::Stdout(bytes) => {
                    hasher.update(&bytes);
                    size += bytes.len() as i64;
                    file.write_all(&bytes).await.map_err(cannot_write)?;
                }
                ExecOutput::Stderr(bytes) => complaints.extend_from_slice(&bytes),
            }
        }
        file.sync_all().await.map_err(cannot_write)?;
        let code = self
            .engine
            .exec_exit_code(&exec)
            .await
            .map_err(|error| error.to_string())?;
        // What pg_dump said goes through the run's masking like every line.
        for line in String::from_utf8_lossy(&complaints).lines() {
            log.say(format!("pg_dump: {line}")).await?;
        }
        if code != 0 {
            return Err(format!("pg_dump exited with code {code}"));
        }
        if size == 0 {
            return Err("pg_dump wrote nothing".into());
        }
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// The newest record of the stack's migrations table in the database `container` (the
    /// live one or a drill's); `None` when the stack names no migrations table.
    async fn migration_head(&self, container: &str) -> Option<Result<String, String>> {
        let table = self.definition.migrations_table()?;
        let sql = format!("SELECT migration_name FROM {table} ORDER BY finished_at DESC LIMIT 1");
        Some(
            lifecycle::psql(self.engine, container, &sql)
                .await
                .map(|head| head.trim().to_owned()),
        )
    }

    /// The head recorded with a backup: empty when there is none or it cannot be read (the
    /// run says why).
    async fn recorded_head(&self, container: &str, log: &StepLog<'_>) -> Result<String, String> {
        match self.migration_head(container).await {
            None => Ok(String::new()),
            Some(Ok(head)) => Ok(head),
            Some(Err(error)) => {
                log.say(format!("migration head unknown: {error}")).await?;
                Ok(String::new())
            }
        }
    }

    /// JSON of service → image id for the stack's running containers.
    async fn running_images(&self) -> Result<String, String> {
        let images: std::collections::BTreeMap<String, String> = self
            .containers()
            .await?
            .into_iter()
            .filter(|c| c.state == "running")
            .map(|c| (c.service, c.image_id))
            .collect();
        Ok(serde_json::to_string(&images).unwrap_or_default())
    }
}

/// How long the throwaway database may take to accept connections.
const DRILL_READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

impl<'a> StepContext<'a> {
    /// The run's backup, as the inventory has it.
    async fn target_backup(&self, log: &StepLog<'_>) -> Result<Backup, String> {
        let id = log.handle.run.target.as_str();
        crate::backups::service::find(&log.handle.store, &self.stack.name, id)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("stack {} has no backup {id:?}", self.stack.name))
    }

    /// The file must still be what was written: a changed or missing file marks the backup
    /// corrupt, and a corrupt backup is never restored.
    pub(in crate::runs) async fn check_backup(&self, log: &StepLog<'_>) -> Result<(), String> {
        let backup = self.target_backup(log).await?;
        if backup.verification == "corrupt" {
            return Err(format!(
                "backup {} is corrupt: {}",
                backup.id, backup.verify_note
            ));
        }
        let actual = file_sha256(std::path::Path::new(&backup.file)).await;
        let fault = match actual {
            Ok(sum) if sum == backup.sha256 => None,
            Ok(sum) => Some(format!(
                "the file's SHA-256 is {} where {} was recorded",
                short(&sum),
                short(&backup.sha256)
            )),
            Err(error) => Some(format!("the file cannot be read: {error}")),
        };
        if let Some(fault) = fault {
            crate::backups::service::set_verification(
                &log.handle.store,
                &backup,
                "corrupt",
                0,
                &fault,
            )
            .await
            .map_err(|error| error.to_string())?;
            return Err(format!("backup {} is corrupt: {fault}", backup.id));
        }
        log.say(format!(
            "{}: checksum matches ({})",
            backup.file,
            short(&backup.sha256)
        ))
        .await
    }

    /// Restores the backup into a throwaway container of the database's own image (no
    /// network, no port, removed afterwards whatever happens) and compares its migration
    /// head with the one recorded at backup time.
    pub(in crate::runs) async fn restore_drill(
        &self,
        service: &ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let backup = self.target_backup(log).await?;
        let image = service.image_name(&self.stack.project);
        let name = format!("slipway-drill-{}", uuid::Uuid::new_v4().simple());
        let container = self
            .engine
            .create_container(&name, drill_container(&image, &backup))
            .await
            .map_err(|error| format!("the drill's database cannot be made: {error}"))?;
        let outcome = self.drill_in(&container, &backup, log).await;
        let _ = self.engine.remove_container(&container).await;
        let (state, restore_ms, note) = match &outcome {
            Ok(restore_ms) => ("verified", *restore_ms, String::new()),
            Err(fault) => ("failed", 0, fault.clone()),
        };
        crate::backups::service::set_verification(
            &log.handle.store,
            &backup,
            state,
            restore_ms,
            &note,
        )
        .await
        .map_err(|error| error.to_string())?;
        let restore_ms = outcome?;
        log.say(format!(
            "verified: restored in {:.1} s, migration head {}",
            restore_ms as f64 / 1000.0,
            if backup.migration_head.is_empty() {
                "(none recorded)"
            } else {
                &backup.migration_head
            }
        ))
        .await
    }

    /// Starts the drill's database, restores into it and compares; returns the restore's
    /// duration in milliseconds.
    async fn drill_in(
        &self,
        container: &str,
        backup: &Backup,
        log: &StepLog<'_>,
    ) -> Result<i64, String> {
        self.engine
            .start_container(container)
            .await
            .map_err(|error| format!("the drill's database does not start: {error}"))?;
        let deadline = tokio::time::Instant::now() + DRILL_READY_WITHIN;
        loop {
            let ready = self
                .exec_status(container, "pg_isready -q -h 127.0.0.1")
                .await?;
            if ready.0 == 0 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the drill's database did not accept connections within {} s",
                    DRILL_READY_WITHIN.as_secs()
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        log.say("throwaway database ready").await?;
        let started = std::time::Instant::now();
        let (code, said) = self
            .exec_status(
                container,
                "PGPASSWORD=\"$POSTGRES_PASSWORD\" pg_restore --exit-on-error --no-owner \
                 --no-privileges -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" \
                 /drill/backup.dump",
            )
            .await?;
        let restore_ms = started.elapsed().as_millis() as i64;
        if code != 0 {
            let first = said.lines().next().unwrap_or_default().to_owned();
            return Err(format!("pg_restore exited with code {code}: {first}"));
        }
        // The head is compared when one was recorded (the table existed at backup time).
        if !backup.migration_head.is_empty() {
            if let Some(head) = self.migration_head(container).await {
                let head = head?;
                if head != backup.migration_head {
                    return Err(format!(
                        "the restored migration head is {head:?} where {:?} was recorded",
                        backup.migration_head
                    ));
                }
            }
        }
        Ok(restore_ms)
    }

    /// Runs a shell line in a container; its exit code and what it wrote.
    async fn exec_status(&self, container: &str, line: &str) -> Result<(i64, String), String> {
        let command = vec!["sh".to_owned(), "-c".to_owned(), line.to_owned()];
        self.engine
            .exec_status(container, command)
            .await
            .map_err(|error| error.to_string())
    }
}

/// The drill's container: the database image with a fresh user, database and password of
/// its own, the dump mounted read-only, no network and no published port.
fn drill_container(image: &str, backup: &Backup) -> bollard::models::ContainerCreateBody {
    let password = uuid::Uuid::new_v4().simple().to_string();
    bollard::models::ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(vec![
            "POSTGRES_USER=slipway_drill".into(),
            "POSTGRES_DB=slipway_drill".into(),
            format!("POSTGRES_PASSWORD={password}"),
        ]),
        labels: Some(std::collections::HashMap::from([
            (DRILL_LABEL.to_owned(), backup.id.clone()),
            (
                DRILL_HOLDER_LABEL.to_owned(),
                crate::runs::lock::this_holder(),
            ),
            ("slipway.managed".to_owned(), "true".to_owned()),
        ])),
        host_config: Some(bollard::models::HostConfig {
            binds: Some(vec![format!("{}:/drill/backup.dump:ro", backup.file)]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The first twelve characters, for lines: what the store holds is never trusted to be long.
fn short(text: &str) -> &str {
    text.get(..12).unwrap_or(text)
}

async fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}
