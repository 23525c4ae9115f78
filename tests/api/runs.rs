//! Runs on the real engine: deploy, update without downtime, migrate, cleanup, cancel, the
//! per-stack lock across processes, recovery after a killed process, image builds and the
//! live stream of a run.

use std::time::Duration;

use app::auth::Role;
use app::runs::{RunStatus, StepStatus};

use crate::helpers::{
    add_portal, call, client, console_command, docker, portal_env_file, run_to_exit, signed_in,
    throwaway_project, Backend, EventStream, RunningConsole, SamplePortal, SseEvent, SteadyLoad,
    TestStore,
};

#[tokio::test]
async fn one_run_per_stack_and_a_dead_runs_stack_is_freed_at_the_next_start() {
    use app::audit::service::Actor;
    use app::runs::{lock, queries, Operation};
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, None, &portal_env_file()).await;
    let opened = store.open().await;
    let stack = app::stacks::service::find(&opened, "portal").await.unwrap();
    let first = lock::begin(&opened, &stack, Operation::Start, &Actor::system(), false)
        .await
        .unwrap();
    let refused = lock::begin(
        &opened,
        &stack,
        Operation::Stop,
        &Actor::command_line(),
        false,
    )
    .await;
    let message = refused.err().expect("a second run is refused").to_string();
    assert!(
        message.contains(&first.run.id) && message.contains("started by slipway at"),
        "{message}"
    );

    // The process holding the run dies (its holder names a pid that does not exist).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    sqlx::query("UPDATE runs SET holder = $1 WHERE id = $2")
        .bind(format!("{}:4194304", host.trim()))
        .bind(&first.run.id)
        .execute(opened.pool())
        .await
        .unwrap();
    std::mem::forget(first); // as a killed process would: nothing releases the lock
    let console = RunningConsole::start(&store).await;
    drop(console);
    let run = queries::list(&opened, "portal").await.unwrap().remove(0);
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(
        run.error.contains("stopped before it finished"),
        "{}",
        run.error
    );
    let again = lock::begin(&opened, &stack, Operation::Stop, &Actor::system(), false).await;
    assert!(again.is_ok(), "the stack is free again");
    opened.close().await;
}

#[tokio::test]
async fn deploy_brings_the_portal_up_from_nothing_and_stores_no_secret() {
    let portal = SamplePortal::add("slipdeploy").await;
    let deployed = portal.run("deploy", "1.0.0").await;
    deployed.assert_success();
    for expected in [
        "Check the env file",
        "Wait until database, cache are healthy",
        "Run the migrations of backend",
        "applied 20240101_create_customers",
        "Record the running images",
    ] {
        assert!(
            deployed.stdout.contains(expected),
            "no {expected:?} in\n{}",
            deployed.stdout
        );
    }
    let health = portal.health().await;
    assert_eq!(health["status"], "ok", "{health}");

    // The migration printed the database URL with its password: it is masked everywhere.
    let planted = [
        "portal-sample-password-0123",
        "portal-sample-jwt-secret-0123456789abcdef",
    ];
    let opened = portal.store.open().await;
    let lines: Vec<(String,)> = sqlx::query_as("SELECT text FROM run_lines")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    let audit: Vec<(String,)> = sqlx::query_as("SELECT detail FROM audit_events")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    let images: Vec<(String, String)> = sqlx::query_as("SELECT service, image_id FROM run_images")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    let stored = format!("{lines:?}{audit:?}{}{}", deployed.stdout, deployed.stderr);
    for secret in planted {
        assert!(!stored.contains(secret), "a secret was stored or printed");
    }
    assert!(
        stored.contains("postgres://portal:••••@database:5432/portal"),
        "{lines:?}"
    );
    assert_eq!(
        images.len(),
        5,
        "every running service's image is recorded: {images:?}"
    );
    assert!(
        stored.contains("slipway-portal-backend:1.0.0"),
        "short values such as the version stay readable"
    );
}

#[tokio::test]
async fn update_drops_no_request_and_an_unhealthy_image_leaves_the_old_one_serving() {
    let portal = SamplePortal::add("slipupdate").await;
    let deployed = portal.run("deploy", "1.0.0").await;
    deployed.assert_success();

    let load = SteadyLoad::start(portal.url("/api/health"));
    let updated = portal.run("update", "1.1.0").await;
    let (failed, total) = load.stop().await;
    updated.assert_success();
    assert_eq!(
        failed, 0,
        "{failed} of {total} requests failed during the update"
    );
    assert!(total > 100, "the load ran ({total} requests)");
    assert!(
        updated.stdout.contains("rollout probe: 0 failed"),
        "{}",
        updated.stdout
    );
    // The update backed the database up first.
    let mut list = vec!["backups", "portal", "--json"];
    list.extend(portal.flags.iter().map(String::as_str));
    let listed = run_to_exit(&list, &[]).await;
    let reasons: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(
        reasons
            .iter()
            .map(|backup| backup["reason"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["pre-update"],
        "a deploy from nothing had no data to back up; the update did: {}",
        listed.stdout
    );
    let health = portal.health().await;
    assert_eq!(health["version"], "1.1.0");

    // An image whose health never passes: the run fails, the old container keeps serving.
    let broken = portal.run("update", "broken").await;
    assert_eq!(broken.code, Some(1), "{}", broken.stdout);
    assert!(
        broken.stderr.contains("did not become healthy") && broken.stderr.contains("keeps serving"),
        "{}",
        broken.stderr
    );
    let health = portal.health().await;
    assert_eq!(
        (health["status"].as_str(), health["version"].as_str()),
        (Some("ok"), Some("1.1.0"))
    );

    // 1.1.0 brings a migration: migrate stops the apps, migrates, shows the records, starts all.
    let migrated = portal.run("migrate", "1.1.0").await;
    migrated.assert_success();
    assert!(
        migrated
            .stdout
            .contains("applied 20240301_invoice_due_dates"),
        "{}",
        migrated.stdout
    );
    let records = migrated
        .stdout
        .split("Verify the migration records of backend")
        .nth(1)
        .unwrap_or_default();
    assert!(
        records.contains("20240301_invoice_due_dates"),
        "{}",
        migrated.stdout
    );
    let health = portal.health().await;
    assert_eq!(
        health["status"], "ok",
        "everything is back after the migration"
    );
}

/// Waits until a run in the store is on its third step or later (past the env check and the
/// network) and returns the run and that step.
async fn a_running_step(opened: &app::store::Store) -> (String, i64) {
    for _ in 0..400 {
        let running = sqlx::query_as::<_, (String, i64)>(
            "SELECT run_id, position FROM run_steps WHERE status = 'running'",
        )
        .fetch_optional(opened.pool())
        .await
        .unwrap();
        if let Some(step) = running.filter(|(_, position)| *position >= 2) {
            return step;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no run reached its third step within 20 s");
}

/// After the next console start the run shows interrupted at that step, and its stack is free.
async fn assert_interrupted_after_restart(portal: &SamplePortal, run_id: &str, position: i64) {
    let console = RunningConsole::start(&portal.store).await;
    let opened = portal.store.open().await;
    let detail = app::runs::queries::detail(&opened, run_id).await.unwrap();
    drop(console);
    assert_eq!(detail.run.status, RunStatus::Interrupted);
    assert_eq!(
        detail.steps[position as usize].status,
        StepStatus::Interrupted,
        "{:?}",
        detail.steps
    );
    let locks: Vec<(String,)> = sqlx::query_as("SELECT stack FROM stack_locks")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    assert!(locks.is_empty(), "the stack is free: {locks:?}");
    opened.close().await;
    // A request the killed process had sent still completes on the engine (a container
    // created after the kill); let it land so the cleanup finds it.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_command_line_run_killed_mid_step_shows_interrupted_after_the_next_console_start() {
    let portal = SamplePortal::add("slipkill").await;
    let mut deploy = tokio::process::Command::new(crate::helpers::SLIPWAY)
        .args(["deploy", "portal"])
        .args(&portal.flags)
        .env("PORTAL_PORT", &portal.port)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let opened = portal.store.open().await;
    let (run_id, position) = a_running_step(&opened).await;
    opened.close().await;
    // As a crash or `kill -9` would.
    deploy.start_kill().unwrap();
    deploy.wait().await.unwrap();
    assert_interrupted_after_restart(&portal, &run_id, position).await;
}

#[tokio::test]
async fn a_console_killed_mid_run_shows_it_interrupted_after_its_restart() {
    let portal = SamplePortal::add("slipconsolekill").await;
    let mut command = console_command(&portal.store);
    command.env("PORTAL_PORT", &portal.port);
    let console = RunningConsole::from_command(command).await;
    let password = portal.store.add_user("otto", Role::Operator).await;
    let operator = signed_in(&console, "otto", &password).await;
    let started = start_run(&operator, &console, "portal", "deploy").await;
    let opened = portal.store.open().await;
    let (run_id, position) = a_running_step(&opened).await;
    opened.close().await;
    assert_eq!(run_id, started);
    let mut console = console;
    console.child.start_kill().unwrap();
    console.child.wait().await.unwrap();
    assert_interrupted_after_restart(&portal, &run_id, position).await;
}

/// An image made from one small file, tagged `tag`; returns its short id.
/// An image made from one file, labelled as built for `project`.
fn tiny_image(tag: &str, content: &str, project: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("content"), content).unwrap();
    let script = format!(
        "tar -C {} -c . | /usr/bin/docker import --change 'LABEL com.docker.compose.project={project}' - {tag}",
        dir.path().display()
    );
    let output = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

#[tokio::test]
async fn cleanup_removes_old_stopped_containers_and_unused_images_but_keeps_recorded_ones() {
    let portal = SamplePortal::add("slipclean").await;
    let (store, flags, project) = (&portal.store, &portal.flags, &portal.project);
    let stopped = format!("{project}-frontend-9");
    docker(&[
        "create",
        "--name",
        &stopped,
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=frontend",
        "slipway-portal-frontend:1.0.0",
    ]);
    // Re-using a tag leaves the earlier image untagged: two unused images of the stack, one
    // of them recorded, and one of another project's that is none of this stack's business.
    let tag = format!("slipway-cleanup-{}:1", uuid::Uuid::new_v4().simple());
    let unused = tiny_image(&tag, "first", project);
    let recorded = tiny_image(&tag, "second", project);
    let others = tiny_image(&tag, "of another project", "someoneelse");
    tiny_image(&tag, "third", project);
    let opened = store.open().await;
    sqlx::query("INSERT INTO run_images (run_id, service, image, image_id, created_at) VALUES ('old-run', 'web', 'web:1', $1, 'then')")
        .bind(&recorded)
        .execute(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut args = vec!["cleanup", "portal"];
    args.extend(flags.iter().map(String::as_str));
    let cleaned = run_to_exit(&args, &[("SLIPWAY_CLEANUP_AFTER", "1s")]).await;
    cleaned.assert_success();
    assert!(
        cleaned
            .stdout
            .contains(&format!("removed {stopped} (created)")),
        "{}",
        cleaned.stdout
    );
    assert!(
        cleaned.stdout.contains(&format!("kept {recorded}")),
        "{}",
        cleaned.stdout
    );
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("name={stopped}")]),
        ""
    );
    let image_exists = |id: &str| {
        std::process::Command::new("/usr/bin/docker")
            .args(["image", "inspect", id])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    assert!(!image_exists(&unused), "the unused image is gone");
    assert!(image_exists(&recorded), "the recorded image stays");
    assert!(image_exists(&others), "another project's image stays");
    docker(&["rmi", "-f", &recorded, &others, &tag]);
}

#[tokio::test]
async fn a_cancelled_run_stops_before_its_next_step_and_frees_the_stack() {
    use app::audit::service::Actor;
    use app::runs::{lock, queries, Operation};
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(
        &flags,
        Some(&format!("slipcancel{}", uuid::Uuid::new_v4().simple())),
        &portal_env_file(),
    )
    .await;
    let opened = store.open().await;
    let stack = app::stacks::service::find(&opened, "portal").await.unwrap();
    let handle = lock::begin(&opened, &stack, Operation::Stop, &Actor::system(), false)
        .await
        .unwrap();
    let id = handle.run.id.clone();
    lock::request_cancel(&opened, &Actor::system(), &id)
        .await
        .unwrap();
    let engine = app::stacks::engine::Engine::connect().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let run = app::runs::execute(handle, &engine, &stack, backups.path())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    let detail = queries::detail(&opened, &id).await.unwrap();
    assert!(
        detail
            .steps
            .iter()
            .all(|step| step.status == StepStatus::Cancelled),
        "{:?}",
        detail.steps
    );
    assert!(
        lock::begin(&opened, &stack, Operation::Stop, &Actor::system(), false)
            .await
            .is_ok()
    );
    assert!(
        lock::request_cancel(&opened, &Actor::system(), &id)
            .await
            .is_err(),
        "a finished run cannot be cancelled"
    );
    opened.close().await;
}

/// Starts a run through the console as `operator` and returns its id.
async fn start_run(
    operator: &reqwest::Client,
    console: &RunningConsole,
    stack: &str,
    operation: &str,
) -> String {
    let started = call(
        operator,
        console,
        "start_run",
        &[("stack", stack), ("operation", operation)],
    )
    .await;
    assert_eq!(started.status(), 200);
    started.json().await.expect("a run id")
}

/// A one-service stack of the test's own in a temporary folder: the sample frontend image,
/// or an image built from `web/` when `Dockerfile` is given. Added to the store as `name`.
struct TinyStack {
    dir: tempfile::TempDir,
    project: String,
    _cleanup: crate::helpers::ProjectCleanup,
}

/// What the tiny stack's healthcheck asks: the frontend's own health, or a port nothing
/// listens on (the service never becomes healthy).
const HEALTHY: &str = "http://127.0.0.1:3000/_health";
const NEVER_HEALTHY: &str = "http://127.0.0.1:9/";

impl TinyStack {
    async fn add(flags: &[String], name: &str, dockerfile: Option<&str>) -> Self {
        Self::add_checked_by(flags, name, dockerfile, HEALTHY).await
    }

    async fn add_checked_by(
        flags: &[String],
        name: &str,
        dockerfile: Option<&str>,
        health_url: &str,
    ) -> Self {
        let (project, cleanup) = throwaway_project("sliptiny");
        let dir = tempfile::tempdir().unwrap();
        let image = match dockerfile {
            Some(dockerfile) => {
                std::fs::create_dir(dir.path().join("web")).unwrap();
                std::fs::write(dir.path().join("web/Dockerfile"), dockerfile).unwrap();
                std::fs::write(dir.path().join("web/note.txt"), "first build\n").unwrap();
                // Never sent to the engine: .dockerignore excludes it.
                std::fs::write(dir.path().join("web/secret.env"), "TOKEN=do-not-ship\n").unwrap();
                std::fs::write(dir.path().join("web/.dockerignore"), "secret.env\n").unwrap();
                // Every build field the classic builder applies.
                "build:\n      context: ./web\n      args:\n        GREETING: built-by-slipway\n      labels: [team=payments]\n      network: none\n      shm_size: 64m\n      no_cache: true\n      cache_from: [slipway-portal-frontend:1.0.0]"
            }
            None => "image: slipway-portal-frontend:1.0.0",
        };
        let compose = format!(
            "services:\n  web:\n    {image}\n    healthcheck:\n      test: [\"CMD\", \"/portal\", \"probe\", \"{health_url}\"]\n      interval: 1s\n      timeout: 3s\n      retries: 1000\n    x-slipway:\n      role: app\n"
        );
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(&file, compose).unwrap();
        let file = file.display().to_string();
        let args = crate::helpers::stack_add_args(flags, name, &file, &["--project", &project]);
        let added = run_to_exit(&args, &[]).await;
        added.assert_success();
        Self {
            dir,
            project,
            _cleanup: cleanup,
        }
    }
}

/// A run's live stream as `client` gets it.
async fn run_events(
    client: &reqwest::Client,
    console: &RunningConsole,
    run: &str,
    last_event_id: Option<i64>,
) -> Result<EventStream, reqwest::Response> {
    EventStream::open(client, console, &app::runs::events_path(run), last_event_id).await
}

#[tokio::test]
async fn a_run_streams_live_to_every_viewer_and_the_stream_ends_with_it() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let _stack = TinyStack::add(&flags, "tiny", None).await;
    let console = RunningConsole::start(&store).await;
    let operator_password = store.add_user("otto", Role::Operator).await;
    let viewer_password = store.add_user("vera", Role::Viewer).await;
    let operator = signed_in(&console, "otto", &operator_password).await;
    let viewer = signed_in(&console, "vera", &viewer_password).await;

    let refused = |stream: Result<EventStream, reqwest::Response>| match stream {
        Ok(_) => panic!("a stream was opened"),
        Err(response) => response.status(),
    };
    let anonymous = run_events(&client(), &console, "no-such-run", None).await;
    assert_eq!(refused(anonymous), 401, "strangers get no stream");
    let unknown = run_events(&viewer, &console, "no-such-run", None).await;
    assert_eq!(refused(unknown), 404);
    assert_eq!(
        console.page_status(&viewer, "/runs/no-such-run").await,
        404,
        "the page of an unknown run says so"
    );

    let run = start_run(&operator, &console, "tiny", "deploy").await;
    // Two viewers follow the same run at once.
    let (first, second) = tokio::join!(
        run_events(&viewer, &console, &run, None),
        run_events(&operator, &console, &run, None),
    );
    let (first, second) = tokio::join!(
        first.expect("a stream").read_to_end(),
        second.expect("a stream").read_to_end()
    );

    let statuses: Vec<&str> = first
        .iter()
        .filter(|event| event.kind == "run")
        .map(|event| event.data["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        (statuses.first(), statuses.last()),
        (Some(&"running"), Some(&"succeeded")),
        "the stream began while the run went on and ended with it: {statuses:?}"
    );
    assert!(
        first.iter().any(|event| event.kind == "steps"
            && event.data["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|step| step["status"] == "running")),
        "a step was streamed while it ran"
    );
    let line_ids = |events: &[SseEvent]| -> Vec<i64> {
        events
            .iter()
            .filter(|event| event.kind == "line")
            .map(|event| event.id.expect("a line carries its sequence number"))
            .collect()
    };
    let ids = line_ids(&first);
    assert!(ids.len() >= 4, "{first:?}");
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "every line once, in order"
    );
    assert_eq!(ids, line_ids(&second), "both viewers saw the same lines");

    // What was streamed is what was stored.
    let detail: serde_json::Value = call(&viewer, &console, "run", &[("id", run.as_str())])
        .await
        .json()
        .await
        .unwrap();
    let stored: Vec<&str> = detail["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["text"].as_str().unwrap())
        .collect();
    let streamed: Vec<&str> = first
        .iter()
        .filter(|event| event.kind == "line")
        .map(|event| event.data["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(stored, streamed);
    assert!(
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|step| step["took"]
                .as_str()
                .is_some_and(|took| took.ends_with(" s"))),
        "every finished step says how long it took: {}",
        detail["steps"]
    );

    // A reconnecting browser resumes after the last line it had.
    let resumed = run_events(&viewer, &console, &run, Some(2))
        .await
        .expect("a stream")
        .read_to_end()
        .await;
    assert_eq!(line_ids(&resumed), ids[2..].to_vec());
}

#[tokio::test]
async fn an_open_stream_ends_when_the_console_stops() {
    use app::audit::service::Actor;
    use app::runs::{lock, Operation};
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let _stack = TinyStack::add(&flags, "tiny", None).await;
    let console = RunningConsole::start(&store).await;
    let password = store.add_user("vera", Role::Viewer).await;
    let viewer = signed_in(&console, "vera", &password).await;
    // A run held by this test process: it stays running for as long as the test likes.
    let opened = store.open().await;
    let stack = app::stacks::service::find(&opened, "tiny").await.unwrap();
    let held = lock::begin(&opened, &stack, Operation::Stop, &Actor::system(), false)
        .await
        .unwrap();
    let mut stream = run_events(&viewer, &console, &held.run.id, None)
        .await
        .expect("a stream");
    loop {
        let event = stream.next(Duration::from_secs(10)).await;
        let event = event.expect("the stream stays open");
        if event.kind == "run" {
            assert_eq!(event.data["data"]["status"], "running");
            break;
        }
    }
    // Without WASM the page reloads itself while the run goes on.
    let page = console
        .page(&viewer, &format!("/runs/{}", held.run.id))
        .await;
    assert!(
        page.contains(r#"<noscript><meta http-equiv="refresh" content="2"></noscript>"#)
            && page.contains(r#"data-testid="run-steps""#),
        "{page}"
    );
    assert!(
        !page.contains("<template"),
        "the run is in the page itself, not in a fragment only script would show: {page}"
    );

    let (code, _) = console.terminate().await;
    assert_eq!(
        code,
        Some(0),
        "stopped within 10 s, the open stream did not hold it"
    );
    assert!(
        stream.next(Duration::from_secs(5)).await.is_none(),
        "the stream ended with the console"
    );
    drop(held);
    opened.close().await;
}

#[tokio::test]
async fn two_deploys_from_two_processes_at_once_one_runs_and_one_is_refused() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let _stack = TinyStack::add(&flags, "tiny", None).await;
    let mut deploy = vec!["deploy", "tiny"];
    deploy.extend(flags.iter().map(String::as_str));
    let (one, other) = tokio::join!(run_to_exit(&deploy, &[]), run_to_exit(&deploy, &[]));
    let mut codes = [one.code, other.code];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(1)],
        "one deploy ran, one was refused:\n{}\n{}\n{}\n{}",
        one.stdout,
        one.stderr,
        other.stdout,
        other.stderr
    );
    let refused = if one.code == Some(0) { &other } else { &one };
    assert!(
        refused.stderr.contains("stack tiny is busy: run ")
            && refused.stderr.contains("started by"),
        "the refusal names the run holding the stack: {}",
        refused.stderr
    );
    let opened = store.open().await;
    let runs = app::runs::queries::list(&opened, "tiny").await.unwrap();
    opened.close().await;
    assert_eq!(runs.len(), 1, "the refused deploy recorded no run");
    assert_eq!(runs[0].status, RunStatus::Succeeded);
}

#[tokio::test]
async fn deploy_builds_an_image_from_its_build_context_and_rebuilds_it_when_it_changes() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let dockerfile = "FROM slipway-portal-frontend:1.0.0\nARG GREETING\nLABEL slipway.test.greeting=$GREETING\nCOPY note.txt /note.txt\nCOPY . /context/\n";
    let stack = TinyStack::add(&flags, "built", Some(dockerfile)).await;
    let image = format!("{}_web", stack.project);
    let mut deploy = vec!["deploy", "built"];
    deploy.extend(flags.iter().map(String::as_str));
    let deployed = run_to_exit(&deploy, &[]).await;
    deployed.assert_success();
    for expected in [
        "Build the image of web",
        // The builder adds the labels (the build's and Compose's project and service) as
        // steps of its own.
        "Step 1/8 : FROM slipway-portal-frontend:1.0.0",
        &format!("Successfully tagged {image}:latest"),
        &format!("built {image} in"),
        "web: ready",
    ] {
        assert!(
            deployed.stdout.contains(expected),
            "no {expected:?} in\n{}",
            deployed.stdout
        );
    }
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"slipway.test.greeting\"}}",
            &image
        ]),
        "built-by-slipway",
        "build arguments reach the build"
    );
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"team\"}}",
            &image
        ]),
        "payments",
        "the build's labels are the image's"
    );
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.docker.compose.project\"}}",
            &image
        ]),
        stack.project,
        "the image says which project it was built for, so cleanup knows it"
    );
    let running_image = || {
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", stack.project),
            "--format",
            "{{.Image}} {{.ID}}",
        ])
    };
    let first = running_image();
    assert!(first.starts_with(&image), "{first}");
    let shipped = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("id=$(/usr/bin/docker create {image}) && /usr/bin/docker export $id | tar -t; /usr/bin/docker rm $id >/dev/null"),
        ])
        .output()
        .unwrap();
    let shipped = String::from_utf8_lossy(&shipped.stdout);
    assert!(shipped.contains("context/note.txt"), "{shipped}");
    assert!(
        !shipped.contains("secret.env"),
        "the .dockerignore was honoured: {shipped}"
    );

    // A changed context is a new image, and its container is replaced.
    std::fs::write(stack.dir.path().join("web/note.txt"), "second build\n").unwrap();
    let again = run_to_exit(&deploy, &[]).await;
    again.assert_success();
    assert!(again.stdout.contains("web: created"), "{}", again.stdout);
    assert_ne!(
        running_image(),
        first,
        "a new container runs the rebuilt image"
    );

    // A build that fails ends the run at its step, with the builder's reason.
    std::fs::write(
        stack.dir.path().join("web/Dockerfile"),
        "FROM slipway-no-such-base-image:0\n",
    )
    .unwrap();
    let broken = run_to_exit(&deploy, &[]).await;
    assert_ne!(broken.code, Some(0));
    let output = format!("{}{}", broken.stdout, broken.stderr);
    assert!(
        output.contains("building ") && output.contains("slipway-no-such-base-image"),
        "{output}"
    );
    std::fs::remove_dir_all(stack.dir.path().join("web")).unwrap();
    let missing = run_to_exit(&deploy, &[]).await;
    let output = format!("{}{}", missing.stdout, missing.stderr);
    assert!(
        missing.code != Some(0)
            && output.contains("build context ./web")
            && output.contains("cannot be read"),
        "{output}"
    );
}

/// A deploy started from the console on a stack whose health never comes, waiting in its
/// health step: what a cancel or a console stop finds.
struct WaitingDeploy {
    store: TestStore,
    console: RunningConsole,
    operator: reqwest::Client,
    run: String,
    opened: app::store::Store,
    _stack: TinyStack,
}

const HEALTH_WAIT: &str = "Wait until web are healthy";

/// The status of the deploy's health step.
fn health_step(detail: &app::runs::RunDetail) -> Option<StepStatus> {
    detail
        .steps
        .iter()
        .find(|step| step.name == HEALTH_WAIT)
        .map(|step| step.status)
}

impl WaitingDeploy {
    async fn start(console_flags: &[&str]) -> Self {
        let store = TestStore::new(Backend::Sqlite).await;
        let flags = store.serve_flags();
        let stack = TinyStack::add_checked_by(&flags, "stuck", None, NEVER_HEALTHY).await;
        let console = RunningConsole::start_with(&store, console_flags).await;
        let password = store.add_user("otto", Role::Operator).await;
        let operator = signed_in(&console, "otto", &password).await;
        let run = start_run(&operator, &console, "stuck", "deploy").await;
        let opened = store.open().await;
        let mut detail = app::runs::queries::detail(&opened, &run).await.unwrap();
        for _ in 0..200 {
            if health_step(&detail) == Some(StepStatus::Running) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            detail = app::runs::queries::detail(&opened, &run).await.unwrap();
        }
        assert_eq!(
            health_step(&detail),
            Some(StepStatus::Running),
            "{:?}",
            detail.steps
        );
        Self {
            store,
            console,
            operator,
            run,
            opened,
            _stack: stack,
        }
    }

    async fn detail(&self) -> app::runs::RunDetail {
        app::runs::queries::detail(&self.opened, &self.run)
            .await
            .unwrap()
    }

    async fn locks(&self) -> Vec<(String,)> {
        sqlx::query_as("SELECT stack FROM stack_locks")
            .fetch_all(self.opened.pool())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn cancelling_stops_a_step_that_waits_for_health_at_once() {
    let waiting = WaitingDeploy::start(&[]).await;
    let (console, operator, run) = (&waiting.console, &waiting.operator, &waiting.run);
    let mut detail = waiting.detail().await;
    let asked = call(operator, console, "cancel_run", &[("id", run.as_str())]).await;
    assert_eq!(asked.status(), 200);
    let asked_at = std::time::Instant::now();
    while detail.run.status == RunStatus::Running && asked_at.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        detail = waiting.detail().await;
    }
    // The health wait would have gone on for two minutes.
    assert!(
        asked_at.elapsed() < Duration::from_secs(10),
        "cancelled after {:?}",
        asked_at.elapsed()
    );
    assert_eq!(detail.run.status, RunStatus::Cancelled);
    assert_eq!(health_step(&detail), Some(StepStatus::Cancelled));
    assert_eq!(
        detail.steps.last().map(|step| step.status),
        Some(StepStatus::Cancelled)
    );
    assert!(
        detail
            .lines
            .iter()
            .any(|line| line.text == "cancelled while waiting"),
        "{:?}",
        detail.lines
    );
    let locks = waiting.locks().await;
    assert!(locks.is_empty(), "the stack is free again: {locks:?}");
}

#[tokio::test]
async fn a_deploy_runs_a_starting_containers_health_check_itself_instead_of_waiting_for_the_engines(
) {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let dir = tempfile::tempdir().unwrap();
    let (project, _cleanup) = throwaway_project("slipcheck");
    // The engine runs its first check an hour after the start: a deploy that waited for the
    // engine's word would give up long before.
    let file = dir.path().join("hourly.yml");
    std::fs::write(
        &file,
        format!(
            "services:\n  web:\n    image: slipway-portal-frontend:1.0.0\n    healthcheck:\n      test: [\"CMD\", \"/portal\", \"probe\", \"{HEALTHY}\"]\n      interval: 1h\n    x-slipway: {{ role: app }}\n"
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    run_to_exit(
        &crate::helpers::stack_add_args(&flags, "hourly", &file, &["--project", &project]),
        &[],
    )
    .await
    .assert_success();
    let mut deploy = vec!["deploy", "hourly"];
    deploy.extend(flags.iter().map(String::as_str));
    run_to_exit(&deploy, &[]).await.assert_success();
    // The engine itself has not checked yet.
    let health = docker(&[
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Status}}",
    ]);
    assert!(health.contains("health: starting"), "{health}");
}

#[tokio::test]
async fn a_job_succeeds_when_it_exits_zero_and_fails_the_deploy_when_it_does_not() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let dir = tempfile::tempdir().unwrap();
    let mut cleanups = Vec::new();
    for (stack, command, succeeds) in [
        // The image's entrypoint is /portal: the command is its arguments.
        ("seeded", "[\"route\", \"seed\", \"http://done\"]", true),
        ("broken", "[\"route\"]", false),
    ] {
        let (project, cleanup) = throwaway_project("slipjob");
        cleanups.push(cleanup);
        let file = dir.path().join(format!("{stack}.yml"));
        std::fs::write(
            &file,
            format!(
                "services:\n  web:\n    image: slipway-portal-frontend:1.0.0\n    healthcheck:\n      test: [\"CMD\", \"/portal\", \"probe\", \"{HEALTHY}\"]\n      interval: 1s\n      retries: 1000\n    x-slipway: {{ role: app }}\n  seed:\n    image: slipway-portal-frontend:1.0.0\n    command: {command}\n    depends_on: [web]\n    x-slipway: {{ role: job }}\n"
            ),
        )
        .unwrap();
        let file = file.display().to_string();
        run_to_exit(
            &crate::helpers::stack_add_args(&flags, stack, &file, &["--project", &project]),
            &[],
        )
        .await
        .assert_success();
        let mut deploy = vec!["deploy", stack];
        deploy.extend(flags.iter().map(String::as_str));
        let deployed = run_to_exit(&deploy, &[]).await;
        if succeeds {
            deployed.assert_success();
            assert!(
                deployed.stdout.contains("seed: finished (exit code 0)"),
                "{}",
                deployed.stdout
            );
        } else {
            assert_eq!(deployed.code, Some(1), "{}", deployed.stdout);
            assert!(
                format!("{}{}", deployed.stdout, deployed.stderr)
                    .contains("job seed exited with code 1"),
                "{}\n{}",
                deployed.stdout,
                deployed.stderr
            );
        }
    }
}

#[tokio::test]
async fn an_update_that_goes_bad_after_a_switch_puts_back_every_service_it_replaced() {
    let portal = SamplePortal::add("slipputback").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let containers_before = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", portal.project),
    ]);

    // 1.1.0 everywhere, and the new frontend goes bad four seconds after it starts: after
    // the backend was replaced and, most likely, after the frontend was switched too.
    let mut args = vec!["update", "portal"];
    args.extend(portal.flags.iter().map(String::as_str));
    let updated = run_to_exit(
        &args,
        &[
            ("PORTAL_PORT", portal.port.as_str()),
            ("PORTAL_VERSION", "1.1.0"),
            ("FRONTEND_FAIL_AFTER", "4"),
        ],
    )
    .await;
    assert_eq!(updated.code, Some(1), "{}", updated.stdout);
    let said = format!("{}\n{}", updated.stdout, updated.stderr);
    assert!(
        said.contains("over the error budget") || said.contains("did not become healthy"),
        "{said}"
    );
    assert!(
        said.contains("backend: ") && said.contains("is back in service"),
        "{said}"
    );

    let health = portal.health().await;
    assert_eq!(health["version"], "1.0.0", "the backend was put back");
    let page = reqwest::get(portal.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("version 1.0.0"),
        "the frontend was put back: {page}"
    );
    let containers_after = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={}", portal.project),
    ]);
    assert_eq!(
        containers_after.lines().count(),
        containers_before.lines().count(),
        "the new containers are gone:\n{containers_after}"
    );
}

#[tokio::test]
async fn a_stopping_console_marks_a_run_it_cannot_finish_interrupted_and_frees_its_stack() {
    let WaitingDeploy {
        store: _store,
        console,
        run: run_id,
        opened,
        _stack,
        ..
    } = WaitingDeploy::start(&["--run-grace", "2s"]).await;

    let (code, lines) = console.terminate().await;
    assert_eq!(code, Some(0), "{lines:#?}");
    // Without a restart: the console itself said how the run ended before it exited.
    let detail = app::runs::queries::detail(&opened, &run_id).await.unwrap();
    assert_eq!(
        detail.run.status,
        RunStatus::Interrupted,
        "{:?}",
        detail.run
    );
    assert!(
        detail.run.error.contains("the console stopped"),
        "{}",
        detail.run.error
    );
    assert!(
        detail
            .steps
            .iter()
            .any(|step| step.status == StepStatus::Interrupted),
        "{:?}",
        detail.steps
    );
    let locks: Vec<(String,)> = sqlx::query_as("SELECT stack FROM stack_locks")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    assert!(locks.is_empty(), "the stack is free: {locks:?}");
    assert!(
        lines.iter().any(|line| line.contains("marked interrupted")),
        "{lines:#?}"
    );
    opened.close().await;
}

#[tokio::test]
async fn a_database_made_anew_by_a_deploy_keeps_the_data_of_its_image_volume() {
    // No named volume: the data lives in the anonymous volume of the image's VOLUME, as in
    // many compose files. A changed definition makes the container anew; Compose carries
    // that volume over, and so must Slipway.
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let (dir, cleanup) = crate::helpers::add_compose_stack(
        &flags,
        "anon",
        "services:\n  db:\n    image: slipway-portal-postgres:15\n    stop_signal: SIGINT\n    \
         environment:\n      POSTGRES_USER: app\n      POSTGRES_PASSWORD: anon-test-password-0123\n      \
         MARKER: ${MARKER:-one}\n    healthcheck:\n      test: [\"CMD\", \"/usr/local/bin/pg_isready\", \"-h\", \"127.0.0.1\", \"-U\", \"app\"]\n      \
         interval: 1s\n      retries: 60\n",
    )
    .await;
    let deploy = crate::helpers::with_flags(&["deploy", "anon"], &flags);
    run_to_exit(&deploy, &[("MARKER", "one")])
        .await
        .assert_success();
    let running_db = || {
        docker(&[
            "ps",
            "-q",
            "--filter",
            "label=com.docker.compose.service=db",
            "--filter",
            &format!("label=com.docker.compose.project={}", cleanup.0),
        ])
    };
    let container = running_db();
    let sql = |container: &str, statement: &str| {
        docker(&[
            "exec",
            "-e",
            "PGPASSWORD=anon-test-password-0123",
            container,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "app",
            "-d",
            "app",
            "-Atc",
            statement,
        ])
    };
    sql(
        &container,
        "CREATE TABLE kept (note TEXT); INSERT INTO kept VALUES ('before')",
    );

    let again = run_to_exit(&deploy, &[("MARKER", "two")]).await;
    again.assert_success();
    assert!(again.stdout.contains("db: created"), "{}", again.stdout);
    let recreated = running_db();
    assert_ne!(recreated, container, "the container was made anew");
    assert_eq!(sql(&recreated, "SELECT note FROM kept"), "before");
    drop(dir);
}
