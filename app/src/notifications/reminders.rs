//! What the console notices by itself, every half minute: a release's milestone whose time
//! has come (due) and one still open a quarter of an hour later (overdue), and a stack whose
//! newest backup has gone a day without a restore drill proving it. Each is told once: a
//! notice row, written in the transaction that queues its messages, remembers it.

use chrono::{DateTime, Duration, Utc};

use crate::releases::{MilestoneState, ReleaseState};
use crate::store::{utc_text, Store, StoreError};

use super::message::Message;
use super::{outbox, Event};

/// A milestone still open this long after its time is overdue.
const OVERDUE_AFTER: Duration = Duration::minutes(15);
/// Milestones further back are not told of (a channel added late is not flooded).
const LOOK_BACK: Duration = Duration::hours(2);
/// A newest backup unverified for this long is told of.
const UNVERIFIED_FOR: Duration = Duration::hours(24);

/// Tells of what has come due since the last look; returns how many notices were new.
pub async fn remind(store: &Store) -> Result<usize, StoreError> {
    remind_at(store, Utc::now()).await
}

/// [`remind`] as if it were `now`.
pub async fn remind_at(store: &Store, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut told = 0;
    for message in milestones(store, now).await? {
        told += usize::from(tell_once(store, &message.0, &message.1).await?);
    }
    for message in unverified_backups(store, now).await? {
        told += usize::from(tell_once(store, &message.0, &message.1).await?);
    }
    Ok(told)
}

/// Queues `message` for the channels that want it, unless `subject` was told of already.
async fn tell_once(store: &Store, subject: &str, message: &Message) -> Result<bool, StoreError> {
    let mut tx = store.pool().begin().await?;
    let new = sqlx::query(
        "INSERT INTO notification_notices (subject, created_at) VALUES ($1, $2) \
         ON CONFLICT (subject) DO NOTHING",
    )
    .bind(subject)
    .bind(&message.at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if new {
        outbox::fan_out(&mut tx, message).await?;
    }
    tx.commit().await?;
    Ok(new)
}

/// The milestones of releases not yet ended whose time came within [`LOOK_BACK`] and that are
/// neither done nor skipped, each with the subject that tells it once.
async fn milestones(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Message)>, StoreError> {
    // A timeline spans a day before T-0 to a few hours after it.
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM releases WHERE state IN ($1, $2) AND planned_at >= $3 AND planned_at <= $4",
    )
    .bind(ReleaseState::Planned.as_str())
    .bind(ReleaseState::Running.as_str())
    .bind(utc_text(now - Duration::days(2)))
    .bind(utc_text(now + Duration::days(2)))
    .fetch_all(store.pool())
    .await?;
    let mut due = Vec::new();
    for (id,) in ids {
        let Ok(release) = crate::releases::service::find(store, &id).await else {
            continue;
        };
        for milestone in &release.timeline {
            let Some(planned) = crate::store::parse_utc(&milestone.planned_at) else {
                continue;
            };
            if milestone.state != MilestoneState::Overdue || planned < now - LOOK_BACK {
                continue;
            }
            let overdue = planned + OVERDUE_AFTER <= now;
            let (event, word) = if overdue {
                (Event::MilestoneOverdue, "Overdue")
            } else {
                (Event::MilestoneDue, "Due now")
            };
            let offset = crate::releases::timeline::offset_label(milestone.offset_minutes);
            due.push((
                format!("{}:{}:{}", event.as_str(), release.id, milestone.key),
                Message {
                    event: event.as_str().into(),
                    title: format!(
                        "{word}: {} ({offset} of {} {})",
                        milestone.action, release.stack, release.version
                    ),
                    stack: release.stack.clone(),
                    version: release.version.clone(),
                    who: format!("{} (owner), for a {}", release.owner, milestone.role),
                    outcome: format!(
                        "planned for {}; mark it done or skipped on the release's page",
                        milestone.planned_at
                    ),
                    path: format!("/releases/{}", release.id),
                    at: utc_text(now),
                },
            ));
        }
    }
    Ok(due)
}

/// Each stack's newest backup when it finished more than [`UNVERIFIED_FOR`] ago and no restore
/// drill has proved it.
async fn unverified_backups(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<(String, Message)>, StoreError> {
    let newest: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT b.id, b.stack, b.finished_at, b.verification FROM backups b \
         WHERE b.finished_at <> '' AND NOT EXISTS (SELECT 1 FROM backups later \
         WHERE later.stack = b.stack AND later.finished_at <> '' \
         AND (later.started_at, later.id) > (b.started_at, b.id))",
    )
    .fetch_all(store.pool())
    .await?;
    Ok(newest
        .into_iter()
        .filter(|(_, _, finished, verification)| {
            verification != "verified"
                && crate::store::parse_utc(finished).is_some_and(|at| at + UNVERIFIED_FOR <= now)
        })
        .map(|(id, stack, finished, verification)| {
            let event = Event::BackupUnverified;
            (
                format!("{}:{id}", event.as_str()),
                Message {
                    event: event.as_str().into(),
                    title: format!("The newest backup of {stack} is not proven"),
                    stack,
                    version: String::new(),
                    who: "slipway".into(),
                    outcome: format!(
                        "backup {id} finished {finished} and is {verification}: no restore drill has proved it; run Verify on the Backups page"
                    ),
                    path: "/backups".into(),
                    at: utc_text(now),
                },
            )
        })
        .collect())
}
