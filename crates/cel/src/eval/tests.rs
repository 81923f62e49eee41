//! Evaluator internals that the conformance suite cannot see.
#![allow(clippy::panic, reason = "a test fails by panicking")]

use super::str_eq;

#[test]
fn str_eq_agrees_with_equality_at_every_length_and_position() {
    for len in 0..40u8 {
        let a: String = (0..len).map(|i| char::from(b'a' + i % 26)).collect();
        assert!(str_eq(&a, &a.clone()));
        for pos in 0..usize::from(len) {
            let b: String = a
                .chars()
                .enumerate()
                .map(|(i, c)| if i == pos { '#' } else { c })
                .collect();
            assert!(!str_eq(&a, &b), "len {len}, differing at {pos}");
        }
        assert!(!str_eq(&a, &format!("{a}x")));
    }
}

// === conditions (`cond.rs`) ===

use crate::value::{Map, MultiMap, Str, Value};
use crate::{Activation, Bindings, Env, Type, VarId};

/// `s`, `t`: strings (`s` never set); `d`: dyn; `l`: list(dyn); `m`: a
/// caller's multi-map.
struct Vars {
    env: Env,
    t: VarId,
    d: VarId,
    l: VarId,
    m: VarId,
}

fn vars() -> Vars {
    let mut env = Env::standard();
    env.declare_var("s", Type::String);
    let t = env.declare_var("t", Type::String);
    let d = env.declare_var("d", Type::Dyn);
    let l = env.declare_var("l", Type::list(Type::Dyn));
    let m = env.declare_var("m", Type::map(Type::String, Type::list(Type::String)));
    Vars { env, t, d, l, m }
}

/// Query parameters `debug=1&page=2&debug=3`: a key may repeat.
struct Params;

impl MultiMap for Params {
    fn key_count(&self) -> usize {
        2
    }
    fn key_at(&self, index: usize) -> Option<&str> {
        ["debug", "page"].get(index).copied()
    }
    fn count(&self, key: &str) -> usize {
        match key {
            "debug" => 2,
            "page" => 1,
            _ => 0,
        }
    }
    fn value(&self, key: &str, index: usize) -> Option<&str> {
        match (key, index) {
            ("debug", 0) => Some("1"),
            ("debug", 1) => Some("3"),
            ("page", 0) => Some("2"),
            _ => None,
        }
    }
}

/// The bindings, plus `m` as [`Params`].
struct Act(Bindings, VarId);

impl Activation for Act {
    fn resolve(&self, var: VarId) -> Option<Value<'_>> {
        if var == self.1 {
            return Some(Value::Map(Map::Multi(&Params)));
        }
        self.0.resolve(var)
    }
}

/// Evaluates `src` both ways (`eval_bool` runs the condition tree, `eval`
/// its value) and requires them to agree.
fn run(v: &Vars, act: &Act, src: &str) -> Result<bool, String> {
    let program = v
        .env
        .compile(src)
        .unwrap_or_else(|d| panic!("{src}: {d:?}"));
    let as_bool = program.eval_bool(act).map_err(|e| e.to_string());
    let as_value = match program.eval(act) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => panic!("{src}: not a bool: {other:?}"),
        Err(e) => Err(e.to_string()),
    };
    assert_eq!(as_bool, as_value, "{src}: eval_bool and eval disagree");
    as_bool
}

/// `s` unset (reading it fails), `t = 'b'`, `d = 1`, `l = [1, 'abc']`.
fn act(v: &Vars) -> Act {
    let mut b = Bindings::new();
    b.set(v.t, Value::String(Str::Shared("b".into())));
    b.set(v.d, Value::Int(1));
    b.set(
        v.l,
        Value::list(vec![
            Value::Int(1),
            Value::String(Str::Shared("abc".into())),
        ]),
    );
    Act(b, v.m)
}

#[test]
fn chains_absorb_errors_as_cel_and_or_do() {
    let v = vars();
    let a = act(&v);
    // A false anywhere in an `&&` chain wins over an error before it.
    assert_eq!(run(&v, &a, "s == 'a' && t == 'x' && t == 'b'"), Ok(false));
    assert_eq!(run(&v, &a, "t == 'b' && s == 'a' && t == 'x'"), Ok(false));
    // No false: the error stands.
    let result = run(&v, &a, "t == 'b' && s == 'a' && t.startsWith('b')");
    assert!(
        result.as_ref().is_err_and(|e| e.contains("`s`")),
        "{result:?}"
    );
    // The same for `||` and true.
    assert_eq!(run(&v, &a, "s == 'a' || t == 'x' || t == 'b'"), Ok(true));
    assert!(run(&v, &a, "s == 'a' || t == 'x'").is_err());
    assert_eq!(run(&v, &a, "t == 'x' || t.endsWith('b')"), Ok(true));
}

#[test]
fn neighbouring_string_predicates_on_one_variable_keep_chain_semantics() {
    let v = vars();
    let a = act(&v);
    // Grouped: `t` is read once, the answers are the chain's.
    assert_eq!(
        run(&v, &a, "t.startsWith('a') || t.startsWith('b')"),
        Ok(true)
    );
    assert_eq!(
        run(&v, &a, "t.startsWith('a') || t.endsWith('c')"),
        Ok(false)
    );
    assert_eq!(
        run(&v, &a, "t.startsWith('b') && t.endsWith('b')"),
        Ok(true)
    );
    assert_eq!(
        run(&v, &a, "t.startsWith('b') && t.contains('x')"),
        Ok(false)
    );
    // Runs broken by another term, and runs on two variables.
    let src = "t.startsWith('x') || d == 1 || t.startsWith('y') || t.endsWith('b')";
    assert_eq!(run(&v, &a, src), Ok(true));
    let src = "t.startsWith('x') || s.startsWith('y') || t.endsWith('z')";
    assert!(run(&v, &a, src).is_err_and(|e| e.contains("`s`")));
    // A run on an absent or non-string variable fails as its terms do; a
    // deciding term elsewhere in the chain still wins.
    assert!(run(&v, &a, "s.startsWith('a') || s.startsWith('b')").is_err());
    assert!(run(&v, &a, "d.startsWith('a') || d.startsWith('b')").is_err());
    assert_eq!(
        run(&v, &a, "s.startsWith('a') || s.endsWith('b') || t == 'b'"),
        Ok(true)
    );
    assert_eq!(
        run(&v, &a, "d.startsWith('a') && d.endsWith('b') && t == 'x'"),
        Ok(false)
    );
}

#[test]
fn negated_leaves_keep_cel_semantics() {
    let v = vars();
    let a = act(&v);
    assert_eq!(run(&v, &a, "!(t in ['a', 'b'])"), Ok(false));
    assert_eq!(run(&v, &a, "!(t in ['a', 'c'])"), Ok(true));
    assert_eq!(run(&v, &a, "t != 'b'"), Ok(false));
    assert_eq!(run(&v, &a, "!(t == 'x')"), Ok(true));
    assert_eq!(run(&v, &a, "!!(t == 'b')"), Ok(true));
    // Heterogeneous: an int is never equal to, nor in a list of, strings.
    assert_eq!(run(&v, &a, "d == 'b'"), Ok(false));
    assert_eq!(run(&v, &a, "d != 'b'"), Ok(true));
    assert_eq!(run(&v, &a, "!(d in ['1'])"), Ok(true));
    // An absent variable is an error, negated or not.
    assert!(run(&v, &a, "s != 'b'").is_err());
    assert!(run(&v, &a, "!(s in ['b'])").is_err());
}

#[test]
fn membership_of_a_constant_in_a_variable() {
    let v = vars();
    let a = act(&v);
    assert_eq!(run(&v, &a, "'page' in m"), Ok(true));
    assert_eq!(run(&v, &a, "'sort' in m"), Ok(false));
    assert_eq!(run(&v, &a, "!('sort' in m)"), Ok(true));
    assert_eq!(run(&v, &a, "'abc' in l"), Ok(true));
    assert_eq!(run(&v, &a, "!('abc' in l)"), Ok(false));
    // Neither a map nor a list: an error, negated or not.
    assert!(run(&v, &a, "'1' in d").is_err());
    assert!(run(&v, &a, "!('1' in d)").is_err());
}

#[test]
fn quantifiers_over_a_callers_multi_map_see_each_key_once() {
    let v = vars();
    let a = act(&v);
    assert_eq!(run(&v, &a, "m.exists(k, k.startsWith('de'))"), Ok(true));
    assert_eq!(run(&v, &a, "m.exists(k, k.startsWith('zz'))"), Ok(false));
    assert_eq!(run(&v, &a, "m.all(k, k.size() >= 4)"), Ok(true));
    assert_eq!(run(&v, &a, "m.all(k, k.startsWith('de'))"), Ok(false));
    assert_eq!(run(&v, &a, "m.exists_one(k, k == 'debug')"), Ok(true));
    assert_eq!(
        run(&v, &a, "m.exists(k, v, k == 'page' && '2' in v)"),
        Ok(true)
    );
    assert_eq!(
        run(&v, &a, "'3' in m['debug'] && !('2' in m['debug'])"),
        Ok(true)
    );
}

#[test]
fn quantifiers_absorb_errors_in_their_body() {
    let v = vars();
    let a = act(&v);
    // `1.startsWith` fails; `'abc'` decides `exists`, and `all` fails.
    assert_eq!(run(&v, &a, "l.exists(x, x.startsWith('a'))"), Ok(true));
    assert!(run(&v, &a, "l.exists(x, x.startsWith('z'))").is_err());
    assert!(run(&v, &a, "l.all(x, x.startsWith('a'))").is_err());
    assert_eq!(run(&v, &a, "l.all(x, x.startsWith('z'))"), Ok(false));
}
