//! Positions: the language server protocol counts lines from 0 and
//! columns in UTF-16 code units; diagnostics and the policy's spans count
//! bytes.

/// The (line, UTF-16 column) of byte `offset` in `text`.
pub(crate) fn position(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let col: usize = before[start..].chars().map(char::len_utf16).sum();
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// The byte offset of (line, UTF-16 column) in `text`, clamped to the
/// line's end.
pub(crate) fn offset(text: &str, line: u32, col: u32) -> usize {
    let mut start = 0;
    for _ in 0..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let mut units = 0;
    for (i, c) in text[start..end].char_indices() {
        if units >= col as usize {
            return start + i;
        }
        units += c.len_utf16();
    }
    end
}

/// An LSP range of bytes `start..end`.
pub(crate) fn range(text: &str, start: usize, end: usize) -> serde_json::Value {
    let (sl, sc) = position(text, start);
    let (el, ec) = position(text, end);
    serde_json::json!({
        "start": {"line": sl, "character": sc},
        "end": {"line": el, "character": ec},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_columns_round_trip() {
        let text = "a: 1\nb: \"é😀x\"\n";
        let x = text.find('x').expect("x");
        assert_eq!(position(text, x), (1, 7));
        assert_eq!(offset(text, 1, 7), x);
        assert_eq!(offset(text, 0, 99), 4);
        assert_eq!(offset(text, 9, 0), text.len());
    }
}
