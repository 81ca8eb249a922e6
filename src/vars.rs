//! `${VAR}` in values users write (envd.toml, `--header`, gateway routes): one expansion
//! for all of them, so they agree on what is a reference and what a missing one means.

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error("`${{` without a closing `}}`")]
    Unclosed,
    #[error("${{{0}}} is not set in the environment")]
    Unset(String),
}

/// Replaces every `${NAME}` in `text` by `variable(NAME)`; `None` is an error naming the
/// variable (never its value: callers may be expanding a secret).
pub fn expand(
    text: &str,
    mut variable: impl FnMut(&str) -> Option<String>,
) -> Result<String, VarError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(VarError::Unclosed)?;
        let name = &after[..end];
        out.push_str(&variable(name).ok_or_else(|| VarError::Unset(name.to_owned()))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expand_and_missing_ones_are_named() {
        let variable = |name: &str| (name == "T").then(|| "x".to_owned());
        assert_eq!(expand("a ${T} b ${T}", variable), Ok("a x b x".into()));
        assert_eq!(
            expand("no references", variable),
            Ok("no references".into())
        );
        assert_eq!(
            expand("${NOPE}", variable),
            Err(VarError::Unset("NOPE".into()))
        );
        assert_eq!(expand("${T", variable), Err(VarError::Unclosed));
    }
}
