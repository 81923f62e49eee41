//! Content codings and their limits; the action itself runs end to end in
//! `tests/body_rewrite.rs`.

use std::io::Write as _;

use http::HeaderMap;
use http::header::{CONTENT_ENCODING, HeaderValue};

use super::{Algorithm, MAX_BODY, coding, decode, encode};

fn headers(codings: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for c in codings {
        h.append(CONTENT_ENCODING, HeaderValue::from_str(c).expect("value"));
    }
    h
}

#[test]
fn one_known_coding_is_read_and_others_are_refused() {
    assert_eq!(coding(&headers(&[])), Ok(None));
    assert_eq!(coding(&headers(&["identity"])), Ok(None));
    assert_eq!(coding(&headers(&["GZIP"])), Ok(Some(Algorithm::Gzip)));
    assert_eq!(coding(&headers(&["br"])), Ok(Some(Algorithm::Br)));
    assert!(coding(&headers(&["gzip, br"])).is_err());
    assert!(coding(&headers(&["gzip", "gzip"])).is_err());
    assert!(coding(&headers(&["zstd"])).is_err());
    assert!(coding(&headers(&["compress"])).is_err());
}

#[test]
fn each_coding_decodes_what_it_encodes() {
    let text = bytes::Bytes::from_static(b"card 4111 1111 1111 1111, twice: 4111 1111 1111 1111");
    for c in [Algorithm::Gzip, Algorithm::Deflate, Algorithm::Br] {
        let enc = encode(&text, c).expect("encode");
        assert_ne!(enc, text);
        assert_eq!(decode(&enc, c).expect("decode"), text, "{c}");
    }
    // Raw DEFLATE, which some servers send as `deflate`, is read too.
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    raw.write_all(&text).expect("write");
    let raw = raw.finish().expect("finish");
    assert_eq!(decode(&raw, Algorithm::Deflate).expect("raw deflate"), text);
    assert!(decode(b"not gzip", Algorithm::Gzip).is_err());
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(MAX_BODY >> 20) + 2 {
        z.write_all(&zeros).expect("write");
    }
    let bomb = z.finish().expect("finish");
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let err = decode(&bomb, Algorithm::Gzip).expect_err("too large");
    assert!(err.contains("more than 8 MiB"), "{err}");
}
