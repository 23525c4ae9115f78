//! Delivery metrics (DORA) from the runs in the store, per stack or over all stacks, for a
//! window of days ending now. How each is computed is said in [`super::DEFINITIONS`]:
//!
//! - a change is a deploy, update or migrate run that succeeded or failed (a cancelled or
//!   interrupted one changed nothing it kept), counted in the window it ended in;
//! - deployment frequency: changes that succeeded, per week;
//! - lead time: from the newest build among the images the change changed (their
//!   `org.opencontainers.image.created` label), else the release's creation, to the end of
//!   the change that shipped it (median);
//! - change failure rate: changes that failed, or that were rolled back or restored before
//!   the stack's next change, over all changes;
//! - time to restore: from a failed change's end to the end of the stack's next run that
//!   succeeded (median).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{DeliveryMetrics, HistoryError, WeekOfChanges};
use crate::store::Store;

type RunRow = (String, String, String, String, String, String);
type ImageRow = (String, String, String, String);

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

/// The metrics of one stack (`""`: every stack) for each of [`super::WINDOWS`], ending now.
/// A report is kept and shared by every viewer until an audited change (every run's end is
/// one) or ten minutes pass: counting many runs again for each page view would make the page
/// as slow as the history is long. Only reports of all stacks and of stacks that exist are
/// kept, so a caller cannot fill the memory with names.
pub async fn report(store: &Store, stack: &str) -> Result<Vec<DeliveryMetrics>, HistoryError> {
    let stack = stack.trim();
    let now = Utc::now();
    let store_error =
        |error: sqlx::Error| HistoryError::from(crate::store::StoreError::from(error));
    let (audit_seq,): (i64,) = sqlx::query_as("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(store.pool())
        .await
        .map_err(store_error)?;
    let key = (store.shown_location().to_owned(), stack.to_owned());
    let fresh = |(seq, at, _): &(i64, DateTime<Utc>, Vec<DeliveryMetrics>)| {
        *seq == audit_seq && now - *at < KEPT_FOR
    };
    if let Some(kept) = reports().lock().expect("report cache").get(&key) {
        if fresh(kept) {
            return Ok(kept.2.clone());
        }
    }
    let windows = report_at(store, stack, now).await?;
    let known: Option<(String,)> = sqlx::query_as("SELECT name FROM stacks WHERE name = $1")
        .bind(stack)
        .fetch_optional(store.pool())
        .await
        .map_err(store_error)?;
    if stack.is_empty() || known.is_some() {
        let mut kept = reports().lock().expect("report cache");
        kept.retain(|_, report| fresh(report));
        if kept.len() < KEPT_AT_MOST {
            kept.insert(key, (audit_seq, now, windows.clone()));
        }
    }
    Ok(windows)
}

/// How long a report is kept at most, and how many are.
const KEPT_FOR: Duration = Duration::minutes(10);
const KEPT_AT_MOST: usize = 1_000;

type Reports = BTreeMap<(String, String), (i64, DateTime<Utc>, Vec<DeliveryMetrics>)>;

fn reports() -> &'static std::sync::Mutex<Reports> {
    static REPORTS: std::sync::OnceLock<std::sync::Mutex<Reports>> = std::sync::OnceLock::new();
    REPORTS.get_or_init(Default::default)
}

/// The metrics of one stack (`""`: every stack) for each of [`super::WINDOWS`], ending at
/// `now`, counted afresh: the runs are read once, for the longest window.
pub async fn report_at(
    store: &Store,
    stack: &str,
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryMetrics>, HistoryError> {
    let longest = super::WINDOWS.iter().copied().max().unwrap_or(90);
    let ended = ended_since(store, stack, now - Duration::days(longest)).await?;
    Ok(super::WINDOWS
        .iter()
        .map(|&days| {
            let since = now - Duration::days(days);
            let within = ended
                .values()
                .map(|runs| &runs[runs.partition_point(|run| run.finished < since)..]);
            compute(within, stack, days, since)
        })
        .collect())
}

/// The runs of one stack (`""`: every stack) that ended since `since`, per stack in the order
/// they ended, each with when what it shipped was made.
async fn ended_since(
    store: &Store,
    stack: &str,
    since: DateTime<Utc>,
) -> Result<BTreeMap<String, Vec<Ended>>, HistoryError> {
    let from = crate::store::utc_text(since);
    let store_error =
        |error: sqlx::Error| HistoryError::from(crate::store::StoreError::from(error));
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT runs.id, runs.stack, runs.operation, runs.status, runs.finished_at, \
         COALESCE(releases.created_at, '') \
         FROM runs LEFT JOIN releases ON releases.run_id = runs.id \
         WHERE runs.finished_at >= $1 AND ($2 = '' OR runs.stack = $2) \
         AND runs.status IN ('succeeded', 'failed') \
         ORDER BY runs.stack, runs.finished_at, runs.id",
    )
    .bind(&from)
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    // The images each run of the window left running, and what ran before the window.
    let recorded: Vec<ImageRow> = sqlx::query_as(
        "SELECT run_images.run_id, run_images.service, run_images.image_id, run_images.built_at \
         FROM run_images JOIN runs ON runs.id = run_images.run_id \
         WHERE runs.finished_at >= $1 AND ($2 = '' OR runs.stack = $2)",
    )
    .bind(&from)
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    let mut images: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
    for (run_id, service, image_id, built_at) in recorded {
        images
            .entry(run_id)
            .or_default()
            .insert(service, (image_id, built_at));
    }
    let mut by_stack: BTreeMap<String, Vec<Ended>> = BTreeMap::new();
    let mut running: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
    for (id, stack, operation, status, finished_at, released_at) in rows {
        let Some(finished) = crate::store::parse_utc(&finished_at) else {
            continue;
        };
        if !running.contains_key(&stack) {
            let before = images_before(store, &stack, &from).await?;
            running.insert(stack.clone(), before);
        }
        let previous = running.entry(stack.clone()).or_default();
        // Built when the newest of the images it changed was built.
        let mut made = None;
        if let Some(now_running) = images.remove(&id) {
            made = now_running
                .iter()
                .filter(|(service, (image_id, _))| {
                    previous.get(*service).map(|(before, _)| before) != Some(image_id)
                })
                .filter_map(|(_, (_, built_at))| crate::store::parse_utc(built_at))
                .max();
            *previous = now_running;
        }
        by_stack.entry(stack).or_default().push(Ended {
            operation,
            succeeded: status == "succeeded",
            finished,
            made: made.or_else(|| crate::store::parse_utc(&released_at)),
        });
    }
    // In the order they ended, as times (the text order is the same for the store's own).
    for runs in by_stack.values_mut() {
        runs.sort_by_key(|run| run.finished);
    }
    Ok(by_stack)
}

/// The images the stack's newest run that recorded some left running, of those that ended
/// before `until`.
async fn images_before(
    store: &Store,
    stack: &str,
    until: &str,
) -> Result<BTreeMap<String, (String, String)>, HistoryError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT service, image_id, built_at FROM run_images WHERE run_id = (\
         SELECT runs.id FROM runs WHERE runs.stack = $1 AND runs.finished_at < $2 \
         AND runs.finished_at <> '' AND runs.status IN ('succeeded', 'failed') \
         AND EXISTS (SELECT 1 FROM run_images WHERE run_images.run_id = runs.id) \
         ORDER BY runs.finished_at DESC, runs.id DESC LIMIT 1)",
    )
    .bind(stack)
    .bind(until)
    .fetch_all(store.pool())
    .await
    .map_err(|error| HistoryError::from(crate::store::StoreError::from(error)))?;
    Ok(rows
        .into_iter()
        .map(|(service, image_id, built_at)| (service, (image_id, built_at)))
        .collect())
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
    // Weeks counted back from the window's end: the newest bar is a whole week.
    let end = since + Duration::days(days);
    let week_of = |at: DateTime<Utc>| {
        let back = usize::try_from((end - at).num_days() / 7).unwrap_or(0);
        weeks - 1 - back.min(weeks - 1)
    };
    let (mut changes, mut deployments, mut failed) = (0_i64, 0_i64, 0_i64);
    let (mut lead_times, mut restores) = (Vec::new(), Vec::new());
    for runs in stacks {
        for (at, run) in runs.iter().enumerate() {
            if !run.is_change() {
                continue;
            }
            changes += 1;
            // Rolled back or restored before the stack's next change: runs in between that
            // change nothing (a backup, a flag) do not hide it.
            let put_back = runs[at + 1..]
                .iter()
                .find(|later| later.is_change() || later.puts_back())
                .is_some_and(Ended::puts_back);
            let change_failed = !run.succeeded || put_back;
            if run.succeeded {
                deployments += 1;
                if let Some(made) = run.made.filter(|made| *made <= run.finished) {
                    lead_times.push((run.finished - made).num_seconds() as f64 / 3600.0);
                }
            }
            // Each change in one bar: failed (rolled back included) or succeeded.
            if change_failed {
                weekly[week_of(run.finished)].1 += 1;
            } else {
                weekly[week_of(run.finished)].0 += 1;
            }
            if change_failed {
                failed += 1;
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
                starts: (end - Duration::days(7 * (weeks - week) as i64))
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
