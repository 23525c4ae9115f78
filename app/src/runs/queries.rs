//! Reading runs back: lists, one run with its steps and lines, lines after a point.

use crate::store::Store;

use super::recorder::store_error;
use super::{Operation, RunDetail, RunError, RunLine, RunStatus, RunStep, RunSummary, StepStatus};

type RunRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);
const RUN_COLUMNS: &str = "id, stack, operation, target, options, status, requested_by, \
     started_at, finished_at, error, verification";

fn run_from_row(
    (
        id,
        stack,
        operation,
        target,
        options,
        status,
        requested_by,
        started_at,
        finished_at,
        error,
        verification,
    ): RunRow,
) -> RunSummary {
    RunSummary {
        id,
        stack,
        operation: operation.parse().unwrap_or(Operation::Start),
        target,
        options: super::RunOptions::from_stored(&options),
        // Only this module writes the column, always from a `RunStatus`.
        status: status.parse().unwrap_or(RunStatus::Failed),
        requested_by,
        started_at,
        finished_at,
        error,
        verification,
    }
}

/// The newest runs, of one stack or of all.
pub async fn list(store: &Store, stack: &str) -> Result<Vec<RunSummary>, RunError> {
    let rows: Vec<RunRow> = sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE ($1 = '' OR stack = $1) ORDER BY started_at DESC LIMIT 100"
    ))
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows.into_iter().map(run_from_row).collect())
}

/// A run with its steps and every stored line.
pub async fn detail(store: &Store, id: &str) -> Result<RunDetail, RunError> {
    Ok(RunDetail {
        run: summary(store, id).await?,
        steps: steps(store, id).await?,
        lines: lines_after(store, id, 0, i64::MAX).await?,
    })
}

/// The run alone; `NotFound` when there is no such run.
pub async fn summary(store: &Store, id: &str) -> Result<RunSummary, RunError> {
    let row: Option<RunRow> =
        sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(store_error)?;
    row.map(run_from_row)
        .ok_or_else(|| RunError::NotFound(id.to_owned()))
}

pub async fn steps(store: &Store, id: &str) -> Result<Vec<RunStep>, RunError> {
    let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT position, name, status, started_at, finished_at FROM run_steps WHERE run_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(
            |(position, name, status, started_at, finished_at)| RunStep {
                took: took(&started_at, &finished_at),
                position,
                name,
                // Only this module writes the column, always from a `StepStatus`.
                status: status.parse().unwrap_or(StepStatus::Failed),
                started_at,
                finished_at,
            },
        )
        .collect())
}

/// How long a finished step took, in words; empty while it runs or before it starts.
fn took(started_at: &str, finished_at: &str) -> String {
    let parse = |at: &str| chrono::DateTime::parse_from_rfc3339(at).ok();
    match (parse(started_at), parse(finished_at)) {
        (Some(start), Some(end)) => {
            let millis = (end - start).num_milliseconds().max(0);
            if millis < 60_000 {
                format!("{:.1} s", millis as f64 / 1000.0)
            } else {
                format!("{} min {} s", millis / 60_000, millis % 60_000 / 1000)
            }
        }
        _ => String::new(),
    }
}

/// At most `limit` lines after line `after`, oldest first.
pub async fn lines_after(
    store: &Store,
    id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<RunLine>, RunError> {
    let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
        "SELECT seq, step, at, text FROM run_lines WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|(seq, step, at, text)| RunLine {
            seq,
            step,
            at,
            text,
        })
        .collect())
}

/// The image ids a successful run of `stack` recorded, by service (empty when it recorded
/// none, or the run is another stack's).
pub async fn recorded_images(
    store: &Store,
    stack: &str,
    run_id: &str,
) -> Result<std::collections::BTreeMap<String, String>, RunError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.service, i.image_id FROM run_images i JOIN runs r ON r.id = i.run_id \
         WHERE i.run_id = $1 AND r.stack = $2 AND r.status = 'succeeded'",
    )
    .bind(run_id)
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::took;

    #[test]
    fn a_step_took_what_its_times_say() {
        assert_eq!(
            took("2026-11-28T10:00:00.000Z", "2026-11-28T10:00:03.300Z"),
            "3.3 s"
        );
        assert_eq!(
            took("2026-11-28T10:00:00.000Z", "2026-11-28T10:02:05.000Z"),
            "2 min 5 s"
        );
        assert_eq!(took("2026-11-28T10:00:00.000Z", ""), "");
        assert_eq!(took("", ""), "");
    }
}
