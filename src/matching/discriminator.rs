//! Telling apart interactions that share a method and path by a literal in their bodies.
//!
//! A hundred variants of `POST /orders` that differ only in `$.sku` should not cost a
//! hundred body matches per request. For each interaction we find the string fields of its
//! JSON body that no matching rule can reach: an actual body matches only if it carries
//! exactly those strings. One such field, shared by most variants, becomes a map from
//! value to interactions. The filter only ever drops interactions that could not match, so
//! matching stays pact_matching's.

use std::collections::HashMap;

use pact_models::path_exp::PathToken;
use serde_json::Value;

use super::Expectation;

/// A place in a JSON body reached through object fields only: `$.order.sku`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BodyKey(Vec<String>);

impl BodyKey {
    fn lookup<'a>(&self, body: &'a Value) -> Option<&'a Value> {
        self.0
            .iter()
            .try_fold(body, |value, field| value.as_object()?.get(field))
    }
}

/// A value-to-interactions map for one group of interactions with the same method and path.
#[derive(Debug, Clone)]
pub struct Discriminator {
    key: BodyKey,
    by_value: HashMap<String, Vec<usize>>,
    /// Members with no literal at `key`: always candidates.
    rest: Vec<usize>,
}

impl Discriminator {
    /// Builds a discriminator for `members` (an id and its expectation), or none when no
    /// body field tells at least two of them apart.
    pub fn build<'a>(members: impl IntoIterator<Item = (usize, &'a Expectation)>) -> Option<Self> {
        let literals: Vec<(usize, Vec<(BodyKey, String)>)> = members
            .into_iter()
            .map(|(id, expectation)| (id, required_literals(expectation)))
            .collect();
        // The best key is the one with the most distinct values: it leaves the fewest
        // candidates per request.
        let mut values: HashMap<&BodyKey, HashMap<&str, Vec<usize>>> = HashMap::new();
        for (id, fields) in &literals {
            for (key, value) in fields {
                values
                    .entry(key)
                    .or_default()
                    .entry(value)
                    .or_default()
                    .push(*id);
            }
        }
        let (key, by_value) = values
            .into_iter()
            .max_by(|a, b| {
                (a.1.len(), a.1.values().map(Vec::len).sum::<usize>())
                    .cmp(&(b.1.len(), b.1.values().map(Vec::len).sum::<usize>()))
                    .then_with(|| b.0 .0.cmp(&a.0 .0))
            })
            .filter(|(_, by_value)| by_value.len() >= 2)?;
        let rest = literals
            .iter()
            .filter(|(_, fields)| fields.iter().all(|(field, _)| field != key))
            .map(|(id, _)| *id)
            .collect();
        Some(Discriminator {
            key: key.clone(),
            by_value: by_value
                .into_iter()
                .map(|(value, ids)| (value.to_owned(), ids))
                .collect(),
            rest,
        })
    }

    /// The members that can still match a request with this JSON body, in id order.
    pub fn candidates(&self, body: &Value) -> Vec<usize> {
        let mut ids = self.rest.clone();
        if let Some(Value::String(value)) = self.key.lookup(body) {
            ids.extend(self.by_value.get(value).into_iter().flatten());
            ids.sort_unstable();
        }
        ids
    }
}

/// The string fields of the expected JSON body that an actual body must repeat exactly.
fn required_literals(expectation: &Expectation) -> Vec<(BodyKey, String)> {
    let request = expectation.request();
    let is_json = request
        .content_type()
        .is_some_and(|content_type| content_type.is_json());
    let Some(bytes) = request.body.value().filter(|_| is_json) else {
        return Vec::new();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return Vec::new();
    };
    let rules: Vec<&[PathToken]> = expectation
        .body_rules()
        .rules
        .keys()
        .map(|path| path.tokens().as_slice())
        .collect();
    let mut found = Vec::new();
    collect_literals(&body, &mut Vec::new(), &rules, &mut found);
    found
}

fn collect_literals(
    value: &Value,
    at: &mut Vec<String>,
    rules: &[&[PathToken]],
    found: &mut Vec<(BodyKey, String)>,
) {
    if rules.iter().any(|rule| reaches(rule, at)) {
        return;
    }
    match value {
        Value::String(text) => found.push((BodyKey(at.clone()), text.clone())),
        Value::Object(fields) => {
            for (name, field) in fields {
                at.push(name.clone());
                collect_literals(field, at, rules, found);
                at.pop();
            }
        }
        _ => {}
    }
}

/// Whether a rule at `rule` applies to the value at `$.at…`: rules cascade to everything
/// below the place they name, and `*` stands for any field.
fn reaches(rule: &[PathToken], at: &[String]) -> bool {
    let Some((PathToken::Root, fields)) = rule.split_first() else {
        // A path we cannot read: assume it reaches everything, which only costs speed.
        return true;
    };
    fields.len() <= at.len()
        && fields.iter().zip(at).all(|(token, field)| match token {
            PathToken::Field(name) => name == field,
            PathToken::Star => true,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pact_models::v4::http_parts::HttpRequest;
    use serde_json::json;

    fn order(sku: &str, rules: Value) -> Expectation {
        Expectation::new(
            HttpRequest::from_json(&json!({
                "method": "POST", "path": "/orders",
                "headers": {"Content-Type": "application/json"},
                "body": {"sku": sku, "qty": 1, "customer": "c-1"},
                "matchingRules": {"body": rules}
            }))
            .expect("request"),
            None,
        )
    }

    fn check(expectations: &[Expectation], body: Value, expected: Option<Vec<usize>>) {
        let discriminator = Discriminator::build(expectations.iter().enumerate());
        assert_eq!(discriminator.map(|d| d.candidates(&body)), expected);
    }

    #[test]
    fn narrows_by_an_unruled_literal() {
        let typed = json!({"$.qty": {"matchers": [{"match": "type"}]},
                           "$.customer": {"matchers": [{"match": "type"}]}});
        let variants = [
            order("a", typed.clone()),
            order("b", typed.clone()),
            order("c", typed),
        ];
        check(
            &variants,
            json!({"sku": "b", "qty": 5, "customer": "x"}),
            Some(vec![1]),
        );
        check(&variants, json!({"sku": "z"}), Some(vec![]));
        check(&variants, json!({"qty": 1}), Some(vec![]));
    }

    #[test]
    fn a_rule_above_a_field_keeps_every_variant() {
        let whole_body = json!({"$": {"matchers": [{"match": "type"}]}});
        check(
            &[order("a", whole_body.clone()), order("b", whole_body)],
            json!({"sku": "a"}),
            None,
        );
        let star = json!({"$.*": {"matchers": [{"match": "type"}]}});
        check(
            &[order("a", star.clone()), order("b", star)],
            json!({"sku": "a"}),
            None,
        );
    }

    #[test]
    fn variants_without_the_key_stay_candidates() {
        let on_sku = json!({"$.sku": {"matchers": [{"match": "type"}]}});
        let variants = [
            order("a", json!({})),
            order("b", json!({})),
            order("c", on_sku),
        ];
        check(&variants, json!({"sku": "a"}), Some(vec![0, 2]));
    }
}
