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
    env_dir: tempfile::TempDir,
    _store: TestStore,
    _cleanup: ProjectCleanup,
}

impl PlainStack {
    async fn add(prefix: &str) -> Self {
        let (project, cleanup) = throwaway_project(prefix);
        let store = TestStore::new(Backend::Sqlite).await;
        let flags = store.serve_flags();
        let stack = Self {
            flags,
            project,
            port: free_port(),
            env_dir: tempfile::tempdir().expect("temporary directory"),
            _store: store,
            _cleanup: cleanup,
        };
        stack.set_version("1.0.0");
        let compose = crate::helpers::fixture_dir()
            .join("../plain/docker-compose.yml")
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
        std::fs::write(
            self.env_file(),
            format!("WEB_VERSION={version}\nWEB_PORT={}\n", self.port),
        )
        .expect("write the env file");
    }

    async fn run(&self, verb: &str) -> Exited {
        run_to_exit(&with_flags(&[verb, "plain"], &self.flags), &[]).await
    }

    /// The version the web service's page shows.
    async fn serving(&self) -> String {
        let page = reqwest::get(format!("http://127.0.0.1:{}/", self.port))
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

    /// Names of the web service's running containers.
    fn running_web(&self) -> Vec<String> {
        docker(&[
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            "label=com.docker.compose.service=web",
            "--format",
            "{{.Names}}",
        ])
        .lines()
        .map(str::to_owned)
        .collect()
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
    let web = stack.running_web();
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
        broken.stderr.contains("did not become healthy") && broken.stderr.contains("is put back"),
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
    assert_eq!(stack.running_web(), web, "the same container serves again");

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
    assert_eq!(stack.running_web(), web);
}
