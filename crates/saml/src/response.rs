//! A `samlp:Response` posted to the ACS, checked row by row against the
//! validation checklist, and the assertion it carries, read only from the
//! bytes a signature covered.
//!
//! The order matters: the document is parsed once (`xml::parse`), its
//! shape is checked (one `Response`, exactly one `Assertion` or
//! `EncryptedAssertion` anywhere, unique IDs, signatures only where they
//! sign their parent), the signature is verified, and then the verified
//! canonical bytes are parsed again and every value is read from that
//! second tree (the fix pattern of the signature-wrapping CVEs:
//! CVE-2024-45409, CVE-2025-47949). The envelope (`Destination`,
//! `Status`, `InResponseTo`) is checked too, but nothing is taken from it.

use std::collections::HashSet;

use base64::Engine;
use roxmltree::Node;

use crate::decrypt::{self, DecryptionKey};
use crate::metadata::IdpMetadata;
use crate::xml::{self, ns};
use crate::{Rejection, dsig, time};

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// Clock skew allowed on every time window (Entra's tokens allow "up to
/// five minutes"; Entra adds no buffer to `NotBefore`).
pub const SKEW: u64 = 180;

/// The service provider a response must be addressed to.
#[derive(Clone, Copy, Debug)]
pub struct Sp<'a> {
    /// The SP's entity ID: the `Audience`.
    pub entity_id: &'a str,
    /// The ACS URL: `Destination` and `Recipient`.
    pub acs_url: &'a str,
    /// The IdP: its `Issuer` and certificates.
    pub idp: &'a IdpMetadata,
    /// The SP's key, if the IdP encrypts assertions to it.
    pub decryption_key: Option<&'a DecryptionKey>,
}

/// What the response must answer.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The ID of the AuthnRequest this browser's flow sent, if it started
    /// one here.
    pub request_id: Option<&'a str>,
    /// Whether a response to no request (IdP-initiated) is accepted.
    pub allow_idp_initiated: bool,
    /// Now, in seconds since the epoch.
    pub now: u64,
}

/// A verified assertion.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assertion {
    /// Its `ID`: what the replay cache remembers.
    pub id: String,
    /// The IdP's entity ID.
    pub issuer: String,
    /// The subject's `NameID`.
    pub name_id: String,
    /// The `NameID`'s `Format`, if given.
    pub name_id_format: Option<String>,
    /// The `AuthnStatement`'s `SessionIndex` (for single logout).
    pub session_index: Option<String>,
    /// When the assertion stops being usable: the earliest of the bearer
    /// confirmation's and the conditions' `NotOnOrAfter`.
    pub not_on_or_after: u64,
    /// `SessionNotOnOrAfter`, if the IdP limits the session.
    pub session_not_on_or_after: Option<u64>,
    /// The request it answers, if any (none: IdP-initiated).
    pub in_response_to: Option<String>,
    /// Attributes by `Name`, values in order.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl Assertion {
    /// The values of attribute `name`.
    pub fn attribute(&self, name: &str) -> &[String] {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The first value of attribute `name`, or "".
    pub fn first(&self, name: &str) -> &str {
        self.attribute(name).first().map_or("", String::as_str)
    }
}

/// Checks a base64 `SAMLResponse` as posted to the ACS, and returns its
/// assertion.
pub fn validate(
    saml_response: &str,
    sp: &Sp<'_>,
    expected: &Expected<'_>,
) -> Result<Assertion, Rejection> {
    if saml_response.len() > xml::MAX_BYTES * 4 / 3 + 4 {
        return Err(Rejection::xml("the response is larger than 256 KiB"));
    }
    let clean: String = saml_response
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|_| Rejection::xml("`SAMLResponse` is not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| Rejection::xml("the response is not UTF-8"))?;
    validate_xml(&text, sp, expected)
}

/// [`validate`], of the decoded XML.
pub fn validate_xml(
    text: &str,
    sp: &Sp<'_>,
    expected: &Expected<'_>,
) -> Result<Assertion, Rejection> {
    let doc = xml::parse(text)?;
    let response = doc.root_element();
    if !xml::is(response, ns::SAMLP, "Response") {
        return Err(Rejection::invalid("the document is not a `samlp:Response`"));
    }
    if response.attribute("Version") != Some("2.0") {
        return Err(Rejection::invalid("the response is not SAML 2.0"));
    }
    // Shape: unique IDs (no `ID` pollution), one assertion in the whole
    // document and it a child of the response, nothing encrypted beside it,
    // signatures only as children of what they sign.
    let mut ids = HashSet::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        for a in node.attributes() {
            if matches!(a.name(), "ID" | "Id" | "id") && !ids.insert(a.value()) {
                return Err(Rejection::invalid(format!(
                    "the ID `{}` appears twice",
                    a.value()
                )));
            }
        }
    }
    let assertions: Vec<Node<'_, '_>> = doc
        .descendants()
        .filter(|n| xml::is(*n, ns::SAML, "Assertion"))
        .collect();
    let encrypted: Vec<Node<'_, '_>> = doc
        .descendants()
        .filter(|n| xml::is(*n, ns::SAML, "EncryptedAssertion"))
        .collect();
    let carried = match (assertions.as_slice(), encrypted.as_slice()) {
        ([a], []) => Carried::Plain(*a),
        ([], [e]) => Carried::Encrypted(*e),
        ([_, ..], [_, ..]) => {
            return Err(Rejection::invalid(
                "the response carries an encrypted assertion beside a plain one",
            ));
        }
        (a, e) => {
            return Err(Rejection::invalid(format!(
                "the response carries {} assertions, not one",
                a.len() + e.len()
            )));
        }
    };
    let (Carried::Plain(carried_node) | Carried::Encrypted(carried_node)) = carried;
    if carried_node.parent() != Some(response) {
        return Err(Rejection::invalid(
            "the assertion is not a child of the response",
        ));
    }
    for sig in doc
        .descendants()
        .filter(|n| xml::is(*n, ns::DS, "Signature"))
    {
        let on_assertion = matches!(carried, Carried::Plain(a) if sig.parent() == Some(a));
        if sig.parent() != Some(response) && !on_assertion {
            return Err(Rejection::signature(
                "a signature that is not a child of the response or the assertion",
            ));
        }
    }
    // The envelope: the IdP's status, where it was sent, what it answers.
    let status = xml::one(response, ns::SAMLP, "Status")?;
    let code = xml::one(status, ns::SAMLP, "StatusCode")?;
    if code.attribute("Value") != Some(SUCCESS) {
        let message = xml::optional(status, ns::SAMLP, "StatusMessage")?
            .map(xml::text)
            .unwrap_or_default();
        return Err(Rejection::status(format!(
            "the IdP answered `{}`: {message}",
            code.attribute("Value").unwrap_or("")
        )));
    }
    if let Some(destination) = response.attribute("Destination")
        && destination != sp.acs_url
    {
        return Err(Rejection::invalid(format!(
            "`Destination` is `{destination}`, not this ACS"
        )));
    }
    check_answers(response.attribute("InResponseTo"), expected)?;
    if let Some(issuer) = xml::optional(response, ns::SAML, "Issuer")?
        && xml::text(issuer) != sp.idp.entity_id
    {
        return Err(Rejection::invalid("the response's `Issuer` is not the IdP"));
    }
    let assertion = match carried {
        Carried::Plain(assertion) => assertion,
        Carried::Encrypted(encrypted) => {
            return encrypted_assertion(response, encrypted, text, sp, expected);
        }
    };
    // The signature: on the assertion, or on the response around it.
    let verified = if dsig::signature_of(assertion)?.is_some() {
        if dsig::signature_of(response)?.is_some() {
            dsig::verify(response, text, &sp.idp.certificates)?;
        }
        dsig::verify(assertion, text, &sp.idp.certificates)?
    } else if dsig::signature_of(response)?.is_some() {
        dsig::verify(response, text, &sp.idp.certificates)?
    } else {
        return Err(Rejection::signature(
            "neither the assertion nor the response is signed",
        ));
    };
    // From here on, only the verified bytes.
    let trusted = xml::parse(&verified)?;
    let root = trusted.root_element();
    let assertion = if xml::is(root, ns::SAML, "Assertion") {
        root
    } else {
        xml::one(root, ns::SAML, "Assertion")?
    };
    read(assertion, sp, expected)
}

/// What a response carries: an assertion, or an encrypted one.
#[derive(Clone, Copy)]
enum Carried<'a, 'i> {
    Plain(Node<'a, 'i>),
    Encrypted(Node<'a, 'i>),
}

/// An `EncryptedAssertion`: the response's signature, if any, is checked
/// first (it covers the ciphertext, which is then taken from the verified
/// bytes); the plaintext is parsed in the namespaces in scope where it
/// was, held to the shape a plain assertion is held to, and its own
/// signature checked. An assertion neither signed itself nor inside a
/// signed response is refused: anyone can encrypt to the SP.
fn encrypted_assertion(
    response: Node<'_, '_>,
    encrypted: Node<'_, '_>,
    text: &str,
    sp: &Sp<'_>,
    expected: &Expected<'_>,
) -> Result<Assertion, Rejection> {
    let key = sp.decryption_key.ok_or_else(|| {
        Rejection::invalid(
            "the assertion is encrypted, but no decryption key is configured (`decryption_key`)",
        )
    })?;
    if sp.idp.certificates.is_empty() {
        // Fail closed before decrypting anything (CVE-2026-28323).
        return Err(Rejection::signature(
            "the IdP metadata has no signing certificate",
        ));
    }
    let response_verified = match dsig::signature_of(response)? {
        Some(_) => Some(dsig::verify(response, text, &sp.idp.certificates)?),
        None => None,
    };
    let plaintext = match &response_verified {
        Some(verified) => {
            let trusted = xml::parse(verified)?;
            decrypt::decrypt(
                xml::one(trusted.root_element(), ns::SAML, "EncryptedAssertion")?,
                key,
            )?
        }
        None => decrypt::decrypt(encrypted, key)?,
    };
    let wrapped = in_scope(encrypted, &plaintext);
    // A plaintext that is not one assertion fails as a bad key does.
    let cannot = || Rejection::invalid(decrypt::CANNOT_DECRYPT);
    let inner = xml::parse(&wrapped).map_err(|_| cannot())?;
    let root = inner.root_element();
    let mut elements = root.children().filter(|c| c.is_element());
    let (Some(assertion), None) = (elements.next(), elements.next()) else {
        return Err(cannot());
    };
    if !xml::is(assertion, ns::SAML, "Assertion")
        || root
            .children()
            .any(|c| c.is_text() && !c.text().unwrap_or("").trim().is_empty())
    {
        return Err(cannot());
    }
    let mut ids = HashSet::new();
    for node in inner.descendants().filter(|n| n.is_element()) {
        for a in node.attributes() {
            if matches!(a.name(), "ID" | "Id" | "id") && !ids.insert(a.value()) {
                return Err(Rejection::invalid(format!(
                    "the ID `{}` appears twice in the decrypted assertion",
                    a.value()
                )));
            }
        }
        if xml::is(node, ns::DS, "Signature") && node.parent() != Some(assertion) {
            return Err(Rejection::signature(
                "a signature that is not a child of the decrypted assertion",
            ));
        }
        if xml::is(node, ns::SAML, "Assertion") && node != assertion {
            return Err(Rejection::invalid(
                "the decrypted assertion holds another assertion",
            ));
        }
    }
    if dsig::signature_of(assertion)?.is_some() {
        let verified = dsig::verify(assertion, &wrapped, &sp.idp.certificates)?;
        let trusted = xml::parse(&verified)?;
        read(trusted.root_element(), sp, expected)
    } else if response_verified.is_some() {
        // Decrypted from the bytes the response's signature covered.
        read(assertion, sp, expected)
    } else {
        Err(Rejection::signature(
            "neither the decrypted assertion nor the response is signed",
        ))
    }
}

/// `plaintext` inside an element declaring the namespaces in scope at
/// `at`: an encrypted element may use prefixes its context declared.
fn in_scope(at: Node<'_, '_>, plaintext: &str) -> String {
    let mut s = String::with_capacity(plaintext.len() + 256);
    s.push_str("<decrypted");
    for n in at.namespaces() {
        match n.name() {
            Some("xml") => continue,
            Some(prefix) => {
                s.push_str(" xmlns:");
                s.push_str(prefix);
            }
            None => s.push_str(" xmlns"),
        }
        s.push_str("=\"");
        s.push_str(
            &n.uri()
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('"', "&quot;"),
        );
        s.push('"');
    }
    s.push('>');
    s.push_str(plaintext);
    s.push_str("</decrypted>");
    s
}

/// `InResponseTo` against the flow: a request's ID, or none when
/// IdP-initiated sign-in is allowed.
fn check_answers(in_response_to: Option<&str>, expected: &Expected<'_>) -> Result<(), Rejection> {
    match (in_response_to, expected.request_id) {
        (Some(got), Some(want)) if got == want => Ok(()),
        (Some(got), Some(_)) => Err(Rejection::invalid(format!(
            "`InResponseTo` `{got}` is not the request this browser sent"
        ))),
        (Some(got), None) => Err(Rejection::invalid(format!(
            "`InResponseTo` `{got}` answers no request in flight here"
        ))),
        (None, Some(_)) if !expected.allow_idp_initiated => Err(Rejection::invalid(
            "the response answers no request, but this browser sent one",
        )),
        (None, _) if !expected.allow_idp_initiated => Err(Rejection::idp_initiated()),
        (None, _) => Ok(()),
    }
}

fn read(a: Node<'_, '_>, sp: &Sp<'_>, expected: &Expected<'_>) -> Result<Assertion, Rejection> {
    let now = expected.now;
    let issuer = xml::text(xml::one(a, ns::SAML, "Issuer")?);
    if issuer != sp.idp.entity_id {
        return Err(Rejection::invalid(format!(
            "the assertion's `Issuer` is `{issuer}`, not the IdP's `{}`",
            sp.idp.entity_id
        )));
    }
    let id = a
        .attribute("ID")
        .ok_or_else(|| Rejection::invalid("the assertion has no ID"))?
        .to_owned();
    // The subject, confirmed as a bearer of this ACS, in time, for this
    // request.
    let subject = xml::one(a, ns::SAML, "Subject")?;
    let name = xml::one(subject, ns::SAML, "NameID")?;
    let name_id = xml::text(name);
    if name_id.is_empty() {
        return Err(Rejection::invalid("the `NameID` is empty"));
    }
    let mut confirmed = None;
    for sc in xml::children(subject, ns::SAML, "SubjectConfirmation") {
        if sc.attribute("Method") != Some(BEARER) {
            continue;
        }
        let data = xml::one(sc, ns::SAML, "SubjectConfirmationData")?;
        if data.attribute("Recipient") != Some(sp.acs_url) {
            return Err(Rejection::invalid(format!(
                "the bearer `Recipient` is `{}`, not this ACS",
                data.attribute("Recipient").unwrap_or("")
            )));
        }
        let until = time::attribute(data, "NotOnOrAfter")?
            .ok_or_else(|| Rejection::invalid("the bearer confirmation has no `NotOnOrAfter`"))?;
        if now >= until + SKEW {
            return Err(Rejection::invalid("the bearer confirmation has expired"));
        }
        if let Some(from) = time::attribute(data, "NotBefore")?
            && from > now + SKEW
        {
            return Err(Rejection::invalid(
                "the bearer confirmation is not valid yet",
            ));
        }
        check_answers(data.attribute("InResponseTo"), expected)?;
        confirmed = Some((until, data.attribute("InResponseTo").map(str::to_owned)));
    }
    let (confirm_until, in_response_to) =
        confirmed.ok_or_else(|| Rejection::invalid("no bearer `SubjectConfirmation`"))?;
    // Conditions: a time window and this SP as the audience.
    let conditions = xml::one(a, ns::SAML, "Conditions")?;
    let until = time::attribute(conditions, "NotOnOrAfter")?
        .ok_or_else(|| Rejection::invalid("the conditions have no `NotOnOrAfter`"))?;
    if now >= until + SKEW {
        return Err(Rejection::invalid("the assertion has expired"));
    }
    if let Some(from) = time::attribute(conditions, "NotBefore")?
        && from > now + SKEW
    {
        return Err(Rejection::invalid("the assertion is not valid yet"));
    }
    let restrictions: Vec<Node<'_, '_>> =
        xml::children(conditions, ns::SAML, "AudienceRestriction").collect();
    if restrictions.is_empty() {
        return Err(Rejection::invalid("the assertion names no audience"));
    }
    for r in restrictions {
        if !xml::children(r, ns::SAML, "Audience").any(|aud| xml::text(aud) == sp.entity_id) {
            return Err(Rejection::invalid(format!(
                "the audience is not this SP (`{}`)",
                sp.entity_id
            )));
        }
    }
    // Exactly one authentication statement (ngrok's ERR_NGROK_5311).
    let statements: Vec<Node<'_, '_>> = xml::children(a, ns::SAML, "AuthnStatement").collect();
    let [authn] = statements.as_slice() else {
        return Err(Rejection::authn_statements(statements.len()));
    };
    let session_not_on_or_after = time::attribute(*authn, "SessionNotOnOrAfter")?;
    let mut attributes: Vec<(String, Vec<String>)> = Vec::new();
    for statement in xml::children(a, ns::SAML, "AttributeStatement") {
        for attr in xml::children(statement, ns::SAML, "Attribute") {
            let Some(name) = attr.attribute("Name") else {
                continue;
            };
            let values = xml::children(attr, ns::SAML, "AttributeValue").map(xml::text);
            match attributes.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.extend(values),
                None => attributes.push((name.to_owned(), values.collect())),
            }
        }
    }
    Ok(Assertion {
        id,
        issuer,
        name_id,
        name_id_format: name.attribute("Format").map(str::to_owned),
        session_index: authn.attribute("SessionIndex").map(str::to_owned),
        not_on_or_after: confirm_until.min(until),
        session_not_on_or_after,
        in_response_to,
        attributes,
    })
}
