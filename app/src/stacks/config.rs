//! The model Slipway runs, printed the way `docker compose config` prints it: interpolation
//! done, env files read into `environment`, merge keys expanded, the services of inactive
//! profiles left out, short syntax written in the long syntax, paths made absolute and `~`
//! expanded. `slipway config` and the stack page show it; a `$` in a value is written `$$`,
//! so the output reads back as the same model. Secrets are masked in the values themselves,
//! before anything changes how they are written (`$$`, YAML's quoting and block scalars).

use std::path::Path;

use serde_norway::{Mapping, Value};

use super::container::{host_path, is_path, short_port, words};

/// The long form of a document read by `compose::read_document`; `dir` is the compose
/// file's folder, `project` the name its containers are labelled with; every one of
/// `secrets` is masked wherever it appears in a value.
pub(super) fn long_form(
    mut document: Value,
    dir: &Path,
    project: &str,
    secrets: &[String],
) -> Result<Value, String> {
    let top = document
        .as_mapping_mut()
        .ok_or("the file is not a mapping")?;
    top.remove("version");
    top.insert(text("name"), text(project));
    if let Some(Value::Mapping(services)) = top.get_mut("services") {
        for (name, service) in services.iter_mut() {
            let name = name.as_str().unwrap_or("?");
            if let Value::Mapping(fields) = service {
                service_long_form(fields, dir).map_err(|why| format!("services.{name}.{why}"))?;
            } else {
                *service = Value::Mapping(Mapping::new());
            }
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        if let Some(Value::Mapping(entries)) = top.get_mut(kind) {
            for (key, entry) in entries.iter_mut() {
                if entry.is_null() {
                    *entry = Value::Mapping(Mapping::new());
                }
                // An external one is used by its key when it has no `name:`.
                let external = entry.get("external").and_then(Value::as_bool) == Some(true);
                if let (true, Value::Mapping(fields)) = (external, &mut *entry) {
                    fields.entry(text("name")).or_insert_with(|| key.clone());
                }
                if let Some(Value::String(file)) = entry.get_mut("file") {
                    *file = host_path(file, dir);
                }
            }
        }
    }
    written_form(&mut document, secrets);
    Ok(document)
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

fn service_long_form(fields: &mut Mapping, dir: &Path) -> Result<(), String> {
    match fields.get_mut("build") {
        Some(Value::String(context)) => {
            let context = host_path(context, dir);
            fields.insert(
                text("build"),
                Value::Mapping([(text("context"), text(&context))].into_iter().collect()),
            );
        }
        Some(Value::Mapping(build)) => {
            let context = build.get("context").and_then(Value::as_str).unwrap_or(".");
            build.insert(text("context"), text(&host_path(context, dir)));
            if let Some(Value::Sequence(args)) = build.get("args") {
                let args = args
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|arg| match arg.split_once('=') {
                        Some((name, value)) => (text(name), text(value)),
                        None => (text(arg), Value::Null),
                    })
                    .collect();
                build.insert(text("args"), Value::Mapping(args));
            }
        }
        _ => {}
    }
    for field in ["command", "entrypoint"] {
        if let Some(Value::String(line)) = fields.get(field) {
            let split = words(line).ok_or(format!("{field}: a quote is not closed"))?;
            fields.insert(
                text(field),
                Value::Sequence(split.iter().map(|w| text(w)).collect()),
            );
        }
    }
    if let Some(Value::Mapping(check)) = fields.get_mut("healthcheck") {
        if let Some(Value::String(line)) = check.get("test") {
            let test = Value::Sequence(vec![text("CMD-SHELL"), text(line)]);
            check.insert(text("test"), test);
        }
    }
    if let Some(Value::Sequence(ports)) = fields.get_mut("ports") {
        let mut long = Vec::new();
        for port in ports.iter() {
            match port {
                Value::String(spec) => {
                    let mappings =
                        short_port(spec).ok_or(format!("ports: cannot read {spec:?}"))?;
                    for (host_ip, published, target, protocol) in mappings {
                        let mut entry = Mapping::new();
                        entry.insert(text("target"), number_or_text(&target));
                        if let Some(published) = published.filter(|p| !p.is_empty()) {
                            entry.insert(text("published"), text(&published));
                        }
                        if let Some(host_ip) = host_ip {
                            entry.insert(text("host_ip"), text(&host_ip));
                        }
                        entry.insert(text("protocol"), text(&protocol));
                        long.push(Value::Mapping(entry));
                    }
                }
                Value::Mapping(entry) => {
                    let mut entry = entry.clone();
                    if !entry.contains_key("protocol") {
                        entry.insert(text("protocol"), text("tcp"));
                    }
                    long.push(Value::Mapping(entry));
                }
                other => return Err(format!("ports: cannot read {other:?}")),
            }
        }
        *ports = long;
    }
    if let Some(Value::Sequence(volumes)) = fields.get_mut("volumes") {
        for volume in volumes.iter_mut() {
            match volume {
                Value::String(spec) => *volume = Value::Mapping(short_volume(spec, dir)),
                Value::Mapping(entry) => {
                    let is_bind = entry.get("type").and_then(Value::as_str) == Some("bind");
                    if let (true, Some(Value::String(source))) = (is_bind, entry.get_mut("source"))
                    {
                        *source = host_path(source, dir);
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(Value::Sequence(names)) = fields.get("depends_on") {
        let started = |name: &Value| {
            let condition = [(text("condition"), text("service_started"))];
            (
                name.clone(),
                Value::Mapping(condition.into_iter().collect()),
            )
        };
        let map = names.iter().map(started).collect();
        fields.insert(text("depends_on"), Value::Mapping(map));
    }
    if let Some(Value::Sequence(names)) = fields.get("networks") {
        let map = names
            .iter()
            .map(|name| (name.clone(), Value::Null))
            .collect();
        fields.insert(text("networks"), Value::Mapping(map));
    }
    for field in ["labels", "sysctls", "extra_hosts"] {
        if let Some(Value::Sequence(items)) = fields.get(field) {
            let separator = if field == "extra_hosts" { ':' } else { '=' };
            let map = items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| {
                    let (name, value) = item.split_once(separator).unwrap_or((item, ""));
                    (text(name), text(value))
                })
                .collect();
            fields.insert(text(field), Value::Mapping(map));
        }
    }
    for field in ["secrets", "configs"] {
        if let Some(Value::Sequence(items)) = fields.get_mut(field) {
            for item in items.iter_mut() {
                if let Value::String(name) = item {
                    let source = [(text("source"), text(name))];
                    *item = Value::Mapping(source.into_iter().collect());
                }
            }
        }
    }
    Ok(())
}

/// `8080` as a number, as Compose prints a container port; anything else as written.
fn number_or_text(value: &str) -> Value {
    value
        .parse::<u16>()
        .map_or_else(|_| text(value), |port| Value::Number(port.into()))
}

/// `SOURCE:TARGET[:MODE]` or `TARGET` in the long syntax.
fn short_volume(spec: &str, dir: &Path) -> Mapping {
    let mut entry = Mapping::new();
    let parts: Vec<&str> = spec.splitn(3, ':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, ""),
        [source, target] => (Some(*source), *target, ""),
        [source, target, mode, ..] => (Some(*source), *target, *mode),
        // `splitn` yields at least the whole text.
        [] => (None, spec, ""),
    };
    let kind = match source {
        Some(source) if is_path(source) => "bind",
        _ => "volume",
    };
    entry.insert(text("type"), text(kind));
    if let Some(source) = source {
        let source = if kind == "bind" {
            host_path(source, dir)
        } else {
            source.to_owned()
        };
        entry.insert(text("source"), text(&source));
    }
    // `/data/` is `/data`, as Compose prints it.
    let target = match target.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    };
    entry.insert(text("target"), text(target));
    let options: Vec<&str> = mode.split(',').filter(|o| !o.is_empty()).collect();
    if options.contains(&"ro") {
        entry.insert(text("read_only"), Value::Bool(true));
    }
    if kind == "bind" {
        let create = [(text("create_host_path"), Value::Bool(true))];
        entry.insert(text("bind"), Value::Mapping(create.into_iter().collect()));
    }
    if options.contains(&"nocopy") {
        let nocopy = [(text("nocopy"), Value::Bool(true))];
        entry.insert(text("volume"), Value::Mapping(nocopy.into_iter().collect()));
    }
    entry
}

/// Every value with its secrets masked, then every `$` as `$$`, so the printed model
/// interpolates back to itself.
fn written_form(value: &mut Value, secrets: &[String]) {
    let masked = |text: &str| super::secrets::redact(text, secrets);
    match value {
        Value::String(text) => *text = masked(text).replace('$', "$$"),
        // A secret written as a number (`API_TOKEN: 123456789012`) is text once masked.
        Value::Number(_) | Value::Bool(_) => {
            let written = serde_norway::to_string(&*value).unwrap_or_default();
            let written = written.trim_end();
            if masked(written) != written {
                *value = Value::String(masked(written));
            }
        }
        Value::Sequence(items) => items
            .iter_mut()
            .for_each(|item| written_form(item, secrets)),
        Value::Mapping(map) => {
            // Keys are never interpolated: masked, not escaped.
            *map = std::mem::take(map)
                .into_iter()
                .map(|(key, mut item)| {
                    written_form(&mut item, secrets);
                    let key = match key {
                        Value::String(name) => Value::String(masked(&name)),
                        other => other,
                    };
                    (key, item)
                })
                .collect();
        }
        Value::Tagged(tagged) => written_form(&mut tagged.value, secrets),
        Value::Null => {}
    }
}
