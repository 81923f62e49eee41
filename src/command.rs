//! Subcommands, one module each, and the terminal output they share.

pub(crate) mod cel;
pub(crate) mod http;
pub(crate) mod lint;
pub(crate) mod lsp;
pub(crate) mod render;
pub(crate) mod saml;
pub(crate) mod schema;
pub(crate) mod test;

/// Writes a line to standard error. Subcommands report through here (and
/// `println!` for their results), so that output stays in one place.
pub(crate) fn eprint(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Writes a line to standard output.
pub(crate) fn print(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}
