//! The networks of a stack as Compose makes them: `PROJECT_default` for services that name
//! none, `PROJECT_KEY` for each network the file declares (or its `name:`; an external one
//! must exist), each service on its networks with its aliases and fixed addresses.

use std::collections::HashMap;

use bollard::models::{EndpointIpamConfig, EndpointSettings};
use docker_compose_types::{
    AdvancedNetworkSettings, ComposeNetwork, MapOrEmpty, NetworkSettings, Networks, Service,
};

use super::compose::ServiceDefinition;

/// The network services are on when they name none.
pub const DEFAULT: &str = "default";

/// One network a service is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceNetwork {
    /// The name the file uses for it.
    pub key: String,
    /// The engine's name when it is not `PROJECT_KEY` (`name:`, or an external network).
    pub fixed_name: Option<String>,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
}

impl ServiceNetwork {
    pub fn engine_name(&self, project: &str) -> String {
        self.fixed_name
            .clone()
            .unwrap_or_else(|| format!("{project}_{}", self.key))
    }

    /// How the service's container joins it: the service's name and its aliases answer there.
    pub fn endpoint(&self, service: &str) -> EndpointSettings {
        let mut aliases = vec![service.to_owned()];
        aliases.extend(self.aliases.iter().cloned());
        EndpointSettings {
            aliases: Some(aliases),
            ipam_config: self
                .ipv4_address
                .as_ref()
                .map(|address| EndpointIpamConfig {
                    ipv4_address: Some(address.clone()),
                    ..Default::default()
                }),
            ..Default::default()
        }
    }
}

/// A network the file declares at the top level, as the engine should have it.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkDefinition {
    pub key: String,
    pub settings: NetworkSettings,
}

impl NetworkDefinition {
    /// The external network's engine name, when it is one.
    pub fn external_name(&self) -> Option<String> {
        match &self.settings.external {
            Some(ComposeNetwork::Bool(true)) => Some(
                self.settings
                    .name
                    .clone()
                    .unwrap_or_else(|| self.key.clone()),
            ),
            Some(ComposeNetwork::Detailed(details)) => Some(details.name.clone()),
            _ => None,
        }
    }
}

/// The top-level networks of a file.
pub fn declared(networks: &docker_compose_types::ComposeNetworks) -> Vec<NetworkDefinition> {
    networks
        .0
        .iter()
        .map(|(key, settings)| NetworkDefinition {
            key: key.clone(),
            settings: match settings {
                MapOrEmpty::Map(settings) => settings.clone(),
                MapOrEmpty::Empty => NetworkSettings::default(),
            },
        })
        .collect()
}

/// The networks a service is on, in the file's order (`default` when it names none); an
/// undeclared one is refused with its name.
pub fn of_service(
    service: &Service,
    declared: &[NetworkDefinition],
) -> Result<Vec<ServiceNetwork>, String> {
    let named: Vec<(String, AdvancedNetworkSettings)> = match &service.networks {
        Networks::Simple(keys) => keys
            .iter()
            .map(|key| (key.clone(), AdvancedNetworkSettings::default()))
            .collect(),
        Networks::Advanced(map) => map
            .0
            .iter()
            .map(|(key, settings)| {
                let settings = match settings {
                    MapOrEmpty::Map(settings) => settings.clone(),
                    MapOrEmpty::Empty => AdvancedNetworkSettings::default(),
                };
                (key.clone(), settings)
            })
            .collect(),
    };
    // By name, as Compose orders them: the first is the one the container is made on.
    let mut named = if named.is_empty() {
        vec![(DEFAULT.to_owned(), AdvancedNetworkSettings::default())]
    } else {
        named
    };
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
        .into_iter()
        .map(|(key, settings)| {
            let declaration = declared.iter().find(|network| network.key == key);
            if declaration.is_none() && key != DEFAULT {
                return Err(format!(
                    "there is no network {key:?} under the top-level networks"
                ));
            }
            let fixed_name = declaration.and_then(|network| {
                network
                    .external_name()
                    .or_else(|| network.settings.name.clone())
            });
            // The name goes into the engine's URLs: a plain network name only.
            if let Some(name) = &fixed_name {
                let plain = name.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                if !plain {
                    return Err(format!("{name:?} is not a network name"));
                }
            }
            if settings.ipv6_address.is_some() {
                return Err(format!("{key}.ipv6_address is not applied yet"));
            }
            if let Some(settings) = declaration.map(|network| &network.settings) {
                if settings.enable_ipv6 {
                    return Err(format!("networks.{key}.enable_ipv6 is not applied yet"));
                }
                if settings
                    .ipam
                    .as_ref()
                    .is_some_and(|ipam| ipam.driver.is_some())
                {
                    return Err(format!("networks.{key}.ipam.driver is not applied yet"));
                }
            }
            Ok(ServiceNetwork {
                key,
                fixed_name,
                aliases: settings.aliases,
                ipv4_address: settings.ipv4_address,
            })
        })
        .collect()
}

/// The settings the engine's network gets for a declared network: driver (bridge unless
/// given), its options, internal, address ranges, labels.
pub fn create_request(
    project: &str,
    network: &ServiceNetwork,
    declared: Option<&NetworkDefinition>,
) -> bollard::models::NetworkCreateRequest {
    let settings = declared.map(|network| &network.settings);
    let mut labels: HashMap<String, String> = match settings.map(|s| &s.labels) {
        Some(docker_compose_types::Labels::List(items)) => items
            .iter()
            .map(|item| {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect(),
        Some(docker_compose_types::Labels::Map(map)) => {
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        None => HashMap::new(),
    };
    labels.insert(super::engine::PROJECT_LABEL.to_owned(), project.to_owned());
    labels.insert("com.docker.compose.network".to_owned(), network.key.clone());
    let subnets: Vec<bollard::models::IpamConfig> = settings
        .and_then(|settings| settings.ipam.as_ref())
        .map(|ipam| {
            ipam.config
                .iter()
                .map(|config| bollard::models::IpamConfig {
                    subnet: Some(config.subnet.clone()),
                    gateway: config.gateway.clone(),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default();
    let options: HashMap<String, String> = settings
        .map(|settings| {
            settings
                .driver_opts
                .iter()
                .map(|(key, value)| {
                    (
                        key.clone(),
                        value.as_ref().map(ToString::to_string).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    bollard::models::NetworkCreateRequest {
        name: network.engine_name(project),
        driver: Some(
            settings
                .and_then(|settings| settings.driver.clone())
                .unwrap_or_else(|| "bridge".into()),
        ),
        internal: settings
            .map(|settings| settings.internal)
            .filter(|internal| *internal),
        options: (!options.is_empty()).then_some(options),
        ipam: (!subnets.is_empty()).then(|| bollard::models::Ipam {
            config: Some(subnets),
            ..Default::default()
        }),
        labels: Some(labels),
        ..Default::default()
    }
}

/// The service's networks after the first (the container is created on the first).
pub fn others(service: &ServiceDefinition) -> &[ServiceNetwork] {
    service.networks.get(1..).unwrap_or_default()
}
