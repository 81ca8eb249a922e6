//! Reading Pact files (V1.1 to V4) into HTTP interactions.
//!
//! Every file is checked in full before anything is returned, so a caller either gets every
//! interaction of every file or an error naming the file and the JSON pointer of the first
//! problem. Each interaction is parsed on its own (raw JSON per interaction), so loading a
//! large contract never holds the whole document as a JSON tree.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pact_models::pact::{determine_spec_version, parse_meta_data};
use pact_models::sync_interaction::RequestResponseInteraction;
use pact_models::v4::http_parts::{HttpRequest, HttpResponse};
use pact_models::v4::synch_http::SynchronousHttp;
use pact_models::PactSpecification;
use serde_json::value::RawValue;
use serde_json::Value;

/// A map for loading only: keys are hashed per interaction, and nothing adversarial can
/// choose them, so a fast hash beats SipHash's flooding resistance here.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Why a set of contract files could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no Pact files (*.json) in this directory")]
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
        expected: &'static str,
        found: String,
    },
    #[error("{path}#{pointer}: unknown Pact specification version {version:?}, expected one of 1.0.0, 1.1.0, 2.0.0, 3.0.0, 4.0")]
    UnknownVersion {
        path: PathBuf,
        pointer: String,
        version: String,
    },
    #[error("{path}#{pointer}: not a valid Pact interaction: {message}")]
    Interaction {
        path: PathBuf,
        pointer: String,
        message: String,
    },
    #[error("{path}#{pointer}: duplicate of the identical interaction at {first}")]
    Duplicate {
        path: PathBuf,
        pointer: String,
        first: String,
    },
}

/// Where an interaction was written: a file and the interaction's place in it. Kept small
/// (a stub holds one per interaction); `pointer()` spells it as a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub file: Arc<Path>,
    /// Whether the interaction stands under `/messages` (a V3 message pact).
    message: bool,
    index: u32,
}

impl Source {
    fn new(file: &Arc<Path>, message: bool, index: usize) -> Self {
        Source {
            file: file.clone(),
            message,
            index: u32::try_from(index).unwrap_or(u32::MAX),
        }
    }

    pub fn pointer(&self) -> String {
        let list = if self.message {
            "messages"
        } else {
            "interactions"
        };
        format!("/{list}/{}", self.index)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.file.display(), self.pointer())
    }
}

/// One synchronous HTTP interaction, whatever the version of the file it came from.
#[derive(Debug, Clone)]
pub struct Interaction {
    pub description: String,
    pub provider_states: Vec<pact_models::provider_states::ProviderState>,
    pub request: HttpRequest,
    /// The query of a Pact V1 file as written: V1 compares queries as whole strings.
    pub literal_query: Option<String>,
    pub response: Response,
    /// How long the recorded exchange took (`metadata.envd.latencyMs`, written by
    /// `envd proxy --record`); replayed by `--latency recorded`.
    pub latency: Option<std::time::Duration>,
    pub source: Source,
}

/// A response as written. pact_models parses it when it is first needed: responses are
/// most of a contract's bytes, and a stub with 10,000 interactions should answer its first
/// request without having parsed the other 9,999 responses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Response {
    /// The response's JSON text; `None` when the interaction has none (status 200).
    written: Option<Box<str>>,
    v4: bool,
}

impl Response {
    /// The response as pact_models reads it (V1 to V3 responses converted to V4).
    pub fn parse(&self) -> Result<HttpResponse, String> {
        let Some(text) = &self.written else {
            return Ok(HttpResponse::default());
        };
        let json: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
        let parsed = if self.v4 {
            HttpResponse::from_json(&json)
        } else {
            pact_models::response::Response::from_json(&json, &PactSpecification::V3)
                .map(|response| response.as_v4_response())
        };
        parsed.map_err(|error| format!("{error:#}"))
    }
}

/// What loading found besides the interactions: things skipped on purpose.
#[derive(Debug, Clone, Default)]
pub struct Skipped {
    /// Message interactions (V3 message pacts, V4 asynchronous and synchronous messages):
    /// envd serves HTTP only.
    pub messages: Vec<Source>,
}

/// The files behind `paths`: a file stands for itself, a directory for every `*.json` below
/// it, in name order so that file order (which breaks ties) is stable.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ContractError> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = fs::metadata(path).map_err(|source| ContractError::Read {
            path: path.clone(),
            source,
        })?;
        if metadata.is_dir() {
            let before = files.len();
            collect_json_files(path, &mut files)?;
            if files.len() == before {
                return Err(ContractError::EmptyDirectory { path: path.clone() });
            }
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_json_files(dir: &Path, into: &mut Vec<PathBuf>) -> Result<(), ContractError> {
    json_files_below(dir, into).map_err(|(path, source)| ContractError::Read { path, source })
}

/// Every `*.json` file below `dir`, in name order (which breaks ties between files); an
/// error names the directory that could not be read.
pub(crate) fn json_files_below(
    dir: &Path,
    into: &mut Vec<PathBuf>,
) -> Result<(), (PathBuf, std::io::Error)> {
    let read = |source| (dir.to_owned(), source);
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(read)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            json_files_below(&entry, into)?;
        } else if entry.extension().is_some_and(|ext| ext == "json") {
            into.push(entry);
        }
    }
    Ok(())
}

/// Loads every HTTP interaction of the given files or directories, in file order.
pub fn load(paths: &[PathBuf]) -> Result<(Vec<Interaction>, Skipped), ContractError> {
    let mut interactions = Vec::new();
    let mut skipped = Skipped::default();
    for file in files(paths)? {
        let text = fs::read(&file).map_err(|source| ContractError::Read {
            path: file.clone(),
            source,
        })?;
        parse(
            Arc::from(file.as_path()),
            &text,
            &mut interactions,
            &mut skipped,
        )?;
    }
    reject_duplicates(&interactions)?;
    Ok((interactions, skipped))
}

/// Loads the interactions of one Pact file's text; `file` names it in errors.
pub fn load_text(file: &Path, text: &[u8]) -> Result<(Vec<Interaction>, Skipped), ContractError> {
    let mut interactions = Vec::new();
    let mut skipped = Skipped::default();
    parse(Arc::from(file), text, &mut interactions, &mut skipped)?;
    reject_duplicates(&interactions)?;
    Ok((interactions, skipped))
}

/// The top of a Pact file; interactions stay raw until each is parsed on its own.
struct RawPact<'a> {
    metadata: Option<&'a RawValue>,
    interactions: Option<&'a RawValue>,
    messages: Option<&'a RawValue>,
}

fn parse(
    file: Arc<Path>,
    text: &[u8],
    into: &mut Vec<Interaction>,
    skipped: &mut Skipped,
) -> Result<(), ContractError> {
    let path = file.to_path_buf();
    let json_error = |error: serde_json::Error| ContractError::Json {
        path: path.clone(),
        line: error.line(),
        column: error.column(),
        message: json_message(&error),
    };
    let shape = |pointer: &str, expected: &'static str, found: &Value| ContractError::Shape {
        path: path.clone(),
        pointer: pointer.to_owned(),
        expected,
        found: kind(found),
    };
    // The top level as raw slices: this checks the syntax of the whole file (so a JSON
    // error gets its line) without building a tree of it.
    let raw: RawPact = match serde_json::from_slice::<HashMap<String, &RawValue>>(text) {
        Ok(mut top) => RawPact {
            metadata: top.remove("metadata"),
            interactions: top.remove("interactions"),
            messages: top.remove("messages"),
        },
        Err(error) if error.is_syntax() || error.is_eof() => return Err(json_error(error)),
        Err(_) => {
            let found = serde_json::from_slice::<Value>(text).unwrap_or(Value::Null);
            return Err(shape("", "a JSON object with \"interactions\"", &found));
        }
    };
    let metadata: Value = match raw.metadata {
        Some(raw) => serde_json::from_str(raw.get()).map_err(json_error)?,
        None => Value::Null,
    };
    if !metadata.is_null() && !metadata.is_object() {
        return Err(shape("/metadata", "an object", &metadata));
    }
    let spec = spec_version(&path, &metadata)?;
    if let Some(messages) = raw.messages {
        let messages: Vec<&RawValue> = serde_json::from_str(messages.get())
            .map_err(|_| shape("/messages", "an array", &Value::Null))?;
        for index in 0..messages.len() {
            skipped.messages.push(Source::new(&file, true, index));
        }
    }
    let Some(list) = raw.interactions else {
        if raw.messages.is_some() {
            return Ok(());
        }
        return Err(shape(
            "/interactions",
            "an array of interactions",
            &Value::Null,
        ));
    };
    // One interaction at a time: each is a JSON tree only while it is converted.
    let mut failure = None;
    let mut each = |index: usize, element: Element<'_>| {
        let source = Source::new(&file, false, index);
        match interaction(element, index, spec, &source) {
            Ok(Some(interaction)) => into.push(interaction),
            Ok(None) => skipped.messages.push(source),
            Err(error) => {
                failure = Some(error);
                return false;
            }
        }
        true
    };
    let streamed = {
        let mut reader = serde_json::Deserializer::from_str(list.get());
        serde::de::DeserializeSeed::deserialize(EachElement(&mut each), &mut reader)
    };
    match (failure, streamed) {
        (Some(error), _) => Err(error),
        (None, Ok(())) => Ok(()),
        (None, Err(_)) => {
            let found = serde_json::from_str(list.get()).unwrap_or(Value::Null);
            Err(shape("/interactions", "an array of interactions", &found))
        }
    }
}

/// Feeds the elements of a JSON array, one at a time, to a function that returns whether
/// to go on.
struct EachElement<'a, F>(&'a mut F);

impl<'de, F: FnMut(usize, Element<'de>) -> bool> serde::de::DeserializeSeed<'de>
    for EachElement<'_, F>
{
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(usize, Element<'de>) -> bool> serde::de::Visitor<'de> for EachElement<'_, F> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(item) = items.next_element::<Element<'de>>()? {
            if !(self.0)(index, item) {
                return Err(serde::de::Error::custom(
                    "stopped at an invalid interaction",
                ));
            }
            index += 1;
        }
        Ok(())
    }
}

/// One element of `interactions`, read in one pass: an object's fields as raw JSON (each
/// parsed only if and when it is needed), or what the element was instead.
enum Element<'a> {
    Object(FastMap<String, &'a RawValue>),
    Other(String),
}

impl<'de> serde::Deserialize<'de> for Element<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> serde::de::Visitor<'de> for ElementVisitor {
    type Value = Element<'de>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an interaction")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = FastMap::default();
        while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
            fields.insert(name, value);
        }
        Ok(Element::Object(fields))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Element::Other("an array".into()))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Element::Other(kind(&Value::String(text.to_owned()))))
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Self::Value, E> {
        Ok(Element::Other(flag.to_string()))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Self::Value, E> {
        Ok(Element::Other(number.to_string()))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Self::Value, E> {
        Ok(Element::Other(number.to_string()))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Self::Value, E> {
        Ok(Element::Other(number.to_string()))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Element::Other("nothing".into()))
    }
}

/// The specification version from the metadata; pact_models assumes V3 when none is given.
fn spec_version(path: &Path, metadata: &Value) -> Result<PactSpecification, ContractError> {
    let declared = [
        (
            "/metadata/pactSpecification/version",
            metadata.pointer("/pactSpecification/version"),
        ),
        (
            "/metadata/pact-specification/version",
            metadata.pointer("/pact-specification/version"),
        ),
        (
            "/metadata/pactSpecificationVersion",
            metadata.pointer("/pactSpecificationVersion"),
        ),
    ]
    .into_iter()
    .find_map(|(pointer, value)| value.map(|value| (pointer, value)));
    if let Some((pointer, value)) = declared {
        let version = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let major = version.split('.').next().unwrap_or_default();
        if !matches!(major, "1" | "2" | "3" | "4") {
            return Err(ContractError::UnknownVersion {
                path: path.to_owned(),
                pointer: pointer.to_owned(),
                version,
            });
        }
    }
    let wrapped = serde_json::json!({ "metadata": metadata });
    Ok(determine_spec_version(
        &path.display().to_string(),
        &parse_meta_data(&wrapped),
    ))
}

/// One interaction, or `None` for a message interaction (skipped: envd serves HTTP).
fn interaction(
    element: Element<'_>,
    index: usize,
    spec: PactSpecification,
    source: &Source,
) -> Result<Option<Interaction>, ContractError> {
    let shape = |suffix: &str, expected: &'static str, found: &Value| ContractError::Shape {
        path: source.file.to_path_buf(),
        pointer: format!("{}{suffix}", source.pointer()),
        expected,
        found: kind(found),
    };
    let found = |raw: &RawValue| serde_json::from_str(raw.get()).unwrap_or(Value::Null);
    let mut raw_fields = match element {
        Element::Object(fields) => fields,
        Element::Other(found) => {
            return Err(ContractError::Shape {
                path: source.file.to_path_buf(),
                pointer: source.pointer(),
                expected: "an interaction object",
                found,
            })
        }
    };
    let response = raw_fields.remove("response");
    // Everything but the response becomes a JSON tree for pact_models now; the response
    // waits until it is first needed (see `Response`).
    let fields: serde_json::Map<String, Value> = raw_fields
        .into_iter()
        .map(|(name, raw)| (name, found(raw)))
        .collect();
    let json = Value::Object(fields);
    let fields = json.as_object().expect("built as an object");
    let kind_of = fields.get("type").and_then(Value::as_str);
    if spec == PactSpecification::V4 {
        match kind_of {
            Some("Synchronous/HTTP") | None => {}
            Some("Asynchronous/Messages" | "Synchronous/Messages") => return Ok(None),
            Some(_) => {
                return Err(shape(
                    "/type",
                    "\"Synchronous/HTTP\", \"Asynchronous/Messages\" or \"Synchronous/Messages\"",
                    &fields["type"],
                ))
            }
        }
    }
    let request = fields.get("request").unwrap_or(&Value::Null);
    let Value::Object(request_fields) = request else {
        return Err(shape("/request", "a request object", request));
    };
    for (field, expected) in [("method", "a string"), ("path", "a string")] {
        if let Some(value) = request_fields.get(field).filter(|value| !value.is_string()) {
            return Err(shape(&format!("/request/{field}"), expected, value));
        }
    }
    if let Some(description) = fields.get("description").filter(|value| !value.is_string()) {
        return Err(shape("/description", "a string", description));
    }
    if let Some(response) = response {
        // The one field of a response checked at load time; the rest are pact_models'.
        let Ok(head) = serde_json::from_str::<HashMap<String, &RawValue>>(response.get()) else {
            return Err(shape("/response", "a response object", &found(response)));
        };
        if let Some(status) = head.get("status").map(|raw| found(raw)) {
            if !status
                .as_u64()
                .is_some_and(|code| (100..=599).contains(&code))
            {
                return Err(shape(
                    "/response/status",
                    "an HTTP status code (100-599)",
                    &status,
                ));
            }
        }
    }
    let latency = match json.pointer("/metadata/envd/latencyMs") {
        None => None,
        Some(value) => Some(
            value
                .as_f64()
                .filter(|ms| *ms >= 0.0)
                .and_then(|ms| std::time::Duration::try_from_secs_f64(ms / 1000.0).ok())
                .ok_or_else(|| {
                    shape(
                        "/metadata/envd/latencyMs",
                        "a number of milliseconds",
                        value,
                    )
                })?,
        ),
    };
    let parsed = if spec == PactSpecification::V4 {
        SynchronousHttp::from_json(&json, index)
    } else {
        RequestResponseInteraction::from_json(index, &json, &spec).map(|interaction| {
            use pact_models::interaction::Interaction as _;
            interaction
                .as_v4_http()
                .expect("a request/response interaction converts to V4 HTTP")
        })
    };
    let http = parsed.map_err(|error| ContractError::Interaction {
        path: source.file.to_path_buf(),
        pointer: source.pointer(),
        message: format!("{error:#}"),
    })?;
    Ok(Some(Interaction {
        description: http.description,
        provider_states: http.provider_states,
        request: http.request,
        literal_query: (spec == PactSpecification::V1)
            .then(|| {
                request_fields
                    .get("query")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten(),
        response: Response {
            written: response.map(|raw| Box::from(raw.get())),
            v4: spec == PactSpecification::V4,
        },
        latency,
        source: source.clone(),
    }))
}

/// Two interactions identical in description, states, request and response are a mistake
/// (usually a file listed twice); identical requests with different responses are not
/// (a recording's sequence).
fn reject_duplicates(interactions: &[Interaction]) -> Result<(), ContractError> {
    let mut seen = FastMap::with_capacity_and_hasher(interactions.len(), Default::default());
    for interaction in interactions {
        let key = (
            &interaction.description,
            &interaction.provider_states,
            &interaction.request,
            &interaction.response,
        );
        if let Some(first) = seen.insert(key, &interaction.source) {
            return Err(ContractError::Duplicate {
                path: interaction.source.file.to_path_buf(),
                pointer: interaction.source.pointer(),
                first: first.to_string(),
            });
        }
    }
    Ok(())
}

/// serde_json's message without its " at line L column C" (the error names the place in
/// its own `file:line:column` form).
pub(crate) fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    text.split(" at line").next().unwrap_or_default().to_owned()
}

/// How a JSON value is described in an error: its kind, and short values in full.
pub(crate) fn kind(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::String(text) if text.len() <= 40 => format!("the string {text:?}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as a file named `c.json`; `Ok` holds the descriptions served.
    fn check(text: &str, expected: Result<&[&str], &str>) {
        let mut into = Vec::new();
        let mut skipped = Skipped::default();
        let result = parse(
            Arc::from(Path::new("c.json")),
            text.as_bytes(),
            &mut into,
            &mut skipped,
        )
        .and_then(|()| reject_duplicates(&into));
        match (result, expected) {
            (Ok(()), Ok(descriptions)) => {
                let got: Vec<&str> = into.iter().map(|i| i.description.as_str()).collect();
                assert_eq!(got, descriptions);
            }
            (Err(error), Err(message)) => assert_eq!(error.to_string(), message),
            (result, expected) => panic!("got {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn versions() {
        check(
            r#"{"interactions":[{"description":"a","request":{"method":"GET","path":"/"},"response":{"status":200}}],
               "metadata":{"pactSpecification":{"version":"2.0.0"}}}"#,
            Ok(&["a"]),
        );
        check(
            r#"{"interactions":[{"type":"Synchronous/HTTP","description":"b","request":{"method":"GET","path":"/"},"response":{"status":200}},
                               {"type":"Asynchronous/Messages","description":"m","contents":{}}],
               "metadata":{"pactSpecification":{"version":"4.0"}}}"#,
            Ok(&["b"]),
        );
        check(
            r#"{"interactions":[],"metadata":{"pactSpecification":{"version":"9.0.0"}}}"#,
            Err(
                r#"c.json#/metadata/pactSpecification/version: unknown Pact specification version "9.0.0", expected one of 1.0.0, 1.1.0, 2.0.0, 3.0.0, 4.0"#,
            ),
        );
    }

    #[test]
    fn bad_input_names_the_place() {
        check(
            "{\"interactions\": [\n  {\"description\": }\n]}",
            Err("c.json:2:19: invalid JSON: expected value"),
        );
        check(
            r#"{"interactions":[{"description":"a","response":{"status":200}}]}"#,
            Err("c.json#/interactions/0/request: expected a request object, found nothing"),
        );
        check(
            r#"{"interactions":[{"description":"a","request":{"method":"GET","path":"/"},"response":{"status":"ok"}}]}"#,
            Err(
                r#"c.json#/interactions/0/response/status: expected an HTTP status code (100-599), found the string "ok""#,
            ),
        );
        check(
            r#"[1, 2]"#,
            Err(r#"c.json#: expected a JSON object with "interactions", found an array"#),
        );
        check(
            r#"{"interactions":[{"description":"a","request":{"method":"GET","path":"/"},"metadata":{"envd":{"latencyMs":"fast"}}}]}"#,
            Err(
                r#"c.json#/interactions/0/metadata/envd/latencyMs: expected a number of milliseconds, found the string "fast""#,
            ),
        );
        let one = r#"{"description":"a","request":{"method":"GET","path":"/"},"response":{"status":200}}"#;
        check(
            &format!(r#"{{"interactions":[{one},{one}]}}"#),
            Err("c.json#/interactions/1: duplicate of the identical interaction at c.json#/interactions/0"),
        );
    }
}
