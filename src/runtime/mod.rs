//! Running real parts: processes in their own process group, their logs, their health.
//!
//! A process gets exactly the variables it is given (plus PATH, HOME and LANG), its stdout
//! and stderr in one log file, and a stop that is SIGTERM to its whole group, a grace
//! period, then SIGKILL. Its pid and start time are what a restarted daemon needs to reap
//! it after a crash without ever signalling an unrelated process that reused the pid.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manifest::Health;

pub mod docker;

/// How long a process may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often a health check is retried: short, because starts are usually fast and the
/// time to "ready" is what users wait for.
const HEALTH_POLL: Duration = Duration::from_millis(20);

/// How many log lines a failure shows.
pub const FAILURE_LOG_LINES: usize = 20;

/// Variables passed through from the daemon, since most programs need them to run at all.
const PASSED_THROUGH: &[&str] = &["PATH", "HOME", "LANG", "TZ", "TMPDIR"];

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot write its log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("exited with {status} before it was healthy")]
    Exited { status: String },
    #[error("{reason}")]
    Docker { reason: String },
    #[error("user {user:?}: {reason}")]
    User { user: String, reason: String },
    #[error("image {image} is not on this machine; build it (`docker build -t {image} .`) or pull it (`docker pull {image}`) first: envd never pulls")]
    NoImage { image: String },
    #[error("not healthy after {timeout:?} ({check})")]
    Unhealthy { timeout: Duration, check: String },
}

/// What identifies a process across daemon restarts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: u32,
    /// Clock ticks since boot when it started (/proc/PID/stat field 22): a pid reused by
    /// another process has another start time.
    pub start_time: u64,
}

/// A started process, the leader of its own process group.
pub struct Running {
    pub id: ProcessId,
    pub log: PathBuf,
    child: tokio::process::Child,
}

/// Starts `command` in `cwd` with exactly `env` (plus [`PASSED_THROUGH`]), output to `log`.
pub fn spawn(
    command: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    log: &Path,
    user: Option<&str>,
) -> Result<Running, RuntimeError> {
    let log_error = |source| RuntimeError::Log {
        path: log.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(log_error)?;
    let stderr = file.try_clone().map_err(log_error)?;
    let mut builder = tokio::process::Command::new(&command[0]);
    builder
        .args(&command[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(
            PASSED_THROUGH
                .iter()
                .filter_map(|name| std::env::var(name).ok().map(|value| (*name, value))),
        )
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(stderr)
        // Its own group, so a stop reaches whatever it started too.
        .process_group(0)
        // A backstop only: teardown stops it first, with a grace period.
        .kill_on_drop(true);
    if let Some(user) = user {
        let (uid, gid) = lookup_user(user)?;
        builder.uid(uid).gid(gid);
    }
    let child = builder.spawn().map_err(|source| RuntimeError::Spawn {
        program: command[0].clone(),
        source,
    })?;
    let pid = child.id().unwrap_or_default();
    let start_time = start_time(pid).unwrap_or_default();
    tracing::debug!(pid, program = %command[0], "process started");
    Ok(Running {
        id: ProcessId { pid, start_time },
        log: log.to_owned(),
        child,
    })
}

impl Running {
    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe(status)),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        }
    }

    /// SIGTERM to the group, [`STOP_GRACE`], then SIGKILL; waits for the leader.
    pub async fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            // The leader is gone but its group may not be.
            signal_group(self.id.pid, libc::SIGKILL);
            return;
        }
        signal_group(self.id.pid, libc::SIGTERM);
        match tokio::time::timeout(STOP_GRACE, self.child.wait()).await {
            Ok(_) => signal_group(self.id.pid, libc::SIGKILL),
            Err(_) => {
                tracing::warn!(
                    pid = self.id.pid,
                    "still running {STOP_GRACE:?} after SIGTERM; killing"
                );
                signal_group(self.id.pid, libc::SIGKILL);
                let _ = self.child.wait().await;
            }
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

fn signal_group(pid: u32, signal: libc::c_int) {
    if pid == 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// The uid and gid of `user`; only root may start processes as another user.
fn lookup_user(user: &str) -> Result<(u32, u32), RuntimeError> {
    let fail = |reason: String| RuntimeError::User {
        user: user.to_owned(),
        reason,
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(fail(
            "starting a process as another user needs envd to run as root".into(),
        ));
    }
    let name = std::ffi::CString::new(user).map_err(|_| fail("not a user name".into()))?;
    // SAFETY: getpwnam reads the C string and returns a pointer into static storage (or
    // null), read at once; the daemon looks users up from one task at a time.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(fail("no such user on this machine".into()));
    }
    // SAFETY: non-null, as checked just above.
    let entry = unsafe { &*entry };
    Ok((entry.pw_uid, entry.pw_gid))
}

/// The start time of `pid` in clock ticks since boot, if it runs.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `id` names still runs (and is not a zombie).
pub fn is_running(id: ProcessId) -> bool {
    start_time(id.pid) == Some(id.start_time) && !is_zombie(id.pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = &stat[stat.rfind(')')? + 1..];
            after.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Kills what a dead daemon left: the group of `id`, if `id` is still the same process.
pub fn reap(id: ProcessId) -> bool {
    if is_running(id) {
        signal_group(id.pid, libc::SIGKILL);
        true
    } else {
        false
    }
}

/// The last `count` lines of a log file.
pub fn tail(path: &Path, count: usize) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..]
        .iter()
        .map(|line| line.to_string())
        .collect()
}

/// What a health check watches for an early exit.
pub enum Watched<'a> {
    Process(&'a mut Running),
    Container(&'a docker::Container, &'a Path),
}

impl Watched<'_> {
    async fn exited(&mut self) -> Option<String> {
        match self {
            Watched::Process(running) => running.exited(),
            Watched::Container(container, _) => container.exited().await,
        }
    }

    fn log(&self) -> &Path {
        match self {
            Watched::Process(running) => &running.log,
            Watched::Container(_, log) => log,
        }
    }
}

/// Waits until `health` passes for a part listening on `port`, it exits, or `timeout`
/// runs out.
pub async fn wait_healthy(
    mut watched: Watched<'_>,
    health: &Health,
    port: u16,
    cwd: &Path,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        if let Some(status) = watched.exited().await {
            return Err(RuntimeError::Exited { status });
        }
        let healthy = match health {
            Health::Tcp => tokio::net::TcpStream::connect(address).await.is_ok(),
            Health::Http { path } => http_ok(address, path).await,
            Health::Command { command } => tokio::process::Command::new(&command[0])
                .args(&command[1..])
                .current_dir(cwd)
                .env("PORT", port.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await
                .is_ok_and(|status| status.success()),
            Health::Log { text } => std::fs::read(watched.log())
                .map(|log| String::from_utf8_lossy(&log).contains(text.as_str()))
                .unwrap_or(false),
        };
        if healthy {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RuntimeError::Unhealthy {
                timeout,
                check: describe_health(health, port),
            });
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

pub fn describe_health(health: &Health, port: u16) -> String {
    match health {
        Health::Tcp => format!("nothing accepts connections on port {port}"),
        Health::Http { path } => {
            format!("GET http://127.0.0.1:{port}{path} did not answer 2xx or 3xx")
        }
        Health::Command { command } => format!("{} did not exit 0", command.join(" ")),
        Health::Log { text } => format!("its output never showed {text:?}"),
    }
}

/// A minimal HTTP/1.1 GET: health checks need no pool and no client crate.
async fn http_ok(address: SocketAddr, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut head)).await;
    matches!(read, Ok(Ok(_))) && head.starts_with(b"HTTP/1.") && matches!(head[9], b'2' | b'3')
}

/// A free port on loopback, for a process that binds it itself. The listener is dropped
/// right away; a race with another program is possible but the health check reports it.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_tells_a_running_process_from_a_reused_pid() {
        let me = std::process::id();
        let started = start_time(me).expect("this process has a start time");
        assert!(is_running(ProcessId {
            pid: me,
            start_time: started
        }));
        assert!(!is_running(ProcessId {
            pid: me,
            start_time: started + 1
        }));
        assert!(!reap(ProcessId {
            pid: me,
            start_time: started + 1
        }));
    }

    #[tokio::test]
    async fn a_stopped_process_group_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("part.log");
        // The shell starts a grandchild that ignores nothing: the group stop must end both.
        let command = ["sh", "-c", "sleep 300 & echo started $CHILD_VAR; wait"].map(String::from);
        let env = BTreeMap::from([("CHILD_VAR".to_owned(), "yes".to_owned())]);
        let mut running = spawn(&command, dir.path(), &env, &log, None).unwrap();
        let health = Health::Log {
            text: "started yes".to_owned(),
        };
        wait_healthy(
            Watched::Process(&mut running),
            &health,
            1,
            dir.path(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        running.stop().await;
        assert!(!is_running(running.id));
        // The killed grandchild is reaped by init, not by us: poll for its group to vanish.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // SAFETY: kill with signal 0 only checks for existence of the group.
        while unsafe { libc::kill(-(running.id.pid as libc::pid_t), 0) } == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the grandchild outlived the stop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tail(&log, 5), vec!["started yes".to_owned()]);
    }

    #[tokio::test]
    async fn an_exit_before_health_is_reported_with_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let command = ["sh", "-c", "echo boom; exit 3"].map(String::from);
        let mut running = spawn(
            &command,
            dir.path(),
            &BTreeMap::new(),
            &dir.path().join("l"),
            None,
        )
        .unwrap();
        let error = wait_healthy(
            Watched::Process(&mut running),
            &Health::Tcp,
            1,
            dir.path(),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "exited with exit status 3 before it was healthy"
        );
    }
}
