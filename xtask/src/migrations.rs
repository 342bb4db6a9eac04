//! `cargo xtask migrations [--check]`: migration checksums, through `plystractl migrate hash`.
//!
//! `plystractl` owns the rules (checksum files `migrations/{sqlite,postgres}/plystra.sum` match
//! the SQL files; each file stays within a namespace its capability owns) and prints what is
//! wrong and how to fix it; this step runs it and adds the xtask command to run.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::{process, workspace};

/// Rewrites the checksum files, or with `check` verifies them.
pub fn run(root: &Path, check: bool) -> Result<bool> {
    let mut command = Command::new(workspace::built_binary(root, "plystractl")?);
    command.args(["migrate", "hash"]).current_dir(root);
    if check {
        command.arg("--check");
    }
    let ok = process::status(command)?;
    if !ok {
        if check {
            println!(
                "migrations: `plystractl migrate hash --check` failed (see above); on drift, run `cargo xtask migrations` and commit migrations/"
            );
        } else {
            println!("migrations: `plystractl migrate hash` failed");
        }
    }
    Ok(ok)
}
