//! Stacks on the real engine: added from their compose file, their services' live state
//! read through the console, and clear refusals for files or engines it cannot use.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use app::auth::Role;

use crate::helpers::{
    add_portal, call, client, docker, fixture_dir, portal_env_file, run_to_exit, signed_in,
    stack_add_args, throwaway_project, Backend, ComposeProject, EventStream, RunningConsole,
    SamplePortal, TestStore,
};

#[tokio::test]
async fn the_sample_stack_shows_every_service_running_and_healthy() {
    let project = ComposeProject::new();
    project.run("1.0.0", &["up", "-d"]);
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    add_portal(&flags, Some(&project.name), &portal_env_file()).await;

    // Through the command line, until every healthcheck has passed.
    let mut status_args = vec!["status", "portal", "--json"];
    status_args.extend(flags.iter().map(String::as_str));
    let mut status = serde_json::Value::Null;
    for _ in 0..60 {
        let run = run_to_exit(&status_args, &[]).await;
        run.assert_success();
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
    let html = console.page(&viewer, "/stacks/portal").await;
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
    add_portal(&flags, None, &portal_env_file()).await;
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
    let portal = SamplePortal::add("slipstart").await;
    let (project, port, flags) = (&portal.project, &portal.port, &portal.flags);
    let env = [("PORTAL_PORT", port.as_str())];
    let with_flags = |verb: &'static str| {
        let mut args = vec![verb, "portal"];
        args.extend(flags.iter().map(String::as_str));
        args
    };

    let started = run_to_exit(&with_flags("start"), &env).await;
    started.assert_success();
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
        .env("PORTAL_PORT", port)
        .args(["-p", project, "--env-file", "portal.env", "ps", "-q"])
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
    // The follower takes a moment to begin, longer on a busy machine: ask for an error line
    // until one arrives, rather than guessing how long it takes.
    let mut first = None;
    for _ in 0..30 {
        let failed = client
            .get(format!("http://127.0.0.1:{port}/api/_fail"))
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        if let Ok(line) =
            tokio::time::timeout(Duration::from_secs(2), follower_out.next_line()).await
        {
            first = line.unwrap();
            break;
        }
    }
    assert_eq!(
        first.as_deref(),
        Some("backend | ERROR simulated failure requested on /_fail")
    );
    follower.kill().await.unwrap();
    let mut errors_only = logs.clone();
    errors_only.push("--errors");
    let errors = run_to_exit(&errors_only, &env).await;
    assert!(
        !errors.stdout.trim().is_empty()
            && errors
                .stdout
                .lines()
                .all(|line| line == "backend | ERROR simulated failure requested on /_fail"),
        "only the error lines: {}",
        errors.stdout
    );

    let again = run_to_exit(&with_flags("start"), &env).await;
    assert_eq!(
        again.code,
        Some(0),
        "starting a running stack changes nothing: {}",
        again.stderr
    );
    let stopped = run_to_exit(&with_flags("stop"), &env).await;
    stopped.assert_success();
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
    added.assert_success();
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

/// Makes the backend fail until an errors-only stream of it carries the error line, and
/// returns that line: each failure is one error line, and the stream carries nothing else.
/// A stream takes a moment to attach to a container (longer on a busy machine, and after a
/// restart), so the failure is asked for again rather than timed.
async fn backend_error_line<F>(stream: &mut EventStream, fail: impl Fn() -> F) -> String
where
    F: std::future::Future<Output = u16>,
{
    for _ in 0..30 {
        if fail().await != 500 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let next =
            tokio::time::timeout(Duration::from_secs(2), stream.next(Duration::from_secs(60)));
        if let Ok(event) = next.await {
            let event = event.expect("the stream stays open");
            assert_eq!(event.kind, "line");
            assert_eq!(event.data["service"], "backend", "{:?}", event.data);
            return event.data["text"].as_str().unwrap_or_default().to_owned();
        }
    }
    panic!("no error line reached the stream in 30 attempts");
}

#[tokio::test]
async fn the_log_stream_sends_new_lines_live_and_follows_a_restarted_container() {
    let portal = SamplePortal::add("sliplogs").await;
    portal.run("start", "1.0.0").await.assert_success();
    let console = RunningConsole::start(&portal.store).await;
    let password = portal.store.add_user("vera", Role::Viewer).await;
    let viewer = signed_in(&console, "vera", &password).await;
    let logs =
        |stack: &str, query: &str| format!("{}?{query}", app::stacks::log_events_path(stack));
    let refused = |stream: Result<EventStream, reqwest::Response>| match stream {
        Ok(_) => panic!("a stream was opened"),
        Err(response) => response.status(),
    };
    let anonymous = EventStream::open(&client(), &console, &logs("portal", ""), None).await;
    assert_eq!(refused(anonymous), 401);
    let ghost = EventStream::open(&viewer, &console, &logs("ghost", ""), None).await;
    assert_eq!(refused(ghost), 404);
    assert_eq!(
        console.page_status(&viewer, "/stacks/ghost").await,
        404,
        "the page of an unknown stack says so"
    );
    let no_service =
        EventStream::open(&viewer, &console, &logs("portal", "service=ghost"), None).await;
    assert_eq!(refused(no_service), 422);

    let mut errors = EventStream::open(
        &viewer,
        &console,
        &logs("portal", "service=backend&errors=true"),
        None,
    )
    .await
    .expect("a stream");
    let fail = || async {
        reqwest::get(portal.url("/api/_fail"))
            .await
            .map(|answer| answer.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(
        backend_error_line(&mut errors, fail).await,
        "ERROR simulated failure requested on /_fail"
    );

    // Lines of failures asked for while the stream attached are not the restarted one's.
    while tokio::time::timeout(Duration::from_secs(2), errors.next(Duration::from_secs(60)))
        .await
        .is_ok()
    {}
    // The container stops and starts again: the stream picks it up again by itself.
    docker(&[
        "restart",
        "-t",
        "2",
        &format!("{}-backend-1", portal.project),
    ]);
    assert_eq!(
        backend_error_line(&mut errors, fail).await,
        "ERROR simulated failure requested on /_fail"
    );
}

#[tokio::test]
async fn a_secret_a_container_prints_is_masked_in_its_logs() {
    let (project, _cleanup) = throwaway_project("sliplogsecret");
    let dir = tempfile::tempdir().unwrap();
    let planted = "planted-secret-value-0123";
    std::fs::write(dir.path().join(".env"), format!("APP_PASSWORD={planted}\n")).unwrap();
    // Like many migration tools, the portal's `migrate` prints where it connects, password
    // and all; with no database there it then gives up.
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  leaky:\n    image: slipway-portal-frontend:1.0.0\n    command: [\"migrate\"]\n    environment:\n      DATABASE_URL: postgres://app:${APP_PASSWORD}@nowhere:5432/app\n",
    )
    .unwrap();
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let compose = dir.path().join("docker-compose.yml").display().to_string();
    let env_file = dir.path().join(".env").display().to_string();
    let extra = [
        "--env-file",
        env_file.as_str(),
        "--project",
        project.as_str(),
    ];
    run_to_exit(&stack_add_args(&flags, "leaky", &compose, &extra), &[])
        .await
        .assert_success();
    let with_flags = |verb: &'static str| {
        let mut args = vec![verb, "leaky"];
        args.extend(flags.iter().map(String::as_str));
        args
    };
    run_to_exit(&with_flags("start"), &[])
        .await
        .assert_success();

    let mut printed = String::new();
    for _ in 0..40 {
        printed = run_to_exit(&with_flags("logs"), &[]).await.stdout;
        if printed.contains("migrating") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        printed.contains("leaky | migrating postgres://app:••••@nowhere:5432/app"),
        "{printed}"
    );
    let console = RunningConsole::start(&store).await;
    let password = store.add_user("vera", Role::Viewer).await;
    let viewer = signed_in(&console, "vera", &password).await;
    let shown = call(
        &viewer,
        &console,
        "stack_logs",
        &[("name", "leaky"), ("service", ""), ("errors_only", "false")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(shown.contains("postgres://app:••••@nowhere"), "{shown}");
    assert!(
        !format!("{printed}{shown}").contains(planted),
        "the password never reaches a page or the terminal"
    );
}

#[tokio::test]
async fn reading_a_stack_tolerates_containers_that_vanish_mid_read() {
    let (project, _cleanup) = throwaway_project("slipvanish");
    let label = format!("com.docker.compose.project={project}");
    let service = "com.docker.compose.service=web";
    let ids: Vec<String> = (0..30)
        .map(|_| {
            docker(&[
                "create",
                "--label",
                &label,
                "--label",
                service,
                "slipway-portal-frontend:1.0.0",
            ])
        })
        .collect();
    assert!(ids.iter().all(|id| !id.is_empty()), "{ids:?}");
    let engine = app::stacks::engine::Engine::connect().unwrap();
    // Another tool removes them one by one while the stack is read again and again, as an
    // update's removals do.
    let remover = std::thread::spawn(move || {
        for id in ids {
            docker(&["rm", "-f", &id]);
        }
    });
    let mut reads = 0;
    loop {
        let containers = engine.project_containers(&project).await;
        reads += 1;
        match containers {
            Ok(listed) if listed.is_empty() && remover.is_finished() => break,
            Ok(_) => {}
            Err(error) => panic!("read {reads} failed while containers went away: {error}"),
        }
    }
    remover.join().unwrap();
    assert!(reads > 1);
}

/// Many people on one stack's page at once each get the whole page. (Its title once read the
/// page's route parameters while leptos_meta wrote the head, outside the request's reactive
/// arena: about one request in 500 panicked and had its connection closed.)
#[tokio::test]
async fn the_stack_page_answers_every_one_of_many_concurrent_viewers() {
    let portal = SamplePortal::add("slipmanyviewers").await;
    let password = portal.store.add_user("vera", Role::Viewer).await;
    let console = RunningConsole::start(&portal.store).await;
    let viewer = signed_in(&console, "vera", &password).await;
    let page = console.url("/stacks/portal");
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1500));
    let mut viewers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (viewer, page, left) = (viewer.clone(), page.clone(), left.clone());
        viewers.spawn(async move {
            let mut failures = Vec::new();
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let answered = async {
                    let response = viewer
                        .get(page.clone())
                        .timeout(Duration::from_secs(60))
                        .send()
                        .await?;
                    let status = response.status();
                    let html = response.text().await?;
                    Ok::<_, reqwest::Error>((status, html))
                };
                match answered.await {
                    Ok((status, html)) if status == 200 && html.contains("</html>") => {}
                    Ok((status, _)) => failures.push(format!("HTTP {status} or a cut page")),
                    Err(error) => failures.push(format!("{:#}", anyhow::Error::from(error))),
                }
            }
            failures
        });
    }
    let failures: Vec<String> = viewers.join_all().await.into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    let (_, logged) = console.terminate().await;
    assert!(
        !logged.iter().any(|line| line.contains("panicked")),
        "{}",
        logged.join("\n")
    );
}
