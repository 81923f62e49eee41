//! Paths: every spelling of `/admin` is `/admin` to the rule and to the
//! upstream, or the request is refused before anything is forwarded.

use crate::raw::Mode;
use crate::{Expect, POLICY, check, fwd, get, http, must, table};

const BAD_PATH: Expect<'static> = Expect::Refused("ERR_PORTCULLIS_BAD_PATH");
const ENCODED_SLASH: Expect<'static> = Expect::Refused("ERR_PORTCULLIS_ENCODED_SLASH");

fn cases<'a>(list: &[(&[u8], Expect<'a>)]) -> Vec<(Vec<u8>, Expect<'a>)> {
    list.iter().map(|(t, e)| (get(t), *e)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_admin_is_denied_and_the_upstream_sees_canonical_paths() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    use Expect::Denied;
    let list: &[(&[u8], Expect)] = &[
        // Control: the plain forms.
        (b"/admin", Denied),
        (b"/public", fwd("/public")),
        // Dot segments, plain and encoded (either hex case, mixed).
        (b"/x/../admin", Denied),
        (b"/x/%2e%2e/admin", Denied),
        (b"/x/%2E%2E/admin", Denied),
        (b"/x/.%2E/admin", Denied),
        (b"/x/%2e./admin", Denied),
        (b"/./admin", Denied),
        (b"/%2e/admin", Denied),
        (b"/x/y/../../admin/panel", Denied),
        (b"/admin/..", fwd("/")),
        (b"/x/../public", fwd("/public")),
        (b"/a/b/c/./../../g", fwd("/a/g")),
        (b"/a/b/..", fwd("/a/")),
        (b"/a/./b/.", fwd("/a/b/")),
        // `..` above the root stays at the root.
        (b"/../admin", Denied),
        (b"/../../public", fwd("/public")),
        (b"/..", fwd("/")),
        (b"/%2e%2e/%2e%2e/public", fwd("/public")),
        // Encoded unreserved characters are the characters.
        (b"/%61dmin", Denied),
        (b"/%61%64%6D%69%6E", Denied),
        (b"/%61%64%6d%69%6e/x", Denied),
        (b"/pub%6cic", fwd("/public")),
        (b"/%7Euser/%2D%5F", fwd("/~user/-_")),
        // Other escapes stay, with upper-case hex; decoded once only.
        (b"/a%3fb", fwd("/a%3Fb")),
        (b"/a%20b", fwd("/a%20b")),
        (b"/a%2bb", fwd("/a%2Bb")),
        (b"/%252e%252e/admin", fwd("/%252e%252e/admin")),
        (b"/x/%252e%252e/%2561dmin", fwd("/x/%252e%252e/%2561dmin")),
        (b"/%E2%82%AC", fwd("/%E2%82%AC")),
        (b"/%e2%82%ac", fwd("/%E2%82%AC")),
        // Bytes a path may not hold are percent-encoded.
        (b"/a\"b", fwd("/a%22b")),
        // Repeated slashes are merged; `//host` never becomes an authority.
        (b"//admin", Denied),
        (b"///admin", Denied),
        (b"/admin//x", Denied),
        (b"//evil.test/admin", fwd("/evil.test/admin")),
        (b"//evil.test/public", fwd("/evil.test/public")),
        (b"/public//x///y", fwd("/public/x/y")),
        (b"/public/", fwd("/public/")),
        (b"/public//", fwd("/public/")),
        // Encoded slashes and backslashes are refused by default.
        (b"/x%2F..%2Fadmin", ENCODED_SLASH),
        (b"/x%2f..%2fadmin", ENCODED_SLASH),
        (b"/admin%2Fpanel", ENCODED_SLASH),
        (b"/public%2Fx", ENCODED_SLASH),
        (b"/x%5C..%5Cadmin", ENCODED_SLASH),
        (b"/x%5c..%5cadmin", ENCODED_SLASH),
        (b"/x\\..\\admin", ENCODED_SLASH),
        (b"/public\\x", ENCODED_SLASH),
        // NUL, control octets, malformed escapes.
        (b"/admin%00.png", BAD_PATH),
        (b"/public%00", BAD_PATH),
        (b"/a%01b", BAD_PATH),
        (b"/a%0d%0aX-Injected:%201", BAD_PATH),
        (b"/a%7F", BAD_PATH),
        (b"/a%zz", BAD_PATH),
        (b"/a%", BAD_PATH),
        (b"/a%2", BAD_PATH),
        (b"/a%g0", BAD_PATH),
        (b"/%%32%65%%32%65/admin", BAD_PATH),
        // Escapes that are not UTF-8: overlong forms, lone bytes.
        (b"/%C0%AFadmin", BAD_PATH),
        (b"/%c0%ae%c0%ae/admin", BAD_PATH),
        (b"/x/%C0%AE%C0%AE/admin", BAD_PATH),
        (b"/%FF", BAD_PATH),
        (b"/%E2%82", BAD_PATH),
        (b"/%ED%A0%80", BAD_PATH),
        // Path parameters: kept, and a dot segment with them refused.
        (b"/admin;jsessionid=1", Denied),
        (b"/public;x=1", fwd("/public;x=1")),
        (b"/x/..;/admin", BAD_PATH),
        (b"/x/..;foo/admin", BAD_PATH),
        (b"/.;/admin", BAD_PATH),
        (b"/x/%2e%2e;/admin", BAD_PATH),
        // Prefix boundary and case: exactly what the CEL string says.
        (b"/administrator", Denied),
        (b"/admin../secret", Denied),
        (b"/ADMIN", fwd("/ADMIN")),
        (b"/Admin", fwd("/Admin")),
        (b"/%41dmin", fwd("/Admin")),
        // Query confusion: `%3F` stays in the path, the query is untouched.
        (b"/admin%3F.png", Denied),
        (b"/public%3F/admin", fwd("/public%3F/admin")),
        (b"/public?x=/admin", fwd("/public?x=/admin")),
        (
            b"/public?q=%2F..%2Fadmin&r=%3f&s=%00",
            fwd("/public?q=%2F..%2Fadmin&r=%3f&s=%00"),
        ),
        (b"/x/..?/admin", fwd("/?/admin")),
    ];
    table(&proxy, &up, &cases(list)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_control_bytes_and_non_ascii_in_the_target_never_reach_the_upstream() {
    let (proxy, up) = http(POLICY, Mode::Ok, &[]).await;
    // Raw control bytes: refused by the proxy (BAD_PATH) or by the HTTP
    // parser before it (no code can be attached there); either way
    // nothing is forwarded.
    let mut failed = Vec::new();
    for target in [&b"/admin\x01"[..], b"/a\x7fb", b"/a\x00b", b"/a\x0bb"] {
        let req = get(target);
        let strict = check(proxy.addr, &up, &req, BAD_PATH).await;
        if let Err(why) = strict
            && let Err(loose) = check(proxy.addr, &up, &req, Expect::Unparsable).await
        {
            failed.push(format!("{target:?}: {why}; {loose}"));
        }
    }
    // Raw UTF-8 in the target: percent-encoded as a browser would send it,
    // or refused by the parser; never forwarded raw.
    for (target, want) in [
        (&b"/caf\xc3\xa9"[..], "/caf%C3%A9"),
        (b"/\xe2\x82\xac/admin", "/%E2%82%AC/admin"),
    ] {
        let req = get(target);
        if let Err(why) = check(proxy.addr, &up, &req, fwd(want)).await
            && let Err(loose) = check(proxy.addr, &up, &req, Expect::Unparsable).await
        {
            failed.push(format!("{target:?}: {why}; {loose}"));
        }
    }
    // Invalid UTF-8 raw in the target: refused.
    let req = get(b"/a\xc0\xafadmin");
    if let Err(why) = check(proxy.addr, &up, &req, BAD_PATH).await
        && let Err(loose) = check(proxy.addr, &up, &req, Expect::Unparsable).await
    {
        failed.push(format!("raw C0 AF: {why}; {loose}"));
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_read_the_canonical_path_and_raw_path_keeps_what_was_sent() {
    let policy = r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-path: "${req.url.path}"
            x-raw-path: "${req.url.raw_path}"
"#;
    let (proxy, up) = http(policy, Mode::Ok, &[]).await;
    let reply = must(
        &proxy,
        &up,
        &get(b"/%61dmin/../pub%6cic//x?q=%2e%2e"),
        fwd("/public/x?q=%2e%2e"),
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = up.last();
    assert_eq!(seen.header("x-path").as_deref(), Some("/public/x"));
    assert_eq!(
        seen.header("x-raw-path").as_deref(),
        Some("/%61dmin/../pub%6cic//x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_merging_slashes_the_rule_and_the_upstream_see_the_same_slashes() {
    let (proxy, up) = http(POLICY, Mode::Ok, &["--no-merge-slashes"]).await;
    use Expect::Denied;
    let list: &[(&[u8], Expect)] = &[
        // `//admin` is not `/admin` here, for the rule nor the upstream.
        (b"//admin", fwd("//admin")),
        (b"/public//x", fwd("/public//x")),
        (b"/admin//x", Denied),
        (b"/x/../admin", Denied),
        (b"/x//../admin", fwd("/x/admin")),
        (b"/%61dmin", Denied),
        (b"/x%2F..%2Fadmin", ENCODED_SLASH),
    ];
    table(&proxy, &up, &cases(list)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_kept_stay_opaque_in_one_segment() {
    let (proxy, up) = http(POLICY, Mode::Ok, &["--escaped-slashes", "keep"]).await;
    use Expect::Denied;
    let list: &[(&[u8], Expect)] = &[
        (b"/admin%2Fpanel", Denied),
        (b"/public%2F..%2Fadmin", fwd("/public%2F..%2Fadmin")),
        (b"/a%2fb", fwd("/a%2Fb")),
        (b"/a%5cb", fwd("/a%5Cb")),
        (b"/a\\b", fwd("/a%5Cb")),
        // The rest of canonicalization still applies.
        (b"/x/../admin", Denied),
        (b"/a%2Fb/../c", fwd("/c")),
        (b"/admin%00", BAD_PATH),
    ];
    table(&proxy, &up, &cases(list)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_unescaped_and_redirected_send_the_client_to_the_canonical_path() {
    let (proxy, up) = http(
        POLICY,
        Mode::Ok,
        &["--escaped-slashes", "unescape_and_redirect"],
    )
    .await;
    use Expect::Redirect;
    let list: &[(&[u8], Expect)] = &[
        (b"/x%2F..%2Fadmin?q=1", Redirect("/admin?q=1")),
        (b"/a%2Fb", Redirect("/a/b")),
        (b"/a%2f%2fb", Redirect("/a/b")),
        (b"/a%5Cb", Redirect("/a/b")),
        (b"/a\\b", Redirect("/a/b")),
        // A path without escaped slashes is not redirected.
        (b"/public", fwd("/public")),
        (b"/x/../public", fwd("/public")),
        (b"/x/../admin", Expect::Denied),
    ];
    table(&proxy, &up, &cases(list)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_slashes_unescaped_and_forwarded_are_separators_for_the_rule_too() {
    let (proxy, up) = http(
        POLICY,
        Mode::Ok,
        &["--escaped-slashes", "unescape_and_forward"],
    )
    .await;
    use Expect::Denied;
    let list: &[(&[u8], Expect)] = &[
        (b"/x%2F..%2Fadmin", Denied),
        (b"/x%5C..%5Cadmin", Denied),
        (b"/x\\..\\admin", Denied),
        (b"/admin%2Fpanel", Denied),
        (b"/a%2Fb", fwd("/a/b")),
        (b"/a%5cb", fwd("/a/b")),
        (b"/a%2F%2Fb", fwd("/a/b")),
        (b"/public%2F..%2F..%2Fx", fwd("/x")),
    ];
    table(&proxy, &up, &cases(list)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sets_path_options_per_endpoint() {
    let up = crate::RawUpstream::start(Mode::Ok).await;
    let proxy = crate::Proxy::serve_for(
        &up.addr,
        "    traffic_policy_file: policy.yml\n    paths: { merge_slashes: false, escaped_slashes: unescape_and_forward }\n",
        &[("policy.yml", POLICY)],
    );
    let list: &[(&[u8], Expect)] = &[
        (b"//admin", fwd("//admin")),
        (b"/x%2F..%2Fadmin", Expect::Denied),
        (b"/a%2Fb", fwd("/a/b")),
    ];
    table(&proxy, &up, &cases(list)).await;
}
