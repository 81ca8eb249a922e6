//! The Docker runtime: a part as a container, through the Engine API (bollard). The only
//! module that knows bollard.
//!
//! Containers are labelled `envd.env=<id>` and `envd.part=<name>`, so a restarted daemon
//! finds what a dead one left by label alone; their port is published on 127.0.0.1 only;
//! `host.docker.internal` resolves to the host (host-gateway), where the daemon's stubs
//! listen on the bridge's gateway address.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};

use super::{RuntimeError, STOP_GRACE};

pub const LABEL_ENV: &str = "envd.env";
pub const LABEL_PART: &str = "envd.part";

/// The name containers use for the host.
pub const HOST_ALIAS: &str = "host.docker.internal";

/// A connection to the Docker engine (`DOCKER_HOST`, else /var/run/docker.sock).
#[derive(Clone)]
pub struct Engine {
    docker: bollard::Docker,
}

/// A started container.
pub struct Container {
    pub id: String,
    /// Where its port is published on the host.
    pub host_port: u16,
    engine: Engine,
    logs: tokio::task::JoinHandle<()>,
}

/// What to run.
pub struct Spec<'a> {
    pub environment: &'a str,
    pub part: &'a str,
    pub image: &'a str,
    /// Overrides the image's command when not empty.
    pub command: &'a [String],
    pub env: &'a std::collections::BTreeMap<String, String>,
    /// The port the container listens on, published on 127.0.0.1.
    pub port: u16,
    pub log: &'a Path,
}

impl Engine {
    pub async fn connect() -> Result<Engine, RuntimeError> {
        let unavailable = |reason: String| RuntimeError::Docker { reason };
        let docker = bollard::Docker::connect_with_local_defaults()
            .map_err(|e| unavailable(format!("no Docker engine to connect to: {e}")))?
            .negotiate_version()
            .await
            .map_err(|e| unavailable(format!("the Docker engine does not answer: {e}")))?;
        Ok(Engine { docker })
    }

    /// The host's address on the default bridge: where containers reach the daemon.
    pub async fn bridge_gateway(&self) -> Result<Ipv4Addr, RuntimeError> {
        let network = self
            .docker
            .inspect_network(
                "bridge",
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .map_err(|e| RuntimeError::Docker {
                reason: format!("cannot inspect the bridge network: {e}"),
            })?;
        let configs = network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default();
        for config in configs {
            if let Some(gateway) = config.gateway.as_deref().and_then(|g| g.parse().ok()) {
                return Ok(gateway);
            }
            // Older engines leave Gateway empty on the default bridge: it is the subnet's
            // first address.
            if let Some(network) = config
                .subnet
                .as_deref()
                .and_then(|s| s.split('/').next())
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            {
                return Ok(Ipv4Addr::from(u32::from(network) + 1));
            }
        }
        Err(RuntimeError::Docker {
            reason: "the bridge network has no IPv4 gateway".into(),
        })
    }

    /// Creates and starts the container, and streams its output into `spec.log`.
    pub async fn run(&self, spec: &Spec<'_>) -> Result<Container, RuntimeError> {
        if let Err(error) = self.docker.inspect_image(spec.image).await {
            return Err(match error {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => RuntimeError::NoImage {
                    image: spec.image.to_owned(),
                },
                other => RuntimeError::Docker {
                    reason: other.to_string(),
                },
            });
        }
        let docker_error = |e: bollard::errors::Error| RuntimeError::Docker {
            reason: e.to_string(),
        };
        let port_key = format!("{}/tcp", spec.port);
        let bindings = HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(String::new()),
            }]),
        )]);
        let body = ContainerCreateBody {
            image: Some(spec.image.to_owned()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.to_vec()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(HashMap::from([
                (LABEL_ENV.to_owned(), spec.environment.to_owned()),
                (LABEL_PART.to_owned(), spec.part.to_owned()),
            ])),
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(HostConfig {
                port_bindings: Some(bindings),
                extra_hosts: Some(vec![format!("{HOST_ALIAS}:host-gateway")]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("envd-{}-{}", spec.environment, spec.part);
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(docker_error)?;
        let id = created.id;
        let started = async {
            self.docker
                .start_container(
                    &id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(docker_error)?;
            let inspected = self
                .docker
                .inspect_container(
                    &id,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .map_err(docker_error)?;
            inspected
                .network_settings
                .and_then(|settings| settings.ports)
                .and_then(|ports| ports.get(&port_key).cloned().flatten())
                .and_then(|bindings| {
                    bindings
                        .into_iter()
                        .find_map(|b| b.host_port?.parse::<u16>().ok())
                })
                .ok_or_else(|| RuntimeError::Docker {
                    reason: format!("{name}: port {port_key} was not published"),
                })
        };
        let host_port = match started.await {
            Ok(port) => port,
            Err(error) => {
                self.remove(&id).await;
                return Err(error);
            }
        };
        let logs = tokio::spawn(stream_logs(
            self.docker.clone(),
            id.clone(),
            spec.log.to_owned(),
        ));
        tracing::debug!(container = %id, %name, host_port, "container started");
        Ok(Container {
            id,
            host_port,
            engine: self.clone(),
            logs,
        })
    }

    async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        if let Err(error) = self.docker.remove_container(id, Some(options)).await {
            tracing::warn!(container = %id, %error, "cannot remove container");
        }
    }

    /// Removes every container labelled with environment `id`; returns how many.
    pub async fn reap(&self, environment: &str) -> usize {
        let filters = HashMap::from([("label", vec![format!("{LABEL_ENV}={environment}")])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .unwrap_or_default();
        let mut reaped = 0;
        for container in containers {
            if let Some(id) = container.id {
                self.remove(&id).await;
                reaped += 1;
            }
        }
        reaped
    }
}

impl Container {
    /// Whether it has stopped running, and how.
    pub async fn exited(&self) -> Option<String> {
        let inspected = self
            .engine
            .docker
            .inspect_container(
                &self.id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .ok()?;
        let state = inspected.state?;
        if state.running == Some(true) {
            None
        } else {
            Some(format!(
                "exit status {}",
                state.exit_code.unwrap_or_default()
            ))
        }
    }

    /// Stop (SIGTERM, the grace period, SIGKILL: Docker's own), then remove.
    pub async fn stop(&mut self) {
        let options = StopContainerOptionsBuilder::new()
            .t(STOP_GRACE.as_secs() as i32)
            .build();
        let _ = self
            .engine
            .docker
            .stop_container(&self.id, Some(options))
            .await;
        self.engine.remove(&self.id).await;
        let _ = (&mut self.logs).await;
    }
}

async fn stream_logs(docker: bollard::Docker, id: String, log: PathBuf) {
    use tokio::io::AsyncWriteExt;
    use tokio_stream_lite::next;
    let Ok(mut file) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .await
    else {
        return;
    };
    let options = LogsOptionsBuilder::new()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = std::pin::pin!(docker.logs(&id, Some(options)));
    while let Some(Ok(output)) = next(&mut stream).await {
        if file.write_all(&output.into_bytes()).await.is_err() {
            return;
        }
    }
}

/// `StreamExt::next` without a futures dependency.
mod tokio_stream_lite {
    use std::pin::Pin;

    pub async fn next<S: futures_core::Stream + ?Sized>(
        stream: &mut Pin<&mut S>,
    ) -> Option<S::Item> {
        std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
    }
}
