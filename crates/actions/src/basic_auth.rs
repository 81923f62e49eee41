//! `basic-auth` (spec §3.11): HTTP Basic authentication (RFC 7617)
//! against a list of `user:password` credentials, compared in constant
//! time. Rejected: 401 with a `WWW-Authenticate` challenge, unless
//! `enforce: false`.

use base64::Engine as _;
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use portcullis_cel::{Diagnostic, Value};
use portcullis_policy::yaml::NodeKind;
use subtle::ConstantTimeEq;

use crate::action::Config;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, respond};

#[derive(Debug)]
pub(crate) struct BasicAuth {
    credentials: Vec<Template>,
    challenge: HeaderValue,
    enforce: bool,
    presented: Option<ResultVar>,
    username: Option<ResultVar>,
    authorized: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let credentials = cfg
        .seq("credentials")
        .iter()
        .map(|node| match &node.kind {
            // The legacy `{username, password}` form, which lint accepts
            // with a warning (ngrok's add-authentication page prints it).
            NodeKind::Map(_) => {
                let field = |k: &str| {
                    node.get(k)
                        .and_then(|n| n.scalar())
                        .map(|s| s.value.as_str())
                };
                Ok(Template::text(&format!(
                    "{}:{}",
                    field("username").unwrap_or(""),
                    field("password").unwrap_or("")
                )))
            }
            _ => Template::compile(node, cx.phase, cx.src),
        })
        .collect::<Result<_, _>>()?;
    let realm = cfg.str("realm").unwrap_or("ngrok");
    let challenge = format!(
        "Basic realm=\"{}\", charset=\"UTF-8\"",
        realm.replace(['\\', '"'], "")
    );
    let challenge = HeaderValue::from_str(&challenge)
        .map_err(|_| cfg.error(cfg.get("realm"), "`realm` must be printable ASCII"))?;
    Ok(Box::new(BasicAuth {
        credentials,
        challenge,
        enforce: cfg.bool("enforce", true),
        presented: cx.result("actions.ngrok.basic_auth.credentials.presented"),
        username: cx.result("actions.ngrok.basic_auth.credentials.username"),
        authorized: cx.result("actions.ngrok.basic_auth.credentials.authorized"),
    }))
}

impl Action for BasicAuth {
    fn kind(&self) -> &'static str {
        "basic-auth"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.check(ctx))
    }
}

/// The `user:password` of an `Authorization: Basic` header.
fn presented(ctx: &RequestCtx) -> Option<String> {
    let value = ctx.req_headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

impl BasicAuth {
    fn check(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let given = presented(ctx);
        let mut authorized = false;
        if let Some(given) = &given {
            for t in &self.credentials {
                let expected = t.render(ctx)?;
                // Every credential is compared, so the time taken does not
                // tell which one nearly matched.
                authorized |= bool::from(expected.as_bytes().ct_eq(given.as_bytes()));
            }
        }
        let username = given
            .as_deref()
            .and_then(|g| g.split_once(':'))
            .map_or("", |(u, _)| u)
            .to_owned();
        if let Some(var) = self.presented {
            ctx.set_result(var, Value::Bool(given.is_some()));
        }
        if authorized {
            ctx.set_identity(crate::Identity::basic(&username));
        }
        if let Some(var) = self.username {
            ctx.set_result(var, Value::string(username));
        }
        if let Some(var) = self.authorized {
            ctx.set_result(var, Value::Bool(authorized));
        }
        if authorized || !self.enforce {
            return Ok(Step::Next);
        }
        let mut res = respond::status(StatusCode::UNAUTHORIZED);
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, self.challenge.clone());
        ctx.set_response(res);
        Ok(Step::Respond)
    }
}
