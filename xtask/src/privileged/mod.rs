//! `cargo xtask privileged`: only `system/` may reach the privileged registration path.
//!
//! Layer 1, the crate boundary, is `plystra-privileged` itself plus the compile-fail tests in
//! `contracts/tests`. This module runs the two layers that need the whole workspace:
//! [`deps`] (dependency edges from `cargo metadata`) and [`scan`] (a syn source scan).

pub mod deps;
pub mod scan;

use std::path::Path;

use anyhow::Result;

use crate::finding::{self, Finding};
use crate::workspace;

/// Every privileged-rule finding in the workspace at `root`.
pub fn check(root: &Path) -> Result<Vec<Finding>> {
    let metadata = workspace::metadata(root, true)?;
    let root = metadata.workspace_root.as_std_path();
    let mut findings = deps::check(&metadata)?;
    findings.extend(scan::check(root, &workspace::members(&metadata))?);
    Ok(findings)
}

/// Runs the check and prints its findings; true when there are none.
pub fn run(root: &Path) -> Result<bool> {
    Ok(finding::report("privileged", check(root)?))
}
