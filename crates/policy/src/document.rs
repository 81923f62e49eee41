//! [`Node`] to [`Policy`]: the document's structure as ngrok defines
//! it (phases, rules, actions), with every field checked strictly. ngrok
//! rejects unknown fields, and a typo must not silently disable a rule, so
//! an unknown key is an error with a suggestion.
//!
//! Lowering never fails: it returns the policy it could read and every
//! problem found. Action configs are kept as nodes here; their schemas
//! are checked elsewhere.

use portcullis_cel::diagnostic::did_you_mean;
use portcullis_cel::{Diagnostic, Span};

use crate::code;
use crate::schema::Phase;
use crate::yaml::{Node, NodeKind, is_null};

/// A policy document.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// The phases present, in document order.
    pub phases: Vec<PhaseRules>,
}

/// The rules of one phase.
#[derive(Clone, Debug)]
pub struct PhaseRules {
    /// Which phase.
    pub phase: Phase,
    /// Where its key stands.
    pub key_span: Span,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// A rule: conditions and actions.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The whole rule.
    pub span: Span,
    /// Its `name`, if any.
    pub name: Option<String>,
    /// Its `expressions`, each a scalar node (for spans) holding CEL.
    pub expressions: Vec<Node>,
    /// Its `actions`.
    pub actions: Vec<Action>,
}

/// An action: a type and its config.
#[derive(Clone, Debug)]
pub struct Action {
    /// The whole action.
    pub span: Span,
    /// The `type`, as written.
    pub kind: String,
    /// Where the type is written.
    pub kind_span: Span,
    /// The `config`, if any.
    pub config: Option<Node>,
}

/// The action types ngrok documents (spec §3).
pub const ACTION_TYPES: &[&str] = &[
    "add-headers",
    // ngrok's AI gateway: documented, not built here (E0141).
    "ai-gateway",
    "basic-auth",
    "circuit-breaker",
    "close-connection",
    "compress-response",
    "custom-response",
    "deny",
    "forward-internal",
    "http-request",
    "jwt-validation",
    "log",
    "oauth",
    "openid-connect",
    "owasp-crs-request",
    "owasp-crs-response",
    "rate-limit",
    "redirect",
    "remove-headers",
    "request-body-find-replace",
    "response-body-find-replace",
    "restrict-ips",
    // Listed by ngrok, not yet shipped there; its published schema is
    // what Portcullis reads.
    "saml",
    "set-vars",
    "sse-find-replace",
    "terminate-tls",
    "url-rewrite",
    "verify-webhook",
];

const PHASE_KEYS: &[&str] = &[
    "on_tcp_connect",
    "on_http_request",
    "on_http_response",
    "on_event_stream_message",
];

/// Lowers a parsed document.
pub fn lower(root: Option<&Node>) -> (Policy, Vec<Diagnostic>) {
    let mut lw = Lower { diags: Vec::new() };
    let policy = match root {
        None => Policy::default(),
        Some(root) => lw.policy(root),
    };
    (policy, lw.diags)
}

struct Lower {
    diags: Vec<Diagnostic>,
}

impl Lower {
    fn wrong_type(&mut self, node: &Node, what: &str, expected: &str, help: &str) {
        let mut d = Diagnostic::error(
            code::WRONG_TYPE,
            node.span,
            format!("{what} must be {expected}, not {}", node.describe()),
        );
        if !help.is_empty() {
            d = d.with_help(help.to_string());
        }
        self.diags.push(d);
    }

    fn unknown_field(&mut self, key: &Node, name: &str, within: &str, known: &[&str]) {
        let suggestion = did_you_mean(name, known.iter().copied());
        self.diags.push(
            Diagnostic::error(
                code::UNKNOWN_FIELD,
                key.span,
                format!("unknown field `{name}` in {within}"),
            )
            .with_label(format!(
                "{within} fields are {}",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_suggestion(suggestion)
            .with_help_if_none("ngrok rejects unknown fields (ERR_NGROK_2203)"),
        );
    }

    fn policy(&mut self, root: &Node) -> Policy {
        let mut policy = Policy::default();
        let entries = match &root.kind {
            NodeKind::Map(entries) => entries,
            NodeKind::Scalar(s) if is_null(&s.value) => return policy,
            _ => {
                self.wrong_type(
                    root,
                    "a policy",
                    "a map of phases",
                    "start with a phase: `on_http_request:`",
                );
                return policy;
            }
        };
        for (key, value) in entries {
            let Some(name) = key.scalar().map(|s| s.value.as_str()) else {
                self.wrong_type(key, "a phase name", "a string", "");
                continue;
            };
            let phase = match name {
                "on_tcp_connect" => Phase::TcpConnect,
                "on_http_request" => Phase::HttpRequest,
                "on_http_response" => Phase::HttpResponse,
                "inbound" | "outbound" => {
                    let (phase, now) = if name == "inbound" {
                        (Phase::HttpRequest, "on_http_request")
                    } else {
                        (Phase::HttpResponse, "on_http_response")
                    };
                    self.diags.push(
                        Diagnostic::warning(
                            code::lint::DEPRECATED,
                            key.span,
                            format!("`{name}` is the pre-2024 name of `{now}`"),
                        )
                        .with_help(format!("rename it `{now}`")),
                    );
                    phase
                }
                "enabled" => {
                    self.diags.push(
                        Diagnostic::warning(code::lint::DEPRECATED, key.span, "`enabled` belongs to the legacy edge module wrapper, not to a policy; it is ignored")
                            .with_help("remove it"),
                    );
                    continue;
                }
                "on_event_stream_message" => Phase::EventStreamMessage,
                other => {
                    let suggestion = did_you_mean(other, PHASE_KEYS.iter().copied());
                    self.diags.push(
                        Diagnostic::error(
                            code::UNKNOWN_PHASE,
                            key.span,
                            format!("unknown phase `{other}`"),
                        )
                        .with_label(
                            "phases are `on_tcp_connect`, `on_http_request` and `on_http_response`",
                        )
                        .with_suggestion(suggestion)
                        .with_help_if_none("ngrok rejects unknown phases (ERR_NGROK_2230)"),
                    );
                    continue;
                }
            };
            let rules = match &value.kind {
                NodeKind::Seq(items) => items.iter().filter_map(|r| self.rule(r)).collect(),
                NodeKind::Scalar(s) if is_null(&s.value) => Vec::new(),
                _ => {
                    self.wrong_type(value, &format!("`{name}`"), "a list of rules", "start each rule with `- `, as in `- actions: [...]` (ngrok: ERR_NGROK_2236)");
                    Vec::new()
                }
            };
            policy.phases.push(PhaseRules {
                phase,
                key_span: key.span,
                rules,
            });
        }
        policy
    }

    fn rule(&mut self, node: &Node) -> Option<Rule> {
        let NodeKind::Map(entries) = &node.kind else {
            self.wrong_type(
                node,
                "a rule",
                "a map",
                "a rule has `name`, `expressions` and `actions`",
            );
            return None;
        };
        let mut rule = Rule {
            span: node.span,
            name: None,
            expressions: Vec::new(),
            actions: Vec::new(),
        };
        let mut saw_actions = false;
        for (key, value) in entries {
            match key.scalar().map(|s| s.value.as_str()) {
                Some("name") => match value.scalar() {
                    Some(s) => rule.name = Some(s.value.clone()),
                    None => self.wrong_type(value, "`name`", "a string", ""),
                },
                Some("expressions") => match &value.kind {
                    NodeKind::Seq(items) => {
                        for item in items {
                            match item.scalar() {
                                Some(_) => rule.expressions.push(item.clone()),
                                None => self.wrong_type(item, "an expression", "a string of CEL", ""),
                            }
                        }
                    }
                    NodeKind::Scalar(s) if is_null(&s.value) => {}
                    _ => self.wrong_type(value, "`expressions`", "a list of CEL strings", "write `expressions: [\"req.method == 'GET'\"]`; several are joined with `&&`"),
                },
                Some("actions") => {
                    saw_actions = true;
                    match &value.kind {
                        NodeKind::Seq(items) => rule.actions.extend(items.iter().filter_map(|a| self.action(a))),
                        NodeKind::Map(_) => {
                            self.wrong_type(value, "`actions`", "a list", "start each action with `- `, as in `- type: deny`");
                        }
                        _ => self.wrong_type(value, "`actions`", "a list of actions", ""),
                    }
                    if matches!(&value.kind, NodeKind::Seq(items) if items.is_empty()) {
                        self.diags.push(Diagnostic::error(code::MISSING, value.span, "a rule needs at least one action (ERR_NGROK_2206)"));
                    }
                }
                Some(other) => self.unknown_field(key, other, "a rule", &["name", "expressions", "actions"]),
                None => self.wrong_type(key, "a field name", "a string", ""),
            }
        }
        if !saw_actions {
            self.diags.push(
                Diagnostic::error(code::MISSING, node.span, "a rule needs `actions`")
                    .with_help("add `actions: [{type: deny}]` or another action (ERR_NGROK_2206)"),
            );
        }
        Some(rule)
    }

    fn action(&mut self, node: &Node) -> Option<Action> {
        let NodeKind::Map(entries) = &node.kind else {
            let help = match node.scalar() {
                Some(s) => format!("write `- type: {}`", s.value),
                None => String::new(),
            };
            self.wrong_type(node, "an action", "a map with `type`", &help);
            return None;
        };
        let mut kind: Option<(String, Span)> = None;
        let mut config = None;
        for (key, value) in entries {
            match key.scalar().map(|s| s.value.as_str()) {
                Some("type") => match value.scalar() {
                    Some(s) => kind = Some((s.value.clone(), value.span)),
                    None => self.wrong_type(value, "`type`", "a string", ""),
                },
                Some("config") => config = Some(value.clone()),
                Some(other) => self.unknown_field(key, other, "an action", &["type", "config"]),
                None => self.wrong_type(key, "a field name", "a string", ""),
            }
        }
        let Some((kind, kind_span)) = kind else {
            self.diags.push(
                Diagnostic::error(code::MISSING, node.span, "an action needs a `type`")
                    .with_help("for example `type: deny`"),
            );
            return None;
        };
        let known = ACTION_TYPES.contains(&kind.as_str()) || kind == "oidc";
        if kind == "oidc" {
            self.diags.push(
                Diagnostic::warning(
                    code::lint::DEPRECATED,
                    kind_span,
                    "`oidc` is an alias of `openid-connect`",
                )
                .with_help("write `type: openid-connect`"),
            );
        } else if !known {
            // The Edge modules' names, which older pages of ngrok's docs
            // still print where an action type belongs.
            let renamed = match kind.as_str() {
                "webhook-validation" | "webhook-verification" => Some("verify-webhook"),
                "ip-restriction" | "ip-restrictions" => Some("restrict-ips"),
                "request-headers" | "response-headers" => Some("add-headers"),
                _ => None,
            };
            let suggestion = renamed.or_else(|| did_you_mean(&kind, ACTION_TYPES.iter().copied()));
            self.diags.push(
                Diagnostic::error(
                    code::UNKNOWN_ACTION,
                    kind_span,
                    format!("unknown action type `{kind}`"),
                )
                .with_suggestion(suggestion)
                .with_help_if_none("see the action catalogue (ERR_NGROK_2201)"),
            );
        }
        let kind = if kind == "oidc" {
            "openid-connect".to_string()
        } else {
            kind
        };
        Some(Action {
            span: node.span,
            kind,
            kind_span,
            config,
        })
    }
}

/// `with_help` only where no suggestion was made.
trait HelpIfNone {
    fn with_help_if_none(self, help: &str) -> Self;
}

impl HelpIfNone for Diagnostic {
    fn with_help_if_none(self, help: &str) -> Diagnostic {
        if self.help.is_some() {
            self
        } else {
            self.with_help(help.to_string())
        }
    }
}
