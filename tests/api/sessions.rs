//! Server-side sessions under concurrency, sign-out and idling: what is saved, when, and
//! what a stale or unknown cookie can and cannot do.

use std::time::Duration;

use app::auth::session_store::SqlSessionStore;
use app::auth::Role;
use tower_sessions::session::{Id, Record};
use tower_sessions::SessionStore;

use crate::helpers::{
    call, client_with_jar, replaying, session_cookie, sign_in, signed_in, Backend, EventStream,
    RunningConsole, SamplePortal, TestStore, BACKENDS,
};

async fn session_rows(store: &TestStore) -> i64 {
    let opened = store.open().await;
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
        .fetch_one(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    rows
}

#[tokio::test]
async fn saving_a_session_that_was_signed_out_meanwhile_does_not_bring_it_back() {
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let sessions = SqlSessionStore::new(store.open().await);
        let mut record = Record {
            id: Id::default(),
            data: [("signed_in".to_owned(), serde_json::json!({"user_id": "u"}))].into(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
        };
        sessions.create(&mut record).await.unwrap();
        // A request loaded the session; sign-out deletes it; the request then saves.
        let loaded = sessions.load(&record.id).await.unwrap().expect("stored");
        sessions.delete(&record.id).await.unwrap();
        sessions.save(&loaded).await.unwrap();
        assert!(
            sessions.load(&record.id).await.unwrap().is_none(),
            "{backend:?}: the signed-out session came back"
        );
        assert_eq!(session_rows(&store).await, 0, "{backend:?}");
    }
}

#[tokio::test]
async fn an_unknown_cookie_and_a_stranger_write_nothing() {
    let store = TestStore::new(Backend::Sqlite).await;
    let console = RunningConsole::start(&store).await;
    let stranger = replaying(&console, &Id::default().to_string());
    for path in ["/healthz", "/", "/sign-in", "/pkg/slipway.css"] {
        stranger.get(console.url(path)).send().await.unwrap();
    }
    call(&stranger, &console, "console_status", &[]).await;
    let (anonymous, _) = client_with_jar();
    anonymous.get(console.url("/sign-in")).send().await.unwrap();
    assert_eq!(session_rows(&store).await, 0);
}

#[tokio::test]
async fn a_persons_clicks_move_the_idle_deadline_in_steps_not_on_every_request() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("paula", Role::Viewer).await;
    // A 150 s idle timeout moves in steps of five seconds (a thirtieth): wide enough that a
    // slow first page on a busy machine still falls inside the step sign-in started.
    let console = RunningConsole::start_with(&store, &["--idle-timeout", "150s"]).await;
    let (browser, _jar) = client_with_jar();
    assert_eq!(
        sign_in(&browser, &console, "paula", &password)
            .await
            .status(),
        200
    );
    // A saved session is sent back as its cookie: the header says whether the request wrote it.
    let wrote_session = |response: &reqwest::Response| {
        assert_eq!(response.status(), 200);
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|cookie| cookie.to_str().unwrap().starts_with("slipway_session="))
    };
    let page = console.url("/");
    let right_after_sign_in = browser.get(&page).send().await.unwrap();
    assert!(!wrote_session(&right_after_sign_in));
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let a_step_later = browser.get(&page).send().await.unwrap();
    assert!(wrote_session(&a_step_later), "the deadline moved on");
    let at_once_again = browser.get(&page).send().await.unwrap();
    assert!(!wrote_session(&at_once_again));
}

#[tokio::test]
async fn many_parallel_requests_of_one_session_all_succeed() {
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let password = store.add_user("paula", Role::Viewer).await;
        let console = RunningConsole::start(&store).await;
        let (browser, jar) = client_with_jar();
        assert_eq!(
            sign_in(&browser, &console, "paula", &password)
                .await
                .status(),
            200
        );
        let cookie = session_cookie(&jar, &console).unwrap();
        let mut requests = tokio::task::JoinSet::new();
        for index in 0..200 {
            let client = replaying(&console, &cookie);
            let page = console.url("/");
            let function = console.url("/api/console_status");
            requests.spawn(async move {
                let request = if index % 2 == 0 {
                    client.get(page)
                } else {
                    client.post(function)
                };
                request
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .unwrap_or(0)
            });
        }
        let statuses = requests.join_all().await;
        let failed: Vec<_> = statuses.iter().filter(|status| **status != 200).collect();
        assert!(failed.is_empty(), "{backend:?}: {failed:?}");
    }
}

#[tokio::test]
async fn a_session_idles_out_despite_background_refreshes_and_ends_at_its_absolute_limit() {
    // Wide margins: the machine may be busy with other tests.
    const IDLE: u64 = 6;
    const ABSOLUTE: u64 = 20;
    let portal = SamplePortal::add("slipidle").await;
    let password = portal.store.add_user("ida", Role::Viewer).await;
    let console = RunningConsole::start_with(
        &portal.store,
        &[
            "--idle-timeout",
            &format!("{IDLE}s"),
            "--absolute-timeout",
            &format!("{ABSOLUTE}s"),
        ],
    )
    .await;
    let status = |client: reqwest::Client, refresh: &'static str| {
        let console = &console;
        async move {
            call(
                &client,
                console,
                "stack_status",
                &[("name", "portal"), ("refresh", refresh)],
            )
            .await
            .status()
            .as_u16()
        }
    };

    let idle = async {
        let client = signed_in(&console, "ida", &password).await;
        // A stack page left open refreshes every few seconds on its own.
        let mut refreshes = Vec::new();
        for _ in 0..(IDLE + 3) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            refreshes.push(status(client.clone(), "true").await);
        }
        (refreshes, status(client, "false").await)
    };
    let busy = async {
        let client = signed_in(&console, "ida", &password).await;
        let started = tokio::time::Instant::now();
        let view = || async {
            client
                .get(console.url("/"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        // A person clicking every second for twice the idle timeout…
        let mut kept = Vec::new();
        while started.elapsed() < Duration::from_secs(2 * IDLE) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            kept.push(view().await);
        }
        // …and on, past the absolute limit.
        while started.elapsed() < Duration::from_secs(ABSOLUTE + 1) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            view().await;
        }
        (kept, status(client, "false").await)
    };
    let ((refreshes, idle_status), (kept, busy_status)) = tokio::join!(idle, busy);
    assert_ne!(refreshes[0], 401, "signed in at first: {refreshes:?}");
    assert_eq!(
        idle_status, 401,
        "refreshes alone do not keep a session: {refreshes:?}"
    );
    assert!(kept.iter().all(|status| *status == 200), "{kept:?}");
    assert_eq!(busy_status, 401, "past the absolute limit");
}

#[tokio::test]
async fn an_open_stream_ends_when_its_session_is_signed_out() {
    let portal = SamplePortal::add("slipstreamout").await;
    let password = portal.store.add_user("otto", Role::Viewer).await;
    let console = RunningConsole::start(&portal.store).await;
    let logs = app::stacks::log_events_path("portal");
    let leaving = signed_in(&console, "otto", &password).await;
    let staying = signed_in(&console, "otto", &password).await;
    let mut left = EventStream::open(&leaving, &console, &logs, None)
        .await
        .expect("a stream");
    let mut stays = EventStream::open(&staying, &console, &logs, None)
        .await
        .expect("a stream");
    assert_eq!(
        call(&leaving, &console, "sign_out", &[]).await.status(),
        200
    );
    assert!(
        left.next(Duration::from_secs(30)).await.is_none(),
        "the signed-out session's stream ended"
    );
    let still_open =
        tokio::time::timeout(Duration::from_secs(2), stays.next(Duration::from_secs(60))).await;
    assert!(
        still_open.is_err(),
        "the other session's stream goes on: {still_open:?}"
    );
}
