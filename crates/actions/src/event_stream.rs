//! Server-sent events (`text/event-stream`, the WHATWG HTML standard
//! §9.2.6) as `on_event_stream_message` sees them: a byte stream cut into
//! events at blank lines, whatever line endings (`\r\n`, `\n`, `\r`) and
//! however the chunks fall, and each event written back with only what a
//! rule changed.
//!
//! An event is kept as its lines, in order, so that comments (`: ping`),
//! `event:`, `id:` and unknown fields pass through as they came. Its
//! `data` is the standard's: the `data:` lines joined with `\n`; a rule
//! that rewrites it gets its lines back at the place of the first.

/// The largest event held before it is complete. An event stream is
/// unbounded, an event is not: one larger than this ends the stream (a
/// rewrite that cannot happen must not let the text through).
pub const MAX_EVENT: usize = 1024 * 1024;

/// One event: its lines, without their line endings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    lines: Vec<String>,
}

/// A field of an event's line: its name (empty for a comment) and value.
fn field(line: &str) -> (&str, &str) {
    match line.split_once(':') {
        Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
        None => (line, ""),
    }
}

impl Event {
    /// An event of `lines`.
    pub fn from_lines(lines: Vec<String>) -> Event {
        Event { lines }
    }

    /// The value of field `name` as a client reads it: `data` is every
    /// `data:` line joined with `\n`; other fields are their last value.
    /// `None` when the event has no such field.
    pub fn get(&self, name: &str) -> Option<String> {
        let mut values = self
            .lines
            .iter()
            .filter(|l| !l.starts_with(':'))
            .map(|l| field(l))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v);
        if name == "data" {
            let all: Vec<&str> = values.collect();
            (!all.is_empty()).then(|| all.join("\n"))
        } else {
            values.next_back().map(str::to_owned)
        }
    }

    /// Sets field `name` to `value`: for `data`, one `data:` line per line
    /// of `value`, where the first `data:` line was; for another field, its
    /// last line. A field the event does not have is left absent.
    pub fn set(&mut self, name: &str, value: &str) {
        let is = |l: &String| !l.starts_with(':') && field(l).0 == name;
        if name == "data" {
            let Some(first) = self.lines.iter().position(is) else {
                return;
            };
            let mut out = Vec::with_capacity(self.lines.len());
            for (i, line) in self.lines.drain(..).enumerate() {
                if i == first {
                    out.extend(value.split('\n').map(|v| format!("data: {v}")));
                } else if !is(&line) {
                    out.push(line);
                }
            }
            self.lines = out;
        } else if let Some(line) = self.lines.iter_mut().rev().find(|l| is(l)) {
            *line = format!("{name}: {value}");
        }
    }

    /// The event as the stream carries it, ending with its blank line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.lines.iter().map(|l| l.len() + 1).sum::<usize>() + 1);
        for line in &self.lines {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out
    }
}

/// Cuts a byte stream into events as it arrives.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// Where the scan for the current event's end resumes.
    scanned: usize,
    lines: Vec<String>,
}

/// The stream held an event larger than [`MAX_EVENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge;

impl Parser {
    /// Adds bytes received.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        loop {
            let rest = &self.buf[self.scanned..];
            let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                return self.check_size();
            };
            let (line_end, next) = match (rest[end], rest.get(end + 1)) {
                (b'\r', Some(b'\n')) => (end, end + 2),
                // A `\r` last in the buffer may be half of `\r\n`.
                (b'\r', None) => return self.check_size(),
                _ => (end, end + 1),
            };
            let line = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            self.scanned += next;
            if line.is_empty() {
                self.buf.drain(..self.scanned);
                self.scanned = 0;
                let lines = std::mem::take(&mut self.lines);
                if lines.is_empty() {
                    // Blank lines between events: nothing to dispatch.
                    continue;
                }
                return Ok(Some(Event { lines }));
            }
            self.lines.push(line);
        }
    }

    fn check_size(&self) -> Result<Option<Event>, TooLarge> {
        let held = self.buf.len() + self.lines.iter().map(String::len).sum::<usize>();
        if held > MAX_EVENT {
            Err(TooLarge)
        } else {
            Ok(None)
        }
    }

    /// What is left when the stream ends: an event cut short, which a
    /// client discards, is still handed on (through the rules) rather
    /// than dropped silently.
    pub fn finish(&mut self) -> Option<Event> {
        if !self.buf[self.scanned..].is_empty() {
            let rest = String::from_utf8_lossy(&self.buf[self.scanned..])
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            if !rest.is_empty() {
                self.lines.push(rest);
            }
        }
        self.buf.clear();
        self.scanned = 0;
        let lines = std::mem::take(&mut self.lines);
        (!lines.is_empty()).then_some(Event { lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c);
            while let Some(e) = p.next_event().expect("size") {
                out.push(e);
            }
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn events_end_at_blank_lines_whatever_the_line_endings_and_chunks() {
        let text =
            b"event: a\r\ndata: one\r\n\r\ndata: two\ndata: lines\n\n: ping\rdata: three\r\r";
        let whole = events(&[text]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].get("event").as_deref(), Some("a"));
        assert_eq!(whole[1].get("data").as_deref(), Some("two\nlines"));
        assert_eq!(whole[2].get("data").as_deref(), Some("three"));
        // Byte by byte: the same events (`\r` then `\n` in two chunks too).
        let split: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(events(&split), whole);
    }

    #[test]
    fn a_rewritten_event_keeps_everything_else_in_place() {
        let mut e =
            events(&[b": keep\nid: 7\ndata: a secret\ndata: and more\nretry: 10\n\n"]).remove(0);
        let data = e.get("data").expect("data").replace("secret", "[redacted]");
        e.set("data", &data);
        e.set("retry", "20");
        assert_eq!(
            String::from_utf8(e.to_bytes()).expect("utf-8"),
            ": keep\nid: 7\ndata: a [redacted]\ndata: and more\nretry: 20\n\n"
        );
        // A field the event lacks stays absent.
        e.set("event", "x");
        assert_eq!(e.get("event"), None);
    }

    #[test]
    fn an_event_past_the_limit_ends_the_stream_and_a_cut_one_is_handed_on() {
        let mut p = Parser::default();
        p.push(b"data: ");
        p.push(&vec![b'x'; MAX_EVENT]);
        assert_eq!(p.next_event(), Err(TooLarge));
        let cut = events(&[b"data: done\n\ndata: cut sho"]);
        assert_eq!(cut.len(), 2);
        assert_eq!(cut[1].get("data").as_deref(), Some("cut sho"));
    }
}
