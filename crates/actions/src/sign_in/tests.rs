//! Redirect paths, tenant ids, key issuers, the links Graph paging
//! follows, and session lifetimes, with a fake provider: the end-to-end
//! tests (`tests/sign_in.rs`) use a real one, which cannot be made to
//! link elsewhere, nor a session be made old there without waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use portcullis_policy::schema::Phase;

use super::entra::is_guid;
use super::flow::return_path;
use super::origin::Origin;
use super::{DEFAULT_MAX_SESSION, Flavor, SignIn, build};
use crate::action::Config;
use crate::client::{FetchFuture, Fetched, HttpClient, Scope};
use crate::jwt_validation_rules::key_issuer_matches;
use crate::session::Keys;
use crate::{Action as _, CompileCx, Conn, Endpoint, RequestCtx, Step, body};

#[test]
fn redirect_paths_stay_on_the_endpoint() {
    for (given, canonical) in [
        ("/", "/"),
        ("/a/b?c=d", "/a/b?c=d"),
        ("/a/./x/../b", "/a/b"),
        ("/%61dmin", "/admin"),
        ("/.//evil.example", "/evil.example"),
        ("/reports#x", "/reports%23x"),
    ] {
        assert_eq!(return_path(given).as_deref(), Some(canonical), "{given}");
    }
    for bad in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "evil",
        "",
        "/a\nb",
        "/a\\b",
        "/a%2F..%2Fb",
        "/a%00",
        "/a?b\nc",
    ] {
        assert_eq!(return_path(bad), None, "{bad:?}");
    }
}

#[test]
fn tenant_ids_are_guids() {
    assert!(is_guid("c0a705a0-0000-4000-8000-000000000001"));
    assert!(!is_guid("contoso.onmicrosoft.com"));
    assert!(!is_guid("{tenantid}"));
    assert!(!is_guid("c0a705a0-0000-4000-8000-00000000000"));
}

#[test]
fn a_key_issuer_template_binds_the_token_to_its_tenant() {
    let template = Some("https://login.microsoftonline.com/{tenantid}/v2.0");
    let tid = "c0a705a0-0000-4000-8000-000000000001";
    let ok = serde_json::json!({
        "tid": tid,
        "iss": format!("https://login.microsoftonline.com/{tid}/v2.0"),
    });
    assert!(key_issuer_matches(template, &ok));
    // A token whose `iss` names another tenant than its `tid`.
    let forged = serde_json::json!({
        "tid": tid,
        "iss": "https://login.microsoftonline.com/fab71ca0-0000-4000-8000-000000000002/v2.0",
    });
    assert!(!key_issuer_matches(template, &forged));
    let no_tid = serde_json::json!({ "iss": "https://login.microsoftonline.com/x/v2.0" });
    assert!(!key_issuer_matches(template, &no_tid));
    // A concrete key issuer must equal `iss`; no key issuer, no rule.
    let a = serde_json::json!({ "iss": "https://a/v2.0" });
    let b = serde_json::json!({ "iss": "https://b/v2.0" });
    assert!(key_issuer_matches(Some("https://a/v2.0"), &a));
    assert!(!key_issuer_matches(Some("https://a/v2.0"), &b));
    assert!(key_issuer_matches(None, &forged));
}

// === links followed with the user's token ===

#[test]
fn graph_links_must_stay_under_graph_url() {
    let graph = Origin::parse("https://graph.microsoft.com/v1.0").expect("base");
    for ok in [
        "https://graph.microsoft.com/v1.0/me/transitiveMemberOf?$skiptoken=X",
        "https://GRAPH.Microsoft.com/v1.0/me",
        "https://graph.microsoft.com:443/v1.0/me",
        "https://graph.microsoft.com:/v1.0/me",
        "https://graph.microsoft.com/v1.0",
    ] {
        assert!(graph.admits(ok), "{ok}");
    }
    for bad in [
        // Another host that starts with Graph's name.
        "https://graph.microsoft.com.attacker.example/v1.0/me",
        // User information: the host is attacker.example.
        "https://graph.microsoft.com@attacker.example/v1.0/me",
        "https://user:pw@graph.microsoft.com/v1.0/me",
        // Another port, scheme or host.
        "https://graph.microsoft.com:8443/v1.0/me",
        "https://graph.microsoft.com:99999/v1.0/me",
        "https://graph.microsoft.com:+443/v1.0/me",
        "http://graph.microsoft.com/v1.0/me",
        "ftp://graph.microsoft.com/v1.0/me",
        "https://attacker.example/v1.0/me",
        "//attacker.example/v1.0/me",
        "/v1.0/me",
        // A path beside the prefix, not under it.
        "https://graph.microsoft.com/v1.0evil/me",
        "https://graph.microsoft.com/beta/me",
        "https://graph.microsoft.com/",
        // Backslashes, which WHATWG parsers read as `/`.
        "https://graph.microsoft.com\\@attacker.example/v1.0/me",
        "https://attacker.example\\graph.microsoft.com/v1.0/me",
        "https://graph.microsoft.com/v1.0\\..\\evil",
        // Percent-encoding in the host, encoded separators and dot segments.
        "https://graph.microsoft.com%2eattacker.example/v1.0/me",
        "https://graph.microsoft.com%40attacker.example/v1.0/me",
        "https://graph%2emicrosoft%2ecom/v1.0/me",
        "https://graph.microsoft.com/v1.0/..%2fevil",
        "https://graph.microsoft.com/v1.0%2f..%2fevil",
        "https://graph.microsoft.com/v1.0/%2e%2e/evil",
        "https://graph.microsoft.com/v1.0/../evil",
        "https://graph.microsoft.com/v1.0/./me",
        "https://graph.microsoft.com/v1.0/.%2E/evil",
        "https://graph.microsoft.com/v1.0%5c..%5cevil",
        // White space, control and non-ASCII characters.
        "https://graph.microsoft.com /v1.0/me",
        "https://graph.microsoft.com/v1.0/me\n",
        "https://graph.microsoft.com\t.attacker.example/v1.0/me",
        "https://graph.micrοsoft.com/v1.0/me",
        "",
    ] {
        assert!(!graph.admits(bad), "{bad:?}");
    }
    // A base at the root admits any path on the same origin; default ports
    // written or not are the same port.
    let root = Origin::parse("https://graph.microsoft.com").expect("base");
    assert!(root.admits("https://graph.microsoft.com/v1.0/me?$skiptoken=X"));
    assert!(!root.admits("https://graph.microsoft.com.attacker.example/"));
    let local = Origin::parse("http://127.0.0.1:8080/graph/").expect("base");
    assert!(local.admits("http://127.0.0.1:8080/graph/v1.0/me"));
    assert!(!local.admits("http://127.0.0.1:8081/graph/v1.0/me"));
    assert!(!local.admits("http://127.0.0.1:8080/graphs/v1.0/me"));
    assert!(!local.admits("https://127.0.0.1:8080/graph/v1.0/me"));
    let plain = Origin::parse("http://localhost").expect("base");
    assert!(plain.admits("http://LOCALHOST:80/x"));
}

/// A provider and a Graph stand-in that answer from a table of URLs, and
/// record every request with its `Authorization` header.
#[derive(Debug, Default)]
struct FakeProvider {
    pages: HashMap<String, serde_json::Value>,
    seen: Mutex<Vec<(String, String)>>,
}

impl HttpClient for FakeProvider {
    fn fetch(&self, req: Request<Bytes>, _: Scope, _: usize, _: Duration) -> FetchFuture {
        let url = req.uri().to_string();
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.seen.lock().expect("lock").push((url.clone(), auth));
        let (status, body) = match self.pages.get(&url) {
            Some(page) => (StatusCode::OK, page.to_string()),
            None => (StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.to_owned()),
        };
        Box::pin(async move {
            Ok(Fetched {
                status,
                headers: HeaderMap::new(),
                body: Bytes::from(body),
                remote: None,
            })
        })
    }
}

const KEY: [u8; 32] = [7; 32];
const AUTHORIZE: &str = "https://login.example/common/oauth2/v2.0/authorize";

/// The `oauth` action with Microsoft at `https://login.example`, `extra`
/// config lines added, talking to `client`.
fn microsoft(extra: &str, client: Arc<FakeProvider>) -> SignIn {
    let policy = format!(
        r#"
on_http_request:
  - actions:
      - type: oauth
        config:
          provider: microsoft
          authority_host: https://login.example
          client_id: app
          client_secret: secret
{extra}"#
    );
    let (doc, diags) = portcullis_policy::check(&policy);
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let action = &doc.phases[0].rules[0].actions[0];
    let client: Arc<dyn HttpClient> = client;
    let cx = CompileCx {
        phase: Phase::HttpRequest,
        src: &policy,
        internal: &[],
        client: Some(&client),
        session_keys: &[KEY],
        state: None,
        ip_policies: None,
        oauth_apps: None,
    };
    build(Config::of(action), &cx, Flavor::OAuth).expect("compiles")
}

fn graph_page(ids: &[&str], next: Option<&str>) -> serde_json::Value {
    let mut page = serde_json::json!({
        "value": ids.iter().map(|id| serde_json::json!({
            "@odata.type": "#microsoft.graph.group", "id": id,
        })).collect::<Vec<_>>(),
    });
    if let Some(next) = next {
        page["@odata.nextLink"] = serde_json::Value::from(next);
    }
    page
}

const FIRST: &str = "https://graph.example/v1.0/me/transitiveMemberOf?$select=id&$top=100";

#[tokio::test(flavor = "current_thread")]
async fn graph_pages_are_followed_under_graph_url_only() {
    let second = "https://graph.example/v1.0/me/transitiveMemberOf?$skiptoken=2";
    let client = Arc::new(FakeProvider {
        pages: HashMap::from([
            (FIRST.to_owned(), graph_page(&["g1"], Some(second))),
            (second.to_owned(), graph_page(&["g2"], None)),
        ]),
        ..FakeProvider::default()
    });
    let action = microsoft(
        "          graph_url: https://graph.example\n",
        client.clone(),
    );
    assert_eq!(
        action.graph_groups("user-token", "me").await,
        Ok(vec!["g1".to_owned(), "g2".to_owned()])
    );
    assert_eq!(client.seen.lock().expect("lock").len(), 2);

    for attack in [
        "https://graph.example.attacker.example/v1.0/me/transitiveMemberOf?$skiptoken=2",
        "https://graph.example@attacker.example/v1.0/me/transitiveMemberOf?$skiptoken=2",
        "https://graph.example:8443/v1.0/me/transitiveMemberOf?$skiptoken=2",
        "http://graph.example/v1.0/me/transitiveMemberOf?$skiptoken=2",
    ] {
        let client = Arc::new(FakeProvider {
            pages: HashMap::from([(FIRST.to_owned(), graph_page(&["g1"], Some(attack)))]),
            ..FakeProvider::default()
        });
        let action = microsoft(
            "          graph_url: https://graph.example\n",
            client.clone(),
        );
        // An error, as for a failed call (the sign-in then fails with 502):
        // never the one page read so far as if it were every group.
        let got = action.graph_groups("user-token", "me").await;
        assert!(
            got.as_ref().is_err_and(|e| e.contains("outside")),
            "{attack}: {got:?}"
        );
        // The token went to Graph once, and nowhere else.
        let seen = client.seen.lock().expect("lock");
        assert_eq!(
            *seen,
            vec![(FIRST.to_owned(), "Bearer user-token".to_owned())],
            "{attack}"
        );
    }
}

// === session lifetime ===

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `action` on `GET /reports` with a session signed in `age` seconds
/// ago (and last seen then), sealed with the action's keys.
async fn visit_with_session(action: &SignIn, age: u64) -> (Step, Option<StatusCode>, String) {
    let at = now() - age;
    let session = serde_json::json!({
        "c": { "sub": "u1", "tid": "c0a705a0-0000-4000-8000-000000000001", "oid": "o1" },
        "iat": at, "last": at,
    });
    let sealed = Keys::new(&[KEY])
        .seal(&action.session_cookie, session.to_string().as_bytes())
        .expect("sealed");
    let req = Request::get("/reports")
        .header("cookie", format!("{}={sealed}", action.session_cookie))
        .body(body::empty())
        .expect("request");
    let conn = Arc::new(Conn::new(
        "192.0.2.1:5000".parse().expect("addr"),
        "127.0.0.1:80".parse().expect("addr"),
        None,
    ));
    let mut ctx = RequestCtx::new(req, conn, Arc::new(Endpoint::new("http://app.example")));
    let step = action
        .run(&mut ctx)
        .finish()
        .await
        .expect("no action error");
    let location = ctx
        .res_headers()
        .and_then(|h| h.get("location"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (step, ctx.status(), location)
}

fn discovery() -> Arc<FakeProvider> {
    Arc::new(FakeProvider {
        pages: HashMap::from([(
            "https://login.example/common/v2.0/.well-known/openid-configuration".to_owned(),
            serde_json::json!({
                "issuer": "https://login.example/{tenantid}/v2.0",
                "authorization_endpoint": AUTHORIZE,
                "token_endpoint": "https://login.example/common/oauth2/v2.0/token",
                "jwks_uri": "https://login.example/common/discovery/v2.0/keys",
            }),
        )]),
        ..FakeProvider::default()
    })
}

#[tokio::test(flavor = "current_thread")]
async fn without_limits_a_session_ends_after_the_default_lifetime() {
    let action = microsoft("", discovery());
    assert_eq!(action.max_session, DEFAULT_MAX_SESSION);
    // An hour old: the session stands.
    let (step, status, _) = visit_with_session(&action, 3600).await;
    assert_eq!((step, status), (Step::Next, None));
    // A minute past the default: back to the provider to sign in again.
    let (step, status, location) = visit_with_session(&action, DEFAULT_MAX_SESSION + 60).await;
    assert_eq!((step, status), (Step::Respond, Some(StatusCode::FOUND)));
    assert!(location.starts_with(AUTHORIZE), "{location}");
    // An idle limit alone does not lift it: a session used every minute
    // still ends.
    let action = microsoft("          idle_session_timeout: 1h\n", discovery());
    let (step, _, location) = visit_with_session(&action, DEFAULT_MAX_SESSION + 60).await;
    assert_eq!(step, Step::Respond);
    assert!(location.starts_with(AUTHORIZE), "{location}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_configured_max_session_duration_replaces_the_default() {
    let action = microsoft("          max_session_duration: 30h\n", discovery());
    let (step, status, _) = visit_with_session(&action, DEFAULT_MAX_SESSION + 3600).await;
    assert_eq!((step, status), (Step::Next, None));
    let (step, _, location) = visit_with_session(&action, 30 * 3600 + 60).await;
    assert_eq!(step, Step::Respond);
    assert!(location.starts_with(AUTHORIZE), "{location}");
}
