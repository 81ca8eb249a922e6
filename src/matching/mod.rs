//! Request matching by the Pact specification.
//!
//! Pure: no IO, no tokio, no hyper. The semantics are pact_matching's (the reference
//! implementation of the specification); this module decides how little of it has to run
//! per request: an [`Expectation`] is compiled once per interaction, and the cheap parts
//! (method, path) are checked before the expensive ones (query, headers, body).

mod discriminator;
mod explain;
mod plan;
mod xml;

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use pact_matching::headers::match_headers;
use pact_matching::json::compare_json;
use pact_matching::{
    match_body, match_method, match_path, match_query, BodyMatchResult, CoreMatchingContext,
    DiffConfig, HeaderMatchingContext, Mismatch,
};
use pact_models::bodies::OptionalBody;
use pact_models::content_types::ContentType;
use pact_models::matchingrules::MatchingRuleCategory;
use pact_models::path_exp::DocPath;
use pact_models::v4::http_parts::HttpRequest;
use serde_json::Value;

pub use discriminator::{BodyKey, Discriminator};
pub use explain::describe;

/// The request side of one interaction, with its matching contexts built once at load time
/// rather than per request (pact_matching's `match_request` clones all of them per call).
#[derive(Debug, Clone)]
pub struct Expectation {
    request: HttpRequest,
    /// A Pact V1 query, compared as a string (V1.1 and later compare parameters).
    literal_query: Option<String>,
    /// `None` when the request has no matching rules (most interactions): they all share
    /// one empty set, which keeps a stub of 100,000 interactions small.
    contexts: Option<Box<Contexts>>,
    /// Kept to answer [`Expectation::rule_count`] without walking the rules again.
    rules: usize,
    /// The expected body, parsed once, when it is JSON: matching then parses only the
    /// actual body, once per request, instead of both bodies once per candidate.
    json_body: Option<Box<JsonBody>>,
}

#[derive(Debug, Clone)]
enum JsonBody {
    /// Compiled: rules looked up at load time (see `plan`).
    Planned(plan::Plan),
    /// Rules on objects or arrays: pact_matching's `compare_json` on the parsed tree.
    Tree(Value),
}

/// One matching context per part of the request, built once.
#[derive(Debug, Clone)]
struct Contexts {
    path: CoreMatchingContext,
    query: CoreMatchingContext,
    headers: HeaderMatchingContext,
    body: CoreMatchingContext,
}

impl Contexts {
    fn empty() -> &'static Contexts {
        static EMPTY: std::sync::OnceLock<Contexts> = std::sync::OnceLock::new();
        EMPTY.get_or_init(|| {
            let none = CoreMatchingContext::new(DiffConfig::NoUnexpectedKeys, &Default::default());
            Contexts {
                headers: HeaderMatchingContext::new(&none),
                path: none.clone(),
                query: none.clone(),
                body: none,
            }
        })
    }
}

impl Expectation {
    /// `literal_query` is the query of a Pact V1 file as written, compared as a string.
    pub fn new(request: HttpRequest, literal_query: Option<String>) -> Self {
        let is_xml = request
            .content_type()
            .is_some_and(|content_type| content_type.is_xml());
        let context = |category: &str| {
            let mut rules = request
                .matching_rules
                .rules_for_category(category)
                .unwrap_or_default();
            if is_xml && category == "body" {
                rules = xml::body_rules(&rules);
            }
            CoreMatchingContext::new(DiffConfig::NoUnexpectedKeys, &rules)
        };
        let rules = request
            .matching_rules
            .rules
            .values()
            .map(|category| category.rules.len())
            .sum();
        let contexts = (rules > 0).then(|| {
            Box::new(Contexts {
                path: context("path"),
                query: context("query"),
                headers: HeaderMatchingContext::new(&context("header")),
                body: context("body"),
            })
        });
        let json_body = request
            .content_type()
            .filter(ContentType::is_json)
            .and_then(|_| request.body.value())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .map(|tree| {
                let body = &contexts
                    .as_deref()
                    .unwrap_or_else(|| Contexts::empty())
                    .body;
                Box::new(match plan::Plan::build(&tree, body) {
                    Some(plan) => JsonBody::Planned(plan),
                    None => JsonBody::Tree(tree),
                })
            });
        Expectation {
            contexts,
            rules,
            json_body,
            literal_query: literal_query.map(|query| percent_decoded(&query)),
            request,
        }
    }

    pub fn request(&self) -> &HttpRequest {
        &self.request
    }

    fn contexts(&self) -> &Contexts {
        self.contexts
            .as_deref()
            .unwrap_or_else(|| Contexts::empty())
    }

    /// Whether the path is compared literally (no matching rule on it): such an
    /// interaction can be found by a map lookup on the path.
    pub fn literal_path(&self) -> bool {
        self.contexts().path.matchers.rules.is_empty()
    }

    /// The regular expression every matching path satisfies, when the path's only rule is
    /// a regex; used to index rule-matched paths.
    pub fn path_regex(&self) -> Option<&str> {
        let mut regexes = self
            .contexts()
            .path
            .matchers
            .rules
            .values()
            .flat_map(|list| {
                list.rules.iter().map(|rule| match rule {
                    pact_models::matchingrules::MatchingRule::Regex(regex) => Some(regex.as_str()),
                    _ => None,
                })
            });
        let first = regexes.next()??;
        regexes.next().is_none().then_some(first)
    }

    /// How many matching rules the request carries; fewer is more specific (a literal beats
    /// a rule when several interactions match).
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    pub fn body_rules(&self) -> &MatchingRuleCategory {
        &self.contexts().body.matchers
    }

    /// Whether `actual` satisfies this expectation, stopping at the first failing part.
    pub fn matches(&self, actual: &Actual) -> bool {
        match_method(&self.request.method, &actual.method).is_ok()
            && match_path(&self.request.path, &actual.path, &self.contexts().path).is_ok()
            && self.matches_beyond_path(actual)
    }

    /// [`Expectation::matches`] for a request whose method and path are already known to
    /// match (found under this interaction's literal path in an index).
    pub fn matches_beyond_path(&self, actual: &Actual) -> bool {
        self.query_mismatches(actual).is_empty()
            && match_headers(
                self.request.headers.clone(),
                actual.headers.clone(),
                &self.contexts().headers,
            )
            .values()
            .all(Vec::is_empty)
            && self.body_matches(actual)
    }

    fn body_matches(&self, actual: &Actual) -> bool {
        if let (Some(expected), Some(received)) = (&self.json_body, actual.json()) {
            // Exactly the case in which pact_matching's `match_body` would parse both bodies
            // and call `compare_json`: skip straight to it.
            let expected_type = self.request.content_type().unwrap_or_default();
            let actual_type = actual.content_type().unwrap_or_default();
            if actual_type.is_unknown()
                || expected_type.is_equivalent_to(&actual_type)
                || expected_type.is_equivalent_to(&actual_type.base_type())
            {
                return match expected.as_ref() {
                    JsonBody::Planned(plan) => plan.matches(received),
                    JsonBody::Tree(tree) => {
                        compare_json(&DocPath::root(), tree, received, &self.contexts().body)
                            .is_ok()
                    }
                };
            }
        }
        matches!(self.body_result(actual), BodyMatchResult::Ok)
    }

    /// Every mismatch between this expectation and `actual`, in a stable order (method,
    /// path, query, headers, body), for explaining a miss.
    pub fn mismatches(&self, actual: &Actual) -> Vec<Mismatch> {
        let mut found = Vec::new();
        found.extend(match_method(&self.request.method, &actual.method).err());
        found.extend(
            match_path(&self.request.path, &actual.path, &self.contexts().path)
                .err()
                .unwrap_or_default(),
        );
        found.extend(self.query_mismatches(actual));
        let mut headers: Vec<_> = match_headers(
            self.request.headers.clone(),
            actual.headers.clone(),
            &self.contexts().headers,
        )
        .into_iter()
        .collect();
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        found.extend(headers.into_iter().flat_map(|(_, list)| list));
        found.extend(self.body_result(actual).mismatches());
        found
    }

    fn query_mismatches(&self, actual: &Actual) -> Vec<Mismatch> {
        if let Some(expected) = &self.literal_query {
            let received = actual.query_text.as_deref().unwrap_or_default();
            if expected == received {
                return Vec::new();
            }
            return vec![Mismatch::QueryMismatch {
                parameter: "(query string)".to_owned(),
                expected: expected.clone(),
                actual: received.to_owned(),
                mismatch: format!("Expected '{expected}' to be equal to '{received}'"),
            }];
        }
        let mut query: Vec<_> = match_query(
            self.request.query.clone(),
            actual.query.clone(),
            &self.contexts().query,
        )
        .into_iter()
        .collect();
        query.sort_by(|a, b| a.0.cmp(&b.0));
        query.into_iter().flat_map(|(_, list)| list).collect()
    }

    fn body_result(&self, actual: &HttpRequest) -> BodyMatchResult {
        let contexts = self.contexts();
        ready(match_body(
            &self.request,
            actual,
            &contexts.body,
            &contexts.headers,
        ))
    }
}

/// The parts of a request as they arrived, before they are shaped for matching.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as sent on the wire, still percent-encoded.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a str)],
}

/// A received request shaped for matching; derefs to the pact_models request.
#[derive(Debug, Clone)]
pub struct Actual {
    pub request: HttpRequest,
    /// The query string, percent-decoded, for Pact V1's whole-string comparison.
    query_text: Option<String>,
    /// The body as JSON, parsed on first need and then shared by every candidate.
    json: OnceLock<Option<Value>>,
}

impl Actual {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| match &self.request.body {
                OptionalBody::Present(bytes, _, _) => serde_json::from_slice(bytes).ok(),
                _ => None,
            })
            .as_ref()
    }
}

impl std::ops::Deref for Actual {
    type Target = HttpRequest;

    fn deref(&self) -> &HttpRequest {
        &self.request
    }
}

/// `text` with its percent-escapes decoded (left as it is when that is not UTF-8).
pub fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|text| text.into_owned())
        .unwrap_or_else(|_| text.to_owned())
}

/// Shapes a received request the way Pact compares it: the path percent-decoded, the query
/// decoded into parameters, header values split where the header is a list.
pub fn actual_request(received: Received<'_>, body: Bytes) -> Actual {
    let path = percent_decoded(received.path);
    let query = received
        .query
        .and_then(pact_models::query_strings::parse_query_string);
    let mut headers: HashMap<String, Vec<String>> = HashMap::new();
    let mut content_type = None;
    for (name, value) in received.headers {
        if name.eq_ignore_ascii_case("content-type") {
            content_type = ContentType::parse(*value).ok();
        }
        headers
            .entry((*name).to_owned())
            .or_default()
            .extend(pact_models::headers::parse_header(name, value));
    }
    let body = if body.is_empty() {
        OptionalBody::Empty
    } else {
        OptionalBody::Present(body, content_type, None)
    };
    Actual {
        request: HttpRequest {
            method: received.method.to_owned(),
            path,
            query,
            headers: (!headers.is_empty()).then_some(headers),
            body,
            ..HttpRequest::default()
        },
        query_text: received.query.map(percent_decoded),
        json: OnceLock::new(),
    }
}

/// Runs a future that cannot suspend. pact_matching's body matching and generators are
/// `async` only for plugins, which envd builds without, so they are always ready at the
/// first poll; this keeps matching free of any runtime.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("pact_matching without plugins never suspends"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expectation(request: serde_json::Value) -> Expectation {
        Expectation::new(HttpRequest::from_json(&request).expect("request"), None)
    }

    fn actual(
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Actual {
        actual_request(
            Received {
                method,
                path,
                query,
                headers,
            },
            Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    /// One case: does `actual` match `expected`, and what does the first mismatch say.
    fn check(expected: serde_json::Value, actual: Actual, words: Option<&str>) {
        let expectation = expectation(expected);
        let mismatches: Vec<String> = expectation
            .mismatches(&actual)
            .iter()
            .map(describe)
            .collect();
        assert_eq!(
            expectation.matches(&actual),
            mismatches.is_empty(),
            "{mismatches:?}"
        );
        match words {
            None => assert!(
                mismatches.is_empty(),
                "unexpected mismatches {mismatches:?}"
            ),
            Some(words) => assert!(
                mismatches.iter().any(|m| m.contains(words)),
                "no mismatch says {words:?}: {mismatches:?}"
            ),
        }
    }

    #[test]
    fn literal_requests() {
        check(
            json!({"method": "GET", "path": "/a"}),
            actual("GET", "/a", None, &[], ""),
            None,
        );
        check(
            json!({"method": "GET", "path": "/a"}),
            actual("get", "/a", None, &[], ""),
            None,
        );
        check(
            json!({"method": "GET", "path": "/a"}),
            actual("POST", "/a", None, &[], ""),
            Some("method: expected GET, got POST"),
        );
        check(
            json!({"method": "GET", "path": "/a b"}),
            actual("GET", "/a%20b", None, &[], ""),
            None,
        );
        check(
            json!({"method": "GET", "path": "/a", "query": {"q": ["1"]}}),
            actual("GET", "/a", Some("q=2"), &[], ""),
            Some("query q"),
        );
        check(
            json!({"method": "GET", "path": "/a", "headers": {"Accept": "text/plain"}}),
            actual("GET", "/a", None, &[("accept", "application/json")], ""),
            Some("header Accept"),
        );
    }

    #[test]
    fn v1_queries_compare_as_whole_strings() {
        let written = json!({"method": "GET", "path": "/a", "query": "a=1&b=x=y"});
        let v1 = Expectation::new(
            HttpRequest::from_json(&written).unwrap(),
            Some("a=1&b=x=y".into()),
        );
        assert!(v1.matches(&actual("GET", "/a", Some("a=1&b=x%3Dy"), &[], "")));
        assert!(!v1.matches(&actual("GET", "/a", Some("b=x%3Dy&a=1"), &[], "")));
        assert!(!v1.matches(&actual("GET", "/a", Some("a=1&b=x%3Dy&"), &[], "")));
        let later = expectation(written);
        assert!(later.matches(&actual("GET", "/a", Some("b=x%3Dy&a=1"), &[], "")));
    }

    #[test]
    fn body_rules() {
        let typed = json!({
            "method": "POST", "path": "/items",
            "headers": {"Content-Type": "application/json"},
            "body": {"items": [{"id": 1}]},
            "matchingRules": {"body": {"$.items[*].id": {"matchers": [{"match": "integer"}]}}}
        });
        let json = [("Content-Type", "application/json")];
        check(
            typed.clone(),
            actual("POST", "/items", None, &json, r#"{"items":[{"id":7}]}"#),
            None,
        );
        check(
            typed,
            actual("POST", "/items", None, &json, r#"{"items":[{"id":"abc"}]}"#),
            Some("body $.items[0].id: expected an integer, got \"abc\""),
        );
    }

    #[test]
    fn regex_paths_are_indexable() {
        let rule = expectation(json!({
            "method": "GET", "path": "/items/1",
            "matchingRules": {"path": {"matchers": [{"match": "regex", "regex": "/items/\\d+"}]}}
        }));
        assert!(!rule.literal_path());
        assert_eq!(rule.path_regex(), Some("/items/\\d+"));
        assert!(rule.matches(&actual("GET", "/items/42", None, &[], "")));
        let literal = expectation(json!({"method": "GET", "path": "/items/1"}));
        assert!(literal.literal_path());
        assert!(literal.rule_count() < rule.rule_count());
    }
}
