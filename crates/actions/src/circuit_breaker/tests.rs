//! The breaker's state machine, on a clock the tests move by hand.

use std::time::{Duration, Instant};

use http::StatusCode;

use super::{Admit, CircuitBreaker};

const OK: Option<StatusCode> = Some(StatusCode::OK);
const FAIL: Option<StatusCode> = Some(StatusCode::BAD_GATEWAY);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn it_trips_at_the_error_share_once_the_volume_is_there() {
    let t0 = Instant::now();
    let b = CircuitBreaker::for_test(0.5, 4, secs(10), secs(5), t0);
    // Three failures: below the volume, still closed.
    for _ in 0..3 {
        assert_eq!(b.admit(t0, true), Admit::Counted);
        b.answered(Admit::Counted, t0, FAIL, t0);
    }
    assert_eq!(b.admit(t0, true), Admit::Counted);
    // The fourth (an error too): 4 of 4, open.
    b.answered(Admit::Counted, t0, FAIL, t0);
    assert_eq!(b.admit(t0 + secs(1), true), Admit::Rejected);
    assert_eq!(b.admit(t0 + secs(4), true), Admit::Rejected);
    let series = b.series();
    assert_eq!(series[1].value, 1, "one trip");
    assert_eq!(series[2].value, 2, "two rejected");
}

#[test]
fn successes_keep_it_closed_below_the_share() {
    let t0 = Instant::now();
    let b = CircuitBreaker::for_test(0.5, 4, secs(10), secs(5), t0);
    for i in 0..100 {
        assert_eq!(b.admit(t0, true), Admit::Counted, "request {i}");
        // One in three fails: 33% < 50%.
        b.answered(Admit::Counted, t0, if i % 3 == 2 { FAIL } else { OK }, t0);
    }
    assert_eq!(b.series()[1].value, 0);
}

#[test]
fn after_the_tripped_duration_one_probe_decides() {
    let t0 = Instant::now();
    let b = CircuitBreaker::for_test(0.5, 2, secs(10), secs(5), t0);
    for _ in 0..2 {
        b.admit(t0, true);
        b.answered(Admit::Counted, t0, FAIL, t0);
    }
    assert_eq!(b.admit(t0 + secs(4), true), Admit::Rejected);
    // Past 5 s: one probe, the rest still rejected while it is out.
    let t1 = t0 + secs(6);
    assert_eq!(b.admit(t1, true), Admit::Probe);
    assert_eq!(b.admit(t1, true), Admit::Rejected);
    // The probe fails: open again for 5 s.
    b.answered(Admit::Probe, t1, FAIL, t1);
    assert_eq!(b.admit(t1 + secs(1), true), Admit::Rejected);
    let t2 = t1 + secs(6);
    assert_eq!(b.admit(t2, true), Admit::Probe);
    // A probe that never reached the upstream frees the slot.
    b.answered(Admit::Probe, t2, None, t2);
    assert_eq!(b.admit(t2, true), Admit::Probe);
    // It succeeds: closed, with an empty window (one failure does not
    // trip it again).
    b.answered(Admit::Probe, t2, OK, t2);
    assert_eq!(b.admit(t2, true), Admit::Counted);
    b.answered(Admit::Counted, t2, FAIL, t2);
    assert_eq!(b.admit(t2, true), Admit::Counted);
    assert_eq!(b.series()[0].value, 0, "closed");
}

#[test]
fn old_failures_leave_the_window() {
    let t0 = Instant::now();
    let b = CircuitBreaker::for_test(0.5, 4, secs(10), secs(5), t0);
    for _ in 0..3 {
        b.admit(t0, true);
        b.answered(Admit::Counted, t0, FAIL, t0);
    }
    // Eleven seconds later those three are gone: one more failure is 1 of 1.
    let t1 = t0 + secs(11);
    b.admit(t1, true);
    b.answered(Admit::Counted, t1, FAIL, t1);
    assert_eq!(b.admit(t1, true), Admit::Counted, "still closed");
}

#[test]
fn requests_answered_by_the_policy_are_not_counted() {
    let t0 = Instant::now();
    let b = CircuitBreaker::for_test(0.5, 1, secs(10), secs(5), t0);
    for _ in 0..10 {
        b.admit(t0, true);
        b.answered(Admit::Counted, t0, None, t0);
    }
    assert_eq!(b.admit(t0, true), Admit::Counted);
}

#[test]
fn a_zero_threshold_caps_the_volume_and_not_enforced_rejects_nothing() {
    let t0 = Instant::now();
    // ngrok's example: one request a minute, then two minutes closed off.
    let b = CircuitBreaker::for_test(0.0, 1, secs(60), secs(120), t0);
    b.admit(t0, true);
    b.answered(Admit::Counted, t0, OK, t0);
    assert_eq!(b.admit(t0 + secs(1), true), Admit::Rejected);
    // The same, not enforced: counted and tripped, never rejected.
    let watch = CircuitBreaker::for_test(0.0, 1, secs(60), secs(120), t0);
    watch.admit(t0, false);
    watch.answered(Admit::Counted, t0, OK, t0);
    assert_eq!(watch.admit(t0 + secs(1), false), Admit::Counted);
    assert_eq!(watch.series()[1].value, 1, "it tripped");
    assert_eq!(watch.series()[2].value, 0, "nothing rejected");
}
