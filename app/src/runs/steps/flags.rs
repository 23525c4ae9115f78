//! A flag run's env file: the flag written before the services that read it are replaced,
//! and the previous file put back when the run fails after that.

use serde_json::json;

use crate::runs::executor::{StepContext, StepLog};

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
        let written = crate::flags::service::write(std::path::Path::new(path), name, value)?;
        let old = written.old_value.clone().unwrap_or_else(|| "unset".into());
        let previous = written.previous_path().display().to_string();
        *self
            .flag_written
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
            "no service reads it".to_owned()
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

    /// After a failure: the env file as it was before the flag, unless it changed since.
    pub(in crate::runs) async fn put_flag_back(&self, log: &StepLog<'_>) {
        let written = self
            .flag_written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(written) = written else {
            return;
        };
        let line = match crate::flags::service::put_back(&written) {
            Ok(()) => {
                let _ = log
                    .handle
                    .audit(
                        "flag.put_back",
                        json!({ "run": log.handle.run.id, "flag": log.handle.run.target, "value": written.old_value }),
                    )
                    .await;
                format!("{} is back as it was", written.path.display())
            }
            Err(error) => error,
        };
        let _ = log.say(line).await;
    }
}
