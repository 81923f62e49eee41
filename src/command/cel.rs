//! `portcullis cel EXPR [--vars FILE.json]`: checks and evaluates one
//! expression, printing the result as JSON on standard output. Users debug
//! policy conditions with it.
//!
//! Variables come from a JSON object: each top-level key declares a
//! variable, and a dotted key (`"req.url.path"`) declares that qualified
//! name, which is how ngrok's variables are shaped. Types are taken from
//! the JSON values, so type mistakes show up as they would in a policy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use portcullis_cel::json::{from_json, to_json};
use portcullis_cel::{Bindings, Env, Type};
use serde_json::Value as Json;

use super::{eprint, print, render};

/// Arguments of `portcullis cel`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The expression (one that starts with `-`, such as `-7 / 2`, is an
    /// expression too, not a flag).
    #[arg(allow_hyphen_values = true)]
    expr: String,
    /// A JSON object whose keys are variable names (`{"req.method": "GET"}`
    /// or `{"req": {"method": "GET"}}`).
    #[arg(long, value_name = "FILE.json")]
    vars: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let vars: serde_json::Map<String, Json> = match &args.vars {
        None => serde_json::Map::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
            {
                Json::Object(map) => map,
                _ => anyhow::bail!("{} must hold a JSON object of variables", path.display()),
            }
        }
    };
    let mut env = Env::standard();
    let mut bindings = Bindings::new();
    for (name, value) in &vars {
        let id = env.declare_var(name, type_of(value));
        bindings.set(id, from_json(value));
    }
    let program = match env.compile(&args.expr) {
        Ok(p) => p,
        Err(diags) => {
            for d in &diags {
                eprint(&render::human("<expression>", &args.expr, d));
            }
            return Ok(ExitCode::from(1));
        }
    };
    match program.eval(&bindings) {
        Ok(value) => {
            let json = to_json(&value).context("the result cannot be written as JSON")?;
            print(&serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprint(&format!("error: evaluation failed: {err}"));
            Ok(ExitCode::from(1))
        }
    }
}

/// The CEL type a JSON value is declared with.
fn type_of(value: &Json) -> Type {
    match value {
        Json::Null => Type::Null,
        Json::Bool(_) => Type::Bool,
        Json::Number(n) if n.is_i64() => Type::Int,
        Json::Number(n) if n.is_u64() => Type::Uint,
        Json::Number(_) => Type::Double,
        Json::String(_) => Type::String,
        Json::Array(_) => Type::list(Type::Dyn),
        Json::Object(_) => Type::map(Type::String, Type::Dyn),
    }
}
