//! The state that replicas of the proxy share: rate-limit buckets and
//! one-time values (an OAuth `state`, an authorization code, a SAML
//! assertion ID), in this process's memory or on Redis.
//!
//! One replica needs nothing: [`State::memory`] is the default, and the
//! actions keep their own in-process counters (as ngrok counts per ingress
//! server). Two or more replicas behind a load balancer share a Redis
//! ([`State::redis`], `state:` in `portcullis serve`'s config, `--state`
//! on `portcullis http`): a bucket of capacity N then admits N requests
//! in all, not N per replica.
//!
//! Every call to Redis has a deadline ([`StateConfig::timeout`], 50 ms by
//! default), so no request waits on a slow or lost store longer than
//! that. What a failed call means is the caller's choice, made per use
//! and documented there: a rate limit falls back to the replica's local
//! bucket ([`OnError`]). Each episode of failure is logged once, when it
//! begins and when it ends, and every call that failed is counted
//! ([`Stats`]). The connection is made in the background and remade by
//! itself: a proxy starts while Redis is down, and recovers without a
//! restart.
//!
//! The sliding window is the same in both places: the actions' local
//! buckets compute it in Rust, and a Lua script computes it
//! inside Redis, atomically per bucket, on Redis's clock, so that every
//! replica counts against the same windows.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

mod lease;
mod memory;
mod remote;

pub use crate::remote::ParseError;

/// Where the shared state lives, and how calls to it behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateConfig {
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), or
    /// `redis+cluster://host:port,host:port` (`rediss+cluster://` with
    /// TLS) for Redis Cluster.
    pub url: String,
    /// The longest a request waits on one call to the store.
    pub timeout: Duration,
    /// What a rate limit does when the store cannot answer in time.
    pub on_error: OnError,
    /// Prefixed to every key, so that several deployments can share one
    /// Redis.
    pub prefix: String,
    /// Whether sign-in sessions live in the store (revocable, the cookie
    /// holding only their id) or in their cookies.
    pub sessions: SessionStore,
    /// For `rediss://`: certificates (PEM) to trust instead of the Mozilla
    /// roots, for a store with a private CA or a self-signed certificate.
    pub ca: Option<Vec<u8>>,
}

/// Where sign-in sessions live when there is a shared store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionStore {
    /// In the store: `/ngrok/logout` and the admin API end a session on
    /// every replica, and sessions survive a restart. The default.
    #[default]
    Stored,
    /// In sealed cookies, as without a store: nothing to look up per
    /// request, and nothing to revoke (a copy of a cookie stays good
    /// until the session's maximum).
    Cookie,
}

impl StateConfig {
    /// The defaults, for `url`: a 50 ms timeout, local buckets on error,
    /// keys under `portcullis:`.
    pub fn new(url: &str) -> StateConfig {
        StateConfig {
            url: url.to_owned(),
            timeout: Duration::from_millis(50),
            on_error: OnError::Local,
            prefix: "portcullis:".to_owned(),
            sessions: SessionStore::Stored,
            ca: None,
        }
    }
}

/// What a shared rate limit does when the store does not answer in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Count in the replica's own bucket, as without a store: the limit
    /// holds per replica (neither open nor closed). The default.
    #[default]
    Local,
    /// Let the request through (Envoy's global rate limit by default).
    Allow,
    /// Refuse the request (429).
    Deny,
}

impl OnError {
    /// The setting named `name`: `local`, `allow` or `deny`.
    pub fn parse(name: &str) -> Option<OnError> {
        Some(match name {
            "local" => OnError::Local,
            "allow" => OnError::Allow,
            "deny" => OnError::Deny,
            _ => return None,
        })
    }

    fn label(self) -> &'static str {
        match self {
            OnError::Local => "local",
            OnError::Allow => "allow",
            OnError::Deny => "deny",
        }
    }
}

/// A call to the store that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// No connection yet, or the store answered with an error.
    Unavailable(String),
    /// No answer within the timeout.
    Timeout,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Unavailable(why) => write!(f, "the state store is unavailable: {why}"),
            StateError::Timeout => f.write_str("the state store did not answer in time"),
        }
    }
}

impl std::error::Error for StateError {}

/// One request counted against a shared bucket: `None` when it is within
/// the limit, else the seconds until one more would be.
pub type Verdict = Option<u64>;

/// The shared state: cheap to clone, one per process.
#[derive(Clone)]
pub struct State {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    /// Requests a replica took from a shared bucket ahead of time, to
    /// admit without asking the store again (see [`State::hit`]).
    leases: lease::Leases,
    config: Option<StateConfig>,
    /// A failure episode is under way (logged once when it begins).
    degraded: AtomicBool,
    errors: AtomicU64,
    /// Rate-limit decisions made without the store, by [`OnError`].
    fallbacks: [AtomicU64; 3],
}

enum Backend {
    Memory(memory::Memory),
    Redis(remote::Remote),
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("backend", &self.describe())
            .finish_non_exhaustive()
    }
}

/// Counters of the store's use, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls that failed or timed out.
    pub errors: u64,
    /// Rate-limit decisions made without the store: `(on_error label,
    /// count)` for `local`, `allow` and `deny`.
    pub fallbacks: [(&'static str, u64); 3],
    /// Whether the last call succeeded (or none failed yet).
    pub up: bool,
    /// Whether the state is shared (not this process's memory).
    pub shared: bool,
}

impl State {
    /// State in this process's memory: nothing is shared.
    pub fn memory() -> State {
        State::with(Backend::Memory(memory::Memory::default()), None)
    }

    /// State on the Redis `config` names. The connection is made in the
    /// background (a store that is down at start is not an error: calls
    /// fail until it is up); only a configuration that cannot work (a URL
    /// that does not parse) is. Must be called inside a tokio runtime.
    pub fn redis(config: StateConfig) -> Result<State, ParseError> {
        let remote = remote::Remote::start(&config)?;
        Ok(State::with(Backend::Redis(remote), Some(config)))
    }

    fn with(backend: Backend, config: Option<StateConfig>) -> State {
        State {
            inner: Arc::new(Inner {
                backend,
                leases: lease::Leases::default(),
                config,
                degraded: AtomicBool::new(false),
                errors: AtomicU64::new(0),
                fallbacks: [const { AtomicU64::new(0) }; 3],
            }),
        }
    }

    /// Whether replicas share this state (it is not this process's
    /// memory).
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.backend, Backend::Redis(_))
    }

    /// Whether sign-in keeps its sessions in this (shared) store.
    pub fn stores_sessions(&self) -> bool {
        self.is_shared()
            && self
                .inner
                .config
                .as_ref()
                .is_some_and(|c| c.sessions == SessionStore::Stored)
    }

    /// What a shared rate limit does when the store fails.
    pub fn on_error(&self) -> OnError {
        self.inner
            .config
            .as_ref()
            .map_or(OnError::Local, |c| c.on_error)
    }

    /// Where the state lives, for logs: the URL without its password.
    pub fn describe(&self) -> String {
        match &self.inner.backend {
            Backend::Memory(_) => "memory".to_owned(),
            Backend::Redis(r) => r.describe(),
        }
    }

    /// Waits until the store answers (or `within` passes): for a start
    /// that wants to say whether Redis is reachable.
    pub async fn ready(&self, within: Duration) -> Result<(), StateError> {
        match &self.inner.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(r) => r.ready(within).await,
        }
    }

    /// Counts one request against the shared sliding window `bucket`
    /// (an identity of the rule and the bucket, see [`bucket_id`]) of
    /// `capacity` requests per `window`.
    ///
    /// On Redis, a bucket of at least 200 takes a lease of 1% of its
    /// capacity at a time: the store counts them at once, and this replica
    /// admits them without asking again until they are used or the window
    /// ends. So a busy bucket costs one round trip per lease, not per
    /// request, and the error stays one-sided: a lease unused when its
    /// window ends is lost, so a fleet of R replicas admits at least
    /// `capacity − R × (capacity / 100 − 1)` and never more than
    /// `capacity` per window. Smaller buckets ask every time, exactly.
    pub async fn hit(
        &self,
        bucket: &str,
        capacity: u64,
        window: Duration,
    ) -> Result<Verdict, StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => Ok(m.hit(bucket, capacity, window)),
            Backend::Redis(r) => {
                let lease = lease::size(capacity);
                if lease > 1 && self.inner.leases.take(bucket) {
                    return Ok(None);
                }
                let call = r.take(bucket, capacity, window, lease);
                self.deadline(call).await.map(|taken| match taken {
                    remote::Taken::Some(n, left) => {
                        if n > 1 {
                            self.inner.leases.put(bucket, n - 1, left);
                        }
                        None
                    }
                    remote::Taken::Wait(secs) => Some(secs),
                })
            }
        };
        self.observe(&res);
        res
    }

    /// Marks `key` as used for `ttl`: `true` the first time, `false` for
    /// every later use within `ttl`, on any replica (a replayed OAuth
    /// `state` or authorization code, a SAML assertion ID).
    pub async fn once(&self, key: &str, ttl: Duration) -> Result<bool, StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => Ok(m.once(key, ttl)),
            Backend::Redis(r) => {
                let call = r.once(key, ttl);
                self.deadline(call).await
            }
        };
        self.observe(&res);
        res
    }

    /// Keeps `value` under `key` for `ttl` (a server-side session).
    pub async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => {
                m.put(key, value, ttl);
                Ok(())
            }
            Backend::Redis(r) => self.deadline(r.put(key, value, ttl)).await,
        };
        self.observe(&res);
        res
    }

    /// What `key` holds, if it has not expired or been removed.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => Ok(m.get(key)),
            Backend::Redis(r) => self.deadline(r.get(key)).await,
        };
        self.observe(&res);
        res
    }

    /// Removes `key`: `true` if it was there.
    pub async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => Ok(m.delete(key)),
            Backend::Redis(r) => self.deadline(r.delete(key)).await,
        };
        self.observe(&res);
        res
    }

    /// Adds `member` to the set `key` for `ttl` (an index: a user's
    /// sessions). Members past their time leave the set, so it holds only
    /// live ones however often members come and go.
    pub async fn add_member(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => {
                m.add_member(key, member, ttl);
                Ok(())
            }
            Backend::Redis(r) => self.deadline(r.add_member(key, member, ttl)).await,
        };
        self.observe(&res);
        res
    }

    /// The members of the set `key`.
    pub async fn members(&self, key: &str) -> Result<Vec<String>, StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => Ok(m.members(key)),
            Backend::Redis(r) => self.deadline(r.members(key)).await,
        };
        self.observe(&res);
        res
    }

    /// Removes `member` from the set `key`.
    pub async fn remove_member(&self, key: &str, member: &str) -> Result<(), StateError> {
        let res = match &self.inner.backend {
            Backend::Memory(m) => {
                m.remove_member(key, member);
                Ok(())
            }
            Backend::Redis(r) => self.deadline(r.remove_member(key, member)).await,
        };
        self.observe(&res);
        res
    }

    async fn deadline<T>(
        &self,
        call: impl Future<Output = Result<T, StateError>>,
    ) -> Result<T, StateError> {
        let timeout = self
            .inner
            .config
            .as_ref()
            .map_or(Duration::from_millis(50), |c| c.timeout);
        match tokio::time::timeout(timeout, call).await {
            Ok(res) => res,
            Err(_) => Err(StateError::Timeout),
        }
    }

    /// Counts a failure, and logs when an episode of failures begins or
    /// ends.
    fn observe<T>(&self, res: &Result<T, StateError>) {
        match res {
            Ok(_) => {
                if self.inner.degraded.load(Ordering::Relaxed)
                    && self.inner.degraded.swap(false, Ordering::Relaxed)
                {
                    tracing::info!(state = %self.describe(), "the state store answers again");
                }
            }
            Err(e) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                if !self.inner.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        state = %self.describe(),
                        "{e}; shared rate limits fall back to `{}` until it answers",
                        self.on_error().label()
                    );
                }
            }
        }
    }

    /// Records a rate-limit decision made without the store.
    pub fn fell_back(&self, to: OnError) {
        let i = match to {
            OnError::Local => 0,
            OnError::Allow => 1,
            OnError::Deny => 2,
        };
        if let Some(c) = self.inner.fallbacks.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters, for metrics.
    pub fn stats(&self) -> Stats {
        let f = |i: usize| {
            self.inner
                .fallbacks
                .get(i)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        };
        Stats {
            errors: self.inner.errors.load(Ordering::Relaxed),
            fallbacks: [("local", f(0)), ("allow", f(1)), ("deny", f(2))],
            up: !self.inner.degraded.load(Ordering::Relaxed),
            shared: self.is_shared(),
        }
    }
}

/// The identity of one bucket of one rate limit, the same on every
/// replica that loads the same policy: a digest of the rule's identity
/// (`rule`, which the action derives from its configuration) and the
/// bucket's key. Fixed-length hex, so that any key (with braces, with
/// any bytes) makes a valid Redis Cluster hash tag.
pub fn bucket_id(rule: &[u8], bucket: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((rule.len() as u64).to_le_bytes());
    h.update(rule);
    h.update(bucket.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in digest.iter().take(16) {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// The sliding window both backends use: `previous` weighted by how much
/// of it still overlaps the last window, plus `current`. `into` is how far
/// (0 to 1) the current window is. `None` when one more request fits
/// (the caller then counts it), else the seconds to wait.
pub fn sliding_window(
    previous: u64,
    current: u64,
    into: f64,
    capacity: u64,
    window: Duration,
) -> Option<u64> {
    let estimate = previous as f64 * (1.0 - into) + current as f64;
    let capacity_f = capacity as f64;
    if estimate + 1.0 <= capacity_f {
        return None;
    }
    // When may one more request pass? If this window alone is full, after
    // it ends (plus the moment the new previous needs to decay by one);
    // else when the previous window's weight has decayed enough.
    let wait = if current as f64 + 1.0 > capacity_f {
        (1.0 - into) + 1.0 / capacity_f
    } else {
        let needed = 1.0 - (capacity_f - current as f64 - 1.0) / previous as f64;
        (needed - into).max(0.0)
    };
    let secs = (wait * window.as_secs_f64()).ceil();
    Some((secs as u64).max(1))
}

#[cfg(test)]
mod tests;
