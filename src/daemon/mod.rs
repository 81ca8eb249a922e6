//! `envd daemon`: the long-running side of envd.
//!
//! Without `--listen` it owns environments on a Unix socket (`local`, `environments`;
//! the wire types in `api`, the CLI's side in `client`). With `--listen` it runs as a
//! staging gateway (`gateway`): allowlisted staging services behind one authenticated
//! endpoint, under the rules for remote access (bearer token, TLS off loopback)
//! implemented once, here.

pub mod api;
pub mod client;
pub mod environments;
pub mod gateway;
pub mod local;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("--token-file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    #[error("--listen {address}: a listener off loopback needs TLS (--tls-cert and --tls-key), or --insecure to accept plain HTTP on purpose")]
    InsecureListener { address: SocketAddr },
    #[error("--tls-cert/--tls-key: {0}")]
    Tls(String),
    #[error("--route {spec:?}: {reason}")]
    Route { spec: String, reason: String },
    #[error("--route-header {spec:?}: {reason}")]
    RouteHeader { spec: String, reason: String },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("no routes: give --route NAME=URL or a --config file with routes")]
    NoRoutes,
    #[error("cannot serve on {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a daemon already answers on {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The shared secret a client must present as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Reads a token file: its content, surrounding white space trimmed, must not be empty.
    pub fn read(path: &Path) -> Result<Token, DaemonError> {
        let fail = |reason: String| DaemonError::TokenFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|error| fail(error.to_string()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(fail("the file is empty; expected a token".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(metadata) = std::fs::metadata(path) {
                if metadata.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "the token file is readable by others; chmod 600 it");
                }
            }
        }
        Ok(Token(token.as_bytes().to_vec()))
    }

    pub fn from_secret(secret: &str) -> Token {
        Token(secret.trim().as_bytes().to_vec())
    }

    /// The header value that presents this token.
    pub fn bearer(&self) -> hyper::header::HeaderValue {
        let mut value =
            hyper::header::HeaderValue::from_bytes(&[b"Bearer ".as_slice(), &self.0].concat())
                .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("Bearer"));
        value.set_sensitive(true);
        value
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`, compared in constant
    /// time so the answer's timing says nothing about how much of a guess was right.
    pub fn admits(&self, headers: &hyper::HeaderMap) -> bool {
        let presented = headers
            .get(hyper::header::AUTHORIZATION)
            .map(|value| value.as_bytes())
            .and_then(|value| value.strip_prefix(b"Bearer ".as_slice()))
            .unwrap_or_default();
        constant_time_eq(presented, &self.0)
    }
}

fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut difference = presented.len() ^ expected.len();
    for (index, expected_byte) in expected.iter().enumerate() {
        let byte = presented.get(index).copied().unwrap_or(0);
        difference |= usize::from(byte ^ expected_byte);
    }
    std::hint::black_box(difference) == 0
}

/// Loopback listeners may speak plain HTTP; any other needs TLS or an explicit `--insecure`.
pub fn check_listener(address: SocketAddr, tls: bool, insecure: bool) -> Result<(), DaemonError> {
    if address.ip().is_loopback() || tls || insecure {
        Ok(())
    } else {
        Err(DaemonError::InsecureListener { address })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: Option<&str>, admitted: bool) {
        let token = Token::from_secret("s3cr3t");
        let mut headers = hyper::HeaderMap::new();
        if let Some(value) = header {
            headers.insert(hyper::header::AUTHORIZATION, value.parse().unwrap());
        }
        assert_eq!(token.admits(&headers), admitted, "{header:?}");
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        check(Some("Bearer s3cr3t"), true);
        check(Some("Bearer s3cr3"), false);
        check(Some("Bearer s3cr3tt"), false);
        check(Some("Basic s3cr3t"), false);
        check(Some("s3cr3t"), false);
        check(None, false);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(check_listener("127.0.0.1:7700".parse().unwrap(), false, false).is_ok());
        assert!(check_listener("[::1]:7700".parse().unwrap(), false, false).is_ok());
        assert!(check_listener("0.0.0.0:7700".parse().unwrap(), false, false).is_err());
        assert!(check_listener("0.0.0.0:7700".parse().unwrap(), true, false).is_ok());
        assert!(check_listener("0.0.0.0:7700".parse().unwrap(), false, true).is_ok());
    }
}
