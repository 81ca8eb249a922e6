//! The interactions a stub serves, indexed so that finding the one that answers a request
//! costs the same with ten interactions as with a hundred thousand.
//!
//! Pure: built from loaded contracts, asked with a shaped request. Invariant: every index
//! is a sound pre-filter; the final word on a match is always [`Expectation::matches`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use pact_matching::generate_response;
use pact_models::generators::GeneratorTestMode;
use pact_models::provider_states::ProviderState;
use pact_models::v4::http_parts::HttpResponse;
use regex::RegexSet;
use serde_json::Value;

use crate::contract::{self, Source};
use crate::matching::{self, Actual, Discriminator, Expectation};

/// Candidates looked at to explain a miss: enough to find the near ones, few enough that a
/// miss among 100,000 interactions costs about what it costs among ten.
const MISS_POOL: usize = 24;

/// One served interaction; identical requests from a recording share one, with their
/// responses in recorded order.
#[derive(Debug)]
pub struct Served {
    pub description: String,
    pub provider_states: Vec<ProviderState>,
    pub sources: Vec<Source>,
    pub expectation: Expectation,
    pub replies: Vec<LazyReply>,
}

/// A reply prepared on first use from the response as written.
#[derive(Debug)]
pub struct LazyReply {
    /// Taken (and freed) when the reply is prepared, so memory holds one form, not two.
    written: Mutex<Option<contract::Response>>,
    ready: OnceLock<Reply>,
    /// The latency recorded with this response, for `--latency recorded`.
    latency: Option<Duration>,
}

impl LazyReply {
    fn new(written: contract::Response, latency: Option<Duration>) -> Self {
        LazyReply {
            written: Mutex::new(Some(written)),
            ready: OnceLock::new(),
            latency,
        }
    }

    fn get(&self, sources: &[Source]) -> &Reply {
        self.ready.get_or_init(|| {
            let written = self
                .written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .unwrap_or_default();
            match written.parse() {
                Ok(response) => Reply {
                    latency: self.latency,
                    ..Reply::new(&response)
                },
                Err(error) => {
                    let place = sources.first().map(ToString::to_string).unwrap_or_default();
                    tracing::error!(%place, %error, "an interaction's response does not parse");
                    let problem = serde_json::json!({
                        "type": "about:blank",
                        "title": "the matched interaction's response does not parse",
                        "status": 500,
                        "detail": format!("{place}/response: {error}"),
                    });
                    Reply::plain(
                        500,
                        vec![(
                            "Content-Type".to_owned(),
                            "application/problem+json".to_owned(),
                        )],
                        Bytes::from(problem.to_string()),
                    )
                }
            }
        })
    }
}

/// A response prepared at load time; only responses with generators are built per request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Shared: a reply is cloned per request, its headers need not be.
    pub headers: Arc<[(String, String)]>,
    pub body: Bytes,
    /// The latency recorded with the interaction, if any (`--latency recorded`).
    pub latency: Option<Duration>,
    /// The response as written, kept when it has generators to run on each request.
    template: Option<Box<HttpResponse>>,
}

/// A provider state made active with `--state` or `POST /__envd/state`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActiveState {
    pub name: String,
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
}

#[derive(Debug, Default)]
struct Group {
    members: Vec<usize>,
    /// Boxed: most groups have one member and no discriminator.
    discriminator: Option<Box<Discriminator>>,
}

/// The interactions of one method.
#[derive(Debug, Default)]
struct MethodIndex {
    /// Paths compared literally, by decoded path.
    literal: HashMap<String, Group>,
    /// Paths with a regex rule: one set over the distinct regexes, each naming its members.
    regexes: Option<RegexSet>,
    regex_members: Vec<Vec<usize>>,
    /// Paths with any other rule: always candidates (rare in practice).
    other: Vec<usize>,
}

#[derive(Debug, Default)]
pub struct Catalog {
    served: Vec<Served>,
    methods: HashMap<String, MethodIndex>,
    /// Every interaction, ordered by path, to find a miss's neighbours.
    by_path: Vec<usize>,
    /// Where each sequence stands: the index of the next reply.
    positions: Vec<AtomicUsize>,
    pub skipped: contract::Skipped,
}

impl Catalog {
    pub fn new(interactions: Vec<contract::Interaction>, skipped: contract::Skipped) -> Self {
        // Which served interaction each one joins: the first with the same states and request.
        let mut first_of =
            contract::FastMap::with_capacity_and_hasher(interactions.len(), Default::default());
        let joins: Vec<usize> = interactions
            .iter()
            .enumerate()
            .map(|(at, one)| {
                let key = (&one.provider_states, &one.request, &one.literal_query);
                *first_of.entry(key).or_insert(at)
            })
            .collect();
        drop(first_of);
        let mut served: Vec<Served> = Vec::with_capacity(interactions.len());
        let mut position_of: HashMap<usize, usize> = HashMap::new();
        for (interaction, first) in interactions.into_iter().zip(joins) {
            let reply = LazyReply::new(interaction.response, interaction.latency);
            if let Some(&id) = position_of.get(&first) {
                served[id].replies.push(reply);
                served[id].sources.push(interaction.source);
                continue;
            }
            position_of.insert(first, served.len());
            served.push(Served {
                description: interaction.description,
                provider_states: interaction.provider_states,
                sources: vec![interaction.source],
                expectation: Expectation::new(interaction.request, interaction.literal_query),
                replies: vec![reply],
            });
        }
        let mut methods: HashMap<String, MethodIndex> = HashMap::new();
        let mut regex_index: HashMap<String, HashMap<String, usize>> = HashMap::new();
        let mut regex_sources: HashMap<String, Vec<String>> = HashMap::new();
        for (id, one) in served.iter().enumerate() {
            let request = one.expectation.request();
            let method = request.method.to_ascii_uppercase();
            let index = methods.entry(method.clone()).or_default();
            if one.expectation.literal_path() {
                index
                    .literal
                    .entry(request.path.clone())
                    .or_default()
                    .members
                    .push(id);
            } else if let Some(regex) = one.expectation.path_regex() {
                let known = regex_index.entry(method.clone()).or_default();
                let slot = *known.entry(regex.to_owned()).or_insert_with(|| {
                    regex_sources
                        .entry(method.clone())
                        .or_default()
                        .push(regex.to_owned());
                    index.regex_members.push(Vec::new());
                    index.regex_members.len() - 1
                });
                index.regex_members[slot].push(id);
            } else {
                index.other.push(id);
            }
        }
        for (method, index) in methods.iter_mut() {
            for group in index.literal.values_mut() {
                if group.members.len() > 1 {
                    group.discriminator = Discriminator::build(
                        group
                            .members
                            .iter()
                            .map(|&id| (id, &served[id].expectation)),
                    )
                    .map(Box::new);
                }
            }
            if let Some(sources) = regex_sources.remove(method) {
                match RegexSet::new(&sources) {
                    Ok(set) => index.regexes = Some(set),
                    // pact_matching reports a bad regex as a mismatch; without a set, every
                    // one of these interactions is simply always a candidate.
                    Err(_) => index.other.extend(index.regex_members.drain(..).flatten()),
                }
            }
        }
        let mut by_path: Vec<usize> = (0..served.len()).collect();
        by_path.sort_by(|a, b| {
            let path = |id: &usize| served[*id].expectation.request().path.as_str();
            path(a).cmp(path(b)).then(a.cmp(b))
        });
        let positions = served.iter().map(|_| AtomicUsize::new(0)).collect();
        Catalog {
            served,
            methods,
            by_path,
            positions,
            skipped,
        }
    }

    pub fn len(&self) -> usize {
        self.served.len()
    }

    pub fn is_empty(&self) -> bool {
        self.served.is_empty()
    }

    pub fn served(&self) -> &[Served] {
        &self.served
    }

    /// The interaction that answers `actual`: among those that match, one whose provider
    /// state is active, then the most specific (fewest rules), then the first in file order.
    pub fn find(&self, actual: &Actual, states: &[ActiveState]) -> Option<usize> {
        let mut best: Option<((bool, usize, usize), usize)> = None;
        let candidates = self.candidates(actual);
        for (at, &id) in candidates.ids.iter().enumerate() {
            let one = &self.served[id];
            let matched = if at < candidates.by_literal_path {
                one.expectation.matches_beyond_path(actual)
            } else {
                one.expectation.matches(actual)
            };
            if !matched {
                continue;
            }
            let inactive = !one
                .provider_states
                .iter()
                .any(|state| states.iter().any(|active| active.name == state.name));
            let rank = (inactive, one.expectation.rule_count(), id);
            if best.is_none_or(|(best_rank, _)| rank < best_rank) {
                best = Some((rank, id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// The next reply of an interaction's sequence; the last one repeats.
    pub fn reply(&self, id: usize, states: &[ActiveState]) -> Reply {
        let replies = &self.served[id].replies;
        let position = if replies.len() == 1 {
            0
        } else {
            self.positions[id]
                .fetch_add(1, Ordering::Relaxed)
                .min(replies.len() - 1)
        };
        replies[position]
            .get(&self.served[id].sources)
            .render(states)
    }

    /// Starts every sequence over.
    pub fn rewind(&self) {
        for position in &self.positions {
            position.store(0, Ordering::Relaxed);
        }
    }

    /// Up to `limit` interactions closest to a request that matched none, each with its
    /// mismatches, fewest first.
    pub fn closest(
        &self,
        actual: &Actual,
        limit: usize,
    ) -> Vec<(usize, Vec<pact_matching::Mismatch>)> {
        let mut pool: Vec<usize> = self.candidates(actual).ids;
        pool.truncate(MISS_POOL);
        let path = |id: usize| self.served[id].expectation.request().path.as_str();
        let at = self
            .by_path
            .partition_point(|&id| path(id) < actual.path.as_str());
        let neighbours = self.by_path[at..]
            .iter()
            .take(MISS_POOL / 4)
            .chain(self.by_path[..at].iter().rev().take(MISS_POOL / 4));
        pool.extend(neighbours);
        pool.sort_unstable();
        pool.dedup();
        let mut scored: Vec<(usize, Vec<pact_matching::Mismatch>)> = pool
            .into_iter()
            .map(|id| (id, self.served[id].expectation.mismatches(actual)))
            .collect();
        // Fewest mismatches first; among equals, the path that shares the longest start
        // with the request's, so `/items/1000` is explained by `/items/100`.
        scored.sort_by_cached_key(|(id, mismatches)| {
            let path = &self.served[*id].expectation.request().path;
            let shared = path
                .bytes()
                .zip(actual.path.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            (mismatches.len(), std::cmp::Reverse(shared), *id)
        });
        scored.truncate(limit);
        scored
    }

    /// Interactions that might match: found by method and path, narrowed by a body literal.
    fn candidates(&self, actual: &Actual) -> Candidates {
        let method = if actual.method.bytes().any(|b| b.is_ascii_lowercase()) {
            std::borrow::Cow::Owned(actual.method.to_ascii_uppercase())
        } else {
            std::borrow::Cow::Borrowed(actual.method.as_str())
        };
        let Some(index) = self.methods.get(method.as_ref()) else {
            return Candidates::default();
        };
        let mut ids = match index.literal.get(&actual.path) {
            None => Vec::new(),
            Some(group) => match (&group.discriminator, actual.json()) {
                (Some(discriminator), Some(body)) => discriminator.candidates(body),
                _ => group.members.clone(),
            },
        };
        let by_literal_path = ids.len();
        if let Some(set) = &index.regexes {
            for slot in set.matches(&actual.path).iter() {
                ids.extend(&index.regex_members[slot]);
            }
        }
        ids.extend(&index.other);
        Candidates {
            ids,
            by_literal_path,
        }
    }
}

/// Candidate interactions for a request; the first `by_literal_path` were found under the
/// request's exact method and path, so only the rest of the request remains to compare.
#[derive(Debug, Default)]
struct Candidates {
    ids: Vec<usize>,
    by_literal_path: usize,
}

impl Reply {
    /// A reply made by envd itself rather than taken from an interaction.
    pub fn plain(status: u16, headers: Vec<(String, String)>, body: Bytes) -> Self {
        Reply {
            status,
            headers: headers.into(),
            body,
            latency: None,
            template: None,
        }
    }

    fn new(response: &HttpResponse) -> Self {
        let has_generators = response
            .generators
            .categories
            .values()
            .any(|generators| !generators.is_empty());
        let mut reply = Self::from_response(response);
        reply.template = has_generators.then(|| Box::new(response.clone()));
        reply
    }

    fn from_response(response: &HttpResponse) -> Self {
        let mut headers: Vec<(String, String)> = response
            .headers
            .iter()
            .flatten()
            .map(|(name, values)| (name.clone(), values.join(", ")))
            .collect();
        headers.sort();
        let body = response.body.value().unwrap_or_default();
        let has_content_type = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if !body.is_empty() && !has_content_type {
            if let Some(content_type) = response.content_type() {
                headers.push(("Content-Type".to_owned(), content_type.to_string()));
            }
        }
        Reply {
            status: response.status,
            headers: headers.into(),
            body,
            latency: None,
            template: None,
        }
    }

    /// The reply to send now: generators run against the active states' parameters.
    pub fn render(&self, states: &[ActiveState]) -> Reply {
        let Some(template) = &self.template else {
            return self.clone();
        };
        let context: HashMap<&str, Value> = states
            .iter()
            .flat_map(|state| state.params.iter())
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        // Provider mode: a stub stands in for the provider, and ProviderState generators
        // (values from the active states' params) only run in that mode.
        Reply {
            latency: self.latency,
            ..Self::from_response(&matching::ready(generate_response(
                template,
                &GeneratorTestMode::Provider,
                &context,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{actual_request, Received};
    use std::path::Path;

    fn catalog(interactions: Value) -> Catalog {
        let pact = serde_json::json!({
            "interactions": interactions,
            "metadata": {"pactSpecification": {"version": "4.0"}}
        });
        let (list, skipped) = contract::load_text(Path::new("t.json"), pact.to_string().as_bytes())
            .expect("contract loads");
        Catalog::new(list, skipped)
    }

    fn get(path: &str) -> Actual {
        actual_request(
            Received {
                method: "GET",
                path,
                query: None,
                headers: &[],
            },
            Bytes::new(),
        )
    }

    /// Which description answers `path`, given the active states.
    fn check(catalog: &Catalog, path: &str, states: &[&str], expected: Option<&str>) {
        let states: Vec<ActiveState> = states
            .iter()
            .map(|name| ActiveState {
                name: (*name).to_owned(),
                params: Default::default(),
            })
            .collect();
        let found = catalog.find(&get(path), &states);
        assert_eq!(
            found.map(|id| catalog.served()[id].description.as_str()),
            expected
        );
    }

    fn interaction(description: &str, path: &str, extra: Value) -> Value {
        let mut json = serde_json::json!({
            "type": "Synchronous/HTTP", "description": description,
            "request": {"method": "GET", "path": path},
            "response": {"status": 200, "body": description}
        });
        json.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json
    }

    #[test]
    fn ties_prefer_active_state_then_literal_then_file_order() {
        let regex = serde_json::json!({"request": {"method": "GET", "path": "/items/1",
            "matchingRules": {"path": {"combine": "AND", "matchers": [{"match": "regex", "regex": "^/items/\\d+$"}]}}}});
        let c = catalog(serde_json::json!([
            interaction("any item", "/items/1", regex),
            interaction("item one", "/items/1", serde_json::json!({})),
            interaction(
                "item one again",
                "/items/1",
                serde_json::json!({"response": {"status": 201}})
            ),
            interaction(
                "item one when sold out",
                "/items/1",
                serde_json::json!({"providerStates": [{"name": "sold out"}], "response": {"status": 410}})
            ),
        ]));
        check(&c, "/items/1", &[], Some("item one"));
        check(
            &c,
            "/items/1",
            &["sold out"],
            Some("item one when sold out"),
        );
        check(&c, "/items/2", &[], Some("any item"));
        check(&c, "/other", &[], None);
    }

    #[test]
    fn identical_requests_answer_in_recorded_order_and_the_last_repeats() {
        let c = catalog(serde_json::json!([
            interaction(
                "first",
                "/seq",
                serde_json::json!({"response": {"status": 200}})
            ),
            interaction(
                "second",
                "/seq",
                serde_json::json!({"response": {"status": 202}})
            ),
        ]));
        let id = c.find(&get("/seq"), &[]).expect("match");
        let statuses: Vec<u16> = (0..3).map(|_| c.reply(id, &[]).status).collect();
        assert_eq!(statuses, [200, 202, 202]);
        c.rewind();
        assert_eq!(c.reply(id, &[]).status, 200);
    }

    #[test]
    fn a_miss_finds_its_neighbours() {
        let many: Vec<Value> = (0..1000)
            .map(|i| {
                interaction(
                    &format!("item {i}"),
                    &format!("/items/{i}"),
                    serde_json::json!({}),
                )
            })
            .collect();
        let c = catalog(Value::Array(many));
        let closest = c.closest(&get("/items/1000"), 3);
        assert_eq!(closest.len(), 3);
        let described: Vec<&str> = closest
            .iter()
            .map(|(id, _)| c.served()[*id].description.as_str())
            .collect();
        assert_eq!(described[0], "item 100");
        assert!(
            described.iter().all(|d| d.starts_with("item 10")),
            "{described:?}"
        );
    }

    /// A tiny deterministic generator, so the differential test needs no extra crate and
    /// fails the same way every run.
    struct Lcg(u64);

    impl Lcg {
        fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            &from[(self.0 >> 33) as usize % from.len()]
        }
    }

    /// The index, the discriminator and the compiled expectations against pact_matching's
    /// own `match_request` over every interaction: the same interaction must answer every
    /// generated request (or none must).
    #[test]
    fn indexed_lookup_agrees_with_pact_matching_by_brute_force() {
        use pact_models::pact::Pact;
        use pact_models::v4::pact::V4Pact;
        use pact_models::v4::synch_http::SynchronousHttp;
        use std::panic::RefUnwindSafe;

        let mut random = Lcg(7);
        let paths = ["/a", "/a/1", "/a/2", "/b"];
        let skus = ["s1", "s2", "s3"];
        let mut interactions = Vec::new();
        for index in 0..60 {
            let method = *random.pick(&["GET", "POST"]);
            let path = *random.pick(&paths);
            let mut request = serde_json::json!({"method": method, "path": path});
            let mut rules = serde_json::Map::new();
            if *random.pick(&[false, true, false]) {
                rules.insert(
                    "path".into(),
                    serde_json::json!({"matchers": [{"match": "regex", "regex": "^/a/\\d+$"}]}),
                );
            }
            if *random.pick(&[false, true]) {
                request["query"] = serde_json::json!({"q": [*random.pick(&["x", "y"])]});
            }
            if *random.pick(&[false, true]) {
                request["headers"] = serde_json::json!({"X-Tenant": *random.pick(&["t1", "t2"])});
                if *random.pick(&[false, true]) {
                    rules.insert("header".into(), serde_json::json!({"X-Tenant": {"matchers": [{"match": "regex", "regex": "^t\\d$"}]}}));
                }
            }
            if method == "POST" {
                request["headers"]["Content-Type"] = serde_json::json!("application/json");
                let sku = *random.pick(&skus);
                request["body"] = match *random.pick(&[0, 1, 2]) {
                    0 => serde_json::json!({"sku": sku, "qty": 1}),
                    1 => serde_json::json!({"sku": sku, "qty": 1, "tags": ["a", "b"]}),
                    _ => serde_json::json!({"sku": sku, "meta": {"n": 1}}),
                };
                let body_rules = match *random.pick(&[0, 1, 2, 3, 4]) {
                    1 => serde_json::json!({"$.qty": {"matchers": [{"match": "integer"}]}}),
                    2 => serde_json::json!({"$": {"matchers": [{"match": "type"}]}}),
                    3 => serde_json::json!({"$.tags": {"matchers": [{"match": "type", "min": 1}]}}),
                    4 => serde_json::json!({"$.meta.n": {"matchers": [{"match": "number"}]}}),
                    _ => serde_json::json!({}),
                };
                if body_rules
                    .as_object()
                    .is_some_and(|rules| !rules.is_empty())
                {
                    rules.insert("body".into(), body_rules);
                }
            }
            if !rules.is_empty() {
                request["matchingRules"] = serde_json::Value::Object(rules);
            }
            interactions.push(serde_json::json!({
                "type": "Synchronous/HTTP", "description": format!("interaction {index}"),
                "request": request, "response": {"status": 200}
            }));
        }
        let c = catalog(serde_json::Value::Array(interactions));
        let pact: Box<dyn Pact + Send + Sync + RefUnwindSafe> = Box::new(V4Pact::default());
        let interaction: Box<
            dyn pact_models::interaction::Interaction + Send + Sync + RefUnwindSafe,
        > = Box::new(SynchronousHttp::default());
        let mut hits = 0;
        for _ in 0..900 {
            let method = *random.pick(&["GET", "POST", "PUT"]);
            let path = *random.pick(&["/a", "/a/1", "/a/2", "/a/37", "/b", "/c"]);
            let query = *random.pick(&[None, Some("q=x"), Some("q=y"), Some("q=x&r=1")]);
            let tenant = *random.pick(&[None, Some("t1"), Some("t2"), Some("tx")]);
            let mut headers = vec![];
            if let Some(tenant) = tenant {
                headers.push(("x-tenant", tenant));
            }
            let body = if method == "POST" {
                headers.push(("content-type", "application/json"));
                let qty = *random.pick(&["1", "5", "\"5\""]);
                format!(
                    r#"{{"sku":"{}","qty":{qty}}}"#,
                    random.pick(&["s1", "s2", "s3", "s9"])
                )
            } else {
                String::new()
            };
            let actual = actual_request(
                Received {
                    method,
                    path,
                    query,
                    headers: &headers,
                },
                Bytes::from(body),
            );
            let reference = c
                .served()
                .iter()
                .enumerate()
                .filter(|(_, one)| {
                    matching::ready(pact_matching::match_request(
                        one.expectation.request().clone(),
                        actual.request.clone(),
                        &pact,
                        &interaction,
                    ))
                    .expect("match_request")
                    .all_matched()
                })
                .map(|(id, one)| (one.expectation.rule_count(), id))
                .min()
                .map(|(_, id)| id);
            hits += usize::from(reference.is_some());
            assert_eq!(
                c.find(&actual, &[]),
                reference,
                "{method} {path}?{query:?} {headers:?}"
            );
        }
        assert!(
            hits > 80,
            "the generated requests should often match: {hits}"
        );
    }
}
