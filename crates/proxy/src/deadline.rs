//! The deadlines of an HTTP/1 client connection, kept with one timer per
//! connection instead of two per request.
//!
//! A connection is always in one of three phases:
//! - waiting for a request head, since it opened or since its last
//!   response was sent: it must arrive within `header_read`, or the
//!   connection is closed (slow clients, idle keep-alive connections);
//! - waiting for the upstream's response head, since the request was
//!   forwarded: it must arrive within `upstream`, or the client gets a 504;
//! - anything else (an action at work, a response on its way): no deadline.
//!
//! A phase change is two stores. The one timer is set once; when it fires
//! and the phase changed since it was set, it is set again to the deadline
//! of the phase the connection is in now. Deadlines stay exact, and a busy
//! connection costs one timer reset per `header_read` period instead of a
//! timer registered and removed twice per request (hyper's header-read
//! timer and a `tokio::time::timeout` around the upstream call), which cost
//! about 2,500 instructions per request.
//!
//! HTTP/2 connections, whose streams overlap, opt out ([`Deadlines::off`])
//! and keep hyper's own keep-alive handling and a timeout per upstream call.
//!
//! [`Watched`] polls the timer with the connection, and tells the
//! connection to finish when its listener drains (`drain.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

use crate::drain::Watch;

/// The phases, in the top two bits of [`Deadlines::state`].
const IDLE: u64 = 0;
const UPSTREAM: u64 = 1 << 62;
const BUSY: u64 = 2 << 62;
const OFF: u64 = 3 << 62;
const PHASE: u64 = 3 << 62;

/// One connection's phase and deadlines.
#[derive(Debug)]
pub(crate) struct Deadlines {
    /// The phase, and when it began in microseconds since `origin`.
    state: AtomicU64,
    /// The upstream's deadline passed: the forward in progress gives up.
    expired: AtomicBool,
    origin: Instant,
    header_read: Duration,
    upstream: Duration,
}

impl Deadlines {
    /// A connection that opened now: waiting for its first request head.
    pub(crate) fn new(header_read: Duration, upstream: Duration) -> Deadlines {
        Deadlines {
            state: AtomicU64::new(IDLE),
            expired: AtomicBool::new(false),
            origin: Instant::now(),
            header_read,
            upstream,
        }
    }

    fn set(&self, phase: u64) {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(!PHASE);
        self.state
            .store(phase | (micros & !PHASE), Ordering::Relaxed);
    }

    fn phase(&self) -> u64 {
        self.state.load(Ordering::Relaxed) & PHASE
    }

    /// A request head arrived.
    pub(crate) fn request(&self) {
        if self.phase() != OFF {
            self.state.store(BUSY, Ordering::Relaxed);
        }
    }

    /// The connection is HTTP/2: no deadlines from here on.
    pub(crate) fn off(&self) {
        self.state.store(OFF, Ordering::Relaxed);
    }

    /// Whether the deadlines apply (the connection is HTTP/1).
    pub(crate) fn on(&self) -> bool {
        self.phase() != OFF
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

    /// The response was sent (or dropped): waiting for the next head.
    fn response_done(&self) {
        if self.phase() != OFF {
            self.set(IDLE);
        }
    }

    /// What the timer does when it fires at `now`: close the connection,
    /// or expire the upstream call, and say when to look again. That is
    /// the current phase's deadline, or sooner: a phase that begins after
    /// `now` ends no sooner than `now` plus the shorter timeout, and the
    /// timer must not sleep past it.
    fn check(&self, now: Instant) -> Check {
        let state = self.state.load(Ordering::Relaxed);
        let since = self.origin + Duration::from_micros(state & !PHASE);
        let mut next = now + self.header_read.min(self.upstream);
        match state & PHASE {
            IDLE => {
                let deadline = since + self.header_read;
                if deadline <= now {
                    return Check::Close;
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
    /// No request head in time: close the connection.
    Close,
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
        let first = deadlines.origin + deadlines.header_read.min(deadlines.upstream);
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
    /// `None`: closed for want of a request head.
    type Output = Option<Result<(), hyper::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.deadlines.on() {
            while this.timer.as_mut().poll(cx).is_ready() {
                match this.deadlines.check(Instant::now()) {
                    Check::At(at) => this.timer.as_mut().reset(at.into()),
                    Check::Close => return Poll::Ready(None),
                }
            }
        }
        if !this.finishing && this.drain.stopping(cx) {
            this.finishing = true;
            this.conn.as_mut().finish();
        }
        this.conn.as_mut().poll(cx).map(Some)
    }
}

/// A response body that marks the end of its exchange when dropped: hyper
/// drops it once it is sent, or when the connection fails.
pub(crate) struct Tracked {
    body: Body,
    deadlines: Option<Arc<Deadlines>>,
}

impl Tracked {
    pub(crate) fn new(body: Body, deadlines: Option<Arc<Deadlines>>) -> Tracked {
        Tracked { body, deadlines }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(d) = &self.deadlines {
            d.response_done();
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadlines() -> Deadlines {
        Deadlines::new(Duration::from_secs(30), Duration::from_secs(60))
    }

    fn at(check: Check) -> Option<Instant> {
        match check {
            Check::At(at) => Some(at),
            Check::Close => None,
        }
    }

    #[test]
    fn an_idle_connection_closes_at_its_header_deadline() {
        let d = deadlines();
        let opened = d.origin;
        assert_eq!(at(d.check(opened)), Some(opened + d.header_read));
        assert!(at(d.check(opened + d.header_read)).is_none());
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
        let d = Deadlines::new(Duration::from_secs(30), Duration::from_secs(10));
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
        let d = Deadlines::new(Duration::from_secs(30), Duration::from_secs(1));
        assert_eq!(at(d.check(d.origin)), Some(d.origin + d.upstream));
        // Waiting on the upstream, with a long upstream deadline and a
        // short header one: the response may come and the idle clock start.
        let d = Deadlines::new(Duration::from_secs(1), Duration::from_secs(60));
        d.set(UPSTREAM);
        let started = since(&d);
        assert_eq!(at(d.check(started)), Some(started + d.header_read));
    }

    #[test]
    fn a_sent_response_starts_the_wait_for_the_next_head() {
        let d = Arc::new(deadlines());
        d.request();
        drop(Tracked::new(
            portcullis_actions::body::empty(),
            Some(d.clone()),
        ));
        assert_eq!(d.phase(), IDLE);
    }

    #[test]
    fn http2_connections_have_no_deadlines() {
        let d = Arc::new(deadlines());
        d.off();
        d.request();
        drop(Tracked::new(
            portcullis_actions::body::empty(),
            Some(d.clone()),
        ));
        assert!(!d.on());
    }
}
