//! Schema tests, as users meet the schema: expressions that must check in a
//! phase, and the diagnostics of those that must not.

use std::collections::HashSet;

use portcullis_cel::Type;
use portcullis_cel::diagnostic::code;

use super::{Phase, env, variable, variables};

/// The codes of the diagnostics of compiling `src` as a condition in
/// `phase`; empty when it compiles.
fn codes(phase: Phase, src: &str) -> Vec<&'static str> {
    match env(phase).compile_condition(src) {
        Ok(_) => Vec::new(),
        Err(diags) => diags.iter().map(|d| d.code).collect(),
    }
}

fn assert_checks(phase: Phase, src: &str) {
    let result = env(phase).compile_condition(src);
    assert!(
        result.is_ok(),
        "{src} in {}: {:?}",
        phase.key(),
        result.err()
    );
}

#[test]
fn documented_expressions_check_in_the_request_phase() {
    for src in [
        "req.url.path.startsWith('/api')",
        "req.url.startsWith('https://')",
        "req.headers['x-api-key'][0] == 'k'",
        "'admin' in req.headers['x-roles']",
        "req.cookies['session'][0].value == 'x'",
        "conn.client_ip == '10.0.0.1'",
        "actions.ngrok.oauth.identity.email.endsWith('@example.com')",
        "conn.client_ip.geo.location.country_code == 'US'",
        "timestamp(time.now) > timestamp('2024-01-01T00:00:00Z')",
        "vars.x == 1",
    ] {
        assert_checks(Phase::HttpRequest, src);
    }
}

#[test]
fn ngrok_doc_examples_check() {
    let request = [
        "req.content_type.parameters['charset'] == 'utf-8'",
        "req.url.port == 8080",
        "req.user_agent.is_bot",
        "'page' in req.url.query_params",
        "req.ts.body_received > timestamp('2023-12-31T00:00:00Z')",
        "'proxy.anonymous.tor' in conn.client_ip.categories",
        "conn.client_ip.as.number == 12345",
        "double(conn.geo.latitude) >= 45.0",
        "conn.tls.client.extensions[0].critical",
        "conn.tls.client.issuer.country == ['US']",
        "conn.tls.client.validity.not_after > timestamp(time.now)",
        "'mtls.example.com' in conn.tls.client.san.dns_names",
        "conn.k8s.pod.metadata.annotations['k8s.ngrok.com/environment'] == 'production'",
        "endpoint.port == 443",
        "actions.ngrok.jwt_validation.tokens[0].payload['sub'] == 'me'",
        "actions.ngrok.http_request.res.status_code == 200",
        "actions.ngrok.http_request.res.body.contains('ok')",
        "actions.ngrok.rate_limit.limited",
        "actions.ngrok.restrict_ips.action == 'deny'",
        "actions.ngrok.owasp_crs_request.matched_rules.exists(r, r.id == 942100)",
        "actions.ngrok.basic_auth.credentials.authorized",
        "actions.ngrok.oidc.identity.email == 'a@example.com'",
        "has(vars.x) && vars.x.size() > 0",
    ];
    for src in request {
        assert_checks(Phase::HttpRequest, src);
    }
    let response = [
        "res.status_code >= 300",
        "res.cookies['sessionId'][0].max_age > duration('24h')",
        "res.cookies['sessionId'][0].expires > timestamp(time.now)",
        "size(res.cookies['sessionId'][0].unparsed_attributes) > 0",
        "req.url.path == '/'",
        "actions.ngrok.compress.negotiated_algorithm == 'gzip'",
    ];
    for src in response {
        assert_checks(Phase::HttpResponse, src);
    }
    let tcp = [
        "conn.client_ip in ['::1', '127.0.0.1']",
        "conn.tls.sni == 'client.example.com'",
        "actions.ngrok.terminate_tls.client.subject.common_name == 'me'",
        "actions.ngrok.log.metadata['k'] == 'v'",
    ];
    for src in tcp {
        assert_checks(Phase::TcpConnect, src);
    }
}

#[test]
fn response_variables_exist_only_in_the_response_phase() {
    assert_eq!(
        codes(Phase::HttpRequest, "res.status_code == 200"),
        [code::UNDECLARED]
    );
    assert_checks(Phase::HttpResponse, "res.status_code == 200");
    assert_eq!(
        codes(Phase::HttpResponse, "res.status_code < '200'"),
        [code::NO_OVERLOAD]
    );
}

#[test]
fn request_variables_do_not_exist_on_tcp_connect() {
    assert_eq!(
        codes(Phase::TcpConnect, "req.method == 'GET'"),
        [code::UNDECLARED]
    );
    assert_eq!(
        codes(
            Phase::TcpConnect,
            "actions.ngrok.oauth.identity.email == ''"
        ),
        [code::UNDECLARED]
    );
    // An action's results are there in the phases after its own, as in
    // ngrok.
    assert!(
        codes(
            Phase::HttpResponse,
            "actions.ngrok.oauth.identity.email == ''"
        )
        .is_empty()
    );
}

#[test]
fn record_fields_are_checked() {
    assert_eq!(
        codes(Phase::HttpRequest, "req.cookies['s'][0].valu == 'x'"),
        [code::UNKNOWN_FIELD]
    );
    // Request cookies have no attributes; response cookies do.
    assert_eq!(
        codes(Phase::HttpRequest, "req.cookies['s'][0].secure"),
        [code::UNKNOWN_FIELD]
    );
    assert_checks(Phase::HttpResponse, "res.cookies['s'][0].secure");
    // `time.now` is a string, as ngrok documents it.
    assert_eq!(
        codes(
            Phase::HttpRequest,
            "time.now > timestamp('2024-01-01T00:00:00Z')"
        ),
        [code::NO_OVERLOAD]
    );
}

#[test]
fn names_are_unique_and_exist_somewhere() {
    let mut seen = HashSet::new();
    for v in variables() {
        assert!(seen.insert(v.name), "{} declared twice", v.name);
        assert!(!v.phases.is_empty(), "{} exists in no phase", v.name);
        assert!(!v.doc.is_empty(), "{} has no doc", v.name);
        assert!(
            !v.doc.contains('\n'),
            "{}'s doc is more than a line",
            v.name
        );
        let mut phases = HashSet::new();
        assert!(
            v.phases.iter().all(|p| phases.insert(*p)),
            "{} lists a phase twice",
            v.name
        );
    }
}

#[test]
fn every_phase_has_its_variables() {
    for phase in Phase::all() {
        let env = env(phase);
        for v in variables() {
            let declared = env.var(v.name).map(|(_, d)| d.ty.clone());
            if v.in_phase(phase) {
                assert_eq!(declared.as_ref(), Some(&v.ty), "{}", v.name);
            } else {
                assert_eq!(declared, None, "{} in {}", v.name, phase.key());
            }
        }
    }
}

#[test]
fn phase_rules() {
    for v in variables() {
        let phases: Vec<Phase> = v.phases.to_vec();
        let all = Phase::all().to_vec();
        if v.name.starts_with("req.") {
            assert_eq!(
                phases,
                [Phase::HttpRequest, Phase::HttpResponse],
                "{}",
                v.name
            );
        } else if v.name.starts_with("res.") {
            assert_eq!(phases, [Phase::HttpResponse], "{}", v.name);
        } else if v.name.starts_with("conn.")
            || v.name.starts_with("endpoint.")
            || v.name == "time.now"
            || v.name == "vars"
        {
            assert_eq!(phases, all, "{}", v.name);
        }
    }
    assert_eq!(variable("time.now").map(|v| &v.ty), Some(&Type::String));
    assert_eq!(
        variable("req.headers").map(|v| &v.ty),
        Some(&Type::map(Type::String, Type::list(Type::String)))
    );
}

#[test]
fn phase_keys_round_trip() {
    for phase in Phase::all() {
        assert_eq!(Phase::from_key(phase.key()), Some(phase));
    }
    assert_eq!(Phase::from_key("inbound"), None);
}
