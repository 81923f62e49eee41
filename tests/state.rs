//! The shared state against real Redis: one standalone server, and a
//! three-master Redis Cluster, on loopback. Two `State`s on one Redis
//! stand for two replicas of the proxy.

#[path = "support/redis.rs"]
mod redis;

use std::time::{Duration, Instant};

use portcullis_state::{State, StateConfig, bucket_id};

use crate::redis::{Cluster, Redis};

const MINUTE: Duration = Duration::from_secs(60);

fn state(url: &str) -> State {
    let mut config = StateConfig::new(url);
    // Loopback answers in well under a millisecond; a generous timeout
    // keeps a busy test machine from turning into failures.
    config.timeout = Duration::from_millis(500);
    State::redis(config).expect("a valid URL")
}

async fn ready(s: &State) {
    s.ready(Duration::from_secs(10))
        .await
        .expect("redis answers");
}

/// `n` replicas' states on `redis`, each answering.
async fn fleet(redis: &Redis, n: usize) -> Vec<State> {
    let mut out = Vec::new();
    for _ in 0..n {
        let s = state(&redis.url());
        ready(&s).await;
        out.push(s);
    }
    out
}

/// Counts `n` requests for `bucket` across `replicas` in turn, and
/// returns how many were admitted.
async fn admitted(replicas: &[State], bucket: &str, capacity: u64, n: usize) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let s = &replicas[i % replicas.len()];
        if s.hit(bucket, capacity, MINUTE)
            .await
            .expect("redis answers")
            .is_none()
        {
            ok += 1;
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_bucket_and_one_time_values() {
    let redis = Redis::start();
    let replicas = fleet(&redis, 3).await;
    let bucket = bucket_id(b"rule", "10.0.0.1");
    // Three replicas, one capacity: 20 in all, not 20 each.
    assert_eq!(admitted(&replicas, &bucket, 20, 90).await, 20);
    let over = replicas[1].hit(&bucket, 20, MINUTE).await.expect("answer");
    assert!(matches!(over, Some(s) if (1..=80).contains(&s)), "{over:?}");
    // Another bucket is untouched.
    let other = bucket_id(b"rule", "10.0.0.2");
    assert_eq!(admitted(&replicas, &other, 20, 5).await, 5);
    // A one-time value is accepted once, whichever replica sees it.
    assert_eq!(replicas[0].once("oauth-state-1", MINUTE).await, Ok(true));
    assert_eq!(replicas[2].once("oauth-state-1", MINUTE).await, Ok(false));
    assert_eq!(replicas[1].once("oauth-state-2", MINUTE).await, Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replicas_never_both_take_the_last_slot() {
    let redis = Redis::start();
    let replicas: Vec<State> = (0..4).map(|_| state(&redis.url())).collect();
    for s in &replicas {
        ready(s).await;
    }
    let bucket = bucket_id(b"race", "x");
    let mut tasks = tokio::task::JoinSet::new();
    for s in replicas {
        let bucket = bucket.clone();
        tasks.spawn(async move {
            let mut ok = 0;
            for _ in 0..50 {
                if s.hit(&bucket, 37, MINUTE).await.expect("answer").is_none() {
                    ok += 1;
                }
            }
            ok
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.expect("task");
    }
    assert_eq!(total, 37);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded() {
    let redis = Redis::start();
    let s = state(&redis.url());
    ready(&s).await;
    let bucket = bucket_id(b"flush", "x");
    assert_eq!(admitted(std::slice::from_ref(&s), &bucket, 10, 3).await, 3);
    assert!(redis.cli(&["SCRIPT", "FLUSH"]).contains("OK"));
    assert_eq!(admitted(std::slice::from_ref(&s), &bucket, 10, 10).await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_redis_fails_fast_and_is_used_again_when_back() {
    let mut redis = Redis::start();
    let mut config = StateConfig::new(&redis.url());
    config.timeout = Duration::from_millis(100);
    let s = State::redis(config).expect("valid");
    ready(&s).await;
    let bucket = bucket_id(b"lost", "x");
    assert_eq!(s.hit(&bucket, 5, MINUTE).await, Ok(None));
    redis.kill();
    for _ in 0..5 {
        let started = Instant::now();
        assert!(s.hit(&bucket, 5, MINUTE).await.is_err());
        // Never much past the timeout.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(!s.stats().up);
    redis.restart();
    // Reconnected by itself, without a new State.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if s.hit(&bucket, 5, MINUTE).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.stats().up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_started_while_redis_is_down_connects_when_it_comes_up() {
    let mut redis = Redis::start();
    redis.kill();
    let s = state(&redis.url());
    assert!(s.hit("b", 5, MINUTE).await.is_err());
    redis.restart();
    ready(&s).await;
    assert_eq!(s.hit(&bucket_id(b"late", "x"), 5, MINUTE).await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_keeps_each_bucket_on_one_slot_and_survives_a_lost_master() {
    let mut cluster = Cluster::start();
    let replicas = [state(&cluster.url()), state(&cluster.url())];
    for s in &replicas {
        ready(s).await;
    }
    // Many buckets: they spread over the three masters, and none fails
    // with CROSSSLOT (each bucket's keys share one hash tag).
    let buckets: Vec<String> = (0..30).map(|i| bucket_id(b"c", &i.to_string())).collect();
    for b in &buckets {
        assert_eq!(admitted(&replicas, b, 4, 6).await, 4);
    }
    assert_eq!(replicas[0].once("assertion-1", MINUTE).await, Ok(true));
    assert_eq!(replicas[1].once("assertion-1", MINUTE).await, Ok(false));
    // One master goes: the buckets on the others still count; those on it
    // fail (and a caller falls back), none hangs.
    cluster.nodes[1].kill();
    let (mut ok, mut failed) = (0, 0);
    for b in &buckets {
        let started = Instant::now();
        match replicas[0].hit(b, 4, MINUTE).await {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_said_not_taken_for_a_timeout() {
    let redis = Redis::start();
    assert!(
        redis
            .cli(&["CONFIG", "SET", "requirepass", "right"])
            .contains("OK")
    );
    let url = format!("redis://:wrong@127.0.0.1:{}", redis.port);
    let s = state(&url);
    let err = s.ready(Duration::from_secs(2)).await.expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("WRONGPASS") || text.contains("auth"),
        "{text}"
    );
    assert!(!s.describe().contains("wrong"), "{}", s.describe());
    let good = state(&format!("redis://:right@127.0.0.1:{}", redis.port));
    ready(&good).await;
}

fn evalsha_calls(redis: &Redis) -> u64 {
    let stats = redis.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_buckets_are_leased_and_never_admit_more_than_their_capacity() {
    let redis = Redis::start();
    let replicas = fleet(&redis, 3).await;
    let bucket = bucket_id(b"lease", "x");
    // Capacity 1,000: leases of 10. Three replicas may each leave up to 9
    // unused when the bucket fills: between 973 and 1,000, never more.
    let admitted = admitted(&replicas, &bucket, 1000, 1500).await;
    assert!((973..=1000).contains(&admitted), "{admitted}");
    // The admissions cost a round trip per lease, not per request: 100
    // or so for the admitted, one per refused request after.
    let calls = evalsha_calls(&redis);
    assert!(calls < 1500 - 973 + 150, "{calls} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_sets_are_shared_expire_and_can_be_removed() {
    let redis = Redis::start();
    let (a, b) = (state(&redis.url()), state(&redis.url()));
    ready(&a).await;
    ready(&b).await;
    a.put("session-1", b"sealed bytes", MINUTE)
        .await
        .expect("put");
    assert_eq!(b.get("session-1").await, Ok(Some(b"sealed bytes".to_vec())));
    a.add_member("user-1", "session-1", MINUTE)
        .await
        .expect("add");
    a.add_member("user-1", "session-2", MINUTE)
        .await
        .expect("add");
    let mut members = b.members("user-1").await.expect("members");
    members.sort();
    assert_eq!(members, ["session-1", "session-2"]);
    assert_eq!(b.delete("session-1").await, Ok(true));
    assert_eq!(a.get("session-1").await, Ok(None));
    assert_eq!(a.delete("session-1").await, Ok(false));
    b.remove_member("user-1", "session-1")
        .await
        .expect("remove");
    assert_eq!(a.members("user-1").await, Ok(vec!["session-2".to_owned()]));
    a.put("short", b"x", Duration::from_millis(50))
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(b.get("short").await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_certificate_is_verified_against_the_given_ca() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let dir =
        std::env::temp_dir().join(format!("portcullis-test-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("cert");
    std::fs::write(&key, made.key_pair.serialize_pem()).expect("key");
    let redis = Redis::start_tls(&cert, &key);
    let url = format!("rediss://localhost:{}", redis.port);
    // Trusting the certificate: shared and working.
    let mut config = StateConfig::new(&url);
    config.ca = Some(made.cert.pem().into_bytes());
    config.timeout = Duration::from_millis(500);
    let s = State::redis(config).expect("valid");
    ready(&s).await;
    assert_eq!(s.once("over-tls", MINUTE).await, Ok(true));
    // Without it (the Mozilla roots only): refused, not downgraded.
    let plain = state(&url);
    let err = plain
        .ready(Duration::from_secs(2))
        .await
        .expect_err("unverified");
    assert!(!err.to_string().is_empty());
    assert!(plain.once("over-tls-2", MINUTE).await.is_err());
    // A `ca` with redis:// is a mistake, said at once.
    let mut wrong = StateConfig::new("redis://127.0.0.1:6379");
    wrong.ca = Some(made.cert.pem().into_bytes());
    let err = State::redis(wrong).expect_err("ca without TLS");
    assert!(err.to_string().contains("rediss://"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_keeps_only_its_live_members() {
    let redis = Redis::start();
    let s = state(&redis.url());
    ready(&s).await;
    for i in 0..50 {
        s.add_member("user-x", &format!("old-{i}"), Duration::from_millis(30))
            .await
            .expect("add");
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    s.add_member("user-x", "new", MINUTE).await.expect("add");
    assert_eq!(s.members("user-x").await, Ok(vec!["new".to_owned()]));
    // Trimmed in Redis too, not only hidden.
    let key = "portcullis:set:{user-x}";
    assert_eq!(redis.cli(&["ZCARD", key]).trim(), "1");
}
