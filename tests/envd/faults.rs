//! Faults and latency: injected errors, resets, seeded decisions, per-interaction faults
//! set at run time, and the `x-envd-fault` header that reports each one. Nothing here
//! measures time: a delay is asserted through the header that reports it.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{get, http, pact, run, Envd, Staging, Workdir};

fn order(description: &str, id: u32, latency_ms: Option<f64>) -> Value {
    let mut interaction = json!({
        "type": "Synchronous/HTTP",
        "description": description,
        "request": {"method": "GET", "path": format!("/orders/{id}")},
        "response": {"status": 200, "headers": {"Content-Type": "application/json"}, "body": {"id": id}}
    });
    if let Some(ms) = latency_ms {
        interaction["metadata"] = json!({"envd": {"latencyMs": ms}});
    }
    interaction
}

/// Two orders, the first recorded as taking 12.5 ms; returns the file as an argument.
fn orders(work: &Workdir) -> String {
    work.pact(
        "orders.json",
        &pact(
            "4.0",
            json!([order("order 1", 1, Some(12.5)), order("order 2", 2, None)]),
        ),
    )
}

fn post_faults(envd: &Envd, body: &Value) -> crate::harness::Reply {
    http("POST", &format!("{}/__envd/faults", envd.url))
        .json(body)
        .send()
}

#[test]
fn error_rate_1_answers_every_request_with_the_injected_problem() {
    let work = Workdir::new();
    let stub = Envd::stub(&[
        "--contract",
        &orders(&work),
        "--error-rate",
        "1",
        "--error-status",
        "503",
    ]);
    for target in ["/orders/1", "/orders/2", "/not/in/the/contract"] {
        let reply = get(&format!("{}{target}", stub.url));
        assert_eq!(reply.status, 503, "{target}");
        assert_eq!(reply.header("x-envd-fault"), Some("error=503"));
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(reply.json()["type"], "urn:envd:problem:injected-fault");
    }
    let health = get(&format!("{}/__envd/health", stub.url));
    assert_eq!(health.status, 200, "the admin API is never faulted");
}

#[test]
fn a_seed_repeats_the_same_sequence_of_statuses() {
    let work = Workdir::new();
    let contract = orders(&work);
    let statuses = |seed: &str| -> Vec<u16> {
        let stub = Envd::stub(&[
            "--contract",
            &contract,
            "--error-rate",
            "0.5",
            "--seed",
            seed,
        ]);
        (0..24)
            .map(|_| get(&format!("{}/orders/1", stub.url)).status)
            .collect()
    };
    let first = statuses("42");
    assert_eq!(first, statuses("42"));
    assert!(
        first.contains(&200) && first.contains(&503),
        "about half fail: {first:?}"
    );
}

#[test]
fn a_reset_fails_the_request_and_the_stub_serves_once_faults_are_cleared() {
    let work = Workdir::new();
    let stub = Envd::stub(&["--contract", &orders(&work)]);
    let set = post_faults(&stub, &json!({"resetRate": 1}));
    assert_eq!(set.status, 200, "{}", set.text());
    let failed = http("GET", &format!("{}/orders/1", stub.url)).try_send();
    assert!(failed.is_err(), "expected a reset, got {failed:?}");

    let cleared = http("DELETE", &format!("{}/__envd/faults", stub.url)).send();
    assert_eq!(cleared.json()["all"]["resetRate"], 0.0);
    let served = get(&format!("{}/orders/1", stub.url));
    assert_eq!((served.status, served.json()), (200, json!({"id": 1})));
    assert_eq!(served.header("x-envd-fault"), None);
}

#[test]
fn a_reset_flag_resets_until_faults_are_set_off() {
    let work = Workdir::new();
    let stub = Envd::stub(&["--contract", &orders(&work), "--reset-rate", "1"]);
    assert!(http("GET", &format!("{}/orders/2", stub.url))
        .try_send()
        .is_err());
    post_faults(&stub, &json!({}));
    assert_eq!(get(&format!("{}/orders/2", stub.url)).status, 200);
}

#[test]
fn per_interaction_faults_affect_only_that_interaction() {
    let work = Workdir::new();
    let stub = Envd::stub(&["--contract", &orders(&work)]);
    let set = post_faults(
        &stub,
        &json!({"interaction": "order 1", "errorRate": 1, "errorStatus": 500}),
    );
    assert_eq!(set.json()["interactions"]["order 1"]["errorStatus"], 500);

    let faulted = get(&format!("{}/orders/1", stub.url));
    assert_eq!(
        (faulted.status, faulted.header("x-envd-fault")),
        (500, Some("error=500"))
    );
    let other = get(&format!("{}/orders/2", stub.url));
    assert_eq!((other.status, other.header("x-envd-fault")), (200, None));
    let shown = get(&format!("{}/__envd/faults", stub.url)).json();
    assert_eq!(shown["interactions"]["order 1"]["errorRate"], 1.0);
    assert_eq!(shown["all"]["errorRate"], 0.0);
    let journal = get(&format!("{}/__envd/journal", stub.url)).json();
    assert!(journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|entry| entry["note"] == "injected fault: error=500"));

    let unknown = post_faults(&stub, &json!({"interaction": "order 3", "errorRate": 1}));
    assert_eq!(unknown.status, 400);
    assert!(unknown.json()["detail"]
        .as_str()
        .unwrap()
        .starts_with("/interaction: expected the description of a served interaction"));

    http("POST", &format!("{}/__envd/reset", stub.url)).send();
    assert_eq!(
        get(&format!("{}/orders/1", stub.url)).status,
        200,
        "reset clears run-time faults"
    );
}

#[test]
fn bad_fault_requests_get_a_problem_naming_the_field() {
    let work = Workdir::new();
    let stub = Envd::stub(&["--contract", &orders(&work)]);
    let cases = [
        (
            json!({"errorRate": 2}),
            "/errorRate: expected a number from 0 to 1, found 2",
        ),
        (
            json!({"latency": "soon"}),
            r#"/latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found "soon""#,
        ),
        (
            json!({"errorRate": 0.1, "rate": 1}),
            "/rate: unknown field, expected one of latency, errorRate, errorStatus, resetRate, interaction",
        ),
    ];
    for (body, detail) in cases {
        let reply = post_faults(&stub, &body);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(reply.json()["detail"], detail, "{body}");
    }
    assert_eq!(
        get(&format!("{}/__envd/faults", stub.url)).json()["all"]["errorRate"],
        0.0,
        "a refused request changes nothing"
    );
}

#[test]
fn recorded_and_fixed_latency_are_reported_in_a_header() {
    let work = Workdir::new();
    let contract = orders(&work);
    let recorded = Envd::stub(&["--recording", &contract, "--latency", "recorded"]);
    let slow = get(&format!("{}/orders/1", recorded.url));
    assert_eq!(
        (slow.status, slow.header("x-envd-fault")),
        (200, Some("latency=12.5ms"))
    );
    let unrecorded = get(&format!("{}/orders/2", recorded.url));
    assert_eq!(
        unrecorded.header("x-envd-fault"),
        None,
        "no recorded latency, no delay"
    );

    let fixed = Envd::stub(&["--contract", &contract, "--latency", "200ms"]);
    let reply = get(&format!("{}/orders/2", fixed.url));
    assert_eq!(
        (reply.status, reply.header("x-envd-fault")),
        (200, Some("latency=200ms"))
    );
    assert_eq!(reply.json(), json!({"id": 2}));
}

#[test]
fn a_bad_fault_flag_is_bad_input() {
    let work = Workdir::new();
    let contract = orders(&work);
    for (flag, value, message) in [
        (
            "--error-rate",
            "2",
            "envd: error: --error-rate: expected a number from 0 to 1, found 2",
        ),
        (
            "--latency",
            "lognormal:median=80ms",
            r#"envd: error: --latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found "lognormal:median=80ms""#,
        ),
        (
            "--error-status",
            "200",
            "envd: error: --error-status: expected an HTTP error status (400-599), found 200",
        ),
    ] {
        let (code, _, stderr) = run(&["stub", "--contract", &contract, flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
    }
}

#[test]
fn a_proxy_injects_errors_instead_of_forwarding_until_told_otherwise() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(method("GET"))
            .and(path("/items/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1}))),
    );
    let proxy = Envd::start("proxy", &["--target", &staging.uri(), "--error-rate", "1"])
        .expect("proxy starts");
    let injected = get(&format!("{}/items/1", proxy.url));
    assert_eq!(
        (injected.status, injected.header("x-envd-fault")),
        (503, Some("error=503"))
    );
    assert_eq!(injected.json()["type"], "urn:envd:problem:injected-fault");
    assert!(
        staging.received().is_empty(),
        "an injected error is not forwarded"
    );

    let set = post_faults(
        &proxy,
        &json!({"interaction": "GET /items/1", "latency": "5ms"}),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    let forwarded = get(&format!("{}/items/1", proxy.url));
    assert_eq!(
        (forwarded.status, forwarded.json()),
        (200, json!({"id": 1}))
    );
    assert_eq!(forwarded.header("x-envd-fault"), Some("latency=5ms"));
    assert_eq!(staging.received().len(), 1);
}

#[test]
fn a_spying_proxy_replays_recorded_latency_and_forwards_without_delay() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(method("GET"))
            .and(path("/items/1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1}))),
    );
    let work = Workdir::new();
    let file = work.path("items.json").display().to_string();
    let proxy = Envd::start(
        "proxy",
        &[
            "--target",
            &staging.uri(),
            "--record",
            &file,
            "--spy",
            "--latency",
            "recorded",
        ],
    )
    .expect("proxy starts");
    let forwarded = get(&format!("{}/items/1", proxy.url));
    assert_eq!(
        (forwarded.status, forwarded.header("x-envd-fault")),
        (200, None)
    );
    let replayed = get(&format!("{}/items/1", proxy.url));
    assert_eq!(replayed.json(), json!({"id": 1}));
    let fault = replayed.header("x-envd-fault").unwrap_or_default();
    assert!(fault.starts_with("latency="), "{fault:?}");
    assert_eq!(staging.received().len(), 1, "the second answer is replayed");
}
