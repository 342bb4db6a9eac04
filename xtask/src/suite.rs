//! `cargo xtask test`: the workspace's tests on SQLite, then on PostgreSQL.
//!
//! The storage test harness reads `PLYSTRA_TEST_BACKEND`; PostgreSQL runs also read
//! `PLYSTRA_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), which is
//! passed through from the environment untouched.

use std::path::Path;

use anyhow::Result;

use crate::process;

/// The database backends the tests run against.
pub const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

/// Runs the whole workspace's tests against one backend; the runner's output is shown as is.
pub fn run(root: &Path, backend: &str) -> Result<bool> {
    let nextest = process::cargo(root, &["nextest", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    let args: &[&str] = if nextest {
        &["nextest", "run", "--workspace", "--no-fail-fast"]
    } else {
        println!("cargo-nextest is not installed; falling back to cargo test");
        &["test", "--workspace", "--no-fail-fast"]
    };
    let mut command = process::cargo(root, args);
    command.env("PLYSTRA_TEST_BACKEND", backend);
    process::status(command)
}

/// Runs the tests on every backend, all of them even when one fails.
pub fn run_all(root: &Path) -> Result<bool> {
    let mut ok = true;
    for backend in BACKENDS {
        ok &= run(root, backend)?;
    }
    Ok(ok)
}
