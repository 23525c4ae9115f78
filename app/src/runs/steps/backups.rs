//! Backups of a stack's database: `pg_dump --format=custom` run inside the database's own
//! container, streamed into a temporary file whose SHA-256 is taken on the way, renamed only
//! when complete, and recorded in the inventory with what the database held at that moment.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::backups::{Backup, BackupReason};
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
        let written = self.dump_into(&container, &partial, log).await;
        let (size_bytes, sha256) = match written {
            Ok(written) => written,
            Err(error) => {
                // No partial file is ever left under any name.
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(error);
            }
        };
        tokio::fs::rename(&partial, &file)
            .await
            .map_err(|error| format!("cannot name the backup {}: {error}", file.display()))?;
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
            migration_head: self.migration_head(&container, log).await?,
            images: self.running_images().await?,
            verification: "unverified".into(),
        };
        crate::backups::service::record(
            &log.handle.store,
            &crate::audit::service::Actor::system(),
            &backup,
        )
        .await
        .map_err(|error| error.to_string())?;
        log.say(format!(
            "{}: {} written to {} (sha256 {})",
            service.name,
            crate::backups::size_in_words(backup.size_bytes),
            backup.file,
            &backup.sha256[..12]
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

    /// The newest record of the stack's migrations table, read in the database container;
    /// empty when the stack names none or it cannot be read (the run says why).
    async fn migration_head(&self, container: &str, log: &StepLog<'_>) -> Result<String, String> {
        let Some(table) = self
            .definition
            .services
            .iter()
            .find_map(|s| s.migrations_table.as_deref())
            .filter(|table| table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        else {
            return Ok(String::new());
        };
        let sql = format!("SELECT migration_name FROM {table} ORDER BY finished_at DESC LIMIT 1");
        match lifecycle::psql(self.engine, container, &sql).await {
            Ok(head) => Ok(head.trim().to_owned()),
            Err(error) => {
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
