//! What the server hands to every page render and server function.

use crate::auth::service::AuthSettings;
use crate::store::Store;
use crate::system::ConsoleStart;

/// Shared state of a running console; cheap to clone.
#[derive(Clone, Debug)]
pub struct ConsoleContext {
    pub store: Store,
    /// The data directory: the SQLite store (by default) and backups.
    pub data_dir: std::path::PathBuf,
    pub start: ConsoleStart,
    pub auth: AuthSettings,
    /// The runs this console started, tracked so that a stop ends them cleanly.
    pub runner: crate::runs::runner::Runner,
    /// The Docker engine, one client for every request (`DOCKER_HOST`, or the local socket);
    /// an address that cannot be used is told to each request that needs the engine.
    pub engine: Result<crate::stacks::engine::Engine, crate::stacks::StackError>,
    /// The one-time link that creates the first admin, while none exists.
    pub setup: crate::auth::setup::SetupLink,
}

/// The console's context inside a server function or a render.
pub fn console() -> Option<ConsoleContext> {
    leptos::prelude::use_context::<ConsoleContext>()
}
