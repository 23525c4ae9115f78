//! A message: what happened, described from the store in the transaction that records it,
//! and written in the shape each product reads — Slack's blocks, a Teams Adaptive Card, or
//! plain JSON signed with HMAC-SHA256. Its words come from the store's own records (run
//! errors are masked before they are stored), never from a compose or env file.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::audit::AuditEvent;
use crate::store::StoreError;

use super::{ChannelKind, Event};

/// Longest outcome a message carries (a run's error can be long).
const OUTCOME_CHARS: usize = 400;
/// Slack refuses a section field or a message text longer than this.
const SLACK_FIELD_CHARS: usize = 2_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// An [`Event`]'s text form.
    pub event: String,
    pub title: String,
    pub stack: String,
    /// The release version, when a release is involved.
    pub version: String,
    pub who: String,
    pub outcome: String,
    /// The console page it is about; the sender puts the console's public address before it.
    pub path: String,
    pub at: String,
}

impl Message {
    pub fn link(&self, public_url: &str) -> String {
        format!("{}{}", public_url.trim_end_matches('/'), self.path)
    }

    /// The test message an admin sends to check a channel.
    pub fn test(channel: &str, who: &str, at: &str) -> Self {
        Self {
            event: Event::Test.as_str().into(),
            title: format!("Test message for channel {channel}"),
            stack: String::new(),
            version: String::new(),
            who: who.into(),
            outcome: "if you read this, the channel works".into(),
            path: "/notifications".into(),
            at: at.into(),
        }
    }

    /// The request body for a channel of `kind`.
    pub fn body(&self, kind: ChannelKind, public_url: &str, delivery: &str) -> Value {
        match kind {
            ChannelKind::Slack => self.slack(public_url),
            ChannelKind::Teams => self.teams(public_url),
            ChannelKind::Webhook => json!({
                "delivery": delivery,
                "event": self.event,
                "title": self.title,
                "stack": self.stack,
                "version": self.version,
                "who": self.who,
                "outcome": self.outcome,
                "url": self.link(public_url),
                "at": self.at,
            }),
        }
    }

    fn facts(&self) -> Vec<(&'static str, &str)> {
        [
            ("Stack", self.stack.as_str()),
            ("Version", self.version.as_str()),
            ("Who", self.who.as_str()),
            ("Outcome", self.outcome.as_str()),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect()
    }

    /// Slack's incoming webhook: `text` for notifications and old clients, `blocks` to read.
    /// Text is escaped as Slack asks (`&`, `<`, `>`), so no value can mention `@channel` or
    /// make a link of its own, then shortened to Slack's limits (escaping lengthens it).
    fn slack(&self, public_url: &str) -> Value {
        let link = self.link(public_url);
        let fields: Vec<Value> = self
            .facts()
            .into_iter()
            .map(|(name, value)| {
                let text = format!("*{name}*\n{}", slack_escape(value));
                json!({ "type": "mrkdwn", "text": shortened(&text, SLACK_FIELD_CHARS) })
            })
            .collect();
        let summary = format!(
            "{}: {}",
            slack_escape(&self.title),
            slack_escape(&self.outcome)
        );
        json!({
            "text": format!("{} <{}|Open in Slipway>", shortened(&summary, SLACK_FIELD_CHARS), slack_escape(&link)),
            "blocks": [
                { "type": "header", "text": { "type": "plain_text", "text": shortened(&self.title, 150) } },
                { "type": "section", "fields": fields },
                { "type": "actions", "elements": [
                    { "type": "button", "text": { "type": "plain_text", "text": "Open in Slipway" }, "url": link }
                ] }
            ]
        })
    }

    /// Teams' incoming webhook (and its Workflows successor): one Adaptive Card. Every value
    /// is a `TextRun`, which Teams shows as plain text: a run error or a reason cannot make a
    /// link of its own (a `TextBlock` or a `FactSet` would read it as Markdown).
    fn teams(&self, public_url: &str) -> Value {
        let run = |text: &str, bold: bool| json!({ "type": "TextRun", "text": text, "weight": if bold { "Bolder" } else { "Default" } });
        let mut body = vec![json!({
            "type": "RichTextBlock",
            "inlines": [{ "type": "TextRun", "text": self.title, "size": "Large", "weight": "Bolder" }]
        })];
        body.extend(self.facts().into_iter().map(|(name, value)| {
            json!({ "type": "RichTextBlock", "inlines": [run(&format!("{name}: "), true), run(value, false)] })
        }));
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                    "actions": [
                        { "type": "Action.OpenUrl", "title": "Open in Slipway", "url": self.link(public_url) }
                    ]
                }
            }]
        })
    }
}

/// `X-Slipway-Signature`'s value: HMAC-SHA256 under `secret` of the timestamp, a full stop
/// and the body, as `sha256=HEX`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn shortened(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(chars - 1).collect();
    short.push('…');
    short
}

/// The message an audited change tells of, if it tells of one: read from the store inside
/// the change's own transaction.
pub async fn describe(
    db: &mut sqlx::AnyConnection,
    event: &AuditEvent,
) -> Result<Option<Message>, StoreError> {
    let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
    let text = |name: &str| detail[name].as_str().unwrap_or_default().to_owned();
    let message = match event.action.as_str() {
        "run.started" => {
            let Some(run) = RunFacts::read(db, &text("run")).await? else {
                return Ok(None);
            };
            run.message(Event::RunStarted, "started", &event.actor, "started".into())
        }
        "run.finished" | "run.interrupted" => {
            let id = if event.action == "run.finished" {
                text("run")
            } else {
                event.target.clone()
            };
            let Some(run) = RunFacts::read(db, &id).await? else {
                return Ok(None);
            };
            let outcome = match event.action.as_str() {
                "run.interrupted" => format!("interrupted: {}", text("reason")),
                _ if run.status == "failed" => format!("failed: {}", run.error),
                _ => run.status.clone(),
            };
            let failed = matches!(run.status.as_str(), "failed" | "interrupted");
            let kind = match (failed, run.status.as_str()) {
                (true, _) if matches!(run.operation.as_str(), "backup" | "verify") => {
                    Event::BackupFailed
                }
                (true, _) => Event::RunFailed,
                (false, "succeeded") => Event::RunSucceeded,
                // Cancelled: someone chose it, and the run page says so.
                _ => return Ok(None),
            };
            let ended = if failed { "failed" } else { "succeeded" };
            let who = run.requested_by.clone();
            run.message(kind, ended, &who, outcome)
        }
        "rollback.emergency_done" => {
            let Some(run) = RunFacts::read(db, &text("run")).await? else {
                return Ok(None);
            };
            let outcome = format!(
                "backup {} restored; the images of run {} running",
                text("backup"),
                text("images_of")
            );
            let who = run.requested_by.clone();
            let mut message = run.message(Event::EmergencyRollback, "done", &who, outcome);
            message.title = format!("EMERGENCY ROLLBACK of {} done", message.stack);
            message
        }
        "run.verification_failed" | "rollback.automatic" => {
            let Some(run) = RunFacts::read(db, &text("run")).await? else {
                return Ok(None);
            };
            let who = run.requested_by.clone();
            let operation = run.operation.clone();
            let (kind, title, outcome) = if event.action == "rollback.automatic" {
                let seconds = detail["recovered_ms"].as_u64().unwrap_or_default() as f64 / 1000.0;
                (
                    Event::AutomaticRollback,
                    format!("AUTOMATIC ROLLBACK of {}", run.stack),
                    format!(
                        "the previous version serves again {seconds:.1} s after the failed check: {} (policy set by {})",
                        text("reason"),
                        text("policy_set_by")
                    ),
                )
            } else {
                (
                    Event::VerificationFailed,
                    format!("Verification failed: {operation} of {}", run.stack),
                    format!("{}; the change stays", text("reason")),
                )
            };
            let mut message = run.message(kind, "verification failed", &who, outcome);
            message.title = title;
            message
        }
        "approval.requested" => {
            let Some(approval) = ApprovalFacts::read(db, &text("approval")).await? else {
                return Ok(None);
            };
            Message {
                event: Event::ApprovalRequested.as_str().into(),
                title: format!(
                    "Approval requested: {} of {}",
                    approval.operation, approval.stack
                ),
                outcome: format!("waiting for a decision: {}", approval.reason),
                who: event.actor.clone(),
                ..approval.message()
            }
        }
        "approval.approved" | "approval.rejected" | "approval.break_glass" => {
            let Some(approval) = ApprovalFacts::read(db, &event.target).await? else {
                return Ok(None);
            };
            let decision = match event.action.as_str() {
                "approval.approved" => "Approved",
                "approval.rejected" => "Rejected",
                _ => "Approved by breaking the glass",
            };
            Message {
                event: Event::ApprovalDecided.as_str().into(),
                title: format!("{decision}: {} of {}", approval.operation, approval.stack),
                outcome: format!(
                    "decided by {}; the request is now {}",
                    event.actor,
                    text("status")
                ),
                who: event.actor.clone(),
                ..approval.message()
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Message {
        outcome: shortened(&message.outcome, OUTCOME_CHARS),
        at: event.at.clone(),
        ..message
    }))
}

/// What a message says of a run.
struct RunFacts {
    id: String,
    stack: String,
    operation: String,
    status: String,
    requested_by: String,
    error: String,
    version: String,
}

impl RunFacts {
    async fn read(db: &mut sqlx::AnyConnection, id: &str) -> Result<Option<Self>, StoreError> {
        let row: Option<(String, String, String, String, String, String)> = sqlx::query_as(
            "SELECT stack, operation, status, requested_by, error, options FROM runs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *db)
        .await?;
        let Some((stack, operation, status, requested_by, error, options)) = row else {
            return Ok(None);
        };
        let release = serde_json::from_str::<Value>(&options).unwrap_or(Value::Null)["release"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let version: Option<(String,)> =
            sqlx::query_as("SELECT version FROM releases WHERE id = $1 OR run_id = $2")
                .bind(&release)
                .bind(id)
                .fetch_optional(&mut *db)
                .await?;
        Ok(Some(Self {
            id: id.to_owned(),
            stack,
            operation,
            status,
            requested_by,
            error,
            version: version.map(|(v,)| v).unwrap_or_default(),
        }))
    }

    fn message(&self, event: Event, ended: &str, who: &str, outcome: String) -> Message {
        let mut operation = self.operation.clone();
        if let Some(first) = operation.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        Message {
            event: event.as_str().into(),
            title: format!("{operation} of {} {ended}", self.stack),
            stack: self.stack.clone(),
            version: self.version.clone(),
            who: who.into(),
            outcome,
            path: format!("/runs/{}", self.id),
            at: String::new(),
        }
    }
}

/// What a message says of an approval request.
struct ApprovalFacts {
    id: String,
    stack: String,
    operation: String,
    reason: String,
}

impl ApprovalFacts {
    async fn read(db: &mut sqlx::AnyConnection, id: &str) -> Result<Option<Self>, StoreError> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT stack, operation, reason FROM approvals WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *db)
                .await?;
        Ok(row.map(|(stack, operation, reason)| Self {
            id: id.to_owned(),
            stack,
            operation,
            reason,
        }))
    }

    fn message(&self) -> Message {
        Message {
            event: String::new(),
            title: String::new(),
            stack: self.stack.clone(),
            version: String::new(),
            who: String::new(),
            outcome: String::new(),
            path: format!("/approvals/{}", self.id),
            at: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_update() -> Message {
        Message {
            event: "run.failed".into(),
            title: "Update of portal failed".into(),
            stack: "portal".into(),
            version: "2.1.0".into(),
            who: "ada".into(),
            outcome: "failed: <!channel> & friends".into(),
            path: "/runs/r1".into(),
            at: "2026-11-29T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn slack_gets_blocks_with_its_text_escaped_and_a_link_back() {
        let body = failed_update().body(ChannelKind::Slack, "https://slipway.example.com/", "d1");
        assert_eq!(body["blocks"][0]["text"]["text"], "Update of portal failed");
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("&lt;!channel&gt; &amp; friends"), "{text}");
        assert!(text.contains("<https://slipway.example.com/runs/r1|Open in Slipway>"));
        assert_eq!(
            body["blocks"][2]["elements"][0]["url"],
            "https://slipway.example.com/runs/r1"
        );
        let fields = body["blocks"][1]["fields"].as_array().unwrap();
        assert_eq!(fields[1]["text"], "*Version*\n2.1.0");
    }

    #[test]
    fn a_long_outcome_full_of_escapes_stays_within_slacks_limits() {
        let mut message = failed_update();
        // The longest outcome, each character escaped to five: past the limit unless cut.
        message.outcome = "&".repeat(OUTCOME_CHARS);
        assert!(slack_escape(&message.outcome).chars().count() > SLACK_FIELD_CHARS - 10);
        let body = message.body(ChannelKind::Slack, "https://c.example", "d1");
        for field in body["blocks"][1]["fields"].as_array().unwrap() {
            assert!(field["text"].as_str().unwrap().chars().count() <= SLACK_FIELD_CHARS);
        }
        let text = body["text"].as_str().unwrap();
        assert!(
            text.chars().count() <= SLACK_FIELD_CHARS + 60,
            "{}",
            text.len()
        );
        assert!(!text.contains("&&"), "escaped");
    }

    #[test]
    fn teams_gets_an_adaptive_card_and_the_webhook_plain_json() {
        let message = failed_update();
        let card = message.body(ChannelKind::Teams, "https://c.example", "d1");
        let content = &card["attachments"][0]["content"];
        assert_eq!(
            card["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(content["type"], "AdaptiveCard");
        assert_eq!(
            content["body"][0]["inlines"][0]["text"],
            "Update of portal failed"
        );
        assert_eq!(content["body"][1]["inlines"][1]["text"], "portal");
        let outcome = &content["body"][4]["inlines"];
        assert_eq!(
            (outcome[0]["text"].as_str(), outcome[1]["text"].as_str()),
            (Some("Outcome: "), Some("failed: <!channel> & friends"))
        );
        assert!(content["body"]
            .as_array()
            .unwrap()
            .iter()
            .all(|block| block["type"] == "RichTextBlock"));
        assert_eq!(content["actions"][0]["url"], "https://c.example/runs/r1");
        let plain = message.body(ChannelKind::Webhook, "https://c.example", "d1");
        assert_eq!(plain["delivery"], "d1");
        assert_eq!(plain["outcome"], "failed: <!channel> & friends");
    }

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_dot_body() {
        // Worked out with: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
