//! A policy file's text to its diagnostics: YAML, document structure, and
//! every expression type-checked against the variables of its phase, with
//! CEL's spans mapped onto the file so the exact characters are underlined.
//! Config strings that hold CEL are checked the same way: each `${…}`
//! interpolation, and the bare-CEL fields (`bucket_key`, `retry_condition`).

use portcullis_cel::{CompileOptions, Diagnostic, Env, Span, Type};

use crate::code;
use crate::config::{self, FieldKind};
use crate::document::{self, Action, Policy};
use crate::interpolate;
use crate::manifest;
use crate::rules;
use crate::schema::{self, Phase};
use crate::yaml;

/// Checks a policy file, as the proxy runs it: one policy, or a
/// Kubernetes manifest that carries exactly one. Returns the policy as far
/// as it could be read and every problem, sorted by position.
pub fn check(src: &str) -> (Policy, Vec<Diagnostic>) {
    let (policies, mut diags) = check_all(src);
    if policies.len() > 1 {
        let names: Vec<&str> = policies
            .iter()
            .filter_map(|c| c.resource.as_deref())
            .collect();
        diags.push(
            Diagnostic::error(
                code::MANIFEST,
                policies[1].span,
                format!(
                    "this manifest holds {} Traffic Policies ({}); the proxy runs one per file",
                    policies.len(),
                    names.join(", ")
                ),
            )
            .with_help("give each endpoint a file of its own; `portcullis lint` checks them all"),
        );
        diags.sort_by_key(|d| (d.span.start, d.span.end));
    }
    let policy = policies
        .into_iter()
        .next()
        .map(|c| c.policy)
        .unwrap_or_default();
    (policy, diags)
}

/// A policy of a file, checked.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The resource that carries it in a manifest (`AgentEndpoint/api`);
    /// `None` for a policy file.
    pub resource: Option<String>,
    /// Where the policy document is in the file.
    pub span: Span,
    /// The policy, as far as it could be read.
    pub policy: Policy,
}

/// Checks every policy of a file: the file's one policy (resource `None`),
/// or each one a Kubernetes manifest carries, named by its resource
/// (`AgentEndpoint/api`). Diagnostics point into the file either way.
pub fn check_all(src: &str) -> (Vec<Checked>, Vec<Diagnostic>) {
    let (roots, stream_diags) = yaml::parse_stream(src);
    match manifest::read(&roots) {
        manifest::Input::Policy => {
            let (root, mut diags) = yaml::parse(src);
            let span = root.as_ref().map_or(Span::new(0, 0), |r| r.span);
            let policy = check_root(src, root.as_ref(), &mut diags);
            diags.sort_by_key(|d| (d.span.start, d.span.end));
            let checked = Checked {
                resource: None,
                span,
                policy,
            };
            (vec![checked], diags)
        }
        manifest::Input::Manifest(found, mut diags) => {
            diags.extend(stream_diags);
            if found.is_empty() {
                diags.push(
                    Diagnostic::error(
                        code::MANIFEST,
                        Span::new(0, 0),
                        "this manifest carries no ngrok Traffic Policy",
                    )
                    .with_help(
                        "policies are read from NgrokTrafficPolicy, AgentEndpoint and CloudEndpoint resources",
                    ),
                );
            }
            let policies = found
                .into_iter()
                .map(|e| Checked {
                    policy: check_root(src, Some(e.policy), &mut diags),
                    resource: Some(e.resource),
                    span: e.policy.span,
                })
                .collect();
            diags.sort_by_key(|d| (d.span.start, d.span.end));
            (policies, diags)
        }
    }
}

/// Checks the policy document at `root` of `src`, adding to `diags`.
fn check_root(src: &str, root: Option<&yaml::Node>, diags: &mut Vec<Diagnostic>) -> Policy {
    let (policy, structure) = document::lower(root);
    diags.extend(structure);
    let envs = Envs::default();
    let options = CompileOptions {
        expect: Some(Type::Bool),
        ..CompileOptions::default()
    };
    for phase in &policy.phases {
        let env = envs.get(phase.phase);
        for rule in &phase.rules {
            for expr in &rule.expressions {
                check_expression(expr, env, &options, src, diags);
            }
            for action in &rule.actions {
                diags.extend(config::check(action, phase.phase, src));
                // An action in a phase that does not run it is reported
                // by `config`; its CEL would only add noise.
                if config::runs_in(action, phase.phase) {
                    check_config_cel(action, &envs, phase.phase, src, diags);
                }
            }
        }
    }
    diags.extend(rules::check(&policy, src));
    // One `deployment-data` per variable: the first place it is read.
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| d.code != code::lint::DEPLOYMENT_DATA || seen.insert(d.message.clone()));
    policy
}

/// Checks one condition: its CEL diagnostics mapped into the file, then
/// the lints that need its tree (header case) or its compiled form
/// (constant conditions). The text is parsed and checked once.
fn check_expression(
    expr: &yaml::Node,
    env: &Env,
    options: &CompileOptions,
    src: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(scalar) = expr.scalar() else { return };
    let (checked, cel_diags) = env.check(&scalar.value, options);
    let clean = cel_diags.iter().all(|d| !d.is_error());
    for mut d in cel_diags {
        d.span = expr.value_span(src, d.span);
        diags.push(d);
    }
    let Some(checked) = checked else { return };
    rules::expression_lints(&checked.expr, expr, src, diags);
    // Only an expression that reads no variable can fold to a constant;
    // compiling the others here would double the cost of a lint.
    if !clean || checked.checked.reads_variables() {
        return;
    }
    match env.compile_checked(&checked) {
        Ok(program) => {
            if let Some(portcullis_cel::Value::Bool(b)) = program.constant() {
                diags.push(rules::constant_condition(expr, *b));
            }
        }
        Err(mut d) => {
            d.span = expr.value_span(src, d.span);
            diags.push(d);
        }
    }
}

/// Checks the CEL in `action`'s config: every `${…}` in a template
/// field, and the bare-CEL fields.
fn check_config_cel(
    action: &Action,
    envs: &Envs,
    phase: Phase,
    src: &str,
    diags: &mut Vec<Diagnostic>,
) {
    for (node, kind) in config::cel_fields(action) {
        match kind {
            FieldKind::Template => check_template(node, &action.kind, envs.get(phase), src, diags),
            // `http-request`'s one bare field is `retry_condition`: a
            // condition, with variables of its own.
            FieldKind::Bare if action.kind == "http-request" => {
                let options = CompileOptions {
                    expect: Some(Type::Bool),
                    ..CompileOptions::default()
                };
                check_bare(node, envs.retry(phase), &options, src, diags);
            }
            // `rate-limit`'s `bucket_key` entries: any type.
            FieldKind::Bare => {
                check_bare(
                    node,
                    envs.get(phase),
                    &CompileOptions::default(),
                    src,
                    diags,
                );
            }
        }
    }
}

/// Checks each interpolation of a template string. Any result type will
/// do: a mixed string stringifies each piece, and a string that is one
/// interpolation keeps the expression's own type.
fn check_template(
    node: &yaml::Node,
    action: &str,
    env: &Env,
    src: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(scalar) = node.scalar() else { return };
    if !scalar.value.contains("${") {
        return;
    }
    let template = interpolate::parse(&scalar.value);
    let ngrok = if action == "add-headers" {
        "ERR_NGROK_2213"
    } else {
        "ERR_NGROK_2224"
    };
    let options = CompileOptions::default();
    for (outer, range) in template.exprs() {
        let text = scalar.value.get(range.clone()).unwrap_or("");
        if text.trim().is_empty() {
            diags.push(
                Diagnostic::error(
                    code::INTERPOLATION,
                    node.value_span(src, Span::new(outer.start, outer.end)),
                    "`${}` holds no expression",
                )
                .with_help(format!(
                    "write an expression between the braces, or remove them (ngrok rejects it: {ngrok})"
                )),
            );
            continue;
        }
        let (checked, cel_diags) = env.check(text, &options);
        if let Some(checked) = &checked {
            rules::deployment_reads(&checked.expr, range.start, node, src, diags);
        }
        for mut d in cel_diags {
            let (start, end) = (d.span.start as usize, d.span.end as usize);
            d.span = node.value_span(src, Span::new(range.start + start, range.start + end));
            if d.is_error() {
                let why = format!("ngrok fails to compile the template expression ({ngrok})");
                d.help = Some(match d.help.take() {
                    Some(help) if help.ends_with(['?', '.']) => format!("{help} {why}"),
                    Some(help) => format!("{help}; {why}"),
                    None => why,
                });
            }
            diags.push(d);
        }
    }
    if let Some(at) = template.unterminated {
        diags.push(
            Diagnostic::error(
                code::INTERPOLATION,
                node.value_span(src, Span::new(at, at + 2)),
                "unterminated `${`: no `}` closes it",
            )
            .with_help(format!(
                "end the expression with `}}`; to write `${{` literally, build the string in CEL, as in `${{'$' + '{{'}}` (ngrok rejects it: {ngrok})"
            )),
        );
    }
}

/// Checks a config string that is one CEL expression.
fn check_bare(
    node: &yaml::Node,
    env: &Env,
    options: &CompileOptions,
    src: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(scalar) = node.scalar() else { return };
    // An empty value is reported by `config`.
    if scalar.value.trim().is_empty() {
        return;
    }
    let (_, cel_diags) = env.check(&scalar.value, options);
    for mut d in cel_diags {
        d.span = node.value_span(src, d.span);
        diags.push(d);
    }
}

/// The CEL environment of each phase, built once per check, and the
/// environments of `retry_condition`, built when one is met.
#[derive(Default)]
struct Envs {
    built: std::cell::OnceCell<[Env; 3]>,
    retry: [std::cell::OnceCell<Env>; 3],
}

impl Envs {
    fn get(&self, phase: Phase) -> &Env {
        let [tcp, req, res] = self.built.get_or_init(|| Phase::all().map(schema::env));
        match phase.env_phase() {
            Phase::TcpConnect => tcp,
            Phase::HttpRequest => req,
            Phase::HttpResponse | Phase::EventStreamMessage => res,
        }
    }

    /// The phase's variables plus those of `http-request`'s
    /// `retry_condition` (spec §3.11): `attempts`, the attempts made so
    /// far, and `last_attempt`, with the last one's `req`, `res` and
    /// `error`.
    fn retry(&self, phase: Phase) -> &Env {
        let [tcp, req, res] = &self.retry;
        let cell = match phase.env_phase() {
            Phase::TcpConnect => tcp,
            Phase::HttpRequest => req,
            Phase::HttpResponse | Phase::EventStreamMessage => res,
        };
        cell.get_or_init(|| {
            let mut env = self.get(phase).clone();
            env.declare_var("attempts", Type::Int);
            env.declare_var("last_attempt", Type::map(Type::String, Type::Dyn));
            env
        })
    }
}
