//! Three `portcullis http` replicas sharing one real Redis (`--state`):
//! a rate limit holds for the fleet, not per replica; a lost Redis falls
//! back to each replica's own buckets without a hang or a 5xx, is counted
//! and said; a Redis that comes back is used again without a restart.

#[path = "support/proxy.rs"]
mod support;

#[path = "support/redis.rs"]
mod redis;

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::redis::Redis;
use crate::support::{Proxy, echo, get};

const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: per user
          algorithm: sliding_window
          capacity: 30
          rate: 60s
          bucket_key: ["req.headers['x-user'][0]"]
"#;

async fn replicas(redis: &Redis) -> Vec<Proxy> {
    let up = echo().await;
    let url = redis.url();
    (0..3)
        .map(|_| Proxy::http_with(POLICY, up, &["--state", &url]))
        .collect()
}

/// Sends `n` requests for `user`, round-robin over `replicas`: how many
/// were admitted; every other answer must be a 429, and none may take
/// longer than `slowest`.
async fn spread(replicas: &[Proxy], user: &str, n: usize, slowest: Duration) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let proxy = &replicas[i % replicas.len()];
        let started = Instant::now();
        let res = get(&proxy.url("/"), &[("x-user", user)]).await;
        assert!(
            started.elapsed() < slowest,
            "a request took {:?}",
            started.elapsed()
        );
        match res.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(
                    res.header("retry-after").is_some(),
                    "429 without retry-after"
                );
            }
            other => panic!("request {i} for {user}: {other} {}", res.text()),
        }
    }
    ok
}

async fn metrics(proxy: &Proxy) -> String {
    let admin = proxy.admin.expect("the harness starts an admin listener");
    get(&format!("http://{admin}/metrics"), &[]).await.text()
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_replicas_and_falls_back_when_redis_is_lost() {
    let mut redis = Redis::start();
    let fleet = replicas(&redis).await;
    // Shared: 30 in all across three replicas, exactly.
    assert_eq!(
        spread(&fleet, "alice", 150, Duration::from_secs(2)).await,
        30
    );
    // Another user's bucket is untouched.
    assert_eq!(spread(&fleet, "bob", 9, Duration::from_secs(2)).await, 9);

    // Redis goes: every replica falls back to its own bucket (30 each),
    // no request waits much past the state timeout, none gets a 5xx.
    redis.kill();
    let admitted = spread(&fleet, "carol", 150, Duration::from_secs(1)).await;
    assert!(
        (88..=90).contains(&admitted),
        "with local buckets each replica admits its own 30: {admitted}"
    );
    for proxy in &fleet {
        let m = metrics(proxy).await;
        assert_eq!(sample(&m, "portcullis_state_up"), Some(0.0), "{m}");
        let local = r#"portcullis_state_fallbacks_total{use="rate_limit",to="local"}"#;
        assert!(sample(&m, local).is_some_and(|n| n >= 50.0), "{m}");
        assert!(proxy.wait_for_log("shared rate limits fall back to `local`"));
    }

    // Redis comes back (empty): the replicas use it again by themselves.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics(&fleet[0]).await;
        // A request that reaches Redis ends the episode.
        let _ = get(&fleet[0].url("/"), &[("x-user", "probe")]).await;
        if sample(&m, "portcullis_state_up") == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for proxy in &fleet[1..] {
        let _ = get(&proxy.url("/"), &[("x-user", "probe")]).await;
    }
    assert_eq!(spread(&fleet, "dave", 90, Duration::from_secs(2)).await, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starts_while_redis_is_down_and_shares_once_it_is_up() {
    let mut redis = Redis::start();
    redis.kill();
    let up = echo().await;
    let url = redis.url();
    let proxy = Proxy::http_with(POLICY, up, &["--state", &url]);
    assert!(proxy.wait_for_log("starting anyway"), "{}", proxy.log());
    // Without shared session keys, it says sign-ins will not carry over.
    assert!(
        proxy.wait_for_log("no `session_keys` are set"),
        "{}",
        proxy.log()
    );
    // Meanwhile: its own buckets.
    assert_eq!(
        spread(
            std::slice::from_ref(&proxy),
            "erin",
            40,
            Duration::from_secs(1)
        )
        .await,
        30
    );
    redis.restart();
    let other = Proxy::http_with(POLICY, up, &["--state", &url]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample(&metrics(&proxy).await, "portcullis_state_up") != Some(1.0) {
        let _ = get(&proxy.url("/"), &[("x-user", "probe")]).await;
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pair = [proxy, other];
    assert_eq!(spread(&pair, "frank", 60, Duration::from_secs(2)).await, 30);
}

#[test]
fn a_state_url_that_cannot_work_stops_the_start() {
    let dir = support::temp_dir("bad-state");
    let policy = dir.join("policy.yml");
    std::fs::write(&policy, POLICY).expect("write");
    let p = policy.display().to_string();
    let err = Proxy::spawn(
        &[
            "http",
            "127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "http://127.0.0.1:6379",
            "--traffic-policy-file",
            &p,
        ],
        dir,
    )
    .err()
    .expect("refused");
    assert!(
        err.contains("`state`") && err.contains("expected redis://"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_is_not_waited_for_past_the_state_timeout() {
    let redis = Redis::start();
    let up = echo().await;
    let config = format!(
        "    traffic_policy_file: policy.yml\nadmin: 127.0.0.1:0\nstate: {{ url: {}, timeout: 50ms }}\n",
        redis.url()
    );
    let proxy = Proxy::serve_for(&up, &config, &[("policy.yml", POLICY)]);
    assert_eq!(
        spread(
            std::slice::from_ref(&proxy),
            "gina",
            5,
            Duration::from_secs(2)
        )
        .await,
        5
    );
    // Redis stops answering for three seconds (busy, not gone).
    let port = redis.port.to_string();
    let sleeper = std::thread::spawn(move || {
        let _ = std::process::Command::new("redis-cli")
            .args(["-p", &port, "DEBUG", "SLEEP", "3"])
            .output();
    });
    std::thread::sleep(Duration::from_millis(200));
    // Each request waits at most about the timeout, then counts locally.
    let admitted = spread(
        std::slice::from_ref(&proxy),
        "hank",
        10,
        Duration::from_millis(900),
    )
    .await;
    assert_eq!(admitted, 10);
    let m = metrics(&proxy).await;
    let local = r#"portcullis_state_fallbacks_total{use="rate_limit",to="local"}"#;
    assert!(sample(&m, local).is_some_and(|n| n >= 10.0), "{m}");
    sleeper.join().expect("redis-cli");
}
