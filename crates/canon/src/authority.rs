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

/// The longest host name DNS allows.
const MAX_NAME: usize = 253;
/// The longest label.
const MAX_LABEL: usize = 63;

/// The canonical form of `raw`, an authority, for a request whose scheme's
/// default port is `default_port`.
pub fn authority(raw: &str, default_port: u16) -> Result<Cow<'_, str>, HostError> {
    if raw.is_empty() {
        return Err(HostError::Missing);
    }
    let (host, port_text) = split(raw)?;
    let port = match port_text {
        None | Some("") => None,
        Some(p) => Some(parse_port(p)?),
    };
    let port = port.filter(|&p| p != default_port);
    if let Some(literal) = host.strip_prefix('[') {
        let literal = literal.strip_suffix(']').ok_or(HostError::Invalid)?;
        let addr: Ipv6Addr = literal.parse().map_err(|_| HostError::Invalid)?;
        let text = match port {
            Some(p) => format!("[{addr}]:{p}"),
            None => format!("[{addr}]"),
        };
        return Ok(if text == raw {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(text)
        });
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    check_name(name)?;
    let lower = !name.bytes().any(|b| b.is_ascii_uppercase());
    // Borrowed when nothing changes: the common case, a lower-case name
    // with no port or a non-default one, costs one scan.
    let unchanged = lower
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

/// `host` and the text after its `:`, if any.
fn split(raw: &str) -> Result<(&str, Option<&str>), HostError> {
    if raw.starts_with('[') {
        let close = raw.find(']').ok_or(HostError::Invalid)?;
        let (host, rest) = raw.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(HostError::Invalid),
        };
    }
    Ok(match raw.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (raw, None),
    })
}

fn parse_port(p: &str) -> Result<u16, HostError> {
    if p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    p.parse().map_err(|_| HostError::BadPort)
}

fn check_name(name: &str) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::Missing);
    }
    if name.len() > MAX_NAME {
        return Err(HostError::Invalid);
    }
    for label in name.split('.') {
        if label.is_empty()
            || label.len() > MAX_LABEL
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(HostError::Invalid);
        }
    }
    Ok(())
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
        assert_eq!(canon(".", 80), Err(HostError::Missing));
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
