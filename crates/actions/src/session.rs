//! Sealed cookies: sign-in sessions and the short-lived state of a sign-in
//! flow, kept by the browser, encrypted and authenticated with
//! XChaCha20-Poly1305 so the client can neither read nor forge them.
//!
//! The cookie's name is the associated data: a flow cookie cannot be
//! replayed as a session cookie, nor one action's session as another's.
//! Several keys may be configured: the first seals, every one opens, so a
//! key can be rotated without signing everyone out (add the new key first,
//! drop the old one once sessions sealed with it have expired).

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

mod store;
#[cfg(test)]
mod tests;

pub use store::{Sessions, Summary, users_of};

const NONCE_LEN: usize = 24;

/// The keys sessions are sealed and opened with.
#[derive(Clone)]
pub struct Keys {
    ciphers: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} keys)", self.ciphers.len())
    }
}

impl Keys {
    /// Keys from 32-byte secrets; the first seals. With none, a random key
    /// is made: sessions then last only as long as the process.
    pub fn new(secrets: &[[u8; 32]]) -> Keys {
        let mut ciphers: Vec<XChaCha20Poly1305> = secrets
            .iter()
            .map(|k| XChaCha20Poly1305::new(k.into()))
            .collect();
        if ciphers.is_empty() {
            ciphers.push(XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(
                &mut OsRng,
            )));
        }
        Keys { ciphers }
    }

    /// `plain`, sealed for the cookie `name`, as cookie-safe text.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Option<String> {
        let cipher = self.ciphers.first()?;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// The plain text of a value [`Keys::seal`] made for `name`, if any key
    /// opens it.
    pub fn open(&self, name: &str, value: &str) -> Option<Vec<u8>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim())
            .ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::from_slice(nonce);
        self.ciphers.iter().find_map(|c| {
            c.decrypt(
                nonce,
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()
        })
    }
}

/// A fresh random key.
pub fn random_key() -> [u8; 32] {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

/// A key from its base64 text (standard or URL-safe alphabet), as
/// configured: 32 bytes.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .ok()?;
    bytes.try_into().ok()
}

/// `n` random bytes, as URL-safe text (state, nonce, PKCE verifier).
pub fn random_token(n: usize) -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
