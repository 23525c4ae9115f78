//! Clean up: the stack's old stopped containers and its own unused images, never one a
//! recorded run could roll back to.

use crate::runs::executor::{StepContext, StepLog};

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

impl<'a> StepContext<'a> {
    /// Stopped containers of the project older than the cleanup age.
    pub(in crate::runs) async fn remove_stopped_containers(
        &self,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
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
    pub(in crate::runs) async fn remove_unused_images(
        &self,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let cutoff = cleanup_cutoff()?;
        let mut recorded: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT image_id FROM run_images")
                .fetch_all(log.handle.store.pool())
                .await
                .map_err(|e| e.to_string())?;
        // A restore can start the app on the images recorded with a backup.
        let with_backups: Vec<(String,)> = sqlx::query_as("SELECT images FROM backups")
            .fetch_all(log.handle.store.pool())
            .await
            .map_err(|e| e.to_string())?;
        for (images,) in with_backups {
            let images: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&images).unwrap_or_default();
            recorded.extend(images.into_values().map(|id| (id,)));
        }
        let images = self
            .engine
            .dangling_images(&self.stack.project)
            .await
            .map_err(|e| e.to_string())?;
        let mut said = 0;
        for (id, created) in images {
            let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
            let line = if recorded.iter().any(|(kept,)| *kept == short) {
                format!("kept {short}: a recorded run or backup could go back to it")
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
}
