//! SAML sign-in end to end: the real binary, the Entra-shaped SAML IdP
//! (`tests/saml/idp.py`: responses signed by xmlsec1), and a browser
//! without JavaScript that follows redirects and submits the IdP's
//! HTTP-POST form (`tests/support/browser.rs`). Headless Chromium runs
//! the same flow in `tests/browser/sign_in.mjs`.

use http::StatusCode;

#[path = "support/browser.rs"]
mod browser;
#[path = "support/oidc.rs"]
mod oidc;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/saml_idp.rs"]
mod saml_idp;

use browser::Browser;
use proxy::{Proxy, echo, get};
use saml_idp::{SamlIdp, TENANT};

/// The seed policy with `saml`: sign in, then an email allow-list.
fn seed(metadata: &str, extra: &str) -> String {
    format!(
        r#"
on_http_request:
  - actions:
      - type: saml
        config:
          {metadata}
{extra}
  - expressions:
      - "!(actions.ngrok.saml.identity.email in ['alice@contoso.test'])"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-email: "${{actions.ngrok.saml.identity.email}}"
            x-identity: "${{actions.ngrok.saml.identity.id}}"
            x-groups: "${{actions.portcullis.saml.groups.join(',')}}"
            x-name-id: "${{actions.ngrok.saml.name_id}}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_initiated_sign_in_admits_the_listed_user_and_denies_the_others() {
    let idp = SamlIdp::start();
    let up = echo().await;
    let proxy = Proxy::http(
        &seed(&format!("idp_metadata_url: {}", idp.metadata_url()), ""),
        up,
    );

    // The SP metadata an Entra admin uploads.
    let md = get(&proxy.url("/ngrok/saml"), &[]).await;
    assert_eq!(md.status, StatusCode::OK);
    let text = md.text();
    assert!(
        text.contains(&format!("entityID=\"http://{}/ngrok/saml\"", proxy.addr)),
        "{text}"
    );
    assert!(text.contains(&format!(
        "Location=\"http://{}/ngrok/saml/acs\"",
        proxy.addr
    )));

    let mut alice = Browser::default();
    let res = alice
        .visit(&proxy.url("/reports?q=3"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let seen = res.echo();
    assert_eq!(seen["path"], "/reports", "back where she started");
    assert_eq!(seen["query"], "q=3");
    assert_eq!(seen["headers"]["x-email"][0], "alice@contoso.test");
    assert_eq!(
        seen["headers"]["x-identity"][0],
        format!("{TENANT}.a11ce000-0000-4000-8000-000000000001")
    );
    assert_eq!(seen["headers"]["x-groups"][0], "g-admins,g-staff");
    assert_eq!(seen["headers"]["x-name-id"][0], "alice@contoso.test");
    // The session carries her without the IdP.
    let again = alice.request("GET", &proxy.url("/again"), None).await;
    assert_eq!(again.status, StatusCode::OK);

    // Bob signs in but is not on the list.
    let mut bob = Browser::default();
    let res = bob.visit(&proxy.url("/"), "bob@contoso.test").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.echo().is_null(), "the upstream never saw bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_sign_in_only_when_allowed_and_replays_are_refused() {
    let idp = SamlIdp::start();
    let up = echo().await;
    let allowed = Proxy::http(
        &seed(
            &format!("idp_metadata_url: {}", idp.metadata_url()),
            "          allow_idp_initiated: true",
        ),
        up,
    );
    let acs = allowed.url("/ngrok/saml/acs");
    let audience = allowed.url("/ngrok/saml");
    // Entra's "Test sign in": the IdP posts an unsolicited response.
    let launch = |relay: &str| {
        format!(
            "{}/initiate?user=alice%40contoso.test&acs={}&audience={}&relay={relay}",
            idp.base,
            urlencode(&acs),
            urlencode(&audience)
        )
    };
    let mut alice = Browser::default();
    let res = alice.visit(&launch("%2Fdashboard"), "").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.echo()["path"],
        "/dashboard",
        "RelayState as a path here"
    );

    // RelayState naming another site lands on `/`, not there.
    let mut again = Browser::default();
    let res = again
        .visit(&launch("https%3A%2F%2Fevil.example%2F"), "")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["path"], "/");

    // The same response posted twice: the second is a replay.
    let form = get(&launch("%2F"), &[]).await.text();
    let (action, fields) = browser::parse_form(&form);
    let mut first = Browser::default();
    let r1 = first.request("POST", &action, Some(fields.clone())).await;
    assert_eq!(r1.status, StatusCode::FOUND, "{}", r1.text());
    let mut second = Browser::default();
    let r2 = second.request("POST", &action, Some(fields)).await;
    assert_eq!(r2.status, StatusCode::UNAUTHORIZED, "{}", r2.text());
    assert_eq!(r2.header("portcullis-error-code"), Some("ERR_NGROK_5301"));
    assert!(r2.text().contains("already used"), "{}", r2.text());

    // Without `allow_idp_initiated`, the same launch is refused.
    let strict = Proxy::http(
        &seed(&format!("idp_metadata_url: {}", idp.metadata_url()), ""),
        up,
    );
    let acs = strict.url("/ngrok/saml/acs");
    let audience = strict.url("/ngrok/saml");
    let url = format!(
        "{}/initiate?user=alice%40contoso.test&acs={}&audience={}&relay=%2F",
        idp.base,
        urlencode(&acs),
        urlencode(&audience)
    );
    let mut mallory = Browser::default();
    let res = mallory.visit(&url, "").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_5302"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_for_another_browsers_flow_or_forged_is_refused() {
    let idp = SamlIdp::start();
    let up = echo().await;
    let proxy = Proxy::http(
        &seed(&format!("idp_metadata_url: {}", idp.metadata_url()), ""),
        up,
    );
    // Mallory starts a flow, and posts alice's unsolicited response with
    // her own flow cookie: InResponseTo does not match.
    let mut mallory = Browser::default();
    let start = mallory.request("GET", &proxy.url("/"), None).await;
    assert_eq!(start.status, StatusCode::FOUND);
    let form = get(
        &format!(
            "{}/initiate?user=alice%40contoso.test&acs={}&audience={}&relay=x",
            idp.base,
            urlencode(&proxy.url("/ngrok/saml/acs")),
            urlencode(&proxy.url("/ngrok/saml"))
        ),
        &[],
    )
    .await
    .text();
    let (action, fields) = browser::parse_form(&form);
    let res = mallory.request("POST", &action, Some(fields.clone())).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert!(res.echo().is_null());
    // A response with a byte changed after signing.
    let tampered = fields.replacen("SAMLResponse=P", "SAMLResponse=Q", 1);
    let res = Browser::default()
        .request("POST", &action, Some(tampered))
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    // Garbage and nothing.
    for body in ["SAMLResponse=bm90IHhtbA%3D%3D", "RelayState=x", ""] {
        let res = Browser::default()
            .request("POST", &action, Some(body.to_owned()))
            .await;
        assert!(res.status.is_client_error(), "{body}: {}", res.status);
        assert!(res.header("portcullis-error-code").is_some(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_metadata_signs_in_and_bad_metadata_does_not_load() {
    let idp = SamlIdp::start();
    let metadata = get(&idp.metadata_url(), &[]).await.text();
    let up = echo().await;
    let quoted = serde_json::to_string(&metadata).expect("json string");
    let proxy = Proxy::http(&seed(&format!("idp_metadata: {quoted}"), ""), up);
    let res = Browser::default()
        .visit(&proxy.url("/inline"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // Metadata with its certificate removed: the policy does not load.
    let broken =
        serde_json::to_string(&metadata.replace("<X509Certificate>", "<X509Certificate>!"))
            .expect("json");
    let dir = proxy::temp_dir("saml-bad");
    std::fs::write(
        dir.join("policy.yml"),
        seed(&format!("idp_metadata: {broken}"), ""),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["lint", "--format", "short"])
        .arg(dir.join("policy.yml"))
        .output()
        .expect("lint runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("idp_metadata") && stdout.contains("E0140"),
        "{stdout}"
    );
    assert!(stdout.contains("policy.yml:"), "with a position: {stdout}");
    // A key that is not one: an error where it is written, for each key;
    // and half of Graph's credentials.
    for (field, extra) in [
        (
            "`decryption_key`: ",
            "          decryption_key: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\"",
        ),
        (
            "`request_signing_key`: ",
            "          request_signing_key: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\"",
        ),
        ("go together", "          graph_client_id: abc"),
    ] {
        std::fs::write(
            dir.join("policy.yml"),
            seed("idp_metadata_url: http://127.0.0.1:9/metadata", extra),
        )
        .expect("write");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["lint", "--format", "short"])
            .arg(dir.join("policy.yml"))
            .output()
            .expect("lint runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains(field) && stdout.contains("policy.yml:"),
            "{stdout}"
        );
    }
}

/// A user in more than 150 groups (Entra sends `groups.link` instead of
/// `groups`): with an application's credentials, the groups are read from
/// Microsoft Graph (the Entra stand-in's, every page) and
/// `authorized_groups` and the results see all of them; with bad
/// credentials the sign-in fails with a 502; without any, it is refused
/// with what to do. Never a session whose groups are unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_overage_is_read_from_graph_as_an_application() {
    let idp = SamlIdp::start();
    // Microsoft's side, faked: the SAML IdP's tenant, and the user in 200
    // groups (one of them g-admins).
    let entra = oidc::Idp::start_configured(
        &[],
        Some(
            &serde_json::json!({
                "tenants": [{ "name": "saml", "id": TENANT, "domains": ["saml.test"] }],
                "users": [{
                    "upn": "many@contoso.test", "oid": "3a4e0000-0000-4000-8000-000000000003",
                    "tenant": "saml", "name": "Many Groups", "email": "many@contoso.test",
                    "groups": ["g-admins"], "group_count": 200,
                }],
            })
            .to_string(),
        ),
    );
    let up = echo().await;
    let policy = |graph: &str| {
        format!(
            r#"
on_http_request:
  - actions:
      - type: saml
        config:
          idp_metadata_url: {}
          authorized_groups: [g-admins]
{graph}
  - actions:
      - type: add-headers
        config:
          headers:
            x-group-count: "${{string(size(actions.portcullis.saml.groups))}}"
            x-admin: "${{string('g-admins' in actions.portcullis.saml.groups)}}"
"#,
            idp.metadata_url()
        )
    };
    let credentials = |secret: &str| {
        format!(
            "          graph_client_id: 11111111-2222-4333-8444-555555555555\n\
             \x20         graph_client_secret: \"{secret}\"\n\
             \x20         authority_host: {}\n\
             \x20         graph_url: {}/graph",
            entra.base, entra.base
        )
    };
    let proxy = Proxy::http(&policy(&credentials("p0rtcullis~Test.secret_value-1")), up);
    let res = Browser::default()
        .visit(&proxy.url("/app"), "many@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-group-count"][0], "200");
    assert_eq!(res.echo()["headers"]["x-admin"][0], "true");

    // Credentials Entra does not take: the groups cannot be had, so no
    // session.
    let proxy = Proxy::http(&policy(&credentials("wrong")), up);
    let res = Browser::default()
        .visit(&proxy.url("/app"), "many@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY, "{}", res.text());
    assert!(res.text().contains("ERR_NGROK_3100"), "{}", res.text());
    assert!(res.echo()["headers"].is_null(), "the upstream answered");

    // No application: refused, saying what to do.
    let proxy = Proxy::http(&policy(""), up);
    let res = Browser::default()
        .visit(&proxy.url("/app"), "many@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert!(res.text().contains("graph_client_id"), "{}", res.text());
}

/// Whether `b` gets `url` rather than a sign-in.
async fn signed_in(b: &mut Browser, url: &str) -> bool {
    b.request("GET", url, None).await.status == StatusCode::OK
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `portcullis saml-metadata` prints what the endpoint serves at
/// `/ngrok/saml`, with the policy's overrides, and pysaml2 reads it as SP
/// metadata.
#[test]
fn the_cli_prints_sp_metadata_that_pysaml2_reads() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("saml-metadata")
            .args(args)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, xml) = run(&["--url", "https://app.example.com"]);
    assert_eq!(code, Some(0));
    assert!(
        xml.contains("entityID=\"https://app.example.com/ngrok/saml\""),
        "{xml}"
    );
    assert!(
        xml.contains("Location=\"https://app.example.com/ngrok/saml/acs\""),
        "{xml}"
    );
    let dir = proxy::temp_dir("saml-cli");
    let policy = dir.join("policy.yml");
    std::fs::write(
        &policy,
        "on_http_request:\n  - actions:\n      - type: saml\n        config:\n          idp_metadata_url: https://login.example.com/md\n          entity_id: urn:app:portal\n          assertion_consumer_service_url: https://portal.example.com/sso/acs\n",
    )
    .expect("write");
    let (code, xml) = run(&[
        "--url",
        "https://app.example.com",
        "--traffic-policy-file",
        &policy.display().to_string(),
    ]);
    assert_eq!(code, Some(0));
    assert!(xml.contains("entityID=\"urn:app:portal\""), "{xml}");
    assert!(
        xml.contains("Location=\"https://portal.example.com/sso/acs\""),
        "{xml}"
    );
    let parsed = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys; from saml2 import md; e = md.entity_descriptor_from_string(sys.stdin.read()); \
             sp = e.spsso_descriptor[0]; print(e.entity_id, sp.assertion_consumer_service[0].location)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(xml.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3 with pysaml2");
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "urn:app:portal https://portal.example.com/sso/acs"
    );
    assert_eq!(run(&["--url", "app.example.com"]).0, Some(2));
}

/// With `request_signing_key`, AuthnRequests are signed as the Redirect
/// binding says, and an IdP that requires it (Entra's "Require
/// verification certificates") accepts them; a request signed with
/// another key is refused there, and the SP metadata names the
/// certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_authn_requests_are_verified_by_an_idp_that_requires_them() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/saml");
    let cert = dir.join("sp-cert.pem");
    let idp = SamlIdp::start_with(&["--sp-cert", &cert.display().to_string()]);
    let up = echo().await;
    let key = std::fs::read_to_string(dir.join("sp-key.pem")).expect("key");
    let pem_cert = std::fs::read_to_string(&cert).expect("cert");
    let signing = format!(
        "          request_signing_key: {}\n          request_signing_certificate: {}",
        serde_json::to_string(&key).expect("json"),
        serde_json::to_string(&pem_cert).expect("json")
    );
    let proxy = Proxy::http(
        &seed(
            &format!("idp_metadata_url: {}", idp.metadata_url()),
            &signing,
        ),
        up,
    );
    let res = Browser::default()
        .visit(&proxy.url("/signed"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-email"][0], "alice@contoso.test");
    let md = get(&proxy.url("/ngrok/saml"), &[]).await.text();
    assert!(md.contains("AuthnRequestsSigned=\"true\""), "{md}");
    let der: String = pem_cert
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(md.contains(&der), "{md}");

    // Another key: the IdP refuses the request, and no one is signed in.
    let other = std::fs::read_to_string(dir.join("attacker-key.pem")).expect("key");
    let wrong = format!(
        "          request_signing_key: {}",
        serde_json::to_string(&other).expect("json")
    );
    let proxy = Proxy::http(
        &seed(&format!("idp_metadata_url: {}", idp.metadata_url()), &wrong),
        up,
    );
    let res = Browser::default()
        .visit(&proxy.url("/signed"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert!(
        res.text()
            .contains("not signed with the registered certificate")
    );
    // Unsigned: refused as well.
    let proxy = Proxy::http(
        &seed(&format!("idp_metadata_url: {}", idp.metadata_url()), ""),
        up,
    );
    let res = Browser::default()
        .visit(&proxy.url("/signed"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
}

/// With `decryption_key`, an IdP that encrypts assertions (Entra's token
/// encryption: AES-256-CBC, the key wrapped with RSA-OAEP to the
/// certificate the admin uploaded) signs users in, and the SP metadata
/// offers that certificate for encryption. Without the key, or with
/// another, the same sign-in is refused with a message that says why, and
/// no session is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_assertions_sign_in_with_the_sps_key_only() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/saml");
    let cert = dir.join("sp-cert.pem");
    let idp = SamlIdp::start_with(&["--encrypt-to", &cert.display().to_string()]);
    let up = echo().await;
    let pem = |name: &str| {
        serde_json::to_string(&std::fs::read_to_string(dir.join(name)).expect("pem")).expect("json")
    };
    let decrypting = |key: &str| {
        format!(
            "          decryption_key: {}\n          decryption_certificate: {}",
            pem(key),
            pem("sp-cert.pem")
        )
    };
    let metadata = format!("idp_metadata_url: {}", idp.metadata_url());
    let proxy = Proxy::http(&seed(&metadata, &decrypting("sp-key.pem")), up);
    let mut alice = Browser::default();
    let res = alice
        .visit(&proxy.url("/secret"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-email"][0], "alice@contoso.test");
    let md = get(&proxy.url("/ngrok/saml"), &[]).await.text();
    assert!(md.contains("<md:KeyDescriptor use=\"encryption\">"), "{md}");
    assert!(md.contains("xmlenc#aes256-cbc"), "{md}");

    // No key: the encrypted assertion cannot be read, and says so.
    let proxy = Proxy::http(&seed(&metadata, ""), up);
    let res = Browser::default()
        .visit(&proxy.url("/secret"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert!(res.text().contains("no decryption key"), "{}", res.text());
    assert!(res.echo()["headers"].is_null(), "the upstream answered");
    // Another key: refused, with the one message every decryption failure has.
    let proxy = Proxy::http(&seed(&metadata, &decrypting("attacker-key.pem")), up);
    let res = Browser::default()
        .visit(&proxy.url("/secret"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert!(res.text().contains("cannot be decrypted"), "{}", res.text());
}

/// `/ngrok/logout` ends the session here and sends the user through the
/// IdP's single logout service with a LogoutRequest naming them; the IdP's
/// LogoutResponse brings them back, signed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_goes_through_the_idps_single_logout_and_back() {
    let idp = SamlIdp::start();
    let up = echo().await;
    let proxy = Proxy::http(
        &seed(&format!("idp_metadata_url: {}", idp.metadata_url()), ""),
        up,
    );
    let mut alice = Browser::default();
    let res = alice.visit(&proxy.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let md = get(&proxy.url("/ngrok/saml"), &[]).await.text();
    assert!(
        md.contains(&format!(
            "Location=\"http://{}/ngrok/saml/slo\"",
            proxy.addr
        )),
        "{md}"
    );

    let out = alice
        .request("GET", &proxy.url("/ngrok/logout?redirect_path=/bye"), None)
        .await;
    assert_eq!(out.status, StatusCode::FOUND);
    let to_idp = out.header("location").expect("to the IdP").to_owned();
    assert!(
        to_idp.starts_with(&format!("{}/slo?SAMLRequest=", idp.base)),
        "{to_idp}"
    );
    let back = alice.request("GET", &to_idp, None).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.text());
    let slo = back.header("location").expect("back to the SP").to_owned();
    let done = alice.request("GET", &slo, None).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.text());
    assert_eq!(done.header("location"), Some("/bye"));
    // The IdP was told who and which session.
    let logouts: serde_json::Value =
        serde_json::from_slice(&get(&format!("{}/logouts", idp.base), &[]).await.body)
            .expect("json");
    assert_eq!(logouts[0]["name_id"], "alice@contoso.test");
    assert!(
        logouts[0]["session_index"][0]
            .as_str()
            .is_some_and(|s| s.starts_with('_'))
    );
    // Signed out here: the next request goes back to the IdP.
    let again = alice.request("GET", &proxy.url("/again"), None).await;
    assert_eq!(again.status, StatusCode::FOUND);
    assert!(
        again
            .header("location")
            .is_some_and(|l| l.starts_with(&idp.base))
    );
    // A LogoutRequest that is not one is refused.
    let r = get(&proxy.url("/ngrok/saml/slo?SAMLRequest=abc"), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("ERR_NGROK_5308"), "{}", r.text());
}

/// Logout started at the IdP (the user signed out of Entra): the IdP's
/// LogoutRequest, by redirect, ends the session of the browser that brings
/// it when it names that browser's user, and the browser goes back to the
/// IdP with the answer. A signature must verify with the metadata's keys;
/// an unsigned request ends a session only if it names it by its
/// `SessionIndex`, which a third party cannot know; another user's request
/// leaves the session; a request is taken once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_started_at_the_idp_ends_only_the_named_session() {
    let idp = SamlIdp::start();
    let up = echo().await;
    let proxy = Proxy::http(
        &seed(&format!("idp_metadata_url: {}", idp.metadata_url()), ""),
        up,
    );
    let sp_slo = proxy.url("/ngrok/saml/slo");
    // The IdP's redirect to the SP, as the browser gets it.
    let from_idp = |query: &str| {
        let base = idp.base.clone();
        let sp_slo = sp_slo.clone();
        let query = query.to_owned();
        async move {
            let r = get(
                &format!(
                    "{base}/logout-initiate?sp_slo={}&{query}",
                    urlencode(&sp_slo)
                ),
                &[],
            )
            .await;
            assert_eq!(r.status, StatusCode::FOUND);
            r.header("location").expect("to the SP").to_owned()
        }
    };
    let logouts = || async {
        serde_json::from_slice::<serde_json::Value>(
            &get(&format!("{}/logouts", idp.base), &[]).await.body,
        )
        .expect("json")
    };
    let app = proxy.url("/app");

    let mut alice = Browser::default();
    let res = alice.visit(&proxy.url("/app"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // Another user's request: nothing of theirs is here; alice stays.
    let to_sp = from_idp("user=bob%40contoso.test&relay=r0").await;
    let r = alice.request("GET", &to_sp, None).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert!(signed_in(&mut alice, &app).await);

    // Unsigned and without the session's index: not acted on, and the IdP
    // is told so.
    let to_sp = from_idp("user=alice%40contoso.test&sign=0").await;
    let r = alice.request("GET", &to_sp, None).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let answer = alice
        .request("GET", r.header("location").expect("to the IdP"), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = logouts().await;
    let last = &seen[seen.as_array().map_or(0, Vec::len) - 1];
    assert_eq!(
        last["response"],
        "urn:oasis:names:tc:SAML:2.0:status:Requester"
    );
    assert!(signed_in(&mut alice, &app).await);

    // Signed by someone else: refused outright.
    let to_sp = from_idp("user=alice%40contoso.test&sign=attacker").await;
    let r = alice.request("GET", &to_sp, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("does not verify"), "{}", r.text());
    assert!(signed_in(&mut alice, &app).await);

    // Signed by the IdP: the session ends, and the IdP hears Success
    // with its RelayState back.
    let to_sp = from_idp("user=alice%40contoso.test&relay=r1").await;
    let r = alice.request("GET", &to_sp, None).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let back = r.header("location").expect("to the IdP").to_owned();
    assert!(
        back.starts_with(&format!("{}/slo?SAMLResponse=", idp.base)),
        "{back}"
    );
    alice.request("GET", &back, None).await;
    let seen = logouts().await;
    let last = &seen[seen.as_array().map_or(0, Vec::len) - 1];
    assert_eq!(
        last["response"],
        "urn:oasis:names:tc:SAML:2.0:status:Success"
    );
    assert_eq!(last["relay"], "r1");
    assert!(!signed_in(&mut alice, &app).await, "the session ended");
    // The same request again: a replay.
    let r = alice.request("GET", &to_sp, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("replay"), "{}", r.text());

    // Unsigned, but naming the session by its index: it ends.
    let res = alice.visit(&proxy.url("/app"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let to_sp = from_idp("user=alice%40contoso.test&sign=0&session_index=1").await;
    let r = alice.request("GET", &to_sp, None).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert!(!signed_in(&mut alice, &app).await, "the session ended");
}
