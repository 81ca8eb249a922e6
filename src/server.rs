//! The HTTP server every envd listener shares: accept loop, limits, graceful shutdown.
//!
//! HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on the same port. What to answer is a
//! [`Handler`]'s business (the stub, the proxy); this module moves bytes and enforces the
//! limits that keep a listener alive under bad traffic.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;

use crate::stub::Reply;

/// A response body: a buffered reply, or a body streamed through from an upstream.
pub type Body = Either<Full<Bytes>, Incoming>;

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
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(request, peer).await) }
        });
        let Some(tls) = &tls else {
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
            continue;
        };
        let (tls, builder, watcher) = (tls.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(limits.read_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    return tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
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

/// Reads a whole request body within the limits; the error is the reply to send instead.
pub async fn read_body(body: Incoming, limits: Limits) -> Result<Bytes, Reply> {
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
