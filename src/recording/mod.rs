//! Recordings: exchanges seen on the wire (or imported), written as Pact V4 files.
//!
//! Pure apart from [`Recording::write`]. A recording is a contract like any other: the
//! stub serves it, and a provider can be verified against it. Everything that reaches a
//! recording passes through [`Redaction`] first, so no secret is ever held in one.

pub mod import;
pub mod recorder;
pub mod redact;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

pub use redact::Redaction;

/// Consumer name written when none is given: the side that made the requests.
pub const DEFAULT_CONSUMER: &str = "envd-consumer";

/// One request as it was sent.
#[derive(Debug, Clone, Default)]
pub struct RecordedRequest {
    pub method: String,
    /// Decoded path.
    pub path: String,
    /// The query string as sent (percent-encoded), without the `?`.
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// One response as it was received.
#[derive(Debug, Clone, Default)]
pub struct RecordedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// A request, its response and how long the upstream took to answer.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub request: RecordedRequest,
    pub response: RecordedResponse,
    pub latency: Option<Duration>,
}

/// Request headers kept in a recording: the ones that decide what a service answers. The
/// rest (User-Agent, Host, tracing ids, …) change from client to client and run to run, and
/// would make a recording replay only for the exact client that made it. Secret headers
/// are kept too, redacted, so a replay still requires them.
pub const MATCHED_REQUEST_HEADERS: &[&str] = &["accept", "content-type"];

/// Headers that describe one hop, never the message (RFC 9110 §7.6.1), plus the ones the
/// transport recomputes (a replaying server sends its own Date; a recorded one would also
/// make every second's answer a new interaction).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "date",
];

/// Whether a recording keeps a request header (by its lowercase name).
pub fn records_request_header(redaction: &Redaction, lowercase_name: &str) -> bool {
    MATCHED_REQUEST_HEADERS.contains(&lowercase_name) || redaction.is_secret_header(lowercase_name)
}

/// Whether a recording keeps a response header (by its lowercase name).
pub fn records_response_header(lowercase_name: &str) -> bool {
    !HOP_BY_HOP.contains(&lowercase_name)
}

impl Exchange {
    /// The Pact V4 interaction for this exchange, redacted.
    pub fn interaction(&self, redaction: &Redaction) -> Value {
        let request = &self.request;
        let mut request_json = Map::new();
        request_json.insert("method".into(), json!(request.method.to_ascii_uppercase()));
        request_json.insert("path".into(), json!(request.path));
        if let Some(query) = request.query.as_deref().filter(|query| !query.is_empty()) {
            request_json.insert("query".into(), query_json(query));
        }
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(name, _)| records_request_header(redaction, &name.to_ascii_lowercase()))
            .cloned()
            .collect();
        if !headers.is_empty() {
            request_json.insert("headers".into(), headers_json(&headers));
        }
        if !request.body.is_empty() {
            request_json.insert(
                "body".into(),
                body_json(&request.body, content_type(&request.headers)),
            );
        }
        let response = &self.response;
        let mut response_json = Map::new();
        response_json.insert("status".into(), json!(response.status));
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .filter(|(name, _)| records_response_header(&name.to_ascii_lowercase()))
            .cloned()
            .collect();
        if !headers.is_empty() {
            response_json.insert("headers".into(), headers_json(&headers));
        }
        if !response.body.is_empty() {
            response_json.insert(
                "body".into(),
                body_json(&response.body, content_type(&response.headers)),
            );
        }
        let mut interaction = json!({
            "type": "Synchronous/HTTP",
            "description": description(request),
            "request": request_json,
            "response": response_json,
        });
        if let Some(latency) = self.latency {
            interaction["metadata"] = json!({"envd": {"latencyMs": latency_ms(latency)}});
        }
        redaction.apply(&mut interaction);
        interaction
    }
}

/// Milliseconds with microsecond precision: enough to replay, short to read.
fn latency_ms(latency: Duration) -> f64 {
    latency.as_micros() as f64 / 1000.0
}

/// 128 bits of hash: two things with the same fingerprint are taken for the same thing, so
/// the odds of a collision must be negligible, not merely small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64, u64);

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut hasher = Fingerprinter::new();
        hasher.bytes(bytes);
        hasher.finish()
    }
}

/// Hashes a sequence of byte strings (each delimited by its length) into a [`Fingerprint`].
pub struct Fingerprinter(foldhash::quality::FoldHasher, foldhash::quality::FoldHasher);

impl Fingerprinter {
    pub fn new() -> Self {
        use std::hash::BuildHasher;
        let hasher = |seed| foldhash::quality::FixedState::with_seed(seed).build_hasher();
        Fingerprinter(hasher(0x5eed_0001), hasher(0x5eed_0002))
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        use std::hash::Hasher;
        for hasher in [&mut self.0, &mut self.1] {
            hasher.write(bytes);
            hasher.write_usize(bytes.len());
        }
    }

    pub fn finish(self) -> Fingerprint {
        use std::hash::Hasher;
        Fingerprint(self.0.finish(), self.1.finish())
    }
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter::new()
    }
}

/// One exchange as a proxy has it, borrowed from the wire: enough to tell a repeat by its
/// [`fingerprint`](Wire::fingerprint) and, when it is new, to make its [`Exchange`].
pub struct Wire<'a> {
    pub method: &'a hyper::Method,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The request headers a recording keeps ([`records_request_header`]), in order.
    pub request_headers: &'a [(HeaderName, HeaderValue)],
    /// As a recording holds it: see [`Redaction::body`].
    pub request_body: &'a Bytes,
    pub status: u16,
    /// As answered; the ones a recording leaves out are skipped here.
    pub response_headers: &'a HeaderMap,
    /// As a recording holds it: see [`Redaction::body`].
    pub response_body: &'a Bytes,
}

impl Wire<'_> {
    /// Everything [`Exchange::interaction`] makes an interaction of, after redaction: a
    /// secret header counts by its name only and a body with redacted JSON fields as
    /// redacted, so exchanges that differ only in a secret have one fingerprint, as they
    /// make one interaction. Two exchanges with the same fingerprint make the same
    /// interaction (latency aside). The converse need not hold (the path is taken as sent,
    /// not decoded; a JSON body as text, not parsed): a repeat may be taken for new, and
    /// then costs what a new exchange costs, but never the other way round.
    pub fn fingerprint(&self, redaction: &Redaction) -> Fingerprint {
        let mut hasher = Fingerprinter::new();
        hasher.bytes(self.method.as_str().as_bytes());
        hasher.bytes(self.path.as_bytes());
        // `None` and `Some("")` make the same interaction.
        hasher.bytes(self.query.unwrap_or_default().as_bytes());
        let header = |hasher: &mut Fingerprinter, name: &HeaderName, value: &HeaderValue| {
            hasher.bytes(name.as_str().as_bytes());
            if redaction.is_secret_header(name.as_str()) {
                hasher.bytes(redact::PLACEHOLDER.as_bytes());
            } else {
                hasher.bytes(value.as_bytes());
            }
        };
        for (name, value) in self.request_headers {
            header(&mut hasher, name, value);
        }
        hasher.bytes(self.request_body);
        hasher.bytes(&self.status.to_le_bytes());
        for (name, value) in self.response_headers {
            if records_response_header(name.as_str()) {
                header(&mut hasher, name, value);
            }
        }
        hasher.bytes(self.response_body);
        hasher.finish()
    }

    /// The exchange, its headers and bodies copied out of the wire's buffers.
    pub fn exchange(&self, latency: Duration) -> Exchange {
        let pairs = |headers: &mut dyn Iterator<Item = (&HeaderName, &HeaderValue)>| {
            headers
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect()
        };
        Exchange {
            request: RecordedRequest {
                method: self.method.as_str().to_owned(),
                path: crate::matching::percent_decoded(self.path),
                query: self.query.map(str::to_owned),
                headers: pairs(&mut self.request_headers.iter().map(|(n, v)| (n, v))),
                body: self.request_body.clone(),
            },
            response: RecordedResponse {
                status: self.status,
                headers: pairs(&mut self.response_headers.iter()),
                body: self.response_body.clone(),
            },
            latency: Some(latency),
        }
    }
}

/// `GET /items/1?x=2`: what a person looks for in a recording.
fn description(request: &RecordedRequest) -> String {
    match request.query.as_deref().filter(|query| !query.is_empty()) {
        Some(query) => format!(
            "{} {}?{query}",
            request.method.to_ascii_uppercase(),
            request.path
        ),
        None => format!("{} {}", request.method.to_ascii_uppercase(), request.path),
    }
}

fn content_type(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
}

/// Pact V4 query: parameter name to the list of its values, in the order sent.
pub(crate) fn query_json(query: &str) -> Value {
    let mut parameters = Map::new();
    let parsed = pact_models::query_strings::parse_query_string(query).unwrap_or_default();
    // Keep the order of first appearance for a readable diff; values keep their order.
    let mut order: Vec<&String> = parsed.keys().collect();
    order.sort_by_key(|name| query.find(name.as_str()).unwrap_or(usize::MAX));
    for name in order {
        let values: Vec<Value> = parsed[name]
            .iter()
            .map(|value| json!(value.clone().unwrap_or_default()))
            .collect();
        parameters.insert(name.clone(), Value::Array(values));
    }
    Value::Object(parameters)
}

/// Pact V4 headers: a list of values per name; repeated headers keep every value.
pub(crate) fn headers_json(headers: &[(String, String)]) -> Value {
    let mut grouped = Map::new();
    for (name, value) in headers {
        let entry = grouped
            .entry(canonical_header_name(name))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(json!(value));
        }
    }
    Value::Object(grouped)
}

/// `content-type` → `Content-Type`: how people write headers in contracts.
pub fn canonical_header_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A Pact V4 body: JSON stays JSON, text stays text, anything else is base64.
pub fn body_json(body: &[u8], content_type: Option<&str>) -> Value {
    let declared = content_type.unwrap_or_default().to_owned();
    if let Some(value) = json_content(body, content_type) {
        let content_type = if declared.is_empty() {
            "application/json".to_owned()
        } else {
            declared
        };
        return json!({"content": value, "contentType": content_type, "encoded": false});
    }
    match std::str::from_utf8(body) {
        Ok(text) if !looks_binary(&declared) => {
            let content_type = if declared.is_empty() {
                "text/plain".to_owned()
            } else {
                declared
            };
            json!({"content": text, "contentType": content_type, "encoded": false})
        }
        _ => {
            let content_type = if declared.is_empty() {
                "application/octet-stream".to_owned()
            } else {
                declared
            };
            json!({
                "content": base64::engine::general_purpose::STANDARD.encode(body),
                "contentType": content_type,
                "encoded": "base64",
            })
        }
    }
}

/// A body a recording holds as JSON: declared JSON (or undeclared) and parsing as JSON.
pub(crate) fn json_content(body: &[u8], content_type: Option<&str>) -> Option<Value> {
    let declared = content_type.unwrap_or_default();
    if !declared.contains("json") && !declared.is_empty() {
        return None;
    }
    serde_json::from_slice(body).ok()
}

fn looks_binary(content_type: &str) -> bool {
    [
        "image/",
        "audio/",
        "video/",
        "application/octet-stream",
        "application/zip",
        "application/pdf",
    ]
    .iter()
    .any(|prefix| content_type.starts_with(prefix))
}

/// The interactions of one recording, in the order they were first seen.
#[derive(Debug, Clone)]
pub struct Recording {
    consumer: String,
    provider: String,
    interactions: Vec<Value>,
    /// Identical exchanges are stored once: the canonical text of each interaction kept.
    seen: HashSet<String>,
}

impl Recording {
    pub fn new(consumer: impl Into<String>, provider: impl Into<String>) -> Self {
        Recording {
            consumer: consumer.into(),
            provider: provider.into(),
            interactions: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Adds an interaction unless an identical one (latency aside) is already recorded.
    /// Identical requests with different responses are all kept, in order: the stub
    /// answers them in turn.
    pub fn push(&mut self, mut interaction: Value) -> bool {
        // The identity is the interaction without its metadata (latency): taken out for
        // the comparison, put back after, so nothing is copied.
        let metadata = interaction
            .as_object_mut()
            .and_then(|fields| fields.remove("metadata"));
        let new = self.seen.insert(interaction.to_string());
        if new {
            if let (Some(metadata), Some(fields)) = (metadata, interaction.as_object_mut()) {
                fields.insert("metadata".into(), metadata);
            }
            self.interactions.push(interaction);
        }
        new
    }

    pub fn len(&self) -> usize {
        self.interactions.len()
    }

    pub fn interactions(&self) -> &[Value] {
        &self.interactions
    }

    pub fn is_empty(&self) -> bool {
        self.interactions.is_empty()
    }

    /// The Pact V4 document. serde_json keeps object keys sorted, so a re-recording of the
    /// same traffic is byte-identical and a changed one is a readable diff.
    pub fn to_json(&self) -> Value {
        json!({
            "consumer": {"name": self.consumer},
            "provider": {"name": self.provider},
            "interactions": self.interactions,
            "metadata": {
                "pactSpecification": {"version": "4.0"},
                "envd": {"version": env!("CARGO_PKG_VERSION")},
            }
        })
    }

    /// Replaces `path` whole: the new text goes to a temporary file beside it, is synced,
    /// then renamed over it. A reader sees the old recording or the new one, never half.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text = serde_json::to_vec_pretty(&self.to_json())?;
        text.push(b'\n');
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut temporary = tempfile::NamedTempFile::new_in(directory)?;
        temporary.write_all(&text)?;
        temporary.as_file().sync_all()?;
        temporary.persist(path).map_err(|error| error.error)?;
        if let Ok(directory) = std::fs::File::open(directory) {
            let _ = directory.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(method: &str, path: &str, body: &str, status: u16, answer: &str) -> Exchange {
        Exchange {
            request: RecordedRequest {
                method: method.into(),
                path: path.into(),
                query: None,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("user-agent".into(), "curl/8".into()),
                ],
                body: Bytes::copy_from_slice(body.as_bytes()),
            },
            response: RecordedResponse {
                status,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("transfer-encoding".into(), "chunked".into()),
                ],
                body: Bytes::copy_from_slice(answer.as_bytes()),
            },
            latency: Some(Duration::from_micros(41_700)),
        }
    }

    #[test]
    fn exchanges_become_v4_interactions() {
        let interaction = exchange("post", "/orders", r#"{"sku":"a"}"#, 201, r#"{"id":1}"#)
            .interaction(&Redaction::default());
        assert_eq!(
            interaction,
            json!({
                "type": "Synchronous/HTTP",
                "description": "POST /orders",
                "request": {
                    "method": "POST", "path": "/orders",
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"content": {"sku": "a"}, "contentType": "application/json", "encoded": false}
                },
                "response": {
                    "status": 201,
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"content": {"id": 1}, "contentType": "application/json", "encoded": false}
                },
                "metadata": {"envd": {"latencyMs": 41.7}}
            })
        );
    }

    #[test]
    fn bodies_keep_their_kind() {
        assert_eq!(body_json(b"hello", Some("text/plain"))["content"], "hello");
        assert_eq!(body_json(br#"[1]"#, None)["content"], json!([1]));
        let binary = body_json(&[0xff, 0x00, 0x10], Some("application/octet-stream"));
        assert_eq!(
            (binary["content"].as_str(), &binary["encoded"]),
            (Some("/wAQ"), &json!("base64"))
        );
    }

    #[test]
    fn identical_exchanges_are_stored_once_and_different_answers_in_order() {
        let mut recording = Recording::new("orders", "inventory");
        let none = Redaction::default();
        assert!(recording.push(exchange("GET", "/a", "", 200, "1").interaction(&none)));
        let mut slower = exchange("GET", "/a", "", 200, "1");
        slower.latency = Some(Duration::from_millis(90));
        assert!(
            !recording.push(slower.interaction(&none)),
            "latency alone does not make an exchange new"
        );
        assert!(recording.push(exchange("GET", "/a", "", 200, "2").interaction(&none)));
        assert_eq!(recording.len(), 2);
    }

    #[test]
    fn writes_replace_the_file_whole_and_load_as_a_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.json");
        let mut recording = Recording::new("orders", "inventory");
        recording.push(
            exchange("GET", "/stock/1", "", 200, r#"{"n":3}"#).interaction(&Redaction::default()),
        );
        recording.write(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        recording.write(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            first,
            "writing is deterministic"
        );
        let (loaded, _) = crate::contract::load(&[path]).expect("a recording is a contract");
        assert_eq!(loaded[0].description, "GET /stock/1");
        assert_eq!(
            loaded[0].latency,
            Some(Duration::from_micros(41_700)),
            "the recorded latency loads back"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
