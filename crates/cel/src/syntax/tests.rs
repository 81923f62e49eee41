//! Parser tests: what users see for good and bad input.

use super::*;
use crate::ast::Literal;

fn ok(src: &str) -> Expr {
    match parse(src) {
        Ok(e) => e,
        Err(d) => panic!("{src:?} failed: {d}"),
    }
}

fn err(src: &str) -> Diagnostic {
    match parse(src) {
        Ok(e) => panic!("{src:?} parsed: {e:?}"),
        Err(d) => d,
    }
}

#[test]
fn literals_decode() {
    let lit = |src: &str| match ok(src).kind {
        ExprKind::Literal(l) => l,
        other => panic!("{other:?}"),
    };
    assert_eq!(lit("-9223372036854775808"), Literal::Int(i64::MIN));
    assert_eq!(lit("0x1F"), Literal::Int(31));
    assert_eq!(lit("18446744073709551615u"), Literal::Uint(u64::MAX));
    assert_eq!(lit("1e3"), Literal::Double(1000.0));
    assert_eq!(
        lit(r#"'\x41\u00e9\101\n'"#),
        Literal::String(Arc::from("AéA\n"))
    );
    assert_eq!(lit(r"r'\n'"), Literal::String(Arc::from("\\n")));
    assert_eq!(lit(r"b'\xff'"), Literal::Bytes(Arc::from(&[0xffu8][..])));
    assert_eq!(lit("'''a\nb'''"), Literal::String(Arc::from("a\nb")));
}

#[test]
fn errors_point_at_the_problem() {
    let d = err("req.method = 'GET'");
    assert_eq!(d.code, code::SYNTAX);
    assert_eq!(d.span.start, 11);
    assert_eq!(d.help.as_deref(), Some("CEL compares with `==`"));
    let d = err("'\\q'");
    assert_eq!(d.code, code::LITERAL);
    assert_eq!(d.message, "invalid escape sequence `\\q`");
    assert_eq!(err("9223372036854775808").code, code::LITERAL);
    assert_eq!(err("has(x)").code, code::MACRO);
    assert_eq!(err("[1].all(1, true)").code, code::MACRO);
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_crash() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert_eq!(err(&deep).code, code::TOO_DEEP);
    let long = vec!["1"; 10_000].join(" + ");
    assert_eq!(err(&long).code, code::TOO_DEEP);
    let nots = format!("{}true", "!".repeat(10_000));
    assert_eq!(err(&nots).code, code::TOO_DEEP);
    // Long `||` chains are balanced and stay shallow.
    ok(&vec!["a"; 5_000].join(" || "));
    // The conformance suite's 32 levels parse.
    ok(&format!("{}7{}", "(".repeat(32), ")".repeat(32)));
}

#[test]
fn deep_conditionals_are_a_diagnostic_not_a_crash() {
    // `a ? 1 : a ? 2 : ...` recurses per `?`, in the then branch too.
    let chain: String = (0..10_000).map(|i| format!("a ? {i} : ")).collect();
    assert_eq!(err(&format!("{chain}0")).code, code::TOO_DEEP);
    let then = format!("{}1{}", "a ? ".repeat(10_000), " : 2".repeat(10_000));
    assert_eq!(err(&then).code, code::TOO_DEEP);
    // Conditionals that close (brackets) or end (list elements,
    // arguments) do not add up.
    ok(&vec!["(a ? 1 : 2)"; 200].join(" + "));
    ok(&format!("[{}]", vec!["a ? 1 : 2"; 500].join(", ")));
    ok(&format!(
        "{}0",
        (0..32).map(|i| format!("a ? {i} : ")).collect::<String>()
    ));
}

#[test]
fn spans_cover_their_text() {
    let src = "req.url.path.startsWith('/api')";
    let e = ok(src);
    assert_eq!(&src[e.span.range()], src);
    let ExprKind::Call {
        target: Some(t), ..
    } = &e.kind
    else {
        panic!()
    };
    assert_eq!(&src[t.span.range()], "req.url.path");
}

#[test]
fn unterminated_strings_are_named() {
    let d = err("req.method == 'POST");
    assert_eq!(d.message, "unterminated string literal");
    assert_eq!(d.span, Span::new(14, 19));
    assert_eq!(d.help.as_deref(), Some("close it with `'`"));
    let d = err("'''abc");
    assert_eq!(d.span, Span::new(0, 6));
    assert_eq!(d.help.as_deref(), Some("close it with `'''`"));
}

#[test]
fn errors_at_the_end_underline_the_last_character() {
    let d = err("foo(");
    assert_eq!(d.message, "unexpected end of expression");
    assert_eq!(d.span, Span::new(3, 4));
    assert_eq!(d.label.as_deref(), Some("expected an expression"));
}

#[test]
fn strings_cannot_hide_brackets_from_the_nesting_limit() {
    let deep = |open: &str, close: &str| format!("{}1{}", open.repeat(500), close.repeat(500));
    // A raw string ending in a backslash, then deep nesting.
    assert_eq!(
        err(&format!("r'\\' + {}", deep("(", ")"))).code,
        code::TOO_DEEP
    );
    // A triple-quoted string holding a lone quote.
    assert_eq!(
        err(&format!("'''x'y''' + {}", deep("[", "]"))).code,
        code::TOO_DEEP
    );
    // Brackets inside strings do not count.
    ok(&format!(
        "'{}' + \"{}\" + r'{}'",
        "(".repeat(200),
        "[".repeat(200),
        "{".repeat(200)
    ));
}

#[test]
fn reserved_words_are_not_names() {
    // `(message, label, underlined text)` of the error for `src`.
    let seen = |src: &str| {
        let d = err(src);
        (
            d.message,
            d.label.unwrap_or_default(),
            src[d.span.range()].to_string(),
        )
    };
    let expr = || "expected an expression".to_string();
    assert_eq!(
        seen("in + 1"),
        ("unexpected `in`".into(), expr(), "in".into())
    );
    assert_eq!(
        seen("a.b(as)"),
        ("unexpected `as`".into(), expr(), "as".into())
    );
    assert_eq!(
        seen("x ? while : y"),
        ("unexpected `while`".into(), expr(), "while".into())
    );
    assert_eq!(
        seen("!for"),
        ("unexpected `for`".into(), expr(), "for".into())
    );
    let name = "expected a name".to_string();
    assert_eq!(seen(".in"), ("unexpected `in`".into(), name, "in".into()));
    // After a dot, any word names a field.
    ok("a.in");
    ok("a.as()");
    ok("null.x");
}

#[test]
fn spans_follow_precedence() {
    // The underlined text of `e`.
    let text = |src: &'static str, e: &Expr| &src[e.span.range()];
    let args = |e: &Expr| match &e.kind {
        ExprKind::Call { args, .. } => args.clone(),
        other => panic!("{other:?}"),
    };
    let src = "a && b && c || d";
    let e = ok(src);
    let [and, d] = &args(&e)[..] else { panic!() };
    assert_eq!((text(src, and), text(src, d)), ("a && b && c", "d"));
    let src = "1 + 2 * 3";
    let [_, mul] = &args(&ok(src))[..] else {
        panic!()
    };
    assert_eq!(text(src, mul), "2 * 3");
    let src = "a ? b : c ? d : e";
    let [_, _, otherwise] = &args(&ok(src))[..] else {
        panic!()
    };
    assert_eq!(text(src, otherwise), "c ? d : e");
    // `-` before a number is part of the literal.
    let src = "- -1";
    let [inner] = &args(&ok(src))[..] else {
        panic!()
    };
    assert_eq!(inner.kind, ExprKind::Literal(Literal::Int(-1)));
    assert_eq!(text(src, inner), "-1");
    let src = "!!x";
    let [inner] = &args(&ok(src))[..] else {
        panic!()
    };
    assert_eq!(text(src, inner), "!x");
    // FIXME: a name or a field without arguments keeps a comment that
    // follows it in its span.
    let src = "a // c\n == b";
    let [a, _] = &args(&ok(src))[..] else {
        panic!()
    };
    assert_eq!(text(src, a), "a // c");
}

#[test]
fn operators_are_listed_in_declaration_order() {
    // `Op::function` indexes its table by `Op as usize`.
    for (i, op) in Op::ALL.iter().enumerate() {
        assert_eq!(*op as usize, i, "{op:?}");
        assert_eq!(&*op.function(), op.name());
    }
}
