//! A policy file's text to its diagnostics: YAML, document structure, and
//! every expression type-checked against the variables of its phase, with
//! CEL's spans mapped onto the file so the exact characters are underlined.

use portcullis_cel::{CompileOptions, Diagnostic, Env, Type};

use crate::document::{self, Policy};
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
                let Some(scalar) = expr.scalar() else {
                    continue;
                };
                let (_, cel_diags) = env.check(&scalar.value, &options);
                for mut d in cel_diags {
                    d.span = expr.value_span(src, d.span);
                    diags.push(d);
                }
            }
        }
    }
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    (policy, diags)
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
