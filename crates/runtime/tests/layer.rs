//! [`PolicyLayer`] in front of a tower service, as an application sees it:
//! what the client gets back, and whether (and with what) the request
//! reached the wrapped service.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use portcullis_runtime::body::{self, Body};
use portcullis_runtime::{Conn, Options, Pipeline, PolicyLayer};
use tower::{Layer, ServiceExt, service_fn};

/// What the client got, and how many requests reached the upstream.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    upstream_calls: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `req` through `policy` to an upstream that answers 200 with
/// `x-upstream: yes` and echoes what it received: the path and query,
/// then each `x-` header as `name: value` lines.
async fn send(policy: &str, req: Request<Body>) -> Seen {
    let pipeline = Pipeline::load(policy, &Options::default())
        .unwrap_or_else(|diags| panic!("the test policy is invalid: {diags:#?}"));
    let calls = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let calls = calls.clone();
        service_fn(move |req: Request<Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let mut echo = req.uri().to_string();
            echo.push('\n');
            for (name, value) in req.headers() {
                if name.as_str().starts_with("x-") {
                    let value = value.to_str().unwrap_or("<not text>");
                    echo.push_str(&format!("{name}: {value}\n"));
                }
            }
            let res = Response::builder()
                .header("x-upstream", "yes")
                .body(body::full(echo))
                .expect("a valid response");
            async move { Ok::<_, Infallible>(res) }
        })
    };
    let svc = PolicyLayer::new(Arc::new(pipeline), "http://app.example.com").layer(upstream);
    let res = svc.oneshot(req).await.expect("the service cannot fail");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("a readable body").to_bytes();
    Seen {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        upstream_calls: calls.load(Ordering::SeqCst),
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "app.example.com")
        .body(body::empty())
        .expect("a valid request")
}

const DENY_ADMIN: &str = r#"
on_http_request:
  - expressions:
      - req.url.path.startsWith('/admin')
    actions:
      - type: deny
"#;

#[tokio::test]
async fn denied_request_never_reaches_the_upstream() {
    let seen = send(DENY_ADMIN, get("/admin/users")).await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN);
    assert_eq!(seen.upstream_calls, 0);
    assert_eq!(seen.header("x-upstream"), None);
}

#[tokio::test]
async fn allowed_request_reaches_the_upstream_once() {
    let seen = send(DENY_ADMIN, get("/users?page=2")).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.upstream_calls, 1);
    assert_eq!(seen.header("x-upstream"), Some("yes"));
    assert_eq!(seen.body, "/users?page=2\n");
}

#[tokio::test]
async fn the_layer_reads_and_passes_on_the_canonical_request() {
    // Other spellings of /admin are /admin to the rule.
    for path in ["/%61dmin", "//admin", "/x/../admin", "/./admin/x"] {
        let seen = send(DENY_ADMIN, get(path)).await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(seen.upstream_calls, 0, "{path}");
    }
    // What the service behind sees is the canonical form.
    let seen = send(DENY_ADMIN, get("/a/./b/../%7Eusers?page=2")).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body, "/a/~users?page=2\n");
    // What has no canonical form reaches neither the policy nor the service.
    for (path, code) in [
        ("/x%2F..%2Fadmin", "ERR_PORTCULLIS_ENCODED_SLASH"),
        ("/admin%00", "ERR_PORTCULLIS_BAD_PATH"),
    ] {
        let seen = send(DENY_ADMIN, get(path)).await;
        assert_eq!(seen.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(seen.header("portcullis-error-code"), Some(code), "{path}");
        assert_eq!(seen.upstream_calls, 0, "{path}");
    }
    let mut two_hosts = get("/");
    two_hosts
        .headers_mut()
        .append("host", http::HeaderValue::from_static("admin.example.com"));
    let seen = send(DENY_ADMIN, two_hosts).await;
    assert_eq!(seen.status, StatusCode::BAD_REQUEST);
    assert_eq!(seen.upstream_calls, 0);
}

#[tokio::test]
async fn upstream_sees_the_request_as_the_policy_changed_it() {
    let policy = r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-added: "${req.method} ${req.url.path}"
      - type: remove-headers
        config:
          headers: [x-internal-user]
      - type: url-rewrite
        config:
          from: /v1/
          to: /api/
"#;
    let req = Request::get("/v1/items")
        .header("host", "app.example.com")
        .header("x-internal-user", "root")
        .body(body::empty())
        .expect("a valid request");
    let seen = send(policy, req).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.upstream_calls, 1);
    assert_eq!(seen.body, "/api/items\nx-added: GET /v1/items\n");
}

#[tokio::test]
async fn response_phase_headers_are_added_to_the_upstream_response() {
    let policy = r#"
on_http_response:
  - expressions:
      - res.status_code == 200
    actions:
      - type: add-headers
        config:
          headers:
            x-frame-options: DENY
            x-upstream-said: ${res.headers['x-upstream'][0]}
"#;
    let seen = send(policy, get("/")).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.header("x-frame-options"), Some("DENY"));
    assert_eq!(seen.header("x-upstream-said"), Some("yes"));
    assert_eq!(seen.header("x-upstream"), Some("yes"));
    assert_eq!(seen.body, "/\n");
}

#[tokio::test]
async fn request_phase_custom_response_still_gets_response_phase_headers() {
    let policy = r#"
on_http_request:
  - actions:
      - type: custom-response
        config:
          status_code: 503
          body: down for maintenance
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-policy: portcullis
"#;
    let seen = send(policy, get("/")).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.body, "down for maintenance");
    assert_eq!(seen.header("x-policy"), Some("portcullis"));
    assert_eq!(seen.upstream_calls, 0);
}

#[tokio::test]
async fn expression_failing_at_run_time_answers_500_not_a_pass() {
    let policy = r#"
on_http_request:
  - expressions:
      - req.headers['x-missing'][0] == 'a'
    actions:
      - type: deny
"#;
    let seen = send(policy, get("/")).await;
    assert_eq!(seen.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(seen.header("portcullis-error-code"), Some("ERR_NGROK_2238"));
    assert_eq!(seen.upstream_calls, 0);
}

#[tokio::test]
async fn close_connection_answers_403_with_connection_close() {
    let policy = r#"
on_http_request:
  - actions:
      - type: close-connection
"#;
    let seen = send(policy, get("/")).await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN);
    assert_eq!(seen.header("connection"), Some("close"));
    assert_eq!(seen.upstream_calls, 0);
}

#[tokio::test]
async fn client_ip_comes_from_the_request_extensions() {
    let policy = r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-client-ip: ${conn.client_ip}
"#;
    let addr = |s: &str| s.parse::<SocketAddr>().expect("an address");
    // (the `SocketAddr` extension, the client of an `Arc<Conn>` extension,
    // the `conn.client_ip` the upstream is told)
    let cases = [
        (Some("203.0.113.7:50000"), None, "203.0.113.7"),
        (Some("[2001:db8::1]:50000"), None, "2001:db8::1"),
        (Some("[::ffff:198.51.100.4]:50000"), None, "198.51.100.4"),
        // A `Conn` (the proxy puts one there) wins over a `SocketAddr`.
        (
            Some("203.0.113.7:50000"),
            Some("192.0.2.9:4000"),
            "192.0.2.9",
        ),
        (None, None, "0.0.0.0"),
    ];
    for (socket_addr, conn_client, expect) in cases {
        let mut req = get("/");
        if let Some(a) = socket_addr {
            req.extensions_mut().insert(addr(a));
        }
        if let Some(c) = conn_client {
            let conn = Conn::new(addr(c), addr("127.0.0.1:8080"), None);
            req.extensions_mut().insert(Arc::new(conn));
        }
        let seen = send(policy, req).await;
        assert_eq!(
            seen.body,
            format!("/\nx-client-ip: {expect}\n"),
            "{socket_addr:?} {conn_client:?}"
        );
    }
}

#[tokio::test]
async fn client_ip_from_socket_addr_drives_restrict_ips() {
    let policy = r#"
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          allow: [10.0.0.0/8]
"#;
    for (client, status, calls) in [
        ("10.1.2.3:50000", StatusCode::OK, 1),
        ("203.0.113.7:50000", StatusCode::FORBIDDEN, 0),
    ] {
        let mut req = get("/");
        req.extensions_mut()
            .insert(client.parse::<SocketAddr>().expect("an address"));
        let seen = send(policy, req).await;
        assert_eq!(
            (seen.status, seen.upstream_calls),
            (status, calls),
            "{client}"
        );
    }
}
