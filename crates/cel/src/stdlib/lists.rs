//! cel-go's lists extension library (`ext.Lists`): the functions of its
//! latest version except `first` and `last`.
//!
//! - `<list>.slice(start, end)`: the elements from `start` (inclusive) to
//!   `end` (exclusive); negative indices, `start > end` and `end` past the
//!   end are errors.
//! - `<list(list(T))>.flatten()` flattens one level; `<list>.flatten(depth)`
//!   flattens `depth` levels (a negative depth is an error). Elements that
//!   are not lists are kept as they are.
//! - `<list(T)>.sort()` for `T` in `int`, `uint`, `double`, `bool`, `string`,
//!   `bytes`, `timestamp` and `duration`. Elements of different kinds (even
//!   `int` and `uint`) or of a kind without an ordering are an error. NaNs
//!   sort after every other double (cel-go leaves their place unspecified).
//! - `<list(T)>.distinct()` keeps the first of each run of CEL-equal elements
//!   (so `[1, 1u, 1.0].distinct()` is `[1]`).
//! - `<list(T)>.reverse()`.
//! - `lists.range(n)`: `[0, 1, ..., n - 1]`; `n` must be between 0 and
//!   [`MAX_RANGE`]. cel-go allows up to ten million elements; Portcullis
//!   allows [`MAX_RANGE`] so that one call cannot allocate more than a few
//!   tens of megabytes while a request waits.
//!
//! - `<list(T)>.sortBy(x, key)`: a macro (parsed with the comprehensions)
//!   whose keys are ordered as `sort` orders elements; equal keys keep
//!   their order.
//!
//! Not provided: `first()` / `last()` (which return optional values;
//! Portcullis has no optional type).
//! `<list(string)>.join()` belongs to the strings library.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use crate::env::{Env, Overload};
use crate::eval::EvalError;
use crate::stdlib::t;
use crate::types::{Kind, Type};
use crate::value::{List, Value};

#[cfg(test)]
mod tests;

/// The largest `n` that `lists.range(n)` accepts.
pub(crate) const MAX_RANGE: i64 = 1_000_000;

/// Registers the list functions.
pub(crate) fn register(env: &mut Env) {
    let list_a = t::list_a();
    let list_dyn = Type::list(t::DYN);
    env.add_function(
        "slice",
        Overload::member(
            "list_slice",
            vec![list_a.clone(), t::I, t::I],
            list_a.clone(),
        )
        .variadic(slice),
    );
    env.add_function(
        "flatten",
        Overload::member(
            "list_flatten",
            vec![Type::list(list_a.clone())],
            list_a.clone(),
        )
        .unary(flatten_once),
    );
    env.add_function(
        "flatten",
        Overload::member("list_flatten_int", vec![list_dyn.clone(), t::I], list_dyn)
            .binary(flatten_depth),
    );
    let comparable = [
        ("int", t::I),
        ("uint", t::U),
        ("double", t::D),
        ("bool", t::B),
        ("google.protobuf.Duration", t::DUR),
        ("google.protobuf.Timestamp", t::TS),
        ("string", t::S),
        ("bytes", t::BY),
    ];
    for (n, ty) in comparable {
        let list = Type::list(ty);
        env.add_function(
            "sort",
            Overload::member(&format!("list_{n}_sort"), vec![list.clone()], list).unary(sort),
        );
    }
    env.add_function(
        "lists.range",
        Overload::global("lists_range", vec![t::I], Type::list(t::I)).unary(range),
    );
    env.add_function(
        "reverse",
        Overload::member("list_reverse", vec![list_a.clone()], list_a.clone()).unary(reverse),
    );
    env.add_function(
        "distinct",
        Overload::member("list_distinct", vec![list_a.clone()], list_a).unary(distinct),
    );
}

/// `list.slice(start, end)`.
fn slice<'a>(args: &[Value<'a>]) -> Result<Value<'a>, EvalError> {
    let [Value::List(list), Value::Int(start), Value::Int(end)] = args else {
        return Err(EvalError::no_overload("slice", args));
    };
    let (start, end) = (*start, *end);
    if start < 0 || end < 0 {
        return Err(EvalError::new(format!(
            "cannot slice({start}, {end}), negative indexes not supported"
        )));
    }
    if start > end {
        return Err(EvalError::new(format!(
            "cannot slice({start}, {end}), start index must be less than or equal to end index"
        )));
    }
    let len = list.len();
    let (Ok(from), Ok(to)) = (usize::try_from(start), usize::try_from(end)) else {
        return Err(EvalError::new(format!(
            "cannot slice({start}, {end}), list is length {len}"
        )));
    };
    if to > len {
        return Err(EvalError::new(format!(
            "cannot slice({start}, {end}), list is length {len}"
        )));
    }
    Ok(Value::list((from..to).map_while(|i| list.get(i)).collect()))
}

/// `list.flatten()`.
fn flatten_once(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::List(list) => Ok(Value::list(flatten(&list, 1))),
        other => Err(EvalError::no_overload("flatten", &[other])),
    }
}

/// `list.flatten(depth)`.
fn flatten_depth<'a>(v: Value<'a>, depth: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (v, depth) {
        (Value::List(_), Value::Int(d)) if d < 0 => {
            Err(EvalError::new("level must be non-negative"))
        }
        (Value::List(list), Value::Int(d)) => Ok(Value::list(flatten(&list, d))),
        (v, depth) => Err(EvalError::no_overload("flatten", &[v, depth])),
    }
}

/// The elements of `list` with nested lists spliced in, `depth` levels
/// deep. Iterative, so deeply nested values cannot exhaust the stack.
fn flatten<'a>(list: &List<'a>, depth: i64) -> Vec<Value<'a>> {
    let mut out = Vec::with_capacity(list.len());
    // (list, next index, levels still to flatten below it)
    let mut stack: Vec<(List<'a>, usize, i64)> = vec![(list.clone(), 0, depth)];
    while let Some((current, next, levels)) = stack.last_mut() {
        let Some(item) = current.get(*next) else {
            stack.pop();
            continue;
        };
        *next += 1;
        let levels = *levels;
        match item {
            Value::List(inner) if levels > 0 => stack.push((inner, 0, levels - 1)),
            other => out.push(other),
        }
    }
    out
}

/// `list.sort()`.
fn sort(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let Value::List(list) = &v else {
        return Err(EvalError::no_overload("sort", &[v]));
    };
    let mut items: Vec<Value<'_>> = list.iter().collect();
    sortable(&items)?;
    items.sort_by(total_order);
    Ok(Value::list(items))
}

/// `list.sortBy(x, key)`, once the macro has computed each element's key:
/// the elements in the order of their keys, equal keys keeping their
/// order (a stable sort, as cel-go's).
pub(crate) fn sort_by_keys<'a>(
    items: Vec<Value<'a>>,
    keys: Vec<Value<'a>>,
) -> Result<Value<'a>, EvalError> {
    sortable(&keys)?;
    let mut pairs: Vec<(Value<'a>, Value<'a>)> = keys.into_iter().zip(items).collect();
    pairs.sort_by(|a, b| total_order(&a.0, &b.0));
    Ok(Value::list(pairs.into_iter().map(|(_, v)| v).collect()))
}

/// Whether `items` can be sorted: all of one comparable kind.
fn sortable(items: &[Value<'_>]) -> Result<(), EvalError> {
    let Some(kind) = items.first().map(Value::kind) else {
        return Ok(());
    };
    if !matches!(
        kind,
        Kind::Int
            | Kind::Uint
            | Kind::Double
            | Kind::Bool
            | Kind::String
            | Kind::Bytes
            | Kind::Timestamp
            | Kind::Duration
    ) {
        return Err(EvalError::new("list elements must be comparable"));
    }
    if items.iter().any(|x| x.kind() != kind) {
        return Err(EvalError::new("list elements must have the same type"));
    }
    Ok(())
}

/// A total order on values of one comparable kind: CEL's ordering, with
/// NaNs after every other double (a consistent order, which sorting needs).
fn total_order(a: &Value<'_>, b: &Value<'_>) -> Ordering {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x
            .partial_cmp(y)
            .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan())),
        _ => a.compare(b).unwrap_or(Ordering::Equal),
    }
}

/// `lists.range(n)`.
fn range(n: Value<'_>) -> Result<Value<'_>, EvalError> {
    match n {
        Value::Int(n) if n < 0 => Err(EvalError::new(format!(
            "lists.range: size must be non-negative, got {n}"
        ))),
        Value::Int(n) if n > MAX_RANGE => Err(EvalError::new(format!(
            "lists.range: size {n} exceeds maximum allowed ({MAX_RANGE})"
        ))),
        Value::Int(n) => Ok(Value::list((0..n).map(Value::Int).collect())),
        other => Err(EvalError::no_overload("lists.range", &[other])),
    }
}

/// `list.reverse()`.
fn reverse(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::List(list) => {
            let mut items: Vec<Value<'_>> = list.iter().collect();
            items.reverse();
            Ok(Value::list(items))
        }
        other => Err(EvalError::no_overload("reverse", &[other])),
    }
}

/// `list.distinct()`: elements are bucketed by a hash that agrees with CEL
/// equality, so the cost is linear rather than quadratic.
fn distinct(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    let Value::List(list) = v else {
        return Err(EvalError::no_overload("distinct", &[v]));
    };
    let items: Vec<Value<'_>> = list.iter().collect();
    let state = RandomState::new();
    // Hash -> indices into `items` of the distinct elements with that hash.
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut keep = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut h = state.build_hasher();
        cel_hash(item, &state, &mut h);
        let bucket = seen.entry(h.finish()).or_default();
        if !bucket
            .iter()
            .any(|j| items.get(*j).is_some_and(|other| other.equals(item)))
        {
            bucket.push(i);
            keep.push(item.clone());
        }
    }
    Ok(Value::list(keep))
}

/// Feeds `v` to `h` so that CEL-equal values hash alike: numbers of every
/// kind hash by value, map entries hash independently of order.
fn cel_hash(v: &Value<'_>, state: &RandomState, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Int(i) => (2u8, i128::from(*i)).hash(h),
        Value::Uint(u) => (2u8, i128::from(*u)).hash(h),
        // Integral doubles hash as the integer they equal (both zeros as 0);
        // others by their bits. 2^127 and beyond cannot equal an int or uint.
        Value::Double(d) if d.fract() == 0.0 && d.abs() < 1.7e38 => (2u8, *d as i128).hash(h),
        Value::Double(d) => (3u8, d.to_bits()).hash(h),
        Value::String(s) => (4u8, &**s).hash(h),
        Value::Bytes(b) => (5u8, &**b).hash(h),
        Value::Timestamp(t) => (6u8, t).hash(h),
        Value::Duration(d) => (7u8, d).hash(h),
        Value::Type(k) => (8u8, k).hash(h),
        Value::List(l) => {
            (9u8, l.len()).hash(h);
            for item in l.iter() {
                cel_hash(&item, state, h);
            }
        }
        Value::Map(m) => {
            let entries = m.entries();
            let mut sum = 0u64;
            for (k, v) in &entries {
                let mut eh = state.build_hasher();
                cel_hash(k, state, &mut eh);
                cel_hash(v, state, &mut eh);
                sum = sum.wrapping_add(eh.finish());
            }
            (10u8, entries.len(), sum).hash(h);
        }
    }
}
