//! Variables with a source beyond the request: IP intelligence read from
//! MaxMind's own test databases (crates/actions/tests/data/maxmind) for a
//! client in London that is a Tor exit, one in Telstra's network, one no
//! database knows, and a deployment with no databases (the connections
//! are built here with those addresses: a test cannot connect from them);
//! and the parsed `User-Agent`.

use std::sync::Arc;

use http::{Request, StatusCode};
use portcullis_actions::ip_intel::IpIntel;
use portcullis_runtime::body::{self, Body};
use portcullis_runtime::{Conn, Endpoint, Options, Outcome, Pipeline, RequestCtx, block_on};

fn intel() -> Arc<IpIntel> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../actions/tests/data/maxmind");
    Arc::new(
        IpIntel::open(&[
            dir.join("GeoIP2-City-Test.mmdb"),
            dir.join("GeoLite2-ASN-Test.mmdb"),
            dir.join("GeoIP2-Anonymous-IP-Test.mmdb"),
        ])
        .expect("MaxMind's test databases"),
    )
}

const POLICY: &str = r#"
on_http_request:
  - name: no Tor
    expressions: ["conn.client_ip.is_tor_node"]
    actions:
      - type: deny
        config:
          status_code: 403
  - name: no embargoed countries
    expressions: ["conn.geo.country_code in ['KP', 'IR']"]
    actions:
      - type: deny
        config:
          status_code: 451
  - actions:
      - type: add-headers
        config:
          headers:
            x-where: "${conn.client_ip.geo.location.city}|${conn.geo.country}|${conn.client_ip.geo.location.country_code}|${string(conn.client_ip.geo.location.is_eu)}"
            x-as: "${string(conn.client_ip.as.number)}|${conn.client_ip.as.organization}"
            x-categories: "${conn.client_ip.categories.join(',')}"
"#;

fn run(client: &str, intel: Option<Arc<IpIntel>>) -> (Outcome, RequestCtx) {
    let pipeline = Pipeline::load(POLICY, &Options::default()).expect("the policy loads");
    let conn = Arc::new(Conn::new(
        format!("{client}:50000").parse().expect("an address"),
        "127.0.0.1:8080".parse().expect("an address"),
        None,
    ));
    let mut endpoint = Endpoint::new("http://app.example.com");
    endpoint.ip_intel = intel;
    let req: Request<Body> = Request::get("/")
        .header("host", "app.example.com")
        .body(body::empty())
        .expect("a request");
    let mut ctx = RequestCtx::new(req, conn, Arc::new(endpoint));
    let outcome = block_on(pipeline.on_request(&mut ctx));
    (outcome, ctx)
}

fn header(ctx: &RequestCtx, name: &str) -> String {
    ctx.req_headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_owned()
}

#[test]
fn a_tor_exit_is_refused() {
    // 81.2.69.142: London, and a Tor exit in MaxMind's test data.
    let (outcome, ctx) = run("81.2.69.142", Some(intel()));
    assert_eq!(outcome, Outcome::Respond);
    assert_eq!(ctx.status(), Some(StatusCode::FORBIDDEN));
}

#[test]
fn a_located_client_is_described() {
    // 2.125.160.216: Boxford, England; not an anonymizer.
    let (outcome, ctx) = run("2.125.160.216", Some(intel()));
    assert_eq!(outcome, Outcome::Continue);
    assert_eq!(header(&ctx, "x-where"), "Boxford|United Kingdom|GB|false");
    assert_eq!(header(&ctx, "x-categories"), "");
    // 1.128.0.1: Telstra's autonomous system.
    let (_, ctx) = run("1.128.0.1", Some(intel()));
    assert_eq!(header(&ctx, "x-as"), "1221|Telstra Pty Ltd");
}

#[test]
fn an_address_no_database_knows_reads_as_empty_values() {
    let (outcome, ctx) = run("10.1.2.3", Some(intel()));
    assert_eq!(outcome, Outcome::Continue);
    assert_eq!(header(&ctx, "x-where"), "|||false");
    assert_eq!(header(&ctx, "x-as"), "0|");
}

#[test]
fn without_databases_a_rule_reading_them_fails_rather_than_passes() {
    let (outcome, ctx) = run("81.2.69.142", None);
    assert_eq!(outcome, Outcome::Respond);
    assert_eq!(ctx.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
}

/// `req.user_agent.*` is the header parsed with uap-core's regexes (not a
/// database the deployment names: it ships inside).
#[test]
fn the_user_agent_is_parsed() {
    let pipeline = Pipeline::load(
        r#"
on_http_request:
  - expressions: ["req.user_agent.is_bot"]
    actions:
      - type: deny
        config:
          status_code: 403
  - actions:
      - type: add-headers
        config:
          headers:
            x-agent: "${req.user_agent.name} ${req.user_agent.version} on ${req.user_agent.os} ${req.user_agent.os_version}, mobile ${string(req.user_agent.is_mobile)}"
"#,
        &Options::default(),
    )
    .expect("the policy loads");
    let run = |ua: &str| {
        let req: Request<Body> = Request::get("/")
            .header("host", "app.example.com")
            .header("user-agent", ua)
            .body(body::empty())
            .expect("a request");
        let conn = Arc::new(Conn::new(
            "192.0.2.1:5000".parse().expect("an address"),
            "127.0.0.1:8080".parse().expect("an address"),
            None,
        ));
        let mut ctx = RequestCtx::new(req, conn, Arc::new(Endpoint::new("http://app.example.com")));
        let outcome = block_on(pipeline.on_request(&mut ctx));
        (outcome, ctx)
    };
    let (outcome, ctx) = run(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    );
    assert_eq!(outcome, Outcome::Continue);
    assert_eq!(
        header(&ctx, "x-agent"),
        "Mobile Safari 17.4 on iOS 17.4, mobile true"
    );
    let (outcome, ctx) =
        run("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)");
    assert_eq!(outcome, Outcome::Respond);
    assert_eq!(ctx.status(), Some(StatusCode::FORBIDDEN));
}
