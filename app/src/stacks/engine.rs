//! The Docker engine, through bollard (`DOCKER_HOST`, or the local socket). Every call has a
//! deadline of our own, so a stuck engine gives a clear error instead of a hung page.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    InspectNetworkOptions, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions, StatsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;

use futures::{Stream, StreamExt, TryStreamExt};

use super::compose::BuildSpec;
use super::{ContainerStatus, ContainerUsage, EngineSummary, LogLine};

/// How long one engine call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Compose's own label: containers of one project, whoever created them.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Slipway's digest of a container's definition: a changed compose file means a new container.
pub const CONFIG_HASH_LABEL: &str = "slipway.config-hash";

/// How long a streamed command may write nothing before it is given up.
const EXEC_IDLE: Duration = Duration::from_secs(120);

/// How fresh an answer of the engine must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// What a decision rests on: asked now.
    Now,
    /// What a page shows: the answer of the last second, shared by its viewers.
    Recent,
}

/// The engine's time limit for a health check that sets none.
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(30);

/// A container's health check: what [`Engine::health_check`] found.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// A chunk a streamed command wrote.
#[derive(Debug)]
pub enum ExecOutput {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// How long a container may take to stop after its stop signal, at most.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the Docker engine at {at} does not answer ({reason}); start it (dockerd) or point \
         DOCKER_HOST at a running engine"
    )]
    Unreachable { at: String, reason: String },
    #[error("the Docker engine at {at} did not answer within {seconds} s")]
    Timeout { at: String, seconds: u64 },
    #[error("the Docker engine refused: {0}")]
    Refused(String),
    /// The engine answered 404: no such image, container, network or volume.
    #[error("{0}")]
    Missing(String),
}

/// Where a followed log begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogsFrom {
    /// Only what the container writes from now on.
    Now,
    /// Everything the container wrote since it was created.
    Start,
    /// What it wrote from this Unix second on.
    Since(i64),
}

/// A connection to one Docker engine; cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    at: String,
}

impl Engine {
    /// Connects as the `docker` client would: `DOCKER_HOST`, else the local socket. Nothing
    /// is sent until the first call.
    pub fn connect() -> Result<Self, EngineError> {
        let at =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let docker = Docker::connect_with_defaults().map_err(|error| EngineError::Unreachable {
            at: at.clone(),
            reason: error.to_string(),
        })?;
        Ok(Self { docker, at })
    }

    async fn call<T>(
        &self,
        future: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, EngineError> {
        match tokio::time::timeout(CALL_TIMEOUT, future).await {
            Err(_) => Err(EngineError::Timeout {
                at: self.at.clone(),
                seconds: CALL_TIMEOUT.as_secs(),
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.classify(error)),
        }
    }

    fn classify(&self, error: bollard::errors::Error) -> EngineError {
        use bollard::errors::Error;
        match error {
            Error::DockerResponseServerError {
                status_code: 404,
                message,
            } => EngineError::Missing(message),
            Error::DockerResponseServerError { message, .. } => EngineError::Refused(message),
            other => EngineError::Unreachable {
                at: self.at.clone(),
                reason: other.to_string(),
            },
        }
    }

    /// Version and counts, for the troubleshooting panel.
    pub async fn summary(&self) -> Result<EngineSummary, EngineError> {
        let version = self.call(self.docker.version()).await?;
        let info = self.call(self.docker.info()).await?;
        Ok(EngineSummary {
            address: self.at.clone(),
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            containers_running: info.containers_running.unwrap_or_default(),
            containers: info.containers.unwrap_or_default(),
            images: info.images.unwrap_or_default(),
            root_dir: info.docker_root_dir.unwrap_or_default(),
        })
    }

    /// Whether the engine has a network of this name.
    pub async fn network_exists(&self, name: &str) -> Result<bool, EngineError> {
        match self
            .call(
                self.docker
                    .inspect_network(name, None::<InspectNetworkOptions>),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(EngineError::Missing(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Creates a network unless one of its name exists.
    pub async fn ensure_network(&self, request: NetworkCreateRequest) -> Result<(), EngineError> {
        if self.network_exists(&request.name).await? {
            return Ok(());
        }
        self.call(self.docker.create_network(request))
            .await
            .map(|_| ())
    }

    /// Joins a container to another network.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        endpoint: bollard::models::EndpointSettings,
    ) -> Result<(), EngineError> {
        let request = bollard::models::NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: Some(endpoint),
        };
        self.call(self.docker.connect_network(network, request))
            .await
    }

    /// Creates a named volume of the project unless it exists (creating is idempotent).
    pub async fn ensure_volume(
        &self,
        project: &str,
        volume: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(HashMap::from([
                (PROJECT_LABEL.to_owned(), project.to_owned()),
                ("com.docker.compose.volume".to_owned(), volume.to_owned()),
            ])),
            ..Default::default()
        };
        self.call(self.docker.create_volume(request))
            .await
            .map(|_| ())
    }

    /// Whether a volume of that name exists.
    pub async fn volume_exists(&self, name: &str) -> Result<bool, EngineError> {
        match self.call(self.docker.inspect_volume(name)).await {
            Ok(_) => Ok(true),
            Err(EngineError::Missing(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Creates a container and returns its id.
    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, EngineError> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self
            .call(self.docker.create_container(Some(options), body))
            .await?;
        Ok(created.id)
    }

    pub async fn start_container(&self, id: &str) -> Result<(), EngineError> {
        self.call(
            self.docker
                .start_container(id, None::<StartContainerOptions>),
        )
        .await
    }

    /// Stops a container: its stop signal, then SIGKILL after `grace`.
    pub async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        let grace = grace.min(STOP_TIMEOUT);
        let options = StopContainerOptionsBuilder::new()
            .t(grace.as_secs() as i32)
            .build();
        let stop = self.docker.stop_container(id, Some(options));
        // The engine's own wait plus a margin: our deadline must not cut it short.
        match tokio::time::timeout(grace + CALL_TIMEOUT, stop).await {
            Err(_) => Err(EngineError::Timeout {
                at: self.at.clone(),
                seconds: (grace + CALL_TIMEOUT).as_secs(),
            }),
            // 304: already stopped.
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            })) => Ok(()),
            Ok(result) => result.map_err(|error| self.classify(error)),
        }
    }

    /// Removes a stopped container and its anonymous volumes.
    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        self.call(self.docker.remove_container(id, Some(options)))
            .await
    }

    /// Gives a container another name.
    pub async fn rename_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::RenameContainerOptionsBuilder::default()
            .name(name)
            .build();
        self.call(self.docker.rename_container(id, options)).await
    }

    /// Removes a container and keeps its volumes: a recreated container takes its anonymous
    /// ones over, as Compose does.
    pub async fn remove_container_keeping_volumes(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(false)
            .build();
        self.call(self.docker.remove_container(id, Some(options)))
            .await
    }

    /// The anonymous volumes mounted in a container (those the engine named, 64 hex digits —
    /// an image's `VOLUME` that no compose file names), each with where it is mounted.
    pub async fn anonymous_volumes(&self, id: &str) -> Result<Vec<(String, String)>, EngineError> {
        let inspect = self
            .call(
                self.docker
                    .inspect_container(id, None::<InspectContainerOptions>),
            )
            .await?;
        Ok(inspect
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|mount| mount.typ.as_deref() == Some("volume"))
            .filter_map(|mount| Some((mount.name?, mount.destination?)))
            .filter(|(name, _)| name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()))
            .collect())
    }

    /// The container's health check as the engine runs it (from the compose file or the
    /// image's `HEALTHCHECK`): the command to exec and its time limit; `None` without one.
    pub async fn health_check(&self, id: &str) -> Result<Option<HealthCheck>, EngineError> {
        let inspect = self
            .call(
                self.docker
                    .inspect_container(id, None::<InspectContainerOptions>),
            )
            .await?;
        let Some(config) = inspect.config else {
            return Ok(None);
        };
        let Some(check) = config.healthcheck else {
            return Ok(None);
        };
        let test = check.test.unwrap_or_default();
        let command = match test.split_first() {
            Some((kind, args)) if kind == "CMD" && !args.is_empty() => args.to_vec(),
            // As the engine runs a shell-form check: the container's `SHELL` (`/bin/sh -c`
            // by default) followed by the test's words.
            Some((kind, args)) if kind == "CMD-SHELL" && !args.is_empty() => {
                let shell = config
                    .shell
                    .filter(|shell| !shell.is_empty())
                    .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                shell.into_iter().chain(args.iter().cloned()).collect()
            }
            _ => return Ok(None),
        };
        let timeout = check
            .timeout
            .filter(|nanos| *nanos > 0)
            .map_or(DEFAULT_HEALTH_TIMEOUT, |nanos| {
                Duration::from_nanos(nanos.unsigned_abs())
            });
        Ok(Some(HealthCheck { command, timeout }))
    }

    /// Every container that carries `label`, whatever its value: its id and labels.
    pub async fn labelled(
        &self,
        label: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>, EngineError> {
        let filters = HashMap::from([("label", vec![label.to_owned()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let found = self
            .call(self.docker.list_containers(Some(options)))
            .await?;
        Ok(found
            .into_iter()
            .filter_map(|summary| Some((summary.id?, summary.labels.unwrap_or_default())))
            .collect())
    }

    /// The last `tail` lines a container wrote, oldest first.
    pub async fn logs(
        &self,
        id: &str,
        service: &str,
        tail: usize,
    ) -> Result<Vec<LogLine>, EngineError> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail(&tail.to_string())
            .build();
        let chunks: Vec<_> = self
            .call(self.docker.logs(id, Some(options)).try_collect())
            .await?;
        Ok(chunks
            .into_iter()
            .flat_map(|chunk| log_lines(service, chunk))
            .collect())
    }

    /// Lines as a container writes them, from `from` on, until it stops or the stream is
    /// dropped. No deadline here: a quiet container is not a stuck engine.
    pub fn follow_logs(
        &self,
        id: &str,
        service: &str,
        from: LogsFrom,
    ) -> impl Stream<Item = Result<LogLine, EngineError>> + use<> {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .follow(true);
        let options = match from {
            LogsFrom::Now => options.tail("0"),
            LogsFrom::Start => options.tail("all"),
            // The engine counts in whole seconds.
            LogsFrom::Since(unix) => options
                .tail("all")
                .since(i32::try_from(unix).unwrap_or(i32::MAX)),
        }
        .build();
        let service = service.to_owned();
        let engine = self.clone();
        self.docker.logs(id, Some(options)).flat_map(move |chunk| {
            let lines: Vec<Result<LogLine, EngineError>> = match chunk {
                Ok(chunk) => log_lines(&service, chunk).into_iter().map(Ok).collect(),
                Err(error) => vec![Err(engine.classify(error))],
            };
            futures::stream::iter(lines)
        })
    }

    /// CPU and memory of a running container, from two samples the engine takes (about 1 s).
    pub async fn usage(&self, id: &str, service: &str) -> Result<ContainerUsage, EngineError> {
        let options = StatsOptionsBuilder::new().stream(false).build();
        let mut stats = self.docker.stats(id, Some(options));
        let sample = self
            .call(async { stats.next().await.transpose() })
            .await?
            .ok_or_else(|| EngineError::Refused(format!("no statistics for {id}")))?;
        let total = |cpu: &Option<bollard::models::ContainerCpuStats>| {
            let cpu = cpu.as_ref();
            (
                cpu.and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0),
                cpu.and_then(|c| c.system_cpu_usage).unwrap_or(0),
            )
        };
        let (used_now, system_now) = total(&sample.cpu_stats);
        let (used_before, system_before) = total(&sample.precpu_stats);
        let cpus = sample
            .cpu_stats
            .as_ref()
            .and_then(|c| c.online_cpus)
            .unwrap_or(1) as f64;
        let system_delta = system_now.saturating_sub(system_before) as f64;
        let cpu_percent = if system_delta > 0.0 {
            used_now.saturating_sub(used_before) as f64 / system_delta * cpus * 100.0
        } else {
            0.0
        };
        let memory = sample.memory_stats.unwrap_or_default();
        // The page cache is not the container's own memory.
        let cache = memory
            .stats
            .as_ref()
            .and_then(|stats| {
                stats
                    .get("inactive_file")
                    .or_else(|| stats.get("cache"))
                    .copied()
            })
            .unwrap_or(0);
        Ok(ContainerUsage {
            service: service.to_owned(),
            cpu_percent,
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
        })
    }

    /// Runs `command` in the container and returns its output as it comes — never held whole,
    /// so a dump of any size streams through — with the exec's id for [`Self::exec_exit_code`].
    /// A command silent for [`EXEC_IDLE`] ends the stream with a timeout.
    pub async fn exec_streaming(
        &self,
        id: &str,
        command: Vec<String>,
    ) -> Result<
        (
            String,
            impl Stream<Item = Result<ExecOutput, EngineError>> + Send + '_,
        ),
        EngineError,
    > {
        let config = CreateExecOptions {
            cmd: Some(command),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self.call(self.docker.create_exec(id, config)).await?;
        let started = self.call(self.docker.start_exec(&created.id, None)).await?;
        let StartExecResults::Attached { output, .. } = started else {
            return Err(EngineError::Refused(
                "the engine did not attach to the command".into(),
            ));
        };
        let at = self.at.clone();
        let output = futures::stream::unfold(output, move |mut output| {
            let at = at.clone();
            async move {
                let next = match tokio::time::timeout(EXEC_IDLE, output.next()).await {
                    Err(_) => Some(Err(EngineError::Timeout {
                        at,
                        seconds: EXEC_IDLE.as_secs(),
                    })),
                    Ok(None) => None,
                    Ok(Some(Ok(bollard::container::LogOutput::StdOut { message }))) => {
                        Some(Ok(ExecOutput::Stdout(message)))
                    }
                    Ok(Some(Ok(bollard::container::LogOutput::StdErr { message }))) => {
                        Some(Ok(ExecOutput::Stderr(message)))
                    }
                    Ok(Some(Ok(_))) => Some(Ok(ExecOutput::Stderr(Default::default()))),
                    Ok(Some(Err(error))) => Some(Err(EngineError::Refused(error.to_string()))),
                };
                next.map(|item| (item, output))
            }
        });
        Ok((created.id, output))
    }

    /// Runs `command` in the container to the end: its exit code and everything it wrote
    /// (stdout and stderr), for short commands.
    pub async fn exec_status(
        &self,
        id: &str,
        command: Vec<String>,
    ) -> Result<(i64, String), EngineError> {
        let (exec, output) = self.exec_streaming(id, command).await?;
        let mut output = std::pin::pin!(output);
        let mut said = Vec::new();
        while let Some(chunk) = output.next().await {
            match chunk? {
                ExecOutput::Stdout(bytes) | ExecOutput::Stderr(bytes) => {
                    said.extend_from_slice(&bytes)
                }
            }
        }
        let code = self.exec_exit_code(&exec).await?;
        Ok((code, String::from_utf8_lossy(&said).into_owned()))
    }

    /// Runs `command` in the container to the end and returns its exit code; what it writes
    /// is read and dropped, never held.
    pub async fn exec_exit_status(
        &self,
        id: &str,
        command: Vec<String>,
    ) -> Result<i64, EngineError> {
        let (exec, output) = self.exec_streaming(id, command).await?;
        let mut output = std::pin::pin!(output);
        while let Some(chunk) = output.next().await {
            chunk?;
        }
        self.exec_exit_code(&exec).await
    }

    /// The exit code of a finished [`Self::exec_streaming`] command.
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<i64, EngineError> {
        let inspected = self.call(self.docker.inspect_exec(exec_id)).await?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }

    /// Waits until a container exits and returns its exit code, at most `within`.
    pub async fn wait_exit(&self, id: &str, within: Duration) -> Result<i64, EngineError> {
        let mut waiting = self
            .docker
            .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
        match tokio::time::timeout(within, waiting.next()).await {
            Err(_) => Err(EngineError::Timeout {
                at: self.at.clone(),
                seconds: within.as_secs(),
            }),
            Ok(None) => Err(EngineError::Refused(format!("no exit status for {id}"))),
            Ok(Some(Ok(response))) => Ok(response.status_code),
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Ok(code)
            }
            Ok(Some(Err(error))) => Err(self.classify(error)),
        }
    }

    /// The id of the image a name or tag stands for now.
    pub async fn image_id(&self, image: &str) -> Result<String, EngineError> {
        let inspected = self.call(self.docker.inspect_image(image)).await?;
        Ok(inspected.id.unwrap_or_default())
    }

    /// When the image was built, as its `org.opencontainers.image.created` label says; empty
    /// when it has no such label.
    pub async fn image_built_at(&self, image: &str) -> Result<String, EngineError> {
        let inspected = self.call(self.docker.inspect_image(image)).await?;
        Ok(inspected
            .config
            .and_then(|config| config.labels)
            .and_then(|labels| labels.get("org.opencontainers.image.created").cloned())
            .unwrap_or_default())
    }

    /// Builds `tag` from a tar archive of the build context with the engine's classic
    /// builder (a local base image needs no registry) and yields the builder's output line
    /// by line; a failed instruction ends the stream with its message. No deadline per call:
    /// the caller bounds the whole build. The image carries Compose's project and service
    /// labels, as Compose gives the images it builds: cleanup knows it by them.
    pub fn build_image<'a>(
        &'a self,
        tag: &str,
        spec: &BuildSpec,
        project: &str,
        service: &str,
        context: Vec<u8>,
    ) -> impl Stream<Item = Result<String, EngineError>> + 'a {
        let mut labels: HashMap<&str, &str> = spec
            .labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        labels.extend([(PROJECT_LABEL, project), (SERVICE_LABEL, service)]);
        let mut options = BuildImageOptionsBuilder::new()
            .dockerfile(&spec.dockerfile)
            .t(tag)
            .labels(&labels)
            .rm(true)
            .forcerm(true)
            .nocache(spec.no_cache)
            .buildargs(&spec.args.clone().into_iter().collect::<HashMap<_, _>>());
        if let Some(target) = &spec.target {
            options = options.target(target);
        }
        if let Some(network) = &spec.network {
            options = options.networkmode(network);
        }
        // Checked when the file is read: under 2 GiB.
        if let Some(size) = spec.shm_size.and_then(|size| i32::try_from(size).ok()) {
            options = options.shmsize(size);
        }
        if !spec.cache_from.is_empty() {
            options = options.cachefrom(&spec.cache_from);
        }
        if spec.pull {
            options = options.pull("1");
        }
        self.docker
            .build_image(
                options.build(),
                None,
                Some(bollard::body_full(context.into())),
            )
            .flat_map(move |info| {
                let lines: Vec<Result<String, EngineError>> = match info {
                    Ok(info) => match info.error_detail.and_then(|detail| detail.message) {
                        Some(message) => vec![Err(EngineError::Refused(message))],
                        None => info
                            .stream
                            .or(info.status)
                            .unwrap_or_default()
                            .lines()
                            .map(str::trim_end)
                            .filter(|line| !line.trim().is_empty())
                            .map(|line| Ok(line.to_owned()))
                            .collect(),
                    },
                    Err(error) => vec![Err(self.classify(error))],
                };
                futures::stream::iter(lines)
            })
    }

    /// Untagged images built for `project` (by its Compose label): their id and when they
    /// were made (Unix seconds). Other projects' images are never listed.
    pub async fn dangling_images(&self, project: &str) -> Result<Vec<(String, i64)>, EngineError> {
        let filters = HashMap::from([
            ("dangling", vec!["true".to_owned()]),
            ("label", vec![format!("{PROJECT_LABEL}={project}")]),
        ]);
        let options = ListImagesOptionsBuilder::new().filters(&filters).build();
        let images = self.call(self.docker.list_images(Some(options))).await?;
        Ok(images
            .into_iter()
            .map(|image| (image.id, image.created))
            .collect())
    }

    pub async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        self.call(self.docker.remove_image(
            id,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        ))
        .await
        .map(|_| ())
    }

    /// [`Engine::project_containers`] now, or as answered within the last second.
    pub async fn project_containers_read(
        &self,
        project: &str,
        reading: Reading,
    ) -> Result<Vec<ContainerStatus>, EngineError> {
        match reading {
            Reading::Now => self.project_containers(project).await,
            Reading::Recent => self.recent_project_containers(project).await,
        }
    }

    /// What [`Engine::project_containers`] answered within the last second, for pages (see
    /// `stacks::recent`).
    pub async fn recent_project_containers(
        &self,
        project: &str,
    ) -> Result<Vec<ContainerStatus>, EngineError> {
        super::recent::CONTAINERS
            .get_or_ask(
                (self.at.clone(), project.to_owned()),
                self.project_containers(project),
            )
            .await
    }

    /// Every container of a Compose project, running or not, by service then name.
    pub async fn project_containers(
        &self,
        project: &str,
    ) -> Result<Vec<ContainerStatus>, EngineError> {
        self.containers_labelled(vec![format!("{PROJECT_LABEL}={project}")])
            .await
    }

    /// The containers of one service of a Compose project, running or not.
    pub async fn service_containers(
        &self,
        project: &str,
        service: &str,
    ) -> Result<Vec<ContainerStatus>, EngineError> {
        self.containers_labelled(vec![
            format!("{PROJECT_LABEL}={project}"),
            format!("{SERVICE_LABEL}={service}"),
        ])
        .await
    }

    /// The containers that carry every one of `labels` (`key=value`), each inspected.
    async fn containers_labelled(
        &self,
        labels: Vec<String>,
    ) -> Result<Vec<ContainerStatus>, EngineError> {
        let filters = HashMap::from([("label", labels)]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .call(self.docker.list_containers(Some(options)))
            .await?;
        let mut containers = Vec::new();
        for summary in summaries {
            let Some(id) = summary.id.clone() else {
                continue;
            };
            // A container listed a moment ago may be gone now (an update replaced it,
            // another tool removed it): it is simply no longer part of the stack.
            let inspect = match self
                .call(
                    self.docker
                        .inspect_container(&id, None::<InspectContainerOptions>),
                )
                .await
            {
                Err(EngineError::Missing(_)) => continue,
                inspected => inspected?,
            };
            let labels = summary.labels.clone().unwrap_or_default();
            let state = inspect.state.clone().unwrap_or_default();
            let running = state.running.unwrap_or(false);
            containers.push(ContainerStatus {
                service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                name: summary
                    .names
                    .and_then(|names| names.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_owned(),
                id: id.chars().take(12).collect(),
                state: state
                    .status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                health: state
                    .health
                    .and_then(|health| health.status)
                    .map(|status| status.to_string())
                    .filter(|status| !status.is_empty())
                    .unwrap_or_else(|| "none".into()),
                image: summary.image.unwrap_or_default(),
                image_id: summary
                    .image_id
                    .unwrap_or_default()
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect(),
                ports: summary
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|port| {
                        let public = port.public_port?;
                        Some(format!(
                            "{}:{public}→{}",
                            port.ip.unwrap_or_default(),
                            port.private_port
                        ))
                    })
                    .collect(),
                started_at: if running { state.started_at } else { None },
                restarts: inspect.restart_count.unwrap_or_default(),
                created_unix: summary.created.unwrap_or_default(),
                config_hash: labels.get(CONFIG_HASH_LABEL).cloned().unwrap_or_default(),
            });
        }
        containers.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        Ok(containers)
    }
}

/// Splits one chunk of log output into lines; `timestamps(true)` puts the time first.
fn log_lines(service: &str, chunk: bollard::container::LogOutput) -> Vec<LogLine> {
    use bollard::container::LogOutput;
    let (stream, bytes) = match chunk {
        LogOutput::StdErr { message } => ("stderr", message),
        LogOutput::StdOut { message } | LogOutput::Console { message } => ("stdout", message),
        LogOutput::StdIn { message } => ("stdin", message),
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (at, text) = line.split_once(' ').unwrap_or(("", line));
            LogLine {
                service: service.to_owned(),
                at: at.to_owned(),
                stream: stream.to_owned(),
                text: text.to_owned(),
            }
        })
        .collect()
}
