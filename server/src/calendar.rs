//! `GET /calendar/{STACK}.ics?token=…`: a stack's releases as an iCalendar feed, for the
//! calendar stakeholders already use. No session: the user's calendar token is the key, and
//! a wrong or revoked one learns nothing about the stack.

use std::collections::HashMap;

use app::context::ConsoleContext;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::web::PublicOrigin;

/// Where a stack's feed is served.
pub const CALENDAR_PATH: &str = "/calendar/{file}";

pub async fn calendar_feed(
    State(console): State<ConsoleContext>,
    State(origin): State<PublicOrigin>,
    Path(file): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let token = query.get("token").map(String::as_str).unwrap_or_default();
    let store = &console.store;
    match app::releases::calendar::token_is_valid(store, token).await {
        Ok(true) => {}
        Ok(false) => return (
            StatusCode::UNAUTHORIZED,
            "This calendar link is unknown or was revoked: make a new one on the Releases page.\n",
        )
            .into_response(),
        Err(error) => {
            tracing::error!(error = %error, "calendar feed: the store did not answer");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "The console's database did not answer.\n",
            )
                .into_response();
        }
    }
    let Some(stack) = file.strip_suffix(".ics") else {
        return (StatusCode::NOT_FOUND, "A feed is STACK.ics.\n").into_response();
    };
    if app::stacks::service::find(store, stack).await.is_err() {
        return (
            StatusCode::NOT_FOUND,
            format!("There is no stack {stack}.\n"),
        )
            .into_response();
    }
    match app::releases::service::list(store, stack).await {
        Ok(releases) => (
            [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
            app::releases::calendar::feed(stack, &releases, &origin.0),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(error = %error, "calendar feed: releases could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The releases could not be read.\n",
            )
                .into_response()
        }
    }
}
