//! `terminate-tls` (`on_tcp_connect`): how this connection's TLS ends at
//! the proxy: the server certificate and key (PEM, CEL-interpolated, so
//! `secrets.get` works), TLS 1.2 and 1.3 bounds, the ALPN protocols
//! offered, and mutual TLS (the certificate authorities client
//! certificates must chain to, and how strictly).
//!
//! The action only says so ([`TlsTermination`] on the context); the proxy,
//! which owns the socket, runs the handshake after the phase, with a
//! rustls configuration it builds once per distinct termination. The
//! client certificate is then `conn.tls.client.*` to every later phase.
//! Rules of `on_tcp_connect` run before the handshake, so they read no
//! `conn.tls.*`: conditions on the client certificate belong in
//! `on_http_request`.

use std::sync::{Arc, Mutex};

use portcullis_cel::Diagnostic;

use crate::action::Config;
use crate::template::Template;
use crate::{Action, ActionError, CompileCx, RequestCtx, Run, Step};

/// A TLS version bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    V1_2,
    /// TLS 1.3.
    V1_3,
}

/// How client certificates are asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// No mutual TLS.
    None,
    /// A certificate chaining to the authorities is required
    /// (`require-and-verify`, ngrok's default).
    RequireAndVerify,
    /// A certificate is required but not verified (`require-any`): the
    /// handshake still proves the client holds its key.
    RequireAny,
    /// A certificate is asked for and verified if sent (`request`).
    Request,
}

/// How a connection's TLS is terminated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsTermination {
    /// The certificate chain (PEM); `None`: the endpoint's own (`--tls-cert`).
    pub certificate: Option<String>,
    /// Its private key (PEM).
    pub private_key: Option<String>,
    /// The lowest version accepted.
    pub min_version: TlsVersion,
    /// The highest version accepted.
    pub max_version: TlsVersion,
    /// The ALPN protocols offered, in preference order.
    pub alpn: Vec<String>,
    /// The certificate authorities of client certificates (PEM).
    pub client_cas: Vec<String>,
    /// How client certificates are asked for.
    pub client_auth: ClientAuth,
}

#[derive(Debug)]
pub(crate) struct TerminateTls {
    certificate: Option<Template>,
    private_key: Option<Template>,
    client_cas: Vec<Template>,
    min_version: TlsVersion,
    max_version: TlsVersion,
    alpn: Vec<String>,
    client_auth: ClientAuth,
    /// The last termination made, shared while its rendered values stay
    /// the same: the proxy builds a configuration per distinct one.
    last: Mutex<Option<Arc<TlsTermination>>>,
}

fn version(cfg: &Config<'_>, key: &str, default: TlsVersion) -> TlsVersion {
    match cfg.str(key) {
        Some("1.2") => TlsVersion::V1_2,
        Some("1.3") => TlsVersion::V1_3,
        _ => default,
    }
}

pub(crate) fn compile(cfg: Config<'_>, cx: &CompileCx<'_>) -> Result<Box<dyn Action>, Diagnostic> {
    let template = |key: &str| -> Result<Option<Template>, Diagnostic> {
        cfg.get(key)
            .map(|node| Template::compile(node, cx.phase, cx.src))
            .transpose()
    };
    let certificate = template("server_certificate")?;
    let private_key = template("server_private_key")?;
    // Constant PEM is checked now, so that a bad one is a diagnostic where
    // it is written rather than a refused handshake later.
    if let Some(pem) = certificate.as_ref().and_then(Template::constant)
        && certificates(pem).is_empty()
    {
        return Err(cfg.error(
            cfg.get("server_certificate"),
            "`server_certificate` holds no PEM certificate",
        ));
    }
    if let Some(pem) = private_key.as_ref().and_then(Template::constant)
        && !is_private_key(pem)
    {
        return Err(cfg.error(
            cfg.get("server_private_key"),
            "`server_private_key` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        ));
    }
    let mut client_cas = Vec::new();
    for node in cfg.seq("mutual_tls_certificate_authorities") {
        let t = Template::compile(node, cx.phase, cx.src)?;
        if let Some(pem) = t.constant()
            && certificates(pem).is_empty()
        {
            return Err(cfg.error(
                Some(node),
                "a certificate authority must be a PEM certificate",
            ));
        }
        client_cas.push(t);
    }
    let client_auth = if client_cas.is_empty() {
        ClientAuth::None
    } else {
        match cfg.str("mutual_tls_verification_strategy") {
            Some("require-any") => ClientAuth::RequireAny,
            Some("request") => ClientAuth::Request,
            _ => ClientAuth::RequireAndVerify,
        }
    };
    let alpn = match cfg.get("alpn_protocols") {
        None => vec!["h2".to_owned(), "http/1.1".to_owned()],
        Some(_) => cfg
            .seq("alpn_protocols")
            .iter()
            .filter_map(|n| n.scalar().map(|s| s.value.clone()))
            .collect(),
    };
    Ok(Box::new(TerminateTls {
        certificate,
        private_key,
        client_cas,
        min_version: version(&cfg, "min_version", TlsVersion::V1_2),
        max_version: version(&cfg, "max_version", TlsVersion::V1_3),
        alpn,
        client_auth,
        last: Mutex::new(None),
    }))
}

/// The DER certificates in `pem`.
pub fn certificates(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// Whether `pem` holds a private key.
fn is_private_key(pem: &str) -> bool {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).is_ok()
}

impl Action for TerminateTls {
    fn kind(&self) -> &'static str {
        "terminate-tls"
    }

    fn run<'a>(&'a self, ctx: &'a mut RequestCtx) -> Run<'a> {
        Run::Done(self.terminate(ctx))
    }
}

impl TerminateTls {
    fn terminate(&self, ctx: &mut RequestCtx) -> Result<Step, ActionError> {
        let render = |t: &Option<Template>| -> Result<Option<String>, ActionError> {
            t.as_ref()
                .map(|t| t.render(ctx).map(std::borrow::Cow::into_owned))
                .transpose()
        };
        let mut client_cas = Vec::with_capacity(self.client_cas.len());
        for t in &self.client_cas {
            client_cas.push(t.render(ctx)?.into_owned());
        }
        let termination = TlsTermination {
            certificate: render(&self.certificate)?,
            private_key: render(&self.private_key)?,
            min_version: self.min_version,
            max_version: self.max_version,
            alpn: self.alpn.clone(),
            client_cas,
            client_auth: self.client_auth,
        };
        let mut last = match self.last.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let shared = match &*last {
            Some(t) if **t == termination => t.clone(),
            _ => {
                let t = Arc::new(termination);
                *last = Some(t.clone());
                t
            }
        };
        drop(last);
        ctx.set_tls_termination(shared);
        Ok(Step::Next)
    }
}
