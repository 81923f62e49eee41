//! The HTTP/1.1 client of a kept upstream connection, driven by the
//! request that uses it.
//!
//! hyper's client runs each connection on a task of its own and hands it
//! requests and responses through channels: every proxied request woke a
//! second task, twice. A kept connection serves one client connection's
//! requests one after the other, so the request's own future can write
//! the request and read the response head, and the response body reads
//! the rest; when the body ends, the connection goes back to its client
//! connection ([`Kept`]). Pingora, Cloudflare's proxy framework, likewise
//! drives its own HTTP/1 upstream sessions from the request's task.
//!
//! The head is parsed by `httparse`, hyper's own parser. The message
//! framing follows RFC 9112 §6: a `HEAD` request and `1xx`, `204` and
//! `304` responses have no body; `Transfer-Encoding` (chunked last) wins
//! over `Content-Length`; differing lengths are an error; any other
//! response is delimited by the connection's close. A connection is
//! reused only after a complete HTTP/1.1 response that did not ask to
//! close, with nothing after it.
//!
//! While a request body is being sent, the connection is also read: an
//! upstream that answers early (a `413`, a `401`) has its answer passed
//! on, the rest of the body is not sent and the connection is not reused.
//! Interim `1xx` answers are skipped. Chunked trailers are read and
//! dropped.

use std::future::Future;
use std::io::Write as _;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use portcullis_actions::body::{self, Body, BoxError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::upstream::{Forwarded, Kept, X_FORWARDED_FOR};

/// The most bytes a response head (or a chunked body's trailers) may
/// take, and the most header fields it may have. nginx's default is one
/// 4 or 8 KiB buffer; hyper's client allows about 400 KiB.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// The longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Request bytes gathered before they are written.
const WRITE_CHUNK: usize = 16 * 1024;

/// An upstream connection's byte stream: TCP, or TLS for an `https://`
/// upstream.
enum Io {
    Plain(TcpStream),
    Tls(Box<TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>>),
}

/// One HTTP/1.1 connection to an upstream.
pub(crate) struct Conn {
    io: Io,
    /// What was read and not yet used.
    buf: BytesMut,
    /// A request being written, and how much of it was.
    out: Vec<u8>,
    written: usize,
    spans: Vec<Span>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Error {
    /// The connection closed or was reset before any byte of an answer.
    Unanswered(std::io::Error),
    /// The connection failed, or closed in the middle of a message.
    Io(std::io::Error),
    /// The upstream's answer is not HTTP/1.1.
    Invalid(&'static str),
    /// The request body failed (or went over its limit).
    Body(BoxError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unanswered(e) => write!(f, "the connection closed with no answer: {e}"),
            Error::Io(e) => write!(f, "upstream connection failed: {e}"),
            Error::Invalid(what) => write!(f, "invalid response from the upstream: {what}"),
            Error::Body(e) => write!(f, "the request body failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unanswered(e) | Error::Io(e) => Some(e),
            Error::Invalid(_) => None,
            Error::Body(e) => Some(&**e),
        }
    }
}

/// A failed exchange: the error, and the request if none of it was
/// written (so it may go on another connection).
pub(crate) struct Failed {
    pub(crate) error: Error,
    pub(crate) unsent: Option<Request<Body>>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Failed {
        Failed {
            error,
            unsent: None,
        }
    }
}

/// Where a connection goes when a response's body ends: back to the
/// client connection that keeps it, marked with when its request began.
pub(crate) struct Home {
    pub(crate) kept: Arc<Kept>,
    pub(crate) used: Instant,
}

impl Conn {
    /// A connection over what the connector opened.
    pub(crate) fn new(io: MaybeHttpsStream<TokioIo<TcpStream>>) -> Conn {
        let io = match io {
            MaybeHttpsStream::Http(tcp) => Io::Plain(tcp.into_inner()),
            tls => Io::Tls(Box::new(TokioIo::new(tls))),
        };
        Conn {
            io,
            buf: BytesMut::with_capacity(8192),
            out: Vec::new(),
            written: 0,
            spans: Vec::new(),
        }
    }

    /// Whether the idle connection is no longer usable: the upstream
    /// closed it, or sent bytes no request asked for. Costs no system call
    /// while the socket has nothing to read.
    pub(crate) fn is_closed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        // Pending: nothing to read, the connection is open.
        self.poll_fill(cx).is_ready()
    }

    /// [`Conn::is_closed`] outside a task.
    pub(crate) fn is_closed_now(&mut self) -> bool {
        self.is_closed(&mut Context::from_waker(std::task::Waker::noop()))
    }

    /// Sends `req` (origin-form target, `Host` set, hop-by-hop headers
    /// removed) and returns the response once its head is in. Its body
    /// reads the rest and then hands the connection to `home`, if the
    /// connection may be reused.
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps each argument twice in its state (rust-lang/rust#62958)"
    )]
    pub(crate) fn send(
        mut self,
        req: Request<Body>,
        forwarded: &Forwarded,
        home: Home,
    ) -> impl Future<Output = Result<Response<Body>, Failed>> {
        async move {
            let head_only = req.method() == Method::HEAD;
            let framing = self.encode_head(&req, forwarded);
            // Nothing written yet: a failure here gives the request back.
            if let Err(e) = std::future::poll_fn(|cx| self.poll_flush_out(cx)).await {
                let unsent = (self.written == 0).then_some(req);
                return Err(Failed {
                    error: unanswered(e),
                    unsent,
                });
            }
            let mut body = req.into_body();
            let mut early = false;
            if framing != Sending::None {
                let mut sending = framing;
                early = match std::future::poll_fn(|cx| {
                    self.poll_send_body(cx, &mut body, &mut sending)
                })
                .await
                {
                    Ok(early) => early,
                    // The upstream may have answered and closed before taking
                    // the whole body: read what it said.
                    Err(Error::Io(_)) => true,
                    Err(e) => return Err(e.into()),
                };
            }
            drop(body);
            let (head, status) = loop {
                if let Some(parsed) = parse_head(&mut self.buf, &mut self.spans)? {
                    break parsed;
                }
                if self.buf.len() > MAX_HEAD {
                    return Err(Error::Invalid("response head too large").into());
                }
                let started = !self.buf.is_empty();
                match std::future::poll_fn(|cx| self.poll_fill(cx)).await {
                    Ok(0) if started => return Err(Error::Io(incomplete()).into()),
                    Ok(0) => return Err(unanswered(closed()).into()),
                    Ok(_) => {}
                    Err(e) if started => return Err(Error::Io(e).into()),
                    Err(e) => return Err(unanswered(e).into()),
                }
            };
            let (mut parts, ()) = head.into_parts();
            let framing = response_framing(head_only, status, &mut parts.headers)?;
            let reuse = !early && keeps_alive(parts.version, &parts.headers) && framing.delimited();
            let mut reply = Reply {
                conn: Some(self),
                framing,
                reuse,
                home: Some(home),
            };
            if reply.framing == Framing::Done {
                reply.finish();
                return Ok(Response::from_parts(parts, body::empty()));
            }
            Ok(Response::from_parts(parts, Body::new(reply)))
        }
    }

    /// Writes the request head into `out`, and says how its body is sent.
    fn encode_head(&mut self, req: &Request<Body>, forwarded: &Forwarded) -> Sending {
        let out = &mut self.out;
        out.clear();
        self.written = 0;
        out.extend_from_slice(req.method().as_str().as_bytes());
        out.push(b' ');
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut prior = None;
        for (name, value) in req.headers() {
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
                continue;
            }
            if forwarded.replaces(name) {
                if prior.is_none() && name == X_FORWARDED_FOR {
                    prior = Some(value);
                }
                continue;
            }
            header_line(out, name, value);
        }
        forwarded.write(out, prior);
        // The body says how long it is; a declared length that is not the
        // body's would desynchronise the connection.
        let body = req.body();
        let sending = if body.is_end_stream() {
            let declared = req.headers().contains_key(header::CONTENT_LENGTH);
            if declared || matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
            Sending::None
        } else if let Some(n) = body.size_hint().exact() {
            let _ = write!(out, "content-length: {n}\r\n");
            Sending::Length(n)
        } else {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Sending::Chunked
        };
        out.extend_from_slice(b"\r\n");
        sending
    }

    /// Writes what is in `out`.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Sends the request body, reading the connection at the same time.
    /// Ready with `true` if the upstream answered before the body was
    /// all sent.
    fn poll_send_body(
        &mut self,
        cx: &mut Context<'_>,
        body: &mut Body,
        sending: &mut Sending,
    ) -> Poll<Result<bool, Error>> {
        loop {
            // An answer (other than an interim one) ends the upload.
            if self.poll_early(cx)? {
                return Poll::Ready(Ok(true));
            }
            if *sending == Sending::Done || self.out.len() >= WRITE_CHUNK {
                match self.poll_flush_out(cx) {
                    Poll::Ready(Ok(())) if *sending == Sending::Done => {
                        return Poll::Ready(Ok(false));
                    }
                    Poll::Ready(Ok(())) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        sending.encode(&mut self.out, &data)?;
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Error::Body(e))),
                Poll::Ready(None) => sending.finish(&mut self.out)?,
                Poll::Pending => {
                    if self.out.is_empty() {
                        return Poll::Pending;
                    }
                    match self.poll_flush_out(cx) {
                        Poll::Ready(Ok(())) => continue,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(Error::Io(e))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }

    /// Reads what the upstream sent while the body goes out: `true` once a
    /// final answer's head is complete. Interim answers are dropped.
    fn poll_early(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        loop {
            if has_final_head(&mut self.buf)? {
                return Ok(true);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Error::Invalid("response head too large"));
            }
            match self.poll_fill(cx) {
                Poll::Pending => return Ok(false),
                // Closed while the body goes out: the write will fail, or
                // the head read will say so.
                Poll::Ready(Ok(0)) => return Ok(false),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Err(Error::Io(e)),
            }
        }
    }

    /// Reads more into `buf`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        self.poll_fill_up_to(cx, 0)
    }

    /// Reads more into `buf`, with room for `want` bytes (a body's rest)
    /// between 8 and 64 KiB: a large body takes fewer reads.
    fn poll_fill_up_to(&mut self, cx: &mut Context<'_>, want: u64) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 2048 {
            let room = usize::try_from(want).unwrap_or(usize::MAX);
            self.buf.reserve(room.clamp(8 * 1024, 64 * 1024));
        }
        pin!(self.io.read_buf(&mut self.buf)).poll(cx)
    }
}

/// Writes `name: value` and its line end.
pub(crate) fn header_line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// How a request body is being sent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sending {
    None,
    /// This many bytes are still to come.
    Length(u64),
    Chunked,
    Done,
}

impl Sending {
    fn encode(&mut self, out: &mut Vec<u8>, data: &Bytes) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Sending::Length(left) => {
                let n = data.len() as u64;
                if n > *left {
                    return Err(Error::Body(
                        "the request body is longer than its length".into(),
                    ));
                }
                *left -= n;
                out.extend_from_slice(data);
            }
            Sending::Chunked => {
                let _ = write!(out, "{:x}\r\n", data.len());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            Sending::None | Sending::Done => {
                return Err(Error::Body("a request body after its end".into()));
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Sending::Length(0) | Sending::None | Sending::Done => {}
            Sending::Length(_) => {
                return Err(Error::Body(
                    "the request body is shorter than its length".into(),
                ));
            }
            Sending::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        }
        *self = Sending::Done;
        Ok(())
    }
}

/// Whether `buf` holds a complete final response head; interim (`1xx`)
/// heads at its start are removed.
#[inline(never)]
fn has_final_head(buf: &mut BytesMut) -> Result<bool, Error> {
    loop {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut res,
            buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) => {
                if is_interim(res.code) {
                    buf.advance(len);
                    continue;
                }
                return Ok(true);
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(invalid(e)),
        }
    }
}

/// Takes a complete final response head off the front of `buf`, skipping
/// interim ones; `None` while it is incomplete.
/// `spans` is scratch space, kept from one response to the next. Not
/// inlined: its 3 KiB of header slots stay out of the caller's frame.
#[inline(never)]
fn parse_head(
    buf: &mut BytesMut,
    spans: &mut Vec<Span>,
) -> Result<Option<(Response<()>, StatusCode)>, Error> {
    loop {
        let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut res,
            buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                return Err(Error::Invalid("response head too large"));
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(invalid(e)),
        };
        if is_interim(res.code) {
            buf.advance(len);
            continue;
        }
        let code = res.code.unwrap_or(0);
        if code == 101 {
            // Upgrades go on connections of their own, never a kept one.
            return Err(Error::Invalid(
                "101 Switching Protocols to a request that asked for none",
            ));
        }
        let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid("status code"))?;
        let version = if res.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // The header values share the head's bytes: no copy per value.
        // Where each field lies is noted first, as the parse borrows `buf`.
        let base = buf.as_ptr() as usize;
        let at = |s: &[u8]| {
            let start = (s.as_ptr() as usize).saturating_sub(base);
            if s.is_empty() {
                0..0
            } else {
                start..start + s.len()
            }
        };
        spans.clear();
        spans.extend(
            res.headers
                .iter()
                .map(|h| (at(h.name.as_bytes()), at(h.value))),
        );
        let head = buf.split_to(len).freeze();
        let mut map = HeaderMap::with_capacity(spans.len());
        for (name, value) in spans.drain(..) {
            let name =
                HeaderName::from_bytes(&head[name]).map_err(|_| Error::Invalid("header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(value))
                .map_err(|_| Error::Invalid("header value"))?;
            map.append(name, value);
        }
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = map;
        return Ok(Some((response, status)));
    }
}

/// Where a header field's name and value lie in a response head.
type Span = (std::ops::Range<usize>, std::ops::Range<usize>);

/// An interim answer (`100 Continue`, `103 Early Hints`), to be skipped.
/// `101` is final: it ends the HTTP exchange.
fn is_interim(code: Option<u16>) -> bool {
    code.is_some_and(|c| (100..200).contains(&c) && c != 101)
}

fn invalid(e: httparse::Error) -> Error {
    Error::Invalid(match e {
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Status => "status line",
        httparse::Error::Version => "version",
        httparse::Error::HeaderName => "header name",
        httparse::Error::HeaderValue => "header value",
        _ => "malformed head",
    })
}

/// How the response body is delimited (RFC 9112 §6.3). Removes a
/// `Content-Length` that `Transfer-Encoding` overrides.
fn response_framing(
    head_only: bool,
    status: StatusCode,
    headers: &mut HeaderMap,
) -> Result<Framing, Error> {
    if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Done);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let chunked = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        // A length beside a transfer coding is ignored, and the
        // connection not reused (RFC 9112 §6.3, item 3).
        let both = headers.remove(header::CONTENT_LENGTH).is_some();
        return Ok(match (chunked, both) {
            (true, false) => Framing::Chunked(Chunked::Size),
            (true, true) => Framing::ChunkedOnce(Chunked::Size),
            (false, _) => Framing::Close,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let n = parse_length(part.trim_ascii()).ok_or(Error::Invalid("content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Invalid("differing content-lengths"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Done,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether the upstream lets the connection carry another request.
fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    let has = |token: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if version == Version::HTTP_11 {
        !has("close")
    } else {
        has("keep-alive")
    }
}

/// How much of a response body is still to be read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framing {
    /// This many bytes.
    Length(u64),
    Chunked(Chunked),
    /// Chunked, on a connection that is not reused after it.
    ChunkedOnce(Chunked),
    /// Until the connection closes.
    Close,
    Done,
}

impl Framing {
    /// Whether the body's end is known without the connection closing.
    fn delimited(self) -> bool {
        matches!(
            self,
            Framing::Length(_) | Framing::Chunked(_) | Framing::Done
        )
    }
}

/// Where a chunked body's decoder is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Chunked {
    /// At a chunk-size line.
    Size,
    /// In a chunk's data, with this many bytes to go.
    Data(u64),
    /// At the line end after a chunk's data.
    DataEnd,
    /// In the trailer section, having read this many bytes of it.
    Trailers(usize),
}

/// What one step of the chunked decoder found.
enum Step {
    /// Data to pass on.
    Data(Bytes),
    /// The body ended.
    End,
    /// More bytes are needed.
    More,
}

impl Chunked {
    /// Decodes from the front of `buf` as far as it can.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Step, Error> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(end) = line_end(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Step::More);
                    };
                    let line = &buf[..end];
                    let size = line
                        .split(|b| *b == b';')
                        .next()
                        .unwrap_or(&[])
                        .trim_ascii_end();
                    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit)
                    {
                        return Err(Error::Invalid("chunk size"));
                    }
                    let text =
                        std::str::from_utf8(size).map_err(|_| Error::Invalid("chunk size"))?;
                    let n =
                        u64::from_str_radix(text, 16).map_err(|_| Error::Invalid("chunk size"))?;
                    buf.advance(end + 2);
                    *self = if n == 0 {
                        Chunked::Trailers(0)
                    } else {
                        Chunked::Data(n)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left)
                    };
                    return Ok(Step::Data(data));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Error::Invalid("chunk data longer than its size"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers(seen) => {
                    let Some(end) = line_end(buf, MAX_HEAD.saturating_sub(seen))? else {
                        return Ok(Step::More);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        return Ok(Step::End);
                    }
                    *self = Chunked::Trailers(seen + end + 2);
                }
            }
        }
    }
}

/// Where the CRLF that ends the line at the front of `buf` begins; `None`
/// if it has not arrived and the line is not yet longer than `max`.
/// The same whether the line arrives at once or in pieces.
fn line_end(buf: &[u8], max: usize) -> Result<Option<usize>, Error> {
    let within = max.saturating_add(2).min(buf.len());
    match buf[..within].iter().position(|b| *b == b'\n') {
        Some(0) => Err(Error::Invalid("bare line feed")),
        Some(i) if buf[i - 1] == b'\r' => Ok(Some(i - 1)),
        Some(_) => Err(Error::Invalid("bare line feed")),
        None if within < buf.len() || buf.len() >= max.saturating_add(2) => {
            Err(Error::Invalid("line too long"))
        }
        None => Ok(None),
    }
}

/// Decodes the response in `wire` as a kept connection's client reads it
/// (head, framing, body), fed in two pieces split at `split`: the status
/// and the body, or the error. For `fuzz/`, whose target checks that the
/// split never changes the answer and nothing panics.
#[doc(hidden)]
pub fn decode_response(
    wire: &[u8],
    head_only: bool,
    split: usize,
) -> Result<(u16, Vec<u8>), String> {
    let split = split.min(wire.len());
    let mut pieces = [&wire[..split], &wire[split..]].into_iter();
    let mut buf = BytesMut::new();
    let mut feed = |buf: &mut BytesMut| match pieces.next() {
        Some(piece) => {
            buf.extend_from_slice(piece);
            Ok(())
        }
        None => Err("incomplete".to_owned()),
    };
    let mut spans = Vec::new();
    let (head, status) = loop {
        if let Some(parsed) = parse_head(&mut buf, &mut spans).map_err(|e| e.to_string())? {
            break parsed;
        }
        if buf.len() > MAX_HEAD {
            return Err(Error::Invalid("response head too large").to_string());
        }
        feed(&mut buf)?;
    };
    let (mut parts, ()) = head.into_parts();
    let framing =
        response_framing(head_only, status, &mut parts.headers).map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    match framing {
        Framing::Done => {}
        Framing::Length(mut left) => {
            while left > 0 {
                if buf.is_empty() {
                    feed(&mut buf)?;
                    continue;
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                body.extend_from_slice(&buf.split_to(n));
                left -= n as u64;
            }
        }
        Framing::Chunked(mut state) | Framing::ChunkedOnce(mut state) => loop {
            match state.step(&mut buf).map_err(|e| e.to_string())? {
                Step::Data(data) => body.extend_from_slice(&data),
                Step::End => break,
                Step::More => feed(&mut buf)?,
            }
        },
        Framing::Close => {
            body.extend_from_slice(&buf);
            for piece in pieces {
                body.extend_from_slice(piece);
            }
        }
    }
    Ok((status.as_u16(), body))
}

/// A response body read from its upstream connection.
struct Reply {
    /// `None` once the body ended.
    conn: Option<Conn>,
    framing: Framing,
    /// Whether the connection may carry another request after this body.
    reuse: bool,
    home: Option<Home>,
}

impl Reply {
    /// The body ended: the connection goes home if it may be reused and
    /// nothing followed the response.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        let conn = self.conn.take();
        let home = self.home.take();
        if let (Some(conn), Some(home)) = (conn, home)
            && self.reuse
            && conn.buf.is_empty()
        {
            home.kept.put(conn, home.used);
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut self.framing {
                Framing::Done => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Framing::Chunked(state) | Framing::ChunkedOnce(state) => {
                    match state.step(&mut conn.buf) {
                        Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(data))),
                        Ok(Step::End) => {
                            self.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Step::More) => {}
                        Err(e) => {
                            self.conn = None;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                Framing::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
            let want = match self.framing {
                Framing::Length(left) => left,
                _ => 64 * 1024,
            };
            match ready!(conn.poll_fill_up_to(cx, want)) {
                Ok(0) if self.framing == Framing::Close => {
                    self.reuse = false;
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(Error::Io(incomplete()))));
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
            }
        }
    }
}

impl http_body::Body for Reply {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        this.poll_next(cx)
            .map(|next| next.map(|r| r.map(Frame::data).map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(_) => Poll::Ready(Ok(())),
            Io::Tls(io) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }
}

/// A failure before any answer: the connection was closed, reset, or
/// broken. Anything else failed the exchange itself.
fn unanswered(e: std::io::Error) -> Error {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    if matches!(
        e.kind(),
        BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
    ) {
        Error::Unanswered(e)
    } else {
        Error::Io(e)
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by the upstream")
}

fn incomplete() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "closed by the upstream in the middle of a response",
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use bytes::{Bytes, BytesMut};
    use http::header::{self, HeaderMap, HeaderValue};
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use hyper_rustls::MaybeHttpsStream;
    use hyper_util::rt::TokioIo;
    use portcullis_actions::body::{self, Body};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::{Chunked, Conn, Error, Framing, Home, Step, response_framing};
    use crate::upstream::{Forwarded, Kept, Parked};

    /// Decodes `wire` fed in two reads split at `at`.
    fn decode(wire: &[u8], at: usize) -> Result<Vec<u8>, Error> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in [&wire[..at], &wire[at..]] {
            buf.extend_from_slice(part);
            loop {
                match state.step(&mut buf)? {
                    Step::Data(d) => out.extend_from_slice(&d),
                    Step::End => return Ok(out),
                    Step::More => break,
                }
            }
        }
        Err(Error::Invalid("incomplete"))
    }

    #[test]
    fn chunked_bodies_decode_wherever_the_reads_split() {
        let wire = b"5;name=value\r\nhello\r\n1A \r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
        for at in 0..=wire.len() {
            let out = decode(wire, at).unwrap_or_else(|e| panic!("split at {at}: {e}"));
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "split at {at}");
        }
    }

    #[test]
    fn responses_decode_the_same_wherever_the_wire_splits() {
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(5000));
        let cases = [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_owned(),
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n"
                .to_owned(),
            "HTTP/1.0 200 OK\r\n\r\nuntil the end".to_owned(),
            format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{long_ext}"),
            format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(70_000)),
        ];
        for wire in &cases {
            let whole = super::decode_response(wire.as_bytes(), false, wire.len());
            for split in (0..=wire.len()).step_by(97).chain([wire.len() - 1]) {
                let parted = super::decode_response(wire.as_bytes(), false, split);
                assert_eq!(whole, parted, "{:.40} split at {split}", wire);
            }
        }
        let first = super::decode_response(cases[1].as_bytes(), false, 10);
        assert_eq!(first, Ok((200, b"hello".to_vec())));
        // A chunk line over the limit is refused, arriving whole or not.
        assert!(super::decode_response(cases[3].as_bytes(), false, usize::MAX).is_err());
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for wire in [
            &b"g\r\nx\r\n0\r\n\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"-1\r\n",
        ] {
            assert!(
                decode(wire, wire.len()).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let long = [b"1;".as_slice(), &[b'x'; 5000]].concat();
        assert!(matches!(decode(&long, long.len()), Err(Error::Invalid(_))));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let ok = StatusCode::OK;
        let frame = |head_only, status, pairs: &[(&str, &str)]| {
            response_framing(head_only, status, &mut headers(pairs)).ok()
        };
        let chunked = Some(Framing::Chunked(Chunked::Size));
        assert_eq!(
            frame(true, ok, &[("content-length", "9")]),
            Some(Framing::Done)
        );
        assert_eq!(
            frame(false, StatusCode::NO_CONTENT, &[]),
            Some(Framing::Done)
        );
        assert_eq!(
            frame(false, StatusCode::NOT_MODIFIED, &[("content-length", "9")]),
            Some(Framing::Done)
        );
        assert_eq!(
            frame(false, ok, &[("transfer-encoding", "chunked")]),
            chunked
        );
        assert_eq!(
            frame(false, ok, &[("transfer-encoding", "gzip, chunked")]),
            chunked
        );
        assert_eq!(
            frame(false, ok, &[("transfer-encoding", "gzip")]),
            Some(Framing::Close)
        );
        assert_eq!(
            frame(
                false,
                ok,
                &[("transfer-encoding", "chunked"), ("content-length", "3")]
            ),
            Some(Framing::ChunkedOnce(Chunked::Size))
        );
        assert_eq!(
            frame(false, ok, &[("content-length", "3")]),
            Some(Framing::Length(3))
        );
        assert_eq!(
            frame(false, ok, &[("content-length", "3, 3")]),
            Some(Framing::Length(3))
        );
        assert_eq!(
            frame(false, ok, &[("content-length", "0")]),
            Some(Framing::Done)
        );
        assert_eq!(
            frame(
                false,
                ok,
                &[("content-length", "3"), ("content-length", "4")]
            ),
            None
        );
        assert_eq!(frame(false, ok, &[("content-length", "+3")]), None);
        assert_eq!(frame(false, ok, &[]), Some(Framing::Close));
        // The length beside a transfer coding is dropped, not passed on.
        let mut both = headers(&[("transfer-encoding", "chunked"), ("content-length", "3")]);
        let _ = response_framing(false, ok, &mut both);
        assert!(!both.contains_key(header::CONTENT_LENGTH));
    }

    /// A connection to an upstream that runs `serve` on the one connection
    /// it accepts, and the client connection's slot it goes home to.
    async fn connected<F, Fut>(serve: F) -> (Conn, Arc<Kept>)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((s, _)) = listener.accept().await {
                serve(s).await;
            }
        });
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let conn = Conn::new(MaybeHttpsStream::Http(TokioIo::new(tcp)));
        (conn, Arc::new(Kept::new(Arc::new(Parked::default()))))
    }

    fn fwd() -> &'static Forwarded {
        Box::leak(Box::new(Forwarded {
            client_ip: HeaderValue::from_static("10.0.0.1"),
            proto: HeaderValue::from_static("http"),
            host: Some(HeaderValue::from_static("up")),
        }))
    }

    fn home(kept: &Arc<Kept>) -> Home {
        Home {
            kept: kept.clone(),
            used: Instant::now(),
        }
    }

    fn get() -> Request<Body> {
        Request::get("/x")
            .header("host", "up")
            .body(body::empty())
            .expect("request")
    }

    /// Reads one request head (and nothing after it) off `s`.
    async fn read_request(s: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap_or(0) == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    async fn text(res: http::Response<Body>) -> String {
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn a_response_read_to_its_end_gives_the_connection_back() {
        let (conn, kept) = connected(|mut s| async move {
            for body in ["first", "second"] {
                read_request(&mut s).await;
                let res = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-a: 1\r\nx-a: 2\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(res.as_bytes()).await;
            }
        })
        .await;
        let res = conn
            .send(get(), fwd(), home(&kept))
            .await
            .ok()
            .expect("first");
        let values: Vec<_> = res.headers().get_all("x-a").iter().cloned().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(text(res).await, "first");
        let (conn, _) = kept.take(Instant::now()).expect("the connection came back");
        let res = conn
            .send(get(), fwd(), home(&kept))
            .await
            .ok()
            .expect("second");
        assert_eq!(text(res).await, "second");
    }

    #[tokio::test]
    async fn chunked_responses_and_interim_answers_pass_through() {
        let (conn, kept) = connected(|mut s| async move {
            read_request(&mut s).await;
            let res = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
                       HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n\
                       3\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n";
            let _ = s.write_all(res.as_bytes()).await;
            let _ = s.read(&mut [0u8; 1]).await;
        })
        .await;
        let res = conn
            .send(get(), fwd(), home(&kept))
            .await
            .ok()
            .expect("response");
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(res.headers().get("link").is_none());
        assert_eq!(text(res).await, "abcde");
        assert!(kept.take(Instant::now()).is_some());
    }

    #[tokio::test]
    async fn connections_that_must_close_are_not_reused() {
        for res in [
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok+extra",
            "HTTP/1.1 200 OK\r\n\r\nok",
        ] {
            let (conn, kept) = connected(move |mut s| async move {
                read_request(&mut s).await;
                let _ = s.write_all(res.as_bytes()).await;
            })
            .await;
            let answer = conn
                .send(get(), fwd(), home(&kept))
                .await
                .ok()
                .expect("response");
            assert_eq!(text(answer).await, "ok");
            assert!(kept.take(Instant::now()).is_none(), "{res}");
        }
    }

    #[tokio::test]
    async fn a_connection_closed_without_an_answer_is_told_apart() {
        let (conn, kept) = connected(|mut s| async move {
            read_request(&mut s).await;
        })
        .await;
        let failed = conn
            .send(get(), fwd(), home(&kept))
            .await
            .expect_err("no answer");
        assert!(
            matches!(failed.error, Error::Unanswered(_)),
            "{}",
            failed.error
        );
        assert!(failed.unsent.is_none(), "the request was written");

        let (conn, kept) = connected(|mut s| async move {
            read_request(&mut s).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-le").await;
        })
        .await;
        let failed = conn
            .send(get(), fwd(), home(&kept))
            .await
            .expect_err("half an answer");
        assert!(matches!(failed.error, Error::Io(_)), "{}", failed.error);
    }

    #[tokio::test]
    async fn answers_that_break_http_are_refused() {
        let huge = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(70_000));
        for answer in [
            huge,
            "HTTP/1.1 2OO OK\r\n\r\n".to_owned(),
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n".to_owned(),
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok".to_owned(),
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n".to_owned(),
        ] {
            let wire = answer.clone();
            let (conn, kept) = connected(move |mut s| async move {
                read_request(&mut s).await;
                let _ = s.write_all(wire.as_bytes()).await;
                let _ = s.read(&mut [0u8; 1]).await;
            })
            .await;
            let failed = conn.send(get(), fwd(), home(&kept)).await.err();
            let error = failed.map(|f| f.error);
            assert!(
                matches!(error, Some(Error::Invalid(_))),
                "{:.60}: {error:?}",
                answer
            );
            assert!(kept.take(Instant::now()).is_none());
        }
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_seen_closed() {
        let (go, closing) = tokio::sync::oneshot::channel::<()>();
        let (mut conn, _kept) = connected(|s| async move {
            let _ = closing.await;
            drop(s);
        })
        .await;
        assert!(!conn.is_closed_now());
        let _ = go.send(());
        // Seen once the socket reports the close: a loop, not a timing.
        let mut closed = false;
        for _ in 0..500 {
            if std::future::poll_fn(|cx| std::task::Poll::Ready(conn.is_closed(cx))).await {
                closed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(closed);
    }

    /// A request body that arrives piece by piece, of unknown length.
    struct Trickle(tokio::sync::mpsc::Receiver<Bytes>);

    impl http_body::Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|d| d.map(|d| Ok(http_body::Frame::data(d))))
        }
    }

    #[tokio::test]
    async fn request_bodies_go_out_with_their_length_or_chunked() {
        let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
        let (conn, kept) = connected(move |mut s| async move {
            let mut wire = Vec::new();
            let mut buf = [0u8; 1024];
            for end in [&b"hello"[..], b"0\r\n\r\n"] {
                while !wire.ends_with(end) {
                    match s.read(&mut buf).await {
                        Ok(n) if n > 0 => wire.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let _ = seen_tx.send(std::mem::take(&mut wire)).await;
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            }
        })
        .await;
        let req = Request::post("/up")
            .header("host", "up")
            .header("content-length", "5");
        let res = conn
            .send(
                req.body(body::full("hello")).expect("request"),
                fwd(),
                home(&kept),
            )
            .await;
        assert_eq!(res.ok().expect("first").status(), StatusCode::NO_CONTENT);
        let wire = String::from_utf8(seen.recv().await.expect("first")).expect("text");
        assert!(wire.starts_with("POST /up HTTP/1.1\r\n"), "{wire}");
        assert!(wire.ends_with("content-length: 5\r\n\r\nhello"), "{wire}");

        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let body = body::boxed(Trickle(rx));
        let req = Request::post("/up")
            .header("host", "up")
            .body(body)
            .expect("request");
        let (conn, _) = kept.take(Instant::now()).expect("reused");
        let sending = tokio::spawn(conn.send(req, fwd(), home(&kept)));
        tx.send(Bytes::from_static(b"ab")).await.expect("send");
        tx.send(Bytes::from_static(b"cde")).await.expect("send");
        drop(tx);
        let res = sending.await.expect("task").ok().expect("second");
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let wire = String::from_utf8(seen.recv().await.expect("second")).expect("text");
        assert!(wire.contains("transfer-encoding: chunked\r\n"), "{wire}");
        assert!(
            wire.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"),
            "{wire}"
        );
    }

    #[tokio::test]
    async fn an_early_answer_stops_the_upload() {
        let (conn, kept) = connected(|mut s| async move {
            read_request(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = s.read(&mut [0u8; 1]).await;
        })
        .await;
        // A body that never ends: only the early answer can end the send.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let req = Request::post("/up").header("host", "up");
        let req = req.body(body::boxed(Trickle(rx))).expect("request");
        // Without the early answer the send never ends: cap the wait.
        let cap = std::time::Duration::from_secs(30);
        let res = tokio::time::timeout(cap, conn.send(req, fwd(), home(&kept))).await;
        let res = res
            .expect("the early answer ended the send")
            .ok()
            .expect("answer");
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            kept.take(Instant::now()).is_none(),
            "the upload was cut short"
        );
        drop(tx);
    }
}
