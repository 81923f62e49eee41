//! `portcullis lsp` driven by a real language-server client (the
//! protocol library VS Code uses, `tests/editor/portcullis_lsp.mjs`):
//! lint's diagnostics on open and gone on the fix, hover on a variable, an
//! action type and a config field, completion of a variable's next part,
//! and the definition of a `vars.x`.

use std::process::{Command, Stdio};

#[test]
fn an_editor_gets_diagnostics_hover_completion_and_definitions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(root.join("tests/editor/portcullis_lsp.mjs"))
        .arg(env!("CARGO_BIN_EXE_portcullis"))
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs tests/editor/portcullis_lsp.mjs (npm ci --prefix tests/editor)");
    assert!(out.status.success(), "the client failed");
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");

    // The misspelled variable, as lint reports it: code, range, help.
    let diags = got["opened"]["diagnostics"]
        .as_array()
        .expect("diagnostics");
    assert_eq!(diags.len(), 1, "{got:#}");
    assert_eq!(diags[0]["code"], "E0010");
    assert_eq!(diags[0]["severity"], 1);
    assert_eq!(diags[0]["range"]["start"]["line"], 7);
    assert_eq!(diags[0]["range"]["start"]["character"], 32);
    assert_eq!(diags[0]["range"]["end"]["character"], 42);
    assert!(
        diags[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did you mean `req.method`?")),
        "{got:#}"
    );
    // Fixed: nothing left to say.
    assert_eq!(got["changed"]["diagnostics"], serde_json::json!([]));

    let hover = |k: &str| {
        got[k]["contents"]["value"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        hover("hover_variable").contains("**`req.method`** `string`"),
        "{got:#}"
    );
    assert!(
        hover("hover_action").contains("**`rate-limit`** action")
            && hover("hover_action").contains("`capacity` (required)"),
        "{got:#}"
    );
    assert!(hover("hover_field").contains("integer"), "{got:#}");

    // `vars.tier` is set on line 6 (0-based 5), at `tier`.
    assert_eq!(got["definition"]["range"]["start"]["line"], 5);
    assert_eq!(got["definition"]["range"]["start"]["character"], 14);

    let labels: Vec<&str> = got["completion"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["label"].as_str())
        .collect();
    for want in ["path", "query", "host", "scheme"] {
        assert!(labels.contains(&want), "{labels:?}");
    }
    assert!(!labels.contains(&"method"), "{labels:?}");
}
