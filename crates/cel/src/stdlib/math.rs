//! cel-go's math extension library (`ext.Math`), with the functions of
//! versions up to 2, the one that added `math.sqrt`.
//!
//! Global functions in the `math` namespace, called as `math.abs(x)`; the
//! checker resolves the receiver-style call on the identifier `math` to the
//! qualified global function (see `check.rs`).
//!
//! - `math.greatest` / `math.least`: in cel-go these are macros that rewrite
//!   to `math.@max` / `math.@min` over one numeric argument, a list of
//!   numbers, two numbers, or (three or more arguments) a list literal of
//!   them. Here they are ordinary functions with one overload per shape:
//!   `int`, `uint`, `double`, `list(int)`, `list(uint)`, `list(double)`, every
//!   pair of numeric types, and `dyn` for 3 to [`MAX_ARGS`] arguments (as
//!   cel-go's list literal of mixed numbers is `list(dyn)`). Numbers of
//!   different kinds compare by value; on a tie the earlier argument wins, so
//!   `math.greatest(1, 1.0)` is `1`. A NaN compared with anything is an error,
//!   an empty list is an error.
//! - `math.ceil`, `math.floor`, `math.round` (half away from zero),
//!   `math.trunc`, `math.isInf`, `math.isNaN`, `math.isFinite` on `double`.
//! - `math.abs` and `math.sign` on `int`, `uint` and `double`; `math.abs` of
//!   the least `int` overflows.
//! - `math.bitAnd`, `math.bitOr`, `math.bitXor`, `math.bitNot` on `int` and
//!   `uint`; `math.bitShiftLeft` and `math.bitShiftRight` shift an `int` or
//!   `uint` by an `int`. A negative shift is an error, a shift of 64 or more
//!   gives 0, and a right shift of an `int` is logical (zero-filling), as
//!   cel-go documents.
//! - `math.sqrt` on `int`, `uint` and `double`, giving a `double` (NaN for
//!   negative input).
//!
//! Differences from cel-go: because `math.greatest` / `math.least` are not
//! macros, literal non-numeric arguments (`math.greatest('a', 'b', 'c')`) are
//! reported by the checker only for one or two arguments, and with three or
//! more the call has type `dyn` rather than the common numeric type.

use std::cmp::Ordering;

use crate::env::{Env, Overload};
use crate::eval::EvalError;
use crate::stdlib::t;
use crate::types::Type;
use crate::value::{Value, numeric_cmp};

#[cfg(test)]
mod tests;

/// The most arguments `math.greatest` and `math.least` take in the variadic
/// form; pass a list for more.
pub(crate) const MAX_ARGS: usize = 16;

/// Registers the math functions.
pub(crate) fn register(env: &mut Env) {
    extremum(env, "math.greatest", "math_@max", greatest);
    extremum(env, "math.least", "math_@min", least);
    rounding(env);
    signedness(env);
    bitwise(env);
    env.add_function(
        "math.sqrt",
        Overload::global("math_sqrt_double", vec![t::D], t::D).unary(sqrt),
    );
    env.add_function(
        "math.sqrt",
        Overload::global("math_sqrt_int", vec![t::I], t::D).unary(sqrt),
    );
    env.add_function(
        "math.sqrt",
        Overload::global("math_sqrt_uint", vec![t::U], t::D).unary(sqrt),
    );
}

/// An implementation of `math.greatest` or `math.least`.
type Extremum = for<'a> fn(&[Value<'a>]) -> Result<Value<'a>, EvalError>;

/// Declares `math.greatest` or `math.least` for every argument shape.
fn extremum(env: &mut Env, name: &str, id: &str, imp: Extremum) {
    let numeric = [("int", t::I), ("uint", t::U), ("double", t::D)];
    for (n, ty) in &numeric {
        env.add_function(
            name,
            Overload::global(&format!("{id}_{n}"), vec![ty.clone()], ty.clone()).variadic(imp),
        );
        env.add_function(
            name,
            Overload::global(
                &format!("{id}_list_{n}"),
                vec![Type::list(ty.clone())],
                ty.clone(),
            )
            .variadic(imp),
        );
    }
    for (n1, t1) in &numeric {
        for (n2, t2) in &numeric {
            let result = if n1 == n2 { t1.clone() } else { t::DYN };
            env.add_function(
                name,
                Overload::global(
                    &format!("{id}_{n1}_{n2}"),
                    vec![t1.clone(), t2.clone()],
                    result,
                )
                .variadic(imp),
            );
        }
    }
    for arity in 3..=MAX_ARGS {
        env.add_function(
            name,
            Overload::global(&format!("{id}_dyn{arity}"), vec![t::DYN; arity], t::DYN)
                .variadic(imp),
        );
    }
}

/// `math.greatest(...)`.
fn greatest<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    pick(args, "math.greatest", Ordering::Greater)
}

/// `math.least(...)`.
fn least<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    pick(args, "math.least", Ordering::Less)
}

/// The greatest (`want` is `Greater`) or least (`Less`) of the arguments, or
/// of the elements of a single list argument. Ties keep the earlier value.
fn pick<'a>(args: &[Value<'a>], name: &str, want: Ordering) -> Result<Value<'a>, EvalError> {
    match args {
        [Value::List(list)] => {
            let mut best: Option<Value<'a>> = None;
            for item in list.iter() {
                if !is_number(&item) {
                    return Err(EvalError::new(format!(
                        "no matching overload for `{name}`: list element of type `{}` is not a number",
                        item.kind().name()
                    )));
                }
                best = Some(better(best, item, name, want)?);
            }
            best.ok_or_else(|| EvalError::new(format!("{name}(list) argument must not be empty")))
        }
        _ => {
            if args.is_empty() || !args.iter().all(is_number) {
                return Err(EvalError::no_overload(name, args));
            }
            let mut best: Option<Value<'a>> = None;
            for item in args {
                best = Some(better(best, item.clone(), name, want)?);
            }
            best.ok_or_else(|| EvalError::no_overload(name, args))
        }
    }
}

/// The better of the best so far and a new candidate.
fn better<'a>(
    best: Option<Value<'a>>,
    candidate: Value<'a>,
    name: &str,
    want: Ordering,
) -> Result<Value<'a>, EvalError> {
    let Some(best) = best else {
        return Ok(candidate);
    };
    match numeric_cmp(&candidate, &best) {
        Some(o) if o == want => Ok(candidate),
        Some(_) => Ok(best),
        None => Err(EvalError::new(format!(
            "NaN values cannot be ordered: {name}"
        ))),
    }
}

/// Whether `v` is an `int`, `uint` or `double`.
fn is_number(v: &Value<'_>) -> bool {
    matches!(v, Value::Int(_) | Value::Uint(_) | Value::Double(_))
}

/// `math.ceil`, `math.floor`, `math.round`, `math.trunc` and the
/// floating-point predicates.
fn rounding(env: &mut Env) {
    env.add_function(
        "math.ceil",
        Overload::global("math_ceil_double", vec![t::D], t::D)
            .unary(|v| double_op(v, "math.ceil", f64::ceil)),
    );
    env.add_function(
        "math.floor",
        Overload::global("math_floor_double", vec![t::D], t::D)
            .unary(|v| double_op(v, "math.floor", f64::floor)),
    );
    env.add_function(
        "math.round",
        Overload::global("math_round_double", vec![t::D], t::D)
            .unary(|v| double_op(v, "math.round", f64::round)),
    );
    env.add_function(
        "math.trunc",
        Overload::global("math_trunc_double", vec![t::D], t::D)
            .unary(|v| double_op(v, "math.trunc", f64::trunc)),
    );
    env.add_function(
        "math.isInf",
        Overload::global("math_isInf_double", vec![t::D], t::B)
            .unary(|v| double_pred(v, "math.isInf", f64::is_infinite)),
    );
    env.add_function(
        "math.isNaN",
        Overload::global("math_isNaN_double", vec![t::D], t::B)
            .unary(|v| double_pred(v, "math.isNaN", f64::is_nan)),
    );
    env.add_function(
        "math.isFinite",
        Overload::global("math_isFinite_double", vec![t::D], t::B)
            .unary(|v| double_pred(v, "math.isFinite", f64::is_finite)),
    );
}

/// Applies `f` to a `double`, or reports no matching overload.
fn double_op<'a>(v: Value<'a>, name: &str, f: fn(f64) -> f64) -> Result<Value<'a>, EvalError> {
    match v {
        Value::Double(d) => Ok(Value::Double(f(d))),
        other => Err(EvalError::no_overload(name, &[other])),
    }
}

/// Tests a `double` with `f`, or reports no matching overload.
fn double_pred<'a>(v: Value<'a>, name: &str, f: fn(f64) -> bool) -> Result<Value<'a>, EvalError> {
    match v {
        Value::Double(d) => Ok(Value::Bool(f(d))),
        other => Err(EvalError::no_overload(name, &[other])),
    }
}

/// `math.abs` and `math.sign`.
fn signedness(env: &mut Env) {
    for (n, ty) in [("double", t::D), ("int", t::I), ("uint", t::U)] {
        env.add_function(
            "math.abs",
            Overload::global(&format!("math_abs_{n}"), vec![ty.clone()], ty.clone()).unary(abs),
        );
        env.add_function(
            "math.sign",
            Overload::global(&format!("math_sign_{n}"), vec![ty.clone()], ty).unary(sign),
        );
    }
}

/// `math.abs(x)`; the least `int` has no absolute value.
fn abs(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Int(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| EvalError::new("integer overflow")),
        Value::Uint(u) => Ok(Value::Uint(u)),
        Value::Double(d) => Ok(Value::Double(d.abs())),
        other => Err(EvalError::no_overload("math.abs", &[other])),
    }
}

/// `math.sign(x)`: -1, 0 or 1 in the kind of `x`.
fn sign(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Int(i) => Ok(Value::Int(i.signum())),
        Value::Uint(u) => Ok(Value::Uint(u64::from(u != 0))),
        // NaN stays NaN; both zeros give 0.0 (cel-go does not keep the sign of zero).
        Value::Double(d) if d.is_nan() => Ok(Value::Double(d)),
        Value::Double(d) if d > 0.0 => Ok(Value::Double(1.0)),
        Value::Double(d) if d < 0.0 => Ok(Value::Double(-1.0)),
        Value::Double(_) => Ok(Value::Double(0.0)),
        other => Err(EvalError::no_overload("math.sign", &[other])),
    }
}

/// `math.sqrt(x)`, always a `double`.
fn sqrt(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Double(d) => Ok(Value::Double(d.sqrt())),
        Value::Int(i) => Ok(Value::Double((i as f64).sqrt())),
        Value::Uint(u) => Ok(Value::Double((u as f64).sqrt())),
        other => Err(EvalError::no_overload("math.sqrt", &[other])),
    }
}

/// The bitwise functions.
fn bitwise(env: &mut Env) {
    /// A two-argument implementation.
    type Binary = for<'a> fn(Value<'a>, Value<'a>) -> Result<Value<'a>, EvalError>;
    let logic: [(&str, &str, Binary); 3] = [
        ("math.bitAnd", "math_bitAnd", bit_and),
        ("math.bitOr", "math_bitOr", bit_or),
        ("math.bitXor", "math_bitXor", bit_xor),
    ];
    for (name, id, imp) in logic {
        for (n, ty) in [("int", t::I), ("uint", t::U)] {
            let o = Overload::global(&format!("{id}_{n}_{n}"), vec![ty.clone(), ty.clone()], ty);
            env.add_function(name, o.binary(imp));
        }
    }
    env.add_function(
        "math.bitNot",
        Overload::global("math_bitNot_int_int", vec![t::I], t::I).unary(bit_not),
    );
    env.add_function(
        "math.bitNot",
        Overload::global("math_bitNot_uint_uint", vec![t::U], t::U).unary(bit_not),
    );
    env.add_function(
        "math.bitShiftLeft",
        Overload::global("math_bitShiftLeft_int_int", vec![t::I, t::I], t::I).binary(shift_left),
    );
    env.add_function(
        "math.bitShiftLeft",
        Overload::global("math_bitShiftLeft_uint_int", vec![t::U, t::I], t::U).binary(shift_left),
    );
    env.add_function(
        "math.bitShiftRight",
        Overload::global("math_bitShiftRight_int_int", vec![t::I, t::I], t::I).binary(shift_right),
    );
    env.add_function(
        "math.bitShiftRight",
        Overload::global("math_bitShiftRight_uint_int", vec![t::U, t::I], t::U).binary(shift_right),
    );
}

/// `math.bitAnd(a, b)`.
fn bit_and<'a>(a: Value<'a>, b: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(Value::Int(x & y)),
        (Value::Uint(x), Value::Uint(y)) => Ok(Value::Uint(x & y)),
        (a, b) => Err(EvalError::no_overload("math.bitAnd", &[a, b])),
    }
}

/// `math.bitOr(a, b)`.
fn bit_or<'a>(a: Value<'a>, b: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(Value::Int(x | y)),
        (Value::Uint(x), Value::Uint(y)) => Ok(Value::Uint(x | y)),
        (a, b) => Err(EvalError::no_overload("math.bitOr", &[a, b])),
    }
}

/// `math.bitXor(a, b)`.
fn bit_xor<'a>(a: Value<'a>, b: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(Value::Int(x ^ y)),
        (Value::Uint(x), Value::Uint(y)) => Ok(Value::Uint(x ^ y)),
        (a, b) => Err(EvalError::no_overload("math.bitXor", &[a, b])),
    }
}

/// `math.bitNot(x)`: the ones' complement.
fn bit_not(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Int(x) => Ok(Value::Int(!x)),
        Value::Uint(x) => Ok(Value::Uint(!x)),
        other => Err(EvalError::no_overload("math.bitNot", &[other])),
    }
}

/// The shift amount: an error when negative, `None` when 64 or more (every
/// bit shifts out).
fn shift_amount(bits: i64, name: &str) -> Result<Option<u32>, EvalError> {
    if bits < 0 {
        return Err(EvalError::new(format!("{name}() negative offset: {bits}")));
    }
    Ok(u32::try_from(bits).ok().filter(|b| *b < 64))
}

/// `math.bitShiftLeft(x, bits)`.
fn shift_left<'a>(v: Value<'a>, bits: Value<'a>) -> Result<Value<'a>, EvalError> {
    const NAME: &str = "math.bitShiftLeft";
    match (v, bits) {
        (Value::Int(x), Value::Int(b)) => {
            Ok(Value::Int(shift_amount(b, NAME)?.map_or(0, |b| x << b)))
        }
        (Value::Uint(x), Value::Int(b)) => {
            Ok(Value::Uint(shift_amount(b, NAME)?.map_or(0, |b| x << b)))
        }
        (a, b) => Err(EvalError::no_overload(NAME, &[a, b])),
    }
}

/// `math.bitShiftRight(x, bits)`: logical for `int` too.
fn shift_right<'a>(v: Value<'a>, bits: Value<'a>) -> Result<Value<'a>, EvalError> {
    const NAME: &str = "math.bitShiftRight";
    match (v, bits) {
        // Logical shift: the sign bit is not extended.
        (Value::Int(x), Value::Int(b)) => Ok(Value::Int(
            shift_amount(b, NAME)?.map_or(0, |b| ((x as u64) >> b) as i64),
        )),
        (Value::Uint(x), Value::Int(b)) => {
            Ok(Value::Uint(shift_amount(b, NAME)?.map_or(0, |b| x >> b)))
        }
        (a, b) => Err(EvalError::no_overload(NAME, &[a, b])),
    }
}
