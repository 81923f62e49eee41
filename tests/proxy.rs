//! End to end: the `portcullis` binary in front of a real upstream on
//! loopback, driven by a real HTTP client. Each test is what a user of
//! `portcullis http --traffic-policy-file` would see.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, echo, get, raw_upstream, raw_upstream_once, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_requests_reach_the_upstream_with_forwarding_headers() {
    let up = echo().await;
    let proxy = Proxy::http("on_http_request: []\n", up);
    let res = get(
        &proxy.url("/hello?x=1"),
        &[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "spoofed"),
            ("x-forwarded-host", "spoofed.example"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    let echo = res.echo();
    assert_eq!(echo["path"], "/hello");
    assert_eq!(echo["query"], "x=1");
    // The client's forwarding headers are replaced, not repeated.
    let headers = &echo["headers"];
    assert_eq!(
        headers["x-forwarded-for"],
        serde_json::json!(["198.51.100.1, 127.0.0.1"])
    );
    assert_eq!(headers["x-forwarded-proto"], serde_json::json!(["http"]));
    assert_eq!(
        headers["x-forwarded-host"],
        serde_json::json!([proxy.addr.to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_answers_its_status_without_calling_the_upstream() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
        config: { status_code: 404 }
"#,
        up,
    );
    let res = get(&proxy.url("/admin/users"), &[]).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(res.body.is_empty(), "deny sends no body: {}", res.text());
    let res = get(&proxy.url("/public"), &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.echo()["path"], "/public");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_response_is_interpolated_and_response_rules_still_run() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - expressions: ["req.url.path == '/maintenance'"]
    actions:
      - type: custom-response
        config:
          status_code: 503
          body: '{"down": true, "method": "${req.method}"}'
          headers:
            retry-after: "120"
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-policy: "status ${string(res.status_code)}"
"#,
        up,
    );
    let res = get(&proxy.url("/maintenance"), &[]).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.text(), r#"{"down": true, "method": "GET"}"#);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.header("retry-after"), Some("120"));
    assert_eq!(res.header("x-policy"), Some("status 503"));
    let res = get(&proxy.url("/ok"), &[]).await;
    assert_eq!(res.header("x-policy"), Some("status 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_rewrites_the_url_with_captures() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: redirect
        config:
          from: "/blog/([0-9]+)"
          to: "/posts/$1"
          status_code: 308
  - actions:
      - type: add-headers
        config:
          headers:
            x-reached: "second rule"
"#,
        up,
    );
    let res = get(&proxy.url("/blog/42?ref=x"), &[]).await;
    assert_eq!(res.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        res.header("location"),
        Some(format!("http://{}/posts/42?ref=x", proxy.addr).as_str())
    );
    // No match: no redirect, and the phase goes on.
    let res = get(&proxy.url("/about"), &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.echo()["headers"]["x-reached"][0], "second rule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_rewrite_changes_what_the_upstream_sees() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: "/v1/"
          to: "/api/"
      - type: add-headers
        config:
          headers:
            x-rewritten-to: "${actions.ngrok.url_rewrite.url}"
"#,
        up,
    );
    let res = get(&proxy.url("/v1/items?page=2"), &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let echo = res.echo();
    assert_eq!(echo["path"], "/api/items");
    assert_eq!(echo["query"], "page=2");
    assert_eq!(
        echo["headers"]["x-rewritten-to"][0],
        format!("http://{}/api/items?page=2", proxy.addr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_added_and_removed_on_both_sides() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-client: "${conn.client_ip}"
      - type: remove-headers
        config:
          headers: [x-secret]
on_http_response:
  - actions:
      - type: remove-headers
        config:
          headers: [content-type]
      - type: add-headers
        config:
          headers:
            strict-transport-security: "max-age=63072000"
"#,
        up,
    );
    let res = get(&proxy.url("/"), &[("x-secret", "hunter2")]).await;
    let echo = res.echo();
    assert_eq!(echo["headers"]["x-client"][0], "127.0.0.1");
    assert!(echo["headers"].get("x-secret").is_none(), "{echo}");
    assert_eq!(res.header("content-type"), None);
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=63072000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restrict_ips_rejects_clients_outside_the_allow_list() {
    let up = echo().await;
    let denied = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          allow: ["10.0.0.0/8"]
"#,
        up,
    );
    let res = get(&denied.url("/"), &[("x-forwarded-for", "10.1.2.3")]).await;
    assert_eq!(
        res.status,
        StatusCode::FORBIDDEN,
        "X-Forwarded-For is never trusted"
    );
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3205"));
    let allowed = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          allow: ["127.0.0.0/8", "::1/128"]
          deny: ["192.0.2.0/24"]
"#,
        up,
    );
    assert_eq!(get(&allowed.url("/"), &[]).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after_per_bucket() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: two per minute per key
          algorithm: sliding_window
          capacity: 2
          rate: 60s
          bucket_key: ["getReqHeader('x-api-key')"]
"#,
        up,
    );
    for _ in 0..2 {
        let res = get(&proxy.url("/"), &[("x-api-key", "a")]).await;
        assert_eq!(res.status, StatusCode::OK);
    }
    let res = get(&proxy.url("/"), &[("x-api-key", "a")]).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after in seconds");
    assert!((1..=120).contains(&wait), "{wait}");
    // Another key has its own bucket.
    let res = get(&proxy.url("/"), &[("x-api-key", "b")]).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_challenges_and_admits() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: basic-auth
        config:
          realm: staff
          credentials: ["alice:correct-horse"]
      - type: add-headers
        config:
          headers:
            x-user: "${actions.ngrok.basic_auth.credentials.username}"
"#,
        up,
    );
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Basic realm="staff", charset="UTF-8""#)
    );
    // alice:wrong-password
    let res = get(
        &proxy.url("/"),
        &[("authorization", "Basic YWxpY2U6d3JvbmctcGFzc3dvcmQ=")],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    // alice:correct-horse
    let res = get(
        &proxy.url("/"),
        &[("authorization", "Basic YWxpY2U6Y29ycmVjdC1ob3JzZQ==")],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.echo()["headers"]["x-user"][0], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_vars_and_log_reach_later_actions_and_the_access_log() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - tier: "${req.url.path.startsWith('/pro') ? 'pro' : 'free'}"
            - limit: 100
      - type: log
        config:
          metadata:
            tier: "${vars.tier}"
            limit: "${vars.limit}"
  - expressions: ["vars.tier == 'pro' && vars.limit == 100"]
    actions:
      - type: add-headers
        config:
          headers:
            x-tier: "${vars.tier}"
"#,
        up,
    );
    let res = get(&proxy.url("/pro/reports"), &[]).await;
    assert_eq!(res.echo()["headers"]["x-tier"][0], "pro");
    let res = get(&proxy.url("/free"), &[]).await;
    assert!(res.echo()["headers"].get("x-tier").is_none());
    assert!(
        proxy.wait_for_log(r#"{\"limit\":100,\"tier\":\"pro\"}"#)
            || proxy.wait_for_log(r#"{\"tier\":\"pro\",\"limit\":100}"#),
        "{}",
        proxy.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_connection_drops_the_connection_without_an_answer() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - expressions: ["req.url.path == '/drop'"]
    actions:
      - type: close-connection
"#,
        up,
    );
    let req = Request::get(proxy.url("/drop"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert!(
        send(req).await.is_err(),
        "the connection must close unanswered"
    );
    assert_eq!(get(&proxy.url("/"), &[]).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compress_response_gzips_for_clients_that_accept_it() {
    use std::io::Read as _;
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_response:
  - actions:
      - type: compress-response
        config:
          algorithms: [gzip, br]
"#,
        up,
    );
    let res = get(&proxy.url("/big"), &[("accept-encoding", "br;q=0.5, gzip")]).await;
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    assert_eq!(res.header("vary"), Some("accept-encoding"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&res.body[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert!(text.contains("\"path\": \"/big\""), "{text}");
    let res = get(&proxy.url("/big"), &[]).await;
    assert_eq!(res.header("content-encoding"), None);
    assert_eq!(res.echo()["path"], "/big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_webhook_admits_signed_github_deliveries_only() {
    use hmac::{Hmac, Mac};
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: verify-webhook
        config:
          provider: github
          secret: "It's a Secret to Everybody"
"#,
        up,
    );
    let body = r#"{"action":"opened"}"#;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"It's a Secret to Everybody").expect("key");
    mac.update(body.as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let post = |sig: String| {
        Request::post(proxy.url("/hooks/github"))
            .header("x-hub-signature-256", format!("sha256={sig}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request")
    };
    let res = send(post(sig.clone())).await.expect("response");
    assert_eq!(res.status, StatusCode::OK);
    // The body was read to verify it and still reaches the upstream.
    assert_eq!(res.echo()["body"], body);
    let mut forged = sig.into_bytes();
    forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
    let res = send(post(String::from_utf8(forged).expect("hex")))
        .await
        .expect("response");
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3204"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_that_fails_at_run_time_answers_500_never_allow() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - expressions: ["req.headers['x-role'][0] != 'admin'"]
    actions:
      - type: deny
"#,
        up,
    );
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_2238"));
    assert!(res.echo().is_null(), "the upstream must not answer");
    let res = get(&proxy.url("/"), &[("x-role", "admin")]).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tcp_connect_deny_closes_connections() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_tcp_connect:
  - expressions: ["conn.client_ip == '127.0.0.1'"]
    actions:
      - type: deny
"#,
        up,
    );
    let req = Request::get(proxy.url("/"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert!(send(req).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_answers_502() {
    // A port nothing listens on: bind one, then free it.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let proxy = Proxy::http("on_http_request: []\n", free);
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_8012"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_answers_504_after_the_timeout() {
    // An upstream that reads the request and never answers.
    let slow = raw_upstream(|stream| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await;
    let proxy = Proxy::serve_for(&slow, "timeouts:\n  upstream: 1s\n", &[]);
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        res.header("portcullis-error-code"),
        Some("ERR_PORTCULLIS_UPSTREAM_TIMEOUT")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_and_bodies_are_refused() {
    let up = echo().await;
    let proxy = Proxy::serve_for(
        &up,
        "limits:\n  max_header_bytes: 16384\n  max_body_bytes: 1000\n",
        &[],
    );
    let big = "x".repeat(40_000);
    let req = Request::get(proxy.url("/"))
        .header("x-big", big.as_str())
        .body(Full::new(Bytes::new()))
        .expect("request");
    match send(req).await {
        Ok(res) => assert_eq!(res.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => panic!("expected 431, got {e}"),
    }
    let req = Request::post(proxy.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'a'; 5000])))
        .expect("request");
    let res = send(req).await.expect("response");
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post(proxy.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'a'; 500])))
        .expect("request");
    let res = send(req).await.expect("response");
    assert_eq!(res.echo()["body_bytes"], 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cleartext_is_served() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - expressions: ["req.version == 'HTTP/2.0'"]
    actions:
      - type: add-headers
        config:
          headers:
            x-h2: "yes"
"#,
        up,
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let res = client
        .request(
            Request::get(proxy.url("/h2"))
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("h2c response");
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["headers"]["x-h2"][0], "yes");
    // HTTP/2 streams go through the pool, which sets the forwarding
    // headers in the header map.
    assert_eq!(
        echo["headers"]["x-forwarded-for"],
        serde_json::json!(["127.0.0.1"])
    );
    assert_eq!(
        echo["headers"]["x-forwarded-proto"],
        serde_json::json!(["http"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_internal_routes_to_a_named_upstream() {
    let main = echo().await;
    let internal_addr = raw_upstream(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\ninternal")
            .await;
    })
    .await;
    let policy = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/api')"]
    actions:
      - type: forward-internal
        config:
          url: https://api.internal
  - expressions: ["req.url.path.startsWith('/missing')"]
    actions:
      - type: forward-internal
        config:
          url: https://nothing.internal
"#;
    let proxy = Proxy::serve_for(
        &main,
        &format!(
            "    traffic_policy_file: policy.yml\ninternal:\n  api.internal: {internal_addr}\n"
        ),
        &[("policy.yml", policy)],
    );
    let res = get(&proxy.url("/api/users"), &[]).await;
    assert_eq!(res.text(), "internal");
    let res = get(&proxy.url("/web"), &[]).await;
    assert_eq!(res.echo()["path"], "/web");
    let res = get(&proxy.url("/missing"), &[]).await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
}

/// Starts `portcullis http` with `policy` and expects it to refuse:
/// returns what it printed.
fn refused_start(policy: &str) -> String {
    let dir = support::temp_dir("refused");
    let path = dir.join("policy.yml");
    std::fs::write(&path, policy).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "http",
            "9",
            "--listen",
            "127.0.0.1:0",
            "--traffic-policy-file",
        ])
        .arg(&path)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(dir);
    assert!(!out.status.success(), "the proxy started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_invalid_policy_stops_the_start_with_diagnostics() {
    let err = refused_start("on_http_request:\n  - actions:\n      - type: deni\n");
    assert!(
        err.contains("policy.yml:3:15: error[E0107]: unknown action type `deni`"),
        "{err}"
    );
}

#[test]
fn an_unsupported_action_stops_the_start_rather_than_being_skipped() {
    let err = refused_start(
        "on_http_request:\n  - actions:\n      - type: ai-gateway\n        config: {}\n",
    );
    assert!(err.contains("error[E0141]"), "{err}");
}

/// `--ip-intelligence` names MaxMind DB files; a client they do not know
/// (this loopback one) reads as empty values, so a geo rule does not
/// fail on it. Without them, the proxy says at load where the policy
/// reads what it will not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_intelligence_comes_from_the_databases_the_deployment_names() {
    let policy = r#"
on_http_request:
  - expressions: ["conn.geo.country_code in ['KP']"]
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-geo: "[${conn.geo.country_code}] [${string(conn.client_ip.as.number)}] [${string(conn.client_ip.is_tor_node)}]"
"#;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/actions/tests/data/maxmind");
    let dbs: Vec<String> = [
        "GeoIP2-City-Test.mmdb",
        "GeoLite2-ASN-Test.mmdb",
        "GeoIP2-Anonymous-IP-Test.mmdb",
    ]
    .iter()
    .flat_map(|f| {
        [
            "--ip-intelligence".to_owned(),
            dir.join(f).display().to_string(),
        ]
    })
    .collect();
    let up = echo().await;
    let proxy = Proxy::http_with(
        policy,
        up,
        &dbs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-geo"][0], "[] [0] [false]");
    assert!(!proxy.log().contains("deployment-data"), "{}", proxy.log());

    let bare = Proxy::http(policy, up);
    assert!(
        bare.wait_for_log(
            "policy.yml:3:20: warning[deployment-data]: `conn.geo.country_code` comes from the deployment"
        ),
        "{}",
        bare.log()
    );
    let res = get(&bare.url("/"), &[]).await;
    assert_eq!(
        res.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        res.text()
    );
}

/// Address lists the deployment names as IP categories: an address on a
/// list has its category at every level, a blocklist sets
/// `is_on_blocklist` and a Tor list `is_tor_node`, as ngrok's examples
/// read them; a list file that changes is read again, and a broken one
/// leaves the lists in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_category_lists_come_from_files_the_deployment_names_and_follow_them() {
    let policy = r#"
on_http_request:
  - expressions:
      - "conn.client_ip.is_on_blocklist == true"
    actions:
      - type: deny
  - expressions:
      - "('proxy.anonymous.tor' in conn.client_ip.categories)"
    actions:
      - type: custom-response
        config:
          status_code: 451
          body: tor
  - actions:
      - type: add-headers
        config:
          headers:
            x-categories: "${conn.client_ip.categories.join(',')}"
"#;
    let dir = support::temp_dir("ip-lists");
    let (block, tor, cloud) = (
        dir.join("level1.netset"),
        dir.join("tor-exits.txt"),
        dir.join("cloud.txt"),
    );
    std::fs::write(
        &block,
        "# firehol level 1
10.0.0.0/8
",
    )
    .expect("write");
    std::fs::write(
        &tor,
        "ExitAddress 185.220.101.1 2024-01-01 00:00:00
",
    )
    .expect("write");
    std::fs::write(
        &cloud,
        "127.0.0.0/8 ; the test's own cloud
",
    )
    .expect("write");
    let flag = |c: &str, p: &std::path::Path| format!("{c}={}", p.display());
    let args = [
        "--ip-category".to_owned(),
        flag("blocklist.firehol_org.level_1", &block),
        "--ip-category".to_owned(),
        flag("proxy.anonymous.tor", &tor),
        "--ip-category".to_owned(),
        flag("com.example.cloud", &cloud),
    ];
    let up = echo().await;
    let proxy = Proxy::http_with(
        policy,
        up,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.echo()["headers"]["x-categories"][0],
        "com,com.example,com.example.cloud"
    );
    assert!(!proxy.log().contains("deployment-data"), "{}", proxy.log());

    // The blocklist now has the client: new connections are denied.
    std::fs::write(
        &block,
        "# firehol level 1
10.0.0.0/8
127.0.0.1
",
    )
    .expect("write");
    assert!(
        proxy.wait_for_log("IP category lists reloaded"),
        "{}",
        proxy.log()
    );
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert!(res.echo().is_null());

    // Off the blocklist and onto the Tor list.
    std::fs::write(
        &block,
        "10.0.0.0/8
",
    )
    .expect("write");
    std::fs::write(
        &tor,
        "ExitAddress 127.0.0.1 2024-01-01 00:00:00
",
    )
    .expect("write");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut res = get(&proxy.url("/"), &[]).await;
    while res.status != StatusCode::from_u16(451).expect("status")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        res = get(&proxy.url("/"), &[]).await;
    }
    assert_eq!(res.text(), "tor");

    // A broken list is refused; the lists in use stay.
    std::fs::write(
        &tor,
        "ExitAddress 127.0.0.1 2024-01-01 00:00:00
not an address
",
    )
    .expect("write");
    assert!(
        proxy.wait_for_log("an IP category list is invalid; the lists in use stay"),
        "{}",
        proxy.log()
    );
    assert_eq!(get(&proxy.url("/"), &[]).await.text(), "tor");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `conn.bytes_in` and `conn.bytes_out` count what the connection carried
/// so far: on a second request over the same connection, the first
/// request's bytes are in and its response's are out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_byte_counts_grow_with_the_connection() {
    let policy = r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-in: "${conn.bytes_in}"
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-out: "${conn.bytes_out}"
"#;
    let up = echo().await;
    let proxy = Proxy::http(policy, up);
    let mut conn = support::one_connection(proxy.addr).await;
    let first = support::get_on(&mut conn, &proxy.url("/a")).await;
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
    let in1 = number(&first.echo()["headers"]["x-in"][0]).expect("x-in");
    // The request head, as sent: `GET /a HTTP/1.1`, `host: ...`.
    assert!((30..200).contains(&in1), "{in1}");
    assert_eq!(first.header("x-out"), Some("0"));
    let second = support::get_on(&mut conn, &proxy.url("/b")).await;
    let in2 = number(&second.echo()["headers"]["x-in"][0]).expect("x-in");
    assert!(in2 >= 2 * in1 - 2, "{in1} then {in2}");
    let out = second
        .header("x-out")
        .and_then(|v| v.parse::<u64>().ok())
        .expect("x-out");
    // At least the first response's body went out before the second.
    assert!(out > first.body.len() as u64, "{out}");
}

/// A Kubernetes manifest runs as the policy its one ngrok resource
/// carries; a manifest with two is refused, naming them, rather than one
/// of them picked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_runs_the_policy_it_carries() {
    let endpoint = "apiVersion: ngrok.k8s.ngrok.com/v1alpha1
kind: AgentEndpoint
metadata:
  name: api
spec:
  url: https://api.example.com
  upstream:
    url: http://api:8080
  trafficPolicy:
    inline:
      on_http_request:
        - expressions: [\"req.url.path == '/admin'\"]
          actions:
            - type: deny
              config:
                status_code: 404
";
    let manifest =
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n---\n{endpoint}");
    let up = echo().await;
    let proxy = Proxy::http(&manifest, up);
    assert_eq!(
        get(&proxy.url("/admin"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&proxy.url("/"), &[]).await.status, StatusCode::OK);

    let two = format!(
        "{endpoint}---\n{}",
        endpoint.replace("name: api", "name: web")
    );
    let err = refused_start(&two);
    assert!(
        err.contains("error[E0160]: this manifest holds 2 Traffic Policies (AgentEndpoint/api, AgentEndpoint/web)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served_on_the_admin_listener() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - name: block admin
    expressions: ["req.url.path == '/admin'"]
    actions:
      - type: deny
"#,
        up,
    );
    let admin = proxy.admin.expect("admin listener");
    get(&proxy.url("/admin"), &[]).await;
    get(&proxy.url("/"), &[]).await;
    let health = get(&format!("http://{admin}/healthz"), &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    let metrics = get(&format!("http://{admin}/metrics"), &[]).await.text();
    assert!(
        metrics.contains(r#"portcullis_http_requests_total{status="4xx"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"rule="block admin",action="deny"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_policy_file_is_reloaded_and_a_broken_one_is_not() {
    let up = echo().await;
    let deny = |path: &str| {
        format!(
            "on_http_request:\n  - expressions: [\"req.url.path == '{path}'\"]\n    actions: [{{ type: deny }}]\n"
        )
    };
    let proxy = Proxy::http(&deny("/a"), up);
    assert_eq!(
        get(&proxy.url("/a"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
    std::fs::write(proxy.policy_path(), deny("/b")).expect("rewrite");
    assert!(proxy.wait_for_log("policy reloaded"), "{}", proxy.log());
    assert_eq!(get(&proxy.url("/a"), &[]).await.status, StatusCode::OK);
    assert_eq!(
        get(&proxy.url("/b"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
    // A broken policy is reported and the previous one keeps serving.
    std::fs::write(
        proxy.policy_path(),
        "on_http_request:\n  - actions: [{ type: deni }]\n",
    )
    .expect("rewrite");
    assert!(proxy.wait_for_log("keeps serving"), "{}", proxy.log());
    assert!(proxy.log().contains("E0107"), "{}", proxy.log());
    assert_eq!(
        get(&proxy.url("/b"), &[]).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_traffic_fail_no_request() {
    let up = echo().await;
    let policy = |n: usize| {
        format!(
            "on_http_request:\n  - expressions: [\"req.url.path == '/blocked'\"]\n    actions: [{{ type: deny }}]\n  - actions:\n      - type: add-headers\n        config:\n          headers:\n            x-generation: \"{n}\"\n"
        )
    };
    let proxy = Proxy::http(&policy(0), up);
    let url = proxy.url("/");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = Request::get(url.as_str())
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                match send(req).await {
                    Ok(r) if r.status == StatusCode::OK => ok += 1,
                    Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        })
    };
    let pid = proxy.pid().to_string();
    for n in 1..=50 {
        if n % 2 == 0 {
            let mut f = std::fs::File::create(proxy.policy_path()).expect("policy");
            f.write_all(policy(n).as_bytes()).expect("write");
        } else {
            // SIGHUP reloads the file even when it did not change.
            let _ = std::process::Command::new("kill")
                .args(["-HUP", &pid])
                .status();
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = traffic.await.expect("traffic");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests ran");
    let reloads = proxy.log().matches("policy reloaded").count();
    // Signals that arrive together are delivered once: not every one of the
    // 25 SIGHUPs need cause its own reload.
    assert!(reloads >= 10, "{reloads} reloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_alpn_h2_terminates_at_the_proxy() {
    let up = echo().await;
    let cert = support::SelfSigned::new("tls");
    let flags = cert.flags();
    let proxy = Proxy::http_with(
        r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-tls: "${conn.tls.version} ${conn.tls.sni} ${req.url.scheme}"
            x-tls-server: "${conn.tls.server.subject.common_name} ${string(has(actions.ngrok.terminate_tls.version))}"
"#,
        up,
        &flags.each_ref().map(String::as_str),
    );

    let tls = cert
        .connect(proxy.addr, rustls::DEFAULT_VERSIONS, &[b"h2"])
        .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let res = h2_get(
        tls,
        &format!("https://localhost:{}/secure", proxy.addr.port()),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .expect("body")
        .to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(echo["headers"]["x-tls"][0], "1.3 localhost https");
    // The endpoint's certificate is served; no `terminate-tls` ran.
    assert_eq!(
        echo["headers"]["x-tls-server"][0],
        "rcgen self signed cert false"
    );
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_asks_an_internal_service_and_later_rules_decide() {
    let up = echo().await;
    let authz = echo().await;
    let authz_arg = format!("authz.internal={authz}");
    let proxy = Proxy::http_with(
        r#"
on_http_request:
  - actions:
      - type: http-request
        config:
          url: https://authz.internal/check
          method: POST
          query_params:
            - key: path
              value: ${req.url.path}
          headers:
            content-type: application/json
          body: '{"client": "${conn.client_ip}"}'
          timeout: 2s
  - expressions:
      - "actions.ngrok.http_request.res.status_code != 200"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-authz-saw: "${actions.ngrok.http_request.res.body.decodeJson()['query']}"
            x-authz-body: "${actions.ngrok.http_request.res.body.decodeJson()['body']}"
"#,
        up,
        &["--internal", &authz_arg],
    );
    let res = get(&proxy.url("/reports/q3"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let echo = res.echo();
    assert_eq!(echo["headers"]["x-authz-saw"][0], "path=%2Freports%2Fq3");
    assert_eq!(
        echo["headers"]["x-authz-body"][0],
        r#"{"client": "127.0.0.1"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_failures_halt_or_continue_as_configured() {
    let up = echo().await;
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let arg = format!("authz.internal={down}");
    let policy = |on_error: &str| {
        format!(
            r#"
on_http_request:
  - actions:
      - type: http-request
        config:
          url: https://authz.internal/check
          on_error: {on_error}
      - type: add-headers
        config:
          headers:
            x-error: "${{actions.ngrok.http_request.error.code}}"
  - expressions: ["false"]
    actions: [{{ type: deny }}]
"#
        )
    };
    let halt = Proxy::http_with(&policy("halt"), up, &["--internal", &arg]);
    let res = get(&halt.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3600"));
    let go_on = Proxy::http_with(&policy("continue"), up, &["--internal", &arg]);
    let res = get(&go_on.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.echo()["headers"]["x-error"][0], "ERR_NGROK_3600");
    // A host that is not an internal upstream is never called.
    let outside = Proxy::http(
        "on_http_request:\n  - actions:\n      - type: http-request\n        config:\n          url: http://example.com/\n          on_error: halt\n",
        up,
    );
    let res = get(&outside.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
    assert!(
        res.text()
            .contains("is not an upstream this proxy may call"),
        "{}",
        res.text()
    );
}

/// ngrok's enforce-TLS example, unchanged: `conn.tls.version < '1.3'`
/// answers a TLS 1.2 client 401 and lets a TLS 1.3 one through, for the
/// version reads as ngrok writes it (`1.2`, `1.3`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ngroks_enforce_tls_example_refuses_tls_1_2() {
    let up = echo().await;
    let cert = support::SelfSigned::new("enforce-tls");
    let flags = cert.flags();
    let proxy = Proxy::http_with(
        r#"
on_http_request:
- name: Reject requests using old TLS versions
  expressions:
  - conn.tls.version < '1.3'
  actions:
  - type: custom-response
    config:
      status_code: 401
      body: 'Unauthorized: TLS version too old'
"#,
        up,
        &flags.each_ref().map(String::as_str),
    );
    for (version, want) in [
        (&rustls::version::TLS12, StatusCode::UNAUTHORIZED),
        (&rustls::version::TLS13, StatusCode::OK),
    ] {
        let tls = cert.connect(proxy.addr, &[version], &[]).await;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .expect("HTTP handshake");
        tokio::spawn(conn);
        let req = Request::get("/")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let res = sender.send_request(req).await.expect("response");
        assert_eq!(res.status(), want, "{version:?}");
    }
}

/// An internal service that redirects: `/see-other` (303) and `/found`
/// (302) to `/landed`, `/loop` to itself, `/outside` to a host that is no
/// internal upstream; `/landed` answers with the method it got.
async fn redirecting_service() -> std::net::SocketAddr {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                let (status, location) = match req.uri().path() {
                    "/see-other" => (303, "/landed"),
                    "/found" => (302, "/landed"),
                    "/loop" => (302, "/loop"),
                    "/outside" => (302, "http://example.com/landed"),
                    "/other-host" => (302, "http://svc2.internal/landed"),
                    _ => (200, ""),
                };
                let mut res = http::Response::builder().status(status);
                if !location.is_empty() {
                    res = res.header("location", location);
                }
                Ok::<_, std::convert::Infallible>(
                    res.body(Full::new(Bytes::from(format!(
                        "{} {}{}",
                        req.method(),
                        req.uri().path(),
                        if req.headers().contains_key("authorization") {
                            " with credentials"
                        } else {
                            ""
                        }
                    ))))
                    .expect("response"),
                )
            });
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    addr
}

/// `max_redirects` follows redirects on internal upstreams only: a `303`
/// after a `POST` as a `GET`, a `302` after a `GET` as a `GET`; one more
/// than allowed, or one to a host that is no internal upstream, fails the
/// call; credentials go to the host they were written for only. Without
/// it, the redirect is the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_follows_redirects_within_the_internal_upstreams() {
    let up = echo().await;
    let service = redirecting_service().await;
    let arg = format!("svc.internal={service}");
    let arg2 = format!("svc2.internal={service}");
    let policy = |path: &str, method: &str, max: &str| {
        format!(
            r#"
on_http_request:
  - actions:
      - type: http-request
        config:
          url: https://svc.internal{path}
          method: {method}
          body: payload
          headers:
            authorization: Bearer internal-token
{max}
      - type: add-headers
        config:
          headers:
            x-status: "${{has(actions.ngrok.http_request.res) ? string(actions.ngrok.http_request.res.status_code) : ''}}"
            x-body: "${{has(actions.ngrok.http_request.res) ? actions.ngrok.http_request.res.body : ''}}"
            x-error: "${{has(actions.ngrok.http_request.error.message) ? actions.ngrok.http_request.error.message : ''}}"
"#
        )
    };
    let run = |path: &'static str, method: &'static str, max: &'static str| {
        let (policy, arg, arg2) = (policy(path, method, max), arg.clone(), arg2.clone());
        async move {
            let proxy = Proxy::http_with(&policy, up, &["--internal", &arg, "--internal", &arg2]);
            get(&proxy.url("/"), &[]).await
        }
    };
    let max2 = "          max_redirects: 2";
    let res = run("/see-other", "POST", max2).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.echo()["headers"]["x-body"][0],
        "GET /landed with credentials"
    );
    let res = run("/found", "PUT", max2).await;
    assert_eq!(
        res.echo()["headers"]["x-body"][0],
        "PUT /landed with credentials"
    );
    // To another internal upstream, the credentials stay behind.
    let res = run("/other-host", "GET", max2).await;
    assert_eq!(
        res.echo()["headers"]["x-body"][0],
        "GET /landed",
        "{}",
        res.text()
    );
    // Not followed without `max_redirects`: the 303 is the answer.
    let res = run("/see-other", "POST", "").await;
    assert_eq!(res.echo()["headers"]["x-status"][0], "303");
    // A loop runs out of redirects; a redirect off the internal upstreams
    // is never followed. Both fail the call (`on_error: continue` records
    // the error).
    let res = run("/loop", "GET", max2).await;
    assert!(
        res.echo()["headers"]["x-error"][0]
            .as_str()
            .is_some_and(|e| e.contains("more than 2 redirects")),
        "{}",
        res.text()
    );
    let res = run("/outside", "GET", max2).await;
    assert!(
        res.echo()["headers"]["x-error"][0]
            .as_str()
            .is_some_and(|e| e.contains("is not an upstream this proxy may call")),
        "{}",
        res.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    // An upstream that says when the request reached it, then answers only
    // once the proxy has been told to stop.
    let (arrived, request_arrived) = tokio::sync::oneshot::channel::<()>();
    let (stopped, proxy_stopping) = tokio::sync::oneshot::channel::<()>();
    let slow = raw_upstream_once(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        let _ = arrived.send(());
        let _ = proxy_stopping.await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
            .await;
    })
    .await;
    let proxy = Proxy::http("on_http_request: []\n", slow);
    let url = proxy.url("/");
    let in_flight = tokio::spawn(async move { get(&url, &[]).await });
    tokio::time::timeout(Duration::from_secs(10), request_arrived)
        .await
        .expect("the request reaches the upstream")
        .expect("signal");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(proxy.wait_for_log("shutting down"), "{}", proxy.log());
    let _ = stopped.send(());
    let res = in_flight.await.expect("request task");
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "slow");
    // Once the request is done, the proxy stops and accepts nothing more.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(proxy.addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_stream_through_without_buffering() {
    // An upstream that sends one chunk and sends the rest only once the
    // client has received it: a proxy that buffered the body would never
    // deliver the first chunk.
    let (got_first, first_seen) = tokio::sync::oneshot::channel::<()>();
    let up = raw_upstream_once(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        let _ = s
            .write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n6\r\nfirst\n\r\n",
            )
            .await;
        let _ = first_seen.await;
        let _ = s.write_all(b"7\r\nsecond\n\r\n0\r\n\r\n").await;
    })
    .await;
    let proxy = Proxy::http(
        "on_http_response:\n  - actions:\n      - type: add-headers\n        config:\n          headers:\n            x-seen: \"yes\"\n",
        up,
    );
    let res = support::client()
        .request(
            Request::get(proxy.url("/events"))
                .body(Full::new(Bytes::new()))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(
        res.headers().get("x-seen").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
    let mut body = res.into_body();
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        http_body_util::BodyExt::frame(&mut body),
    )
    .await
    .expect("the first chunk arrives before the upstream sends the rest")
    .expect("a frame")
    .expect("no error")
    .into_data()
    .expect("data");
    assert_eq!(&first[..], b"first\n");
    let _ = got_first.send(());
    let rest = http_body_util::BodyExt::collect(body)
        .await
        .expect("rest")
        .to_bytes();
    assert_eq!(&rest[..], b"second\n");
}

/// An upstream that answers each request with `ok` and, on the first
/// `closes` connections, closes the connection after answering, as a
/// server whose keep-alive timeout ran out does. Counts connections.
async fn closing_upstream(
    closes: usize,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let up = raw_upstream(move |mut s| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if s.write_all(ok).await.is_err() || n < closes {
                return;
            }
            // Keep-alive: answer every further request on the connection.
            let mut buf = [0u8; 4096];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                if s.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (up, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connection_reuses_one_upstream_connection() {
    let (up, accepted) = closing_upstream(0).await;
    let proxy = Proxy::http("on_http_request: []\n", up);
    let mut conn = support::one_connection(proxy.addr).await;
    for _ in 0..5 {
        let res = support::get_on(&mut conn, &proxy.url("/")).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.text(), "ok");
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_closes_idle_connections_gets_a_new_one_per_request() {
    // Every upstream connection ends after one answer, and the client
    // rests between requests (a keep-alive timeout's case): each next
    // request on the same client connection must go out on a new one,
    // never fail, whether the proxy saw the close before sending (a new
    // connection) or after (a GET is safe to send again).
    let (up, accepted) = closing_upstream(usize::MAX).await;
    let proxy = Proxy::http("on_http_request: []\n", up);
    let mut conn = support::one_connection(proxy.addr).await;
    for _ in 0..4 {
        let res = support::get_on(&mut conn, &proxy.url("/")).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.text(), "ok");
        // The rest that makes the proxy keep a copy to repeat (250 ms).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_upstream_timeout_the_next_request_gets_a_new_connection() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // The first upstream connection never answers; later ones do.
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let up = raw_upstream(move |mut s| {
        let first = count.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            use tokio::io::AsyncWriteExt;
            if first {
                tokio::time::sleep(Duration::from_secs(60)).await;
            } else {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            }
        }
    })
    .await;
    let proxy = Proxy::serve_for(&up, "timeouts:\n  upstream: 1s\n", &[]);
    let mut conn = support::one_connection(proxy.addr).await;
    let res = support::get_on(&mut conn, &proxy.url("/")).await;
    assert_eq!(res.status, StatusCode::GATEWAY_TIMEOUT);
    let res = support::get_on(&mut conn, &proxy.url("/")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_body_left_unread_does_not_block_the_next_request() {
    // The upstream sends a large body; a response rule answers instead,
    // so the proxy never reads it. The connection it came on cannot carry
    // another exchange, and the next request must not wait for it.
    let up = raw_upstream(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        let body = vec![b'x'; 4 << 20];
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        if s.write_all(head.as_bytes()).await.is_ok() {
            let _ = s.write_all(&body).await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let proxy = Proxy::serve_for(
        &up,
        "    traffic_policy_file: policy.yml\ntimeouts:\n  upstream: 5s\n",
        &[(
            "policy.yml",
            "on_http_response:\n  - actions:\n      - type: custom-response\n        config:\n          status_code: 203\n          body: replaced\n",
        )],
    );
    let mut conn = support::one_connection(proxy.addr).await;
    for _ in 0..3 {
        let res = support::get_on(&mut conn, &proxy.url("/")).await;
        assert_eq!(res.status, StatusCode::NON_AUTHORITATIVE_INFORMATION);
        assert_eq!(res.text(), "replaced");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_send_no_request_head_in_time_are_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = echo().await;
    let proxy = Proxy::serve_for(&up, "timeouts:\n  header_read: 1s\n  idle: 1s\n", &[]);
    // Half a request head, then nothing (a slow client).
    let mut slow = support::tcp(proxy.addr).await;
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    // One whole exchange, then an idle keep-alive connection.
    let mut idle = support::tcp(proxy.addr).await;
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 64 * 1024];
    let n = idle.read(&mut buf).await.expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    for (name, stream) in [("slow", &mut slow), ("idle", &mut idle)] {
        // The guard is far longer than the timeout: it only stops a test
        // that would otherwise hang.
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.map(|_| rest)
        })
        .await;
        let rest = read
            .unwrap_or_else(|_| panic!("the {name} connection was not closed"))
            .expect("read");
        assert!(
            rest.is_empty(),
            "{name}: {}",
            String::from_utf8_lossy(&rest)
        );
    }
}

/// A connection whose first bytes were already sent by hand: writes skip
/// them.
struct SentAlready {
    io: tokio::net::TcpStream,
    skip: usize,
}

impl tokio::io::AsyncRead for SentAlready {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SentAlready {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.skip > 0 {
            let n = self.skip.min(buf.len());
            self.skip -= n;
            return std::task::Poll::Ready(Ok(n));
        }
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_preface_that_arrives_in_pieces_is_still_http2() {
    use tokio::io::AsyncWriteExt;
    let up = echo().await;
    let proxy = Proxy::http("on_http_request: []\n", up);
    let mut tcp = support::tcp(proxy.addr).await;
    tcp.set_nodelay(true).expect("nodelay");
    // The preface's first bytes alone; the pause gives the proxy time to
    // see them before the rest (it must wait, not decide HTTP/1).
    tcp.write_all(b"PRI * HTTP/").await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let res = h2_get(SentAlready { io: tcp, skip: 11 }, &proxy.url("/pieces")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), http::Version::HTTP_2);
}

/// `GET url` over HTTP/2 on `io` (prior knowledge, or TLS with ALPN `h2`).
async fn h2_get<IO>(io: IO, url: &str) -> http::Response<hyper::body::Incoming>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    h2.send_request(
        Request::get(url)
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
    .expect("h2 response")
}

/// Reads from `s` until the end of a message head.
async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_spliced_through_to_the_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that agrees to switch, then answers every byte in
    // upper case: what comes back can only have come from it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = listener.local_addr().expect("addr");
    let (seen_tx, seen) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let head = read_head(&mut s).await;
        let _ = seen_tx.send(head);
        let _ = s
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
            .await;
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let upper = buf[..n].to_ascii_uppercase();
            if s.write_all(&upper).await.is_err() {
                break;
            }
        }
    });
    let proxy = Proxy::http(
        "on_http_request:\n  - actions:\n      - type: add-headers\n        config:\n          headers:\n            x-through: portcullis\n",
        up,
    );
    let mut c = support::tcp(proxy.addr).await;
    c.write_all(b"GET /chat HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .expect("write");
    let head = read_head(&mut c).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(head.contains("sec-websocket-accept: "), "{head}");
    // What the upstream was asked: the upgrade, the WebSocket headers,
    // and what the policy added.
    let asked = seen.await.expect("the upstream got the request");
    assert!(asked.starts_with("get /chat http/1.1"), "{asked}");
    for line in [
        "connection: upgrade",
        "upgrade: websocket",
        "sec-websocket-key: dghlihnhbxbszsbub25jzq==",
        "x-through: portcullis",
    ] {
        assert!(asked.contains(line), "{line} missing from {asked}");
    }
    // The tunnel, both ways, twice.
    for word in [&b"ping"[..], &b"frames after the first"[..]] {
        c.write_all(word).await.expect("write");
        let mut back = vec![0u8; word.len()];
        c.read_exact(&mut back).await.expect("read");
        assert_eq!(back, word.to_ascii_uppercase());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_the_upstream_refuses_is_an_ordinary_response() {
    use tokio::io::AsyncWriteExt;
    let up = echo().await;
    let proxy = Proxy::http("on_http_request: []\n", up);
    let mut c = support::tcp(proxy.addr).await;
    c.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .expect("write");
    let head = read_head(&mut c).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("upgrade: websocket"), "{head}");
}

/// A real HTTPS upstream: a second proxy terminating TLS with a
/// self-signed certificate for `localhost`, in front of the echo upstream.
/// Returns it and the certificate's PEM.
async fn https_upstream() -> (Proxy, String) {
    let cert = support::SelfSigned::new("https-upstream");
    let upstream = Proxy::http_with(
        "on_http_request: []\n",
        echo().await,
        &cert.flags().each_ref().map(String::as_str),
    );
    (upstream, cert.pem.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_verified_against_the_configured_ca() {
    let (upstream, ca) = https_upstream().await;
    let url = format!("https://localhost:{}", upstream.addr.port());
    let trusting = Proxy::serve_for(&url, "upstream_tls:\n  ca: ca.pem\n", &[("ca.pem", &ca)]);
    let res = get(&trusting.url("/over-tls"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let echo = res.echo();
    assert_eq!(echo["path"], "/over-tls");
    // The upstream proxy saw a TLS client: the request came over TLS.
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");

    // Without the CA the certificate is not trusted: 502, never a
    // connection to an upstream that was not authenticated.
    let untrusting = Proxy::serve_for(&url, "", &[]);
    let res = get(&untrusting.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_8012"));
    assert!(
        untrusting.wait_for_log("certificate"),
        "the log says why: {}",
        untrusting.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_can_be_used_without_verification_when_asked() {
    let (upstream, _) = https_upstream().await;
    let url = format!("https://localhost:{}", upstream.addr.port());
    let dir = support::temp_dir("insecure");
    let proxy = Proxy::spawn(
        &[
            "http",
            &url,
            "--listen",
            "127.0.0.1:0",
            "--upstream-insecure-skip-verify",
        ],
        dir,
    )
    .expect("proxy starts");
    let res = get(&proxy.url("/dev"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-forwarded-proto"][0], "https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_lost_to_an_upstream_closing_is_repeated_only_if_safe() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Each upstream connection answers its first request, then reads the
    // next one and closes without an answer: what a keep-alive timeout
    // firing as the request arrives looks like from the proxy.
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let up = raw_upstream(move |mut s| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if s.write_all(ok).await.is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
        }
    })
    .await;
    let proxy = Proxy::http("on_http_request: []\n", up);
    let mut conn = support::one_connection(proxy.addr).await;
    let res = support::get_on(&mut conn, &proxy.url("/first")).await;
    assert_eq!(res.status, StatusCode::OK);
    // A rest, after which the proxy keeps a copy of what it sends (250 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Lost on the first connection, repeated on a second.
    let res = support::get_on(&mut conn, &proxy.url("/again")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // A POST may have done its work upstream: never sent twice, a 502.
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.ready().await.expect("open");
    let res = conn
        .send_request(
            Request::post(proxy.url("/order"))
                .body(Full::new(Bytes::from_static(b"one pizza")))
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        res.headers()
            .get("portcullis-error-code")
            .map(|v| v.as_bytes()),
        Some(&b"ERR_NGROK_3004"[..])
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_close_after_each_request_still_reuse_upstream_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (up, accepted) = closing_upstream(0).await;
    let proxy = Proxy::http("on_http_request: []\n", up);
    let admin = proxy.admin.expect("admin listener");
    for _ in 0..5 {
        // One request per connection, as HTTP/1.0 clients and health
        // checks do.
        let mut c = support::tcp(proxy.addr).await;
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).await.expect("read");
        assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
        assert!(answer.ends_with(b"ok"));
        // The proxy is done with the connection once its gauge says so.
        loop {
            let metrics = get(&format!("http://{admin}/metrics"), &[]).await.text();
            if metrics.contains("portcullis_connections_open 0") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_count_as_open_connections_and_close_when_the_grace_period_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream that switches and then echoes.
    let up = raw_upstream(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await;
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    })
    .await;
    let dir = support::temp_dir("tunnel-grace");
    let up = up.to_string();
    let proxy = Proxy::spawn(
        &[
            "serve",
            "--config",
            &{
                let path = dir.join("portcullis.yml");
                std::fs::write(
                    &path,
                    format!(
                        "admin: 127.0.0.1:0\nendpoints:\n  - listen: 127.0.0.1:0\n    upstream: {up}\ntimeouts:\n  shutdown_grace: 1s\n"
                    ),
                )
                .expect("write config");
                path.display().to_string()
            },
            "--log-format",
            "json",
        ],
        dir,
    )
    .expect("proxy starts");
    // `serve` reads its admin address from the file: read it from the log.
    assert!(proxy.wait_for_log("admin (/metrics, /healthz) on "));
    let admin: std::net::SocketAddr = {
        let log = proxy.log();
        let at = log
            .find("admin (/metrics, /healthz) on ")
            .expect("admin line")
            + 30;
        log[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
            .collect::<String>()
            .parse()
            .expect("admin address")
    };
    let open = |n: u32| {
        let url = format!("http://{admin}/metrics");
        async move {
            let want = format!("portcullis_connections_open {n}\n");
            for _ in 0..500 {
                if get(&url, &[]).await.text().contains(&want) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        }
    };
    let mut c = support::tcp(proxy.addr).await;
    c.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .expect("write");
    assert!(read_head(&mut c).await.starts_with("http/1.1 101"));
    c.write_all(b"hello").await.expect("write");
    let mut back = [0u8; 5];
    c.read_exact(&mut back).await.expect("echo");
    assert_eq!(&back, b"hello");
    // The tunnel is one open connection.
    assert!(open(1).await, "the tunnel is not counted");
    // A graceful stop waits for the tunnel up to the grace period (1 s),
    // then closes it.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).await.map(|_| rest)
    })
    .await;
    assert!(closed.is_ok(), "the tunnel outlived the grace period");
    assert!(
        proxy.wait_for_log("still open after the grace period"),
        "{}",
        proxy.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_policy_is_not_taken_for_a_slow_client() {
    // The header-read deadline is 1 s; the policy waits 1.5 s on an
    // internal service. The request head arrived long before: the client
    // gets its answer, not a closed connection.
    let up = echo().await;
    let slow = raw_upstream(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let proxy = Proxy::serve_for(
        &up,
        &format!(
            "    traffic_policy_file: policy.yml\ninternal:\n  authz.internal: {slow}\ntimeouts:\n  header_read: 1s\n"
        ),
        &[(
            "policy.yml",
            "on_http_request:\n  - actions:\n      - type: http-request\n        config:\n          url: https://authz.internal/check\n          timeout: 5s\n",
        )],
    );
    let res = get(&proxy.url("/after-a-wait"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["path"], "/after-a-wait");
}
