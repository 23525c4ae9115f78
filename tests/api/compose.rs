//! Compose faithfulness on the real engine: the fields fixture (`tests/fixtures/fields`)
//! deployed by Debian's docker-compose and by Slipway gives the same container.

use std::collections::BTreeMap;
use std::path::Path;

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
        "PidsLimit",
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

    // Compose's own labels, so that docker-compose sees the containers as its own.
    let container = web_container(&project);
    let label = |name: &str| {
        docker(&[
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{name}\"}}}}"),
            &container,
        ])
    };
    assert_eq!(label("com.docker.compose.project"), project);
    assert_eq!(label("com.docker.compose.service"), "web");
    assert_eq!(label("com.docker.compose.container-number"), "1");
    assert_eq!(
        label("com.docker.compose.project.working_dir"),
        fixture.canonicalize().unwrap().display().to_string()
    );
    assert_eq!(
        label("com.docker.compose.project.config_files"),
        fixture
            .join("docker-compose.yml")
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    );
    let hash = label("com.docker.compose.config-hash");
    assert!(
        hash.len() == 16 && hash == label("slipway.config-hash"),
        "{hash}"
    );
    let listed = std::process::Command::new("docker-compose")
        .env("DOCKER_HOST", "unix:///var/run/docker.sock")
        .envs(variables)
        .args(["-p", &project, "-f", &compose_file, "ps", "-q", "web"])
        .output()
        .expect("docker-compose runs");
    let listed = String::from_utf8_lossy(&listed.stdout).trim().to_owned();
    let id = docker(&["inspect", "--format", "{{.Id}}", &container]);
    assert_eq!(
        listed, id,
        "docker-compose ps finds the container Slipway made"
    );
}

/// How Debian's docker-compose 1.29 reads a corpus folder, `None` when it refuses the file.
/// It checks that build folders exist, so the copy gets the ones it names; it predates the
/// top-level `name:`, which the copy drops (the project is named on the command line), and
/// `depends_on.<service>.restart`, which the copy drops too (and [`comparable`] on both sides).
fn docker_compose_config(folder: &Path, file: &str, project: &str) -> Option<serde_norway::Value> {
    let text = std::fs::read_to_string(folder.join(file)).unwrap();
    let without_name: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("name:") && line.trim() != "restart: true")
        .collect();
    std::fs::write(folder.join(file), without_name.join("\n")).unwrap();
    for _ in 0..20 {
        let output = std::process::Command::new("docker-compose")
            .args(["-p", project, "-f", file, "config"])
            .current_dir(folder)
            .output()
            .expect("docker-compose runs");
        if output.status.success() {
            return Some(serde_norway::from_slice(&output.stdout).unwrap());
        }
        let said = String::from_utf8_lossy(&output.stderr);
        let missing = said
            .strip_prefix("build path ")
            .and_then(|rest| rest.split_once(" either does not exist"));
        match missing {
            Some((path, _)) => std::fs::create_dir_all(path).unwrap(),
            None => return None,
        }
    }
    None
}

/// Both printed models in one shape, so that they compare field by field. The documented
/// differences of docker-compose 1.29: it prints every service whatever its profiles (Slipway
/// leaves out those of inactive profiles), keeps `command`, `entrypoint` and a healthcheck's
/// `test` as written (a string), writes volumes in the short syntax (`SRC:DST:rw`) and ports
/// without `protocol: tcp`, writes numbers where Compose has text (`expose`, published ports),
/// does not print `bind.create_host_path`, `name:` or `version:` the same way, writes
/// durations its own way (`1m` for `60s`), prints an empty `platform` (which Slipway drops:
/// no platform) and a pass-through variable that is unset as `NAME: null` (Slipway leaves it
/// out: neither sets it in the container).
fn comparable(model: &serde_norway::Value) -> serde_json::Value {
    use serde_norway::Value as Yaml;
    fn scalars_as_text(value: &Yaml) -> serde_json::Value {
        match value {
            Yaml::Null => serde_json::Value::Null,
            Yaml::Bool(flag) => json!(flag.to_string()),
            Yaml::Number(number) => json!(number.to_string()),
            Yaml::String(text) => json!(text),
            Yaml::Sequence(items) => items.iter().map(scalars_as_text).collect(),
            Yaml::Mapping(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(key, item)| {
                        (
                            key.as_str().unwrap_or("?").to_owned(),
                            scalars_as_text(item),
                        )
                    })
                    .collect(),
            ),
            Yaml::Tagged(tagged) => scalars_as_text(&tagged.value),
        }
    }
    let mut model = scalars_as_text(model);
    let top = model.as_object_mut().unwrap();
    top.retain(|key, _| !key.starts_with("x-") && key != "version" && key != "name");
    let services = top["services"].as_object_mut().unwrap();
    services.retain(|_, service| service.get("profiles").is_none());
    for service in services.values_mut() {
        let fields = service.as_object_mut().unwrap();
        let dropped =
            |key: &str, value: &Value| key.starts_with("x-") || (key == "platform" && value == "");
        fields.retain(|key, value| !dropped(key, value));
        if let Some(environment) = fields.get_mut("environment").and_then(Value::as_object_mut) {
            environment.retain(|_, value| !value.is_null());
        }
        let durations = ["interval", "timeout", "start_period", "start_interval"];
        for (field, value) in fields
            .get_mut("healthcheck")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flatten()
        {
            if let (true, Value::String(text)) = (durations.contains(&field.as_str()), &*value) {
                *value = json!(seconds(text));
            }
        }
        for dependency in fields
            .get_mut("depends_on")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|map| map.values_mut())
        {
            if let Some(dependency) = dependency.as_object_mut() {
                dependency.remove("restart");
            }
        }
        for field in ["command", "entrypoint"] {
            if let Some(Value::String(line)) = fields.get(field) {
                fields.insert(field.into(), json!(shlex::split(line).unwrap()));
            }
        }
        if let Some(Value::String(line)) = fields.get("healthcheck").map(|check| &check["test"]) {
            let test = json!(["CMD-SHELL", line]);
            fields.get_mut("healthcheck").unwrap()["test"] = test;
        }
        for port in fields
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            // A port with a host address is printed in the short syntax.
            if let Value::String(spec) = port {
                let (mapping, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
                let parts: Vec<&str> = mapping.split(':').collect();
                *port = match parts.as_slice() {
                    [ip, published, target] => json!({
                        "host_ip": ip, "published": published, "target": target, "protocol": protocol
                    }),
                    _ => panic!("a port docker-compose prints: {spec}"),
                };
            }
            let port = port.as_object_mut().unwrap();
            port.entry("protocol").or_insert(json!("tcp"));
        }
        for volume in fields
            .get_mut("volumes")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Value::String(spec) = volume {
                let parts: Vec<&str> = spec.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [target] => (None, *target, ""),
                    [source, target] => (Some(*source), *target, ""),
                    [source, target, mode] => (Some(*source), *target, *mode),
                    _ => panic!("a volume docker-compose prints: {spec}"),
                };
                let kind = if source.is_some_and(|s| s.starts_with('/')) {
                    "bind"
                } else {
                    "volume"
                };
                let mut long = json!({ "type": kind, "target": target });
                if let Some(source) = source {
                    long["source"] = json!(source);
                }
                if mode.split(',').any(|option| option == "ro") {
                    long["read_only"] = json!("true");
                }
                *volume = long;
            } else if let Some(long) = volume.as_object_mut() {
                long.remove("bind");
                if long.get("read_only") == Some(&json!("false")) {
                    long.remove("read_only");
                }
            }
        }
    }
    model
}

/// A Compose duration (`1m30s`, `90s`, `500ms`) in seconds.
fn seconds(text: &str) -> f64 {
    let (mut total, mut number) = (0.0, String::new());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(next) = chars.peek().filter(|next| next.is_ascii_alphabetic()) {
            unit.push(*next);
            chars.next();
        }
        let scale = match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" => 0.000_001,
            other => panic!("a duration unit: {other} in {text}"),
        };
        total += number.parse::<f64>().unwrap() * scale;
        number.clear();
    }
    total
}

/// Why Slipway refuses a corpus file: the field its message must name.
const REFUSED: &[(&str, &str)] = &[("awesome-compose--wasmedge-kafka-mysql", "platform")];

/// Every file of the corpus is printed by `slipway config` as docker-compose 1.29 prints it
/// (where that version accepts the file), or refused by name.
#[test]
fn the_corpus_prints_as_docker_compose_config_or_is_refused_by_name() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compose-corpus");
    let scratch = tempfile::tempdir().unwrap();
    let mut folders: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    folders.sort();
    assert_eq!(folders.len(), 22, "the corpus at {}", corpus.display());
    let (mut compared, mut refused, mut table) = (0, 0, Vec::new());
    let mut differences = Vec::new();
    for original in folders {
        let name = original.file_name().unwrap().to_str().unwrap().to_owned();
        let folder = scratch.path().join(&name);
        copy_folder(&original, &folder);
        let file = ["compose.yaml", "compose.yml", "docker-compose.yml"]
            .into_iter()
            .find(|file| folder.join(file).exists())
            .unwrap();
        provide_secret_files(&folder.join(file));
        let env_file = folder.join(".env");
        let env_file = env_file.exists().then_some(env_file.as_path());
        let project = name.to_lowercase();
        let ours = app::stacks::compose::config(&folder.join(file), env_file, &[], &project, &[]);
        let expected_refusal = REFUSED.iter().find(|(folder, _)| *folder == name);
        let ours = match (ours, expected_refusal) {
            (Err(error), Some((_, field))) => {
                let said = error.to_string();
                assert!(
                    said.contains(field),
                    "{name}: refused for another reason: {said}"
                );
                refused += 1;
                table.push(format!("{name}: refused: {said}"));
                continue;
            }
            (Err(error), None) => panic!("{name}: refused: {error}"),
            (Ok(_), Some((_, field))) => panic!("{name}: read, though {field} is refused"),
            (Ok(model), None) => model,
        };
        let ours: serde_norway::Value = serde_norway::from_str(&ours).unwrap();
        let Some(theirs) = docker_compose_config(&folder, file, &project) else {
            table.push(format!("{name}: read; docker-compose 1.29 refuses it"));
            continue;
        };
        let (ours, theirs) = (comparable(&ours), comparable(&theirs));
        if ours != theirs {
            differences.push(format!(
                "{name}: slipway config differs from docker-compose config:\n{}\n{}",
                serde_json::to_string_pretty(&ours).unwrap(),
                serde_json::to_string_pretty(&theirs).unwrap()
            ));
            continue;
        }
        compared += 1;
        table.push(format!("{name}: read, equal to docker-compose config"));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n\n"));
    println!("{}", table.join("\n"));
    assert_eq!((compared, refused), (21, 1), "{}", table.join("\n"));
}

/// The corpus holds compose files only: the secret and config files they name, which their
/// repositories hold, are made in the copy (Slipway refuses a file whose secret is missing).
fn provide_secret_files(compose_file: &Path) {
    let text = std::fs::read_to_string(compose_file).unwrap();
    let model: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    for kind in ["secrets", "configs"] {
        let Some(serde_norway::Value::Mapping(entries)) = model.get(kind) else {
            continue;
        };
        for file in entries
            .values()
            .filter_map(|entry| entry.get("file")?.as_str())
        {
            let path = compose_file.parent().unwrap().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if !path.exists() {
                std::fs::write(&path, "made by the test\n").unwrap();
            }
        }
    }
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `slipway config` prints the model of a file that is not a stack yet, secrets masked unless
/// asked; a malformed file of each kind is refused with the file, the line where the parser
/// knows it and the reason, never a panic and never a secret's value.
#[tokio::test]
async fn slipway_config_prints_the_model_and_refuses_each_kind_of_malformed_file_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cret-value-nobody-may-read-0042";
    std::fs::write(
        dir.path().join("app.env"),
        format!("DB_PASSWORD={secret}\nTAG=1.2\n"),
    )
    .unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let env_file = dir.path().join("app.env").display().to_string();
    let good = write(
        "good.yml",
        "services:\n  web:\n    image: shop:${TAG}\n    environment: [DB_PASSWORD]\n    ports: [\"127.0.0.1:8080:80\"]\n    volumes: [\"./data:/data:ro\"]\n",
    );
    let config = |file: &str, more: &[&str]| {
        let mut args = vec!["config", "--compose", file, "--env-file", env_file.as_str()];
        args.extend_from_slice(more);
        args.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let args = config(&good, &["--project", "shop"]);
    let printed = run_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    printed.assert_success();
    let model: serde_norway::Value = serde_norway::from_str(&printed.stdout).unwrap();
    let web = &model["services"]["web"];
    assert_eq!(model["name"], "shop");
    assert_eq!(web["image"], "shop:1.2");
    assert_eq!(web["ports"][0]["host_ip"], "127.0.0.1");
    assert_eq!(web["ports"][0]["target"], 80);
    let data = dir.path().join("data").display().to_string();
    assert_eq!(web["volumes"][0]["source"], data.as_str());
    assert_eq!(web["volumes"][0]["read_only"], true);
    assert!(!printed.stdout.contains(secret), "{}", printed.stdout);
    let args = config(&good, &["--unmasked"]);
    let unmasked = run_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    unmasked.assert_success();
    assert!(
        unmasked.stdout.contains(secret),
        "asked for: {}",
        unmasked.stdout
    );

    let malformed = [
        ("tabs.yml", "services:\n\tweb:\n    image: x\n", "line 2"),
        (
            "duplicate.yml",
            "services:\n  web:\n    image: x\n    image: y\n",
            "duplicate entry with key \"image\"",
        ),
        (
            "port.yml",
            "services:\n  web:\n    image: x\n    ports: [\"80:http\"]\n",
            "services.web.ports",
        ),
        (
            "unknown.yml",
            "services:\n  web:\n    image: x\n    colour: red\n",
            "services.web.colour: this is not a field of the Compose Specification",
        ),
        (
            "required.yml",
            "services:\n  web:\n    image: ${IMAGE:?set the image}\n    environment: [DB_PASSWORD]\n",
            "services.web.image",
        ),
        (
            "env-file.yml",
            "services:\n  web:\n    image: x\n    env_file: missing.env\n",
            "services.web.env_file",
        ),
        (
            "secret-file.yml",
            "services:\n  web:\n    image: x\n    secrets: [db]\nsecrets:\n  db:\n    file: ./missing.txt\n",
            "services.web.secrets: db: the file ./missing.txt does not exist",
        ),
    ];
    for (name, text, reason) in malformed {
        let file = write(name, text);
        let args = config(&file, &[]);
        let refused = run_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
        assert_eq!(
            refused.code,
            Some(1),
            "{name}: {}\n{}",
            refused.stdout,
            refused.stderr
        );
        assert!(
            refused.stderr.contains(&file) && refused.stderr.contains(reason),
            "{name}: the file and {reason:?}: {}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("panicked"), "{}", refused.stderr);
        assert!(!refused.stderr.contains(secret), "{}", refused.stderr);
    }
}

/// `extends` (of another file's service, whose paths are relative to that file, and of this
/// file's) resolves as docker-compose 1.29 resolves it; `include` (which that version
/// predates) adds another file's resources with their paths made absolute, and a name both
/// files define is refused.
#[test]
fn extends_resolves_as_docker_compose_does_and_include_adds_another_files_services() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("extends");
    copy_folder(&fixture_dir().join("../extends"), &root);
    let app = root.join("app");
    let ours = app::stacks::compose::config(&app.join("docker-compose.yml"), None, &[], "app", &[])
        .unwrap();
    let ours: serde_norway::Value = serde_norway::from_str(&ours).unwrap();
    let theirs = docker_compose_config(&app, "docker-compose.yml", "app")
        .expect("docker-compose reads the extends fixture");
    assert_eq!(comparable(&ours), comparable(&theirs));
    assert_eq!(
        ours["services"]["worker"]["command"],
        serde_norway::from_str::<serde_norway::Value>("[work]").unwrap()
    );

    let included =
        app::stacks::compose::config(&app.join("with-include.yml"), None, &[], "app", &[]).unwrap();
    let included: serde_norway::Value = serde_norway::from_str(&included).unwrap();
    let services = &included["services"];
    let names: Vec<&str> = services
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(|name| name.as_str())
        .collect();
    assert_eq!(names, ["web", "api", "jobs"]);
    assert_eq!(services["api"]["environment"]["API_LEVEL"], "debug");
    let at = |path: &str| root.join(path).display().to_string();
    assert_eq!(
        services["api"]["volumes"][0]["source"],
        at("app/api-data").as_str()
    );
    assert_eq!(
        services["jobs"]["build"]["context"],
        at("common/ctx").as_str()
    );
    assert_eq!(
        services["jobs"]["volumes"][0]["source"],
        at("common/data").as_str()
    );

    std::fs::write(
        app.join("conflict.yml"),
        "include: [included.yml]\nservices:\n  api:\n    image: mine\n",
    )
    .unwrap();
    let conflict = app::stacks::compose::config(&app.join("conflict.yml"), None, &[], "app", &[])
        .unwrap_err()
        .to_string();
    assert!(
        conflict.contains("services.api") && conflict.contains("also defined by the included"),
        "{conflict}"
    );
    std::fs::write(
        app.join("loop.yml"),
        "include: [loop.yml]\nservices:\n  a:\n    image: a\n",
    )
    .unwrap();
    let looped = app::stacks::compose::config(&app.join("loop.yml"), None, &[], "app", &[])
        .unwrap_err()
        .to_string();
    assert!(looped.contains("includes itself"), "{looped}");
}
