//! The console's runs in flight. Each is a task the runner tracks, so that when the console
//! stops it takes no new run, lets each running step finish (within a grace period), and
//! marks what is left interrupted instead of killing a migration mid-step.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stacks::engine::Engine;
use crate::stacks::StackSummary;
use crate::store::Store;

use super::recorder::RunHandle;
use super::RunError;
use super::{executor, recovery};

#[derive(Clone, Debug)]
pub struct Runner {
    tasks: TaskTracker,
    stopping: CancellationToken,
    /// Where backup runs write their dumps.
    backups: std::path::PathBuf,
}

impl Runner {
    pub fn new(backups: std::path::PathBuf) -> Self {
        Self {
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            backups,
        }
    }

    /// Runs `handle` in the background; refused once the console is stopping.
    pub fn start(
        &self,
        mut handle: RunHandle,
        engine: Engine,
        stack: StackSummary,
    ) -> Result<(), RunError> {
        if self.stopping.is_cancelled() {
            return Err(RunError::Stopping);
        }
        handle.stop_with(self.stopping.clone());
        let backups = self.backups.clone();
        self.tasks.spawn(async move {
            if let Err(error) = executor::execute(handle, &engine, &stack, &backups).await {
                tracing::error!(error = %error, "run could not be recorded to the end");
            }
        });
        Ok(())
    }

    /// From now on, runs end before their next step and no new one starts.
    pub fn refuse_new(&self) {
        self.stopping.cancel();
    }

    /// Takes no new run, lets running steps finish for at most `grace`, then marks the
    /// runs still going interrupted. Returns how many were.
    pub async fn stop(&self, store: &Store, grace: Duration) -> usize {
        self.refuse_new();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return 0;
        }
        match recovery::interrupt_own(store).await {
            Ok(interrupted) => interrupted,
            Err(error) => {
                tracing::error!(error = %error, "could not mark the console's runs interrupted");
                0
            }
        }
    }
}
