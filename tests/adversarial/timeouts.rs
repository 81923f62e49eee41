//! Every connection is bounded: idle HTTP/2 connections, idle HTTP/1
//! keep-alive, clients that stop reading, upstreams that stall mid-body,
//! slowloris. Timeouts are 1 s here; the bounds asserted are generous
//! (10 s and more), so only a timeout that never fires fails.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::raw::{self, Mode, RawUpstream};
use crate::support::Proxy;
use crate::{POLICY, admin, metrics, metrics_until, sample};

/// The counter of closed connections, by reason.
const CLOSED: &str = "portcullis_connections_closed_total";

/// `portcullis serve` in front of `up` with `timeouts`, an admin listener.
fn serve(up: &RawUpstream, timeouts: &str) -> Proxy {
    Proxy::serve(
        &format!(
            "admin: 127.0.0.1:0\nendpoints:\n  - listen: 127.0.0.1:0\n    upstream: {}\n    traffic_policy_file: policy.yml\ntimeouts: {timeouts}\n",
            up.addr
        ),
        &[("policy.yml", POLICY)],
    )
}

/// An HTTP/2 client connection to `proxy`, driven by a task of its own,
/// which ends when the connection does.
async fn h2_client(
    proxy: &Proxy,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let tcp = crate::support::tcp(proxy.addr).await;
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    (sender, tokio::spawn(conn))
}

const SHORT: &str = "{ header_read: 1s, idle: 1s, send: 2s, upstream_read: 1s }";

/// Asserts (within 10 s) that `/metrics` counts a close for `reason`.
async fn counted(proxy: &Proxy, reason: &str) {
    let admin = admin(proxy);
    let name = format!("{CLOSED}{{reason=\"{reason}\"}}");
    let moved = metrics_until(admin, Duration::from_secs(10), |m| {
        sample(m, &name).is_some_and(|v| v >= 1.0)
    })
    .await;
    assert!(
        moved,
        "{name} did not move:\n{}",
        metrics(admin)
            .await
            .lines()
            .filter(|l| l.contains("connections"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_that_open_no_stream_are_closed_after_header_read() {
    let up = RawUpstream::start(Mode::Ok).await;
    let proxy = serve(&up, SHORT);
    let started = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..200 {
        let mut s = crate::support::tcp(proxy.addr).await;
        s.write_all(&crate::h2::hello()).await.expect("write");
        // Every one must be closed (EOF or reset, after the server's
        // SETTINGS and maybe a GOAWAY); the guard is far above the 1 s
        // timeout.
        waits.push(tokio::spawn(async move {
            raw::read_to_close(&mut s, Duration::from_secs(15)).await
        }));
    }
    let mut open = 0;
    for wait in waits {
        if wait.await.expect("task").is_none() {
            open += 1;
        }
    }
    assert_eq!(
        open,
        0,
        "{open} of 200 idle HTTP/2 connections still open after {:?}",
        started.elapsed()
    );
    counted(&proxy, "header_read").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http1_keep_alive_connection_is_closed_after_idle() {
    let up = RawUpstream::start(Mode::Ok).await;
    // A long header_read: only `idle` can close it in time.
    let proxy = serve(&up, "{ header_read: 30s, idle: 1s }");
    let mut c = crate::support::tcp(proxy.addr).await;
    c.write_all(b"GET /x HTTP/1.1\r\nHost: mine.test\r\n\r\n")
        .await
        .expect("write");
    let reply = raw::read_reply(&mut c).await;
    assert_eq!(reply.status, 200);
    let rest = raw::read_to_close(&mut c, Duration::from_secs(10)).await;
    assert_eq!(
        rest,
        Some(0),
        "the idle keep-alive connection was not closed"
    );
    counted(&proxy, "idle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_after_a_stream_is_closed_after_idle() {
    let up = RawUpstream::start(Mode::Ok).await;
    let proxy = serve(&up, "{ header_read: 30s, idle: 1s }");
    let (mut sender, conn) = h2_client(&proxy).await;
    let res = sender
        .send_request(
            http::Request::get("http://mine.test/x")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(res.status(), 200);
    drop(res);
    // The connection's task ends when the proxy closes it.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was not closed");
    counted(&proxy, "idle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_reset_before_their_answer_do_not_keep_a_connection_busy() {
    // The upstream never answers; the client resets each stream before
    // the proxy has a response. Abandoned streams must end their
    // exchanges, or the connection would never be idle again.
    let up = RawUpstream::start(Mode::Fixed(b"")).await;
    let proxy = serve(&up, "{ header_read: 30s, idle: 1s }");
    let (mut sender, conn) = h2_client(&proxy).await;
    for _ in 0..3 {
        let pending = sender.send_request(
            http::Request::get("http://mine.test/slow")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"),
        );
        // Dropping the response future resets the stream.
        let waited = tokio::time::timeout(Duration::from_millis(300), pending).await;
        assert!(waited.is_err(), "the upstream answered: {waited:?}");
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        ended.is_ok(),
        "reset streams kept the HTTP/2 connection open"
    );
    counted(&proxy, "idle").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_after_send() {
    const SIZE: usize = 64 << 20;
    let up = RawUpstream::start(Mode::Large(SIZE)).await;
    let proxy = serve(&up, SHORT);
    let admin = admin(&proxy);
    let mut c = crate::support::tcp(proxy.addr).await;
    c.write_all(b"GET /big HTTP/1.1\r\nHost: mine.test\r\n\r\n")
        .await
        .expect("write");
    // Never read: the buffers fill, the proxy's writes stall, and after
    // `send` it gives up on the client.
    let open =
        |n: u32| move |m: &str| sample(m, "portcullis_connections_open") == Some(f64::from(n));
    assert!(
        metrics_until(admin, Duration::from_secs(5), open(1)).await,
        "the connection was never counted open"
    );
    assert!(
        metrics_until(admin, Duration::from_secs(15), open(0)).await,
        "the client that stopped reading is still connected"
    );
    // What is left to read ends well short of the whole body.
    let got = raw::read_to_close(&mut c, Duration::from_secs(10))
        .await
        .expect("the connection is closed");
    assert!(got < SIZE, "read {got} bytes: the whole body came");
    counted(&proxy, "send").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stalls_mid_body_is_cut_after_upstream_read() {
    let up = RawUpstream::start(Mode::StallMidBody).await;
    let proxy = serve(&up, SHORT);
    let mut c = crate::support::tcp(proxy.addr).await;
    c.write_all(b"GET /x HTTP/1.1\r\nHost: mine.test\r\n\r\n")
        .await
        .expect("write");
    // The head and the 100 bytes come; then the response ends, truncated,
    // with the connection (a client must not take it for whole).
    let got = raw::read_to_close(&mut c, Duration::from_secs(10)).await;
    let got = got.expect("the response was never cut");
    assert!(got > 0, "nothing came");
    assert!(got < 1000, "{got} bytes: more than the upstream sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_trickles_within_upstream_read_is_not_cut() {
    let up = RawUpstream::start(Mode::Trickle {
        chunks: 4,
        every: Duration::from_millis(400),
    })
    .await;
    let proxy = serve(&up, SHORT);
    let reply = raw::exchange(proxy.addr, b"GET /x HTTP/1.1\r\nHost: mine.test\r\n\r\n").await;
    assert_eq!(reply.status, 200);
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(body.matches("chunk!").count(), 4, "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_after_header_read() {
    let up = RawUpstream::start(Mode::Ok).await;
    let proxy = serve(&up, SHORT);
    let mut c = crate::support::tcp(proxy.addr).await;
    c.set_nodelay(true).expect("nodelay");
    let head = b"GET /x HTTP/1.1\r\nHost: mine.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte every 100 ms: the whole head would take over 10 s.
    let started = Instant::now();
    let mut cut = false;
    for byte in head {
        if c.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !cut {
        cut = raw::read_to_close(&mut c, Duration::from_secs(10))
            .await
            .is_some();
    }
    assert!(cut, "a head sent one byte at a time was never cut");
    assert_eq!(up.bytes(), 0);
    counted(&proxy, "header_read").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_websocket_tunnel_is_closed_after_tunnel_idle_and_a_busy_one_is_not() {
    use tokio::io::AsyncReadExt;
    let up = RawUpstream::start(Mode::SwitchIfUpgrade).await;
    let proxy = serve(&up, "{ tunnel_idle: 1s }");
    let open = |path: &'static str| {
        let addr = proxy.addr;
        async move {
            let mut c = crate::support::tcp(addr).await;
            c.write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: mine.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .expect("write");
            let reply = raw::read_reply(&mut c).await;
            assert_eq!(reply.status, 101);
            c
        }
    };
    // Busy: a message every 400 ms for 2.4 s, each echoed; still open.
    let mut busy = open("/busy").await;
    for _ in 0..6 {
        busy.write_all(b"tick").await.expect("write");
        let mut back = [0u8; 4];
        busy.read_exact(&mut back).await.expect("echo");
        assert_eq!(&back, b"TICK");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Silent: closed after about a second of nothing.
    let mut silent = open("/silent").await;
    let started = Instant::now();
    let closed = raw::read_to_close(&mut silent, Duration::from_secs(10)).await;
    assert_eq!(closed, Some(0), "the silent tunnel stayed open");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    counted(&proxy, "tunnel_idle").await;
}
