//! Importers: other tools' stubs and captures turned into envd recordings (Pact V4).
//!
//! `wiremock` reads WireMock stub mappings, `har` reads HAR 1.2 captures. Both are pure
//! conversions from parsed JSON to Pact V4 interactions, plus a thin layer that reads the
//! input files. Whatever a source says that a Pact interaction cannot express is never
//! dropped silently: it becomes a [`Skipped`] entry in the [`Report`], naming where it was
//! written and what was left out. Only malformed input is an [`ImportError`].

pub mod har;
pub mod wiremock;

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::Recording;

/// Something the source said that the recording does not carry (or carries only in part).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Where it was written: `FILE#/json/pointer`, and the mapping's name or id if any.
    pub source: String,
    /// What was left out, and what was imported instead if anything.
    pub reason: String,
}

/// What an import produced.
#[derive(Debug, Clone)]
pub struct Imported {
    pub recording: Recording,
    pub report: Report,
}

/// What an import did, for the user: printed by the CLI, and its `--json` output.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Report {
    /// Interactions written.
    pub interactions: usize,
    /// The hosts requests went to (HAR only), in order of first appearance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Everything not imported, or imported only in part.
    pub skipped: Vec<Skipped>,
}

/// Why an input could not be imported at all. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no WireMock mappings (*.json) in this directory")]
    EmptyDirectory { path: PathBuf },
    #[error("{path}:{line}:{column}: invalid JSON: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}#{pointer}: expected {expected}, found {found}")]
    Shape {
        path: PathBuf,
        pointer: String,
        expected: String,
        found: String,
    },
    #[error("{path}#{pointer}: cannot read the body file {body_file}: {source}")]
    BodyFile {
        path: PathBuf,
        pointer: String,
        body_file: PathBuf,
        source: std::io::Error,
    },
    #[error("--host {host}: no entries for this host; the HAR holds requests to {found}")]
    NoSuchHost { host: String, found: String },
    #[error(transparent)]
    Redact(#[from] super::redact::RedactError),
    #[error("{path}: cannot write the recording: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ImportError {
    fn shape(path: &Path, pointer: &str, expected: &str, found: &Value) -> Self {
        ImportError::Shape {
            path: path.to_owned(),
            pointer: pointer.to_owned(),
            expected: expected.to_owned(),
            found: kind(found),
        }
    }
}

/// Writes an import's recording to `out`, replacing it whole (atomically): an import is a
/// re-generation, never an addition.
pub fn write(imported: &Imported, out: &Path) -> Result<(), ImportError> {
    imported
        .recording
        .write(out)
        .map_err(|source| ImportError::Write {
            path: out.to_owned(),
            source,
        })
}

/// Reads and parses one JSON file, naming it (with line and column) in errors.
fn read_json(path: &Path) -> Result<Value, ImportError> {
    let text = std::fs::read(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_json(path, &text)
}

fn parse_json(path: &Path, text: &[u8]) -> Result<Value, ImportError> {
    serde_json::from_slice(text).map_err(|error| ImportError::Json {
        path: path.to_owned(),
        line: error.line(),
        column: error.column(),
        message: crate::contract::json_message(&error),
    })
}

/// Whether envd can serve `interaction`: it is loaded the way a stub loads it. Catches
/// what the converters cannot know in advance (a regex the matcher refuses, …).
fn loads(interaction: &Value) -> Result<(), String> {
    let pact = json!({
        "consumer": {"name": "check"},
        "provider": {"name": "check"},
        "interactions": [interaction],
        "metadata": {"pactSpecification": {"version": "4.0"}}
    });
    let text = serde_json::to_vec(&pact).map_err(|error| error.to_string())?;
    crate::contract::load_text(Path::new("import"), &text)
        .map(drop)
        .map_err(|error| {
            let text = error.to_string();
            // The message after the made-up `import#/interactions/0: ` place.
            match text.split_once(": ") {
                Some((_, message)) => message.to_owned(),
                None => text,
            }
        })
}

/// Pact V4 query: parameter name to the list of its (decoded) values, in the order sent.
fn query_json(query: &str) -> Map<String, Value> {
    let mut parameters = Map::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let entry = parameters
            .entry(decode_query(name))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(json!(decode_query(value)));
        }
    }
    parameters
}

fn decode_query(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// A percent-encoded path, decoded the way the stub decodes the paths it receives.
fn decode_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// A regex matching exactly what WireMock's (Java, whole-string) regex matches.
fn anchored(regex: &str) -> String {
    format!("^(?:{regex})$")
}

/// `.*ESCAPED.*`: WireMock's `contains` as a regex.
fn contains_regex(text: &str) -> String {
    format!(".*{}.*", regex::escape(text))
}

/// A V4 matching rule with one matcher.
fn rule(matcher: Value) -> Value {
    json!({"combine": "AND", "matchers": [matcher]})
}

fn regex_rule(regex: &str) -> Value {
    rule(json!({"match": "regex", "regex": regex}))
}

/// A string `regex` matches (checked with the regex crate), or why none could be made.
fn example_for(regex: &str) -> Result<String, String> {
    let compiled = regex::Regex::new(regex)
        .map_err(|error| format!("the regex {regex:?} is not supported: {error}"))?;
    let hir = regex_syntax::Parser::new()
        .parse(regex)
        .map_err(|error| format!("the regex {regex:?} is not supported: {error}"))?;
    let mut example = String::new();
    generate(&hir, &mut example);
    if compiled.is_match(&example) {
        Ok(example)
    } else {
        Err(format!(
            "no example value could be made for the regex {regex:?}"
        ))
    }
}

/// The shortest plausible text for a regex: the first branch of each alternation, the
/// minimum of each repetition, a readable member of each class.
fn generate(hir: &regex_syntax::hir::Hir, into: &mut String) {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => into.push_str(&String::from_utf8_lossy(&literal.0)),
        HirKind::Class(Class::Unicode(class)) => {
            let ranges: Vec<(char, char)> = class
                .ranges()
                .iter()
                .map(|range| (range.start(), range.end()))
                .collect();
            into.push(pick(&ranges));
        }
        HirKind::Class(Class::Bytes(class)) => {
            let ranges: Vec<(char, char)> = class
                .ranges()
                .iter()
                .map(|range| (char::from(range.start()), char::from(range.end())))
                .collect();
            into.push(pick(&ranges));
        }
        HirKind::Repetition(repetition) => {
            for _ in 0..repetition.min {
                generate(&repetition.sub, into);
            }
        }
        HirKind::Capture(capture) => generate(&capture.sub, into),
        HirKind::Concat(parts) => parts.iter().for_each(|part| generate(part, into)),
        HirKind::Alternation(branches) => {
            if let Some(first) = branches.first() {
                generate(first, into);
            }
        }
    }
}

/// A readable character from a class: a letter or digit if the class has one, else the
/// first printable one.
fn pick(ranges: &[(char, char)]) -> char {
    for preferred in ['a', 'x', '1', '0', 'A', '-', '_'] {
        if ranges
            .iter()
            .any(|&(start, end)| start <= preferred && preferred <= end)
        {
            return preferred;
        }
    }
    ranges
        .iter()
        .flat_map(|&(start, end)| {
            (u32::from(start)..=u32::from(end).min(u32::from(start) + 200))
                .filter_map(char::from_u32)
        })
        .find(|c| !c.is_control() && *c != '/' && *c != '?' && *c != '#')
        .or_else(|| ranges.first().map(|&(start, _)| start))
        .unwrap_or('x')
}

pub(crate) use crate::contract::kind;

#[cfg(test)]
mod tests {
    use super::*;

    fn check(regex: &str, expected: Result<&str, &str>) {
        let found = example_for(&anchored(regex));
        match expected {
            Ok(example) => assert_eq!(found.as_deref(), Ok(example), "{regex}"),
            Err(reason) => {
                let error = found.expect_err(regex);
                assert!(error.contains(reason), "{regex}: {error}");
            }
        }
    }

    #[test]
    fn regexes_get_examples_they_match() {
        check("/users/[0-9]+", Ok("/users/1"));
        check("/users/\\d+/orders", Ok("/users/1/orders"));
        check(
            "/api/(v1|v2)/items/[a-f0-9-]{36}",
            Ok(&format!("/api/v1/items/{}", "a".repeat(36))),
        );
        check("/files/[^/]+\\.pdf", Ok("/files/a.pdf"));
        check("/search.*", Ok("/search"));
        check("/a(?=b)", Err("not supported"));
    }

    #[test]
    fn queries_decode_and_keep_repeats() {
        assert_eq!(
            Value::Object(query_json("q=a%20b&tag=x&tag=y&plus=1+2")),
            json!({"q": ["a b"], "tag": ["x", "y"], "plus": ["1 2"]})
        );
    }
}
