//! Operators: comparison and arithmetic with CEL's overflow, division and
//! type rules.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::cmp::Ordering;
use std::sync::Arc;

use crate::eval::EvalError;
use crate::value::{Bin, List, Str, Value};

/// `<`, `<=`, `>`, `>=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn name(self) -> &'static str {
        match self {
            CmpOp::Lt => "_<_",
            CmpOp::Le => "_<=_",
            CmpOp::Gt => "_>_",
            CmpOp::Ge => "_>=_",
        }
    }
}

/// `+`, `-`, `*`, `/`, `%`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl ArithOp {
    fn name(self) -> &'static str {
        match self {
            ArithOp::Add => "_+_",
            ArithOp::Sub => "_-_",
            ArithOp::Mul => "_*_",
            ArithOp::Div => "_/_",
            ArithOp::Rem => "_%_",
        }
    }
}

pub(crate) fn compare<'a>(a: &Value<'_>, b: &Value<'_>, op: CmpOp) -> Result<Value<'a>, EvalError> {
    let ord = match a.compare(b) {
        Some(o) => o,
        None => {
            let numeric =
                |v: &Value<'_>| matches!(v, Value::Int(_) | Value::Uint(_) | Value::Double(_));
            if numeric(a) && numeric(b) {
                // A NaN is involved. As in cel-go, that is an error rather
                // than `false`, which would break `a <= b == !(a > b)`.
                return Err(EvalError::new("NaN values cannot be ordered"));
            }
            return Err(EvalError::no_overload(
                op.name(),
                &[a.to_static(), b.to_static()],
            ));
        }
    };
    Ok(Value::Bool(match op {
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }))
}

fn overflow() -> EvalError {
    EvalError::new("integer overflow")
}

pub(crate) fn arith<'a>(a: Value<'a>, b: Value<'a>, op: ArithOp) -> Result<Value<'a>, EvalError> {
    use ArithOp::*;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let r = match op {
                Add => x.checked_add(y),
                Sub => x.checked_sub(y),
                Mul => x.checked_mul(y),
                Div if y == 0 => return Err(EvalError::new("division by zero")),
                Div => x.checked_div(y),
                Rem if y == 0 => return Err(EvalError::new("modulus by zero")),
                Rem => x.checked_rem(y),
            };
            r.map(Value::Int).ok_or_else(overflow)
        }
        (Value::Uint(x), Value::Uint(y)) => {
            let r = match op {
                Add => x.checked_add(y),
                Sub => x.checked_sub(y),
                Mul => x.checked_mul(y),
                Div if y == 0 => return Err(EvalError::new("division by zero")),
                Div => x.checked_div(y),
                Rem if y == 0 => return Err(EvalError::new("modulus by zero")),
                Rem => x.checked_rem(y),
            };
            r.map(Value::Uint).ok_or_else(overflow)
        }
        (Value::Double(x), Value::Double(y)) if op != Rem => Ok(Value::Double(match op {
            Add => x + y,
            Sub => x - y,
            Mul => x * y,
            _ => x / y,
        })),
        (Value::String(x), Value::String(y)) if op == Add => {
            if y.is_empty() {
                return Ok(Value::String(x));
            }
            if x.is_empty() {
                return Ok(Value::String(y));
            }
            crate::eval::check_built_len(x.len() + y.len())?;
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(&x);
            s.push_str(&y);
            Ok(Value::String(Str::Shared(Arc::from(s))))
        }
        (Value::Bytes(x), Value::Bytes(y)) if op == Add => {
            crate::eval::check_built_len(x.len() + y.len())?;
            let mut v = Vec::with_capacity(x.len() + y.len());
            v.extend_from_slice(&x);
            v.extend_from_slice(&y);
            Ok(Value::Bytes(Bin::Shared(Arc::from(v))))
        }
        (Value::List(x), Value::List(y)) if op == Add => {
            if y.is_empty() {
                return Ok(Value::List(x));
            }
            if x.is_empty() {
                return Ok(Value::List(y));
            }
            crate::eval::check_built_len(x.len() + y.len())?;
            let items: Vec<Value<'a>> = x.iter().chain(y.iter()).collect();
            Ok(Value::List(List::Values(items.into())))
        }
        (Value::Timestamp(t), Value::Duration(d)) if op == Add => {
            t.checked_add(d).map(Value::Timestamp)
        }
        (Value::Duration(d), Value::Timestamp(t)) if op == Add => {
            t.checked_add(d).map(Value::Timestamp)
        }
        (Value::Timestamp(t), Value::Duration(d)) if op == Sub => {
            t.checked_sub(d).map(Value::Timestamp)
        }
        (Value::Timestamp(t), Value::Timestamp(u)) if op == Sub => t.since(u).map(Value::Duration),
        (Value::Duration(d), Value::Duration(e)) if op == Add => {
            d.checked_add(e).map(Value::Duration)
        }
        (Value::Duration(d), Value::Duration(e)) if op == Sub => {
            d.checked_sub(e).map(Value::Duration)
        }
        (a, b) => Err(EvalError::no_overload(op.name(), &[a, b])),
    }
}

pub(crate) fn negate(v: Value<'_>) -> Result<Value<'_>, EvalError> {
    match v {
        Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(overflow),
        Value::Double(d) => Ok(Value::Double(-d)),
        Value::Duration(d) => d.checked_neg().map(Value::Duration),
        other => Err(EvalError::no_overload("-_", &[other])),
    }
}
