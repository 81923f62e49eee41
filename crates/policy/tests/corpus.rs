//! The policy corpus: every file under `tests/data/ok` checks clean, and
//! every file under `tests/data/err` yields exactly the diagnostics its
//! inline annotations describe, underlined text included:
//!
//! ```yaml
//! on_http_request:
//!   - actions:
//!       - type: deni
//! #             ^^^^ error[E0107]: unknown action type `deni`
//! ```
//!
//! A caret line is a YAML comment; its carets mark columns of the nearest
//! line above that is not itself an annotation, the `#` being column 0. To
//! mark from column 0, start with `#^`: the `#` then counts as a caret. A
//! span over several lines is marked on its first line. A new case is a
//! new file.

use std::path::{Path, PathBuf};

/// (line, first column, last column + 1, "severity[code]: message"), with
/// 1-based lines and 0-based character columns.
type Finding = (usize, usize, usize, String);

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no files in {}", dir.display());
    out
}

fn expected(src: &str) -> Vec<Finding> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('#') || !line.contains('^') {
            continue;
        }
        let Some(target) = (0..i).rev().find(|j| !is_annotation(lines[*j])) else {
            continue;
        };
        let chars: Vec<char> = line.chars().collect();
        let first = chars.iter().position(|c| *c == '^').expect("a caret");
        let end = first + chars[first..].iter().take_while(|c| **c == '^').count();
        let start = if line.starts_with("#^") { 0 } else { first };
        let text: String = chars[end..].iter().collect();
        out.push((target + 1, start, end, text.trim().to_string()));
    }
    out
}

fn is_annotation(line: &str) -> bool {
    line.trim_start().starts_with('#') && line.contains('^')
}

fn actual(src: &str) -> Vec<Finding> {
    let (_, diags) = portcullis_policy::check(src);
    diags
        .iter()
        .map(|d| {
            let before = &src[..d.span.start as usize];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let start = src[line_start..d.span.start as usize].chars().count();
            let end_byte = (d.span.end as usize).min(
                line_start
                    + src[line_start..]
                        .find('\n')
                        .unwrap_or(src.len() - line_start),
            );
            let end = start
                + src[d.span.start as usize..end_byte.max(d.span.start as usize)]
                    .chars()
                    .count();
            let sev = if d.is_error() { "error" } else { "warning" };
            (
                line,
                start,
                end.max(start + 1),
                format!("{sev}[{}]: {}", d.code, d.message),
            )
        })
        .collect()
}

/// The findings of `src`, less those that say what the deployment must
/// provide (`deployment-data`, `deployment-credentials`): statements about
/// where a value comes from, not problems of the policy.
fn problems(src: &str) -> Vec<portcullis_cel::Diagnostic> {
    let (_, diags) = portcullis_policy::check(src);
    diags
        .into_iter()
        .filter(|d| !d.code.starts_with("deployment-"))
        .collect()
}

#[test]
fn ok_files_check_clean() {
    for path in files("ok") {
        let src = std::fs::read_to_string(&path).expect("readable");
        let diags = problems(&src);
        assert!(diags.is_empty(), "{}: {diags:#?}", path.display());
    }
}

#[test]
fn err_files_yield_their_annotations() {
    for path in files("err") {
        let src = std::fs::read_to_string(&path).expect("readable");
        let (mut want, mut got) = (expected(&src), actual(&src));
        assert!(!want.is_empty(), "{}: no annotations", path.display());
        want.sort();
        got.sort();
        assert_eq!(got, want, "{}", path.display());
    }
}

/// The examples users copy check clean too.
#[test]
fn shipped_policies_check_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("policies folder").flatten() {
        // `x.test.yml` beside `x.yml` is `portcullis test`'s.
        if entry.file_name().to_string_lossy().contains(".test.") {
            continue;
        }
        let src = std::fs::read_to_string(entry.path()).expect("readable");
        let diags = problems(&src);
        assert!(diags.is_empty(), "{}: {diags:#?}", entry.path().display());
        n += 1;
    }
    assert!(n > 0);
}
