//! Providers' endpoint-verification handshakes, answered by `verify-webhook`
//! through the real binary: Twitter's CRC, Zoom's URL validation (only once
//! its own signature verified), Worldline's GET, and Xero's 401 for a bad
//! signature; and the handshakes never sign text of an attacker's choosing.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, StatusCode};
use http_body_util::Full;

#[path = "support/proxy.rs"]
mod support;

use support::{Proxy, echo, get, send};

fn policy(provider: &str) -> String {
    format!(
        "on_http_request:\n  - actions:\n      - type: verify-webhook\n        config:\n          provider: {provider}\n          secret: secret\n"
    )
}

fn hmac_hex(message: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"secret").expect("key");
    mac.update(message.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twitter_crc_is_answered_for_tokens_only() {
    let proxy = Proxy::http(&policy("twitter"), echo().await);
    let res = get(&proxy.url("/hooks?crc_token=token"), &[]).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // base64(HMAC-SHA256("secret", "token")), computed apart.
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&res.body).expect("json")["response_token"],
        "sha256=6UERDj0r/oJiHw4+FDRzDXMF0QbF9oyHFl0LJ6RhGko="
    );
    assert!(res.echo()["headers"].is_null(), "the upstream answered");
    // A "token" shaped like a delivery would get its signature: refused.
    let forge = get(
        &proxy.url("/hooks?crc_token=%7B%22for_user_id%22%3A%221%22%7D"),
        &[],
    )
    .await;
    assert_eq!(forge.status, StatusCode::FORBIDDEN, "{}", forge.text());
    assert!(!forge.text().contains("response_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoom_validation_is_answered_only_when_signed() {
    let proxy = Proxy::http(&policy("zoom"), echo().await);
    let body = r#"{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        .to_string();
    let post = |signature: String| {
        Request::post(proxy.url("/zoom"))
            .header("content-type", "application/json")
            .header("x-zm-request-timestamp", ts.as_str())
            .header("x-zm-signature", signature)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("request")
    };
    let signed = format!("v0={}", hmac_hex(&format!("v0:{ts}:{body}")));
    let res = send(post(signed)).await.expect("send");
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let answer: serde_json::Value = serde_json::from_slice(&res.body).expect("json");
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(answer["encryptedToken"], hmac_hex("qgg8vlvZRS6UYooatFL8Aw"));
    // Unsigned: refused, and no token signed.
    let res = send(post("v0=00".into())).await.expect("send");
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(!res.text().contains("encryptedToken"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worldline_get_is_echoed_and_xero_gets_its_401() {
    let proxy = Proxy::http(&policy("worldline"), echo().await);
    let res = get(
        &proxy.url("/wl"),
        &[("x-gcs-webhooks-endpoint-verification", "challenge-value-1")],
    )
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "challenge-value-1");
    let proxy = Proxy::http(&policy("xero"), echo().await);
    let req = Request::post(proxy.url("/xero"))
        .header("x-xero-signature", "bm90IGl0")
        .body(Full::new(Bytes::from_static(b"{\"events\":[]}")))
        .expect("request");
    let res = send(req).await.expect("send");
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
}
