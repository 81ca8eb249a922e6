//! Bad contracts are refused with the file and JSON pointer; bad traffic never hurts the
//! server.

use std::io::Write;
use std::net::TcpStream;

use serde_json::json;

use crate::harness::{get, http, pact, run, Envd, Workdir};

/// `envd stub` on `file` exits 2 without listening, and stderr says `expected`.
fn refused(file: &str, expected: &str) {
    let failure = match Envd::start("stub", &["--contract", file]) {
        Ok(_) => panic!("envd served {file} instead of refusing it"),
        Err(failure) => failure,
    };
    assert!(failure.starts_with("exit status: 2"), "{failure}");
    assert!(
        failure.contains(expected),
        "stderr does not say {expected:?}:\n{failure}"
    );
}

fn health() -> serde_json::Value {
    json!({"description": "health", "request": {"method": "GET", "path": "/health"}, "response": {"status": 200}})
}

#[test]
fn every_bad_contract_is_named_with_its_place() {
    let work = Workdir::new();
    let missing = work.path("missing.json").display().to_string();
    refused(
        &missing,
        &format!("{missing}: cannot read: No such file or directory"),
    );

    let empty_dir = work.path("empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let empty_dir = empty_dir.display().to_string();
    refused(
        &empty_dir,
        &format!("{empty_dir}: no Pact files (*.json) in this directory"),
    );

    let broken = work
        .write(
            "broken.json",
            "{\n  \"interactions\": [\n    {\"description\": \"a\",}\n  ]\n}",
        )
        .display()
        .to_string();
    refused(
        &broken,
        &format!("{broken}:3:25: invalid JSON: key must be a string"),
    );

    let version = work.pact("version.json", &pact("7.1.0", json!([health()])));
    refused(&version, &format!("{version}#/metadata/pactSpecification/version: unknown Pact specification version \"7.1.0\""));

    let no_request = work.pact(
        "no-request.json",
        &pact(
            "3.0.0",
            json!([health(), {"description": "lost", "response": {"status": 200}}]),
        ),
    );
    refused(
        &no_request,
        &format!("{no_request}#/interactions/1/request: expected a request object, found nothing"),
    );

    let twice = work.pact("twice.json", &pact("3.0.0", json!([health(), health()])));
    refused(&twice, &format!("{twice}#/interactions/1: duplicate of the identical interaction at {twice}#/interactions/0"));

    let good = work.pact("good.json", &pact("3.0.0", json!([health()])));
    let (code, stdout, stderr) = run(&[
        "stub",
        "--contract",
        &good,
        "--contract",
        &version,
        "--port",
        "0",
    ]);
    assert_eq!(
        code,
        Some(2),
        "one bad file among good ones stops the start: {stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "nothing is served half-loaded"
    );
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() {
    let (code, _, stderr) = run(&["stub"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--contract <PATH>"), "{stderr}");
    let (code, help, _) = run(&["stub", "--help"]);
    assert_eq!(code, Some(0));
    for words in ["--watch", "--state <NAME>", "POST state", "Exit codes:"] {
        assert!(help.contains(words), "stub --help lacks {words:?}");
    }
}

#[test]
fn oversized_and_malformed_requests_get_answers_and_the_server_keeps_serving() {
    let work = Workdir::new();
    let file = work.pact("health.json", &pact("3.0.0", json!([health()])));
    let stub = Envd::stub(&["--contract", &file, "--max-body", "1024"]);
    let url = format!("{}/health", stub.url);

    let large = http("POST", &url).body(vec![b'x'; 4096]).send();
    assert_eq!(large.status, 413);
    assert!(large.json()["detail"]
        .as_str()
        .unwrap()
        .contains("1024 bytes"));

    let raw = |request: &[u8]| crate::harness::raw_http(&stub.address(), request);
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "y".repeat(200_000)
    );
    assert!(raw(huge_header.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(raw(b"NOT HTTP AT ALL\r\n\r\n").starts_with("HTTP/1.1 400"));

    // A client that stops halfway through its head holds its own connection, nobody else's.
    let mut slow = TcpStream::connect(stub.address()).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(get(&url).status, 200);
    drop(slow);
}

#[test]
fn sigterm_stops_the_stub_cleanly() {
    let work = Workdir::new();
    let file = work.pact("health.json", &pact("3.0.0", json!([health()])));
    let stub = Envd::stub(&["--contract", &file]);
    assert_eq!(get(&format!("{}/health", stub.url)).status, 200);
    let status = stub.terminate();
    assert_eq!(status.code(), Some(0));
}
