//! Containers of an update: each app service replaced beside the running one with the edge
//! switched, or in its place where no edge is in front; the old kept until the update holds
//! and put back when it does not; and the running images recorded as the last-known-good.

use crate::runs::executor::{StepContext, StepLog};
use crate::runs::probe::{published_address, OutageProbe};
use crate::stacks::compose::ServiceDefinition;
use crate::stacks::lifecycle;
use crate::store::now_utc;

/// How long a service replaced in place may take to answer on its port again, when its
/// definition gives no `healthy_within`.
const NOT_ANSWERING_AT_MOST: std::time::Duration = std::time::Duration::from_secs(60);

impl<'a> StepContext<'a> {
    /// New container beside the old, healthy within the bound, edge switched, old drained
    /// and stopped. The replacement is tracked from the moment it exists, so a failure
    /// anywhere after that — here or in a later step — puts the old one back.
    pub(in crate::runs) async fn replace(
        &self,
        service: &'a ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let project = self.stack.project.as_str();
        let text = |error: crate::stacks::StackError| error.to_string();
        let edge = self.edge()?;
        lifecycle::ensure_networks(self.engine, self.definition, project)
            .await
            .map_err(text)?;
        let Some(replacement) =
            lifecycle::start_beside(self.engine, project, service, &self.compose_dir)
                .await
                .map_err(text)?
        else {
            return log.say(format!("{}: already current", service.name)).await;
        };
        let (old, new_id, new_name) = (
            replacement.old.clone(),
            replacement.new_id.clone(),
            replacement.new_name.clone(),
        );
        self.replaced_list().push((service, replacement));
        log.say(format!("started {new_name} beside {}", old.name))
            .await?;
        let took = lifecycle::wait_new_healthy(self.engine, project, service, &new_id)
            .await
            .map_err(|error| format!("{error}; {} keeps serving", old.name))?;
        log.say(format!(
            "{new_name} healthy after {:.1} s",
            took.as_secs_f64()
        ))
        .await?;
        log.say(
            lifecycle::switch_edge(self.engine, project, edge, service, &new_name)
                .await
                .map_err(text)?,
        )
        .await?;
        lifecycle::drain().await;
        if let Some(over) = self.over_budget() {
            return Err(over);
        }
        lifecycle::stop_replaced(self.engine, service, &old)
            .await
            .map_err(text)?;
        log.say(format!(
            "drained and stopped {}; it is removed once the update has held",
            old.name
        ))
        .await
    }

    /// No edge in front: the new container is made first (a missing image stops nothing),
    /// then the old one stops with its stop signal and grace period and the new one starts
    /// in its place, healthy within the bound or the old one is put back. Where the service
    /// publishes a port, the run says how long it was not answering there.
    pub(in crate::runs) async fn replace_in_place(
        &self,
        service: &'a ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let project = self.stack.project.as_str();
        let text = |error: crate::stacks::StackError| error.to_string();
        let edge_left = lifecycle::managed_edge_left(self.engine, project, self.definition)
            .await
            .map_err(text)?;
        if !edge_left.is_empty() {
            return Err("the managed edge was turned off and still holds the services' ports: deploy the stack to give them back".into());
        }
        lifecycle::ensure_networks(self.engine, self.definition, project)
            .await
            .map_err(text)?;
        let Some(mut replacement) =
            lifecycle::create_replacement(self.engine, project, service, &self.compose_dir)
                .await
                .map_err(text)?
        else {
            return log.say(format!("{}: already current", service.name)).await;
        };
        replacement.in_place = true;
        let (old, new_id, new_name) = (
            replacement.old.name.clone(),
            replacement.new_id.clone(),
            replacement.new_name.clone(),
        );
        // Tracked at once: from here on a failure puts the old one back (and its name).
        self.replaced_list().push((service, replacement.clone()));
        let address = service
            .ports
            .iter()
            .find_map(|port| published_address(port));
        let outage = match &address {
            Some(address) => OutageProbe::start(address.clone()).await,
            None => None,
        };
        log.say(format!("created {new_name}; stopping {old} in its place"))
            .await?;
        lifecycle::swap_in_place(self.engine, service, &replacement)
            .await
            .map_err(|error| format!("{error}; putting {old} back"))?;
        let started = tokio::time::Instant::now();
        let took = lifecycle::wait_new_healthy(self.engine, project, service, &new_id)
            .await
            .map_err(|error| format!("{error}; putting {old} back"))?;
        log.say(format!(
            "{new_name} healthy after {:.1} s",
            took.as_secs_f64()
        ))
        .await?;
        let within = service.healthy_within.unwrap_or(NOT_ANSWERING_AT_MOST);
        let said = match (&outage, &address) {
            (Some(probe), _) => match probe.answered_again(started, within).await {
                Some(down) => format!(
                    "not answering on {} for {:.2} s; for zero downtime put Slipway's edge in front (x-slipway: {{ edge: managed }})",
                    probe.address,
                    down.as_secs_f64()
                ),
                None => {
                    return Err(format!(
                        "{new_name} does not answer on {} within {} s; putting {old} back",
                        probe.address,
                        within.as_secs()
                    ))
                }
            },
            (None, Some(address)) => {
                format!("{address} did not answer HTTP before: its outage is not measured")
            }
            (None, None) => "it publishes no port".into(),
        };
        log.say(format!(
            "{}: replaced in place (no edge in front), {said}",
            service.name
        ))
        .await
    }

    /// `depends_on: { X: { restart: true } }`: as Compose does, a service is restarted once
    /// a service it names that way was replaced, unless it was replaced itself.
    pub(in crate::runs) async fn restart_dependents(
        &self,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let replaced: Vec<String> = self
            .replaced_list()
            .iter()
            .map(|(service, _)| service.name.clone())
            .collect();
        for service in &self.definition.services {
            if replaced.contains(&service.name) {
                continue;
            }
            let Some(cause) = service.depends_on.iter().find(|name| {
                replaced.contains(name) && service.dependency(name).restart == Some(true)
            }) else {
                continue;
            };
            let restarted = lifecycle::restart_service(self.engine, &self.stack.project, service)
                .await
                .map_err(|error| error.to_string())?;
            if restarted {
                log.say(format!(
                    "{}: restarted, as {cause} was replaced (depends_on restart: true)",
                    service.name
                ))
                .await?;
            }
        }
        Ok(())
    }

    pub(in crate::runs) fn replaced_list(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<(&'a ServiceDefinition, lifecycle::Replacement)>> {
        self.replaced
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The probe's verdict when it is past the error budget.
    fn over_budget(&self) -> Option<String> {
        let probe = self.probe.filter(|probe| probe.over_budget())?;
        let (failed, total) = probe.counts();
        Some(format!(
            "{failed} of {total} requests failed, over the error budget"
        ))
    }

    /// Puts back every container the update replaced, newest first. Best effort to the end:
    /// a service that cannot be put back, or a line that cannot be stored, does not stop the
    /// others from being put back.
    /// Puts back every container the run replaced; whether all came back.
    pub(in crate::runs) async fn restore_replaced(&self, log: &StepLog<'_>) -> bool {
        let replaced = std::mem::take(&mut *self.replaced_list());
        // Services behind the edge come back at once, each on its own: the previous version
        // serves again as soon as the slowest of them is healthy, not after all in a row.
        let (in_place, beside): (Vec<_>, Vec<_>) = replaced
            .iter()
            .partition(|(_, replacement)| replacement.in_place);
        let mut outcomes = futures::future::join_all(
            beside
                .into_iter()
                .map(|(service, replacement)| self.reinstate(service, replacement)),
        )
        .await;
        // In place, one at a time in reverse: a service's dependencies are back before it.
        for (service, replacement) in in_place.into_iter().rev() {
            outcomes.push(self.reinstate(service, replacement).await);
        }
        let mut all_back = true;
        for outcome in outcomes {
            let line = outcome.unwrap_or_else(|failure| {
                all_back = false;
                failure
            });
            let _ = log.say(line).await;
        }
        all_back
    }

    /// Puts one replaced container back: what was done, or why it could not be.
    async fn reinstate(
        &self,
        service: &ServiceDefinition,
        replacement: &lifecycle::Replacement,
    ) -> Result<String, String> {
        let edge = self.edge().ok();
        lifecycle::reinstate(self.engine, &self.stack.project, edge, service, replacement)
            .await
            .map_err(|error| {
                format!(
                    "{}: could not put {} back: {error}",
                    service.name, replacement.old.name
                )
            })
    }

    /// The image ids now running become this run's record: the stack's last-known-good.
    pub(in crate::runs) async fn record_images(&self, log: &StepLog<'_>) -> Result<(), String> {
        let containers = self.containers().await?;
        for container in containers.iter().filter(|c| c.state == "running") {
            // The start of the change's lead time; an image without the label has none.
            let built_at = self
                .engine
                .image_built_at(&container.image_id)
                .await
                .unwrap_or_default();
            sqlx::query("INSERT INTO run_images (run_id, service, image, image_id, created_at, built_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&log.handle.run.id)
                .bind(&container.service)
                .bind(&container.image)
                .bind(&container.image_id)
                .bind(now_utc())
                .bind(built_at)
                .execute(log.handle.store.pool())
                .await
                .map_err(|e| e.to_string())?;
            log.say(format!(
                "{}: {} ({})",
                container.service, container.image, container.image_id
            ))
            .await?;
        }
        Ok(())
    }
}
