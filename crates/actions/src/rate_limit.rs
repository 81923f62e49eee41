//! `rate-limit` (spec §3.6): at most `capacity` requests per `rate` per
//! bucket, the bucket named by the values of the `bucket_key`
//! expressions. The window slides: the previous window's count, weighted
//! by how much of it still overlaps the last `rate`, plus the current
//! window's count (the approximation Cloudflare and ngrok describe). A
//! request over the limit gets 429 with `retry-after` (seconds), unless
//! `enforce: false`. Counts live in the process, per compiled policy: a
//! reload starts them afresh.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use portcullis_cel::{CompileOptions, Diagnostic, Program, Str, Value};

use crate::action::Config;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, env, respond};

#[cfg(test)]
mod tests;

/// Buckets per shard before stale ones are first swept. After a sweep the
/// next comes when the shard has doubled, so that sweeping costs O(1) per
/// request amortized even when every bucket is live.
const SWEEP_AT: usize = 1024;
const SHARDS: usize = 16;

#[derive(Debug)]
pub(crate) struct RateLimit {
    keys: Vec<Program>,
    enforce: bool,
    window: Window,
    bucket_key: Option<ResultVar>,
    limited: Option<ResultVar>,
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let capacity = cfg
        .int("capacity")
        .and_then(|c| u64::try_from(c).ok())
        .filter(|c| *c > 0)
        .ok_or_else(|| cfg.error(cfg.get("capacity"), "`capacity` must be a positive integer"))?;
    let rate = cfg.str("rate").unwrap_or("");
    let nanos = portcullis_cel::time::Duration::parse(rate)
        .ok()
        .and_then(|d| u64::try_from(d.nanos()).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| cfg.error(cfg.get("rate"), format!("`{rate}` is not a duration")))?;
    let env = env::env(cx.phase);
    let keys = cfg
        .seq("bucket_key")
        .iter()
        .map(|node| {
            let text = node.scalar().map_or("", |s| s.value.as_str());
            env.compile_with(text, &CompileOptions::default())
                .map_err(|diags| {
                    let mut d = diags
                        .into_iter()
                        .find(Diagnostic::is_error)
                        .unwrap_or_else(|| cfg.error(Some(node), "bucket key does not compile"));
                    d.span = node.value_span(cx.src, d.span);
                    d
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(Box::new(RateLimit {
        keys,
        enforce: cfg.bool("enforce", true),
        window: Window::new(capacity, nanos),
        bucket_key: cx.result("actions.ngrok.rate_limit.bucket_key"),
        limited: cx.result("actions.ngrok.rate_limit.limited"),
    }))
}

impl Action for RateLimit {
    fn kind(&self) -> &'static str {
        "rate-limit"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.limit(ctx))
    }
}

impl RateLimit {
    /// The bucket's name: the keys' values joined by commas. One string
    /// key (the common `conn.client_ip`) is borrowed, not copied.
    fn key<'c>(&'c self, ctx: &'c RequestCtx) -> Result<Cow<'c, str>, ActionError> {
        if let [p] = self.keys.as_slice()
            && let Ok(Value::String(Str::Borrowed(s))) = p.eval(ctx)
        {
            return Ok(Cow::Borrowed(s));
        }
        let mut key = String::new();
        for (i, p) in self.keys.iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            match p.eval(ctx) {
                Ok(Value::String(s)) => key.push_str(&s),
                Ok(v) => key.push_str(&v.display()),
                Err(e) => {
                    return Err(ActionError::internal(
                        "ERR_NGROK_2253",
                        format!(
                            "failed to evaluate a rate-limit bucket key: {}",
                            e.message()
                        ),
                    ));
                }
            }
        }
        Ok(Cow::Owned(key))
    }

    fn limit(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let key = self.key(ctx)?;
        let verdict = self.window.hit(&key, self.window.since(ctx.received_at()));
        let recorded = self
            .bucket_key
            .map(|var| (var, Value::string(key.as_ref())));
        if let Some((var, value)) = recorded {
            ctx.set_result(var, value);
        }
        if let Some(var) = self.limited {
            ctx.set_result(var, Value::Bool(verdict.is_some()));
        }
        match verdict {
            Some(retry_after) if self.enforce => {
                let mut res = respond::status(StatusCode::TOO_MANY_REQUESTS);
                res.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after));
                ctx.set_response(res);
                Ok(Step::Respond)
            }
            _ => Ok(Step::Next),
        }
    }
}

/// Sliding-window counters, sharded by key so that requests for
/// different buckets rarely contend.
#[derive(Debug)]
pub(crate) struct Window {
    capacity: u64,
    nanos: u64,
    origin: Instant,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<Box<str>, Bucket>,
    sweep_at: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// The index of the current window.
    index: u64,
    current: u64,
    previous: u64,
}

impl Window {
    pub(crate) fn new(capacity: u64, nanos: u64) -> Window {
        Window {
            capacity,
            nanos,
            origin: Instant::now(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        sweep_at: SWEEP_AT,
                    })
                })
                .collect(),
        }
    }

    /// Nanoseconds from the window's making to `t` (0 for a request that
    /// arrived before a reload made it).
    fn since(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.origin);
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Counts a request for `key` at `now` (nanoseconds since creation):
    /// `None` when it is within the limit, else the seconds to wait.
    pub(crate) fn hit(&self, key: &str, now: u64) -> Option<u64> {
        let index = now / self.nanos;
        let into = (now % self.nanos) as f64 / self.nanos as f64;
        // INVARIANT: `shard_of` is below `SHARDS`, the number of shards.
        let Some(shard) = self.shards.get(shard_of(key)) else {
            return Some(1);
        };
        let mut shard = match shard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // One lookup for a bucket that exists, as most requests' does;
        // only a new bucket's insertion allocates its key.
        if let Some(b) = shard.buckets.get_mut(key) {
            return self.count(b, index, into);
        }
        if shard.buckets.len() >= shard.sweep_at {
            // A bucket untouched for two windows counts nothing.
            shard.buckets.retain(|_, b| b.index + 1 >= index);
            shard.sweep_at = (shard.buckets.len() * 2).max(SWEEP_AT);
        }
        let b = shard.buckets.entry(key.into()).or_insert(Bucket {
            index,
            current: 0,
            previous: 0,
        });
        self.count(b, index, into)
    }

    /// Counts a request in `b` during window `index`, `into` (0 to 1) of
    /// the way through it: `None` when within the limit, else the seconds
    /// to wait.
    fn count(&self, b: &mut Bucket, index: u64, into: f64) -> Option<u64> {
        if b.index != index {
            b.previous = if b.index + 1 == index { b.current } else { 0 };
            b.current = 0;
            b.index = index;
        }
        let estimate = b.previous as f64 * (1.0 - into) + b.current as f64;
        let capacity = self.capacity as f64;
        if estimate + 1.0 <= capacity {
            b.current += 1;
            return None;
        }
        // When may one more request pass? If this window alone is full,
        // after it ends (plus the moment the new previous needs to decay
        // by one); else when the previous window's weight has decayed
        // enough.
        let wait = if b.current as f64 + 1.0 > capacity {
            (1.0 - into) + 1.0 / capacity
        } else {
            let needed = 1.0 - (capacity - b.current as f64 - 1.0) / b.previous as f64;
            (needed - into).max(0.0)
        };
        let secs = (wait * self.nanos as f64 / 1e9).ceil();
        Some((secs as u64).max(1))
    }
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap, and an attacker choosing keys can at worst crowd one
    // shard's lock, not the map (std's `HashMap` is DoS-resistant).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}
