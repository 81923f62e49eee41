//! Arbitrary requests, made canonical as the proxy makes them, through a
//! compiled policy that reads every part of them (method, path, query,
//! headers, cookies, the client's address) and runs the actions that
//! rewrite and answer: no input panics, every outcome is an answer or a
//! pass, never a half-made response, and a request that passes still has
//! a canonical path and Host after the rewrites (what the upstream gets is
//! a target a client could have sent).
//!
//! The input's first line is `METHOD TARGET`, the next lines `name: value`
//! headers; invalid HTTP is skipped, as hyper would refuse it.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use portcullis_runtime::{Conn, Endpoint, Options, Outcome, Pipeline, RequestCtx, block_on, body};

const POLICY: &str = r#"
on_http_request:
  - expressions:
      - "req.url.path.startsWith('/admin') && !('admin' in req.headers['x-roles'])"
    actions: [{ type: deny }]
  - expressions:
      - "hasReqHeader('x-debug') && getReqHeader('x-debug')[0].matches('^(1|on)$')"
    actions:
      - type: custom-response
        config: { status_code: 200, body: "${req.method} ${req.url} ${req.url.query_params}" }
  - expressions: ["size(req.cookies) > 0 && 'theme' in req.cookies"]
    actions:
      - type: set-vars
        config: { vars: [ { theme: "${req.cookies['theme'][0].value}" } ] }
  - actions:
      - type: url-rewrite
        config: { from: "/v1/(.*)", to: "/api/$1" }
      - type: redirect
        config: { from: "^http://([^/]+)/old(.*)$", to: "http://$1/new$2" }
      - type: rate-limit
        config:
          name: fuzz
          algorithm: sliding_window
          capacity: 1000000
          rate: 60s
          bucket_key: ["conn.client_ip + req.host"]
      - type: add-headers
        config: { headers: { x-path: "${req.url.path}", x-ua: "${req.user_agent}" } }
      - type: basic-auth
        config: { credentials: ["user:password1"], enforce: false }
"#;

static PIPELINE: LazyLock<Pipeline> = LazyLock::new(|| {
    Pipeline::load(POLICY, &Options::default()).unwrap_or_else(|d| panic!("{d:?}"))
});

fn request(data: &[u8]) -> Option<http::Request<body::Body>> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let mut req = http::Request::builder().method(method).uri(target);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        req = req.header(name.trim(), value.trim());
    }
    req.body(body::empty()).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(mut req) = request(data) else { return };
    let canon = portcullis_canon::Options::default();
    let Ok(arrival) = portcullis_canon::request(&mut req, false, &canon) else {
        return;
    };
    let conn = Arc::new(Conn::new(
        "203.0.113.9:40000".parse().expect("addr"),
        "127.0.0.1:8080".parse().expect("addr"),
        None,
    ));
    let mut ctx = RequestCtx::new(req, conn, Arc::new(Endpoint::new("http://app.example.com")));
    ctx.set_arrival(arrival);
    match block_on(PIPELINE.on_request(&mut ctx)) {
        Outcome::Respond => assert!(ctx.take_response().is_some()),
        Outcome::Continue => {
            let sent = ctx.take_request(false);
            let path = sent.uri().path();
            if path != "*" {
                let again = portcullis_canon::path(path, &canon.path).expect("a canonical path");
                assert_eq!(again.path, path, "the upstream would get a non-canonical path");
            }
            if let Some(host) = sent.headers().get(http::header::HOST) {
                let host = host.to_str().expect("ascii");
                let again = portcullis_canon::authority(host, 80).expect("a canonical host");
                assert_eq!(again, host, "the upstream would get a non-canonical Host");
            }
        }
        Outcome::Forward | Outcome::Close => panic!("this policy neither forwards nor closes"),
    }
});
