//! The Common Expression Language for Portcullis.
//!
//! Expressions are parsed with a pest grammar, type-checked against an
//! [`Env`] of declared variables and functions, and compiled once into a
//! [`Program`] that evaluates without looking names up by string: variables
//! become [`VarId`]s read through the caller's [`Activation`], functions
//! become function pointers, constants fold.
//!
//! ```
//! use portcullis_cel::{Bindings, Env, Type, Value};
//!
//! let mut env = Env::standard();
//! let method = env.declare_var("req.method", Type::String);
//! let program = env.compile("req.method in ['GET', 'HEAD']").expect("valid expression");
//!
//! let mut vars = Bindings::new();
//! vars.set(method, Value::string("GET"));
//! assert_eq!(program.eval_bool(&vars), Ok(true));
//! ```
//!
//! The pipeline, one module per step:
//!
//! ```text
//! text ─syntax::parse→ ast::Expr ─check::check→ Checked ─compile→ Program ─eval(Activation)→ Value
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

// The pest-generated parser refers to `::alloc` (pest is built without
// `std`; see `syntax.rs`).
extern crate alloc;

pub mod ast;
pub mod check;
mod compile;
pub mod diagnostic;
pub mod env;
pub mod eval;
pub mod json;
mod ops;
pub mod pattern;
pub mod stdlib;
pub mod syntax;
pub mod time;
pub mod types;
pub mod value;

pub use crate::ast::{Expr, Span};
pub use crate::check::Checked;
pub use crate::diagnostic::{Diagnostic, Severity};
pub use crate::env::{Env, Impl, Overload, VarId};
pub use crate::eval::{Activation, Bindings, EvalError, Program};
pub use crate::syntax::ParseOptions;
pub use crate::types::{Kind, Type};
pub use crate::value::{HostList, HostMap, List, Map, MultiMap, Str, Value};

/// The result of checking an expression: its tree, the checker's tables and
/// its type, or the diagnostics that stop it from running.
#[derive(Debug)]
pub struct CheckedExpr {
    /// The parsed expression.
    pub expr: Expr,
    /// Types and resolutions.
    pub checked: Checked,
    /// The expression's type.
    pub ty: Type,
}

/// Options for [`Env::compile_with`].
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Parser settings.
    pub parse: ParseOptions,
    /// Report type errors; when off, names still resolve and type errors
    /// become run-time errors (CEL's `disable_check`).
    pub check: bool,
    /// The type the expression must have (`bool` for a condition).
    pub expect: Option<Type>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            parse: ParseOptions::default(),
            check: true,
            expect: None,
        }
    }
}

impl Env {
    /// Parses and checks `src`, returning every diagnostic (warnings too).
    pub fn check(
        &self,
        src: &str,
        options: &CompileOptions,
    ) -> (Option<CheckedExpr>, Vec<Diagnostic>) {
        let expr = match syntax::parse_with(src, options.parse) {
            Ok(expr) => expr,
            Err(d) => return (None, vec![d]),
        };
        let (checked, mut diags) = check::check(self, &expr, options.check);
        let ty = checked.type_of(expr.id).clone();
        if let (Some(want), true) = (&options.expect, options.check)
            && ty != *want
            && !ty.is_dyn()
            && diags.iter().all(|d| !d.is_error())
        {
            let help = match want {
                Type::Bool => "a condition must evaluate to `true` or `false`; compare the value, e.g. `x == ...`".to_string(),
                _ => format!("convert the value, e.g. `{want}(...)`"),
            };
            diags.push(
                Diagnostic::error(
                    diagnostic::code::TYPE_MISMATCH,
                    expr.span,
                    format!("expected `{want}`, found `{ty}`"),
                )
                .with_label(format!("this is `{ty}`"))
                .with_help(help),
            );
        }
        (Some(CheckedExpr { expr, checked, ty }), diags)
    }

    /// Compiles an expression [`Env::check`] accepted, without parsing or
    /// checking it again.
    pub fn compile_checked(&self, checked: &CheckedExpr) -> Result<Program, Diagnostic> {
        let root = compile::compile(self, &checked.expr, &checked.checked)?;
        Ok(Program {
            root: eval::Root::new(root),
            result_type: checked.ty.clone(),
            budget: eval::DEFAULT_BUDGET,
        })
    }

    /// Parses, checks and compiles `src`.
    pub fn compile(&self, src: &str) -> Result<Program, Vec<Diagnostic>> {
        self.compile_with(src, &CompileOptions::default())
    }

    /// Parses, checks and compiles a condition, which must be `bool`.
    pub fn compile_condition(&self, src: &str) -> Result<Program, Vec<Diagnostic>> {
        self.compile_with(
            src,
            &CompileOptions {
                expect: Some(Type::Bool),
                ..CompileOptions::default()
            },
        )
    }

    /// Parses, checks and compiles `src` with `options`.
    pub fn compile_with(
        &self,
        src: &str,
        options: &CompileOptions,
    ) -> Result<Program, Vec<Diagnostic>> {
        let (checked, mut diags) = self.check(src, options);
        let Some(checked) = checked else {
            return Err(diags);
        };
        if diags.iter().any(Diagnostic::is_error) {
            return Err(diags);
        }
        match compile::compile(self, &checked.expr, &checked.checked) {
            Ok(root) => Ok(Program {
                root: eval::Root::new(root),
                result_type: checked.ty,
                budget: eval::DEFAULT_BUDGET,
            }),
            Err(d) => {
                diags.push(d);
                Err(diags)
            }
        }
    }
}
