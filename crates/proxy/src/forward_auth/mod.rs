//! Forward-auth: the policy as the auth service of another gateway.
//!
//! nginx (`auth_request`), Caddy (`forward_auth`), Traefik
//! (`forwardAuth`) and Envoy (`ext_authz`, HTTP or gRPC) carry the traffic
//! themselves and ask an auth service, per request, whether it may pass
//! and as whom. An endpoint with `forward_auth:` is that service: it
//! answers only its configured gateways (`trusted`; anyone else gets 403
//! `ERR_PORTCULLIS_UNTRUSTED_GATEWAY`, whatever they send), reads the
//! request the gateway describes (`describe.rs`), makes it canonical as a
//! proxied request is made, runs the same `on_http_request` rules, and
//! says what they decided in the gateway's terms (`answer.rs`, `grpc.rs`).
//! What the gateway cannot apply is refused when the policy loads
//! (`portcullis_policy::gateway`), so no rule is skipped in silence.
//!
//! Paths: `GET /verify` (nginx, Caddy, Traefik), `/verify/<original path>`
//! (Envoy HTTP, `path_prefix: /verify`), `/answer` (nginx's answer
//! location), Envoy's gRPC `Authorization/Check`, and the assertion's key
//! set at `/.well-known/portcullis/jwks.json`.

mod answer;
mod describe;
mod grpc;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use portcullis_actions::body::{self, Body};
use portcullis_actions::{Conn, RequestCtx, respond};
use portcullis_policy::gateway::Gateway;
use portcullis_runtime::Outcome;

use crate::assertion;
use crate::server::{Shared, Site};

use self::answer::Mutations;
use self::describe::{BAD_DESCRIPTION, Described};

/// The code of a request from an address that is not a configured
/// gateway.
pub(crate) const UNTRUSTED: &str = "ERR_PORTCULLIS_UNTRUSTED_GATEWAY";
/// The code of a path the forward-auth listener does not serve.
const NOT_FOUND: &str = "ERR_PORTCULLIS_FORWARD_AUTH_PATH";

/// A forward-auth endpoint's settings (`forward_auth:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardAuth {
    /// Who asks.
    pub gateway: Gateway,
    /// The addresses the gateway connects from; loopback unless configured.
    pub trusted: Vec<ipnet::IpNet>,
}

impl ForwardAuth {
    /// `gateway`, trusted from loopback only.
    pub fn new(gateway: Gateway) -> ForwardAuth {
        ForwardAuth {
            gateway,
            trusted: vec![
                "127.0.0.0/8"
                    .parse()
                    .unwrap_or_else(|_| ipnet::IpNet::default()),
                "::1/128"
                    .parse()
                    .unwrap_or_else(|_| ipnet::IpNet::default()),
            ],
        }
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.trusted.iter().any(|net| net.contains(&peer))
    }
}

/// What the policy decided for a described request.
enum Verdict {
    /// The request passes, with these changes.
    Allow {
        mutations: Mutations,
        identity: Vec<(HeaderName, HeaderValue)>,
        cookies: Vec<HeaderValue>,
    },
    /// The client gets this answer instead.
    Answer(Response<Body>),
}

/// Serves one request on a forward-auth listener.
pub(crate) async fn handle(
    req: Request<Incoming>,
    conn: Arc<Conn>,
    site: Arc<Site>,
    shared: Arc<Shared>,
    fa: &ForwardAuth,
) -> Response<Body> {
    let started = Instant::now();
    if req.uri().path() == assertion::JWKS_PATH && req.method() == Method::GET {
        let mut res = Response::new(body::full(shared.signer.jwks()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return res;
    }
    let trusted = fa.trusts(conn.client.ip());
    if !trusted {
        // One access-log line per refusal (as for any request), not a
        // warning a stranger could flood the log with.
        tracing::info!(target: "portcullis::access", peer = %conn.client.ip(), error_code = UNTRUSTED, "forward-auth request from an address that is not a trusted gateway");
    }
    if grpc::is_grpc(&req) && fa.gateway == Gateway::Envoy {
        // Refused inside gRPC too: Envoy's `failure_mode_allow` would turn
        // an error into an allow.
        return grpc::serve(req, conn, site, shared, trusted).await;
    }
    if !trusted {
        return untrusted();
    }
    let path = req.uri().path();
    let envoy = fa.gateway == Gateway::Envoy;
    if fa.gateway == Gateway::Nginx && path == "/answer" {
        return answer_path(&req, &shared);
    }
    let verify = if envoy {
        path.starts_with("/verify/")
    } else {
        path == describe::VERIFY
    };
    if !verify {
        return respond::error(
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            "a forward-auth endpoint serves /verify (and nginx's /answer)",
        );
    }
    let (parts, _) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let described = match describe::describe(
        fa.gateway,
        &parts.method,
        target,
        parts.headers,
        conn.client.ip(),
    ) {
        Ok(d) => d,
        Err(bad) => {
            tracing::info!(target: "portcullis::access", peer = %conn.client.ip(), "forward-auth: {}", bad.0);
            let res = respond::error(StatusCode::BAD_REQUEST, BAD_DESCRIPTION, &bad.0);
            return answer::deny(fa.gateway, res, &shared.keys).await;
        }
    };
    match decide(described, &conn, &site, &shared, started).await {
        Verdict::Allow {
            mutations,
            identity,
            cookies,
        } => match answer::allow(fa.gateway, &mutations, identity) {
            Ok(mut res) => {
                for c in cookies {
                    res.headers_mut().append(header::SET_COOKIE, c);
                }
                res
            }
            Err(res) => res,
        },
        Verdict::Answer(res) => answer::deny(fa.gateway, res, &shared.keys).await,
    }
}

/// The refusal of a peer that is not a configured gateway.
fn untrusted() -> Response<Body> {
    respond::error(
        StatusCode::FORBIDDEN,
        UNTRUSTED,
        "this address is not a trusted gateway of this forward-auth endpoint",
    )
}

/// nginx's answer location: the answer the verify call sealed.
fn answer_path(req: &Request<Incoming>, shared: &Shared) -> Response<Body> {
    let opened = req
        .headers()
        .get(answer::ANSWER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| answer::open(v, &shared.keys));
    opened.unwrap_or_else(|| {
        respond::error(
            StatusCode::FORBIDDEN,
            answer::NO_ANSWER,
            "no valid answer: the request was refused",
        )
    })
}

/// Runs the policy on a described request.
async fn decide(
    described: Described,
    gateway: &Conn,
    site: &Site,
    shared: &Shared,
    started: Instant,
) -> Verdict {
    let Described {
        request,
        https,
        client,
    } = described;
    let mut req = request;
    let method = req.method().clone();
    let logged_target = req.uri().path_and_query().cloned();
    let canonical = portcullis_canon::request(&mut req, https, &site.canon);
    let conn = Arc::new(Conn::new(
        std::net::SocketAddr::new(client, 0),
        gateway.server,
        None,
    ));
    let arrival = match canonical {
        Ok(a) => a,
        Err(refusal) => {
            return Verdict::Answer(respond::error(
                refusal.status(),
                refusal.code(),
                &refusal.to_string(),
            ));
        }
    };
    let scheme = if https { "https" } else { "http" };
    if arrival.redirect {
        let location = format!(
            "{scheme}://{}{}",
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
            req.uri()
        );
        return Verdict::Answer(respond::redirect(StatusCode::PERMANENT_REDIRECT, &location));
    }
    let before: HeaderMap = req.headers().clone();
    let described_uri = req.uri().clone();
    let req = req.map(|()| body::empty());
    // The described scheme, which the listener's cannot tell: the policy
    // reads it (`req.url.scheme`), and sign-in builds its callback URL and
    // cookies from it.
    let endpoint = match &site.forward_auth_endpoints {
        Some([http, https_endpoint]) => {
            if https {
                https_endpoint.clone()
            } else {
                http.clone()
            }
        }
        None => site.endpoint.clone(),
    };
    let mut ctx = RequestCtx::new_at(req, conn, endpoint, started);
    ctx.set_arrival(arrival);
    let pipeline = site.pipeline.load_full();
    let outcome = pipeline.on_request(&mut ctx).await;
    let verdict = match outcome {
        Outcome::Continue if *ctx.uri() == described_uri => {
            let host = ctx.authority().to_owned();
            let identity = answer::identity_headers(ctx.identity(), &shared.signer, &host);
            let mutations = Mutations::between(&before, ctx.req_headers());
            ctx.set_response(Response::new(body::empty()));
            let cookies = ctx
                .take_response()
                .map(|r| {
                    r.headers()
                        .get_all(header::SET_COOKIE)
                        .iter()
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            Verdict::Allow {
                mutations,
                identity,
                cookies,
            }
        }
        Outcome::Respond => Verdict::Answer(ctx.take_response().unwrap_or_else(|| {
            respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                "the policy left no response",
            )
        })),
        // A rewrite, a close or a forward: lint refuses these for a
        // gateway; a request never passes because one slipped through.
        Outcome::Continue | Outcome::Close | Outcome::Forward => Verdict::Answer(respond::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            answer::UNSUPPORTED,
            "the policy did what this gateway cannot apply",
        )),
    };
    let status = match &verdict {
        Verdict::Allow { .. } => StatusCode::OK,
        Verdict::Answer(res) => res.status(),
    };
    shared
        .metrics
        .record_request(status.as_u16(), started.elapsed());
    let target = logged_target.as_ref().map_or("/", |p| p.as_str());
    let code = match &verdict {
        Verdict::Allow { .. } => None,
        Verdict::Answer(res) => res.headers().get(&respond::ERROR_CODE),
    };
    crate::server::log_status(
        &ctx,
        &method,
        target,
        http::Version::HTTP_11,
        status.as_u16(),
        code.and_then(|v| v.to_str().ok()).unwrap_or(""),
        started,
    );
    verdict
}
