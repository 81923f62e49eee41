//! Server-side sessions: with a shared store (`state:`), a sign-in session
//! lives in the store and the cookie carries only its sealed id, so that
//! ending a session (`/ngrok/logout`, the admin API) ends it on every
//! replica, at once, for every copy of the cookie.
//!
//! Keys (under the state's prefix; no personal data in key names):
//! - `kv:{session:<id>}`: the session, sealed with the session keys (so it
//!   is encrypted at rest), expiring when the session's maximum does;
//! - `set:{user:<digest>}`: the ids of a user's sessions, one set per
//!   identifier the user has (`sub`, Entra's `oid`, the email,
//!   lower-cased), so that the admin API finds them by any of the three.
//!
//! A store that cannot answer is an error here; the callers decide what
//! it means (sign-in: no new session is made, and a request whose session
//! cannot be read is answered 503 without touching its cookie).

use std::time::Duration;

use portcullis_state::{State, StateError, bucket_id};

use super::Keys;

/// The associated data sessions are sealed with in the store.
const SEALED_AS: &str = "portcullis-session";

/// Sessions in a shared store.
#[derive(Clone, Debug)]
pub struct Sessions {
    state: State,
    keys: Keys,
}

/// A session as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The session's id.
    pub id: String,
    /// The identifiers it was indexed under (`sub`, `oid`, email).
    pub users: Vec<String>,
    /// When the user signed in (Unix seconds).
    pub signed_in: u64,
    /// When it was last used, where idle sessions are tracked.
    pub last_seen: u64,
}

fn session_key(id: &str) -> String {
    format!("session:{id}")
}

fn user_key(user: &str) -> String {
    format!(
        "user:{}",
        bucket_id(b"user", &user.trim().to_ascii_lowercase())
    )
}

/// The identifiers a session's claims index it under.
pub fn users_of(claims: &serde_json::Value) -> Vec<String> {
    ["sub", "oid", "email"]
        .iter()
        .filter_map(|k| claims.get(*k).and_then(|v| v.as_str()))
        .filter(|v| !v.is_empty())
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

impl Sessions {
    /// Sessions in `state`, sealed with `keys`.
    pub fn new(state: State, keys: Keys) -> Sessions {
        Sessions { state, keys }
    }

    /// Stores a new session for `ttl` and returns its id.
    pub async fn create(
        &self,
        session: &serde_json::Value,
        ttl: Duration,
    ) -> Result<String, StateError> {
        let id = super::random_token(32);
        self.save(&id, session, ttl).await?;
        for user in users_of(session.get("c").unwrap_or(&serde_json::Value::Null)) {
            self.state.add_member(&user_key(&user), &id, ttl).await?;
        }
        Ok(id)
    }

    /// Replaces the session `id` (a refreshed one), for `ttl`.
    pub async fn save(
        &self,
        id: &str,
        session: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let sealed = self
            .keys
            .seal(SEALED_AS, session.to_string().as_bytes())
            .ok_or_else(|| StateError::Unavailable("cannot seal the session".to_owned()))?;
        self.state
            .put(&session_key(id), sealed.as_bytes(), ttl)
            .await
    }

    /// The session `id`, or `None` when it ended (revoked, expired, or
    /// sealed with keys no longer held).
    pub async fn load(&self, id: &str) -> Result<Option<serde_json::Value>, StateError> {
        let Some(sealed) = self.state.get(&session_key(id)).await? else {
            return Ok(None);
        };
        Ok(std::str::from_utf8(&sealed)
            .ok()
            .and_then(|s| self.keys.open(SEALED_AS, s))
            .and_then(|plain| serde_json::from_slice(&plain).ok()))
    }

    /// Ends the session `id`: `true` if it existed.
    pub async fn revoke(&self, id: &str) -> Result<bool, StateError> {
        let session = self.load(id).await?;
        let existed = self.state.delete(&session_key(id)).await?;
        if let Some(s) = session {
            for user in users_of(s.get("c").unwrap_or(&serde_json::Value::Null)) {
                self.state.remove_member(&user_key(&user), id).await?;
            }
        }
        Ok(existed)
    }

    /// The live sessions of `user` (a `sub`, an `oid` or an email).
    pub async fn list(&self, user: &str) -> Result<Vec<Summary>, StateError> {
        let key = user_key(user);
        let mut out = Vec::new();
        for id in self.state.members(&key).await? {
            match self.load(&id).await? {
                Some(s) => out.push(Summary {
                    users: users_of(s.get("c").unwrap_or(&serde_json::Value::Null)),
                    signed_in: s
                        .get("iat")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0),
                    last_seen: s
                        .get("last")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0),
                    id,
                }),
                // Expired: forget it.
                None => self.state.remove_member(&key, &id).await?,
            }
        }
        out.sort_by(|a, b| a.signed_in.cmp(&b.signed_in).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Ends every session of `user`: how many there were.
    pub async fn revoke_user(&self, user: &str) -> Result<usize, StateError> {
        let mut n = 0;
        for s in self.list(user).await? {
            if self.revoke(&s.id).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(email: &str, sub: &str) -> serde_json::Value {
        serde_json::json!({"iat": 100, "last": 100, "c": {"sub": sub, "email": email}})
    }

    #[tokio::test]
    async fn sessions_are_stored_sealed_found_by_user_and_revoked() {
        let state = State::memory();
        let sessions = Sessions::new(state.clone(), Keys::new(&[[7; 32]]));
        let ttl = Duration::from_secs(60);
        let a = sessions
            .create(&session("Alice@Contoso.test", "s-a"), ttl)
            .await
            .expect("a");
        let a2 = sessions
            .create(&session("alice@contoso.test", "s-a"), ttl)
            .await
            .expect("a2");
        let b = sessions
            .create(&session("bob@contoso.test", "s-b"), ttl)
            .await
            .expect("b");
        assert_ne!(a, a2);
        // Sealed at rest: the stored bytes do not show the email.
        let raw = state
            .get(&session_key(&a))
            .await
            .expect("get")
            .expect("stored");
        assert!(!String::from_utf8_lossy(&raw).contains("alice"));
        // Found by email (any case) or by sub.
        let listed: Vec<String> = sessions
            .list("ALICE@contoso.test")
            .await
            .expect("list")
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed.len(), 2);
        assert!(listed.contains(&a) && listed.contains(&a2));
        assert_eq!(sessions.list("s-b").await.expect("list").len(), 1);
        // One revoked, then the rest of alice's.
        assert_eq!(sessions.revoke(&a).await, Ok(true));
        assert_eq!(sessions.load(&a).await, Ok(None));
        assert_eq!(sessions.revoke(&a).await, Ok(false));
        assert_eq!(sessions.revoke_user("s-a").await, Ok(1));
        assert_eq!(sessions.load(&a2).await, Ok(None));
        assert!(sessions.load(&b).await.expect("load").is_some());
        // Keys no longer held: no session.
        let other = Sessions::new(state, Keys::new(&[[8; 32]]));
        assert_eq!(other.load(&b).await, Ok(None));
    }
}
