//! The history read from the store: runs joined with the release that started them and the
//! approvals that let them run, filtered, newest first, a page at a time by keyset (the last
//! entry's start and id, never an OFFSET), so a page answers as fast with 100,000 runs and
//! stays stable while new runs arrive.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate};

use super::{HistoryEntry, HistoryError, HistoryFilter, HistoryList, ImageChange};
use crate::runs::{Operation, RunStatus};
use crate::store::Store;

/// Entries on one page.
pub const PAGE: usize = 50;
/// Entries in one CSV export at most: a narrower filter gets the rest.
pub const EXPORT_AT_MOST: usize = 10_000;

/// Ids looked up at once (`IN (…)`): well under SQLite's and PostgreSQL's placeholder limits.
const IDS_AT_ONCE: usize = 500;

type EntryRow = (
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

/// One page of the filtered history, after the filter's cursor when it has one.
pub async fn page(store: &Store, filter: &HistoryFilter) -> Result<HistoryList, HistoryError> {
    let mut entries = entries(store, filter, PAGE + 1).await?;
    let more = entries.len() > PAGE;
    entries.truncate(PAGE);
    let next = more
        .then(|| {
            entries
                .last()
                .map(|last| cursor(&last.started_at, &last.run_id))
        })
        .flatten();
    Ok(HistoryList { entries, next })
}

/// `STARTED_AT~RUN_ID`: where the next page starts.
fn cursor(started_at: &str, run_id: &str) -> String {
    format!("{started_at}~{run_id}")
}

/// The filtered entries, newest first, at most `limit`.
pub async fn entries(
    store: &Store,
    filter: &HistoryFilter,
    limit: usize,
) -> Result<Vec<HistoryEntry>, HistoryError> {
    entries_where(store, Query::of(filter)?, limit).await
}

/// What happened to a release: the run that shipped it and the stack's runs after it that
/// change what runs (not backups, drills or prunes) until the next release that shipped,
/// newest first — a page of them, and the shipping run always.
pub async fn release_runs(store: &Store, release: &str) -> Result<Vec<HistoryEntry>, HistoryError> {
    let shipped: Option<(String, String, String)> = sqlx::query_as(
        "SELECT releases.stack, runs.started_at, runs.id FROM releases \
         JOIN runs ON runs.id = releases.run_id WHERE releases.id = $1",
    )
    .bind(release)
    .fetch_optional(store.pool())
    .await
    .map_err(store_error)?;
    let Some((stack, started_at, run_id)) = shipped else {
        return Ok(Vec::new());
    };
    // A later release whose run failed or was cancelled did not replace this one.
    let next: Option<(String, String)> = sqlx::query_as(
        "SELECT runs.started_at, runs.id FROM releases JOIN runs ON runs.id = releases.run_id \
         WHERE releases.stack = $1 AND (runs.started_at, runs.id) > ($2, $3) \
         AND runs.status = 'succeeded' ORDER BY runs.started_at, runs.id LIMIT 1",
    )
    .bind(&stack)
    .bind(&started_at)
    .bind(&run_id)
    .fetch_optional(store.pool())
    .await
    .map_err(store_error)?;
    let mut query = Query::new();
    query.add("runs.stack = {}", &[&stack]);
    query.add(
        "(runs.started_at, runs.id) > ({}, {})",
        &[&started_at, &run_id],
    );
    query.add(
        "runs.operation NOT IN ({}, {}, {})",
        &["backup", "verify", "prune"],
    );
    if let Some((next_started_at, next_id)) = &next {
        query.add(
            "(runs.started_at, runs.id) < ({}, {})",
            &[next_started_at, next_id],
        );
    }
    let mut entries = entries_where(store, query, PAGE - 1).await?;
    let mut ship = Query::new();
    ship.add("runs.id = {}", &[&run_id]);
    entries.extend(entries_where(store, ship, 1).await?);
    Ok(entries)
}

/// What each service of a stack runs now and since when. The services are those the newest
/// successful run that recorded images left running — none when a successful stop came after
/// it. For each, since when: the end of the oldest successful run after the last one that
/// recorded another image for it (a flag or a restart in between changed nothing), and that
/// run's release.
pub async fn running_now(
    store: &Store,
    stack: &str,
) -> Result<Vec<super::RunningService>, HistoryError> {
    let newest: Option<(String, String, String)> = sqlx::query_as(
        "SELECT runs.id, runs.started_at, runs.operation FROM runs WHERE runs.stack = $1 \
         AND runs.status = 'succeeded' AND (runs.operation = 'stop' \
         OR EXISTS (SELECT 1 FROM run_images WHERE run_images.run_id = runs.id)) \
         ORDER BY runs.started_at DESC, runs.id DESC LIMIT 1",
    )
    .bind(stack)
    .fetch_optional(store.pool())
    .await
    .map_err(store_error)?;
    let Some((newest_id, _, operation)) = newest else {
        return Ok(Vec::new());
    };
    if operation == "stop" {
        return Ok(Vec::new());
    }
    // One query for every service, not two each: a stack page asks this on every view.
    // `changed` is the newest successful run that recorded another image for the service
    // ('' when none did), and the service's line starts at the oldest run after it.
    sqlx::query_as(
        "WITH current AS (SELECT service, image, image_id FROM run_images WHERE run_id = $2), \
         changed AS (SELECT current.*, \
           COALESCE((SELECT runs.started_at FROM runs \
             JOIN run_images ON run_images.run_id = runs.id WHERE runs.stack = $1 \
             AND runs.status = 'succeeded' AND run_images.service = current.service \
             AND run_images.image_id <> current.image_id \
             ORDER BY runs.started_at DESC, runs.id DESC LIMIT 1), '') AS after_started, \
           COALESCE((SELECT runs.id FROM runs \
             JOIN run_images ON run_images.run_id = runs.id WHERE runs.stack = $1 \
             AND runs.status = 'succeeded' AND run_images.service = current.service \
             AND run_images.image_id <> current.image_id \
             ORDER BY runs.started_at DESC, runs.id DESC LIMIT 1), '') AS after_id \
           FROM current) \
         SELECT changed.service, changed.image, changed.image_id, runs.id AS run_id, \
         runs.operation, runs.finished_at AS since, \
         COALESCE(releases.id, '') AS release_id, \
         COALESCE(releases.version, '') AS release_version \
         FROM changed JOIN runs ON runs.id = (SELECT runs.id FROM runs \
           JOIN run_images ON run_images.run_id = runs.id WHERE runs.stack = $1 \
           AND runs.status = 'succeeded' AND run_images.service = changed.service \
           AND run_images.image_id = changed.image_id \
           AND (runs.started_at, runs.id) > (changed.after_started, changed.after_id) \
           ORDER BY runs.started_at, runs.id LIMIT 1) \
         LEFT JOIN releases ON releases.run_id = runs.id \
         ORDER BY changed.service",
    )
    .bind(stack)
    .bind(&newest_id)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)
}

/// The entries `query` selects, newest first, at most `limit`, with who approved them and
/// the images they changed.
async fn entries_where(
    store: &Store,
    query: Query,
    limit: usize,
) -> Result<Vec<HistoryEntry>, HistoryError> {
    let sql = format!(
        "SELECT runs.id, runs.stack, runs.operation, runs.status, runs.requested_by, \
         runs.started_at, runs.finished_at, runs.error, COALESCE(releases.id, ''), \
         COALESCE(releases.version, ''), runs.verification \
         FROM runs LEFT JOIN releases ON releases.run_id = runs.id \
         {} ORDER BY runs.started_at DESC, runs.id DESC LIMIT {}",
        query.clause(),
        limit
    );
    let mut select = sqlx::query_as::<_, EntryRow>(&sql);
    for value in &query.values {
        select = select.bind(value);
    }
    let rows = select.fetch_all(store.pool()).await.map_err(store_error)?;
    let mut entries: Vec<HistoryEntry> = rows.into_iter().map(entry_from_row).collect();
    let ids: Vec<String> = entries.iter().map(|entry| entry.run_id.clone()).collect();
    let approvers = approvers(store, &ids).await?;
    let mut images = images(store, &ids).await?;
    for entry in &mut entries {
        entry.approved_by = approvers.get(&entry.run_id).cloned().unwrap_or_default();
        if let Some(now) = images.remove(&entry.run_id) {
            let before = images_before(store, entry).await?;
            entry.images = now
                .into_iter()
                .filter(|(service, to)| before.get(service) != Some(to))
                .map(|(service, to)| ImageChange {
                    from: before.get(&service).cloned().unwrap_or_default(),
                    service,
                    to,
                })
                .collect();
        }
    }
    Ok(entries)
}

fn store_error(error: sqlx::Error) -> HistoryError {
    HistoryError::from(crate::store::StoreError::from(error))
}

fn entry_from_row(
    (
        run_id,
        stack,
        operation,
        status,
        requested_by,
        started_at,
        finished_at,
        error,
        release_id,
        release_version,
        verification,
    ): EntryRow,
) -> HistoryEntry {
    let seconds = |at: &str| DateTime::parse_from_rfc3339(at).ok();
    let duration_seconds = match (seconds(&started_at), seconds(&finished_at)) {
        (Some(start), Some(end)) => Some((end - start).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    HistoryEntry {
        run_id,
        stack,
        operation,
        status,
        requested_by,
        approved_by: Vec::new(),
        release_id,
        release_version,
        started_at,
        finished_at,
        duration_seconds,
        images: Vec::new(),
        error,
        verification,
    }
}

/// The filter as SQL conditions with their values, only the conditions it sets (a plan per
/// shape of filter uses the indexes; `$n = '' OR` would not).
struct Query {
    conditions: Vec<String>,
    values: Vec<String>,
}

impl Query {
    fn new() -> Self {
        Query {
            conditions: Vec::new(),
            values: Vec::new(),
        }
    }

    fn of(filter: &HistoryFilter) -> Result<Self, HistoryError> {
        let mut query = Query::new();
        let stack = filter.stack.trim();
        if !stack.is_empty() {
            query.add("runs.stack = {}", &[stack]);
        }
        let operation = filter.operation.trim();
        if !operation.is_empty() {
            let operation: Operation = operation.parse().map_err(HistoryError::Invalid)?;
            query.add("runs.operation = {}", &[operation.as_str()]);
        }
        let outcome = filter.outcome.trim();
        if !outcome.is_empty() {
            let outcome: RunStatus = outcome
                .parse()
                .map_err(|_| HistoryError::Invalid(format!("unknown outcome {outcome:?}")))?;
            query.add("runs.status = {}", &[outcome.as_str()]);
        }
        let person = filter.person.trim();
        if !person.is_empty() {
            query.add(
                "(runs.requested_by = {} OR EXISTS (SELECT 1 FROM approvals JOIN approval_decisions \
                 ON approval_decisions.approval_id = approvals.id WHERE approvals.run_id = runs.id \
                 AND approval_decisions.decision = 'approved' AND approval_decisions.user_name = {}))",
                &[person, person],
            );
        }
        if let Some(since) = day("since", &filter.since)? {
            query.add("runs.started_at >= {}", &[&since.to_string()]);
        }
        if let Some(until) = day("until", &filter.until)? {
            // Until a day means until its end.
            let after = until.checked_add_days(Days::new(1)).unwrap_or(until);
            query.add("runs.started_at < {}", &[&after.to_string()]);
        }
        let version = filter.version.trim();
        if !version.is_empty() {
            // `%` and `_` are text here; `!` escapes them the same way on both stores.
            let escaped = version
                .replace('!', "!!")
                .replace('%', "!%")
                .replace('_', "!_");
            query.add(
                "LOWER(releases.version) LIKE LOWER({}) ESCAPE '!'",
                &[&format!("%{escaped}%")],
            );
        }
        let before = filter.before.trim();
        if !before.is_empty() {
            let (started_at, run_id) = before.split_once('~').ok_or_else(|| {
                HistoryError::Invalid("the page cursor is not one Slipway made".into())
            })?;
            query.add(
                "(runs.started_at, runs.id) < ({}, {})",
                &[started_at, run_id],
            );
        }
        Ok(query)
    }

    /// A condition whose `{}` are the values, in order, as numbered placeholders.
    fn add(&mut self, condition: &str, values: &[&str]) {
        let mut text = String::new();
        let mut parts = condition.split("{}");
        text.push_str(parts.next().unwrap_or_default());
        for (value, part) in values.iter().zip(parts) {
            self.values.push((*value).to_owned());
            text.push_str(&format!("${}", self.values.len()));
            text.push_str(part);
        }
        self.conditions.push(text);
    }

    fn clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// `YYYY-MM-DD`, or nothing.
fn day(field: &str, text: &str) -> Result<Option<NaiveDate>, HistoryError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| HistoryError::Invalid(format!("{field}: a date such as 2026-11-29")))
}

/// `$1, $2, …` for `count` values.
fn placeholders(count: usize) -> String {
    (1..=count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of `sql` (whose `{}` is the placeholder list) for the ids, [`IDS_AT_ONCE`] at a time.
async fn for_ids<Row>(store: &Store, sql: &str, ids: &[String]) -> Result<Vec<Row>, HistoryError>
where
    Row: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let mut rows = Vec::new();
    for chunk in ids.chunks(IDS_AT_ONCE) {
        let sql = sql.replace("{}", &placeholders(chunk.len()));
        let mut select = sqlx::query_as::<_, Row>(&sql);
        for id in chunk {
            select = select.bind(id);
        }
        rows.extend(select.fetch_all(store.pool()).await.map_err(store_error)?);
    }
    Ok(rows)
}

/// Who approved each run, by run.
async fn approvers(
    store: &Store,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<String>>, HistoryError> {
    let rows: Vec<(String, String)> = for_ids(
        store,
        "SELECT approvals.run_id, approval_decisions.user_name FROM approvals \
         JOIN approval_decisions ON approval_decisions.approval_id = approvals.id \
         WHERE approval_decisions.decision = 'approved' AND approvals.run_id IN ({}) \
         ORDER BY approval_decisions.decided_at",
        ids,
    )
    .await?;
    let mut approvers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (run_id, name) in rows {
        approvers.entry(run_id).or_default().push(name);
    }
    Ok(approvers)
}

/// The images each run left running (recorded by its last step), by run and service.
async fn images(
    store: &Store,
    ids: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, HistoryError> {
    let rows: Vec<(String, String, String, String)> = for_ids(
        store,
        "SELECT run_id, service, image, image_id FROM run_images WHERE run_id IN ({})",
        ids,
    )
    .await?;
    let mut images: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (run_id, service, image, image_id) in rows {
        images
            .entry(run_id)
            .or_default()
            .insert(service, image_text(&image, &image_id));
    }
    Ok(images)
}

/// `portal:1.1.0 (3f2a9c1b04de)`: the tag says what was meant, the id what ran.
fn image_text(image: &str, image_id: &str) -> String {
    let id = image_id.trim_start_matches("sha256:");
    format!("{image} ({})", id.chars().take(12).collect::<String>())
}

/// The images the stack ran before the entry's run: those its newest earlier run recorded.
async fn images_before(
    store: &Store,
    entry: &HistoryEntry,
) -> Result<BTreeMap<String, String>, HistoryError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT service, image, image_id FROM run_images WHERE run_id = (\
         SELECT runs.id FROM runs WHERE runs.stack = $1 \
         AND (runs.started_at, runs.id) < ($2, $3) \
         AND EXISTS (SELECT 1 FROM run_images WHERE run_images.run_id = runs.id) \
         ORDER BY runs.started_at DESC, runs.id DESC LIMIT 1)",
    )
    .bind(&entry.stack)
    .bind(&entry.started_at)
    .bind(&entry.run_id)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|(service, image, image_id)| (service, image_text(&image, &image_id)))
        .collect())
}

/// The filtered history as CSV (a header, then one line per entry, newest first), at most
/// [`EXPORT_AT_MOST`] entries.
pub async fn csv(store: &Store, filter: &HistoryFilter) -> Result<String, HistoryError> {
    let mut filter = filter.clone();
    filter.before.clear();
    let entries = entries(store, &filter, EXPORT_AT_MOST + 1).await?;
    if entries.len() > EXPORT_AT_MOST {
        return Err(HistoryError::Invalid(format!(
            "more than {EXPORT_AT_MOST} runs match: narrow the filters (a stack, an outcome, dates) and export each part"
        )));
    }
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let failed =
        |error: ::csv::Error| HistoryError::Invalid(format!("cannot write the CSV: {error}"));
    writer
        .write_record([
            "run",
            "stack",
            "operation",
            "outcome",
            "started",
            "finished",
            "seconds",
            "requested by",
            "approved by",
            "release",
            "images",
            "error",
            "verification",
        ])
        .map_err(failed)?;
    // A cell a spreadsheet would take for a formula (a release's version, an error) is
    // written as text.
    let cell = |text: String| {
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{text}")
        } else {
            text
        }
    };
    for entry in entries {
        let images = entry
            .images
            .iter()
            .map(ImageChange::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        writer
            .write_record(
                [
                    entry.run_id,
                    entry.stack,
                    entry.operation,
                    entry.status,
                    entry.started_at,
                    entry.finished_at,
                    entry
                        .duration_seconds
                        .map(|seconds| format!("{seconds:.1}"))
                        .unwrap_or_default(),
                    entry.requested_by,
                    entry.approved_by.join("; "),
                    entry.release_version,
                    images,
                    entry.error,
                    entry.verification,
                ]
                .map(cell),
            )
            .map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| HistoryError::Invalid(format!("cannot write the CSV: {error}")))?;
    String::from_utf8(bytes).map_err(|error| HistoryError::Invalid(error.to_string()))
}
