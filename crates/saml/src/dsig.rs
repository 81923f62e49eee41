//! XML Signature verification, narrowed to the one shape a SAML
//! signature has: an enveloped `ds:Signature` that is a direct child of
//! the element it signs, with exactly one `Reference` to that element's
//! `ID`, the transforms enveloped-signature then exclusive
//! canonicalization, SHA-2 digests and RSA PKCS#1 v1.5 signatures
//! (`rsa-sha256`, `-sha384`, `-sha512`), checked with keys from the IdP's
//! metadata only: `KeyInfo` is never read (CVE-2023-48703).
//!
//! Anything else (another algorithm, a second reference, a transform more,
//! SHA-1) is refused, not tolerated. What [`verify`] returns is the
//! canonical form of the signed element, the only bytes a caller may read
//! from afterwards (`response.rs` parses them again).

use base64::Engine;
use roxmltree::Node;
use rustls_pki_types::CertificateDer;
use sha2::Digest;

use crate::Rejection;
use crate::c14n::{self, Options};
use crate::xml::{self, ns};

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The signature algorithms accepted, with webpki's verifier for each.
fn signature_algorithm(
    uri: &str,
) -> Option<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm> {
    match uri {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
            Some(webpki::ring::RSA_PKCS1_2048_8192_SHA256)
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
            Some(webpki::ring::RSA_PKCS1_2048_8192_SHA384)
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
            Some(webpki::ring::RSA_PKCS1_2048_8192_SHA512)
        }
        _ => None,
    }
}

fn digest(uri: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    match uri {
        "http://www.w3.org/2001/04/xmlenc#sha256" => Some(sha2::Sha256::digest(bytes).to_vec()),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => {
            Some(sha2::Sha384::digest(bytes).to_vec())
        }
        "http://www.w3.org/2001/04/xmlenc#sha512" => Some(sha2::Sha512::digest(bytes).to_vec()),
        _ => None,
    }
}

/// The signature child of `signed`, if any; two are a refusal.
pub(crate) fn signature_of<'a, 'i>(
    signed: Node<'a, 'i>,
) -> Result<Option<Node<'a, 'i>>, Rejection> {
    xml::optional(signed, ns::DS, "Signature")
}

fn algorithm<'a>(node: Node<'a, '_>) -> &'a str {
    node.attribute("Algorithm").unwrap_or("")
}

/// The `PrefixList` of an exclusive canonicalization's
/// `InclusiveNamespaces`, if it has one.
fn inclusive(method: Node<'_, '_>) -> Result<Vec<String>, Rejection> {
    let mut out = Vec::new();
    for child in method.children().filter(|c| c.is_element()) {
        if !xml::is(child, ns::EC, "InclusiveNamespaces") {
            return Err(Rejection::signature(
                "an unexpected element in a canonicalization method",
            ));
        }
        out.extend(
            child
                .attribute("PrefixList")
                .unwrap_or("")
                .split_ascii_whitespace()
                .map(str::to_owned),
        );
    }
    Ok(out)
}

fn base64(text: &str) -> Result<Vec<u8>, Rejection> {
    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|_| Rejection::signature("a digest or signature value is not base64"))
}

/// Verifies the enveloped signature of `signed` (in the document whose
/// text is `src`) with one of `keys`, and returns the canonical form of
/// `signed` without its signature: the verified bytes.
pub(crate) fn verify(
    signed: Node<'_, '_>,
    src: &str,
    keys: &[CertificateDer<'static>],
) -> Result<String, Rejection> {
    if keys.is_empty() {
        // Fail closed (CVE-2026-28323): no trust anchor, no sign-in.
        return Err(Rejection::signature(
            "the IdP metadata has no signing certificate",
        ));
    }
    let signature = signature_of(signed)?.ok_or_else(|| Rejection::signature("not signed"))?;
    let id = signed
        .attribute("ID")
        .ok_or_else(|| Rejection::signature("the signed element has no ID"))?;
    let signed_info = xml::one(signature, ns::DS, "SignedInfo")?;
    let c14n_method = xml::one(signed_info, ns::DS, "CanonicalizationMethod")?;
    if algorithm(c14n_method) != EXC_C14N {
        return Err(Rejection::signature(format!(
            "canonicalization `{}` is not exclusive canonicalization",
            algorithm(c14n_method)
        )));
    }
    let method = xml::one(signed_info, ns::DS, "SignatureMethod")?;
    let verifier = signature_algorithm(algorithm(method)).ok_or_else(|| {
        Rejection::signature(format!(
            "signature algorithm `{}` is not accepted (RSA with SHA-256, -384, -512)",
            algorithm(method)
        ))
    })?;
    // Exactly one reference, to the element the signature sits in
    // (CVE-2025-29774: several references).
    let reference = xml::one(signed_info, ns::DS, "Reference")
        .map_err(|_| Rejection::signature("a signature must have exactly one reference"))?;
    if reference.attribute("URI") != Some(&format!("#{id}")) {
        return Err(Rejection::signature(
            "the reference does not name the element the signature is in",
        ));
    }
    let transforms = xml::one(reference, ns::DS, "Transforms")?;
    let list: Vec<Node<'_, '_>> = transforms.children().filter(|c| c.is_element()).collect();
    let [enveloped, exc] = list.as_slice() else {
        return Err(Rejection::signature(
            "the transforms must be enveloped-signature then exclusive canonicalization",
        ));
    };
    if !xml::is(*enveloped, ns::DS, "Transform")
        || algorithm(*enveloped) != ENVELOPED
        || enveloped.has_children()
        || !xml::is(*exc, ns::DS, "Transform")
        || algorithm(*exc) != EXC_C14N
    {
        return Err(Rejection::signature(
            "the transforms must be enveloped-signature then exclusive canonicalization",
        ));
    }
    let prefixes = inclusive(*exc)?;
    let digest_method = xml::one(reference, ns::DS, "DigestMethod")?;
    let expected = base64(&xml::text(xml::one(reference, ns::DS, "DigestValue")?))?;
    let canonical = c14n::canonicalize(
        signed,
        src,
        &Options {
            exclude: Some(signature.id()),
            inclusive: &prefixes,
        },
    );
    let actual = digest(algorithm(digest_method), canonical.as_bytes()).ok_or_else(|| {
        Rejection::signature(format!(
            "digest algorithm `{}` is not accepted (SHA-256, -384, -512)",
            algorithm(digest_method)
        ))
    })?;
    if actual != expected {
        return Err(Rejection::signature(
            "the digest does not match the signed element",
        ));
    }
    let signed_info_bytes = c14n::canonicalize(
        signed_info,
        src,
        &Options {
            exclude: None,
            inclusive: &inclusive(c14n_method)?,
        },
    );
    let value = base64(&xml::text(xml::one(signature, ns::DS, "SignatureValue")?))?;
    let verified = keys.iter().any(|der| {
        webpki::EndEntityCert::try_from(der).is_ok_and(|cert| {
            cert.verify_signature(verifier, signed_info_bytes.as_bytes(), &value)
                .is_ok()
        })
    });
    if !verified {
        return Err(Rejection::signature(
            "the signature does not verify with the IdP's certificates",
        ));
    }
    Ok(canonical)
}
