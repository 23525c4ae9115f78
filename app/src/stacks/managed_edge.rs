//! Slipway's managed edge in a stack's definition: an extra service, `slipway-edge`, that
//! publishes the ports the app services published, each forwarded to the service's current
//! container (the proxy is the workspace's `edge` crate, its image built by
//! `scripts/build-edge`). The services then stay on the stack's network only, and an update
//! replaces them beside the running container and switches the edge, as with a team's own edge.

use super::compose::StackDefinition;
use super::ServiceRole;

/// The extra service's name (shown by `docker compose ps` like any other).
pub const EDGE_SERVICE: &str = "slipway-edge";
/// Ports inside the edge's container: the first published port it takes listens here, the
/// next one above it, and so on.
const FIRST_LISTENER: u16 = 10_000;

/// The edge's image: the one `scripts/build-edge` builds for this version of Slipway.
pub fn image() -> String {
    format!("slipway-edge:{}", env!("CARGO_PKG_VERSION"))
}

/// Whether the definition already has the managed edge in front.
pub fn is_in_front(definition: &StackDefinition) -> bool {
    definition
        .service(EDGE_SERVICE)
        .is_some_and(|service| service.image.as_deref() == Some(image().as_str()))
}

/// Moves the published TCP ports of the app services to the managed edge. A service stays as
/// it is (and is replaced in place by an update) when the file says `behind_edge: false` or
/// when one of its ports is not a plain TCP mapping (UDP, a range, the long syntax).
pub fn put_in_front(definition: &mut StackDefinition) -> Result<(), String> {
    if is_in_front(definition) {
        return Ok(());
    }
    if let Some(own) = definition
        .services
        .iter()
        .find(|s| s.role == ServiceRole::Edge || s.name == EDGE_SERVICE)
    {
        return Err(format!(
            "the stack has its own edge (service {}): the managed edge goes in front of stacks without one",
            own.name
        ));
    }
    let (mut listeners, mut published, mut behind) = (Vec::new(), Vec::new(), Vec::new());
    // The edge reaches each service on a network they share.
    let mut networks: Vec<super::networks::ServiceNetwork> = Vec::new();
    for service in definition
        .services
        .iter_mut()
        // A service on the host's network (or none) is not reachable from the edge's.
        .filter(|s| {
            s.role == ServiceRole::App
                && s.behind_edge
                && !s.ports.is_empty()
                && s.compose.network_mode.is_none()
        })
    {
        let Some(mappings) = service
            .ports
            .iter()
            .map(|port| tcp_mapping(port))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        for (host, target) in mappings {
            let listener = u16::try_from(listeners.len())
                .ok()
                .and_then(|taken| FIRST_LISTENER.checked_add(taken))
                .ok_or("the services publish more ports than the edge can take")?;
            listeners.push(format!("{listener}={}:{target}", service.name));
            let port = match host {
                Some(host) => format!("{host}:{listener}"),
                None => listener.to_string(),
            };
            service
                .published_by_edge
                .get_or_insert_with(|| port.clone());
            published.push(port);
        }
        service.ports.clear();
        service.compose.ports = docker_compose_types::Ports::Short(Vec::new());
        service.upstream = Some("{container}".into());
        behind.push(service.name.clone());
        for network in &service.networks {
            if !networks.iter().any(|seen| seen.key == network.key) {
                networks.push(super::networks::ServiceNetwork {
                    aliases: Vec::new(),
                    ipv4_address: None,
                    ..network.clone()
                });
            }
        }
    }
    if behind.is_empty() {
        return Err("no app service publishes a TCP port for the edge to take over".into());
    }
    let compose: docker_compose_types::Service = serde_json::from_value(serde_json::json!({
        "image": image(),
        "ports": published,
        "environment": [format!("SLIPWAY_EDGE_LISTENERS={}", listeners.join(","))],
        "depends_on": behind,
        "restart": "unless-stopped",
        "healthcheck": {
            "test": ["CMD", "/slipway-edge", "health"],
            "interval": "1s",
            "timeout": "3s",
            "retries": 30,
        },
    }))
    .map_err(|error| format!("the edge's definition: {error}"))?;
    let mut edge = super::compose::service_definition(EDGE_SERVICE, compose, None)
        .map_err(|(field, message)| format!("the edge's {field}: {message}"))?;
    edge.role = ServiceRole::Edge;
    edge.role_declared = true;
    edge.networks = networks;
    edge.switch = Some(
        ["/slipway-edge", "route", "{service}", "{upstream}"]
            .map(str::to_owned)
            .to_vec(),
    );
    definition.services.push(edge);
    Ok(())
}

/// `[IP:]HOST_PORT:CONTAINER_PORT[/tcp]` or `CONTAINER_PORT` as (what goes before the
/// container port, the container port); `None` for UDP and ranges.
fn tcp_mapping(port: &str) -> Option<(Option<String>, u16)> {
    let (ip, host_port, target) = super::container::single_tcp_port(port)?;
    let ip = ip.map(|ip| {
        if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        }
    });
    let host = match (ip, host_port) {
        (Some(ip), host_port) => Some(format!("{ip}:{}", host_port.unwrap_or_default())),
        (None, host_port) => host_port,
    };
    Some((host, target))
}

#[cfg(test)]
mod tests {
    use compose_lens::interpolation::MapEnvironment;

    use super::*;

    fn parsed(text: &str) -> Result<StackDefinition, String> {
        super::super::compose::parse(
            std::path::Path::new("docker-compose.yml"),
            text,
            &MapEnvironment::new(),
        )
        .map_err(|error| error.to_string())
    }

    #[test]
    fn the_edge_takes_the_published_tcp_ports_of_the_app_services() {
        let definition = parsed(
            "services:
  web:
    image: web
    ports: [\"127.0.0.1:8080:3000\", \"8443:3443\"]
  api:
    image: api
    ports: [\"9000\"]
  dns:
    image: dns
    ports: [\"53:53/udp\"]
  mail:
    image: mail
    ports: [\"127.0.0.1:2525:25\"]
    x-slipway: { behind_edge: false }
  db:
    image: postgres:16
    ports: [\"127.0.0.1:5432:5432\"]
x-slipway:
  edge: managed
",
        )
        .unwrap();
        let edge = definition.service(EDGE_SERVICE).unwrap();
        assert_eq!(edge.role, ServiceRole::Edge);
        assert_eq!(
            edge.ports,
            ["127.0.0.1:8080:10000", "8443:10001", "10002"],
            "each port the edge took is published where the service published it"
        );
        assert_eq!(
            super::super::lifecycle::environment_lines(&edge.compose),
            ["SLIPWAY_EDGE_LISTENERS=10000=web:3000,10001=web:3443,10002=api:9000"]
        );
        assert_eq!(edge.depends_on, ["web", "api"]);
        let web = definition.service("web").unwrap();
        assert!(web.ports.is_empty() && web.upstream.as_deref() == Some("{container}"));
        assert_eq!(
            web.published_by_edge.as_deref(),
            Some("127.0.0.1:8080:10000")
        );
        for kept in ["dns", "mail", "db"] {
            let service = definition.service(kept).unwrap();
            assert!(
                !service.ports.is_empty() && service.upstream.is_none(),
                "{kept} keeps its ports"
            );
        }
    }

    #[test]
    fn the_edge_is_refused_where_it_cannot_go_in_front() {
        let own_edge = parsed(
            "services:
  web: { image: web, ports: [\"8080:80\"] }
  proxy: { image: nginx, x-slipway: { role: edge } }
x-slipway: { edge: managed }
",
        )
        .unwrap_err();
        assert!(
            own_edge.contains("x-slipway.edge")
                && own_edge.contains("its own edge (service proxy)"),
            "{own_edge}"
        );
        let nothing = parsed(
            "services:
  worker: { image: worker }
x-slipway: { edge: managed }
",
        )
        .unwrap_err();
        assert!(nothing.contains("no app service publishes"), "{nothing}");
        let unknown = parsed(
            "services:
  web: { image: web }
x-slipway: { edge: traefik }
",
        )
        .unwrap_err();
        assert!(
            unknown.contains("managed (Slipway's edge in front) or none"),
            "{unknown}"
        );
    }
}
