//! Checker tests, written as users meet the checker: an expression, the
//! message and help they read, and the text that is underlined.

use crate::{CompileOptions, Env, Type};

/// An environment shaped like ngrok's: `req.url` is a string and also has
/// fields, which are variables of their own.
fn env() -> Env {
    let mut env = Env::standard();
    env.declare_var("req.method", Type::String);
    env.declare_var("req.url", Type::String);
    env.declare_var("req.url.path", Type::String);
    env.declare_var("req.url.port", Type::Int);
    env.declare_var(
        "req.headers",
        Type::map(Type::String, Type::list(Type::String)),
    );
    env.declare_var("res.status_code", Type::Int);
    env
}

/// Checks `src` as a condition and returns `(message, help, underlined text)`
/// of the single diagnostic.
fn check_err(src: &str) -> (String, Option<String>, String) {
    let options = CompileOptions {
        expect: Some(Type::Bool),
        ..CompileOptions::default()
    };
    let (_, diags) = env().check(src, &options);
    assert_eq!(diags.len(), 1, "{src}: {diags:?}");
    let d = &diags[0];
    (
        d.message.clone(),
        d.help.clone(),
        src[d.span.range()].to_string(),
    )
}

fn check_ok(src: &str) -> Type {
    let options = CompileOptions::default();
    let (checked, diags) = env().check(src, &options);
    assert!(diags.is_empty(), "{src}: {diags:?}");
    checked.map(|c| c.ty).unwrap_or(Type::Error)
}

#[test]
fn dual_natured_variables_resolve_to_the_longest_name() {
    assert_eq!(check_ok("req.url.startsWith('https://')"), Type::Bool);
    assert_eq!(check_ok("req.url.path"), Type::String);
    assert_eq!(check_ok("req.url.port + 1"), Type::Int);
    assert_eq!(check_ok("req.headers['x-roles']"), Type::list(Type::String));
    assert_eq!(check_ok("[1, 2].map(req, req * 2)"), Type::list(Type::Int));
}

#[test]
fn typos_get_suggestions() {
    let (msg, help, text) = check_err("req.mehtod == 'GET'");
    assert_eq!(msg, "undeclared reference to `req.mehtod`");
    assert_eq!(help.as_deref(), Some("did you mean `req.method`?"));
    assert_eq!(text, "req.mehtod");

    let (msg, help, text) = check_err("req.url.path.startWith('/api')");
    assert_eq!(msg, "unknown function `startWith`");
    assert_eq!(help.as_deref(), Some("did you mean `startsWith`?"));
    assert_eq!(text, "startWith");

    // Other languages' names, too far for an edit distance.
    for (written, cel) in [
        ("includes", "contains"),
        ("toLowerCase", "lowerAscii"),
        ("length", "size"),
    ] {
        let (_, help, _) = check_err(&format!("req.url.path.{written}('a') == true"));
        assert_eq!(
            help.as_deref(),
            Some(format!("did you mean `{cel}`?").as_str()),
            "{written}"
        );
    }
}

#[test]
fn wrong_argument_types_are_reported() {
    let (msg, help, text) = check_err("res.status_code < '200'");
    assert_eq!(msg, "no matching overload for `int < string`");
    assert!(help.is_some_and(|h| h.contains("convert one")));
    assert_eq!(text, "res.status_code < '200'");

    let (msg, _, _) = check_err("req.method.startsWith(1)");
    assert_eq!(msg, "no matching overload for `string.startsWith(int)`");
}

#[test]
fn conditions_must_be_bool() {
    let (msg, _, text) = check_err("req.url.port + 1");
    assert_eq!(msg, "expected `bool`, found `int`");
    assert_eq!(text, "req.url.port + 1");
    let (msg, _, _) = check_err("[1].all(x, x + 1)");
    assert_eq!(msg, "the predicate of `all` must be `bool`, not `int`");
}

#[test]
fn invalid_regex_literals_fail_at_compile_time() {
    let diags = env()
        .compile("req.method.matches('(')")
        .err()
        .unwrap_or_default();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].message, "invalid regular expression");
}

#[test]
fn comprehensions_have_a_cost_limit() {
    let env = Env::standard();
    let src = "[0,1,2,3,4,5,6,7,8,9].all(a, [0,1,2,3,4,5,6,7,8,9].all(b, [0,1,2,3,4,5,6,7,8,9].all(c, a + b + c >= 0)))";
    let program = env.compile(src).map_err(|d| format!("{d:?}")).unwrap();
    assert_eq!(program.eval_bool(&()), Ok(true));
    let limited = env
        .compile(src)
        .map_err(|d| format!("{d:?}"))
        .unwrap()
        .with_budget(500);
    let err = limited.eval(&()).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("evaluation cost limit exceeded"));
}

#[test]
fn values_built_during_evaluation_are_bounded() {
    let env = Env::standard();
    // Chained replacements would build 10^10 bytes.
    let src = format!("'a'{}.size()", ".replace('a', 'aaaaaaaaaa')".repeat(10));
    let err = env
        .compile(&src)
        .map_err(|d| format!("{d:?}"))
        .unwrap()
        .eval(&())
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.starts_with("value too large")));
    // Doubling through nested `map` would build 2^33 bytes.
    let mut src = "['ab']".to_string();
    for _ in 0..32 {
        src = format!("[{src}.map(v, v + v)[0]]");
    }
    let err = env
        .compile(&format!("{src}[0].size()"))
        .map_err(|d| format!("{d:?}"))
        .unwrap()
        .eval(&())
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.starts_with("value too large")));
}
