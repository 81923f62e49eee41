//! The YAML layer: spans as users see them, underlined text included.

use super::*;

fn root(src: &str) -> Node {
    let (node, diags) = parse(src);
    assert!(diags.is_empty(), "{src:?}: {diags:?}");
    node.expect("a document")
}

/// The scalar at `path` (map keys and list indices, as strings).
fn at<'n>(node: &'n Node, path: &[&str]) -> &'n Node {
    path.iter().fold(node, |n, key| match &n.kind {
        NodeKind::Map(entries) => {
            &entries
                .iter()
                .find(|(k, _)| k.scalar().is_some_and(|s| s.value == *key))
                .expect("key")
                .1
        }
        NodeKind::Seq(items) => &items[key.parse::<usize>().expect("index")],
        NodeKind::Scalar(_) => panic!("no {key} in a scalar"),
    })
}

/// The source text that `range` of the scalar's value maps to.
fn underline<'s>(src: &'s str, node: &Node, value_range: std::ops::Range<usize>) -> &'s str {
    let span = node.value_span(src, Span::new(value_range.start, value_range.end));
    &src[span.range()]
}

#[test]
fn spans_cover_nodes() {
    let src = "on_http_request:\n  - name: one\n    actions: [deny]\n";
    let doc = root(src);
    assert_eq!(
        &src[at(&doc, &["on_http_request", "0", "name"]).span.range()],
        "one"
    );
    assert_eq!(
        &src[at(&doc, &["on_http_request", "0", "actions"]).span.range()],
        "[deny]"
    );
}

#[test]
fn positions_inside_scalars_map_to_the_document() {
    // Plain, with a multi-byte character before the expression.
    let src = "é: req.method == 'GET'\n";
    let doc = root(src);
    let n = at(&doc, &["é"]);
    assert_eq!(underline(src, n, 11..13), "==");

    // Double-quoted with an escape before the target.
    let src = "x: \"a\\tb == req.mehtod\"\n";
    let doc = root(src);
    let n = at(&doc, &["x"]);
    assert_eq!(
        n.scalar().map(|s| s.value.as_str()),
        Some("a\tb == req.mehtod")
    );
    assert_eq!(underline(src, n, 7..17), "req.mehtod");

    // Single-quoted with a doubled quote.
    let src = "x: 'req.method == ''GET'' && bad'\n";
    let doc = root(src);
    let n = at(&doc, &["x"]);
    assert_eq!(underline(src, n, 23..26), "bad");

    // Literal block: indentation is not part of the value.
    let src = "x: |\n  req.method == 'GET' &&\n    bad.thing\n";
    let doc = root(src);
    let n = at(&doc, &["x"]);
    let value = &n.scalar().map(|s| s.value.clone()).unwrap_or_default();
    let start = value.find("bad").expect("bad in value");
    assert_eq!(underline(src, n, start..start + 9), "bad.thing");

    // Folded block: the line break becomes a space.
    let src = "x: >\n  req.method == 'GET' &&\n  bad.thing\n";
    let doc = root(src);
    let n = at(&doc, &["x"]);
    let value = &n.scalar().map(|s| s.value.clone()).unwrap_or_default();
    let start = value.find("bad").expect("bad in value");
    assert_eq!(underline(src, n, start..start + 9), "bad.thing");
}

#[test]
fn json_is_read_the_same_way() {
    let src = r#"{"on_http_request": [{"actions": [{"type": "deny"}]}]}"#;
    let doc = root(src);
    assert_eq!(
        &src[at(&doc, &["on_http_request", "0", "actions", "0", "type"])
            .span
            .range()],
        "\"deny\""
    );
}

#[test]
fn problems_are_diagnostics() {
    let (_, diags) = parse("a: [1, 2\n");
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code, code::YAML);
    assert!(diags[0].message.starts_with("invalid YAML"));

    let src = "a: 1\nb: 2\na: 3\n";
    let (_, diags) = parse(src);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].message, "duplicate key `a`");
    assert_eq!(
        diags[0].help.as_deref(),
        Some("the first is on line 1; remove one")
    );
    assert_eq!(&src[diags[0].span.range()], "a");

    let (_, diags) = parse("a: 1\n---\nb: 2\n");
    assert_eq!(diags[0].message, "a policy file holds one document");
}

#[test]
fn alias_bombs_stop_at_the_size_limit() {
    let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for name in 'b'..='j' {
        src.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        prev = name;
    }
    let (_, diags) = parse(&src);
    assert!(
        diags.iter().any(|d| d.message.contains("too large")),
        "{diags:?}"
    );
}
