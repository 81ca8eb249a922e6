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
