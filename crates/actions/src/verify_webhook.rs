//! `verify-webhook` (spec §3.11): checks a webhook's signature with the
//! provider's scheme (`webhook`), reading the whole request body (which
//! is still forwarded). Rejected: 403 (`ERR_NGROK_3204`), unless
//! `enforce: false`, in which case the failure is recorded in
//! `actions.ngrok.verify_webhook.*` and the policy goes on. Providers'
//! endpoint-verification handshakes (Twitter's CRC, Zoom's URL validation,
//! Worldline's GET) are answered here (`challenge.rs`), and Xero's
//! "intent to receive" gets the 401 it expects for a bad signature.

mod challenge;

use std::time::SystemTime;

use portcullis_cel::{Diagnostic, Value};

use crate::action::Config;
use crate::template::Template;
use crate::webhook::{self, Provider, Signed};
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, respond};

/// ngrok's code for a webhook that failed verification.
const UNVERIFIED: &str = "ERR_NGROK_3204";

/// The largest body verified; webhooks are small, and the body is held in
/// memory while it is checked.
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct VerifyWebhook {
    provider: Provider,
    secret: Template,
    enforce: bool,
    verified: Option<ResultVar>,
    error_code: Option<ResultVar>,
    error_message: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let id = cfg.str("provider").unwrap_or("");
    let provider = Provider::from_id(id).ok_or_else(|| {
        let known: Vec<&str> = Provider::all().iter().map(|p| p.id()).collect();
        cfg.error(
            cfg.get("provider"),
            format!(
                "this build cannot verify `{id}` webhooks; it knows {}",
                known.join(", ")
            ),
        )
    })?;
    let secret = match cfg.get("secret") {
        Some(node) => Template::compile(node, cx.phase, cx.src)?,
        None => Template::text(""),
    };
    Ok(Box::new(VerifyWebhook {
        provider,
        secret,
        enforce: cfg.bool("enforce", true),
        verified: cx.result("actions.ngrok.verify_webhook.verified"),
        error_code: cx.result("actions.ngrok.verify_webhook.error.code"),
        error_message: cx.result("actions.ngrok.verify_webhook.error.message"),
    }))
}

impl Action for VerifyWebhook {
    fn kind(&self) -> &'static str {
        "verify-webhook"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Wait(Box::pin(self.verify(ctx)))
    }
}

impl VerifyWebhook {
    async fn verify(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let secret = self.secret.render(ctx)?.into_owned();
        if let Some(challenge::Challenge::Now(res)) =
            challenge::challenge(self.provider, &secret, ctx, None)
        {
            ctx.set_response(res);
            return Ok(Step::Respond);
        }
        let mut answer = None;
        let outcome = match ctx.buffer_body(MAX_BODY).await {
            Ok(body) => {
                if let Some(challenge::Challenge::AfterVerifying(res)) =
                    challenge::challenge(self.provider, &secret, ctx, Some(&body))
                {
                    answer = Some(res);
                }
                let signed = Signed {
                    method: ctx.method().as_str(),
                    url: ctx.url(),
                    headers: ctx.req_headers(),
                    body: &body,
                };
                webhook::verify(self.provider, &secret, &signed, SystemTime::now())
                    .map_err(|e| e.message().to_owned())
            }
            Err(_) => Err("the request body could not be read in full".to_owned()),
        };
        if let Some(var) = self.verified {
            ctx.set_result(var, Value::Bool(outcome.is_ok()));
        }
        let Err(message) = outcome else {
            // A verified handshake is answered here, not passed on.
            if let Some(res) = answer {
                ctx.set_response(res);
                return Ok(Step::Respond);
            }
            return Ok(Step::Next);
        };
        if let Some(var) = self.error_code {
            ctx.set_result(var, Value::str(UNVERIFIED));
        }
        if let Some(var) = self.error_message {
            ctx.set_result(var, Value::string(message.as_str()));
        }
        if !self.enforce {
            return Ok(Step::Next);
        }
        ctx.set_response(respond::error(
            challenge::failure_status(self.provider),
            UNVERIFIED,
            &format!("webhook verification failed: {message}"),
        ));
        Ok(Step::Respond)
    }
}
