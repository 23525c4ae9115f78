//! The stakeholders' calendar: an iCalendar feed per stack (`/calendar/STACK.ics?token=…`)
//! with each release's window and milestones. The token is a user's own secret (stored as
//! its SHA-256), replaced when they make a new one and revocable by an admin; a disabled
//! user's link answers nothing.

use icalendar::{Calendar, Component, Event, EventLike};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::service::{Actor, Audited};
use crate::store::{now_utc, Store, StoreError};

use super::{timeline, Release};

fn hashed(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Makes the user's calendar token (replacing any earlier one) and returns it; audited.
pub async fn issue(store: &Store, actor: &Actor, user_id: &str) -> Result<String, StoreError> {
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut audited = Audited::begin(store).await?;
    sqlx::query("DELETE FROM calendar_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(audited.db())
        .await?;
    sqlx::query(
        "INSERT INTO calendar_tokens (token_hash, user_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(hashed(&token))
    .bind(user_id)
    .bind(now_utc())
    .execute(audited.db())
    .await?;
    audited
        .append(actor, "calendar.link_made", user_id, json!({}))
        .await?;
    audited.commit().await?;
    Ok(token)
}

/// Revokes a user's calendar token; audited. Whether there was one.
pub async fn revoke(store: &Store, actor: &Actor, user_id: &str) -> Result<bool, StoreError> {
    let mut audited = Audited::begin(store).await?;
    let removed = sqlx::query("DELETE FROM calendar_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(audited.db())
        .await?
        .rows_affected();
    if removed == 0 {
        audited.rollback().await?;
        return Ok(false);
    }
    audited
        .append(actor, "calendar.link_revoked", user_id, json!({}))
        .await?;
    audited.commit().await?;
    Ok(true)
}

/// Whether `token` belongs to an enabled user.
pub async fn token_is_valid(store: &Store, token: &str) -> Result<bool, StoreError> {
    if token.is_empty() || token.len() > 200 {
        return Ok(false);
    }
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT u.disabled FROM calendar_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
    )
    .bind(hashed(token))
    .fetch_optional(store.pool())
    .await?;
    Ok(matches!(row, Some((0,))))
}

fn at(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}

/// The stack's feed (`releases` are the stack's): for each release an event from T-0 to
/// T+1h, and one per milestone.
pub fn feed(stack: &str, releases: &[Release], console_url: &str) -> String {
    let mut calendar = Calendar::new();
    calendar.name(&format!("Slipway releases of {stack}"));
    for release in releases {
        let Some(t0) = at(&release.planned_at) else {
            continue;
        };
        let url = format!("{console_url}/releases/{}", release.id);
        calendar.push(
            Event::new()
                .uid(&format!("release-{}@slipway", release.id))
                .summary(&format!("Release {} ({})", release.title(), release.state))
                .description(&format!(
                    "Owner: {}. Ships with {}. {}\n{url}",
                    release.owner, release.operation, release.notes
                ))
                .starts(t0)
                .ends(t0 + chrono::Duration::hours(1))
                .url(&url)
                .done(),
        );
        for milestone in &release.timeline {
            let Some(planned) = at(&milestone.planned_at) else {
                continue;
            };
            calendar.push(
                Event::new()
                    .uid(&format!("release-{}-{}@slipway", release.id, milestone.key))
                    .summary(&format!(
                        "{} {}: {} ({})",
                        timeline::offset_label(milestone.offset_minutes),
                        release.title(),
                        milestone.action,
                        milestone.state
                    ))
                    .description(&format!(
                        "Owner: {}. {}\n{url}",
                        milestone.role, milestone.notes
                    ))
                    .starts(planned)
                    .ends(planned + chrono::Duration::minutes(15))
                    .done(),
            );
        }
    }
    calendar.done().to_string()
}
