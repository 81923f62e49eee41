//! Runs the official CEL conformance suite (`tests/data/cel-spec`, vendored
//! from cel-spec with its licence) and compares each file's pass count with
//! the floor recorded in `CONFORMANCE.md`. A drop below a floor fails.
//!
//! Regenerate the table (and so raise the floors) with:
//!
//! ```text
//! UPDATE_CONFORMANCE=1 cargo test -p portcullis-cel --test conformance
//! ```
//!
//! Tests that need protobuf messages (message literals, wrappers, enums,
//! `google.protobuf.*` values) and tests of unknowns are excluded, each
//! counted under its reason: Portcullis has no protobuf runtime.

#![allow(
    clippy::print_stderr,
    reason = "the suite reports its table and failures on stderr"
)]

mod conformance_data;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use conformance_data::model::{self, Decl, Expected, Primitive, Test, WellKnown};
use portcullis_cel::value::{Key, MapData};
use portcullis_cel::{Bindings, CompileOptions, Env, List, Map, ParseOptions, Str, Type, Value};

/// Outcome of one test.
enum Outcome {
    Pass,
    Fail(String),
    Excluded(&'static str),
}

#[derive(Default)]
struct FileStats {
    total: usize,
    excluded: BTreeMap<&'static str, usize>,
    passed: usize,
    failures: Vec<String>,
}

impl FileStats {
    fn run(&self) -> usize {
        self.total - self.excluded.values().sum::<usize>()
    }
}

fn convert_type(t: &model::Type) -> Type {
    use model::Type as M;
    match t {
        M::Dyn
        | M::Error
        | M::Function { .. }
        | M::Abstract { .. }
        | M::Message(_)
        | M::Wrapper(_) => Type::Dyn,
        M::Null => Type::Null,
        M::Primitive(p) => match p {
            Primitive::Bool => Type::Bool,
            Primitive::Int64 => Type::Int,
            Primitive::Uint64 => Type::Uint,
            Primitive::Double => Type::Double,
            Primitive::String => Type::String,
            Primitive::Bytes => Type::Bytes,
        },
        M::WellKnown(WellKnown::Timestamp) => Type::Timestamp,
        M::WellKnown(WellKnown::Duration) => Type::Duration,
        M::WellKnown(WellKnown::Any) => Type::Dyn,
        M::List(e) => Type::list(convert_type(e)),
        M::Map(k, v) => Type::map(convert_type(k), convert_type(v)),
        M::TypeParam(p) => Type::param(p),
        M::Type(t) => Type::type_of(convert_type(t)),
    }
}

fn convert_value(v: &model::Value) -> Option<Value<'static>> {
    use model::Value as M;
    Some(match v {
        M::Null => Value::Null,
        M::Bool(b) => Value::Bool(*b),
        M::Int(i) => Value::Int(*i),
        M::Uint(u) => Value::Uint(*u),
        M::Double(d) => Value::Double(*d),
        M::String(s) => Value::String(Str::Shared(Arc::from(s.as_str()))),
        M::Bytes(b) => Value::Bytes(portcullis_cel::value::Bin::Shared(Arc::from(b.as_slice()))),
        M::List(items) => Value::List(List::Values(
            items
                .iter()
                .map(convert_value)
                .collect::<Option<Vec<_>>>()?
                .into(),
        )),
        M::Map(entries) => {
            let mut out = Vec::new();
            for (k, v) in entries {
                out.push((Key::from_value(&convert_value(k)?)?, convert_value(v)?));
            }
            Value::Map(Map::Values(Arc::new(MapData::from_entries(out).ok()?)))
        }
        M::Type(name) => Value::Type(match name.as_str() {
            "int" => portcullis_cel::Kind::Int,
            "uint" => portcullis_cel::Kind::Uint,
            "double" => portcullis_cel::Kind::Double,
            "bool" => portcullis_cel::Kind::Bool,
            "string" => portcullis_cel::Kind::String,
            "bytes" => portcullis_cel::Kind::Bytes,
            "list" => portcullis_cel::Kind::List,
            "map" => portcullis_cel::Kind::Map,
            "null_type" => portcullis_cel::Kind::Null,
            "type" => portcullis_cel::Kind::Type,
            "google.protobuf.Timestamp" => portcullis_cel::Kind::Timestamp,
            "google.protobuf.Duration" => portcullis_cel::Kind::Duration,
            _ => return None,
        }),
        M::Enum { .. } | M::Object { .. } => return None,
    })
}

/// Strict equality for expected results: same kinds all the way down (the
/// suite distinguishes `1` from `1u`), NaN equal to NaN, maps unordered.
fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => (x.is_nan() && y.is_nan()) || x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(&p, &q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.entries().iter().all(|(k, v)| {
                    y.entries()
                        .iter()
                        .any(|(k2, v2)| same(k, k2) && same(v, v2))
                })
        }
        _ => a.kind() == b.kind() && a.equals(b),
    }
}

fn run_test(test: &Test) -> Outcome {
    if model::mentions_proto(test) {
        return Outcome::Excluded("needs protobuf messages");
    }
    if matches!(
        test.expected,
        Expected::Unknown(_) | Expected::AnyUnknowns(_)
    ) {
        return Outcome::Excluded("needs unknown-value tracking");
    }
    let mut env = Env::standard();
    env.set_container(&test.container);
    let mut ids = BTreeMap::new();
    for decl in &test.type_env {
        match decl {
            Decl::Ident { name, ty } => {
                ids.insert(name.clone(), env.declare_var(name, convert_type(ty)));
            }
            Decl::Function { name, overloads } => {
                for o in overloads {
                    let params: Vec<Type> = o.params.iter().map(convert_type).collect();
                    let ov = if o.member {
                        portcullis_cel::Overload::member(&o.id, params, convert_type(&o.result))
                    } else {
                        portcullis_cel::Overload::global(&o.id, params, convert_type(&o.result))
                    };
                    env.add_function(name, ov);
                }
            }
        }
    }
    let mut bindings = Bindings::new();
    for (name, value) in &test.bindings {
        let id = match ids.get(name) {
            Some(id) => *id,
            None => env.declare_var(name, Type::Dyn),
        };
        let Some(value) = convert_value(value) else {
            return Outcome::Excluded("needs protobuf messages");
        };
        bindings.set(id, value);
    }
    let options = CompileOptions {
        parse: ParseOptions {
            macros: !test.disable_macros,
        },
        check: !test.disable_check,
        expect: None,
    };
    let program = match env.compile_with(&test.expr, &options) {
        Ok(p) => p,
        Err(diags) => {
            let msgs: Vec<String> = diags.iter().map(ToString::to_string).collect();
            return Outcome::Fail(format!("compile: {}", msgs.join("; ")));
        }
    };
    if test.check_only {
        return Outcome::Pass;
    }
    let result = program.eval(&bindings);
    let expected = match &test.expected {
        Expected::Value(v) => Some(v),
        Expected::TypedResult { value, .. } => value.as_ref(),
        Expected::EvalError(_) | Expected::AnyEvalErrors(_) => {
            return match result {
                Err(_) => Outcome::Pass,
                Ok(v) => Outcome::Fail(format!("expected an error, got {}", v.display())),
            };
        }
        Expected::None => None,
        Expected::Unknown(_) | Expected::AnyUnknowns(_) => {
            return Outcome::Excluded("needs unknown-value tracking");
        }
    };
    let want = match expected {
        Some(v) => match convert_value(v) {
            Some(v) => v,
            None => return Outcome::Excluded("needs protobuf messages"),
        },
        None => Value::Bool(true),
    };
    match result {
        Ok(got) if same(&got, &want) => Outcome::Pass,
        Ok(got) => Outcome::Fail(format!("got {}, want {}", got.display(), want.display())),
        Err(e) => Outcome::Fail(format!("error: {e}, want {}", want.display())),
    }
}

fn table(stats: &BTreeMap<String, FileStats>) -> String {
    let mut out = String::new();
    out.push_str(
        "| file | tests | excluded | run | passed | pass rate |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let (mut t, mut x, mut r, mut p) = (0, 0, 0, 0);
    for (name, s) in stats {
        let excluded: usize = s.excluded.values().sum();
        let rate = if s.run() == 0 {
            100.0
        } else {
            100.0 * s.passed as f64 / s.run() as f64
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {excluded} | {} | {} | {rate:.1}% |",
            s.total,
            s.run(),
            s.passed
        );
        t += s.total;
        x += excluded;
        r += s.run();
        p += s.passed;
    }
    let rate = 100.0 * p as f64 / r.max(1) as f64;
    let _ = writeln!(out, "| **total** | {t} | {x} | {r} | {p} | {rate:.1}% |");
    let (mut t, mut x, mut r, mut p) = (0, 0, 0, 0);
    for (_, s) in stats
        .iter()
        .filter(|(name, _)| TARGET.contains(&name.as_str()))
    {
        t += s.total;
        x += s.excluded.values().sum::<usize>();
        r += s.run();
        p += s.passed;
    }
    let rate = 100.0 * p as f64 / r.max(1) as f64;
    let _ = writeln!(
        out,
        "| **target files** | {t} | {x} | {r} | {p} | {rate:.1}% |"
    );
    out
}

/// Recorded floors: the `passed` column of the table in CONFORMANCE.md.
fn floors(doc: &str) -> BTreeMap<String, usize> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?;
            let passed = cells.get(5)?.parse().ok()?;
            (!name.starts_with("**")).then(|| (name.to_string(), passed))
        })
        .collect()
}

/// The files Portcullis aims to pass (the rest are reported, not targeted).
const TARGET: &[&str] = &[
    "basic",
    "plumbing",
    "logic",
    "comparisons",
    "conversions",
    "integer_math",
    "fp_math",
    "lists",
    "fields",
    "macros",
    "macros2",
    "string",
    "string_ext",
    "timestamps",
    "encoders_ext",
    "math_ext",
    "namespace",
    "parse",
];

const BEGIN: &str = "<!-- table: generated by UPDATE_CONFORMANCE=1 cargo test -p portcullis-cel --test conformance -->";
const END: &str = "<!-- end of table -->";

#[test]
fn conformance() {
    let files =
        model::load_all(Path::new(conformance_data::TESTDATA_DIR)).expect("conformance data loads");
    let mut stats: BTreeMap<String, FileStats> = BTreeMap::new();
    for file in &files {
        let s = stats.entry(file.file.clone()).or_default();
        for (section, test) in file.tests() {
            s.total += 1;
            if std::env::var_os("CONFORMANCE_TRACE").is_some() {
                eprintln!("RUN {}/{}/{}", file.file, section.name, test.name);
            }
            // A panic anywhere is a bug; catch it so the report names the test.
            let outcome = std::panic::catch_unwind(|| run_test(test))
                .unwrap_or_else(|_| Outcome::Fail("panicked".to_string()));
            match outcome {
                Outcome::Pass => s.passed += 1,
                Outcome::Excluded(why) => *s.excluded.entry(why).or_default() += 1,
                Outcome::Fail(why) => s.failures.push(format!(
                    "{}/{}/{}: `{}`: {why}",
                    file.file, section.name, test.name, test.expr
                )),
            }
        }
    }
    let failures: Vec<&String> = stats.values().flat_map(|s| &s.failures).collect();
    if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
        for f in &failures {
            eprintln!("FAIL {f}");
        }
    }
    let generated = table(&stats);
    eprintln!("{generated}");
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("CONFORMANCE.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    if std::env::var_os("UPDATE_CONFORMANCE").is_some() {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for s in stats.values() {
            for (why, n) in &s.excluded {
                *reasons.entry(why).or_default() += n;
            }
        }
        let mut excluded = String::new();
        for (why, n) in reasons {
            let _ = writeln!(excluded, "- {why}: {n} tests");
        }
        let head = doc.split(BEGIN).next().unwrap_or("").to_string();
        let tail = doc.split(END).nth(1).unwrap_or("\n").to_string();
        let body = format!("{BEGIN}\n{generated}\nExcluded, by reason:\n\n{excluded}{END}");
        std::fs::write(&doc_path, format!("{head}{body}{tail}"))
            .expect("CONFORMANCE.md is writable");
        return;
    }
    let floors = floors(&doc);
    let mut regressions = Vec::new();
    for (name, s) in &stats {
        let floor = floors.get(name).copied().unwrap_or(0);
        if s.passed < floor {
            regressions.push(format!("{name}: {} passed, floor {floor}", s.passed));
        }
    }
    assert!(
        regressions.is_empty(),
        "conformance regressed:\n{}\n(run with CONFORMANCE_VERBOSE=1 to list failures)",
        regressions.join("\n")
    );
}
