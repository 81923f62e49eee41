//! `${…}` interpolation in config strings (spec §2.9): a string is split
//! into literal text and interpolated CEL expressions, with the byte range
//! of each inside the decoded scalar value, so that a CEL diagnostic maps
//! onto the file through [`Node::value_span`](crate::yaml::Node::value_span).
//!
//! An expression ends at the first `}` that closes no `{` of its own and
//! stands outside a string literal: `${vars.m['}']}` and
//! `${ {'a': 1}['a'] }` are one expression each. CEL's quoted, triple-quoted
//! and raw strings are recognised.

use std::ops::Range;

/// A piece of a template. Ranges are byte offsets into the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Text(Range<usize>),
    /// An interpolation.
    Expr {
        /// `${…}`, braces included.
        outer: Range<usize>,
        /// The expression: the text between the braces.
        expr: Range<usize>,
    },
}

/// A string split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The parts, in order; together they cover the whole value.
    pub parts: Vec<Part>,
    /// The offset of a `${` that is never closed: everything from it on is
    /// the last [`Part::Text`].
    pub unterminated: Option<usize>,
}

impl Template {
    /// The interpolations: (whole `${…}`, expression) ranges.
    pub fn exprs(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr { outer, expr } => Some((outer.clone(), expr.clone())),
            Part::Text(_) => None,
        })
    }

    /// Whether the value is exactly one interpolation, which keeps the
    /// expression's own type rather than becoming a string.
    pub fn is_single(&self) -> bool {
        self.unterminated.is_none() && matches!(self.parts.as_slice(), [Part::Expr { .. }])
    }
}

/// Splits `value` into text and `${…}` interpolations.
pub fn parse(value: &str) -> Template {
    let b = value.as_bytes();
    let mut parts = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < b.len() {
        if b.get(i) == Some(&b'$') && b.get(i + 1) == Some(&b'{') {
            let Some(close) = closing_brace(b, i + 2) else {
                parts.push(Part::Text(text_start..b.len()));
                return Template {
                    parts,
                    unterminated: Some(i),
                };
            };
            if text_start < i {
                parts.push(Part::Text(text_start..i));
            }
            parts.push(Part::Expr {
                outer: i..close + 1,
                expr: i + 2..close,
            });
            i = close + 1;
            text_start = i;
            continue;
        }
        i += 1;
    }
    if text_start < b.len() {
        parts.push(Part::Text(text_start..b.len()));
    }
    Template {
        parts,
        unterminated: None,
    }
}

/// The offset of the `}` that ends an expression starting at `start`, or
/// `None` when the value ends first (or inside a string literal).
fn closing_brace(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while let Some(&c) = b.get(i) {
        match c {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            b'\'' | b'"' => {
                i = string_end(b, i, start)?;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The offset just past the string literal whose opening quote is at `i`,
/// or `None` when it is not closed. `floor` is where the expression starts.
fn string_end(b: &[u8], i: usize, floor: usize) -> Option<usize> {
    let q = *b.get(i)?;
    let raw = is_raw(b, i, floor);
    let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
    let mut j = if triple { i + 3 } else { i + 1 };
    loop {
        let c = *b.get(j)?;
        if c == b'\\' && !raw {
            j += 2;
            continue;
        }
        if c == q {
            if !triple {
                return Some(j + 1);
            }
            if b.get(j + 1) == Some(&q) && b.get(j + 2) == Some(&q) {
                return Some(j + 3);
            }
        }
        j += 1;
    }
}

/// Whether the quote at `i` opens a raw string: `r'…'`, `rb'…'`, `br'…'`,
/// the prefix standing alone (not the end of an identifier).
fn is_raw(b: &[u8], i: usize, floor: usize) -> bool {
    let mut k = i;
    let mut raw = false;
    while k > floor && i - k < 2 {
        match b.get(k - 1) {
            Some(b'r' | b'R') => raw = true,
            Some(b'b' | b'B') => {}
            _ => break,
        }
        k -= 1;
    }
    let alone = k == floor
        || !b
            .get(k - 1)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    raw && alone
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expressions' texts.
    fn exprs(value: &str) -> Vec<&str> {
        parse(value).exprs().map(|(_, e)| &value[e]).collect()
    }

    #[test]
    fn text_only() {
        let t = parse("plain text, $5 and {braces}");
        assert_eq!(t.parts, vec![Part::Text(0..27)]);
        assert_eq!(t.unterminated, None);
        assert!(!t.is_single());
        assert_eq!(parse("").parts, vec![]);
    }

    #[test]
    fn text_and_expressions() {
        let v = "https://${req.host}/x?id=${vars.id}";
        let t = parse(v);
        assert_eq!(
            t.parts,
            vec![
                Part::Text(0..8),
                Part::Expr {
                    outer: 8..19,
                    expr: 10..18
                },
                Part::Text(19..25),
                Part::Expr {
                    outer: 25..35,
                    expr: 27..34
                },
            ]
        );
        assert_eq!(exprs(v), ["req.host", "vars.id"]);
        assert!(!t.is_single());
    }

    #[test]
    fn single_interpolation() {
        let t = parse("${vars.count}");
        assert!(t.is_single());
        assert_eq!(exprs("${vars.count}"), ["vars.count"]);
        assert!(!parse(" ${x}").is_single());
    }

    #[test]
    fn nested_braces() {
        assert_eq!(exprs("${ {'a': 1}['a'] }"), [" {'a': 1}['a'] "]);
        assert_eq!(exprs("${{'a': {'b': 2}}.a.b}!"), ["{'a': {'b': 2}}.a.b"]);
    }

    #[test]
    fn braces_in_strings() {
        assert_eq!(exprs("${vars.m['}']}"), ["vars.m['}']"]);
        assert_eq!(exprs(r#"${"{" + '}'}x"#), [r#""{" + '}'"#]);
        assert_eq!(exprs(r"${'it\'s }'}"), [r"'it\'s }'"]);
        assert_eq!(exprs(r#"${"a\"}"}"#), [r#""a\"}""#]);
        assert_eq!(exprs("${'''}'''}"), ["'''}'''"]);
        assert_eq!(exprs("${''}"), ["''"]);
        // In a raw string a backslash escapes nothing.
        assert_eq!(exprs(r"${r'\'}"), [r"r'\'"]);
        assert_eq!(exprs(r"${size(bar'\'}')}"), [r"size(bar'\'}')"]);
    }

    #[test]
    fn dollar_before_interpolation() {
        assert_eq!(exprs("$${x}"), ["x"]);
        assert_eq!(exprs("${}"), [""]);
    }

    #[test]
    fn offsets_are_bytes() {
        let v = "é ${x}";
        let t = parse(v);
        assert_eq!(
            t.parts,
            vec![
                Part::Text(0..3),
                Part::Expr {
                    outer: 3..7,
                    expr: 5..6
                }
            ]
        );
    }

    #[test]
    fn unterminated() {
        let t = parse("a ${b} c ${d + 1");
        assert_eq!(t.unterminated, Some(9));
        assert_eq!(exprs("a ${b} c ${d + 1"), ["b"]);
        assert_eq!(t.parts.last(), Some(&Part::Text(6..16)));
        // A `}` inside an unclosed string closes nothing.
        assert_eq!(parse("${'}").unterminated, Some(0));
        assert_eq!(parse("${ {'a': 1}").unterminated, Some(0));
        assert_eq!(parse("x${").unterminated, Some(1));
    }
}
