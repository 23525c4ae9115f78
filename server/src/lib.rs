//! The `slipway` binary's library half: command line, start-up and the HTTP server.
//! `main.rs` only parses arguments and reports failures; tests drive the same code.

pub mod calendar;
pub mod cli;
pub mod commands;
pub mod exports;
pub mod live;
pub mod metrics;
pub mod serve;
pub mod startup;
pub mod web;
