//! Response compression: content negotiation and streaming encoders.
//!
//! This is the pure core of the `compress-response` action: [`negotiate`]
//! picks a content coding from the client's `Accept-Encoding` field, and
//! [`compress`] wraps a response body so that it is encoded as it streams.
//! Deciding whether a response should be compressed at all (already encoded,
//! no match) and rewriting `Content-Encoding`, `Content-Length` and `Vary`
//! is the caller's job.
//!
//! Every data frame is flushed through the encoder as soon as it arrives, so
//! a streaming response (server-sent events, long polling) reaches the client
//! frame by frame instead of waiting for the encoder's buffers to fill.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};

#[cfg(test)]
mod tests;

/// An error while reading or compressing a body.
pub use crate::body::BoxError;

/// A content coding that `compress-response` can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `gzip`: DEFLATE in the gzip file format (RFC 1952).
    Gzip,
    /// `deflate`: DEFLATE in the zlib format (RFC 1950), which is what
    /// RFC 9110 §8.4.1.2 means by "deflate", not raw DEFLATE.
    Deflate,
    /// `br`: Brotli (RFC 7932).
    Br,
    /// `compress`: adaptive LZW as written by the Unix `compress` program
    /// (the `.Z` format, RFC 9110 §8.4.1.1), with 16-bit codes.
    ///
    /// The format has no way to flush short of a dictionary reset, which
    /// [`compress`] does at the end of most frames, so bodies that arrive in
    /// small frames compress poorly, or even grow. No browser asks for it;
    /// it is here because the action's `algorithms` field lists it.
    Compress,
}

/// Picks the content coding to answer with, per RFC 9110 §12.5.3, among
/// `allowed`.
///
/// Each algorithm gets the weight of its own entry in `Accept-Encoding`
/// (`x-gzip` and `x-compress` count as `gzip` and `compress`), else the
/// weight of `*`, else it is not acceptable; `q=0` forbids. The highest
/// weight wins and ties go to the algorithm that comes first in `allowed`.
/// When an entry is listed more than once, its lowest weight counts, and an
/// entry whose weight does not parse counts as `q=0`: when the client's
/// wishes are unclear we would rather not compress than send something it
/// cannot read.
///
/// `identity` (no compression) competes only when the client lists it, or
/// `*`, and it wins only with a strictly higher weight than the best
/// algorithm: a client that lists a coding at all has said it can read it.
///
/// Returns `None` when there is no `Accept-Encoding` field, when it is empty
/// (the client wants no coding, §12.5.3), when nothing in `allowed` is
/// acceptable, or when the client prefers `identity`. Header lines that are
/// not visible ASCII are ignored.
#[must_use]
pub fn negotiate<'a>(
    accept_encoding: impl Iterator<Item = &'a HeaderValue>,
    allowed: &[Algorithm],
) -> Option<Algorithm> {
    let weights = Weights::parse(accept_encoding);
    let mut best: Option<(Algorithm, u16)> = None;
    for &alg in allowed {
        let q = weights.get(alg).or(weights.star).unwrap_or(0);
        let better = match best {
            Some((_, best_q)) => q > best_q,
            None => q > 0,
        };
        if better {
            best = Some((alg, q));
        }
    }
    let (alg, q) = best?;
    match weights.identity.or(weights.star) {
        Some(identity_q) if identity_q > q => None,
        _ => Some(alg),
    }
}

/// Wraps `body` so that it is compressed with `algorithm` as it streams.
///
/// Each data frame is fed to the encoder and the encoder is flushed, so every
/// output frame, together with the frames before it, decodes to everything
/// the inner body has produced so far. Empty data frames are skipped. The
/// encoder is finished when the inner body ends or sends trailers; trailers
/// are passed through after the encoder's last bytes. An error from the
/// inner body is passed on and ends the stream without finishing the
/// encoder, so that a broken response never looks like a complete one.
///
/// Flushing costs a few bytes per frame (a sync marker for gzip and deflate,
/// an empty metablock for Brotli), which is the price of not holding back
/// streaming responses. For `compress` it usually also restarts the
/// dictionary (see [`Algorithm::Compress`]).
///
/// The result has no size hint: its length is unknown until the end.
pub fn compress<B>(body: B, algorithm: Algorithm) -> Compressed<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    Compressed {
        body,
        algorithm,
        encoder: Encoder::new(algorithm),
        state: State::Streaming,
    }
}

pin_project_lite::pin_project! {
    /// A body compressed as it streams; see [`compress`].
    pub struct Compressed<B> {
        #[pin]
        body: B,
        algorithm: Algorithm,
        encoder: Encoder,
        state: State,
    }
}

// === impl Algorithm ===

impl Algorithm {
    /// Every algorithm, in the order the `compress-response` documentation
    /// lists them, which is also the default `algorithms`.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Gzip,
        Algorithm::Deflate,
        Algorithm::Br,
        Algorithm::Compress,
    ];

    /// Parses a content-coding token (`gzip`, `deflate`, `br`, `compress`),
    /// ignoring ASCII case as RFC 9110 §8.4.1 requires for content codings.
    ///
    /// The `x-gzip` and `x-compress` aliases are not accepted here: they
    /// belong in `Accept-Encoding`, which [`negotiate`] handles, not in a
    /// policy's `algorithms` list.
    #[must_use]
    pub fn from_token(s: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.token().eq_ignore_ascii_case(s))
    }

    /// The content-coding token, as it goes in `Content-Encoding`.
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Gzip => "gzip",
            Algorithm::Deflate => "deflate",
            Algorithm::Br => "br",
            Algorithm::Compress => "compress",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

// === impl Weights ===

/// The weights an `Accept-Encoding` field gives, in thousandths (a qvalue
/// has at most three decimals, so `1000` is `q=1`). `None` means "not
/// listed".
#[derive(Default)]
struct Weights {
    gzip: Option<u16>,
    deflate: Option<u16>,
    br: Option<u16>,
    compress: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
}

impl Weights {
    fn parse<'a>(lines: impl Iterator<Item = &'a HeaderValue>) -> Weights {
        let mut weights = Weights::default();
        for line in lines {
            let Ok(line) = line.to_str() else { continue };
            for element in line.split(',') {
                let mut parts = element.split(';');
                let coding = parts.next().unwrap_or_default().trim();
                if coding.is_empty() {
                    // `#rule` lists allow empty elements (`gzip, , br`).
                    continue;
                }
                let q = parse_weight(parts).unwrap_or(0);
                if let Some(slot) = weights.slot(coding) {
                    *slot = Some(slot.map_or(q, |old| old.min(q)));
                }
            }
        }
        weights
    }

    fn slot(&mut self, coding: &str) -> Option<&mut Option<u16>> {
        let is = |token: &str| coding.eq_ignore_ascii_case(token);
        if is("gzip") || is("x-gzip") {
            Some(&mut self.gzip)
        } else if is("deflate") {
            Some(&mut self.deflate)
        } else if is("br") {
            Some(&mut self.br)
        } else if is("compress") || is("x-compress") {
            Some(&mut self.compress)
        } else if is("identity") {
            Some(&mut self.identity)
        } else if is("*") {
            Some(&mut self.star)
        } else {
            None
        }
    }

    fn get(&self, alg: Algorithm) -> Option<u16> {
        match alg {
            Algorithm::Gzip => self.gzip,
            Algorithm::Deflate => self.deflate,
            Algorithm::Br => self.br,
            Algorithm::Compress => self.compress,
        }
    }
}

/// Reads the weight from an element's parameters: `1000` when there is no
/// `q`, `None` when `q` is malformed. Other parameters are not in RFC 9110's
/// grammar but are skipped rather than rejected, as most servers do.
fn parse_weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            return parse_qvalue(value.trim());
        }
    }
    Some(1000)
}

/// Parses `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
/// into thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (digit, scale) in frac.bytes().zip([100, 10, 1]) {
        thousandths += u16::from(digit - b'0') * scale;
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

// === impl Compressed ===

/// Where a [`Compressed`] body is in its stream.
enum State {
    /// Reading the inner body.
    Streaming,
    /// The encoder is finished; the inner body's trailers, if any, are still
    /// to be sent.
    Finished { trailers: Option<HeaderMap> },
}

impl<B> Body for Compressed<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            if let State::Finished { trailers } = this.state {
                return Poll::Ready(trailers.take().map(|it| Ok(Frame::trailers(it))));
            }
            let trailers = match ready!(this.body.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => match this.encoder.write(&data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(err) => {
                            *this.state = State::Finished { trailers: None };
                            return Poll::Ready(Some(Err(err.into())));
                        }
                    },
                    Err(frame) => match frame.into_trailers() {
                        // Trailers are the last frame of a body.
                        Ok(trailers) => Some(trailers),
                        // http-body 1 has no other kind of frame; should one
                        // appear, it carries nothing we know how to encode.
                        Err(_) => continue,
                    },
                },
                Some(Err(err)) => {
                    *this.state = State::Finished { trailers: None };
                    return Poll::Ready(Some(Err(err.into())));
                }
                None => None,
            };
            *this.state = State::Finished { trailers };
            match this.encoder.finish() {
                // The next turn of the loop sends the trailers or ends.
                Ok(tail) if tail.is_empty() => continue,
                Ok(tail) => return Poll::Ready(Some(Ok(Frame::data(tail)))),
                Err(err) => {
                    *this.state = State::Finished { trailers: None };
                    return Poll::Ready(Some(Err(err.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Finished { trailers: None })
    }

    // The compressed length is unknown until the end, so `size_hint` keeps
    // its default rather than passing on the inner body's, which would make
    // a server send a wrong `Content-Length`.
}

impl<B: fmt::Debug> fmt::Debug for Compressed<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressed")
            .field("body", &self.body)
            .field("algorithm", &self.algorithm)
            .field("finished", &matches!(self.state, State::Finished { .. }))
            .finish_non_exhaustive()
    }
}

// === impl Encoder ===

/// Brotli quality: 11, the library default, is meant for static assets and
/// is far too slow for compressing on the fly; servers use 4 to 6 for
/// dynamic responses.
const BROTLI_QUALITY: u32 = 5;

/// Brotli window: 2^19 = 512 KiB, as nginx's brotli module uses, to bound
/// the memory each compressed response holds.
const BROTLI_LGWIN: u32 = 19;

/// Size of the buffer the Brotli writer encodes into before copying out.
const BROTLI_BUFFER: usize = 4096;

/// One encoder per response, writing into a `Vec` that is drained after
/// every flush.
enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Deflate(ZlibEncoder<Vec<u8>>),
    // Boxed, as the Brotli and LZW states are large next to the others.
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Compress(Box<Lzw>),
    Finished,
}

impl Encoder {
    fn new(algorithm: Algorithm) -> Encoder {
        // gzip and deflate use zlib's default level, 6, the usual middle
        // between speed and size.
        match algorithm {
            Algorithm::Gzip => Encoder::Gzip(GzEncoder::new(Vec::new(), Compression::default())),
            Algorithm::Deflate => {
                Encoder::Deflate(ZlibEncoder::new(Vec::new(), Compression::default()))
            }
            Algorithm::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_LGWIN,
            ))),
            Algorithm::Compress => Encoder::Compress(Box::new(Lzw::new())),
        }
    }

    /// Encodes `data` and flushes, returning everything encoded so far.
    fn write(&mut self, data: &[u8]) -> io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(enc) => {
                enc.write_all(data)?;
                // `flush` is a zlib sync flush: it ends on a byte boundary
                // with everything written so far decodable.
                enc.flush()?;
                enc.get_mut()
            }
            Encoder::Deflate(enc) => {
                enc.write_all(data)?;
                enc.flush()?;
                enc.get_mut()
            }
            Encoder::Br(enc) => {
                enc.write_all(data)?;
                // `flush` is BROTLI_OPERATION_FLUSH.
                enc.flush()?;
                enc.get_mut()
            }
            Encoder::Compress(enc) => {
                enc.write(data);
                enc.flush();
                &mut enc.out
            }
            Encoder::Finished => return Err(io::Error::other("compressor written after finish")),
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// Finishes the stream, returning its last bytes.
    fn finish(&mut self) -> io::Result<Bytes> {
        let out = match std::mem::replace(self, Encoder::Finished) {
            Encoder::Gzip(enc) => enc.finish()?,
            Encoder::Deflate(enc) => enc.finish()?,
            // `into_inner` finishes the stream. It swallows encoder errors,
            // but writing into a `Vec` cannot fail and the encoder only fails
            // on misuse, which this type rules out.
            Encoder::Br(enc) => enc.into_inner(),
            Encoder::Compress(enc) => (*enc).finish(),
            Encoder::Finished => Vec::new(),
        };
        Ok(Bytes::from(out))
    }
}

// === impl Lzw ===

/// The `compress` magic number.
const LZW_MAGIC: [u8; 2] = [0x1f, 0x9d];
/// Widest code; 16 is what `compress` writes by default and every decoder
/// reads.
const LZW_MAX_BITS: u32 = 16;
/// Header flag: the CLEAR code is in use.
const LZW_BLOCK_MODE: u8 = 0x80;
/// Narrowest code.
const LZW_INIT_BITS: u32 = 9;
/// The code that resets the dictionary.
const LZW_CLEAR: u32 = 256;
/// The first code for a multi-byte string (256 is CLEAR).
const LZW_FIRST: u32 = 257;
/// One past the largest code.
const LZW_MAX_MAX_CODE: u32 = 1 << LZW_MAX_BITS;
/// Input bytes between checks of the compression ratio once the dictionary
/// is full, as in `compress`.
const LZW_CHECK_GAP: u64 = 10_000;

/// An encoder for the `compress` (`.Z`) format, following `compress` 4.x and
/// gzip's `unlzw.c`, the decoder most tools use.
///
/// The format: a three-byte header (magic, then the maximum code width and
/// the block-mode flag), then LZW codes packed least significant bit first.
/// Codes start 9 bits wide and widen by one when the next free code would
/// not fit, up to 16 bits. Codes are written in groups of eight; when the
/// width changes, or after a CLEAR code, the current group is padded with
/// zero bits to its full size, because decoders read whole groups and skip
/// to the next group boundary at those points.
///
/// The format has no flush marker. To flush, the pending string's code is
/// written and, unless the output already ends on a group boundary, a CLEAR
/// code follows, whose padding completes the group. Decoders such as
/// gzip's only decode whole groups until the end of input, so this is the
/// only way to make everything so far decodable; the cost is a dictionary
/// reset per flush, so `compress` suits large frames better than small ones.
///
/// Once the dictionary is full it stays as it is while the overall
/// compression ratio keeps improving, checked every [`LZW_CHECK_GAP`] input
/// bytes; when the ratio drops, a CLEAR code starts a fresh dictionary. This
/// is `compress`'s rule, and without flushes the output is the same as
/// `compress`'s until the dictionary first fills.
struct Lzw {
    /// Dictionary: `prefix code << 8 | next byte` to the string's code.
    dict: HashMap<u32, u32>,
    /// The code the next dictionary entry gets (`free_ent`).
    next_code: u32,
    /// Width of the next code written, in bits.
    width: u32,
    /// Widen once `next_code` exceeds this.
    max_code: u32,
    /// The code of the string matched so far, not yet written.
    ent: Option<u32>,
    /// A code written by a flush whose dictionary entry (that code plus the
    /// next byte) waits for that byte.
    prev: Option<u32>,
    /// Bits written but not yet a whole byte, and how many.
    bit_buf: u32,
    n_buffered: u32,
    /// Bits written into the current group of eight codes.
    group_bits: u32,
    /// Encoded bytes not yet taken.
    out: Vec<u8>,
    /// Bytes read and written so far, header included, for the ratio check.
    n_in: u64,
    n_out: u64,
    /// `n_in` at which the ratio is checked next.
    checkpoint: u64,
    /// The last ratio checked, `n_in / n_out` with 8 fractional bits.
    ratio: u64,
}

impl Lzw {
    fn new() -> Lzw {
        let mut out = Vec::new();
        out.extend_from_slice(&LZW_MAGIC);
        // INVARIANT: LZW_MAX_BITS (16) fits in the header byte's low 5 bits.
        out.push(LZW_BLOCK_MODE | LZW_MAX_BITS as u8);
        Lzw {
            n_in: 0,
            n_out: out.len() as u64,
            checkpoint: LZW_CHECK_GAP,
            ratio: 0,
            dict: HashMap::new(),
            next_code: LZW_FIRST,
            width: LZW_INIT_BITS,
            max_code: (1 << LZW_INIT_BITS) - 1,
            ent: None,
            prev: None,
            bit_buf: 0,
            n_buffered: 0,
            group_bits: 0,
            out,
        }
    }

    fn write(&mut self, data: &[u8]) {
        for &byte in data {
            self.n_in += 1;
            let byte = u32::from(byte);
            match self.ent {
                Some(ent) => match self.dict.get(&(ent << 8 | byte)) {
                    Some(&code) => self.ent = Some(code),
                    None => {
                        self.write_code(ent);
                        self.add_entry(ent, byte);
                        self.ent = Some(byte);
                    }
                },
                None => {
                    if let Some(prev) = self.prev.take() {
                        self.add_entry(prev, byte);
                    }
                    self.ent = Some(byte);
                }
            }
        }
    }

    /// Makes everything written so far decodable; see the type's docs.
    fn flush(&mut self) {
        if let Some(ent) = self.ent.take() {
            self.write_code(ent);
            self.prev = Some(ent);
        }
        if self.group_bits != 0 {
            self.clear();
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if let Some(ent) = self.ent.take() {
            self.write_code(ent);
        }
        // The last group may stay partial: at the end of input decoders read
        // every whole code that is left.
        if self.n_buffered > 0 {
            self.push(self.bit_buf as u8);
        }
        self.out
    }

    fn add_entry(&mut self, prefix: u32, byte: u32) {
        if self.next_code < LZW_MAX_MAX_CODE {
            self.dict.insert(prefix << 8 | byte, self.next_code);
            self.next_code += 1;
        } else if self.n_in >= self.checkpoint {
            self.checkpoint = self.n_in + LZW_CHECK_GAP;
            let ratio = self.n_in.saturating_mul(256) / self.n_out.max(1);
            if ratio >= self.ratio {
                self.ratio = ratio;
            } else {
                // The full dictionary no longer fits the data.
                self.clear();
            }
        }
    }

    fn clear(&mut self) {
        self.emit(LZW_CLEAR);
        self.pad_group();
        self.dict.clear();
        self.next_code = LZW_FIRST;
        self.width = LZW_INIT_BITS;
        self.max_code = (1 << LZW_INIT_BITS) - 1;
        self.prev = None;
        self.ratio = 0;
    }

    /// Writes a string's code, widening afterwards if the next entry will
    /// not fit. The check runs before that entry is added, and the decoder,
    /// which adds entries one code later, makes the same decision before
    /// reading the next code.
    fn write_code(&mut self, code: u32) {
        self.emit(code);
        if self.next_code > self.max_code && self.width < LZW_MAX_BITS {
            self.pad_group();
            self.width += 1;
            self.max_code = if self.width == LZW_MAX_BITS {
                LZW_MAX_MAX_CODE
            } else {
                (1 << self.width) - 1
            };
        }
    }

    fn emit(&mut self, code: u32) {
        // INVARIANT: n_buffered < 8 and width <= 16, so at most 23 bits are
        // in use.
        self.bit_buf |= code << self.n_buffered;
        self.n_buffered += self.width;
        while self.n_buffered >= 8 {
            // Truncation keeps the low byte, the next one in the stream.
            self.push(self.bit_buf as u8);
            self.bit_buf >>= 8;
            self.n_buffered -= 8;
        }
        self.group_bits += self.width;
        if self.group_bits == self.width * 8 {
            self.group_bits = 0;
        }
    }

    /// Pads the current group of codes with zero bits to its full
    /// `width` bytes.
    fn pad_group(&mut self) {
        if self.group_bits == 0 {
            return;
        }
        let mut pad = (self.width * 8).saturating_sub(self.group_bits);
        if self.n_buffered > 0 {
            self.push(self.bit_buf as u8);
            pad = pad.saturating_sub(8 - self.n_buffered);
        }
        // Groups start on byte boundaries, so `pad` is whole bytes now.
        for _ in 0..pad / 8 {
            self.push(0);
        }
        self.bit_buf = 0;
        self.n_buffered = 0;
        self.group_bits = 0;
    }

    fn push(&mut self, byte: u8) {
        self.out.push(byte);
        self.n_out += 1;
    }
}
