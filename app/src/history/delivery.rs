//! Delivery metrics (DORA) from the runs in the store, per stack or over all stacks, for a
//! window of days ending now. How each is computed is said in [`super::DEFINITIONS`]:
//!
//! - a change is a deploy, update or migrate run that ended;
//! - deployment frequency: changes that succeeded, per week;
//! - lead time: from the newest changed image's build (its `org.opencontainers.image.created`
//!   label), else the release's creation, to the end of the change that shipped it (median);
//! - change failure rate: changes that failed, or that the stack's next run rolled back or
//!   restored, over all changes;
//! - time to restore: from a failed change's end to the end of the stack's next run that
//!   succeeded (median).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{DeliveryMetrics, HistoryError, WeekOfChanges};
use crate::store::Store;

type RunRow = (String, String, String, String, String, String);

/// One ended run of the window as the metrics see it.
struct Ended {
    operation: String,
    succeeded: bool,
    finished: DateTime<Utc>,
    /// When what it shipped was made: its newest image's build, else its release's creation.
    made: Option<DateTime<Utc>>,
}

impl Ended {
    fn is_change(&self) -> bool {
        matches!(self.operation.as_str(), "deploy" | "update" | "migrate")
    }

    fn puts_back(&self) -> bool {
        matches!(self.operation.as_str(), "rollback" | "restore")
    }
}

fn parsed(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The metrics of one stack (`""`: every stack) for each of [`super::WINDOWS`], ending now.
pub async fn report(store: &Store, stack: &str) -> Result<Vec<DeliveryMetrics>, HistoryError> {
    let now = Utc::now();
    let mut windows = Vec::new();
    for days in super::WINDOWS {
        windows.push(metrics(store, stack.trim(), days, now).await?);
    }
    Ok(windows)
}

/// The metrics of one stack (`""`: every stack) over the `days` before `now`.
pub async fn metrics(
    store: &Store,
    stack: &str,
    days: i64,
    now: DateTime<Utc>,
) -> Result<DeliveryMetrics, HistoryError> {
    let since = now - Duration::days(days);
    let from = since.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let store_error =
        |error: sqlx::Error| HistoryError::from(crate::store::StoreError::from(error));
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT runs.stack, runs.operation, runs.status, runs.finished_at, \
         COALESCE(releases.created_at, ''), \
         COALESCE((SELECT MAX(run_images.built_at) FROM run_images WHERE run_images.run_id = runs.id), '') \
         FROM runs LEFT JOIN releases ON releases.run_id = runs.id \
         WHERE runs.started_at >= $1 AND ($2 = '' OR runs.stack = $2) AND runs.finished_at <> '' \
         ORDER BY runs.stack, runs.finished_at, runs.id",
    )
    .bind(&from)
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    let mut by_stack: BTreeMap<String, Vec<Ended>> = BTreeMap::new();
    for (stack, operation, status, finished_at, released_at, built_at) in rows {
        let Some(finished) = parsed(&finished_at) else {
            continue;
        };
        let made = parsed(&built_at).or_else(|| parsed(&released_at));
        by_stack.entry(stack).or_default().push(Ended {
            operation,
            succeeded: status == "succeeded",
            finished,
            made,
        });
    }
    Ok(compute(
        by_stack.values().map(Vec::as_slice),
        stack,
        days,
        since,
    ))
}

/// The metrics of runs given per stack, each stack's in the order they ended.
fn compute<'a>(
    stacks: impl Iterator<Item = &'a [Ended]>,
    stack: &str,
    days: i64,
    since: DateTime<Utc>,
) -> DeliveryMetrics {
    let weeks = usize::try_from((days + 6) / 7).unwrap_or(1).max(1);
    let mut weekly = vec![(0_i64, 0_i64); weeks];
    let week_of = |at: DateTime<Utc>| {
        usize::try_from((at - since).num_days() / 7)
            .unwrap_or(0)
            .min(weeks - 1)
    };
    let (mut changes, mut deployments, mut failed) = (0_i64, 0_i64, 0_i64);
    let (mut lead_times, mut restores) = (Vec::new(), Vec::new());
    for runs in stacks {
        for (at, run) in runs.iter().enumerate() {
            if !run.is_change() {
                continue;
            }
            changes += 1;
            let next = runs.get(at + 1);
            let change_failed = !run.succeeded || next.is_some_and(Ended::puts_back);
            if run.succeeded {
                deployments += 1;
                weekly[week_of(run.finished)].0 += 1;
                if let Some(made) = run.made.filter(|made| *made <= run.finished) {
                    lead_times.push((run.finished - made).num_seconds() as f64 / 3600.0);
                }
            }
            if change_failed {
                failed += 1;
                weekly[week_of(run.finished)].1 += 1;
                // Restored when the stack's next run that succeeds ends: a rollback, a
                // restore or a change that works.
                let restored = runs[at + 1..]
                    .iter()
                    .find(|later| later.succeeded && (later.puts_back() || later.is_change()));
                if let Some(restored) = restored {
                    restores.push((restored.finished - run.finished).num_seconds() as f64 / 3600.0);
                }
            }
        }
    }
    DeliveryMetrics {
        stack: stack.to_owned(),
        days,
        changes,
        deployments,
        per_week: deployments as f64 / (days as f64 / 7.0),
        lead_time_hours: median(&mut lead_times),
        lead_time_samples: lead_times.len() as i64,
        failed_changes: failed,
        failure_rate: (changes > 0).then(|| failed as f64 / changes as f64),
        time_to_restore_hours: median(&mut restores),
        restore_samples: restores.len() as i64,
        weekly: weekly
            .into_iter()
            .enumerate()
            .map(|(week, (deployments, failed))| WeekOfChanges {
                starts: (since + Duration::days(7 * week as i64))
                    .format("%Y-%m-%d")
                    .to_string(),
                deployments,
                failed,
            })
            .collect(),
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}
