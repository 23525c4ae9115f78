//! Backups on the real engine: the sample portal's database dumped by a backup run, recorded
//! in the inventory, and readable by pg_restore.

use app::auth::Role;

use crate::helpers::{
    call, docker, run_to_exit, signed_in, stack_add_args, throwaway_project, Backend,
    RunningConsole, SamplePortal, TestStore,
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
    let (project, _cleanup) = throwaway_project("slipnobackup");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: slipway-portal-frontend:1.0.0\n",
    )
    .unwrap();
    let file = file.display().to_string();
    run_to_exit(
        &stack_add_args(&flags, "plain", &file, &["--project", &project]),
        &[],
    )
    .await
    .assert_success();
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
