//! The env file: its check before a deploy (secrets long enough, never a value shown), and
//! a release's settings written to it.

use std::path::Path;

use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::{compose, secrets};

impl<'a> StepContext<'a> {
    /// Secrets must be long enough; only names and lengths are reported, never values.
    pub(in crate::runs) async fn check_env(&self, log: &StepLog<'_>) -> Result<(), String> {
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
            if let Some(weak) = secrets::too_short(name, value) {
                return Err(weak);
            }
            log.say(format!("{name}: {} characters", value.chars().count()))
                .await?;
        }
        Ok(())
    }
}

impl StepContext<'_> {
    /// Writes the release's settings to the env file (the previous file kept beside it and
    /// put back if the run fails); audited by name, never by value.
    pub(in crate::runs) async fn apply_release(&self, log: &StepLog<'_>) -> Result<(), String> {
        let run = &log.handle.run;
        let sets = crate::releases::service::sets(&log.handle.store, &run.options.release).await?;
        if sets.is_empty() {
            return log
                .say("the release sets nothing: the compose and env files as they are")
                .await;
        }
        let path = self
            .stack
            .env_file
            .as_deref()
            .ok_or_else(|| format!("stack {} has no env file", self.stack.name))?;
        let written = crate::stacks::env_file::write(Path::new(path), &sets)?;
        let previous = written.previous_path().display().to_string();
        *self
            .env_written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(written);
        let names: Vec<&str> = sets.iter().map(|(name, _)| name.as_str()).collect();
        log.handle
            .audit(
                "release.applied",
                serde_json::json!({ "run": run.id, "release": run.options.release, "variables": names }),
            )
            .await
            .map_err(|error| error.to_string())?;
        log.say(format!(
            "wrote {} to {path}; the version before is kept as {previous}",
            sets.iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
    }
}
