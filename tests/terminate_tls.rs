//! `terminate-tls` through the real binary, with real TLS clients: the
//! policy's certificate served, TLS 1.3 only when asked, and mutual TLS:
//! a client certificate from the configured authority gets in and is
//! `conn.tls.client.*` to the rules; none, one from another authority, or
//! TLS 1.2 is refused at the handshake, so no request reaches the
//! upstream. The served certificate is `conn.tls.server.*`, and the
//! handshake's facts are `actions.ngrok.terminate_tls.*` once it is made.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, echo};

/// A certificate authority, and what it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("ca");
        Ca { cert, key }
    }

    /// A leaf for `names`, with organization `org` and common name `cn`.
    fn sign(&self, names: &[&str], org: &str, cn: &str, client: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }
}

fn policy(server: &(String, String), client_ca: &str, min: &str) -> String {
    let json = |s: &str| serde_json::to_string(s).expect("json");
    format!(
        r#"
on_tcp_connect:
  - actions:
      - type: terminate-tls
        config:
          min_version: "{min}"
          server_certificate: {}
          server_private_key: {}
          mutual_tls_certificate_authorities:
            - {}
on_http_request:
  - expressions:
      - "!('Example Corp' in conn.tls.client.subject.organization)"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-client: "${{conn.tls.client.subject.common_name}} ${{conn.tls.version}} ${{req.url.scheme}}"
            x-results: "${{conn.tls.server.subject.common_name}} ${{actions.ngrok.terminate_tls.version}} ${{actions.ngrok.terminate_tls.client.subject.common_name}} ${{actions.ngrok.terminate_tls.server.subject.organization[0]}}"
"#,
        json(&server.0),
        json(&server.1),
        json(client_ca),
    )
}

/// A TLS client trusting `ca`, presenting `identity` if given, limited to
/// `versions`.
fn client(
    ca: &Ca,
    identity: Option<&(String, String)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            use rustls::pki_types::pem::PemObject as _;
            let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::Pkcs8(
                PrivatePkcs8KeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            );
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// GET / over TLS: the response's text, or the failure.
async fn get(proxy: &Proxy, connector: &tokio_rustls::TlsConnector) -> Result<String, String> {
    let tcp = support::tcp(proxy.addr).await;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(b"GET /secure HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out)
        .await
        .map_err(|e| format!("read: {e}"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_lets_in_only_clients_of_the_configured_authority() {
    let up = echo().await;
    let ca = Ca::new("Example Root");
    let server = ca.sign(&["localhost"], "Example Corp", "localhost", false);
    let proxy = Proxy::http(&policy(&server, &ca.cert.pem(), "1.3"), up);
    let tls13 = [&rustls::version::TLS13];

    // A client certificate from the authority: in, and the rules see it.
    let alice = ca.sign(&[], "Example Corp", "alice", true);
    let res = get(&proxy, &client(&ca, Some(&alice), &tls13))
        .await
        .expect("alice gets in");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("alice 1.3 https"), "{res}");
    // The served certificate, and the action's results, after the
    // handshake.
    assert!(res.contains("localhost 1.3 alice Example Corp"), "{res}");

    // The authority's certificate for another organization: in at TLS,
    // refused by the rule.
    let mallory = ca.sign(&[], "Other Inc", "mallory", true);
    let res = get(&proxy, &client(&ca, Some(&mallory), &tls13))
        .await
        .expect("handshake");
    assert!(res.starts_with("HTTP/1.1 403"), "{res}");

    // No certificate, or one from another authority: the handshake fails.
    let none = get(&proxy, &client(&ca, None, &tls13)).await;
    assert!(none.is_err(), "{none:?}");
    let stranger = Ca::new("Stranger Root").sign(&[], "Example Corp", "eve", true);
    let other = get(&proxy, &client(&ca, Some(&stranger), &tls13)).await;
    assert!(other.is_err(), "{other:?}");

    // TLS 1.2 when 1.3 is the minimum: refused.
    let old = get(
        &proxy,
        &client(&ca, Some(&alice), &[&rustls::version::TLS12]),
    )
    .await;
    assert!(old.is_err(), "{old:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_certificate_in_the_policy_is_a_lint_error_on_its_line() {
    let dir = support::temp_dir("terminate-tls-lint");
    let path = dir.join("policy.yml");
    std::fs::write(
        &path,
        "on_tcp_connect:\n  - actions:\n      - type: terminate-tls\n        config:\n          server_certificate: not a certificate\n          server_private_key: not a key\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["lint", "--format", "short"])
        .arg(&path)
        .output()
        .expect("lint");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("policy.yml:5:") && stdout.contains("no PEM certificate"),
        "{stdout}"
    );
}

/// `request` asks for a certificate and verifies one if sent: without one
/// the connection is served and `conn.tls.client` is absent to the rules;
/// one from another authority still fails. `require-any` takes any
/// certificate whose key the client proves it holds, and the rules decide
/// on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_require_any_strategies_hold_as_documented() {
    let up = echo().await;
    let ca = Ca::new("Example Root");
    let server = ca.sign(&["localhost"], "Example Corp", "localhost", false);
    let tls13 = [&rustls::version::TLS13];
    let strategy_policy = |strategy: &str| {
        policy(&server, &ca.cert.pem(), "1.2")
            .replace(
                "          mutual_tls_certificate_authorities:",
                &format!(
                    "          mutual_tls_verification_strategy: {strategy}\n          mutual_tls_certificate_authorities:"
                ),
            )
            .replace(
                "      - \"!('Example Corp' in conn.tls.client.subject.organization)\"",
                "      - \"has(conn.tls.client.subject) && !('Example Corp' in conn.tls.client.subject.organization)\"",
            )
            .replace(
                "${conn.tls.client.subject.common_name}",
                "${has(conn.tls.client.subject) ? conn.tls.client.subject.common_name : 'anonymous'}",
            )
            .replace(
                "${actions.ngrok.terminate_tls.client.subject.common_name}",
                "${has(actions.ngrok.terminate_tls.client.subject) ? 'client' : 'no-client'}",
            )
    };
    let proxy = Proxy::http(&strategy_policy("request"), up);
    let res = get(&proxy, &client(&ca, None, &tls13))
        .await
        .expect("no certificate is fine");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("anonymous 1.3 https"), "{res}");
    assert!(
        res.contains("localhost 1.3 no-client Example Corp"),
        "{res}"
    );
    let stranger = Ca::new("Stranger Root").sign(&[], "Example Corp", "eve", true);
    let other = get(&proxy, &client(&ca, Some(&stranger), &tls13)).await;
    assert!(other.is_err(), "a certificate sent is verified: {other:?}");

    let proxy = Proxy::http(&strategy_policy("require-any"), up);
    let res = get(&proxy, &client(&ca, Some(&stranger), &tls13))
        .await
        .expect("any certificate is taken");
    assert!(res.contains("eve 1.3 https"), "{res}");
    let none = get(&proxy, &client(&ca, None, &tls13)).await;
    assert!(none.is_err(), "a certificate is required: {none:?}");
}
