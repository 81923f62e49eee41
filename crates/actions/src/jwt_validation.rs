//! `jwt-validation` (spec §3.3): every configured token must be present
//! (a header, or a field of a form or JSON body), signed by a key of the
//! configured key sets with an allowed algorithm, issued by an allowed
//! issuer (exact match) to an allowed audience, and not expired. Otherwise
//! 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
//!
//! `none` is never accepted (it is not an algorithm the verifier knows),
//! and a key is only ever used with its own family: an HMAC `alg` with an
//! RSA key (the HS/RS confusion) fails, even if `HS256` were allowed.

use base64::Engine as _;
use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use portcullis_cel::{Diagnostic, Value};

use crate::action::Config;
use crate::jwks::{Jwks, JwksError};
use crate::jwt_validation_rules::key_issuer_matches;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, respond};

#[cfg(test)]
mod tests;

/// Tolerated clock skew for `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;
/// The largest body searched for a token.
const MAX_BODY: usize = 1024 * 1024;
const INVALID: &str = "ERR_NGROK_3401";
const NOT_FOUND: &str = "ERR_NGROK_3406";
const MALFORMED: &str = "ERR_NGROK_3416";
const JWKS_FAILED: &str = "ERR_NGROK_3422";

#[derive(Debug)]
struct TokenSpec {
    in_body: bool,
    name: Template,
    prefix: Template,
}

#[derive(Debug)]
pub(crate) struct JwtValidation {
    issuers: Vec<Template>,
    audiences: Vec<Template>,
    tokens: Vec<TokenSpec>,
    algorithms: Vec<Algorithm>,
    jwks: Jwks,
    tokens_var: Option<ResultVar>,
    error_code: Option<ResultVar>,
    error_message: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let allow_list = |key: &str| -> Result<Vec<Template>, Diagnostic> {
        let Some(section) = cfg.get(key) else {
            return Ok(Vec::new());
        };
        let section = Config {
            node: Some(section),
            span: section.span,
        };
        section
            .seq("allow_list")
            .iter()
            .filter_map(|item| {
                let entry = Config {
                    node: Some(item),
                    span: item.span,
                };
                entry.get("value")
            })
            .map(|node| Template::compile(node, cx.phase, cx.src))
            .collect()
    };
    let issuers = allow_list("issuer")?;
    let audiences = allow_list("audience")?;
    let mut tokens = Vec::new();
    if let Some(http) = cfg.get("http") {
        let http = Config {
            node: Some(http),
            span: http.span,
        };
        for item in http.seq("tokens") {
            let t = Config {
                node: Some(item),
                span: item.span,
            };
            let name = match t.get("name") {
                Some(node) => Template::compile(node, cx.phase, cx.src)?,
                None => Template::text("authorization"),
            };
            let prefix = match t.get("prefix") {
                Some(node) => Template::compile(node, cx.phase, cx.src)?,
                None => Template::text(""),
            };
            tokens.push(TokenSpec {
                in_body: t.str("method") == Some("body"),
                name,
                prefix,
            });
        }
    }
    let jws = cfg.get("jws").map(|n| Config {
        node: Some(n),
        span: n.span,
    });
    let mut algorithms = Vec::new();
    let mut urls = Vec::new();
    if let Some(jws) = jws {
        for node in jws.seq("allowed_algorithms") {
            let text = node.scalar().map_or("", |s| s.value.as_str());
            let alg = text.parse::<Algorithm>().map_err(|_| {
                cfg.error(
                    Some(node),
                    format!("`{text}` is not an algorithm this build verifies"),
                )
            })?;
            algorithms.push(alg);
        }
        if let Some(keys) = jws.get("keys") {
            let keys = Config {
                node: Some(keys),
                span: keys.span,
            };
            if let Some(sources) = keys.get("sources") {
                let sources = Config {
                    node: Some(sources),
                    span: sources.span,
                };
                for node in sources.seq("additional_jkus") {
                    let url = Template::compile(node, cx.phase, cx.src)?;
                    let Some(url) = url.constant() else {
                        return Err(cfg.error(
                            Some(node),
                            "key set URLs are fetched once for every request, so they cannot depend on one; write the URL without `${}`",
                        ));
                    };
                    urls.push(url.to_owned());
                }
            }
        }
    }
    if issuers.is_empty() || tokens.is_empty() || algorithms.is_empty() || urls.is_empty() {
        return Err(cfg.error(
            None,
            "`jwt-validation` needs issuers, tokens, allowed algorithms and key set URLs",
        ));
    }
    Ok(Box::new(JwtValidation {
        issuers,
        audiences,
        tokens,
        algorithms,
        jwks: Jwks::new(urls, cx.client.cloned()),
        tokens_var: cx.result("actions.ngrok.jwt_validation.tokens"),
        error_code: cx.result("actions.ngrok.jwt_validation.error.code"),
        error_message: cx.result("actions.ngrok.jwt_validation.error.message"),
    }))
}

impl Action for JwtValidation {
    fn kind(&self) -> &'static str {
        "jwt-validation"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Wait(Box::pin(self.validate(ctx)))
    }
}

/// A token's failure: the code, and what to tell the client.
struct Rejection {
    code: &'static str,
    message: String,
    status: StatusCode,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
        status: StatusCode::UNAUTHORIZED,
    }
}

impl JwtValidation {
    async fn validate(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let mut results = Vec::with_capacity(self.tokens.len());
        for spec in &self.tokens {
            match self.check(spec, ctx).await {
                Ok(value) => results.push(value),
                Err(r) => {
                    if let Some(var) = self.error_code {
                        ctx.set_result(var, Value::str(r.code));
                    }
                    if let Some(var) = self.error_message {
                        ctx.set_result(var, Value::string(r.message.as_str()));
                    }
                    tracing::info!(
                        code = r.code,
                        "jwt-validation rejected a request: {}",
                        r.message
                    );
                    let mut res = respond::error(r.status, r.code, &r.message);
                    if r.status == StatusCode::UNAUTHORIZED {
                        let challenge = format!(
                            "Bearer error=\"invalid_token\", error_description=\"{}\"",
                            r.message.replace(['"', '\\'], "'")
                        );
                        if let Ok(v) = HeaderValue::from_str(&challenge) {
                            res.headers_mut().insert(WWW_AUTHENTICATE, v);
                        }
                    }
                    ctx.set_response(res);
                    return Ok(Step::Respond);
                }
            }
        }
        if let Some(var) = self.tokens_var {
            ctx.set_result(var, Value::list(results));
        }
        Ok(Step::Next)
    }

    /// Finds, verifies and validates one token; its result value.
    async fn check(
        &self,
        spec: &TokenSpec,
        ctx: &mut RequestCtx,
    ) -> Result<Value<'static>, Rejection> {
        let name = spec
            .name
            .render(ctx)
            .map_err(|e| reject(MALFORMED, e.message))?
            .into_owned();
        let prefix = spec
            .prefix
            .render(ctx)
            .map_err(|e| reject(MALFORMED, e.message))?
            .into_owned();
        let raw = if spec.in_body {
            body_field(ctx, &name).await?
        } else {
            ctx.req_headers()
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| reject(NOT_FOUND, format!("no `{name}` header")))?
        };
        let token = strip_prefix(&raw, &prefix)
            .ok_or_else(|| {
                reject(
                    NOT_FOUND,
                    format!("`{name}` does not start with `{prefix}`"),
                )
            })?
            .trim()
            .to_owned();
        let header = decode_header(&token)
            .map_err(|e| reject(MALFORMED, format!("the token is not a JWS: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(reject(
                INVALID,
                format!("the token's algorithm {:?} is not allowed", header.alg),
            ));
        }
        let keys = self
            .jwks
            .keys(header.kid.as_deref())
            .await
            .map_err(|e| match e {
                JwksError::NoClient => Rejection {
                    code: JWKS_FAILED,
                    message: "key sets can only be fetched in the proxy".into(),
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                },
                JwksError::Fetch(why) => Rejection {
                    code: JWKS_FAILED,
                    message: format!("the key set could not be fetched: {why}"),
                    status: StatusCode::BAD_GATEWAY,
                },
            })?;
        if keys.is_empty() {
            return Err(reject(INVALID, "no key of the key sets signed the token"));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        // jsonwebtoken checks `nbf` only when asked.
        validation.validate_nbf = true;
        let issuers: Vec<String> = self
            .issuers
            .iter()
            .filter_map(|t| t.render(ctx).ok().map(|s| s.into_owned()))
            .collect();
        validation.set_issuer(&issuers);
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            let audiences: Vec<String> = self
                .audiences
                .iter()
                .filter_map(|t| t.render(ctx).ok().map(|s| s.into_owned()))
                .collect();
            validation.set_audience(&audiences);
        }
        let mut last = None;
        for key in keys
            .iter()
            .filter(|k| k.alg.is_none_or(|a| a == header.alg))
        {
            match decode::<serde_json::Value>(&token, &key.key, &validation) {
                Ok(data) if !key_issuer_matches(key.issuer.as_deref(), &data.claims) => {
                    return Err(reject(
                        INVALID,
                        "the token's issuer is not the issuer of the key that signed it",
                    ));
                }
                Ok(data) => {
                    let location = if spec.in_body { "body" } else { "header" };
                    return Ok(token_value(&token, &data.claims, location, &name));
                }
                Err(e) => last = Some(e),
            }
        }
        let why = match last.as_ref().map(jsonwebtoken::errors::Error::kind) {
            Some(jsonwebtoken::errors::ErrorKind::ExpiredSignature) => "the token has expired",
            Some(jsonwebtoken::errors::ErrorKind::ImmatureSignature) => {
                "the token is not valid yet"
            }
            Some(jsonwebtoken::errors::ErrorKind::InvalidIssuer) => {
                "the token's issuer is not allowed"
            }
            Some(jsonwebtoken::errors::ErrorKind::InvalidAudience) => {
                "the token's audience is not allowed"
            }
            Some(jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_)) => {
                "the token lacks a required claim"
            }
            _ => "the token's signature does not verify",
        };
        Err(reject(INVALID, why))
    }
}

/// `value` without `prefix` (compared without regard to case, as auth
/// schemes are: `Bearer` and `bearer` are one scheme).
fn strip_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

/// The field `name` of a form or JSON request body.
async fn body_field(ctx: &mut RequestCtx, name: &str) -> Result<String, Rejection> {
    if !matches!(*ctx.method(), Method::POST | Method::PUT | Method::PATCH) {
        return Err(reject(
            "ERR_NGROK_3415",
            "tokens are read from POST, PUT and PATCH bodies only",
        ));
    }
    let kind = ctx
        .req_headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = ctx
        .buffer_body(MAX_BODY)
        .await
        .map_err(|_| reject(NOT_FOUND, "the request body could not be read"))?;
    let text = std::str::from_utf8(&body).map_err(|_| reject(NOT_FOUND, "the body is not text"))?;
    let found = if kind.starts_with("application/x-www-form-urlencoded") {
        portcullis_policy::functions::query_params(text)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.into_iter().next())
    } else if kind.starts_with("application/json") {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| reject("ERR_NGROK_3411", "the body is not JSON"))?;
        json.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        })
    } else {
        return Err(reject(
            "ERR_NGROK_3414",
            "tokens are read from form or JSON bodies only",
        ));
    };
    found.ok_or_else(|| reject(NOT_FOUND, format!("no `{name}` field in the body")))
}

/// `actions.ngrok.jwt_validation.tokens[i]`.
fn token_value(
    token: &str,
    claims: &serde_json::Value,
    location: &str,
    property: &str,
) -> Value<'static> {
    let mut parts = token.split('.');
    let header = parts
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let signature = parts.nth(1).unwrap_or("");
    let entries = vec![
        ("header", portcullis_cel::json::from_json(&header)),
        ("payload", portcullis_cel::json::from_json(claims)),
        ("signature", Value::string(signature)),
        ("location", Value::string(location)),
        ("location_property", Value::string(property)),
        ("verified", Value::Bool(true)),
    ];
    crate::record::record(entries)
}
