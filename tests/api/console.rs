//! The console as a browser or a load balancer sees it over HTTP.

use app::auth::Role;

use crate::helpers::{client, signed_in, Backend, RunningConsole, TestStore, BACKENDS};

/// A console on SQLite with an admin signed in.
async fn console_with_admin() -> (TestStore, RunningConsole, reqwest::Client) {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("root", Role::Admin).await;
    let console = RunningConsole::start(&store).await;
    let admin = signed_in(&console, "root", &password).await;
    (store, console, admin)
}

#[tokio::test]
async fn healthz_answers_ok_on_either_store() {
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let console = RunningConsole::start(&store).await;
        let response = client().get(console.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{backend:?}");
        assert_eq!(response.text().await.unwrap().trim(), "ok");
        let (code, _) = console.terminate().await;
        assert_eq!(code, Some(0), "{backend:?}");
    }
}

#[tokio::test]
async fn the_overview_renders_the_shell_with_every_section_in_the_navigation() {
    let (_store, console, admin) = console_with_admin().await;
    let response = admin.get(console.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("<title>Overview · Slipway</title>"), "{html}");
    for section in app::sections::SECTIONS {
        let link = format!("href=\"{}\"", section.path);
        assert!(html.contains(&link), "navigation lacks {}", section.label);
    }
    assert!(
        html.contains("/pkg/slipway.js"),
        "the page loads the WASM bundle"
    );
    assert!(
        html.contains("data-testid=\"user-menu\""),
        "the header names the user"
    );
}

#[tokio::test]
async fn every_section_opens_with_its_own_heading() {
    let (_store, console, admin) = console_with_admin().await;
    for section in app::sections::SECTIONS {
        let response = admin.get(console.url(section.path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", section.path);
        let html = response.text().await.unwrap();
        assert!(
            html.contains(&format!("<title>{} · Slipway</title>", section.label)),
            "{}",
            section.path
        );
    }
}

#[tokio::test]
async fn an_unknown_address_gets_a_real_404_page() {
    let (_store, console, admin) = console_with_admin().await;
    for path in ["/no-such-page", "/stacks/nothing/here"] {
        let anonymous = client().get(console.url(path)).send().await.unwrap();
        assert_eq!(
            anonymous.status(),
            303,
            "{path}: strangers are sent to sign in first"
        );
        let response = admin.get(console.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("Page not found"), "{path}");
        assert!(
            html.contains("class=\"topbar\""),
            "{path}: the 404 keeps the navigation"
        );
    }
}

#[tokio::test]
async fn the_console_status_function_measures_the_store_it_runs_on() {
    for (backend, label) in [
        (Backend::Sqlite, "SQLite"),
        (Backend::Postgres, "PostgreSQL"),
    ] {
        let store = TestStore::new(backend).await;
        let password = store.add_user("vera", Role::Viewer).await;
        let console = RunningConsole::start(&store).await;
        let viewer = signed_in(&console, "vera", &password).await;
        let response = viewer
            .post(console.url("/api/console_status"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{backend:?}");
        let status: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status["store_backend"], label);
        assert!(status["migrations_applied"].as_i64().unwrap() >= 1);
        assert!(status["store_round_trip_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
        let shown = status["store_location"].as_str().unwrap();
        assert!(!shown.contains("password"), "{shown}");
    }
}

#[tokio::test]
async fn sigterm_stops_the_console_cleanly() {
    let store = TestStore::new(Backend::Sqlite).await;
    let console = RunningConsole::start(&store).await;
    let url = console.url("/healthz");
    let (code, lines) = console.terminate().await;
    assert_eq!(code, Some(0));
    assert!(
        lines.iter().any(|line| line.contains("SIGTERM received")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|line| line.contains("console stopped")),
        "{lines:#?}"
    );
    assert!(
        client().get(url).send().await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn healthz_says_503_when_the_store_stops_answering() {
    let store = TestStore::new(Backend::Postgres).await;
    let console = RunningConsole::start(&store).await;
    assert_eq!(
        client()
            .get(console.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Take the console's database away from under it.
    let app::store::StoreLocation::Url(url) = &store.location else {
        unreachable!("a PostgreSQL store has a URL")
    };
    let database = url.rsplit('/').next().unwrap().to_owned();
    let admin_url = std::env::var(crate::helpers::POSTGRES_ENV).unwrap();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();

    let response = client().get(console.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.unwrap().trim(), "store unavailable");
}

#[tokio::test]
async fn the_site_is_sent_as_the_build_compressed_it_when_the_browser_accepts_it() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    // Contents that tell the files apart: the console sends the file, it does not compress.
    std::fs::write(pkg.join("slipway.wasm"), b"plain wasm").unwrap();
    std::fs::write(pkg.join("slipway.wasm.br"), b"brotli wasm").unwrap();
    std::fs::write(pkg.join("slipway.wasm.gz"), b"gzip wasm").unwrap();
    std::fs::write(pkg.join("slipway.css"), b"plain css").unwrap();
    let store = TestStore::new(Backend::Sqlite).await;
    let root = site.path().to_str().unwrap();
    let console = RunningConsole::start_with(&store, &["--site-root", root]).await;
    let fetch = |path: &'static str, accepts: &'static str| {
        let url = console.url(path);
        async move {
            let response = client()
                .get(url)
                .header("accept-encoding", accepts)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path} with {accepts:?}");
            let encoding = response
                .headers()
                .get("content-encoding")
                .map(|value| value.to_str().unwrap().to_owned());
            (encoding, response.text().await.unwrap())
        }
    };
    assert_eq!(
        fetch("/pkg/slipway.wasm", "gzip, deflate, br").await,
        (Some("br".to_owned()), "brotli wasm".to_owned())
    );
    assert_eq!(
        fetch("/pkg/slipway.wasm", "gzip").await,
        (Some("gzip".to_owned()), "gzip wasm".to_owned())
    );
    assert_eq!(
        fetch("/pkg/slipway.wasm", "identity").await,
        (None, "plain wasm".to_owned())
    );
    // A file the build did not compress is sent as it is, whatever the browser accepts.
    assert_eq!(
        fetch("/pkg/slipway.css", "gzip, br").await,
        (None, "plain css".to_owned())
    );
    let wasm = client()
        .get(console.url("/pkg/slipway.wasm"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    // Browsers compile the WASM while it downloads only when it is said to be WASM.
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    // A cache between must not hand the brotli file to a browser that did not accept it.
    assert_eq!(wasm.headers()["vary"], "accept-encoding");
    // The names stay from build to build: the browser asks again rather than mix two builds,
    // and is told the file is unchanged when it is.
    assert_eq!(wasm.headers()["cache-control"], "no-cache");
    let last_modified = wasm.headers()["last-modified"].clone();
    let again = client()
        .get(console.url("/pkg/slipway.wasm"))
        .header("accept-encoding", "br")
        .header("if-modified-since", last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}
