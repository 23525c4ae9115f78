//! The container a service's compose definition asks for, field by field as Compose creates
//! it. Fields Slipway does not apply never reach here: `fields::refused` turns the file away
//! when the stack is added. A field that is not set leaves its part of the body empty, so the
//! definition's digest of a container made before a field was applied does not change.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig,
    HostConfigLogConfig, Mount, MountBindOptions, MountTmpfsOptions, MountType, MountVolumeOptions,
    NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use docker_compose_types::{
    Command, Entrypoint, HealthcheckTest, Ports, PublishedPort, Service, SysCtls, Tmpfs, Ulimit,
    Volumes,
};

use super::compose::ServiceDefinition;
use super::engine::{PROJECT_LABEL, SERVICE_LABEL};
use super::lifecycle::{environment_lines, network_name, volume_name};
use super::{ServiceRole, StackError};

/// The body of the container the service's definition asks for.
pub fn container_body(
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> Result<ContainerCreateBody, StackError> {
    let compose = &service.compose;
    let refuse = |field: &str, why: String| {
        StackError::Compose(format!("services.{}.{field}: {why}", service.name))
    };
    let cmd = compose
        .command
        .as_ref()
        .map(|command| match command {
            Command::Simple(line) => words(line).ok_or_else(|| refuse("command", unbalanced())),
            Command::Args(args) => Ok(args.clone()),
        })
        .transpose()?;
    let entrypoint = compose
        .entrypoint
        .as_ref()
        .map(|entrypoint| match entrypoint {
            Entrypoint::Simple(line) => {
                words(line).ok_or_else(|| refuse("entrypoint", unbalanced()))
            }
            Entrypoint::List(args) => Ok(args.clone()),
        })
        .transpose()?;
    let (mut exposed, bindings) = published(compose).map_err(|why| refuse("ports", why))?;
    for port in &compose.expose {
        let key = if port.contains('/') {
            port.clone()
        } else {
            format!("{port}/tcp")
        };
        if !exposed.contains(&key) {
            exposed.push(key);
        }
    }
    let storage = storage(project, service, compose_dir).map_err(|why| refuse("volumes", why))?;
    let mut host = HostConfig {
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        binds: (!storage.binds.is_empty()).then_some(storage.binds),
        mounts: (!storage.mounts.is_empty()).then_some(storage.mounts),
        restart_policy: restart_policy(compose).map_err(|why| refuse("restart", why))?,
        ..Default::default()
    };
    host_settings(compose, &mut host).map_err(|(field, why)| refuse(&field, why))?;
    host.pids_limit = service.pids_limit;
    // Made on its first network; `lifecycle` joins the others once the container exists.
    let first = service.networks.first();
    let network = first.map_or_else(
        || network_name(project),
        |network| network.engine_name(project),
    );
    let endpoint = first.map_or_else(
        || EndpointSettings {
            aliases: Some(vec![service.name.clone()]),
            ..Default::default()
        },
        |network| network.endpoint(&service.name),
    );
    let (network_mode, networking_config) = match compose.network_mode.as_deref() {
        // Checked when the file was read: host, none or bridge.
        Some(mode) => (mode.to_owned(), None),
        None => (
            network.clone(),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network, endpoint)])),
            }),
        ),
    };
    host.network_mode = Some(network_mode);
    Ok(ContainerCreateBody {
        image: Some(service.image_name(project)),
        env: Some(environment_lines(compose)),
        cmd,
        entrypoint,
        labels: Some(labels(project, service, compose_dir)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        volumes: (!storage.anonymous.is_empty()).then_some(storage.anonymous),
        healthcheck: healthcheck(compose),
        stop_signal: compose.stop_signal.clone(),
        user: compose.user.clone(),
        working_dir: compose.working_dir.clone(),
        hostname: compose.hostname.clone(),
        domainname: compose.domainname.clone(),
        tty: compose.tty.then_some(true),
        open_stdin: compose.stdin_open.then_some(true),
        host_config: Some(host),
        networking_config,
        ..Default::default()
    })
}

fn unbalanced() -> String {
    "a quote is not closed".into()
}

/// A command line split as a POSIX shell splits it (quotes and backslashes), as Compose does;
/// `#` starts no comment there.
pub(super) fn words(line: &str) -> Option<Vec<String>> {
    const HASH: char = '\u{E001}';
    let words = shlex::split(&line.replace('#', &HASH.to_string()))?;
    Some(
        words
            .into_iter()
            .map(|word| word.replace(HASH, "#"))
            .collect(),
    )
}

/// A short-syntax port that publishes one TCP port: (host IP, host port, container port);
/// `None` for UDP and ranges.
pub fn single_tcp_port(port: &str) -> Option<(Option<String>, Option<String>, u16)> {
    match short_port(port)?.as_slice() {
        [(ip, host, container, protocol)]
            if protocol == "tcp" && !host.as_deref().unwrap_or_default().contains('-') =>
        {
            Some((ip.clone(), host.clone(), container.parse().ok()?))
        }
        _ => None,
    }
}

/// Published ports (every short form, ranges, `/udp`, the long syntax, a host IP) as the
/// exposed ports and their bindings.
#[allow(clippy::type_complexity)]
fn published(
    compose: &Service,
) -> Result<(Vec<String>, HashMap<String, Option<Vec<PortBinding>>>), String> {
    let mut mappings: Vec<(Option<String>, Option<String>, String, String)> = Vec::new();
    match &compose.ports {
        Ports::Short(ports) => {
            for port in ports {
                mappings.extend(short_port(port).ok_or_else(|| format!("cannot read {port:?}"))?);
            }
        }
        Ports::Long(ports) => {
            for port in ports {
                let host_port = port.published.as_ref().map(|published| match published {
                    PublishedPort::Single(number) => number.to_string(),
                    PublishedPort::Range(range) => range.clone(),
                });
                mappings.push((
                    port.host_ip.clone(),
                    host_port,
                    port.target.to_string(),
                    port.protocol.clone().unwrap_or_else(|| "tcp".into()),
                ));
            }
        }
    }
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for (host_ip, host_port, container_port, protocol) in mappings {
        let key = format!("{container_port}/{protocol}");
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding { host_ip, host_port });
    }
    Ok((exposed, bindings))
}

/// One short-syntax port as (host IP, host port, container port, protocol) mappings: a
/// container range maps one to one onto a host range of the same length.
#[allow(clippy::type_complexity)]
pub(super) fn short_port(
    port: &str,
) -> Option<Vec<(Option<String>, Option<String>, String, String)>> {
    let (spec, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
    // An IPv6 host address is written in brackets: [::1]:8080:80.
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(rest) => {
            let (ip, rest) = rest.split_once("]:")?;
            (Some(ip.to_owned()), rest)
        }
        None => (None, spec),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    // An empty host port (`127.0.0.1::80`) stays as written: the engine picks one.
    let (host_ip, host_port, container) = match (host_ip, parts.as_slice()) {
        (None, [container]) => (None, None, *container),
        (ip, [host, container]) => (ip, Some(*host), *container),
        (None, [ip, host, container]) => (Some((*ip).to_owned()), Some(*host), *container),
        _ => return None,
    };
    let range = |text: &str| -> Option<(u16, u16)> {
        match text.split_once('-') {
            Some((from, to)) => Some((from.parse().ok()?, to.parse().ok()?)),
            None => {
                let single = text.parse().ok()?;
                Some((single, single))
            }
        }
    };
    let (from, to) = range(container)?;
    if from > to {
        return None;
    }
    if from == to {
        return Some(vec![(
            host_ip,
            host_port.map(str::to_owned),
            container.to_owned(),
            protocol.to_owned(),
        )]);
    }
    let hosts: Option<Vec<String>> = match host_port.map(range) {
        None => None,
        Some(Some((host_from, host_to)))
            if host_from <= host_to && host_to - host_from == to - from =>
        {
            Some((host_from..=host_to).map(|port| port.to_string()).collect())
        }
        Some(_) => return None,
    };
    Some(
        (from..=to)
            .enumerate()
            .map(|(index, port)| {
                (
                    host_ip.clone(),
                    hosts.as_ref().map(|hosts| hosts[index].clone()),
                    port.to_string(),
                    protocol.to_owned(),
                )
            })
            .collect(),
    )
}

/// What the service mounts: short-syntax binds and named volumes (`Binds`, as Compose's short
/// syntax creates a missing host folder), long-syntax mounts, and anonymous volumes.
#[derive(Default)]
struct Storage {
    binds: Vec<String>,
    mounts: Vec<Mount>,
    anonymous: Vec<String>,
}

fn storage(
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> Result<Storage, String> {
    let volume_name = |name: &str| match service.fixed_volume_names.get(name) {
        Some(fixed) => fixed.clone(),
        None => volume_name(project, name),
    };
    let compose = &service.compose;
    let mut storage = Storage::default();
    for volume in &compose.volumes {
        match volume {
            Volumes::Simple(spec) => match spec.split_once(':') {
                None => storage.anonymous.push(spec.clone()),
                Some((source, rest)) => {
                    // As written before long syntax was applied (`DIR/./data`): the same
                    // bind string keeps the container's definition digest.
                    let source = if source.starts_with('~') {
                        host_path(source, compose_dir)
                    } else if is_path(source) {
                        compose_dir.join(source).display().to_string()
                    } else {
                        volume_name(source)
                    };
                    storage.binds.push(format!("{source}:{rest}"));
                }
            },
            Volumes::Advanced(volume) => {
                let read_only = volume.read_only.then_some(true);
                let target = Some(volume.target.clone());
                let mount = match volume._type.as_str() {
                    "bind" => {
                        let source = volume
                            .source
                            .as_deref()
                            .ok_or("a bind mount needs a source")?;
                        let create = volume
                            .bind
                            .as_ref()
                            .and_then(|bind| bind.create_host_path)
                            .unwrap_or(true);
                        if create {
                            let mode = if volume.read_only { ":ro" } else { "" };
                            storage.binds.push(format!(
                                "{}:{}{mode}",
                                host_path(source, compose_dir),
                                volume.target
                            ));
                            continue;
                        }
                        Mount {
                            target,
                            source: Some(host_path(source, compose_dir)),
                            typ: Some(MountType::BIND),
                            read_only,
                            bind_options: Some(MountBindOptions::default()),
                            ..Default::default()
                        }
                    }
                    "volume" => Mount {
                        target,
                        source: volume.source.as_deref().map(volume_name),
                        typ: Some(MountType::VOLUME),
                        read_only,
                        volume_options: volume
                            .volume
                            .as_ref()
                            .and_then(|options| options.nocopy)
                            .map(|nocopy| MountVolumeOptions {
                                no_copy: Some(nocopy),
                                ..Default::default()
                            }),
                        ..Default::default()
                    },
                    "tmpfs" => Mount {
                        target,
                        typ: Some(MountType::TMPFS),
                        tmpfs_options: volume.tmpfs.as_ref().map(|tmpfs| MountTmpfsOptions {
                            size_bytes: i64::try_from(tmpfs.size).ok(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    other => return Err(format!("type {other:?} is not applied yet")),
                };
                storage.mounts.push(mount);
            }
        }
    }
    Ok(storage)
}

/// A bind source, not a volume's name: Compose's rule.
pub(super) fn is_path(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// A bind source as the engine needs it: `~` is the home folder of the process reading the
/// file (as with Compose), a relative path is relative to the compose file's folder.
pub(super) fn host_path(source: &str, compose_dir: &Path) -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    if source == "~" {
        return home;
    }
    if let Some(rest) = source.strip_prefix("~/") {
        return Path::new(&home).join(rest).display().to_string();
    }
    // `./data` is `DIR/data` and `../common/data` is `PARENT/common/data`, as Compose writes
    // them.
    let mut path = std::path::PathBuf::new();
    for part in compose_dir.join(source).components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                path.pop();
            }
            other => path.push(other),
        }
    }
    path.display().to_string()
}

/// `restart`: every policy, `on-failure[:N]`.
fn restart_policy(compose: &Service) -> Result<Option<RestartPolicy>, String> {
    let Some(text) = compose.restart.as_deref() else {
        return Ok(None);
    };
    let (name, count) = match text.split_once(':') {
        Some(("on-failure", count)) => (
            RestartPolicyNameEnum::ON_FAILURE,
            Some(
                count
                    .parse::<u32>()
                    .map(i64::from)
                    .map_err(|_| format!("{text:?}: on-failure:N takes a number of retries"))?,
            ),
        ),
        Some(_) => return Err(format!("{text:?} is not a restart policy")),
        None => (
            match text {
                "always" => RestartPolicyNameEnum::ALWAYS,
                "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
                "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
                "no" | "" => RestartPolicyNameEnum::NO,
                other => return Err(format!("{other:?} is not a restart policy")),
            },
            None,
        ),
    };
    Ok(Some(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    }))
}

/// The settings of the container's host config beyond ports, mounts and restart: each left
/// empty when the file does not set it. `Err((field, why))`.
fn host_settings(compose: &Service, host: &mut HostConfig) -> Result<(), (String, String)> {
    let list = |items: &Vec<String>| (!items.is_empty()).then(|| items.clone());
    host.cap_add = list(&compose.cap_add);
    host.cap_drop = list(&compose.cap_drop);
    host.privileged = compose.privileged.then_some(true);
    host.readonly_rootfs = compose.read_only.then_some(true);
    host.security_opt = list(&compose.security_opt);
    host.dns = list(&compose.dns);
    host.dns_options = list(&compose.dns_opt);
    host.init = compose.init.then_some(true);
    host.pid_mode = compose.pid.clone();
    host.ipc_mode = compose.ipc.clone();
    host.extra_hosts = (!compose.extra_hosts.is_empty()).then(|| {
        compose
            .extra_hosts
            .iter()
            // `host=ip` is Compose's other form of the engine's `host:ip`.
            .map(|entry| match entry.split_once('=') {
                Some((name, address)) => format!("{name}:{address}"),
                None => entry.clone(),
            })
            .collect()
    });
    let size = |field: &str, text: &str| {
        bytes(text).ok_or_else(|| {
            (
                field.to_owned(),
                format!("{text:?} is not a size such as 512m"),
            )
        })
    };
    host.shm_size = compose
        .shm_size
        .as_deref()
        .map(|text| size("shm_size", text))
        .transpose()?;
    host.memory = compose
        .mem_limit
        .as_deref()
        .map(|text| size("mem_limit", text))
        .transpose()?;
    host.memory_reservation = compose
        .mem_reservation
        .as_deref()
        .map(|text| size("mem_reservation", text))
        .transpose()?;
    if let Some(resources) = compose
        .deploy
        .as_ref()
        .and_then(|deploy| deploy.resources.as_ref())
    {
        if let Some(limits) = &resources.limits {
            if let Some(memory) = &limits.memory {
                host.memory = Some(size("deploy.resources.limits.memory", memory)?);
            }
            if let Some(cpus) = &limits.cpus {
                let cpus: f64 = cpus
                    .parse()
                    .ok()
                    .filter(|cpus: &f64| cpus.is_finite() && *cpus > 0.0 && *cpus < 1e6)
                    .ok_or_else(|| {
                        (
                            "deploy.resources.limits.cpus".to_owned(),
                            format!("{cpus:?} is not a number of CPUs"),
                        )
                    })?;
                host.nano_cpus = Some((cpus * 1e9).round() as i64);
            }
        }
        if let Some(memory) = resources
            .reservations
            .as_ref()
            .and_then(|r| r.memory.as_ref())
        {
            host.memory_reservation = Some(size("deploy.resources.reservations.memory", memory)?);
        }
    }
    host.tmpfs = compose.tmpfs.as_ref().map(|tmpfs| {
        let paths = match tmpfs {
            Tmpfs::Simple(path) => vec![path.clone()],
            Tmpfs::List(paths) => paths.clone(),
        };
        paths
            .iter()
            .map(|entry| match entry.split_once(':') {
                Some((path, options)) => (path.to_owned(), options.to_owned()),
                None => (entry.clone(), String::new()),
            })
            .collect()
    });
    let sysctls: HashMap<String, String> = match &compose.sysctls {
        SysCtls::List(items) => items
            .iter()
            .map(|item| {
                let (name, value) = item.split_once('=').unwrap_or((item, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        SysCtls::Map(map) => map
            .iter()
            .map(|(name, value)| {
                (
                    name.clone(),
                    value.as_ref().map(ToString::to_string).unwrap_or_default(),
                )
            })
            .collect(),
    };
    host.sysctls = (!sysctls.is_empty()).then_some(sysctls);
    let number = |text: String| {
        text.parse::<i64>()
            .map_err(|_| ("ulimits".to_owned(), format!("{text:?} is not a number")))
    };
    let mut ulimits = Vec::new();
    for (name, limit) in &compose.ulimits.0 {
        let (soft, hard) = match limit {
            Ulimit::Single(value) => {
                let value = number(value.to_string())?;
                (value, value)
            }
            Ulimit::SoftHard { soft, hard } => {
                (number(soft.to_string())?, number(hard.to_string())?)
            }
        };
        ulimits.push(ResourcesUlimits {
            name: Some(name.clone()),
            soft: Some(soft),
            hard: Some(hard),
        });
    }
    host.ulimits = (!ulimits.is_empty()).then_some(ulimits);
    host.devices = (!compose.devices.is_empty()).then(|| {
        compose
            .devices
            .iter()
            .map(|device| {
                let mut parts = device.splitn(3, ':');
                let on_host = parts.next().unwrap_or_default().to_owned();
                let in_container = parts.next().map_or_else(|| on_host.clone(), str::to_owned);
                DeviceMapping {
                    path_on_host: Some(on_host),
                    path_in_container: Some(in_container),
                    cgroup_permissions: Some(parts.next().unwrap_or("rwm").to_owned()),
                }
            })
            .collect()
    });
    host.log_config = compose.logging.as_ref().map(|logging| HostConfigLogConfig {
        typ: logging.driver.clone(),
        config: logging.options.as_ref().map(|options| {
            options
                .iter()
                .map(|(name, value)| (name.clone(), value.to_string()))
                .collect()
        }),
    });
    Ok(())
}

/// A size as Compose writes it (`512`, `64k`, `1.5G`, `2gb`; powers of 1024) in bytes.
pub(super) fn bytes(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor) as i64)
}

fn healthcheck(compose: &Service) -> Option<HealthConfig> {
    let check = compose.healthcheck.as_ref()?;
    if check.disable {
        return Some(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }
    let duration = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| humantime::parse_duration(t).ok())
            .map(|d| d.as_nanos() as i64)
    };
    Some(HealthConfig {
        test: check.test.as_ref().map(|test| match test {
            HealthcheckTest::Single(line) => vec!["CMD-SHELL".to_owned(), line.clone()],
            HealthcheckTest::Multiple(args) => args.clone(),
        }),
        interval: duration(&check.interval),
        timeout: duration(&check.timeout),
        retries: Some(check.retries).filter(|r| *r > 0),
        start_period: duration(&check.start_period),
        start_interval: None,
    })
}

/// The file's labels and Compose's own (project, service, number, working dir), so that
/// `docker compose ps` and Slipway agree about the container.
fn labels(
    project: &str,
    service: &ServiceDefinition,
    compose_dir: &Path,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = match &service.compose.labels {
        docker_compose_types::Labels::List(items) => items
            .iter()
            .map(|item| {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        docker_compose_types::Labels::Map(map) => {
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
    };
    labels.insert(PROJECT_LABEL.into(), project.into());
    labels.insert(SERVICE_LABEL.into(), service.name.clone());
    labels.insert("com.docker.compose.container-number".into(), "1".into());
    labels.insert("com.docker.compose.oneoff".into(), "False".into());
    labels.insert(
        "com.docker.compose.project.working_dir".into(),
        compose_dir.display().to_string(),
    );
    labels.insert("slipway.managed".into(), "true".into());
    // The label is part of the definition's digest: a role inferred from the image is not
    // written, so that containers made before roles were inferred (labelled `app`) are not
    // recreated by the next deploy.
    let labelled_role = if service.role_declared {
        service.role
    } else {
        ServiceRole::App
    };
    labels.insert("slipway.role".into(), labelled_role.as_str().into());
    // The networks joined after creation are part of the definition too (its digest).
    if service.networks.len() > 1 {
        labels.insert(
            "slipway.networks".into(),
            service
                .networks
                .iter()
                .map(|network| {
                    format!(
                        "{}|{}|{}",
                        network.engine_name(project),
                        network.aliases.join(" "),
                        network.ipv4_address.as_deref().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_compose_writes_them() {
        assert_eq!(bytes("512"), Some(512));
        assert_eq!(bytes("64k"), Some(65_536));
        assert_eq!(bytes("1.5G"), Some(1_610_612_736));
        assert_eq!(bytes("2gb"), Some(2_147_483_648));
        assert_eq!(bytes("lots"), None);
    }

    #[test]
    fn short_ports_in_every_form() {
        let one = |port: &str| short_port(port);
        let mapping = |ip: Option<&str>, host: Option<&str>, container: &str, protocol: &str| {
            (
                ip.map(str::to_owned),
                host.map(str::to_owned),
                container.to_owned(),
                protocol.to_owned(),
            )
        };
        assert_eq!(one("3000"), Some(vec![mapping(None, None, "3000", "tcp")]));
        assert_eq!(
            one("8080:80"),
            Some(vec![mapping(None, Some("8080"), "80", "tcp")])
        );
        assert_eq!(
            one("127.0.0.1:8080:80/udp"),
            Some(vec![mapping(Some("127.0.0.1"), Some("8080"), "80", "udp")])
        );
        assert_eq!(
            one("127.0.0.1::80"),
            Some(vec![mapping(Some("127.0.0.1"), Some(""), "80", "tcp")])
        );
        assert_eq!(
            one("[::1]:8080:80"),
            Some(vec![mapping(Some("::1"), Some("8080"), "80", "tcp")])
        );
        assert_eq!(
            one("9000-9001:8000-8001"),
            Some(vec![
                mapping(None, Some("9000"), "8000", "tcp"),
                mapping(None, Some("9001"), "8001", "tcp"),
            ])
        );
        assert_eq!(
            one("9000-9005:80"),
            Some(vec![mapping(None, Some("9000-9005"), "80", "tcp")])
        );
        for wrong in [
            "http",
            "1:2:3:4",
            "9000-9001:8000-8005",
            "80-70",
            "9001-9000:8000-8001",
            "1-0:0-65535",
        ] {
            assert_eq!(one(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn commands_are_split_as_a_shell_splits_them() {
        assert_eq!(
            words(r#"sh -c "echo 'a b' && sleep 1""#),
            Some(vec![
                "sh".into(),
                "-c".into(),
                "echo 'a b' && sleep 1".into()
            ])
        );
        assert_eq!(words(r#"echo "open"#), None);
        assert_eq!(
            words("redis-server --requirepass #secret"),
            Some(vec![
                "redis-server".into(),
                "--requirepass".into(),
                "#secret".into()
            ])
        );
    }
}
