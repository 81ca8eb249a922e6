//! `envd import`: WireMock mappings and HAR captures become recordings that a real stub
//! serves; what cannot be expressed is reported; secrets never reach the file.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::harness::{get, http, run, Envd, Workdir};

/// A WireMock root as a team would have it: mappings/ (one file per area) and __files/.
fn wiremock_root(work: &Workdir) -> String {
    work.write(
        "wiremock/mappings/orders.json",
        &json!({"mappings": [
            {
                "id": "3f1c2a8e-0d1b-4c55-9a0e-5b8f6c1d2e01",
                "name": "get order 42",
                "request": {"method": "GET", "url": "/api/orders/42?expand=items"},
                "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                             "jsonBody": {"id": 42, "status": "SHIPPED"}, "fixedDelayMilliseconds": 25}
            },
            {
                "id": "5b2d4e6f-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
                "request": {"method": "GET", "urlPathPattern": "/api/orders/[0-9]+",
                            "headers": {"Accept": {"contains": "json"}}},
                "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                             "bodyFileName": "order.json"},
                "priority": 10
            },
            {
                "name": "create order",
                "request": {"method": "POST", "urlPath": "/api/orders",
                            "headers": {"Content-Type": {"equalTo": "application/json"}},
                            "bodyPatterns": [{"matchesJsonPath": "$.customer.id"},
                                             {"matchesJsonPath": {"expression": "$.currency", "equalTo": "EUR"}}]},
                "response": {"status": 201, "headers": {"Location": "/api/orders/43"},
                             "jsonBody": {"id": 43}}
            },
            {
                "name": "flaky cancel",
                "request": {"method": "PUT", "urlPath": "/api/orders/42/cancel"},
                "response": {"fault": "CONNECTION_RESET_BY_PEER"}
            }
        ]})
        .to_string(),
    );
    work.write(
        "wiremock/mappings/todo.json",
        &json!({"mappings": [
            {"scenarioName": "To do list", "requiredScenarioState": "Started",
             "newScenarioState": "One item",
             "request": {"method": "GET", "url": "/todo/items"},
             "response": {"status": 200, "jsonBody": {"items": []}}},
            {"scenarioName": "To do list", "requiredScenarioState": "One item",
             "newScenarioState": "Two items",
             "request": {"method": "GET", "url": "/todo/items"},
             "response": {"status": 200, "jsonBody": {"items": ["Buy milk"]}}},
            {"scenarioName": "To do list", "requiredScenarioState": "Two items",
             "request": {"method": "GET", "url": "/todo/items"},
             "response": {"status": 200, "jsonBody": {"items": ["Buy milk", "Cancel newspaper"]}}}
        ]})
        .to_string(),
    );
    work.write(
        "wiremock/mappings/health.json",
        &json!({"request": {"method": "ANY", "urlPattern": "/health.*"},
                "response": {"status": 200, "body": "OK", "headers": {"Content-Type": "text/plain"}}})
        .to_string(),
    );
    work.write(
        "wiremock/__files/order.json",
        r#"{"id": 7, "status": "PENDING"}"#,
    );
    work.path("wiremock").display().to_string()
}

#[test]
fn wiremock_mappings_are_served_with_scenarios_in_order() {
    let work = Workdir::new();
    let root = wiremock_root(&work);
    let out = work.path("stubs/orders.json").display().to_string();
    std::fs::create_dir_all(work.path("stubs")).unwrap();
    let (code, stdout, stderr) = run(&["import", "wiremock", &root, "--out", &out]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("envd: imported 7 interactions"), "{stdout}");
    assert!(
        stderr.contains("orders.json#/mappings/3 \"flaky cancel\": not imported: response.fault"),
        "{stderr}"
    );
    assert!(
        stderr.contains("health.json#: request.method ANY imported as GET"),
        "{stderr}"
    );

    let stub = Envd::stub(&["--recording", &out]);
    let exact = get(&format!("{}/api/orders/42?expand=items", stub.url));
    assert_eq!(
        (exact.status, exact.json()),
        (200, json!({"id": 42, "status": "SHIPPED"}))
    );
    let pattern = http("GET", &format!("{}/api/orders/7", stub.url))
        .header("accept", "application/json")
        .send();
    assert_eq!(
        (pattern.status, pattern.json()),
        (200, json!({"id": 7, "status": "PENDING"})),
        "the body comes from __files"
    );
    let created = http("POST", &format!("{}/api/orders", stub.url))
        .json(&json!({"customer": {"id": "c-9"}, "currency": "EUR"}))
        .send();
    assert_eq!((created.status, created.json()), (201, json!({"id": 43})));
    assert_eq!(created.header("location"), Some("/api/orders/43"));
    let wrong_currency = http("POST", &format!("{}/api/orders", stub.url))
        .json(&json!({"customer": {"id": "c-9"}, "currency": "USD"}))
        .send();
    assert_eq!(wrong_currency.status, 404);
    assert_eq!(get(&format!("{}/health/live", stub.url)).text(), "OK");

    let todo: Vec<Value> = (0..4)
        .map(|_| get(&format!("{}/todo/items", stub.url)).json()["items"].clone())
        .collect();
    assert_eq!(
        todo,
        [
            json!([]),
            json!(["Buy milk"]),
            json!(["Buy milk", "Cancel newspaper"]),
            json!(["Buy milk", "Cancel newspaper"]),
        ],
        "scenario states in order, the last repeating"
    );
}

#[test]
fn the_json_report_lists_what_was_left_out_by_mapping() {
    let work = Workdir::new();
    let root = wiremock_root(&work);
    let out = work.path("orders.json").display().to_string();
    let (code, stdout, _) = run(&["import", "wiremock", &root, "--out", &out, "--json"]);
    assert_eq!(code, Some(0));
    let report: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(report["interactions"], 7);
    assert_eq!(report["out"], out.as_str());
    let skipped = report["skipped"].as_array().expect("skipped");
    assert!(
        skipped.iter().any(|one| {
            one["source"]
                .as_str()
                .is_some_and(|source| source.ends_with("orders.json#/mappings/3 \"flaky cancel\""))
                && one["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.starts_with("not imported"))
        }),
        "{report:#}"
    );
}

#[test]
fn bad_mappings_exit_2_naming_the_file_and_pointer() {
    let work = Workdir::new();
    let mappings = work.write(
        "mappings/broken.json",
        &json!({"mappings": [{"request": {"url": "/a"}, "response": {"status": 200}},
                             {"request": {"url": "/b"}, "response": {"headers": ["x"]}}]})
        .to_string(),
    );
    let out = work.path("out.json").display().to_string();
    let (code, _, stderr) = run(&[
        "import",
        "wiremock",
        &mappings.display().to_string(),
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}#/mappings/1/response/headers: expected an object, found an array",
            mappings.display()
        )),
        "{stderr}"
    );
    assert!(!work.path("out.json").exists(), "nothing written");

    let missing_body = work.write(
        "single/mappings/one.json",
        &json!({"request": {"url": "/a"}, "response": {"bodyFileName": "gone.json"}}).to_string(),
    );
    let (code, _, stderr) = run(&[
        "import",
        "wiremock",
        &missing_body.display().to_string(),
        "--out",
        &out,
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("#/response/bodyFileName: cannot read the body file")
            && stderr.contains("__files/gone.json"),
        "{stderr}"
    );

    let root = wiremock_root(&work);
    let nowhere = work.path("no/such/dir/out.json").display().to_string();
    let (code, _, stderr) = run(&["import", "wiremock", &root, "--out", &nowhere]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("{nowhere}: cannot write the recording")),
        "{stderr}"
    );
}

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXVzZXI.Zm9vYmFy";
const SESSION: &str = "sess-7f3a9c1e2b";

/// A browser capture: two hosts, a GET with Authorization and Cookie, a POST with JSON,
/// an image, a data: URL and a blocked request.
fn shop_har(work: &Workdir) -> String {
    let headers = |pairs: &[(&str, &str)]| -> Value {
        pairs
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let png = base64::engine::general_purpose::STANDARD
        .encode([0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff]);
    let auth = format!("Bearer {TOKEN}");
    let cookie = format!("session={SESSION}; theme=dark");
    let set_cookie = format!("session={SESSION}; HttpOnly; Secure");
    let har = json!({"log": {
        "version": "1.2",
        "creator": {"name": "Firefox", "version": "128.0"},
        "pages": [{"startedDateTime": "2026-11-20T10:00:00.000Z", "id": "page_1", "title": "Shop", "pageTimings": {}}],
        "entries": [
            {"pageref": "page_1", "startedDateTime": "2026-11-20T10:00:00.100Z", "time": 83.4,
             "request": {"method": "GET", "url": "https://api.shop.example.com/v1/products?category=shoes",
                         "httpVersion": "HTTP/2",
                         "headers": headers(&[(":authority", "api.shop.example.com"), ("accept", "application/json"),
                                              ("authorization", &auth), ("cookie", &cookie), ("user-agent", "Mozilla/5.0")]),
                         "queryString": [{"name": "category", "value": "shoes"}],
                         "cookies": [{"name": "session", "value": SESSION}], "headersSize": -1, "bodySize": 0},
             "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/2",
                          "headers": headers(&[("content-type", "application/json"), ("content-encoding", "br"),
                                               ("set-cookie", &set_cookie)]),
                          "cookies": [{"name": "session", "value": SESSION}],
                          "content": {"size": 28, "mimeType": "application/json", "text": "{\"items\":[{\"id\":\"p-1\"}]}"},
                          "redirectURL": "", "headersSize": -1, "bodySize": 20},
             "cache": {}, "timings": {"send": 0.1, "wait": 80.2, "receive": 3.1}},
            {"pageref": "page_1", "startedDateTime": "2026-11-20T10:00:01.000Z", "time": 140.0,
             "request": {"method": "POST", "url": "https://api.shop.example.com/v1/cart/items",
                         "httpVersion": "HTTP/2",
                         "headers": headers(&[("content-type", "application/json"), ("authorization", &auth)]),
                         "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 40,
                         "postData": {"mimeType": "application/json",
                                      "text": "{\"productId\":\"p-1\",\"quantity\":2}"}},
             "response": {"status": 201, "statusText": "Created", "httpVersion": "HTTP/2",
                          "headers": headers(&[("content-type", "application/json")]),
                          "cookies": [], "content": {"size": 8, "mimeType": "application/json", "text": "{\"id\":9}"},
                          "redirectURL": "", "headersSize": -1, "bodySize": 8},
             "cache": {}, "timings": {"send": 0.2, "wait": 130.0, "receive": 9.8}},
            {"pageref": "page_1", "startedDateTime": "2026-11-20T10:00:01.200Z", "time": 35.5,
             "request": {"method": "GET", "url": "https://cdn.shop.example.com/img/p-1.png", "httpVersion": "HTTP/2",
                         "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
             "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/2",
                          "headers": headers(&[("content-type", "image/png"), ("content-length", "10")]),
                          "cookies": [], "content": {"size": 10, "mimeType": "image/png", "text": png, "encoding": "base64"},
                          "redirectURL": "", "headersSize": -1, "bodySize": 10},
             "cache": {}, "timings": {"send": 0, "wait": 30, "receive": 5.5}},
            {"pageref": "page_1", "startedDateTime": "2026-11-20T10:00:01.300Z", "time": 0,
             "request": {"method": "GET", "url": "data:image/svg+xml;base64,PHN2Zy8+", "httpVersion": "",
                         "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
             "response": {"status": 200, "statusText": "OK", "httpVersion": "", "headers": [], "cookies": [],
                          "content": {"size": 6, "mimeType": "image/svg+xml", "text": "PHN2Zy8+", "encoding": "base64"},
                          "redirectURL": "", "headersSize": -1, "bodySize": 0},
             "cache": {}, "timings": {"send": 0, "wait": 0, "receive": 0}},
            {"pageref": "page_1", "startedDateTime": "2026-11-20T10:00:02.000Z", "time": 12.0,
             "request": {"method": "GET", "url": "https://analytics.example.net/collect?v=1", "httpVersion": "HTTP/2",
                         "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
             "response": {"status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": [],
                          "content": {"size": 0, "mimeType": ""}, "redirectURL": "", "headersSize": -1, "bodySize": 0,
                          "_error": "net::ERR_BLOCKED_BY_CLIENT"},
             "cache": {}, "timings": {"send": 0, "wait": 0, "receive": 0}}
        ]
    }});
    work.write("shop.har", &har.to_string())
        .display()
        .to_string()
}

#[test]
fn a_har_replays_without_its_secrets() {
    let work = Workdir::new();
    let har = shop_har(&work);
    let out = work.path("shop.json").display().to_string();
    let (code, stdout, stderr) = run(&["import", "har", &har, "--out", &out]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("imported 3 interactions")
            && stdout.contains("hosts: api.shop.example.com, cdn.shop.example.com"),
        "{stdout}"
    );
    assert!(
        stderr.contains("#/log/entries/3 GET data:image/svg+xml")
            && stderr.contains("#/log/entries/4 GET https://analytics.example.net/collect?v=1: not imported: no response"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    for secret in [TOKEN, SESSION] {
        assert!(
            !written.contains(secret),
            "{secret} reached the recording:\n{written}"
        );
    }

    let stub = Envd::stub(&["--recording", &out]);
    let products = http("GET", &format!("{}/v1/products?category=shoes", stub.url))
        .header("accept", "application/json")
        .header("authorization", "Bearer another-token")
        .header("cookie", "session=another")
        .send();
    assert_eq!(
        (products.status, products.json()),
        (200, json!({"items": [{"id": "p-1"}]}))
    );
    assert_eq!(
        products.header("content-encoding"),
        None,
        "the HAR holds the body decoded"
    );
    let added = http("POST", &format!("{}/v1/cart/items", stub.url))
        .header("authorization", "Bearer another-token")
        .json(&json!({"productId": "p-1", "quantity": 2}))
        .send();
    assert_eq!((added.status, added.json()), (201, json!({"id": 9})));
    let image = get(&format!("{}/img/p-1.png", stub.url));
    assert_eq!(image.header("content-type"), Some("image/png"));
    assert_eq!(
        image.body.as_ref(),
        [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff]
    );
}

#[test]
fn a_har_host_keeps_one_service_and_an_unknown_one_is_refused() {
    let work = Workdir::new();
    let har = shop_har(&work);
    let out = work.path("cdn.json").display().to_string();
    let (code, _, stderr) = run(&[
        "import",
        "har",
        &har,
        "--out",
        &out,
        "--host",
        "cdn.shop.example.com",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written["provider"]["name"], "cdn.shop.example.com");
    assert_eq!(written["interactions"].as_array().map(Vec::len), Some(1));

    let (code, _, stderr) = run(&[
        "import",
        "har",
        &har,
        "--out",
        &out,
        "--host",
        "users.example.com",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--host users.example.com: no entries for this host; the HAR holds requests to api.shop.example.com, cdn.shop.example.com, analytics.example.net"),
        "{stderr}"
    );
}
