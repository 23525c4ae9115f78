//! Which fields of a compose file's service Slipway applies, and why it refuses the others:
//! a field it would silently drop would start something other than what `docker compose up`
//! starts, so a file that uses one is refused when the stack is added, by name.

use serde_norway::Value;

/// Fields applied to the container exactly as Compose applies them.
const APPLIED: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "volumes",
    "tmpfs",
    "depends_on",
    "healthcheck",
    "restart",
    "labels",
    "stop_signal",
    "stop_grace_period",
    "user",
    "working_dir",
    "hostname",
    "domainname",
    "cap_add",
    "cap_drop",
    "privileged",
    "read_only",
    "security_opt",
    "sysctls",
    "ulimits",
    "extra_hosts",
    "dns",
    "dns_opt",
    "init",
    "shm_size",
    "devices",
    "pid",
    "pids_limit",
    "ipc",
    "logging",
    "deploy",
    "mem_limit",
    "mem_reservation",
    "stdin_open",
    "tty",
    "networks",
    "network_mode",
    "profiles",
    "pull_policy",
    "secrets",
    "configs",
    "container_name",
    // Resolved before the fields are checked (see `includes`).
    "extends",
    "platform",
];

/// Fields of the Compose Specification Slipway does not apply, each with the reason.
const REFUSED: &[(&str, &str)] = &[
    (
        "links",
        "links are legacy: services reach each other by name on the stack's network; remove it",
    ),
    (
        "external_links",
        "links are legacy: services reach each other by name on the stack's network; remove it",
    ),
    ("volumes_from", "volumes_from is not applied yet"),
    ("runtime", "another container runtime is not applied yet"),
    ("scale", "one container per service: scale is not applied"),
    (
        "cpus",
        "cpus is not applied yet; use deploy.resources.limits.cpus",
    ),
    ("cpu_shares", "cpu_shares is not applied yet"),
    (
        "cpu_count",
        "CPU settings other than deploy.resources are not applied yet",
    ),
    (
        "cpu_percent",
        "CPU settings other than deploy.resources are not applied yet",
    ),
    (
        "cpu_period",
        "CPU settings other than deploy.resources are not applied yet",
    ),
    (
        "cpu_quota",
        "CPU settings other than deploy.resources are not applied yet",
    ),
    (
        "cpu_rt_runtime",
        "CPU settings other than deploy.resources are not applied yet",
    ),
    (
        "cpu_rt_period",
        "CPU settings other than deploy.resources are not applied yet",
    ),
    (
        "cpuset",
        "CPU settings other than deploy.resources are not applied yet",
    ),
    ("mem_swappiness", "mem_swappiness is not applied yet"),
    ("memswap_limit", "memswap_limit is not applied yet"),
    ("oom_kill_disable", "OOM settings are not applied yet"),
    ("oom_score_adj", "OOM settings are not applied yet"),
    ("blkio_config", "blkio_config is not applied yet"),
    (
        "device_cgroup_rules",
        "device_cgroup_rules is not applied yet",
    ),
    ("cgroup", "cgroup is not applied yet"),
    ("cgroup_parent", "cgroup_parent is not applied yet"),
    ("group_add", "group_add is not applied yet"),
    ("userns_mode", "userns_mode is not applied yet"),
    ("uts", "uts is not applied yet"),
    ("isolation", "isolation is not applied yet"),
    ("mac_address", "mac_address is not applied yet"),
    ("storage_opt", "storage_opt is not applied yet"),
    ("gpus", "GPUs are not applied yet"),
    (
        "credential_spec",
        "credential_spec is for Windows containers",
    ),
    ("annotations", "annotations are not applied yet"),
    ("attach", "attach is not applied yet"),
    (
        "develop",
        "develop (watch) is for `docker compose watch`, not a release console",
    ),
    ("post_start", "lifecycle hooks are not applied yet"),
    ("pre_stop", "lifecycle hooks are not applied yet"),
    ("label_file", "label_file is not applied yet"),
    ("use_api_socket", "use_api_socket is not applied yet"),
    ("provider", "providers are not applied"),
    ("models", "models are not applied"),
    ("net", "`net` is Compose file format 1; use network_mode"),
    ("dns_search", "dns_search is not applied yet"),
    ("volume_driver", "volume_driver is not applied yet"),
    (
        "log_driver",
        "log_driver is Compose file format 1; use logging.driver",
    ),
    (
        "log_opt",
        "log_opt is Compose file format 1; use logging.options",
    ),
];

/// The first field of `service` that Slipway would not apply as Compose does: `(field, why)`.
/// Values of applied fields that cannot be applied are refused here too.
pub fn refused(service: &Value) -> Option<(String, String)> {
    let Value::Mapping(fields) = service else {
        return None;
    };
    for (key, value) in fields {
        let Some(key) = key.as_str() else {
            return Some((format!("{key:?}"), "a field name must be text".into()));
        };
        if key.starts_with("x-") {
            continue;
        }
        if let Some((_, why)) = REFUSED.iter().find(|(name, _)| *name == key) {
            return Some((key.to_owned(), (*why).to_owned()));
        }
        if !APPLIED.contains(&key) {
            return Some((
                key.to_owned(),
                "this is not a field of the Compose Specification".into(),
            ));
        }
        if let Some(why) = refused_value(key, value) {
            return Some((key.to_owned(), why));
        }
    }
    (fields.contains_key("network_mode") && fields.contains_key("networks")).then(|| {
        (
            "networks".to_owned(),
            "network_mode and networks cannot both be set".to_owned(),
        )
    })
}

/// An applied field whose value Slipway cannot apply on one engine.
fn refused_value(key: &str, value: &Value) -> Option<String> {
    match key {
        "network_mode" => {
            let mode = value.as_str().unwrap_or_default();
            (!matches!(mode, "host" | "none" | "bridge")).then(|| {
                format!("{mode:?} is not applied yet: Slipway applies host, none and bridge")
            })
        }
        "deploy" => {
            let Value::Mapping(deploy) = value else {
                return None;
            };
            deploy.iter().find_map(|(key, value)| match key.as_str() {
                Some("resources") => resources_refused(value),
                Some("replicas") if value.as_i64() != Some(1) => Some(
                    "one container per service on a single engine: replicas must be 1".to_owned(),
                ),
                Some("replicas" | "labels") => None,
                Some("restart_policy") => {
                    Some("deploy.restart_policy is not applied yet; use restart".to_owned())
                }
                Some(other) => Some(format!("deploy.{other} is for a swarm, not one engine")),
                None => None,
            })
        }
        "platform" => (!value.as_str().unwrap_or_default().is_empty()).then(|| {
            "another platform is not applied: the engine runs images of its own".to_owned()
        }),
        "pull_policy" => {
            let policy = value.as_str().unwrap_or_default();
            matches!(policy, "always" | "daily" | "weekly")
                .then(|| format!("{policy:?}: Slipway never pulls (no registry is reached); use missing or build"))
        }
        _ => None,
    }
}

/// `deploy.resources`: limits and reservations of CPUs and memory apply; devices do not.
fn resources_refused(resources: &Value) -> Option<String> {
    let Value::Mapping(resources) = resources else {
        return None;
    };
    for (kind, settings) in resources {
        let Value::Mapping(settings) = settings else {
            continue;
        };
        for (name, _) in settings {
            let name = name.as_str().unwrap_or_default();
            let applied = match kind.as_str() {
                Some("limits") => matches!(name, "cpus" | "memory"),
                Some("reservations") => name == "memory",
                _ => false,
            };
            if !applied {
                return Some(format!(
                    "deploy.resources.{}.{name} is not applied yet",
                    kind.as_str().unwrap_or("?")
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Option<(String, String)> {
        refused(&serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn applied_fields_pass_and_others_are_named_with_the_reason() {
        assert_eq!(
            check("image: a\ncap_add: [NET_ADMIN]\ndeploy: { resources: { limits: { memory: 1.5G } } }\nx-custom: 1\nnetworks: [default]\n"),
            None
        );
        let cases = [
            ("image: a\nplatform: linux/arm64\n", "platform"),
            ("image: a\nattach: false\n", "attach"),
            ("image: a\nnetwork_mode: \"service:db\"\n", "network_mode"),
            ("image: a\ndeploy: { replicas: 3 }\n", "deploy"),
            (
                "image: a\ndeploy: { resources: { reservations: { devices: [] } } }\n",
                "deploy",
            ),
            ("image: a\npull_policy: always\n", "pull_policy"),
            (
                "image: a\nnetwork_mode: host\nnetworks: [front]\n",
                "networks",
            ),
            ("image: a\nimagee: typo\n", "imagee"),
        ];
        for (yaml, field) in cases {
            let (named, why) = check(yaml).unwrap_or_else(|| panic!("{yaml} is refused"));
            assert_eq!(named, field, "{yaml}");
            assert!(!why.is_empty());
        }
        assert!(check("image: a\nimagee: typo\n")
            .unwrap()
            .1
            .contains("not a field of the Compose Specification"));
    }
}
