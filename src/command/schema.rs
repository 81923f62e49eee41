//! `portcullis schema`: prints the JSON Schema of the policy format, made
//! from the tables lint checks against, for editors (the YAML language
//! server validates and completes a file whose first line is
//! `# yaml-language-server: $schema=traffic-policy.schema.json`).

use std::process::ExitCode;

use super::print;

/// Arguments of `portcullis schema`.
#[derive(clap::Args)]
pub(crate) struct Args {}

pub(crate) fn run(_: &Args) -> anyhow::Result<ExitCode> {
    let schema = portcullis_policy::config::json_schema();
    print(&serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
