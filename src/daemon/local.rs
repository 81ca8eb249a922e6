//! The daemon on a laptop or CI runner: the environments API on a Unix socket (mode 0600,
//! in a 0700 directory), for this user only.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use super::api::{UpRequest, API_PREFIX};
use super::environments::Environments;
use super::DaemonError;

/// The socket's name in the daemon's home.
pub const SOCKET: &str = "daemon.sock";
/// The daemon's own log when the CLI starts it in the background.
pub const LOG: &str = "daemon.log";
/// The running daemon's pid, for people and scripts that need to signal it.
pub const PID_FILE: &str = "daemon.pid";

/// How often a followed log is checked for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// A request body the daemon accepts: plans are small.
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Where the daemon keeps its socket, state and logs: `$ENVD_HOME`, else
/// `$XDG_RUNTIME_DIR/envd`, else `~/.envd`.
pub fn home() -> PathBuf {
    if let Some(home) = std::env::var_os("ENVD_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|h| !h.is_empty()) {
        return PathBuf::from(runtime).join("envd");
    }
    let user_home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    user_home.join(".envd")
}

/// A response body: a buffered answer, or lines streamed as they happen.
pub type Body = Either<Full<Bytes>, ChannelBody>;

/// Bytes sent by a task as they are produced (progress events, a followed log).
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Creates `home` (0700) and opens its environments, reaping what a dead daemon left.
pub async fn open_home(home: &Path) -> Result<Arc<Environments>, DaemonError> {
    let error = |source: std::io::Error| DaemonError::Socket {
        path: home.to_owned(),
        source,
    };
    std::fs::create_dir_all(home).map_err(error)?;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
    Ok(Environments::open(home).await)
}

/// Binds the socket (refusing if a daemon already answers there), reaps what a dead daemon
/// left, calls `listening`, and serves until `shutdown`; then tears every environment down.
pub async fn run(
    home: &Path,
    listening: impl FnOnce(&Path),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let socket = home.join(SOCKET);
    let bind_error = |source: std::io::Error| DaemonError::Socket {
        path: socket.clone(),
        source,
    };
    std::fs::create_dir_all(home).map_err(bind_error)?;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).map_err(bind_error)?;
    if tokio::net::UnixStream::connect(&socket).await.is_ok() {
        return Err(DaemonError::AlreadyRunning { path: socket });
    }
    // Nobody answers: what is there is a dead daemon's socket.
    let _ = std::fs::remove_file(&socket);
    let environments = Environments::open(home).await;
    let listener = tokio::net::UnixListener::bind(&socket).map_err(bind_error)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(bind_error)?;
    super::environments::write_atomically(
        &home.join(PID_FILE),
        std::process::id().to_string().as_bytes(),
    )
    .map_err(bind_error)?;
    tracing::info!(socket = %socket.display(), "daemon ready");
    listening(&socket);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let environments = environments.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let environments = environments.clone();
                async move { Ok::<_, Infallible>(handle(&environments, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(home.join(PID_FILE));
    tracing::info!("stopping: tearing down every environment");
    environments.down_all().await;
    Ok(())
}

/// Answers one API request.
pub async fn handle(
    environments: &Arc<Environments>,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let follow = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "follow=true"));
    let Some(route) = path.strip_prefix(API_PREFIX) else {
        return problem(StatusCode::NOT_FOUND, "no such endpoint", &path);
    };
    let segments: Vec<&str> = route.trim_matches('/').split('/').collect();
    match (request.method().clone(), segments.as_slice()) {
        (Method::GET, ["health"]) => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "pid": std::process::id()}),
        ),
        (Method::GET, ["environments"]) => json(StatusCode::OK, &environments.list()),
        (Method::POST, ["environments"]) => {
            let body = match http_body_util::Limited::new(request.into_body(), MAX_REQUEST_BYTES)
                .collect()
                .await
            {
                Ok(body) => body.to_bytes(),
                Err(error) => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "unreadable body",
                        &error.to_string(),
                    )
                }
            };
            let up: UpRequest = match serde_json::from_slice(&body) {
                Ok(up) => up,
                Err(error) => {
                    return problem(
                        StatusCode::BAD_REQUEST,
                        "not an environment plan",
                        &error.to_string(),
                    )
                }
            };
            let (events, mut receiver) = mpsc::channel(16);
            let (lines, body) = mpsc::channel(16);
            let environments = environments.clone();
            tokio::spawn(async move { environments.up(up, events).await });
            tokio::spawn(async move {
                while let Some(event) = receiver.recv().await {
                    let mut line = serde_json::to_vec(&event).unwrap_or_default();
                    line.push(b'\n');
                    // A client that went away does not stop the start: the environment is
                    // the daemon's, and `envd down` still reaches it.
                    let _ = lines.send(Bytes::from(line)).await;
                }
            });
            streamed("application/x-ndjson", body)
        }
        (method, ["environments", key, rest @ ..]) => {
            let id = match environments.resolve(key) {
                Ok(id) => id,
                Err(reason) => {
                    return problem(StatusCode::NOT_FOUND, "no such environment", &reason)
                }
            };
            match (method, rest) {
                (Method::GET, []) => match environments.get(&id) {
                    Some(info) => json(StatusCode::OK, &info),
                    None => problem(StatusCode::NOT_FOUND, "no such environment", &id),
                },
                (Method::DELETE, []) => match environments.down(&id).await {
                    Some(info) => json(StatusCode::OK, &info),
                    None => problem(StatusCode::NOT_FOUND, "no such environment", &id),
                },
                (Method::GET, ["logs", part]) => match environments.log(&id, part) {
                    Ok(log) => logs(environments.clone(), id, log, follow),
                    Err(reason) => problem(StatusCode::NOT_FOUND, "no such log", &reason),
                },
                (Method::GET, ["journal"]) => {
                    let query = JournalQuery::parse(request.uri().query().unwrap_or_default());
                    match environments.journal(
                        &id,
                        query.part.as_deref(),
                        &query.since,
                        query.unmatched,
                    ) {
                        Ok(entries) => json(StatusCode::OK, &entries),
                        Err(reason) => problem(StatusCode::NOT_FOUND, "no such journal", &reason),
                    }
                }
                _ => problem(StatusCode::NOT_FOUND, "no such endpoint", &path),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, "no such endpoint", &path),
    }
}

/// `?part=P&unmatched=true&since=PART:SEQ…` of the journal endpoint.
#[derive(Debug, Default, PartialEq)]
struct JournalQuery {
    part: Option<String>,
    unmatched: bool,
    /// Per part, the last `seq` the caller has.
    since: std::collections::BTreeMap<String, u64>,
}

impl JournalQuery {
    fn parse(query: &str) -> JournalQuery {
        let mut parsed = JournalQuery::default();
        for (name, value) in url_pairs(query) {
            match name.as_str() {
                "part" => parsed.part = Some(value),
                "unmatched" => parsed.unmatched = value == "true",
                "since" => {
                    // Part names may hold a colon; the seq after the last one never does.
                    if let Some((part, seq)) = value.rsplit_once(':') {
                        if let Ok(seq) = seq.parse() {
                            parsed.since.insert(part.to_owned(), seq);
                        }
                    }
                }
                _ => {}
            }
        }
        parsed
    }
}

/// The decoded `name=value` pairs of a query string, in order.
fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| crate::matching::percent_decoded(&text.replace('+', " "));
            (decode(name), decode(value))
        })
}

/// A log's content, then (with `follow`) what is appended, until the environment ends or
/// the client leaves.
fn logs(environments: Arc<Environments>, id: String, log: PathBuf, follow: bool) -> Response<Body> {
    let (sender, body) = mpsc::channel(16);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let Ok(mut file) = tokio::fs::File::open(&log).await else {
            return;
        };
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buffer).await {
                Ok(0) if follow && environments.get(&id).is_some() => {
                    tokio::time::sleep(FOLLOW_POLL).await
                }
                Ok(0) | Err(_) => return,
                Ok(read) => {
                    if sender
                        .send(Bytes::copy_from_slice(&buffer[..read]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    streamed("text/plain; charset=utf-8", body)
}

fn streamed(content_type: &'static str, body: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut response = Response::new(Either::Right(ChannelBody(body)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(
        serde_json::to_vec_pretty(value).unwrap_or_default(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let mut response = json(
        status,
        &serde_json::json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail}),
    );
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_queries_name_a_part_and_what_a_follower_has() {
        let query = JournalQuery::parse("part=pay%20ments&unmatched=true&since=a:b:3&since=c:x");
        assert_eq!(
            query,
            JournalQuery {
                part: Some("pay ments".into()),
                unmatched: true,
                since: [("a:b".to_owned(), 3)].into_iter().collect(),
            }
        );
        assert_eq!(JournalQuery::parse(""), JournalQuery::default());
    }
}
