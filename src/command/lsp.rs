//! `portcullis lsp`: the language server over stdio (`portcullis-lsp`),
//! for editors: lint's diagnostics as you type, hover, completion,
//! go-to-definition.

use std::process::ExitCode;

/// Arguments of `portcullis lsp`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Accepted for editors that pass it; stdio is the only transport.
    #[arg(long)]
    stdio: bool,
}

pub(crate) fn run(_: &Args) -> anyhow::Result<ExitCode> {
    portcullis_lsp::run_stdio().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}
