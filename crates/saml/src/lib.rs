//! A narrow SAML 2.0 service-provider profile: the Web Browser SSO
//! profile as Microsoft Entra ID speaks it, and nothing more.
//!
//! ```text
//! metadata XML ─IdpMetadata::parse→ entity ID, signing certificates, SSO URL
//! request::authn_request → redirect to the IdP (HTTP-Redirect, DEFLATE)
//! SAMLResponse ─response::validate→ Assertion (NameID, attributes, times)
//!               (an EncryptedAssertion decrypted first: `decrypt.rs`)
//! logout::request / logout::read_response   single logout from the SP
//! logout::verify_query, read_request, response   single logout from the IdP
//! ```
//!
//! XML signatures are where SAML implementations fail (signature
//! wrapping, comment truncation, keys from `KeyInfo`, parser
//! differentials), so this crate verifies one shape and refuses the rest:
//! one parse with no DTD, comments or processing instructions
//! (`xml.rs`); exclusive canonicalization (`c14n.rs`); one enveloped
//! signature with one reference to its parent, RSA with SHA-2, keys from
//! the metadata only (`dsig.rs`); then the verified canonical bytes are
//! parsed again and every value is read from them (`response.rs`).
//! Everything is pure: no I/O, no clock (callers pass `now`), no HTTP.
//! `docs/saml.md` maps each check to the attack it stops.

mod c14n;
mod decrypt;
mod dsig;
pub mod logout;
pub mod metadata;
pub mod request;
pub mod response;
pub mod time;
mod xml;

pub use crate::decrypt::DecryptionKey;
pub use crate::metadata::IdpMetadata;
pub use crate::response::{Assertion, Expected, Sp};

/// Entra's claim names.
pub mod claims {
    /// The verified mailbox (`user.mail`).
    pub const EMAIL: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
    /// The display name claim (Entra: the UPN).
    pub const NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
    /// Given name.
    pub const GIVEN_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
    /// Surname.
    pub const SURNAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";
    /// The user's immutable object ID.
    pub const OBJECT_ID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
    /// The tenant ID.
    pub const TENANT_ID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";
    /// Group object IDs (at most 150).
    pub const GROUPS: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups";
    /// Present instead of `GROUPS` past 150 groups.
    pub const GROUPS_LINK: &str = "http://schemas.microsoft.com/claims/groups.link";
    /// App roles.
    pub const ROLES: &str = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
    /// The display name.
    pub const DISPLAY_NAME: &str = "http://schemas.microsoft.com/identity/claims/displayname";
}

/// Why a document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    kind: Kind,
    message: String,
}

/// What kind of check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not XML this profile reads: too large, DTD, comments, malformed.
    Xml,
    /// The signature is missing, misshapen or does not verify.
    Signature,
    /// A SAML check failed: issuer, audience, times, recipient, request.
    Invalid,
    /// The IdP answered with an error status.
    Status,
    /// A response to no request, and IdP-initiated sign-in is off.
    IdpInitiated,
    /// Not exactly one `AuthnStatement`.
    AuthnStatements,
    /// The IdP metadata cannot be used.
    Metadata,
}

impl Rejection {
    pub(crate) fn xml(m: impl Into<String>) -> Rejection {
        Rejection {
            kind: Kind::Xml,
            message: m.into(),
        }
    }
    pub(crate) fn signature(m: impl Into<String>) -> Rejection {
        Rejection {
            kind: Kind::Signature,
            message: m.into(),
        }
    }
    pub(crate) fn invalid(m: impl Into<String>) -> Rejection {
        Rejection {
            kind: Kind::Invalid,
            message: m.into(),
        }
    }
    pub(crate) fn status(m: impl Into<String>) -> Rejection {
        Rejection {
            kind: Kind::Status,
            message: m.into(),
        }
    }
    pub(crate) fn metadata(m: impl Into<String>) -> Rejection {
        Rejection {
            kind: Kind::Metadata,
            message: m.into(),
        }
    }
    /// A message used before (a replay), as the caller's cache found.
    pub fn replayed(m: impl Into<String>) -> Rejection {
        Rejection {
            kind: Kind::Invalid,
            message: m.into(),
        }
    }
    pub(crate) fn idp_initiated() -> Rejection {
        Rejection {
            kind: Kind::IdpInitiated,
            message: "IdP-initiated sign-in is not allowed (`allow_idp_initiated: true` allows it)"
                .into(),
        }
    }
    pub(crate) fn authn_statements(n: usize) -> Rejection {
        Rejection {
            kind: Kind::AuthnStatements,
            message: format!("the assertion has {n} authentication statements, not one"),
        }
    }

    /// What kind of check failed.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// What failed, in one line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error code a response carries: ngrok's where ngrok has one.
    pub fn code(&self) -> &'static str {
        match self.kind {
            Kind::IdpInitiated => "ERR_NGROK_5302",
            Kind::AuthnStatements => "ERR_NGROK_5311",
            Kind::Metadata => "ERR_NGROK_1683",
            Kind::Xml | Kind::Signature | Kind::Invalid | Kind::Status => "ERR_NGROK_5301",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}
