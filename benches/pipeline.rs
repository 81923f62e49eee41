//! Decision latency of `on_http_request`: from an `http::Request` as the
//! server hands it over (13 headers) to an [`Outcome`] and the request to
//! send upstream, as the proxy does per request: build the [`RequestCtx`],
//! run the phase, take the request out, drop the context. Making the
//! `http::Request` is setup, and dropping the one sent upstream is the
//! upstream client's work: both are outside the timing (`iter_batched`
//! drops what the routine returns after timing it).
//!
//! The inputs, named in [`INPUTS`]:
//!
//! * `floor`: the empty pipeline, so the context's build and drop alone;
//! * `seed`: the product's first policy, an allow-list of users. Until
//!   `oauth` runs, the identity comes from a header an upstream proxy set
//!   (`x-user-email`) instead of `actions.ngrok.oauth.identity.email`;
//! * `10-rules`: `benches/load/ten_rules.yml`, the policy of the load
//!   benchmark, so the two measure the same thing;
//! * `25-rules`: [`TWENTY_FIVE_RULES`], the ten and fifteen more of the
//!   kinds a team adds.
//!
//! The request passes every rule (each policy ends in `Continue`), so
//! every expression is evaluated and every unconditional action runs;
//! that is checked once, outside the timing.
//!
//! Run with `cargo bench --bench pipeline` (add `-- --quick` for a fast
//! pass).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_main};
use http::Request;
use portcullis_runtime::body::{self, Body};
use portcullis_runtime::{Conn, Endpoint, Options, Outcome, Pipeline, RequestCtx, block_on};

/// The inputs, named: `None` is the empty pipeline.
const INPUTS: [(&str, Option<&str>); 4] = [
    ("floor", None),
    ("seed", Some(SEED)),
    ("10-rules", Some(include_str!("load/ten_rules.yml"))),
    ("25-rules", Some(TWENTY_FIVE_RULES)),
];

const SEED: &str = r#"
on_http_request:
  - name: the team only
    expressions:
      - "!(req.headers['x-user-email'][0] in ['a@x.com','b@y.com','me@example.com'])"
    actions:
      - type: deny
"#;

/// `ten_rules.yml`'s rules in the same order, with fifteen more between
/// them: host, scheme, traversal, robots.txt, CORS, redirects, query,
/// body size, key format, staff pages, `set-vars` and a rule on them, a
/// second rate limit, `log`.
const TWENTY_FIVE_RULES: &str = r#"
on_http_request:
  - name: block scanners by user agent
    expressions:
      - req.user_agent.matches('(?i)(sqlmap|nikto|nmap|masscan|zgrab|gobuster|dirbuster|wpscan|nuclei)')
    actions:
      - type: deny
        config:
          status_code: 403

  - name: no absurd user agents
    expressions:
      - size(req.user_agent) > 512
    actions:
      - type: deny
        config:
          status_code: 400

  - name: loopback and private networks only
    actions:
      - type: restrict-ips
        config:
          allow:
            - 127.0.0.0/8
            - 10.0.0.0/8
            - 172.16.0.0/12
            - 192.168.0.0/16
            - ::1/128
            - fc00::/7

  - name: known hosts only
    expressions:
      - "!(req.host in ['api.example.com', 'app.example.com', 'admin.example.com'])"
    actions:
      - type: deny
        config:
          status_code: 404

  - name: https only behind the load balancer
    expressions:
      - "'x-forwarded-proto' in req.headers && req.headers['x-forwarded-proto'][0] != 'https'"
    actions:
      - type: redirect
        config:
          to: https://${req.host}${req.url.path}
          status_code: 308

  - name: block probes for secrets and admin pages
    expressions:
      - >-
        req.url.path.startsWith('/.env') || req.url.path.startsWith('/.git') ||
        req.url.path.startsWith('/wp-admin') || req.url.path.startsWith('/wp-login.php') ||
        req.url.path.startsWith('/phpmyadmin')
    actions:
      - type: deny
        config:
          status_code: 404

  - name: no path traversal
    expressions:
      - req.url.path.contains('..') || req.url.path.lowerAscii().contains('%2e%2e')
    actions:
      - type: deny
        config:
          status_code: 400

  - name: allowed methods
    expressions:
      - "!(req.method in ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])"
    actions:
      - type: deny
        config:
          status_code: 405

  - name: health check
    expressions:
      - req.url.path == '/healthz'
    actions:
      - type: custom-response
        config:
          status_code: 200
          body: "ok\n"
          headers:
            content-type: text/plain

  - name: no crawlers
    expressions:
      - req.url.path == '/robots.txt'
    actions:
      - type: custom-response
        config:
          status_code: 200
          body: "User-agent: *\nDisallow: /\n"
          headers:
            content-type: text/plain

  - name: CORS preflight
    expressions:
      - req.method == 'OPTIONS'
      - "'origin' in req.headers"
    actions:
      - type: custom-response
        config:
          status_code: 204
          headers:
            access-control-allow-origin: ${req.headers['origin'][0]}
            access-control-allow-methods: GET, POST, PUT, PATCH, DELETE
            access-control-max-age: "600"

  - name: docs moved
    expressions:
      - req.url.path.startsWith('/docs/')
    actions:
      - type: redirect
        config:
          to: https://docs.example.com${req.url.path}
          status_code: 301

  - name: old v1 paths to api
    expressions:
      - req.url.path.startsWith('/v1/')
    actions:
      - type: url-rewrite
        config:
          from: ^(https?://[^/]+)/v1/
          to: $1/api/

  - name: no debug parameters in production
    expressions:
      - req.url.query_params.exists(k, k.startsWith('debug'))
    actions:
      - type: deny
        config:
          status_code: 400

  - name: uploads up to 10 MB
    expressions:
      # `req.content_length` is absent without a body: reading it then
      # fails the rule (500), hence the `has()`.
      - has(req.content_length) && req.content_length > 10485760
    actions:
      - type: custom-response
        config:
          status_code: 413
          body: "uploads are limited to 10 MB\n"

  - name: api needs a key
    expressions:
      - req.url.path.startsWith('/api/')
      - "!('x-api-key' in req.headers)"
    actions:
      - type: deny
        config:
          status_code: 401

  - name: api keys look like keys
    expressions:
      - "'x-api-key' in req.headers"
      - "!req.headers['x-api-key'][0].matches('^k_(live|test)_[0-9a-f]{24}$')"
    actions:
      - type: deny
        config:
          status_code: 401

  - name: admin pages for staff only
    expressions:
      - req.url.path.startsWith('/admin')
      - "!('x-user-email' in req.headers) || !req.headers['x-user-email'][0].endsWith('@example.com')"
    actions:
      - type: deny
        config:
          status_code: 403

  - name: tenant from the host name
    actions:
      - type: set-vars
        config:
          vars:
            - tenant: "${req.host.split('.')[0]}"

  - name: known tenants only
    expressions:
      - "!(vars.tenant in ['api', 'app', 'admin'])"
    actions:
      - type: deny
        config:
          status_code: 404

  - name: rate limit per client ip
    actions:
      - type: rate-limit
        config:
          name: effectively unlimited, per client IP
          algorithm: sliding_window
          capacity: 2000000000
          rate: 60s
          bucket_key:
            - conn.client_ip

  - name: rate limit per api key
    expressions:
      - "'x-api-key' in req.headers"
    actions:
      - type: rate-limit
        config:
          name: effectively unlimited, per API key
          algorithm: sliding_window
          capacity: 2000000000
          rate: 60s
          bucket_key:
            - req.headers['x-api-key'][0]

  - name: strip headers clients must not send
    actions:
      - type: remove-headers
        config:
          headers:
            - proxy-connection
            - x-internal-user

  - name: log api calls
    expressions:
      - req.url.path.startsWith('/api/')
    actions:
      - type: log
        config:
          metadata:
            route: api
            tenant: ${vars.tenant}

  - name: tag the request for the upstream
    actions:
      - type: add-headers
        config:
          headers:
            x-request-source: portcullis-edge
            x-client-ip: ${conn.client_ip}
"#;

// === the request ===

/// A browser's API call through a load balancer, from a private address:
/// every policy above lets it through.
fn sample_request() -> Request<Body> {
    let headers = [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-US,en;q=0.9"),
        ("x-api-key", "k_live_8f14e45fceea467fa0e61b8a"),
        ("x-user-email", "me@example.com"),
        ("x-request-id", "8f14e45f-ceea-467f-a0e6-1b8ab2bd3c5e"),
        ("x-forwarded-for", "198.51.100.23"),
        ("x-forwarded-proto", "https"),
        ("cookie", "session=abc123; theme=dark"),
        ("referer", "https://app.example.com/dashboard"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    let mut req = Request::get("/api/items?page=2&per_page=50&sort=-created");
    for (name, value) in headers {
        req = req.header(name, value);
    }
    req.body(body::empty())
        .unwrap_or_else(|e| panic!("sample request: {e}"))
}

/// One decision, as the proxy makes it per request: the outcome, and on
/// `Continue` the request to forward.
fn decide(
    pipeline: &Pipeline,
    req: Request<Body>,
    conn: &Arc<Conn>,
    endpoint: &Arc<Endpoint>,
) -> (Outcome, Option<Request<Body>>) {
    let mut ctx = RequestCtx::new(req, conn.clone(), endpoint.clone());
    let outcome = block_on(pipeline.on_request(&mut ctx));
    let upstream = (outcome == Outcome::Continue).then(|| ctx.take_request(false));
    (outcome, upstream)
}

/// The response a policy made, as text: the status and the body (which
/// names the error, for a failed rule).
fn answer(ctx: &mut RequestCtx) -> String {
    use http_body_util::BodyExt;
    let Some(res) = ctx.take_response() else {
        return "no response".to_owned();
    };
    let status = res.status();
    let body = block_on(res.into_body().collect()).map(|c| c.to_bytes());
    format!("{status}: {body:?}")
}

// === benchmarks ===

fn bench_on_request(c: &mut Criterion) {
    // The connection and the endpoint outlive requests: made once.
    let conn = Arc::new(Conn::new(
        "10.1.2.3:50000".parse().unwrap_or_else(|e| panic!("{e}")),
        "10.0.0.1:443".parse().unwrap_or_else(|e| panic!("{e}")),
        None,
    ));
    let endpoint = Arc::new(Endpoint::new("https://api.example.com"));

    let mut group = c.benchmark_group("on_request");
    for (name, policy) in INPUTS {
        let pipeline = match policy {
            None => Pipeline::empty(),
            Some(src) => Pipeline::load(src, &Options::default())
                .unwrap_or_else(|d| panic!("{name}: {d:#?}")),
        };

        // Outside timing: the request passes every rule, so no benchmark
        // measures a policy that stopped early.
        let mut ctx = RequestCtx::new(sample_request(), conn.clone(), endpoint.clone());
        let outcome = block_on(pipeline.on_request(&mut ctx));
        if outcome != Outcome::Continue {
            panic!("{name}: {outcome:?}, {}", answer(&mut ctx));
        }
        if name.ends_with("-rules") {
            let tag = ctx.req_headers().get("x-request-source");
            assert!(tag.is_some(), "{name}: the last rule did not run");
        }

        group.bench_function(name, |b| {
            b.iter_batched(
                sample_request,
                |req| decide(&pipeline, black_box(req), &conn, &endpoint),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// What `criterion_group!` would generate, without its undocumented `pub fn`.
fn benches() {
    let mut criterion = config().configure_from_args();
    bench_on_request(&mut criterion);
}

criterion_main!(benches);
