//! WireMock stub mappings → Pact V4 interactions with matching rules.
//!
//! Input: a `mappings` directory (every `*.json` below it, in name order), a WireMock root
//! holding `mappings/` and `__files/`, or one file. A file holds one mapping or
//! `{"mappings": [...]}`. `bodyFileName` is read from the `__files` directory beside the
//! mappings directory.
//!
//! Order: WireMock tries lower `priority` numbers first (default 5); envd prefers, among
//! the interactions that match, the one with fewest rules, then file order. Interactions
//! are written sorted by priority (stable), and every pair where envd would choose
//! differently is reported. Scenarios become identical requests in state order, which the
//! stub answers in turn.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{
    anchored, contains_regex, decode_path, example_for, kind, loads, query_json, read_json,
    regex_rule, rule, ImportError, Imported, Report, Skipped,
};
use crate::recording::{body_json, canonical_header_name, Recording, Redaction, HOP_BY_HOP};

/// WireMock's priority when a mapping gives none.
const DEFAULT_PRIORITY: i64 = 5;

/// The state every WireMock scenario starts in.
const STARTED: &str = "Started";

/// One mapping as written: its file, its JSON pointer there, and its JSON.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub file: PathBuf,
    pub pointer: String,
    pub json: Value,
}

impl Mapping {
    /// `FILE#/pointer "name"`: how reports name a mapping.
    fn label(&self) -> String {
        let mut label = format!("{}#{}", self.file.display(), self.pointer);
        if let Some(name) = self.json.get("name").and_then(Value::as_str) {
            label.push_str(&format!(" {name:?}"));
        } else if let Some(id) = self
            .json
            .get("id")
            .or_else(|| self.json.get("uuid"))
            .and_then(Value::as_str)
        {
            label.push_str(&format!(" (id {id})"));
        }
        label
    }

    fn shape(&self, at: &str, expected: &str, found: &Value) -> ImportError {
        ImportError::shape(
            &self.file,
            &format!("{}{at}", self.pointer),
            expected,
            found,
        )
    }
}

/// Reads a body file named by `bodyFileName`; `Err` holds the full path and the cause.
pub type BodyFiles<'a> = dyn Fn(&str) -> Result<Vec<u8>, (PathBuf, std::io::Error)> + 'a;

/// Imports the mappings at `input` (a directory or a file).
pub fn import(input: &Path, consumer: &str, provider: &str) -> Result<Imported, ImportError> {
    let (files, bodies_dir) = locate(input)?;
    let mut mappings = Vec::new();
    for file in files {
        let value = read_json(&file)?;
        let before = mappings.len();
        mappings.extend(split(&file, value)?);
        tracing::debug!(file = %file.display(), mappings = mappings.len() - before, "read WireMock mappings");
    }
    let bodies = |name: &str| {
        let path = bodies_dir.join(name);
        std::fs::read(&path).map_err(|error| (path, error))
    };
    convert(&mappings, &bodies, consumer, provider)
}

/// The mapping files under `input` and the `__files` directory their bodies come from.
fn locate(input: &Path) -> Result<(Vec<PathBuf>, PathBuf), ImportError> {
    let metadata = std::fs::metadata(input).map_err(|source| ImportError::Read {
        path: input.to_owned(),
        source,
    })?;
    let beside = |dir: &Path| {
        dir.parent()
            .map(|parent| parent.join("__files"))
            .unwrap_or_else(|| PathBuf::from("__files"))
    };
    if !metadata.is_dir() {
        let dir = input.parent().unwrap_or(Path::new("."));
        return Ok((vec![input.to_owned()], beside(dir)));
    }
    // A WireMock root: mappings/ and __files/ side by side.
    let (dir, bodies) = if input.join("mappings").is_dir() {
        (input.join("mappings"), input.join("__files"))
    } else {
        (input.to_owned(), beside(input))
    };
    let mut files = Vec::new();
    collect_json_files(&dir, &mut files)?;
    if files.is_empty() {
        return Err(ImportError::EmptyDirectory { path: dir });
    }
    Ok((files, bodies))
}

fn collect_json_files(dir: &Path, into: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    crate::contract::json_files_below(dir, into)
        .map_err(|(path, source)| ImportError::Read { path, source })
}

/// The mappings of one file: `{"mappings": [...]}` or a single mapping.
pub fn split(file: &Path, value: Value) -> Result<Vec<Mapping>, ImportError> {
    let expected =
        "a WireMock mapping (an object with request and response) or {\"mappings\": [...]}";
    match value {
        Value::Object(mut top) if top.contains_key("mappings") => {
            match top.remove("mappings").unwrap_or_default() {
                Value::Array(list) => Ok(list
                    .into_iter()
                    .enumerate()
                    .map(|(index, json)| Mapping {
                        file: file.to_owned(),
                        pointer: format!("/mappings/{index}"),
                        json,
                    })
                    .collect()),
                other => Err(ImportError::shape(file, "/mappings", "an array", &other)),
            }
        }
        Value::Object(top) if top.contains_key("request") => Ok(vec![Mapping {
            file: file.to_owned(),
            pointer: String::new(),
            json: Value::Object(top),
        }]),
        other => Err(ImportError::shape(file, "", expected, &other)),
    }
}

/// A mapping made into an interaction, with what ordering needs to know about it.
#[derive(Debug)]
struct Converted {
    label: String,
    interaction: Value,
    priority: i64,
    scenario: Option<Scenario>,
}

#[derive(Debug, Clone)]
struct Scenario {
    name: String,
    required: Option<String>,
    new_state: Option<String>,
}

/// Converts mappings into a recording; `bodies` reads `bodyFileName`s.
pub fn convert(
    mappings: &[Mapping],
    bodies: &BodyFiles<'_>,
    consumer: &str,
    provider: &str,
) -> Result<Imported, ImportError> {
    let mut skipped = Vec::new();
    let mut converted = Vec::new();
    for mapping in mappings {
        let mut notes = Vec::new();
        let result = interaction(mapping, bodies, &mut notes)?;
        let label = mapping.label();
        let imported = match result {
            Some(interaction) => match loads(&interaction) {
                Ok(()) => Some(interaction),
                Err(reason) => {
                    notes.push(format!("not imported: envd cannot serve it: {reason}"));
                    None
                }
            },
            None => None,
        };
        skipped.extend(notes.into_iter().map(|reason| Skipped {
            source: label.clone(),
            reason,
        }));
        if let Some(interaction) = imported {
            let priority = match mapping.json.get("priority") {
                None => DEFAULT_PRIORITY,
                Some(priority) => priority
                    .as_i64()
                    .ok_or_else(|| mapping.shape("/priority", "an integer", priority))?,
            };
            converted.push(Converted {
                label,
                priority,
                scenario: scenario(&mapping.json),
                interaction,
            });
        }
    }
    let mut ordered = order_scenarios(converted, &mut skipped);
    ordered.sort_by_key(|one| one.priority);
    report_priorities(&ordered, &mut skipped);
    report_repeats(&ordered, &mut skipped);
    let mut recording = Recording::new(consumer, provider);
    for one in ordered {
        if !recording.push(one.interaction) {
            skipped.push(Skipped {
                source: one.label,
                reason: "not imported: identical to an earlier mapping".into(),
            });
        }
    }
    Ok(Imported {
        report: Report {
            interactions: recording.len(),
            hosts: Vec::new(),
            skipped,
        },
        recording,
    })
}

fn scenario(mapping: &Value) -> Option<Scenario> {
    let text = |key: &str| mapping.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(Scenario {
        name: text("scenarioName")?,
        required: text("requiredScenarioState"),
        new_state: text("newScenarioState"),
    })
}

/// The Pact V4 interaction for one mapping, or `None` when it cannot be imported at all;
/// `notes` gets everything left out. Malformed mappings are errors.
fn interaction(
    mapping: &Mapping,
    bodies: &BodyFiles<'_>,
    notes: &mut Vec<String>,
) -> Result<Option<Value>, ImportError> {
    let json = &mapping.json;
    let Some(request) = json.get("request").and_then(Value::as_object) else {
        return Err(mapping.shape(
            "/request",
            "an object",
            json.get("request").unwrap_or(&Value::Null),
        ));
    };
    let Some(response) = json.get("response").and_then(Value::as_object) else {
        return Err(mapping.shape(
            "/response",
            "an object",
            json.get("response").unwrap_or(&Value::Null),
        ));
    };
    for (key, why) in [
        (
            "fault",
            "a fault (a broken connection) cannot be served from a recording",
        ),
        (
            "proxyBaseUrl",
            "a proxy mapping forwards to another server; record it with `envd proxy` instead",
        ),
    ] {
        if response.contains_key(key) {
            notes.push(format!("not imported: response.{key}: {why}"));
            return Ok(None);
        }
    }
    let Some(request_json) = request_part(mapping, request, notes)? else {
        return Ok(None);
    };
    let response_json = response_part(mapping, response, bodies, notes)?;
    let description = json
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{} {}",
                request_json["method"].as_str().unwrap_or_default(),
                request_json["path"].as_str().unwrap_or_default()
            )
        });
    let description = match scenario(json) {
        Some(Scenario { name, required, .. }) => format!(
            "{description} (scenario {name:?}, state {:?})",
            required.as_deref().unwrap_or("any")
        ),
        None => description,
    };
    let mut interaction = json!({
        "type": "Synchronous/HTTP",
        "description": description,
        "request": request_json,
        "response": response_json,
    });
    if let Some(delay) = response.get("fixedDelayMilliseconds") {
        match delay.as_f64() {
            Some(ms) => interaction["metadata"] = json!({"envd": {"latencyMs": ms}}),
            None => {
                return Err(mapping.shape("/response/fixedDelayMilliseconds", "a number", delay))
            }
        }
    }
    for (key, why) in [
        (
            "delayDistribution",
            "random delays are not replayed; no latency recorded",
        ),
        ("chunkedDribbleDelay", "dribbled bodies are served whole"),
        (
            "transformers",
            "response templates are served as written, not rendered",
        ),
        (
            "transformerParameters",
            "response templates are served as written, not rendered",
        ),
        ("statusMessage", "a custom reason phrase is not served"),
    ] {
        if response.contains_key(key) {
            notes.push(format!("response.{key}: {why}"));
        }
    }
    redact(&mut interaction, notes);
    for key in ["postServeActions", "serveEventListeners"] {
        if json.get(key).is_some() {
            notes.push(format!("{key}: webhooks and listeners are not run"));
        }
    }
    Ok(Some(interaction))
}

/// Secret headers (Authorization, Cookie, …) written in a mapping are redacted like
/// recorded ones: secrets never reach a recording. The request then accepts any value.
fn redact(interaction: &mut Value, notes: &mut Vec<String>) {
    let redaction = Redaction::default();
    for part in ["request", "response"] {
        if let Some(headers) = interaction[part]["headers"].as_object() {
            for name in headers.keys() {
                if redaction.is_secret_header(&name.to_ascii_lowercase()) {
                    notes.push(format!(
                        "{part}.headers.{name}: a secret header; its value is redacted and any value matches"
                    ));
                }
            }
        }
    }
    redaction.apply(interaction);
}

fn request_part(
    mapping: &Mapping,
    request: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<Option<Map<String, Value>>, ImportError> {
    let mut part = Map::new();
    let mut rules = Map::new();
    let method = match request.get("method") {
        None => "ANY".to_owned(),
        Some(Value::String(method)) => method.to_ascii_uppercase(),
        Some(other) => return Err(mapping.shape("/request/method", "a string", other)),
    };
    let method = if method == "ANY" {
        notes.push(
            "request.method ANY imported as GET: requests with other methods will not match".into(),
        );
        "GET".to_owned()
    } else {
        method
    };
    part.insert("method".into(), json!(method));

    let text = |key: &str| -> Result<Option<&str>, ImportError> {
        match request.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(mapping.shape(&format!("/request/{key}"), "a string", other)),
        }
    };
    if let Some(url) = text("url")? {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        part.insert("path".into(), json!(decode_path(path)));
        if !query.is_empty() {
            part.insert("query".into(), Value::Object(query_json(query)));
        }
    } else if let Some(path) = text("urlPath")? {
        part.insert("path".into(), json!(decode_path(path)));
    } else {
        let (key, pattern) = match (text("urlPathPattern")?, text("urlPattern")?) {
            (Some(pattern), _) => ("urlPathPattern", pattern.to_owned()),
            (None, Some(pattern)) => ("urlPattern", pattern.to_owned()),
            // No URL at all: WireMock matches every path.
            (None, None) => ("url", ".*".to_owned()),
        };
        let pattern = match pattern.split_once("\\?") {
            Some((path, query)) if key == "urlPattern" => {
                notes.push(format!(
                    "request.urlPattern: the query part \\?{query} cannot be expressed as a path rule; only the path is matched"
                ));
                path.to_owned()
            }
            _ => pattern,
        };
        let regex = anchored(&pattern);
        // A path starts with /; `.*` alone would give the empty string.
        let example = example_for(&regex).and_then(|example| {
            let compiled = regex::Regex::new(&regex).map_err(|error| error.to_string())?;
            [example.clone(), format!("/{example}")]
                .into_iter()
                .find(|candidate| candidate.starts_with('/') && compiled.is_match(candidate))
                .ok_or_else(|| format!("no example path starting with / matches {pattern:?}"))
        });
        match example {
            Ok(example) => {
                part.insert("path".into(), json!(example));
                rules.insert("path".into(), regex_rule(&regex));
            }
            Err(reason) => {
                notes.push(format!("not imported: request.{key}: {reason}"));
                return Ok(None);
            }
        }
    }

    let mut query = part
        .remove("query")
        .and_then(|query| query.as_object().cloned())
        .unwrap_or_default();
    let mut query_rules = Map::new();
    if let Some(parameters) = request.get("queryParameters") {
        let Some(parameters) = parameters.as_object() else {
            return Err(mapping.shape("/request/queryParameters", "an object", parameters));
        };
        for (name, spec) in parameters {
            match value_matcher(spec) {
                Ok((example, rule)) => {
                    query.insert(name.clone(), json!([example]));
                    if let Some(rule) = rule {
                        query_rules.insert(name.clone(), rule);
                    }
                }
                Err(reason) => notes.push(format!("request.queryParameters.{name}: {reason}")),
            }
        }
    }
    if !query.is_empty() {
        part.insert("query".into(), Value::Object(query));
    }
    if !query_rules.is_empty() {
        rules.insert("query".into(), Value::Object(query_rules));
    }

    let mut headers = Map::new();
    let mut header_rules = Map::new();
    if let Some(specs) = request.get("headers") {
        let Some(specs) = specs.as_object() else {
            return Err(mapping.shape("/request/headers", "an object", specs));
        };
        for (name, spec) in specs {
            let name = canonical_header_name(name);
            match value_matcher(spec) {
                Ok((example, rule)) => {
                    headers.insert(name.clone(), json!([example]));
                    if let Some(rule) = rule {
                        header_rules.insert(name, rule);
                    }
                }
                Err(reason) => notes.push(format!("request.headers.{name}: {reason}")),
            }
        }
    }
    for (key, what) in [
        ("cookies", "cookies"),
        ("basicAuthCredentials", "basic auth credentials"),
        ("formParameters", "form parameters"),
        ("multipartPatterns", "multipart patterns"),
        ("customMatcher", "a custom matcher"),
        ("host", "a host"),
        ("port", "a port"),
        ("scheme", "a scheme"),
        ("clientIp", "a client IP"),
        ("pathParameters", "path parameters"),
    ] {
        if request.contains_key(key) {
            notes.push(format!(
                "request.{key}: {what} cannot be expressed; not checked"
            ));
        }
    }
    let content_type = headers
        .get("Content-Type")
        .and_then(|values| values[0].as_str())
        .map(str::to_owned);
    if !headers.is_empty() {
        part.insert("headers".into(), Value::Object(headers));
    }
    if !header_rules.is_empty() {
        rules.insert("header".into(), Value::Object(header_rules));
    }

    if let Some(patterns) = request.get("bodyPatterns") {
        let Some(patterns) = patterns.as_array() else {
            return Err(mapping.shape("/request/bodyPatterns", "an array", patterns));
        };
        if let Some((body, body_rules)) = body_patterns(patterns, content_type.as_deref(), notes) {
            part.insert("body".into(), body);
            if !body_rules.is_empty() {
                rules.insert("body".into(), Value::Object(body_rules));
            }
        }
    }
    if !rules.is_empty() {
        part.insert("matchingRules".into(), Value::Object(rules));
    }
    Ok(Some(part))
}

/// A header or query parameter matcher: the example value and the rule (if not literal).
fn value_matcher(spec: &Value) -> Result<(String, Option<Value>), String> {
    let Some(spec) = spec.as_object() else {
        return Err(format!("expected a matcher object, found {}", kind(spec)));
    };
    let case_insensitive = spec
        .get("caseInsensitive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(text) = spec.get("equalTo").and_then(Value::as_str) {
        let rule = case_insensitive.then(|| regex_rule(&format!("(?i)^{}$", regex::escape(text))));
        return Ok((text.to_owned(), rule));
    }
    if let Some(pattern) = spec.get("matches").and_then(Value::as_str) {
        let regex = anchored(pattern);
        let example = example_for(&regex)?;
        return Ok((example, Some(regex_rule(&regex))));
    }
    if let Some(text) = spec.get("contains").and_then(Value::as_str) {
        return Ok((text.to_owned(), Some(regex_rule(&contains_regex(text)))));
    }
    let names: Vec<&str> = spec.keys().map(String::as_str).collect();
    Err(format!(
        "matcher {} cannot be expressed; not checked",
        names.join(", ")
    ))
}

/// The request body and its rules from `bodyPatterns`; patterns that cannot be expressed
/// are noted and left out.
fn body_patterns(
    patterns: &[Value],
    content_type: Option<&str>,
    notes: &mut Vec<String>,
) -> Option<(Value, Map<String, Value>)> {
    let mut body: Option<Value> = None;
    let mut rules = Map::new();
    let mut json_body: Option<Value> = None;
    // Paths matchesJsonPath made fields of the expected body.
    let mut json_paths: Vec<String> = Vec::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let at = format!("request.bodyPatterns[{index}]");
        if let Some(expected) = pattern.get("equalToJson") {
            let value = match expected {
                Value::String(text) => match serde_json::from_str::<Value>(text) {
                    Ok(value) => value,
                    Err(error) => {
                        notes.push(format!(
                            "{at}.equalToJson is not JSON ({error}); not checked"
                        ));
                        continue;
                    }
                },
                other => other.clone(),
            };
            for option in ["ignoreExtraElements", "ignoreArrayOrder"] {
                if pattern.get(option).and_then(Value::as_bool) == Some(true) {
                    notes.push(format!(
                        "{at}.{option} cannot be expressed: the body must equal the JSON exactly"
                    ));
                }
            }
            json_body = Some(value);
        } else if let Some(expression) = pattern.get("matchesJsonPath") {
            match json_path(expression) {
                Ok((path, tokens, value, rule)) => {
                    let skeleton = json_body.get_or_insert_with(|| json!({}));
                    if insert_at(skeleton, &tokens, value) {
                        if let Some(rule) = rule {
                            rules.insert(path.clone(), rule);
                        }
                        json_paths.push(path);
                    } else {
                        notes.push(format!(
                            "{at}.matchesJsonPath {path} conflicts with an earlier body pattern; not checked"
                        ));
                    }
                }
                Err(reason) => notes.push(format!("{at}.matchesJsonPath: {reason}; not checked")),
            }
        } else if let Some(text) = pattern.get("equalTo").and_then(Value::as_str) {
            body = Some(body_json(
                text.as_bytes(),
                content_type.or(Some("text/plain")),
            ));
        } else {
            let names: Vec<&str> = pattern
                .as_object()
                .map(|fields| fields.keys().map(String::as_str).collect())
                .unwrap_or_default();
            notes.push(format!(
                "{at} {} cannot be expressed as a Pact body rule; not checked",
                names.join(", ")
            ));
        }
    }
    if !json_paths.is_empty() {
        notes.push(format!(
            "request.bodyPatterns matchesJsonPath {}: imported as the fields of an expected body (a bare path as any string); a request body with other fields as well will not match",
            json_paths.join(", ")
        ));
    }
    if let Some(value) = json_body {
        body = Some(json!({
            "content": value,
            "contentType": content_type.filter(|ct| ct.contains("json")).unwrap_or("application/json"),
            "encoded": false,
        }));
    }
    body.map(|body| (body, rules))
}

/// One step of a simple JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A `matchesJsonPath` pattern: the normalized path, its steps, the value placed there and
/// its rule.
fn json_path(pattern: &Value) -> Result<(String, Vec<Step>, Value, Option<Value>), String> {
    let (expression, sub) = match pattern {
        Value::String(expression) => (expression.as_str(), None),
        Value::Object(fields) => match fields.get("expression").and_then(Value::as_str) {
            Some(expression) => (expression, Some(fields)),
            None => return Err("expected an expression".into()),
        },
        other => return Err(format!("expected a JSON path, found {}", kind(other))),
    };
    let steps = parse_json_path(expression).ok_or_else(|| {
        format!("{expression:?} is not a simple path such as $.a.b or $.items[0].id")
    })?;
    let path = steps.iter().fold("$".to_owned(), |path, step| match step {
        Step::Field(name) => format!("{path}.{name}"),
        Step::Index(index) => format!("{path}[{index}]"),
    });
    let Some(sub) = sub else {
        return Ok((
            path,
            steps,
            json!("<any>"),
            Some(rule(json!({"match": "type"}))),
        ));
    };
    if let Some(text) = sub.get("equalTo").and_then(Value::as_str) {
        return Ok((path, steps, json!(text), None));
    }
    if let Some(pattern) = sub.get("matches").and_then(Value::as_str) {
        let regex = anchored(pattern);
        let example = example_for(&regex)?;
        return Ok((path, steps, json!(example), Some(regex_rule(&regex))));
    }
    if let Some(text) = sub.get("contains").and_then(Value::as_str) {
        return Ok((
            path,
            steps,
            json!(text),
            Some(regex_rule(&contains_regex(text))),
        ));
    }
    Err(format!(
        "{expression}: this sub-matcher cannot be expressed"
    ))
}

/// `$.a.b`, `$.items[0].id`, `$['a']`; `None` for filters, wildcards and recursion.
fn parse_json_path(expression: &str) -> Option<Vec<Step>> {
    let mut rest = expression.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            steps.push(Step::Field(after[..end].to_owned()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            steps.push(Step::Index(after[..end].trim().parse().ok()?));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            steps.push(Step::Field(name.to_owned()));
            rest = &after[end..];
        } else {
            return None;
        }
    }
    (!steps.is_empty()).then_some(steps)
}

/// Places `value` at `steps` under `into`, creating objects and arrays on the way; false
/// when something else is already there.
fn insert_at(into: &mut Value, steps: &[Step], value: Value) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        if into.is_null() || *into == value {
            *into = value;
            return true;
        }
        return false;
    };
    match step {
        Step::Field(name) => {
            if into.is_null() {
                *into = json!({});
            }
            match into {
                Value::Object(fields) => insert_at(
                    fields.entry(name.clone()).or_insert(Value::Null),
                    rest,
                    value,
                ),
                _ => false,
            }
        }
        Step::Index(index) => {
            if into.is_null() {
                *into = json!([]);
            }
            match into {
                Value::Array(items) => {
                    while items.len() <= *index {
                        items.push(json!("<any>"));
                    }
                    if items[*index] == json!("<any>") {
                        items[*index] = Value::Null;
                    }
                    insert_at(&mut items[*index], rest, value)
                }
                _ => false,
            }
        }
    }
}

fn response_part(
    mapping: &Mapping,
    response: &Map<String, Value>,
    bodies: &BodyFiles<'_>,
    notes: &mut Vec<String>,
) -> Result<Value, ImportError> {
    let status = match response.get("status") {
        None => 200,
        Some(status) => match status.as_u64().filter(|code| (100..=999).contains(code)) {
            Some(code) => code,
            None => return Err(mapping.shape("/response/status", "an HTTP status code", status)),
        },
    };
    let mut part = Map::new();
    part.insert("status".into(), json!(status));
    let mut headers = Map::new();
    if let Some(specs) = response.get("headers") {
        let Some(specs) = specs.as_object() else {
            return Err(mapping.shape("/response/headers", "an object", specs));
        };
        for (name, value) in specs {
            let values = match value {
                Value::String(text) => vec![json!(text)],
                Value::Array(list) if list.iter().all(Value::is_string) => list.clone(),
                other => {
                    return Err(mapping.shape(
                        &format!("/response/headers/{}", pointer_escape(name)),
                        "a string or an array of strings",
                        other,
                    ))
                }
            };
            if HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
                notes.push(format!(
                    "response.headers.{name}: a hop-by-hop header; the stub sets its own"
                ));
                continue;
            }
            headers.insert(canonical_header_name(name), Value::Array(values));
        }
    }
    let content_type = headers
        .get("Content-Type")
        .and_then(|values| values[0].as_str())
        .map(str::to_owned);
    let body = if let Some(value) = response.get("jsonBody") {
        Some(json!({
            "content": value,
            "contentType": content_type.clone().unwrap_or_else(|| "application/json".into()),
            "encoded": false,
        }))
    } else if let Some(text) = response.get("body") {
        match text {
            Value::String(text) => Some(body_json(text.as_bytes(), content_type.as_deref())),
            other => return Err(mapping.shape("/response/body", "a string", other)),
        }
    } else if let Some(encoded) = response.get("base64Body") {
        let bytes = encoded
            .as_str()
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or_else(|| mapping.shape("/response/base64Body", "base64 text", encoded))?;
        Some(body_json(&bytes, content_type.as_deref()))
    } else if let Some(name) = response.get("bodyFileName") {
        let Some(name) = name.as_str() else {
            return Err(mapping.shape("/response/bodyFileName", "a string", name));
        };
        if name.contains("{{") {
            notes.push(format!(
                "response.bodyFileName {name:?} is a template; not imported, the body is empty"
            ));
            None
        } else {
            let bytes = bodies(name).map_err(|(body_file, source)| ImportError::BodyFile {
                path: mapping.file.clone(),
                pointer: format!("{}/response/bodyFileName", mapping.pointer),
                body_file,
                source,
            })?;
            let guessed = content_type.clone().or_else(|| guess_content_type(name));
            Some(body_json(&bytes, guessed.as_deref()))
        }
    } else {
        None
    };
    if !headers.is_empty() {
        part.insert("headers".into(), Value::Object(headers));
    }
    if let Some(body) = body {
        part.insert("body".into(), body);
    }
    Ok(Value::Object(part))
}

fn guess_content_type(name: &str) -> Option<String> {
    let extension = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    let known = match extension.as_str() {
        "json" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        _ => return None,
    };
    Some(known.to_owned())
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Scenario mappings in state order: each scenario's states are walked from `Started`
/// following `newScenarioState` (breadth first), and its mappings are placed where its
/// first one stood, sorted by the position of their required state. Identical requests then form a
/// sequence the stub answers in turn. What that cannot reproduce is reported.
fn order_scenarios(converted: Vec<Converted>, skipped: &mut Vec<Skipped>) -> Vec<Converted> {
    let mut names: Vec<String> = Vec::new();
    for one in &converted {
        if let Some(scenario) = &one.scenario {
            if !names.contains(&scenario.name) {
                names.push(scenario.name.clone());
            }
        }
    }
    if names.is_empty() {
        return converted;
    }
    let mut slots: Vec<Option<Converted>> = converted.into_iter().map(Some).collect();
    let mut placed: Vec<(usize, Vec<Converted>)> = Vec::new();
    for name in &names {
        let members: Vec<usize> = slots
            .iter()
            .enumerate()
            .filter(|(_, one)| {
                one.as_ref()
                    .and_then(|one| one.scenario.as_ref())
                    .is_some_and(|scenario| &scenario.name == name)
            })
            .map(|(at, _)| at)
            .collect();
        let first = members[0];
        let mut group: Vec<Converted> = members.iter().filter_map(|&at| slots[at].take()).collect();
        // The states in the order they can be reached from Started (breadth first).
        let mut chain = vec![STARTED.to_owned()];
        let mut at = 0;
        while at < chain.len() {
            let current = chain[at].clone();
            for one in &group {
                let Some(scenario) = one.scenario.as_ref() else {
                    continue;
                };
                if scenario.required.as_deref() != Some(current.as_str()) {
                    continue;
                }
                let Some(next) = &scenario.new_state else {
                    continue;
                };
                match chain.iter().position(|known| known == next) {
                    None => chain.push(next.clone()),
                    Some(back) if back < at => skipped.push(Skipped {
                        source: one.label.clone(),
                        reason: format!(
                            "scenario {name:?} goes back to state {next:?}: the stub does not cycle, it repeats the last answer"
                        ),
                    }),
                    Some(_) => {}
                }
            }
            at += 1;
        }
        let position = |one: &Converted| {
            let required = one.scenario.as_ref().and_then(|s| s.required.as_deref());
            match required {
                None => Some(0),
                Some(state) => chain.iter().position(|known| known == state),
            }
        };
        let mut kept = Vec::new();
        for one in group.drain(..) {
            match position(&one) {
                Some(at) => kept.push((at, one)),
                None => skipped.push(Skipped {
                    source: one.label.clone(),
                    reason: format!(
                        "not imported: scenario {name:?} never reaches state {:?} from {STARTED:?}",
                        one.scenario
                            .as_ref()
                            .and_then(|s| s.required.clone())
                            .unwrap_or_default()
                    ),
                }),
            }
        }
        kept.sort_by_key(|(at, _)| *at);
        // A transition made by one request that changes what another answers cannot be
        // replayed: the stub's sequences advance per request.
        for (at, one) in &kept {
            let Some(new_state) = one.scenario.as_ref().and_then(|s| s.new_state.as_ref()) else {
                continue;
            };
            let others = kept.iter().filter(|(later, other)| {
                later > at
                    && other.scenario.as_ref().and_then(|s| s.required.as_ref()) == Some(new_state)
                    && other.interaction["request"] != one.interaction["request"]
            });
            for (_, other) in others {
                skipped.push(Skipped {
                    source: other.label.clone(),
                    reason: format!(
                        "scenario {name:?}: state {new_state:?} is reached by another request ({}); the stub cannot let one request change another's answer, so this one answers in turn after the earlier states' answers to the same request",
                        one.label
                    ),
                });
            }
        }
        placed.push((first, kept.into_iter().map(|(_, one)| one).collect()));
    }
    let mut ordered = Vec::new();
    for (at, slot) in slots.into_iter().enumerate() {
        if let Some(index) = placed.iter().position(|(first, _)| *first == at) {
            let (_, group) = placed.swap_remove(index);
            ordered.extend(group);
        }
        if let Some(one) = slot {
            ordered.push(one);
        }
    }
    ordered
}

/// Reports each pair where WireMock's priority and envd's choice (fewest rules, then
/// order) can disagree: the preferred mapping has more rules than a lower-priority one
/// that can match the same requests.
fn report_priorities(ordered: &[Converted], skipped: &mut Vec<Skipped>) {
    for (at, preferred) in ordered.iter().enumerate() {
        for other in &ordered[at + 1..] {
            if other.priority <= preferred.priority {
                continue;
            }
            let (a, b) = (
                &preferred.interaction["request"],
                &other.interaction["request"],
            );
            if a["method"] != b["method"] || !may_overlap(a, b) {
                continue;
            }
            if rule_count(a) > rule_count(b) {
                skipped.push(Skipped {
                    source: preferred.label.clone(),
                    reason: format!(
                        "priority {} over {} (priority {}) cannot be preserved: when both match, envd answers with the one with fewer matching rules",
                        preferred.priority, other.label, other.priority
                    ),
                });
            }
        }
    }
}

/// Outside scenarios, WireMock answers identical requests with one mapping every time;
/// the stub answers them in turn. Each such repeat is reported.
fn report_repeats(ordered: &[Converted], skipped: &mut Vec<Skipped>) {
    for (at, one) in ordered.iter().enumerate() {
        if one.scenario.is_some() {
            continue;
        }
        let earlier = ordered[..at].iter().find(|earlier| {
            earlier.scenario.is_none()
                && earlier.interaction["request"] == one.interaction["request"]
                && earlier.interaction["response"] != one.interaction["response"]
        });
        if let Some(earlier) = earlier {
            skipped.push(Skipped {
                source: one.label.clone(),
                reason: format!(
                    "the same request as {}: the stub answers them in turn, the last repeating, where WireMock always answers with one of them",
                    earlier.label
                ),
            });
        }
    }
}

/// Whether two requests' paths can be the same.
fn may_overlap(a: &Value, b: &Value) -> bool {
    let regex = |request: &Value| {
        request
            .pointer("/matchingRules/path/matchers/0/regex")
            .and_then(Value::as_str)
            .and_then(|regex| regex::Regex::new(regex).ok())
    };
    let path = |request: &Value| request["path"].as_str().unwrap_or_default().to_owned();
    match (regex(a), regex(b)) {
        (None, None) => path(a) == path(b),
        (Some(regex), None) => regex.is_match(&path(b)),
        (None, Some(regex)) => regex.is_match(&path(a)),
        (Some(_), Some(_)) => true,
    }
}

/// The matchers of a request, counted the way the stub ranks interactions.
fn rule_count(request: &Value) -> usize {
    fn count(value: &Value) -> usize {
        match value {
            Value::Object(fields) => match fields.get("matchers") {
                Some(Value::Array(matchers)) => matchers.len(),
                _ => fields.values().map(count).sum(),
            },
            _ => 0,
        }
    }
    request.get("matchingRules").map(count).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Imports one mapping file (`file`, with `__files` bodies) and compares the
    /// interactions written and what was reported: `(mapping pointer, fragment of the
    /// reason)`, in order.
    fn check(file: Value, bodies: &[(&str, &str)], expected: Value, reported: &[(&str, &str)]) {
        let mappings = split(Path::new("mappings/m.json"), file).expect("mappings");
        let read = |name: &str| {
            bodies
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, text)| text.as_bytes().to_vec())
                .ok_or_else(|| {
                    (
                        PathBuf::from(format!("__files/{name}")),
                        std::io::Error::from(std::io::ErrorKind::NotFound),
                    )
                })
        };
        let imported = convert(&mappings, &read, "shop", "orders").expect("imports");
        let interactions = imported.recording.to_json()["interactions"].clone();
        assert_eq!(
            interactions,
            expected,
            "{}",
            serde_json::to_string_pretty(&interactions).unwrap()
        );
        let found: Vec<(String, String)> = imported
            .report
            .skipped
            .iter()
            .map(|skipped| (skipped.source.clone(), skipped.reason.clone()))
            .collect();
        assert_eq!(found.len(), reported.len(), "{found:#?}");
        for ((source, reason), (pointer, fragment)) in found.iter().zip(reported) {
            assert!(
                source.starts_with(&format!("mappings/m.json#{pointer}")),
                "{source} is not {pointer}"
            );
            assert!(reason.contains(fragment), "{reason:?} lacks {fragment:?}");
        }
        assert_eq!(
            imported.report.interactions,
            expected.as_array().unwrap().len()
        );
    }

    fn regex(regex: &str) -> Value {
        json!({"combine": "AND", "matchers": [{"match": "regex", "regex": regex}]})
    }

    #[test]
    fn exact_urls_with_a_delay() {
        check(
            json!({
                "id": "3f1c2a8e-0d1b-4c55-9a0e-5b8f6c1d2e01",
                "name": "get order 42",
                "request": {"method": "GET", "url": "/api/orders/42?expand=items&expand=customer"},
                "response": {"status": 200, "headers": {"Content-Type": "application/json"},
                             "jsonBody": {"id": 42, "status": "SHIPPED"}, "fixedDelayMilliseconds": 120}
            }),
            &[],
            json!([{
                "type": "Synchronous/HTTP",
                "description": "get order 42",
                "request": {"method": "GET", "path": "/api/orders/42",
                            "query": {"expand": ["items", "customer"]}},
                "response": {"status": 200, "headers": {"Content-Type": ["application/json"]},
                             "body": {"content": {"id": 42, "status": "SHIPPED"},
                                      "contentType": "application/json", "encoded": false}},
                "metadata": {"envd": {"latencyMs": 120.0}}
            }]),
            &[],
        );
    }

    #[test]
    fn path_patterns_get_a_regex_rule_an_example_and_body_files() {
        check(
            json!({"mappings": [{
                "request": {"method": "GET", "urlPathPattern": "/api/orders/[0-9]+",
                            "headers": {"Accept": {"contains": "json"},
                                        "x-tenant": {"equalTo": "ACME", "caseInsensitive": true}},
                            "queryParameters": {"view": {"matches": "full|summary"}}},
                "response": {"status": 200, "bodyFileName": "order.json"}
            }]}),
            &[("order.json", r#"{"id": 7}"#)],
            json!([{
                "type": "Synchronous/HTTP",
                "description": "GET /api/orders/1",
                "request": {
                    "method": "GET", "path": "/api/orders/1",
                    "query": {"view": ["full"]},
                    "headers": {"Accept": ["json"], "X-Tenant": ["ACME"]},
                    "matchingRules": {
                        "path": regex("^(?:/api/orders/[0-9]+)$"),
                        "query": {"view": regex("^(?:full|summary)$")},
                        "header": {"Accept": regex(".*json.*"), "X-Tenant": regex("(?i)^ACME$")}
                    }
                },
                "response": {"status": 200, "body": {"content": {"id": 7},
                             "contentType": "application/json", "encoded": false}}
            }]),
            &[],
        );
    }

    #[test]
    fn json_paths_become_fields_of_an_expected_body() {
        check(
            json!({
                "name": "create order",
                "request": {"method": "POST", "urlPath": "/api/orders",
                            "headers": {"Content-Type": {"equalTo": "application/json"}},
                            "bodyPatterns": [
                                {"matchesJsonPath": "$.customer.id"},
                                {"matchesJsonPath": {"expression": "$.currency", "equalTo": "EUR"}},
                                {"matchesJsonPath": {"expression": "$.lines[0].sku", "matches": "SKU-[0-9]{3}"}},
                                {"matchesJsonPath": "$.lines[?(@.qty > 1)]"}
                            ]},
                "response": {"status": 201, "headers": {"Location": "/api/orders/43"}}
            }),
            &[],
            json!([{
                "type": "Synchronous/HTTP",
                "description": "create order",
                "request": {
                    "method": "POST", "path": "/api/orders",
                    "headers": {"Content-Type": ["application/json"]},
                    "body": {"content": {"customer": {"id": "<any>"}, "currency": "EUR",
                                         "lines": [{"sku": "SKU-111"}]},
                             "contentType": "application/json", "encoded": false},
                    "matchingRules": {"body": {
                        "$.customer.id": {"combine": "AND", "matchers": [{"match": "type"}]},
                        "$.lines[0].sku": regex("^(?:SKU-[0-9]{3})$")
                    }}
                },
                "response": {"status": 201, "headers": {"Location": ["/api/orders/43"]}}
            }]),
            &[
                (
                    "",
                    "matchesJsonPath: \"$.lines[?(@.qty > 1)]\" is not a simple path",
                ),
                (
                    "",
                    "a request body with other fields as well will not match",
                ),
            ],
        );
    }

    #[test]
    fn what_cannot_be_expressed_is_reported_by_mapping() {
        check(
            json!({"mappings": [
                {"request": {"method": "ANY", "urlPattern": "/health.*"},
                 "response": {"status": 200, "body": "OK"}},
                {"id": "c0ffee", "request": {"method": "PUT", "urlPath": "/api/orders/42/cancel",
                             "cookies": {"session": {"matches": ".+"}},
                             "bodyPatterns": [{"equalToJson": "{\"reason\": \"customer\"}", "ignoreArrayOrder": true},
                                              {"contains": "customer"}]},
                 "response": {"status": 204}},
                {"request": {"method": "GET", "url": "/flaky"},
                 "response": {"fault": "CONNECTION_RESET_BY_PEER"}},
                {"request": {"method": "GET", "urlPattern": "/health.*"},
                 "response": {"status": 503}}
            ]}),
            &[],
            json!([
                {"type": "Synchronous/HTTP", "description": "GET /health",
                 "request": {"method": "GET", "path": "/health",
                             "matchingRules": {"path": regex("^(?:/health.*)$")}},
                 "response": {"status": 200, "body": {"content": "OK", "contentType": "text/plain", "encoded": false}}},
                {"type": "Synchronous/HTTP", "description": "PUT /api/orders/42/cancel",
                 "request": {"method": "PUT", "path": "/api/orders/42/cancel",
                             "body": {"content": {"reason": "customer"}, "contentType": "application/json", "encoded": false}},
                 "response": {"status": 204}},
                {"type": "Synchronous/HTTP", "description": "GET /health",
                 "request": {"method": "GET", "path": "/health",
                             "matchingRules": {"path": regex("^(?:/health.*)$")}},
                 "response": {"status": 503}}
            ]),
            &[
                ("/mappings/0", "method ANY imported as GET"),
                ("/mappings/1 (id c0ffee)", "request.cookies"),
                ("/mappings/1", "ignoreArrayOrder cannot be expressed"),
                (
                    "/mappings/1",
                    "bodyPatterns[1] contains cannot be expressed",
                ),
                ("/mappings/2", "not imported: response.fault"),
                ("/mappings/3", "the same request as mappings/m.json#/mappings/0: the stub answers them in turn"),
            ],
        );
    }

    #[test]
    fn a_mapping_without_a_url_matches_every_path() {
        check(
            json!({"request": {"method": "DELETE"}, "response": {"status": 405}}),
            &[],
            json!([{
                "type": "Synchronous/HTTP", "description": "DELETE /",
                "request": {"method": "DELETE", "path": "/", "matchingRules": {"path": regex("^(?:.*)$")}},
                "response": {"status": 405}
            }]),
            &[],
        );
    }

    #[test]
    fn secrets_written_in_mappings_are_redacted() {
        let any = json!({"combine": "AND", "matchers": [{"match": "type"}]});
        check(
            json!({"request": {"method": "GET", "url": "/me",
                               "headers": {"Authorization": {"equalTo": "Bearer s3cr3t"}}},
                   "response": {"status": 200, "headers": {"Set-Cookie": "sid=abc", "Content-Length": "2"},
                                "body": "{}"}}),
            &[],
            json!([{
                "type": "Synchronous/HTTP", "description": "GET /me",
                "request": {"method": "GET", "path": "/me", "headers": {"Authorization": ["<redacted>"]},
                            "matchingRules": {"header": {"Authorization": any}}},
                "response": {"status": 200, "headers": {"Set-Cookie": ["<redacted>"]},
                             "body": {"content": {}, "contentType": "application/json", "encoded": false},
                             "matchingRules": {"header": {"Set-Cookie": any}}}
            }]),
            &[
                ("", "response.headers.Content-Length: a hop-by-hop header"),
                ("", "request.headers.Authorization: a secret header"),
                ("", "response.headers.Set-Cookie: a secret header"),
            ],
        );
    }

    #[test]
    fn scenarios_become_sequences_in_state_order() {
        let todo = |state: &str, new: Option<&str>, method: &str, items: Value| {
            let mut mapping = json!({
                "scenarioName": "To do list", "requiredScenarioState": state,
                "request": {"method": method, "url": "/todo/items"},
                "response": {"status": 200, "jsonBody": {"items": items}}
            });
            if let Some(new) = new {
                mapping["newScenarioState"] = json!(new);
            }
            mapping
        };
        let interaction = |method: &str, state: &str, items: Value| {
            json!({
                "type": "Synchronous/HTTP",
                "description": format!("{method} /todo/items (scenario \"To do list\", state {state:?})"),
                "request": {"method": method, "path": "/todo/items"},
                "response": {"status": 200, "body": {"content": {"items": items},
                             "contentType": "application/json", "encoded": false}}
            })
        };
        check(
            json!({"mappings": [
                // Written out of order: the chain decides.
                todo("Two", None, "GET", json!(["milk", "eggs"])),
                todo("One", Some("Two"), "GET", json!(["milk"])),
                todo("Started", Some("One"), "GET", json!([])),
                todo("Nowhere", None, "GET", json!(["?"])),
                todo("Started", Some("Added"), "POST", json!([])),
                todo("Added", None, "DELETE", json!([])),
            ]}),
            &[],
            json!([
                interaction("GET", "Started", json!([])),
                interaction("POST", "Started", json!([])),
                interaction("GET", "One", json!(["milk"])),
                interaction("DELETE", "Added", json!([])),
                interaction("GET", "Two", json!(["milk", "eggs"])),
            ]),
            &[
                ("/mappings/3", "never reaches state \"Nowhere\""),
                (
                    "/mappings/5",
                    "reached by another request (mappings/m.json#/mappings/4)",
                ),
            ],
        );
    }

    #[test]
    fn priorities_order_interactions_and_conflicts_are_reported() {
        check(
            json!({"mappings": [
                {"priority": 10, "request": {"method": "GET", "urlPathPattern": "/api/.*"},
                 "response": {"status": 404}},
                {"priority": 1, "name": "special", "request": {"method": "GET", "urlPath": "/api/special",
                             "headers": {"Accept": {"equalTo": "application/json"}}},
                 "response": {"status": 200}},
                {"priority": 2, "name": "picky", "request": {"method": "GET", "urlPath": "/api/picky",
                             "headers": {"X-Mode": {"matches": "a|b"}, "X-Other": {"contains": "c"}}},
                 "response": {"status": 200}}
            ]}),
            &[],
            json!([
                {"type": "Synchronous/HTTP", "description": "special",
                 "request": {"method": "GET", "path": "/api/special", "headers": {"Accept": ["application/json"]}},
                 "response": {"status": 200}},
                {"type": "Synchronous/HTTP", "description": "picky",
                 "request": {"method": "GET", "path": "/api/picky", "headers": {"X-Mode": ["a"], "X-Other": ["c"]},
                             "matchingRules": {"header": {"X-Mode": regex("^(?:a|b)$"), "X-Other": regex(".*c.*")}}},
                 "response": {"status": 200}},
                {"type": "Synchronous/HTTP", "description": "GET /api/",
                 "request": {"method": "GET", "path": "/api/", "matchingRules": {"path": regex("^(?:/api/.*)$")}},
                 "response": {"status": 404}}
            ]),
            &[(
                "/mappings/2 \"picky\"",
                "priority 2 over mappings/m.json#/mappings/0 (priority 10) cannot be preserved",
            )],
        );
    }

    #[test]
    fn malformed_mappings_name_the_file_and_pointer() {
        let mappings = split(
            Path::new("m.json"),
            json!({"mappings": [{"request": {"url": "/a"}, "response": {"status": "ok"}}]}),
        )
        .unwrap();
        let error = convert(&mappings, &|_| unreachable!(), "c", "p").unwrap_err();
        assert_eq!(
            error.to_string(),
            "m.json#/mappings/0/response/status: expected an HTTP status code, found the string \"ok\""
        );
        let error = split(Path::new("m.json"), json!([1])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("m.json#: expected a WireMock mapping"),
            "{error}"
        );
        let mappings = split(
            Path::new("m.json"),
            json!({"request": {"url": "/a"}, "response": {"bodyFileName": "missing.json"}}),
        )
        .unwrap();
        let error = convert(
            &mappings,
            &|name| Err((PathBuf::from(name), std::io::ErrorKind::NotFound.into())),
            "c",
            "p",
        )
        .unwrap_err();
        assert!(
            error.to_string().starts_with(
                "m.json#/response/bodyFileName: cannot read the body file missing.json"
            ),
            "{error}"
        );
    }
}
