//! Embeds the vendored Core Rule Set (`crs/rules`) in the library, so a
//! built binary carries the rules it runs.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let rules = root.join("crs").join("rules");
    println!("cargo::rerun-if-changed={}", rules.display());
    let mut names: Vec<String> = fs::read_dir(&rules)
        .expect("crs/rules is readable")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".conf") || n.ends_with(".data"))
        .collect();
    names.sort();
    let mut out = String::from("/// The Core Rule Set's files: name and contents.\n");
    out.push_str("pub(crate) static FILES: &[(&str, &[u8])] = &[\n");
    for name in &names {
        let path = rules.join(name);
        writeln!(
            out,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a string");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("crs_files.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}
