//! Slipway's web application: pages, components, server functions and shared types.
//! Behind the `ssr` feature sit the services the server functions call; the `hydrate`
//! feature builds the same components into the browser's WASM.

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod components;
pub mod errors;
pub mod flags;
pub mod health;
pub mod history;
pub mod live;
pub mod notifications;
pub mod releases;
pub mod runs;
pub mod sections;
pub mod shell;
pub mod stacks;
pub mod system;

#[cfg(feature = "ssr")]
pub mod context;
#[cfg(feature = "ssr")]
pub mod store;

pub use shell::{shell, App};

/// The WASM entry point: takes over the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Asynchronous: a page's code (a lazy route) is fetched before its HTML is taken over.
    leptos::mount::hydrate_lazy(App);
}
