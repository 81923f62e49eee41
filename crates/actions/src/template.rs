//! Config strings with `${…}` interpolation (spec §2.9), compiled once:
//! literal text and CEL programs, rendered per request against the
//! exchange.

use std::borrow::Cow;

use portcullis_cel::{CompileOptions, Diagnostic, Program, Span, Str, Value};
use portcullis_policy::interpolate::{self, Part};
use portcullis_policy::schema::Phase;
use portcullis_policy::yaml::Node;

use crate::{ActionError, RequestCtx, code, env};

/// ngrok's code for an interpolation that fails at run time.
pub const EVAL_FAILED: &str = "ERR_NGROK_2254";

/// A compiled template.
#[derive(Debug)]
pub struct Template {
    pieces: Box<[Piece]>,
    /// The whole string is one interpolation: it keeps the value's type.
    single: bool,
}

#[derive(Debug)]
enum Piece {
    Text(Box<str>),
    Expr(Box<Program>),
}

impl Template {
    /// A template of constant text.
    pub fn text(s: &str) -> Template {
        Template {
            pieces: Box::new([Piece::Text(s.into())]),
            single: false,
        }
    }

    /// Compiles the scalar `node` for `phase`.
    pub fn compile(node: &Node, phase: Phase, src: &str) -> Result<Template, Diagnostic> {
        let value = node.scalar().map_or("", |s| s.value.as_str());
        Template::compile_str(value, phase, |span| node.value_span(src, span))
    }

    /// Compiles `value`; `locate` maps a span of the value into the file.
    pub fn compile_str(
        value: &str,
        phase: Phase,
        locate: impl Fn(Span) -> Span,
    ) -> Result<Template, Diagnostic> {
        if !value.contains("${") {
            return Ok(Template::text(value));
        }
        let parsed = interpolate::parse(value);
        let single = parsed.is_single();
        let env = env::env(phase);
        let mut pieces = Vec::with_capacity(parsed.parts.len());
        for part in &parsed.parts {
            match part {
                Part::Text(range) => {
                    pieces.push(Piece::Text(value.get(range.clone()).unwrap_or("").into()))
                }
                Part::Expr { expr, .. } => {
                    let text = value.get(expr.clone()).unwrap_or("");
                    let program =
                        env.compile_with(text, &CompileOptions::default())
                            .map_err(|diags| {
                                let mut d = diags
                                    .into_iter()
                                    .find(Diagnostic::is_error)
                                    .unwrap_or_else(|| {
                                        Diagnostic::error(
                                            code::ACTION_COMPILE,
                                            Span::new(0, text.len()),
                                            "interpolation does not compile",
                                        )
                                    });
                                let (s, e) = (d.span.start as usize, d.span.end as usize);
                                d.span = locate(Span::new(expr.start + s, expr.start + e));
                                d
                            })?;
                    pieces.push(Piece::Expr(Box::new(program)));
                }
            }
        }
        Ok(Template {
            pieces: pieces.into(),
            single,
        })
    }

    /// The text, when the template has no interpolation.
    pub fn constant(&self) -> Option<&str> {
        match &*self.pieces {
            [Piece::Text(t)] => Some(t),
            [] => Some(""),
            _ => None,
        }
    }

    /// Renders the template as text: each interpolation's value as CEL's
    /// `string()` writes it.
    /// A template that is one interpolation of a string read from the
    /// exchange (`${conn.client_ip}`) lends that string out, uncopied.
    pub fn render<'c>(&'c self, ctx: &'c RequestCtx) -> Result<Cow<'c, str>, ActionError> {
        match &*self.pieces {
            [Piece::Text(t)] => return Ok(Cow::Borrowed(t)),
            [] => return Ok(Cow::Borrowed("")),
            [Piece::Expr(p)] => {
                return Ok(match p.eval(ctx).map_err(eval_error)? {
                    Value::String(Str::Borrowed(s)) => Cow::Borrowed(s),
                    Value::String(s) => Cow::Owned(s.to_string()),
                    v => Cow::Owned(v.to_text()),
                });
            }
            _ => {}
        }
        let mut out = String::new();
        for piece in &*self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Expr(p) => match p.eval(ctx).map_err(eval_error)? {
                    Value::String(s) => out.push_str(&s),
                    v => out.push_str(&v.to_text()),
                },
            }
        }
        Ok(Cow::Owned(out))
    }

    /// The template's value: an interpolation alone keeps its type
    /// (`${vars.n}` stays an int), anything else is text.
    pub fn value(&self, ctx: &RequestCtx) -> Result<Value<'static>, ActionError> {
        match (&*self.pieces, self.single) {
            ([Piece::Expr(p)], true) => Ok(p.eval(ctx).map_err(eval_error)?.to_static()),
            _ => Ok(Value::string(self.render(ctx)?.into_owned())),
        }
    }
}

fn eval_error(e: portcullis_cel::EvalError) -> ActionError {
    ActionError::internal(
        EVAL_FAILED,
        format!(
            "failed to resolve an interpolated expression: {}",
            e.message()
        ),
    )
}
