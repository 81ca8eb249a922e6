//! `--watch`: a good edit is served, a broken edit is logged and the old set keeps serving.

use serde_json::json;

use crate::harness::{eventually, get, pact, Envd, Workdir};

fn greeting(word: &str) -> serde_json::Value {
    pact(
        "3.0.0",
        json!([{"description": "greeting", "request": {"method": "GET", "path": "/hello"},
                "response": {"status": 200, "body": {"word": word}}}]),
    )
}

#[test]
fn reloads_good_edits_and_keeps_serving_through_broken_ones() {
    let work = Workdir::new();
    let file = work.pact("greeting.json", &greeting("hello"));
    let stub = Envd::stub(&["--contract", &file, "--watch"]);
    let url = format!("{}/hello", stub.url);
    assert_eq!(get(&url).json()["word"], "hello");

    work.pact("greeting.json", &greeting("bonjour"));
    eventually(
        || (get(&url).json()["word"] == "bonjour").then_some(()),
        "the edited response",
    );

    work.write("greeting.json", "{\"interactions\": [");
    stub.wait_for_log("contracts changed but do not load");
    assert!(
        stub.stderr()
            .contains("greeting.json:1:18: invalid JSON: EOF while parsing a list"),
        "{}",
        stub.stderr()
    );
    assert_eq!(
        get(&url).json()["word"],
        "bonjour",
        "the previous set keeps serving"
    );

    work.pact("greeting.json", &greeting("hallo"));
    eventually(
        || (get(&url).json()["word"] == "hallo").then_some(()),
        "the repaired response",
    );
}
