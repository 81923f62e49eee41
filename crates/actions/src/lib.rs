//! Traffic Policy actions (spec §3), and [`RequestCtx`], the exchange
//! they act on.
//!
//! [`compile`] turns an action of a checked document into an [`Action`]:
//! a config read once, templates and regexes compiled once, shared by
//! every request. [`Action::run`] acts on one exchange and says what the
//! pipeline does next ([`Step`]). Actions that wait (for a request body)
//! return a future; the others finish without allocating one.
//!
//! The pipeline that runs actions in rules and phases is
//! `portcullis-runtime`'s; this crate knows nothing of rules.

mod action;
mod basic_auth;
pub mod body;
pub mod body_find_replace;
pub mod certificate;
mod circuit_breaker;
pub mod client;
mod close_connection;
mod compress_response;
mod ctx;
mod custom_response;
mod deny;
pub mod encoding;
pub mod env;
pub mod event_stream;
mod forward_internal;
mod headers;
mod http_request;
pub mod identity;
mod intern;
pub mod ip_intel;
mod jwks;
mod jwt_validation;
mod jwt_validation_rules;
mod log;
mod owasp_crs;
mod percent;
mod rate_limit;
mod record;
mod redirect;
pub mod respond;
mod restrict_ips;
mod rewrite;
pub mod session;
mod set_vars;
mod sign_in;
mod sse_find_replace;
pub mod template;
pub mod terminate_tls;
pub mod trace;
mod url_rewrite;
pub mod user_agent;
mod verify_webhook;
pub mod webhook;

use portcullis_cel::Diagnostic;
use portcullis_policy::document;

pub use crate::action::{
    Action, ActionError, CompileCx, IpPolicies, IpPolicy, OAuthApps, Run, Series, Step, StepFuture,
};
pub use crate::ctx::{
    BodyError, Conn, Endpoint, Headers, RequestCtx, ResultVar, Tls, UpstreamWatcher,
};
pub use crate::identity::Identity;
pub use crate::sign_in::{
    SAML_ACS_PATH, SAML_METADATA_PATH, SpMetadata as SamlSpMetadata,
    certificate_base64 as saml_certificate_base64, sp_metadata as saml_sp_metadata,
};
pub(crate) use portcullis_policy::code;

/// The action types this build runs.
pub const SUPPORTED: &[&str] = &[
    "add-headers",
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
    "saml",
    "set-vars",
    "sse-find-replace",
    "terminate-tls",
    "url-rewrite",
    "verify-webhook",
];

/// Whether this build runs actions of type `kind` (`compile` builds them);
/// a documented type it does not run is `E0141`.
pub fn supports(kind: &str) -> bool {
    kind != "ai-gateway"
}

/// Compiles `action` for the phase and policy in `cx`. The policy must
/// have passed `portcullis_policy::check` without errors; this reports
/// what only building the action finds (and actions this build does not
/// run).
pub fn compile(
    action: &document::Action,
    cx: &CompileCx<'_>,
) -> Result<Box<dyn Action>, Diagnostic> {
    let cfg = action::Config::of(action);
    match action.kind.as_str() {
        "add-headers" => headers::compile_add(cfg, cx),
        "basic-auth" => basic_auth::compile(cfg, cx),
        "circuit-breaker" => circuit_breaker::compile(cfg, cx),
        "close-connection" => close_connection::compile(cfg, cx),
        "compress-response" => compress_response::compile(cfg, cx),
        "custom-response" => custom_response::compile(cfg, cx),
        "deny" => deny::compile(cfg, cx),
        "forward-internal" => forward_internal::compile(cfg, cx),
        "http-request" => http_request::compile(cfg, cx),
        "jwt-validation" => jwt_validation::compile(cfg, cx),
        "log" => log::compile(cfg, cx),
        "oauth" => sign_in::compile(cfg, cx, sign_in::Flavor::OAuth),
        "owasp-crs-request" => owasp_crs::compile_request(cfg, cx),
        "owasp-crs-response" => owasp_crs::compile_response(cfg, cx),
        "openid-connect" | "oidc" => sign_in::compile(cfg, cx, sign_in::Flavor::Oidc),
        "rate-limit" => rate_limit::compile(cfg, cx),
        "redirect" => redirect::compile(cfg, cx),
        "remove-headers" => headers::compile_remove(cfg, cx),
        "request-body-find-replace" => body_find_replace::compile_request(cfg, cx),
        "response-body-find-replace" => body_find_replace::compile_response(cfg, cx),
        "restrict-ips" => restrict_ips::compile(cfg, cx),
        "saml" => sign_in::compile(cfg, cx, sign_in::Flavor::Saml),
        "set-vars" => set_vars::compile(cfg, cx),
        "sse-find-replace" => sse_find_replace::compile(cfg, cx),
        "terminate-tls" => terminate_tls::compile(cfg, cx),
        "url-rewrite" => url_rewrite::compile(cfg, cx),
        "verify-webhook" => verify_webhook::compile(cfg, cx),
        _ => Err(unsupported(action)),
    }
}

/// `E0141` for `action`, whose type this build does not run.
pub fn unsupported(action: &document::Action) -> Diagnostic {
    Diagnostic::error(
        code::UNSUPPORTED_ACTION,
        action.kind_span,
        format!("action `{}` is not supported by this build", action.kind),
    )
    .with_help(
        "the proxy refuses a policy it cannot run in full rather than skip an action; \
         the README lists the actions that run today",
    )
}
