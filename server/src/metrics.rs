//! `GET /metrics`: the console's figures for Prometheus (see `app::health::metrics`), for
//! whoever holds the bearer token read from `--metrics-token-file`. No session: a scraper has
//! none. Without a token file the endpoint is off and answers a plain 404, so nothing is
//! exposed by default.

use std::path::Path;
use std::sync::Arc;

use app::context::ConsoleContext;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::startup::StartupError;

pub const METRICS_PATH: &str = "/metrics";
/// A token shorter than this is refused at start: it could be guessed.
const TOKEN_AT_LEAST: usize = 16;

/// The SHA-256 of the bearer token, when metrics are on.
#[derive(Clone, Debug, Default)]
pub struct MetricsToken(Option<Arc<[u8; 32]>>);

impl MetricsToken {
    /// Reads the token from its file (surrounding whitespace ignored); `None` turns metrics off.
    pub fn read(file: Option<&Path>) -> Result<Self, StartupError> {
        let Some(file) = file else {
            return Ok(Self(None));
        };
        let refuse = |reason: String| StartupError::MetricsToken {
            path: file.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(file).map_err(|error| refuse(error.to_string()))?;
        let token = text.trim();
        if token.len() < TOKEN_AT_LEAST {
            return Err(refuse(format!(
                "the token must be at least {TOKEN_AT_LEAST} characters"
            )));
        }
        Ok(Self(Some(Arc::new(
            Sha256::digest(token.as_bytes()).into(),
        ))))
    }

    /// Whether `Authorization: Bearer TOKEN` carries the token (compared by digest, so the
    /// time taken says nothing about how much of it matched).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.0 else {
            return false;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        digest == **expected
    }
}

pub async fn metrics(
    State(console): State<ConsoleContext>,
    State(token): State<MetricsToken>,
    headers: HeaderMap,
) -> Response {
    if token.0.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !token.admits(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "A bearer token is needed (Authorization: Bearer TOKEN).\n",
        )
            .into_response();
    }
    match app::health::metrics::render(&console.store, chrono::Utc::now()).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, app::health::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(error = %error, "metrics: the store did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The console's database did not answer.\n",
            )
                .into_response()
        }
    }
}
