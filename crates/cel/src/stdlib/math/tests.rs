//! Tests of the math extension: values, ties across numeric kinds, errors.

use crate::Value;
use crate::stdlib::testing::{check_compile_err, check_err, eval, same};

#[track_caller]
fn check(src: &str, want: Value<'static>) {
    let got = eval(src);
    assert!(
        matches!(&got, Ok(v) if same(v, &want)),
        "{src}: got {got:?}, want {want:?}"
    );
}

#[track_caller]
fn check_true(src: &str) {
    check(src, Value::Bool(true));
}

#[test]
fn greatest_single_and_pairs() {
    check("math.greatest(-5)", Value::Int(-5));
    check("math.greatest(5u)", Value::Uint(5));
    check("math.greatest(-5.0)", Value::Double(-5.0));
    check("math.greatest(1, 1)", Value::Int(1));
    check("math.greatest(3, -3)", Value::Int(3));
    check(
        "math.greatest(9223372036854775807, 1)",
        Value::Int(i64::MAX),
    );
    check("math.greatest(1, -9223372036854775808)", Value::Int(1));
    check("math.greatest(5u, -7)", Value::Uint(5));
    check("math.greatest(-3, 3u)", Value::Uint(3));
    check(
        "math.greatest(18446744073709551615u, 1u)",
        Value::Uint(u64::MAX),
    );
    check(
        "math.greatest(1, 1.797693e308)",
        Value::Double(1.797693e308),
    );
    check("math.greatest(1.5, -1.797693e308)", Value::Double(1.5));
}

#[test]
fn ties_keep_the_first_argument() {
    check("math.greatest(1, 1.0)", Value::Int(1));
    check("math.greatest(1.0, 1)", Value::Double(1.0));
    check("math.greatest(1u, 1, 1.0)", Value::Uint(1));
    check("math.least(1.0, 1u, 1u)", Value::Double(1.0));
    check("math.least([1u, 1, 1.0])", Value::Uint(1));
}

#[test]
fn greatest_and_least_variadic_and_lists() {
    check(
        "math.greatest(5.4, 10, 3u, -5.0, 9223372036854775807)",
        Value::Int(i64::MAX),
    );
    check(
        "math.greatest(5.4, 10, 3u, -5.0, 18446744073709551615u)",
        Value::Uint(u64::MAX),
    );
    check("math.greatest([5.4, 10, 3u, -5.0, 3.5])", Value::Int(10));
    check(
        "math.greatest([dyn(5.4), dyn(10.5), dyn(3u), dyn(-5.0), dyn(3.5)])",
        Value::Double(10.5),
    );
    check(
        "math.least(5.4, 10, 3u, -5.0, 9223372036854775807)",
        Value::Double(-5.0),
    );
    check("math.least([5.4, 10u, 3u, 1u, 3.5])", Value::Uint(1));
    check(
        "math.least(-9223372036854775808, -1, -5)",
        Value::Int(i64::MIN),
    );
    check(
        "math.least(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0)",
        Value::Int(0),
    );
    check("math.greatest([1])", Value::Int(1));
    check_true("math.greatest(1, 2, 3) + 1 == 4");
    check_true("math.least([3, 1, 2]) + 1 == 2");
}

#[test]
fn greatest_and_least_errors() {
    check_err("math.greatest(dyn('a'))", "overload");
    check_err("math.greatest([dyn('a'), 1])", "not a number");
    check_err("math.least(1, 2, dyn('x'))", "overload");
    check_err("math.greatest(dyn([]))", "must not be empty");
    check_err("math.least(1.0, 0.0/0.0)", "NaN");
    check_err("math.greatest([1, 0.0/0.0, 2])", "NaN");
    check("math.greatest([0.0/0.0])", Value::Double(f64::NAN));
    check_compile_err("math.greatest('a')");
    check_compile_err("math.greatest('a', 1)");
    check_compile_err("math.greatest(['a'])");
    check_compile_err("math.greatest()");
}

#[test]
fn rounding() {
    check("math.ceil(-1.2)", Value::Double(-1.0));
    check("math.ceil(1.2)", Value::Double(2.0));
    check("math.floor(-1.2)", Value::Double(-2.0));
    check("math.floor(1.2)", Value::Double(1.0));
    check("math.round(-1.5)", Value::Double(-2.0));
    check("math.round(1.5)", Value::Double(2.0));
    check("math.round(-1.4)", Value::Double(-1.0));
    check("math.round(2.5)", Value::Double(3.0));
    check("math.trunc(-1.2)", Value::Double(-1.0));
    check("math.trunc(1.9)", Value::Double(1.0));
    check_true("math.isNaN(math.round(0.0/0.0))");
    check_true("math.isNaN(math.trunc(0.0/0.0))");
    check_err("math.ceil(dyn(1))", "overload");
    check_err("math.floor(dyn(1u))", "overload");
    check_err("math.round(dyn(1))", "overload");
    check_err("math.trunc(dyn(1))", "overload");
    check_compile_err("math.ceil(1)");
}

#[test]
fn abs_and_sign() {
    check("math.abs(1u)", Value::Uint(1));
    check("math.abs(-11)", Value::Int(11));
    check("math.abs(-11.5)", Value::Double(11.5));
    check("math.abs(-0.0)", Value::Double(0.0));
    check_err("math.abs(-9223372036854775808)", "overflow");
    check("math.sign(100u)", Value::Uint(1));
    check("math.sign(0u)", Value::Uint(0));
    check("math.sign(-11)", Value::Int(-1));
    check("math.sign(0)", Value::Int(0));
    check("math.sign(100.5)", Value::Double(1.0));
    check("math.sign(-32.0)", Value::Double(-1.0));
    check("math.sign(-0.0)", Value::Double(0.0));
    check("math.sign(0.0/0.0)", Value::Double(f64::NAN));
    check_err("math.sign(dyn(true))", "overload");
}

#[test]
fn floating_point_predicates() {
    check_true("math.isNaN(0.0/0.0)");
    check_true("!math.isNaN(1.0/0.0)");
    check_true("math.isInf(1.0/0.0)");
    check_true("math.isInf(-1.0/0.0)");
    check_true("!math.isInf(0.0/0.0)");
    check_true("math.isFinite(1.0/1.5)");
    check_true("!math.isFinite(0.0/0.0)");
    check_true("!math.isFinite(-1.0/0.0)");
    check_err("math.isNaN(dyn(true))", "overload");
    check_err("math.isInf(dyn(1))", "overload");
    check_err("math.isFinite(dyn(1u))", "overload");
}

#[test]
fn bitwise() {
    check("math.bitAnd(1, 3)", Value::Int(1));
    check("math.bitAnd(1, -1)", Value::Int(1));
    check("math.bitAnd(1u, 2u)", Value::Uint(0));
    check("math.bitOr(4, -2)", Value::Int(-2));
    check("math.bitOr(1u, 4u)", Value::Uint(5));
    check("math.bitXor(4, -2)", Value::Int(-6));
    check("math.bitXor(1u, 3u)", Value::Uint(2));
    check("math.bitNot(1)", Value::Int(-2));
    check("math.bitNot(-1)", Value::Int(0));
    check("math.bitNot(0u)", Value::Uint(u64::MAX));
    check("math.bitNot(1u)", Value::Uint(u64::MAX - 1));
    check_err("math.bitAnd(2u, dyn(''))", "overload");
    check_err("math.bitOr(dyn(1.2), 1)", "overload");
    check_err("math.bitXor(dyn([]), dyn([1]))", "overload");
    check_err("math.bitNot(dyn(''))", "overload");
    check_compile_err("math.bitAnd(1, 1u)");
}

#[test]
fn shifts() {
    check("math.bitShiftLeft(1, 2)", Value::Int(4));
    check("math.bitShiftLeft(-1, 2)", Value::Int(-4));
    check("math.bitShiftLeft(1, 63)", Value::Int(i64::MIN));
    check("math.bitShiftLeft(1, 64)", Value::Int(0));
    check("math.bitShiftLeft(-1, 200)", Value::Int(0));
    check("math.bitShiftLeft(1u, 2)", Value::Uint(4));
    check("math.bitShiftLeft(1u, 200)", Value::Uint(0));
    check("math.bitShiftRight(1024, 2)", Value::Int(256));
    check("math.bitShiftRight(1024, 64)", Value::Int(0));
    check(
        "math.bitShiftRight(-1024, 3)",
        Value::Int(2305843009213693824),
    );
    check("math.bitShiftRight(-1, 63)", Value::Int(1));
    check("math.bitShiftRight(-1024, 64)", Value::Int(0));
    check("math.bitShiftRight(1024u, 2)", Value::Uint(256));
    check(
        "math.bitShiftRight(1024u, 9223372036854775807)",
        Value::Uint(0),
    );
    check_err("math.bitShiftLeft(1u, -1)", "negative offset");
    check_err("math.bitShiftRight(1, -1)", "negative offset");
    check_err("math.bitShiftLeft(dyn(4.3), 1)", "overload");
    check_err("math.bitShiftRight(dyn(b'123'), 1)", "overload");
    check_compile_err("math.bitShiftLeft(1, 1u)");
}

#[test]
fn sqrt() {
    check("math.sqrt(4.0)", Value::Double(2.0));
    check("math.sqrt(81)", Value::Double(9.0));
    check("math.sqrt(16u)", Value::Double(4.0));
    check("math.sqrt(-1)", Value::Double(f64::NAN));
    check("math.sqrt(1.0/0.0)", Value::Double(f64::INFINITY));
    check_err("math.sqrt(dyn('4'))", "overload");
}

#[test]
fn runtime_dispatch_through_dyn() {
    check("math.abs(dyn(-3))", Value::Int(3));
    check("math.abs(dyn(-3.5))", Value::Double(3.5));
    check("math.bitAnd(dyn(6u), dyn(3u))", Value::Uint(2));
    check("math.greatest(dyn(1), 2u)", Value::Uint(2));
}
