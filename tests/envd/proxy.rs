//! `envd proxy` in front of a fake staging service (wiremock-rs): forwarding, recording,
//! redaction, spy mode, upstream failures, crash safety.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{get, http, Envd, Staging, Workdir};

fn recorded(file: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(file).expect("recording written"))
        .expect("recording is JSON")
}

#[test]
fn forwards_with_rewritten_hop_headers_and_injected_ones() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(method("POST"))
            .and(path("/api/users"))
            .and(query_param("team", "a b"))
            .and(header("x-staging-key", "k-123"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_json(json!({"id": 7}))
                    .insert_header("x-upstream", "yes"),
            ),
    );
    let target = format!("{}/api", staging.uri());
    let proxy = Envd::start_with_env(
        "proxy",
        &["--target", &target, "--header", "X-Staging-Key: ${KEY}"],
        &[("KEY", "k-123")],
    )
    .expect("proxy starts");
    let reply = http("POST", &format!("{}/users?team=a%20b", proxy.url))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "dropped")
        .json(&json!({"name": "Ada"}))
        .send();
    assert_eq!((reply.status, reply.json()), (201, json!({"id": 7})));
    assert_eq!(reply.header("x-upstream"), Some("yes"));

    let seen = &staging.received()[0];
    let host = staging.uri().trim_start_matches("http://").to_owned();
    let header_of = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header_of("host"), Some(host), "Host is the upstream's");
    assert_eq!(header_of("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(header_of("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        header_of("x-hop"),
        None,
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.body).unwrap(),
        json!({"name": "Ada"})
    );
    assert!(
        !proxy.stderr().contains("k-123"),
        "an injected value reached the log"
    );
}

#[test]
fn a_recording_replays_the_same_answers() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(method("GET"))
            .and(path("/items/1"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 1, "name": "lamp"})),
            ),
    );
    staging.mock(
        Mock::given(method("POST"))
            .and(path("/orders"))
            .respond_with(
                ResponseTemplate::new(201)
                    .set_body_string("created")
                    .insert_header("content-type", "text/plain"),
            ),
    );
    let work = Workdir::new();
    let file = work.path("stubs/inventory.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let file_arg = file.display().to_string();
    let proxy = Envd::start(
        "proxy",
        &[
            "--target",
            &staging.uri(),
            "--record",
            &file_arg,
            "--provider",
            "inventory",
        ],
    )
    .expect("proxy starts");
    let item = format!("{}/items/1", proxy.url);
    assert_eq!(get(&item).json()["name"], "lamp");
    assert_eq!(get(&item).status, 200);
    let order = http("POST", &format!("{}/orders", proxy.url))
        .json(&json!({"sku": "A"}))
        .send();
    assert_eq!((order.status, order.text().as_str()), (201, "created"));
    assert_eq!(proxy.terminate().code(), Some(0));

    let pact = recorded(&file);
    assert_eq!(pact["metadata"]["pactSpecification"]["version"], "4.0");
    assert_eq!(pact["provider"]["name"], "inventory");
    let interactions = pact["interactions"].as_array().unwrap();
    assert_eq!(
        interactions.len(),
        2,
        "identical exchanges are stored once: {pact:#}"
    );
    assert_eq!(
        interactions[0]["response"]["body"]["content"],
        json!({"id": 1, "name": "lamp"})
    );
    assert_eq!(interactions[1]["response"]["body"]["content"], "created");
    assert!(
        interactions[0]["response"]["headers"].get("Date").is_none(),
        "Date is the replaying server's: {pact:#}"
    );
    assert!(interactions[0]["metadata"]["envd"]["latencyMs"]
        .as_f64()
        .is_some());

    let stub = Envd::stub(&["--recording", &file_arg]);
    assert_eq!(
        get(&format!("{}/items/1", stub.url)).json(),
        json!({"id": 1, "name": "lamp"})
    );
    let replayed = http("POST", &format!("{}/orders", stub.url))
        .json(&json!({"sku": "A"}))
        .send();
    assert_eq!(
        (replayed.status, replayed.text().as_str()),
        (201, "created")
    );
}

#[test]
fn secrets_never_reach_the_recording_or_the_logs() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(method("POST"))
            .and(path("/login"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("set-cookie", "sid=S3SSION-SSS")
                    .set_body_json(json!({"token": "T0KEN-TTT", "user": "ada"})),
            ),
    );
    let work = Workdir::new();
    let file = work.path("users.json");
    let file_arg = file.display().to_string();
    let proxy = Envd::start_with_env(
        "proxy",
        &[
            "--target",
            &staging.uri(),
            "--record",
            &file_arg,
            "--header",
            "X-Staging-Key: ${KEY}",
            "--redact-header",
            "X-Session",
            "--redact-json",
            "$.password",
            "--redact-json",
            "$.token",
        ],
        &[("KEY", "INJECTED-KKK")],
    )
    .expect("proxy starts");
    // The second login differs only in its secrets: the same interaction, recorded once.
    for (auth, cookie, session, password) in [
        ("AUTH-AAA", "COOKIE-CCC", "SESSION-XXX", "PASSWORD-PPP"),
        ("AUTH-AA2", "COOKIE-CC2", "SESSION-XX2", "PASSWORD-PP2"),
    ] {
        let login = http("POST", &format!("{}/login", proxy.url))
            .header("authorization", &format!("Bearer {auth}"))
            .header("cookie", &format!("session={cookie}"))
            .header("x-session", session)
            .json(&json!({"user": "ada", "password": password}))
            .send();
        assert_eq!(
            login.json()["token"],
            "T0KEN-TTT",
            "the client still gets the real answer"
        );
        assert_eq!(login.header("set-cookie"), Some("sid=S3SSION-SSS"));
    }
    // The journal holds what the recording holds: no secret the recording redacts.
    let journal = get(&format!("{}/__envd/journal", proxy.url)).text();
    let entries: Value = serde_json::from_str(&journal).unwrap();
    let exchanges: Vec<&Value> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| &entry["exchange"])
        .collect();
    assert_eq!(exchanges.len(), 2, "{journal}");
    for exchange in exchanges {
        let response = &exchange["response"];
        assert!(
            response["headers"]
                .as_array()
                .unwrap()
                .contains(&json!(["set-cookie", "<redacted>"])),
            "{journal}"
        );
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({"token": "<redacted>", "user": "ada"}));
        let body: Value =
            serde_json::from_str(exchange["request"]["body"].as_str().unwrap()).unwrap();
        assert_eq!(body, json!({"password": "<redacted>", "user": "ada"}));
    }
    let logs_before_stop = proxy.stderr();
    let stderr = {
        let status = proxy.terminate();
        assert_eq!(status.code(), Some(0));
        logs_before_stop
    };
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        recorded(&file)["interactions"].as_array().unwrap().len(),
        1,
        "exchanges that differ only in secrets are one interaction:\n{text}"
    );
    for secret in [
        "AUTH-AA",
        "COOKIE-CC",
        "SESSION-XX",
        "PASSWORD-PP",
        "T0KEN-TTT",
        "S3SSION-SSS",
        "INJECTED-KKK",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} reached the recording:\n{text}"
        );
        assert!(
            !journal.contains(secret),
            "{secret} reached the journal:\n{journal}"
        );
        assert!(
            !stderr.contains(secret),
            "{secret} reached the log:\n{stderr}"
        );
    }
    assert!(text.contains("<redacted>"));

    // The redacted recording still replays, whatever the next client's secrets are.
    let stub = Envd::stub(&["--recording", &file_arg]);
    let replay = http("POST", &format!("{}/login", stub.url))
        .header("authorization", "Bearer another")
        .header("cookie", "session=another")
        .header("x-session", "another")
        .json(&json!({"user": "ada", "password": "another"}))
        .send();
    assert_eq!(replay.status, 200, "{}", replay.text());
}

#[test]
fn a_repeated_exchange_is_recorded_once_and_a_changed_answer_again() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(path("/stock"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"n": 1})))
            .up_to_n_times(3)
            .with_priority(1),
    );
    staging.mock(
        Mock::given(path("/stock"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"n": 2})))
            .with_priority(2),
    );
    let work = Workdir::new();
    let file = work.path("stock.json");
    let file_arg = file.display().to_string();
    let proxy = Envd::start(
        "proxy",
        &["--target", &staging.uri(), "--record", &file_arg],
    )
    .expect("proxy starts");
    let answers: Vec<Value> = (0..5)
        .map(|_| get(&format!("{}/stock", proxy.url)).json()["n"].clone())
        .collect();
    assert_eq!(answers, [1, 1, 1, 2, 2]);
    let journal = get(&format!("{}/__envd/journal", proxy.url)).json();
    let journaled: Vec<Value> = journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let body = entry["exchange"]["response"]["body"].as_str().unwrap();
            serde_json::from_str::<Value>(body).unwrap()["n"].clone()
        })
        .collect();
    assert_eq!(
        journaled, answers,
        "repeats are journaled as they were answered"
    );
    assert_eq!(proxy.terminate().code(), Some(0));
    let answers: Vec<Value> = recorded(&file)["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|interaction| interaction["response"]["body"]["content"]["n"].clone())
        .collect();
    assert_eq!(answers, [1, 2], "each distinct exchange once, in order");
}

#[test]
fn spy_answers_from_the_recording_and_forwards_the_rest() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(path("/a"))
            .respond_with(ResponseTemplate::new(200).set_body_string("from staging a")),
    );
    staging.mock(
        Mock::given(path("/b"))
            .respond_with(ResponseTemplate::new(200).set_body_string("from staging b")),
    );
    let work = Workdir::new();
    let file = work.path("users.json").display().to_string();
    let proxy = Envd::start(
        "proxy",
        &["--target", &staging.uri(), "--record", &file, "--spy"],
    )
    .expect("proxy starts");
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/a", proxy.url)).text(), "from staging a");
    }
    assert_eq!(get(&format!("{}/b", proxy.url)).text(), "from staging b");
    let forwarded: Vec<String> = staging
        .received()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(
        forwarded,
        ["/a", "/b"],
        "what the recording holds is not forwarded again"
    );
    let journal = get(&format!("{}/__envd/journal", proxy.url)).json();
    let notes: Vec<&str> = journal["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["note"].as_str().unwrap())
        .collect();
    assert_eq!(
        notes
            .iter()
            .filter(|note| note.starts_with("replayed"))
            .count(),
        2,
        "{notes:?}"
    );
}

#[test]
fn upstream_failures_become_problems_and_the_proxy_survives() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let proxy = Envd::start("proxy", &["--target", &dead]).expect("proxy starts");
    let down = get(&format!("{}/x", proxy.url));
    assert_eq!(down.status, 502);
    assert_eq!(
        down.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        down.json()["detail"].as_str().unwrap().contains(&dead),
        "{}",
        down.text()
    );
    assert_eq!(get(&format!("{}/__envd/health", proxy.url)).status, 200);

    let staging = Staging::start();
    staging.mock(
        Mock::given(path("/slow"))
            .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(5))),
    );
    let proxy = Envd::start("proxy", &["--target", &staging.uri(), "--timeout", "200ms"])
        .expect("proxy starts");
    let slow = get(&format!("{}/slow", proxy.url));
    assert_eq!(slow.status, 504);
    assert!(slow.json()["detail"]
        .as_str()
        .unwrap()
        .contains("no answer within 200ms"));
    let journal = get(&format!("{}/__envd/journal", proxy.url)).json();
    assert_eq!(
        journal["entries"][0]["status"], 504,
        "the miss is journaled"
    );
}

/// An HTTPS staging service that speaks only HTTP/2 (ALPN `h2`, nothing else) and answers
/// with the protocol version and path it received.
fn http2_only_staging(work: &Workdir) -> (String, String, tokio::runtime::Runtime) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let cert = work.write("cert.pem", &generated.cert.pem());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)
        .expect("TLS identity");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().unwrap());
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let seen = format!("{:?} {}", request.version(), request.uri().path());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(seen)),
                        ))
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    (url, cert.display().to_string(), runtime)
}

#[test]
fn an_https_upstream_offering_http2_is_reached_over_http2() {
    let work = Workdir::new();
    let (target, cert, _staging) = http2_only_staging(&work);
    let proxy =
        Envd::start("proxy", &["--target", &target, "--ca-cert", &cert]).expect("proxy starts");
    for _ in 0..2 {
        let reply = get(&format!("{}/v1/hello", proxy.url));
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (200, "HTTP/2.0 /v1/hello"),
            "the upstream saw HTTP/2"
        );
    }
}

#[test]
fn never_an_open_proxy() {
    let staging = Staging::start();
    let proxy = Envd::start("proxy", &["--target", &staging.uri()]).expect("proxy starts");
    let raw = |request: &str| crate::harness::raw_http(&proxy.address(), request);
    assert!(raw(
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 400"));
    assert!(raw(
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n"
    )
    .starts_with("HTTP/1.1 400"));
    assert!(staging.received().is_empty());
}

#[test]
fn sigkill_loses_no_exchange_whose_response_was_received() {
    let staging = Staging::start();
    staging.mock(
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_string("ok")),
    );
    let work = Workdir::new();
    let file = work.path("recording.json");
    let file_arg = file.display().to_string();
    let proxy = Envd::start(
        "proxy",
        &["--target", &staging.uri(), "--record", &file_arg],
    )
    .expect("proxy starts");
    let url = proxy.url.clone();
    let completed = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (url, completed, count) = (url.clone(), completed.clone(), count.clone());
            std::thread::spawn(move || {
                for k in 0..1000 {
                    let path = format!("/w{worker}/{k}");
                    match http("GET", &format!("{url}{path}")).try_send() {
                        Ok(reply) if reply.status == 200 && reply.text() == "ok" => {
                            completed.lock().unwrap().push(path);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    crate::harness::eventually(
        || (count.load(Ordering::SeqCst) >= 40).then_some(()),
        "40 recorded exchanges",
    );
    proxy.signal("-KILL");
    for worker in workers {
        worker.join().unwrap();
    }
    let completed = completed.lock().unwrap().clone();

    // The next start merges what the journal holds; a clean stop writes the file whole.
    let again = Envd::start(
        "proxy",
        &["--target", &staging.uri(), "--record", &file_arg],
    )
    .expect("proxy restarts");
    assert_eq!(again.terminate().code(), Some(0));
    let pact = recorded(&file);
    let recorded: std::collections::HashSet<String> = pact["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|one| one["request"]["path"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = completed
        .iter()
        .filter(|path| !recorded.contains(*path))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} completed exchanges lost: {lost:?}",
        lost.len(),
        completed.len()
    );
}
