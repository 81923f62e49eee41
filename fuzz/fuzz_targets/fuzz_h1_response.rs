//! Arbitrary bytes as an upstream's answer, decoded as a kept upstream
//! connection's client reads it (head, framing, chunked body): no input
//! panics, and feeding it in two pieces, split anywhere, gives the same
//! status and body, or the same error, as feeding it at once.
//!
//! The input's first byte picks the split and whether the request was
//! `HEAD`; the rest is the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_proxy::decode_response;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, wire)) = data.split_first() else {
        return;
    };
    let head_only = pick & 1 == 1;
    let whole = decode_response(wire, head_only, wire.len());
    let split = (usize::from(pick >> 1) * 131) % (wire.len() + 1);
    let parted = decode_response(wire, head_only, split);
    assert_eq!(whole, parted, "split at {split}");
});
