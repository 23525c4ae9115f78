//! The console's prober: every stack's checks at the stack's interval, each check on its own
//! clock — one engine listing for a stack's containers, one request per HTTP probe — so a
//! hanging endpoint holds up nothing but its own next check, at most [`AT_ONCE`] checks at a
//! time over all stacks. `slipway health` runs one round of the same checks from the CLI.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::stacks::engine::Engine;
use crate::stacks::{secrets, ContainerStatus};
use crate::store::Store;

use super::probes::{self, Kind, Target, Verdict};
use super::series::{self, Finding, Round};

/// Checks in flight at once, over every stack.
const AT_ONCE: usize = 64;
/// How often the findings gathered are written: one transaction for all of them.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often the stacks, their compose files and their intervals are read again: a stack
/// added or a setting changed is probed within this.
const REREAD_EVERY: Duration = Duration::from_secs(10);
/// How often old results are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long one listing of a stack's containers may take.
const ENGINE_WITHIN: Duration = Duration::from_secs(10);

/// What the prober knows of one stack between two readings of its files.
#[derive(Clone, Debug)]
pub struct Plan {
    pub stack: String,
    project: String,
    every: Duration,
    definition: crate::stacks::compose::StackDefinition,
    targets: Vec<Target>,
    /// What evidence must never show (the stack's secrets).
    secrets: Vec<String>,
}

/// Reads a stack's checks from its compose file, with its interval and secrets.
pub async fn plan_of(store: &Store, name: &str) -> Result<Plan, String> {
    let stack = crate::stacks::service::find(store, name)
        .await
        .map_err(|error| error.to_string())?;
    let every = super::service::interval(store, name)
        .await
        .map_err(|error| error.to_string())?;
    tokio::task::spawn_blocking(move || {
        let definition =
            crate::stacks::service::definition(&stack).map_err(|error| error.to_string())?;
        let secrets = secrets::secret_values(
            std::path::Path::new(&stack.compose_file),
            stack.env_file.as_deref().map(std::path::Path::new),
        )
        .map_err(|error| error.to_string())?;
        Ok(Plan {
            stack: stack.name,
            project: stack.project,
            every,
            targets: probes::targets(&definition, &secrets),
            definition,
            secrets,
        })
    })
    .await
    .map_err(|error| error.to_string())?
}

/// The HTTP client of every probe: no redirects followed (a redirect is an answer to judge),
/// no proxy from the environment (probes go straight to the stack's published ports).
pub fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(probes_connect_within())
        .user_agent(concat!("Slipway-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .ok()
}

fn probes_connect_within() -> Duration {
    crate::stacks::compose::Probe::DEFAULT_WITHIN
}

/// The containers' checks of a stack, the restart counts they saw, and whether the stack runs
/// (or should: its newest change left it running). A stack nobody runs is not checked.
async fn check_containers(
    store: &Store,
    engine: &Engine,
    plan: &Plan,
    restarts_before: &BTreeMap<String, i64>,
) -> (Vec<Finding>, BTreeMap<String, i64>, bool) {
    let listed =
        match tokio::time::timeout(ENGINE_WITHIN, engine.project_containers(&plan.project)).await {
            Ok(listed) => listed.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {} s", ENGINE_WITHIN.as_secs())),
        };
    let containers: Vec<ContainerStatus> = match listed {
        Ok(containers) => containers,
        Err(error) => {
            let reason = format!("the Docker engine did not list the containers: {error}");
            let findings = container_targets(plan)
                .map(|target| finding(plan, target, Verdict::failed(reason.clone(), 0)))
                .collect();
            return (findings, restarts_before.clone(), true);
        }
    };
    let running =
        containers.iter().any(|c| c.state == "running") || meant_to_run(store, &plan.stack).await;
    if !running {
        return (Vec::new(), BTreeMap::new(), false);
    }
    let checks = container_targets(plan).map(|target| {
        let containers = &containers;
        async move {
            let running = probes::running_of(&target.service, containers);
            let verdict = match target.kind {
                Kind::Postgres => probes::postgres_verdict(engine, running, &plan.definition).await,
                Kind::Redis => probes::redis_verdict(engine, running).await,
                _ => probes::container_verdict(&target.service, containers, restarts_before),
            };
            finding(plan, target, verdict)
        }
    });
    let findings = join_all(checks).await;
    let restarts = containers
        .iter()
        .map(|c| (c.id.clone(), c.restarts))
        .collect();
    (findings, restarts, true)
}

/// Whether the stack's newest successful change left it running (a stop did not).
async fn meant_to_run(store: &Store, stack: &str) -> bool {
    let newest: Option<(String,)> = sqlx::query_as(
        "SELECT operation FROM runs WHERE stack = $1 AND status = 'succeeded' AND operation IN \
         ('deploy', 'update', 'start', 'stop', 'rollback', 'restore', 'flag') \
         ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .bind(stack)
    .fetch_optional(store.pool())
    .await
    .unwrap_or(None);
    newest.is_some_and(|(operation,)| operation != "stop")
}

/// The checks answered from the stack's containers: their state, and those made inside them.
fn container_targets(plan: &Plan) -> impl Iterator<Item = &Target> {
    plan.targets
        .iter()
        .filter(|target| !matches!(target.kind, Kind::Http(..)))
}

/// An HTTP probe's check.
async fn check_http(client: &reqwest::Client, plan: &Plan, target: &Target) -> Finding {
    let verdict = match &target.kind {
        Kind::Http(Ok(url), probe) => probes::http_verdict(client, url, probe, &plan.secrets).await,
        Kind::Http(Err(reason), _) => Verdict::failed(reason.clone(), 0),
        _ => Verdict::failed("not an HTTP probe", 0),
    };
    finding(plan, target, verdict)
}

/// A verdict as stored: the evidence with the stack's secrets masked, printable, bounded.
fn finding(plan: &Plan, target: &Target, mut verdict: Verdict) -> Finding {
    verdict.detail = probes::stored(&verdict.detail, &plan.secrets);
    Finding {
        service: target.service.clone(),
        probe: target.name.clone(),
        verdict,
    }
}

/// One round of every check of a stack, recorded; `false` when the stack does not run.
pub async fn probe_once(store: &Store, engine: &Engine, plan: &Plan) -> Result<bool, String> {
    let client = client().ok_or("no HTTP client")?;
    let (mut findings, _, running) = check_containers(store, engine, plan, &BTreeMap::new()).await;
    if !running {
        series::forget_state(store, &plan.stack)
            .await
            .map_err(|error| error.to_string())?;
        return Ok(false);
    }
    let http = plan
        .targets
        .iter()
        .filter(|target| matches!(target.kind, Kind::Http(..)))
        .map(|target| check_http(&client, plan, target));
    findings.extend(join_all(http).await);
    series::record(store, &plan.stack, Utc::now(), &findings)
        .await
        .map_err(|error| error.to_string())?;
    series::keep_only(store, &plan.stack, &keys(plan))
        .await
        .map_err(|error| error.to_string())?;
    Ok(true)
}

/// Every check's `(service, probe)` of a plan.
fn keys(plan: &Plan) -> Vec<(String, String)> {
    plan.targets
        .iter()
        .map(|target| (target.service.clone(), target.name.clone()))
        .collect()
}

/// One check the prober schedules: a stack's containers, or one of its HTTP probes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Unit {
    Containers(String),
    Http(String, usize),
}

/// What a finished check hands back to the loop: what it found, and after a containers'
/// check the restart counts seen and whether the stack runs.
struct Done {
    round: Round,
    containers: Option<(BTreeMap<String, i64>, bool)>,
}

/// Probes every stack until the console stops (the task is aborted).
pub async fn run(store: Store, engine: Engine) {
    let Some(client) = client() else {
        tracing::error!("stacks cannot be probed: no HTTP client");
        return;
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut plans: HashMap<String, Arc<Plan>> = HashMap::new();
    // When each check last started: it is due again one interval later, by the interval
    // of the plan read last (a shorter one set by an admin counts at once).
    let mut started: HashMap<Unit, Instant> = HashMap::new();
    let mut in_flight: HashSet<Unit> = HashSet::new();
    let mut unit_of: HashMap<tokio::task::Id, Unit> = HashMap::new();
    let mut restarts: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
    let mut running: HashSet<String> = HashSet::new();
    let mut tasks: JoinSet<Done> = JoinSet::new();
    // Findings not yet written, written together once a second.
    let mut pending: Vec<Round> = Vec::new();
    let mut flushed_at = Instant::now();
    // Stacks known not to run, whose state is already forgotten.
    let mut known_idle: HashSet<String> = HashSet::new();
    let mut reread_at = Instant::now();
    let mut pruned_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        while let Some(ended) = tasks.try_join_next_with_id() {
            let id = match ended {
                Ok((id, Done { round, containers })) => {
                    let stack = round.stack.clone();
                    if let Some((seen, runs)) = containers {
                        restarts.insert(stack.clone(), seen);
                        if runs {
                            running.insert(stack.clone());
                        } else if running.remove(&stack) || !known_idle.contains(&stack) {
                            // Stopped: its state goes, with what was still to be written.
                            pending.retain(|waiting| waiting.stack != stack);
                            if let Err(error) = series::forget_state(&store, &stack).await {
                                tracing::warn!(error = %error, cause = ?error, stack, "could not record health");
                            }
                        }
                        if runs {
                            known_idle.remove(&stack);
                        } else {
                            known_idle.insert(stack.clone());
                        }
                    }
                    // A probe's answer that comes after its stack stopped is not kept.
                    if running.contains(&stack) && !round.findings.is_empty() {
                        pending.push(round);
                    }
                    id
                }
                Err(error) => {
                    tracing::error!(error = %error, "a health check ended abruptly");
                    error.id()
                }
            };
            if let Some(unit) = unit_of.remove(&id) {
                in_flight.remove(&unit);
            }
        }
        let now = Instant::now();
        if now.duration_since(flushed_at) >= FLUSH_EVERY && !pending.is_empty() {
            flushed_at = now;
            if let Err(error) = series::record_rounds(&store, &pending).await {
                tracing::warn!(error = %error, cause = ?error, "could not record health");
            }
            pending.clear();
        }
        if now >= reread_at {
            reread_at = now + REREAD_EVERY;
            plans = reread(&store, &plans).await;
            started.retain(|unit, _| plans.contains_key(unit_stack(unit)));
            running.retain(|stack| plans.contains_key(stack));
        }
        if pruned_at.is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY) {
            pruned_at = Some(now);
            if let Err(error) = series::prune(&store, Utc::now()).await {
                tracing::warn!(error = %error, "could not prune old health results");
            }
        }
        for plan in plans.values() {
            let units = std::iter::once(Unit::Containers(plan.stack.clone())).chain(
                plan.targets
                    .iter()
                    .enumerate()
                    .filter(|(_, target)| matches!(target.kind, Kind::Http(..)))
                    .map(|(index, _)| Unit::Http(plan.stack.clone(), index)),
            );
            for unit in units {
                // HTTP probes of a stack that does not run wait for its containers' check.
                if matches!(unit, Unit::Http(..)) && !running.contains(&plan.stack) {
                    continue;
                }
                if in_flight.contains(&unit)
                    || started.get(&unit).is_some_and(|at| now < *at + plan.every)
                {
                    continue;
                }
                started.insert(unit.clone(), now);
                in_flight.insert(unit.clone());
                let (store, engine, client, plan, permits) = (
                    store.clone(),
                    engine.clone(),
                    client.clone(),
                    plan.clone(),
                    permits.clone(),
                );
                let before = restarts.get(&plan.stack).cloned().unwrap_or_default();
                let task_unit = unit.clone();
                let handle = tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    check(&store, &engine, &client, &plan, &task_unit, &before).await
                });
                unit_of.insert(handle.id(), unit);
            }
        }
    }
}

fn unit_stack(unit: &Unit) -> &str {
    match unit {
        Unit::Containers(stack) | Unit::Http(stack, _) => stack,
    }
}

/// Runs one check; the loop stores what it found.
async fn check(
    store: &Store,
    engine: &Engine,
    client: &reqwest::Client,
    plan: &Plan,
    unit: &Unit,
    restarts_before: &BTreeMap<String, i64>,
) -> Done {
    let (findings, containers) = match unit {
        Unit::Containers(_) => {
            let (findings, restarts, running) =
                check_containers(store, engine, plan, restarts_before).await;
            (findings, Some((restarts, running)))
        }
        Unit::Http(_, index) => (
            vec![check_http(client, plan, &plan.targets[*index]).await],
            None,
        ),
    };
    Done {
        round: Round {
            stack: plan.stack.clone(),
            at: Utc::now(),
            findings,
        },
        containers,
    }
}

/// Every stack's plan read again; a stack whose files cannot be read keeps its last plan
/// (and says why in the log), probes a stack no longer has are forgotten.
async fn reread(store: &Store, before: &HashMap<String, Arc<Plan>>) -> HashMap<String, Arc<Plan>> {
    let stacks = match crate::stacks::service::list(store).await {
        Ok(stacks) => stacks,
        Err(error) => {
            tracing::warn!(error = %error, "could not list the stacks to probe");
            return before.clone();
        }
    };
    let mut plans = HashMap::new();
    for stack in stacks {
        match plan_of(store, &stack.name).await {
            Ok(plan) => {
                if let Err(error) = series::keep_only(store, &plan.stack, &keys(&plan)).await {
                    tracing::warn!(error = %error, cause = ?error, stack = plan.stack, "could not record health");
                }
                plans.insert(stack.name.clone(), Arc::new(plan));
            }
            Err(reason) => {
                tracing::warn!(stack = stack.name, reason, "cannot read the stack's checks");
                if let Some(plan) = before.get(&stack.name) {
                    plans.insert(stack.name.clone(), plan.clone());
                }
            }
        }
    }
    plans
}
