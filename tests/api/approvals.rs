//! Approvals on the real engine with the sample portal: a rollback requested by one person,
//! approved by another with their password, runs by itself; nobody approves their own request,
//! a changed env file voids an approval, an expired one never runs, and nothing gated starts
//! without one.

use app::auth::Role;

use crate::helpers::{
    call, decide, requested_approval, run_to_exit, run_with_stdin, signed_in, wait_for_approval,
    with_flags, RunningConsole, SamplePortal, SteadyLoad,
};

/// The portal deployed at 1.0.0 and updated to 1.1.0, with a console on its store.
async fn updated_portal(prefix: &str) -> (SamplePortal, RunningConsole) {
    let portal = SamplePortal::add(prefix).await;
    portal.run("deploy", "1.0.0").await.assert_success();
    portal.run("update", "1.1.0").await.assert_success();
    assert_eq!(portal.health().await["version"], "1.1.0");
    let console = RunningConsole::start(&portal.store).await;
    (portal, console)
}

/// Someone signed in with `role`: their client and password.
async fn person(
    portal: &SamplePortal,
    console: &RunningConsole,
    name: &str,
    role: Role,
) -> (reqwest::Client, String) {
    let password = portal.store.add_user(name, role).await;
    (signed_in(console, name, &password).await, password)
}

/// The run a rollback goes back to by default, as the stack page offers it.
async fn suggested_target(client: &reqwest::Client, console: &RunningConsole) -> String {
    let targets = call(client, console, "rollback_targets", &[("stack", "portal")]).await;
    assert_eq!(targets.status(), 200);
    let targets: Vec<serde_json::Value> = targets.json().await.unwrap();
    let suggested: Vec<&serde_json::Value> =
        targets.iter().filter(|t| t["suggested"] == true).collect();
    assert_eq!(suggested.len(), 1, "{targets:?}");
    assert_eq!(suggested[0]["operation"], "deploy", "{targets:?}");
    suggested[0]["run_id"].as_str().unwrap().to_owned()
}

async fn request_rollback(
    client: &reqwest::Client,
    console: &RunningConsole,
    target: &str,
) -> reqwest::Response {
    call(
        client,
        console,
        "request_approval",
        &[
            ("stack", "portal"),
            ("operation", "rollback"),
            ("target", target),
            ("reason", "1.1.0 breaks invoices"),
        ],
    )
    .await
}

async fn approval(
    client: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
) -> serde_json::Value {
    let found = call(client, console, "approval", &[("id", id)]).await;
    assert_eq!(found.status(), 200);
    found.json().await.unwrap()
}

async fn audit_actions(portal: &SamplePortal, prefix: &str) -> Vec<String> {
    let opened = portal.store.open().await;
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT action FROM audit_events WHERE action LIKE $1 ORDER BY seq")
            .bind(format!("{prefix}%"))
            .fetch_all(opened.pool())
            .await
            .unwrap();
    opened.close().await;
    rows.into_iter().map(|(action,)| action).collect()
}

#[tokio::test]
async fn an_approved_rollback_puts_the_previous_version_back_without_dropping_a_request() {
    let (portal, console) = updated_portal("sliprollback").await;
    let (viewer, _) = person(&portal, &console, "vera", Role::Viewer).await;
    let (operator, _) = person(&portal, &console, "otto", Role::Operator).await;
    let (approver, password) = person(&portal, &console, "tess", Role::Approver).await;
    let target = suggested_target(&operator, &console).await;

    assert_eq!(
        request_rollback(&viewer, &console, &target).await.status(),
        403
    );
    let requested = request_rollback(&operator, &console, &target).await;
    assert_eq!(requested.status(), 200);
    let id: String = requested.json().await.unwrap();

    // What will happen, exactly: the images per service and the steps.
    let shown = approval(&approver, &console, &id).await;
    assert_eq!(shown["status"], "waiting");
    assert_eq!(shown["can_decide"], true);
    let images = shown["plan"]["images"].as_array().unwrap();
    let backend = images.iter().find(|i| i["service"] == "backend").unwrap();
    assert!(
        backend["current"]
            .as_str()
            .unwrap()
            .contains("slipway-portal-backend:1.1.0")
            && backend["target"]
                .as_str()
                .unwrap()
                .contains("slipway-portal-backend:1.0.0"),
        "{backend}"
    );
    let steps = shown["plan"]["steps"].to_string();
    assert!(
        steps.contains("Update backend beside the running one"),
        "{steps}"
    );
    assert_eq!(shown["digest"].as_str().unwrap().len(), 64);

    // Nobody but an approver decides, and never with a wrong password.
    let by_operator = decide(&operator, &console, &id, "approve", "whatever").await;
    assert_eq!(by_operator.status(), 403);
    let wrong = decide(&approver, &console, &id, "approve", "not-the-password").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        approval(&approver, &console, &id).await["status"],
        "waiting"
    );
    assert!(
        audit_actions(&portal, "approval.password_failed")
            .await
            .len()
            == 1
    );

    let load = SteadyLoad::start(portal.url("/api/health"));
    let decided = decide(&approver, &console, &id, "approve", &password).await;
    assert_eq!(decided.status(), 200);
    assert_eq!(decided.json::<String>().await.unwrap(), "executed");
    let followed = wait_for_approval(&portal.flags, &id).await;
    let (failed, total) = load.stop().await;
    followed.assert_success();
    assert_eq!(
        failed, 0,
        "{failed} of {total} requests failed during the rollback"
    );
    assert!(total > 100, "the load ran ({total} requests)");
    assert_eq!(portal.health().await["version"], "1.0.0");

    // The run and the approval point at each other; the requester is on the run.
    let done = approval(&approver, &console, &id).await;
    assert_eq!(done["status"], "executed");
    let run_id = done["run_id"].as_str().unwrap();
    let run = call(&viewer, &console, "run", &[("id", run_id)]).await;
    let run: serde_json::Value = run.json().await.unwrap();
    assert_eq!(run["run"]["operation"], "rollback");
    assert_eq!(run["run"]["requested_by"], "otto");
    assert_eq!(run["run"]["options"]["approval"], id.as_str());
    assert_eq!(
        audit_actions(&portal, "approval.").await,
        [
            "approval.requested",
            "approval.password_failed",
            "approval.approved"
        ]
    );

    // The approval was used up by its run: it starts nothing again, and naming it in a
    // request to the console does not make a run approved.
    let opened = portal.store.open().await;
    let again = app::runs::lock::start(
        &opened,
        "portal",
        app::runs::RunRequest {
            operation: app::runs::Operation::Rollback,
            target: target.clone(),
            options: app::runs::RunOptions {
                approval: id.clone(),
                ..Default::default()
            },
        },
        &app::audit::service::Actor::system(),
        false,
    )
    .await;
    opened.close().await;
    assert!(
        matches!(&again, Err(app::runs::RunError::NeedsApproval(why)) if why.contains("was used already")),
        "{:?}",
        again.map(|_| ())
    );
    let forged = call(
        &operator,
        &console,
        "start_run",
        &[
            ("stack", "portal"),
            ("operation", "rollback"),
            ("target", &target),
            ("approval", &id),
        ],
    )
    .await;
    assert_eq!(forged.status(), 403);
    console.terminate().await;
}

#[tokio::test]
async fn the_requester_never_approves_and_a_changed_env_file_voids_the_approval() {
    let (portal, console) = updated_portal("sliprequester").await;
    let (tess, tess_password) = person(&portal, &console, "tess", Role::Approver).await;
    let (ada, ada_password) = person(&portal, &console, "ada", Role::Admin).await;
    let (bob, bob_password) = person(&portal, &console, "bob", Role::Approver).await;
    // This stack wants two approvals.
    let policy = call(
        &ada,
        &console,
        "set_approval_policy",
        &[
            ("stack", "portal"),
            ("required", "2"),
            ("expires_minutes", "60"),
        ],
    )
    .await;
    assert_eq!(policy.status(), 200);
    let target = suggested_target(&tess, &console).await;
    let requested = request_rollback(&tess, &console, &target).await;
    let id: String = requested.json().await.unwrap();
    assert_eq!(approval(&tess, &console, &id).await["can_decide"], false);
    let own = decide(&tess, &console, &id, "approve", &tess_password).await;
    assert_eq!(own.status(), 409);
    assert!(own
        .text()
        .await
        .unwrap()
        .contains("nobody approves their own request"));

    // One approval of two: it waits; the same person cannot count twice.
    let first = decide(&ada, &console, &id, "approve", &ada_password).await;
    assert_eq!(first.json::<String>().await.unwrap(), "waiting");
    let twice = decide(&ada, &console, &id, "approve", &ada_password).await;
    assert_eq!(twice.status(), 409);
    assert!(twice.text().await.unwrap().contains("already"));

    // The env file changes after the request: the approval no longer covers what would run.
    let env_file = portal.env_file();
    let mut env = std::fs::read_to_string(&env_file).unwrap();
    env.push_str("\n# edited after the request\n");
    std::fs::write(&env_file, env).unwrap();
    let decided = decide(&bob, &console, &id, "approve", &bob_password).await;
    assert_eq!(decided.status(), 200);
    assert_eq!(decided.json::<String>().await.unwrap(), "void");
    let void = approval(&bob, &console, &id).await;
    assert_eq!(void["status"], "void");
    assert!(
        void["status_note"]
            .as_str()
            .unwrap()
            .contains("the env file changed"),
        "{void}"
    );
    assert_eq!(void["run_id"], "");
    assert_eq!(portal.health().await["version"], "1.1.0", "nothing ran");
    console.terminate().await;
}

#[tokio::test]
async fn an_expired_request_never_runs_and_nothing_gated_starts_without_an_approval() {
    let (portal, console) = updated_portal("slipexpired").await;
    let (operator, operator_password) = person(&portal, &console, "otto", Role::Operator).await;
    let (approver, password) = person(&portal, &console, "tess", Role::Approver).await;

    // Neither the console nor the command line starts a rollback: they ask for one.
    let direct = call(
        &operator,
        &console,
        "start_run",
        &[
            ("stack", "portal"),
            ("operation", "rollback"),
            ("target", "x"),
        ],
    )
    .await;
    assert_eq!(direct.status(), 403);
    assert!(direct.text().await.unwrap().contains("needs an approval"));
    let mut rollback = vec![
        "rollback",
        "portal",
        "--reason",
        "from the shell",
        "--as",
        "otto",
    ];
    rollback.extend(portal.flags.iter().map(String::as_str));
    let wrong = run_with_stdin(&rollback, "not-the-password\n").await;
    assert_eq!(wrong.code, Some(1));
    assert!(
        wrong.stderr.contains("password is wrong"),
        "{}",
        wrong.stderr
    );
    let asked = run_with_stdin(&rollback, &format!("{operator_password}\n")).await;
    let id = requested_approval(&asked);
    assert!(asked.stdout.contains("/approvals/"), "{}", asked.stdout);
    let opened = portal.store.open().await;
    let rollbacks: (i64,) =
        sqlx::query_as("SELECT count(*) FROM runs WHERE operation = 'rollback'")
            .fetch_one(opened.pool())
            .await
            .unwrap();
    // Its time runs out.
    sqlx::query("UPDATE approvals SET expires_at = '2020-01-01T00:00:00.000Z' WHERE id = $1")
        .bind(&id)
        .execute(opened.pool())
        .await
        .unwrap();
    opened.close().await;
    assert_eq!(rollbacks.0, 0, "a request is not a run");

    let late = decide(&approver, &console, &id, "approve", &password).await;
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("expired"));
    let waited = wait_for_approval(&portal.flags, &id).await;
    assert_eq!(waited.code, Some(1));
    assert!(waited.stderr.contains("is expired"), "{}", waited.stderr);
    let mut list = vec!["approvals", "--json"];
    list.extend(portal.flags.iter().map(String::as_str));
    let listed = run_to_exit(&list, &[]).await;
    listed.assert_success();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["status"], "expired");
    assert!(audit_actions(&portal, "approval.expired").await.len() == 1);
    assert_eq!(portal.health().await["version"], "1.1.0");
    console.terminate().await;
}

#[tokio::test]
async fn a_rollback_with_down_migrations_removes_the_newer_schema_and_its_record() {
    let (portal, console) = updated_portal("slipdown").await;
    portal.run("migrate", "1.1.0").await.assert_success();
    let due_on = "SELECT count(*) FROM information_schema.columns \
                  WHERE table_name = 'invoices' AND column_name = 'due_on'";
    assert_eq!(portal.sql(due_on), "1");
    let (operator, _) = person(&portal, &console, "otto", Role::Operator).await;
    let (approver, password) = person(&portal, &console, "tess", Role::Approver).await;
    let target = suggested_target(&operator, &console).await;
    let requested = call(
        &operator,
        &console,
        "request_approval",
        &[
            ("stack", "portal"),
            ("operation", "rollback"),
            ("target", &target),
            ("undo_migrations", "true"),
            ("reason", "1.1.0's due dates are wrong"),
        ],
    )
    .await;
    assert_eq!(requested.status(), 200);
    let id: String = requested.json().await.unwrap();
    let shown = approval(&approver, &console, &id).await;
    let facts = shown["plan"]["facts"].to_string();
    assert!(facts.contains("20240301_invoice_due_dates"), "{facts}");

    let decided = decide(&approver, &console, &id, "approve", &password).await;
    assert_eq!(decided.json::<String>().await.unwrap(), "executed");
    let followed = wait_for_approval(&portal.flags, &id).await;
    followed.assert_success();
    assert!(
        followed
            .stdout
            .contains("undid 20240301_invoice_due_dates and removed its record"),
        "{}",
        followed.stdout
    );
    assert_eq!(portal.sql(due_on), "0", "the 1.1.0 column is gone");
    assert_eq!(
        portal.sql("SELECT count(*) FROM _portal_migrations WHERE migration_name = '20240301_invoice_due_dates'"),
        "0"
    );
    assert_eq!(portal.health().await["version"], "1.0.0");
    // Backed up first, so the rollback itself can be undone.
    let mut list = vec!["backups", "portal", "--json"];
    list.extend(portal.flags.iter().map(String::as_str));
    let listed = run_to_exit(&list, &[]).await;
    assert!(
        listed.stdout.contains("\"pre-rollback\""),
        "{}",
        listed.stdout
    );
    console.terminate().await;
}

#[tokio::test]
async fn a_stack_whose_policy_gates_changes_updates_only_once_approved() {
    let (portal, console) = updated_portal("slipgated").await;
    let (operator, _) = person(&portal, &console, "otto", Role::Operator).await;
    let (approver, password) = person(&portal, &console, "tess", Role::Approver).await;
    let mut gate = vec!["stack", "approvals", "portal", "--gate-changes", "true"];
    gate.extend(portal.flags.iter().map(String::as_str));
    let gated = run_to_exit(&gate, &[]).await;
    gated.assert_success();
    assert!(
        gated.stdout.contains("need an approval"),
        "{}",
        gated.stdout
    );

    let update = [("stack", "portal"), ("operation", "update")];
    let direct = call(&operator, &console, "start_run", &update).await;
    assert_eq!(direct.status(), 403);
    let mut from_shell = vec!["update", "portal"];
    from_shell.extend(portal.flags.iter().map(String::as_str));
    let refused = run_to_exit(&from_shell, &[("PORTAL_VERSION", "1.1.0")]).await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("needs an approval"),
        "{}",
        refused.stderr
    );

    let mut asked = update.to_vec();
    asked.push(("reason", "the weekly release"));
    let requested = call(&operator, &console, "request_approval", &asked).await;
    assert_eq!(requested.status(), 200);
    let id: String = requested.json().await.unwrap();
    let decided = decide(&approver, &console, &id, "approve", &password).await;
    assert_eq!(decided.json::<String>().await.unwrap(), "executed");
    wait_for_approval(&portal.flags, &id).await.assert_success();
    console.terminate().await;
}

/// An admin approving their own emergency request alone.
async fn break_glass(
    client: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
    password: &str,
    why: &str,
) -> reqwest::Response {
    let args = [
        ("id", id),
        ("decision", "approve"),
        ("break_glass", "true"),
        ("comment", why),
        ("password", password),
    ];
    call(client, console, "decide_approval", &args).await
}

/// The broken glass of the portal nobody has acknowledged yet.
async fn flagged(client: &reqwest::Client, console: &RunningConsole) -> Vec<serde_json::Value> {
    let listed = call(client, console, "broken_glass", &[("stack", "portal")]).await;
    assert_eq!(listed.status(), 200);
    listed.json().await.unwrap()
}

async fn acknowledge(
    client: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
    password: &str,
) -> reqwest::Response {
    let args = [("id", id), ("password", password)];
    call(client, console, "acknowledge_approval", &args).await
}

#[tokio::test]
async fn an_emergency_rollback_restores_the_newest_verified_backup_and_broken_glass_stays_flagged()
{
    let portal = SamplePortal::add("slipemergency").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    portal.sql("INSERT INTO customers (email) VALUES ('before@example.com')");
    run_to_exit(&with_flags(&["backup", "portal"], &portal.flags), &[])
        .await
        .assert_success();
    let list = with_flags(&["backups", "portal", "--json"], &portal.flags);
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&run_to_exit(&list, &[]).await.stdout).unwrap();
    let backup_id = listed[0]["id"].as_str().unwrap().to_owned();
    let verify = with_flags(&["verify", "portal", &backup_id], &portal.flags);
    run_to_exit(&verify, &[]).await.assert_success();
    portal.run("update", "1.1.0").await.assert_success();
    portal.run("migrate", "1.1.0").await.assert_success();
    portal.sql("INSERT INTO customers (email) VALUES ('after@example.com')");
    let console = RunningConsole::start(&portal.store).await;
    let (admin, admin_password) = person(&portal, &console, "ada", Role::Admin).await;
    let (approver, approver_password) = person(&portal, &console, "tess", Role::Approver).await;
    let (viewer, _) = person(&portal, &console, "vera", Role::Viewer).await;

    let requested = call(
        &admin,
        &console,
        "request_emergency",
        &[("stack", "portal"), ("reason", "1.1.0 corrupts invoices")],
    )
    .await;
    assert_eq!(requested.status(), 200);
    let id: String = requested.json().await.unwrap();
    let shown = approval(&admin, &console, &id).await;
    assert_eq!(shown["options"]["emergency"], true);
    assert_eq!(shown["options"]["backup"], backup_id.as_str());
    assert_eq!(shown["can_decide"], false, "never their own, normally");
    assert_eq!(shown["can_break_glass"], true);
    let facts = shown["plan"]["facts"].to_string();
    assert!(
        facts.contains(&backup_id) && facts.contains("rows written after"),
        "{facts}"
    );
    let steps = shown["plan"]["steps"].to_string();
    assert!(
        steps.contains("Restore the backup into the live database")
            && steps.contains("Back up database")
            && steps.contains("Notify"),
        "{steps}"
    );

    let long_reason = "invoices are being corrupted right now";
    // Only the requesting admin breaks the glass, with a reason and the right password.
    assert_eq!(
        break_glass(&approver, &console, &id, &approver_password, long_reason)
            .await
            .status(),
        409
    );
    let short = break_glass(&admin, &console, &id, &admin_password, "it is broken").await;
    assert_eq!(short.status(), 409);
    assert!(short
        .text()
        .await
        .unwrap()
        .contains("at least 20 characters"));
    assert_eq!(
        break_glass(&admin, &console, &id, "not-the-password", long_reason)
            .await
            .status(),
        401
    );
    let broken = break_glass(&admin, &console, &id, &admin_password, long_reason).await;
    assert_eq!(broken.status(), 200);
    assert_eq!(broken.json::<String>().await.unwrap(), "executed");
    let followed = wait_for_approval(&portal.flags, &id).await;
    followed.assert_success();
    assert!(
        followed
            .stdout
            .contains("EMERGENCY ROLLBACK of portal done"),
        "{}",
        followed.stdout
    );

    let emails = portal.sql("SELECT string_agg(email, ',' ORDER BY email) FROM customers");
    assert!(emails.contains("before@example.com"), "{emails}");
    assert!(!emails.contains("after@example.com"), "{emails}");
    let due_on = "SELECT count(*) FROM information_schema.columns \
                  WHERE table_name = 'invoices' AND column_name = 'due_on'";
    assert_eq!(portal.sql(due_on), "0", "the backup's schema is back");
    let health = portal.health().await;
    assert_eq!(
        (health["status"].as_str(), health["version"].as_str()),
        (Some("ok"), Some("1.0.0")),
        "{health}"
    );
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&run_to_exit(&list, &[]).await.stdout).unwrap();
    assert!(
        listed
            .iter()
            .any(|backup| backup["reason"] == "pre-rollback"),
        "what was there is kept: {listed:?}"
    );

    // Flagged for everyone until another approver acknowledges it.
    let seen = flagged(&viewer, &console).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["reason"], long_reason);
    assert_eq!(
        acknowledge(&admin, &console, &id, &admin_password)
            .await
            .status(),
        409
    );
    assert_eq!(
        acknowledge(&approver, &console, &id, &approver_password)
            .await
            .status(),
        200
    );
    assert!(flagged(&viewer, &console).await.is_empty());
    let shown = approval(&approver, &console, &id).await;
    assert_eq!(shown["acknowledged_by"], "tess");
    let audited = audit_actions(&portal, "").await;
    for action in [
        "approval.break_glass",
        "approval.acknowledged",
        "rollback.emergency_done",
    ] {
        assert!(audited.iter().any(|a| a == action), "{action}: {audited:?}");
    }
    console.terminate().await;
}
