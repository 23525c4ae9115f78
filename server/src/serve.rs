//! The HTTP side of the console: pages, server functions, static assets, `/healthz`,
//! and a graceful stop on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use app::auth::service::{idle_expiry, AuthSettings};
use app::auth::session_store::SqlSessionStore;
use app::context::ConsoleContext;
use app::runs::events_path;
use app::stacks::log_events_path;
use app::{shell, App};
use axum::extract::{FromRef, State};
use axum::http::header::{CACHE_CONTROL, VARY};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use leptos::config::{Env, LeptosOptions};
use leptos::prelude::provide_context;
use leptos_axum::{file_and_error_handler_with_context, generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::services::ServeDir;
use tower_http::set_header::{SetResponseHeader, SetResponseHeaderLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::cli::ServeArgs;
use crate::live::{log_events, run_events, Stopping};
use crate::startup::{open_store, public_url, site_root, StartupError};
use crate::web::{refuse_cross_site, require_session_for_pages, PublicOrigin};

/// How often the audit trail's head is written to the log.
const AUDIT_HEAD_EXPORT: Duration = Duration::from_secs(60 * 60);

/// How often expired sessions are removed from the store.
const SESSION_SWEEP: Duration = Duration::from_secs(60);
/// How often the console looks for scheduled backups and approved runs to start.
const CONSOLE_JOBS: Duration = Duration::from_secs(30);

/// What every handler can reach.
#[derive(Clone, Debug, FromRef)]
pub struct ServerState {
    pub leptos_options: LeptosOptions,
    pub console: ConsoleContext,
    pub public_origin: PublicOrigin,
    pub stopping: Stopping,
    pub metrics: crate::metrics::MetricsToken,
    #[from_ref(skip)]
    pub https: bool,
}

/// Runs the console until SIGTERM or SIGINT.
pub async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let signal = shutdown_signal();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let runner = app::runs::runner::Runner::new(crate::startup::backup_dir(&args.store));
    let shutdown = {
        let runner = runner.clone();
        async move {
            signal.await;
            // Live streams end now; otherwise the graceful stop would wait for every open page.
            let _ = stop.send(true);
            runner.refuse_new();
        }
    };
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
    let public = public_url(&args, addr)?;
    let metrics = crate::metrics::MetricsToken::read(args.metrics_token_file.as_deref())?;
    // The console's own settings never reach a stack's compose file.
    app::stacks::secrets::read_process_variables(app::stacks::secrets::ProcessVariables::AllowList);
    if public.insecure {
        tracing::warn!(
            addr = %addr,
            "serving plain http to the network (--insecure-http): passwords and session \
             cookies cross it unencrypted"
        );
    }
    let store = open_store(&args.store).await?;
    let start = app::system::record_start(&store, env!("CARGO_PKG_VERSION")).await?;
    let interrupted = app::runs::recovery::recover_interrupted(&store).await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "runs whose process had stopped were marked interrupted"
        );
    }
    let site_root = site_root(&args);
    if !site_root.join("pkg").is_dir() {
        tracing::warn!(
            site_root = %site_root.display(),
            "web assets not found: pages will have no style or interactivity; build them with `cargo xtask build` or pass --site-root"
        );
    }
    app::auth::password::warm_up().await;
    // No admin yet: a one-time link creates one in the browser.
    let setup = app::auth::setup::SetupLink::default();
    match setup.offer(&store).await {
        Ok(Some(token)) => tracing::warn!(
            setup_link = %format!("{}/sign-in?setup={token}", public.origin),
            "no admin yet: open the setup link within an hour to create the first admin in the \
             browser (it works once), or run `slipway user add NAME --role admin`"
        ),
        Ok(None) => {}
        Err(error) => tracing::warn!(error = %error, "could not tell whether an admin exists"),
    }
    let sweeper = tokio::spawn(sweep(SqlSessionStore::new(store.clone()), store.clone()));
    let head_exporter = tokio::spawn(export_audit_head(store.clone()));

    let state = ServerState {
        leptos_options: leptos_options(&site_root, addr),
        console: ConsoleContext {
            store: store.clone(),
            data_dir: args.store.data_dir.clone(),
            start,
            auth: AuthSettings {
                idle_timeout: args.idle_timeout,
                absolute_timeout: args.absolute_timeout,
                trusted_proxies: args.trusted_proxies.clone(),
            },
            runner: runner.clone(),
            engine: app::stacks::engine::Engine::connect().map_err(Into::into),
            setup,
        },
        public_origin: PublicOrigin(public.origin.clone()),
        stopping: Stopping(stopping),
        metrics,
        https: public.https,
    };
    // A restore drill's throwaway database outlives a console that died during the drill;
    // looked for in the background, so a slow engine does not hold the start.
    if let Ok(engine) = state.console.engine.clone() {
        tokio::spawn(async move {
            match app::runs::recovery::remove_orphaned_drills(&engine).await {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::warn!(removed, "removed restore drills left by a stopped console")
                }
                Err(error) => {
                    tracing::warn!(error = %error, "could not look for leftover restore drills")
                }
            }
        });
    }
    let scheduler = tokio::spawn(console_jobs(state.console.clone()));
    let prober = state
        .console
        .engine
        .clone()
        .ok()
        .map(|engine| tokio::spawn(app::health::scheduler::run(store.clone(), engine)));
    let run_changes = tokio::spawn(app::runs::changes::hear_store(store.clone()));
    let notifications = tokio::spawn(app::notifications::sender::run(
        store.clone(),
        app::notifications::sender::SenderSettings {
            first_pause: args.notification_retry,
            attempts: args.notification_attempts,
            timeout: args.notification_timeout,
            ..app::notifications::sender::SenderSettings::new(&public.origin)
        },
    ));
    let router = router(state);
    tracing::info!(
        url = %format!("http://{addr}"),
        public_url = public.origin,
        store = store.backend().label(),
        location = store.shown_location(),
        "console listening"
    );
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    // Runs in flight: no new one, the running step finishes within the grace period, and
    // what is left is marked interrupted rather than cut off mid-step.
    let interrupted = runner.stop(&store, args.run_grace).await;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            grace = ?args.run_grace,
            "runs still going after the grace period were marked interrupted"
        );
    }
    sweeper.abort();
    head_exporter.abort();
    scheduler.abort();
    if let Some(prober) = prober {
        prober.abort();
    }
    notifications.abort();
    run_changes.abort();
    log_audit_head(&store).await;
    store.close().await;
    tracing::info!("console stopped");
    served.map_err(|source| StartupError::Listen { addr, source })
}

/// Every route of the console, behind the session and cross-site guards.
pub fn router(state: ServerState) -> Router {
    let routes = generate_route_list(App);
    let provide_console = {
        let console = state.console.clone();
        move || {
            provide_context(console.clone());
            provide_context(app::auth::service::RequestUser::default());
            provide_context(app::stacks::service::RequestStacks::default());
        }
    };
    let sessions = session_layer(&state);
    Router::new()
        .route("/healthz", get(healthz))
        .route(crate::metrics::METRICS_PATH, get(crate::metrics::metrics))
        .route(
            crate::calendar::CALENDAR_PATH,
            get(crate::calendar::calendar_feed),
        )
        .route(
            crate::exports::HISTORY_CSV_PATH,
            get(crate::exports::history_csv),
        )
        .route(&events_path("{id}"), get(run_events))
        .route(&log_events_path("{name}"), get(log_events))
        .nest_service("/pkg", site_pkg(&state.leptos_options))
        .leptos_routes_with_context(&state, routes, provide_console.clone(), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(file_and_error_handler_with_context::<ServerState, _>(
            provide_console,
            shell,
        ))
        .layer(from_fn_with_state(
            state.console.clone(),
            require_session_for_pages,
        ))
        .layer(sessions)
        .layer(from_fn_with_state(
            state.public_origin.clone(),
            refuse_cross_site,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Server-side sessions in the console's store. The cookie is HttpOnly, SameSite=Strict,
/// has no Domain, and over https is Secure with the `__Host-` prefix.
///
/// A session is saved only when a person's request moves its idle deadline (in steps of a
/// thirtieth of the idle timeout, a minute at most) or its content changes (see
/// `auth::service::authenticate`), so background refreshes, requests without a signed-in
/// session and a page's many requests write nothing.
fn session_layer(state: &ServerState) -> SessionManagerLayer<SqlSessionStore> {
    let idle = idle_expiry(&state.console);
    SessionManagerLayer::new(SqlSessionStore::new(state.console.store.clone()))
        .with_name(if state.https {
            "__Host-slipway_session"
        } else {
            "slipway_session"
        })
        .with_secure(state.https)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
}

/// Writes the audit trail's head to the log at start and every hour: kept outside the
/// store, it lets `slipway audit verify --head` detect a trail rebuilt or cut short.
async fn export_audit_head(store: app::store::Store) {
    let mut tick = tokio::time::interval(AUDIT_HEAD_EXPORT);
    loop {
        tick.tick().await;
        log_audit_head(&store).await;
    }
}

async fn log_audit_head(store: &app::store::Store) {
    match app::audit::service::head(store).await {
        Ok(Some((seq, hash))) => tracing::info!(head = %format!("{seq}:{hash}"), "audit head"),
        Ok(None) => {}
        Err(error) => tracing::warn!(error = %error, "could not read the audit head"),
    }
}

/// Deletes expired sessions and sign-in attempts too old to count, for as long as the
/// console runs.
async fn sweep(sessions: SqlSessionStore, store: app::store::Store) {
    let mut tick = tokio::time::interval(SESSION_SWEEP);
    loop {
        tick.tick().await;
        if let Err(error) = sessions.delete_expired().await {
            tracing::warn!(error = %error, "could not delete expired sessions");
        }
        if let Err(error) = app::auth::service::forget_old_attempts(&store).await {
            tracing::warn!(error = %error, "could not forget old sign-in attempts");
        }
    }
}

/// What the console starts on its own, at start and then every [`CONSOLE_JOBS`]: the
/// scheduled backups that are due (a missed one runs once), and approved runs whose stack
/// was busy; requests past their time are closed as expired; release milestones due or
/// overdue and backups unproven for a day are told of.
async fn console_jobs(console: ConsoleContext) {
    let mut tick = tokio::time::interval(CONSOLE_JOBS);
    loop {
        tick.tick().await;
        if let Ok(engine) = &console.engine {
            match app::backups::schedule::start_due(&console.store, engine, &console.runner).await {
                Ok(started) if !started.is_empty() => {
                    tracing::info!(stacks = ?started, "scheduled backups started")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = %error, "could not start scheduled backups"),
            }
        }
        if let Err(error) = app::approvals::service::start_waiting_runs(&console).await {
            tracing::warn!(error = %error, "could not look at approved runs");
        }
        if let Err(error) = app::notifications::reminders::remind(&console.store).await {
            tracing::warn!(error = %error, "could not look for milestones and backups to tell of");
        }
    }
}

/// The site's WASM, JavaScript and style sheet, each sent as the release build compressed it
/// (`NAME.br`, `NAME.gz` beside `NAME`) when the browser accepts that encoding — and said to
/// vary with `Accept-Encoding`, so that no cache between hands brotli to a browser that did
/// not ask for it. `no-cache`: the names do not change between builds (`chunk_7.wasm`), and a
/// chunk of an older build kept by the browser would not fit the newer main part; the browser
/// asks each time and gets a 304 while the file is the same.
fn site_pkg(
    options: &LeptosOptions,
) -> SetResponseHeader<SetResponseHeader<ServeDir, HeaderValue>, HeaderValue> {
    let files = ServeDir::new(Path::new(&*options.site_root).join(&*options.site_pkg_dir))
        .precompressed_br()
        .precompressed_gzip();
    let varied =
        SetResponseHeaderLayer::appending(VARY, HeaderValue::from_static("accept-encoding"))
            .layer(files);
    SetResponseHeaderLayer::overriding(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .layer(varied)
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
