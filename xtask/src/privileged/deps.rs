//! Layer 2: dependency edges. Only packages under `system/` may depend on `plystra-privileged`,
//! by any dependency kind, under any name, directly or through a non-system crate.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use cargo_metadata::{DependencyKind, Metadata, Node, Package, PackageId};

use crate::cargo_toml;
use crate::finding::{Finding, relative};
use crate::workspace::is_system;

/// The package that holds the privileged registration path.
pub const PRIVILEGED_PACKAGE: &str = "plystra-privileged";

/// Checks every package of the resolve graph (members and dependencies alike).
///
/// From each package outside `system/`, it walks the graph through packages outside `system/`
/// (reaching a `system/` package ends the walk: depending on the bundle is allowed) and reports
/// the package if the walk reaches `plystra-privileged`.
pub fn check(metadata: &Metadata) -> Result<Vec<Finding>> {
    let root = metadata.workspace_root.as_std_path();
    let resolve = metadata
        .resolve
        .as_ref()
        .context("cargo metadata returned no resolve graph")?;
    let packages: HashMap<&PackageId, &Package> =
        metadata.packages.iter().map(|p| (&p.id, p)).collect();
    let nodes: HashMap<&PackageId, &Node> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let privileged = |id: &PackageId| packages[id].name.as_str() == PRIVILEGED_PACKAGE;
    let system = |id: &PackageId| is_system(root, packages[id].manifest_path.as_std_path());

    let mut findings = Vec::new();
    for node in &resolve.nodes {
        if system(&node.id) || privileged(&node.id) {
            continue;
        }
        let Some(chain) = path_to_privileged(&node.id, &nodes, &privileged, &system) else {
            continue;
        };
        let package = packages[&node.id];
        let first_hop = packages[chain[1]];
        findings.push(finding(root, package, first_hop, &chain, &packages, node));
    }
    Ok(findings)
}

/// The shortest chain `from → … → plystra-privileged` whose intermediate packages all lie
/// outside `system/`.
fn path_to_privileged<'a>(
    from: &'a PackageId,
    nodes: &HashMap<&'a PackageId, &'a Node>,
    privileged: &dyn Fn(&PackageId) -> bool,
    system: &dyn Fn(&PackageId) -> bool,
) -> Option<Vec<&'a PackageId>> {
    let mut came_from: HashMap<&PackageId, &PackageId> = HashMap::new();
    let mut seen: HashSet<&PackageId> = HashSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        for dep in nodes.get(id).map(|n| n.deps.as_slice()).unwrap_or_default() {
            if !seen.insert(&dep.pkg) {
                continue;
            }
            came_from.insert(&dep.pkg, id);
            if privileged(&dep.pkg) {
                let mut chain = vec![&dep.pkg];
                let mut at = &dep.pkg;
                while let Some(prev) = came_from.get(at) {
                    chain.push(prev);
                    at = prev;
                }
                chain.reverse();
                return Some(chain);
            }
            if !system(&dep.pkg) {
                queue.push_back(&dep.pkg);
            }
        }
    }
    None
}

fn finding(
    root: &Path,
    package: &Package,
    first_hop: &Package,
    chain: &[&PackageId],
    packages: &HashMap<&PackageId, &Package>,
    node: &Node,
) -> Finding {
    let declared = package
        .dependencies
        .iter()
        .find(|d| d.name == first_hop.name.as_str());
    let key = declared.map(|d| d.rename.clone().unwrap_or_else(|| d.name.clone()));
    let table = match declared.map(|d| d.kind) {
        Some(DependencyKind::Development) => "dev-dependencies",
        Some(DependencyKind::Build) => "build-dependencies",
        _ => "dependencies",
    };
    let manifest = package.manifest_path.as_std_path();
    let line = match (&key, fs::read_to_string(manifest)) {
        (Some(key), Ok(text)) => cargo_toml::dependency_line(&text, table, key),
        _ => 1,
    };
    let kinds: Vec<String> = node
        .deps
        .iter()
        .find(|d| d.pkg == first_hop.id)
        .map(|d| {
            d.dep_kinds
                .iter()
                .map(|k| kind_name(k.kind).to_owned())
                .collect()
        })
        .unwrap_or_default();
    let message = if chain.len() == 2 {
        let renamed = match &key {
            Some(key) if key.replace('-', "_") != PRIVILEGED_PACKAGE.replace('-', "_") => {
                format!(" (renamed `{key}`)")
            }
            _ => String::new(),
        };
        format!(
            "`{}` depends on `{PRIVILEGED_PACKAGE}`{renamed} as a {} dependency; only crates under system/ may depend on it",
            package.name,
            kinds.join("+"),
        )
    } else {
        let names: Vec<&str> = chain.iter().map(|id| packages[id].name.as_str()).collect();
        format!(
            "`{}` reaches `{PRIVILEGED_PACKAGE}` through a non-system crate ({}); only crates under system/ may depend on it",
            package.name,
            names.join(" -> "),
        )
    };
    Finding::new(
        relative(root, manifest),
        line,
        "privileged-dependency",
        message,
    )
}

fn kind_name(kind: DependencyKind) -> &'static str {
    match kind {
        DependencyKind::Development => "dev",
        DependencyKind::Build => "build",
        _ => "normal",
    }
}
