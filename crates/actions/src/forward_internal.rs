//! `forward-internal` (spec §3.11): sends the request to an internal
//! upstream (`https://api.internal`) declared in the server's config,
//! instead of the endpoint's own upstream. Terminating unless
//! `on_error: continue`, in which case a failure is recorded in the
//! result variables and the policy goes on.

use http::StatusCode;
use http::uri::Uri;
use portcullis_cel::{Diagnostic, Value};

use crate::action::Config;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step};

/// ngrok's code for a forward to an endpoint that does not exist.
const NOT_FOUND: &str = "ERR_NGROK_3200";

#[derive(Debug)]
pub(crate) struct ForwardInternal {
    url: Template,
    known: Vec<String>,
    halt: bool,
    result_url: Option<ResultVar>,
    error_code: Option<ResultVar>,
    error_message: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let url = match cfg.get("url") {
        Some(node) => Template::compile(node, cx.phase, cx.src)?,
        None => return Err(cfg.error(None, "`url` is required")),
    };
    Ok(Box::new(ForwardInternal {
        url,
        known: cx.internal.to_vec(),
        halt: cfg.str("on_error") != Some("continue"),
        result_url: cx.result("actions.ngrok.forward_internal.url"),
        error_code: cx.result("actions.ngrok.forward_internal.error.code"),
        error_message: cx.result("actions.ngrok.forward_internal.error.message"),
    }))
}

impl Action for ForwardInternal {
    fn kind(&self) -> &'static str {
        "forward-internal"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.forward(ctx))
    }
}

impl ForwardInternal {
    fn forward(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let url = self.url.render(ctx)?.into_owned();
        let host = url
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        if self.known.contains(&host) {
            ctx.forward_to(host);
            return Ok(Step::Forward);
        }
        let message = format!("no internal endpoint is named `{url}`");
        if self.halt {
            return Err(ActionError {
                status: StatusCode::BAD_GATEWAY,
                code: NOT_FOUND,
                message,
            });
        }
        for (var, value) in [
            (self.result_url, url),
            (self.error_code, NOT_FOUND.to_owned()),
            (self.error_message, message),
        ] {
            if let Some(var) = var {
                ctx.set_result(var, Value::string(value));
            }
        }
        Ok(Step::Next)
    }
}
