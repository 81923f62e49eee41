//! `portcullis lint [PATH...] [--format human|short|json] [--deny-warnings]
//! [--gateway NAME] [--config FILE]`: checks policy files and reports every
//! problem in every file.
//!
//! Without `--config`, what a policy leaves to the deployment (an `oauth`
//! app, IP intelligence) is a warning saying where it will come from; with
//! `--config`, the policies are checked against that deployment (`serve`'s
//! config and the environment's OAuth apps), and what it lacks is an
//! error, as the proxy would refuse to start.
//!
//! Directories are searched recursively for `*.yml`, `*.yaml` and `*.json`
//! (not `*.test.yml`, `portcullis test`'s files).
//! Exit status: 0 when clean, 1 on errors (or on warnings with
//! `--deny-warnings`), 2 on a usage error (a path that does not exist).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use portcullis_cel::{Diagnostic, Severity};

use super::{eprint, print, render};

/// Output formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Format {
    /// The source, with the problem underlined.
    Human,
    /// `file:line:col: severity[code]: message`, one line each.
    Short,
    /// One JSON document, for CI bots.
    Json,
}

/// Arguments of `portcullis lint`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Policy files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Check the policy for use behind this gateway (`nginx`, `caddy`,
    /// `traefik`, `envoy`): what it cannot apply is an error.
    #[arg(long, value_name = "NAME")]
    gateway: Option<String>,
    /// Check against this deployment (`serve`'s config file, and the
    /// environment's `PORTCULLIS_OAUTH_*` apps): an `oauth` app, an IP
    /// Policy or IP intelligence it does not have is an error.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The deployment `--config` names, as the proxy would run it.
struct Deployment {
    options: portcullis_runtime::Options,
}

fn deployment(path: &Path) -> Result<Deployment, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let config = portcullis_proxy::Config::parse(&text, path).map_err(|e| e.to_string())?;
    Ok(Deployment {
        options: portcullis_runtime::Options {
            internal: config.internal.iter().map(|(n, _)| n.clone()).collect(),
            ip_policies: Some(std::sync::Arc::new(config.ip_policies.clone())),
            oauth_apps: Some(std::sync::Arc::new(portcullis_proxy::oauth_apps(
                &config.oauth_apps,
            ))),
            ip_intelligence: !config.ip_intelligence.is_empty() || !config.ip_categories.is_empty(),
            ..portcullis_runtime::Options::default()
        },
    })
}

/// One file's findings.
struct Report {
    path: PathBuf,
    src: String,
    diags: Vec<Diagnostic>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.paths {
        if !path.exists() {
            eprint(&format!("error: {} does not exist", path.display()));
            return Ok(ExitCode::from(2));
        }
        collect(path, &mut files)?;
    }
    let gateway = match &args.gateway {
        Some(name) => match portcullis_policy::gateway::Gateway::parse(name) {
            Some(g) => Some(g),
            None => {
                eprint(&format!(
                    "error: --gateway {name}: one of nginx, caddy, traefik, envoy"
                ));
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let deployment = match &args.config {
        Some(path) => match deployment(path) {
            Ok(d) => Some(d),
            Err(e) => {
                eprint(&format!("error: --config {}: {e}", path.display()));
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    let options = deployment
        .as_ref()
        .map_or_else(portcullis_runtime::Options::default, |d| d.options.clone());
    let mut reports = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let (src, diags) = match String::from_utf8(bytes) {
            Ok(src) => {
                // A policy file, or each policy a Kubernetes manifest
                // carries.
                let (policies, mut diags) = portcullis_policy::check_all(&src);
                for checked in &policies {
                    let policy = &checked.policy;
                    if let Some(gateway) = gateway {
                        diags.extend(portcullis_policy::gateway::check(policy, gateway));
                    }
                    // What lint accepts, the proxy runs: a policy without
                    // errors is also compiled as the proxy compiles it.
                    let inside = |d: &Diagnostic| {
                        d.is_error()
                            && (checked.resource.is_none()
                                || (d.span.start >= checked.span.start
                                    && d.span.end <= checked.span.end))
                    };
                    if diags.iter().any(inside) {
                        diags.extend(portcullis_runtime::Pipeline::unsupported(policy));
                    } else if let Err(errors) =
                        portcullis_runtime::Pipeline::compile(policy, &src, &options)
                    {
                        diags.extend(errors);
                    }
                }
                if let Some(d) = &deployment {
                    // Said of the deployment, and now known: an app it
                    // lacks failed the compile above.
                    diags.retain(|diag| {
                        diag.code != portcullis_policy::code::lint::DEPLOYMENT_CREDENTIALS
                            && !(diag.code == portcullis_policy::code::lint::DEPLOYMENT_DATA
                                && d.options.ip_intelligence)
                    });
                }
                diags.sort_by_key(|d| (d.span.start, d.span.end));
                (src, diags)
            }
            // A file that is not text is a finding about that file, not a
            // reason to stop linting the others.
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let src = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let start = src
                    .char_indices()
                    .map(|(i, _)| i)
                    .take_while(|i| *i <= at)
                    .last()
                    .unwrap_or(0);
                let end = src[start..]
                    .chars()
                    .next()
                    .map_or(start, |c| start + c.len_utf8());
                let diag = Diagnostic::error(
                    portcullis_policy::code::YAML,
                    portcullis_cel::Span::new(start, end),
                    "the file is not UTF-8 text",
                )
                .with_help("policy files are YAML or JSON in UTF-8");
                (src, vec![diag])
            }
        };
        reports.push(Report { path, src, diags });
    }
    let errors = reports
        .iter()
        .flat_map(|r| &r.diags)
        .filter(|d| d.is_error())
        .count();
    let warnings = reports
        .iter()
        .flat_map(|r| &r.diags)
        .filter(|d| !d.is_error())
        .count();
    match args.format {
        Format::Human => {
            for r in &reports {
                for d in &r.diags {
                    eprint(&render::human(&r.path.display().to_string(), &r.src, d));
                }
            }
            eprint(&format!(
                "{} in {} {}",
                counts(errors, warnings),
                reports.len(),
                if reports.len() == 1 { "file" } else { "files" }
            ));
        }
        Format::Short => {
            for r in &reports {
                for d in &r.diags {
                    print(&short(&r.path, &r.src, d));
                }
            }
        }
        Format::Json => print(&serde_json::to_string_pretty(&json(
            &reports, errors, warnings,
        ))?),
    }
    let fail = errors > 0 || (args.deny_warnings && warnings > 0);
    Ok(if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // `x.test.yml` is `portcullis test`'s, beside the policy.
            let policy_file = entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yml" | "yaml" | "json"))
                && !name.ends_with(".test.yml")
                && !name.ends_with(".test.yaml");
            if entry.is_dir() || policy_file {
                collect(&entry, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn counts(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn short(path: &Path, src: &str, d: &Diagnostic) -> String {
    let (line, col) = line_col(src, d.span.start as usize);
    let mut out = format!(
        "{}:{line}:{col}: {}[{}]: {}",
        path.display(),
        severity(d.severity),
        d.code,
        d.message
    );
    if let Some(help) = &d.help {
        out.push_str(&format!(" (help: {help})"));
    }
    out
}

fn json(reports: &[Report], errors: usize, warnings: usize) -> serde_json::Value {
    let diagnostics: Vec<serde_json::Value> = reports
        .iter()
        .flat_map(|r| {
            r.diags.iter().map(move |d| {
                let (line, column) = line_col(&r.src, d.span.start as usize);
                let (end_line, end_column) = line_col(&r.src, d.span.end as usize);
                serde_json::json!({
                    "file": r.path.display().to_string(),
                    "code": d.code,
                    "severity": severity(d.severity),
                    "message": d.message,
                    "label": d.label,
                    "help": d.help,
                    "start": d.span.start,
                    "end": d.span.end,
                    "line": line,
                    "column": column,
                    "end_line": end_line,
                    "end_column": end_column,
                })
            })
        })
        .collect();
    serde_json::json!({ "files": reports.len(), "errors": errors, "warnings": warnings, "diagnostics": diagnostics })
}
