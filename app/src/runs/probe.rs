//! The rollout probe: requests through the edge during an update, counted against an error
//! budget, so an update that starts failing requests is put back; and the outage probe,
//! which measures how long a service replaced in place did not answer.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::stacks::compose::{ServiceDefinition, StackDefinition};
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
    /// Probes every app service the edge publishes: a team's edge on its first port under
    /// the service's `via_edge` path and first probe; the managed edge on the port that
    /// carries the service, at its first probe (which must pass) or at `/` (where any answer
    /// but the edge's own 502 counts: the service's status codes are its own business).
    pub(super) fn start(definition: &StackDefinition) -> Option<Self> {
        let urls: Vec<(String, bool)> = definition
            .services
            .iter()
            // A service replaced in place has an outage by design, measured on its own.
            .filter(|s| s.role == ServiceRole::App && super::plan::replaced_beside(definition, s))
            .filter_map(|s| {
                let probe = s.probes.first().map(|probe| probe.http.as_str());
                let (base, managed) = edge_base(definition, s)?;
                match (managed, probe) {
                    (true, probe) => {
                        Some((format!("{base}{}", probe.unwrap_or("/")), probe.is_none()))
                    }
                    (false, Some(probe)) => Some((format!("{base}{probe}"), false)),
                    (false, None) => None,
                }
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
            for (url, any_answer) in urls.iter().cycle() {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                let ok = match client.get(url).send().await {
                    Ok(answer) if *any_answer => {
                        answer.status() != reqwest::StatusCode::BAD_GATEWAY
                    }
                    Ok(answer) => answer.status().is_success(),
                    Err(_) => false,
                };
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

/// Where the console reaches a service through the stack's edge, as `http://HOST:PORT[PREFIX]`,
/// and whether it is the managed edge's own port for the service (`true`) or the team's edge
/// under the service's `via_edge` prefix. Always a published port: the console never sends
/// traffic to a container's bridge address, which a remote or rootless engine does not route
/// and which would skip the path users' requests take.
pub fn edge_base(
    definition: &StackDefinition,
    service: &ServiceDefinition,
) -> Option<(String, bool)> {
    if let Some(port) = service.published_by_edge.as_deref() {
        return Some((format!("http://{}", published_address(port)?), true));
    }
    let edge = definition
        .services
        .iter()
        .find(|s| s.role == ServiceRole::Edge)?;
    let first = edge.ports.iter().find_map(|port| published_address(port))?;
    Some((
        format!("http://{first}{}", service.via_edge.as_ref()?),
        false,
    ))
}

/// Where this machine reaches a published TCP port (`[IP:]HOST_PORT:CONTAINER_PORT`): the
/// address it is bound to, or loopback when it is bound to every address. Ports without a
/// fixed host port, ranges, UDP and IPv6 bindings are not probed.
pub fn published_address(published: &str) -> Option<String> {
    let (ip, host_port, _) = crate::stacks::lifecycle::single_tcp_port(published)?;
    let port: u16 = host_port?.parse().ok()?;
    let ip = match ip.as_deref() {
        None | Some("0.0.0.0") => "127.0.0.1".to_owned(),
        Some(ip) if ip.contains(':') => return None,
        Some(ip) => ip.to_owned(),
    };
    Some(format!("{ip}:{port}"))
}

/// How long a service replaced in place was not answering on its published port: requests
/// from before the old container stops until the new one answers. Any HTTP answer counts
/// (the service's own health is Docker's healthcheck); a refused or cut connection does not.
pub(super) struct OutageProbe {
    pub(super) address: String,
    state: std::sync::Arc<std::sync::Mutex<Outage>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Outage {
    down_since: Option<tokio::time::Instant>,
    total: std::time::Duration,
    last_answer: Option<tokio::time::Instant>,
}

/// How often the outage probe asks, and how long one answer may take.
const OUTAGE_EVERY: std::time::Duration = std::time::Duration::from_millis(25);
const OUTAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl OutageProbe {
    /// Starts probing `http://ADDRESS/` when the service answers there now; `None` when it
    /// does not (not HTTP, or not up), so an outage cannot be measured.
    pub(super) async fn start(address: String) -> Option<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(OUTAGE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        let url = format!("http://{address}/");
        client.get(&url).send().await.ok()?;
        let state = std::sync::Arc::new(std::sync::Mutex::new(Outage::default()));
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                let deadline = tokio::time::Instant::now() + PROBE_AT_MOST;
                while tokio::time::Instant::now() < deadline {
                    let answered = client.get(&url).send().await.is_ok();
                    let now = tokio::time::Instant::now();
                    {
                        let mut outage = state
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        if answered {
                            if let Some(since) = outage.down_since.take() {
                                outage.total += now - since;
                            }
                            outage.last_answer = Some(now);
                        } else if outage.down_since.is_none() {
                            outage.down_since = Some(now);
                        }
                    }
                    tokio::time::sleep(OUTAGE_EVERY).await;
                }
            }
        });
        Some(Self {
            address,
            state,
            task,
        })
    }

    /// Waits (at most `within`) for an answer given after `since` — the new container's start —
    /// and returns how long the service did not answer; `None` when it never answered again.
    pub(super) async fn answered_again(
        &self,
        since: tokio::time::Instant,
        within: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let deadline = since + within;
        loop {
            {
                let outage = self
                    .state
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if outage.last_answer.is_some_and(|at| at > since) {
                    return Some(outage.total);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(OUTAGE_EVERY).await;
        }
    }
}

impl Drop for OutageProbe {
    fn drop(&mut self) {
        self.task.abort();
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
    use super::{past_budget, published_address};

    #[test]
    fn a_published_port_is_probed_where_this_machine_reaches_it() {
        let cases = [
            ("127.0.0.1:18080:8080", Some("127.0.0.1:18080")),
            ("18080:8080", Some("127.0.0.1:18080")),
            ("0.0.0.0:18080:8080/tcp", Some("127.0.0.1:18080")),
            ("10.0.0.5:80:8080", Some("10.0.0.5:80")),
            ("8080", None),
            ("127.0.0.1::8080", None),
            ("53:53/udp", None),
            ("9000-9001:9000-9001", None),
            ("[::1]:18080:8080", None),
        ];
        for (published, expected) in cases {
            assert_eq!(
                published_address(published).as_deref(),
                expected,
                "{published}"
            );
        }
    }

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
