//! Framing: a client's framing error is a 4xx, never a 502, and never
//! forwarded (request smuggling in its usual variants); an upstream's
//! broken framing never reaches the client as a second response; a value
//! interpolated into a header cannot inject one; oversize heads are
//! refused.

use crate::raw::{self, Mode};
use crate::{Expect, POLICY, fwd, http, must, table};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_variants_are_refused_and_nothing_is_forwarded() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    let smuggled = "GET /admin HTTP/1.1\r\nHost: mine.test\r\n\r\n";
    let cases: Vec<(Vec<u8>, Expect)> = [
        // Two different lengths.
        format!(
            "POST /x HTTP/1.1\r\nHost: mine.test\r\nContent-Length: 0\r\nContent-Length: 41\r\n\r\n{smuggled}"
        ),
        // A length that is not a number.
        "POST /x HTTP/1.1\r\nHost: mine.test\r\nContent-Length: 1x\r\n\r\nx".to_owned(),
        "POST /x HTTP/1.1\r\nHost: mine.test\r\nContent-Length: -1\r\n\r\n".to_owned(),
        format!("POST /x HTTP/1.1\r\nHost: mine.test\r\nContent-Length: 0, 41\r\n\r\n{smuggled}"),
        // Transfer codings that are not plain `chunked`.
        "POST /x HTTP/1.1\r\nHost: mine.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".to_owned(),
        "POST /x HTTP/1.1\r\nHost: mine.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".to_owned(),
        "POST /x HTTP/1.1\r\nHost: mine.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n".to_owned(),
        // TE in HTTP/1.0.
        format!(
            "POST /x HTTP/1.0\r\nHost: mine.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        // obs-fold, bare CR, whitespace before the colon, NUL in a value.
        "GET /x HTTP/1.1\r\nHost: mine.test\r\nX-A: a\r\n b\r\n\r\n".to_owned(),
        "GET /x HTTP/1.1\r\nHost: mine.test\r\nX-A: a\rb\r\n\r\n".to_owned(),
        "GET /x HTTP/1.1\r\nHost : mine.test\r\n\r\n".to_owned(),
        "GET /x HTTP/1.1\r\nHost: mine.test\r\nX-A: a\0b\r\n\r\n".to_owned(),
        // A space in the target.
        "GET /x /admin HTTP/1.1\r\nHost: mine.test\r\n\r\n".to_owned(),
    ]
    .into_iter()
    .map(|r| (r.into_bytes(), Expect::Unparsable))
    .collect();
    table(&proxy, &up, &cases).await;
    // Not one request reached the upstream, so neither did a smuggled one.
    assert!(up.requests().is_empty(), "{:?}", up.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_read_one_way_then_closed() {
    // RFC 9112 §6.3 lets a server either refuse this (400) or read the
    // body by Transfer-Encoding and close the connection after. hyper,
    // which parses the head, does the second, and drops Content-Length
    // before the proxy sees the request: so the upstream receives one
    // framing only, the connection ends after the answer, and the bytes
    // after the chunked body (a smuggled request) are never read as a
    // request, let alone forwarded. (The tower layer, behind servers that
    // keep both fields, refuses them: `portcullis_canon`'s unit tests.)
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    let smuggled = "GET /admin HTTP/1.1\r\nHost: mine.test\r\n\r\n";
    for request in [
        format!(
            "POST /x HTTP/1.1\r\nHost: mine.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
        ),
        format!(
            "POST /x HTTP/1.1\r\nHost: mine.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n{smuggled}"
        ),
    ] {
        let mut s = tokio::net::TcpStream::connect(proxy.addr)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(&mut s, request.as_bytes())
            .await
            .expect("write");
        let reply = raw::read_reply(&mut s).await;
        assert_eq!(reply.status, 200, "{}", reply.head);
        // Nothing more: no second answer (the smuggled request), and the
        // connection closes.
        let after = raw::read_to_close(&mut s, Duration::from_secs(5)).await;
        assert_eq!(
            after,
            Some(0),
            "the connection stayed open or answered again"
        );
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(request.request_line(), "POST /x HTTP/1.1");
        assert!(
            request.header("content-length").is_none()
                || request.header("transfer-encoding").is_none(),
            "two framings reached the upstream: {}",
            request.head_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_chunked_bodies_are_the_clients_fault() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    let mut failed = Vec::new();
    for body in [
        // A chunk size that is not hex, after the head was accepted.
        "5\r\nhello\r\nzz\r\n\r\n",
        // A chunk size that overflows.
        "ffffffffffffffffffff\r\nx\r\n0\r\n\r\n",
        // Data longer than its chunk size.
        "2\r\nhello\r\n0\r\n\r\n",
    ] {
        let req = format!(
            "POST /x HTTP/1.1\r\nHost: mine.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let reply = raw::exchange(proxy.addr, req.as_bytes()).await;
        let code = reply.code();
        // The body is read once the policy has let the request through, so
        // the status can only be the proxy's; it must blame the client.
        if reply.status != 400 || code.as_deref() != Some("ERR_PORTCULLIS_CLIENT_BODY") {
            failed.push(format!("{body:?}: got {} {code:?}", reply.status));
        }
    }
    // Whatever reached the upstream, no request arrived whole.
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    assert!(
        failed.is_empty(),
        "{failed:#?}\n{}",
        crate::tail(&proxy.log())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_lengths_are_refused_or_forwarded_with_one() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    let req = b"POST /x HTTP/1.1\r\nHost: mine.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
    let reply = raw::exchange(proxy.addr, req).await;
    match reply.status {
        400 => assert_eq!(up.bytes(), 0),
        200 => {
            let seen = up.last();
            assert_eq!(seen.headers("content-length"), ["5"]);
            assert_eq!(seen.body, b"hello");
        }
        other => panic!("got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_response_with_two_lengths_is_a_502_and_nothing_more() {
    // Two different lengths: whichever a client believed, the rest would
    // be read as a second response.
    let (proxy, up) = http(
        POLICY,
        Mode::Fixed(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 60\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 8\r\nx-smuggled: yes\r\n\r\nsmuggled",
        ),
        &[],
    )
    .await;
    let reply = raw::exchange(
        proxy.addr,
        b"GET /x HTTP/1.1\r\nHost: mine.test\r\n\r\nGET /y HTTP/1.1\r\nHost: mine.test\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 502, "{}", reply.head);
    assert_eq!(reply.code().as_deref(), Some("ERR_NGROK_3004"));
    assert!(!up.wait_requests(1).await.is_empty());
    assert!(!String::from_utf8_lossy(&reply.body).contains("smuggled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpolated_value_cannot_inject_a_header() {
    let policy = r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-echo: "${req.url.query_params['v'][0]}"
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    for query in [
        "v=a%0D%0AX-Injected:%20yes",
        "v=a%0AX-Injected:%20yes",
        "v=a%0DX-Injected:%20yes",
        "v=a%00b",
    ] {
        let req = format!("GET /x?{query} HTTP/1.1\r\nHost: mine.test\r\n\r\n");
        let reply = raw::exchange(proxy.addr, req.as_bytes()).await;
        // Refused (an error response, never a pass) or forwarded with a
        // value that carries no line break.
        assert_ne!(reply.status, 0, "{query}: no answer");
        for seen in up.requests() {
            assert!(
                seen.headers("x-injected").is_empty(),
                "{query}: {}",
                seen.head_text()
            );
            for value in seen.headers("x-echo") {
                assert!(!value.contains(['\r', '\n', '\0']), "{value:?}");
            }
        }
        assert!(reply.header("x-injected").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_heads_are_refused_and_not_forwarded() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    let long_target = format!("/{}", "a".repeat(100_000));
    let many: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases = [
        format!("GET {long_target} HTTP/1.1\r\nHost: mine.test\r\n\r\n"),
        format!(
            "GET /x HTTP/1.1\r\nHost: mine.test\r\nX-Big: {}\r\n\r\n",
            "b".repeat(100_000)
        ),
        format!("GET /x HTTP/1.1\r\nHost: mine.test\r\n{many}\r\n"),
    ];
    let mut failed = Vec::new();
    for (what, req) in ["a 100 KB target", "a 100 KB header", "10,000 headers"]
        .into_iter()
        .zip(cases)
    {
        let before = up.bytes();
        let reply = raw::exchange(proxy.addr, req.as_bytes()).await;
        if !matches!(reply.status, 0 | 400 | 413 | 414 | 431) || up.bytes() != before {
            failed.push(format!(
                "{what}: got {}, the upstream received {} bytes",
                reply.status,
                up.bytes() - before
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    // The proxy still serves.
    must(
        &proxy,
        &up,
        b"GET /x HTTP/1.1\r\nHost: mine.test\r\n\r\n",
        fwd("/x"),
    )
    .await;
}
