//! `envd journal`: what an environment's stubs saw, and contracts written from it that
//! envd itself serves and verifies.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::{json, Value};

use crate::environments::{Home, HTTP_SERVICE};
use crate::harness::{binary, eventually, get, http, run, Envd, DEADLINE};

/// A secret the service sends its dependency: it must never reach a journal or a pact.
const SECRET: &str = "Bearer s3cr3t-token-42";

/// An environment whose `orders` dependency is a contract stub answering varied values.
struct Orders {
    home: Home,
    id: String,
    url: String,
}

impl Orders {
    fn up() -> Orders {
        let home = Home::new();
        let order = |id: u64, total: Value, at: &str| {
            json!({
                "description": format!("order {id}"),
                "request": {"method": "GET", "path": format!("/orders/{id}")},
                "response": {
                    "status": 200,
                    "headers": {"Content-Type": "application/json"},
                    "body": {"id": id, "total": total, "state": "open", "at": at}
                }
            })
        };
        let contract = crate::harness::pact(
            "3.0.0",
            json!([
                order(1, json!(10.5), "2026-01-01T10:00:00Z"),
                order(2, json!(7), "2026-02-03T11:30:00Z"),
                {
                    "description": "place an order",
                    "request": {"method": "POST", "path": "/orders", "body": {"sku": "a"},
                                "headers": {"Content-Type": "application/json"}},
                    "response": {"status": 201, "headers": {"Content-Type": "application/json"},
                                 "body": {"id": 3}}
                },
                {
                    "description": "health",
                    "request": {"method": "GET", "path": "/health", "query": {"verbose": ["1"]}},
                    "response": {"status": 200, "headers": {"Content-Type": "text/plain"},
                                 "body": "ok"}
                }
            ]),
        );
        home.work.pact("contracts/orders.json", &contract);
        let manifest = home.manifest(
            &format!("name = \"web\"\n{HTTP_SERVICE}"),
            "[deps.orders]\nmode = \"contract\"\ncontracts = [\"contracts/orders.json\"]\nurl_env = \"ORDERS_URL\"",
        );
        let output = home.envd(&["up", "--detach", "--json", "-f", &manifest]);
        assert_eq!(output.code, Some(0), "{}", output.stderr);
        let info: Value = serde_json::from_str(&output.stdout).unwrap();
        Orders {
            id: info["id"].as_str().unwrap().to_owned(),
            url: info["vars"]["ORDERS_URL"].as_str().unwrap().to_owned(),
            home,
        }
    }

    /// What the service under test would send: its requests carry its credentials.
    fn get_order(&self, id: u64) -> Value {
        let reply = http("GET", &format!("{}/orders/{id}", self.url))
            .header("authorization", SECRET)
            .send();
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// `envd journal ARGS…` expected to succeed: its stdout.
    fn journal(&self, args: &[&str]) -> String {
        let mut all = vec!["journal"];
        all.extend_from_slice(args);
        let output = self.home.envd(&all);
        assert_eq!(output.code, Some(0), "envd {all:?}: {}", output.stderr);
        output.stdout
    }

    /// Writes the pact of `orders` with `extra` flags and returns its path and JSON.
    fn pact(&self, name: &str, extra: &[&str]) -> (String, Value) {
        let path = self.home.work.path(name).display().to_string();
        let mut args = vec!["--dep", "orders", "--pact", &path];
        args.extend_from_slice(extra);
        let printed = self.journal(&args);
        assert!(printed.contains(&path), "{printed}");
        let text = std::fs::read_to_string(&path).expect("the pact is written");
        assert!(
            !text.contains("s3cr3t"),
            "a secret reached the pact:\n{text}"
        );
        (path, serde_json::from_str(&text).expect("the pact is JSON"))
    }

    /// `envd verify` of `pact` against the dependency itself: the contract made from what
    /// the consumer did must hold for the provider it came from.
    fn verify(&self, pact: &str) {
        let (code, stdout, stderr) = run(&["verify", "--provider", &self.url, "--contract", pact]);
        assert_eq!(code, Some(0), "verify failed:\n{stdout}\n{stderr}");
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect()
}

#[test]
fn the_journal_lists_hits_and_misses_and_becomes_a_pact_envd_serves_and_verifies() {
    let env = Orders::up();
    assert_eq!(env.get_order(1)["total"], 10.5);
    let placed = http("POST", &format!("{}/orders", env.url))
        .header("authorization", SECRET)
        .json(&json!({"sku": "a"}))
        .send();
    assert_eq!(placed.status, 201);
    assert_eq!(get(&format!("{}/health?verbose=1", env.url)).text(), "ok");
    assert_eq!(get(&format!("{}/nope", env.url)).status, 404);

    let table = env.journal(&[]);
    for expected in [
        "orders  GET /orders/1  200  matched \"order 1\"",
        "GET /nope  404  MISS",
        "closest",
    ] {
        assert!(table.contains(expected), "{expected:?} not in\n{table}");
    }
    let misses = lines(&env.journal(&[&env.id, "orders", "--unmatched", "--json"]));
    assert_eq!(misses.len(), 1, "{misses:?}");
    assert_eq!(
        (misses[0]["target"].as_str(), misses[0]["miss"].as_bool()),
        (Some("/nope"), Some(true))
    );
    assert!(misses[0]["exchange"].is_null(), "a miss keeps no exchange");

    let all = env.journal(&["--json"]);
    assert!(
        !all.contains("s3cr3t"),
        "a secret reached the journal:\n{all}"
    );
    let entries = lines(&all);
    assert_eq!(entries.len(), 4);
    let first = &entries[0];
    assert_eq!(first["environment"], env.id.as_str());
    assert_eq!(
        first["exchange"]["request"]["headers"],
        json!([["authorization", "<redacted>"]])
    );
    let body: Value =
        serde_json::from_str(first["exchange"]["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["at"], "2026-01-01T10:00:00Z");

    let (path, pact) = env.pact("pacts/web-orders.json", &[]);
    assert_eq!(
        (&pact["consumer"]["name"], &pact["provider"]["name"]),
        (&json!("web"), &json!("orders"))
    );
    let descriptions: Vec<&str> = pact["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descriptions,
        ["GET /orders/1", "POST /orders", "GET /health?verbose=1"],
        "the miss is left out"
    );

    // envd serves what it wrote: the same requests get the same answers.
    let stub = Envd::stub(&["--contract", &path]);
    let again = http("GET", &format!("{}/orders/1", stub.url))
        .header("authorization", "Bearer another-token")
        .send();
    assert_eq!((again.status, again.json()), (200, body));
    let placed_again = http("POST", &format!("{}/orders", stub.url))
        .header("authorization", "Bearer another-token")
        .json(&json!({"sku": "a"}))
        .send();
    assert_eq!(
        (placed_again.status, placed_again.json()),
        (201, json!({"id": 3}))
    );
    env.verify(&path);
}

#[test]
fn infer_turns_values_that_varied_into_matchers_the_provider_verifies() {
    let env = Orders::up();
    env.get_order(1);
    env.get_order(2);
    env.get_order(1);
    let (path, pact) = env.pact(
        "pacts/inferred.json",
        &["--infer", "--consumer", "checkout"],
    );
    assert_eq!(pact["consumer"]["name"], "checkout");
    let interactions = pact["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 1, "one shape of request: {pact:#}");
    let order = &interactions[0];
    assert_eq!(
        order["request"]["matchingRules"]["path"]["matchers"][0],
        json!({"match": "regex", "regex": "^/orders/\\d+$"})
    );
    let rules = &order["response"]["matchingRules"]["body"];
    let matcher = |field: &str| rules[field]["matchers"][0].clone();
    assert_eq!(matcher("$.id"), json!({"match": "type"}));
    assert_eq!(matcher("$.total"), json!({"match": "type"}));
    assert_eq!(
        matcher("$.at"),
        json!({"match": "datetime", "format": "yyyy-MM-dd'T'HH:mm:ssX"})
    );
    assert!(
        rules.get("$.state").is_none(),
        "a value that never varied stays exact: {rules:#}"
    );
    assert_eq!(
        order["request"]["matchingRules"]["header"]["Authorization"]["matchers"][0],
        json!({"match": "type"}),
        "the redacted credential is required, whatever its value"
    );

    let stub = Envd::stub(&["--contract", &path]);
    let other = http("GET", &format!("{}/orders/12345", stub.url))
        .header("authorization", "Bearer another-token")
        .send();
    assert_eq!(
        other.status,
        200,
        "an id the consumer never sent matches: {}",
        other.text()
    );
    env.verify(&path);
}

#[test]
fn follow_prints_new_entries_and_ends_with_the_environment() {
    let env = Orders::up();
    let mut follower = Command::new(binary())
        .args(["journal", "--follow", "--json"])
        .env("ENVD_HOME", env.home.work.path("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, received) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    env.get_order(2);
    let line = received
        .recv_timeout(DEADLINE)
        .expect("the new entry is printed");
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (entry["part"].as_str(), entry["target"].as_str()),
        (Some("orders"), Some("/orders/2"))
    );

    let down = env.home.envd(&["down", &env.id]);
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    let status = eventually(
        || follower.try_wait().unwrap(),
        "--follow to end with its environment",
    );
    assert!(status.success());
}

#[test]
fn unknown_environments_and_dependencies_are_named_with_what_exists() {
    let env = Orders::up();
    let pact = env.home.work.path("never.json").display().to_string();
    let output = env
        .home
        .envd(&["journal", "--dep", "payments", "--pact", &pact]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    for expected in ["\"payments\"", "orders"] {
        assert!(
            output.stderr.contains(expected),
            "{expected} not in {}",
            output.stderr
        );
    }
    let output = env.home.envd(&["journal", "--dep", "web", "--pact", &pact]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(
        output.stderr.contains("only stubs and proxies"),
        "{}",
        output.stderr
    );
    let output = env
        .home
        .envd(&["journal", "staging-7", "--dep", "orders", "--pact", &pact]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    assert!(output.stderr.contains(&env.id), "{}", output.stderr);
    let output = env
        .home
        .envd(&["journal", "--dep", "orders", "--pact", &pact]);
    assert_eq!(
        output.code,
        Some(3),
        "nothing answered yet: {}",
        output.stderr
    );
    assert!(
        !std::path::Path::new(&pact).exists(),
        "nothing half-written"
    );
}

#[test]
fn a_recording_proxy_journals_what_staging_answered() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let staging = crate::harness::Staging::start();
    staging.mock(
        Mock::given(method("GET"))
            .and(path("/users/7"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 7, "name": "Ada"})),
            ),
    );
    let home = Home::new();
    let manifest = home.manifest(
        &format!("name = \"web\"\n{HTTP_SERVICE}"),
        &format!(
            "[deps.users]\nmode = \"proxy\"\ntarget = \"{}\"\nrecord = \"users.json\"\nurl_env = \"USERS_URL\"",
            staging.uri()
        ),
    );
    let output = home.envd(&["up", "--detach", "--json", "-f", &manifest]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let info: Value = serde_json::from_str(&output.stdout).unwrap();
    let users = info["vars"]["USERS_URL"].as_str().unwrap();
    let reply = http("GET", &format!("{users}/users/7"))
        .header("cookie", "session=s3cr3t")
        .send();
    assert_eq!(reply.status, 200);

    let path = home.work.path("users-pact.json").display().to_string();
    let output = home.envd(&["journal", "--dep", "users", "--pact", &path]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
    let pact: Value = serde_json::from_str(&text).unwrap();
    let interaction = &pact["interactions"][0];
    assert_eq!(interaction["request"]["path"], "/users/7");
    assert_eq!(
        interaction["request"]["headers"]["Cookie"],
        json!(["<redacted>"])
    );
    assert_eq!(
        interaction["response"]["body"]["content"],
        json!({"id": 7, "name": "Ada"})
    );
}

/// The whole point: the contract comes from what the service under test really sent. The
/// checkout example's `orders` places two orders; its calls to `payments` become a pact
/// that the payments stub verifies.
#[test]
fn the_checkout_services_own_calls_become_a_contract_payments_verifies() {
    let home = Home::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = home.work.path("repo");
    for dir in ["examples/checkout", "contracts", "stubs"] {
        crate::environments::copy_dir(&root.join(dir), &copy.join(dir));
    }
    let manifest = copy.join("examples/checkout/envd.toml");
    let output = home.envd(&[
        "up",
        "--detach",
        "--json",
        "-f",
        &manifest.display().to_string(),
    ]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let info: Value = serde_json::from_str(&output.stdout).unwrap();
    let orders = info["vars"]["ENVD_SERVICE_URL"].as_str().unwrap();
    let payments = info["vars"]["PAYMENTS_URL"].as_str().unwrap().to_owned();
    for quantity in [1, 2] {
        let placed = http("POST", &format!("{orders}/orders"))
            .json(&json!({"user": "u-7", "sku": "sku-1", "quantity": quantity}))
            .send();
        assert_eq!(placed.status, 201, "{}", placed.text());
    }

    let output = home.envd(&["journal", "checkout", "payments"]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(
        output.stdout.matches("POST /payments  201").count(),
        2,
        "{}",
        output.stdout
    );

    let path = home.work.path("orders-payments.json").display().to_string();
    let output = home.envd(&["journal", "--dep", "payments", "--pact", &path, "--infer"]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let pact: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        (&pact["consumer"]["name"], &pact["provider"]["name"]),
        (&json!("orders"), &json!("payments"))
    );
    let interactions = pact["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 1, "{pact:#}");
    let request = &interactions[0]["request"];
    assert_eq!(
        (&request["method"], &request["path"]),
        (&json!("POST"), &json!("/payments"))
    );
    let rules = &request["matchingRules"]["body"];
    for field in ["$.orderId", "$.amount"] {
        assert_eq!(
            rules[field]["matchers"][0]["match"], "type",
            "{field} varied between the two orders: {rules:#}"
        );
    }
    assert!(rules.get("$.currency").is_none(), "{rules:#}");
    let (code, stdout, stderr) = run(&["verify", "--provider", &payments, "--contract", &path]);
    assert_eq!(code, Some(0), "verify failed:\n{stdout}\n{stderr}");
    let down = home.envd(&["down"]);
    assert_eq!(down.code, Some(0), "{}", down.stderr);
}
