//! `/metrics`: the console's figures in the OpenMetrics text format Prometheus scrapes — each
//! probe's state and latency, runs by operation and outcome, the newest run's duration, the
//! newest backup's age and whether a drill proved it, approvals waiting. Read from the store
//! at each scrape, so every console of one store reports the same.

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::{Store, StoreError};

type Labels = Vec<(&'static str, String)>;
type Seconds = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every figure as of `now`, encoded.
pub async fn render(store: &Store, now: DateTime<Utc>) -> Result<String, StoreError> {
    let mut registry = Registry::with_prefix("slipway");

    let up = Family::<Labels, Gauge>::default();
    let latency = Family::<Labels, Seconds>::default();
    let states: Vec<(String, String, String, i64, i64)> =
        sqlx::query_as("SELECT stack, service, probe, ok, latency_ms FROM health_state")
            .fetch_all(store.pool())
            .await?;
    for (stack, service, probe, ok, latency_ms) in states {
        let labels = vec![
            ("stack", stack),
            ("service", label_value(&service)),
            ("probe", label_value(&probe)),
        ];
        up.get_or_create(&labels).set(ok);
        latency
            .get_or_create(&labels)
            .set(latency_ms as f64 / 1000.0);
    }
    registry.register("probe_up", "Whether the probe's newest check passed", up);
    registry.register(
        "probe_latency_seconds",
        "How long the probe's newest check took",
        latency,
    );

    let runs = Family::<Labels, Counter>::default();
    let counts: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT stack, operation, status, COUNT(*) FROM runs GROUP BY stack, operation, status",
    )
    .fetch_all(store.pool())
    .await?;
    for (stack, operation, status, count) in counts {
        runs.get_or_create(&vec![
            ("stack", stack),
            ("operation", operation),
            ("outcome", status),
        ])
        .inc_by(u64::try_from(count).unwrap_or_default());
    }
    registry.register("runs", "Runs by stack, operation and outcome", runs);

    let durations = Family::<Labels, Seconds>::default();
    let newest: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT stack, operation, started_at, finished_at FROM runs AS r WHERE finished_at <> '' \
         AND finished_at = (SELECT MAX(finished_at) FROM runs AS n WHERE n.stack = r.stack \
         AND n.operation = r.operation)",
    )
    .fetch_all(store.pool())
    .await?;
    for (stack, operation, started_at, finished_at) in newest {
        if let (Some(start), Some(end)) = (
            crate::store::parse_utc(&started_at),
            crate::store::parse_utc(&finished_at),
        ) {
            durations
                .get_or_create(&vec![("stack", stack), ("operation", operation)])
                .set((end - start).num_milliseconds() as f64 / 1000.0);
        }
    }
    registry.register(
        "run_last_duration_seconds",
        "How long the newest ended run of each stack and operation took",
        durations,
    );

    let age = Family::<Labels, Seconds>::default();
    let verified = Family::<Labels, Gauge>::default();
    let backups: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT stack, finished_at, verification FROM backups AS b WHERE finished_at = \
         (SELECT MAX(finished_at) FROM backups AS n WHERE n.stack = b.stack)",
    )
    .fetch_all(store.pool())
    .await?;
    for (stack, finished_at, verification) in backups {
        let labels = vec![("stack", stack)];
        if let Some(at) = crate::store::parse_utc(&finished_at) {
            age.get_or_create(&labels)
                .set((now - at).num_seconds().max(0) as f64);
        }
        verified
            .get_or_create(&labels)
            .set(i64::from(verification == "verified"));
    }
    registry.register(
        "backup_newest_age_seconds",
        "How old each stack's newest backup is",
        age,
    );
    registry.register(
        "backup_newest_verified",
        "Whether a restore drill proved each stack's newest backup",
        verified,
    );

    let (waiting,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM approvals WHERE status = 'waiting'")
            .fetch_one(store.pool())
            .await?;
    let approvals = Gauge::<i64>::default();
    approvals.set(waiting);
    registry.register(
        "approvals_waiting",
        "Approval requests waiting for a decision",
        approvals,
    );

    let mut text = String::new();
    // Writing to a String cannot fail; a metric the encoder refuses is logged, not fatal.
    if let Err(error) = encode(&mut text, &registry) {
        tracing::error!(error = %error, "could not encode the metrics");
    }
    Ok(text)
}

/// A label value as the text format wants it: prometheus-client writes values as they are, and
/// a probe's name comes from a compose file (stack, service and operation names are checked
/// words already).
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_label_value_cannot_end_its_quotes_or_its_line() {
        assert_eq!(
            super::label_value("http /a\"} 1\nfake 2\\"),
            "http /a\\\"} 1\\nfake 2\\\\"
        );
    }
}
