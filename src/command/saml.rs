//! `portcullis saml-metadata`: the SP metadata an IdP administrator
//! uploads (Entra: "Upload metadata file"), for the endpoint at `--url`,
//! with the `entity_id` and `assertion_consumer_service_url` overrides of
//! the policy's `saml` action when one is given, and its certificates. The same document is
//! served at `/ngrok/saml` on the endpoint.

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_policy::yaml::NodeKind;

/// `portcullis saml-metadata`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The endpoint's public URL, as users reach it
    /// (`https://app.example.com`).
    #[arg(long, value_name = "URL")]
    url: String,
    /// A policy with a `saml` action, whose overrides apply.
    #[arg(long, value_name = "FILE")]
    traffic_policy_file: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let origin = args.url.trim_end_matches('/');
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    if host.is_empty() || host.contains(['/', '?', '#', ' ']) {
        anyhow::bail!("--url must be an origin, such as https://app.example.com");
    }
    let (mut signing, mut encryption) = (None, None);
    let (mut entity_id, mut acs) = (
        format!("{origin}{}", portcullis_actions::SAML_METADATA_PATH),
        format!("{origin}{}", portcullis_actions::SAML_ACS_PATH),
    );
    if let Some(path) = &args.traffic_policy_file {
        let src = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let (policy, diags) = portcullis_policy::check(&src);
        if diags.iter().any(portcullis_cel::Diagnostic::is_error) {
            anyhow::bail!(
                "{} has errors: run `portcullis lint {}`",
                path.display(),
                path.display()
            );
        }
        let saml = policy
            .phases
            .iter()
            .flat_map(|p| &p.rules)
            .flat_map(|r| &r.actions)
            .find(|a| a.kind == "saml")
            .ok_or_else(|| anyhow::anyhow!("{} has no `saml` action", path.display()))?;
        if let Some(NodeKind::Map(entries)) = saml.config.as_ref().map(|c| &c.kind) {
            for (k, v) in entries {
                let (Some(k), Some(v)) = (k.scalar(), v.scalar()) else {
                    continue;
                };
                match k.value.as_str() {
                    "entity_id" => entity_id = v.value.clone(),
                    "assertion_consumer_service_url" => acs = v.value.clone(),
                    "request_signing_certificate" => {
                        signing = Some(portcullis_actions::saml_certificate_base64(&v.value));
                    }
                    "decryption_certificate" => {
                        encryption = Some(portcullis_actions::saml_certificate_base64(&v.value));
                    }
                    _ => {}
                }
            }
        }
    }
    let xml = portcullis_actions::saml_sp_metadata(&portcullis_actions::SamlSpMetadata {
        entity_id: &entity_id,
        acs_url: &acs,
        signing_certificate: signing.as_deref(),
        encryption_certificate: encryption.as_deref(),
    });
    super::print(xml.trim_end());
    Ok(ExitCode::SUCCESS)
}
