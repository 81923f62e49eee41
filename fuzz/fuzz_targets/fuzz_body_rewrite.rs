//! Arbitrary bytes as a coded body for the body find-replace actions: in
//! each coding they decode or are refused, never panic, and never to more
//! than the limit (a decompression bomb stops there); and whatever is
//! encoded decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_actions::body_find_replace::{MAX_BODY, decode, encode};
use portcullis_actions::encoding::Algorithm;

fuzz_target!(|data: &[u8]| {
    for coding in [Algorithm::Gzip, Algorithm::Deflate, Algorithm::Br] {
        if let Ok(plain) = decode(data, coding) {
            assert!(plain.len() <= MAX_BODY);
        }
        let coded = encode(data, coding).expect("encoding never fails");
        assert_eq!(decode(&coded, coding).expect("round trip").as_ref(), data);
    }
});
