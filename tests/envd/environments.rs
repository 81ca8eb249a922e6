//! Environments: `envd up`, `down`, `ps`, `logs` and `run` against a real daemon that the
//! CLI starts on its own socket (one `ENVD_HOME` per test), with real processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{binary, eventually, get, Workdir};

/// One test's daemon home; the daemon the CLI starts there is killed on drop.
pub struct Home {
    pub work: Workdir,
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Home {
    pub fn new() -> Home {
        Home {
            work: Workdir::new(),
        }
    }

    fn home(&self) -> PathBuf {
        self.work.path("home")
    }

    /// What the daemon has logged (`$ENVD_HOME/daemon.log`).
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.home().join("daemon.log")).unwrap_or_default()
    }

    pub fn envd(&self, args: &[&str]) -> Output {
        let output = Command::new(binary())
            .args(args)
            .env("ENVD_HOME", self.home())
            .stdin(Stdio::null())
            .output()
            .expect("run envd");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `envd up --detach --json -f MANIFEST`, which must succeed: the environment's info.
    pub fn up(&self, manifest: &str) -> Value {
        let output = self.envd(&["up", "--detach", "--json", "-f", manifest]);
        assert_eq!(output.code, Some(0), "envd up: {}", output.stderr);
        serde_json::from_str(&output.stdout).expect("up --json")
    }

    pub fn ps(&self) -> Vec<Value> {
        let output = self.envd(&["ps", "--json"]);
        assert_eq!(output.code, Some(0), "envd ps: {}", output.stderr);
        serde_json::from_str::<Value>(&output.stdout).expect("ps --json")["environments"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| serde_json::from_str::<Vec<Value>>(&output.stdout).unwrap())
    }

    /// SIGKILLs this home's daemon (no teardown, as in a crash) and waits until it is gone.
    pub fn kill_daemon(&self) {
        let daemon = self.daemon_pid().expect("the daemon's pid file");
        assert!(Command::new("kill")
            .args(["-KILL", &daemon.to_string()])
            .status()
            .unwrap()
            .success());
        eventually(
            || (!running(daemon as u64)).then_some(()),
            "the daemon to die",
        );
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.home().join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A manifest with `service` as its [service] table and `deps` after it.
    pub fn manifest(&self, service: &str, deps: &str) -> String {
        let pact = crate::harness::pact(
            "3.0.0",
            serde_json::json!([{
                "description": "ping",
                "request": {"method": "GET", "path": "/ping"},
                "response": {"status": 200, "body": {"pong": true}}
            }]),
        );
        self.work.pact("contracts/ping.json", &pact);
        self.work
            .write(
                "envd.toml",
                &format!("name = \"t\"\n[service]\n{service}\n{deps}"),
            )
            .display()
            .to_string()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(pid) = self.daemon_pid() {
            // SIGTERM: the daemon tears its environments down before it exits.
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// A service that answers HTTP on $PORT, the way a real one would.
pub const HTTP_SERVICE: &str =
    "command = [\"python3\", \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\nhealth = \"/\"";

pub const PING_DEP: &str =
    "[deps.ping]\nmode = \"contract\"\ncontracts = [\"contracts/ping.json\"]\nurl_env = \"PING_URL\"";

pub fn running(pid: u64) -> bool {
    // A zombie has exited; only init's reaping is left.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_checkout_example_places_an_order_through_envd_run() {
    let home = Home::new();
    // A copy, so the spy's recording of new users lands in the test's files.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = home.work.path("repo");
    copy_dir(
        &root.join("examples/checkout"),
        &copy.join("examples/checkout"),
    );
    copy_dir(&root.join("contracts"), &copy.join("contracts"));
    copy_dir(&root.join("stubs"), &copy.join("stubs"));
    let manifest = copy
        .join("examples/checkout/envd.toml")
        .display()
        .to_string();
    let script = copy
        .join("examples/checkout/place_order.py")
        .display()
        .to_string();

    // u-7 is in the committed recording; u-9 is not: the spy asks staging and records it.
    for user in ["u-7", "u-9"] {
        let output = home.envd(&["run", "-f", &manifest, "--", "python3", &script, user]);
        assert_eq!(
            output.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            output.stdout,
            output.stderr
        );
        let number = &user[2..];
        assert!(output.stdout.starts_with("201 "), "{}", output.stdout);
        assert!(
            output
                .stdout
                .contains(&format!("\"user\": \"User {number}\"")),
            "{}",
            output.stdout
        );
        assert!(
            output.stdout.contains("\"payment\": \"authorized\""),
            "{}",
            output.stdout
        );
        for part in ["users-staging", "inventory", "payments", "users", "orders"] {
            assert!(
                output
                    .stderr
                    .contains(&format!("{part} ready at http://127.0.0.1:")),
                "{}",
                output.stderr
            );
        }
    }
    let recording =
        std::fs::read_to_string(copy.join("examples/checkout/stubs/users.json")).unwrap();
    assert!(
        recording.contains("/users/u-9"),
        "the spy did not record the new user"
    );
    assert!(home.ps().is_empty(), "envd run left an environment behind");
}

#[test]
fn run_hands_over_the_urls_and_passes_the_commands_exit_status() {
    let home = Home::new();
    let manifest = home.manifest(HTTP_SERVICE, PING_DEP);
    let check = "curl -fsS \"$PING_URL/ping\" && echo && curl -fsS -o /dev/null \"$ENVD_SERVICE_URL/\" && exit 7";
    // Two runs of one manifest at once: separate environments, separate ports.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            Command::new(binary())
                .args(["run", "-f", &manifest, "--", "sh", "-c", check])
                .env("ENVD_HOME", home.home())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(7),
            "{stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout.trim(), "{\"pong\":true}");
    }
    assert!(home.ps().is_empty());
}

#[test]
fn a_failed_start_names_the_part_shows_its_log_and_leaves_nothing_running() {
    let home = Home::new();
    let manifest = home.manifest(
        "name = \"orders\"\ncommand = [\"sh\", \"-c\", \"echo cannot reach the database >&2; exit 4\"]",
        PING_DEP,
    );
    let output = home.envd(&["up", "--detach", "-f", &manifest]);
    assert_eq!(output.code, Some(3), "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("orders did not start: exited with exit status 4 before it was healthy"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("| cannot reach the database"),
        "{}",
        output.stderr
    );
    assert!(home.ps().is_empty(), "a failed start left an environment");
}

#[test]
fn up_ps_logs_and_down_leave_nothing_running() {
    let home = Home::new();
    let manifest = home.manifest(&format!("name = \"web\"\n{HTTP_SERVICE}"), PING_DEP);
    let info = home.up(&manifest);
    let id = info["id"].as_str().unwrap().to_owned();
    let ping = info["vars"]["PING_URL"].as_str().unwrap().to_owned();
    let service = info["vars"]["ENVD_SERVICE_URL"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(&format!("{ping}/ping")).json(),
        serde_json::json!({"pong": true})
    );
    assert_eq!(get(&format!("{service}/")).status, 200);

    let table = home.envd(&["ps"]);
    for expected in [id.as_str(), "web", "process", "ping", "contract", "ready"] {
        assert!(
            table.stdout.contains(expected),
            "{expected} not in\n{}",
            table.stdout
        );
    }
    // http.server logs each request on stderr: the GET above is in the service's log.
    let logs = eventually(
        || {
            let logs = home.envd(&["logs", &id]);
            logs.stdout
                .contains("\"GET / HTTP/1.1\" 200")
                .then_some(logs)
        },
        "the request in the service's log",
    );
    assert_eq!(logs.code, Some(0));
    let json = home.envd(&["logs", &id, "--json"]);
    let first: Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["environment"], id.as_str());
    assert_eq!(first["part"], "web");
    assert!(first["line"].is_string());

    let pid = home.ps()[0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mode"] == "process")
        .unwrap()["pid"]
        .as_u64()
        .unwrap();
    let down = home.envd(&["down", "t"]);
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    assert!(home.ps().is_empty());
    assert!(!running(pid), "the service outlived envd down");
    assert!(
        crate::harness::http("GET", &format!("{ping}/ping"))
            .try_send()
            .is_err(),
        "the stub still answers"
    );
}

#[test]
fn a_restarted_daemon_reaps_what_a_killed_one_left() {
    let home = Home::new();
    let manifest = home.manifest(HTTP_SERVICE, "");
    let info = home.up(&manifest);
    let pid = info["parts"][0]["pid"].as_u64().unwrap();
    assert!(running(pid));

    home.kill_daemon();
    assert!(
        running(pid),
        "the service should survive its daemon's SIGKILL until reaped"
    );

    // The next command starts a new daemon, which reaps before it serves.
    assert!(home.ps().is_empty());
    eventually(
        || (!running(pid)).then_some(()),
        "the orphaned service to be reaped",
    );
}

#[test]
fn an_expired_environment_is_torn_down_by_the_daemon() {
    let home = Home::new();
    let manifest = home.manifest(HTTP_SERVICE, PING_DEP);
    let output = home.envd(&["up", "--detach", "--ttl", "1s", "--json", "-f", &manifest]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let info: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(
        info["expires_ms"].as_u64().unwrap() - info["created_ms"].as_u64().unwrap(),
        1000
    );
    eventually(
        || home.ps().is_empty().then_some(()),
        "the TTL to tear the environment down",
    );
}

#[test]
fn manifest_errors_name_the_file_line_and_key() {
    let home = Home::new();
    let path = home
        .work
        .write("envd.toml", "[service]\ncomand = [\"python3\"]\n");
    let output = home.envd(&["up", "-f", &path.display().to_string()]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(
        output.stderr.contains(&format!(
            "{}:2:1: unknown key `comand` in service; did you mean `command`?",
            path.display()
        )),
        "{}",
        output.stderr
    );
    assert!(
        home.daemon_pid().is_none(),
        "a bad manifest should not even start the daemon"
    );
}

#[test]
fn a_run_interrupted_while_starting_tears_down_what_started() {
    let home = Home::new();
    // Never healthy: nothing listens on its port.
    let manifest = home.manifest(
        "name = \"slow\"\ncommand = [\"sleep\", \"300\"]\nstart_timeout = \"5m\"",
        PING_DEP,
    );
    let mut run = Command::new(binary())
        .args(["run", "-f", &manifest, "--", "true"])
        .env("ENVD_HOME", home.home())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = eventually(
        || {
            let environments = home.ps();
            let parts = environments.first()?["parts"].as_array()?.clone();
            parts.iter().find(|p| p["name"] == "slow")?["pid"].as_u64()
        },
        "the service to be started",
    );
    assert!(Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        home.ps().is_empty(),
        "the interrupted environment is still there"
    );
    eventually(
        || (!running(pid)).then_some(()),
        "the half-started service to stop",
    );
}

#[test]
fn verify_f_checks_the_manifests_service_as_the_provider_and_tears_down() {
    let home = Home::new();
    home.work.write("www/ping.json", "{\"pong\": true}");
    let contract = |status: u16| {
        crate::harness::pact(
            "3.0.0",
            serde_json::json!([{
                "description": "a ping",
                "request": {"method": "GET", "path": "/ping.json"},
                "response": {"status": status, "headers": {"Content-Type": "application/json"}, "body": {"pong": true}}
            }]),
        )
    };
    home.work.pact("contracts/web.json", &contract(200));
    home.work.pact("contracts/broken.json", &contract(201));
    let service = "name = \"web\"\ncwd = \"www\"\ncommand = [\"python3\", \"-m\", \"http.server\", \"{port}\", \"--bind\", \"127.0.0.1\"]\nhealth = \"/ping.json\"";
    let manifest = home.manifest(service, "[verify]\ncontracts = [\"contracts/web.json\"]\n");

    let output = home.envd(&["verify", "-f", &manifest]);
    assert_eq!(output.code, Some(0), "{}\n{}", output.stdout, output.stderr);
    assert!(output.stdout.contains("a ping"), "{}", output.stdout);
    assert!(home.ps().is_empty(), "envd verify -f left its environment");

    let broken = home
        .work
        .path("contracts/broken.json")
        .display()
        .to_string();
    let output = home.envd(&["verify", "-f", &manifest, "--contract", &broken]);
    assert_eq!(output.code, Some(1), "{}\n{}", output.stdout, output.stderr);
    assert!(
        output.stdout.contains("201") && output.stdout.contains("200"),
        "{}",
        output.stdout
    );
    assert!(home.ps().is_empty());
}

#[test]
fn envd_host_drives_a_remote_daemon_behind_its_token() {
    let home = Home::new();
    let token = home.work.write("token", "s3cr3t\n").display().to_string();
    let daemon_home = home.work.path("remote-home").display().to_string();
    let daemon = crate::harness::Envd::daemon_with_env(
        &[
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            &token,
            "--environments",
        ],
        &[("ENVD_HOME", &daemon_home)],
    )
    .expect("the remote daemon starts");
    let manifest = home.manifest(HTTP_SERVICE, PING_DEP);
    let remote = |token: &str, args: &[&str]| {
        let output = Command::new(binary())
            .args(args)
            .env("ENVD_HOME", home.home())
            .env("ENVD_HOST", &daemon.url)
            .env("ENVD_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, _, stderr) = remote("wrong", &["ps"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unauthorized"), "{stderr}");

    let (code, stdout, stderr) = remote("s3cr3t", &["up", "--detach", "--json", "-f", &manifest]);
    assert_eq!(code, Some(0), "{stderr}");
    let info: Value = serde_json::from_str(&stdout).unwrap();
    let ping = info["vars"]["PING_URL"].as_str().unwrap();
    assert_eq!(
        get(&format!("{ping}/ping")).json(),
        serde_json::json!({"pong": true})
    );
    let (_, listed, _) = remote("s3cr3t", &["ps", "--json"]);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&listed).unwrap().len(),
        1
    );

    let (code, _, stderr) = remote("s3cr3t", &["down"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (_, listed, _) = remote("s3cr3t", &["ps", "--json"]);
    assert!(serde_json::from_str::<Vec<Value>>(&listed)
        .unwrap()
        .is_empty());
    assert!(
        home.daemon_pid().is_none(),
        "no daemon on this side is started for ENVD_HOST"
    );
}

#[test]
fn a_service_dependency_runs_as_the_user_its_manifest_names() {
    let home = Home::new();
    // PostgreSQL's case: a server that refuses to run as root gets an unprivileged user.
    let deps = "[deps.db]\nmode = \"service\"\nuser = \"nobody\"\n\
                command = [\"/bin/sh\", \"-c\", \"echo uid=$(id -u); exec sleep 300\"]\n\
                health = { log = \"uid=\" }\nurl_env = \"DB_URL\"";
    let manifest = home.manifest(HTTP_SERVICE, deps);
    let output = home.envd(&["up", "--detach", "--json", "-f", &manifest]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert_eq!(output.code, Some(3), "{}", output.stderr);
        assert!(
            output.stderr.contains(
                "user \"nobody\": starting a process as another user needs envd to run as root"
            ),
            "{}",
            output.stderr
        );
        return;
    }
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let id = serde_json::from_str::<Value>(&output.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let logs = home.envd(&["logs", &id, "db"]);
    assert!(logs.stdout.contains("uid=65534"), "{}", logs.stdout);
    assert_eq!(home.envd(&["down", &id]).code, Some(0));
}
