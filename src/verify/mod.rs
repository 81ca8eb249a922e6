//! `envd verify`: replays contracts against a running provider and checks its responses.
//!
//! Each interaction's request (with its generators applied, in provider mode) is sent to
//! the provider; the response is checked by pact_matching's response matching with the
//! interaction's rules, as the Pact specification says. Provider states are set up before
//! and torn down after each interaction, by an HTTP POST or by a command.

pub mod diff;
pub mod infer;
pub mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::Request;
use pact_matching::Mismatch;
use pact_models::bodies::OptionalBody;
use pact_models::content_types::ContentType;
use pact_models::generators::GeneratorTestMode;
use pact_models::v4::http_parts::{HttpRequest, HttpResponse};
use pact_models::v4::pact::V4Pact;
use pact_models::v4::synch_http::SynchronousHttp;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use regex::Regex;
use serde_json::{json, Value};

use crate::contract::{self, ContractError};
use crate::proxy::Upstream;

/// How long the provider (or a state-change endpoint) may take to answer one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("--provider {url:?}: expected an http:// or https:// URL with a host, such as http://127.0.0.1:8080")]
    Provider { url: String },
    #[error("--state-change {url:?}: expected an http:// or https:// URL with a host")]
    StateChange { url: String },
    #[error("--{flag} {pattern:?}: expected a regular expression: {reason}")]
    Pattern {
        flag: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("no interaction is left to verify after --consumer, --description and --state")]
    NothingSelected,
    #[error("{path}: cannot write the JUnit report: {source}")]
    Junit {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How provider states are put in place.
#[derive(Debug, Clone)]
pub enum StateChange {
    /// Pact's POST `{"state", "params", "action"}` to this URL.
    Url(String),
    /// A shell command run with `ENVD_STATE`, `ENVD_STATE_PARAMS` (JSON) and
    /// `ENVD_STATE_ACTION` (`setup` or `teardown`) in its environment.
    Command(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub provider: String,
    pub contracts: Vec<PathBuf>,
    pub state_change: Option<StateChange>,
    pub consumer: Option<String>,
    pub description: Option<String>,
    pub state: Option<String>,
    pub timeout: Duration,
}

/// What was verified, interaction by interaction, in contract order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.passed()).count()
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub consumer: String,
    pub provider: String,
    pub description: String,
    pub states: Vec<String>,
    /// `file#/interactions/N`.
    pub source: String,
    pub failures: Vec<Failure>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One reason an interaction did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// In words: `body $.id: expected an integer, got "abc"`.
    pub message: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

impl Failure {
    fn plain(message: String) -> Self {
        Failure {
            message,
            expected: None,
            actual: None,
        }
    }

    fn from_mismatch(mismatch: &Mismatch) -> Self {
        let text = |bytes: &Option<Bytes>| {
            bytes
                .as_ref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        };
        let (expected, actual) = match mismatch {
            Mismatch::MethodMismatch {
                expected, actual, ..
            }
            | Mismatch::PathMismatch {
                expected, actual, ..
            }
            | Mismatch::QueryMismatch {
                expected, actual, ..
            }
            | Mismatch::HeaderMismatch {
                expected, actual, ..
            }
            | Mismatch::BodyTypeMismatch {
                expected, actual, ..
            }
            | Mismatch::MetadataMismatch {
                expected, actual, ..
            } => (Some(expected.clone()), Some(actual.clone())),
            Mismatch::StatusMismatch {
                expected, actual, ..
            } => (Some(expected.to_string()), Some(actual.to_string())),
            Mismatch::BodyMismatch {
                expected, actual, ..
            } => (text(expected), text(actual)),
        };
        Failure {
            message: crate::matching::describe(mismatch),
            expected,
            actual,
        }
    }
}

/// Which interactions to verify: all filters must hold.
#[derive(Debug, Default)]
struct Selection {
    consumer: Option<String>,
    description: Option<Regex>,
    state: Option<Regex>,
}

impl Selection {
    fn new(options: &Options) -> Result<Self, VerifyError> {
        let pattern = |flag: &'static str, text: &Option<String>| {
            text.as_deref()
                .map(|text| {
                    Regex::new(text).map_err(|error| VerifyError::Pattern {
                        flag,
                        pattern: text.to_owned(),
                        reason: error.to_string(),
                    })
                })
                .transpose()
        };
        Ok(Selection {
            consumer: options.consumer.clone(),
            description: pattern("description", &options.description)?,
            state: pattern("state", &options.state)?,
        })
    }

    fn selects(&self, consumer: &str, interaction: &contract::Interaction) -> bool {
        self.consumer.as_deref().is_none_or(|name| name == consumer)
            && self
                .description
                .as_ref()
                .is_none_or(|re| re.is_match(&interaction.description))
            && self.state.as_ref().is_none_or(|re| {
                interaction
                    .provider_states
                    .iter()
                    .any(|state| re.is_match(&state.name))
            })
    }
}

/// An interaction to verify, with the names of the pact it came from.
struct Planned {
    consumer: String,
    provider: String,
    interaction: contract::Interaction,
}

/// Loads and filters the contracts: everything that can be bad input is found here,
/// before any request is sent.
fn plan(options: &Options) -> Result<Vec<Planned>, VerifyError> {
    let selection = Selection::new(options)?;
    let mut planned = Vec::new();
    for file in contract::files(&options.contracts)? {
        let text = std::fs::read(&file).map_err(|source| ContractError::Read {
            path: file.clone(),
            source,
        })?;
        let (interactions, _skipped) = contract::load_text(&file, &text)?;
        let (consumer, provider) = names(&text);
        for interaction in interactions {
            if selection.selects(&consumer, &interaction) {
                planned.push(Planned {
                    consumer: consumer.clone(),
                    provider: provider.clone(),
                    interaction,
                });
            }
        }
    }
    if planned.is_empty() {
        return Err(VerifyError::NothingSelected);
    }
    Ok(planned)
}

/// The consumer and provider names of a Pact file that has already loaded.
fn names(text: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize, Default)]
    struct Party {
        #[serde(default)]
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct Parties {
        #[serde(default)]
        consumer: Party,
        #[serde(default)]
        provider: Party,
    }
    match serde_json::from_slice::<Parties>(text) {
        Ok(parties) => (parties.consumer.name, parties.provider.name),
        Err(_) => (String::new(), String::new()),
    }
}

/// Verifies every selected interaction, one after another (provider states are global to
/// a provider, so interactions cannot overlap).
pub async fn run(options: &Options) -> Result<Report, VerifyError> {
    let planned = plan(options)?;
    let provider = Upstream::new(&options.provider, None).map_err(|_| VerifyError::Provider {
        url: options.provider.clone(),
    })?;
    let state_change = match &options.state_change {
        Some(StateChange::Url(url)) => {
            let invalid = || VerifyError::StateChange { url: url.clone() };
            let endpoint = Upstream::new(url, None).map_err(|_| invalid())?;
            // The URL as given: Upstream would add a `/` to a bare base path.
            let uri: hyper::Uri = url.parse().map_err(|_| invalid())?;
            Some(StateHook::Url(Box::new(endpoint), uri))
        }
        Some(StateChange::Command(command)) => Some(StateHook::Command(command.clone())),
        None => None,
    };
    let mut report = Report::default();
    for planned in planned {
        let failures = verify_one(
            &provider,
            state_change.as_ref(),
            &planned.interaction,
            options.timeout,
        )
        .await;
        report.outcomes.push(Outcome {
            consumer: planned.consumer,
            provider: planned.provider,
            description: planned.interaction.description.clone(),
            states: planned
                .interaction
                .provider_states
                .iter()
                .map(|state| state.name.clone())
                .collect(),
            source: planned.interaction.source.to_string(),
            failures,
        });
    }
    Ok(report)
}

enum StateHook {
    Url(Box<Upstream>, hyper::Uri),
    Command(String),
}

async fn verify_one(
    provider: &Upstream,
    hook: Option<&StateHook>,
    interaction: &contract::Interaction,
    timeout: Duration,
) -> Vec<Failure> {
    let states = &interaction.provider_states;
    let mut failures = Vec::new();
    let mut set_up = 0;
    if let Some(hook) = hook {
        for state in states {
            match change_state(hook, state, "setup", timeout).await {
                Ok(()) => set_up += 1,
                Err(reason) => {
                    failures.push(Failure::plain(format!(
                        "provider state {:?}: setup failed: {reason}",
                        state.name
                    )));
                    break;
                }
            }
        }
    }
    if failures.is_empty() {
        failures = exchange(provider, interaction, timeout).await;
    }
    if let Some(hook) = hook {
        for state in states[..set_up].iter().rev() {
            if let Err(reason) = change_state(hook, state, "teardown", timeout).await {
                failures.push(Failure::plain(format!(
                    "provider state {:?}: teardown failed: {reason}",
                    state.name
                )));
            }
        }
    }
    failures
}

async fn change_state(
    hook: &StateHook,
    state: &pact_models::provider_states::ProviderState,
    action: &str,
    timeout: Duration,
) -> Result<(), String> {
    let params = Value::Object(state.params.clone().into_iter().collect());
    tracing::debug!(state = %state.name, action, "provider state change");
    match hook {
        StateHook::Url(endpoint, uri) => {
            let body = json!({"state": state.name, "params": params, "action": action});
            let request = Request::post(uri.clone())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Either::Left(Full::new(Bytes::from(body.to_string()))))
                .map_err(|error| error.to_string())?;
            let send = endpoint.client().request(request);
            let response = tokio::time::timeout(timeout, send)
                .await
                .map_err(|_| format!("{uri} did not answer within {timeout:?}"))?
                .map_err(|error| format!("cannot reach {uri}: {}", error_chain(&error)))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|body| String::from_utf8_lossy(&body.to_bytes()).into_owned())
                    .unwrap_or_default();
                Err(format!(
                    "{uri} answered {status}{}",
                    if body.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", body.trim())
                    }
                ))
            }
        }
        StateHook::Command(command) => {
            // std's Command on a blocking thread: tokio's process feature would rebuild
            // tokio and everything above it for this one call.
            let mut child = std::process::Command::new("sh");
            child
                .arg("-c")
                .arg(command)
                .env("ENVD_STATE", &state.name)
                .env("ENVD_STATE_PARAMS", params.to_string())
                .env("ENVD_STATE_ACTION", action)
                .stdin(std::process::Stdio::null());
            let output =
                tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || child.output()))
                    .await
                    .map_err(|_| format!("{command:?} did not finish within {timeout:?}"))?
                    .map_err(|error| format!("cannot run {command:?}: {error}"))?
                    .map_err(|error| format!("cannot run {command:?}: {error}"))?;
            if output.status.success() {
                Ok(())
            } else {
                let stderr = String::from_utf8_lossy(&output.stderr);
                Err(format!(
                    "{command:?} exited with {}{}",
                    output.status,
                    if stderr.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", stderr.trim())
                    }
                ))
            }
        }
    }
}

/// Sends the interaction's request and matches the provider's response.
async fn exchange(
    provider: &Upstream,
    interaction: &contract::Interaction,
    timeout: Duration,
) -> Vec<Failure> {
    let expected = match interaction.response.parse() {
        Ok(response) => response,
        Err(reason) => {
            return vec![Failure::plain(format!(
                "the response in the contract does not load: {reason}"
            ))]
        }
    };
    let context: HashMap<&str, Value> = interaction
        .provider_states
        .iter()
        .flat_map(|state| state.params.iter())
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    let request = crate::matching::ready(pact_matching::generate_request(
        &interaction.request,
        &GeneratorTestMode::Provider,
        &context,
    ));
    let outgoing = match outgoing(provider, &request, interaction.literal_query.as_deref()) {
        Ok(outgoing) => outgoing,
        Err(reason) => return vec![Failure::plain(reason)],
    };
    let actual = match send(provider, outgoing, timeout).await {
        Ok(actual) => actual,
        Err(reason) => return vec![Failure::plain(reason)],
    };
    let pact: Box<dyn pact_models::pact::Pact + Send + Sync + std::panic::RefUnwindSafe> =
        Box::new(V4Pact::default());
    let synchronous: Box<
        dyn pact_models::interaction::Interaction + Send + Sync + std::panic::RefUnwindSafe,
    > = Box::new(SynchronousHttp {
        description: interaction.description.clone(),
        provider_states: interaction.provider_states.clone(),
        request: interaction.request.clone(),
        response: expected.clone(),
        ..SynchronousHttp::default()
    });
    match crate::matching::ready(pact_matching::match_response(
        expected,
        actual,
        &pact,
        &synchronous,
    )) {
        Ok(mismatches) => mismatches.iter().map(Failure::from_mismatch).collect(),
        Err(error) => vec![Failure::plain(format!(
            "cannot match the response: {error:#}"
        ))],
    }
}

/// Characters escaped in a path segment sent on the wire; `/` stays, as pact paths are
/// whole paths.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%');

/// Characters escaped in a query name or value.
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b'%');

/// The request as it goes on the wire.
fn outgoing(
    provider: &Upstream,
    request: &HttpRequest,
    literal_query: Option<&str>,
) -> Result<Request<crate::server::Body>, String> {
    let mut target = utf8_percent_encode(&request.path, PATH).to_string();
    if !target.starts_with('/') {
        target.insert(0, '/');
    }
    if let Some(query) = literal_query {
        target.push('?');
        target.push_str(query);
    } else if let Some(query) = request.query.as_ref().filter(|query| !query.is_empty()) {
        let mut names: Vec<_> = query.keys().collect();
        names.sort();
        let mut pairs = Vec::new();
        for name in names {
            let name_text = utf8_percent_encode(name, QUERY).to_string();
            for value in &query[name] {
                pairs.push(match value {
                    Some(value) => {
                        format!("{name_text}={}", utf8_percent_encode(value, QUERY))
                    }
                    None => name_text.clone(),
                });
            }
        }
        target.push('?');
        target.push_str(&pairs.join("&"));
    }
    let path_and_query: hyper::http::uri::PathAndQuery = target
        .parse()
        .map_err(|error| format!("cannot send the request: path {target:?}: {error}"))?;
    let mut builder = Request::builder()
        .method(request.method.to_uppercase().as_str())
        .uri(provider.uri(Some(&path_and_query)));
    let mut has_content_type = false;
    for (name, values) in request.headers.iter().flatten() {
        has_content_type |= name.eq_ignore_ascii_case("content-type");
        for value in values {
            builder = builder.header(name.as_str(), value.as_str());
        }
    }
    let body = match &request.body {
        OptionalBody::Present(bytes, content_type, _) => {
            if !has_content_type {
                if let Some(content_type) = content_type.clone().or_else(|| request.content_type())
                {
                    builder = builder.header("content-type", content_type.to_string());
                }
            }
            bytes.clone()
        }
        _ => Bytes::new(),
    };
    builder
        .body(Either::Left(Full::new(body)))
        .map_err(|error| format!("cannot send the request: {error}"))
}

async fn send(
    provider: &Upstream,
    request: Request<crate::server::Body>,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    let target = format!("{} {}", request.method(), request.uri());
    let answer = async {
        let response = provider
            .client()
            .request(request)
            .await
            .map_err(|error| format!("{target}: no response: {}", error_chain(&error)))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|error| format!("{target}: the response body broke off: {error}"))?
            .to_bytes();
        Ok::<_, String>((parts, body))
    };
    let (parts, body) = tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| format!("{target}: no response within {timeout:?}"))??;
    let mut headers: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in &parts.headers {
        // Split where the header is a list, as the stub splits request headers: Pact
        // compares `a,b` and `a, b` as the same two values.
        if let Ok(value) = value.to_str() {
            headers
                .entry(name.as_str().to_owned())
                .or_default()
                .extend(pact_models::headers::parse_header(name.as_str(), value));
        }
    }
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| ContentType::parse(value).ok());
    Ok(HttpResponse {
        status: parts.status.as_u16(),
        headers: (!headers.is_empty()).then_some(headers),
        body: if body.is_empty() {
            OptionalBody::Empty
        } else {
            OptionalBody::Present(body, content_type, None)
        },
        ..HttpResponse::default()
    })
}

/// An error with its causes: hyper's outer errors say only "client error (Connect)".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Writes `text` to `path` atomically: a reader never sees half a report.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), VerifyError> {
    use std::io::Write;
    let error = |source| VerifyError::Junit {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.as_file().sync_all().map_err(error)?;
    file.persist(path)
        .map_err(|error| error.error)
        .map_err(error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        consumer: Option<&str>,
        description: Option<&str>,
        state: Option<&str>,
        expected: bool,
    ) {
        let options = Options {
            provider: String::new(),
            contracts: vec![],
            state_change: None,
            consumer: consumer.map(str::to_owned),
            description: description.map(str::to_owned),
            state: state.map(str::to_owned),
            timeout: DEFAULT_TIMEOUT,
        };
        let (interactions, _) = contract::load_text(
            Path::new("t.json"),
            br#"{"consumer":{"name":"web"},"provider":{"name":"orders"},
                "interactions":[{"description":"get order 1","providerState":"order 1 exists",
                "request":{"method":"GET","path":"/orders/1"},"response":{"status":200}}],
                "metadata":{"pactSpecification":{"version":"2.0.0"}}}"#,
        )
        .expect("loads");
        let selection = Selection::new(&options).expect("patterns");
        assert_eq!(
            selection.selects("web", &interactions[0]),
            expected,
            "{consumer:?} {description:?} {state:?}"
        );
    }

    #[test]
    fn selects_by_consumer_description_and_state() {
        check(None, None, None, true);
        check(Some("web"), None, None, true);
        check(Some("we"), None, None, false);
        check(None, Some("^get order"), None, true);
        check(None, Some("delete"), None, false);
        check(None, None, Some("exists$"), true);
        check(None, None, Some("missing"), false);
        check(Some("web"), Some("order"), Some("order 1"), true);
    }

    #[test]
    fn reads_the_parties() {
        assert_eq!(
            names(br#"{"consumer":{"name":"a"},"provider":{"name":"b"}}"#),
            ("a".to_owned(), "b".to_owned())
        );
        assert_eq!(names(b"{}"), (String::new(), String::new()));
    }
}
