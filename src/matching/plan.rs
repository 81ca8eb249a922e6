//! A JSON request body compiled once into a plan, so matching walks two trees instead of
//! asking pact_matching which rules apply at every node of every request.
//!
//! Only bodies whose rules all sit on scalar values (none on or above an object or an
//! array) are planned; in that shape pact_matching's `compare_json` requires the actual
//! body to have exactly the expected shape (same keys, same array lengths), so the rules
//! that apply at each scalar can be looked up at load time with pact_matching's own
//! `select_best_matcher`, and each scalar is compared with pact_matching's own
//! `match_values` or equality. Anything else falls back to `compare_json` itself.

use pact_matching::matchingrules::{match_values, DoMatch};
use pact_matching::{CoreMatchingContext, MatchingContext};
use pact_models::matchingrules::{MatchingRule, RuleList};
use pact_models::path_exp::DocPath;
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Plan {
    Object(Vec<(String, Plan)>),
    Array(Vec<Plan>),
    Scalar {
        expected: Value,
        /// The rules pact_matching would select at this place, with the place itself
        /// (rules such as `regex` report it); `None` means plain equality.
        rules: Option<Box<(DocPath, RuleList)>>,
    },
}

impl Plan {
    /// The plan for `expected` under `context`'s body rules, or `None` when a rule applies
    /// to an object or an array (then the shapes may differ and only pact_matching knows).
    pub fn build(expected: &Value, context: &CoreMatchingContext) -> Option<Plan> {
        Self::at(&DocPath::root(), expected, context)
    }

    fn at(path: &DocPath, expected: &Value, context: &CoreMatchingContext) -> Option<Plan> {
        match expected {
            Value::Object(fields) => {
                if context.matcher_is_defined(path) {
                    return None;
                }
                let fields = fields
                    .iter()
                    .map(|(name, value)| {
                        Some((name.clone(), Self::at(&path.join(name), value, context)?))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Plan::Object(fields))
            }
            Value::Array(items) => {
                if context.matcher_is_defined(path) {
                    return None;
                }
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(index, value)| Self::at(&path.join(index.to_string()), value, context))
                    .collect::<Option<Vec<_>>>()?;
                Some(Plan::Array(items))
            }
            scalar => Some(Plan::Scalar {
                expected: scalar.clone(),
                rules: context
                    .matcher_is_defined(path)
                    .then(|| Box::new((path.clone(), context.select_best_matcher(path)))),
            }),
        }
    }

    /// Whether `actual` matches, exactly as `compare_json` would decide.
    pub fn matches(&self, actual: &Value) -> bool {
        match (self, actual) {
            (Plan::Object(fields), Value::Object(received)) => {
                fields.len() == received.len()
                    && fields.iter().all(|(name, plan)| {
                        received.get(name).is_some_and(|value| plan.matches(value))
                    })
            }
            (Plan::Array(items), Value::Array(received)) => {
                items.len() == received.len()
                    && items
                        .iter()
                        .zip(received)
                        .all(|(plan, value)| plan.matches(value))
            }
            (Plan::Object(_) | Plan::Array(_), _) => false,
            (
                Plan::Scalar {
                    expected,
                    rules: Some(rules),
                },
                _,
            ) => match_values(&rules.0, &rules.1, expected, actual).is_ok(),
            (
                Plan::Scalar {
                    expected,
                    rules: None,
                },
                _,
            ) => MatchingRule::Equality
                .match_value(expected, actual, false, true)
                .is_ok(),
        }
    }
}
