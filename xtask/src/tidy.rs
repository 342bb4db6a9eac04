//! `cargo xtask tidy`: repository hygiene that rustc and clippy do not check.
//!
//! - every `.rs` file of a workspace crate starts with a `//!` line (`module-doc`);
//! - no `dbg!` and no `todo!()` in non-test code (`forbidden-macro`);
//! - no system table's name (`"sys_identity_users"`) written in non-test code outside
//!   `system/schema`, the one place the five system capabilities' tables are named (`table-name`);
//! - dependencies listed in `[workspace.dependencies]` are inherited with `workspace = true`, and
//!   no version is written in two member manifests (`workspace-dependency`, `duplicate-version`);
//! - the bundle `system/src/lib.rs` links every crate under `system/` except `privileged` and
//!   `schema` (not capabilities) exactly
//!   once with `extern crate x as _;`, and `system/Cargo.toml` depends on each exactly once
//!   (`system-bundle`);
//! - every `PLYSTRA_…` setting named in non-test code (outside xtask and benches) is in the
//!   README's configuration table (`setting-undocumented`); the table, `plystrad --help` and
//!   the declarations are held to one list by a test in `plystrad`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Attribute, ImplItem, Item};
use toml::Value;

use crate::cargo_toml;
use crate::finding::{self, Finding, relative};
use crate::workspace::{self, Member, rust_files};

/// Every tidy finding in the workspace at `root`.
pub fn check(root: &Path) -> Result<Vec<Finding>> {
    let metadata = workspace::metadata(root, false)?;
    let root = metadata.workspace_root.as_std_path();
    let members = workspace::members(&metadata);
    let documented = readme_settings(root)?;
    let mut findings = Vec::new();
    for member in &members {
        findings.extend(source_findings(root, member, &documented)?);
    }
    findings.extend(workspace_dependencies(root, &members)?);
    findings.extend(bundle(root)?);
    Ok(findings)
}

/// Runs the check and prints its findings; true when there are none.
pub fn run(root: &Path) -> Result<bool> {
    Ok(finding::report("tidy", check(root)?))
}

/// The `PLYSTRA_…` names of the README's configuration table (its `### Configuration` section).
fn readme_settings(root: &Path) -> Result<Vec<String>> {
    let readme = fs::read_to_string(root.join("README.md")).context("reading README.md")?;
    let section = readme
        .split_once("### Configuration\n")
        .map(|(_, rest)| rest.split("\n### ").next().unwrap_or(rest))
        .unwrap_or("");
    Ok(setting_names(section))
}

/// Every `PLYSTRA_…` name in `text` (a name ending in `_` is a family's prefix).
pub fn setting_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("PLYSTRA_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// Names that look like settings but are not read from a process's environment: the build
/// script's facts (`env!` at compile time) and the test suite's own switches.
fn is_setting(name: &str) -> bool {
    !matches!(
        name,
        "PLYSTRA_GIT_COMMIT" | "PLYSTRA_BUILT_AT" | "PLYSTRA_RUSTC"
    ) && !name.starts_with("PLYSTRA_TEST_")
}

/// The settings named in a string literal's source text that `documented` lacks (a documented
/// name counts when it is the named one or, for a family's prefix, starts with it).
pub fn undocumented_settings(literal: &str, documented: &[String]) -> Vec<String> {
    if !literal.starts_with('"') && !literal.starts_with('r') {
        return Vec::new();
    }
    setting_names(literal)
        .into_iter()
        .filter(|name| is_setting(name))
        .filter(|name| !documented.iter().any(|d| d.starts_with(name.as_str())))
        .collect()
}

fn source_findings(root: &Path, member: &Member, documented: &[String]) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut parsed = Vec::new();
    for file in rust_files(&member.dir)? {
        let path = relative(root, &file);
        let source =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        findings.extend(module_doc(&path, &source));
        match syn::parse_file(&source) {
            Ok(syntax) => parsed.push((file, path, syntax)),
            Err(error) => findings.push(Finding::new(
                path,
                error.span().start().line,
                "parse-error",
                error.to_string(),
            )),
        }
    }
    let tests = TestCode::of(
        &member.dir,
        parsed
            .iter()
            .map(|(file, _, syntax)| (file.as_path(), syntax)),
    );
    let names_tables = member.dir.ends_with("system/schema");
    let names_settings = !member.dir.ends_with("xtask");
    let benches = member.dir.join("benches");
    for (file, path, syntax) in &parsed {
        if !tests.contains(file) {
            let in_bench = file.starts_with(&benches);
            let table_names = !names_tables && !in_bench;
            let settings = (names_settings && !in_bench).then_some(documented);
            findings.extend(non_test_findings(path, syntax, table_names, settings));
        }
    }
    Ok(findings)
}

/// A finding if the first non-blank line of `source` is not a `//!` doc line.
pub fn module_doc(path: &Path, source: &str) -> Option<Finding> {
    let first = source.lines().position(|l| !l.trim().is_empty());
    let documented = first.is_some_and(|i| source.lines().nth(i).unwrap_or("").starts_with("//!"));
    (!documented).then(|| {
        Finding::new(
            path,
            first.map_or(1, |i| i + 1),
            "module-doc",
            "a module must start with a `//!` line saying what it is for",
        )
    })
}

/// Every `dbg!` and `todo!`, and with `table_names` every system table's name, outside items
/// marked `#[cfg(test)]` or `#[test]`.
pub fn non_test_findings(
    path: &Path,
    file: &syn::File,
    table_names: bool,
    settings: Option<&[String]>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut scan = Scan {
        path,
        table_names,
        settings,
        findings: &mut findings,
    };
    for item in &file.items {
        scan.item(item);
    }
    findings
}

/// What a walk over a file's non-test tokens looks for, and what it found.
struct Scan<'a> {
    path: &'a Path,
    table_names: bool,
    /// With the README's documented settings: look for undocumented ones.
    settings: Option<&'a [String]>,
    findings: &'a mut Vec<Finding>,
}

impl Scan<'_> {
    fn item(&mut self, item: &Item) {
        match item {
            Item::Mod(module) if !is_test(&module.attrs) => {
                if let Some((_, items)) = &module.content {
                    for item in items {
                        self.item(item);
                    }
                }
            }
            Item::Impl(block) if !is_test(&block.attrs) => {
                for item in &block.items {
                    let attrs = match item {
                        ImplItem::Fn(f) => &f.attrs,
                        ImplItem::Const(c) => &c.attrs,
                        _ => &Vec::new(),
                    };
                    if !is_test(attrs) {
                        self.tokens(item.to_token_stream());
                    }
                }
            }
            Item::Mod(_) | Item::Impl(_) => {}
            _ if item_attrs(item).is_some_and(|attrs| is_test(attrs)) => {}
            _ => self.tokens(item.to_token_stream()),
        }
    }

    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident) if ident == "dbg" || ident == "todo" => {
                    if matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!')
                    {
                        self.findings.push(Finding::new(
                            self.path,
                            ident.span().start().line,
                            "forbidden-macro",
                            format!("`{ident}!` in non-test code"),
                        ));
                    }
                }
                TokenTree::Literal(literal) => {
                    let text = literal.to_string();
                    for name in self
                        .settings
                        .map(|documented| undocumented_settings(&text, documented))
                        .unwrap_or_default()
                    {
                        self.findings.push(Finding::new(
                            self.path,
                            literal.span().start().line,
                            "setting-undocumented",
                            format!(
                                "{name} is named here but not in the README's configuration \
                                 table: add a row (and declare it in the reading capability's \
                                 `Provides::settings`, or the kernel's `settings::KERNEL`)"
                            ),
                        ));
                    }
                    if !self.table_names {
                        continue;
                    }
                    if let Some(table) = system_table_name(&text) {
                        self.findings.push(Finding::new(
                            self.path,
                            literal.span().start().line,
                            "table-name",
                            format!(
                                "the system table {table} is named outside system/schema: use its handle \
                                 (`plystra_system_schema::<namespace>::<TABLE>.name`, or the owning \
                                 capability's `schema` module)"
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

/// The system table a string literal's source text (`"sys_identity_users"`) names: one of the
/// five system namespaces followed by `_` and a name; `None` for anything else, a namespace alone
/// included.
pub fn system_table_name(literal: &str) -> Option<&str> {
    let text = literal.strip_prefix('"')?.strip_suffix('"')?;
    let rest = text.strip_prefix("sys_")?;
    let named = ["audit_", "identity_", "resource_", "authz_", "admin_"]
        .iter()
        .any(|ns| rest.strip_prefix(ns).is_some_and(|name| !name.is_empty()));
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    (named && plain).then_some(text)
}

fn item_attrs(item: &Item) -> Option<&Vec<Attribute>> {
    match item {
        Item::Fn(i) => Some(&i.attrs),
        Item::Const(i) => Some(&i.attrs),
        Item::Static(i) => Some(&i.attrs),
        Item::Struct(i) => Some(&i.attrs),
        Item::Enum(i) => Some(&i.attrs),
        Item::Trait(i) => Some(&i.attrs),
        Item::Use(i) => Some(&i.attrs),
        Item::Macro(i) => Some(&i.attrs),
        _ => None,
    }
}

/// `#[test]`, `#[cfg(test)]` or a `cfg` that requires `test` (and does not negate it).
fn is_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        if attr.path().is_ident("test") {
            return true;
        }
        let Ok(list) = attr.meta.require_list() else {
            return false;
        };
        if !attr.path().is_ident("cfg") {
            return false;
        }
        let cfg = list.tokens.to_string();
        cfg == "test"
            || (cfg
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "test")
                && !cfg.contains("not"))
    })
}

/// The files of a crate that hold only test code: those under `tests/` and the files of modules
/// declared `#[cfg(test)] mod name;` (with everything below them).
struct TestCode {
    crate_dir: PathBuf,
    roots: Vec<PathBuf>,
}

impl TestCode {
    fn of<'a>(crate_dir: &Path, files: impl Iterator<Item = (&'a Path, &'a syn::File)>) -> Self {
        let mut roots = vec![crate_dir.join("tests")];
        for (file, syntax) in files {
            let dir = module_dir(file);
            for item in &syntax.items {
                if let Item::Mod(module) = item
                    && module.content.is_none()
                    && is_test(&module.attrs)
                {
                    let name = module.ident.to_string();
                    roots.push(dir.join(format!("{name}.rs")));
                    roots.push(dir.join(name));
                }
            }
        }
        Self {
            crate_dir: crate_dir.to_path_buf(),
            roots,
        }
    }

    fn contains(&self, file: &Path) -> bool {
        file.starts_with(&self.crate_dir) && self.roots.iter().any(|root| file.starts_with(root))
    }
}

/// Where the submodules of `file` live: its own directory for `lib.rs`, `main.rs` and `mod.rs`,
/// else a directory named after it.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(""));
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs" | "build.rs") => parent.to_path_buf(),
        _ => parent.join(file.file_stem().unwrap_or_default()),
    }
}

fn workspace_dependencies(root: &Path, members: &[Member]) -> Result<Vec<Finding>> {
    let (_, manifest) = cargo_toml::read(&root.join("Cargo.toml"))?;
    let mut declared = BTreeSet::new();
    if let Some(Value::Table(deps)) = manifest
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
    {
        for (key, value) in deps {
            declared.insert(key.clone());
            if let Some(package) = value.get("package").and_then(Value::as_str) {
                declared.insert(package.to_owned());
            }
        }
    }
    let mut manifests = Vec::new();
    for member in members {
        let text = fs::read_to_string(&member.manifest)
            .with_context(|| format!("reading {}", member.manifest.display()))?;
        manifests.push((relative(root, &member.manifest), text));
    }
    dependency_findings(&declared, &manifests)
}

/// Dependencies that bypass `[workspace.dependencies]` (`declared` holds its keys and package
/// names), and versions written in more than one member manifest.
pub fn dependency_findings(
    declared: &BTreeSet<String>,
    manifests: &[(PathBuf, String)],
) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut versions: BTreeMap<String, Vec<(PathBuf, usize)>> = BTreeMap::new();
    for (path, text) in manifests {
        let table = text
            .parse::<toml::Table>()
            .with_context(|| format!("parsing {}", path.display()))?;
        let own_name = table
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str);
        for entry in cargo_toml::dependencies(text, &table) {
            // A package's dev-dependency on itself only turns on features for its own tests.
            if entry.workspace || own_name == Some(entry.package.as_str()) {
                continue;
            }
            if declared.contains(&entry.key) || declared.contains(&entry.package) {
                findings.push(Finding::new(
                    path,
                    entry.line,
                    "workspace-dependency",
                    format!(
                        "`{}` is in [workspace.dependencies]; write `{}.workspace = true` (add features here if needed)",
                        entry.package, entry.key
                    ),
                ));
            } else if entry.version.is_some() {
                versions
                    .entry(entry.package)
                    .or_default()
                    .push((path.clone(), entry.line));
            }
        }
    }
    for (package, places) in versions {
        let manifests: BTreeSet<&PathBuf> = places.iter().map(|(path, _)| path).collect();
        if manifests.len() < 2 {
            continue;
        }
        let list: Vec<String> = manifests.iter().map(|p| p.display().to_string()).collect();
        for (path, line) in &places {
            findings.push(Finding::new(
                path,
                *line,
                "duplicate-version",
                format!(
                    "the version of `{package}` is written in {} manifests ({}); declare it once in [workspace.dependencies]",
                    manifests.len(),
                    list.join(", ")
                ),
            ));
        }
    }
    Ok(findings)
}

fn bundle(root: &Path) -> Result<Vec<Finding>> {
    let system = root.join("system");
    let mut expected = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(&system)
        .with_context(|| format!("reading {}", system.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    dirs.sort();
    for dir in dirs {
        let manifest = dir.join("Cargo.toml");
        let not_a_capability = dir
            .file_name()
            .is_some_and(|n| n == "privileged" || n == "schema");
        if not_a_capability || !manifest.is_file() {
            continue;
        }
        let (_, table) = cargo_toml::read(&manifest)?;
        let name = table
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str);
        expected.push(
            name.context("a system crate without a package name")?
                .to_owned(),
        );
    }
    let lib = system.join("src/lib.rs");
    let lib_source =
        fs::read_to_string(&lib).with_context(|| format!("reading {}", lib.display()))?;
    let manifest = system.join("Cargo.toml");
    let manifest_text =
        fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    bundle_findings(
        (&relative(root, &lib), &lib_source),
        (&relative(root, &manifest), &manifest_text),
        &expected,
    )
}

/// Checks that the bundle's `lib.rs` links each of `expected` (package names) exactly once with
/// `extern crate x as _;` and that its manifest depends on each exactly once.
pub fn bundle_findings(
    (lib_path, lib_source): (&Path, &str),
    (manifest_path, manifest_text): (&Path, &str),
    expected: &[String],
) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut links: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    match syn::parse_file(lib_source) {
        Ok(file) => {
            for item in &file.items {
                if let Item::ExternCrate(krate) = item
                    && krate.rename.as_ref().is_some_and(|(_, name)| name == "_")
                {
                    let line = krate.extern_token.span.start().line;
                    links.entry(krate.ident.to_string()).or_default().push(line);
                }
            }
        }
        Err(error) => {
            findings.push(Finding::new(
                lib_path,
                error.span().start().line,
                "parse-error",
                error.to_string(),
            ));
            return Ok(findings);
        }
    }
    let table = manifest_text
        .parse::<toml::Table>()
        .with_context(|| format!("parsing {}", manifest_path.display()))?;
    let deps: Vec<_> = cargo_toml::dependencies(manifest_text, &table)
        .into_iter()
        .filter(|d| d.table == "dependencies")
        .collect();
    for package in expected {
        let ident = package.replace('-', "_");
        let lines = links.get(&ident).cloned().unwrap_or_default();
        if lines.len() != 1 {
            findings.push(Finding::new(
                lib_path,
                lines.get(1).copied().unwrap_or(1),
                "system-bundle",
                format!("the bundle must link `{package}` exactly once with `extern crate {ident} as _;` (found {})", lines.len()),
            ));
        }
        let entries: Vec<_> = deps.iter().filter(|d| d.package == *package).collect();
        if entries.len() != 1 {
            findings.push(Finding::new(
                manifest_path,
                entries.get(1).map_or(1, |d| d.line),
                "system-bundle",
                format!(
                    "the bundle's [dependencies] must name `{package}` exactly once (found {})",
                    entries.len()
                ),
            ));
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(findings: &[Finding]) -> Vec<(usize, &'static str)> {
        findings.iter().map(|f| (f.line, f.rule)).collect()
    }

    #[test]
    fn module_doc_wants_a_leading_inner_doc_line() {
        let path = Path::new("a.rs");
        assert!(module_doc(path, "//! Does a thing.\nfn f() {}\n").is_none());
        assert!(module_doc(path, "\n//! After a blank line.\n").is_none());
        assert_eq!(module_doc(path, "/// outer\nfn f() {}\n").unwrap().line, 1);
        assert_eq!(module_doc(path, "\n\nuse x;\n").unwrap().line, 3);
        assert!(module_doc(path, "").is_some());
    }

    #[test]
    fn forbidden_macros_skip_test_code_only() {
        let source = r#"//! x
fn f() { let _ = dbg!(1); }
fn g() -> u8 { todo!() }
#[cfg(test)]
mod tests { fn h() { dbg!(2); todo!() } }
#[test]
fn t() { dbg!(3); }
#[cfg(not(test))]
fn n() { m!(dbg!(4)); }
struct S;
impl S {
    fn a() { todo!() }
    #[cfg(test)]
    fn b() { todo!() }
}
fn s() { let _ = "dbg!(in a string)"; }
"#;
        let file = syn::parse_file(source).unwrap();
        let found = non_test_findings(Path::new("a.rs"), &file, false, None);
        assert_eq!(
            rules(&found),
            [
                (2, "forbidden-macro"),
                (3, "forbidden-macro"),
                (9, "forbidden-macro"),
                (12, "forbidden-macro")
            ]
        );
    }

    #[test]
    fn settings_named_in_non_test_code_must_be_in_the_readme_table() {
        let source = r#"//! x
const A: &str = "PLYSTRA_DOCUMENTED";
fn f() -> String { format!("PLYSTRA_NEW_ONE={}: bad", 1) }
fn g() -> String { format!("PLYSTRA_FAMILY_{}", "X") }
fn h() -> &'static str { env!("PLYSTRA_GIT_COMMIT") }
fn i() -> &'static str { "PLYSTRA_TEST_BACKEND" }
// PLYSTRA_IN_A_COMMENT
#[cfg(test)]
mod tests { const T: &str = "PLYSTRA_ONLY_IN_TESTS"; }
"#;
        let file = syn::parse_file(source).unwrap();
        let documented = setting_names("| `PLYSTRA_DOCUMENTED` | `PLYSTRA_FAMILY_ONE` |");
        assert_eq!(documented, ["PLYSTRA_DOCUMENTED", "PLYSTRA_FAMILY_ONE"]);
        let found = non_test_findings(Path::new("a.rs"), &file, false, Some(&documented));
        assert_eq!(rules(&found), [(3, "setting-undocumented")]);
        assert!(found[0].message.contains("PLYSTRA_NEW_ONE"));
        assert!(non_test_findings(Path::new("a.rs"), &file, false, None).is_empty());
    }

    #[test]
    fn system_table_names_are_found_in_non_test_code_only() {
        let source = r#"//! x
const USERS: &str = "sys_identity_users";
const NAMESPACE: &str = "sys_identity";
fn f() -> &'static str { m!("sys_authz_roles") }
fn g() -> &'static str { "sys_other_table" }
#[cfg(test)]
mod tests { const T: &str = "sys_audit_audit_logs"; }
"#;
        let file = syn::parse_file(source).unwrap();
        let found = non_test_findings(Path::new("a.rs"), &file, true, None);
        assert_eq!(rules(&found), [(2, "table-name"), (4, "table-name")]);
        assert!(non_test_findings(Path::new("a.rs"), &file, false, None).is_empty());
        assert_eq!(
            system_table_name("\"sys_resource_resources\""),
            Some("sys_resource_resources")
        );
        for not_a_table in [
            "\"sys_admin\"",
            "\"sys_admin_\"",
            "\"sys_identity_users has a row\"",
            "r\"sys_identity_users\"",
            "sys_identity_users",
        ] {
            assert_eq!(system_table_name(not_a_table), None, "{not_a_table}");
        }
    }

    #[test]
    fn test_code_is_tests_dir_and_cfg_test_modules() {
        let lib = syn::parse_file("#[cfg(test)]\nmod tests;\nmod real;\n").unwrap();
        let real = syn::parse_file("#[cfg(test)]\nmod more;\n").unwrap();
        let dir = Path::new("/c");
        let files = [
            (Path::new("/c/src/lib.rs"), &lib),
            (Path::new("/c/src/real.rs"), &real),
        ];
        let tests = TestCode::of(dir, files.into_iter());
        assert!(tests.contains(Path::new("/c/src/tests.rs")));
        assert!(tests.contains(Path::new("/c/src/tests/deep.rs")));
        assert!(tests.contains(Path::new("/c/src/real/more.rs")));
        assert!(tests.contains(Path::new("/c/tests/it.rs")));
        assert!(!tests.contains(Path::new("/c/src/real.rs")));
        assert!(!tests.contains(Path::new("/c/src/lib.rs")));
    }

    #[test]
    fn dependencies_must_inherit_and_not_repeat_versions() {
        let declared: BTreeSet<String> = ["serde".to_owned()].into();
        let a = "[dependencies]\nserde = \"1\"\nregex = \"1\"\nlocal = { path = \"../l\" }\n";
        let b = "[dev-dependencies]\nserde.workspace = true\nregex = { version = \"1.2\" }\n";
        let c = "[package]\nname = \"serde\"\n[dependencies]\nonce = \"1\"\n[dev-dependencies]\nserde = { path = \".\", features = [\"x\"] }\n";
        let manifests = [
            ("a/Cargo.toml", a),
            ("b/Cargo.toml", b),
            ("c/Cargo.toml", c),
        ]
        .map(|(p, t)| (PathBuf::from(p), t.to_owned()));
        let found = dependency_findings(&declared, &manifests).unwrap();
        let located: Vec<String> = found
            .iter()
            .map(|f| format!("{}:{}: {}", f.path.display(), f.line, f.rule))
            .collect();
        assert_eq!(
            located,
            [
                "a/Cargo.toml:2: workspace-dependency",
                "a/Cargo.toml:3: duplicate-version",
                "b/Cargo.toml:3: duplicate-version",
            ]
        );
    }

    #[test]
    fn bundle_links_every_system_crate_exactly_once() {
        let expected = [
            "plystra-system-audit",
            "plystra-system-authz",
            "plystra-system-admin",
        ]
        .map(str::to_owned);
        let lib = "//! bundle\nextern crate plystra_system_audit as _;\nextern crate plystra_system_audit as _;\nextern crate plystra_system_admin as _;\n";
        let manifest = "[dependencies]\nplystra-system-audit.workspace = true\nplystra-system-admin.workspace = true\nadmin2 = { package = \"plystra-system-admin\", path = \"x\" }\n";
        let found = bundle_findings(
            (Path::new("system/src/lib.rs"), lib),
            (Path::new("system/Cargo.toml"), manifest),
            &expected,
        )
        .unwrap();
        let located: Vec<String> = found
            .iter()
            .map(|f| format!("{}:{}", f.path.display(), f.line))
            .collect();
        assert_eq!(
            located,
            [
                "system/src/lib.rs:3",
                "system/src/lib.rs:1",
                "system/Cargo.toml:1",
                "system/Cargo.toml:4"
            ]
        );
        let clean = "//! bundle\nextern crate plystra_system_audit as _;\n";
        let manifest = "[dependencies]\nplystra-system-audit.workspace = true\n";
        let found = bundle_findings(
            (Path::new("l.rs"), clean),
            (Path::new("C.toml"), manifest),
            &expected[..1],
        )
        .unwrap();
        assert!(found.is_empty(), "{found:?}");
    }
}
