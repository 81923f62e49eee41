//! `deny` (spec §3.4): answers with a status and no body; on
//! `on_tcp_connect`, closes the connection. Terminating.

use http::StatusCode;
use portcullis_cel::Diagnostic;
use portcullis_policy::schema::Phase;

use crate::action::Config;
use crate::{Action, CompileCx, RequestCtx, Run, Step, respond};

#[derive(Debug)]
pub(crate) struct Deny {
    status: StatusCode,
    close: bool,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let status = cfg.status("status_code", 403)?;
    Ok(Box::new(Deny {
        status,
        close: cx.phase == Phase::TcpConnect,
    }))
}

impl Action for Deny {
    fn kind(&self) -> &'static str {
        "deny"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        if self.close {
            return Run::Done(Ok(Step::Close));
        }
        ctx.set_response(respond::status(self.status));
        Run::Done(Ok(Step::Respond))
    }
}
