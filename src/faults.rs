//! Faults and latency injected into answers, for stubs and proxies alike.
//!
//! Pure logic: parsing fault specs (`--latency`, `--error-rate`, … and the body of
//! `POST /__envd/faults`), the settings in force, and the [`Decision`] for each request,
//! drawn from a seeded generator. No IO, no tokio, no hyper: the server waits out the delay,
//! answers the injected error or resets the connection (`server::with_faults`).
//!
//! Invariant: with faults off, [`Injector::decide`] costs one relaxed atomic load — no lock,
//! no allocation, no draw. With a seed, the same sequence of requests gets the same
//! sequence of decisions.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{json, Value};

/// The status of an injected error when none is given: what an overloaded service answers.
pub const DEFAULT_ERROR_STATUS: u16 = 503;

const LATENCY_EXPECTED: &str =
    "a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded";
const RATE_EXPECTED: &str = "a number from 0 to 1";
const STATUS_EXPECTED: &str = "an HTTP error status (400-599)";
const FIELDS: &str = "latency, errorRate, errorStatus, resetRate, interaction";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("{field}: expected {expected}, found {found}")]
    Invalid {
        /// The flag (`--latency`) or the JSON field (`/latency`).
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error("/{field}: unknown field, expected one of {FIELDS}")]
    UnknownField { field: String },
    #[error("expected a JSON object with some of {FIELDS}: {0}")]
    Body(String),
}

fn invalid(field: &str, expected: &'static str, found: impl fmt::Display) -> FaultError {
    FaultError::Invalid {
        field: field.to_owned(),
        expected,
        found: found.to_string(),
    }
}

/// `200ms`, `1.5s`, `2m`, `1h`: a number and a unit; `None` for anything else.
pub fn duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// How long to wait before answering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    /// `median * exp(sigma * z)` with `z` standard normal: long-tailed, like real services.
    LogNormal {
        median: Duration,
        sigma: f64,
    },
    /// The latency recorded with each interaction (`metadata.envd.latencyMs`); none for
    /// answers without one.
    Recorded,
}

impl Latency {
    /// Parses a latency spec; errors name `field`.
    pub fn parse(field: &str, text: &str) -> Result<Latency, FaultError> {
        let wrong = || invalid(field, LATENCY_EXPECTED, format_args!("{text:?}"));
        if text == "recorded" {
            return Ok(Latency::Recorded);
        }
        let Some(parameters) = text.strip_prefix("lognormal:") else {
            return duration(text).map(Latency::Fixed).ok_or_else(wrong);
        };
        let (mut median, mut sigma) = (None, None);
        for parameter in parameters.split(',') {
            match parameter.trim().split_once('=') {
                Some(("median", value)) => median = Some(duration(value).ok_or_else(wrong)?),
                Some(("sigma", value)) => {
                    let value: f64 = value.parse().map_err(|_| wrong())?;
                    if !(value.is_finite() && value >= 0.0) {
                        return Err(wrong());
                    }
                    sigma = Some(value);
                }
                _ => return Err(wrong()),
            }
        }
        match (median, sigma) {
            (Some(median), Some(sigma)) => Ok(Latency::LogNormal { median, sigma }),
            _ => Err(wrong()),
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Latency::Fixed(delay) => f.write_str(&millis(*delay)),
            Latency::LogNormal { median, sigma } => {
                write!(f, "lognormal:median={},sigma={sigma}", millis(*median))
            }
            Latency::Recorded => f.write_str("recorded"),
        }
    }
}

/// `200ms`, `83.214ms`: how delays are shown in headers and the admin API.
pub fn millis(delay: Duration) -> String {
    let ms = delay.as_secs_f64() * 1000.0;
    if ms.fract() == 0.0 {
        format!("{ms}ms")
    } else {
        let text = format!("{ms:.3}");
        format!("{}ms", text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// The faults for some answers: all of them, or one interaction's.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub latency: Option<Latency>,
    /// The share of answers replaced by an injected `error_status`.
    pub error_rate: f64,
    pub error_status: u16,
    /// The share of requests whose connection is reset without an answer.
    pub reset_rate: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: None,
            error_rate: 0.0,
            error_status: DEFAULT_ERROR_STATUS,
            reset_rate: 0.0,
        }
    }
}

impl Faults {
    /// From the command line's flags; errors name the flag.
    pub fn from_flags(
        latency: Option<&str>,
        error_rate: Option<f64>,
        error_status: Option<u16>,
        reset_rate: Option<f64>,
    ) -> Result<Faults, FaultError> {
        Ok(Faults {
            latency: latency
                .map(|text| Latency::parse("--latency", text))
                .transpose()?,
            error_rate: error_rate
                .map(|rate| checked_rate("--error-rate", rate))
                .transpose()?
                .unwrap_or(0.0),
            error_status: error_status
                .map(|status| checked_status("--error-status", status.into()))
                .transpose()?
                .unwrap_or(DEFAULT_ERROR_STATUS),
            reset_rate: reset_rate
                .map(|rate| checked_rate("--reset-rate", rate))
                .transpose()?
                .unwrap_or(0.0),
        })
    }

    pub fn is_off(&self) -> bool {
        self.latency.is_none() && self.error_rate == 0.0 && self.reset_rate == 0.0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "latency": self.latency.map(|latency| latency.to_string()),
            "errorRate": self.error_rate,
            "errorStatus": self.error_status,
            "resetRate": self.reset_rate,
        })
    }
}

fn checked_rate(field: &str, rate: f64) -> Result<f64, FaultError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(invalid(field, RATE_EXPECTED, rate))
    }
}

fn checked_status(field: &str, status: u64) -> Result<u16, FaultError> {
    match u16::try_from(status) {
        Ok(status) if (400..=599).contains(&status) => Ok(status),
        _ => Err(invalid(field, STATUS_EXPECTED, status)),
    }
}

/// A `POST /__envd/faults` body: faults for every answer, or for one interaction's.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// An interaction's description; `None` for all answers.
    pub interaction: Option<String>,
    /// Replaces what was in force for those answers; fields left out are off.
    pub faults: Faults,
}

impl Request {
    /// Parses `{"latency": …, "errorRate": …, "errorStatus": …, "resetRate": …,
    /// "interaction": …}`; errors name the JSON field and what was expected.
    pub fn parse(body: &[u8]) -> Result<Request, FaultError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|error| FaultError::Body(error.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(FaultError::Body(format!("found {value}")));
        };
        let mut request = Request {
            interaction: None,
            faults: Faults::default(),
        };
        for (name, value) in &fields {
            let field = format!("/{name}");
            let number = |expected| {
                value
                    .as_f64()
                    .ok_or_else(|| invalid(&field, expected, value))
            };
            match name.as_str() {
                "latency" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| invalid(&field, LATENCY_EXPECTED, value))?;
                    request.faults.latency = Some(Latency::parse(&field, text)?);
                }
                "errorRate" => {
                    request.faults.error_rate = checked_rate(&field, number(RATE_EXPECTED)?)?;
                }
                "resetRate" => {
                    request.faults.reset_rate = checked_rate(&field, number(RATE_EXPECTED)?)?;
                }
                "errorStatus" => {
                    let status = value
                        .as_u64()
                        .ok_or_else(|| invalid(&field, STATUS_EXPECTED, value))?;
                    request.faults.error_status = checked_status(&field, status)?;
                }
                "interaction" => {
                    let description = value
                        .as_str()
                        .ok_or_else(|| invalid(&field, "an interaction's description", value))?;
                    request.interaction = Some(description.to_owned());
                }
                _ => {
                    return Err(FaultError::UnknownField {
                        field: name.clone(),
                    })
                }
            }
        }
        Ok(request)
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Waited before the outcome, whatever it is.
    pub delay: Option<Duration>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The real answer.
    Answer,
    /// An injected error with this status instead of the real answer.
    Error(u16),
    /// The connection is reset without an answer.
    Reset,
}

impl Decision {
    /// Nothing to do: the real answer, at once.
    pub fn is_none(&self) -> bool {
        self.delay.is_none() && self.outcome == Outcome::Answer
    }
}

/// The value of the `x-envd-fault` header: `latency=200ms`, `error=503`,
/// `latency=83.2ms, error=503`, `reset`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::with_capacity(2);
        if let Some(delay) = self.delay {
            parts.push(format!("latency={}", millis(delay)));
        }
        match self.outcome {
            Outcome::Answer => {}
            Outcome::Error(status) => parts.push(format!("error={status}")),
            Outcome::Reset => parts.push("reset".to_owned()),
        }
        f.write_str(&parts.join(", "))
    }
}

/// Uniform draws in `[0, 1)`, four per request: reset, error, and two for the latency.
pub type Draws = [f64; 4];

/// The decision for one request under `faults`, given the interaction's recorded latency.
/// A reset is decided first, then an error; the delay applies to every outcome.
pub fn decide(faults: &Faults, recorded: Option<Duration>, draws: Draws) -> Decision {
    let [reset, error, u1, u2] = draws;
    let outcome = if reset < faults.reset_rate {
        Outcome::Reset
    } else if error < faults.error_rate {
        Outcome::Error(faults.error_status)
    } else {
        Outcome::Answer
    };
    let delay = match faults.latency {
        None => None,
        Some(Latency::Fixed(delay)) => Some(delay),
        Some(Latency::Recorded) => recorded,
        Some(Latency::LogNormal { median, sigma }) => {
            // Box–Muller: 1 - u1 is in (0, 1], so its logarithm is finite.
            let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            Duration::try_from_secs_f64(median.as_secs_f64() * (sigma * z).exp()).ok()
        }
    };
    Decision { delay, outcome }
}

/// splitmix64 over an atomic counter: lock-free, and one `fetch_add` per request keeps a
/// request's four draws together when requests race.
#[derive(Debug)]
struct Generator {
    state: AtomicU64,
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Generator {
    fn new(seed: u64) -> Self {
        Generator {
            state: AtomicU64::new(seed),
        }
    }

    fn draws(&self) -> Draws {
        let base = self
            .state
            .fetch_add(GAMMA.wrapping_mul(4), Ordering::Relaxed);
        let unit = |k: u64| {
            let mut z = base.wrapping_add(GAMMA.wrapping_mul(k));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            // The top 53 bits as a fraction: uniform in [0, 1).
            (z >> 11) as f64 / (1u64 << 53) as f64
        };
        [unit(1), unit(2), unit(3), unit(4)]
    }
}

/// A seed for runs that name none (it is shown by `GET /__envd/faults`, so a run can be
/// repeated with `--seed`).
pub fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id())
}

/// The faults in force: for all answers, and per interaction description.
#[derive(Debug, Clone, Default, PartialEq)]
struct Active {
    all: Faults,
    by_interaction: HashMap<String, Faults>,
}

impl Active {
    fn is_off(&self) -> bool {
        self.all.is_off() && self.by_interaction.values().all(Faults::is_off)
    }
}

/// The faults of a running stub or proxy: the start-up ones, what `POST /__envd/faults`
/// set since, and the generator every decision draws from.
#[derive(Debug)]
pub struct Injector {
    /// What `DELETE /__envd/faults` returns to: the command line's faults.
    startup: Faults,
    /// Checked first, so that a request with faults off costs one atomic load.
    on: AtomicBool,
    /// Replaced whole by the admin API; readers never wait.
    active: ArcSwap<Active>,
    /// Serializes admin changes, so `on` always describes the last `active` stored.
    changing: Mutex<()>,
    generator: Generator,
    seed: u64,
}

impl Injector {
    pub fn new(startup: Faults, seed: u64) -> Self {
        let active = Active {
            all: startup.clone(),
            by_interaction: HashMap::new(),
        };
        Injector {
            on: AtomicBool::new(!active.is_off()),
            active: ArcSwap::from_pointee(active),
            startup,
            changing: Mutex::new(()),
            generator: Generator::new(seed),
            seed,
        }
    }

    /// Whether any fault is in force; when not, `decide` returns `None` at once.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The decision for an answer of `interaction` (a description; `None` for a miss or a
    /// forwarded request), with the latency recorded for it. `None`: answer normally.
    pub fn decide(
        &self,
        interaction: Option<&str>,
        recorded: Option<Duration>,
    ) -> Option<Decision> {
        if !self.is_on() {
            return None;
        }
        let active = self.active.load();
        let faults = interaction
            .and_then(|description| active.by_interaction.get(description))
            .unwrap_or(&active.all);
        if faults.is_off() {
            return None;
        }
        let decision = decide(faults, recorded, self.generator.draws());
        (!decision.is_none()).then_some(decision)
    }

    /// Puts a `POST /__envd/faults` in force.
    pub fn set(&self, request: Request) {
        self.change(|active| match request.interaction {
            Some(description) => {
                active.by_interaction.insert(description, request.faults);
            }
            None => active.all = request.faults,
        });
    }

    /// Back to the start-up faults.
    pub fn clear(&self) {
        let startup = self.startup.clone();
        self.change(|active| {
            *active = Active {
                all: startup,
                by_interaction: HashMap::new(),
            }
        });
    }

    fn change(&self, edit: impl FnOnce(&mut Active)) {
        let _changing = self
            .changing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut active = Active::clone(&self.active.load());
        edit(&mut active);
        self.on.store(!active.is_off(), Ordering::Relaxed);
        self.active.store(Arc::new(active));
    }

    /// What `GET /__envd/faults` shows.
    pub fn to_json(&self) -> Value {
        let active = self.active.load();
        let interactions: serde_json::Map<String, Value> = active
            .by_interaction
            .iter()
            .map(|(description, faults)| (description.clone(), faults.to_json()))
            .collect();
        json!({
            "all": active.all.to_json(),
            "interactions": interactions,
            "startup": self.startup.to_json(),
            "seed": self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `input` is a `POST /__envd/faults` body; `expected` is what it parses to (the
    /// faults as JSON, with `"interaction"` when one is named) or the error message.
    fn check(input: &str, expected: Result<Value, &str>) {
        let got = Request::parse(input.as_bytes()).map(|request| {
            let mut json = request.faults.to_json();
            if let Some(description) = request.interaction {
                json["interaction"] = Value::String(description);
            }
            json
        });
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
            (Err(error), Err(message)) => assert_eq!(error.to_string(), message, "{input}"),
            (got, want) => panic!("{input}: got {got:?}, expected {want:?}"),
        }
    }

    fn faults(latency: Option<&str>, error_rate: f64, status: u16, reset_rate: f64) -> Value {
        json!({"latency": latency, "errorRate": error_rate, "errorStatus": status, "resetRate": reset_rate})
    }

    #[test]
    fn fault_requests_parse_or_name_the_field() {
        check("{}", Ok(faults(None, 0.0, 503, 0.0)));
        check(
            r#"{"latency": "200ms", "errorRate": 0.05, "errorStatus": 500, "resetRate": 0.01}"#,
            Ok(faults(Some("200ms"), 0.05, 500, 0.01)),
        );
        check(
            r#"{"latency": "1.5s"}"#,
            Ok(faults(Some("1500ms"), 0.0, 503, 0.0)),
        );
        check(
            r#"{"latency": "lognormal:median=80ms,sigma=0.4"}"#,
            Ok(faults(
                Some("lognormal:median=80ms,sigma=0.4"),
                0.0,
                503,
                0.0,
            )),
        );
        check(
            r#"{"latency": "lognormal:sigma=0,median=1s"}"#,
            Ok(faults(
                Some("lognormal:median=1000ms,sigma=0"),
                0.0,
                503,
                0.0,
            )),
        );
        let mut with_interaction = faults(Some("recorded"), 1.0, 503, 0.0);
        with_interaction["interaction"] = json!("get order 1");
        check(
            r#"{"latency": "recorded", "errorRate": 1, "interaction": "get order 1"}"#,
            Ok(with_interaction),
        );
        check(
            r#"{"errorRate": 1.5}"#,
            Err("/errorRate: expected a number from 0 to 1, found 1.5"),
        );
        check(
            r#"{"resetRate": -0.1}"#,
            Err("/resetRate: expected a number from 0 to 1, found -0.1"),
        );
        check(
            r#"{"errorRate": "5%"}"#,
            Err(r#"/errorRate: expected a number from 0 to 1, found "5%""#),
        );
        check(
            r#"{"errorStatus": 200}"#,
            Err("/errorStatus: expected an HTTP error status (400-599), found 200"),
        );
        check(
            r#"{"latency": "fast"}"#,
            Err(
                r#"/latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found "fast""#,
            ),
        );
        check(
            r#"{"latency": "200"}"#,
            Err(
                r#"/latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found "200""#,
            ),
        );
        check(
            r#"{"latency": "lognormal:median=80ms"}"#,
            Err(
                r#"/latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found "lognormal:median=80ms""#,
            ),
        );
        check(
            r#"{"latency": "lognormal:median=80ms,sigma=-1"}"#,
            Err(
                r#"/latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found "lognormal:median=80ms,sigma=-1""#,
            ),
        );
        check(
            r#"{"latency": 200}"#,
            Err("/latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found 200"),
        );
        check(
            r#"{"error_rate": 0.5}"#,
            Err("/error_rate: unknown field, expected one of latency, errorRate, errorStatus, resetRate, interaction"),
        );
        check(
            "[1]",
            Err("expected a JSON object with some of latency, errorRate, errorStatus, resetRate, interaction: found [1]"),
        );
    }

    #[test]
    fn flags_are_named_in_errors() {
        let flags = [
            (
                Faults::from_flags(Some("soon"), None, None, None),
                r#"--latency: expected a duration such as 200ms, lognormal:median=80ms,sigma=0.4, or recorded, found "soon""#,
            ),
            (
                Faults::from_flags(None, Some(2.0), None, None),
                "--error-rate: expected a number from 0 to 1, found 2",
            ),
            (
                Faults::from_flags(None, None, Some(302), None),
                "--error-status: expected an HTTP error status (400-599), found 302",
            ),
            (
                Faults::from_flags(None, None, None, Some(f64::NAN)),
                "--reset-rate: expected a number from 0 to 1, found NaN",
            ),
        ];
        for (got, message) in flags {
            assert_eq!(got.unwrap_err().to_string(), message);
        }
    }

    /// The headers of `n` decisions under the faults of a request body.
    fn decisions(body: &str, seed: u64, n: usize) -> Vec<String> {
        let injector = Injector::new(Faults::default(), seed);
        injector.set(Request::parse(body.as_bytes()).expect("valid body"));
        (0..n)
            .map(|_| {
                injector
                    .decide(Some("an interaction"), Some(Duration::from_micros(41_700)))
                    .map(|decision| decision.to_string())
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn decisions_follow_the_rates_and_the_seed() {
        let half = r#"{"errorRate": 0.5, "resetRate": 0.1}"#;
        assert_eq!(
            decisions(half, 7, 200),
            decisions(half, 7, 200),
            "same seed"
        );
        assert_ne!(
            decisions(half, 7, 200),
            decisions(half, 8, 200),
            "other seed"
        );
        let cases: [(&str, &[&str]); 6] = [
            (r#"{"errorRate": 0}"#, &[""]),
            (r#"{"errorRate": 1, "errorStatus": 500}"#, &["error=500"]),
            (r#"{"resetRate": 1, "errorRate": 1}"#, &["reset"]),
            (r#"{"latency": "200ms"}"#, &["latency=200ms"]),
            (r#"{"latency": "recorded"}"#, &["latency=41.7ms"]),
            (half, &["", "error=503", "reset"]),
        ];
        for (body, allowed) in cases {
            let seen = decisions(body, 1, 500);
            for header in &seen {
                assert!(allowed.contains(&header.as_str()), "{body}: {header:?}");
            }
            for header in allowed {
                assert!(
                    seen.contains(&header.to_string()),
                    "{body}: never {header:?}"
                );
            }
        }
    }

    #[test]
    fn the_lognormal_median_holds_over_many_draws() {
        let generator = Generator::new(42);
        let faults = Faults {
            latency: Some(Latency::parse("t", "lognormal:median=80ms,sigma=0.4").unwrap()),
            ..Faults::default()
        };
        let mut delays: Vec<f64> = (0..20_001)
            .map(|_| {
                decide(&faults, None, generator.draws())
                    .delay
                    .unwrap()
                    .as_secs_f64()
            })
            .collect();
        delays.sort_by(f64::total_cmp);
        let median = delays[delays.len() / 2] * 1000.0;
        assert!((median - 80.0).abs() < 2.0, "median {median}ms");
        // exp(0.4 * 1.2816) above the median is the 90th percentile.
        let p90 = delays[delays.len() * 9 / 10] * 1000.0;
        let want = 80.0 * (0.4f64 * 1.2816).exp();
        assert!(
            (p90 - want).abs() < want * 0.05,
            "p90 {p90}ms, expected {want}ms"
        );
    }

    #[test]
    fn per_interaction_faults_leave_the_others_alone_and_clear() {
        let injector = Injector::new(Faults::default(), 3);
        assert!(!injector.is_on());
        injector.set(Request::parse(br#"{"errorRate": 1, "interaction": "a"}"#).unwrap());
        let header = |interaction| {
            injector
                .decide(Some(interaction), None)
                .map(|d| d.to_string())
        };
        assert_eq!(header("a").as_deref(), Some("error=503"));
        assert_eq!(header("b"), None);
        injector.clear();
        assert_eq!((header("a"), injector.is_on()), (None, false));
    }
}
