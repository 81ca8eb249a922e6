//! `envd verify` against a real provider of the tests' own (a wiremock server), as it is
//! and with one deliberate break at a time; provider states by URL and by command; JUnit.

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{pact, run, Staging, Workdir};

/// The contract: GET /orders/1 given "order 1 exists" answers 200, a version header and
/// an order whose id is any integer and whose name is any string.
fn contract() -> Value {
    pact(
        "3.0.0",
        json!([{
            "description": "get order 1",
            "providerStates": [{"name": "order 1 exists", "params": {"id": 1}}],
            "request": {"method": "GET", "path": "/orders/1"},
            "response": {
                "status": 200,
                "headers": {"Content-Type": "application/json", "X-Version": "2"},
                "body": {"id": 7, "name": "book"},
                "matchingRules": {"body": {
                    "$.id": {"matchers": [{"match": "integer"}]},
                    "$.name": {"matchers": [{"match": "type"}]}
                }}
            }
        }]),
    )
}

/// A provider answering GET /orders/1 with `status`, `headers` and `body`.
fn provider(status: u16, headers: &[(&str, &str)], body: Value) -> Staging {
    let provider = Staging::start();
    let mut answer = ResponseTemplate::new(status).set_body_json(body);
    for (name, value) in headers {
        answer = answer.insert_header(*name, *value);
    }
    provider.mock(
        Mock::given(method("GET"))
            .and(path("/orders/1"))
            .respond_with(answer),
    );
    provider
}

fn verify(provider: &Staging, extra: &[&str]) -> (Option<i32>, String, String) {
    let dir = Workdir::new();
    let file = dir.pact("orders-payments.json", &contract());
    let uri = provider.uri();
    let mut args = vec!["verify", "--provider", &uri, "--contract", &file];
    args.extend_from_slice(extra);
    run(&args)
}

const GOOD_HEADERS: &[(&str, &str)] = &[("X-Version", "2")];

#[test]
fn verifies_a_provider_as_it_is_and_writes_junit() {
    let provider = provider(200, GOOD_HEADERS, json!({"id": 42, "name": "lamp"}));
    let dir = Workdir::new();
    let junit = dir.path("reports/pact.xml");
    std::fs::create_dir_all(junit.parent().expect("parent")).expect("reports dir");
    let junit_arg = junit.display().to_string();
    let (code, stdout, stderr) = verify(&provider, &["--junit", &junit_arg]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok   orders: get order 1 (given order 1 exists)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 verified, 0 failed"), "{stdout}");

    let xml = std::fs::read_to_string(&junit).expect("junit report");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 1, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 0, "{xml}");
    assert!(
        xml.contains("<testsuite name=\"orders -&gt; payments\" tests=\"1\" failures=\"0\">"),
        "{xml}"
    );
    assert!(
        balanced(&xml, "testsuites") && balanced(&xml, "testsuite"),
        "{xml}"
    );
}

/// A provider's status, headers and body, and the words that must report the break.
type Break = (
    u16,
    &'static [(&'static str, &'static str)],
    Value,
    &'static str,
);

/// Each break alone, and the words that must report it.
#[test]
fn each_break_is_reported_in_words() {
    let cases: [Break; 4] = [
        (
            200,
            GOOD_HEADERS,
            json!({"id": "42", "name": "lamp"}),
            "body $.id: expected an integer, got \"42\"",
        ),
        (200, GOOD_HEADERS, json!({"id": 42}), "body $: "),
        (
            404,
            GOOD_HEADERS,
            json!({"id": 42, "name": "lamp"}),
            "status: expected 200, got 404",
        ),
        (
            200,
            &[("X-Version", "3")],
            json!({"id": 42, "name": "lamp"}),
            "header X-Version: ",
        ),
    ];
    for (status, headers, body, words) in cases {
        let provider = provider(status, headers, body.clone());
        let (code, stdout, stderr) = verify(&provider, &[]);
        assert_eq!(code, Some(1), "{body} {status}: {stdout}{stderr}");
        assert!(stdout.contains("FAIL orders: get order 1"), "{stdout}");
        assert!(stdout.contains(words), "expected {words:?} in:\n{stdout}");
        assert_eq!(
            stdout
                .lines()
                .filter(|line| line.starts_with("       ") && !line.starts_with("        "))
                .count(),
            1,
            "exactly the one break is reported:\n{stdout}"
        );
    }
}

#[test]
fn a_missing_field_names_the_field() {
    let provider = provider(200, GOOD_HEADERS, json!({"id": 42}));
    let (code, stdout, _) = verify(&provider, &["--json"]);
    assert_eq!(code, Some(1), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("json report");
    let failures = &report["interactions"][0]["failures"];
    assert_eq!(failures.as_array().map(Vec::len), Some(1), "{report:#}");
    let message = failures[0]["message"].as_str().expect("message");
    assert!(message.contains("name"), "{message}");
    assert_eq!(report["failed"], 1);
}

#[test]
fn junit_carries_the_mismatches_escaped() {
    let provider = provider(500, GOOD_HEADERS, json!({"id": 42, "name": "<lamp>"}));
    let dir = Workdir::new();
    let junit = dir.path("pact.xml");
    let junit_arg = junit.display().to_string();
    let (code, stdout, _) = verify(&provider, &["--junit", &junit_arg]);
    assert_eq!(code, Some(1), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("junit report");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("status: expected 200, got 500"), "{xml}");
    assert!(
        balanced(&xml, "testcase") && balanced(&xml, "failure"),
        "{xml}"
    );
}

#[test]
fn state_changes_are_posted_around_each_interaction() {
    let provider = provider(200, GOOD_HEADERS, json!({"id": 42, "name": "lamp"}));
    let states = Staging::start();
    states.mock(Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)));
    let url = format!("{}/__states", states.uri());
    let (code, stdout, stderr) = verify(&provider, &["--state-change", &url]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let bodies: Vec<Value> = states
        .received()
        .iter()
        .map(|request| {
            assert_eq!(request.url.path(), "/__states");
            serde_json::from_slice(&request.body).expect("json body")
        })
        .collect();
    assert_eq!(
        bodies,
        [
            json!({"state": "order 1 exists", "params": {"id": 1}, "action": "setup"}),
            json!({"state": "order 1 exists", "params": {"id": 1}, "action": "teardown"}),
        ]
    );
}

#[test]
fn a_failing_state_change_fails_the_interaction_with_the_reason() {
    let provider = provider(200, GOOD_HEADERS, json!({"id": 42, "name": "lamp"}));
    let states = Staging::start();
    states.mock(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_body_string("no db")),
    );
    let url = states.uri();
    let (code, stdout, _) = verify(&provider, &["--state-change", &url]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("provider state \"order 1 exists\": setup failed:")
            && stdout.contains("500")
            && stdout.contains("no db"),
        "{stdout}"
    );
    assert!(
        provider.received().is_empty(),
        "the request is not sent without its state"
    );
}

#[test]
fn a_state_change_command_gets_the_state_in_its_environment() {
    let provider = provider(200, GOOD_HEADERS, json!({"id": 42, "name": "lamp"}));
    let dir = Workdir::new();
    let log = dir.path("states.log");
    let command = format!(
        "echo \"$ENVD_STATE_ACTION|$ENVD_STATE|$ENVD_STATE_PARAMS\" >> '{}'",
        log.display()
    );
    let (code, stdout, stderr) = verify(&provider, &["--state-change-cmd", &command]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(&log).expect("log"),
        "setup|order 1 exists|{\"id\":1}\nteardown|order 1 exists|{\"id\":1}\n"
    );

    let (code, stdout, _) = verify(
        &provider,
        &["--state-change-cmd", "echo broken >&2; exit 3"],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("setup failed") && stdout.contains("broken"),
        "{stdout}"
    );
}

#[test]
fn filters_and_bad_input() {
    let provider = provider(200, GOOD_HEADERS, json!({"id": 42, "name": "lamp"}));
    let (code, _, stderr) = verify(&provider, &["--description", "^delete"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no interaction is left to verify"),
        "{stderr}"
    );
    let (code, stdout, _) = verify(&provider, &["--consumer", "orders", "--state", "exists"]);
    assert_eq!(code, Some(0), "{stdout}");
    let (code, _, stderr) = verify(&provider, &["--description", "("]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--description \"(\""), "{stderr}");

    let dir = Workdir::new();
    let broken = dir.write("broken.json", "{\"interactions\": [");
    let broken = broken.display().to_string();
    let uri = provider.uri();
    let (code, _, stderr) = run(&["verify", "--provider", &uri, "--contract", &broken]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("broken.json"), "{stderr}");
    let file = dir.pact("c.json", &contract());
    let (code, _, stderr) = run(&["verify", "--provider", "ftp://x", "--contract", &file]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--provider"), "{stderr}");
}

/// Every `<tag …>` has its `</tag>` or is self-closed: a minimal well-formedness check.
fn balanced(xml: &str, tag: &str) -> bool {
    let opened =
        xml.matches(&format!("<{tag} ")).count() + xml.matches(&format!("<{tag}>")).count();
    let closed = xml.matches(&format!("</{tag}>")).count();
    let self_closed = xml
        .split(&format!("<{tag} "))
        .skip(1)
        .filter(|rest| {
            rest.split('>')
                .next()
                .is_some_and(|head| head.ends_with('/'))
        })
        .count();
    opened == closed + self_closed
}

#[test]
fn contract_diff_lists_breaking_changes() {
    let dir = Workdir::new();
    let old = dir.pact("old.json", &contract());
    let mut changed = contract();
    changed["interactions"][0]["response"]["status"] = json!(201);
    changed["interactions"][0]["response"]["body"] = json!({"id": 7});
    let new = dir.pact("new.json", &changed);
    let (code, stdout, stderr) = run(&["contract", "diff", &old, &new]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "BREAKING get order 1 (given order 1 exists): response status changed from 200 to 201"
        ) && stdout.contains("response field $.name removed"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["contract", "diff", &old, &old, "--json"]);
    assert_eq!(code, Some(0), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report, json!({"breaking": 0, "changes": []}));
    let (code, _, stderr) = run(&["contract", "diff", &old, "/nonexistent.json"]);
    assert_eq!(code, Some(2), "{stderr}");
}

#[test]
fn request_generators_are_applied_with_the_state_params() {
    let provider = provider(200, GOOD_HEADERS, json!({"id": 42, "name": "lamp"}));
    let mut generated = contract();
    let interaction = &mut generated["interactions"][0];
    interaction["request"]["path"] = json!("/orders/999");
    interaction["request"]["generators"] =
        json!({"path": {"type": "ProviderState", "expression": "/orders/${id}"}});
    let dir = Workdir::new();
    let file = dir.pact("generated.json", &generated);
    let uri = provider.uri();
    let (code, stdout, stderr) = run(&["verify", "--provider", &uri, "--contract", &file]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let paths: Vec<String> = provider
        .received()
        .iter()
        .map(|request| request.url.path().to_owned())
        .collect();
    assert_eq!(paths, ["/orders/1"]);
}
