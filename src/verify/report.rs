//! A verification report as people, programs and CI test reporters read it.

use std::fmt::Write;

use serde_json::{json, Value};

use super::{Failure, Outcome, Report};

/// One block per interaction; failures indented beneath, expected and actual side by side.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    for outcome in &report.outcomes {
        let verdict = if outcome.passed() { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "{verdict} {}", title(outcome));
        for failure in &outcome.failures {
            let _ = writeln!(out, "       {}", failure.message);
            if let (Some(expected), Some(actual)) = (&failure.expected, &failure.actual) {
                let _ = writeln!(out, "         expected: {expected}");
                let _ = writeln!(out, "         actual:   {actual}");
            }
        }
    }
    let failed = report.failed();
    let _ = writeln!(
        out,
        "envd: {} interactions, {} verified, {failed} failed",
        report.outcomes.len(),
        report.outcomes.len() - failed
    );
    out
}

/// `consumer: description (given state, state)`.
fn title(outcome: &Outcome) -> String {
    let mut title = format!("{}: {}", outcome.consumer, outcome.description);
    if !outcome.states.is_empty() {
        let _ = write!(title, " (given {})", outcome.states.join(", "));
    }
    title
}

pub fn json(report: &Report) -> Value {
    let failure = |failure: &Failure| json!({"message": failure.message, "expected": failure.expected, "actual": failure.actual});
    json!({
        "verified": report.failed() == 0,
        "total": report.outcomes.len(),
        "failed": report.failed(),
        "interactions": report.outcomes.iter().map(|outcome| json!({
            "consumer": outcome.consumer,
            "provider": outcome.provider,
            "description": outcome.description,
            "states": outcome.states,
            "source": outcome.source,
            "passed": outcome.passed(),
            "failures": outcome.failures.iter().map(failure).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// JUnit XML: one testsuite per consumer–provider pair, one testcase per interaction.
pub fn junit(report: &Report) -> String {
    let mut suites: Vec<(String, Vec<&Outcome>)> = Vec::new();
    for outcome in &report.outcomes {
        let name = format!("{} -> {}", outcome.consumer, outcome.provider);
        match suites.iter_mut().find(|(suite, _)| *suite == name) {
            Some((_, outcomes)) => outcomes.push(outcome),
            None => suites.push((name, vec![outcome])),
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"envd verify\" tests=\"{}\" failures=\"{}\">",
        report.outcomes.len(),
        report.failed()
    );
    for (name, outcomes) in suites {
        let failed = outcomes.iter().filter(|o| !o.passed()).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">",
            escape(&name),
            outcomes.len()
        );
        for outcome in outcomes {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&name),
                escape(&title(outcome))
            );
            if outcome.passed() {
                out.push_str("/>\n");
                continue;
            }
            let mut details = String::new();
            for failure in &outcome.failures {
                let _ = writeln!(details, "{}", failure.message);
                if let (Some(expected), Some(actual)) = (&failure.expected, &failure.actual) {
                    let _ = writeln!(details, "  expected: {expected}\n  actual:   {actual}");
                }
            }
            let _ = writeln!(out, ">");
            let _ = writeln!(
                out,
                "      <failure message=\"{}\" type=\"mismatch\">{}</failure>",
                escape(&outcome.failures[0].message),
                escape(&details)
            );
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escapes text for an XML attribute or element; characters XML 1.0 cannot hold at all
/// (most control characters) become U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        assert_eq!(escape(text), expected);
    }

    #[test]
    fn escapes_xml() {
        check("a<b>&\"c'", "a&lt;b&gt;&amp;&quot;c&apos;");
        check("line\nnext", "line&#10;next");
        check("bell\u{7}", "bell\u{FFFD}");
        check("ünïcode", "ünïcode");
    }

    #[test]
    fn junit_has_one_testcase_per_interaction() {
        let outcome = |description: &str, failures: Vec<Failure>| Outcome {
            consumer: "web".into(),
            provider: "orders".into(),
            description: description.into(),
            states: vec!["x & y".into()],
            source: "f.json#/interactions/0".into(),
            failures,
        };
        let report = Report {
            outcomes: vec![
                outcome("a", vec![]),
                outcome(
                    "b",
                    vec![Failure {
                        message: "status: expected 200, got 500".into(),
                        expected: Some("200".into()),
                        actual: Some("500".into()),
                    }],
                ),
            ],
        };
        let xml = junit(&report);
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert_eq!(xml.matches("<failure ").count(), 1);
        assert!(xml.contains("name=\"web: a (given x &amp; y)\""), "{xml}");
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    }
}
