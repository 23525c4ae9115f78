//! Integration tests: real `slipway` processes, real SQLite and PostgreSQL stores.
//! One binary, so the build links once.

mod approvals;
mod audit;
mod auth;
mod backups;
mod compose;
mod console;
mod flags;
mod health;
mod helpers;
mod history;
mod notifications;
mod portal;
mod releases;
mod runs;
mod sessions;
mod stacks;
mod startup_errors;
mod store;
mod updates;
