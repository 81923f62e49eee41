//! `owasp-crs-request` and `owasp-crs-response` through the real binary:
//! attacks refused with 403 and their code before the upstream sees them,
//! ordinary traffic passed, bodies inspected past ngrok's 4 KB and through
//! their content coding, a body too large to inspect refused rather than
//! passed, a request refused on its head without its body being read, a
//! leaking response refused, detection-only mode, and the results read by
//! a later rule. (The CRS's own regression suite is `crs_regression.rs`.)

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, get, raw_upstream, send};

const BROWSER: &[(&str, &str)] = &[
    ("host", "app.example.com"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
    ),
    ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("accept-language", "en-US,en;q=0.5"),
];

/// An upstream that counts the requests it gets and answers 200 `ok`.
async fn counting() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&hits);
    let addr = raw_upstream(move |mut stream| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    })
    .await;
    (addr, hits)
}

/// An upstream that answers every request with `head` and `body`.
async fn answering(head: &'static str, body: Vec<u8>) -> std::net::SocketAddr {
    let body = Arc::new(body);
    raw_upstream(move |mut stream| {
        let body = Arc::clone(&body);
        async move {
            let mut out = format!(
                "{head}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(&body);
            let _ = stream.write_all(&out).await;
        }
    })
    .await
}

async fn post(
    url: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> support::Resp {
    let mut req = Request::post(url).header("content-type", content_type);
    for (k, v) in BROWSER.iter().chain(extra) {
        req = req.header(*k, *v);
    }
    send(req.body(Full::new(Bytes::from(body))).expect("request"))
        .await
        .expect("send")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_are_refused_before_the_upstream_and_ordinary_requests_pass() {
    let (up, hits) = counting().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: owasp-crs-request
        config:
          on_error: halt
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-waf: "${actions.ngrok.owasp_crs_request.decision} ${string(actions.ngrok.owasp_crs_request.anomaly_score)}/${string(actions.ngrok.owasp_crs_request.anomaly_score_threshold)}"
            x-waf-rules: "${actions.ngrok.owasp_crs_request.matched_rules.map(r, string(r.id) + ':' + r.severity).join(',')}"
"#,
        up,
    );
    for target in [
        "/search?q=1%27%20OR%20%271%27%3D%271",
        "/view?file=..%2F..%2F..%2Fetc%2Fpasswd",
        "/comment?text=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
        "/run?cmd=%3Bcat%20%2Fetc%2Fpasswd",
    ] {
        let res = get(&proxy.url(target), BROWSER).await;
        assert_eq!(
            res.status,
            StatusCode::FORBIDDEN,
            "{target}: {}",
            res.text()
        );
        assert_eq!(
            res.header("portcullis-error-code"),
            Some("ERR_NGROK_3700"),
            "{target}"
        );
        let waf = res
            .header("x-waf")
            .expect("the results are read after the block");
        assert!(waf.starts_with("deny "), "{target}: {waf}");
        assert!(
            !res.header("x-waf-rules").unwrap_or("").is_empty(),
            "{target}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "an attack reached the upstream"
    );

    let res = get(&proxy.url("/articles?page=2&sort=date"), BROWSER).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "ok");
    assert_eq!(res.header("x-waf"), Some("allow 0/5"));
    assert_eq!(res.header("x-waf-rules"), Some(""));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // The SQL injection's rule is reported with its id and severity.
    let res = get(&proxy.url("/search?q=1%27%20OR%20%271%27%3D%271"), BROWSER).await;
    assert!(
        res.header("x-waf-rules")
            .unwrap_or("")
            .contains("942100:CRITICAL"),
        "{:?}",
        res.header("x-waf-rules")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_inspected_past_four_kilobytes_and_through_their_coding() {
    let (up, hits) = counting().await;
    let policy = |process_body: bool| {
        format!(
            "on_http_request:\n  - actions:\n      - type: owasp-crs-request\n        config:\n          on_error: halt\n          process_body: {process_body}\n"
        )
    };
    let inspecting = Proxy::http(&policy(true), up);
    let padded = format!(
        "note={}&comment=<script>alert(document.cookie)</script>",
        "a".repeat(5000)
    );
    let form = "application/x-www-form-urlencoded";

    let res = post(
        &inspecting.url("/comments"),
        form,
        &[],
        padded.clone().into_bytes(),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    let res = post(
        &inspecting.url("/comments"),
        form,
        &[("content-encoding", "gzip")],
        gzip(padded.as_bytes()),
    )
    .await;
    assert_eq!(
        res.status,
        StatusCode::FORBIDDEN,
        "a gzip body hid the attack: {}",
        res.text()
    );
    // Invalid JSON is refused (ModSecurity's recommended rule 200002).
    let res = post(
        &inspecting.url("/api"),
        "application/json",
        &[],
        b"{\"a\": ".to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let res = post(
        &inspecting.url("/comments"),
        form,
        &[],
        b"note=hello&comment=nice+article".to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = post(
        &inspecting.url("/api"),
        "application/json",
        &[],
        br#"{"title":"Q3 plan","tags":["a","b"]}"#.to_vec(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Without `process_body`, as ngrok's default, the body is not read.
    let headers_only = Proxy::http(&policy(false), up);
    let res = post(
        &headers_only.url("/comments"),
        form,
        &[],
        padded.into_bytes(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_large_to_inspect_is_refused_unless_told_to_continue() {
    let (up, hits) = counting().await;
    let mut big = b"data=".to_vec();
    big.resize(9 * 1024 * 1024, b'a');
    let halting = Proxy::http(
        "on_http_request:\n  - actions:\n      - type: owasp-crs-request\n        config:\n          on_error: halt\n          process_body: true\n",
        up,
    );
    let form = "application/x-www-form-urlencoded";
    let res = post(&halting.url("/upload"), form, &[], big.clone()).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text());
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3903"));
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let continuing = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: owasp-crs-request
        config:
          on_error: continue
          process_body: true
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-waf-error: "${actions.ngrok.owasp_crs_request.error.code}"
"#,
        up,
    );
    let res = post(&continuing.url("/upload"), form, &[], big).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header("x-waf-error"), Some("ERR_NGROK_3903"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// A scanner's user agent scores enough on the request's head: the answer
/// comes without the body, which this client never finishes sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_on_its_head_is_answered_without_its_body() {
    let (up, hits) = counting().await;
    let proxy = Proxy::http(
        "on_http_request:\n  - actions:\n      - type: owasp-crs-request\n        config:\n          on_error: halt\n          process_body: true\n",
        up,
    );
    let addr = proxy
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nhost: app.example\r\nuser-agent: sqlmap/1.7.2#stable (https://sqlmap.org)\r\n\
              accept: */*\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100000\r\n\r\nuser=a",
        )
        .await
        .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answered before the body arrived")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(head.contains("ERR_NGROK_3700"), "{head}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaking_response_is_refused() {
    let leak = b"<html><body><b>Warning</b>: mysql_fetch_array() expects parameter 1 to be resource, boolean given in <b>/var/www/html/report.php</b> on line <b>12</b></body></html>".to_vec();
    let policy = "on_http_response:\n  - actions:\n      - type: owasp-crs-response\n        config:\n          on_error: halt\n          process_body: true\n";
    for (head, body) in [
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n",
            leak.clone(),
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-encoding: gzip\r\n",
            gzip(&leak),
        ),
    ] {
        let up = answering(head, body).await;
        let proxy = Proxy::http(policy, up);
        let res = get(&proxy.url("/report"), &[("accept-encoding", "gzip")]).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{head}: {}", res.text());
        assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3702"));
        assert!(!res.text().contains("mysql"), "the leak reached the client");
    }
    // An image is not inspected; a clean page passes.
    let up = answering("HTTP/1.1 200 OK\r\ncontent-type: image/png\r\n", leak).await;
    let res = get(&Proxy::http(policy, up).url("/x.png"), &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    let up = answering(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n",
        b"<p>Quarterly report</p>".to_vec(),
    )
    .await;
    let res = get(&Proxy::http(policy, up).url("/report"), &[]).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "<p>Quarterly report</p>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_only_reports_without_blocking() {
    let (up, hits) = counting().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: owasp-crs-request
        config:
          on_error: halt
          enforce: false
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-waf: "${actions.ngrok.owasp_crs_request.decision}"
"#,
        up,
    );
    let res = get(&proxy.url("/search?q=1%27%20OR%20%271%27%3D%271"), BROWSER).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header("x-waf"), Some("deny"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
