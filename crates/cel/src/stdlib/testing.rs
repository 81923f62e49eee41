//! Helpers shared by the library's tests: evaluate an expression, compare
//! values strictly, expect a run-time or a compile-time error.

use crate::{Env, Value};

/// Compiles and evaluates `src` in the standard environment, keeping
/// compile errors (prefixed `compile:`) and run-time errors apart.
pub(crate) fn eval(src: &str) -> Result<Value<'static>, String> {
    let program = Env::standard().compile(src).map_err(|d| {
        let msgs: Vec<String> = d.iter().map(ToString::to_string).collect();
        format!("compile: {}", msgs.join("; "))
    })?;
    program
        .eval(&())
        .map(|v| v.to_static())
        .map_err(|e| e.message().to_string())
}

/// Same kind and value, all the way down; NaN equals NaN; `-0.0` is not `0.0`.
pub(crate) fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            (x.is_nan() && y.is_nan()) || (x == y && x.is_sign_negative() == y.is_sign_negative())
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(&p, &q))
        }
        _ => a.kind() == b.kind() && a.equals(b),
    }
}

/// `src` compiles but fails at run time with a message containing `needle`.
#[track_caller]
pub(crate) fn check_err(src: &str, needle: &str) {
    let got = eval(src);
    assert!(
        matches!(&got, Err(e) if !e.starts_with("compile:") && e.contains(needle)),
        "{src}: got {got:?}, want a run-time error containing {needle:?}"
    );
}

/// `src` is rejected by the checker.
#[track_caller]
pub(crate) fn check_compile_err(src: &str) {
    let got = eval(src);
    assert!(
        matches!(&got, Err(e) if e.starts_with("compile:")),
        "{src}: got {got:?}, want a compile error"
    );
}
