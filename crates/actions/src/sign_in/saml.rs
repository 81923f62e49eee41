//! `saml`: sign-in with a SAML 2.0 IdP (Microsoft Entra ID's SAML
//! enterprise applications), on the same sessions and identity as
//! `oauth` and `openid-connect`.
//!
//! - **The SP's addresses**, derived from the request's origin as ngrok
//!   derives them from the endpoint URL, each overridable: the entity ID
//!   (Entra's "Identifier") `https://app.example.com/ngrok/saml`, where the
//!   SP metadata is served, and the ACS URL (Entra's "Reply URL")
//!   `https://app.example.com/ngrok/saml/acs`.
//! - **SP-initiated**: a request without a session is redirected to the
//!   IdP with an AuthnRequest (HTTP-Redirect). Its ID, an opaque
//!   `RelayState` key and the page asked for travel in the sealed flow
//!   cookie, `SameSite=None; Secure`: the IdP's answer is a cross-site
//!   POST.
//! - **The ACS**: the response is checked by `portcullis_saml` (signature
//!   with the metadata's keys, issuer, audience, recipient, destination,
//!   times, `InResponseTo` against the flow cookie), its assertion ID is
//!   used once across the fleet (the state seam), `authorized_groups` is
//!   applied, and the session is made.
//! - **IdP-initiated** (Entra's "Test sign in", My Apps) only with
//!   `allow_idp_initiated: true`; its `RelayState` is then a path on this
//!   endpoint, or `/`.
//! - **Metadata** inline (checked when the policy loads: a bad document is
//!   a diagnostic at `idp_metadata`) or from `idp_metadata_url`, fetched on
//!   first use and again hourly, the last good copy kept; none means no
//!   sign-in (fail closed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, StatusCode};
use portcullis_cel::Diagnostic;
use portcullis_saml::{IdpMetadata, claims};

use super::flow::{cookie, return_path};
use super::{SignIn, fail, now_secs};
use crate::action::Config;
use crate::client::Scope;
use crate::session::random_token;
use crate::{ActionError, RequestCtx, Step, respond};

/// Where the SP's metadata is served: the default entity ID.
pub const METADATA_PATH: &str = "/ngrok/saml";
/// The default ACS path.
pub const ACS_PATH: &str = "/ngrok/saml/acs";
/// Where the IdP answers a LogoutRequest (HTTP-Redirect).
pub(crate) const SLO_PATH: &str = "/ngrok/saml/slo";
/// The largest inflated message taken by the Redirect binding.
const MAX_INFLATED: usize = 64 * 1024;
/// The NameID format asked for unless configured: Entra then sends the
/// "Unique User Identifier" the admin chose (`user.mail`).
const DEFAULT_NAMEID_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
/// How often metadata from `idp_metadata_url` is fetched again.
const METADATA_REFRESH: Duration = Duration::from_secs(3600);
/// The largest metadata document fetched.
const MAX_METADATA: usize = 256 * 1024;
/// The largest ACS form read.
const MAX_FORM: usize = 400 * 1024;
/// The code of a user outside `authorized_groups` (ngrok's 5312).
const NOT_AUTHORIZED: &str = "ERR_NGROK_5312";
/// The code of metadata that cannot be had from `idp_metadata_url`.
const METADATA_UNAVAILABLE: &str = "ERR_NGROK_1685";

/// Where the IdP's metadata comes from.
#[derive(Debug)]
enum Source {
    Inline(Arc<IdpMetadata>),
    Url {
        url: String,
        last: tokio::sync::Mutex<Option<(Arc<IdpMetadata>, Instant)>>,
    },
}

/// A `saml` action's settings.
#[derive(Debug)]
pub(super) struct Saml {
    source: Source,
    force_authn: bool,
    allow_idp_initiated: bool,
    authorized_groups: Vec<String>,
    entity_id: Option<String>,
    acs_url: Option<String>,
    /// The path of the ACS (of `acs_url` when configured).
    acs_path: String,
    nameid_format: String,
    /// The key AuthnRequests are signed with (`request_signing_key`), if
    /// any.
    signing_key: Option<Key<ring::signature::RsaKeyPair>>,
    /// Its certificate, for the SP metadata (`request_signing_certificate`).
    signing_certificate: Option<String>,
    /// The key the IdP encrypts assertions to (`decryption_key`: Entra's
    /// token encryption), if any.
    decryption_key: Option<Key<portcullis_saml::DecryptionKey>>,
    /// Its certificate, for the SP metadata (`decryption_certificate`).
    decryption_certificate: Option<String>,
    /// The application that reads an overage user's groups from Graph
    /// (`graph_client_id`, `graph_client_secret`), if configured.
    graph: Option<Graph>,
}

/// An application's credentials for Microsoft Graph (templates, so that
/// they can come from `secrets.get`), and its tokens.
#[derive(Debug)]
struct Graph {
    client_id: crate::template::Template,
    client_secret: crate::template::Template,
    app: super::entra::GraphApp,
}

/// A private key from the policy: a template, so that it can come from
/// `secrets.get`, and the last key read from it, by its text (parsing one
/// per request would cost more than the request).
#[derive(Debug)]
struct Key<T> {
    field: &'static str,
    template: crate::template::Template,
    parse: fn(&str) -> Result<T, String>,
    cache: std::sync::Mutex<Option<(String, Arc<T>)>>,
}

impl<T> Key<T> {
    /// Reads `field`; a constant key is parsed now, so a bad one stops the
    /// load with a diagnostic where it is written.
    fn build(
        cfg: &Config<'_>,
        cx: &crate::CompileCx<'_>,
        field: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<Key<T>>, Diagnostic> {
        let Some(node) = cfg.get(field) else {
            return Ok(None);
        };
        let template = crate::template::Template::compile(node, cx.phase, cx.src)?;
        if let Some(pem) = template.constant() {
            parse(pem).map_err(|e| cfg.error(Some(node), format!("`{field}`: {e}")))?;
        }
        Ok(Some(Key {
            field,
            template,
            parse,
            cache: std::sync::Mutex::new(None),
        }))
    }

    fn get(&self, ctx: &RequestCtx) -> Result<Arc<T>, ActionError> {
        let pem = self.template.render(ctx)?;
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let Some((text, key)) = &*cache
            && *text == *pem
        {
            return Ok(key.clone());
        }
        let key = Arc::new((self.parse)(&pem).map_err(|e| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                format!("`{}`: {e}", self.field),
            )
        })?);
        *cache = Some((pem.into_owned(), key.clone()));
        Ok(key)
    }
}

/// The base64 DER of a PEM certificate, as metadata carries it.
pub fn certificate_base64(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

impl Saml {
    /// Reads the config; inline metadata is parsed now, so a bad document
    /// stops the load with a diagnostic where it is written.
    pub(super) fn build(cfg: &Config<'_>, cx: &crate::CompileCx<'_>) -> Result<Saml, Diagnostic> {
        let source = match (cfg.get("idp_metadata"), cfg.str("idp_metadata_url")) {
            (Some(node), _) => {
                let text = node.scalar().map_or("", |s| s.value.as_str());
                let md = IdpMetadata::parse(text).map_err(|e| {
                    cfg.error(Some(node), format!("`idp_metadata` cannot be used: {e}"))
                        .with_help("paste the IdP's metadata XML as it is (Entra: Federation Metadata XML)")
                })?;
                Source::Inline(Arc::new(md))
            }
            (None, Some(url)) => Source::Url {
                url: url.to_owned(),
                last: tokio::sync::Mutex::new(None),
            },
            (None, None) => {
                return Err(cfg.error(None, "`saml` needs `idp_metadata` or `idp_metadata_url`"));
            }
        };
        let acs_url = cfg.str("assertion_consumer_service_url").map(str::to_owned);
        let acs_path = match &acs_url {
            Some(u) => u
                .parse::<http::Uri>()
                .ok()
                .map(|u| u.path().to_owned())
                .ok_or_else(|| {
                    cfg.error(
                        cfg.get("assertion_consumer_service_url"),
                        "`assertion_consumer_service_url` is not a URL",
                    )
                })?,
            None => ACS_PATH.to_owned(),
        };
        Ok(Saml {
            source,
            signing_key: Key::build(
                cfg,
                cx,
                "request_signing_key",
                portcullis_saml::request::signing_key,
            )?,
            signing_certificate: cfg
                .str("request_signing_certificate")
                .map(certificate_base64),
            decryption_key: Key::build(
                cfg,
                cx,
                "decryption_key",
                portcullis_saml::DecryptionKey::from_pem,
            )?,
            decryption_certificate: cfg.str("decryption_certificate").map(certificate_base64),
            graph: match (cfg.get("graph_client_id"), cfg.get("graph_client_secret")) {
                (Some(id), Some(secret)) => Some(Graph {
                    client_id: crate::template::Template::compile(id, cx.phase, cx.src)?,
                    client_secret: crate::template::Template::compile(secret, cx.phase, cx.src)?,
                    app: super::entra::GraphApp {
                        authority: cfg
                            .str("authority_host")
                            .unwrap_or("https://login.microsoftonline.com")
                            .trim_end_matches('/')
                            .to_owned(),
                        tokens: tokio::sync::Mutex::new(std::collections::HashMap::new()),
                    },
                }),
                _ => None,
            },
            force_authn: cfg.bool("force_authn", false),
            allow_idp_initiated: cfg.bool("allow_idp_initiated", false),
            authorized_groups: cfg
                .seq("authorized_groups")
                .iter()
                .filter_map(|n| n.scalar().map(|s| s.value.trim().to_owned()))
                .collect(),
            entity_id: cfg.str("entity_id").map(str::to_owned),
            acs_url,
            acs_path,
            nameid_format: cfg
                .str("nameid_format")
                .unwrap_or(DEFAULT_NAMEID_FORMAT)
                .to_owned(),
        })
    }

    /// What a session cookie's name is derived from.
    pub(super) fn tag_source(&self) -> &str {
        match &self.source {
            Source::Inline(md) => &md.entity_id,
            Source::Url { url, .. } => url,
        }
    }

    /// Whether this request is one the SAML flow answers itself.
    pub(super) fn answers(&self, ctx: &RequestCtx) -> bool {
        let path = ctx.uri().path();
        path == self.acs_path
            || (matches!(path, METADATA_PATH | SLO_PATH) && *ctx.method() == Method::GET)
    }

    fn origin(ctx: &RequestCtx) -> String {
        format!("{}://{}", ctx.scheme(), ctx.authority())
    }

    fn entity_id(&self, ctx: &RequestCtx) -> String {
        self.entity_id
            .clone()
            .unwrap_or_else(|| format!("{}{METADATA_PATH}", Self::origin(ctx)))
    }

    fn acs_url(&self, ctx: &RequestCtx) -> String {
        self.acs_url
            .clone()
            .unwrap_or_else(|| format!("{}{ACS_PATH}", Self::origin(ctx)))
    }
}

/// What the SP metadata says.
#[derive(Clone, Copy, Debug)]
pub struct SpMetadata<'a> {
    /// The entity ID (Entra's "Identifier").
    pub entity_id: &'a str,
    /// The ACS URL (Entra's "Reply URL").
    pub acs_url: &'a str,
    /// The certificate AuthnRequests are signed with (base64 DER), if any.
    pub signing_certificate: Option<&'a str>,
    /// The certificate assertions are encrypted to (base64 DER), if any.
    pub encryption_certificate: Option<&'a str>,
}

/// The content ciphers and key transports an encrypted assertion may use,
/// listed in the metadata in order of preference.
const ENCRYPTION_METHODS: [&str; 4] = [
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

/// The SP metadata to give the IdP (Entra: "Upload metadata file"). Its
/// single logout service is on the ACS's origin, where this endpoint
/// answers it.
pub fn sp_metadata(md: &SpMetadata<'_>) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;")
    };
    let slo = md
        .acs_url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| Some(format!("{}://{}{SLO_PATH}", u.scheme_str()?, u.authority()?)))
        .map_or(String::new(), |u| {
            format!(
                "    <md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{}\"/>\n",
                esc(&u)
            )
        });
    let key = |usage: &str, cert: Option<&str>, methods: &[&str]| {
        cert.map_or(String::new(), |cert| {
            let methods: String = methods
                .iter()
                .map(|m| format!("<md:EncryptionMethod Algorithm=\"{m}\"/>"))
                .collect();
            format!(
                "    <md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
                 <ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
                 {methods}</md:KeyDescriptor>\n",
                esc(cert)
            )
        })
    };
    let keys = key("signing", md.signing_certificate, &[])
        + &key("encryption", md.encryption_certificate, &ENCRYPTION_METHODS);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"{}\">\n\
         \x20 <md:SPSSODescriptor AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"true\" \
         protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n\
         {keys}\
         {slo}\
         \x20   <md:NameIDFormat>{DEFAULT_NAMEID_FORMAT}</md:NameIDFormat>\n\
         \x20   <md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" \
         Location=\"{}\" index=\"0\" isDefault=\"true\"/>\n\
         \x20 </md:SPSSODescriptor>\n\
         </md:EntityDescriptor>\n",
        esc(md.entity_id),
        md.signing_certificate.is_some(),
        esc(md.acs_url)
    )
}

impl SignIn {
    fn saml(&self) -> Result<&Saml, ActionError> {
        self.saml.as_deref().ok_or_else(|| {
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_NGROK_2300",
                "not a saml action",
            )
        })
    }

    /// The IdP's metadata: inline, or the last good copy fetched.
    async fn idp(&self) -> Result<Arc<IdpMetadata>, ActionError> {
        let (url, last) = match &self.saml()?.source {
            Source::Inline(md) => return Ok(md.clone()),
            Source::Url { url, last } => (url, last),
        };
        let mut last = last.lock().await;
        if let Some((md, at)) = &*last
            && at.elapsed() < METADATA_REFRESH
        {
            return Ok(md.clone());
        }
        match self.fetch_metadata(url).await {
            Ok(md) => {
                let md = Arc::new(md);
                *last = Some((md.clone(), Instant::now()));
                Ok(md)
            }
            Err(why) => match &mut *last {
                // The last good copy stays; it is tried again next time.
                Some((md, at)) => {
                    tracing::warn!(
                        url,
                        "SAML metadata could not be refreshed, keeping the last good copy: {why}"
                    );
                    *at = Instant::now();
                    Ok(md.clone())
                }
                None => Err(fail(
                    StatusCode::BAD_GATEWAY,
                    METADATA_UNAVAILABLE,
                    format!("the IdP's metadata could not be had from {url}: {why}"),
                )),
            },
        }
    }

    async fn fetch_metadata(&self, url: &str) -> Result<IdpMetadata, String> {
        let client = self
            .client
            .as_ref()
            .ok_or("no HTTP client to fetch it with")?;
        let req = Request::get(url)
            .header("accept", "application/samlmetadata+xml, application/xml")
            .body(Bytes::new())
            .map_err(|e| e.to_string())?;
        let res = client
            .fetch(req, Scope::Public, MAX_METADATA, Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?;
        if !res.status.is_success() {
            return Err(format!("status {}", res.status));
        }
        let text = std::str::from_utf8(&res.body).map_err(|_| "not UTF-8".to_owned())?;
        IdpMetadata::parse(text).map_err(|e| e.to_string())
    }

    /// The key to sign AuthnRequests with, if configured.
    fn signing_key(
        &self,
        ctx: &RequestCtx,
    ) -> Result<Option<Arc<ring::signature::RsaKeyPair>>, ActionError> {
        self.saml()?
            .signing_key
            .as_ref()
            .map(|k| k.get(ctx))
            .transpose()
    }

    /// Single logout, after the session ended here: the redirect to the
    /// IdP's logout service with a LogoutRequest for the user, if the IdP
    /// has one, and the flow cookie it comes back with.
    pub(super) async fn saml_logout(
        &self,
        ctx: &mut RequestCtx,
        back: &str,
        name_id: &str,
        session_index: Option<&str>,
    ) -> Result<Option<String>, ActionError> {
        let saml = self.saml()?;
        let idp = self.idp().await?;
        let (Some(slo_url), false) = (&idp.slo_url, name_id.is_empty()) else {
            return Ok(None);
        };
        let key = self.signing_key(ctx)?;
        let (id, relay) = (format!("_{}", random_token(24)), random_token(16));
        let url = portcullis_saml::logout::request(&portcullis_saml::logout::Logout {
            slo_url,
            entity_id: &saml.entity_id(ctx),
            name_id,
            session_index,
            relay_state: &relay,
            id: &id,
            now: now_secs(),
            signing_key: key.as_deref(),
        });
        let sealed = self
            .seal_flow(&serde_json::json!({ "l": id, "k": relay, "r": back, "t": now_secs() }))?;
        if let Some(c) = self.cookie(ctx, &self.flow_cookie, &sealed, Some(15 * 60), false) {
            ctx.set_cookie(c);
        }
        Ok(Some(url))
    }

    /// The IdP's answer to a LogoutRequest: back where the user asked to
    /// go. Its session here ended before the request was sent, so a
    /// failed or foreign answer changes nothing but the destination (and
    /// is logged). A LogoutRequest from the IdP goes to `idp_logout`.
    async fn slo(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        if super::flow::query_param(ctx, "SAMLRequest").is_some() {
            return self.idp_logout(ctx).await;
        }
        let response = super::flow::query_param(ctx, "SAMLResponse").ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_5308",
                "no `SAMLResponse`",
            )
        })?;
        let relay = super::flow::query_param(ctx, "RelayState");
        let flow = cookie(ctx, &self.flow_cookie)
            .and_then(|c| self.keys.open(&self.flow_cookie, &c))
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(|f| relay.is_some() && f.get("k").and_then(|k| k.as_str()) == relay.as_deref());
        let answer = portcullis_saml::request::inflate(&response, MAX_INFLATED)
            .and_then(|xml| portcullis_saml::logout::read_response(&xml));
        let back = match (&flow, &answer) {
            (Some(f), Ok(a))
                if a.in_response_to.as_deref() == f.get("l").and_then(|l| l.as_str()) =>
            {
                if !a.success {
                    tracing::warn!(
                        "the IdP did not end its session (LogoutResponse status not Success)"
                    );
                }
                f.get("r").and_then(|r| r.as_str()).and_then(return_path)
            }
            (_, Err(e)) => {
                tracing::warn!(
                    code = "ERR_NGROK_5308",
                    "invalid SAML logout response: {}",
                    e.message()
                );
                None
            }
            _ => None,
        }
        .unwrap_or_else(|| "/".to_owned());
        ctx.set_response(respond::redirect(StatusCode::FOUND, &back));
        if let Some(c) = self.cookie(ctx, &self.flow_cookie, "", Some(0), false) {
            ctx.set_cookie(c);
        }
        Ok(Step::Respond)
    }

    /// The groups of an overage user (Entra's `groups.link`), read from
    /// Microsoft Graph as the configured application; without one, the
    /// sign-in is refused with what to do.
    async fn saml_overage(
        &self,
        ctx: &mut RequestCtx,
        claims: &serde_json::Value,
    ) -> Result<Vec<String>, ActionError> {
        const GRAPH_FAILED: &str = "ERR_NGROK_3100";
        let saml = self.saml()?;
        let Some(graph) = &saml.graph else {
            tracing::warn!(
                code = NOT_AUTHORIZED,
                "SAML sign-in refused: the user is in more groups than the assertion can list"
            );
            return Err(fail(
                StatusCode::FORBIDDEN,
                NOT_AUTHORIZED,
                "the user is in more groups than the assertion can list (Entra's overage at 150): \
                 set `graph_client_id` and `graph_client_secret` to read them from Microsoft Graph, \
                 or emit only the groups assigned to the application in Entra",
            ));
        };
        let (client_id, client_secret) = (
            graph.client_id.render(ctx)?.into_owned(),
            graph.client_secret.render(ctx)?.into_owned(),
        );
        let (tid, oid) = (
            claims["tid"].as_str().unwrap_or(""),
            claims["oid"].as_str().unwrap_or(""),
        );
        // The object id goes into a URL path: a GUID, or nothing is asked.
        if !super::entra::is_guid(oid) {
            return Err(fail(
                StatusCode::FORBIDDEN,
                NOT_AUTHORIZED,
                "the user is in more groups than the assertion can list, and it names no Entra object id to ask Microsoft Graph with",
            ));
        }
        let unavailable = |why: String| {
            tracing::warn!(code = GRAPH_FAILED, "SAML overage groups not read: {why}");
            fail(
                StatusCode::BAD_GATEWAY,
                GRAPH_FAILED,
                format!("the user's groups could not be read from Microsoft Graph: {why}"),
            )
        };
        let token = self
            .graph_app_token(&graph.app, &client_id, &client_secret, tid)
            .await
            .map_err(unavailable)?;
        self.graph_groups(&token, &format!("users/{oid}"))
            .await
            .map_err(unavailable)
    }

    /// A LogoutRequest from the IdP (the user signed out there): the
    /// session of the browser that brought it ends if it is the named
    /// user's, and the browser goes back to the IdP with the answer.
    ///
    /// The request must come from the IdP (`Issuer`), to this SP
    /// (`Destination`), recently, once, and when the binding's signature
    /// is there, it must verify with the metadata's keys. An unsigned
    /// request ends a session only if it names it by its `SessionIndex`
    /// too, which a third party cannot know: otherwise anyone could sign
    /// a user out by sending their browser here with their email.
    async fn idp_logout(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let saml = self.saml()?;
        let idp = self.idp().await?;
        let refuse = |e: portcullis_saml::Rejection| {
            tracing::warn!(
                code = "ERR_NGROK_5308",
                "SAML LogoutRequest refused: {}",
                e.message()
            );
            fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_5308",
                format!("invalid SAML logout request: {}", e.message()),
            )
        };
        let signed = portcullis_saml::logout::verify_query(
            ctx.uri().query().unwrap_or(""),
            "SAMLRequest",
            &idp.certificates,
        )
        .map_err(refuse)?;
        let message = super::flow::query_param(ctx, "SAMLRequest").unwrap_or_default();
        let acs_url = saml.acs_url(ctx);
        let slo_url = acs_url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| {
                Some(format!(
                    "{}://{}{SLO_PATH}",
                    u.scheme_str()?,
                    u.authority()?
                ))
            })
            .unwrap_or_default();
        let request = portcullis_saml::request::inflate(&message, MAX_INFLATED)
            .and_then(|xml| portcullis_saml::logout::read_request(&xml, &idp, &slo_url, now_secs()))
            .map_err(refuse)?;
        let Some(to) = idp.slo_url.clone() else {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_5308",
                "the IdP's metadata lists no single logout service to answer",
            ));
        };
        match self
            .once(
                &format!("saml-logout:{}", request.id),
                Duration::from_secs(20 * 60),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(refuse(portcullis_saml::Rejection::replayed(
                    "the LogoutRequest was already used (a replay)",
                )));
            }
            Err(e) => {
                return Err(fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    super::STATE_UNAVAILABLE,
                    format!("the LogoutRequest could not be checked against replays: {e}"),
                ));
            }
        }
        // This browser's session, and whether it is the one named.
        let (name_id, sid) = self.saml_subject(ctx).await?.unwrap_or_default();
        let named = name_id == request.name_id
            && (request.session_indexes.is_empty()
                || sid.is_empty()
                || request.session_indexes.contains(&sid));
        let proven = signed || (!sid.is_empty() && request.session_indexes.contains(&sid));
        let (status, why) = match (named, proven) {
            (true, true) => {
                self.end_session(ctx).await?;
                tracing::info!("SAML single logout from the IdP ended a session");
                (portcullis_saml::logout::SUCCESS_STATUS, None)
            }
            // Not this user's session, or none: nothing of theirs is here.
            (false, _) => (portcullis_saml::logout::SUCCESS_STATUS, None),
            (true, false) => {
                tracing::warn!(
                    code = "ERR_NGROK_5308",
                    "an unsigned SAML LogoutRequest without the session's SessionIndex was not acted on"
                );
                (
                    portcullis_saml::logout::REQUESTER,
                    Some("an unsigned LogoutRequest must name the session (SessionIndex)"),
                )
            }
        };
        let key = self.signing_key(ctx)?;
        let relay = super::flow::query_param(ctx, "RelayState").filter(|r| r.len() <= 80);
        let url = portcullis_saml::logout::response(&portcullis_saml::logout::Answer {
            to: &to,
            entity_id: &saml.entity_id(ctx),
            in_response_to: &request.id,
            relay_state: relay.as_deref(),
            id: &format!("_{}", random_token(24)),
            status,
            message: why,
            now: now_secs(),
            signing_key: key.as_deref(),
        });
        let mut res = respond::redirect(StatusCode::FOUND, &url);
        res.headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-store"));
        ctx.set_response(res);
        Ok(Step::Respond)
    }

    /// The SP's own requests: its metadata, and the ACS.
    pub(super) async fn saml_endpoint(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let saml = self.saml()?;
        if ctx.uri().path() == saml.acs_path {
            return self.acs(ctx).await;
        }
        if ctx.uri().path() == SLO_PATH {
            return self.slo(ctx).await;
        }
        let mut res = http::Response::new(crate::body::full(sp_metadata(&SpMetadata {
            entity_id: &saml.entity_id(ctx),
            acs_url: &saml.acs_url(ctx),
            signing_certificate: saml.signing_certificate.as_deref(),
            encryption_certificate: saml.decryption_certificate.as_deref(),
        })));
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/samlmetadata+xml"),
        );
        ctx.set_response(res);
        Ok(Step::Respond)
    }

    /// A flow: the redirect to the IdP with an AuthnRequest.
    pub(super) async fn saml_start(
        &self,
        ctx: &mut RequestCtx,
        back: String,
        force: bool,
    ) -> Result<Step, ActionError> {
        let saml = self.saml()?;
        let idp = self.idp().await?;
        let id = format!("_{}", random_token(24));
        let relay = random_token(16);
        let sealed = self
            .seal_flow(&serde_json::json!({ "i": id, "k": relay, "r": back, "t": now_secs() }))?;
        let key = self.signing_key(ctx)?;
        let request = portcullis_saml::request::authn_request(&portcullis_saml::request::Params {
            sso_url: &idp.sso_url,
            entity_id: &saml.entity_id(ctx),
            acs_url: &saml.acs_url(ctx),
            name_id_format: &saml.nameid_format,
            force_authn: saml.force_authn || force,
            relay_state: &relay,
            id: &id,
            now: now_secs(),
            signing_key: key.as_deref(),
        });
        let mut res = respond::redirect(StatusCode::FOUND, &request.url);
        res.headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-store"));
        ctx.set_response(res);
        // The IdP answers by a cross-site POST: only a `SameSite=None;
        // Secure` cookie rides along.
        if let Some(c) = self.cookie(ctx, &self.flow_cookie, &sealed, Some(15 * 60), true) {
            ctx.set_cookie(c);
        }
        Ok(Step::Respond)
    }

    /// The ACS: the IdP's answer, checked, and a session made of it.
    async fn acs(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let saml = self.saml()?;
        if *ctx.method() != Method::POST {
            return Err(fail(
                StatusCode::METHOD_NOT_ALLOWED,
                "ERR_NGROK_5301",
                "the ACS takes the IdP's HTTP-POST",
            ));
        }
        let body = ctx.buffer_body(MAX_FORM).await.map_err(|_| {
            fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_5301",
                "the IdP's answer could not be read (or is larger than 400 KiB)",
            )
        })?;
        let form =
            portcullis_policy::functions::query_params(std::str::from_utf8(&body).unwrap_or(""));
        let field = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.first().cloned())
        };
        let response = field("SAMLResponse").ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                "ERR_NGROK_5301",
                "no `SAMLResponse` in the form",
            )
        })?;
        let relay = field("RelayState");
        // The flow this browser started, if the answer is to it.
        let flow = cookie(ctx, &self.flow_cookie)
            .and_then(|c| self.keys.open(&self.flow_cookie, &c))
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(|f| {
                f.get("t")
                    .and_then(serde_json::Value::as_u64)
                    .is_some_and(|t| now_secs() < t + 15 * 60)
            })
            .filter(|f| relay.is_some() && f.get("k").and_then(|k| k.as_str()) == relay.as_deref());
        let request_id = flow
            .as_ref()
            .and_then(|f| f.get("i").and_then(|i| i.as_str()));
        let idp = self.idp().await?;
        let (entity_id, acs_url) = (saml.entity_id(ctx), saml.acs_url(ctx));
        let decryption_key = saml
            .decryption_key
            .as_ref()
            .map(|k| k.get(ctx))
            .transpose()?;
        let assertion = portcullis_saml::response::validate(
            &response,
            &portcullis_saml::Sp {
                entity_id: &entity_id,
                acs_url: &acs_url,
                idp: &idp,
                decryption_key: decryption_key.as_deref(),
            },
            &portcullis_saml::Expected {
                request_id,
                allow_idp_initiated: saml.allow_idp_initiated,
                now: now_secs(),
            },
        )
        .map_err(|e| {
            tracing::warn!(code = e.code(), "SAML response refused: {}", e.message());
            fail(
                if e.kind() == portcullis_saml::Kind::Status {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                },
                e.code(),
                format!(
                    "The SAML IdP sent an invalid SAML assertion: {}",
                    e.message()
                ),
            )
        })?;
        // Each assertion once, across the fleet, until it expires.
        let ttl = Duration::from_secs(
            assertion
                .not_on_or_after
                .saturating_sub(now_secs())
                .saturating_add(portcullis_saml::response::SKEW)
                .max(60),
        );
        match self
            .once(&format!("saml-assertion:{}", assertion.id), ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    code = "ERR_NGROK_5301",
                    "SAML response refused: assertion {} was already used",
                    assertion.id
                );
                return Err(fail(
                    StatusCode::UNAUTHORIZED,
                    "ERR_NGROK_5301",
                    "The SAML IdP sent an invalid SAML assertion: it was already used (a replay)",
                ));
            }
            Err(e) => {
                return Err(fail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    super::STATE_UNAVAILABLE,
                    format!("the assertion could not be checked against replays: {e}"),
                ));
            }
        }
        let mut claims = session_claims(&assertion, self.results.attributes.is_some());
        // Past 150 groups, Entra sends a link instead: the groups are read
        // from Graph as an application, or the sign-in is refused. A user
        // whose groups are unknown never passes as one in none of them.
        if !assertion.first(claims::GROUPS_LINK).is_empty() {
            let groups = self.saml_overage(ctx, &claims).await?;
            self.keep_overage(&mut claims, groups);
        }
        if !saml.authorized_groups.is_empty() {
            let overage = claims.get("ov").and_then(|_| self.overage_groups(&claims));
            let groups: Vec<&str> = match &overage {
                Some(g) => g.iter().map(String::as_str).collect(),
                None => claims["groups"]
                    .as_array()
                    .map(|g| g.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default(),
            };
            if !saml
                .authorized_groups
                .iter()
                .any(|g| groups.contains(&g.as_str()))
            {
                let why = "is not a member of the configured authorized groups";
                tracing::warn!(
                    code = NOT_AUTHORIZED,
                    "SAML sign-in refused: the user {why}"
                );
                return Err(fail(
                    StatusCode::FORBIDDEN,
                    NOT_AUTHORIZED,
                    format!("the user {why}"),
                ));
            }
        }
        let back = match &flow {
            Some(f) => f.get("r").and_then(|r| r.as_str()).and_then(return_path),
            // IdP-initiated: RelayState may name a page on this endpoint.
            None => relay.as_deref().and_then(return_path),
        }
        .unwrap_or_else(|| "/".to_owned());
        let now = now_secs();
        let mut session = serde_json::json!({ "c": claims, "iat": now, "last": now });
        self.begin_session(ctx, &mut session, &back, true).await
    }
}

/// What a session keeps of an assertion, in the claims shape the other
/// sign-ins keep (so that publishing, limits and the identity are shared).
/// Entra's email (`user.mail`) is set by the tenant's administrators, so
/// it counts as verified, as Entra's `xms_edov` says for OpenID. The
/// attributes themselves are kept only when the policy reads them
/// (`with_attributes`): a larger cookie costs every request.
fn session_claims(a: &portcullis_saml::Assertion, with_attributes: bool) -> serde_json::Value {
    let tid = a.first(claims::TENANT_ID);
    let oid = a.first(claims::OBJECT_ID);
    let email = match a.first(claims::EMAIL) {
        "" if a.name_id.contains('@') => a.name_id.as_str(),
        e => e,
    };
    let name = match a.first(claims::DISPLAY_NAME) {
        "" => a.first(claims::NAME),
        n => n,
    };
    let groups: Vec<&String> = a
        .attribute(claims::GROUPS)
        .iter()
        .chain(a.attribute("groups"))
        .collect();
    let roles: Vec<&String> = a
        .attribute(claims::ROLES)
        .iter()
        .chain(a.attribute("roles"))
        .collect();
    let attrs: serde_json::Map<String, serde_json::Value> = a
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    let mut c = serde_json::json!({
        "sub": a.name_id,
        "nameid": a.name_id,
        "email": email,
        "name": name,
        "preferred_username": a.first(claims::NAME),
        "groups": groups,
        "roles": roles,
        "sid": a.session_index.clone().unwrap_or_default(),
    });
    if with_attributes {
        c["attrs"] = attrs.into();
    }
    if !tid.is_empty() && !oid.is_empty() {
        c["tid"] = tid.into();
        c["oid"] = oid.into();
        c["xms_edov"] = true.into();
    }
    c
}
