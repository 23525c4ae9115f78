//! What the console checks on a stack — each long-running service's container, a PostgreSQL
//! service's database and a Redis service's server from inside their containers, and the
//! HTTP probes its compose file names — and each check's verdict with its evidence.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::stacks::compose::{Probe, ServiceDefinition, StackDefinition};
use crate::stacks::{ContainerStatus, ServiceRole};

/// The probe every long-running service has.
pub const CONTAINER: &str = "container";
/// An in-container check (psql, redis-cli) never takes longer than this.
const EXEC_WITHIN: Duration = Duration::from_secs(5);
/// More connections in use than this share of `max_connections` fails the check.
const CONNECTIONS_AT_MOST: f64 = 0.9;
/// A body is read this far at most: enough for any health answer, bounded for one that is not.
const BODY_AT_MOST: usize = 1024 * 1024;
/// How much of an answer's body the evidence keeps.
const EXCERPT: usize = 300;
/// Evidence is never longer than this.
const DETAIL_AT_MOST: usize = 1000;

/// One check of one service.
#[derive(Clone, Debug)]
pub struct Target {
    pub service: String,
    /// `container`, or `http PATH`.
    pub name: String,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Container,
    /// A PostgreSQL service (`x-slipway.backup: pg_dump`): ready, connections in use against
    /// `max_connections`, the migration head when the stack names its migrations table.
    Postgres,
    /// A Redis service (its image is `redis…`): `PING`, memory in use.
    Redis,
    /// The URL the console requests, or why it has none.
    Http(Result<String, String>, Probe),
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub latency_ms: i64,
    /// The reason or the evidence: the answer's status and the start of its body, the
    /// container's state.
    pub detail: String,
}

impl Verdict {
    pub fn failed(detail: impl Into<String>, latency_ms: i64) -> Self {
        Self {
            ok: false,
            latency_ms,
            detail: detail.into(),
        }
    }
}

/// The checks of a stack: a container check for every service that runs (jobs exit by
/// design), then each HTTP probe in the file's order.
pub fn targets(definition: &StackDefinition, secrets: &[String]) -> Vec<Target> {
    let mut targets = Vec::new();
    for service in &definition.services {
        if service.role == ServiceRole::Job {
            continue;
        }
        targets.push(Target {
            service: service.name.clone(),
            name: CONTAINER.to_owned(),
            kind: Kind::Container,
        });
        if service.backup.as_deref() == Some("pg_dump") {
            targets.push(Target {
                service: service.name.clone(),
                name: "postgres".to_owned(),
                kind: Kind::Postgres,
            });
        } else if is_redis(service) {
            targets.push(Target {
                service: service.name.clone(),
                name: "redis".to_owned(),
                kind: Kind::Redis,
            });
        }
        for probe in &service.probes {
            targets.push(Target {
                service: service.name.clone(),
                // A URL may carry a secret the file interpolated: the name never shows it.
                name: crate::store::printable(&crate::stacks::secrets::redact(
                    &format!("http {}", crate::store::redact_url(&probe.http)),
                    secrets,
                )),
                kind: Kind::Http(url_of(definition, service, &probe.http), probe.clone()),
            });
        }
    }
    targets
}

/// Where the console requests a probe's path: through the stack's edge (see
/// [`crate::runs::probe::edge_base`]), else on a port the service publishes itself.
fn url_of(
    definition: &StackDefinition,
    service: &ServiceDefinition,
    path: &str,
) -> Result<String, String> {
    if path.starts_with("http://") || path.starts_with("https://") {
        return Ok(path.to_owned());
    }
    if let Some((base, _)) = crate::runs::probe::edge_base(definition, service) {
        return Ok(format!("{base}{path}"));
    }
    service
        .ports
        .iter()
        .find_map(|port| crate::runs::probe::published_address(port))
        .map(|address| format!("http://{address}{path}"))
        .ok_or_else(|| {
            format!(
                "the console cannot reach {}: no edge routes to it (x-slipway.via_edge) and it \
                 publishes no TCP port",
                service.name
            )
        })
}

/// Evidence as it is kept and shown: the stack's secrets masked, control characters shown as
/// `\u{fffd}`, at most [`DETAIL_AT_MOST`] characters.
pub fn stored(detail: &str, secrets: &[String]) -> String {
    crate::store::printable(&crate::stacks::secrets::redact(detail, secrets))
        .chars()
        .take(DETAIL_AT_MOST)
        .collect()
}

/// Whether the service runs Redis: its image's name (without registry, path and tag) ends
/// with the word `redis` — `redis:7`, `bitnami/redis`, `acme-cache-redis` — or is Redis
/// Stack; `redis_exporter` or `redis-commander` are not Redis.
fn is_redis(service: &ServiceDefinition) -> bool {
    service.image.as_deref().is_some_and(|image| {
        let name = image.rsplit('/').next().unwrap_or(image);
        let name = name.split([':', '@']).next().unwrap_or(name);
        name.rsplit(['-', '_', '.']).next() == Some("redis") || name.starts_with("redis-stack")
    })
}

/// The running container of `service` in `containers`, for the checks made inside it.
pub fn running_of<'a>(
    service: &str,
    containers: &'a [ContainerStatus],
) -> Option<&'a ContainerStatus> {
    containers
        .iter()
        .find(|c| c.service == service && c.state == "running")
}

/// The PostgreSQL check, inside the service's running container: the server answers a query,
/// fewer than 90 % of `max_connections` are in use, and (when the stack names its migrations
/// table) the newest migration recorded.
pub async fn postgres_verdict(
    engine: &crate::stacks::engine::Engine,
    container: Option<&ContainerStatus>,
    definition: &StackDefinition,
) -> Verdict {
    let Some(container) = container else {
        return Verdict::failed("no running container to ask", 0);
    };
    let asked = within_exec(async {
        // One statement: psql before 15 prints only the last result of several.
        let counts = crate::stacks::lifecycle::psql(
            engine,
            &container.id,
            "SELECT count(*), current_setting($$max_connections$$) FROM pg_stat_activity",
        )
        .await?;
        // The head says what is applied; a database not migrated yet is no less ready.
        let head = crate::stacks::lifecycle::migration_head(engine, &container.id, definition)
            .await
            .map(|head| head.unwrap_or_else(|reason| format!("unknown ({reason})")));
        Ok((counts, head))
    })
    .await;
    let ((counts, head), latency_ms) = match asked {
        Ok(answer) => answer,
        Err(failed) => return failed,
    };
    let numbers: Vec<f64> = counts
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    let [used, most] = numbers[..] else {
        return Verdict::failed(format!("unexpected answer: {}", counts.trim()), latency_ms);
    };
    let connections = format!("{used} of {most} connections in use");
    let head = head.map_or(String::new(), |head| format!("; migration head {head}"));
    if used > most * CONNECTIONS_AT_MOST {
        return Verdict::failed(format!("{connections}: over 90 %{head}"), latency_ms);
    }
    Verdict {
        ok: true,
        latency_ms,
        detail: format!("ready: {connections}{head}"),
    }
}

/// The Redis check, inside the service's running container: `PING` answers `PONG`, and the
/// memory in use is said (against `maxmemory` when one is set).
pub async fn redis_verdict(
    engine: &crate::stacks::engine::Engine,
    container: Option<&ContainerStatus>,
) -> Verdict {
    let Some(container) = container else {
        return Verdict::failed("no running container to ask", 0);
    };
    let cli = |args: &[&str]| {
        let command = std::iter::once("redis-cli")
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect();
        engine.exec_status(&container.id, command)
    };
    let asked = within_exec(async {
        let ping = cli(&["PING"]).await.map_err(|error| error.to_string())?;
        let memory = cli(&["INFO", "memory"])
            .await
            .map_err(|error| error.to_string())?;
        Ok((ping, memory))
    })
    .await;
    let (((code, ping), (_, memory)), latency_ms) = match asked {
        Ok(answer) => answer,
        Err(failed) => return failed,
    };
    // A server with a password answers, but only to whoever has it: up, memory unread.
    if ping.trim_start().starts_with("NOAUTH") {
        return Verdict {
            ok: true,
            latency_ms,
            detail: "answers (a password is set: memory not read)".to_owned(),
        };
    }
    if code != 0 || ping.trim() != "PONG" {
        let answer: String = ping.trim().chars().take(EXCERPT).collect();
        return Verdict::failed(format!("PING answered {answer:?}"), latency_ms);
    }
    let field = |name: &str| {
        memory
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    };
    let used = field("used_memory_human").unwrap_or_else(|| "?".into());
    let limit = match field("maxmemory_human").as_deref() {
        None | Some("0B") => String::new(),
        Some(limit) => format!(" of {limit}"),
    };
    Verdict {
        ok: true,
        latency_ms,
        detail: format!("PONG; {used}{limit} memory in use"),
    }
}

/// A question asked inside a container, within [`EXEC_WITHIN`]: its answer and how long it
/// took, or the failed verdict that says why there is none.
async fn within_exec<T>(
    question: impl std::future::Future<Output = Result<T, String>>,
) -> Result<(T, i64), Verdict> {
    let started = Instant::now();
    let asked = tokio::time::timeout(EXEC_WITHIN, question).await;
    let latency_ms = elapsed_ms(started);
    match asked {
        Err(_) => Err(Verdict::failed(
            format!("no answer within {}", shown(EXEC_WITHIN)),
            latency_ms,
        )),
        Ok(Err(reason)) => Err(Verdict::failed(reason, latency_ms)),
        Ok(Ok(answer)) => Ok((answer, latency_ms)),
    }
}

/// The container check: at least one container of the service runs, none that runs is
/// unhealthy by its Docker healthcheck, and none restarted since the last look
/// (`restarts_before`, by container id).
pub fn container_verdict(
    service: &str,
    containers: &[ContainerStatus],
    restarts_before: &BTreeMap<String, i64>,
) -> Verdict {
    let mine: Vec<&ContainerStatus> = containers.iter().filter(|c| c.service == service).collect();
    let running: Vec<&&ContainerStatus> = mine.iter().filter(|c| c.state == "running").collect();
    if running.is_empty() {
        return Verdict::failed(
            match mine.first() {
                None => "no container".to_owned(),
                Some(container) => format!("{} is {}", container.name, container.state),
            },
            0,
        );
    }
    for container in &running {
        if container.health == "unhealthy" {
            return Verdict::failed(
                format!("{} is unhealthy by its Docker healthcheck", container.name),
                0,
            );
        }
        if let Some(before) = restarts_before.get(&container.id) {
            if container.restarts > *before {
                return Verdict::failed(
                    format!(
                        "{} restarted ({before} → {} restarts)",
                        container.name, container.restarts
                    ),
                    0,
                );
            }
        }
    }
    let shown: Vec<String> = running
        .iter()
        .map(|c| match c.health.as_str() {
            "none" => format!("{} running", c.name),
            health => format!("{} running ({health})", c.name),
        })
        .collect();
    Verdict {
        ok: true,
        latency_ms: 0,
        detail: shown.join(", "),
    }
}

/// Requests `url` and judges the answer by the probe: its status (any 2xx by default), the
/// text it must contain, its JSON fields, and its time (`within`, which is also the timeout).
/// Never longer than `within`, never more than [`BODY_AT_MOST`] of the body in memory.
pub async fn http_verdict(
    client: &reqwest::Client,
    url: &str,
    probe: &Probe,
    secrets: &[String],
) -> Verdict {
    let within = probe.within();
    let started = Instant::now();
    let answer = tokio::time::timeout(within, answer(client, url)).await;
    let latency_ms = elapsed_ms(started);
    let (status, body, cut) = match answer {
        Err(_) => {
            return Verdict::failed(format!("no answer within {}", shown(within)), latency_ms)
        }
        Ok(Err(reason)) => return Verdict::failed(reason, latency_ms),
        Ok(Ok(answer)) => answer,
    };
    let text = String::from_utf8_lossy(&body);
    // Masked whole, then cut: a secret across the cut would otherwise show its start.
    let masked = crate::stacks::secrets::redact(&text, secrets);
    let excerpt: String = masked.chars().take(EXCERPT).collect();
    let evidence = format!(
        "{status} in {latency_ms} ms: {}{}",
        excerpt.trim(),
        if masked.chars().nth(EXCERPT).is_some() || cut {
            " …"
        } else {
            ""
        }
    );
    let status_ok = match probe.status {
        Some(expected) => status.as_u16() == expected,
        None => status.is_success(),
    };
    if !status_ok {
        let expected = probe
            .status
            .map_or("a 2xx status".to_owned(), |s| format!("status {s}"));
        return Verdict::failed(format!("expected {expected}; {evidence}"), latency_ms);
    }
    if let Some(wanted) = &probe.contains {
        if !text.contains(wanted.as_str()) {
            return Verdict::failed(
                format!("the answer does not contain {wanted:?}; {evidence}"),
                latency_ms,
            );
        }
    }
    if !probe.json.is_empty() {
        if cut {
            return Verdict::failed(
                format!(
                    "the answer is larger than {} KiB; {evidence}",
                    BODY_AT_MOST / 1024
                ),
                latency_ms,
            );
        }
        let document: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(document) => document,
            Err(_) => {
                return Verdict::failed(format!("the answer is not JSON; {evidence}"), latency_ms)
            }
        };
        for (path, expected) in &probe.json {
            match field(&document, path) {
                None => {
                    return Verdict::failed(
                        format!("the answer has no field {path}; {evidence}"),
                        latency_ms,
                    )
                }
                Some(found) if !equals(found, expected) => {
                    let found: String = found.to_string().chars().take(EXCERPT).collect();
                    return Verdict::failed(
                        format!("{path} is {found}, expected {expected:?}; {evidence}"),
                        latency_ms,
                    );
                }
                Some(_) => {}
            }
        }
    }
    Verdict {
        ok: true,
        latency_ms,
        detail: evidence,
    }
}

/// The answer's status and at most [`BODY_AT_MOST`] of its body, and whether it was cut.
async fn answer(
    client: &reqwest::Client,
    url: &str,
) -> Result<(reqwest::StatusCode, Vec<u8>, bool), String> {
    let mut response = client.get(url).send().await.map_err(transport_reason)?;
    let status = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = BODY_AT_MOST - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return Ok((status, body, true));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok((status, body, false)),
            Err(error) => return Err(format!("{status}, then {}", transport_reason(error))),
        }
    }
}

/// Why a request failed, with its causes and without its URL (the page shows the URL beside
/// it, never a credential in it).
fn transport_reason(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    reason
}

/// The value at `.a.b.c` (a leading dot is optional; `[N]` is not supported, a number
/// segment indexes an array).
fn field<'a>(document: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|segment| !segment.is_empty())
        .try_fold(document, |value, segment| match value {
            serde_json::Value::Object(map) => map.get(segment),
            serde_json::Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
            _ => None,
        })
}

/// A string field equals the text; any other value equals the text read as JSON (`true`, `3`).
fn equals(found: &serde_json::Value, expected: &str) -> bool {
    match found {
        serde_json::Value::String(text) => text == expected,
        other => {
            serde_json::from_str::<serde_json::Value>(expected).is_ok_and(|value| value == *other)
        }
    }
}

fn elapsed_ms(since: Instant) -> i64 {
    i64::try_from(since.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn shown(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(service: &str, state: &str, health: &str, restarts: i64) -> ContainerStatus {
        ContainerStatus {
            service: service.into(),
            name: format!("p-{service}-1"),
            id: format!("id-{service}"),
            state: state.into(),
            health: health.into(),
            image: String::new(),
            image_id: String::new(),
            ports: vec![],
            started_at: None,
            restarts,
            created_unix: 0,
            config_hash: String::new(),
        }
    }

    #[test]
    fn a_container_passes_while_it_runs_healthy_without_restarting() {
        let none = BTreeMap::new();
        let running = [container("web", "running", "healthy", 2)];
        let verdict = container_verdict("web", &running, &none);
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(verdict.detail, "p-web-1 running (healthy)");
        assert_eq!(
            container_verdict("db", &running, &none).detail,
            "no container"
        );
        let stopped = [container("web", "exited", "none", 0)];
        assert_eq!(
            container_verdict("web", &stopped, &none).detail,
            "p-web-1 is exited"
        );
        let sick = [container("web", "running", "unhealthy", 0)];
        assert!(!container_verdict("web", &sick, &none).ok);
        let before = BTreeMap::from([("id-web".to_owned(), 1)]);
        let verdict = container_verdict("web", &running, &before);
        assert!(!verdict.ok);
        assert_eq!(verdict.detail, "p-web-1 restarted (1 → 2 restarts)");
        // During an update the old container may be stopped beside the running new one.
        let replaced = [
            container("web", "exited", "none", 0),
            container("web", "running", "none", 0),
        ];
        assert!(container_verdict("web", &replaced, &none).ok);
    }

    #[test]
    fn json_fields_are_found_by_path_and_compared_as_text() {
        let document = serde_json::json!({
            "services": { "salesforce": "ok", "workers": 3, "up": true },
            "list": ["a", "b"]
        });
        assert!(equals(
            field(&document, ".services.salesforce").unwrap(),
            "ok"
        ));
        assert!(equals(field(&document, "services.workers").unwrap(), "3"));
        assert!(equals(field(&document, ".services.up").unwrap(), "true"));
        assert!(equals(field(&document, ".list.1").unwrap(), "b"));
        assert!(field(&document, ".services.whmcs").is_none());
        assert!(field(&document, ".services.salesforce.deeper").is_none());
        assert!(!equals(field(&document, ".services.up").unwrap(), "yes"));
    }
}
