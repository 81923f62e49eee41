//! What a policy can do when another gateway carries the traffic and asks
//! Portcullis only for a decision (forward-auth: nginx `auth_request`,
//! Caddy `forward_auth`, Traefik `forwardAuth`, Envoy `ext_authz`).
//!
//! Such a gateway shows its auth service the request's head and nothing
//! else: no body, no response, not the client's connection. It applies
//! what the answer says only in the ways its protocol allows: nginx,
//! Caddy and Traefik copy named headers from the answer onto the request
//! but cannot remove one, none of them rewrites the target, and Caddy,
//! Traefik and Envoy's HTTP service take any 2xx answer as "let it pass".
//! A rule that relied on anything else would be skipped in silence, which
//! is worse than no rule: [`check`] reports each as an error (`E0150`)
//! when a policy is loaded for a gateway, and `portcullis lint --gateway`
//! reports the same.

use portcullis_cel::Diagnostic;

use crate::code;
use crate::document::{Action, Policy};
use crate::rules::config_value;
use crate::schema::Phase;
use crate::yaml::{Node, NodeKind};

/// A gateway that asks Portcullis for decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gateway {
    /// nginx's `auth_request`: 2xx allows, 401 and 403 deny (and reach
    /// `error_page`), anything else becomes a 500.
    Nginx,
    /// Caddy's `forward_auth`: 2xx allows, anything else goes to the
    /// client as it is.
    Caddy,
    /// Traefik's `forwardAuth`: as Caddy.
    Traefik,
    /// Envoy's `ext_authz`, over HTTP (200 allows, anything else goes to
    /// the client) or gRPC (`Authorization/Check`).
    Envoy,
}

impl Gateway {
    /// Every gateway, in documentation order.
    pub const ALL: [Gateway; 4] = [
        Gateway::Nginx,
        Gateway::Caddy,
        Gateway::Traefik,
        Gateway::Envoy,
    ];

    /// Reads `nginx`, `caddy`, `traefik` or `envoy`.
    pub fn parse(text: &str) -> Option<Gateway> {
        Gateway::ALL
            .into_iter()
            .find(|g| g.name().eq_ignore_ascii_case(text.trim()))
    }

    /// The gateway's name, as configured.
    pub fn name(self) -> &'static str {
        match self {
            Gateway::Nginx => "nginx",
            Gateway::Caddy => "caddy",
            Gateway::Traefik => "traefik",
            Gateway::Envoy => "envoy",
        }
    }

    /// Whether the gateway removes request headers its auth service names
    /// (Envoy: `headers_to_remove`, `x-envoy-auth-headers-to-remove`).
    pub fn removes_headers(self) -> bool {
        self == Gateway::Envoy
    }

    /// Whether a 2xx answer of the policy can reach the client. nginx's
    /// answer location serves it; Caddy and Traefik would let the request
    /// through instead, and so would Envoy's HTTP service a 200 (its gRPC
    /// service sends any denial).
    pub fn answers_2xx(self) -> bool {
        self == Gateway::Nginx
    }

    /// How the gateway is told to copy a header of the answer onto the
    /// request, for a diagnostic's help.
    fn copy_hint(self, name: &str) -> String {
        let var = name.to_ascii_lowercase().replace('-', "_");
        match self {
            Gateway::Nginx => format!(
                "nginx passes it upstream only if its configuration copies it: \
                 `auth_request_set ${var} $upstream_http_{var};` and `proxy_set_header {name} ${var};`"
            ),
            Gateway::Caddy => format!(
                "Caddy passes it upstream only if `forward_auth` lists it: `copy_headers {name}`"
            ),
            Gateway::Traefik => {
                format!("Traefik passes it upstream only if `authResponseHeaders` lists `{name}`")
            }
            Gateway::Envoy => format!(
                "Envoy's HTTP service passes it upstream only if `allowed_upstream_headers` matches `{name}` (gRPC needs nothing)"
            ),
        }
    }
}

impl std::fmt::Display for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What in `policy` cannot work behind `gateway`: errors (`E0150`) for
/// rules that would be skipped, and `forward-auth-headers` warnings for
/// headers the gateway's own configuration must copy.
pub fn check(policy: &Policy, gateway: Gateway) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for phase in &policy.phases {
        let (why, help) = match phase.phase {
            Phase::HttpRequest => {
                for rule in &phase.rules {
                    for action in &rule.actions {
                        action_check(action, gateway, &mut out);
                    }
                }
                continue;
            }
            Phase::TcpConnect => (
                "the connection Portcullis sees is the gateway's, not the client's",
                "move the rules to `on_http_request`, where `conn.client_ip` is the client's address as the gateway saw it",
            ),
            Phase::HttpResponse | Phase::EventStreamMessage => (
                "the gateway never shows its auth service the response",
                "set response headers in the gateway's own configuration, or run `portcullis http` in front of the upstream",
            ),
        };
        if !phase.rules.is_empty() {
            out.push(
                Diagnostic::error(
                    code::GATEWAY,
                    phase.key_span,
                    format!(
                        "`{}` rules cannot run behind {gateway}: {why}",
                        phase.phase.key()
                    ),
                )
                .with_help(help),
            );
        }
    }
    out
}

fn action_check(action: &Action, gateway: Gateway, out: &mut Vec<Diagnostic>) {
    let cannot = |why: String, help: &str| {
        Diagnostic::error(
            code::GATEWAY,
            action.kind_span,
            format!("`{}` cannot work behind {gateway}: {why}", action.kind),
        )
        .with_help(help.to_owned())
    };
    match action.kind.as_str() {
        "url-rewrite" => out.push(cannot(
            "the gateway forwards the target it has, whatever its auth service answers".into(),
            "rewrite in the gateway's own configuration (nginx `rewrite`, Caddy `uri`, Traefik `replacePath`)",
        )),
        "forward-internal" => out.push(cannot(
            "the gateway picks the upstream, not its auth service".into(),
            "route in the gateway's own configuration",
        )),
        "close-connection" => out.push(cannot(
            "Portcullis does not hold the client's connection".into(),
            "use `deny`",
        )),
        "verify-webhook" | "request-body-find-replace" => out.push(cannot(
            "the gateway does not send the request body to its auth service".into(),
            "run `portcullis http` in front of the upstream for rules that read the body",
        )),
        "circuit-breaker" => out.push(cannot(
            "the gateway, not Portcullis, hears the upstream's answers, so no failure would ever be counted".into(),
            "use the gateway's own breaker (Envoy `outlier_detection`, Traefik `circuitBreaker`), or run `portcullis http` in front of the upstream",
        )),
        "terminate-tls" => out.push(cannot(
            "the gateway terminates the client's TLS".into(),
            "configure TLS, and client certificates, in the gateway",
        )),
        "saml" => out.push(cannot(
            "the IdP answers with a form POST to the ACS, and the gateway does not send the request body to its auth service".into(),
            "sign in with `oauth` or `openid-connect` behind a gateway, or run `portcullis http` in front of the upstream",
        )),
        "remove-headers" if !gateway.removes_headers() => out.push(cannot(
            format!("{gateway} cannot remove a request header because its auth service says so"),
            match gateway {
                Gateway::Nginx => "clear the header in nginx: `proxy_set_header NAME \"\";`",
                Gateway::Caddy => "clear the header in Caddy: `header_up -NAME` on `reverse_proxy`",
                _ => "clear the header with a `headers` middleware (`customRequestHeaders: {NAME: \"\"}`)",
            },
        )),
        "custom-response" if !gateway.answers_2xx() => {
            match status_code(action) {
                // Envoy's gRPC service sends any denial to the client; its
                // HTTP service takes exactly 200 as an allow, and
                // Portcullis answers such a request 500 there instead.
                Some((200, node)) if gateway == Gateway::Envoy => out.push(
                    Diagnostic::warning(
                        code::lint::FORWARD_AUTH_200,
                        node.span,
                        "a 200 answer reaches the client over Envoy's gRPC service only: its HTTP service takes 200 as \"let the request through\", so Portcullis answers 500 there",
                    )
                    .with_help("use the gRPC service (`grpc_service`), or another status"),
                ),
                Some((status, node))
                    if gateway != Gateway::Envoy && (200..300).contains(&status) =>
                {
                    out.push(
                        Diagnostic::error(
                            code::GATEWAY,
                            node.span,
                            format!(
                                "a {status} answer cannot reach the client behind {gateway}: the gateway takes any 2xx from its auth service as \"let the request through\""
                            ),
                        )
                        .with_help("answer with a status outside 2xx, or put nginx (whose answer location serves any status) or `portcullis http` in front"),
                    );
                }
                _ => {}
            }
        }
        "add-headers" => {
            for name in header_names(action) {
                out.push(
                    Diagnostic::warning(
                        code::lint::FORWARD_AUTH_HEADERS,
                        name.span,
                        format!(
                            "`{}` reaches the upstream only if {gateway} copies it from the answer",
                            name.scalar().map_or("", |s| s.value.as_str())
                        ),
                    )
                    .with_help(gateway.copy_hint(name.scalar().map_or("", |s| s.value.as_str()))),
                );
            }
        }
        _ => {}
    }
}

/// `custom-response`'s `status_code`, when it is a number.
fn status_code(action: &Action) -> Option<(u16, &Node)> {
    let node = config_value(action, "status_code")?;
    let status = node.scalar()?.value.trim().parse().ok()?;
    Some((status, node))
}

/// The keys of `add-headers`' `headers` map.
fn header_names(action: &Action) -> Vec<&Node> {
    match config_value(action, "headers") {
        Some(Node {
            kind: NodeKind::Map(entries),
            ..
        }) => entries.iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(policy: &str, gateway: Gateway) -> Vec<(&'static str, String)> {
        let (policy, diags) = crate::check(policy);
        assert!(
            diags.iter().all(|d| !d.is_error()),
            "the policy itself is valid: {diags:?}"
        );
        check(&policy, gateway)
            .into_iter()
            .map(|d| (d.code, d.message))
            .collect()
    }

    #[test]
    fn response_rules_cannot_run_behind_any_gateway() {
        let policy = "on_http_response:\n  - actions:\n      - type: add-headers\n        config:\n          headers: { x-a: b }\n";
        for g in Gateway::ALL {
            let found = codes(policy, g);
            assert_eq!(found.len(), 1, "{g}: {found:?}");
            assert_eq!(found[0].0, code::GATEWAY);
            assert!(found[0].1.contains("on_http_response"), "{found:?}");
        }
    }

    #[test]
    fn header_removal_is_refused_where_the_gateway_cannot_remove() {
        let policy = "on_http_request:\n  - actions:\n      - type: remove-headers\n        config:\n          headers: [x-internal-user]\n";
        for g in [Gateway::Nginx, Gateway::Caddy, Gateway::Traefik] {
            assert_eq!(codes(policy, g).len(), 1, "{g}");
        }
        assert!(codes(policy, Gateway::Envoy).is_empty());
    }

    #[test]
    fn a_2xx_custom_response_is_refused_where_2xx_means_allow() {
        let ok = "on_http_request:\n  - actions:\n      - type: custom-response\n        config:\n          status_code: 200\n          body: maintenance\n";
        let teapot = ok.replace("200", "418");
        assert!(codes(ok, Gateway::Nginx).is_empty());
        for g in [Gateway::Caddy, Gateway::Traefik] {
            let found = codes(ok, g);
            assert_eq!(found, vec![(code::GATEWAY, found[0].1.clone())], "{g}");
            assert!(found[0].1.contains("200"), "{found:?}");
            assert!(codes(&teapot, g).is_empty(), "{g}");
            assert_eq!(codes(&ok.replace("200", "204"), g).len(), 1, "{g}");
        }
        // Envoy: 200 is an allow over HTTP only (a warning); 204 is a
        // denial like any other there.
        let envoy = codes(ok, Gateway::Envoy);
        assert_eq!(envoy.len(), 1);
        assert_eq!(envoy[0].0, code::lint::FORWARD_AUTH_200);
        assert!(codes(&ok.replace("200", "204"), Gateway::Envoy).is_empty());
    }

    #[test]
    fn rewrites_and_body_readers_are_refused_everywhere() {
        for (kind, config) in [
            ("url-rewrite", "from: /a\n          to: /b"),
            ("verify-webhook", "provider: github\n          secret: s"),
            ("close-connection", "{}"),
            ("saml", "idp_metadata_url: https://login.example.com/md"),
            ("circuit-breaker", "error_threshold: 0.5"),
        ] {
            let policy = format!(
                "on_http_request:\n  - actions:\n      - type: {kind}\n        config:\n          {config}\n"
            );
            for g in Gateway::ALL {
                let found = codes(&policy, g);
                assert_eq!(found.len(), 1, "{kind} behind {g}: {found:?}");
                assert!(found[0].1.starts_with(&format!("`{kind}`")), "{found:?}");
            }
        }
    }

    #[test]
    fn added_headers_are_a_warning_naming_how_to_copy_them() {
        let policy = "on_http_request:\n  - actions:\n      - type: add-headers\n        config:\n          headers:\n            X-Tenant: acme\n";
        let (parsed, _) = crate::check(policy);
        let diags = check(&parsed, Gateway::Nginx);
        assert_eq!(diags.len(), 1);
        assert!(!diags[0].is_error());
        let help = diags[0].help.as_deref().unwrap_or("");
        assert!(
            help.contains("$upstream_http_x_tenant") && help.contains("proxy_set_header X-Tenant"),
            "{help}"
        );
    }

    #[test]
    fn gateways_are_read_by_name() {
        assert_eq!(Gateway::parse("NGINX"), Some(Gateway::Nginx));
        assert_eq!(Gateway::parse("envoy"), Some(Gateway::Envoy));
        assert_eq!(Gateway::parse("haproxy"), None);
    }
}
