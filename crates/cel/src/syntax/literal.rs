//! Literal decoding: numbers with their ranges, and strings and bytes with
//! every CEL escape form.

use std::sync::Arc;

use pest::iterators::Pair;

use super::{Rule, span_of};
use crate::ast::Literal;
use crate::diagnostic::{Diagnostic, code};

/// Decodes the literal `pair` (a child of `literal`).
pub(super) fn decode(pair: Pair<'_, Rule>) -> Result<Literal, Diagnostic> {
    decode_signed(pair, false)
}

/// Decodes a number literal preceded by `-`.
pub(super) fn decode_negated(pair: Pair<'_, Rule>) -> Result<Literal, Diagnostic> {
    decode_signed(pair, true)
}

fn decode_signed(pair: Pair<'_, Rule>, negative: bool) -> Result<Literal, Diagnostic> {
    let span = span_of(&pair);
    let text = pair.as_str();
    let bad = |what: &str| Diagnostic::error(code::LITERAL, span, what.to_string());
    match pair.as_rule() {
        Rule::null_lit => Ok(Literal::Null),
        Rule::bool_lit => Ok(Literal::Bool(text == "true")),
        Rule::int_lit => {
            let magnitude = parse_u128(text).ok_or_else(|| bad("integer literal is too large"))?;
            let value = if negative {
                0i128 - magnitude as i128
            } else {
                magnitude as i128
            };
            i64::try_from(value).map(Literal::Int).map_err(|_| {
                bad("integer literal is out of range")
                    .with_help("int is 64-bit signed: -9223372036854775808 to 9223372036854775807")
            })
        }
        Rule::uint_lit => {
            let digits = &text[..text.len() - 1];
            let value = parse_u128(digits).ok_or_else(|| bad("unsigned literal is too large"))?;
            u64::try_from(value).map(Literal::Uint).map_err(|_| {
                bad("unsigned literal is out of range")
                    .with_help("uint is 64-bit: 0 to 18446744073709551615")
            })
        }
        Rule::float_lit => {
            let value: f64 = text
                .parse()
                .map_err(|_| bad("malformed floating-point literal"))?;
            Ok(Literal::Double(if negative { -value } else { value }))
        }
        Rule::string_lit => {
            let bytes = string_bytes(pair, false)?;
            let s = String::from_utf8(bytes).map_err(|_| {
                bad("string literal is not valid UTF-8")
                    .with_help("use a bytes literal (`b'...'`) for binary data")
            })?;
            Ok(Literal::String(Arc::from(s)))
        }
        Rule::bytes_lit => {
            let inner = pair
                .into_inner()
                .next()
                .ok_or_else(|| bad("malformed bytes literal"))?;
            Ok(Literal::Bytes(Arc::from(string_bytes(inner, true)?)))
        }
        _ => Err(bad("malformed literal")),
    }
}

fn parse_u128(text: &str) -> Option<u128> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u128::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The decoded content of a `string_lit` pair. In a bytes literal, `\xFF`
/// and octal escapes are raw bytes; in a string they are code points.
fn string_bytes(pair: Pair<'_, Rule>, bytes: bool) -> Result<Vec<u8>, Diagnostic> {
    let span = span_of(&pair);
    let mut raw = false;
    let mut body = "";
    let mut body_start = span.start as usize;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::raw_prefix => raw = true,
            _ => {
                body = p.as_str();
                body_start = p.as_span().start();
            }
        }
    }
    let quote = if body.starts_with("\"\"\"") || body.starts_with("'''") {
        3
    } else {
        1
    };
    let content = body
        .get(quote..body.len().saturating_sub(quote))
        .unwrap_or("");
    let content_start = body_start + quote;
    if raw {
        return Ok(content.as_bytes().to_vec());
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
                crate::ast::Span::new(at, at + len.min(content.len() - i)),
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
    Ok(out)
}
