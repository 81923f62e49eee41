//! Token lifetimes and claims, with tokens this test signs itself: the
//! end-to-end tests (`tests/jwt.rs`) use a real provider, which cannot be
//! made to issue an expired or not-yet-valid token.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use portcullis_policy::schema::Phase;

use crate::client::{FetchFuture, Fetched, HttpClient, Scope};
use crate::{CompileCx, Conn, Endpoint, RequestCtx, Step, body};

/// A fake key-set host: answers every fetch with one JWKS document. The
/// real fetch path is covered end to end in `tests/jwt.rs`.
#[derive(Debug)]
struct FakeKeySet(String);

impl HttpClient for FakeKeySet {
    fn fetch(&self, _: Request<Bytes>, _: Scope, _: usize, _: Duration) -> FetchFuture {
        let body = Bytes::from(self.0.clone());
        Box::pin(async move {
            Ok(Fetched {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body,
                remote: None,
            })
        })
    }
}

const ISSUER: &str = "https://issuer.example/";

struct Signer {
    key: EncodingKey,
    jwks: String,
}

fn signer() -> Signer {
    let pair = rcgen::KeyPair::generate().expect("P-256 key");
    let point = pair.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let (x, y) = (&point[1..33], &point[33..65]);
    let jwks = serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": b64(x), "y": b64(y),
    }]});
    Signer {
        key: EncodingKey::from_ec_der(&pair.serialize_der()),
        jwks: jwks.to_string(),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn token(s: &Signer, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    encode(&header, &claims, &s.key).expect("signed")
}

async fn run(s: &Signer, token: &str) -> (Step, Option<StatusCode>) {
    let policy = format!(
        r#"
on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer: {{ allow_list: [ {{ value: "{ISSUER}" }} ] }}
          audience: {{ allow_list: [ {{ value: "api://orders" }} ] }}
          http: {{ tokens: [ {{ type: access_token, method: header, name: Authorization, prefix: "Bearer " }} ] }}
          jws:
            allowed_algorithms: [ES256]
            keys: {{ sources: {{ additional_jkus: [ "https://issuer.example/keys" ] }} }}
"#
    );
    let (doc, diags) = portcullis_policy::check(&policy);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let action = &doc.phases[0].rules[0].actions[0];
    let client: Arc<dyn HttpClient> = Arc::new(FakeKeySet(s.jwks.clone()));
    let cx = CompileCx {
        phase: Phase::HttpRequest,
        src: &policy,
        internal: &[],
        client: Some(&client),
        session_keys: &[],
        state: None,
        ip_policies: None,
        oauth_apps: None,
    };
    let compiled = crate::compile(action, &cx).expect("compiles");
    let req = Request::get("/orders")
        .header("authorization", format!("Bearer {token}"))
        .body(body::empty())
        .expect("request");
    let conn = Arc::new(Conn::new(
        "192.0.2.1:5000".parse().expect("addr"),
        "127.0.0.1:80".parse().expect("addr"),
        None,
    ));
    let mut ctx = RequestCtx::new(req, conn, Arc::new(Endpoint::new("http://api.example")));
    let step = compiled
        .run(&mut ctx)
        .finish()
        .await
        .expect("no action error");
    (step, ctx.status())
}

fn claims(exp: i64, nbf: i64, iss: &str, aud: &str) -> serde_json::Value {
    serde_json::json!({ "sub": "u1", "iss": iss, "aud": aud, "exp": exp, "nbf": nbf, "iat": now() })
}

#[tokio::test(flavor = "current_thread")]
async fn a_valid_token_passes() {
    let s = signer();
    let t = token(&s, claims(now() + 600, now() - 10, ISSUER, "api://orders"));
    assert_eq!(run(&s, &t).await, (Step::Next, None));
}

#[tokio::test(flavor = "current_thread")]
async fn an_expired_token_is_refused() {
    let s = signer();
    // Expired two minutes ago: beyond the minute of clock skew allowed.
    let t = token(&s, claims(now() - 120, now() - 600, ISSUER, "api://orders"));
    assert_eq!(
        run(&s, &t).await,
        (Step::Respond, Some(StatusCode::UNAUTHORIZED))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_token_not_valid_yet_is_refused() {
    let s = signer();
    let t = token(
        &s,
        claims(now() + 3600, now() + 600, ISSUER, "api://orders"),
    );
    assert_eq!(
        run(&s, &t).await,
        (Step::Respond, Some(StatusCode::UNAUTHORIZED))
    );
}

#[tokio::test(flavor = "current_thread")]
async fn issuer_and_audience_must_match_exactly() {
    let s = signer();
    // The trailing slash is significant, as ngrok documents.
    let t = token(
        &s,
        claims(now() + 600, now(), "https://issuer.example", "api://orders"),
    );
    assert_eq!(run(&s, &t).await.1, Some(StatusCode::UNAUTHORIZED));
    let t = token(&s, claims(now() + 600, now(), ISSUER, "api://orders/"));
    assert_eq!(run(&s, &t).await.1, Some(StatusCode::UNAUTHORIZED));
}

#[tokio::test(flavor = "current_thread")]
async fn a_token_signed_by_another_key_is_refused() {
    let s = signer();
    let other = signer();
    let t = token(&other, claims(now() + 600, now(), ISSUER, "api://orders"));
    assert_eq!(run(&s, &t).await.1, Some(StatusCode::UNAUTHORIZED));
}
