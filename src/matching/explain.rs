//! Mismatches in words: `body $.items[0].id: expected an integer, got "abc"`.
//!
//! pact_matching says the same things as `Expected 'abc' (String) to be an integer`; a
//! person reading a miss wants the place first, then what was expected, then what came.

use std::sync::OnceLock;

use pact_matching::Mismatch;
use regex::Regex;

/// One line per mismatch: the part of the request, where in it, and what was wrong.
pub fn describe(mismatch: &Mismatch) -> String {
    match mismatch {
        Mismatch::MethodMismatch {
            expected, actual, ..
        } => format!("method: expected {expected}, got {actual}"),
        Mismatch::PathMismatch {
            expected,
            actual,
            mismatch,
        } => {
            if mismatch.is_empty() || mismatch.starts_with("Expected '") {
                format!("path: expected {expected:?}, got {actual:?}")
            } else {
                format!("path: {}", reword(mismatch))
            }
        }
        Mismatch::StatusMismatch {
            expected, actual, ..
        } => format!("status: expected {expected}, got {actual}"),
        Mismatch::QueryMismatch {
            parameter,
            mismatch,
            ..
        } => format!("query {parameter}: {}", reword(mismatch)),
        Mismatch::HeaderMismatch { key, mismatch, .. } => {
            format!("header {key}: {}", reword(mismatch))
        }
        Mismatch::BodyTypeMismatch {
            expected, actual, ..
        } => format!("body: expected content type {expected}, got {actual}"),
        Mismatch::BodyMismatch { path, mismatch, .. } => {
            let place = if path == "/" { "$" } else { path };
            format!("body {place}: {}", reword(mismatch))
        }
        Mismatch::MetadataMismatch { key, mismatch, .. } => {
            format!("metadata {key}: {}", reword(mismatch))
        }
    }
}

/// Rewrites pact_matching's "Expected X to be Y" sentences as "expected Y, got X".
fn reword(message: &str) -> String {
    static PATTERNS: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let re = |pattern: &str| Regex::new(pattern).expect("static pattern");
        [
            (
                re(r"^Expected (?P<got>.+?)(?: \(\w+\))? to be (?P<want>an? .+)$"),
                "expected $want, got $got",
            ),
            (
                re(r"^Expected (?P<got>.+?)(?: \(\w+\))? to be equal to (?P<want>.+)$"),
                "expected $want, got $got",
            ),
            (
                re(r"^Expected (?P<got>.+?) to match (?P<want>.+)$"),
                "expected a value matching $want, got $got",
            ),
            (
                re(r"^Expected (?P<got>.+?) to include (?P<want>.+)$"),
                "expected a value including $want, got $got",
            ),
        ]
    });
    for (pattern, replacement) in patterns {
        if let Some(captures) = pattern.captures(message) {
            let mut words = String::new();
            captures.expand(replacement, &mut words);
            return double_quoted(&words);
        }
    }
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// pact_matching quotes strings as 'abc'; JSON readers expect "abc".
fn double_quoted(words: &str) -> String {
    static QUOTED: OnceLock<Regex> = OnceLock::new();
    QUOTED
        .get_or_init(|| Regex::new(r"'([^']*)'").expect("static pattern"))
        .replace_all(words, "\"$1\"")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(message: &str, expected: &str) {
        assert_eq!(reword(message), expected);
    }

    #[test]
    fn rewords_pact_sentences() {
        check(
            "Expected 'abc' (String) to be an integer",
            "expected an integer, got \"abc\"",
        );
        check("Expected 2 to be equal to 1", "expected 1, got 2");
        check(
            "Expected 'x' to match '\\d+'",
            "expected a value matching \"\\d+\", got \"x\"",
        );
        check(
            "Unexpected query parameter 'a' received",
            "unexpected query parameter 'a' received",
        );
    }
}
