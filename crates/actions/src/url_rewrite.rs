//! `url-rewrite` (spec §3.9): rewrites the URL the upstream sees; the
//! client's URL is unchanged. Every match of `from` is replaced. A new
//! host in an absolute `to` becomes the upstream request's `Host`.

use http::header::HOST;
use http::uri::Uri;
use portcullis_cel::{Diagnostic, Value};

use crate::action::Config;
use crate::rewrite::{self, Rewrite};
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step};

#[derive(Debug)]
pub(crate) struct UrlRewrite {
    rewrite: Rewrite,
    matches: Option<ResultVar>,
    url: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    Ok(Box::new(UrlRewrite {
        rewrite: Rewrite::compile(&cfg, cx)?,
        matches: cx.result("actions.ngrok.url_rewrite.matches"),
        url: cx.result("actions.ngrok.url_rewrite.url"),
    }))
}

impl Action for UrlRewrite {
    fn kind(&self) -> &'static str {
        "url-rewrite"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.rewrite(ctx))
    }
}

impl UrlRewrite {
    fn rewrite(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let Some(done) = self.rewrite.apply(ctx, true)? else {
            return Ok(Step::Next);
        };
        if done.url != ctx.url() {
            let (authority, pq) = rewrite::split(&done.url, ctx.endpoint())?;
            if let Some(host) = authority {
                ctx.req_headers_mut().insert(HOST, host);
            }
            let mut parts = ctx.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            // The upstream request is sent in origin form; the scheme and
            // authority of the client's URI (HTTP/2) are not kept.
            parts.scheme = None;
            parts.authority = None;
            let uri = Uri::from_parts(parts).map_err(|_| {
                crate::ActionError::internal("ERR_NGROK_2300", "the rewritten URL is not valid")
            })?;
            ctx.set_uri(uri);
        }
        if let Some(var) = self.matches {
            ctx.set_result(var, rewrite::matches_value(&done.matches));
        }
        if let Some(var) = self.url {
            ctx.set_result(var, Value::string(done.url));
        }
        Ok(Step::Next)
    }
}
