//! The console's sender: takes due messages from the outbox, posts each to its channel in
//! a task of its own (a receiver that hangs holds only its own message, up to the timeout),
//! and records the outcome — sent, tried again after a pause that doubles each time, or
//! given up on after the last attempt with the error in the delivery log.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use tokio::task::JoinSet;

use crate::store::{utc_text, Store};

use super::message::{signature, Message};
use super::outbox::{self, Attempt, Claimed};
use super::{service, ChannelKind};

/// Messages being sent at once, over all channels.
const IN_FLIGHT: usize = 16;
/// Messages being sent at once to one channel: a receiver that hangs holds no more.
const IN_FLIGHT_PER_CHANNEL: usize = 2;
/// How often the outbox is read for due messages.
const POLL: Duration = Duration::from_millis(500);
/// The longest pause between two attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(10 * 60);
/// Sent and given-up messages are kept this long in the delivery log.
const KEPT_FOR: chrono::Duration = chrono::Duration::days(30);
/// Bytes of a receiver's refusal kept in the log.
const EXCERPT_BYTES: usize = 300;

#[derive(Clone, Debug)]
pub struct SenderSettings {
    /// The console's public address: messages link back to it.
    pub public_url: String,
    /// The pause after the first failed attempt; each next pause is twice the one before.
    pub first_pause: Duration,
    /// Attempts before a message is given up on.
    pub attempts: i64,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
}

impl SenderSettings {
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.to_owned(),
            first_pause: Duration::from_secs(5),
            attempts: 10,
            timeout: Duration::from_secs(10),
        }
    }

    /// The pause after attempt number `attempt` (1 is the first) failed.
    pub fn pause_after(&self, attempt: i64) -> Duration {
        let doublings = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
        self.first_pause
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(LONGEST_PAUSE)
    }
}

/// Store time `after` from now.
fn from_now(after: Duration) -> String {
    let after = chrono::Duration::from_std(after).unwrap_or(chrono::Duration::zero());
    utc_text(chrono::Utc::now() + after)
}

/// Runs until the console stops (the task is aborted then: a message in flight stays leased
/// and is sent again once its lease passes).
pub async fn run(store: Store, settings: SenderSettings) {
    let client = match reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        // A receiver's redirect is a failure to read in the log, never followed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Slipway/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %error, "notifications cannot be sent: no HTTP client");
            return;
        }
    };
    let mut in_flight: JoinSet<()> = JoinSet::new();
    // Which channel each task sends to, and how many each channel has in flight.
    let mut channel_of: std::collections::HashMap<tokio::task::Id, String> = Default::default();
    let mut per_channel: std::collections::HashMap<String, usize> = Default::default();
    let mut pruned_at: Option<std::time::Instant> = None;
    loop {
        while let Some(ended) = in_flight.try_join_next_with_id() {
            let id = match ended {
                Ok((id, ())) => id,
                Err(error) => {
                    tracing::error!(error = %error, "a notification's delivery ended abruptly");
                    error.id()
                }
            };
            if let Some(count) = channel_of.remove(&id).and_then(|c| per_channel.get_mut(&c)) {
                *count = count.saturating_sub(1);
            }
        }
        per_channel.retain(|_, count| *count > 0);
        let room = IN_FLIGHT.saturating_sub(in_flight.len());
        if room > 0 {
            // A lease longer than an attempt can take.
            let lease = from_now(settings.timeout + Duration::from_secs(30));
            match outbox::claim_due(&store, room, &per_channel, IN_FLIGHT_PER_CHANNEL, &lease).await
            {
                Ok(claimed) => {
                    for message in claimed {
                        *per_channel.entry(message.channel.clone()).or_default() += 1;
                        let channel = message.channel.clone();
                        let (store, client, settings) =
                            (store.clone(), client.clone(), settings.clone());
                        let task = in_flight.spawn(async move {
                            deliver(&store, &client, &settings, message).await;
                        });
                        channel_of.insert(task.id(), channel);
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "could not read the notification outbox")
                }
            }
        }
        if pruned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            pruned_at = Some(std::time::Instant::now());
            let before = utc_text(chrono::Utc::now() - KEPT_FOR);
            if let Err(error) = outbox::prune(&store, &before).await {
                tracing::warn!(error = %error, "could not prune the notification log");
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Why an attempt failed, and whether another may do better.
struct Failure {
    status: i64,
    error: String,
    retry: bool,
}

impl Failure {
    fn final_(error: impl Into<String>) -> Self {
        Self {
            status: 0,
            error: error.into(),
            retry: false,
        }
    }
}

async fn deliver(
    store: &Store,
    client: &reqwest::Client,
    settings: &SenderSettings,
    claimed: Claimed,
) {
    let attempt_number = claimed.attempts + 1;
    let outcome = match attempt(store, client, settings, &claimed).await {
        Ok(status) => Attempt::Sent { status },
        Err(failure) => {
            let retry_at = (failure.retry && attempt_number < settings.attempts)
                .then(|| from_now(settings.pause_after(attempt_number)));
            tracing::info!(
                delivery = claimed.id,
                attempt = attempt_number,
                error = failure.error,
                given_up = retry_at.is_none(),
                "a notification was not delivered"
            );
            Attempt::Failed {
                status: failure.status,
                error: failure.error,
                retry_at,
            }
        }
    };
    if let Err(error) = outbox::record(store, &claimed.id, outcome).await {
        tracing::warn!(error = %error, delivery = claimed.id, "could not record a notification's delivery");
    }
}

async fn attempt(
    store: &Store,
    client: &reqwest::Client,
    settings: &SenderSettings,
    claimed: &Claimed,
) -> Result<i64, Failure> {
    let destination = match service::destination(store, &claimed.channel).await {
        Ok(Some(destination)) if destination.enabled => destination,
        Ok(Some(_)) => return Err(Failure::final_("the channel was turned off")),
        Ok(None) => return Err(Failure::final_("the channel was removed")),
        Err(broken @ super::seal::SealError::Broken) => {
            return Err(Failure::final_(broken.to_string()))
        }
        Err(error) => {
            return Err(Failure {
                status: 0,
                error: error.to_string(),
                retry: true,
            })
        }
    };
    let message: Message = serde_json::from_str(&claimed.message)
        .map_err(|_| Failure::final_("the stored message does not read"))?;
    let body =
        serde_json::to_vec(&message.body(destination.kind, &settings.public_url, &claimed.id))
            .expect("a JSON value serializes");
    let mut request = client
        .post(&destination.address)
        .header(CONTENT_TYPE, "application/json");
    if destination.kind == ChannelKind::Webhook {
        let timestamp = chrono::Utc::now().timestamp();
        request = request
            .header("X-Slipway-Event", &message.event)
            .header("X-Slipway-Delivery", &claimed.id)
            .header("X-Slipway-Timestamp", timestamp.to_string())
            .header(
                "X-Slipway-Signature",
                signature(&destination.signing_secret, timestamp, &body),
            );
    }
    let response = request.body(body).send().await.map_err(|error| Failure {
        status: 0,
        error: said(error, settings.timeout),
        retry: true,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(i64::from(status.as_u16()));
    }
    let excerpt = excerpt(response).await;
    Err(Failure {
        status: i64::from(status.as_u16()),
        error: format!("the receiver answered {status}{excerpt}"),
        // A receiver that refuses the message itself will refuse it again, and a redirect is
        // never followed.
        retry: !matches!(
            status.as_u16(),
            300..=399 | 400 | 401 | 403 | 404 | 410 | 413 | 422
        ),
    })
}

/// A transport error in words, without the address (it is the channel's secret).
fn said(error: reqwest::Error, timeout: Duration) -> String {
    let error = error.without_url();
    if error.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    if error.is_connect() {
        return "could not connect to the receiver".to_owned();
    }
    let mut words = "the request failed".to_owned();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        words.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    words
}

/// The start of a refusal's body, as text on one line: `: …`, or nothing.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(EXCERPT_BYTES);
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_ten_minutes_and_the_last_attempt_comes_after_half_an_hour() {
        let settings = SenderSettings::new("https://c.example");
        let pauses: Vec<u64> = (1..settings.attempts)
            .map(|n| settings.pause_after(n).as_secs())
            .collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(
            pauses.iter().sum::<u64>(),
            1835,
            "a receiver down for 30 minutes loses nothing"
        );
    }

    #[tokio::test]
    async fn a_failed_request_is_told_without_its_address() {
        // Nothing listens on port 9 of loopback; the address carries a secret path.
        let client = reqwest::Client::new();
        let error = client
            .post("http://127.0.0.1:9/services/T0/B0/secret-token")
            .send()
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("secret-token"),
            "reqwest names the address"
        );
        let words = said(error, Duration::from_secs(10));
        assert!(
            !words.contains("secret-token") && !words.contains("127.0.0.1:9"),
            "{words}"
        );
    }
}
