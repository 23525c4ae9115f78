//! Stacks: the Compose applications Slipway manages. A stack is a compose file, its env
//! file and a project name; the compose file stays the single source of truth.

use std::fmt;
use std::str::FromStr;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::AuthError;
use crate::errors::UserFacing;

mod pages;

pub use pages::{StackOverview, StackPage, StacksPage};

#[cfg(feature = "ssr")]
pub mod compose;
#[cfg(feature = "ssr")]
mod config;
#[cfg(feature = "ssr")]
mod container;
#[cfg(feature = "ssr")]
pub mod engine;
#[cfg(feature = "ssr")]
pub mod env_file;
#[cfg(feature = "ssr")]
pub mod fields;
#[cfg(feature = "ssr")]
mod includes;
#[cfg(feature = "ssr")]
pub mod lifecycle;
#[cfg(feature = "ssr")]
pub mod managed_edge;
#[cfg(feature = "ssr")]
pub mod networks;
#[cfg(feature = "ssr")]
mod parsed;
#[cfg(feature = "ssr")]
pub mod recent;
#[cfg(feature = "ssr")]
pub mod secrets;
#[cfg(feature = "ssr")]
pub mod service;

/// A stack as the list shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackSummary {
    pub name: String,
    pub project: String,
    pub compose_file: String,
    pub env_file: Option<String>,
    /// Slipway's edge in front of the services (an admin's setting; the compose file can ask
    /// for it too).
    pub managed_edge: bool,
    /// The Compose profiles active for the stack (an admin's setting): services that name a
    /// profile run only when it is active, as with `docker compose --profile P up`.
    pub profiles: Vec<String>,
}

/// One container as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub service: String,
    pub name: String,
    /// Short id.
    pub id: String,
    /// running, exited, created, restarting …
    pub state: String,
    /// healthy, unhealthy, starting, or none without a healthcheck.
    pub health: String,
    /// The image as named (tag).
    pub image: String,
    /// Short image id.
    pub image_id: String,
    /// Published ports, `host_ip:host_port→container_port`.
    pub ports: Vec<String>,
    /// When the running container started (RFC 3339); none when stopped.
    pub started_at: Option<String>,
    pub restarts: i64,
    /// When the container was created (Unix seconds).
    pub created_unix: i64,
    /// The digest of the definition Slipway created it from; empty for containers made by
    /// other tools.
    pub config_hash: String,
}

/// Where the browser follows a stack's logs live; `?service=NAME&errors=true` narrow it.
pub fn log_events_path(name: &str) -> String {
    format!("/api/stacks/{name}/logs/events")
}

/// One line a container wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub service: String,
    /// When the engine received it (RFC 3339).
    pub at: String,
    /// stdout or stderr.
    pub stream: String,
    pub text: String,
}

impl LogLine {
    /// Whether the line reports an error, for the errors-only filter.
    pub fn is_error(&self) -> bool {
        let text = self.text.to_ascii_lowercase();
        ["error", "fatal", "panic", "exception", "level=err", "[err]"]
            .iter()
            .any(|word| text.contains(word))
    }
}

/// A service of the compose file and the containers that run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub role: ServiceRole,
    /// The image the compose file asks for.
    pub image: Option<String>,
    pub containers: Vec<ContainerStatus>,
}

impl ServiceStatus {
    /// Running, and healthy where the container has a healthcheck.
    pub fn is_up(&self) -> bool {
        !self.containers.is_empty()
            && self
                .containers
                .iter()
                .all(|c| c.state == "running" && matches!(c.health.as_str(), "healthy" | "none"))
    }
}

/// A stack's services against what runs on the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackStatus {
    pub stack: StackSummary,
    pub services: Vec<ServiceStatus>,
}

/// CPU and memory of one running container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerUsage {
    pub service: String,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    /// 0 when the container has no limit of its own.
    pub memory_limit_bytes: u64,
}

/// Free space on a disk the stack needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpace {
    /// What lives there: images, backups.
    pub purpose: String,
    pub path: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The troubleshooting panel: engine, disks, container usage and the database's connections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    pub engine: EngineSummary,
    pub disks: Vec<DiskSpace>,
    pub usage: Vec<ContainerUsage>,
    /// `service: count`, or why it could not be counted.
    pub database_connections: Vec<(String, Result<i64, String>)>,
}

/// The engine, for the troubleshooting panel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSummary {
    pub address: String,
    pub version: String,
    pub api_version: String,
    pub containers_running: i64,
    pub containers: i64,
    pub images: i64,
    pub root_dir: String,
}

/// What a service is to the release procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceRole {
    /// Databases and caches: started first, never replaced during an update.
    Data,
    /// Application services: updated without downtime.
    App,
    /// The proxy that publishes the stack.
    Edge,
    /// One-off tasks.
    Job,
}

impl ServiceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceRole::Data => "data",
            ServiceRole::App => "app",
            ServiceRole::Edge => "edge",
            ServiceRole::Job => "job",
        }
    }
}

impl fmt::Display for ServiceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceRole {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "data" => Ok(ServiceRole::Data),
            "app" => Ok(ServiceRole::App),
            "edge" => Ok(ServiceRole::Edge),
            "job" => Ok(ServiceRole::Job),
            other => Err(format!(
                "unknown role {other:?}; use data, app, edge or job"
            )),
        }
    }
}

/// Why a stack request failed, in words the browser may show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("There is no stack named {0}.")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    /// The compose or env file cannot be used; the message names the file and the field or line.
    #[error("{0}")]
    Compose(String),
    /// The Docker engine did not answer or refused.
    #[error("{0}")]
    Engine(String),
    #[error("The console's database did not answer. Try again in a moment.")]
    Unavailable,
    #[error("The console could not be reached: {0}")]
    Transport(String),
}

impl UserFacing for StackError {
    fn status(&self) -> u16 {
        match self {
            StackError::Auth(error) => error.status(),
            StackError::NotFound(_) => 404,
            StackError::Conflict(_) => 409,
            StackError::Invalid(_) | StackError::Compose(_) => 422,
            StackError::Engine(_) | StackError::Unavailable | StackError::Transport(_) => 503,
        }
    }
}

crate::server_fn_error!(StackError);

#[cfg(feature = "ssr")]
impl From<engine::EngineError> for StackError {
    fn from(error: engine::EngineError) -> Self {
        StackError::Engine(error.to_string())
    }
}

crate::store_unavailable!(StackError, "stacks");

#[server(prefix = "/api", endpoint = "stacks")]
pub async fn list_stacks() -> Result<Vec<StackSummary>, StackError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    service::list(&caller.console.store).await.map_err(reject)
}

/// `refresh` is set by the stack page's timer: a refresh is not someone using the console
/// and does not keep their session from going idle.
#[server(prefix = "/api", endpoint = "stack_status")]
pub async fn get_stack_status(
    name: String,
    #[server(default)] refresh: bool,
) -> Result<StackStatus, StackError> {
    use crate::auth::service::Activity;
    use crate::errors::reject;
    let activity = if refresh {
        Activity::Background
    } else {
        Activity::Person
    };
    let caller = crate::auth::guard::authorized_for(crate::auth::Role::Viewer, activity).await?;
    let engine = caller.console.engine.clone().map_err(reject)?;
    service::status(&caller.console.store, &engine, &name)
        .await
        .map_err(reject)
}

/// Puts Slipway's managed edge in front of the stack's services, or takes it away; admins
/// only. The next deploy applies it.
#[server(prefix = "/api", endpoint = "set_managed_edge")]
pub async fn set_managed_edge(
    stack: String,
    #[server(default)] managed: bool,
) -> Result<bool, StackError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    service::set_managed_edge(&admin.console.store, &admin.actor, &stack, managed)
        .await
        .map(|stack| stack.managed_edge)
        .map_err(reject)
}

/// Sets the Compose profiles active for the stack (names separated by spaces or commas; empty
/// for none); admins only. The next deploy applies them.
#[server(prefix = "/api", endpoint = "set_stack_profiles")]
pub async fn set_stack_profiles(
    stack: String,
    #[server(default)] profiles: String,
) -> Result<Vec<String>, StackError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    let profiles: Vec<String> = profiles
        .split([' ', ','])
        .filter(|profile| !profile.is_empty())
        .map(str::to_owned)
        .collect();
    service::set_profiles(&admin.console.store, &admin.actor, &stack, &profiles)
        .await
        .map(|stack| stack.profiles)
        .map_err(reject)
}

/// The model Slipway runs for the stack, as `docker compose config` prints it, secrets
/// masked; operators and up (it shows the services' settings).
#[server(prefix = "/api", endpoint = "stack_config")]
pub async fn stack_config(stack: String) -> Result<String, StackError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Operator).await?;
    let stack = service::find(&caller.console.store, &stack)
        .await
        .map_err(reject)?;
    // Reading files is blocking work: it does not hold up the console's other requests.
    tokio::task::spawn_blocking(move || service::config(&stack))
        .await
        .map_err(|_| reject(StackError::Unavailable))?
        .map_err(reject)
}

#[server(prefix = "/api", endpoint = "add_stack")]
pub async fn add_stack(
    name: String,
    compose_file: String,
    env_file: String,
    project: String,
) -> Result<StackSummary, StackError> {
    use crate::errors::reject;
    let admin = crate::auth::guard::authorized(crate::auth::Role::Admin).await?;
    let env_file = (!env_file.trim().is_empty()).then(|| std::path::PathBuf::from(env_file.trim()));
    service::add(
        &admin.console.store,
        &admin.actor,
        name.trim(),
        std::path::Path::new(compose_file.trim()),
        env_file.as_deref(),
        Some(project.trim()),
    )
    .await
    .map_err(reject)
}

/// The newest log lines of a stack's services (or one service), oldest first.
#[server(prefix = "/api", endpoint = "stack_logs")]
pub async fn stack_logs(
    name: String,
    service: String,
    errors_only: bool,
) -> Result<Vec<LogLine>, StackError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    let engine = caller.console.engine.clone().map_err(reject)?;
    let service = (!service.trim().is_empty()).then(|| service.trim().to_owned());
    service::recent_logs(
        &caller.console.store,
        &engine,
        &name,
        service.as_deref(),
        200,
        errors_only,
    )
    .await
    .map_err(reject)
}

/// Engine facts, free disk, container usage and database connections for one stack.
#[server(prefix = "/api", endpoint = "stack_diagnostics")]
pub async fn stack_diagnostics(name: String) -> Result<Diagnostics, StackError> {
    use crate::errors::reject;
    let caller = crate::auth::guard::authorized(crate::auth::Role::Viewer).await?;
    let engine = caller.console.engine.clone().map_err(reject)?;
    service::diagnostics(&caller.console, &engine, &name)
        .await
        .map_err(reject)
}
