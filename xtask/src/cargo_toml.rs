//! Reading `Cargo.toml` files: dependency entries as written, and the line each sits on.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use toml::{Table, Value};

/// The three dependency tables, as their section names.
pub const DEPENDENCY_TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];

/// Reads and parses a `Cargo.toml`, returning its text too (for line lookups).
pub fn read(path: &Path) -> Result<(String, Table)> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table = text
        .parse::<Table>()
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok((text, table))
}

/// One dependency as a member manifest writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyEntry {
    /// The key, which is the name used in code when the dependency is renamed.
    pub key: String,
    /// The package depended on (`package = ...`, or the key).
    pub package: String,
    /// `dependencies`, `dev-dependencies` or `build-dependencies`.
    pub table: &'static str,
    /// Whether it says `workspace = true`.
    pub workspace: bool,
    /// The version requirement written here, if any.
    pub version: Option<String>,
    /// The 1-based line of its declaration.
    pub line: usize,
}

/// Every dependency entry of a manifest, including `[target.'cfg(..)'.*]` tables.
pub fn dependencies(text: &str, manifest: &Table) -> Vec<DependencyEntry> {
    let mut tables: Vec<&Table> = vec![manifest];
    if let Some(Value::Table(targets)) = manifest.get("target") {
        tables.extend(targets.values().filter_map(Value::as_table));
    }
    let mut entries = Vec::new();
    for owner in tables {
        for kind in DEPENDENCY_TABLES {
            let Some(Value::Table(deps)) = owner.get(kind) else {
                continue;
            };
            for (key, value) in deps {
                let (workspace, package, version) = match value {
                    Value::String(version) => (false, None, Some(version.clone())),
                    Value::Table(spec) => (
                        spec.get("workspace")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        spec.get("package")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        spec.get("version")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    ),
                    _ => (false, None, None),
                };
                entries.push(DependencyEntry {
                    key: key.clone(),
                    package: package.unwrap_or_else(|| key.clone()),
                    table: kind,
                    workspace,
                    version,
                    line: dependency_line(text, kind, key),
                });
            }
        }
    }
    entries.sort_by_key(|entry| entry.line);
    entries
}

/// The 1-based line where `key` is declared in a `table` section (`dependencies`, …, also under
/// `[target.*]`), as `key = …`, `key.workspace = …` or `[table.key]`; 1 when not found.
pub fn dependency_line(text: &str, table: &str, key: &str) -> usize {
    let quoted = format!("\"{key}\"");
    let names_key = |rest: &str| {
        let rest = rest.trim_start();
        [key, quoted.as_str()].iter().any(|k| {
            rest.strip_prefix(k)
                .is_some_and(|after| matches!(after.trim_start().chars().next(), Some('=' | '.')))
        })
    };
    let mut in_table = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[') {
            let header = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            let section_is = |name: &str| name == table || name.ends_with(&format!(".{table}"));
            if section_is(header) {
                in_table = true;
                continue;
            }
            in_table = false;
            if let Some((section, dep)) = header.rsplit_once('.')
                && section_is(section)
                && (dep.trim() == key || dep.trim() == quoted)
            {
                return index + 1;
            }
            continue;
        }
        if in_table && names_key(trimmed) {
            return index + 1;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"[package]
name = "demo"

[dependencies]
serde.workspace = true
anyhow = "1"
priv = { package = "plystra-privileged", path = "../system/privileged" }

[dev-dependencies]
serde = { workspace = true, features = ["derive"] }

[dependencies.tokio]
version = "1"

[target.'cfg(unix)'.build-dependencies]
cc = "1"
"#;

    #[test]
    fn finds_each_entry_with_its_line() {
        let table = MANIFEST.parse::<Table>().unwrap();
        let entries = dependencies(MANIFEST, &table);
        let find = |table: &str, key: &str| {
            entries
                .iter()
                .find(|e| e.table == table && e.key == key)
                .cloned()
                .unwrap()
        };
        assert_eq!(find("dependencies", "serde").line, 5);
        assert!(find("dependencies", "serde").workspace);
        assert_eq!(find("dependencies", "anyhow").version.as_deref(), Some("1"));
        assert_eq!(find("dependencies", "priv").package, "plystra-privileged");
        assert_eq!(find("dependencies", "priv").line, 7);
        assert_eq!(find("dev-dependencies", "serde").line, 10);
        assert_eq!(find("dependencies", "tokio").line, 12);
        assert_eq!(find("build-dependencies", "cc").line, 16);
    }
}
