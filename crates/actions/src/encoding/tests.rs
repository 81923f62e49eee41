use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};

use super::*;

// === negotiation ===

#[track_caller]
fn check(lines: &[&str], allowed: &[Algorithm], expect: Option<Algorithm>) {
    let values: Vec<HeaderValue> = lines
        .iter()
        .map(|line| HeaderValue::from_str(line).unwrap())
        .collect();
    let got = negotiate(values.iter(), allowed);
    assert_eq!(
        got, expect,
        "Accept-Encoding: {lines:?}, allowed: {allowed:?}"
    );
}

use Algorithm::{Br, Compress, Deflate, Gzip};
const ALL: &[Algorithm] = &Algorithm::ALL;

#[test]
fn negotiate_without_a_usable_header_picks_nothing() {
    check(&[], ALL, None);
    // An empty field means the client wants no coding (RFC 9110 §12.5.3).
    check(&[""], ALL, None);
    check(&[" , ,"], ALL, None);
    check(&["zstd, bzip2"], ALL, None);
    check(&["gzip"], &[], None);
}

#[test]
fn negotiate_plain_tokens() {
    check(&["gzip"], ALL, Some(Gzip));
    check(&["deflate"], ALL, Some(Deflate));
    check(&["br"], ALL, Some(Br));
    check(&["compress"], ALL, Some(Compress));
    check(&["zstd, br"], ALL, Some(Br));
    check(&["gzip"], &[Br, Deflate], None);
}

#[test]
fn negotiate_ties_follow_allowed_order() {
    check(&["gzip, deflate, br, compress"], ALL, Some(Gzip));
    check(&["br, gzip"], ALL, Some(Gzip));
    check(&["gzip, deflate, br"], &[Br, Gzip, Deflate], Some(Br));
    check(&["gzip;q=0.5, br;q=0.5"], &[Br, Gzip], Some(Br));
    check(&["*"], &[Deflate, Gzip], Some(Deflate));
}

#[test]
fn negotiate_q_values() {
    check(&["gzip;q=0.5, br;q=0.8"], ALL, Some(Br));
    check(&["gzip;q=0.5, br;q=0.8"], &[Gzip, Deflate], Some(Gzip));
    check(&["gzip;q=1, br;q=0.999"], ALL, Some(Gzip));
    check(&["gzip;q=0.001, deflate;q=0.002"], ALL, Some(Deflate));
    check(&["gzip;q=1.000, br;q=1.0"], &[Br, Gzip], Some(Br));
    check(&["gzip;q=0.25, deflate"], ALL, Some(Deflate));
    // "0." is a valid qvalue (zero decimals).
    check(&["gzip;q=0., br;q=0.1"], ALL, Some(Br));
}

#[test]
fn negotiate_q_zero_forbids() {
    check(&["gzip;q=0"], ALL, None);
    check(&["gzip;q=0.000"], ALL, None);
    check(&["gzip;q=0, deflate;q=0.1"], ALL, Some(Deflate));
    // An explicit entry beats `*`, even when it forbids.
    check(&["br;q=0, *"], ALL, Some(Gzip));
    check(&["br;q=0, *"], &[Br], None);
    check(&["*;q=0"], ALL, None);
    check(&["*;q=0, br"], ALL, Some(Br));
}

#[test]
fn negotiate_star() {
    check(&["*"], ALL, Some(Gzip));
    check(&["*"], &[Compress], Some(Compress));
    check(&["*;q=0.1, deflate;q=0.2"], ALL, Some(Deflate));
    check(&["*;q=0.9, gzip;q=0.2"], ALL, Some(Deflate));
    check(&["*;q=0.9, gzip;q=0.2"], &[Gzip], None);
}

#[test]
fn negotiate_identity() {
    // Forbidding identity does not forbid anything else.
    check(&["identity;q=0"], ALL, None);
    check(&["gzip, identity;q=0"], ALL, Some(Gzip));
    check(&["identity;q=0, *"], ALL, Some(Gzip));
    // A client that prefers no coding gets none.
    check(&["identity, gzip;q=0.5"], ALL, None);
    check(&["identity;q=0.6, gzip;q=0.5"], ALL, None);
    // On a tie, or when identity is not listed, the coding wins.
    check(&["identity;q=0.5, gzip;q=0.5"], ALL, Some(Gzip));
    check(&["identity;q=0.5, gzip"], ALL, Some(Gzip));
    check(&["gzip;q=0.1"], ALL, Some(Gzip));
    check(&["identity"], ALL, None);
}

#[test]
fn negotiate_ignores_case() {
    check(&["GZIP"], ALL, Some(Gzip));
    check(&["Gzip;Q=0.5, BR;q=0.9"], ALL, Some(Br));
    check(&["DEFLATE;q=0, *"], &[Deflate], None);
    check(&["IDENTITY, gzip;q=0.5"], ALL, None);
}

#[test]
fn negotiate_aliases() {
    check(&["x-gzip"], ALL, Some(Gzip));
    check(&["X-Compress"], ALL, Some(Compress));
    check(&["x-gzip;q=0, *"], &[Gzip], None);
}

#[test]
fn negotiate_tolerates_whitespace() {
    check(&["  gzip ; q=0.3 ,br;q=0.4  "], ALL, Some(Br));
    check(&["gzip\t;\tq=0.9,\tbr ;q=0.4"], ALL, Some(Gzip));
    check(&["gzip;q = 0.2, br; q=0.1"], ALL, Some(Gzip));
    check(&[",, gzip ,,"], ALL, Some(Gzip));
}

#[test]
fn negotiate_several_header_lines() {
    check(&["gzip;q=0.2", "br;q=0.9"], ALL, Some(Br));
    check(&["identity", "gzip;q=0.5"], ALL, None);
    check(&["br;q=0", "*"], ALL, Some(Gzip));
    // A coding listed twice counts with its lowest weight.
    check(&["gzip", "gzip;q=0"], ALL, None);
    check(&["gzip;q=0.9, br;q=0.5", "gzip;q=0.1"], ALL, Some(Br));
}

#[test]
fn negotiate_malformed_weights_forbid() {
    check(&["gzip;q=2"], ALL, None);
    check(&["gzip;q=1.001"], ALL, None);
    check(&["gzip;q=0.1234"], ALL, None);
    check(&["gzip;q=abc, br"], ALL, Some(Br));
    check(&["gzip;q=, br;q=0.1"], ALL, Some(Br));
    check(&["gzip;q=-1, *"], &[Gzip], None);
    check(&["gzip;q=.5"], ALL, None);
    // Parameters other than `q` are skipped.
    check(&["gzip;level=9"], ALL, Some(Gzip));
    check(&["gzip;level=9;q=0.2, br;q=0.1"], ALL, Some(Gzip));
}

#[test]
fn negotiate_skips_lines_that_are_not_text() {
    let lines = [
        HeaderValue::from_bytes(b"gzip\xff").unwrap(),
        HeaderValue::from_static("br;q=0.5"),
    ];
    assert_eq!(negotiate(lines.iter(), ALL), Some(Br));
    assert_eq!(negotiate(lines.iter().take(1), ALL), None);
}

#[test]
fn algorithm_tokens_round_trip() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_token(alg.token()), Some(alg));
        assert_eq!(alg.to_string(), alg.token());
    }
    assert_eq!(Algorithm::from_token("GZip"), Some(Gzip));
    assert_eq!(Algorithm::from_token("BR"), Some(Br));
    assert_eq!(Algorithm::from_token("x-gzip"), None);
    assert_eq!(Algorithm::from_token("identity"), None);
    assert_eq!(Algorithm::from_token(" gzip"), None);
    assert_eq!(Algorithm::from_token(""), None);
}

// === compression ===

/// A body that yields a fixed list of steps, so tests control frame
/// boundaries, trailers, errors and pending polls.
struct Steps(VecDeque<Step>);

enum Step {
    Frame(Frame<Bytes>),
    Error(&'static str),
    Pending,
}

impl Steps {
    fn data(chunks: &[&[u8]]) -> Steps {
        Steps(
            chunks
                .iter()
                .map(|chunk| Step::Frame(Frame::data(Bytes::copy_from_slice(chunk))))
                .collect(),
        )
    }

    fn then(mut self, step: Step) -> Steps {
        self.0.push_back(step);
        self
    }
}

impl Body for Steps {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.0.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Frame(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(Step::Error(msg)) => Poll::Ready(Some(Err(io::Error::other(msg)))),
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

fn trailers() -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from_static("0"));
    map
}

/// Decodes a complete stream.
fn decode(alg: Algorithm, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match alg {
        Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Deflate => {
            flate2::read::ZlibDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Br => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compress => out = lzw_decode(bytes, true),
    }
    out
}

/// Decodes as much as a streaming decoder can from the start of a stream.
fn decode_prefix(alg: Algorithm, bytes: &[u8]) -> Vec<u8> {
    match alg {
        Gzip => {
            let mut dec = flate2::write::GzDecoder::new(Vec::new());
            dec.write_all(bytes).unwrap();
            dec.flush().unwrap();
            dec.get_ref().clone()
        }
        Deflate => {
            let mut dec = flate2::write::ZlibDecoder::new(Vec::new());
            dec.write_all(bytes).unwrap();
            dec.flush().unwrap();
            dec.get_ref().clone()
        }
        Br => {
            // Read rather than use `DecompressorWriter`, which (in
            // brotli-decompressor 5.0.3) stops after one buffer-full when a
            // single write decodes to more than its buffer. The reader
            // returns everything it decoded before reporting the truncation.
            let mut out = Vec::new();
            let res = brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out);
            assert!(res.is_err(), "a flushed stream is not a finished one");
            out
        }
        Compress => lzw_decode(bytes, false),
    }
}

/// A `compress` decoder that mirrors gzip's `unlzw.c`, quirks included:
/// before the end of input it decodes only whole groups of eight codes, and
/// at a width change or CLEAR it skips to the next group boundary.
fn lzw_decode(input: &[u8], at_eof: bool) -> Vec<u8> {
    assert_eq!(input[..2], [0x1f, 0x9d], "magic");
    assert_ne!(input[2] & 0x80, 0, "block mode");
    let max_bits = usize::from(input[2] & 0x1f);
    let data = &input[3..];
    let total = data.len() * 8;
    let max_max = 1usize << max_bits;
    let mut prefix = vec![0usize; max_max];
    let mut suffix: Vec<u8> = (0..max_max).map(|it| it as u8).collect();
    let round_up = |pos: usize, start: usize, width: usize| {
        start + (pos - start).div_ceil(width * 8) * width * 8
    };
    let (mut width, mut max_code, mut free) = (9, 511, 257);
    let (mut pos, mut group_start) = (0, 0);
    let mut old: Option<usize> = None;
    let mut finchar = 0u8;
    let mut out = Vec::new();
    loop {
        if free > max_code {
            pos = round_up(pos, group_start, width);
            group_start = pos;
            width += 1;
            max_code = if width == max_bits {
                max_max
            } else {
                (1 << width) - 1
            };
        }
        let limit = if at_eof {
            total
        } else {
            let group = width * 8;
            group_start + total.saturating_sub(group_start) / group * group
        };
        if pos + width > limit {
            break;
        }
        let code = (0..width)
            .map(|i| usize::from((data[(pos + i) / 8] >> ((pos + i) % 8)) & 1) << i)
            .sum::<usize>();
        pos += width;
        let Some(old_code) = old else {
            assert!(code < 256, "first code {code} is not a literal");
            finchar = code as u8;
            out.push(finchar);
            old = Some(code);
            continue;
        };
        if code == 256 {
            free = 256;
            pos = round_up(pos, group_start, width);
            group_start = pos;
            width = 9;
            max_code = 511;
            continue;
        }
        let mut stack = Vec::new();
        let mut c = code;
        if c >= free {
            assert_eq!(c, free, "code out of range");
            stack.push(finchar);
            c = old_code;
        }
        while c >= 256 {
            stack.push(suffix[c]);
            c = prefix[c];
        }
        finchar = c as u8;
        stack.push(finchar);
        out.extend(stack.iter().rev());
        if free < max_max {
            prefix[free] = old_code;
            suffix[free] = finchar;
            free += 1;
        }
        old = Some(code);
    }
    out
}

/// Text-like bytes: compressible, but with enough variety to fill an LZW
/// dictionary and to make every encoder work.
fn text(len: usize) -> Vec<u8> {
    let words: Vec<&str> = "policy traffic endpoint request response header gzip the a of \
         ngrok rule action deny allow expression cel 42 compress \n"
        .split(' ')
        .collect();
    let mut state: u32 = 0x2545_f491;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        // xorshift32: deterministic without a dependency.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        out.extend_from_slice(words[state as usize % words.len()].as_bytes());
        out.push(if state & 0x100 == 0 { b' ' } else { b'.' });
        if state & 0x7000 == 0 {
            // Some noise, so that not everything is in the dictionary.
            out.extend_from_slice(&state.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// Compresses `body` and collects it, returning the data and trailers.
async fn collect<B>(body: B, alg: Algorithm) -> (Vec<u8>, Option<HeaderMap>)
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let collected = compress(body, alg).collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (collected.to_bytes().to_vec(), trailers)
}

#[tokio::test(flavor = "current_thread")]
async fn round_trip_multi_frame() {
    let chunks: &[&[u8]] = &[b"hello ", b"world", b", hello again; hello world", b"!"];
    for alg in Algorithm::ALL {
        let (out, trailers) = collect(Steps::data(chunks), alg).await;
        assert_eq!(decode(alg, &out), chunks.concat(), "{alg}");
        assert_eq!(trailers, None);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn round_trip_empty_body() {
    for alg in Algorithm::ALL {
        let (out, _) = collect(Full::new(Bytes::new()), alg).await;
        assert!(!out.is_empty(), "{alg}: an empty stream still has a header");
        assert_eq!(decode(alg, &out), b"", "{alg}");
        let (out, _) = collect(Empty::<Bytes>::new(), alg).await;
        assert_eq!(decode(alg, &out), b"", "{alg}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn round_trip_skips_empty_frames() {
    let chunks: &[&[u8]] = &[b"", b"abc", b"", b"", b"def", b""];
    for alg in Algorithm::ALL {
        let mut body = compress(Steps::data(chunks), alg);
        let mut n_frames = 0;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(!data.is_empty(), "{alg}: empty frame");
            out.extend_from_slice(&data);
            n_frames += 1;
        }
        assert_eq!(decode(alg, &out), b"abcdef", "{alg}");
        // One frame per non-empty input frame, at most one for the end.
        assert!(n_frames <= 3, "{alg}: {n_frames} frames");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn round_trip_one_mebibyte() {
    let input = text(1 << 20);
    for alg in Algorithm::ALL {
        let (out, _) = collect(Full::new(Bytes::from(input.clone())), alg).await;
        assert!(out.len() < input.len() / 2, "{alg}: {} bytes", out.len());
        assert!(decode(alg, &out) == input, "{alg}: round trip differs");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn round_trip_one_mebibyte_in_frames() {
    let input = text(1 << 20);
    let chunks: Vec<&[u8]> = input.chunks(10_000).collect();
    for alg in Algorithm::ALL {
        let (out, _) = collect(Steps::data(&chunks), alg).await;
        assert!(decode(alg, &out) == input, "{alg}: round trip differs");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn round_trip_many_small_frames() {
    let input = text(50_000);
    let chunks: Vec<&[u8]> = input.chunks(7).collect();
    for alg in Algorithm::ALL {
        let (out, _) = collect(Steps::data(&chunks), alg).await;
        assert!(decode(alg, &out) == input, "{alg}: round trip differs");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn round_trip_repetitive_data() {
    // Long runs exercise LZW's "code not yet in the dictionary" case.
    let input = [vec![b'a'; 100_000], vec![0; 70_000], b"ab".repeat(30_000)].concat();
    for alg in Algorithm::ALL {
        let (out, _) = collect(Full::new(Bytes::from(input.clone())), alg).await;
        assert!(out.len() < input.len() / 20, "{alg}: {} bytes", out.len());
        assert!(decode(alg, &out) == input, "{alg}: round trip differs");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_frame_is_flushed() {
    let input = text(300_000);
    let chunks: &[&[u8]] = &[
        b"data: first event\n\n",
        &input[..100_000],
        b"data: x\n\n",
        &input[100_000..],
        b"a",
    ];
    for alg in Algorithm::ALL {
        let mut body = compress(Steps::data(chunks), alg);
        let mut out = Vec::new();
        for n in 1..=chunks.len() {
            let frame = body.frame().await.unwrap().unwrap();
            out.extend_from_slice(frame.data_ref().unwrap());
            assert!(
                decode_prefix(alg, &out) == chunks[..n].concat(),
                "{alg}: output after frame {n} does not decode to the input so far"
            );
            assert!(!body.is_end_stream());
        }
        while let Some(frame) = body.frame().await {
            out.extend_from_slice(frame.unwrap().data_ref().unwrap());
        }
        assert!(decode(alg, &out) == chunks.concat(), "{alg}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn trailers_pass_through() {
    for alg in Algorithm::ALL {
        let body =
            Steps::data(&[b"grpc ", b"message"]).then(Step::Frame(Frame::trailers(trailers())));
        let (out, got) = collect(body, alg).await;
        assert_eq!(decode(alg, &out), b"grpc message", "{alg}");
        assert_eq!(got, Some(trailers()), "{alg}");

        let body = Steps::data(&[]).then(Step::Frame(Frame::trailers(trailers())));
        let (out, got) = collect(body, alg).await;
        assert_eq!(decode(alg, &out), b"", "{alg}");
        assert_eq!(got, Some(trailers()), "{alg}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn trailers_come_last_and_end_the_stream() {
    for alg in Algorithm::ALL {
        let body = Steps::data(&[b"x"]).then(Step::Frame(Frame::trailers(trailers())));
        let mut body = compress(body, alg);
        let mut kinds = Vec::new();
        while let Some(frame) = body.frame().await {
            kinds.push(if frame.unwrap().is_data() {
                "data"
            } else {
                "trailers"
            });
        }
        assert_eq!(kinds.last(), Some(&"trailers"), "{alg}");
        assert_eq!(kinds.iter().filter(|it| **it == "trailers").count(), 1);
        assert!(body.is_end_stream());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn pending_inner_body_is_waited_for() {
    for alg in Algorithm::ALL {
        let body = Steps(VecDeque::from([
            Step::Pending,
            Step::Frame(Frame::data(Bytes::from_static(b"late"))),
            Step::Pending,
            Step::Frame(Frame::data(Bytes::from_static(b" bytes"))),
            Step::Pending,
        ]));
        let (out, _) = collect(body, alg).await;
        assert_eq!(decode(alg, &out), b"late bytes", "{alg}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn inner_error_ends_the_stream() {
    for alg in Algorithm::ALL {
        let body = Steps::data(&[b"partial"])
            .then(Step::Error("upstream reset"))
            .then(Step::Frame(Frame::data(Bytes::from_static(b"never"))));
        let mut body = compress(body, alg);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(
            decode_prefix(alg, first.data_ref().unwrap()),
            b"partial",
            "{alg}"
        );
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "upstream reset");
        assert!(body.frame().await.is_none(), "{alg}");
        assert!(body.is_end_stream());
    }
}

#[test]
fn size_hint_is_unknown() {
    let body = compress(Full::new(Bytes::from_static(b"0123456789")), Gzip);
    assert_eq!(body.size_hint().exact(), None);
    assert_eq!(body.size_hint().lower(), 0);
    assert!(!body.is_end_stream());
}

#[test]
fn compressed_body_is_send_and_sync() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Compressed<Full<Bytes>>>();
}

// === compress (LZW) format ===

fn lzw(data: &[u8]) -> Vec<u8> {
    let mut enc = Lzw::new();
    enc.write(data);
    enc.finish()
}

#[test]
fn lzw_matches_compress_output() {
    // What `compress -c` (ncompress 4.2.4) writes for these inputs.
    assert_eq!(lzw(b""), [0x1f, 0x9d, 0x90]);
    assert_eq!(lzw(b"a"), [0x1f, 0x9d, 0x90, 0x61, 0x00]);
    assert_eq!(lzw(b"aaa"), [0x1f, 0x9d, 0x90, 0x61, 0x02, 0x02]);
}

#[test]
fn lzw_flush_pads_to_a_group_with_clear() {
    let mut enc = Lzw::new();
    enc.write(b"ab");
    enc.flush();
    // Header, then `a`, `b` and CLEAR at 9 bits, padded to a group of 9
    // bytes.
    assert_eq!(
        enc.out,
        [0x1f, 0x9d, 0x90, 0x61, 0xc4, 0x00, 0x04, 0, 0, 0, 0, 0]
    );
    assert_eq!(lzw_decode(&enc.out, false), b"ab");
    enc.write(b"ab");
    assert_eq!(lzw_decode(&enc.finish(), true), b"abab");
}

#[test]
fn lzw_flush_on_a_group_boundary_keeps_the_dictionary() {
    let mut enc = Lzw::new();
    // Eight distinct bytes: eight 9-bit codes, exactly one group.
    enc.write(b"abcdefgh");
    enc.flush();
    assert_eq!(enc.out.len(), 3 + 9);
    assert_eq!(enc.next_code, LZW_FIRST + 7);
    // The entry for "h" plus the next byte is added once that byte comes.
    enc.write(b"hi");
    assert_eq!(enc.next_code, LZW_FIRST + 9);
    assert_eq!(lzw_decode(&enc.finish(), true), b"abcdefghhi");
}

#[test]
fn lzw_widens_codes_and_clears_a_full_dictionary() {
    // Text fills the dictionary; noise then makes the ratio drop, which
    // clears it.
    let input = [text(400_000), noise(100_000), text(200_000)].concat();
    let mut enc = Lzw::new();
    let mut saw_max_width = false;
    let mut saw_clear = false;
    for chunk in input.chunks(4096) {
        let before = enc.next_code;
        enc.write(chunk);
        saw_max_width |= enc.width == LZW_MAX_BITS;
        saw_clear |= enc.next_code < before;
    }
    assert!(saw_max_width && saw_clear);
    assert!(lzw_decode(&enc.finish(), true) == input);
}
