//! Both ends of an exchange in raw bytes, for tests of what a proxy must
//! never pass on: an upstream that records exactly what reached it, and a
//! client that writes a request byte for byte and reads the answer without
//! a library's normalization in between.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a harness module shared by test binaries, each using part of it"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a [`RawUpstream`] answers each request it has read whole.
#[derive(Clone, Debug)]
pub enum Mode {
    /// `200` with `content-length: 2` and `ok`, keeping the connection.
    Ok,
    /// `101 Switching Protocols` to a request that carries `Upgrade`
    /// (then every byte back in upper case, recorded as tunnelled); [`Mode::Ok`]
    /// to any other.
    SwitchIfUpgrade,
    /// These bytes, whatever the request.
    Fixed(&'static [u8]),
    /// `200` with a body of this many bytes, written as fast as the peer
    /// takes them.
    Large(usize),
    /// `200` announcing 1,000 bytes, 100 of them sent, then silence with
    /// the connection open.
    StallMidBody,
    /// `200` chunked: this many chunks of `chunk!` bytes, one every
    /// `every`.
    Trickle { chunks: usize, every: Duration },
}

/// One request as it reached the upstream.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The head, bytes as received, up to and including the blank line.
    pub head: Vec<u8>,
    /// The body, de-chunked if it came chunked.
    pub body: Vec<u8>,
}

impl Seen {
    /// The head as text (lossy).
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }

    /// The request line, without its line end.
    pub fn request_line(&self) -> String {
        let text = self.head_text();
        text.split("\r\n").next().unwrap_or_default().to_owned()
    }

    /// Every value of the header `name` (case-insensitive), trimmed.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head_text()
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// The one value of `name`; panics if there are several.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut all = self.headers(name);
        assert!(all.len() <= 1, "several `{name}`: {}", self.head_text());
        all.pop()
    }
}

#[derive(Default)]
struct Record {
    seen: Mutex<Vec<Seen>>,
    /// Every byte received, on any connection, whole requests or not.
    bytes: AtomicUsize,
    connections: AtomicUsize,
    /// Bytes received after a `101`.
    tunnelled: Mutex<Vec<u8>>,
}

/// An HTTP/1.1 upstream on a loopback port that keeps what it received.
#[derive(Clone)]
pub struct RawUpstream {
    pub addr: SocketAddr,
    record: Arc<Record>,
}

impl RawUpstream {
    /// Listens on `127.0.0.1:0` and answers per `mode`.
    pub async fn start(mode: Mode) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let record = Arc::new(Record::default());
        let rec = record.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                rec.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, mode.clone(), rec.clone()));
            }
        });
        RawUpstream { addr, record }
    }

    /// Every request received whole so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.record.seen.lock().expect("lock").clone()
    }

    /// How many bytes reached the upstream at all.
    pub fn bytes(&self) -> usize {
        self.record.bytes.load(Ordering::SeqCst)
    }

    /// How many connections were opened to it.
    pub fn connections(&self) -> usize {
        self.record.connections.load(Ordering::SeqCst)
    }

    /// What reached it through a tunnel, after a `101`.
    pub fn tunnelled(&self) -> Vec<u8> {
        self.record.tunnelled.lock().expect("lock").clone()
    }

    /// The last request received whole; panics if there is none.
    pub fn last(&self) -> Seen {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }

    /// Waits (up to 10 s) until `n` requests have arrived whole.
    pub async fn wait_requests(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.requests();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Reads requests off one connection and answers them.
async fn serve(mut s: TcpStream, mode: Mode, rec: Arc<Record>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut s, &mut buf, &rec).await else {
            return;
        };
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let Some(body) = read_body(&mut s, &mut buf, &text, &rec).await else {
            return;
        };
        let upgrade = text.contains("\r\nupgrade:");
        rec.seen.lock().expect("lock").push(Seen { head, body });
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let written = match &mode {
            Mode::Ok => s.write_all(ok).await,
            Mode::SwitchIfUpgrade if upgrade => {
                if s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                tunnel(s, buf, &rec).await;
                return;
            }
            Mode::SwitchIfUpgrade => s.write_all(ok).await,
            Mode::Fixed(bytes) => s.write_all(bytes).await,
            Mode::Large(n) => large(&mut s, *n).await,
            Mode::StallMidBody => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await;
                let _ = s.write_all(&[b'x'; 100]).await;
                // Silence until the peer leaves.
                let mut sink = [0u8; 1024];
                while let Ok(n) = s.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
            Mode::Trickle { chunks, every } => trickle(&mut s, *chunks, *every).await,
        };
        if written.is_err() {
            return;
        }
    }
}

async fn large(s: &mut TcpStream, n: usize) -> std::io::Result<()> {
    s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n").as_bytes())
        .await?;
    let block = vec![b'L'; 64 * 1024];
    let mut left = n;
    while left > 0 {
        let k = left.min(block.len());
        s.write_all(&block[..k]).await?;
        left -= k;
    }
    Ok(())
}

async fn trickle(s: &mut TcpStream, chunks: usize, every: Duration) -> std::io::Result<()> {
    s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        .await?;
    for _ in 0..chunks {
        tokio::time::sleep(every).await;
        s.write_all(b"6\r\nchunk!\r\n").await?;
    }
    s.write_all(b"0\r\n\r\n").await
}

/// After a `101`: records what comes and sends it back in upper case.
async fn tunnel(mut s: TcpStream, early: Vec<u8>, rec: &Record) {
    if !early.is_empty() {
        rec.tunnelled
            .lock()
            .expect("lock")
            .extend_from_slice(&early);
        let _ = s.write_all(&early.to_ascii_uppercase()).await;
    }
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        rec.bytes.fetch_add(n, Ordering::SeqCst);
        rec.tunnelled
            .lock()
            .expect("lock")
            .extend_from_slice(&chunk[..n]);
        if s.write_all(&chunk[..n].to_ascii_uppercase()).await.is_err() {
            break;
        }
    }
}

/// Reads more into `buf`; `false` at the end of the stream.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, rec: &Record) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            rec.bytes.fetch_add(n, Ordering::SeqCst);
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>, rec: &Record) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            return Some(buf.drain(..end + 4).collect());
        }
        if !fill(s, buf, rec).await {
            return None;
        }
    }
}

/// The body the head `text` (lower-cased) announces.
async fn read_body(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    text: &str,
    rec: &Record,
) -> Option<Vec<u8>> {
    let field = |name: &str| {
        text.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if field("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line = loop {
                if let Some(end) = find(buf, b"\r\n") {
                    break buf.drain(..end + 2).collect::<Vec<u8>>();
                }
                if !fill(s, buf, rec).await {
                    return None;
                }
            };
            let size = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
            while buf.len() < size + 2 {
                if !fill(s, buf, rec).await {
                    return None;
                }
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                // Trailers are not expected; the blank line was taken.
                return Some(body);
            }
        }
    }
    let n = field("content-length").map_or(Some(0), |v| v.parse::<usize>().ok())?;
    while buf.len() < n {
        if !fill(s, buf, rec).await {
            return None;
        }
    }
    Some(buf.drain(..n).collect())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// === the raw client ===

/// A response as a raw client read it.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code; 0 if the connection closed without an answer.
    pub status: u16,
    /// The head, as text.
    pub head: String,
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    }

    /// The `portcullis-error-code` header.
    pub fn code(&self) -> Option<String> {
        self.header("portcullis-error-code")
    }
}

/// Writes `request` on a new connection to `addr` and reads one response.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // A peer that refuses early may close before taking it all: read what
    // it said anyway.
    let _ = s.write_all(request).await;
    read_reply(&mut s).await
}

/// Reads one response from `s` (the guard of 10 s only stops a hang).
pub async fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 16 * 1024];
        let end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
        let mut rest = buf.split_off(end + 4);
        let lower = head.to_ascii_lowercase();
        let length = lower
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| *n == "content-length")
            .and_then(|(_, v)| v.trim().parse::<usize>().ok());
        let chunked = lower.contains("\r\ntransfer-encoding: chunked");
        let informational = head.starts_with("HTTP/1.1 1");
        if informational {
            return Some((head, rest));
        }
        loop {
            let done = match length {
                Some(n) => rest.len() >= n,
                None if chunked => find(&rest, b"0\r\n\r\n").is_some(),
                None => false,
            };
            if done {
                break;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&chunk[..n]),
            }
        }
        if let Some(n) = length {
            rest.truncate(n);
        }
        Some((head, rest))
    })
    .await;
    match read {
        Ok(Some((head, body))) => Reply {
            status: head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            head,
            body,
        },
        Ok(None) => Reply {
            status: 0,
            head: String::new(),
            body: Vec::new(),
        },
        Err(_) => panic!("no answer within 10 s"),
    }
}

/// Reads `s` to its end (EOF or an error such as a reset), returning how
/// many bytes came; `None` if it is still open after `within`.
pub async fn read_to_close(s: &mut TcpStream, within: Duration) -> Option<usize> {
    tokio::time::timeout(within, async {
        let mut chunk = vec![0u8; 256 * 1024];
        let mut n = 0;
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k,
            }
        }
    })
    .await
    .ok()
}
