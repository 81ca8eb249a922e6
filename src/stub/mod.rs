//! `envd stub`: serving Pact interactions over HTTP.
//!
//! [`Stub`] holds what a running stub knows (the catalog, the active provider states, the
//! journal) and decides every answer; `server` only moves bytes between hyper and it, and
//! `watch` swaps the catalog when files change.

mod catalog;
pub mod server;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde_json::{json, Value};

pub use catalog::{ActiveState, Catalog, Reply};

use crate::contract::{self, ContractError};
use crate::faults::{Decision, Faults, Injector, Outcome};
use crate::journal::{self, Closest, Entry, Journal};
use crate::matching::{self, describe, Received};

/// Closest interactions shown for a miss: enough to spot a typo, short enough to read.
pub const CLOSEST_SHOWN: usize = 3;

/// Loads contracts into a catalog; nothing is served until every file has loaded.
pub fn load(paths: &[PathBuf]) -> Result<Catalog, ContractError> {
    let (interactions, skipped) = contract::load(paths)?;
    for message in &skipped.messages {
        tracing::warn!(%message, "skipping a message interaction: envd stubs serve HTTP interactions only");
    }
    Ok(Catalog::new(interactions, skipped))
}

/// A running stub's state, shared by every connection.
#[derive(Debug)]
pub struct Stub {
    /// Swapped whole on reload, so a request sees one consistent set of interactions.
    catalog: ArcSwap<Catalog>,
    /// Replaced whole on `POST /__envd/state`; readers never wait for a writer.
    states: ArcSwap<Vec<ActiveState>>,
    /// What `POST /__envd/reset` returns to: the states given at start.
    initial_states: Arc<Vec<ActiveState>>,
    /// Shared with whoever started the stub (the daemon reads it for `envd journal`).
    journal: Arc<Journal>,
    /// Latency and errors injected into answers (`--latency`, `POST /__envd/faults`).
    faults: Injector,
}

impl Stub {
    pub fn new(catalog: Catalog, states: Vec<ActiveState>, faults: Injector) -> Self {
        let initial_states = Arc::new(states);
        Stub {
            catalog: ArcSwap::from_pointee(catalog),
            states: ArcSwap::new(initial_states.clone()),
            initial_states,
            journal: Arc::default(),
            faults,
        }
    }

    pub fn faults(&self) -> &Injector {
        &self.faults
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    pub fn replace_catalog(&self, catalog: Catalog) {
        self.catalog.store(Arc::new(catalog));
    }

    pub fn states(&self) -> Arc<Vec<ActiveState>> {
        self.states.load_full()
    }

    pub fn set_states(&self, states: Vec<ActiveState>) {
        self.states.store(Arc::new(states));
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Sequences start over, the journal empties, and the start-up states and faults are in
    /// force again.
    pub fn reset(&self) {
        self.catalog.load().rewind();
        self.journal.clear();
        self.states.store(self.initial_states.clone());
        self.faults.clear();
    }

    /// Answers one request that is not for the admin API, with the faults decided for it
    /// (an injected error already replaces the reply; the caller applies delays and resets).
    pub fn answer(
        &self,
        received: Received<'_>,
        body: Bytes,
        started: Instant,
    ) -> (Reply, Option<Decision>) {
        self.respond(received, body, started, true)
            .expect("a stub answers every request")
    }

    /// Like [`Stub::answer`], but only if an interaction matches (journaled as replayed);
    /// a miss is left to the caller, unjournaled. A spying proxy forwards those.
    pub fn replay(
        &self,
        received: Received<'_>,
        body: Bytes,
        started: Instant,
    ) -> Option<(Reply, Option<Decision>)> {
        self.respond(received, body, started, false)
    }

    fn respond(
        &self,
        received: Received<'_>,
        body: Bytes,
        started: Instant,
        answer_misses: bool,
    ) -> Option<(Reply, Option<Decision>)> {
        let catalog = self.catalog.load();
        let states = self.states.load();
        // A reference count, not a copy: kept for the journal if an interaction answers.
        let request_body = body.clone();
        let actual = matching::actual_request(received, body);
        let (mut reply, matched, closest) = match catalog.find(&actual, &states) {
            Some(id) => (
                catalog.reply(id, &states),
                Some(catalog.served()[id].description.clone()),
                Vec::new(),
            ),
            None if !answer_misses => return None,
            None => {
                let closest: Vec<Closest> = catalog
                    .closest(&actual, CLOSEST_SHOWN)
                    .into_iter()
                    .map(|(id, mismatches)| Closest {
                        description: catalog.served()[id].description.clone(),
                        mismatches: mismatches.iter().map(describe).collect(),
                    })
                    .collect();
                let reply = unmatched(&received, &actual, catalog.len(), &closest);
                (reply, None, closest)
            }
        };
        let decision = self.faults.decide(matched.as_deref(), reply.latency);
        if let Some(Decision {
            outcome: Outcome::Error(status),
            ..
        }) = decision
        {
            reply = crate::server::injected_error(status);
        }
        // What the interaction answered, unless a fault replaced or dropped the answer.
        let answered = matched.is_some()
            && decision.is_none_or(|decision| decision.outcome == Outcome::Answer);
        let exchange = answered.then(|| {
            Box::new(journal::Exchange {
                request: journal::Message::copied(
                    journal::contract_request_headers(received.headers.iter().copied()),
                    &request_body,
                ),
                response: journal::Message::new(reply.headers.clone(), reply.body.clone()),
            })
        });
        let replayed = (!answer_misses).then_some("replayed from the recording");
        let fault = decision.map(|decision| format!("injected fault: {decision}"));
        let note = match (replayed, fault) {
            (Some(replayed), Some(fault)) => Some(format!("{replayed}; {fault}").into()),
            (Some(replayed), None) => Some(replayed.into()),
            (None, fault) => fault.map(Into::into),
        };
        self.journal.record(Entry {
            seq: 0,
            at_ms: journal::now_ms(),
            method: journal::method(received.method),
            target: match received.query {
                Some(query) => format!("{}?{query}", received.path),
                None => received.path.to_owned(),
            },
            status: reply.status,
            miss: matched.is_none(),
            matched,
            closest,
            duration_us: started.elapsed().as_micros() as u64,
            trace_id: received
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("traceparent"))
                .and_then(|(_, value)| journal::trace_id(value)),
            note,
            exchange,
        });
        Some((reply, decision))
    }
}

/// The 404 for a request no interaction matched: what arrived, and why the closest
/// interactions did not match it (RFC 9457 problem details).
fn unmatched(
    received: &Received<'_>,
    actual: &pact_models::v4::http_parts::HttpRequest,
    loaded: usize,
    closest: &[Closest],
) -> Reply {
    let body = actual.body.value().unwrap_or_default();
    let body_json = match serde_json::from_slice::<Value>(&body) {
        Ok(value) => value,
        Err(_) if body.is_empty() => Value::Null,
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    let headers: serde_json::Map<String, Value> = received
        .headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::String((*value).to_owned())))
        .collect();
    let problem = json!({
        "type": "urn:envd:problem:unmatched",
        "title": "no interaction matched the request",
        "status": 404,
        "detail": format!(
            "{} {} matched none of the {loaded} interactions loaded",
            received.method, actual.path
        ),
        "request": {
            "method": received.method,
            "path": actual.path,
            "query": received.query,
            "headers": headers,
            "body": body_json,
        },
        "closest": closest,
    });
    crate::server::problem_reply(404, &problem, true)
}

/// The injector for a stub's or proxy's start-up faults; the seed is logged when faults are
/// on, so a run can be repeated.
pub fn injector(faults: Faults, seed: Option<u64>) -> Injector {
    let seed = seed.unwrap_or_else(crate::faults::random_seed);
    if !faults.is_off() {
        tracing::info!(seed, faults = %faults.to_json(), "faults on; --seed {seed} repeats their decisions");
    }
    Injector::new(faults, seed)
}

/// Why a stub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StubError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Everything `envd stub` needs, validated.
#[derive(Debug, Clone)]
pub struct Options {
    pub contracts: Vec<PathBuf>,
    pub address: std::net::SocketAddr,
    pub states: Vec<ActiveState>,
    pub watch: bool,
    pub limits: crate::server::Limits,
    /// The faults in force from the start (`--latency`, `--error-rate`, …).
    pub faults: Faults,
    /// Seeds fault decisions (`--seed`); a random one when `None`.
    pub seed: Option<u64>,
}

/// Loads the contracts, binds, calls `listening` with the bound address and the stub's
/// journal once connections are accepted, and serves until `shutdown` completes.
pub async fn run(
    options: Options,
    listening: impl FnOnce(std::net::SocketAddr, Arc<Journal>),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StubError> {
    let catalog = load(&options.contracts)?;
    tracing::info!(interactions = catalog.len(), "contracts loaded");
    let (listener, address) = crate::server::bind(options.address)
        .await
        .map_err(|source| StubError::Bind {
            address: options.address,
            source,
        })?;
    let stub = Arc::new(Stub::new(
        catalog,
        options.states,
        injector(options.faults, options.seed),
    ));
    // One stop signal for the server and the watcher alike.
    let (stop, stopped) = tokio::sync::watch::channel(());
    if options.watch {
        let mut stopped = stopped.clone();
        tokio::spawn(watch::watch(
            stub.clone(),
            options.contracts.clone(),
            async move {
                let _ = stopped.changed().await;
            },
        ));
    }
    listening(address, stub.journal().clone());
    let service = Arc::new(server::StubService {
        stub,
        limits: options.limits,
    });
    let server = crate::server::serve(listener, service, options.limits, async move {
        shutdown.await;
        tracing::info!("stopping: no new connections; draining open ones");
        let _ = stop.send(());
    });
    server.await;
    drop(stopped);
    Ok(())
}
