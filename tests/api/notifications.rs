//! Notifications against a local HTTP receiver, on SQLite and PostgreSQL: a failed run is
//! told to Slack-, Teams- and webhook-shaped channels (the webhook's signature verifies), a
//! receiver answering 500 is tried again and then given up on with its answer in the
//! delivery log, a receiver that hangs holds up neither the run nor the other channels, and
//! no secret — the run's nor the channel's address — appears in a payload, a page or the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::auth::Role;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use crate::helpers::{
    call, run_to_exit, run_with_stdin, signed_in, stack_add_args, throwaway_project,
    RunningConsole, TestStore, BACKENDS,
};

/// The run's secret: the image tag is read from it, so the run's error would show it.
const RUN_SECRET: &str = "tok-0123456789-do-not-leak";

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A receiver on loopback: `/fail…` answers 500, `/hang…` never answers, the rest 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, base)
    }

    fn at(&self, prefix: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn everything(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let path = uri.path().to_owned();
    receiver.got.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    if path.starts_with("/fail") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "receiver exploded");
    }
    if path.starts_with("/hang") {
        std::future::pending::<()>().await;
    }
    (StatusCode::OK, "ok")
}

/// Adds a channel through the console as the admin; returns its id and signing secret.
async fn add_channel(
    admin: &reqwest::Client,
    console: &RunningConsole,
    name: &str,
    kind: &str,
    address: &str,
    events: &[&str],
) -> (String, String) {
    let mut form = vec![("name", name), ("kind", kind), ("address", address)];
    form.extend(events.iter().map(|event| ("events[]", *event)));
    let response = call(admin, console, "add_notification_channel", &form).await;
    assert_eq!(response.status(), 200, "{name}");
    let added: Value = response.json().await.unwrap();
    (
        added["id"].as_str().unwrap().to_owned(),
        added["signing_secret"].as_str().unwrap().to_owned(),
    )
}

async fn channel(admin: &reqwest::Client, console: &RunningConsole, id: &str) -> Value {
    let response = call(admin, console, "notification_channel", &[("id", id)]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits up to 30 s for `done` to hold of the channel's page; returns the page.
async fn channel_when(
    admin: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..300 {
        let detail = channel(admin, console, id).await;
        if done(&detail) {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {}", channel(admin, console, id).await);
}

fn deliveries(detail: &Value) -> Vec<Value> {
    detail["deliveries"].as_array().unwrap().clone()
}

fn has_delivery(detail: &Value, event: &str, status: &str) -> bool {
    deliveries(detail)
        .iter()
        .any(|d| d["event"] == event && d["status"] == status)
}

#[tokio::test]
async fn a_failed_run_is_told_to_slack_teams_and_a_signed_webhook_and_bad_receivers_hold_nothing_up(
) {
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let password = store.add_user("ada", Role::Admin).await;
        let viewer_password = store.add_user("vic", Role::Viewer).await;
        let console = RunningConsole::start_with(
            &store,
            &[
                "--notification-retry",
                "100ms",
                "--notification-attempts",
                "6",
                "--notification-timeout",
                "8s",
            ],
        )
        .await;
        let admin = signed_in(&console, "ada", &password).await;
        let (receiver, base) = Receiver::start().await;

        let (slack, _) = add_channel(
            &admin,
            &console,
            "team-slack",
            "slack",
            &format!("{base}/slack/hook-secret-slack"),
            &["run.failed"],
        )
        .await;
        let (teams, _) = add_channel(
            &admin,
            &console,
            "team-teams",
            "teams",
            &format!("{base}/teams/hook-secret-teams"),
            &["run.failed"],
        )
        .await;
        let (generic, signing_secret) = add_channel(
            &admin,
            &console,
            "audit-hook",
            "webhook",
            &format!("{base}/generic/hook-secret-generic"),
            &["run.started", "run.failed"],
        )
        .await;
        let (failing, _) = add_channel(
            &admin,
            &console,
            "broken",
            "slack",
            &format!("{base}/fail/hook-secret-fail"),
            &["run.failed"],
        )
        .await;
        let (hanging, _) = add_channel(
            &admin,
            &console,
            "stuck",
            "webhook",
            &format!("{base}/hang/hook-secret-hang"),
            &["run.started", "run.failed"],
        )
        .await;
        assert_eq!(signing_secret.len(), 64, "a webhook gets a 256-bit secret");

        // A name twice, an unknown event, a viewer: refused.
        let again = call(
            &admin,
            &console,
            "add_notification_channel",
            &[
                ("name", "team-slack"),
                ("kind", "slack"),
                ("address", "https://hooks.example/x"),
                ("events[]", "run.failed"),
            ],
        )
        .await;
        assert_eq!(again.status(), 409);
        let unknown = call(
            &admin,
            &console,
            "add_notification_channel",
            &[
                ("name", "x"),
                ("kind", "slack"),
                ("address", "https://hooks.example/x"),
                ("events[]", "run.exploded"),
            ],
        )
        .await;
        assert_eq!(unknown.status(), 422);
        assert!(unknown.text().await.unwrap().contains("run.exploded"));
        let viewer = signed_in(&console, "vic", &viewer_password).await;
        assert_eq!(
            call(&viewer, &console, "notification_channels", &[])
                .await
                .status(),
            403
        );

        // A stack whose image tag comes from a secret: the deploy fails naming the image.
        let (project, _cleanup) = throwaway_project("slipnote");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(&file, "services:\n  web:\n    image: slipway-portal-frontend:${RELEASE_TOKEN}\n    x-slipway: { role: app }\n").unwrap();
        let env_file = dir.path().join("stack.env");
        std::fs::write(&env_file, format!("RELEASE_TOKEN={RUN_SECRET}\n")).unwrap();
        let (file, env_file) = (file.display().to_string(), env_file.display().to_string());
        let flags = store.serve_flags();
        run_to_exit(
            &stack_add_args(
                &flags,
                "noted",
                &file,
                &["--project", &project, "--env-file", &env_file],
            ),
            &[],
        )
        .await
        .assert_success();
        let started = call(
            &admin,
            &console,
            "start_run",
            &[("stack", "noted"), ("operation", "deploy")],
        )
        .await;
        assert_eq!(started.status(), 200);
        let run_id: String = started.json().await.unwrap();

        // The run failed and Slack was told, while the hanging receiver still holds the
        // run's first message unanswered: neither the run nor the other channels waited.
        let slack_page = channel_when(&admin, &console, &slack, "slack told of the failure", |d| {
            has_delivery(d, "run.failed", "sent")
        })
        .await;
        // Sent at the same time as the others: it may reach the receiver a moment later.
        for _ in 0..50 {
            if !receiver.at("/hang").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stuck = channel(&admin, &console, &hanging).await;
        let started_message = deliveries(&stuck)
            .into_iter()
            .find(|d| d["event"] == "run.started")
            .expect("the stuck channel's run.started message");
        assert_eq!(
            (
                started_message["status"].as_str(),
                started_message["attempts"].as_i64()
            ),
            (Some("pending"), Some(0)),
            "still in flight: {stuck}"
        );
        assert!(
            !receiver.at("/hang").is_empty(),
            "the hanging receiver has the request"
        );
        let run: Value = call(&admin, &console, "run", &[("id", &run_id)])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(run["run"]["status"], "failed", "{run}");
        assert_eq!(deliveries(&slack_page)[0]["attempts"], 1);

        // Slack: blocks, the outcome with the secret masked, a link back to the run.
        let link = console.url(&format!("/runs/{run_id}"));
        let slack_body = receiver.at("/slack/hook-secret-slack")[0].json();
        assert_eq!(
            slack_body["blocks"][0]["text"]["text"], "Deploy of noted failed",
            "{slack_body}"
        );
        assert_eq!(slack_body["blocks"][2]["elements"][0]["url"], link.as_str());
        assert!(
            slack_body["text"]
                .as_str()
                .unwrap()
                .contains("needs the image"),
            "{slack_body}"
        );

        // Teams: an Adaptive Card with the facts and the link.
        channel_when(&admin, &console, &teams, "teams told", |d| {
            has_delivery(d, "run.failed", "sent")
        })
        .await;
        let card = receiver.at("/teams/")[0].json();
        assert_eq!(
            card["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let content = &card["attachments"][0]["content"];
        assert_eq!(content["type"], "AdaptiveCard");
        assert_eq!(content["body"][1]["inlines"][1]["text"], "noted");
        assert_eq!(content["actions"][0]["url"], link.as_str());

        // The webhook: both events, each signed over timestamp and body.
        channel_when(&admin, &console, &generic, "webhook told twice", |d| {
            has_delivery(d, "run.started", "sent") && has_delivery(d, "run.failed", "sent")
        })
        .await;
        let signed = receiver.at("/generic/");
        assert_eq!(signed.len(), 2);
        for request in &signed {
            let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
            let mut mac =
                <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(signing_secret.as_bytes()).unwrap();
            mac.update(format!("{}.", header("x-slipway-timestamp")).as_bytes());
            mac.update(&request.body);
            assert_eq!(
                header("x-slipway-signature"),
                format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
            );
            let body = request.json();
            assert_eq!(body["event"], header("x-slipway-event"));
            assert_eq!(body["delivery"], header("x-slipway-delivery"));
            assert_eq!(
                (body["stack"].as_str(), body["url"].as_str()),
                (Some("noted"), Some(link.as_str()))
            );
            assert_eq!(body["who"], "ada");
        }
        let failed_body = signed
            .iter()
            .map(Received::json)
            .find(|b| b["event"] == "run.failed")
            .unwrap();
        assert!(
            failed_body["outcome"]
                .as_str()
                .unwrap()
                .starts_with("failed: "),
            "{failed_body}"
        );
        // A receiver answering 500: six attempts, then given up with its answer in the log.
        let given_up = channel_when(&admin, &console, &failing, "the 500 given up on", |d| {
            has_delivery(d, "run.failed", "failed")
        })
        .await;
        let entry = &deliveries(&given_up)[0];
        assert_eq!(
            (entry["attempts"].as_i64(), entry["last_status"].as_i64()),
            (Some(6), Some(500)),
            "{entry}"
        );
        assert!(
            entry["last_error"]
                .as_str()
                .unwrap()
                .contains("500 Internal Server Error: receiver exploded"),
            "{entry}"
        );
        assert_eq!(receiver.at("/fail").len(), 6);
        assert_eq!(given_up["channel"]["failed"], 1);

        // The hanging receiver: its attempt ends at the timeout and is tried again later.
        let timed_out = channel_when(&admin, &console, &hanging, "the hang timed out", |d| {
            deliveries(d)
                .iter()
                .any(|e| e["attempts"].as_i64() >= Some(1))
        })
        .await;
        let entry = deliveries(&timed_out)
            .into_iter()
            .find(|e| e["attempts"].as_i64() >= Some(1))
            .unwrap();
        assert_eq!(entry["last_error"], "no answer within 8s", "{entry}");
        assert_eq!(entry["status"], "pending");

        // Send test: to that channel, whatever events it wants.
        assert_eq!(
            call(
                &admin,
                &console,
                "send_test_notification",
                &[("id", &slack)]
            )
            .await
            .status(),
            200
        );
        channel_when(&admin, &console, &slack, "the test sent", |d| {
            has_delivery(d, "test", "sent")
        })
        .await;
        assert!(receiver.at("/slack/").iter().any(
            |r| r.json()["blocks"][0]["text"]["text"] == "Test message for channel team-slack"
        ));

        // No secret anywhere: not the run's in a payload, not an address in a page, the
        // channel list, the audit trail or the store (sealed there).
        for request in receiver.everything() {
            let text = format!(
                "{:?}{}",
                request.headers,
                String::from_utf8_lossy(&request.body)
            );
            assert!(
                !text.contains(RUN_SECRET),
                "the run's secret in a payload: {text}"
            );
            assert!(
                !text.contains("hook-secret"),
                "an address in a payload: {text}"
            );
        }
        let page = console.page(&admin, "/notifications").await;
        assert!(
            page.contains("team-slack") && !page.contains("hook-secret"),
            "{page}"
        );
        let listed = call(&admin, &console, "notification_channels", &[])
            .await
            .text()
            .await
            .unwrap();
        assert!(
            listed.contains("/…") && !listed.contains("hook-secret"),
            "{listed}"
        );
        let opened = store.open().await;
        let stored: Vec<(String,)> = sqlx::query_as(
            "SELECT address_sealed || signing_sealed || address_hint FROM notification_channels \
             UNION ALL SELECT message FROM notification_outbox UNION ALL SELECT detail FROM audit_events",
        )
        .fetch_all(opened.pool())
        .await
        .unwrap();
        for (text,) in &stored {
            assert!(
                !text.contains("hook-secret")
                    && !text.contains(&signing_secret)
                    && !text.contains(RUN_SECRET),
                "{text}"
            );
        }
        opened.close().await;

        // The command line: the address from standard input, never an argument.
        let with_store = |args: &[&'static str]| -> Vec<String> {
            args.iter()
                .map(|a| a.to_string())
                .chain(flags.iter().cloned())
                .collect()
        };
        let args = with_store(&[
            "channel",
            "add",
            "cli-hook",
            "--kind",
            "webhook",
            "--events",
            "run.failed,approval.requested",
        ]);
        let added = run_with_stdin(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            &format!("{base}/generic/cli-hook-secret\n"),
        )
        .await;
        added.assert_success();
        assert!(
            added.stdout.contains("signing secret (shown this once"),
            "{}",
            added.stdout
        );
        let args = with_store(&[
            "channel",
            "add",
            "ftp",
            "--kind",
            "slack",
            "--events",
            "run.failed",
        ]);
        let refused = run_with_stdin(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            "ftp://files.example/x\n",
        )
        .await;
        assert_eq!(refused.code, Some(1));
        assert!(
            refused.stderr.contains("must start with https://"),
            "{}",
            refused.stderr
        );
        let args = with_store(&["channel", "list"]);
        let listed = run_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
        assert!(
            listed
                .stdout
                .contains("cli-hook  webhook  http://127.0.0.1:")
                && !listed.stdout.contains("cli-hook-secret"),
            "{}",
            listed.stdout
        );
        let args = with_store(&["channel", "test", "cli-hook"]);
        run_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
            .await
            .assert_success();
        for _ in 0..100 {
            if !receiver.at("/generic/cli-hook-secret").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            receiver.at("/generic/cli-hook-secret")[0].json()["event"],
            "test"
        );
        console.terminate().await;
    }
}

/// An approval's request and decision are told to the channels that want them, in the
/// audited change's own transaction: undone with it, and only to enabled channels.
#[tokio::test]
async fn approvals_are_told_in_the_transaction_of_the_change_on_both_stores() {
    use app::audit::service::{Actor, Audited};
    use app::notifications::service::{self, NewChannel};
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        let admin = Actor::system();
        let channel = |name: &str, events: &[&str]| NewChannel {
            name: name.into(),
            kind: "webhook".into(),
            address: "https://hooks.example/approvals".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
        };
        let wants = service::add(
            &store,
            &admin,
            &channel("approvals", &["approval.requested", "approval.decided"]),
        )
        .await
        .unwrap();
        service::add(&store, &admin, &channel("runs-only", &["run.failed"]))
            .await
            .unwrap();
        let off = service::add(&store, &admin, &channel("off", &["approval.requested"]))
            .await
            .unwrap();
        service::set_enabled(&store, &admin, &off.id, false)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO approvals (id, stack, operation, target, options, reason, requested_by, \
             requester_id, requester_session, plan, facts, digest, required, status, status_note, \
             run_id, created_at, expires_at) \
             VALUES ('ap-1', 'alpha', 'rollback', '', '', 'the checkout is down', 'ada', '', '', '', \
             '', '', 1, 'waiting', '', '', '', '')",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let ada = Actor {
            name: "ada".into(),
            client_addr: "127.0.0.1".into(),
        };
        let dee = Actor {
            name: "dee".into(),
            client_addr: "127.0.0.1".into(),
        };

        // One audited change, committed or undone.
        let audited = |actor: Actor,
                       action: &'static str,
                       target: &'static str,
                       detail: Value,
                       keep: bool| {
            let store = store.clone();
            async move {
                let mut audited = Audited::begin(&store).await.unwrap();
                audited
                    .append(&actor, action, target, detail)
                    .await
                    .unwrap();
                if keep {
                    audited.commit().await.unwrap();
                } else {
                    audited.rollback().await.unwrap();
                }
            }
        };
        let requested = || serde_json::json!({ "approval": "ap-1" });

        // Undone: nothing is told.
        audited(
            ada.clone(),
            "approval.requested",
            "alpha",
            requested(),
            false,
        )
        .await;
        let queued = |store: app::store::Store| async move {
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT channel_id, event, message FROM notification_outbox ORDER BY created_at, event",
            )
            .fetch_all(store.pool())
            .await
            .unwrap();
            rows
        };
        assert!(queued(store.clone()).await.is_empty(), "{backend:?}");

        audited(ada, "approval.requested", "alpha", requested(), true).await;
        audited(
            dee,
            "approval.approved",
            "ap-1",
            serde_json::json!({ "status": "approved" }),
            true,
        )
        .await;

        let rows = queued(store.clone()).await;
        assert_eq!(rows.len(), 2, "{backend:?}: {rows:?}");
        assert!(
            rows.iter().all(|(channel, ..)| *channel == wants.id),
            "only the channel that wants approvals"
        );
        let messages: Vec<Value> = rows
            .iter()
            .map(|(.., m)| serde_json::from_str(m).unwrap())
            .collect();
        let requested = messages
            .iter()
            .find(|m| m["event"] == "approval.requested")
            .unwrap();
        assert_eq!(requested["title"], "Approval requested: rollback of alpha");
        assert_eq!(
            requested["outcome"],
            "waiting for a decision: the checkout is down"
        );
        assert_eq!(
            (requested["who"].as_str(), requested["path"].as_str()),
            (Some("ada"), Some("/approvals/ap-1"))
        );
        let decided = messages
            .iter()
            .find(|m| m["event"] == "approval.decided")
            .unwrap();
        assert_eq!(decided["title"], "Approved: rollback of alpha");
        assert_eq!(
            decided["outcome"],
            "decided by dee; the request is now approved"
        );
        store.close().await;
    }
}

/// Milestones whose time came and the newest backup unproven for a day are told of once each:
/// a second look tells nothing new.
#[tokio::test]
async fn due_milestones_and_an_unproven_newest_backup_are_told_once_on_both_stores() {
    use app::audit::service::Actor;
    use app::notifications::{reminders, service};
    let now = chrono::Utc::now();
    let at = |minutes: i64| app::store::utc_text(now + chrono::Duration::minutes(minutes));
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        let request = service::NewChannel {
            name: "release-room".into(),
            kind: "slack".into(),
            address: "https://hooks.example/room".into(),
            events: vec![
                "release.milestone_due".into(),
                "release.milestone_overdue".into(),
                "backup.unverified".into(),
            ],
        };
        service::add(&store, &Actor::system(), &request)
            .await
            .unwrap();
        // T-0 in ten minutes: T-15m came five minutes ago, T-30m forty minutes ago (overdue),
        // T-60m is done by its evidence (no checklist item is open), T-24h is too far back.
        sqlx::query(
            "INSERT INTO releases (id, stack, version, sets, operation, planned_at, owner, notes, \
             state, run_id, created_by, created_at) \
             VALUES ('rel-1', 'alpha', '2.4.0', '', 'update', $1, 'ada', '', 'planned', '', 'ada', $2)",
        )
        .bind(at(10))
        .bind(at(-2000))
        .execute(store.pool())
        .await
        .unwrap();
        for (position, (key, offset)) in [
            ("announce", -1440),
            ("checklist", -60),
            ("backup", -30),
            ("notify-start", -15),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query(
                "INSERT INTO release_milestones (release_id, position, milestone_key, offset_minutes, \
                 action, role, notes, state, marked_by, marked_at, reason) \
                 VALUES ('rel-1', $1, $2, $3, $4, 'operator', '', 'due', '', '', '')",
            )
            .bind(position as i64)
            .bind(key)
            .bind(offset)
            .bind(format!("do {key}"))
            .execute(store.pool())
            .await
            .unwrap();
        }
        // alpha's newest backup is a day old and unproven (an older one too: not told);
        // beta's newest is proven; gamma's is unproven for two hours only.
        for (id, stack, finished, verification) in [
            ("b-old", "alpha", -3 * 1440, "unverified"),
            ("b-new", "alpha", -25 * 60, "unverified"),
            ("b-beta", "beta", -3 * 1440, "verified"),
            ("b-gamma", "gamma", -120, "unverified"),
        ] {
            sqlx::query(
                "INSERT INTO backups (id, stack, service, file, size_bytes, sha256, started_at, \
                 finished_at, requested_by, reason, run_id, migration_head, images, verification, created_at) \
                 VALUES ($1, $2, 'db', '/x', 1, '', $3, $4, 'slipway', 'scheduled', '', '', '{}', $5, $3)",
            )
            .bind(id)
            .bind(stack)
            .bind(at(finished - 1))
            .bind(at(finished))
            .bind(verification)
            .execute(store.pool())
            .await
            .unwrap();
        }

        assert_eq!(
            reminders::remind_at(&store, now).await.unwrap(),
            3,
            "{backend:?}"
        );
        assert_eq!(
            reminders::remind_at(&store, now).await.unwrap(),
            0,
            "{backend:?}: told once"
        );
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT event, message FROM notification_outbox ORDER BY event")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let told: Vec<(String, String)> = rows
            .iter()
            .map(|(event, message)| {
                let message: Value = serde_json::from_str(message).unwrap();
                (event.clone(), message["title"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(
            told,
            [
                (
                    "backup.unverified".to_owned(),
                    "The newest backup of alpha is not proven".to_owned()
                ),
                (
                    "release.milestone_due".to_owned(),
                    "Due now: do notify-start (T-15m of alpha 2.4.0)".to_owned()
                ),
                (
                    "release.milestone_overdue".to_owned(),
                    "Overdue: do backup (T-30m of alpha 2.4.0)".to_owned()
                ),
            ],
            "{backend:?}"
        );
        store.close().await;
    }
}
