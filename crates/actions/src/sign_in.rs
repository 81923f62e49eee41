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
//!
//! By concern, so that another kind of sign-in can share the sessions and
//! the identity they publish:
//!
//! - this module: the config (`compile`), the action, and the dispatch of
//!   one request (`sign_in`);
//! - `flow.rs`: the authorization-code flow: starting it, the callback,
//!   `/ngrok/logout`, the ID token's checks, cookies and return paths;
//! - `providers.rs`: OpenID discovery, GitHub's identity, userinfo
//!   refresh, and the JSON fetches they make;
//! - `entra.rs`: Entra ID's tenant ids, and groups overage read from
//!   Microsoft Graph and kept in memory;
//! - `origin.rs`: which links from Graph are followed (under `graph_url`);
//! - `session.rs`: sessions opened, checked against their limits, sealed,
//!   stored and saved, and published as results and the request's
//!   `Identity`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use portcullis_cel::{Diagnostic, Value};
use sha2::Digest as _;

use crate::action::Config;
use crate::client::HttpClient;
use crate::jwks::Jwks;
use crate::session::Keys;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, ResultVar, Run, Step};

mod entra;
mod flow;
mod origin;
mod providers;
mod saml;
mod session;
#[cfg(test)]
mod tests;

pub use saml::{
    ACS_PATH as SAML_ACS_PATH, METADATA_PATH as SAML_METADATA_PATH, SpMetadata, certificate_base64,
    sp_metadata,
};

use entra::Groups;
use flow::{query_param, redirect_path};
use providers::{Discovery, Refresh};
use session::{Pending, SessionState};

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
/// The code of a sign-in answer that could not be checked against the
/// shared store (it is not used: no session is made).
const STATE_UNAVAILABLE: &str = "ERR_PORTCULLIS_STATE_UNAVAILABLE";

/// Which action: where the provider is, and what the results are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Oidc,
    OAuth,
    Saml,
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
    name_id: Option<ResultVar>,
    attributes: Option<ResultVar>,
}

/// A provider with a plain OAuth 2.0 web flow (not OpenID Connect): who
/// signed in is asked of its API with the access token.
#[derive(Debug, Clone)]
struct Plain {
    kind: PlainKind,
    /// Where the browser signs in (`https://github.com`).
    host: String,
    /// Its API (`https://api.github.com`).
    api: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlainKind {
    GitHub,
    Facebook,
    Amazon,
}

impl PlainKind {
    /// The provider's name, for messages.
    fn name(self) -> &'static str {
        match self {
            PlainKind::GitHub => "GitHub",
            PlainKind::Facebook => "Facebook",
            PlainKind::Amazon => "Amazon",
        }
    }

    /// Its default sign-in host and API.
    fn defaults(self) -> (&'static str, &'static str) {
        match self {
            PlainKind::GitHub => ("https://github.com", "https://api.github.com"),
            PlainKind::Facebook => ("https://www.facebook.com", "https://graph.facebook.com"),
            PlainKind::Amazon => ("https://www.amazon.com", "https://api.amazon.com"),
        }
    }

    /// The least it needs to say who the user is (ngrok's documented
    /// minimum scopes).
    fn scopes(self) -> &'static [&'static str] {
        match self {
            PlainKind::GitHub => &["read:user", "user:email"],
            PlainKind::Facebook => &["email", "public_profile"],
            PlainKind::Amazon => &["profile"],
        }
    }
}

#[derive(Debug)]
pub(crate) struct SignIn {
    flavor: Flavor,
    issuer_url: String,
    plain: Option<Plain>,
    client_id: Template,
    client_secret: Template,
    scopes: String,
    authz_params: Vec<(String, String)>,
    auth_id: Option<String>,
    callback: String,
    /// Whether the code is bound to the flow with PKCE (RFC 7636).
    pkce: bool,
    /// Whether an ID token without a nonce is refused.
    nonce_required: bool,
    /// Whether the ID token's `iss` may be the issuer without its scheme
    /// (Google documents `accounts.google.com` as well as
    /// `https://accounts.google.com`).
    bare_issuer: bool,
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
    /// `saml`'s own settings; none for the OpenID flavors (whose provider,
    /// client and scope fields `saml` leaves empty).
    saml: Option<Box<saml::Saml>>,
}

pub(crate) fn compile(
    cfg: Config<'_>,
    cx: &CompileCx<'_>,
    flavor: Flavor,
) -> Result<Box<dyn Action>, Diagnostic> {
    Ok(Box::new(build(cfg, cx, flavor)?))
}

fn build(cfg: Config<'_>, cx: &CompileCx<'_>, flavor: Flavor) -> Result<SignIn, Diagnostic> {
    let mut plain = None;
    let saml = match flavor {
        Flavor::Saml => Some(Box::new(saml::Saml::build(&cfg, cx)?)),
        _ => None,
    };
    let issuer_url = match flavor {
        Flavor::Saml => saml
            .as_ref()
            .map_or(String::new(), |s| s.tag_source().to_owned()),
        Flavor::Oidc => cfg
            .str("issuer_url")
            .unwrap_or("")
            .trim_end_matches('/')
            .to_owned(),
        Flavor::OAuth => {
            let provider = cfg.str("provider").unwrap_or("");
            match provider {
                "github" | "facebook" | "amazon" => {
                    let kind = match provider {
                        "github" => PlainKind::GitHub,
                        "facebook" => PlainKind::Facebook,
                        _ => PlainKind::Amazon,
                    };
                    let (host, api) = kind.defaults();
                    let field = |key: &str, default: &str| {
                        cfg.str(key)
                            .unwrap_or(default)
                            .trim_end_matches('/')
                            .to_owned()
                    };
                    let host = field("authority_host", host);
                    plain = Some(Plain {
                        kind,
                        host: host.clone(),
                        api: field("api_url", api),
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
                // OpenID providers: discovery at the issuer, whose host a
                // test (or a self-managed GitLab) moves with `authority_host`.
                "google" | "gitlab" | "linkedin" | "twitch" => {
                    let (host, path) = match provider {
                        "google" => ("https://accounts.google.com", ""),
                        "gitlab" => ("https://gitlab.com", ""),
                        "linkedin" => ("https://www.linkedin.com", "/oauth"),
                        _ => ("https://id.twitch.tv", "/oauth2"),
                    };
                    let host = cfg
                        .str("authority_host")
                        .unwrap_or(host)
                        .trim_end_matches('/');
                    format!("{host}{path}")
                }
                other => {
                    return Err(Diagnostic::error(
                        crate::code::UNSUPPORTED_ACTION,
                        cfg.get("provider").map_or(cfg.span, |n| n.span),
                        format!("`oauth` with provider `{other}` is not supported by this build"),
                    )
                    .with_help(
                        "microsoft, google, gitlab, github, facebook, amazon, linkedin and twitch run today; \
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
    let (client_id, client_secret) = match flavor {
        Flavor::Saml => (Template::text(""), Template::text("")),
        // No secret: a public client, PKCE alone.
        Flavor::Oidc => (
            required("client_id")?,
            match cfg.get("client_secret") {
                Some(node) => Template::compile(node, cx.phase, cx.src)?,
                None => Template::text(""),
            },
        ),
        // Neither: the deployment's app for the provider (ngrok's managed
        // app); lint, which knows no deployment, builds without it.
        Flavor::OAuth if cfg.get("client_id").is_none() && cfg.get("client_secret").is_none() => {
            let provider = cfg.str("provider").unwrap_or("");
            match cx.oauth_apps.map(|apps| apps.get(provider)) {
                None => (Template::text(""), Template::text("")),
                Some(Some((id, secret))) => (Template::text(id), Template::text(secret)),
                Some(None) => {
                    let upper = provider.to_ascii_uppercase();
                    return Err(cfg
                        .error(
                            cfg.get("provider"),
                            format!(
                                "`oauth` names no `client_id` and `client_secret`, and this deployment has no `{provider}` app"
                            ),
                        )
                        .with_help(format!(
                            "define it under `oauth_apps.{provider}` in the config, or in PORTCULLIS_OAUTH_{upper}_CLIENT_ID and PORTCULLIS_OAUTH_{upper}_CLIENT_SECRET"
                        )));
                }
            }
        }
        Flavor::OAuth => (required("client_id")?, required("client_secret")?),
    };
    let mut scopes: Vec<String> = cfg
        .seq("scopes")
        .iter()
        .filter_map(|n| n.scalar().map(|s| s.value.clone()))
        .collect();
    let provider = match flavor {
        Flavor::OAuth => cfg.str("provider").unwrap_or(""),
        _ => "",
    };
    // The least each provider needs to say who the user is.
    let needed: &[&str] = match (&plain, provider) {
        (Some(p), _) => p.kind.scopes(),
        // Twitch has no `profile` or `email` scopes: the address is
        // behind `user:read:email`, and asked for as a claim (below).
        (None, "twitch") => &["openid", "user:read:email"],
        (None, _) => &["openid", "profile", "email"],
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
    // Twitch puts in its ID token only the claims asked for by name.
    if provider == "twitch" && !authz_params.iter().any(|(k, _)| k == "claims") {
        authz_params.push((
            "claims".to_owned(),
            r#"{"id_token":{"email":null,"email_verified":null,"preferred_username":null}}"#
                .to_owned(),
        ));
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
    let ns = match flavor {
        Flavor::Oidc => "oidc",
        Flavor::OAuth => "oauth",
        Flavor::Saml => "saml",
    };
    let r = |field: &str| cx.result(&format!("actions.ngrok.{ns}.{field}"));
    let results = Results {
        id: r("identity.id"),
        email: r("identity.email"),
        name: r("identity.name"),
        provider_user_id: r("identity.provider_user_id"),
        session_id: if flavor == Flavor::OAuth {
            r("identity.current_provider_session_id")
        } else {
            r("identity.current_session_id")
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
        name_id: r("name_id"),
        attributes: r("attributes"),
    };
    Ok(SignIn {
        flavor,
        issuer_url,
        plain,
        client_id,
        client_secret,
        scopes: scopes.join(" "),
        authz_params,
        auth_id,
        // LinkedIn's web apps answer a code redeemed with a PKCE verifier
        // with `invalid_client`, and its ID tokens carry no nonce: the
        // flow's state, bound to the browser's flow cookie, is then what
        // ties the answer to the sign-in.
        pkce: provider != "linkedin",
        nonce_required: provider != "linkedin",
        bare_issuer: provider == "google",
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
        saml,
    })
}

impl Action for SignIn {
    fn kind(&self) -> &'static str {
        match self.flavor {
            Flavor::Oidc => "openid-connect",
            Flavor::OAuth => "oauth",
            Flavor::Saml => "saml",
        }
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Wait(Box::pin(self.sign_in(ctx)))
    }

    fn test_session(&self, claims: &serde_json::Value) -> Option<(String, String)> {
        let now = now_secs();
        let mut session = serde_json::json!({
            "c": session::slim(claims.clone()), "iat": now, "last": now,
        });
        let sealed = self.seal_session(&mut session)?;
        Some((self.session_cookie.clone(), sealed))
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
    /// One request: the callback, `/ngrok/login` and `/ngrok/logout` when
    /// meant for this action, else the session, or a sign-in without one.
    async fn sign_in(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let path = ctx.uri().path().to_owned();
        match &self.saml {
            Some(saml) if saml.answers(ctx) => return self.saml_endpoint(ctx).await,
            Some(_) => {}
            None if path == self.callback => return self.callback(ctx).await,
            None => {}
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
}
