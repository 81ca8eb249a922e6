//! The staging gateway: allowlisted staging services at `/routes/NAME/…` behind one
//! authenticated endpoint, so a laptop needs one address instead of a VPN to each service.
//!
//! Never an open proxy: only origin-form requests to a configured route are forwarded;
//! absolute-form targets and CONNECT are refused before anything else is looked at.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use serde_json::json;

use super::{check_listener, DaemonError, Token};
use crate::proxy::{self, Upstream};
use crate::server::{self, problem, response, Body, Handler, Limits};

/// Everything a gateway needs, validated.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub token: Token,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub insecure: bool,
    pub routes: BTreeMap<String, Route>,
    pub timeout: Duration,
    pub limits: Limits,
    /// Serve the environments API at /v1/ too (a shared CI host), from this home.
    pub environments: Option<PathBuf>,
}

/// A staging service behind the gateway, and the headers the gateway adds on its way
/// there: staging credentials that stay on the gateway (sensitive values, never logged).
#[derive(Debug, Clone)]
pub struct Route {
    pub upstream: Upstream,
    pub inject: Vec<(HeaderName, HeaderValue)>,
}

/// Parses `NAME=URL`.
pub fn route(spec: &str) -> Result<(String, Route), DaemonError> {
    let fail = |reason: String| DaemonError::Route {
        spec: spec.to_owned(),
        reason,
    };
    let (name, url) = spec
        .split_once('=')
        .ok_or_else(|| fail("expected NAME=URL".into()))?;
    let name = route_name(name).map_err(fail)?;
    let upstream = Upstream::new(url.trim(), None).map_err(|error| fail(error.to_string()))?;
    Ok((
        name,
        Route {
            upstream,
            inject: Vec::new(),
        },
    ))
}

fn route_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("a route name is letters, digits, - and _".into());
    }
    Ok(name.to_owned())
}

/// Parses `--route-header 'NAME=HEADER: VALUE'` (`${VAR}` from `variable`) and adds the
/// header to route NAME. Errors show the header's name, never its value.
pub fn add_route_header(
    routes: &mut BTreeMap<String, Route>,
    spec: &str,
    variable: impl FnMut(&str) -> Option<String>,
) -> Result<(), DaemonError> {
    let shown = spec.split(':').next().unwrap_or_default().to_owned() + ": …";
    let fail = |reason: String| DaemonError::RouteHeader {
        spec: shown.clone(),
        reason,
    };
    let (name, header) = spec
        .split_once('=')
        .ok_or_else(|| fail("expected ROUTE=NAME: VALUE".into()))?;
    let (header, template) = header
        .split_once(':')
        .ok_or_else(|| fail("expected ROUTE=NAME: VALUE".into()))?;
    let name = name.trim();
    let route = routes.get_mut(name).ok_or_else(|| {
        fail(format!(
            "no route {name:?}; give it with --route {name}=URL or in --config"
        ))
    })?;
    let header = proxy::sensitive_header(header, template, variable).map_err(fail)?;
    route.inject.push(header);
    Ok(())
}

/// Routes from a config file, TOML if its name ends in `.toml`, JSON otherwise. A route is
/// a URL, or a table with `url` and `headers` to add upstream (`${VAR}` from `variable`):
///
/// ```toml
/// [routes]
/// users = "https://users.staging.internal"
/// payments = { url = "https://payments.staging.internal", headers = { Authorization = "Bearer ${STAGING_TOKEN}" } }
/// ```
pub fn routes_from_file(
    path: &Path,
    mut variable: impl FnMut(&str) -> Option<String>,
) -> Result<Vec<(String, Route)>, DaemonError> {
    let fail = |reason: String| DaemonError::Config {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|error| fail(error.to_string()))?;
    let toml = path
        .extension()
        .is_some_and(|extension| extension == "toml");
    let config: serde_json::Value = if toml {
        toml::from_str(&text).map_err(|error| {
            let (line, column) =
                crate::manifest::line_column(&text, error.span().map_or(0, |span| span.start));
            fail(format!(
                "{line}:{column}: invalid TOML: {}",
                error.message().trim()
            ))
        })?
    } else {
        serde_json::from_str(&text).map_err(|error| {
            fail(format!(
                "{}:{}: invalid JSON: {error}",
                error.line(),
                error.column()
            ))
        })?
    };
    // Where a value is, as the file's own syntax says it: `routes.users.url` in TOML, a
    // JSON pointer otherwise.
    let at = |keys: &[&str]| {
        if toml {
            keys.join(".")
        } else {
            format!("#/{}", keys.join("/"))
        }
    };
    let routes = config
        .get("routes")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| {
            fail(format!(
                "{}: expected a table of NAME = URL",
                at(&["routes"])
            ))
        })?;
    let mut parsed = Vec::with_capacity(routes.len());
    for (name, value) in routes {
        let (url, headers) = match value {
            serde_json::Value::String(url) => (url.as_str(), None),
            serde_json::Value::Object(table) => {
                let url = table
                    .get("url")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| {
                        fail(format!(
                            "{}: expected a URL string",
                            at(&["routes", name, "url"])
                        ))
                    })?;
                if let Some(key) = table.keys().find(|key| *key != "url" && *key != "headers") {
                    return Err(fail(format!(
                        "{}: unknown key; a route has url and headers",
                        at(&["routes", name, key])
                    )));
                }
                (url, table.get("headers"))
            }
            _ => {
                return Err(fail(format!(
                    "{}: expected a URL string, or a table with url and headers",
                    at(&["routes", name])
                )))
            }
        };
        let name = route_name(name)
            .map_err(|reason| fail(format!("{}: {reason}", at(&["routes", name]))))?;
        let upstream = Upstream::new(url.trim(), None)
            .map_err(|error| fail(format!("{}: {error}", at(&["routes", &name, "url"]))))?;
        let mut inject = Vec::new();
        if let Some(headers) = headers {
            let headers = headers.as_object().ok_or_else(|| {
                fail(format!(
                    "{}: expected a table of header NAME = VALUE",
                    at(&["routes", &name, "headers"])
                ))
            })?;
            for (header, template) in headers {
                let here = at(&["routes", &name, "headers", header]);
                let template = template
                    .as_str()
                    .ok_or_else(|| fail(format!("{here}: expected a string")))?;
                inject.push(
                    proxy::sensitive_header(header, template, &mut variable)
                        .map_err(|reason| fail(format!("{here}: {reason}")))?,
                );
            }
        }
        parsed.push((name, Route { upstream, inject }));
    }
    Ok(parsed)
}

pub struct Gateway {
    token: Token,
    routes: BTreeMap<String, Route>,
    timeout: Duration,
    environments: Option<Arc<super::environments::Environments>>,
}

/// Binds, calls `listening` with the address, and serves until `shutdown`.
pub async fn run(
    options: Options,
    listening: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    check_listener(options.listen, options.tls.is_some(), options.insecure)?;
    if options.routes.is_empty() && options.environments.is_none() {
        return Err(DaemonError::NoRoutes);
    }
    let environments = match &options.environments {
        Some(home) => Some(super::local::open_home(home).await?),
        None => None,
    };
    let tls = match &options.tls {
        Some((certificate, key)) => {
            Some(server::tls_acceptor(certificate, key).map_err(DaemonError::Tls)?)
        }
        None => None,
    };
    let (listener, address) = crate::server::bind(options.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            address: options.listen,
            source,
        })?;
    if !address.ip().is_loopback() && tls.is_none() {
        tracing::warn!(%address, "serving plain HTTP off loopback (--insecure): tokens cross the network in clear");
    }
    let routes: Vec<&String> = options.routes.keys().collect();
    tracing::info!(?routes, tls = tls.is_some(), "gateway ready");
    let gateway = Arc::new(Gateway {
        token: options.token,
        routes: options.routes,
        timeout: options.timeout,
        environments: environments.clone(),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    listening(address);
    tracing::debug!(%scheme, "listening");
    match tls {
        Some(tls) => server::serve_tls(listener, tls, gateway, options.limits, shutdown).await,
        None => server::serve(listener, gateway, options.limits, shutdown).await,
    }
    if let Some(environments) = environments {
        environments.down_all().await;
    }
    Ok(())
}

impl Handler for Gateway {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if server::is_open_proxy_request(&request) {
            return response(problem(
                400,
                "not an open proxy",
                "the gateway forwards only /routes/NAME/… to its configured staging services",
            ));
        }
        if request.method() == Method::GET && request.uri().path() == "/__envd/health" {
            return response(crate::stub::Reply::plain(
                200,
                vec![("Content-Type".into(), "application/json".into())],
                json!({"status": "ok"}).to_string().into(),
            ));
        }
        if !self.token.admits(request.headers()) {
            let mut answer = response(problem(
                401,
                "unauthorized",
                "expected Authorization: Bearer <token> with the gateway's token",
            ));
            answer.headers_mut().insert(
                "www-authenticate",
                HeaderValue::from_static("Bearer realm=\"envd\""),
            );
            return answer;
        }
        if let Some(environments) = &self.environments {
            if request.uri().path().starts_with(super::api::API_PREFIX) {
                return buffered(super::local::handle(environments, request).await).await;
            }
        }
        let (mut parts, body) = request.into_parts();
        let Some((name, tail)) = parts.uri.path().strip_prefix("/routes/").map(|rest| {
            let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
            (name.to_owned(), format!("/{tail}"))
        }) else {
            return response(problem(404, "no such route", "expected /routes/NAME/…"));
        };
        let Some(route) = self.routes.get(&name) else {
            let known: Vec<&str> = self.routes.keys().map(String::as_str).collect();
            return response(problem(
                404,
                "no such route",
                format!("no route {name:?}; this gateway has {}", known.join(", ")),
            ));
        };
        let target = match parts.uri.query() {
            Some(query) => format!("{tail}?{query}"),
            None => tail,
        };
        parts.uri = match target.parse() {
            Ok(uri) => uri,
            Err(_) => return response(problem(400, "bad request target", target)),
        };
        // The gateway's token is for the gateway: staging never sees it.
        parts.headers.remove(hyper::header::AUTHORIZATION);
        let upstream = &route.upstream;
        let request = Request::from_parts(parts, Either::Right(body));
        let since = std::time::Instant::now();
        match proxy::send(upstream, request, &route.inject, peer, self.timeout, since).await {
            Ok(answer) => {
                let (mut answer_parts, answer_body) = answer.into_parts();
                proxy::strip_hop_by_hop(&mut answer_parts.headers);
                tracing::debug!(route = %name, status = %answer_parts.status, "forwarded");
                Response::from_parts(answer_parts, Either::Right(answer_body))
            }
            Err(failure) => {
                tracing::warn!(route = %name, status = failure.status, why = %failure.why, "upstream error");
                response(crate::server::problem_reply(
                    failure.status,
                    &json!({
                        "type": "urn:envd:problem:upstream",
                        "title": failure.title,
                        "status": failure.status,
                        "detail": format!("route {name} ({upstream}): {}", failure.why),
                    }),
                    false,
                ))
            }
        }
    }
}

/// An environments API answer over the shared server: streamed bodies (progress, logs)
/// are sent whole once they end, since the server's body type carries no streams of ours.
async fn buffered(answer: Response<super::local::Body>) -> Response<Body> {
    use http_body_util::BodyExt;
    let (parts, body) = answer.into_parts();
    let bytes = match body {
        Either::Left(full) => full
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default(),
        Either::Right(stream) => stream
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default(),
    };
    Response::from_parts(parts, Either::Left(http_body_util::Full::new(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named_urls() {
        let (name, parsed) = route("users=https://users.staging.example.com").unwrap();
        assert_eq!(
            (name.as_str(), parsed.upstream.to_string().as_str()),
            ("users", "https://users.staging.example.com")
        );
        for bad in ["users", "=http://x", "us ers=http://x", "users=ftp://x"] {
            assert!(route(bad).is_err(), "{bad} accepted");
        }
    }
}
