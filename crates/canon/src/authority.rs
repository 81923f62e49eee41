//! The canonical form of an authority: a `Host` field's value, an
//! absolute-form target's authority, or HTTP/2's `:authority`.
//!
//! `uri-host [ ":" port ]` (RFC 9110 §7.2), read strictly, as nginx reads
//! it since 1.29.4: a host name is letters, digits, `-`, `_` and `.` in
//! non-empty labels; an IP literal is a bracketed IPv6 address; a port is
//! at most five digits and at most 65535. Userinfo (`good@evil`), escapes,
//! any other delimiter and any byte outside ASCII are refused.
//!
//! The canonical form is lower-case (hosts are case-insensitive, RFC 3986
//! §3.2.2), without the trailing dot of a fully qualified name, without a
//! port equal to the scheme's default (RFC 9110 §4.2.3), and with an IPv6
//! address in its RFC 5952 text.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

/// Why an authority is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// No authority where one is required (HTTP/1.1 without `Host`), or an
    /// empty one.
    Missing,
    /// More than one `Host` field.
    Duplicate,
    /// Not `host[:port]` with a valid host.
    Invalid,
    /// A port that is not a number from 0 to 65535.
    BadPort,
    /// HTTP/2's `:authority` and a `Host` field name different hosts.
    Mismatch,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Missing => "the request has no host",
            HostError::Duplicate => "the request has more than one Host field",
            HostError::Invalid => "the request's host is not a valid host name or IP address",
            HostError::BadPort => "the request's host has an invalid port",
            HostError::Mismatch => "the request's :authority and Host name different hosts",
        })
    }
}

impl std::error::Error for HostError {}

/// Byte classes of a host name.
const BAD: u8 = 0;
const NAME: u8 = 1;
const UPPER: u8 = 2;
const DOT: u8 = 3;
const COLON: u8 = 4;

static HOST: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => NAME,
            b'A'..=b'Z' => UPPER,
            b'.' => DOT,
            b':' => COLON,
            _ => BAD,
        };
        b += 1;
    }
    t
};

/// The longest host name DNS allows.
const MAX_NAME: usize = 253;
/// The longest label.
const MAX_LABEL: usize = 63;

/// The canonical form of `raw`, an authority, for a request whose scheme's
/// default port is `default_port`. One pass over the bytes; borrowed when
/// nothing changes (a lower-case name, with no port or another port).
pub fn authority(raw: &str, default_port: u16) -> Result<Cow<'_, str>, HostError> {
    let bytes = raw.as_bytes();
    match bytes.first() {
        None => return Err(HostError::Missing),
        Some(b'[') => return literal(raw, default_port),
        Some(_) => {}
    }
    // The name: labels of letters, digits, `-` and `_`, split by dots;
    // each label's length is checked at its end.
    let mut start = 0usize;
    let mut upper = false;
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        let class = HOST[usize::from(b)];
        if class == NAME {
            continue;
        }
        match class {
            UPPER => upper = true,
            DOT if i > start && i - start <= MAX_LABEL => start = i + 1,
            COLON => {
                end = i;
                break;
            }
            _ => return Err(HostError::Invalid),
        }
    }
    if end - start > MAX_LABEL {
        return Err(HostError::Invalid);
    }
    let host = raw.get(..end).unwrap_or_default();
    // A trailing dot ends a fully qualified name; the last label before it
    // must not be empty (`.`, `a..`).
    let name = match host.strip_suffix('.') {
        Some(name) if name.is_empty() || name.ends_with('.') => return Err(HostError::Missing),
        Some(name) => name,
        None if host.is_empty() => return Err(HostError::Missing),
        None => host,
    };
    if name.len() > MAX_NAME {
        return Err(HostError::Invalid);
    }
    let port_text = raw.get(end + 1..);
    let port = match port_text {
        None | Some("") => None,
        Some(p) => Some(parse_port(p)?),
    }
    .filter(|&p| p != default_port);
    let unchanged = !upper
        && name.len() == host.len()
        && match (port, port_text) {
            (None, None) => true,
            (Some(_), Some(text)) => !text.starts_with('0') || text == "0",
            _ => false,
        };
    if unchanged {
        return Ok(Cow::Borrowed(raw));
    }
    let mut text = name.to_ascii_lowercase();
    if let Some(p) = port {
        text.push(':');
        text.push_str(&p.to_string());
    }
    Ok(Cow::Owned(text))
}

/// An IP literal, `[v6]` with an optional port.
fn literal(raw: &str, default_port: u16) -> Result<Cow<'_, str>, HostError> {
    let close = raw.find(']').ok_or(HostError::Invalid)?;
    let inside = raw.get(1..close).ok_or(HostError::Invalid)?;
    let port = match raw.get(close + 1..) {
        None | Some("") | Some(":") => None,
        Some(rest) => {
            let digits = rest.strip_prefix(':').ok_or(HostError::Invalid)?;
            Some(parse_port(digits)?)
        }
    }
    .filter(|&p| p != default_port);
    let addr: Ipv6Addr = inside.parse().map_err(|_| HostError::Invalid)?;
    let text = match port {
        Some(p) => format!("[{addr}]:{p}"),
        None => format!("[{addr}]"),
    };
    Ok(if text == raw {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(text)
    })
}

fn parse_port(p: &str) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 {
        return Err(HostError::BadPort);
    }
    let mut n = 0u32;
    for b in p.bytes() {
        if !b.is_ascii_digit() {
            return Err(HostError::BadPort);
        }
        n = n * 10 + u32::from(b - b'0');
    }
    u16::try_from(n).map_err(|_| HostError::BadPort)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str, port: u16) -> Result<String, HostError> {
        authority(raw, port).map(Cow::into_owned)
    }

    #[test]
    fn hosts_are_lower_cased_without_trailing_dot_or_default_port() {
        assert_eq!(canon("Example.COM", 80).as_deref(), Ok("example.com"));
        assert_eq!(
            canon("admin.internal.test.", 80).as_deref(),
            Ok("admin.internal.test")
        );
        assert_eq!(
            canon("ADMIN.Internal.Test.:80", 80).as_deref(),
            Ok("admin.internal.test")
        );
        assert_eq!(canon("a.test:443", 443).as_deref(), Ok("a.test"));
        assert_eq!(canon("a.test:443", 80).as_deref(), Ok("a.test:443"));
        assert_eq!(canon("a.test:", 80).as_deref(), Ok("a.test"));
        assert_eq!(canon("a.test:08080", 80).as_deref(), Ok("a.test:8080"));
        assert_eq!(canon("127.0.0.1:8080", 80).as_deref(), Ok("127.0.0.1:8080"));
        assert_eq!(canon("[::1]:8080", 80).as_deref(), Ok("[::1]:8080"));
        assert_eq!(canon("[0:0::1]", 80).as_deref(), Ok("[::1]"));
        assert_eq!(
            canon("[2001:DB8::1]:443", 443).as_deref(),
            Ok("[2001:db8::1]")
        );
    }

    #[test]
    fn canonical_hosts_are_borrowed() {
        for raw in [
            "example.com",
            "a.test:8080",
            "127.0.0.1:1",
            "[::1]:8080",
            "x_y.test",
        ] {
            assert!(matches!(authority(raw, 80), Ok(Cow::Borrowed(_))), "{raw}");
        }
    }

    #[test]
    fn invalid_hosts_are_refused() {
        for raw in [
            "a/b",
            "x/admin#",
            "good@evil",
            "a..b",
            ".a",
            "a b",
            "a%41",
            "a\\b",
            "a?b",
            "a#b",
            "[::1",
            "[::1]x",
            "[zz]",
            "[v1.x]",
            "a,b",
            "é.test",
            "a:b:c",
            "..",
        ] {
            assert!(canon(raw, 80).is_err(), "{raw:?} was accepted");
        }
        assert_eq!(canon("", 80), Err(HostError::Missing));
        assert_eq!(canon(".", 80), Err(HostError::Invalid));
        assert_eq!(canon(":80", 80), Err(HostError::Missing));
        assert_eq!(canon("a:99999", 80), Err(HostError::BadPort));
        assert_eq!(canon("a:65536", 80), Err(HostError::BadPort));
        assert_eq!(canon("a:-1", 80), Err(HostError::BadPort));
        assert_eq!(canon("a:1x", 80), Err(HostError::BadPort));
        assert_eq!(canon(&"a".repeat(64), 80), Err(HostError::Invalid));
    }

    #[test]
    fn the_canonical_form_is_its_own_canonical_form() {
        for raw in ["Example.COM.:8080", "[0::1]:443", "A_B.test:0", "x.test:80"] {
            let once = canon(raw, 80).expect("valid");
            assert_eq!(canon(&once, 80).as_deref(), Ok(once.as_str()));
        }
    }
}
