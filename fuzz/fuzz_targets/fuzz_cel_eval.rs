//! Arbitrary text through parse, check, compile and evaluate against a few
//! declared variables, checked and unchecked: every step ends in a value,
//! a diagnostic or an evaluation error, never a panic, and the cost limit
//! keeps every evaluation short. `eval_bool` agrees with `eval`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_cel::{Bindings, CompileOptions, Env, Type, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let mut env = Env::standard();
    let mut vars = Bindings::new();
    let x = env.declare_var("x", Type::Int);
    vars.set(x, Value::Int(7));
    let s = env.declare_var("req.url.path", Type::String);
    vars.set(s, Value::string("/api/v1"));
    let l = env.declare_var("l", Type::list(Type::Int));
    vars.set(l, Value::list(vec![Value::Int(1), Value::Int(2)]));
    for check in [true, false] {
        let options = CompileOptions { check, ..CompileOptions::default() };
        if let Ok(program) = env.compile_with(src, &options) {
            let program = program.with_budget(10_000);
            // `eval_bool` runs boolean programs as a condition tree and
            // must agree with `eval`: the same bool, or an error for both
            // (a non-bool value is an error to `eval_bool`).
            match (program.eval(&vars), program.eval_bool(&vars)) {
                (Ok(Value::Bool(a)), Ok(b)) => assert_eq!(a, b, "{src}"),
                (Ok(Value::Bool(a)), Err(e)) => panic!("{src}: eval {a}, eval_bool {e}"),
                (_, Ok(b)) => panic!("{src}: eval_bool {b} where eval is not a bool"),
                (_, Err(_)) => {}
            }
        }
    }
});
