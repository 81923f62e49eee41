//! Upgrades: only WebSocket is tunnelled, and only after the upstream's
//! `101`; `h2c` is never passed on, so a client cannot speak HTTP/2
//! straight to the upstream past the policy.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::raw::{self, Mode};
use crate::{POLICY, fwd, http, must};

const WEBSOCKET: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrades_are_forwarded_as_ordinary_requests() {
    // The upstream would switch to anything it is asked to.
    let (proxy, up) = http(POLICY, Mode::SwitchIfUpgrade, &[]).await;
    for headers in [
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        "Connection: HTTP2-Settings, Upgrade\r\nUpgrade: H2C\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
        // An unknown protocol is not tunnelled either.
        "Connection: Upgrade\r\nUpgrade: foo/1\r\n",
        // Nor WebSocket offered next to h2c in one field.
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c, websocket\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
    ] {
        let req = format!("GET /x HTTP/1.1\r\nHost: mine.test\r\n{headers}\r\n");
        let reply = must(&proxy, &up, req.as_bytes(), fwd("/x")).await;
        assert_eq!(reply.body, b"ok");
        let seen = up.last();
        for gone in ["upgrade", "http2-settings", "connection"] {
            assert!(
                seen.headers(gone).is_empty(),
                "{headers:?}: {gone} reached the upstream: {}",
                seen.head_text()
            );
        }
    }
    assert!(up.tunnelled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_is_tunnelled_only_after_a_101() {
    // Control: a WebSocket upgrade the upstream accepts is a tunnel.
    let (proxy, up) = http(POLICY, Mode::SwitchIfUpgrade, &[]).await;
    let mut c = crate::support::tcp(proxy.addr).await;
    c.write_all(format!("GET /chat HTTP/1.1\r\nHost: mine.test\r\n{WEBSOCKET}\r\n").as_bytes())
        .await
        .expect("write");
    let reply = raw::read_reply(&mut c).await;
    assert_eq!(reply.status, 101, "{}", proxy.log());
    assert_eq!(up.last().headers("upgrade"), ["websocket"]);
    c.write_all(b"ping").await.expect("write");
    let mut back = [0u8; 4];
    c.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"PING");

    // A WebSocket upgrade of a denied path is denied like any request.
    let req = format!("GET /admin HTTP/1.1\r\nHost: mine.test\r\n{WEBSOCKET}\r\n");
    must(&proxy, &up, req.as_bytes(), crate::Expect::Denied).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_answered_200_is_no_tunnel() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    let mut c = crate::support::tcp(proxy.addr).await;
    c.write_all(format!("GET /ws HTTP/1.1\r\nHost: mine.test\r\n{WEBSOCKET}\r\n").as_bytes())
        .await
        .expect("write");
    let reply = raw::read_reply(&mut c).await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("upgrade").is_none(), "{}", reply.head);
    // The next bytes are a request of their own, for the policy to judge;
    // had the proxy switched to raw forwarding, they would reach the
    // upstream unjudged.
    c.write_all(b"GET /admin HTTP/1.1\r\nHost: mine.test\r\n\r\n")
        .await
        .expect("write");
    let next = tokio::time::timeout(Duration::from_secs(10), raw::read_reply(&mut c))
        .await
        .expect("an answer or a close");
    assert!(
        next.status == 403 || next.status == 0,
        "got {}: {}",
        next.status,
        next.head
    );
    let seen = up.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(up.tunnelled().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_sent_before_the_101_are_not_a_request_for_the_proxy() {
    // A client that sends a request right behind its upgrade, before the
    // upstream has answered: if the upstream switches, those bytes belong
    // to the tunnel; the proxy must not parse them as a second request
    // that bypasses the policy, nor answer them itself.
    let (proxy, up) = http(POLICY, Mode::SwitchIfUpgrade, &[]).await;
    let mut c = crate::support::tcp(proxy.addr).await;
    c.write_all(
        format!(
            "GET /chat HTTP/1.1\r\nHost: mine.test\r\n{WEBSOCKET}\r\nGET /admin HTTP/1.1\r\nHost: mine.test\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let reply = raw::read_reply(&mut c).await;
    assert_eq!(reply.status, 101, "{}", proxy.log());
    // No request for /admin was forwarded as a request of its own.
    for seen in up.wait_requests(1).await {
        assert!(
            !seen.request_line().contains("/admin"),
            "{}",
            seen.head_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_on_http_1_0_is_ignored() {
    // RFC 9110 §7.8: `Upgrade` in an HTTP/1.0 request is ignored.
    let (proxy, up) = http(POLICY, Mode::SwitchIfUpgrade, &[]).await;
    let req = format!("GET /x HTTP/1.0\r\nHost: mine.test\r\n{WEBSOCKET}\r\n");
    let reply = must(&proxy, &up, req.as_bytes(), fwd("/x")).await;
    assert_eq!(reply.status, 200);
    assert!(up.last().headers("upgrade").is_empty());
    assert!(up.tunnelled().is_empty());
}
