//! What a compose file draws from other files and services, resolved as Compose resolves it:
//! top-level `include:` (other compose files whose resources join the model; a name both
//! define is an error) and a service's `extends:` (another service's definition, of this file
//! or another, with the service's own fields merged over it by Compose's merge rules). Paths
//! in another file are relative to that file's folder: they are made absolute as they come in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use compose_lens::interpolation::MapEnvironment;
use serde_norway::{Mapping, Value};

use super::compose::{interpolated_file, read_small, ComposeError};
use super::container::{host_path, is_path};

/// Resources an included file adds to the model.
const RESOURCES: [&str; 5] = ["services", "volumes", "networks", "secrets", "configs"];

/// Included files may include others; a chain this deep is a cycle or a mistake.
const MOST_NESTED: usize = 8;

/// Variables read, per service, as `compose::interpolate_values` gathers them.
type Uses = BTreeMap<String, BTreeSet<String>>;

/// Resolves `include:` and every `extends:` of the file at `path`, in place.
pub(super) fn resolve(
    document: &mut Value,
    path: &Path,
    environment: &MapEnvironment,
    uses: &mut Uses,
) -> Result<(), ComposeError> {
    include(
        document,
        path,
        environment,
        uses,
        &mut vec![path.to_path_buf()],
    )?;
    extend_all(document, path, environment, uses)
}

fn invalid(path: &Path, field: &str, message: String) -> ComposeError {
    ComposeError::Invalid {
        path: path.to_path_buf(),
        field: field.to_owned(),
        message,
    }
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

fn include(
    document: &mut Value,
    path: &Path,
    environment: &MapEnvironment,
    uses: &mut Uses,
    chain: &mut Vec<PathBuf>,
) -> Result<(), ComposeError> {
    let Some(top) = document.as_mapping_mut() else {
        return Ok(());
    };
    let Some(entries) = top.remove("include") else {
        return Ok(());
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    for file in included_files(&entries).map_err(|why| invalid(path, "include", why))? {
        let included = PathBuf::from(host_path(&file, dir));
        if chain.contains(&included) || chain.len() >= MOST_NESTED {
            return Err(invalid(
                path,
                "include",
                format!("{file} includes itself, directly or through others"),
            ));
        }
        let folder = included.parent().unwrap_or(Path::new(""));
        // Compose reads an included file with the `.env` of its own folder.
        if folder != dir && super::parsed::check(Path::exists, &folder.join(".env")) {
            return Err(invalid(
                path,
                "include",
                format!("{file}: its folder has a .env, which Compose would read for it; not applied yet (move its variables to the stack's env file)"),
            ));
        }
        let written = read_small(&included)?;
        let mut model = interpolated_file(&included, &written, environment, uses)?;
        chain.push(included.clone());
        include(&mut model, &included, environment, uses, chain)?;
        chain.pop();
        extend_all(&mut model, &included, environment, uses)?;
        absolute_paths(&mut model, included.parent().unwrap_or(Path::new("")));
        for kind in RESOURCES {
            let Some(Value::Mapping(added)) = model.get(kind) else {
                continue;
            };
            let into = top
                .entry(text(kind))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            let Value::Mapping(into) = into else {
                return Err(invalid(path, kind, "must be a mapping".into()));
            };
            for (name, definition) in added {
                if into.contains_key(name) {
                    return Err(invalid(
                        path,
                        &format!("{kind}.{}", name.as_str().unwrap_or("?")),
                        format!(
                            "also defined by the included {file}: Compose refuses the conflict"
                        ),
                    ));
                }
                into.insert(name.clone(), definition.clone());
            }
        }
    }
    Ok(())
}

/// `include:` as the paths it names; the options that give an included file a folder or env
/// file of its own are refused by name.
fn included_files(entries: &Value) -> Result<Vec<String>, String> {
    let Value::Sequence(entries) = entries else {
        return Err("a list of files, or of { path }".into());
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Value::String(file) => files.push(file.clone()),
            Value::Mapping(fields) => {
                for refused in ["project_directory", "env_file"] {
                    if fields.contains_key(refused) {
                        return Err(format!(
                            "{refused} is not applied yet: an included file is read with the stack's variables, from its own folder"
                        ));
                    }
                }
                match fields.get("path") {
                    Some(Value::String(file)) => files.push(file.clone()),
                    Some(Value::Sequence(paths)) => {
                        if paths.len() > 1 {
                            return Err("a path list (files merged into one) is not applied yet: include each file".into());
                        }
                        files.extend(paths.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    _ => return Err("each entry names its path".into()),
                }
            }
            _ => return Err("a list of files, or of { path }".into()),
        }
    }
    Ok(files)
}

/// Every service's `extends:` resolved; `path` is the file the document was read from.
fn extend_all(
    document: &mut Value,
    path: &Path,
    environment: &MapEnvironment,
    uses: &mut Uses,
) -> Result<(), ComposeError> {
    let Some(Value::Mapping(services)) = document.get("services") else {
        return Ok(());
    };
    let names: Vec<String> = services
        .iter()
        .filter(|(_, service)| service.get("extends").is_some())
        .filter_map(|(name, _)| name.as_str().map(str::to_owned))
        .collect();
    for name in names {
        let resolved = extended(document, path, &name, environment, uses, &mut Vec::new())?;
        if let Some(Value::Mapping(services)) = document.get_mut("services") {
            services.insert(text(&name), resolved);
        }
    }
    Ok(())
}

/// The service `name` of `document` with what it extends merged under it.
fn extended(
    document: &Value,
    path: &Path,
    name: &str,
    environment: &MapEnvironment,
    uses: &mut Uses,
    chain: &mut Vec<(PathBuf, String)>,
) -> Result<Value, ComposeError> {
    let field = |part: &str| format!("services.{name}.{part}");
    let mut service = document
        .get("services")
        .and_then(|services| services.get(name))
        .cloned()
        .ok_or_else(|| {
            invalid(
                path,
                &field("extends"),
                format!("there is no service {name:?}"),
            )
        })?;
    let Some(extends) = service.as_mapping_mut().and_then(|s| s.remove("extends")) else {
        return Ok(service);
    };
    let link = (path.to_path_buf(), name.to_owned());
    if chain.contains(&link) || chain.len() >= MOST_NESTED {
        return Err(invalid(
            path,
            &field("extends"),
            "extends itself, directly or through others".into(),
        ));
    }
    chain.push(link);
    let (base_name, file) = match &extends {
        Value::String(base) => (base.clone(), None),
        Value::Mapping(fields) => (
            fields
                .get("service")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(path, &field("extends"), "names the service".into()))?
                .to_owned(),
            fields
                .get("file")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        _ => {
            return Err(invalid(
                path,
                &field("extends"),
                "a service's name, or { service, file }".into(),
            ))
        }
    };
    let base = match file {
        None => {
            let base = extended(document, path, &base_name, environment, uses, chain)?;
            // The base's variables are the service's too: a flag it reads replaces it.
            let inherited = uses.get(&base_name).cloned().unwrap_or_default();
            uses.entry(name.to_owned()).or_default().extend(inherited);
            base
        }
        Some(file) => {
            let other = PathBuf::from(host_path(&file, path.parent().unwrap_or(Path::new(""))));
            let written = read_small(&other)?;
            // The other file's variables, by its services: its bases' are credited to them.
            let mut read = Uses::new();
            let model = interpolated_file(&other, &written, environment, &mut read)?;
            let mut base = extended(&model, &other, &base_name, environment, &mut read, chain)?;
            let folder = other.parent().unwrap_or(Path::new(""));
            service_paths(&mut base, folder);
            // The base's variables are the service's too: a flag it reads replaces it.
            let inherited = read.remove(&base_name).unwrap_or_default();
            uses.entry(name.to_owned()).or_default().extend(inherited);
            base
        }
    };
    chain.pop();
    if let Some(why) = not_a_base(&base) {
        return Err(invalid(
            path,
            &field("extends"),
            format!("{base_name:?} cannot be extended: {why}, as Compose refuses"),
        ));
    }
    Ok(merged(base, service, ""))
}

/// Why a service cannot be a base (Compose's rule): what ties it to other services.
fn not_a_base(base: &Value) -> Option<String> {
    for field in ["depends_on", "links", "volumes_from"] {
        if base.get(field).is_some() {
            return Some(format!("it has {field}"));
        }
    }
    ["network_mode", "ipc", "pid"]
        .into_iter()
        .find_map(|field| {
            let mode = base.get(field)?.as_str()?;
            (mode.starts_with("service:") || mode.starts_with("container:"))
                .then(|| format!("its {field} is another service's"))
        })
}

/// `local` over `base` by Compose's merge rules: mappings merge, sequences append, `command`,
/// `entrypoint` and a healthcheck's `test` are replaced, variables and labels in either form
/// merge by name, and ports, volumes, secrets and configs replace an entry with the same
/// target.
fn merged(base: Value, local: Value, field: &str) -> Value {
    const REPLACED: [&str; 3] = ["command", "entrypoint", "test"];
    const BY_NAME: [&str; 4] = ["environment", "labels", "args", "sysctls"];
    const BY_TARGET: [&str; 4] = ["ports", "volumes", "secrets", "configs"];
    if REPLACED.contains(&field) {
        return local;
    }
    if BY_NAME.contains(&field) {
        return match (as_named(&base), as_named(&local)) {
            (Some(mut base), Some(local)) => {
                base.extend(local);
                Value::Mapping(base)
            }
            _ => local,
        };
    }
    match (base, local) {
        (Value::Mapping(mut base), Value::Mapping(local)) => {
            for (key, value) in local {
                let name = key.as_str().unwrap_or_default().to_owned();
                let value = match base.remove(&key) {
                    Some(previous) => merged(previous, value, &name),
                    None => value,
                };
                base.insert(key, value);
            }
            Value::Mapping(base)
        }
        (Value::Sequence(mut base), Value::Sequence(local)) => {
            if BY_TARGET.contains(&field) {
                let key = |item: &Value| unique_key(field, item);
                let replaced: BTreeSet<String> = local.iter().map(key).collect();
                base.retain(|item| !replaced.contains(&key(item)));
            }
            base.extend(local);
            Value::Sequence(base)
        }
        (_, local) => local,
    }
}

/// `[NAME=value, …]` or a mapping, as a mapping.
pub(super) fn as_named(value: &Value) -> Option<Mapping> {
    match value {
        Value::Mapping(map) => Some(map.clone()),
        Value::Sequence(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| match item.split_once('=') {
                    Some((name, value)) => (text(name), text(value)),
                    None => (text(item), Value::Null),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// What makes an entry of `field` unique, as Compose's merge has it: a volume's, secret's or
/// config's target in the container; a port's address, published port, target and protocol.
fn unique_key(field: &str, item: &Value) -> String {
    let scalar = |value: Option<&Value>| match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    match (field, item) {
        ("ports", Value::Mapping(port)) => {
            let protocol = scalar(port.get("protocol"));
            let protocol = if protocol.is_empty() {
                "tcp".into()
            } else {
                protocol
            };
            let (ip, published) = (scalar(port.get("host_ip")), scalar(port.get("published")));
            let address = match (ip.is_empty(), published.is_empty()) {
                (_, true) => String::new(),
                (true, false) => format!("{published}:"),
                (false, false) => format!("{ip}:{published}:"),
            };
            format!("{address}{}/{protocol}", scalar(port.get("target")))
        }
        ("ports", Value::String(spec)) if spec.contains('/') => spec.clone(),
        ("ports", Value::String(spec)) => format!("{spec}/tcp"),
        (_, Value::Mapping(entry)) => scalar(entry.get("target").or_else(|| entry.get("source"))),
        // `SRC:DST[:MODE]` or `DST` for a volume; a secret's or config's name.
        (_, Value::String(spec)) => match spec.split(':').collect::<Vec<_>>().as_slice() {
            [_, target, ..] => (*target).to_owned(),
            _ => spec.clone(),
        },
        _ => serde_norway::to_string(item).unwrap_or_default(),
    }
}

/// The relative paths of a model read from another folder made absolute.
fn absolute_paths(model: &mut Value, folder: &Path) {
    if let Some(Value::Mapping(services)) = model.get_mut("services") {
        for (_, service) in services.iter_mut() {
            service_paths(service, folder);
        }
    }
    for kind in ["secrets", "configs"] {
        if let Some(Value::Mapping(entries)) = model.get_mut(kind) {
            for (_, entry) in entries.iter_mut() {
                if let Some(Value::String(file)) = entry.get_mut("file") {
                    *file = host_path(file, folder);
                }
            }
        }
    }
}

/// A service's build context, bind sources and env files, relative to `folder`, made absolute.
fn service_paths(service: &mut Value, folder: &Path) {
    let absolute = |path: &mut String| {
        if !path.contains("://") {
            *path = host_path(path, folder);
        }
    };
    match service.get_mut("build") {
        Some(Value::String(context)) => absolute(context),
        Some(Value::Mapping(build)) => {
            let context = build.entry(text("context")).or_insert_with(|| text("."));
            if let Value::String(context) = context {
                absolute(context);
            }
        }
        _ => {}
    }
    if let Some(Value::Sequence(volumes)) = service.get_mut("volumes") {
        for volume in volumes.iter_mut() {
            match volume {
                Value::String(spec) => {
                    if let Some((source, rest)) = spec.split_once(':') {
                        if is_path(source) {
                            *spec = format!("{}:{rest}", host_path(source, folder));
                        }
                    }
                }
                Value::Mapping(fields) => {
                    let is_bind = fields.get("type").and_then(Value::as_str) == Some("bind");
                    if let (true, Some(Value::String(source))) = (is_bind, fields.get_mut("source"))
                    {
                        absolute(source);
                    }
                }
                _ => {}
            }
        }
    }
    match service.get_mut("env_file") {
        Some(Value::String(file)) => absolute(file),
        Some(Value::Sequence(files)) => {
            for file in files.iter_mut() {
                match file {
                    Value::String(file) => absolute(file),
                    Value::Mapping(entry) => {
                        if let Some(Value::String(file)) = entry.get_mut("path") {
                            absolute(file);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}
