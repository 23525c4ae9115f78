//! The bodies of steps, one file per family; each adds to `StepContext`.

mod backups;
mod builds;
mod cleanup;
mod containers;
mod env;
mod migrations;

pub use migrations::migrations_since_run;
