//! Redaction: secrets are replaced before anything reaches disk or a log.
//!
//! A redacted value becomes a placeholder of the same JSON type, and the interaction gets a
//! matching rule that accepts any value of that type in its place, so the recording still
//! replays (and still verifies) with whatever token the next client sends.

use std::collections::BTreeSet;

use bytes::Bytes;
use pact_models::path_exp::{DocPath, PathToken};
use serde_json::{json, Map, Value};

/// What a redacted string becomes.
pub const PLACEHOLDER: &str = "<redacted>";

/// Headers that carry credentials in practice; always redacted.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("--redact-json {path:?}: expected a JSON path such as $.password or $.items[*].token: {reason}")]
    Path { path: String, reason: String },
}

/// Which headers and JSON fields are secrets.
#[derive(Debug, Clone)]
pub struct Redaction {
    /// Lowercase header names.
    headers: BTreeSet<String>,
    json: Vec<(String, DocPath)>,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            headers: SECRET_HEADERS
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            json: Vec::new(),
        }
    }
}

impl Redaction {
    /// The standard secret headers plus `headers`, and the JSON fields at `json_paths`.
    pub fn new(headers: &[String], json_paths: &[String]) -> Result<Self, RedactError> {
        let mut redaction = Redaction::default();
        redaction
            .headers
            .extend(headers.iter().map(|name| name.trim().to_ascii_lowercase()));
        for path in json_paths {
            if !path.starts_with('$') {
                return Err(RedactError::Path {
                    path: path.clone(),
                    reason: "it must start at the root, $".into(),
                });
            }
            let parsed = DocPath::new(path.as_str()).map_err(|error| RedactError::Path {
                path: path.clone(),
                reason: error.to_string(),
            })?;
            redaction.json.push((path.clone(), parsed));
        }
        Ok(redaction)
    }

    pub fn is_secret_header(&self, lowercase_name: &str) -> bool {
        self.headers.contains(lowercase_name)
    }

    /// A body as a recording holds it: with the configured JSON fields redacted (and the
    /// JSON written anew) when the recording holds it as JSON and a field was found, else
    /// the same bytes, shared. Redacting what this returns again changes nothing, so an
    /// interaction made from it is the one made from the original body.
    pub fn body(&self, body: &Bytes, content_type: Option<&str>) -> Bytes {
        if self.json.is_empty() {
            return body.clone();
        }
        let Some(mut content) = super::json_content(body, content_type) else {
            return body.clone();
        };
        if self.redact_content(&mut content).is_empty() {
            return body.clone();
        }
        Bytes::from(serde_json::to_vec(&content).expect("a JSON value serializes"))
    }

    /// Redacts the configured JSON fields of a body's content in place; the paths (as
    /// written) that found something. A text body's content is a string: it has no fields.
    fn redact_content(&self, content: &mut Value) -> Vec<&str> {
        if content.is_string() {
            return Vec::new();
        }
        self.json
            .iter()
            .filter(|(_, path)| redact_at(content, &path.tokens()[1..]))
            .map(|(written, _)| written.as_str())
            .collect()
    }

    /// Redacts the request and the response of a Pact V4 interaction in place.
    pub fn apply(&self, interaction: &mut Value) {
        for part in ["request", "response"] {
            if let Some(part) = interaction.get_mut(part).and_then(Value::as_object_mut) {
                self.apply_to_part(part);
            }
        }
    }

    fn apply_to_part(&self, part: &mut Map<String, Value>) {
        let mut header_rules = Map::new();
        if let Some(headers) = part.get_mut("headers").and_then(Value::as_object_mut) {
            for (name, values) in headers.iter_mut() {
                if self.is_secret_header(&name.to_ascii_lowercase()) {
                    *values = match values {
                        Value::Array(list) => {
                            Value::Array(list.iter().map(|_| json!(PLACEHOLDER)).collect())
                        }
                        _ => json!(PLACEHOLDER),
                    };
                    header_rules.insert(name.clone(), any_of_type());
                }
            }
        }
        let mut body_rules = Map::new();
        if let Some(content) = part
            .get_mut("body")
            .and_then(|body| body.get_mut("content"))
        {
            for written in self.redact_content(content) {
                body_rules.insert(written.to_owned(), any_of_type());
            }
        }
        if header_rules.is_empty() && body_rules.is_empty() {
            return;
        }
        let rules = part
            .entry("matchingRules")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("matchingRules is an object");
        for (category, added) in [("header", header_rules), ("body", body_rules)] {
            if added.is_empty() {
                continue;
            }
            let entry = rules.entry(category).or_insert_with(|| json!({}));
            if let Some(existing) = entry.as_object_mut() {
                existing.extend(added);
            }
        }
    }
}

/// A V4 rule that accepts any value of the placeholder's type.
fn any_of_type() -> Value {
    json!({"combine": "AND", "matchers": [{"match": "type"}]})
}

/// Replaces every value `path` reaches under `value` with a placeholder of its type;
/// whether anything was found.
fn redact_at(value: &mut Value, path: &[PathToken]) -> bool {
    let Some((token, rest)) = path.split_first() else {
        redact_value(value);
        return true;
    };
    match (token, value) {
        (PathToken::Field(name), Value::Object(fields)) => fields
            .get_mut(name)
            .is_some_and(|child| redact_at(child, rest)),
        (PathToken::Index(index), Value::Array(items)) => items
            .get_mut(*index)
            .is_some_and(|child| redact_at(child, rest)),
        // Every match is redacted: no short-circuit here.
        (PathToken::Star, Value::Object(fields)) => fields
            .values_mut()
            .map(|child| redact_at(child, rest))
            .fold(false, std::ops::BitOr::bitor),
        (PathToken::StarIndex | PathToken::Star, Value::Array(items)) => items
            .iter_mut()
            .map(|child| redact_at(child, rest))
            .fold(false, std::ops::BitOr::bitor),
        _ => false,
    }
}

/// Strings become the placeholder, numbers 0, booleans false; containers are redacted
/// all the way down.
fn redact_value(value: &mut Value) {
    match value {
        Value::String(text) => *text = PLACEHOLDER.to_owned(),
        Value::Number(_) => *value = json!(0),
        Value::Bool(flag) => *flag = false,
        Value::Null => {}
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(fields) => fields.values_mut().for_each(redact_value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(redaction: &Redaction, interaction: Value, expected: Value) {
        let mut interaction = interaction;
        redaction.apply(&mut interaction);
        assert_eq!(interaction, expected);
    }

    #[test]
    fn secret_headers_become_placeholders_with_any_value_rules() {
        check(
            &Redaction::default(),
            json!({"request": {"headers": {"Authorization": ["Bearer s3cr3t"], "Accept": ["*/*"]}},
                   "response": {"headers": {"Set-Cookie": ["a=1", "b=2"]}}}),
            json!({
                "request": {"headers": {"Authorization": ["<redacted>"], "Accept": ["*/*"]},
                            "matchingRules": {"header": {"Authorization": {"combine": "AND", "matchers": [{"match": "type"}]}}}},
                "response": {"headers": {"Set-Cookie": ["<redacted>", "<redacted>"]},
                             "matchingRules": {"header": {"Set-Cookie": {"combine": "AND", "matchers": [{"match": "type"}]}}}}
            }),
        );
    }

    #[test]
    fn json_fields_keep_their_type() {
        let redaction = Redaction::new(
            &["X-Session".into()],
            &["$.password".into(), "$.cards[*].pin".into()],
        )
        .unwrap();
        check(
            &redaction,
            json!({"request": {"headers": {"X-Session": "abc"},
                               "body": {"content": {"password": "hunter2", "cards": [{"pin": 1234}, {"pin": 9}]}}}}),
            json!({"request": {
                "headers": {"X-Session": "<redacted>"},
                "body": {"content": {"password": "<redacted>", "cards": [{"pin": 0}, {"pin": 0}]}},
                "matchingRules": {
                    "header": {"X-Session": {"combine": "AND", "matchers": [{"match": "type"}]}},
                    "body": {
                        "$.password": {"combine": "AND", "matchers": [{"match": "type"}]},
                        "$.cards[*].pin": {"combine": "AND", "matchers": [{"match": "type"}]}
                    }
                }
            }}),
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        let error = Redaction::new(&[], &["password".into()]).unwrap_err();
        assert!(
            error.to_string().contains("--redact-json \"password\""),
            "{error}"
        );
    }
}
