//! Downloads: the filtered history as CSV for a signed-in viewer (`GET /history.csv?…`, the
//! History page's filters as the query).

use app::auth::service::Activity;
use app::context::ConsoleContext;
use app::errors::UserFacing;
use app::history::HistoryFilter;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::live::{refusal, viewer};

pub const HISTORY_CSV_PATH: &str = "/history.csv";

/// One export at a time: a large one reads many rows, and the console's other requests
/// (runs writing their lines among them) must not wait behind several.
static EXPORTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

pub async fn history_csv(
    State(console): State<ConsoleContext>,
    session: Session,
    Query(filter): Query<HistoryFilter>,
) -> Response {
    if let Err(refused) = viewer(&session, &console, Activity::Person).await {
        return refused;
    }
    let Ok(_turn) = EXPORTING.try_acquire() else {
        return refusal(
            429,
            "Another export is being written. Try again in a moment.",
        );
    };
    match app::history::service::csv(&console.store, &filter).await {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"slipway-history.csv\"",
                ),
            ],
            text,
        )
            .into_response(),
        Err(error) => refusal(error.status(), &error.to_string()),
    }
}
