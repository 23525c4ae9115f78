//! Live streams as server-sent events, for every viewer of a page: a run's changes, and the
//! lines a stack's containers write. A run's stream ends by itself when the run has ended; a
//! log stream when the page goes away; both at once when the console begins to stop.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use app::auth::service::{authenticate, authorize, still_signed_in, Activity};
use app::auth::Role;
use app::context::ConsoleContext;
use app::errors::UserFacing;
use app::runs::{RunError, RunEvent};
use app::stacks::{LogLine, StackError};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;
use tower_sessions::Session;

/// How often an open stream checks that its session still stands.
const SESSION_RECHECK: Duration = Duration::from_secs(10);
/// Checks in a row the store may leave unanswered before the stream ends.
const UNANSWERED_CHECKS: u32 = 3;

/// Set to `true` when the console begins to stop: open streams end so the stop is not held.
#[derive(Clone, Debug)]
pub struct Stopping(pub watch::Receiver<bool>);

#[derive(Debug, Deserialize)]
pub struct After {
    /// The last line the page already shows.
    #[serde(default)]
    after: i64,
}

/// `GET /api/runs/{id}/events`: viewers and up. Events are named by kind (`run`, `steps`,
/// `line`) and carry JSON; a line's id is its sequence number, so a browser that reconnects
/// (`Last-Event-ID`) resumes after the last line it got.
pub async fn run_events(
    State(console): State<ConsoleContext>,
    State(stopping): State<Stopping>,
    session: Session,
    Path(id): Path<String>,
    Query(After { after }): Query<After>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = viewer(&session, &console, Activity::Background).await {
        return refused;
    }
    let signed_out = signed_out(session, console.clone());
    if let Err(error) = app::runs::queries::summary(&console.store, &id).await {
        return refusal(error.status(), &error.to_string());
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(after);
    let events = app::runs::follow::follow(console.store.clone(), id, resume).map(run_event);
    event_stream(events, stopping, signed_out)
}

#[derive(Debug, Deserialize)]
pub struct LogFilter {
    /// One service's lines only; all services when empty.
    #[serde(default)]
    service: String,
    #[serde(default)]
    errors: bool,
}

/// `GET /api/stacks/{name}/logs/events`: viewers and up. Each line the stack's containers
/// (or one service's) write from now on is a `line` event carrying a JSON `LogLine`.
pub async fn log_events(
    State(console): State<ConsoleContext>,
    State(stopping): State<Stopping>,
    session: Session,
    Path(name): Path<String>,
    Query(filter): Query<LogFilter>,
) -> Response {
    if let Err(refused) = viewer(&session, &console, Activity::Background).await {
        return refused;
    }
    let signed_out = signed_out(session, console.clone());
    let followed = async {
        let engine = console.engine.clone()?;
        let service = Some(filter.service.trim()).filter(|service| !service.is_empty());
        app::stacks::service::follow_logs(&console.store, &engine, &name, service, filter.errors)
            .await
    };
    match followed.await {
        Ok(lines) => event_stream(lines.map(log_event), stopping, signed_out),
        Err(error) => refusal(error.status(), &error.to_string()),
    }
}

/// Lets signed-in viewers and up through; anyone else gets the refusal to send. `activity`
/// says whether the request is a person's (keeps the session from idling) or a page's own,
/// such as opening a stream.
pub(crate) async fn viewer(
    session: &Session,
    console: &ConsoleContext,
    activity: Activity,
) -> Result<(), Response> {
    let user = authenticate(session, console, activity)
        .await
        .map_err(|error| refusal(error.status(), &error.to_string()))?;
    authorize(&user, Role::Viewer).map_err(|error| refusal(error.status(), &error.to_string()))
}

/// Resolves once the stream's session no longer stands: signed out, idle, expired, or its
/// user disabled or changed. Checked every [`SESSION_RECHECK`] against the store.
async fn signed_out(session: Session, console: ConsoleContext) {
    let mut tick = tokio::time::interval(SESSION_RECHECK);
    tick.tick().await;
    let mut unanswered = 0;
    loop {
        tick.tick().await;
        // Read now, not at the start: a session whose id was cycled by the request that
        // opened the stream has its new id only once the response has begun.
        let Some(id) = session.id() else { return };
        match still_signed_in(&console, id).await {
            Ok(true) => unanswered = 0,
            Ok(false) => return,
            // A store that cannot say for a while ends the stream: it fails closed.
            Err(_) => {
                unanswered += 1;
                if unanswered >= UNANSWERED_CHECKS {
                    return;
                }
            }
        }
    }
}

/// The events as a server-sent event response that ends when the console begins to stop
/// or when `signed_out` resolves.
fn event_stream(
    events: impl Stream<Item = Event> + Send + 'static,
    stopping: Stopping,
    signed_out: impl Future<Output = ()> + Send + 'static,
) -> Response {
    let Stopping(mut stopping) = stopping;
    let ended = async move {
        tokio::select! {
            _ = stopping.wait_for(|stopping| *stopping) => {}
            _ = signed_out => {}
        }
    };
    let events = events.map(Ok::<_, Infallible>).take_until(ended);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn run_event(event: Result<RunEvent, RunError>) -> Event {
    let event = match event {
        Ok(event) => event,
        Err(error) => return failure(&error.to_string()),
    };
    let kind = match &event {
        RunEvent::Run(_) => "run",
        RunEvent::Steps(_) => "steps",
        RunEvent::Line(_) => "line",
    };
    let with_id = match &event {
        RunEvent::Line(line) => Event::default().id(line.seq.to_string()),
        _ => Event::default(),
    };
    with_id
        .event(kind)
        .json_data(&event)
        .unwrap_or_else(|_| failure("unreadable event"))
}

fn log_event(line: Result<LogLine, StackError>) -> Event {
    match line {
        Ok(line) => Event::default()
            .event("line")
            .json_data(&line)
            .unwrap_or_else(|_| failure("unreadable line")),
        Err(error) => failure(&error.to_string()),
    }
}

/// What a stream sends when it cannot go on; it ends right after.
fn failure(message: &str) -> Event {
    Event::default().event("failure").data(message)
}

pub(crate) fn refusal(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, format!("{message}\n")).into_response()
}
