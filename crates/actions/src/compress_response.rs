//! `compress-response` (spec §3.11): compresses the response as it
//! streams, with the algorithm the client prefers among those allowed
//! (`encoding`). A response that is already encoded, has no body
//! (`HEAD`, 204, 304) or that the client cannot accept compressed is left
//! alone. A compressed response loses `content-length` and gains
//! `content-encoding` and `vary: accept-encoding`.

use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, HeaderValue, VARY};
use http::{Method, StatusCode};
use portcullis_cel::{Diagnostic, Value};

use crate::action::Config;
use crate::encoding::{self, Algorithm};
use crate::{Action, CompileCx, RequestCtx, ResultVar, Run, Step, body};

#[derive(Debug)]
pub(crate) struct CompressResponse {
    algorithms: Vec<Algorithm>,
    already: Option<ResultVar>,
    negotiated: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let mut algorithms = Vec::new();
    for node in cfg.seq("algorithms") {
        let token = node.scalar().map_or("", |s| s.value.as_str());
        let alg = Algorithm::from_token(token)
            .ok_or_else(|| cfg.error(Some(node), format!("unknown algorithm `{token}`")))?;
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        algorithms = Algorithm::ALL.to_vec();
    }
    Ok(Box::new(CompressResponse {
        algorithms,
        already: cx.result("actions.ngrok.compress.already_compressed"),
        negotiated: cx.result("actions.ngrok.compress.negotiated_algorithm"),
    }))
}

impl Action for CompressResponse {
    fn kind(&self) -> &'static str {
        "compress-response"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        self.compress(ctx);
        Run::Done(Ok(Step::Next))
    }
}

impl CompressResponse {
    fn compress(&self, ctx: &mut RequestCtx) {
        let Some(headers) = ctx.res_headers() else {
            return;
        };
        let already = headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes() != b"identity");
        if let Some(var) = self.already {
            ctx.set_result(var, Value::Bool(already));
        }
        let no_body = *ctx.method() == Method::HEAD
            || matches!(
                ctx.status(),
                Some(StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
            );
        if already || no_body {
            return;
        }
        let Some(alg) = encoding::negotiate(
            ctx.req_headers().get_all(ACCEPT_ENCODING).iter(),
            &self.algorithms,
        ) else {
            return;
        };
        if let Some(var) = self.negotiated {
            ctx.set_result(var, Value::str(alg.token()));
        }
        ctx.map_res_body(|b| body::boxed(encoding::compress(b, alg)));
        if let Some(headers) = ctx.res_headers_mut() {
            headers.remove(CONTENT_LENGTH);
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(alg.token()));
            headers.append(VARY, HeaderValue::from_static("accept-encoding"));
        }
    }
}
