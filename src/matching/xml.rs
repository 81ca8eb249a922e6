//! Reading matching rules on XML bodies the way the Pact specification means them.
//!
//! pact_matching addresses XML children by name only (its paths never carry an index) and
//! applies a rule found at an element's path to the element itself, so a regex there is
//! tried on the element's *name*. The specification's cases mean a value rule on an element
//! for the element's text, and an index (`[*]`, `[0]`) for any of the repeated elements.
//! Rewriting the rules once, at load time, lets pact_matching read them that way.

use pact_models::matchingrules::{MatchingRule, MatchingRuleCategory, RuleList};
use pact_models::path_exp::{DocPath, PathToken};

/// The body rules of an XML request or response, rewritten for pact_matching.
pub fn body_rules(rules: &MatchingRuleCategory) -> MatchingRuleCategory {
    let mut rewritten = MatchingRuleCategory::empty(rules.name.clone());
    for (path, list) in &rules.rules {
        let mut element = DocPath::empty();
        for token in path.tokens() {
            if !matches!(token, PathToken::Index(_) | PathToken::StarIndex) {
                element.push(token.clone());
            }
        }
        let names_an_element = matches!(
            element.tokens().last(),
            Some(PathToken::Field(name)) if !name.starts_with('@') && !name.starts_with('#')
        );
        let (on_text, on_element): (Vec<MatchingRule>, Vec<MatchingRule>) = list
            .rules
            .iter()
            .cloned()
            .partition(|rule| names_an_element && is_value_rule(rule));
        add(&mut rewritten, element.join("#text"), list, on_text);
        add(&mut rewritten, element, list, on_element);
    }
    rewritten
}

/// Rules about a value (text) rather than about structure (type, counts).
fn is_value_rule(rule: &MatchingRule) -> bool {
    matches!(
        rule,
        MatchingRule::Regex(_)
            | MatchingRule::Include(_)
            | MatchingRule::Integer
            | MatchingRule::Decimal
            | MatchingRule::Number
            | MatchingRule::Boolean
            | MatchingRule::Date(_)
            | MatchingRule::Time(_)
            | MatchingRule::Timestamp(_)
            | MatchingRule::Semver
    )
}

fn add(into: &mut MatchingRuleCategory, path: DocPath, like: &RuleList, rules: Vec<MatchingRule>) {
    if rules.is_empty() {
        return;
    }
    let list = into.rules.entry(path).or_insert_with(|| RuleList {
        rules: Vec::new(),
        rule_logic: like.rule_logic,
        cascaded: like.cascaded,
    });
    for rule in rules {
        if !list.rules.contains(&rule) {
            list.rules.push(rule);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pact_models::matchingrules::{Category, RuleLogic};

    fn category(rules: &[(&str, MatchingRule)]) -> MatchingRuleCategory {
        let mut category = MatchingRuleCategory::empty(Category::BODY);
        for (path, rule) in rules {
            category.rules.insert(
                DocPath::new(*path).expect("path"),
                RuleList {
                    rules: vec![rule.clone()],
                    rule_logic: RuleLogic::And,
                    cascaded: false,
                },
            );
        }
        category
    }

    fn check(given: &[(&str, MatchingRule)], expected: &[(&str, MatchingRule)]) {
        let mut got: Vec<(String, Vec<MatchingRule>)> = body_rules(&category(given))
            .rules
            .into_iter()
            .map(|(path, list)| (path.to_string(), list.rules))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want: Vec<(String, Vec<MatchingRule>)> = expected
            .iter()
            .map(|(path, rule)| (DocPath::new(*path).unwrap().to_string(), vec![rule.clone()]))
            .collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want);
    }

    #[test]
    fn value_rules_on_elements_apply_to_their_text() {
        let regex = MatchingRule::Regex("red|blue".into());
        check(
            &[("$.a.colour", regex.clone())],
            &[("$.a.colour['#text']", regex)],
        );
    }

    #[test]
    fn attributes_text_and_structure_keep_their_place() {
        let digits = MatchingRule::Regex("\\d+".into());
        check(
            &[("$.a['@id']", digits.clone())],
            &[("$.a['@id']", digits.clone())],
        );
        check(
            &[("$.a['#text']", digits.clone())],
            &[("$.a['#text']", digits)],
        );
        check(
            &[("$.a.items", MatchingRule::MinType(1))],
            &[("$.a.items", MatchingRule::MinType(1))],
        );
    }

    #[test]
    fn indexes_are_dropped() {
        let digits = MatchingRule::Regex("\\d+".into());
        check(
            &[("$.animals[*].alligator['@phone']", digits.clone())],
            &[("$.animals.alligator['@phone']", digits)],
        );
    }
}
