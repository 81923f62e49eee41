//! How a request reaches its upstream.
//!
//! A client connection on HTTP/1.1 sends one request at a time, so it
//! keeps one upstream connection of its own ([`Kept`]) for the endpoint's
//! upstream: taken at its first request, reused for every next one, and
//! parked for another client connection when it closes ([`Parked`]). A
//! kept connection costs no pool lookup, no lock held across requests and
//! no hand-over between connections, and it is the largest single saving
//! on the proxy's request path (see `docs/performance.md`). HAProxy's
//! default `http-reuse safe` starts the same way: a client connection's
//! first request has an upstream connection to itself.
//!
//! The connection runs on a task of its own. Driving it from the request
//! and its response body instead, in the client connection's task, was
//! measured and dropped: 37.2k → 41.6k instructions a request.
//!
//! HTTP/2 clients, whose streams run side by side, and requests sent to
//! another upstream (`forward-internal`) go through the shared pool
//! (hyper-util's client), which keeps idle connections for 90 seconds.
//!
//! Both ways retry a request on a new connection when a reused one turns
//! out to be closed before the request was written (an upstream's
//! keep-alive timeout racing the next request). A kept connection that
//! rested also retries, once, a request that was written when the
//! connection closed with no answer, if it is safe to repeat (idempotent,
//! no body), as nginx does; any other request that may have reached the
//! upstream is not sent twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use portcullis_actions::body::Body;
use tower_service::Service;

use crate::config::Upstream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The ways to an upstream that every request shares.
pub(crate) struct Upstreams {
    /// The pool, for HTTP/2 clients and `forward-internal`.
    pub(crate) pool: Client<HttpsConnector<HttpConnector>, Body>,
    /// What opens a kept connection: the pool's connector, with its
    /// connect timeout, `TCP_NODELAY` and TLS for `https://` upstreams.
    pub(crate) connector: HttpsConnector<HttpConnector>,
}

/// A kept connection, and when its last request began.
type Held = (http1::SendRequest<Body>, Instant);

/// The upstream connection one client connection keeps.
pub(crate) struct Kept {
    slot: Mutex<Option<Held>>,
    /// Where the connection goes when the client connection closes.
    parked: Arc<Parked>,
}

/// An endpoint's upstream connections whose client connections closed,
/// for the next client connections to take up: a client that opens a
/// connection per request (`Connection: close`, HTTP/1.0, health checks)
/// still reuses upstream connections. Newest first; at most
/// [`PARKED_MAX`], none older than [`PARKED_FOR`].
#[derive(Default)]
pub(crate) struct Parked(Mutex<Vec<Held>>);

const PARKED_MAX: usize = 64;
/// As long as the pool keeps an idle connection.
const PARKED_FOR: Duration = Duration::from_secs(90);

impl Parked {
    fn push(&self, held: Held) {
        let Ok(mut parked) = self.0.lock() else {
            return;
        };
        let now = Instant::now();
        parked.retain(|(s, used)| {
            !s.is_closed() && now.saturating_duration_since(*used) < PARKED_FOR
        });
        if parked.len() < PARKED_MAX {
            parked.push(held);
        }
    }

    fn pop(&self) -> Option<Held> {
        let mut parked = self.0.lock().ok()?;
        while let Some((sender, used)) = parked.pop() {
            if !sender.is_closed() && used.elapsed() < PARKED_FOR {
                return Some((sender, used));
            }
        }
        None
    }
}

/// How long a kept connection may rest before its next request is sent
/// with a copy to repeat it: long enough that a busy connection never pays
/// for the copy, short enough to cover every common keep-alive timeout
/// (Node's 5 s, Apache's 5 s, nginx's 75 s).
const RESTED: Duration = Duration::from_millis(250);

impl Kept {
    /// A client connection's, empty until its first request; `parked` is
    /// its endpoint's.
    pub(crate) fn new(parked: Arc<Parked>) -> Kept {
        Kept {
            slot: Mutex::new(None),
            parked,
        }
    }

    /// Takes the connection out for one request starting at `now` (at the
    /// first, a parked one if there is one), with whether it rested.
    /// HTTP/1.1 requests on a client connection come one after the other,
    /// so the lock is never contended; it is what makes the slot `Sync`.
    fn take(&self, now: Instant) -> Option<(http1::SendRequest<Body>, bool)> {
        let held = self.slot.lock().ok()?.take();
        let (sender, used) = held.or_else(|| self.parked.pop())?;
        Some((sender, now.saturating_duration_since(used) >= RESTED))
    }

    fn put(&self, sender: http1::SendRequest<Body>, now: Instant) {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some((sender, now));
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let held = self.slot.get_mut().ok().and_then(Option::take);
        if let Some(held) = held
            && !held.0.is_closed()
        {
            self.parked.push(held);
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
        now: Instant,
    ) -> Result<Response<Incoming>, Failure> {
        match kept {
            Some(kept) => self.send_kept(kept, upstream, req, now).await,
            // The paths off the common one are boxed: a future holds room
            // for every path it may take, and this one is moved whole.
            None if alone => {
                Box::pin(async {
                    let mut sender = self.connect(upstream, true).await?;
                    Ok(sender.send_request(req).await?)
                })
                .await
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
        now: Instant,
    ) -> Result<Response<Incoming>, Failure> {
        if let Some((mut sender, rested)) = kept.take(now) {
            // Not ready means closed: the upstream ended the connection,
            // or the last response's body was left unread.
            if sender.ready().await.is_ok() {
                // After a rest, the upstream's keep-alive timeout may close
                // the connection as the request goes out: keep a copy.
                let again = (rested && replayable(&req)).then(|| replay(&req));
                match sender.try_send_request(req).await {
                    Ok(res) => {
                        kept.put(sender, now);
                        return Ok(res);
                    }
                    Err(mut e) => match (e.take_message(), again) {
                        // Never written: safe to send on a new connection.
                        (Some(unsent), _) => req = unsent,
                        // Written, and the connection closed before any
                        // answer: the upstream's keep-alive timeout raced
                        // the request. One that is safe to repeat is sent
                        // again on a new connection, as nginx does.
                        (None, Some(again)) if closed_unanswered(e.error()) => req = again,
                        (None, _) => return Err(e.into_error().into()),
                    },
                }
            }
        }
        let mut sender = Box::pin(self.connect(upstream, false)).await?;
        let res = sender.send_request(req).await?;
        kept.put(sender, now);
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

/// Whether `req` may be sent twice: an idempotent method (RFC 9110
/// §9.2.2) and no body.
fn replayable(req: &Request<Body>) -> bool {
    use http::Method;
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) && http_body::Body::is_end_stream(req.body())
}

/// A copy of a body-less request, to send again.
fn replay(req: &Request<Body>) -> Request<Body> {
    let mut again = Request::new(portcullis_actions::body::empty());
    *again.method_mut() = req.method().clone();
    *again.uri_mut() = req.uri().clone();
    *again.version_mut() = req.version();
    *again.headers_mut() = req.headers().clone();
    again
}

/// Whether the connection closed (or was reset) with no answer at all.
fn closed_unanswered(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            );
        }
        cause = c.source();
    }
    false
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
