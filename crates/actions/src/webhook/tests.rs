//! Tests for webhook verification.
//!
//! Every provider gets the same five checks (valid, tampered body, wrong secret, missing header,
//! stale timestamp), run against deliveries this file signs itself with `hmac`, independently of
//! the code under test. Providers that publish a worked example (GitHub, Slack, Twilio, Svix) also
//! get a test that replays it verbatim.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};

use super::{Provider, Signed, WebhookErrorKind, verify};

/// The clock every generated delivery is checked against (2023-11-14T22:13:20Z).
const NOW: i64 = 1_700_000_000;
const URL: &str = "https://hooks.example.com/webhooks/in?source=test";
const SECRET: &str = "It's a Secret to Everybody";
/// Svix secrets are `whsec_` plus base64; this one is Svix's documentation example.
const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MISMATCH: &str = "signature does not match";

/// A request as the provider would send it.
#[derive(Clone)]
struct Delivery {
    method: &'static str,
    url: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Delivery {
    fn post(content_type: &str, body: impl Into<Vec<u8>>) -> Delivery {
        let mut it = Delivery {
            method: "POST",
            url: URL.to_owned(),
            headers: HeaderMap::new(),
            body: body.into(),
        };
        it.set("Content-Type", content_type);
        it
    }

    fn json(body: impl Into<Vec<u8>>) -> Delivery {
        Delivery::post("application/json", body)
    }

    fn form(body: impl Into<Vec<u8>>) -> Delivery {
        Delivery::post("application/x-www-form-urlencoded", body)
    }

    fn set(&mut self, name: &str, value: impl AsRef<str>) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value.as_ref()).unwrap(),
        );
    }

    /// Replaces the first `hello` in the body with `jello`: every generated body has one, inside
    /// the signed bytes.
    fn tamper(&mut self) {
        let text = String::from_utf8(self.body.clone()).unwrap();
        assert!(
            text.contains("hello"),
            "fixture body has no `hello` to tamper with: {text}"
        );
        self.body = text.replacen("hello", "jello", 1).into_bytes();
    }

    /// What `verify` says at `now` (unix seconds): `Ok(())` or the message users would see.
    fn check(&self, provider: Provider, secret: &str, now: i64) -> Result<(), String> {
        let req = Signed {
            method: self.method,
            url: &self.url,
            headers: &self.headers,
            body: &self.body,
        };
        verify(provider, secret, &req, at(now)).map_err(|it| it.message().to_owned())
    }
}

fn at(unix_secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_secs).unwrap())
}

fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut it = <M as KeyInit>::new_from_slice(key).unwrap();
    for part in parts {
        it.update(part);
    }
    it.finalize().into_bytes().to_vec()
}

fn sha1_mac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    mac::<Hmac<Sha1>>(key.as_bytes(), parts)
}

fn sha256_mac(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    mac::<Hmac<Sha256>>(key.as_bytes(), parts)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

fn secret_for(provider: Provider) -> &'static str {
    match provider {
        Provider::Svix | Provider::Clerk => SVIX_SECRET,
        _ => SECRET,
    }
}

fn wrong_secret_for(provider: Provider) -> String {
    match provider {
        Provider::Svix | Provider::Clerk => format!("whsec_{}", b64(b"some other endpoint key")),
        _ => "not the secret".to_owned(),
    }
}

/// The provider's replay tolerance in seconds, or `None` if it signs no timestamp.
fn tolerance(provider: Provider) -> Option<i64> {
    match provider {
        Provider::Stripe | Provider::Slack | Provider::Svix | Provider::Clerk | Provider::Mux => {
            Some(300)
        }
        Provider::Calendly | Provider::Zoom | Provider::Mailgun => Some(180),
        Provider::Linear => Some(60),
        _ => None,
    }
}

/// The header carrying the signature (or token), spelled as the error message spells it.
fn signature_header(provider: Provider) -> Option<&'static str> {
    Some(match provider {
        Provider::Bitbucket | Provider::Intercom => "X-Hub-Signature",
        Provider::Calendly => "Calendly-Webhook-Signature",
        Provider::Clerk | Provider::Svix => "svix-signature",
        Provider::Dropbox => "X-Dropbox-Signature",
        Provider::FacebookGraphApi
        | Provider::FacebookMessenger
        | Provider::Github
        | Provider::Instagram
        | Provider::Whatsapp => "X-Hub-Signature-256",
        Provider::GenericHmac => "X-Signature",
        Provider::Gitlab => "X-Gitlab-Token",
        Provider::Heroku => "Heroku-Webhook-Hmac-SHA256",
        Provider::Linear => "Linear-Signature",
        Provider::Mailgun => return None,
        Provider::Mux => "Mux-Signature",
        Provider::Pagerduty => "X-PagerDuty-Signature",
        Provider::Sentry => "Sentry-Hook-Signature",
        Provider::Shopify => "X-Shopify-Hmac-Sha256",
        Provider::Slack => "X-Slack-Signature",
        Provider::Square => "x-square-hmacsha256-signature",
        Provider::Stripe => "Stripe-Signature",
        Provider::Terraform => "X-TFE-Notification-Signature",
        Provider::Twilio => "X-Twilio-Signature",
        Provider::Twitter => "X-Twitter-Webhooks-Signature",
        Provider::Typeform => "Typeform-Signature",
        Provider::Xero => "X-Xero-Signature",
        Provider::Zoom => "x-zm-signature",
    })
}

/// A delivery from `provider`, signed with `secret` at unix time `ts`, following the provider's
/// documentation rather than the code under test.
fn deliver(provider: Provider, secret: &str, ts: i64) -> Delivery {
    let body = br#"{"event":"hello","id":"evt_1"}"#;
    let mut d = Delivery::json(body.as_slice());
    let ts_text = ts.to_string();
    let signed = |d: &Delivery| sha256_mac(secret, &[&d.body]);
    match provider {
        Provider::Bitbucket => {
            let it = format!("sha256={}", hex(&signed(&d)));
            d.set("X-Hub-Signature", it);
        }
        Provider::Calendly | Provider::Mux | Provider::Stripe => {
            let name = signature_header(provider).unwrap();
            let sig = sha256_mac(secret, &[ts_text.as_bytes(), b".", &d.body]);
            d.set(name, format!("t={ts},v1={}", hex(&sig)));
        }
        Provider::Clerk | Provider::Svix => {
            let key = BASE64
                .decode(secret.strip_prefix("whsec_").unwrap())
                .unwrap();
            let id = "msg_2hello";
            let sig = mac::<Hmac<Sha256>>(
                &key,
                &[id.as_bytes(), b".", ts_text.as_bytes(), b".", &d.body],
            );
            d.set("svix-id", id);
            d.set("svix-timestamp", &ts_text);
            d.set("svix-signature", format!("v1,{}", b64(&sig)));
        }
        Provider::Dropbox | Provider::Sentry => {
            let it = hex(&signed(&d));
            d.set(signature_header(provider).unwrap(), it);
        }
        Provider::FacebookGraphApi
        | Provider::FacebookMessenger
        | Provider::Github
        | Provider::Instagram
        | Provider::Whatsapp => {
            let it = format!("sha256={}", hex(&signed(&d)));
            d.set("X-Hub-Signature-256", it);
        }
        Provider::GenericHmac => {
            let it = hex(&signed(&d));
            d.set("X-Signature", it);
        }
        Provider::Gitlab => d.set("X-Gitlab-Token", secret),
        Provider::Heroku | Provider::Shopify | Provider::Xero => {
            let it = b64(&signed(&d));
            d.set(signature_header(provider).unwrap(), it);
        }
        Provider::Intercom => {
            let it = format!("sha1={}", hex(&sha1_mac(secret, &[&d.body])));
            d.set("X-Hub-Signature", it);
        }
        Provider::Linear => {
            d.body =
                format!(r#"{{"action":"hello","webhookTimestamp":{}}}"#, ts * 1000).into_bytes();
            let it = hex(&signed(&d));
            d.set("Linear-Signature", it);
        }
        Provider::Mailgun => {
            let token = "hello0123456789abcdef0123456789abcdef0123456789abc";
            let sig = sha256_mac(secret, &[ts_text.as_bytes(), token.as_bytes()]);
            d.body = format!(
                r#"{{"signature":{{"timestamp":"{ts}","token":"{token}","signature":"{}"}},"event-data":{{"event":"delivered"}}}}"#,
                hex(&sig)
            )
            .into_bytes();
        }
        Provider::Pagerduty => {
            let it = format!("v1={}", hex(&signed(&d)));
            d.set("X-PagerDuty-Signature", it);
        }
        Provider::Slack | Provider::Zoom => {
            let sig = sha256_mac(secret, &[b"v0:", ts_text.as_bytes(), b":", &d.body]);
            let (signature, timestamp) = match provider {
                Provider::Slack => ("X-Slack-Signature", "X-Slack-Request-Timestamp"),
                _ => ("x-zm-signature", "x-zm-request-timestamp"),
            };
            d.set(signature, format!("v0={}", hex(&sig)));
            d.set(timestamp, &ts_text);
        }
        Provider::Square => {
            let it = b64(&sha256_mac(secret, &[d.url.as_bytes(), &d.body]));
            d.set("x-square-hmacsha256-signature", it);
        }
        Provider::Terraform => {
            let it = hex(&mac::<Hmac<Sha512>>(secret.as_bytes(), &[&d.body]));
            d.set("X-TFE-Notification-Signature", it);
        }
        Provider::Twilio => {
            d = Delivery::form("CallSid=CA1234&Body=hello+world&From=%2B14155551234");
            // The URL, then each parameter name and decoded value, sorted by name.
            let signed_input = format!("{}BodyhelloworldCallSidCA1234From+14155551234", d.url)
                .replace("helloworld", "hello world");
            let it = b64(&sha1_mac(secret, &[signed_input.as_bytes()]));
            d.set("X-Twilio-Signature", it);
        }
        Provider::Twitter | Provider::Typeform => {
            let it = format!("sha256={}", b64(&signed(&d)));
            d.set(signature_header(provider).unwrap(), it);
        }
    }
    d
}

fn accepts_valid(provider: Provider) {
    let d = deliver(provider, secret_for(provider), NOW);
    assert_eq!(d.check(provider, secret_for(provider), NOW), Ok(()));
}

fn rejects_tampered_body(provider: Provider) {
    let mut d = deliver(provider, secret_for(provider), NOW);
    d.tamper();
    let res = d.check(provider, secret_for(provider), NOW);
    match provider {
        // GitLab sends the secret itself instead of a signature: nothing covers the body.
        Provider::Gitlab => assert_eq!(res, Ok(())),
        _ => assert_eq!(res, Err(MISMATCH.to_owned())),
    }
}

fn rejects_wrong_secret(provider: Provider) {
    let d = deliver(provider, secret_for(provider), NOW);
    assert_eq!(
        d.check(provider, &wrong_secret_for(provider), NOW),
        Err(MISMATCH.to_owned())
    );
}

fn rejects_missing_header(provider: Provider) {
    let mut d = deliver(provider, secret_for(provider), NOW);
    let expected = match signature_header(provider) {
        Some(name) => {
            assert!(d.headers.remove(name).is_some(), "fixture lacks `{name}`");
            format!("missing `{name}` header")
        }
        // Mailgun signs inside the body; the equivalent of a missing header is a body without it.
        None => {
            d.body = br#"{"event-data":{"event":"hello"}}"#.to_vec();
            "request body has no mailgun `timestamp`, `token` and `signature` fields".to_owned()
        }
    };
    assert_eq!(d.check(provider, secret_for(provider), NOW), Err(expected));
}

fn rejects_stale_timestamp(provider: Provider) {
    let secret = secret_for(provider);
    let Some(tolerance) = tolerance(provider) else {
        // No signed timestamp, so nothing dates the request: an old delivery replays fine.
        let d = deliver(provider, secret, NOW - 86_400);
        assert_eq!(d.check(provider, secret, NOW), Ok(()));
        return;
    };
    let stale = Err(format!("timestamp outside the {tolerance} s tolerance"));
    let at_edge = deliver(provider, secret, NOW - tolerance);
    assert_eq!(at_edge.check(provider, secret, NOW), Ok(()));
    let too_old = deliver(provider, secret, NOW - tolerance - 1);
    assert_eq!(too_old.check(provider, secret, NOW), stale);
    let too_new = deliver(provider, secret, NOW + tolerance + 1);
    assert_eq!(too_new.check(provider, secret, NOW), stale);
}

macro_rules! provider_tests {
    ($($name:ident => $provider:expr,)*) => {
        /// Every provider the per-provider modules below cover.
        const TESTED: &[Provider] = &[$($provider),*];

        $(mod $name {
            use super::*;

            #[test]
            fn accepts_valid_signature() {
                accepts_valid($provider);
            }

            #[test]
            fn rejects_tampered_body() {
                super::rejects_tampered_body($provider);
            }

            #[test]
            fn rejects_wrong_secret() {
                super::rejects_wrong_secret($provider);
            }

            #[test]
            fn rejects_missing_header() {
                super::rejects_missing_header($provider);
            }

            #[test]
            fn rejects_stale_timestamp() {
                super::rejects_stale_timestamp($provider);
            }
        })*
    };
}

provider_tests! {
    bitbucket => Provider::Bitbucket,
    calendly => Provider::Calendly,
    clerk => Provider::Clerk,
    dropbox => Provider::Dropbox,
    facebook_graph_api => Provider::FacebookGraphApi,
    facebook_messenger => Provider::FacebookMessenger,
    generic_hmac => Provider::GenericHmac,
    github => Provider::Github,
    gitlab => Provider::Gitlab,
    heroku => Provider::Heroku,
    instagram => Provider::Instagram,
    intercom => Provider::Intercom,
    linear => Provider::Linear,
    mailgun => Provider::Mailgun,
    mux => Provider::Mux,
    pagerduty => Provider::Pagerduty,
    sentry => Provider::Sentry,
    shopify => Provider::Shopify,
    slack => Provider::Slack,
    square => Provider::Square,
    stripe => Provider::Stripe,
    svix => Provider::Svix,
    terraform => Provider::Terraform,
    twilio => Provider::Twilio,
    twitter => Provider::Twitter,
    typeform => Provider::Typeform,
    whatsapp => Provider::Whatsapp,
    xero => Provider::Xero,
    zoom => Provider::Zoom,
}

#[test]
fn every_provider_is_tested() {
    let mut tested: Vec<_> = TESTED.iter().map(|it| it.id()).collect();
    let mut all: Vec<_> = Provider::all().iter().map(|it| it.id()).collect();
    tested.sort_unstable();
    all.sort_unstable();
    assert_eq!(tested, all);
}

// === provider ids ===

#[test]
fn ids_round_trip_and_are_unique_and_sorted() {
    let ids: Vec<_> = Provider::all().iter().map(|it| it.id()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted);
    for &provider in Provider::all() {
        assert_eq!(Provider::from_id(provider.id()), Some(provider));
    }
}

#[test]
fn unknown_ids_are_rejected() {
    assert_eq!(Provider::from_id("GitHub"), None);
    assert_eq!(Provider::from_id("sns"), None);
    assert_eq!(Provider::from_id(""), None);
}

// === published examples ===

/// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
#[test]
fn github_published_example() {
    let mut d = Delivery::json("Hello, World!");
    d.set(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    );
    assert_eq!(
        d.check(Provider::Github, "It's a Secret to Everybody", NOW),
        Ok(())
    );
}

/// https://api.slack.com/authentication/verifying-requests-from-slack
#[test]
fn slack_published_example() {
    let mut d = Delivery::form(
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow\
         &channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner\
         &command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands\
         %2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN\
         &trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
    );
    d.set("X-Slack-Request-Timestamp", "1531420618");
    d.set(
        "X-Slack-Signature",
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    );
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    assert_eq!(d.check(Provider::Slack, secret, 1_531_420_618), Ok(()));
    assert_eq!(
        d.check(Provider::Slack, secret, 1_531_420_618 + 301),
        Err("timestamp outside the 300 s tolerance".to_owned())
    );
}

/// The validation example from Twilio's security docs and helper libraries.
#[test]
fn twilio_published_example() {
    // Parameter order in the body does not matter: Twilio signs them sorted by name.
    let mut d = Delivery::form(
        "To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE\
         &From=%2B14158675309&Caller=%2B14158675309",
    );
    d.url = "https://mycompany.com/myapp.php?foo=1&bar=2".to_owned();
    d.set("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    assert_eq!(d.check(Provider::Twilio, "12345", NOW), Ok(()));
}

/// https://docs.svix.com/receiving/verifying-payloads/how-manual (also the Standard Webhooks
/// test vector).
#[test]
fn svix_published_example() {
    let mut d = Delivery::json(r#"{"test": 2432232314}"#);
    d.set("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek");
    d.set("svix-timestamp", "1614265330");
    d.set(
        "svix-signature",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
    assert_eq!(d.check(Provider::Svix, SVIX_SECRET, 1_614_265_330), Ok(()));
}

// === several signatures ===

#[test]
fn stripe_accepts_any_of_several_v1_signatures() {
    let d = deliver(Provider::Stripe, SECRET, NOW);
    let value = d
        .headers
        .get("Stripe-Signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (t, v1) = value.split_once(',').unwrap();
    let mut rotated = d.clone();
    // During a secret rotation Stripe signs with both secrets; `v0` is a test-mode leftover.
    rotated.set(
        "Stripe-Signature",
        format!("{t},v1={},{v1},v0={}", "ab".repeat(32), "cd".repeat(32)),
    );
    assert_eq!(rotated.check(Provider::Stripe, SECRET, NOW), Ok(()));
}

#[test]
fn stripe_header_without_v1_is_malformed() {
    let mut d = deliver(Provider::Stripe, SECRET, NOW);
    d.set(
        "Stripe-Signature",
        format!("t={NOW},v0={}", "ab".repeat(32)),
    );
    assert_eq!(
        d.check(Provider::Stripe, SECRET, NOW),
        Err("`Stripe-Signature` header has no `v1=` signature".to_owned())
    );
    d.set("Stripe-Signature", format!("v1={}", "ab".repeat(32)));
    assert_eq!(
        d.check(Provider::Stripe, SECRET, NOW),
        Err("`Stripe-Signature` header has no `t=` timestamp".to_owned())
    );
}

#[test]
fn svix_accepts_any_of_space_separated_signatures() {
    let mut d = deliver(Provider::Svix, SVIX_SECRET, NOW);
    let real = d
        .headers
        .get("svix-signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    d.set(
        "svix-signature",
        format!("v1,{} {real} v1a,{}", b64(&[7; 32]), b64(&[9; 64])),
    );
    assert_eq!(d.check(Provider::Svix, SVIX_SECRET, NOW), Ok(()));
}

#[test]
fn svix_accepts_standard_webhooks_headers_and_unprefixed_secret() {
    let d = deliver(Provider::Svix, SVIX_SECRET, NOW);
    let mut renamed = d.clone();
    renamed.headers.clear();
    for (svix, standard) in [
        ("svix-id", "webhook-id"),
        ("svix-timestamp", "webhook-timestamp"),
        ("svix-signature", "webhook-signature"),
    ] {
        renamed.set(standard, d.headers.get(svix).unwrap().to_str().unwrap());
    }
    assert_eq!(renamed.check(Provider::Svix, SVIX_SECRET, NOW), Ok(()));
    let unprefixed = SVIX_SECRET.strip_prefix("whsec_").unwrap();
    assert_eq!(d.check(Provider::Svix, unprefixed, NOW), Ok(()));
}

#[test]
fn svix_rejects_a_secret_that_is_not_base64() {
    let d = deliver(Provider::Svix, SVIX_SECRET, NOW);
    let err = verify(
        Provider::Svix,
        "whsec_not base64!",
        &Signed {
            method: d.method,
            url: &d.url,
            headers: &d.headers,
            body: &d.body,
        },
        at(NOW),
    )
    .unwrap_err();
    assert_eq!(err.kind(), WebhookErrorKind::InvalidSecret);
    assert_eq!(
        err.to_string(),
        "secret is not a svix signing secret (`whsec_` followed by base64)"
    );
}

#[test]
fn pagerduty_accepts_any_of_several_v1_signatures() {
    let mut d = deliver(Provider::Pagerduty, SECRET, NOW);
    let real = d
        .headers
        .get("X-PagerDuty-Signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    d.set(
        "X-PagerDuty-Signature",
        format!("v1={},{real}", "00".repeat(32)),
    );
    assert_eq!(d.check(Provider::Pagerduty, SECRET, NOW), Ok(()));
}

// === Twilio ===

#[test]
fn twilio_tries_the_url_with_and_without_the_default_port() {
    let d = deliver(Provider::Twilio, SECRET, NOW);
    let mut with_port = d.clone();
    with_port.url = URL.replace("example.com/", "example.com:443/");
    assert_eq!(with_port.check(Provider::Twilio, SECRET, NOW), Ok(()));

    let mut signed_with_port = d.clone();
    let signed_input = format!(
        "{}BodyhelloworldCallSidCA1234From+14155551234",
        with_port.url
    )
    .replace("helloworld", "hello world");
    signed_with_port.set(
        "X-Twilio-Signature",
        b64(&sha1_mac(SECRET, &[signed_input.as_bytes()])),
    );
    assert_eq!(
        signed_with_port.check(Provider::Twilio, SECRET, NOW),
        Ok(())
    );
}

#[test]
fn twilio_json_body_is_covered_by_body_sha256() {
    let body = br#"{"hello":"world"}"#;
    let mut d = Delivery::json(body.as_slice());
    d.url = format!("{URL}&bodySHA256={}", hex(&Sha256::digest(body)));
    let url = d.url.clone();
    d.set(
        "X-Twilio-Signature",
        b64(&sha1_mac(SECRET, &[url.as_bytes()])),
    );
    assert_eq!(d.check(Provider::Twilio, SECRET, NOW), Ok(()));

    d.tamper();
    assert_eq!(
        d.check(Provider::Twilio, SECRET, NOW),
        Err(MISMATCH.to_owned())
    );
}

#[test]
fn twilio_rejects_a_body_nothing_signs() {
    let mut d = Delivery::json(r#"{"hello":"world"}"#);
    d.set(
        "X-Twilio-Signature",
        b64(&sha1_mac(SECRET, &[URL.as_bytes()])),
    );
    assert_eq!(
        d.check(Provider::Twilio, SECRET, NOW),
        Err("request body is not form data and the url has no `bodySHA256` parameter".to_owned())
    );
}

#[test]
fn twilio_get_signs_the_url_alone() {
    let mut d = Delivery::json("");
    d.method = "GET";
    d.url = format!("{URL}&CallSid=CA1234&Body=hello");
    let url = d.url.clone();
    d.set(
        "X-Twilio-Signature",
        b64(&sha1_mac(SECRET, &[url.as_bytes()])),
    );
    assert_eq!(d.check(Provider::Twilio, SECRET, NOW), Ok(()));
    d.url = d.url.replace("hello", "jello");
    assert_eq!(
        d.check(Provider::Twilio, SECRET, NOW),
        Err(MISMATCH.to_owned())
    );
}

// === Mailgun, Linear ===

#[test]
fn mailgun_accepts_legacy_form_fields() {
    let token = "0123456789abcdef0123456789abcdef0123456789abcdef01";
    let sig = hex(&sha256_mac(
        SECRET,
        &[NOW.to_string().as_bytes(), token.as_bytes()],
    ));
    let d = Delivery::form(format!(
        "event=delivered&timestamp={NOW}&token={token}&signature={sig}"
    ));
    assert_eq!(d.check(Provider::Mailgun, SECRET, NOW), Ok(()));
}

#[test]
fn mailgun_does_not_sign_event_data() {
    // Mailgun signs only `timestamp` and `token`, so edits to the event itself go unnoticed; this
    // is the provider's scheme, not something verification can add.
    let d = deliver(Provider::Mailgun, SECRET, NOW);
    let mut edited = d.clone();
    edited.body = String::from_utf8(d.body)
        .unwrap()
        .replace("delivered", "failed")
        .into_bytes();
    assert_eq!(edited.check(Provider::Mailgun, SECRET, NOW), Ok(()));
}

#[test]
fn linear_requires_webhook_timestamp() {
    let mut d = Delivery::json(r#"{"action":"hello"}"#);
    let sig = hex(&sha256_mac(SECRET, &[&d.body]));
    d.set("Linear-Signature", sig);
    assert_eq!(
        d.check(Provider::Linear, SECRET, NOW),
        Err("request body has no numeric `webhookTimestamp`".to_owned())
    );
}

// === headers and secrets ===

#[test]
fn slack_requires_the_timestamp_header() {
    let mut d = deliver(Provider::Slack, SECRET, NOW);
    d.headers.remove("X-Slack-Request-Timestamp");
    assert_eq!(
        d.check(Provider::Slack, SECRET, NOW),
        Err("missing `X-Slack-Request-Timestamp` header".to_owned())
    );
    d.set("X-Slack-Request-Timestamp", "+1700000000");
    assert_eq!(
        d.check(Provider::Slack, SECRET, NOW),
        Err("`X-Slack-Request-Timestamp` header is not a unix timestamp".to_owned())
    );
}

#[test]
fn prefix_is_required_where_documented() {
    let mut d = deliver(Provider::Github, SECRET, NOW);
    let value = d
        .headers
        .get("X-Hub-Signature-256")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    d.set(
        "X-Hub-Signature-256",
        value.strip_prefix("sha256=").unwrap(),
    );
    assert_eq!(
        d.check(Provider::Github, SECRET, NOW),
        Err("`X-Hub-Signature-256` header does not start with `sha256=`".to_owned())
    );
    d.set("X-Hub-Signature-256", "sha256=");
    assert_eq!(
        d.check(Provider::Github, SECRET, NOW),
        Err(MISMATCH.to_owned())
    );
    d.set(
        "X-Hub-Signature-256",
        value.to_ascii_uppercase().replace("SHA256=", "sha256="),
    );
    assert_eq!(d.check(Provider::Github, SECRET, NOW), Ok(()));
}

#[test]
fn generic_hmac_prefix_is_optional() {
    let mut d = deliver(Provider::GenericHmac, SECRET, NOW);
    let value = d
        .headers
        .get("X-Signature")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    d.set("X-Signature", format!("sha256={value}"));
    assert_eq!(d.check(Provider::GenericHmac, SECRET, NOW), Ok(()));
}

#[test]
fn empty_secret_never_verifies() {
    let d = deliver(Provider::Github, "", NOW);
    let err = verify(
        Provider::Github,
        "",
        &Signed {
            method: d.method,
            url: &d.url,
            headers: &d.headers,
            body: &d.body,
        },
        at(NOW),
    )
    .unwrap_err();
    assert_eq!(err.kind(), WebhookErrorKind::InvalidSecret);
    assert_eq!(err.message(), "secret is empty");
}

#[test]
fn errors_carry_their_kind() {
    let d = deliver(Provider::Stripe, SECRET, NOW - 1000);
    let req = Signed {
        method: d.method,
        url: &d.url,
        headers: &d.headers,
        body: &d.body,
    };
    let kind = |secret: &str| {
        verify(Provider::Stripe, secret, &req, at(NOW))
            .unwrap_err()
            .kind()
    };
    assert_eq!(kind(SECRET), WebhookErrorKind::TimestampOutOfTolerance);
    assert_eq!(kind("other"), WebhookErrorKind::SignatureMismatch);
}

// === helpers ===

#[test]
fn toggle_default_port_adds_or_removes_it() {
    use super::toggle_default_port as toggle;
    assert_eq!(
        toggle("https://a.example/x?y=1").as_deref(),
        Some("https://a.example:443/x?y=1")
    );
    assert_eq!(
        toggle("https://a.example:443/x").as_deref(),
        Some("https://a.example/x")
    );
    assert_eq!(
        toggle("http://a.example").as_deref(),
        Some("http://a.example:80")
    );
    assert_eq!(
        toggle("http://[::1]:8080/x").as_deref(),
        Some("http://[::1]/x")
    );
    assert_eq!(
        toggle("http://[::1]/x").as_deref(),
        Some("http://[::1]:80/x")
    );
    assert_eq!(toggle("ftp://a.example/x"), None);
}

#[test]
fn form_pairs_decode_percent_escapes_and_plus() {
    let pairs = super::form_pairs(b"a=1+2&b=%2B%zz&&c&d=%C3%A9");
    let pairs: Vec<_> = pairs
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let expected = [("a", "1 2"), ("b", "+%zz"), ("c", ""), ("d", "é")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    assert_eq!(pairs, expected);
}
