//! The listeners and the request path: accept (TLS if configured), run
//! `on_tcp_connect`, serve HTTP/1.1 and HTTP/2 (h2c by preface, h2 by
//! ALPN), and per request run the policy, forward to the upstream, run
//! `on_http_response`, and log.
//!
//! Errors become responses here and nowhere else: the service hyper sees
//! fails only to drop a connection on purpose (`close-connection`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use portcullis_actions::body::{self, Body, BoxError};
use portcullis_actions::client::HttpClient;
use portcullis_actions::{Conn, Endpoint, RequestCtx, respond};
use portcullis_runtime::{Options, Outcome, Pipeline};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::assertion::Signer;
use crate::config::{Config, EndpointConfig, Limits, Timeouts, Upstream};
use crate::deadline::{Deadlines, Timed, Tracked, Watched};
use crate::drain::{Drain, Watch};
use crate::forward_auth::ForwardAuth;
use crate::metrics::{ClientErrorKind, CloseReason, Metrics, UpstreamErrorKind};
use crate::outbound::Outbound;
use crate::tunnel::{self, Upgrade};
use crate::upstream::{Failure, Forwarded, Kept, Parked, Upstreams};
use crate::{admin, reload, tls};

/// The code of a request body over the limit.
const BODY_TOO_LARGE: &str = "ERR_NGROK_3903";
/// The code of an upstream that refused or failed the connection (ngrok's
/// "the agent failed to establish a connection to the upstream").
pub const UPSTREAM_CONNECT: &str = "ERR_NGROK_8012";
/// The code of an upstream that broke HTTP.
pub const UPSTREAM_PROTOCOL: &str = "ERR_NGROK_3004";
/// The code of an upstream that did not answer in time.
pub const UPSTREAM_TIMEOUT: &str = "ERR_PORTCULLIS_UPSTREAM_TIMEOUT";
/// The code of a request head over `limits.max_header_bytes` that hyper
/// let through (it arrived whole).
const HEADERS_TOO_LARGE: &str = "ERR_PORTCULLIS_HEADERS_TOO_LARGE";
/// The code of a client whose request body broke HTTP's framing.
pub const CLIENT_BODY: &str = "ERR_PORTCULLIS_CLIENT_BODY";

/// A proxy that is running.
#[derive(Debug)]
pub struct Running {
    /// Each endpoint's bound address, in configuration order.
    pub addrs: Vec<SocketAddr>,
    /// The admin listener's address.
    pub admin: Option<SocketAddr>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish (up to the grace
    /// timeout), and returns when everything has stopped.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
    }

    /// Waits until the proxy stops (after [`Running::stop_handle`] fires).
    pub async fn wait(self) {
        let _ = self.done.await;
    }

    /// A handle that stops the proxy when sent `true`.
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// An endpoint's shared state.
pub(crate) struct Site {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) pipeline: ArcSwap<Pipeline>,
    pub(crate) policy: Option<PathBuf>,
    /// Where allowed requests go; none on a forward-auth endpoint.
    upstream: Option<Upstream>,
    /// The gateway a forward-auth endpoint answers.
    forward_auth: Option<ForwardAuth>,
    /// A forward-auth endpoint as `http` and as `https`: the scheme is the
    /// described request's.
    pub(crate) forward_auth_endpoints: Option<[Arc<Endpoint>; 2]>,
    /// How requests are canonicalized.
    pub(crate) canon: portcullis_canon::Options,
    /// The protocols clients may switch to.
    upgrades: Vec<String>,
    /// Upstream connections left by closed client connections.
    parked: Arc<Parked>,
    /// The listener's connections and tunnels, for a graceful stop.
    drain: Drain,
    tls: Option<TlsAcceptor>,
    /// The endpoint's certificate (`--tls-cert`), for a `terminate-tls`
    /// that brings none.
    identity: Option<Arc<tls::Identity>>,
    /// The acceptors `terminate-tls` asked for.
    terminations: tls::Terminations,
}

/// What every request shares.
pub(crate) struct Shared {
    upstreams: Upstreams,
    internal: Vec<(String, Upstream)>,
    timeouts: Timeouts,
    limits: Limits,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) options: Options,
    /// What `/sessions` on the admin listener asks for; none: loopback
    /// clients only.
    pub(crate) admin_token: Option<String>,
    /// Signs identity assertions.
    pub(crate) signer: Signer,
    /// Seal what must come back unchanged (nginx's forward-auth answers).
    pub(crate) keys: portcullis_actions::session::Keys,
    /// Whether proxied requests carry the identity.
    identity_headers: bool,
    /// The deployment's IP intelligence databases and category lists.
    pub(crate) ip_intel: Option<Arc<portcullis_actions::ip_intel::IpIntel>>,
    /// The file of the IP Policies, read again with each reload.
    pub(crate) ip_policies_file: Option<std::path::PathBuf>,
}

impl Site {
    /// The compile options of this endpoint's policy: the shared ones, and
    /// the gateway it is checked against.
    pub(crate) fn options(&self, shared: &Shared) -> Options {
        Options {
            gateway: self.forward_auth.as_ref().map(|fa| fa.gateway),
            ..shared.options.clone()
        }
    }
}

/// A failure to start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Loads every endpoint's policy, binds every listener, and starts
/// serving. A policy with errors stops the start: the errors are in the
/// message, one per line, as `file:line:column: error[code]: message`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::new());
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(config.timeouts.connect));
    http.set_nodelay(true);
    http.enforce_http(false);
    let upstream_tls = tls::upstream_client(&config.upstream_tls).map_err(StartError)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(upstream_tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build(connector.clone());
    let outbound: Arc<dyn HttpClient> = Arc::new(Outbound {
        client: client.clone(),
        public: crate::outbound::public_client(config.timeouts.connect),
        internal: config.internal.clone(),
    });
    // Without configured keys, one random key for the process: sessions
    // survive reloads, not restarts.
    if config.session_keys.is_empty() && config.state.is_some() {
        tracing::warn!(
            "`state` is shared but no `session_keys` are set: this replica seals sign-in \
             flows and sessions with a key of its own, so they do not carry over to other \
             replicas or across a restart; set the same `session_keys` \
             (or PORTCULLIS_SESSION_KEYS) on every replica"
        );
    }
    let session_keys = if config.session_keys.is_empty() {
        vec![portcullis_actions::session::random_key()]
    } else {
        config.session_keys.clone()
    };
    let state = match &config.state {
        Some(c) => {
            let state =
                portcullis_state::State::redis(c.clone()).map_err(|e| StartError(e.to_string()))?;
            // A store that is down at start is said, not fatal: shared
            // features fall back as documented until it answers.
            match state.ready(Duration::from_secs(2)).await {
                Ok(()) => tracing::info!(state = %state.describe(), "state store reachable"),
                Err(e) => tracing::warn!(
                    state = %state.describe(),
                    "`state`: {e}; starting anyway: shared rate limits fall back to `{}` until it answers",
                    match state.on_error() {
                        portcullis_state::OnError::Local => "local",
                        portcullis_state::OnError::Allow => "allow",
                        portcullis_state::OnError::Deny => "deny",
                    }
                ),
            }
            state
        }
        None => portcullis_state::State::memory(),
    };
    let options = Options {
        internal: config.internal.iter().map(|(n, _)| n.clone()).collect(),
        client: Some(outbound),
        session_keys,
        state: Some(state),
        gateway: None,
        // The deployment is known here: an id it does not define is an
        // error at load, not a rule that silently allows.
        ip_policies: Some(Arc::new(config.ip_policies.clone())),
        oauth_apps: Some(Arc::new(oauth_apps(&config.oauth_apps))),
        ip_intelligence: !config.ip_intelligence.is_empty() || !config.ip_categories.is_empty(),
    };
    let signer = match &config.identity.signing_key {
        Some(pem) => Signer::from_pem(pem),
        None => Signer::generate(),
    }
    .map_err(|e| StartError(format!("`identity.signing_key`: {e}")))?;
    let keys = portcullis_actions::session::Keys::new(&options.session_keys);
    let ip_intel = if config.ip_intelligence.is_empty() && config.ip_categories.is_empty() {
        None
    } else {
        let intel = portcullis_actions::ip_intel::IpIntel::open(&config.ip_intelligence)
            .map_err(|e| StartError(format!("`ip_intelligence`: {e}")))?
            .with_lists(config.ip_categories.clone())
            .map_err(|e| StartError(format!("`ip_categories`: {e}")))?;
        Some(Arc::new(intel))
    };
    let shared = Arc::new(Shared {
        upstreams: Upstreams {
            pool: client,
            connector,
        },
        internal: config.internal.clone(),
        timeouts: config.timeouts,
        limits: config.limits,
        metrics: metrics.clone(),
        options,
        admin_token: config.admin_token.clone(),
        signer,
        keys,
        identity_headers: config.identity.upstream_headers,
        ip_intel,
        ip_policies_file: config.ip_policies_file.clone(),
    });
    let mut sites = Vec::new();
    let mut listeners = Vec::new();
    for ep in &config.endpoints {
        let site = site(ep, &shared)?;
        let listener = TcpListener::bind(ep.listen)
            .await
            .map_err(|e| StartError(format!("cannot listen on {}: {e}", ep.listen)))?;
        listeners.push(listener);
        sites.push(Arc::new(site));
    }
    metrics.reload(true, SystemTime::now());
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError(e.to_string()))?;
    let admin_listener = match config.admin {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?,
        ),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    let (stop, stopped) = watch::channel(false);
    let grace = config.timeouts.shutdown_grace;
    // SIGHUP's handler is installed now, before `start` returns and the
    // caller announces the address: a SIGHUP that arrived before the
    // spawned watcher first ran would otherwise kill the process.
    let hangup = reload::hangup();
    let done = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for (listener, site) in listeners.into_iter().zip(&sites) {
            tasks.spawn(accept_loop(
                listener,
                site.clone(),
                shared.clone(),
                grace,
                stopped.clone(),
            ));
        }
        if let Some(listener) = admin_listener {
            tasks.spawn(admin::serve(
                listener,
                shared.clone(),
                sites.clone(),
                stopped.clone(),
            ));
        }
        tasks.spawn(reload::watch(
            sites.clone(),
            hangup,
            shared.clone(),
            stopped.clone(),
        ));
        while tasks.join_next().await.is_some() {}
    });
    Ok(Running {
        addrs,
        admin: admin_addr,
        metrics,
        stop,
        done,
    })
}

/// The deployment's OAuth apps: the config's, and those the environment
/// names (`PORTCULLIS_OAUTH_<PROVIDER>_CLIENT_ID` and `_CLIENT_SECRET`,
/// both set) for providers the config does not.
/// The deployment's OAuth apps: the config's `oauth_apps`, then each
/// provider's `PORTCULLIS_OAUTH_<PROVIDER>_CLIENT_ID` and `_CLIENT_SECRET`.
pub fn oauth_apps(configured: &portcullis_actions::OAuthApps) -> portcullis_actions::OAuthApps {
    let mut apps = configured.clone();
    for provider in [
        "microsoft",
        "google",
        "github",
        "gitlab",
        "facebook",
        "amazon",
        "linkedin",
        "twitch",
    ] {
        let var = |what: &str| {
            std::env::var(format!(
                "PORTCULLIS_OAUTH_{}_{what}",
                provider.to_ascii_uppercase()
            ))
            .ok()
            .filter(|v| !v.is_empty())
        };
        if let (Some(id), Some(secret)) = (var("CLIENT_ID"), var("CLIENT_SECRET")) {
            apps.entry(provider.to_owned()).or_insert((id, secret));
        }
    }
    apps
}

fn site(ep: &EndpointConfig, shared: &Shared) -> Result<Site, StartError> {
    let scheme = if ep.tls.is_some() { "https" } else { "http" };
    let url = ep
        .url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}", ep.listen));
    let options = Options {
        gateway: ep.forward_auth.as_ref().map(|fa| fa.gateway),
        ..shared.options.clone()
    };
    let pipeline = match &ep.policy {
        Some(path) => reload::load(path, &options).map_err(StartError)?,
        None => Pipeline::empty(),
    };
    let (tls, identity) = match ep.tls.as_ref().map(tls::acceptor).transpose() {
        Ok(Some((acceptor, identity))) => (Some(acceptor), Some(identity)),
        Ok(None) => (None, None),
        Err(e) => return Err(StartError(e)),
    };
    let mut endpoint = Endpoint::new(&url);
    endpoint.canon = ep.canon;
    endpoint.ip_intel = shared.ip_intel.clone();
    let forward_auth_endpoints = ep.forward_auth.as_ref().map(|_| {
        ["http", "https"].map(|scheme| {
            let mut e = endpoint.clone();
            e.protocol = scheme.to_owned();
            Arc::new(e)
        })
    });
    Ok(Site {
        endpoint: Arc::new(endpoint),
        forward_auth_endpoints,
        pipeline: ArcSwap::from_pointee(pipeline),
        policy: ep.policy.clone(),
        upstream: ep.upstream.clone(),
        forward_auth: ep.forward_auth.clone(),
        canon: ep.canon,
        upgrades: ep.upgrades.clone(),
        parked: Arc::default(),
        drain: Drain::default(),
        tls,
        identity,
        terminations: tls::Terminations::default(),
    })
}

async fn accept_loop(
    listener: TcpListener,
    site: Arc<Site>,
    shared: Arc<Shared>,
    grace: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    // Every connection of this listener is watched: on stop, each is told
    // to finish the request in flight and close, and the loop returns when
    // they all have (or the grace period is over).
    let drain = site.drain.clone();
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let (stream, client) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, or a connection reset before
                // accept: back off briefly rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let server = stream.local_addr().unwrap_or(client);
        let _ = stream.set_nodelay(true);
        let site = site.clone();
        let shared = shared.clone();
        let watch = drain.watch();
        tokio::spawn(async move {
            connection(stream, client, server, site, shared, watch).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, drain.drain()).await.is_err() {
        tracing::warn!("connections still open after the grace period; closing them");
        drain.force();
    }
}

/// The HTTP versions a connection can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
}

/// What a client speaking HTTP/2 without TLS (h2c, "prior knowledge")
/// sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells HTTP/2 from HTTP/1 on a cleartext connection by its first bytes,
/// without reading them: `None` if the client closed or sent nothing in
/// time. An HTTP/1 request differs from the preface by its second byte at
/// the latest; only the first bytes of a real preface arriving in pieces
/// make this wait for more.
async fn sniff(stream: &TcpStream, within: Duration) -> Option<Proto> {
    let sniffing = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            let seen = buf.get(..n)?;
            if n == 0 {
                return None;
            }
            if !H2_PREFACE.starts_with(seen) {
                return Some(Proto::Http1);
            }
            if n == H2_PREFACE.len() {
                return Some(Proto::Http2);
            }
            // A peek returns the same bytes until more arrive: wait a
            // little rather than spin.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(within, sniffing).await.ok().flatten()
}

async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    server: SocketAddr,
    site: Arc<Site>,
    shared: Arc<Shared>,
    drain: Watch,
) {
    let _open = shared.metrics.connection_opened();
    // With `terminate-tls`, `on_tcp_connect` runs first: the handshake
    // follows what it chose (or the endpoint's own TLS, or none, when the
    // action's rule did not match).
    let mut connected = false;
    let mut acceptor = site.tls.clone();
    let mut served = site.identity.as_ref().and_then(|id| id.leaf());
    let mut by_policy = false;
    let pipeline = site.pipeline.load_full();
    if pipeline.terminates_tls() {
        let conn = Arc::new(Conn::new(client, server, None));
        let mut ctx = RequestCtx::connection(conn.clone(), site.endpoint.clone());
        if !connect(&pipeline, &mut ctx).await {
            return;
        }
        connected = true;
        if let Some(t) = ctx.tls_termination() {
            match site.terminations.acceptor(t, site.identity.as_deref()) {
                Ok(s) => {
                    acceptor = Some(s.acceptor);
                    served = s.certificate;
                    by_policy = true;
                }
                Err(e) => {
                    // A termination that cannot be made is no plain-text
                    // connection: it is closed, and said.
                    tracing::error!(%client, code = "ERR_PORTCULLIS_TLS_TERMINATION", "terminate-tls: {e}");
                    return;
                }
            }
        }
    }
    drop(pipeline);
    match acceptor {
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(shared.timeouts.header_read, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%client, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            let facts = tls::facts(&stream, served, by_policy);
            let conn = Arc::new(Conn::new(client, server, Some(facts)).counted());
            // Over TLS, the version is the one ALPN chose.
            let proto = if tls::is_h2(&stream) {
                Proto::Http2
            } else {
                Proto::Http1
            };
            serve(stream, proto, conn, site, shared, drain, connected).await;
        }
        None => {
            let Some(proto) = sniff(&stream, shared.timeouts.header_read).await else {
                return;
            };
            let conn = Arc::new(Conn::new(client, server, None).counted());
            serve(stream, proto, conn, site, shared, drain, connected).await;
        }
    }
}

/// Runs `on_tcp_connect`; whether the connection goes on. What its `log`
/// actions recorded is one access-log entry of the connection's own (the
/// requests' entries carry their phases' logs).
async fn connect(pipeline: &Pipeline, ctx: &mut RequestCtx) -> bool {
    let open = pipeline.on_connect(ctx).await != Outcome::Close;
    let policy_logs = policy_logs(ctx);
    if !open {
        tracing::info!(
            target: "portcullis::access",
            client = ctx.conn().client_ip(),
            policy_logs = policy_logs.as_str(),
            "connection closed by on_tcp_connect"
        );
    } else if !policy_logs.is_empty() {
        tracing::info!(
            target: "portcullis::access",
            client = ctx.conn().client_ip(),
            policy_logs = policy_logs.as_str(),
            "on_tcp_connect"
        );
    }
    open
}

/// Serves HTTP on a connection; `connected`: its `on_tcp_connect` already
/// ran (before a `terminate-tls` handshake).
async fn serve<IO>(
    io: IO,
    proto: Proto,
    conn: Arc<Conn>,
    site: Arc<Site>,
    shared: Arc<Shared>,
    drain: Watch,
    connected: bool,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let pipeline = site.pipeline.load_full();
    if !connected && pipeline.has_tcp_rules() {
        let mut ctx = RequestCtx::connection(conn.clone(), site.endpoint.clone());
        if !connect(&pipeline, &mut ctx).await {
            return;
        }
    }
    drop(pipeline);
    let kept = Arc::new(Kept::new(site.parked.clone()));
    let metrics = shared.metrics.clone();
    let deadlines = Arc::new(Deadlines::new(
        &shared.timeouts,
        proto == Proto::Http2,
        metrics.clone(),
    ));
    let watched = deadlines.clone();
    let timeouts = shared.timeouts;
    let max_header = shared.limits.max_header_bytes;
    // The service returns `handle`'s future itself, not one wrapping it:
    // the future is large, and each wrapper is another copy of it.
    let counted = conn.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let (site, shared, conn) = (site.clone(), shared.clone(), conn.clone());
        handle(req, conn, site, shared, kept.clone(), deadlines.clone())
    });
    let io = TokioIo::new(Timed::new(io, timeouts.send, metrics.clone(), counted));
    let ended = match proto {
        Proto::Http1 => {
            // hyper's smallest read buffer is 8 KiB; a head larger than the
            // buffer is answered 431. The header-read deadline is
            // `deadlines`' (one timer per connection, not one per
            // request). Responses are written from one buffer: head and
            // body in one write, measured faster than two-part vectored
            // writes for the small responses most requests get.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .writev(false)
                .max_buf_size(max_header.max(8192))
                .serve_connection(io, service)
                .with_upgrades();
            Watched::new(conn, watched, drain).await
        }
        Proto::Http2 => {
            // Pings find dead peers; an unanswered one closes the
            // connection (hyper's error is then a timeout).
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX))
                .keep_alive_interval(timeouts.ping)
                .keep_alive_timeout(timeouts.ping)
                .serve_connection(io, service);
            Watched::new(conn, watched, drain).await
        }
    };
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            if proto == Proto::Http2 && e.is_timeout() {
                metrics.closed(CloseReason::Ping);
            }
            tracing::debug!("connection ended: {e}");
        }
        Err(reason) => {
            metrics.closed(reason);
            tracing::debug!("connection closed: no request in time ({reason:?})");
        }
    }
}

/// The connection is dropped on purpose (`close-connection`).
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("closed by the traffic policy")
    }
}

impl std::error::Error for Closed {}

#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps each argument twice in its state (rust-lang/rust#62958)"
)]
fn handle(
    mut req: Request<Incoming>,
    conn: Arc<Conn>,
    site: Arc<Site>,
    shared: Arc<Shared>,
    kept: Arc<Kept>,
    deadlines: Arc<Deadlines>,
) -> impl Future<Output = Result<Response<Tracked>, Closed>> {
    async move {
        let started = Instant::now();
        let pipeline = site.pipeline.load_full();
        let method = req.method().clone();
        // A shared handle on the request target, for the access log: no copy.
        let target = req.uri().path_and_query().cloned();
        let version = req.version();
        // The head is in: no header-read deadline while the request is
        // handled (the policy may wait on other services).
        let h1 = version != Version::HTTP_2;
        let deadlines = deadlines.begin();
        if let Some(fa) = &site.forward_auth {
            // Boxed: the proxy's own requests do not carry its size.
            let res = Box::pin(crate::forward_auth::handle(
                req,
                conn.clone(),
                site.clone(),
                shared.clone(),
                fa,
            ))
            .await;
            return Ok(res.map(|b| Tracked::new(b, deadlines)));
        }
        // hyper bounds the head it buffers only while the head is
        // incomplete: one that arrives whole in a large read is measured
        // here.
        let head_too_large = head_bytes(&req) > shared.limits.max_header_bytes;
        let upgrade = tunnel::requested(&mut req, &site.upgrades);
        // One canonical form, read by the policy and sent upstream; a
        // request without one is answered here and goes nowhere.
        let canonical = portcullis_canon::request(&mut req, conn.tls.is_some(), &site.canon);

        let too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > shared.limits.max_body_bytes);
        let max_body = usize::try_from(shared.limits.max_body_bytes).unwrap_or(usize::MAX);
        let req = req.map(|b| {
            body::boxed(http_body_util::BodyExt::map_err(
                http_body_util::Limited::new(b, max_body),
                ClientBody,
            ))
        });
        let mut ctx = RequestCtx::new_at(req, conn.clone(), site.endpoint.clone(), started);
        // Refused and redirected requests skip both phases: their rules
        // would read a request that has no canonical form.
        let mut policy = true;
        match canonical {
            _ if head_too_large => {
                policy = false;
                let mut res = respond::error(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    HEADERS_TOO_LARGE,
                    "the request head is larger than the proxy accepts",
                );
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                ctx.set_response(res);
            }
            Ok(arrival) if arrival.redirect => {
                policy = false;
                let location = ctx.uri().to_string();
                ctx.set_response(respond::redirect(StatusCode::PERMANENT_REDIRECT, &location));
            }
            Ok(_) if shared.identity_headers && ctx.uri().path() == crate::assertion::JWKS_PATH => {
                policy = false;
                let mut res = Response::new(body::full(shared.signer.jwks()));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                ctx.set_response(res);
            }
            Ok(arrival) => {
                ctx.set_arrival(arrival);
                if shared.identity_headers {
                    crate::assertion::strip(ctx.req_headers_mut());
                }
            }
            Err(refusal) => {
                policy = false;
                use portcullis_canon::Refusal;
                shared.metrics.client_error(match refusal {
                    Refusal::Path(_) => ClientErrorKind::Path,
                    Refusal::Host(_) => ClientErrorKind::Host,
                    Refusal::Framing => ClientErrorKind::Body,
                    Refusal::Underscore => ClientErrorKind::Host,
                });
                let mut res =
                    respond::error(refusal.status(), refusal.code(), &refusal.to_string());
                if refusal == Refusal::Framing {
                    // The body's end is unknown: the connection cannot go on.
                    res.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                ctx.set_response(res);
            }
        }

        // `close-connection`: logged, then the connection is dropped.
        let closed = |ctx: &RequestCtx| {
            let target = target.as_ref().map_or("/", |p| p.as_str());
            log(ctx, &method, target, version, None, started);
            Err(Closed)
        };
        let mut outcome = if !policy {
            Outcome::Respond
        } else if too_large {
            ctx.set_response(respond::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                BODY_TOO_LARGE,
                "the request body is larger than the proxy accepts",
            ));
            Outcome::Respond
        } else {
            pipeline.on_request(&mut ctx).await
        };
        // HTTP/1 clients send one request at a time and keep their own
        // upstream connection; HTTP/2 streams and other upstreams share the
        // pool.
        let kept = h1.then_some(&kept);
        let upstream = match outcome {
            Outcome::Continue => match &site.upstream {
                Some(up) => {
                    if shared.identity_headers
                        && let Some(identity) = ctx.identity().cloned()
                    {
                        let host = ctx.authority().to_owned();
                        crate::assertion::to_upstream(
                            ctx.req_headers_mut(),
                            &identity,
                            &shared.signer,
                            &host,
                        );
                    }
                    Some((up, kept))
                }
                None => {
                    ctx.set_response(respond::error(
                        StatusCode::BAD_GATEWAY,
                        UPSTREAM_CONNECT,
                        "this endpoint has no upstream",
                    ));
                    None
                }
            },
            Outcome::Forward => {
                let name = ctx.forward().unwrap_or("");
                match shared.internal.iter().find(|(n, _)| n == name) {
                    Some((_, up)) => Some((up, None)),
                    None => {
                        ctx.set_response(respond::error(
                            StatusCode::BAD_GATEWAY,
                            "ERR_NGROK_3200",
                            "no such internal endpoint",
                        ));
                        None
                    }
                }
            }
            Outcome::Respond => None,
            Outcome::Close => {
                return closed(&ctx);
            }
        };
        if let Some((upstream, kept)) = upstream {
            let keep = pipeline.has_response_rules() || pipeline.has_event_rules();
            let via = Via {
                upstream,
                kept,
                upgrade,
                drain: &site.drain,
            };
            let res = forward(&mut ctx, via, &deadlines, &shared, keep, started).await;
            ctx.upstream_answered(res.status());
            ctx.set_response(res);
        }
        if policy && pipeline.has_response_rules() {
            outcome = pipeline.on_response(&mut ctx).await;
            if outcome == Outcome::Close {
                return closed(&ctx);
            }
        }
        let res = ctx.take_response().unwrap_or_else(|| {
            respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                "the policy left no response",
            )
        });
        // `on_event_stream_message`: the events go through the phase as
        // they stream.
        let res =
            if policy && pipeline.has_event_rules() && crate::event_stream::is_event_stream(&res) {
                crate::event_stream::rewrite(res, ctx.for_events(), pipeline.clone())
            } else {
                res
            };
        shared
            .metrics
            .record_request(res.status().as_u16(), started.elapsed());
        log(
            &ctx,
            &method,
            target.as_ref().map_or("/", |p| p.as_str()),
            version,
            Some(&res),
            started,
        );
        Ok(res.map(|b| Tracked::new(b, deadlines)))
    }
}

/// A failure of the client's request body (its framing, or its
/// connection), told apart from the upstream's failures: it is answered
/// 400, not 502, and counted as the client's.
#[derive(Debug)]
pub(crate) struct ClientBody(pub(crate) BoxError);

impl std::fmt::Display for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body failed: {}", self.0)
    }
}

impl std::error::Error for ClientBody {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// About how many bytes `req`'s head took on the wire: the request line
/// and each field line.
fn head_bytes<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + 12;
    req.headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// Where a request goes and how.
struct Via<'a> {
    upstream: &'a Upstream,
    /// The client connection's own upstream connection (HTTP/1).
    kept: Option<&'a Arc<Kept>>,
    /// The protocol the client asked to switch to.
    upgrade: Option<Upgrade>,
    /// The listener's drain, which a tunnel joins.
    drain: &'a Drain,
}

/// Sends the request in `ctx` where `via` says and returns its response,
/// or the error response that stands for its failure.
async fn forward(
    ctx: &mut RequestCtx,
    via: Via<'_>,
    deadlines: &Deadlines,
    shared: &Shared,
    keep_request: bool,
    started: Instant,
) -> Response<Body> {
    let Via {
        upstream,
        kept,
        upgrade,
        drain,
    } = via;
    // The forwarding headers' values, made before the request is taken
    // out of the context: the client's address, the scheme, the host.
    let forwarded = Forwarded {
        client_ip: ctx.conn().client_ip_value().clone(),
        proto: if ctx.scheme() == "https" {
            HeaderValue::from_static("https")
        } else {
            HeaderValue::from_static("http")
        },
        host: ctx
            .req_headers()
            .get(header::HOST)
            .cloned()
            .or_else(|| HeaderValue::from_str(ctx.authority()).ok()),
    };
    let mut req = ctx.take_request(keep_request);
    // Origin form: the upstream sees the path and query only.
    let target = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(target);
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    portcullis_canon::strip_hop_by_hop(headers);
    if let Some(host) = &forwarded.host
        && !headers.contains_key(header::HOST)
    {
        headers.insert(header::HOST, host.clone());
    }
    // A kept connection writes the forwarding headers with the head; the
    // other ways carry them in the header map.
    if kept.is_none() || upgrade.is_some() {
        forwarded.apply(headers);
    }
    if let Some(u) = &upgrade {
        u.ask(headers);
    }

    let (sent, switched) = match upgrade {
        // An upgrade goes on a connection of its own: it may become a
        // tunnel, which counts as an open connection of the listener until
        // it closes (in the metrics, and for a graceful stop, which waits
        // for it up to the grace period).
        Some(u) => send_upgrade(shared, upstream, req, u, drain).await,
        // A kept connection's deadline is its client connection's (an
        // HTTP/1 connection's deadlines are on); a pooled call gets a timer
        // of its own.
        None => match kept {
            Some(kept) => {
                let send = shared
                    .upstreams
                    .send_kept(kept, upstream, req, &forwarded, started);
                (deadlines.upstream(std::pin::pin!(send)).await, None)
            }
            None => (send_pooled(shared, upstream, req).await, None),
        },
    };
    match sent {
        Some(Ok(res)) => {
            let (mut parts, body) = res.into_parts();
            portcullis_canon::strip_hop_by_hop(&mut parts.headers);
            if let Some(s) = switched {
                s.restore(&mut parts.headers);
            }
            parts.headers.remove(&respond::ERROR_CODE);
            Response::from_parts(parts, body)
        }
        Some(Err(Failure::Connect(e))) => {
            shared.metrics.upstream_error(UpstreamErrorKind::Connect);
            tracing::warn!(upstream = %upstream.authority, "upstream connection failed: {e}");
            respond::error(
                StatusCode::BAD_GATEWAY,
                UPSTREAM_CONNECT,
                "the upstream could not be reached",
            )
        }
        Some(Err(Failure::BodyLimit)) => respond::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            BODY_TOO_LARGE,
            "the request body is larger than the proxy accepts",
        ),
        Some(Err(Failure::ClientBody(e))) => {
            shared.metrics.client_error(ClientErrorKind::Body);
            tracing::debug!("the client's request body failed: {e}");
            respond::error(
                StatusCode::BAD_REQUEST,
                CLIENT_BODY,
                "the request body is not valid HTTP",
            )
        }
        Some(Err(Failure::Protocol(e))) => {
            shared.metrics.upstream_error(UpstreamErrorKind::Protocol);
            tracing::warn!(upstream = %upstream.authority, "upstream failed: {e}");
            respond::error(
                StatusCode::BAD_GATEWAY,
                UPSTREAM_PROTOCOL,
                "the upstream sent no valid response",
            )
        }
        None => {
            shared.metrics.upstream_error(UpstreamErrorKind::Timeout);
            respond::error(
                StatusCode::GATEWAY_TIMEOUT,
                UPSTREAM_TIMEOUT,
                "the upstream did not answer in time",
            )
        }
    }
}

/// What an upstream call came to: a response, a failure, or `None` when
/// the upstream's deadline passed first.
type Sent = Option<Result<Response<Body>, Failure>>;

/// A boxed future, for the paths off the common one.
type Boxed<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends an upgrade request on a connection of its own, and splices a
/// `101` into a tunnel. The rare paths are boxed and not inlined, so that
/// their futures take no room in `forward`'s frame and state.
#[inline(never)]
fn send_upgrade<'a>(
    shared: &'a Shared,
    upstream: &'a Upstream,
    req: Request<Body>,
    upgrade: Upgrade,
    drain: &'a Drain,
) -> Boxed<'a, (Sent, Option<tunnel::Switched>)> {
    Box::pin(async move {
        let send = shared.upstreams.send_alone(upstream, req);
        match tokio::time::timeout(shared.timeouts.upstream, send).await {
            Ok(Ok(mut res)) => {
                let opened = shared.metrics.connection_opened();
                let idle = tunnel::Idle {
                    after: shared.timeouts.tunnel_idle,
                    metrics: shared.metrics.clone(),
                };
                let switched = upgrade.splice(&mut res, drain.watch(), opened, idle);
                (Some(Ok(res.map(body::boxed))), switched)
            }
            Ok(Err(e)) => (Some(Err(e)), None),
            Err(_) => (None, None),
        }
    })
}

/// Sends a request through the pool, with a timer of its own.
#[inline(never)]
fn send_pooled<'a>(
    shared: &'a Shared,
    upstream: &'a Upstream,
    req: Request<Body>,
) -> Boxed<'a, Sent> {
    Box::pin(async move {
        let send = shared.upstreams.send_pooled(upstream, req);
        tokio::time::timeout(shared.timeouts.upstream, send)
            .await
            .ok()
    })
}

/// One access-log line per exchange.
pub(crate) fn log(
    ctx: &RequestCtx,
    method: &http::Method,
    target: &str,
    version: Version,
    res: Option<&Response<Body>>,
    started: Instant,
) {
    log_status(
        ctx,
        method,
        target,
        version,
        res.map_or(0, |r| r.status().as_u16()),
        res.and_then(|r| r.headers().get(&respond::ERROR_CODE))
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        started,
    );
}

/// [`log`], with the status and error code given.
pub(crate) fn log_status(
    ctx: &RequestCtx,
    method: &http::Method,
    target: &str,
    version: Version,
    status: u16,
    error_code: &str,
    started: Instant,
) {
    let policy_logs = policy_logs(ctx);
    tracing::info!(
        target: "portcullis::access",
        client = ctx.conn().client_ip(),
        method = %method,
        target,
        version = ?version,
        status,
        duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        error_code,
        policy_logs = policy_logs.as_str(),
    );
}

/// What the exchange's `log` actions recorded, as a JSON array (empty when
/// none did).
fn policy_logs(ctx: &RequestCtx) -> String {
    if ctx.logs().is_empty() {
        String::new()
    } else {
        serde_json::Value::Array(ctx.logs().to_vec()).to_string()
    }
}

/// Runs until `shutdown` resolves, then shuts down gracefully.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let running = start(config).await?;
    for addr in &running.addrs {
        tracing::info!("listening on {addr}");
    }
    if let Some(addr) = running.admin {
        tracing::info!("admin (/metrics, /healthz) on {addr}");
    }
    shutdown.await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
