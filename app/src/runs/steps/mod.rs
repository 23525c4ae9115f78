//! The bodies of steps, one file per family; each adds to `StepContext`.

mod backups;
mod builds;
mod cleanup;
mod containers;
mod emergency;
mod env;
mod flags;
mod migrations;
mod verification;

pub use migrations::migrations_since_run;
