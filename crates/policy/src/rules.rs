//! Checks across rules and actions that ngrok makes (spec §1.7: actions
//! after a terminating action, one sign-in action per policy) and lints
//! beyond ngrok: header look-ups with upper-case keys, conditions that are
//! always true or false, rules that can never run, duplicated rules.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use portcullis_cel::Diagnostic;
use portcullis_cel::ast::{Expr, ExprKind, Literal};

use crate::code;
use crate::document::{Action, PhaseRules, Policy, Rule};
use crate::yaml::{Node, NodeKind};

/// Actions that always end the phase (ngrok's "terminating" set).
/// `forward-internal` does unless `on_error: continue`.
fn terminates(action: &Action) -> bool {
    match action.kind.as_str() {
        "close-connection" | "custom-response" | "deny" => true,
        "forward-internal" => !config_says(action, "on_error", "continue"),
        _ => false,
    }
}

/// The value of `key` in the action's config.
pub(crate) fn config_value<'a>(action: &'a Action, key: &str) -> Option<&'a Node> {
    action.config.as_ref()?.get(key)
}

/// Variables `set-vars` sets in a phase that nothing in the phase reads
/// (`vars` are scoped per phase). Reads are found in the text of the
/// phase's expressions and config strings: `vars.name` or `vars['name']`.
fn unused_vars(phase: &PhaseRules, src: &str, out: &mut Vec<Diagnostic>) {
    let mut set: Vec<&Node> = Vec::new();
    let mut text = String::new();
    for rule in &phase.rules {
        for e in &rule.expressions {
            text.push_str(src.get(e.span.range()).unwrap_or(""));
            text.push('\n');
        }
        for action in &rule.actions {
            let Some(config) = &action.config else {
                continue;
            };
            if action.kind == "set-vars" {
                if let Some(Node {
                    kind: NodeKind::Seq(items),
                    ..
                }) = config_value(action, "vars")
                {
                    for item in items {
                        if let NodeKind::Map(entries) = &item.kind {
                            set.extend(entries.iter().map(|(k, _)| k));
                            for (_, v) in entries {
                                text.push_str(src.get(v.span.range()).unwrap_or(""));
                                text.push('\n');
                            }
                        }
                    }
                }
            } else {
                text.push_str(src.get(config.span.range()).unwrap_or(""));
                text.push('\n');
            }
        }
    }
    for key in set {
        let Some(name) = key.scalar().map(|s| s.value.as_str()) else {
            continue;
        };
        let read = [
            format!("vars.{name}"),
            format!("vars['{name}']"),
            format!("vars[\"{name}\"]"),
        ]
        .iter()
        .any(|pattern| {
            text.match_indices(pattern.as_str()).any(|(i, m)| {
                !text[i + m.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        });
        if !read {
            out.push(
                Diagnostic::warning(
                    code::lint::UNUSED_VAR,
                    key.span,
                    format!("`vars.{name}` is set but never read in this phase"),
                )
                .with_help("`vars` do not carry over to other phases; read it here, or remove it"),
            );
        }
    }
}

/// Anchors that leave nothing to match: `$` followed by text that must be
/// matched (`a$b`), or text that must be matched followed by `^` (`a^b`),
/// outside multi-line mode.
pub(crate) fn regex_never_matches(
    pattern: &str,
    span: portcullis_cel::Span,
    out: &mut Vec<Diagnostic>,
) {
    use regex_syntax::hir::{HirKind, Look};
    let Ok(hir) = regex_syntax::parse(pattern) else {
        return;
    };
    let HirKind::Concat(parts) = hir.kind() else {
        return;
    };
    let needs_text =
        |h: &regex_syntax::hir::Hir| h.properties().minimum_len().is_some_and(|n| n > 0);
    let end = parts
        .iter()
        .position(|p| matches!(p.kind(), HirKind::Look(Look::End)));
    let start = parts
        .iter()
        .rposition(|p| matches!(p.kind(), HirKind::Look(Look::Start)));
    let after_end = end.is_some_and(|i| parts.iter().skip(i + 1).any(needs_text));
    let before_start = start.is_some_and(|i| parts.iter().take(i).any(needs_text));
    if after_end || before_start {
        let anchor = if after_end { "`$`" } else { "`^`" };
        out.push(
            Diagnostic::warning(code::lint::REGEX_NEVER_MATCHES, span, format!("this regular expression can never match: {anchor} stands where text must still be matched"))
                .with_help("`^` matches only at the start of the text and `$` only at its end; escape them (`\\^`, `\\$`) to match the characters"),
        );
    }
}

/// `users?id=([0-9]+)`: a `?` after a letter and before `name=` makes the
/// letter optional; the writer meant the query's `?` (ngrok's own redirect
/// example does this, and never matches the request it shows).
fn regex_query_mark(pattern: &str, from: &Node, src: &str, out: &mut Vec<Diagnostic>) {
    let bytes = pattern.as_bytes();
    let (mut escaped, mut class) = (false, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'[' => class = true,
            b']' => class = false,
            b'?' if !class && i > 0 && bytes[i - 1].is_ascii_alphanumeric() => {
                let rest = &bytes[i + 1..];
                let name = rest
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                    .count();
                if name > 0 && rest.get(name) == Some(&b'=') {
                    let prev = char::from(bytes[i - 1]);
                    out.push(
                        Diagnostic::warning(
                            code::lint::REGEX_QUERY_MARK,
                            from.value_span(src, portcullis_cel::Span::new(i, i + 1)),
                            format!("this `?` makes the `{prev}` before it optional; it does not match the query's `?`"),
                        )
                        .with_help("write `\\?` to match the `?` that starts the query"),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Whether the action's config sets `key` to the plain string `value`.
fn config_says(action: &Action, key: &str, value: &str) -> bool {
    let Some(Node {
        kind: NodeKind::Map(entries),
        ..
    }) = &action.config
    else {
        return false;
    };
    entries.iter().any(|(k, v)| {
        k.scalar().is_some_and(|s| s.value == key) && v.scalar().is_some_and(|s| s.value == value)
    })
}

/// Sign-in actions, of which a policy may hold one (ERR_NGROK_2239).
/// `basic-auth` is not one of them: ngrok's own examples put it beside
/// `oauth` (machine clients with credentials, people through sign-in).
const AUTH_ACTIONS: &[&str] = &["oauth", "openid-connect", "saml"];

/// The checks across rules and actions of a whole policy.
pub(crate) fn check(policy: &Policy, src: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut auth: Vec<&Action> = Vec::new();
    for phase in &policy.phases {
        check_phase(phase, src, &mut out);
        auth.extend(
            phase
                .rules
                .iter()
                .flat_map(|r| &r.actions)
                .filter(|a| AUTH_ACTIONS.contains(&a.kind.as_str())),
        );
    }
    if let [first, rest @ ..] = auth.as_slice() {
        for extra in rest {
            out.push(
                Diagnostic::error(
                    code::MULTIPLE_AUTH,
                    extra.kind_span,
                    format!(
                        "a policy may hold one sign-in action; `{}` is another",
                        extra.kind
                    ),
                )
                .with_label(format!("the first is `{}`", first.kind))
                .with_help("keep one of `oauth`, `openid-connect`, `saml` (ERR_NGROK_2239, ERR_NGROK_1679)"),
            );
        }
    }
    out
}

fn check_phase(phase: &PhaseRules, src: &str, out: &mut Vec<Diagnostic>) {
    unused_vars(phase, src, out);
    for action in phase.rules.iter().flat_map(|r| &r.actions) {
        if matches!(action.kind.as_str(), "redirect" | "url-rewrite")
            && let Some(from) = config_value(action, "from")
            && let Some(s) = from.scalar()
            && !s.value.contains("${")
        {
            regex_never_matches(&s.value, from.span, out);
            regex_query_mark(&s.value, from, src, out);
        }
    }
    let mut ended_by: Option<&Rule> = None;
    let mut seen: HashMap<String, &Rule> = HashMap::new();
    for (i, rule) in phase.rules.iter().enumerate() {
        // Actions after a terminating action never run.
        if let Some((pos, term)) = rule.actions.iter().enumerate().find(|(_, a)| terminates(a)) {
            for later in rule.actions.iter().skip(pos + 1) {
                out.push(
                    Diagnostic::error(code::UNREACHABLE_ACTION, later.kind_span, format!("`{}` can never run: `{}` before it ends the phase", later.kind, term.kind))
                        .with_help("move it before the terminating action, or into a rule of its own (ERR_NGROK_2207)"),
                );
            }
        }
        if let Some(prev) = ended_by {
            out.push(
                Diagnostic::warning(code::lint::UNREACHABLE_RULE, rule.span, "this rule can never run")
                    .with_label(format!("rule {} always ends the phase", rule_name(prev, i)))
                    .with_help("the earlier rule has no expressions and a terminating action; give it a condition, or remove this rule"),
            );
        } else if rule.expressions.is_empty() && rule.actions.iter().any(terminates) {
            ended_by = Some(rule);
        }
        if rule.actions.is_empty() {
            continue;
        }
        match seen.entry(rule_key(rule)) {
            Entry::Occupied(earlier) => out.push(
                Diagnostic::warning(
                    code::lint::DUPLICATE_RULE,
                    rule.span,
                    "this rule repeats an earlier one",
                )
                .with_label(format!(
                    "same expressions and actions as {}",
                    rule_name(earlier.get(), i)
                ))
                .with_help("remove one of them"),
            ),
            Entry::Vacant(slot) => {
                slot.insert(rule);
            }
        }
    }
}

fn rule_name(rule: &Rule, _index: usize) -> String {
    match &rule.name {
        Some(name) => format!("`{name}`"),
        None => "an earlier rule".to_string(),
    }
}

/// What makes two rules the same: their expressions and their actions
/// (configs compared as parsed, not as spelled).
fn rule_key(rule: &Rule) -> String {
    let mut key = String::new();
    for e in &rule.expressions {
        if let Some(s) = e.scalar() {
            key.push_str(s.value.trim());
            key.push('\u{1}');
        }
    }
    key.push('\u{2}');
    for a in &rule.actions {
        key.push_str(&a.kind);
        if let Some(config) = &a.config {
            key.push_str(&shape(config));
        }
        key.push('\u{1}');
    }
    key
}

/// A node's content without spans.
fn shape(n: &Node) -> String {
    match &n.kind {
        NodeKind::Scalar(s) => format!("{:?}", s.value),
        NodeKind::Seq(items) => format!(
            "[{}]",
            items.iter().map(shape).collect::<Vec<_>>().join(",")
        ),
        NodeKind::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}:{}", shape(k), shape(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// A condition that folded to a constant.
pub(crate) fn constant_condition(node: &Node, value: bool) -> Diagnostic {
    Diagnostic::warning(
        code::lint::CONSTANT_CONDITION,
        node.span,
        format!("this condition is always `{value}`"),
    )
    .with_help(if value {
        "remove it: a rule without expressions always runs"
    } else {
        "the rule can never run; fix the condition or remove the rule"
    })
}

const HEADER_MAPS: &[&str] = &["req.headers", "res.headers", "req.trailers", "res.trailers"];

/// The lints that read an expression's tree: header names with upper-case
/// letters, and `matches` patterns that can never match.
pub(crate) fn expression_lints(expr: &Expr, node: &Node, src: &str, out: &mut Vec<Diagnostic>) {
    deployment_reads(expr, 0, node, src, out);
    expression_lints_below(expr, node, src, out);
}

fn expression_lints_below(expr: &Expr, node: &Node, src: &str, out: &mut Vec<Diagnostic>) {
    header_case(expr, node, src, out);
    if let ExprKind::Call {
        function,
        target,
        args,
        ..
    } = &expr.kind
        && &**function == "matches"
    {
        let pattern = match (target, args.as_slice()) {
            (Some(_), [p]) | (None, [_, p]) => Some(p),
            _ => None,
        };
        if let Some(Expr {
            kind: ExprKind::Literal(Literal::String(p)),
            span,
            ..
        }) = pattern
        {
            regex_never_matches(p, node.value_span(src, *span), out);
        }
    }
    for child in expr.children() {
        expression_lints_below(child, node, src, out);
    }
}

/// Whether `name` is a variable of IP intelligence, which the deployment
/// provides (MaxMind databases, category lists) or leaves absent.
fn is_intel(name: &str) -> bool {
    if name.starts_with("conn.geo.") {
        return true;
    }
    let rest = name
        .strip_prefix("conn.client_ip.")
        .or_else(|| name.strip_prefix("conn.server_ip."));
    rest.is_some_and(|r| {
        ["geo.", "as."].iter().any(|p| r.starts_with(p))
            || ["categories", "is_tor_node", "is_on_blocklist"].contains(&r)
    })
}

/// `deployment-data`: each IP intelligence variable `expr` reads, whose
/// value comes from the deployment, not the policy. `offset` is where the
/// expression starts in `node`'s value (an interpolation's place).
pub(crate) fn deployment_reads(
    expr: &Expr,
    offset: usize,
    node: &Node,
    src: &str,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(name) = expr.qualified_name()
        && is_intel(&name)
    {
        let span = portcullis_cel::Span::new(
            offset + expr.span.start as usize,
            offset + expr.span.end as usize,
        );
        out.push(
            Diagnostic::warning(
                code::lint::DEPLOYMENT_DATA,
                node.value_span(src, span),
                format!("`{name}` comes from the deployment's IP intelligence, and is absent without it"),
            )
            .with_help("name MaxMind DB files under `ip_intelligence:` in the config (`--ip-intelligence FILE`), or address lists under `ip_categories:` (`--ip-category CATEGORY=FILE`); a rule that reads an absent variable fails"),
        );
        return;
    }
    for child in expr.children() {
        deployment_reads(child, offset, node, src, out);
    }
}

/// `req.headers['X-Api-Key']` and `'X-Api-Key' in req.headers` never match:
/// header names are lower-case there. Checks `expr` itself; the walk is in
/// [`expression_lints`].
fn header_case(expr: &Expr, node: &Node, src: &str, out: &mut Vec<Diagnostic>) {
    if let ExprKind::Call {
        function,
        args,
        target: None,
        ..
    } = &expr.kind
    {
        let key = match (&**function, args.as_slice()) {
            ("_[_]", [map, key]) if is_header_map(map) => Some(key),
            ("@in", [key, map]) if is_header_map(map) => Some(key),
            _ => None,
        };
        if let Some(Expr {
            kind: ExprKind::Literal(Literal::String(name)),
            span,
            ..
        }) = key
            && name.chars().any(|c| c.is_ascii_uppercase())
        {
            let lower = name.to_ascii_lowercase();
            out.push(
                Diagnostic::warning(
                    code::lint::HEADER_CASE,
                    node.value_span(src, *span),
                    format!("header names are lower-case here: `{name}` never matches"),
                )
                .with_help(format!("write '{lower}'")),
            );
        }
    }
}

fn is_header_map(e: &Expr) -> bool {
    e.qualified_name()
        .is_some_and(|n| HEADER_MAPS.contains(&n.as_str()))
}
