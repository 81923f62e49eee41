//! One case, run: the request through the policy's compiled pipeline, the
//! phases in the proxy's order; an upstream (or internal endpoint) that
//! records what it received and answers as the case's world says;
//! `http-request` calls and key fetches answered from the world too.
//! Nothing leaves the process.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use portcullis_actions::certificate::Certificate;
use portcullis_actions::client::{FetchError, FetchFuture, Fetched, HttpClient, Scope};
use portcullis_actions::trace::{Trace, TraceEvent};
use portcullis_runtime::body::{self, Body};
use portcullis_runtime::{Conn, Endpoint, Outcome, Pipeline, RequestCtx, Tls, respond};

use super::cases::{Answer, Case};

/// What the upstream received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// `upstream`, or the internal endpoint `forward-internal` chose.
    pub(crate) endpoint: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

/// What came of a case.
pub(crate) struct Ran {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
    pub(crate) upstream: Option<Seen>,
    pub(crate) trace: Vec<TraceEvent>,
}

/// `http-request`'s client: the world's answers, by URL prefix; any other
/// URL cannot be reached, as an internal service that is not there.
#[derive(Debug)]
pub(crate) struct World(pub(crate) Vec<(String, Answer)>);

impl HttpClient for World {
    fn fetch(&self, req: Request<Bytes>, _: Scope, _: usize, _: Duration) -> FetchFuture {
        let url = req.uri().to_string();
        let answer = self
            .0
            .iter()
            .find(|(prefix, _)| url.starts_with(prefix.as_str()))
            .map(|(_, a)| a.clone());
        Box::pin(async move {
            let Some(a) = answer else {
                return Err(FetchError::Connect(format!(
                    "the test's world has no answer for {url}"
                )));
            };
            let mut headers = http::HeaderMap::new();
            for (k, v) in &a.headers {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    headers.append(k, v);
                }
            }
            Ok(Fetched {
                status: http::StatusCode::from_u16(a.status)
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                headers,
                body: Bytes::from(a.body),
                remote: None,
            })
        })
    }
}

fn pairs(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Runs `case` against `pipeline`, as the proxy runs an exchange:
/// `on_tcp_connect`, the request canonicalized, `on_http_request`, the
/// upstream (or the internal endpoint `forward-internal` chose),
/// `on_http_response`. With `repeat`, the request is sent that many times
/// and the last outcome is the case's.
pub(crate) async fn run(pipeline: &Arc<Pipeline>, case: &Case) -> Result<Ran, String> {
    let mut last = None;
    for _ in 0..case.request.repeat {
        last = Some(once(pipeline, case).await?);
    }
    last.ok_or_else(|| "no request was sent".to_owned())
}

async fn once(pipeline: &Arc<Pipeline>, case: &Case) -> Result<Ran, String> {
    let url: http::Uri = case
        .request
        .url
        .parse()
        .map_err(|e| format!("request url `{}`: {e}", case.request.url))?;
    let https = url.scheme_str() != Some("http");
    let endpoint = Arc::new(Endpoint::new(&format!(
        "{}://{}",
        if https { "https" } else { "http" },
        url.authority().map_or("app.example.test", |a| a.as_str())
    )));
    let trace = Arc::new(Trace::default());
    let client = SocketAddr::new(
        case.request
            .client_ip
            .parse::<IpAddr>()
            .map_err(|_| format!("client_ip `{}` is not an address", case.request.client_ip))?,
        50_000,
    );
    let server = SocketAddr::from(([127, 0, 0, 1], if https { 443 } else { 80 }));
    let closed = |trace: &Trace| Ran {
        status: 0,
        headers: Vec::new(),
        body: String::new(),
        upstream: None,
        trace: trace.events(),
    };
    let tls = match &case.request.tls {
        None => None,
        Some(t) => Some(Tls {
            version: t.version.clone(),
            cipher_suite: t.cipher_suite.clone(),
            sni: t.sni.clone(),
            alpn: t.alpn.clone(),
            client: match &t.client_certificate {
                None => None,
                Some(pem) => {
                    let der = portcullis_actions::terminate_tls::certificates(pem)
                        .into_iter()
                        .next()
                        .ok_or("`tls.client_certificate` holds no PEM certificate")?;
                    Some(Arc::new(Certificate::from_der(&der).ok_or(
                        "`tls.client_certificate` is not an X.509 certificate",
                    )?))
                }
            },
            ..Tls::default()
        }),
    };
    if let Some(time) = &case.request.time {
        portcullis_cel::time::Timestamp::parse(time)
            .map_err(|_| format!("request time `{time}` is not RFC 3339"))?;
    }
    // `on_tcp_connect` first, as a connection runs it.
    let conn = Arc::new(Conn::new(client, server, tls));
    if pipeline.has_tcp_rules() {
        let mut ctx = RequestCtx::connection(conn.clone(), endpoint.clone());
        ctx.set_trace(trace.clone());
        if let Some(time) = &case.request.time {
            ctx.set_now(time.clone());
        }
        if pipeline.on_connect(&mut ctx).await == Outcome::Close {
            return Ok(closed(&trace));
        }
    }
    let mut req = Request::builder()
        .method(case.request.method.as_str())
        .uri(url.path_and_query().map_or("/", |p| p.as_str()));
    if let Some(host) = url.authority() {
        req = req.header(http::header::HOST, host.as_str());
    }
    for (k, v) in &case.request.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if let Some(claims) = &case.identity {
        let sessions: Vec<String> = pipeline
            .test_sessions(claims)
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if sessions.is_empty() {
            return Err("`world.identity` is set, but the policy has no sign-in action".into());
        }
        req = req.header(http::header::COOKIE, sessions.join("; "));
    }
    let mut req = req
        .body(body::full(case.request.body.clone()))
        .map_err(|e| format!("the request is not valid HTTP: {e}"))?;
    let canonical = portcullis_canon::request(&mut req, https, &endpoint.canon);
    let mut ctx = RequestCtx::new(req, conn, endpoint);
    ctx.set_trace(trace.clone());
    if let Some(time) = &case.request.time {
        ctx.set_now(time.clone());
    }
    match canonical {
        Ok(arrival) if arrival.redirect => {
            let location = ctx.uri().to_string();
            return done(
                respond::redirect(http::StatusCode::PERMANENT_REDIRECT, &location),
                None,
                &trace,
            )
            .await;
        }
        Ok(arrival) => ctx.set_arrival(arrival),
        Err(refusal) => {
            let message = refusal.to_string();
            return done(
                respond::error(refusal.status(), refusal.code(), &message),
                None,
                &trace,
            )
            .await;
        }
    }
    let mut seen = None;
    match pipeline.on_request(&mut ctx).await {
        Outcome::Continue | Outcome::Forward => {
            let target = ctx.forward().map(str::to_owned);
            let answer = match &target {
                None => Some(case.upstream.clone()),
                Some(name) => case
                    .internal
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, a)| a.clone()),
            };
            match answer {
                Some(answer) => {
                    let req = ctx.take_request(pipeline.has_response_rules());
                    seen = Some(record(req, target.unwrap_or_else(|| "upstream".to_owned())).await);
                    ctx.set_response(response(&answer));
                }
                // As the proxy answers a name no internal endpoint has.
                None => ctx.set_response(respond::error(
                    http::StatusCode::BAD_GATEWAY,
                    "ERR_NGROK_3200",
                    "no such internal endpoint",
                )),
            }
        }
        Outcome::Respond => {}
        Outcome::Close => return Ok(closed(&trace)),
    }
    if pipeline.on_response(&mut ctx).await == Outcome::Close {
        return Ok(closed(&trace));
    }
    let res = ctx.take_response().unwrap_or_else(|| {
        respond::error(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_NGROK_2300",
            "the policy left no response",
        )
    });
    done(res, seen, &trace).await
}

/// What the upstream (or internal endpoint `endpoint`) received.
async fn record(req: Request<Body>, endpoint: String) -> Seen {
    let (parts, b) = req.into_parts();
    let bytes = b.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Seen {
        endpoint,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: pairs(&parts.headers),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The world's answer as a response.
fn response(answer: &Answer) -> Response<Body> {
    let mut res = Response::new(body::full(answer.body.clone()));
    *res.status_mut() = http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::OK);
    for (k, v) in &answer.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            res.headers_mut().append(k, v);
        }
    }
    res
}

async fn done(res: Response<Body>, upstream: Option<Seen>, trace: &Trace) -> Result<Ran, String> {
    let (parts, b) = res.into_parts();
    let bytes = b
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("the response body failed: {e}"))?;
    Ok(Ran {
        status: parts.status.as_u16(),
        headers: pairs(&parts.headers),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        upstream,
        trace: trace.events(),
    })
}
