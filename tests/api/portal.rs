//! The sample portal fixture works on the real engine: built locally, brought up with
//! Debian's docker-compose, healthy, migrated, and visibly updated from 1.0.0 to 1.1.0.
//! (Slipway's own engine code drives the same fixture in the stack tests.)

use std::time::Duration;

use crate::helpers::ComposeProject;

/// Polls the edge until `path` answers 200 with `version` in its JSON, for at most 60 s.
async fn wait_for_version(
    project: &ComposeProject,
    path: &str,
    version: &str,
) -> serde_json::Value {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut last = String::new();
    for _ in 0..120 {
        if let Ok(response) = client.get(project.url(path)).send().await {
            if response.status() == 200 {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if body["version"] == version {
                    return body;
                }
                last = body.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{path} never reported version {version}; last answer: {last}");
}

#[tokio::test]
async fn the_sample_portal_comes_up_healthy_migrates_and_updates() {
    let project = ComposeProject::new();
    project.run("1.0.0", &["up", "-d"]);

    let health = wait_for_version(&project, "/api/health", "1.0.0").await;
    assert_eq!(health["database"], "ok");
    assert_eq!(health["cache"], "ok");
    let integrations = wait_for_version(&project, "/api/auth/health-check", "1.0.0").await;
    assert_eq!(integrations["services"]["salesforce"], "ok");
    assert_eq!(integrations["services"]["whmcs"], "ok");

    let migrated = project.run("1.0.0", &["run", "--rm", "backend", "migrate"]);
    assert_eq!(migrated.matches("applied").count(), 2, "{migrated}");

    // 1.1.0 brings one more migration and says so on every answer.
    project.run("1.1.0", &["up", "-d", "backend", "frontend"]);
    wait_for_version(&project, "/api/health", "1.1.0").await;
    let page = reqwest::get(project.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("version 1.1.0"), "{page}");
    let migrated = project.run("1.1.0", &["run", "--rm", "backend", "migrate"]);
    assert_eq!(
        migrated.trim().lines().last(),
        Some("applied 20240301_invoice_due_dates")
    );
}
