//! `envd proxy`: forward to a staging service, record what crossed, and with `--spy` answer
//! from the recording first.
//!
//! Pass-through traffic is streamed both ways. When recording, both bodies are buffered
//! (they are recorded whole) and the response is released only once its exchange is durable
//! (see `recording::recorder`). An exchange that repeats one already recorded is known by
//! its fingerprint and released at once: it is durable already.

mod deadline;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response};
use serde_json::json;

pub use upstream::{gateway_route, Upstream, UpstreamError};

use crate::contract::ContractError;
use crate::faults::{Decision, Outcome};
use crate::journal::{self, Entry};
use crate::matching::Received;
use crate::recording::recorder::{RecordError, Recorder};
use crate::recording::{records_request_header, Exchange, Fingerprint, Redaction, Wire};
use crate::server::{
    self, faults_admin, json_reply, lock, problem, read_body, response, with_faults, Body, Handler,
    Limits,
};
use crate::stub::{Catalog, Stub};

/// How long an upstream may take to answer before the client gets 504: long enough for a
/// slow staging service, short enough that a test fails with a reason instead of hanging.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("--spy needs --record FILE: the recording it answers from and adds to")]
    SpyWithoutRecording,
    #[error("--header {spec:?}: {reason}")]
    Header { spec: String, reason: String },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Everything `envd proxy` needs, validated.
#[derive(Debug, Clone)]
pub struct Options {
    pub upstream: Upstream,
    pub address: SocketAddr,
    pub record: Option<PathBuf>,
    pub spy: bool,
    /// Headers added to every upstream request; their values never reach a recording or a
    /// log.
    pub inject: Vec<(HeaderName, HeaderValue)>,
    pub redaction: Redaction,
    pub consumer: String,
    pub provider: String,
    pub timeout: Duration,
    pub limits: Limits,
    /// The faults in force from the start (`--latency`, `--error-rate`, …).
    pub faults: crate::faults::Faults,
    /// Seeds fault decisions (`--seed`); a random one when `None`.
    pub seed: Option<u64>,
}

/// A running proxy's state, shared by every connection.
pub struct Proxy {
    upstream: Upstream,
    inject: Vec<(HeaderName, HeaderValue)>,
    redaction: Redaction,
    recorder: Option<Recorder>,
    /// The recording as a stub: answers first in spy mode; its journal and its faults are
    /// the proxy's.
    replay: Arc<Stub>,
    spy: bool,
    timeout: Duration,
    limits: Limits,
    /// Exchanges known to be durable in the recording, by fingerprint, with what the
    /// journal shows of them: a repeat is recorded already (see `forward_recorded`).
    known: Mutex<foldhash::HashMap<Fingerprint, journal::Exchange>>,
}

/// Starts the proxy, calls `listening` with the bound address and the proxy's journal, and
/// serves until `shutdown`; then writes the recording whole.
pub async fn run(
    options: Options,
    listening: impl FnOnce(SocketAddr, Arc<crate::journal::Journal>),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ProxyError> {
    if options.spy && options.record.is_none() {
        return Err(ProxyError::SpyWithoutRecording);
    }
    let recorder = match &options.record {
        Some(path) => Some(Recorder::open(path, &options.consumer, &options.provider)?),
        None => None,
    };
    let catalog = match (&options.record, options.spy) {
        (Some(path), true) if path.exists() => crate::stub::load(std::slice::from_ref(path))?,
        _ => Catalog::default(),
    };
    let (listener, address) = crate::server::bind(options.address)
        .await
        .map_err(|source| ProxyError::Bind {
            address: options.address,
            source,
        })?;
    let proxy = Arc::new(Proxy {
        upstream: options.upstream,
        inject: options.inject,
        redaction: options.redaction,
        recorder,
        replay: Arc::new(Stub::new(
            catalog,
            Vec::new(),
            crate::stub::injector(options.faults, options.seed),
        )),
        spy: options.spy,
        timeout: options.timeout,
        limits: options.limits,
        known: Mutex::default(),
    });
    tracing::info!(upstream = %proxy.upstream, recording = ?options.record, spy = options.spy, "proxy ready");
    listening(address, proxy.replay.journal().clone());
    server::serve(listener, proxy.clone(), options.limits, async move {
        shutdown.await;
        tracing::info!("stopping: no new connections; draining open ones");
    })
    .await;
    let proxy = Arc::into_inner(proxy).expect("connections hold no proxy after draining");
    if let Some(recorder) = proxy.recorder {
        let path = recorder.path().to_owned();
        let count = recorder.finish().await?;
        tracing::info!(interactions = count, recording = %path.display(), "recording written");
    }
    Ok(())
}

/// Why an upstream gave no answer: the status to answer with, and the words.
pub struct Failure {
    pub status: u16,
    pub title: &'static str,
    pub why: String,
}

/// Sends a client's request on to `upstream`: its origin-form target goes under the
/// upstream's base path, end-to-end headers are kept (Host becomes the upstream's),
/// X-Forwarded-For/-Proto/-Host are added and `inject` is set over whatever the client sent.
/// The upstream has `timeout` from `since`, when the request arrived.
///
/// This is the pass-through hot path: the client's header table is rewritten in place (no
/// copy), and nothing is formatted that a request does not need.
pub async fn send(
    upstream: &Upstream,
    mut request: Request<Body>,
    inject: &[(HeaderName, HeaderValue)],
    peer: SocketAddr,
    timeout: Duration,
    since: Instant,
) -> Result<Response<Incoming>, Failure> {
    *request.uri_mut() = upstream.uri(request.uri().path_and_query());
    // The client's protocol is not the upstream's: the pool speaks what the upstream offers.
    *request.version_mut() = hyper::Version::HTTP_11;
    let headers = request.headers_mut();
    drop_hop_by_hop(headers);
    // Set here, not by the client, which would format it anew for every request.
    let client_host = headers.insert(hyper::header::HOST, upstream.host_header().clone());
    match headers.entry(X_FORWARDED_FOR) {
        hyper::header::Entry::Occupied(mut earlier) => {
            let joined = earlier.get().to_str().ok().and_then(|earlier| {
                HeaderValue::from_str(&format!("{earlier}, {}", peer.ip())).ok()
            });
            if let Some(joined) = joined {
                earlier.insert(joined);
            }
        }
        hyper::header::Entry::Vacant(vacant) => {
            vacant.insert(address_value(peer.ip()));
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = client_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    for (name, value) in inject {
        headers.insert(name.clone(), value.clone());
    }
    let answer = upstream.client().request(request);
    let deadline = tokio::time::Instant::from_std(since) + timeout;
    match deadline::within(upstream.timers(), deadline, answer).await {
        Some(Ok(answer)) => Ok(answer),
        Some(Err(error)) => Err(Failure {
            status: 502,
            title: "upstream failed",
            why: chain(&error),
        }),
        None => Err(Failure {
            status: 504,
            title: "upstream timed out",
            why: format!("no answer within {timeout:?}"),
        }),
    }
}

/// An IP address as a header value. IPv4 is written by hand: `Display` costs more than all
/// the rest of a forwarded request's header rewriting.
fn address_value(ip: std::net::IpAddr) -> HeaderValue {
    let std::net::IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string()).expect("an IPv6 address is a header value");
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (index, octet) in v4.octets().into_iter().enumerate() {
        if index > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    HeaderValue::from_bytes(&text[..len]).expect("digits and dots are a header value")
}

/// Parses `--header 'NAME: VALUE'`, expanding `${VAR}` from `variable`. A missing variable
/// is an error naming it; the value itself never appears in an error or a log.
pub fn injected_header(
    spec: &str,
    variable: impl FnMut(&str) -> Option<String>,
) -> Result<(HeaderName, HeaderValue), ProxyError> {
    let fail = |reason: String| ProxyError::Header {
        spec: spec.split(':').next().unwrap_or_default().to_owned() + ": …",
        reason,
    };
    let (name, template) = spec
        .split_once(':')
        .ok_or_else(|| fail("expected NAME: VALUE".into()))?;
    sensitive_header(name, template, variable).map_err(fail)
}

/// A header to add upstream from a `NAME` and a value template with `${VAR}` references,
/// marked sensitive so that no log shows it. The error names what is wrong, never the
/// value.
pub fn sensitive_header(
    name: &str,
    template: &str,
    variable: impl FnMut(&str) -> Option<String>,
) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
    let value =
        crate::vars::expand(template.trim(), variable).map_err(|error| error.to_string())?;
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| "the value is not a valid header value".to_owned())?;
    value.set_sensitive(true);
    Ok((name, value))
}

impl Handler for Proxy {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        // Never an open proxy: only origin-form targets are forwarded, to the one upstream.
        if server::is_open_proxy_request(&request) {
            return response(problem(
                400,
                "not an open proxy",
                "envd forwards only to its configured upstream: send origin-form requests (GET /path)",
            ));
        }
        // Off the pass-through path, futures are boxed: the one hyper moves for every
        // request stays small, and copying it showed as a cost of its own.
        if request.uri().path().starts_with("/__envd/") {
            let (parts, body) = request.into_parts();
            let body = match Box::pin(read_body(body, self.limits)).await {
                Ok(body) => body,
                Err(reply) => return response(reply),
            };
            let admin = parts.uri.path().trim_start_matches("/__envd/");
            return response(self.admin(&parts.method, admin, &body));
        }
        if let Some(recorder) = &self.recorder {
            return Box::pin(self.record(recorder, request, peer, started)).await;
        }
        let (parts, body) = request.into_parts();
        match self.decide(&parts, started) {
            None => self.pass(parts, body, peer, started).await,
            decision => {
                Box::pin(with_faults(decision, self.pass(parts, body, peer, started))).await
            }
        }
    }
}

/// Repeats of this many distinct exchanges are known without asking the recorder; past it
/// the list starts anew (a repeat then costs what a new exchange costs, once). Its
/// journal views hold no more than the journal itself may.
const KNOWN_EXCHANGES: usize = journal::DEFAULT_CAPACITY;

impl Proxy {
    /// The fault decision for a forwarded request (faults off: one atomic load). A fault
    /// answered instead of the upstream is journaled here.
    fn decide(&self, parts: &Parts, started: Instant) -> Option<Decision> {
        let faults = self.replay.faults();
        if !faults.is_on() {
            return None;
        }
        // Forwarded requests are known by what a recording would call them.
        let path = crate::matching::percent_decoded(parts.uri.path());
        let description = match parts.uri.query().filter(|query| !query.is_empty()) {
            Some(query) => format!("{} {path}?{query}", parts.method),
            None => format!("{} {path}", parts.method),
        };
        let decision = faults.decide(Some(&description), None)?;
        if decision.outcome != Outcome::Answer {
            let note = format!("injected fault: {decision}; not forwarded");
            let status = match decision.outcome {
                Outcome::Error(status) => status,
                // A reset sends no status.
                _ => 0,
            };
            self.journal(parts, started, status, note, None);
        }
        Some(decision)
    }

    /// Streams a request to the upstream and its answer back.
    async fn pass(
        &self,
        mut parts: Parts,
        body: Incoming,
        peer: SocketAddr,
        started: Instant,
    ) -> Response<Body> {
        match self
            .send(&mut parts, Either::Right(body), peer, started)
            .await
        {
            Ok(answer) => {
                let (mut answer_parts, answer_body) = answer.into_parts();
                strip_hop_by_hop(&mut answer_parts.headers);
                let status = answer_parts.status.as_u16();
                // The upstream is fixed (GET /__envd/health names it): no need to format
                // it into every entry of the hot path.
                self.journal(&parts, started, status, "forwarded", None);
                Response::from_parts(answer_parts, Either::Right(answer_body))
            }
            Err(failed) => failed,
        }
    }

    /// Sends a request upstream. Its header table goes as it is (rewritten in place);
    /// `parts` keep only the trace id, for the journal. The error is the answer to send.
    async fn send(
        &self,
        parts: &mut Parts,
        body: Body,
        peer: SocketAddr,
        started: Instant,
    ) -> Result<Response<Incoming>, Response<Body>> {
        let headers = std::mem::take(&mut parts.headers);
        if let Some(traceparent) = headers.get(TRACEPARENT) {
            parts.headers.insert(TRACEPARENT, traceparent.clone());
        }
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = parts.method.clone();
        *outgoing.uri_mut() = parts.uri.clone();
        *outgoing.headers_mut() = headers;
        send(
            &self.upstream,
            outgoing,
            &self.inject,
            peer,
            self.timeout,
            started,
        )
        .await
        .map_err(|failure| self.failed(parts, started, failure.status, failure.title, &failure.why))
    }

    /// With a recorder: the request body is read whole; in spy mode the recording answers
    /// what it matches; the rest is forwarded and recorded.
    async fn record(
        &self,
        recorder: &Recorder,
        request: Request<Incoming>,
        peer: SocketAddr,
        started: Instant,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match read_body(body, self.limits).await {
            Ok(body) => body,
            Err(reply) => return response(reply),
        };
        if self.spy {
            let headers = header_pairs(&parts.headers);
            let received = Received {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query(),
                headers: &headers,
            };
            if let Some((reply, decision)) = self.replay.replay(received, body.clone(), started) {
                return with_faults(decision, async { response(reply) }).await;
            }
        }
        // What a recording keeps of the request's headers, taken before they go upstream
        // (shared, not copied).
        let kept: Vec<(HeaderName, HeaderValue)> = parts
            .headers
            .iter()
            .filter(|(name, _)| records_request_header(&self.redaction, name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let decision = self.decide(&parts, started);
        with_faults(
            decision,
            self.forward_recorded(recorder, parts, body, kept, peer, started),
        )
        .await
    }

    /// Forwards a request, reads the answer whole, and releases it once its exchange is
    /// durable. A repeat of an exchange already recorded is known by its fingerprint: it
    /// is durable already, so it costs a hash instead of an interaction and a trip to the
    /// recorder.
    async fn forward_recorded(
        &self,
        recorder: &Recorder,
        mut parts: Parts,
        body: Bytes,
        kept: Vec<(HeaderName, HeaderValue)>,
        peer: SocketAddr,
        started: Instant,
    ) -> Response<Body> {
        let sent = Instant::now();
        let upstream = Either::Left(Full::new(body.clone()));
        let answer = match self.send(&mut parts, upstream, peer, started).await {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let (mut answer_parts, answer_body) = answer.into_parts();
        strip_hop_by_hop(&mut answer_parts.headers);
        let read = Limited::new(answer_body, self.limits.max_body_bytes).collect();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let answer_body = match deadline::within(self.upstream.timers(), deadline, read).await {
            Some(Ok(collected)) => collected.to_bytes(),
            Some(Err(error)) => {
                let why = format!("the response body broke off: {error}");
                return self.failed(&parts, started, 502, "upstream failed", &why);
            }
            None => {
                let why = format!("the response body did not arrive within {:?}", self.timeout);
                return self.failed(&parts, started, 504, "upstream timed out", &why);
            }
        };
        let latency = sent.elapsed();
        let request_body = self.redaction.body(
            &body,
            content_type(
                kept.iter()
                    .find(|(name, _)| name == hyper::header::CONTENT_TYPE)
                    .map(|(_, value)| value),
            ),
        );
        let response_body = self.redaction.body(
            &answer_body,
            content_type(answer_parts.headers.get(hyper::header::CONTENT_TYPE)),
        );
        let status = answer_parts.status.as_u16();
        let wire = Wire {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            request_headers: &kept,
            request_body: &request_body,
            status,
            response_headers: &answer_parts.headers,
            response_body: &response_body,
        };
        let fingerprint = wire.fingerprint(&self.redaction);
        let known = lock(&self.known).get(&fingerprint).cloned();
        let journaled = match known {
            Some(journaled) => journaled,
            None => {
                if let Err(error) = self.append(recorder, wire.exchange(latency)).await {
                    // The upstream answered, but the exchange is not durable: say so rather
                    // than hand out a response the recording will not have.
                    let why = format!("the exchange could not be recorded: {error}");
                    return self.failed(&parts, started, 502, "recording failed", &why);
                }
                let journaled = journal::Exchange::redacted(&wire, &self.redaction);
                let mut known = lock(&self.known);
                if known.len() >= KNOWN_EXCHANGES {
                    known.clear();
                }
                known.insert(fingerprint, journaled.clone());
                journaled
            }
        };
        self.journal(
            &parts,
            started,
            status,
            "forwarded and recorded",
            Some(Box::new(journaled)),
        );
        Response::from_parts(answer_parts, Either::Left(Full::new(answer_body)))
    }

    /// Appends an exchange to the recording; returns once it is durable.
    async fn append(&self, recorder: &Recorder, exchange: Exchange) -> Result<(), RecordError> {
        let new = recorder
            .append(exchange.interaction(&self.redaction))
            .await?;
        if new && self.spy {
            // The new exchange is answered from the recording from now on.
            let document = recorder.snapshot().await?;
            let text = document.to_string();
            match crate::contract::load_text(recorder.path(), text.as_bytes()) {
                Ok((interactions, skipped)) => self
                    .replay
                    .replace_catalog(Catalog::new(interactions, skipped)),
                Err(error) => {
                    tracing::error!(%error, "the recording no longer loads as a contract")
                }
            }
        }
        Ok(())
    }

    fn failed(
        &self,
        parts: &Parts,
        started: Instant,
        status: u16,
        title: &str,
        why: &str,
    ) -> Response<Body> {
        let target = self.upstream.uri(parts.uri.path_and_query());
        let detail = format!("{} {target}: {why}", parts.method);
        tracing::warn!(%status, %detail, "upstream error");
        self.journal(parts, started, status, detail.clone(), None);
        response(crate::server::problem_reply(
            status,
            &json!({
                "type": "urn:envd:problem:upstream",
                "title": title,
                "status": status,
                "detail": detail,
                "upstream": self.upstream.to_string(),
            }),
            false,
        ))
    }

    fn journal(
        &self,
        parts: &Parts,
        started: Instant,
        status: u16,
        note: impl Into<std::borrow::Cow<'static, str>>,
        exchange: Option<Box<journal::Exchange>>,
    ) {
        let target = parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |target| target.as_str());
        self.replay.journal().record(Entry {
            seq: 0,
            at_ms: journal::now_ms(),
            method: journal::method(parts.method.as_str()),
            target: target.to_owned(),
            status,
            miss: false,
            matched: None,
            closest: Vec::new(),
            duration_us: started.elapsed().as_micros() as u64,
            trace_id: parts
                .headers
                .get(TRACEPARENT)
                .and_then(|value| value.to_str().ok())
                .and_then(journal::trace_id),
            note: Some(note.into()),
            exchange,
        });
    }

    fn admin(&self, method: &Method, path: &str, body: &[u8]) -> crate::stub::Reply {
        match (method, path) {
            // Any description: the recording grows, and forwarded requests are known by
            // `METHOD path?query` as a recording describes them.
            (_, "faults") => faults_admin(self.replay.faults(), method, body, |_| true),
            (&Method::GET, "health") => {
                json_reply(&json!({"status": "ok", "upstream": self.upstream.to_string()}))
            }
            (&Method::GET, "journal") => {
                json_reply(&json!({"entries": self.replay.journal().recent(false, 100)}))
            }
            _ => problem(
                404,
                "no such admin endpoint",
                format!("/__envd/{path}: expected one of faults, health, journal"),
            ),
        }
    }
}

fn content_type(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|value| value.to_str().ok())
}

fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(&str, &str)> {
    headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect()
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes the headers that describe the hop, not the message: the standard ones and the
/// ones a `Connection` header names.
fn drop_hop_by_hop(headers: &mut hyper::HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    strip_hop_by_hop(headers);
}

/// Removes the hop-by-hop headers of an upstream's answer (Content-Length stays: it is
/// still true of the body passed on).
pub fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    // Most messages carry none: one pass over the names is cheaper than a lookup for each
    // hop-by-hop header.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

const HOP_BY_HOP: [HeaderName; 8] = [
    hyper::header::CONNECTION,
    hyper::header::PROXY_AUTHENTICATE,
    hyper::header::TE,
    hyper::header::TRAILER,
    hyper::header::TRANSFER_ENCODING,
    hyper::header::UPGRADE,
    KEEP_ALIVE,
    PROXY_CONNECTION,
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.iter().any(|hop| hop == name)
}

/// An error and its causes on one line: `client error (Connect): tcp connect error: …`.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut words = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        words.push_str(": ");
        words.push_str(&cause.to_string());
        source = cause.source();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, expected: Result<(&str, &str), &str>) {
        let variables = |name: &str| (name == "TOKEN").then(|| "s3cr3t".to_owned());
        match (injected_header(spec, variables), expected) {
            (Ok((name, value)), Ok((want_name, want_value))) => {
                assert_eq!(
                    (name.as_str(), value.to_str().unwrap()),
                    (want_name, want_value)
                );
            }
            (Err(error), Err(message)) => {
                assert_eq!(error.to_string(), message);
                assert!(!error.to_string().contains("s3cr3t"));
            }
            (got, want) => panic!("{spec}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn injected_headers_expand_the_environment() {
        check(
            "Authorization: Bearer ${TOKEN}",
            Ok(("authorization", "Bearer s3cr3t")),
        );
        check("X-Team: payments", Ok(("x-team", "payments")));
        check(
            "Authorization: Bearer ${MISSING}",
            Err("--header \"Authorization: …\": ${MISSING} is not set in the environment"),
        );
        check(
            "no colon",
            Err("--header \"no colon: …\": expected NAME: VALUE"),
        );
    }
}
