//! Header names and constant values that policies add to every exchange,
//! interned for the life of the process.
//!
//! `http`'s header names and values hold `Bytes`. Cloning one made from
//! owned bytes counts a reference (a locked instruction, about 5 ns, and
//! another when the request is dropped); cloning one made from a
//! `&'static str` copies a pointer. `add-headers` clones its names and
//! constant values into every request, so the compiled action holds static
//! ones: their text is leaked once and kept in a set, so that a reload of
//! the same policy finds it there. The set grows only by the distinct
//! names and values that loaded policies spell out; values longer than
//! [`MAX_VALUE`] are not interned.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use http::header::{HeaderName, HeaderValue};

/// The longest constant value interned.
const MAX_VALUE: usize = 256;

static INTERNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// `text`, leaked once per distinct string.
fn intern(text: &str) -> &'static str {
    let mut set = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    let set = set.get_or_insert_with(HashSet::new);
    if let Some(&known) = set.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into());
    set.insert(leaked);
    leaked
}

/// `name` with a static text (a standard name already has one).
pub(crate) fn name(name: HeaderName) -> HeaderName {
    // `from_static` panics on what `from_lowercase` refuses; a name that
    // `from_lowercase` takes as it is goes through.
    match HeaderName::from_lowercase(name.as_str().as_bytes()) {
        Ok(_) => HeaderName::from_static(intern(name.as_str())),
        Err(_) => name,
    }
}

/// The value `text`, static when it is short and visible ASCII (what
/// `from_static` takes); `None` when it is no header value at all.
pub(crate) fn value(text: &str) -> Option<HeaderValue> {
    let visible = text
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) || b == b'\t');
    if visible && text.len() <= MAX_VALUE {
        Some(HeaderValue::from_static(intern(text)))
    } else {
        HeaderValue::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_and_values_equal_owned_ones_and_are_kept_once() {
        let owned = HeaderName::from_bytes(b"x-request-source").expect("a name");
        let interned = name(owned.clone());
        assert_eq!(interned, owned);
        assert_eq!(name(http::header::USER_AGENT), http::header::USER_AGENT);
        // The same text twice: one leaked copy.
        let a = intern("x-interned-once");
        let b = intern(&String::from("x-interned-once"));
        assert!(std::ptr::eq(a, b));

        assert_eq!(
            value("portcullis-edge"),
            Some(HeaderValue::from_static("portcullis-edge"))
        );
        // Not visible ASCII, or long: owned, and still the same value.
        assert_eq!(
            value("café").map(|v| v.as_bytes().to_vec()),
            Some("café".as_bytes().to_vec())
        );
        let long = "x".repeat(MAX_VALUE + 1);
        assert_eq!(value(&long).map(|v| v.len()), Some(MAX_VALUE + 1));
        assert_eq!(value("line\nbreak"), None);
    }
}
