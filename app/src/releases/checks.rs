//! The checklist: the procedure's five sections (plus the platform) in Slipway's words, and
//! the automatic items the console evaluates itself, each with the evidence it saw.

use std::collections::BTreeMap;
use std::path::Path;

use crate::auth::Role;
use crate::stacks::compose::{self, StackDefinition};
use crate::stacks::engine::Engine;
use crate::stacks::{secrets, StackSummary};
use crate::store::Store;

use super::ItemState;

/// One item of the template.
pub struct TemplateItem {
    pub key: &'static str,
    pub section: &'static str,
    pub title: &'static str,
    pub automatic: bool,
    pub required: bool,
    /// The least role that ticks a manual item.
    pub role: Role,
}

const fn manual(
    key: &'static str,
    section: &'static str,
    title: &'static str,
    required: bool,
    role: Role,
) -> TemplateItem {
    TemplateItem {
        key,
        section,
        title,
        automatic: false,
        required,
        role,
    }
}

const fn automatic(key: &'static str, section: &'static str, title: &'static str) -> TemplateItem {
    TemplateItem {
        key,
        section,
        title,
        automatic: true,
        required: true,
        role: Role::Operator,
    }
}

/// A verified backup counts for a release when it is at most this old.
pub const BACKUP_FRESH_MINUTES: i64 = 60;
/// Less free disk than this on the engine's or the console's file system fails the check.
const LEAST_FREE_BYTES: u64 = 1 << 30;

/// The default checklist: the release procedure's pre-deployment checklist.
pub const TEMPLATE: &[TemplateItem] = &[
    manual(
        "review.approved",
        "Code review",
        "Every change was reviewed and approved",
        true,
        Role::Approver,
    ),
    manual(
        "review.tests",
        "Code review",
        "Type check, lint and tests pass on the release's commit",
        true,
        Role::Operator,
    ),
    manual(
        "review.clean",
        "Code review",
        "No debug output and no hard-coded secrets or credentials in the code",
        false,
        Role::Operator,
    ),
    automatic(
        "env.required",
        "Environment configuration",
        "Every variable the compose file requires is set",
    ),
    automatic(
        "env.secrets",
        "Environment configuration",
        "Secrets are long enough and not the examples' values",
    ),
    automatic(
        "env.cors",
        "Environment configuration",
        "CORS_ORIGIN is the stack's public address",
    ),
    automatic(
        "env.urls",
        "Environment configuration",
        "DATABASE_URL and REDIS_URL point at services of the stack",
    ),
    manual(
        "env.credentials",
        "Environment configuration",
        "External API credentials are valid",
        false,
        Role::Operator,
    ),
    manual(
        "migrations.reviewed",
        "Database migrations",
        "Pending migrations reviewed, tried on staging, rollback SQL ready if destructive",
        true,
        Role::Operator,
    ),
    automatic(
        "migrations.pending",
        "Database migrations",
        "Pending migrations listed, and the release's run applies them",
    ),
    automatic(
        "migrations.backup",
        "Database migrations",
        "A verified backup younger than an hour",
    ),
    automatic(
        "dependencies.images",
        "Dependencies",
        "Every target image is on the engine or can be built",
    ),
    automatic(
        "dependencies.checks",
        "Dependencies",
        "The release checks pass in the new images (x-slipway.release_check)",
    ),
    manual(
        "dependencies.audit",
        "Dependencies",
        "Security audit passes: no high or critical vulnerabilities",
        true,
        Role::Operator,
    ),
    automatic(
        "platform.engine",
        "Platform",
        "The Docker engine answers and has disk to spare",
    ),
    manual(
        "communication.team",
        "Communication",
        "The team knows the schedule; an on-call engineer is available",
        true,
        Role::Operator,
    ),
    manual(
        "communication.customers",
        "Communication",
        "Customers are told if downtime is expected",
        false,
        Role::Operator,
    ),
];

/// What an automatic item found: passed or failed, and the evidence.
pub type Verdict = (ItemState, String);

/// What the automatic items look at: the stack with the release's settings applied.
pub struct Subject<'a> {
    pub store: &'a Store,
    pub engine: &'a Engine,
    pub stack: &'a StackSummary,
    pub sets: &'a [(String, String)],
    /// The run the release ships with.
    pub operation: crate::runs::Operation,
    /// The stack's public address, from its release policy (empty: not set).
    pub public_url: String,
    pub data_dir: &'a Path,
}

impl Subject<'_> {
    fn definition(&self) -> Result<StackDefinition, String> {
        crate::stacks::service::definition_with(self.stack, self.sets)
            .map_err(|error| error.to_string())
    }

    /// The env file's variables with the release's settings over them.
    fn variables(&self) -> Result<BTreeMap<String, String>, String> {
        let mut variables: BTreeMap<String, String> = match self.stack.env_file.as_deref() {
            Some(path) => compose::env_file_entries(Path::new(path))
                .map_err(|error| error.to_string())?
                .into_iter()
                .collect(),
            None => BTreeMap::new(),
        };
        variables.extend(self.sets.iter().cloned());
        Ok(variables)
    }

    /// Evaluates one automatic item.
    pub async fn evaluate(&self, key: &str) -> Verdict {
        let verdict = match key {
            "env.required" => self.definition().map(|definition| {
                format!(
                    "the compose file reads with the env file and the release's settings ({} services)",
                    definition.services.len()
                )
            }),
            "env.secrets" => self.secrets(),
            "env.urls" => self.urls(),
            "env.cors" => self.cors(),
            "migrations.pending" => self.pending_migrations().await,
            "migrations.backup" => self.backup().await,
            "dependencies.checks" => self.release_checks().await,
            "dependencies.images" => self.images().await,
            "platform.engine" => self.platform().await,
            other => Err(format!("no automatic check is called {other}")),
        };
        match verdict {
            Ok(evidence) => (ItemState::Pass, evidence),
            Err(reason) => (ItemState::Fail, reason),
        }
    }

    /// Every secret long enough for its name, and none equal to a value of an example env
    /// file beside the compose file (`.env.example`, `*.env.example`).
    fn secrets(&self) -> Result<String, String> {
        let variables = self.variables()?;
        let examples = self.example_values();
        let mut seen = Vec::new();
        for (name, value) in variables
            .iter()
            .filter(|(name, _)| secrets::is_secret_name(name))
        {
            if let Some(weak) = secrets::too_short(name, value) {
                return Err(weak);
            }
            if examples.get(name).is_some_and(|example| example == value) {
                return Err(format!("{name} is the example file's value"));
            }
            seen.push(format!("{name}: {} characters", value.chars().count()));
        }
        Ok(if seen.is_empty() {
            "no variable's name says it holds a secret".to_owned()
        } else {
            seen.join("; ")
        })
    }

    fn example_values(&self) -> BTreeMap<String, String> {
        let Some(folder) = Path::new(&self.stack.compose_file).parent() else {
            return BTreeMap::new();
        };
        let Ok(entries) = std::fs::read_dir(folder) else {
            return BTreeMap::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.ends_with(".env.example") || name == ".env.example")
            })
            .filter_map(|path| compose::env_file_entries(&path).ok())
            .flatten()
            .collect()
    }

    /// Each service's CORS_ORIGIN is the stack's public address.
    fn cors(&self) -> Result<String, String> {
        let definition = self.definition()?;
        let mut seen = Vec::new();
        for service in &definition.services {
            let lines = crate::stacks::lifecycle::environment_lines(&service.compose);
            let Some(origin) = lines
                .iter()
                .find_map(|line| line.strip_prefix("CORS_ORIGIN="))
            else {
                continue;
            };
            if self.public_url.is_empty() {
                return Err(format!(
                    "{} sets CORS_ORIGIN, but the stack's public address is not set (its release policy)",
                    service.name
                ));
            }
            if origin.trim_end_matches('/') != self.public_url {
                return Err(format!(
                    "{}'s CORS_ORIGIN is {origin}, not the stack's public address {}",
                    service.name, self.public_url
                ));
            }
            seen.push(format!("{} CORS_ORIGIN = {origin}", service.name));
        }
        Ok(if seen.is_empty() {
            "no service sets CORS_ORIGIN".to_owned()
        } else {
            seen.join("; ")
        })
    }

    /// Each service's DATABASE_URL, REDIS_URL or REDIS_ADDR names a service of the stack
    /// (only the host is shown: the rest may hold a password).
    fn urls(&self) -> Result<String, String> {
        let definition = self.definition()?;
        let names: Vec<&str> = definition
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let mut seen = Vec::new();
        for service in &definition.services {
            let lines = crate::stacks::lifecycle::environment_lines(&service.compose);
            for (variable, value) in lines.iter().filter_map(|line| line.split_once('=')) {
                if !["DATABASE_URL", "REDIS_URL", "REDIS_ADDR"].contains(&variable) {
                    continue;
                }
                let host = url::Url::parse(value)
                    .ok()
                    .and_then(|url| url.host_str().map(str::to_owned))
                    .or_else(|| value.split(':').next().map(str::to_owned))
                    .unwrap_or_default();
                if !names.contains(&host.as_str()) {
                    return Err(format!(
                        "{}'s {variable} points at {host:?}, which is not a service of the stack",
                        service.name
                    ));
                }
                seen.push(format!("{} {variable} → {host}", service.name));
            }
        }
        Ok(if seen.is_empty() {
            "no service sets DATABASE_URL, REDIS_URL or REDIS_ADDR".to_owned()
        } else {
            seen.join("; ")
        })
    }

    /// Runs `command` in a one-off container of `service` as the release defines it (its new
    /// image) on the stack's network (made if the stack never ran); the exit code and the
    /// lines it printed.
    /// `isolated`: without the service's volumes, privileges or added capabilities (a
    /// release check is the team's code in a new image; it reads nothing it does not need).
    async fn run_in(
        &self,
        definition: &StackDefinition,
        service: &crate::stacks::compose::ServiceDefinition,
        (command, isolated): (&[String], bool),
    ) -> Result<(i64, Vec<String>), String> {
        crate::stacks::lifecycle::prepare(self.engine, definition, &self.stack.project)
            .await
            .map_err(|error| error.to_string())?;
        let printed = std::sync::Mutex::new(Vec::new());
        let folder = Path::new(&self.stack.compose_file)
            .parent()
            .unwrap_or(Path::new("/"));
        let what = command.join(" ");
        let adjust = |body: &mut bollard::models::ContainerCreateBody| {
            body.cmd = Some(command.to_vec());
            if isolated {
                body.volumes = None;
                if let Some(host) = body.host_config.as_mut() {
                    host.binds = None;
                    host.mounts = None;
                    host.privileged = Some(false);
                    host.cap_add = None;
                    host.devices = None;
                }
            }
        };
        let code = crate::stacks::lifecycle::run_adjusted(
            self.engine,
            &self.stack.project,
            service,
            folder,
            (&what, crate::stacks::lifecycle::ONE_OFF_WITHIN),
            adjust,
            |line| {
                printed
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(line);
                async { Ok(()) }
            },
        )
        .await
        .map_err(|error| error.to_string())?;
        Ok((
            code,
            printed
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ))
    }

    /// Each service's `migrate_status` in its new image: the migrations its run must apply.
    async fn pending_migrations(&self) -> Result<String, String> {
        let definition = self.definition()?;
        let mut pending = Vec::new();
        let mut asked = 0;
        for service in &definition.services {
            let Some(command) = &service.migrate_status else {
                continue;
            };
            asked += 1;
            let (code, lines) = self.run_in(&definition, service, (command, false)).await?;
            if code != 0 {
                return Err(format!(
                    "{}: {} exited with {code}: {}",
                    service.name,
                    command.join(" "),
                    lines.last().cloned().unwrap_or_default()
                ));
            }
            pending.extend(
                lines
                    .iter()
                    .map(|line| line.trim())
                    .filter(|line| !line.is_empty())
                    .map(|line| format!("{} {line}", service.name)),
            );
        }
        if asked == 0 {
            return Ok("no service names x-slipway.migrate_status".into());
        }
        if pending.is_empty() {
            return Ok("no migration is pending".into());
        }
        let listed = format!("pending: {}", pending.join(", "));
        if self.operation == crate::runs::Operation::Update {
            return Err(format!(
                "{listed}; an update applies none: plan the release with migrate"
            ));
        }
        Ok(listed)
    }

    /// Each service's `release_check` in a one-off container of its new image must exit 0.
    async fn release_checks(&self) -> Result<String, String> {
        let definition = self.definition()?;
        let mut passed = Vec::new();
        for service in &definition.services {
            let Some(command) = &service.release_check else {
                continue;
            };
            let (code, lines) = self.run_in(&definition, service, (command, true)).await?;
            let said = lines
                .iter()
                .rev()
                .take(3)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ");
            if code != 0 {
                return Err(format!(
                    "{}: {} exited with {code}: {said}",
                    service.name,
                    command.join(" ")
                ));
            }
            passed.push(format!(
                "{}: {} passed ({said})",
                service.name,
                command.join(" ")
            ));
        }
        Ok(if passed.is_empty() {
            "no service names x-slipway.release_check".to_owned()
        } else {
            passed.join("; ")
        })
    }

    async fn backup(&self) -> Result<String, String> {
        let definition = self.definition()?;
        if !definition.services.iter().any(|s| s.backup.is_some()) {
            return Ok("the stack backs up no database".into());
        }
        let newest = crate::backups::service::newest_verified(self.store, &self.stack.name)
            .await
            .map_err(|error| error.to_string())?
            .ok_or_else(|| "the stack has no verified backup".to_owned())?;
        let age = chrono::DateTime::parse_from_rfc3339(&newest.finished_at)
            .map(|at| (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_minutes())
            .unwrap_or(i64::MAX);
        if age > BACKUP_FRESH_MINUTES {
            return Err(format!(
                "the newest verified backup, {}, is {age} minutes old (at most {BACKUP_FRESH_MINUTES})",
                newest.id
            ));
        }
        Ok(format!(
            "backup {} taken {}, verified {}",
            newest.id, newest.finished_at, newest.verified_at
        ))
    }

    async fn images(&self) -> Result<String, String> {
        let definition = self.definition()?;
        let mut seen = Vec::new();
        for service in &definition.services {
            if service.build.is_some() {
                seen.push(format!("{}: built from its context", service.name));
                continue;
            }
            let image = service.image.clone().unwrap_or_default();
            match self.engine.image_id(&image).await {
                Ok(id) => seen.push(format!("{}: {image} ({})", service.name, short(&id))),
                Err(_) => {
                    return Err(format!(
                        "{}: {image} is not on the engine (and no registry is reached)",
                        service.name
                    ))
                }
            }
        }
        Ok(seen.join("; "))
    }

    async fn platform(&self) -> Result<String, String> {
        let summary = self
            .engine
            .summary()
            .await
            .map_err(|error| crate::stacks::StackError::from(error).to_string())?;
        let mut disks = Vec::new();
        if summary.address.starts_with("unix://") {
            disks.extend(crate::stacks::service::disk_space(
                "the engine's",
                Path::new(&summary.root_dir),
            ));
        }
        disks.extend(crate::stacks::service::disk_space(
            "the console's",
            self.data_dir,
        ));
        let mut seen = vec![format!("Docker {} answers", summary.version)];
        for disk in disks {
            let free = disk.free_bytes as f64 / (1u64 << 30) as f64;
            if disk.free_bytes < LEAST_FREE_BYTES {
                return Err(format!(
                    "{} file system ({}) has {free:.1} GiB free, less than 1 GiB",
                    disk.purpose, disk.path
                ));
            }
            seen.push(format!("{} disk: {free:.1} GiB free", disk.purpose));
        }
        Ok(seen.join("; "))
    }
}

fn short(id: &str) -> &str {
    let id = id.trim_start_matches("sha256:");
    id.get(..12).unwrap_or(id)
}
