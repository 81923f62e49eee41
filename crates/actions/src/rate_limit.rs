//! `rate-limit` (spec §3.6): at most `capacity` requests per `rate` per
//! bucket, the bucket named by the values of the `bucket_key`
//! expressions. The window slides: the previous window's count, weighted
//! by how much of it still overlaps the last `rate`, plus the current
//! window's count (the approximation Cloudflare and ngrok describe,
//! `portcullis_state::sliding_window`). A request over the limit gets 429
//! with `retry-after` (seconds), unless `enforce: false`.
//!
//! Without a state store, counts live in the process, per compiled policy
//! (a reload starts them afresh), as ngrok counts per ingress server. With
//! one (`state:`), every replica counts in the same bucket on the store,
//! named by a digest of the action's configuration and the bucket key, so
//! that replicas loading the same policy share it and a reload keeps it.
//! When the store does not answer in time, the request is counted as the
//! state's `on_error` says: in the local bucket (the default), or let
//! through, or refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use http::StatusCode;
use http::header::{HeaderValue, RETRY_AFTER};
use portcullis_cel::{CompileOptions, Diagnostic, Program, Str, Value};
use portcullis_state::{OnError, sliding_window};

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
    shared: Option<Shared>,
}

/// Counting on the state store.
#[derive(Debug)]
struct Shared {
    state: portcullis_state::State,
    /// The rule's identity on the store: the configuration that makes it
    /// this limit (name, capacity, rate, bucket keys).
    rule: Vec<u8>,
    capacity: u64,
    window: std::time::Duration,
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
    let shared = cx.state.map(|state| {
        let mut rule = Vec::new();
        for part in [cfg.str("name").unwrap_or(""), &capacity.to_string(), rate] {
            rule.extend_from_slice(part.as_bytes());
            rule.push(0);
        }
        for node in cfg.seq("bucket_key") {
            rule.extend_from_slice(node.scalar().map_or("", |s| s.value.as_str()).as_bytes());
            rule.push(0);
        }
        Shared {
            state: state.clone(),
            rule,
            capacity,
            window: std::time::Duration::from_nanos(nanos),
        }
    });
    Ok(Box::new(RateLimit {
        keys,
        enforce: cfg.bool("enforce", true),
        window: Window::new(capacity, nanos),
        bucket_key: cx.result("actions.ngrok.rate_limit.bucket_key"),
        limited: cx.result("actions.ngrok.rate_limit.limited"),
        shared,
    }))
}

impl Action for RateLimit {
    fn kind(&self) -> &'static str {
        "rate-limit"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        match &self.shared {
            None => Run::Done(self.limit(ctx)),
            Some(shared) => Run::Wait(Box::pin(self.limit_shared(ctx, shared))),
        }
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
        let key = self.bucket_key.map(|_| key.into_owned());
        self.decide(ctx, key, verdict)
    }

    /// Counts on the store, or as `on_error` says when it fails.
    async fn limit_shared(
        &self,
        ctx: &mut RequestCtx,
        shared: &Shared,
    ) -> Result<Step, ActionError> {
        let key = self.key(ctx)?.into_owned();
        let bucket = portcullis_state::bucket_id(&shared.rule, &key);
        let verdict = match shared
            .state
            .hit(&bucket, shared.capacity, shared.window)
            .await
        {
            Ok(verdict) => verdict,
            Err(_) => {
                let to = shared.state.on_error();
                shared.state.fell_back(to);
                match to {
                    OnError::Local => self.window.hit(&key, self.window.since(ctx.received_at())),
                    OnError::Allow => None,
                    OnError::Deny => Some(1),
                }
            }
        };
        self.decide(ctx, Some(key), verdict)
    }

    /// Records the results and answers 429 when the bucket is full.
    fn decide(
        &self,
        ctx: &mut RequestCtx,
        key: Option<String>,
        verdict: Option<u64>,
    ) -> Result<Step, ActionError> {
        let recorded = self
            .bucket_key
            .zip(key)
            .map(|(var, key)| (var, Value::string(key)));
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
        let window = std::time::Duration::from_nanos(self.nanos);
        let verdict = sliding_window(b.previous, b.current, into, self.capacity, window);
        if verdict.is_none() {
            b.current += 1;
        }
        verdict
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
