//! Server half of stacks: the `stacks` table, adding a stack (its compose file checked
//! first), and a stack's status from its compose file and the engine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::store::{now_utc, Store};

use super::compose::{self, StackDefinition};
use super::engine::Engine;
use super::lifecycle;
use super::secrets;
use super::{
    Diagnostics, DiskSpace, LogLine, ServiceStatus, StackError, StackStatus, StackSummary,
};

/// Checks a stack or project name: 1–64 of `a-z 0-9 - _`, as Compose accepts.
pub fn check_name(what: &str, name: &str) -> Result<(), StackError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(StackError::Invalid(format!(
            "{what} {name:?} must be 1–64 lower-case letters, digits, dashes or underscores"
        )))
    }
}

fn absolute(path: &Path) -> Result<PathBuf, StackError> {
    std::fs::canonicalize(path)
        .map_err(|error| StackError::Compose(format!("cannot read {}: {error}", path.display())))
}

/// Adds a stack after reading its compose file through, so a file Slipway cannot use is
/// refused with the reason; used by the Admin page and `slipway stack add`.
pub async fn add(
    store: &Store,
    actor: &Actor,
    name: &str,
    compose_file: &Path,
    env_file: Option<&Path>,
    project: Option<&str>,
) -> Result<StackSummary, StackError> {
    check_name("the stack name", name)?;
    let project = project
        .filter(|p| !p.trim().is_empty())
        .unwrap_or(name)
        .to_owned();
    check_name("the project name", &project)?;
    let compose_file = absolute(compose_file)?;
    let env_file = env_file.map(absolute).transpose()?;
    let definition = compose::load(&compose_file, env_file.as_deref())
        .map_err(|error| StackError::Compose(error.to_string()))?;
    let stack = StackSummary {
        name: name.to_owned(),
        project,
        compose_file: compose_file.display().to_string(),
        env_file: env_file.map(|path| path.display().to_string()),
        managed_edge: false,
        profiles: Vec::new(),
    };
    let now = now_utc();
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "INSERT INTO stacks (id, name, compose_file, env_file, project, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&stack.name)
    .bind(&stack.compose_file)
    .bind(stack.env_file.clone().unwrap_or_default())
    .bind(&stack.project)
    .bind(&now)
    .bind(&now)
    .execute(audited.db())
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StackError::Conflict(format!(
            "a stack named {} or with project {} exists already",
            stack.name, stack.project
        )),
        _ => StackError::from(crate::store::StoreError::from(error)),
    })?;
    let services: Vec<&str> = definition
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    audited
        .append(
            actor,
            "stack.added",
            &stack.name,
            json!({ "project": stack.project, "compose_file": stack.compose_file, "services": services }),
        )
        .await?;
    audited.commit().await?;
    Ok(stack)
}

type Row = (String, String, String, String, i64, String);

const COLUMNS: &str = "name, project, compose_file, env_file, managed_edge, profiles";

fn from_row((name, project, compose_file, env_file, managed_edge, profiles): Row) -> StackSummary {
    StackSummary {
        name,
        project,
        compose_file,
        env_file: (!env_file.is_empty()).then_some(env_file),
        managed_edge: managed_edge != 0,
        profiles: profiles.split_whitespace().map(str::to_owned).collect(),
    }
}

pub async fn list(store: &Store) -> Result<Vec<StackSummary>, StackError> {
    let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM stacks ORDER BY name"))
        .fetch_all(store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok(rows.into_iter().map(from_row).collect())
}

pub async fn find(store: &Store, name: &str) -> Result<StackSummary, StackError> {
    let remembered = RequestStacks::of_request();
    // A page's server functions start at once: the first reads, the others wait and reuse.
    let _reading = match &remembered {
        Some(remembered) => Some(remembered.reading.clone().lock_owned().await),
        None => None,
    };
    if let Some(stack) = remembered.as_ref().and_then(|r| r.stack(name)) {
        return Ok(stack);
    }
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM stacks WHERE name = $1"))
        .bind(name)
        .fetch_optional(store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
    let stack = row
        .map(from_row)
        .ok_or_else(|| StackError::NotFound(name.to_owned()))?;
    if let Some(remembered) = remembered {
        remembered.keep(stack.clone());
    }
    Ok(stack)
}

/// The stacks one request has read, and their compose files as parsed: a stack page's
/// server functions each find the stack and read its compose file, and would each do it
/// again. The server provides a fresh one to every request it renders or answers; a change
/// of a stack's settings forgets it; tasks spawned from a request (runs) do not see it.
#[derive(Clone, Default)]
pub struct RequestStacks {
    stacks: Arc<Mutex<HashMap<String, Remembered>>>,
    /// Held while one of the request's server functions reads a stack from the store.
    reading: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Clone)]
struct Remembered {
    stack: StackSummary,
    /// The compose file read with the stack's settings; its error as said to the user.
    definition: Option<Result<StackDefinition, String>>,
}

impl RequestStacks {
    fn of_request() -> Option<Self> {
        leptos::prelude::use_context::<Self>()
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.stacks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stack(&self, name: &str) -> Option<StackSummary> {
        self.remembered().get(name).map(|r| r.stack.clone())
    }

    fn keep(&self, stack: StackSummary) {
        self.remembered().insert(
            stack.name.clone(),
            Remembered {
                stack,
                definition: None,
            },
        );
    }

    /// The stack's compose file, parsed once per request for the settings it was read with.
    fn definition(
        &self,
        stack: &StackSummary,
        read: impl FnOnce() -> Result<StackDefinition, String>,
    ) -> Result<StackDefinition, String> {
        let known = self
            .remembered()
            .get(&stack.name)
            .filter(|r| r.stack == *stack)
            .and_then(|r| r.definition.clone());
        if let Some(definition) = known {
            return definition;
        }
        let definition = read();
        if let Some(remembered) = self
            .remembered()
            .get_mut(&stack.name)
            .filter(|r| r.stack == *stack)
        {
            remembered.definition = Some(definition.clone());
        }
        definition
    }

    /// Forgets the stack after a change of its settings in this request.
    fn forget(name: &str) {
        if let Some(remembered) = Self::of_request() {
            remembered.remembered().remove(name);
        }
    }
}

/// Turns the managed edge on or off for the stack; the next deploy applies it. Refused when
/// the edge cannot go in front of the stack's compose file, which is read first.
pub async fn set_managed_edge(
    store: &Store,
    actor: &Actor,
    name: &str,
    managed: bool,
) -> Result<StackSummary, StackError> {
    let mut stack = find(store, name).await?;
    stack.managed_edge = managed;
    let definition = definition(&stack)?;
    if !managed && super::managed_edge::is_in_front(&definition) {
        return Err(StackError::Invalid(
            "the compose file asks for the managed edge (x-slipway: { edge: managed }): remove that line to turn it off".into(),
        ));
    }
    save_setting(
        store,
        actor,
        &stack.name,
        Setting::ManagedEdge(managed),
        "stack.edge_set",
        json!({ "managed_edge": managed }),
    )
    .await?;
    Ok(stack)
}

/// Sets the Compose profiles active for the stack; the next deploy starts the services they
/// add (and leaves alone those they take away until the stack is stopped). Each must be a
/// profile the compose file names, and the file must read with them.
pub async fn set_profiles(
    store: &Store,
    actor: &Actor,
    name: &str,
    profiles: &[String],
) -> Result<StackSummary, StackError> {
    let mut stack = find(store, name).await?;
    let mut chosen: Vec<String> = profiles
        .iter()
        .map(|profile| profile.trim().to_owned())
        .filter(|profile| !profile.is_empty())
        .collect();
    chosen.sort();
    chosen.dedup();
    let named = definition(&stack)?.profiles;
    if let Some(unknown) = chosen.iter().find(|profile| !named.contains(*profile)) {
        return Err(StackError::Invalid(format!(
            "the compose file names no profile {unknown:?} (it names: {})",
            if named.is_empty() {
                "none".to_owned()
            } else {
                named.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        )));
    }
    stack.profiles = chosen;
    definition(&stack)?;
    save_setting(
        store,
        actor,
        &stack.name,
        Setting::Profiles(stack.profiles.join(" ")),
        "stack.profiles_set",
        json!({ "profiles": stack.profiles }),
    )
    .await?;
    Ok(stack)
}

/// One of the stack's settings, with its stored value.
enum Setting {
    ManagedEdge(bool),
    Profiles(String),
}

/// Writes one setting of the stack (only its column: another changed at the same time
/// stays) and the audit entry that says so, in one transaction.
async fn save_setting(
    store: &Store,
    actor: &Actor,
    name: &str,
    setting: Setting,
    action: &str,
    detail: serde_json::Value,
) -> Result<(), StackError> {
    let mut audited = Audited::begin(store).await?;
    let update = match setting {
        Setting::ManagedEdge(managed) => {
            sqlx::query("UPDATE stacks SET managed_edge = $1 WHERE name = $2")
                .bind(i64::from(managed))
        }
        Setting::Profiles(profiles) => {
            sqlx::query("UPDATE stacks SET profiles = $1 WHERE name = $2").bind(profiles)
        }
    };
    update
        .bind(name)
        .execute(audited.db())
        .await
        .map_err(crate::store::StoreError::from)?;
    audited.append(actor, action, name, detail).await?;
    audited.commit().await?;
    RequestStacks::forget(name);
    // Logs are masked with the stack's secrets, which a setting (profiles) may change.
    super::recent::forget();
    Ok(())
}

/// Reads the stack's compose file as it is now.
pub fn definition(stack: &StackSummary) -> Result<StackDefinition, StackError> {
    let read = || {
        super::parsed::definition(stack, || {
            definition_with(stack, &[]).map_err(|error| error.to_string())
        })
    };
    match RequestStacks::of_request() {
        Some(remembered) => remembered.definition(stack, read),
        None => read(),
    }
    .map_err(StackError::Compose)
}

/// Reads the stack's compose file with env-file variables set to other values (a flag, a
/// release's settings), and the managed edge in front where the stack's setting puts it.
pub fn definition_with(
    stack: &StackSummary,
    set: &[(String, String)],
) -> Result<StackDefinition, compose::ComposeError> {
    let compose_file = Path::new(&stack.compose_file);
    let mut definition = compose::load_with(
        compose_file,
        stack.env_file.as_deref().map(Path::new),
        set,
        &stack.profiles,
    )?;
    if stack.managed_edge {
        super::managed_edge::put_in_front(&mut definition).map_err(|message| {
            compose::ComposeError::Invalid {
                path: compose_file.to_path_buf(),
                field: "the stack's managed edge".into(),
                message,
            }
        })?;
    }
    Ok(definition)
}

/// The model Slipway runs for the stack in the long syntax `docker compose config` prints,
/// with the stack's profiles active and every secret masked (see [`secrets::secret_values`]).
pub fn config(stack: &StackSummary) -> Result<String, StackError> {
    let compose_file = Path::new(&stack.compose_file);
    let env_file = stack.env_file.as_deref().map(Path::new);
    let secrets = secrets_of(stack)?;
    compose::config(
        compose_file,
        env_file,
        &stack.profiles,
        &stack.project,
        &secrets,
    )
    .map_err(|error| StackError::Compose(secrets::redact(&error.to_string(), &secrets)))
}

/// The compose file's services, each with the containers the engine runs for it.
pub async fn status(store: &Store, engine: &Engine, name: &str) -> Result<StackStatus, StackError> {
    let stack = find(store, name).await?;
    let definition = definition(&stack)?;
    let mut containers = engine
        .recent_project_containers(&stack.project)
        .await
        .map_err(StackError::from)?;
    let services = definition
        .services
        .iter()
        .map(|service| {
            let (mine, rest) = containers
                .drain(..)
                .partition(|c| c.service == service.name);
            containers = rest;
            ServiceStatus {
                name: service.name.clone(),
                role: service.role,
                image: service.image.clone(),
                containers: mine,
            }
        })
        .collect();
    Ok(StackStatus { stack, services })
}

/// The stack, after checking that it has `service` when one is named.
async fn stack_with_service(
    store: &Store,
    name: &str,
    service: Option<&str>,
) -> Result<StackSummary, StackError> {
    let stack = find(store, name).await?;
    if let Some(service) = service {
        if definition(&stack)?.service(service).is_none() {
            return Err(StackError::Invalid(format!(
                "stack {name} has no service {service}"
            )));
        }
    }
    Ok(stack)
}

/// What a container wrote, with every secret of the stack masked (see
/// [`secrets::secret_values`]): logs are shown on pages and streamed like a run's output.
fn masked(mut line: LogLine, secrets: &[String]) -> LogLine {
    line.text = secrets::redact(&line.text, secrets);
    line
}

/// The values the stack's lines must never show.
/// An env or compose file that cannot be read shows no logs: nothing could be masked.
fn secrets_of(stack: &StackSummary) -> Result<Vec<String>, StackError> {
    secrets::secret_values(
        Path::new(&stack.compose_file),
        stack.env_file.as_deref().map(Path::new),
    )
    .map_err(|error| StackError::Compose(error.to_string()))
}

/// The newest lines of every container of the stack (or of one service), merged by time.
pub async fn logs(
    store: &Store,
    engine: &Engine,
    name: &str,
    service: Option<&str>,
    tail: usize,
    errors_only: bool,
) -> Result<Vec<LogLine>, StackError> {
    let stack = stack_with_service(store, name, service).await?;
    lines_of(engine, &stack, service, tail, errors_only).await
}

/// The newest lines of `stack`'s containers (or of one service's), masked, merged by time.
async fn lines_of(
    engine: &Engine,
    stack: &StackSummary,
    service: Option<&str>,
    tail: usize,
    errors_only: bool,
) -> Result<Vec<LogLine>, StackError> {
    let secrets = secrets_of(stack)?;
    // The containers a page saw within the last second: their logs are read anew.
    let containers = engine
        .recent_project_containers(&stack.project)
        .await
        .map_err(StackError::from)?;
    let mut lines = Vec::new();
    for container in containers
        .iter()
        .filter(|c| service.is_none_or(|s| c.service == s))
    {
        let written = match engine.logs(&container.id, &container.service, tail).await {
            // Removed since it was listed: it has nothing more to show.
            Err(super::engine::EngineError::Missing(_)) => continue,
            written => written.map_err(StackError::from)?,
        };
        lines.extend(
            written
                .into_iter()
                .filter(|line| !errors_only || line.is_error())
                .map(|line| masked(line, &secrets)),
        );
    }
    lines.sort_by(|a, b| a.at.cmp(&b.at));
    let excess = lines.len().saturating_sub(tail);
    lines.drain(..excess);
    Ok(lines)
}

/// What [`logs`] gave within the last second, for pages (see `stacks::recent`).
pub async fn recent_logs(
    store: &Store,
    engine: &Engine,
    name: &str,
    service: Option<&str>,
    tail: usize,
    errors_only: bool,
) -> Result<Vec<LogLine>, StackError> {
    // Only a stack and service that exist get a place in the cache.
    let stack = stack_with_service(store, name, service).await?;
    // By name: each stack masks its own secrets, even two on one project.
    let key = (
        stack.name.clone(),
        service.unwrap_or_default().to_owned(),
        tail,
        errors_only,
    );
    super::recent::LOGS
        .get_or_ask(key, lines_of(engine, &stack, service, tail, errors_only))
        .await
}

/// How often a log follower looks for containers that appeared since it began.
const NEW_CONTAINERS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Lines as the stack's containers (or one service's) write them from now on, until the
/// stream is dropped. Containers that appear later — the new ones of an update — are
/// followed from their first line, and a container that stopped and started again (a stop
/// and start run) from where its earlier stream ended, so following logs misses nothing.
pub async fn follow_logs(
    store: &Store,
    engine: &Engine,
    name: &str,
    service: Option<&str>,
    errors_only: bool,
) -> Result<impl futures::Stream<Item = Result<LogLine, StackError>> + use<>, StackError> {
    use super::engine::{EngineError, LogsFrom};
    use futures::stream::{BoxStream, SelectAll};
    use futures::StreamExt;

    /// A line of one container, or the end of its stream.
    enum Followed {
        Line(Result<LogLine, EngineError>),
        Ended(String),
    }

    struct Follower {
        engine: Engine,
        project: String,
        service: Option<String>,
        errors_only: bool,
        secrets: Vec<String>,
        merged: SelectAll<BoxStream<'static, Followed>>,
        /// Containers followed now.
        following: std::collections::HashSet<String>,
        /// Containers whose stream ended, and when (Unix seconds).
        ended: std::collections::HashMap<String, i64>,
        next_look: tokio::time::Instant,
        first_look: bool,
        failed: bool,
    }

    impl Follower {
        /// Follows the running containers not followed now: at first only their new lines
        /// (the newest ones were shown already), later every line not sent yet.
        async fn look_for_containers(&mut self) -> Result<(), StackError> {
            let containers = self
                .engine
                .project_containers(&self.project)
                .await
                .map_err(StackError::from)?;
            self.next_look = tokio::time::Instant::now() + NEW_CONTAINERS_EVERY;
            for container in containers.iter().filter(|c| c.state == "running") {
                if self
                    .service
                    .as_ref()
                    .is_some_and(|s| *s != container.service)
                    || self.following.contains(&container.id)
                {
                    continue;
                }
                let from = match self.ended.get(&container.id) {
                    _ if self.first_look => LogsFrom::Now,
                    Some(&ended_at) => LogsFrom::Since(ended_at),
                    None => LogsFrom::Start,
                };
                let id = container.id.clone();
                self.following.insert(id.clone());
                self.merged.push(
                    self.engine
                        .follow_logs(&container.id, &container.service, from)
                        .map(Followed::Line)
                        .chain(futures::stream::once(async move { Followed::Ended(id) }))
                        .boxed(),
                );
            }
            self.first_look = false;
            Ok(())
        }

        async fn next_line(&mut self) -> Option<Result<LogLine, StackError>> {
            while !self.failed {
                tokio::select! {
                    Some(followed) = self.merged.next(), if !self.merged.is_empty() => match followed {
                        Followed::Line(Ok(line)) if !self.errors_only || line.is_error() => {
                            return Some(Ok(masked(line, &self.secrets)));
                        }
                        Followed::Line(Ok(_)) => {}
                        // A container removed under the stream ends only that stream.
                        Followed::Line(Err(error)) => {
                            tracing::debug!(error = %error, "a followed log failed");
                        }
                        Followed::Ended(id) => {
                            self.following.remove(&id);
                            self.ended.insert(id, crate::store::now_epoch());
                        }
                    },
                    _ = tokio::time::sleep_until(self.next_look) => {
                        if let Err(error) = self.look_for_containers().await {
                            self.failed = true;
                            return Some(Err(error));
                        }
                    }
                }
            }
            None
        }
    }

    let stack = stack_with_service(store, name, service).await?;
    let mut follower = Follower {
        engine: engine.clone(),
        secrets: secrets_of(&stack)?,
        project: stack.project,
        service: service.map(str::to_owned),
        errors_only,
        merged: SelectAll::new(),
        following: Default::default(),
        ended: Default::default(),
        next_look: tokio::time::Instant::now(),
        first_look: true,
        failed: false,
    };
    follower.look_for_containers().await?;
    Ok(futures::stream::unfold(
        follower,
        |mut follower| async move {
            let line = follower.next_line().await?;
            Some((line, follower))
        },
    ))
}

/// Free and total bytes of the file system that holds `path`.
pub fn disk_space(purpose: &str, path: &Path) -> Option<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs only writes into the zeroed struct we hand it.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is NUL-terminated and outlives the call; stat is a valid out pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some(DiskSpace {
        purpose: purpose.to_owned(),
        path: path.display().to_string(),
        free_bytes: stat.f_bavail as u64 * block,
        total_bytes: stat.f_blocks as u64 * block,
    })
}

/// What the troubleshooting panel shows for one stack.
pub async fn diagnostics(
    console: &crate::context::ConsoleContext,
    engine: &Engine,
    name: &str,
) -> Result<Diagnostics, StackError> {
    let stack = find(&console.store, name).await?;
    let definition = definition(&stack)?;
    let summary = engine.summary().await.map_err(StackError::from)?;
    let mut disks = Vec::new();
    // The engine's folder is only this machine's disk when the engine runs here.
    if summary.address.starts_with("unix://") {
        disks.extend(disk_space(
            "Docker images and containers",
            Path::new(&summary.root_dir),
        ));
    }
    disks.extend(disk_space("Console data and backups", &console.data_dir));
    let containers = engine
        .project_containers(&stack.project)
        .await
        .map_err(StackError::from)?;
    let running: Vec<_> = containers.iter().filter(|c| c.state == "running").collect();
    let usage = futures::future::join_all(running.iter().map(|c| engine.usage(&c.id, &c.service)))
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let mut database_connections = Vec::new();
    for service in definition
        .services
        .iter()
        .filter(|s| s.backup.as_deref() == Some("pg_dump"))
    {
        let Some(container) = running.iter().find(|c| c.service == service.name) else {
            database_connections.push((service.name.clone(), Err("not running".to_owned())));
            continue;
        };
        let answer = lifecycle::psql(
            engine,
            &container.id,
            "SELECT count(*) FROM pg_stat_activity",
        )
        .await
        .and_then(|out| {
            out.trim()
                .parse::<i64>()
                .map_err(|_| format!("psql said: {}", out.trim()))
        });
        database_connections.push((service.name.clone(), answer));
    }
    Ok(Diagnostics {
        engine: summary,
        disks,
        usage,
        database_connections,
    })
}
