//! XML Encryption of an assertion (Entra's "token encryption"), narrowed
//! to what an IdP encrypting to an SP sends: one `xenc:EncryptedData` of
//! type Element, its AES key wrapped with RSA-OAEP to the SP's
//! certificate in an `xenc:EncryptedKey` (inside `ds:KeyInfo` or beside
//! the data in the `EncryptedAssertion`).
//!
//! Encryption proves nothing about who made an assertion: anyone can
//! encrypt to the SP's public certificate. So decrypting is only a step
//! before the signature checks of `response.rs`, never instead of them,
//! and what is refused here is refused for what it would expose:
//!
//! - RSA PKCS#1 v1.5 key transport (`rsa-1_5`) is refused: its padding
//!   check is Bleichenbacher's oracle. RSA-OAEP is done by AWS-LC, in
//!   constant time (the pure-Rust `rsa` crate is not: RUSTSEC-2023-0071).
//! - Every failure after the algorithms are known (the key does not
//!   unwrap, a length, the CBC padding, the GCM tag, not UTF-8, not one
//!   assertion) is one message: the CBC attacks on XML Encryption (Jager
//!   and Somorovsky, 2011) read the difference between such errors.

use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, Algorithm, DecryptionContext, PaddedBlockDecryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    OaepAlgorithm, OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use base64::Engine;
use roxmltree::Node;

use crate::Rejection;
use crate::xml::{self, ns};

/// The one message of every failure an attacker could learn from.
pub(crate) const CANNOT_DECRYPT: &str =
    "the encrypted assertion cannot be decrypted with the SP's key";
/// The most `EncryptedKey`s tried (one per recipient).
const MAX_KEYS: usize = 4;

/// The SP's RSA key, which IdPs encrypt assertions to.
pub struct DecryptionKey {
    key: OaepPrivateDecryptingKey,
}

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecryptionKey({} bits)", self.key.key_size_bits())
    }
}

impl DecryptionKey {
    /// Reads the SP's RSA key from PEM (`PRIVATE KEY`, PKCS#8), as
    /// `request::signing_key` does.
    pub fn from_pem(pem: &str) -> Result<DecryptionKey, String> {
        use rustls_pki_types::pem::PemObject as _;
        let der =
            rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
                "the decryption key must be a PEM `PRIVATE KEY` (PKCS#8, RSA)".to_owned()
            })?;
        let key = PrivateDecryptingKey::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|e| format!("the decryption key is not an RSA PKCS#8 key: {e}"))?;
        if key.key_size_bits() < 2048 {
            return Err("the decryption key is shorter than 2048 bits".to_owned());
        }
        let key = OaepPrivateDecryptingKey::new(key)
            .map_err(|_| "the decryption key cannot decrypt RSA-OAEP".to_owned())?;
        Ok(DecryptionKey { key })
    }
}

/// The content cipher of an `EncryptedData` (CBC's with its key length:
/// AWS-LC's cipher algorithms do not tell it).
enum Cipher {
    Cbc(&'static Algorithm, usize),
    Gcm(&'static aws_lc_rs::aead::Algorithm),
}

impl Cipher {
    fn from_uri(uri: &str) -> Result<Cipher, Rejection> {
        Ok(match uri {
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => Cipher::Cbc(&AES_128, 16),
            "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => Cipher::Cbc(&AES_192, 24),
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => Cipher::Cbc(&AES_256, 32),
            "http://www.w3.org/2009/xmlenc11#aes128-gcm" => {
                Cipher::Gcm(&aws_lc_rs::aead::AES_128_GCM)
            }
            "http://www.w3.org/2009/xmlenc11#aes192-gcm" => {
                Cipher::Gcm(&aws_lc_rs::aead::AES_192_GCM)
            }
            "http://www.w3.org/2009/xmlenc11#aes256-gcm" => {
                Cipher::Gcm(&aws_lc_rs::aead::AES_256_GCM)
            }
            other => {
                return Err(Rejection::invalid(format!(
                    "the assertion is encrypted with `{other}`, not AES-CBC or AES-GCM"
                )));
            }
        })
    }

    fn key_len(&self) -> usize {
        match self {
            Cipher::Cbc(_, len) => *len,
            Cipher::Gcm(a) => a.key_len(),
        }
    }

    /// Decrypts `data` (the IV, then the ciphertext, then for GCM the
    /// tag) in place and returns the plaintext.
    fn open<'a>(&self, key: &[u8], data: &'a mut [u8]) -> Option<&'a mut [u8]> {
        match self {
            Cipher::Cbc(alg, _) => {
                let (iv, rest) = data.split_at_mut_checked(16)?;
                if rest.is_empty() || rest.len() % 16 != 0 {
                    return None;
                }
                let iv: [u8; 16] = (*iv).try_into().ok()?;
                let key = UnboundCipherKey::new(alg, key).ok()?;
                // XML Encryption's padding is ISO 10126's: arbitrary bytes,
                // then their count.
                PaddedBlockDecryptingKey::cbc_iso10126(key)
                    .ok()?
                    .decrypt(rest, DecryptionContext::Iv128(FixedLength::from(iv)))
                    .ok()
            }
            Cipher::Gcm(alg) => {
                use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
                let (nonce, rest) = data.split_at_mut_checked(12)?;
                let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
                let key = LessSafeKey::new(UnboundKey::new(alg, key).ok()?);
                key.open_in_place(nonce, Aad::empty(), rest).ok()
            }
        }
    }
}

/// The OAEP parameters of an `EncryptedKey`'s `EncryptionMethod`.
fn key_transport(method: Node<'_, '_>) -> Result<&'static OaepAlgorithm, Rejection> {
    let uri = method.attribute("Algorithm").unwrap_or("");
    let digest = xml::optional(method, ns::DS, "DigestMethod")?
        .and_then(|d| d.attribute("Algorithm"))
        .unwrap_or("http://www.w3.org/2000/09/xmldsig#sha1");
    if method
        .children()
        .any(|c| c.is_element() && c.tag_name().name() == "OAEPparams")
    {
        return Err(Rejection::invalid(
            "RSA-OAEP with a label (`OAEPparams`) is not supported",
        ));
    }
    let mgf = xml::optional(method, ns::XENC11, "MGF")?
        .and_then(|m| m.attribute("Algorithm"))
        .unwrap_or("http://www.w3.org/2009/xmlenc11#mgf1sha1");
    let unsupported = || {
        Rejection::invalid(format!(
            "RSA-OAEP with digest `{digest}` and mask `{mgf}` is not supported (SHA-1 with MGF1-SHA-1, or the same SHA-2 for both)"
        ))
    };
    match uri {
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" => match digest {
            "http://www.w3.org/2000/09/xmldsig#sha1" => Ok(&OAEP_SHA1_MGF1SHA1),
            _ => Err(unsupported()),
        },
        "http://www.w3.org/2009/xmlenc11#rsa-oaep" => match (digest, mgf) {
            (
                "http://www.w3.org/2000/09/xmldsig#sha1",
                "http://www.w3.org/2009/xmlenc11#mgf1sha1",
            ) => Ok(&OAEP_SHA1_MGF1SHA1),
            (
                "http://www.w3.org/2001/04/xmlenc#sha256",
                "http://www.w3.org/2009/xmlenc11#mgf1sha256",
            ) => Ok(&OAEP_SHA256_MGF1SHA256),
            (
                "http://www.w3.org/2001/04/xmldsig-more#sha384",
                "http://www.w3.org/2009/xmlenc11#mgf1sha384",
            ) => Ok(&OAEP_SHA384_MGF1SHA384),
            (
                "http://www.w3.org/2001/04/xmlenc#sha512",
                "http://www.w3.org/2009/xmlenc11#mgf1sha512",
            ) => Ok(&OAEP_SHA512_MGF1SHA512),
            _ => Err(unsupported()),
        },
        "http://www.w3.org/2001/04/xmlenc#rsa-1_5" => Err(Rejection::invalid(
            "the assertion's key is wrapped with RSA PKCS#1 v1.5 (`rsa-1_5`), which is refused: it is a padding oracle; use RSA-OAEP",
        )),
        other => Err(Rejection::invalid(format!(
            "the assertion's key is wrapped with `{other}`, not RSA-OAEP"
        ))),
    }
}

fn cipher_value(parent: Node<'_, '_>) -> Result<Vec<u8>, Rejection> {
    let data = xml::one(parent, ns::XENC, "CipherData")?;
    let value = xml::one(data, ns::XENC, "CipherValue")?;
    let clean: String = xml::text(value)
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .map_err(|_| Rejection::invalid("a `CipherValue` is not base64"))
}

/// Decrypts the `EncryptedAssertion` `encrypted` with `key`, and returns
/// the plaintext: the serialized assertion, read by nothing until
/// `response.rs` has parsed it and checked its signature.
pub(crate) fn decrypt(encrypted: Node<'_, '_>, key: &DecryptionKey) -> Result<String, Rejection> {
    let data = xml::one(encrypted, ns::XENC, "EncryptedData")?;
    if encrypted
        .children()
        .filter(|c| c.is_element())
        .any(|c| !xml::is(c, ns::XENC, "EncryptedData") && !xml::is(c, ns::XENC, "EncryptedKey"))
    {
        return Err(Rejection::invalid(
            "an `EncryptedAssertion` holds an element other than `EncryptedData` and `EncryptedKey`",
        ));
    }
    if let Some(ty) = data.attribute("Type")
        && ty != "http://www.w3.org/2001/04/xmlenc#Element"
    {
        return Err(Rejection::invalid(format!(
            "the encrypted data is of type `{ty}`, not an element"
        )));
    }
    let cipher = Cipher::from_uri(
        xml::one(data, ns::XENC, "EncryptionMethod")?
            .attribute("Algorithm")
            .unwrap_or(""),
    )?;
    // The wrapped keys: in the data's `KeyInfo`, or beside the data.
    let keys: Vec<Node<'_, '_>> = xml::optional(data, ns::DS, "KeyInfo")?
        .into_iter()
        .flat_map(|info| xml::children(info, ns::XENC, "EncryptedKey"))
        .chain(xml::children(encrypted, ns::XENC, "EncryptedKey"))
        .collect();
    if keys.is_empty() {
        return Err(Rejection::invalid(
            "the encrypted assertion carries no `EncryptedKey`",
        ));
    }
    if keys.len() > MAX_KEYS {
        return Err(Rejection::invalid(format!(
            "the encrypted assertion carries more than {MAX_KEYS} keys"
        )));
    }
    let mut wrapped = Vec::with_capacity(keys.len());
    for k in &keys {
        let oaep = key_transport(xml::one(*k, ns::XENC, "EncryptionMethod")?)?;
        wrapped.push((oaep, cipher_value(*k)?));
    }
    let mut content = cipher_value(data)?;
    // From here on, one message for every failure.
    let fail = || Rejection::invalid(CANNOT_DECRYPT);
    let mut buf = vec![0u8; key.key.min_output_size()];
    let session = wrapped
        .iter()
        .find_map(|(oaep, c)| {
            key.key
                .decrypt(oaep, c, &mut buf, None)
                .ok()
                .filter(|k| k.len() == cipher.key_len())
                .map(|k| k.to_vec())
        })
        .ok_or_else(fail)?;
    let plain = cipher.open(&session, &mut content).ok_or_else(fail)?;
    String::from_utf8(plain.to_vec()).map_err(|_| fail())
}
