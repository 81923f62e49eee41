//! [`RequestCtx`]: one exchange as the policy sees it, passed `&mut`
//! through the phases. It owns the request (and later the response), the
//! connection's facts, the action results and `vars` of the current phase,
//! and it is the [`Activation`] that CEL reads variables from.
//!
//! Variables are computed when an expression first reads them, not when
//! the request arrives: headers are read in place through [`MultiMap`],
//! and what must be built (the full URL, the query parameters, the cookies)
//! is built once and cached until an action changes what it derives from.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use portcullis_cel::time::Timestamp;
use portcullis_cel::{Activation, List, Map, MultiMap, Str, Value, VarId};
use portcullis_policy::functions::canonical;
use portcullis_policy::schema::Phase;

use crate::body::{self, Body};
use crate::env;

mod fields;
#[cfg(test)]
mod tests;

/// What is known of the connection a request arrived on.
#[derive(Clone, Debug)]
pub struct Conn {
    /// The client's address (layer 4, never `X-Forwarded-For`).
    pub client: SocketAddr,
    /// The address the client connected to.
    pub server: SocketAddr,
    /// When the connection was accepted.
    pub started: SystemTime,
    /// TLS facts, when the proxy terminated TLS.
    pub tls: Option<Tls>,
    client_ip: String,
    client_ip_value: http::HeaderValue,
    server_ip: String,
    /// What the IP intelligence databases say of the client's and the
    /// server's address, looked up when first read.
    intel: [OnceLock<crate::ip_intel::Facts>; 2],
    /// Bytes read from and written to the client (`conn.bytes_in`,
    /// `conn.bytes_out`), when the server counts them ([`Conn::counted`]):
    /// behind the tower layer or another gateway there is no connection
    /// of ours to count, and the variables are absent.
    bytes: Option<Arc<[AtomicU64; 2]>>,
}

/// TLS facts of a connection.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    /// `1.3`, as `conn.tls.version` (ngrok's spelling).
    pub version: String,
    /// The IANA name of the cipher suite.
    pub cipher_suite: String,
    /// The server name the client asked for.
    pub sni: Option<String>,
    /// The protocol ALPN agreed (`h2`, `http/1.1`).
    pub alpn: Option<String>,
    /// The client's certificate, when it sent one (mutual TLS).
    pub client: Option<Arc<crate::certificate::Certificate>>,
    /// The certificate the proxy served (its leaf).
    pub server: Option<Arc<crate::certificate::Certificate>>,
    /// A `terminate-tls` action ended this TLS (rather than the
    /// endpoint's own `--tls-cert`): its results read these facts.
    pub by_policy: bool,
}

impl Conn {
    /// A connection from `client` to `server`, accepted now.
    pub fn new(client: SocketAddr, server: SocketAddr, tls: Option<Tls>) -> Conn {
        let client_ip = canonical(client.ip()).to_string();
        Conn {
            client,
            server,
            started: SystemTime::now(),
            tls,
            client_ip_value: http::HeaderValue::from_str(&client_ip)
                .unwrap_or_else(|_| http::HeaderValue::from_static("")),
            client_ip,
            server_ip: canonical(server.ip()).to_string(),
            intel: [OnceLock::new(), OnceLock::new()],
            bytes: None,
        }
    }

    /// This connection, with its bytes counted by whoever serves it
    /// ([`Conn::count`]).
    pub fn counted(mut self) -> Conn {
        self.bytes = Some(Arc::new([AtomicU64::new(0), AtomicU64::new(0)]));
        self
    }

    /// Adds `n` bytes read from the client (`out: false`) or written to it.
    pub fn count(&self, out: bool, n: usize) {
        if let Some(bytes) = &self.bytes {
            bytes[usize::from(out)].fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// The bytes read from the client (`out: false`) or written to it so
    /// far; `None` when they are not counted.
    pub fn bytes(&self, out: bool) -> Option<u64> {
        self.bytes
            .as_ref()
            .map(|b| b[usize::from(out)].load(Ordering::Relaxed))
    }

    /// What `intel` says of the server's (`server`) or the client's
    /// address, looked up once per connection.
    pub(crate) fn ip_facts(
        &self,
        intel: &crate::ip_intel::IpIntel,
        server: bool,
    ) -> &crate::ip_intel::Facts {
        let ip = if server {
            self.server.ip()
        } else {
            self.client.ip()
        };
        self.intel[usize::from(server)].get_or_init(|| intel.lookup(canonical(ip)))
    }

    /// The client's IP address as text (IPv4-mapped addresses as IPv4).
    pub fn client_ip(&self) -> &str {
        &self.client_ip
    }

    /// The client's IP address as a header value (`X-Forwarded-For`),
    /// made once per connection.
    pub fn client_ip_value(&self) -> &http::HeaderValue {
        &self.client_ip_value
    }
}

/// The endpoint a policy is attached to: `endpoint.*`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// A stable identifier (the listen address unless configured).
    pub id: String,
    /// The public URL (`https://app.example.com`).
    pub url: String,
    /// The URL's host.
    pub host: String,
    /// The URL's port.
    pub port: u16,
    /// `http` or `https`.
    pub protocol: String,
    /// How request paths are canonicalized at this endpoint; URLs that
    /// actions build are canonicalized the same way.
    pub canon: portcullis_canon::Options,
    /// The deployment's IP intelligence databases, if it names any.
    pub ip_intel: Option<Arc<crate::ip_intel::IpIntel>>,
}

impl Endpoint {
    /// An endpoint reached at `url` (`http://host:port`).
    pub fn new(url: &str) -> Endpoint {
        let uri: Uri = url.parse().unwrap_or_default();
        let protocol = uri.scheme_str().unwrap_or("http").to_owned();
        let default_port = if protocol == "https" { 443 } else { 80 };
        Endpoint {
            id: url.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            host: uri.host().unwrap_or("").to_owned(),
            port: uri.port_u16().unwrap_or(default_port),
            protocol,
            canon: portcullis_canon::Options::default(),
            ip_intel: None,
        }
    }

    /// The default port of the endpoint's scheme.
    pub fn default_port(&self) -> u16 {
        if self.protocol == "https" { 443 } else { 80 }
    }

    /// `host:port`, as `endpoint.addr`.
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Header values, as CEL's `map(string, list(string))`: read in place.
/// Keys are lower case, as ngrok presents them; a key written with capitals
/// finds nothing, as in ngrok (lint warns of it).
#[derive(Debug, Default)]
pub struct Headers(pub HeaderMap);

impl MultiMap for Headers {
    fn key_count(&self) -> usize {
        self.0.keys_len()
    }

    fn key_at(&self, index: usize) -> Option<&str> {
        self.0.keys().nth(index).map(HeaderName::as_str)
    }

    fn find_key<'s>(&'s self, visit: &mut dyn FnMut(&'s str) -> bool) -> bool {
        self.0.keys().any(|k| visit(k.as_str()))
    }

    fn count(&self, key: &str) -> usize {
        if has_upper(key) {
            return 0;
        }
        if self.0.len() <= SCAN_MAX {
            return self.0.iter().filter(|(k, _)| k.as_str() == key).count();
        }
        self.0.get_all(key).iter().count()
    }

    fn contains(&self, key: &str) -> bool {
        if has_upper(key) {
            return false;
        }
        if self.0.len() <= SCAN_MAX {
            return self.0.keys().any(|k| k.as_str() == key);
        }
        self.0.contains_key(key)
    }

    fn value(&self, key: &str, index: usize) -> Option<&str> {
        if has_upper(key) {
            return None;
        }
        let v = if self.0.len() <= SCAN_MAX {
            let mut values = self.0.iter().filter(|(k, _)| k.as_str() == key);
            values.nth(index).map(|(_, v)| v)
        } else {
            self.0.get_all(key).iter().nth(index)
        };
        v.and_then(|v| v.to_str().ok())
    }

    fn find_value(&self, key: &str, found: &mut dyn FnMut(&str) -> bool) -> Option<bool> {
        if has_upper(key) {
            return None;
        }
        let mut any = |values: &mut dyn Iterator<Item = &HeaderValue>| {
            let mut values = values.peekable();
            values.peek()?;
            Some(values.any(|v| v.to_str().is_ok_and(&mut *found)))
        };
        if self.0.len() <= SCAN_MAX {
            let named = self.0.iter().filter(|(k, _)| k.as_str() == key);
            return any(&mut named.map(|(_, v)| v));
        }
        any(&mut self.0.get_all(key).iter())
    }
}

/// Up to this many header fields, a lookup by name compares names in turn
/// instead of hashing one: a request's or response's few short names
/// compare faster than a name parses and hashes (measured in the proxy:
/// `'x-api-key' in req.headers` 445 → 239 instructions; removing two
/// absent headers 408 → 206).
pub(crate) const SCAN_MAX: usize = 16;

/// Whether `headers` has a field named `name`, looked up as [`SCAN_MAX`]
/// says.
pub(crate) fn has_header(headers: &HeaderMap, name: &HeaderName) -> bool {
    if headers.len() <= SCAN_MAX {
        headers.keys().any(|k| k == name)
    } else {
        headers.contains_key(name)
    }
}

/// The first value of `name` in `headers`, looked up as [`SCAN_MAX`] says.
pub(crate) fn first_value<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Option<&'h HeaderValue> {
    if headers.len() <= SCAN_MAX {
        headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    } else {
        headers.get(name)
    }
}

fn has_upper(key: &str) -> bool {
    key.bytes().any(|b| b.is_ascii_uppercase())
}

/// Query parameters, decoded once: `req.url.query_params`.
#[derive(Debug, Default)]
pub(crate) struct QueryParams(Vec<(String, Vec<String>)>);

impl MultiMap for QueryParams {
    fn key_count(&self) -> usize {
        self.0.len()
    }

    fn key_at(&self, index: usize) -> Option<&str> {
        self.0.get(index).map(|(k, _)| k.as_str())
    }

    fn count(&self, key: &str) -> usize {
        self.values(key).map_or(0, <[String]>::len)
    }

    fn value(&self, key: &str, index: usize) -> Option<&str> {
        self.values(key)?.get(index).map(String::as_str)
    }
}

impl QueryParams {
    fn values(&self, key: &str) -> Option<&[String]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// The response of an exchange: the upstream's, or one an action made.
#[derive(Debug)]
struct Res {
    parts: http::response::Parts,
    headers: Headers,
    body: Body,
}

/// Values derived from the request, built on first read.
#[derive(Debug, Default)]
struct ReqCache {
    /// The wall-clock time of `RequestCtx::received`.
    received: OnceLock<SystemTime>,
    url: OnceLock<String>,
    /// `req.url.raw`, when the client's spelling differs.
    raw_url: OnceLock<String>,
    query: OnceLock<QueryParams>,
    cookies: OnceLock<Value<'static>>,
    /// The `User-Agent` header, parsed.
    user_agent: OnceLock<Option<crate::user_agent::Agent>>,
}

/// Values derived from the response, built on first read.
#[derive(Debug, Default)]
struct ResCache {
    cookies: OnceLock<Value<'static>>,
}

/// One exchange, as the policy sees it.
#[derive(Debug)]
pub struct RequestCtx {
    conn: Arc<Conn>,
    endpoint: Arc<Endpoint>,
    phase: Phase,
    req: http::request::Parts,
    req_headers: Headers,
    req_body: Body,
    req_body_buffered: Option<Bytes>,
    /// What the client sent where canonicalization changed it
    /// (`req.url.raw_path`, `req.url.raw`).
    arrival: Option<Box<portcullis_canon::Arrival>>,
    /// When the context was made: the monotonic clock, which the rate
    /// limiter reads too (one clock read per request, not one per action).
    received: Instant,
    res: Option<Res>,
    req_cache: ReqCache,
    res_cache: ResCache,
    now: OnceLock<String>,
    /// Action results (`actions.ngrok.*`) by schema index; the last
    /// execution of an action wins.
    results: Vec<(u16, Value<'static>)>,
    /// `vars`, of the current phase.
    vars: Vec<(String, Value<'static>)>,
    vars_value: OnceLock<Value<'static>>,
    logs: Vec<serde_json::Value>,
    forward: Option<String>,
    /// `Set-Cookie` values for whatever response the exchange ends with
    /// (a refreshed session), added by [`RequestCtx::take_response`].
    set_cookies: Vec<http::HeaderValue>,
    /// Who the request is from, once an action established it.
    identity: Option<Box<crate::Identity>>,
    /// What waits for the upstream's answer (a circuit breaker).
    upstream_watchers: UpstreamWatchers,
    /// How `terminate-tls` said this connection's TLS ends.
    tls_termination: Option<Arc<crate::terminate_tls::TlsTermination>>,
    /// The server-sent event `on_event_stream_message` is at.
    event: Option<crate::event_stream::Event>,
    /// Where the decision is recorded, when the request asked for it.
    trace: Option<Arc<crate::trace::Trace>>,
}

/// A callback told how the upstream answered a request: its status, or
/// `None` when the request never reached it (answered by the policy, the
/// client gone, the context dropped).
pub type UpstreamWatcher = Box<dyn FnOnce(Option<StatusCode>) + Send>;

/// The watchers of one request. Each is called exactly once: with the
/// upstream's status when the proxy reports it, else with `None` when the
/// context is dropped, so that a breaker's probe is never left in flight.
#[derive(Default)]
struct UpstreamWatchers(Vec<UpstreamWatcher>);

impl UpstreamWatchers {
    fn tell(&mut self, status: Option<StatusCode>) {
        for w in self.0.drain(..) {
            w(status);
        }
    }
}

impl Drop for UpstreamWatchers {
    fn drop(&mut self) {
        self.tell(None);
    }
}

impl std::fmt::Debug for UpstreamWatchers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamWatchers({})", self.0.len())
    }
}

impl RequestCtx {
    /// The context of `req`, received on `conn` at `endpoint`.
    pub fn new(req: Request<Body>, conn: Arc<Conn>, endpoint: Arc<Endpoint>) -> RequestCtx {
        RequestCtx::new_at(req, conn, endpoint, Instant::now())
    }

    /// [`new`](Self::new), for a request whose arrival its server already
    /// timed: `received` is then that instant, and the clock is not read
    /// again.
    pub fn new_at(
        req: Request<Body>,
        conn: Arc<Conn>,
        endpoint: Arc<Endpoint>,
        received: Instant,
    ) -> RequestCtx {
        let (mut parts, body) = req.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        RequestCtx {
            conn,
            endpoint,
            phase: Phase::HttpRequest,
            req: parts,
            req_headers: Headers(headers),
            req_body: body,
            req_body_buffered: None,
            arrival: None,
            received,
            res: None,
            req_cache: ReqCache::default(),
            res_cache: ResCache::default(),
            now: OnceLock::new(),
            results: Vec::new(),
            vars: Vec::new(),
            vars_value: OnceLock::new(),
            logs: Vec::new(),
            forward: None,
            set_cookies: Vec::new(),
            identity: None,
            upstream_watchers: UpstreamWatchers::default(),
            tls_termination: None,
            event: None,
            trace: None,
        }
    }

    /// Sets what `time.now` reads (RFC 3339), before anything read it:
    /// `portcullis test`'s cases give their time.
    pub fn set_now(&mut self, rfc3339: String) {
        let _ = self.now.set(rfc3339);
    }

    /// Where the decision is recorded, if the request asked for it.
    pub fn trace(&self) -> Option<&crate::trace::Trace> {
        self.trace.as_deref()
    }

    /// Records the decision into `trace` (`portcullis test`).
    pub fn set_trace(&mut self, trace: Arc<crate::trace::Trace>) {
        self.trace = Some(trace);
    }

    /// The context of a connection, for `on_tcp_connect`: no request.
    pub fn connection(conn: Arc<Conn>, endpoint: Arc<Endpoint>) -> RequestCtx {
        let mut ctx = RequestCtx::new(Request::new(body::empty()), conn, endpoint);
        ctx.phase = Phase::TcpConnect;
        ctx
    }

    /// The phase being evaluated.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Enters `phase`: `vars` are scoped per phase (spec §1.5).
    pub fn enter(&mut self, phase: Phase) {
        if phase != self.phase {
            self.phase = phase;
            self.vars.clear();
            self.vars_value = OnceLock::new();
        }
    }

    /// The connection.
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    // === the request ===

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.req.method
    }

    /// The request's URI as received (origin form, or absolute for HTTP/2).
    pub fn uri(&self) -> &Uri {
        &self.req.uri
    }

    /// The request's headers.
    pub fn req_headers(&self) -> &HeaderMap {
        &self.req_headers.0
    }

    /// The request's headers, to change; derived values are rebuilt.
    pub fn req_headers_mut(&mut self) -> &mut HeaderMap {
        self.req_cache.cookies = OnceLock::new();
        self.req_cache.url = OnceLock::new();
        self.req_cache.raw_url = OnceLock::new();
        self.req_cache.user_agent = OnceLock::new();
        &mut self.req_headers.0
    }

    /// Replaces the request's path and query (and authority, for a
    /// rewrite that changes the host).
    pub fn set_uri(&mut self, uri: Uri) {
        self.req.uri = uri;
        self.req_cache.url = OnceLock::new();
        self.req_cache.raw_url = OnceLock::new();
        self.req_cache.query = OnceLock::new();
    }

    /// Records what the client sent where [`portcullis_canon::request`]
    /// changed it, for `req.url.raw_path` and `req.url.raw`.
    pub fn set_arrival(&mut self, arrival: portcullis_canon::Arrival) {
        if arrival.raw_target.is_some() || arrival.raw_authority.is_some() {
            self.arrival = Some(Box::new(arrival));
            self.req_cache.raw_url = OnceLock::new();
        }
    }

    /// The path as the client sent it: `req.url.raw_path`.
    pub fn raw_path(&self) -> &str {
        match self.arrival.as_deref().and_then(|a| a.raw_target.as_ref()) {
            Some(raw) => raw.path(),
            None => self.req.uri.path(),
        }
    }

    /// The request target (path and query) as the client sent it.
    pub fn raw_target(&self) -> &str {
        match self.arrival.as_deref().and_then(|a| a.raw_target.as_ref()) {
            Some(raw) => raw.as_str(),
            None => self.req.uri.path_and_query().map_or("/", |p| p.as_str()),
        }
    }

    /// The URL as the client spelled it: `req.url.raw`.
    pub fn raw_url(&self) -> &str {
        let Some(arrival) = self.arrival.as_deref() else {
            return self.url();
        };
        self.req_cache.raw_url.get_or_init(|| {
            let target = match &arrival.raw_target {
                Some(raw) => raw.as_str(),
                None => self.req.uri.path_and_query().map_or("/", |p| p.as_str()),
            };
            let authority = arrival.raw_authority.as_deref().unwrap_or(self.authority());
            format!("{}://{authority}{target}", self.scheme())
        })
    }

    /// The scheme clients used: the endpoint's.
    pub fn scheme(&self) -> &str {
        self.req.uri.scheme_str().unwrap_or(
            // A connection `terminate-tls` ended is HTTPS whatever the
            // endpoint was started as.
            if self.conn.tls.is_some() && self.endpoint.protocol == "http" {
                "https"
            } else {
                self.endpoint.protocol.as_str()
            },
        )
    }

    /// The host the client asked for: `Host`, else the URI's authority,
    /// else the endpoint's host; with its port if the client gave one.
    pub fn authority(&self) -> &str {
        first_value(&self.req_headers.0, &header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| self.req.uri.authority().map(|a| a.as_str()))
            .unwrap_or(self.endpoint.host.as_str())
    }

    /// The full URL the client asked for: `scheme://authority/path?query`.
    pub fn url(&self) -> &str {
        self.req_cache.url.get_or_init(|| {
            let path = self.req.uri.path_and_query().map_or("/", |p| p.as_str());
            format!("{}://{}{}", self.scheme(), self.authority(), path)
        })
    }

    fn query_params(&self) -> &QueryParams {
        self.req_cache.query.get_or_init(|| {
            QueryParams(portcullis_policy::functions::query_params(
                self.req.uri.query().unwrap_or(""),
            ))
        })
    }

    /// The request body, read whole (at most `limit` bytes) and kept so
    /// that it is still forwarded. `None` when it is larger than `limit`
    /// or cannot be read.
    pub async fn buffer_body(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        if let Some(b) = &self.req_body_buffered {
            return Ok(b.clone());
        }
        let body = std::mem::replace(&mut self.req_body, body::empty());
        match collect_limited(body, limit).await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                self.req_body = body::full(bytes.clone());
                self.req_body_buffered = Some(bytes.clone());
                Ok(bytes)
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
            Err(_) => Err(BodyError::Read),
        }
    }

    /// Replaces the request body (a rewrite): it is then forwarded as
    /// these bytes, and `req.body` reads them.
    pub fn set_body(&mut self, bytes: Bytes) {
        self.req_body = body::full(bytes.clone());
        self.req_body_buffered = Some(bytes);
        self.req_cache = ReqCache::default();
    }

    /// Takes the request out, with its headers, to send upstream. With
    /// `keep`, its head stays readable (`req.*` in `on_http_response`);
    /// without, the head is moved, not copied, and the context no longer
    /// describes the request (`GET /`, no headers).
    pub fn take_request(&mut self, keep: bool) -> Request<Body> {
        let (mut parts, headers) = if keep {
            (self.req.clone(), self.req_headers.0.clone())
        } else {
            let empty = Request::new(()).into_parts().0;
            (
                std::mem::replace(&mut self.req, empty),
                std::mem::take(&mut self.req_headers.0),
            )
        };
        parts.headers = headers;
        let body = std::mem::replace(&mut self.req_body, body::empty());
        Request::from_parts(parts, body)
    }

    /// The HTTP version of the request.
    pub fn version(&self) -> Version {
        self.req.version
    }

    // === the response ===

    /// Sets the response: the upstream's, or an action's.
    pub fn set_response(&mut self, res: Response<Body>) {
        let (mut parts, body) = res.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        self.res = Some(Res {
            parts,
            headers: Headers(headers),
            body,
        });
        self.res_cache = ResCache::default();
    }

    /// Whether a response is set.
    pub fn has_response(&self) -> bool {
        self.res.is_some()
    }

    /// The response's status.
    pub fn status(&self) -> Option<StatusCode> {
        self.res.as_ref().map(|r| r.parts.status)
    }

    /// The response's headers.
    pub fn res_headers(&self) -> Option<&HeaderMap> {
        self.res.as_ref().map(|r| &r.headers.0)
    }

    /// The response's headers, to change.
    pub fn res_headers_mut(&mut self) -> Option<&mut HeaderMap> {
        self.res_cache = ResCache::default();
        self.res.as_mut().map(|r| &mut r.headers.0)
    }

    /// The response body, read whole (at most `limit` bytes) and kept so
    /// that it is still sent.
    pub async fn buffer_res_body(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        let Some(res) = &mut self.res else {
            return Ok(Bytes::new());
        };
        let body = std::mem::replace(&mut res.body, body::empty());
        match collect_limited(body, limit).await {
            Ok(collected) => {
                let bytes = collected.to_bytes();
                res.body = body::full(bytes.clone());
                Ok(bytes)
            }
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
            Err(_) => Err(BodyError::Read),
        }
    }

    /// Replaces the response body with `bytes` (a rewrite).
    pub fn set_res_body(&mut self, bytes: Bytes) {
        if let Some(res) = &mut self.res {
            res.body = body::full(bytes);
        }
    }

    /// Replaces the response body through `f` (compression).
    pub fn map_res_body(&mut self, f: impl FnOnce(Body) -> Body) {
        if let Some(res) = &mut self.res {
            let body = std::mem::replace(&mut res.body, body::empty());
            res.body = f(body);
        }
    }

    /// A context for the events of this exchange's streamed response
    /// (`on_event_stream_message`): the request's and the response's heads,
    /// the connection, the results and the identity, without the bodies.
    pub fn for_events(&self) -> RequestCtx {
        let mut req = Request::new(body::empty());
        *req.method_mut() = self.req.method.clone();
        *req.uri_mut() = self.req.uri.clone();
        *req.version_mut() = self.req.version;
        *req.headers_mut() = self.req_headers.0.clone();
        let mut ctx =
            RequestCtx::new_at(req, self.conn.clone(), self.endpoint.clone(), self.received);
        ctx.arrival = self.arrival.clone();
        ctx.results = self.results.clone();
        ctx.identity = self.identity.clone();
        if let Some(res) = &self.res {
            ctx.res = Some(Res {
                parts: res.parts.clone(),
                headers: Headers(res.headers.0.clone()),
                body: body::empty(),
            });
        }
        ctx
    }

    /// Sets the event `on_event_stream_message` runs on.
    pub fn set_event(&mut self, event: crate::event_stream::Event) {
        self.event = Some(event);
    }

    /// The event, as the phase's actions left it.
    pub fn take_event(&mut self) -> Option<crate::event_stream::Event> {
        self.event.take()
    }

    /// The event, to change (`sse-find-replace`).
    pub fn event_mut(&mut self) -> Option<&mut crate::event_stream::Event> {
        self.event.as_mut()
    }

    /// The first value of query parameter `name`, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        portcullis_policy::functions::query_params(self.uri().query().unwrap_or(""))
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.into_iter().next())
    }

    /// Says how this connection's TLS is to end (`terminate-tls`).
    pub fn set_tls_termination(&mut self, t: Arc<crate::terminate_tls::TlsTermination>) {
        self.tls_termination = Some(t);
    }

    /// How `terminate-tls` said this connection's TLS ends, if it ran.
    pub fn tls_termination(&self) -> Option<&Arc<crate::terminate_tls::TlsTermination>> {
        self.tls_termination.as_ref()
    }

    /// Calls `watcher` with the upstream's status once the proxy has it,
    /// or with `None` if the request never reaches the upstream.
    pub fn watch_upstream(&mut self, watcher: UpstreamWatcher) {
        self.upstream_watchers.0.push(watcher);
    }

    /// How the upstream answered (the proxy's 502 or 504 when it could
    /// not be reached or did not answer in time): tells the watchers.
    pub fn upstream_answered(&mut self, status: StatusCode) {
        self.upstream_watchers.tell(Some(status));
    }

    /// Adds a `Set-Cookie` to the response the exchange ends with.
    pub fn set_cookie(&mut self, value: http::HeaderValue) {
        self.set_cookies.push(value);
    }

    /// Takes the response out, with the cookies actions set.
    pub fn take_response(&mut self) -> Option<Response<Body>> {
        let res = self.res.take()?;
        let mut parts = res.parts;
        parts.headers = res.headers.0;
        for cookie in self.set_cookies.drain(..) {
            parts.headers.append(header::SET_COOKIE, cookie);
        }
        Some(Response::from_parts(parts, res.body))
    }

    // === results, vars, logs ===

    /// Records an action result variable; the last execution wins.
    pub fn set_result(&mut self, var: ResultVar, value: Value<'static>) {
        match self.results.iter_mut().find(|(i, _)| *i == var.0) {
            Some((_, v)) => *v = value,
            None => self.results.push((var.0, value)),
        }
    }

    /// An action result variable, if set.
    pub fn result(&self, var: ResultVar) -> Option<&Value<'static>> {
        self.results
            .iter()
            .find(|(i, _)| *i == var.0)
            .map(|(_, v)| v)
    }

    /// Sets `vars.<name>`.
    pub fn set_var(&mut self, name: &str, value: Value<'static>) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.vars.push((name.to_owned(), value)),
        }
        self.vars_value = OnceLock::new();
    }

    /// Appends a `log` action's entry to the exchange's access log.
    pub fn log(&mut self, entry: serde_json::Value) {
        self.logs.push(entry);
    }

    /// The entries `log` actions added.
    pub fn logs(&self) -> &[serde_json::Value] {
        &self.logs
    }

    /// Records who the request is from (a sign-in session, `basic-auth`).
    pub fn set_identity(&mut self, identity: crate::Identity) {
        self.identity = Some(Box::new(identity));
    }

    /// Who the request is from, if an action established it.
    pub fn identity(&self) -> Option<&crate::Identity> {
        self.identity.as_deref()
    }

    /// Routes the request to a named internal upstream (`forward-internal`).
    pub fn forward_to(&mut self, url: String) {
        self.forward = Some(url);
    }

    /// The internal upstream `forward-internal` chose, if any.
    pub fn forward(&self) -> Option<&str> {
        self.forward.as_deref()
    }

    /// When the request's head was received (when the context was made).
    pub fn received(&self) -> SystemTime {
        *self.req_cache.received.get_or_init(|| {
            let ago = self.received.elapsed();
            SystemTime::now()
                .checked_sub(ago)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        })
    }

    /// [`received`](Self::received), on the monotonic clock: what time
    /// windows (`rate-limit`) count by.
    pub fn received_at(&self) -> Instant {
        self.received
    }
}

type Collecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<http_body_util::Collected<Bytes>, crate::body::BoxError>,
            > + Send,
    >,
>;

/// Reads `body` whole, up to `limit` bytes. The future is boxed here, where
/// its type is concrete: proving it `Send` inside an `async fn` trips a
/// compiler limitation with higher-ranked lifetimes (rust-lang/rust#102211).
fn collect_limited(body: Body, limit: usize) -> Collecting {
    Box::pin(http_body_util::Limited::new(body, limit).collect())
}

/// A body that could not be buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit.
    TooLarge,
    /// The client failed while sending it.
    Read,
}

/// An action result variable (`actions.ngrok.rate_limit.limited`),
/// resolved to its slot when a policy compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultVar(u16);

impl ResultVar {
    /// The result variable `name`, which the schema must declare.
    pub fn named(name: &str) -> Option<ResultVar> {
        env::schema_index(name).map(ResultVar)
    }
}

// === impl Activation ===

impl Activation for RequestCtx {
    fn resolve(&self, var: VarId) -> Option<Value<'_>> {
        self.field(env::field(self.phase, var)?)
    }
}

/// A stored value, borrowed for one evaluation (a shallow copy: strings
/// and containers are shared, not copied).
fn borrow<'a>(v: &'a Value<'static>) -> Value<'a> {
    v.clone()
}

fn text(s: &str) -> Value<'_> {
    Value::String(Str::Borrowed(s))
}

fn headers_value(h: &Headers) -> Value<'_> {
    Value::Map(Map::Multi(h))
}

fn list_of_header<'a>(h: &'a Headers, name: &'static str) -> Value<'a> {
    Value::List(List::Multi(h, Str::Borrowed(name)))
}

impl RequestCtx {
    fn now(&self) -> &str {
        self.now.get_or_init(|| Timestamp::now().to_rfc3339())
    }
}
