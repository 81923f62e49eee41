//! [`Pipeline`] on its own: how rules, expressions and actions combine in
//! a phase (spec §1.5), what a load reports, and the two pipelines that
//! run without a policy.

use std::sync::Arc;

use http::{Request, StatusCode};
use portcullis_runtime::body::{self, Body};
use portcullis_runtime::{Conn, Endpoint, Options, Outcome, Pipeline, RequestCtx, block_on};

// === helpers ===

fn load(policy: &str) -> Pipeline {
    Pipeline::load(policy, &Options::default())
        .unwrap_or_else(|diags| panic!("the test policy is invalid: {diags:#?}"))
}

/// The errors of loading `policy` as a user reads them: code, the
/// underlined text, message and help.
fn load_errors(policy: &str) -> Vec<String> {
    let diags = match Pipeline::load(policy, &Options::default()) {
        Ok(_) => panic!("the policy loaded; expected errors"),
        Err(diags) => diags,
    };
    diags
        .iter()
        .map(|d| {
            let underlined = policy
                .get(d.span.start as usize..d.span.end as usize)
                .unwrap_or("<span out of range>");
            let help = d
                .help
                .as_deref()
                .map(|h| format!(" (help: {h})"))
                .unwrap_or_default();
            format!("error[{}] `{underlined}`: {}{help}", d.code, d.message)
        })
        .collect()
}

/// A request from 203.0.113.7 to `http://app.example.com`.
fn ctx(req: Request<Body>) -> RequestCtx {
    let conn = Arc::new(Conn::new(
        "203.0.113.7:50000".parse().expect("an address"),
        "127.0.0.1:8080".parse().expect("an address"),
        None,
    ));
    let endpoint = Arc::new(Endpoint::new("http://app.example.com"));
    RequestCtx::new(req, conn, endpoint)
}

fn request(method: &str, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.example.com")
        .body(body::empty())
        .expect("a valid request")
}

/// Runs `on_http_request` on `req`.
fn on_request(pipeline: &Pipeline, req: Request<Body>) -> (Outcome, RequestCtx) {
    let mut ctx = ctx(req);
    let outcome = block_on(pipeline.on_request(&mut ctx));
    (outcome, ctx)
}

fn req_header<'a>(ctx: &'a RequestCtx, name: &str) -> Option<&'a str> {
    ctx.req_headers().get(name).and_then(|v| v.to_str().ok())
}

fn res_header<'a>(ctx: &'a RequestCtx, name: &str) -> Option<&'a str> {
    ctx.res_headers()?.get(name).and_then(|v| v.to_str().ok())
}

fn res_body(ctx: &mut RequestCtx) -> String {
    use http_body_util::BodyExt;
    let res = ctx.take_response().expect("a response");
    let bytes = block_on(res.into_body().collect())
        .expect("a readable body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

// === rules, expressions, actions ===

#[test]
fn rules_run_top_to_bottom_and_see_what_earlier_rules_did() {
    let pipeline = load(
        r#"
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - step: one
  - expressions: ["vars.step == 'one'"]
    actions:
      - type: set-vars
        config:
          vars:
            - step: two
  - expressions: ["vars.step == 'one'"]
    actions:
      - type: custom-response
        config: {status_code: 500, body: "rule 3 saw step one"}
  - expressions: ["vars.step == 'two'"]
    actions:
      - type: custom-response
        config: {status_code: 200, body: "rule 4 saw step two"}
"#,
    );
    let (outcome, mut ctx) = on_request(&pipeline, request("GET", "/"));
    assert_eq!(outcome, Outcome::Respond);
    assert_eq!(ctx.status(), Some(StatusCode::OK));
    assert_eq!(res_body(&mut ctx), "rule 4 saw step two");
}

#[test]
fn a_rules_expressions_are_anded() {
    let pipeline = load(
        r#"
on_http_request:
  - expressions:
      - req.method == 'POST'
      - req.url.path.startsWith('/api/')
      - "'x-token' in req.headers"
    actions:
      - type: deny
        config: {status_code: 401}
"#,
    );
    // (method, path, x-token, outcome)
    let cases = [
        ("POST", "/api/items", true, Outcome::Respond),
        ("GET", "/api/items", true, Outcome::Continue),
        ("POST", "/web/items", true, Outcome::Continue),
        ("POST", "/api/items", false, Outcome::Continue),
    ];
    for (method, path, token, expect) in cases {
        let mut req = request(method, path);
        if token {
            req.headers_mut()
                .insert("x-token", "t".parse().expect("a header value"));
        }
        let (outcome, ctx) = on_request(&pipeline, req);
        assert_eq!(outcome, expect, "{method} {path} x-token: {token}");
        let status = (expect == Outcome::Respond).then_some(StatusCode::UNAUTHORIZED);
        assert_eq!(ctx.status(), status, "{method} {path} x-token: {token}");
    }
}

#[test]
fn a_rule_without_expressions_always_applies() {
    let pipeline = load(
        r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-seen: "yes"
"#,
    );
    let (outcome, ctx) = on_request(&pipeline, request("GET", "/"));
    assert_eq!(outcome, Outcome::Continue);
    assert_eq!(req_header(&ctx, "x-seen"), Some("yes"));
    assert!(!ctx.has_response());
}

#[test]
fn add_headers_renders_every_value_before_adding_any() {
    // Templates read the request as it was when the action began: `x-b`
    // and `x-d` do not see `x-a` or `x-c`, added by the same action. The
    // values land in the map's order, constants and templates mixed, and
    // the result variable has them all.
    let pipeline = load(
        r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-a: constant
            x-b: "b saw ${string(size(req.headers))} headers"
            x-c: "${req.headers['x-in'][0]}-c"
            x-d: "${'x-a' in req.headers ? 'a' : 'no a'}, ${'x-c' in req.headers ? 'c' : 'no c'}"
            x-in: second
  - actions:
      - type: add-headers
        config:
          headers:
            x-result: "${actions.ngrok.add_headers.headers_added['x-c']} ${actions.ngrok.add_headers.headers_added['x-d']}"
"#,
    );
    let mut req = request("GET", "/");
    req.headers_mut()
        .insert("x-in", http::HeaderValue::from_static("first"));
    let (outcome, ctx) = on_request(&pipeline, req);
    assert_eq!(outcome, Outcome::Continue);
    assert_eq!(req_header(&ctx, "x-a"), Some("constant"));
    assert_eq!(req_header(&ctx, "x-b"), Some("b saw 2 headers"));
    assert_eq!(req_header(&ctx, "x-c"), Some("first-c"));
    assert_eq!(req_header(&ctx, "x-d"), Some("no a, no c"));
    let x_in: Vec<_> = ctx.req_headers().get_all("x-in").iter().collect();
    assert_eq!(x_in, ["first", "second"]);
    assert_eq!(req_header(&ctx, "x-result"), Some("first-c no a, no c"));
}

#[test]
fn the_first_action_that_ends_the_phase_ends_it() {
    // `restrict-ips` ends the phase only when it rejects the client, so
    // the actions after it are allowed (lint E0130 forbids actions after
    // an unconditional terminator).
    let pipeline = load(
        r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers: {x-before: "yes"}
      - type: restrict-ips
        config:
          allow: [10.0.0.0/8]
      - type: add-headers
        config:
          headers: {x-after: "yes"}
  - actions:
      - type: custom-response
        config: {status_code: 200, body: next rule}
"#,
    );
    // The client is 203.0.113.7: restrict-ips rejects it.
    let (outcome, ctx) = on_request(&pipeline, request("GET", "/"));
    assert_eq!(outcome, Outcome::Respond);
    assert_eq!(ctx.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(req_header(&ctx, "x-before"), Some("yes"));
    assert_eq!(req_header(&ctx, "x-after"), None);
}

#[test]
fn action_results_are_readable_by_later_rules() {
    let pipeline = load(
        r#"
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          enforce: false
          allow: [10.0.0.0/8]
  - expressions:
      - actions.ngrok.restrict_ips.action == 'deny'
    actions:
      - type: custom-response
        config:
          status_code: 451
          body: "would deny ${conn.client_ip}"
"#,
    );
    let (outcome, mut ctx) = on_request(&pipeline, request("GET", "/"));
    assert_eq!(outcome, Outcome::Respond);
    assert_eq!(
        ctx.status(),
        Some(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS)
    );
    assert_eq!(res_body(&mut ctx), "would deny 203.0.113.7");
}

#[test]
fn vars_are_visible_in_their_phase_only() {
    let pipeline = load(
        r#"
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - tenant: "${req.host.split('.')[0]}"
  - expressions: ["'tenant' in vars"]
    actions:
      - type: add-headers
        config:
          headers:
            x-tenant: ${vars.tenant}
on_http_response:
  - expressions: ["'tenant' in vars"]
    actions:
      - type: add-headers
        config:
          headers: {x-vars-leaked: "yes"}
  - expressions: ["!('tenant' in vars)"]
    actions:
      - type: add-headers
        config:
          headers: {x-vars-fresh: "yes"}
"#,
    );
    let (outcome, mut ctx) = on_request(&pipeline, request("GET", "/"));
    assert_eq!(outcome, Outcome::Continue);
    assert_eq!(req_header(&ctx, "x-tenant"), Some("app"));

    // The upstream answers; then the response phase runs.
    ctx.set_response(
        http::Response::builder()
            .status(200)
            .body(body::empty())
            .expect("a valid response"),
    );
    assert_eq!(block_on(pipeline.on_response(&mut ctx)), Outcome::Continue);
    assert_eq!(res_header(&ctx, "x-vars-leaked"), None);
    assert_eq!(res_header(&ctx, "x-vars-fresh"), Some("yes"));
}

#[test]
fn an_expression_failing_at_run_time_answers_500() {
    let pipeline = load(
        r#"
on_http_request:
  - expressions:
      - req.headers['x-missing'][0] == 'a'
    actions:
      - type: deny
"#,
    );
    let (outcome, ctx) = on_request(&pipeline, request("GET", "/"));
    assert_eq!(outcome, Outcome::Respond);
    assert_eq!(ctx.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(
        res_header(&ctx, "portcullis-error-code"),
        Some(portcullis_runtime::EXPRESSION_FAILED)
    );
}

// === loading ===

#[test]
fn load_reports_every_error_instead_of_panicking() {
    // Actions are compiled (E0140) only once the checks find no error, as
    // `portcullis lint` does; an action this build does not run (E0141)
    // is said beside the other errors, since fixing them would not make
    // the policy run.
    let policy = r#"
on_http_request:
  - expressions:
      - req.url.path.startsWith(1)
    actions:
      - type: deni
  - actions:
      - type: ai-gateway
"#;
    assert_eq!(
        load_errors(policy),
        [
            "error[E0012] `req.url.path.startsWith(1)`: no matching overload for `string.startsWith(int)` (help: expected string.startsWith(string) -> bool)",
            "error[E0107] `deni`: unknown action type `deni` (help: did you mean `deny`?)",
            "error[E0141] `ai-gateway`: action `ai-gateway` is not supported by this build (help: the proxy refuses a policy it cannot run in full rather than skip an action; the README lists the actions that run today)",
        ]
    );
}

#[test]
fn load_rejects_status_codes_that_cannot_be_sent() {
    let policy = r#"
on_http_request:
  - actions:
      - type: deny
        config:
          status_code: 1000
  - actions:
      - type: custom-response
        config:
          status_code: 99
  - actions:
      - type: redirect
        config:
          to: https://example.com/
          status_code: 200
"#;
    let range = "(help: ngrok rejects values out of range (ERR_NGROK_2215))";
    assert_eq!(
        load_errors(policy),
        [
            format!(
                "error[E0111] `1000`: `status_code` must be between 100 and 599 inclusive, was 1000 {range}"
            ),
            format!(
                "error[E0111] `99`: `status_code` must be between 100 and 599 inclusive, was 99 {range}"
            ),
            format!(
                "error[E0111] `200`: `status_code` must be between 300 and 399 inclusive, was 200 {range}"
            ),
        ]
    );
}

#[test]
fn load_rejects_an_unsupported_action() {
    let policy = r#"
on_http_request:
  - actions:
      - type: ai-gateway
"#;
    assert_eq!(
        load_errors(policy),
        [
            "error[E0141] `ai-gateway`: action `ai-gateway` is not supported by this build (help: the proxy refuses a policy it cannot run in full rather than skip an action; the README lists the actions that run today)"
        ]
    );
}

#[test]
fn load_rejects_a_webhook_provider_it_cannot_verify() {
    // `hostedhooks` is an ngrok id this build leaves out; `signalsciences` is how ngrok's guide
    // spells `signal_sciences`.
    let policy = |provider: &str| {
        format!(
            "on_http_request:\n  - actions:\n      - type: verify-webhook\n        config:\n          provider: {provider}\n          secret: s3cret\n"
        )
    };
    let errors = load_errors(&policy("hostedhooks"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "error[E0140] `hostedhooks`: this build cannot verify `hostedhooks` webhooks; it knows aftership, airship,"
        ),
        "{errors:#?}"
    );
    load(&policy("signalsciences"));
    load(&policy("signal_sciences"));
}

#[test]
fn load_rejects_text_that_is_not_a_policy() {
    for policy in [
        "on_http_request: [",
        "- just\n- a list\n",
        "on_http_request: 3\n",
    ] {
        assert!(
            !load_errors(policy).is_empty(),
            "`{policy}` loaded without errors"
        );
    }
}

// === pipelines without a policy ===

#[test]
fn invalid_pipeline_answers_500_to_everything() {
    let pipeline = Pipeline::invalid("policy.yaml: 3 errors");
    for path in ["/", "/admin", "/healthz"] {
        let (outcome, mut ctx) = on_request(&pipeline, request("GET", path));
        assert_eq!(outcome, Outcome::Respond, "{path}");
        assert_eq!(
            ctx.status(),
            Some(StatusCode::INTERNAL_SERVER_ERROR),
            "{path}"
        );
        assert_eq!(
            res_header(&ctx, "portcullis-error-code"),
            Some("ERR_NGROK_2300")
        );
        assert!(
            res_body(&mut ctx).contains("policy.yaml: 3 errors"),
            "{path}: the body names the reason"
        );
    }
}

#[test]
fn empty_pipeline_lets_everything_through_unchanged() {
    let pipeline = Pipeline::empty();
    let (outcome, mut ctx) = on_request(&pipeline, request("DELETE", "/admin"));
    assert_eq!(outcome, Outcome::Continue);
    assert!(!ctx.has_response());
    assert!(!pipeline.has_response_rules());
    assert_eq!(block_on(pipeline.on_response(&mut ctx)), Outcome::Continue);
    assert_eq!(
        (ctx.method().as_str(), ctx.uri().path()),
        ("DELETE", "/admin")
    );
}

#[test]
fn decision_counts_add_up_over_threads() {
    // Every request adds a header; one in three is denied. Four threads
    // run requests through one pipeline, as a server's workers do.
    let pipeline = Arc::new(load(
        r#"
on_http_request:
  - name: tag
    actions:
      - type: add-headers
        config: { headers: { x-seen: "yes" } }
  - name: no drafts
    expressions: ["req.url.path.startsWith('/draft')"]
    actions:
      - type: deny
"#,
    ));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pipeline = Arc::clone(&pipeline);
            std::thread::spawn(move || {
                for i in 0..300 {
                    let path = if i % 3 == 0 { "/draft/1" } else { "/post/1" };
                    on_request(&pipeline, request("GET", path));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a request thread");
    }
    let counts: Vec<_> = pipeline
        .decision_counts()
        .map(|(d, n)| (d.rule.as_str(), d.action, n))
        .collect();
    assert_eq!(
        counts,
        [("tag", "add-headers", 1200), ("no drafts", "deny", 400)]
    );
}
