//! A flag run's env file: the flag written before the services that read it are replaced;
//! and for every run that wrote the env file, the previous file put back when it fails.

use serde_json::json;

use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::{env_file, lifecycle};

impl StepContext<'_> {
    /// Writes the run's flag (its target) with its value; audited with the old and new value.
    pub(in crate::runs) async fn set_flag(&self, log: &StepLog<'_>) -> Result<(), String> {
        let run = &log.handle.run;
        let (name, value) = (run.target.as_str(), run.options.flag_value.as_str());
        let path = self
            .stack
            .env_file
            .as_deref()
            .ok_or_else(|| format!("stack {} has no env file", self.stack.name))?;
        let flag = crate::flags::service::check(self.stack, name, value)?;
        self.only_the_flag_changes(&flag.replaced).await?;
        let written = env_file::write(
            std::path::Path::new(path),
            &[(name.to_owned(), value.to_owned())],
        )?;
        let old = written
            .old_values
            .get(name)
            .cloned()
            .flatten()
            .unwrap_or_else(|| "unset".into());
        let previous = written.previous_path().display().to_string();
        *self
            .env_written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(written);
        log.handle
            .audit(
                "flag.set",
                json!({ "run": run.id, "flag": name, "old": old, "new": value, "env_file": path }),
            )
            .await
            .map_err(|error| error.to_string())?;
        log.say(format!(
            "{name}: {old} → {value} in {path}; the version before is kept as {previous}"
        ))
        .await?;
        let readers = if flag.readers.is_empty() {
            "no service's definition interpolates it, so nothing is replaced (Slipway does not yet follow a service's own env_file:)".to_owned()
        } else {
            format!("read by {}", flag.readers.join(", "))
        };
        let others: Vec<&String> = flag
            .readers
            .iter()
            .filter(|reader| !flag.replaced.contains(reader))
            .collect();
        log.say(if others.is_empty() {
            readers
        } else {
            format!(
                "{readers}; {} take it at their next start",
                others
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .await
    }

    /// A flag run changes nothing but the flag: each service it replaces must run exactly its
    /// definition as the files say now (with the image reference it runs), or the run would
    /// also apply an edit nobody asked to ship.
    async fn only_the_flag_changes(&self, replaced: &[String]) -> Result<(), String> {
        let now =
            crate::stacks::service::definition(self.stack).map_err(|error| error.to_string())?;
        let now = crate::runs::plan::pin(
            &now,
            &crate::runs::executor::running_images(self.engine, self.stack).await?,
        );
        for service in now.services.iter().filter(|s| replaced.contains(&s.name)) {
            let current = lifecycle::runs_as_defined(
                self.engine,
                &self.stack.project,
                service,
                &self.compose_dir,
            )
            .await
            .map_err(|error| error.to_string())?;
            if !current {
                return Err(format!(
                    "{} does not run what the compose and env files say now (edited, or its image retagged, since it started): apply that with an update first; the flag was not written",
                    service.name
                ));
            }
        }
        Ok(())
    }

    /// After a failure: the env file as it was before the run wrote it, unless it changed
    /// since. The audit names the variables, never their values.
    pub(in crate::runs) async fn put_env_back(&self, log: &StepLog<'_>) {
        let written = self
            .env_written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(written) = written else {
            return;
        };
        let line = match env_file::put_back(&written) {
            Ok(()) => {
                let names: Vec<&String> = written.old_values.keys().collect();
                let _ = log
                    .handle
                    .audit(
                        "env.put_back",
                        json!({ "run": log.handle.run.id, "variables": names }),
                    )
                    .await;
                format!("{} is back as it was", written.path.display())
            }
            Err(error) => error,
        };
        let _ = log.say(line).await;
    }
}
