//! Releases on the real engine with the sample portal: a release ships only once every
//! required item of its checklist passes — from the console and the command line —, each
//! automatic item fails on its bad input with the reason shown, an edited env file opens the
//! items it passed again, and a shipped release writes its settings and follows its run.

use std::time::Duration;

use app::auth::Role;

use crate::helpers::{
    call, days_ahead, run_to_exit, run_with_stdin, signed_in, stack_add_args, typed, with_flags,
    Backend, RunningConsole, SamplePortal, TestStore,
};

async fn release(
    client: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
) -> serde_json::Value {
    let found = call(client, console, "release", &[("id", id)]).await;
    assert_eq!(found.status(), 200);
    found.json().await.unwrap()
}

fn item<'a>(release: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    release["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["key"] == key)
        .unwrap_or_else(|| panic!("no item {key} in {release}"))
}

async fn tick(
    client: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
    key: &str,
) -> reqwest::Response {
    call(
        client,
        console,
        "tick_release_item",
        &[
            ("release", id),
            ("item", key),
            ("ticked", "true"),
            ("note", "done"),
        ],
    )
    .await
}

#[tokio::test]
async fn a_release_ships_only_once_its_gate_is_open_and_follows_its_run() {
    let portal = SamplePortal::add("sliprelease").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let console = RunningConsole::start(&portal.store).await;
    let viewer_password = portal.store.add_user("vera", Role::Viewer).await;
    let viewer = signed_in(&console, "vera", &viewer_password).await;
    let operator_password = portal.store.add_user("otto", Role::Operator).await;
    let operator = signed_in(&console, "otto", &operator_password).await;
    let approver_password = portal.store.add_user("tess", Role::Approver).await;
    let approver = signed_in(&console, "tess", &approver_password).await;

    let planned = days_ahead(7);
    let planned_at = typed(planned);
    let plan = [
        ("stack", "portal"),
        ("version", "1.1.0"),
        ("sets", "PORTAL_VERSION=1.1.0"),
        ("planned_at", planned_at.as_str()),
        ("operation", "migrate"),
    ];
    assert_eq!(
        call(&viewer, &console, "create_release", &plan)
            .await
            .status(),
        403
    );
    for (field, bad, why) in [
        ("sets", "JWT_SECRET=x", "holds a secret"),
        ("sets", "PORTAL_VERSION=1.1.0; rm", "a value is 1 to 200"),
        (
            "sets",
            "COMPOSE_PROJECT_NAME=other",
            "steers Compose or Docker",
        ),
        (
            "sets",
            "NOT_READ_ANYWHERE=1",
            "reads no variable NOT_READ_ANYWHERE",
        ),
        (
            "sets",
            "CORS_ORIGIN=https://user:pw@example.com",
            "a URL with credentials",
        ),
        ("planned_at", "next tuesday", "is not a time"),
    ] {
        let mut asked = plan.to_vec();
        asked.retain(|(name, _)| *name != field);
        asked.push((field, bad));
        let refused = call(&operator, &console, "create_release", &asked).await;
        assert_eq!(refused.status(), 422, "{field}={bad}");
        assert!(refused.text().await.unwrap().contains(why), "{field}={bad}");
    }
    let created = call(&operator, &console, "create_release", &plan).await;
    assert_eq!(created.status(), 200);
    let id: String = created.json().await.unwrap();
    // The backup made for this release (the timeline's "create a backup").
    run_to_exit(&with_flags(&["backup", "portal"], &portal.flags), &[])
        .await
        .assert_success();
    let listed = run_to_exit(
        &with_flags(&["backups", "portal", "--json"], &portal.flags),
        &[],
    )
    .await;
    let backups: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let backup = backups[0]["id"].as_str().unwrap().to_owned();
    run_to_exit(
        &with_flags(&["verify", "portal", &backup], &portal.flags),
        &[],
    )
    .await
    .assert_success();

    // 1.1.0 brings a migration: a release that ships it with an update is held back.
    let mut as_update = plan.to_vec();
    as_update.retain(|(name, _)| *name != "operation");
    as_update.push(("operation", "update"));
    let by_update: String = call(&operator, &console, "create_release", &as_update)
        .await
        .json()
        .await
        .unwrap();
    let checked = call(&operator, &console, "check_release", &[("id", &by_update)]).await;
    assert_eq!(checked.status(), 200);
    let pending = release(&operator, &console, &by_update).await;
    let pending = item(&pending, "migrations.pending");
    assert_eq!(pending["state"], "fail", "{pending}");
    let said = pending["evidence"].as_str().unwrap();
    assert!(
        said.contains("backend 20240301_invoice_due_dates")
            && said.contains("plan the release with migrate"),
        "{said}"
    );

    let shown = release(&viewer, &console, &id).await;
    assert_eq!(shown["state"], "planned");
    assert_eq!(shown["planned_at"], app::store::utc_text(planned));
    assert_eq!(shown["can_ship"], false, "a viewer sees no button");
    let backend = shown["plan"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["service"] == "backend")
        .unwrap();
    assert!(
        backend["current"]
            .as_str()
            .unwrap()
            .contains("slipway-portal-backend:1.0.0")
            && backend["target"]
                .as_str()
                .unwrap()
                .contains("slipway-portal-backend:1.1.0")
            && backend["present"] == true,
        "{backend}"
    );

    // The portal is served at the address its CORS_ORIGIN names.
    run_to_exit(
        &with_flags(
            &[
                "stack",
                "releases",
                "portal",
                "--public-url",
                "http://127.0.0.1:18080",
            ],
            &portal.flags,
        ),
        &[],
    )
    .await
    .assert_success();

    // Closed: nothing ticked, nothing checked. Refused from the console and the shell.
    let refused = call(&operator, &console, "ship_release", &[("id", &id)]).await;
    assert_eq!(refused.status(), 409);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Every change was reviewed and approved"),);
    let shell = run_to_exit(&with_flags(&["release", "ship", &id], &portal.flags), &[]).await;
    assert_eq!(shell.code, Some(1));
    assert!(
        shell.stderr.contains("The gate is closed"),
        "{}",
        shell.stderr
    );
    assert_eq!(portal.health().await["version"], "1.0.0");

    // Items are ticked by their role; the review by an approver.
    let by_operator = tick(&operator, &console, &id, "review.approved").await;
    assert_eq!(by_operator.status(), 422);
    assert!(by_operator.text().await.unwrap().contains("approver"));
    assert_eq!(
        tick(&approver, &console, &id, "review.approved")
            .await
            .status(),
        200
    );
    for key in ["review.tests", "migrations.reviewed", "dependencies.audit"] {
        assert_eq!(
            tick(&operator, &console, &id, key).await.status(),
            200,
            "{key}"
        );
    }
    // The last one from the command line, as a person with their password.
    let ticked = run_with_stdin(
        &with_flags(
            &["release", "tick", &id, "communication.team", "--as", "otto"],
            &portal.flags,
        ),
        &format!("{operator_password}\n"),
    )
    .await;
    ticked.assert_success();
    assert_eq!(
        call(&operator, &console, "check_release", &[("id", &id)])
            .await
            .status(),
        200
    );
    let checked = release(&operator, &console, &id).await;
    for key in [
        "env.required",
        "env.secrets",
        "env.urls",
        "env.cors",
        "migrations.pending",
        "migrations.backup",
        "dependencies.images",
        "dependencies.checks",
        "platform.engine",
    ] {
        assert_eq!(
            item(&checked, key)["state"],
            "pass",
            "{key}: {}",
            item(&checked, key)
        );
    }
    assert!(item(&checked, "env.urls")["evidence"]
        .as_str()
        .unwrap()
        .contains("backend DATABASE_URL → database"));
    assert!(
        !checked.to_string().contains("portal-sample-password"),
        "no secret in the evidence"
    );
    assert_eq!(checked["state"], "ready");
    assert!(item(&checked, "migrations.pending")["evidence"]
        .as_str()
        .unwrap()
        .contains("pending: backend 20240301_invoice_due_dates"));
    assert!(item(&checked, "dependencies.checks")["evidence"]
        .as_str()
        .unwrap()
        .contains("audit: 0 critical vulnerabilities"));

    // An edited env file opens the items that passed on it again.
    let env = std::fs::read_to_string(portal.env_file()).unwrap();
    std::fs::write(portal.env_file(), format!("{env}# touched\n")).unwrap();
    let reopened = release(&operator, &console, &id).await;
    assert_eq!(item(&reopened, "env.secrets")["state"], "open");
    assert_eq!(reopened["state"], "planned");

    // A freeze now holds every change back; only an admin ships through it, saying why.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let freeze = format!("{today} to {today} end-of-year freeze");
    run_to_exit(
        &with_flags(
            &["stack", "releases", "portal", "--freezes", &freeze],
            &portal.flags,
        ),
        &[],
    )
    .await
    .assert_success();
    let frozen = call(&operator, &console, "ship_release", &[("id", &id)]).await;
    assert_eq!(frozen.status(), 422);
    assert!(frozen.text().await.unwrap().contains("end-of-year freeze"));
    // Saying why it cannot wait asks for an approval; the run starts once another person
    // approves it.
    let asked = call(
        &operator,
        &console,
        "ship_release",
        &[("id", &id), ("override_reason", "the fix cannot wait")],
    )
    .await;
    assert_eq!(asked.status(), 200);
    let answer: serde_json::Value = asked.json().await.unwrap();
    let approval = answer["Approval"].as_str().expect("an approval").to_owned();
    assert_eq!(release(&viewer, &console, &id).await["state"], "ready");
    let shown = call(&approver, &console, "approval", &[("id", &approval)])
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(
        shown["plan"]["warnings"]
            .to_string()
            .contains("end-of-year freeze")
            && shown["plan"]["facts"]
                .to_string()
                .contains("PORTAL_VERSION=1.1.0"),
        "{shown}"
    );
    assert_eq!(
        crate::helpers::decide(
            &operator,
            &console,
            &approval,
            "approve",
            &operator_password
        )
        .await
        .status(),
        403,
        "the requester never approves"
    );
    let decided = crate::helpers::decide(
        &approver,
        &console,
        &approval,
        "approve",
        &approver_password,
    )
    .await;
    assert_eq!(decided.json::<String>().await.unwrap(), "executed");
    let run = call(&approver, &console, "approval", &[("id", &approval)])
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The run checks nothing again: it writes the setting and runs the migrate.
    let mut state = String::new();
    for _ in 0..240 {
        state = release(&viewer, &console, &id).await["state"]
            .as_str()
            .unwrap()
            .to_owned();
        if state != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(state, "done");
    let done = release(&viewer, &console, &id).await;
    assert_eq!(
        item(&done, "env.secrets")["state"],
        "pass",
        "a shipped release keeps the checklist it shipped on"
    );
    assert_eq!(done["run_id"], run.as_str());
    assert_eq!(portal.health().await["version"], "1.1.0");
    assert_eq!(
        portal.sql(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'invoices' AND column_name = 'due_on'"
        ),
        "1",
        "the migrate run applied 1.1.0's migration"
    );
    assert!(std::fs::read_to_string(portal.env_file())
        .unwrap()
        .contains("PORTAL_VERSION=1.1.0\n"));
    let again = call(&operator, &console, "ship_release", &[("id", &id)]).await;
    assert_eq!(again.status(), 422);

    // The timeline ticked itself from evidence; the rest is marked by its owners.
    let milestone = |release: &serde_json::Value, key: &str| {
        release["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("no milestone {key}"))
            .clone()
    };
    for key in ["checklist", "backup", "deploy", "verify-now"] {
        let ticked = milestone(&done, key);
        assert_eq!(ticked["state"], "done", "{key}: {ticked}");
        assert_eq!(ticked["by"], "slipway", "{key}");
    }
    assert!(milestone(&done, "backup")["evidence"]
        .as_str()
        .unwrap()
        .contains(&backup));
    assert_eq!(
        milestone(&done, "announce")["state"],
        "due",
        "T-24h is still ahead"
    );
    let mark =
        |client: &reqwest::Client, key: &'static str, state: &'static str, reason: &'static str| {
            let (client, id) = (client.clone(), id.clone());
            let console = &console;
            async move {
                call(
                    &client,
                    console,
                    "mark_milestone",
                    &[
                        ("release", id.as_str()),
                        ("milestone", key),
                        ("state", state),
                        ("reason", reason),
                    ],
                )
                .await
                .status()
            }
        };
    assert_eq!(
        mark(&operator, "announce", "done", "").await,
        422,
        "the tech lead announces"
    );
    assert_eq!(mark(&approver, "announce", "done", "").await, 200);
    assert_eq!(
        mark(&operator, "deploy", "done", "").await,
        422,
        "evidence ticks it"
    );
    assert_eq!(
        mark(&operator, "verify-flows", "skipped", "").await,
        422,
        "a skip says why"
    );
    assert_eq!(
        mark(&operator, "verify-flows", "skipped", "no QA today").await,
        200
    );
    let marked = release(&viewer, &console, &id).await;
    assert_eq!(milestone(&marked, "announce")["by"], "tess");
    assert_eq!(milestone(&marked, "verify-flows")["state"], "skipped");
    let page = console.page(&viewer, &format!("/releases/{id}")).await;
    assert!(
        page.contains("data-testid=\"timeline-chart\"")
            && page.contains("data-testid=\"timeline-now\""),
        "the chart is drawn on the server"
    );
    assert!(
        !page.contains("data-testid=\"ship-release\""),
        "a viewer has no button"
    );
    let opened = portal.store.open().await;
    let actions: Vec<(String,)> = sqlx::query_as(
        "SELECT action FROM audit_events WHERE action LIKE 'release.%' ORDER BY seq",
    )
    .fetch_all(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    let actions: Vec<String> = actions.into_iter().map(|(a,)| a).collect();
    for action in [
        "release.planned",
        "release.item_ticked",
        "release.shipped",
        "release.applied",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    console.terminate().await;
}

#[tokio::test]
async fn each_automatic_item_fails_on_its_bad_input_with_the_reason() {
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    let (project, _cleanup) = crate::helpers::throwaway_project("slipchecks");
    let dir = tempfile::tempdir().unwrap();
    let compose = dir.path().join("docker-compose.yml");
    std::fs::write(
        &compose,
        "services:\n  db:\n    image: slipway-portal-postgres:15\n    x-slipway: { role: data }\n  web:\n    image: slipway-absent:9.9.9\n    environment:\n      NEEDED: ${REQUIRED_X:?set REQUIRED_X}\n      DATABASE_URL: postgres://u:p@elsewhere:5432/app\n      JWT: ${JWT_SECRET}\n      CORS_ORIGIN: https://other.example.com\n  checker:\n    image: slipway-portal-backend:1.0.0\n    environment: { PORTAL_AUDIT_FINDS: \"2\" }\n    x-slipway: { release_check: [audit] }\n",
    )
    .unwrap();
    let env = dir.path().join("app.env");
    std::fs::write(&env, "REQUIRED_X=1\nJWT_SECRET=short10chr\n").unwrap();
    let (compose, env_path) = (compose.display().to_string(), env.display().to_string());
    run_to_exit(
        &stack_add_args(
            &flags,
            "checks",
            &compose,
            &["--env-file", &env_path, "--project", &project],
        ),
        &[],
    )
    .await
    .assert_success();
    std::fs::write(&env, "JWT_SECRET=short10chr\n").unwrap();
    run_to_exit(
        &with_flags(
            &[
                "stack",
                "releases",
                "checks",
                "--public-url",
                "https://portal.example.com",
            ],
            &flags,
        ),
        &[],
    )
    .await
    .assert_success();
    let created = |sets: Vec<&'static str>| {
        let flags = flags.clone();
        async move {
            let mut args = vec!["release", "create", "checks", "--version", "2.0"];
            for set in sets {
                args.extend(["--set", set]);
            }
            let args = with_flags(&args, &flags);
            let said = run_to_exit(&args, &[]).await;
            said.assert_success();
            said.stdout.split_whitespace().nth(1).unwrap().to_owned()
        }
    };
    let show = |id: String| {
        let flags = flags.clone();
        async move {
            let said = run_to_exit(
                &with_flags(&["release", "show", &id, "--json"], &flags),
                &[],
            )
            .await;
            said.assert_success();
            serde_json::from_str::<serde_json::Value>(&said.stdout).unwrap()
        }
    };
    let missing = show(created(vec![]).await).await;
    let required = item(&missing, "env.required");
    assert_eq!(required["state"], "fail");
    assert!(
        required["evidence"]
            .as_str()
            .unwrap()
            .contains("REQUIRED_X"),
        "{required}"
    );

    let shown = show(created(vec!["REQUIRED_X=1"]).await).await;
    assert_eq!(item(&shown, "env.required")["state"], "pass");
    let expect = |key: &str, reason: &str| {
        let found = item(&shown, key);
        assert_eq!(found["state"], "fail", "{key}: {found}");
        assert!(
            found["evidence"].as_str().unwrap().contains(reason),
            "{key}: {found}"
        );
    };
    expect(
        "env.secrets",
        "JWT_SECRET has 10 characters; it needs at least 32",
    );
    expect("env.urls", "points at \"elsewhere\"");
    expect(
        "env.cors",
        "web's CORS_ORIGIN is https://other.example.com, not the stack's public address https://portal.example.com",
    );
    expect(
        "dependencies.images",
        "slipway-absent:9.9.9 is not on the engine",
    );
    assert!(item(&shown, "dependencies.checks")["evidence"]
        .as_str()
        .unwrap()
        .contains("2 critical vulnerabilities"));
    expect("dependencies.checks", "checker: audit exited with 1: ");
    assert_eq!(
        item(&shown, "migrations.backup")["state"],
        "pass",
        "no database is backed up"
    );
    assert!(
        !shown.to_string().contains("short10chr"),
        "the secret never shows"
    );
    let announce = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "announce")
        .unwrap();
    assert_eq!(announce["state"], "overdue", "T-0 is now: T-24h has passed");
    let closed = run_to_exit(
        &with_flags(&["release", "ship", shown["id"].as_str().unwrap()], &flags),
        &[],
    )
    .await;
    assert_eq!(closed.code, Some(1));
    assert!(
        closed.stderr.contains("Secrets are long enough"),
        "{}",
        closed.stderr
    );
}

#[tokio::test]
async fn a_stack_that_changes_only_through_releases_and_in_its_window_refuses_other_runs() {
    let portal = SamplePortal::add("sliponly").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let policy = |args: &[&str]| {
        let mut all = vec!["stack", "releases", "portal"];
        all.extend_from_slice(args);
        let flags = portal.flags.clone();
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            run_to_exit(&with_flags(&args, &flags), &[]).await
        }
    };
    let set = policy(&["--only", "true"]).await;
    set.assert_success();
    assert!(
        set.stdout.contains("only through releases"),
        "{}",
        set.stdout
    );
    let direct = portal.run("update", "1.0.0").await;
    assert_eq!(direct.code, Some(1));
    assert!(
        direct.stderr.contains("changes only through releases"),
        "{}",
        direct.stderr
    );
    // Start, stop and backups stay possible.
    portal.run("stop", "1.0.0").await.assert_success();
    portal.run("start", "1.0.0").await.assert_success();

    // A window that excludes today refuses a change; a bad window is refused by name.
    let weekday = chrono::Utc::now().format("%a").to_string().to_lowercase();
    let other_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .filter(|day| *day != weekday)
        .collect::<Vec<_>>()
        .join(",");
    policy(&["--only", "false", "--days", &other_days])
        .await
        .assert_success();
    let outside = portal.run("update", "1.0.0").await;
    assert_eq!(outside.code, Some(1));
    assert!(
        outside.stderr.contains("outside the deploy window"),
        "{}",
        outside.stderr
    );
    let bad = policy(&["--time-zone", "Mars/Olympus"]).await;
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("is not a time zone"), "{}", bad.stderr);

    // A release planned in a freeze is flagged.
    let (planned, freeze) = (days_ahead(24), days_ahead(20).date_naive());
    let freeze = format!(
        "{freeze} to {} holidays",
        freeze + chrono::Duration::days(13)
    );
    policy(&["--days", "", "--freezes", &freeze])
        .await
        .assert_success();
    portal.run("update", "1.0.0").await.assert_success();
    let created = run_to_exit(
        &with_flags(
            &[
                "release",
                "create",
                "portal",
                "--version",
                "1.1.0",
                "--at",
                &typed(planned),
            ],
            &portal.flags,
        ),
        &[],
    )
    .await;
    created.assert_success();
    let id = created.stdout.split_whitespace().nth(1).unwrap().to_owned();
    let opened = portal.store.open().await;
    let release = app::releases::service::find(&opened, &id).await.unwrap();
    opened.close().await;
    assert!(
        release
            .window_note
            .contains(&format!("in the freeze {freeze}")),
        "{}",
        release.window_note
    );

    // The stack's own checklist and timeline, from files; a release planned later copies
    // them, one planned before keeps the procedure's.
    let dir = tempfile::tempdir().unwrap();
    let (checklist, timeline, broken) = (
        dir.path().join("checklist.txt"),
        dir.path().join("timeline.txt"),
        dir.path().join("broken.txt"),
    );
    std::fs::write(
        &checklist,
        "qa.signed | QA | QA signed the release off | manual approver | required\n\
         env.required | Config | Every variable is set | automatic | required\n",
    )
    .unwrap();
    std::fs::write(&timeline, "deploy | T-0 | Ship it | evidence | \n").unwrap();
    std::fs::write(
        &broken,
        "qa | QA | One | manual operator | required\nqa | QA | Two | manual operator | optional\n",
    )
    .unwrap();
    let (checklist, timeline, broken) = (
        checklist.display().to_string(),
        timeline.display().to_string(),
        broken.display().to_string(),
    );
    let refused = run_to_exit(
        &with_flags(
            &["stack", "templates", "portal", "--checklist", &broken],
            &portal.flags,
        ),
        &[],
    )
    .await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("the key qa comes twice"),
        "{}",
        refused.stderr
    );
    run_to_exit(
        &with_flags(
            &[
                "stack",
                "templates",
                "portal",
                "--checklist",
                &checklist,
                "--timeline",
                &timeline,
            ],
            &portal.flags,
        ),
        &[],
    )
    .await
    .assert_success();
    let later = run_to_exit(
        &with_flags(
            &["release", "create", "portal", "--version", "1.2.0"],
            &portal.flags,
        ),
        &[],
    )
    .await;
    later.assert_success();
    let later_id = later.stdout.split_whitespace().nth(1).unwrap().to_owned();
    let opened = portal.store.open().await;
    let (later, earlier) = (
        app::releases::service::find(&opened, &later_id)
            .await
            .unwrap(),
        app::releases::service::find(&opened, &id).await.unwrap(),
    );
    opened.close().await;
    let keys: Vec<&str> = later.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["qa.signed", "env.required"]);
    assert_eq!(later.timeline.len(), 1);
    assert!(earlier.items.len() > 10, "planned before: the procedure's");
}

#[tokio::test]
async fn the_calendar_feed_parses_and_answers_only_a_live_token() {
    use icalendar::Component;
    let portal = SamplePortal::add("slipcalendar").await;
    let planned = days_ahead(7);
    let created = run_to_exit(
        &with_flags(
            &[
                "release",
                "create",
                "portal",
                "--version",
                "1.1.0",
                "--at",
                &typed(planned),
            ],
            &portal.flags,
        ),
        &[],
    )
    .await;
    created.assert_success();
    let console = RunningConsole::start(&portal.store).await;
    let viewer_password = portal.store.add_user("vera", Role::Viewer).await;
    let viewer = signed_in(&console, "vera", &viewer_password).await;
    let admin_password = portal.store.add_user("ada", Role::Admin).await;
    let admin = signed_in(&console, "ada", &admin_password).await;
    let token: String = call(&viewer, &console, "make_calendar_link", &[])
        .await
        .json()
        .await
        .unwrap();
    let feed = |path: String| {
        let url = console.url(&path);
        async move {
            let response = reqwest::get(url).await.unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, response.text().await.unwrap())
        }
    };
    let (status, kind, body) = feed(format!("/calendar/portal.ics?token={token}")).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/calendar"), "{kind}");
    let calendar: icalendar::Calendar = body.parse().expect("an iCalendar feed that parses");
    let events: Vec<&icalendar::Event> = calendar.events().collect();
    assert_eq!(events.len(), 12, "the release and its eleven milestones");
    let window = events
        .iter()
        .find(|e| {
            e.get_summary()
                .unwrap_or_default()
                .starts_with("Release portal 1.1.0")
        })
        .expect("the release's window");
    assert_eq!(
        window.get_start(),
        Some(icalendar::DatePerhapsTime::DateTime(
            icalendar::CalendarDateTime::Utc(planned)
        ))
    );
    assert!(events.iter().any(|e| e
        .get_summary()
        .unwrap_or_default()
        .starts_with("T-24h portal 1.1.0: Announce")));

    // Nothing for a wrong token, nor for another stack's name; a new link ends the old one.
    let (status, _, body) = feed("/calendar/portal.ics?token=guess".into()).await;
    assert_eq!(status, 401);
    assert!(!body.contains("1.1.0"));
    assert_eq!(
        feed(format!("/calendar/nope.ics?token={token}")).await.0,
        404
    );
    let newer: String = call(&viewer, &console, "make_calendar_link", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        feed(format!("/calendar/portal.ics?token={token}")).await.0,
        401
    );
    assert_eq!(
        feed(format!("/calendar/portal.ics?token={newer}")).await.0,
        200
    );
    // An admin revokes it.
    let revoked = call(
        &admin,
        &console,
        "revoke_calendar_link",
        &[("user", "vera")],
    )
    .await;
    assert!(revoked.json::<bool>().await.unwrap());
    assert_eq!(
        feed(format!("/calendar/portal.ics?token={newer}")).await.0,
        401
    );
    console.terminate().await;
}
