//! `set-vars` (spec §3.11): sets `vars.<name>` for the rest of the phase,
//! in order, so a later entry reads an earlier one. A value that is one
//! interpolation keeps its CEL type; a plain YAML scalar keeps its YAML
//! type (`3` is an int); lists and maps are built from their items.

use std::sync::Arc;

use portcullis_cel::value::{Key, MapData};
use portcullis_cel::{Diagnostic, Map, Str, Value};
use portcullis_policy::yaml::{Node, NodeKind, Style};

use crate::action::Config;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, Run, Step};

/// A config value that may hold interpolations anywhere inside.
#[derive(Debug)]
pub(crate) enum Tree {
    Scalar(Template),
    Literal(Value<'static>),
    List(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

impl Tree {
    pub(crate) fn compile(node: &Node, cx: &CompileCx<'_>) -> Result<Tree, Diagnostic> {
        Ok(match &node.kind {
            NodeKind::Scalar(s) if s.style == Style::Plain && !s.value.contains("${") => {
                Tree::Literal(plain(&s.value))
            }
            NodeKind::Scalar(_) => Tree::Scalar(Template::compile(node, cx.phase, cx.src)?),
            NodeKind::Seq(items) => Tree::List(
                items
                    .iter()
                    .map(|n| Tree::compile(n, cx))
                    .collect::<Result<_, _>>()?,
            ),
            NodeKind::Map(entries) => Tree::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let k = k.scalar().map_or("", |s| s.value.as_str()).to_owned();
                        Ok((k, Tree::compile(v, cx)?))
                    })
                    .collect::<Result<_, Diagnostic>>()?,
            ),
        })
    }

    pub(crate) fn value(&self, ctx: &RequestCtx) -> Result<Value<'static>, ActionError> {
        self.eval(ctx, false)
    }

    /// As [`Tree::value`], with `null` where an interpolation fails (a
    /// result the policy reads that was not set, an index past the end):
    /// for `log`, whose metadata records what there is and never ends the
    /// exchange, as ngrok's examples read `error.code` on success.
    pub(crate) fn value_or_null(&self, ctx: &RequestCtx) -> Result<Value<'static>, ActionError> {
        self.eval(ctx, true)
    }

    fn eval(&self, ctx: &RequestCtx, lenient: bool) -> Result<Value<'static>, ActionError> {
        Ok(match self {
            Tree::Scalar(t) => match t.value(ctx) {
                Err(_) if lenient => Value::Null,
                other => other?,
            },
            Tree::Literal(v) => v.clone(),
            Tree::List(items) => Value::list(
                items
                    .iter()
                    .map(|t| t.eval(ctx, lenient))
                    .collect::<Result<_, _>>()?,
            ),
            Tree::Map(entries) => {
                let mut built = Vec::with_capacity(entries.len());
                for (k, t) in entries {
                    built.push((
                        Key::String(Str::Shared(Arc::from(k.as_str()))),
                        t.eval(ctx, lenient)?,
                    ));
                }
                let data = MapData::from_entries(built)
                    .map_err(|e| ActionError::internal("ERR_NGROK_2300", e.message().to_owned()))?;
                Value::Map(Map::Values(Arc::new(data)))
            }
        })
    }
}

/// A plain YAML scalar as the YAML core schema reads it.
fn plain(text: &str) -> Value<'static> {
    match text {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        "null" | "Null" | "NULL" | "~" | "" => Value::Null,
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                Value::Int(i)
            } else if let Ok(f) = text.parse::<f64>().map_err(|_| ()).and_then(|f| {
                if text.chars().any(|c| c.is_ascii_digit()) {
                    Ok(f)
                } else {
                    Err(())
                }
            }) {
                Value::Double(f)
            } else {
                Value::string(text)
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct SetVars {
    vars: Vec<(String, Tree)>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let mut vars = Vec::new();
    for item in cfg.seq("vars") {
        if let NodeKind::Map(entries) = &item.kind {
            for (k, v) in entries {
                let name = k.scalar().map_or("", |s| s.value.as_str()).to_owned();
                vars.push((name, Tree::compile(v, cx)?));
            }
        }
    }
    Ok(Box::new(SetVars { vars }))
}

impl Action for SetVars {
    fn kind(&self) -> &'static str {
        "set-vars"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        for (name, tree) in &self.vars {
            match tree.value(ctx) {
                Ok(v) => {
                    if let Some(trace) = ctx.trace() {
                        trace.push(crate::trace::TraceEvent::Var {
                            name: name.to_owned(),
                            value: portcullis_cel::json::to_json(&v)
                                .unwrap_or(serde_json::Value::Null),
                        });
                    }
                    ctx.set_var(name, v)
                }
                Err(e) => return Run::Done(Err(e)),
            }
        }
        Run::Done(Ok(Step::Next))
    }
}
