//! A small harness: run the real `envd` binary, talk to it over real HTTP.
//!
//! `Envd::stub(..)` starts a stub on a free port and waits for its listening line;
//! `http()` sends requests with hyper's client. Nothing sleeps: waits poll a condition
//! against a deadline.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tempfile::TempDir;

/// Long enough for a debug build on a loaded 2-core CI machine; a healthy start takes
/// milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_envd")
}

/// A scratch directory for one test's files.
pub struct Workdir {
    dir: TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Workdir {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `content` to `name` (creating parent directories) and returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("parent directory");
        }
        fs::write(&path, content).expect("write file");
        path
    }

    /// Writes a Pact JSON value and returns its path as a string argument.
    pub fn pact(&self, name: &str, pact: &Value) -> String {
        self.write(name, &serde_json::to_string_pretty(pact).expect("json"))
            .display()
            .to_string()
    }
}

/// A running `envd` server process, killed when dropped.
pub struct Envd {
    child: Child,
    pub url: String,
    stderr: PathBuf,
    _logs: TempDir,
}

impl Envd {
    /// Starts `envd stub ARGS… --port 0` and waits for `envd: listening on URL`.
    pub fn stub(args: &[&str]) -> Envd {
        Self::start("stub", args)
            .unwrap_or_else(|failure| panic!("envd stub did not start: {failure}"))
    }

    /// Starts `envd COMMAND ARGS… --port 0`; `Err` holds the exit status and stderr when it
    /// exits instead of listening.
    pub fn start(command: &str, args: &[&str]) -> Result<Envd, String> {
        Self::start_with_env(command, args, &[])
    }

    /// [`Envd::start`] with extra environment variables.
    pub fn start_with_env(
        command: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Envd, String> {
        let mut args = args.to_vec();
        args.extend(["--port", "0"]);
        Self::launch(command, &args, env)
    }

    /// Starts `envd daemon ARGS…` (which names its own `--listen` address).
    pub fn daemon(args: &[&str]) -> Result<Envd, String> {
        Self::launch("daemon", args, &[])
    }

    /// [`Envd::daemon`] with extra environment variables.
    pub fn daemon_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Envd, String> {
        Self::launch("daemon", args, env)
    }

    fn launch(command: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Envd, String> {
        let logs = tempfile::tempdir().expect("log directory");
        let stderr = logs.path().join("stderr.log");
        let mut child = Command::new(binary())
            .arg(command)
            .args(args)
            .env("ENVD_LOG", "envd=debug,info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn envd");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + DEADLINE;
        loop {
            match received.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("envd: listening on ") {
                        let url = url.trim_end_matches('/');
                        return Ok(Envd {
                            child,
                            url: url.to_owned(),
                            stderr,
                            _logs: logs,
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{status}: {}",
                    fs::read_to_string(&stderr).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("no listening line within {DEADLINE:?}"));
            }
        }
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until stderr contains `text`.
    pub fn wait_for_log(&self, text: &str) {
        eventually(
            || self.stderr().contains(text).then_some(()),
            &format!("log line {text:?}"),
        );
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(self) -> ExitStatus {
        self.signal("-TERM")
    }

    /// Sends `signal` (`-TERM`, `-KILL`, …) and waits for the process to exit.
    pub fn signal(mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "envd did not stop after SIGTERM");
            std::thread::yield_now();
        }
    }

    pub fn address(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned()
    }
}

impl Drop for Envd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `envd ARGS…` to completion.
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run envd");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `probe` until it returns `Some`, or panics after [`DEADLINE`] naming `what`.
pub fn eventually<T>(mut probe: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::yield_now();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A request to send: `http(Method, url).header(..).body(..).send()`.
pub struct Request {
    builder: hyper::http::request::Builder,
    body: Bytes,
    http2: bool,
}

pub fn http(method: &str, url: &str) -> Request {
    Request {
        builder: hyper::Request::builder().method(method).uri(url),
        body: Bytes::new(),
        http2: false,
    }
}

impl Request {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn json(self, value: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(value).expect("json"))
    }

    /// Speak HTTP/2 with prior knowledge (h2c).
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    pub fn send(self) -> Reply {
        self.try_send()
            .unwrap_or_else(|error| panic!("HTTP exchange failed: {error}"))
    }

    /// Sends the request; `Err` says why no whole response arrived.
    pub fn try_send(self) -> Result<Reply, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                .http2_only(self.http2)
                .build_http();
            let request = self.builder.body(Full::new(self.body)).expect("request");
            let response = tokio::time::timeout(DEADLINE, client.request(request))
                .await
                .map_err(|_| format!("no answer within {DEADLINE:?}"))?
                .map_err(|error| error.to_string())?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| error.to_string())?
                .to_bytes();
            Ok(Reply {
                status,
                headers,
                body,
            })
        })
    }
}

pub fn get(url: &str) -> Reply {
    http("GET", url).send()
}

/// A Pact file of the given version with these interactions.
pub fn pact(version: &str, interactions: Value) -> Value {
    serde_json::json!({
        "consumer": {"name": "orders"},
        "provider": {"name": "payments"},
        "interactions": interactions,
        "metadata": {"pactSpecification": {"version": version}}
    })
}

/// A fake staging service: a wiremock-rs `MockServer` on its own runtime, so that tests
/// stay synchronous like the rest of the harness.
pub struct Staging {
    runtime: tokio::runtime::Runtime,
    pub server: wiremock::MockServer,
}

impl Staging {
    pub fn start() -> Staging {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime.block_on(wiremock::MockServer::start());
        Staging { runtime, server }
    }

    pub fn mock(&self, mock: wiremock::Mock) {
        self.runtime.block_on(mock.mount(&self.server));
    }

    pub fn received(&self) -> Vec<wiremock::Request> {
        self.runtime
            .block_on(self.server.received_requests())
            .unwrap_or_default()
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }
}

/// Sends `request` as raw bytes on a new connection and reads until the server closes it:
/// for what an HTTP client will not send (malformed heads, absolute-form targets, CONNECT).
pub fn raw_http(address: &str, request: impl AsRef<[u8]>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.write_all(request.as_ref()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}
