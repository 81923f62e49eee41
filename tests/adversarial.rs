//! The adversarial suite: the `portcullis` binary tried as an attacker
//! would, against a raw-socket upstream that records the bytes it
//! receives. Each case asserts both sides: what the client got (status
//! and `portcullis-error-code`) and what reached the upstream (the exact
//! request line and `Host`, or nothing at all).
//!
//! The invariant under test: what a rule reads is what the upstream
//! receives (issue 13). The attack classes are the table in §11 of the
//! request-canonicalization spec; each module covers some of them:
//! `paths` (encodings, dot segments, slashes, NUL, overlong UTF-8, path
//! parameters, query confusion), `authority` (Host and `:authority`
//! games, absolute form, URL-building actions), `hop` (hop-by-hop
//! abuse), `upgrade` (h2c, WebSocket without `101`), `framing`
//! (smuggling, response framing, header injection, oversize), `h2`
//! (HTTP/2 downgrade injection) and `timeouts` (idle, slow and stalled
//! peers).
//!
//! Tables collect every failing case before failing, so one run reports
//! all of them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

#[path = "support/proxy.rs"]
mod support;

#[path = "support/raw.rs"]
mod raw;

#[path = "adversarial/authority.rs"]
mod authority;
#[path = "adversarial/framing.rs"]
mod framing;
#[path = "adversarial/h2.rs"]
mod h2;
#[path = "adversarial/hop.rs"]
mod hop;
#[path = "adversarial/paths.rs"]
mod paths;
#[path = "adversarial/timeouts.rs"]
mod timeouts;
#[path = "adversarial/upgrade.rs"]
mod upgrade;

use raw::{RawUpstream, Reply};
use support::Proxy;

/// The policy most cases run: a path rule and a host rule, both deny.
const POLICY: &str = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
  - expressions: ["req.host == 'admin.internal.test'"]
    actions:
      - type: deny
"#;

/// The host every request of a table carries unless it says otherwise.
const HOST: &str = "mine.test";

/// What a case must come to.
#[derive(Clone, Copy, Debug)]
enum Expect<'a> {
    /// Allowed: `200`, and the upstream received `GET <target> HTTP/1.1`
    /// with `Host: <host>`.
    Forwarded { target: &'a str, host: &'a str },
    /// Denied by the policy: `403`, nothing upstream.
    Denied,
    /// Refused before the policy: `400` with this code, nothing upstream.
    Refused(&'a str),
    /// Refused by the HTTP parser itself (no code can be attached there):
    /// a `4xx`, or the connection closed, and nothing upstream.
    Unparsable,
    /// `308` to this `Location`, nothing upstream.
    Redirect(&'a str),
}

/// `Expect::Forwarded` with the default host.
fn fwd(target: &str) -> Expect<'_> {
    Expect::Forwarded { target, host: HOST }
}

/// A `GET` of `target` with `Host: mine.test`, as bytes.
fn get(target: &[u8]) -> Vec<u8> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: mine.test\r\n\r\n");
    req
}

/// Sends `request` to `proxy` and checks the answer and what `up`
/// received against `expect`; `Err` says what differed.
async fn check(
    proxy: SocketAddr,
    up: &RawUpstream,
    request: &[u8],
    expect: Expect<'_>,
) -> Result<Reply, String> {
    let (n_before, bytes_before) = (up.requests().len(), up.bytes());
    let reply = raw::exchange(proxy, request).await;
    let got = format!(
        "got {} {:?}",
        reply.status,
        reply.code().unwrap_or_default()
    );
    let nothing_upstream = |reply: &Reply| {
        // A refusal is answered before anything is forwarded; a forward
        // would have come first.
        if up.bytes() != bytes_before {
            let seen = up.requests();
            let line = seen
                .get(n_before)
                .map(|s| s.head_text())
                .unwrap_or_default();
            return Err(format!(
                "{got}, but the upstream received {} bytes: {line:?}",
                up.bytes() - bytes_before
            ));
        }
        Ok(reply.clone())
    };
    match expect {
        Expect::Forwarded { target, host } => {
            if reply.status != 200 {
                return Err(format!("{got}, want 200 forwarded as {target}"));
            }
            let seen = up.wait_requests(n_before + 1).await;
            let Some(req) = seen.get(n_before) else {
                return Err(format!("{got}, but the upstream received nothing"));
            };
            let want = format!("GET {target} HTTP/1.1");
            if req.request_line() != want || req.headers("host") != [host] {
                return Err(format!(
                    "the upstream received {:?} with host {:?}, want {want:?} with host {host:?}",
                    req.request_line(),
                    req.headers("host")
                ));
            }
            if seen.len() > n_before + 1 {
                return Err(format!("the upstream received {} requests", seen.len()));
            }
            Ok(reply)
        }
        Expect::Denied if reply.status == 403 => nothing_upstream(&reply),
        Expect::Denied => Err(format!("{got}, want 403 from the policy")),
        Expect::Refused(code) if reply.status == 400 && reply.code().as_deref() == Some(code) => {
            nothing_upstream(&reply)
        }
        Expect::Refused(code) => Err(format!("{got}, want 400 {code}")),
        Expect::Unparsable if reply.status == 0 || (400..500).contains(&reply.status) => {
            nothing_upstream(&reply)
        }
        Expect::Unparsable => Err(format!("{got}, want a 4xx from the parser")),
        Expect::Redirect(location)
            if reply.status == 308 && reply.header("location").as_deref() == Some(location) =>
        {
            nothing_upstream(&reply)
        }
        Expect::Redirect(location) => Err(format!(
            "{got} to {:?}, want 308 to {location}",
            reply.header("location")
        )),
    }
}

/// [`check`], failing the test with the proxy's log if the case does not
/// hold.
async fn must(proxy: &Proxy, up: &RawUpstream, request: &[u8], expect: Expect<'_>) -> Reply {
    match check(proxy.addr, up, request, expect).await {
        Ok(reply) => reply,
        Err(why) => panic!(
            "{:?}: {why}\nproxy log:\n{}",
            String::from_utf8_lossy(request),
            tail(&proxy.log())
        ),
    }
}

/// Runs `check` on every `(request, expect)` and fails once with every
/// case that did not hold.
async fn table(proxy: &Proxy, up: &RawUpstream, cases: &[(Vec<u8>, Expect<'_>)]) {
    let mut failed = String::new();
    for (request, expect) in cases {
        if let Err(why) = check(proxy.addr, up, request, *expect).await {
            let head = String::from_utf8_lossy(request);
            let shown: String = head.chars().take(160).collect();
            let _ = writeln!(failed, "  {shown:?}: {why}");
        }
    }
    assert!(
        failed.is_empty(),
        "cases that did not hold:\n{failed}\nproxy log:\n{}",
        tail(&proxy.log())
    );
}

/// The last lines of a log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `portcullis http` in front of a fresh upstream answering per `mode`.
async fn http(policy: &str, mode: raw::Mode, extra: &[&str]) -> (Proxy, RawUpstream) {
    let up = RawUpstream::start(mode).await;
    let proxy = Proxy::http_with(policy, up.addr, extra);
    (proxy, up)
}

/// The admin address of a `serve` proxy whose config has
/// `admin: 127.0.0.1:0`, read from its log.
fn admin(proxy: &Proxy) -> SocketAddr {
    const LINE: &str = "admin (/metrics, /healthz) on ";
    assert!(proxy.wait_for_log(LINE), "{}", proxy.log());
    let log = proxy.log();
    let at = log.find(LINE).expect("admin line") + LINE.len();
    log[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
        .collect::<String>()
        .parse()
        .expect("admin address")
}

/// The admin listener's `/metrics`.
async fn metrics(admin: SocketAddr) -> String {
    support::get(&format!("http://{admin}/metrics"), &[])
        .await
        .text()
}

/// The value of the sample `name` (with its labels, as written) in
/// `/metrics`, if there is one.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (up to `within`) until `test` holds of `/metrics`.
async fn metrics_until(admin: SocketAddr, within: Duration, test: impl Fn(&str) -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if test(&metrics(admin).await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
