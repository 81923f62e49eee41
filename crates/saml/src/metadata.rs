//! The IdP's metadata (Entra's Federation Metadata XML): its entity ID,
//! every signing certificate (Entra lists several during a rollover, and
//! a validator "should support all certificates in the document"), and
//! its single sign-on and logout URLs for the HTTP-Redirect binding.
//!
//! A byte order mark is accepted (Entra's per-app metadata has one). A
//! metadata document that carries a signature must verify with the
//! certificates it lists: that proves the file was not edited in transit
//! or by hand, not who made it (that trust comes from where it was
//! fetched or who pasted it).

use base64::Engine;
use rustls_pki_types::CertificateDer;

use crate::xml::{self, ns};
use crate::{Rejection, dsig};

const REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// What the SP needs of an IdP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpMetadata {
    /// `entityID`: the `Issuer` its responses must carry.
    pub entity_id: String,
    /// The certificates its signatures may be made with.
    pub certificates: Vec<CertificateDer<'static>>,
    /// Where AuthnRequests go (HTTP-Redirect).
    pub sso_url: String,
    /// Where LogoutRequests go (HTTP-Redirect), if it has one.
    pub slo_url: Option<String>,
}

impl IdpMetadata {
    /// Reads metadata text (an `EntityDescriptor` with an
    /// `IDPSSODescriptor`).
    pub fn parse(text: &str) -> Result<IdpMetadata, Rejection> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let doc = xml::parse(text)?;
        let root = doc.root_element();
        if !xml::is(root, ns::MD, "EntityDescriptor") {
            return Err(Rejection::metadata(
                "the root element is not an `md:EntityDescriptor`",
            ));
        }
        let entity_id = root
            .attribute("entityID")
            .filter(|e| !e.trim().is_empty())
            .ok_or_else(|| Rejection::metadata("no `entityID`"))?
            .to_owned();
        let idp = xml::one(root, ns::MD, "IDPSSODescriptor")
            .map_err(|e| Rejection::metadata(format!("{} (`IDPSSODescriptor`)", e.message())))?;
        let mut certificates = Vec::new();
        for key in xml::children(idp, ns::MD, "KeyDescriptor") {
            if key.attribute("use").is_some_and(|u| u != "signing") {
                continue;
            }
            for cert in key
                .descendants()
                .filter(|n| xml::is(*n, ns::DS, "X509Certificate"))
            {
                let b64: String = xml::text(cert)
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| Rejection::metadata("an `X509Certificate` is not base64"))?;
                let der = CertificateDer::from(der);
                webpki::EndEntityCert::try_from(&der).map_err(|e| {
                    Rejection::metadata(format!("a signing certificate does not parse: {e:?}"))
                })?;
                if !certificates.contains(&der) {
                    certificates.push(der);
                }
            }
        }
        if certificates.is_empty() {
            return Err(Rejection::metadata("no signing certificate"));
        }
        let endpoint = |local: &str| {
            xml::children(idp, ns::MD, local)
                .find(|s| s.attribute("Binding") == Some(REDIRECT))
                .and_then(|s| s.attribute("Location"))
                .map(str::to_owned)
        };
        let sso_url = endpoint("SingleSignOnService")
            .ok_or_else(|| Rejection::metadata("no HTTP-Redirect `SingleSignOnService`"))?;
        let slo_url = endpoint("SingleLogoutService");
        if dsig::signature_of(root)?.is_some() {
            dsig::verify(root, text, &certificates).map_err(|e| {
                Rejection::metadata(format!("its own signature fails: {}", e.message()))
            })?;
        }
        Ok(IdpMetadata {
            entity_id,
            certificates,
            sso_url,
            slo_url,
        })
    }
}
