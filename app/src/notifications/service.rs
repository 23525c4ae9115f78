//! Channels: added, listed, turned on and off, removed and tested by admins, each change
//! audited in its transaction — with the address's hint, never the address.

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::store::{now_utc, Store, StoreError};

use super::message::Message;
use super::seal::{self, SealError};
use super::{AddedChannel, Channel, ChannelDetail, ChannelKind, Event, NotificationError};

/// Deliveries a channel's page shows.
const LOG_LENGTH: i64 = 100;
const NAME_CHARS: usize = 60;
const ADDRESS_CHARS: usize = 2_000;

/// A channel as an admin asks for it.
#[derive(Clone, Debug)]
pub struct NewChannel {
    pub name: String,
    pub kind: String,
    pub address: String,
    pub events: Vec<String>,
}

impl From<SealError> for NotificationError {
    fn from(error: SealError) -> Self {
        match error {
            SealError::Store(error) => error.into(),
            SealError::Broken => {
                tracing::error!("a notification secret could not be sealed");
                NotificationError::Unavailable
            }
        }
    }
}

/// What pages may show of an address: scheme, host and port, and its last four characters.
pub fn address_hint(address: &url::Url) -> String {
    let host = address.host_str().unwrap_or_default();
    let port = address.port().map(|p| format!(":{p}")).unwrap_or_default();
    let rest = &address[url::Position::BeforePath..];
    let tail: String = if rest.chars().count() > 12 {
        let chars: Vec<char> = rest.chars().collect();
        format!("/…{}", chars[chars.len() - 4..].iter().collect::<String>())
    } else {
        "/…".to_owned()
    };
    format!("{}://{host}{port}{tail}", address.scheme())
}

/// The address checked: http(s), a host, no user name or password in it.
fn parse_address(text: &str) -> Result<url::Url, NotificationError> {
    let invalid = |why: &str| NotificationError::Invalid(format!("The webhook address {why}."));
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("is empty"));
    }
    if text.len() > ADDRESS_CHARS {
        return Err(invalid("is longer than 2,000 characters"));
    }
    let address = url::Url::parse(text).map_err(|_| invalid("is not a URL"))?;
    if !matches!(address.scheme(), "https" | "http") {
        return Err(invalid(
            "must start with https:// (or http:// for a receiver on a private network)",
        ));
    }
    if address.host_str().unwrap_or_default().is_empty() {
        return Err(invalid("names no host"));
    }
    if !address.username().is_empty() || address.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    Ok(address)
}

fn parse_events(events: &[String]) -> Result<Vec<String>, NotificationError> {
    let mut chosen = Vec::new();
    for text in events.iter().flat_map(|e| e.split(',')).map(str::trim) {
        match Event::parse(text) {
            Some(Event::Test) | None => {
                return Err(NotificationError::Invalid(format!(
                    "There is no event {text:?}; the events are: {}.",
                    Event::CHOICES.map(Event::as_str).join(", ")
                )))
            }
            Some(event) if !chosen.contains(&event.as_str().to_owned()) => {
                chosen.push(event.as_str().to_owned())
            }
            Some(_) => {}
        }
    }
    if chosen.is_empty() {
        return Err(NotificationError::Invalid(
            "Choose at least one event for the channel.".into(),
        ));
    }
    Ok(chosen)
}

/// Adds a channel; a webhook's signing secret is made here and returned this once.
pub async fn add(
    store: &Store,
    actor: &Actor,
    request: &NewChannel,
) -> Result<AddedChannel, NotificationError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > NAME_CHARS || name.chars().any(char::is_control) {
        return Err(NotificationError::Invalid(
            "A channel's name is 1 to 60 characters, without line breaks.".into(),
        ));
    }
    let kind = ChannelKind::parse(&request.kind)
        .ok_or_else(|| NotificationError::Invalid("The kind is slack, teams or webhook.".into()))?;
    let address = parse_address(&request.address)?;
    let events = parse_events(&request.events)?;
    let id = uuid::Uuid::new_v4().to_string();
    let signing_secret = if kind == ChannelKind::Webhook {
        seal::random_secret()
    } else {
        String::new()
    };
    let hint = address_hint(&address);
    let address_sealed = seal::seal(store, &address_seal(&id, kind), address.as_str())?;
    let signing_sealed = if signing_secret.is_empty() {
        String::new()
    } else {
        seal::seal(store, &signing_seal(&id), &signing_secret)?
    };
    let mut audited = Audited::begin(store).await?;
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT id FROM notification_channels WHERE name = $1")
            .bind(name)
            .fetch_optional(audited.db())
            .await
            .map_err(StoreError::from)?;
    if taken.is_some() {
        audited.rollback().await?;
        return Err(NotificationError::Duplicate(name.to_owned()));
    }
    sqlx::query(
        "INSERT INTO notification_channels (id, name, kind, address_sealed, address_hint, \
         signing_sealed, events, enabled, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
    )
    .bind(&id)
    .bind(name)
    .bind(kind.as_str())
    .bind(&address_sealed)
    .bind(&hint)
    .bind(&signing_sealed)
    .bind(events.join(","))
    .bind(&actor.name)
    .bind(now_utc())
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(
            actor,
            "notification.channel_added",
            &id,
            json!({ "name": name, "kind": kind.as_str(), "address": hint, "events": events }),
        )
        .await?;
    audited.commit().await?;
    Ok(AddedChannel { id, signing_secret })
}

type ChannelRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
);

const CHANNEL_COLUMNS: &str = "c.id, c.name, c.kind, c.address_hint, c.events, c.enabled, \
     c.created_by, c.created_at, \
     (SELECT COUNT(*) FROM notification_outbox o WHERE o.channel_id = c.id AND o.status = 'pending'), \
     (SELECT COUNT(*) FROM notification_outbox o WHERE o.channel_id = c.id AND o.status = 'failed')";

fn channel(row: ChannelRow) -> Channel {
    let (id, name, kind, address_hint, events, enabled, created_by, created_at, pending, failed) =
        row;
    Channel {
        id,
        name,
        kind: ChannelKind::parse(&kind).unwrap_or(ChannelKind::Webhook),
        address_hint,
        events: events.split(',').map(str::to_owned).collect(),
        enabled: enabled != 0,
        created_by,
        created_at,
        pending,
        failed,
    }
}

pub async fn channels(store: &Store) -> Result<Vec<Channel>, NotificationError> {
    let rows: Vec<ChannelRow> = sqlx::query_as(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM notification_channels c ORDER BY c.name"
    ))
    .fetch_all(store.pool())
    .await
    .map_err(StoreError::from)?;
    Ok(rows.into_iter().map(channel).collect())
}

async fn find(store: &Store, id: &str) -> Result<Channel, NotificationError> {
    let row: Option<ChannelRow> = sqlx::query_as(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM notification_channels c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .map_err(StoreError::from)?;
    row.map(channel).ok_or(NotificationError::NotFound)
}

/// The id of the channel named `name` (or whose id it is), for the command line.
pub async fn id_of(store: &Store, name: &str) -> Result<String, NotificationError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM notification_channels WHERE name = $1 OR id = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await
            .map_err(StoreError::from)?;
    row.map(|(id,)| id).ok_or(NotificationError::NotFound)
}

pub async fn detail(store: &Store, id: &str) -> Result<ChannelDetail, NotificationError> {
    // The log first: the counts, read after it, include every message it shows as it stands.
    let deliveries = super::outbox::deliveries(store, id, LOG_LENGTH).await?;
    let channel = find(store, id).await?;
    Ok(ChannelDetail {
        channel,
        deliveries,
    })
}

pub async fn set_enabled(
    store: &Store,
    actor: &Actor,
    id: &str,
    enabled: bool,
) -> Result<(), NotificationError> {
    let channel = find(store, id).await?;
    let mut audited = Audited::begin(store).await?;
    sqlx::query("UPDATE notification_channels SET enabled = $1 WHERE id = $2")
        .bind(i64::from(enabled))
        .bind(id)
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    let action = if enabled {
        "notification.channel_on"
    } else {
        "notification.channel_off"
    };
    audited
        .append(actor, action, id, json!({ "name": channel.name }))
        .await?;
    audited.commit().await?;
    Ok(())
}

/// Removes a channel with its messages, sent or not.
pub async fn remove(store: &Store, actor: &Actor, id: &str) -> Result<(), NotificationError> {
    let channel = find(store, id).await?;
    let mut audited = Audited::begin(store).await?;
    for statement in [
        "DELETE FROM notification_outbox WHERE channel_id = $1",
        "DELETE FROM notification_channels WHERE id = $1",
    ] {
        sqlx::query(statement)
            .bind(id)
            .execute(audited.db())
            .await
            .map_err(StoreError::from)?;
    }
    audited
        .append(
            actor,
            "notification.channel_removed",
            id,
            json!({ "name": channel.name, "address": channel.address_hint }),
        )
        .await?;
    audited.commit().await?;
    Ok(())
}

/// Queues a test message for the channel, whatever events it wants.
pub async fn send_test(store: &Store, actor: &Actor, id: &str) -> Result<(), NotificationError> {
    let channel = find(store, id).await?;
    if !channel.enabled {
        return Err(NotificationError::Invalid(
            "The channel is off: turn it on to send a test.".into(),
        ));
    }
    let mut audited = Audited::begin(store).await?;
    let event = audited
        .append(
            actor,
            "notification.test_queued",
            id,
            json!({ "name": channel.name }),
        )
        .await?;
    let message = Message::test(&channel.name, &actor.name, &event.at);
    super::outbox::insert(audited.db(), id, &message).await?;
    audited.commit().await?;
    Ok(())
}

/// What the sender needs of a channel to send to it.
pub struct Destination {
    pub kind: ChannelKind,
    pub address: String,
    pub signing_secret: String,
    pub enabled: bool,
}

/// The channel's address and secret, opened; `None` when the channel is gone.
pub async fn destination(store: &Store, id: &str) -> Result<Option<Destination>, SealError> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT kind, address_sealed, signing_sealed, enabled FROM notification_channels WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await
    .map_err(StoreError::from)?;
    let Some((kind, address, signing, enabled)) = row else {
        return Ok(None);
    };
    // A kind this version does not know would be sent as something else: refused.
    let kind = ChannelKind::parse(&kind).ok_or(SealError::Broken)?;
    Ok(Some(Destination {
        kind,
        address: seal::open(store, &address_seal(id, kind), &address)?,
        signing_secret: if signing.is_empty() {
            String::new()
        } else {
            seal::open(store, &signing_seal(id), &signing)?
        },
        enabled: enabled != 0,
    }))
}

/// What a sealed address is bound to: its channel and the kind it is sent as, so that it
/// opens for no other row, field or kind.
fn address_seal(id: &str, kind: ChannelKind) -> String {
    format!("address\0{id}\0{}", kind.as_str())
}

fn signing_seal(id: &str) -> String {
    format!("signing\0{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_shown_only_as_a_hint() {
        let address =
            url::Url::parse("https://hooks.slack.com/services/T000/B000/XXXXsecretYYYY").unwrap();
        assert_eq!(address_hint(&address), "https://hooks.slack.com/…YYYY");
        let short = url::Url::parse("http://127.0.0.1:8080/hook").unwrap();
        assert_eq!(address_hint(&short), "http://127.0.0.1:8080/…");
    }

    #[test]
    fn bad_addresses_and_events_are_refused_by_name() {
        for (address, why) in [
            ("", "is empty"),
            ("hooks.slack.com/services", "is not a URL"),
            ("ftp://example.com/x", "must start with https://"),
            (
                "https://user:pw@example.com/x",
                "must not carry a user name",
            ),
        ] {
            let error = parse_address(address).unwrap_err().to_string();
            assert!(error.contains(why), "{address}: {error}");
            assert!(!error.contains("pw"), "{error}");
        }
        assert_eq!(
            parse_events(&["run.failed,run.started".into(), "run.failed".into()]).unwrap(),
            ["run.failed", "run.started"]
        );
        assert!(parse_events(&["test".into()]).is_err());
        assert!(parse_events(&["run.exploded".into()])
            .unwrap_err()
            .to_string()
            .contains("run.exploded"));
        assert!(parse_events(&[]).is_err());
    }
}
