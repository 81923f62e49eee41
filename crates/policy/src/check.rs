//! A policy file's text to its diagnostics: YAML, document structure, and
//! every expression type-checked against the variables of its phase, with
//! CEL's spans mapped onto the file so the exact characters are underlined.

use portcullis_cel::{CompileOptions, Diagnostic, Env, Type};

use crate::config;
use crate::document::{self, Policy};
use crate::rules;
use crate::schema::{self, Phase};
use crate::yaml;

/// Checks a policy file. Returns the policy as far as it could be read and
/// every problem, sorted by position.
pub fn check(src: &str) -> (Policy, Vec<Diagnostic>) {
    let (root, mut diags) = yaml::parse(src);
    let (policy, structure) = document::lower(root.as_ref());
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
                check_expression(expr, env, &options, src, &mut diags);
            }
            for action in &rule.actions {
                diags.extend(config::check(action, phase.phase, src));
            }
        }
    }
    diags.extend(rules::check(&policy, src));
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    (policy, diags)
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

/// The CEL environment of each phase, built once per check.
#[derive(Default)]
struct Envs {
    built: std::cell::OnceCell<[Env; 3]>,
}

impl Envs {
    fn get(&self, phase: Phase) -> &Env {
        let [tcp, req, res] = self.built.get_or_init(|| Phase::all().map(schema::env));
        match phase {
            Phase::TcpConnect => tcp,
            Phase::HttpRequest => req,
            Phase::HttpResponse => res,
        }
    }
}
