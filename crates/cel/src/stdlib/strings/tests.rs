//! Tests for the strings extension, mostly the tricky cases of the cel-spec
//! `string_ext` conformance file.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail by panicking")]

use super::*;
use crate::eval::Bindings;
use crate::{CompileOptions, Type};

/// Compiles (checked) and evaluates `src` with no variables.
fn eval(src: &str) -> Result<Value<'static>, String> {
    let program = Env::standard()
        .compile(src)
        .map_err(|d| format!("compile error in {src:?}: {d:?}"))?;
    program
        .eval(&())
        .map(|v| v.to_static())
        .map_err(|e| e.to_string())
}

/// Compiles without type checking (the conformance `disable_check`) and evaluates.
fn eval_unchecked(src: &str) -> Result<Value<'static>, String> {
    let options = CompileOptions {
        check: false,
        ..CompileOptions::default()
    };
    let program = Env::standard()
        .compile_with(src, &options)
        .map_err(|d| format!("compile error in {src:?}: {d:?}"))?;
    program
        .eval(&())
        .map(|v| v.to_static())
        .map_err(|e| e.to_string())
}

#[track_caller]
fn assert_true(src: &str) {
    match eval(src) {
        Ok(Value::Bool(true)) => {}
        other => panic!("{src}: expected true, got {other:?}"),
    }
}

#[track_caller]
fn assert_str(src: &str, want: &str) {
    match eval(src) {
        Ok(Value::String(s)) => assert_eq!(&*s, want, "{src}"),
        other => panic!("{src}: expected {want:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_int(src: &str, want: i64) {
    match eval(src) {
        Ok(Value::Int(i)) => assert_eq!(i, want, "{src}"),
        other => panic!("{src}: expected {want}, got {other:?}"),
    }
}

#[track_caller]
fn assert_err(src: &str, want: &str) {
    match eval(src) {
        Err(e) => assert_eq!(e, want, "{src}"),
        other => panic!("{src}: expected error {want:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_unchecked_err(src: &str, want: &str) {
    match eval_unchecked(src) {
        Err(e) => assert_eq!(e, want, "{src}"),
        other => panic!("{src}: expected error {want:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_list(src: &str, want: &[&str]) {
    match eval(src) {
        Ok(Value::List(l)) => {
            let got: Vec<String> = l
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{v:?}"))
                })
                .collect();
            assert_eq!(got, want, "{src}");
        }
        other => panic!("{src}: expected {want:?}, got {other:?}"),
    }
}

#[test]
fn char_at() {
    assert_str("'tacocat'.charAt(3)", "o");
    assert_str("'tacocat'.charAt(7)", "");
    assert_true("'©αT'.charAt(0) == '©' && '©αT'.charAt(1) == 'α' && '©αT'.charAt(2) == 'T'");
    assert_err("'tacocat'.charAt(30) == ''", "index out of range: 30");
    assert_err("'tacocat'.charAt(-1)", "index out of range: -1");
    assert_str("''.charAt(0)", "");
}

#[test]
fn index_of() {
    assert_int("'tacocat'.indexOf('')", 0);
    assert_int("'tacocat'.indexOf('ac')", 1);
    assert_true("'tacocat'.indexOf('none') == -1");
    assert_true("'tacocat'.indexOf('', 3) == 3");
    assert_true("'tacocat'.indexOf('a', 3) == 5");
    assert_true("'tacocat'.indexOf('at', 3) == 5");
    assert_true("'ta©o©αT'.indexOf('©') == 2");
    assert_true("'ta©o©αT'.indexOf('©', 3) == 4");
    assert_true("'ta©o©αT'.indexOf('©αT', 3) == 4");
    assert_true("'ta©o©αT'.indexOf('©α', 5) == -1");
    assert_true("'ijk'.indexOf('k') == 2");
    assert_true("'hello wello'.indexOf('hello wello') == 0");
    assert_true("'hello wello'.indexOf('ello', 6) == 7");
    assert_true("'hello wello'.indexOf('elbo room!!') == -1");
    assert_err("'tacocat'.indexOf('a', 30) == -1", "index out of range: 30");
    assert_err("'tacocat'.indexOf('a', -1)", "index out of range: -1");
    // The end of the string is a valid offset (cel-go issue 1051).
    assert_int("''.indexOf('foo')", -1);
    assert_int("'abc'.indexOf('c', 3)", -1);
    assert_int("'abc'.indexOf('', 3)", 3);
}

#[test]
fn last_index_of() {
    assert_true("''.lastIndexOf('@@') == -1");
    assert_true("'tacocat'.lastIndexOf('') == 7");
    assert_true("'tacocat'.lastIndexOf('at') == 5");
    assert_true("'tacocat'.lastIndexOf('none') == -1");
    assert_true("'tacocat'.lastIndexOf('', 3) == 3");
    assert_true("'tacocat'.lastIndexOf('a', 3) == 1");
    assert_true("'ta©o©αT'.lastIndexOf('©') == 4");
    assert_true("'ta©o©αT'.lastIndexOf('©', 3) == 2");
    assert_true("'ta©o©αT'.lastIndexOf('©α', 4) == 4");
    assert_true("'hello wello'.lastIndexOf('ello', 6) == 1");
    assert_true("'hello wello'.lastIndexOf('low') == -1");
    assert_true("'hello wello'.lastIndexOf('elbo room!!') == -1");
    assert_true("'hello wello'.lastIndexOf('hello wello') == 0");
    // Overlapping occurrences.
    assert_true("'bananananana'.lastIndexOf('nana', 7) == 6");
    assert_int("'bananananana'.lastIndexOf('nana')", 8);
    assert_err(
        "'tacocat'.lastIndexOf('a', -1) == -1",
        "index out of range: -1",
    );
    assert_err(
        "'tacocat'.lastIndexOf('a', 30) == -1",
        "index out of range: 30",
    );
    assert_int("'abc'.lastIndexOf('abcd')", -1);
    assert_int("'abc'.lastIndexOf('c', 3)", 2);
}

#[test]
fn casing() {
    assert_true("'TacoCat'.lowerAscii() == 'tacocat'");
    assert_true("'TacoCÆt'.lowerAscii() == 'tacocÆt'");
    assert_true("'TacoCÆt Xii'.lowerAscii() == 'tacocÆt xii'");
    assert_true("'tacoCat'.upperAscii() == 'TACOCAT'");
    assert_true("'tacoCαt'.upperAscii() == 'TACOCαT'");
    assert_true("'TacoCÆt Xii'.upperAscii() == 'TACOCÆT XII'");
    assert_str("'TacoCÆt Xii'.lower()", "tacocæt xii");
    assert_str("'tacoCαt'.upper()", "TACOC\u{391}T");
    assert_str("'straße'.upper()", "STRASSE");
    assert_str("'already lower'.lower()", "already lower");
}

#[test]
fn replace() {
    assert_true("'12 days 12 hours'.replace('{0}', '2') == '12 days 12 hours'");
    assert_true("'{0} days {0} hours'.replace('{0}', '2') == '2 days 2 hours'");
    assert_true(
        "'{0} days {0} hours'.replace('{0}', '2', 1).replace('{0}', '23') == '2 days 23 hours'",
    );
    assert_true("'1 ©αT taco'.replace('αT', 'o©α') == '1 ©o©α taco'");
    assert_str("'hello hello'.replace('he', 'we', -1)", "wello wello");
    assert_str("'hello hello'.replace('he', 'we', 0)", "hello hello");
    // An empty search string matches before every code point and at the end.
    assert_str("'a©c'.replace('', '-')", "-a-©-c-");
    assert_str("'a©c'.replace('', '-', 2)", "-a-©c");
}

#[test]
fn split() {
    assert_true("'hello world'.split(' ') == ['hello', 'world']");
    assert_true("'hello world events!'.split(' ', 0) == []");
    assert_true("'hello world events!'.split(' ', 1) == ['hello world events!']");
    assert_true("'o©o©o©o'.split('©', -1) == ['o', 'o', 'o', 'o']");
    assert_list(
        "'hello hello hello'.split(' ', 2)",
        &["hello", "hello hello"],
    );
    assert_list("''.split(',')", &[""]);
    // An empty separator splits into code points.
    assert_list("'a©c'.split('')", &["a", "©", "c"]);
    assert_list("'a©cd'.split('', 2)", &["a", "©cd"]);
    assert_list("'a©c'.split('', 10)", &["a", "©", "c"]);
    assert_list("''.split('')", &[]);
}

#[test]
fn substring() {
    assert_true("'tacocat'.substring(4) == 'cat'");
    assert_true("'tacocat'.substring(7) == ''");
    assert_true("'tacocat'.substring(0, 4) == 'taco'");
    assert_true("'tacocat'.substring(4, 4) == ''");
    assert_true("'ta©o©αT'.substring(2, 6) == '©o©α'");
    assert_true("'ta©o©αT'.substring(7, 7) == ''");
    assert_err("'tacocat'.substring(40) == 'cat'", "index out of range: 40");
    assert_err("'tacocat'.substring(-1) == 'cat'", "index out of range: -1");
    assert_err(
        "'tacocat'.substring(1, 50) == 'cat'",
        "index out of range: 50",
    );
    assert_err(
        "'tacocat'.substring(49, 50) == 'cat'",
        "index out of range: 49",
    );
    assert_err(
        "'tacocat'.substring(4, 3) == ''",
        "invalid substring range. start: 4, end: 3",
    );
    assert_err("'tacocat'.substring(-2, -1)", "index out of range: -2");
}

#[test]
fn trim() {
    assert_true("' \\f\\n\\r\\t\\vtext  '.trim() == 'text'");
    assert_true("'\\u0085\\u00a0\\u1680text'.trim() == 'text'");
    assert_true(
        "'text\\u2000\\u2001\\u2002\\u2003\\u2004\\u2004\\u2006\\u2007\\u2008\\u2009'.trim() == 'text'",
    );
    assert_true("'\\u200atext\\u2028\\u2029\\u202F\\u205F\\u3000'.trim() == 'text'");
    assert_true(
        "'\\u180etext\\u200b\\u200c\\u200d\\u2060\\ufeff'.trim() == '\\u180etext\\u200b\\u200c\\u200d\\u2060\\ufeff'",
    );
    assert_str("'   '.trim()", "");
}

#[test]
fn join() {
    assert_true("['x', 'y'].join() == 'xy'");
    assert_true("['x', 'y'].join('-') == 'x-y'");
    assert_true("[].join() == ''");
    assert_true("[].join('-') == ''");
    assert_str("['only'].join(', ')", "only");
    assert_str("['a', '', 'c'].join('/')", "a//c");
    assert_unchecked_err("[1, 2].join()", "join: invalid input: 1");
}

#[test]
fn reverse() {
    assert_true("''.reverse() == ''");
    assert_true("'☺'.reverse() == '☺'");
    assert_true("'Ta©oCαt'.reverse() == 'tαCo©aT'");
}

#[test]
fn quote() {
    assert_true(r#"strings.quote("first\nsecond") == "\"first\\nsecond\"""#);
    assert_true(r#"strings.quote("bell\a") == "\"bell\\a\"""#);
    assert_true(r#"strings.quote("\bbackspace") == "\"\\bbackspace\"""#);
    assert_true(r#"strings.quote("\fform feed") == "\"\\fform feed\"""#);
    assert_true(r#"strings.quote("carriage \r return") == "\"carriage \\r return\"""#);
    assert_true(r#"strings.quote("horizontal tab\t") == "\"horizontal tab\\t\"""#);
    assert_true(r#"strings.quote("vertical \v tab") == "\"vertical \\v tab\"""#);
    assert_true(r#"strings.quote("double \\\\ slash") == "\"double \\\\\\\\ slash\"""#);
    assert_true(r#"strings.quote("ends with \\") == "\"ends with \\\\\"""#);
    assert_true(r#"strings.quote("mid string \" quote") == "\"mid string \\\" quote\"""#);
    assert_true(
        r#"strings.quote('single-quote with "double quote"') == "\"single-quote with \\\"double quote\\\"\"""#,
    );
    assert_str(
        r#"strings.quote("\U0001F431\U0001F600\U0001F61B")"#,
        "\"🐱😀😛\"",
    );
    assert_str(r#"strings.quote("")"#, "\"\"");
    assert_str(r#"strings.quote("завтра")"#, "\"завтра\"");
}

#[test]
fn format_basics() {
    assert_str(r#""no substitution".format([])"#, "no substitution");
    assert_str(
        r#""str is %s and some more".format(["filler"])"#,
        "str is filler and some more",
    );
    assert_str(r#""%% and also %%".format([])"#, "% and also %");
    assert_str(r#""%%%s%%".format(["text"])"#, "%text%");
    assert_str(
        r#""%s%%".format(["percent on the right"])"#,
        "percent on the right%",
    );
    assert_str(
        r#""%%%s".format(["percent on the left"])"#,
        "%percent on the left",
    );
    assert_str(
        r#""%d %d %d, %s %s %s, %d %d %d, %s %s %s".format([1, 2, 3, "A", "B", "C", 4, 5, 6, "D", "E", "F"])"#,
        "1 2 3, A B C, 4 5 6, D E F",
    );
    assert_str(r#""ünïcødé %s ✓".format(["ok"])"#, "ünïcødé ok ✓");
    // Unused arguments are ignored at run time.
    assert_str(r#""%s".format(["a", "b"])"#, "a");
}

#[test]
fn format_numbers() {
    assert_str(r#""%.3f".format([1.2345])"#, "1.234");
    assert_str(
        r#""this is 5 in binary: %b".format([5])"#,
        "this is 5 in binary: 101",
    );
    assert_str(
        r#""unsigned 64 in binary: %b".format([uint(64)])"#,
        "unsigned 64 in binary: 1000000",
    );
    assert_str(
        r#""bit set from bool: %b".format([true])"#,
        "bit set from bool: 1",
    );
    assert_str(r#""%o".format([11])"#, "13");
    assert_str(
        r#""this is an unsigned octal: %o".format([uint(65535)])"#,
        "this is an unsigned octal: 177777",
    );
    assert_str(
        r#""%x is 20 in hexadecimal".format([30])"#,
        "1e is 20 in hexadecimal",
    );
    assert_str(
        r#""%X is 20 in hexadecimal".format([30])"#,
        "1E is 20 in hexadecimal",
    );
    assert_str(
        r#""%X is 6000 in hexadecimal".format([uint(6000)])"#,
        "1770 is 6000 in hexadecimal",
    );
    assert_str(
        r#""%x".format(["Hello world!"])"#,
        "48656c6c6f20776f726c6421",
    );
    assert_str(
        r#""%X".format(["Hello world!"])"#,
        "48656C6C6F20776F726C6421",
    );
    assert_str(r#""%x".format([b"byte string"])"#, "6279746520737472696e67");
    assert_str(r#""%X".format([b"byte string"])"#, "6279746520737472696E67");
    assert_str(r#""%.6e".format([1052.032911275])"#, "1.052033e+03");
    assert_str(r#""%f".format([2.71828])"#, "2.718280");
    assert_str(r#""%f".format([2])"#, "2.000000");
    assert_str(r#""%f".format([3u])"#, "3.000000");
    assert_str(r#""%e".format([2.71828])"#, "2.718280e+00");
    assert_str(r#""%e".format([2])"#, "2.000000e+00");
    assert_str(r#""%e".format([3u])"#, "3.000000e+00");
    assert_str(r#""%.1e".format([-3.14])"#, "-3.1e+00");
    assert_str(r#""%e".format([1e-300])"#, "1.000000e-300");
    assert_str(r#""%.0e".format([5.0])"#, "5e+00");
    assert_str(r#""%d".format([uint(64)])"#, "64");
    assert_str(r#""%d".format([3.14])"#, "3.14");
    // Negative numbers keep their sign in every base.
    assert_str(
        r#""%b %o %x %X".format([-5, -8, -30, -30])"#,
        "-101 -10 -1e -1E",
    );
    assert_str(
        r#""%x".format([-9223372036854775807 - 1])"#,
        "-8000000000000000",
    );
    for (verb, value, want) in [
        ("e", "NaN", "NaN"),
        ("e", "Infinity", "Infinity"),
        ("e", "-Infinity", "-Infinity"),
        ("d", "NaN", "NaN"),
        ("d", "Infinity", "Infinity"),
        ("d", "-Infinity", "-Infinity"),
        ("f", "NaN", "NaN"),
        ("f", "Infinity", "Infinity"),
        ("f", "-Infinity", "-Infinity"),
    ] {
        assert_str(&format!(r#""%{verb}".format([double("{value}")])"#), want);
    }
}

#[test]
fn format_rounding() {
    assert_str(r#""%.0f".format([123.000000])"#, "123");
    assert_str(r#""%.0f".format([3.5001])"#, "4");
    assert_str(r#""%.0f".format([3.4999])"#, "3");
    assert_str(r#""%.0f".format([1.5])"#, "2");
    assert_str(r#""%.0f".format([2.5])"#, "2");
    assert_str(r#""%.3f".format([123.4999])"#, "123.500");
    assert_str(r#""%.3f".format([123.4994])"#, "123.499");
    assert_str(r#""%.3f".format([-123.4999])"#, "-123.500");
    assert_str(r#""%.3f".format([-123.4994])"#, "-123.499");
    assert_str(r#""%.5f".format([-1.2])"#, "-1.20000");
    assert_str(r#""%.1f".format([3.14])"#, "3.1");
}

#[test]
fn format_strings_of_every_kind() {
    assert_str(r#""%s".format([null])"#, "null");
    assert_str(r#""%s".format([999999999999])"#, "999999999999");
    assert_str(r#""%s".format([b"xyz"])"#, "xyz");
    assert_str(r#""%s".format([type("test string")])"#, "string");
    assert_str(
        r#""%s".format([timestamp("2023-02-03T23:31:20+00:00")])"#,
        "2023-02-03T23:31:20Z",
    );
    assert_str(r#""%s".format([duration("1h45m47s")])"#, "6347s");
    assert_str(r#""%s".format([duration("1.5s")])"#, "1.5s");
    assert_str(r#""%s".format([duration("-1ns")])"#, "-0.000000001s");
    assert_str(
        r#""%s".format([["abc", 3.14, null, [9, 8, 7, 6], timestamp("2023-02-03T23:31:20Z")]])"#,
        "[abc, 3.14, null, [9, 8, 7, 6], 2023-02-03T23:31:20Z]",
    );
    assert_str(
        r#""%s".format([{"key1": b"xyz", "key5": null, "key2": duration("2h"), "key4": true, "key3": 2.71828}])"#,
        "{key1: xyz, key2: 7200s, key3: 2.71828, key4: true, key5: null}",
    );
    assert_str(
        r#""%s".format([{1: "value1", uint(2): "value2", true: double("NaN")}])"#,
        "{1: value1, 2: value2, true: NaN}",
    );
    assert_str(r#""%s, %s".format([true, false])"#, "true, false");
    assert_str(r#""%s".format([dyn("a string")])"#, "a string");
    assert_str(r#""%s, %s".format([dyn(32), dyn(56.8)])"#, "32, 56.8");
    assert_str(r#""%d".format([dyn(128)])"#, "128");
    assert_str(r#""%x".format([dyn(500u)])"#, "1f4");
    assert_str(r#""%.3f".format([dyn(4.5)])"#, "4.500");
    assert_str(
        r#""%s".format([[double("NaN"), double("Infinity"), double("-Infinity")]])"#,
        "[NaN, Infinity, -Infinity]",
    );
    assert_str(
        r#""%s".format([dyn([6, 4.2, "a string"])])"#,
        "[6, 4.2, a string]",
    );
    assert_str(
        r#""%s".format([{"strKey":"x", 6:duration("422s"), true:42}])"#,
        "{6: 422s, strKey: x, true: 42}",
    );
    // Doubles never use an exponent, and keep only significant digits.
    assert_str(
        r#""%s %s %s".format([1e21, 1e-7, -0.0])"#,
        "1000000000000000000000 0.0000001 -0",
    );
    // Invalid UTF-8 becomes one replacement character per run.
    assert_str(
        r#""%s".format([b"a\xff\xfeb\xffc"])"#,
        "a\u{FFFD}b\u{FFFD}c",
    );
}

#[test]
fn format_errors() {
    assert_unchecked_err(
        r#""%a".format([1])"#,
        r#"could not parse formatting clause: unrecognized formatting clause "a""#,
    );
    assert_unchecked_err(r#""%d %d %d".format([0, 1])"#, "index 2 out of range");
    assert_unchecked_err(
        r#""string is %b".format(["abc"])"#,
        "error during formatting: only integers and bools can be formatted as binary, was given string",
    );
    assert_unchecked_err(
        r#""%d".format([duration("30m2s")])"#,
        "error during formatting: decimal clause can only be used on integers, was given google.protobuf.Duration",
    );
    assert_unchecked_err(
        r#""octal: %o".format(["a string"])"#,
        "error during formatting: octal clause can only be used on integers, was given string",
    );
    assert_unchecked_err(
        r#""double is %x".format([0.5])"#,
        "error during formatting: only integers, byte buffers, and strings can be formatted as hex, was given double",
    );
    assert_unchecked_err(
        r#""double is %E".format([0.5])"#,
        r#"could not parse formatting clause: unrecognized formatting clause "E""#,
    );
    assert_unchecked_err(
        r#""null: %d".format([null])"#,
        "error during formatting: decimal clause can only be used on integers, was given null_type",
    );
    assert_unchecked_err(
        r#""null: %e".format([null])"#,
        "error during formatting: scientific clause can only be used on doubles, was given null_type",
    );
    assert_unchecked_err(
        r#""null: %f".format([null])"#,
        "error during formatting: fixed-point clause can only be used on doubles, was given null_type",
    );
    assert_unchecked_err(
        r#""null: %X".format([null])"#,
        "error during formatting: only integers, byte buffers, and strings can be formatted as hex, was given null_type",
    );
    assert_unchecked_err(
        r#""null: %b".format([null])"#,
        "error during formatting: only integers and bools can be formatted as binary, was given null_type",
    );
    assert_unchecked_err(
        r#""null: %o".format([null])"#,
        "error during formatting: octal clause can only be used on integers, was given null_type",
    );
    assert_unchecked_err(r#""%".format([])"#, "index 0 out of range");
    assert_unchecked_err(r#""abc %".format([1])"#, "unexpected end of string");
    assert_unchecked_err(
        r#""%.3".format([1.0])"#,
        "could not parse formatting clause: error while parsing precision: could not find end of precision specifier",
    );
    assert_unchecked_err(
        r#""%.f".format([1.0])"#,
        r#"could not parse formatting clause: error while parsing precision: error while converting precision to integer: strconv.Atoi: parsing "": invalid syntax"#,
    );
    assert_unchecked_err(
        r#""%.1001f".format([1.0])"#,
        "could not parse formatting clause: error while parsing precision: precision 1001 exceeds maximum allowed precision 1000",
    );
}

#[test]
fn type_errors_without_checking() {
    let no_overload = |src: &str| match eval_unchecked(src) {
        Err(e) => assert!(e.contains("no matching overload"), "{src}: {e}"),
        other => panic!("{src}: expected an error, got {other:?}"),
    };
    for src in [
        "42.charAt(2) == ''",
        "'hello'.charAt(true) == ''",
        "24.indexOf('2') == 0",
        "'hello'.indexOf(true) == 1",
        "42.indexOf('4', 0) == 0",
        "'42'.indexOf(4, 0) == 0",
        "'42'.indexOf('4', '0') == 0",
        "'42'.indexOf('4', 0, 1) == 0",
        "42.split('2') == ['4']",
        "42.replace(2, 1) == '41'",
        "'42'.replace(2, 1) == '41'",
        "'42'.replace('2', 1) == '41'",
        "42.replace('2', '1', 1) == '41'",
        "'42'.replace(2, '1', 1) == '41'",
        "'42'.replace('2', 1, 1) == '41'",
        "'42'.replace('2', '1', '1') == '41'",
        "'42'.replace('2', '1', 1, false) == '41'",
        "42.split('') == ['4', '2']",
        "'42'.split(2) == ['4']",
        "42.split('2', '1') == ['4']",
        "'42'.split(2, 1) == ['4']",
        "'42'.split('2', '1') == ['4']",
        "'42'.split('2', 1, 1) == ['4']",
        "'hello'.substring(1, 2, 3) == ''",
        "30.substring(true, 3) == ''",
        "'tacocat'.substring(true, 3) == ''",
        "'tacocat'.substring(0, false) == ''",
    ] {
        no_overload(src);
    }
}

#[test]
fn implementations_reject_wrong_kinds() {
    // Called directly, as a dispatcher that skipped kind checks would.
    assert!(super::char_at(Value::Int(42), Value::Int(2)).is_err());
    assert!(index_of_offset(&[Value::str("42"), Value::Int(4), Value::Int(0)]).is_err());
    assert!(super::replace(&[Value::str("42"), Value::str("2")]).is_err());
    assert!(super::format(Value::str("%s"), Value::Int(1)).is_err());
    assert!(super::join(Value::str("x")).is_err());
    assert!(super::quote(Value::Int(1)).is_err());
}

#[test]
fn parts_borrow_from_borrowed_input() {
    let mut env = Env::standard();
    let s = env.declare_var("s", Type::String);
    let mut vars = Bindings::new();
    vars.set(s, Value::str("  ta©o©αT  "));
    let borrowed = |src: &str, want: &str| {
        let program = env.compile(src).unwrap();
        match program.eval(&vars).unwrap() {
            Value::String(Str::Borrowed(got)) => assert_eq!(got, want, "{src}"),
            other => panic!("{src}: expected a borrowed string, got {other:?}"),
        }
    };
    borrowed("s.trim()", "ta©o©αT");
    borrowed("s.substring(4)", "©o©αT  ");
    borrowed("s.substring(4, 7)", "©o©");
    borrowed("s.charAt(5)", "o");
    // No upper-case letters: nothing to change, nothing to copy.
    borrowed("s.substring(0, 6).lowerAscii()", "  ta©o");
    borrowed("s.split('©')[1]", "o");
    borrowed("[s].join(', ')", "  ta©o©αT  ");
    borrowed("s.replace('x', 'y')", "  ta©o©αT  ");
    borrowed("s.format([])", "  ta©o©αT  ");
}

#[test]
fn helpers() {
    assert_eq!(byte_at("a©c", 0), Some(0));
    assert_eq!(byte_at("a©c", 2), Some(3));
    assert_eq!(byte_at("a©c", 3), Some(4));
    assert_eq!(byte_at("a©c", 4), None);
    assert_eq!(byte_at("a©c", -1), None);
    assert_eq!(split_str("a,b,c", ",", 2), ["a", "b,c"]);
    assert_eq!(split_str("abc", "", -1), ["a", "b", "c"]);
    assert_eq!(split_str("abc", "", 0), Vec::<&str>::new());
    assert_eq!(index_from("aaa", "aa", 1), Ok(1));
    assert_eq!(last_index_from("aaa", "aa", 2), Ok(1));
}
