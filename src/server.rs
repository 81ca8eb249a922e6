//! The HTTP server every envd listener shares: accept loop, limits, graceful shutdown.
//!
//! HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on the same port. What to answer is a
//! [`Handler`]'s business (the stub, the proxy); this module moves bytes, enforces the
//! limits that keep a listener alive under bad traffic, and applies the fault decisions
//! handlers make (`with_faults`: delay, injected error, connection reset).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;

use crate::faults::{Decision, Injector, Outcome};
use crate::stub::Reply;

/// A response body: a buffered reply, or a body streamed through from an upstream.
pub type Body = Either<Full<Bytes>, Incoming>;

/// Bodies larger than this get 413: stubs answer API calls, and every body is buffered to
/// be matched, so the bound is what keeps a stub's memory bounded.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Request heads larger than this get 431 (HTTP/1.1) or a stream reset (HTTP/2); four
/// times what nginx accepts by default.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// A connection that starts no request for this long (up to twice as long, see
/// [`sweep_idle`]), or a body that does not arrive within it, is dropped, so slow clients
/// cannot hold connections open forever.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may take to finish after a stop before they are cut.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
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

/// Decides the answer to each request on a listener.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// Binds `address` and reports the address actually bound (with port 0, the one the system
/// picked), so the caller can announce it before serving.
pub async fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves `handler` on `listener` until `shutdown` completes, then drains connections for
/// at most [`DRAIN_DEADLINE`].
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, None, handler, limits, shutdown).await
}

/// [`serve`] over TLS: each connection completes a handshake (within the read timeout)
/// before HTTP starts; ALPN offers h2 and HTTP/1.1.
pub async fn serve_tls<H: Handler>(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, Some(tls), handler, limits, shutdown).await
}

async fn serve_with<H: Handler>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No header read timeout: hyper arms a timer for every request head, a cost that shows
    // on the proxy's hot path. `sweep_idle` drops stalled connections instead.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Connections::default());
    let sweeper = tokio::spawn(sweep_idle(connections.clone(), limits.read_timeout));
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
        let handler = handler.clone();
        let socket = connections.add(&stream);
        let service = {
            let socket = socket.clone();
            service_fn(move |request| {
                let handler = handler.clone();
                let answering = Answering::new(socket.clone());
                async move {
                    let response = handler.handle(request, peer).await;
                    if response.extensions().get::<ResetConnection>().is_some() {
                        // hyper drops a connection whose service fails; with SO_LINGER 0
                        // the close is a TCP reset.
                        answering.0.reset();
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "reset by an injected fault",
                        ));
                    }
                    Ok(response.map(|body| Answer {
                        body,
                        _answering: answering,
                    }))
                }
            })
        };
        let Some(tls) = &tls else {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                let mut connection = std::pin::pin!(connection);
                if let Err(error) = connection.as_mut().await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                // Before the connection (and its socket) is dropped at the end of this task.
                socket.closing();
            });
            continue;
        };
        let (tls, builder, watcher) = (tls.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(limits.read_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    socket.closing();
                    return tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    socket.closing();
                    return tracing::debug!(%peer, "TLS handshake timed out");
                }
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let mut connection = std::pin::pin!(watcher.watch(connection));
            if let Err(error) = connection.as_mut().await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            // Before the connection (and its socket) is dropped at the end of this task.
            socket.closing();
        });
    }
    drop(listener);
    sweeper.abort();
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => {
            tracing::warn!("connections still open after {DRAIN_DEADLINE:?}; closing them");
        }
    }
}

/// A TLS acceptor from PEM files: a certificate chain and its private key.
pub fn tls_acceptor(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certificates| certificates.collect())
        .map_err(|error| format!("{}: {error}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: expected PEM certificates, found none",
            certificate.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|error| format!("{}: {error}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("the certificate and key do not form a TLS identity: {error}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Whether a request asks to be forwarded somewhere of its own choosing: CONNECT, or an
/// HTTP/1 absolute-form target (`GET http://elsewhere/`). (HTTP/2 always carries an
/// authority; envd forwards only to its configured upstreams whatever it says.)
pub fn is_open_proxy_request<B>(request: &Request<B>) -> bool {
    request.method() == hyper::Method::CONNECT
        || (request.version() < hyper::Version::HTTP_2 && request.uri().scheme().is_some())
}

/// The open connections of a listener, for [`sweep_idle`].
#[derive(Default)]
struct Connections {
    open: Mutex<foldhash::HashMap<u64, Arc<Socket>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Connections {
    fn add(self: &Arc<Self>, stream: &tokio::net::TcpStream) -> Arc<Socket> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let socket = Arc::new(Socket {
            #[cfg(unix)]
            fd: Mutex::new(Some(std::os::fd::AsRawFd::as_raw_fd(stream))),
            id,
            connections: Arc::downgrade(self),
            started: AtomicU64::new(0),
            answering: AtomicUsize::new(0),
            seen: AtomicU64::new(NOT_SEEN),
        });
        lock(&self.open).insert(id, socket.clone());
        socket
    }
}

/// `Socket::seen` before a sweep has seen the connection idle.
const NOT_SEEN: u64 = u64::MAX;

/// Closes connections that start no request between two sweeps `every` apart while none of
/// their answers is still being sent: idle keep-alive connections, and clients that stall
/// in the middle of a head. One task per listener instead of a timer per request (what
/// hyper's header read timeout costs); a stalled connection goes after `every` to twice
/// that.
async fn sweep_idle(connections: Arc<Connections>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        for socket in lock(&connections.open).values() {
            let busy = socket.answering.load(Ordering::Relaxed) > 0;
            let started = socket.started.load(Ordering::Relaxed);
            let before = socket
                .seen
                .swap(if busy { NOT_SEEN } else { started }, Ordering::Relaxed);
            if !busy && before == started {
                tracing::debug!("closing a connection idle for {every:?}");
                socket.shut_down();
            }
        }
    }
}

/// Locks a mutex whose data stays valid when a holder panicked (every use here).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An accepted connection's socket, as far as an injected reset and the idle sweep need
/// it: its descriptor, valid until the connection task says it is closing, and its
/// requests.
struct Socket {
    #[cfg(unix)]
    fd: Mutex<Option<std::os::fd::RawFd>>,
    id: u64,
    connections: std::sync::Weak<Connections>,
    /// Requests started on the connection.
    started: AtomicU64,
    /// Requests whose answer is not yet sent whole.
    answering: AtomicUsize,
    /// `started` at the last sweep, or [`NOT_SEEN`].
    seen: AtomicU64,
}

impl Socket {
    /// Makes the coming close a reset (SO_LINGER 0), if the socket is still open.
    fn reset(&self) {
        self.with_socket(|socket| {
            if let Err(error) = socket.set_linger(Some(Duration::ZERO)) {
                tracing::warn!(%error, "cannot set SO_LINGER for an injected reset");
            }
        });
    }

    /// Ends the connection: its reads and writes fail, and hyper closes it.
    fn shut_down(&self) {
        self.with_socket(|socket| {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        });
    }

    fn with_socket(&self, action: impl FnOnce(socket2::SockRef<'_>)) {
        #[cfg(unix)]
        {
            let fd = lock(&self.fd);
            if let Some(fd) = *fd {
                // SAFETY: the descriptor is open while the lock shows it: the connection
                // task clears it under this lock before the connection drops the socket.
                let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                action(socket2::SockRef::from(&fd));
            }
        }
    }

    /// The connection is about to drop its socket.
    fn closing(&self) {
        #[cfg(unix)]
        {
            *lock(&self.fd) = None;
        }
        if let Some(connections) = self.connections.upgrade() {
            lock(&connections.open).remove(&self.id);
        }
    }
}

/// A request being answered, from its head until its answer is sent whole (or dropped).
struct Answering(Arc<Socket>);

impl Answering {
    fn new(socket: Arc<Socket>) -> Self {
        socket.started.fetch_add(1, Ordering::Relaxed);
        socket.answering.fetch_add(1, Ordering::Relaxed);
        Answering(socket)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as being answered until it is sent.
struct Answer {
    body: Body,
    _answering: Answering,
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Put in a response's extensions by a handler: reset the connection instead of sending it.
#[derive(Debug, Clone, Copy)]
pub struct ResetConnection;

/// The header on answers that carry an injected fault: `latency=200ms`, `error=503`, or
/// both, comma-separated (see README, "Faults and latency").
pub const FAULT_HEADER: &str = "x-envd-fault";

/// Applies a fault decision: waits its delay (only this request waits: other requests and
/// connections go on), then sends `answer`, an injected error instead, or resets the
/// connection. `answer` is not run unless it is sent, so a proxy forwards nothing for an
/// injected error or reset.
pub async fn with_faults(
    decision: Option<Decision>,
    answer: impl Future<Output = Response<Body>>,
) -> Response<Body> {
    let Some(decision) = decision else {
        return answer.await;
    };
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = match decision.outcome {
        Outcome::Answer => answer.await,
        Outcome::Error(status) => response(injected_error(status)),
        Outcome::Reset => {
            let mut reset = Response::new(Either::Left(Full::new(Bytes::new())));
            reset.extensions_mut().insert(ResetConnection);
            return reset;
        }
    };
    if let Ok(value) = HeaderValue::from_str(&decision.to_string()) {
        response.headers_mut().insert(FAULT_HEADER, value);
    }
    response
}

/// The problem sent instead of an answer by `--error-rate`.
pub fn injected_error(status: u16) -> Reply {
    problem_reply(
        status,
        &json!({
            "type": "urn:envd:problem:injected-fault",
            "title": "injected fault",
            "status": status,
            "detail": format!(
                "envd answered {status} instead of the real answer: an error injected by \
                 --error-rate or POST /__envd/faults"
            ),
        }),
        false,
    )
}

/// `GET`, `POST` and `DELETE /__envd/faults`, on stubs and proxies alike; `known` says
/// whether an interaction description exists (a POST naming an unknown one is refused).
pub fn faults_admin(
    injector: &Injector,
    method: &Method,
    body: &[u8],
    known: impl Fn(&str) -> bool,
) -> Reply {
    match *method {
        Method::GET => json_reply(&injector.to_json()),
        Method::POST => match crate::faults::Request::parse(body) {
            Ok(request) => {
                if let Some(description) = request.interaction.as_deref() {
                    if !known(description) {
                        return problem(
                            400,
                            "bad faults request",
                            format!(
                                "/interaction: expected the description of a served interaction, found {description:?}"
                            ),
                        );
                    }
                }
                injector.set(request);
                json_reply(&injector.to_json())
            }
            Err(error) => problem(400, "bad faults request", error.to_string()),
        },
        Method::DELETE => {
            injector.clear();
            json_reply(&injector.to_json())
        }
        _ => problem(
            405,
            "method not allowed",
            format!("{method} is not accepted on /__envd/faults: expected GET, POST or DELETE"),
        ),
    }
}

/// A 200 `application/json` reply.
pub fn json_reply(value: &serde_json::Value) -> Reply {
    Reply::plain(
        200,
        vec![("Content-Type".to_owned(), "application/json".to_owned())],
        Bytes::from(serde_json::to_vec_pretty(value).unwrap_or_default()),
    )
}

/// Reads a whole request body within the limits; the error is the reply to send instead.
pub async fn read_body(body: Incoming, limits: Limits) -> Result<Bytes, Reply> {
    // Most requests have none (a GET, Content-Length: 0): nothing to limit or wait for.
    if hyper::body::Body::is_end_stream(&body) {
        return Ok(Bytes::new());
    }
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

/// A reply as a hyper response.
pub fn response(reply: Reply) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(reply.body)));
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

/// The header that marks envd's own "nothing matched" answer, so a test can tell it from a
/// 404 that a contract itself specifies.
pub const UNMATCHED_HEADER: &str = "x-envd-unmatched";

/// An `application/problem+json` reply (RFC 9457).
pub fn problem_reply(status: u16, problem: &serde_json::Value, unmatched: bool) -> Reply {
    let mut headers = vec![(
        "Content-Type".to_owned(),
        "application/problem+json".to_owned(),
    )];
    if unmatched {
        headers.push((UNMATCHED_HEADER.to_owned(), "true".to_owned()));
    }
    Reply::plain(
        status,
        headers,
        Bytes::from(serde_json::to_vec_pretty(problem).unwrap_or_default()),
    )
}

/// A small problem reply: transport errors, bad admin calls, upstream failures.
pub fn problem(status: u16, title: &str, detail: impl Into<String>) -> Reply {
    problem_reply(
        status,
        &json!({"type": "about:blank", "title": title, "status": status, "detail": detail.into()}),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Ok200;

    impl Handler for Ok200 {
        async fn handle(&self, _: Request<Incoming>, _: SocketAddr) -> Response<Body> {
            response(Reply::plain(200, Vec::new(), Bytes::from_static(b"ok")))
        }
    }

    /// With the clock paused, time jumps to the next timer whenever everything waits: here,
    /// the idle sweeps.
    #[tokio::test(start_paused = true)]
    async fn a_connection_stalled_in_its_head_is_closed_and_others_are_served() {
        let (listener, address) = bind(([127, 0, 0, 1], 0).into()).await.unwrap();
        let limits = Limits::default();
        tokio::spawn(serve(
            listener,
            Arc::new(Ok200),
            limits,
            std::future::pending(),
        ));
        let mut stalled = tokio::net::TcpStream::connect(address).await.unwrap();
        stalled
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        stalled.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "closed without an answer");
        let waited = started.elapsed();
        assert!(
            waited >= limits.read_timeout && waited <= 2 * limits.read_timeout,
            "closed after {waited:?}"
        );

        let mut served = tokio::net::TcpStream::connect(address).await.unwrap();
        served
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        served.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
