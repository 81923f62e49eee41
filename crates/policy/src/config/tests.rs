//! Tests of action config schemas: YAML snippets through `yaml::parse`,
//! `document::lower` and [`super::check`].

use portcullis_cel::Diagnostic;

use crate::code;
use crate::document;
use crate::yaml;

/// The config diagnostics of every action in `src`.
fn run(src: &str) -> Vec<Diagnostic> {
    let (root, parse) = yaml::parse(src);
    assert!(parse.is_empty(), "YAML errors: {parse:?}");
    let (policy, structure) = document::lower(root.as_ref());
    assert!(
        structure.iter().all(|d| !d.is_error()),
        "structure errors: {structure:?}"
    );
    let mut out = Vec::new();
    for phase in &policy.phases {
        for rule in &phase.rules {
            for action in &rule.actions {
                out.extend(super::check(action, phase.phase, src));
            }
        }
    }
    out
}

/// The text a diagnostic underlines.
fn underlined<'s>(src: &'s str, d: &Diagnostic) -> &'s str {
    &src[d.span.start as usize..d.span.end as usize]
}

/// The one diagnostic of `src`.
fn one(src: &str) -> Diagnostic {
    let diags = run(src);
    assert_eq!(diags.len(), 1, "expected one diagnostic: {diags:#?}");
    diags.into_iter().next().unwrap()
}

fn request(action: &str) -> String {
    format!("on_http_request:\n  - actions:\n      - {action}\n")
}

#[test]
fn unknown_field_suggests() {
    let src = request("type: deny\n        config: {status_cod: 404}");
    let d = one(&src);
    assert_eq!(d.code, code::UNKNOWN_FIELD);
    assert_eq!(d.message, "unknown field `status_cod` in the `deny` config");
    assert_eq!(d.help.as_deref(), Some("did you mean `status_code`?"));
    assert_eq!(underlined(&src, &d), "status_cod");
}

#[test]
fn unknown_field_without_suggestion_names_ngrok_code() {
    let src = request(
        "type: oauth\n        config: {provider: google, client_id: a, client_secret: b, colour: red}",
    );
    let d = one(&src);
    assert_eq!(d.code, code::UNKNOWN_FIELD);
    assert!(d.help.as_deref().unwrap().contains("ERR_NGROK_2203"));
    assert_eq!(underlined(&src, &d), "colour");
}

#[test]
fn status_code_range_and_type() {
    let src = request("type: deny\n        config: {status_code: 1000}");
    let d = one(&src);
    assert_eq!(d.code, code::OUT_OF_RANGE);
    assert_eq!(
        d.message,
        "`status_code` must be between 100 and 599 inclusive, was 1000"
    );
    assert!(d.help.as_deref().unwrap().contains("ERR_NGROK_2215"));
    assert_eq!(underlined(&src, &d), "1000");

    let src = request("type: deny\n        config: {status_code: \"404\"}");
    let d = one(&src);
    assert_eq!(d.code, code::WRONG_TYPE);
    assert_eq!(
        d.message,
        "`status_code` must be an integer, not a quoted string"
    );
    assert_eq!(d.help.as_deref(), Some("write it without quotes: `404`"));
    assert_eq!(underlined(&src, &d), "\"404\"");

    let src = request("type: redirect\n        config: {to: /x, status_code: 404}");
    let d = one(&src);
    assert_eq!(d.code, code::OUT_OF_RANGE);
    assert_eq!(underlined(&src, &d), "404");
}

const RATE_LIMIT: &str = "type: rate-limit
        config:
          name: r
          algorithm: sliding_window
          capacity: CAP
          rate: RATE
          bucket_key: [conn.client_ip]";

fn rate_limit(cap: &str, rate: &str) -> String {
    request(&RATE_LIMIT.replace("CAP", cap).replace("RATE", rate))
}

#[test]
fn rate_limit_rules() {
    assert!(run(&rate_limit("30", "60s")).is_empty());
    assert!(run(&rate_limit("2000000000", "24h")).is_empty());
    assert!(run(&rate_limit("1", "1m30s")).is_empty());

    let src = rate_limit("0", "60s");
    let d = one(&src);
    assert_eq!(d.code, code::OUT_OF_RANGE);
    assert_eq!(
        d.message,
        "`capacity` must be between 1 and 2000000000 inclusive, was 0"
    );
    assert_eq!(underlined(&src, &d), "0");

    let src = rate_limit("10", "65s");
    let d = one(&src);
    assert_eq!(d.code, code::INVALID_VALUE);
    assert_eq!(d.message, "`rate` must be a multiple of 10s, was 65s");
    assert_eq!(underlined(&src, &d), "65s");

    let src = rate_limit("10", "30s");
    let d = one(&src);
    assert_eq!(d.code, code::OUT_OF_RANGE);
    assert_eq!(
        d.message,
        "`rate` must be between 1m and 24h inclusive, was 30s"
    );

    let src = rate_limit("10", "25h");
    assert_eq!(one(&src).code, code::OUT_OF_RANGE);

    let src = rate_limit("10", "60");
    let d = one(&src);
    assert_eq!(d.code, code::BAD_DURATION);
    assert_eq!(d.label.as_deref(), Some("missing unit in duration `60`"));
    assert_eq!(
        d.help.as_deref(),
        Some("add a unit, as in `60s` (ERR_NGROK_2225)")
    );

    let src = request("type: rate-limit\n        config: {name: r, capacity: 3}");
    let diags = run(&src);
    let missing: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        missing,
        [
            "missing required field `algorithm` in the `rate-limit` config",
            "missing required field `rate` in the `rate-limit` config",
            "missing required field `bucket_key` in the `rate-limit` config",
        ]
    );
    assert!(diags.iter().all(|d| underlined(&src, d) == "rate-limit"));
}

#[test]
fn bad_regex_in_url_rewrite() {
    let src = request("type: url-rewrite\n        config: {from: '/(old', to: /new}");
    let d = one(&src);
    assert_eq!(d.code, code::BAD_REGEX);
    assert_eq!(d.message, "`from` is not a valid regular expression");
    assert_eq!(d.label.as_deref(), Some("unclosed group"));
    assert!(d.help.as_deref().unwrap().contains("ERR_NGROK_2261"));
    assert_eq!(underlined(&src, &d), "'/(old'");
    // Interpolated: checked elsewhere.
    let src =
        request("type: url-rewrite\n        config: {from: '^${req.url.authority}/(a', to: /new}");
    assert!(run(&src).is_empty());
}

#[test]
fn bad_cidr_in_restrict_ips() {
    let src = "on_tcp_connect:\n  - actions:\n      - type: restrict-ips\n        config: {allow: [10.0.0.0/8, 10.0.0.0/33, 1.2.3.4, '${vars.cidr}']}\n";
    let diags = run(src);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    let (a, b) = (&diags[0], &diags[1]);
    assert_eq!(a.code, code::BAD_CIDR);
    assert_eq!(a.message, "`10.0.0.0/33` is not a CIDR");
    assert_eq!(underlined(src, a), "10.0.0.0/33");
    assert_eq!(
        a.help.as_deref(),
        Some("the prefix length must be 0 to 32 (ERR_NGROK_2217)")
    );
    assert_eq!(underlined(src, b), "1.2.3.4");
    assert_eq!(
        b.help.as_deref(),
        Some("write `1.2.3.4/32` for a single address (ERR_NGROK_2217)")
    );
}

#[test]
fn oauth_takes_both_credentials_or_neither() {
    let src = request("type: oauth\n        config: {provider: google, client_id: abc}");
    let d = one(&src);
    assert_eq!(d.code, code::MISSING);
    assert_eq!(d.message, "`client_id` and `client_secret` go together");
    assert!(d.help.as_deref().unwrap().contains("oauth_apps"));
    assert_eq!(underlined(&src, &d), "client_id");
    // Neither: ngrok's managed app, here the deployment's; said, not an
    // error.
    let src = request("type: oauth\n        config: {provider: google}");
    let d = one(&src);
    assert_eq!(d.code, code::lint::DEPLOYMENT_CREDENTIALS);
    assert!(!d.is_error());
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("PORTCULLIS_OAUTH_GOOGLE_CLIENT_ID"),
        "{d:?}"
    );
}

#[test]
fn oauth_providers() {
    for provider in ["linkedin", "twitch", "amazon", "facebook"] {
        let src = request(&format!(
            "type: oauth\n        config: {{provider: {provider}, client_id: a, client_secret: b}}"
        ));
        assert!(run(&src).is_empty(), "{provider}");
    }

    let src =
        request("type: oauth\n        config: {provider: gogle, client_id: a, client_secret: b}");
    let d = one(&src);
    assert_eq!(d.code, code::INVALID_VALUE);
    assert_eq!(d.help.as_deref(), Some("did you mean `google`?"));
}

#[test]
fn custom_response_content_type_is_an_error() {
    let src = request("type: custom-response\n        config: {content_type: text/html, body: hi}");
    let d = one(&src);
    assert_eq!(d.code, code::UNKNOWN_FIELD);
    assert!(d.is_error());
    assert_eq!(
        d.message,
        "`content_type` is no longer a field of the `custom-response` config"
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .starts_with("set `headers: {content-type: ...}`")
    );
    assert_eq!(underlined(&src, &d), "content_type");
}

#[test]
fn custom_response_content_is_deprecated() {
    let src = request("type: custom-response\n        config: {content: hi}");
    let d = one(&src);
    assert_eq!(d.code, code::lint::DEPRECATED);
    assert!(!d.is_error());
    assert_eq!(d.message, "`content` is a legacy name of `body`");
    assert_eq!(underlined(&src, &d), "content");

    let src = request("type: custom-response\n        config: {content: hi, body: hi}");
    let diags = run(&src);
    assert_eq!(diags.len(), 2);
    assert_eq!(diags[1].code, code::CONFLICT);
}

#[test]
fn idle_session_duration_is_legacy_on_oauth_only() {
    // ngrok's openid-connect page spells it this way: current there.
    let oidc = request(
        "type: openid-connect\n        config: {issuer_url: 'https://accounts.google.com', client_id: a, client_secret: b, idle_session_duration: 15m}",
    );
    assert!(run(&oidc).is_empty(), "{:?}", run(&oidc));
    let src = request(
        "type: oauth\n        config: {provider: google, client_id: a, client_secret: b, idle_session_duration: 15m}",
    );
    let d = one(&src);
    assert_eq!(d.code, code::lint::DEPRECATED);
    assert_eq!(
        d.message,
        "`idle_session_duration` is a legacy name of `idle_session_timeout`"
    );
    assert_eq!(d.help.as_deref(), Some("rename it `idle_session_timeout`"));
    assert_eq!(underlined(&src, &d), "idle_session_duration");
    // Still checked as a duration.
    let src = request(
        "type: oauth\n        config: {provider: google, client_id: a, client_secret: b, idle_session_duration: soon}",
    );
    let codes: Vec<&str> = run(&src).iter().map(|d| d.code).collect();
    assert_eq!(codes, [code::lint::DEPRECATED, code::BAD_DURATION]);
}

#[test]
fn action_not_allowed_in_phase() {
    let src = "on_http_response:\n  - actions:\n      - type: oauth\n        config: {provider: google, client_id: a, client_secret: b}\n";
    let d = one(src);
    assert_eq!(d.code, code::ACTION_PHASE);
    assert_eq!(d.message, "`oauth` is not supported in `on_http_response`");
    assert_eq!(
        d.help.as_deref(),
        Some("`oauth` runs in `on_http_request` (ERR_NGROK_2202)")
    );
    assert_eq!(underlined(src, &d), "oauth");

    let src =
        "on_tcp_connect:\n  - actions:\n      - type: url-rewrite\n        config: {to: /x}\n";
    assert_eq!(one(src).code, code::ACTION_PHASE);
}

#[test]
fn deny_on_tcp_connect_takes_no_config() {
    let src =
        "on_tcp_connect:\n  - actions:\n      - type: deny\n        config: {status_code: 403}\n";
    let d = one(src);
    assert_eq!(d.code, code::UNKNOWN_FIELD);
    assert_eq!(
        d.message,
        "in `on_tcp_connect`, `deny` closes the connection and takes no config"
    );
    assert_eq!(underlined(src, &d), "{status_code: 403}");
}

#[test]
fn bools_and_types() {
    let src = request(
        "type: rate-limit\n        config: {name: r, enforce: 'true', algorithm: sliding_window, capacity: 1, rate: 60s, bucket_key: []}",
    );
    let d = one(&src);
    assert_eq!(d.code, code::WRONG_TYPE);
    assert_eq!(underlined(&src, &d), "'true'");

    let src = request("type: remove-headers\n        config: {headers: x-a}");
    let d = one(&src);
    assert_eq!(d.code, code::WRONG_TYPE);
    assert_eq!(d.message, "`headers` must be a list, not a string");
    assert_eq!(d.help.as_deref(), Some("write a list: `[x-a]`"));
}

#[test]
fn counts_duplicates_and_empties() {
    let headers: Vec<String> = (0..11).map(|i| format!("x-h{i}: v")).collect();
    let src = request(&format!(
        "type: add-headers\n        config: {{headers: {{{}}}}}",
        headers.join(", ")
    ));
    let d = one(&src);
    assert_eq!(d.code, code::COUNT);
    assert_eq!(d.message, "too many entries for `headers`: 11, at most 10");

    let src = request("type: remove-headers\n        config: {headers: [x-a, X-A]}");
    let d = one(&src);
    assert_eq!(d.code, code::DUPLICATE_VALUE);
    assert_eq!(underlined(&src, &d), "X-A");

    let src = request("type: add-headers\n        config: {headers: {}}");
    assert_eq!(one(&src).code, code::EMPTY);

    let src = request("type: add-headers\n        config: {headers: {user-agent: x}}");
    assert_eq!(one(&src).code, code::INVALID_VALUE);
}

#[test]
fn jwt_validation_nested() {
    let src = "on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer: {allow_list: []}
          http: {tokens: [{type: access_token, method: header, name: Authorization, prefx: 'Bearer '}]}
          jws: {allowed_algorithms: [RS256, none], keys: {sources: {additional_jkus: [not-a-url]}}}
";
    let diags = run(src);
    let got: Vec<(&str, &str)> = diags.iter().map(|d| (d.code, underlined(src, d))).collect();
    assert_eq!(
        got,
        [
            (code::EMPTY, "[]"),
            (code::UNKNOWN_FIELD, "prefx"),
            (code::INVALID_VALUE, "none"),
            (code::BAD_URL, "not-a-url"),
        ],
        "{diags:#?}"
    );
    assert_eq!(diags[0].message, "`issuer.allow_list` cannot be empty");
    assert_eq!(diags[1].help.as_deref(), Some("did you mean `prefix`?"));
}

#[test]
fn terminate_tls_needs_both_key_and_certificate() {
    let src = "on_tcp_connect:\n  - actions:\n      - type: terminate-tls\n        config: {server_private_key: KEY}\n";
    let d = one(src);
    assert_eq!(d.code, code::CONFLICT);
    assert_eq!(
        d.message,
        "`server_certificate` is required when `server_private_key` is specified"
    );
    assert_eq!(underlined(src, &d), "server_private_key");
}

#[test]
fn missing_config() {
    let src = request("type: url-rewrite");
    let d = one(&src);
    assert_eq!(d.code, code::MISSING);
    assert_eq!(d.message, "`url-rewrite` needs a `config` with `to`");
    assert_eq!(underlined(&src, &d), "url-rewrite");
    // Nothing required: no config is fine.
    assert!(run(&request("type: deny")).is_empty());
    assert!(run(&request("type: compress-response")).is_empty());
}

#[test]
fn basic_auth_credentials() {
    let src = request(
        "type: basic-auth\n        config: {credentials: ['alice:short', 'bob', 'carol:longenough', {username: dave, password: longenough}]}",
    );
    let diags = run(&src);
    let got: Vec<(&str, &str)> = diags
        .iter()
        .map(|d| (d.code, underlined(&src, d)))
        .collect();
    assert_eq!(
        got,
        [
            (code::OUT_OF_RANGE, "'alice:short'"),
            (code::INVALID_VALUE, "'bob'"),
            (
                code::lint::DEPRECATED,
                "{username: dave, password: longenough}"
            ),
        ],
        "{diags:#?}"
    );
}

/// A valid config of every action type, each in a phase it runs in.
const VALID: &str = r#"
on_tcp_connect:
  - actions:
      - type: restrict-ips
        config: {enforce: true, allow: [10.0.0.0/8, "::/0", "${vars.cidr}"], deny: [10.1.0.0/16]}
      - type: terminate-tls
        config:
          min_version: "1.2"
          max_version: 1.3
          server_private_key: "${secrets.get('tls', 'key')}"
          server_certificate: "${secrets.get('tls', 'cert')}"
          mutual_tls_certificate_authorities: [ca_123]
          mutual_tls_verification_strategy: require-and-verify
      - type: log
        config: {metadata: {ip: "${conn.client_ip}", n: 1, nested: {a: [1, 2]}}}
      - type: set-vars
        config: {vars: [{a: 1}, {b: "${vars.a}"}]}
      - type: forward-internal
        config: {url: "https://api.internal:443", on_error: continue}
      - type: close-connection
      - type: deny
on_http_request:
  - actions:
      - type: add-headers
        config: {headers: {x-a: "${req.url.path}", x-b: "2"}}
      - type: remove-headers
        config: {headers: [x-secret]}
      - type: basic-auth
        config: {credentials: ["user:password123", "${vars.cred}"], realm: Example, enforce: false}
      - type: circuit-breaker
        config: {error_threshold: 0.25, volume_threshold: 20, window_duration: 30s, tripped_duration: 1m, num_buckets: 10, enforce: true}
      - type: compress-response
        config: {algorithms: [gzip, br]}
      - type: http-request
        config:
          url: https://example.internal/check
          method: POST
          query_params: [{key: a, value: "${req.url.query}"}]
          headers: {x-a: b}
          body: "{}"
          max_redirects: 3
          timeout: 5s
          retry_condition: last_attempt.res.status_code >= 500
          on_error: halt
      - type: jwt-validation
        config:
          issuer: {allow_list: [{value: "https://example.com/issuer"}]}
          audience: {allow_list: [{value: "urn:example:api"}]}
          http: {tokens: [{type: access_token, method: header, name: Authorization, prefix: "Bearer "}]}
          jws:
            allowed_algorithms: [RS256, ES256]
            keys:
              sources: {additional_jkus: ["https://example.com/issuer/jku"]}
              identification: [{token_claims: [kid]}]
      - type: oauth
        config:
          provider: google
          auth_id: my-login
          client_id: "${secrets.get('oauth', 'id')}"
          client_secret: "${secrets.get('oauth', 'secret')}"
          scopes: ["https://www.googleapis.com/auth/userinfo.email"]
          authz_url_params: {prompt: consent}
          max_session_duration: 1h
          idle_session_timeout: 15m
          userinfo_refresh_interval: 5m
          allow_cors_preflight: true
          auth_cookie_domain: example.com
      - type: openid-connect
        config:
          issuer_url: https://accounts.google.com
          client_id: id
          client_secret: secret
          scopes: [openid, profile, email]
          idle_session_timeout: 30m
      - type: oidc
        config: {issuer_url: "https://auth.example.com", client_id: id, client_secret: secret}
      - type: saml
        config:
          idp_metadata_url: https://login.microsoftonline.com/t/federationmetadata/2007-06/federationmetadata.xml?appid=a
          allow_idp_initiated: true
          authorized_groups: [b4a7c3e2-0000-4000-8000-000000000000]
          nameid_format: urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress
          max_session_duration: 8h
      - type: owasp-crs-request
        config: {on_error: continue, process_body: true, exclude_rule_ids: [920350, 942100]}
      - type: rate-limit
        config:
          name: Only allow 30 requests per minute
          enforce: true
          algorithm: sliding_window
          capacity: 30
          rate: 60s
          bucket_key: ["hasReqHeader('host') ? getReqHeader('host')[0] : 'unknown'"]
      - type: redirect
        config: {from: "^http://(.*)$", to: "https://$1", status_code: 301, headers: {x-r: y}}
      - type: request-body-find-replace
        config: {replacements: [{from: "secret-(\\d+)", to: "[redacted]"}]}
      - type: ai-gateway
        config: {}
      - type: url-rewrite
        config: {from: "/api/v1/", to: "/api/v2/"}
      - type: verify-webhook
        config: {provider: github, secret: "${secrets.get('gh', 'secret')}", enforce: true}
      - type: verify-webhook
        config: {provider: sns}
      - type: custom-response
        config: {status_code: 200, body: "hello ${req.url.path}", headers: {content-type: text/plain}}
      - type: deny
        config: {status_code: 404}
on_http_response:
  - actions:
      - type: owasp-crs-response
        config: {process_body: false}
      - type: response-body-find-replace
        config: {replacements: [{from: foo, to: bar}]}
      - type: add-headers
        config: {headers: {x-served-by: portcullis}}
      - type: custom-response
        config: {status_code: 503}
on_event_stream_message:
  - actions:
      - type: sse-find-replace
        config: {replacements: [{field: data, from: "token-[a-z0-9]+", to: "[redacted]"}, {from: x}]}
"#;

#[test]
fn valid_config_for_every_action() {
    let diags = run(VALID);
    assert!(diags.is_empty(), "{diags:#?}");
    let (root, _) = yaml::parse(VALID);
    let (policy, _) = document::lower(root.as_ref());
    let mut seen: Vec<&str> = policy
        .phases
        .iter()
        .flat_map(|p| &p.rules)
        .flat_map(|r| &r.actions)
        .map(|a| a.kind.as_str())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    let missing: Vec<&&str> = document::ACTION_TYPES
        .iter()
        .filter(|t| !seen.contains(*t))
        .collect();
    assert!(missing.is_empty(), "no valid example of {missing:?}");
}

#[test]
fn forward_internal_binding_internal_is_a_warning_not_an_error() {
    let src = request(
        "type: forward-internal\n        config: {url: 'https://api.internal', binding: internal}",
    );
    let d = one(&src);
    assert_eq!(d.code, code::lint::DEPRECATED);
    assert!(!d.is_error());
    assert_eq!(underlined(&src, &d), "binding");
}

#[test]
fn sse_find_replace_runs_only_in_on_event_stream_message() {
    let src = request(
        "type: sse-find-replace\n        config: {replacements: [{field: data, from: a, to: b}]}",
    );
    let d = one(&src);
    assert_eq!(d.code, code::ACTION_PHASE);
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("on_event_stream_message")
    );
}

#[test]
fn go_durations() {
    use super::values::{SECOND, format_duration, parse_duration};
    assert_eq!(parse_duration("90s"), Ok(90 * SECOND));
    assert_eq!(parse_duration("1h30m"), Ok(5400 * SECOND));
    assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
    assert_eq!(parse_duration(".5m"), Ok(30 * SECOND));
    assert_eq!(parse_duration("0"), Ok(0));
    assert_eq!(parse_duration("-1s"), Ok(-SECOND));
    assert_eq!(parse_duration("300ms"), Ok(300_000_000));
    assert!(parse_duration("").is_err());
    assert!(parse_duration("1d").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("99999999999999999999h").is_err());
    assert_eq!(format_duration(90 * SECOND), "90s");
    assert_eq!(format_duration(24 * 3600 * SECOND), "24h");
}

#[test]
fn cidrs_and_urls() {
    use super::values::{check_cidr, check_url};
    assert!(check_cidr("10.0.0.0/8").is_ok());
    assert!(check_cidr("::/0").is_ok());
    assert!(check_cidr("2001:db8::/129").is_err());
    assert!(check_cidr("10.0.0/8").is_err());
    assert!(check_cidr("10.0.0.0/+8").is_err());
    assert_eq!(check_url("https://api.internal:443/x"), Ok("api.internal"));
    assert_eq!(check_url("http://[::1]:8080/"), Ok("::1"));
    assert_eq!(check_url("https://user@host"), Ok("host"));
    assert!(check_url("api.internal").is_err());
    assert!(check_url("https://").is_err());
    assert!(check_url("https://host:port").is_err());
    assert!(check_url("https://a b").is_err());
}

#[test]
fn sign_in_base_urls_are_https_or_loopback() {
    use super::values::check_base_url;
    for ok in [
        "https://login.microsoftonline.com",
        "https://login.microsoftonline.us/",
        "https://graph.microsoft.com/v1.0",
        "https://ghe.example.com/api/v3",
        "HTTPS://Graph.Microsoft.com:443",
        "http://127.0.0.1:8080/graph",
        "http://127.9.9.9",
        "http://[::1]:8080",
        "http://localhost:3000",
    ] {
        assert_eq!(check_base_url(ok), Ok(()), "{ok}");
    }
    for bad in [
        "graph.microsoft.com",
        "http://graph.microsoft.com",
        "http://10.0.0.1:8080",
        "ftp://graph.microsoft.com",
        "https://graph.microsoft.com@attacker.example",
        "https://user:pw@graph.microsoft.com",
        "https://graph%2emicrosoft.com",
        "https://graph.microsoft.com\\@attacker.example",
        "https://graph.microsoft.com/v1.0?x=1",
        "https://graph.microsoft.com/#x",
        "https://graph.microsoft.com:8443x",
        "https://graph.micrοsoft.com",
        "https://graph.microsoft.com /v1.0",
    ] {
        assert!(check_base_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn allowed_tenants_are_tenant_ids() {
    let config = |tenants: &str| {
        format!(
            "on_http_request:\n  - actions:\n      - type: oauth\n        config:\n          \
             provider: microsoft\n          client_id: a\n          client_secret: b\n          \
             allowed_tenants: {tenants}\n"
        )
    };
    assert!(
        run(&config(
            "[72f988bf-86f1-41af-91ab-2d7cd011db47, 9188040D-6C67-4C5B-B112-36A304B66DAD]"
        ))
        .is_empty()
    );
    let src = config("[contoso.onmicrosoft.com]");
    let d = one(&src);
    assert_eq!(d.code, code::INVALID_VALUE);
    assert_eq!(underlined(&src, &d), "contoso.onmicrosoft.com");
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("never by domain")),
        "{d:?}"
    );
    let d = one(&config("[consumers]"));
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("9188040d-6c67-4c5b-b112-36a304b66dad")),
        "{d:?}"
    );
    let d = one(&config("[organizations]"));
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("leave `allowed_tenants` out")),
        "{d:?}"
    );
    for bad in [
        "'72f988bf-86f1-41af-91ab-2d7cd011db4'",
        "'{tenantid}'",
        "'a b'",
        "'1.2.3.4'",
    ] {
        let d = one(&config(&format!("[{bad}]")));
        assert_eq!(d.code, code::INVALID_VALUE, "{bad}");
    }
    // The proxy lower-cases both sides: a GUID twice in two cases is a
    // duplicate.
    let d = one(&config(
        "[72f988bf-86f1-41af-91ab-2d7cd011db47, 72F988BF-86F1-41AF-91AB-2D7CD011DB47]",
    ));
    assert_eq!(d.code, code::DUPLICATE_VALUE);
}
