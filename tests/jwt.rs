//! `jwt-validation` end to end: tokens from a real OpenID provider (the
//! Entra-shaped `tests/oidc`), checked by the real binary, and the attacks
//! it must refuse.

use base64::Engine as _;
use http::StatusCode;

#[path = "support/oidc.rs"]
mod oidc;
#[path = "support/proxy.rs"]
mod proxy;

use oidc::{CLIENT_ID, Idp};
use proxy::{Proxy, echo, get};

fn policy(idp: &Idp, audience: &str, algorithms: &str) -> String {
    format!(
        r#"
on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer:
            allow_list:
              - value: {issuer}
          audience:
            allow_list:
              - value: {audience}
          http:
            tokens:
              - type: id_token
                method: header
                name: Authorization
                prefix: "Bearer "
          jws:
            allowed_algorithms: {algorithms}
            keys:
              sources:
                additional_jkus:
                  - {base}/common/discovery/v2.0/keys
      - type: add-headers
        config:
          headers:
            x-oid: "${{actions.ngrok.jwt_validation.tokens[0].payload.oid}}"
"#,
        issuer = idp.issuer("contoso"),
        base = idp.base,
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_passes_and_its_claims_are_readable() {
    let idp = Idp::start();
    let up = echo().await;
    let proxy = Proxy::http(&policy(&idp, CLIENT_ID, "[RS256]"), up);
    let alice = idp.sign_in("alice@contoso.test");
    let token = alice["id_token"].as_str().expect("id token");
    let res = get(&proxy.url("/"), &[("authorization", &bearer(token))]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.echo()["headers"]["x-oid"][0],
        "a11ce000-0000-4000-8000-000000000001"
    );
    // The scheme is case-insensitive.
    let res = get(
        &proxy.url("/"),
        &[("authorization", &format!("bearer {token}"))],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tampered_foreign_and_misaddressed_tokens_are_refused() {
    let idp = Idp::start();
    let up = echo().await;
    let proxy = Proxy::http(&policy(&idp, CLIENT_ID, "[RS256]"), up);

    let res = get(&proxy.url("/"), &[]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(
        res.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer error=\"invalid_token\"")),
        "{:?}",
        res.headers
    );

    let alice = idp.sign_in("alice@contoso.test");
    let token = alice["id_token"].as_str().expect("id token");
    let parts: Vec<&str> = token.split('.').collect();

    // A payload changed after signing: claim another user's object id.
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("payload");
    let forged = String::from_utf8(payload)
        .expect("utf-8")
        .replace("a11ce000", "b0b00000");
    let tampered = format!("{}.{}.{}", parts[0], b64(forged.as_bytes()), parts[2]);
    let res = get(&proxy.url("/"), &[("authorization", &bearer(&tampered))]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "tampered payload");

    // `alg: none`, unsigned.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let res = get(&proxy.url("/"), &[("authorization", &bearer(&none))]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "alg none");

    // A token from a tenant that is not allowed (bob is in fabrikam).
    let bob = idp.sign_in("bob@fabrikam.test");
    let res = get(
        &proxy.url("/"),
        &[(
            "authorization",
            &bearer(bob["id_token"].as_str().expect("token")),
        )],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "foreign issuer");
    assert!(
        res.text().contains("issuer is not allowed"),
        "{}",
        res.text()
    );

    // The right issuer, but addressed to another audience.
    let other = Proxy::http(&policy(&idp, "api://another-app", "[RS256]"), up);
    let res = get(&other.url("/"), &[("authorization", &bearer(token))]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "wrong audience");
    assert!(
        res.text().contains("audience is not allowed"),
        "{}",
        res.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_token_keyed_with_the_rsa_public_key_is_refused() {
    use hmac::{Hmac, Mac};
    let idp = Idp::start();
    let up = echo().await;
    // Even a policy that (wrongly) allows HS256 next to RS256 must not
    // verify an HMAC with the provider's public RSA key.
    let proxy = Proxy::http(&policy(&idp, CLIENT_ID, "[RS256, HS256]"), up);
    let alice = idp.sign_in("alice@contoso.test");
    let token = alice["id_token"].as_str().expect("id token");
    let parts: Vec<&str> = token.split('.').collect();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .expect("header"),
    )
    .expect("json");
    let kid = header["kid"].as_str().expect("kid");
    let jwks = get(&format!("{}/common/discovery/v2.0/keys", idp.base), &[]).await;
    let forged_header = b64(format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#).as_bytes());
    let signing_input = format!("{forged_header}.{}", parts[1]);
    for secret in [jwks.body.to_vec(), kid.as_bytes().to_vec()] {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).expect("key");
        mac.update(signing_input.as_bytes());
        let forged = format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()));
        let res = get(&proxy.url("/"), &[("authorization", &bearer(&forged))]).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotated_at_the_provider_are_fetched_on_an_unknown_kid() {
    let idp = Idp::start();
    let up = echo().await;
    let proxy = Proxy::http(&policy(&idp, CLIENT_ID, "[RS256]"), up);
    let before = idp.sign_in("alice@contoso.test");
    let res = get(
        &proxy.url("/"),
        &[(
            "authorization",
            &bearer(before["id_token"].as_str().expect("token")),
        )],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    // New keys only: tokens signed from now on name a kid the proxy has
    // not seen.
    idp.rotate_keys(true);
    let after = idp.sign_in("alice@contoso.test");
    let res = get(
        &proxy.url("/"),
        &[(
            "authorization",
            &bearer(after["id_token"].as_str().expect("token")),
        )],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}
