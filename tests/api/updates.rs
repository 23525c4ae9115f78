//! Updates of stacks as teams write them: no edge in front, services that publish their own
//! ports (`tests/fixtures/plain`), on the real engine.

use crate::helpers::{
    docker, free_port, run_to_exit, stack_add_args, throwaway_project, with_flags, Backend, Exited,
    ProjectCleanup, TestStore,
};

/// The plain fixture added as stack `plain` under a project of the test's own, its web
/// service published on a free loopback port; its env file names the image version.
struct PlainStack {
    flags: Vec<String>,
    project: String,
    port: String,
    chat_port: String,
    env_dir: tempfile::TempDir,
    _store: TestStore,
    _cleanup: ProjectCleanup,
}

impl PlainStack {
    async fn add(prefix: &str) -> Self {
        Self::add_fixture(prefix, "plain").await
    }

    /// A fixture of `tests/fixtures` that takes the same settings as the plain one.
    async fn add_fixture(prefix: &str, fixture: &str) -> Self {
        let (project, cleanup) = throwaway_project(prefix);
        let store = TestStore::new(Backend::Sqlite).await;
        let flags = store.serve_flags();
        let stack = Self {
            flags,
            project,
            port: free_port(),
            chat_port: free_port(),
            env_dir: tempfile::tempdir().expect("temporary directory"),
            _store: store,
            _cleanup: cleanup,
        };
        stack.set_version("1.0.0");
        let compose = crate::helpers::fixture_dir()
            .join(format!("../{fixture}/docker-compose.yml"))
            .display()
            .to_string();
        let env_file = stack.env_file();
        run_to_exit(
            &stack_add_args(
                &stack.flags,
                "plain",
                &compose,
                &["--env-file", &env_file, "--project", &stack.project],
            ),
            &[],
        )
        .await
        .assert_success();
        stack
    }

    fn env_file(&self) -> String {
        self.env_dir.path().join("plain.env").display().to_string()
    }

    /// What a team does to ship a new version: the tag changed in the env file.
    fn set_version(&self, version: &str) {
        self.write_env(version, "");
    }

    /// The settings with `more` lines after them.
    fn write_env(&self, version: &str, more: &str) {
        std::fs::write(
            self.env_file(),
            format!(
                "WEB_VERSION={version}\nWEB_PORT={}\nCHAT_PORT={}\n{more}",
                self.port, self.chat_port
            ),
        )
        .expect("write the env file");
    }

    async fn run(&self, verb: &str) -> Exited {
        run_to_exit(&with_flags(&[verb, "plain"], &self.flags), &[]).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the web service says about who asked: `peer` and `forwarded_for`.
    async fn echo(&self) -> serde_json::Value {
        reqwest::get(self.url("/_echo"))
            .await
            .expect("the web service answers")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// Names of a service's running containers.
    fn running(&self, service: &str) -> Vec<String> {
        docker(&[
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
            "--format",
            "{{.Names}}",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// The host ports a service's running container publishes.
    fn published(&self, service: &str) -> String {
        self.running(service)
            .first()
            .map(|name| docker(&["port", name]))
            .unwrap_or_default()
    }

    /// The version the web service's page shows.
    async fn serving(&self) -> String {
        let page = reqwest::get(self.url("/"))
            .await
            .expect("the web service answers")
            .text()
            .await
            .unwrap_or_default();
        page.split("version ")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap_or_default()
            .to_owned()
    }
}

#[tokio::test]
async fn without_an_edge_update_replaces_in_place_says_how_long_and_keeps_the_old_one_when_the_new_fails(
) {
    let stack = PlainStack::add("slipplain").await;
    stack.run("deploy").await.assert_success();
    assert_eq!(stack.serving().await, "1.0.0");

    stack.set_version("1.1.0");
    let updated = stack.run("update").await;
    updated.assert_success();
    let said = &updated.stdout;
    let web_line = said
        .lines()
        .find(|line| line.trim_start().starts_with("web: replaced in place"))
        .unwrap_or_else(|| panic!("the run says how web was replaced:\n{said}"));
    let seconds: f64 = web_line
        .split(&format!("not answering on 127.0.0.1:{} for ", stack.port))
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("the outage is measured on the published port: {web_line}"));
    assert!(
        seconds > 0.0 && seconds < 30.0,
        "an in-place replacement has a short outage, measured: {web_line}"
    );
    assert!(
        web_line.contains("edge: managed"),
        "and says how to avoid it: {web_line}"
    );
    assert!(
        said.contains("worker: replaced in place")
            && said.contains("worker: replaced in place (no edge in front), it publishes no port"),
        "{said}"
    );
    assert_eq!(stack.serving().await, "1.1.0");
    let web = stack.running("web");
    assert_eq!(web.len(), 1, "one web container runs: {web:?}");
    let mounts = docker(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Name}} {{end}}",
        &web[0],
    ]);
    assert!(
        mounts.contains(&format!("{}_uploads", stack.project)),
        "the new container has the service's volume: {mounts}"
    );

    // An image whose health never passes: the run fails and 1.1.0 is back where it was.
    stack.set_version("broken");
    let broken = stack.run("update").await;
    assert_eq!(broken.code, Some(1), "{}\n{}", broken.stdout, broken.stderr);
    assert!(
        broken.stderr.contains("did not become healthy") && broken.stderr.contains("putting"),
        "{}",
        broken.stderr
    );
    assert!(
        broken
            .stdout
            .contains(&format!("{} is back in service", web[0])),
        "{}",
        broken.stdout
    );
    assert_eq!(stack.serving().await, "1.1.0");
    assert_eq!(stack.running("web"), web, "the same container serves again");

    // Nothing changed: nothing is replaced.
    stack.set_version("1.1.0");
    let again = stack.run("update").await;
    again.assert_success();
    assert!(
        again.stdout.contains("web: already current")
            && again.stdout.contains("worker: already current"),
        "{}",
        again.stdout
    );
    assert_eq!(stack.running("web"), web);
}

#[tokio::test]
async fn the_managed_edge_updates_without_dropping_a_request_keeps_websockets_and_the_client_address(
) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let stack = PlainStack::add("slipedge").await;
    stack.run("deploy").await.assert_success();
    let direct = stack.echo().await;
    let client = direct["peer"].as_str().unwrap_or_default().to_owned();
    assert!(!client.is_empty(), "{direct}");

    let turned_on = run_to_exit(
        &with_flags(
            &["stack", "edge", "plain", "--managed", "true"],
            &stack.flags,
        ),
        &[],
    )
    .await;
    turned_on.assert_success();
    assert!(
        turned_on.stdout.contains("edge is in front")
            && turned_on.stdout.contains(&format!(
                "web: behind the edge, on 127.0.0.1:{}",
                stack.port
            ))
            && !turned_on.stdout.contains("worker"),
        "{}",
        turned_on.stdout
    );
    stack.run("deploy").await.assert_success();
    assert_eq!(
        stack.running("slipway-edge").len(),
        1,
        "the edge runs as a service of the project"
    );
    assert!(
        stack.published("web").is_empty(),
        "web is on the stack's network only: {}",
        stack.published("web")
    );
    assert!(
        stack
            .published("slipway-edge")
            .contains(&format!("127.0.0.1:{}", stack.port)),
        "the edge publishes web's port: {}",
        stack.published("slipway-edge")
    );
    assert_eq!(stack.serving().await, "1.0.0");
    let through = stack.echo().await;
    assert_eq!(
        through["forwarded_for"].as_str(),
        Some(client.as_str()),
        "web learns the client address it saw without the edge: {through}"
    );
    assert_ne!(through["peer"].as_str(), Some(client.as_str()), "{through}");

    // A WebSocket to chat, open across the update of web.
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/_ws", stack.chat_port))
            .await
            .expect("the edge passes the WebSocket upgrade");
    socket.send(Message::Text("before".into())).await.unwrap();
    let answer = socket.next().await.expect("an answer").unwrap();
    assert_eq!(answer.to_text().unwrap(), "1.0.0 before");

    stack.set_version("1.1.0");
    let load = crate::helpers::SteadyLoad::concurrent(
        stack.url("/"),
        8,
        3_000,
        std::time::Duration::from_millis(1),
    );
    let updated = stack.run("update").await;
    let (failed, total) = load.stop().await;
    updated.assert_success();
    assert!(
        updated.stdout.contains("Update web beside the running one")
            && updated.stdout.contains("web now goes to"),
        "{}",
        updated.stdout
    );
    assert_eq!(
        failed, 0,
        "{failed} of {total} requests failed during the update"
    );
    assert!(total >= 3_000, "the load ran ({total} requests)");
    assert!(
        updated.stdout.contains("rollout probe: 0 failed"),
        "{}",
        updated.stdout
    );
    assert_eq!(stack.serving().await, "1.1.0");

    socket.send(Message::Text("after".into())).await.unwrap();
    let answer = socket.next().await.expect("an answer").unwrap();
    assert_eq!(
        answer.to_text().unwrap(),
        "1.0.0 after",
        "the WebSocket to chat stayed open"
    );

    // A deploy that makes web's container anew (another version) points the edge at it.
    stack.set_version("1.0.0");
    let redeployed = stack.run("deploy").await;
    redeployed.assert_success();
    assert!(
        redeployed
            .stdout
            .contains("Pin the edge to the running containers"),
        "{}",
        redeployed.stdout
    );
    assert_eq!(
        stack.serving().await,
        "1.0.0",
        "the edge serves the new container"
    );

    // Off again: a deploy puts the ports back on the services.
    run_to_exit(
        &with_flags(
            &["stack", "edge", "plain", "--managed", "false"],
            &stack.flags,
        ),
        &[],
    )
    .await
    .assert_success();
    let too_soon = stack.run("update").await;
    assert_eq!(too_soon.code, Some(1), "{}", too_soon.stdout);
    assert!(
        too_soon
            .stderr
            .contains("deploy the stack to give them back"),
        "{}",
        too_soon.stderr
    );
    assert_eq!(stack.serving().await, "1.0.0", "and nothing changed");
    let deployed = stack.run("deploy").await;
    deployed.assert_success();
    assert!(
        deployed
            .stdout
            .contains("the managed edge is off, the services publish their ports again"),
        "{}",
        deployed.stdout
    );
    assert!(stack.running("slipway-edge").is_empty(), "the edge is gone");
    assert!(
        stack
            .published("web")
            .contains(&format!("127.0.0.1:{}", stack.port)),
        "web publishes its port again: {}",
        stack.published("web")
    );
    assert_eq!(stack.serving().await, "1.0.0");
}

#[tokio::test]
async fn a_service_with_a_container_name_keeps_it_across_updates_and_put_backs() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let (_dir, cleanup) = crate::helpers::add_compose_stack(
        &flags,
        "named",
        "services:\n  web:\n    image: slipway-portal-frontend:${WEB_VERSION:-1.0.0}\n    \
         container_name: ${FIXED_NAME:-unset}\n    healthcheck:\n      \
         test: [\"CMD\", \"/portal\", \"probe\", \"http://127.0.0.1:3000/_health\"]\n      \
         interval: 1s\n      retries: 5\n",
    )
    .await;
    let fixed = format!("{}-fixed", cleanup.0);
    let run = |verb: &'static str, version: &'static str| {
        let args = with_flags(&[verb, "named"], &flags);
        let fixed = fixed.clone();
        async move { run_to_exit(&args, &[("WEB_VERSION", version), ("FIXED_NAME", &fixed)]).await }
    };
    let image_of = |name: &str| {
        docker(&[
            "inspect",
            "--format",
            "{{.Config.Image}} {{.State.Status}}",
            name,
        ])
    };
    run("deploy", "1.0.0").await.assert_success();
    assert_eq!(image_of(&fixed), "slipway-portal-frontend:1.0.0 running");

    let updated = run("update", "1.1.0").await;
    updated.assert_success();
    assert!(
        updated.stdout.contains("Replace web in place"),
        "a fixed name cannot stand beside itself: {}",
        updated.stdout
    );
    assert_eq!(image_of(&fixed), "slipway-portal-frontend:1.1.0 running");

    let broken = run("update", "broken").await;
    assert_eq!(broken.code, Some(1), "{}", broken.stdout);
    assert_eq!(
        image_of(&fixed),
        "slipway-portal-frontend:1.1.0 running",
        "the old container is back under its name"
    );
}

/// When a container started, as the engine says.
fn started_at(container: &str) -> String {
    docker(&["inspect", "--format", "{{.State.StartedAt}}", container])
}

#[tokio::test]
async fn depends_on_waits_for_a_job_to_complete_skips_what_is_not_required_and_restarts_with_a_replaced_service(
) {
    let stack = PlainStack::add_fixture("slipdeps", "depends").await;
    stack.run("deploy").await.assert_success();
    let setup = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={}", stack.project),
        "--filter",
        "label=com.docker.compose.service=setup",
        "--format",
        "{{.ID}}",
    ]);
    let state = docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        setup.trim(),
    ]);
    assert_eq!(
        state, "exited 0",
        "the job ran to completion before web started"
    );
    assert_eq!(stack.serving().await, "1.0.0");
    let worker = stack.running("worker");
    assert_eq!(worker.len(), 1, "{worker:?}");
    let worker_started = started_at(&worker[0]);

    stack.set_version("1.1.0");
    let updated = stack.run("update").await;
    updated.assert_success();
    assert!(
        updated
            .stdout
            .contains("worker: restarted, as web was replaced (depends_on restart: true)"),
        "{}",
        updated.stdout
    );
    assert_eq!(stack.serving().await, "1.1.0");
    assert_eq!(stack.running("worker"), worker, "restarted, not replaced");
    assert_ne!(
        started_at(&worker[0]),
        worker_started,
        "the worker started again"
    );

    // A job that fails stops what waits for it, with its exit code.
    stack.write_env("1.1.0", "SETUP_FINDS=1\n");
    let failed = stack.run("deploy").await;
    assert_eq!(failed.code, Some(1), "{}\n{}", failed.stdout, failed.stderr);
    assert!(
        failed.stderr.contains("job setup exited with code 1"),
        "{}",
        failed.stderr
    );
}
