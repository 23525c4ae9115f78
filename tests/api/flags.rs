//! Feature flags on the real engine with the sample portal: setting one replaces only the
//! services that read it, without a failed request; a bad request changes nothing; a change
//! that goes bad puts the env file and the containers back.

use std::time::Duration;

use app::auth::Role;

use crate::helpers::{
    call, docker, run_to_exit, signed_in, with_flags, RunningConsole, SamplePortal, SteadyLoad,
};

/// The id of the running container of each service of the portal.
fn containers(portal: &SamplePortal) -> std::collections::BTreeMap<String, String> {
    ["database", "cache", "backend", "frontend", "edge"]
        .into_iter()
        .map(|service| {
            let id = docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.compose.project={}", portal.project),
                "--filter",
                &format!("label=com.docker.compose.service={service}"),
            ]);
            assert_eq!(id.lines().count(), 1, "{service}: {id}");
            (service.to_owned(), id)
        })
        .collect()
}

/// Waits for run `id` to end; its detail.
async fn finished(
    client: &reqwest::Client,
    console: &RunningConsole,
    id: &str,
) -> serde_json::Value {
    for _ in 0..240 {
        let detail: serde_json::Value = call(client, console, "run", &[("id", id)])
            .await
            .json()
            .await
            .unwrap();
        if detail["run"]["status"] != "running" {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("run {id} did not end within two minutes");
}

async fn set_flag(
    client: &reqwest::Client,
    console: &RunningConsole,
    name: &str,
    value: &str,
) -> reqwest::Response {
    call(
        client,
        console,
        "set_flag",
        &[("stack", "portal"), ("name", name), ("value", value)],
    )
    .await
}

#[tokio::test]
async fn a_flag_replaces_only_the_services_that_read_it_and_keeps_serving() {
    let portal = SamplePortal::add("slipflag").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let console = RunningConsole::start(&portal.store).await;
    let viewer_password = portal.store.add_user("vera", Role::Viewer).await;
    let viewer = signed_in(&console, "vera", &viewer_password).await;
    let operator_password = portal.store.add_user("otto", Role::Operator).await;
    let operator = signed_in(&console, "otto", &operator_password).await;

    let listed: Vec<serde_json::Value> = call(&viewer, &console, "flags", &[("stack", "portal")])
        .await
        .json()
        .await
        .unwrap();
    let flag = |name: &str| {
        listed
            .iter()
            .find(|flag| flag["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {listed:?}"))
            .clone()
    };
    let checkout = flag("FEATURE_NEW_CHECKOUT");
    assert_eq!(checkout["value"], "false");
    assert_eq!(checkout["switch_to"], "true");
    assert_eq!(checkout["readers"], serde_json::json!(["backend"]));
    // Declared in x-slipway.flags, not in the env file.
    let declared = flag("FRONTEND_FAIL_AFTER");
    assert_eq!(declared["in_env_file"], false);
    assert_eq!(declared["readers"], serde_json::json!(["frontend"]));
    assert_eq!(listed.len(), 2, "no other variable is a flag: {listed:?}");

    // A viewer sets nothing; a bad request is refused before anything runs.
    assert_eq!(
        set_flag(&viewer, &console, "FEATURE_NEW_CHECKOUT", "true")
            .await
            .status(),
        403
    );
    for (name, value, why) in [
        ("FEATURE_NEW_CHECKOUT", "on\nX=1", "letters, digits"),
        (
            "FEATURE_NEW_CHECKOUT",
            "much-too-long",
            "1 to 11 characters",
        ),
        ("FEATURE_NEW_CHECKOUT", "false", "is false already"),
        ("PORTAL_VERSION", "1.1.0", "is not a flag"),
        ("JWT_SECRET", "x", "is not a flag"),
    ] {
        let refused = set_flag(&operator, &console, name, value).await;
        assert_eq!(refused.status(), 422, "{name}={value:?}");
        let body = refused.text().await.unwrap();
        assert!(body.contains(why), "{name}={value:?}: {body}");
    }
    let env_before = std::fs::read_to_string(portal.env_file()).unwrap();
    assert!(!portal.env_file().with_extension("env.previous").exists());

    let before = containers(&portal);
    let load = SteadyLoad::start(portal.url("/api/health"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = set_flag(&operator, &console, "FEATURE_NEW_CHECKOUT", "true").await;
    assert_eq!(started.status(), 200);
    let run: String = started.json().await.unwrap();
    let detail = finished(&operator, &console, &run).await;
    let (failed, total) = load.stop().await;
    assert_eq!(detail["run"]["status"], "succeeded", "{detail}");
    assert_eq!(failed, 0, "{failed} of {total} requests failed");
    assert!(total > 50, "{total} requests");

    let features: serde_json::Value = reqwest::get(portal.url("/api/features"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(features["new_checkout"], "true");
    let after = containers(&portal);
    for service in ["database", "cache", "frontend", "edge"] {
        assert_eq!(
            before[service], after[service],
            "{service} was not replaced"
        );
    }
    assert_ne!(
        before["backend"], after["backend"],
        "the backend reads the flag"
    );

    // One line changed, comments and order kept; the version before beside it.
    let env_after = std::fs::read_to_string(portal.env_file()).unwrap();
    assert_eq!(
        env_after,
        env_before.replace("FEATURE_NEW_CHECKOUT=false", "FEATURE_NEW_CHECKOUT=true")
    );
    let previous = portal.env_file().with_extension("env.previous");
    assert_eq!(std::fs::read_to_string(previous).unwrap(), env_before);
    let opened = portal.store.open().await;
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, detail FROM audit_events WHERE action = 'flag.set' ORDER BY seq",
    )
    .fetch_all(opened.pool())
    .await
    .unwrap();
    opened.close().await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0, "otto");
    let details: serde_json::Value = serde_json::from_str(&audited[0].1).unwrap();
    assert_eq!(
        (details["old"].as_str(), details["new"].as_str()),
        (Some("false"), Some("true"))
    );
    console.terminate().await;
}

#[tokio::test]
async fn a_flag_change_that_goes_bad_puts_the_env_file_and_the_containers_back() {
    let portal = SamplePortal::add("slipflagbad").await;
    portal.run("deploy", "1.0.0").await.assert_success();
    let env_before = std::fs::read_to_string(portal.env_file()).unwrap();
    let before = containers(&portal);

    // The new frontend goes bad four seconds after it started: the change does not hold.
    let set = run_to_exit(
        &with_flags(
            &["flag", "portal", "FRONTEND_FAIL_AFTER", "4"],
            &portal.flags,
        ),
        &[],
    )
    .await;
    assert_eq!(set.code, Some(1), "{}", set.stdout);
    let said = format!("{}\n{}", set.stdout, set.stderr);
    assert!(said.contains("is back as it was"), "{said}");
    assert_eq!(
        std::fs::read_to_string(portal.env_file()).unwrap(),
        env_before
    );
    assert_eq!(
        containers(&portal),
        before,
        "the old containers serve again"
    );
    let page = reqwest::get(portal.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);

    // A backend whose env file was edited since it started is not replaced by a flag: the
    // edit would ship with it. Nothing is written.
    let edited = format!("{env_before}CORS_ORIGIN=http://127.0.0.1:1\n");
    std::fs::write(portal.env_file(), &edited).unwrap();
    let refused = run_to_exit(
        &with_flags(
            &["flag", "portal", "FEATURE_NEW_CHECKOUT", "true"],
            &portal.flags,
        ),
        &[],
    )
    .await;
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(
        refused
            .stdout
            .contains("backend does not run what the compose and env files say now"),
        "{}",
        refused.stdout
    );
    assert_eq!(std::fs::read_to_string(portal.env_file()).unwrap(), edited);
    assert_eq!(containers(&portal), before);

    // From the command line as from the console: what is not a flag is refused by name.
    let refused = run_to_exit(
        &with_flags(&["flag", "portal", "POSTGRES_PASSWORD", "x"], &portal.flags),
        &[],
    )
    .await;
    assert_eq!(refused.code, Some(1));
    assert!(
        refused.stderr.contains("is not a flag"),
        "{}",
        refused.stderr
    );
    let listed = run_to_exit(&with_flags(&["flags", "portal"], &portal.flags), &[]).await;
    listed.assert_success();
    assert!(
        listed.stdout.contains("FEATURE_NEW_CHECKOUT") && listed.stdout.contains("backend"),
        "{}",
        listed.stdout
    );
}
