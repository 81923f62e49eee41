//! Sessions: opened from their cookie or the shared store, ended by their
//! maximum and idle limits, sealed into a cookie that fits or kept in the
//! store, and published: the identity results and the request's
//! `Identity`.

use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::{HeaderValue, LOCATION};
use portcullis_cel::Value;

use super::flow::cookie;
use super::{Flavor, STATE_UNAVAILABLE, SignIn, fail, now_secs};
use crate::{ActionError, RequestCtx, Step, respond};

/// A session's last-seen time is refreshed at most this often.
const TOUCH_EVERY: u64 = 60;
/// The longest session cookie value: browsers keep cookies up to 4,096
/// bytes, name and attributes included.
const MAX_COOKIE: usize = 3800;
/// The claims a session keeps; the rest of the ID token (audience, times,
/// nonce, hashes) is of no use once it is verified.
const KEPT_CLAIMS: &[&str] = &[
    "sub",
    "oid",
    "tid",
    "email",
    "email_verified",
    "xms_edov",
    "name",
    "preferred_username",
    "login",
    "groups",
    "roles",
    "sid",
    "exp",
    "ov",
    // SAML: the NameID and the assertion's attributes.
    "nameid",
    "attrs",
];

/// A request's session before any store is asked.
pub(super) enum Pending {
    /// A stored session's id, if the cookie holds one.
    Stored(Option<String>),
    /// A cookie session, opened.
    Ready(SessionState),
}

pub(super) enum SessionState {
    None,
    Idle,
    TooOld,
    Valid(serde_json::Value),
}

impl SignIn {
    /// Makes `session` the browser's (kept in the store, or sealed into
    /// the session cookie), ends the flow cookie (`cross_site`: it was
    /// set for a cross-site POST), and sends the browser to `back`. A
    /// session the store cannot keep is not made: the user may sign in
    /// again once it answers.
    pub(super) async fn begin_session(
        &self,
        ctx: &mut RequestCtx,
        session: &mut serde_json::Value,
        back: &str,
        cross_site: bool,
    ) -> Result<Step, ActionError> {
        let sealed = match &self.stored {
            Some(stored) => {
                let id = stored
                    .create(session, Duration::from_secs(self.max_session))
                    .await
                    .map_err(|e| {
                        fail(
                            StatusCode::SERVICE_UNAVAILABLE,
                            STATE_UNAVAILABLE,
                            format!("the session could not be stored: {e}"),
                        )
                    })?;
                self.keys.seal(&self.session_cookie, id.as_bytes())
            }
            None => self.seal_session(session),
        }
        .ok_or_else(|| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                "the session does not fit a cookie",
            )
        })?;
        let mut res = respond::status(StatusCode::FOUND);
        if let Ok(v) = HeaderValue::from_str(back) {
            res.headers_mut().insert(LOCATION, v);
        }
        ctx.set_response(res);
        if let Some(c) = self.cookie(
            ctx,
            &self.session_cookie,
            &sealed,
            Some(self.max_session),
            false,
        ) {
            ctx.set_cookie(c);
        }
        if let Some(c) = self.cookie(ctx, &self.flow_cookie, "", Some(0), cross_site) {
            ctx.set_cookie(c);
        }
        Ok(Step::Respond)
    }

    /// The session, from what the request carries: a stored session's id
    /// (looked up here), or a cookie session already opened.
    pub(super) async fn session(&self, pending: Pending) -> Result<SessionState, ActionError> {
        let state = match (&self.stored, pending) {
            (_, Pending::Ready(state)) => state,
            (None, Pending::Stored(_)) => SessionState::None,
            (Some(stored), Pending::Stored(id)) => {
                let Some(id) = id else {
                    return Ok(SessionState::None);
                };
                // A store that cannot answer is no reason to sign the user
                // out (their cookie is kept): the request is refused for
                // now.
                let loaded = stored.load(&id).await.map_err(|e| {
                    fail(
                        StatusCode::SERVICE_UNAVAILABLE,
                        STATE_UNAVAILABLE,
                        format!("the session could not be read: {e}"),
                    )
                })?;
                match loaded {
                    Some(mut s) => {
                        s["h"] = serde_json::Value::String(id);
                        self.check_times(s)
                    }
                    None => SessionState::None,
                }
            }
        };
        Ok(self.with_overage(state))
    }

    /// The id in a stored session's cookie.
    pub(super) fn session_id(&self, ctx: &RequestCtx) -> Option<String> {
        let raw = cookie(ctx, &self.session_cookie)?;
        let id = self.keys.open(&self.session_cookie, &raw)?;
        String::from_utf8(id).ok()
    }

    pub(super) fn open_session(&self, ctx: &RequestCtx) -> SessionState {
        let Some(raw) = cookie(ctx, &self.session_cookie) else {
            return SessionState::None;
        };
        let Some(s) = self
            .keys
            .open(&self.session_cookie, &raw)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        else {
            return SessionState::None;
        };
        self.check_times(s)
    }

    /// A session past its maximum or idle limit is no session.
    fn check_times(&self, s: serde_json::Value) -> SessionState {
        let now = now_secs();
        let iat = s
            .get("iat")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let last = s
            .get("last")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if now.saturating_sub(iat) > self.max_session {
            return SessionState::TooOld;
        }
        if self
            .idle_timeout
            .is_some_and(|idle| now.saturating_sub(last) > idle)
        {
            return SessionState::Idle;
        }
        SessionState::Valid(s)
    }

    /// The session with its last-seen time brought forward, when idle
    /// sessions time out and it is due.
    pub(super) fn touched(&self, s: &serde_json::Value) -> Option<serde_json::Value> {
        let last = s
            .get("last")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if self.idle_timeout.is_none() || now_secs().saturating_sub(last) < TOUCH_EVERY {
            return None;
        }
        let mut touched = s.clone();
        touched["last"] = serde_json::Value::from(now_secs());
        Some(touched)
    }

    /// Keeps a changed session: in the store, or in a new cookie.
    pub(super) async fn save(&self, ctx: &mut RequestCtx, s: &serde_json::Value) {
        let ttl = Duration::from_secs(self.max_session);
        match (&self.stored, s.get("h").and_then(|h| h.as_str())) {
            (Some(stored), Some(id)) => {
                let mut kept = s.clone();
                if let Some(o) = kept.as_object_mut() {
                    o.remove("h");
                }
                // Not kept: the session stands as it was (its last-seen
                // time is older, its claims not refreshed).
                if let Err(e) = stored.save(id, &kept, ttl).await {
                    tracing::debug!("a session update was not stored: {e}");
                }
            }
            (Some(_), None) => {}
            (None, _) => {
                if let Some(sealed) = self
                    .keys
                    .seal(&self.session_cookie, s.to_string().as_bytes())
                    && let Some(c) = self.cookie(
                        ctx,
                        &self.session_cookie,
                        &sealed,
                        Some(self.max_session),
                        false,
                    )
                {
                    ctx.set_cookie(c);
                }
            }
        }
    }

    /// Seals a new session into a cookie value browsers keep: under 4 KB
    /// with its name and attributes. What does not fit goes, in order: the
    /// ID token (then `identity_token` is empty), then the groups, which
    /// move to the process's memory as for Entra's overage.
    pub(super) fn seal_session(&self, session: &mut serde_json::Value) -> Option<String> {
        let seal = |s: &serde_json::Value| {
            self.keys
                .seal(&self.session_cookie, s.to_string().as_bytes())
        };
        let sealed = seal(session)?;
        if sealed.len() <= MAX_COOKIE {
            return Some(sealed);
        }
        if let Some(s) = session.as_object_mut() {
            s.remove("t");
        }
        let sealed = seal(session)?;
        if sealed.len() <= MAX_COOKIE {
            return Some(sealed);
        }
        let claims = session.get_mut("c")?.as_object_mut()?;
        let groups: Vec<String> = claims
            .remove("groups")?
            .as_array()?
            .iter()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect();
        claims.insert("ov".into(), serde_json::Value::Bool(true));
        let id = identity_id(&serde_json::Value::Object(claims.clone()));
        let mut cache = match self.overage.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cache.insert(id, (groups.into(), Instant::now()));
        drop(cache);
        seal(session).filter(|s| s.len() <= MAX_COOKIE)
    }

    /// Sets the identity results from a valid session.
    pub(super) fn publish(&self, ctx: &mut RequestCtx, s: &serde_json::Value) {
        let c = s.get("c").cloned().unwrap_or_default();
        let claim = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        let entra = !claim("tid").is_empty() && !claim("oid").is_empty();
        let id = identity_id(&c);
        let verified = if entra {
            c.get("xms_edov").and_then(serde_json::Value::as_bool) == Some(true)
        } else {
            c.get("email_verified").and_then(serde_json::Value::as_bool) != Some(false)
        };
        let email = if verified {
            claim("email")
        } else {
            String::new()
        };
        // Twitch names its users only by `preferred_username`.
        let name = match claim("name") {
            n if n.is_empty() => claim("preferred_username"),
            n => n,
        };
        let user = if entra { claim("oid") } else { claim("sub") };
        let sid = claim("sid");
        let expires = c
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        let strings = |v: Option<&serde_json::Value>| {
            Value::list(
                v.and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(Value::string))
                    .collect(),
            )
        };
        let groups = match self.results.groups {
            None => Value::Null,
            Some(_) if c.get("ov").is_some() => Value::list(
                self.overage_groups(&c)
                    .map(|g| g.iter().map(|s| Value::string(s.as_str())).collect())
                    .unwrap_or_default(),
            ),
            Some(_) => strings(c.get("groups")),
        };
        let names = |v: Option<&serde_json::Value>| -> Vec<String> {
            v.and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        };
        ctx.set_identity(crate::Identity {
            provider: match self.flavor {
                Flavor::Oidc => "oidc",
                Flavor::OAuth => "oauth",
                Flavor::Saml => "saml",
            },
            id: id.clone(),
            user: user.clone(),
            email: email.clone(),
            preferred_username: claim("preferred_username"),
            name: name.clone(),
            groups: if c.get("ov").is_some() {
                self.overage_groups(&c)
                    .map(|g| g.to_vec())
                    .unwrap_or_default()
            } else {
                names(c.get("groups"))
            },
            roles: names(c.get("roles")),
            tenant: claim("tid"),
        });
        let r = &self.results;
        for (var, value) in [
            (r.tid, Value::string(claim("tid"))),
            (r.oid, Value::string(claim("oid"))),
            (r.groups, groups),
            (r.roles, strings(c.get("roles"))),
            (r.email_verified, Value::Bool(verified)),
            (r.id, Value::string(id)),
            (r.email, Value::string(email)),
            (r.name, Value::string(name)),
            (r.provider_user_id, Value::string(user)),
            (r.session_id, Value::string(sid)),
            (
                r.identity_token,
                Value::string(s.get("t").and_then(|v| v.as_str()).unwrap_or("")),
            ),
            (r.expires_at, Value::string(rfc3339(expires))),
            (
                r.access_token,
                Value::string(s.get("at").and_then(|v| v.as_str()).unwrap_or("")),
            ),
            (
                r.refresh_token,
                Value::string(s.get("rt").and_then(|v| v.as_str()).unwrap_or("")),
            ),
            (r.timed_out, Value::Bool(false)),
            (r.max_reached, Value::Bool(false)),
            (r.name_id, Value::string(claim("nameid"))),
        ] {
            if let Some(var) = var {
                ctx.set_result(var, value);
            }
        }
        // Built only for a policy that reads them.
        if let Some(var) = r.attributes {
            let attrs = c.get("attrs").cloned().unwrap_or_default();
            ctx.set_result(var, portcullis_cel::json::from_json(&attrs));
        }
    }
}

/// Only the claims a session needs.
pub(super) fn slim(claims: serde_json::Value) -> serde_json::Value {
    match claims {
        serde_json::Value::Object(mut map) => {
            map.retain(|k, _| KEPT_CLAIMS.contains(&k.as_str()));
            serde_json::Value::Object(map)
        }
        other => other,
    }
}

/// The identity of a user: for Entra (`tid` and `oid` present) the tenant
/// and object ids, never the email; else the subject.
pub(super) fn identity_id(claims: &serde_json::Value) -> String {
    let s = |k: &str| claims.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if !s("tid").is_empty() && !s("oid").is_empty() {
        format!("{}.{}", s("tid"), s("oid"))
    } else {
        s("sub").to_owned()
    }
}

fn rfc3339(secs: i64) -> String {
    portcullis_cel::time::Timestamp::new(secs, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}
