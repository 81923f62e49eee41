//! `portcullis cel` end to end: the real binary, its output and its exit
//! status, as a user at a terminal or a CI script sees them.

use std::process::{Command, Output};

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the portcullis binary runs")
}

/// A variables file under the test's scratch directory, removed on drop.
struct VarsFile(std::path::PathBuf);

impl VarsFile {
    fn arg(&self) -> &str {
        self.0.to_str().expect("utf-8 path")
    }
}

impl Drop for VarsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn vars_file(json: &str) -> VarsFile {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("vars-{}-{n}.json", std::process::id()));
    std::fs::write(&path, json).expect("scratch file written");
    VarsFile(path)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn evaluates_a_policy_condition_against_json_variables() {
    let vars = vars_file(
        r#"{"req.method": "POST", "req.url.path": "/api/x", "req.headers": {"x-roles": ["admin"]}}"#,
    );
    let out = portcullis(&[
        "cel",
        "req.method == 'POST' && req.url.path.startsWith('/api') && 'admin' in req.headers['x-roles']",
        "--vars",
        vars.arg(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "true");
}

#[test]
fn prints_values_as_json() {
    let out = portcullis(&[
        "cel",
        "{'a': [1, 2.5, 'x', null], 'b': b'hi', 'c': duration('90s')}",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert_eq!(
        json,
        serde_json::json!({"a": [1, 2.5, "x", null], "b": "aGk=", "c": "90s"})
    );
}

#[test]
fn a_type_mistake_is_a_diagnostic_with_code_and_help() {
    let vars = vars_file(r#"{"res.status_code": 200}"#);
    let out = portcullis(&["cel", "res.status_code < '200'", "--vars", vars.arg()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.contains("E0012"), "{err}");
    assert!(
        err.contains("no matching overload for `int < string`"),
        "{err}"
    );
    assert!(
        err.contains("res.status_code < '200'"),
        "the source is shown: {err}"
    );
}

#[test]
fn a_typo_gets_a_suggestion() {
    let vars = vars_file(r#"{"req.method": "GET"}"#);
    let out = portcullis(&["cel", "req.mehtod == 'GET'", "--vars", vars.arg()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did you mean `req.method`?"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_runtime_error_exits_1_with_the_message() {
    let out = portcullis(&["cel", "{'a': 1}['b'] == 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no such key"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(portcullis(&["cel"]).status.code(), Some(2));
    let out = portcullis(&["cel", "1", "--vars", "/nonexistent/vars.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
    let bad = vars_file("[1, 2]");
    let out = portcullis(&["cel", "1", "--vars", bad.arg()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("must hold a JSON object"),
        "{}",
        stderr(&out)
    );
}

/// An expression that starts with `-` is the expression, not a flag,
/// wherever `--vars` stands.
#[test]
fn an_expression_may_start_with_a_minus() {
    for (expr, want) in [("-7 / 2", "-3"), ("-(-1)", "1"), ("--1", "1")] {
        let out = portcullis(&["cel", expr]);
        assert!(
            out.status.success(),
            "{expr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout(&out).trim(), want, "{expr}");
    }
    let vars = vars_file(r#"{"x": 2}"#);
    let out = portcullis(&["cel", "-x", "--vars", vars.arg()]);
    assert_eq!(stdout(&out).trim(), "-2");
    let out = portcullis(&["cel", "--vars", vars.arg(), "-x"]);
    assert_eq!(stdout(&out).trim(), "-2");
}
