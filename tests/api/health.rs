//! Health on the real engine: the console probes a deployed stack on its own, each check on
//! its own clock (a hanging endpoint delays nobody else), bad endpoints — one that hangs, one
//! that sends 100 MB, invalid UTF-8, a name that does not resolve, a missing JSON field, one
//! that flaps — are failed checks with a reason; evidence never shows a secret; `/metrics`
//! wants its token; the sample portal's Salesforce check fails with its reason; and the time
//! series keeps its size bound over simulated weeks. On SQLite and PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use app::auth::Role;
use app::health::probes::Verdict;
use app::health::series::{self, Finding};
use app::health::{ServiceProbes, StackHealth};
use axum::body::Body;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::helpers::{
    call, free_port, run_to_exit, signed_in, stack_add_args, throwaway_project, with_flags,
    RunningConsole, SamplePortal, TestStore, BACKENDS,
};

/// The stack's secret: an endpoint echoes it, and no evidence may show it.
const SECRET: &str = "probe-secret-0123456789abcdef";
const METRICS_TOKEN: &str = "metrics-token-0123456789";

/// Endpoints that misbehave, on loopback.
async fn stub_endpoints() -> String {
    use axum::routing::get;
    let flaps = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .route(
            "/big",
            get(|| async {
                // 100 MB, a megabyte at a time: the probe must stop reading long before the end.
                let chunk = axum::body::Bytes::from(vec![b'x'; 1024 * 1024]);
                let stream = futures::stream::iter(
                    (0..100).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Body::from_stream(stream)
            }),
        )
        .route(
            "/binary",
            get(|| async { vec![0xff_u8, 0xfe, 0x00, 0xc3, 0x28] }),
        )
        .route(
            "/json",
            get(|| async { axum::Json(serde_json::json!({ "services": { "salesforce": "ok" } })) }),
        )
        .route(
            "/secret",
            get(|| async { format!("token={SECRET}; all fine") }),
        )
        .route(
            "/flap",
            get(move || {
                let flaps = flaps.clone();
                async move {
                    if flaps.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                        (axum::http::StatusCode::OK, "up")
                    } else {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// A one-service stack whose web service answers on a published port, with probes at the
/// stub's endpoints.
fn compose(port: &str, stub: &str) -> String {
    format!(
        r#"services:
  web:
    image: slipway-portal-frontend:1.0.0
    environment:
      API_TOKEN: ${{API_TOKEN}}
    ports:
      - "127.0.0.1:{port}:3000"
    x-slipway:
      role: app
      probes:
        - http: /_health
          contains: ok
        - http: {stub}/hang
          within: 6s
        - http: {stub}/big
          json: {{ ".a": "b" }}
        - http: {stub}/binary
          contains: ok
        - http: http://does-not-resolve.invalid/health
          within: 3s
        - http: {stub}/json
          json: {{ ".services.whmcs": "ok" }}
        - http: {stub}/secret
        - http: {stub}/flap
        - http: {stub}/json?key=${{API_TOKEN}}
"#
    )
}

fn probe<'a>(stack: &'a StackHealth, name: &str) -> &'a app::health::ProbeHealth {
    stack
        .probes
        .iter()
        .find(|probe| probe.probe == name)
        .unwrap_or_else(|| panic!("no probe {name} in {:#?}", stack.probes))
}

async fn service_health(
    client: &reqwest::Client,
    console: &RunningConsole,
    stack: &str,
    service: &str,
) -> Option<ServiceProbes> {
    let answer = call(
        client,
        console,
        "service_health",
        &[("stack", stack), ("service", service)],
    )
    .await;
    if answer.status() != 200 {
        return None;
    }
    answer.json().await.ok()
}

#[tokio::test]
async fn the_console_probes_a_stack_and_bad_endpoints_fail_with_a_reason_on_both_stores() {
    let stub = stub_endpoints().await;
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let flags = store.serve_flags();
        let (project, _cleanup) = throwaway_project("slipwayhealth");
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let compose_file = dir.path().join("docker-compose.yml");
        std::fs::write(&compose_file, compose(&port, &stub)).unwrap();
        let env_file = dir.path().join("web.env");
        std::fs::write(&env_file, format!("API_TOKEN={SECRET}\n")).unwrap();
        let (compose_file, env_file) = (
            compose_file.display().to_string(),
            env_file.display().to_string(),
        );
        run_to_exit(
            &stack_add_args(
                &flags,
                "hw",
                &compose_file,
                &["--project", &project, "--env-file", &env_file],
            ),
            &[],
        )
        .await
        .assert_success();
        run_to_exit(&with_flags(&["deploy", "hw"], &flags), &[])
            .await
            .assert_success();
        run_to_exit(
            &with_flags(&["stack", "health", "hw", "--every", "2s"], &flags),
            &[],
        )
        .await
        .assert_success();

        let token_file = dir.path().join("metrics-token");
        std::fs::write(&token_file, format!("{METRICS_TOKEN}\n")).unwrap();
        let token_file = token_file.display().to_string();
        let console =
            RunningConsole::start_with(&store, &["--metrics-token-file", &token_file]).await;
        store.add_user("vera", Role::Viewer).await;
        let password = store.add_user("vic", Role::Viewer).await;
        let client = signed_in(&console, "vic", &password).await;

        // Wait until the fast probe has been checked several times; the hanging one holds
        // a check for 6 s at a time.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        let web = loop {
            if let Some(web) = service_health(&client, &console, "hw", "web").await {
                let fast = web
                    .recent
                    .iter()
                    .filter(|s| s.probe == "http /_health")
                    .count();
                if fast >= 5 && web.probes.len() == 10 {
                    break web;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend:?}: the console did not probe the stack: {:?}",
                console.logged.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };

        // The fast probe kept its own 2 s clock while the hanging one took 6 s a check.
        let mut fast: Vec<DateTime<Utc>> = web
            .recent
            .iter()
            .filter(|s| s.probe == "http /_health")
            .map(|s| s.at.parse().unwrap())
            .collect();
        fast.sort();
        for pair in fast.windows(2) {
            let gap = (pair[1] - pair[0]).num_milliseconds();
            assert!(gap < 5_500, "{backend:?}: the fast probe waited {gap} ms");
        }
        let stack = StackHealth {
            stack: "hw".into(),
            policy: app::health::HealthPolicy::default(),
            probes: web.probes.clone(),
        };
        let container = probe(&stack, "container");
        assert!(container.ok, "{backend:?}: {container:?}");
        assert!(container.detail.contains("running"), "{container:?}");
        let health = probe(&stack, "http /_health");
        assert!(health.ok, "{backend:?}: {health:?}");
        assert!(health.detail.starts_with("200 OK in "), "{health:?}");
        let hang = probe(&stack, &format!("http {stub}/hang"));
        assert!(!hang.ok);
        assert_eq!(hang.detail, "no answer within 6s");
        assert!((6_000..8_000).contains(&hang.latency_ms), "{hang:?}");
        let big = probe(&stack, &format!("http {stub}/big"));
        assert!(!big.ok);
        assert!(
            big.detail
                .starts_with("the answer is larger than 1024 KiB; 200 OK"),
            "{big:?}"
        );
        let binary = probe(&stack, &format!("http {stub}/binary"));
        assert!(!binary.ok);
        assert!(
            binary
                .detail
                .starts_with("the answer does not contain \"ok\"; 200 OK"),
            "{binary:?}"
        );
        let unresolved = probe(&stack, "http http://does-not-resolve.invalid/health");
        assert!(!unresolved.ok);
        assert!(
            unresolved.detail.starts_with("error sending request")
                || unresolved.detail.starts_with("no answer within 3s"),
            "{unresolved:?}"
        );
        let json = probe(&stack, &format!("http {stub}/json"));
        assert!(!json.ok);
        assert!(
            json.detail
                .starts_with("the answer has no field .services.whmcs; 200 OK"),
            "{json:?}"
        );
        let secret = probe(&stack, &format!("http {stub}/secret"));
        assert!(secret.ok, "{secret:?}");
        assert!(secret.detail.contains("token=••••; all fine"), "{secret:?}");
        // A flapping endpoint is a check that passes and fails in turn, each with its reason.
        let flap = format!("http {stub}/flap");
        let flaps: Vec<&app::health::Sample> =
            web.recent.iter().filter(|s| s.probe == flap).collect();
        assert!(
            flaps.iter().any(|s| s.ok) && flaps.iter().any(|s| !s.ok),
            "{flaps:#?}"
        );
        assert!(flaps.iter().filter(|s| !s.ok).all(|s| s
            .detail
            .starts_with("expected a 2xx status; 500 Internal Server Error")));
        // A secret in a probe's URL is masked in its name, wherever the name goes.
        let keyed = format!("http {stub}/json?key=••••");
        assert!(probe(&stack, &keyed).ok);
        // The sparkline's newest bars hold the checks of now (ten minutes each: the checks
        // may straddle a boundary).
        let bars = &health.spark;
        assert_eq!(bars.len(), 144);
        assert!(bars[142].checks + bars[143].checks >= 5, "{bars:?}");
        assert_eq!(bars[142].failures + bars[143].failures, 0, "{bars:?}");
        assert_eq!(health.uptime_24h, Some(1000));

        // No secret in any stored result.
        let db = store.open().await;
        let (leaks,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM health_samples WHERE detail LIKE '%' || $1 || '%' \
             OR probe LIKE '%' || $1 || '%'",
        )
        .bind(SECRET)
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert_eq!(leaks, 0, "{backend:?}");

        // The Health page, rendered without JavaScript, shows it all to a viewer.
        let page = console.page(&client, "/health").await;
        assert!(
            page.contains("failing: 5 of 10 checks fail")
                || page.contains("failing: 6 of 10 checks fail"),
            "{page}"
        );
        assert!(page.contains("no answer within 6s"));
        assert!(page.contains("data-testid=\"sparkline\""));
        assert!(!page.contains(SECRET));
        let service_page = console.page(&client, "/health/hw/web").await;
        assert!(service_page.contains("Recent results"));
        assert_eq!(console.page_status(&client, "/health/hw/nope").await, 404);

        // Only an admin sets the policy.
        let refused = call(
            &client,
            &console,
            "set_health_policy",
            &[
                ("stack", "hw"),
                ("every_seconds", "5"),
                ("watch_seconds", "0"),
                ("on_failed_verification", "rollback"),
            ],
        )
        .await;
        assert_eq!(refused.status(), 403);
        let admin_password = store.add_user("ada", Role::Admin).await;
        let admin = signed_in(&console, "ada", &admin_password).await;
        let policy = |every: &'static str| {
            [
                ("stack", "hw"),
                ("every_seconds", every),
                ("watch_seconds", "60"),
                ("on_failed_verification", "rollback"),
            ]
        };
        let too_often = call(&admin, &console, "set_health_policy", &policy("1")).await;
        assert_eq!(too_often.status(), 422);
        let set = call(&admin, &console, "set_health_policy", &policy("2")).await;
        assert_eq!(set.status(), 200);
        let set: Value = set.json().await.unwrap();
        assert_eq!(set["set_by"], "ada");
        assert_eq!(set["on_failed_verification"], "rollback");

        // The command line prints the same and exits 1: checks fail.
        let said = run_to_exit(&with_flags(&["health", "hw"], &flags), &[]).await;
        assert_eq!(said.code, Some(1), "{}{}", said.stdout, said.stderr);
        assert!(said.stdout.starts_with("hw: failing: "), "{}", said.stdout);
        assert!(
            said.stdout.contains("web http /_health passing"),
            "{}",
            said.stdout
        );
        assert!(said.stdout.contains("FAILING") && !said.stdout.contains(SECRET));
        let said = run_to_exit(&with_flags(&["health", "hw", "--json"], &flags), &[]).await;
        assert_eq!(said.code, Some(1));
        let json: Value = serde_json::from_str(&said.stdout).expect("JSON");
        assert_eq!(json["probes"].as_array().unwrap().len(), 10);

        // /metrics wants its token, and then speaks Prometheus.
        let http = reqwest::Client::new();
        let metrics = console.url("/metrics");
        assert_eq!(http.get(&metrics).send().await.unwrap().status(), 401);
        let wrong = http
            .get(&metrics)
            .bearer_auth("metrics-token-wrong-guess")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
        let scraped = http
            .get(&metrics)
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(scraped.status(), 200);
        assert!(scraped.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        let text = scraped.text().await.unwrap();
        assert!(
            text.contains(
                "slipway_probe_up{stack=\"hw\",service=\"web\",probe=\"http /_health\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "slipway_probe_up{{stack=\"hw\",service=\"web\",probe=\"http {stub}/hang\"}} 0"
            )),
            "{text}"
        );
        assert!(
            text.contains(
                "slipway_runs_total{stack=\"hw\",operation=\"deploy\",outcome=\"succeeded\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("slipway_run_last_duration_seconds{stack=\"hw\",operation=\"deploy\"}"),
            "{text}"
        );
        assert!(text.contains("slipway_approvals_waiting 0"), "{text}");
        assert!(!text.contains(SECRET));
        assert!(
            text.contains(&format!("probe=\"http {stub}/json?key=••••\"}} 1")),
            "{text}"
        );
        console.terminate().await;

        // Without a token file the endpoint is off; a short token is refused at start.
        let plain = RunningConsole::start(&store).await;
        assert_eq!(
            http.get(plain.url("/metrics"))
                .bearer_auth(METRICS_TOKEN)
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        plain.terminate().await;
        let short = dir.path().join("short-token");
        std::fs::write(&short, "short").unwrap();
        let short = short.display().to_string();
        let refused = run_to_exit(
            &with_flags(
                &[
                    "serve",
                    "--addr",
                    "127.0.0.1:0",
                    "--metrics-token-file",
                    &short,
                ],
                &flags,
            ),
            &[],
        )
        .await;
        assert_ne!(refused.code, Some(0));
        assert!(
            refused.stderr.contains("at least 16 characters"),
            "{}",
            refused.stderr
        );

        // A stopped stack is not probed: its state is forgotten, its history kept.
        run_to_exit(&with_flags(&["stop", "hw"], &flags), &[])
            .await
            .assert_success();
        let said = run_to_exit(&with_flags(&["health", "hw"], &flags), &[]).await;
        assert_eq!(said.code, Some(0), "{}{}", said.stdout, said.stderr);
        assert_eq!(
            said.stdout.trim(),
            "hw: not running: nothing to probe (probed every 2 s)"
        );
    }
}

#[tokio::test]
async fn a_failing_salesforce_fails_the_portal_integration_check() {
    let portal = SamplePortal::add("sliphp").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let said = run_to_exit(&with_flags(&["health", "portal"], &portal.flags), &[]).await;
    assert_eq!(said.code, Some(0), "{}{}", said.stdout, said.stderr);
    assert!(
        said.stdout
            .starts_with("portal: healthy: all 11 checks pass"),
        "{}",
        said.stdout
    );
    assert!(said
        .stdout
        .contains("backend http /auth/health-check passing"));
    // The database and the cache are asked from inside their containers.
    assert!(
        said.stdout.contains("database postgres passing")
            && said
                .stdout
                .contains("connections in use; migration head 20240115_create_invoices"),
        "{}",
        said.stdout
    );
    assert!(
        said.stdout.contains("cache redis passing") && said.stdout.contains(": PONG; "),
        "{}",
        said.stdout
    );

    // Salesforce goes down: the integration check fails and says which field and why.
    let env = [
        ("PORTAL_PORT", portal.port.as_str()),
        ("PORTAL_VERSION", "1.0.0"),
        ("SALESFORCE_STATUS", "down"),
    ];
    run_to_exit(&with_flags(&["update", "portal"], &portal.flags), &env)
        .await
        .assert_success();
    let said = run_to_exit(
        &with_flags(&["health", "portal", "--json"], &portal.flags),
        &[],
    )
    .await;
    assert_eq!(said.code, Some(1), "{}{}", said.stdout, said.stderr);
    let stack: StackHealth = serde_json::from_str(&said.stdout).expect("JSON");
    let failing: Vec<_> = stack.probes.iter().filter(|probe| !probe.ok).collect();
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert_eq!(failing[0].service, "backend");
    assert_eq!(failing[0].probe, "http /auth/health-check");
    assert!(
        failing[0]
            .detail
            .starts_with(".services.salesforce is \"down\", expected \"ok\"; 200 OK"),
        "{:?}",
        failing[0].detail
    );
}

#[tokio::test]
async fn the_series_keeps_its_size_bound_over_five_simulated_weeks_on_both_stores() {
    // Two probes checked every 20 minutes for 35 days, pruned every simulated hour as the
    // console does: raw results level off at 48 hours' worth, minute counts at 30 days'.
    const EVERY_MINUTES: i64 = 20;
    const PROBES: i64 = 2;
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let db = store.open().await;
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut sizes = Vec::new();
        let rounds = 35 * 24 * 60 / EVERY_MINUTES;
        for round in 0..rounds {
            let at = start + chrono::Duration::minutes(round * EVERY_MINUTES);
            let findings: Vec<Finding> = ["container", "http /health"]
                .iter()
                .map(|probe| Finding {
                    service: "web".into(),
                    probe: (*probe).into(),
                    verdict: Verdict {
                        ok: round % 7 != 0,
                        latency_ms: 12,
                        detail: "200 OK in 12 ms: ok".into(),
                    },
                })
                .collect();
            series::record(&db, "sim", at, &findings).await.unwrap();
            if (round * EVERY_MINUTES) % 60 == 20 {
                series::prune(&db, at).await.unwrap();
                if (round * EVERY_MINUTES) % (24 * 60) == 1400 {
                    sizes.push(series::size(&db).await.unwrap());
                }
            }
        }
        let per_hour = 60 / EVERY_MINUTES * PROBES;
        let raw_bound = 48 * per_hour + per_hour;
        let minute_bound = 30 * 24 * per_hour + per_hour;
        for (day, (raw, minutes)) in sizes.iter().enumerate() {
            assert!(*raw <= raw_bound, "{backend:?} day {day}: {raw} raw rows");
            assert!(
                *minutes <= minute_bound,
                "{backend:?} day {day}: {minutes} minute rows"
            );
        }
        // Past two days the raw rows stay level; past thirty the minute counts do too.
        assert_eq!(sizes[3].0, sizes[34].0, "{backend:?}: {sizes:?}");
        assert_eq!(sizes[31].1, sizes[34].1, "{backend:?}: {sizes:?}");
        assert!(sizes[34].1 > sizes[3].1);
        // The state kept its first time of failing or passing: every 7th round fails.
        let (ok, since): (i64, String) = sqlx::query_as(
            "SELECT ok, since FROM health_state WHERE stack = 'sim' AND probe = 'container'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        let last_failure = (rounds - 1) / 7 * 7;
        assert_eq!(ok, 1);
        assert_eq!(
            since,
            app::store::utc_text(
                start + chrono::Duration::minutes((last_failure + 1) * EVERY_MINUTES)
            )
        );
    }
}

/// The portal's `/_health` (the frontend's) through its edge, asked every 50 ms until
/// stopped: when each answer came and whether it was a 200.
struct HealthWatcher {
    seen: Arc<std::sync::Mutex<Vec<(tokio::time::Instant, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthWatcher {
    fn start(url: String) -> Self {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(1))
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                // Bounded: never longer than five minutes, whatever the test does.
                for _ in 0..6000 {
                    let ok = client
                        .get(&url)
                        .send()
                        .await
                        .is_ok_and(|answer| answer.status() == 200);
                    seen.lock().unwrap().push((tokio::time::Instant::now(), ok));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Self { seen, task }
    }

    /// From the first failed answer to the first of the answers that passed ever since.
    fn outage(self) -> Option<Duration> {
        self.task.abort();
        let seen = self.seen.lock().unwrap().clone();
        let first_failed = seen.iter().position(|(_, ok)| !ok)?;
        let last_failed = seen.iter().rposition(|(_, ok)| !ok)?;
        let back = seen.get(last_failed + 1)?;
        Some(back.0 - seen[first_failed].0)
    }
}

/// A run's lines, for a failure's message.
async fn run_lines(store: &TestStore, run: &str) -> String {
    let db = store.open().await;
    let lines: Vec<(String,)> =
        sqlx::query_as("SELECT text FROM run_lines WHERE run_id = $1 ORDER BY seq")
            .bind(run)
            .fetch_all(db.pool())
            .await
            .unwrap();
    lines.into_iter().map(|(text,)| text + "\n").collect()
}

async fn run_row(store: &TestStore, operation: &str) -> (String, String, String) {
    let db = store.open().await;
    sqlx::query_as(
        "SELECT id, status, verification FROM runs WHERE operation = $1 \
         ORDER BY started_at DESC LIMIT 1",
    )
    .bind(operation)
    .fetch_one(db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn an_update_that_goes_bad_after_its_checks_is_rolled_back_within_10_s_of_the_first_failure()
{
    let portal = SamplePortal::add("slipvrb").await;
    fn policy<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["stack", "health", "portal"];
        all.extend_from_slice(args);
        all
    }
    run_to_exit(&with_flags(&policy(&["--watch", "3s"]), &portal.flags), &[])
        .await
        .assert_success();
    let deployed = portal.run("deploy", "1.0.0").await;
    deployed.assert_success();
    assert!(deployed
        .stdout
        .contains("Verify: every container and probe passes"));
    let (deploy, _, verification) = run_row(&portal.store, "deploy").await;
    assert_eq!(
        verification,
        "passed",
        "{}",
        run_lines(&portal.store, &deploy).await
    );

    let set = run_to_exit(
        &with_flags(
            &policy(&["--watch", "90s", "--on-failed-verification", "rollback"]),
            &portal.flags,
        ),
        &[],
    )
    .await;
    set.assert_success();
    assert!(
        set.stdout
            .contains("puts the previous version back (set by cli:"),
        "{}",
        set.stdout
    );

    // The new frontend answers its health check for 45 s, long enough to pass the rollout
    // probe and the verification, then fails it during the watch window.
    let watcher = HealthWatcher::start(portal.url("/_health"));
    let env = [
        ("PORTAL_PORT", portal.port.as_str()),
        ("PORTAL_VERSION", "1.1.0"),
        ("FRONTEND_FAIL_AFTER", "45"),
    ];
    let update = run_to_exit(&with_flags(&["update", "portal"], &portal.flags), &env).await;
    let outage = watcher
        .outage()
        .expect("the new frontend failed and the old one came back");
    assert_ne!(update.code, Some(0), "{}", update.stdout);
    assert!(
        update
            .stderr
            .contains("verification failed: frontend http /_health failed after"),
        "{}",
        update.stderr
    );
    assert!(
        update
            .stdout
            .contains("AUTOMATIC ROLLBACK: the previous version serves again"),
        "{}",
        update.stdout
    );
    println!(
        "from the first failed request to the previous version serving: {outage:?}\n{}",
        run_lines(&portal.store, &run_row(&portal.store, "update").await.0).await
    );
    assert!(outage < Duration::from_secs(10), "{outage:?}");

    // 1.0.0 serves again, and the record says why and on whose authority.
    assert_eq!(portal.health().await["version"], "1.0.0");
    let (run, status, verification) = run_row(&portal.store, "update").await;
    assert_eq!(
        (status.as_str(), verification.as_str()),
        ("failed", "rolled back")
    );
    let db = portal.store.open().await;
    let (detail,): (String,) =
        sqlx::query_as("SELECT detail FROM audit_events WHERE action = 'rollback.automatic'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["run"], run.as_str());
    assert!(detail["policy_set_by"]
        .as_str()
        .unwrap()
        .starts_with("cli:"));
    assert!(
        detail["recovered_ms"].as_u64().unwrap() < 10_000,
        "{detail}"
    );
    let history = app::history::service::page(&db, &app::history::HistoryFilter::default())
        .await
        .unwrap();
    assert_eq!(history.entries[0].verification, "rolled back");
}

#[tokio::test]
async fn an_error_spike_after_an_update_fails_its_verification_and_the_team_is_told() {
    let portal = SamplePortal::add("slipvsp").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    run_to_exit(
        &with_flags(
            &["stack", "health", "portal", "--watch", "20s"],
            &portal.flags,
        ),
        &[],
    )
    .await
    .assert_success();
    // A channel that wants failed verifications: no console sends it, so it waits in the outbox.
    crate::helpers::run_with_stdin(
        &with_flags(
            &[
                "channel",
                "add",
                "ops",
                "--kind",
                "webhook",
                "--events",
                "verification.failed",
            ],
            &portal.flags,
        ),
        "http://127.0.0.1:9/hook\n",
    )
    .await
    .assert_success();

    // While the update is watched, the new backend logs forty errors.
    let db = portal.store.open().await;
    let fail_url = portal.url("/api/_fail");
    let spike = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let watching: Option<(String,)> = sqlx::query_as(
                "SELECT run_steps.status FROM run_steps JOIN runs ON runs.id = run_steps.run_id \
                 WHERE runs.operation = 'update' AND run_steps.name LIKE 'Watch%' \
                 AND run_steps.status = 'running'",
            )
            .fetch_optional(db.pool())
            .await
            .unwrap();
            if watching.is_some() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the watch never began"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for _ in 0..40 {
            let _ = reqwest::get(&fail_url).await;
        }
    });
    let update = portal.run("update", "1.1.0").await;
    spike.await.unwrap();
    update.assert_success();
    assert!(update.stdout.contains("error spike: "), "{}", update.stdout);
    assert!(
        update
            .stdout
            .contains("VERIFICATION FAILED: the change stays (on failed verification: alert)"),
        "{}",
        update.stdout
    );
    // The change stayed: 1.1.0 serves.
    assert_eq!(portal.health().await["version"], "1.1.0");
    let (_, status, verification) = run_row(&portal.store, "update").await;
    assert_eq!(
        (status.as_str(), verification.as_str()),
        ("succeeded", "failed")
    );
    let db = portal.store.open().await;
    let (events,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM notification_outbox WHERE event = 'verification.failed'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(events, 1);
}
