//! Percent-encoding of URL components (RFC 3986): what `http-request` puts
//! in query strings and sign-in in authorization and token requests.

/// `s` with every byte but the unreserved characters (`A-Z a-z 0-9 - . _
/// ~`) percent-encoded: safe in a query component and in a form body.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::encode_component;

    #[test]
    fn unreserved_characters_stay_and_the_rest_is_encoded() {
        assert_eq!(encode_component("a-Z.9_~"), "a-Z.9_~");
        assert_eq!(
            encode_component("/reports q3?&="),
            "%2Freports%20q3%3F%26%3D"
        );
        assert_eq!(encode_component("é"), "%C3%A9");
    }
}
