//! The history on a seeded store of 10,000 runs, on SQLite and PostgreSQL: filters return
//! the right runs, keyset pages stay stable while new runs arrive, the CSV parses back, and
//! the export is for signed-in viewers only.

use app::auth::Role;
use app::history::{service, HistoryEntry, HistoryFilter};
use app::store::Store;

use crate::helpers::{client, signed_in, Backend, RunningConsole, TestStore, BACKENDS};

const STACKS: [&str; 3] = ["alpha", "beta", "gamma"];
const OPERATIONS: [&str; 4] = ["deploy", "update", "rollback", "migrate"];
const OUTCOMES: [&str; 3] = ["succeeded", "failed", "succeeded"];
const PEOPLE: [&str; 3] = ["ada", "bob", "cy"];

/// One seeded run as the test knows it.
#[derive(Clone, Debug)]
struct Seeded {
    id: String,
    stack: &'static str,
    operation: &'static str,
    status: &'static str,
    requested_by: &'static str,
    started_at: String,
    approved_by_dee: bool,
    version: Option<String>,
    image: Option<String>,
}

fn seeded(n: usize) -> Seeded {
    // One run a minute from 2026-01-01; ids sort like their number.
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
        + chrono::Duration::minutes(n as i64);
    // Stack, outcome, operation and person vary independently of each other.
    let status = OUTCOMES[(n / 3) % 3];
    let operation = OPERATIONS[(n / 9) % 4];
    Seeded {
        id: format!("run-{n:06}"),
        stack: STACKS[n % 3],
        operation,
        status,
        requested_by: PEOPLE[(n / 2) % 3],
        started_at: start.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        approved_by_dee: n.is_multiple_of(50),
        version: (n % 100 == 7).then(|| format!("2.{}.0", n / 100)),
        image: (status == "succeeded" && operation != "migrate").then(|| format!("shop:{n}")),
    }
}

async fn insert(store: &Store, runs: &[Seeded]) {
    let mut tx = store.pool().begin().await.unwrap();
    for run in runs {
        // An error with a comma, a quote and a line break: the CSV must carry it whole.
        let error = if run.status == "failed" {
            format!("step \"Start web\" failed, {}\nsee the lines", run.id)
        } else {
            String::new()
        };
        sqlx::query(
            "INSERT INTO runs (id, stack, operation, status, requested_by, holder, started_at, \
             finished_at, error, cancel_requested, created_at) \
             VALUES ($1, $2, $3, $4, $5, '', $6, $6, $7, 0, $6)",
        )
        .bind(&run.id)
        .bind(run.stack)
        .bind(run.operation)
        .bind(run.status)
        .bind(run.requested_by)
        .bind(&run.started_at)
        .bind(&error)
        .execute(&mut *tx)
        .await
        .unwrap();
        if let Some(version) = &run.version {
            sqlx::query(
                "INSERT INTO releases (id, stack, version, sets, operation, planned_at, owner, notes, \
                 state, run_id, created_by, created_at) \
                 VALUES ($1, $2, $3, '', $4, $5, 'ada', '', 'shipped', $6, 'ada', $5)",
            )
            .bind(format!("release-{}", run.id))
            .bind(run.stack)
            .bind(version)
            .bind(run.operation)
            .bind(&run.started_at)
            .bind(&run.id)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        if run.approved_by_dee {
            let approval = format!("approval-{}", run.id);
            sqlx::query(
                "INSERT INTO approvals (id, stack, operation, target, options, reason, requested_by, \
                 requester_id, requester_session, plan, facts, digest, required, status, status_note, \
                 run_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, '', '', 'seeded', $4, '', '', '', '', '', 1, 'used', '', $5, $6, $6)",
            )
            .bind(&approval)
            .bind(run.stack)
            .bind(run.operation)
            .bind(run.requested_by)
            .bind(&run.id)
            .bind(&run.started_at)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO approval_decisions (approval_id, user_id, user_name, decision, comment, decided_at) \
                 VALUES ($1, 'dee-id', 'dee', 'approved', '', $2)",
            )
            .bind(&approval)
            .bind(&run.started_at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        if let Some(image) = &run.image {
            sqlx::query(
                "INSERT INTO run_images (run_id, service, image, image_id, created_at) \
                 VALUES ($1, 'web', $2, $3, $4)",
            )
            .bind(&run.id)
            .bind(image)
            .bind(format!("sha256:{:0>64}", run.id.trim_start_matches("run-")))
            .bind(&run.started_at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Every page of the filtered history, following the cursor.
async fn every_page(store: &Store, filter: &HistoryFilter) -> Vec<HistoryEntry> {
    let mut filter = filter.clone();
    let mut all = Vec::new();
    loop {
        let page = service::page(store, &filter).await.unwrap();
        assert!(page.entries.len() <= service::PAGE);
        all.extend(page.entries);
        match page.next {
            Some(next) => filter.before = next,
            None => return all,
        }
    }
}

/// The seeded runs a filter should return, newest first.
fn expected(runs: &[Seeded], keep: impl Fn(&Seeded) -> bool) -> Vec<String> {
    runs.iter()
        .rev()
        .filter(|run| keep(run))
        .map(|run| run.id.clone())
        .collect()
}

fn ids(entries: &[HistoryEntry]) -> Vec<String> {
    entries.iter().map(|entry| entry.run_id.clone()).collect()
}

#[tokio::test]
async fn the_history_filters_pages_and_exports_ten_thousand_runs_on_both_stores() {
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        let runs: Vec<Seeded> = (0..10_000).map(seeded).collect();
        insert(&store, &runs).await;

        // Stack and outcome, every page.
        let filter = HistoryFilter {
            stack: "beta".into(),
            outcome: "failed".into(),
            ..HistoryFilter::default()
        };
        let beta_failed = every_page(&store, &filter).await;
        assert_eq!(
            ids(&beta_failed),
            expected(&runs, |run| run.stack == "beta" && run.status == "failed"),
            "{backend:?}"
        );
        assert!(beta_failed.len() > 1_000, "{}", beta_failed.len());

        // A person: who started it or who approved it.
        let filter = HistoryFilter {
            person: "dee".into(),
            ..HistoryFilter::default()
        };
        let dee = every_page(&store, &filter).await;
        assert_eq!(
            ids(&dee),
            expected(&runs, |run| run.approved_by_dee),
            "{backend:?}"
        );
        assert!(dee.iter().all(|entry| entry.approved_by == ["dee"]));
        let filter = HistoryFilter {
            person: "bob".into(),
            operation: "rollback".into(),
            ..HistoryFilter::default()
        };
        assert_eq!(
            ids(&every_page(&store, &filter).await),
            expected(&runs, |run| run.requested_by == "bob"
                && run.operation == "rollback"),
        );

        // Dates (until is inclusive) and text in the release's version.
        let filter = HistoryFilter {
            since: "2026-01-03".into(),
            until: "2026-01-04".into(),
            ..HistoryFilter::default()
        };
        assert_eq!(
            ids(&every_page(&store, &filter).await),
            expected(&runs, |run| run.started_at.as_str() >= "2026-01-03"
                && run.started_at.as_str() < "2026-01-05"),
        );
        let filter = HistoryFilter {
            version: "2.1".into(),
            ..HistoryFilter::default()
        };
        let released = every_page(&store, &filter).await;
        assert_eq!(
            ids(&released),
            expected(&runs, |run| run
                .version
                .as_deref()
                .is_some_and(|version| version.contains("2.1"))),
        );
        assert!(released
            .iter()
            .all(|entry| entry.release_version.contains("2.1")));
        // `%` and `_` are text, not patterns.
        let filter = HistoryFilter {
            version: "%".into(),
            ..HistoryFilter::default()
        };
        assert!(service::page(&store, &filter)
            .await
            .unwrap()
            .entries
            .is_empty());

        // From → to images: the stack's previous recorded images.
        let newest = service::page(&store, &HistoryFilter::default())
            .await
            .unwrap();
        let with_images = newest
            .entries
            .iter()
            .find(|entry| !entry.images.is_empty())
            .expect("a recent run changed images");
        let run = runs
            .iter()
            .find(|run| run.id == with_images.run_id)
            .unwrap();
        let before = runs
            .iter()
            .rev()
            .filter(|other| other.stack == run.stack && other.started_at < run.started_at)
            .find_map(|other| other.image.clone())
            .unwrap();
        let change = &with_images.images[0];
        assert!(
            change.from.starts_with(&format!("{before} (")),
            "{change:?}"
        );
        assert!(
            change
                .to
                .starts_with(&format!("{} (", run.image.clone().unwrap())),
            "{change:?}"
        );

        // Pages stay stable while new runs arrive: the second page continues the first.
        let filter = HistoryFilter {
            stack: "alpha".into(),
            ..HistoryFilter::default()
        };
        let all_alpha = expected(&runs, |run| run.stack == "alpha");
        let first = service::page(&store, &filter).await.unwrap();
        let newer: Vec<Seeded> = (10_000..10_006).map(seeded).collect();
        insert(&store, &newer).await;
        let second = service::page(
            &store,
            &HistoryFilter {
                before: first.next.clone().unwrap(),
                ..filter.clone()
            },
        )
        .await
        .unwrap();
        let mut seen = ids(&first.entries);
        seen.extend(ids(&second.entries));
        assert_eq!(seen, all_alpha[..2 * service::PAGE].to_vec());

        // Bad filters are refused with the reason.
        for (filter, reason) in [
            (
                HistoryFilter {
                    since: "yesterday".into(),
                    ..HistoryFilter::default()
                },
                "since: a date",
            ),
            (
                HistoryFilter {
                    operation: "explode".into(),
                    ..HistoryFilter::default()
                },
                "unknown operation",
            ),
            (
                HistoryFilter {
                    outcome: "great".into(),
                    ..HistoryFilter::default()
                },
                "unknown outcome",
            ),
            (
                HistoryFilter {
                    before: "nonsense".into(),
                    ..HistoryFilter::default()
                },
                "cursor",
            ),
        ] {
            let refused = service::page(&store, &filter)
                .await
                .unwrap_err()
                .to_string();
            assert!(refused.contains(reason), "{refused}");
        }

        // The CSV of a filtered view parses back to the same runs, fields whole.
        let filter = HistoryFilter {
            stack: "gamma".into(),
            outcome: "failed".into(),
            ..HistoryFilter::default()
        };
        let text = service::csv(&store, &filter).await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(&headers[0], "run");
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let parsed: Vec<String> = records.iter().map(|record| record[0].to_owned()).collect();
        let mut all = runs.clone();
        all.extend(newer.clone());
        assert_eq!(
            parsed,
            expected(&all, |run| run.stack == "gamma" && run.status == "failed")
        );
        // Every run at once is more than an export holds: refused with the way out.
        let everything = service::csv(&store, &HistoryFilter::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(everything.contains("narrow the filters"), "{everything}");
        let error_column = headers.iter().position(|name| name == "error").unwrap();
        assert_eq!(
            &records[0][error_column],
            format!("step \"Start web\" failed, {}\nsee the lines", parsed[0])
        );
        store.close().await;
    }
}

#[tokio::test]
async fn the_csv_export_is_for_signed_in_viewers() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("vera", Role::Viewer).await;
    let opened = store.open().await;
    insert(&opened, &(0..5).map(seeded).collect::<Vec<_>>()).await;
    // A version a spreadsheet would run as a formula.
    sqlx::query(
        "INSERT INTO releases (id, stack, version, sets, operation, planned_at, owner, notes, \
         state, run_id, created_by, created_at) \
         VALUES ('formula', 'alpha', '=HYPERLINK(\"x\")', '', 'deploy', '', 'ada', '', 'shipped', \
         'run-000003', 'ada', '')",
    )
    .execute(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    let console = RunningConsole::start(&store).await;

    let anonymous = client()
        .get(console.url("/history.csv?stack=alpha"))
        .send()
        .await
        .unwrap();
    assert!(
        anonymous.status() == 401 || anonymous.status().is_redirection(),
        "{}",
        anonymous.status()
    );

    let viewer = signed_in(&console, "vera", &password).await;
    let export = viewer
        .get(console.url("/history.csv?stack=alpha"))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert!(export
        .headers()
        .get("content-disposition")
        .is_some_and(|value| value.to_str().unwrap().contains("attachment")));
    let text = export.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let stacks: Vec<&str> = records.iter().map(|record| &record[1]).collect();
    assert_eq!(stacks, ["alpha", "alpha"]);
    assert_eq!(
        &records[0][9], "'=HYPERLINK(\"x\")",
        "written as text, not a formula"
    );

    let page = viewer
        .get(console.url("/history?stack=alpha"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("run-000003") && !html.contains("run-000004"),
        "{html}"
    );
    // The delivery metrics and their chart are in the page itself (no JavaScript needed).
    assert!(
        html.contains("Deployment frequency") && html.contains("data-testid=\"delivery-chart\""),
        "{html}"
    );
    console.terminate().await;
}

/// A run for the delivery metrics: stack, operation, outcome, when it ended (it started a
/// minute before), and when what it shipped was made (a release's creation or an image's build).
struct Change {
    stack: &'static str,
    operation: &'static str,
    status: &'static str,
    finished: &'static str,
    released: Option<&'static str>,
    built: Option<&'static str>,
}

async fn insert_changes(store: &Store, changes: &[Change]) {
    for (n, change) in changes.iter().enumerate() {
        let finished = chrono::DateTime::parse_from_rfc3339(change.finished).unwrap();
        let started = (finished - chrono::Duration::minutes(1))
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let id = format!("change-{n}");
        sqlx::query(
            "INSERT INTO runs (id, stack, operation, status, requested_by, holder, started_at, \
             finished_at, error, cancel_requested, created_at) \
             VALUES ($1, $2, $3, $4, 'ada', '', $5, $6, '', 0, $5)",
        )
        .bind(&id)
        .bind(change.stack)
        .bind(change.operation)
        .bind(change.status)
        .bind(&started)
        .bind(change.finished)
        .execute(store.pool())
        .await
        .unwrap();
        if let Some(released) = change.released {
            sqlx::query(
                "INSERT INTO releases (id, stack, version, sets, operation, planned_at, owner, notes, \
                 state, run_id, created_by, created_at) \
                 VALUES ($1, $2, '1.0', '', $3, $4, 'ada', '', 'shipped', $5, 'ada', $4)",
            )
            .bind(format!("release-{n}"))
            .bind(change.stack)
            .bind(change.operation)
            .bind(released)
            .bind(&id)
            .execute(store.pool())
            .await
            .unwrap();
        }
        if let Some(built) = change.built {
            sqlx::query(
                "INSERT INTO run_images (run_id, service, image, image_id, created_at, built_at) \
                 VALUES ($1, 'web', 'web:1', 'sha256:1', $2, $3)",
            )
            .bind(&id)
            .bind(change.finished)
            .bind(built)
            .execute(store.pool())
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn delivery_metrics_equal_hand_computed_values_on_both_stores() {
    use app::history::delivery::report_at;
    // One window of the report the console shows, counted afresh at `now`.
    async fn metrics(
        store: &Store,
        stack: &str,
        days: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<app::history::DeliveryMetrics, app::history::HistoryError> {
        let windows = report_at(store, stack, now).await?;
        Ok(windows
            .into_iter()
            .find(|window| window.days == days)
            .expect("a window of those days"))
    }
    let change = |stack, operation, status, finished| Change {
        stack,
        operation,
        status,
        finished,
        released: None,
        built: None,
    };
    let changes = [
        // 50 days before: only in the 90 days. Lead time 24 h from its release.
        Change {
            released: Some("2026-01-09T10:00:00.000Z"),
            ..change("shop", "deploy", "succeeded", "2026-01-10T10:00:00.000Z")
        },
        // Lead time 2 h from its release.
        Change {
            released: Some("2026-02-01T08:00:00.000Z"),
            ..change("shop", "deploy", "succeeded", "2026-02-01T10:00:00.000Z")
        },
        // A failed change, restored half an hour later by a rollback.
        change("shop", "update", "failed", "2026-02-03T10:00:00.000Z"),
        change("shop", "rollback", "succeeded", "2026-02-03T10:30:00.000Z"),
        // Succeeded but rolled back an hour later: a failed change too. Lead 6 h from its image.
        Change {
            built: Some("2026-02-10T06:00:00.000Z"),
            ..change("shop", "update", "succeeded", "2026-02-10T12:00:00.000Z")
        },
        // A run that changes nothing between the change and its rollback does not hide it.
        change("shop", "backup", "succeeded", "2026-02-10T12:30:00.000Z"),
        change("shop", "rollback", "succeeded", "2026-02-10T13:00:00.000Z"),
        // No release, no labelled image: no lead time.
        change("shop", "migrate", "succeeded", "2026-02-20T09:00:00.000Z"),
        // Not a change.
        change("shop", "backup", "succeeded", "2026-02-21T09:00:00.000Z"),
        // Another stack: lead 24 h from its image.
        Change {
            built: Some("2026-02-14T00:00:00.000Z"),
            ..change("other", "deploy", "succeeded", "2026-02-15T00:00:00.000Z")
        },
    ];
    let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        insert_changes(&store, &changes).await;

        let all = metrics(&store, "", 30, now).await.unwrap();
        assert_eq!(
            (all.changes, all.deployments, all.failed_changes),
            (5, 4, 2),
            "{backend:?}"
        );
        assert!((all.per_week - 4.0 / (30.0 / 7.0)).abs() < 1e-9);
        assert_eq!((all.lead_time_hours, all.lead_time_samples), (Some(6.0), 3));
        assert_eq!(all.failure_rate, Some(0.4));
        assert_eq!(
            (all.time_to_restore_hours, all.restore_samples),
            (Some(0.75), 2)
        );
        assert_eq!(all.weekly.len(), 5);
        // Each change in one bar: 3 held, 2 failed (one rolled back); the newest week ends now.
        assert_eq!(
            all.weekly.iter().map(|week| week.deployments).sum::<i64>(),
            3
        );
        assert_eq!(all.weekly.iter().map(|week| week.failed).sum::<i64>(), 2);
        assert_eq!(all.weekly.last().unwrap().starts, "2026-02-22");

        let shop = metrics(&store, "shop", 30, now).await.unwrap();
        assert_eq!(
            (shop.changes, shop.deployments, shop.failed_changes),
            (4, 3, 2)
        );
        assert_eq!(shop.lead_time_hours, Some(4.0));
        assert_eq!(shop.failure_rate, Some(0.5));

        let quarter = metrics(&store, "", 90, now).await.unwrap();
        assert_eq!((quarter.changes, quarter.deployments), (6, 5));
        assert_eq!(
            (quarter.lead_time_hours, quarter.lead_time_samples),
            (Some(15.0), 4)
        );
        assert_eq!(quarter.failure_rate, Some(2.0 / 6.0));

        let empty = metrics(&store, "nothing", 30, now).await.unwrap();
        assert_eq!(
            (empty.changes, empty.failure_rate, empty.lead_time_hours),
            (0, None, None)
        );
        store.close().await;
    }
}

/// One run of the test's own: id, stack, operation, outcome, minute of 2026-03-01 10:00 it
/// started (it ends 30 s later), the release it shipped, the images it recorded (service,
/// image, id).
type Run<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    u32,
    Option<&'a str>,
    &'a [(&'a str, &'a str, &'a str)],
);

async fn insert_runs(store: &Store, runs: &[Run<'_>]) {
    for (id, stack, operation, status, minute, release, images) in runs {
        let at = format!("2026-03-01T10:{minute:02}:00.000Z");
        let ended = format!("2026-03-01T10:{minute:02}:30.000Z");
        sqlx::query(
            "INSERT INTO runs (id, stack, operation, status, requested_by, holder, started_at, \
             finished_at, error, cancel_requested, created_at) \
             VALUES ($1, $2, $3, $4, 'ada', '', $5, $6, '', 0, $5)",
        )
        .bind(id)
        .bind(stack)
        .bind(operation)
        .bind(status)
        .bind(&at)
        .bind(&ended)
        .execute(store.pool())
        .await
        .unwrap();
        if let Some(version) = release {
            sqlx::query(
                "INSERT INTO releases (id, stack, version, sets, operation, planned_at, owner, notes, \
                 state, run_id, created_by, created_at) \
                 VALUES ($1, $2, $3, '', $4, $5, 'ada', '', 'shipped', $6, 'ada', $5)",
            )
            .bind(format!("release-{version}"))
            .bind(stack)
            .bind(version)
            .bind(operation)
            .bind(&at)
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
        }
        for (service, image, image_id) in images.iter() {
            sqlx::query(
                "INSERT INTO run_images (run_id, service, image, image_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(service)
            .bind(image)
            .bind(image_id)
            .bind(&ended)
            .execute(store.pool())
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn a_release_lists_its_runs_and_a_stack_says_what_runs_since_when_on_both_stores() {
    const V1: &[(&str, &str, &str)] = &[
        ("web", "shop:1", "sha256:aaa"),
        ("db", "postgres:16", "sha256:ddd"),
        ("worker", "shop-worker:1", "sha256:www"),
    ];
    // 2.1.0 has no worker any more; the rollback puts web back, not the worker.
    const V2: &[(&str, &str, &str)] = &[
        ("web", "shop:2", "sha256:bbb"),
        ("db", "postgres:16", "sha256:ddd"),
    ];
    const BACK: &[(&str, &str, &str)] = &[
        ("web", "shop:1", "sha256:aaa"),
        ("db", "postgres:16", "sha256:ddd"),
    ];
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        insert_runs(
            &store,
            &[
                ("r1", "alpha", "deploy", "succeeded", 1, Some("1.0.0"), V1),
                ("other", "beta", "deploy", "succeeded", 2, Some("9.0.0"), V2),
                // A flag changes no image: the line of web's image goes on through it.
                ("r2", "alpha", "flag", "succeeded", 3, None, V1),
                ("b1", "alpha", "backup", "succeeded", 4, None, &[]),
                // A release whose run failed replaced nothing.
                ("r3", "alpha", "update", "failed", 5, Some("2.0.0"), &[]),
                ("r4", "alpha", "update", "succeeded", 6, Some("2.1.0"), V2),
                ("r5", "alpha", "update", "failed", 7, None, &[]),
                ("r6", "alpha", "rollback", "succeeded", 8, None, BACK),
            ],
        )
        .await;

        let runs = |release: &'static str| {
            let store = store.clone();
            async move {
                service::release_runs(&store, release)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|entry| entry.run_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            runs("release-1.0.0").await,
            ["r3", "r2", "r1"],
            "{backend:?}: until 2.1.0 shipped, no backup"
        );
        assert_eq!(runs("release-2.0.0").await, ["r3"], "{backend:?}");
        assert_eq!(
            runs("release-2.1.0").await,
            ["r6", "r5", "r4"],
            "{backend:?}: the last goes on"
        );
        assert!(runs("no-such-release").await.is_empty());

        let running = |stack: &'static str| {
            let store = store.clone();
            async move {
                service::running_now(&store, stack)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.service, s.image, s.run_id, s.release_version, s.since))
                    .collect::<Vec<_>>()
            }
        };
        let text = |items: [(&str, &str, &str, &str, &str); 2]| {
            items
                .map(|(a, b, c, d, e)| {
                    (
                        a.to_owned(),
                        b.to_owned(),
                        c.to_owned(),
                        d.to_owned(),
                        e.to_owned(),
                    )
                })
                .to_vec()
        };
        assert_eq!(
            running("alpha").await,
            text([
                // The database's image has not changed since the first deploy and its release.
                (
                    "db",
                    "postgres:16",
                    "r1",
                    "1.0.0",
                    "2026-03-01T10:01:30.000Z"
                ),
                // Web runs 1's image again since the rollback ended, which shipped no release;
                // the worker 2.1.0 left out runs no more.
                ("web", "shop:1", "r6", "", "2026-03-01T10:08:30.000Z"),
            ]),
            "{backend:?}"
        );
        assert!(running("nothing").await.is_empty());
        insert_runs(
            &store,
            &[("s1", "alpha", "stop", "succeeded", 9, None, &[])],
        )
        .await;
        assert!(running("alpha").await.is_empty(), "{backend:?}: stopped");
        store.close().await;
    }
}
