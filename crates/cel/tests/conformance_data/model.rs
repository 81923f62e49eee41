//! A typed view of the CEL conformance test files.
//!
//! Each `testdata/*.textproto` file is a text-format
//! `cel.expr.conformance.test.SimpleTestFile` (schema in
//! `proto/cel/expr/conformance/test/simple.proto`, with `checked.proto`,
//! `eval.proto` and `value.proto` beside it). [`load`] parses one with the
//! schema-less reader in the sibling `textproto` module and converts it into
//! the plain Rust types below.
//!
//! The conversion is strict: a field this model does not know, a repeated
//! singular field, a scalar of the wrong kind, or a `oneof` with two members
//! set makes [`load`] fail with the path of the offending field, so a schema
//! feature that the data starts using is noticed instead of silently
//! dropped. Only documentation fields are ignored deliberately: `doc` in
//! declarations and overloads (the files' own `description` fields are kept).
//!
//! Protobuf message values (`object_value`, a `google.protobuf.Any`) are not
//! decoded against their schema; [`Value::Object`] keeps the type URL and the
//! raw text-format message.
//!
//! This module refers to the reader as `super::textproto`, so it must be
//! declared next to it (as `conformance_data.rs` does).

use std::fmt;
use std::path::Path;

use super::textproto::{self, Message, Val};

/// One test file (`SimpleTestFile`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TestFile {
    /// The file name without `.textproto` (e.g. `"type_deduction"`). This
    /// can differ from [`TestFile::name`].
    pub(crate) file: String,
    /// The `name` field written in the file (e.g. `"type_deductions"`).
    pub(crate) name: String,
    /// The file's description.
    pub(crate) description: String,
    /// The sections, in file order.
    pub(crate) sections: Vec<Section>,
}

/// A group of related tests (`SimpleTestSection`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Section {
    /// The section name.
    pub(crate) name: String,
    /// The section description.
    pub(crate) description: String,
    /// The tests, in file order.
    pub(crate) tests: Vec<Test>,
}

/// One conformance test (`SimpleTest`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Test {
    /// The test name, unique within its file.
    pub(crate) name: String,
    /// The test description.
    pub(crate) description: String,
    /// The CEL source text.
    pub(crate) expr: String,
    /// Parse without macro expansion.
    pub(crate) disable_macros: bool,
    /// Skip the type-check phase.
    pub(crate) disable_check: bool,
    /// Only type-check; do not evaluate.
    pub(crate) check_only: bool,
    /// The container (namespace) for name resolution; empty if none.
    pub(crate) container: String,
    /// The locale for evaluation; empty if none (unused by the data).
    pub(crate) locale: String,
    /// Declarations for the type checker.
    pub(crate) type_env: Vec<Decl>,
    /// Variable bindings for evaluation, in file order.
    pub(crate) bindings: Vec<(String, Value)>,
    /// The expected outcome.
    pub(crate) expected: Expected,
}

/// What a test expects (the `result_matcher` oneof).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expected {
    /// `value`: evaluation yields this value (maps compare order-agnostic,
    /// any NaN matches any NaN).
    Value(Value),
    /// `typed_result`: the checker deduces `deduced_type`, and evaluation
    /// (unless `check_only`) yields `value` when given.
    TypedResult {
        /// The expected value, if any.
        value: Option<Value>,
        /// The type the checker must deduce.
        deduced_type: Type,
    },
    /// `eval_error`: evaluation fails; the expected error messages (the
    /// messages are informative, implementations word errors differently).
    EvalError(Vec<String>),
    /// `any_eval_errors`: evaluation fails with one of these error sets
    /// (each a list of messages). Unused by the data.
    AnyEvalErrors(Vec<Vec<String>>),
    /// `unknown`: evaluation yields unknown for these expression ids.
    /// Unused by the data.
    Unknown(Vec<i64>),
    /// `any_unknowns`: evaluation yields one of these unknown sets.
    /// Unused by the data.
    AnyUnknowns(Vec<Vec<i64>>),
    /// No matcher given: the spec says the result must be `true`.
    None,
}

/// A type-checker declaration (`cel.expr.Decl`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decl {
    /// A variable (or constant name) of the given type.
    Ident {
        /// The fully qualified name.
        name: String,
        /// Its type.
        ty: Type,
    },
    /// A function with its overloads.
    Function {
        /// The function name.
        name: String,
        /// The overloads.
        overloads: Vec<Overload>,
    },
}

/// One function overload (`cel.expr.Decl.FunctionDecl.Overload`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Overload {
    /// The overload id, e.g. `"fn_string_int"`.
    pub(crate) id: String,
    /// Parameter types; for a member function the first is the receiver.
    pub(crate) params: Vec<Type>,
    /// Names of type parameters used in `params` / `result`.
    pub(crate) type_params: Vec<String>,
    /// The result type.
    pub(crate) result: Type,
    /// Whether this is a member (receiver-style) function.
    pub(crate) member: bool,
}

/// A CEL type (`cel.expr.Type`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::enum_variant_names,
    reason = "`TypeParam` and `Type` mirror the `type_param` and `type` kinds of cel.expr.Type"
)]
pub(crate) enum Type {
    /// `dyn`.
    Dyn,
    /// The null type.
    Null,
    /// A primitive type.
    Primitive(Primitive),
    /// A nullable wrapper of a primitive (`google.protobuf.*Value`).
    Wrapper(Primitive),
    /// A well-known protobuf type with CEL meaning.
    WellKnown(WellKnown),
    /// `list(elem)`.
    List(Box<Type>),
    /// `map(key, value)`.
    Map(Box<Type>, Box<Type>),
    /// A function type.
    Function {
        /// The result type.
        result: Box<Type>,
        /// The argument types.
        args: Vec<Type>,
    },
    /// A protobuf message type, by fully qualified name.
    Message(String),
    /// A type parameter such as `T`.
    TypeParam(String),
    /// The type of a type value: `type(T)`.
    Type(Box<Type>),
    /// The error type.
    Error,
    /// An abstract (opaque, parameterized) type such as `optional_type(T)`.
    Abstract {
        /// The type name.
        name: String,
        /// Its type arguments.
        params: Vec<Type>,
    },
}

/// `cel.expr.Type.PrimitiveType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Primitive {
    /// `bool`.
    Bool,
    /// `int`.
    Int64,
    /// `uint`.
    Uint64,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `bytes`.
    Bytes,
}

/// `cel.expr.Type.WellKnownType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WellKnown {
    /// `google.protobuf.Any`.
    Any,
    /// `google.protobuf.Timestamp`.
    Timestamp,
    /// `google.protobuf.Duration`.
    Duration,
}

/// A CEL value (`cel.expr.Value`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `null`.
    Null,
    /// A bool.
    Bool(bool),
    /// An `int`.
    Int(i64),
    /// A `uint`.
    Uint(u64),
    /// A `double`.
    Double(f64),
    /// A `string`.
    String(String),
    /// A `bytes` value.
    Bytes(Vec<u8>),
    /// A protobuf enum value.
    Enum {
        /// The fully qualified enum type name.
        type_name: String,
        /// The numeric value.
        value: i32,
    },
    /// A protobuf message (`google.protobuf.Any`), kept undecoded.
    Object {
        /// The type URL, e.g.
        /// `"type.googleapis.com/cel.expr.conformance.proto3.TestAllTypes"`.
        type_url: String,
        /// The message in text format, uninterpreted.
        message: Message,
    },
    /// A map, entries in file order.
    Map(Vec<(Value, Value)>),
    /// A list.
    List(Vec<Value>),
    /// A type value, by name (e.g. `"int"`, `"google.protobuf.Duration"`).
    Type(String),
}

impl TestFile {
    /// Every test with its section, in file order.
    pub(crate) fn tests(&self) -> impl Iterator<Item = (&Section, &Test)> + '_ {
        self.sections
            .iter()
            .flat_map(|s| s.tests.iter().map(move |t| (s, t)))
    }

    /// The number of tests in the file.
    pub(crate) fn test_count(&self) -> usize {
        self.sections.iter().map(|s| s.tests.len()).sum()
    }
}

impl fmt::Display for Type {
    /// CEL-style type names: `int`, `list(string)`, `map(string, dyn)`, ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, types: &[Type]) -> fmt::Result {
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            Ok(())
        }
        match self {
            Type::Dyn => f.write_str("dyn"),
            Type::Null => f.write_str("null_type"),
            Type::Primitive(p) => f.write_str(p.name()),
            Type::Wrapper(p) => write!(f, "wrapper({})", p.name()),
            Type::WellKnown(WellKnown::Any) => f.write_str("google.protobuf.Any"),
            Type::WellKnown(WellKnown::Timestamp) => f.write_str("google.protobuf.Timestamp"),
            Type::WellKnown(WellKnown::Duration) => f.write_str("google.protobuf.Duration"),
            Type::List(elem) => write!(f, "list({elem})"),
            Type::Map(key, value) => write!(f, "map({key}, {value})"),
            Type::Function { result, args } => {
                f.write_str("function(")?;
                list(f, args)?;
                write!(f, ") -> {result}")
            }
            Type::Message(name) | Type::TypeParam(name) => f.write_str(name),
            Type::Type(t) => write!(f, "type({t})"),
            Type::Error => f.write_str("*error*"),
            Type::Abstract { name, params } if params.is_empty() => f.write_str(name),
            Type::Abstract { name, params } => {
                write!(f, "{name}(")?;
                list(f, params)?;
                f.write_str(")")
            }
        }
    }
}

impl Primitive {
    /// The CEL name: `bool`, `int`, `uint`, `double`, `string`, `bytes`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Primitive::Bool => "bool",
            Primitive::Int64 => "int",
            Primitive::Uint64 => "uint",
            Primitive::Double => "double",
            Primitive::String => "string",
            Primitive::Bytes => "bytes",
        }
    }
}

/// Loads and converts one `.textproto` test file.
pub(crate) fn load(path: &Path) -> Result<TestFile, String> {
    let display = path.display();
    let src = std::fs::read_to_string(path).map_err(|e| format!("{display}: {e}"))?;
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.strip_suffix(".textproto").unwrap_or(n).to_owned())
        .unwrap_or_default();
    let msg = textproto::parse(&src).map_err(|e| format!("{display}:{e}"))?;
    test_file(file, &msg).map_err(|e| format!("{display}: {e}"))
}

/// Loads every `*.textproto` file in `dir`, sorted by file name.
pub(crate) fn load_all(dir: &Path) -> Result<Vec<TestFile>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "textproto") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| load(p)).collect()
}

/// Heuristic: does this test need protobuf message support?
///
/// True when the expression or container mentions protobuf packages or
/// message / enum types (`proto2`, `proto3`, `google.protobuf`,
/// `TestAllTypes`, `NestedTestAllTypes`, `GlobalEnum`, `NestedEnum`, ...),
/// when a binding or expected value contains a message ([`Value::Object`]),
/// an enum value or a protobuf type name, or when a declared or deduced type
/// involves a message, a wrapper or `google.protobuf.Any`. Used by runners
/// to skip protobuf-dependent tests with a reason.
///
/// This reproduces the data README's "no proto msg" column exactly except
/// for one test: README counts `string_ext` / `format_errors` /
/// `duration substitution not allowed with decimal clause` as protobuf
/// (its expected error message names `google.protobuf.Duration`), while
/// this function, which ignores error messages, does not.
pub(crate) fn mentions_proto(test: &Test) -> bool {
    const WORDS: &[&str] = &[
        "proto2",
        "proto3",
        "google.protobuf",
        "TestAllTypes",
        "NestedTestAllTypes",
        "NestedMessage",
        "NestedEnum",
        "GlobalEnum",
        "GlobalMessage",
    ];
    let text_mentions = |s: &str| WORDS.iter().any(|w| s.contains(w));
    if text_mentions(&test.expr) || text_mentions(&test.container) {
        return true;
    }
    let decl_mentions = |d: &Decl| match d {
        Decl::Ident { ty, .. } => type_mentions_proto(ty),
        Decl::Function { overloads, .. } => overloads
            .iter()
            .any(|o| type_mentions_proto(&o.result) || o.params.iter().any(type_mentions_proto)),
    };
    if test.type_env.iter().any(decl_mentions) {
        return true;
    }
    if test.bindings.iter().any(|(_, v)| value_mentions_proto(v)) {
        return true;
    }
    match &test.expected {
        Expected::Value(v) => value_mentions_proto(v),
        Expected::TypedResult {
            value,
            deduced_type,
        } => value.as_ref().is_some_and(value_mentions_proto) || type_mentions_proto(deduced_type),
        _ => false,
    }
}

/// Whether a type involves a protobuf message, wrapper or `Any`.
fn type_mentions_proto(ty: &Type) -> bool {
    match ty {
        Type::Message(_) | Type::Wrapper(_) | Type::WellKnown(WellKnown::Any) => true,
        Type::List(t) | Type::Type(t) => type_mentions_proto(t),
        Type::Map(k, v) => type_mentions_proto(k) || type_mentions_proto(v),
        Type::Function { result, args } => {
            type_mentions_proto(result) || args.iter().any(type_mentions_proto)
        }
        Type::Abstract { params, .. } => params.iter().any(type_mentions_proto),
        _ => false,
    }
}

/// Whether a value contains a message, an enum or a protobuf type name.
fn value_mentions_proto(value: &Value) -> bool {
    match value {
        Value::Object { .. } | Value::Enum { .. } => true,
        Value::Type(name) => name.contains('.'),
        Value::List(items) => items.iter().any(value_mentions_proto),
        Value::Map(entries) => entries
            .iter()
            .any(|(k, v)| value_mentions_proto(k) || value_mentions_proto(v)),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Conversion from the generic text-format tree.

/// Strict access to one message: knows the path for error messages and has
/// already rejected unknown fields.
struct Fields<'a> {
    msg: &'a Message,
    path: String,
}

impl<'a> Fields<'a> {
    /// Checks that `msg` only uses `known` field names.
    fn new(msg: &'a Message, path: String, known: &[&str]) -> Result<Self, String> {
        if let Some((name, _)) = msg
            .fields
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            return Err(format!(
                "{path}: unsupported field '{name}' (known: {})",
                known.join(", ")
            ));
        }
        Ok(Fields { msg, path })
    }

    /// The path of field `name`.
    fn at(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The value of a singular field, rejecting repeats.
    fn one(&self, name: &str) -> Result<Option<&'a Val>, String> {
        let mut values = self.msg.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(format!(
                "{}: singular field given more than once",
                self.at(name)
            ));
        }
        Ok(first)
    }

    /// A singular string field (`""` if absent).
    fn string(&self, name: &str) -> Result<String, String> {
        match self.one(name)? {
            None => Ok(String::new()),
            Some(v) => as_string(v, &self.at(name)),
        }
    }

    /// A singular bool field (`false` if absent).
    fn bool(&self, name: &str) -> Result<bool, String> {
        match self.one(name)? {
            None => Ok(false),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| format!("{}: expected a bool, found {v:?}", self.at(name))),
        }
    }

    /// A singular message field.
    fn msg(&self, name: &str) -> Result<Option<&'a Message>, String> {
        self.one(name)?
            .map(|v| as_msg(v, &self.at(name)))
            .transpose()
    }

    /// A required singular message field.
    fn required_msg(&self, name: &str) -> Result<&'a Message, String> {
        self.msg(name)?
            .ok_or_else(|| format!("{}: required field missing", self.at(name)))
    }

    /// A repeated message field, with indexed paths.
    fn msgs(&self, name: &str) -> Result<Vec<(String, &'a Message)>, String> {
        self.msg
            .all(name)
            .enumerate()
            .map(|(i, v)| {
                let path = format!("{}[{i}]", self.at(name));
                as_msg(v, &path).map(|m| (path, m))
            })
            .collect()
    }

    /// A singular enum field, by value name.
    fn ident(&self, name: &str) -> Result<Option<&'a str>, String> {
        self.one(name)?
            .map(|v| {
                v.as_ident()
                    .ok_or_else(|| format!("{}: expected an enum name, found {v:?}", self.at(name)))
            })
            .transpose()
    }

    /// A singular integer field (`0` if absent), converted by `convert`.
    fn number<T: Default>(
        &self,
        name: &str,
        what: &str,
        convert: impl Fn(&Val) -> Option<T>,
    ) -> Result<T, String> {
        match self.one(name)? {
            None => Ok(T::default()),
            Some(v) => {
                convert(v).ok_or_else(|| format!("{}: expected {what}, found {v:?}", self.at(name)))
            }
        }
    }
}

fn as_string(v: &Val, path: &str) -> Result<String, String> {
    match v {
        Val::Str(bytes) => String::from_utf8(bytes.clone())
            .map_err(|e| format!("{path}: string is not valid UTF-8: {e}")),
        _ => Err(format!("{path}: expected a string, found {v:?}")),
    }
}

fn as_msg<'a>(v: &'a Val, path: &str) -> Result<&'a Message, String> {
    v.as_msg()
        .ok_or_else(|| format!("{path}: expected a message, found {v:?}"))
}

fn test_file(file: String, msg: &Message) -> Result<TestFile, String> {
    let f = Fields::new(msg, String::new(), &["name", "description", "section"])?;
    let sections = f
        .msgs("section")?
        .into_iter()
        .map(|(path, m)| section(path, m))
        .collect::<Result<_, _>>()?;
    Ok(TestFile {
        file,
        name: f.string("name")?,
        description: f.string("description")?,
        sections,
    })
}

fn section(path: String, msg: &Message) -> Result<Section, String> {
    let name = msg.str("name").unwrap_or_default();
    let f = Fields::new(
        msg,
        format!("{path} ({name:?})"),
        &["name", "description", "test"],
    )?;
    let tests = f
        .msgs("test")?
        .into_iter()
        .map(|(path, m)| test(path, m))
        .collect::<Result<_, _>>()?;
    Ok(Section {
        name: f.string("name")?,
        description: f.string("description")?,
        tests,
    })
}

/// The members of `SimpleTest.result_matcher`.
const MATCHERS: &[&str] = &[
    "value",
    "typed_result",
    "eval_error",
    "any_eval_errors",
    "unknown",
    "any_unknowns",
];

fn test(path: String, msg: &Message) -> Result<Test, String> {
    let name = msg.str("name").unwrap_or_default();
    let f = Fields::new(
        msg,
        format!("{path} ({name:?})"),
        &[
            "name",
            "description",
            "expr",
            "disable_macros",
            "disable_check",
            "check_only",
            "type_env",
            "container",
            "locale",
            "bindings",
            "value",
            "typed_result",
            "eval_error",
            "any_eval_errors",
            "unknown",
            "any_unknowns",
        ],
    )?;
    let type_env = f
        .msgs("type_env")?
        .into_iter()
        .map(|(path, m)| decl(path, m))
        .collect::<Result<_, _>>()?;
    let mut bindings: Vec<(String, Value)> = Vec::new();
    for (path, m) in f.msgs("bindings")? {
        let (key, value) = binding(path.clone(), m)?;
        if bindings.iter().any(|(k, _)| *k == key) {
            return Err(format!("{path}: duplicate binding for {key:?}"));
        }
        bindings.push((key, value));
    }
    Ok(Test {
        name: f.string("name")?,
        description: f.string("description")?,
        expr: f.string("expr")?,
        disable_macros: f.bool("disable_macros")?,
        disable_check: f.bool("disable_check")?,
        check_only: f.bool("check_only")?,
        container: f.string("container")?,
        locale: f.string("locale")?,
        type_env,
        bindings,
        expected: expected(&f)?,
    })
}

fn expected(f: &Fields<'_>) -> Result<Expected, String> {
    let set: Vec<&str> = MATCHERS.iter().copied().filter(|m| f.msg.has(m)).collect();
    let &[matcher] = set.as_slice() else {
        return if set.is_empty() {
            Ok(Expected::None)
        } else {
            Err(format!(
                "{}: several result matchers set: {}",
                f.path,
                set.join(", ")
            ))
        };
    };
    let path = f.at(matcher);
    let m = f.required_msg(matcher)?;
    Ok(match matcher {
        "value" => Expected::Value(value(path, m)?),
        "typed_result" => {
            let r = Fields::new(m, path, &["result", "deduced_type"])?;
            let value = r
                .msg("result")?
                .map(|v| value(r.at("result"), v))
                .transpose()?;
            let deduced_type = ty(r.at("deduced_type"), r.required_msg("deduced_type")?)?;
            Expected::TypedResult {
                value,
                deduced_type,
            }
        }
        "eval_error" => Expected::EvalError(error_set(path, m)?),
        "any_eval_errors" => {
            let r = Fields::new(m, path, &["errors"])?;
            Expected::AnyEvalErrors(
                r.msgs("errors")?
                    .into_iter()
                    .map(|(p, e)| error_set(p, e))
                    .collect::<Result<_, _>>()?,
            )
        }
        "unknown" => Expected::Unknown(unknown_set(path, m)?),
        "any_unknowns" => {
            let r = Fields::new(m, path, &["unknowns"])?;
            Expected::AnyUnknowns(
                r.msgs("unknowns")?
                    .into_iter()
                    .map(|(p, u)| unknown_set(p, u))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => unreachable!("MATCHERS lists exactly the handled fields"),
    })
}

/// `cel.expr.ErrorSet`: the error messages.
fn error_set(path: String, msg: &Message) -> Result<Vec<String>, String> {
    let f = Fields::new(msg, path, &["errors"])?;
    f.msgs("errors")?
        .into_iter()
        .map(|(path, status)| Fields::new(status, path, &["message"])?.string("message"))
        .collect()
}

/// `cel.expr.UnknownSet`: the expression ids.
fn unknown_set(path: String, msg: &Message) -> Result<Vec<i64>, String> {
    let f = Fields::new(msg, path, &["exprs"])?;
    msg.all("exprs")
        .map(|v| {
            v.as_i64()
                .ok_or_else(|| format!("{}: expected an int64, found {v:?}", f.at("exprs")))
        })
        .collect()
}

/// A `bindings` map entry: key and `cel.expr.ExprValue` (only `value` is
/// supported; error or unknown bindings are rejected).
fn binding(path: String, msg: &Message) -> Result<(String, Value), String> {
    let f = Fields::new(msg, path, &["key", "value"])?;
    let key = f.string("key")?;
    let expr_value = Fields::new(f.required_msg("value")?, f.at("value"), &["value"])?;
    let v = value(expr_value.at("value"), expr_value.required_msg("value")?)?;
    Ok((key, v))
}

/// `cel.expr.Value`.
fn value(path: String, msg: &Message) -> Result<Value, String> {
    const KINDS: &[&str] = &[
        "null_value",
        "bool_value",
        "int64_value",
        "uint64_value",
        "double_value",
        "string_value",
        "bytes_value",
        "enum_value",
        "object_value",
        "map_value",
        "list_value",
        "type_value",
    ];
    let f = Fields::new(msg, path, KINDS)?;
    let [(kind, v)] = msg.fields.as_slice() else {
        return Err(format!(
            "{}: a Value needs exactly one kind, found {}",
            f.path,
            msg.fields.len()
        ));
    };
    let at = f.at(kind);
    let bad = |what: &str| format!("{at}: expected {what}, found {v:?}");
    Ok(match kind.as_str() {
        "null_value" => match v {
            Val::Ident(s) if s == "NULL_VALUE" => Value::Null,
            Val::Num(n) if n == "0" => Value::Null,
            _ => return Err(bad("NULL_VALUE")),
        },
        "bool_value" => Value::Bool(v.as_bool().ok_or_else(|| bad("a bool"))?),
        "int64_value" => Value::Int(v.as_i64().ok_or_else(|| bad("an int64"))?),
        "uint64_value" => Value::Uint(v.as_u64().ok_or_else(|| bad("a uint64"))?),
        "double_value" => Value::Double(v.as_f64().ok_or_else(|| bad("a double"))?),
        "string_value" => Value::String(as_string(v, &at)?),
        "bytes_value" => Value::Bytes(v.as_bytes().ok_or_else(|| bad("bytes"))?.to_vec()),
        "type_value" => Value::Type(as_string(v, &at)?),
        "enum_value" => {
            let e = Fields::new(as_msg(v, &at)?, at, &["type", "value"])?;
            Value::Enum {
                type_name: e.string("type")?,
                value: e.number("value", "an int32", |v| {
                    v.as_i64().and_then(|n| i32::try_from(n).ok())
                })?,
            }
        }
        "list_value" => {
            let l = Fields::new(as_msg(v, &at)?, at, &["values"])?;
            Value::List(
                l.msgs("values")?
                    .into_iter()
                    .map(|(p, m)| value(p, m))
                    .collect::<Result<_, _>>()?,
            )
        }
        "map_value" => {
            let m = Fields::new(as_msg(v, &at)?, at, &["entries"])?;
            let mut entries = Vec::new();
            for (p, entry) in m.msgs("entries")? {
                let e = Fields::new(entry, p, &["key", "value"])?;
                let key = value(e.at("key"), e.required_msg("key")?)?;
                let val = value(e.at("value"), e.required_msg("value")?)?;
                entries.push((key, val));
            }
            Value::Map(entries)
        }
        "object_value" => object(&at, as_msg(v, &at)?)?,
        _ => unreachable!("Fields::new rejected other names"),
    })
}

/// A `google.protobuf.Any` in the expanded text form
/// `{ [type.googleapis.com/full.Name] { ...fields... } }`.
fn object(path: &str, msg: &Message) -> Result<Value, String> {
    match msg.fields.as_slice() {
        [(name, Val::Msg(message))] if name.starts_with('[') => Ok(Value::Object {
            type_url: name[1..name.len() - 1].to_owned(),
            message: message.clone(),
        }),
        _ => Err(format!(
            "{path}: expected an expanded Any `{{ [type.googleapis.com/Name] {{ ... }} }}`, \
             found fields {:?}",
            msg.names()
        )),
    }
}

/// `cel.expr.Decl`.
fn decl(path: String, msg: &Message) -> Result<Decl, String> {
    let f = Fields::new(msg, path, &["name", "ident", "function"])?;
    let name = f.string("name")?;
    match (f.msg("ident")?, f.msg("function")?) {
        (Some(ident), None) => {
            let i = Fields::new(ident, f.at("ident"), &["type", "doc"])?;
            let ty = ty(i.at("type"), i.required_msg("type")?)?;
            Ok(Decl::Ident { name, ty })
        }
        (None, Some(function)) => {
            let func = Fields::new(function, f.at("function"), &["overloads", "doc"])?;
            let overloads = func
                .msgs("overloads")?
                .into_iter()
                .map(|(p, o)| overload(p, o))
                .collect::<Result<_, _>>()?;
            Ok(Decl::Function { name, overloads })
        }
        _ => Err(format!("{}: needs exactly one of ident, function", f.path)),
    }
}

/// `cel.expr.Decl.FunctionDecl.Overload`.
fn overload(path: String, msg: &Message) -> Result<Overload, String> {
    let f = Fields::new(
        msg,
        path,
        &[
            "overload_id",
            "params",
            "type_params",
            "result_type",
            "is_instance_function",
            "doc",
        ],
    )?;
    Ok(Overload {
        id: f.string("overload_id")?,
        params: types(&f, "params")?,
        type_params: msg
            .all("type_params")
            .map(|v| as_string(v, &f.at("type_params")))
            .collect::<Result<_, _>>()?,
        result: ty(f.at("result_type"), f.required_msg("result_type")?)?,
        member: f.bool("is_instance_function")?,
    })
}

/// A repeated `cel.expr.Type` field.
fn types(f: &Fields<'_>, name: &str) -> Result<Vec<Type>, String> {
    f.msgs(name)?.into_iter().map(|(p, m)| ty(p, m)).collect()
}

/// `cel.expr.Type`.
fn ty(path: String, msg: &Message) -> Result<Type, String> {
    const KINDS: &[&str] = &[
        "dyn",
        "null",
        "primitive",
        "wrapper",
        "well_known",
        "list_type",
        "map_type",
        "function",
        "message_type",
        "type_param",
        "type",
        "error",
        "abstract_type",
    ];
    let f = Fields::new(msg, path, KINDS)?;
    let [(kind, v)] = msg.fields.as_slice() else {
        return Err(format!(
            "{}: a Type needs exactly one kind, found {}",
            f.path,
            msg.fields.len()
        ));
    };
    let at = f.at(kind);
    let primitive = || -> Result<Primitive, String> {
        Ok(match f.ident(kind)? {
            Some("BOOL") => Primitive::Bool,
            Some("INT64") => Primitive::Int64,
            Some("UINT64") => Primitive::Uint64,
            Some("DOUBLE") => Primitive::Double,
            Some("STRING") => Primitive::String,
            Some("BYTES") => Primitive::Bytes,
            other => return Err(format!("{at}: unsupported primitive type {other:?}")),
        })
    };
    let empty =
        || -> Result<(), String> { Fields::new(as_msg(v, &at)?, at.clone(), &[]).map(|_| ()) };
    Ok(match kind.as_str() {
        "dyn" => {
            empty()?;
            Type::Dyn
        }
        "error" => {
            empty()?;
            Type::Error
        }
        "null" => match v {
            Val::Ident(s) if s == "NULL_VALUE" => Type::Null,
            Val::Num(n) if n == "0" => Type::Null,
            _ => return Err(format!("{at}: expected NULL_VALUE, found {v:?}")),
        },
        "primitive" => Type::Primitive(primitive()?),
        "wrapper" => Type::Wrapper(primitive()?),
        "well_known" => Type::WellKnown(match f.ident(kind)? {
            Some("ANY") => WellKnown::Any,
            Some("TIMESTAMP") => WellKnown::Timestamp,
            Some("DURATION") => WellKnown::Duration,
            other => return Err(format!("{at}: unsupported well-known type {other:?}")),
        }),
        "message_type" => Type::Message(as_string(v, &at)?),
        "type_param" => Type::TypeParam(as_string(v, &at)?),
        "type" => Type::Type(Box::new(ty(at.clone(), as_msg(v, &at)?)?)),
        "list_type" => {
            let l = Fields::new(as_msg(v, &at)?, at, &["elem_type"])?;
            Type::List(Box::new(ty(
                l.at("elem_type"),
                l.required_msg("elem_type")?,
            )?))
        }
        "map_type" => {
            let m = Fields::new(as_msg(v, &at)?, at, &["key_type", "value_type"])?;
            Type::Map(
                Box::new(ty(m.at("key_type"), m.required_msg("key_type")?)?),
                Box::new(ty(m.at("value_type"), m.required_msg("value_type")?)?),
            )
        }
        "function" => {
            let func = Fields::new(as_msg(v, &at)?, at, &["result_type", "arg_types"])?;
            Type::Function {
                result: Box::new(ty(
                    func.at("result_type"),
                    func.required_msg("result_type")?,
                )?),
                args: types(&func, "arg_types")?,
            }
        }
        "abstract_type" => {
            let a = Fields::new(as_msg(v, &at)?, at, &["name", "parameter_types"])?;
            Type::Abstract {
                name: a.string("name")?,
                params: types(&a, "parameter_types")?,
            }
        }
        _ => unreachable!("Fields::new rejected other names"),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh scratch directory for one test.
    fn scratch_dir(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("conformance-model-{}-{test}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Loads `src` as a test file called `t.textproto`.
    fn load_src(dir: &Path, src: &str) -> Result<TestFile, String> {
        let path = dir.join("t.textproto");
        std::fs::write(&path, src).unwrap();
        load(&path)
    }

    #[test]
    fn load_all_sorts_by_file_name() {
        let dir = scratch_dir("load_all");
        std::fs::write(dir.join("b.textproto"), "name: 'second'").unwrap();
        std::fs::write(dir.join("a.textproto"), "name: 'first' section { test {} }").unwrap();
        std::fs::write(dir.join("README.md"), "not a test file").unwrap();
        let files = load_all(&dir).unwrap();
        let names: Vec<(&str, &str, usize)> = files
            .iter()
            .map(|f| (f.file.as_str(), f.name.as_str(), f.test_count()))
            .collect();
        assert_eq!(names, [("a", "first", 1), ("b", "second", 0)]);
        let (section, test) = files[0].tests().next().unwrap();
        assert_eq!(
            (section.name.as_str(), &test.expected),
            ("", &Expected::None)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_converts_every_matcher() {
        let dir = scratch_dir("matchers");
        let file = load_src(
            &dir,
            r#"
            name: "n" description: "d"
            section {
              name: "s" description: "sd"
              test {
                name: "all_fields" description: "td" expr: "x"
                disable_macros: true disable_check: true check_only: true
                container: "c" locale: "de_CH"
                type_env { name: "x" ident { type { wrapper: INT64 } doc: "ignored" } }
                type_env {
                  name: "f"
                  function {
                    doc: "ignored"
                    overloads {
                      overload_id: "f_T" is_instance_function: true type_params: "T"
                      params { type_param: "T" }
                      result_type { function { result_type { error {} } arg_types { type { dyn {} } } } }
                    }
                  }
                }
                bindings { key: "x" value { value { enum_value { type: "E" value: -2 } } } }
                bindings { key: "y" value { value { map_value {
                  entries { key { uint64_value: 1 } value { list_value { values { type_value: "int" } } } }
                } } } }
                unknown { exprs: [1, 2] }
              }
              test { any_eval_errors { errors { errors { message: "a" } } errors {} } }
              test { any_unknowns { unknowns { exprs: 3 } } }
              test { eval_error { errors { message: "boom" } } }
              test { typed_result { deduced_type { well_known: TIMESTAMP } } }
              test { value { double_value: -inf } }
            }
            "#,
        )
        .unwrap();
        assert_eq!((file.name.as_str(), file.description.as_str()), ("n", "d"));
        let section = &file.sections[0];
        assert_eq!(
            (section.name.as_str(), section.description.as_str()),
            ("s", "sd")
        );
        let t = &section.tests[0];
        assert_eq!(
            (t.name.as_str(), t.description.as_str(), t.expr.as_str()),
            ("all_fields", "td", "x")
        );
        assert!(t.disable_macros && t.disable_check && t.check_only);
        assert_eq!((t.container.as_str(), t.locale.as_str()), ("c", "de_CH"));
        assert_eq!(
            t.type_env,
            [
                Decl::Ident {
                    name: "x".into(),
                    ty: Type::Wrapper(Primitive::Int64)
                },
                Decl::Function {
                    name: "f".into(),
                    overloads: vec![Overload {
                        id: "f_T".into(),
                        params: vec![Type::TypeParam("T".into())],
                        type_params: vec!["T".into()],
                        result: Type::Function {
                            result: Box::new(Type::Error),
                            args: vec![Type::Type(Box::new(Type::Dyn))],
                        },
                        member: true,
                    }],
                },
            ]
        );
        assert_eq!(
            t.bindings,
            [
                (
                    "x".to_owned(),
                    Value::Enum {
                        type_name: "E".into(),
                        value: -2
                    }
                ),
                (
                    "y".to_owned(),
                    Value::Map(vec![(
                        Value::Uint(1),
                        Value::List(vec![Value::Type("int".into())])
                    )])
                ),
            ]
        );
        let expected: Vec<&Expected> = section.tests.iter().map(|t| &t.expected).collect();
        assert_eq!(
            expected,
            [
                &Expected::Unknown(vec![1, 2]),
                &Expected::AnyEvalErrors(vec![vec!["a".into()], vec![]]),
                &Expected::AnyUnknowns(vec![vec![3]]),
                &Expected::EvalError(vec!["boom".into()]),
                &Expected::TypedResult {
                    value: None,
                    deduced_type: Type::WellKnown(WellKnown::Timestamp)
                },
                &Expected::Value(Value::Double(f64::NEG_INFINITY)),
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_reports_schema_gaps() {
        let dir = scratch_dir("gaps");
        let cases = [
            ("surprise: 1", "unsupported field 'surprise'"),
            (
                "section { test { name: 'x' surprise: 1 } }",
                "section[0] (\"\").test[0] (\"x\"): unsupported field 'surprise'",
            ),
            (
                "section { test { value { int64_value: 1 } eval_error {} } }",
                "several result matchers set: value, eval_error",
            ),
            (
                "section { test { value { int64_value: 1 bool_value: true } } }",
                "exactly one kind",
            ),
            ("section { test { value {} } }", "exactly one kind, found 0"),
            (
                "section { test { value { uint64_value: -1 } } }",
                "value.uint64_value: expected a uint64",
            ),
            (
                "section { test { value { int64_value: 9223372036854775808 } } }",
                "expected an int64",
            ),
            ("section { test { expr: 'a' expr: 'b' } }", "more than once"),
            ("section { test { expr: 1 } }", "expected a string"),
            ("section { test { check_only: yes } }", "expected a bool"),
            (
                "section { test { value { string_value: '\\xff' } } }",
                "not valid UTF-8",
            ),
            (
                "section { test { value { object_value { type_url: 'x' } } } }",
                "expanded Any",
            ),
            (
                "section { test { value { enum_value { value: 3000000000 } } } }",
                "expected an int32",
            ),
            (
                "section { test { type_env { name: 'x' ident { type { primitive: INT32 } } } } }",
                "unsupported primitive",
            ),
            (
                "section { test { type_env { name: 'x' } } }",
                "exactly one of ident, function",
            ),
            (
                "section { test { type_env { name: 'x' ident { } } } }",
                "ident.type: required field missing",
            ),
            (
                "section { test { bindings { key: 'x' value { error {} } } } }",
                "unsupported field 'error'",
            ),
            (
                "section { test { bindings { key: 'x' value { value { int64_value: 1 } } } \
                 bindings { key: 'x' value { value { int64_value: 2 } } } } }",
                "duplicate binding",
            ),
            (
                "section { test { eval_error { errors { message: 'm' code: 3 } } } }",
                "unsupported field 'code'",
            ),
            ("section { test ", "t.textproto:1:16: expected ':' or '{'"),
        ];
        for (src, want) in cases {
            let err = load_src(&dir, src).expect_err(src);
            assert!(
                err.contains(want),
                "{src}\n  error: {err}\n  wanted: {want}"
            );
        }
        let err = load(&dir.join("missing.textproto")).unwrap_err();
        assert!(err.contains("missing.textproto"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proto_heuristic() {
        let test = |expr: &str| Test {
            name: String::new(),
            description: String::new(),
            expr: expr.to_owned(),
            disable_macros: false,
            disable_check: false,
            check_only: false,
            container: String::new(),
            locale: String::new(),
            type_env: Vec::new(),
            bindings: Vec::new(),
            expected: Expected::None,
        };
        assert!(!mentions_proto(&test("1 + 2 == 3")));
        assert!(!mentions_proto(&test(
            "duration('1s') < timestamp(0) - timestamp(1)"
        )));
        assert!(mentions_proto(&test("TestAllTypes{}.single_int64")));
        assert!(mentions_proto(&test(
            "google.protobuf.Int32Value{value: 1}"
        )));
        assert!(mentions_proto(&Test {
            container: "cel.expr.conformance.proto3".into(),
            ..test("x")
        }));
        let ident = |ty| Decl::Ident {
            name: "x".into(),
            ty,
        };
        let with_decl = |ty| Test {
            type_env: vec![ident(ty)],
            ..test("x")
        };
        assert!(!mentions_proto(&with_decl(Type::WellKnown(
            WellKnown::Duration
        ))));
        assert!(mentions_proto(&with_decl(Type::WellKnown(WellKnown::Any))));
        assert!(mentions_proto(&with_decl(Type::Map(
            Box::new(Type::Primitive(Primitive::String)),
            Box::new(Type::Wrapper(Primitive::Bool)),
        ))));
        assert!(mentions_proto(&Test {
            type_env: vec![Decl::Function {
                name: "f".into(),
                overloads: vec![Overload {
                    id: "f".into(),
                    params: vec![Type::Message("a.B".into())],
                    type_params: Vec::new(),
                    result: Type::Dyn,
                    member: false,
                }],
            }],
            ..test("f(x)")
        }));
        let object = Value::Object {
            type_url: "type.googleapis.com/a.B".into(),
            message: Message::default(),
        };
        assert!(mentions_proto(&Test {
            bindings: vec![("x".into(), Value::List(vec![object]))],
            ..test("x")
        }));
        assert!(mentions_proto(&Test {
            expected: Expected::Value(Value::Type("google.protobuf.Duration".into())),
            ..test("type(x)")
        }));
        assert!(!mentions_proto(&Test {
            expected: Expected::Value(Value::Type("int".into())),
            ..test("type(1)")
        }));
        assert!(mentions_proto(&Test {
            expected: Expected::TypedResult {
                value: None,
                deduced_type: Type::Abstract {
                    name: "optional_type".into(),
                    params: vec![Type::Message("a.B".into())],
                },
            },
            ..test("x")
        }));
    }

    #[test]
    fn type_display() {
        let t = Type::Function {
            result: Box::new(Type::Abstract {
                name: "optional_type".into(),
                params: vec![Type::TypeParam("T".into())],
            }),
            args: vec![
                Type::List(Box::new(Type::Wrapper(Primitive::Uint64))),
                Type::Map(
                    Box::new(Type::Primitive(Primitive::Bool)),
                    Box::new(Type::WellKnown(WellKnown::Duration)),
                ),
                Type::Type(Box::new(Type::Message("a.B".into()))),
                Type::Null,
                Type::Dyn,
                Type::Error,
                Type::Abstract {
                    name: "vector".into(),
                    params: Vec::new(),
                },
            ],
        };
        assert_eq!(
            t.to_string(),
            "function(list(wrapper(uint)), map(bool, google.protobuf.Duration), type(a.B), \
             null_type, dyn, *error*, vector) -> optional_type(T)"
        );
        let names: Vec<&str> = [
            Primitive::Bool,
            Primitive::Int64,
            Primitive::Uint64,
            Primitive::Double,
            Primitive::String,
            Primitive::Bytes,
        ]
        .map(Primitive::name)
        .into();
        assert_eq!(names, ["bool", "int", "uint", "double", "string", "bytes"]);
        assert_eq!(
            Type::WellKnown(WellKnown::Any).to_string(),
            "google.protobuf.Any"
        );
        assert_eq!(
            Type::WellKnown(WellKnown::Timestamp).to_string(),
            "google.protobuf.Timestamp"
        );
    }
}
