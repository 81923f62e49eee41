//! How a request reaches its upstream.
//!
//! A client connection on HTTP/1.1 sends one request at a time, so it
//! keeps one upstream connection of its own ([`Kept`]) for the endpoint's
//! upstream: opened at its first request, reused for every next one, and
//! closed with it. A kept connection costs no pool lookup, no lock held
//! across requests and no hand-over between connections, and it is the
//! largest single saving on the proxy's request path (see
//! `docs/performance.md`). HAProxy's default `http-reuse safe` starts the
//! same way: a client connection's first request opens its own upstream
//! connection.
//!
//! HTTP/2 clients, whose streams run side by side, and requests sent to
//! another upstream (`forward-internal`) go through the shared pool
//! (hyper-util's client), which keeps idle connections for 90 seconds.
//!
//! Both ways retry a request on a new connection when a reused one turns
//! out to be closed before the request was written (an upstream's
//! keep-alive timeout racing the next request), and never after: a request
//! that may have reached the upstream is not sent twice.

use std::sync::Mutex;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use portcullis_actions::body::Body;

use crate::config::Upstream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The ways to an upstream that every request shares.
pub(crate) struct Upstreams {
    /// The pool, for HTTP/2 clients and `forward-internal`.
    pub(crate) pool: Client<HttpsConnector<HttpConnector>, Body>,
    /// What opens a kept connection: the pool's connector, with its
    /// connect timeout, `TCP_NODELAY` and TLS for `https://` upstreams.
    pub(crate) connector: HttpsConnector<HttpConnector>,
}

/// The upstream connection one client connection keeps.
#[derive(Default)]
pub(crate) struct Kept(Mutex<Option<http1::SendRequest<Body>>>);

impl Kept {
    /// Takes the connection out for one request. HTTP/1.1 requests on a
    /// client connection come one after the other, so the lock is never
    /// contended; it is what makes the connection `Sync`.
    fn take(&self) -> Option<http1::SendRequest<Body>> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }

    fn put(&self, sender: http1::SendRequest<Body>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(sender);
        }
    }
}

/// Why a request got no response from its upstream.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No connection could be made.
    Connect(BoxError),
    /// The client's request body went over the limit while it was sent.
    BodyLimit,
    /// The upstream broke HTTP or closed the connection.
    Protocol(BoxError),
}

impl Failure {
    fn of(e: BoxError, connect: bool) -> Failure {
        if connect {
            Failure::Connect(e)
        } else if is_body_limit(&*e) {
            Failure::BodyLimit
        } else {
            Failure::Protocol(e)
        }
    }
}

impl From<hyper::Error> for Failure {
    fn from(e: hyper::Error) -> Failure {
        Failure::of(Box::new(e), false)
    }
}

impl From<hyper_util::client::legacy::Error> for Failure {
    fn from(e: hyper_util::client::legacy::Error) -> Failure {
        let connect = e.is_connect();
        Failure::of(Box::new(e), connect)
    }
}

impl Upstreams {
    /// Sends `req`, whose URI is in origin form (`/path?query`) and whose
    /// `Host` header is set, to `upstream`: on `kept` if given, on a new
    /// connection of its own if `alone` (a protocol upgrade, which may turn
    /// the connection into a tunnel), else through the pool.
    pub(crate) async fn send(
        &self,
        kept: Option<&Kept>,
        alone: bool,
        upstream: &Upstream,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, Failure> {
        match kept {
            Some(kept) => self.send_kept(kept, upstream, req).await,
            None if alone => {
                let mut sender = self.connect(upstream, true).await?;
                Ok(sender.send_request(req).await?)
            }
            None => {
                let mut req = req;
                let target = req.uri().path_and_query().cloned();
                *req.uri_mut() = absolute(upstream, target)?;
                Ok(self.pool.request(req).await?)
            }
        }
    }

    async fn send_kept(
        &self,
        kept: &Kept,
        upstream: &Upstream,
        mut req: Request<Body>,
    ) -> Result<Response<Incoming>, Failure> {
        if let Some(mut sender) = kept.take() {
            // Not ready means closed: the upstream ended the connection,
            // or the last response's body was left unread.
            if sender.ready().await.is_ok() {
                match sender.try_send_request(req).await {
                    Ok(res) => {
                        kept.put(sender);
                        return Ok(res);
                    }
                    Err(mut e) => match e.take_message() {
                        // Never written: safe to send on a new connection.
                        Some(unsent) => req = unsent,
                        None => return Err(e.into_error().into()),
                    },
                }
            }
        }
        let mut sender = self.connect(upstream, false).await?;
        let res = sender.send_request(req).await?;
        kept.put(sender);
        Ok(res)
    }

    /// Opens a connection to `upstream` and drives it on its own task,
    /// which ends when the connection closes or its sender is dropped, or
    /// with `upgrades`, when a `101` hands the connection to a tunnel.
    async fn connect(
        &self,
        upstream: &Upstream,
        upgrades: bool,
    ) -> Result<http1::SendRequest<Body>, Failure> {
        let uri = absolute(upstream, None)?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(Failure::Connect)?;
        let io = connector.call(uri).await.map_err(Failure::Connect)?;
        let (sender, conn) = http1::handshake::<_, Body>(io).await?;
        tokio::spawn(async move {
            let ended = if upgrades {
                conn.with_upgrades().await
            } else {
                conn.await
            };
            if let Err(e) = ended {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(sender)
    }
}

/// `http(s)://authority/target`.
fn absolute(upstream: &Upstream, target: Option<PathAndQuery>) -> Result<Uri, Failure> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(upstream.scheme());
    parts.authority = Some(upstream.authority.clone());
    parts.path_and_query = Some(target.unwrap_or_else(|| PathAndQuery::from_static("/")));
    Uri::from_parts(parts).map_err(|e| Failure::Protocol(Box::new(e)))
}

/// Whether the body's length limit is what failed the exchange.
fn is_body_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}
