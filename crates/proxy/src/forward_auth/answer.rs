//! What the policy decided, in the words each gateway understands.
//!
//! - **Allow**: 200, with the identity headers (every one, empty when
//!   unknown, so that the gateway's copy always overwrites a client's),
//!   the signed assertion, each header the policy added or changed, and
//!   the cookies the policy set (a refreshed session). Envoy also gets
//!   `x-envoy-auth-headers-to-remove` for headers the policy removed.
//! - **An answer** (deny, redirect, sign-in, 429, custom response): Caddy,
//!   Traefik and Envoy copy a non-2xx answer to the client as it is, so it
//!   goes as it is. A 2xx answer would let the request through there, so
//!   it is refused (500; lint reports it as `E0150` first). nginx turns
//!   anything but 2xx, 401 and 403 into a 500 and drops the body, so its
//!   answer is 401 (the user must sign in: a 401, a redirect) or 403, with
//!   the whole answer sealed into `X-Portcullis-Answer`; nginx's
//!   `error_page 401 403 = @portcullis` hands that header to the answer
//!   path, which serves the answer exactly as the policy made it.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use portcullis_actions::body::{self, Body};
use portcullis_actions::session::Keys;
use portcullis_actions::{Identity, respond};
use portcullis_policy::gateway::Gateway;

use crate::assertion::{self, Signer};

/// The header nginx carries the sealed answer in.
pub(crate) const ANSWER: &str = "x-portcullis-answer";
/// The associated data answers are sealed with: a sealed session cookie
/// cannot be passed off as an answer, nor an answer as a cookie.
const SEALED_AS: &str = "portcullis-forward-auth-answer";
/// How long a sealed answer can be served.
const ANSWER_TTL: u64 = 60;
/// The largest body sealed whole. nginx reads a response head into one
/// `proxy_buffer_size` buffer (4 KiB by default); a larger body is
/// replaced by the standard text of its status.
const MAX_SEALED_BODY: usize = 1024;

/// The longest sealed answer sent: nginx reads the verify answer's head
/// into one `proxy_buffer_size` buffer (16 KiB in the documented
/// configuration).
const MAX_SEALED: usize = 12 * 1024;

/// The code of an answer a gateway cannot carry.
pub(crate) const UNSUPPORTED: &str = "ERR_PORTCULLIS_FORWARD_AUTH_UNSUPPORTED";
/// The code of an answer path asked for without a valid sealed answer.
pub(crate) const NO_ANSWER: &str = "ERR_PORTCULLIS_FORWARD_AUTH_ANSWER";

/// The identity headers oauth2-proxy users copy (`--set-xauthrequest`).
pub(crate) const IDENTITY_HEADERS: [&str; 4] = [
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
];

/// What the policy did to the request's headers: set (added or changed)
/// and removed names.
#[derive(Debug, Default)]
pub(crate) struct Mutations {
    pub(crate) set: Vec<(HeaderName, HeaderValue)>,
    pub(crate) removed: Vec<HeaderName>,
}

impl Mutations {
    /// The difference between the request's headers before and after the
    /// policy ran.
    pub(crate) fn between(before: &HeaderMap, after: &HeaderMap) -> Mutations {
        let mut m = Mutations::default();
        for name in after.keys() {
            if !before.get_all(name).iter().eq(after.get_all(name).iter()) {
                for value in after.get_all(name) {
                    m.set.push((name.clone(), value.clone()));
                }
            }
        }
        for name in before.keys() {
            if !after.contains_key(name) {
                m.removed.push(name.clone());
            }
        }
        m
    }
}

/// The identity headers and the assertion, every one present.
pub(crate) fn identity_headers(
    identity: Option<&Identity>,
    signer: &Signer,
    host: &str,
) -> Vec<(HeaderName, HeaderValue)> {
    let text = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    let (user, email, preferred, groups, token) = match identity {
        Some(id) => (
            text(&id.user),
            text(&id.email),
            text(&id.preferred_username),
            text(&id.groups.join(",")),
            signer
                .assert(id, host)
                .map_or(HeaderValue::from_static(""), |t| text(&t)),
        ),
        None => {
            let empty = || HeaderValue::from_static("");
            (empty(), empty(), empty(), empty(), empty())
        }
    };
    let [u, e, p, g] = IDENTITY_HEADERS;
    vec![
        (HeaderName::from_static(u), user),
        (HeaderName::from_static(e), email),
        (HeaderName::from_static(p), preferred),
        (HeaderName::from_static(g), groups),
        (HeaderName::from_static(assertion::HEADER), token),
    ]
}

/// The allow answer over HTTP; `Err`: an error response instead.
#[expect(
    clippy::result_large_err,
    reason = "both arms are responses; it is called once per request"
)]
pub(crate) fn allow(
    gateway: Gateway,
    mutations: &Mutations,
    identity: Vec<(HeaderName, HeaderValue)>,
) -> Result<Response<Body>, Response<Body>> {
    if !mutations.removed.is_empty() && !gateway.removes_headers() {
        return Err(respond::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            UNSUPPORTED,
            "the policy removed a request header, which this gateway cannot do",
        ));
    }
    let mut res = Response::new(body::empty());
    let headers = res.headers_mut();
    for (name, value) in identity {
        headers.insert(name, value);
    }
    for (name, value) in &mutations.set {
        headers.append(name.clone(), value.clone());
    }
    if !mutations.removed.is_empty() {
        let names: Vec<&str> = mutations.removed.iter().map(HeaderName::as_str).collect();
        if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
            headers.insert("x-envoy-auth-headers-to-remove", v);
        }
    }
    Ok(res)
}

/// A policy answer (the request does not pass), for `gateway`.
pub(crate) async fn deny(gateway: Gateway, res: Response<Body>, keys: &Keys) -> Response<Body> {
    if gateway != Gateway::Nginx {
        // Envoy's HTTP service takes exactly 200 as an allow; Caddy and
        // Traefik any 2xx.
        let allows = match gateway {
            Gateway::Envoy => res.status() == StatusCode::OK,
            _ => res.status().is_success(),
        };
        if allows || res.status().is_informational() {
            return respond::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                UNSUPPORTED,
                "the policy answered with a 2xx status, which this gateway would take as allow",
            );
        }
        return res;
    }
    let status = res.status();
    let sign_in = status == StatusCode::UNAUTHORIZED || status.is_redirection();
    let mut out = respond::error(
        if sign_in {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        },
        res.headers()
            .get(&respond::ERROR_CODE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("ERR_PORTCULLIS_FORWARD_AUTH_DENIED"),
        "the traffic policy answered this request",
    );
    // nginx copies `WWW-Authenticate` of a 401: basic-auth works even
    // without the answer location.
    if let Some(v) = res.headers().get(header::WWW_AUTHENTICATE) {
        out.headers_mut()
            .insert(header::WWW_AUTHENTICATE, v.clone());
    }
    // Past `MAX_SEALED`, nginx would fail the whole exchange (502, "upstream
    // sent too big header"): the client gets nginx's own 401 or 403 page.
    if let Some(v) = seal(res, keys)
        .await
        .filter(|s| s.len() <= MAX_SEALED)
        .and_then(|s| HeaderValue::from_str(&s).ok())
    {
        out.headers_mut().insert(ANSWER, v);
    }
    out
}

/// `res`, sealed for the answer path.
async fn seal(res: Response<Body>, keys: &Keys) -> Option<String> {
    let (parts, body) = res.into_parts();
    let body = read_body(body, MAX_SEALED_BODY).await;
    let headers: Vec<(&str, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| *n != header::CONTENT_LENGTH && *n != header::TRANSFER_ENCODING)
        .map(|(n, v)| (n.as_str(), STANDARD.encode(v.as_bytes())))
        .collect();
    let plain = serde_json::json!({
        "s": parts.status.as_u16(),
        "h": headers,
        "b": body.map(|b| STANDARD.encode(&b)),
        "e": now() + ANSWER_TTL,
    });
    keys.seal(SEALED_AS, plain.to_string().as_bytes())
}

/// The answer sealed in `value`, if it opens and has not expired.
pub(crate) fn open(value: &str, keys: &Keys) -> Option<Response<Body>> {
    let plain = keys.open(SEALED_AS, value)?;
    let v: serde_json::Value = serde_json::from_slice(&plain).ok()?;
    if v.get("e")?.as_u64()? < now() {
        return None;
    }
    let status = StatusCode::from_u16(u16::try_from(v.get("s")?.as_u64()?).ok()?).ok()?;
    let body = match v.get("b").and_then(|b| b.as_str()) {
        Some(b) => Bytes::from(STANDARD.decode(b).ok()?),
        // Too large to seal: the standard text of the status.
        None => Bytes::from(format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )),
    };
    let mut res = Response::new(body::full(body));
    *res.status_mut() = status;
    for pair in v.get("h")?.as_array()? {
        let name = HeaderName::from_bytes(pair.get(0)?.as_str()?.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(&STANDARD.decode(pair.get(1)?.as_str()?).ok()?).ok()?;
        res.headers_mut().append(name, value);
    }
    Some(res)
}

/// A response body read whole, if it is at most `limit` bytes.
pub(crate) async fn read_body(mut body: Body, limit: usize) -> Option<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if out.len() + data.len() > limit {
                return None;
            }
            out.extend_from_slice(&data);
        }
    }
    Some(out.freeze())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[[7u8; 32]])
    }

    #[tokio::test]
    async fn nginx_gets_401_or_403_with_the_whole_answer_sealed() {
        let mut limited =
            respond::error(StatusCode::TOO_MANY_REQUESTS, "ERR_NGROK_3110", "slow down");
        limited
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        let out = deny(Gateway::Nginx, limited, &keys()).await;
        assert_eq!(out.status(), StatusCode::FORBIDDEN);
        let sealed = out.headers()[ANSWER].to_str().expect("text").to_owned();
        let opened = open(&sealed, &keys()).expect("opens");
        assert_eq!(opened.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(opened.headers()[header::RETRY_AFTER], "30");
        let body = opened.into_body().collect().await.expect("body").to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("slow down"));
        // An answer too large for nginx's buffer is not sent: nginx then
        // shows its own 403, never the app.
        let mut huge = respond::error(StatusCode::FORBIDDEN, "X", "denied");
        huge.headers_mut().insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(16 * 1024)).expect("value"),
        );
        let out = deny(Gateway::Nginx, huge, &keys()).await;
        assert_eq!(out.status(), StatusCode::FORBIDDEN);
        assert!(out.headers().get(ANSWER).is_none());
        // Another key does not open it; nor does a session cookie's name.
        assert!(open(&sealed, &Keys::new(&[[8u8; 32]])).is_none());
        let cookie = keys()
            .seal("portcullis_session_x", b"{\"s\":200}")
            .expect("seal");
        assert!(open(&cookie, &keys()).is_none());
    }

    #[tokio::test]
    async fn a_redirect_is_a_401_for_nginx_and_itself_elsewhere() {
        let redirect =
            || respond::redirect(StatusCode::FOUND, "https://login.example.com/authorize");
        let nginx = deny(Gateway::Nginx, redirect(), &keys()).await;
        assert_eq!(nginx.status(), StatusCode::UNAUTHORIZED);
        for g in [Gateway::Caddy, Gateway::Traefik, Gateway::Envoy] {
            let out = deny(g, redirect(), &keys()).await;
            assert_eq!(out.status(), StatusCode::FOUND);
            assert_eq!(
                out.headers()[header::LOCATION],
                "https://login.example.com/authorize"
            );
        }
    }

    #[tokio::test]
    async fn a_2xx_answer_is_never_an_allow_where_2xx_means_allow() {
        let with = |status: u16| {
            let mut r = Response::new(body::full(Bytes::from_static(b"maintenance")));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            r
        };
        for (gateway, status) in [
            (Gateway::Caddy, 200),
            (Gateway::Caddy, 204),
            (Gateway::Traefik, 200),
            (Gateway::Envoy, 200),
        ] {
            let out = deny(gateway, with(status), &keys()).await;
            assert_eq!(
                out.status(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "{gateway} {status}"
            );
            assert_eq!(out.headers()[&respond::ERROR_CODE], UNSUPPORTED);
        }
        // Envoy's HTTP service allows on exactly 200: a 204 is a denial.
        assert_eq!(
            deny(Gateway::Envoy, with(204), &keys())
                .await
                .status()
                .as_u16(),
            204
        );
    }

    #[test]
    fn mutations_are_the_difference_of_the_headers() {
        let mut before = HeaderMap::new();
        before.insert("x-keep", HeaderValue::from_static("1"));
        before.insert("x-gone", HeaderValue::from_static("1"));
        before.insert("x-changed", HeaderValue::from_static("old"));
        let mut after = before.clone();
        after.remove("x-gone");
        after.insert("x-changed", HeaderValue::from_static("new"));
        after.insert("x-added", HeaderValue::from_static("yes"));
        let m = Mutations::between(&before, &after);
        let set: Vec<_> = m
            .set
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("")))
            .collect();
        assert!(set.contains(&("x-changed", "new")) && set.contains(&("x-added", "yes")));
        assert_eq!(set.len(), 2);
        assert_eq!(m.removed, vec![HeaderName::from_static("x-gone")]);
        assert!(allow(Gateway::Nginx, &m, Vec::new()).is_err());
        let envoy = allow(Gateway::Envoy, &m, Vec::new()).expect("envoy removes");
        assert_eq!(envoy.headers()["x-envoy-auth-headers-to-remove"], "x-gone");
    }
}
