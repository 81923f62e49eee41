use std::time::Duration;

use super::*;

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_window_admits_its_capacity_then_says_when_to_retry() {
    // At the start of a window with nothing before it.
    assert_eq!(sliding_window(0, 0, 0.0, 3, MINUTE), None);
    assert_eq!(sliding_window(0, 2, 0.0, 3, MINUTE), None);
    // Full: the next one fits once this window is over (and the new
    // previous has decayed by one request's worth).
    assert_eq!(sliding_window(0, 3, 0.0, 3, MINUTE), Some(80));
    // Half-way, the previous window's 4 weigh 2: with 1 now, 3 of 4.
    assert_eq!(sliding_window(4, 1, 0.5, 4, MINUTE), None);
    assert_eq!(sliding_window(4, 2, 0.5, 4, MINUTE), Some(15));
}

#[tokio::test]
async fn memory_counts_a_bucket_to_its_capacity() {
    let state = State::memory();
    assert!(!state.is_shared());
    for _ in 0..5 {
        assert_eq!(state.hit("b", 5, MINUTE).await, Ok(None));
    }
    assert!(matches!(state.hit("b", 5, MINUTE).await, Ok(Some(s)) if s >= 1));
    // Another bucket has its own count.
    assert_eq!(state.hit("c", 5, MINUTE).await, Ok(None));
}

#[tokio::test]
async fn a_one_time_value_is_taken_once_until_it_expires() {
    let state = State::memory();
    assert_eq!(state.once("state-1", MINUTE).await, Ok(true));
    assert_eq!(state.once("state-1", MINUTE).await, Ok(false));
    assert_eq!(state.once("state-2", MINUTE).await, Ok(true));
    assert_eq!(
        state.once("short", Duration::from_millis(20)).await,
        Ok(true)
    );
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(
        state.once("short", Duration::from_millis(20)).await,
        Ok(true)
    );
}

#[test]
fn bucket_ids_are_fixed_length_hex_whatever_the_key() {
    let a = bucket_id(b"rule", "1.2.3.4");
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(a, bucket_id(b"rule", "1.2.3.4"));
    assert_ne!(a, bucket_id(b"rule", "1.2.3.5"));
    assert_ne!(a, bucket_id(b"rule2", "1.2.3.4"));
    // The rule's length is part of the digest: no two (rule, bucket)
    // pairs collide by moving bytes across the boundary.
    assert_ne!(bucket_id(b"ab", "c"), bucket_id(b"a", "bc"));
    assert_eq!(bucket_id(b"r", "}{x}").len(), 32);
}

#[tokio::test]
async fn a_bad_url_is_refused_and_a_down_store_is_not() {
    let err = State::redis(StateConfig::new("http://127.0.0.1:6379")).expect_err("not redis");
    assert!(err.to_string().contains("expected redis://"), "{err}");
    let err = State::redis(StateConfig::new("redis+cluster://")).expect_err("no node");
    assert!(err.to_string().contains("names no node"), "{err}");
    // Nothing listens on port 1: the state starts, and calls fail fast.
    let mut config = StateConfig::new("redis://127.0.0.1:1");
    config.timeout = Duration::from_millis(30);
    let state = State::redis(config).expect("a valid URL");
    assert!(state.is_shared());
    let started = std::time::Instant::now();
    assert!(state.hit("b", 5, MINUTE).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!state.stats().up);
    assert_eq!(state.stats().errors, 1);
}

#[test]
fn passwords_never_reach_the_logs() {
    let state_url = "redis://user:secret@127.0.0.1:6379/0";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shown = rt.block_on(async {
        State::redis(StateConfig::new(state_url))
            .expect("valid")
            .describe()
    });
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("127.0.0.1:6379"), "{shown}");
}

#[tokio::test]
async fn memory_values_and_sets() {
    let state = State::memory();
    state.put("k", b"v", MINUTE).await.expect("put");
    assert_eq!(state.get("k").await, Ok(Some(b"v".to_vec())));
    assert_eq!(state.delete("k").await, Ok(true));
    assert_eq!(state.get("k").await, Ok(None));
    state.add_member("s", "a", MINUTE).await.expect("add");
    state.add_member("s", "b", MINUTE).await.expect("add");
    state.remove_member("s", "a").await.expect("remove");
    assert_eq!(state.members("s").await, Ok(vec!["b".to_owned()]));
    state.put("gone", b"v", Duration::ZERO).await.expect("put");
    assert_eq!(state.get("gone").await, Ok(None));
}
