//! `on_event_stream_message` and `sse-find-replace` through the real
//! binary: a server-sent event stream is rewritten event by event as it
//! streams (the first event reaches the client while the upstream still
//! holds the second back), a pattern split across the chunks an event came
//! in still matches, comments and other fields pass as they came, and an
//! event too large to handle ends the stream instead of passing.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, raw_upstream};

const POLICY: &str = r#"
on_event_stream_message:
  - actions:
      - type: sse-find-replace
        config:
          replacements:
            - from: "s3cr3t-[0-9]+"
              to: "[redacted]"
            - field: data
              from: "PATH"
              to: "${req.url.path}"
"#;

/// An upstream that sends an event stream in `pieces`, chunked, waiting
/// `pause` before the last piece.
async fn sse_upstream(pieces: Vec<&'static str>, pause: Duration) -> std::net::SocketAddr {
    raw_upstream(move |mut stream| {
        let pieces = pieces.clone();
        async move {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let n = pieces.len();
            for (i, p) in pieces.into_iter().enumerate() {
                if i + 1 == n {
                    tokio::time::sleep(pause).await;
                }
                let _ = stream
                    .write_all(format!("{:x}\r\n{p}\r\n", p.len()).as_bytes())
                    .await;
                let _ = stream.flush().await;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    })
    .await
}

/// Reads from `stream` until `needle` arrives or `within` passes.
async fn read_until(
    stream: &mut tokio::net::TcpStream,
    seen: &mut String,
    needle: &str,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return false,
            Ok(Ok(n)) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Ok(Err(_)) => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_rewritten_one_by_one_as_they_stream() {
    let up = sse_upstream(
        vec![
            ": keep-alive comment\n",
            "id: 1\ndata: token s3cr",
            "3t-42 at PATH\n\n",
            "event: done\ndata: bye s3cr3t-7\n\n",
        ],
        Duration::from_millis(2500),
    )
    .await;
    let proxy = Proxy::http(POLICY, up);
    let mut client = support::tcp(proxy.addr).await;
    client
        .write_all(b"GET /feed HTTP/1.1\r\nhost: localhost\r\naccept: text/event-stream\r\n\r\n")
        .await
        .expect("write");
    let mut seen = String::new();
    // The first event arrives while the upstream still holds the second.
    assert!(
        read_until(
            &mut client,
            &mut seen,
            "at /feed",
            Duration::from_millis(2000)
        )
        .await,
        "the first event did not stream: {seen:?}"
    );
    assert!(!seen.contains("bye"), "{seen}");
    assert!(
        seen.contains(": keep-alive comment\nid: 1\ndata: token [redacted] at /feed\n\n"),
        "{seen}"
    );
    assert!(!seen.contains("s3cr3t"), "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("content-length"),
        "{seen}"
    );
    assert!(
        read_until(
            &mut client,
            &mut seen,
            "data: bye [redacted]\n\n",
            Duration::from_secs(5)
        )
        .await,
        "{seen:?}"
    );
    assert!(seen.contains("event: done\n"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_past_the_limit_ends_the_stream_rather_than_passing() {
    // One `data:` line of 1.5 MiB with the secret at its end, never ended.
    let big: &'static str =
        Box::leak(format!("data: {}s3cr3t-1", "x".repeat(1536 * 1024)).into_boxed_str());
    let up = sse_upstream(
        vec!["data: first s3cr3t-0\n\n", big, "\n\n"],
        Duration::from_millis(10),
    )
    .await;
    let proxy = Proxy::http(POLICY, up);
    let mut client = support::tcp(proxy.addr).await;
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut all)).await;
    let text = String::from_utf8_lossy(&all);
    // The stream is cut (the event before it may or may not have been
    // flushed to the client before the cut): nothing passes unredacted.
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(400)]
    );
    assert!(!text.contains("s3cr3t-0"), "an event passed unredacted");
    assert!(!text.contains("s3cr3t-1"), "the oversized event passed");
    assert!(
        !text.contains("xxxxxxxxxxxxxxxx"),
        "part of the oversized event passed"
    );
}
