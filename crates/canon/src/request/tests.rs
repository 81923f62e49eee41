use http::header::{CONNECTION, HOST};

use super::*;
use crate::path::EscapedSlashes;
use crate::request::Underscores;

fn req(target: &str, version: Version, hosts: &[&str]) -> Request<()> {
    let mut b = Request::builder().uri(target).version(version);
    for h in hosts {
        b = b.header(HOST, *h);
    }
    b.body(()).expect("request")
}

fn canon(r: &mut Request<()>) -> Result<Arrival, Refusal> {
    request(r, false, &Options::default())
}

fn host(r: &Request<()>) -> Vec<&str> {
    r.headers()
        .get_all(HOST)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

#[test]
fn one_host_lower_case_and_the_path_canonical() {
    let mut r = req(
        "/x/../%61dmin?q=%2e",
        Version::HTTP_11,
        &["ADMIN.Internal.Test.:80"],
    );
    let arrival = canon(&mut r).expect("canonical");
    assert_eq!(r.uri(), "/admin?q=%2e");
    assert_eq!(host(&r), ["admin.internal.test"]);
    assert_eq!(
        arrival.raw_target.as_ref().map(PathAndQuery::as_str),
        Some("/x/../%61dmin?q=%2e")
    );
    assert_eq!(
        arrival.raw_authority.as_deref(),
        Some("ADMIN.Internal.Test.:80")
    );
}

#[test]
fn a_canonical_request_is_left_as_it_is() {
    let mut r = req("/api/v1?x=1", Version::HTTP_11, &["app.test:8080"]);
    assert_eq!(canon(&mut r), Ok(Arrival::default()));
    assert_eq!(r.uri(), "/api/v1?x=1");
    assert_eq!(host(&r), ["app.test:8080"]);
}

#[test]
fn host_games_are_refused() {
    let bad = |target: &str, v: Version, hosts: &[&str]| canon(&mut req(target, v, hosts));
    let host_err = |e| Err(Refusal::Host(e));
    assert_eq!(
        bad("/", Version::HTTP_11, &["a.test", "b.test"]),
        host_err(HostError::Duplicate)
    );
    assert_eq!(
        bad("/", Version::HTTP_11, &["a.test", "a.test"]),
        host_err(HostError::Duplicate)
    );
    assert_eq!(
        bad("/", Version::HTTP_11, &[]),
        host_err(HostError::Missing)
    );
    assert_eq!(
        bad("/", Version::HTTP_11, &["x/admin#"]),
        host_err(HostError::Invalid)
    );
    assert_eq!(
        bad("/", Version::HTTP_11, &["good@evil"]),
        host_err(HostError::Invalid)
    );
    assert_eq!(
        bad("/", Version::HTTP_11, &["a:99999"]),
        host_err(HostError::BadPort)
    );
    assert_eq!(bad("/", Version::HTTP_2, &[]), host_err(HostError::Missing));
    assert_eq!(
        bad("https://a.test/", Version::HTTP_2, &["b.test"]),
        host_err(HostError::Mismatch)
    );
    assert_eq!(
        bad("http://u@a.test/", Version::HTTP_11, &["a.test"]),
        host_err(HostError::Invalid)
    );
    // HTTP/1.0 needs no Host.
    assert_eq!(bad("/", Version::HTTP_10, &[]), Ok(Arrival::default()));
}

#[test]
fn the_absolute_form_wins_over_host() {
    let mut r = req("http://Other.Test/admin", Version::HTTP_11, &["mine.test"]);
    canon(&mut r).expect("canonical");
    assert_eq!(r.uri(), "/admin");
    assert_eq!(host(&r), ["other.test"]);
}

#[test]
fn http2_authority_becomes_the_host_and_must_agree_with_one() {
    let mut r = req("https://APP.test/a", Version::HTTP_2, &[]);
    request(&mut r, true, &Options::default()).expect("canonical");
    assert_eq!(host(&r), ["app.test"]);
    assert_eq!(r.uri(), "/a");
    let mut r = req("https://app.test:443/a", Version::HTTP_2, &["App.Test"]);
    request(&mut r, true, &Options::default()).expect("the same host");
}

#[test]
fn path_refusals_carry_their_code() {
    let e = canon(&mut req("/a%2Fb", Version::HTTP_11, &["a.test"])).expect_err("refused");
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::BAD_REQUEST, "ERR_PORTCULLIS_ENCODED_SLASH")
    );
    let e = canon(&mut req("/a%00", Version::HTTP_11, &["a.test"])).expect_err("refused");
    assert_eq!(e.code(), "ERR_PORTCULLIS_BAD_PATH");
    let e = canon(&mut req("/", Version::HTTP_11, &["a b"])).expect_err("refused");
    assert_eq!(e.code(), "ERR_PORTCULLIS_BAD_HOST");
}

#[test]
fn redirect_is_asked_for_when_configured() {
    let opts = Options {
        path: PathOptions {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::UnescapeAndRedirect,
        },
        ..Options::default()
    };
    let mut r = req("/a%2Fb?x", Version::HTTP_11, &["a.test"]);
    let arrival = request(&mut r, false, &opts).expect("canonical");
    assert!(arrival.redirect);
    assert_eq!(r.uri(), "/a/b?x");
}

#[test]
fn options_star_is_kept() {
    let mut r = Request::builder()
        .method(Method::OPTIONS)
        .uri("*")
        .header(HOST, "a.test")
        .body(())
        .expect("request");
    canon(&mut r).expect("canonical");
    assert_eq!(r.uri(), "*");
    let mut r = req("*", Version::HTTP_11, &["a.test"]);
    assert!(canon(&mut r).is_err(), "* is only for OPTIONS");
}

#[test]
fn fields_named_in_connection_are_removed_but_not_host_or_framing() {
    let mut r = req("/", Version::HTTP_11, &["a.test"]);
    let h = r.headers_mut();
    h.insert(
        CONNECTION,
        HeaderValue::from_static("close, X-Forwarded-For, x-auth, host, content-length, upgrade"),
    );
    h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
    h.insert("x-auth", HeaderValue::from_static("me"));
    h.insert("content-length", HeaderValue::from_static("0"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("te", HeaderValue::from_static("trailers"));
    h.insert("x-other", HeaderValue::from_static("kept"));
    canon(&mut r).expect("canonical");
    let mut names: Vec<&str> = r.headers().keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["content-length", "host", "upgrade", "x-other"]);
}

#[test]
fn two_framings_are_refused() {
    let mut r = req("/", Version::HTTP_11, &["a.test"]);
    r.headers_mut()
        .insert("content-length", HeaderValue::from_static("5"));
    r.headers_mut()
        .insert("transfer-encoding", HeaderValue::from_static("chunked"));
    let e = canon(&mut r).expect_err("refused");
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::BAD_REQUEST, "ERR_PORTCULLIS_BAD_FRAMING")
    );
}

#[test]
fn on_the_way_out_every_hop_by_hop_field_goes_but_host() {
    let mut h = HeaderMap::new();
    h.insert(CONNECTION, HeaderValue::from_static("x-named, host"));
    h.insert(HOST, HeaderValue::from_static("a.test"));
    h.insert("x-named", HeaderValue::from_static("1"));
    h.insert("upgrade", HeaderValue::from_static("websocket"));
    h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["host", "x-kept"]);
}

#[test]
fn fields_with_underscores_are_dropped_refused_or_kept() {
    let make = || {
        let mut r = req("/", Version::HTTP_11, &["a.test"]);
        r.headers_mut()
            .insert("x_auth_user", HeaderValue::from_static("admin"));
        r.headers_mut()
            .insert("x-kept", HeaderValue::from_static("1"));
        r
    };
    let mut r = make();
    canon(&mut r).expect("dropped by default");
    assert!(r.headers().get("x_auth_user").is_none());
    assert!(r.headers().get("x-kept").is_some());
    let reject = Options {
        underscores: Underscores::Reject,
        ..Options::default()
    };
    let e = request(&mut make(), false, &reject).expect_err("refused");
    assert_eq!(e.code(), "ERR_PORTCULLIS_HEADER_UNDERSCORE");
    let allow = Options {
        underscores: Underscores::Allow,
        ..Options::default()
    };
    let mut r = make();
    request(&mut r, false, &allow).expect("kept");
    assert!(r.headers().get("x_auth_user").is_some());
}

#[test]
fn path_and_method_overrides_are_removed_unless_kept() {
    let make = || {
        let mut r = req("/public", Version::HTTP_11, &["a.test"]);
        for name in [
            "x-original-url",
            "x-rewrite-url",
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ] {
            r.headers_mut()
                .insert(name, HeaderValue::from_static("/admin"));
        }
        r
    };
    let mut r = make();
    canon(&mut r).expect("canonical");
    assert_eq!(r.headers().len(), 1, "{:?}", r.headers());
    let keep = Options {
        keep_overrides: true,
        ..Options::default()
    };
    let mut r = make();
    request(&mut r, false, &keep).expect("canonical");
    assert_eq!(r.headers().len(), 6);
}
