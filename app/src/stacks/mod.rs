//! Stacks: the Compose applications Slipway manages. A stack is a compose file, its env
//! file and a project name; the compose file stays the single source of truth.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod compose;

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
