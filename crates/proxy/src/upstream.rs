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
//! The kept connection has no task of its own: the request writes itself
//! and reads the response head, and the response body reads the rest and
//! then puts the connection back ([`crate::h1`]). hyper's client, which
//! runs a task per connection and talks to it through channels, cost
//! 11.6k instructions of the 37.2k a proxied request took (measured).
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
use std::task::Poll;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use portcullis_actions::body;
use portcullis_actions::body::Body;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::config::Upstream;
use crate::h1::{self, Conn, Home};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The ways to an upstream that every request shares.
pub(crate) struct Upstreams {
    /// The pool, for HTTP/2 clients and `forward-internal`.
    pub(crate) pool: Client<HttpsConnector<HttpConnector>, Body>,
    /// What opens a kept connection: the pool's connector, with its
    /// connect timeout, `TCP_NODELAY` and TLS for `https://` upstreams.
    pub(crate) connector: HttpsConnector<HttpConnector>,
}

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The forwarding headers of a proxied request: `X-Forwarded-For` (the
/// client's address after those the request came with), `-Proto` and
/// `-Host`, which replace any the client sent. A kept connection writes
/// them as it writes the request head, which spares the header map three
/// insertions and, most often, a reallocation; the other ways set them in
/// the map ([`Forwarded::apply`]).
pub(crate) struct Forwarded {
    pub(crate) client_ip: HeaderValue,
    pub(crate) proto: HeaderValue,
    /// The request's `Host`; `None` leaves `X-Forwarded-Host` as it came.
    pub(crate) host: Option<HeaderValue>,
}

impl Forwarded {
    /// Sets the headers in `headers`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        let value = self.forwarded_for(headers.get(&X_FORWARDED_FOR));
        headers.insert(X_FORWARDED_FOR, value);
        headers.insert(X_FORWARDED_PROTO, self.proto.clone());
        if let Some(host) = &self.host {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
    }

    /// Whether the request's own `name` header gives way to this.
    pub(crate) fn replaces(&self, name: &HeaderName) -> bool {
        name == X_FORWARDED_FOR
            || name == X_FORWARDED_PROTO
            || (name == X_FORWARDED_HOST && self.host.is_some())
    }

    /// Writes the header lines; `prior` is the request's first
    /// `X-Forwarded-For`.
    pub(crate) fn write(&self, out: &mut Vec<u8>, prior: Option<&HeaderValue>) {
        let lines = [
            (&X_FORWARDED_FOR, Some(self.forwarded_for(prior))),
            (&X_FORWARDED_PROTO, Some(self.proto.clone())),
            (&X_FORWARDED_HOST, self.host.clone()),
        ];
        for (name, value) in lines {
            if let Some(value) = value {
                h1::header_line(out, name, &value);
            }
        }
    }

    /// `X-Forwarded-For`: `prior, client` or `client`.
    fn forwarded_for(&self, prior: Option<&HeaderValue>) -> HeaderValue {
        let prior = prior.and_then(|v| v.to_str().ok());
        match (prior, self.client_ip.to_str()) {
            (Some(prior), Ok(ip)) => {
                HeaderValue::from_str(&format!("{prior}, {ip}")).unwrap_or(self.client_ip.clone())
            }
            _ => self.client_ip.clone(),
        }
    }
}

/// A kept connection, and when its last request began.
type Held = (Conn, Instant);

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
        parked.retain_mut(|(conn, used)| {
            !conn.is_closed_now() && now.saturating_duration_since(*used) < PARKED_FOR
        });
        if parked.len() < PARKED_MAX {
            parked.push(held);
        }
    }

    fn pop(&self) -> Option<Held> {
        let mut parked = self.0.lock().ok()?;
        while let Some((mut conn, used)) = parked.pop() {
            if !conn.is_closed_now() && used.elapsed() < PARKED_FOR {
                return Some((conn, used));
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
    pub(crate) fn take(&self, now: Instant) -> Option<(Conn, bool)> {
        let held = self.slot.lock().ok()?.take();
        let (conn, used) = held.or_else(|| self.parked.pop())?;
        Some((conn, now.saturating_duration_since(used) >= RESTED))
    }

    /// Gives back the connection once a response was read to its end;
    /// `used` is when its request began.
    pub(crate) fn put(&self, conn: Conn, used: Instant) {
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some((conn, used));
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let held = self.slot.get_mut().ok().and_then(Option::take);
        if let Some(mut held) = held
            && !held.0.is_closed_now()
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
    /// The client's request body broke HTTP, or its connection failed,
    /// while it was sent.
    ClientBody(BoxError),
    /// The upstream broke HTTP or closed the connection.
    Protocol(BoxError),
}

impl Failure {
    fn of(e: BoxError, connect: bool) -> Failure {
        if connect {
            Failure::Connect(e)
        } else if is_body_limit(&*e) {
            Failure::BodyLimit
        } else if is_client_body(&*e) {
            Failure::ClientBody(e)
        } else {
            Failure::Protocol(e)
        }
    }
}

impl From<h1::Error> for Failure {
    fn from(e: h1::Error) -> Failure {
        Failure::of(Box::new(e), false)
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
    /// `Host` and forwarding headers are set, to `upstream` through the
    /// pool.
    pub(crate) async fn send_pooled(
        &self,
        upstream: &Upstream,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, Failure> {
        let target = req.uri().path_and_query().cloned();
        *req.uri_mut() = absolute(upstream, target)?;
        Ok(self.pool.request(req).await?.map(body::boxed))
    }

    /// Sends `req` on a new connection of its own, which becomes a tunnel
    /// if the upstream answers `101` to the protocol upgrade it asks for.
    pub(crate) async fn send_alone(
        &self,
        upstream: &Upstream,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, Failure> {
        let io = self.open(upstream).await?;
        let (mut sender, conn) = http1::handshake::<_, Body>(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        Ok(sender.send_request(req).await?)
    }

    /// Sends `req`, whose URI is in origin form (`/path?query`) and whose
    /// `Host` header is set, to `upstream` on `kept`, with the `forwarded`
    /// headers.
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps each argument twice in its state (rust-lang/rust#62958)"
    )]
    pub(crate) fn send_kept(
        &self,
        kept: &Arc<Kept>,
        upstream: &Upstream,
        mut req: Request<Body>,
        forwarded: &Forwarded,
        now: Instant,
    ) -> impl Future<Output = Result<Response<Body>, Failure>> {
        async move {
            let home = || Home {
                kept: kept.clone(),
                used: now,
            };
            if let Some((mut conn, rested)) = kept.take(now) {
                // The upstream may have closed the connection while it rested,
                // or sent what no request asked for.
                let closed = std::future::poll_fn(|cx| Poll::Ready(conn.is_closed(cx))).await;
                if !closed {
                    // After a rest, the upstream's keep-alive timeout may close
                    // the connection as the request goes out: keep a copy.
                    let again = (rested && replayable(&req)).then(|| replay(&req));
                    match conn.send(req, forwarded, home()).await {
                        Ok(res) => return Ok(res),
                        Err(failed) => match (failed.unsent, again) {
                            // Never written: safe to send on a new connection.
                            (Some(unsent), _) => req = unsent,
                            // Written, and the connection closed before any
                            // answer: the upstream's keep-alive timeout raced
                            // the request. One that is safe to repeat is sent
                            // again on a new connection, as nginx does.
                            (None, Some(again))
                                if matches!(failed.error, h1::Error::Unanswered(_)) =>
                            {
                                req = again
                            }
                            (None, _) => return Err(failed.error.into()),
                        },
                    }
                }
            }
            let conn = Conn::new(Box::pin(self.open(upstream)).await?);
            conn.send(req, forwarded, home())
                .await
                .map_err(|failed| failed.error.into())
        }
    }

    /// Opens a connection to `upstream`: TCP with the connector's connect
    /// timeout and `TCP_NODELAY`, and TLS for an `https://` upstream.
    async fn open(
        &self,
        upstream: &Upstream,
    ) -> Result<MaybeHttpsStream<TokioIo<TcpStream>>, Failure> {
        let uri = absolute(upstream, None)?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(Failure::Connect)?;
        connector.call(uri).await.map_err(Failure::Connect)
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

/// `http(s)://authority/target`.
fn absolute(upstream: &Upstream, target: Option<PathAndQuery>) -> Result<Uri, Failure> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(upstream.scheme());
    parts.authority = Some(upstream.authority.clone());
    parts.path_and_query = Some(target.unwrap_or_else(|| PathAndQuery::from_static("/")));
    Uri::from_parts(parts).map_err(|e| Failure::Protocol(Box::new(e)))
}

/// Whether the client's body is what failed the exchange.
fn is_client_body(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<crate::server::ClientBody>() {
            return true;
        }
        cause = c.source();
    }
    false
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
