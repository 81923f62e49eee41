//! `custom-response` (spec §3.7): answers with a status, a body and
//! headers, all but the status interpolated. In `on_http_request` the
//! upstream is not called; in `on_http_response` the upstream's response
//! is replaced. Terminating. Without a `content-type`, one is inferred
//! from the body, as ngrok does.

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use portcullis_cel::Diagnostic;

use crate::action::Config;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, Run, Step, body};

#[derive(Debug)]
pub(crate) struct CustomResponse {
    status: StatusCode,
    body: Template,
    headers: Vec<(HeaderName, Template)>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let status = cfg.status("status_code", 200)?;
    let body = match cfg.get("body").or_else(|| cfg.get("content")) {
        Some(node) => Template::compile(node, cx.phase, cx.src)?,
        None => Template::text(""),
    };
    let headers = crate::headers::compile_map(&cfg, "headers", cx)?;
    Ok(Box::new(CustomResponse {
        status,
        body,
        headers,
    }))
}

impl Action for CustomResponse {
    fn kind(&self) -> &'static str {
        "custom-response"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.respond(ctx))
    }
}

impl CustomResponse {
    fn respond(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let text = self.body.render(ctx)?.into_owned();
        let mut res = Response::new(body::empty());
        *res.status_mut() = self.status;
        for (name, value) in &self.headers {
            let value = crate::headers::value(&value.render(ctx)?)?;
            res.headers_mut().append(name.clone(), value);
        }
        if !text.is_empty() && !res.headers().contains_key(CONTENT_TYPE) {
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(infer(&text)));
        }
        *res.body_mut() = body::full(text);
        ctx.set_response(res);
        Ok(Step::Respond)
    }
}

/// The content type of a body written in a policy.
fn infer(body: &str) -> &'static str {
    let t = body.trim_start();
    if t.starts_with('<') {
        "text/html; charset=utf-8"
    } else if (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(body).is_ok()
    {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}
