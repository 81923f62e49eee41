//! Which links found in a provider's answers sign-in may follow with the
//! user's access token: only those under a configured base URL.
//!
//! Microsoft Graph pages a long answer with `@odata.nextLink`, a URL in
//! the answer's body. Followed as it is, a link the proxy did not choose
//! gets the user's bearer token; compared as text (`starts_with`), the
//! base `https://graph.microsoft.com` also admits
//! `https://graph.microsoft.com.attacker.example/` and
//! `https://graph.microsoft.com@attacker.example/`. So a link is parsed
//! with the parser the HTTP client sends with (`http::Uri`), and its
//! scheme, host and port must equal the base's, and its path lie under
//! the base's path at a segment boundary. Anything a parser could read two
//! ways is refused rather than interpreted: user information, a backslash,
//! percent-encoding in the authority, encoded slashes or dot segments in
//! the path, white space and non-ASCII characters.

use http::Uri;

/// A base URL, parsed: where followed links must stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
    /// The path without its trailing `/`: empty for the root.
    path: String,
}

impl Origin {
    /// `text` as an absolute `http` or `https` URL, or `None` if it is not
    /// one, or is one that could be read two ways.
    pub(crate) fn parse(text: &str) -> Option<Origin> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) || text.contains('\\') {
            return None;
        }
        let uri: Uri = text.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let authority = uri.authority()?;
        // `user@host` hides the host behind what looks like one; an
        // encoded character in a host is decoded by some parsers only.
        if authority.as_str().contains(['@', '%']) {
            return None;
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return None;
        }
        // An empty port is the default one (RFC 3986 §3.2.3); one that is
        // not a number below 65536 is no port at all, not the default.
        let port = match authority.as_str().strip_prefix(authority.host())? {
            "" | ":" => default_port,
            rest => rest
                .strip_prefix(':')
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))?
                .parse::<u16>()
                .ok()?,
        };
        let path = uri.path();
        let lower = path.to_ascii_lowercase();
        // An encoded `/` or `\` is a separator to some servers and not to
        // others; a dot segment moves the path out from under the prefix
        // once a server resolves it.
        if lower.contains("%2f") || lower.contains("%5c") {
            return None;
        }
        let dot = |seg: &str| {
            let seg = seg.replace("%2e", ".");
            seg == "." || seg == ".."
        };
        if lower.split('/').any(dot) {
            return None;
        }
        Some(Origin {
            scheme,
            host,
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// Whether `link` stays under this base: the same scheme, host and
    /// port, and a path equal to the base's or below it.
    pub(crate) fn admits(&self, link: &str) -> bool {
        let Some(other) = Origin::parse(link) else {
            return false;
        };
        other.scheme == self.scheme
            && other.host == self.host
            && other.port == self.port
            && (self.path.is_empty()
                || other.path == self.path
                || other
                    .path
                    .strip_prefix(&self.path)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}
