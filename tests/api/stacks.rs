//! Stacks on the real engine: added from their compose file, their services' live state
//! read through the console, and clear refusals for files or engines it cannot use.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use app::auth::Role;

use crate::helpers::{
    call, fixture_dir, run_to_exit, signed_in, Backend, ComposeProject, ProjectCleanup,
    RunningConsole, TestStore,
};

fn stack_add_args<'a>(
    flags: &'a [String],
    name: &'a str,
    compose: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["stack", "add", name, "--compose", compose];
    args.extend_from_slice(extra);
    args.extend(flags.iter().map(String::as_str));
    args
}

/// A Compose project name of the test's own; what it leaves on the engine goes on drop.
fn throwaway_project(prefix: &str) -> (String, ProjectCleanup) {
    let project = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    (project.clone(), ProjectCleanup(project))
}

/// A loopback port nothing listens on, for the portal's edge.
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port().to_string()
}

/// `slipway stack add portal` for the sample portal, with its env file, under `project`.
async fn add_portal(flags: &[String], project: Option<&str>, env: &[(&str, &str)]) {
    let compose = fixture_dir()
        .join("docker-compose.yml")
        .display()
        .to_string();
    let env_file = fixture_dir().join("portal.env").display().to_string();
    let mut extra = vec!["--env-file", env_file.as_str()];
    extra.extend(
        project
            .map(|project| ["--project", project])
            .into_iter()
            .flatten(),
    );
    let added = run_to_exit(&stack_add_args(flags, "portal", &compose, &extra), env).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
}

#[tokio::test]
async fn the_sample_stack_shows_every_service_running_and_healthy() {
    let project = ComposeProject::new();
    project.run("1.0.0", &["up", "-d"]);
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, Some(&project.name), &[]).await;

    // Through the command line, until every healthcheck has passed.
    let mut status_args = vec!["status", "portal", "--json"];
    status_args.extend(flags.iter().map(String::as_str));
    let mut status = serde_json::Value::Null;
    for _ in 0..60 {
        let run = run_to_exit(&status_args, &[]).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        status = serde_json::from_str(&run.stdout).unwrap();
        let all_healthy = status["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|service| {
                service["containers"].as_array().is_some_and(|c| {
                    c.len() == 1 && c[0]["state"] == "running" && c[0]["health"] == "healthy"
                })
            });
        if all_healthy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let services = status["services"].as_array().unwrap();
    let names: Vec<_> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["database", "cache", "backend", "frontend", "edge"]);
    for service in services {
        let container = &service["containers"][0];
        assert_eq!(container["health"], "healthy", "{service}");
        assert_eq!(container["image"], service["image"], "{service}");
    }
    let edge = &services[4]["containers"][0];
    assert_eq!(edge["ports"][0], format!("127.0.0.1:{}→8080", project.port));

    // Through the console, as the stack's page asks for it.
    let password = store.add_user("vera", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    let viewer = signed_in(&console, "vera", &password).await;
    let response = call(&viewer, &console, "stack_status", &[("name", "portal")]).await;
    assert_eq!(response.status(), 200);
    let page: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        page["services"][2]["containers"][0]["image"],
        "slipway-portal-backend:1.0.0"
    );
    let diagnostics = call(
        &viewer,
        &console,
        "stack_diagnostics",
        &[("name", "portal")],
    )
    .await;
    assert_eq!(diagnostics.status(), 200);
    let diagnostics: serde_json::Value = diagnostics.json().await.unwrap();
    assert!(
        !diagnostics["engine"]["version"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{diagnostics}"
    );
    assert_eq!(
        diagnostics["usage"].as_array().unwrap().len(),
        5,
        "{diagnostics}"
    );
    assert!(
        diagnostics["disks"][0]["free_bytes"].as_u64().unwrap() > 0,
        "{diagnostics}"
    );
    assert_eq!(diagnostics["database_connections"][0][0], "database");
    let connections = diagnostics["database_connections"][0][1]["Ok"].as_i64();
    assert!(connections.is_some_and(|n| n >= 1), "{diagnostics}");
    let html = viewer
        .get(console.url("/stacks/portal"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("data-service=\"backend\""),
        "the page lists the backend"
    );
}

#[tokio::test]
async fn a_compose_file_slipway_cannot_use_is_refused_with_the_reason() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("broken.yml", "services:\n  web:\n    image: [unclosed\n", "line"),
        ("no-secret.yml", "services:\n  api:\n    image: api\n    environment:\n      JWT_SECRET: ${JWT_SECRET:?}\n", "services.api.environment.JWT_SECRET"),
        ("odd-role.yml", "services:\n  db:\n    image: pg\n    x-slipway: {role: database}\n", "data, app, edge or job"),
    ];
    for (file, text, reason) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let run = run_to_exit(&stack_add_args(&flags, "broken", &path, &[]), &[]).await;
        assert_eq!(run.code, Some(1), "{file}");
        let line = run.stderr.trim();
        assert!(
            line.starts_with("slipway: ") && line.contains(file) && line.contains(reason),
            "{file}: {line}"
        );
    }
    let missing = run_to_exit(
        &stack_add_args(&flags, "ghost", "/no/such/compose.yml", &[]),
        &[],
    )
    .await;
    assert!(
        missing.stderr.contains("cannot read /no/such/compose.yml"),
        "{}",
        missing.stderr
    );
    let mut status_args = vec!["status", "broken"];
    status_args.extend(flags.iter().map(String::as_str));
    let status = run_to_exit(&status_args, &[]).await;
    assert!(
        status.stderr.contains("There is no stack named broken"),
        "nothing was added: {}",
        status.stderr
    );
}

#[tokio::test]
async fn an_engine_that_does_not_answer_is_named() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, None, &[]).await;
    let mut no_service = vec!["logs", "portal", "nosuch"];
    no_service.extend(flags.iter().map(String::as_str));
    let unknown = run_to_exit(&no_service, &[]).await;
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown
            .stderr
            .contains("stack portal has no service nosuch"),
        "{}",
        unknown.stderr
    );

    let mut args = vec!["status", "portal"];
    args.extend(flags.iter().map(String::as_str));
    let run = run_to_exit(&args, &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]).await;
    assert_eq!(run.code, Some(1));
    let line = run.stderr.trim();
    assert!(
        line.contains("unix:///nonexistent/docker.sock") && line.contains("DOCKER_HOST"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
}

#[tokio::test]
async fn slipway_starts_the_sample_stack_from_nothing_and_stops_it() {
    let (project, _cleanup) = throwaway_project("slipstart");
    let port = free_port();
    let env = [("PORTAL_PORT", port.as_str())];
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, Some(&project), &env).await;
    let with_flags = |verb: &'static str| {
        let mut args = vec![verb, "portal"];
        args.extend(flags.iter().map(String::as_str));
        args
    };

    let started = run_to_exit(&with_flags("start"), &env).await;
    assert_eq!(started.code, Some(0), "{}", started.stderr);
    // Every dependency was healthy before its dependents started; the edge answers now.
    let client = reqwest::Client::new();
    let mut health = serde_json::Value::Null;
    for _ in 0..60 {
        if let Ok(answer) = client
            .get(format!("http://127.0.0.1:{port}/api/health"))
            .send()
            .await
        {
            health = answer.json().await.unwrap_or_default();
            if health["status"] == "ok" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(health["database"], "ok", "{health}");
    assert_eq!(health["cache"], "ok", "{health}");

    // Compose sees the very same containers: the labels are Compose's own.
    let listed = std::process::Command::new("docker-compose")
        .current_dir(fixture_dir())
        .env("DOCKER_HOST", "unix:///var/run/docker.sock")
        .env("PORTAL_PORT", &port)
        .args(["-p", &project, "--env-file", "portal.env", "ps", "-q"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        5,
        "{listed:?}"
    );

    // Logs, all of them or the errors only, and followed as they are written.
    let mut logs = with_flags("logs");
    logs.insert(2, "backend");
    let written = run_to_exit(&logs, &env).await;
    assert!(
        written
            .stdout
            .contains("backend | portal 1.0.0 listening on :4000"),
        "{}",
        written.stdout
    );
    let mut follow_args: Vec<&str> = logs.clone();
    follow_args.extend(["--follow", "--errors", "--tail", "0"]);
    let mut follower = tokio::process::Command::new(crate::helpers::SLIPWAY)
        .args(&follow_args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut follower_out = tokio::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed = client
        .get(format!("http://127.0.0.1:{port}/api/_fail"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    let first = tokio::time::timeout(Duration::from_secs(15), follower_out.next_line())
        .await
        .expect("the followed error line arrived")
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        "backend | ERROR simulated failure requested on /_fail"
    );
    follower.kill().await.unwrap();
    let mut errors_only = logs.clone();
    errors_only.push("--errors");
    let errors = run_to_exit(&errors_only, &env).await;
    assert_eq!(
        errors.stdout.trim(),
        "backend | ERROR simulated failure requested on /_fail",
        "only the error line"
    );

    let again = run_to_exit(&with_flags("start"), &env).await;
    assert_eq!(
        again.code,
        Some(0),
        "starting a running stack changes nothing: {}",
        again.stderr
    );
    let stopped = run_to_exit(&with_flags("stop"), &env).await;
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let status = run_to_exit(&[with_flags("status"), vec!["--json"]].concat(), &env).await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for service in status["services"].as_array().unwrap() {
        assert_eq!(service["containers"][0]["state"], "exited", "{service}");
    }
}

#[tokio::test]
async fn a_port_already_in_use_or_a_missing_image_is_named() {
    let (project, _cleanup) = throwaway_project("slipclash");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let compose = dir.path().join("docker-compose.yml");
    std::fs::write(
        &compose,
        format!("services:\n  web:\n    image: slipway-portal-frontend:1.0.0\n    ports: [\"127.0.0.1:{port}:3000\"]\n"),
    )
    .unwrap();
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let compose_arg = compose.display().to_string();
    let added = run_to_exit(
        &stack_add_args(&flags, "clash", &compose_arg, &["--project", &project]),
        &[],
    )
    .await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    let mut start = vec!["start", "clash"];
    start.extend(flags.iter().map(String::as_str));
    let clash = run_to_exit(&start, &[]).await;
    assert_eq!(clash.code, Some(1));
    assert!(
        clash.stderr.contains("service web cannot publish its port")
            && clash.stderr.contains("already in use"),
        "{}",
        clash.stderr
    );

    std::fs::write(
        &compose,
        "services:\n  web:\n    image: slipway-no-such-image:9\n",
    )
    .unwrap();
    let missing = run_to_exit(&start, &[]).await;
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("needs the image slipway-no-such-image:9"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn one_run_per_stack_and_a_dead_runs_stack_is_freed_at_the_next_start() {
    use app::audit::service::Actor;
    use app::runs::{service, Operation};
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, None, &[]).await;
    let opened = store.open().await;
    let stack = app::stacks::service::find(&opened, "portal").await.unwrap();
    let first = service::begin(&opened, &stack, Operation::Start, &Actor::system(), false)
        .await
        .unwrap();
    let refused = service::begin(
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
    let run = service::list(&opened, "portal").await.unwrap().remove(0);
    assert_eq!(run.status, "interrupted");
    assert!(
        run.error.contains("stopped before it finished"),
        "{}",
        run.error
    );
    let again = service::begin(&opened, &stack, Operation::Stop, &Actor::system(), false).await;
    assert!(again.is_ok(), "the stack is free again");
    opened.close().await;
}

#[tokio::test]
async fn deploy_brings_the_portal_up_from_nothing_and_stores_no_secret() {
    let (project, _cleanup) = throwaway_project("slipdeploy");
    let port = free_port();
    let env = [("PORTAL_PORT", port.as_str())];
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, Some(&project), &env).await;
    let mut deploy = vec!["deploy", "portal"];
    deploy.extend(flags.iter().map(String::as_str));
    let deployed = run_to_exit(&deploy, &env).await;
    assert_eq!(
        deployed.code,
        Some(0),
        "{}\n{}",
        deployed.stdout,
        deployed.stderr
    );
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
    let health: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");

    // The migration printed the database URL with its password: it is masked everywhere.
    let planted = [
        "portal-sample-password-0123",
        "portal-sample-jwt-secret-0123456789abcdef",
    ];
    let opened = store.open().await;
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
    let (project, _cleanup) = throwaway_project("slipupdate");
    let port = free_port();
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let at = |version: &'static str| {
        [
            ("PORTAL_PORT", port.clone()),
            ("PORTAL_VERSION", version.to_owned()),
        ]
    };
    let as_env =
        |pairs: &[(&'static str, String); 2]| -> Vec<(&'static str, String)> { pairs.to_vec() };
    let run = |verb: &'static str, version: &'static str| {
        let mut args = vec![verb, "portal"];
        args.extend(flags.iter().map(String::as_str));
        let env = as_env(&at(version));
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            run_to_exit(&args, &env).await
        }
    };
    add_portal(&flags, Some(&project), &[("PORTAL_PORT", port.as_str())]).await;
    let deployed = run("deploy", "1.0.0").await;
    assert_eq!(
        deployed.code,
        Some(0),
        "{}\n{}",
        deployed.stdout,
        deployed.stderr
    );

    // A steady load from 127.0.0.1, a new connection per request, bounded in count and time.
    let url = format!("http://127.0.0.1:{port}/api/health");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (url, stop) = (url.clone(), stop.clone());
        async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let (mut failed, mut total) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && total < 20_000 {
                let ok = matches!(client.get(&url).send().await, Ok(r) if r.status() == 200);
                total += 1;
                failed += usize::from(!ok);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (failed, total)
        }
    });
    let updated = run("update", "1.1.0").await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (failed, total) = load.await.unwrap();
    assert_eq!(
        updated.code,
        Some(0),
        "{}\n{}",
        updated.stdout,
        updated.stderr
    );
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
    let health: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(health["version"], "1.1.0");

    // An image whose health never passes: the run fails, the old container keeps serving.
    let broken = run("update", "broken").await;
    assert_eq!(broken.code, Some(1), "{}", broken.stdout);
    assert!(
        broken.stderr.contains("did not become healthy") && broken.stderr.contains("keeps serving"),
        "{}",
        broken.stderr
    );
    let health: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(
        (health["status"].as_str(), health["version"].as_str()),
        (Some("ok"), Some("1.1.0"))
    );

    // 1.1.0 brings a migration: migrate stops the apps, migrates, shows the records, starts all.
    let migrated = run("migrate", "1.1.0").await;
    assert_eq!(
        migrated.code,
        Some(0),
        "{}\n{}",
        migrated.stdout,
        migrated.stderr
    );
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
    let health: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    assert_eq!(
        health["status"], "ok",
        "everything is back after the migration"
    );
}

#[tokio::test]
async fn a_run_whose_process_is_killed_shows_interrupted_after_the_next_console_start() {
    let (project, _cleanup) = throwaway_project("slipkill");
    let port = free_port();
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, Some(&project), &[("PORTAL_PORT", port.as_str())]).await;
    let mut deploy = tokio::process::Command::new(crate::helpers::SLIPWAY)
        .args(["deploy", "portal"])
        .args(&flags)
        .env("PORTAL_PORT", &port)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Kill it while a step is running, as a crash or `kill -9` would.
    let opened = store.open().await;
    let mut running_step = None;
    for _ in 0..200 {
        running_step = sqlx::query_as::<_, (String, i64)>(
            "SELECT run_id, position FROM run_steps WHERE status = 'running'",
        )
        .fetch_optional(opened.pool())
        .await
        .unwrap();
        if running_step
            .as_ref()
            .is_some_and(|(_, position)| *position >= 2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (run_id, position) = running_step.expect("the deploy reached a running step");
    deploy.start_kill().unwrap();
    deploy.wait().await.unwrap();

    let console = RunningConsole::start(&store).await;
    let detail = app::runs::service::detail(&opened, &run_id).await.unwrap();
    drop(console);
    assert_eq!(detail.run.status, "interrupted");
    assert_eq!(
        detail.steps[position as usize].status, "interrupted",
        "{:?}",
        detail.steps
    );
    let locks: Vec<(String,)> = sqlx::query_as("SELECT stack FROM stack_locks")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    assert!(locks.is_empty(), "the stack is free: {locks:?}");
    opened.close().await;
}

/// `docker …` with the machine's client; returns stdout, trimmed.
fn docker(args: &[&str]) -> String {
    let output = std::process::Command::new("/usr/bin/docker")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// An image made from one small file, tagged `tag`; returns its short id.
fn tiny_image(tag: &str, content: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("content"), content).unwrap();
    let script = format!(
        "tar -C {} -c . | /usr/bin/docker import - {tag}",
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
    let (project, _cleanup) = throwaway_project("slipclean");
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, Some(&project), &[]).await;
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
    // Re-using a tag leaves the earlier image untagged: two unused images, one of them recorded.
    let tag = format!("slipway-cleanup-{}:1", uuid::Uuid::new_v4().simple());
    let unused = tiny_image(&tag, "first");
    let recorded = tiny_image(&tag, "second");
    tiny_image(&tag, "third");
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
    assert_eq!(
        cleaned.code,
        Some(0),
        "{}\n{}",
        cleaned.stdout,
        cleaned.stderr
    );
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
    docker(&["rmi", "-f", &recorded, &tag]);
}

#[tokio::test]
async fn a_cancelled_run_stops_before_its_next_step_and_frees_the_stack() {
    use app::audit::service::Actor;
    use app::runs::{service, Operation};
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(
        &flags,
        Some(&format!("slipcancel{}", uuid::Uuid::new_v4().simple())),
        &[],
    )
    .await;
    let opened = store.open().await;
    let stack = app::stacks::service::find(&opened, "portal").await.unwrap();
    let handle = service::begin(&opened, &stack, Operation::Stop, &Actor::system(), false)
        .await
        .unwrap();
    let id = handle.run.id.clone();
    service::request_cancel(&opened, &Actor::system(), &id)
        .await
        .unwrap();
    let engine = app::stacks::engine::Engine::connect().unwrap();
    let run = service::execute(handle, &engine, &stack).await.unwrap();
    assert_eq!(run.status, "cancelled");
    let detail = service::detail(&opened, &id).await.unwrap();
    assert!(
        detail.steps.iter().all(|step| step.status == "cancelled"),
        "{:?}",
        detail.steps
    );
    assert!(
        service::begin(&opened, &stack, Operation::Stop, &Actor::system(), false)
            .await
            .is_ok()
    );
    assert!(
        service::request_cancel(&opened, &Actor::system(), &id)
            .await
            .is_err(),
        "a finished run cannot be cancelled"
    );
    opened.close().await;
}
