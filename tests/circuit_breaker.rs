//! `circuit-breaker` through the real binary: an upstream that fails trips
//! it, a tripped breaker answers 503 `ERR_NGROK_3202` without reaching the
//! upstream, one probe after `tripped_duration` closes it again, and the
//! admin listener reports it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, get, raw_upstream};

fn policy(volume: u32) -> String {
    format!(
        r#"
on_http_request:
  - name: protect api
    actions:
      - type: circuit-breaker
        config:
          error_threshold: 0.5
          volume_threshold: {volume}
          window_duration: 10s
          tripped_duration: 1s
"#
    )
}

/// An upstream that answers 500 while `failing`, else 200, counting what
/// reaches it.
async fn flaky(failing: Arc<AtomicBool>, hits: Arc<AtomicU64>) -> std::net::SocketAddr {
    raw_upstream(move |mut stream| {
        let (failing, hits) = (failing.clone(), hits.clone());
        async move {
            use tokio::io::AsyncWriteExt;
            hits.fetch_add(1, Ordering::SeqCst);
            let status = if failing.load(Ordering::SeqCst) {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = stream
                .write_all(
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
                    )
                    .as_bytes(),
                )
                .await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_upstream_trips_it_and_a_probe_closes_it() {
    let (failing, hits) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(0)));
    let up = flaky(failing.clone(), hits.clone()).await;
    let proxy = Proxy::http(&policy(4), up);
    // Four failures reach the upstream and are passed on as they are.
    for _ in 0..4 {
        let res = get(&proxy.url("/api"), &[]).await;
        assert_eq!(res.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    // 4 of 4 failed: open. The upstream is not asked.
    for _ in 0..3 {
        let res = get(&proxy.url("/api"), &[]).await;
        assert_eq!(
            res.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            res.text()
        );
        assert!(res.text().contains("ERR_NGROK_3202"), "{}", res.text());
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        4,
        "nothing reached the upstream"
    );
    let admin = proxy.admin.expect("admin listener");
    let metrics = get(&format!("http://{admin}/metrics"), &[]).await.text();
    for line in [
        r#"portcullis_circuit_breaker_state{endpoint="#,
        r#"rule="protect api"} 1"#,
        "# TYPE portcullis_circuit_breaker_trips_total counter",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    assert!(
        metrics.lines().any(
            |l| l.starts_with("portcullis_circuit_breaker_rejected_total") && l.ends_with(" 3")
        ),
        "{metrics}"
    );

    // The upstream recovers; after the tripped duration one probe goes
    // through, succeeds, and the breaker closes.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = get(&proxy.url("/api"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    for _ in 0..5 {
        assert_eq!(get(&proxy.url("/api"), &[]).await.status, StatusCode::OK);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 10);
}

/// An upstream that cannot be reached counts as failing (the proxy's own
/// 502s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_trips_it_too() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let proxy = Proxy::http(&policy(2), closed);
    for _ in 0..2 {
        assert_eq!(
            get(&proxy.url("/"), &[]).await.status,
            StatusCode::BAD_GATEWAY
        );
    }
    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
}
