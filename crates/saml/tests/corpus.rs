//! The attack corpus (`tests/data/`, made by `tests/saml/idp.py corpus`
//! with xmlsec1 signing as an IdP does): valid responses in every signing
//! position Entra offers, and crafted ones from the validation
//! checklist's CVEs (signature wrapping in each position, comment
//! truncation, an attacker's key in `KeyInfo`, two assertions, SHA-1,
//! wrong audience, destination, recipient and issuer, expired, a foreign
//! `InResponseTo`, a DTD, duplicate IDs, encrypted beside plain,
//! oversized), and encrypted assertions as Entra's token encryption sends
//! them (AES-256-CBC or -GCM, the key wrapped with RSA-OAEP to the SP's
//! certificate) beside encrypted attacks (unsigned, an attacker's key,
//! encrypted to another key, RSA PKCS#1 v1.5, 3DES, a changed ciphertext,
//! two assertions inside, an encrypted assertion swapped in a signed
//! response). Each must be refused with the code and the check the
//! manifest names.

use std::path::Path;

use portcullis_saml::{DecryptionKey, Expected, IdpMetadata, Sp};

fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_case_of_the_corpus_is_decided_as_the_manifest_says() {
    let manifest: serde_json::Value = serde_json::from_str(&data("manifest.json")).expect("json");
    let idp = IdpMetadata::parse(&data("metadata.xml")).expect("the metadata parses");
    assert_eq!(idp.certificates.len(), 2, "both certificates of a rollover");
    let key = DecryptionKey::from_pem(&data("sp-key.pem")).expect("the SP's key");
    let sp = Sp {
        entity_id: manifest["sp"].as_str().expect("sp"),
        acs_url: manifest["acs"].as_str().expect("acs"),
        idp: &idp,
        decryption_key: Some(&key),
    };
    let cases = manifest["cases"].as_array().expect("cases");
    assert!(cases.len() >= 25, "{}", cases.len());
    let mut refused = 0;
    for case in cases {
        let file = case["file"].as_str().expect("file");
        let expected = Expected {
            request_id: case["request_id"].as_str(),
            allow_idp_initiated: case["allow_idp_initiated"].as_bool().unwrap_or(false),
            now: case["now"].as_u64().expect("now"),
        };
        let outcome = portcullis_saml::response::validate_xml(&data(file), &sp, &expected);
        match (case["expect"].as_str().expect("expect"), outcome) {
            ("ok", Ok(a)) => {
                assert_eq!(a.name_id, "alice@contoso.test", "{file}");
                assert_eq!(
                    a.first(portcullis_saml::claims::EMAIL),
                    "alice@contoso.test",
                    "{file}"
                );
            }
            ("ok", Err(e)) => panic!("{file}: refused: {e}"),
            (code, Ok(a)) => panic!("{file}: accepted ({}), want {code}", a.name_id),
            (code, Err(e)) => {
                refused += 1;
                let check = case["check"].as_str().unwrap_or("");
                assert_eq!(e.code(), code, "{file}: {e}");
                assert!(
                    e.message().to_lowercase().contains(&check.to_lowercase()),
                    "{file}: `{}` does not say `{check}`",
                    e.message()
                );
            }
        }
    }
    assert!(refused >= 25, "{refused} attacks");
}

#[test]
fn an_encrypted_assertion_without_a_configured_key_is_refused() {
    let manifest: serde_json::Value = serde_json::from_str(&data("manifest.json")).expect("json");
    let idp = IdpMetadata::parse(&data("metadata.xml")).expect("the metadata parses");
    let sp = Sp {
        entity_id: manifest["sp"].as_str().expect("sp"),
        acs_url: manifest["acs"].as_str().expect("acs"),
        idp: &idp,
        decryption_key: None,
    };
    let expected = Expected {
        request_id: Some("_req0001"),
        allow_idp_initiated: false,
        now: 1_796_644_800,
    };
    let err = portcullis_saml::response::validate_xml(
        &data("ok-encrypted-aes256-cbc.xml"),
        &sp,
        &expected,
    )
    .expect_err("no key");
    assert!(err.message().contains("no decryption key"), "{err}");
}

#[test]
fn decryption_keys_are_rsa_pkcs8_of_2048_bits_or_more() {
    for (bad, why) in [
        ("", "PRIVATE KEY"),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "RSA",
        ),
    ] {
        let err = DecryptionKey::from_pem(bad).expect_err(bad);
        assert!(err.contains(why), "{bad}: {err}");
    }
    assert!(DecryptionKey::from_pem(&data("sp-key.pem")).is_ok());
}

#[test]
fn metadata_that_is_not_usable_is_refused() {
    for (bad, why) in [
        ("<EntityDescriptor/>", "md:EntityDescriptor"),
        (
            "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"><IDPSSODescriptor/></EntityDescriptor>",
            "no signing certificate",
        ),
        ("not xml", "XML"),
    ] {
        let err = IdpMetadata::parse(bad).expect_err(bad);
        assert!(err.message().contains(why), "{bad}: {err}");
    }
    // A signed metadata document must verify; edited after signing, it is
    // refused.
    let signed = IdpMetadata::parse(&data("metadata-signed.xml")).expect("signed metadata");
    assert_eq!(signed.sso_url, "https://login.example.test/saml2");
    let err = IdpMetadata::parse(&data("metadata-signed-tampered.xml")).expect_err("tampered");
    assert!(err.message().contains("its own signature fails"), "{err}");
}
