//! Arbitrary paths and authorities through request canonicalization: no
//! input panics, and every accepted input's canonical form
//! - is its own canonical form (idempotent, and recognised without a
//!   rewrite unless it has non-ASCII escapes),
//! - has no `.` or `..` segment, no `\`, and no `//` when slashes merge,
//! - parses as an HTTP request target to exactly itself.
//!
//! The input's first byte picks the options; the rest is the path, and,
//! after a NUL, an authority.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use portcullis_canon::{EscapedSlashes, PathOptions, authority, path};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (raw, host) = text.split_once('\0').unwrap_or((text, ""));
    let opts = PathOptions {
        merge_slashes: pick & 1 == 1,
        escaped_slashes: match (pick >> 1) & 3 {
            0 => EscapedSlashes::Reject,
            1 => EscapedSlashes::Keep,
            2 => EscapedSlashes::UnescapeAndRedirect,
            _ => EscapedSlashes::UnescapeAndForward,
        },
    };
    if let Ok(once) = path(raw, &opts) {
        let p = once.path.as_ref();
        let again = path(p, &opts).expect("a canonical path is accepted");
        assert_eq!(again.path.as_ref(), p, "not idempotent");
        assert!(!again.redirect);
        let non_ascii = p.split('%').skip(1).any(|e| e.as_bytes()[0] >= b'8');
        assert!(non_ascii || matches!(again.path, Cow::Borrowed(_)));
        assert!(p.starts_with('/'));
        assert!(p.split('/').all(|s| s != "." && s != ".."), "dot segment");
        assert!(!p.contains('\\'));
        if opts.merge_slashes {
            assert!(!p.contains("//"), "repeated slashes");
        }
        let target = http::uri::PathAndQuery::try_from(p).expect("a valid target");
        assert_eq!(target.as_str(), p);
    }
    let port = if pick & 8 == 8 { 443 } else { 80 };
    if let Ok(once) = authority(host, port) {
        let again = authority(&once, port).expect("a canonical authority is accepted");
        assert_eq!(again.as_ref(), once.as_ref(), "not idempotent");
        assert!(matches!(again, Cow::Borrowed(_)));
        assert!(!once.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(http::uri::Authority::try_from(once.as_ref()).is_ok());
    }
});
