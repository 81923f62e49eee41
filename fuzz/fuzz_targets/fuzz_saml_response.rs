//! Arbitrary bytes as a SAML response and as IdP metadata: no input
//! panics, and nothing unsigned is ever accepted. The metadata is the
//! corpus's (xmlsec1's test IdP), so an accepted response must carry a
//! signature by its key: random bytes never do, and a mutated signed
//! response (the fuzzer starts from `crates/saml/tests/data/`) must still
//! verify to pass. Encrypted responses are decrypted with the corpus's
//! SP key, so mutations reach the decryption too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_saml::{DecryptionKey, Expected, IdpMetadata, Sp};

const METADATA: &str = include_str!("../../crates/saml/tests/data/metadata.xml");
const SP_KEY: &str = include_str!("../../crates/saml/tests/data/sp-key.pem");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The same bytes as metadata: a parse, never a panic.
    let _ = IdpMetadata::parse(text);
    static KEY: std::sync::OnceLock<Option<DecryptionKey>> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| DecryptionKey::from_pem(SP_KEY).ok());
    let (Ok(idp), Some(key)) = (IdpMetadata::parse(METADATA), key) else {
        return;
    };
    let sp = Sp {
        entity_id: "https://app.example.test/ngrok/saml",
        acs_url: "https://app.example.test/ngrok/saml/acs",
        idp: &idp,
        decryption_key: Some(key),
    };
    for expected in [
        Expected {
            request_id: Some("_req0001"),
            allow_idp_initiated: false,
            now: 1_796_644_800,
        },
        Expected {
            request_id: None,
            allow_idp_initiated: true,
            now: 1_796_644_800,
        },
    ] {
        if let Ok(a) = portcullis_saml::response::validate_xml(text, &sp, &expected) {
            // Whatever passed was signed: the signature element survives,
            // or is inside an encrypted assertion.
            assert!(
                text.contains("SignatureValue") || text.contains("EncryptedAssertion"),
                "accepted without a signature"
            );
            assert!(!a.id.is_empty());
        }
    }
});
