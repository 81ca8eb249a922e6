//! `envd daemon` as a staging gateway: bearer tokens, routes, never an open proxy, TLS; and
//! `envd proxy --target envd://…` through it.

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::harness::{get, http, run, Envd, Staging, Workdir};

const TOKEN: &str = "gw-T0KEN-0123456789";

fn staging_with_hello() -> Staging {
    let staging = Staging::start();
    staging.mock(
        Mock::given(method("GET"))
            .and(path("/v1/hello"))
            .respond_with(ResponseTemplate::new(200).set_body_string("hello from staging")),
    );
    staging
}

fn token_file(work: &Workdir) -> String {
    work.write("token", &format!("{TOKEN}\n"))
        .display()
        .to_string()
}

#[test]
fn every_request_needs_the_token_and_a_known_route() {
    let staging = staging_with_hello();
    let work = Workdir::new();
    let token = token_file(&work);
    let route = format!("users={}", staging.uri());
    let gateway = Envd::daemon(&[
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        &token,
        "--route",
        &route,
    ])
    .expect("gateway starts");
    let url = format!("{}/routes/users/v1/hello", gateway.url);

    let anonymous = get(&url);
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Bearer realm=\"envd\"")
    );
    assert_eq!(
        http("GET", &url)
            .header("authorization", "Bearer wrong")
            .send()
            .status,
        401
    );
    let admitted = http("GET", &url)
        .header("authorization", &format!("Bearer {TOKEN}"))
        .send();
    assert_eq!(
        (admitted.status, admitted.text().as_str()),
        (200, "hello from staging")
    );
    let forwarded = &staging.received()[0];
    assert!(
        forwarded.headers.get("authorization").is_none(),
        "staging never sees the gateway's token"
    );

    let unknown = http("GET", &format!("{}/routes/payments/x", gateway.url))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .send();
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["detail"]
        .as_str()
        .unwrap()
        .contains("this gateway has users"));
    assert_eq!(get(&format!("{}/__envd/health", gateway.url)).status, 200);

    let raw = |request: String| crate::harness::raw_http(&gateway.address(), request);
    let auth = format!("Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    assert!(raw(format!(
        "GET {}/v1/hello HTTP/1.1\r\nHost: x\r\n{auth}",
        staging.uri()
    ))
    .starts_with("HTTP/1.1 400"));
    assert!(raw(format!(
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n{auth}"
    ))
    .starts_with("HTTP/1.1 400"));
    assert!(
        !gateway.stderr().contains(TOKEN),
        "the token reached the log"
    );
}

#[test]
fn plain_http_off_loopback_is_refused_unless_insecure() {
    let work = Workdir::new();
    let token = token_file(&work);
    let (code, _, stderr) = run(&[
        "daemon",
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        &token,
        "--route",
        "a=http://127.0.0.1:9",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("needs TLS"), "{stderr}");
    let insecure = Envd::daemon(&[
        "--listen",
        "0.0.0.0:0",
        "--token-file",
        &token,
        "--route",
        "a=http://127.0.0.1:9",
        "--insecure",
    ]);
    assert!(insecure.is_ok(), "{:?}", insecure.err());
    let empty = work.write("empty-token", "  \n").display().to_string();
    let (code, _, stderr) = run(&[
        "daemon",
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        &empty,
        "--route",
        "a=http://127.0.0.1:9",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("the file is empty"), "{stderr}");
}

#[test]
fn a_laptop_proxy_reaches_staging_through_a_tls_gateway() {
    let staging = staging_with_hello();
    let work = Workdir::new();
    let token = token_file(&work);
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let cert = work
        .write("cert.pem", &generated.cert.pem())
        .display()
        .to_string();
    let key = work
        .write("key.pem", &generated.key_pair.serialize_pem())
        .display()
        .to_string();
    let route = format!("users={}", staging.uri());
    let gateway = Envd::daemon(&[
        "--listen",
        "127.0.0.1:0",
        "--token-file",
        &token,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--route",
        &route,
    ])
    .expect("TLS gateway starts");
    assert!(gateway.url.starts_with("https://"), "{}", gateway.url);

    let target = format!("envd://{}/users", gateway.address());
    let (code, _, stderr) = run(&["proxy", "--target", &target, "--port", "0"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("needs --token-file"), "{stderr}");

    let work_record = work.path("users.json").display().to_string();
    let proxy = Envd::start(
        "proxy",
        &[
            "--target",
            &target,
            "--token-file",
            &token,
            "--ca-cert",
            &cert,
            "--record",
            &work_record,
        ],
    )
    .expect("proxy starts");
    let reply = get(&format!("{}/v1/hello", proxy.url));
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "hello from staging"),
        "through TLS and the token"
    );
    assert_eq!(proxy.terminate().code(), Some(0));
    let recording = std::fs::read_to_string(&work_record).unwrap();
    assert!(recording.contains("hello from staging"));
    assert!(
        !recording.contains(TOKEN),
        "the gateway token reached the recording"
    );
}

#[test]
fn routes_add_their_own_staging_credentials_from_the_gateways_environment() {
    const STAGING_SECRET: &str = "stg-S3CRET-4242";
    const PAYMENTS_SECRET: &str = "pay-S3CRET-9090";
    let staging = Staging::start();
    for (route, bearer) in [("users", STAGING_SECRET), ("payments", PAYMENTS_SECRET)] {
        staging.mock(
            Mock::given(method("GET"))
                .and(path(format!("/{route}/v1/hello")))
                .and(header("authorization", format!("Bearer {bearer}").as_str()))
                .respond_with(ResponseTemplate::new(200).set_body_string(format!("hello {route}"))),
        );
    }
    let work = Workdir::new();
    let token = token_file(&work);
    let config = work.write(
        "routes.toml",
        &format!(
            "[routes.users]\nurl = \"{}/users\"\nheaders = {{ Authorization = \"Bearer ${{STAGING_TOKEN}}\" }}\n",
            staging.uri()
        ),
    );
    let payments = format!("payments={}/payments", staging.uri());
    let gateway = Envd::daemon_with_env(
        &[
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            &token,
            "--config",
            &config.display().to_string(),
            "--route",
            &payments,
            "--route-header",
            "payments=Authorization: Bearer ${PAYMENTS_TOKEN}",
        ],
        &[
            ("STAGING_TOKEN", STAGING_SECRET),
            ("PAYMENTS_TOKEN", PAYMENTS_SECRET),
        ],
    )
    .expect("gateway starts");
    for route in ["users", "payments"] {
        let reply = http("GET", &format!("{}/routes/{route}/v1/hello", gateway.url))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .send();
        assert_eq!(
            (reply.status, reply.text()),
            (200, format!("hello {route}")),
            "staging admits the route's own credentials"
        );
    }
    assert_eq!(staging.received().len(), 2);
    let log = gateway.stderr();
    for secret in [STAGING_SECRET, PAYMENTS_SECRET, TOKEN] {
        assert!(!log.contains(secret), "a credential reached the log: {log}");
    }

    for (file, config, expected) in [
        (
            "missing.toml",
            "[routes]\nusers = { url = \"http://127.0.0.1:9\", headers = { Authorization = \"Bearer ${ENVD_TEST_UNSET}\" } }\n",
            "missing.toml: routes.users.headers.Authorization: ${ENVD_TEST_UNSET} is not set in the environment",
        ),
        ("broken.toml", "[routes]\nusers = \n", "broken.toml: 2:"),
    ] {
        let config = work.write(file, config).display().to_string();
        let (code, _, stderr) = run(&[
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            &token,
            "--config",
            &config,
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}
