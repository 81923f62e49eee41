//! Host and authority: one authority per request, checked, canonical, and
//! the same for the rule (`req.host`, `req.url.host`) and the upstream.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};

use crate::raw::Mode;
use crate::{Expect, HOST, POLICY, fwd, http, must, table};

const BAD_HOST: Expect<'static> = Expect::Refused("ERR_PORTCULLIS_BAD_HOST");

/// `GET /x` with these header lines (each ending in CRLF).
fn with_headers(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\n{headers}\r\n").into_bytes()
}

fn host(value: &str) -> Vec<u8> {
    with_headers("/x", &format!("Host: {value}\r\n"))
}

fn to<'a>(host: &'a str) -> Expect<'a> {
    Expect::Forwarded { target: "/x", host }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_checked_and_canonical_for_the_rule_and_the_upstream() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    use Expect::Denied;
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        // Other spellings of the denied host.
        (host("admin.internal.test"), Denied),
        (host("ADMIN.Internal.Test"), Denied),
        (host("admin.internal.test."), Denied),
        (host("ADMIN.Internal.Test."), Denied),
        (host("admin.internal.test:80"), Denied),
        (host("Admin.Internal.Test.:80"), Denied),
        // Canonical forms reach the upstream.
        (host("Mine.TEST"), to("mine.test")),
        (host("mine.test."), to("mine.test")),
        (host("mine.test:80"), to("mine.test")),
        (host("mine.test:8080"), to("mine.test:8080")),
        (host("127.0.0.1"), to("127.0.0.1")),
        (host("[::1]:8080"), to("[::1]:8080")),
        // Exactly one Host.
        (
            with_headers("/x", "Host: mine.test\r\nHost: mine.test\r\n"),
            BAD_HOST,
        ),
        (
            with_headers("/x", "Host: mine.test\r\nHost: admin.internal.test\r\n"),
            BAD_HOST,
        ),
        (
            with_headers("/x", "Host: admin.internal.test\r\nHost: mine.test\r\n"),
            BAD_HOST,
        ),
        (with_headers("/x", ""), BAD_HOST),
        // Syntax.
        (host("a/b"), BAD_HOST),
        (host("x/admin#"), BAD_HOST),
        (host("good@evil"), BAD_HOST),
        (host("user:pass@mine.test"), BAD_HOST),
        (host("a..b"), BAD_HOST),
        (host("a:99999"), BAD_HOST),
        (host("a:65536"), BAD_HOST),
        (host("a:x"), BAD_HOST),
        (host("a b"), BAD_HOST),
        (host(""), BAD_HOST),
        (host("mine.test?x"), BAD_HOST),
        (host("[::1"), BAD_HOST),
        (host("a\\b"), BAD_HOST),
        // Absolute form: the target's authority wins over Host, and the
        // upstream gets origin form.
        (
            with_headers("http://other.test/x", "Host: mine.test\r\n"),
            to("other.test"),
        ),
        (
            with_headers("http://Other.Test.:80/x", "Host: mine.test\r\n"),
            to("other.test"),
        ),
        (
            with_headers("http://other.test/admin", "Host: mine.test\r\n"),
            Denied,
        ),
        (
            with_headers("http://other.test//x/../admin", "Host: mine.test\r\n"),
            Denied,
        ),
        (
            with_headers("http://ADMIN.internal.test./x", "Host: mine.test\r\n"),
            Denied,
        ),
        (
            with_headers("http://mine.test/x", "Host: admin.internal.test\r\n"),
            to("mine.test"),
        ),
        (
            with_headers("http://good@evil.test/x", "Host: mine.test\r\n"),
            BAD_HOST,
        ),
        (
            with_headers("http://other.test/x%2F..%2Fadmin", "Host: mine.test\r\n"),
            Expect::Refused("ERR_PORTCULLIS_ENCODED_SLASH"),
        ),
    ];
    table(&proxy, &up, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_host_and_req_url_host_are_the_canonical_host() {
    let policy = r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-req-host: "${req.host}"
            x-url-host: "${req.url.host}"
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    for (request, want) in [
        (host("Mine.Test."), "mine.test"),
        (
            with_headers("http://Other.TEST/x", "Host: mine.test\r\n"),
            "other.test",
        ),
    ] {
        must(&proxy, &up, &request, to(want)).await;
        let seen = up.last();
        assert_eq!(seen.header("x-req-host").as_deref(), Some(want));
        assert_eq!(seen.header("x-url-host").as_deref(), Some(want));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_building_actions_cannot_produce_a_target_the_client_could_not_send() {
    // The rewrite runs before the deny rule, which reads its result.
    let policy = r#"
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: "/api/v1/"
          to: "/api/v2/"
  - actions:
      - type: url-rewrite
        config:
          from: "/pub/"
          to: "/pub/../admin/"
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        // The rewrite works on canonical requests.
        (
            with_headers("/api/v1/items?page=2", "Host: mine.test\r\n"),
            Expect::Forwarded {
                target: "/api/v2/items?page=2",
                host: HOST,
            },
        ),
        // A Host that would re-parse into a path never gets that far.
        (
            with_headers("/api/v1/items", "Host: x/admin#\r\n"),
            BAD_HOST,
        ),
        (
            with_headers("/api/v1/items", "Host: x?/admin#\r\n"),
            BAD_HOST,
        ),
        // A rewrite's result is canonicalized before the next rule and
        // the upstream see it.
        (
            with_headers("/pub/x", "Host: mine.test\r\n"),
            Expect::Denied,
        ),
    ];
    table(&proxy, &up, &cases).await;
    // Without the deny, the upstream gets the canonical result.
    let policy = r#"
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: "/pub/"
          to: "/pub/./../admin//"
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    must(
        &proxy,
        &up,
        &with_headers("/pub/x?y=1", "Host: mine.test\r\n"),
        fwd("/admin/x?y=1"),
    )
    .await;
}

/// An HTTP/2 (prior knowledge) `GET` of `uri` on a new connection to the
/// proxy, with `headers`; the status, and the code if any.
async fn h2(
    proxy: std::net::SocketAddr,
    uri: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Option<String>), String> {
    let tcp = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = res.status().as_u16();
    let code = res
        .headers()
        .get("portcullis-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = res.into_body().collect().await;
    Ok((status, code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authority_is_canonical_and_must_agree_with_host() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    let mut failed = Vec::new();
    // `:authority` in other spellings of the denied host.
    for authority in [
        "ADMIN.Internal.Test",
        "admin.internal.test.",
        "Admin.Internal.Test.:80",
    ] {
        let before = up.bytes();
        match h2(proxy.addr, &format!("http://{authority}/x"), &[]).await {
            Ok((403, _)) if up.bytes() == before => {}
            other => failed.push(format!(
                ":authority {authority}: {other:?}, upstream bytes {}",
                up.bytes() - before
            )),
        }
    }
    // A canonical `:authority` is the Host the upstream receives.
    match h2(proxy.addr, "http://Mine.Test./x", &[]).await {
        Ok((200, _)) => {
            let seen = up.wait_requests(1).await;
            match seen.last() {
                Some(s)
                    if s.request_line() == "GET /x HTTP/1.1"
                        && s.headers("host") == ["mine.test"] => {}
                other => failed.push(format!("forwarded as {other:?}")),
            }
        }
        other => failed.push(format!(":authority Mine.Test.: {other:?}")),
    }
    // A `host` field that agrees after canonicalization is fine; one that
    // disagrees is a malformed request, and nothing is forwarded.
    let n = up.requests().len();
    match h2(proxy.addr, "http://mine.test/x", &[("host", "MINE.test")]).await {
        Ok((200, _)) => {
            let seen = up.wait_requests(n + 1).await;
            if seen.get(n).map(|s| s.headers("host")) != Some(vec!["mine.test".to_owned()]) {
                failed.push(format!("agreeing host forwarded as {:?}", seen.get(n)));
            }
        }
        other => failed.push(format!("agreeing host: {other:?}")),
    }
    for (authority, field) in [
        ("mine.test", "admin.internal.test"),
        ("admin.internal.test", "mine.test"),
        ("mine.test", "mine.test:8080"),
    ] {
        let before = up.bytes();
        let res = h2(
            proxy.addr,
            &format!("http://{authority}/x"),
            &[("host", field)],
        )
        .await;
        let refused = match &res {
            Ok((400, code)) => code.as_deref() == Some("ERR_PORTCULLIS_BAD_HOST"),
            // A stream reset (PROTOCOL_ERROR) also refuses it.
            Err(_) => true,
            Ok(_) => false,
        };
        if !refused || up.bytes() != before {
            failed.push(format!(
                ":authority {authority} with host {field}: {res:?}, upstream bytes {}",
                up.bytes() - before
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}\n{}", proxy.log());
}
