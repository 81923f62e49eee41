//! Every diagnostic code and lint the crates declare (`// Diagnostic: E0xxx`
//! and `// Lint: name` comments, as rust-analyzer marks its diagnostics)
//! has a section in `docs/diagnostics.md`, and the document names no code
//! that does not exist.

use std::path::Path;

fn declared() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for file in ["crates/cel/src/diagnostic.rs", "crates/policy/src/lib.rs"] {
        let text = std::fs::read_to_string(root.join(file)).expect("source readable");
        for line in text.lines() {
            let line = line.trim();
            if let Some(code) = line
                .strip_prefix("// Diagnostic: ")
                .or_else(|| line.strip_prefix("// Lint: "))
            {
                out.push(code.trim().to_string());
            }
        }
    }
    assert!(out.len() > 20, "found only {out:?}");
    out
}

fn documented() -> Vec<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnostics.md"))
            .expect("docs/diagnostics.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| {
            if let Some(rest) = h.strip_prefix("Lint `") {
                rest.split('`').next().map(str::to_string)
            } else {
                h.split(':')
                    .next()
                    .filter(|c| c.starts_with('E'))
                    .map(str::to_string)
            }
        })
        .collect()
}

#[test]
fn every_code_is_documented_and_every_documented_code_exists() {
    let (declared, documented) = (declared(), documented());
    let missing: Vec<&String> = declared
        .iter()
        .filter(|c| !documented.contains(c))
        .collect();
    let stale: Vec<&String> = documented
        .iter()
        .filter(|c| !declared.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a section in docs/diagnostics.md: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "sections for codes that do not exist: {stale:?}"
    );
}
