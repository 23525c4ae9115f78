//! Shared set-up: fresh stores on SQLite and PostgreSQL, and real `slipway` processes on
//! port 0 that are killed when the test ends, whether it passed or not.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use app::audit::service::Actor;
use app::auth::Role;
use app::store::{Store, StoreLocation};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The environment variable through which the test command names its PostgreSQL server.
pub const POSTGRES_ENV: &str = "SLIPWAY_TEST_POSTGRES_URL";

pub const SLIPWAY: &str = env!("CARGO_BIN_EXE_slipway");

/// The two kinds of store every store test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A store location of its own for one test; its files go when it is dropped.
pub struct TestStore {
    pub location: StoreLocation,
    dir: tempfile::TempDir,
}

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let location = match backend {
            Backend::Sqlite => StoreLocation::DataDir(dir.path().join("data")),
            Backend::Postgres => StoreLocation::Url(fresh_postgres_database().await),
        };
        Self { location, dir }
    }

    /// Opens the store in this process (the console may have it open too), with the
    /// audit key the console uses.
    pub async fn open(&self) -> Store {
        let store = Store::open(&self.location)
            .await
            .expect("open the test store");
        app::audit::service::with_key(store, &self.audit_key_file())
            .await
            .expect("the test store's audit key")
    }

    /// The audit key's file, shared by this process and the consoles it starts.
    pub fn audit_key_file(&self) -> PathBuf {
        self.dir.path().join("audit.key")
    }

    /// Adds a user straight through the service and returns the password.
    pub async fn add_user(&self, name: &str, role: Role) -> String {
        let password = format!("{name}-password-0123");
        let store = self.open().await;
        app::auth::service::add_user(&store, &Actor::system(), name, role, password.clone())
            .await
            .expect("add a test user");
        store.close().await;
        password
    }

    /// The id of the user called `name`.
    pub async fn user_id(&self, name: &str) -> String {
        let store = self.open().await;
        let user = app::auth::users::find_by_name(&store, name)
            .await
            .expect("read users")
            .expect("the user exists");
        store.close().await;
        user.id
    }

    /// The flags that point `slipway serve` at this store.
    pub fn serve_flags(&self) -> Vec<String> {
        let mut flags = match &self.location {
            StoreLocation::DataDir(dir) => vec!["--data-dir".into(), dir.display().to_string()],
            StoreLocation::Url(url) => vec!["--database-url".into(), url.clone()],
        };
        flags.extend([
            "--audit-key-file".into(),
            self.audit_key_file().display().to_string(),
            "--backup-dir".into(),
            self.backup_dir().display().to_string(),
        ]);
        flags
    }

    /// Where backup runs of this store's consoles and commands write their dumps.
    pub fn backup_dir(&self) -> PathBuf {
        self.dir.path().join("backups")
    }
}

/// Creates an empty database on the test server. The test command runs a throw-away
/// PostgreSQL cluster, so the databases go with it.
async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!("{POSTGRES_ENV} is not set: run the store tests through scripts/test, which starts PostgreSQL")
    });
    let name = format!("slipway_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    url_with_database(&admin_url, &name)
}

fn url_with_database(admin_url: &str, database: &str) -> String {
    let mut parsed = reqwest::Url::parse(admin_url).expect("a valid PostgreSQL URL");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// A `slipway serve` process listening on a free loopback port.
pub struct RunningConsole {
    pub base_url: String,
    pub child: Child,
    pub stderr: tokio::task::JoinHandle<Vec<String>>,
    /// What the process has logged so far.
    pub logged: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl RunningConsole {
    pub async fn start(store: &TestStore) -> Self {
        Self::start_with(store, &[]).await
    }

    /// Starts a console with extra `slipway serve` flags.
    pub async fn start_with(store: &TestStore, extra: &[&str]) -> Self {
        let mut command = console_command(store);
        command.args(extra);
        Self::from_command(command).await
    }

    /// Starts a console from a [`console_command`] the test has added to.
    pub async fn from_command(mut command: Command) -> Self {
        let mut child = command.spawn().expect("start slipway");
        let stderr = child.stderr.take().expect("piped stderr");
        let (url_tx, url_rx) = tokio::sync::oneshot::channel();
        let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = logged.clone();
        // Keep reading stderr for the whole life of the process, so it never blocks on a
        // full pipe; the lines come back when the test asks for them.
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut url_tx = Some(url_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("console listening") {
                    if let (Some(tx), Some(url)) = (url_tx.take(), listening_url(&line)) {
                        let _ = tx.send(url);
                    }
                }
                seen.lock().unwrap().push(line);
            }
            let all = seen.lock().unwrap().clone();
            all
        });
        let base_url = tokio::time::timeout(Duration::from_secs(30), url_rx)
            .await
            .expect("slipway started within 30 s")
            .expect("slipway printed its address");
        Self {
            base_url,
            child,
            stderr: reader,
            logged,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The status a page answers `client` with.
    pub async fn page_status(&self, client: &reqwest::Client, path: &str) -> u16 {
        let response = client.get(self.url(path)).send().await;
        response.expect("page request").status().as_u16()
    }

    /// The HTML of a page as `client` gets it.
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> String {
        client
            .get(self.url(path))
            .send()
            .await
            .expect("page request")
            .text()
            .await
            .expect("page text")
    }

    /// Sends SIGTERM and returns the exit code and everything the process logged.
    pub async fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().expect("process still running") as i32;
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("slipway stopped within 10 s of SIGTERM")
            .expect("wait for slipway");
        let lines = self.stderr.await.expect("stderr reader");
        (status.code(), lines)
    }
}

/// The base command for a console on port 0 with the given store; killed when dropped.
pub fn console_command(store: &TestStore) -> Command {
    let mut command = Command::new(SLIPWAY);
    command
        .arg("serve")
        .args(["--addr", "127.0.0.1:0"])
        .args(store.serve_flags())
        .env("RUST_LOG", "info")
        // A change is not watched unless the test sets a stack's window (tests/api/health.rs).
        .env("SLIPWAY_WATCH_DEFAULT", "0s")
        .env_remove("DATABASE_URL")
        .env_remove("SLIPWAY_ADDR")
        .env_remove("SLIPWAY_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn listening_url(line: &str) -> Option<String> {
    let start = line.find("http://")?;
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_owned())
}

/// What a run of `slipway` that exits by itself left behind.
pub struct Exited {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Exited {
    /// Fails the test with everything the process printed unless it exited with 0.
    #[track_caller]
    pub fn assert_success(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "slipway failed:\n{}\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `slipway` with these arguments and environment, expecting it to exit by itself.
pub async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> Exited {
    run(args, env, None).await
}

/// Runs `slipway` with `input` on its standard input (a pipe, not a terminal).
pub async fn run_with_stdin(args: &[&str], input: &str) -> Exited {
    run(args, &[], Some(input)).await
}

async fn run(args: &[&str], env: &[(&str, &str)], input: Option<&str>) -> Exited {
    use tokio::io::AsyncWriteExt;
    let mut command = Command::new(SLIPWAY);
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SLIPWAY_ADDR")
        .env_remove("SLIPWAY_DATA_DIR")
        .env_remove("RUST_LOG")
        .env("SLIPWAY_WATCH_DEFAULT", "0s")
        .envs(env.iter().copied())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("run slipway");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write stdin");
    }
    // Deploys and updates of the sample portal take tens of seconds; nothing takes minutes.
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("slipway exited within 180 s")
        .expect("run slipway");
    Exited {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A client signed in as `name`; panics when the console refuses.
pub async fn signed_in(console: &RunningConsole, name: &str, password: &str) -> reqwest::Client {
    let client = client();
    let response = sign_in(&client, console, name, password).await;
    assert_eq!(
        response.status(),
        200,
        "sign-in as {name}: {}",
        response.text().await.unwrap()
    );
    client
}

/// Posts the sign-in server function as the hydrated page does.
pub async fn sign_in(
    client: &reqwest::Client,
    console: &RunningConsole,
    name: &str,
    password: &str,
) -> reqwest::Response {
    call(
        client,
        console,
        "sign_in",
        &[("name", name), ("password", password)],
    )
    .await
}

/// Calls a server function with form-encoded arguments.
pub async fn call(
    client: &reqwest::Client,
    console: &RunningConsole,
    function: &str,
    args: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(console.url(&format!("/api/{function}")))
        .form(args)
        .send()
        .await
        .expect("server function request")
}

/// The session cookie's value as this client's jar holds it.
pub fn session_cookie(
    client_jar: &reqwest::cookie::Jar,
    console: &RunningConsole,
) -> Option<String> {
    use reqwest::cookie::CookieStore;
    let url = console.base_url.parse().ok()?;
    let header = client_jar.cookies(&url)?;
    header
        .to_str()
        .ok()?
        .split("; ")
        .find_map(|pair| pair.strip_prefix("slipway_session=").map(str::to_owned))
}

/// A client with a jar the test can read, to compare session ids.
pub fn client_with_jar() -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    (client, jar)
}

/// A client that presents `session_id` as its session cookie, as a replayed cookie would.
pub fn replaying(console: &RunningConsole, session_id: &str) -> reqwest::Client {
    let (client, jar) = client_with_jar();
    let url = console.base_url.parse().expect("console URL");
    jar.add_cookie_str(&format!("slipway_session={session_id}"), &url);
    client
}

/// An HTTP client that keeps cookies and does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// The sample portal's folder.
pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/portal")
}

/// A compose project of the fixture that is taken down, volumes and all, when dropped —
/// also when the test fails.
pub struct ComposeProject {
    pub name: String,
    pub port: u16,
}

impl ComposeProject {
    pub fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Self {
            name: format!("portaltest{}", uuid::Uuid::new_v4().simple()),
            port,
        }
    }

    pub fn compose(&self, version: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new("docker-compose")
            .current_dir(fixture_dir())
            .env("DOCKER_HOST", "unix:///var/run/docker.sock")
            .env("PORTAL_PORT", self.port.to_string())
            .env("PORTAL_VERSION", version)
            .args(["-p", &self.name, "--env-file", "portal.env"])
            .args(args)
            .output()
            .expect("docker-compose runs")
    }

    pub fn run(&self, version: &str, args: &[&str]) -> String {
        let output = self.compose(version, args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "docker-compose {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = self.compose("1.0.0", &["down", "-v", "--remove-orphans", "-t", "5"]);
    }
}

/// Removes whatever a test left on the engine under a Compose project name — containers,
/// the network, volumes, built images — when dropped, also when the test fails.
pub struct ProjectCleanup(pub String);

impl Drop for ProjectCleanup {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            std::process::Command::new("/usr/bin/docker")
                .args(args)
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                .unwrap_or_default()
        };
        let label = format!("label=com.docker.compose.project={}", self.0);
        for id in docker(&["ps", "-aq", "--filter", &label]).split_whitespace() {
            docker(&["rm", "-f", "-v", id]);
        }
        docker(&["network", "rm", &format!("{}_default", self.0)]);
        // The networks a file declares (`PROJECT_front`) carry the project's label.
        for network in docker(&["network", "ls", "-q", "--filter", &label]).split_whitespace() {
            docker(&["network", "rm", network]);
        }
        for volume in docker(&["volume", "ls", "-q", "--filter", &label]).split_whitespace() {
            docker(&["volume", "rm", "-f", volume]);
        }
        // Images Slipway built for the project are named after it.
        let built = format!("reference={}_*", self.0);
        for image in docker(&["images", "-q", "--filter", &built]).split_whitespace() {
            docker(&["rmi", "-f", image]);
        }
    }
}

/// `args` followed by a store's command-line flags.
pub fn with_flags<'a>(args: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    args.extend(flags.iter().map(String::as_str));
    args
}

pub fn stack_add_args<'a>(
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
pub fn throwaway_project(prefix: &str) -> (String, ProjectCleanup) {
    let project = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
    (project.clone(), ProjectCleanup(project))
}

/// A release's planned time `days` from now at 14:00 UTC, as typed in the console: a fixed date
/// passes, and a milestone still ahead of it turns overdue.
pub fn days_ahead(days: i64) -> chrono::DateTime<chrono::Utc> {
    let day = (chrono::Utc::now() + chrono::Duration::days(days)).date_naive();
    day.and_hms_opt(14, 0, 0).unwrap().and_utc()
}

/// `at` the way the console and the command line take it.
pub fn typed(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

/// A loopback port nothing listens on, for the portal's edge.
pub fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port().to_string()
}

/// Adds a stack `name` made of `compose` (YAML) under a throwaway project of its own; the
/// folder of its compose file and the project's cleanup live as long as the test keeps them.
pub async fn add_compose_stack(
    flags: &[String],
    name: &str,
    compose: &str,
) -> (tempfile::TempDir, ProjectCleanup) {
    let (project, cleanup) = throwaway_project(&format!("slip{name}"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, compose).expect("write the compose file");
    let file = file.display().to_string();
    run_to_exit(
        &stack_add_args(flags, name, &file, &["--project", &project]),
        &[],
    )
    .await
    .assert_success();
    (dir, cleanup)
}

/// `slipway stack add portal` for the sample portal, with `env_file`, under `project`.
pub async fn add_portal(flags: &[String], project: Option<&str>, env_file: &std::path::Path) {
    let compose = fixture_dir()
        .join("docker-compose.yml")
        .display()
        .to_string();
    let env_file = env_file.display().to_string();
    let mut extra = vec!["--env-file", env_file.as_str()];
    extra.extend(
        project
            .map(|project| ["--project", project])
            .into_iter()
            .flatten(),
    );
    run_to_exit(&stack_add_args(flags, "portal", &compose, &extra), &[])
        .await
        .assert_success();
}

/// The sample portal's own env file.
pub fn portal_env_file() -> PathBuf {
    fixture_dir().join("portal.env")
}

/// The sample portal added as stack `portal` to a fresh SQLite store, under a Compose project
/// of the test's own with its edge on a free loopback port; what it leaves on the engine goes
/// when it is dropped.
pub struct SamplePortal {
    pub store: TestStore,
    pub flags: Vec<String>,
    pub project: String,
    pub port: String,
    /// Holds the portal's env file with the test's edge port: the console reads a stack's
    /// variables from its env file, never from its own environment.
    _env_dir: tempfile::TempDir,
    _cleanup: ProjectCleanup,
}

impl SamplePortal {
    pub async fn add(prefix: &str) -> Self {
        let (project, cleanup) = throwaway_project(prefix);
        let port = free_port();
        let store = TestStore::new(Backend::Sqlite).await;
        let flags = store.serve_flags();
        let env_dir = tempfile::tempdir().expect("temporary directory");
        let env_file = env_dir.path().join("portal.env");
        let shipped = std::fs::read_to_string(portal_env_file()).expect("the portal's env file");
        let mut lines: Vec<String> = shipped
            .lines()
            .filter(|line| !line.starts_with("PORTAL_PORT="))
            .map(str::to_owned)
            .collect();
        lines.push(format!("PORTAL_PORT={port}\n"));
        std::fs::write(&env_file, lines.join("\n")).expect("write the env file");
        add_portal(&flags, Some(&project), &env_file).await;
        Self {
            store,
            flags,
            project,
            port,
            _env_dir: env_dir,
            _cleanup: cleanup,
        }
    }

    /// `slipway VERB portal` on this portal's store with its images at `version`.
    pub async fn run(&self, verb: &str, version: &str) -> Exited {
        let mut args = vec![verb, "portal"];
        args.extend(self.flags.iter().map(String::as_str));
        let env = [
            ("PORTAL_PORT", self.port.as_str()),
            ("PORTAL_VERSION", version),
        ];
        run_to_exit(&args, &env).await
    }

    /// The env file the stack reads.
    pub fn env_file(&self) -> PathBuf {
        self._env_dir.path().join("portal.env")
    }

    /// A URL on the portal's edge.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Runs one SQL statement in the portal's database (as its own user) and returns what
    /// psql printed, unaligned and without headers.
    pub fn sql(&self, statement: &str) -> String {
        let container = format!("{}-database-1", self.project);
        let output = std::process::Command::new("/usr/bin/docker")
            .args([
                "exec",
                "-e",
                &format!("SQL={statement}"),
                &container,
                "sh",
                "-c",
                "PGPASSWORD=\"$POSTGRES_PASSWORD\" psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 \
                 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -c \"$SQL\"",
            ])
            .output()
            .expect("docker runs");
        assert!(
            output.status.success(),
            "{statement}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The backend's health answer through the edge (`status`, `version`, …).
    pub async fn health(&self) -> serde_json::Value {
        reqwest::get(self.url("/api/health"))
            .await
            .expect("the edge answers")
            .json()
            .await
            .expect("a JSON health answer")
    }
}

/// One server-sent event as a test reads it.
#[derive(Debug)]
pub struct SseEvent {
    pub kind: String,
    pub id: Option<i64>,
    pub data: serde_json::Value,
}

/// A server-sent event stream of the console, read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Opens `path` as `client`, resuming after `last_event_id` when given; a refusal comes
    /// back as the response.
    pub async fn open(
        client: &reqwest::Client,
        console: &RunningConsole,
        path: &str,
        last_event_id: Option<i64>,
    ) -> Result<Self, reqwest::Response> {
        let mut request = client
            .get(console.url(path))
            .timeout(Duration::from_secs(180));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("event stream request");
        if response.status() != 200 {
            return Err(response);
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next event, `None` once the server has ended the stream; the test fails when
    /// nothing arrives within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        // Keep-alive comments arrive every 15 s; they do not count as something sent.
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                // Keep-alive comments carry no event.
                if let Some(event) = parse_event(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("the stream sent an event in time");
            match chunk {
                Ok(Some(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Every event until the server ends the stream.
    pub async fn read_to_end(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next(Duration::from_secs(120)).await {
            events.push(event);
        }
        events
    }
}

fn parse_event(block: &str) -> Option<SseEvent> {
    let field = |name: &str| {
        block
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .map(str::trim)
    };
    let data = field("data")?;
    Some(SseEvent {
        kind: field("event")?.to_owned(),
        id: field("id").and_then(|id| id.parse().ok()),
        data: serde_json::from_str(data).unwrap_or_else(|_| data.into()),
    })
}

/// `docker …` with the machine's client; returns stdout, trimmed.
pub fn docker(args: &[&str]) -> String {
    let output = std::process::Command::new("/usr/bin/docker")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The id of the approval a `slipway restore` or `slipway rollback` requested.
pub fn requested_approval(said: &Exited) -> String {
    said.assert_success();
    said.stdout
        .split_whitespace()
        .skip_while(|word| *word != "approval")
        .nth(1)
        .unwrap_or_else(|| panic!("no approval id in {}", said.stdout))
        .to_owned()
}

/// Decides approval `id` as the signed-in `approver` with `password`; the response.
pub async fn decide(
    approver: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
    decision: &str,
    password: &str,
) -> reqwest::Response {
    call(
        approver,
        console,
        "decide_approval",
        &[("id", id), ("decision", decision), ("password", password)],
    )
    .await
}

/// `slipway approval wait ID` on `flags`' store: the decision, then the run to its end.
pub async fn wait_for_approval(flags: &[String], id: &str) -> Exited {
    let mut args = vec!["approval", "wait", id];
    args.extend(flags.iter().map(String::as_str));
    run_to_exit(&args, &[]).await
}

/// A steady load on one URL from 127.0.0.1: concurrent clients, a new connection per
/// request, each bounded in count (20,000) and all in time (two minutes).
pub struct SteadyLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, usize)>>,
}

impl SteadyLoad {
    /// One client, a request every few milliseconds.
    pub fn start(url: String) -> Self {
        Self::concurrent(url, 1, 0, Duration::from_millis(5))
    }

    /// `clients` clients, each pausing `pause` between requests; once stopped they still go
    /// on until `at_least` requests were sent in all.
    pub fn concurrent(url: String, clients: usize, at_least: usize, pause: Duration) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let sent = std::sync::Arc::new(AtomicUsize::new(0));
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let tasks = (0..clients)
            .map(|_| {
                let (stop, sent, url) = (stop.clone(), sent.clone(), url.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .build()
                        .unwrap();
                    let (mut failed, mut total) = (0, 0);
                    while !(stop.load(Ordering::SeqCst) && sent.load(Ordering::SeqCst) >= at_least)
                        && total < 20_000
                        && std::time::Instant::now() < deadline
                    {
                        let ok =
                            matches!(client.get(&url).send().await, Ok(r) if r.status() == 200);
                        total += 1;
                        failed += usize::from(!ok);
                        sent.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(pause).await;
                    }
                    (failed, total)
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops the load; how many requests failed, of how many.
    pub async fn stop(self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut counts = (0, 0);
        for task in self.tasks {
            let (failed, total) = task.await.expect("a load task");
            counts = (counts.0 + failed, counts.1 + total);
        }
        counts
    }
}
