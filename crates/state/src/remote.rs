//! State on Redis, standalone or Cluster, over TCP or TLS, with the
//! `redis` crate (redis-rs): the ecosystem's maintained client, with a
//! connection manager that reconnects by itself, cluster support that
//! follows `MOVED` and `ASK`, and scripts sent by digest with a fallback
//! to their body on `NOSCRIPT`.
//!
//! Keys:
//! - `<prefix>rl:{<bucket id>}`: a rate-limit bucket, a hash of the
//!   current window's index (`i`), its count (`c`) and the previous
//!   window's count (`p`), expiring two windows after its last count. The
//!   bucket id is the hash tag, so Redis Cluster keeps each bucket on one
//!   slot.
//! - `<prefix>once:{<digest of the value>}`: a one-time value, set with
//!   `NX` and an expiry.
//!
//! The rate limit is one Lua script per request: read the bucket, roll
//! the window on Redis's clock (`TIME`, so that replicas with skewed
//! clocks still count in the same windows), decide, and count. Scripts
//! run atomically, so two replicas never both take the last slot.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::watch;

use crate::{StateConfig, StateError};

/// The sliding window of [`crate::sliding_window`], inside Redis, counting
/// up to `ARGV[3]` requests at once (a lease: the caller admits them
/// itself, within the current window). `KEYS[1]`: the bucket. `ARGV[1]`:
/// the window in microseconds; `ARGV[2]`: the capacity; `ARGV[3]`: how
/// many to take. Returns `{taken, microseconds left in the window}` when
/// at least one fits, `{0, seconds to wait}` when none does.
const SLIDING_WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local index = math.floor(now / w)
local into = (now - index * w) / w
local v = redis.call('HMGET', KEYS[1], 'i', 'c', 'p')
local i = tonumber(v[1]) or index
local c = tonumber(v[2]) or 0
local p = tonumber(v[3]) or 0
if i ~= index then
  if i + 1 == index then p = c else p = 0 end
  c = 0
end
local fit = math.floor(cap - (p * (1 - into) + c))
if fit >= 1 then
  local take = math.min(want, fit)
  redis.call('HSET', KEYS[1], 'i', string.format('%d', index), 'c', c + take, 'p', p)
  redis.call('PEXPIRE', KEYS[1], math.ceil(2 * w / 1000))
  return {take, (index + 1) * w - now}
end
local wait
if c + 1 > cap then
  wait = (1 - into) + 1 / cap
else
  wait = math.max(1 - (cap - c - 1) / p - into, 0)
end
local secs = math.ceil(wait * w / 1000000)
if secs < 1 then secs = 1 end
return {0, secs}
";

/// What the script answered.
pub(crate) enum Taken {
    /// This many requests counted, the window ending in this long.
    Some(u64, Duration),
    /// None fits: the seconds until one would.
    Wait(u64),
}

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// A connection to one Redis, or to a Cluster.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What to connect to.
#[derive(Clone)]
enum Target {
    Single(Box<redis::Client>),
    Cluster(Box<redis::cluster::ClusterClient>),
}

pub(crate) struct Remote {
    /// The connection, once made.
    conn: watch::Receiver<Option<Conn>>,
    /// Why the last attempt to connect failed, while none succeeded.
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// The URL without its password.
    shown: String,
    prefix: String,
    script: redis::Script,
    _connecting: tokio::task::JoinHandle<()>,
}

impl Remote {
    pub(crate) fn start(config: &StateConfig) -> Result<Remote, ParseError> {
        let target = target(&config.url, config.ca.as_deref())?;
        let (tx, rx) = watch::channel(None);
        let shown = redact(&config.url);
        let connect_timeout = config.timeout.max(Duration::from_millis(500));
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let connecting = tokio::spawn(connect(
            target,
            tx,
            failed.clone(),
            shown.clone(),
            connect_timeout,
        ));
        Ok(Remote {
            conn: rx,
            failed,
            shown,
            prefix: config.prefix.clone(),
            script: redis::Script::new(SLIDING_WINDOW),
            _connecting: connecting,
        })
    }

    pub(crate) fn describe(&self) -> String {
        self.shown.clone()
    }

    fn conn(&self) -> Result<Conn, StateError> {
        self.conn
            .borrow()
            .clone()
            .ok_or_else(|| StateError::Unavailable(self.why_not()))
    }

    /// Why there is no connection yet.
    fn why_not(&self) -> String {
        let failed = match self.failed.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        failed.map_or_else(
            || "not connected yet".to_owned(),
            |e| format!("cannot connect: {e}"),
        )
    }

    pub(crate) async fn ready(&self, within: Duration) -> Result<(), StateError> {
        let mut rx = self.conn.clone();
        let wait = rx.wait_for(Option::is_some);
        match tokio::time::timeout(within, wait).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(StateError::Unavailable("stopped".to_owned())),
            Err(_) => return Err(StateError::Unavailable(self.why_not())),
        }
        let mut conn = self.conn()?;
        let ping = redis::cmd("PING");
        let pong = tokio::time::timeout(within, ping.query_async::<String>(&mut conn));
        match pong.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StateError::Unavailable(e.to_string())),
            Err(_) => Err(StateError::Timeout),
        }
    }

    /// Counts up to `want` requests in `bucket` at once.
    pub(crate) async fn take(
        &self,
        bucket: &str,
        capacity: u64,
        window: Duration,
        want: u64,
    ) -> Result<Taken, StateError> {
        let mut conn = self.conn()?;
        let key = format!("{}rl:{{{bucket}}}", self.prefix);
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX).max(1);
        let (taken, then): (i64, i64) = self
            .script
            .key(key)
            .arg(micros)
            .arg(capacity)
            .arg(want.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))?;
        let then = u64::try_from(then).unwrap_or(0);
        Ok(match u64::try_from(taken) {
            Ok(n) if n >= 1 => Taken::Some(n, Duration::from_micros(then)),
            _ => Taken::Wait(then.max(1)),
        })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{{{name}}}", self.prefix)
    }

    pub(crate) async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StateError> {
        let mut conn = self.conn()?;
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(self.key("kv", key))
            .arg(value)
            .arg("PX")
            .arg(millis)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let mut conn = self.conn()?;
        redis::cmd("GET")
            .arg(self.key("kv", key))
            .query_async(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<bool, StateError> {
        let mut conn = self.conn()?;
        let n: i64 = redis::cmd("DEL")
            .arg(self.key("kv", key))
            .query_async(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))?;
        Ok(n > 0)
    }

    pub(crate) async fn add_member(
        &self,
        key: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let mut conn = self.conn()?;
        let key = self.key("set", key);
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let now = now_millis();
        // A sorted set scored by each member's expiry: members past theirs
        // are trimmed whenever one is added, so a set holds only live
        // members however often they come and go. One key, one slot: a
        // pipeline is fine on a cluster. `GT` only lengthens the set's
        // life; `NX` gives a new set one.
        redis::pipe()
            .cmd("ZADD")
            .arg(&key)
            .arg(now.saturating_add(millis))
            .arg(member)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis)
            .arg("GT")
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(millis)
            .arg("NX")
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    pub(crate) async fn members(&self, key: &str) -> Result<Vec<String>, StateError> {
        let mut conn = self.conn()?;
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("set", key))
            .arg(format!("({}", now_millis()))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    pub(crate) async fn remove_member(&self, key: &str, member: &str) -> Result<(), StateError> {
        let mut conn = self.conn()?;
        redis::cmd("ZREM")
            .arg(self.key("set", key))
            .arg(member)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))
    }

    pub(crate) async fn once(&self, value: &str, ttl: Duration) -> Result<bool, StateError> {
        let mut conn = self.conn()?;
        let key = format!(
            "{}once:{{{}}}",
            self.prefix,
            crate::bucket_id(b"once", value)
        );
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut conn)
            .await
            .map_err(|e| StateError::Unavailable(e.to_string()))?;
        Ok(set.is_some())
    }
}

/// Milliseconds since the Unix epoch, this replica's clock: the scores
/// of set members' expiries (coarse: replicas' clocks agree to well
/// within a session's lifetime).
fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads `redis://`, `rediss://`, `redis+cluster://host:port,host:port`
/// and `rediss+cluster://…`.
fn target(url: &str, ca: Option<&[u8]>) -> Result<Target, ParseError> {
    let bad = |why: String| ParseError(format!("`state`: `{}`: {why}", redact(url)));
    for (scheme, tls) in [("redis+cluster://", false), ("rediss+cluster://", true)] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let base = if tls { "rediss://" } else { "redis://" };
            let nodes: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("{base}{n}"))
                .collect();
            if nodes.is_empty() {
                return Err(bad("names no node".to_owned()));
            }
            let mut builder = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(2));
            if let Some(ca) = ca {
                builder = builder.certs(certificates(ca));
            }
            let client = builder.build().map_err(|e| bad(e.to_string()))?;
            return Ok(Target::Cluster(Box::new(client)));
        }
    }
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(bad(
            "expected redis://, rediss://, redis+cluster:// or rediss+cluster://".to_owned(),
        ));
    }
    let client = match ca {
        Some(ca) if url.starts_with("rediss://") => {
            redis::Client::build_with_tls(url, certificates(ca))
        }
        Some(_) => return Err(bad("a `ca` is for rediss:// only".to_owned())),
        None => redis::Client::open(url),
    };
    client
        .map(|c| Target::Single(Box::new(c)))
        .map_err(|e| bad(e.to_string()))
}

fn certificates(ca: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

/// Connects, retrying with backoff until it succeeds; the connection then
/// reconnects by itself.
async fn connect(
    target: Target,
    tx: watch::Sender<Option<Conn>>,
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    shown: String,
    timeout: Duration,
) {
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let made = match &target {
            Target::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(2));
                ConnectionManager::new_with_config((**client).clone(), config)
                    .await
                    .map(Conn::Single)
            }
            Target::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
        };
        match made {
            Ok(conn) => {
                tracing::info!(state = %shown, "connected to the state store");
                let _ = tx.send(Some(conn));
                return;
            }
            Err(e) => {
                if let Ok(mut f) = failed.lock() {
                    *f = Some(e.to_string());
                }
                if !warned {
                    tracing::warn!(state = %shown, "cannot connect to the state store yet: {e}; retrying");
                    warned = true;
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// `url` without the password of its userinfo.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}
