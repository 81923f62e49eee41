//! A `matches` pattern, compiled once: the `regex` crate's engine, and a
//! literal search for the commonest shape of pattern in a traffic policy,
//! a set of words in any case: `(?i)(sqlmap|nikto|nmap)`.
//!
//! The `regex` crate finds a set of literals with a SIMD search (Teddy)
//! before it runs an automaton, but not when they are case-insensitive:
//! each letter then doubles the literals (`sqlmap` is 64 of them), so it
//! falls back to its lazy DFA, a table lookup per byte. On an ASCII
//! haystack the pattern means "some word occurs, ASCII letters compared
//! without case": so [`Pattern`] lower-cases the haystack and searches for
//! the lower-cased words with the literal search. Nine words against a
//! browser's user agent (114 bytes, no match) took 1,094 instructions in
//! the DFA and take 535 here, lower-casing included.
//!
//! Exactness: on an ASCII haystack, a case-folded letter class (`[sSſ]`)
//! matches exactly the bytes whose ASCII lower case is that letter, and a
//! literal that is not a letter matches only itself; so the two searches
//! agree. A haystack with any non-ASCII byte goes to the regex, where
//! Unicode case folding (`ſ`, the Kelvin sign) applies.

use std::fmt;

use regex::Regex;
use regex_syntax::hir::{Class, Hir, HirKind};

/// The most words a pattern may stand for to take the literal search.
const MAX_WORDS: usize = 64;

/// The longest word the literal search takes.
const MAX_WORD: usize = 64;

/// How much haystack is lower-cased at a time, on the stack.
const CHUNK: usize = 256;

/// A compiled pattern for CEL's `matches`.
#[derive(Clone)]
pub struct Pattern {
    re: Regex,
    /// Set when the pattern is a set of case-insensitive words.
    words: Option<Words>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("re", &self.re.as_str())
            .field("words", &self.words.is_some())
            .finish()
    }
}

impl Pattern {
    /// Compiles `src` (RE2 syntax, as the `regex` crate reads it).
    pub fn new(src: &str) -> Result<Pattern, regex::Error> {
        let re = Regex::new(src)?;
        let words = regex_syntax::Parser::new()
            .parse(src)
            .ok()
            .and_then(|hir| Words::of(&hir));
        Ok(Pattern { re, words })
    }

    /// Whether the pattern matches anywhere in `hay`.
    pub fn is_match(&self, hay: &str) -> bool {
        match &self.words {
            Some(words) => match words.is_match(hay.as_bytes()) {
                Some(found) => found,
                None => self.re.is_match(hay),
            },
            None => self.re.is_match(hay),
        }
    }

    /// Whether the literal search serves ASCII haystacks (for tests).
    #[doc(hidden)]
    pub fn has_word_search(&self) -> bool {
        self.words.is_some()
    }
}

/// Lower-case words, found in a lower-cased haystack.
#[derive(Clone)]
struct Words {
    /// The words as one alternation of byte literals.
    search: regex::bytes::Regex,
    /// The longest word's length, for the overlap between chunks.
    longest: usize,
}

impl Words {
    /// The words `hir` stands for, when it is a finite set of them and at
    /// least one letter is case-insensitive (a case-sensitive set is what
    /// the regex crate already searches for literally).
    fn of(hir: &Hir) -> Option<Words> {
        let mut folded = false;
        let words = words(hir, &mut folded)?;
        if !folded || words.iter().any(|w| w.is_empty() || w.len() > MAX_WORD) {
            return None;
        }
        let longest = words.iter().map(Vec::len).max()?;
        let alternation = words
            .iter()
            .map(|w| regex::escape(std::str::from_utf8(w).ok()?).into())
            .collect::<Option<Vec<String>>>()?
            .join("|");
        let search = regex::bytes::Regex::new(&format!("(?-u:{alternation})")).ok()?;
        Some(Words { search, longest })
    }

    /// Whether a word occurs in `hay`; `None` if `hay` is not all ASCII.
    fn is_match(&self, hay: &[u8]) -> Option<bool> {
        let mut buf = [0u8; CHUNK];
        let mut at = 0;
        loop {
            let end = hay.len().min(at + CHUNK);
            let (Some(src), Some(dst)) = (hay.get(at..end), buf.get_mut(..end - at)) else {
                return Some(false);
            };
            if !lower(dst, src) {
                return None;
            }
            if self.search.is_match(dst) {
                return Some(true);
            }
            if end == hay.len() {
                return Some(false);
            }
            // The next chunk starts early enough to hold any word that
            // straddles this chunk's end.
            at = end - (self.longest - 1);
        }
    }
}

/// `src` in ASCII lower case, into `dst`, and whether `src` is all ASCII:
/// one pass, which the compiler vectorizes when it stands alone.
#[inline(never)]
fn lower(dst: &mut [u8], src: &[u8]) -> bool {
    let mut seen = 0;
    for (d, &s) in dst.iter_mut().zip(src) {
        seen |= s;
        *d = s.to_ascii_lowercase();
    }
    seen.is_ascii()
}

/// The words `hir` matches, lower-cased, if it is a finite set of words of
/// ASCII bytes whose letters are all case-insensitive. `folded` is set when
/// some letter is.
fn words(hir: &Hir, folded: &mut bool) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Empty => Some(vec![Vec::new()]),
        HirKind::Literal(lit) => {
            // A literal letter is case-sensitive: it cannot be folded.
            let plain = lit
                .0
                .iter()
                .all(|b| b.is_ascii() && !b.is_ascii_alphabetic());
            plain.then(|| vec![lit.0.to_vec()])
        }
        HirKind::Class(class) => {
            let byte = folded_byte(class)?;
            *folded |= byte.is_ascii_alphabetic();
            Some(vec![vec![byte]])
        }
        HirKind::Capture(cap) => words(&cap.sub, folded),
        HirKind::Alternation(alts) => {
            let mut all = Vec::new();
            for alt in alts {
                all.extend(words(alt, folded)?);
                if all.len() > MAX_WORDS {
                    return None;
                }
            }
            Some(all)
        }
        HirKind::Concat(parts) => {
            let mut all = vec![Vec::new()];
            for part in parts {
                let tails = words(part, folded)?;
                if all.len() * tails.len() > MAX_WORDS {
                    return None;
                }
                all = all
                    .iter()
                    .flat_map(|head| {
                        tails.iter().map(move |tail| {
                            let mut w = head.clone();
                            w.extend_from_slice(tail);
                            w
                        })
                    })
                    .collect();
            }
            Some(all)
        }
        HirKind::Look(_) | HirKind::Repetition(_) => None,
    }
}

/// The one lower-case byte a class stands for on ASCII text: its ASCII
/// members are one letter in both cases (non-ASCII members, such as `ſ`
/// beside `s`, never meet an ASCII haystack), or one byte that is not a
/// letter.
fn folded_byte(class: &Class) -> Option<u8> {
    let mut ascii = Vec::with_capacity(2);
    let mut add = |lo: u32, hi: u32| -> Option<()> {
        for c in lo..=hi.min(0x7f) {
            if ascii.len() == 2 {
                return None;
            }
            ascii.push(u8::try_from(c).ok()?);
        }
        Some(())
    };
    match class {
        Class::Unicode(c) => {
            for r in c.ranges() {
                add(u32::from(r.start()), u32::from(r.end()))?;
            }
        }
        Class::Bytes(c) => {
            for r in c.ranges() {
                add(u32::from(r.start()), u32::from(r.end()))?;
            }
        }
    }
    match ascii[..] {
        [b] if !b.is_ascii_alphabetic() => Some(b),
        [upper, lower] if upper.is_ascii_uppercase() && lower == upper.to_ascii_lowercase() => {
            Some(lower)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
