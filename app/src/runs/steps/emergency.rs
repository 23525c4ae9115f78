//! An emergency rollback's own steps: its end said where people look, and what it stopped
//! started again as it was when it ends before the restore.

use serde_json::json;

use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::{lifecycle, ServiceRole};

impl StepContext<'_> {
    /// The end of an emergency rollback, said in the run and the audit trail (webhooks are
    /// the notifications' domain). The rollback is done whatever happens to the notice.
    pub(in crate::runs) async fn notify_emergency(&self, log: &StepLog<'_>) -> Result<(), String> {
        let run = &log.handle.run;
        let audited = log
            .handle
            .audit(
                "rollback.emergency_done",
                json!({ "run": run.id, "backup": run.options.backup, "images_of": run.target, "approval": run.options.approval }),
            )
            .await;
        if let Err(error) = audited {
            tracing::error!(error = %error, run = run.id, "the emergency rollback's notice was not audited");
            log.say("the notice could not be written to the audit trail")
                .await?;
        }
        log.say(format!(
            "EMERGENCY ROLLBACK of {} done: backup {} restored, the images of run {} running (requested by {})",
            self.stack.name, run.options.backup, run.target, run.requested_by
        ))
        .await
    }

    /// After an emergency rollback that ended before the restore: the containers it stopped
    /// start again as they were (the data is unchanged, so the older images must not).
    pub(in crate::runs) async fn start_stopped_as_they_were(&self, log: &StepLog<'_>) {
        let Ok(order) = lifecycle::dependency_order(self.definition) else {
            return;
        };
        let project = self.stack.project.as_str();
        for service in order.iter().filter(|s| s.role != ServiceRole::Data) {
            let line = match lifecycle::start_as_it_is(self.engine, project, &service.name).await {
                Ok(false) => continue,
                Ok(true) => format!("started again as it was: {}", service.name),
                Err(error) => format!("{} could not be started again: {error}", service.name),
            };
            let _ = log.say(line).await;
        }
    }
}
