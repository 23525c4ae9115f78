//! Scheduled backups: the console starts a backup run (dump, restore drill, prune) for each
//! stack whose policy has an interval, when the newest scheduled run started at least that
//! long ago. A console that was down for several intervals takes one backup when it is back,
//! not one per missed slot: only the newest scheduled run counts.

use chrono::{DateTime, Utc};

use crate::audit::service::Actor;
use crate::runs::runner::Runner;
use crate::runs::{Operation, RunError, RunOptions, RunRequest};
use crate::stacks::engine::Engine;
use crate::store::Store;

use super::service::{schedules, SCHEDULER};

/// Whether a stack backed up every `every_seconds` is due, given when its newest scheduled
/// run started (empty: never).
pub fn is_due(every_seconds: i64, last_started: &str, now: DateTime<Utc>) -> bool {
    if every_seconds <= 0 {
        return false;
    }
    match DateTime::parse_from_rfc3339(last_started) {
        Ok(last) => (now - last.with_timezone(&Utc)).num_seconds() >= every_seconds,
        // Never, or a date that cannot be read: now.
        Err(_) => true,
    }
}

/// Starts the scheduled backups that are due; returns the stacks they were started for. A
/// stack busy with another run is tried again at the next look.
pub async fn start_due(
    store: &Store,
    engine: &Engine,
    runner: &Runner,
) -> Result<Vec<String>, RunError> {
    let actor = Actor {
        name: SCHEDULER.into(),
        client_addr: "local".into(),
    };
    let mut started = Vec::new();
    for (stack, every_seconds, last_started) in schedules(store).await? {
        if !is_due(every_seconds, &last_started, Utc::now()) {
            continue;
        }
        let request = RunRequest {
            operation: Operation::Backup,
            target: String::new(),
            options: RunOptions {
                scheduled: true,
                ..RunOptions::default()
            },
        };
        match crate::runs::lock::start(store, &stack, request, &actor, false).await {
            Ok((handle, summary)) => {
                runner.start(handle, engine.clone(), summary)?;
                started.push(stack);
            }
            Err(RunError::Busy(why)) => tracing::info!(stack, why, "scheduled backup waits"),
            Err(error) => tracing::warn!(stack, error = %error, "scheduled backup not started"),
        }
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn due_once_the_interval_has_passed_since_the_newest_scheduled_run() {
        let six_hours = 6 * 3600;
        let now = at("2026-11-29T12:00:00Z");
        assert!(is_due(six_hours, "", now), "never backed up: now");
        assert!(!is_due(six_hours, "2026-11-29T07:00:00.000Z", now));
        assert!(is_due(six_hours, "2026-11-29T06:00:00.000Z", now));
        // Down for three days: one run now, and the next only six hours after it.
        assert!(is_due(six_hours, "2026-11-26T06:00:00.000Z", now));
        assert!(!is_due(
            six_hours,
            "2026-11-29T12:00:00.000Z",
            at("2026-11-29T17:59:59Z")
        ));
        assert!(!is_due(0, "", now), "no schedule");
    }
}
