//! The Docker runtime, for real: a container built here (`docker import` of a root file
//! system holding a static busybox; there is no registry), started by the daemon through
//! the Engine API, reaching its stub through host.docker.internal, labelled, removed on
//! teardown and reaped after the daemon's SIGKILL. `scripts/test` starts the engine.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::environments::Home;
use crate::harness::{eventually, get};

const IMAGE: &str = "envd-test/busybox:1";

/// Builds the test image once per test run.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let engine = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        assert!(
            engine.is_ok_and(|o| o.status.success()),
            "no Docker engine answers: run the tests through scripts/test, which starts one"
        );
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "/bin/busybox is missing: scripts/test installs busybox-static"
        );
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("bin")).unwrap();
        std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
        for applet in ["sh", "wget", "mkdir", "httpd", "sleep"] {
            std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
        }
        let mut tar = Command::new("tar")
            .args(["-C", &root.path().display().to_string(), "-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let status = Command::new("docker")
            .args(["import", "-c", "ENV PATH=/bin", "-", IMAGE])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            tar.wait().unwrap().success(),
            "tar of the root file system failed"
        );
        assert!(status.success(), "docker import failed");
    });
    IMAGE
}

fn containers(environment: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=envd.env={environment}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Serves on 8080 a copy of what it fetched from its dependency, so a test can see that
/// the container reached the daemon's stub through the URL envd handed it.
fn container_service(image: &str) -> String {
    format!(
        "name = \"web\"\nimage = \"{image}\"\nport = 8080\nhealth = \"/ping.json\"\n\
         command = [\"sh\", \"-c\", \"mkdir -p /www && wget -qO /www/ping.json \\\"$PING_URL/ping\\\" && echo fetched $PING_URL && exec httpd -f -p 8080 -h /www\"]"
    )
}

#[test]
fn a_container_reaches_its_stubs_is_labelled_and_is_reaped_after_a_daemon_crash() {
    let image = image();
    let home = Home::new();
    let manifest = home.manifest(&container_service(image), crate::environments::PING_DEP);
    let info = home.up(&manifest);
    let id = info["id"].as_str().unwrap().to_owned();

    // The container fetched $PING_URL, rewritten to host.docker.internal, from the stub.
    let service = info["vars"]["ENVD_SERVICE_URL"].as_str().unwrap();
    assert_eq!(
        get(&format!("{service}/ping.json")).json(),
        serde_json::json!({"pong": true})
    );
    let logs = eventually(
        || {
            let logs = home.envd(&["logs", &id, "web"]);
            logs.stdout
                .contains("fetched http://host.docker.internal:")
                .then_some(logs)
        },
        "the container's output in envd logs",
    );
    assert_eq!(logs.code, Some(0));
    // The daemon's own view keeps the host's URL.
    assert!(info["vars"]["PING_URL"]
        .as_str()
        .unwrap()
        .starts_with("http://"));

    let labelled = containers(&id);
    assert_eq!(labelled.len(), 1, "one container labelled envd.env={id}");
    let part = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{index .Config.Labels \"envd.part\"}}",
            &labelled[0],
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&part.stdout).trim(), "web");

    home.kill_daemon();
    assert_eq!(
        containers(&id).len(),
        1,
        "the container should outlive its daemon until reaped"
    );
    assert!(home.ps().is_empty());
    assert!(
        containers(&id).is_empty(),
        "the restarted daemon did not reap the container"
    );
}

#[test]
fn down_removes_the_container_and_a_missing_image_says_how_to_get_it() {
    let image = image();
    let home = Home::new();
    let manifest = home.manifest(&container_service(image), crate::environments::PING_DEP);
    let id = home.up(&manifest)["id"].as_str().unwrap().to_owned();
    assert_eq!(containers(&id).len(), 1);
    assert_eq!(home.envd(&["down", &id]).code, Some(0));
    assert!(containers(&id).is_empty(), "envd down left the container");

    let missing = home.manifest(
        &container_service("envd-test/absent:1"),
        crate::environments::PING_DEP,
    );
    let output = home.envd(&["up", "--detach", "-f", &missing]);
    assert_eq!(output.code, Some(3), "{}", output.stderr);
    assert!(
        output.stderr.contains("web did not start: image envd-test/absent:1 is not on this machine; build it (`docker build -t envd-test/absent:1 .`) or pull it"),
        "{}",
        output.stderr
    );
    assert!(home.ps().is_empty());
}
