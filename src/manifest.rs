//! `envd.toml`: the manifest of an environment, read and validated into a [`Plan`].
//!
//! Reading has no side effects: paths are resolved against the manifest's directory,
//! `${VAR}` is expanded from the caller's environment, and every problem is reported with
//! the file, line and column, the key, and what was expected. The daemon runs a `Plan`; it
//! never reads a manifest itself, so a manifest error can only happen on the user's side.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// How long a part may take to become healthy when the manifest does not say.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The marker a dependency's `target` uses for another dependency's address, resolved by
/// the daemon once that dependency listens (`${deps.NAME.url}`).
const DEP_URL_PREFIX: &str = "${deps.";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: cannot read the manifest: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A validated environment, ready to run: what the CLI sends the daemon.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub name: String,
    /// The manifest it came from, absolute.
    pub manifest: PathBuf,
    /// Seconds the environment may live; `None` lives until `envd down`.
    pub ttl_secs: Option<u64>,
    pub service: Process,
    /// In start order: `service` dependencies first (others may point at them), then
    /// stubs and proxies.
    pub deps: Vec<Dependency>,
    /// What `envd verify -f` checks the service under test against.
    pub verify: Option<Verify>,
}

/// The `[verify]` table: contracts the service under test must honour as a provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verify {
    pub contracts: Vec<PathBuf>,
    /// A path on the service that sets up provider states (Pact's state-change POST).
    pub state_change: Option<String>,
    /// Or a command that does, run by `sh -c` in the manifest's directory.
    pub state_change_cmd: Option<String>,
}

/// A dependency of the service under test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dependency {
    pub name: String,
    /// The variable that hands the service this dependency's URL.
    pub url_env: Option<String>,
    pub mode: Mode,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Mode {
    Contract {
        contracts: Vec<PathBuf>,
        states: Vec<String>,
    },
    Replay {
        recording: PathBuf,
    },
    Proxy {
        target: String,
        record: Option<PathBuf>,
        headers: Vec<(String, String)>,
    },
    Spy {
        target: String,
        recording: PathBuf,
        headers: Vec<(String, String)>,
    },
    Service {
        process: Process,
        /// The URL handed to the service under test; `{port}` is the allocated port.
        url: String,
        /// A fixture (sampled from PostgreSQL or files), loaded into `url` once the process is
        /// healthy and before the service under test starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fixture: Option<PathBuf>,
    },
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Contract { .. } => "contract",
            Mode::Replay { .. } => "replay",
            Mode::Proxy { .. } => "proxy",
            Mode::Spy { .. } => "spy",
            Mode::Service { .. } => "service",
        }
    }
}

/// A real process: the service under test, or a `service` dependency.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Process {
    pub name: String,
    /// Program and arguments; `{port}` in an argument is the allocated port. For a
    /// container, overrides the image's command when not empty.
    pub command: Vec<String>,
    /// Run as a container of this local image instead of a process.
    pub image: Option<String>,
    /// The port a container listens on (published on 127.0.0.1); processes get an
    /// allocated one.
    pub port: Option<u16>,
    /// Run the process as this user (envd must run as root): PostgreSQL, for one, refuses
    /// to run as root.
    pub user: Option<String>,
    pub cwd: PathBuf,
    /// Variables set for it on top of PATH, HOME, LANG and the dependencies' URLs.
    pub env: BTreeMap<String, String>,
    pub health: Health,
    pub start_timeout_ms: u64,
}

/// When a started process counts as ready.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Health {
    /// GET this path on its port answers 2xx or 3xx.
    Http { path: String },
    /// Its port accepts a TCP connection.
    Tcp,
    /// This command exits 0.
    Command { command: Vec<String> },
    /// Its output holds this text.
    Log { text: String },
}

// What the file holds, before validation. Unknown keys are errors, with a suggestion.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Option<Spanned<String>>,
    ttl: Option<Spanned<String>>,
    service: Spanned<RawProcess>,
    #[serde(default)]
    deps: BTreeMap<Spanned<String>, Spanned<RawDependency>>,
    verify: Option<Spanned<RawVerify>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    contracts: Spanned<Vec<String>>,
    state_change: Option<Spanned<String>>,
    state_change_cmd: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    name: Option<String>,
    command: Option<Spanned<Vec<String>>>,
    image: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    health: Option<Spanned<RawHealth>>,
    start_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawHealth {
    Path(String),
    Table(RawHealthTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthTable {
    http: Option<String>,
    tcp: Option<bool>,
    command: Option<Vec<String>>,
    log: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    mode: Spanned<String>,
    url_env: Option<String>,
    contracts: Option<Spanned<Vec<String>>>,
    states: Option<Vec<String>>,
    recording: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    record: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    image: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    health: Option<Spanned<RawHealth>>,
    start_timeout: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    fixture: Option<Spanned<String>>,
}

const MODES: &[&str] = &["contract", "replay", "proxy", "spy", "service"];

/// Reads `path` and validates it into a plan, expanding `${VAR}` with `vars`.
pub fn load(path: &Path, vars: &dyn Fn(&str) -> Option<String>) -> Result<Plan, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    parse(&text, &absolute, vars)
}

/// Validates manifest `text` as if read from `path` (absolute).
pub fn parse(
    text: &str,
    path: &Path,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ManifestError> {
    let reader = Reader { text, path, vars };
    let raw: RawManifest = toml::from_str(text).map_err(|error| reader.toml_error(&error))?;
    let base = path.parent().unwrap_or(Path::new("/")).to_owned();
    let name = match &raw.name {
        Some(name) => reader.identifier(name, "name")?,
        None => base
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "envd".to_owned()),
    };
    let ttl_secs = match &raw.ttl {
        Some(ttl) => Some(reader.duration(ttl, "ttl")?.as_secs().max(1)),
        None => None,
    };
    let service_span = raw.service.span();
    let service = raw.service.into_inner();
    let service_name = service.name.clone().unwrap_or_else(|| "service".to_owned());
    let service = reader.process(service_name, service, "service", service_span, &base)?;

    let mut deps = Vec::new();
    let mut url_envs: BTreeMap<String, String> = BTreeMap::new();
    for (name, dependency) in raw.deps {
        let key = format!("deps.{}", name.get_ref());
        let name = reader.identifier(&name, &key)?;
        let span = dependency.span();
        let dependency =
            reader.dependency(&name, &key, dependency.into_inner(), span.clone(), &base)?;
        if let Some(url_env) = &dependency.url_env {
            if let Some(other) = url_envs.insert(url_env.clone(), name.clone()) {
                return Err(reader.at(
                    span,
                    format!("{key}.url_env: {url_env} is already the url_env of deps.{other}; each dependency needs its own variable"),
                ));
            }
        }
        deps.push(dependency);
    }
    for dependency in &deps {
        if let Mode::Proxy { target, .. } | Mode::Spy { target, .. } = &dependency.mode {
            if let Some(other) = dependency_reference(target) {
                let ok = deps
                    .iter()
                    .any(|d| d.name == other && matches!(d.mode, Mode::Service { .. }));
                if !ok {
                    return Err(reader.at(
                        0..0,
                        format!(
                            "deps.{}.target: {target} names no `service` dependency {other:?}",
                            dependency.name
                        ),
                    ));
                }
            }
        }
    }
    // Stable start order: real services first, since stubs and proxies may point at them.
    deps.sort_by_key(|d| !matches!(d.mode, Mode::Service { .. }));
    let verify = match raw.verify {
        Some(verify) => Some(reader.verify(verify, &base)?),
        None => None,
    };
    Ok(Plan {
        name,
        manifest: path.to_owned(),
        ttl_secs,
        service,
        deps,
        verify,
    })
}

/// `${deps.NAME.url}` → `NAME`.
pub fn dependency_reference(target: &str) -> Option<&str> {
    target
        .strip_prefix(DEP_URL_PREFIX)?
        .strip_suffix(".url}")
        .filter(|name| !name.is_empty())
}

struct Reader<'a> {
    text: &'a str,
    path: &'a Path,
    vars: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn at(&self, span: Range<usize>, message: String) -> ManifestError {
        let (line, column) = line_column(self.text, span.start);
        ManifestError::Invalid {
            path: self.path.to_owned(),
            line,
            column,
            message,
        }
    }

    fn toml_error(&self, error: &toml::de::Error) -> ManifestError {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().to_owned();
        let table = enclosing_table(self.text, span.start);
        let message = match unknown_field(&message) {
            Some((field, expected)) => {
                let mut message = format!("unknown key `{field}` in {table}");
                if let Some(suggestion) = did_you_mean(field, &expected) {
                    message.push_str(&format!("; did you mean `{suggestion}`?"));
                }
                message.push_str(&format!(" (expected one of {})", expected.join(", ")));
                message
            }
            None if message.contains("did not match any variant of untagged enum RawHealth") => {
                format!("{table}.health: expected a path such as \"/healthz\", or a table with one of http, tcp, command, log")
            }
            None => format!("in {table}: {message}"),
        };
        self.at(span, message)
    }

    fn identifier(&self, name: &Spanned<String>, key: &str) -> Result<String, ManifestError> {
        let text = name.get_ref();
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(text.clone())
        } else {
            Err(self.at(
                name.span(),
                format!("{key}: expected a name of letters, digits, '-' and '_', found {text:?}"),
            ))
        }
    }

    fn duration(&self, value: &Spanned<String>, key: &str) -> Result<Duration, ManifestError> {
        crate::faults::duration(value.get_ref()).ok_or_else(|| {
            self.at(
                value.span(),
                format!(
                    "{key}: expected a duration such as 30s, 10m or 2h, found {:?}",
                    value.get_ref()
                ),
            )
        })
    }

    /// Expands `${VAR}` from the caller's environment; `${deps.NAME.url}` is left for the
    /// daemon.
    fn expand(&self, value: &Spanned<String>, key: &str) -> Result<String, ManifestError> {
        let text = value.get_ref();
        crate::vars::expand(text, |var| {
            if var.starts_with("deps.") {
                Some(format!("${{{var}}}"))
            } else {
                (self.vars)(var)
            }
        })
        .map_err(|error| match error {
            crate::vars::VarError::Unclosed => {
                self.at(value.span(), format!("{key}: {error} in {text:?}"))
            }
            crate::vars::VarError::Unset(_) => self.at(value.span(), format!("{key}: {error}")),
        })
    }

    fn relative(
        &self,
        base: &Path,
        value: &Spanned<String>,
        key: &str,
    ) -> Result<PathBuf, ManifestError> {
        let expanded = self.expand(value, key)?;
        Ok(base.join(expanded))
    }

    fn env(
        &self,
        env: &BTreeMap<String, Spanned<String>>,
        key: &str,
    ) -> Result<BTreeMap<String, String>, ManifestError> {
        env.iter()
            .map(|(name, value)| {
                Ok((
                    name.clone(),
                    self.expand(value, &format!("{key}.env.{name}"))?,
                ))
            })
            .collect()
    }

    fn process(
        &self,
        name: String,
        raw: RawProcess,
        key: &str,
        span: Range<usize>,
        base: &Path,
    ) -> Result<Process, ManifestError> {
        let command = match (raw.command, &raw.image) {
            (Some(command), _) => {
                let command_span = command.span();
                if command.get_ref().is_empty() && raw.image.is_none() {
                    return Err(self.at(
                        command_span,
                        format!("{key}.command: expected a program and its arguments, found an empty list"),
                    ));
                }
                command
                    .into_inner()
                    .into_iter()
                    .map(|arg| {
                        self.expand(
                            &Spanned::new(command_span.clone(), arg),
                            &format!("{key}.command"),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            (None, Some(_)) => Vec::new(),
            (None, None) => {
                return Err(self.at(
                    span,
                    format!("{key}: expected `command = [\"program\", \"arg\", …]` or `image = \"name:tag\"`"),
                ))
            }
        };
        if raw.image.is_some() && raw.port.is_none() {
            return Err(self.at(
                span,
                format!("{key}: a container needs `port`, the port it listens on inside"),
            ));
        }
        let health = match raw.health {
            None => Health::Tcp,
            Some(health) => self.health(health, key)?,
        };
        let start_timeout = match &raw.start_timeout {
            Some(value) => self.duration(value, &format!("{key}.start_timeout"))?,
            None => DEFAULT_START_TIMEOUT,
        };
        Ok(Process {
            name,
            command,
            image: raw.image,
            port: raw.port,
            user: raw.user,
            cwd: raw
                .cwd
                .map(|cwd| base.join(cwd))
                .unwrap_or_else(|| base.to_owned()),
            env: self.env(&raw.env, key)?,
            health,
            start_timeout_ms: start_timeout.as_millis() as u64,
        })
    }

    fn verify(&self, verify: Spanned<RawVerify>, base: &Path) -> Result<Verify, ManifestError> {
        let span = verify.span();
        let verify = verify.into_inner();
        let contracts_span = verify.contracts.span();
        let contracts = verify
            .contracts
            .into_inner()
            .into_iter()
            .map(|c| {
                self.relative(
                    base,
                    &Spanned::new(contracts_span.clone(), c),
                    "verify.contracts",
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        if contracts.is_empty() {
            return Err(self.at(
                contracts_span,
                "verify.contracts: expected at least one Pact file or directory".into(),
            ));
        }
        if let Some(path) = &verify.state_change {
            if !path.get_ref().starts_with('/') {
                return Err(self.at(
                    path.span(),
                    format!("verify.state_change: expected a path on the service starting with '/', found {:?}", path.get_ref()),
                ));
            }
        }
        if verify.state_change.is_some() && verify.state_change_cmd.is_some() {
            return Err(self.at(
                span,
                "verify: give state_change or state_change_cmd, not both".into(),
            ));
        }
        Ok(Verify {
            contracts,
            state_change: verify.state_change.map(Spanned::into_inner),
            state_change_cmd: verify.state_change_cmd,
        })
    }

    /// A `fixture` directory (a fixture sampled from PostgreSQL or from files), and a
    /// `url` to load it into.
    fn fixture(
        &self,
        base: &Path,
        value: &Spanned<String>,
        key: &str,
        url: &str,
    ) -> Result<PathBuf, ManifestError> {
        let key = format!("{key}.fixture");
        let dir = self.relative(base, value, &key)?;
        crate::fixtures::read_manifest(&dir)
            .map_err(|error| self.at(value.span(), format!("{key}: {error}")))?;
        if !crate::fixtures::postgres::is_url(url) {
            return Err(self.at(
                value.span(),
                format!("{key}: needs `url = \"postgres://…\"`, the database to load it into (found {url:?})"),
            ));
        }
        Ok(dir)
    }

    fn health(&self, health: Spanned<RawHealth>, key: &str) -> Result<Health, ManifestError> {
        let span = health.span();
        let health = match health.into_inner() {
            RawHealth::Path(path) => Health::Http { path },
            RawHealth::Table(table) => {
                let chosen = [
                    table.http.map(|path| Health::Http { path }),
                    table.tcp.filter(|tcp| *tcp).map(|_| Health::Tcp),
                    table.command.map(|command| Health::Command { command }),
                    table.log.map(|text| Health::Log { text }),
                ];
                let mut chosen = chosen.into_iter().flatten();
                match (chosen.next(), chosen.next()) {
                    (Some(health), None) => health,
                    _ => {
                        return Err(self.at(
                            span,
                            format!(
                                "{key}.health: expected exactly one of http, tcp, command, log"
                            ),
                        ))
                    }
                }
            }
        };
        if let Health::Http { path } = &health {
            if !path.starts_with('/') {
                return Err(self.at(
                    span,
                    format!(
                        "{key}.health: expected an HTTP path starting with '/', found {path:?}"
                    ),
                ));
            }
        }
        Ok(health)
    }

    fn dependency(
        &self,
        name: &str,
        key: &str,
        raw: RawDependency,
        span: Range<usize>,
        base: &Path,
    ) -> Result<Dependency, ManifestError> {
        let mode = raw.mode.get_ref().as_str();
        // The keys each mode takes; any other key given is a mistake worth naming.
        let allowed: &[&str] = match mode {
            "contract" => &["contracts", "states"],
            "replay" => &["recording"],
            "proxy" => &["target", "record", "headers"],
            "spy" => &["target", "recording", "headers"],
            "service" => &[
                "command",
                "image",
                "port",
                "user",
                "cwd",
                "env",
                "health",
                "start_timeout",
                "url",
                "fixture",
            ],
            other => {
                let mut message = format!(
                    "{key}.mode: expected one of {}, found {other:?}",
                    MODES.join(", ")
                );
                if let Some(suggestion) = did_you_mean(other, MODES) {
                    message.push_str(&format!("; did you mean {suggestion:?}?"));
                }
                return Err(self.at(raw.mode.span(), message));
            }
        };
        let given = [
            ("contracts", raw.contracts.is_some()),
            ("states", raw.states.is_some()),
            ("recording", raw.recording.is_some()),
            ("target", raw.target.is_some()),
            ("record", raw.record.is_some()),
            ("headers", !raw.headers.is_empty()),
            ("command", raw.command.is_some()),
            ("image", raw.image.is_some()),
            ("port", raw.port.is_some()),
            ("user", raw.user.is_some()),
            ("cwd", raw.cwd.is_some()),
            ("env", !raw.env.is_empty()),
            ("health", raw.health.is_some()),
            ("start_timeout", raw.start_timeout.is_some()),
            ("url", raw.url.is_some()),
            ("fixture", raw.fixture.is_some()),
        ];
        if let Some((extra, _)) = given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
            return Err(self.at(
                span,
                format!(
                    "{key}.{extra}: not a key of mode {mode:?}, which takes {}",
                    allowed.join(", ")
                ),
            ));
        }
        let need = |value: Option<Spanned<String>>, what: &str| {
            value.ok_or_else(|| {
                self.at(span.clone(), format!("{key}: mode {mode:?} needs `{what}`"))
            })
        };
        let headers = |raw: &BTreeMap<String, Spanned<String>>| {
            raw.iter()
                .map(|(name, value)| {
                    Ok((
                        name.clone(),
                        self.expand(value, &format!("{key}.headers.{name}"))?,
                    ))
                })
                .collect::<Result<Vec<_>, ManifestError>>()
        };
        let target = |value: Option<Spanned<String>>| -> Result<String, ManifestError> {
            let value = need(value, "target")?;
            let expanded = self.expand(&value, &format!("{key}.target"))?;
            let known = ["http://", "https://", "envd://", "envd+http://"]
                .iter()
                .any(|scheme| expanded.starts_with(scheme))
                || dependency_reference(&expanded).is_some();
            if known {
                Ok(expanded)
            } else {
                Err(self.at(
                    value.span(),
                    format!("{key}.target: expected an http://, https:// or envd:// URL, or ${{deps.NAME.url}}, found {expanded:?}"),
                ))
            }
        };
        let mode = match mode {
            "contract" => {
                let contracts = raw.contracts.ok_or_else(|| {
                    self.at(
                        span.clone(),
                        format!("{key}: mode \"contract\" needs `contracts = [\"file.json\", …]`"),
                    )
                })?;
                let contracts_span = contracts.span();
                let contracts = contracts
                    .into_inner()
                    .into_iter()
                    .map(|c| {
                        self.relative(
                            base,
                            &Spanned::new(contracts_span.clone(), c),
                            &format!("{key}.contracts"),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Mode::Contract {
                    contracts,
                    states: raw.states.unwrap_or_default(),
                }
            }
            "replay" => Mode::Replay {
                recording: self.relative(
                    base,
                    &need(raw.recording, "recording")?,
                    &format!("{key}.recording"),
                )?,
            },
            "proxy" => Mode::Proxy {
                headers: headers(&raw.headers)?,
                target: target(raw.target)?,
                record: match &raw.record {
                    Some(record) => Some(self.relative(base, record, &format!("{key}.record"))?),
                    None => None,
                },
            },
            "spy" => Mode::Spy {
                headers: headers(&raw.headers)?,
                target: target(raw.target)?,
                recording: self.relative(
                    base,
                    &need(raw.recording, "recording")?,
                    &format!("{key}.recording"),
                )?,
            },
            _ => {
                let url = match &raw.url {
                    Some(url) => self.expand(url, &format!("{key}.url"))?,
                    None => "http://127.0.0.1:{port}".to_owned(),
                };
                let fixture = match &raw.fixture {
                    Some(fixture) => Some(self.fixture(base, fixture, key, &url)?),
                    None => None,
                };
                Mode::Service {
                    process: self.process(
                        name.to_owned(),
                        RawProcess {
                            name: None,
                            command: raw.command,
                            image: raw.image,
                            port: raw.port,
                            user: raw.user,
                            cwd: raw.cwd,
                            env: raw.env,
                            health: raw.health,
                            start_timeout: raw.start_timeout,
                        },
                        key,
                        span,
                        base,
                    )?,
                    url,
                    fixture,
                }
            }
        };
        Ok(Dependency {
            name: name.to_owned(),
            url_env: raw.url_env,
            mode,
        })
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The `[table]` header in force at `offset`, for messages about keys inside it.
fn enclosing_table(text: &str, offset: usize) -> String {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('[') && line.ends_with(']'))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "the top level".to_owned())
}

/// serde's "unknown field `x`, expected one of `a`, `b`" → ("x", ["a", "b"]).
fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| !name.is_empty())
        .collect();
    Some((field, expected))
}

/// The closest known name, if it is close enough to be a typo.
fn did_you_mean<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(given, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        (name == "STAGING_TOKEN").then(|| "t0ken".to_owned())
    }

    /// Parses `text` as /work/envd.toml: `Ok` with the plan's JSON, or `Err` with the message.
    fn check(text: &str, expected: Result<serde_json::Value, &str>) {
        let got = parse(text, Path::new("/work/envd.toml"), &vars);
        match (got, expected) {
            (Ok(plan), Ok(expected)) => {
                let plan = serde_json::to_value(&plan).unwrap();
                for (key, value) in expected.as_object().unwrap() {
                    assert_eq!(&plan[key], value, "{key} of {plan:#}");
                }
            }
            (Err(error), Err(expected)) => {
                let error = error.to_string();
                assert!(
                    error.contains(expected),
                    "{error:?} should contain {expected:?}"
                );
            }
            (got, expected) => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    const SERVICE: &str = "[service]\nname = \"orders\"\ncommand = [\"python3\", \"orders.py\"]\nhealth = \"/healthz\"\n";

    #[test]
    fn a_full_manifest_becomes_a_plan() {
        check(
            &format!(
                "name = \"checkout\"\nttl = \"2h\"\n{SERVICE}env = {{ LOG = \"debug\" }}\n\
                 [deps.payments]\nmode = \"contract\"\ncontracts = [\"contracts/p.json\"]\nurl_env = \"PAYMENTS_URL\"\n\
                 [deps.users]\nmode = \"spy\"\ntarget = \"${{deps.staging.url}}\"\nrecording = \"stubs/users.json\"\n\
                 headers = {{ Authorization = \"Bearer ${{STAGING_TOKEN}}\" }}\n\
                 [deps.staging]\nmode = \"service\"\ncommand = [\"python3\", \"staging.py\", \"{{port}}\"]\n"
            ),
            Ok(serde_json::json!({
                "name": "checkout",
                "ttl_secs": 7200,
                "service": {
                    "name": "orders", "command": ["python3", "orders.py"], "cwd": "/work",
                    "env": {"LOG": "debug"}, "health": {"kind": "http", "path": "/healthz"},
                    "start_timeout_ms": 30000, "image": null, "port": null, "user": null
                },
                "deps": [
                    {"name": "staging", "url_env": null, "mode": {"mode": "service", "url": "http://127.0.0.1:{port}", "process": {
                        "name": "staging", "command": ["python3", "staging.py", "{port}"], "cwd": "/work",
                        "env": {}, "health": {"kind": "tcp"}, "start_timeout_ms": 30000, "image": null, "port": null, "user": null}}},
                    {"name": "payments", "url_env": "PAYMENTS_URL", "mode": {"mode": "contract", "contracts": ["/work/contracts/p.json"], "states": []}},
                    {"name": "users", "url_env": null, "mode": {"mode": "spy", "target": "${deps.staging.url}",
                        "recording": "/work/stubs/users.json", "headers": [["Authorization", "Bearer t0ken"]]}}
                ]
            })),
        );
    }

    #[test]
    fn mistakes_are_named_with_their_place_and_what_was_expected() {
        check(
            "[service]\ncomand = [\"x\"]\n",
            Err("/work/envd.toml:2:1: unknown key `comand` in service; did you mean `command`?"),
        );
        check(
            &format!("{SERVICE}[deps.users]\nmode = \"spyy\"\n"),
            Err("envd.toml:6:8: deps.users.mode: expected one of contract, replay, proxy, spy, service, found \"spyy\"; did you mean \"spy\"?"),
        );
        check(
            &format!("{SERVICE}[deps.users]\nmode = \"replay\"\n"),
            Err("deps.users: mode \"replay\" needs `recording`"),
        );
        check(
            &format!("{SERVICE}[deps.users]\nmode = \"replay\"\nrecording = \"r.json\"\ntarget = \"http://x\"\n"),
            Err("deps.users.target: not a key of mode \"replay\", which takes recording"),
        );
        check(
            &format!("{SERVICE}env = {{ T = \"${{NOPE}}\" }}\n"),
            Err("envd.toml:5:13: service.env.T: ${NOPE} is not set in the environment"),
        );
        check(
            &format!("ttl = \"forever\"\n{SERVICE}"),
            Err(
                "envd.toml:1:7: ttl: expected a duration such as 30s, 10m or 2h, found \"forever\"",
            ),
        );
        check(
            &format!("{SERVICE}[deps.users]\nmode = \"proxy\"\ntarget = \"${{deps.ghost.url}}\"\n"),
            Err("deps.users.target: ${deps.ghost.url} names no `service` dependency \"ghost\""),
        );
        check(
            &format!("{SERVICE}[deps.db]\nmode = \"service\"\ncommand = [\"postgres\"]\nurl = \"postgres://127.0.0.1:{{port}}/postgres\"\nfixture = \"fixtures/none\"\n"),
            Err("envd.toml:9:11: deps.db.fixture: /work/fixtures/none/fixture.json: cannot read"),
        );
        check("name = \"x\"\n", Err("missing field `service`"));
        check(
            "[service]\ncommand = [\"x\"]\nhealth = { http = \"/h\", tcp = true }\n",
            Err("service.health: expected exactly one of http, tcp, command, log"),
        );
        check(
            &format!("{SERVICE}[deps.a]\nmode = \"replay\"\nrecording = \"a.json\"\nurl_env = \"U\"\n[deps.b]\nmode = \"replay\"\nrecording = \"b.json\"\nurl_env = \"U\"\n"),
            Err("deps.b.url_env: U is already the url_env of deps.a"),
        );
    }

    #[test]
    fn a_fixture_must_be_a_fixture_and_loaded_into_postgresql() {
        let dir = tempfile::tempdir().unwrap();
        let fixture = |postgres: &str| {
            let text = format!("{{\"version\": 1, \"seed\": 0, \"maxCategories\": 50, \"edgeRowsPerReason\": 3, \"tables\": [], \"relations\": [], \"warnings\": []{postgres}}}");
            std::fs::write(dir.path().join("fixture.json"), text).unwrap();
        };
        let manifest = |url: &str| {
            format!(
                "{SERVICE}[deps.db]\nmode = \"service\"\ncommand = [\"postgres\"]\nurl = \"{url}\"\nfixture = \"{}\"\n",
                dir.path().display()
            )
        };
        std::fs::write(dir.path().join("fixture.json"), "{\"version\": 2}").unwrap();
        check(
            &manifest("postgres://127.0.0.1:{port}/postgres"),
            Err("envd.toml:9:11: deps.db.fixture: /tmp"),
        );
        check(
            &manifest("postgres://127.0.0.1:{port}/postgres"),
            Err("not a fixture"),
        );
        // Sampled from files: loaded all the same.
        fixture("");
        check(
            &manifest("postgres://127.0.0.1:{port}/postgres"),
            Ok(serde_json::json!({"name": "work"})),
        );
        fixture(", \"postgres\": {\"schema\": \"public\", \"tables\": [], \"warnings\": []}");
        check(
            &manifest("http://127.0.0.1:{port}"),
            Err("deps.db.fixture: needs `url = \"postgres://…\"`, the database to load it into"),
        );
        check(
            &manifest("postgres://127.0.0.1:{port}/postgres"),
            Ok(serde_json::json!({"name": "work"})),
        );
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(did_you_mean("comand", &["command", "cwd"]), Some("command"));
        assert_eq!(did_you_mean("zzz", &["command", "cwd"]), None);
        assert_eq!(dependency_reference("${deps.db.url}"), Some("db"));
        assert_eq!(dependency_reference("http://x"), None);
    }
}
