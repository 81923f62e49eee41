//! A small, schema-less reader for the protobuf *text format*.
//!
//! [`parse`] turns a `.textproto` document into a [`Message`]: an ordered
//! list of `(field name, value)` pairs. No schema is consulted, so the
//! reader cannot know which fields are repeated or what a scalar's declared
//! type is; instead it keeps every occurrence of a field in source order and
//! keeps numbers as their raw token text. Typed conversions live on [`Val`]
//! (`as_i64`, `as_u64`, `as_f64`, `as_bool`, ...), and a schema-aware view
//! is built on top of this module (see `model.rs`).
//!
//! Supported syntax (everything the CEL conformance files use, plus the rest
//! of the common grammar):
//!
//! - `#` line comments and any ASCII whitespace;
//! - `name: scalar`, `name { ... }`, `name: { ... }`, `name < ... >`,
//!   `name: < ... >`;
//! - list values `name: [a, b]` and `name: [{ ... }, { ... }]`, expanded to
//!   one entry per element (exactly as if `name` had been repeated);
//! - optional `,` or `;` after any field;
//! - extension and `Any` field names in brackets, e.g.
//!   `[type.googleapis.com/cel.expr.conformance.proto3.TestAllTypes] { ... }`,
//!   stored verbatim *including* the brackets (whitespace removed);
//! - single- and double-quoted strings, concatenated when adjacent, with the
//!   escapes `\n \r \t \\ \' \" \? \a \b \f \v`, octal `\N`, `\NN`, `\NNN`,
//!   hex `\xH`, `\xHH`, and Unicode `\uHHHH` (surrogate pairs allowed) and
//!   `\UHHHHHHHH`. String values are kept as bytes because `\xff` and octal
//!   escapes need not form UTF-8;
//! - numbers (decimal, octal, hex, floats with exponents, `f` suffix) with an
//!   optional leading `-`, kept as raw text such as `"-1"`, `"1e3"`, `"0x1F"`;
//! - identifiers (enum value names, `true`, `false`, `inf`, `nan`, ...),
//!   optionally negated (`-inf`).

use std::fmt;

/// A parsed text-format message: its fields in source order.
///
/// A repeated field appears once per element, so `all(name)` yields every
/// element and `get(name)` the first one.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Message {
    /// `(field name, value)` pairs in the order they were written.
    /// Extension / `Any` names keep their brackets: `"[a.b/c.D]"`.
    pub(crate) fields: Vec<(String, Val)>,
}

/// A single field value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// A string literal (adjacent literals already concatenated), with
    /// escapes decoded. Bytes, because escapes can produce invalid UTF-8.
    Str(Vec<u8>),
    /// A numeric token exactly as written, including a leading `-` if any,
    /// e.g. `"0"`, `"-1"`, `"1e3"`, `"0x1F"`, `"1.5f"`.
    Num(String),
    /// A bare identifier, including a leading `-` if any: enum value names,
    /// `true`/`false`, `inf`, `-inf`, `nan`, ...
    Ident(String),
    /// A nested message (`{ ... }` or `< ... >`).
    Msg(Message),
}

/// Why [`parse`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// 1-based line of the offending character.
    pub(crate) line: usize,
    /// 1-based column (in characters) of the offending character.
    pub(crate) col: usize,
    /// What went wrong.
    pub(crate) message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Message {
    /// The first value of field `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&Val> {
        self.all(name).next()
    }

    /// Every value of field `name`, in source order.
    pub(crate) fn all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Val> {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// How many times field `name` occurs.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.all(name).count()
    }

    /// Whether field `name` occurs at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The distinct field names, in order of first occurrence.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for (n, _) in &self.fields {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
        names
    }

    /// The first value of `name` as UTF-8 text; `None` if absent, not a
    /// string literal, or not valid UTF-8.
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// The first value of `name` as a nested message.
    pub(crate) fn msg(&self, name: &str) -> Option<&Message> {
        self.get(name)?.as_msg()
    }

    /// Every value of `name` that is a nested message.
    pub(crate) fn msgs<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Message> {
        self.all(name).filter_map(Val::as_msg)
    }

    /// The first value of `name` as a bool; `false` if absent or not a
    /// boolean token (the proto3 default).
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.get(name).and_then(Val::as_bool).unwrap_or(false)
    }
}

impl Val {
    /// The string literal's bytes.
    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Val::Str(b) => Some(b),
            _ => None,
        }
    }

    /// The string literal as UTF-8 text (`None` if not UTF-8).
    pub(crate) fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    /// The nested message.
    pub(crate) fn as_msg(&self) -> Option<&Message> {
        match self {
            Val::Msg(m) => Some(m),
            _ => None,
        }
    }

    /// The identifier text (e.g. an enum value name).
    pub(crate) fn as_ident(&self) -> Option<&str> {
        match self {
            Val::Ident(s) => Some(s),
            _ => None,
        }
    }

    /// The raw numeric token.
    pub(crate) fn as_num(&self) -> Option<&str> {
        match self {
            Val::Num(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean: `true`/`True`/`t`/`1` or `false`/`False`/`f`/`0`, as the
    /// text format allows.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Val::Ident(s) => match s.as_str() {
                "true" | "True" | "t" => Some(true),
                "false" | "False" | "f" => Some(false),
                _ => None,
            },
            Val::Num(s) => match s.as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A signed integer (decimal, `0x` hex or leading-`0` octal), if the
    /// token is one and fits in `i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        let (negative, magnitude) = split_int(self.as_num()?)?;
        if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// An unsigned integer, if the token is a non-negative integer that fits
    /// in `u64` (`-0` is accepted).
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match split_int(self.as_num()?)? {
            (true, 0) => Some(0),
            (true, _) => None,
            (false, m) => Some(m),
        }
    }

    /// A floating-point number: any decimal or float token (an `f`/`F`
    /// suffix is allowed), an integer token, or one of the identifiers
    /// `inf`, `infinity`, `nan` (any case, optionally negated).
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Ident(s) => {
                let (negative, word) = match s.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, s.as_str()),
                };
                let value = match word.to_ascii_lowercase().as_str() {
                    "inf" | "infinity" => f64::INFINITY,
                    "nan" => f64::NAN,
                    _ => return None,
                };
                Some(if negative { -value } else { value })
            }
            Val::Num(s) => {
                if let Some((negative, magnitude)) = split_int(s) {
                    // Integer tokens, including hex and octal ones. The cast
                    // rounds to nearest, as protobuf does.
                    let value = magnitude as f64;
                    return Some(if negative { -value } else { value });
                }
                let body = s.strip_suffix(['f', 'F']).unwrap_or(s);
                let digits = body.strip_prefix('-').unwrap_or(body);
                // Rust's parser also accepts "inf"/"nan" words; a Num token
                // always starts with a digit or '.', so those cannot occur.
                if digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                    body.parse().ok()
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

/// Splits an integer token into (is negative, magnitude); `None` if the
/// token is not an integer or the magnitude overflows `u64`.
fn split_int(token: &str) -> Option<(bool, u64)> {
    let (negative, body) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let (digits, radix) =
        if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (hex, 16)
        } else if body.len() > 1 && body.starts_with('0') {
            (&body[1..], 8)
        } else {
            (body, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .map(|magnitude| (negative, magnitude))
}

/// Parses a whole text-format document (the body of the top-level message).
pub(crate) fn parse(src: &str) -> Result<Message, ParseError> {
    let mut parser = Parser {
        src: src.as_bytes(),
        pos: 0,
    };
    parser.message_body(None)
}

/// A recursive-descent parser over the source bytes. Non-ASCII bytes only
/// ever occur inside strings and comments, where they are copied verbatim.
struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    /// An error at the current position.
    fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.pos, message)
    }

    /// An error at byte offset `pos`, with a 1-based line and column.
    fn error_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        let before = &self.src[..pos.min(self.src.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        // Count characters, not bytes: skip UTF-8 continuation bytes.
        let col = 1 + before[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        ParseError {
            line,
            col,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// A human-readable description of the next character, for errors.
    fn describe_next(&self) -> String {
        match self.peek() {
            None => "end of input".to_owned(),
            Some(b) if b.is_ascii_graphic() => format!("'{}'", char::from(b)),
            Some(b) => format!("byte 0x{b:02x}"),
        }
    }

    /// Skips whitespace and `#` comments.
    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' => self.pos += 1,
                b'#' => {
                    while self.peek().is_some_and(|b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    /// Consumes `b` (after skipping space) if it is next.
    fn eat(&mut self, b: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Fields up to `close` (or to end of input when `close` is `None`).
    fn message_body(&mut self, close: Option<u8>) -> Result<Message, ParseError> {
        let mut message = Message::default();
        loop {
            self.skip_space();
            match (self.peek(), close) {
                (None, None) => return Ok(message),
                (None, Some(c)) => {
                    return Err(self.error(format!(
                        "unexpected end of input, expected '{}'",
                        char::from(c)
                    )));
                }
                (Some(b), Some(c)) if b == c => {
                    self.pos += 1;
                    return Ok(message);
                }
                _ => {}
            }
            self.field(&mut message)?;
            // Optional separator.
            if !self.eat(b',') {
                self.eat(b';');
            }
        }
    }

    /// One field (or, for a list value, several entries of the same field).
    fn field(&mut self, message: &mut Message) -> Result<(), ParseError> {
        let name = self.field_name()?;
        let colon = self.eat(b':');
        self.skip_space();
        match self.peek() {
            Some(b'{' | b'<') => {
                let value = self.message_value()?;
                message.fields.push((name, value));
            }
            Some(b'[') if colon => {
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_space();
                    let value = match self.peek() {
                        Some(b'{' | b'<') => self.message_value()?,
                        _ => self.scalar()?,
                    };
                    message.fields.push((name.clone(), value));
                    if self.eat(b']') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return Err(self.error(format!(
                            "expected ',' or ']', found {}",
                            self.describe_next()
                        )));
                    }
                }
            }
            _ if colon => {
                let value = self.scalar()?;
                message.fields.push((name, value));
            }
            _ => {
                return Err(self.error(format!(
                    "expected ':' or '{{' after field name '{name}', found {}",
                    self.describe_next()
                )));
            }
        }
        Ok(())
    }

    /// A field name: an identifier or a bracketed extension / type URL name.
    fn field_name(&mut self) -> Result<String, ParseError> {
        self.skip_space();
        if self.peek() != Some(b'[') {
            return self.identifier().ok_or_else(|| {
                self.error(format!(
                    "expected a field name, found {}",
                    self.describe_next()
                ))
            });
        }
        let start = self.pos;
        self.pos += 1;
        let mut name = String::from("[");
        loop {
            self.skip_space();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-') => {
                    name.push(char::from(b));
                    self.pos += 1;
                }
                None => return Err(self.error_at(start, "unterminated '[' in field name")),
                Some(_) => {
                    return Err(self.error(format!(
                        "unexpected {} in bracketed field name",
                        self.describe_next()
                    )));
                }
            }
        }
        if name.len() == 1 {
            return Err(self.error_at(start, "empty bracketed field name"));
        }
        name.push(']');
        Ok(name)
    }

    /// `[A-Za-z_][A-Za-z0-9_]*` at the current position, if any.
    fn identifier(&mut self) -> Option<String> {
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            return None;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.pos += 1;
        }
        Some(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
    }

    /// A `{ ... }` or `< ... >` message; the opener is next.
    fn message_value(&mut self) -> Result<Val, ParseError> {
        let close = match self.peek() {
            Some(b'{') => b'}',
            _ => b'>',
        };
        self.pos += 1;
        Ok(Val::Msg(self.message_body(Some(close))?))
    }

    /// A scalar: string(s), number or identifier, optionally negated.
    fn scalar(&mut self) -> Result<Val, ParseError> {
        self.skip_space();
        match self.peek() {
            Some(b'"' | b'\'') => {
                let mut bytes = Vec::new();
                loop {
                    self.string(&mut bytes)?;
                    self.skip_space();
                    if !matches!(self.peek(), Some(b'"' | b'\'')) {
                        return Ok(Val::Str(bytes));
                    }
                }
            }
            Some(b'-') => {
                self.pos += 1;
                self.skip_space();
                match self.unsigned_scalar()? {
                    Val::Num(n) => Ok(Val::Num(format!("-{n}"))),
                    Val::Ident(i) => Ok(Val::Ident(format!("-{i}"))),
                    _ => unreachable!("unsigned_scalar only returns numbers and identifiers"),
                }
            }
            _ => self.unsigned_scalar(),
        }
    }

    /// A number or identifier without sign.
    fn unsigned_scalar(&mut self) -> Result<Val, ParseError> {
        match self.peek() {
            Some(b) if b.is_ascii_digit() || b == b'.' => Ok(Val::Num(self.number())),
            _ => self.identifier().map(Val::Ident).ok_or_else(|| {
                self.error(format!("expected a value, found {}", self.describe_next()))
            }),
        }
    }

    /// A numeric token: digits, letters (hex digits, exponent, `f` suffix),
    /// `.`, and a sign directly after a decimal exponent marker.
    fn number(&mut self) -> String {
        let start = self.pos;
        let hex = self.src[start..].starts_with(b"0x") || self.src[start..].starts_with(b"0X");
        while let Some(b) = self.peek() {
            let sign_after_exponent =
                matches!(b, b'+' | b'-') && !hex && matches!(self.src[self.pos - 1], b'e' | b'E');
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || sign_after_exponent {
                self.pos += 1;
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    /// One quoted string literal (the quote is next), appended to `out`.
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let start = self.pos;
        let quote = self.src[start];
        self.pos += 1;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error_at(start, "unterminated string literal"));
            };
            self.pos += 1;
            match b {
                b'\n' => return Err(self.error_at(start, "newline in string literal")),
                b'\\' => self.escape(out)?,
                _ if b == quote => return Ok(()),
                _ => out.push(b),
            }
        }
    }

    /// One escape sequence; the backslash has been consumed.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let at = self.pos - 1;
        let Some(b) = self.peek() else {
            return Err(self.error_at(at, "unterminated escape sequence"));
        };
        self.pos += 1;
        let simple = match b {
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'v' => Some(0x0b),
            b'\\' | b'\'' | b'"' | b'?' => Some(b),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            return Ok(());
        }
        match b {
            b'0'..=b'7' => {
                let mut value = u32::from(b - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                let byte = u8::try_from(value)
                    .map_err(|_| self.error_at(at, "octal escape out of range (> \\377)"))?;
                out.push(byte);
            }
            b'x' | b'X' => {
                let value = self.hex_digits(1, 2, at)?;
                out.push(u8::try_from(value).expect("two hex digits fit in a byte"));
            }
            b'u' => {
                let mut code = self.hex_digits(4, 4, at)?;
                if (0xD800..0xDC00).contains(&code) {
                    // A high surrogate must be followed by `\u` + low surrogate.
                    if self.src[self.pos..].starts_with(b"\\u") {
                        self.pos += 2;
                        let low = self.hex_digits(4, 4, at)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(self.error_at(at, "unpaired surrogate in \\u escape"));
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    } else {
                        return Err(self.error_at(at, "unpaired surrogate in \\u escape"));
                    }
                }
                self.push_char(code, at, out)?;
            }
            b'U' => {
                let code = self.hex_digits(8, 8, at)?;
                self.push_char(code, at, out)?;
            }
            _ => {
                return Err(self.error_at(
                    at,
                    format!(
                        "unknown escape sequence '\\{}'",
                        char::from(b).escape_default()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Between `min` and `max` hex digits as a number.
    fn hex_digits(&mut self, min: usize, max: usize, at: usize) -> Result<u32, ParseError> {
        let mut value = 0u32;
        let mut n = 0;
        while n < max {
            let Some(digit) = self.peek().and_then(|b| char::from(b).to_digit(16)) else {
                break;
            };
            value = value * 16 + digit;
            self.pos += 1;
            n += 1;
        }
        if n < min {
            return Err(self.error_at(at, format!("escape needs {min} hex digits")));
        }
        Ok(value)
    }

    /// Appends Unicode scalar `code` as UTF-8.
    fn push_char(&self, code: u32, at: usize, out: &mut Vec<u8>) -> Result<(), ParseError> {
        let c = char::from_u32(code)
            .ok_or_else(|| self.error_at(at, format!("invalid code point U+{code:X} in escape")))?;
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_forms() {
        let m = parse(
            "a: 1 b { c: 'x' } d: { e: true }, f < g: -2 >; h: [1, -inf, { i: 3 }]\n\
             # comment\n[x.y/z.W] { k: E_NUM } [ext.field]: 5",
        )
        .unwrap();
        assert_eq!(
            m.names(),
            ["a", "b", "d", "f", "h", "[x.y/z.W]", "[ext.field]"]
        );
        assert_eq!(m.get("a").and_then(Val::as_i64), Some(1));
        assert_eq!(m.msg("b").and_then(|b| b.str("c")), Some("x"));
        assert!(m.msg("d").unwrap().bool("e"));
        assert_eq!(m.msg("f").unwrap().get("g"), Some(&Val::Num("-2".into())));
        let h: Vec<_> = m.all("h").collect();
        assert_eq!(h.len(), 3);
        assert_eq!(m.count("h"), 3);
        assert_eq!(m.msgs("h").count(), 1);
        assert!(m.has("a") && !m.has("zz"));
        assert_eq!(h[0].as_num(), Some("1"));
        assert_eq!(h[1].as_f64(), Some(f64::NEG_INFINITY));
        assert!(h[2].as_msg().is_some());
        assert_eq!(
            m.msg("[x.y/z.W]").unwrap().get("k").and_then(Val::as_ident),
            Some("E_NUM")
        );
        assert_eq!(m.get("[ext.field]").and_then(Val::as_u64), Some(5));
    }

    #[test]
    fn strings_and_escapes() {
        let m = parse(
            r#"s: "a\n\r\t\\\'\"\?\a\b\f\v" 'b' "\101\60\0\x41\xff\u00e9\U0001F600\ud83d\ude00""#,
        )
        .unwrap();
        let mut want = b"a\n\r\t\\'\"?\x07\x08\x0c\x0bbA0\0A\xff".to_vec();
        want.extend_from_slice("é😀😀".as_bytes());
        assert_eq!(m.get("s").and_then(Val::as_bytes), Some(&want[..]));
        assert_eq!(m.str("s"), None, "\\xff is not UTF-8");
    }

    #[test]
    fn numbers() {
        let m = parse("a: 0x1F b: 017 c: 1e3 d: -1.5e-3 e: 1.5f f: -9223372036854775808 g: 18446744073709551615 h: nan i: -0").unwrap();
        let v = |n: &str| m.get(n).unwrap().clone();
        assert_eq!(v("a").as_i64(), Some(31));
        assert_eq!(v("b").as_i64(), Some(15));
        assert_eq!(v("c").as_f64(), Some(1000.0));
        assert_eq!(v("c").as_i64(), None);
        assert_eq!(v("d"), Val::Num("-1.5e-3".into()));
        assert_eq!(v("d").as_f64(), Some(-0.0015));
        assert_eq!(v("e").as_f64(), Some(1.5));
        assert_eq!(v("f").as_i64(), Some(i64::MIN));
        assert_eq!(v("f").as_u64(), None);
        assert_eq!(v("g").as_u64(), Some(u64::MAX));
        assert_eq!(v("g").as_i64(), None);
        assert!(v("h").as_f64().unwrap().is_nan());
        assert_eq!(v("i").as_u64(), Some(0));
        assert!(v("i").as_f64().unwrap().is_sign_negative());
    }

    #[test]
    fn errors_have_positions() {
        let err = parse("a: 1\nb {\n  c: 'x\n}").unwrap_err();
        assert_eq!((err.line, err.col), (3, 6));
        let err = parse("a {\n b: 1\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("expected '}'"), "{err}");
        let err = parse("a 1").unwrap_err();
        assert_eq!((err.line, err.col), (1, 3));
        let err = parse(r"a: '\q'").unwrap_err();
        assert!(err.to_string().starts_with("1:5: unknown escape"), "{err}");
        assert!(parse("a: [1 2]").is_err());
        assert!(parse("a: '\\400'").is_err());
        assert!(parse("a: '\\ud800'").is_err());
        assert!(parse("a: }").is_err());
        assert!(parse("}").is_err());
    }
}
