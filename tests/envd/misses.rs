//! A request that matches nothing: the 404, its explanation, and the journal.

use serde_json::json;

use crate::harness::{get, http, pact, Envd, Workdir};

fn orders_contract(work: &Workdir) -> String {
    let typed_items = json!({
        "description": "post items with integer ids",
        "request": {
            "method": "POST", "path": "/items",
            "headers": {"Content-Type": "application/json"},
            "body": {"items": [{"id": 1}]},
            "matchingRules": {"body": {"$.items[*].id": {"matchers": [{"match": "integer"}]}}}
        },
        "response": {"status": 201}
    });
    let others: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            json!({
                "description": format!("get item {i}"),
                "request": {"method": "GET", "path": format!("/items/{i}")},
                "response": {"status": 200, "body": {"id": i}}
            })
        })
        .collect();
    let mut all = vec![typed_items];
    all.extend(others);
    work.pact("orders.json", &pact("3.0.0", serde_json::Value::Array(all)))
}

#[test]
fn a_miss_names_the_closest_interactions_and_each_mismatch() {
    let work = Workdir::new();
    let file = orders_contract(&work);
    let stub = Envd::stub(&["--contract", &file]);

    let miss = http("POST", &format!("{}/items", stub.url))
        .json(&json!({"items": [{"id": "abc"}]}))
        .send();
    assert_eq!(miss.status, 404);
    assert_eq!(miss.header("x-envd-unmatched"), Some("true"));
    assert_eq!(
        miss.header("content-type"),
        Some("application/problem+json")
    );
    let problem = miss.json();
    assert_eq!(problem["request"]["method"], "POST");
    assert_eq!(problem["request"]["path"], "/items");
    assert_eq!(
        problem["request"]["body"],
        json!({"items": [{"id": "abc"}]})
    );
    assert_eq!(
        problem["closest"][0]["description"],
        "post items with integer ids"
    );
    assert_eq!(
        problem["closest"][0]["mismatches"],
        json!(["body $.items[0].id: expected an integer, got \"abc\""])
    );

    let typo = get(&format!("{}/items/7x", stub.url)).json();
    let closest = typo["closest"].as_array().unwrap();
    assert_eq!(closest.len(), 3, "{typo:#}");
    assert_eq!(closest[0]["description"], "get item 7");
    assert_eq!(
        closest[0]["mismatches"],
        json!(["path: expected \"/items/7\", got \"/items/7x\""])
    );
}

#[test]
fn the_journal_keeps_hits_and_misses_with_their_reasons() {
    let work = Workdir::new();
    let file = orders_contract(&work);
    let stub = Envd::stub(&["--contract", &file]);
    assert_eq!(get(&format!("{}/items/3", stub.url)).status, 200);
    let traced = http("GET", &format!("{}/nowhere?x=1", stub.url))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send();
    assert_eq!(traced.status, 404);

    let all = get(&format!("{}/__envd/journal", stub.url)).json();
    let entries = all["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["matched"], "get item 3");
    assert_eq!(entries[1]["target"], "/nowhere?x=1");
    assert_eq!(entries[1]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    let misses = get(&format!("{}/__envd/journal?unmatched=true", stub.url)).json();
    assert_eq!(misses["entries"].as_array().unwrap().len(), 1);
    assert_eq!(misses["entries"][0]["status"], 404);

    http("POST", &format!("{}/__envd/reset", stub.url)).send();
    let after = get(&format!("{}/__envd/journal", stub.url)).json();
    assert_eq!(after["entries"], json!([]));
    assert_eq!(
        get(&format!("{}/__envd/health", stub.url)).json()["interactions"],
        51
    );
}

#[test]
fn unknown_admin_endpoints_are_named() {
    let work = Workdir::new();
    let file = orders_contract(&work);
    let stub = Envd::stub(&["--contract", &file]);
    let unknown = get(&format!("{}/__envd/nope", stub.url));
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["detail"]
        .as_str()
        .unwrap()
        .contains("expected one of faults, health"));
    assert_eq!(
        http("DELETE", &format!("{}/__envd/journal", stub.url))
            .send()
            .status,
        405
    );
    let bad_state = http("POST", &format!("{}/__envd/state", stub.url))
        .body("{")
        .send();
    assert_eq!(bad_state.status, 400);
}
