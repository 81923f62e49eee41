//! Tests of request variables.

use std::sync::Arc;

use http::Request;
use portcullis_cel::Value;
use portcullis_policy::schema::Phase;

use crate::{Conn, Endpoint, RequestCtx, body, env};

fn ctx(req: Request<body::Body>) -> RequestCtx {
    let conn = Arc::new(Conn::new(
        "[::ffff:192.0.2.7]:4000".parse().expect("addr"),
        "127.0.0.1:8080".parse().expect("addr"),
        None,
    ));
    RequestCtx::new(
        req,
        conn,
        Arc::new(Endpoint::new("https://app.example.com")),
    )
}

fn eval(ctx: &RequestCtx, expr: &str) -> Value<'static> {
    let program = env::env(Phase::HttpRequest)
        .compile(expr)
        .unwrap_or_else(|d| panic!("{expr}: {d:?}"));
    program
        .eval(ctx)
        .unwrap_or_else(|e| panic!("{expr}: {}", e.message()))
        .to_static()
}

#[test]
fn request_variables_read_the_request() {
    let req = Request::post("/api/items?page=2&tag=a&tag=b")
        .header("host", "app.example.com:8443")
        .header("user-agent", "curl/8.5.0")
        .header("content-type", "application/json; charset=utf-8")
        .header("content-length", "17")
        .header("cookie", "session=abc; theme=dark")
        .header("x-roles", "admin")
        .header("x-roles", "ops")
        .body(body::empty())
        .expect("request");
    let ctx = ctx(req);
    let cases = [
        ("req.method", "POST"),
        (
            "req.url",
            "https://app.example.com:8443/api/items?page=2&tag=a&tag=b",
        ),
        ("req.url.path", "/api/items"),
        ("req.url.query", "page=2&tag=a&tag=b"),
        ("req.url.host", "app.example.com"),
        ("req.host", "app.example.com:8443"),
        ("req.user_agent", "curl/8.5.0"),
        ("req.content_type", "application/json"),
        ("req.content_type.parameters['charset']", "utf-8"),
        ("req.cookies['theme'][0].value", "dark"),
        ("getReqCookie('session').value", "abc"),
        ("conn.client_ip", "192.0.2.7"),
        ("endpoint.host", "app.example.com"),
        ("req.version", "HTTP/1.1"),
    ];
    for (expr, want) in cases {
        assert_eq!(eval(&ctx, expr).as_str(), Some(want), "{expr}");
    }
    let truths = [
        "req.url.port == 8443",
        "req.content_length == 17",
        "req.url.query_params['tag'] == ['a', 'b']",
        "'ops' in req.headers['x-roles']",
        "getReqHeader('X-Roles') == ['admin', 'ops']",
        "hasQueryParam('page') && !hasQueryParam('nope')",
        "!('X-Roles' in req.headers)",
        "size(vars) == 0",
    ];
    for expr in truths {
        assert_eq!(eval(&ctx, expr).as_bool(), Some(true), "{expr}");
    }
}

#[test]
fn a_request_without_a_body_has_length_zero_and_a_streamed_one_none() {
    let get = ctx(Request::get("/").body(body::empty()).expect("request"));
    assert_eq!(eval(&get, "req.content_length == 0").as_bool(), Some(true));
    let chunked = ctx(Request::post("/")
        .header("transfer-encoding", "chunked")
        .body(body::empty())
        .expect("request"));
    assert_eq!(
        eval(&chunked, "has(req.content_length)").as_bool(),
        Some(false)
    );
}

#[test]
fn header_lookups_agree_whether_they_scan_or_hash() {
    use portcullis_cel::value::MultiMap;

    use super::{Headers, SCAN_MAX, first_value, has_header};
    // A few fields (looked up by scanning) and many (by hashing).
    for extra in [0, SCAN_MAX + 4] {
        let mut map = http::HeaderMap::new();
        map.append("x-roles", "admin".parse().expect("value"));
        map.append("accept", "text/html".parse().expect("value"));
        map.append("x-roles", "ops".parse().expect("value"));
        for i in 0..extra {
            let name = http::header::HeaderName::from_bytes(format!("x-fill-{i}").as_bytes());
            map.append(name.expect("name"), "1".parse().expect("value"));
        }
        let h = Headers(map);
        assert_eq!(h.count("x-roles"), 2, "{extra}");
        assert_eq!(h.count("accept"), 1, "{extra}");
        assert_eq!(h.count("X-Roles"), 0, "{extra}");
        assert_eq!(h.count("x-absent"), 0, "{extra}");
        assert!(h.contains("x-roles") && h.contains("accept"), "{extra}");
        assert!(!h.contains("X-Roles") && !h.contains("x-absent"), "{extra}");
        assert_eq!(h.value("x-roles", 0), Some("admin"), "{extra}");
        assert_eq!(h.value("x-roles", 1), Some("ops"), "{extra}");
        assert_eq!(h.value("x-roles", 2), None, "{extra}");
        assert_eq!(h.find_value("x-roles", &mut |v| v == "ops"), Some(true));
        assert_eq!(h.find_value("x-roles", &mut |v| v == "dev"), Some(false));
        assert_eq!(h.find_value("x-absent", &mut |_| true), None);
        assert!(has_header(&h.0, &http::header::ACCEPT), "{extra}");
        let first = first_value(&h.0, &http::header::HeaderName::from_static("x-roles"));
        assert_eq!(first.map(|v| v.as_bytes()), Some(&b"admin"[..]), "{extra}");
        assert_eq!(first_value(&h.0, &http::header::COOKIE), None, "{extra}");
        assert!(!has_header(&h.0, &http::header::COOKIE), "{extra}");
    }
}

#[test]
fn sign_in_objects_are_maps_of_their_results_or_null() {
    let holds = |c: &RequestCtx, expr: &str| matches!(eval(c, expr), Value::Bool(true));
    let mut c = ctx(Request::new(body::empty()));
    // Before the action ran: the objects are absent, as ngrok's examples
    // test them.
    assert!(holds(&c, "!has(actions.ngrok.oauth.identity)"));
    assert!(holds(&c, "!has(actions.ngrok.oidc.error)"));
    // ... and `null`, which is how ngrok's examples compare them.
    assert!(holds(&c, "actions.ngrok.oauth.identity == null"));
    assert!(holds(&c, "actions.ngrok.saml == null"));
    let var = |name: &str| crate::ResultVar::named(name).expect(name);
    c.set_result(
        var("actions.ngrok.oauth.identity.email"),
        Value::string("alice@example.com"),
    );
    c.set_result(
        var("actions.ngrok.oauth.identity.name"),
        Value::string("Alice"),
    );
    c.set_result(
        var("actions.ngrok.oauth.session_timed_out"),
        Value::Bool(false),
    );
    for expr in [
        "has(actions.ngrok.oauth.identity)",
        "actions.ngrok.oauth.identity['email'] == 'alice@example.com'",
        "actions.ngrok.oauth['identity']['name'] == 'Alice'",
        "actions.ngrok.oauth.identity.email == 'alice@example.com'",
        "size(actions.ngrok.oauth) == 2",
        "!has(actions.ngrok.oauth.error)",
        "actions.ngrok.oauth.error == null",
        "actions.ngrok.oauth.identity != null && actions.ngrok.oauth.identity.email.endsWith('@example.com')",
    ] {
        assert!(holds(&c, expr), "{expr}");
    }
}
