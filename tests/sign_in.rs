//! Sign-in end to end: the real binary, the Entra-shaped OpenID provider
//! (`tests/oidc`), and a client that follows redirects and keeps cookies
//! as a browser does (`Browser`, below: no JavaScript, so `form_post`'s
//! auto-submitting form is submitted by reading its fields).

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

#[path = "support/browser.rs"]
mod browser;
#[path = "support/gateway.rs"]
mod gateway;
#[path = "support/oidc.rs"]
mod oidc;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/redis.rs"]
mod redis;

use browser::{Browser, absolute};
use oidc::{CLIENT_ID, FakeGitHub, FakeOAuth2, GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, Idp};
use proxy::{Proxy, echo, send};

const SECRET: &str = "p0rtcullis~Test.secret_value-1";

/// A policy signing in with Microsoft at the test provider: `extra`
/// config lines (each ending in a newline), then `rules`.
fn microsoft_policy(idp: &Idp, extra: &str, rules: &str) -> String {
    format!(
        r#"
on_http_request:
  - actions:
      - type: oauth
        config:
          provider: microsoft
          authority_host: {base}
          client_id: "{CLIENT_ID}"
          client_secret: "{SECRET}"
{extra}{rules}"#,
        base = idp.base,
    )
}

/// The product's seed policy: Microsoft sign-in, then an email allow-list.
fn seed_policy(idp: &Idp, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra}\n")
    };
    microsoft_policy(
        idp,
        &format!("          scopes: [openid, email, profile]\n{extra}"),
        r#"  - expressions:
      - "!(actions.ngrok.oauth.identity.email in ['alice@contoso.test', 'carol@contoso.test'])"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-email: "${actions.ngrok.oauth.identity.email}"
            x-identity: "${actions.ngrok.oauth.identity.id}"
"#,
    )
}

fn idp() -> Idp {
    Idp::start_with(&["--redirect-uri", "http://127.0.0.1/ngrok/callback"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_policy_admits_listed_users_and_denies_the_others() {
    let idp = idp();
    let up = echo().await;
    let proxy = Proxy::http(&seed_policy(&idp, ""), up);

    let mut alice = Browser::default();
    let res = alice
        .visit(&proxy.url("/reports?q=3"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let echo = res.echo();
    assert_eq!(echo["path"], "/reports", "back where she started");
    assert_eq!(echo["query"], "q=3");
    assert_eq!(echo["headers"]["x-email"][0], "alice@contoso.test");
    assert_eq!(
        echo["headers"]["x-identity"][0],
        format!(
            "{}.a11ce000-0000-4000-8000-000000000001",
            idp.tenant("contoso")
        )
    );
    // The session cookie carries her through without the provider.
    let res = alice.request("GET", &proxy.url("/again"), None).await;
    assert_eq!(res.status, StatusCode::OK);

    // Bob signs in fine (another tenant) but is not on the list.
    let mut bob = Browser::default();
    let res = bob.visit(&proxy.url("/"), "bob@fabrikam.test").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // Mallory's token claims alice's address, unverified (nOAuth).
    let mut mallory = Browser::default();
    let res = mallory.visit(&proxy.url("/"), "mallory@contoso.test").await;
    assert_eq!(
        res.status,
        StatusCode::FORBIDDEN,
        "an unverified email is not an identity"
    );
}

/// The seed policy behind nginx: Portcullis answers nginx's
/// `auth_request` (the documented configuration, docs/forward-auth/), and
/// the whole sign-in (the redirect to the provider, the callback, the
/// session cookie, sign-out) passes through nginx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_policy_signs_in_through_nginx_auth_request() {
    let idp = idp();
    let app = echo().await;
    let portcullis = Proxy::serve(
        "endpoints:\n  - listen: 127.0.0.1:0\n    traffic_policy_file: policy.yml\n    \
         forward_auth: { gateway: nginx }\n",
        &[("policy.yml", &seed_policy(&idp, ""))],
    );
    let port = gateway::free_port();
    let nginx = gateway::Gateway::nginx(
        &gateway::documented("nginx.conf", portcullis.addr, app, port),
        port,
    );

    let mut alice = Browser::default();
    let res = alice
        .visit(&nginx.url("/reports?q=3"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let seen = res.echo();
    assert_eq!(seen["path"], "/reports", "back where she started");
    assert_eq!(seen["query"], "q=3");
    assert_eq!(
        seen["headers"]["x-forwarded-email"][0],
        "alice@contoso.test"
    );
    // The assertion names her, signed with the key set Portcullis serves.
    let token = seen["headers"]["x-portcullis-jwt-assertion"][0]
        .as_str()
        .expect("an assertion");
    let jwks = proxy::get(&portcullis.url("/.well-known/portcullis/jwks.json"), &[]).await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.body).expect("jwks");
    let kid = jsonwebtoken::decode_header(token).expect("header").kid;
    let key =
        jsonwebtoken::DecodingKey::from_jwk(set.find(kid.as_deref().unwrap_or("")).expect("kid"))
            .expect("key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    let host = nginx.addr.to_string();
    v.set_audience(&[&host]);
    v.set_issuer(&[&host]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
        .expect("the assertion verifies")
        .claims;
    assert_eq!(claims["email"], "alice@contoso.test");
    assert_eq!(claims["tid"], idp.tenant("contoso"));

    // Her session carries her through nginx without the provider.
    let res = alice.request("GET", &nginx.url("/again"), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // Bob signs in but is not on the list; mallory's email is unverified.
    for user in ["bob@fabrikam.test", "mallory@contoso.test"] {
        let mut other = Browser::default();
        let res = other.visit(&nginx.url("/"), user).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{user}");
        assert!(res.echo().is_null(), "{user} reached the app");
    }

    // Signing out through nginx ends the session.
    let res = alice
        .request("GET", &nginx.url("/ngrok/logout"), None)
        .await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.text());
    let res = alice.request("GET", &nginx.url("/again"), None).await;
    assert_eq!(
        res.status,
        StatusCode::FOUND,
        "signed out: back to the provider"
    );
    assert!(
        res.header("location")
            .is_some_and(|l| l.starts_with(&idp.base)),
        "{:?}",
        res.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_post_cookies_survive_the_cross_site_post() {
    let idp = idp();
    let up = echo().await;
    let proxy = Proxy::http(
        &seed_policy(
            &idp,
            "          authz_url_params:\n            response_mode: form_post",
        ),
        up,
    );
    let mut alice = Browser::default();
    let first = alice.request("GET", &proxy.url("/"), None).await;
    let flow_cookie = first
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("portcullis_flow_"))
        .expect("flow cookie")
        .to_owned();
    assert!(
        flow_cookie.contains("SameSite=None; Secure"),
        "{flow_cookie}"
    );
    let res = alice.visit(&proxy.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_and_redirects_only_within_the_endpoint() {
    let idp = idp();
    let up = echo().await;
    let proxy = Proxy::http(&seed_policy(&idp, ""), up);
    let mut alice = Browser::default();
    assert_eq!(
        alice
            .visit(&proxy.url("/"), "alice@contoso.test")
            .await
            .status,
        StatusCode::OK
    );
    let res = alice
        .request(
            "GET",
            &proxy.url("/ngrok/logout?redirect_path=//evil.example/x"),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert_eq!(res.header("location"), Some("/"), "no open redirect");
    let res = alice.request("GET", &proxy.url("/private"), None).await;
    assert_eq!(
        res.status,
        StatusCode::FOUND,
        "signed out: back to the provider"
    );
    assert!(
        res.header("location")
            .is_some_and(|l| l.starts_with(&idp.base))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_state_swapped_cookies_and_replayed_answers_are_refused() {
    let idp = idp();
    let up = echo().await;
    let proxy = Proxy::http(&seed_policy(&idp, ""), up);

    // Run the flow by hand up to the provider's answer.
    let mut b = Browser::default();
    let mut res = b.request("GET", &proxy.url("/"), None).await;
    let mut url = absolute(
        &proxy.url("/"),
        res.header("location").expect("to the provider"),
    );
    url.push_str("&login_hint=alice@contoso.test");
    let callback = loop {
        res = b.request("GET", &url, None).await;
        let next = absolute(&url, res.header("location").expect("redirect"));
        if next.contains("/ngrok/callback?") {
            break next;
        }
        url = next;
    };

    // A tampered state.
    let tampered = callback.replace("state=", "state=x");
    let res = b.request("GET", &tampered, None).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3300"));

    // The session cookie presented in place of the flow cookie.
    let flow = b
        .cookies
        .iter()
        .find(|(k, _)| k.starts_with("portcullis_flow_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("flow cookie");
    let mut swapped = Browser::default();
    swapped
        .cookies
        .insert(flow.0.replace("flow", "session"), flow.1.clone());
    let res = swapped.request("GET", &proxy.url("/"), None).await;
    assert_eq!(
        res.status,
        StatusCode::FOUND,
        "a flow cookie is not a session"
    );

    // The real answer works once...
    let res = b.request("GET", &callback, None).await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.text());
    // ...and never again, even with the flow cookie it came with.
    let mut replay = Browser::default();
    replay.cookies.insert(flow.0, flow.1);
    let res = replay.request("GET", &callback, None).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_signs_in_with_a_tenant_issuer() {
    let idp = idp();
    let up = echo().await;
    let proxy = Proxy::http(
        &format!(
            r#"
on_http_request:
  - actions:
      - type: openid-connect
        config:
          issuer_url: {issuer}
          client_id: "{CLIENT_ID}"
          client_secret: "{SECRET}"
          scopes: [openid, profile, email]
  - actions:
      - type: add-headers
        config:
          headers:
            x-name: "${{actions.ngrok.oidc.identity.name}}"
            x-has-token: "${{actions.ngrok.oidc.identity_token != ''}}"
"#,
            issuer = idp.issuer("contoso"),
        ),
        up,
    );
    let mut alice = Browser::default();
    let res = alice.visit(&proxy.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-has-token"][0], "true");
    assert!(
        res.echo()["headers"]["x-name"][0]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    // Bob's tenant is not this issuer's: the provider refuses him.
    let mut bob = Browser::default();
    let res = bob.visit(&proxy.url("/"), "bob@fabrikam.test").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_roles_and_tenants_decide_and_overage_is_read_from_graph() {
    let idp = idp();
    let up = echo().await;
    let contoso = idp.tenant("contoso");
    let proxy = Proxy::http(
        &microsoft_policy(
            &idp,
            &format!("          graph_url: {}/graph\n", idp.base),
            &format!(
                r#"  - name: one tenant only
    expressions:
      - "actions.portcullis.oauth.tid != '{contoso}'"
    actions:
      - type: deny
  - name: admins, by group
    expressions:
      - "req.url.path.startsWith('/admin') && !('g-admins' in actions.portcullis.oauth.groups)"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-roles: "${{actions.portcullis.oauth.roles.join(',')}}"
            x-groups: "${{string(size(actions.portcullis.oauth.groups))}}"
            x-verified: "${{actions.portcullis.oauth.email_verified}}"
"#
            ),
        ),
        up,
    );
    // alice: in g-admins by her token's `groups`; role Admin.
    let mut alice = Browser::default();
    let res = alice
        .visit(&proxy.url("/admin/users"), "alice@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-roles"][0], "Admin");
    assert_eq!(res.echo()["headers"]["x-verified"][0], "true");

    // carol: 250 groups, so her token names Graph instead (overage); the
    // proxy reads every page and finds g-admins among them.
    let mut carol = Browser::default();
    let res = carol
        .visit(&proxy.url("/admin/users"), "carol@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-groups"][0], "250");

    // mallory: contoso, but not an admin.
    let mut mallory = Browser::default();
    let res = mallory
        .visit(&proxy.url("/admin/users"), "mallory@contoso.test")
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // bob: another tenant.
    let mut bob = Browser::default();
    let res = bob.visit(&proxy.url("/"), "bob@fabrikam.test").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_outlive_a_key_rotation_and_expire_at_their_maximum() {
    let idp = idp();
    let up = echo().await;
    let proxy = Proxy::http(&seed_policy(&idp, "          max_session_duration: 2s"), up);
    let mut alice = Browser::default();
    assert_eq!(
        alice
            .visit(&proxy.url("/"), "alice@contoso.test")
            .await
            .status,
        StatusCode::OK
    );
    // The provider rotates its keys and drops the old ones: alice's
    // session is the proxy's, and carries on; a new sign-in is verified
    // with the new key, fetched because its `kid` is unknown.
    idp.rotate_keys(true);
    let res = alice.request("GET", &proxy.url("/still"), None).await;
    assert_eq!(res.status, StatusCode::OK);
    let mut again = Browser::default();
    let res = again.visit(&proxy.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Past max_session_duration, the session ends: back to the provider.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let res = alice.request("GET", &proxy.url("/later"), None).await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert!(
        res.header("location")
            .is_some_and(|l| l.starts_with(&idp.base))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_foreign_session_cookie_is_no_session() {
    let idp = idp();
    let up = echo().await;
    let proxy = Proxy::http(&seed_policy(&idp, ""), up);
    let mut alice = Browser::default();
    assert_eq!(
        alice
            .visit(&proxy.url("/"), "alice@contoso.test")
            .await
            .status,
        StatusCode::OK
    );
    let (name, value) = alice
        .cookies
        .iter()
        .find(|(k, _)| k.starts_with("portcullis_session_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("session cookie");
    // One character changed: the seal breaks, the proxy sends the browser
    // to sign in again rather than trust it.
    let mut bytes = value.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let mut tampered = Browser::default();
    tampered
        .cookies
        .insert(name.clone(), String::from_utf8(bytes).expect("text"));
    let res = tampered.request("GET", &proxy.url("/"), None).await;
    assert_eq!(res.status, StatusCode::FOUND);
    // A valid session of another proxy (another key) is no session here.
    let other = Proxy::http(&seed_policy(&idp, ""), up);
    let mut foreign = Browser::default();
    foreign.cookies.insert(name, value);
    let res = foreign.request("GET", &other.url("/"), None).await;
    assert_eq!(res.status, StatusCode::FOUND);
}

/// A policy signing in with the fake GitHub: `extra` config lines, then
/// `rules`.
fn github_policy(github: &FakeGitHub, extra: &str, rules: &str) -> String {
    format!(
        r#"
on_http_request:
  - actions:
      - type: oauth
        config:
          provider: github
          authority_host: {base}
          api_url: {base}/api
          client_id: "{GITHUB_CLIENT_ID}"
          client_secret: "{GITHUB_CLIENT_SECRET}"
{extra}{rules}"#,
        base = github.base,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sign_in_uses_the_verified_primary_email() {
    let github = FakeGitHub::start();
    let up = echo().await;
    let proxy = Proxy::http(
        &github_policy(
            &github,
            "",
            r#"
  - expressions:
      - "!(actions.ngrok.oauth.identity.email in ['octocat@github.test'])"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-user: "${actions.ngrok.oauth.identity.provider_user_id} ${actions.ngrok.oauth.identity.name}"
"#,
        ),
        up,
    );
    let mut octocat = Browser::default();
    let res = octocat.visit(&proxy.url("/repos"), "octocat").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-user"][0], "583231 The Octocat");
    // mona's primary address is octocat's, unverified: not an identity.
    let mut mona = Browser::default();
    let res = mona.visit(&proxy.url("/repos"), "mona").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
}

/// Facebook and Amazon sign in with their OAuth web flows and profile
/// APIs (against provider-shaped fakes): the user's id, name and email as
/// the identity; a Facebook user without a confirmed email has none, so an
/// email allowlist refuses them; a user who declines gets no session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facebook_and_amazon_sign_in_with_their_profiles() {
    for (provider, client_id, secret, id) in [
        (
            "facebook",
            "1234567890123456",
            "fb-app-secret-1",
            "10224000000000001",
        ),
        (
            "amazon",
            "amzn1.application-oa2-client.portcullis",
            "amzn-secret-1",
            "amzn1.account.AF4AAAAAAAAAAAAAAAAAAAAAAAAA",
        ),
    ] {
        let fake = FakeOAuth2::start(provider);
        let up = echo().await;
        let proxy = Proxy::http(
            &format!(
                r#"
on_http_request:
  - actions:
      - type: oauth
        config:
          provider: {provider}
          authority_host: {base}
          api_url: {base}
          client_id: "{client_id}"
          client_secret: "{secret}"
  - expressions:
      - "!(actions.ngrok.oauth.identity.email in ['ana@example.test'])"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-user: "${{actions.ngrok.oauth.identity.provider_user_id}} ${{actions.ngrok.oauth.identity.name}}"
"#,
                base = fake.base,
            ),
            up,
        );
        let mut ana = Browser::default();
        let res = ana.visit(&proxy.url("/orders"), "ana").await;
        assert_eq!(res.status, StatusCode::OK, "{provider}: {}", res.text());
        assert_eq!(
            res.echo()["headers"]["x-user"][0],
            format!("{id} Ana Lima"),
            "{provider}"
        );
        // Signed in: the next request needs no provider.
        let res = ana.visit(&proxy.url("/orders/2"), "ana").await;
        assert_eq!(res.status, StatusCode::OK, "{provider}");

        if provider == "facebook" {
            let mut ben = Browser::default();
            let res = ben.visit(&proxy.url("/orders"), "ben").await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
        }
        let mut stranger = Browser::default();
        let res = stranger.visit(&proxy.url("/orders"), "nobody").await;
        assert!(res.status.is_client_error(), "{provider}: {}", res.status);
        assert!(
            res.echo().is_null(),
            "{provider}: a declined sign-in reached the upstream"
        );
    }
}

/// The policy of ngrok's LinkedIn and Twitch examples, at a fake provider.
fn social_policy(provider: &str, fake: &FakeOAuth2, client_id: &str, secret: &str) -> String {
    format!(
        r#"
on_http_request:
  - actions:
      - type: oauth
        config:
          provider: {provider}
          authority_host: {base}
          client_id: "{client_id}"
          client_secret: "{secret}"
  - expressions:
      - "!(actions.ngrok.oauth.identity.email in ['ana@example.test'])"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers:
            x-user: "${{actions.ngrok.oauth.identity.provider_user_id}} ${{actions.ngrok.oauth.identity.name}}"
"#,
        base = fake.base,
    )
}

/// ngrok's managed-app examples for Google and GitLab, as its docs print
/// them plus `authority_host` (the provider-shaped fake) and the app from
/// the deployment's environment: Google's company-domain rule lets in the
/// company and refuses a Gmail user; Google's scheme-less `iss`
/// (`accounts.google.com`) is its issuer too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_and_gitlab_managed_app_examples_sign_in() {
    for (provider, client_id, secret) in [
        (
            "google",
            "1234-portcullis.apps.googleusercontent.com",
            "GOCSPX-portcullis",
        ),
        ("gitlab", "gitlab-portcullis-app", "gloas-portcullis"),
    ] {
        let fake = FakeOAuth2::start(provider);
        let up = echo().await;
        let policy = format!(
            r#"
on_http_request:
  - actions:
      - type: oauth
        config:
          provider: {provider}
          authority_host: {base}
  - expressions:
      - "!actions.ngrok.oauth.identity.email.endsWith('@acme.com')"
    actions:
      - type: deny
"#,
            base = fake.base
        );
        let upper = provider.to_ascii_uppercase();
        let dir = proxy::temp_dir("managed-social");
        let path = dir.join("policy.yml");
        std::fs::write(&path, &policy).expect("write");
        let env = [
            (
                format!("PORTCULLIS_OAUTH_{upper}_CLIENT_ID"),
                client_id.to_owned(),
            ),
            (
                format!("PORTCULLIS_OAUTH_{upper}_CLIENT_SECRET"),
                secret.to_owned(),
            ),
        ];
        let proxy = Proxy::spawn_with_env(
            &[
                "http",
                &up.to_string(),
                "--listen",
                "127.0.0.1:0",
                "--traffic-policy-file",
                path.to_str().expect("utf-8"),
            ],
            dir,
            &env,
        )
        .expect("starts");
        let mut ana = Browser::default();
        let res = ana.visit(&proxy.url("/docs"), "ana").await;
        assert_eq!(res.status, StatusCode::OK, "{provider}: {}", res.text());
        assert_eq!(res.echo()["path"], "/docs", "{provider}");
        if provider == "google" {
            let mut bob = Browser::default();
            let res = bob.visit(&proxy.url("/docs"), "bob").await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
            assert!(res.echo().is_null());
        }
        // A forged issuer is not Google's other spelling.
        refuses_forged(&fake, &proxy, "issuer", provider).await;
    }
}

/// The fake provider forges `kind` (`issuer`, `audience`, `nonce`) in the
/// ID tokens it issues next; a user signing in with one gets no session
/// and never reaches the upstream.
async fn refuses_forged(fake: &FakeOAuth2, proxy: &Proxy, kind: &str, provider: &str) {
    let forge = Request::post(format!("{}/_admin/forge?kind={kind}", fake.base))
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(forge).await.expect("forge");
    let mut victim = Browser::default();
    let res = victim.visit(&proxy.url("/orders"), "ana").await;
    assert!(
        res.status.is_client_error(),
        "{provider}: an ID token with a forged {kind} signed in: {}",
        res.status
    );
    assert!(
        res.echo().is_null(),
        "{provider}: forged {kind} reached the upstream"
    );
}

/// LinkedIn and Twitch sign in with OpenID Connect as each departs from
/// it (against provider-shaped fakes): LinkedIn refuses a PKCE verifier
/// and sends no nonce, Twitch names its claims only when asked. The ID
/// token still has to be the provider's, for this client: a forged
/// issuer or audience, or (Twitch) a nonce not the flow's, signs no one in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkedin_and_twitch_sign_in_with_their_openid_connect() {
    for (provider, client_id, secret, user) in [
        (
            "linkedin",
            "86portcullis",
            "li-secret-1",
            "li-782bbtaQ Ana Lima",
        ),
        (
            "twitch",
            "portcullistwitchclient",
            "tw-secret-1",
            "713936733 ana_lima",
        ),
    ] {
        let fake = FakeOAuth2::start(provider);
        let up = echo().await;
        let proxy = Proxy::http(&social_policy(provider, &fake, client_id, secret), up);
        let mut ana = Browser::default();
        let res = ana.visit(&proxy.url("/orders"), "ana").await;
        assert_eq!(res.status, StatusCode::OK, "{provider}: {}", res.text());
        assert_eq!(res.echo()["headers"]["x-user"][0], user, "{provider}");
        let res = ana.visit(&proxy.url("/orders/2"), "ana").await;
        assert_eq!(res.status, StatusCode::OK, "{provider}");

        if provider == "linkedin" {
            // An address LinkedIn has not verified is no email at all.
            let mut eve = Browser::default();
            let res = eve.visit(&proxy.url("/orders"), "eve").await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
        }
        let mut stranger = Browser::default();
        let res = stranger.visit(&proxy.url("/orders"), "nobody").await;
        assert!(res.status.is_client_error(), "{provider}: {}", res.status);
        assert!(
            res.echo().is_null(),
            "{provider}: a declined sign-in got through"
        );

        let forgeries: &[&str] = if provider == "twitch" {
            &["issuer", "audience", "nonce"]
        } else {
            &["issuer", "audience"]
        };
        for kind in forgeries {
            refuses_forged(&fake, &proxy, kind, provider).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_is_asked_again_and_a_revoked_authorization_signs_the_user_out() {
    let github = FakeGitHub::start();
    let up = echo().await;
    let proxy = Proxy::http(
        &github_policy(
            &github,
            "          userinfo_refresh_interval: 1s\n",
            r#"
  - actions:
      - type: add-headers
        config:
          headers:
            x-refreshed: "${actions.ngrok.oauth.userinfo_refreshed}"
            authorization: "Bearer ${actions.ngrok.oauth.access_token}"
"#,
        ),
        up,
    );
    let mut octocat = Browser::default();
    let res = octocat.visit(&proxy.url("/"), "octocat").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-refreshed"][0], "false");
    // The access token reaches the upstream, as the policy asks.
    assert!(
        res.echo()["headers"]["authorization"][0]
            .as_str()
            .is_some_and(|v| v.starts_with("Bearer gho_")),
        "{}",
        res.echo()
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = octocat.request("GET", &proxy.url("/"), None).await;
    assert_eq!(res.echo()["headers"]["x-refreshed"][0], "true");
    // The user revokes the app at GitHub: at the next check, the session
    // ends and the browser is sent to sign in again.
    let revoke = Request::post(format!("{}/_admin/revoke", github.base))
        .body(Full::new(Bytes::new()))
        .expect("request");
    send(revoke).await.expect("revoked");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let res = octocat.request("GET", &proxy.url("/"), None).await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert!(
        res.header("location")
            .is_some_and(|l| l.starts_with(&format!("{}/login/oauth/authorize", github.base)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_tenants_refuses_other_tenants_at_sign_in() {
    let idp = idp();
    let up = echo().await;
    let contoso = idp.tenant("contoso");
    let proxy = Proxy::http(
        &seed_policy(&idp, &format!("          allowed_tenants: [\"{contoso}\"]")),
        up,
    );
    let mut bob = Browser::default();
    let res = bob.visit(&proxy.url("/"), "bob@fabrikam.test").await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3403"));
    assert!(
        !bob.cookies
            .keys()
            .any(|k| k.starts_with("portcullis_session_")),
        "no session for a refused tenant"
    );
    let mut alice = Browser::default();
    let res = alice.visit(&proxy.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

/// `openid-connect` without `client_secret` is a public client: the code
/// is redeemed with PKCE alone, and a provider that registered the app as
/// public (`token_endpoint_auth_method: none`) signs the user in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_connect_without_a_secret_signs_in_as_a_public_client() {
    let idp = Idp::start_configured(
        &["--redirect-uri", "http://127.0.0.1/ngrok/callback"],
        Some(
            r#"{"clients": [{"client_id": "a1b2c3d4-0000-4000-8000-00000000public",
                "redirect_uris": ["http://127.0.0.1/ngrok/callback"],
                "token_endpoint_auth_method": "none"}]}"#,
        ),
    );
    let up = echo().await;
    let proxy = Proxy::http(
        &format!(
            r#"
on_http_request:
  - actions:
      - type: openid-connect
        config:
          issuer_url: {issuer}
          client_id: "a1b2c3d4-0000-4000-8000-00000000public"
  - actions:
      - type: add-headers
        config:
          headers:
            x-email: "${{actions.ngrok.oidc.identity.email}}"
"#,
            issuer = idp.issuer("contoso"),
        ),
        up,
    );
    let mut alice = Browser::default();
    let res = alice.visit(&proxy.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-email"][0], "alice@contoso.test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_many_groups_still_gets_a_session_that_fits_a_cookie() {
    // 150 groups: under Entra's overage limit (200), so all are in the
    // token, and far more than a 4 KB cookie holds.
    let idp = Idp::start_configured(
        &["--redirect-uri", "http://127.0.0.1/ngrok/callback"],
        Some(
            r#"{"users": [{"upn": "erin@contoso.test", "oid": "e0000000-0000-4000-8000-000000000009",
                "tenant": "contoso", "name": "Erin", "email": "erin@contoso.test", "xms_edov": true,
                "groups": ["g-admins"], "group_count": 150, "roles": ["Admin"]}]}"#,
        ),
    );
    let up = echo().await;
    let proxy = Proxy::http(
        &microsoft_policy(
            &idp,
            "",
            r#"  - expressions: ["!('g-admins' in actions.portcullis.oauth.groups)"]
    actions: [{ type: deny }]
  - actions:
      - type: add-headers
        config:
          headers:
            x-groups: "${string(size(actions.portcullis.oauth.groups))}"
"#,
        ),
        up,
    );
    let mut erin = Browser::default();
    let res = erin.visit(&proxy.url("/"), "erin@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-groups"][0], "150");
    let session = erin
        .cookies
        .iter()
        .find(|(k, _)| k.starts_with("portcullis_session_"))
        .map(|(_, v)| v.len())
        .expect("session cookie");
    assert!(session < 4000, "{session} bytes");
    let res = erin.request("GET", &proxy.url("/again"), None).await;
    assert_eq!(res.echo()["headers"]["x-groups"][0], "150");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entra_authority_form_signs_in() {
    let idp = idp();
    let up = echo().await;
    for (tenant, user, oid) in [
        (
            "organizations",
            "bob@fabrikam.test",
            "b0b00000-0000-4000-8000-000000000002",
        ),
        (
            "consumers",
            "dave@outlook.test",
            "00000000-0000-0000-da7e-000000000005",
        ),
        (
            "contoso.test",
            "alice@contoso.test",
            "a11ce000-0000-4000-8000-000000000001",
        ),
    ] {
        let tid = match tenant {
            "organizations" => idp.tenant("fabrikam"),
            "consumers" => idp.tenant("consumers"),
            _ => idp.tenant("contoso"),
        };
        let proxy = Proxy::http(
            &microsoft_policy(
                &idp,
                &format!("          tenant: {tenant}\n"),
                r#"  - actions:
      - type: add-headers
        config:
          headers:
            x-identity: "${actions.ngrok.oauth.identity.id}"
"#,
            ),
            up,
        );
        let mut b = Browser::default();
        let res = b.visit(&proxy.url("/"), user).await;
        assert_eq!(res.status, StatusCode::OK, "{tenant}: {}", res.text());
        assert_eq!(
            res.echo()["headers"]["x-identity"][0],
            format!("{tid}.{oid}"),
            "{tenant}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_accept_a_providers_answer_once_across_the_fleet() {
    // Two replicas behind one public host (the load balancer forwards its
    // Host), with the same session keys and one Redis.
    let idp = idp();
    let up = echo().await;
    let redis = redis::Redis::start();
    let policy = seed_policy(&idp, "");
    let config = format!(
        "    traffic_policy_file: policy.yml\nstate: {}\nsession_keys: [AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=]\n",
        redis.url()
    );
    let a = Proxy::serve_for(&up, &config, &[("policy.yml", &policy)]);
    let b = Proxy::serve_for(&up, &config, &[("policy.yml", &policy)]);

    // The flow starts on replica A...
    let mut browser = Browser::default();
    let mut res = browser.request("GET", &a.url("/"), None).await;
    let mut url = absolute(
        &a.url("/"),
        res.header("location").expect("to the provider"),
    );
    url.push_str("&login_hint=alice@contoso.test");
    let callback = loop {
        res = browser.request("GET", &url, None).await;
        let next = absolute(&url, res.header("location").expect("redirect"));
        if next.contains("/ngrok/callback?") {
            break next;
        }
        url = next;
    };
    let jar = |b: &Browser| {
        b.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let on = |proxy: &Proxy| callback.replace(&a.addr.to_string(), &proxy.addr.to_string());
    let public = a.addr.to_string();
    let answer = |target: String, cookies: String| {
        let public = public.clone();
        async move {
            send(
                Request::get(target)
                    .header("host", public)
                    .header("cookie", cookies)
                    .body(Full::new(Bytes::new()))
                    .expect("request"),
            )
            .await
            .expect("response")
        }
    };
    // ...and the provider's answer reaches replica B: it is accepted...
    let flow_cookies = jar(&browser);
    let res = answer(on(&b), flow_cookies.clone()).await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.text());
    let session = res
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("portcullis_session_"))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    // ...and replayed to replica A, it is refused.
    let res = answer(on(&a), flow_cookies).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert_eq!(res.header("portcullis-error-code"), Some("ERR_NGROK_3301"));
    // The session made on B is good on A.
    let res = answer(a.url("/private"), session).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.echo()["headers"]["x-email"][0], "alice@contoso.test");
}

/// The JSON `/sessions` on `proxy`'s admin listener answers.
async fn admin_sessions(
    proxy: &Proxy,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let admin = proxy.admin.expect("an admin listener");
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = send(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("response");
    (
        res.status,
        serde_json::from_slice(&res.body).unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_sessions_end_everywhere_on_logout_and_through_the_admin_api() {
    let idp = idp();
    let up = echo().await;
    let redis = redis::Redis::start();
    let policy = seed_policy(&idp, "");
    let token = "an-admin-token-of-some-length";
    let config = format!(
        "    traffic_policy_file: policy.yml\nadmin: 127.0.0.1:0\nadmin_token: {token}\nstate: {}\nsession_keys: [AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=]\n",
        redis.url()
    );
    let a = Proxy::serve_for(&up, &config, &[("policy.yml", &policy)]);
    let b = Proxy::serve_for(&up, &config, &[("policy.yml", &policy)]);
    let c = Proxy::serve_for(&up, &config, &[("policy.yml", &policy)]);
    let session_of = |browser: &Browser| {
        browser
            .cookies
            .iter()
            .find(|(k, _)| k.starts_with("portcullis_session_"))
            .map(|(k, v)| format!("{k}={v}"))
            .expect("a session cookie")
    };
    let with_cookie = |proxy: &Proxy, cookie: String| {
        let url = proxy.url("/private");
        async move {
            send(
                Request::get(url)
                    .header("cookie", cookie)
                    .body(Full::new(Bytes::new()))
                    .expect("request"),
            )
            .await
            .expect("response")
        }
    };

    // Signed in on A; the cookie holds only a sealed id, and B reads the
    // session from Redis.
    let mut browser = Browser::default();
    let res = browser.visit(&a.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let stolen = session_of(&browser);
    assert!(
        stolen.len() < 200,
        "the cookie carries the session itself: {stolen}"
    );
    assert_eq!(with_cookie(&b, stolen.clone()).await.status, StatusCode::OK);
    assert_eq!(with_cookie(&c, stolen.clone()).await.status, StatusCode::OK);

    // The admin API lists it by email, guarded by the token.
    let (status, _) = admin_sessions(&a, "GET", "/sessions?user=alice@contoso.test", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, listed) =
        admin_sessions(&a, "GET", "/sessions?user=Alice@Contoso.test", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["sessions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // Logout on B ends it on A and C too, at once, for every copy of the
    // cookie.
    let res = browser.request("GET", &b.url("/ngrok/logout"), None).await;
    assert_eq!(res.status, StatusCode::FOUND);
    let ended = std::time::Instant::now();
    for proxy in [&a, &c] {
        let res = with_cookie(proxy, stolen.clone()).await;
        assert_eq!(
            res.status,
            StatusCode::FOUND,
            "a copy of the cookie still works"
        );
        assert!(
            res.header("location")
                .is_some_and(|l| l.contains("/authorize"))
        );
    }
    assert!(ended.elapsed() < std::time::Duration::from_secs(1));

    // A new session survives A's restart, and the admin API on B ends it.
    let mut browser = Browser::default();
    let res = browser.visit(&a.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let cookie = session_of(&browser);
    drop(a);
    let a = Proxy::serve_for(&up, &config, &[("policy.yml", &policy)]);
    assert_eq!(with_cookie(&a, cookie.clone()).await.status, StatusCode::OK);
    let (status, revoked) = admin_sessions(
        &b,
        "DELETE",
        "/sessions?user=alice@contoso.test",
        Some(token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(with_cookie(&a, cookie).await.status, StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_refuses_stored_sessions_for_now_and_keeps_the_cookie() {
    let idp = idp();
    let up = echo().await;
    let mut redis = redis::Redis::start_persistent();
    let policy = seed_policy(&idp, "");
    let config = format!(
        "    traffic_policy_file: policy.yml\nstate: {{ url: {}, timeout: 100ms }}\nsession_keys: [AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=]\n",
        redis.url()
    );
    let proxy = Proxy::serve_for(&up, &config, &[("policy.yml", &policy)]);
    let mut browser = Browser::default();
    let res = browser.visit(&proxy.url("/"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    redis.kill();
    let started = std::time::Instant::now();
    let res = browser.request("GET", &proxy.url("/private"), None).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    assert_eq!(
        res.header("portcullis-error-code"),
        Some("ERR_PORTCULLIS_STATE_UNAVAILABLE")
    );
    assert!(
        res.headers.get("set-cookie").is_none(),
        "the session cookie was touched"
    );
    // New sign-ins are refused too: no session that cannot be kept.
    let mut other = Browser::default();
    let res = other.visit(&proxy.url("/"), "carol@contoso.test").await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
}

/// A policy written for ngrok's managed OAuth apps (no `client_id`, no
/// `client_secret`) signs in with the deployment's app for the provider
/// (`oauth_apps:` in the config); without one, the proxy does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_app_policies_use_the_deployments_oauth_app() {
    let idp = idp();
    let up = echo().await;
    let policy = format!(
        "on_http_request:\n  - actions:\n      - type: oauth\n        config:\n          provider: microsoft\n          authority_host: {}\n",
        idp.base
    );
    let proxy = Proxy::serve(
        &format!(
            "endpoints:\n  - listen: 127.0.0.1:0\n    upstream: {up}\n    traffic_policy_file: policy.yml\n\
             oauth_apps:\n  microsoft:\n    client_id: \"{CLIENT_ID}\"\n    client_secret: \"{SECRET}\"\n"
        ),
        &[("policy.yml", &policy)],
    );
    let mut alice = Browser::default();
    let res = alice.visit(&proxy.url("/app"), "alice@contoso.test").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // No app for the provider: refused at start, saying where it goes.
    let dir = proxy::temp_dir("managed-oauth-none");
    std::fs::write(dir.join("policy.yml"), &policy).expect("write");
    let config = dir.join("portcullis.yml");
    std::fs::write(
        &config,
        format!("endpoints:\n  - listen: 127.0.0.1:0\n    upstream: {up}\n    traffic_policy_file: policy.yml\n"),
    )
    .expect("write");
    let err = match Proxy::spawn(&["serve", "--config", config.to_str().expect("utf-8")], dir) {
        Ok(_) => panic!("started without an OAuth app"),
        Err(e) => e,
    };
    assert!(
        err.contains("this deployment has no `microsoft` app")
            && err.contains("oauth_apps.microsoft"),
        "{err}"
    );
}
