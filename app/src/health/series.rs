//! The probes' results as a time series: each result raw for [`RAW_FOR`] (with its evidence),
//! counted per minute for [`MINUTES_FOR`], and each probe's newest result with the time its
//! state last changed. [`prune`] keeps the store's size bounded by those two spans.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::store::{utc_text, Store, StoreError};

use super::probes::Verdict;
use super::{ProbeHealth, Sample, SparkBar, SPARK_BARS};

/// How long raw results are kept.
pub const RAW_FOR: Duration = Duration::hours(48);
/// How long per-minute counts are kept.
pub const MINUTES_FOR: Duration = Duration::days(30);
/// A sparkline bar spans this many minutes: ten, the store's minute text cut after its
/// tens digit (`2026-11-29T18:4`), so both engines group by a plain `substr`.
const BAR_MINUTES: i64 = 10;

/// One probe's result, as the scheduler hands it over.
#[derive(Clone, Debug)]
pub struct Finding {
    pub service: String,
    pub probe: String,
    pub verdict: Verdict,
}

/// The minute a time falls in, as `health_minutes` keys it.
fn minute_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M").to_string()
}

/// A stack's findings taken at one time.
#[derive(Clone, Debug)]
pub struct Round {
    pub stack: String,
    pub at: DateTime<Utc>,
    pub findings: Vec<Finding>,
}

/// Stores one round of a stack's findings taken at `at` (see [`record_rounds`]).
pub async fn record(
    store: &Store,
    stack: &str,
    at: DateTime<Utc>,
    findings: &[Finding],
) -> Result<(), StoreError> {
    let round = Round {
        stack: stack.to_owned(),
        at,
        findings: findings.to_vec(),
    };
    record_rounds(store, std::slice::from_ref(&round)).await
}

/// Stores rounds in one transaction (the prober gathers a second's worth: one commit, not
/// one per check): the raw rows, the minute counts, and each probe's state (its `since`
/// moves only when it turns).
pub async fn record_rounds(store: &Store, rounds: &[Round]) -> Result<(), StoreError> {
    let mut tx = store.pool().begin().await?;
    for round in rounds {
        record_round(&mut tx, round).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn record_round(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    Round {
        stack,
        at,
        findings,
    }: &Round,
) -> Result<(), StoreError> {
    let at_text = utc_text(*at);
    let minute = minute_of(*at);
    for finding in findings {
        let ok = i64::from(finding.verdict.ok);
        sqlx::query(
            "INSERT INTO health_samples (stack, service, probe, at, ok, latency_ms, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(stack)
        .bind(&finding.service)
        .bind(&finding.probe)
        .bind(&at_text)
        .bind(ok)
        .bind(finding.verdict.latency_ms)
        .bind(&finding.verdict.detail)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO health_minutes (stack, service, probe, minute, checks, failures, \
             latency_ms_sum, latency_ms_max) VALUES ($1, $2, $3, $4, 1, $5, $6, $6) \
             ON CONFLICT (stack, service, probe, minute) DO UPDATE SET \
             checks = health_minutes.checks + 1, \
             failures = health_minutes.failures + excluded.failures, \
             latency_ms_sum = health_minutes.latency_ms_sum + excluded.latency_ms_sum, \
             latency_ms_max = CASE WHEN excluded.latency_ms_max > health_minutes.latency_ms_max \
             THEN excluded.latency_ms_max ELSE health_minutes.latency_ms_max END",
        )
        .bind(stack)
        .bind(&finding.service)
        .bind(&finding.probe)
        .bind(&minute)
        .bind(1 - ok)
        .bind(finding.verdict.latency_ms)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO health_state (stack, service, probe, ok, since, last_at, latency_ms, \
             detail) VALUES ($1, $2, $3, $4, $5, $5, $6, $7) \
             ON CONFLICT (stack, service, probe) DO UPDATE SET \
             since = CASE WHEN health_state.ok = excluded.ok THEN health_state.since \
             ELSE excluded.since END, \
             ok = excluded.ok, last_at = excluded.last_at, latency_ms = excluded.latency_ms, \
             detail = excluded.detail",
        )
        .bind(stack)
        .bind(&finding.service)
        .bind(&finding.probe)
        .bind(ok)
        .bind(&at_text)
        .bind(finding.verdict.latency_ms)
        .bind(&finding.verdict.detail)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Forgets the state of the stack's probes not in `keys` (`(service, probe)`): the compose
/// file no longer has them.
pub async fn keep_only(
    store: &Store,
    stack: &str,
    keys: &[(String, String)],
) -> Result<(), StoreError> {
    let known: Vec<(String, String)> =
        sqlx::query_as("SELECT service, probe FROM health_state WHERE stack = $1")
            .bind(stack)
            .fetch_all(store.pool())
            .await?;
    for (service, probe) in known {
        if !keys.iter().any(|(s, p)| *s == service && *p == probe) {
            sqlx::query(
                "DELETE FROM health_state WHERE stack = $1 AND service = $2 AND probe = $3",
            )
            .bind(stack)
            .bind(&service)
            .bind(&probe)
            .execute(store.pool())
            .await?;
        }
    }
    Ok(())
}

/// Forgets a stack's current state (it no longer runs): its history stays.
pub async fn forget_state(store: &Store, stack: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM health_state WHERE stack = $1")
        .bind(stack)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Removes raw results older than [`RAW_FOR`] and minute counts older than [`MINUTES_FOR`];
/// returns how many rows went.
pub async fn prune(store: &Store, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let raw = sqlx::query("DELETE FROM health_samples WHERE at < $1")
        .bind(utc_text(now - RAW_FOR))
        .execute(store.pool())
        .await?
        .rows_affected();
    let minutes = sqlx::query("DELETE FROM health_minutes WHERE minute < $1")
        .bind(minute_of(now - MINUTES_FOR))
        .execute(store.pool())
        .await?
        .rows_affected();
    Ok(raw + minutes)
}

type StateRow = (String, String, String, i64, String, String, i64, String);
/// A check: stack, service, probe.
type ProbeKey = (String, String, String);
/// Checks and failures over 24 hours, then over 7 days.
type Uptime = (i64, i64, i64, i64);

/// Every probe's newest result (of one stack, or of all with `""`), each with its uptime over
/// 24 hours and 7 days and its 24-hour sparkline, as of `now`.
pub async fn now_view(
    store: &Store,
    stack: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ProbeHealth>, StoreError> {
    let rows: Vec<StateRow> = sqlx::query_as(
        "SELECT stack, service, probe, ok, since, last_at, latency_ms, detail FROM health_state \
         WHERE ($1 = '' OR stack = $1) ORDER BY stack, service, probe",
    )
    .bind(stack)
    .fetch_all(store.pool())
    .await?;
    let uptimes: Vec<(String, String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT stack, service, probe, \
         CAST(SUM(CASE WHEN minute >= $2 THEN checks ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN minute >= $2 THEN failures ELSE 0 END) AS BIGINT), \
         CAST(SUM(checks) AS BIGINT), CAST(SUM(failures) AS BIGINT) \
         FROM health_minutes WHERE ($1 = '' OR stack = $1) AND minute >= $3 \
         GROUP BY stack, service, probe",
    )
    .bind(stack)
    .bind(minute_of(now - Duration::hours(24)))
    .bind(minute_of(now - Duration::days(7)))
    .fetch_all(store.pool())
    .await?;
    let first_bar = now - Duration::minutes(BAR_MINUTES * (SPARK_BARS as i64 - 1));
    let first_bar_key = bar_of(first_bar);
    let bars: Vec<(String, String, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT stack, service, probe, substr(minute, 1, 15) AS bar, \
         CAST(SUM(checks) AS BIGINT), CAST(SUM(failures) AS BIGINT), \
         CAST(SUM(latency_ms_sum) AS BIGINT) \
         FROM health_minutes WHERE ($1 = '' OR stack = $1) AND minute >= $2 \
         GROUP BY stack, service, probe, substr(minute, 1, 15)",
    )
    .bind(stack)
    .bind(format!("{first_bar_key}0"))
    .fetch_all(store.pool())
    .await?;
    let bar_keys: Vec<String> = (0..SPARK_BARS as i64)
        .map(|n| bar_of(first_bar + Duration::minutes(BAR_MINUTES * n)))
        .collect();
    // Looked up by key: a page of a thousand probes reads 144 bars each.
    let uptimes: HashMap<ProbeKey, Uptime> = uptimes
        .into_iter()
        .map(|(stack, service, probe, c24, f24, c7, f7)| {
            ((stack, service, probe), (c24, f24, c7, f7))
        })
        .collect();
    let bars: HashMap<(String, String, String, String), SparkBar> = bars
        .into_iter()
        .map(
            |(stack, service, probe, bar, checks, failures, latency_sum)| {
                (
                    (stack, service, probe, bar),
                    SparkBar {
                        checks,
                        failures,
                        latency_ms: latency_sum / checks.max(1),
                    },
                )
            },
        )
        .collect();
    Ok(rows
        .into_iter()
        .map(
            |(stack, service, probe, ok, since, last_at, latency_ms, detail)| {
                let uptime = uptimes.get(&(stack.clone(), service.clone(), probe.clone()));
                let spark = bar_keys
                    .iter()
                    .map(|bar| {
                        bars.get(&(stack.clone(), service.clone(), probe.clone(), bar.clone()))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect();
                ProbeHealth {
                    ok: ok == 1,
                    since,
                    last_at,
                    latency_ms,
                    detail,
                    uptime_24h: uptime.and_then(|u| per_mille(u.0, u.1)),
                    uptime_7d: uptime.and_then(|u| per_mille(u.2, u.3)),
                    spark,
                    stack,
                    service,
                    probe,
                }
            },
        )
        .collect())
}

/// The ten-minute bar a time falls in (`2026-11-29T18:4`).
fn bar_of(at: DateTime<Utc>) -> String {
    let mut minute = minute_of(at);
    minute.truncate(15);
    minute
}

/// Passing checks in thousandths; `None` without checks.
fn per_mille(checks: i64, failures: i64) -> Option<i64> {
    (checks > 0).then(|| (checks - failures) * 1000 / checks)
}

/// A service's newest raw results, newest first, at most `limit`.
pub async fn recent(
    store: &Store,
    stack: &str,
    service: &str,
    limit: i64,
) -> Result<Vec<Sample>, StoreError> {
    let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
        "SELECT probe, at, ok, latency_ms, detail FROM health_samples \
         WHERE stack = $1 AND service = $2 ORDER BY at DESC LIMIT $3",
    )
    .bind(stack)
    .bind(service)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(probe, at, ok, latency_ms, detail)| Sample {
            probe,
            at,
            ok: ok == 1,
            latency_ms,
            detail,
        })
        .collect())
}

/// Rows in the series: raw results and minute counts.
pub async fn size(store: &Store) -> Result<(i64, i64), StoreError> {
    let (raw,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM health_samples")
        .fetch_one(store.pool())
        .await?;
    let (minutes,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM health_minutes")
        .fetch_one(store.pool())
        .await?;
    Ok((raw, minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_ten_minutes_of_the_store_time_text() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T18:47:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(minute_of(at), "2026-11-29T18:47");
        assert_eq!(bar_of(at), "2026-11-29T18:4");
        assert_eq!(per_mille(0, 0), None);
        assert_eq!(per_mille(3, 1), Some(666));
    }
}
