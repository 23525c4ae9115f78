//! The store behaves the same on SQLite and on PostgreSQL.

use app::store::{Backend as StoreBackend, Store, StoreError, StoreLocation};
use app::system::{recent_starts, record_start};

use crate::helpers::{Backend, TestStore, BACKENDS};

#[tokio::test]
async fn migrations_apply_from_nothing_and_a_second_open_changes_nothing() {
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = Store::open(&test_store.location).await.unwrap();
        let applied = store.migrations_applied().await.unwrap();
        assert!(applied >= 1, "{backend:?}: {applied} migrations");
        store.close().await;

        let reopened = Store::open(&test_store.location).await.unwrap();
        assert_eq!(
            reopened.migrations_applied().await.unwrap(),
            applied,
            "{backend:?}"
        );
        reopened.close().await;
    }
}

#[tokio::test]
async fn the_store_reports_which_engine_holds_it() {
    for (backend, expected) in [
        (Backend::Sqlite, StoreBackend::Sqlite),
        (Backend::Postgres, StoreBackend::Postgres),
    ] {
        let test_store = TestStore::new(backend).await;
        let store = Store::open(&test_store.location).await.unwrap();
        assert_eq!(store.backend(), expected);
        store.ping().await.unwrap();
        store.close().await;
    }
}

#[tokio::test]
async fn console_starts_are_recorded_and_read_back_newest_first() {
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = Store::open(&test_store.location).await.unwrap();
        let first = record_start(&store, "0.1.0").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let second = record_start(&store, "0.2.0").await.unwrap();

        let starts = recent_starts(&store, 10).await.unwrap();
        assert_eq!(starts, vec![second.clone(), first], "{backend:?}");
        assert_eq!(recent_starts(&store, 1).await.unwrap(), vec![second]);
        store.close().await;
    }
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let location =
        StoreLocation::Url("postgres://slipway:hunter2-secret@127.0.0.1:1/slipway".into());
    let error = Store::open(&location).await.unwrap_err();
    assert!(matches!(error, StoreError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_database_url_of_another_kind_is_refused_with_the_accepted_forms() {
    let location = StoreLocation::Url("mysql://root:pw@127.0.0.1/slipway".into());
    let message = Store::open(&location).await.unwrap_err().to_string();
    assert!(message.contains("postgres://"), "{message}");
    assert!(!message.contains(":pw@"), "{message}");
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"occupied").unwrap();
    let location = StoreLocation::DataDir(file.join("data"));
    let error = Store::open(&location).await.unwrap_err();
    assert!(matches!(error, StoreError::DataDir { .. }), "{error:?}");
    assert!(error.to_string().contains("--data-dir"), "{error}");
    assert_eq!(std::fs::read(&file).unwrap(), b"occupied");
}

/// A run held by another process (the command line, another console) reaches this console's
/// followers at once on PostgreSQL: the store names the run that changed on a channel.
#[tokio::test]
async fn postgres_announces_each_run_change_and_sqlite_has_no_listener() {
    let sqlite = TestStore::new(Backend::Sqlite).await;
    let store = sqlite.open().await;
    let listener = store
        .listener(app::store::RUN_CHANGES_CHANNEL)
        .await
        .unwrap();
    assert!(listener.is_none(), "SQLite cannot listen");
    store.close().await;

    let postgres = TestStore::new(Backend::Postgres).await;
    let store = postgres.open().await;
    let mut listener = store
        .listener(app::store::RUN_CHANGES_CHANNEL)
        .await
        .unwrap()
        .expect("a PostgreSQL listener");
    sqlx::query(
        "INSERT INTO runs (id, stack, operation, status, requested_by, holder, started_at, \
         finished_at, error, cancel_requested, created_at) \
         VALUES ('run-heard', 'shop', 'deploy', 'running', 'ada', 'cli', '', '', '', 0, '')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO run_steps (run_id, position, name, status, started_at, finished_at, created_at) \
         VALUES ('run-heard', 0, 'Start', 'pending', '', '', '')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(heard(&mut listener).await, "run-heard", "a step planned");
    sqlx::query(
        "INSERT INTO run_lines (run_id, seq, step, at, text, created_at) \
         VALUES ('run-heard', 1, 0, '', 'starting', '')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(heard(&mut listener).await, "run-heard", "a line written");
    sqlx::query("UPDATE runs SET status = 'succeeded' WHERE id = 'run-heard'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(heard(&mut listener).await, "run-heard", "the run ended");
    store.close().await;
}

/// The next notice's payload, waited for at most 10 s.
async fn heard(listener: &mut sqlx::postgres::PgListener) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
        .await
        .expect("a notice within 10 s")
        .unwrap()
        .payload()
        .to_owned()
}
