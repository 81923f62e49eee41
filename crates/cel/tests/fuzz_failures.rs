//! Every input the fuzzers found (`tests/data/fuzz-failures/<target>-<name>.txt`)
//! replayed through the steps of its target: each ends in a value, a
//! diagnostic or an evaluation error, with spans inside the input.

use portcullis_cel::{Bindings, CompileOptions, Env, Type, Value};

/// The environment of `fuzz/fuzz_targets/fuzz_cel_eval.rs`.
fn eval_env() -> (Env, Bindings) {
    let mut env = Env::standard();
    let mut vars = Bindings::new();
    let x = env.declare_var("x", Type::Int);
    vars.set(x, Value::Int(7));
    let s = env.declare_var("req.url.path", Type::String);
    vars.set(s, Value::string("/api/v1"));
    let l = env.declare_var("l", Type::list(Type::Int));
    vars.set(l, Value::list(vec![Value::Int(1), Value::Int(2)]));
    (env, vars)
}

#[test]
fn fuzz_failures_stay_fixed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fuzz-failures");
    let mut n = 0;
    for entry in std::fs::read_dir(dir)
        .expect("fuzz-failures folder")
        .flatten()
    {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = std::fs::read(&path).expect("readable");
        let Ok(src) = std::str::from_utf8(&bytes) else {
            continue;
        };
        n += 1;
        if let Err(d) = portcullis_cel::syntax::parse(src) {
            assert!(
                d.span.end as usize <= src.len(),
                "{name}: span {:?} past the end",
                d.span
            );
        }
        if name.starts_with("fuzz_cel_eval") {
            let (env, vars) = eval_env();
            for check in [true, false] {
                let options = CompileOptions {
                    check,
                    ..CompileOptions::default()
                };
                if let Ok(program) = env.compile_with(src, &options) {
                    // Reaching the end is the assertion: no panic, no hang, no
                    // out-of-memory.
                    let _ = program.with_budget(10_000).eval(&vars);
                }
            }
        }
    }
    assert!(n > 0, "no fuzz failure files in {dir}");
}
