//! Arbitrary bytes as a server-sent event stream, cut into two chunks at
//! every point the first byte chooses: the events are the same however
//! the chunks fall, parsing never panics, and an event written back reads
//! back as the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_actions::event_stream::{Event, Parser};

fn events(chunks: &[&[u8]]) -> Option<Vec<Event>> {
    let mut p = Parser::default();
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        loop {
            match p.next_event() {
                Ok(Some(e)) => out.push(e),
                Ok(None) => break,
                Err(_) => return None,
            }
        }
    }
    out.extend(p.finish());
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut).min(body.len());
    let whole = events(&[body]);
    let split = events(&[&body[..at], &body[at..]]);
    // A `\r` at the end of the first chunk waits for the next byte, so the
    // events agree whatever the cut.
    assert_eq!(whole, split);
    for e in whole.into_iter().flatten() {
        let again = events(&[&e.to_bytes()]).expect("small");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].get("data"), e.get("data"));
    }
});
