//! Single logout over the HTTP-Redirect binding, both ways.
//!
//! - **SP-initiated**: [`request`] sends the user's `LogoutRequest` to the
//!   IdP; [`read_response`] reads the `LogoutResponse` it comes back with.
//!   Nothing is decided on that answer: the session here ended first.
//! - **IdP-initiated** (the user signed out at the IdP, or of another app
//!   there): [`verify_query`] checks the binding's signature over the
//!   query as sent, with the metadata's keys; [`read_request`] reads the
//!   `LogoutRequest` and checks who sent it, to whom and when;
//!   [`response`] is the `LogoutResponse` that goes back. Which session
//!   ends is the caller's decision (`sign_in/saml.rs`): only the one of
//!   the browser that brought the request, and only if it is the named
//!   user's.

use base64::Engine;
use rustls_pki_types::CertificateDer;

use crate::metadata::IdpMetadata;
use crate::request::{Redirect, escape, redirect};
use crate::xml::{self, ns};
use crate::{Rejection, response::SKEW, time};

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// The status of a request the SP will not act on.
pub const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
/// How old a LogoutRequest may be (its `IssueInstant`).
const MAX_AGE: u64 = 10 * 60;

/// A LogoutRequest to send (single logout, SP-initiated).
#[derive(Clone, Copy, Debug)]
pub struct Logout<'a> {
    /// The IdP's single logout URL (HTTP-Redirect).
    pub slo_url: &'a str,
    /// The SP's entity ID (the `Issuer`).
    pub entity_id: &'a str,
    /// The user's `NameID`, as the assertion gave it.
    pub name_id: &'a str,
    /// The `SessionIndex` of the session that ends, if known.
    pub session_index: Option<&'a str>,
    /// The opaque key the response comes back with.
    pub relay_state: &'a str,
    /// The request's `ID`.
    pub id: &'a str,
    /// Now, in seconds since the epoch.
    pub now: u64,
    /// The SP's key, to sign the request with.
    pub signing_key: Option<&'a ring::signature::RsaKeyPair>,
}

/// The redirect to the IdP's single logout service for `p`.
pub fn request(p: &Logout<'_>) -> String {
    let mut xml = String::with_capacity(512);
    xml.push_str(
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"",
    );
    escape(p.id, &mut xml);
    xml.push_str("\" Version=\"2.0\" IssueInstant=\"");
    xml.push_str(&time::format(p.now));
    xml.push_str("\" Destination=\"");
    escape(p.slo_url, &mut xml);
    xml.push_str("\"><saml:Issuer>");
    escape(p.entity_id, &mut xml);
    xml.push_str("</saml:Issuer><saml:NameID>");
    escape(p.name_id, &mut xml);
    xml.push_str("</saml:NameID>");
    if let Some(index) = p.session_index {
        xml.push_str("<samlp:SessionIndex>");
        escape(index, &mut xml);
        xml.push_str("</samlp:SessionIndex>");
    }
    xml.push_str("</samlp:LogoutRequest>");
    redirect(&Redirect {
        to: p.slo_url,
        param: "SAMLRequest",
        xml: &xml,
        relay_state: Some(p.relay_state),
        key: p.signing_key,
    })
}

/// What an IdP's `LogoutResponse` says: the request it answers, and
/// whether the IdP ended its session. It only tells where the user goes
/// back to, and what to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutResponse {
    /// `InResponseTo`.
    pub in_response_to: Option<String>,
    /// Whether the status is Success.
    pub success: bool,
}

/// Reads a `LogoutResponse` (already inflated).
pub fn read_response(text: &str) -> Result<LogoutResponse, Rejection> {
    let doc = xml::parse(text)?;
    let root = doc.root_element();
    if !xml::is(root, ns::SAMLP, "LogoutResponse") {
        return Err(Rejection::invalid(
            "the document is not a `samlp:LogoutResponse`",
        ));
    }
    let status = xml::one(root, ns::SAMLP, "Status")?;
    let code = xml::one(status, ns::SAMLP, "StatusCode")?;
    Ok(LogoutResponse {
        in_response_to: root.attribute("InResponseTo").map(str::to_owned),
        success: code.attribute("Value") == Some(SUCCESS),
    })
}

/// Checks the HTTP-Redirect binding's signature of a message received in
/// `raw_query` (as sent: still URL-encoded) under `param`. `Ok(true)`: it
/// is signed, by one of `keys`; `Ok(false)`: it is not signed. A
/// signature that does not verify, or SHA-1, is a refusal.
pub fn verify_query(
    raw_query: &str,
    param: &str,
    keys: &[CertificateDer<'static>],
) -> Result<bool, Rejection> {
    let value = |name: &str| {
        let mut found = raw_query.split('&').filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then_some(v)
        });
        match (found.next(), found.next()) {
            (v, None) => Ok(v),
            (Some(_), Some(_)) => Err(Rejection::signature(format!("`{name}` appears twice"))),
            (None, Some(_)) => Ok(None),
        }
    };
    let (message, relay, sig_alg, signature) = (
        value(param)?,
        value("RelayState")?,
        value("SigAlg")?,
        value("Signature")?,
    );
    let Some(signature) = signature else {
        return Ok(false);
    };
    let (Some(message), Some(sig_alg)) = (message, sig_alg) else {
        return Err(Rejection::signature("a `Signature` without `SigAlg`"));
    };
    let verifier: &dyn rustls_pki_types::SignatureVerificationAlgorithm =
        match percent_decode(sig_alg).as_str() {
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
                webpki::ring::RSA_PKCS1_2048_8192_SHA256
            }
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
                webpki::ring::RSA_PKCS1_2048_8192_SHA384
            }
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
                webpki::ring::RSA_PKCS1_2048_8192_SHA512
            }
            other => {
                return Err(Rejection::signature(format!(
                    "signature algorithm `{other}` is not accepted (RSA with SHA-256, -384, -512)"
                )));
            }
        };
    // The signed octets are the parameters as they were sent, in the
    // binding's order (saml-bindings-2.0 §3.4.4.1).
    let mut signed = format!("{param}={message}");
    if let Some(relay) = relay {
        signed.push_str("&RelayState=");
        signed.push_str(relay);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(sig_alg);
    let signature = base64::engine::general_purpose::STANDARD
        .decode(percent_decode(signature))
        .map_err(|_| Rejection::signature("the `Signature` is not base64"))?;
    let verified = keys.iter().any(|der| {
        webpki::EndEntityCert::try_from(der).is_ok_and(|cert| {
            cert.verify_signature(verifier, signed.as_bytes(), &signature)
                .is_ok()
        })
    });
    if verified {
        Ok(true)
    } else {
        Err(Rejection::signature(
            "the signature does not verify with the IdP's certificates",
        ))
    }
}

/// A `LogoutRequest` from the IdP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdpLogout {
    /// Its `ID`, which the answer's `InResponseTo` repeats.
    pub id: String,
    /// The user whose sessions end.
    pub name_id: String,
    /// The IdP sessions that end (none: all of the user's).
    pub session_indexes: Vec<String>,
}

/// Reads a `LogoutRequest` (already inflated) sent by `idp` to this SP's
/// single logout URL `slo_url`, now.
pub fn read_request(
    text: &str,
    idp: &IdpMetadata,
    slo_url: &str,
    now: u64,
) -> Result<IdpLogout, Rejection> {
    let doc = xml::parse(text)?;
    let root = doc.root_element();
    if !xml::is(root, ns::SAMLP, "LogoutRequest") || root.attribute("Version") != Some("2.0") {
        return Err(Rejection::invalid(
            "the document is not a SAML 2.0 `samlp:LogoutRequest`",
        ));
    }
    let id = root
        .attribute("ID")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Rejection::invalid("the LogoutRequest has no ID"))?;
    let issuer = xml::text(xml::one(root, ns::SAML, "Issuer")?);
    if !same_idp(&issuer, &idp.entity_id) {
        return Err(Rejection::invalid(format!(
            "the LogoutRequest's `Issuer` is `{issuer}`, not the IdP"
        )));
    }
    if let Some(destination) = root.attribute("Destination")
        && destination != slo_url
    {
        return Err(Rejection::invalid(format!(
            "`Destination` is `{destination}`, not this SP's logout URL"
        )));
    }
    let issued = time::attribute(root, "IssueInstant")?
        .ok_or_else(|| Rejection::invalid("the LogoutRequest has no `IssueInstant`"))?;
    if issued > now + SKEW || now > issued + MAX_AGE + SKEW {
        return Err(Rejection::invalid(
            "the LogoutRequest was not issued in the last ten minutes",
        ));
    }
    if let Some(until) = time::attribute(root, "NotOnOrAfter")?
        && now >= until + SKEW
    {
        return Err(Rejection::invalid("the LogoutRequest has expired"));
    }
    let name_id = xml::text(xml::one(root, ns::SAML, "NameID")?);
    if name_id.is_empty() {
        return Err(Rejection::invalid("the `NameID` is empty"));
    }
    Ok(IdpLogout {
        id: id.to_owned(),
        name_id,
        session_indexes: xml::children(root, ns::SAMLP, "SessionIndex")
            .map(xml::text)
            .collect(),
    })
}

/// Whether `issuer` is the IdP whose entity ID is `entity_id`. Entra
/// issues assertions as `https://sts.windows.net/<tenant>/` and logout
/// messages as `https://login.microsoftonline.com/<tenant>/`: the same
/// tenant is the same IdP.
fn same_idp(issuer: &str, entity_id: &str) -> bool {
    let tenant = |s: &str| {
        s.strip_prefix("https://sts.windows.net/")
            .or_else(|| s.strip_prefix("https://login.microsoftonline.com/"))
            .map(|t| t.trim_end_matches('/').to_owned())
            .filter(|t| !t.is_empty() && !t.contains('/'))
    };
    issuer == entity_id || tenant(issuer).is_some_and(|t| Some(t) == tenant(entity_id))
}

/// The SP's answer to an IdP's LogoutRequest.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// The IdP's single logout URL.
    pub to: &'a str,
    /// The SP's entity ID (the `Issuer`).
    pub entity_id: &'a str,
    /// The request answered.
    pub in_response_to: &'a str,
    /// Its `RelayState`, given back as it came.
    pub relay_state: Option<&'a str>,
    /// The answer's `ID`.
    pub id: &'a str,
    /// Success, or [`REQUESTER`] with a message.
    pub status: &'a str,
    /// Why, when not Success.
    pub message: Option<&'a str>,
    /// Now, in seconds since the epoch.
    pub now: u64,
    /// The SP's key, to sign the answer with.
    pub signing_key: Option<&'a ring::signature::RsaKeyPair>,
}

/// The success status.
pub const SUCCESS_STATUS: &str = SUCCESS;

/// The redirect back to the IdP with the `LogoutResponse` for `a`.
pub fn response(a: &Answer<'_>) -> String {
    let mut xml = String::with_capacity(512);
    xml.push_str(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"",
    );
    escape(a.id, &mut xml);
    xml.push_str("\" Version=\"2.0\" IssueInstant=\"");
    xml.push_str(&time::format(a.now));
    xml.push_str("\" Destination=\"");
    escape(a.to, &mut xml);
    xml.push_str("\" InResponseTo=\"");
    escape(a.in_response_to, &mut xml);
    xml.push_str("\"><saml:Issuer>");
    escape(a.entity_id, &mut xml);
    xml.push_str("</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"");
    escape(a.status, &mut xml);
    xml.push_str("\"/>");
    if let Some(m) = a.message {
        xml.push_str("<samlp:StatusMessage>");
        escape(m, &mut xml);
        xml.push_str("</samlp:StatusMessage>");
    }
    xml.push_str("</samlp:Status></samlp:LogoutResponse>");
    redirect(&Redirect {
        to: a.to,
        param: "SAMLResponse",
        xml: &xml,
        relay_state: a.relay_state,
        key: a.signing_key,
    })
}

/// `%XX` decoded, `+` as a space (a query's form encoding); a `%` not
/// followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_logout_issuers_are_the_tenant_of_the_entity_id() {
        let sts = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/";
        assert!(same_idp(sts, sts));
        assert!(same_idp(
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/",
            sts
        ));
        assert!(!same_idp(
            "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/",
            sts
        ));
        assert!(!same_idp("https://login.microsoftonline.com/", sts));
        assert!(!same_idp("https://evil.example/", "https://idp.example/"));
    }

    #[test]
    fn a_query_signature_is_all_or_nothing() {
        // No signature: unsigned, not refused.
        assert_eq!(
            verify_query("SAMLRequest=abc&RelayState=r", "SAMLRequest", &[]),
            Ok(false)
        );
        // A parameter twice is a refusal (which one was signed?).
        assert!(
            verify_query(
                "SAMLRequest=a&SAMLRequest=b&Signature=x",
                "SAMLRequest",
                &[]
            )
            .is_err()
        );
        // SHA-1 is refused; a signature with no keys does not verify.
        let sha1 = "SAMLRequest=a&SigAlg=http%3A%2F%2Fwww.w3.org%2F2000%2F09%2Fxmldsig%23rsa-sha1&Signature=AAAA";
        let err = verify_query(sha1, "SAMLRequest", &[]).expect_err("sha1");
        assert!(err.message().contains("not accepted"), "{err}");
        let sha256 = "SAMLRequest=a&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature=AAAA";
        assert!(verify_query(sha256, "SAMLRequest", &[]).is_err());
    }

    #[test]
    fn percent_decoding_leaves_stray_percents() {
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
    }
}
