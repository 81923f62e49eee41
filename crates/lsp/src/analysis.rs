//! What the server says of a document: lint's diagnostics, hover text,
//! completions, and where a `vars.x` is set. Each works on the text as it
//! is now, with no state of its own: an editor sends the whole text on
//! every change.

use portcullis_policy::schema::{Phase, variables};
use serde_json::{Value, json};

use crate::text;

/// Lint's findings, as the protocol's diagnostics: the same codes, spans,
/// messages and help as `portcullis lint` (the checks, without the
/// compile: [`compile_diagnostics`] adds what that finds).
pub fn diagnostics(src: &str) -> Vec<Value> {
    let (_, diags) = portcullis_policy::check_all(src);
    diags.iter().map(|d| to_lsp(src, d)).collect()
}

/// What the proxy's compile finds beyond the checks, for a policy without
/// errors (as lint compiles it). Slower than the checks (a 1,000-rule
/// policy: tens of milliseconds), so the server sends it second.
pub fn compile_diagnostics(src: &str) -> Vec<Value> {
    let (policies, diags) = portcullis_policy::check_all(src);
    if diags.iter().any(portcullis_cel::Diagnostic::is_error) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for checked in &policies {
        if let Err(errors) = portcullis_runtime::Pipeline::compile(
            &checked.policy,
            src,
            &portcullis_runtime::Options::default(),
        ) {
            out.extend(errors.iter().map(|d| to_lsp(src, d)));
        }
    }
    out
}

fn to_lsp(src: &str, d: &portcullis_cel::Diagnostic) -> Value {
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    json!({
        "range": text::range(src, d.span.start as usize, d.span.end as usize),
        "severity": if d.is_error() { 1 } else { 2 },
        "code": d.code,
        "source": "portcullis",
        "message": message,
    })
}

/// The dotted name (`req.url.path`) around byte `at`, and where it starts.
fn dotted_at(src: &str, at: usize) -> Option<(usize, &str)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let start = src[..at]
        .char_indices()
        .rev()
        .take_while(|(_, c)| ident(*c))
        .last()
        .map_or(at, |(i, _)| i);
    let end = src[at..]
        .char_indices()
        .find(|(_, c)| !ident(*c))
        .map_or(src.len(), |(i, _)| at + i);
    let word = src.get(start..end)?.trim_matches('.');
    (!word.is_empty()).then_some((start, word))
}

/// The action type of the action whose config holds the line at `at`:
/// the nearest `type:` above it, less indented than the line.
fn enclosing_action(src: &str, at: usize) -> Option<&str> {
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &src[line_start..];
    let indent = line.len() - line.trim_start().len();
    for prev in src[..line_start].lines().rev() {
        let trimmed = prev.trim_start().trim_start_matches("- ");
        let prev_indent = prev.len() - prev.trim_start().len();
        if let Some(kind) = trimmed.strip_prefix("type:")
            && prev_indent < indent
        {
            return Some(kind.trim().trim_matches(['"', '\'']));
        }
        // Another rule or phase above: no action encloses the line.
        if prev_indent == 0 && !prev.trim().is_empty() && !prev.starts_with('#') {
            return None;
        }
    }
    None
}

/// Markdown hover for what is at byte `at`: a variable, a function, an
/// action type, or a config field.
pub fn hover(src: &str, at: usize) -> Option<String> {
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[at..].find('\n').map_or(src.len(), |i| at + i);
    let line = &src[line_start..line_end];
    // `type: deny`
    if let Some(kind) = line
        .trim_start()
        .trim_start_matches("- ")
        .strip_prefix("type:")
    {
        let kind = kind.trim().trim_matches(['"', '\'']);
        return action_doc(kind);
    }
    let (_, word) = dotted_at(src, at)?;
    if let Some(v) = variables().iter().find(|v| v.name == word) {
        let phases: Vec<&str> = v.phases.iter().map(|p| p.key()).collect();
        return Some(format!(
            "**`{}`** `{}`\n\n{}\n\nIn: {}",
            v.name,
            v.ty,
            v.doc,
            phases.join(", ")
        ));
    }
    // A function: its signatures.
    let name = word.rsplit('.').next().unwrap_or(word);
    let env = portcullis_actions::env::env(Phase::HttpRequest);
    for candidate in [word, name] {
        if let Some(f) = env.function(candidate) {
            let sigs: Vec<String> = f
                .overloads
                .iter()
                .map(|o| format!("    {}", o.signature(&f.name)))
                .collect();
            return Some(format!("**`{}`**\n\n{}", f.name, sigs.join("\n")));
        }
    }
    // A config field: `name:` inside an action's `config`.
    let key = line.trim_start().split(':').next()?.trim();
    if key == word {
        let kind = enclosing_action(src, at)?;
        let doc = portcullis_policy::config::describe_action(kind)?;
        let f = doc.fields.into_iter().find(|f| f.name == key)?;
        return Some(format!(
            "**`{}`** ({}) of `{kind}`: {}",
            f.name,
            if f.required { "required" } else { "optional" },
            f.ty
        ));
    }
    None
}

fn action_doc(kind: &str) -> Option<String> {
    let doc = portcullis_policy::config::describe_action(kind)?;
    let mut out = format!("**`{kind}`** action\n\nPhases: {}\n", doc.phases.join(", "));
    if !doc.fields.is_empty() {
        out.push_str("\nConfig:\n");
        for f in doc.fields {
            out.push_str(&format!(
                "- `{}`{}: {}\n",
                f.name,
                if f.required { " (required)" } else { "" },
                f.ty
            ));
        }
    }
    Some(out)
}

/// Completions at byte `at`: the next part of a variable after `req.`,
/// `conn.` or `actions.ngrok.`; action types after `type:`; the fields of
/// the enclosing action's config at the start of a key.
pub fn completions(src: &str, at: usize) -> Vec<Value> {
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &src[line_start..at];
    let trimmed = before.trim_start().trim_start_matches("- ");
    if let Some(partial) = trimmed.strip_prefix("type:") {
        let partial = partial.trim();
        return portcullis_policy::document::ACTION_TYPES
            .iter()
            .filter(|t| t.starts_with(partial))
            .map(|t| json!({"label": t, "kind": 12, "detail": "action type"}))
            .collect();
    }
    // A dotted prefix ending where the cursor is.
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| ident(*c))
        .last()
        .map_or(before.len(), |(i, _)| i);
    let word = &before[word_start..];
    if let Some(dot) = word.rfind('.') {
        let (parent, partial) = (&word[..dot], &word[dot + 1..]);
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for v in variables() {
            let Some(rest) = v
                .name
                .strip_prefix(parent)
                .and_then(|r| r.strip_prefix('.'))
            else {
                continue;
            };
            let next = rest.split('.').next().unwrap_or(rest);
            if next.starts_with(partial) && !seen.contains(&next) {
                seen.push(next);
                let leaf = rest == next;
                out.push(json!({
                    "label": next,
                    "kind": if leaf { 6 } else { 9 },
                    "detail": if leaf { v.ty.to_string() } else { "…".to_owned() },
                    "documentation": if leaf { v.doc } else { "" },
                }));
            }
        }
        return out;
    }
    // A key being typed inside an action's config.
    if !trimmed.contains(':')
        && let Some(kind) = enclosing_action(src, at)
        && let Some(doc) = portcullis_policy::config::describe_action(kind)
    {
        return doc
            .fields
            .into_iter()
            .filter(|f| f.name.starts_with(trimmed))
            .map(|f| json!({"label": f.name, "kind": 10, "detail": f.ty}))
            .collect();
    }
    Vec::new()
}

/// Where `vars.<name>` at byte `at` is set: the `- name:` of a `set-vars`.
pub fn definition(src: &str, at: usize) -> Option<(usize, usize)> {
    let (_, word) = dotted_at(src, at)?;
    let name = word.strip_prefix("vars.")?.split('.').next()?;
    let mut in_vars = false;
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("vars:") {
            in_vars = true;
        } else if in_vars {
            let entry = t.strip_prefix("- ").unwrap_or(t);
            if let Some(key) = entry.strip_suffix('\n').unwrap_or(entry).split(':').next()
                && key.trim() == name
                && entry.contains(':')
            {
                let start = offset + (line.len() - t.len()) + (t.len() - entry.len());
                return Some((start, start + name.len()));
            }
            if t.starts_with("- type:") || t.starts_with("type:") {
                in_vars = false;
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "on_http_request:\n  - actions:\n      - type: set-vars\n        config:\n          vars:\n            - tier: gold\n  - expressions:\n      - \"vars.tier == 'gold' && req.method == 'GET'\"\n    actions:\n      - type: rate-limit\n        config:\n          capacity: 10\n";

    #[test]
    fn hover_names_variables_functions_actions_and_fields() {
        let at = POLICY.find("req.method").expect("req") + 5;
        let h = hover(POLICY, at).expect("hover");
        assert!(h.contains("req.method") && h.contains("string"), "{h}");
        let at = POLICY.find("rate-limit").expect("type") + 2;
        let h = hover(POLICY, at).expect("hover");
        assert!(h.contains("rate-limit") && h.contains("capacity"), "{h}");
        let at = POLICY.find("capacity").expect("field") + 2;
        let h = hover(POLICY, at).expect("hover");
        assert!(h.contains("integer") && h.contains("required"), "{h}");
        let src = "on_http_request:\n  - expressions: [\"'a'.startsWith('b')\"]\n    actions: [{type: deny}]\n";
        let h = hover(src, src.find("startsWith").expect("fn") + 3).expect("hover");
        assert!(h.contains("startsWith") && h.contains("bool"), "{h}");
    }

    #[test]
    fn completion_offers_the_next_part_of_a_variable() {
        let src = "on_http_request:\n  - expressions: [\"req.ur";
        let labels: Vec<String> = completions(src, src.len())
            .iter()
            .filter_map(|c| c["label"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(labels, ["url"]);
        let src = "on_http_request:\n  - expressions: [\"req.url.";
        let labels: Vec<String> = completions(src, src.len())
            .iter()
            .filter_map(|c| c["label"].as_str().map(str::to_owned))
            .collect();
        assert!(
            labels.contains(&"path".to_owned()) && labels.contains(&"query".to_owned()),
            "{labels:?}"
        );
        let src = "on_http_request:\n  - actions:\n      - type: rate-li";
        let c = completions(src, src.len());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0]["label"], "rate-limit");
    }

    #[test]
    fn a_var_leads_to_the_set_vars_that_sets_it() {
        let at = POLICY.find("vars.tier").expect("use") + 6;
        let (start, end) = definition(POLICY, at).expect("found");
        assert_eq!(&POLICY[start..end], "tier");
        assert!(start < POLICY.find("vars.tier").expect("use"));
    }
}
