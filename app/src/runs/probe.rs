//! The rollout probe: requests through the edge during an update, counted against an error
//! budget, so an update that starts failing requests is put back.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::stacks::compose::StackDefinition;
use crate::stacks::ServiceRole;

/// Requests through the edge during an update, each on a new connection, counting failures.
pub(super) struct RolloutProbe {
    failed: std::sync::Arc<AtomicI64>,
    total: std::sync::Arc<AtomicI64>,
    /// Turns true the moment the failures pass the error budget.
    exceeded: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Failures allowed during an update, in thousandths of the requests.
const ERROR_BUDGET_PER_MILLE: i64 = 10;
/// The budget is counted over at least this many requests.
const BUDGET_SAMPLE: i64 = 100;
/// How long the new containers must serve within the error budget before an update holds.
pub(super) const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);
/// A probe never outlives this, whatever happens to the run.
const PROBE_AT_MOST: std::time::Duration = std::time::Duration::from_secs(600);

impl RolloutProbe {
    /// Probes every app service the edge publishes (its `via_edge` path and first probe).
    pub(super) fn start(definition: &StackDefinition) -> Option<Self> {
        let edge = definition
            .services
            .iter()
            .find(|s| s.role == ServiceRole::Edge)?;
        let published = edge.ports.first()?;
        let parts: Vec<&str> = published.split(':').collect();
        let (host, port) = match parts.as_slice() {
            [ip, host_port, _] => (ip.to_string(), host_port.to_string()),
            [host_port, _] => ("127.0.0.1".to_owned(), host_port.to_string()),
            _ => return None,
        };
        let urls: Vec<String> = definition
            .services
            .iter()
            .filter(|s| s.role == ServiceRole::App)
            .filter_map(|s| {
                Some(format!(
                    "http://{host}:{port}{}{}",
                    s.via_edge.as_ref()?,
                    s.probes.first()?.http
                ))
            })
            .collect();
        if urls.is_empty() {
            return None;
        }
        let failed = std::sync::Arc::new(AtomicI64::new(0));
        let total = std::sync::Arc::new(AtomicI64::new(0));
        let (f, t) = (failed.clone(), total.clone());
        let (exceed, exceeded) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let Ok(client) = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(std::time::Duration::from_secs(5))
                .build()
            else {
                return;
            };
            let deadline = tokio::time::Instant::now() + PROBE_AT_MOST;
            for url in urls.iter().cycle() {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                let ok = matches!(client.get(url).send().await, Ok(answer) if answer.status().is_success());
                let total = t.fetch_add(1, Ordering::SeqCst) + 1;
                if !ok {
                    let failed = f.fetch_add(1, Ordering::SeqCst) + 1;
                    if past_budget(failed, total) {
                        exceed.send_replace(true);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        Some(Self {
            failed,
            total,
            exceeded,
            task,
        })
    }

    /// Resolves once the failures pass the error budget.
    pub(super) async fn exceeded(&self) {
        let mut exceeded = self.exceeded.clone();
        if exceeded.wait_for(|over| *over).await.is_err() {
            // The probe ended (its time is up): it can no longer exceed.
            std::future::pending::<()>().await;
        }
    }

    pub(super) fn counts(&self) -> (i64, i64) {
        (
            self.failed.load(Ordering::SeqCst),
            self.total.load(Ordering::SeqCst),
        )
    }

    pub(super) fn over_budget(&self) -> bool {
        let (failed, total) = self.counts();
        past_budget(failed, total)
    }
}

/// Past the error budget: more than 1 % of the requests failed, counted over at least a
/// hundred, so one unlucky request at the very start is not a verdict.
fn past_budget(failed: i64, total: i64) -> bool {
    failed * 1000 > total.max(BUDGET_SAMPLE) * ERROR_BUDGET_PER_MILLE
}

impl Drop for RolloutProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::past_budget;

    #[test]
    fn the_error_budget_is_one_percent_of_at_least_a_hundred_requests() {
        assert!(!past_budget(0, 0));
        assert!(
            !past_budget(1, 1),
            "one failure at the start is not a verdict"
        );
        assert!(past_budget(2, 10));
        assert!(!past_budget(10, 1000));
        assert!(past_budget(11, 1000));
    }
}
