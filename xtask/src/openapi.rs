//! `cargo xtask openapi [--check]`: the committed OpenAPI documents against what `plystrad
//! openapi` prints.
//!
//! Without `--check` it writes `openapi/plystra.v<version>.{json,yaml}`; with it, it compares
//! byte for byte and, on a difference, names the file and its first differing line.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use toml::Value;

use crate::{cargo_toml, process, workspace};

/// The formats `plystrad openapi --format` prints, which are also the file extensions.
const FORMATS: [&str; 2] = ["json", "yaml"];

/// Writes the documents, or with `check` compares them; true when nothing differs.
pub fn run(root: &Path, check: bool) -> Result<bool> {
    let (_, manifest) = cargo_toml::read(&root.join("Cargo.toml"))?;
    let version = manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(Value::as_str)
        .context("no [workspace.package] version in Cargo.toml")?;
    let plystrad = workspace::built_binary(root, "plystrad")?;
    let mut ok = true;
    for format in FORMATS {
        let relative = format!("openapi/plystra.v{version}.{format}");
        let path = root.join(&relative);
        let mut command = Command::new(&plystrad);
        command
            .args(["openapi", "--format", format])
            .current_dir(root);
        let output = process::stdout(command)?;
        if !output.status.success() {
            println!(
                "openapi: `plystrad openapi --format {format}` failed ({})",
                output.status
            );
            ok = false;
            continue;
        }
        if !check {
            fs::create_dir_all(path.parent().unwrap_or(root))?;
            fs::write(&path, &output.stdout).with_context(|| format!("writing {relative}"))?;
            println!("openapi: wrote {relative}");
            continue;
        }
        let committed = match fs::read(&path) {
            Ok(committed) => committed,
            Err(_) => {
                println!("openapi: {relative} is missing");
                println!("run `cargo xtask openapi` and commit openapi/");
                ok = false;
                continue;
            }
        };
        if committed != output.stdout {
            let committed = String::from_utf8_lossy(&committed);
            let generated = String::from_utf8_lossy(&output.stdout);
            println!("openapi: {relative} differs from `plystrad openapi --format {format}`");
            if let Some(difference) = first_difference(&committed, &generated) {
                println!("{difference}");
            }
            println!("run `cargo xtask openapi` and commit openapi/");
            ok = false;
        } else {
            println!("openapi: {relative} is up to date");
        }
    }
    Ok(ok)
}

/// The first line where `committed` and `generated` differ, described; `None` when equal.
pub fn first_difference(committed: &str, generated: &str) -> Option<String> {
    if committed == generated {
        return None;
    }
    let mut old = committed.split_inclusive('\n');
    let mut new = generated.split_inclusive('\n');
    let mut line = 1;
    loop {
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => {
                let show = |side: Option<&str>| match side {
                    Some(text) => format!("{:?}", text),
                    None => "(end of file)".to_owned(),
                };
                return Some(format!(
                    "  first difference at line {line}:\n    committed: {}\n    generated: {}",
                    show(a),
                    show(b)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_first_differing_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        let difference = first_difference("a\nb\nc\n", "a\nB\nc\n").unwrap();
        assert!(difference.contains("line 2"), "{difference}");
        assert!(difference.contains("\"b\\n\"") && difference.contains("\"B\\n\""));
    }

    #[test]
    fn a_missing_trailing_newline_or_line_is_a_difference() {
        assert!(first_difference("a\n", "a").unwrap().contains("line 1"));
        let difference = first_difference("a\n", "a\nb\n").unwrap();
        assert!(difference.contains("line 2") && difference.contains("(end of file)"));
    }
}
