//! The stub's HTTP handler and its admin API under `/__envd/`.
//!
//! Every answer is decided by [`Stub`]; this module only turns hyper requests into its
//! inputs and its replies into hyper responses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};

use super::{ActiveState, Reply, Stub};
use crate::matching::Received;
use crate::server::{
    faults_admin, json_reply, problem, read_body, response, with_faults, Body, Handler, Limits,
};

/// Journal entries returned when the caller names no limit.
const JOURNAL_PAGE: usize = 100;

impl Handler for StubService {
    async fn handle(&self, request: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        handle(&self.stub, self.limits, request).await
    }
}

/// A stub with the limits of its listener.
pub struct StubService {
    pub stub: Arc<Stub>,
    pub limits: Limits,
}

async fn handle(stub: &Stub, limits: Limits, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match read_body(body, limits).await {
        Ok(body) => body,
        Err(reply) => return response(reply),
    };
    if let Some(admin_path) = parts.uri.path().strip_prefix("/__envd/") {
        return response(admin(
            stub,
            &parts.method,
            admin_path,
            parts.uri.query(),
            &body,
        ));
    }
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let received = Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &headers,
    };
    let (reply, decision) = stub.answer(received, body, started);
    with_faults(decision, async { response(reply) }).await
}

/// The admin API under `/__envd/`.
fn admin(stub: &Stub, method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> Reply {
    match (method, path) {
        (&Method::GET, "health") => {
            let catalog = stub.catalog();
            json_reply(&json!({"status": "ok", "interactions": catalog.len()}))
        }
        (&Method::GET, "interactions") => {
            let catalog = stub.catalog();
            let listed: Vec<Value> = catalog
                .served()
                .iter()
                .map(|one| {
                    let request = one.expectation.request();
                    json!({
                        "description": one.description,
                        "providerStates": one.provider_states.iter().map(|s| &s.name).collect::<Vec<_>>(),
                        "method": request.method,
                        "path": request.path,
                        "responses": one.replies.len(),
                        "sources": one.sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json_reply(&json!({ "interactions": listed }))
        }
        (&Method::GET, "journal") => {
            let params = query
                .and_then(pact_models::query_strings::parse_query_string)
                .unwrap_or_default();
            let param = |name: &str| {
                params
                    .get(name)
                    .and_then(|values| values.first().cloned().flatten())
            };
            let unmatched = param("unmatched").is_some_and(|value| value == "true");
            let limit = param("limit")
                .and_then(|value| value.parse().ok())
                .unwrap_or(JOURNAL_PAGE);
            json_reply(&json!({ "entries": stub.journal().recent(unmatched, limit) }))
        }
        (&Method::POST, "reset") => {
            stub.reset();
            json_reply(&json!({"reset": true}))
        }
        (&Method::POST, "state") => match parse_states(stub, body) {
            Ok(states) => {
                stub.set_states(states);
                json_reply(&json!({ "states": *stub.states() }))
            }
            Err(detail) => problem(400, "bad provider state request", detail),
        },
        (_, "faults") => faults_admin(stub.faults(), method, body, |description| {
            stub.catalog()
                .served()
                .iter()
                .any(|one| one.description == description)
        }),
        (_, "health" | "interactions" | "journal" | "reset" | "state") => problem(
            405,
            "method not allowed",
            format!("{method} is not accepted on /__envd/{path}"),
        ),
        _ => problem(
            404,
            "no such admin endpoint",
            format!("/__envd/{path}: expected one of faults, health, interactions, journal, reset, state"),
        ),
    }
}

/// `{"states":[{"name":…,"params":{…}}]}` replaces the active states; Pact's state-change
/// form `{"state":…,"params":{…},"action":"setup"|"teardown"}` adds or removes one.
fn parse_states(stub: &Stub, body: &[u8]) -> Result<Vec<ActiveState>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| format!("invalid JSON: {error}"))?;
    if let Some(states) = value.get("states") {
        return serde_json::from_value(states.clone()).map_err(|error| {
            format!("/states: expected an array of {{\"name\": …, \"params\": {{…}}}}: {error}")
        });
    }
    let Some(name) = value.get("state").and_then(Value::as_str) else {
        return Err(
            "expected {\"states\": [{\"name\": …}]} or {\"state\": …, \"action\": \"setup\"}"
                .into(),
        );
    };
    let params = value
        .get("params")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut states: Vec<ActiveState> = stub
        .states()
        .iter()
        .filter(|s| s.name != name)
        .cloned()
        .collect();
    match value
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("setup")
    {
        "setup" => states.push(ActiveState {
            name: name.to_owned(),
            params,
        }),
        "teardown" => {}
        other => {
            return Err(format!(
                "/action: expected \"setup\" or \"teardown\", found {other:?}"
            ))
        }
    }
    Ok(states)
}
