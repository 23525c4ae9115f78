//! The outbox: one row per message and channel, written in the transaction of the change it
//! tells of (so a change never goes untold, and nothing is told of a change that was undone),
//! then claimed, sent and recorded by the sender.

use crate::audit::AuditEvent;
use crate::store::{now_utc, Store, StoreError};

use super::message::{self, Message};
use super::Delivery;

/// The audit actions that may tell of something; every other append costs nothing here.
const TOLD: [&str; 10] = [
    "run.started",
    "run.finished",
    "run.interrupted",
    "run.verification_failed",
    "rollback.automatic",
    "rollback.emergency_done",
    "approval.requested",
    "approval.approved",
    "approval.rejected",
    "approval.break_glass",
];

/// Whether an audited action may be told of to some channel.
pub fn may_tell_of(action: &str) -> bool {
    TOLD.contains(&action)
}

/// Queues the message `event` tells of for every enabled channel that wants it, on the
/// audited change's own connection. Called by the audit trail's append.
pub async fn enqueue(db: &mut sqlx::AnyConnection, event: &AuditEvent) -> Result<(), StoreError> {
    let channels = enabled_channels(db).await?;
    if channels.is_empty() {
        return Ok(());
    }
    let Some(message) = message::describe(db, event).await? else {
        return Ok(());
    };
    queue_for(db, channels, &message).await
}

/// Queues `message` for every enabled channel that wants its event.
pub async fn fan_out(db: &mut sqlx::AnyConnection, message: &Message) -> Result<(), StoreError> {
    let channels = enabled_channels(db).await?;
    queue_for(db, channels, message).await
}

async fn enabled_channels(
    db: &mut sqlx::AnyConnection,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, events FROM notification_channels WHERE enabled = 1")
            .fetch_all(&mut *db)
            .await?,
    )
}

async fn queue_for(
    db: &mut sqlx::AnyConnection,
    channels: Vec<(String, String)>,
    message: &Message,
) -> Result<(), StoreError> {
    for (channel, events) in channels {
        if events.split(',').any(|wanted| wanted == message.event) {
            insert(db, &channel, message).await?;
        }
    }
    Ok(())
}

/// One message for one channel, due now.
pub async fn insert(
    db: &mut sqlx::AnyConnection,
    channel: &str,
    message: &Message,
) -> Result<(), StoreError> {
    let now = now_utc();
    sqlx::query(
        "INSERT INTO notification_outbox (id, channel_id, event, message, status, attempts, \
         next_attempt_at, last_status, last_error, created_at, sent_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, 0, '', $5, '')",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(channel)
    .bind(&message.event)
    .bind(serde_json::to_string(message).expect("a message serializes"))
    .bind(&now)
    .execute(db)
    .await?;
    Ok(())
}

/// A message the sender holds.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub channel: String,
    pub message: String,
    /// Attempts before this one.
    pub attempts: i64,
}

/// Takes up to `limit` messages that are due, each leased until `lease_until`: another
/// sender (another console on the same store) leaves a leased message alone, and a message
/// whose sender died is due again when the lease passes.
/// A channel never has more than `per_channel` in flight, counting those `in_flight` holds.
pub async fn claim_due(
    store: &Store,
    limit: usize,
    in_flight: &std::collections::HashMap<String, usize>,
    per_channel: usize,
    lease_until: &str,
) -> Result<Vec<Claimed>, StoreError> {
    let busy: Vec<&String> = in_flight
        .iter()
        .filter(|(_, count)| **count >= per_channel)
        .map(|(channel, _)| channel)
        .collect();
    let skipped = if busy.is_empty() {
        String::new()
    } else {
        let placeholders: Vec<String> = (0..busy.len()).map(|n| format!("${}", n + 3)).collect();
        format!("AND channel_id NOT IN ({})", placeholders.join(", "))
    };
    let sql = format!(
        "SELECT id, channel_id, message, attempts, next_attempt_at FROM notification_outbox \
         WHERE status = 'pending' AND next_attempt_at <= $1 {skipped} \
         ORDER BY next_attempt_at LIMIT $2"
    );
    let mut select = sqlx::query_as::<_, (String, String, String, i64, String)>(&sql)
        .bind(now_utc())
        .bind(i64::try_from(limit * per_channel).unwrap_or(i64::MAX));
    for channel in &busy {
        select = select.bind(*channel);
    }
    let due = select.fetch_all(store.pool()).await?;
    let mut claimed: Vec<Claimed> = Vec::new();
    for (id, channel, message, attempts, due_at) in due {
        let held = in_flight.get(&channel).copied().unwrap_or(0)
            + claimed.iter().filter(|c| c.channel == channel).count();
        if claimed.len() >= limit || held >= per_channel {
            continue;
        }
        let taken = sqlx::query(
            "UPDATE notification_outbox SET next_attempt_at = $1 \
             WHERE id = $2 AND status = 'pending' AND next_attempt_at = $3",
        )
        .bind(lease_until)
        .bind(&id)
        .bind(&due_at)
        .execute(store.pool())
        .await?
        .rows_affected();
        if taken == 1 {
            claimed.push(Claimed {
                id,
                channel,
                message,
                attempts,
            });
        }
    }
    Ok(claimed)
}

/// How one attempt ended.
pub enum Attempt {
    Sent {
        status: i64,
    },
    /// Try again at `retry_at`, or give up when it is `None`.
    Failed {
        status: i64,
        error: String,
        retry_at: Option<String>,
    },
}

pub async fn record(store: &Store, id: &str, attempt: Attempt) -> Result<(), StoreError> {
    let now = now_utc();
    let query = match attempt {
        Attempt::Sent { status } => sqlx::query(
            "UPDATE notification_outbox SET status = 'sent', attempts = attempts + 1, \
             last_status = $1, last_error = '', sent_at = $2 WHERE id = $3",
        )
        .bind(status)
        .bind(now),
        Attempt::Failed {
            status,
            error,
            retry_at,
        } => sqlx::query(
            "UPDATE notification_outbox SET status = $1, attempts = attempts + 1, \
             last_status = $2, last_error = $3, next_attempt_at = $4, sent_at = $5 WHERE id = $6",
        )
        .bind(if retry_at.is_some() {
            "pending"
        } else {
            "failed"
        })
        .bind(status)
        .bind(error)
        .bind(retry_at.clone().unwrap_or_else(|| now.clone()))
        .bind(if retry_at.is_some() {
            String::new()
        } else {
            now
        }),
    };
    query.bind(id).execute(store.pool()).await?;
    Ok(())
}

/// The newest `limit` messages of a channel, newest first.
pub async fn deliveries(
    store: &Store,
    channel: &str,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    type Row = (
        String,
        String,
        String,
        String,
        i64,
        i64,
        String,
        String,
        String,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, event, message, status, attempts, last_status, last_error, created_at, \
         sent_at, next_attempt_at FROM notification_outbox WHERE channel_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(channel)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                id,
                event,
                message,
                status,
                attempts,
                last_status,
                last_error,
                created_at,
                sent_at,
                next_attempt_at,
            )| {
                let title = serde_json::from_str::<Message>(&message)
                    .map(|message| message.title)
                    .unwrap_or_default();
                Delivery {
                    id,
                    event,
                    title,
                    status,
                    attempts,
                    last_status,
                    last_error,
                    created_at,
                    sent_at,
                    next_attempt_at,
                }
            },
        )
        .collect())
}

/// Forgets sent and given-up messages older than `before`: the log keeps its size.
pub async fn prune(store: &Store, before: &str) -> Result<u64, StoreError> {
    Ok(
        sqlx::query(
            "DELETE FROM notification_outbox WHERE status <> 'pending' AND created_at < $1",
        )
        .bind(before)
        .execute(store.pool())
        .await?
        .rows_affected(),
    )
}
