//! `close-connection` (spec §3.11): drops the connection without an
//! answer. Terminating.

use portcullis_cel::Diagnostic;

use crate::action::Config;
use crate::{Action, CompileCx, RequestCtx, Run, Step};

#[derive(Debug)]
pub(crate) struct CloseConnection;

pub(crate) fn compile(_: Config<'_>, _: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    Ok(Box::new(CloseConnection))
}

impl Action for CloseConnection {
    fn kind(&self) -> &'static str {
        "close-connection"
    }

    fn run<'a>(&'a self, _: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(Ok(Step::Close))
    }
}
