//! Kubernetes manifests as policy input: the ngrok operator's resources
//! that carry a Traffic Policy, one or many per file (`---` between them),
//! so that `portcullis lint` checks the manifests a team applies, and the
//! proxy runs the policy one of them holds.
//!
//! - `NgrokTrafficPolicy`: the policy is `spec.policy`.
//! - `AgentEndpoint`: `spec.trafficPolicy.inline`, or a reference to an
//!   `NgrokTrafficPolicy` by name in `spec.trafficPolicy.targetRef.name`.
//! - `CloudEndpoint`: `spec.trafficPolicy.policy`, or a reference in
//!   `spec.trafficPolicyName`.
//!
//! Other resources (a `Deployment`, a `Service`) are passed over. The
//! policies are nodes of the file's own tree, so every diagnostic points
//! into the manifest, at the policy's line. A reference to a policy that
//! is not in the file is a warning: it is checked where it is.

use portcullis_cel::{Diagnostic, Span};

use crate::code;
use crate::yaml::{Node, NodeKind};

/// The API group of the ngrok operator's resources.
const GROUP: &str = "ngrok.k8s.ngrok.com/";

/// A policy found in a manifest.
#[derive(Clone, Debug)]
pub struct Embedded<'a> {
    /// The resource that holds it: `AgentEndpoint/api`.
    pub resource: String,
    /// The policy document.
    pub policy: &'a Node,
}

/// What a file's documents are.
#[derive(Debug)]
pub enum Input<'a> {
    /// Not a manifest: the file is a policy document.
    Policy,
    /// A manifest: the policies its resources carry, and what is wrong
    /// with the resources themselves.
    Manifest(Vec<Embedded<'a>>, Vec<Diagnostic>),
}

fn path<'n>(node: &'n Node, keys: &[&str]) -> Option<&'n Node> {
    keys.iter().try_fold(node, |n, k| n.get(k))
}

fn text<'n>(node: &'n Node, keys: &[&str]) -> Option<&'n str> {
    path(node, keys)?.scalar().map(|s| s.value.as_str())
}

/// Whether `root` is a Kubernetes resource: a map with `apiVersion` and
/// `kind`.
fn is_resource(root: &Node) -> bool {
    text(root, &["apiVersion"]).is_some() && text(root, &["kind"]).is_some()
}

/// Reads the documents of a file. A file is a manifest when one of its
/// documents is a Kubernetes resource.
pub fn read(roots: &[Node]) -> Input<'_> {
    if !roots.iter().any(is_resource) {
        return Input::Policy;
    }
    let mut found = Vec::new();
    let mut diags = Vec::new();
    let policies: Vec<&str> = roots
        .iter()
        .filter(|r| text(r, &["kind"]) == Some("NgrokTrafficPolicy"))
        .filter_map(|r| text(r, &["metadata", "name"]))
        .collect();
    for root in roots {
        if !is_resource(root) {
            diags.push(
                Diagnostic::error(
                    code::MANIFEST,
                    head(root),
                    "this document is not a Kubernetes resource",
                )
                .with_help("each document of a manifest has `apiVersion` and `kind`"),
            );
            continue;
        }
        let api = text(root, &["apiVersion"]).unwrap_or("");
        let kind = text(root, &["kind"]).unwrap_or("");
        if !api.starts_with(GROUP) {
            continue;
        }
        let name = text(root, &["metadata", "name"]).unwrap_or("");
        let resource = format!("{kind}/{name}");
        let (inline, reference): (&[&str], &[&str]) = match kind {
            "NgrokTrafficPolicy" => (&["spec", "policy"], &[]),
            "AgentEndpoint" => (
                &["spec", "trafficPolicy", "inline"],
                &["spec", "trafficPolicy", "targetRef", "name"],
            ),
            "CloudEndpoint" => (
                &["spec", "trafficPolicy", "policy"],
                &["spec", "trafficPolicyName"],
            ),
            _ => continue,
        };
        if let Some(policy) = path(root, inline) {
            found.push(Embedded { resource, policy });
            continue;
        }
        if !reference.is_empty()
            && let Some(target) = path(root, reference)
        {
            let target_name = target.scalar().map_or("", |s| s.value.as_str());
            if !policies.contains(&target_name) {
                diags.push(
                    Diagnostic::warning(
                        code::lint::MANIFEST_REFERENCE,
                        target.span,
                        format!(
                            "`{resource}` uses the NgrokTrafficPolicy `{target_name}`, which is not in this file"
                        ),
                    )
                    .with_help("that policy is checked where it is; lint its file too"),
                );
            }
            continue;
        }
        if kind == "NgrokTrafficPolicy" {
            diags.push(
                Diagnostic::error(
                    code::MANIFEST,
                    head(root),
                    format!("`{resource}` has no `spec.policy`"),
                )
                .with_help("an NgrokTrafficPolicy carries its policy in `spec.policy`"),
            );
        }
    }
    Input::Manifest(found, diags)
}

/// The first line of a node, for a diagnostic about all of it.
fn head(node: &Node) -> Span {
    match &node.kind {
        NodeKind::Map(entries) => entries.first().map_or(node.span, |(k, _)| k.span),
        _ => node.span,
    }
}
