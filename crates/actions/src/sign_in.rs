//! `openid-connect` and `oauth` (spec §3.1, §3.2): sign-in with an OpenID
//! provider by the authorization-code flow, with PKCE (S256), `state` and
//! `nonce`, and a session kept in a sealed cookie (`session`).
//!
//! - A request without a valid session is redirected to the provider; the
//!   flow's state, nonce, PKCE verifier and the page asked for travel in a
//!   sealed, short-lived flow cookie.
//! - The provider sends the browser back to the callback path (default
//!   `/ngrok/callback` on the endpoint: the URL to register at the
//!   provider, e.g. `https://app.example.com/ngrok/callback`), by a query
//!   (`response_mode=query`) or a cross-site form POST
//!   (`response_mode=form_post`, whose flow cookie is `SameSite=None;
//!   Secure`). The code is redeemed with the PKCE verifier, the ID token's
//!   signature, issuer, audience, nonce and expiry are checked, and the
//!   session cookie is set.
//! - A session ends `max_session_duration` after sign-in, 14 hours when
//!   that is not set (`DEFAULT_MAX_SESSION` says why: never is not a
//!   default), and `idle_session_timeout` after its last request.
//! - `/ngrok/login` starts a flow (forcing the provider to ask again) and
//!   `/ngrok/logout` ends the session; both take `redirect_path`, a path on
//!   this endpoint only (no open redirect), and `auth_id`.
//! - For Microsoft Entra ID (`oauth` with `provider: microsoft`, or any
//!   issuer whose discovery names a `{tenantid}` template), the issuer is
//!   validated as Microsoft specifies for multi-tenant apps: `tid` must be
//!   a GUID and `iss` the template with that `tid`, and a key's own
//!   `issuer` must agree. The identity is `tid` and `oid`, never the email;
//!   an email is only exposed when the provider says it is verified
//!   (`email_verified`, or Entra's `xms_edov`), so an unverified address
//!   can never match an allow-list (the nOAuth attack).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{Method, Request, StatusCode};
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use portcullis_cel::{Diagnostic, Value};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::action::Config;
use crate::client::{HttpClient, Scope};
use crate::jwks::Jwks;
use crate::jwt_validation_rules::key_issuer_matches;
use crate::percent;
use crate::session::{Keys, random_token};
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step, respond};

mod origin;
#[cfg(test)]
mod tests;

/// The callback path registered at the provider, unless configured.
pub(crate) const DEFAULT_CALLBACK: &str = "/ngrok/callback";
/// How long a session lasts from sign-in when `max_session_duration` is
/// not set (or is 0): 14 hours, Pomerium's `cookie_expire` default.
///
/// ngrok documents no default for either limit (its older OAuth module
/// took 0 as "none"), and a session that never ends keeps whatever the
/// provider said at sign-in for ever: Portcullis does not redeem refresh
/// tokens, so a disabled account, a removed group or a revoked role would
/// keep access for as long as the browser keeps the cookie. oauth2-proxy
/// lets a cookie live 7 days (`cookie_expire` 168h) because it refreshes
/// the tokens on the way (`cookie_refresh`); AWS's load-balancer sign-in
/// also keeps 7 days. Without a refresh, the shorter figure bounds how long
/// a change at the provider goes unseen to one working day, and a user with
/// a live provider session signs in again by a redirect without a prompt.
/// It applies with `idle_session_timeout` too: an idle limit alone never
/// ends a session that is used every few minutes.
pub(crate) const DEFAULT_MAX_SESSION: u64 = 14 * 3600;
/// How long a sign-in may take (ngrok: "took more than 15 minutes").
const FLOW_TTL: Duration = Duration::from_secs(15 * 60);
/// The code of a sign-in answer that could not be checked against the
/// shared store (it is not used: no session is made).
const STATE_UNAVAILABLE: &str = "ERR_PORTCULLIS_STATE_UNAVAILABLE";

/// A session's last-seen time is refreshed at most this often.
const TOUCH_EVERY: u64 = 60;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
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
];
const MAX_FETCH: usize = 256 * 1024;

/// Which action: where the provider is, and what the results are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Oidc,
    OAuth,
}

#[derive(Debug, Clone)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
}

#[derive(Debug)]
struct Results {
    id: Option<ResultVar>,
    email: Option<ResultVar>,
    name: Option<ResultVar>,
    provider_user_id: Option<ResultVar>,
    session_id: Option<ResultVar>,
    identity_token: Option<ResultVar>,
    expires_at: Option<ResultVar>,
    timed_out: Option<ResultVar>,
    max_reached: Option<ResultVar>,
    userinfo_refreshed: Option<ResultVar>,
    access_token: Option<ResultVar>,
    refresh_token: Option<ResultVar>,
    tid: Option<ResultVar>,
    oid: Option<ResultVar>,
    groups: Option<ResultVar>,
    roles: Option<ResultVar>,
    email_verified: Option<ResultVar>,
}

/// GitHub's OAuth web flow (not OpenID Connect): its endpoints.
#[derive(Debug, Clone)]
struct GitHub {
    host: String,
    api: String,
}

#[derive(Debug)]
pub(crate) struct SignIn {
    flavor: Flavor,
    issuer_url: String,
    github: Option<GitHub>,
    client_id: Template,
    client_secret: Template,
    scopes: String,
    authz_params: Vec<(String, String)>,
    auth_id: Option<String>,
    callback: String,
    form_post: bool,
    /// Seconds from sign-in to the end of a session: `max_session_duration`,
    /// else [`DEFAULT_MAX_SESSION`].
    max_session: u64,
    idle_timeout: Option<u64>,
    userinfo_every: Option<u64>,
    /// Entra tenants (`tid`) whose users may sign in; empty: any.
    allowed_tenants: Vec<String>,
    allow_preflight: bool,
    cookie_domain: Option<String>,
    session_cookie: String,
    flow_cookie: String,
    keys: Keys,
    client: Option<Arc<dyn HttpClient>>,
    discovery: tokio::sync::OnceCell<(Discovery, Jwks)>,
    used_states: Mutex<HashMap<String, Instant>>,
    /// The state replicas share: a provider's answer is used once across
    /// the fleet, whichever replica it reaches.
    state: Option<portcullis_state::State>,
    /// Sessions kept in the shared store (the cookie holds their id):
    /// `None` keeps them in their cookies.
    stored: Option<crate::session::Sessions>,
    /// Microsoft Graph's base URL, for groups overage.
    graph_url: String,
    /// Groups resolved through Graph, by identity: too many for a cookie.
    /// In memory, so a restart sends such users through sign-in again.
    overage: Mutex<HashMap<String, Groups>>,
    results: Results,
}

/// Group ids resolved through Graph, and when.
type Groups = (Arc<[String]>, Instant);

pub(crate) fn compile(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
    flavor: Flavor,
) -> Result<Box<dyn Action>, Diagnostic> {
    Ok(Box::new(build(cfg, cx, flavor)?))
}

fn build(cfg: Config<'_>, cx: &CompileCx<'_>, flavor: Flavor) -> Result<SignIn, Diagnostic> {
    let mut github = None;
    let issuer_url = match flavor {
        Flavor::Oidc => cfg
            .str("issuer_url")
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned(),
        Flavor::OAuth => {
            let provider = cfg.str("provider").unwrap_or("");
            match provider {
                "github" => {
                    let host = cfg
                        .str("authority_host")
                        .unwrap_or("https://github.com")
                        .trim_end_matches('/')
                        .to_owned();
                    let api = cfg
                        .str("api_url")
                        .unwrap_or("https://api.github.com")
                        .trim_end_matches('/')
                        .to_owned();
                    github = Some(GitHub {
                        host: host.clone(),
                        api,
                    });
                    host
                }
                "microsoft" => {
                    let host = cfg
                        .str("authority_host")
                        .unwrap_or("https://login.microsoftonline.com")
                        .trim_end_matches('/');
                    let tenant = cfg.str("tenant").unwrap_or("common");
                    format!("{host}/{tenant}/v2.0")
                }
                "google" => "https://accounts.google.com".to_owned(),
                "gitlab" => "https://gitlab.com".to_owned(),
                other => {
                    return Err(Diagnostic::error(
                        crate::code::UNSUPPORTED_ACTION,
                        cfg.get("provider").map_or(cfg.span, |n| n.span),
                        format!("`oauth` with provider `{other}` is not supported by this build"),
                    )
                    .with_help(
                        "microsoft, google, gitlab and github run today; \
                         for another OpenID provider use `openid-connect`",
                    ));
                }
            }
        }
    };
    let required = |key: &str| match cfg.get(key) {
        Some(node) => Template::compile(node, cx.phase, cx.src),
        None => Err(cfg.error(None, format!("`{key}` is required"))),
    };
    let client_id = required("client_id")?;
    let client_secret = required("client_secret")?;
    let mut scopes: Vec<String> = cfg
        .seq("scopes")
        .iter()
        .filter_map(|n| n.scalar().map(|s| s.value.clone()))
        .collect();
    // The least each provider needs to say who the user is.
    let needed: &[&str] = if github.is_some() {
        &["read:user", "user:email"]
    } else {
        &["openid", "profile", "email"]
    };
    for s in needed {
        if !scopes.iter().any(|x| x == s) {
            scopes.push((*s).to_owned());
        }
    }
    let mut form_post = false;
    let mut authz_params = Vec::new();
    for (k, v) in cfg.map("authz_url_params") {
        let v = v.scalar().map_or("", |s| s.value.as_str()).to_owned();
        if k == "response_mode" {
            form_post = v == "form_post";
            continue;
        }
        authz_params.push((k.to_owned(), v));
    }
    let seconds = |key: &str| {
        cfg.str(key)
            .and_then(|t| portcullis_cel::time::Duration::parse(t).ok())
            .and_then(|d| u64::try_from(d.nanos() / 1_000_000_000).ok())
            .filter(|s| *s > 0)
    };
    let auth_id = cfg.str("auth_id").map(str::to_owned);
    let tag = match &auth_id {
        Some(id) => id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>(),
        None => {
            let digest = sha2::Sha256::digest(issuer_url.as_bytes());
            digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
        }
    };
    let ns = if flavor == Flavor::Oidc {
        "oidc"
    } else {
        "oauth"
    };
    let r = |field: &str| cx.result(&format!("actions.ngrok.{ns}.{field}"));
    let results = Results {
        id: r("identity.id"),
        email: r("identity.email"),
        name: r("identity.name"),
        provider_user_id: r("identity.provider_user_id"),
        session_id: if flavor == Flavor::Oidc {
            r("identity.current_session_id")
        } else {
            r("identity.current_provider_session_id")
        },
        identity_token: if flavor == Flavor::Oidc {
            r("identity_token")
        } else {
            None
        },
        expires_at: r("expires_at"),
        timed_out: r("session_timed_out"),
        max_reached: r("session_max_duration_reached"),
        userinfo_refreshed: r("userinfo_refreshed"),
        access_token: r("access_token"),
        refresh_token: r("refresh_token"),
        tid: cx.result(&format!("actions.portcullis.{ns}.tid")),
        oid: cx.result(&format!("actions.portcullis.{ns}.oid")),
        groups: cx.result(&format!("actions.portcullis.{ns}.groups")),
        roles: cx.result(&format!("actions.portcullis.{ns}.roles")),
        email_verified: cx.result(&format!("actions.portcullis.{ns}.email_verified")),
    };
    Ok(SignIn {
        flavor,
        issuer_url,
        github,
        client_id,
        client_secret,
        scopes: scopes.join(" "),
        authz_params,
        auth_id,
        callback: cfg
            .str("callback_path")
            .unwrap_or(DEFAULT_CALLBACK)
            .to_owned(),
        form_post,
        max_session: seconds("max_session_duration").unwrap_or(DEFAULT_MAX_SESSION),
        idle_timeout: seconds("idle_session_timeout").or_else(|| seconds("idle_session_duration")),
        userinfo_every: seconds("userinfo_refresh_interval"),
        allowed_tenants: cfg
            .seq("allowed_tenants")
            .iter()
            .filter_map(|n| n.scalar().map(|s| s.value.trim().to_ascii_lowercase()))
            .collect(),
        allow_preflight: cfg.bool("allow_cors_preflight", false),
        cookie_domain: cfg.str("auth_cookie_domain").map(str::to_owned),
        session_cookie: format!("portcullis_session_{tag}"),
        flow_cookie: format!("portcullis_flow_{tag}"),
        keys: Keys::new(cx.session_keys),
        client: cx.client.cloned(),
        discovery: tokio::sync::OnceCell::new(),
        used_states: Mutex::new(HashMap::new()),
        state: cx.state.cloned(),
        stored: cx
            .state
            .filter(|s| s.stores_sessions())
            .map(|s| crate::session::Sessions::new(s.clone(), Keys::new(cx.session_keys))),
        graph_url: cfg
            .str("graph_url")
            .unwrap_or("https://graph.microsoft.com")
            .trim_end_matches('/')
            .to_owned(),
        overage: Mutex::new(HashMap::new()),
        results,
    })
}

impl Action for SignIn {
    fn kind(&self) -> &'static str {
        match self.flavor {
            Flavor::Oidc => "openid-connect",
            Flavor::OAuth => "oauth",
        }
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Wait(Box::pin(self.sign_in(ctx)))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fail(status: StatusCode, code: &'static str, message: impl Into<String>) -> ActionError {
    ActionError {
        status,
        code,
        message: message.into(),
    }
}

impl SignIn {
    async fn sign_in(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let path = ctx.uri().path().to_owned();
        if path == self.callback {
            return self.callback(ctx).await;
        }
        if path == "/ngrok/logout" && self.addressed(ctx) {
            return self.logout(ctx).await;
        }
        if path == "/ngrok/login" && self.addressed(ctx) {
            let back = redirect_path(ctx);
            return self.start(ctx, back, true).await;
        }
        if self.allow_preflight
            && *ctx.method() == Method::OPTIONS
            && ctx
                .req_headers()
                .contains_key("access-control-request-method")
        {
            return Ok(Step::Next);
        }
        let pending = match &self.stored {
            Some(_) => Pending::Stored(self.session_id(ctx)),
            None => Pending::Ready(self.open_session(ctx)),
        };
        match self.session(pending).await? {
            SessionState::Valid(mut s) => {
                let mut refreshed = false;
                if self.userinfo_due(&s) {
                    match self.refresh_userinfo(&mut s).await {
                        Refresh::Done => {
                            refreshed = true;
                            self.save(ctx, &s).await;
                        }
                        Refresh::Revoked => {
                            // The provider no longer accepts the user's
                            // token: sign in again, and be authorized anew.
                            let back = ctx
                                .uri()
                                .path_and_query()
                                .map_or("/", |p| p.as_str())
                                .to_owned();
                            return self.start(ctx, back, false).await;
                        }
                        Refresh::Unavailable => {}
                    }
                }
                self.publish(ctx, &s);
                if let Some(touched) = self.touched(&s) {
                    self.save(ctx, &touched).await;
                }
                if let Some(var) = self.results.userinfo_refreshed {
                    ctx.set_result(var, Value::Bool(refreshed));
                }
                Ok(Step::Next)
            }
            state => {
                if let Some(var) = self.results.timed_out {
                    ctx.set_result(var, Value::Bool(matches!(state, SessionState::Idle)));
                }
                if let Some(var) = self.results.max_reached {
                    ctx.set_result(var, Value::Bool(matches!(state, SessionState::TooOld)));
                }
                let back = ctx
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                self.start(ctx, back, false).await
            }
        }
    }

    /// Whether `/ngrok/login` or `/ngrok/logout` is meant for this action.
    fn addressed(&self, ctx: &RequestCtx) -> bool {
        let wanted = query_param(ctx, "auth_id");
        match (&wanted, &self.auth_id) {
            (None, _) => true,
            (Some(w), Some(mine)) => w == mine,
            (Some(_), None) => false,
        }
    }

    async fn discovery(&self) -> Result<&(Discovery, Jwks), ActionError> {
        if let Some(gh) = &self.github {
            return self
                .discovery
                .get_or_try_init(|| async {
                    Ok((
                        Discovery {
                            issuer: gh.host.clone(),
                            authorization_endpoint: format!("{}/login/oauth/authorize", gh.host),
                            token_endpoint: format!("{}/login/oauth/access_token", gh.host),
                            userinfo_endpoint: None,
                        },
                        Jwks::new(Vec::new(), None),
                    ))
                })
                .await;
        }
        self.discovery
            .get_or_try_init(|| async {
                let client = self.client.clone().ok_or_else(|| {
                    fail(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "ERR_NGROK_3100",
                        "sign-in needs the proxy's HTTP client",
                    )
                })?;
                let url = format!("{}/.well-known/openid-configuration", self.issuer_url);
                let doc = fetch_json(&*client, Request::get(url.as_str()).body(Bytes::new()))
                    .await
                    .map_err(|e| {
                        fail(
                            StatusCode::BAD_GATEWAY,
                            "ERR_NGROK_3100",
                            format!(
                                "the provider's discovery document ({url}) could not be read: {e}"
                            ),
                        )
                    })?;
                let field = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                let (Some(issuer), Some(authz), Some(token), Some(jwks)) = (
                    field("issuer"),
                    field("authorization_endpoint"),
                    field("token_endpoint"),
                    field("jwks_uri"),
                ) else {
                    return Err(fail(
                        StatusCode::BAD_GATEWAY,
                        "ERR_NGROK_3100",
                        "the provider's discovery document lacks an endpoint",
                    ));
                };
                Ok((
                    Discovery {
                        issuer,
                        authorization_endpoint: authz,
                        token_endpoint: token,
                        userinfo_endpoint: field("userinfo_endpoint"),
                    },
                    Jwks::new(vec![jwks], Some(client)),
                ))
            })
            .await
    }

    fn redirect_uri(&self, ctx: &RequestCtx) -> String {
        format!("{}://{}{}", ctx.scheme(), ctx.authority(), self.callback)
    }

    fn cookie(
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

    async fn start(
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
        let (disc, _) = self.discovery().await?;
        let client_id = self.client_id.render(ctx)?.into_owned();
        let (state, nonce, verifier) = (random_token(32), random_token(32), random_token(32));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let flow = serde_json::json!({
            "s": state, "n": nonce, "v": verifier, "r": back, "t": now_secs(),
        });
        let sealed = self
            .keys
            .seal(&self.flow_cookie, flow.to_string().as_bytes())
            .ok_or_else(|| {
                fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ERR_NGROK_2300",
                    "cannot seal the flow",
                )
            })?;
        let mut url = format!(
            "{}{}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
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
            challenge,
        );
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

    async fn logout(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        // A stored session ends for every copy of its cookie, on every
        // replica. A store that cannot answer is said: the session may
        // still stand, and the user must know to try again.
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
        let back = redirect_path(ctx);
        let mut res = respond::status(StatusCode::FOUND);
        if let Ok(v) = HeaderValue::from_str(&back) {
            res.headers_mut().insert(LOCATION, v);
        }
        ctx.set_response(res);
        if let Some(c) = self.cookie(ctx, &self.session_cookie, "", Some(0), false) {
            ctx.set_cookie(c);
        }
        Ok(Step::Respond)
    }

    async fn callback(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
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
        let form = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}&client_secret={}&code_verifier={}",
            percent::encode_component(&code),
            percent::encode_component(&self.redirect_uri(ctx)),
            percent::encode_component(&client_id),
            percent::encode_component(&secret),
            percent::encode_component(&text("v")),
        );
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
        let (mut claims, id_token) = if let Some(gh) = &self.github {
            let access = tokens
                .get("access_token")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let claims = self.github_identity(gh, access).await.map_err(|why| {
                fail(
                    StatusCode::BAD_GATEWAY,
                    "ERR_NGROK_3125",
                    format!("GitHub did not say who signed in: {why}"),
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
            let groups = self.graph_groups(access).await.map_err(|why| {
                fail(
                    StatusCode::BAD_GATEWAY,
                    "ERR_NGROK_3100",
                    format!("the user's groups could not be read from Microsoft Graph: {why}"),
                )
            })?;
            let mut cache = match self.overage.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if cache.len() > 10_000 {
                cache.retain(|_, (_, t)| t.elapsed() < Duration::from_secs(12 * 3600));
            }
            cache.insert(identity_id(&claims), (groups.into(), Instant::now()));
            if let Some(c) = claims.as_object_mut() {
                c.remove("_claim_names");
                c.remove("_claim_sources");
                c.insert("ov".into(), serde_json::Value::Bool(true));
            }
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
        let sealed = match &self.stored {
            // A session the store cannot keep is not made: the user may
            // sign in again once it answers.
            Some(stored) => {
                let id = stored
                    .create(&session, Duration::from_secs(self.max_session))
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
            None => self.seal_session(&mut session),
        }
        .ok_or_else(|| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                "the session does not fit a cookie",
            )
        })?;
        let back = return_path(&text("r")).unwrap_or_else(|| "/".to_owned());
        let mut res = respond::status(StatusCode::FOUND);
        if let Ok(v) = HeaderValue::from_str(&back) {
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
        if let Some(c) = self.cookie(ctx, &self.flow_cookie, "", Some(0), self.form_post) {
            ctx.set_cookie(c);
        }
        Ok(Step::Respond)
    }

    /// Seals a new session into a cookie value browsers keep: under 4 KB
    /// with its name and attributes. What does not fit goes, in order: the
    /// ID token (then `identity_token` is empty), then the groups, which
    /// move to the process's memory as for Entra's overage.
    fn seal_session(&self, session: &mut serde_json::Value) -> Option<String> {
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

    fn userinfo_due(&self, s: &serde_json::Value) -> bool {
        let Some(every) = self.userinfo_every else {
            return false;
        };
        let last = s.get("ui").and_then(serde_json::Value::as_u64).unwrap_or(0);
        now_secs().saturating_sub(last) >= every
    }

    /// Asks the provider again who the session's user is: the userinfo
    /// endpoint (GitHub: `/user`), with the access token kept in the
    /// session. The claims it returns replace the session's.
    async fn refresh_userinfo(&self, s: &mut serde_json::Value) -> Refresh {
        let access = s
            .get("at")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        if access.is_empty() {
            return Refresh::Revoked;
        }
        let fresh = if let Some(gh) = &self.github {
            self.github_identity(gh, &access).await
        } else {
            let Ok((disc, _)) = self.discovery().await else {
                return Refresh::Unavailable;
            };
            let Some(endpoint) = disc.userinfo_endpoint.clone() else {
                return Refresh::Unavailable;
            };
            let Some(client) = self.client.as_ref() else {
                return Refresh::Unavailable;
            };
            let req = Request::get(endpoint.as_str())
                .header("authorization", format!("Bearer {access}"))
                .header("accept", "application/json")
                .body(Bytes::new());
            fetch_json(&**client, req).await
        };
        match fresh {
            Ok(claims) => {
                if let (Some(old), Some(new)) = (
                    s.get_mut("c").and_then(|c| c.as_object_mut()),
                    claims.as_object(),
                ) {
                    // The provider may only change what userinfo says of
                    // the same user; the identity itself stays.
                    let same = ["sub", "oid"]
                        .iter()
                        .all(|k| new.get(*k).is_none() || new.get(*k) == old.get(*k));
                    if !same {
                        return Refresh::Revoked;
                    }
                    for (k, v) in new {
                        if matches!(
                            k.as_str(),
                            "email" | "email_verified" | "name" | "login" | "preferred_username"
                        ) {
                            old.insert(k.clone(), v.clone());
                        }
                    }
                }
                s["ui"] = serde_json::Value::from(now_secs());
                Refresh::Done
            }
            Err(why) if why.starts_with("status 401") || why.starts_with("status 403") => {
                Refresh::Revoked
            }
            Err(why) => {
                tracing::warn!("userinfo refresh failed, keeping the session: {why}");
                Refresh::Unavailable
            }
        }
    }

    /// Who signed in with GitHub: `GET /user` and `GET /user/emails` with
    /// the access token, as claims (`sub` is GitHub's numeric user id; the
    /// email is the primary one, with whether GitHub verified it).
    async fn github_identity(
        &self,
        gh: &GitHub,
        access: &str,
    ) -> Result<serde_json::Value, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let get = |path: &str| {
            Request::get(format!("{}{path}", gh.api))
                .header("authorization", format!("Bearer {access}"))
                .header("accept", "application/vnd.github+json")
                .header("user-agent", "portcullis")
                .body(Bytes::new())
        };
        let user = fetch_json(&**client, get("/user")).await?;
        let emails = fetch_json(&**client, get("/user/emails")).await?;
        let primary = emails
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e.get("primary").and_then(serde_json::Value::as_bool) == Some(true));
        let id = user
            .get("id")
            .and_then(serde_json::Value::as_i64)
            .ok_or("no user id")?;
        let login = user.get("login").and_then(|v| v.as_str()).unwrap_or("");
        let name = user
            .get("name")
            .and_then(|v| v.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(login);
        Ok(serde_json::json!({
            "sub": id.to_string(),
            "login": login,
            "name": name,
            "email": primary.and_then(|e| e.get("email")).and_then(|v| v.as_str()).unwrap_or(""),
            "email_verified": primary
                .and_then(|e| e.get("verified"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        }))
    }

    /// The group ids of the signed-in user, from Microsoft Graph's
    /// `me/transitiveMemberOf`, every page (`@odata.nextLink`), as
    /// Microsoft documents for groups overage.
    async fn graph_groups(&self, access_token: &str) -> Result<Vec<String>, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let graph = origin::Origin::parse(&self.graph_url)
            .ok_or_else(|| format!("`graph_url` ({}) is not an http(s) URL", self.graph_url))?;
        let mut url = format!(
            "{}/v1.0/me/transitiveMemberOf?$select=id&$top=100",
            self.graph_url
        );
        let mut groups = Vec::new();
        for _ in 0..100 {
            let req = Request::get(url.as_str())
                .header("authorization", format!("Bearer {access_token}"))
                .header("accept", "application/json")
                .body(Bytes::new());
            let page = fetch_json(&**client, req).await?;
            for item in page
                .get("value")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                let kind = item
                    .get("@odata.type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                if (kind.is_empty() || kind == "#microsoft.graph.group")
                    && let Some(id) = item.get("id").and_then(|v| v.as_str())
                {
                    groups.push(id.to_owned());
                }
            }
            match page.get("@odata.nextLink").and_then(|v| v.as_str()) {
                // Only links under `graph_url` (its scheme, host, port and
                // path: `Origin`) are followed: a page cannot send the
                // user's token elsewhere. One that leads elsewhere is an
                // error like a failed call, never the groups read so far:
                // a partial list would decide as if it were the whole.
                Some(next) if graph.admits(next) => url = next.to_owned(),
                Some(_) => return Err("a page links outside `graph_url`".into()),
                None => return Ok(groups),
            }
        }
        Err("more than 100 pages of groups".into())
    }

    /// Records `state` as used; `false` when it already was (a replayed
    /// answer). Entries older than a flow's lifetime are forgotten. With a
    /// shared store, on the store, for every replica.
    async fn first_use(&self, state: &str) -> Result<bool, portcullis_state::StateError> {
        if let Some(shared) = &self.state {
            return shared.once(&format!("oidc-state:{state}"), FLOW_TTL).await;
        }
        let mut used = match self.used_states.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if used.len() > 10_000 {
            used.retain(|_, t| t.elapsed() < FLOW_TTL);
        }
        Ok(used.insert(state.to_owned(), Instant::now()).is_none())
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
            validation.set_issuer(&[disc.issuer.as_str()]);
        }
        let mut last = String::from("no key of the provider signed the ID token");
        for key in &keys {
            match decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => {
                    let c = data.claims;
                    let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
                    if s("nonce").is_empty()
                        || !bool::from(s("nonce").as_bytes().ct_eq(nonce.as_bytes()))
                    {
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

    /// The session, from what the request carries: a stored session's id
    /// (looked up here), or a cookie session already opened.
    async fn session(&self, pending: Pending) -> Result<SessionState, ActionError> {
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
    fn session_id(&self, ctx: &RequestCtx) -> Option<String> {
        let raw = cookie(ctx, &self.session_cookie)?;
        let id = self.keys.open(&self.session_cookie, &raw)?;
        String::from_utf8(id).ok()
    }

    /// Keeps a changed session: in the store, or in a new cookie.
    async fn save(&self, ctx: &mut RequestCtx, s: &serde_json::Value) {
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

    /// The session with its last-seen time brought forward, when idle
    /// sessions time out and it is due.
    fn touched(&self, s: &serde_json::Value) -> Option<serde_json::Value> {
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

    fn with_overage(&self, state: SessionState) -> SessionState {
        // A session whose overage groups this process does not hold (it
        // restarted) signs in again, rather than run without the groups.
        if let SessionState::Valid(s) = &state
            && s.get("c").and_then(|c| c.get("ov")).is_some()
            && self
                .overage_groups(s.get("c").unwrap_or(&serde_json::Value::Null))
                .is_none()
        {
            return SessionState::None;
        }
        state
    }

    fn overage_groups(&self, claims: &serde_json::Value) -> Option<Arc<[String]>> {
        let cache = match self.overage.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cache.get(&identity_id(claims)).map(|(g, _)| g.clone())
    }

    fn open_session(&self, ctx: &RequestCtx) -> SessionState {
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

    /// Sets the identity results from a valid session.
    fn publish(&self, ctx: &mut RequestCtx, s: &serde_json::Value) {
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
        let name = claim("name");
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
            provider: if self.flavor == Flavor::Oidc {
                "oidc"
            } else {
                "oauth"
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
        ] {
            if let Some(var) = var {
                ctx.set_result(var, value);
            }
        }
    }
}

/// What asking the provider again said.
enum Refresh {
    /// The user is still signed in; the claims are fresh.
    Done,
    /// The provider refused the token: the user must sign in again.
    Revoked,
    /// The provider could not be asked; the session stands.
    Unavailable,
}

/// A request's session before any store is asked.
enum Pending {
    /// A stored session's id, if the cookie holds one.
    Stored(Option<String>),
    /// A cookie session, opened.
    Ready(SessionState),
}

enum SessionState {
    None,
    Idle,
    TooOld,
    Valid(serde_json::Value),
}

/// Only the claims a session needs.
fn slim(claims: serde_json::Value) -> serde_json::Value {
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
fn identity_id(claims: &serde_json::Value) -> String {
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

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A cookie of the request.
fn cookie(ctx: &RequestCtx, name: &str) -> Option<String> {
    ctx.req_headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

fn query_param(ctx: &RequestCtx, name: &str) -> Option<String> {
    portcullis_policy::functions::query_params(ctx.uri().query().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.into_iter().next())
}

/// `redirect_path`, if it is a path on this endpoint; else `/`.
fn redirect_path(ctx: &RequestCtx) -> String {
    query_param(ctx, "redirect_path")
        .and_then(|p| return_path(&p))
        .unwrap_or_else(|| "/".to_owned())
}

/// A path on this endpoint to send the user back to, in its canonical
/// form (`portcullis_canon::path`, its query kept): it starts with one
/// `/`, never `//` or `/\` (which browsers read as another host), has no
/// scheme, no control characters, no dot segments. `None` for anything
/// else, which sends the user to `/`.
fn return_path(p: &str) -> Option<String> {
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

async fn fetch_json(
    client: &dyn HttpClient,
    req: Result<Request<Bytes>, http::Error>,
) -> Result<serde_json::Value, String> {
    let req = req.map_err(|e| e.to_string())?;
    let res = client
        .fetch(req, Scope::Public, MAX_FETCH, FETCH_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&res.body)
        .map_err(|_| format!("status {}, not JSON", res.status))?;
    if !res.status.is_success() {
        let err = json.get("error").and_then(|v| v.as_str()).unwrap_or("");
        let why = json
            .get("error_description")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        return Err(format!("status {}: {err} {why}", res.status));
    }
    Ok(json)
}
