//! The env file's check before a deploy: secrets long enough, never a value shown.

use std::path::Path;

use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::{compose, secrets};

/// Names with "secret" must be at least this long; passwords, tokens and keys this.
const MIN_SECRET_CHARS: usize = 32;
const MIN_PASSWORD_CHARS: usize = 12;

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
}
