//! Compose faithfulness on the real engine: the fields fixture (`tests/fixtures/fields`)
//! deployed by Debian's docker-compose and by Slipway gives the same container.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::helpers::{
    docker, fixture_dir, free_port, run_to_exit, stack_add_args, throwaway_project, with_flags,
    Backend, TestStore,
};

/// The parts of `docker inspect` that the compose file decides, with the project's name
/// replaced by PROJECT and what the engine names at random (anonymous volumes) left out.
fn view(container: &str, project: &str) -> BTreeMap<String, Value> {
    let inspected: Value = serde_json::from_str(&docker(&["inspect", container])).unwrap();
    let inspected = &inspected[0];
    let text = serde_json::to_string(inspected)
        .unwrap()
        .replace(project, "PROJECT");
    let inspected: Value = serde_json::from_str(&text).unwrap();
    let mut view = BTreeMap::new();
    let config = &inspected["Config"];
    let host = &inspected["HostConfig"];
    let mut env: Vec<Value> = config["Env"].as_array().cloned().unwrap_or_default();
    env.sort_by_key(|line| line.to_string());
    view.insert("Env".into(), Value::Array(env));
    for field in [
        "Cmd",
        "Entrypoint",
        "User",
        "WorkingDir",
        "Hostname",
        "Domainname",
        "Tty",
        "OpenStdin",
        "StopSignal",
        "Healthcheck",
        "Image",
    ] {
        view.insert(field.into(), config[field].clone());
    }
    let exposed: Vec<&String> = config["ExposedPorts"]
        .as_object()
        .map(|ports| ports.keys().collect())
        .unwrap_or_default();
    view.insert("ExposedPorts".into(), json!(exposed));
    let labels: BTreeMap<&String, &Value> = config["Labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter(|(key, _)| {
                    !key.starts_with("com.docker.compose.") && !key.starts_with("slipway.")
                })
                .collect()
        })
        .unwrap_or_default();
    view.insert("Labels".into(), json!(labels));
    for field in [
        "CapAdd",
        "CapDrop",
        "ReadonlyRootfs",
        "SecurityOpt",
        "Sysctls",
        "Ulimits",
        "ExtraHosts",
        "Dns",
        "ShmSize",
        "Tmpfs",
        "LogConfig",
        "Memory",
        "RestartPolicy",
        "PortBindings",
        "Privileged",
        "NetworkMode",
    ] {
        view.insert(format!("HostConfig.{field}"), host[field].clone());
    }
    let mut mounts: Vec<Value> = inspected["Mounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mount| {
            let anonymous = mount["Name"]
                .as_str()
                .is_some_and(|name| name.len() == 64);
            json!({
                "Type": mount["Type"],
                "Destination": mount["Destination"],
                "RW": mount["RW"],
                "Source": if mount["Type"] == "bind" { mount["Source"].clone() } else { Value::Null },
                "Name": if anonymous { json!("ANONYMOUS") } else { mount["Name"].clone() },
            })
        })
        .collect();
    mounts.sort_by_key(|mount| mount["Destination"].to_string());
    view.insert("Mounts".into(), Value::Array(mounts));
    // Each network the container is on, with the names it answers to there (not the engine's
    // own alias, the container's short id).
    let networks: BTreeMap<&String, Vec<&str>> = inspected["NetworkSettings"]["Networks"]
        .as_object()
        .map(|networks| {
            networks
                .iter()
                .map(|(name, endpoint)| {
                    let mut aliases: Vec<&str> = endpoint["Aliases"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .filter(|alias| !inspected["Id"].as_str().unwrap_or("-").starts_with(alias))
                        .collect();
                    aliases.sort_unstable();
                    (name, aliases)
                })
                .collect()
        })
        .unwrap_or_default();
    view.insert("Networks".into(), json!(networks));
    let internal: BTreeMap<&String, String> = networks
        .keys()
        .map(|name| {
            let network = name.replace("PROJECT", project);
            (
                *name,
                docker(&["network", "inspect", "--format", "{{.Internal}}", &network]),
            )
        })
        .collect();
    view.insert("NetworkInternal".into(), json!(internal));
    view
}

/// The running (or last) container of the project's web service.
fn web_container(project: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=web",
    ])
}

#[tokio::test]
async fn a_deployed_service_carries_every_field_as_docker_compose_sets_it() {
    let fixture = fixture_dir().join("../fields");
    let compose_file = fixture.join("docker-compose.yml").display().to_string();
    let (web_port, udp_port) = (free_port(), free_port());
    let variables = [
        ("WEB_PORT", web_port.as_str()),
        ("UDP_PORT", udp_port.as_str()),
        ("PASSED", "through"),
    ];

    // The reference: docker-compose up, inspected, taken down (the ports are used again).
    let (reference_project, _reference_cleanup) = throwaway_project("fieldscompose");
    let compose = |args: &[&str]| {
        std::process::Command::new("docker-compose")
            .env("DOCKER_HOST", "unix:///var/run/docker.sock")
            .envs(variables)
            .args(["-p", &reference_project, "-f", &compose_file])
            .args(args)
            .output()
            .expect("docker-compose runs")
    };
    let up = compose(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let reference = view(&web_container(&reference_project), &reference_project);
    compose(&["down", "-v", "-t", "1"]);

    let (project, _cleanup) = throwaway_project("fieldsslip");
    let store = TestStore::new(Backend::Sqlite).await;
    let flags = store.serve_flags();
    run_to_exit(
        &stack_add_args(&flags, "fields", &compose_file, &["--project", &project]),
        &variables,
    )
    .await
    .assert_success();
    run_to_exit(&with_flags(&["deploy", "fields"], &flags), &variables)
        .await
        .assert_success();
    let ours = view(&web_container(&project), &project);

    let differing: Vec<String> = reference
        .iter()
        .filter(|(field, value)| ours.get(*field) != Some(value))
        .map(|(field, value)| {
            format!(
                "{field}:\n  docker-compose: {value}\n  slipway:        {}",
                ours.get(field).unwrap_or(&Value::Null)
            )
        })
        .collect();
    assert!(differing.is_empty(), "{}", differing.join("\n"));
    assert_eq!(reference["Env"], ours["Env"]);
    assert!(
        ours["Cmd"] == json!(["frontend", "--note", "two words", "and more"]),
        "the command is split as a shell splits it: {}",
        ours["Cmd"]
    );
}
