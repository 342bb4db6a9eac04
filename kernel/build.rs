//! Embeds the migration files of `../migrations/{sqlite,postgres}` into the kernel binary: writes
//! `$OUT_DIR/embedded_migrations.rs`, a table of `include_str!` entries, and asks Cargo to rerun
//! whenever a file there changes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("..").join("migrations");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut files = String::from("&[\n");
    let mut sums = String::from("&[\n");
    for dialect in ["sqlite", "postgres"] {
        let dir = root.join(dialect);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(read) => read.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        };
        entries.sort();
        for path in entries {
            println!("cargo:rerun-if-changed={}", path.display());
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".sql") {
                writeln!(
                    files,
                    "    ({dialect:?}, {name:?}, include_str!({:?})),",
                    absolute(&path)
                )
                .expect("write to string");
            } else if name == "plystra.sum" {
                writeln!(
                    sums,
                    "    ({dialect:?}, include_str!({:?})),",
                    absolute(&path)
                )
                .expect("write to string");
            }
        }
    }
    files.push(']');
    sums.push(']');

    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_migrations.rs");
    let code = format!(
        "/// `(dialect, file name, contents)` of every embedded migration file.\n\
         pub(crate) static FILES: &[(&str, &str, &str)] = {files};\n\
         /// `(dialect, contents)` of every embedded `plystra.sum`.\n\
         pub(crate) static SUMS: &[(&str, &str)] = {sums};\n"
    );
    std::fs::write(out, code).expect("write embedded_migrations.rs");
}

fn absolute(path: &Path) -> String {
    path.canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
