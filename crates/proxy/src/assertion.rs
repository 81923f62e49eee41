//! The identity assertion: a short-lived JWT naming the signed-in user,
//! signed with this proxy's key (ES256), sent to the upstream as
//! `X-Portcullis-Jwt-Assertion`, the way Pomerium sends
//! `X-Pomerium-Jwt-Assertion`. The public keys are served as a JWKS at
//! [`JWKS_PATH`], so an upstream checks who the user is with any JWT
//! library instead of trusting the network (or a header a client could
//! have set).
//!
//! Claims: `iss` and `aud` are the host the request named (the
//! application's domain, as Pomerium does); `sub` is the identity's stable
//! id; `email` (verified only), `name`, `user`, `groups`, `roles`,
//! `tid` when known; `iat`, `nbf`, `exp` two minutes later, `jti`.
//! A token is minted once per user and host and reused until it has a
//! minute left, so a signed-in user's requests cost a map look-up, not a
//! signature.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_actions::Identity;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// Where the verifying keys are served.
pub const JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";

/// The request header that carries the assertion.
pub const HEADER: &str = "x-portcullis-jwt-assertion";

/// The identity headers a proxied request carries (oauth2-proxy's
/// `--pass-user-headers` names), besides [`HEADER`].
pub const UPSTREAM_HEADERS: [&str; 4] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
];

/// Removes a client's copies of the identity headers: only the proxy
/// says who the user is.
pub(crate) fn strip(headers: &mut http::HeaderMap) {
    for name in UPSTREAM_HEADERS.into_iter().chain([HEADER]) {
        headers.remove(name);
    }
}

/// Sets the identity headers of a proxied request from `identity`.
pub(crate) fn to_upstream(
    headers: &mut http::HeaderMap,
    identity: &Identity,
    signer: &Signer,
    host: &str,
) {
    let [user, email, groups, preferred] = UPSTREAM_HEADERS;
    for (name, value) in [
        (user, identity.user.as_str()),
        (email, identity.email.as_str()),
        (groups, &identity.groups.join(",")),
        (preferred, identity.preferred_username.as_str()),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    if let Some(token) = signer
        .assert(identity, host)
        .and_then(|t| http::HeaderValue::from_str(&t).ok())
    {
        headers.insert(HEADER, token);
    }
}

/// How long an assertion is valid.
const LIFETIME: u64 = 120;
/// A cached assertion is minted anew when it has less than this left.
const REUSE_UNTIL: u64 = 60;
/// The most (user, host) pairs kept; past it, the cache starts over.
const CACHE_MAX: usize = 10_000;

/// Signs identity assertions.
pub struct Signer {
    key: EcdsaKeyPair,
    kid: String,
    jwks: bytes::Bytes,
    rng: SystemRandom,
    cache: Mutex<HashMap<(String, String), (String, u64)>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl Signer {
    /// A signer with a key of its own, made now: assertions verify against
    /// this process's JWKS only. Replicas share a key with
    /// [`Signer::from_pem`].
    pub fn generate() -> Result<Signer, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot make a signing key".to_owned())?;
        Signer::from_pkcs8(pkcs8.as_ref())
    }

    /// A signer with a P-256 private key in PEM (`PRIVATE KEY`, PKCS#8, as
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
    /// writes it).
    pub fn from_pem(pem: &str) -> Result<Signer, String> {
        use rustls::pki_types::pem::PemObject as _;
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(
            |_| "the signing key must be a PEM `PRIVATE KEY` (PKCS#8) on P-256".to_owned(),
        )?;
        Signer::from_pkcs8(der.secret_pkcs8_der())
    }

    fn from_pkcs8(der: &[u8]) -> Result<Signer, String> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("the signing key is not a P-256 PKCS#8 key: {e}"))?;
        // The uncompressed point: 0x04, x, y.
        let public = key.public_key().as_ref();
        let (x, y) = match public {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return Err("unexpected public key encoding".into()),
        };
        let thumb = ring::digest::digest(&ring::digest::SHA256, public);
        let kid = URL_SAFE_NO_PAD.encode(thumb.as_ref().get(..12).unwrap_or_default());
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                "kid": kid, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }]
        });
        Ok(Signer {
            key,
            kid,
            jwks: bytes::Bytes::from(jwks.to_string()),
            rng,
            cache: Mutex::default(),
        })
    }

    /// The key set to verify assertions with, as JSON.
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    /// An assertion of `identity` for requests to `host`.
    pub fn assert(&self, identity: &Identity, host: &str) -> Option<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let key = (
            format!("{}\0{}", identity.provider, identity.id),
            host.to_owned(),
        );
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let Some((token, exp)) = cache.get(&key)
            && *exp >= now + REUSE_UNTIL
        {
            return Some(token.clone());
        }
        let token = self.sign(identity, host, now)?;
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (token.clone(), now + LIFETIME));
        Some(token)
    }

    fn sign(&self, identity: &Identity, host: &str, now: u64) -> Option<String> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let mut claims = serde_json::json!({
            "iss": host,
            "aud": host,
            "sub": identity.id,
            "user": identity.user,
            "email": identity.email,
            "name": identity.name,
            "groups": identity.groups,
            "roles": identity.roles,
            "provider": identity.provider,
            "iat": now,
            "nbf": now,
            "exp": now + LIFETIME,
            "jti": portcullis_actions::session::random_token(12),
        });
        if !identity.tenant.is_empty() {
            claims["tid"] = serde_json::Value::from(identity.tenant.as_str());
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(&self.rng, signing_input.as_bytes()).ok()?;
        Some(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            provider: "oidc",
            id: "tid/oid".into(),
            user: "oid".into(),
            email: "alice@example.com".into(),
            groups: vec!["g1".into()],
            ..Identity::default()
        }
    }

    #[test]
    fn assertions_verify_against_the_served_key_set() {
        let signer = Signer::generate().expect("key");
        let token = signer.assert(&alice(), "app.example.com").expect("token");
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&signer.jwks()).expect("jwks");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        let jwk = jwks.find(header.kid.as_deref().unwrap_or("")).expect("kid");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["app.example.com"]);
        validation.set_issuer(&["app.example.com"]);
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("verifies");
        assert_eq!(data.claims["email"], "alice@example.com");
        assert_eq!(data.claims["groups"][0], "g1");
        // Another host's audience does not accept it.
        validation.set_audience(&["other.example.com"]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_err());
        // A tampered payload does not verify.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            data.claims
                .to_string()
                .replace("alice@example.com", "admin@example.com"),
        );
        parts[1] = &forged;
        validation.set_audience(&["app.example.com"]);
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&parts.join("."), &key, &validation).is_err()
        );
    }

    #[test]
    fn a_user_gets_the_same_token_until_it_nears_expiry() {
        let signer = Signer::generate().expect("key");
        let a = signer.assert(&alice(), "app.example.com");
        assert_eq!(a, signer.assert(&alice(), "app.example.com"));
        assert_ne!(a, signer.assert(&alice(), "other.example.com"));
    }

    #[test]
    fn a_pem_key_is_read_and_a_wrong_one_refused() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let signer = Signer::from_pem(&key.serialize_pem()).expect("pem");
        assert!(signer.assert(&alice(), "h").is_some());
        let rsa = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        assert!(Signer::from_pem(rsa).is_err());
        assert!(Signer::from_pem("not a key").is_err());
    }
}
