//! The test identity provider (`tests/oidc/entra.mjs`, node's
//! oidc-provider shaped like Microsoft Entra ID), started per test, and
//! tokens from its real sign-in flow (`tests/oidc/token.mjs`).

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a harness module shared by test binaries, each using part of it"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running provider. Dropping it stops it.
pub struct Idp {
    child: Child,
    // The provider exits when its stdin closes: kept open while in use.
    _stdin: ChildStdin,
    pub base: String,
    pub tenants: serde_json::Value,
}

/// The provider's first client, as `tests/oidc/README.md` lists it.
pub const CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";

fn harness() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc"))
}

/// Starts `node tests/oidc/<script> --port 0 <args>` and reads the one
/// JSON line it prints when ready. Its stdin stays open in the returned
/// handle: the script exits when it closes.
fn spawn_ready(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, ChildStdin, serde_json::Value) {
    let mut child = Command::new("node")
        .arg(harness().join(script))
        .args(["--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("node runs tests/oidc/{script}: {e}"));
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let ready = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("tests/oidc/{script} ready line {line:?}: {e}"));
    (child, stdin, ready)
}

impl Idp {
    /// Starts the provider on an ephemeral port.
    pub fn start() -> Idp {
        Idp::start_with(&[])
    }

    /// Starts the provider with extra arguments (`--redirect-uri URL`).
    pub fn start_with(args: &[&str]) -> Idp {
        Idp::start_configured(args, None)
    }

    /// Starts the provider with extra arguments and a configuration (JSON:
    /// extra users, clients, token lifetimes; `tests/oidc/README.md`).
    pub fn start_configured(args: &[&str], config: Option<&str>) -> Idp {
        assert!(
            harness().join("node_modules").exists(),
            "the test identity provider is not installed: run `npm ci --prefix tests/oidc` (scripts/test does)"
        );
        let env: Vec<(&str, &str)> = config
            .map(|c| vec![("ENTRA_TEST_IDP_CONFIG", c)])
            .unwrap_or_default();
        let (child, stdin, ready) = spawn_ready("entra.mjs", args, &env);
        Idp {
            child,
            _stdin: stdin,
            base: ready["base"].as_str().expect("base").to_owned(),
            tenants: ready["tenants"].clone(),
        }
    }

    /// A tenant's GUID (`contoso`, `fabrikam`, `consumers`).
    pub fn tenant(&self, name: &str) -> String {
        self.tenants[name].as_str().expect("tenant").to_owned()
    }

    /// A tenant's issuer.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}/{}/v2.0", self.base, self.tenant(tenant))
    }

    /// Signs `user` in through the real authorization-code flow and
    /// returns the tokens (`id_token`, `access_token`, `issuer`, …).
    pub fn sign_in(&self, user: &str) -> serde_json::Value {
        let out = Command::new("node")
            .arg(harness().join("token.mjs"))
            .args(["--base", &self.base, "--user", user])
            .output()
            .expect("node runs tests/oidc/token.mjs");
        assert!(
            out.status.success(),
            "sign-in of {user} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("token JSON")
    }

    /// Rotates the signing keys; with `drop`, the old ones are removed.
    pub fn rotate_keys(&self, drop: bool) {
        let url = format!(
            "{}/_admin/rotate-keys{}",
            self.base,
            if drop { "?drop=1" } else { "" }
        );
        let status = Command::new("node")
            .args([
                "-e",
                &format!("fetch('{url}',{{method:'POST'}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"),
            ])
            .status()
            .expect("node");
        assert!(status.success(), "key rotation failed");
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake GitHub (`tests/oidc/oauth2.mjs --provider github`): GitHub's OAuth web flow and
/// its `/user` and `/user/emails` calls. Dropping it stops it.
pub struct FakeGitHub {
    child: Child,
    _stdin: ChildStdin,
    pub base: String,
}

/// The fake GitHub's OAuth app.
pub const GITHUB_CLIENT_ID: &str = "Iv1.portcullis-test";
/// Its secret.
pub const GITHUB_CLIENT_SECRET: &str = "gh-secret-value-1";

impl FakeGitHub {
    pub fn start() -> FakeGitHub {
        let (child, stdin, ready) = spawn_ready("oauth2.mjs", &["--provider", "github"], &[]);
        FakeGitHub {
            child,
            _stdin: stdin,
            base: ready["base"].as_str().expect("base").to_owned(),
        }
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fake Facebook or Amazon (`tests/oidc/oauth2.mjs`, as the fake
/// GitHub): their OAuth web flows and profile APIs; or the fake LinkedIn
/// or Twitch (`tests/oidc/social_oidc.mjs`): their OpenID Connect, with
/// their departures from it.
pub struct FakeOAuth2 {
    child: Child,
    _stdin: ChildStdin,
    pub base: String,
}

impl FakeOAuth2 {
    /// `provider`: `facebook`, `amazon`, `linkedin`, `twitch`, `google` or
    /// `gitlab`.
    pub fn start(provider: &str) -> FakeOAuth2 {
        let script = match provider {
            "linkedin" | "twitch" | "google" | "gitlab" => "social_oidc.mjs",
            _ => "oauth2.mjs",
        };
        let (child, stdin, ready) = spawn_ready(script, &["--provider", provider], &[]);
        FakeOAuth2 {
            child,
            _stdin: stdin,
            base: ready["base"].as_str().expect("base").to_owned(),
        }
    }
}

impl Drop for FakeOAuth2 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
