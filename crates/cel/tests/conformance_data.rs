//! Reader for the official CEL conformance test data (the cel-spec "simple"
//! suite), vendored in `tests/data/cel-spec/` (see its `README.md` for
//! origin, commit and license).
//!
//! The test files are protobuf text format. To stay dependency-free they are
//! read without a protobuf library:
//!
//! - [`textproto`] is a generic, schema-less text-format parser producing an
//!   ordered tree of fields;
//! - [`model`] converts that tree into typed Rust values (`TestFile`,
//!   `Section`, `Test`, `Expected`, `Value`, `Type`, `Decl`) following
//!   `proto/cel/expr/conformance/test/simple.proto`, and rejects fields it
//!   does not model, so schema gaps fail loudly.
//!
//! Usage from another integration test such as `tests/conformance.rs`:
//!
//! ```ignore
//! mod conformance_data;
//!
//! use conformance_data::{TESTDATA_DIR, model};
//!
//! let files = model::load_all(std::path::Path::new(TESTDATA_DIR)).unwrap();
//! for file in &files {
//!     for (section, test) in file.tests() {
//!         if model::mentions_proto(test) { /* skip: needs protobuf */ }
//!     }
//! }
//! ```
//!
//! (`#[path = "conformance_data/textproto.rs"] mod textproto;` alone also
//! works; `model.rs` needs `textproto` as a sibling module.)
//!
//! Compiled on its own, this file is a test crate whose tests check that
//! every vendored file parses, that the counts match the data README, and
//! that a few values decode as expected. Because a crate that includes this
//! module compiles these tests too, they also exercise every item of the API
//! so that no includer sees dead-code warnings.

// Explicit paths, because this file is both a crate root (whose submodules
// would be looked up in `tests/`) and, for other test crates, the module file
// `tests/conformance_data.rs` (whose submodules would be looked up in
// `tests/conformance_data/`). A `#[path]` on a non-inline `mod` is relative to
// the directory of the file holding it, so these resolve the same in both.
#[path = "conformance_data/model.rs"]
pub(crate) mod model;
#[path = "conformance_data/textproto.rs"]
pub(crate) mod textproto;

/// The vendored `testdata/` directory holding the `*.textproto` files.
pub(crate) const TESTDATA_DIR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cel-spec/testdata");

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::TESTDATA_DIR;
    use super::model::{
        self, Decl, Expected, Overload, Primitive, Section, Test, TestFile, Type, Value,
    };
    use super::textproto::Val;

    /// Per-file counts: (file, sections, tests, tests without protobuf,
    /// `eval_error` tests). All from the data README, except that
    /// `string_ext` has 213 tests without protobuf instead of 212 (see
    /// [`model::mentions_proto`]).
    const COUNTS: &[(&str, usize, usize, usize, usize)] = &[
        ("basic", 5, 43, 43, 2),
        ("bindings_ext", 1, 8, 8, 0),
        ("block_ext", 1, 37, 25, 0),
        ("comparisons", 10, 406, 334, 17),
        ("conversions", 9, 109, 109, 11),
        ("dynamic", 19, 226, 0, 25),
        ("encoders_ext", 3, 4, 4, 0),
        ("enums", 4, 85, 0, 10),
        ("fields", 5, 60, 60, 16),
        ("fp_math", 1, 30, 30, 1),
        ("integer_math", 2, 64, 64, 19),
        ("lists", 4, 39, 39, 7),
        ("logic", 4, 30, 30, 9),
        ("macros", 6, 44, 44, 6),
        ("macros2", 5, 46, 46, 8),
        ("math_ext", 21, 199, 199, 17),
        ("namespace", 3, 14, 14, 0),
        ("network_ext", 4, 69, 69, 9),
        ("optionals", 1, 70, 59, 3),
        ("parse", 9, 219, 193, 0),
        ("plumbing", 4, 5, 5, 1),
        ("proto2", 9, 118, 0, 6),
        ("proto2_ext", 2, 18, 0, 0),
        ("proto3", 7, 85, 0, 6),
        ("string", 7, 51, 51, 0),
        ("string_ext", 15, 216, 213, 53),
        ("timestamps", 11, 78, 73, 16),
        ("type_deduction", 9, 47, 26, 0),
        ("unknowns", 0, 0, 0, 0),
        ("wrappers", 16, 36, 0, 0),
    ];

    fn all_files() -> Vec<TestFile> {
        model::load_all(Path::new(TESTDATA_DIR)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn load(file: &str) -> TestFile {
        let path = Path::new(TESTDATA_DIR).join(format!("{file}.textproto"));
        model::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first test called `test` in `section` of `file`.
    fn find<'a>(file: &'a TestFile, section: &str, test: &str) -> &'a Test {
        file.tests()
            .find(|(s, t)| s.name == section && t.name == test)
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("no test {section}/{test} in {}", file.file))
    }

    fn expected_value<'a>(file: &'a TestFile, section: &str, test: &str) -> &'a Value {
        match &find(file, section, test).expected {
            Expected::Value(v) => v,
            other => panic!("{section}/{test}: expected a value matcher, found {other:?}"),
        }
    }

    #[test]
    fn every_file_parses_with_the_documented_counts() {
        let files = all_files();
        let found: Vec<(&str, usize, usize, usize, usize)> = files
            .iter()
            .map(|f| {
                let no_proto = f.tests().filter(|(_, t)| !model::mentions_proto(t)).count();
                let errors = f
                    .tests()
                    .filter(|(_, t)| matches!(t.expected, Expected::EvalError(_)))
                    .count();
                let sections = f.sections.len();
                (f.file.as_str(), sections, f.test_count(), no_proto, errors)
            })
            .collect();
        assert_eq!(found, COUNTS);
        let sections: usize = files.iter().map(|f| f.sections.len()).sum();
        let tests: usize = files.iter().map(TestFile::test_count).sum();
        assert_eq!((files.len(), sections, tests), (30, 197, 2456));
    }

    #[test]
    fn per_file_spot_counts() {
        assert_eq!(load("basic").test_count(), 43);
        assert_eq!(load("parse").test_count(), 219);
        assert_eq!(load("string_ext").test_count(), 216);
        assert!(load("unknowns").sections.is_empty());
    }

    /// Counts every feature of the model used anywhere in the data. The
    /// exhaustive patterns (no `..`) make a new model field a compile error
    /// here, so the census stays complete.
    fn census(files: &[TestFile]) -> BTreeMap<String, usize> {
        let mut n = BTreeMap::new();
        let mut bump = |key: &str| *n.entry(key.to_owned()).or_insert(0) += 1;
        for TestFile {
            file: _,
            name: _,
            description,
            sections,
        } in files
        {
            if !description.is_empty() {
                bump("file description");
            }
            for Section {
                name: _,
                description,
                tests,
            } in sections
            {
                if !description.is_empty() {
                    bump("section description");
                }
                for test in tests {
                    census_test(test, &mut bump);
                }
            }
        }
        n
    }

    fn census_test(test: &Test, bump: &mut impl FnMut(&str)) {
        let Test {
            name: _,
            description,
            expr,
            disable_macros,
            disable_check,
            check_only,
            container,
            locale,
            type_env,
            bindings,
            expected,
        } = test;
        let flags = [
            ("test description", !description.is_empty()),
            ("multi-line expr", expr.contains('\n')),
            ("disable_macros", *disable_macros),
            ("disable_check", *disable_check),
            ("check_only", *check_only),
            ("container", !container.is_empty()),
            ("locale", !locale.is_empty()),
            ("type_env", !type_env.is_empty()),
            ("bindings", !bindings.is_empty()),
        ];
        for (key, set) in flags {
            if set {
                bump(key);
            }
        }
        for decl in type_env {
            match decl {
                Decl::Ident { name: _, ty } => {
                    bump("decl ident");
                    census_type(ty, bump);
                }
                Decl::Function { name: _, overloads } => {
                    bump("decl function");
                    for Overload {
                        id: _,
                        params,
                        type_params,
                        result,
                        member,
                    } in overloads
                    {
                        bump("overload");
                        if *member {
                            bump("overload member");
                        }
                        if !type_params.is_empty() {
                            bump("overload type_params");
                        }
                        params
                            .iter()
                            .chain([result])
                            .for_each(|t| census_type(t, bump));
                    }
                }
            }
        }
        for (_, value) in bindings {
            census_value(value, bump);
        }
        match expected {
            Expected::Value(v) => {
                bump("expect value");
                census_value(v, bump);
            }
            Expected::TypedResult {
                value,
                deduced_type,
            } => {
                bump("expect typed_result");
                if let Some(v) = value {
                    census_value(v, bump);
                }
                census_type(deduced_type, bump);
            }
            Expected::EvalError(messages) => {
                bump("expect eval_error");
                if messages.len() != 1 {
                    bump("eval_error without exactly one message");
                }
            }
            Expected::AnyEvalErrors(sets) => {
                bump("expect any_eval_errors");
                sets.iter()
                    .flatten()
                    .for_each(|_| bump("any_eval_errors message"));
            }
            Expected::Unknown(ids) => {
                bump("expect unknown");
                ids.iter().for_each(|_| bump("unknown id"));
            }
            Expected::AnyUnknowns(sets) => {
                bump("expect any_unknowns");
                sets.iter().flatten().for_each(|_| bump("any_unknowns id"));
            }
            Expected::None => bump("expect none (true)"),
        }
    }

    fn census_value(value: &Value, bump: &mut impl FnMut(&str)) {
        match value {
            Value::Null => bump("value null"),
            Value::Bool(_) => bump("value bool"),
            Value::Int(_) => bump("value int"),
            Value::Uint(_) => bump("value uint"),
            Value::Double(d) => bump(if d.is_finite() {
                "value double"
            } else {
                "value double non-finite"
            }),
            Value::String(_) => bump("value string"),
            Value::Bytes(_) => bump("value bytes"),
            Value::Enum {
                type_name: _,
                value: _,
            } => bump("value enum"),
            Value::Object { type_url, message } => {
                bump("value object");
                assert!(type_url.starts_with("type.googleapis.com/"), "{type_url}");
                if message.fields.is_empty() {
                    bump("value object empty");
                }
            }
            Value::Map(entries) => {
                bump("value map");
                for (k, v) in entries {
                    census_value(k, bump);
                    census_value(v, bump);
                }
            }
            Value::List(items) => {
                bump("value list");
                items.iter().for_each(|v| census_value(v, bump));
            }
            Value::Type(_) => bump("value type"),
        }
    }

    fn census_type(ty: &Type, bump: &mut impl FnMut(&str)) {
        match ty {
            Type::Dyn => bump("type dyn"),
            Type::Null => bump("type null"),
            Type::Primitive(_) => bump("type primitive"),
            Type::Wrapper(_) => bump("type wrapper"),
            Type::WellKnown(_) => bump("type well_known"),
            Type::List(elem) => {
                bump("type list");
                census_type(elem, bump);
            }
            Type::Map(k, v) => {
                bump("type map");
                census_type(k, bump);
                census_type(v, bump);
            }
            Type::Function { result, args } => {
                bump("type function");
                args.iter()
                    .chain([&**result])
                    .for_each(|t| census_type(t, bump));
            }
            Type::Message(_) => bump("type message"),
            Type::TypeParam(_) => bump("type type_param"),
            Type::Type(t) => {
                bump("type type");
                census_type(t, bump);
            }
            Type::Error => bump("type error"),
            Type::Abstract { name: _, params } => {
                bump("type abstract");
                params.iter().for_each(|t| census_type(t, bump));
            }
        }
    }

    #[test]
    fn feature_census() {
        let census = census(&all_files());
        let found: Vec<(&str, usize)> = census.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        // Never used by the data, so absent here: `disable_macros`,
        // `locale`, `any_eval_errors`, `unknown`, `any_unknowns`, member
        // overloads, overload `type_params`, function / `type` / error
        // types, and `eval_error`s with other than exactly one message.
        let want: &[(&str, usize)] = &[
            ("bindings", 137),
            ("check_only", 25),
            ("container", 546),
            ("decl function", 6),
            ("decl ident", 152),
            ("disable_check", 144),
            ("expect eval_error", 242),
            ("expect none (true)", 197),
            ("expect typed_result", 47),
            ("expect value", 1970),
            ("file description", 30),
            ("multi-line expr", 6),
            ("overload", 6),
            ("section description", 125),
            ("test description", 177),
            ("type abstract", 14),
            ("type dyn", 15),
            ("type list", 26),
            ("type map", 13),
            ("type message", 93),
            ("type null", 2),
            ("type primitive", 103),
            ("type type_param", 30),
            ("type well_known", 2),
            ("type wrapper", 4),
            ("type_env", 149),
            ("value bool", 888),
            ("value bytes", 86),
            ("value double", 126),
            ("value double non-finite", 3),
            ("value enum", 21),
            ("value int", 329),
            ("value list", 85),
            ("value map", 59),
            ("value null", 30),
            ("value object", 263),
            ("value object empty", 8),
            ("value string", 379),
            ("value type", 36),
            ("value uint", 68),
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn test_names_are_unique_within_sections_but_four() {
        let mut duplicates = Vec::new();
        for file in all_files() {
            let mut seen = BTreeMap::new();
            for (section, test) in file.tests() {
                let key = (section.name.clone(), test.name.clone());
                *seen.entry(key).or_insert(0) += 1;
            }
            for ((section, test), count) in seen {
                if count > 1 {
                    duplicates.push(format!("{}/{section}/{test} x{count}", file.file));
                }
            }
        }
        assert_eq!(
            duplicates,
            [
                "dynamic/float/field_assign_proto2_subnorm x2",
                "string_ext/index_of/char_index x2",
                "string_ext/index_of/empty_index x2",
                "string_ext/index_of/string_index x2",
            ]
        );
    }

    #[test]
    fn decoded_strings() {
        let basic = load("basic");
        let t = find(&basic, "self_eval_nonzeroish", "self_eval_ascii_escape_seq");
        assert_eq!(t.expr, r#""\a\b\f\n\r\t\v\"\'\\""#);
        assert_eq!(
            t.expected,
            Expected::Value(Value::String("\x07\x08\x0c\n\r\t\x0b\"'\\".to_owned()))
        );
        assert_eq!(
            expected_value(
                &basic,
                "self_eval_nonzeroish",
                "self_eval_unicode_escape_eight"
            ),
            &Value::String("\u{1f431}".to_owned())
        );
        let t = find(
            &basic,
            "self_eval_nonzeroish",
            "self_eval_bytes_invalid_utf8",
        );
        assert_eq!(t.expr, r"b'\000\xff'");
        assert_eq!(t.expected, Expected::Value(Value::Bytes(vec![0x00, 0xff])));

        let parse = load("parse");
        let t = find(
            &parse,
            "string_literals",
            "single_quoted_escaped_punctuation",
        );
        assert_eq!(t.expr, r#"' \\ \? \" \' \` '"#);
        assert_eq!(
            t.expected,
            Expected::Value(Value::String(r#" \ ? " ' ` "#.to_owned()))
        );
        // Control characters are decoded into the expression itself.
        let t = find(
            &parse,
            "string_literals",
            "single_quoted_unescaped_special_control_characters",
        );
        assert_eq!(t.expr, "' \x07 \x08 \x0c \t \x0b '");
    }

    #[test]
    fn decoded_numbers() {
        let basic = load("basic");
        assert_eq!(
            expected_value(&basic, "self_eval_nonzeroish", "self_eval_int_negative_min"),
            &Value::Int(i64::MIN)
        );
        let math = load("math_ext");
        assert_eq!(
            expected_value(&math, "greatest_uint_result", "binary_first_arg_uint_max"),
            &Value::Uint(u64::MAX)
        );
        let fp = load("fp_math");
        assert_eq!(
            expected_value(&fp, "fp_math", "fp_overflow_positive"),
            &Value::Double(f64::INFINITY)
        );
        assert_eq!(
            expected_value(&fp, "fp_math", "fp_overflow_negative"),
            &Value::Double(f64::NEG_INFINITY)
        );
    }

    #[test]
    fn decoded_structures() {
        let types = load("type_deduction");
        assert_eq!(
            types.name, "type_deductions",
            "the name differs from the file"
        );
        let t = find(&types, "complex_initializers", "map");
        assert_eq!(
            t.expected,
            Expected::TypedResult {
                value: Some(Value::Map(vec![(
                    Value::String("abc".into()),
                    Value::Int(123)
                )])),
                deduced_type: Type::Map(
                    Box::new(Type::Primitive(Primitive::String)),
                    Box::new(Type::Primitive(Primitive::Int64)),
                ),
            }
        );
        let t = find(&types, "functions", "function_result_type");
        assert!(t.check_only);
        assert_eq!(
            t.type_env,
            [Decl::Function {
                name: "fn".into(),
                overloads: vec![Overload {
                    id: "fn_string_int".into(),
                    params: vec![
                        Type::Primitive(Primitive::String),
                        Type::Primitive(Primitive::Int64)
                    ],
                    type_params: vec![],
                    result: Type::Primitive(Primitive::String),
                    member: false,
                }],
            }]
        );

        let dynamic = load("dynamic");
        let t = find(&dynamic, "any", "field_assign_proto2");
        assert!(model::mentions_proto(t));
        let Expected::Value(Value::Object { type_url, message }) = &t.expected else {
            panic!("expected an object value: {t:?}");
        };
        assert_eq!(
            type_url,
            "type.googleapis.com/cel.expr.conformance.proto2.TestAllTypes"
        );
        let any = message.msg("single_any").expect("single_any");
        assert_eq!(
            any.get("value").and_then(Val::as_bytes),
            Some(&b"\x08\x96\x01"[..])
        );

        let basic = load("basic");
        let t = find(&basic, "self_eval_zeroish", "self_eval_int_zero");
        assert!(!model::mentions_proto(t));
        assert_eq!(t.expected, Expected::Value(Value::Int(0)));
    }
}
