//! nginx as an oracle for paths (issue 13): generated request paths
//! (encodings in both hex cases, dot segments plain and encoded, repeated
//! slashes, UTF-8, `;`, encoded slashes) are sent raw to Debian's nginx and
//! to Portcullis, each in front of its own recording upstream, with the
//! same rule: nginx's `location ^~ /admin { return 403; }` and
//! Portcullis's `req.url.path.startsWith('/admin')` deny. The decision
//! (allowed, denied, refused) and the path the upstream sees must agree,
//! except where [`deliberate`] names a documented difference.
//!
//! nginx forwards with `proxy_pass http://…/;` (a URI part), so what its
//! upstream sees is its normalized `$uri`, escaped again. nginx decodes
//! every escape in `$uri` while Portcullis decodes only unreserved
//! characters, so upstream paths are compared after decoding both.

use std::net::SocketAddr;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[path = "support/proxy.rs"]
mod support;

#[path = "support/raw.rs"]
mod raw;

#[path = "support/gateway.rs"]
mod gateway;

use gateway::Gateway;
use raw::{Mode, RawUpstream};
use support::Proxy;

const POLICY: &str = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
"#;

/// nginx in front of `upstream`, with the rule.
fn nginx(upstream: SocketAddr) -> Gateway {
    let port = gateway::free_port();
    Gateway::nginx(
        &format!(
            "server {{\n    listen 127.0.0.1:{port};\n    location ^~ /admin {{ return 403; }}\n    \
             location / {{ proxy_pass http://{upstream}/; }}\n}}"
        ),
        port,
    )
}

/// What a server made of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Forwarded; the path its upstream received, decoded (non-ASCII
    /// bytes shown escaped).
    Allowed(String),
    /// `403` from the rule.
    Denied,
    /// Refused as a bad request (`400`), with Portcullis's code.
    Refused(Option<String>),
    /// Anything else.
    Other(u16),
}

/// Sends `GET <path>` raw and says what came of it.
async fn outcome(server: SocketAddr, up: &RawUpstream, path: &[u8]) -> Outcome {
    let n = up.requests().len();
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(path);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: mine.test\r\nConnection: close\r\n\r\n");
    let reply = raw::exchange(server, &req).await;
    match reply.status {
        200 => {
            let seen = up.wait_requests(n + 1).await;
            let line = seen.get(n).map(|s| s.request_line()).unwrap_or_default();
            let target = line.split(' ').nth(1).unwrap_or_default();
            Outcome::Allowed(decode(target.as_bytes()).escape_ascii().to_string())
        }
        403 => Outcome::Denied,
        400 => Outcome::Refused(reply.code()),
        other => Outcome::Other(other),
    }
}

/// Every valid `%XX` decoded.
fn decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// A documented, deliberate difference between Portcullis and nginx that
/// applies to a path.
#[derive(Debug, PartialEq, Eq)]
enum Difference {
    /// `%2F`, `%5C` or a raw `\`: Portcullis refuses them by default
    /// (`ERR_PORTCULLIS_ENCODED_SLASH`); nginx decodes `%2F` into a
    /// separator and `%5C` into a literal `\` (so `/x%2F..%2Fadmin` is
    /// `/admin` to nginx, and forwarded decoded).
    EncodedSlash,
    /// An escape of a control octet other than `%00` (`%01`, `%7F`):
    /// Portcullis refuses it; nginx decodes it into the raw byte and
    /// forwards that, escaped again.
    EncodedControl,
    /// Escapes whose octets are not UTF-8 (`%C0%AF`, a lone `%FF`):
    /// Portcullis refuses them; nginx decodes them into raw bytes.
    InvalidUtf8,
    /// A dot segment with parameters (`..;x`, `.;`): Portcullis refuses it
    /// (Tomcat and Jetty take it as `..`); nginx takes it as an ordinary
    /// segment.
    DotParameters,
    /// A `..` that may climb above the root: nginx answers 400, Portcullis
    /// clamps at `/` (RFC 3986 §5.2.4) and goes on.
    AboveRoot,
}

/// The differences that apply to `path`, judged from its bytes alone.
fn deliberate(path: &[u8]) -> Vec<Difference> {
    let mut out = Vec::new();
    let lower = String::from_utf8_lossy(path).to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || path.contains(&b'\\') {
        out.push(Difference::EncodedSlash);
    }
    let escapes: Vec<u8> = lower
        .match_indices('%')
        .filter_map(|(i, _)| u8::from_str_radix(lower.get(i + 1..i + 3)?, 16).ok())
        .collect();
    if escapes.iter().any(|&b| (1..0x20).contains(&b) || b == 0x7f) {
        out.push(Difference::EncodedControl);
    }
    if std::str::from_utf8(&decode(path)).is_err() {
        out.push(Difference::InvalidUtf8);
    }
    // Segments with only the dots decoded (`%3B` is not a parameter to
    // either server).
    let dotted = lower.replace("%2e", ".");
    if dotted
        .split('/')
        .any(|seg| seg.contains(';') && matches!(seg.split(';').next(), Some("." | "..")))
    {
        out.push(Difference::DotParameters);
    }
    let decoded = decode(path);
    if decoded
        .split(|&b| b == b'/' || b == b'\\')
        .any(|seg| seg == b"..")
    {
        out.push(Difference::AboveRoot);
    }
    out
}

/// Whether Portcullis's and nginx's outcomes for `path` agree, or differ
/// only as [`deliberate`] allows.
fn judge(path: &[u8], nginx: &Outcome, ours: &Outcome) -> Result<(), String> {
    let diff = deliberate(path);
    let refusing = diff.iter().any(|d| {
        matches!(
            d,
            Difference::EncodedSlash
                | Difference::EncodedControl
                | Difference::InvalidUtf8
                | Difference::DotParameters
        )
    });
    let shown = String::from_utf8_lossy(path);
    if refusing {
        // Portcullis must refuse, whatever nginx does.
        return match ours {
            Outcome::Refused(Some(_)) => Ok(()),
            other => Err(format!(
                "{shown:?} ({diff:?}): Portcullis {other:?}, want a 400 with a code (nginx: {nginx:?})"
            )),
        };
    }
    if nginx == ours {
        return Ok(());
    }
    match (nginx, ours) {
        // nginx may refuse what Portcullis clamps; Portcullis must still
        // have decided on a canonical path.
        (Outcome::Refused(_), Outcome::Denied) if diff.contains(&Difference::AboveRoot) => Ok(()),
        (Outcome::Refused(_), Outcome::Allowed(p))
            if diff.contains(&Difference::AboveRoot)
                && !p.split('/').any(|s| s == ".." || s == ".") =>
        {
            Ok(())
        }
        // Both refuse; only Portcullis has codes.
        (Outcome::Refused(_), Outcome::Refused(Some(_))) => Ok(()),
        _ => Err(format!(
            "{shown:?}: nginx {nginx:?}, Portcullis {ours:?} (differences that apply: {diff:?})"
        )),
    }
}

/// The pieces a segment is made of, most of them benign so that most
/// paths are compared rather than refused.
fn piece() -> impl Strategy<Value = &'static str> {
    let benign = prop::sample::select(vec![
        // Names, and `admin` spelled in pieces and escapes (both hex
        // cases).
        "admin",
        "admin",
        "adm",
        "in",
        "a",
        "x",
        "public",
        "ADMIN",
        "Admin",
        "%61",
        "%61dmin",
        "%41dmin",
        "%61%64%6d%69%6e",
        "%61%64%6D%69%6E",
        "%7E",
        "%7e",
        "%2D",
        "~",
        "-",
        // Dots, plain and encoded.
        ".",
        ".",
        "..",
        "..",
        "%2e",
        "%2E",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "%2e.",
        // Parameters and reserved escapes.
        ";",
        ";x=1",
        "%3B",
        "%3F",
        "%3f",
        "%20",
        "%25",
        "%252e",
        "%40",
        ":",
        "@",
        // UTF-8, raw and encoded.
        "é",
        "%C3%A9",
        "%c3%a9",
        "€",
        "%E2%82%AC",
    ]);
    let refused = prop::sample::select(vec![
        // Encoded slashes and backslashes.
        "%2F", "%2f", "%5C", "%5c", "\\", // Dot segments with parameters.
        "..;", ".;", // Octets that are not UTF-8, control and malformed escapes.
        "%C0%AF", "%c0%ae", "%FF", "%C3", "%00", "%01", "%7F", "%zz", "%",
    ]);
    prop_oneof![8 => benign, 1 => refused]
}

/// A path: segments of pieces, joined by one slash or, sometimes, two.
fn path() -> impl Strategy<Value = Vec<u8>> {
    let segment = prop::collection::vec(piece(), 0..3);
    let sep = prop_oneof![6 => Just("/"), 1 => Just("//")];
    prop::collection::vec((sep, segment), 1..7).prop_map(|segments| {
        let mut p = Vec::new();
        for (sep, pieces) in segments {
            p.extend_from_slice(sep.as_bytes());
            for piece in pieces {
                p.extend_from_slice(piece.as_bytes());
            }
        }
        p
    })
}

struct Servers {
    nginx: Gateway,
    nginx_up: RawUpstream,
    proxy: Proxy,
    proxy_up: RawUpstream,
}

impl Servers {
    async fn start() -> Servers {
        let nginx_up = RawUpstream::start(Mode::Ok).await;
        let proxy_up = RawUpstream::start(Mode::Ok).await;
        Servers {
            nginx: nginx(nginx_up.addr),
            proxy: Proxy::http(POLICY, proxy_up.addr),
            nginx_up,
            proxy_up,
        }
    }

    async fn compare(&self, path: &[u8]) -> Result<(), String> {
        let nginx = outcome(self.nginx.addr, &self.nginx_up, path).await;
        let ours = outcome(self.proxy.addr, &self.proxy_up, path).await;
        judge(path, &nginx, &ours)
    }
}

#[test]
fn nginx_and_portcullis_agree_on_the_spec_examples() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let servers = rt.block_on(Servers::start());
    // The examples of the request-canonicalization spec, §3 and §5, and
    // the attack classes of §11.
    let mut failed = Vec::new();
    for path in [
        "/admin",
        "/public",
        "/x/../admin",
        "/x/%2e%2e/admin",
        "/x/.%2E/admin",
        "/./admin",
        "//admin",
        "/admin//x",
        "/%61dmin",
        "/%41%62",
        "/a//b///c",
        "/a%252e",
        "/a%20b",
        "/a%3Fb",
        "/admin%3F.png",
        "/admin;jsessionid=1",
        "/administrator",
        "/ADMIN",
        "/caf%C3%A9",
        "/x/y/../../admin",
        "/a/b/c/./../../g",
        "/a%2Fb",
        "/x%2F..%2Fadmin",
        "/a%5Cb",
        "/a%00b",
        "/a%zz",
        "/a%",
        "/%C0%AFadmin",
        "/x/..;/admin",
        "/../admin",
        "/..",
    ] {
        if let Err(why) = rt.block_on(servers.compare(path.as_bytes())) {
            failed.push(why);
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn nginx_and_portcullis_agree_on_generated_paths() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let servers = rt.block_on(Servers::start());
    let mut runner = TestRunner::new(Config {
        cases: 1024,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&path(), |path| {
        rt.block_on(servers.compare(&path))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
