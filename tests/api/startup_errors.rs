//! Bad configuration ends `slipway serve` with one line that says what is wrong and how to
//! fix it, a non-zero exit code, and nothing written.

use crate::helpers::{run_to_exit, Exited};

fn assert_one_clear_line(failure: &Exited, must_mention: &[&str]) {
    assert_ne!(failure.code, Some(0), "{}", failure.stderr);
    let lines: Vec<&str> = failure
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {:#?}", lines);
    assert!(lines[0].starts_with("slipway: "), "{}", lines[0]);
    for needle in must_mention {
        assert!(lines[0].contains(needle), "`{}` lacks {needle:?}", lines[0]);
    }
    assert!(!lines[0].contains("panicked"), "{}", lines[0]);
}

#[tokio::test]
async fn a_port_already_in_use_is_named_and_no_store_is_created() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let failure = run_to_exit(&["serve", "--addr", &addr, "--data-dir", &data_arg], &[]).await;
    assert_one_clear_line(&failure, &[&addr, "in use", "--addr"]);
    assert!(
        !data.exists(),
        "the data dir was created although the console never started"
    );
}

#[tokio::test]
async fn an_unwritable_data_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let data = blocker.join("data").display().to_string();
    let failure = run_to_exit(
        &["serve", "--addr", "127.0.0.1:0", "--data-dir", &data],
        &[],
    )
    .await;
    assert_one_clear_line(&failure, &[&data, "--data-dir"]);
}

#[tokio::test]
async fn an_unreachable_database_url_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let failure = run_to_exit(
        &["serve", "--addr", "127.0.0.1:0", "--data-dir", &data_arg],
        &[(
            "DATABASE_URL",
            "postgres://slipway:top-secret-pw@127.0.0.1:1/slipway",
        )],
    )
    .await;
    assert_one_clear_line(&failure, &["127.0.0.1:1", "DATABASE_URL"]);
    assert!(
        !failure.stderr.contains("top-secret-pw"),
        "{}",
        failure.stderr
    );
    assert!(
        !data.exists(),
        "a PostgreSQL console must not create the SQLite data dir"
    );
}

#[tokio::test]
async fn a_malformed_address_in_the_environment_is_named() {
    let failure = run_to_exit(&["serve"], &[("SLIPWAY_ADDR", "port-three-thousand")]).await;
    assert_one_clear_line(
        &failure,
        &["port-three-thousand", "--addr", "127.0.0.1:3000"],
    );
    assert_eq!(failure.code, Some(2));
}

#[tokio::test]
async fn a_malformed_log_filter_is_named() {
    let failure = run_to_exit(
        &["serve", "--addr", "127.0.0.1:0"],
        &[("RUST_LOG", "info,=[bad")],
    )
    .await;
    assert_one_clear_line(&failure, &["RUST_LOG"]);
}

#[tokio::test]
async fn plain_http_on_a_network_address_is_refused_whatever_the_public_url_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let failure = run_to_exit(
        &[
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--public-url",
            "http://127.0.0.1:3000",
            "--data-dir",
            &data_arg,
        ],
        &[],
    )
    .await;
    assert_one_clear_line(&failure, &["plain http", "--insecure-http", "TLS"]);
    assert!(!data.exists(), "nothing was written");
}
