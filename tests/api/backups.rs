//! Backups on the real engine: the sample portal's database dumped by a backup run, recorded
//! in the inventory, and readable by pg_restore.

use app::auth::Role;

use crate::helpers::{
    add_compose_stack, call, decide, docker, requested_approval, run_to_exit, run_with_stdin,
    signed_in, stack_add_args, wait_for_approval, Backend, RunningConsole, SamplePortal, TestStore,
};

#[tokio::test]
async fn a_backup_run_dumps_the_database_records_it_and_shows_no_password() {
    let portal = SamplePortal::add("slipbackup").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let backed_up = portal.run("backup", "1.0.0").await;
    backed_up.assert_success();
    assert!(
        backed_up.stdout.contains("Back up database")
            && backed_up.stdout.contains("database: ")
            && backed_up
                .stdout
                .contains("rows in 3 tables (counted in the dump's own snapshot)")
            && backed_up
                .stdout
                .contains("migration head: 20240115_create_invoices"),
        "{}",
        backed_up.stdout
    );

    let mut list = vec!["backups", "portal", "--json"];
    list.extend(portal.flags.iter().map(String::as_str));
    let listed = run_to_exit(&list, &[]).await;
    listed.assert_success();
    let backups: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(backups.len(), 1, "{}", listed.stdout);
    let backup = &backups[0];
    let file = std::path::PathBuf::from(backup["file"].as_str().unwrap());
    assert!(
        file.starts_with(portal.store.backup_dir().join("portal")),
        "{file:?}"
    );
    let bytes = std::fs::read(&file).expect("the dump is where the inventory says");
    assert_eq!(backup["size_bytes"].as_i64(), Some(bytes.len() as i64));
    use sha2::Digest;
    assert_eq!(
        backup["sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&bytes)),
        "the recorded checksum is the file's"
    );
    assert_eq!(&bytes[..5], b"PGDMP", "pg_dump's custom format");
    assert_eq!(backup["reason"], "manual");
    let counts: std::collections::BTreeMap<String, i64> =
        serde_json::from_str(backup["row_counts"].as_str().unwrap()).unwrap();
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "public._portal_migrations",
            "public.customers",
            "public.invoices"
        ]
    );
    assert_eq!(
        counts["public.customers"].to_string(),
        portal.sql("SELECT count(*) FROM customers")
    );
    assert_eq!(backup["verification"], "unverified");
    assert!(
        backup["images"].as_str().unwrap().contains("\"database\""),
        "{backup}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // pg_restore reads it back: the customers table is in it.
    let container = format!("{}-database-1", portal.project);
    docker(&[
        "cp",
        file.to_str().unwrap(),
        &format!("{container}:/tmp/check.dump"),
    ]);
    let contents = docker(&[
        "exec",
        &container,
        "pg_restore",
        "--list",
        "/tmp/check.dump",
    ]);
    assert!(contents.contains("TABLE public customers"), "{contents}");

    // The database password is nowhere: not in the lines, not in the store.
    let opened = portal.store.open().await;
    let lines: Vec<(String,)> = sqlx::query_as("SELECT text FROM run_lines")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT file, images FROM backups")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    let audit: Vec<(String,)> =
        sqlx::query_as("SELECT detail FROM audit_events WHERE action = 'backup.taken'")
            .fetch_all(opened.pool())
            .await
            .unwrap();
    opened.close().await;
    assert_eq!(audit.len(), 1, "the backup is audited");
    let everything = format!("{lines:?}{rows:?}{audit:?}{}", backed_up.stdout);
    assert!(!everything.contains("portal-sample-password-0123"));

    // Viewers see it on the Backups page.
    let console = RunningConsole::start(&portal.store).await;
    let password = portal.store.add_user("vera", Role::Viewer).await;
    let viewer = signed_in(&console, "vera", &password).await;
    let page = console.page(&viewer, "/backups?stack=portal").await;
    assert!(
        page.contains(&backup["sha256"].as_str().unwrap()[..12]),
        "{page}"
    );
    let listed = call(&viewer, &console, "backups", &[("stack", "portal")]).await;
    assert_eq!(listed.status(), 200);
}

#[tokio::test]
async fn a_stack_without_a_database_to_dump_says_so() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let (dir, _cleanup) = add_compose_stack(
        &flags,
        "plain",
        "services:\n  web:\n    image: slipway-portal-frontend:1.0.0\n",
    )
    .await;
    let mut backup = vec!["backup", "plain"];
    backup.extend(flags.iter().map(String::as_str));
    let refused = run_to_exit(&backup, &[]).await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("no service with x-slipway.backup: pg_dump, so there is nothing to back up"),
        "{}",
        refused.stderr
    );

    // Another method is refused by name when the stack is added.
    std::fs::write(
        dir.path().join("other.yml"),
        "services:\n  db:\n    image: pg\n    x-slipway: { role: data, backup: mysqldump }\n",
    )
    .unwrap();
    let other = dir.path().join("other.yml").display().to_string();
    let added = run_to_exit(&stack_add_args(&flags, "other", &other, &[]), &[]).await;
    assert_eq!(added.code, Some(1));
    assert!(
        added.stderr.contains("x-slipway.backup") && added.stderr.contains("mysqldump"),
        "{}",
        added.stderr
    );
}

/// The stack's backups as `slipway backups --json` lists them.
async fn backups_of(portal: &SamplePortal) -> Vec<serde_json::Value> {
    let mut list = vec!["backups", "portal", "--json"];
    list.extend(portal.flags.iter().map(String::as_str));
    let listed = run_to_exit(&list, &[]).await;
    listed.assert_success();
    serde_json::from_str(&listed.stdout).unwrap()
}

async fn verify(portal: &SamplePortal, backup: &str) -> crate::helpers::Exited {
    let mut args = vec!["verify", "portal", backup];
    args.extend(portal.flags.iter().map(String::as_str));
    run_to_exit(&args, &[]).await
}

/// The restore-drill containers of one backup (other tests run drills of their own).
fn drill_containers(backup: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=slipway.drill={backup}"),
    ])
}

#[tokio::test]
async fn a_restore_drill_proves_a_backup_and_an_altered_file_is_corrupt_for_good() {
    let portal = SamplePortal::add("slipdrill").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    portal.run("backup", "1.0.0").await.assert_success();
    let backup = backups_of(&portal).await.remove(0);
    let id = backup["id"].as_str().unwrap().to_owned();

    let verified = verify(&portal, &id).await;
    verified.assert_success();
    assert!(
        verified.stdout.contains("checksum matches")
            && verified
                .stdout
                .contains("every table holds the rows recorded")
            && verified.stdout.contains("verified: restored in"),
        "{}",
        verified.stdout
    );
    let after = backups_of(&portal).await.remove(0);
    assert_eq!(after["verification"], "verified", "{after}");
    assert!(after["restore_ms"].as_i64().unwrap() > 0, "{after}");
    assert!(!after["verified_at"].as_str().unwrap().is_empty());
    assert_eq!(drill_containers(&id), "", "the drill's database is gone");

    // Someone changes the file on disk: the drill refuses it, and it stays refused.
    let file = backup["file"].as_str().unwrap();
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(file, &bytes).unwrap();
    let refused = verify(&portal, &id).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(refused.stderr.contains("is corrupt"), "{}", refused.stderr);
    assert_eq!(backups_of(&portal).await[0]["verification"], "corrupt");
    bytes[middle] ^= 0xff;
    std::fs::write(file, &bytes).unwrap();
    let still = verify(&portal, &id).await;
    assert_eq!(
        still.code,
        Some(1),
        "a corrupt backup is never trusted again"
    );

    // A dump that lost rows: the drill counts every table and names the first difference.
    portal.run("backup", "1.0.0").await.assert_success();
    let second = backups_of(&portal).await.remove(0);
    let second_id = second["id"].as_str().unwrap();
    let mut counts: std::collections::BTreeMap<String, i64> =
        serde_json::from_str(second["row_counts"].as_str().unwrap()).unwrap();
    let customers = counts["public.customers"];
    counts.insert("public.customers".into(), customers + 1);
    let opened = portal.store.open().await;
    sqlx::query("UPDATE backups SET row_counts = $1 WHERE id = $2")
        .bind(serde_json::to_string(&counts).unwrap())
        .bind(second_id)
        .execute(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    let short = verify(&portal, second_id).await;
    assert_eq!(short.code, Some(1), "{}", short.stdout);
    let difference = format!(
        "table public.customers has {customers} rows where {} were recorded",
        customers + 1
    );
    assert!(short.stderr.contains(&difference), "{}", short.stderr);
    let failed = backups_of(&portal).await.remove(0);
    assert_eq!(failed["verification"], "failed");
    assert_eq!(failed["verify_note"], difference);
    assert_eq!(
        drill_containers(second_id),
        "",
        "a failed drill leaves nothing"
    );

    let unknown = verify(&portal, "no-such-backup").await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("has no backup"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn a_drill_left_by_a_process_that_died_is_removed_at_the_next_console_start() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let dead = format!("slipway.drill.holder={}:4194304", host.trim());
    let alive = format!(
        "slipway.drill.holder={}:{}",
        host.trim(),
        std::process::id()
    );
    let make = |holder: &str| {
        docker(&[
            "create",
            "--label",
            "slipway.drill=test",
            "--label",
            holder,
            "slipway-portal-frontend:1.0.0",
        ])
    };
    let (orphan, busy) = (make(&dead), make(&alive));
    let store = TestStore::new(Backend::Sqlite).await;
    let console = RunningConsole::start(&store).await;
    let exists = |id: &str| !docker(&["ps", "-aq", "--filter", &format!("id={id}")]).is_empty();
    // The console looks for them in the background, so as not to hold its start.
    for _ in 0..100 {
        if !exists(&orphan) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, logged) = console.terminate().await;
    assert!(
        !exists(&orphan),
        "the dead process's drill is gone: {logged:#?}"
    );
    assert!(exists(&busy), "a living process's drill is its own");
    docker(&["rm", "-f", &busy]);
}

/// Who requests restores from the shell in these tests: an operator, and their password.
const REQUESTER: &str = "rita";

async fn add_requester(portal: &SamplePortal) -> String {
    portal.store.add_user(REQUESTER, Role::Operator).await
}

/// `slipway restore portal BACKUP --reason … --as rita [FLAGS]`, the password on stdin: the
/// request.
async fn request_restore(
    portal: &SamplePortal,
    password: &str,
    backup: &str,
    flags: &[&str],
) -> crate::helpers::Exited {
    let mut args = vec![
        "restore",
        "portal",
        backup,
        "--reason",
        "the test restores",
        "--as",
        REQUESTER,
    ];
    args.extend(flags);
    args.extend(portal.flags.iter().map(String::as_str));
    run_with_stdin(&args, &format!("{password}\n")).await
}

/// A console on the portal's store and an approver signed in to it, with their password.
async fn console_with_approver(portal: &SamplePortal) -> (RunningConsole, reqwest::Client, String) {
    let console = RunningConsole::start(&portal.store).await;
    let password = portal.store.add_user("tess", Role::Approver).await;
    let approver = signed_in(&console, "tess", &password).await;
    (console, approver, password)
}

/// Requests the restore, has it approved and follows its run to the end.
async fn restore(
    portal: &SamplePortal,
    (requester, approver): (&str, &(RunningConsole, reqwest::Client, String)),
    backup: &str,
    flags: &[&str],
) -> crate::helpers::Exited {
    let id = requested_approval(&request_restore(portal, requester, backup, flags).await);
    let (console, client, password) = approver;
    let decided = decide(client, console, &id, "approve", password).await;
    assert_eq!(decided.status(), 200, "{}", decided.text().await.unwrap());
    wait_for_approval(&portal.flags, &id).await
}

#[tokio::test]
async fn a_restore_brings_back_the_rows_of_the_backup_and_only_those() {
    let portal = SamplePortal::add("sliprestore").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    portal.sql("INSERT INTO customers (email) VALUES ('before@example.com')");
    let mut backup = vec!["backup", "portal", "--why", "before the restore test"];
    backup.extend(portal.flags.iter().map(String::as_str));
    run_to_exit(&backup, &[]).await.assert_success();
    let taken = backups_of(&portal).await.remove(0);
    let id = taken["id"].as_str().unwrap().to_owned();
    assert_eq!(taken["note"], "before the restore test");
    let images: std::collections::BTreeMap<String, String> =
        serde_json::from_str(taken["images"].as_str().unwrap()).unwrap();
    portal.sql("INSERT INTO customers (email) VALUES ('after@example.com')");

    // Not proved by a drill yet: not even requested.
    let rita = add_requester(&portal).await;
    let refused = request_restore(&portal, &rita, &id, &[]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("is unverified: verify it first"),
        "{}",
        refused.stderr
    );
    // Nor started without an approval, from the console.
    let approver = console_with_approver(&portal).await;
    let password = portal.store.add_user("otto", Role::Operator).await;
    let operator = signed_in(&approver.0, "otto", &password).await;
    let direct = call(
        &operator,
        &approver.0,
        "start_run",
        &[
            ("stack", "portal"),
            ("operation", "restore"),
            ("target", &id),
            ("force", "true"),
        ],
    )
    .await;
    assert_eq!(direct.status(), 403);
    assert!(direct.text().await.unwrap().contains("needs an approval"));
    assert_eq!(portal.health().await["status"], "ok");

    verify(&portal, &id).await.assert_success();
    // The portal moves on to 1.1.0 after the backup; the restore puts back the data and,
    // asked to, the images recorded with the backup.
    portal.run("update", "1.1.0").await.assert_success();
    assert_eq!(portal.health().await["version"], "1.1.0");
    // 1.1.0's migration adds a column the backup's schema does not have.
    portal.run("migrate", "1.1.0").await.assert_success();
    let due_on = "SELECT count(*) FROM information_schema.columns \
                  WHERE table_name = 'invoices' AND column_name = 'due_on'";
    assert_eq!(portal.sql(due_on), "1");
    let restored = restore(&portal, (&rita, &approver), &id, &["--recorded-images"]).await;
    restored.assert_success();
    assert!(
        restored.stdout.contains("Stop backend")
            && restored
                .stdout
                .contains("every table holds the rows recorded")
            && restored
                .stdout
                .contains("Start backend on the image recorded with the backup"),
        "{}",
        restored.stdout
    );
    let emails = portal.sql("SELECT string_agg(email, ',' ORDER BY email) FROM customers");
    assert!(emails.contains("before@example.com"), "{emails}");
    assert!(!emails.contains("after@example.com"), "{emails}");
    // The schema and the migration records are the backup's too.
    assert_eq!(portal.sql(due_on), "0");
    assert_eq!(
        portal.sql("SELECT string_agg(migration_name, ',' ORDER BY migration_name) FROM _portal_migrations"),
        "20240101_create_customers,20240115_create_invoices"
    );
    let health = portal.health().await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["version"], "1.0.0", "{health}");
    let backend_image = docker(&[
        "inspect",
        "--format",
        "{{.Image}}",
        &format!("{}-backend-1", portal.project),
    ]);
    // Recorded as the engine's short id.
    assert!(
        backend_image
            .trim_start_matches("sha256:")
            .starts_with(&images["backend"]),
        "{backend_image} {images:?}"
    );
    // The restore helper is gone with its run.
    assert_eq!(drill_containers(&id), "");

    // A corrupt backup is refused by restore even when forced, before anything stops.
    let file = taken["file"].as_str().unwrap();
    std::fs::write(file, b"not a dump").unwrap();
    let corrupt = restore(&portal, (&rita, &approver), &id, &["--force"]).await;
    assert_eq!(corrupt.code, Some(1));
    assert!(corrupt.stderr.contains("is corrupt"), "{}", corrupt.stderr);
    assert!(
        !corrupt.stdout.contains("Stop backend"),
        "{}",
        corrupt.stdout
    );
    assert_eq!(portal.health().await["status"], "ok");
    // Corrupt for good: not even requested again.
    let again = request_restore(&portal, &rita, &id, &["--force"]).await;
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.contains("can never be restored"),
        "{}",
        again.stderr
    );
    approver.0.terminate().await;
}

#[tokio::test]
async fn a_failed_restore_leaves_the_live_database_as_it_was() {
    let portal = SamplePortal::add("sliprestorefail").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    portal.run("backup", "1.0.0").await.assert_success();
    let taken = backups_of(&portal).await.remove(0);
    let id = taken["id"].as_str().unwrap().to_owned();
    portal.sql("INSERT INTO customers (email) VALUES ('kept@example.com')");
    let file = taken["file"].as_str().unwrap();
    // Truncated halfway: still read as a dump up to the cut, so the restore starts and fails.
    let bytes = std::fs::read(file).unwrap();
    std::fs::write(file, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let opened = portal.store.open().await;
    // Its checksum is made to match, as if it had been written that way.
    use sha2::Digest;
    let sum = hex::encode(sha2::Sha256::digest(&bytes[..bytes.len() * 2 / 3]));
    sqlx::query("UPDATE backups SET sha256 = $1 WHERE id = $2")
        .bind(&sum)
        .bind(&id)
        .execute(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    let approver = console_with_approver(&portal).await;
    let rita = add_requester(&portal).await;
    let failed = restore(&portal, (&rita, &approver), &id, &["--force"]).await;
    approver.0.terminate().await;
    assert_eq!(failed.code, Some(1), "{}", failed.stdout);
    assert!(
        failed
            .stderr
            .contains("the live database was left as it was"),
        "{}\n{}",
        failed.stdout,
        failed.stderr
    );
    assert_eq!(
        portal.sql("SELECT count(*) FROM customers WHERE email = 'kept@example.com'"),
        "1"
    );
    assert_eq!(drill_containers(&id), "");
    // The app services it stopped are started again on the data they had.
    assert!(
        failed.stdout.contains("started again: "),
        "{}",
        failed.stdout
    );
    assert_eq!(portal.health().await["status"], "ok");
}

#[tokio::test]
async fn the_backup_policy_is_an_admins_and_a_schedule_cannot_be_posted() {
    let portal = SamplePortal::add("sliprestoreauth").await;
    let console = RunningConsole::start(&portal.store).await;
    let password = portal.store.add_user("otto", Role::Operator).await;
    let operator = signed_in(&console, "otto", &password).await;
    // What only the console's schedule sets cannot be posted.
    let posted = call(
        &operator,
        &console,
        "start_run",
        &[
            ("stack", "portal"),
            ("operation", "backup"),
            ("scheduled", "true"),
            ("approval", "forged-approval"),
        ],
    )
    .await;
    let opened = portal.store.open().await;
    let options: Vec<(String,)> = sqlx::query_as("SELECT options FROM runs")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    assert_eq!(posted.status(), 200);
    assert_eq!(options.len(), 1);
    assert!(
        !options[0].0.contains("scheduled") && !options[0].0.contains("forged-approval"),
        "{options:?}"
    );
    let policy = [
        ("stack", "portal"),
        ("every", "6h"),
        ("keep_last", "3"),
        ("keep_daily", "2"),
        ("keep_weekly", "1"),
    ];
    let refused = call(&operator, &console, "set_backup_policy", &policy).await;
    assert_eq!(refused.status(), 403);

    let admin_password = portal.store.add_user("ada", Role::Admin).await;
    let admin = signed_in(&console, "ada", &admin_password).await;
    let set = call(&admin, &console, "set_backup_policy", &policy).await;
    assert_eq!(set.status(), 200);
    let set: serde_json::Value = set.json().await.unwrap();
    assert_eq!(set["every_seconds"], 6 * 3600);
    assert_eq!(set["before_update"], false, "an unticked box turns it off");
    let mut bad = policy.to_vec();
    bad[1] = ("every", "10s");
    let bad = call(&admin, &console, "set_backup_policy", &bad).await;
    assert_eq!(bad.status(), 422);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("at most every 5 minutes"));
    let mut shown = vec!["stack", "policy", "portal"];
    shown.extend(portal.flags.iter().map(String::as_str));
    let shown = run_to_exit(&shown, &[]).await;
    shown.assert_success();
    assert!(
        shown.stdout.contains(
            "every 6h; keep the newest 3, one a day for 2 days, one a week for 1 weeks; updates do not back up first"
        ),
        "{}",
        shown.stdout
    );
    console.terminate().await;
}

#[tokio::test]
async fn a_prune_keeps_what_the_rule_and_the_last_change_need_and_deletes_the_rest() {
    let portal = SamplePortal::add("slipprune").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    // The update's own first step is a backup: the data a rollback of it needs.
    portal.run("update", "1.1.0").await.assert_success();
    for _ in 0..3 {
        portal.run("backup", "1.1.0").await.assert_success();
    }
    let all = backups_of(&portal).await;
    assert_eq!(all.len(), 4);
    let pre_update = all.iter().find(|b| b["reason"] == "pre-update").unwrap();
    // A synthetic history: a backup of 40 days ago, on file like any other.
    let opened = portal.store.open().await;
    let old_file = portal.store.backup_dir().join("portal").join("old.dump");
    std::fs::write(&old_file, b"old").unwrap();
    sqlx::query(
        "INSERT INTO backups (id, stack, service, file, size_bytes, sha256, started_at, finished_at, \
         requested_by, reason, run_id, migration_head, images, verification, created_at) \
         VALUES ('old', 'portal', 'database', $1, 3, 'x', '2020-01-01T00:00:00.000Z', \
         '2020-01-01T00:00:01.000Z', 'test', 'manual', '', '', '{}', 'unverified', '2020-01-01T00:00:01.000Z')",
    )
    .bind(old_file.display().to_string())
    .execute(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    let mut policy = vec![
        "stack",
        "policy",
        "portal",
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
    ];
    policy.extend(portal.flags.iter().map(String::as_str));
    run_to_exit(&policy, &[]).await.assert_success();
    let pruned = portal.run("prune", "1.1.0").await;
    pruned.assert_success();
    let left: Vec<String> = backups_of(&portal)
        .await
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    let newest = all[0]["id"].as_str().unwrap().to_owned();
    let pre_update_id = pre_update["id"].as_str().unwrap().to_owned();
    assert_eq!(
        left,
        [newest.clone(), pre_update_id.clone()],
        "{}",
        pruned.stdout
    );
    assert!(
        pruned.stdout.contains(&format!("kept {pre_update_id}"))
            && pruned.stdout.contains("what its rollback restores")
            && pruned.stdout.contains("one of the newest 1")
            && pruned.stdout.contains("deleted old")
            && pruned.stdout.contains("2 kept, 3 deleted"),
        "{}",
        pruned.stdout
    );
    assert!(!old_file.exists());
    for gone in &all[1..3] {
        assert!(!std::path::Path::new(gone["file"].as_str().unwrap()).exists());
    }
    let opened = portal.store.open().await;
    let audited: (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_events WHERE action = 'backup.pruned'")
            .fetch_one(opened.pool())
            .await
            .unwrap();
    opened.close().await;
    assert_eq!(audited.0, 3);
}

#[tokio::test]
async fn the_console_takes_a_scheduled_backup_proves_it_and_takes_no_other_before_its_time() {
    let portal = SamplePortal::add("slipschedule").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let mut policy = vec!["stack", "policy", "portal", "--backup-every", "6h"];
    policy.extend(portal.flags.iter().map(String::as_str));
    run_to_exit(&policy, &[]).await.assert_success();

    // Never backed up on schedule: due the moment the console starts.
    let console = RunningConsole::start(&portal.store).await;
    let mut scheduled = None;
    for _ in 0..300 {
        let backups = backups_of(&portal).await;
        if let Some(done) = backups
            .into_iter()
            .find(|b| b["reason"] == "scheduled" && b["verification"] != "unverified")
        {
            scheduled = Some(done);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let scheduled = scheduled.expect("a scheduled backup, verified, within 150 s");
    assert_eq!(scheduled["verification"], "verified", "{scheduled}");
    assert_eq!(scheduled["requested_by"], "slipway-schedule");
    let run_id = scheduled["run_id"].as_str().unwrap().to_owned();
    // The run ends with its prune; wait for it before the console stops.
    let opened = portal.store.open().await;
    let mut status = String::new();
    for _ in 0..100 {
        let row: (String,) = sqlx::query_as("SELECT status FROM runs WHERE id = $1")
            .bind(&run_id)
            .fetch_one(opened.pool())
            .await
            .unwrap();
        status = row.0;
        if status != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(status, "succeeded");
    let steps: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM run_steps WHERE run_id = $1 ORDER BY position")
            .bind(&run_id)
            .fetch_all(opened.pool())
            .await
            .unwrap();
    opened.close().await;
    assert_eq!(
        steps.into_iter().map(|s| s.0).collect::<Vec<_>>(),
        [
            "Back up database",
            "Check the backup's checksum",
            "Restore the backup into a throwaway database",
            "Prune backups outside the retention rule"
        ]
    );
    console.terminate().await;

    // A console started again within the interval takes none.
    let again = RunningConsole::start(&portal.store).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, logged) = again.terminate().await;
    let opened = portal.store.open().await;
    let count: (i64,) = sqlx::query_as(
        "SELECT count(*) FROM runs WHERE operation = 'backup' AND requested_by = 'slipway-schedule'",
    )
    .fetch_one(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    assert_eq!(count.0, 1, "{logged:#?}");
}

/// `slipway backup portal` with this portal's flags, `--backup-dir` replaced by `dir`.
async fn backup_into(
    portal: &SamplePortal,
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> crate::helpers::Exited {
    let dir = dir.display().to_string();
    let mut args = vec!["backup", "portal"];
    let mut flags = portal.flags.iter().map(String::as_str);
    while let Some(flag) = flags.next() {
        if flag == "--backup-dir" {
            flags.next();
            args.extend(["--backup-dir", dir.as_str()]);
        } else {
            args.push(flag);
        }
    }
    run_to_exit(&args, env).await
}

/// Every file under `dir`, for "nothing was left behind".
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            found.extend(files_under(&entry.path()));
        } else {
            found.push(entry.path().display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn a_backup_that_cannot_be_taken_says_why_and_leaves_no_file_and_no_entry() {
    let portal = SamplePortal::add("slipbackupfault").await;
    portal.run("deploy", "1.0.0").await.assert_success();

    // A dump of a few megabytes: more than a file system's accounting lets through past
    // full (tmpfs counts per CPU, so a few hundred kB can slip in).
    portal.sql(
        "INSERT INTO customers (email) \
         SELECT md5(g::text) || md5((g * 7)::text) || '@example.com' FROM generate_series(1, 60000) g",
    );
    // The disk fills while the dump is written: a tmpfs of 8 kB.
    let full = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8k", "tmpfs"])
        .arg(full.path())
        .status()
        .expect("mount runs");
    assert!(
        mounted.success(),
        "the test needs to mount a small tmpfs (root)"
    );
    // Something else fills it: written until the file system says it is full.
    {
        use std::io::Write;
        let mut ballast = std::fs::File::create(full.path().join("ballast")).unwrap();
        while ballast
            .write_all(&[0_u8; 512])
            .and_then(|()| ballast.sync_all())
            .is_ok()
        {}
    }
    let free = std::process::Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(full.path())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let no_space = backup_into(&portal, full.path(), &[]).await;
    let listed = files_under(full.path());
    let _ = std::process::Command::new("umount")
        .arg(full.path())
        .status();
    assert_eq!(
        no_space.code,
        Some(1),
        "{}\n{}\nfree before: {free}\nfiles: {listed:?}",
        no_space.stdout,
        no_space.stderr
    );
    assert!(
        no_space.stderr.contains("cannot write the backup")
            && no_space.stderr.contains("No space left on device"),
        "{}\n{}",
        no_space.stdout,
        no_space.stderr
    );
    assert_eq!(listed, [full.path().join("ballast").display().to_string()]);

    // The engine does not answer.
    let elsewhere = tempfile::tempdir().unwrap();
    let unreachable = backup_into(
        &portal,
        elsewhere.path(),
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    )
    .await;
    assert_eq!(unreachable.code, Some(1));
    assert!(
        unreachable
            .stderr
            .contains("unix:///nonexistent/docker.sock"),
        "{}",
        unreachable.stderr
    );

    // The database container is stopped.
    docker(&["stop", &format!("{}-database-1", portal.project)]);
    let stopped = backup_into(&portal, elsewhere.path(), &[]).await;
    assert_eq!(stopped.code, Some(1));
    assert!(
        stopped
            .stderr
            .contains("a backup needs the database running"),
        "{}",
        stopped.stderr
    );
    assert!(files_under(elsewhere.path()).is_empty());
    assert!(
        backups_of(&portal).await.is_empty(),
        "no entry for a failed backup"
    );
}

#[tokio::test]
async fn a_database_image_without_the_postgres_tools_is_named_as_the_cause() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    // PostgreSQL starts (its entrypoint sets its own PATH) but a command run in the
    // container finds no psql or pg_dump.
    let (_dir, _cleanup) = add_compose_stack(
        &flags,
        "notools",
        "services:\n  database:\n    image: slipway-portal-postgres:15\n    \
         entrypoint: [\"/bin/sh\", \"-c\", \"PATH=/usr/local/bin:/bin exec postgres-entrypoint\"]\n    \
         environment: { PATH: /bin, POSTGRES_USER: t, POSTGRES_PASSWORD: secret-tools-password, POSTGRES_DB: t }\n    \
         healthcheck: { test: [\"CMD\", \"/usr/local/bin/pg_isready\", \"-h\", \"127.0.0.1\"], interval: 1s, retries: 60 }\n    \
         x-slipway: { role: data, backup: pg_dump }\n",
    )
    .await;
    let mut deploy = vec!["deploy", "notools"];
    deploy.extend(flags.iter().map(String::as_str));
    run_to_exit(&deploy, &[]).await.assert_success();
    let mut backup = vec!["backup", "notools"];
    backup.extend(flags.iter().map(String::as_str));
    let refused = run_to_exit(&backup, &[]).await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("psql is not in the database's image"),
        "{}",
        refused.stderr
    );
    assert!(files_under(&store.backup_dir()).is_empty());
    assert!(!format!("{}{}", refused.stdout, refused.stderr).contains("secret-tools-password"));
}
