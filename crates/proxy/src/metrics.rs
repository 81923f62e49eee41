//! Prometheus metrics.
//!
//! [`Metrics`] keeps every series the proxy exports in plain atomics, so that
//! recording on the request path takes no lock and allocates nothing;
//! [`Metrics::render`] turns them into the Prometheus text exposition format
//! 0.0.4 when `/metrics` is scraped. Every label set is fixed before the first
//! request: status classes and upstream error kinds are closed lists, and each
//! endpoint's (phase, rule, action) triples are fixed when its policy is
//! compiled, so no request input can create a series. Policy decisions are
//! counted by the compiled pipelines themselves; the admin listener passes
//! their counts to [`Metrics::render`] as [`DecisionCount`]s.
//!
//! Counters are updated with `Ordering::Relaxed`: each one stands alone, and a
//! scrape that races a request may see it in one series and not yet in
//! another, which Prometheus tolerates (client_golang makes the same trade).
//! The histogram's `_count` is the sum of its buckets rather than a counter of
//! its own, so the two always agree within a scrape.
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every series the proxy exports, shared as an `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    // INVARIANT: one counter per entry of `STATUS_CLASSES`, in the same order.
    requests: [AtomicU64; STATUS_CLASSES.len()],
    duration: Histogram,
    // INVARIANT: one counter per `UpstreamErrorKind`, indexed by its discriminant.
    upstream_errors: [AtomicU64; UpstreamErrorKind::ALL.len()],
    // INVARIANT: one counter per `ClientErrorKind`, indexed by its discriminant.
    client_errors: [AtomicU64; ClientErrorKind::ALL.len()],
    // INVARIANT: one counter per `CloseReason`, indexed by its discriminant.
    closed: [AtomicU64; CloseReason::ALL.len()],
    reloads_ok: AtomicU64,
    reloads_error: AtomicU64,
    /// Nanoseconds since the Unix epoch; 0 until a reload succeeds.
    last_reload_success: AtomicU64,
    // INVARIANT: only a `ConnectionGuard` decrements it, once, after its own
    // increment, so it never wraps below zero.
    connections_open: AtomicU64,
}

/// Why a request to an upstream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// No connection (TCP or TLS) could be established.
    Connect,
    /// The upstream did not answer in time.
    Timeout,
    /// The upstream broke HTTP: a malformed response, or a connection closed
    /// mid-response.
    Protocol,
    /// The upstream stopped sending its response body for longer than the
    /// `upstream_read` timeout; the client's response was cut short.
    ReadTimeout,
}

/// Why a client's request was refused before the policy saw it: it has no
/// canonical form, or its body broke HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// The path (`ERR_PORTCULLIS_BAD_PATH`, `ERR_PORTCULLIS_ENCODED_SLASH`).
    Path,
    /// The authority (`ERR_PORTCULLIS_BAD_HOST`).
    Host,
    /// The body's framing (`ERR_PORTCULLIS_CLIENT_BODY`).
    Body,
}

/// Why the proxy closed a client connection on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// No (first) request head, or no first HTTP/2 stream, within
    /// `header_read`.
    HeaderRead,
    /// No request for `idle`: an HTTP/1 keep-alive connection between
    /// requests, an HTTP/2 connection with no open stream.
    Idle,
    /// The client did not read what was written to it within `send`.
    Send,
    /// An HTTP/2 keep-alive ping went unanswered.
    Ping,
    /// A tunnel (WebSocket) carried nothing either way for `tunnel_idle`.
    TunnelIdle,
}

/// How often one endpoint's running policy took one action: a sample of
/// `portcullis_policy_decisions_total`, as passed to [`Metrics::render`].
///
/// The counts live in the compiled pipeline
/// (`portcullis_runtime::Pipeline::decision_counts`), so a reload starts them
/// again from zero, which Prometheus's `rate()` reads as a counter reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionCount<'a> {
    /// The endpoint's public URL (`https://app.example.com`).
    pub endpoint: &'a str,
    /// The phase's key (`on_http_request`).
    pub phase: &'a str,
    /// The rule's name, or its position when it has none.
    pub rule: &'a str,
    /// The action's type (`deny`).
    pub action: &'a str,
    /// How often the action ran.
    pub count: u64,
}

/// Counts one client connection as open until it is dropped; see
/// [`Metrics::connection_opened`].
#[derive(Debug)]
#[must_use = "the connection counts as closed as soon as the guard is dropped"]
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
}

/// Labels of `portcullis_http_requests_total`. HTTP allows status codes up to
/// 999; those outside 100..=599 count as `other` rather than being dropped,
/// so that the counter and the histogram's `_count` agree.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Upper bounds of the request duration histogram: the `le` label as written
/// and the bound in nanoseconds. Writing the label out avoids depending on how
/// floats are formatted.
const DURATION_BUCKETS: [(&str, u64); 14] = [
    ("0.0005", 500_000),
    ("0.001", 1_000_000),
    ("0.0025", 2_500_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("5", 5_000_000_000),
    ("10", 10_000_000_000),
];

const REQUESTS: &str = "portcullis_http_requests_total";
const DURATION: &str = "portcullis_http_request_duration_seconds";
const DECISIONS: &str = "portcullis_policy_decisions_total";
const UPSTREAM_ERRORS: &str = "portcullis_upstream_errors_total";
const RELOADS: &str = "portcullis_policy_reloads_total";
const LAST_RELOAD: &str = "portcullis_policy_last_reload_success_timestamp_seconds";
const CONNECTIONS: &str = "portcullis_connections_open";
const CLIENT_ERRORS: &str = "portcullis_client_errors_total";
const CLOSED: &str = "portcullis_connections_closed_total";

// === impl Metrics ===

impl Metrics {
    /// All counters at zero and no connection open.
    pub fn new() -> Self {
        Metrics {
            requests: [const { AtomicU64::new(0) }; STATUS_CLASSES.len()],
            duration: Histogram::new(),
            upstream_errors: [const { AtomicU64::new(0) }; UpstreamErrorKind::ALL.len()],
            client_errors: [const { AtomicU64::new(0) }; ClientErrorKind::ALL.len()],
            closed: [const { AtomicU64::new(0) }; CloseReason::ALL.len()],
            reloads_ok: AtomicU64::new(0),
            reloads_error: AtomicU64::new(0),
            last_reload_success: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
        }
    }

    /// Records a response sent to a client: its status and how long the
    /// request took.
    pub fn record_request(&self, status: u16, elapsed: Duration) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => STATUS_CLASSES.len() - 1,
        };
        if let Some(counter) = self.requests.get(class) {
            counter.fetch_add(1, Relaxed);
        }
        self.duration.observe(elapsed);
    }

    /// Records a failed request to an upstream.
    pub fn upstream_error(&self, kind: UpstreamErrorKind) {
        if let Some(counter) = self.upstream_errors.get(kind as usize) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Records a request refused as the client's fault.
    pub fn client_error(&self, kind: ClientErrorKind) {
        if let Some(counter) = self.client_errors.get(kind as usize) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Records a client connection the proxy closed, and why.
    pub fn closed(&self, reason: CloseReason) {
        if let Some(counter) = self.closed.get(reason as usize) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Records a policy load that succeeded (`ok`) or failed, finished at
    /// `at`. Call it for the initial load too, so that the timestamp gauge
    /// holds the start-up time until the first reload.
    ///
    /// A time before the Unix epoch reads as 0, like "never".
    pub fn reload(&self, ok: bool, at: SystemTime) {
        if ok {
            let nanos = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |it| u64::try_from(it.as_nanos()).unwrap_or(u64::MAX));
            self.last_reload_success.store(nanos, Relaxed);
            self.reloads_ok.fetch_add(1, Relaxed);
        } else {
            self.reloads_error.fetch_add(1, Relaxed);
        }
    }

    /// Counts a client connection as open until the returned guard is
    /// dropped. A guard rather than a matching `connection_closed` call,
    /// so that an early return or a panicking task cannot leak a count.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_open.fetch_add(1, Relaxed);
        ConnectionGuard {
            metrics: Arc::clone(self),
        }
    }

    /// Every series in the Prometheus text exposition format 0.0.4, with
    /// `decisions` as `portcullis_policy_decisions_total`; serve it with
    /// [`CONTENT_TYPE`].
    ///
    /// Decisions with the same labels (two rules with one name, say) are
    /// reported as one series with their counts summed, because a scrape must
    /// not repeat a label set.
    pub fn render(&self, decisions: &[DecisionCount<'_>]) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a `String` cannot fail.
        let _ = self.encode(&mut out, decisions);
        out
    }

    fn encode(&self, out: &mut String, decisions: &[DecisionCount<'_>]) -> fmt::Result {
        header(
            out,
            REQUESTS,
            "counter",
            "HTTP responses sent to clients, by status class.",
        )?;
        for (class, counter) in STATUS_CLASSES.iter().zip(&self.requests) {
            let n = counter.load(Relaxed);
            writeln!(out, "{REQUESTS}{{status=\"{class}\"}} {n}")?;
        }

        header(
            out,
            DURATION,
            "histogram",
            "Time taken to serve HTTP requests, in seconds.",
        )?;
        self.duration.encode(out)?;

        header(
            out,
            DECISIONS,
            "counter",
            "Actions the running policies took, by endpoint, phase, rule and action; \
             a reload starts the counts again.",
        )?;
        encode_decisions(out, decisions)?;

        header(
            out,
            UPSTREAM_ERRORS,
            "counter",
            "Failed requests to upstreams, by kind of failure.",
        )?;
        for (kind, counter) in UpstreamErrorKind::ALL.iter().zip(&self.upstream_errors) {
            let n = counter.load(Relaxed);
            writeln!(out, "{UPSTREAM_ERRORS}{{kind=\"{}\"}} {n}", kind.label())?;
        }

        header(
            out,
            CLIENT_ERRORS,
            "counter",
            "Requests refused as the client's fault (no canonical form, a broken body), by kind.",
        )?;
        for (kind, counter) in ClientErrorKind::ALL.iter().zip(&self.client_errors) {
            let n = counter.load(Relaxed);
            writeln!(out, "{CLIENT_ERRORS}{{kind=\"{}\"}} {n}", kind.label())?;
        }

        header(
            out,
            CLOSED,
            "counter",
            "Client connections the proxy closed on a timeout, by reason.",
        )?;
        for (reason, counter) in CloseReason::ALL.iter().zip(&self.closed) {
            let n = counter.load(Relaxed);
            writeln!(out, "{CLOSED}{{reason=\"{}\"}} {n}", reason.label())?;
        }

        header(out, RELOADS, "counter", "Policy loads, by result.")?;
        let ok = self.reloads_ok.load(Relaxed);
        let error = self.reloads_error.load(Relaxed);
        writeln!(out, "{RELOADS}{{result=\"ok\"}} {ok}")?;
        writeln!(out, "{RELOADS}{{result=\"error\"}} {error}")?;

        header(
            out,
            LAST_RELOAD,
            "gauge",
            "Unix time of the last successful policy load, in seconds; 0 before the first.",
        )?;
        let at = Duration::from_nanos(self.last_reload_success.load(Relaxed)).as_secs_f64();
        writeln!(out, "{LAST_RELOAD} {at}")?;

        header(
            out,
            CONNECTIONS,
            "gauge",
            "Client connections currently open.",
        )?;
        let open = self.connections_open.load(Relaxed);
        writeln!(out, "{CONNECTIONS} {open}")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

// === impl UpstreamErrorKind ===

impl UpstreamErrorKind {
    // INVARIANT: in discriminant order, so `ALL[kind as usize] == kind`.
    const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Protocol,
        UpstreamErrorKind::ReadTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::ReadTimeout => "read_timeout",
        }
    }
}

impl ClientErrorKind {
    // INVARIANT: in discriminant order, so `ALL[kind as usize] == kind`.
    const ALL: [ClientErrorKind; 3] = [
        ClientErrorKind::Path,
        ClientErrorKind::Host,
        ClientErrorKind::Body,
    ];

    fn label(self) -> &'static str {
        match self {
            ClientErrorKind::Path => "path",
            ClientErrorKind::Host => "host",
            ClientErrorKind::Body => "body",
        }
    }
}

impl CloseReason {
    // INVARIANT: in discriminant order, so `ALL[reason as usize] == reason`.
    const ALL: [CloseReason; 5] = [
        CloseReason::HeaderRead,
        CloseReason::Idle,
        CloseReason::Send,
        CloseReason::Ping,
        CloseReason::TunnelIdle,
    ];

    fn label(self) -> &'static str {
        match self {
            CloseReason::HeaderRead => "header_read",
            CloseReason::Idle => "idle",
            CloseReason::Send => "send",
            CloseReason::Ping => "ping",
            CloseReason::TunnelIdle => "tunnel_idle",
        }
    }
}

// === impl ConnectionGuard ===

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

// === impl Histogram ===

/// The request duration histogram.
#[derive(Debug)]
struct Histogram {
    // Not cumulative: bucket `i` counts observations in (bound `i - 1`,
    // bound `i`], and the extra last bucket those above every bound. That is
    // one increment per request instead of one per bound; `encode` adds them
    // up.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    // Microseconds, rounded to the nearest. Nanoseconds would wrap after
    // 2^64 ns (about three weeks of 10,000 one-second requests a second),
    // and a float would need a compare-and-swap loop.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; DURATION_BUCKETS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // Prometheus bounds are inclusive (`le`): the first bound >= nanos.
        let bucket = DURATION_BUCKETS.partition_point(|&(_, bound)| bound < nanos);
        if let Some(counter) = self.buckets.get(bucket) {
            counter.fetch_add(1, Relaxed);
        }
        let micros = nanos.saturating_add(500) / 1000;
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    fn encode(&self, out: &mut String) -> fmt::Result {
        let mut cumulative = 0u64;
        for ((le, _), counter) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative = cumulative.wrapping_add(counter.load(Relaxed));
            writeln!(out, "{DURATION}_bucket{{le=\"{le}\"}} {cumulative}")?;
        }
        // `zip` stopped with the bounds; the last bucket is the one above them.
        if let Some(counter) = self.buckets.last() {
            cumulative = cumulative.wrapping_add(counter.load(Relaxed));
        }
        writeln!(out, "{DURATION}_bucket{{le=\"+Inf\"}} {cumulative}")?;
        // `u64 as f64` rounds only past 2^53 µs, about 285 years.
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        writeln!(out, "{DURATION}_sum {sum}")?;
        writeln!(out, "{DURATION}_count {cumulative}")
    }
}

// === helpers ===

/// Writes the samples of `portcullis_policy_decisions_total`, one per label
/// set, in the order each set first appears in `decisions`.
fn encode_decisions(out: &mut String, decisions: &[DecisionCount<'_>]) -> fmt::Result {
    // Escaping is one-to-one, so equal raw labels are exactly the equal
    // rendered ones.
    let mut series: Vec<(&DecisionCount<'_>, u64)> = Vec::with_capacity(decisions.len());
    let mut seen: HashMap<(&str, &str, &str, &str), usize> =
        HashMap::with_capacity(decisions.len());
    for d in decisions {
        match seen.entry((d.endpoint, d.phase, d.rule, d.action)) {
            Entry::Occupied(it) => {
                if let Some((_, n)) = series.get_mut(*it.get()) {
                    *n = n.saturating_add(d.count);
                }
            }
            Entry::Vacant(it) => {
                it.insert(series.len());
                series.push((d, d.count));
            }
        }
    }
    for (d, n) in series {
        out.push_str(DECISIONS);
        out.push('{');
        push_label(out, "endpoint", d.endpoint);
        out.push(',');
        push_label(out, "phase", d.phase);
        out.push(',');
        push_label(out, "rule", d.rule);
        out.push(',');
        push_label(out, "action", d.action);
        writeln!(out, "}} {n}")?;
    }
    Ok(())
}

/// Writes the `# HELP` and `# TYPE` lines that open a metric family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

/// Appends `name="value"`, escaping the value as the exposition format
/// requires: backslash, double quote and line feed.
fn push_label(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;

/// A series an action reports (`Action::series`), with the labels of the
/// action it came from.
#[derive(Clone, Copy, Debug)]
pub struct ActionSeries<'a> {
    /// The endpoint's URL.
    pub endpoint: &'a str,
    /// The phase's key.
    pub phase: &'a str,
    /// The rule's name or position.
    pub rule: &'a str,
    /// The series.
    pub series: portcullis_actions::Series,
}

/// Appends the actions' own series (a circuit breaker's state, trips and
/// rejections), one family per name, labelled by endpoint, phase and rule.
/// Two actions of one rule with the same series are one line: counters
/// summed, the first gauge kept, as a scrape must not repeat a label set.
pub fn render_action_series(out: &mut String, all: &[ActionSeries<'_>]) {
    let mut names: Vec<&portcullis_actions::Series> = Vec::new();
    for a in all {
        if !names.iter().any(|n| n.name == a.series.name) {
            names.push(&a.series);
        }
    }
    for family in names {
        let kind = if family.counter { "counter" } else { "gauge" };
        let _ = header(out, family.name, kind, family.help);
        let mut lines: Vec<(&ActionSeries<'_>, u64)> = Vec::new();
        for a in all.iter().filter(|a| a.series.name == family.name) {
            match lines
                .iter_mut()
                .find(|(b, _)| (b.endpoint, b.phase, b.rule) == (a.endpoint, a.phase, a.rule))
            {
                Some((_, v)) if family.counter => *v = v.saturating_add(a.series.value),
                Some(_) => {}
                None => lines.push((a, a.series.value)),
            }
        }
        for (a, v) in lines {
            out.push_str(family.name);
            out.push('{');
            push_label(out, "endpoint", a.endpoint);
            out.push(',');
            push_label(out, "phase", a.phase);
            out.push(',');
            push_label(out, "rule", a.rule);
            let _ = writeln!(out, "}} {v}");
        }
    }
}

/// The state store's series, after [`Metrics::render`]'s:
/// `portcullis_state_up` (1 while calls succeed), the errors, and the
/// rate-limit decisions made without the store, by what they fell back to.
pub fn render_state(out: &mut String, stats: &portcullis_state::Stats) {
    let _ = encode_state(out, stats);
}

fn encode_state(out: &mut String, stats: &portcullis_state::Stats) -> fmt::Result {
    const UP: &str = "portcullis_state_up";
    const ERRORS: &str = "portcullis_state_errors_total";
    const FALLBACKS: &str = "portcullis_state_fallbacks_total";
    header(
        out,
        UP,
        "gauge",
        "1 while the shared state store answers (and without one), 0 during a failure episode.",
    )?;
    writeln!(out, "{UP} {}", u8::from(stats.up))?;
    header(
        out,
        ERRORS,
        "counter",
        "Calls to the shared state store that failed or timed out.",
    )?;
    writeln!(out, "{ERRORS} {}", stats.errors)?;
    header(
        out,
        FALLBACKS,
        "counter",
        "Shared rate-limit decisions made without the store, by what they fell back to.",
    )?;
    for (to, n) in stats.fallbacks {
        writeln!(out, "{FALLBACKS}{{use=\"rate_limit\",to=\"{to}\"}} {n}")?;
    }
    Ok(())
}
