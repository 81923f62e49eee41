use super::Window;

const SEC: u64 = 1_000_000_000;

#[test]
fn allows_capacity_then_limits_within_one_window() {
    let w = Window::new(3, 60 * SEC);
    assert_eq!(w.hit("a", 0), None);
    assert_eq!(w.hit("a", SEC), None);
    assert_eq!(w.hit("a", 2 * SEC), None);
    // Full: the window ends in 57 s, and the 3 requests then weigh as the
    // previous window until a third of the next has passed (20 s).
    assert_eq!(w.hit("a", 3 * SEC), Some(77));
    // Another bucket is independent.
    assert_eq!(w.hit("b", 3 * SEC), None);
}

#[test]
fn the_previous_window_weighs_as_it_slides_out() {
    let w = Window::new(10, 60 * SEC);
    for i in 0..10 {
        assert_eq!(w.hit("k", i * SEC), None);
    }
    // 6 s into the next window, the previous 10 still weigh 9: one more
    // request fits, the next does not.
    assert_eq!(w.hit("k", 66 * SEC), None);
    assert!(w.hit("k", 66 * SEC).is_some());
    // By the end of that window the previous weighs nearly nothing.
    assert_eq!(w.hit("k", 119 * SEC), None);
}

#[test]
fn an_idle_bucket_starts_afresh() {
    let w = Window::new(1, 10 * SEC);
    assert_eq!(w.hit("k", 0), None);
    assert!(w.hit("k", SEC).is_some());
    assert_eq!(w.hit("k", 25 * SEC), None);
}

#[test]
fn retry_after_is_at_least_one_second() {
    let w = Window::new(1, 10 * SEC);
    assert_eq!(w.hit("k", 0), None);
    let wait = w.hit("k", 10 * SEC - 1).expect("limited");
    assert!(wait >= 1, "{wait}");
}

#[test]
fn many_buckets_are_swept_not_kept_forever() {
    let w = Window::new(1, SEC);
    for i in 0..20_000u64 {
        assert_eq!(w.hit(&format!("k{i}"), i * SEC), None);
    }
    let kept: usize = w
        .shards
        .iter()
        .map(|s| s.lock().map_or(0, |m| m.buckets.len()))
        .sum();
    assert!(kept < 20_000, "{kept}");
}
