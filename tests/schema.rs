//! `portcullis schema`: the JSON Schema of the policy format, read back
//! from the binary and applied with a JSON Schema validator (boon, draft
//! 2020-12): every shipped policy and every valid corpus file validates,
//! and every corpus file lint rejects for its structure (an unknown phase,
//! field or action type, a missing field) does not. Then as an editor
//! applies it: the YAML language server (`tests/editor`) underlines a
//! misspelled field of a policy that names the schema, and nothing in one
//! that is right.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use portcullis_policy::yaml::{self, Node};
use serde_json::Value;

/// The schema, as the binary prints it.
fn schema() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("schema")
        .output()
        .expect("portcullis schema runs");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn new() -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let url = "http://localhost/traffic-policy.schema.json";
        compiler
            .add_resource(url, schema())
            .expect("the schema is a resource");
        let index = compiler
            .compile(url, &mut schemas)
            .expect("the schema compiles as draft 2020-12");
        Validator { schemas, index }
    }

    fn errors(&self, doc: &Value) -> Option<String> {
        self.schemas
            .validate(doc, self.index)
            .err()
            .map(|e| format!("{e:#}"))
    }
}

fn document(path: &Path) -> Option<Value> {
    let src = std::fs::read_to_string(path).expect("readable");
    // Kubernetes manifests carry a policy inside a resource: not this
    // schema's document.
    if src.contains("apiVersion:") {
        return None;
    }
    let (root, diags) = yaml::parse(&src);
    if !diags.is_empty() {
        return None;
    }
    root.as_ref().map(Node::to_json)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    out
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_shipped_and_valid_policy_validates() {
    let v = Validator::new();
    let mut n = 0;
    for dir in ["policies", "crates/policy/tests/data/ok"] {
        for path in files(&root().join(dir)) {
            if path.to_string_lossy().contains(".test.") {
                continue;
            }
            let Some(doc) = document(&path) else { continue };
            if let Some(e) = v.errors(&doc) {
                panic!("{} does not validate:\n{e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n > 30, "{n} files");
}

/// The structural codes: what a schema can say.
const STRUCTURAL: &[&str] = &[
    "E0102", // unknown phase
    "E0105", // unknown field
    "E0106", // missing field
    "E0107", // unknown action type
];

#[test]
fn what_lint_rejects_for_its_structure_the_schema_rejects() {
    let v = Validator::new();
    let mut n = 0;
    for path in files(&root().join("crates/policy/tests/data/err")) {
        let src = std::fs::read_to_string(&path).expect("readable");
        let Some(doc) = document(&path) else { continue };
        let (_, diags) = portcullis_policy::check(&src);
        let structural: Vec<_> = diags
            .iter()
            .filter(|d| STRUCTURAL.contains(&d.code))
            .collect();
        if structural.is_empty() {
            continue;
        }
        assert!(
            v.errors(&doc).is_some(),
            "{} validates, yet lint says {:?}",
            path.display(),
            structural.iter().map(|d| &d.message).collect::<Vec<_>>()
        );
        n += 1;
    }
    assert!(n >= 5, "only {n} structural error files");
}

#[test]
fn a_misspelled_config_field_is_an_error_naming_it() {
    let v = Validator::new();
    let (root, _) = yaml::parse(
        "on_http_request:\n  - actions:\n      - type: deny\n        config:\n          status_cod: 404\n",
    );
    let e = v
        .errors(&root.expect("a document").to_json())
        .expect("invalid");
    assert!(e.contains("status_cod"), "{e}");
    let (root, _) = yaml::parse(
        "on_http_request:\n  - actions:\n      - type: rate-limit\n        config:\n          name: r\n          algorithm: sliding_window\n          capacity: 10\n          rate: 60s\n          bucket_key: ['conn.client_ip']\n",
    );
    assert_eq!(v.errors(&root.expect("a document").to_json()), None);
}

/// What the YAML language server says of `policy`, the schema named on
/// its first line: its diagnostics as JSON.
fn language_server(dir: &Path, name: &str, policy: &str) -> Vec<Value> {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("# yaml-language-server: $schema=./traffic-policy.schema.json\n{policy}"),
    )
    .expect("write");
    let out = Command::new("node")
        .arg(root().join("tests/editor/lsp.mjs"))
        .arg(&path)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs tests/editor/lsp.mjs (npm ci --prefix tests/editor)");
    assert!(out.status.success(), "the language server said nothing");
    serde_json::from_slice(&out.stdout).expect("diagnostics as JSON")
}

#[test]
fn the_yaml_language_server_checks_a_policy_against_the_schema() {
    let dir = std::env::temp_dir().join(format!("portcullis-editor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("traffic-policy.schema.json"),
        serde_json::to_string(&schema()).expect("json"),
    )
    .expect("write schema");
    let diags = language_server(
        &dir,
        "bad.yml",
        "on_http_request:\n  - actions:\n      - type: deny\n        config:\n          status_cod: 404\n",
    );
    let said: Vec<String> = diags
        .iter()
        .map(|d| d["message"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(said.iter().any(|m| m.contains("status_cod")), "{diags:#?}");
    // Underlined where it is: line 6 (0-based 5), the key's columns.
    let d = diags
        .iter()
        .find(|d| {
            d["message"]
                .as_str()
                .is_some_and(|m| m.contains("status_cod"))
        })
        .expect("the misspelled field");
    assert_eq!(d["range"]["start"]["line"], 5);
    assert_eq!(d["range"]["start"]["character"], 10);

    let good = std::fs::read_to_string(root().join("policies/rate-limit-per-ip.yaml"))
        .expect("a shipped policy");
    let diags = language_server(&dir, "good.yml", &good);
    assert!(diags.is_empty(), "{diags:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
