//! The deadlines of a client connection, kept with one timer per
//! connection instead of two per request.
//!
//! A connection is always in one of three phases:
//! - waiting for a request: since it opened, the first head (HTTP/1) or
//!   stream (HTTP/2) must arrive within `header_read`; since its last
//!   response was sent (HTTP/1) or its last stream closed (HTTP/2), the
//!   next within `idle`; else the connection is closed (slow clients, idle
//!   keep-alive connections, HTTP/2 connections that open no stream);
//! - waiting for the upstream's response head, since the request was
//!   forwarded (HTTP/1): it must arrive within `upstream`, or the client
//!   gets a 504;
//! - anything else (an action at work, a response on its way): no deadline
//!   here; the response body's own reads and the connection's writes have
//!   theirs ([`Tracked`] and [`Timed`]).
//!
//! A phase change is two stores. The one timer is set once; when it fires
//! and the phase changed since it was set, it is set again to the deadline
//! of the phase the connection is in now. Deadlines stay exact, and a busy
//! connection costs one timer reset per `header_read` period instead of a
//! timer registered and removed twice per request (hyper's header-read
//! timer and a `tokio::time::timeout` around the upstream call), which cost
//! about 2,500 instructions per request.
//!
//! HTTP/2 connections, whose streams overlap, count their open streams:
//! the connection waits for a request only while none is open, and each
//! upstream call has a timeout of its own.
//!
//! [`Watched`] polls the timer with the connection, and tells the
//! connection to finish when its listener drains (`drain.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use portcullis_actions::body::{Body, BoxError};
use tokio::time::Sleep;

use crate::config::Timeouts;
use crate::drain::Watch;
use crate::metrics::{CloseReason, Metrics, UpstreamErrorKind};

/// The phases, in the top two bits of [`Deadlines::state`].
const IDLE: u64 = 0;
const UPSTREAM: u64 = 1 << 62;
const BUSY: u64 = 2 << 62;
const PHASE: u64 = 3 << 62;

/// One connection's phase and deadlines.
#[derive(Debug)]
pub(crate) struct Deadlines {
    /// The phase, and when it began in microseconds since `origin`.
    state: AtomicU64,
    /// The upstream's deadline passed: the forward in progress gives up.
    expired: AtomicBool,
    /// A request has arrived: the wait for the next one is `idle`'s.
    served: AtomicBool,
    /// HTTP/2: the streams open. `None` for HTTP/1.
    streams: Option<AtomicU32>,
    origin: Instant,
    header_read: Duration,
    idle: Duration,
    upstream: Duration,
    /// Between two reads of a response body from the upstream.
    upstream_read: Duration,
    pub(crate) metrics: Arc<Metrics>,
}

impl Deadlines {
    /// A connection that opened now: waiting for its first request.
    pub(crate) fn new(timeouts: &Timeouts, h2: bool, metrics: Arc<Metrics>) -> Deadlines {
        Deadlines {
            state: AtomicU64::new(IDLE),
            expired: AtomicBool::new(false),
            served: AtomicBool::new(false),
            streams: h2.then(|| AtomicU32::new(0)),
            origin: Instant::now(),
            header_read: timeouts.header_read,
            idle: timeouts.idle,
            upstream: timeouts.upstream,
            upstream_read: timeouts.upstream_read,
            metrics,
        }
    }

    /// The shortest deadline a phase may have.
    fn shortest(&self) -> Duration {
        self.header_read.min(self.upstream).min(self.idle)
    }

    fn set(&self, phase: u64) {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(!PHASE);
        self.state
            .store(phase | (micros & !PHASE), Ordering::Relaxed);
    }

    #[cfg(test)]
    fn phase(&self) -> u64 {
        self.state.load(Ordering::Relaxed) & PHASE
    }

    /// A request head arrived (HTTP/1), or a stream opened (HTTP/2): the
    /// exchange lasts until the returned guard is dropped, with the
    /// response body it moves into ([`Tracked`]), or earlier, when the
    /// exchange is abandoned (a stream the client resets, a connection
    /// that fails), so that no abandoned exchange keeps the connection
    /// from ever being idle.
    pub(crate) fn begin(self: Arc<Self>) -> Exchange {
        self.request();
        Exchange(self)
    }

    fn request(&self) {
        if let Some(streams) = &self.streams {
            streams.fetch_add(1, Ordering::Relaxed);
        }
        if !self.served.load(Ordering::Relaxed) {
            self.served.store(true, Ordering::Relaxed);
        }
        self.state.store(BUSY, Ordering::Relaxed);
    }

    /// Runs `send`, the call to the upstream, and gives up with `None` when
    /// the upstream's deadline passes first. `send` is pinned by the caller
    /// and borrowed: a large future taken by value would be copied in.
    pub(crate) async fn upstream<F: Future>(&self, mut send: Pin<&mut F>) -> Option<F::Output> {
        self.expired.store(false, Ordering::Relaxed);
        self.set(UPSTREAM);
        // The timer runs in this connection's task and polls this future
        // right after it sets `expired`.
        let out = std::future::poll_fn(|cx| {
            if self.expired.load(Ordering::Relaxed) {
                return Poll::Ready(None);
            }
            send.as_mut().poll(cx).map(Some)
        })
        .await;
        self.state.store(BUSY, Ordering::Relaxed);
        out
    }

    /// The response was sent (or dropped): waiting for the next head, or,
    /// on HTTP/2, for the next stream once none is open.
    fn response_done(&self) {
        match &self.streams {
            Some(streams) => {
                if streams.fetch_sub(1, Ordering::Relaxed) == 1 {
                    self.set(IDLE);
                }
            }
            None => self.set(IDLE),
        }
    }

    /// Whether an HTTP/2 stream is open (a late `IDLE` store may race a
    /// new stream's `BUSY`; the count decides).
    fn streams_open(&self) -> bool {
        self.streams
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed) > 0)
    }

    /// What the timer does when it fires at `now`: close the connection,
    /// or expire the upstream call, and say when to look again. That is
    /// the current phase's deadline, or sooner: a phase that begins after
    /// `now` ends no sooner than `now` plus the shortest timeout, and the
    /// timer must not sleep past it.
    fn check(&self, now: Instant) -> Check {
        let state = self.state.load(Ordering::Relaxed);
        let since = self.origin + Duration::from_micros(state & !PHASE);
        let mut next = now + self.shortest();
        match state & PHASE {
            IDLE if !self.streams_open() => {
                let (limit, reason) = if self.served.load(Ordering::Relaxed) {
                    (self.idle, CloseReason::Idle)
                } else {
                    (self.header_read, CloseReason::HeaderRead)
                };
                let deadline = since + limit;
                if deadline <= now {
                    return Check::Close(reason);
                }
                next = next.min(deadline);
            }
            UPSTREAM => {
                let deadline = since + self.upstream;
                if deadline <= now {
                    self.expired.store(true, Ordering::Relaxed);
                } else {
                    next = next.min(deadline);
                }
            }
            _ => {}
        }
        Check::At(next)
    }
}

enum Check {
    /// Look again at this instant.
    At(Instant),
    /// No request in time: close the connection.
    Close(CloseReason),
}

/// A client connection (hyper's), its timer and its listener's drain,
/// polled together.
pub(crate) struct Watched<C> {
    conn: Pin<Box<C>>,
    timer: Pin<Box<Sleep>>,
    deadlines: Arc<Deadlines>,
    drain: Watch,
    /// Told to finish: the graceful shutdown has begun.
    finishing: bool,
}

/// A hyper server connection, which can be told to finish the request in
/// flight and close.
pub(crate) trait Finish: Future<Output = Result<(), hyper::Error>> {
    fn finish(self: Pin<&mut Self>);
}

impl<I, S, B> Finish for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> Finish for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: HttpBody + 'static,
    B::Error: Into<BoxError>,
    E: Http2ServerConnExec<S::Future, B>,
{
    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<C: Finish> Watched<C> {
    pub(crate) fn new(conn: C, deadlines: Arc<Deadlines>, drain: Watch) -> Watched<C> {
        let first = deadlines.origin + deadlines.shortest();
        Watched {
            conn: Box::pin(conn),
            timer: Box::pin(tokio::time::sleep_until(first.into())),
            deadlines,
            drain,
            finishing: false,
        }
    }
}

impl<C: Finish> Future for Watched<C> {
    /// `Err`: closed for want of a request, and why.
    type Output = Result<Result<(), hyper::Error>, CloseReason>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        while this.timer.as_mut().poll(cx).is_ready() {
            match this.deadlines.check(Instant::now()) {
                Check::At(at) => this.timer.as_mut().reset(at.into()),
                Check::Close(reason) => return Poll::Ready(Err(reason)),
            }
        }
        if !this.finishing && this.drain.stopping(cx) {
            this.finishing = true;
            this.conn.as_mut().finish();
        }
        this.conn.as_mut().poll(cx).map(Ok)
    }
}

/// One exchange of a connection, from its request head until its
/// response is sent or it is abandoned; see [`Deadlines::begin`].
pub(crate) struct Exchange(Arc<Deadlines>);

impl std::ops::Deref for Exchange {
    type Target = Deadlines;

    fn deref(&self) -> &Deadlines {
        &self.0
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.response_done();
    }
}

/// A response body that marks the end of its exchange when dropped (hyper
/// drops it once it is sent, or when the connection fails), and that gives
/// up on an upstream that stops sending it: a wait of more than
/// `upstream_read` between two frames ends the body with an error, which
/// cuts the client's response short (the connection closes, or the
/// HTTP/2 stream is reset) rather than holding it open forever. The timer
/// is made only when the body is not ready at once.
pub(crate) struct Tracked {
    body: Body,
    deadlines: Exchange,
    stall: Option<Pin<Box<Sleep>>>,
}

impl Tracked {
    pub(crate) fn new(body: Body, exchange: Exchange) -> Tracked {
        Tracked {
            body,
            deadlines: exchange,
            stall: None,
        }
    }
}

/// The upstream stopped sending a response body.
#[derive(Debug)]
pub(crate) struct ReadTimeout;

impl std::fmt::Display for ReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream stopped sending the response body")
    }
}

impl std::error::Error for ReadTimeout {}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending => {
                let wait = this.deadlines.upstream_read;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
                if stall.as_mut().poll(cx).is_ready() {
                    this.stall = None;
                    this.deadlines
                        .metrics
                        .upstream_error(UpstreamErrorKind::ReadTimeout);
                    tracing::warn!("the upstream stopped sending a response body; cut short");
                    return Poll::Ready(Some(Err(Box::new(ReadTimeout))));
                }
                Poll::Pending
            }
            ready => {
                if let Some(stall) = &mut this.stall {
                    let next = tokio::time::Instant::now() + this.deadlines.upstream_read;
                    stall.as_mut().reset(next);
                }
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client connection's I/O, whose writes may not wait longer than
/// `send`: a client that stops reading (a full TCP window) is
/// disconnected, rather than holding its connection, its response and
/// its upstream connection forever (nginx's `send_timeout`). The timer is
/// made only when a write waits.
pub(crate) struct Timed<IO> {
    io: IO,
    send: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
    /// Counts the bytes each way (`conn.bytes_in`, `conn.bytes_out`).
    conn: Arc<portcullis_actions::Conn>,
}

impl<IO> Timed<IO> {
    pub(crate) fn new(
        io: IO,
        send: Duration,
        metrics: Arc<Metrics>,
        conn: Arc<portcullis_actions::Conn>,
    ) -> Timed<IO> {
        Timed {
            io,
            send,
            stall: None,
            metrics,
            conn,
        }
    }

    /// Passes a write's progress through; a write that has waited `send`
    /// fails.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stall = None;
            return polled;
        }
        let send = self.send;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(send)));
        if stall.as_mut().poll(cx).is_ready() {
            self.metrics.closed(CloseReason::Send);
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Timed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        self.conn
            .count(false, buf.filled().len().saturating_sub(before));
        polled
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Timed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.conn.count(true, n);
        }
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.conn.count(true, n);
        }
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadlines_with(header_read: u64, idle: u64, upstream: u64, h2: bool) -> Deadlines {
        let timeouts = Timeouts {
            header_read: Duration::from_secs(header_read),
            idle: Duration::from_secs(idle),
            upstream: Duration::from_secs(upstream),
            ..Timeouts::default()
        };
        Deadlines::new(&timeouts, h2, Arc::new(Metrics::new()))
    }

    fn deadlines() -> Deadlines {
        deadlines_with(30, 75, 60, false)
    }

    fn at(check: Check) -> Option<Instant> {
        match check {
            Check::At(at) => Some(at),
            Check::Close(_) => None,
        }
    }

    fn closed(check: Check) -> Option<CloseReason> {
        match check {
            Check::At(_) => None,
            Check::Close(reason) => Some(reason),
        }
    }

    #[test]
    fn an_idle_connection_closes_at_its_header_deadline() {
        let d = deadlines();
        let opened = d.origin;
        assert_eq!(at(d.check(opened)), Some(opened + d.header_read));
        assert_eq!(
            closed(d.check(opened + d.header_read)),
            Some(CloseReason::HeaderRead)
        );
    }

    #[test]
    fn a_busy_connection_is_looked_at_again_later() {
        let d = deadlines();
        d.request();
        let now = d.origin + Duration::from_secs(100);
        assert_eq!(at(d.check(now)), Some(now + d.header_read));
    }

    fn since(d: &Deadlines) -> Instant {
        d.origin + Duration::from_micros(d.state.load(Ordering::Relaxed) & !PHASE)
    }

    #[test]
    fn the_upstream_deadline_expires_the_call_in_progress() {
        let d = deadlines_with(30, 75, 10, false);
        d.request();
        d.set(UPSTREAM);
        let started = since(&d);
        assert_eq!(at(d.check(started)), Some(started + d.upstream));
        assert!(!d.expired.load(Ordering::Relaxed));
        assert!(at(d.check(started + d.upstream)).is_some());
        assert!(d.expired.load(Ordering::Relaxed));
    }

    #[test]
    fn the_timer_never_sleeps_past_a_deadline_that_may_begin_meanwhile() {
        // Idle, with a long header deadline and a short upstream one: a
        // request may arrive any moment and start the upstream's clock.
        let d = deadlines_with(30, 75, 1, false);
        assert_eq!(at(d.check(d.origin)), Some(d.origin + d.upstream));
        // Waiting on the upstream, with a long upstream deadline and a
        // short header one: the response may come and the idle clock start.
        let d = deadlines_with(1, 75, 60, false);
        d.set(UPSTREAM);
        let started = since(&d);
        assert_eq!(at(d.check(started)), Some(started + d.header_read));
    }

    #[test]
    fn after_a_response_the_wait_for_the_next_head_is_idle() {
        let d = Arc::new(deadlines_with(30, 75, 60, false));
        drop(Tracked::new(
            portcullis_actions::body::empty(),
            d.clone().begin(),
        ));
        assert_eq!(d.phase(), IDLE);
        let done = since(&d);
        // Past the header deadline, still open: the next head has `idle`.
        assert!(at(d.check(done + d.header_read)).is_some_and(|t| t <= done + d.idle));
        assert_eq!(closed(d.check(done + d.idle)), Some(CloseReason::Idle));
    }

    #[test]
    fn an_http2_connection_is_idle_only_with_no_stream_open() {
        let d = Arc::new(deadlines_with(30, 75, 60, true));
        // No stream yet: the header deadline.
        assert_eq!(
            closed(d.check(d.origin + d.header_read)),
            Some(CloseReason::HeaderRead)
        );
        let first = d.clone().begin();
        let second = d.clone().begin();
        drop(Tracked::new(portcullis_actions::body::empty(), first));
        // One stream still open: no deadline, however late.
        let late = d.origin + Duration::from_secs(1000);
        assert!(at(d.check(late)).is_some());
        // A stream abandoned before its response (reset by the client)
        // ends its exchange too.
        drop(second);
        assert_eq!(d.phase(), IDLE);
        let done = since(&d);
        assert!(at(d.check(done + d.header_read)).is_some());
        assert_eq!(closed(d.check(done + d.idle)), Some(CloseReason::Idle));
    }

    /// A body that sends one frame, then nothing, ever.
    struct Stalls(bool);

    impl HttpBody for Stalls {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if std::mem::replace(&mut self.0, true) {
                return Poll::Pending;
            }
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"part")))))
        }
    }

    #[tokio::test]
    async fn a_stalled_response_body_is_cut_short() {
        let timeouts = Timeouts {
            upstream_read: Duration::from_millis(50),
            ..Timeouts::default()
        };
        let metrics = Arc::new(Metrics::new());
        let d = Arc::new(Deadlines::new(&timeouts, false, metrics.clone()));
        let body = portcullis_actions::body::boxed(Stalls(false));
        let mut tracked = Tracked::new(body, d.begin());
        let frame = http_body_util::BodyExt::frame(&mut tracked).await;
        assert!(matches!(frame, Some(Ok(_))));
        let err = http_body_util::BodyExt::frame(&mut tracked)
            .await
            .expect("a frame")
            .expect_err("cut short");
        assert!(err.is::<ReadTimeout>(), "{err}");
        assert!(
            metrics
                .render(&[])
                .contains("portcullis_upstream_errors_total{kind=\"read_timeout\"} 1")
        );
    }
}
