//! HAR 1.2 captures (a browser's "save all as HAR") → recorded exchanges.
//!
//! Each entry becomes a [`recording::Exchange`](crate::recording::Exchange) and goes
//! through [`Exchange::interaction`](crate::recording::Exchange::interaction), so an import
//! is redacted exactly like a recording made by `envd proxy`.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;

use super::{kind, loads, read_json, ImportError, Imported, Report, Skipped};
use crate::recording::{Exchange, RecordedRequest, RecordedResponse, Recording, Redaction};

/// What to import from a HAR.
#[derive(Debug, Clone)]
pub struct Options {
    pub redaction: Redaction,
    pub consumer: String,
    /// `None`: the host, when the HAR holds one.
    pub provider: Option<String>,
    /// Keep only entries for this host (`name` or `name:port`).
    pub host: Option<String>,
}

/// Provider name written when none is given and the HAR holds several hosts.
pub const DEFAULT_PROVIDER: &str = "har-import";

/// Imports the HAR file at `path`.
pub fn import(path: &Path, options: &Options) -> Result<Imported, ImportError> {
    let har = read_json(path)?;
    convert(path, &har, options)
}

/// Converts a parsed HAR; `path` names it in errors and reports.
pub fn convert(path: &Path, har: &Value, options: &Options) -> Result<Imported, ImportError> {
    let entries = match har.pointer("/log/entries") {
        Some(Value::Array(entries)) => entries,
        found => {
            return Err(ImportError::shape(
                path,
                "/log/entries",
                "an array of HAR entries",
                found.unwrap_or(&Value::Null),
            ))
        }
    };
    let mut skipped = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut interactions = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let pointer = format!("/log/entries/{index}");
        let url = entry
            .pointer("/request/url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ImportError::shape(
                    path,
                    &format!("{pointer}/request/url"),
                    "a URL",
                    entry.pointer("/request/url").unwrap_or(&Value::Null),
                )
            })?;
        let method = entry
            .pointer("/request/method")
            .and_then(Value::as_str)
            .unwrap_or("GET");
        let source = format!("{}#{pointer} {method} {}", path.display(), short(url));
        let parsed = Url::parse(url);
        if let Some(wanted) = &options.host {
            let matches = parsed.as_ref().is_some_and(|parsed| {
                let host_only = parsed.authority.split(':').next().unwrap_or_default();
                wanted.eq_ignore_ascii_case(&parsed.authority)
                    || wanted.eq_ignore_ascii_case(host_only)
            });
            if !matches {
                // Another host, by the user's choice: left out without a warning.
                if let Some(parsed) = &parsed {
                    if !hosts.contains(&parsed.authority) {
                        hosts.push(parsed.authority.clone());
                    }
                }
                continue;
            }
        }
        let Some(parsed) = parsed else {
            skipped.push(Skipped {
                source,
                reason: "not imported: not an http:// or https:// URL".into(),
            });
            continue;
        };
        let status = entry
            .pointer("/response/status")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if !(100..=999).contains(&status) {
            skipped.push(Skipped {
                source,
                reason: format!(
                    "not imported: no response (status {status}: blocked, failed or cancelled)"
                ),
            });
            continue;
        }
        let mut notes = Vec::new();
        let exchange = exchange(entry, &parsed, status as u16, &mut notes);
        let interaction = exchange.interaction(&options.redaction);
        match loads(&interaction) {
            Ok(()) => {
                if !hosts.contains(&parsed.authority) {
                    hosts.push(parsed.authority.clone());
                }
                interactions.push((source.clone(), interaction));
            }
            Err(reason) => notes.push(format!("not imported: envd cannot serve it: {reason}")),
        }
        skipped.extend(notes.into_iter().map(|reason| Skipped {
            source: source.clone(),
            reason,
        }));
    }
    let imported_hosts: Vec<String> = match &options.host {
        Some(wanted) => {
            if interactions.is_empty() {
                return Err(ImportError::NoSuchHost {
                    host: wanted.clone(),
                    found: if hosts.is_empty() {
                        "no host at all".to_owned()
                    } else {
                        hosts.join(", ")
                    },
                });
            }
            vec![wanted.clone()]
        }
        None => hosts,
    };
    let provider = match (&options.provider, imported_hosts.as_slice()) {
        (Some(provider), _) => provider.clone(),
        (None, [only]) => only.split(':').next().unwrap_or(only).to_owned(),
        (None, _) => DEFAULT_PROVIDER.to_owned(),
    };
    let mut recording = Recording::new(options.consumer.clone(), provider);
    for (source, interaction) in interactions {
        if !recording.push(interaction) {
            tracing::debug!(%source, "same exchange as an earlier entry");
        }
    }
    Ok(Imported {
        report: Report {
            interactions: recording.len(),
            hosts: imported_hosts,
            skipped,
        },
        recording,
    })
}

/// One entry as an exchange; `notes` gets what was left out.
fn exchange(entry: &Value, url: &Url, status: u16, notes: &mut Vec<String>) -> Exchange {
    let request = &entry["request"];
    let response = &entry["response"];
    let mut request_headers = headers(&request["headers"]);
    let mut request_body = Bytes::new();
    if let Some(post) = request.get("postData") {
        if let Some(text) = post.get("text").and_then(Value::as_str) {
            request_body = Bytes::copy_from_slice(text.as_bytes());
        } else if post
            .get("params")
            .is_some_and(|params| params != &Value::Array(Vec::new()))
        {
            notes.push(
                "request.postData has params but no text; the request body is left out".into(),
            );
        }
        if let Some(mime) = post.get("mimeType").and_then(Value::as_str) {
            if !mime.is_empty() && !has(&request_headers, "content-type") {
                request_headers.push(("content-type".into(), mime.to_owned()));
            }
        }
    }
    let mut response_headers: Vec<(String, String)> = headers(&response["headers"])
        .into_iter()
        // The HAR holds the body decoded: its transfer encodings no longer apply.
        .filter(|(name, _)| {
            !name.eq_ignore_ascii_case("content-encoding")
                && !name.eq_ignore_ascii_case("content-length")
        })
        .collect();
    let content = &response["content"];
    let mut response_body = Bytes::new();
    match content.get("text") {
        Some(Value::String(text)) => {
            if content.get("encoding").and_then(Value::as_str) == Some("base64") {
                match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                    Ok(bytes) => response_body = Bytes::from(bytes),
                    Err(error) => notes.push(format!(
                        "response.content.text is not valid base64 ({error}); the body is left out"
                    )),
                }
            } else {
                response_body = Bytes::copy_from_slice(text.as_bytes());
            }
        }
        Some(other) if !other.is_null() => notes.push(format!(
            "response.content.text: expected text, found {}; the body is left out",
            kind(other)
        )),
        _ => {
            let size = content.get("size").and_then(Value::as_i64).unwrap_or(0);
            if size > 0 {
                notes.push(format!(
                    "response.content.text: the HAR did not save the body ({size} bytes); imported empty"
                ));
            }
        }
    }
    if let Some(mime) = content.get("mimeType").and_then(Value::as_str) {
        if !mime.is_empty() && !response_body.is_empty() && !has(&response_headers, "content-type")
        {
            response_headers.push(("content-type".into(), mime.to_owned()));
        }
    }
    let latency = entry
        .get("time")
        .and_then(Value::as_f64)
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    Exchange {
        request: RecordedRequest {
            method: request["method"].as_str().unwrap_or("GET").to_owned(),
            path: url.path.clone(),
            query: url.query.clone(),
            headers: request_headers,
            body: request_body,
        },
        response: RecordedResponse {
            status,
            headers: response_headers,
            body: response_body,
        },
        latency,
    }
}

/// HAR headers (`[{name, value}]`) without HTTP/2 pseudo-headers.
fn headers(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|list| {
            list.iter()
                .filter_map(|header| {
                    let name = header.get("name")?.as_str()?;
                    let value = header.get("value")?.as_str()?;
                    (!name.starts_with(':')).then(|| (name.to_ascii_lowercase(), value.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn has(headers: &[(String, String)], name: &str) -> bool {
    headers
        .iter()
        .any(|(known, _)| known.eq_ignore_ascii_case(name))
}

/// A URL shortened for reports: long query strings and data: URLs are cut.
fn short(url: &str) -> String {
    match url.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &url[..at]),
        None => url.to_owned(),
    }
}

/// The parts of an http(s) URL a recording needs.
#[derive(Debug, Clone, PartialEq)]
struct Url {
    /// `host` or `host:port`, lowercase.
    authority: String,
    /// Decoded.
    path: String,
    /// As sent, without `?`.
    query: Option<String>,
}

impl Url {
    fn parse(text: &str) -> Option<Url> {
        let (scheme, rest) = text.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        // user:password@ never reaches a recording.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        if authority.is_empty() {
            return None;
        }
        let default_port = if scheme.eq_ignore_ascii_case("https") {
            ":443"
        } else {
            ":80"
        };
        let authority = authority
            .strip_suffix(default_port)
            .unwrap_or(authority)
            .to_ascii_lowercase();
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (rest, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        Some(Url {
            authority,
            path: super::decode_path(path),
            query: query.filter(|query| !query.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn options(host: Option<&str>, redact_json: &[&str]) -> Options {
        let paths: Vec<String> = redact_json.iter().map(|path| (*path).to_owned()).collect();
        Options {
            redaction: Redaction::new(&[], &paths).unwrap(),
            consumer: "shop-web".into(),
            provider: None,
            host: host.map(str::to_owned),
        }
    }

    /// Converts a HAR of `entries` and compares the interactions, the provider, the hosts
    /// and what was reported: `(entry pointer, fragment of the reason)`.
    fn check(
        entries: Value,
        options: &Options,
        expected: Value,
        provider: &str,
        hosts: &[&str],
        reported: &[(&str, &str)],
    ) {
        let har = json!({"log": {"version": "1.2", "creator": {"name": "Firefox", "version": "128.0"},
                                 "entries": entries}});
        let imported = convert(Path::new("shop.har"), &har, options).expect("imports");
        let written = imported.recording.to_json();
        assert_eq!(
            written["interactions"],
            expected,
            "{}",
            serde_json::to_string_pretty(&written["interactions"]).unwrap()
        );
        assert_eq!(written["provider"]["name"], provider);
        assert_eq!(imported.report.hosts, hosts);
        let found = &imported.report.skipped;
        assert_eq!(found.len(), reported.len(), "{found:#?}");
        for (skipped, (pointer, fragment)) in found.iter().zip(reported) {
            assert!(
                skipped.source.starts_with(&format!("shop.har#{pointer} ")),
                "{} is not {pointer}",
                skipped.source
            );
            assert!(
                skipped.reason.contains(fragment),
                "{:?} lacks {fragment:?}",
                skipped.reason
            );
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Value {
        pairs
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    }

    fn entry(method: &str, url: &str, request_headers: &[(&str, &str)], response: Value) -> Value {
        json!({
            "startedDateTime": "2026-11-20T10:00:00.100Z", "time": 83.4,
            "request": {"method": method, "url": url, "httpVersion": "HTTP/2",
                        "headers": headers(request_headers), "queryString": [], "cookies": [],
                        "headersSize": -1, "bodySize": 0},
            "response": response,
            "cache": {}, "timings": {"send": 0.1, "wait": 80.2, "receive": 3.1}
        })
    }

    fn products() -> Value {
        entry(
            "GET",
            "https://api.shop.example.com/v1/products?category=shoes&page=2",
            &[
                (":authority", "api.shop.example.com"),
                ("accept", "application/json"),
                (
                    "authorization",
                    "Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.tok3n",
                ),
                ("cookie", "session=s3ss10n; theme=dark"),
                ("user-agent", "Mozilla/5.0"),
            ],
            json!({"status": 200, "statusText": "OK",
                   "headers": headers(&[("content-type", "application/json; charset=utf-8"),
                                        ("content-encoding", "br"),
                                        ("set-cookie", "session=n3w; HttpOnly")]),
                   "content": {"size": 40, "mimeType": "application/json",
                               "text": "{\"items\":[{\"id\":\"p-1\"}],\"page\":2}"}}),
        )
    }

    fn add_to_cart() -> Value {
        let mut post = entry(
            "POST",
            "https://api.shop.example.com/v1/cart/items",
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            json!({"status": 201, "headers": headers(&[("content-type", "application/json")]),
                   "content": {"size": 8, "mimeType": "application/json", "text": "{\"id\":9}"}}),
        );
        post["time"] = json!(140.0);
        post["request"]["postData"] = json!({"mimeType": "application/json",
            "text": "{\"productId\":\"p-1\",\"quantity\":2,\"cardToken\":\"tok_visa_4242\"}"});
        post
    }

    fn image() -> Value {
        entry(
            "GET",
            "https://cdn.shop.example.com/img/p%201.png",
            &[("accept", "image/avif,image/webp,*/*")],
            json!({"status": 200, "headers": headers(&[("content-type", "image/png"), ("content-length", "8")]),
                   "content": {"size": 8, "mimeType": "image/png", "text": "iVBORw0KGgo=", "encoding": "base64"}}),
        )
    }

    #[test]
    fn entries_become_redacted_interactions() {
        check(
            json!([products(), add_to_cart(), image()]),
            &options(None, &["$.cardToken"]),
            json!([
                {"type": "Synchronous/HTTP", "description": "GET /v1/products?category=shoes&page=2",
                 "request": {"method": "GET", "path": "/v1/products",
                             "query": {"category": ["shoes"], "page": ["2"]},
                             "headers": {"Accept": ["application/json"], "Authorization": ["<redacted>"],
                                         "Cookie": ["<redacted>"]},
                             "matchingRules": {"header": {
                                 "Authorization": {"combine": "AND", "matchers": [{"match": "type"}]},
                                 "Cookie": {"combine": "AND", "matchers": [{"match": "type"}]}}}},
                 "response": {"status": 200,
                              "headers": {"Content-Type": ["application/json; charset=utf-8"],
                                          "Set-Cookie": ["<redacted>"]},
                              "body": {"content": {"items": [{"id": "p-1"}], "page": 2},
                                       "contentType": "application/json; charset=utf-8", "encoded": false},
                              "matchingRules": {"header": {
                                  "Set-Cookie": {"combine": "AND", "matchers": [{"match": "type"}]}}}},
                 "metadata": {"envd": {"latencyMs": 83.4}}},
                {"type": "Synchronous/HTTP", "description": "POST /v1/cart/items",
                 "request": {"method": "POST", "path": "/v1/cart/items",
                             "headers": {"Content-Type": ["application/json"], "Accept": ["application/json"]},
                             "body": {"content": {"productId": "p-1", "quantity": 2, "cardToken": "<redacted>"},
                                      "contentType": "application/json", "encoded": false},
                             "matchingRules": {"body": {
                                 "$.cardToken": {"combine": "AND", "matchers": [{"match": "type"}]}}}},
                 "response": {"status": 201, "headers": {"Content-Type": ["application/json"]},
                              "body": {"content": {"id": 9}, "contentType": "application/json", "encoded": false}},
                 "metadata": {"envd": {"latencyMs": 140.0}}},
                {"type": "Synchronous/HTTP", "description": "GET /img/p 1.png",
                 "request": {"method": "GET", "path": "/img/p 1.png",
                             "headers": {"Accept": ["image/avif,image/webp,*/*"]}},
                 "response": {"status": 200, "headers": {"Content-Type": ["image/png"]},
                              "body": {"content": "iVBORw0KGgo=", "contentType": "image/png", "encoded": "base64"}},
                 "metadata": {"envd": {"latencyMs": 83.4}}}
            ]),
            "har-import",
            &["api.shop.example.com", "cdn.shop.example.com"],
            &[],
        );
    }

    #[test]
    fn entries_that_cannot_be_replayed_are_reported() {
        let data = entry(
            "GET",
            "data:image/svg+xml;base64,PHN2Zy8+",
            &[],
            json!({"status": 200, "headers": [], "content": {"size": 6, "mimeType": "image/svg+xml"}}),
        );
        let blocked = entry(
            "GET",
            "https://analytics.example.net/collect?v=1",
            &[],
            json!({"status": 0, "headers": [], "content": {"size": 0, "mimeType": ""},
                   "_error": "net::ERR_BLOCKED_BY_CLIENT"}),
        );
        let unsaved = entry(
            "GET",
            "http://api.shop.example.com:8080/v1/big",
            &[],
            json!({"status": 200, "headers": [], "content": {"size": 90000, "mimeType": "application/json"}}),
        );
        check(
            json!([data, blocked, unsaved]),
            &options(None, &[]),
            json!([{"type": "Synchronous/HTTP", "description": "GET /v1/big",
                    "request": {"method": "GET", "path": "/v1/big"},
                    "response": {"status": 200},
                    "metadata": {"envd": {"latencyMs": 83.4}}}]),
            "api.shop.example.com",
            &["api.shop.example.com:8080"],
            &[
                ("/log/entries/0", "not an http:// or https:// URL"),
                ("/log/entries/1", "no response (status 0"),
                (
                    "/log/entries/2",
                    "the HAR did not save the body (90000 bytes)",
                ),
            ],
        );
    }

    #[test]
    fn a_host_keeps_only_its_entries() {
        check(
            json!([image(), products()]),
            &options(Some("cdn.shop.example.com"), &[]),
            json!([{"type": "Synchronous/HTTP", "description": "GET /img/p 1.png",
                    "request": {"method": "GET", "path": "/img/p 1.png",
                             "headers": {"Accept": ["image/avif,image/webp,*/*"]}},
                    "response": {"status": 200, "headers": {"Content-Type": ["image/png"]},
                                 "body": {"content": "iVBORw0KGgo=", "contentType": "image/png", "encoded": "base64"}},
                    "metadata": {"envd": {"latencyMs": 83.4}}}]),
            "cdn.shop.example.com",
            &["cdn.shop.example.com"],
            &[],
        );
        let har = json!({"log": {"entries": [products()]}});
        let error = convert(
            Path::new("shop.har"),
            &har,
            &options(Some("nope.example.com"), &[]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "--host nope.example.com: no entries for this host; the HAR holds requests to api.shop.example.com"
        );
    }

    #[test]
    fn a_file_that_is_not_a_har_names_the_pointer() {
        let error =
            convert(Path::new("x.har"), &json!({"log": {}}), &options(None, &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "x.har#/log/entries: expected an array of HAR entries, found nothing"
        );
        let error = convert(
            Path::new("x.har"),
            &json!({"log": {"entries": [{"request": {"method": "GET"}}]}}),
            &options(None, &[]),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "x.har#/log/entries/0/request/url: expected a URL, found nothing"
        );
    }
}
