//! Literal value formats of action configs: Go durations, CIDRs, URLs,
//! Entra tenant ids.

use std::net::IpAddr;

/// Nanoseconds in a second.
pub(crate) const SECOND: i128 = 1_000_000_000;
/// Nanoseconds in a minute.
pub(crate) const MINUTE: i128 = 60 * SECOND;
/// Nanoseconds in an hour.
pub(crate) const HOUR: i128 = 60 * MINUTE;

/// Parses a duration the way Go's `time.ParseDuration` does (`"15m"`,
/// `"1h30m"`, `"1.5s"`, `"0"`), to nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i128, String> {
    let quoted = format!("`{text}`");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(format!("{quoted} is not a duration"));
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!("{quoted} is not a duration"));
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => SECOND,
            "m" => MINUTE,
            "h" => HOUR,
            "" => return Err(format!("missing unit in duration {quoted}")),
            other => return Err(format!("unknown unit `{other}` in duration {quoted}")),
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| format!("{quoted} is out of range"))?
        };
        let mut value = int
            .checked_mul(scale)
            .ok_or_else(|| format!("{quoted} is out of range"))?;
        // The fraction, to nanosecond precision.
        let mut place = scale;
        for d in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            value += i128::from(d - b'0') * place;
        }
        total = total
            .checked_add(value)
            .filter(|t| *t <= i128::from(i64::MAX))
            .ok_or_else(|| format!("{quoted} is out of range"))?;
        rest = after;
    }
    Ok(if negative { -total } else { total })
}

/// A duration in nanoseconds, written the short way (`90s`, `15m`, `24h`).
pub(crate) fn format_duration(ns: i128) -> String {
    for (unit, scale) in [
        ("h", HOUR),
        ("m", MINUTE),
        ("s", SECOND),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns != 0 && ns % scale == 0 {
            return format!("{}{unit}", ns / scale);
        }
    }
    if ns == 0 {
        "0s".to_string()
    } else {
        format!("{ns}ns")
    }
}

/// Checks a CIDR (`10.0.0.0/8`, `::/0`).
pub(crate) fn check_cidr(text: &str) -> Result<(), String> {
    let Some((addr, prefix)) = text.split_once('/') else {
        return Err(match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => format!("write `{text}/32` for a single address"),
            Ok(IpAddr::V6(_)) => format!("write `{text}/128` for a single address"),
            Err(_) => "write an address and a prefix length, as in `192.168.0.0/16`".to_string(),
        });
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max && !prefix.starts_with('+') => Ok(()),
        _ => Err(format!("the prefix length must be 0 to {max}")),
    }
}

/// Checks an absolute URL: `scheme://host[:port][/path][?query]`.
/// Returns the host.
pub(crate) fn check_url(text: &str) -> Result<&str, String> {
    if text.chars().any(char::is_whitespace) {
        return Err("a URL cannot contain white space".to_string());
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("write a scheme and a host, as in `https://example.com`".to_string());
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("`{scheme}` is not a URL scheme"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err("the URL has no host".to_string());
    }
    if let Some((_, port)) = host_port
        .rsplit_once(':')
        .filter(|_| !host_port.ends_with(']'))
        && !host_port.starts_with('[')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("`{port}` is not a port"));
    }
    Ok(host)
}

/// Checks a base URL sign-in sends tokens and secrets to (`authority_host`,
/// `graph_url`, `api_url`): absolute, `https`, or `http` on a loopback
/// host (a test provider on this machine, as the proxy's outbound client
/// allows); no user information, percent-encoding in the host, query or
/// fragment, since paths are appended to it and the links followed from it
/// must match its host exactly.
pub(crate) fn check_base_url(text: &str) -> Result<(), String> {
    if !text.bytes().all(|b| b.is_ascii_graphic()) || text.contains('\\') {
        return Err("write it in plain ASCII, without spaces or `\\`".to_string());
    }
    let host = check_url(text)?.to_ascii_lowercase();
    let (scheme, rest) = text.split_once("://").unwrap_or(("", text));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(
            "a URL with user information (`user@`) names another host than it seems".to_string(),
        );
    }
    if authority.contains('%') {
        return Err("write the host without percent-encoding".to_string());
    }
    if rest.contains(['?', '#']) {
        return Err("paths are appended to it: no query or fragment".to_string());
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" => {
            Err("`http://` sends tokens in the clear; only loopback hosts may use it".to_string())
        }
        other => Err(format!("`{other}` is not `https`")),
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `text` is a GUID, as Entra writes tenant ids
/// (`72f988bf-86f1-41af-91ab-2d7cd011db47`, either case).
pub(crate) fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `text` is a DNS name: dot-separated labels of letters, digits
/// and inner hyphens, at least two, the last not all digits.
pub(crate) fn is_domain(text: &str) -> bool {
    let labels: Vec<&str> = text.trim_end_matches('.').split('.').collect();
    labels.len() >= 2
        && text.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|l| !l.bytes().all(|b| b.is_ascii_digit()))
}
