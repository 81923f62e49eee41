//! Tests of the lists extension.

use crate::stdlib::testing::{check_compile_err, check_err, eval, same};

/// Evaluates `src == want` where `want` is CEL source, and also compares
/// the element kinds of the two sides (CEL equality ignores `1` vs `1u`).
#[track_caller]
fn check(src: &str, want: &str) {
    let got = eval(src);
    let expected = eval(want);
    assert!(
        matches!((&got, &expected), (Ok(g), Ok(w)) if same(g, w)),
        "{src}: got {got:?}, want {expected:?}"
    );
}

#[test]
fn slice() {
    check("[1, 2, 3, 4].slice(0, 4)", "[1, 2, 3, 4]");
    check("[1, 2, 3, 4].slice(1, 3)", "[2, 3]");
    check("[1, 2, 3, 4].slice(2, 4)", "[3, 4]");
    check("[1, 2, 3, 4].slice(4, 4)", "[]");
    check("[].slice(0, 0)", "[]");
    check_err(
        "[1, 2, 3, 4].slice(3, 0)",
        "cannot slice(3, 0), start index must be less than or equal to end index",
    );
    check_err(
        "[1, 2, 3, 4].slice(0, 10)",
        "cannot slice(0, 10), list is length 4",
    );
    check_err(
        "[1, 2, 3, 4].slice(-5, 10)",
        "cannot slice(-5, 10), negative indexes not supported",
    );
    check_err(
        "[1, 2, 3, 4].slice(-5, -3)",
        "negative indexes not supported",
    );
    check_compile_err("[1, 2].slice(0u, 1)");
}

#[test]
fn flatten() {
    check("[].flatten()", "[]");
    check("[1, [2, 3], [4]].flatten()", "[1, 2, 3, 4]");
    check("[1, [2, [3, 4]]].flatten()", "[1, 2, [3, 4]]");
    check("[1, 2, [], [], [3, 4]].flatten()", "[1, 2, 3, 4]");
    check("[[1], [2u], [3.0]].flatten()", "[1, 2u, 3.0]");
    check("[1, [2, [3, [4]]]].flatten(2)", "[1, 2, 3, [4]]");
    check("[1, [2, [3, [4]]]].flatten(0)", "[1, [2, [3, [4]]]]");
    check("[1, [2, [3, [4]]]].flatten(100)", "[1, 2, 3, 4]");
    check("[1, 2, 3].flatten(1)", "[1, 2, 3]");
    check("dyn([1, 2]).flatten()", "[1, 2]");
    check_err(
        "[1, [2, [3, [4]]]].flatten(-1)",
        "level must be non-negative",
    );
    // cel-go rejects flattening a list whose elements are not lists.
    check_compile_err("[1, 2].flatten()");
}

#[test]
fn sort() {
    check("[].sort()", "[]");
    check("[1].sort()", "[1]");
    check("[4, 3, 2, 1].sort()", "[1, 2, 3, 4]");
    check("[3u, 1u, 2u].sort()", "[1u, 2u, 3u]");
    check("[2.5, -1.0, 0.5].sort()", "[-1.0, 0.5, 2.5]");
    check("['d', 'a', 'b', 'c'].sort()", "['a', 'b', 'c', 'd']");
    check("[b'b', b'a'].sort()", "[b'a', b'b']");
    check("[true, false, true].sort()", "[false, true, true]");
    check(
        "[duration('2s'), duration('1s')].sort()",
        "[duration('1s'), duration('2s')]",
    );
    check(
        "[timestamp('2024-01-02T00:00:00Z'), timestamp('2024-01-01T00:00:00Z')].sort()",
        "[timestamp('2024-01-01T00:00:00Z'), timestamp('2024-01-02T00:00:00Z')]",
    );
    check("[2.0, 0.0/0.0, 1.0].sort()", "[1.0, 2.0, 0.0/0.0]");
    check_err("[1, 'b'].sort()", "list elements must have the same type");
    check_err("[1, 2u].sort()", "list elements must have the same type");
    check_err("[dyn([1])].sort()", "list elements must be comparable");
    check_err(
        "[dyn(null), null].sort()",
        "list elements must be comparable",
    );
    check_compile_err("[null, null].sort()");
    check_compile_err("[[1, 2, 3]].sort()");
    check_compile_err("[{'a': 1}].sort()");
}

#[test]
fn sort_by() {
    check("[].sortBy(x, x)", "[]");
    check("[3, 1, 2].sortBy(x, x)", "[1, 2, 3]");
    check("[3, 1, 2].sortBy(x, -x)", "[3, 2, 1]");
    // ngrok's documented example.
    check(
        "[{'name': 'foo', 'score': 0}, {'name': 'bar', 'score': -10}, \
          {'name': 'baz', 'score': 1000}].sortBy(e, e.score).map(e, e.name)",
        "['bar', 'foo', 'baz']",
    );
    // Stable: equal keys keep their order.
    check(
        "['bb', 'a', 'cc', 'b'].sortBy(s, s.size())",
        "['a', 'b', 'bb', 'cc']",
    );
    check_err(
        "[1, 2].sortBy(x, x == 1 ? dyn('a') : dyn(1))",
        "list elements must have the same type",
    );
    check_err("[1].sortBy(x, [x])", "list elements must be comparable");
    check_err("[1, 0].sortBy(x, 1 / x)", "division by zero");
}

#[test]
fn distinct() {
    check("[].distinct()", "[]");
    check("[1].distinct()", "[1]");
    check("[-2, 5, -2, 1, 1, 5, -2, 1].distinct()", "[-2, 5, 1]");
    check(
        "['c', 'a', 'a', 'b', 'a', 'b', 'c', 'c'].distinct()",
        "['c', 'a', 'b']",
    );
    check("[1, 2.0, 'c', 3, 'c', 1].distinct()", "[1, 2.0, 'c', 3]");
    check("[1, 1.0, 2, 2u].distinct()", "[1, 2]");
    check("[0.0, -0.0, 0].distinct()", "[0.0]");
    check(
        "[[1], [1], [1.0], [2], [1, 2], [1u, 2u]].distinct()",
        "[[1], [2], [1, 2]]",
    );
    check(
        "[{'a': 1, 'b': 2}, {'b': 2, 'a': 1}, {'a': 1}].distinct()",
        "[{'a': 1, 'b': 2}, {'a': 1}]",
    );
    check("[{1: 'x'}, {1u: 'x'}].distinct()", "[{1: 'x'}]");
    check("[b'a', b'a', 'a'].distinct()", "[b'a', 'a']");
    check("[null, null, false].distinct()", "[null, false]");
    // NaN is unequal to itself, so every NaN stays.
    check("size([0.0/0.0, 0.0/0.0].distinct())", "2");
    check(
        "size(lists.range(100000).map(i, i % 1000).distinct())",
        "1000",
    );
}

#[test]
fn reverse() {
    check("[].reverse()", "[]");
    check("[5, 1, 2, 3].reverse()", "[3, 2, 1, 5]");
    check("['are', 'you', 'as'].reverse()", "['as', 'you', 'are']");
    check("dyn([1, 'a']).reverse()", "['a', 1]");
}

#[test]
fn range() {
    check("lists.range(4)", "[0, 1, 2, 3]");
    check("lists.range(0)", "[]");
    check("size(lists.range(100000))", "100000");
    // A million elements are within the range cap but not within the
    // default evaluation budget: the cost limit stops it.
    check_err(
        "size(lists.range(1000000))",
        "evaluation cost limit exceeded",
    );
    check_err(
        "lists.range(-1)",
        "lists.range: size must be non-negative, got -1",
    );
    check_err("lists.range(1000001)", "exceeds maximum allowed (1000000)");
    check_err(
        "lists.range(9223372036854775807)",
        "exceeds maximum allowed",
    );
    check_compile_err("lists.range(1u)");
}

#[test]
fn composition() {
    check("lists.range(10).reverse().slice(0, 3)", "[9, 8, 7]");
    check("[[3, 1], [2]].flatten().sort()", "[1, 2, 3]");
    check("[3, 1, 3, 2].distinct().sort().reverse()", "[3, 2, 1]");
}
