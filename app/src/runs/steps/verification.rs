//! A change's verification, the procedure's T+5m to T+30m: every check of the stack at once
//! (each service's container, each HTTP probe — the integration endpoints among them), then a
//! watch window in which the checks must keep passing and the app services' error lines must
//! not spike against their rate before the change. A failure puts an update back the
//! zero-downtime way when the stack's policy says so — the admin who set it approved that in
//! advance, so no fresh approval is asked —; otherwise the change stays, the run says why,
//! and the team is told.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::json;
use tokio::time::Instant;

use crate::health::probes::{self, Kind, Target, Verdict};
use crate::health::OnFailedVerification;
use crate::runs::executor::{StepContext, StepLog};
use crate::runs::{
    Operation, VERIFICATION_FAILED as FAILED, VERIFICATION_PASSED as PASSED,
    VERIFICATION_ROLLED_BACK as ROLLED_BACK,
};
use crate::stacks::{ContainerStatus, ServiceRole};

/// How long a check may take to pass right after the change, asked again this often.
const SETTLE_WITHIN: Duration = Duration::from_secs(15);
const SETTLE_EVERY: Duration = Duration::from_millis(500);
/// How often the checks run during the watch window.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How often the error lines are counted during the watch window.
const ERRORS_EVERY: Duration = Duration::from_secs(5);
/// The error rate before a change is counted over this long.
const BASELINE: chrono::Duration = chrono::Duration::minutes(10);
/// A spike: more than this many error lines since the change…
const SPIKE_AT_LEAST: usize = 10;
/// …at more than this many times the rate before it (at least one line a minute).
const SPIKE_FACTOR: f64 = 3.0;
/// Lines read back from each container when counting.
const LINES_READ: usize = 5000;

impl StepContext<'_> {
    /// Every check, each line with its evidence. A check that fails is asked again every half
    /// second for up to [`SETTLE_WITHIN`]: a service the change just put behind the edge may
    /// miss its first request.
    pub(in crate::runs) async fn verify(&self, log: &StepLog<'_>) -> Result<(), String> {
        let targets = probes::targets(self.definition, &log.handle.secrets);
        let client = crate::health::scheduler::client().ok_or("no HTTP client for the checks")?;
        let started = Instant::now();
        let restarts = restart_counts(&self.containers().await?);
        let mut verdicts = self
            .check_all(&client, &targets, &restarts, &log.handle.secrets)
            .await?;
        while verdicts.iter().any(|(_, verdict)| !verdict.ok) && started.elapsed() < SETTLE_WITHIN {
            tokio::time::sleep(SETTLE_EVERY).await;
            let failing: Vec<Target> = verdicts
                .iter()
                .filter(|(_, verdict)| !verdict.ok)
                .map(|(target, _)| (*target).clone())
                .collect();
            for (target, verdict) in self
                .check_all(&client, &failing, &restarts, &log.handle.secrets)
                .await?
            {
                if let Some(slot) = verdicts
                    .iter_mut()
                    .find(|(t, _)| t.service == target.service && t.name == target.name)
                {
                    slot.1 = verdict;
                }
            }
        }
        let mut failed = None;
        for (target, verdict) in &verdicts {
            let mark = if verdict.ok { "passed" } else { "FAILED" };
            let line = format!(
                "{} {}: {mark}: {}",
                target.service, target.name, verdict.detail
            );
            log.say(&line).await?;
            if !verdict.ok && failed.is_none() {
                failed = Some(line);
            }
        }
        match failed {
            Some(reason) => self.verification_failed(log, reason, Instant::now()).await,
            None => {
                log.say(format!(
                    "all {} checks passed within {:.1} s",
                    targets.len(),
                    started.elapsed().as_secs_f64()
                ))
                .await
            }
        }
    }

    /// The watch window: the checks every second and the error lines every few, until the
    /// window ends or something fails.
    pub(in crate::runs) async fn watch(&self, log: &StepLog<'_>) -> Result<(), String> {
        if self
            .verification_failed
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return log
                .say("not watched: the verification failed already")
                .await;
        }
        let window = Duration::from_secs(u64::try_from(self.health.watch_seconds).unwrap_or(0));
        if window.is_zero() {
            log.handle
                .set_verification(PASSED)
                .await
                .map_err(|e| e.to_string())?;
            return log
                .say("not watched: the stack's watch window is 0 s")
                .await;
        }
        let targets = probes::targets(self.definition, &log.handle.secrets);
        let client = crate::health::scheduler::client().ok_or("no HTTP client for the checks")?;
        let started = Instant::now();
        let watch_from = Utc::now();
        let before = self.errors_before(log).await;
        let restarts = restart_counts(&self.containers().await?);
        log.say(format!(
            "watching for {}: {} checks every second; error lines before the change: {before} in {} min",
            humantime::format_duration(window),
            targets.len(),
            BASELINE.num_minutes()
        ))
        .await?;
        let mut rounds = 0_u64;
        let mut errors_at = started + ERRORS_EVERY;
        loop {
            let round = Instant::now();
            let failing = self
                .check_all(&client, &targets, &restarts, &log.handle.secrets)
                .await?
                .into_iter()
                .filter(|(_, verdict)| !verdict.ok)
                .map(|(target, _)| target.clone())
                .collect::<Vec<_>>();
            if !failing.is_empty() {
                // Checked once more at once: one lost request is not a verdict.
                let detected = Instant::now();
                if let Some((target, verdict)) = self
                    .check_all(&client, &failing, &restarts, &log.handle.secrets)
                    .await?
                    .into_iter()
                    .find(|(_, verdict)| !verdict.ok)
                {
                    let reason = format!(
                        "{} {} failed after {:.1} s of the watch: {}",
                        target.service,
                        target.name,
                        started.elapsed().as_secs_f64(),
                        verdict.detail
                    );
                    log.say(&reason).await?;
                    return self.verification_failed(log, reason, detected).await;
                }
            }
            rounds += 1;
            let done = started.elapsed() >= window;
            if done || Instant::now() >= errors_at {
                errors_at = Instant::now() + ERRORS_EVERY;
                let after = self.errors_since(watch_from).await;
                if let Some(spike) = spike(before, after, Utc::now() - watch_from) {
                    log.say(&spike).await?;
                    return self.verification_failed(log, spike, Instant::now()).await;
                }
                if done {
                    log.handle
                        .set_verification(PASSED)
                        .await
                        .map_err(|e| e.to_string())?;
                    return log
                        .say(format!(
                            "held for {}: {rounds} rounds of checks passed; error lines since the change: {after}",
                            humantime::format_duration(window)
                        ))
                        .await;
                }
            }
            let next = (round + WATCH_EVERY).min(started + window);
            tokio::time::sleep_until(next).await;
        }
    }

    /// Each check's verdict now: the containers listed afresh, the checks made inside them
    /// and the HTTP probes asked at once (each bounded by its own time limit).
    async fn check_all<'t>(
        &self,
        client: &reqwest::Client,
        targets: &'t [Target],
        restarts: &BTreeMap<String, i64>,
        secrets: &[String],
    ) -> Result<Vec<(&'t Target, Verdict)>, String> {
        let containers = &self.containers().await?;
        let checks = targets.iter().map(|target| async move {
            let verdict = match &target.kind {
                Kind::Container => probes::container_verdict(&target.service, containers, restarts),
                Kind::Postgres => {
                    let running = probes::running_of(&target.service, containers);
                    probes::postgres_verdict(self.engine, running, self.definition).await
                }
                Kind::Redis => {
                    probes::redis_verdict(
                        self.engine,
                        probes::running_of(&target.service, containers),
                    )
                    .await
                }
                Kind::Http(Ok(url), probe) => {
                    probes::http_verdict(client, url, probe, secrets).await
                }
                Kind::Http(Err(reason), _) => Verdict::failed(reason.clone(), 0),
            };
            let verdict = Verdict {
                detail: probes::stored(&verdict.detail, secrets),
                ..verdict
            };
            (target, verdict)
        });
        Ok(join_all(checks).await)
    }

    /// What a failed verification does: an update (or a flag's change) whose stack's policy
    /// says `rollback` fails here, and the run puts the previous containers back; any other
    /// run keeps its change, says why, and the team is told.
    async fn verification_failed(
        &self,
        log: &StepLog<'_>,
        reason: String,
        detected: Instant,
    ) -> Result<(), String> {
        let run = &log.handle.run;
        let reason = probes::stored(&reason, &log.handle.secrets);
        let policy = &self.health;
        let rolls_back = policy.on_failed_verification == OnFailedVerification::Rollback
            && matches!(run.operation, Operation::Update | Operation::Flag)
            && !self.replaced_list().is_empty();
        if rolls_back {
            log.handle
                .set_verification(ROLLED_BACK)
                .await
                .map_err(|e| e.to_string())?;
            *self
                .rolled_back
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                Some((detected, reason.clone()));
            return Err(format!(
                "verification failed: {reason}; the previous version is put back (on failed \
                 verification: rollback, set by {} at {})",
                policy.set_by, policy.set_at
            ));
        }
        self.verification_failed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        log.handle
            .set_verification(FAILED)
            .await
            .map_err(|e| e.to_string())?;
        self.audit_failed(log, &reason).await;
        let why = match policy.on_failed_verification {
            OnFailedVerification::Alert => "on failed verification: alert".to_owned(),
            OnFailedVerification::Rollback => {
                format!("a {} is not rolled back on its own", run.operation.as_str())
            }
        };
        log.say(format!(
            "VERIFICATION FAILED: the change stays ({why}); the team is told"
        ))
        .await
    }

    /// A failed verification in the audit trail (and so told to the channels that want it);
    /// the run goes on whatever happens to the entry.
    async fn audit_failed(&self, log: &StepLog<'_>, reason: &str) {
        let run = &log.handle.run;
        let detail = json!({
            "run": run.id,
            "reason": reason,
            "on_failed_verification": self.health.on_failed_verification.as_str(),
        });
        if let Err(error) = log.handle.audit("run.verification_failed", detail).await {
            tracing::error!(error = %error, run = run.id, "the failed verification was not audited");
        }
    }

    /// After the previous containers of an update whose verification failed are back: how
    /// long from the failed check to the previous version serving, in the run and the audit
    /// trail, with the policy that authorised it.
    pub(in crate::runs) async fn report_rollback(&self, log: &StepLog<'_>, all_back: bool) {
        let Some((detected, reason)) = self
            .rolled_back
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        else {
            return;
        };
        let recovered = detected.elapsed();
        let run = &log.handle.run;
        let policy = &self.health;
        if !all_back {
            // Said as what it is: the change failed and the previous version is not all back.
            let reason = format!(
                "{reason}; the automatic rollback could not put every previous container back (see the run)"
            );
            let _ = log.handle.set_verification(FAILED).await;
            let _ = log
                .say(format!("AUTOMATIC ROLLBACK FAILED: {reason}"))
                .await;
            self.audit_failed(log, &reason).await;
            return;
        }
        let _ = log
            .say(format!(
                "AUTOMATIC ROLLBACK: the previous version serves again {:.1} s after the failed check (authorised by the stack's policy, set by {} at {})",
                recovered.as_secs_f64(),
                policy.set_by,
                policy.set_at
            ))
            .await;
        let audited = log
            .handle
            .audit(
                "rollback.automatic",
                json!({
                    "run": run.id,
                    "reason": reason,
                    "recovered_ms": u64::try_from(recovered.as_millis()).unwrap_or(u64::MAX),
                    "policy_set_by": policy.set_by,
                    "policy_set_at": policy.set_at,
                }),
            )
            .await;
        if let Err(error) = audited {
            tracing::error!(error = %error, run = run.id, "the automatic rollback was not audited");
        }
    }

    /// Error lines the replaced containers wrote in the [`BASELINE`] before the run started.
    async fn errors_before(&self, log: &StepLog<'_>) -> usize {
        let Some(run_start) = crate::store::parse_utc(&log.handle.run.started_at) else {
            return 0;
        };
        let old: Vec<(String, String)> = self
            .replaced_list()
            .iter()
            .map(|(service, replacement)| (replacement.old.id.clone(), service.name.clone()))
            .collect();
        self.error_lines(&old, run_start - BASELINE, Some(run_start))
            .await
    }

    /// Error lines the running app containers wrote since `from`.
    async fn errors_since(&self, from: DateTime<Utc>) -> usize {
        let Ok(containers) = self.containers().await else {
            return 0;
        };
        let apps: Vec<(String, String)> = containers
            .into_iter()
            .filter(|c| c.state == "running")
            .filter(|c| {
                self.definition
                    .service(&c.service)
                    .is_some_and(|s| s.role == ServiceRole::App)
            })
            .map(|c| (c.id, c.service))
            .collect();
        self.error_lines(&apps, from, None).await
    }

    async fn error_lines(
        &self,
        containers: &[(String, String)],
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> usize {
        let mut count = 0;
        for (id, service) in containers {
            let Ok(lines) = self.engine.logs(id, service, LINES_READ).await else {
                continue;
            };
            count += lines
                .iter()
                .filter(|line| line.is_error())
                .filter_map(|line| crate::store::parse_utc(&line.at))
                .filter(|at| *at >= from && until.is_none_or(|until| *at < until))
                .count();
        }
        count
    }
}

/// Each container's restart count now, by id.
fn restart_counts(containers: &[ContainerStatus]) -> BTreeMap<String, i64> {
    containers
        .iter()
        .map(|c| (c.id.clone(), c.restarts))
        .collect()
}

/// Whether `after` error lines in `elapsed` since the change are a spike against `before`
/// in the [`BASELINE`] before it; the words say so.
fn spike(before: usize, after: usize, elapsed: chrono::Duration) -> Option<String> {
    let minutes = |d: chrono::Duration| (d.num_milliseconds() as f64 / 60_000.0).max(1.0);
    let before_rate = (before as f64 / minutes(BASELINE)).max(1.0);
    let after_rate = after as f64 / minutes(elapsed);
    (after >= SPIKE_AT_LEAST && after_rate > SPIKE_FACTOR * before_rate).then(|| {
        format!(
            "error spike: {after} error lines since the change ({after_rate:.1} a minute) against {before} in the {} minutes before it",
            BASELINE.num_minutes()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::spike;

    #[test]
    fn a_spike_is_many_more_error_lines_than_before_the_change() {
        let minute = chrono::Duration::minutes(1);
        assert!(spike(0, 9, minute).is_none(), "fewer than ten lines");
        assert!(spike(0, 10, minute).is_some());
        // Ten minutes of 10 lines a minute before: 30 a minute is not over three times that.
        assert!(spike(100, 30, minute).is_none());
        assert!(spike(100, 31, minute).is_some());
        // Early lines count as a minute's: 12 lines in 5 s are 12 a minute, not 144.
        assert!(spike(0, 12, chrono::Duration::seconds(5)).is_some());
        assert!(spike(40, 12, chrono::Duration::seconds(5)).is_none());
    }
}
