//! Traffic Policy documents, as ngrok defines them, for Portcullis.
//!
//! ```text
//! text ─yaml::parse→ yaml::Node (spans) ─document::lower→ Policy ─check→ Vec<Diagnostic>
//! ```
//!
//! Built so far: the YAML layer ([`yaml`]), which keeps a byte span for
//! every node and maps positions inside scalars back to the document; the
//! document structure ([`document`]), strict as ngrok is; the variable
//! schema ([`schema`]); and [`check`], which type-checks every expression
//! against its phase's variables. Not built yet (issue 3): action config
//! schemas, `${}` interpolation, ngrok's function library, the lints
//! beyond ngrok.

mod check;
pub mod document;
pub mod schema;
pub mod yaml;

pub use crate::check::check;

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

    /// Lints: warnings by name, whose level users may raise.
    pub mod lint {
        // Lint: deprecated-field
        /// A legacy spelling ngrok still accepts (`inbound`, `type: oidc`).
        pub const DEPRECATED: &str = "deprecated-field";
    }
}
