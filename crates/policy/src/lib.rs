//! Traffic Policy documents, as ngrok defines them, for Portcullis.
//!
//! ```text
//! text ─yaml::parse→ yaml::Node (spans) ─document::lower→ Policy ─check→ Vec<Diagnostic>
//! ```
//!
//! What it holds: the YAML layer ([`yaml`]), which keeps a byte span for
//! every node and maps positions inside scalars back to the document; the
//! document structure ([`document`]), strict as ngrok is; the variable
//! schema ([`schema`]) and ngrok's function library ([`functions`]); every
//! action's config schema ([`config`]); `${}` templates ([`interpolate`]);
//! the rules across actions and the lints beyond ngrok (`rules.rs`); and
//! [`check`], which runs them all. Request-bound functions (`getReqHeader`,
//! …) are declared for the checker and bound to the request by the runtime.

mod check;
pub mod config;
pub mod document;
pub mod functions;
pub mod gateway;
pub mod interpolate;
pub mod manifest;
mod rules;
pub mod schema;
pub mod yaml;

pub use crate::check::{Checked, check, check_all};

/// Stable codes of policy diagnostics (`docs/diagnostics.md`). CEL's own
/// codes are `E0001`–`E0099` (`portcullis_cel::diagnostic::code`).
pub mod code {
    // Diagnostic: E0100
    /// The file is not valid YAML or JSON.
    pub const YAML: &str = "E0100";
    // Diagnostic: E0101
    /// A key appears twice in one map.
    pub const DUPLICATE_KEY: &str = "E0101";
    // Diagnostic: E0102
    /// A top-level key is not a phase.
    pub const UNKNOWN_PHASE: &str = "E0102";
    // Diagnostic: E0103
    /// A node has the wrong shape: a map where a list belongs, a list where a string belongs.
    pub const WRONG_TYPE: &str = "E0103";
    // Diagnostic: E0104
    /// Something ngrok documents that Portcullis does not support yet.
    pub const UNSUPPORTED: &str = "E0104";
    // Diagnostic: E0105
    /// A field that does not exist where it is written.
    pub const UNKNOWN_FIELD: &str = "E0105";
    // Diagnostic: E0106
    /// A required field is missing.
    pub const MISSING: &str = "E0106";
    // Diagnostic: E0107
    /// An action type that does not exist.
    pub const UNKNOWN_ACTION: &str = "E0107";
    // Diagnostic: E0110
    /// A config value is not one the field accepts: not in its enum, not a number (ngrok ERR_NGROK_2204/2222).
    pub const INVALID_VALUE: &str = "E0110";
    // Diagnostic: E0111
    /// A number or duration outside the field's range (ERR_NGROK_2215).
    pub const OUT_OF_RANGE: &str = "E0111";
    // Diagnostic: E0112
    /// A value that cannot be empty is empty (ERR_NGROK_2223).
    pub const EMPTY: &str = "E0112";
    // Diagnostic: E0113
    /// A duration that is not a Go duration such as `90s` (ERR_NGROK_2225).
    pub const BAD_DURATION: &str = "E0113";
    // Diagnostic: E0114
    /// A regular expression that does not compile (ERR_NGROK_2261).
    pub const BAD_REGEX: &str = "E0114";
    // Diagnostic: E0115
    /// A CIDR that does not parse (ERR_NGROK_2217).
    pub const BAD_CIDR: &str = "E0115";
    // Diagnostic: E0116
    /// A field that must be a URL is not one (ERR_NGROK_2226).
    pub const BAD_URL: &str = "E0116";
    // Diagnostic: E0117
    /// A list or map with too many or too few entries (ERR_NGROK_2218).
    pub const COUNT: &str = "E0117";
    // Diagnostic: E0118
    /// Config fields that conflict, or one that requires another (ERR_NGROK_2240).
    pub const CONFLICT: &str = "E0118";
    // Diagnostic: E0119
    /// A list that must hold distinct values holds one twice (ERR_NGROK_2231).
    pub const DUPLICATE_VALUE: &str = "E0119";
    // Diagnostic: E0120
    /// An action in a phase that does not run it (ERR_NGROK_2202).
    pub const ACTION_PHASE: &str = "E0120";
    // Diagnostic: E0121
    /// A string longer than the field allows (ERR_NGROK_2221).
    pub const TOO_LONG: &str = "E0121";

    /// Lints: warnings by name, whose level users may raise.
    pub mod lint {
        // Lint: deprecated-field
        /// A legacy spelling ngrok still accepts (`inbound`, `type: oidc`).
        pub const DEPRECATED: &str = "deprecated-field";
        // Lint: header-case
        /// A header looked up with upper-case letters: keys are lower-case, so it never matches.
        pub const HEADER_CASE: &str = "header-case";
        // Lint: constant-condition
        /// A condition that is always true or always false.
        pub const CONSTANT_CONDITION: &str = "constant-condition";
        // Lint: unreachable-rule
        /// A rule after one that always ends the phase.
        pub const UNREACHABLE_RULE: &str = "unreachable-rule";
        // Lint: duplicate-rule
        /// A rule identical to an earlier one in the same phase.
        pub const DUPLICATE_RULE: &str = "duplicate-rule";
        // Lint: unused-var
        /// A variable `set-vars` sets that nothing in the phase reads.
        pub const UNUSED_VAR: &str = "unused-var";
        // Lint: regex-never-matches
        /// A regular expression that no text can match (`a$b`, `x^y`).
        pub const REGEX_NEVER_MATCHES: &str = "regex-never-matches";
        // Lint: regex-query-mark
        /// A `?` in a `redirect` or `url-rewrite` pattern, after a letter
        /// and before `name=`: it makes the letter optional, where the
        /// query's `?` was meant.
        pub const REGEX_QUERY_MARK: &str = "regex-query-mark";
        // Lint: forward-auth-headers
        /// A header `add-headers` sets that reaches the upstream only if
        /// the gateway's own configuration copies it from the answer.
        pub const FORWARD_AUTH_HEADERS: &str = "forward-auth-headers";
        // Lint: deployment-credentials
        /// An `oauth` action without `client_id` and `client_secret`
        /// (ngrok's managed app): its credentials come from the
        /// deployment's `oauth_apps`.
        pub const DEPLOYMENT_CREDENTIALS: &str = "deployment-credentials";
        // Lint: forward-auth-200
        /// A `custom-response` with status 200 behind Envoy: its gRPC
        /// service sends it to the client, its HTTP service would take it
        /// as an allow (Portcullis answers 500 there instead).
        pub const FORWARD_AUTH_200: &str = "forward-auth-200";
        // Lint: deployment-data
        /// A policy reads IP intelligence (`conn.geo.*`) where the
        /// deployment names no databases: said by the proxy at load.
        pub const DEPLOYMENT_DATA: &str = "deployment-data";
        // Lint: manifest-reference
        /// A manifest's endpoint that uses an `NgrokTrafficPolicy` the file
        /// does not hold: that policy is checked where it is.
        pub const MANIFEST_REFERENCE: &str = "manifest-reference";
    }

    // Diagnostic: E0130
    /// An action after a terminating action in the same rule.
    pub const UNREACHABLE_ACTION: &str = "E0130";
    // Diagnostic: E0131
    /// More than one sign-in action in a policy.
    pub const MULTIPLE_AUTH: &str = "E0131";
    // Diagnostic: E0132
    /// A `${` interpolation that is never closed by `}`, or one with no
    /// expression inside (`${}`) (ERR_NGROK_2224).
    pub const INTERPOLATION: &str = "E0132";
    // Diagnostic: E0140
    /// An action config that checks but cannot be compiled into the proxy's
    /// pipeline (a regex that is too large, a CIDR list that does not parse).
    pub const ACTION_COMPILE: &str = "E0140";
    // Diagnostic: E0141
    /// An action type ngrok documents that this build does not run yet.
    pub const UNSUPPORTED_ACTION: &str = "E0141";
    // Diagnostic: E0150
    /// A rule or action that cannot work behind the gateway the policy is
    /// loaded for (forward-auth): it would be skipped in silence.
    pub const GATEWAY: &str = "E0150";
    // Diagnostic: E0160
    /// A Kubernetes manifest that carries no Traffic Policy, a document of
    /// it that is no resource, or (for the proxy) more than one policy.
    pub const MANIFEST: &str = "E0160";
}
