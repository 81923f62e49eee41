//! The admin listener: `/metrics` (Prometheus text format), `/healthz`,
//! and, with sessions in a shared store, `/sessions` to list and end a
//! user's sign-in sessions on every replica. Kept off the public
//! listeners so that a policy cannot expose it and a flood of public
//! traffic cannot starve it of accepts.
//!
//! `/sessions` changes who is signed in, so it is guarded: with an admin
//! token (`admin_token:`, or `PORTCULLIS_ADMIN_TOKEN`), only a request
//! with `Authorization: Bearer <token>`; without one, only a client on
//! loopback.
//!
//! - `GET /sessions?user=<sub, oid or email>`: the user's live sessions;
//! - `DELETE /sessions?user=…`: ends them all;
//! - `DELETE /sessions/<id>`: ends one.

use std::sync::Arc;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use portcullis_actions::body::{self, Body};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::{self, DecisionCount};
use crate::server::{Shared, Site};

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    sites: Vec<Arc<Site>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let (shared, sites) = (shared.clone(), sites.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (shared, sites) = (shared.clone(), sites.clone());
                async move {
                    let res = if req.uri().path().starts_with("/sessions") {
                        sessions(&req, &shared, peer).await
                    } else {
                        answer(&req, &shared, &sites)
                    };
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, shared: &Shared, sites: &[Arc<Site>]) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain; charset=utf-8"),
        "/metrics" => {
            // Each endpoint's running pipeline, held while its counts are
            // borrowed; a reload during the scrape swaps in a new one without
            // touching these.
            let pipelines: Vec<_> = sites.iter().map(|site| site.pipeline.load()).collect();
            let counts: Vec<DecisionCount<'_>> = sites
                .iter()
                .zip(&pipelines)
                .flat_map(|(site, pipeline)| {
                    pipeline
                        .decision_counts()
                        .map(|(decision, count)| DecisionCount {
                            endpoint: &site.endpoint.url,
                            phase: decision.phase,
                            rule: &decision.rule,
                            action: decision.action,
                            count,
                        })
                })
                .collect();
            let mut out = shared.metrics.render(&counts);
            let series: Vec<metrics::ActionSeries<'_>> = sites
                .iter()
                .zip(&pipelines)
                .flat_map(|(site, pipeline)| {
                    pipeline
                        .series()
                        .map(|(decision, series)| metrics::ActionSeries {
                            endpoint: &site.endpoint.url,
                            phase: decision.phase,
                            rule: &decision.rule,
                            series,
                        })
                })
                .collect();
            metrics::render_action_series(&mut out, &series);
            if let Some(state) = &shared.options.state {
                crate::metrics::render_state(&mut out, &state.stats());
            }
            text(StatusCode::OK, out, metrics::CONTENT_TYPE)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found\n".into(),
            "text/plain; charset=utf-8",
        ),
    }
}

/// `/sessions`: list or end a user's sessions, or end one.
async fn sessions(
    req: &Request<Incoming>,
    shared: &Shared,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    const JSON: &str = "application/json";
    let json = |status, v: serde_json::Value| text(status, format!("{v}\n"), JSON);
    let error = |status, message: &str| json(status, serde_json::json!({ "error": message }));
    if !allowed(req, shared, peer) {
        return error(
            StatusCode::UNAUTHORIZED,
            "an admin token is required (Authorization: Bearer), or a loopback client when none is set",
        );
    }
    let Some(state) = shared
        .options
        .state
        .as_ref()
        .filter(|s| s.stores_sessions())
    else {
        return error(
            StatusCode::NOT_FOUND,
            "sessions are not stored: they live in their cookies (no `state:`, or `sessions: cookie`)",
        );
    };
    let store = portcullis_actions::session::Sessions::new(
        state.clone(),
        portcullis_actions::session::Keys::new(&shared.options.session_keys),
    );
    let user = req.uri().query().and_then(|q| {
        portcullis_policy::functions::query_params(q)
            .into_iter()
            .find(|(k, _)| k == "user")
            .and_then(|(_, v)| v.into_iter().next())
    });
    let id = req
        .uri()
        .path()
        .strip_prefix("/sessions/")
        .filter(|id| !id.is_empty());
    let unavailable =
        |e: portcullis_state::StateError| error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    match (req.method().as_str(), id, user) {
        ("GET", None, Some(user)) => match store.list(&user).await {
            Ok(list) => json(
                StatusCode::OK,
                serde_json::json!({ "sessions": list.iter().map(|s| serde_json::json!({
                    "id": s.id, "users": s.users, "signed_in": s.signed_in, "last_seen": s.last_seen,
                })).collect::<Vec<_>>() }),
            ),
            Err(e) => unavailable(e),
        },
        ("DELETE", None, Some(user)) => match store.revoke_user(&user).await {
            Ok(n) => {
                tracing::info!(user = %user, sessions = n, "sessions ended through the admin API");
                json(StatusCode::OK, serde_json::json!({ "revoked": n }))
            }
            Err(e) => unavailable(e),
        },
        ("DELETE", Some(id), _) => match store.revoke(id).await {
            Ok(found) => {
                tracing::info!(session = %id, found, "session ended through the admin API");
                json(
                    StatusCode::OK,
                    serde_json::json!({ "revoked": usize::from(found) }),
                )
            }
            Err(e) => unavailable(e),
        },
        _ => error(
            StatusCode::BAD_REQUEST,
            "use GET or DELETE /sessions?user=<sub, oid or email>, or DELETE /sessions/<id>",
        ),
    }
}

/// Whether `req` may use `/sessions`: the admin token when one is set,
/// else a loopback client.
fn allowed(req: &Request<Incoming>, shared: &Shared, peer: std::net::SocketAddr) -> bool {
    match &shared.admin_token {
        Some(token) => req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                use subtle::ConstantTimeEq as _;
                given.as_bytes().ct_eq(token.as_bytes()).into()
            }),
        None => peer.ip().is_loopback(),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(body::full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}
