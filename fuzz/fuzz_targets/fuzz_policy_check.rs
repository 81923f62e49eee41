//! Arbitrary bytes through the whole lint: YAML, document structure,
//! action configs and every expression. It returns diagnostics whose spans
//! lie inside the input and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    let (_, diags) = portcullis_policy::check(src);
    for d in diags {
        assert!(d.span.start <= d.span.end && d.span.end as usize <= src.len(), "{d:?}");
        assert!(src.is_char_boundary(d.span.start as usize) && src.is_char_boundary(d.span.end as usize), "{d:?}");
    }
});
