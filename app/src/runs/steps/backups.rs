//! Backups of a stack's database: `pg_dump --format=custom` run inside the database's own
//! container, streamed into a temporary file whose SHA-256 is taken on the way, renamed only
//! when complete, and recorded in the inventory with what the database held at that moment.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::backups::{Backup, BackupReason, RowCounts, DRILL_HOLDER_LABEL, DRILL_LABEL};
use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::compose::ServiceDefinition;
use crate::stacks::engine::ExecOutput;
use crate::stacks::lifecycle;
use crate::stacks::ServiceRole;
use crate::store::now_utc;

/// Connects psql, pg_dump and pg_restore as the container's own database user, with its
/// password, to its database, all from the container's environment: nothing of them passes
/// through Slipway.
const AS_DATABASE_OWNER: &str = "export PGPASSWORD=\"$POSTGRES_PASSWORD\" PGHOST=127.0.0.1 \
     PGUSER=\"${POSTGRES_USER:-postgres}\" \
     PGDATABASE=\"${POSTGRES_DB:-${POSTGRES_USER:-postgres}}\"\n";

/// Marks the line that carries every user table's exact row count, as JSON.
const ROWS_MARK: &str = "slipway-rows ";
/// Marks pg_dump's exit code when it fails (psql's `\!` does not pass it on).
const DUMP_FAILED_MARK: &str = "slipway-dump-failed ";

/// One line: `slipway-rows {"schema.table": rows, …}` for every user table (names quoted as
/// SQL quotes them; tables an extension owns are left out, as pg_dump leaves their data out).
const ROW_COUNTS: &str = "SELECT 'slipway-rows ' || coalesce(json_object_agg(format('%I.%I', n.nspname, c.relname), \
     (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), \
     false, true, '')))[1]::text::bigint), '{}') \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                     AND d.objid = c.oid AND d.deptype = 'e');";

/// The dump and the row counts read in one snapshot: a read-only repeatable-read
/// transaction exports its snapshot, counts every table (to stderr, marked) and keeps the
/// snapshot open while `pg_dump --snapshot` writes the dump to stdout. The counts are
/// therefore exactly what the dump holds, with the apps still serving.
fn dump_script() -> String {
    format!(
        "{AS_DATABASE_OWNER}exec psql -X -q -At -v ON_ERROR_STOP=1 <<'SQL'\n\
         BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n\
         SET LOCAL jit = off;\n\
         SELECT pg_export_snapshot() AS slipway_snapshot \\gset\n\
         \\setenv SLIPWAY_SNAPSHOT :slipway_snapshot\n\
         \\o /dev/stderr\n\
         {ROW_COUNTS}\n\
         \\o\n\
         \\! pg_dump --format=custom --snapshot=\"$SLIPWAY_SNAPSHOT\" || echo \"{DUMP_FAILED_MARK}$?\" >&2\n\
         COMMIT;\n\
         SQL\n"
    )
}

/// The row counts of the database as it is now (a drill's, after its restore). JIT is off
/// for the counts, as in the dump's session: a count gains nothing from it, and images
/// without the JIT's files would fail the query.
fn count_script() -> String {
    format!(
        "{AS_DATABASE_OWNER}exec psql -X -q -At -v ON_ERROR_STOP=1 <<'SQL'\nSET jit = off;\n{ROW_COUNTS}\nSQL\n"
    )
}

/// What the dump script said on stderr: the row counts, pg_dump's exit code if it failed,
/// and everything else it said.
#[derive(Debug, Default, PartialEq)]
struct DumpReport {
    row_counts: Option<RowCounts>,
    dump_failed: Option<i64>,
    said: Vec<String>,
}

fn read_report(stderr: &str) -> DumpReport {
    let mut report = DumpReport::default();
    for line in stderr.lines() {
        if let Some(json) = line.strip_prefix(ROWS_MARK) {
            report.row_counts = serde_json::from_str(json).ok();
        } else if let Some(code) = line.strip_prefix(DUMP_FAILED_MARK) {
            report.dump_failed = Some(code.trim().parse().unwrap_or(-1));
        } else if !line.trim().is_empty() {
            report.said.push(line.to_owned());
        }
    }
    report
}

/// The first way the restored tables differ from those recorded at backup time.
fn first_difference(recorded: &RowCounts, restored: &RowCounts) -> Option<String> {
    for (table, rows) in recorded {
        match restored.get(table) {
            None => {
                return Some(format!(
                    "table {table} is missing from the restored database"
                ))
            }
            Some(found) if found != rows => {
                return Some(format!(
                    "table {table} has {found} rows where {rows} were recorded"
                ))
            }
            Some(_) => {}
        }
    }
    restored
        .keys()
        .find(|table| !recorded.contains_key(*table))
        .map(|table| format!("table {table} was not in the database when it was backed up"))
}

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
            let (size_bytes, sha256, row_counts) =
                self.dump_into(&container, &partial, log).await?;
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
                note: log.handle.run.options.why.clone(),
                run_id: log.handle.run.id.clone(),
                migration_head: self.recorded_head(&container, log).await?,
                images: self.running_images().await?,
                row_counts: serde_json::to_string(&row_counts).unwrap_or_default(),
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
            *self.taken.lock().unwrap_or_else(|e| e.into_inner()) = Some(backup.id.clone());
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
        log.say(format!(
            "{} (counted in the dump's own snapshot)",
            backup.rows_in_words()
        ))
        .await?;
        if !backup.migration_head.is_empty() {
            log.say(format!("migration head: {}", backup.migration_head))
                .await?;
        }
        Ok(())
    }

    /// Streams the dump into `partial`, hashing it on the way; returns its size, SHA-256
    /// and the row counts read in the dump's snapshot.
    async fn dump_into(
        &self,
        container: &str,
        partial: &std::path::Path,
        log: &StepLog<'_>,
    ) -> Result<(i64, String, RowCounts), String> {
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
        let command = vec!["sh".to_owned(), "-c".to_owned(), dump_script()];
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
        let report = read_report(&String::from_utf8_lossy(&complaints));
        // What pg_dump and psql said goes through the run's masking like every line.
        for line in &report.said {
            log.say(format!("pg_dump: {line}")).await?;
        }
        match (code, report.dump_failed) {
            (127, _) => {
                return Err(
                    "psql is not in the database's image (psql and pg_dump must be on its PATH)"
                        .into(),
                )
            }
            (_, Some(127)) => return Err("pg_dump is not in the database's image".into()),
            (_, Some(failed)) => return Err(format!("pg_dump exited with code {failed}")),
            (0, None) => {}
            (code, None) => return Err(format!("psql exited with code {code} around the dump")),
        }
        if size == 0 {
            return Err("pg_dump wrote nothing".into());
        }
        let row_counts = report
            .row_counts
            .ok_or("the row counts were not reported alongside the dump")?;
        Ok((size, hex::encode(hasher.finalize()), row_counts))
    }

    async fn migration_head(&self, container: &str) -> Option<Result<String, String>> {
        lifecycle::migration_head(self.engine, container, self.definition).await
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
    /// The database service a backup was taken from, as the compose file has it now.
    fn database_of(&self, backup: &Backup) -> Result<&'a ServiceDefinition, String> {
        self.definition
            .service(&backup.service)
            .filter(|service| service.backup.is_some())
            .ok_or_else(|| {
                format!(
                    "backup {} was taken from {}, which the compose file no longer backs up",
                    backup.id, backup.service
                )
            })
    }

    /// The run's backup, as the inventory has it: the one an emergency rollback restores,
    /// its target, or the one it took itself.
    async fn target_backup(&self, log: &StepLog<'_>) -> Result<Backup, String> {
        let taken = self.taken.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let run = &log.handle.run;
        let target = if run.options.emergency {
            run.options.backup.as_str()
        } else {
            run.target.as_str()
        };
        let id = match (target, taken.as_deref()) {
            ("", Some(taken)) => taken.to_owned(),
            ("", None) => return Err("this run took no backup to check".into()),
            (target, _) => target.to_owned(),
        };
        let id = id.as_str();
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
    /// network, no port, removed afterwards whatever happens) and compares every table's
    /// row count and the migration head with those recorded at backup time.
    pub(in crate::runs) async fn restore_drill(&self, log: &StepLog<'_>) -> Result<(), String> {
        let backup = self.target_backup(log).await?;
        let service = self.database_of(&backup)?;
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
            // Stored and audited: masked like every line.
            Err(fault) => (
                "failed",
                0,
                crate::stacks::secrets::redact(fault, &log.handle.secrets),
            ),
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
        let restore = format!(
            "{AS_DATABASE_OWNER}exec pg_restore --exit-on-error --no-owner --no-privileges \
             -d \"$PGDATABASE\" /drill/backup.dump"
        );
        let (code, said) = self.exec_status(container, &restore).await?;
        let restore_ms = started.elapsed().as_millis() as i64;
        if code != 0 {
            let first = said.lines().next().unwrap_or_default().to_owned();
            return Err(format!("pg_restore exited with code {code}: {first}"));
        }
        match backup.row_counts() {
            Some(recorded) => {
                let restored = self.row_counts(container).await?;
                if let Some(difference) = first_difference(&recorded, &restored) {
                    return Err(difference);
                }
                log.say(format!(
                    "every table holds the rows recorded: {}",
                    backup.rows_in_words()
                ))
                .await?;
            }
            None => {
                log.say("no row counts were recorded with this backup")
                    .await?
            }
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

    /// Every user table's row count in the database of `container`, as it is now.
    async fn row_counts(&self, container: &str) -> Result<RowCounts, String> {
        let (code, said) = self.exec_status(container, &count_script()).await?;
        let report = read_report(&said);
        match report.row_counts {
            Some(counts) if code == 0 => Ok(counts),
            _ => Err(format!(
                "the restored tables cannot be counted: {}",
                report
                    .said
                    .first()
                    .map(String::as_str)
                    .unwrap_or("psql said nothing")
            )),
        }
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

/// How long a restore into the live database may take.
const RESTORE_WITHIN: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The restore into the live database, from a one-off container of the database's image on
/// the stack's network (the dump mounted read-only), owners and grants kept. `--clean --if-exists` drops and
/// recreates every object the dump holds and `--single-transaction` makes that one
/// transaction: a restore that fails leaves the live database exactly as it was. Tables made
/// after the backup are not in the dump and stay as they are (the run names them).
/// The database's host comes in `SLIPWAY_RESTORE_HOST`, never through the shell line.
fn restore_script() -> String {
    format!(
        "{AS_DATABASE_OWNER}export PGHOST=\"$SLIPWAY_RESTORE_HOST\"\n\
         exec pg_restore --clean --if-exists --single-transaction \
         -d \"$PGDATABASE\" /restore/backup.dump\n"
    )
}

impl<'a> StepContext<'a> {
    /// A restore takes only a backup a drill has verified, unless an admin forced it; a
    /// corrupt one was refused by the checksum step before this.
    pub(in crate::runs) async fn check_restorable(&self, log: &StepLog<'_>) -> Result<(), String> {
        let backup = self.target_backup(log).await?;
        let run = &log.handle.run;
        if run.options.recorded_images {
            let images: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&backup.images).unwrap_or_default();
            for (service, image) in &images {
                if self.engine.image_id(image).await.is_err() {
                    return Err(format!(
                        "the image {image} that {service} ran with this backup is no longer on the engine; restore on the current images instead"
                    ));
                }
            }
        }
        match backup.verification.as_str() {
            "verified" => {
                log.say(format!(
                    "verified by a restore drill at {} (restored in {:.1} s)",
                    backup.verified_at,
                    backup.restore_ms as f64 / 1000.0
                ))
                .await
            }
            state if run.options.force => {
                log.say(format!(
                    "the backup is {state}; restored anyway: forced by {}",
                    run.requested_by
                ))
                .await
            }
            "failed" => Err(format!(
                "backup {} failed its restore drill ({}); restore it only with force",
                backup.id, backup.verify_note
            )),
            _ => Err(format!(
                "backup {} has not been proved by a restore drill; verify it first, or restore it with force",
                backup.id
            )),
        }
    }

    /// Restores the backup into the live database and checks every table it held.
    pub(in crate::runs) async fn restore_live(&self, log: &StepLog<'_>) -> Result<(), String> {
        let backup = self.target_backup(log).await?;
        let service = self.database_of(&backup)?;
        let project = self.stack.project.as_str();
        let live = lifecycle::running_container(self.engine, project, &service.name)
            .await
            .map_err(|error| format!("{error}; a restore needs the database running"))?;
        let script = restore_script();
        let host = format!("SLIPWAY_RESTORE_HOST={}", service.name);
        let file = backup.file.clone();
        let holder = crate::runs::lock::this_holder();
        let adjust = |body: &mut bollard::models::ContainerCreateBody| {
            body.entrypoint = Some(vec!["sh".into(), "-c".into(), script]);
            body.cmd = None;
            body.env.get_or_insert_with(Vec::new).push(host);
            body.volumes = None;
            if let Some(host) = body.host_config.as_mut() {
                host.binds = Some(vec![format!("{file}:/restore/backup.dump:ro")]);
                host.mounts = None;
            }
            // Found and removed at the next start if this process dies during the restore.
            if let Some(labels) = body.labels.as_mut() {
                labels.insert(DRILL_LABEL.into(), backup.id.clone());
                labels.insert(DRILL_HOLDER_LABEL.into(), holder);
            }
        };
        let started = std::time::Instant::now();
        let restored = lifecycle::run_adjusted(
            self.engine,
            project,
            service,
            &self.compose_dir,
            ("pg_restore", RESTORE_WITHIN),
            adjust,
            |line| log.say(format!("pg_restore: {line}")),
        )
        .await;
        let failure = match restored {
            Ok(0) => None,
            Ok(code) => Some(format!(
                "pg_restore exited with code {code}: the live database was left as it was"
            )),
            Err(error) => Some(format!("{error}: the live database was left as it was")),
        };
        if let Some(failure) = failure {
            // Nothing changed the data; the run's end starts the app on it again.
            return Err(failure);
        }
        self.restored
            .store(true, std::sync::atomic::Ordering::SeqCst);
        log.say(format!(
            "restored {} in {:.1} s",
            backup.file,
            started.elapsed().as_secs_f64()
        ))
        .await?;
        let Some(recorded) = backup.row_counts() else {
            return log
                .say("no row counts were recorded with this backup")
                .await;
        };
        let restored = self
            .row_counts(&live)
            .await
            .map_err(|error| format!("the live database was restored, but {error}"))?;
        let made_later: Vec<&str> = restored
            .keys()
            .filter(|table| !recorded.contains_key(*table))
            .map(String::as_str)
            .collect();
        let in_backup: RowCounts = restored
            .iter()
            .filter(|(table, _)| recorded.contains_key(*table))
            .map(|(table, rows)| (table.clone(), *rows))
            .collect();
        if let Some(difference) = first_difference(&recorded, &in_backup) {
            return Err(format!("the live database was restored, but {difference}"));
        }
        log.say(format!(
            "every table holds the rows recorded: {}",
            backup.rows_in_words()
        ))
        .await?;
        if !made_later.is_empty() {
            log.say(format!(
                "tables made after the backup were left as they are: {}",
                made_later.join(", ")
            ))
            .await?;
        }
        Ok(())
    }

    /// After a restore that ended early: the app services it stopped, started again on their
    /// current images (those still running are left as they are). Best effort to the end.
    pub(in crate::runs) async fn start_apps_again(&self, log: &StepLog<'_>) {
        let Ok(order) = lifecycle::dependency_order(self.definition) else {
            return;
        };
        let project = self.stack.project.as_str();
        for service in order.iter().filter(|s| s.role != ServiceRole::Data) {
            let started =
                lifecycle::start_service(self.engine, project, service, &self.compose_dir).await;
            let line = match started {
                Ok(lifecycle::Started::AlreadyRunning) => continue,
                Ok(_) => format!("started again: {}", service.name),
                Err(error) => format!("{} could not be started again: {error}", service.name),
            };
            let _ = log.say(line).await;
        }
    }

    /// Starts a service on the image it ran when the backup was taken (its current one when
    /// the backup recorded none for it).
    pub(in crate::runs) async fn start_as_backed_up(
        &self,
        service: &ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let backup = self.target_backup(log).await?;
        let images: std::collections::BTreeMap<String, String> =
            serde_json::from_str(&backup.images).unwrap_or_default();
        let mut pinned = service.clone();
        let on = match images.get(&service.name) {
            Some(image) => {
                pinned.image = Some(image.clone());
                pinned.build = None;
                image.clone()
            }
            None => format!(
                "{} (none was recorded)",
                service.image_name(&self.stack.project)
            ),
        };
        let started =
            lifecycle::start_service(self.engine, &self.stack.project, &pinned, &self.compose_dir)
                .await
                .map_err(|error| error.to_string())?;
        log.say(format!(
            "{}: {} on {on}",
            service.name,
            format!("{started:?}").to_lowercase()
        ))
        .await
    }

    /// `file` when it is a dump inside this stack's backup directory, as a real path.
    fn own_backup_file(&self, file: &str) -> Option<std::path::PathBuf> {
        let folder = std::fs::canonicalize(&self.backups).ok()?;
        let path = std::path::Path::new(file);
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        (real.starts_with(&folder) && real.extension().is_some_and(|e| e == "dump")).then_some(real)
    }

    /// Deletes the backups outside the stack's retention rule; says why each survivor stays.
    pub(in crate::runs) async fn prune(&self, log: &StepLog<'_>) -> Result<(), String> {
        use crate::backups::{retention, service};
        let store = &log.handle.store;
        let stack = self.stack.name.as_str();
        let text = |error: crate::store::StoreError| error.to_string();
        let policy = service::policy(store, stack).await.map_err(text)?;
        let backups = service::list(store, stack, i64::MAX).await.map_err(text)?;
        let protected = service::protected(store, stack).await.map_err(text)?;
        log.say(format!("rule: {}", policy.in_words())).await?;
        let verdicts = retention::judge(&backups, &policy, &protected, chrono::Utc::now());
        let (mut kept, mut deleted) = (0, 0);
        for (backup, (_, verdict)) in backups.iter().zip(verdicts) {
            let line = match verdict {
                retention::Verdict::Keep(why) => {
                    kept += 1;
                    format!("kept {} ({}): {why}", backup.id, backup.finished_at)
                }
                retention::Verdict::Delete => {
                    let Some(file) = self.own_backup_file(&backup.file) else {
                        kept += 1;
                        log.say(format!(
                            "kept {} ({}): its file {} is not in this stack's backup directory",
                            backup.id, backup.finished_at, backup.file
                        ))
                        .await?;
                        continue;
                    };
                    // Out of the inventory first: a file left behind is better than an
                    // entry whose file is gone.
                    let system = crate::audit::service::Actor::system();
                    service::forget(store, &system, backup)
                        .await
                        .map_err(text)?;
                    deleted += 1;
                    let removed = match tokio::fs::remove_file(&file).await {
                        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                            format!("; its file could not be deleted: {error}")
                        }
                        _ => String::new(),
                    };
                    format!(
                        "deleted {} ({}, {}, {}): outside the rule{removed}",
                        backup.id,
                        backup.finished_at,
                        backup.reason,
                        crate::backups::size_in_words(backup.size_bytes)
                    )
                }
            };
            log.say(line).await?;
        }
        log.say(format!("{kept} kept, {deleted} deleted")).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, i64)]) -> RowCounts {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn the_report_separates_counts_a_failed_dump_and_what_else_was_said() {
        let report = read_report(
            "slipway-rows {\"public.users\" : 3, \"s.We ird\" : 0}\n\
             pg_dump: warning: something\n\nslipway-dump-failed 1\n",
        );
        assert_eq!(
            report,
            DumpReport {
                row_counts: Some(counts(&[("public.users", 3), ("s.We ird", 0)])),
                dump_failed: Some(1),
                said: vec!["pg_dump: warning: something".into()],
            }
        );
        assert_eq!(
            read_report("psql: error: connection refused").row_counts,
            None
        );
    }

    #[test]
    fn the_first_difference_names_the_table_and_both_counts() {
        let recorded = counts(&[("public.a", 2), ("public.b", 5)]);
        assert_eq!(first_difference(&recorded, &recorded.clone()), None);
        assert_eq!(
            first_difference(&recorded, &counts(&[("public.a", 2), ("public.b", 4)])).as_deref(),
            Some("table public.b has 4 rows where 5 were recorded")
        );
        assert_eq!(
            first_difference(&recorded, &counts(&[("public.b", 5)])).as_deref(),
            Some("table public.a is missing from the restored database")
        );
        assert_eq!(
            first_difference(&counts(&[("public.a", 2)]), &recorded).as_deref(),
            Some("table public.b was not in the database when it was backed up")
        );
    }

    #[test]
    fn the_dump_script_keeps_one_snapshot_for_counts_and_dump() {
        let script = dump_script();
        let export = script.find("pg_export_snapshot()").unwrap();
        let count = script.find("slipway-rows").unwrap();
        let dump = script.find("pg_dump --format=custom --snapshot=").unwrap();
        let commit = script.find("COMMIT").unwrap();
        assert!(export < count && count < dump && dump < commit);
        assert!(script.contains("REPEATABLE READ"));
    }
}
