//! Starting and stopping a stack on the engine the way Compose does: one network and the
//! named volumes of the project, one container per service carrying Compose's labels (so
//! `docker compose ps` sees the same stack), started in dependency order, each waiting for
//! the dependencies it asks to be healthy.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use docker_compose_types::Environment;

use super::compose::{ServiceDefinition, StackDefinition};
pub use super::container::{container_body, single_tcp_port};
use super::engine::{Engine, EngineError, HealthCheck, LogsFrom, CONFIG_HASH_LABEL};
use super::{ContainerStatus, ServiceRole, StackError};

/// How long a dependency may take to become healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(120);
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

pub(super) fn network_name(project: &str) -> String {
    format!("{project}_default")
}

pub(super) fn volume_name(project: &str, volume: &str) -> String {
    format!("{project}_{volume}")
}

fn container_name(project: &str, service: &str) -> String {
    format!("{project}-{service}-1")
}

/// Services ordered so that each comes after the ones it depends on.
pub fn dependency_order(
    definition: &StackDefinition,
) -> Result<Vec<&ServiceDefinition>, StackError> {
    let mut ordered: Vec<&ServiceDefinition> = Vec::new();
    let mut placed = HashSet::new();
    while ordered.len() < definition.services.len() {
        let ready: Vec<&ServiceDefinition> = definition
            .services
            .iter()
            .filter(|s| {
                !placed.contains(&s.name) && s.depends_on.iter().all(|d| placed.contains(d))
            })
            .collect();
        if ready.is_empty() {
            let stuck: Vec<&str> = definition
                .services
                .iter()
                .filter(|s| !placed.contains(&s.name))
                .map(|s| s.name.as_str())
                .collect();
            return Err(StackError::Compose(format!(
                "the services {} depend on each other in a circle",
                stuck.join(", ")
            )));
        }
        for service in ready {
            placed.insert(service.name.clone());
            ordered.push(service);
        }
    }
    Ok(ordered)
}

/// The networks the services are on and the named volumes, created when missing (an external
/// network must exist), and a managed edge the definition no longer has removed; what it
/// did, for the run's lines.
pub async fn prepare(
    engine: &Engine,
    definition: &StackDefinition,
    project: &str,
) -> Result<Vec<String>, StackError> {
    let mut done = ensure_networks(engine, definition, project).await?;
    for volume in &definition.volumes {
        let name = volume.engine_name(project);
        if volume.external {
            if !engine
                .volume_exists(&name)
                .await
                .map_err(StackError::from)?
            {
                return Err(StackError::Invalid(format!(
                    "the external volume {name:?} (volumes.{}) does not exist: make it first (docker volume create {name}), as Compose requires",
                    volume.key
                )));
            }
            continue;
        }
        engine
            .ensure_volume(project, &volume.key, &name)
            .await
            .map_err(StackError::from)?;
    }
    // A managed edge the definition no longer has (turned off) holds the ports the services
    // take back: it goes first.
    for container in managed_edge_left(engine, project, definition).await? {
        engine
            .stop_container(&container.id, DEFAULT_STOP_GRACE)
            .await
            .map_err(StackError::from)?;
        remove(engine, &container.id).await?;
        done.push(format!(
            "removed {}: the managed edge is off, the services publish their ports again",
            container.name
        ));
    }
    Ok(done)
}

/// The networks the services are on, created when missing (an external one must exist);
/// what it did, for the run's lines. Updates call it too: a changed definition may name a
/// network that does not exist yet.
pub async fn ensure_networks(
    engine: &Engine,
    definition: &StackDefinition,
    project: &str,
) -> Result<Vec<String>, StackError> {
    let mut done = Vec::new();
    let mut used: Vec<super::networks::ServiceNetwork> = Vec::new();
    for service in &definition.services {
        let networks = if service.networks.is_empty() {
            vec![super::networks::ServiceNetwork {
                key: super::networks::DEFAULT.into(),
                fixed_name: None,
                aliases: Vec::new(),
                ipv4_address: None,
            }]
        } else {
            service.networks.clone()
        };
        for network in networks {
            if !used.iter().any(|seen| seen.key == network.key) {
                used.push(network);
            }
        }
    }
    for network in &used {
        let name = network.engine_name(project);
        let declared = definition
            .networks
            .iter()
            .find(|declared| declared.key == network.key);
        if declared.is_some_and(|declared| declared.external_name().is_some()) {
            if !engine
                .network_exists(&name)
                .await
                .map_err(StackError::from)?
            {
                return Err(StackError::Engine(format!(
                    "network {name} is external and does not exist: create it first (docker network create {name})"
                )));
            }
        } else {
            engine
                .ensure_network(super::networks::create_request(project, network, declared))
                .await
                .map_err(StackError::from)?;
        }
        done.push(format!("network {name} ready"));
    }
    Ok(done)
}

/// The containers of a managed edge the definition no longer has: turned off, not yet
/// deployed; they hold the ports the services publish again.
pub async fn managed_edge_left(
    engine: &Engine,
    project: &str,
    definition: &StackDefinition,
) -> Result<Vec<ContainerStatus>, StackError> {
    let edge = super::managed_edge::EDGE_SERVICE;
    if definition.service(edge).is_some() {
        return Ok(Vec::new());
    }
    containers_of(engine, project, edge).await
}

/// What starting one service did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    AlreadyRunning,
    Restarted,
    Created,
}

/// Starts one service once the dependencies it asks to be healthy are: an existing container
/// of the same definition (or one Compose made) is started as it is; one Slipway made from
/// another definition is replaced, as Compose does.
#[tracing::instrument(skip_all, fields(project, service = service.name))]
pub async fn start_service(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> Result<Started, StackError> {
    for dependency in &service.depends_on {
        match service.dependency(dependency).condition.as_str() {
            "service_healthy" => wait_healthy(engine, project, dependency).await?,
            "service_completed_successfully" => {
                wait_job(engine, project, dependency, JOB_WITHIN).await?
            }
            _ => {}
        }
    }
    let mut body = container_body(project, service, compose_dir)?;
    let hash = config_hash(engine, &body).await;
    stamp(&mut body, service, &hash);
    let existing = containers_of(engine, project, &service.name).await?;
    let (id, outcome) = match existing.first() {
        Some(container) if container.config_hash == hash || container.config_hash.is_empty() => {
            if container.state == "running" {
                return Ok(Started::AlreadyRunning);
            }
            (container.id.clone(), Started::Restarted)
        }
        stale => {
            if let Some(container) = stale {
                recreate_from(engine, service, container, &mut body).await?;
            }
            let name = service
                .compose
                .container_name
                .clone()
                .unwrap_or_else(|| container_name(project, &service.name));
            let id = create_on_networks(engine, project, service, &name, body)
                .await
                .map_err(|error| explain(service, error))?;
            (id, Started::Created)
        }
    };
    engine
        .start_container(&id)
        .await
        .map_err(|error| explain(service, error))?;
    Ok(outcome)
}

/// Creates a container of the service on its first network and joins it to the others, as
/// Compose does; a container that cannot join them all is removed again.
async fn create_on_networks(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    name: &str,
    body: ContainerCreateBody,
) -> Result<String, EngineError> {
    let one_off = body
        .labels
        .as_ref()
        .and_then(|labels| labels.get("com.docker.compose.oneoff"))
        .is_some_and(|value| value == "True");
    let id = engine.create_container(name, body).await?;
    for network in super::networks::others(service) {
        let mut endpoint = network.endpoint(&service.name);
        // As `docker compose run` does: a one-off does not answer to the service's names.
        if one_off {
            endpoint.aliases = None;
            endpoint.ipam_config = None;
        }
        if let Err(error) = engine
            .connect_network(&network.engine_name(project), &id, endpoint)
            .await
        {
            let _ = engine.remove_container(&id).await;
            return Err(error);
        }
    }
    Ok(id)
}

/// Makes way for a new container of the service as Compose does: the old one stops with its
/// stop signal and grace period (a database shuts down cleanly), and its anonymous volumes —
/// an image's `VOLUME`, the data of a database whose file names no volume — are mounted in the
/// new one instead of being deleted with it.
async fn recreate_from(
    engine: &Engine,
    service: &ServiceDefinition,
    old: &ContainerStatus,
    body: &mut ContainerCreateBody,
) -> Result<(), StackError> {
    engine
        .stop_container(&old.id, stop_grace(service))
        .await
        .map_err(StackError::from)?;
    let carried = engine
        .anonymous_volumes(&old.id)
        .await
        .map_err(StackError::from)?;
    let host = body.host_config.get_or_insert_with(Default::default);
    let binds = host.binds.get_or_insert_with(Vec::new);
    for (volume, destination) in carried {
        let mounted = binds
            .iter()
            .any(|bind| bind.split(':').nth(1) == Some(destination.as_str()));
        if !mounted {
            binds.push(format!("{volume}:{destination}"));
        }
    }
    engine
        .remove_container_keeping_volumes(&old.id)
        .await
        .map_err(StackError::from)
}

/// How long one image build may take, from sending the context to the last instruction.
pub const BUILD_WITHIN: Duration = Duration::from_secs(15 * 60);

/// Builds the service's image from its build context and yields the builder's output; the
/// image is tagged with the name its containers run ([`ServiceDefinition::image_name`]).
pub async fn build<'a>(
    engine: &'a Engine,
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> Result<impl futures::Stream<Item = Result<String, StackError>> + 'a, StackError> {
    let spec = service.build.clone().ok_or_else(|| {
        StackError::Compose(format!("service {} has no build context", service.name))
    })?;
    let context = compose_dir.join(&spec.context);
    let archive = {
        let context = context.clone();
        let dockerfile = spec.dockerfile.clone();
        tokio::task::spawn_blocking(move || context_archive(&context, &dockerfile))
            .await
            .map_err(|error| StackError::Engine(format!("archiving the build context: {error}")))?
    }
    .map_err(|error| {
        StackError::Compose(format!(
            "service {}: build context {} ({}) cannot be read: {error}",
            service.name,
            spec.context,
            context.display()
        ))
    })?;
    use futures::StreamExt;
    Ok(engine
        .build_image(
            &service.image_name(project),
            &spec,
            project,
            &service.name,
            archive,
        )
        .map(|line| line.map_err(StackError::from)))
}

/// A build context as the tar archive the engine's build API takes, without what its
/// `.dockerignore` excludes (as `docker build` does: patterns are relative to the context,
/// `!` makes exceptions). The Dockerfile and `.dockerignore` are always sent.
fn context_archive(dir: &Path, dockerfile: &str) -> std::io::Result<Vec<u8>> {
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such folder",
        ));
    }
    let ignored = dockerignore(dir)?;
    let always = [Path::new(dockerfile), Path::new(".dockerignore")];
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    for entry in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let is_dir = entry.file_type().is_dir();
        if ignored
            .matched_path_or_any_parents(relative, is_dir)
            .is_ignore()
            && !always.contains(&relative)
        {
            continue;
        }
        if is_dir {
            archive.append_dir(relative, entry.path())?;
        } else {
            archive.append_path_with_name(entry.path(), relative)?;
        }
    }
    archive.into_inner()
}

/// The context's `.dockerignore` as a matcher; every pattern is anchored at the context's
/// root, which is how Docker reads them (unlike `.gitignore`).
fn dockerignore(dir: &Path) -> std::io::Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
    let text = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (exception, pattern) = match line.strip_prefix('!') {
            Some(pattern) => ("!", pattern),
            None => ("", line),
        };
        let anchored = format!("{exception}/{}", pattern.trim_start_matches('/'));
        builder
            .add_line(None, &anchored)
            .map_err(|error| std::io::Error::other(format!(".dockerignore: {error}")))?;
    }
    builder.build().map_err(std::io::Error::other)
}

/// How long a new container may take to become healthy during an update.
const NEW_HEALTHY_WITHIN: Duration = Duration::from_secs(60);
/// How long the old container keeps its in-flight requests after the edge switched away.
const DRAIN: Duration = Duration::from_secs(1);

/// A container made to replace a running one: beside it (behind an edge) or in its place.
#[derive(Clone, Debug)]
pub struct Replacement {
    pub old: ContainerStatus,
    pub new_id: String,
    pub new_name: String,
    /// The old container is stopped before the new one starts (no edge in front): putting
    /// it back stops the new one first, for the ports they share.
    pub in_place: bool,
    /// The old container gave its name (`container_name`) to the new one: putting it back
    /// gives the name back.
    pub renamed: bool,
}

/// Starts a container of the service's current definition beside the running one, or says
/// there is nothing to do (the running container is already current).
pub async fn start_beside(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> Result<Option<Replacement>, StackError> {
    let Some(replacement) = create_replacement(engine, project, service, compose_dir).await? else {
        return Ok(None);
    };
    engine
        .start_container(&replacement.new_id)
        .await
        .map_err(|error| explain(service, error))?;
    Ok(Some(replacement))
}

/// Creates (does not start) a container of the service's current definition under the next
/// container number, or says there is nothing to do (the running container is current).
/// Made before anything stops, so a missing image or a refused definition changes nothing.
pub async fn create_replacement(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> Result<Option<Replacement>, StackError> {
    let mut body = container_body(project, service, compose_dir)?;
    let hash = config_hash(engine, &body).await;
    let existing = containers_of(engine, project, &service.name).await?;
    let Some(old) = existing.iter().find(|c| c.state == "running").cloned() else {
        return Err(StackError::Engine(format!(
            "service {} is not running; deploy or start the stack first",
            service.name
        )));
    };
    if old.config_hash == hash {
        return Ok(None);
    }
    let number = existing
        .iter()
        .filter_map(|c| c.name.rsplit('-').next()?.parse::<usize>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    stamp(&mut body, service, &hash);
    if let Some(labels) = body.labels.as_mut() {
        labels.insert(
            "com.docker.compose.container-number".into(),
            number.to_string(),
        );
    }
    // A `container_name` is the new container's too: the old one gives it up first (and
    // takes it back if the new one cannot be made).
    let (new_name, renamed) = match &service.compose.container_name {
        Some(fixed) => {
            engine
                .rename_container(&old.id, &format!("{fixed}-replaced-{number}"))
                .await
                .map_err(StackError::from)?;
            (fixed.clone(), true)
        }
        None => (format!("{project}-{}-{number}", service.name), false),
    };
    let new_id = match create_on_networks(engine, project, service, &new_name, body).await {
        Ok(id) => id,
        Err(error) => {
            let mut refused = explain(service, error);
            if renamed {
                if let Err(rename) = engine.rename_container(&old.id, &old.name).await {
                    refused = StackError::Engine(format!(
                        "{refused}; {} is still named {}-replaced-{number}: {rename}",
                        old.name,
                        service
                            .compose
                            .container_name
                            .as_deref()
                            .unwrap_or_default()
                    ));
                }
            }
            return Err(refused);
        }
    };
    Ok(Some(Replacement {
        old,
        new_id,
        new_name,
        in_place: false,
        renamed,
    }))
}

/// Stops the running container and starts its replacement in its place (the ports they
/// publish cannot be held by both).
pub async fn swap_in_place(
    engine: &Engine,
    service: &ServiceDefinition,
    replacement: &Replacement,
) -> Result<(), StackError> {
    stop_replaced(engine, service, &replacement.old).await?;
    // The engine may release the old container's ports a moment after it stopped.
    let mut attempts = 0;
    loop {
        match engine.start_container(&replacement.new_id).await {
            Ok(()) => return Ok(()),
            Err(error) if attempts < 8 && port_taken(&error) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => return Err(explain(service, error)),
        }
    }
}

/// Whether the engine refused because a published port is held by something else.
fn port_taken(error: &EngineError) -> bool {
    let text = error.to_string().to_lowercase();
    text.contains("port is already allocated") || text.contains("address already in use")
}

/// Waits until the new container is healthy; `Err` with the last health seen when it is not
/// within the bound.
pub async fn wait_new_healthy(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    new_id: &str,
) -> Result<Duration, StackError> {
    let within = service.healthy_within.unwrap_or(NEW_HEALTHY_WITHIN);
    let service = service.name.as_str();
    let started = tokio::time::Instant::now();
    let mut checks = HealthChecksNow::default();
    loop {
        let containers = containers_of(engine, project, service).await?;
        let new = containers.iter().find(|c| new_id.starts_with(&c.id));
        let health = new.map_or("gone", |c| c.health.as_str()).to_owned();
        if matches!(health.as_str(), "healthy" | "none")
            && new.is_some_and(|c| c.state == "running")
        {
            return Ok(started.elapsed());
        }
        if let Some(new) = new {
            if checks.pass(engine, new).await {
                return Ok(started.elapsed());
            }
        }
        let gave_up = health == "unhealthy" || new.is_some_and(|c| c.state == "exited");
        if started.elapsed() >= within || gave_up {
            return Err(StackError::Engine(format!(
                "the new {service} container did not become healthy within {} s (last seen: {health})",
                within.as_secs()
            )));
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// The name of the service's running container.
pub async fn running_container(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<String, StackError> {
    containers_of(engine, project, service)
        .await?
        .into_iter()
        .find(|c| c.state == "running")
        .map(|c| c.name)
        .ok_or_else(|| {
            StackError::Engine(format!(
                "service {service} is not running; deploy or start the stack first"
            ))
        })
}

/// Runs the edge's switch command so that `service` goes to `container`.
pub async fn switch_edge(
    engine: &Engine,
    project: &str,
    edge: &ServiceDefinition,
    service: &ServiceDefinition,
    container: &str,
) -> Result<String, StackError> {
    let (Some(command), Some(upstream)) = (edge.switch.as_ref(), service.upstream.as_ref()) else {
        return Err(StackError::Compose(format!(
            "services.{}.x-slipway.switch and services.{}.x-slipway.upstream are needed to update without downtime",
            edge.name, service.name
        )));
    };
    let upstream = upstream.replace("{container}", container);
    let command: Vec<String> = command
        .iter()
        .map(|part| {
            part.replace("{service}", &service.name)
                .replace("{upstream}", &upstream)
        })
        .collect();
    let edge_container = containers_of(engine, project, &edge.name)
        .await?
        .into_iter()
        .find(|c| c.state == "running")
        .ok_or_else(|| {
            StackError::Engine(format!(
                "the edge {} is not running; deploy or start the stack first",
                edge.name
            ))
        })?;
    let (code, output) = engine
        .exec_status(&edge_container.id, command)
        .await
        .map_err(StackError::from)?;
    if code != 0 {
        return Err(StackError::Engine(format!(
            "the edge's switch command exited with code {code}: {}",
            output.trim()
        )));
    }
    Ok(output.trim().to_owned())
}

/// Lets the old container finish the requests it has after the edge switched away.
pub async fn drain() {
    tokio::time::sleep(DRAIN).await;
}

/// Stops the replaced container (after [`drain`]) and keeps it, so the update can still
/// put it back until it has held; [`remove_replaced`] removes it then.
pub async fn stop_replaced(
    engine: &Engine,
    service: &ServiceDefinition,
    old: &ContainerStatus,
) -> Result<(), StackError> {
    engine
        .stop_container(&old.id, stop_grace(service))
        .await
        .map_err(StackError::from)
}

/// Removes a container an update is done with: a replaced one once the update has held, or a
/// new one that did not make it.
pub async fn remove(engine: &Engine, id: &str) -> Result<(), StackError> {
    engine.remove_container(id).await.map_err(StackError::from)
}

/// Puts a replaced container back: the new one stopped first when it took the old one's
/// place, the old started again, healthy, the edge switched back to it when it is behind
/// one, and the new container removed. Returns what was done, for the run's lines.
pub async fn reinstate(
    engine: &Engine,
    project: &str,
    edge: Option<&ServiceDefinition>,
    service: &ServiceDefinition,
    replacement: &Replacement,
) -> Result<String, StackError> {
    let old = &replacement.old;
    // In place, the new container holds the ports: it goes first — removed by force when it
    // does not stop — and whatever happens to it, the old one is started again.
    if replacement.in_place
        && engine
            .stop_container(&replacement.new_id, stop_grace(service))
            .await
            .is_err()
    {
        let _ = remove(engine, &replacement.new_id).await;
    }
    let running = containers_of(engine, project, &service.name)
        .await
        .is_ok_and(|containers| {
            containers
                .iter()
                .any(|c| old.id.starts_with(&c.id) && c.state == "running")
        });
    if !running {
        engine
            .start_container(&old.id)
            .await
            .map_err(StackError::from)?;
    }
    wait_new_healthy(engine, project, service, &old.id).await?;
    if !replacement.in_place {
        let edge = edge.ok_or_else(|| {
            StackError::Compose("the stack has no service with role edge to switch back".into())
        })?;
        switch_edge(engine, project, edge, service, &old.name).await?;
    }
    // Already gone when it would not stop above.
    match engine.remove_container(&replacement.new_id).await {
        Ok(()) | Err(EngineError::Missing(_)) => {}
        Err(error) => return Err(error.into()),
    }
    if replacement.renamed {
        engine
            .rename_container(&old.id, &old.name)
            .await
            .map_err(StackError::from)?;
    }
    Ok(format!(
        "{}: {} is back in service, {} removed",
        service.name, old.name, replacement.new_name
    ))
}

/// Runs one SQL statement with `psql` inside a PostgreSQL container, as the container's own
/// user (`POSTGRES_USER`/`POSTGRES_PASSWORD`/`POSTGRES_DB` from its environment); `sql` must not
/// contain a single quote.
pub async fn psql(engine: &Engine, container_id: &str, sql: &str) -> Result<String, String> {
    if sql.contains('\'') {
        return Err("the query cannot contain a single quote".into());
    }
    let script = format!(
        "PGPASSWORD=\"$POSTGRES_PASSWORD\" psql -h 127.0.0.1 -U \"${{POSTGRES_USER:-postgres}}\" \
         -d \"${{POSTGRES_DB:-${{POSTGRES_USER:-postgres}}}}\" -tA -F ' ' -c '{sql}'"
    );
    let (code, said) = engine
        .exec_status(container_id, vec!["sh".into(), "-c".into(), script])
        .await
        .map_err(|error| error.to_string())?;
    if code != 0 {
        // psql's complaint, not its output: a failed query has no answer.
        let reason = said.lines().next().unwrap_or("no reason given").trim();
        return Err(format!("psql exited with code {code}: {reason}"));
    }
    Ok(said)
}

/// The newest record of the stack's migrations table in the database `container` (the live
/// one or a drill's); `None` when the stack names no migrations table.
pub async fn migration_head(
    engine: &Engine,
    container: &str,
    definition: &StackDefinition,
) -> Option<Result<String, String>> {
    let table = definition.migrations_table()?;
    let sql = format!("SELECT migration_name FROM {table} ORDER BY finished_at DESC LIMIT 1");
    Some(
        psql(engine, container, &sql)
            .await
            .map(|head| head.trim().to_owned()),
    )
}

/// How long a one-off command (a migration) may run.
pub const ONE_OFF_WITHIN: Duration = Duration::from_secs(600);

/// Runs `command` once in a throw-away container of `service` (its image, environment and
/// network, no ports), hands each line it writes to `on_line` as it comes, and returns its exit code once it
/// has stopped; the container is removed afterwards. `on_line` failing stops the run.
pub async fn run_once<Said>(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
    command: &[String],
    on_line: impl FnMut(String) -> Said,
) -> Result<i64, StackError>
where
    Said: std::future::Future<Output = Result<(), String>>,
{
    let what = command.join(" ");
    let adjust = |body: &mut ContainerCreateBody| body.cmd = Some(command.to_vec());
    let limit = (what.as_str(), ONE_OFF_WITHIN);
    run_adjusted(
        engine,
        project,
        service,
        compose_dir,
        limit,
        adjust,
        on_line,
    )
    .await
}

/// [`run_once`] with the container made as `adjust` says (another entrypoint, other mounts);
/// `limit` names the command in errors and says how long it may run.
pub async fn run_adjusted<Said>(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
    (what, within): (&str, Duration),
    adjust: impl FnOnce(&mut ContainerCreateBody),
    mut on_line: impl FnMut(String) -> Said,
) -> Result<i64, StackError>
where
    Said: std::future::Future<Output = Result<(), String>>,
{
    let mut body = container_body(project, service, compose_dir)?;
    body.healthcheck = None;
    if let Some(labels) = body.labels.as_mut() {
        labels.insert("com.docker.compose.oneoff".into(), "True".into());
    }
    if let Some(host) = body.host_config.as_mut() {
        host.port_bindings = None;
        host.restart_policy = None;
    }
    body.exposed_ports = None;
    // As `docker compose run` does: a one-off does not answer to the service's name.
    if let Some(endpoints) = body
        .networking_config
        .as_mut()
        .and_then(|config| config.endpoints_config.as_mut())
    {
        for endpoint in endpoints.values_mut() {
            endpoint.aliases = None;
            // The service's fixed address is its running container's.
            endpoint.ipam_config = None;
        }
    }
    adjust(&mut body);
    let name = format!(
        "{project}-{}-run-{}",
        service.name,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let id = create_on_networks(engine, project, service, &name, body)
        .await
        .map_err(|error| explain(service, error))?;
    let outcome = async {
        use futures::StreamExt;
        engine
            .start_container(&id)
            .await
            .map_err(StackError::from)?;
        // The log stream ends when the container stops.
        let following = async {
            let mut lines = std::pin::pin!(engine.follow_logs(&id, &service.name, LogsFrom::Start));
            while let Some(line) = lines.next().await {
                let line = line.map_err(StackError::from)?;
                on_line(line.text).await.map_err(StackError::Engine)?;
            }
            Ok::<(), StackError>(())
        };
        tokio::time::timeout(within, following)
            .await
            .map_err(|_| {
                StackError::Engine(format!(
                    "{what} did not finish within {} minutes",
                    within.as_secs() / 60
                ))
            })??;
        engine
            .wait_exit(&id, Duration::from_secs(30))
            .await
            .map_err(StackError::from)
    }
    .await;
    let _ = engine.remove_container(&id).await;
    outcome
}

/// Waits until the service's container reports healthy (or, without a healthcheck, runs).
pub async fn wait_ready(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
) -> Result<(), StackError> {
    if service.role == ServiceRole::Job {
        let within = service.healthy_within.unwrap_or(JOB_WITHIN);
        wait_job(engine, project, &service.name, within).await
    } else if service.has_healthcheck {
        wait_healthy(engine, project, &service.name).await
    } else {
        let containers = containers_of(engine, project, &service.name).await?;
        if containers.iter().any(|c| c.state == "running") {
            Ok(())
        } else {
            Err(StackError::Engine(format!(
                "service {} is not running",
                service.name
            )))
        }
    }
}

/// How long a job may run before a run gives up on it, unless `healthy_within` says.
const JOB_WITHIN: Duration = Duration::from_secs(10 * 60);

/// Waits for a one-shot job (`role: job`) to finish: it succeeds when it exits 0.
async fn wait_job(
    engine: &Engine,
    project: &str,
    name: &str,
    within: Duration,
) -> Result<(), StackError> {
    let containers = containers_of(engine, project, name).await?;
    // The newest container is this run's.
    let job = containers
        .iter()
        .max_by_key(|c| c.created_unix)
        .ok_or_else(|| StackError::Engine(format!("job {name} has no container")))?;
    let code = engine
        .wait_exit(&job.id, within)
        .await
        .map_err(|error| match error {
            super::engine::EngineError::Timeout { .. } => StackError::Engine(format!(
                "job {name} did not finish within {} s",
                within.as_secs()
            )),
            other => other.into(),
        })?;
    if code == 0 {
        Ok(())
    } else {
        Err(StackError::Engine(format!(
            "job {name} exited with code {code}; its logs say why"
        )))
    }
}

/// Stops and starts the service's running containers as they are, as `docker compose restart`
/// does; whether one was running.
pub async fn restart_service(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
) -> Result<bool, StackError> {
    let mut restarted = false;
    for container in containers_of(engine, project, &service.name).await? {
        if container.state != "running" {
            continue;
        }
        engine
            .stop_container(&container.id, stop_grace(service))
            .await
            .map_err(StackError::from)?;
        engine
            .start_container(&container.id)
            .await
            .map_err(StackError::from)?;
        restarted = true;
    }
    Ok(restarted)
}

/// The service's `stop_grace_period`, or Compose's default of 10 s.
fn stop_grace(service: &ServiceDefinition) -> Duration {
    service
        .compose
        .stop_grace_period
        .as_deref()
        .and_then(|text| humantime::parse_duration(text).ok())
        .unwrap_or(DEFAULT_STOP_GRACE)
}

/// Stops one service's running containers; returns how many it stopped.
#[tracing::instrument(skip_all, fields(project, service = service.name))]
pub async fn stop_service(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
) -> Result<usize, StackError> {
    let grace = stop_grace(service);
    let mut stopped = 0;
    for container in containers_of(engine, project, &service.name).await? {
        if container.state == "running" || container.state == "restarting" {
            engine
                .stop_container(&container.id, grace)
                .await
                .map_err(StackError::from)?;
            stopped += 1;
        }
    }
    Ok(stopped)
}

async fn containers_of(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<Vec<ContainerStatus>, StackError> {
    engine
        .service_containers(project, service)
        .await
        .map_err(StackError::from)
}

/// A starting container's own health check, run by Slipway at once instead of waiting for
/// the engine's first one, which comes only an `interval` after the start (2 s in the sample
/// portal; a deploy waits for its data services, then for the rest). The engine marks a
/// container healthy on its first passing check, so a pass here is what it would say next.
/// One check at a time per container, [`OWN_CHECK_EVERY`] apart, in the background (the wait
/// keeps reading the engine meanwhile); after a check that outlived its time limit (the
/// engine cannot stop an exec), none more: the engine's own checks decide.
#[derive(Default)]
struct HealthChecksNow {
    containers: HashMap<String, OwnCheck>,
}

#[derive(Default)]
struct OwnCheck {
    /// The container's check, once read.
    check: Option<HealthCheck>,
    running: Option<tokio::task::JoinHandle<CheckOutcome>>,
    last_started: Option<tokio::time::Instant>,
    given_up: bool,
}

enum CheckOutcome {
    Passed,
    Failed,
    TimedOut,
}

/// The least time between two of Slipway's own checks of one container.
const OWN_CHECK_EVERY: Duration = Duration::from_millis(500);

impl HealthChecksNow {
    /// Whether the container's check, run by Slipway, has passed.
    async fn pass(&mut self, engine: &Engine, container: &ContainerStatus) -> bool {
        if container.state != "running" || container.health != "starting" {
            return false;
        }
        let own = self.containers.entry(container.id.clone()).or_default();
        if own.given_up {
            return false;
        }
        if let Some(running) = own.running.take_if(|running| running.is_finished()) {
            match running.await {
                Ok(CheckOutcome::Passed) => return true,
                Ok(CheckOutcome::TimedOut) => {
                    own.given_up = true;
                    return false;
                }
                Ok(CheckOutcome::Failed) | Err(_) => {}
            }
        }
        if own.running.is_some()
            || own
                .last_started
                .is_some_and(|started| started.elapsed() < OWN_CHECK_EVERY)
        {
            return false;
        }
        if own.check.is_none() {
            match engine.health_check(&container.id).await {
                Ok(Some(check)) => own.check = Some(check),
                Ok(None) => {
                    own.given_up = true;
                    return false;
                }
                Err(error) => {
                    tracing::debug!(error = %error, container = %container.name, "could not read the health check");
                    return false;
                }
            }
        }
        let Some(check) = own.check.clone() else {
            return false;
        };
        let (engine, id) = (engine.clone(), container.id.clone());
        own.last_started = Some(tokio::time::Instant::now());
        own.running = Some(tokio::spawn(async move {
            match tokio::time::timeout(check.timeout, engine.exec_exit_status(&id, check.command))
                .await
            {
                Ok(Ok(0)) => CheckOutcome::Passed,
                Ok(_) => CheckOutcome::Failed,
                Err(_) => CheckOutcome::TimedOut,
            }
        }));
        false
    }
}

impl Drop for HealthChecksNow {
    fn drop(&mut self) {
        for own in self.containers.values() {
            if let Some(running) = &own.running {
                running.abort();
            }
        }
    }
}

/// How often a container's health is read while a run waits for it: the engine's answer is
/// the run's critical path (a deploy waits for each service in turn).
const HEALTH_POLL: Duration = Duration::from_millis(100);

async fn wait_healthy(engine: &Engine, project: &str, service: &str) -> Result<(), StackError> {
    let deadline = tokio::time::Instant::now() + HEALTHY_WITHIN;
    let mut checks = HealthChecksNow::default();
    loop {
        let containers = containers_of(engine, project, service).await?;
        if containers
            .iter()
            .any(|c| c.state == "running" && c.health == "healthy")
        {
            return Ok(());
        }
        for container in &containers {
            if checks.pass(engine, container).await {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let health = containers
                .first()
                .map_or("no container", |c| c.health.as_str())
                .to_owned();
            return Err(StackError::Engine(format!(
                "service {service} did not become healthy within {} s (last seen: {health})",
                HEALTHY_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// Starts the service's stopped container as it is, never making a new one; whether one was
/// started.
pub async fn start_as_it_is(
    engine: &Engine,
    project: &str,
    service: &str,
) -> Result<bool, StackError> {
    let existing = containers_of(engine, project, service).await?;
    match existing.first() {
        Some(container) if container.state != "running" => {
            engine
                .start_container(&container.id)
                .await
                .map_err(StackError::from)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A service's `environment:` as the engine takes it: `NAME=value`, or a bare `NAME`.
pub fn environment_lines(service: &docker_compose_types::Service) -> Vec<String> {
    match &service.environment {
        Environment::List(items) => items.clone(),
        Environment::KvPair(map) => map
            .iter()
            .map(|(key, value)| match value {
                Some(value) => format!("{key}={value}"),
                None => key.clone(),
            })
            .collect(),
    }
}

/// Whether the service's running container was made from exactly this definition (one
/// Compose made, which carries no digest, counts as made from it, as [`start_service`] has it).
pub async fn runs_as_defined(
    engine: &Engine,
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> Result<bool, StackError> {
    let body = container_body(project, service, compose_dir)?;
    let hash = config_hash(engine, &body).await;
    let existing = containers_of(engine, project, &service.name).await?;
    Ok(existing.iter().any(|container| {
        container.state == "running"
            && (container.config_hash == hash || container.config_hash.is_empty())
    }))
}

/// The labels written once the definition's digest is taken: the digest itself (Slipway's and
/// Compose's own label) and the compose file the container comes from, as Compose writes it.
fn stamp(body: &mut ContainerCreateBody, service: &ServiceDefinition, hash: &str) {
    if let Some(labels) = body.labels.as_mut() {
        labels.insert(CONFIG_HASH_LABEL.into(), hash.to_owned());
        labels.insert("com.docker.compose.config-hash".into(), hash.to_owned());
        labels.insert(
            "com.docker.compose.project.config_files".into(),
            service.compose_file.display().to_string(),
        );
    }
}

/// A digest of everything a container is created from, the image's id included, so a tag
/// that now names another image (a rebuild) means a new container. serde_json sorts object
/// keys, so the same definition always gives the same digest.
async fn config_hash(engine: &Engine, body: &ContainerCreateBody) -> String {
    let image_id = match body.image.as_deref() {
        // A missing image is reported when the container is created.
        Some(image) => engine.image_id(image).await.unwrap_or_default(),
        None => String::new(),
    };
    definition_digest(body, &image_id)
}

fn definition_digest(body: &ContainerCreateBody, image_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let canonical = serde_json::to_value(body)
        .map(|value| value.to_string())
        .unwrap_or_default();
    let mut digest = Sha256::new();
    digest.update(canonical.as_bytes());
    digest.update(image_id.as_bytes());
    hex::encode(digest.finalize())[..16].to_owned()
}

/// Turns an engine refusal into a sentence about the service.
fn explain(service: &ServiceDefinition, error: EngineError) -> StackError {
    let text = error.to_string();
    let lowered = text.to_lowercase();
    let message = if port_taken(&error) {
        format!(
            "service {} cannot publish its port ({}): it is already in use; stop what holds it or change the port in the compose file",
            service.name,
            service.ports.join(", ")
        )
    } else if matches!(error, EngineError::Missing(_))
        && lowered.contains("image")
        && service.name == super::managed_edge::EDGE_SERVICE
    {
        format!(
            "the managed edge needs the image {}, which this engine does not have: run scripts/build-edge in Slipway's folder",
            super::managed_edge::image()
        )
    } else if matches!(error, EngineError::Missing(_)) && lowered.contains("image") {
        format!(
            "service {} needs the image {}, which this engine does not have; build or load it first",
            service.name,
            service.image.as_deref().unwrap_or("(none)")
        )
    } else {
        format!("service {}: {text}", service.name)
    };
    StackError::Engine(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal() -> StackDefinition {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/portal");
        super::super::compose::load(
            &root.join("docker-compose.yml"),
            Some(&root.join("portal.env")),
        )
        .unwrap()
    }

    #[test]
    fn a_role_inferred_from_the_image_is_not_written_on_the_container() {
        // The label is part of the definition's digest: a container made before roles were
        // inferred (labelled `app`) must not look changed to the next deploy.
        let definition = super::super::compose::parse(
            Path::new("docker-compose.yml"),
            "services:\n  db:\n    image: postgres:16\n  cache:\n    image: redis\n    x-slipway: { role: data }\n",
            &compose_lens::interpolation::MapEnvironment::new(),
        )
        .unwrap();
        let labelled = |name: &str| {
            let service = definition.service(name).unwrap();
            let body = container_body("p", service, Path::new("/")).unwrap();
            (service.role, body.labels.unwrap()["slipway.role"].clone())
        };
        assert_eq!(labelled("db"), (ServiceRole::Data, "app".to_owned()));
        assert_eq!(labelled("cache"), (ServiceRole::Data, "data".to_owned()));
    }

    #[test]
    fn dependencies_come_first() {
        let definition = portal();
        let order: Vec<_> = dependency_order(&definition)
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(order, ["database", "cache", "frontend", "backend", "edge"]);
    }

    #[test]
    fn the_same_definition_gives_the_same_digest() {
        let definition = portal();
        let backend = definition.service("backend").unwrap();
        let body = || container_body("shop", backend, Path::new("/srv")).unwrap();
        let first = definition_digest(&body(), "sha256:1");
        assert_eq!(first, definition_digest(&body(), "sha256:1"));
        let frontend = container_body(
            "shop",
            definition.service("frontend").unwrap(),
            Path::new("/srv"),
        )
        .unwrap();
        assert_ne!(first, definition_digest(&frontend, "sha256:1"));
        // The same tag rebuilt into another image.
        assert_ne!(first, definition_digest(&body(), "sha256:2"));
    }

    #[test]
    fn the_build_context_leaves_out_what_dockerignore_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            "Dockerfile",
            "app.rs",
            ".env",
            "logs/a.log",
            "logs/keep.txt",
            "node_modules/x/y.js",
            "src/node_modules/z.js",
        ];
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        std::fs::write(
            dir.path().join(".dockerignore"),
            "# what the image never needs\n.env\nlogs/\n!logs/keep.txt\nnode_modules\nDockerfile\n",
        )
        .unwrap();
        let archive = context_archive(dir.path(), "Dockerfile").unwrap();
        let mut names: Vec<String> = tar::Archive::new(&archive[..])
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .filter(|entry| entry.header().entry_type().is_file())
            .map(|entry| entry.path().unwrap().display().to_string())
            .collect();
        names.sort();
        // Patterns are anchored at the context (src/node_modules stays); an exception brings a
        // file back; the Dockerfile and .dockerignore are always sent.
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "app.rs",
                "logs/keep.txt",
                "src/node_modules/z.js"
            ]
        );
    }

    #[test]
    fn a_circle_of_dependencies_is_refused() {
        let text =
            "services:\n  a: {image: a, depends_on: [b]}\n  b: {image: b, depends_on: [a]}\n";
        let definition =
            super::super::compose::parse(Path::new("c.yml"), text, &Default::default()).unwrap();
        let error = dependency_order(&definition).unwrap_err().to_string();
        assert!(
            error.contains("a, b") && error.contains("circle"),
            "{error}"
        );
    }

    #[test]
    fn the_edge_container_publishes_on_loopback_with_compose_labels() {
        let definition = portal();
        let edge = definition.service("edge").unwrap();
        let body = container_body("shop", edge, Path::new("/srv/shop")).unwrap();
        let bindings = body
            .host_config
            .as_ref()
            .unwrap()
            .port_bindings
            .as_ref()
            .unwrap();
        let binding = &bindings["8080/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("18080"));
        let labels = body.labels.unwrap();
        use super::super::engine::{PROJECT_LABEL, SERVICE_LABEL};
        assert_eq!(labels[PROJECT_LABEL], "shop");
        assert_eq!(labels[SERVICE_LABEL], "edge");
        let database = container_body(
            "shop",
            definition.service("database").unwrap(),
            Path::new("/srv/shop"),
        )
        .unwrap();
        assert_eq!(
            database.host_config.unwrap().binds.unwrap(),
            ["shop_database:/var/lib/postgresql/data"]
        );
        assert_eq!(database.stop_signal.as_deref(), Some("SIGINT"));
    }
}
