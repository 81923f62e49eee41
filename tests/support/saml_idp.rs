//! The test SAML IdP (`tests/saml/idp.py`: Entra-shaped responses signed
//! by xmlsec1, AuthnRequests read by pysaml2), started per test with
//! Debian's python3. scripts/test installs `python3-pysaml2` and
//! `xmlsec1` when they are missing.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a harness module shared by test binaries, each using part of it"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running IdP; dropping it stops it.
pub struct SamlIdp {
    child: Child,
    // The IdP exits when its stdin closes: kept open while in use.
    _stdin: ChildStdin,
    pub base: String,
}

/// The tenant of the IdP's users.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

impl SamlIdp {
    /// Starts it on a free loopback port.
    pub fn start() -> SamlIdp {
        SamlIdp::start_with(&[])
    }

    /// Starts it with extra arguments (`--sp-cert PEM`: AuthnRequests must
    /// be signed with that certificate's key).
    pub fn start_with(args: &[&str]) -> SamlIdp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/saml/idp.py");
        assert!(
            Path::new("/usr/bin/xmlsec1").exists(),
            "xmlsec1 is not installed; scripts/test installs it (apt-get install xmlsec1 python3-pysaml2)"
        );
        let mut child = Command::new("/usr/bin/python3")
            .arg(&script)
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs tests/saml/idp.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("tests/saml/idp.py ready line {line:?}: {e}"));
        SamlIdp {
            child,
            _stdin: stdin,
            base: ready["base"].as_str().expect("base").to_owned(),
        }
    }

    /// The metadata URL (Entra's App Federation Metadata Url).
    pub fn metadata_url(&self) -> String {
        format!("{}/metadata", self.base)
    }
}

impl Drop for SamlIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
