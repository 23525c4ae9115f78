//! A run as it changes, for its live stream.

use std::time::Duration;

use crate::store::Store;

use super::changes;
use super::queries::{lines_after, steps, summary};
use super::{RunError, RunEvent, RunStatus, RunStep, RunSummary};

/// How often a followed run is read again from the store when no change is heard of: the
/// changes of a run held by another process (the command line, another console).
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
/// The least time between two reads of a follower that has caught up: a run writing many
/// lines a second is read in batches of what came in the meantime.
const FOLLOW_AT_MOST_EVERY: Duration = Duration::from_millis(50);
/// Lines sent per read, so a long log reaches a late viewer in pieces.
const FOLLOW_BATCH: i64 = 500;

/// The run as it changes, read from the store, after line `after`: first the run and its
/// steps, then each new line and every change of the steps or the run, until the run has
/// ended and its last line is sent. Reading the store rather than the executor means a run
/// held by another process (the command line) streams the same; a run held by this process
/// is read again as soon as its recorder says it changed.
pub fn follow(
    store: Store,
    id: String,
    after: i64,
) -> impl futures::Stream<Item = Result<RunEvent, RunError>> {
    struct Follower {
        store: Store,
        id: String,
        after: i64,
        run: Option<RunSummary>,
        steps: Option<Vec<RunStep>>,
        ended: bool,
        /// The last read returned a full batch: more lines wait, read them at once.
        behind: bool,
        changes: changes::Watch,
    }
    impl Follower {
        /// What changed since the last read, and whether the run has ended with all sent.
        async fn read(&mut self) -> Result<Vec<RunEvent>, RunError> {
            // The run first: lines stored before it ended are then certain to be read below.
            let run = summary(&self.store, &self.id).await?;
            let steps = steps(&self.store, &self.id).await?;
            let lines = lines_after(&self.store, &self.id, self.after, FOLLOW_BATCH).await?;
            let all_lines_read = (lines.len() as i64) < FOLLOW_BATCH;
            self.behind = !all_lines_read;
            let mut events = Vec::new();
            if self.steps.as_ref() != Some(&steps) {
                self.steps = Some(steps.clone());
                events.push(RunEvent::Steps(steps));
            }
            if let Some(last) = lines.last() {
                self.after = last.seq;
            }
            events.extend(lines.into_iter().map(RunEvent::Line));
            let finished = run.status != RunStatus::Running;
            self.ended = finished && all_lines_read;
            // The end is told only after the last line: a page stops listening when it hears it.
            if self.run.as_ref() != Some(&run) && (!finished || all_lines_read) {
                self.run = Some(run.clone());
                events.push(RunEvent::Run(Box::new(run)));
            }
            Ok(events)
        }
    }
    let follower = Follower {
        changes: changes::watch(&id),
        store,
        id,
        after,
        run: None,
        steps: None,
        ended: false,
        behind: false,
    };
    use futures::StreamExt;
    futures::stream::unfold((follower, true), |(mut follower, first)| async move {
        if follower.ended {
            return None;
        }
        if !first && !follower.behind {
            tokio::time::sleep(FOLLOW_AT_MOST_EVERY).await;
            let _ = tokio::time::timeout(FOLLOW_EVERY, follower.changes.changed()).await;
        }
        let events = match follower.read().await {
            Ok(events) => events.into_iter().map(Ok).collect(),
            Err(error) => {
                follower.ended = true;
                vec![Err(error)]
            }
        };
        Some((futures::stream::iter(events), (follower, false)))
    })
    .flatten()
}
