//! cel-go's strings extension library (`ext.Strings`, latest version), plus
//! the Unicode-aware `lower` and `upper` that ngrok documents.
//!
//! Every index and length is counted in Unicode code points, as in cel-go.
//! Results that are a part of the receiver (`substring`, `charAt`, `trim`,
//! `split`) borrow from it when it is borrowed, so they allocate nothing.
//!
//! Where the cel-spec conformance data and cel-go disagree, the conformance
//! data wins: an `indexOf`/`lastIndexOf` offset past the end of the string is
//! an error (`index out of range: N`), while an offset equal to the length is
//! allowed, so `''.indexOf('a')` is `-1` rather than an error.
//!
//! `format` follows the cel-spec strings extension (cel-go's strings version 4
//! formatter, `formatting_v2.go`), with the error wording of the conformance
//! data.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::env::{Env, Overload};
use crate::eval::EvalError;
use crate::stdlib::t;
use crate::types::Type;
use crate::value::{List, Str, Value};

#[cfg(test)]
mod tests;

/// Precision used by `%f` and `%e` when the clause gives none.
const DEFAULT_PRECISION: usize = 6;

/// The largest precision a `%f` or `%e` clause may ask for, so that a format
/// string cannot make evaluation build an arbitrarily long string.
const MAX_PRECISION: usize = 1000;

/// Registers the strings extension.
pub(crate) fn register(env: &mut Env) {
    use t::*;
    let list_s = || Type::list(S);
    env.add_function(
        "charAt",
        Overload::member("string_char_at_int", vec![S, I], S).binary(char_at),
    );
    env.add_function(
        "indexOf",
        Overload::member("string_index_of_string", vec![S, S], I).binary(index_of),
    );
    env.add_function(
        "indexOf",
        Overload::member("string_index_of_string_int", vec![S, S, I], I).variadic(index_of_offset),
    );
    env.add_function(
        "lastIndexOf",
        Overload::member("string_last_index_of_string", vec![S, S], I).binary(last_index_of),
    );
    env.add_function(
        "lastIndexOf",
        Overload::member("string_last_index_of_string_int", vec![S, S, I], I)
            .variadic(last_index_of_offset),
    );
    env.add_function(
        "lowerAscii",
        Overload::member("string_lower_ascii", vec![S], S).unary(lower_ascii),
    );
    env.add_function(
        "upperAscii",
        Overload::member("string_upper_ascii", vec![S], S).unary(upper_ascii),
    );
    env.add_function(
        "lower",
        Overload::member("string_lower", vec![S], S).unary(lower),
    );
    env.add_function(
        "upper",
        Overload::member("string_upper", vec![S], S).unary(upper),
    );
    env.add_function(
        "replace",
        Overload::member("string_replace_string_string", vec![S, S, S], S).variadic(replace),
    );
    env.add_function(
        "replace",
        Overload::member("string_replace_string_string_int", vec![S, S, S, I], S).variadic(replace),
    );
    env.add_function(
        "split",
        Overload::member("string_split_string", vec![S, S], list_s()).binary(split),
    );
    env.add_function(
        "split",
        Overload::member("string_split_string_int", vec![S, S, I], list_s()).variadic(split_n),
    );
    env.add_function(
        "substring",
        Overload::member("string_substring_int", vec![S, I], S).binary(substring),
    );
    env.add_function(
        "substring",
        Overload::member("string_substring_int_int", vec![S, I, I], S).variadic(substring_range),
    );
    env.add_function(
        "trim",
        Overload::member("string_trim", vec![S], S).unary(trim),
    );
    env.add_function(
        "join",
        Overload::member("list_join", vec![list_s()], S).unary(join),
    );
    env.add_function(
        "join",
        Overload::member("list_join_string", vec![list_s(), S], S).binary(join_separator),
    );
    env.add_function(
        "reverse",
        Overload::member("string_reverse", vec![S], S).unary(reverse),
    );
    env.add_function(
        "format",
        Overload::member("string_format", vec![S, Type::list(DYN)], S).binary(format),
    );
    env.add_function(
        "strings.quote",
        Overload::global("strings_quote", vec![S], S).unary(quote),
    );
}

// === indices ===

/// `index out of range: N`, as cel-go words it.
fn out_of_range(index: i64) -> EvalError {
    EvalError::new(format!("index out of range: {index}"))
}

/// The byte offset where code point `n` starts, or the string's length when
/// `n` is its number of code points; `None` when `n` is negative or larger.
fn byte_at(s: &str, n: i64) -> Option<usize> {
    let n = usize::try_from(n).ok()?;
    if n == 0 {
        return Some(0);
    }
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .nth(n)
}

/// Number of code points.
fn char_count(s: &str) -> usize {
    s.chars().count()
}

/// A count as a CEL int.
fn to_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The bytes `start..end` of `s` (on character boundaries), borrowed when
/// `s` is borrowed and shared without copying when they are all of it.
fn slice<'a>(s: &Str<'a>, start: usize, end: usize) -> Result<Str<'a>, EvalError> {
    let off_boundary =
        || EvalError::new("internal: substring bounds are not on character boundaries");
    match s {
        Str::Borrowed(b) => {
            let b: &'a str = b;
            b.get(start..end)
                .map(Str::Borrowed)
                .ok_or_else(off_boundary)
        }
        Str::Shared(a) if start == 0 && end == a.len() => Ok(Str::Shared(a.clone())),
        Str::Shared(a) => a
            .get(start..end)
            .map(|part| Str::Shared(Arc::from(part)))
            .ok_or_else(off_boundary),
    }
}

/// `s.charAt(i)`: the code point at `i`, `''` at the end of the string.
fn char_at<'a>(s: Value<'a>, i: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&s, &i) {
        (Value::String(s), Value::Int(i)) => {
            let start = byte_at(s, *i).ok_or_else(|| out_of_range(*i))?;
            let end = s
                .get(start..)
                .and_then(|rest| rest.chars().next())
                .map_or(start, |c| start + c.len_utf8());
            Ok(Value::String(slice(s, start, end)?))
        }
        _ => Err(EvalError::no_overload("charAt", &[s, i])),
    }
}

/// The first code point index at or after `offset` where `sub` occurs, or -1.
fn index_from(s: &str, sub: &str, offset: i64) -> Result<i64, EvalError> {
    let start = byte_at(s, offset).ok_or_else(|| out_of_range(offset))?;
    if sub.is_empty() {
        return Ok(offset);
    }
    Ok(match s.get(start..).and_then(|rest| rest.find(sub)) {
        Some(pos) => offset.saturating_add(to_int(s.get(start..start + pos).map_or(0, char_count))),
        None => -1,
    })
}

/// The last code point index at or before `offset` where `sub` starts, or -1.
fn last_index_from(s: &str, sub: &str, offset: i64) -> Result<i64, EvalError> {
    if byte_at(s, offset).is_none() {
        return Err(out_of_range(offset));
    }
    if sub.is_empty() {
        return Ok(offset);
    }
    let (count, sub_count) = (char_count(s), char_count(sub));
    let Some(latest_start) = count.checked_sub(sub_count) else {
        return Ok(-1);
    };
    // Matches starting at or before `offset` end at or before this code point.
    let window_end =
        usize::try_from(offset).map_or(latest_start, |o| o.min(latest_start)) + sub_count;
    let end = byte_at(s, to_int(window_end)).unwrap_or(s.len());
    Ok(match s.get(..end).and_then(|window| window.rfind(sub)) {
        Some(pos) => to_int(s.get(..pos).map_or(0, char_count)),
        None => -1,
    })
}

/// `s.indexOf(sub)`.
fn index_of<'a>(s: Value<'a>, sub: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&s, &sub) {
        (Value::String(s), Value::String(sub)) => index_from(s, sub, 0).map(Value::Int),
        _ => Err(EvalError::no_overload("indexOf", &[s, sub])),
    }
}

/// `s.indexOf(sub, offset)`.
fn index_of_offset<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    match args {
        [Value::String(s), Value::String(sub), Value::Int(offset)] => {
            index_from(s, sub, *offset).map(Value::Int)
        }
        _ => Err(EvalError::no_overload("indexOf", args)),
    }
}

/// `s.lastIndexOf(sub)`: the length of `s` for an empty `sub`.
fn last_index_of<'a>(s: Value<'a>, sub: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&s, &sub) {
        (Value::String(s), Value::String(sub)) => {
            let count = to_int(char_count(s));
            if sub.is_empty() {
                return Ok(Value::Int(count));
            }
            // A search string longer than `s` (in particular, any search
            // in `''`) is not found rather than out of range.
            last_index_from(s, sub, count.saturating_sub(1).max(0)).map(Value::Int)
        }
        _ => Err(EvalError::no_overload("lastIndexOf", &[s, sub])),
    }
}

/// `s.lastIndexOf(sub, offset)`.
fn last_index_of_offset<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    match args {
        [Value::String(s), Value::String(sub), Value::Int(offset)] => {
            last_index_from(s, sub, *offset).map(Value::Int)
        }
        _ => Err(EvalError::no_overload("lastIndexOf", args)),
    }
}

/// `s.substring(start)`.
fn substring<'a>(s: Value<'a>, start: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&s, &start) {
        (Value::String(s), Value::Int(start)) => {
            let from = byte_at(s, *start).ok_or_else(|| out_of_range(*start))?;
            Ok(Value::String(slice(s, from, s.len())?))
        }
        _ => Err(EvalError::no_overload("substring", &[s, start])),
    }
}

/// `s.substring(start, end)`, `end` exclusive.
fn substring_range<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    match args {
        [Value::String(s), Value::Int(start), Value::Int(end)] => {
            if start > end {
                return Err(EvalError::new(format!(
                    "invalid substring range. start: {start}, end: {end}"
                )));
            }
            let from = byte_at(s, *start).ok_or_else(|| out_of_range(*start))?;
            // Count on from `start` rather than from the beginning again.
            let to = end
                .checked_sub(*start)
                .and_then(|n| s.get(from..).and_then(|rest| byte_at(rest, n)))
                .map(|n| from + n)
                .ok_or_else(|| out_of_range(*end))?;
            Ok(Value::String(slice(s, from, to)?))
        }
        _ => Err(EvalError::no_overload("substring", args)),
    }
}

// === transformations ===

/// `s.lowerAscii()`: only ASCII letters change.
fn lower_ascii(s: Value<'_>) -> Result<Value<'_>, EvalError> {
    match s {
        Value::String(s) if !s.bytes().any(|b| b.is_ascii_uppercase()) => Ok(Value::String(s)),
        Value::String(s) => Ok(Value::string(s.to_ascii_lowercase())),
        other => Err(EvalError::no_overload("lowerAscii", &[other])),
    }
}

/// `s.upperAscii()`: only ASCII letters change.
fn upper_ascii(s: Value<'_>) -> Result<Value<'_>, EvalError> {
    match s {
        Value::String(s) if !s.bytes().any(|b| b.is_ascii_lowercase()) => Ok(Value::String(s)),
        Value::String(s) => Ok(Value::string(s.to_ascii_uppercase())),
        other => Err(EvalError::no_overload("upperAscii", &[other])),
    }
}

/// `s.lower()`: Unicode lower-casing (ngrok).
fn lower(s: Value<'_>) -> Result<Value<'_>, EvalError> {
    match s {
        Value::String(s) if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) => {
            Ok(Value::String(s))
        }
        Value::String(s) => Ok(Value::string(s.to_lowercase())),
        other => Err(EvalError::no_overload("lower", &[other])),
    }
}

/// `s.upper()`: Unicode upper-casing (ngrok).
fn upper(s: Value<'_>) -> Result<Value<'_>, EvalError> {
    match s {
        Value::String(s) if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_lowercase()) => {
            Ok(Value::String(s))
        }
        Value::String(s) => Ok(Value::string(s.to_uppercase())),
        other => Err(EvalError::no_overload("upper", &[other])),
    }
}

/// `s.replace(old, new)` and `s.replace(old, new, n)`: at most `n`
/// replacements, all of them when `n` is negative (Go's `strings.Replace`).
fn replace<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let (s, old, new, n) = match args {
        [Value::String(s), Value::String(old), Value::String(new)] => (s, old, new, -1),
        [
            Value::String(s),
            Value::String(old),
            Value::String(new),
            Value::Int(n),
        ] => (s, old, new, *n),
        _ => return Err(EvalError::no_overload("replace", args)),
    };
    if n == 0 || (!old.is_empty() && !s.contains(&**old)) {
        return Ok(Value::String(s.clone()));
    }
    // Size the result before building it: chained replacements multiply
    // lengths, and a budget charged afterwards would come too late.
    let found = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(&**old).count()
    };
    let count = usize::try_from(n).map_or(found, |n| n.min(found));
    let len = (s.len() - count * old.len()).saturating_add(count.saturating_mul(new.len()));
    crate::eval::check_built_len(len)?;
    Ok(Value::string(match usize::try_from(n) {
        Ok(n) => s.replacen(&**old, new, n),
        Err(_) => s.replace(&**old, new),
    }))
}

/// Go's `strings.SplitN`: `n == 0` gives nothing, a negative `n` splits at
/// every separator, a positive `n` gives at most `n` parts, the last one the
/// unsplit rest. An empty separator splits into code points.
fn split_str<'s>(s: &'s str, sep: &str, n: i64) -> Vec<&'s str> {
    if n == 0 {
        return Vec::new();
    }
    let limit = usize::try_from(n).ok();
    if !sep.is_empty() {
        return match limit {
            Some(limit) => s.splitn(limit, sep).collect(),
            None => s.split(sep).collect(),
        };
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if limit.is_some_and(|limit| parts.len() + 1 >= limit) {
            break;
        }
        let (head, tail) = rest.split_at_checked(c.len_utf8()).unwrap_or((rest, ""));
        parts.push(head);
        rest = tail;
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

/// Splits `s`, borrowing the parts when `s` is borrowed.
fn split_value<'a>(s: &Str<'a>, sep: &str, n: i64) -> Value<'a> {
    Value::list(match s {
        Str::Borrowed(b) => split_str(b, sep, n).into_iter().map(Value::str).collect(),
        Str::Shared(a) => split_str(a, sep, n)
            .into_iter()
            .map(Value::string)
            .collect(),
    })
}

/// `s.split(sep)`.
fn split<'a>(s: Value<'a>, sep: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&s, &sep) {
        (Value::String(s), Value::String(sep)) => Ok(split_value(s, sep, -1)),
        _ => Err(EvalError::no_overload("split", &[s, sep])),
    }
}

/// `s.split(sep, n)`.
fn split_n<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    match args {
        [Value::String(s), Value::String(sep), Value::Int(n)] => Ok(split_value(s, sep, *n)),
        _ => Err(EvalError::no_overload("split", args)),
    }
}

/// `s.trim()`: removes leading and trailing Unicode white space (Go's
/// `strings.TrimSpace`; zero-width spaces are not white space).
fn trim(s: Value<'_>) -> Result<Value<'_>, EvalError> {
    match s {
        Value::String(s) => {
            let start = s.len() - s.trim_start().len();
            let end = start + s.trim().len();
            Ok(Value::String(slice(&s, start, end)?))
        }
        other => Err(EvalError::no_overload("trim", &[other])),
    }
}

/// `s.reverse()`: the code points in reverse order.
fn reverse(s: Value<'_>) -> Result<Value<'_>, EvalError> {
    match s {
        Value::String(s) if s.chars().nth(1).is_none() => Ok(Value::String(s)),
        Value::String(s) => Ok(Value::string(s.chars().rev().collect::<String>())),
        other => Err(EvalError::no_overload("reverse", &[other])),
    }
}

/// Concatenates a list of strings with `sep` between them.
fn join_list<'a>(list: &List<'a>, sep: &str) -> Result<Value<'a>, EvalError> {
    let n = list.len();
    let mut out = String::new();
    for (i, item) in list.iter().enumerate() {
        match item {
            // One element: the result is that string, shared as it is.
            Value::String(s) if n == 1 => return Ok(Value::String(s)),
            Value::String(s) => {
                if i > 0 {
                    out.push_str(sep);
                }
                out.push_str(&s);
            }
            other => {
                return Err(EvalError::new(format!(
                    "join: invalid input: {}",
                    other.display()
                )));
            }
        }
    }
    Ok(if out.is_empty() {
        Value::str("")
    } else {
        Value::string(out)
    })
}

/// `list.join()`.
fn join(list: Value<'_>) -> Result<Value<'_>, EvalError> {
    match &list {
        Value::List(l) => join_list(l, ""),
        _ => Err(EvalError::no_overload("join", &[list])),
    }
}

/// `list.join(sep)`.
fn join_separator<'a>(list: Value<'a>, sep: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&list, &sep) {
        (Value::List(l), Value::String(sep)) => join_list(l, sep),
        _ => Err(EvalError::no_overload("join", &[list, sep])),
    }
}

/// `strings.quote(s)`: `s` in double quotes with CEL's escape sequences
/// written out, so that printing it shows them literally.
fn quote(s: Value<'_>) -> Result<Value<'_>, EvalError> {
    let Value::String(s) = &s else {
        return Err(EvalError::no_overload("strings.quote", &[s]));
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(Value::string(out))
}

// === format ===

/// `fmt.format(args)`: printf-style substitution of the list's elements.
fn format<'a>(fmt: Value<'a>, args: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&fmt, &args) {
        // Nothing to substitute: the receiver, as it is.
        (Value::String(f), Value::List(_)) if !f.contains('%') => Ok(fmt),
        (Value::String(f), Value::List(list)) => format_list(f, list).map(Value::string),
        _ => Err(EvalError::no_overload("format", &[fmt, args])),
    }
}

/// A formatting clause's conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    /// `%s`
    String,
    /// `%d`
    Decimal,
    /// `%f`
    Fixed,
    /// `%e`
    Scientific,
    /// `%b`
    Binary,
    /// `%x` (`upper` false) or `%X`
    Hex { upper: bool },
    /// `%o`
    Octal,
}

/// Expands the clauses of `fmt` with the elements of `args`, in order.
/// Arguments that no clause uses are ignored, as in cel-go.
fn format_list(fmt: &str, args: &List<'_>) -> Result<String, EvalError> {
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut rest = fmt;
    let mut next_arg = 0usize;
    while let Some(pos) = rest.find('%') {
        out.push_str(rest.get(..pos).unwrap_or(""));
        let after = rest.get(pos + 1..).unwrap_or("");
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
            continue;
        }
        if next_arg >= args.len() {
            return Err(EvalError::new(format!("index {next_arg} out of range")));
        }
        if after.is_empty() {
            return Err(EvalError::new("unexpected end of string"));
        }
        let (verb, precision, tail) = parse_clause(after)
            .map_err(|e| EvalError::new(format!("could not parse formatting clause: {e}")))?;
        let arg = args
            .get(next_arg)
            .ok_or_else(|| EvalError::new(format!("index {next_arg} out of range")))?;
        format_arg(&mut out, verb, precision, &arg)
            .map_err(|e| EvalError::new(format!("error during formatting: {e}")))?;
        next_arg += 1;
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `[.precision]verb` at the start of `s` (just after a `%`).
fn parse_clause(s: &str) -> Result<(Verb, usize, &str), String> {
    let (precision, s) = match s.strip_prefix('.') {
        None => (DEFAULT_PRECISION, s),
        Some(digits) => {
            let end = digits.find(|c: char| !c.is_ascii_digit()).ok_or(
                "error while parsing precision: could not find end of precision specifier",
            )?;
            let (digits, rest) = digits.split_at_checked(end).unwrap_or((digits, ""));
            let precision: usize = digits.parse().map_err(|_| {
                let why = if digits.is_empty() { "invalid syntax" } else { "value out of range" };
                format!("error while parsing precision: error while converting precision to integer: strconv.Atoi: parsing {digits:?}: {why}")
            })?;
            if precision > MAX_PRECISION {
                return Err(format!(
                    "error while parsing precision: precision {precision} exceeds maximum allowed precision {MAX_PRECISION}"
                ));
            }
            (precision, rest)
        }
    };
    let mut chars = s.chars();
    let verb = match chars.next() {
        Some('s') => Verb::String,
        Some('d') => Verb::Decimal,
        Some('f') => Verb::Fixed,
        Some('e') => Verb::Scientific,
        Some('b') => Verb::Binary,
        Some('x') => Verb::Hex { upper: false },
        Some('X') => Verb::Hex { upper: true },
        Some('o') => Verb::Octal,
        Some(other) => return Err(format!("unrecognized formatting clause \"{other}\"")),
        None => return Err("unexpected end of string".to_string()),
    };
    Ok((verb, precision, chars.as_str()))
}

/// `NaN`, `Infinity` or `-Infinity` for doubles that have no digits.
fn special_double(d: f64) -> Option<&'static str> {
    if d.is_nan() {
        Some("NaN")
    } else if d.is_infinite() {
        Some(if d > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        None
    }
}

/// A double in the fewest digits that read back as it, never with an
/// exponent (Go's `strconv.FormatFloat(d, 'f', -1, 64)`).
fn write_shortest(out: &mut String, d: f64) {
    match special_double(d) {
        Some(s) => out.push_str(s),
        None => {
            let _ = write!(out, "{d}");
        }
    }
}

/// `d` as `[-]d.ddde±dd` with `precision` fraction digits (Go's `%e`).
fn write_scientific(out: &mut String, d: f64, precision: usize) {
    if let Some(s) = special_double(d) {
        out.push_str(s);
        return;
    }
    let rust = format!("{d:.precision$e}");
    match rust.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(digits) => ('-', digits),
                None => ('+', exp),
            };
            let pad = if digits.len() < 2 { "0" } else { "" };
            let _ = write!(out, "{mantissa}e{sign}{pad}{digits}");
        }
        None => out.push_str(&rust),
    }
}

/// An int in base `radix` (2, 8 or 16) with a `-` for negative values.
fn write_radix(out: &mut String, negative: bool, magnitude: u64, verb: Verb) {
    if negative {
        out.push('-');
    }
    let _ = match verb {
        Verb::Binary => write!(out, "{magnitude:b}"),
        Verb::Octal => write!(out, "{magnitude:o}"),
        Verb::Hex { upper: true } => write!(out, "{magnitude:X}"),
        _ => write!(out, "{magnitude:x}"),
    };
}

/// Each byte as two hex digits.
fn write_hex_bytes(out: &mut String, bytes: &[u8], upper: bool) {
    for b in bytes {
        let _ = if upper {
            write!(out, "{b:02X}")
        } else {
            write!(out, "{b:02x}")
        };
    }
}

/// Bytes as text, each run of invalid UTF-8 replaced by one U+FFFD.
fn write_lossy(out: &mut String, bytes: &[u8]) {
    let mut after_invalid = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            out.push_str(chunk.valid());
            after_invalid = false;
        }
        if !chunk.invalid().is_empty() {
            if !after_invalid {
                out.push('\u{FFFD}');
            }
            after_invalid = true;
        }
    }
}

/// Formats one argument; errors are the messages after `error during formatting: `.
fn format_arg(
    out: &mut String,
    verb: Verb,
    precision: usize,
    arg: &Value<'_>,
) -> Result<(), String> {
    let given = || arg.kind().name();
    match (verb, arg) {
        (Verb::String, _) => write_string(out, arg),
        (Verb::Decimal, Value::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        (Verb::Decimal, Value::Uint(u)) => {
            let _ = write!(out, "{u}");
        }
        (Verb::Decimal, Value::Double(d)) => write_shortest(out, *d),
        (Verb::Decimal, _) => {
            return Err(format!(
                "decimal clause can only be used on integers, was given {}",
                given()
            ));
        }
        (Verb::Fixed | Verb::Scientific, Value::Int(_) | Value::Uint(_) | Value::Double(_)) => {
            let d = match arg {
                Value::Int(i) => *i as f64,
                Value::Uint(u) => *u as f64,
                Value::Double(d) => *d,
                _ => 0.0,
            };
            match (verb, special_double(d)) {
                (_, Some(s)) => out.push_str(s),
                (Verb::Fixed, None) => {
                    let _ = write!(out, "{d:.precision$}");
                }
                _ => write_scientific(out, d, precision),
            }
        }
        (Verb::Fixed, _) => {
            return Err(format!(
                "fixed-point clause can only be used on doubles, was given {}",
                given()
            ));
        }
        (Verb::Scientific, _) => {
            return Err(format!(
                "scientific clause can only be used on doubles, was given {}",
                given()
            ));
        }
        (Verb::Binary, Value::Bool(b)) => out.push(if *b { '1' } else { '0' }),
        (Verb::Binary | Verb::Octal | Verb::Hex { .. }, Value::Int(i)) => {
            write_radix(out, *i < 0, i.unsigned_abs(), verb)
        }
        (Verb::Binary | Verb::Octal | Verb::Hex { .. }, Value::Uint(u)) => {
            write_radix(out, false, *u, verb)
        }
        (Verb::Binary, _) => {
            return Err(format!(
                "only integers and bools can be formatted as binary, was given {}",
                given()
            ));
        }
        (Verb::Octal, _) => {
            return Err(format!(
                "octal clause can only be used on integers, was given {}",
                given()
            ));
        }
        (Verb::Hex { upper }, Value::String(s)) => write_hex_bytes(out, s.as_bytes(), upper),
        (Verb::Hex { upper }, Value::Bytes(b)) => write_hex_bytes(out, b, upper),
        (Verb::Hex { .. }, _) => {
            return Err(format!(
                "only integers, byte buffers, and strings can be formatted as hex, was given {}",
                given()
            ));
        }
    }
    Ok(())
}

/// `%s`: every kind of value has a text form. Lists are `[a, b]`, maps are
/// `{k: v}` sorted by the formatted keys, strings and bytes appear without
/// quotes, durations as seconds (`90s`), timestamps in RFC 3339 UTC.
fn write_string(out: &mut String, arg: &Value<'_>) {
    match arg {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Uint(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Double(d) => write_shortest(out, *d),
        Value::String(s) => out.push_str(s),
        Value::Bytes(b) => write_lossy(out, b),
        Value::Duration(d) => {
            // Go's `Duration.Seconds()`, a double, then shortest digits.
            let nanos = d.nanos();
            let secs = (nanos / 1_000_000_000) as f64 + (nanos % 1_000_000_000) as f64 / 1e9;
            write_shortest(out, secs);
            out.push('s');
        }
        Value::Timestamp(t) => out.push_str(&t.to_rfc3339()),
        Value::Type(k) => out.push_str(k.name()),
        Value::List(l) => {
            out.push('[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, &item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            let mut entries: Vec<(String, String)> = m
                .entries()
                .iter()
                .map(|(k, v)| {
                    let (mut key, mut value) = (String::new(), String::new());
                    write_string(&mut key, k);
                    write_string(&mut value, v);
                    (key, value)
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                out.push_str(v);
            }
            out.push('}');
        }
    }
}
