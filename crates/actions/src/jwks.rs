//! Key sets (JWKS) fetched from URLs and cached, for `jwt-validation` and
//! sign-in: read without waiting on every request, fetched again in the
//! background when stale (15 minutes, as ngrok caches them; requests go on
//! with the keys they have meanwhile), and at once when a token names a key id
//! the set does not have (at most once per 10 seconds, so a flood of
//! forged `kid`s cannot make the proxy hammer the provider). One fetch at a
//! time; a failed fetch keeps the last good set.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::client::{FetchError, HttpClient, Scope};

/// How long a fetched set is used before it is fetched again.
const FRESH: Duration = Duration::from_secs(15 * 60);
/// The least time between two fetches caused by unknown key ids.
const UNKNOWN_KID_BACKOFF: Duration = Duration::from_secs(10);
/// A key set larger than this is refused.
const MAX_JWKS: usize = 512 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    /// The algorithm the key declares, if any (`alg` in the JWK).
    pub(crate) alg: Option<Algorithm>,
    /// Entra's per-key `issuer`, if any.
    pub(crate) issuer: Option<String>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Set {
    keys: Vec<Key>,
    fetched: Option<Instant>,
}

/// The keys of one or more JWKS URLs; clones share one cache.
#[derive(Debug, Clone)]
pub(crate) struct Jwks(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    urls: Vec<String>,
    client: Option<Arc<dyn HttpClient>>,
    set: RwLock<Arc<Set>>,
    /// Held while fetching; holds when the last fetch caused by an
    /// unknown key id began.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

/// Why keys could not be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JwksError {
    /// No client to fetch with (the policy runs outside the proxy).
    NoClient,
    /// Every URL failed, and no earlier set is known.
    Fetch(String),
}

impl Jwks {
    pub(crate) fn new(urls: Vec<String>, client: Option<Arc<dyn HttpClient>>) -> Jwks {
        Jwks(Arc::new(Inner {
            urls,
            client,
            set: RwLock::new(Arc::new(Set::default())),
            fetching: tokio::sync::Mutex::new(None),
        }))
    }

    /// The keys that may have signed a token with `kid`: those with that
    /// id, or every key when the token names none.
    pub(crate) async fn keys(&self, kid: Option<&str>) -> Result<Vec<Key>, JwksError> {
        let set = self.0.current();
        let set = match set.fetched {
            None => self.0.refresh(None, Duration::ZERO).await?,
            Some(t) if t.elapsed() > FRESH => {
                // Stale: fetched again in the background when there is a
                // runtime to run it on; this request uses what it has.
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        let inner = self.0.clone();
                        let seen = set.fetched;
                        runtime.spawn(async move {
                            let _ = inner.refresh(seen, Duration::ZERO).await;
                        });
                        set
                    }
                    Err(_) => self.0.refresh(set.fetched, Duration::ZERO).await?,
                }
            }
            Some(_) => set,
        };
        let found = matching(&set, kid);
        if !found.is_empty() || kid.is_none() {
            return Ok(found);
        }
        // A key id we do not know: the provider may have rotated its keys.
        let set = self.0.refresh(set.fetched, UNKNOWN_KID_BACKOFF).await?;
        Ok(matching(&set, kid))
    }
}

impl Inner {
    fn current(&self) -> Arc<Set> {
        match self.set.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Fetches the set again unless another fetch did since `seen`. A fetch
    /// for an unknown key id (`backoff` > 0) waits `backoff` after the
    /// previous one of its kind. Returns the set to use.
    async fn refresh(
        &self,
        seen: Option<Instant>,
        backoff: Duration,
    ) -> Result<Arc<Set>, JwksError> {
        let mut last_forced = self.fetching.lock().await;
        let set = self.current();
        if set.fetched != seen {
            return Ok(set);
        }
        if !backoff.is_zero() {
            if last_forced.is_some_and(|t| t.elapsed() < backoff) {
                return Ok(set);
            }
            *last_forced = Some(Instant::now());
        }
        match self.fetch().await {
            Ok(keys) => {
                let fresh = Arc::new(Set {
                    keys,
                    fetched: Some(Instant::now()),
                });
                match self.set.write() {
                    Ok(mut g) => *g = fresh.clone(),
                    Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
                }
                Ok(fresh)
            }
            Err(e) if set.fetched.is_some() => {
                tracing::warn!("key set fetch failed, keeping the last good set: {e:?}");
                Ok(set)
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, JwksError> {
        let client = self.client.as_ref().ok_or(JwksError::NoClient)?;
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        for url in &self.urls {
            let req = Request::get(url.as_str())
                .header("accept", "application/json")
                .body(Bytes::new());
            let Ok(req) = req else {
                errors.push(format!("`{url}` is not a URL"));
                continue;
            };
            match client
                .fetch(req, Scope::Public, MAX_JWKS, FETCH_TIMEOUT)
                .await
            {
                Ok(f) if f.status.is_success() => match parse(&f.body) {
                    Ok(mut k) => keys.append(&mut k),
                    Err(e) => errors.push(format!("{url}: {e}")),
                },
                Ok(f) => errors.push(format!("{url}: status {}", f.status)),
                Err(FetchError::NotAllowed(_)) => errors.push(format!(
                    "{url}: key sets are fetched over https (http only on loopback)"
                )),
                Err(e) => errors.push(format!("{url}: {e}")),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::Fetch(errors.join("; ")));
        }
        Ok(keys)
    }
}

fn matching(set: &Set, kid: Option<&str>) -> Vec<Key> {
    set.keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .cloned()
        .collect()
}

/// The usable keys of a JWKS document; keys this library cannot use
/// (encryption keys, unknown types) are skipped.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<Key>, String> {
    let raw: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let set: JwkSet = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
    let issuers: Vec<Option<String>> = raw
        .get("keys")
        .and_then(|k| k.as_array())
        .map(|keys| {
            keys.iter()
                .map(|k| k.get("issuer").and_then(|i| i.as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if jwk.common.public_key_use == Some(jsonwebtoken::jwk::PublicKeyUse::Encryption) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        out.push(Key {
            kid: jwk.common.key_id.clone(),
            key,
            alg,
            issuer: issuers.get(i).cloned().flatten(),
        });
    }
    Ok(out)
}
