//! `owasp-crs-request` and `owasp-crs-response`: the OWASP Core Rule Set
//! scores the request (SQL injection, cross-site scripting, path
//! traversal, ...) or the response (data leaks), and what reaches the
//! anomaly threshold is answered `403` (`ERR_NGROK_3700` for a request,
//! `ERR_NGROK_3702` for a response), as ngrok does with Coraza.
//!
//! - **The engine** is libmodsecurity3 running CRS 4.28 at paranoia level
//!   1 with the CRS's thresholds (5 inbound, 4 outbound), ngrok's
//!   settings (`portcullis-waf` says why). The rule set is loaded when the
//!   policy is: a machine without the library refuses the policy, with
//!   the reason, rather than run it unchecked.
//! - **Bodies** are inspected with `process_body: true`: read whole, up
//!   to 8 MiB (ngrok looks at the first 4 KB only; a payload after 4 KB
//!   of padding is found here), decoded from `gzip`, `deflate` or `br`.
//!   A larger or unreadable body is an error, never a pass: with
//!   `on_error: halt` (the default) the exchange ends (`413` for a
//!   request, `502` for a response, `ERR_NGROK_3903`); with `continue`,
//!   the rules run without the body and the error is recorded in the
//!   result. Response bodies are inspected when they are text, HTML, XML
//!   or JSON, as ModSecurity's recommended setup does.
//! - **What the rules see** is the request as the client sent it: the
//!   target before the proxy's canonicalisation (a `../` the proxy
//!   resolves is still an attack), the headers, the client's address.
//! - **Test mode**: `on_error: continue` evaluates the rules and records
//!   the decision without blocking, as ngrok documents it ("rules are
//!   evaluated but blocks are not enforced").
//! - **Extensions**: `paranoia_level` (1–4), `anomaly_threshold`, and
//!   `enforce: false` (ModSecurity's detection-only mode: scored and
//!   reported in the result, never blocked, whatever `on_error` says).
//! - **Results**: `actions.ngrok.owasp_crs_*.decision` (`allow`, `deny`),
//!   `.anomaly_score`, `.anomaly_score_threshold`, `.matched_rules`
//!   (`id`, `message`, `severity`, `data`), `.error`.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use portcullis_cel::{Diagnostic, Value};
use portcullis_waf::{Report, RuleSet, Rules, Transaction};

use crate::action::Config;
use crate::body_find_replace::{MAX_BODY, coding, decode};
use crate::record::record;
use crate::{Action, ActionError, BodyError, CompileCx, RequestCtx, ResultVar, Run, Step, respond};

/// ngrok's code for a request the WAF blocked.
const REQUEST_BLOCKED: &str = "ERR_NGROK_3700";
/// ngrok's code for a response the WAF blocked.
const RESPONSE_BLOCKED: &str = "ERR_NGROK_3702";
/// ngrok's code for a body that could not be read whole.
const NOT_BUFFERED: &str = "ERR_NGROK_3903";
/// The HTTP version as libmodsecurity spells it (`REQUEST_PROTOCOL` is
/// `HTTP/` and this).
fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2.0",
        http::Version::HTTP_3 => "3.0",
        _ => "1.1",
    }
}

/// The response media types whose bodies are inspected.
const INSPECTED: &[&str] = &["text/plain", "text/html", "text/xml", "application/json"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Request,
    Response,
}

#[derive(Debug)]
struct Results {
    decision: Option<ResultVar>,
    score: Option<ResultVar>,
    threshold: Option<ResultVar>,
    matched: Option<ResultVar>,
    error_code: Option<ResultVar>,
    error_message: Option<ResultVar>,
}

#[derive(Debug)]
pub(crate) struct OwaspCrs {
    side: Side,
    rules: Arc<RuleSet>,
    process_body: bool,
    halt: bool,
    enforce: bool,
    threshold: u32,
    results: Results,
}

pub(crate) fn compile_request(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
) -> Result<Box<dyn Action>, Diagnostic> {
    compile(cfg, cx, Side::Request)
}

pub(crate) fn compile_response(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
) -> Result<Box<dyn Action>, Diagnostic> {
    compile(cfg, cx, Side::Response)
}

fn compile(cfg: Config<'_>, cx: &CompileCx<'_>, side: Side) -> Result<Box<dyn Action>, Diagnostic> {
    let process_body = cfg.bool("process_body", false);
    // `on_error: continue` is ngrok's test mode: the rules are evaluated,
    // the decision recorded, nothing blocked (a block is the action's
    // error, and the policy goes on past it).
    let halt = cfg.str("on_error") != Some("continue");
    let enforce = cfg.bool("enforce", true) && halt;
    let default_threshold = match side {
        Side::Request => 5,
        Side::Response => 4,
    };
    let threshold = cfg
        .int("anomaly_threshold")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(default_threshold);
    let paranoia_level = cfg
        .int("paranoia_level")
        .and_then(|n| u8::try_from(n).ok())
        .unwrap_or(1);
    let mut exclude: Vec<u32> = cfg
        .seq("exclude_rule_ids")
        .iter()
        .filter_map(|n| n.scalar()?.value.trim().parse().ok())
        .collect();
    exclude.sort_unstable();
    let config = portcullis_waf::Config {
        rules: match side {
            Side::Request => Rules::Request,
            Side::Response => Rules::Response,
        },
        paranoia_level,
        inbound_threshold: threshold,
        outbound_threshold: threshold,
        bodies: process_body,
        exclude,
        blocking: enforce,
        directives: String::new(),
    };
    let rules = RuleSet::load(&config).map_err(|e| cfg.error(None, e.to_string()))?;
    let prefix = match side {
        Side::Request => "actions.ngrok.owasp_crs_request",
        Side::Response => "actions.ngrok.owasp_crs_response",
    };
    let result = |field: &str| cx.result(&format!("{prefix}.{field}"));
    Ok(Box::new(OwaspCrs {
        side,
        rules,
        process_body,
        halt,
        enforce,
        threshold,
        results: Results {
            decision: result("decision"),
            score: result("anomaly_score"),
            threshold: result("anomaly_score_threshold"),
            matched: result("matched_rules"),
            error_code: result("error.code"),
            error_message: result("error.message"),
        },
    }))
}

impl Action for OwaspCrs {
    fn kind(&self) -> &'static str {
        match self.side {
            Side::Request => "owasp-crs-request",
            Side::Response => "owasp-crs-response",
        }
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        // The head first (phases 1 and, for a response, 3): what it
        // decides needs no body, and a request blocked on its headers is
        // answered without reading one.
        let mut tx = self.head(ctx);
        if tx.blocked().is_some() || !self.wants_body(ctx) {
            self.body(&mut tx, None);
            return Run::Done(self.conclude(ctx, tx));
        }
        Run::Wait(Box::pin(async move {
            let body = match self.side {
                Side::Request => ctx.buffer_body(MAX_BODY).await,
                Side::Response => ctx.buffer_res_body(MAX_BODY).await,
            };
            let body = match body
                .map_err(|e| self.body_error(e))
                .and_then(|b| self.decoded(ctx, b))
            {
                Ok(b) => Some(b),
                Err(e) if self.halt => return Err(e),
                Err(e) => {
                    self.record_error(ctx, &e);
                    None
                }
            };
            self.body(&mut tx, body.as_deref());
            self.conclude(ctx, tx)
        }))
    }
}

impl OwaspCrs {
    /// Whether the body is to be read: asked for, and (for a response)
    /// of a type the rules inspect.
    fn wants_body(&self, ctx: &RequestCtx) -> bool {
        if !self.process_body {
            return false;
        }
        match self.side {
            Side::Request => true,
            Side::Response => ctx
                .res_headers()
                .and_then(|h| h.get(CONTENT_TYPE))
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .is_some_and(|t| INSPECTED.contains(&t.as_str())),
        }
    }

    fn body_error(&self, e: BodyError) -> ActionError {
        let (status, why) = match (e, self.side) {
            (BodyError::TooLarge, Side::Request) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than the {} MiB inspected",
                    MAX_BODY >> 20
                ),
            ),
            (BodyError::TooLarge, Side::Response) => (
                StatusCode::BAD_GATEWAY,
                format!(
                    "the body is larger than the {} MiB inspected",
                    MAX_BODY >> 20
                ),
            ),
            (BodyError::Read, _) => (
                StatusCode::BAD_GATEWAY,
                "the body could not be read".to_owned(),
            ),
        };
        ActionError {
            status,
            code: NOT_BUFFERED,
            message: format!("{}: {why}", self.kind()),
        }
    }

    /// The body as the rules are to see it: decoded from its content
    /// coding.
    fn decoded(&self, ctx: &RequestCtx, raw: Bytes) -> Result<Bytes, ActionError> {
        let headers = match self.side {
            Side::Request => Some(ctx.req_headers()),
            Side::Response => ctx.res_headers(),
        };
        let Some(headers) = headers else {
            return Ok(raw);
        };
        let fail = |why: String| ActionError {
            status: match self.side {
                Side::Request => StatusCode::BAD_REQUEST,
                Side::Response => StatusCode::BAD_GATEWAY,
            },
            code: NOT_BUFFERED,
            message: format!("{}: {why}", self.kind()),
        };
        match coding(headers).map_err(fail)? {
            Some(c) if !raw.is_empty() => decode(&raw, c).map_err(fail),
            _ => Ok(raw),
        }
    }

    fn record_error(&self, ctx: &mut RequestCtx, e: &ActionError) {
        for (var, value) in [
            (self.results.error_code, e.code.to_owned()),
            (self.results.error_message, e.message.clone()),
        ] {
            if let Some(var) = var {
                ctx.set_result(var, Value::string(value));
            }
        }
    }

    /// A transaction with the request's head checked, and for a
    /// response its request's body phase (without the body: that was
    /// `owasp-crs-request`'s to inspect) and the response's head.
    fn head(&self, ctx: &RequestCtx) -> Transaction {
        let conn = ctx.conn();
        let mut tx = Transaction::new(&self.rules, conn.client, conn.server);
        let version = version(ctx.version());
        let headers = ctx.req_headers();
        // HTTP/2 and 3 carry the host in `:authority`; the rules expect
        // `Host` (and flag its absence in HTTP/1.1).
        let host = (ctx.version() >= http::Version::HTTP_2
            && !headers.contains_key(http::header::HOST))
        .then(|| (&b"host"[..], ctx.authority().as_bytes()));
        let request_headers = headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
            .chain(host);
        tx.request(
            ctx.method().as_str(),
            ctx.raw_target(),
            version,
            request_headers,
        );
        if self.side == Side::Response {
            tx.request_body(&[]);
            if let (Some(status), Some(headers)) = (ctx.status(), ctx.res_headers()) {
                // A body the rules will see decoded is shown without its
                // coding: the CRS skips the body rules of a coded response.
                let decoded = self.wants_body(ctx) && matches!(coding(headers), Ok(Some(_)));
                let response_headers = headers
                    .iter()
                    .filter(|(n, _)| !(decoded && *n == http::header::CONTENT_ENCODING))
                    .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
                tx.response(status.as_u16(), version, response_headers);
            }
        }
        tx
    }

    /// The body phase (2 or 4), with `body` if it is to be inspected.
    fn body(&self, tx: &mut Transaction, body: Option<&[u8]>) {
        let body = body.unwrap_or_default();
        match self.side {
            Side::Request => tx.request_body(body),
            Side::Response => tx.response_body(body),
        };
    }

    /// Records what the rules found and blocks what reached the
    /// threshold.
    fn conclude(&self, ctx: &mut RequestCtx, tx: Transaction) -> Result<Step, ActionError> {
        let report = tx.finish();
        let score = match self.side {
            Side::Request => report.inbound_score,
            Side::Response => report.outbound_score,
        }
        .unwrap_or(0);
        let deny = report.blocked.is_some() || score >= self.threshold;
        self.record(ctx, &report, score, deny);
        if !deny || !self.enforce {
            return Ok(Step::Next);
        }
        let (code, what) = match self.side {
            Side::Request => (REQUEST_BLOCKED, "request"),
            Side::Response => (RESPONSE_BLOCKED, "response"),
        };
        ctx.set_response(respond::error(
            StatusCode::FORBIDDEN,
            code,
            &format!("The {what} was blocked by the web application firewall."),
        ));
        Ok(Step::Respond)
    }

    fn record(&self, ctx: &mut RequestCtx, report: &Report, score: u32, deny: bool) {
        let r = &self.results;
        if let Some(var) = r.decision {
            ctx.set_result(var, Value::string(if deny { "deny" } else { "allow" }));
        }
        if let Some(var) = r.score {
            ctx.set_result(var, Value::Int(i64::from(score)));
        }
        if let Some(var) = r.threshold {
            ctx.set_result(var, Value::Int(i64::from(self.threshold)));
        }
        if let Some(var) = r.matched {
            let list = report
                .matched
                .iter()
                .map(|m| {
                    record(vec![
                        ("id", Value::Int(i64::from(m.id))),
                        ("message", Value::string(m.message.as_str())),
                        ("severity", Value::string(m.severity.name())),
                        ("data", Value::string(m.data.as_str())),
                    ])
                })
                .collect();
            ctx.set_result(var, Value::list(list));
        }
    }
}
