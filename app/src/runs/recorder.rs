//! A run in progress, as it is recorded: its steps, their statuses and its lines go to the
//! store the moment they happen, and finishing it frees the stack and audits the outcome.

use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::stacks::secrets;
use crate::store::{now_utc, Store, StoreError};

use super::lock::release;
use super::{RunError, RunStatus, RunSummary, StepStatus};

pub(super) fn store_error(error: sqlx::Error) -> RunError {
    RunError::from(StoreError::from(error))
}

/// A run in progress: every line and step change goes to the store first.
pub struct RunHandle {
    pub(super) store: Store,
    pub run: RunSummary,
    pub(super) next_seq: AtomicI64,
    /// Print lines to stdout as well (the command line).
    pub(super) echo: bool,
    /// Values masked in every stored line.
    pub(super) secrets: Vec<String>,
    pub(super) released: bool,
    /// Set when the console is stopping: the run ends before its next step.
    pub(super) stopping: Option<tokio_util::sync::CancellationToken>,
}

/// How a run that did not succeed ended.
#[derive(Debug)]
pub(super) enum RunEnd {
    /// A step failed; the words say why (secrets masked before they are stored).
    Failed(String),
    /// Someone cancelled it.
    Cancelled,
    /// The console was stopping: the run stopped before its next step.
    Interrupted,
}

impl From<String> for RunEnd {
    fn from(reason: String) -> Self {
        RunEnd::Failed(reason)
    }
}

impl RunHandle {
    /// Records the steps the run will take, all pending.
    pub async fn plan(&self, names: &[String]) -> Result<(), RunError> {
        for (index, name) in names.iter().enumerate() {
            sqlx::query(
                "INSERT INTO run_steps (run_id, position, name, status, started_at, finished_at, created_at) \
                 VALUES ($1, $2, $3, $4, '', '', $5)",
            )
            .bind(&self.run.id)
            .bind(index as i64)
            .bind(name)
            .bind(StepStatus::Pending.as_str())
            .bind(now_utc())
            .execute(self.store.pool())
            .await
            .map_err(store_error)?;
        }
        super::changes::touched(&self.run.id);
        Ok(())
    }

    pub(super) async fn set_step(&self, position: i64, status: StepStatus) -> Result<(), RunError> {
        let column = if status == StepStatus::Running {
            "started_at"
        } else {
            "finished_at"
        };
        sqlx::query(&format!(
            "UPDATE run_steps SET status = $1, {column} = $2 WHERE run_id = $3 AND position = $4"
        ))
        .bind(status.as_str())
        .bind(now_utc())
        .bind(&self.run.id)
        .bind(position)
        .execute(self.store.pool())
        .await
        .map_err(store_error)?;
        super::changes::touched(&self.run.id);
        Ok(())
    }

    /// Stores one line of step `step`'s output.
    pub async fn line(&self, step: i64, text: &str) -> Result<(), RunError> {
        let text = crate::store::printable(&secrets::redact(text, &self.secrets));
        let text = text.as_str();
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        sqlx::query(
            "INSERT INTO run_lines (run_id, seq, step, at, text, created_at) VALUES ($1, $2, $3, $4, $5, $4)",
        )
        .bind(&self.run.id)
        .bind(seq)
        .bind(step)
        .bind(now_utc())
        .bind(text)
        .execute(self.store.pool())
        .await
        .map_err(store_error)?;
        super::changes::touched(&self.run.id);
        if self.echo {
            println!("  {text}");
        }
        Ok(())
    }

    /// Makes the run end before its next step once `stopping` is cancelled.
    pub fn stop_with(&mut self, stopping: tokio_util::sync::CancellationToken) {
        self.stopping = Some(stopping);
    }

    pub(super) fn console_stopping(&self) -> bool {
        self.stopping
            .as_ref()
            .is_some_and(tokio_util::sync::CancellationToken::is_cancelled)
    }

    /// Whether someone asked to cancel the run.
    pub(super) async fn cancel_requested(&self) -> Result<bool, RunError> {
        let (requested,): (i64,) =
            sqlx::query_as("SELECT cancel_requested FROM runs WHERE id = $1")
                .bind(&self.run.id)
                .fetch_one(self.store.pool())
                .await
                .map_err(store_error)?;
        Ok(requested != 0)
    }

    /// Resolves once someone has asked to cancel the run (looked up every half second).
    pub(super) async fn cancelled(&self) {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            // A store that does not answer is no request to cancel.
            if self.cancel_requested().await.unwrap_or(false) {
                return;
            }
        }
    }

    /// What the run's verification found (see `steps::PASSED`, `FAILED`, `ROLLED_BACK`).
    pub(super) async fn set_verification(&self, result: &str) -> Result<(), RunError> {
        sqlx::query("UPDATE runs SET verification = $1 WHERE id = $2")
            .bind(result)
            .bind(&self.run.id)
            .execute(self.store.pool())
            .await
            .map_err(crate::store::StoreError::from)?;
        Ok(())
    }

    /// Records what the run did in the audit trail, as done for whoever asked for the run.
    pub(super) async fn audit(
        &self,
        action: &str,
        details: serde_json::Value,
    ) -> Result<(), RunError> {
        let actor = Actor {
            name: self.run.requested_by.clone(),
            client_addr: format!("run {}", self.run.id),
        };
        let mut audited = Audited::begin(&self.store).await?;
        audited
            .append(&actor, action, &self.run.stack, details)
            .await?;
        Ok(audited.commit().await?)
    }

    /// Ends the run, frees the stack and audits the outcome.
    pub(super) async fn finish(
        mut self,
        outcome: &Result<(), RunEnd>,
    ) -> Result<RunSummary, RunError> {
        let (status, error) = match outcome {
            Ok(()) => (RunStatus::Succeeded, String::new()),
            Err(RunEnd::Cancelled) => (RunStatus::Cancelled, String::new()),
            Err(RunEnd::Interrupted) => (
                RunStatus::Interrupted,
                "the console was stopping: the run stopped before its next step".to_owned(),
            ),
            Err(RunEnd::Failed(error)) => (RunStatus::Failed, error.clone()),
        };
        let now = now_utc();
        let mut audited = Audited::begin(&self.store).await?;
        sqlx::query("UPDATE runs SET status = $1, finished_at = $2, error = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(&now)
            .bind(&error)
            .bind(&self.run.id)
            .execute(audited.db())
            .await
            .map_err(store_error)?;
        release(audited.db(), &self.run.id).await?;
        if !self.run.options.release.is_empty() {
            crate::releases::service::finish_run(audited.db(), &self.run.options.release, status)
                .await?;
        }
        audited
            .append(
                &Actor::system(),
                "run.finished",
                &self.run.stack,
                json!({ "run": self.run.id, "status": status.as_str(), "error": error }),
            )
            .await?;
        audited.commit().await?;
        crate::stacks::recent::forget();
        super::changes::touched(&self.run.id);
        self.released = true;
        self.run.status = status;
        self.run.finished_at = now;
        self.run.error = error;
        Ok(self.run.clone())
    }
}

impl Drop for RunHandle {
    /// A run dropped before it finished (a panic, a cancelled task) is marked interrupted at
    /// its step, audited, and its stack freed — the same as a run whose process died.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, run_id) = (self.store.clone(), self.run.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let holder = super::lock::this_holder();
                let reason = "the run stopped before it finished";
                if let Err(error) = super::recovery::interrupt(&store, &run_id, &holder, reason).await
                {
                    tracing::error!(error = %error, run = run_id, "could not mark a dropped run interrupted");
                }
            });
        }
    }
}
