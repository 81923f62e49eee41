//! Literal decoding: numbers with their ranges, and strings and bytes with
//! every CEL escape form.

use std::sync::Arc;

use pest::iterators::Pair;

use super::Rule;
use crate::ast::{Literal, Span};
use crate::diagnostic::{Diagnostic, code};

/// Decodes a `literal`, `raw_lit` or `bytes_lit` pair; `negative` when a
/// `-` directly precedes a number (see [`is_signed_number`]).
///
/// The grammar does not name the kinds of literal; their first characters
/// tell them apart: a quote or `r` starts a string, `b` bytes, another
/// letter `true`, `false` or `null`, and anything else is a number.
pub(super) fn decode(pair: &Pair<'_, Rule>, negative: bool) -> Result<Literal, Diagnostic> {
    let s = pair.as_span();
    let span = Span::new(s.start(), s.end());
    let text = pair.as_str();
    let bad = |what: &str| Diagnostic::error(code::LITERAL, span, what.to_string());
    match text.as_bytes().first() {
        Some(b'\'' | b'"' | b'r' | b'R') => match string_body(text, s.start(), false)? {
            Body::Text(text) => Ok(Literal::String(Arc::from(text))),
            Body::Decoded(bytes) => {
                let s = String::from_utf8(bytes).map_err(|_| {
                    bad("string literal is not valid UTF-8")
                        .with_help("use a bytes literal (`b'...'`) for binary data")
                })?;
                Ok(Literal::String(Arc::from(s)))
            }
        },
        Some(b'b' | b'B') => {
            let body = text.get(1..).unwrap_or("");
            Ok(Literal::Bytes(
                match string_body(body, s.start() + 1, true)? {
                    Body::Text(text) => Arc::from(text.as_bytes()),
                    Body::Decoded(bytes) => Arc::from(bytes),
                },
            ))
        }
        Some(b't') => Ok(Literal::Bool(true)),
        Some(b'f') => Ok(Literal::Bool(false)),
        Some(b'n') => Ok(Literal::Null),
        _ => match number_kind(text) {
            Number::Int => {
                let magnitude =
                    parse_u128(text).ok_or_else(|| bad("integer literal is too large"))?;
                let value = if negative {
                    0i128 - magnitude as i128
                } else {
                    magnitude as i128
                };
                i64::try_from(value).map(Literal::Int).map_err(|_| {
                    bad("integer literal is out of range").with_help(
                        "int is 64-bit signed: -9223372036854775808 to 9223372036854775807",
                    )
                })
            }
            Number::Uint => {
                let digits = text.get(..text.len().saturating_sub(1)).unwrap_or("");
                let value =
                    parse_u128(digits).ok_or_else(|| bad("unsigned literal is too large"))?;
                u64::try_from(value).map(Literal::Uint).map_err(|_| {
                    bad("unsigned literal is out of range")
                        .with_help("uint is 64-bit: 0 to 18446744073709551615")
                })
            }
            Number::Double => {
                let value: f64 = text
                    .parse()
                    .map_err(|_| bad("malformed floating-point literal"))?;
                Ok(Literal::Double(if negative { -value } else { value }))
            }
        },
    }
}

/// Whether the literal `text` is an int or a double, which a `-` before
/// it joins (a uint does not: `-1u` is an error, not a literal).
pub(super) fn is_signed_number(text: &str) -> bool {
    text.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
        && number_kind(text) != Number::Uint
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Number {
    Int,
    Uint,
    Double,
}

/// The kind of a number literal the grammar accepted: a `u` suffix makes a
/// uint; a point or an exponent a double, unless the number is hex (whose
/// digits include `e`).
fn number_kind(text: &str) -> Number {
    if text.ends_with(['u', 'U']) {
        Number::Uint
    } else if !text.starts_with("0x") && !text.starts_with("0X") && text.contains(['.', 'e', 'E']) {
        Number::Double
    } else {
        Number::Int
    }
}

fn parse_u128(text: &str) -> Option<u128> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u128::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The content of a string literal.
enum Body<'a> {
    /// As written: the literal is raw or has no escapes.
    Text(&'a str),
    /// With escapes decoded.
    Decoded(Vec<u8>),
}

/// The content of the string literal `text` (quotes and `r` prefix
/// included) starting at byte `start` of the source. In a bytes literal,
/// `\xFF` and octal escapes are raw bytes; in a string they are code
/// points.
fn string_body(text: &str, start: usize, bytes: bool) -> Result<Body<'_>, Diagnostic> {
    let raw = text.starts_with(['r', 'R']);
    let body = if raw {
        text.get(1..).unwrap_or("")
    } else {
        text
    };
    let body_start = start + usize::from(raw);
    let quote = if body.starts_with("\"\"\"") || body.starts_with("'''") {
        3
    } else {
        1
    };
    let content = body
        .get(quote..body.len().saturating_sub(quote))
        .unwrap_or("");
    let content_start = body_start + quote;
    if raw || !content.contains('\\') {
        return Ok(Body::Text(content));
    }
    let mut out = Vec::with_capacity(content.len());
    let mut chars = content.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let at = content_start + i;
        let bad = |len: usize, what: &str| {
            Diagnostic::error(
                code::LITERAL,
                Span::new(at, at + len.min(content.len() - i)),
                what.to_string(),
            )
        };
        let Some((_, e)) = chars.next() else {
            return Err(bad(1, "unterminated escape sequence"));
        };
        let simple = match e {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '?' => Some(b'?'),
            '"' => Some(b'"'),
            '\'' => Some(b'\''),
            '`' => Some(b'`'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (digits, radix, len) =
            match e {
                'x' | 'X' => (2, 16, 4),
                'u' if !bytes => (4, 16, 6),
                'U' if !bytes => (8, 16, 10),
                '0'..='3' => (2, 8, 4),
                _ => return Err(
                    bad(2, &format!("invalid escape sequence `\\{e}`")).with_help(
                        "valid escapes: \\n \\r \\t \\\\ \\' \\\" \\xHH \\uHHHH \\UHHHHHHHH \\ooo",
                    ),
                ),
            };
        let mut value: u32 = if radix == 8 {
            e.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        for _ in 0..digits {
            let d = chars
                .next()
                .and_then(|(_, d)| d.to_digit(radix))
                .ok_or_else(|| bad(len, "malformed escape sequence"))?;
            value = value * radix + d;
        }
        let is_byte_escape = matches!(e, 'x' | 'X' | '0'..='3');
        if bytes && is_byte_escape {
            out.push(value as u8);
        } else {
            let c = char::from_u32(value)
                .ok_or_else(|| bad(len, "escape is not a valid Unicode code point"))?;
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Ok(Body::Decoded(out))
}
