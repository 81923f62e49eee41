//! `log` (spec §3.11): adds `metadata`, interpolated, to the exchange's
//! access-log entry (ngrok appends it to `traffic_policy.logs[]`). A field
//! whose interpolation fails (a result that was not set: ngrok's dry-run
//! examples log `error.code` whether or not there was one) is logged as
//! `null`: logging never ends an exchange.

use portcullis_cel::Diagnostic;

use crate::action::Config;
use crate::set_vars::Tree;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step};

#[derive(Debug)]
pub(crate) struct Log {
    metadata: Tree,
    result: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let metadata = match cfg.get("metadata") {
        Some(node) => Tree::compile(node, cx)?,
        None => Tree::Map(Vec::new()),
    };
    Ok(Box::new(Log {
        metadata,
        result: cx.result("actions.ngrok.log.metadata"),
    }))
}

impl Action for Log {
    fn kind(&self) -> &'static str {
        "log"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.log(ctx))
    }
}

impl Log {
    fn log(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let value = self.metadata.value_or_null(ctx)?;
        let json = portcullis_cel::json::to_json(&value)
            .map_err(|e| ActionError::internal("ERR_NGROK_2300", e.message().to_owned()))?;
        ctx.log(json);
        if let Some(var) = self.result {
            ctx.set_result(var, value);
        }
        Ok(Step::Next)
    }
}
