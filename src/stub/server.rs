//! The HTTP side of a stub: accept loop, limits, admin API, graceful shutdown.
//!
//! HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on the same port. Every answer is decided
//! by [`Stub`]; this module only turns hyper requests into its inputs and its replies into
//! hyper responses.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{problem, ActiveState, Reply, Stub};
use crate::matching::Received;

/// Bodies larger than this get 413: stubs answer API calls, and every body is buffered to
/// be matched, so the bound is what keeps a stub's memory bounded.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Request heads larger than this get 431 (HTTP/1.1) or a stream reset (HTTP/2); four
/// times what nginx accepts by default.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// A client that sends neither a full head nor a full body within this time is dropped, so
/// slow clients cannot hold connections open forever.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may take to finish after a stop before they are cut.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// Journal entries returned when the caller names no limit.
const JOURNAL_PAGE: usize = 100;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// Serves `stub` on `listener` until `shutdown` completes, then drains connections for at
/// most [`DRAIN_DEADLINE`].
pub async fn serve(
    listener: TcpListener,
    stub: Arc<Stub>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stub = stub.clone();
        let service = service_fn(move |request| {
            let stub = stub.clone();
            async move { Ok::<_, Infallible>(handle(&stub, limits, request).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!("connections still open after {DRAIN_DEADLINE:?}; closing them");
        }
    }
}

async fn handle(stub: &Stub, limits: Limits, request: Request<Incoming>) -> Response<Full<Bytes>> {
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
    response(stub.answer(received, body, started))
}

async fn read_body(body: Incoming, limits: Limits) -> Result<Bytes, Reply> {
    let collect = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.read_timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(problem(
            413,
            "request body too large",
            format!(
                "bodies are limited to {} bytes (--max-body)",
                limits.max_body_bytes
            ),
        )),
        Ok(Err(error)) => Err(problem(400, "unreadable request body", error.to_string())),
        Err(_) => Err(problem(
            408,
            "request body too slow",
            format!("the body did not arrive within {:?}", limits.read_timeout),
        )),
    }
}

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in reply.headers.iter() {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::warn!(%name, "skipping a response header that HTTP cannot carry"),
        }
    }
    response
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
        (_, "health" | "interactions" | "journal" | "reset" | "state") => problem(
            405,
            "method not allowed",
            format!("{method} is not accepted on /__envd/{path}"),
        ),
        _ => problem(
            404,
            "no such admin endpoint",
            format!("/__envd/{path}: expected one of health, interactions, journal, reset, state"),
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

fn json_reply(value: &Value) -> Reply {
    Reply::plain(
        200,
        vec![("Content-Type".to_owned(), "application/json".to_owned())],
        Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default()),
    )
}
