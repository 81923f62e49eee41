//! [`PolicyLayer`]: the pipeline as a `tower::Layer`, for axum, hyper or
//! any tower stack. The wrapped service is the upstream: it sees the
//! request only when the policy lets it through, as the policy changed it.
//!
//! As in the proxy, the request is made canonical first
//! (`portcullis_canon::request`, with the endpoint's options): the policy
//! and the wrapped service see one path and one host, and a request that
//! has none (two `Host` fields, `%2F`, `%00`) is answered 400 without
//! reaching either.
//!
//! The client's address is read from an `Arc<Conn>` in the request's
//! extensions (the proxy puts one there), else from a `SocketAddr`
//! extension; without either, `conn.client_ip` is `0.0.0.0`.
//! `close-connection` cannot drop a connection from inside a service: the
//! layer answers 403 with `connection: close`, which makes HTTP/1.1
//! servers close the connection after the response.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue};
use http::{Request, Response, StatusCode};
use portcullis_actions::body::{self, Body, BoxError};
use portcullis_actions::{Conn, Endpoint, RequestCtx, respond};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Outcome, Pipeline};

/// Applies a [`Pipeline`] in front of a service.
#[derive(Clone, Debug)]
pub struct PolicyLayer {
    pipeline: Arc<Pipeline>,
    endpoint: Arc<Endpoint>,
}

impl PolicyLayer {
    /// The layer for `pipeline`, at the endpoint `url` (`endpoint.*`).
    pub fn new(pipeline: Arc<Pipeline>, url: &str) -> PolicyLayer {
        PolicyLayer {
            pipeline,
            endpoint: Arc::new(Endpoint::new(url)),
        }
    }

    /// The layer, canonicalizing request paths with `canon` instead of
    /// the defaults (slashes merged, encoded slashes refused).
    pub fn with_canon(mut self, canon: portcullis_canon::Options) -> PolicyLayer {
        let mut endpoint = (*self.endpoint).clone();
        endpoint.canon = canon;
        self.endpoint = Arc::new(endpoint);
        self
    }
}

impl<S> Layer<S> for PolicyLayer {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> PolicyService<S> {
        PolicyService {
            inner,
            pipeline: self.pipeline.clone(),
            endpoint: self.endpoint.clone(),
        }
    }
}

/// The service [`PolicyLayer`] makes.
#[derive(Clone, Debug)]
pub struct PolicyService<S> {
    inner: S,
    pipeline: Arc<Pipeline>,
    endpoint: Arc<Endpoint>,
}

impl<S> PolicyService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PolicyService<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one to call (tower's
        // `Service` contract); a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let pipeline = self.pipeline.clone();
        let endpoint = self.endpoint.clone();
        Box::pin(async move {
            let mut req = req;
            let https = endpoint.protocol == "https";
            let canonical = portcullis_canon::request(&mut req, https, &endpoint.canon);
            let conn = conn_of(&req);
            let mut ctx = RequestCtx::new(req.map(body::boxed), conn, endpoint);
            match canonical {
                Ok(arrival) if arrival.redirect => {
                    let location = ctx.uri().to_string();
                    return Ok(respond::redirect(StatusCode::PERMANENT_REDIRECT, &location));
                }
                Ok(arrival) => ctx.set_arrival(arrival),
                Err(refusal) => {
                    let message = refusal.to_string();
                    return Ok(respond::error(refusal.status(), refusal.code(), &message));
                }
            }
            match pipeline.on_request(&mut ctx).await {
                Outcome::Continue | Outcome::Forward => {
                    let res =
                        call_inner(&mut inner, ctx.take_request(pipeline.has_response_rules()))
                            .await?;
                    ctx.set_response(res.map(body::boxed));
                }
                Outcome::Respond => {}
                Outcome::Close => return Ok(close()),
            }
            if pipeline.on_response(&mut ctx).await == Outcome::Close {
                return Ok(close());
            }
            Ok(ctx.take_response().unwrap_or_else(|| {
                respond::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ERR_NGROK_2300",
                    "the policy left no response",
                )
            }))
        })
    }
}

type InnerFuture<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

/// Calls the inner service, its future boxed as `Send` here, where its type
/// is known: proving it inside the `async` block trips a compiler
/// limitation with higher-ranked lifetimes (rust-lang/rust#102211).
fn call_inner<S>(inner: &mut S, req: Request<Body>) -> InnerFuture<S::Response, S::Error>
where
    S: Service<Request<Body>>,
    S::Future: Send + 'static,
{
    Box::pin(inner.call(req))
}

fn conn_of<B>(req: &Request<B>) -> Arc<Conn> {
    if let Some(conn) = req.extensions().get::<Arc<Conn>>() {
        return conn.clone();
    }
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let client = req
        .extensions()
        .get::<SocketAddr>()
        .copied()
        .unwrap_or(unspecified);
    Arc::new(Conn::new(client, unspecified, None))
}

fn close() -> Response<Body> {
    let mut res = respond::status(StatusCode::FORBIDDEN);
    res.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    res
}
