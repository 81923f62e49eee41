//! Diagnostics: what parsing and checking say about an expression.
//!
//! A diagnostic carries a stable code, a one-line lowercase message, the
//! span it is about, and optional help. Spans are byte ranges in the
//! expression text; callers that embed expressions in larger documents
//! shift them (see [`Span::shift`]). Rendering lives with the callers.

use std::fmt;

use crate::ast::Span;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Something worth a look; the expression still runs.
    Warning,
    /// The expression cannot run.
    Error,
}

/// The stable codes of CEL diagnostics. Released codes are never reused;
/// `docs/diagnostics.md` has a section per code.
pub mod code {
    // Diagnostic: E0001
    /// The text is not CEL.
    pub const SYNTAX: &str = "E0001";
    // Diagnostic: E0002
    /// A literal is malformed: a bad escape, an out-of-range number.
    pub const LITERAL: &str = "E0002";
    // Diagnostic: E0003
    /// The expression nests deeper than the engine allows.
    pub const TOO_DEEP: &str = "E0003";
    // Diagnostic: E0004
    /// A macro is called with the wrong arguments (`has(x)`, `all(1, x)`).
    pub const MACRO: &str = "E0004";
    // Diagnostic: E0010
    /// An identifier names no declared variable.
    pub const UNDECLARED: &str = "E0010";
    // Diagnostic: E0011
    /// A function name is not declared.
    pub const UNKNOWN_FUNCTION: &str = "E0011";
    // Diagnostic: E0012
    /// A function exists but not for these argument types.
    pub const NO_OVERLOAD: &str = "E0012";
    // Diagnostic: E0013
    /// The expression's type is not the one its use requires (a condition that is not `bool`).
    pub const TYPE_MISMATCH: &str = "E0013";
    // Diagnostic: E0014
    /// A field does not exist on a known object type.
    pub const UNKNOWN_FIELD: &str = "E0014";
    // Diagnostic: E0015
    /// A constant argument is invalid: a regex that does not compile, a bad timestamp.
    pub const BAD_CONSTANT: &str = "E0015";
    // Diagnostic: E0016
    /// Message literals are not supported.
    pub const UNSUPPORTED: &str = "E0016";
}

/// One finding about an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, from [`code`].
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One lowercase line, user input in backticks.
    pub message: String,
    /// What the diagnostic is about.
    pub span: Span,
    /// A short label for the underline.
    pub label: Option<String>,
    /// A suggestion, such as ``did you mean `startsWith`?``.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    /// A warning.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Adds an underline label.
    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    /// Adds help.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds ``did you mean `x`?`` help when `suggestion` is some.
    pub fn with_suggestion(self, suggestion: Option<&str>) -> Diagnostic {
        match suggestion {
            Some(s) => self.with_help(format!("did you mean `{s}`?")),
            None => self,
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}[{}]: {}", self.code, self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// The candidate closest to `name` by edit distance, if any is close enough
/// to be a plausible typo.
pub fn did_you_mean<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            (
                edit_distance(&name.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["startsWith", "endsWith", "contains"];
        assert_eq!(did_you_mean("startswith", names), Some("startsWith"));
        assert_eq!(did_you_mean("startWith", names), Some("startsWith"));
        assert_eq!(did_you_mean("size", names), None);
    }
}
