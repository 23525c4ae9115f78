//! The last step of an emergency rollback: its end said where people look.

use serde_json::json;

use crate::runs::executor::{StepContext, StepLog};

impl StepContext<'_> {
    /// The end of an emergency rollback, said in the run and the audit trail (webhooks are
    /// the notifications' domain).
    pub(in crate::runs) async fn notify_emergency(&self, log: &StepLog<'_>) -> Result<(), String> {
        let run = &log.handle.run;
        log.handle
            .audit(
                "rollback.emergency_done",
                json!({ "run": run.id, "backup": run.options.backup, "images_of": run.target, "approval": run.options.approval }),
            )
            .await
            .map_err(|error| error.to_string())?;
        log.say(format!(
            "EMERGENCY ROLLBACK of {} done: backup {} restored, the images of run {} running (requested by {})",
            self.stack.name, run.options.backup, run.target, run.requested_by
        ))
        .await
    }
}
