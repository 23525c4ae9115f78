//! The HTTP side of the console: pages, server functions, static assets, `/healthz`,
//! and a graceful stop on SIGTERM or SIGINT.

use std::path::Path;

use app::context::ConsoleContext;
use app::{shell, App};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use leptos::config::{Env, LeptosOptions};
use leptos::prelude::provide_context;
use leptos_axum::{file_and_error_handler_with_context, generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::cli::ServeArgs;
use crate::startup::{open_store, site_root, StartupError};

/// What every handler can reach.
#[derive(Clone, Debug, FromRef)]
pub struct ServerState {
    pub leptos_options: LeptosOptions,
    pub console: ConsoleContext,
}

/// Runs the console until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let shutdown = shutdown_signal();
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|source| StartupError::Listen {
            addr: args.addr,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartupError::Listen {
            addr: args.addr,
            source,
        })?;
    let store = open_store(&args).await?;
    let start = app::system::record_start(&store, env!("CARGO_PKG_VERSION")).await?;
    let site_root = site_root(&args);
    if !site_root.join("pkg").is_dir() {
        tracing::warn!(
            site_root = %site_root.display(),
            "web assets not found: pages will have no style or interactivity; build them with `cargo leptos build` or pass --site-root"
        );
    }

    let state = ServerState {
        leptos_options: leptos_options(&site_root, addr),
        console: ConsoleContext {
            store: store.clone(),
            start,
        },
    };
    let router = router(state);
    tracing::info!(
        url = %format!("http://{addr}"),
        store = store.backend().label(),
        location = store.shown_location(),
        "console listening"
    );
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    store.close().await;
    tracing::info!("console stopped");
    served.map_err(|source| StartupError::Listen { addr, source })
}

/// Every route of the console.
pub fn router(state: ServerState) -> Router {
    let routes = generate_route_list(App);
    let provide_console = {
        let console = state.console.clone();
        move || provide_context(console.clone())
    };
    Router::new()
        .route("/healthz", get(healthz))
        .leptos_routes_with_context(&state, routes, provide_console.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(file_and_error_handler_with_context::<ServerState, _>(
            provide_console,
            shell,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn leptos_options(site_root: &Path, addr: std::net::SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("slipway")
        .site_root(site_root.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .env(Env::PROD)
        .build()
}

/// 200 while the store answers, 503 when it does not.
async fn healthz(State(console): State<ConsoleContext>) -> impl IntoResponse {
    match console.store.ping().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(error) => {
            tracing::warn!(error = %error, "health check: store did not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when it is first polled, so a signal during start-up is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let (Ok(mut terminate), Ok(mut interrupt)) = (terminate, interrupt) else {
            tracing::warn!("cannot listen for SIGTERM or SIGINT; stop the console with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, stopping"),
        }
    }
}
