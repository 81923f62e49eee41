//! `http-request` (spec §3.11): calls a URL (an internal upstream, as in
//! ngrok) and exposes the response as `actions.ngrok.http_request.*`, so a
//! later rule can decide on it (an authorization service's verdict).
//!
//! The call goes through the proxy's client ([`HttpClient`]), which reaches
//! internal upstreams only, redirects included: with `max_redirects`, a
//! `3xx` with a `Location` is followed (a path on the same upstream, or
//! another internal one), `303` (and `301`/`302` after a `POST`) as a
//! `GET` without a body, as browsers and Go's client do; one redirect
//! more than allowed fails the attempt. `timeout` bounds every attempt
//! together, redirects included.
//! `retry_condition` is evaluated after each attempt with `attempts` and
//! `last_attempt` (`req`, `res`, `error`), for at most three retries. A
//! failure is recorded in `.error.*` and the policy goes on
//! (`on_error: continue`, the default) or the request ends with 502
//! (`on_error: halt`).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, HeaderName, HeaderValue, LOCATION,
    USER_AGENT,
};
use http::{Method, Request, StatusCode};
use portcullis_cel::{Activation, CompileOptions, Diagnostic, Env, Program, Type, Value, VarId};
use portcullis_policy::schema::Phase;

use crate::action::Config;
use crate::client::{FetchError, Fetched, HttpClient, Scope};
use crate::percent;
use crate::record::record;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, env};

/// ngrok caps the response body it keeps at 256 KB.
const MAX_BODY: usize = 256 * 1024;
/// At most this many retries after the first attempt.
const MAX_RETRIES: usize = 3;
/// The most redirects an attempt follows: ngrok's config table allows 100
/// (its behavior section says 5; the larger is accepted, as lint does).
const MAX_REDIRECTS: u32 = 100;
const TOO_LARGE: &str = "ERR_NGROK_3601";
const TIMEOUT: &str = "ERR_NGROK_3602";
const FAILED: &str = "ERR_NGROK_3600";

#[derive(Debug)]
pub(crate) struct HttpRequest {
    url: Template,
    /// How many redirects an attempt follows (none by default, as ngrok).
    max_redirects: u32,
    method: Method,
    query: Vec<(String, Template)>,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    timeout: Duration,
    retry: Option<Program>,
    retry_vars: Option<(VarId, VarId)>,
    halt: bool,
    client: Option<Arc<dyn HttpClient>>,
    results: Results,
}

#[derive(Debug)]
struct Results {
    req: Option<ResultVar>,
    res: Option<ResultVar>,
    attempts: Option<ResultVar>,
    error_code: Option<ResultVar>,
    error_message: Option<ResultVar>,
}

/// The environments of `retry_condition`: the phase's, plus `attempts`
/// and `last_attempt`, as `portcullis lint` checks it.
static RETRY_ENVS: LazyLock<[(Env, VarId, VarId); 3]> = LazyLock::new(|| {
    Phase::all().map(|phase| {
        let mut env = env::env(phase).clone();
        let attempts = env.declare_var("attempts", Type::Int);
        let last = env.declare_var("last_attempt", Type::map(Type::String, Type::Dyn));
        (env, attempts, last)
    })
});

fn retry_env(phase: Phase) -> &'static (Env, VarId, VarId) {
    let [tcp, req, res] = &*RETRY_ENVS;
    match phase.env_phase() {
        Phase::TcpConnect => tcp,
        Phase::HttpRequest => req,
        Phase::HttpResponse | Phase::EventStreamMessage => res,
    }
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let url = match cfg.get("url") {
        Some(node) => Template::compile(node, cx.phase, cx.src)?,
        None => return Err(cfg.error(None, "`url` is required")),
    };
    let method_text = cfg.str("method").unwrap_or("GET");
    let method = Method::from_bytes(method_text.to_ascii_uppercase().as_bytes()).map_err(|_| {
        cfg.error(
            cfg.get("method"),
            format!("`{method_text}` is not a method"),
        )
    })?;
    let mut query = Vec::new();
    for item in cfg.seq("query_params") {
        let entry = Config {
            node: Some(item),
            span: item.span,
        };
        let key = entry.str("key").unwrap_or("").to_owned();
        let value = match entry.get("value") {
            Some(node) => Template::compile(node, cx.phase, cx.src)?,
            None => Template::text(""),
        };
        query.push((key, value));
    }
    let body = cfg
        .get("body")
        .map(|node| Template::compile(node, cx.phase, cx.src))
        .transpose()?;
    let timeout = match cfg.str("timeout") {
        None => Duration::from_secs(3),
        Some(text) => portcullis_cel::time::Duration::parse(text)
            .ok()
            .and_then(|d| u64::try_from(d.nanos()).ok())
            .map(Duration::from_nanos)
            .ok_or_else(|| cfg.error(cfg.get("timeout"), format!("`{text}` is not a duration")))?,
    };
    let (retry, retry_vars) = match cfg.get("retry_condition") {
        None => (None, None),
        Some(node) => {
            let text = node.scalar().map_or("", |s| s.value.as_str());
            let (env, attempts, last) = retry_env(cx.phase);
            let options = CompileOptions {
                expect: Some(Type::Bool),
                ..CompileOptions::default()
            };
            let program = env.compile_with(text, &options).map_err(|diags| {
                let mut d = diags
                    .into_iter()
                    .find(Diagnostic::is_error)
                    .unwrap_or_else(|| cfg.error(Some(node), "`retry_condition` does not compile"));
                d.span = node.value_span(cx.src, d.span);
                d
            })?;
            (Some(program), Some((*attempts, *last)))
        }
    };
    Ok(Box::new(HttpRequest {
        url,
        max_redirects: cfg
            .get("max_redirects")
            .and_then(|n| n.scalar())
            .and_then(|s| s.value.parse::<u32>().ok())
            .unwrap_or(0)
            .min(MAX_REDIRECTS),
        method,
        query,
        headers: crate::headers::compile_map(&cfg, "headers", cx)?,
        body,
        timeout,
        retry,
        retry_vars,
        halt: cfg.str("on_error") == Some("halt"),
        client: cx.client.cloned(),
        results: Results {
            req: cx.result("actions.ngrok.http_request.req"),
            res: cx.result("actions.ngrok.http_request.res"),
            attempts: cx.result("actions.ngrok.http_request.attempts"),
            error_code: cx.result("actions.ngrok.http_request.error.code"),
            error_message: cx.result("actions.ngrok.http_request.error.message"),
        },
    }))
}

impl Action for HttpRequest {
    fn kind(&self) -> &'static str {
        "http-request"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Wait(Box::pin(self.call(ctx)))
    }
}

/// One attempt, as the result variables show it.
struct Attempt {
    outcome: Result<Fetched, FetchError>,
    elapsed: Duration,
}

impl HttpRequest {
    /// The request to send, rendered against the exchange.
    fn build(&self, ctx: &RequestCtx) -> Result<(Request<Bytes>, String, String), ActionError> {
        let mut url = self.url.render(ctx)?.into_owned();
        for (i, (key, value)) in self.query.iter().enumerate() {
            url.push(if i == 0 && !url.contains('?') {
                '?'
            } else {
                '&'
            });
            url.push_str(&percent::encode_component(key));
            url.push('=');
            url.push_str(&percent::encode_component(&value.render(ctx)?));
        }
        let body = match &self.body {
            Some(t) => t.render(ctx)?.into_owned(),
            None => String::new(),
        };
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(url.as_str());
        for (name, t) in &self.headers {
            req = req.header(name, crate::headers::value(&t.render(ctx)?)?);
        }
        req = req
            .header(USER_AGENT, HeaderValue::from_static("portcullis"))
            .header("x-forwarded-for", ctx.conn().client_ip())
            .header("ngrok-req-type", HeaderValue::from_static("http-request"));
        let req = req.body(Bytes::from(body.clone())).map_err(|e| {
            ActionError::internal(FAILED, format!("`{url}` is not a valid request: {e}"))
        })?;
        Ok((req, url, body))
    }

    async fn call(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let Some(client) = &self.client else {
            return self.fail(
                ctx,
                FAILED,
                "`http-request` needs the proxy's HTTP client".to_owned(),
            );
        };
        let (req, url, body) = self.build(ctx)?;
        let started = Instant::now();
        let mut attempts: Vec<Attempt> = Vec::new();
        loop {
            let left = self.timeout.saturating_sub(started.elapsed());
            let begun = Instant::now();
            let outcome = if left.is_zero() {
                Err(FetchError::Timeout)
            } else {
                self.attempt(&**client, &req, begun + left).await
            };
            attempts.push(Attempt {
                outcome,
                elapsed: begun.elapsed(),
            });
            if attempts.len() > MAX_RETRIES || !self.should_retry(ctx, &req, &url, &attempts)? {
                break;
            }
        }
        let req_value = request_value(&req, &url, &body);
        if let Some(var) = self.results.req {
            ctx.set_result(var, req_value);
        }
        if let Some(var) = self.results.attempts {
            let list = attempts.iter().map(attempt_value).collect();
            ctx.set_result(var, Value::list(list));
        }
        let Some(last) = attempts.last() else {
            return Ok(Step::Next);
        };
        match &last.outcome {
            Ok(fetched) => {
                if let Some(var) = self.results.res {
                    ctx.set_result(var, response_value(fetched, last.elapsed));
                }
                Ok(Step::Next)
            }
            Err(e) => {
                let code = match e {
                    FetchError::Timeout => TIMEOUT,
                    FetchError::TooLarge => TOO_LARGE,
                    _ => FAILED,
                };
                self.fail(ctx, code, format!("http-request to `{url}` failed: {e}"))
            }
        }
    }

    /// One attempt: `req`, then the redirects `max_redirects` allows.
    async fn attempt(
        &self,
        client: &dyn HttpClient,
        req: &Request<Bytes>,
        deadline: Instant,
    ) -> Result<Fetched, FetchError> {
        let mut req = req.clone();
        let mut followed = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(FetchError::Timeout);
            }
            let fetched = client
                .fetch(req.clone(), Scope::Internal, MAX_BODY, left)
                .await?;
            let location = match fetched.headers.get(LOCATION) {
                Some(l) if fetched.status.is_redirection() && self.max_redirects > 0 => l,
                _ => return Ok(fetched),
            };
            if followed == self.max_redirects {
                return Err(FetchError::Protocol(format!(
                    "more than {} redirects",
                    self.max_redirects
                )));
            }
            followed += 1;
            req = redirected(&req, fetched.status, location)?;
        }
    }

    fn fail(
        &self,
        ctx: &mut RequestCtx,
        code: &'static str,
        message: String,
    ) -> Result<Step, ActionError> {
        if let Some(var) = self.results.error_code {
            ctx.set_result(var, Value::str(code));
        }
        if let Some(var) = self.results.error_message {
            ctx.set_result(var, Value::string(message.as_str()));
        }
        if self.halt {
            return Err(ActionError {
                status: StatusCode::BAD_GATEWAY,
                code,
                message,
            });
        }
        Ok(Step::Next)
    }

    fn should_retry(
        &self,
        ctx: &RequestCtx,
        req: &Request<Bytes>,
        url: &str,
        attempts: &[Attempt],
    ) -> Result<bool, ActionError> {
        let (Some(program), Some((attempts_var, last_var))) = (&self.retry, self.retry_vars) else {
            return Ok(false);
        };
        let Some(last) = attempts.last() else {
            return Ok(false);
        };
        let mut entries = vec![("req", request_value(req, url, ""))];
        match &last.outcome {
            Ok(f) => entries.push(("res", response_value(f, last.elapsed))),
            Err(e) => entries.push((
                "error",
                record(vec![
                    ("code", Value::str(FAILED)),
                    ("message", Value::string(e.to_string())),
                ]),
            )),
        }
        let scope = RetryScope {
            ctx,
            attempts_var,
            last_var,
            attempts: i64::try_from(attempts.len()).unwrap_or(i64::MAX),
            last: record(entries),
        };
        program.eval_bool(&scope).map_err(|e| {
            ActionError::internal(
                "ERR_NGROK_2253",
                format!("`retry_condition` failed: {}", e.message()),
            )
        })
    }
}

/// The exchange's variables plus `attempts` and `last_attempt`.
struct RetryScope<'c> {
    ctx: &'c RequestCtx,
    attempts_var: VarId,
    last_var: VarId,
    attempts: i64,
    last: Value<'static>,
}

impl Activation for RetryScope<'_> {
    fn resolve(&self, var: VarId) -> Option<Value<'_>> {
        if var == self.attempts_var {
            Some(Value::Int(self.attempts))
        } else if var == self.last_var {
            Some(self.last.clone())
        } else {
            self.ctx.resolve(var)
        }
    }
}

fn header_map(headers: &http::HeaderMap) -> Value<'static> {
    let mut entries: Vec<(&str, Value<'static>)> = Vec::new();
    for name in headers.keys() {
        let values = headers
            .get_all(name)
            .iter()
            .map(|v| Value::string(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        entries.push((name.as_str(), Value::list(values)));
    }
    record(entries)
}

fn request_value(req: &Request<Bytes>, url: &str, body: &str) -> Value<'static> {
    record(vec![
        ("method", Value::string(req.method().as_str())),
        ("header", header_map(req.headers())),
        ("url", Value::string(url)),
        ("body", Value::string(body)),
    ])
}

fn millis(d: Duration) -> Value<'static> {
    Value::Int(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn response_value(f: &Fetched, elapsed: Duration) -> Value<'static> {
    record(vec![
        (
            "resolved_ip",
            Value::string(f.remote.map(|a| a.ip().to_string()).unwrap_or_default()),
        ),
        ("header", header_map(&f.headers)),
        ("status_code", Value::Int(i64::from(f.status.as_u16()))),
        ("time_ms", millis(elapsed)),
        (
            "body",
            Value::string(String::from_utf8_lossy(&f.body).into_owned()),
        ),
    ])
}

/// The request a redirect asks for: `location` (absolute, or a path on the
/// same upstream) resolved against `req`'s URL.
fn redirected(
    req: &Request<Bytes>,
    status: StatusCode,
    location: &HeaderValue,
) -> Result<Request<Bytes>, FetchError> {
    let bad = || {
        FetchError::Protocol(format!(
            "a redirect to `{}` cannot be followed",
            String::from_utf8_lossy(location.as_bytes())
        ))
    };
    let location = location.to_str().map_err(|_| bad())?;
    let uri: http::Uri = if location.starts_with('/') && !location.starts_with("//") {
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(location.parse().map_err(|_| bad())?);
        http::Uri::from_parts(parts).map_err(|_| bad())?
    } else {
        let uri: http::Uri = location.parse().map_err(|_| bad())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(bad());
        }
        uri
    };
    let to_get = status == StatusCode::SEE_OTHER
        || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
            && req.method() == Method::POST);
    // Credentials go to the host they were written for only (as Go's
    // client and browsers do): a redirect to another upstream gets none.
    let same_host = uri.host() == req.uri().host();
    let mut next = Request::builder().uri(uri);
    if to_get {
        next = next.method(Method::GET);
    } else {
        next = next.method(req.method().clone());
    }
    for (name, value) in req.headers() {
        if to_get && (name == CONTENT_TYPE || name == CONTENT_LENGTH) {
            continue;
        }
        if !same_host && (name == AUTHORIZATION || name == COOKIE || name == HOST) {
            continue;
        }
        next = next.header(name, value);
    }
    let body = if to_get {
        Bytes::new()
    } else {
        req.body().clone()
    };
    next.body(body).map_err(|_| bad())
}

fn attempt_value(a: &Attempt) -> Value<'static> {
    match &a.outcome {
        Ok(f) => record(vec![
            (
                "resolved_ip",
                Value::string(f.remote.map(|a| a.ip().to_string()).unwrap_or_default()),
            ),
            ("response_header", header_map(&f.headers)),
            (
                "response_status_code",
                Value::Int(i64::from(f.status.as_u16())),
            ),
            ("response_time_ms", millis(a.elapsed)),
        ]),
        Err(_) => record(vec![("response_time_ms", millis(a.elapsed))]),
    }
}
