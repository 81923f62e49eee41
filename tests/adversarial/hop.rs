//! Hop-by-hop abuse: what a client names in `Connection` is removed
//! before the policy runs, so it can never remove what the edge or the
//! policy adds, and never `Host`.

use crate::raw::Mode;
use crate::{fwd, http, must};

fn request(headers: &str) -> Vec<u8> {
    format!("GET /x HTTP/1.1\r\nHost: mine.test\r\n{headers}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cannot_remove_what_the_edge_or_the_policy_adds() {
    let policy = r#"
on_http_request:
  - expressions: ["'x-secret' in req.headers"]
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-added: policy
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    // The forwarding header the proxy adds survives a client naming it;
    // the client's own value, named, is gone.
    must(
        &proxy,
        &up,
        &request("Connection: close, X-Forwarded-For\r\nX-Forwarded-For: 198.51.100.7\r\n"),
        fwd("/x"),
    )
    .await;
    let seen = up.last();
    assert_eq!(
        seen.headers("x-forwarded-for"),
        ["127.0.0.1"],
        "{}",
        seen.head_text()
    );

    // A header the policy adds survives a client naming it.
    must(
        &proxy,
        &up,
        &request("Connection: x-added\r\nX-Added: client\r\n"),
        fwd("/x"),
    )
    .await;
    let seen = up.last();
    assert_eq!(seen.headers("x-added"), ["policy"], "{}", seen.head_text());

    // Host survives `Connection: host`.
    must(
        &proxy,
        &up,
        &request("Connection: host, keep-alive\r\n"),
        fwd("/x"),
    )
    .await;

    // A named field is gone before the policy runs (the rule that reads
    // it does not see it) and is not forwarded; so are the hop-by-hop
    // fields named or not.
    must(
        &proxy,
        &up,
        &request(
            "Connection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Kept: yes\r\n",
        ),
        fwd("/x"),
    )
    .await;
    let seen = up.last();
    for gone in ["x-secret", "keep-alive", "proxy-connection", "te"] {
        assert!(
            seen.headers(gone).is_empty(),
            "{gone}: {}",
            seen.head_text()
        );
    }
    assert_eq!(seen.headers("x-kept"), ["yes"]);
    // Not named: the rule sees it.
    must(
        &proxy,
        &up,
        &request("X-Secret: 1\r\n"),
        crate::Expect::Denied,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_are_replaced() {
    let (proxy, up) = http("on_http_request: []\n", Mode::Ok, &[]).await;
    must(
        &proxy,
        &up,
        &request(
            "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: admin.internal.test\r\n",
        ),
        fwd("/x"),
    )
    .await;
    let seen = up.last();
    assert_eq!(seen.headers("x-forwarded-for"), ["198.51.100.7, 127.0.0.1"]);
    assert_eq!(seen.headers("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.headers("x-forwarded-host"), ["mine.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_spelled_with_underscores_cannot_stand_in_for_one_the_policy_adds() {
    // CGI, WSGI, Rack and PHP read `X_Auth_User` as `X-Auth-User`: a
    // client's underscored copy would sit beside, or override, the
    // identity the policy sets. It never reaches the upstream.
    let policy = r#"
on_http_request:
  - expressions: ["'x_role' in req.headers"]
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-auth-user: from-policy
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    must(
        &proxy,
        &up,
        &request("X_Auth_User: admin\r\nx_role: admin\r\n"),
        fwd("/x"),
    )
    .await;
    let seen = up.last();
    let head = seen.head_text().to_ascii_lowercase();
    assert!(
        !head.contains("x_auth_user") && !head.contains("x_role"),
        "{head}"
    );
    assert_eq!(seen.headers("x-auth-user"), ["from-policy"], "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_method_overrides_never_reach_the_upstream() {
    // IIS and Symfony route `X-Original-URL`; many frameworks honour a
    // method override: either would make the upstream serve another path
    // or method than the one the policy judged.
    let policy = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin') || req.method == 'DELETE'"]
    actions:
      - type: deny
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    must(
        &proxy,
        &up,
        &request(
            "X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\n",
        ),
        fwd("/x"),
    )
    .await;
    let head = up.last().head_text().to_ascii_lowercase();
    for name in [
        "x-original-url",
        "x-rewrite-url",
        "x-http-method",
        "x-method-override",
    ] {
        assert!(!head.contains(name), "{name} reached the upstream: {head}");
    }
}
