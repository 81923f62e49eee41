//! The request a gateway describes, read from the gateway's own request.
//!
//! nginx, Caddy and Traefik send a `GET` to the verify path with the
//! original request's method, target, host and scheme in headers
//! (`X-Forwarded-Method`, `-Uri`, `-Host`, `-Proto`, all four required)
//! and the client's own headers beside them. `X-Original-URI` is not
//! read: a gateway that sets only it passes a client's `X-Forwarded-Uri`
//! through. Envoy's HTTP service sends the original method and path
//! with `path_prefix` in front, and the original `Host`. Each is believed
//! only because the peer is a configured gateway (`mod.rs` checks that
//! first), and the result goes through the same canonicalization as a
//! proxied request.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Request};

use portcullis_policy::gateway::Gateway;

/// The verify path: nginx, Caddy and Traefik ask for it exactly; Envoy
/// puts it in front of the original path (`path_prefix: /verify`).
pub(crate) const VERIFY: &str = "/verify";

/// The code of a gateway request that does not describe a request.
pub(crate) const BAD_DESCRIPTION: &str = "ERR_PORTCULLIS_FORWARD_AUTH_REQUEST";

/// The headers that describe the request, removed from what the policy
/// reads: they are the gateway's words, not the client's headers.
const DESCRIBING: [&str; 8] = [
    "x-forwarded-method",
    "x-forwarded-uri",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-original-uri",
    "x-original-method",
    "x-original-url",
    "x-auth-request-redirect",
];

/// A described request, before canonicalization.
#[derive(Debug)]
pub(crate) struct Described {
    /// The request, with the described method and target, `Host` set to
    /// the described host, and the client's headers.
    pub(crate) request: Request<()>,
    /// Whether the client used `https`.
    pub(crate) https: bool,
    /// The client's address, as the gateway saw it.
    pub(crate) client: IpAddr,
}

/// Why a gateway's request describes no request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bad(pub(crate) String);

/// Reads the request a trusted gateway (`peer`) describes with its
/// `method`, target and `headers`; the headers become the described
/// request's, less the describing ones.
pub(crate) fn describe(
    gateway: Gateway,
    method: &Method,
    path_and_query: &str,
    mut headers: HeaderMap,
    peer: IpAddr,
) -> Result<Described, Bad> {
    let (method, target, host) = match gateway {
        Gateway::Envoy => {
            let rest = path_and_query
                .strip_prefix(VERIFY)
                .filter(|r| r.starts_with('/'))
                .ok_or_else(|| {
                    Bad(format!(
                        "`{path_and_query}` does not start with `{VERIFY}/`: set Envoy's `path_prefix: {VERIFY}`"
                    ))
                })?;
            (method.clone(), rest.to_owned(), one(&headers, "host")?)
        }
        Gateway::Nginx | Gateway::Caddy | Gateway::Traefik => {
            // All four are required: a gateway that does not set one
            // passes the client's own copy through, and a client must not
            // choose the method, target, host or scheme the policy reads.
            let m = one(&headers, "x-forwarded-method")?;
            let method = Method::from_bytes(m.as_bytes())
                .map_err(|_| Bad(format!("`{m}` is not an HTTP method")))?;
            let target = one(&headers, "x-forwarded-uri")?;
            let host = one(&headers, "x-forwarded-host")?;
            (method, target, host)
        }
    };
    if !target.starts_with('/') {
        return Err(Bad(format!(
            "the described target `{target}` is not a path (origin form)"
        )));
    }
    let https = match one(&headers, "x-forwarded-proto") {
        Ok(p) if p.eq_ignore_ascii_case("https") => true,
        Ok(p) if p.eq_ignore_ascii_case("http") => false,
        Ok(p) => {
            return Err(Bad(format!(
                "`X-Forwarded-Proto: {p}` is not http or https"
            )));
        }
        // Envoy's HTTP service sends the scheme only when configured to.
        Err(_) if gateway == Gateway::Envoy => false,
        Err(e) => return Err(e),
    };
    let client = client_ip(&headers).unwrap_or(peer);
    let mut out = Request::builder()
        .method(method)
        .uri(target.as_str())
        .body(())
        .map_err(|_| {
            Bad(format!(
                "the described target `{target}` is not a request target"
            ))
        })?;
    for name in DESCRIBING
        .iter()
        .copied()
        .chain(["content-length", "transfer-encoding"])
    {
        headers.remove(name);
    }
    let host = http::HeaderValue::from_str(&host)
        .map_err(|_| Bad(format!("the described host `{host}` is not a header value")))?;
    headers.insert(header::HOST, host);
    *out.headers_mut() = headers;
    Ok(Described {
        request: out,
        https,
        client,
    })
}

/// The one value of `name`: two are a refusal, since a gateway sets each
/// once and a second can only have come from the client.
fn one(headers: &HeaderMap, name: &'static str) -> Result<String, Bad> {
    let name = HeaderName::from_static(name);
    let mut values = headers.get_all(&name).iter();
    let first = values
        .next()
        .ok_or_else(|| Bad(format!("no `{name}` header")))?;
    if values.next().is_some() {
        return Err(Bad(format!("more than one `{name}` header")));
    }
    first
        .to_str()
        .map(|s| s.trim().to_owned())
        .map_err(|_| Bad(format!("`{name}` is not text")))
}

/// The client's address: the last `X-Forwarded-For` entry (the one the
/// gateway appended; the ones before it are the client's own claims), or
/// `X-Real-IP`.
fn client_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|s| !s.is_empty());
    forwarded
        .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
        .and_then(|s| s.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    const GATEWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn caddy_and_traefik_describe_with_forwarded_headers() {
        let h = headers(&[
            ("host", "portcullis:4180"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-uri", "/admin?x=1"),
            ("x-forwarded-host", "app.example.com"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("cookie", "a=b"),
        ]);
        let d = describe(Gateway::Caddy, &Method::GET, "/verify", h.clone(), GATEWAY)
            .expect("described");
        assert_eq!(d.request.method(), Method::POST);
        assert_eq!(d.request.uri(), "/admin?x=1");
        assert_eq!(d.request.headers()["host"], "app.example.com");
        assert_eq!(d.request.headers()["cookie"], "a=b");
        assert!(d.request.headers().get("x-forwarded-uri").is_none());
        assert!(d.https);
        // The gateway's entry, not the client's claim before it.
        assert_eq!(d.client, "203.0.113.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn envoy_describes_with_its_own_method_and_prefixed_path() {
        let h = headers(&[("host", "app.example.com"), ("content-length", "0")]);
        let d = describe(
            Gateway::Envoy,
            &Method::DELETE,
            "/verify/items/7?a=b",
            h.clone(),
            GATEWAY,
        )
        .expect("described");
        assert_eq!(d.request.method(), Method::DELETE);
        assert_eq!(d.request.uri(), "/items/7?a=b");
        assert!(d.request.headers().get("content-length").is_none());
        assert_eq!(d.client, GATEWAY);
        assert!(describe(Gateway::Envoy, &Method::GET, "/items", h.clone(), GATEWAY).is_err());
        assert!(
            describe(
                Gateway::Envoy,
                &Method::GET,
                "/verifyx/a",
                h.clone(),
                GATEWAY
            )
            .is_err()
        );
    }

    #[test]
    fn missing_doubled_or_malformed_descriptions_are_refused() {
        let base = [
            ("x-forwarded-host", "app"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "http"),
        ];
        let no_uri = headers(&base);
        assert!(
            describe(
                Gateway::Traefik,
                &Method::GET,
                "/verify",
                no_uri.clone(),
                GATEWAY
            )
            .is_err()
        );
        let twice = headers(&[
            ("x-forwarded-host", "app"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/a"),
            ("x-forwarded-uri", "/b"),
        ]);
        assert!(
            describe(
                Gateway::Traefik,
                &Method::GET,
                "/verify",
                twice.clone(),
                GATEWAY
            )
            .is_err()
        );
        for uri in ["admin", "http://evil/", "*", "/a b"] {
            let h = headers(&[
                ("x-forwarded-host", "app"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", uri),
            ]);
            assert!(
                describe(Gateway::Caddy, &Method::GET, "/verify", h.clone(), GATEWAY).is_err(),
                "{uri}"
            );
        }
        let proto = headers(&[
            ("x-forwarded-host", "app"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/"),
            ("x-forwarded-proto", "gopher"),
        ]);
        assert!(
            describe(
                Gateway::Caddy,
                &Method::GET,
                "/verify",
                proto.clone(),
                GATEWAY
            )
            .is_err()
        );
        // Each of the four is required: one the gateway does not set
        // would be the client's.
        let all = [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/x"),
            ("x-forwarded-host", "app"),
            ("x-forwarded-proto", "http"),
        ];
        assert!(
            describe(
                Gateway::Nginx,
                &Method::GET,
                "/verify",
                headers(&all),
                GATEWAY
            )
            .is_ok()
        );
        for i in 0..all.len() {
            let mut some = all.to_vec();
            some.remove(i);
            some.push(("x-original-uri", "/x"));
            assert!(
                describe(
                    Gateway::Nginx,
                    &Method::GET,
                    "/verify",
                    headers(&some),
                    GATEWAY
                )
                .is_err(),
                "without {}",
                all[i].0
            );
        }
    }
}
