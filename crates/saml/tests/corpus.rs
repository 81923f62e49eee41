//! The attack corpus (`tests/data/`, made by `tests/saml/idp.py corpus`
//! with xmlsec1 signing as an IdP does): valid responses in every signing
//! position Entra offers, and crafted ones from the validation
//! checklist's CVEs (signature wrapping in each position, comment
//! truncation, an attacker's key in `KeyInfo`, two assertions, SHA-1,
//! wrong audience, destination, recipient and issuer, expired, a foreign
//! `InResponseTo`, a DTD, duplicate IDs, encrypted beside plain,
//! oversized). Each must be refused with the code and the check the
//! manifest names.

use std::path::Path;

use portcullis_saml::{Expected, IdpMetadata, Sp};

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
    let sp = Sp {
        entity_id: manifest["sp"].as_str().expect("sp"),
        acs_url: manifest["acs"].as_str().expect("acs"),
        idp: &idp,
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
    assert!(refused >= 15, "{refused} attacks");
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
