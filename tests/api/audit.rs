//! The audit trail: append-only in the store itself, hash-chained, free of secrets.

use app::audit::service::{append, Actor};
use app::auth::Role;
use app::store::Backend as Engine;
use serde_json::json;

use crate::helpers::{
    call, client_with_jar, run_to_exit, session_cookie, sign_in, signed_in, RunningConsole,
    TestStore, BACKENDS,
};

#[tokio::test]
async fn the_store_refuses_to_change_or_remove_audit_entries() {
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        append(&store, &Actor::system(), "test.entry", "x", json!({}))
            .await
            .unwrap();
        for statement in [
            "UPDATE audit_events SET target = 'y'",
            "DELETE FROM audit_events",
        ] {
            let refused = sqlx::query(statement).execute(store.pool()).await;
            assert!(refused.is_err(), "{backend:?}: {statement} went through");
        }
        if store.backend() == Engine::Postgres {
            assert!(sqlx::query("TRUNCATE audit_events")
                .execute(store.pool())
                .await
                .is_err());
        }
        store.close().await;
    }
}

#[tokio::test]
async fn audit_verify_names_the_first_entry_changed_behind_the_consoles_back() {
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        three_entries(&store).await;
        let flags = test_store.serve_flags();
        let args = audit_args("verify", &flags, &[]);

        let intact = run_to_exit(&args, &[]).await;
        assert_eq!(intact.code, Some(0), "{backend:?}: {}", intact.stderr);
        assert!(
            intact.stdout.contains("intact: 3 entries"),
            "{}",
            intact.stdout
        );

        // Someone with direct database access switches the guard off and edits a row.
        bypass_the_guard(&store).await;
        sqlx::query("UPDATE audit_events SET target = 'forged' WHERE seq = 2")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;

        let broken = run_to_exit(&args, &[]).await;
        assert_eq!(broken.code, Some(1), "{backend:?}");
        assert!(
            broken.stderr.contains("audit trail broken at entry 2"),
            "{backend:?}: {}",
            broken.stderr
        );
    }
}

#[tokio::test]
async fn no_password_or_session_id_reaches_the_audit_trail() {
    let store = TestStore::new(crate::helpers::Backend::Sqlite).await;
    let root = store.add_user("root", Role::Admin).await;
    let viewer = store.add_user("vic", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    let (admin, jar) = client_with_jar();
    assert_eq!(sign_in(&admin, &console, "root", &root).await.status(), 200);
    let cookie = session_cookie(&jar, &console).unwrap();
    sign_in(&admin, &console, "vic", "a-wrong-password-typed").await;
    let opened = store.open().await;
    let vic = app::auth::users::find_by_name(&opened, "vic")
        .await
        .unwrap()
        .unwrap()
        .id;
    let new_password = "a-brand-new-password-9";
    let reset = call(
        &admin,
        &console,
        "reset_password",
        &[("user_id", &vic), ("password", new_password)],
    )
    .await;
    assert_eq!(reset.status(), 200);

    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT actor, action, target, detail FROM audit_events")
            .fetch_all(opened.pool())
            .await
            .unwrap();
    opened.close().await;
    let text = format!("{rows:?}");
    for secret in [
        root.as_str(),
        viewer.as_str(),
        new_password,
        "a-wrong-password-typed",
        cookie.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "the audit trail holds a secret: {secret}"
        );
    }
    for action in [
        "user.added",
        "auth.sign_in",
        "auth.sign_in_failed",
        "user.password_reset",
    ] {
        assert!(rows.iter().any(|row| row.1 == action), "no {action} entry");
    }
}

#[tokio::test]
async fn the_audit_page_filters_by_action() {
    let store = TestStore::new(crate::helpers::Backend::Sqlite).await;
    let password = store.add_user("tess", Role::Approver).await;
    let console = RunningConsole::start(&store).await;
    let approver = signed_in(&console, "tess", &password).await;
    let html = console.page(&approver, "/audit?action=auth.sign_in").await;
    assert!(html.contains("auth.sign_in"), "{html}");
    assert!(
        !html.contains("user.added"),
        "the filter lets other actions through"
    );
}

/// Switches the store's append-only guard off, as someone with direct database access can.
async fn bypass_the_guard(store: &app::store::Store) {
    let statements: &[&str] = match store.backend() {
        Engine::Sqlite => &[
            "DROP TRIGGER audit_events_no_UPDATE",
            "DROP TRIGGER audit_events_no_DELETE",
        ],
        Engine::Postgres => &["ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"],
    };
    for statement in statements {
        sqlx::query(statement).execute(store.pool()).await.unwrap();
    }
}

async fn three_entries(store: &app::store::Store) {
    for target in ["one", "two", "three"] {
        append(
            store,
            &Actor::system(),
            "test.entry",
            target,
            json!({ "n": target }),
        )
        .await
        .unwrap();
    }
}

fn audit_args<'a>(verb: &'a str, flags: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["audit", verb];
    args.extend(extra);
    args.extend(flags.iter().map(String::as_str));
    args
}

/// An entry's fields as a forger reads them: seq, at, actor, action, target, client, detail,
/// prev_hash.
type EntryRow = (i64, String, String, String, String, String, String, String);

#[tokio::test]
async fn a_chain_rebuilt_without_the_key_after_an_edit_fails_verification() {
    use sha2::{Digest, Sha256};
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        three_entries(&store).await;
        bypass_the_guard(&store).await;
        // Edit entry 2, then rebuild every link after it with plain SHA-256, as a forger
        // who knows the format but not the key would.
        sqlx::query("UPDATE audit_events SET detail = '{\"n\":\"forged\"}' WHERE seq = 2")
            .execute(store.pool())
            .await
            .unwrap();
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT seq, at, actor, action, target, client_addr, detail, prev_hash \
                 FROM audit_events ORDER BY seq",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let mut prev = rows[0].7.clone();
        for (seq, at, actor, action, target, client_addr, detail, _) in rows {
            let mut hasher = Sha256::new();
            for field in [
                seq.to_string(),
                at,
                actor,
                action,
                target,
                client_addr,
                detail,
                prev.clone(),
            ] {
                hasher.update((field.len() as u64).to_be_bytes());
                hasher.update(field.as_bytes());
            }
            let hash = hex::encode(hasher.finalize());
            sqlx::query("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3")
                .bind(&prev)
                .bind(&hash)
                .bind(seq)
                .execute(store.pool())
                .await
                .unwrap();
            prev = hash;
        }
        store.close().await;

        let flags = test_store.serve_flags();
        let verified = run_to_exit(&audit_args("verify", &flags, &[]), &[]).await;
        assert_eq!(verified.code, Some(1), "{backend:?}: {}", verified.stdout);
        assert!(
            verified.stderr.contains("audit trail broken at entry 1"),
            "{backend:?}: {}",
            verified.stderr
        );
    }
}

#[tokio::test]
async fn an_exported_head_catches_a_trail_cut_short() {
    for backend in BACKENDS {
        let test_store = TestStore::new(backend).await;
        let store = test_store.open().await;
        three_entries(&store).await;
        let flags = test_store.serve_flags();
        let head = run_to_exit(&audit_args("head", &flags, &[]), &[]).await;
        head.assert_success();
        let head = head.stdout.trim().to_owned();
        assert!(head.starts_with("3:"), "{head}");

        // The console writes the same head to its log.
        let console = RunningConsole::start(&test_store).await;
        let (_, logged) = console.terminate().await;
        assert!(
            logged
                .iter()
                .any(|line| line.contains("audit head") && line.contains(&head)),
            "{backend:?}: {logged:#?}"
        );

        // The newest entries are removed: what is left is a consistent chain…
        bypass_the_guard(&store).await;
        sqlx::query("DELETE FROM audit_events WHERE seq >= 3")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
        let plain = run_to_exit(&audit_args("verify", &flags, &[]), &[]).await;
        plain.assert_success();
        // …but not the trail that was exported.
        let against_head =
            run_to_exit(&audit_args("verify", &flags, &["--head", &head]), &[]).await;
        assert_eq!(against_head.code, Some(1), "{backend:?}");
        assert!(
            against_head.stderr.contains("broken at entry 3")
                && against_head.stderr.contains("entries were removed"),
            "{backend:?}: {}",
            against_head.stderr
        );
    }
}

#[tokio::test]
async fn a_lost_audit_key_is_never_replaced_silently() {
    let test_store = TestStore::new(crate::helpers::Backend::Sqlite).await;
    let store = test_store.open().await;
    three_entries(&store).await;
    store.close().await;
    let flags = test_store.serve_flags();

    let refused = run_to_exit(&audit_args("init-key", &flags, &[]), &[]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(refused.stderr.contains("already"), "{}", refused.stderr);

    std::fs::remove_file(test_store.audit_key_file()).unwrap();
    let verified = run_to_exit(&audit_args("verify", &flags, &[]), &[]).await;
    assert_eq!(verified.code, Some(1), "{}", verified.stdout);
    assert!(
        verified
            .stderr
            .contains("3 entries but there is no audit key")
            && verified.stderr.contains("init-key"),
        "{}",
        verified.stderr
    );
    assert!(
        !test_store.audit_key_file().exists(),
        "no key was made up behind the operator's back"
    );
    // An operator who insists gets a new key for new entries; the old ones, keyed with the
    // lost key, cannot be vouched for and verification says so.
    run_to_exit(&audit_args("init-key", &flags, &[]), &[])
        .await
        .assert_success();
    let after = run_to_exit(&audit_args("verify", &flags, &[]), &[]).await;
    assert_eq!(after.code, Some(1), "{}", after.stdout);
    assert!(
        after.stderr.contains("broken at entry 1"),
        "{}",
        after.stderr
    );
}
