//! `envd contract diff OLD NEW`: what a new version of a contract changes, and whether
//! each change breaks a provider verified against the old one or a consumer relying on it.
//!
//! Interactions are paired by description and provider states (Pact's identity of an
//! interaction). A response promise withdrawn (a field, a header, a status) breaks the
//! consumer; a request demand added (a field, a header, a query parameter) breaks the
//! consumers that do not send it; a matching rule removed or changed holds values to more
//! than before.

use std::collections::BTreeMap;

use pact_models::bodies::OptionalBody;
use pact_models::matchingrules::MatchingRules;
use serde_json::{json, Value};

use crate::contract::Interaction;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub breaking: bool,
    /// The interaction's description (and states), as both versions name it.
    pub interaction: String,
    pub message: String,
}

pub fn json(changes: &[Change]) -> Value {
    json!({
        "breaking": changes.iter().filter(|change| change.breaking).count(),
        "changes": changes.iter().map(|change| json!({
            "breaking": change.breaking,
            "interaction": change.interaction,
            "message": change.message,
        })).collect::<Vec<_>>(),
    })
}

pub fn text(changes: &[Change]) -> String {
    let mut out = String::new();
    for change in changes {
        let tag = if change.breaking {
            "BREAKING"
        } else {
            "ok      "
        };
        out.push_str(&format!(
            "{tag} {}: {}\n",
            change.interaction, change.message
        ));
    }
    let breaking = changes.iter().filter(|change| change.breaking).count();
    out.push_str(&format!(
        "envd: {} changes, {breaking} breaking\n",
        changes.len()
    ));
    out
}

/// Compares two contract files (or directories of them).
pub fn files(
    old: &std::path::Path,
    new: &std::path::Path,
) -> Result<Vec<Change>, crate::contract::ContractError> {
    let (old, _) = crate::contract::load(&[old.to_owned()])?;
    let (new, _) = crate::contract::load(&[new.to_owned()])?;
    Ok(compare(&old, &new))
}

fn identity(interaction: &Interaction) -> String {
    let states: Vec<&str> = interaction
        .provider_states
        .iter()
        .map(|state| state.name.as_str())
        .collect();
    if states.is_empty() {
        interaction.description.clone()
    } else {
        format!("{} (given {})", interaction.description, states.join(", "))
    }
}

/// Every change from `old` to `new`, in the order of `old`, then added interactions.
pub fn compare(old: &[Interaction], new: &[Interaction]) -> Vec<Change> {
    let new_by_id: BTreeMap<String, &Interaction> = new.iter().map(|i| (identity(i), i)).collect();
    let mut changes = Vec::new();
    for before in old {
        let id = identity(before);
        let Some(after) = new_by_id.get(&id) else {
            changes.push(Change {
                breaking: true,
                interaction: id,
                message: "interaction removed".into(),
            });
            continue;
        };
        let mut found = Vec::new();
        compare_one(before, after, &mut found);
        changes.extend(found.into_iter().map(|(breaking, message)| Change {
            breaking,
            interaction: id.clone(),
            message,
        }));
    }
    let old_ids: std::collections::BTreeSet<String> = old.iter().map(identity).collect();
    for after in new {
        let id = identity(after);
        if !old_ids.contains(&id) {
            changes.push(Change {
                breaking: false,
                interaction: id,
                message: "interaction added".into(),
            });
        }
    }
    changes
}

fn compare_one(before: &Interaction, after: &Interaction, out: &mut Vec<(bool, String)>) {
    let (old_req, new_req) = (&before.request, &after.request);
    if !old_req.method.eq_ignore_ascii_case(&new_req.method) || old_req.path != new_req.path {
        out.push((
            true,
            format!(
                "request changed from {} {} to {} {}",
                old_req.method, old_req.path, new_req.method, new_req.path
            ),
        ));
    }
    for name in keys(&new_req.headers) {
        if !has_key(&old_req.headers, &name) {
            out.push((true, format!("request header {name} newly required")));
        }
    }
    for name in keys(&new_req.query) {
        if !has_key(&old_req.query, &name) {
            out.push((
                true,
                format!("request query parameter {name} newly required"),
            ));
        }
    }
    let (old_body, new_body) = (body_json(&old_req.body), body_json(&new_req.body));
    if let (Some(old_body), Some(new_body)) = (&old_body, &new_body) {
        let mut fields = Vec::new();
        missing_fields(new_body, old_body, "$", &mut fields);
        for field in fields {
            out.push((true, format!("request field {field} newly required")));
        }
    } else if old_body.is_none() && new_body.is_some() {
        out.push((true, "request body newly required".into()));
    }
    rules(
        "request",
        &old_req.matching_rules,
        &new_req.matching_rules,
        out,
    );

    let (Ok(old_res), Ok(new_res)) = (before.response.parse(), after.response.parse()) else {
        return;
    };
    if old_res.status != new_res.status {
        out.push((
            true,
            format!(
                "response status changed from {} to {}",
                old_res.status, new_res.status
            ),
        ));
    }
    for name in keys(&old_res.headers) {
        if !has_key(&new_res.headers, &name) {
            out.push((true, format!("response header {name} removed")));
        }
    }
    for name in keys(&new_res.headers) {
        if !has_key(&old_res.headers, &name) {
            out.push((false, format!("response header {name} added")));
        }
    }
    match (body_json(&old_res.body), body_json(&new_res.body)) {
        (Some(old_body), Some(new_body)) => {
            let mut removed = Vec::new();
            missing_fields(&old_body, &new_body, "$", &mut removed);
            for field in removed {
                out.push((true, format!("response field {field} removed")));
            }
            let mut retyped = Vec::new();
            retyped_fields(&old_body, &new_body, "$", &mut retyped);
            for (field, was, now) in retyped {
                out.push((
                    true,
                    format!("response field {field} retyped from {was} to {now}"),
                ));
            }
            let mut added = Vec::new();
            missing_fields(&new_body, &old_body, "$", &mut added);
            for field in added {
                out.push((false, format!("response field {field} added")));
            }
        }
        (Some(_), None) => out.push((true, "response body removed".into())),
        _ => {}
    }
    rules(
        "response",
        &old_res.matching_rules,
        &new_res.matching_rules,
        out,
    );
}

fn keys<V>(map: &Option<std::collections::HashMap<String, V>>) -> Vec<String> {
    let mut keys: Vec<String> = map.iter().flatten().map(|(k, _)| k.clone()).collect();
    keys.sort();
    keys
}

fn has_key<V>(map: &Option<std::collections::HashMap<String, V>>, name: &str) -> bool {
    map.iter()
        .flatten()
        .any(|(key, _)| key.eq_ignore_ascii_case(name))
}

fn body_json(body: &OptionalBody) -> Option<Value> {
    match body {
        OptionalBody::Present(bytes, _, _) => serde_json::from_slice(bytes).ok(),
        _ => None,
    }
}

/// Fields of `have` (object keys, recursively) that `lack` does not have.
fn missing_fields(have: &Value, lack: &Value, place: &str, out: &mut Vec<String>) {
    match (have, lack) {
        (Value::Object(have), Value::Object(lack)) => {
            for (key, value) in have {
                let field = format!("{place}.{key}");
                match lack.get(key) {
                    None => out.push(field),
                    Some(other) => missing_fields(value, other, &field, out),
                }
            }
        }
        (Value::Array(have), Value::Array(lack)) => {
            if let (Some(first), Some(other)) = (have.first(), lack.first()) {
                missing_fields(first, other, &format!("{place}[*]"), out);
            }
        }
        _ => {}
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "decimal",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Fields present in both whose JSON type differs: (place, old type, new type).
fn retyped_fields(
    old: &Value,
    new: &Value,
    place: &str,
    out: &mut Vec<(String, &'static str, &'static str)>,
) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            for (key, value) in old {
                if let Some(other) = new.get(key) {
                    retyped_fields(value, other, &format!("{place}.{key}"), out);
                }
            }
        }
        (Value::Array(old), Value::Array(new)) => {
            if let (Some(first), Some(other)) = (old.first(), new.first()) {
                retyped_fields(first, other, &format!("{place}[*]"), out);
            }
        }
        _ if kind(old) != kind(new) => out.push((place.to_owned(), kind(old), kind(new))),
        _ => {}
    }
}

/// Rules removed or changed make matching stricter (a removed rule means the example's
/// value exactly); rules added only loosen it.
fn rules(side: &str, old: &MatchingRules, new: &MatchingRules, out: &mut Vec<(bool, String)>) {
    let flatten = |rules: &MatchingRules| {
        let mut flat = BTreeMap::new();
        for (category, rules) in &rules.rules {
            for (path, list) in &rules.rules {
                let json: Vec<Value> = list.rules.iter().map(|rule| rule.to_json()).collect();
                flat.insert(format!("{category} {path}"), Value::Array(json));
            }
        }
        flat
    };
    let (old, new) = (flatten(old), flatten(new));
    for (place, rule) in &old {
        match new.get(place) {
            None => out.push((
                true,
                format!("{side} matching made stricter: {place} no longer matches by {}, values must equal the example", names(rule)),
            )),
            Some(other) if other != rule => out.push((
                !loosened(other),
                format!("{side} matching at {place} changed from {} to {}", names(rule), names(other)),
            )),
            Some(_) => {}
        }
    }
    for (place, rule) in &new {
        if !old.contains_key(place) {
            out.push((
                false,
                format!(
                    "{side} matching loosened: {place} matches by {}",
                    names(rule)
                ),
            ));
        }
    }
}

/// Whether `new` accepts everything `old` did: only a change to a plain type match is
/// known to.
fn loosened(new: &Value) -> bool {
    new.as_array()
        .is_some_and(|rules| rules.iter().all(|rule| rule["match"] == "type"))
}

fn names(rules: &Value) -> String {
    rules
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|rule| match (&rule["match"], &rule["regex"]) {
                    (Value::String(name), Value::String(regex)) => format!("{name} {regex:?}"),
                    (Value::String(name), _) => name.clone(),
                    _ => rule.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn interactions(request: Value, response: Value) -> Vec<Interaction> {
        let pact = json!({
            "consumer": {"name": "web"}, "provider": {"name": "orders"},
            "interactions": [{"description": "get order", "request": request, "response": response}],
            "metadata": {"pactSpecification": {"version": "3.0.0"}}
        });
        crate::contract::load_text(Path::new("t.json"), pact.to_string().as_bytes())
            .expect("loads")
            .0
    }

    const GET: fn() -> Value = || json!({"method": "GET", "path": "/orders/1"});

    fn check(old: Vec<Interaction>, new: Vec<Interaction>, expected: &[(bool, &str)]) {
        let changes: Vec<(bool, String)> = compare(&old, &new)
            .into_iter()
            .map(|change| (change.breaking, change.message))
            .collect();
        let expected: Vec<(bool, String)> = expected
            .iter()
            .map(|(breaking, message)| (*breaking, (*message).to_owned()))
            .collect();
        assert_eq!(changes, expected);
    }

    #[test]
    fn response_changes() {
        let base = || {
            interactions(
                GET(),
                json!({"status": 200, "body": {"id": 1, "name": "a"}}),
            )
        };
        check(base(), base(), &[]);
        check(
            base(),
            interactions(
                GET(),
                json!({"status": 201, "body": {"id": 1, "name": "a"}}),
            ),
            &[(true, "response status changed from 200 to 201")],
        );
        check(
            base(),
            interactions(GET(), json!({"status": 200, "body": {"id": "1"}})),
            &[
                (true, "response field $.name removed"),
                (true, "response field $.id retyped from integer to string"),
            ],
        );
        check(
            base(),
            interactions(
                GET(),
                json!({"status": 200, "body": {"id": 1, "name": "a", "total": 3}}),
            ),
            &[(false, "response field $.total added")],
        );
    }

    #[test]
    fn request_changes() {
        let post = |body: Value, headers: Value| {
            interactions(
                json!({"method": "POST", "path": "/orders", "headers": headers, "body": body}),
                json!({"status": 201}),
            )
        };
        check(
            post(json!({"item": 1}), json!({})),
            post(json!({"item": 1, "coupon": "x"}), json!({"X-Tenant": "t"})),
            &[
                (true, "request header X-Tenant newly required"),
                (true, "request field $.coupon newly required"),
            ],
        );
        check(
            post(json!({"item": 1, "coupon": "x"}), json!({})),
            post(json!({"item": 1}), json!({})),
            &[],
        );
    }

    #[test]
    fn interactions_removed_and_added() {
        let named = |description: &str| {
            let pact = json!({
                "interactions": [{"description": description, "request": GET(), "response": {"status": 200}}],
                "metadata": {"pactSpecification": {"version": "3.0.0"}}
            });
            crate::contract::load_text(Path::new("t.json"), pact.to_string().as_bytes())
                .expect("loads")
                .0
        };
        check(
            named("get order"),
            named("fetch order"),
            &[(true, "interaction removed"), (false, "interaction added")],
        );
    }

    #[test]
    fn matching_made_stricter_or_looser() {
        let with_rules = |rules: Value| {
            interactions(
                GET(),
                json!({"status": 200, "body": {"id": 1}, "matchingRules": {"body": rules}}),
            )
        };
        let typed = || with_rules(json!({"$.id": {"matchers": [{"match": "type"}]}}));
        check(
            typed(),
            with_rules(json!({})),
            &[(true, "response matching made stricter: body $.id no longer matches by type, values must equal the example")],
        );
        check(
            typed(),
            with_rules(json!({"$.id": {"matchers": [{"match": "regex", "regex": "\\d"}]}})),
            &[(
                true,
                "response matching at body $.id changed from type to regex \"\\\\d\"",
            )],
        );
        check(
            with_rules(json!({})),
            typed(),
            &[(
                false,
                "response matching loosened: body $.id matches by type",
            )],
        );
    }
}
