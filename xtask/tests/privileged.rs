//! Fixture tests for `cargo xtask privileged`: each way around the privileged rule, built as a
//! throwaway crate outside `system/` of a temporary workspace, makes the check fail with a
//! located `path:line: rule-id: message`; the same workspace without it, and the real one, pass.

#![allow(
    clippy::unwrap_used,
    reason = "a test's helpers unwrap as its test functions do: a panic is a failed test"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/privileged")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

/// A temporary workspace: `base/` plus the crates of `cases/<case>`, all members.
fn workspace(case: Option<&str>) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("base"), dir.path());
    let mut members = vec![
        "system".to_owned(),
        "system/privileged".to_owned(),
        "app".to_owned(),
    ];
    if let Some(case) = case {
        let crates = fixtures().join("cases").join(case);
        for entry in fs::read_dir(&crates).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            copy_dir(&path, &dir.path().join(&name));
            members.extend(crate_dirs(&path, &name));
        }
    }
    let members: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    let manifest = format!(
        "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
        members.join(", ")
    );
    fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    dir
}

/// The crates under `dir` (copied as `prefix`): itself when it has a manifest, else the crates
/// in its subdirectories (a case may place a crate at a nested path such as `examples/notes`).
fn crate_dirs(dir: &Path, prefix: &str) -> Vec<String> {
    if dir.join("Cargo.toml").is_file() {
        return vec![prefix.to_owned()];
    }
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            crate_dirs(&p, &format!("{prefix}/{name}"))
        })
        .collect()
}

/// Runs `cargo xtask privileged --root <root>`: whether it passed, and what it printed.
fn privileged(root: &Path) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(["privileged", "--root"]).arg(root);
    outcome(command)
}

/// Runs `cargo xtask privileged` with no `--root`, from `dir`: whether it passed, and what it
/// printed.
fn privileged_from(dir: &Path) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("privileged").current_dir(dir);
    outcome(command)
}

/// Whether `command` passed, and what it printed on both streams.
fn outcome(mut command: Command) -> (bool, String) {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Asserts that the check fails on `case` and prints a line starting with `located`.
fn fails_with(case: &str, located: &[&str]) {
    let dir = workspace(Some(case));
    let (passed, output) = privileged(dir.path());
    assert!(!passed, "case `{case}` passed:\n{output}");
    for prefix in located {
        assert!(
            output.lines().any(|line| line.starts_with(prefix)),
            "case `{case}`: no line starting with `{prefix}` in:\n{output}"
        );
    }
}

#[test]
fn the_base_fixture_is_clean() {
    let dir = workspace(None);
    let (passed, output) = privileged(dir.path());
    assert!(passed, "{output}");
    assert!(output.contains("privileged: ok"), "{output}");
}

#[test]
fn the_real_workspace_is_clean() {
    let (passed, output) = privileged(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    assert!(passed, "{output}");
}

#[test]
fn a_direct_dependency_is_caught() {
    fails_with(
        "direct",
        &[
            "direct/Cargo.toml:8: privileged-dependency: `fixture-direct` depends on `plystra-privileged` as a normal dependency",
        ],
    );
}

#[test]
fn a_renamed_dev_dependency_is_caught() {
    fails_with(
        "renamed",
        &[
            "renamed/Cargo.toml:8: privileged-dependency: `fixture-renamed` depends on `plystra-privileged` (renamed `seal`) as a dev dependency",
        ],
    );
}

#[test]
fn a_transitive_dependency_through_a_non_system_crate_is_caught() {
    fails_with(
        "transitive",
        &[
            "consumer/Cargo.toml:8: privileged-dependency: `fixture-consumer` reaches `plystra-privileged` through a non-system crate (fixture-consumer -> fixture-shim -> plystra-privileged)",
            "shim/Cargo.toml:8: privileged-dependency: `fixture-shim` depends on",
        ],
    );
}

#[test]
fn the_example_plugin_cannot_become_privileged() {
    fails_with(
        "plugin",
        &[
            "examples/notes/Cargo.toml:8: privileged-dependency: `plystra-example-notes` depends on `plystra-privileged` as a normal dependency",
            "examples/notes/src/lib.rs:5: privileged-literal: ",
        ],
    );
}

#[test]
fn a_hand_written_privileged_manifest_is_caught() {
    fails_with("literal", &["literal/src/lib.rs:5: privileged-literal: "]);
}

#[test]
fn a_macro_called_through_an_alias_is_caught() {
    fails_with(
        "alias",
        &[
            "alias/src/lib.rs:3: privileged-hidden-api: `plystra_privileged`",
            "alias/src/lib.rs:3: privileged-hidden-api: `register_system_capability`",
            "alias/src/lib.rs:5: privileged-macro: `reg!` (an alias of a privileged macro)",
        ],
    );
}

#[test]
fn a_macro_nested_in_another_macro_is_caught() {
    fails_with(
        "nested",
        &["nested/src/lib.rs:9: privileged-macro: `register_system_capability!`"],
    );
}

#[test]
fn a_file_that_does_not_parse_fails_the_check() {
    let dir = workspace(None);
    fs::write(dir.path().join("app/src/broken.rs"), "//! Broken.\nfn (\n").unwrap();
    let (passed, output) = privileged(dir.path());
    assert!(!passed, "{output}");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("app/src/broken.rs:2: parse-error: ")),
        "{output}"
    );
}

/// Copies a source tree, leaving out build output, installed packages and hidden directories.
fn copy_sources(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let target = to.join(&name);
        if path.is_dir() {
            if !(name == "target" || name == "node_modules" || name.starts_with('.')) {
                copy_sources(&path, &target);
            }
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

/// This binary was built from this repository; run from another workspace (here from one of its
/// subdirectories) without `--root`, it checks that workspace, not the one it was built from.
#[test]
fn without_root_the_workspace_of_the_current_directory_is_checked() {
    let dir = workspace(Some("direct"));
    let (passed, output) = privileged_from(&dir.path().join("app/src"));
    assert!(!passed, "the fixture's violation went unseen:\n{output}");
    assert!(
        output
            .lines()
            .any(|l| l.starts_with("direct/Cargo.toml:8: privileged-dependency: ")),
        "{output}"
    );
}

/// The case that went unseen: a copy of the repository, checked by the xtask already built for
/// the original (a shared target directory), with a copy of `system/audit` placed outside
/// `system/` and added to the workspace.
#[test]
fn a_copied_repository_is_checked_where_it_lies() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let copy = tempfile::tempdir().unwrap();
    copy_sources(&repository, copy.path());
    let (passed, output) = privileged_from(copy.path());
    assert!(passed, "the copy as it is must pass:\n{output}");

    let outside = copy.path().join("audit_outside");
    copy_dir(&copy.path().join("system/audit"), &outside);
    let manifest = outside.join("Cargo.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let text = text.replacen(
        "name = \"plystra-system-audit\"",
        "name = \"plystra-system-audit-outside\"",
        1,
    );
    assert!(text.contains("plystra-system-audit-outside"), "{text}");
    fs::write(&manifest, text).unwrap();
    let workspace_manifest = copy.path().join("Cargo.toml");
    let text = fs::read_to_string(&workspace_manifest).unwrap();
    let text = text.replacen("members = [", "members = [\"audit_outside\", ", 1);
    fs::write(&workspace_manifest, text).unwrap();

    let (passed, output) = privileged_from(copy.path());
    assert!(
        !passed,
        "a privileged crate outside system/ passed:\n{output}"
    );
    assert!(
        output.lines().any(|l| l.starts_with("audit_outside/")),
        "the finding is not located in the copy:\n{output}"
    );
}
