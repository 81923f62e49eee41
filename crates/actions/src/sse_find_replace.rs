//! `sse-find-replace` (`on_event_stream_message`): RE2 patterns replaced
//! in one field of each server-sent event as the stream passes, `data`
//! (the event's `data:` lines joined, as a client reads them) or `retry`,
//! in order, every match. The proxy cuts the stream into events
//! (`event_stream.rs`) and runs the phase on each; an event without the
//! field is left as it is.

use portcullis_cel::Diagnostic;
use regex::Regex;

use crate::action::Config;
use crate::rewrite::{BAD_REGEX, regex};
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, Run, Step};

/// The code of a `field` that interpolates to neither `data` nor `retry`.
const BAD_FIELD: &str = "ERR_NGROK_3904";

#[derive(Debug)]
enum From {
    Fixed(Regex),
    Interpolated(Template),
}

#[derive(Debug)]
struct Replacement {
    field: Template,
    from: From,
    to: Template,
}

#[derive(Debug)]
pub(crate) struct SseFindReplace {
    replacements: Vec<Replacement>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let mut replacements = Vec::new();
    for item in cfg.seq("replacements") {
        let item_cfg = Config {
            node: Some(item),
            span: item.span,
        };
        let field = match item_cfg.get("field") {
            Some(node) => {
                let t = Template::compile(node, cx.phase, cx.src)?;
                if let Some(f) = t.constant()
                    && !matches!(f, "data" | "retry")
                {
                    return Err(cfg.error(Some(node), "`field` must be `data` or `retry`"));
                }
                t
            }
            None => Template::text("data"),
        };
        let Some(from_node) = item_cfg.get("from") else {
            return Err(cfg.error(Some(item), "a replacement needs `from`"));
        };
        let from = Template::compile(from_node, cx.phase, cx.src)?;
        let from = match from.constant() {
            Some(p) => From::Fixed(regex(p).map_err(|e| cfg.error(Some(from_node), e))?),
            None => From::Interpolated(from),
        };
        let to = match item_cfg.get("to") {
            Some(node) => Template::compile(node, cx.phase, cx.src)?,
            None => Template::text(""),
        };
        replacements.push(Replacement { field, from, to });
    }
    if replacements.is_empty() {
        return Err(cfg.error(cfg.get("replacements"), "`replacements` needs at least one"));
    }
    Ok(Box::new(SseFindReplace { replacements }))
}

impl Action for SseFindReplace {
    fn kind(&self) -> &'static str {
        "sse-find-replace"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.replace(ctx))
    }
}

impl SseFindReplace {
    fn replace(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        for r in &self.replacements {
            let field = r.field.render(ctx)?.into_owned();
            if !matches!(field.as_str(), "data" | "retry") {
                return Err(ActionError {
                    status: http::StatusCode::BAD_GATEWAY,
                    code: BAD_FIELD,
                    message: format!(
                        "sse-find-replace: `field` is `{field}`, not `data` or `retry`"
                    ),
                });
            }
            let dynamic;
            let re = match &r.from {
                From::Fixed(re) => re,
                From::Interpolated(t) => {
                    dynamic =
                        regex(&t.render(ctx)?).map_err(|e| ActionError::internal(BAD_REGEX, e))?;
                    &dynamic
                }
            };
            let to = r.to.render(ctx)?.into_owned();
            let Some(event) = ctx.event_mut() else {
                return Ok(Step::Next);
            };
            let Some(value) = event.get(&field) else {
                continue;
            };
            if let std::borrow::Cow::Owned(new) = re.replace_all(&value, to.as_str()) {
                event.set(&field, &new);
            }
        }
        Ok(Step::Next)
    }
}
