//! The AuthnRequest, sent over the HTTP-Redirect binding: raw DEFLATE,
//! base64, URL-encoded as `SAMLRequest`, with an opaque `RelayState`
//! (at most 80 bytes, as the binding says; the return path itself stays in
//! the SP's sealed cookie). When the SP has a signing key, the query is
//! signed as the binding specifies (`SigAlg`, `Signature` over
//! `SAMLRequest=…&RelayState=…&SigAlg=…`, RSA-SHA256): what Entra's
//! "Require verification certificates" asks for.

use std::io::Write as _;

use base64::Engine;

/// An AuthnRequest to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthnRequest {
    /// Its `ID`, which the response's `InResponseTo` must repeat.
    pub id: String,
    /// The IdP's SSO URL with `SAMLRequest` and `RelayState`.
    pub url: String,
}

/// What an AuthnRequest says.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a> {
    /// The IdP's SSO URL (HTTP-Redirect).
    pub sso_url: &'a str,
    /// The SP's entity ID (the request's `Issuer`: Entra's "Identifier").
    pub entity_id: &'a str,
    /// The ACS URL (Entra's "Reply URL").
    pub acs_url: &'a str,
    /// The `NameIDPolicy` format.
    pub name_id_format: &'a str,
    /// Ask the IdP to authenticate the user again.
    pub force_authn: bool,
    /// The opaque key the response comes back with.
    pub relay_state: &'a str,
    /// The request's `ID` (an `xs:ID`: must not start with a digit).
    pub id: &'a str,
    /// Now, in seconds since the epoch.
    pub now: u64,
    /// The SP's key, to sign the request with.
    pub signing_key: Option<&'a ring::signature::RsaKeyPair>,
}

/// `SigAlg` of a request signed with RSA-SHA256.
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Reads the SP's RSA signing key from PEM (`PRIVATE KEY`, PKCS#8).
pub fn signing_key(pem: &str) -> Result<ring::signature::RsaKeyPair, String> {
    use rustls_pki_types::pem::PemObject as _;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "the signing key must be a PEM `PRIVATE KEY` (PKCS#8, RSA)".to_owned())?;
    ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|e| format!("the signing key is not an RSA PKCS#8 key: {e}"))
}

/// The redirect to the IdP for `p`.
pub fn authn_request(p: &Params<'_>) -> AuthnRequest {
    let mut xml = String::with_capacity(512);
    xml.push_str(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"",
    );
    escape(p.id, &mut xml);
    xml.push_str("\" Version=\"2.0\" IssueInstant=\"");
    xml.push_str(&crate::time::format(p.now));
    xml.push_str("\" Destination=\"");
    escape(p.sso_url, &mut xml);
    xml.push_str("\" AssertionConsumerServiceURL=\"");
    escape(p.acs_url, &mut xml);
    xml.push_str("\" ProtocolBinding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\"");
    if p.force_authn {
        xml.push_str(" ForceAuthn=\"true\"");
    }
    xml.push_str("><saml:Issuer>");
    escape(p.entity_id, &mut xml);
    xml.push_str("</saml:Issuer><samlp:NameIDPolicy Format=\"");
    escape(p.name_id_format, &mut xml);
    xml.push_str("\" AllowCreate=\"true\"/></samlp:AuthnRequest>");
    AuthnRequest {
        id: p.id.to_owned(),
        url: redirect(&Redirect {
            to: p.sso_url,
            param: "SAMLRequest",
            xml: &xml,
            relay_state: Some(p.relay_state),
            key: p.signing_key,
        }),
    }
}

/// A message to send by the HTTP-Redirect binding.
pub(crate) struct Redirect<'a> {
    /// Where.
    pub(crate) to: &'a str,
    /// `SAMLRequest` or `SAMLResponse`.
    pub(crate) param: &'a str,
    /// The message.
    pub(crate) xml: &'a str,
    /// The `RelayState`, if any.
    pub(crate) relay_state: Option<&'a str>,
    /// The SP's key, to sign the query with.
    pub(crate) key: Option<&'a ring::signature::RsaKeyPair>,
}

/// The URL that sends `r`: DEFLATE, base64, the query, and its signature
/// when there is a key.
pub(crate) fn redirect(r: &Redirect<'_>) -> String {
    let Redirect {
        to,
        param,
        xml,
        relay_state,
        key,
    } = *r;
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let deflated = deflate
        .write_all(xml.as_bytes())
        .and_then(|()| deflate.finish())
        .unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(deflated);
    let sep = if to.contains('?') { '&' } else { '?' };
    let mut query = format!("{param}={}", url_encode(&encoded));
    if let Some(relay) = relay_state {
        query.push_str("&RelayState=");
        query.push_str(&url_encode(relay));
    }
    if let Some(key) = key {
        query.push_str("&SigAlg=");
        query.push_str(&url_encode(RSA_SHA256));
        let mut signature = vec![0; key.public().modulus_len()];
        let signed = key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            query.as_bytes(),
            &mut signature,
        );
        if signed.is_ok() {
            query.push_str("&Signature=");
            query.push_str(&url_encode(
                &base64::engine::general_purpose::STANDARD.encode(signature),
            ));
        }
    }
    format!("{to}{sep}{query}")
}

/// The XML of a message sent by the HTTP-Redirect binding (`SAMLResponse`
/// or `SAMLRequest`, URL-decoded already), inflated to at most `limit`
/// bytes: a deflate bomb stops at the cap (CVE-2025-25293).
pub fn inflate(base64_text: &str, limit: usize) -> Result<String, crate::Rejection> {
    use std::io::Read as _;
    let clean: String = base64_text
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|_| crate::Rejection::xml("the message is not base64"))?;
    let mut out = String::new();
    let read = flate2::read::DeflateDecoder::new(raw.as_slice())
        .take(u64::try_from(limit).unwrap_or(u64::MAX) + 1)
        .read_to_string(&mut out)
        .map_err(|_| crate::Rejection::xml("the message does not inflate to UTF-8"))?;
    if read > limit {
        return Err(crate::Rejection::xml("the message inflates past the limit"));
    }
    Ok(out)
}

pub(crate) fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn the_request_deflates_to_what_entra_expects() {
        let r = authn_request(&Params {
            sso_url: "https://login.microsoftonline.com/t/saml2",
            entity_id: "https://app.example.com/ngrok/saml",
            acs_url: "https://app.example.com/ngrok/saml/acs",
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            force_authn: true,
            relay_state: "k1",
            id: "_abc",
            now: 1_796_644_800,
            signing_key: None,
        });
        let query = r.url.split_once('?').expect("query").1;
        let b64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("SAMLRequest="))
            .expect("SAMLRequest");
        let b64 = b64
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(raw.as_slice())
            .read_to_string(&mut xml)
            .expect("raw deflate");
        assert!(xml.contains("ID=\"_abc\""), "{xml}");
        assert!(
            xml.contains("IssueInstant=\"2026-12-07T12:00:00Z\""),
            "{xml}"
        );
        assert!(xml.contains("<saml:Issuer>https://app.example.com/ngrok/saml</saml:Issuer>"));
        assert!(xml.contains("ForceAuthn=\"true\""));
        assert!(r.url.ends_with("&RelayState=k1"));
        assert!(roxmltree::Document::parse(&xml).is_ok());
    }

    #[test]
    fn an_inflated_message_stops_at_its_cap() {
        use std::io::Write as _;
        let bomb = vec![b'a'; 10 * 1024 * 1024];
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&bomb).expect("write");
        let deflated = z.finish().expect("finish");
        assert!(
            deflated.len() < 64 * 1024,
            "a small bomb: {}",
            deflated.len()
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&deflated);
        let err = inflate(&b64, 64 * 1024).expect_err("capped");
        assert!(err.message().contains("past the limit"), "{err}");
        assert!(inflate("not base64!", 1024).is_err());
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"<x/>").expect("write");
        let ok = base64::engine::general_purpose::STANDARD.encode(z.finish().expect("finish"));
        assert_eq!(inflate(&ok, 1024).expect("small"), "<x/>");
    }
}
