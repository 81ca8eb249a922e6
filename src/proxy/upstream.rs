//! The staging service a proxy forwards to, and the pooled client that reaches it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::deadline::Timers;
use crate::server::Body;

/// Idle upstream connections are kept this long for reuse: staging services behind load
/// balancers commonly close idle connections after 60 s or more.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("--target {target:?}: expected an http:// or https:// URL with a host, such as https://users.staging.example.com")]
    Target { target: String },
    #[error("--target {target}: a gateway target needs --token-file with the gateway's token")]
    GatewayToken { target: String },
    #[error("--ca-cert {path}: {reason}")]
    CaCert { path: PathBuf, reason: String },
}

/// Where requests go: scheme, host and an optional base path that prefixes every request.
#[derive(Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    base_path: String,
    /// The Host header for this upstream, made once rather than per request.
    host_header: HeaderValue,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// Timers for upstream deadlines, reused from one request to the next.
    timers: Arc<Timers>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upstream({self})")
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

impl Upstream {
    /// Parses `target`; https uses the system's roots plus `ca_cert` (a PEM file) if given.
    /// `envd://HOST:PORT/NAME` is route NAME of a gateway (TLS); `envd+http://` the same
    /// in plain HTTP (for loopback tests).
    pub fn new(target: &str, ca_cert: Option<&Path>) -> Result<Self, UpstreamError> {
        let invalid = || UpstreamError::Target {
            target: target.to_owned(),
        };
        let target = &match gateway_route(target) {
            Some((scheme, authority, name)) => format!("{scheme}://{authority}/routes/{name}"),
            None => target.to_owned(),
        };
        let uri: Uri = target.parse().map_err(|_| invalid())?;
        let scheme = uri.scheme().cloned().ok_or_else(invalid)?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(invalid());
        }
        let authority = uri.authority().cloned().ok_or_else(invalid)?;
        if uri.query().is_some() {
            return Err(invalid());
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        // As an HTTP client writes it: the port only when it is not the scheme's default.
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => format!("{}:{port}", authority.host()),
            _ => authority.host().to_owned(),
        };
        let host_header = HeaderValue::from_str(&host).map_err(|_| invalid())?;
        Ok(Upstream {
            client: client(ca_cert)?,
            timers: Arc::default(),
            scheme,
            authority,
            base_path,
            host_header,
        })
    }

    /// The upstream URI for a request's path and query.
    pub fn uri(&self, path_and_query: Option<&PathAndQuery>) -> Uri {
        let path_and_query = match (self.base_path.as_str(), path_and_query) {
            // No base path: the request's own target, shared rather than parsed again.
            ("", Some(path_and_query)) => path_and_query.clone(),
            (base, tail) => {
                let tail = tail.map(PathAndQuery::as_str).unwrap_or("/");
                PathAndQuery::try_from(format!("{base}{tail}"))
                    .expect("a base path and an origin-form target make a valid path")
            }
        };
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).expect("a scheme, an authority and a path make a valid URI")
    }

    /// The Host header a request to this upstream carries.
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// The host name, for naming the provider of a recording.
    pub fn host(&self) -> &str {
        self.authority.host()
    }

    pub fn client(&self) -> &Client<HttpsConnector<HttpConnector>, Body> {
        &self.client
    }

    pub fn timers(&self) -> &Timers {
        &self.timers
    }
}

/// For a gateway target (`envd://HOST:PORT/NAME` or `envd+http://…`): the scheme to reach
/// the gateway with, its address and the route name.
pub fn gateway_route(target: &str) -> Option<(&'static str, &str, &str)> {
    let (scheme, rest) = if let Some(rest) = target.strip_prefix("envd://") {
        ("https", rest)
    } else {
        ("http", target.strip_prefix("envd+http://")?)
    };
    let (authority, name) = rest.split_once('/')?;
    let name = name.trim_end_matches('/');
    (!authority.is_empty() && !name.is_empty() && !name.contains('/'))
        .then_some((scheme, authority, name))
}

fn client(
    ca_cert: Option<&Path>,
) -> Result<Client<HttpsConnector<HttpConnector>, Body>, UpstreamError> {
    let roots = crate::tls::roots(true, ca_cert).map_err(|reason| UpstreamError::CaCert {
        path: ca_cert.unwrap_or(Path::new("")).to_owned(),
        reason,
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let upstream = Upstream::new("https://users.staging.example.com/api/", None).unwrap();
        let path: PathAndQuery = "/v1/users?id=7".parse().unwrap();
        assert_eq!(
            upstream.uri(Some(&path)).to_string(),
            "https://users.staging.example.com/api/v1/users?id=7"
        );
        let gateway = Upstream::new("envd://gateway.example:7700/users", None).unwrap();
        assert_eq!(
            gateway.to_string(),
            "https://gateway.example:7700/routes/users"
        );
        let plain = Upstream::new("envd+http://127.0.0.1:7700/users/", None).unwrap();
        assert_eq!(plain.to_string(), "http://127.0.0.1:7700/routes/users");
        for bad in [
            "users.staging",
            "ftp://x",
            "http://host/?q=1",
            "",
            "envd://host",
            "envd://host/a/b",
        ] {
            assert!(Upstream::new(bad, None).is_err(), "{bad} accepted");
        }
    }
}
