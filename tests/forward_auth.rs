//! Forward-auth end to end: Portcullis as the auth service of real
//! gateways (Debian's nginx with `auth_request`, Caddy with
//! `forward_auth`), configured with the very files docs/forward-auth.md
//! shows (`docs/forward-auth/`), in front of the echo upstream. Traefik
//! and Envoy are not installable here: their protocols are spoken by the
//! test itself (raw HTTP as Traefik and Envoy's HTTP service send it, and
//! a tonic client on Envoy's own `ext_authz` types for gRPC).

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/proxy.rs"]
mod support;

use gateway::{Gateway, documented, free_port};
use support::{Proxy, Resp, echo, get, send};

/// A policy with one rule of each kind a gateway must carry.
const POLICY: &str = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
        config: { status_code: 403 }
  - expressions: ["req.url.path == '/teapot'"]
    actions:
      - type: custom-response
        config:
          status_code: 418
          headers: { x-why: tea }
          body: short and stout
  - expressions: ["req.url.path == '/old'"]
    actions:
      - type: redirect
        config: { to: "/new", status_code: 302 }
  - expressions: ["req.url.path.startsWith('/limited')"]
    actions:
      - type: rate-limit
        config:
          name: two a minute
          algorithm: sliding_window
          capacity: 2
          rate: 60s
          bucket_key: ["req.url.path"]
  - expressions: ["req.url.path.startsWith('/private')"]
    actions:
      - type: basic-auth
        config:
          credentials: ["alice:wonderland-42"]
  - expressions: ["req.method == 'DELETE'"]
    actions:
      - type: deny
        config: { status_code: 405 }
  - actions:
      - type: add-headers
        config:
          headers:
            X-Tenant: acme
"#;

/// Portcullis answering `gateway`, with `extra` lines in its endpoint.
fn portcullis(gateway: &str, extra: &str) -> Proxy {
    Proxy::serve(
        &format!(
            "endpoints:\n  - listen: 127.0.0.1:0\n    traffic_policy_file: policy.yml\n    \
             forward_auth:\n      gateway: {gateway}\n{extra}"
        ),
        &[("policy.yml", POLICY)],
    )
}

/// The key set Portcullis serves, and a check of an assertion against it
/// for `host`: the claims if it verifies.
async fn verify_assertion(p: &Proxy, token: &str, host: &str) -> Option<serde_json::Value> {
    let jwks = get(&p.url("/.well-known/portcullis/jwks.json"), &[]).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.body).expect("a JWKS");
    let header = jsonwebtoken::decode_header(token).ok()?;
    let key = jsonwebtoken::DecodingKey::from_jwk(set.find(header.kid.as_deref()?)?).ok()?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[host]);
    v.set_issuer(&[host]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
        .ok()
        .map(|d| d.claims)
}

fn header_of(echo: &serde_json::Value, name: &str) -> Option<String> {
    echo["headers"][name][0].as_str().map(str::to_owned)
}

const ALICE: &str = "Basic YWxpY2U6d29uZGVybGFuZC00Mg=="; // alice:wonderland-42

/// What every gateway in front of the echo upstream must show a client:
/// the policy's decisions, exactly as `portcullis http` would answer.
async fn the_policy_holds_behind(g: &Gateway, p: &Proxy, name: &str) {
    // Allowed, with the header the policy adds and no identity.
    let ok = get(&g.url("/hello?x=1"), &[("x-forwarded-user", "mallory")]).await;
    assert_eq!(ok.status, StatusCode::OK, "{name}: {}", ok.text());
    let seen = ok.echo();
    assert_eq!(seen["path"], "/hello", "{name}");
    assert_eq!(
        header_of(&seen, "x-tenant").as_deref(),
        Some("acme"),
        "{name}: {seen}"
    );
    let forged = header_of(&seen, "x-forwarded-user");
    assert!(
        forged.as_deref().unwrap_or("").is_empty(),
        "{name}: a client's X-Forwarded-User reached the app: {forged:?}"
    );

    // Denied, in every spelling of the path.
    for path in [
        "/admin",
        "/%61dmin",
        "/x/../admin",
        "/ADMIN/../admin/",
        "//admin",
    ] {
        let r = get(&g.url(path), &[]).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{name}: {path}: {}",
            r.text()
        );
        assert!(r.echo().is_null(), "{name}: {path} reached the app");
    }
    // The policy's own answers, status, headers and body.
    let tea = get(&g.url("/teapot"), &[]).await;
    assert_eq!(tea.status.as_u16(), 418, "{name}: {}", tea.text());
    assert_eq!(tea.header("x-why"), Some("tea"), "{name}");
    assert_eq!(tea.text(), "short and stout", "{name}");
    let old = get(&g.url("/old"), &[]).await;
    assert_eq!(old.status, StatusCode::FOUND, "{name}: {}", old.text());
    assert_eq!(old.header("location"), Some("/new"), "{name}");
    let delete = send(
        Request::delete(g.url("/items/1"))
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
    .expect("response");
    assert_eq!(
        delete.status.as_u16(),
        405,
        "{name}: the described method decides"
    );

    // Two a minute, then 429 from the policy.
    let limited: Vec<u16> = statuses(g, "/limited", 3).await;
    assert_eq!(limited, vec![200, 200, 429], "{name}");

    // basic-auth: the challenge, then the user and a signed assertion.
    let challenge = get(&g.url("/private"), &[]).await;
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED, "{name}");
    assert!(
        challenge
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic")),
        "{name}: {:?}",
        challenge.headers
    );
    let r = get(
        &g.url("/private/page"),
        &[
            ("authorization", ALICE),
            ("x-portcullis-jwt-assertion", "forged.by.client"),
            ("x-forwarded-user", "mallory"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
    let seen = r.echo();
    assert_eq!(
        header_of(&seen, "x-forwarded-user").as_deref(),
        Some("alice"),
        "{name}"
    );
    let token = header_of(&seen, "x-portcullis-jwt-assertion").expect("an assertion");
    let host = g.addr.to_string();
    let claims = verify_assertion(p, &token, &host)
        .await
        .unwrap_or_else(|| panic!("{name}: the assertion does not verify for {host}: {token}"));
    assert_eq!(claims["sub"], "alice", "{name}");
    assert_eq!(claims["provider"], "basic-auth", "{name}");
}

/// `n` GETs of `path`, in order, and their statuses.
async fn statuses(g: &Gateway, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(&g.url(path), &[]).await.status.as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_carries_every_decision_of_the_policy() {
    let app = echo().await;
    let p = portcullis("nginx", "");
    let port = free_port();
    let nginx = Gateway::nginx(&documented("nginx.conf", p.addr, app, port), port);
    the_policy_holds_behind(&nginx, &p, "nginx").await;
    // The verify location is internal: a client cannot ask it directly.
    let direct = get(&nginx.url("/.portcullis/verify"), &[]).await;
    assert_eq!(direct.status, StatusCode::NOT_FOUND);
    // A forged answer header does not make nginx's answer location serve
    // anything but a refusal.
    let forged = get(&nginx.url("/admin"), &[("x-portcullis-answer", "AAAA")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(nginx.log().find("[emerg]").is_none(), "{}", nginx.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_carries_every_decision_of_the_policy() {
    let app = echo().await;
    let p = portcullis("caddy", "");
    let port = free_port();
    let caddy = Gateway::caddy(&documented("Caddyfile", p.addr, app, port), port);
    the_policy_holds_behind(&caddy, &p, "caddy").await;
    // A client cannot describe its own request to the auth service.
    let r = get(
        &caddy.url("/hello"),
        &[
            ("x-forwarded-uri", "/admin"),
            ("x-forwarded-method", "DELETE"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = get(&caddy.url("/admin"), &[("x-forwarded-uri", "/hello")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
}

/// A request to the verify path as Traefik's `forwardAuth` sends it.
fn traefik(p: &Proxy, method: &str, uri: &str, more: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get(p.url("/verify"))
        .header("x-forwarded-method", method)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-for", "203.0.113.7");
    for (k, v) in more {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::new())).expect("request")
}

async fn ask(req: Request<Full<Bytes>>) -> Resp {
    send(req).await.expect("response")
}

#[tokio::test]
async fn traefik_forward_auth_gets_the_answer_to_copy_to_the_client() {
    let p = portcullis("traefik", "");
    let ok = ask(traefik(
        &p,
        "GET",
        "/hello",
        &[("x-auth-request-user", "mallory")],
    ))
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("x-tenant"), Some("acme"));
    // Every identity header is present, empty without an identity: the
    // gateway's copy overwrites a client's.
    for h in [
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-groups",
        "x-portcullis-jwt-assertion",
    ] {
        assert_eq!(ok.header(h), Some(""), "{h}");
    }
    let denied = ask(traefik(&p, "GET", "/%2e%2e/admin", &[])).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let limited: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                ask(traefik(&p, "GET", "/limited", &[]))
                    .await
                    .status
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(limited, vec![200, 200, 429]);
    let basic = ask(traefik(&p, "GET", "/private", &[("authorization", ALICE)])).await;
    assert_eq!(basic.status, StatusCode::OK);
    assert_eq!(basic.header("x-auth-request-user"), Some("alice"));
    let token = basic
        .header("x-portcullis-jwt-assertion")
        .expect("assertion");
    assert!(
        verify_assertion(&p, token, "app.example.com")
            .await
            .is_some()
    );

    // Missing, doubled or malformed descriptions: refused with a code.
    for (why, req) in [
        (
            "no X-Forwarded-Uri",
            Request::get(p.url("/verify"))
                .header("x-forwarded-method", "GET")
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", "app")
                .body(Full::new(Bytes::new()))
                .expect("request"),
        ),
        (
            "a target that is not a path",
            traefik(&p, "GET", "http://evil/", &[]),
        ),
        ("a bad method", traefik(&p, "G T", "/", &[])),
        (
            "two hosts",
            traefik(&p, "GET", "/", &[("x-forwarded-host", "other")]),
        ),
        ("a bad path", traefik(&p, "GET", "/a%00b", &[])),
    ] {
        let r = ask(req).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.text());
        assert!(
            r.header("portcullis-error-code").is_some(),
            "{why}: {:?}",
            r.headers
        );
    }
    // Any other path is not the verify path.
    let other = get(&p.url("/hello"), &[]).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_configured_gateways_are_answered() {
    // Trusted: a range loopback is not in.
    let p = portcullis("traefik", "      trusted: [10.0.0.0/8]\n");
    let r = ask(traefik(&p, "GET", "/hello", &[])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.header("portcullis-error-code"),
        Some("ERR_PORTCULLIS_UNTRUSTED_GATEWAY")
    );
    // The key set is public.
    let jwks = get(&p.url("/.well-known/portcullis/jwks.json"), &[]).await;
    assert_eq!(jwks.status, StatusCode::OK);
}

#[tokio::test]
async fn a_policy_a_gateway_cannot_apply_does_not_start() {
    let dir = support::temp_dir("fa-lint");
    std::fs::write(
        dir.join("policy.yml"),
        "on_http_request:\n  - actions:\n      - type: remove-headers\n        config:\n          headers: [x-internal]\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("portcullis.yml"),
        "endpoints:\n  - listen: 127.0.0.1:0\n    traffic_policy_file: policy.yml\n    forward_auth: { gateway: nginx }\n",
    )
    .expect("write");
    let config = dir.join("portcullis.yml").display().to_string();
    let err = Proxy::spawn(&["serve", "--config", &config], dir.clone())
        .err()
        .expect("refuses to start");
    assert!(
        err.contains("E0150") && err.contains("remove-headers"),
        "{err}"
    );
    // Envoy can remove headers: the same policy starts there.
    std::fs::write(
        dir.join("portcullis.yml"),
        "endpoints:\n  - listen: 127.0.0.1:0\n    traffic_policy_file: policy.yml\n    forward_auth: { gateway: envoy }\n",
    )
    .expect("write");
    assert!(Proxy::spawn(&["serve", "--config", &config], dir).is_ok());
}

/// A request to Envoy's HTTP service as Envoy sends it: the original
/// method and path behind `path_prefix`, the original `Host`.
fn envoy_http(p: &Proxy, method: &str, path: &str, more: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(p.url(&format!("/verify{path}")))
        .header("host", "app.example.com")
        .header("content-length", "0")
        .header("x-forwarded-proto", "https");
    for (k, v) in more {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::new())).expect("request")
}

#[tokio::test]
async fn envoy_http_service_gets_200_or_the_answer_and_header_removals() {
    let p = Proxy::serve(
        "endpoints:\n  - listen: 127.0.0.1:0\n    traffic_policy_file: policy.yml\n    forward_auth: { gateway: envoy }\n",
        &[(
            "policy.yml",
            &format!(
                "{POLICY}      - type: remove-headers\n        config:\n          headers: [x-internal-secret]\n"
            ),
        )],
    );
    let ok = ask(envoy_http(
        &p,
        "POST",
        "/hello",
        &[("x-internal-secret", "s")],
    ))
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.header("x-tenant"), Some("acme"));
    assert_eq!(
        ok.header("x-envoy-auth-headers-to-remove"),
        Some("x-internal-secret")
    );
    let delete = ask(envoy_http(&p, "DELETE", "/items/1", &[])).await;
    assert_eq!(delete.status.as_u16(), 405);
    let tea = ask(envoy_http(&p, "GET", "/teapot", &[])).await;
    assert_eq!(tea.status.as_u16(), 418);
    assert_eq!(tea.text(), "short and stout");
    let denied = ask(envoy_http(&p, "GET", "/admin/../admin", &[])).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    // Without the prefix, nothing is described.
    let r = ask(Request::get(p.url("/admin"))
        .body(Full::new(Bytes::new()))
        .expect("request"))
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

mod grpc {
    use super::*;
    use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
        HttpRequest, Request as AttrRequest,
    };
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    use envoy_types::pb::envoy::service::auth::v3::{
        AttributeContext, check_response::HttpResponse,
    };

    fn check(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(AttrRequest {
                    http: Some(HttpRequest {
                        method: method.into(),
                        path: path.into(),
                        host: "app.example.com".into(),
                        scheme: "https".into(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .chain([(":authority".into(), "app.example.com".into())])
                            .collect(),
                        ..HttpRequest::default()
                    }),
                    ..AttrRequest::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }

    async fn client(p: &Proxy) -> AuthorizationClient<tonic::transport::Channel> {
        AuthorizationClient::connect(format!("http://{}", p.addr))
            .await
            .expect("connects")
    }

    fn code(r: &CheckResponse) -> i32 {
        r.status.as_ref().map_or(-1, |s| s.code)
    }

    #[tokio::test]
    async fn envoy_grpc_check_allows_denies_and_refuses_with_a_response() {
        let p = portcullis("envoy", "");
        let mut c = client(&p).await;
        // Allow: OK, the identity and the policy's headers to set.
        let ok = c
            .check(check("GET", "/private?a=1", &[("authorization", ALICE)]))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(code(&ok), 0, "{ok:?}");
        let Some(HttpResponse::OkResponse(okr)) = &ok.http_response else {
            panic!("{ok:?}")
        };
        let set = |name: &str| {
            okr.headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .find(|h| h.key == name)
                .map(|h| h.value.clone())
        };
        assert_eq!(set("x-auth-request-user").as_deref(), Some("alice"));
        assert_eq!(set("x-tenant").as_deref(), Some("acme"));
        let token = set("x-portcullis-jwt-assertion").expect("assertion");
        assert!(
            verify_assertion(&p, &token, "app.example.com")
                .await
                .is_some()
        );
        // Identity headers it has no value for are removed, not left to
        // the client.
        assert!(
            okr.headers_to_remove
                .iter()
                .any(|h| h == "x-auth-request-email")
        );

        // Deny: PERMISSION_DENIED with the policy's status and body.
        let tea = c
            .check(check("GET", "/teapot", &[]))
            .await
            .expect("answers")
            .into_inner();
        assert_eq!(code(&tea), 7);
        let Some(HttpResponse::DeniedResponse(d)) = &tea.http_response else {
            panic!("{tea:?}")
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(418));
        assert_eq!(d.body, "short and stout");
        let admin = c
            .check(check("GET", "/%2e%2e/admin", &[]))
            .await
            .expect("answers")
            .into_inner();
        assert_ne!(code(&admin), 0);

        // No HTTP attributes, a bad path: a denial with 400, never a gRPC
        // error (which `failure_mode_allow` would turn into an allow).
        for bad in [
            CheckRequest::default(),
            check("GET", "no-slash", &[]),
            check("GET", "/a%00", &[]),
        ] {
            let r = c
                .check(bad.clone())
                .await
                .expect("a CheckResponse")
                .into_inner();
            assert_ne!(code(&r), 0, "{bad:?}");
            let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
                panic!("{r:?}")
            };
            assert_eq!(d.status.as_ref().map(|s| s.code), Some(400), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_untrusted_grpc_peer_is_refused() {
        let p = portcullis("envoy", "      trusted: [192.0.2.0/24]\n");
        let mut c = client(&p).await;
        // A denial, not a gRPC error: with `failure_mode_allow: true`,
        // Envoy would let an error through.
        let r = c
            .check(check("GET", "/hello", &[]))
            .await
            .expect("a CheckResponse")
            .into_inner();
        assert_eq!(code(&r), 7, "{r:?}");
        let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
            panic!("{r:?}")
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(403));
        assert!(
            d.headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .any(|h| h.value == "ERR_PORTCULLIS_UNTRUSTED_GATEWAY"),
            "{d:?}"
        );
    }
}

/// docs/forward-auth.md shows the configurations the tests above run,
/// unchanged.
#[test]
fn the_documented_configurations_are_the_tested_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/forward-auth.md")).expect("the doc");
    for file in ["nginx.conf", "Caddyfile"] {
        let text = std::fs::read_to_string(root.join("docs/forward-auth").join(file))
            .expect("the configuration");
        assert!(
            doc.contains(text.trim_end()),
            "docs/forward-auth.md does not show docs/forward-auth/{file} as it is"
        );
    }
}

/// `portcullis http --identity-headers`: the upstream gets the identity
/// and the same signed assertion, and never a client's copies.
#[tokio::test]
async fn portcullis_http_sends_the_identity_upstream() {
    let app = echo().await;
    let p = Proxy::http_with(POLICY, app, &["--identity-headers"]);
    let r = get(
        &p.url("/private/x"),
        &[
            ("authorization", ALICE),
            ("x-forwarded-user", "mallory"),
            ("x-portcullis-jwt-assertion", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = r.echo();
    assert_eq!(
        header_of(&seen, "x-forwarded-user").as_deref(),
        Some("alice")
    );
    assert_eq!(
        seen["headers"]["x-forwarded-user"].as_array().map(Vec::len),
        Some(1)
    );
    let token = header_of(&seen, "x-portcullis-jwt-assertion").expect("an assertion");
    let host = p.addr.to_string();
    let claims = verify_assertion(&p, &token, &host)
        .await
        .expect("the assertion verifies against the endpoint's key set");
    assert_eq!(claims["sub"], "alice");
    // Without an identity, a client's copies are removed, not passed on.
    let anon = get(
        &p.url("/hello"),
        &[
            ("x-forwarded-user", "mallory"),
            ("x-forwarded-email", "ceo@example.com"),
            ("x-portcullis-jwt-assertion", "forged"),
        ],
    )
    .await;
    let seen = anon.echo();
    for h in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-portcullis-jwt-assertion",
    ] {
        assert!(
            seen["headers"][h].is_null(),
            "{h} reached the upstream: {seen}"
        );
    }
    // A proxy without the flag leaves the headers alone (it makes no
    // identity claims) and serves no key set.
    let plain = Proxy::http(POLICY, app);
    let jwks = get(&plain.url("/.well-known/portcullis/jwks.json"), &[]).await;
    assert_eq!(
        jwks.echo()["path"],
        "/.well-known/portcullis/jwks.json",
        "proxied, not answered"
    );
}

/// A reload to a policy the gateway cannot apply is refused, and the
/// running policy keeps answering.
#[tokio::test]
async fn a_reload_the_gateway_cannot_apply_keeps_the_running_policy() {
    let p = portcullis("traefik", "");
    assert_eq!(
        ask(traefik(&p, "GET", "/admin", &[])).await.status,
        StatusCode::FORBIDDEN
    );
    std::fs::write(
        p.dir.join("policy.yml"),
        "on_http_request:\n  - actions:\n      - type: url-rewrite\n        config: { from: /admin, to: /public }\n",
    )
    .expect("rewrite");
    assert!(p.wait_for_log("keeps serving"), "{}", p.log());
    assert!(p.log().contains("E0150"), "{}", p.log());
    assert_eq!(
        ask(traefik(&p, "GET", "/admin", &[])).await.status,
        StatusCode::FORBIDDEN,
        "the running policy still denies"
    );
}
