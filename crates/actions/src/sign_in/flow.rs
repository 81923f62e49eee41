//! The authorization-code flow: a sign-in started (`start`: state, nonce
//! and PKCE verifier sealed in the flow cookie, and the redirect to the
//! provider), the provider's answer (`callback`: the answer used once, the
//! code redeemed, the ID token verified, the session made),
//! `/ngrok/logout`, and the cookies and return paths they set.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Method, Request, StatusCode};
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use super::entra::is_guid;
use super::providers::{Discovery, fetch_json};
use super::session::slim;
use super::{STATE_UNAVAILABLE, SignIn, fail, now_secs};
use crate::jwks::Jwks;
use crate::jwt_validation_rules::key_issuer_matches;
use crate::percent;
use crate::session::random_token;
use crate::{ActionError, RequestCtx, Step, respond};

/// How long a sign-in may take (ngrok: "took more than 15 minutes").
const FLOW_TTL: Duration = Duration::from_secs(15 * 60);

impl SignIn {
    pub(super) async fn start(
        &self,
        ctx: &mut RequestCtx,
        back: String,
        force: bool,
    ) -> Result<Step, ActionError> {
        if !matches!(*ctx.method(), Method::GET | Method::HEAD) && !force {
            let mut res = respond::error(
                StatusCode::UNAUTHORIZED,
                "ERR_NGROK_3101",
                "sign in first: this request cannot be redirected to the identity provider",
            );
            res.headers_mut()
                .insert(LOCATION, HeaderValue::from_static("/ngrok/login"));
            ctx.set_response(res);
            return Ok(Step::Respond);
        }
        if self.saml.is_some() {
            return self.saml_start(ctx, back, force).await;
        }
        let (disc, _) = self.discovery().await?;
        let client_id = self.client_id.render(ctx)?.into_owned();
        let (state, nonce, verifier) = (random_token(32), random_token(32), random_token(32));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let sealed = self.seal_flow(&serde_json::json!({
            "s": state, "n": nonce, "v": verifier, "r": back, "t": now_secs(),
        }))?;
        let mut url = format!(
            "{}{}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}",
            disc.authorization_endpoint,
            if disc.authorization_endpoint.contains('?') {
                '&'
            } else {
                '?'
            },
            percent::encode_component(&client_id),
            percent::encode_component(&self.redirect_uri(ctx)),
            percent::encode_component(&self.scopes),
            state,
            nonce,
        );
        if self.pkce {
            url.push_str(&format!(
                "&code_challenge={challenge}&code_challenge_method=S256"
            ));
        }
        if self.form_post {
            url.push_str("&response_mode=form_post");
        }
        if force {
            url.push_str("&prompt=login");
        }
        for (k, v) in &self.authz_params {
            url.push_str(&format!(
                "&{}={}",
                percent::encode_component(k),
                percent::encode_component(v)
            ));
        }
        let mut res = respond::status(StatusCode::FOUND);
        let location = HeaderValue::from_str(&url).map_err(|_| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                "bad authorization URL",
            )
        })?;
        res.headers_mut().insert(LOCATION, location);
        ctx.set_response(res);
        if let Some(c) = self.cookie(
            ctx,
            &self.flow_cookie,
            &sealed,
            Some(FLOW_TTL.as_secs()),
            self.form_post,
        ) {
            ctx.set_cookie(c);
        }
        Ok(Step::Respond)
    }

    pub(super) async fn callback(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let params: Vec<(String, Vec<String>)> = if *ctx.method() == Method::POST {
            let body = ctx.buffer_body(64 * 1024).await.map_err(|_| {
                fail(
                    StatusCode::BAD_REQUEST,
                    "ERR_NGROK_3300",
                    "the provider's answer could not be read",
                )
            })?;
            portcullis_policy::functions::query_params(std::str::from_utf8(&body).unwrap_or(""))
        } else {
            portcullis_policy::functions::query_params(ctx.uri().query().unwrap_or(""))
        };
        let param = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.first())
                .cloned()
        };
        if let Some(error) = param("error") {
            let why = param("error_description").unwrap_or_default();
            return Err(fail(
                StatusCode::UNAUTHORIZED,
                "ERR_NGROK_3100",
                format!("the identity provider refused the sign-in: {error} {why}"),
            ));
        }
        let flow = cookie(ctx, &self.flow_cookie)
            .and_then(|v| self.keys.open(&self.flow_cookie, &v))
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .ok_or_else(|| {
                fail(
                    StatusCode::BAD_REQUEST,
                    "ERR_NGROK_3121",
                    "the sign-in flow's cookie is missing or invalid; start again",
                )
            })?;
        let text = |k: &str| {
            flow.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let state = param("state").unwrap_or_default();
        if state.is_empty() || !bool::from(state.as_bytes().ct_eq(text("s").as_bytes())) {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_3300",
                "the sign-in state does not match",
            ));
        }
        let started = flow
            .get("t")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if now_secs().saturating_sub(started) > FLOW_TTL.as_secs() {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_3119",
                "the sign-in took more than 15 minutes",
            ));
        }
        match self.first_use(&state).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "ERR_NGROK_3301",
                    "this sign-in answer was already used",
                ));
            }
            // Without the store, an answer cannot be shown to be fresh:
            // no session is made from it (the user may sign in again).
            Err(e) => {
                return Err(fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    STATE_UNAVAILABLE,
                    format!("cannot check that this sign-in answer is new: {e}"),
                ));
            }
        }
        let code = param("code").ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_3300",
                "the provider sent no code",
            )
        })?;
        let (disc, jwks) = self.discovery().await?;
        let client_id = self.client_id.render(ctx)?.into_owned();
        let secret = self.client_secret.render(ctx)?.into_owned();
        // A public client (no secret) authenticates with PKCE alone.
        let secret = if secret.is_empty() {
            String::new()
        } else {
            format!("&client_secret={}", percent::encode_component(&secret))
        };
        let mut form = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}{secret}",
            percent::encode_component(&code),
            percent::encode_component(&self.redirect_uri(ctx)),
            percent::encode_component(&client_id),
        );
        if self.pkce {
            form.push_str("&code_verifier=");
            form.push_str(&percent::encode_component(&text("v")));
        }
        let req = Request::post(disc.token_endpoint.as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Bytes::from(form));
        let client = self.client.as_ref().ok_or_else(|| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_3100",
                "no HTTP client",
            )
        })?;
        let tokens = fetch_json(&**client, req).await.map_err(|e| {
            fail(
                StatusCode::BAD_GATEWAY,
                "ERR_NGROK_3125",
                format!("the code could not be redeemed: {e}"),
            )
        })?;
        // GitHub answers errors with 200 and an `error` member.
        if let Some(error) = tokens.get("error").and_then(|v| v.as_str()) {
            return Err(fail(
                StatusCode::BAD_GATEWAY,
                "ERR_NGROK_3125",
                format!("the code could not be redeemed: {error}"),
            ));
        }
        let (mut claims, id_token) = if let Some(p) = &self.plain {
            let access = tokens
                .get("access_token")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let claims = self.plain_identity(p, access).await.map_err(|why| {
                fail(
                    StatusCode::BAD_GATEWAY,
                    "ERR_NGROK_3125",
                    format!("{} did not say who signed in: {why}", p.kind.name()),
                )
            })?;
            (claims, String::new())
        } else {
            let id_token = tokens
                .get("id_token")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    fail(
                        StatusCode::BAD_GATEWAY,
                        "ERR_NGROK_3125",
                        "the provider sent no ID token",
                    )
                })?
                .to_owned();
            let claims = self
                .verify(&id_token, disc, jwks, &client_id, &text("n"))
                .await
                .map_err(|why| fail(StatusCode::UNAUTHORIZED, "ERR_NGROK_3401", why))?;
            (claims, id_token)
        };
        if !self.allowed_tenants.is_empty() {
            let tid = claims
                .get("tid")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if !self.allowed_tenants.contains(&tid) {
                return Err(fail(
                    StatusCode::FORBIDDEN,
                    "ERR_NGROK_3403",
                    format!("users of tenant `{tid}` may not sign in here"),
                ));
            }
        }
        let overage = claims
            .get("_claim_names")
            .and_then(|n| n.get("groups"))
            .is_some();
        if overage {
            let access = tokens
                .get("access_token")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let groups = self.graph_groups(access, "me").await.map_err(|why| {
                fail(
                    StatusCode::BAD_GATEWAY,
                    "ERR_NGROK_3100",
                    format!("the user's groups could not be read from Microsoft Graph: {why}"),
                )
            })?;
            self.keep_overage(&mut claims, groups);
        }
        let now = now_secs();
        let claims = slim(claims);
        let mut session = serde_json::json!({
            "c": claims, "iat": now, "last": now,
        });
        // With `userinfo_refresh_interval`, the access token is kept to ask
        // the provider again who the user is.
        if self.userinfo_every.is_some() || self.results.access_token.is_some() {
            session["at"] = tokens.get("access_token").cloned().unwrap_or_default();
            session["ui"] = serde_json::Value::from(now);
        }
        // Tokens the policy reads (to pass the access token upstream, as
        // `Authorization`) are kept; others are not.
        if self.results.refresh_token.is_some()
            && let Some(rt) = tokens.get("refresh_token")
        {
            session["rt"] = rt.clone();
        }
        // The ID token is kept for `identity_token` when it fits a cookie.
        if !id_token.is_empty() && id_token.len() < 2048 {
            session["t"] = serde_json::Value::String(id_token);
        }
        let back = return_path(&text("r")).unwrap_or_else(|| "/".to_owned());
        self.begin_session(ctx, &mut session, &back, self.form_post)
            .await
    }

    pub(super) async fn logout(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        // SAML's single logout names the user and the IdP's session: read
        // before the session ends.
        let saml_subject = self.saml_subject(ctx).await.ok().flatten();
        self.end_session(ctx).await?;
        let back = redirect_path(ctx);
        // The session here ends whatever the IdP's logout service does: a
        // failure to reach it (its metadata, say) only skips it.
        let to = match &saml_subject {
            Some((name_id, sid)) => {
                let sid = Some(sid.as_str()).filter(|s| !s.is_empty());
                match self.saml_logout(ctx, &back, name_id, sid).await {
                    Ok(Some(url)) => url,
                    Ok(None) => back,
                    Err(e) => {
                        tracing::warn!(code = e.code, "single logout skipped: {}", e.message);
                        back
                    }
                }
            }
            None => back,
        };
        let mut res = respond::status(StatusCode::FOUND);
        if let Ok(v) = HeaderValue::from_str(&to) {
            res.headers_mut().insert(LOCATION, v);
        }
        ctx.set_response(res);
        Ok(Step::Respond)
    }

    /// The NameID and SessionIndex of this browser's SAML session, if it
    /// has a valid one.
    pub(super) async fn saml_subject(
        &self,
        ctx: &mut RequestCtx,
    ) -> Result<Option<(String, String)>, ActionError> {
        if self.saml.is_none() {
            return Ok(None);
        }
        // Read before any await: a shared context is not `Sync`.
        let pending = match &self.stored {
            Some(_) => super::session::Pending::Stored(self.session_id(ctx)),
            None => super::session::Pending::Ready(self.open_session(ctx)),
        };
        Ok(match self.session(pending).await? {
            super::session::SessionState::Valid(s) => {
                let c = |k: &str| {
                    s.get("c")
                        .and_then(|c| c.get(k))
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_owned()
                };
                Some((c("nameid"), c("sid")))
            }
            _ => None,
        })
    }

    /// Ends this browser's session: a stored session for every copy of
    /// its cookie, on every replica, and the cookie. A store that cannot
    /// answer is said: the session may still stand, and the user must
    /// know to try again.
    pub(super) async fn end_session(&self, ctx: &mut RequestCtx) -> Result<(), ActionError> {
        if let Some(stored) = &self.stored
            && let Some(id) = self.session_id(ctx)
        {
            stored.revoke(&id).await.map_err(|e| {
                fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    STATE_UNAVAILABLE,
                    format!("the session could not be ended: {e}"),
                )
            })?;
        }
        if let Some(c) = self.cookie(ctx, &self.session_cookie, "", Some(0), false) {
            ctx.set_cookie(c);
        }
        Ok(())
    }

    pub(super) fn cookie(
        &self,
        ctx: &RequestCtx,
        name: &str,
        value: &str,
        max_age: Option<u64>,
        cross_site: bool,
    ) -> Option<HeaderValue> {
        let secure = ctx.scheme() == "https";
        let mut c = format!("{name}={value}; Path=/; HttpOnly");
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        if let Some(domain) = &self.cookie_domain {
            c.push_str(&format!("; Domain={domain}"));
        }
        if cross_site {
            // A cross-site form POST carries only `SameSite=None` cookies,
            // and browsers take those only with `Secure`.
            c.push_str("; SameSite=None; Secure");
        } else {
            c.push_str("; SameSite=Lax");
            if secure {
                c.push_str("; Secure");
            }
        }
        HeaderValue::from_str(&c).ok()
    }

    /// A flow's state, sealed for the flow cookie.
    pub(super) fn seal_flow(&self, flow: &serde_json::Value) -> Result<String, ActionError> {
        self.keys
            .seal(&self.flow_cookie, flow.to_string().as_bytes())
            .ok_or_else(|| {
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ERR_NGROK_2300",
                    "cannot seal the flow",
                )
            })
    }

    fn redirect_uri(&self, ctx: &RequestCtx) -> String {
        format!("{}://{}{}", ctx.scheme(), ctx.authority(), self.callback)
    }

    /// Records `state` as used; `false` when it already was (a replayed
    /// answer). Entries older than a flow's lifetime are forgotten. With a
    /// shared store, on the store, for every replica.
    async fn first_use(&self, state: &str) -> Result<bool, portcullis_state::StateError> {
        self.once(&format!("oidc-state:{state}"), FLOW_TTL).await
    }

    /// Records `key` as used for `ttl`; `false` when it already was. With a
    /// shared store, on the store, for every replica; else in this
    /// process, where entries past a flow's lifetime (or their own, if
    /// longer) are forgotten once there are many.
    pub(super) async fn once(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<bool, portcullis_state::StateError> {
        if let Some(shared) = &self.state {
            return shared.once(key, ttl).await;
        }
        let mut used = match self.used_states.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if used.len() > 10_000 {
            used.retain(|_, t| t.elapsed() < FLOW_TTL.max(ttl));
        }
        Ok(used.insert(key.to_owned(), Instant::now()).is_none())
    }

    async fn verify(
        &self,
        token: &str,
        disc: &Discovery,
        jwks: &Jwks,
        client_id: &str,
        nonce: &str,
    ) -> Result<serde_json::Value, String> {
        let header = decode_header(token).map_err(|e| format!("the ID token is not a JWS: {e}"))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(
                "the ID token is signed with a shared secret, not the provider's key".into(),
            );
        }
        let keys = jwks
            .keys(header.kid.as_deref())
            .await
            .map_err(|e| format!("the provider's keys could not be fetched: {e:?}"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 60;
        // jsonwebtoken checks `nbf` only when asked.
        validation.validate_nbf = true;
        validation.set_audience(&[client_id]);
        let template = disc.issuer.contains("{tenantid}");
        if !template {
            let bare = disc
                .issuer
                .split_once("://")
                .map(|(_, rest)| rest)
                .filter(|_| self.bare_issuer);
            let issuers: Vec<&str> = std::iter::once(disc.issuer.as_str()).chain(bare).collect();
            validation.set_issuer(&issuers);
        }
        let mut last = String::from("no key of the provider signed the ID token");
        for key in &keys {
            match decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => {
                    let c = data.claims;
                    let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
                    // A provider that sends no nonce (LinkedIn) is let
                    // off only where it is known not to; one it sends must
                    // match.
                    let absent_ok = s("nonce").is_empty() && !self.nonce_required;
                    if !absent_ok && !bool::from(s("nonce").as_bytes().ct_eq(nonce.as_bytes())) {
                        return Err("the ID token's nonce does not match the sign-in's".into());
                    }
                    if template {
                        let tid = s("tid");
                        if !is_guid(tid) {
                            return Err("the ID token's `tid` is not a tenant id".into());
                        }
                        if s("iss") != disc.issuer.replace("{tenantid}", tid) {
                            return Err("the ID token's issuer does not match its tenant".into());
                        }
                    }
                    if !key_issuer_matches(key.issuer.as_deref(), &c) {
                        return Err("the ID token's issuer is not its key's issuer".into());
                    }
                    return Ok(c);
                }
                Err(e) => last = format!("the ID token does not verify: {e}"),
            }
        }
        Err(last)
    }
}

/// `redirect_path`, if it is a path on this endpoint; else `/`.
pub(super) fn redirect_path(ctx: &RequestCtx) -> String {
    query_param(ctx, "redirect_path")
        .and_then(|p| return_path(&p))
        .unwrap_or_else(|| "/".to_owned())
}

/// A path on this endpoint to send the user back to, in its canonical
/// form (`portcullis_canon::path`, its query kept): it starts with one
/// `/`, never `//` or `/\` (which browsers read as another host), has no
/// scheme, no control characters, no dot segments. `None` for anything
/// else, which sends the user to `/`.
pub(super) fn return_path(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.starts_with("//") || p.starts_with("/\\") {
        return None;
    }
    let (path, query) = match p.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (p, None),
    };
    let canonical = portcullis_canon::path(path, &portcullis_canon::PathOptions::default()).ok()?;
    let mut out = canonical.path.into_owned();
    if let Some(q) = query {
        if q.chars().any(|c| c.is_control() || c == '#') {
            return None;
        }
        out.push('?');
        out.push_str(q);
    }
    (!out.starts_with("//")).then_some(out)
}

pub(super) fn query_param(ctx: &RequestCtx, name: &str) -> Option<String> {
    ctx.query_param(name)
}

/// A cookie of the request.
pub(super) fn cookie(ctx: &RequestCtx, name: &str) -> Option<String> {
    ctx.req_headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}
