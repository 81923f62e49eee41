//! Endpoint-verification handshakes that `verify-webhook` answers itself,
//! as ngrok's does, before (or instead of) passing a delivery on:
//!
//! - **Twitter / X CRC**: `GET ?crc_token=T` is answered
//!   `{"response_token": "sha256=<base64 HMAC-SHA256(secret, T)>"}`.
//! - **Zoom**: a verified `endpoint.url_validation` event is answered
//!   `{"plainToken": P, "encryptedToken": <hex HMAC-SHA256(secret, P)>}`.
//! - **Worldline**: `GET` with `X-GCS-Webhooks-Endpoint-Verification: V` is
//!   answered `V`.
//!
//! Twitter's and Zoom's answers are an HMAC, under the webhook secret, of
//! text the caller chose: the very function their deliveries are signed
//! with. Answered for any text, the handshake would sign a forged delivery
//! for whoever asks (a body as the CRC token, `v0:<ts>:<body>` as Zoom's
//! plain token). So only tokens of the shape the providers send are
//! answered (at most 128 letters, digits and `-_=+/.`): neither a JSON
//! body nor Zoom's `v0:` message has that shape. A Zoom validation is
//! answered only once its own signature verified.

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::webhook::Provider;
use crate::{RequestCtx, body};

/// What a handshake needs before it can be answered.
pub(super) enum Challenge {
    /// Answered now, without verifying anything (the request carries no
    /// signature).
    Now(Response<body::Body>),
    /// Answered once the request's signature verified, with this.
    AfterVerifying(Response<body::Body>),
}

/// Whether `token` has the shape of a provider's challenge token.
fn plausible(token: &str) -> bool {
    (1..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=+/.".contains(&b))
}

fn hmac(secret: &str, message: &str) -> Vec<u8> {
    crate::webhook::hmac(
        crate::webhook::Alg::Sha256,
        secret.as_bytes(),
        &[message.as_bytes()],
    )
    .unwrap_or_default()
}

fn json(value: &serde_json::Value) -> Response<body::Body> {
    let mut res = Response::new(body::full(value.to_string()));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The handshake `ctx` is, for `provider`, if it is one; `body` is the
/// request's body when it was read.
pub(super) fn challenge(
    provider: Provider,
    secret: &str,
    ctx: &RequestCtx,
    body: Option<&[u8]>,
) -> Option<Challenge> {
    use base64::Engine as _;
    match provider {
        Provider::Twitter if *ctx.method() == Method::GET => {
            let token = ctx.query_param("crc_token")?;
            if !plausible(&token) {
                return None;
            }
            let digest = base64::engine::general_purpose::STANDARD.encode(hmac(secret, &token));
            Some(Challenge::Now(json(&serde_json::json!({
                "response_token": format!("sha256={digest}"),
            }))))
        }
        Provider::Worldline if *ctx.method() == Method::GET => {
            let value = ctx
                .req_headers()
                .get("x-gcs-webhooks-endpoint-verification")?
                .clone();
            let mut res = Response::new(body::full(value.as_bytes().to_vec()));
            // The caller's own value, echoed: never sniffed as HTML.
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            res.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            Some(Challenge::Now(res))
        }
        Provider::Zoom => {
            let event: serde_json::Value = serde_json::from_slice(body?).ok()?;
            if event.get("event")?.as_str()? != "endpoint.url_validation" {
                return None;
            }
            let plain = event.get("payload")?.get("plainToken")?.as_str()?;
            if !plausible(plain) {
                return None;
            }
            let encrypted: String = hmac(secret, plain)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Some(Challenge::AfterVerifying(json(&serde_json::json!({
                "plainToken": plain,
                "encryptedToken": encrypted,
            }))))
        }
        _ => None,
    }
}

/// The status a failed verification is answered with: Xero's
/// "intent to receive" check expects 401 for a bad signature.
pub(super) fn failure_status(provider: Provider) -> StatusCode {
    match provider {
        Provider::Xero => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_shaped_like_the_providers_are_answered() {
        assert!(plausible("A1b2-C3_d4=e5+f6/g7.h8"));
        assert!(!plausible(""));
        assert!(!plausible(&"a".repeat(129)));
        assert!(!plausible("{\"for_user_id\":\"1\"}"));
        assert!(!plausible("v0:1700000000:{}"));
        assert!(!plausible("a b"));
    }

    #[test]
    fn twitter_crc_matches_twitters_documented_construction() {
        // base64(HMAC-SHA256(consumer secret, crc_token)), prefixed
        // "sha256=", as Twitter's Account Activity docs construct it; the
        // value computed apart with Python's hmac and base64.
        use base64::Engine as _;
        let got = base64::engine::general_purpose::STANDARD.encode(hmac("secret", "token"));
        assert_eq!(got, "6UERDj0r/oJiHw4+FDRzDXMF0QbF9oyHFl0LJ6RhGko=");
    }
}
