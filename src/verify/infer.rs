//! Contracts from observed traffic: exchanges in, Pact V4 interactions out, with matchers
//! where the observations say a value is not fixed.
//!
//! Exchanges are grouped by method, path shape (ids in paths replaced by a pattern) and
//! status. Within a group, a value that varied gets a type matcher, an id segment in the
//! path a regex matcher, a timestamp a datetime matcher; everything else stays exact.
//! Pure: the journal wiring (`envd journal --infer`) reads and writes the files.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{json, Map, Value};

/// One exchange as observed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub method: String,
    /// Decoded path, without the query.
    pub path: String,
    /// As sent (percent-encoded), without the `?`; kept literally.
    pub query: Option<String>,
    /// The headers a recording keeps (secret ones already redacted); kept literally.
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<Value>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<Value>,
}

impl Observed {
    /// The exchange as an observation; `None` when a body is not JSON (such an exchange
    /// is written literally: there is nothing in it to infer from).
    pub fn from_exchange(exchange: &crate::recording::Exchange) -> Option<Observed> {
        let json = |body: &[u8]| match body.is_empty() {
            true => Some(None),
            false => serde_json::from_slice::<Value>(body).ok().map(Some),
        };
        let request = &exchange.request;
        let response = &exchange.response;
        Some(Observed {
            method: request.method.to_ascii_uppercase(),
            path: request.path.clone(),
            query: request.query.clone().filter(|query| !query.is_empty()),
            request_headers: request.headers.clone(),
            request_body: json(&request.body)?,
            status: response.status,
            response_headers: response
                .headers
                .iter()
                .filter(|(name, _)| {
                    !crate::recording::HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str())
                })
                .cloned()
                .collect(),
            response_body: json(&response.body)?,
        })
    }
}

const ID_PATTERNS: [(&str, &str); 2] = [
    (r"^\d+$", r"\d+"),
    (
        r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    ),
];

/// The path's shape: each id-like segment replaced by its pattern; `None` when the path
/// has no id in it.
fn path_pattern(path: &str) -> Option<String> {
    static IDS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let ids = IDS.get_or_init(|| {
        ID_PATTERNS
            .iter()
            .map(|(test, pattern)| (Regex::new(test).expect("static pattern"), *pattern))
            .collect()
    });
    let mut any = false;
    let segments: Vec<String> = path
        .split('/')
        .map(
            |segment| match ids.iter().find(|(test, _)| test.is_match(segment)) {
                Some((_, pattern)) => {
                    any = true;
                    (*pattern).to_owned()
                }
                None => regex::escape(segment),
            },
        )
        .collect();
    any.then(|| format!("^{}$", segments.join("/")))
}

/// The datetime format of an RFC 3339 timestamp, in Pact's (Java) pattern letters.
fn datetime_format(text: &str) -> Option<&'static str> {
    static FORMATS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    let formats = FORMATS.get_or_init(|| {
        [
            (
                r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$",
                "yyyy-MM-dd'T'HH:mm:ss.SSSX",
            ),
            (
                r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
                "yyyy-MM-dd'T'HH:mm:ssX",
            ),
            (
                r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$",
                "yyyy-MM-dd'T'HH:mm:ssXXX",
            ),
        ]
        .into_iter()
        .map(|(test, format)| (Regex::new(test).expect("static pattern"), format))
        .collect()
    });
    formats
        .iter()
        .find(|(test, _)| test.is_match(text))
        .map(|(_, format)| *format)
}

/// Interactions inferred from `observed`, one per method, path shape and status, in the
/// order each group was first seen.
pub fn infer(observed: &[Observed]) -> Vec<Value> {
    let mut groups: Vec<(String, Vec<&Observed>)> = Vec::new();
    for exchange in observed {
        let shape = path_pattern(&exchange.path).unwrap_or_else(|| exchange.path.clone());
        let query = exchange.query.as_deref().unwrap_or_default();
        let key = format!("{} {shape}?{query} {}", exchange.method, exchange.status);
        match groups.iter_mut().find(|(group, _)| *group == key) {
            Some((_, members)) => members.push(exchange),
            None => groups.push((key, vec![exchange])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| interaction(&members))
        .collect()
}

fn interaction(members: &[&Observed]) -> Value {
    let first = members[0];
    let mut request_rules = Map::new();
    if let Some(pattern) = path_pattern(&first.path) {
        request_rules.insert(
            "path".into(),
            json!({"combine": "AND", "matchers": [{"match": "regex", "regex": pattern}]}),
        );
    }
    let mut request = json!({"method": first.method, "path": first.path});
    if let Some(query) = &first.query {
        request["query"] = crate::recording::query_json(query);
    }
    // Only the headers every observation sent: one the consumer sometimes left out is not
    // one it needs.
    let headers: Vec<(String, String)> = first
        .request_headers
        .iter()
        .filter(|(name, _)| {
            members
                .iter()
                .all(|m| m.request_headers.iter().any(|(other, _)| other == name))
        })
        .cloned()
        .collect();
    if !headers.is_empty() {
        request["headers"] = crate::recording::headers_json(&headers);
    }
    if let Some(body) = &first.request_body {
        request["body"] = json!({"content": body, "contentType": "application/json"});
        let samples: Vec<&Value> = members
            .iter()
            .filter_map(|m| m.request_body.as_ref())
            .collect();
        let mut rules = BTreeMap::new();
        body_rules(&samples, "$", &mut rules);
        if !rules.is_empty() {
            request_rules.insert("body".into(), Value::Object(rules.into_iter().collect()));
        }
    }
    if !request_rules.is_empty() {
        request["matchingRules"] = Value::Object(request_rules);
    }
    let mut response = json!({"status": first.status});
    if !first.response_headers.is_empty() {
        response["headers"] = crate::recording::headers_json(&first.response_headers);
    }
    if let Some(body) = &first.response_body {
        response["body"] = json!({"content": body, "contentType": "application/json"});
        let samples: Vec<&Value> = members
            .iter()
            .filter_map(|m| m.response_body.as_ref())
            .collect();
        let mut rules = BTreeMap::new();
        body_rules(&samples, "$", &mut rules);
        if !rules.is_empty() {
            response["matchingRules"] = json!({"body": Value::Object(rules.into_iter().collect())});
        }
    }
    let description = match &first.query {
        Some(query) => format!("{} {}?{query}", first.method, first.path),
        None => format!("{} {}", first.method, first.path),
    };
    json!({
        "type": "Synchronous/HTTP",
        "description": description,
        "request": request,
        "response": response,
    })
}

/// Rules for the values at `place` across `samples`: timestamps get a datetime matcher,
/// values that varied a type matcher; objects and arrays are walked.
fn body_rules(samples: &[&Value], place: &str, rules: &mut BTreeMap<String, Value>) {
    let Some(first) = samples.first() else { return };
    let rule = |matcher: Value| json!({"combine": "AND", "matchers": [matcher]});
    match first {
        Value::Object(object) => {
            for key in object.keys() {
                let children: Vec<&Value> = samples.iter().filter_map(|s| s.get(key)).collect();
                let child = if key.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    format!("{place}.{key}")
                } else {
                    format!("{place}['{key}']")
                };
                body_rules(&children, &child, rules);
            }
        }
        Value::Array(_) => {
            let children: Vec<&Value> = samples
                .iter()
                .filter_map(|s| s.as_array())
                .flatten()
                .collect();
            if samples
                .iter()
                .any(|s| s.as_array().map(Vec::len) != first.as_array().map(Vec::len))
            {
                rules.insert(place.to_owned(), rule(json!({"match": "type", "min": 0})));
            }
            body_rules(&children, &format!("{place}[*]"), rules);
        }
        Value::String(text) => {
            if let Some(format) = datetime_format(text).filter(|format| {
                samples
                    .iter()
                    .all(|s| s.as_str().and_then(datetime_format) == Some(*format))
            }) {
                rules.insert(
                    place.to_owned(),
                    rule(json!({"match": "datetime", "format": format})),
                );
            } else if varied(samples) {
                rules.insert(place.to_owned(), rule(json!({"match": "type"})));
            }
        }
        _ => {
            if varied(samples) {
                rules.insert(place.to_owned(), rule(json!({"match": "type"})));
            }
        }
    }
}

/// Whether the values differ while keeping one JSON type (a change of type is not a
/// value that varies, and a type matcher would reject half the observations).
fn varied(samples: &[&Value]) -> bool {
    let kind = |value: &Value| std::mem::discriminant(value);
    let same_kind = samples.iter().all(|s| kind(s) == kind(samples[0]));
    same_kind && samples.iter().any(|s| *s != samples[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(path: &str, body: Value) -> Observed {
        Observed {
            method: "GET".into(),
            path: path.into(),
            status: 200,
            response_headers: vec![("Content-Type".into(), "application/json".into())],
            response_body: Some(body),
            ..Observed::default()
        }
    }

    fn check(observed: &[Observed], expected: Value) {
        assert_eq!(Value::Array(infer(observed)), expected);
    }

    #[test]
    fn varied_values_ids_and_timestamps_get_matchers() {
        check(
            &[
                observed(
                    "/orders/1",
                    json!({"id": 1, "state": "open", "at": "2026-01-01T10:00:00Z"}),
                ),
                observed(
                    "/orders/2",
                    json!({"id": 2, "state": "open", "at": "2026-02-03T11:00:00Z"}),
                ),
            ],
            json!([{
                "type": "Synchronous/HTTP",
                "description": "GET /orders/1",
                "request": {
                    "method": "GET", "path": "/orders/1",
                    "matchingRules": {"path": {"combine": "AND", "matchers": [{"match": "regex", "regex": "^/orders/\\d+$"}]}}
                },
                "response": {
                    "status": 200,
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"content": {"id": 1, "state": "open", "at": "2026-01-01T10:00:00Z"}, "contentType": "application/json"},
                    "matchingRules": {"body": {
                        "$.at": {"combine": "AND", "matchers": [{"match": "datetime", "format": "yyyy-MM-dd'T'HH:mm:ssX"}]},
                        "$.id": {"combine": "AND", "matchers": [{"match": "type"}]}
                    }}
                }
            }]),
        );
    }

    #[test]
    fn fixed_values_stay_exact_and_shapes_stay_apart() {
        let interactions = infer(&[
            observed("/health", json!({"ok": true})),
            observed("/health", json!({"ok": true})),
            observed("/orders/7", json!({"items": [1]})),
            observed("/orders/8", json!({"items": [1, 2]})),
        ]);
        assert_eq!(interactions.len(), 2);
        let pact = json!({"interactions": interactions, "metadata": {"pactSpecification": {"version": "4.0"}}});
        let (loaded, _) = crate::contract::load_text(
            std::path::Path::new("inferred.json"),
            pact.to_string().as_bytes(),
        )
        .expect("an inferred contract loads");
        assert_eq!(loaded.len(), 2);
        assert!(interactions[0]["response"].get("matchingRules").is_none());
        assert!(interactions[0]["request"].get("matchingRules").is_none());
        assert_eq!(
            interactions[1]["response"]["matchingRules"]["body"],
            json!({
                "$.items": {"combine": "AND", "matchers": [{"match": "type", "min": 0}]},
                "$.items[*]": {"combine": "AND", "matchers": [{"match": "type"}]}
            })
        );
    }

    #[test]
    fn only_headers_every_observation_sent_are_required() {
        let sent = |headers: &[(&str, &str)]| Observed {
            request_headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            ..observed("/orders/1", json!({}))
        };
        let interactions = infer(&[
            sent(&[
                ("accept", "application/json"),
                ("authorization", "<redacted>"),
            ]),
            sent(&[("accept", "application/json")]),
        ]);
        assert_eq!(
            interactions[0]["request"]["headers"],
            json!({"Accept": ["application/json"]})
        );
    }

    #[test]
    fn uuid_segments_are_ids() {
        assert_eq!(
            path_pattern("/users/0b8e7f0c-1a2b-4c3d-8e9f-0123456789ab/cart").as_deref(),
            Some("^/users/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/cart$")
        );
        assert_eq!(path_pattern("/users/me"), None);
    }
}
