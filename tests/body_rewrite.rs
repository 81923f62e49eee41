//! `request-body-find-replace` and `response-body-find-replace` through
//! the real binary: what the upstream and the client receive, with
//! `Content-Length` fixed, a pattern that spans the chunks a body arrives
//! in, a gzip response decoded and encoded again, the matches as results,
//! and bodies past the limit refused rather than passed on.

use std::io::{Read as _, Write as _};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, echo, get, raw_upstream, send};

async fn post(url: &str, body: &str) -> support::Resp {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    send(req).await.expect("send")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_rewritten_before_the_upstream_sees_them() {
    let up = echo().await;
    let proxy = Proxy::http(
        r#"
on_http_request:
  - actions:
      - type: request-body-find-replace
        config:
          replacements:
            - from: "api_key=([a-zA-Z0-9]+)"
              to: "api_key=REDACTED"
            - from: "${req.headers['x-old'][0]}"
              to: "new-$0"
            - from: "drop-me"
  - actions:
      - type: add-headers
        config:
          headers:
            x-matches: "${string(size(actions.ngrok.request_body_find_replace.replacements))}"
            x-first: "${actions.ngrok.request_body_find_replace.replacements[0].matched_content}"
"#,
        up,
    );
    let req = Request::post(proxy.url("/in"))
        .header("x-old", "old-host")
        .body(Full::new(Bytes::from_static(
            b"api_key=s3cr3t&host=old-host&x=drop-me&api_key=more",
        )))
        .expect("request");
    let res = send(req).await.expect("send");
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let echo = res.echo();
    let want = "api_key=REDACTED&host=new-old-host&x=&api_key=REDACTED";
    assert_eq!(echo["body"], want);
    assert_eq!(
        echo["headers"]["content-length"][0],
        want.len().to_string().as_str()
    );
    assert_eq!(echo["headers"]["x-matches"][0], "4");
    assert_eq!(echo["headers"]["x-first"][0], "api_key=s3cr3t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_past_the_limit_is_refused_not_passed_on() {
    let up = echo().await;
    let proxy = Proxy::http(
        "on_http_request:\n  - actions:\n      - type: request-body-find-replace\n        config: { replacements: [{ from: secret, to: x }] }\n",
        up,
    );
    let big = "a".repeat(9 * 1024 * 1024);
    let res = post(&proxy.url("/"), &big).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text());
    assert!(res.text().contains("ERR_NGROK_3903"), "{}", res.text());
}

/// A gzip response sent in small chunks, the pattern split across two of
/// them: decoded, rewritten, encoded again with the right length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_responses_in_chunks_are_rewritten_across_chunk_boundaries() {
    let page = "<p>card 4111 1111 1111 1234 and http://localhost:8080/x</p>".repeat(50);
    let gz = {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(page.as_bytes()).expect("write");
        z.finish().expect("finish")
    };
    let up = raw_upstream(move |mut stream| {
        let gz = gz.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            // Chunks of 7 bytes: the patterns span them.
            let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
            for chunk in gz.chunks(7) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            let _ = stream.write_all(&out).await;
        }
    })
    .await;
    let proxy = Proxy::http(
        r#"
on_http_response:
  - expressions: ["res.headers['content-type'][0].startsWith('text/html')"]
    actions:
      - type: response-body-find-replace
        config:
          replacements:
            - from: '\b(?:\d[ -]?){12}(\d{4})\b'
              to: "**** **** **** $1"
            - from: http://localhost:8080
              to: https://${req.host}
"#,
        up,
    );
    let res = get(&proxy.url("/page"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    assert_eq!(
        res.header("content-length"),
        Some(res.body.len().to_string().as_str())
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(res.body.as_ref())
        .read_to_string(&mut text)
        .expect("gzip");
    let host = proxy.addr.to_string();
    let want = format!("<p>card **** **** **** 1234 and https://{host}/x</p>").repeat(50);
    assert_eq!(text, want);
}

/// A response with a coding but no body (a 304, say) passes as it is:
/// there is nothing to rewrite, and an empty gzip body does not decode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coded_response_without_a_body_passes() {
    let up = raw_upstream(|mut stream| async move {
        use tokio::io::AsyncWriteExt;
        let _ = stream
            .write_all(b"HTTP/1.1 304 Not Modified\r\ncontent-encoding: gzip\r\netag: \"v1\"\r\nconnection: close\r\n\r\n")
            .await;
    })
    .await;
    let proxy = Proxy::http(
        "on_http_response:\n  - actions:\n      - type: response-body-find-replace\n        config: { replacements: [{ from: secret, to: x }] }\n",
        up,
    );
    let res = get(&proxy.url("/page"), &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(res.status, http::StatusCode::NOT_MODIFIED, "{}", res.text());
    assert_eq!(res.header("etag"), Some("\"v1\""));
}
