//! Reading a stack's compose file. The YAML is parsed, every string value is interpolated
//! with Compose's rules (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`; compose-lens) from
//! the environment and the env file, and the result is typed by docker-compose-types.
//! Slipway's own per-service settings come from `x-slipway` fields or `slipway.*` labels.
//! Anything Slipway cannot use is an error that names the file, the field or line, and why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use compose_lens::diagnostic::Severity;
use compose_lens::interpolation::{
    interpolate, EnvironmentProvider, InterpolationInput, MapEnvironment,
};
use compose_lens::source::{SourceId, SourceSpan};
use docker_compose_types::{
    Command, Compose, ComposeVolume, DependsOnOptions, ExternalVolume, Labels, Ports, Service,
};
use serde::Deserialize;
use serde_norway::Value;

use super::ServiceRole;

/// A compose file as Slipway understands it, interpolation done.
#[derive(Clone, Debug)]
pub struct StackDefinition {
    /// Services in file order.
    pub services: Vec<ServiceDefinition>,
    /// Named volumes the file declares.
    pub volumes: Vec<VolumeDefinition>,
    /// Variables the file names as feature flags besides `FEATURE_*` (`x-slipway.flags`).
    pub flags: Vec<String>,
    /// The networks the file declares at the top level.
    pub networks: Vec<super::networks::NetworkDefinition>,
    /// Every profile the file's services name, active or not.
    pub profiles: BTreeSet<String>,
}

impl StackDefinition {
    /// The table where the stack's migrations are recorded, if a service names one.
    pub fn migrations_table(&self) -> Option<&str> {
        self.services
            .iter()
            .find_map(|service| service.migrations_table.as_deref())
    }

    pub fn service(&self, name: &str) -> Option<&ServiceDefinition> {
        self.services.iter().find(|service| service.name == name)
    }
}

/// A named volume the file declares at the top level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeDefinition {
    /// The name the file uses for it.
    pub key: String,
    /// The engine's name when it is not `PROJECT_KEY` (`name:`, or an external volume).
    pub fixed_name: Option<String>,
    /// Made outside the stack (`external: true`): Slipway never makes it, and a deploy stops
    /// with the reason when it does not exist.
    pub external: bool,
}

impl VolumeDefinition {
    fn declared(key: &str, settings: &docker_compose_types::MapOrEmpty<ComposeVolume>) -> Self {
        let settings = match settings {
            docker_compose_types::MapOrEmpty::Map(settings) => Some(settings),
            docker_compose_types::MapOrEmpty::Empty => None,
        };
        let external = settings.and_then(|settings| settings.external.as_ref());
        let (external, external_name) = match external {
            Some(ExternalVolume::Bool(external)) => (*external, None),
            // The legacy form `external: { name: N }`.
            Some(ExternalVolume::Name { name }) => (true, Some(name.clone())),
            None => (false, None),
        };
        let name = settings.and_then(|settings| settings.name.clone());
        VolumeDefinition {
            key: key.to_owned(),
            fixed_name: name
                .or(external_name)
                .or_else(|| external.then(|| key.to_owned())),
            external,
        }
    }

    pub fn engine_name(&self, project: &str) -> String {
        self.fixed_name
            .clone()
            .unwrap_or_else(|| format!("{project}_{}", self.key))
    }
}

/// One service and Slipway's settings for it.
#[derive(Clone, Debug)]
pub struct ServiceDefinition {
    pub name: String,
    pub image: Option<String>,
    /// How Slipway builds the service's image, when the file gives a build context.
    pub build: Option<BuildSpec>,
    pub role: ServiceRole,
    /// Whether the file names the role (`x-slipway.role`, a `slipway.role` label); a role
    /// inferred from the image is not written on containers (see `container_body`).
    pub role_declared: bool,
    /// Published ports as written (`127.0.0.1:18080:8080`).
    pub ports: Vec<String>,
    pub depends_on: Vec<String>,
    /// Whether the service has a Docker healthcheck.
    pub has_healthcheck: bool,
    /// The command (in the service's image) that applies migrations.
    pub migrate: Option<Vec<String>>,
    /// How the service's data is backed up (`pg_dump`).
    pub backup: Option<String>,
    pub probes: Vec<Probe>,
    /// Where the edge should send this service's traffic; `{container}` is replaced.
    pub upstream: Option<String>,
    /// The path prefix under which the edge serves this service.
    pub via_edge: Option<String>,
    /// For the edge: the command, run in its container, that switches a service's upstream;
    /// `{service}` and `{upstream}` are replaced.
    pub switch: Option<Vec<String>>,
    /// How long a new container of this service may take to become healthy in an update.
    pub healthy_within: Option<std::time::Duration>,
    /// The table where this service's migrations are recorded, shown after a migrate run.
    pub migrations_table: Option<String>,
    /// The command (in the service's image) that applies one migration's rollback SQL;
    /// `{migration}` is replaced by the migration's name. Slipway then removes its record.
    pub rollback_migration: Option<Vec<String>>,
    /// The command (in the service's image) that prints the pending migrations, one per line.
    pub migrate_status: Option<Vec<String>>,
    /// The command (in a one-off container of the release's image) that must pass before a
    /// release ships: a team's tests, lint or dependency audit.
    pub release_check: Option<Vec<String>>,
    /// The variables its definition interpolates: who must be replaced when one changes.
    pub variables: BTreeSet<String>,
    /// Whether Slipway's managed edge may take this service's published ports
    /// (`x-slipway.behind_edge`, true unless the file says false: a TCP service that is not HTTP).
    pub behind_edge: bool,
    /// Behind the managed edge: the edge's published port that carries this service.
    pub published_by_edge: Option<String>,
    /// The networks the service is on, the first the one its container is made on.
    pub networks: Vec<super::networks::ServiceNetwork>,
    /// The engine's names of the named volumes that are not `PROJECT_KEY`, by key.
    pub fixed_volume_names: BTreeMap<String, String>,
    /// The compose file the service is read from (Compose's `config_files` label).
    pub compose_file: PathBuf,
    /// `pids_limit`, which the typed service has no field for.
    pub pids_limit: Option<i64>,
    /// The whole typed service, for creating its containers.
    pub compose: Service,
}

/// `build:` as Slipway uses it; paths as written, relative to the compose file's folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildSpec {
    pub context: String,
    /// Inside the context; `Dockerfile` when the file names none.
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Labels the built image carries.
    pub labels: BTreeMap<String, String>,
    /// The network the build's RUN instructions use (`host`, `none`, a network's name).
    pub network: Option<String>,
    /// `/dev/shm` of the build's containers, in bytes.
    pub shm_size: Option<i64>,
    /// Images whose layers the build may reuse.
    pub cache_from: Vec<String>,
    pub no_cache: bool,
    /// Pull a newer base image first (needs a registry).
    pub pull: bool,
}

impl ServiceDefinition {
    /// How the service depends on another it names in `depends_on`: its condition
    /// (`service_started` for the list form), `restart` and `required`.
    pub fn dependency(&self, name: &str) -> docker_compose_types::DependsCondition {
        match &self.compose.depends_on {
            DependsOnOptions::Conditional(map) => map.get(name).cloned(),
            DependsOnOptions::Simple(_) => None,
        }
        .unwrap_or_else(|| docker_compose_types::DependsCondition::new("service_started"))
    }

    /// The image the service's containers run: `image:` if given, else the name Compose gives
    /// a built image (`PROJECT_SERVICE`, as Debian's docker-compose names it).
    pub fn image_name(&self, project: &str) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("{project}_{}", self.name))
    }
}

/// An HTTP check that must pass for the service to count as healthy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The path requested on the service, or a whole `http(s)://` URL.
    pub http: String,
    /// JSON fields that must equal these values, e.g. `.services.salesforce: ok`.
    #[serde(default)]
    pub json: BTreeMap<String, String>,
    /// The status the answer must have; any 2xx without one.
    #[serde(default)]
    pub status: Option<u16>,
    /// Text the answer's body must contain.
    #[serde(default)]
    pub contains: Option<String>,
    /// How long the answer may take (`2s`, `500ms`); [`Probe::DEFAULT_WITHIN`] without one.
    #[serde(default)]
    pub within: Option<String>,
}

impl Probe {
    pub const DEFAULT_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

    /// The latency limit, which is also the probe's timeout (checked when the file is read).
    pub fn within(&self) -> std::time::Duration {
        self.within
            .as_deref()
            .and_then(|text| humantime::parse_duration(text).ok())
            .unwrap_or(Self::DEFAULT_WITHIN)
    }
}

/// `x-slipway` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlipwaySettings {
    role: Option<String>,
    migrate: Option<Command>,
    backup: Option<String>,
    #[serde(default)]
    probes: Vec<Probe>,
    upstream: Option<String>,
    via_edge: Option<String>,
    switch: Option<Vec<String>>,
    healthy_within: Option<String>,
    migrations_table: Option<String>,
    rollback_migration: Option<Vec<String>>,
    migrate_status: Option<Vec<String>>,
    release_check: Option<Vec<String>>,
    behind_edge: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}, line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {field}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// Reads and checks a compose file; `env_file` and then the process variables this process
/// may pass on (see [`super::secrets::process_variables`]) supply the variables.
pub fn load(compose_file: &Path, env_file: Option<&Path>) -> Result<StackDefinition, ComposeError> {
    load_with(compose_file, env_file, &[], &[])
}

/// Reads a compose file as [`load`] does, with env-file variables set to other values: the
/// stack as it will be once a flag or a release's settings are written.
pub fn load_with(
    compose_file: &Path,
    env_file: Option<&Path>,
    set: &[(String, String)],
    profiles: &[String],
) -> Result<StackDefinition, ComposeError> {
    let text = read_text(compose_file)?;
    let environment = environment_with(env_file, set)?;
    parse_active(compose_file, &text, &environment, profiles)
}

fn read_text(compose_file: &Path) -> Result<String, ComposeError> {
    read_small(compose_file)
}

/// A compose or env file is text of a few kilobytes: larger than this, it is not one.
const LARGEST_FILE: u64 = 4 * 1024 * 1024;

/// Reads a regular file of at most [`LARGEST_FILE`] bytes: a device, a pipe or a huge file
/// named where a compose or env file belongs is refused, never read without end. A parse
/// that reads it is parsed again only when the text differs (see `parsed`).
pub(super) fn read_small(path: &Path) -> Result<String, ComposeError> {
    let text = read_bounded(path);
    match &text {
        Ok(text) => super::parsed::read(path, text),
        Err(_) => super::parsed::unreadable(),
    }
    text
}

/// [`read_small`], unrecorded.
pub(super) fn read_bounded(path: &Path) -> Result<String, ComposeError> {
    use std::io::Read;
    let refused = |why: &str| ComposeError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::other(why.to_owned()),
    };
    let read = |source| ComposeError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Checked before opening: opening a named pipe would wait for a writer.
    if !std::fs::metadata(path).map_err(read)?.is_file() {
        return Err(refused("not a regular file"));
    }
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    file.take(LARGEST_FILE + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > LARGEST_FILE {
        return Err(refused("larger than 4 MiB"));
    }
    Ok(text)
}

/// The model Slipway runs for the file, as YAML in the long syntax `docker compose config`
/// prints (see [`super::config`]); a file Slipway refuses is refused here with the same
/// reason. `project` names the containers' Compose project.
pub fn config(
    compose_file: &Path,
    env_file: Option<&Path>,
    profiles: &[String],
    project: &str,
    secrets: &[String],
) -> Result<String, ComposeError> {
    // Paths in the model are absolute, as Compose prints them, and as a deploy reads them
    // (`..` taken lexically, symbolic links not followed).
    let compose_file = &std::path::absolute(compose_file).map_err(|source| ComposeError::Read {
        path: compose_file.to_path_buf(),
        source,
    })?;
    let text = read_text(compose_file)?;
    let environment = environment(env_file)?;
    parse_active(compose_file, &text, &environment, profiles)?;
    let document = read_document(compose_file, &text, &environment, profiles)?;
    let dir = compose_file.parent().unwrap_or(Path::new(""));
    let model = super::config::long_form(document.value, dir, project, secrets)
        .map_err(|why| invalid_field(compose_file, "(file)", why))?;
    serde_norway::to_string(&model)
        .map_err(|error| invalid_field(compose_file, "(file)", error.to_string()))
}

/// Where a stack's secrets may be, as the resolved model has them (every profile active):
/// the env files its services read, and the values of their environment, build arguments
/// and labels by name.
pub struct SecretSources {
    pub env_files: Vec<PathBuf>,
    pub values: Vec<(String, String)>,
}

pub fn secret_sources(
    compose_file: &Path,
    env_file: Option<&Path>,
) -> Result<SecretSources, ComposeError> {
    let text = read_text(compose_file)?;
    let environment = environment(env_file)?;
    let active = match read_document(compose_file, &text, &environment, &[]) {
        Ok(active) => active,
        // A file it names that cannot be read: nothing could be masked.
        Err(error @ ComposeError::Read { .. }) => return Err(error),
        // A file that does not read yet (a required variable unset, a refused field) runs
        // nothing, but its lines and checks still show: what it writes is masked as written.
        Err(_) => return written_secret_sources(compose_file, &text),
    };
    let every: Vec<String> = active.profiles.iter().cloned().collect();
    // With every profile, when the services of inactive ones read too; a service of a
    // profile the stack does not use must not stop its runs.
    let document = read_document(compose_file, &text, &environment, &every).unwrap_or(active);
    let mut values = Vec::new();
    let services = document.value.get("services").and_then(Value::as_mapping);
    for service in services.into_iter().flat_map(|services| services.values()) {
        let fields = [
            service.get("environment"),
            service.get("build").and_then(|build| build.get("args")),
            service.get("labels"),
        ];
        for named in fields
            .into_iter()
            .flatten()
            .filter_map(super::includes::as_named)
        {
            values.extend(named.into_iter().filter_map(|(name, value)| {
                let text = match value {
                    Value::String(text) => text,
                    Value::Number(number) => number.to_string(),
                    _ => return None,
                };
                Some((name.as_str()?.to_owned(), text))
            }));
        }
    }
    Ok(SecretSources {
        env_files: document.env_files,
        values,
    })
}

/// Where secrets are in a file that does not read as a model: every `NAME: value` and
/// `NAME=value` it writes, and the env files its services name by a plain path. YAML that
/// does not parse is an error (nothing could be masked).
fn written_secret_sources(compose_file: &Path, text: &str) -> Result<SecretSources, ComposeError> {
    fn walk(value: &Value, values: &mut Vec<(String, String)>) {
        match value {
            Value::Mapping(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        (Some(name), Value::String(text)) => {
                            values.push((name.to_owned(), text.clone()))
                        }
                        (Some(name), Value::Number(number)) => {
                            values.push((name.to_owned(), number.to_string()))
                        }
                        _ => walk(item, values),
                    }
                }
            }
            Value::Sequence(items) => {
                for item in items {
                    match item.as_str().and_then(|text| text.split_once('=')) {
                        Some((name, text)) => values.push((name.to_owned(), text.to_owned())),
                        None => walk(item, values),
                    }
                }
            }
            Value::Tagged(tagged) => walk(&tagged.value, values),
            _ => {}
        }
    }
    let document: Value = serde_norway::from_str(text).map_err(|error| ComposeError::Syntax {
        path: compose_file.to_path_buf(),
        line: error.location().map_or(0, |location| location.line()),
        message: error.to_string(),
    })?;
    let mut values = Vec::new();
    walk(&document, &mut values);
    let dir = compose_file.parent().unwrap_or(Path::new(""));
    let env_files = document
        .get("services")
        .and_then(Value::as_mapping)
        .into_iter()
        .flat_map(|services| services.values())
        .filter_map(|service| env_files(service.get("env_file")).ok())
        .flatten()
        .filter(|(path, _)| !path.contains('$'))
        .map(|(path, _)| PathBuf::from(super::container::host_path(&path, dir)))
        .filter(|path| path.is_file())
        .collect();
    Ok(SecretSources { env_files, values })
}

/// The variables for interpolation: the env file's, then those of the process's that it
/// may pass on, which win as with `docker compose` on the command line.
pub fn environment(env_file: Option<&Path>) -> Result<MapEnvironment, ComposeError> {
    environment_with(env_file, &[])
}

fn environment_with(
    env_file: Option<&Path>,
    set: &[(String, String)],
) -> Result<MapEnvironment, ComposeError> {
    let mut environment = MapEnvironment::new();
    if let Some(path) = env_file {
        for (name, value) in env_file_entries(path)? {
            environment.insert_sensitive(name, value);
        }
    }
    for (name, value) in set {
        environment.insert_sensitive(name.clone(), value.clone());
    }
    for (name, value) in super::secrets::process_variables() {
        environment.insert(name, value);
    }
    Ok(environment)
}

/// Stands for `$` while dotenvy reads a file: its own substitution would read the console's
/// whole process environment (its database address, its settings) into a stack's values.
const DOLLAR: char = '\u{E000}';
/// Stands for an escaped `\$` (a literal dollar) while dotenvy reads a file.
const ESCAPED_DOLLAR: char = '\u{E002}';

/// The env file's variables, in file order. `${VAR}` in a value is taken from the lines
/// before it and from the process variables a stack may read, as Compose does; never from
/// the console's own settings.
pub fn env_file_entries(path: &Path) -> Result<Vec<(String, String)>, ComposeError> {
    let text = read_small(path)?;
    if text.contains([DOLLAR, ESCAPED_DOLLAR]) {
        return Err(ComposeError::Invalid {
            path: path.to_path_buf(),
            field: "(file)".into(),
            message: "the file holds a private-use character Slipway reserves".into(),
        });
    }
    // Values written between single quotes are literal, as with Compose.
    let literal: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, value) = line.split_once('=')?;
            value.trim_start().starts_with('\'').then_some(name.trim())
        })
        .collect();
    let guarded = text
        .replace("\\$", &ESCAPED_DOLLAR.to_string())
        .replace('$', &DOLLAR.to_string());
    let mut known = MapEnvironment::new();
    for (name, value) in super::secrets::process_variables() {
        known.insert(name, value);
    }
    let mut entries = Vec::new();
    for entry in dotenvy::from_read_iter(guarded.as_bytes()) {
        let (name, value) = entry.map_err(|error| env_file_error(path, error, &guarded))?;
        let value = if literal.contains(name.as_str()) {
            value.replace(ESCAPED_DOLLAR, "\\$").replace(DOLLAR, "$")
        } else {
            // `\$` is a dollar sign: `$$` to the interpolation below.
            value.replace(ESCAPED_DOLLAR, "$$").replace(DOLLAR, "$")
        };
        let value = if value.contains('$') && !literal.contains(name.as_str()) {
            substitute(&value, &known)
                .map(|(resolved, _)| resolved)
                .map_err(|message| ComposeError::Invalid {
                    path: path.to_path_buf(),
                    field: name.clone(),
                    message,
                })?
        } else {
            value
        };
        known.insert_sensitive(name.clone(), value.clone());
        entries.push((name, value));
    }
    Ok(entries)
}

/// `text` with Compose's interpolation done, and the names of the variables it read.
fn substitute(text: &str, environment: &MapEnvironment) -> Result<(String, Vec<String>), String> {
    let Some(span) = SourceSpan::new(SourceId::new(1), 0, text.len()) else {
        return Err("the value is too long to read".into());
    };
    let result = interpolate(InterpolationInput::new(text, span), environment);
    if let Some(error) = result
        .diagnostics()
        .iter()
        .find(|diagnostic| diagnostic.severity() == Severity::Error)
    {
        return Err(error.message().to_owned());
    }
    let names = result
        .substitutions()
        .iter()
        .map(|substitution| substitution.name().to_owned())
        .collect();
    Ok((result.resolved().to_owned(), names))
}

/// An env file that cannot be read, named by file and line and never by a value: the
/// parser's own text carries the rest of the file, secrets and all.
fn env_file_error(path: &Path, error: dotenvy::Error, text: &str) -> ComposeError {
    match error {
        dotenvy::Error::Io(source) => ComposeError::Read {
            path: path.to_path_buf(),
            source,
        },
        dotenvy::Error::LineParse(rest, _) => {
            let line = text
                .find(rest.as_str())
                .map_or(0, |at| text[..at].matches('\n').count() + 1);
            // A name only when `NAME=` begins the line: a line with no `=` may be a bare
            // secret, and is never repeated.
            let name = rest
                .lines()
                .next()
                .and_then(|line| line.split_once('='))
                .map(|(name, _)| name.trim())
                .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .filter(|name| !name.is_empty());
            let message = match name {
                Some(name) => format!(
                    "the value of {name} cannot be read (an unclosed quote, or a character \
                     that needs quoting?)"
                ),
                None => "this line is not NAME=VALUE".to_owned(),
            };
            ComposeError::Syntax {
                path: path.to_path_buf(),
                line,
                message,
            }
        }
        _ => ComposeError::Invalid {
            path: path.to_path_buf(),
            field: "env file".into(),
            message: "a value is not valid UTF-8 text or a variable it names is unset".into(),
        },
    }
}

/// Parses compose text with no profile active; `path` only names the file in errors.
pub fn parse(
    path: &Path,
    text: &str,
    environment: &MapEnvironment,
) -> Result<StackDefinition, ComposeError> {
    parse_active(path, text, environment, &[])
}

fn invalid_field(path: &Path, field: &str, message: String) -> ComposeError {
    ComposeError::Invalid {
        path: path.to_path_buf(),
        field: field.to_owned(),
        message,
    }
}

/// The file as Compose reads it before Slipway types it: merge keys expanded, values
/// interpolated, the services of inactive profiles left out, each service's values typed
/// and its environment resolved; with, per service, the variables it reads.
struct Document {
    value: Value,
    uses: BTreeMap<String, BTreeSet<String>>,
    profiles: BTreeSet<String>,
    /// The services' env files that were read.
    env_files: Vec<PathBuf>,
}

fn read_document(
    path: &Path,
    text: &str,
    environment: &MapEnvironment,
    profiles: &[String],
) -> Result<Document, ComposeError> {
    let invalid = |field: &str, message: String| invalid_field(path, field, message);
    let mut uses = BTreeMap::new();
    let mut document = interpolated_file(path, text, environment, &mut uses)?;
    super::includes::resolve(&mut document, path, environment, &mut uses)?;
    // Named volumes are made with the local driver, as PROJECT_NAME or by their `name:`; one
    // an external one names is used as it is.
    if let Some(Value::Mapping(volumes)) = document.get("volumes") {
        for (name, settings) in volumes {
            for field in ["driver", "driver_opts", "labels"] {
                if settings.get(field).is_some() {
                    return Err(invalid(
                        &format!("volumes.{}.{field}", name.as_str().unwrap_or("?")),
                        "not applied yet: Slipway makes named volumes with the local driver and no options".into(),
                    ));
                }
            }
        }
    }
    // As with Compose: profiles named for the stack (`--profile`) win over COMPOSE_PROFILES.
    let from_variables: Vec<String> = match environment.get("COMPOSE_PROFILES") {
        Some(set) if profiles.is_empty() => set
            .value()
            .split(',')
            .map(str::trim)
            .filter(|profile| !profile.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let profiles = if profiles.is_empty() {
        from_variables.as_slice()
    } else {
        profiles
    };
    let mut named_profiles = BTreeSet::new();
    let mut env_files = Vec::new();
    if let Some(services) = document.get_mut("services").and_then(Value::as_mapping_mut) {
        for service in services.values() {
            if let Some(Value::Sequence(listed)) = service.get("profiles") {
                named_profiles.extend(listed.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        // A service with profiles starts only when one of them is active, as with
        // `docker compose --profile P up`.
        services.retain(|_, service| {
            service
                .get("profiles")
                .and_then(Value::as_sequence)
                .is_none_or(|listed| {
                    listed.is_empty()
                        || listed
                            .iter()
                            .filter_map(Value::as_str)
                            .any(|profile| profiles.iter().any(|active| active == profile))
                })
        });
        let dir = path.parent().unwrap_or(Path::new(""));
        for (name, service) in services.iter_mut() {
            let name = name.as_str().unwrap_or("?");
            if let Some((field, why)) = super::fields::refused(service) {
                return Err(invalid(&format!("services.{name}.{field}"), why));
            }
            normalise(service);
            let mut passed = resolve_environment(service, dir, environment, &mut env_files)
                .map_err(|(field, why)| invalid(&format!("services.{name}.{field}"), why))?;
            passed.extend(resolve_build_args(service, environment));
            // A bare name reads the variable as much as `${NAME}` does (flags, releases).
            uses.entry(name.to_owned()).or_default().extend(passed);
        }
    }
    Ok(Document {
        value: document,
        uses,
        profiles: named_profiles,
        env_files,
    })
}

/// A compose file's YAML with merge keys expanded and every value interpolated; `uses`
/// gathers, per service, the variables its values name.
pub(super) fn interpolated_file(
    path: &Path,
    text: &str,
    environment: &MapEnvironment,
    uses: &mut BTreeMap<String, BTreeSet<String>>,
) -> Result<Value, ComposeError> {
    let invalid = |field: &str, message: String| invalid_field(path, field, message);
    let mut document: Value =
        serde_norway::from_str(text).map_err(|error| ComposeError::Syntax {
            path: path.to_path_buf(),
            line: error.location().map_or(0, |location| location.line()),
            message: error.to_string(),
        })?;
    merge_keys(&mut document).map_err(|message| invalid("<<", message))?;
    interpolate_values(&mut document, &mut Vec::new(), environment, uses)
        .map_err(|(field, message)| invalid(&field, message))?;
    Ok(document)
}

/// Parses compose text with the given profiles active.
pub fn parse_active(
    path: &Path,
    text: &str,
    environment: &MapEnvironment,
    profiles: &[String],
) -> Result<StackDefinition, ComposeError> {
    let invalid = |field: &str, message: String| invalid_field(path, field, message);
    let Document {
        value: mut document,
        mut uses,
        profiles: named_profiles,
        ..
    } = read_document(path, text, environment, profiles)?;
    let top_level = |kind: &str| document.get(kind).cloned().unwrap_or(Value::Null);
    let (secrets, configs) = (top_level("secrets"), top_level("configs"));
    let (mut pids_limits, mut builds) = (BTreeMap::new(), BTreeMap::new());
    if let Some(services) = document.get_mut("services").and_then(Value::as_mapping_mut) {
        let dir = path.parent().unwrap_or(Path::new(""));
        for (name, service) in services.iter_mut() {
            let name = name.as_str().unwrap_or("?");
            // The typed model has no place for it (it would take it for an `x-` field).
            if let Some(limit) = service
                .as_mapping_mut()
                .and_then(|s| s.remove("pids_limit"))
            {
                let limit = limit.as_i64().ok_or_else(|| {
                    invalid(
                        &format!("services.{name}.pids_limit"),
                        "a whole number of processes (-1 for no limit)".into(),
                    )
                })?;
                pids_limits.insert(name.to_owned(), limit);
            }
            // Read here, where the fields the typed model lacks (`no_cache`, `pull`) are.
            if let Some(build) = service.as_mapping_mut().and_then(|s| s.remove("build")) {
                let spec = build_spec(build)
                    .map_err(|(field, why)| invalid(&format!("services.{name}.{field}"), why))?;
                builds.insert(name.to_owned(), spec);
            }
            for (kind, definitions) in [("secrets", &secrets), ("configs", &configs)] {
                file_mounts(service, kind, definitions, dir)
                    .map_err(|why| invalid(&format!("services.{name}.{kind}"), why))?;
            }
        }
    }
    // Mounted into the services that name them (above); the typed model has no place for them.
    if let Some(top) = document.as_mapping_mut() {
        top.remove("configs");
    }
    let flags = declared_flags(&document).map_err(|message| invalid("x-slipway.flags", message))?;
    let managed_edge =
        declared_edge(&document).map_err(|message| invalid("x-slipway.edge", message))?;
    let compose: Compose =
        serde_norway::from_value(document).map_err(|error| invalid("(file)", error.to_string()))?;
    if compose.services.0.is_empty() {
        return Err(invalid("services", "the file defines no services".into()));
    }
    let networks = super::networks::declared(&compose.networks);
    let volumes: Vec<VolumeDefinition> = compose
        .volumes
        .0
        .iter()
        .map(|(key, settings)| VolumeDefinition::declared(key, settings))
        .collect();
    let mut services = Vec::new();
    for (name, service) in &compose.services.0 {
        let service = service.clone().unwrap_or_default();
        let build = builds.remove(name.as_str());
        let mut definition = service_definition(name, service, build)
            .map_err(|(field, message)| invalid(&format!("services.{name}.{field}"), message))?;
        definition.variables = uses.remove(name).unwrap_or_default();
        definition.pids_limit = pids_limits.remove(name);
        definition.compose_file = path.to_path_buf();
        definition.fixed_volume_names = volumes
            .iter()
            .filter_map(|volume| Some((volume.key.clone(), volume.fixed_name.clone()?)))
            .collect();
        definition.networks = super::networks::of_service(&definition.compose, &networks)
            .map_err(|why| invalid(&format!("services.{name}.networks"), why))?;
        // What only making the container would find (a port, a size, an unclosed quote) is
        // refused now, when the stack is added.
        if let Err(super::StackError::Compose(said)) = super::container::container_body(
            "check",
            &definition,
            path.parent().unwrap_or(Path::new("")),
        ) {
            let (field, why) = said.split_once(": ").unwrap_or(("(service)", &said));
            return Err(invalid(field, why.to_owned()));
        }
        services.push(definition);
    }
    let names: BTreeSet<String> = services.iter().map(|s| s.name.clone()).collect();
    for service in &mut services {
        // `required: false`: a dependency the file does not define (or an inactive profile
        // leaves out) is not waited for, as Compose.
        let missing: Vec<String> = service
            .depends_on
            .iter()
            .filter(|dependency| !names.contains(*dependency))
            .cloned()
            .collect();
        for dependency in missing {
            if service.dependency(&dependency).required.unwrap_or(true) {
                let inactive = if named_profiles.is_empty() {
                    ""
                } else {
                    " (a service only in a profile that is not active is not defined)"
                };
                return Err(invalid(
                    &format!("services.{}.depends_on", service.name),
                    format!("there is no service {dependency:?}{inactive}"),
                ));
            }
            service.depends_on.retain(|name| *name != dependency);
        }
    }
    // A service others wait for to complete is a one-shot job, unless the file says otherwise.
    let jobs: BTreeSet<String> = services
        .iter()
        .flat_map(|service| {
            service.depends_on.iter().filter(|name| {
                service.dependency(name).condition == "service_completed_successfully"
            })
        })
        .cloned()
        .collect();
    for service in &mut services {
        if jobs.contains(&service.name) && !service.role_declared {
            service.role = ServiceRole::Job;
        }
    }
    let mut definition = StackDefinition {
        services,
        volumes,
        flags,
        networks,
        profiles: named_profiles,
    };
    if managed_edge {
        super::managed_edge::put_in_front(&mut definition)
            .map_err(|message| invalid("x-slipway.edge", message))?;
    }
    Ok(definition)
}

/// Merge keys (`<<: *defaults`, `<<: [*a, *b]`) as YAML 1.1 and Compose read them, also
/// where a merged mapping has merge keys of its own (one level is resolved per pass).
pub(super) fn merge_keys(document: &mut Value) -> Result<(), String> {
    fn has_merge_key(value: &Value) -> bool {
        match value {
            Value::Mapping(mapping) => {
                mapping.contains_key("<<") || mapping.values().any(has_merge_key)
            }
            Value::Sequence(items) => items.iter().any(has_merge_key),
            Value::Tagged(tagged) => has_merge_key(&tagged.value),
            _ => false,
        }
    }
    for _ in 0..16 {
        if !has_merge_key(document) {
            return Ok(());
        }
        document.apply_merge().map_err(|error| error.to_string())?;
    }
    Err("merge keys nest deeper than 16 levels".into())
}

/// Secrets and configs from files, mounted as Compose mounts them on one engine: the file
/// bound read-only at `/run/secrets/NAME` (a secret) or `/NAME` (a config), or at the
/// `target` the service gives. A missing file is refused by the engine when the container is
/// made, never replaced by an empty folder.
fn file_mounts(
    service: &mut Value,
    kind: &str,
    definitions: &Value,
    dir: &Path,
) -> Result<(), String> {
    let Some(fields) = service.as_mapping_mut() else {
        return Ok(());
    };
    let Some(items) = fields.remove(kind) else {
        return Ok(());
    };
    let Value::Sequence(items) = items else {
        return Err("a list of names, or of {source, target}".into());
    };
    let mut mounts = Vec::new();
    for item in items {
        let (name, target) = match &item {
            Value::String(name) => (name.clone(), None),
            Value::Mapping(entry) => (
                entry
                    .get("source")
                    .and_then(Value::as_str)
                    .ok_or("each entry names its source")?
                    .to_owned(),
                entry
                    .get("target")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ),
            _ => return Err("a list of names, or of {source, target}".into()),
        };
        let file = definitions
            .get(&name)
            .ok_or_else(|| format!("{name} is not defined under the top-level {kind}"))?
            .get("file")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                format!("{name}: only {kind} from a file are applied (environment and external ones are not yet)")
            })?;
        // As Compose refuses to start it: a missing file would be an empty folder in the
        // container where the secret should be.
        let source = super::container::host_path(file, dir);
        if !super::parsed::check(Path::is_file, Path::new(&source)) {
            return Err(format!("{name}: the file {file} does not exist"));
        }
        let target = match (kind, target) {
            ("secrets", Some(target)) if !target.starts_with('/') => {
                format!("/run/secrets/{target}")
            }
            (_, Some(target)) => target,
            ("secrets", None) => format!("/run/secrets/{name}"),
            (_, None) => format!("/{name}"),
        };
        let mut mount = serde_norway::Mapping::new();
        for (key, value) in [
            ("type", Value::String("bind".into())),
            ("source", Value::String(source.clone())),
            ("target", Value::String(target)),
            ("read_only", Value::Bool(true)),
        ] {
            mount.insert(Value::String(key.into()), value);
        }
        let mut bind = serde_norway::Mapping::new();
        bind.insert(Value::String("create_host_path".into()), Value::Bool(false));
        mount.insert(Value::String("bind".into()), Value::Mapping(bind));
        mounts.push(Value::Mapping(mount));
    }
    match fields
        .entry(Value::String("volumes".into()))
        .or_insert_with(|| Value::Sequence(Vec::new()))
    {
        Value::Sequence(volumes) => volumes.extend(mounts),
        _ => return Err("the service's volumes must be a list".into()),
    }
    Ok(())
}

/// Values as Compose types them after interpolation: ports and the like written as numbers
/// (`expose: [3306]`) are text; `read_only: ${READONLY}` and `retries: ${RETRIES}` are a
/// boolean and a number once interpolated; an empty `platform` (`${DOCKER_PLATFORM:-}`) is no
/// platform.
fn normalise(service: &mut Value) {
    let Some(fields) = service.as_mapping_mut() else {
        return;
    };
    if fields
        .get("platform")
        .and_then(Value::as_str)
        .is_some_and(str::is_empty)
    {
        fields.remove("platform");
    }
    for flag in [
        "privileged",
        "read_only",
        "init",
        "tty",
        "stdin_open",
        "pids_limit",
    ] {
        as_typed(fields.get_mut(flag));
    }
    if let Some(Value::Mapping(check)) = fields.get_mut("healthcheck") {
        as_typed(check.get_mut("retries"));
        as_typed(check.get_mut("disable"));
    }
    // A label's value written as a number or boolean is its text, as Compose reads it.
    if let Some(Value::Mapping(labels)) = service.get_mut("labels") {
        for (_, value) in labels.iter_mut() {
            match value {
                Value::Number(number) => *value = Value::String(number.to_string()),
                Value::Bool(flag) => *value = Value::String(flag.to_string()),
                _ => {}
            }
        }
    }
    for field in ["ports", "expose", "dns", "cap_add", "cap_drop"] {
        if let Some(Value::Sequence(items)) = service.get_mut(field) {
            for item in items.iter_mut() {
                if let Value::Number(number) = item {
                    *item = Value::String(number.to_string());
                }
            }
        }
    }
}

/// Interpolated text that is a boolean or a whole number, as that value.
fn as_typed(value: Option<&mut Value>) {
    let Some(value) = value else {
        return;
    };
    let Value::String(text) = &*value else {
        return;
    };
    let typed = match text.trim() {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        number => match number.parse::<i64>() {
            Ok(number) => Value::Number(number.into()),
            Err(_) => return,
        },
    };
    *value = typed;
}

/// The service's variables as Compose gives them to its container: each `env_file` read in
/// order (a path, a list of paths, or of `{path, required}`; a missing file with `required:
/// false` is skipped), then `environment` over them, where a name without a value takes the
/// variable's value from the interpolation environment (and is left as the env file has it
/// when it has none). The result replaces both fields as one `environment` map; the names
/// taken from the interpolation environment are returned.
fn resolve_environment(
    service: &mut Value,
    dir: &Path,
    variables: &MapEnvironment,
    read: &mut Vec<PathBuf>,
) -> Result<Vec<String>, (String, String)> {
    let Some(fields) = service.as_mapping_mut() else {
        return Ok(Vec::new());
    };
    let mut passed = Vec::new();
    let mut merged = serde_norway::Mapping::new();
    let env_file = fields.remove("env_file");
    for (file, required) in
        env_files(env_file.as_ref()).map_err(|why| ("env_file".to_owned(), why))?
    {
        let path = PathBuf::from(super::container::host_path(&file, dir));
        if !required && !super::parsed::check(Path::exists, &path) {
            continue;
        }
        let entries =
            env_file_entries(&path).map_err(|error| ("env_file".to_owned(), error.to_string()))?;
        read.push(path);
        for (name, value) in entries {
            merged.insert(Value::String(name), Value::String(value));
        }
    }
    let mut from_variables = |name: &str| {
        passed.push(name.to_owned());
        variables.get(name).map(|value| value.value().to_owned())
    };
    match fields.get("environment") {
        Some(Value::Sequence(items)) => {
            for item in items {
                let Some(item) = item.as_str() else {
                    return Err((
                        "environment".into(),
                        "each item is NAME=VALUE or NAME".into(),
                    ));
                };
                // A bare name that is unset leaves the env file's value (if any), as Compose.
                let (name, value) = match item.split_once('=') {
                    Some((name, value)) => (name, Some(value.to_owned())),
                    None => (item, from_variables(item)),
                };
                if let Some(value) = value {
                    merged.insert(Value::String(name.into()), Value::String(value));
                }
            }
        }
        Some(Value::Mapping(map)) => {
            for (name, value) in map {
                let Some(name) = name.as_str() else {
                    return Err((
                        "environment".into(),
                        "a variable's name must be text".into(),
                    ));
                };
                let value = match value {
                    Value::Null => from_variables(name),
                    Value::String(text) => Some(text.clone()),
                    // 17.0 is written 17, as before.
                    Value::Number(number) => Some(match number.as_f64() {
                        Some(float) if !number.is_i64() && !number.is_u64() => float.to_string(),
                        _ => number.to_string(),
                    }),
                    Value::Bool(flag) => Some(flag.to_string()),
                    _ => {
                        return Err((
                            format!("environment.{name}"),
                            "a value is text, a number or true/false".into(),
                        ))
                    }
                };
                if let Some(value) = value {
                    merged.insert(Value::String(name.into()), Value::String(value));
                }
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => {
            return Err((
                "environment".into(),
                "a list of NAME=VALUE or a map of names to values".into(),
            ))
        }
    }
    if env_file.is_some() || fields.contains_key("environment") {
        fields.insert(Value::String("environment".into()), Value::Mapping(merged));
    }
    Ok(passed)
}

/// Build arguments given by name only (`args: [SENTRY_IMAGE]`) take the variable's value, as
/// Compose passes them; one that is unset is not passed (the Dockerfile's default holds). The
/// names read are returned.
fn resolve_build_args(service: &mut Value, variables: &MapEnvironment) -> Vec<String> {
    let mut passed = Vec::new();
    let mut lookup = |name: &str| {
        passed.push(name.to_owned());
        variables.get(name).map(|value| value.value().to_owned())
    };
    match service
        .get_mut("build")
        .and_then(|build| build.get_mut("args"))
    {
        Some(Value::Sequence(items)) => {
            items.retain_mut(|item| match item {
                Value::String(text) if !text.contains('=') => match lookup(text) {
                    Some(value) => {
                        *text = format!("{text}={value}");
                        true
                    }
                    None => false,
                },
                _ => true,
            });
        }
        Some(Value::Mapping(map)) => {
            map.retain(|name, value| {
                if !value.is_null() {
                    return true;
                }
                match name.as_str().and_then(&mut lookup) {
                    Some(found) => {
                        *value = Value::String(found);
                        true
                    }
                    None => false,
                }
            });
        }
        _ => {}
    }
    passed
}

/// `env_file` in any of its forms, as (path, required).
pub(super) fn env_files(value: Option<&Value>) -> Result<Vec<(String, bool)>, String> {
    let item = |value: &Value| match value {
        Value::String(path) => Some((path.clone(), true)),
        Value::Mapping(entry) => Some((
            entry.get("path")?.as_str()?.to_owned(),
            entry
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        )),
        _ => None,
    };
    let files = match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Sequence(items)) => items.iter().map(item).collect(),
        Some(single) => item(single).map(|file| vec![file]),
    };
    files.ok_or_else(|| "a path, or a list of paths or of {path, required}".into())
}

/// The top-level `x-slipway.edge`: `managed` puts Slipway's edge in front of the services.
fn declared_edge(document: &Value) -> Result<bool, String> {
    match document
        .get("x-slipway")
        .and_then(|settings| settings.get("edge"))
    {
        None => Ok(false),
        Some(Value::String(mode)) if mode == "managed" => Ok(true),
        Some(Value::String(mode)) if mode == "none" => Ok(false),
        Some(other) => Err(format!(
            "{other:?}: managed (Slipway's edge in front) or none"
        )),
    }
}

/// The top-level `x-slipway.flags`: names of variables that are feature flags.
fn declared_flags(document: &Value) -> Result<Vec<String>, String> {
    let Some(flags) = document
        .get("x-slipway")
        .and_then(|settings| settings.get("flags"))
    else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = serde_norway::from_value(flags.clone())
        .map_err(|_| "a list of variable names".to_owned())?;
    match names.iter().find(|name| !is_variable_name(name)) {
        Some(bad) => Err(format!("{bad:?} is not a variable name")),
        None => Ok(names),
    }
}

/// Letters, digits and `_`, not starting with a digit: a name an env file can set.
pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Interpolates every string value (not keys) in place; an error names the field. `uses`
/// gathers, per service, the variables its values name.
fn interpolate_values(
    value: &mut Value,
    path: &mut Vec<String>,
    environment: &MapEnvironment,
    uses: &mut BTreeMap<String, BTreeSet<String>>,
) -> Result<(), (String, String)> {
    match value {
        Value::String(text) if text.contains('$') => {
            let (resolved, names) =
                substitute(text, environment).map_err(|message| (path.join("."), message))?;
            if let [section, service, ..] = path.as_slice() {
                if section == "services" {
                    uses.entry(service.clone()).or_default().extend(names);
                }
            }
            *text = resolved;
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                path.push(index.to_string());
                interpolate_values(item, path, environment, uses)?;
                path.pop();
            }
        }
        Value::Mapping(mapping) => {
            for (key, item) in mapping.iter_mut() {
                path.push(
                    key.as_str()
                        .map_or_else(|| format!("{key:?}"), str::to_owned),
                );
                interpolate_values(item, path, environment, uses)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => interpolate_values(&mut tagged.value, path, environment, uses)?,
        _ => {}
    }
    Ok(())
}

/// Images of stores that keep data: a service running one without a role is `data`, so an
/// update never replaces it.
const DATA_IMAGES: &[&str] = &[
    "postgres",
    "postgresql",
    "postgis",
    "mysql",
    "mariadb",
    "mongo",
    "mongodb",
    "redis",
    "valkey",
    "memcached",
    "elasticsearch",
    "opensearch",
    "rabbitmq",
    "clickhouse-server",
    "cassandra",
    "couchdb",
    "influxdb",
    "minio",
    "zookeeper",
    "kafka",
    "etcd",
    "neo4j",
];

/// The role of a service whose file names none: `data` for a well-known store's image, `app`
/// for everything else.
fn default_role(image: Option<&str>) -> &'static str {
    let repository = image
        .map(|image| image.split('@').next().unwrap_or(image))
        .map(|image| match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => name,
            _ => image,
        })
        .and_then(|name| name.rsplit('/').next());
    if repository.is_some_and(|name| DATA_IMAGES.contains(&name)) {
        "data"
    } else {
        "app"
    }
}

pub(super) fn service_definition(
    name: &str,
    service: Service,
    build: Option<BuildSpec>,
) -> Result<ServiceDefinition, (String, String)> {
    let labels: BTreeMap<String, String> = match &service.labels {
        Labels::List(items) => items
            .iter()
            .map(|item| match item.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => (item.clone(), String::new()),
            })
            .collect(),
        Labels::Map(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    let key: docker_compose_types::Extension =
        "x-slipway".parse().expect("x-slipway is an extension name");
    let settings: SlipwaySettings = match service.extensions.get(&key) {
        Some(value) => serde_norway::from_value(value.clone())
            .map_err(|error| ("x-slipway".to_owned(), error.to_string()))?,
        None => SlipwaySettings::default(),
    };
    let declared = settings
        .role
        .or_else(|| labels.get("slipway.role").cloned());
    let role_declared = declared.is_some();
    let role_text = declared.unwrap_or_else(|| default_role(service.image.as_deref()).to_owned());
    let role = role_text
        .parse::<ServiceRole>()
        .map_err(|message| ("x-slipway.role".to_owned(), message))?;
    let migrate = settings
        .migrate
        .map(|command| match command {
            Command::Simple(line) => line.split_whitespace().map(str::to_owned).collect(),
            Command::Args(args) => args,
        })
        .or_else(|| {
            labels
                .get("slipway.migrate")
                .map(|line| line.split_whitespace().map(str::to_owned).collect())
        });
    let backup = settings
        .backup
        .or_else(|| labels.get("slipway.backup").cloned());
    if let Some(method) = backup.as_deref().filter(|method| *method != "pg_dump") {
        return Err((
            "x-slipway.backup".to_owned(),
            format!("unknown backup method {method:?}; Slipway backs up PostgreSQL with pg_dump"),
        ));
    }
    let healthy_within = settings
        .healthy_within
        .as_deref()
        .map(|text| {
            humantime::parse_duration(text).map_err(|_| {
                (
                    "x-slipway.healthy_within".to_owned(),
                    format!("{text:?} is not a duration such as 30s"),
                )
            })
        })
        .transpose()?;
    for probe in &settings.probes {
        let within = probe.within.as_deref().map(humantime::parse_duration);
        if matches!(within, Some(Err(_)))
            || within
                .and_then(Result::ok)
                .is_some_and(|d| d.is_zero() || d > std::time::Duration::from_secs(60))
        {
            return Err((
                "x-slipway.probes".to_owned(),
                format!(
                    "within {:?} of probe {} is not a duration from 1ms to 60s",
                    probe.within.as_deref().unwrap_or_default(),
                    probe.http
                ),
            ));
        }
        if !(probe.http.starts_with('/')
            || probe.http.starts_with("http://")
            || probe.http.starts_with("https://"))
        {
            return Err((
                "x-slipway.probes".to_owned(),
                format!(
                    "probe {:?} is neither a path (/health) nor an http(s):// URL",
                    probe.http
                ),
            ));
        }
    }
    if service.image.is_none() && build.is_none() {
        return Err((
            "image".into(),
            "a service needs an image or a build context".into(),
        ));
    }
    let ports = match &service.ports {
        Ports::Short(ports) => ports.clone(),
        Ports::Long(ports) => ports.iter().map(|port| format!("{port:?}")).collect(),
    };
    let depends_on = match &service.depends_on {
        DependsOnOptions::Simple(names) => names.clone(),
        DependsOnOptions::Conditional(map) => map.keys().cloned().collect(),
    };
    Ok(ServiceDefinition {
        name: name.to_owned(),
        image: service.image.clone(),
        build,
        role,
        role_declared,
        ports,
        depends_on,
        has_healthcheck: service.healthcheck.is_some(),
        migrate,
        backup,
        probes: settings.probes,
        upstream: settings.upstream,
        via_edge: settings.via_edge,
        switch: settings.switch,
        healthy_within,
        migrations_table: checked_table_name(settings.migrations_table)?,
        rollback_migration: match settings.rollback_migration {
            Some(command) if !command.iter().any(|arg| arg.contains("{migration}")) => {
                return Err((
                    "x-slipway.rollback_migration".to_owned(),
                    "the command must name the migration with {migration}".to_owned(),
                ))
            }
            command => command,
        },
        migrate_status: settings.migrate_status,
        release_check: settings.release_check,
        variables: BTreeSet::new(),
        behind_edge: settings.behind_edge.unwrap_or(true),
        published_by_edge: None,
        networks: Vec::new(),
        fixed_volume_names: BTreeMap::new(),
        compose_file: PathBuf::new(),
        pids_limit: None,
        compose: service,
    })
}

/// A migrations table's name goes into SQL as it is: only letters, digits and `_`.
fn checked_table_name(table: Option<String>) -> Result<Option<String>, (String, String)> {
    match table {
        Some(name)
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Err((
                "x-slipway.migrations_table".to_owned(),
                format!("{name:?} is not a table name (letters, digits and _ only)"),
            ))
        }
        table => Ok(table),
    }
}

/// Fields of `build:` that only BuildKit applies: Slipway builds with the engine's classic
/// builder (a local base image needs no registry), so each is refused by name.
const BUILDKIT_ONLY: [&str; 11] = [
    "dockerfile_inline",
    "ssh",
    "secrets",
    "tags",
    "platforms",
    "isolation",
    "privileged",
    "additional_contexts",
    "cache_to",
    "entitlements",
    "ulimits",
];

/// `build:` in its long form as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenBuild {
    #[serde(default = "this_folder")]
    context: String,
    dockerfile: Option<String>,
    args: Option<Value>,
    target: Option<String>,
    labels: Option<Value>,
    network: Option<String>,
    shm_size: Option<Value>,
    #[serde(default)]
    cache_from: Vec<String>,
    #[serde(default)]
    no_cache: bool,
    #[serde(default)]
    pull: bool,
}

fn this_folder() -> String {
    ".".into()
}

/// `build:` in either form (its arguments by name already resolved); a field Slipway cannot
/// honour is named, never ignored.
fn build_spec(build: Value) -> Result<BuildSpec, (String, String)> {
    let mut build = match build {
        Value::String(context) => {
            return Ok(BuildSpec {
                context,
                dockerfile: "Dockerfile".into(),
                ..BuildSpec::default()
            })
        }
        Value::Mapping(build) => build,
        _ => return Err(("build".into(), "a build context, or its long form".into())),
    };
    if let Some(field) = BUILDKIT_ONLY
        .iter()
        .find(|field| build.contains_key(**field))
    {
        return Err((
            format!("build.{field}"),
            "needs BuildKit; Slipway builds with the engine's classic builder".into(),
        ));
    }
    for flag in ["no_cache", "pull"] {
        as_typed(build.get_mut(flag));
    }
    let written: WrittenBuild = serde_norway::from_value(Value::Mapping(build))
        .map_err(|error| ("build".to_owned(), error.to_string()))?;
    let named =
        |field: &str, value: Option<Value>| -> Result<BTreeMap<String, String>, (String, String)> {
            let wrong = || {
                (
                    format!("build.{field}"),
                    "a list of NAME=VALUE or a map".to_owned(),
                )
            };
            match value {
                None => Ok(BTreeMap::new()),
                Some(Value::Sequence(items)) => items
                    .iter()
                    .map(|item| {
                        let item = item.as_str().ok_or_else(wrong)?;
                        let (name, value) = item.split_once('=').unwrap_or((item, ""));
                        Ok((name.to_owned(), value.to_owned()))
                    })
                    .collect(),
                Some(Value::Mapping(map)) => map
                    .iter()
                    .map(|(name, value)| {
                        let name = name.as_str().ok_or_else(wrong)?.to_owned();
                        let value = match value {
                            Value::String(text) => text.clone(),
                            Value::Number(number) => number.to_string(),
                            Value::Bool(flag) => flag.to_string(),
                            _ => return Err(wrong()),
                        };
                        Ok((name, value))
                    })
                    .collect(),
                Some(_) => Err(wrong()),
            }
        };
    let shm_size = match written.shm_size {
        None => None,
        Some(size) => {
            let bytes = match &size {
                Value::Number(number) => number.as_i64(),
                Value::String(text) => super::container::bytes(text),
                _ => None,
            };
            Some(bytes.filter(|bytes| i32::try_from(*bytes).is_ok()).ok_or((
                "build.shm_size".to_owned(),
                "a size such as 64m, under 2 GiB".to_owned(),
            ))?)
        }
    };
    Ok(BuildSpec {
        context: written.context,
        dockerfile: written.dockerfile.unwrap_or_else(|| "Dockerfile".into()),
        args: named("args", written.args)?,
        target: written.target,
        labels: named("labels", written.labels)?,
        network: written.network,
        shm_size,
        cache_from: written.cache_from,
        no_cache: written.no_cache,
        pull: written.pull,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> MapEnvironment {
        let mut environment = MapEnvironment::new();
        for (name, value) in pairs {
            environment.insert(*name, *value);
        }
        environment
    }

    fn parse_text(text: &str, pairs: &[(&str, &str)]) -> Result<StackDefinition, ComposeError> {
        parse(Path::new("docker-compose.yml"), text, &env(pairs))
    }

    #[test]
    fn env_files_in_every_form_then_the_environment_over_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.env"), "FROM_A=a\nSHARED=a\n").unwrap();
        std::fs::write(dir.path().join("b.env"), "SHARED=b\n").unwrap();
        let file = dir.path().join("docker-compose.yml");
        let read = |text: &str| {
            parse(&file, text, &env(&[("PASSED", "through")])).map(|definition| {
                crate::stacks::lifecycle::environment_lines(&definition.services[0].compose)
            })
        };
        assert_eq!(
            read("services:\n  web:\n    image: w\n    env_file:\n      - a.env\n      - path: b.env\n      - path: missing.env\n        required: false\n    environment: [KEPT=1, PASSED, UNSET]\n").unwrap(),
            ["FROM_A=a", "SHARED=b", "KEPT=1", "PASSED=through"],
            "later files win, a missing optional file is skipped, a bare name is passed through or left out"
        );
        assert_eq!(
            read("services:\n  web:\n    image: w\n    env_file: a.env\n    environment: { SHARED: env, PORT: 3000, ON: true, PASSED: }\n").unwrap(),
            ["FROM_A=a", "SHARED=env", "PORT=3000", "ON=true", "PASSED=through"]
        );
        let missing = read("services:\n  web:\n    image: w\n    env_file: nowhere.env\n")
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("services.web.env_file") && missing.contains("nowhere.env"),
            "{missing}"
        );
    }

    #[test]
    fn env_files_substitute_from_earlier_lines_never_from_the_consoles_settings() {
        // A console setting (SLIPWAY_*) set in this process must not reach a stack.
        std::env::set_var("SLIPWAY_ENV_FILE_TEST", "the-console-secret");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.env");
        std::fs::write(
            &file,
            "A=one\nB=${A}-two\nC='${A} stays'\nD=\"price \\$5\"\nE=${SLIPWAY_ENV_FILE_TEST:-none}\nF='a\\$b'\n",
        )
        .unwrap();
        assert_eq!(
            env_file_entries(&file).unwrap(),
            [
                ("A".into(), "one".into()),
                ("B".into(), "one-two".into()),
                ("C".into(), "${A} stays".into()),
                ("D".into(), "price $5".into()),
                ("E".into(), "none".into()),
                ("F".into(), "a\\$b".into()),
            ]
        );
    }

    #[test]
    fn what_making_the_container_would_refuse_is_refused_when_the_file_is_read() {
        for (text, field) in [
            (
                "services:\n  web:\n    image: w\n    ports: [\"80:http\"]\n",
                "services.web.ports",
            ),
            (
                "services:\n  web:\n    image: w\n    command: echo \"open\n",
                "services.web.command",
            ),
            (
                "services:\n  web:\n    image: w\n    restart: sometimes\n",
                "services.web.restart",
            ),
            (
                "services:\n  web:\n    image: w\n    shm_size: lots\n",
                "services.web.shm_size",
            ),
            (
                "services:\n  web:\n    image: w\n    imagee: typo\n",
                "services.web.imagee",
            ),
            (
                "services:\n  web:\n    image: w\n    secrets: [token]\n",
                "services.web.secrets",
            ),
        ] {
            let said = parse_text(text, &[]).unwrap_err().to_string();
            assert!(said.contains(field), "{text}: {said}");
        }
    }

    #[test]
    fn secrets_and_configs_from_files_are_mounted_read_only_where_compose_mounts_them() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_dir, srv) = (tempfile::tempdir().unwrap(), dir.path());
        let cert = cert_dir.path().join("cert.pem");
        for file in [srv.join("token.txt"), srv.join("app.conf"), cert.clone()] {
            std::fs::write(file, "x").unwrap();
        }
        let text = format!(
            "services:\n  web:\n    image: w\n    secrets: [token, {{ source: cert, target: tls.pem }}]\n    configs: [{{ source: app, target: /etc/app.conf }}, app]\nsecrets:\n  token: {{ file: ./token.txt }}\n  cert: {{ file: {} }}\nconfigs:\n  app: {{ file: app.conf }}\n",
            cert.display()
        );
        let compose_file = srv.join("docker-compose.yml");
        let definition = parse(&compose_file, &text, &env(&[])).unwrap();
        let body =
            crate::stacks::lifecycle::container_body("p", &definition.services[0], srv).unwrap();
        let at = |file: &str| srv.join(file).display().to_string();
        let mounts: Vec<(String, String, bool)> = body
            .host_config
            .unwrap()
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| {
                (
                    m.source.unwrap(),
                    m.target.unwrap(),
                    m.read_only.unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                (at("token.txt"), "/run/secrets/token".into(), true),
                (
                    cert.display().to_string(),
                    "/run/secrets/tls.pem".into(),
                    true
                ),
                (at("app.conf"), "/etc/app.conf".into(), true),
                (at("app.conf"), "/app".into(), true),
            ]
        );
        std::fs::remove_file(srv.join("token.txt")).unwrap();
        let missing = parse(&compose_file, &text, &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("services.web.secrets")
                && missing.contains("./token.txt does not exist"),
            "{missing}"
        );
    }

    #[test]
    fn the_sample_portal_reads_with_its_settings() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/portal");
        let definition = load(
            &root.join("docker-compose.yml"),
            Some(&root.join("portal.env")),
        )
        .unwrap();
        let names: Vec<_> = definition
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["database", "cache", "backend", "frontend", "edge"]);
        let backend = definition.service("backend").unwrap();
        assert_eq!(backend.role, ServiceRole::App);
        assert_eq!(
            backend.migrate.as_deref(),
            Some(&["migrate".to_owned()][..])
        );
        assert_eq!(
            backend.image.as_deref(),
            Some("slipway-portal-backend:1.0.0")
        );
        assert_eq!(backend.depends_on, ["database", "cache"]);
        assert_eq!(backend.probes[1].json[".services.salesforce"], "ok");
        let database = definition.service("database").unwrap();
        assert_eq!(
            (database.role, database.backup.as_deref()),
            (ServiceRole::Data, Some("pg_dump"))
        );
        assert_eq!(
            definition.service("edge").unwrap().ports,
            ["127.0.0.1:18080:8080"]
        );
        let volumes: Vec<&str> = definition.volumes.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(volumes, ["database"]);
    }

    /// The printed model masks a secret however YAML or `$$` would write it, and so do the
    /// errors; files reached through a variable's path count as the stack's.
    #[test]
    fn the_printed_model_masks_secrets_in_every_written_form() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("conf")).unwrap();
        std::fs::write(
            root.join("stack.env"),
            "DB_PASSWORD='pa$w0rd-with-a-dollar'\nCONF=./conf\n",
        )
        .unwrap();
        std::fs::write(
            root.join("conf/app.env"),
            "DATABASE_URL=postgres://app:hunter2-in-a-url@db/app\n",
        )
        .unwrap();
        let compose = root.join("docker-compose.yml");
        std::fs::write(
            &compose,
            "services:\n  web:\n    image: web\n    env_file: ${CONF}/app.env\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n      TLS_KEY: \"-----BEGIN KEY-----\\nfirst-line-of-the-key\\nsecond-line-of-the-key\"\n      APP_SECRET: \"it's-a-secret-with-a-quote-0123456789\"\n    labels:\n      API_TOKEN: 123456789012\n",
        )
        .unwrap();
        let env_file = root.join("stack.env");
        let secrets = super::super::secrets::secret_values(&compose, Some(&env_file)).unwrap();
        let printed = config(&compose, Some(&env_file), &[], "shop", &secrets).unwrap();
        for leak in [
            "123456789012",
            "w0rd",
            "first-line",
            "second-line",
            "it's-a",
            "it''s-a",
            "hunter2",
        ] {
            assert!(!printed.contains(leak), "{leak} in\n{printed}");
        }
        assert!(printed.contains("DB_PASSWORD: ••••"), "{printed}");
        let unmasked = config(&compose, Some(&env_file), &[], "shop", &[]).unwrap();
        assert!(unmasked.contains("pa$$w0rd-with-a-dollar"), "{unmasked}");
    }

    /// A service tied to others cannot be a base of `extends`, as Compose refuses.
    #[test]
    fn a_base_with_dependencies_is_refused() {
        let text = "services:\n  db:\n    image: db\n  base:\n    image: b\n    depends_on: [db]\n  web:\n    extends: base\n";
        let error = parse_text(text, &[]).unwrap_err().to_string();
        assert!(
            error.contains("services.web.extends") && error.contains("it has depends_on"),
            "{error}"
        );
    }

    /// What Compose would read differently, or without end, is refused.
    #[test]
    fn included_env_files_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("other")).unwrap();
        std::fs::write(root.join("other/.env"), "TAG=2\n").unwrap();
        std::fs::write(
            root.join("other/more.yml"),
            "services:\n  api:\n    image: api\n",
        )
        .unwrap();
        let refused = |text: &str, pairs: &[(&str, &str)]| {
            let compose = root.join("docker-compose.yml");
            std::fs::write(&compose, text).unwrap();
            parse(&compose, text, &env(pairs)).unwrap_err().to_string()
        };
        let message = refused(
            "include: [other/more.yml]\nservices:\n  web:\n    image: web\n",
            &[],
        );
        assert!(message.contains("its folder has a .env"), "{message}");
        let message = refused(
            "include: [/dev/zero]\nservices:\n  web:\n    image: web\n",
            &[],
        );
        assert!(message.contains("not a regular file"), "{message}");
    }

    #[test]
    fn profiles_start_their_services_only_when_active_and_optional_dependencies_may_be_missing() {
        let text = "services:\n  web:\n    image: w\n    depends_on:\n      debug: { condition: service_started, required: false }\n      setup: { condition: service_completed_successfully }\n  setup:\n    image: s\n  debug:\n    image: d\n    profiles: [debug]\n  seed:\n    image: s\n    profiles: [seed, demo]\n";
        let names = |profiles: &[&str]| {
            let profiles: Vec<String> = profiles.iter().map(|p| p.to_string()).collect();
            let definition = parse_active(Path::new("c.yml"), text, &env(&[]), &profiles).unwrap();
            let names: Vec<String> = definition.services.iter().map(|s| s.name.clone()).collect();
            (names, definition)
        };
        let (none, definition) = names(&[]);
        assert_eq!(none, ["web", "setup"]);
        assert_eq!(
            definition.profiles.iter().collect::<Vec<_>>(),
            ["debug", "demo", "seed"]
        );
        let web = definition.service("web").unwrap();
        assert_eq!(
            web.depends_on,
            ["setup"],
            "debug is not required and not defined"
        );
        assert_eq!(definition.service("setup").unwrap().role, ServiceRole::Job);
        // COMPOSE_PROFILES activates them when the stack names none, as with Compose.
        let with_variable = parse(
            Path::new("c.yml"),
            text,
            &env(&[("COMPOSE_PROFILES", "seed, debug")]),
        )
        .unwrap();
        let names_of: Vec<&str> = with_variable
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names_of, ["web", "setup", "debug", "seed"]);
        let (with_debug, definition) = names(&["debug"]);
        assert_eq!(with_debug, ["web", "setup", "debug"]);
        assert_eq!(
            definition.service("web").unwrap().depends_on,
            ["debug", "setup"]
        );
        assert_eq!(names(&["demo"]).0, ["web", "setup", "seed"]);
        let required = "services:\n  web:\n    image: w\n    depends_on: [debug]\n  debug:\n    image: d\n    profiles: [debug]\n";
        let error = parse_text(required, &[]).unwrap_err().to_string();
        assert!(
            error.contains("services.web.depends_on") && error.contains("not active"),
            "{error}"
        );
    }

    #[test]
    fn build_contexts_read_in_both_forms() {
        let text = "services:\n  web:\n    build: ./web\n  api:\n    image: api:${TAG:-2}\n    build:\n      context: ./api\n      dockerfile: Containerfile\n      target: runtime\n      args: [\"VERSION=${TAG:-2}\", \"UNSET\", \"PASSED\"]\n";
        let definition = parse_text(text, &[("PASSED", "from the environment")]).unwrap();
        let web = definition.service("web").unwrap();
        assert_eq!(
            web.build,
            Some(BuildSpec {
                context: "./web".into(),
                dockerfile: "Dockerfile".into(),
                ..BuildSpec::default()
            })
        );
        assert_eq!(web.image_name("shop"), "shop_web");
        let api = definition.service("api").unwrap();
        let build = api.build.as_ref().unwrap();
        assert_eq!(
            (build.dockerfile.as_str(), build.target.as_deref()),
            ("Containerfile", Some("runtime"))
        );
        assert_eq!(build.args["VERSION"], "2");
        // A name alone takes the variable's value; unset, it is not passed at all (the
        // Dockerfile's default holds), as Compose.
        assert_eq!(build.args["PASSED"], "from the environment");
        assert!(!build.args.contains_key("UNSET"), "{:?}", build.args);
        assert!(api.variables.contains("PASSED"));
        assert_eq!(api.image_name("shop"), "api:2");
        let inline = "services:\n  web:\n    build:\n      context: .\n      dockerfile_inline: FROM scratch\n";
        let error = parse_text(inline, &[]).unwrap_err().to_string();
        assert!(
            error.contains("services.web.build.dockerfile_inline") && error.contains("BuildKit"),
            "{error}"
        );
        for (field, why) in [
            ("ssh: [default]", "services.web.build.ssh: needs BuildKit"),
            (
                "shm_size: 3g",
                "services.web.build.shm_size: a size such as 64m",
            ),
            ("colour: red", "unknown field `colour`"),
        ] {
            let text = format!("services:\n  web:\n    build:\n      context: .\n      {field}\n");
            let error = parse_text(&text, &[]).unwrap_err().to_string();
            assert!(error.contains(why), "{field}: {error}");
        }
    }

    #[test]
    fn variables_take_defaults_and_the_environment() {
        let text = "services:\n  web:\n    image: \"web:${TAG:-1.0}\"\n    ports: [\"${PORT}:80\"]\n    labels: {note: \"$$HOME\"}\n";
        let definition = parse_text(text, &[("PORT", "8081")]).unwrap();
        let web = definition.service("web").unwrap();
        assert_eq!(web.image.as_deref(), Some("web:1.0"));
        assert_eq!(web.ports, ["8081:80"]);
        let definition = parse_text(text, &[("PORT", "1"), ("TAG", "2.0")]).unwrap();
        assert_eq!(
            definition.service("web").unwrap().image.as_deref(),
            Some("web:2.0")
        );
    }

    #[test]
    fn a_required_variable_that_is_missing_names_the_field_and_the_reason() {
        let text = "services:\n  api:\n    image: api\n    environment:\n      JWT_SECRET: ${JWT_SECRET:?set it in .env}\n";
        let message = parse_text(text, &[]).unwrap_err().to_string();
        assert!(
            message.starts_with("docker-compose.yml: services.api.environment.JWT_SECRET:"),
            "{message}"
        );
        // compose-lens names the variable rather than repeating the author's text.
        assert!(message.contains("`JWT_SECRET` is unset"), "{message}");
    }

    #[test]
    fn a_broken_env_file_is_named_by_line_and_never_shows_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        std::fs::write(
            &env,
            "PORTAL_VERSION=1.0.0\nDB_PASSWORD=\"never-shown-secret\nJWT_SECRET=also-never-shown\n",
        )
        .unwrap();
        let message = env_file_entries(&env).unwrap_err().to_string();
        assert!(message.contains(&env.display().to_string()), "{message}");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("DB_PASSWORD"), "{message}");
        assert!(!message.contains("never-shown"), "{message}");
        assert!(!message.contains("also-never"), "{message}");

        // A line that is nothing but a token names nothing.
        std::fs::write(&env, "PORTAL_VERSION=1.0.0\nsk_live_0123456789abcdef\n").unwrap();
        let message = env_file_entries(&env).map(|_| ()).unwrap_err().to_string();
        assert!(!message.contains("sk_live"), "{message}");
    }

    #[test]
    fn broken_yaml_names_the_line() {
        let message = parse_text("services:\n  web:\n    image: [unclosed\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("docker-compose.yml, line "),
            "{message}"
        );
    }

    #[test]
    fn a_well_known_store_without_a_role_is_data() {
        let by_image = "services:\n  db:\n    image: docker.io/library/postgres:16-alpine\n  cache:\n    image: bitnami/redis\n  kv:\n    image: localhost:5000/valkey@sha256:abc\n  web:\n    image: nginx:1.27\n  queue_app:\n    image: myorg/redis-worker\n";
        let roles: Vec<(String, ServiceRole)> = parse_text(by_image, &[])
            .unwrap()
            .services
            .into_iter()
            .map(|s| (s.name, s.role))
            .collect();
        assert_eq!(
            roles,
            [
                ("db".to_owned(), ServiceRole::Data),
                ("cache".to_owned(), ServiceRole::Data),
                ("kv".to_owned(), ServiceRole::Data),
                ("web".to_owned(), ServiceRole::App),
                ("queue_app".to_owned(), ServiceRole::App),
            ],
            "a well-known store's image is data unless the file says otherwise"
        );
    }

    #[test]
    fn slipway_settings_are_checked() {
        let unknown_role = "services:\n  web:\n    image: web\n    x-slipway: {role: database}\n";
        let message = parse_text(unknown_role, &[]).unwrap_err().to_string();
        assert!(
            message.contains("services.web.x-slipway.role")
                && message.contains("data, app, edge or job"),
            "{message}"
        );
        let injected = "services:\n  web:\n    image: web\n    x-slipway: {migrations_table: \"m; DROP TABLE users\"}\n";
        let message = parse_text(injected, &[]).unwrap_err().to_string();
        assert!(
            message.contains("x-slipway.migrations_table") && message.contains("not a table name"),
            "{message}"
        );
        let unnamed =
            "services:\n  web:\n    image: web\n    x-slipway: {rollback_migration: [down]}\n";
        let message = parse_text(unnamed, &[]).unwrap_err().to_string();
        assert!(
            message.contains("x-slipway.rollback_migration") && message.contains("{migration}"),
            "{message}"
        );
        let named = "services:\n  web:\n    image: web\n    x-slipway: {migrations_table: _prisma_migrations}\n";
        assert_eq!(
            parse_text(named, &[]).unwrap().migrations_table(),
            Some("_prisma_migrations")
        );
        let typo = "services:\n  web:\n    image: web\n    x-slipway: {rol: app}\n";
        let message = parse_text(typo, &[]).unwrap_err().to_string();
        assert!(
            message.contains("services.web.x-slipway") && message.contains("rol"),
            "{message}"
        );
        let by_label = "services:\n  db:\n    image: pg\n    labels: [\"slipway.role=data\", \"slipway.backup=pg_dump\"]\n";
        let db = parse_text(by_label, &[]).unwrap();
        let db = db.service("db").unwrap();
        assert_eq!(
            (db.role, db.backup.as_deref()),
            (ServiceRole::Data, Some("pg_dump"))
        );
    }

    #[test]
    fn services_need_an_image_and_known_dependencies() {
        let message = parse_text("services:\n  web: {}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(message.contains("services.web.image"), "{message}");
        let message = parse_text(
            "services:\n  web:\n    image: w\n    depends_on: [db]\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("services.web.depends_on") && message.contains("\"db\""),
            "{message}"
        );
        let message = parse_text("volumes: {}\n", &[]).unwrap_err().to_string();
        assert!(message.contains("no services"), "{message}");
    }
}
