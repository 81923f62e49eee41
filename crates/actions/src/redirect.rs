//! `redirect` (spec §3.8): answers with a `Location` built from the URL.
//! Nothing happens when `from` does not match or the new URL is the old
//! one; otherwise the phase ends.

use http::StatusCode;
use http::header::{HeaderName, LOCATION};
use portcullis_cel::{Diagnostic, Value};

use crate::action::Config;
use crate::rewrite::{self, Rewrite};
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, respond};

#[derive(Debug)]
pub(crate) struct Redirect {
    rewrite: Rewrite,
    status: StatusCode,
    headers: Vec<(HeaderName, Template)>,
    matches: Option<ResultVar>,
    url: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let status = cfg.status("status_code", 302)?;
    if !status.is_redirection() {
        return Err(cfg.error(
            cfg.get("status_code"),
            format!("`{}` is not a 3xx status", status.as_u16()),
        ));
    }
    Ok(Box::new(Redirect {
        rewrite: Rewrite::compile(&cfg, cx)?,
        status,
        headers: crate::headers::compile_map(&cfg, "headers", cx)?,
        matches: cx.result("actions.ngrok.redirect.matches"),
        url: cx.result("actions.ngrok.redirect.url"),
    }))
}

impl Action for Redirect {
    fn kind(&self) -> &'static str {
        "redirect"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.redirect(ctx))
    }
}

impl Redirect {
    fn redirect(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let Some(done) = self.rewrite.apply(ctx, false)? else {
            return Ok(Step::Next);
        };
        if done.url == ctx.url() {
            return Ok(Step::Next);
        }
        let location = crate::headers::value(&done.url)?;
        let mut res = respond::status(self.status);
        for (name, t) in &self.headers {
            let v = crate::headers::value(&t.render(ctx)?)?;
            res.headers_mut().append(name.clone(), v);
        }
        res.headers_mut().insert(LOCATION, location);
        if let Some(var) = self.matches {
            ctx.set_result(var, rewrite::matches_value(&done.matches));
        }
        if let Some(var) = self.url {
            ctx.set_result(var, Value::string(done.url));
        }
        ctx.set_response(res);
        Ok(Step::Respond)
    }
}
