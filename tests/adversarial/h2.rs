//! HTTP/2 in raw frames, for what a well-behaved client library refuses to
//! send: header values with CR LF, upper-case names, connection-specific
//! fields, a `content-length` that is not the body's. None of it may
//! reach an HTTP/1.1 upstream.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::raw::Mode;
use crate::{POLICY, http};

pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A frame header and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The client preface and an empty SETTINGS frame.
pub(crate) fn hello() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn integer(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literal fields without indexing, new names, no
/// Huffman coding: every byte as given.
fn block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        integer(&mut out, 0, 7, name.len());
        out.extend_from_slice(name);
        integer(&mut out, 0, 7, value.len());
        out.extend_from_slice(value);
    }
    out
}

/// What came back for stream 1.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A response with this status (0 if it could not be read).
    Status(u16),
    /// RST_STREAM on the stream.
    Reset,
    /// GOAWAY, or the connection closed.
    Gone,
}

/// The `:status` of a response header block that starts with it (as
/// hyper's h2 writes it): indexed, or a literal with the indexed name 8.
fn status(block: &[u8]) -> u16 {
    match block.first() {
        Some(0x88) => return 200,
        Some(0x89) => return 204,
        Some(0x8c) => return 400,
        Some(0x8d) => return 404,
        Some(0x8e) => return 500,
        Some(&b) if b & 0xc0 == 0x40 && b & 0x3f == 8 => {}
        Some(&b) if b & 0xe0 == 0 && b & 0x0f == 8 => {}
        _ => return 0,
    }
    let (Some(&len), Some(rest)) = (block.get(1), block.get(2..)) else {
        return 0;
    };
    let n = usize::from(len & 0x7f);
    let Some(value) = rest.get(..n) else { return 0 };
    if len & 0x80 == 0 {
        return std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
    }
    // Huffman: the codes of the digits are 5 bits (`0`-`2`) and 6 bits.
    let mut bits = value
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1));
    let mut digits = 0u16;
    for _ in 0..3 {
        let mut code = 0u8;
        for _ in 0..5 {
            code = code << 1 | bits.next().unwrap_or(1);
        }
        let digit = match code {
            0..=2 => code,
            _ => {
                let code = code << 1 | bits.next().unwrap_or(1);
                match code {
                    0b011001..=0b011111 => code - 0b011001 + 3,
                    _ => return 0,
                }
            }
        };
        digits = digits * 10 + u16::from(digit);
    }
    digits
}

/// Sends one request on a new connection: `fields` as HEADERS on stream
/// 1, then `data` if any, and reads the answer.
pub(crate) async fn request(
    proxy: SocketAddr,
    fields: &[(&[u8], &[u8])],
    data: Option<&[u8]>,
) -> Answer {
    let mut s = TcpStream::connect(proxy).await.expect("connect");
    let mut out = hello();
    let end_stream = if data.is_none() { 1 } else { 0 };
    out.extend(frame(1, 4 | end_stream, 1, &block(fields)));
    if let Some(data) = data {
        out.extend(frame(0, 1, 1, data));
    }
    let _ = s.write_all(&out).await;
    tokio::time::timeout(Duration::from_secs(10), read_answer(&mut s))
        .await
        .expect("an answer within 10 s")
}

async fn read_answer(s: &mut TcpStream) -> Answer {
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).await.is_err() {
            return Answer::Gone;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).await.is_err() {
            return Answer::Gone;
        }
        match (kind, stream) {
            (4, 0) if flags & 1 == 0 => {
                let _ = s.write_all(&frame(4, 1, 0, &[])).await;
            }
            (1, 1) => {
                let mut block = &payload[..];
                if flags & 0x8 != 0 {
                    let pad = usize::from(block[0]);
                    block = &block[1..block.len() - pad];
                }
                if flags & 0x20 != 0 {
                    block = &block[5..];
                }
                return Answer::Status(status(block));
            }
            (3, 1) => return Answer::Reset,
            (7, _) => return Answer::Gone,
            _ => {}
        }
    }
}

fn get(
    authority: &'static [u8],
    more: &[(&'static [u8], &'static [u8])],
) -> Vec<(&'static [u8], &'static [u8])> {
    let mut fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", authority),
        (b":path", b"/x"),
    ];
    fields.extend_from_slice(more);
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http2_requests_never_reach_the_upstream() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    // Control: a well-formed request in raw frames is forwarded.
    let answer = request(proxy.addr, &get(b"mine.test", &[]), None).await;
    assert_eq!(answer, Answer::Status(200), "{}", proxy.log());
    let seen = up.wait_requests(1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line(), "GET /x HTTP/1.1");
    assert_eq!(seen[0].headers("host"), ["mine.test"]);

    type Case<'a> = (&'a str, Vec<(&'a [u8], &'a [u8])>, Option<&'a [u8]>);
    let cases: Vec<Case> = vec![
        (
            "CR LF in a value",
            get(b"mine.test", &[(b"x-a", b"a\r\nx-injected: yes")]),
            None,
        ),
        (
            "LF in a value",
            get(b"mine.test", &[(b"x-a", b"a\nx-injected: yes")]),
            None,
        ),
        (
            "NUL in a value",
            get(b"mine.test", &[(b"x-a", b"a\0b")]),
            None,
        ),
        (
            "upper-case name",
            get(b"mine.test", &[(b"X-Upper", b"1")]),
            None,
        ),
        (
            "connection field",
            get(b"mine.test", &[(b"connection", b"close")]),
            None,
        ),
        (
            "keep-alive field",
            get(b"mine.test", &[(b"keep-alive", b"timeout=5")]),
            None,
        ),
        (
            "transfer-encoding",
            get(b"mine.test", &[(b"transfer-encoding", b"chunked")]),
            None,
        ),
        (
            "upgrade field",
            get(b"mine.test", &[(b"upgrade", b"h2c")]),
            None,
        ),
        (
            "te other than trailers",
            get(b"mine.test", &[(b"te", b"gzip")]),
            None,
        ),
        (
            "CR LF in :path",
            {
                let mut f = get(b"mine.test", &[]);
                f[3] = (
                    b":path",
                    b"/x HTTP/1.1\r\nx-injected: yes\r\n\r\nGET /admin",
                );
                f
            },
            None,
        ),
        (
            "space in :path",
            {
                let mut f = get(b"mine.test", &[]);
                f[3] = (b":path", b"/x /admin");
                f
            },
            None,
        ),
        (
            "CR LF in :authority",
            get(b"mine.test\r\nx-injected: yes", &[]),
            None,
        ),
        ("bad :authority", get(b"x/admin#", &[]), None),
        ("denied :authority", get(b"ADMIN.internal.test.", &[]), None),
        (
            "disagreeing host",
            get(b"mine.test", &[(b"host", b"admin.internal.test")]),
            None,
        ),
        (
            "encoded dot segments to /admin",
            {
                let mut f = get(b"mine.test", &[]);
                f[3] = (b":path", b"/x/%2e%2e/admin");
                f
            },
            None,
        ),
        (
            "content-length above DATA",
            {
                let mut f = get(b"mine.test", &[(b"content-length", b"10")]);
                f[0] = (b":method", b"POST");
                f
            },
            Some(&b"hi"[..]),
        ),
        (
            "content-length below DATA",
            {
                let mut f = get(b"mine.test", &[(b"content-length", b"1")]);
                f[0] = (b":method", b"POST");
                f
            },
            Some(&b"hello"[..]),
        ),
    ];
    let mut failed = Vec::new();
    for (what, fields, data) in cases {
        let n = up.requests().len();
        let answer = request(proxy.addr, &fields, data).await;
        let arrived = up.requests();
        if matches!(answer, Answer::Status(200)) || arrived.len() != n {
            failed.push(format!(
                "{what}: {answer:?}, the upstream got {:?}",
                arrived.get(n).map(|s| s.head_text())
            ));
        }
        for seen in &arrived {
            assert!(
                seen.headers("x-injected").is_empty(),
                "{what}: {}",
                seen.head_text()
            );
        }
    }
    assert!(
        failed.is_empty(),
        "{failed:#?}\n{}",
        crate::tail(&proxy.log())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off() {
    // CVE-2023-44487: streams opened and reset at once, thousands a
    // second, each costing the server a request while the client pays
    // nothing. The upstream here never answers, so every stream is still
    // in flight when it is reset.
    let (proxy, up) = http(POLICY, Mode::Fixed(b""), &[]).await;
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut out = hello();
    let fields = get(b"mine.test", &[]);
    let headers = block(&fields);
    const STREAMS: u32 = 5_000;
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        out.extend(frame(1, 4 | 1, id, &headers));
        // RST_STREAM, CANCEL (8).
        out.extend(frame(3, 0, id, &8u32.to_be_bytes()));
    }
    let _ = s.write_all(&out).await;
    // The server gives up on the connection (GOAWAY or a close)...
    let mut gone = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let mut head = [0u8; 9];
        match tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head)).await {
            Ok(Ok(_)) => {
                let len =
                    usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
                let mut payload = vec![0u8; len];
                if s.read_exact(&mut payload).await.is_err() || head[3] == 7 {
                    gone = true;
                    break;
                }
            }
            // Closed (or reset) by the server.
            Ok(Err(_)) => {
                gone = true;
                break;
            }
            // Still open after 10 s of silence: not cut off.
            Err(_) => break,
        }
    }
    assert!(gone, "the connection survived {STREAMS} reset streams");
    // ...long before every stream became an upstream request.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reached = up.requests().len() + up.connections();
    assert!(
        reached < STREAMS as usize / 2,
        "{reached} upstream requests or connections for {STREAMS} reset streams"
    );
}
