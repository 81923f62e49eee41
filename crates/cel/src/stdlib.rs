//! The standard library: operator declarations, `size`, string predicates,
//! conversions, timestamp and duration accessors, and the cel-go extension
//! libraries that ngrok documents (strings, lists, math, encoders).
//!
//! Every function registers through [`Env::add_function`], the API callers
//! use for their own functions.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;

use crate::env::{Env, Overload};
use crate::eval::EvalError;
use crate::time::{DateField, Duration, Timestamp};
use crate::types::{Kind, Type};
use crate::value::{Bin, Str, Value};

mod encoders;

pub use encoders::decode_base64;
pub(crate) mod lists;
mod math;
mod strings;
#[cfg(test)]
mod testing;

/// Registers everything.
pub(crate) fn register(env: &mut Env) {
    operators(env);
    core(env);
    conversions(env);
    time(env);
    strings::register(env);
    lists::register(env);
    math::register(env);
    encoders::register(env);
}

/// Shorthands for signatures.
pub(crate) mod t {
    use crate::types::Type;
    pub(crate) const B: Type = Type::Bool;
    pub(crate) const I: Type = Type::Int;
    pub(crate) const U: Type = Type::Uint;
    pub(crate) const D: Type = Type::Double;
    pub(crate) const S: Type = Type::String;
    pub(crate) const BY: Type = Type::Bytes;
    pub(crate) const TS: Type = Type::Timestamp;
    pub(crate) const DUR: Type = Type::Duration;
    pub(crate) const DYN: Type = Type::Dyn;
    pub(crate) fn a() -> Type {
        Type::param("A")
    }
    pub(crate) fn b() -> Type {
        Type::param("B")
    }
    pub(crate) fn list_a() -> Type {
        Type::list(a())
    }
    pub(crate) fn map_ab() -> Type {
        Type::map(a(), b())
    }
}

/// Operators are declared for the checker; the evaluator implements them
/// directly (see `eval.rs`), so they carry no implementation here.
fn operators(env: &mut Env) {
    use t::*;
    let decl = |env: &mut Env, name: &str, id: &str, params: Vec<Type>, result: Type| {
        env.add_function(name, Overload::global(id, params, result))
    };
    decl(env, "_&&_", "logical_and", vec![B, B], B);
    decl(env, "_||_", "logical_or", vec![B, B], B);
    decl(env, "!_", "logical_not", vec![B], B);
    decl(env, "_?_:_", "conditional", vec![B, a(), a()], a());
    decl(env, "-_", "negate_int64", vec![I], I);
    decl(env, "-_", "negate_double", vec![D], D);
    decl(env, "_==_", "equals", vec![a(), a()], B);
    decl(env, "_!=_", "not_equals", vec![a(), a()], B);
    decl(env, "@in", "in_list", vec![a(), list_a()], B);
    decl(env, "@in", "in_map", vec![a(), map_ab()], B);
    decl(env, "_[_]", "index_list", vec![list_a(), I], a());
    decl(env, "_[_]", "index_map", vec![map_ab(), a()], b());
    let ordered = [
        ("int64", I),
        ("uint64", U),
        ("double", D),
        ("string", S),
        ("bytes", BY),
        ("bool", B),
        ("timestamp", TS),
        ("duration", DUR),
    ];
    let mixed = [
        ("int64", I, "uint64", U),
        ("int64", I, "double", D),
        ("uint64", U, "int64", I),
        ("uint64", U, "double", D),
        ("double", D, "int64", I),
        ("double", D, "uint64", U),
    ];
    for (op, id) in [
        ("_<_", "less"),
        ("_<=_", "less_equals"),
        ("_>_", "greater"),
        ("_>=_", "greater_equals"),
    ] {
        for (n, ty) in &ordered {
            decl(
                env,
                op,
                &format!("{id}_{n}"),
                vec![ty.clone(), ty.clone()],
                B,
            );
        }
        for (n1, t1, n2, t2) in &mixed {
            decl(
                env,
                op,
                &format!("{id}_{n1}_{n2}"),
                vec![t1.clone(), t2.clone()],
                B,
            );
        }
    }
    for (n, ty) in [("int64", I), ("uint64", U), ("double", D)] {
        decl(
            env,
            "_+_",
            &format!("add_{n}"),
            vec![ty.clone(), ty.clone()],
            ty.clone(),
        );
        decl(
            env,
            "_-_",
            &format!("subtract_{n}"),
            vec![ty.clone(), ty.clone()],
            ty.clone(),
        );
        decl(
            env,
            "_*_",
            &format!("multiply_{n}"),
            vec![ty.clone(), ty.clone()],
            ty.clone(),
        );
        decl(
            env,
            "_/_",
            &format!("divide_{n}"),
            vec![ty.clone(), ty.clone()],
            ty.clone(),
        );
    }
    decl(env, "_%_", "modulo_int64", vec![I, I], I);
    decl(env, "_%_", "modulo_uint64", vec![U, U], U);
    decl(env, "_+_", "add_string", vec![S, S], S);
    decl(env, "_+_", "add_bytes", vec![BY, BY], BY);
    decl(env, "_+_", "add_list", vec![list_a(), list_a()], list_a());
    decl(env, "_+_", "add_timestamp_duration", vec![TS, DUR], TS);
    decl(env, "_+_", "add_duration_timestamp", vec![DUR, TS], TS);
    decl(env, "_+_", "add_duration_duration", vec![DUR, DUR], DUR);
    decl(
        env,
        "_-_",
        "subtract_timestamp_timestamp",
        vec![TS, TS],
        DUR,
    );
    decl(env, "_-_", "subtract_timestamp_duration", vec![TS, DUR], TS);
    decl(
        env,
        "_-_",
        "subtract_duration_duration",
        vec![DUR, DUR],
        DUR,
    );
}

fn core(env: &mut Env) {
    use t::*;
    for member in [false, true] {
        let mk = |id: &str, p: Type| {
            if member {
                Overload::member(&format!("{id}_member"), vec![p], I)
            } else {
                Overload::global(id, vec![p], I)
            }
        };
        env.add_function("size", mk("size_string", S).unary(size));
        env.add_function("size", mk("size_bytes", BY).unary(size));
        env.add_function("size", mk("size_list", list_a()).unary(size));
        env.add_function("size", mk("size_map", map_ab()).unary(size));
    }
    env.add_function(
        "contains",
        Overload::member("contains_string", vec![S, S], B)
            .binary(|a, b| str2(a, b, "contains", |a, b| Value::Bool(a.contains(b)))),
    );
    env.add_function(
        "startsWith",
        Overload::member("starts_with_string", vec![S, S], B)
            .binary(|a, b| str2(a, b, "startsWith", |a, b| Value::Bool(a.starts_with(b)))),
    );
    env.add_function(
        "endsWith",
        Overload::member("ends_with_string", vec![S, S], B)
            .binary(|a, b| str2(a, b, "endsWith", |a, b| Value::Bool(a.ends_with(b)))),
    );
    env.add_function(
        "matches",
        Overload::global("matches", vec![S, S], B).binary(matches),
    );
    env.add_function(
        "matches",
        Overload::member("matches_string", vec![S, S], B).binary(matches),
    );
}

fn size(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let n = match &v {
        Value::String(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        _ => return Err(EvalError::no_overload("size", &[v])),
    };
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// Applies `f` to two strings, or reports no matching overload.
pub(crate) fn str2<'a>(
    a: Value<'a>,
    b: Value<'a>,
    name: &str,
    f: impl FnOnce(&str, &str) -> Value<'a>,
) -> Result<Value<'a>, EvalError> {
    match (&a, &b) {
        (Value::String(x), Value::String(y)) => Ok(f(x, y)),
        _ => Err(EvalError::no_overload(name, &[a, b])),
    }
}

fn matches<'a>(s: Value<'a>, pattern: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&s, &pattern) {
        (Value::String(s), Value::String(p)) => {
            let re = regex::Regex::new(p).map_err(|e| {
                EvalError::new(format!(
                    "invalid regular expression: {}",
                    e.to_string().lines().last().unwrap_or("")
                ))
            })?;
            Ok(Value::Bool(re.is_match(s)))
        }
        _ => Err(EvalError::no_overload("matches", &[s, pattern])),
    }
}

fn range_error(what: &str) -> EvalError {
    EvalError::new(format!("range error: {what}"))
}

fn conversions(env: &mut Env) {
    use t::*;
    for (id, p) in [
        ("int64_to_int64", I),
        ("uint64_to_int64", U),
        ("double_to_int64", D),
        ("string_to_int64", S),
        ("timestamp_to_int64", TS),
    ] {
        env.add_function("int", Overload::global(id, vec![p], I).unary(to_int));
    }
    for (id, p) in [
        ("uint64_to_uint64", U),
        ("int64_to_uint64", I),
        ("double_to_uint64", D),
        ("string_to_uint64", S),
    ] {
        env.add_function("uint", Overload::global(id, vec![p], U).unary(to_uint));
    }
    for (id, p) in [
        ("double_to_double", D),
        ("int64_to_double", I),
        ("uint64_to_double", U),
        ("string_to_double", S),
    ] {
        env.add_function("double", Overload::global(id, vec![p], D).unary(to_double));
    }
    for (id, p) in [
        ("string_to_string", S),
        ("int64_to_string", I),
        ("uint64_to_string", U),
        ("double_to_string", D),
        ("bool_to_string", B),
        ("bytes_to_string", BY),
        ("timestamp_to_string", TS),
        ("duration_to_string", DUR),
    ] {
        env.add_function("string", Overload::global(id, vec![p], S).unary(to_string));
    }
    for (id, p) in [("bytes_to_bytes", BY), ("string_to_bytes", S)] {
        env.add_function("bytes", Overload::global(id, vec![p], BY).unary(to_bytes));
    }
    for (id, p) in [("bool_to_bool", B), ("string_to_bool", S)] {
        env.add_function("bool", Overload::global(id, vec![p], B).unary(to_bool));
    }
    for (id, p) in [
        ("timestamp_to_timestamp", TS),
        ("string_to_timestamp", S),
        ("int64_to_timestamp", I),
    ] {
        env.add_function(
            "timestamp",
            Overload::global(id, vec![p], TS).unary(to_timestamp),
        );
    }
    for (id, p) in [("duration_to_duration", DUR), ("string_to_duration", S)] {
        env.add_function(
            "duration",
            Overload::global(id, vec![p], DUR).unary(to_duration),
        );
    }
    env.add_function(
        "type",
        Overload::global("type", vec![a()], Type::type_of(a()))
            .unary(|v| Ok(Value::Type(v.kind()))),
    );
    env.add_function(
        "dyn",
        Overload::global("to_dyn", vec![a()], DYN).unary(identity),
    );
}

fn identity(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    Ok(v)
}

fn to_int(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    Ok(Value::Int(match v {
        Value::Int(i) => i,
        Value::Uint(u) => i64::try_from(u).map_err(|_| range_error("uint out of int range"))?,
        Value::Double(d) => {
            // Both bounds are excluded: -2^63 converts exactly, but cel-go
            // rejects it along with everything beyond.
            if !d.is_finite() || d <= -9.223_372_036_854_776e18 || d >= 9.223_372_036_854_776e18 {
                return Err(range_error("double out of int range"));
            }
            d.trunc() as i64
        }
        Value::String(s) => s
            .parse()
            .map_err(|_| EvalError::new(format!("cannot convert {:?} to int", &*s)))?,
        Value::Timestamp(t) => t.unix_seconds(),
        other => return Err(EvalError::no_overload("int", &[other])),
    }))
}

fn to_uint(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    Ok(Value::Uint(match v {
        Value::Uint(u) => u,
        Value::Int(i) => u64::try_from(i).map_err(|_| range_error("int out of uint range"))?,
        Value::Double(d) => {
            if !d.is_finite() || !(0.0..1.844_674_407_370_955_2e19).contains(&d) {
                return Err(range_error("double out of uint range"));
            }
            d.trunc() as u64
        }
        Value::String(s) => s
            .parse()
            .map_err(|_| EvalError::new(format!("cannot convert {:?} to uint", &*s)))?,
        other => return Err(EvalError::no_overload("uint", &[other])),
    }))
}

fn to_double(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    Ok(Value::Double(match v {
        Value::Double(d) => d,
        Value::Int(i) => i as f64,
        Value::Uint(u) => u as f64,
        Value::String(s) => parse_go_float(&s)
            .ok_or_else(|| EvalError::new(format!("cannot convert {:?} to double", &*s)))?,
        other => return Err(EvalError::no_overload("double", &[other])),
    }))
}

fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().trim_start_matches('+') {
        "inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn to_string(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    Ok(match v {
        Value::String(s) => Value::String(s),
        Value::Int(i) => Value::string(i.to_string()),
        Value::Uint(u) => Value::string(u.to_string()),
        Value::Double(d) => Value::string(format_double(d)),
        Value::Bool(b) => Value::str(if b { "true" } else { "false" }),
        Value::Bytes(b) => match &b {
            Bin::Borrowed(s) => Value::String(Str::Borrowed(
                std::str::from_utf8(s).map_err(|_| EvalError::new("invalid UTF-8 in bytes"))?,
            )),
            Bin::Shared(s) => Value::string(
                std::str::from_utf8(s).map_err(|_| EvalError::new("invalid UTF-8 in bytes"))?,
            ),
        },
        Value::Timestamp(t) => Value::string(t.to_rfc3339()),
        Value::Duration(d) => Value::string(d.to_string()),
        other => return Err(EvalError::no_overload("string", &[other])),
    })
}

fn to_bytes(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Bytes(b) => Ok(Value::Bytes(b)),
        Value::String(Str::Borrowed(s)) => Ok(Value::Bytes(Bin::Borrowed(s.as_bytes()))),
        Value::String(Str::Shared(s)) => Ok(Value::Bytes(Bin::Shared(Arc::from(s.as_bytes())))),
        other => Err(EvalError::no_overload("bytes", &[other])),
    }
}

fn to_bool(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Bool(b) => Ok(Value::Bool(b)),
        Value::String(s) => match &*s {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            other => Err(EvalError::new(format!("cannot convert {other:?} to bool"))),
        },
        other => Err(EvalError::no_overload("bool", &[other])),
    }
}

fn to_timestamp(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Timestamp(t) => Ok(Value::Timestamp(t)),
        Value::String(s) => Timestamp::parse(&s).map(Value::Timestamp),
        Value::Int(i) => Timestamp::new(i, 0).map(Value::Timestamp),
        other => Err(EvalError::no_overload("timestamp", &[other])),
    }
}

fn to_duration(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Duration(d) => Ok(Value::Duration(d)),
        Value::String(s) => Duration::parse(&s).map(Value::Duration),
        other => Err(EvalError::no_overload("duration", &[other])),
    }
}

/// Formats a double as cel-go's `string(double)` does (Go's `%g` with the
/// shortest representation that round-trips).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "+Inf".to_string()
        } else {
            "-Inf".to_string()
        };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".to_string()
        } else {
            "0".to_string()
        };
    }
    let sci = format!("{d:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's `%g`: the shortest digits, in exponent form when the exponent
    // is below -4 or at least 6 (strconv's precision for shortest output).
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{d}")
    }
}

fn time(env: &mut Env) {
    use t::*;
    let fields: [(&str, DateField); 10] = [
        ("getFullYear", DateField::FullYear),
        ("getMonth", DateField::Month),
        ("getDate", DateField::Date),
        ("getDayOfMonth", DateField::DayOfMonth),
        ("getDayOfWeek", DateField::DayOfWeek),
        ("getDayOfYear", DateField::DayOfYear),
        ("getHours", DateField::Hours),
        ("getMinutes", DateField::Minutes),
        ("getSeconds", DateField::Seconds),
        ("getMilliseconds", DateField::Milliseconds),
    ];
    for (name, field) in fields {
        let id = name.trim_start_matches("get").to_ascii_lowercase();
        env.add_function(
            name,
            Overload::member(&format!("timestamp_to_{id}"), vec![TS], I).closure(move |args| {
                match args {
                    [Value::Timestamp(t)] => t.field(field, None).map(Value::Int),
                    _ => Err(EvalError::no_overload(name, args)),
                }
            }),
        );
        env.add_function(
            name,
            Overload::member(&format!("timestamp_to_{id}_with_tz"), vec![TS, S], I).closure(
                move |args| match args {
                    [Value::Timestamp(t), Value::String(tz)] => {
                        t.field(field, Some(tz)).map(Value::Int)
                    }
                    _ => Err(EvalError::no_overload(name, args)),
                },
            ),
        );
        let per: Option<i64> = match field {
            DateField::Hours => Some(3_600_000_000_000),
            DateField::Minutes => Some(60_000_000_000),
            DateField::Seconds => Some(1_000_000_000),
            DateField::Milliseconds => Some(1_000_000),
            _ => None,
        };
        if let Some(per) = per {
            let ms = matches!(field, DateField::Milliseconds);
            env.add_function(
                name,
                Overload::member(&format!("duration_to_{id}"), vec![DUR], I).closure(move |args| {
                    match args {
                        // `getMilliseconds` on a duration is the millisecond part,
                        // the others are totals (as cel-go).
                        [Value::Duration(d)] if ms => {
                            Ok(Value::Int((d.nanos() % 1_000_000_000) / per))
                        }
                        [Value::Duration(d)] => Ok(Value::Int(d.nanos() / per)),
                        _ => Err(EvalError::no_overload(name, args)),
                    }
                }),
            );
        }
    }
    // `now()` is not standard CEL; ngrok exposes `time.now` as a variable.
    let _ = Kind::Timestamp;
}
