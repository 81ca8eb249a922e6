//! The CLI's side of the daemon API: one connection per call over the Unix socket, and
//! starting the daemon in the background when nothing answers.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

use super::api::{EnvironmentInfo, Event, JournalEntry, UpRequest, API_PREFIX};
use super::local::{LOG, SOCKET};

/// How long a daemon started in the background may take to answer on its socket.
const DAEMON_START_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {socket}: {reason}")]
    Unreachable { socket: PathBuf, reason: String },
    #[error("cannot start the daemon: {reason} (its log: {log})")]
    Start { reason: String, log: PathBuf },
    #[error("{title}: {detail}")]
    Refused {
        status: u16,
        title: String,
        detail: String,
    },
    #[error("the daemon answered something that is not its API: {0}")]
    Protocol(String),
}

/// A connection-per-call client of the daemon in `home`, or of a remote daemon.
pub struct Client {
    home: PathBuf,
    /// `ENVD_HOST` with `ENVD_TOKEN`: a daemon on another machine (`envd daemon --listen
    /// --environments`), under the gateway's rules.
    remote: Option<(crate::proxy::Upstream, hyper::header::HeaderValue)>,
}

impl Client {
    /// A client of the daemon in `home`, starting the daemon if none answers; with
    /// `ENVD_HOST` set, of that remote daemon instead (never started from here).
    pub async fn connect(home: &Path) -> Result<Client, ClientError> {
        if let Some(host) = std::env::var("ENVD_HOST").ok().filter(|h| !h.is_empty()) {
            let unreachable = |reason: String| ClientError::Unreachable {
                socket: PathBuf::from(&host),
                reason,
            };
            let ca = std::env::var_os("ENVD_CA_CERT").map(PathBuf::from);
            let upstream = crate::proxy::Upstream::new(&host, ca.as_deref())
                .map_err(|e| unreachable(e.to_string()))?;
            let token = std::env::var("ENVD_TOKEN").map_err(|_| {
                unreachable("ENVD_TOKEN is not set: a remote daemon needs its bearer token".into())
            })?;
            let token = super::Token::from_secret(token.trim()).bearer();
            let client = Client {
                home: home.to_owned(),
                remote: Some((upstream, token)),
            };
            client.call(Method::GET, "/health", None).await?;
            return Ok(client);
        }
        let client = Client {
            home: home.to_owned(),
            remote: None,
        };
        if client.call(Method::GET, "/health", None).await.is_ok() {
            return Ok(client);
        }
        client.start_daemon()?;
        let deadline = Instant::now() + DAEMON_START_DEADLINE;
        loop {
            match client.call(Method::GET, "/health", None).await {
                Ok(_) => return Ok(client),
                Err(error) if Instant::now() >= deadline => {
                    return Err(ClientError::Start {
                        reason: error.to_string(),
                        log: home.join(LOG),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn start_daemon(&self) -> Result<(), ClientError> {
        let log = self.home.join(LOG);
        let fail = |reason: String| ClientError::Start {
            reason,
            log: log.clone(),
        };
        std::fs::create_dir_all(&self.home).map_err(|e| fail(e.to_string()))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| fail(e.to_string()))?;
        let stderr = file.try_clone().map_err(|e| fail(e.to_string()))?;
        let program = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
        tracing::debug!(home = %self.home.display(), "starting the daemon");
        std::process::Command::new(program)
            .arg("daemon")
            .env("ENVD_HOME", &self.home)
            .stdin(std::process::Stdio::null())
            .stdout(file)
            .stderr(stderr)
            // Not in the CLI's process group: a Ctrl-C at the terminal must not reach it.
            .process_group(0)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let response = match &self.remote {
            Some(remote) => Self::send_remote(remote, method, path, body).await?,
            None => self.send_local(method, path, body).await?,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = read(response).await?;
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Err(ClientError::Refused {
            status,
            title: problem["title"].as_str().unwrap_or("refused").to_owned(),
            detail: problem["detail"].as_str().unwrap_or_default().to_owned(),
        })
    }

    async fn send_remote(
        (upstream, token): &(crate::proxy::Upstream, hyper::header::HeaderValue),
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let path: hyper::http::uri::PathAndQuery = format!("{API_PREFIX}{path}")
            .parse()
            .map_err(|_| ClientError::Protocol(path.to_owned()))?;
        let request = Request::builder()
            .method(method)
            .uri(upstream.uri(Some(&path)))
            .header(hyper::header::AUTHORIZATION, token.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Either::Left(Full::new(Bytes::from(
                body.unwrap_or_default(),
            ))))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        upstream
            .client()
            .request(request)
            .await
            .map_err(|e| ClientError::Unreachable {
                socket: PathBuf::from(upstream.to_string()),
                reason: e.to_string(),
            })
    }

    async fn send_local(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let socket = self.home.join(SOCKET);
        let unreachable = |reason: String| ClientError::Unreachable {
            socket: socket.clone(),
            reason,
        };
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::builder()
            .method(method)
            .uri(format!("{API_PREFIX}{path}"))
            .header(hyper::header::HOST, "envd")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, ClientError> {
        let body = read(self.call(method, path, None).await?).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Starts an environment; `progress` sees every event, the last of which is returned.
    pub async fn up(
        &self,
        request: &UpRequest,
        mut progress: impl FnMut(&Event),
    ) -> Result<Event, ClientError> {
        let body = serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut response = self.call(Method::POST, "/environments", Some(body)).await?;
        let mut pending = Vec::new();
        let mut last = None;
        while let Some(frame) = response.body_mut().frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event: Event = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                progress(&event);
                last = Some(event);
            }
        }
        last.ok_or_else(|| ClientError::Protocol("the start ended without a result".into()))
    }

    pub async fn list(&self) -> Result<Vec<EnvironmentInfo>, ClientError> {
        self.json(Method::GET, "/environments").await
    }

    pub async fn get(&self, env: &str) -> Result<EnvironmentInfo, ClientError> {
        self.json(Method::GET, &format!("/environments/{env}"))
            .await
    }

    pub async fn down(&self, env: &str) -> Result<EnvironmentInfo, ClientError> {
        self.json(Method::DELETE, &format!("/environments/{env}"))
            .await
    }

    /// The journal entries of `env`'s stubs and proxies (only `part`'s when named) that are
    /// newer than `since` gives per part.
    pub async fn journal(
        &self,
        env: &str,
        part: Option<&str>,
        unmatched: bool,
        since: &std::collections::BTreeMap<String, u64>,
    ) -> Result<Vec<JournalEntry>, ClientError> {
        let encode = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let mut query = Vec::new();
        if let Some(part) = part {
            query.push(format!("part={}", encode(part)));
        }
        if unmatched {
            query.push("unmatched=true".to_owned());
        }
        for (part, seq) in since {
            query.push(format!("since={}", encode(&format!("{part}:{seq}"))));
        }
        let path = format!("/environments/{env}/journal?{}", query.join("&"));
        self.json(Method::GET, &path).await
    }

    /// Streams a part's log into `out` as it arrives.
    pub async fn logs(
        &self,
        env: &str,
        part: &str,
        follow: bool,
        mut out: impl FnMut(&[u8]),
    ) -> Result<(), ClientError> {
        let path = format!(
            "/environments/{env}/logs/{part}{}",
            if follow { "?follow=true" } else { "" }
        );
        let mut response = self.call(Method::GET, &path, None).await?;
        while let Some(frame) = response.body_mut().frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                out(&data);
            }
        }
        Ok(())
    }
}

async fn read(response: Response<Incoming>) -> Result<Bytes, ClientError> {
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .to_bytes())
}
