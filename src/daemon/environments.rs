//! The environments a daemon owns: starting their parts, tearing them down, their TTLs,
//! and the state file that lets a restarted daemon reap what a dead one left.
//!
//! Start order: `service` dependencies, then stubs and proxies (in this process, one
//! listener each on an allocated port), then the service under test with `PORT` and each
//! dependency's `url_env`. A part that fails stops the start; everything started so far is
//! stopped before the failure is reported. Stop order is the reverse.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::daemon::api::{EnvironmentInfo, Event, JournalEntry, PartInfo, PartState, UpRequest};
use crate::journal::Journal;
use crate::manifest::{self, Dependency, Mode, Plan, Process};
use crate::runtime::{self, docker, ProcessId, Running, Watched};

/// The state file, beside the socket: what runs, so a restart can reap it.
const STATE_FILE: &str = "state.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    environments: BTreeMap<String, Vec<ProcessId>>,
}

/// A part that runs: a listener in this process, or a process of its own.
enum Handle {
    Listener {
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    },
    Process(Box<Running>),
    Container(Box<docker::Container>),
}

impl Handle {
    async fn stop(&mut self) {
        match self {
            Handle::Process(running) => running.stop().await,
            Handle::Container(container) => container.stop().await,
            Handle::Listener { stop, task } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                let _ = task.await;
            }
        }
    }
}

/// What every part of one start shares: where stubs listen, and the Docker engine when a
/// part is a container.
struct Context {
    /// Loopback, or the Docker bridge's gateway when a container must reach the stubs.
    bind: std::net::IpAddr,
    engine: Option<docker::Engine>,
}

impl Context {
    async fn for_plan(plan: &Plan) -> Result<Context, (String, String, Vec<String>)> {
        let processes = plan.deps.iter().filter_map(|d| match &d.mode {
            Mode::Service { process, .. } => Some(process),
            _ => None,
        });
        let Some(first) = std::iter::once(&plan.service)
            .chain(processes)
            .find(|p| p.image.is_some())
        else {
            return Ok(Context {
                bind: [127, 0, 0, 1].into(),
                engine: None,
            });
        };
        let fail = |e: runtime::RuntimeError| (first.name.clone(), e.to_string(), Vec::new());
        let engine = docker::Engine::connect().await.map_err(fail)?;
        let gateway = engine.bridge_gateway().await.map_err(fail)?;
        Ok(Context {
            bind: gateway.into(),
            engine: Some(engine),
        })
    }

    /// A URL handed to a container: the host as containers see it.
    fn for_container(&self, url: &str) -> String {
        url.replace(
            &format!("//{}:", self.bind),
            &format!("//{}:", docker::HOST_ALIAS),
        )
        .replace("//127.0.0.1:", &format!("//{}:", docker::HOST_ALIAS))
    }
}

struct Part {
    info: PartInfo,
    handle: Handle,
    log: Option<PathBuf>,
    /// What a stub or proxy saw (`envd journal`); processes keep none.
    journal: Option<Arc<Journal>>,
}

struct Environment {
    info: EnvironmentInfo,
    /// Taken out whole for teardown, so no lock is held across the stops.
    parts: Vec<Part>,
    ttl: Option<tokio::task::JoinHandle<()>>,
    /// Set when it is torn down, so a start still in progress stops waiting and stops what
    /// it holds.
    torn_down: tokio::sync::watch::Sender<bool>,
}

/// Every environment of this daemon.
pub struct Environments {
    home: PathBuf,
    environments: Mutex<BTreeMap<String, Environment>>,
    /// Serializes writes of the state file.
    persist: Mutex<()>,
}

impl Environments {
    /// Reaps what a previous daemon left in `home` (per the state file), then starts empty.
    pub async fn open(home: &Path) -> Arc<Environments> {
        let path = home.join(STATE_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str::<State>(&text) {
                Ok(state) => {
                    // Containers are found by label; the engine is asked only when there
                    // is something to reap.
                    let engine = match state.environments.is_empty() {
                        true => None,
                        false => docker::Engine::connect().await.ok(),
                    };
                    for (id, processes) in state.environments {
                        let mut reaped =
                            processes.into_iter().filter(|p| runtime::reap(*p)).count();
                        if let Some(engine) = &engine {
                            reaped += engine.reap(&id).await;
                        }
                        tracing::warn!(environment = %id, reaped, "reaped an environment a previous daemon left running");
                    }
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable state file; nothing to reap")
                }
            }
        }
        let environments = Arc::new(Environments {
            home: home.to_owned(),
            environments: Mutex::new(BTreeMap::new()),
            persist: Mutex::new(()),
        });
        environments.persist();
        environments
    }

    pub fn list(&self) -> Vec<EnvironmentInfo> {
        let mut environments = self.environments.lock().unwrap();
        environments
            .values_mut()
            .map(|environment| {
                refresh(environment);
                environment.info.clone()
            })
            .collect()
    }

    /// The id of `key`: an id, or a name that one environment has.
    pub fn resolve(&self, key: &str) -> Result<String, String> {
        let environments = self.environments.lock().unwrap();
        if environments.contains_key(key) {
            return Ok(key.to_owned());
        }
        let named: Vec<&String> = environments
            .values()
            .filter(|e| e.info.name == key)
            .map(|e| &e.info.id)
            .collect();
        match named.as_slice() {
            [id] => Ok((*id).clone()),
            [] => Err(format!(
                "no environment {key:?} ({})",
                match environments.keys().map(String::as_str).collect::<Vec<_>>() {
                    ids if ids.is_empty() => "none is up".to_owned(),
                    ids => format!("up: {}", ids.join(", ")),
                }
            )),
            several => Err(format!(
                "{} environments are named {key:?}: give an id ({})",
                several.len(),
                several
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    pub fn get(&self, id: &str) -> Option<EnvironmentInfo> {
        let mut environments = self.environments.lock().unwrap();
        let environment = environments.get_mut(id)?;
        refresh(environment);
        Some(environment.info.clone())
    }

    /// The log file of `part` in environment `id`.
    pub fn log(&self, id: &str, part: &str) -> Result<PathBuf, String> {
        let environments = self.environments.lock().unwrap();
        let environment = environments
            .get(id)
            .ok_or_else(|| format!("no environment {id:?}"))?;
        let found = environment
            .parts
            .iter()
            .find(|p| p.info.name == part)
            .ok_or_else(|| format!("environment {id} has no part {part:?}"))?;
        found.log.clone().ok_or_else(|| {
            format!(
                "{part} is a {} served inside the daemon; it writes no log of its own",
                found.info.mode
            )
        })
    }

    /// The journal entries of environment `id`'s stubs and proxies (only `part`'s when
    /// named), after the `seq` that `since` gives per part, oldest first.
    pub fn journal(
        &self,
        id: &str,
        part: Option<&str>,
        since: &BTreeMap<String, u64>,
        unmatched: bool,
    ) -> Result<Vec<JournalEntry>, String> {
        // The journals are shared: cloned out under the lock, read after it.
        let journals: Vec<(String, Arc<Journal>)> = {
            let environments = self.environments.lock().unwrap();
            let environment = environments
                .get(id)
                .ok_or_else(|| format!("no environment {id:?}"))?;
            let journaled = || {
                let names: Vec<&str> = environment
                    .parts
                    .iter()
                    .filter(|p| p.journal.is_some())
                    .map(|p| p.info.name.as_str())
                    .collect();
                match names.as_slice() {
                    [] => "it has no stub or proxy".to_owned(),
                    names => format!("its stubs and proxies: {}", names.join(", ")),
                }
            };
            match part {
                Some(name) => {
                    let found = environment
                        .parts
                        .iter()
                        .find(|p| p.info.name == name)
                        .ok_or_else(|| {
                            format!("environment {id} has no part {name:?} ({})", journaled())
                        })?;
                    let journal = found.journal.clone().ok_or_else(|| {
                        format!(
                            "{name} is a {}; only stubs and proxies keep a journal ({})",
                            found.info.mode,
                            journaled()
                        )
                    })?;
                    vec![(name.to_owned(), journal)]
                }
                None => environment
                    .parts
                    .iter()
                    .filter_map(|p| Some((p.info.name.clone(), p.journal.clone()?)))
                    .collect(),
            }
        };
        let mut entries: Vec<JournalEntry> = journals
            .into_iter()
            .flat_map(|(part, journal)| {
                journal
                    .since(since.get(&part).copied(), unmatched)
                    .into_iter()
                    .map(move |entry| JournalEntry {
                        part: part.clone(),
                        entry,
                    })
            })
            .collect();
        entries.sort_by_key(|e| e.entry.at_ms);
        Ok(entries)
    }

    /// Starts the environment, reporting progress on `events`.
    pub async fn up(self: &Arc<Self>, request: UpRequest, events: mpsc::Sender<Event>) {
        let plan = request.plan;
        let id = format!("{}-{}", plan.name, short_id());
        let dir = self.home.join("environments").join(&id);
        let created_ms = crate::journal::now_ms();
        let ttl = request.ttl_secs.or(plan.ttl_secs).map(Duration::from_secs);
        let info = EnvironmentInfo {
            id: id.clone(),
            name: plan.name.clone(),
            manifest: plan.manifest.clone(),
            created_ms,
            expires_ms: ttl.map(|ttl| created_ms + ttl.as_millis() as u64),
            parts: Vec::new(),
            vars: BTreeMap::new(),
        };
        self.environments.lock().unwrap().insert(
            id.clone(),
            Environment {
                info,
                parts: Vec::new(),
                ttl: None,
                torn_down: tokio::sync::watch::Sender::new(false),
            },
        );
        let _ = events.send(Event::Created { id: id.clone() }).await;
        if let Err(error) = std::fs::create_dir_all(&dir) {
            let _ = events
                .send(Event::Failed {
                    part: "environment".into(),
                    error: format!("cannot create {}: {error}", dir.display()),
                    logs: Vec::new(),
                })
                .await;
            self.down(&id).await;
            return;
        }
        match self.start(&id, &plan, &dir, &events).await {
            Ok(()) => {
                if let Some(ttl) = ttl {
                    let environments = self.clone();
                    let expiring = id.clone();
                    let task = tokio::spawn(async move {
                        expire_after(ttl, || async move {
                            tracing::info!(environment = %expiring, "TTL reached; tearing down");
                            environments.down(&expiring).await;
                        })
                        .await
                    });
                    if let Some(environment) = self.environments.lock().unwrap().get_mut(&id) {
                        environment.ttl = Some(task);
                    }
                }
                if let Some(info) = self.get(&id) {
                    let _ = events.send(Event::Up { environment: info }).await;
                }
            }
            Err((part, error, logs)) => {
                tracing::warn!(%part, %error, "start failed; tearing down");
                self.down(&id).await;
                let _ = events.send(Event::Failed { part, error, logs }).await;
            }
        }
    }

    async fn start(
        &self,
        id: &str,
        plan: &Plan,
        dir: &Path,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), (String, String, Vec<String>)> {
        let context = Context::for_plan(plan).await?;
        let mut urls: BTreeMap<String, String> = BTreeMap::new();
        let mut vars = BTreeMap::new();
        for dependency in &plan.deps {
            let started = Instant::now();
            let _ = events
                .send(Event::Starting {
                    part: dependency.name.clone(),
                    mode: dependency.mode.name().into(),
                })
                .await;
            let url = self
                .start_dependency(id, dependency, dir, &urls, &context)
                .await?;
            let _ = events
                .send(Event::Ready {
                    part: dependency.name.clone(),
                    url: Some(url.clone()),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                })
                .await;
            if let Some(url_env) = &dependency.url_env {
                vars.insert(url_env.clone(), url.clone());
            }
            urls.insert(dependency.name.clone(), url);
        }
        let service = &plan.service;
        let started = Instant::now();
        let _ = events
            .send(Event::Starting {
                part: service.name.clone(),
                mode: "process".into(),
            })
            .await;
        let mut env = vars.clone();
        env.extend(service.env.clone());
        let url = self
            .start_process(id, service, "process", dir, env, &context)
            .await?;
        vars.insert("ENVD_SERVICE_URL".into(), url.clone());
        let _ = events
            .send(Event::Ready {
                part: service.name.clone(),
                url: Some(url),
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
            .await;
        if let Some(environment) = self.environments.lock().unwrap().get_mut(id) {
            environment.info.vars = vars;
        }
        Ok(())
    }

    async fn start_dependency(
        &self,
        id: &str,
        dependency: &Dependency,
        dir: &Path,
        urls: &BTreeMap<String, String>,
        context: &Context,
    ) -> Result<String, (String, String, Vec<String>)> {
        let fail = |error: String| (dependency.name.clone(), error, Vec::new());
        let resolve = |target: &str| match manifest::dependency_reference(target) {
            Some(name) => urls
                .get(name)
                .cloned()
                .ok_or_else(|| fail(format!("{target}: {name} has no URL"))),
            None => Ok(target.to_owned()),
        };
        let address = SocketAddr::new(context.bind, 0);
        let (ready, listening) = oneshot::channel::<(SocketAddr, Arc<Journal>)>();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let announce = move |address, journal| {
            let _ = ready.send((address, journal));
        };
        let name = dependency.name.clone();
        let task = match &dependency.mode {
            Mode::Service {
                process,
                url,
                fixture,
            } => {
                let mut env = process.env.clone();
                env.extend(dependency_urls(urls));
                let started = self
                    .start_process(id, process, "service", dir, env, context)
                    .await?;
                let port = started.rsplit(':').next().unwrap_or_default().to_owned();
                let url = url.replace("{port}", &port);
                if let Some(fixture) = fixture {
                    load_fixture(fixture, &url).await.map_err(|error| {
                        let log = dir.join(format!("{}.log", process.name));
                        (
                            dependency.name.clone(),
                            error,
                            runtime::tail(&log, runtime::FAILURE_LOG_LINES),
                        )
                    })?;
                }
                return Ok(url);
            }
            Mode::Contract { .. } | Mode::Replay { .. } => {
                let states = match &dependency.mode {
                    Mode::Contract { states, .. } => states
                        .iter()
                        .map(|name| crate::stub::ActiveState {
                            name: name.clone(),
                            params: Default::default(),
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let options = crate::stub::Options {
                    contracts: served_files(&dependency.mode),
                    address,
                    states,
                    watch: false,
                    limits: Default::default(),
                    faults: Default::default(),
                    seed: None,
                };
                tokio::spawn(async move {
                    if let Err(error) = crate::stub::run(options, announce, shutdown).await {
                        tracing::warn!(part = %name, %error, "stub stopped");
                    }
                })
            }
            Mode::Proxy { .. } | Mode::Spy { .. } => {
                let (target, headers, record, spy) = match &dependency.mode {
                    Mode::Proxy {
                        target,
                        record,
                        headers,
                    } => (target, headers, record.clone(), false),
                    Mode::Spy {
                        target,
                        recording,
                        headers,
                    } => (target, headers, Some(recording.clone()), true),
                    _ => unreachable!("matched as a proxy or spy just above"),
                };
                let target = resolve(target)?;
                let upstream =
                    crate::proxy::Upstream::new(&target, None).map_err(|e| fail(e.to_string()))?;
                let inject = headers
                    .iter()
                    .map(|(name, value)| {
                        crate::proxy::injected_header(&format!("{name}: {value}"), |_| None)
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fail(e.to_string()))?;
                let options = crate::proxy::Options {
                    provider: upstream.host().to_owned(),
                    upstream,
                    address,
                    record,
                    spy,
                    inject,
                    redaction: crate::recording::Redaction::default(),
                    consumer: crate::recording::DEFAULT_CONSUMER.to_owned(),
                    timeout: crate::proxy::DEFAULT_UPSTREAM_TIMEOUT,
                    limits: Default::default(),
                    faults: Default::default(),
                    seed: None,
                };
                tokio::spawn(async move {
                    if let Err(error) = crate::proxy::run(options, announce, shutdown).await {
                        tracing::warn!(part = %name, %error, "proxy stopped");
                    }
                })
            }
        };
        let mut part = Part {
            info: PartInfo {
                name: dependency.name.clone(),
                mode: dependency.mode.name().into(),
                url: None,
                state: PartState::Starting,
                pid: None,
            },
            handle: Handle::Listener {
                stop: Some(stop),
                task,
            },
            log: None,
            journal: None,
        };
        let bound = listening.await;
        let url = bound.map(|(address, journal)| {
            part.journal = Some(journal);
            format!("http://{address}")
        });
        part.info.url = url.as_ref().ok().cloned();
        part.info.state = if url.is_ok() {
            PartState::Ready
        } else {
            PartState::Failed
        };
        self.add_part(id, part);
        // The stub or proxy logs why it stopped before it listened; the common cause is a
        // file that does not load, checked again here for a message the user can act on.
        url.map_err(|_| fail(self.listener_failure(dependency)))
    }

    fn listener_failure(&self, dependency: &Dependency) -> String {
        let files = served_files(&dependency.mode);
        match crate::stub::load(&files) {
            Err(error) if !files.is_empty() => error.to_string(),
            _ => "stopped before it listened (see the daemon's log)".to_owned(),
        }
    }

    /// Starts a process on an allocated port and waits for its health check.
    /// Starts a process (or a container) and waits for its health check; the URL it serves.
    async fn start_process(
        &self,
        id: &str,
        process: &Process,
        mode: &str,
        dir: &Path,
        mut env: BTreeMap<String, String>,
        context: &Context,
    ) -> Result<String, (String, String, Vec<String>)> {
        let fail = |error: String, logs| (process.name.clone(), error, logs);
        let torn = || {
            fail(
                "the environment was torn down while it started".into(),
                Vec::new(),
            )
        };
        let log = dir.join(format!("{}.log", process.name));
        let (mut handle, port, pid) = match (&process.image, &context.engine) {
            (Some(image), Some(engine)) => {
                let inside = process.port.unwrap_or_default();
                env.insert("PORT".into(), inside.to_string());
                let env = env
                    .into_iter()
                    .map(|(name, value)| (name, context.for_container(&value)))
                    .collect();
                let command: Vec<String> = process
                    .command
                    .iter()
                    .map(|arg| arg.replace("{port}", &inside.to_string()))
                    .collect();
                let spec = docker::Spec {
                    environment: id,
                    part: &process.name,
                    image,
                    command: &command,
                    env: &env,
                    port: inside,
                    log: &log,
                };
                let container = engine
                    .run(&spec)
                    .await
                    .map_err(|e| fail(e.to_string(), Vec::new()))?;
                let port = container.host_port;
                (Handle::Container(Box::new(container)), port, None)
            }
            _ => {
                let port = runtime::free_port()
                    .map_err(|e| fail(format!("cannot allocate a port: {e}"), Vec::new()))?;
                env.insert("PORT".into(), port.to_string());
                let command: Vec<String> = process
                    .command
                    .iter()
                    .map(|arg| arg.replace("{port}", &port.to_string()))
                    .collect();
                let running =
                    runtime::spawn(&command, &process.cwd, &env, &log, process.user.as_deref())
                        .map_err(|e| fail(e.to_string(), Vec::new()))?;
                let pid = running.id.pid;
                (Handle::Process(Box::new(running)), port, Some(pid))
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        let info = PartInfo {
            name: process.name.clone(),
            mode: mode.into(),
            url: Some(url.clone()),
            state: PartState::Starting,
            pid,
        };
        let Some(mut torn_down) = self.show_starting(id, info.clone()) else {
            handle.stop().await;
            return Err(torn());
        };
        if let Handle::Process(running) = &handle {
            // Recorded before the wait, so a daemon that dies during a slow start still
            // reaps it (containers are found by label).
            self.persist_with(id, running.id);
        }
        let watched = match &mut handle {
            Handle::Process(running) => Watched::Process(running),
            Handle::Container(container) => Watched::Container(container, &log),
            Handle::Listener { .. } => unreachable!("a process or a container was started above"),
        };
        let waited = tokio::select! {
            result = runtime::wait_healthy(
                watched,
                &process.health,
                port,
                &process.cwd,
                Duration::from_millis(process.start_timeout_ms),
            ) => Some(result),
            _ = torn_down.wait_for(|torn_down| *torn_down) => None,
        };
        let Some(result) = waited else {
            handle.stop().await;
            return Err(torn());
        };
        let state = if result.is_ok() {
            PartState::Ready
        } else {
            PartState::Failed
        };
        self.add_part(
            id,
            Part {
                info: PartInfo { state, ..info },
                handle,
                log: Some(log.clone()),
                journal: None,
            },
        );
        match result {
            Ok(()) => Ok(url),
            Err(error) => Err(fail(
                error.to_string(),
                runtime::tail(&log, runtime::FAILURE_LOG_LINES),
            )),
        }
    }

    /// Shows a part as starting (`envd ps`) and hands back the environment's teardown
    /// signal; `None` when the environment is already gone.
    fn show_starting(
        &self,
        id: &str,
        info: PartInfo,
    ) -> Option<tokio::sync::watch::Receiver<bool>> {
        let mut environments = self.environments.lock().unwrap();
        let environment = environments.get_mut(id)?;
        environment.info.parts.push(info);
        Some(environment.torn_down.subscribe())
    }

    fn add_part(&self, id: &str, part: Part) {
        let mut part = Some(part);
        if let Some(environment) = self.environments.lock().unwrap().get_mut(id) {
            let part = part.take().expect("taken once");
            match environment
                .info
                .parts
                .iter_mut()
                .find(|info| info.name == part.info.name)
            {
                Some(shown) => *shown = part.info.clone(),
                None => environment.info.parts.push(part.info.clone()),
            }
            environment.parts.push(part);
        }
        if let Some(orphan) = part {
            // Torn down meanwhile: a listener left over stops with its dropped sender; a
            // process is stopped by its group, not just by `kill_on_drop`.
            let mut handle = orphan.handle;
            tokio::spawn(async move { handle.stop().await });
        }
        self.persist();
    }

    /// Tears environment `id` down: the service under test first, then its dependencies.
    pub async fn down(&self, id: &str) -> Option<EnvironmentInfo> {
        let removed = self.environments.lock().unwrap().remove(id);
        let mut environment = removed?;
        environment.torn_down.send_replace(true);
        if let Some(ttl) = environment.ttl.take() {
            // Not the TTL task itself: it has already been taken out of the map.
            if !is_current_task(&ttl) {
                ttl.abort();
            }
        }
        for part in environment.parts.iter_mut().rev() {
            part.handle.stop().await;
            part.info.state = PartState::Stopped;
        }
        environment.info.parts = environment.parts.iter().map(|p| p.info.clone()).collect();
        self.persist();
        tracing::info!(environment = %id, "torn down");
        Some(environment.info)
    }

    /// Tears every environment down (the daemon is stopping).
    pub async fn down_all(&self) {
        let ids: Vec<String> = self.environments.lock().unwrap().keys().cloned().collect();
        for id in ids {
            self.down(&id).await;
        }
    }

    fn persist_with(&self, id: &str, extra: ProcessId) {
        self.write_state(Some((id, extra)));
    }

    fn persist(&self) {
        self.write_state(None);
    }

    fn write_state(&self, extra: Option<(&str, ProcessId)>) {
        let _guard = self.persist.lock().unwrap();
        let mut state = State::default();
        for (id, environment) in self.environments.lock().unwrap().iter() {
            let processes = state.environments.entry(id.clone()).or_default();
            for part in &environment.parts {
                if let Handle::Process(running) = &part.handle {
                    processes.push(running.id);
                }
            }
        }
        if let Some((id, process)) = extra {
            state
                .environments
                .entry(id.to_owned())
                .or_default()
                .push(process);
        }
        let path = self.home.join(STATE_FILE);
        if let Err(error) = write_atomically(
            &path,
            &serde_json::to_vec_pretty(&state).unwrap_or_default(),
        ) {
            tracing::error!(path = %path.display(), %error, "cannot write the state file");
        }
    }
}

/// Loads a fixture (sampled from PostgreSQL or from files) into the `service` dependency
/// at `url` (now healthy); what the load changed or left out is logged. The client is
/// synchronous: it runs on the blocking pool, never on a runtime thread.
async fn load_fixture(fixture: &Path, url: &str) -> Result<(), String> {
    let (dir, target) = (fixture.to_owned(), url.to_owned());
    let loaded =
        tokio::task::spawn_blocking(move || crate::fixtures::postgres::load(&dir, &target))
            .await
            .map_err(|error| format!("loading fixture {}: {error}", fixture.display()))?;
    match loaded {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!(fixture = %fixture.display(), "{warning}");
            }
            tracing::info!(fixture = %fixture.display(), created = ?loaded.created, rows = ?loaded.rows, "fixture loaded");
            Ok(())
        }
        Err(error) => Err(format!("loading fixture {}: {error}", fixture.display())),
    }
}

/// The Pact files a stub or spy of this mode answers from.
fn served_files(mode: &Mode) -> Vec<PathBuf> {
    match mode {
        Mode::Contract { contracts, .. } => contracts.clone(),
        Mode::Replay { recording } | Mode::Spy { recording, .. } => vec![recording.clone()],
        Mode::Proxy { .. } | Mode::Service { .. } => Vec::new(),
    }
}

fn is_current_task(handle: &tokio::task::JoinHandle<()>) -> bool {
    tokio::task::try_id().is_some_and(|current| current == handle.id())
}

fn dependency_urls(urls: &BTreeMap<String, String>) -> impl Iterator<Item = (String, String)> + '_ {
    urls.iter().map(|(name, url)| {
        let variable: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        (format!("ENVD_DEP_{variable}_URL"), url.clone())
    })
}

/// Marks parts whose process has exited since.
fn refresh(environment: &mut Environment) {
    for (index, part) in environment.parts.iter_mut().enumerate() {
        if let Handle::Process(running) = &mut part.handle {
            if part.info.state == PartState::Ready && running.exited().is_some() {
                part.info.state = PartState::Exited;
                if let Some(info) = environment.info.parts.get_mut(index) {
                    info.state = PartState::Exited;
                }
            }
        }
    }
}

/// Waits out `ttl` on tokio's clock, then runs `expire`.
async fn expire_after<F, Fut>(ttl: Duration, expire: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::time::sleep(ttl).await;
    expire().await;
}

/// Temporary file in the same directory, synced, then renamed over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// Four hex digits from the clock and the pid: unique enough among one user's
/// environments, and short enough to type.
fn short_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mixed = (nanos ^ (u64::from(std::process::id()) << 16))
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:06x}", mixed >> 40)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(start_paused = true)]
    async fn an_environment_expires_when_its_ttl_runs_out_and_not_before() {
        let expired = Arc::new(AtomicBool::new(false));
        let flag = expired.clone();
        let task = tokio::spawn(expire_after(
            Duration::from_secs(7200),
            move || async move {
                flag.store(true, Ordering::SeqCst);
            },
        ));
        tokio::time::sleep(Duration::from_secs(7199)).await;
        assert!(!expired.load(Ordering::SeqCst), "expired early");
        tokio::time::sleep(Duration::from_secs(2)).await;
        task.await.unwrap();
        assert!(expired.load(Ordering::SeqCst), "did not expire");
    }

    #[test]
    fn ids_differ_between_environments_of_one_manifest() {
        assert_ne!(short_id(), short_id());
    }
}
