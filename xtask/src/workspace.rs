//! The workspace as the checks see it: cargo metadata, member crates and their Rust files.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cargo_metadata::{CargoOpt, Metadata, MetadataCommand};

/// Runs `cargo metadata` on the workspace at `root`: with the full resolve graph (all features)
/// when `resolve` is set, `--no-deps` otherwise.
pub fn metadata(root: &Path, resolve: bool) -> Result<Metadata> {
    let mut command = MetadataCommand::new();
    command.manifest_path(root.join("Cargo.toml"));
    if resolve {
        command.features(CargoOpt::AllFeatures);
    } else {
        command.no_deps();
    }
    command
        .exec()
        .with_context(|| format!("cargo metadata failed in {}", root.display()))
}

/// The path of the workspace's binary `name` in the debug profile, built first as the test step
/// builds it: `cargo build --workspace --tests`, every member with the features of its
/// dev-dependencies unified in. Inside `verify`, after the tests, that build is already fresh.
/// Building one package instead (`cargo run -p plystrad`) would unify the dependencies' features
/// differently and compile much of the dependency tree a second time (over two minutes here).
pub fn built_binary(root: &Path, name: &str) -> Result<PathBuf> {
    let build = crate::process::cargo(root, &["build", "-q", "--workspace", "--tests"]);
    if !crate::process::status(build)? {
        anyhow::bail!("the workspace did not build");
    }
    let target = metadata(root, false)?.target_directory.into_std_path_buf();
    Ok(target.join("debug").join(name))
}

/// A workspace member crate.
#[derive(Debug, Clone)]
pub struct Member {
    /// The directory that holds its `Cargo.toml`.
    pub dir: PathBuf,
    /// Its `Cargo.toml`.
    pub manifest: PathBuf,
}

/// The workspace members, sorted by directory.
pub fn members(metadata: &Metadata) -> Vec<Member> {
    let mut members: Vec<Member> = metadata
        .workspace_packages()
        .into_iter()
        .map(|package| {
            let manifest = package.manifest_path.clone().into_std_path_buf();
            let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
            Member { dir, manifest }
        })
        .collect();
    members.sort_by(|a, b| a.dir.cmp(&b.dir));
    members
}

/// Whether `manifest` lies under `<root>/system/`: such packages may use the privileged path.
pub fn is_system(root: &Path, manifest: &Path) -> bool {
    manifest.starts_with(root.join("system"))
}

/// Every `.rs` file under a crate directory, sorted. Skips `target/`, `fixtures/`, hidden
/// directories and nested packages (directories with their own `Cargo.toml`).
pub fn rust_files(crate_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    collect(crate_dir, true, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect(dir: &Path, top: bool, files: &mut Vec<PathBuf>) -> Result<()> {
    if !top && dir.join("Cargo.toml").exists() {
        return Ok(());
    }
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !(name == "target" || name == "fixtures" || name.starts_with('.')) {
                collect(&path, false, files)?;
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_files_skip_target_fixtures_and_nested_packages() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "src/lib.rs",
            "src/a/b.rs",
            "tests/t.rs",
            "target/x.rs",
            "fixtures/f.rs",
            "nested/src/lib.rs",
        ] {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        fs::write(root.join("nested/Cargo.toml"), "").unwrap();
        let files: Vec<PathBuf> = rust_files(root)
            .unwrap()
            .iter()
            .map(|f| crate::finding::relative(root, f))
            .collect();
        let expected: Vec<PathBuf> = ["src/a/b.rs", "src/lib.rs", "tests/t.rs"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(files, expected);
    }

    #[test]
    fn system_is_the_system_directory_only() {
        let root = Path::new("/w");
        assert!(is_system(root, Path::new("/w/system/Cargo.toml")));
        assert!(is_system(root, Path::new("/w/system/audit/Cargo.toml")));
        assert!(!is_system(root, Path::new("/w/systemic/Cargo.toml")));
        assert!(!is_system(root, Path::new("/w/kernel/Cargo.toml")));
    }
}
