//! Protocol upgrades through the proxy: WebSocket, or another protocol an
//! endpoint's `upgrades` allows, that an HTTP/1.1 client asks to switch to
//! with `Connection: upgrade` and `Upgrade`.
//!
//! Only the protocols allowed are tunnelled (`websocket` unless
//! configured, as Envoy's `upgrade_configs` is an allow-list); `h2c` never
//! is, even if named: a backend that accepts it would speak HTTP/2 with
//! the client straight through the tunnel, past every later request's
//! policy (Bishop Fox's h2c smuggling). Another upgrade is an ordinary
//! request, forwarded without its `Upgrade`.
//!
//! The request runs the policy like any other, so a rule can deny it or
//! add headers. It then goes to the upstream on a connection of its own
//! (never the client connection's kept one, nor a pooled one: after a
//! `101 Switching Protocols` that connection is no longer HTTP) with its
//! `Connection` and `Upgrade` headers. When the upstream answers `101`,
//! the proxy answers `101` too and splices the two connections: bytes
//! pass both ways until either side closes. Any other answer is an
//! ordinary response, and the client connection stays HTTP.
//!
//! A tunnel counts as an open connection (`portcullis_connections_open`),
//! and a graceful stop waits for it up to the grace period, then closes
//! it. A tunnel in which neither side sends anything for `tunnel_idle`
//! (5 minutes by default, Envoy's stream idle timeout) is closed, and
//! counted (`portcullis_connections_closed_total{reason="tunnel_idle"}`). Not built: WebSocket over HTTP/2 (RFC 8441's extended `CONNECT`).

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::drain::Watch;
use crate::metrics::{CloseReason, ConnectionGuard, Metrics};

/// What a client asked to switch to, and its side of the tunnel once the
/// switch happens.
pub(crate) struct Upgrade {
    protocol: HeaderValue,
    client: OnUpgrade,
}

/// The upgrade `req` asks for, if any and if `allowed` names it: HTTP/1.1
/// with `Connection: upgrade` and an `Upgrade` of one protocol.
pub(crate) fn requested(req: &mut Request<Incoming>, allowed: &[String]) -> Option<Upgrade> {
    if req.version() != Version::HTTP_11 || !names_upgrade(req.headers()) {
        return None;
    }
    let mut fields = req.headers().get_all(header::UPGRADE).iter();
    let protocol = fields.next()?.clone();
    if fields.next().is_some() {
        return None;
    }
    // One protocol, with or without a version (`websocket`, `foo/2`).
    let name = protocol.to_str().ok()?.trim();
    let name = name.split('/').next().unwrap_or(name);
    if name.eq_ignore_ascii_case("h2c") || !allowed.iter().any(|a| name.eq_ignore_ascii_case(a)) {
        return None;
    }
    Some(Upgrade {
        protocol,
        client: hyper::upgrade::on(req),
    })
}

fn names_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

impl Upgrade {
    /// Puts back the two headers the hop-by-hop stripping removed.
    pub(crate) fn ask(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, self.protocol.clone());
    }

    /// If the upstream agreed (`101`), starts the tunnel, which runs once
    /// the client has the `101` too. Otherwise `None`: the exchange is an
    /// ordinary one.
    /// The tunnel holds `watch` and `open` while it runs: it counts as an
    /// open connection, and closes when the listener's grace period ends.
    pub(crate) fn splice(
        self,
        res: &mut Response<Incoming>,
        watch: Watch,
        open: ConnectionGuard,
        idle: Idle,
    ) -> Option<Switched> {
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            return None;
        }
        let switched = Switched {
            protocol: res.headers().get(header::UPGRADE).cloned(),
        };
        let upstream = hyper::upgrade::on(res);
        let client = self.client;
        tokio::spawn(async move {
            let _open = open;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(both) => both,
                Err(e) => {
                    tracing::debug!("upgrade failed: {e}");
                    return;
                }
            };
            let seen = Arc::new(Seen::new());
            let mut client = Active::new(TokioIo::new(client), seen.clone());
            let mut upstream = Active::new(TokioIo::new(upstream), seen.clone());
            tokio::select! {
                copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                    Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
                    Err(e) => tracing::debug!("upgraded connection failed: {e}"),
                },
                () = watch.forced() => tracing::debug!("upgraded connection closed by the shutdown"),
                () = seen.quiet_for(idle.after) => {
                    idle.metrics.closed(CloseReason::TunnelIdle);
                    tracing::debug!("upgraded connection closed: idle");
                }
            }
        });
        Some(switched)
    }
}

/// How long a tunnel may stay silent, and where its close is counted.
pub(crate) struct Idle {
    pub(crate) after: Duration,
    pub(crate) metrics: Arc<Metrics>,
}

/// When a tunnel last carried a byte, either way: microseconds since it
/// opened.
struct Seen {
    origin: Instant,
    last: AtomicU64,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has passed for `quiet`.
    async fn quiet_for(&self, quiet: Duration) {
        loop {
            let last = self.origin + Duration::from_micros(self.last.load(Ordering::Relaxed));
            let deadline = last + quiet;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// One side of a tunnel, noting each read that brings bytes.
struct Active<IO> {
    io: IO,
    seen: Arc<Seen>,
}

impl<IO> Active<IO> {
    fn new(io: IO, seen: Arc<Seen>) -> Active<IO> {
        Active { io, seen }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Active<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.seen.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Active<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A `101` from the upstream.
pub(crate) struct Switched {
    protocol: Option<HeaderValue>,
}

impl Switched {
    /// Puts back the response's `Connection` and `Upgrade` headers, which
    /// the hop-by-hop stripping removed.
    pub(crate) fn restore(&self, headers: &mut HeaderMap) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(p) = &self.protocol {
            headers.insert(header::UPGRADE, p.clone());
        }
    }
}
