//! `circuit-breaker` (ngrok's Traffic Policy action): when the upstream
//! fails too often, stop sending it traffic for a while and answer 503
//! (`ERR_NGROK_3202`) instead, then let one request through to see whether
//! it recovered.
//!
//! - **Counting.** Every request this action lets through is counted, in
//!   the bucket of its arrival, once the upstream answered: an error is a
//!   5xx, the proxy's own 502 and 504 (unreachable, no answer in time)
//!   included. A request the policy answered itself, or whose client went
//!   away first, is not counted. The window (`window_duration`) is
//!   `num_buckets` (10, as ngrok fixes it) buckets, so old counts leave it
//!   a tenth at a time.
//! - **Tripping.** Once the window holds at least `volume_threshold`
//!   requests and the share of errors is at least `error_threshold`, the
//!   breaker opens: for `tripped_duration` every request is answered 503.
//!   `error_threshold: 0` thus caps the volume itself (ngrok's "one
//!   request a minute" example).
//! - **Probing.** After that, the next request goes through alone (the
//!   others still get 503): if the upstream answers without a 5xx, the
//!   breaker closes with an empty window; if not, it opens again. A probe
//!   that never reaches the upstream frees the slot for the next.
//! - **Scope.** One breaker per action of a loaded policy, shared by every
//!   worker thread of the process; a reload starts a new one, closed.
//!   `enforce: false` counts and trips (the metrics show it) but rejects
//!   nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use portcullis_cel::Diagnostic;

use crate::action::{Config, Series};
use crate::{Action, CompileCx, RequestCtx, Run, Step, respond};

#[cfg(test)]
mod tests;

/// ngrok's code for a request the breaker rejected.
pub(crate) const TRIPPED: &str = "ERR_NGROK_3202";
/// Buckets in the window: ngrok fixes it at 10.
const BUCKETS: u32 = 10;

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    breaker: Arc<Breaker>,
    enforce: bool,
}

/// The settings of a breaker.
#[derive(Clone, Copy, Debug)]
struct Settings {
    error_threshold: f64,
    volume_threshold: u64,
    window: Duration,
    tripped: Duration,
}

/// The shared state of one breaker.
#[derive(Debug)]
struct Breaker {
    settings: Settings,
    /// When the breaker was made: buckets are numbered from it.
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// `(bucket number, requests, errors)`, the bucket number telling
    /// whether a slot still belongs to the window.
    buckets: [(u64, u64, u64); BUCKETS as usize],
    circuit: Circuit,
    trips: u64,
    rejected: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Circuit {
    Closed,
    Open {
        until: Instant,
    },
    /// Open no more; `probing`: the one request let through is in flight.
    HalfOpen {
        probing: bool,
    },
}

/// What the breaker decided for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admit {
    /// Through, counted in the window.
    Counted,
    /// Through, as the probe of a half-open breaker.
    Probe,
    /// Rejected.
    Rejected,
}

pub(crate) fn compile(cfg: Config<'_>, _cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let duration = |key: &str, default: Duration| -> Result<Duration, Diagnostic> {
        match cfg.str(key) {
            None => Ok(default),
            Some(text) => portcullis_cel::time::Duration::parse(text)
                .ok()
                .and_then(|d| u64::try_from(d.nanos()).ok())
                .filter(|n| *n > 0)
                .map(Duration::from_nanos)
                .ok_or_else(|| cfg.error(cfg.get(key), format!("`{text}` is not a duration"))),
        }
    };
    let error_threshold = match cfg.str("error_threshold") {
        None => 0.5,
        Some(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| {
                cfg.error(
                    cfg.get("error_threshold"),
                    "`error_threshold` must be between 0.0 and 1.0",
                )
            })?,
    };
    let volume_threshold = match cfg.int("volume_threshold") {
        None if cfg.get("volume_threshold").is_none() => 10,
        n => n
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| (1..=2_000_000_000).contains(n))
            .ok_or_else(|| {
                cfg.error(
                    cfg.get("volume_threshold"),
                    "`volume_threshold` must be between 1 and 2000000000",
                )
            })?,
    };
    let settings = Settings {
        error_threshold,
        volume_threshold,
        window: duration("window_duration", Duration::from_secs(10))?,
        tripped: duration("tripped_duration", Duration::from_secs(10))?,
    };
    Ok(Box::new(CircuitBreaker {
        breaker: Arc::new(Breaker::new(settings, Instant::now())),
        enforce: cfg.bool("enforce", true),
    }))
}

impl Action for CircuitBreaker {
    fn kind(&self) -> &'static str {
        "circuit-breaker"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        let now = ctx.received_at();
        let admit = self.breaker.admit(now, self.enforce);
        if admit == Admit::Rejected {
            ctx.set_response(respond::error(
                StatusCode::SERVICE_UNAVAILABLE,
                TRIPPED,
                "the upstream is failing: the circuit breaker is open",
            ));
            return Run::Done(Ok(Step::Respond));
        }
        let breaker = self.breaker.clone();
        ctx.watch_upstream(Box::new(move |status| {
            breaker.answered(admit, now, status, Instant::now());
        }));
        Run::Done(Ok(Step::Next))
    }

    fn series(&self) -> Vec<Series> {
        self.breaker.series()
    }
}

impl Breaker {
    fn new(settings: Settings, epoch: Instant) -> Breaker {
        Breaker {
            settings,
            epoch,
            state: Mutex::new(State {
                buckets: [(0, 0, 0); BUCKETS as usize],
                circuit: Circuit::Closed,
                trips: 0,
                rejected: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves counts, not a
        // broken invariant: go on with them.
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// The number of the bucket `at` falls in.
    fn bucket(&self, at: Instant) -> u64 {
        let width = (self.settings.window / BUCKETS).as_nanos().max(1);
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos() / width)
            .unwrap_or(u64::MAX)
    }

    /// Whether a request arriving `now` goes through.
    fn admit(&self, now: Instant, enforce: bool) -> Admit {
        let mut s = self.state();
        let admit = match s.circuit {
            Circuit::Closed => Admit::Counted,
            Circuit::Open { until } if now < until => Admit::Rejected,
            Circuit::Open { .. } | Circuit::HalfOpen { probing: false } => {
                s.circuit = Circuit::HalfOpen { probing: true };
                Admit::Probe
            }
            Circuit::HalfOpen { probing: true } => Admit::Rejected,
        };
        match (admit, enforce) {
            (Admit::Rejected, true) => {
                s.rejected += 1;
                Admit::Rejected
            }
            // Not enforced: what would have been rejected is counted.
            (Admit::Rejected, false) => Admit::Counted,
            (a, _) => a,
        }
    }

    /// Records how the upstream answered a request admitted as `admit`
    /// at `arrived` (`None`: it never reached the upstream).
    fn answered(&self, admit: Admit, arrived: Instant, status: Option<StatusCode>, now: Instant) {
        let mut s = self.state();
        let Some(status) = status else {
            if admit == Admit::Probe && s.circuit == (Circuit::HalfOpen { probing: true }) {
                s.circuit = Circuit::HalfOpen { probing: false };
            }
            return;
        };
        let failed = status.is_server_error();
        if admit == Admit::Probe {
            if failed {
                s.circuit = Circuit::Open {
                    until: now + self.settings.tripped,
                };
                s.trips += 1;
            } else {
                s.circuit = Circuit::Closed;
                s.buckets = [(0, 0, 0); BUCKETS as usize];
            }
            return;
        }
        let n = self.bucket(arrived);
        let current = self.bucket(now);
        if current.saturating_sub(n) >= u64::from(BUCKETS) {
            // Answered after its bucket left the window.
            return;
        }
        let slot = &mut s.buckets[(n % u64::from(BUCKETS)) as usize];
        if slot.0 != n {
            *slot = (n, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u64::from(failed);
        if s.circuit != Circuit::Closed {
            return;
        }
        let (requests, errors) = s
            .buckets
            .iter()
            .filter(|(b, _, _)| current.saturating_sub(*b) < u64::from(BUCKETS) && *b <= current)
            .fold((0, 0), |(r, e), (_, br, be)| (r + br, e + be));
        #[allow(clippy::cast_precision_loss, reason = "a share, not a count")]
        let share = errors as f64 / requests.max(1) as f64;
        if requests >= self.settings.volume_threshold && share >= self.settings.error_threshold {
            s.circuit = Circuit::Open {
                until: now + self.settings.tripped,
            };
            s.trips += 1;
        }
    }

    fn series(&self) -> Vec<Series> {
        let s = self.state();
        let state = match s.circuit {
            Circuit::Closed => 0,
            Circuit::Open { until } if Instant::now() < until => 1,
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => 2,
        };
        vec![
            Series {
                name: "portcullis_circuit_breaker_state",
                help: "Each circuit breaker's state: 0 closed, 1 open, 2 half-open (the next request probes).",
                counter: false,
                value: state,
            },
            Series {
                name: "portcullis_circuit_breaker_trips_total",
                help: "Times each circuit breaker opened.",
                counter: true,
                value: s.trips,
            },
            Series {
                name: "portcullis_circuit_breaker_rejected_total",
                help: "Requests each circuit breaker answered 503 instead of the upstream.",
                counter: true,
                value: s.rejected,
            },
        ]
    }
}

/// The unit tests' view of a breaker: no clock of its own.
#[cfg(test)]
impl CircuitBreaker {
    fn for_test(
        error_threshold: f64,
        volume_threshold: u64,
        window: Duration,
        tripped: Duration,
        epoch: Instant,
    ) -> Arc<Breaker> {
        Arc::new(Breaker::new(
            Settings {
                error_threshold,
                volume_threshold,
                window,
                tripped,
            },
            epoch,
        ))
    }
}
