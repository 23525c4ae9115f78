//! Sign-in, sessions, roles and cross-site protection, against a real console process.

use std::collections::BTreeSet;

use app::auth::Role;

use crate::helpers::{
    call, client, client_with_jar, replaying, run_to_exit, session_cookie, sign_in, signed_in,
    Backend, RunningConsole, TestStore,
};

/// Everyone who may knock: no session, then each role.
const CALLERS: [Option<Role>; 5] = [
    None,
    Some(Role::Viewer),
    Some(Role::Operator),
    Some(Role::Approver),
    Some(Role::Admin),
];

/// A server function, the least role it needs, form arguments it accepts, and the statuses
/// that mean "let in" (200 unless the call's own outcome differs, e.g. 404 or 409).
type Call = (&'static str, Role, Vec<(String, String)>, &'static [u16]);

/// Every server function with the least role it needs and arguments it accepts.
/// `sign_in` is the one open door; `sign_out` is checked last, since it ends the session.
fn server_functions(target_id: &str, caller: &str) -> Vec<Call> {
    let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let let_in_with_200 = vec![
        ("console_status", Role::Viewer, vec![]),
        (
            "audit_events",
            Role::Approver,
            pairs(&[
                ("filter[actor]", ""),
                ("filter[action]", ""),
                ("filter[target]", ""),
                ("filter[limit]", "5"),
            ]),
        ),
        ("users", Role::Admin, vec![]),
        ("stacks", Role::Viewer, vec![]),
        ("notification_channels", Role::Admin, vec![]),
        (
            "history",
            Role::Viewer,
            pairs(&[("filter[stack]", "matrix")]),
        ),
        (
            "delivery_report",
            Role::Viewer,
            pairs(&[("stack", "matrix")]),
        ),
        ("running_now", Role::Viewer, pairs(&[("stack", "matrix")])),
        ("health", Role::Viewer, pairs(&[("stack", "matrix")])),
        (
            "set_health_policy",
            Role::Admin,
            pairs(&[
                ("stack", "matrix"),
                ("every_seconds", "15"),
                ("watch_seconds", "0"),
                ("on_failed_verification", "alert"),
            ]),
        ),
        (
            "release_runs",
            Role::Viewer,
            pairs(&[("release", "no-such-release")]),
        ),
        ("backups", Role::Viewer, pairs(&[("stack", "")])),
        ("backups_version", Role::Viewer, pairs(&[("stack", "")])),
        (
            "backup_overview",
            Role::Viewer,
            pairs(&[("stack", "matrix")]),
        ),
        (
            "set_backup_policy",
            Role::Admin,
            pairs(&[
                ("stack", "matrix"),
                ("every", "off"),
                ("keep_last", "7"),
                ("keep_daily", "7"),
                ("keep_weekly", "4"),
                ("before_update", "true"),
            ]),
        ),
        ("approvals", Role::Operator, pairs(&[("show", "open")])),
        ("approvals_waiting", Role::Viewer, vec![]),
        ("broken_glass", Role::Viewer, pairs(&[("stack", "")])),
        ("releases", Role::Viewer, vec![]),
        (
            "release_policy",
            Role::Viewer,
            pairs(&[("stack", "matrix")]),
        ),
        ("make_calendar_link", Role::Viewer, vec![]),
        (
            "release_templates",
            Role::Operator,
            pairs(&[("stack", "matrix")]),
        ),
        (
            "set_release_templates",
            Role::Admin,
            pairs(&[("stack", "matrix"), ("checklist", ""), ("timeline", "")]),
        ),
        (
            "revoke_calendar_link",
            Role::Admin,
            pairs(&[("user", "target")]),
        ),
        (
            "set_release_policy",
            Role::Admin,
            pairs(&[("stack", "matrix"), ("time_zone", "UTC")]),
        ),
        ("flags", Role::Viewer, pairs(&[("stack", "matrix")])),
        (
            "rollback_targets",
            Role::Operator,
            pairs(&[("stack", "matrix")]),
        ),
        (
            "approval_policy",
            Role::Operator,
            pairs(&[("stack", "matrix")]),
        ),
        (
            "set_approval_policy",
            Role::Admin,
            pairs(&[
                ("stack", "matrix"),
                ("required", "1"),
                ("expires_minutes", "60"),
            ]),
        ),
        ("stack_status", Role::Viewer, pairs(&[("name", "matrix")])),
        (
            "stack_config",
            Role::Operator,
            pairs(&[("stack", "matrix")]),
        ),
        // Without `profiles` none is active, which any stack takes.
        (
            "set_stack_profiles",
            Role::Admin,
            pairs(&[("stack", "matrix")]),
        ),
        (
            "stack_logs",
            Role::Viewer,
            pairs(&[
                ("name", "matrix"),
                ("service", ""),
                ("errors_only", "false"),
            ]),
        ),
        (
            "stack_diagnostics",
            Role::Viewer,
            pairs(&[("name", "matrix")]),
        ),
        ("runs", Role::Viewer, pairs(&[("stack", "")])),
        (
            "add_stack",
            Role::Admin,
            pairs(&[
                ("name", &format!("stack-{caller}")),
                ("compose_file", &portal_compose()),
                ("env_file", &portal_env()),
                ("project", &format!("matrix-{caller}")),
            ]),
        ),
        (
            "add_user",
            Role::Admin,
            pairs(&[
                ("name", &format!("new-{caller}")),
                ("role", "viewer"),
                ("password", "a-fine-password-1"),
            ]),
        ),
        (
            "change_role",
            Role::Admin,
            pairs(&[("user_id", target_id), ("role", "viewer")]),
        ),
        (
            "set_user_disabled",
            Role::Admin,
            pairs(&[("user_id", target_id), ("disabled", "false")]),
        ),
        (
            "reset_password",
            Role::Admin,
            pairs(&[("user_id", target_id), ("password", "another-password-2")]),
        ),
        ("sign_out", Role::Viewer, vec![]),
    ];
    let mut calls: Vec<Call> = let_in_with_200
        .into_iter()
        .map(|(name, role, args)| (name, role, args, &[200][..]))
        .collect();
    // Calls whose own outcome is not 200 once the caller is let in; sign_out stays last.
    let sign_out = calls.pop().expect("sign_out is listed");
    calls.push((
        "start_run",
        Role::Operator,
        pairs(&[("stack", "matrix"), ("operation", "start")]),
        // The previous caller's run may still hold the stack.
        &[200, 409],
    ));
    calls.push(("run", Role::Viewer, pairs(&[("id", "no-such-run")]), &[404]));
    // Nothing probed the matrix stack: no results for its service.
    calls.push((
        "service_health",
        Role::Viewer,
        pairs(&[("stack", "matrix"), ("service", "web")]),
        &[404],
    ));
    // Without `managed` the edge is turned off, which any stack takes.
    calls.push((
        "set_managed_edge",
        Role::Admin,
        pairs(&[("stack", "matrix")]),
        &[200],
    ));
    calls.push((
        "approval",
        Role::Operator,
        pairs(&[("id", "no-such-approval")]),
        &[404],
    ));
    // A one-service stack has nothing to roll back to: refused once let in.
    calls.push((
        "request_approval",
        Role::Operator,
        pairs(&[
            ("stack", "matrix"),
            ("operation", "rollback"),
            ("target", "no-such-run"),
            ("reason", "the matrix"),
        ]),
        &[409],
    ));
    // The password is checked before anything else: a wrong one is 401.
    calls.push((
        "decide_approval",
        Role::Approver,
        pairs(&[
            ("id", "no-such-approval"),
            ("decision", "approve"),
            ("password", "not-the-password"),
        ]),
        &[401],
    ));
    // The matrix stack has no backup at all: refused once let in.
    calls.push((
        "request_emergency",
        Role::Operator,
        pairs(&[("stack", "matrix"), ("reason", "the matrix")]),
        &[409],
    ));
    calls.push((
        "release",
        Role::Viewer,
        pairs(&[("id", "no-such-release")]),
        &[404],
    ));
    // The matrix stack reads, but a release needs a version: refused once let in.
    calls.push((
        "create_release",
        Role::Operator,
        pairs(&[
            ("stack", "matrix"),
            ("version", ""),
            ("planned_at", "2026-12-01 14:00"),
        ]),
        &[422],
    ));
    for function in ["check_release", "ship_release"] {
        calls.push((
            function,
            Role::Operator,
            pairs(&[("id", "no-such-release")]),
            &[404],
        ));
    }
    calls.push((
        "mark_milestone",
        Role::Operator,
        pairs(&[
            ("release", "no-such-release"),
            ("milestone", "announce"),
            ("state", "done"),
        ]),
        &[404],
    ));
    calls.push((
        "tick_release_item",
        Role::Operator,
        pairs(&[
            ("release", "no-such-release"),
            ("item", "review.tests"),
            ("ticked", "true"),
        ]),
        &[404],
    ));
    calls.push((
        "acknowledge_approval",
        Role::Approver,
        pairs(&[("id", "no-such-approval"), ("password", "not-the-password")]),
        &[401],
    ));
    // The matrix stack has no env file, so no flag: refused once let in.
    calls.push((
        "set_flag",
        Role::Operator,
        pairs(&[
            ("stack", "matrix"),
            ("name", "FEATURE_X"),
            ("value", "true"),
        ]),
        &[422],
    ));
    // Notification channels: no such channel once let in; a bad address refused (422).
    for function in [
        "notification_channel",
        "send_test_notification",
        "remove_notification_channel",
    ] {
        calls.push((
            function,
            Role::Admin,
            pairs(&[("id", "no-such-channel")]),
            &[404],
        ));
    }
    calls.push((
        "set_notification_channel_enabled",
        Role::Admin,
        pairs(&[("id", "no-such-channel"), ("enabled", "false")]),
        &[404],
    ));
    calls.push((
        "add_notification_channel",
        Role::Admin,
        pairs(&[
            ("name", "matrix"),
            ("kind", "slack"),
            ("address", "not an address"),
            ("events[]", "run.failed"),
        ]),
        &[422],
    ));
    calls.push((
        "cancel_run",
        Role::Operator,
        pairs(&[("id", "no-such-run")]),
        &[404],
    ));
    calls.push(sign_out);
    calls
}

fn portal_compose() -> String {
    crate::helpers::fixture_dir()
        .join("docker-compose.yml")
        .display()
        .to_string()
}

fn portal_env() -> String {
    crate::helpers::fixture_dir()
        .join("portal.env")
        .display()
        .to_string()
}

/// Pages with the least role that may open them.
const PAGES: [(&str, Role); 11] = [
    ("/", Role::Viewer),
    ("/stacks", Role::Viewer),
    ("/stacks/matrix", Role::Viewer),
    ("/runs", Role::Viewer),
    ("/backups", Role::Viewer),
    ("/history", Role::Viewer),
    ("/health", Role::Viewer),
    ("/approvals", Role::Operator),
    ("/audit", Role::Approver),
    ("/notifications", Role::Admin),
    ("/admin", Role::Admin),
];

fn expected_status(caller: Option<Role>, needed: Role, allowed: u16, anonymous: u16) -> u16 {
    match caller {
        None => anonymous,
        Some(role) if role.allows(needed) => allowed,
        Some(_) => 403,
    }
}

#[tokio::test]
async fn every_server_function_and_page_obeys_the_role_matrix() {
    let store = TestStore::new(Backend::Sqlite).await;
    store.add_user("target", Role::Viewer).await;
    let mut passwords = Vec::new();
    for role in Role::ALL {
        passwords.push((role, store.add_user(role.as_str(), role).await));
    }
    let target_id = store.user_id("target").await;
    // A one-service stack, so that the allowed start_stack calls start something small.
    let matrix_project = format!("matrix{}", uuid::Uuid::new_v4().simple());
    let _cleanup = crate::helpers::ProjectCleanup(matrix_project.clone());
    let compose_dir = tempfile::tempdir().unwrap();
    let compose = compose_dir.path().join("docker-compose.yml");
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: slipway-portal-frontend:1.0.0\n",
    )
    .unwrap();
    {
        let opened = store.open().await;
        app::stacks::service::add(
            &opened,
            &app::audit::service::Actor::system(),
            "matrix",
            &compose,
            None,
            Some(&matrix_project),
        )
        .await
        .unwrap();
        opened.close().await;
    }
    let console = RunningConsole::start(&store).await;

    // The matrix must cover every server function the console registers.
    let registered: BTreeSet<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.trim_start_matches("/api/").to_owned())
        .collect();
    let mut covered: BTreeSet<String> = server_functions("", "")
        .into_iter()
        .map(|(name, ..)| name.to_owned())
        .collect();
    covered.insert("sign_in".into());
    // The setup link's door: refused here for everyone (admins exist, no link was made);
    // `the_setup_link_creates_the_first_admin_once` checks it.
    covered.insert("create_first_admin".into());
    assert_eq!(
        registered, covered,
        "a server function is missing from the matrix"
    );

    let mut checked = 0;
    for caller in CALLERS {
        let http = match caller {
            None => client(),
            Some(role) => {
                let password = &passwords.iter().find(|(r, _)| *r == role).unwrap().1;
                signed_in(&console, role.as_str(), password).await
            }
        };
        let caller_name = caller.map_or("anonymous", Role::as_str);
        for (path, needed) in PAGES {
            let status = http
                .get(console.url(path))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let expected = expected_status(caller, needed, 200, 303);
            assert_eq!(status, expected, "{caller_name} GET {path}");
            checked += 1;
        }
        for (function, needed, args, let_in) in server_functions(&target_id, caller_name) {
            let args: Vec<(&str, &str)> =
                args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let response = call(&http, &console, function, &args).await;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            match caller {
                Some(role) if role.allows(needed) => assert!(
                    let_in.contains(&status),
                    "{caller_name} → {function}: {status} {body}"
                ),
                _ => assert_eq!(
                    status,
                    expected_status(caller, needed, 0, 401),
                    "{caller_name} → {function}: {body}"
                ),
            }
            checked += 1;
        }
    }
    println!("role matrix: {checked} checks");
}

#[tokio::test]
async fn every_sign_in_failure_gets_the_same_answer() {
    let store = TestStore::new(Backend::Sqlite).await;
    let alice = store.add_user("alice", Role::Operator).await;
    let dora = store.add_user("dora", Role::Viewer).await;
    let locked = store.add_user("lena", Role::Viewer).await;
    {
        let opened = store.open().await;
        let dora_id = app::auth::users::find_by_name(&opened, "dora")
            .await
            .unwrap()
            .unwrap()
            .id;
        app::auth::service::set_disabled(
            &opened,
            &app::audit::service::Actor::system(),
            &dora_id,
            true,
        )
        .await
        .unwrap();
        opened.close().await;
    }
    let console = RunningConsole::start(&store).await;
    for _ in 0..5 {
        sign_in(&client(), &console, "lena", "not-lenas-password").await;
    }

    let mut answers = Vec::new();
    for (name, password) in [
        ("nobody", "whatever-password"),
        ("alice", "wrong-password-here"),
        ("dora", dora.as_str()),
        ("lena", locked.as_str()),
        ("Robert'); --", "x"),
    ] {
        let response = sign_in(&client(), &console, name, password).await;
        let status = response.status().as_u16();
        let cookie = response.headers().get("set-cookie").is_some();
        answers.push((name, status, cookie, response.text().await.unwrap()));
    }
    let (_, status, cookie, body) = answers[0].clone();
    assert_eq!(status, 401);
    assert!(!cookie, "a failed sign-in sets no cookie");
    for (name, other_status, other_cookie, other_body) in &answers {
        assert_eq!(
            (*other_status, *other_cookie, other_body),
            (status, cookie, &body),
            "{name}"
        );
    }
    assert_eq!(
        sign_in(&client(), &console, "alice", &alice).await.status(),
        200
    );
}

#[tokio::test]
async fn five_failures_lock_the_account_for_longer_each_time() {
    let store = TestStore::new(Backend::Postgres).await;
    let password = store.add_user("mallory", Role::Operator).await;
    let other = store.add_user("olga", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;

    for _ in 0..5 {
        assert_eq!(
            sign_in(&client(), &console, "mallory", "guess-guess-guess")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        sign_in(&client(), &console, "mallory", &password)
            .await
            .status(),
        401,
        "the right password does not open a locked account"
    );
    assert_eq!(
        sign_in(&client(), &console, "olga", &other).await.status(),
        200,
        "other accounts from the same address still sign in"
    );

    let opened = store.open().await;
    // Let the first lock run out, as an hour passing would.
    for passing_hour in [
        "UPDATE lockouts SET locked_at = locked_at - 3600, locked_until = locked_until - 3600",
        "UPDATE sign_in_failures SET failed_at = failed_at - 3600",
    ] {
        sqlx::query(passing_hour)
            .execute(opened.pool())
            .await
            .unwrap();
    }
    assert_eq!(
        sign_in(&client(), &console, "mallory", &password)
            .await
            .status(),
        200
    );
    for _ in 0..5 {
        sign_in(&client(), &console, "mallory", "guess-again-guess").await;
    }
    let lockouts: Vec<(String, String)> = sqlx::query_as(
        "SELECT target, detail FROM audit_events WHERE action = 'auth.lockout' ORDER BY seq",
    )
    .fetch_all(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    let seconds: Vec<i64> = lockouts
        .iter()
        .map(|(_, detail)| {
            serde_json::from_str::<serde_json::Value>(detail).unwrap()["seconds"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        lockouts.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["account:mallory"; 2]
    );
    assert_eq!(seconds, [60, 120], "the second lock lasts twice as long");
}

#[tokio::test]
async fn the_session_id_changes_at_sign_in_and_when_the_role_changes() {
    let store = TestStore::new(Backend::Sqlite).await;
    let bob = store.add_user("bob", Role::Viewer).await;
    let root = store.add_user("root", Role::Admin).await;
    let console = RunningConsole::start(&store).await;

    let (browser, jar) = client_with_jar();
    // A session id planted before sign-in (fixation) is not kept.
    let planted = "AAAAAAAAAAAAAAAAAAAAAA";
    jar.add_cookie_str(
        &format!("slipway_session={planted}"),
        &console.base_url.parse().unwrap(),
    );
    assert_eq!(sign_in(&browser, &console, "bob", &bob).await.status(), 200);
    let first = session_cookie(&jar, &console).expect("a session cookie after sign-in");
    assert_ne!(first, planted);

    let admin = signed_in(&console, "root", &root).await;
    let bob_id = store.user_id("bob").await;
    let changed = call(
        &admin,
        &console,
        "change_role",
        &[("user_id", &bob_id), ("role", "operator")],
    )
    .await;
    assert_eq!(changed.status(), 200);

    let page = browser.get(console.url("/approvals")).send().await.unwrap();
    assert_eq!(page.status(), 200, "bob is an operator now");
    let second = session_cookie(&jar, &console).unwrap();
    assert_ne!(second, first, "a role change gives the session a new id");

    let replay = replaying(&console, &first);
    assert_eq!(
        call(&replay, &console, "console_status", &[])
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    let store = TestStore::new(Backend::Postgres).await;
    let password = store.add_user("sam", Role::Operator).await;
    let console = RunningConsole::start(&store).await;
    let (browser, jar) = client_with_jar();
    assert_eq!(
        sign_in(&browser, &console, "sam", &password).await.status(),
        200
    );
    let cookie = session_cookie(&jar, &console).unwrap();
    assert_eq!(
        call(&browser, &console, "sign_out", &[]).await.status(),
        200
    );

    let replay = replaying(&console, &cookie);
    assert_eq!(
        call(&replay, &console, "console_status", &[])
            .await
            .status(),
        401
    );
    let page = replay.get(console.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/sign-in?next=%2F");
}

#[tokio::test]
async fn a_cross_site_post_is_refused_and_a_form_post_from_the_console_is_accepted() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("fay", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    let form = [("name", "fay"), ("password", password.as_str())];

    let cross_site = client()
        .post(console.url("/api/sign_in"))
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let old_browser = client()
        .post(console.url("/api/sign_in"))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(old_browser.status(), 403);

    // What a browser without WASM sends for the sign-in form.
    let (browser, jar) = client_with_jar();
    let same_site = browser
        .post(console.url("/api/sign_in"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", &console.base_url)
        .header("referer", console.url("/sign-in?next=%2Fhistory"))
        .header("accept", "text/html")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(
        same_site.status().is_redirection(),
        "{}",
        same_site.status()
    );
    assert!(session_cookie(&jar, &console).is_some());
    let back = browser
        .get(console.url("/sign-in?next=%2Fhistory"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.headers()["location"], "/history");
}

#[tokio::test]
async fn user_add_reads_the_password_from_standard_input() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut args = vec!["user", "add", "Ada", "--role", "admin"];
    args.extend(&flags);

    let short = crate::helpers::run_with_stdin(&args, "too-short\n").await;
    assert_ne!(short.code, Some(0));
    assert!(
        short.stderr.contains("at least 12 characters"),
        "{}",
        short.stderr
    );

    let added = crate::helpers::run_with_stdin(&args, "a-long-enough-password\n").await;
    added.assert_success();
    let again = crate::helpers::run_with_stdin(&args, "a-long-enough-password\n").await;
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);

    let console = RunningConsole::start(&store).await;
    signed_in(&console, "ada", "a-long-enough-password").await;
    let bad_role = run_to_exit(&["user", "add", "eve", "--role", "root"], &[]).await;
    assert_eq!(bad_role.code, Some(2));
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_disabled() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("root", Role::Admin).await;
    let console = RunningConsole::start(&store).await;
    let admin = signed_in(&console, "root", &password).await;
    let id = store.user_id("root").await;
    for (function, args) in [
        (
            "change_role",
            [("user_id", id.as_str()), ("role", "viewer")],
        ),
        (
            "set_user_disabled",
            [("user_id", id.as_str()), ("disabled", "true")],
        ),
    ] {
        let response = call(&admin, &console, function, &args).await;
        assert_eq!(response.status(), 422, "{function}");
        assert!(response.text().await.unwrap().contains("last active admin"));
    }
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_with_the_host_prefix() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("hal", Role::Viewer).await;
    let console =
        RunningConsole::start_with(&store, &["--public-url", "https://slipway.example.com"]).await;
    let response = sign_in(&client(), &console, "hal", &password).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-slipway_session="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

#[tokio::test]
async fn expired_sessions_are_swept_from_the_store() {
    use tower_sessions::session_store::ExpiredDeletion;
    let store = TestStore::new(Backend::Postgres).await;
    let opened = store.open().await;
    for (key, expires_at) in [("old", 1_i64), ("live", i64::MAX / 2)] {
        sqlx::query("INSERT INTO sessions (id_hash, data, expires_at, created_at) VALUES ($1, '{}', $2, 'now')")
            .bind(key)
            .bind(expires_at)
            .execute(opened.pool())
            .await
            .unwrap();
    }
    app::auth::session_store::SqlSessionStore::new(opened.clone())
        .delete_expired()
        .await
        .unwrap();
    let left: Vec<(String,)> = sqlx::query_as("SELECT id_hash FROM sessions")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    assert_eq!(left, vec![("live".to_owned(),)]);
    opened.close().await;
}

#[tokio::test]
async fn twenty_failures_from_one_address_lock_the_address() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("quinn", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    // A guesser spreading attempts over many names never locks one account…
    for attempt in 0..20 {
        let name = format!("guess{attempt}");
        assert_eq!(
            sign_in(&client(), &console, &name, "password-guess")
                .await
                .status(),
            401
        );
    }
    // …but its address is locked now: even a right password from it fails, the same way.
    assert_eq!(
        sign_in(&client(), &console, "quinn", &password)
            .await
            .status(),
        401
    );
    let opened = store.open().await;
    let targets: Vec<(String,)> =
        sqlx::query_as("SELECT target FROM audit_events WHERE action = 'auth.lockout'")
            .fetch_all(opened.pool())
            .await
            .unwrap();
    opened.close().await;
    assert_eq!(targets, vec![("address:127.0.0.1".to_owned(),)]);
}

#[tokio::test]
async fn a_page_on_another_port_or_name_of_the_same_host_cannot_drive_the_console() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("root", Role::Admin).await;
    let console = RunningConsole::start(&store).await;
    let admin = signed_in(&console, "root", &password).await;
    let port = console.base_url.rsplit(':').next().unwrap().to_owned();
    let planted = [
        ("name", "mole"),
        ("role", "admin"),
        ("password", "a-long-enough-password"),
    ];
    // The sample portal's edge on 127.0.0.1:18080 is the same site as the console; so is
    // every sibling subdomain in production.
    let sibling_port = admin
        .post(console.url("/api/add_user"))
        .header("sec-fetch-site", "same-site")
        .header("origin", "http://127.0.0.1:18080")
        .form(&planted)
        .send()
        .await
        .unwrap();
    assert_eq!(sibling_port.status(), 403);
    // A browser without fetch metadata, on another name for this host: the Host header is
    // the requester's to choose and vouches for nothing.
    let other_name = admin
        .post(console.url("/api/add_user"))
        .header("origin", format!("http://localhost:{port}"))
        .header("host", format!("localhost:{port}"))
        .form(&planted)
        .send()
        .await
        .unwrap();
    assert_eq!(other_name.status(), 403);
    let opened = store.open().await;
    let mole = app::auth::users::find_by_name(&opened, "mole")
        .await
        .unwrap();
    opened.close().await;
    assert!(mole.is_none(), "no user was added");
    // The console's own pages still can.
    let own = admin
        .post(console.url("/api/add_user"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", &console.base_url)
        .form(&planted)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}

#[tokio::test]
async fn next_after_sign_in_stays_on_the_console_and_never_breaks_the_redirect() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("nina", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    let nina = signed_in(&console, "nina", &password).await;
    for (next, expected) in [
        ("%2F%0A", "/"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%0D%0ASet-Cookie:%20x=1", "/"),
        ("%2F%5Cevil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2Fnowhere", "/"),
        ("%2Fstacks%2Fportal", "/stacks/portal"),
    ] {
        let response = nina
            .get(console.url(&format!("/sign-in?next={next}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{next}");
        assert_eq!(response.headers()["location"], expected, "{next}");
    }
}

/// Sends `count` sign-ins at once and returns each answer's status and Retry-After.
async fn sign_ins_at_once(
    console: &RunningConsole,
    count: usize,
    name: &str,
    password: &str,
) -> Vec<(u16, Option<String>)> {
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..count {
        let url = console.url("/api/sign_in");
        let form = [("name", name.to_owned()), ("password", password.to_owned())];
        attempts.spawn(async move {
            let response = client()
                .post(url)
                .timeout(std::time::Duration::from_secs(60))
                .form(&form)
                .send()
                .await
                .expect("sign-in request");
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_owned());
            (response.status().as_u16(), retry_after)
        });
    }
    attempts.join_all().await
}

#[tokio::test]
async fn parallel_guesses_get_no_more_password_checks_than_the_limit() {
    for backend in crate::helpers::BACKENDS {
        let store = TestStore::new(backend).await;
        let password = store.add_user("pat", Role::Viewer).await;
        let console = RunningConsole::start(&store).await;
        let answers = sign_ins_at_once(&console, 12, "pat", "guess-guess-guess").await;
        assert!(
            answers.iter().all(|(status, _)| *status == 401),
            "{answers:?}"
        );
        let opened = store.open().await;
        let reasons: Vec<(String,)> = sqlx::query_as(
            "SELECT detail FROM audit_events WHERE action = 'auth.sign_in_failed' ORDER BY seq",
        )
        .fetch_all(opened.pool())
        .await
        .unwrap();
        opened.close().await;
        let checked = reasons
            .iter()
            .filter(|(detail,)| detail.contains("wrong password"))
            .count();
        assert_eq!(reasons.len(), 12, "{backend:?}");
        assert!(
            checked <= app::auth::service::ACCOUNT_FAILURE_LIMIT as usize,
            "{backend:?}: {checked} of 12 parallel guesses had their password checked"
        );
        assert_eq!(
            sign_in(&client(), &console, "pat", &password)
                .await
                .status(),
            401,
            "{backend:?}: the account is locked"
        );
    }
}

#[tokio::test]
async fn a_flood_of_sign_ins_waits_in_a_bounded_line_and_the_rest_is_told_to_retry() {
    let store = TestStore::new(Backend::Sqlite).await;
    store.add_user("flo", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    let answers = sign_ins_at_once(&console, 200, "flo", "guess-guess-guess").await;
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 503)
        .collect();
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 401 || *status == 503),
        "{answers:?}"
    );
    assert!(
        !refused.is_empty(),
        "200 sign-ins at once on {} cores all waited for argon2",
        std::thread::available_parallelism().unwrap()
    );
    assert!(
        refused
            .iter()
            .all(|(_, retry_after)| retry_after.as_deref() == Some("2")),
        "{refused:?}"
    );
    // The line empties again: a right answer gets through once the flood is over.
    let answered = sign_in(&client(), &console, "flo", "still-wrong-password").await;
    assert_eq!(answered.status(), 401);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled_and_audited() {
    let store = TestStore::new(Backend::Sqlite).await;
    let password = store.add_user("tess", Role::Viewer).await;
    let console = RunningConsole::start_with(&store, &["--trusted-proxy", "127.0.0.1"]).await;
    let from = |client_addr: &'static str| {
        let console = &console;
        move |name: &'static str, password: String| async move {
            client()
                .post(console.url("/api/sign_in"))
                .header("x-forwarded-for", format!("198.51.100.1, {client_addr}"))
                .form(&[("name", name), ("password", password.as_str())])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let guesser = from("203.0.113.7");
    for _ in 0..20 {
        assert_eq!(guesser("nobody", "guess-guess".into()).await, 401);
    }
    assert_eq!(
        guesser("tess", password.clone()).await,
        401,
        "the guesser is locked"
    );
    // Everyone else behind the same proxy still signs in.
    assert_eq!(from("203.0.113.8")("tess", password.clone()).await, 200);

    let opened = store.open().await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, target, client_addr FROM audit_events \
         WHERE action IN ('auth.lockout', 'auth.sign_in') ORDER BY seq",
    )
    .fetch_all(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    assert_eq!(
        rows,
        [
            (
                "auth.lockout".to_owned(),
                "address:203.0.113.7".to_owned(),
                "local".to_owned()
            ),
            (
                "auth.sign_in".to_owned(),
                "tess".to_owned(),
                "203.0.113.8".to_owned()
            ),
        ]
    );

    // A console that trusts no proxy believes no header.
    let untrusting = RunningConsole::start(&store).await;
    let response = client()
        .post(untrusting.url("/api/sign_in"))
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[("name", "tess"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let opened = store.open().await;
    let (client_addr,): (String,) = sqlx::query_as(
        "SELECT client_addr FROM audit_events WHERE action = 'auth.sign_in' ORDER BY seq DESC",
    )
    .fetch_one(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    assert_eq!(client_addr, "127.0.0.1");
}

#[tokio::test]
async fn a_password_typed_into_the_name_field_is_stored_nowhere() {
    let store = TestStore::new(Backend::Sqlite).await;
    store.add_user("una", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    let typed = "Una-Secret-Passphrase-42";
    assert_eq!(sign_in(&client(), &console, typed, "").await.status(), 401);
    assert_eq!(
        sign_in(&client(), &console, "una", "wrong-wrong-wrong")
            .await
            .status(),
        401
    );
    let opened = store.open().await;
    let audit: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, target, detail FROM audit_events ORDER BY seq")
            .fetch_all(opened.pool())
            .await
            .unwrap();
    let failures: Vec<(String,)> = sqlx::query_as("SELECT user_name FROM sign_in_failures")
        .fetch_all(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    let everything = format!("{audit:?} {failures:?}").to_lowercase();
    assert!(!everything.contains(&typed.to_lowercase()), "{everything}");
    assert!(
        audit.iter().any(
            |(actor, target, _)| actor == app::auth::service::UNKNOWN_ACCOUNT
                && target == app::auth::service::UNKNOWN_ACCOUNT
        ),
        "{audit:?}"
    );
    assert!(
        audit.iter().any(|(actor, _, _)| actor == "una"),
        "an existing account is named: {audit:?}"
    );
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once_and_only_while_none_exists() {
    let store = TestStore::new(Backend::Sqlite).await;
    // A viewer is no admin: the console still offers the link.
    store.add_user("vera", Role::Viewer).await;
    let console = RunningConsole::start(&store).await;
    let link = console
        .logged
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| {
            let start = line.find("/sign-in?setup=")?;
            Some(
                line[start + "/sign-in?setup=".len()..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .collect::<String>(),
            )
        })
        .expect("the console printed a setup link");
    assert_eq!(link.len(), 64);
    let page = console
        .page(&client(), &format!("/sign-in?setup={link}"))
        .await;
    assert!(page.contains("Create the first admin"), "{page}");

    let create = |token: String, name: &'static str| {
        let console_url = console.url("/api/create_first_admin");
        async move {
            client()
                .post(console_url)
                .form(&[
                    ("token", token.as_str()),
                    ("name", name),
                    ("password", "first-admin-password"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    // A wrong token is refused before any password work; so is a forged cross-site post.
    let wrong = create("0".repeat(64), "mallory").await;
    assert_eq!(wrong.status(), 403);
    assert!(wrong.text().await.unwrap().contains("SetupLinkInvalid"));
    let cross_site = client()
        .post(console.url("/api/create_first_admin"))
        .header("origin", "https://evil.example")
        .form(&[
            ("token", link.as_str()),
            ("name", "mallory"),
            ("password", "first-admin-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);

    let created = create(link.clone(), "ada").await;
    assert_eq!(created.status(), 200, "{}", created.text().await.unwrap());
    let admin = signed_in(&console, "ada", "first-admin-password").await;
    assert_eq!(console.page_status(&admin, "/admin").await, 200);
    // Used once: the same link makes no second admin.
    let again = create(link.clone(), "mallory").await;
    assert_eq!(again.status(), 403);
    let opened = store.open().await;
    let admins: Vec<(String, String)> =
        sqlx::query_as("SELECT name, role FROM users WHERE role = 'admin'")
            .fetch_all(opened.pool())
            .await
            .unwrap();
    assert_eq!(admins, [("ada".to_owned(), "admin".to_owned())]);
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, detail FROM audit_events WHERE action = 'user.added' AND target = 'ada'",
    )
    .fetch_all(opened.pool())
    .await
    .unwrap();
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].0, "setup-link");
    assert!(!audited[0].1.contains(&link), "the token is never audited");
    opened.close().await;
    console.terminate().await;

    // With an admin, a console makes no link at all.
    let console = RunningConsole::start(&store).await;
    assert!(!console
        .logged
        .lock()
        .unwrap()
        .iter()
        .any(|line| line.contains("setup=")));
    console.terminate().await;
}
