//! Traffic Policy documents, as ngrok defines them, for Portcullis.
//!
//! Built so far: the YAML layer ([`yaml`]), which keeps a byte span for
//! every node and maps positions inside scalars back to the document. The
//! document model, the variable schema, checks and lints follow (issue 3).

pub mod yaml;

/// Stable codes of policy diagnostics (`docs/diagnostics.md`). CEL's own
/// codes are `E0001`–`E0099` (`portcullis_cel::diagnostic::code`).
pub mod code {
    // Diagnostic: E0100
    /// The file is not valid YAML or JSON.
    pub const YAML: &str = "E0100";
    // Diagnostic: E0101
    /// A key appears twice in one map.
    pub const DUPLICATE_KEY: &str = "E0101";
}
