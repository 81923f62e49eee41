//! What a scrape of [`Metrics`] shows after known sequences of records.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{CONTENT_TYPE, DecisionCount, Metrics, UpstreamErrorKind};

#[test]
fn render_after_a_known_sequence() {
    let metrics = Arc::new(Metrics::new());
    metrics.record_request(200, Duration::from_micros(300));
    metrics.record_request(204, Duration::from_millis(1));
    metrics.record_request(301, Duration::from_millis(20));
    metrics.record_request(404, Duration::from_millis(3));
    metrics.record_request(503, Duration::from_secs(12));
    metrics.upstream_error(UpstreamErrorKind::Timeout);
    metrics.upstream_error(UpstreamErrorKind::Connect);
    metrics.upstream_error(UpstreamErrorKind::Timeout);
    metrics.reload(
        false,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    );
    metrics.reload(
        true,
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
    );
    let decisions = [
        decision("http://a.test", "on_http_request", "block-bots", "deny", 2),
        decision("http://a.test", "on_http_request", "#2", "deny", 1),
        decision("https://b.test", "on_http_request", "block-bots", "deny", 0),
    ];
    let _open = metrics.connection_opened();
    drop(metrics.connection_opened());

    let expected = r##"# HELP portcullis_http_requests_total HTTP responses sent to clients, by status class.
# TYPE portcullis_http_requests_total counter
portcullis_http_requests_total{status="1xx"} 0
portcullis_http_requests_total{status="2xx"} 2
portcullis_http_requests_total{status="3xx"} 1
portcullis_http_requests_total{status="4xx"} 1
portcullis_http_requests_total{status="5xx"} 1
portcullis_http_requests_total{status="other"} 0
# HELP portcullis_http_request_duration_seconds Time taken to serve HTTP requests, in seconds.
# TYPE portcullis_http_request_duration_seconds histogram
portcullis_http_request_duration_seconds_bucket{le="0.0005"} 1
portcullis_http_request_duration_seconds_bucket{le="0.001"} 2
portcullis_http_request_duration_seconds_bucket{le="0.0025"} 2
portcullis_http_request_duration_seconds_bucket{le="0.005"} 3
portcullis_http_request_duration_seconds_bucket{le="0.01"} 3
portcullis_http_request_duration_seconds_bucket{le="0.025"} 4
portcullis_http_request_duration_seconds_bucket{le="0.05"} 4
portcullis_http_request_duration_seconds_bucket{le="0.1"} 4
portcullis_http_request_duration_seconds_bucket{le="0.25"} 4
portcullis_http_request_duration_seconds_bucket{le="0.5"} 4
portcullis_http_request_duration_seconds_bucket{le="1"} 4
portcullis_http_request_duration_seconds_bucket{le="2.5"} 4
portcullis_http_request_duration_seconds_bucket{le="5"} 4
portcullis_http_request_duration_seconds_bucket{le="10"} 4
portcullis_http_request_duration_seconds_bucket{le="+Inf"} 5
portcullis_http_request_duration_seconds_sum 12.0243
portcullis_http_request_duration_seconds_count 5
# HELP portcullis_policy_decisions_total Actions the running policies took, by endpoint, phase, rule and action; a reload starts the counts again.
# TYPE portcullis_policy_decisions_total counter
portcullis_policy_decisions_total{endpoint="http://a.test",phase="on_http_request",rule="block-bots",action="deny"} 2
portcullis_policy_decisions_total{endpoint="http://a.test",phase="on_http_request",rule="#2",action="deny"} 1
portcullis_policy_decisions_total{endpoint="https://b.test",phase="on_http_request",rule="block-bots",action="deny"} 0
# HELP portcullis_upstream_errors_total Failed requests to upstreams, by kind of failure.
# TYPE portcullis_upstream_errors_total counter
portcullis_upstream_errors_total{kind="connect"} 1
portcullis_upstream_errors_total{kind="timeout"} 2
portcullis_upstream_errors_total{kind="protocol"} 0
portcullis_upstream_errors_total{kind="read_timeout"} 0
# HELP portcullis_client_errors_total Requests refused as the client's fault (no canonical form, a broken body), by kind.
# TYPE portcullis_client_errors_total counter
portcullis_client_errors_total{kind="path"} 0
portcullis_client_errors_total{kind="host"} 0
portcullis_client_errors_total{kind="body"} 0
# HELP portcullis_connections_closed_total Client connections the proxy closed on a timeout, by reason.
# TYPE portcullis_connections_closed_total counter
portcullis_connections_closed_total{reason="header_read"} 0
portcullis_connections_closed_total{reason="idle"} 0
portcullis_connections_closed_total{reason="send"} 0
portcullis_connections_closed_total{reason="ping"} 0
portcullis_connections_closed_total{reason="tunnel_idle"} 0
# HELP portcullis_policy_reloads_total Policy loads, by result.
# TYPE portcullis_policy_reloads_total counter
portcullis_policy_reloads_total{result="ok"} 1
portcullis_policy_reloads_total{result="error"} 1
# HELP portcullis_policy_last_reload_success_timestamp_seconds Unix time of the last successful policy load, in seconds; 0 before the first.
# TYPE portcullis_policy_last_reload_success_timestamp_seconds gauge
portcullis_policy_last_reload_success_timestamp_seconds 1700000000.25
# HELP portcullis_connections_open Client connections currently open.
# TYPE portcullis_connections_open gauge
portcullis_connections_open 1
"##;
    let text = metrics.render(&decisions);
    assert_eq!(text, expected);
    check_exposition(&text);
}

#[test]
fn a_fresh_registry_renders_every_fixed_series_at_zero() {
    let text = Metrics::new().render(&[]);
    check_exposition(&text);
    for series in [
        r#"portcullis_http_requests_total{status="2xx"}"#,
        r#"portcullis_http_request_duration_seconds_bucket{le="+Inf"}"#,
        "portcullis_http_request_duration_seconds_sum",
        "portcullis_http_request_duration_seconds_count",
        r#"portcullis_upstream_errors_total{kind="protocol"}"#,
        r#"portcullis_policy_reloads_total{result="error"}"#,
        "portcullis_policy_last_reload_success_timestamp_seconds",
        "portcullis_connections_open",
    ] {
        assert_eq!(value(&text, series), 0.0, "{series}");
    }
    // No decisions: the family is announced, with no series.
    assert!(text.contains("# TYPE portcullis_policy_decisions_total counter\n"));
    assert!(!text.contains("portcullis_policy_decisions_total{"));
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}

#[test]
fn histogram_buckets_are_cumulative_with_inclusive_bounds() {
    let metrics = Metrics::new();
    let samples = [
        Duration::ZERO,
        Duration::from_micros(500),    // on the first bound: le="0.0005"
        Duration::from_nanos(500_001), // just past it: le="0.001"
        Duration::from_millis(250),    // le="0.25"
        Duration::from_millis(250),    // le="0.25"
        Duration::from_secs(10),       // on the last bound: le="10"
        Duration::from_nanos(10_000_000_001), // past it: only +Inf
        Duration::MAX,                 // only +Inf, without overflowing
    ];
    for elapsed in samples {
        metrics.record_request(200, elapsed);
    }
    let text = metrics.render(&[]);
    check_exposition(&text);

    let buckets = buckets(&text);
    let expected = [
        ("0.0005", 2.0),
        ("0.001", 3.0),
        ("0.0025", 3.0),
        ("0.005", 3.0),
        ("0.01", 3.0),
        ("0.025", 3.0),
        ("0.05", 3.0),
        ("0.1", 3.0),
        ("0.25", 5.0),
        ("0.5", 5.0),
        ("1", 5.0),
        ("2.5", 5.0),
        ("5", 5.0),
        ("10", 6.0),
        ("+Inf", 8.0),
    ];
    let expected: Vec<(String, f64)> = expected.iter().map(|&(le, n)| (le.to_owned(), n)).collect();
    assert_eq!(buckets, expected);
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1));
    assert_eq!(
        value(&text, "portcullis_http_request_duration_seconds_count"),
        8.0
    );
    assert_eq!(
        value(&text, r#"portcullis_http_requests_total{status="2xx"}"#),
        8.0
    );
}

#[test]
fn histogram_sum_is_in_seconds_rounded_to_the_microsecond() {
    let metrics = Metrics::new();
    metrics.record_request(200, Duration::from_millis(1500));
    metrics.record_request(200, Duration::from_micros(250));
    // 1.4 µs rounds down, 1.5 µs up.
    metrics.record_request(200, Duration::from_nanos(1_400));
    metrics.record_request(200, Duration::from_nanos(1_500));
    let text = metrics.render(&[]);
    assert!(text.contains("\nportcullis_http_request_duration_seconds_sum 1.500253\n"));
    assert!(text.contains("\nportcullis_http_request_duration_seconds_count 4\n"));
}

#[test]
fn status_codes_count_by_class() {
    let metrics = Metrics::new();
    for status in [101, 200, 299, 300, 399, 400, 499, 500, 599, 600, 999, 0, 99] {
        metrics.record_request(status, Duration::ZERO);
    }
    let text = metrics.render(&[]);
    let counts: Vec<(&str, f64)> = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
        .into_iter()
        .map(|class| {
            let series = format!("portcullis_http_requests_total{{status=\"{class}\"}}");
            (class, value(&text, &series))
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("1xx", 1.0),
            ("2xx", 2.0),
            ("3xx", 2.0),
            ("4xx", 2.0),
            ("5xx", 2.0),
            ("other", 4.0)
        ]
    );
    assert_eq!(
        value(&text, "portcullis_http_request_duration_seconds_count"),
        13.0
    );
}

#[test]
fn label_values_are_escaped() {
    let decisions = [decision(
        "http://a.test/\"x\"",
        "on_http_request",
        "say \"hi\"\\\nbye é",
        "deny",
        1,
    )];
    let text = Metrics::new().render(&decisions);
    assert!(
        text.contains(
            "\nportcullis_policy_decisions_total{endpoint=\"http://a.test/\\\"x\\\"\",\
             phase=\"on_http_request\",rule=\"say \\\"hi\\\"\\\\\\nbye é\",action=\"deny\"} 1\n"
        ),
        "{text}"
    );
    check_exposition(&text);
}

#[test]
fn identical_label_sets_are_merged() {
    let decisions = [
        decision("http://a.test", "on_http_request", "dup", "deny", 2),
        decision("http://a.test", "on_http_request", "other", "deny", 0),
        decision("http://a.test", "on_http_request", "dup", "deny", 3),
        // Differs from the first only in one label each: series of their own.
        decision("http://b.test", "on_http_request", "dup", "deny", 7),
        decision("http://a.test", "on_http_response", "dup", "deny", 11),
        decision("http://a.test", "on_http_request", "dup", "rate_limit", 13),
        decision("http://a.test", "on_http_request", "dup", "deny", u64::MAX),
    ];
    let text = Metrics::new().render(&decisions);
    check_exposition(&text);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("portcullis_policy_decisions_total{"))
        .collect();
    assert_eq!(
        lines,
        [
            // In order of first appearance; the sum saturates rather than wraps.
            r#"portcullis_policy_decisions_total{endpoint="http://a.test",phase="on_http_request",rule="dup",action="deny"} 18446744073709551615"#,
            r#"portcullis_policy_decisions_total{endpoint="http://a.test",phase="on_http_request",rule="other",action="deny"} 0"#,
            r#"portcullis_policy_decisions_total{endpoint="http://b.test",phase="on_http_request",rule="dup",action="deny"} 7"#,
            r#"portcullis_policy_decisions_total{endpoint="http://a.test",phase="on_http_response",rule="dup",action="deny"} 11"#,
            r#"portcullis_policy_decisions_total{endpoint="http://a.test",phase="on_http_request",rule="dup",action="rate_limit"} 13"#,
        ]
    );
}

#[test]
fn duplicates_sum_their_counts() {
    let decisions = [
        decision("http://a.test", "on_http_request", "dup", "deny", 2),
        decision("http://a.test", "on_http_request", "dup", "deny", 3),
    ];
    let text = Metrics::new().render(&decisions);
    check_exposition(&text);
    assert_eq!(
        value(
            &text,
            r#"portcullis_policy_decisions_total{endpoint="http://a.test",phase="on_http_request",rule="dup",action="deny"}"#
        ),
        5.0
    );
}

#[test]
fn failed_reloads_keep_the_last_success_time() {
    let metrics = Metrics::new();
    let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let last = "portcullis_policy_last_reload_success_timestamp_seconds";
    metrics.reload(false, at(100));
    assert_eq!(value(&metrics.render(&[]), last), 0.0);
    metrics.reload(true, at(1_700_000_000));
    metrics.reload(false, at(1_700_000_100));
    let text = metrics.render(&[]);
    assert_eq!(value(&text, last), 1_700_000_000.0);
    assert_eq!(
        value(&text, r#"portcullis_policy_reloads_total{result="error"}"#),
        2.0
    );
    // Before the epoch reads as "never" rather than failing.
    metrics.reload(true, SystemTime::UNIX_EPOCH - Duration::from_secs(1));
    assert_eq!(value(&metrics.render(&[]), last), 0.0);
}

#[test]
fn connection_guards_count_open_connections() {
    let metrics = Arc::new(Metrics::new());
    let open = "portcullis_connections_open";
    let a = metrics.connection_opened();
    let b = metrics.connection_opened();
    assert_eq!(value(&metrics.render(&[]), open), 2.0);
    drop(a);
    assert_eq!(value(&metrics.render(&[]), open), 1.0);
    // A guard moved into a task that panics still closes the connection.
    let task = std::thread::spawn(move || {
        let _b = b;
        panic!("connection task failed");
    });
    assert!(task.join().is_err());
    assert_eq!(value(&metrics.render(&[]), open), 0.0);
}

#[test]
fn concurrent_records_are_all_counted() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 10_000;
    let metrics = Arc::new(Metrics::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..PER_THREAD {
                    let _conn = metrics.connection_opened();
                    metrics.record_request(200, Duration::from_millis(2));
                    metrics.upstream_error(UpstreamErrorKind::Protocol);
                }
            });
        }
    });
    let total = (THREADS * PER_THREAD) as f64;
    let text = metrics.render(&[]);
    check_exposition(&text);
    assert_eq!(
        value(&text, r#"portcullis_http_requests_total{status="2xx"}"#),
        total
    );
    assert_eq!(
        value(
            &text,
            r#"portcullis_http_request_duration_seconds_bucket{le="0.0025"}"#
        ),
        total
    );
    assert_eq!(
        value(&text, "portcullis_http_request_duration_seconds_sum"),
        total * 0.002
    );
    assert_eq!(
        value(
            &text,
            r#"portcullis_upstream_errors_total{kind="protocol"}"#
        ),
        total
    );
    assert_eq!(value(&text, "portcullis_connections_open"), 0.0);
}

#[test]
fn metrics_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Metrics>();
    assert_send_sync::<super::ConnectionGuard>();
}

#[test]
fn the_format_check_rejects_malformed_text() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n";
    check_exposition(good);
    for bad in [
        // An unescaped quote in a label value.
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"\"\"} 1\n",
        // No TYPE.
        "# HELP a_total A.\na_total 1\n",
        // A series twice.
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n",
        // A bucket without `le`.
        "# HELP h A.\n# TYPE h histogram\nh_bucket 1\n",
        // No final line feed.
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1",
    ] {
        let res = std::panic::catch_unwind(|| check_exposition(bad));
        assert!(res.is_err(), "accepted: {bad:?}");
    }
}

// === helpers ===

fn decision<'a>(
    endpoint: &'a str,
    phase: &'a str,
    rule: &'a str,
    action: &'a str,
    count: u64,
) -> DecisionCount<'a> {
    DecisionCount {
        endpoint,
        phase,
        rule,
        action,
        count,
    }
}

/// The value of the sample line `series` (name and labels, as rendered).
fn value(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let mut found = text.lines().filter_map(|line| line.strip_prefix(&prefix));
    let Some(value) = found.next() else {
        panic!("no series `{series}` in:\n{text}")
    };
    assert!(found.next().is_none(), "series `{series}` repeated");
    value.parse().unwrap()
}

/// The duration histogram's `(le, cumulative count)` pairs, in order.
fn buckets(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest =
                line.strip_prefix("portcullis_http_request_duration_seconds_bucket{le=\"")?;
            let (le, n) = rest.split_once("\"} ")?;
            Some((le.to_owned(), n.parse().unwrap()))
        })
        .collect()
}

/// Checks `text` against the text exposition format 0.0.4: every line is a
/// `# HELP`, a `# TYPE` or a sample; each family is typed once, before its
/// samples; histogram samples are `_bucket` (with `le`), `_sum` or `_count`;
/// no series repeats.
fn check_exposition(text: &str) {
    assert!(text.ends_with('\n'), "output must end with a line feed");
    let mut typed: Vec<(String, String)> = Vec::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut series: HashSet<String> = HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(is_metric_name(name), "{line}");
            assert!(!help.is_empty(), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP repeated: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(is_metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.iter().all(|(typed, _)| typed != name),
                "TYPE repeated: {line}"
            );
            typed.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment: {line}");

        let (name, labels, value) = parse_sample(line);
        assert!(
            value == "+Inf"
                || value == "-Inf"
                || value == "NaN"
                || value.parse::<f64>().is_ok_and(f64::is_finite),
            "bad value: {line}"
        );
        // Samples belong to the family typed last.
        let (family, kind) = typed.last().unwrap_or_else(|| panic!("untyped: {line}"));
        assert!(helped.contains(family), "no HELP for: {line}");
        match kind.as_str() {
            "histogram" => {
                let suffix = name.strip_prefix(family.as_str()).unwrap_or("");
                assert!(
                    ["_bucket", "_sum", "_count"].contains(&suffix),
                    "not a histogram sample of `{family}`: {line}"
                );
                assert_eq!(
                    suffix == "_bucket",
                    labels.iter().any(|(name, _)| name == "le"),
                    "`le` on buckets only: {line}"
                );
            }
            _ => assert_eq!(name, family, "sample outside its family: {line}"),
        }
        let mut names: Vec<&str> = labels.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), labels.len(), "label repeated: {line}");
        let mut key = labels;
        key.sort();
        assert!(
            series.insert(format!("{name}{key:?}")),
            "series repeated: {line}"
        );
    }
}

/// Splits a sample line into its name, its unescaped labels and its value.
fn parse_sample(line: &str) -> (&str, Vec<(String, String)>, &str) {
    let end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let (name, mut rest) = line.split_at(end);
    assert!(is_metric_name(name), "bad name: {line}");
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest
                .split_once("=\"")
                .unwrap_or_else(|| panic!("bad label: {line}"));
            assert!(is_label_name(label), "bad label name: {line}");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => panic!("bad escape: {line}"),
                    },
                    Some((_, '\n')) => panic!("raw line feed: {line}"),
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value: {line}"),
                }
            };
            labels.push((label.to_owned(), value));
            rest = &after[close + 1..];
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    // Timestamps are allowed by the format but never written by us.
    assert!(!value.contains(' '), "unexpected timestamp: {line}");
    (name, labels, value)
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}
