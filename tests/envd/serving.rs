//! Serving contracts: every Pact version, generators, provider states, sequences, h2c.

use regex::Regex;
use serde_json::json;

use crate::harness::{get, http, pact, Envd, Workdir};

fn item(description: &str, path: &str, status: u16, body: serde_json::Value) -> serde_json::Value {
    json!({
        "description": description,
        "request": {"method": "GET", "path": path},
        "response": {"status": status, "headers": {"Content-Type": "application/json"}, "body": body}
    })
}

#[test]
fn serves_v2_v3_and_v4_files_from_a_directory() {
    let work = Workdir::new();
    let v2_rules = json!({
        "description": "an order by id",
        "request": {"method": "GET", "path": "/orders/17",
                    "matchingRules": {"$.path": {"match": "regex", "regex": "^/orders/\\d+$"}}},
        "response": {"status": 200, "headers": {"Content-Type": "application/json"}, "body": {"id": 17}}
    });
    work.pact("contracts/a-v2.json", &pact("2.0.0", json!([v2_rules])));
    let v3_query = json!({
        "description": "a search",
        "request": {"method": "GET", "path": "/search", "query": {"q": ["shoes"]}},
        "response": {"status": 200, "body": "found"}
    });
    work.pact("contracts/b-v3.json", &pact("3.0.0", json!([v3_query])));
    let mut v4 = item("the health check", "/health", 200, json!({"status": "ok"}));
    v4["type"] = json!("Synchronous/HTTP");
    let message = json!({"type": "Asynchronous/Messages", "description": "an event", "contents": {"content": {}}});
    work.pact("contracts/c-v4.json", &pact("4.0", json!([v4, message])));
    let contracts = work.path("contracts").display().to_string();
    let stub = Envd::stub(&["--contract", &contracts]);

    let by_rule = get(&format!("{}/orders/99", stub.url));
    assert_eq!((by_rule.status, by_rule.json()), (200, json!({"id": 17})));
    assert_eq!(by_rule.header("content-type"), Some("application/json"));
    let search = get(&format!("{}/search?q=shoes", stub.url));
    assert_eq!((search.status, search.text().as_str()), (200, "found"));
    let health = get(&format!("{}/health", stub.url));
    assert_eq!(health.json(), json!({"status": "ok"}));
    stub.wait_for_log("skipping a message interaction");

    let listed = get(&format!("{}/__envd/interactions", stub.url)).json();
    let descriptions: Vec<&str> = listed["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|one| one["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        ["an order by id", "a search", "the health check"]
    );
    assert!(listed["interactions"][2]["sources"][0]
        .as_str()
        .unwrap()
        .ends_with("c-v4.json#/interactions/0"));
}

#[test]
fn generators_fill_every_kind_of_value() {
    let work = Workdir::new();
    let generated = json!({
        "type": "Synchronous/HTTP",
        "description": "a generated order",
        "request": {"method": "GET", "path": "/generated"},
        "response": {
            "status": 200,
            "headers": {"Content-Type": "application/json", "X-Request-Id": "x"},
            "body": {"int": 0, "decimal": 0.0, "hex": "", "string": "", "regex": "", "uuid": "",
                     "date": "", "time": "", "datetime": "", "boolean": false, "order": 0},
            "generators": {
                "header": {"X-Request-Id": {"type": "Uuid"}},
                "body": {
                    "$.int": {"type": "RandomInt", "min": 10, "max": 99},
                    "$.decimal": {"type": "RandomDecimal", "digits": 5},
                    "$.hex": {"type": "RandomHexadecimal", "digits": 8},
                    "$.string": {"type": "RandomString", "size": 12},
                    "$.regex": {"type": "Regex", "regex": "\\d{3}-[a-z]{2}"},
                    "$.uuid": {"type": "Uuid"},
                    "$.date": {"type": "Date", "format": "yyyy-MM-dd"},
                    "$.time": {"type": "Time", "format": "HH:mm:ss"},
                    "$.datetime": {"type": "DateTime", "format": "yyyy-MM-dd'T'HH:mm:ss"},
                    "$.boolean": {"type": "RandomBoolean"},
                    "$.order": {"type": "ProviderState", "expression": "${orderId}", "dataType": "INTEGER"}
                }
            }
        }
    });
    let file = work.pact("generated.json", &pact("4.0", json!([generated])));
    let stub = Envd::stub(&["--contract", &file]);
    let state = http("POST", &format!("{}/__envd/state", stub.url))
        .json(&json!({"states": [{"name": "an order exists", "params": {"orderId": 4711}}]}))
        .send();
    assert_eq!(state.status, 200);

    let first = get(&format!("{}/generated", stub.url));
    let body = first.json();
    let shape = |field: &str, pattern: &str| {
        let value = match &body[field] {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        assert!(
            Regex::new(pattern).unwrap().is_match(&value),
            "{field} = {value:?} is not {pattern}"
        );
    };
    shape("int", "^[1-9][0-9]$");
    shape("decimal", r"^\d+\.\d+$");
    shape("hex", "^[0-9a-fA-F]{8}$");
    shape("string", "^.{12}$");
    shape("regex", r"^\d{3}-[a-z]{2}$");
    shape(
        "uuid",
        "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    );
    shape("date", r"^\d{4}-\d{2}-\d{2}$");
    shape("time", r"^\d{2}:\d{2}:\d{2}$");
    shape("datetime", r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$");
    shape("boolean", "^(true|false)$");
    assert_eq!(body["order"], json!(4711));
    let request_id = first.header("x-request-id").unwrap().to_owned();
    assert_ne!(request_id, "x");

    let second = get(&format!("{}/generated", stub.url));
    assert_ne!(
        second.json()["string"],
        body["string"],
        "random values are drawn per request"
    );
    assert_ne!(second.header("x-request-id").unwrap(), request_id);
}

#[test]
fn provider_states_pick_among_interactions_at_start_and_at_run_time() {
    let work = Workdir::new();
    let mut sold_out = item(
        "item 1 when sold out",
        "/items/1",
        410,
        json!({"error": "sold out"}),
    );
    sold_out["providerStates"] = json!([{"name": "item 1 is sold out"}]);
    let file = work.pact(
        "states.json",
        &pact(
            "3.0.0",
            json!([item("item 1", "/items/1", 200, json!({"id": 1})), sold_out]),
        ),
    );

    let plain = Envd::stub(&["--contract", &file]);
    assert_eq!(get(&format!("{}/items/1", plain.url)).status, 200);
    let set = http("POST", &format!("{}/__envd/state", plain.url))
        .json(&json!({"states": [{"name": "item 1 is sold out"}]}))
        .send();
    assert_eq!(set.json()["states"][0]["name"], "item 1 is sold out");
    assert_eq!(get(&format!("{}/items/1", plain.url)).status, 410);
    let teardown = http("POST", &format!("{}/__envd/state", plain.url))
        .json(&json!({"state": "item 1 is sold out", "action": "teardown"}))
        .send();
    assert_eq!(teardown.json()["states"], json!([]));
    assert_eq!(get(&format!("{}/items/1", plain.url)).status, 200);

    let started_in_state = Envd::stub(&["--contract", &file, "--state", "item 1 is sold out"]);
    assert_eq!(
        get(&format!("{}/items/1", started_in_state.url)).status,
        410
    );
    http("POST", &format!("{}/__envd/state", started_in_state.url))
        .json(&json!({"states": []}))
        .send();
    assert_eq!(
        get(&format!("{}/items/1", started_in_state.url)).status,
        200
    );
    http("POST", &format!("{}/__envd/reset", started_in_state.url)).send();
    assert_eq!(
        get(&format!("{}/items/1", started_in_state.url)).status,
        410,
        "reset restores --state"
    );
}

#[test]
fn identical_requests_replay_in_recorded_order_and_the_last_repeats() {
    let work = Workdir::new();
    let file = work.pact(
        "recording.json",
        &pact(
            "4.0",
            json!([
                item("poll 1", "/job", 202, json!({"state": "queued"})),
                item("poll 2", "/job", 202, json!({"state": "running"})),
                item("poll 3", "/job", 200, json!({"state": "done"})),
            ]),
        ),
    );
    let stub = Envd::stub(&["--recording", &file]);
    let url = format!("{}/job", stub.url);
    let states: Vec<String> = (0..4)
        .map(|_| get(&url).json()["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["queued", "running", "done", "done"]);
    http("POST", &format!("{}/__envd/reset", stub.url)).send();
    assert_eq!(get(&url).json()["state"], "queued");
}

#[test]
fn requests_match_on_headers_query_and_body_rules() {
    let work = Workdir::new();
    let create = json!({
        "description": "create an order",
        "request": {
            "method": "POST", "path": "/orders",
            "headers": {"Content-Type": "application/json", "Authorization": "Bearer abc"},
            "body": {"sku": "A-1", "qty": 1},
            "matchingRules": {
                "header": {"Authorization": {"matchers": [{"match": "regex", "regex": "^Bearer \\w+$"}]}},
                "body": {"$.qty": {"matchers": [{"match": "integer"}]}}
            }
        },
        "response": {"status": 201, "body": {"created": true}}
    });
    let file = work.pact("orders.json", &pact("3.0.0", json!([create])));
    let stub = Envd::stub(&["--contract", &file]);
    let url = format!("{}/orders", stub.url);
    let send = |auth: &str, body: serde_json::Value| {
        http("POST", &url)
            .header("authorization", auth)
            .json(&body)
            .send()
            .status
    };
    assert_eq!(send("Bearer xyz", json!({"sku": "A-1", "qty": 3})), 201);
    assert_eq!(send("Bearer xyz", json!({"sku": "A-1", "qty": "3"})), 404);
    assert_eq!(send("Basic xyz", json!({"sku": "A-1", "qty": 3})), 404);
    assert_eq!(send("Bearer xyz", json!({"sku": "B-2", "qty": 3})), 404);
    let as_text = http("POST", &url)
        .header("authorization", "Bearer xyz")
        .header("content-type", "text/plain")
        .body(r#"{"sku":"A-1","qty":3}"#)
        .send();
    assert_eq!(as_text.status, 404, "a content-type mismatch is a mismatch");
}

#[test]
fn speaks_h2c() {
    let work = Workdir::new();
    let file = work.pact(
        "health.json",
        &pact(
            "3.0.0",
            json!([item("health", "/health", 200, json!({"ok": true}))]),
        ),
    );
    let stub = Envd::stub(&["--contract", &file]);
    let reply = http("GET", &format!("{}/health", stub.url)).http2().send();
    assert_eq!((reply.status, reply.json()), (200, json!({"ok": true})));
}
