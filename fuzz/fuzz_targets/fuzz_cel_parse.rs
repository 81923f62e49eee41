//! Arbitrary text through the CEL parser: it returns an expression or a
//! diagnostic whose span lies inside the input, and never panics or
//! overflows the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    match portcullis_cel::syntax::parse(src) {
        Ok(expr) => assert!(expr.span.end as usize <= src.len()),
        Err(diag) => assert!(diag.span.start <= diag.span.end && diag.span.end as usize <= src.len()),
    }
});
