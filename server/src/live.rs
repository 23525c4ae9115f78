//! Live streams: a run's changes as server-sent events, for every viewer of its page. The
//! stream reads the store (see `app::runs::service::follow`), so it ends by itself when the
//! run has ended, and at once when the console begins to stop.

use std::convert::Infallible;

use app::auth::service::{authenticate, authorize};
use app::auth::Role;
use app::context::ConsoleContext;
use app::errors::UserFacing;
use app::runs::{service, RunError, RunEvent};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tower_sessions::Session;

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
    State(Stopping(mut stopping)): State<Stopping>,
    session: Session,
    Path(id): Path<String>,
    Query(After { after }): Query<After>,
    headers: HeaderMap,
) -> Response {
    let allowed = async {
        let user = authenticate(&session, &console).await?;
        authorize(&user, Role::Viewer)
    };
    if let Err(error) = allowed.await {
        return refusal(error.status(), &error.to_string());
    }
    if let Err(error) = service::summary(&console.store, &id).await {
        return refusal(error.status(), &error.to_string());
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(after);
    let stopped = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    let events = service::follow(console.store.clone(), id, resume)
        .map(|event| Ok::<_, Infallible>(sse_event(event)))
        .take_until(stopped);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn sse_event(event: Result<RunEvent, RunError>) -> Event {
    let event = match event {
        Ok(event) => event,
        Err(error) => return Event::default().event("failure").data(error.to_string()),
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
        .unwrap_or_else(|_| Event::default().event("failure").data("unreadable event"))
}

fn refusal(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, format!("{message}\n")).into_response()
}
