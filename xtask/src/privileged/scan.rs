//! Layer 3: a syn source scan of every crate outside `system/`.
//!
//! Each file is parsed with syn (a file that does not parse is a finding), then its whole token
//! tree is walked, including the bodies of every macro invocation, so a privileged macro hidden
//! inside another macro's tokens, or called through a `use … as` alias, is still seen.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::ToTokens;

use crate::finding::{Finding, relative};
use crate::workspace::{Member, is_system, rust_files};

/// Macros that register system capabilities.
const PRIVILEGED_MACROS: [&str; 2] = ["register_system_capability", "declare_system_bundle"];

/// Names that only `system/` (and the files in [`ALLOWLIST`]) may use.
const HIDDEN_NAMES: [&str; 9] = [
    "plystra_privileged",
    "__system_capability",
    "PrivilegedSeal",
    "system_manifest",
    "register_system_capability",
    "declare_system_bundle",
    "SystemCapabilitySpec",
    "test_manifests",
    "RawManifest",
];

/// A file outside `system/` that may use part of the privileged surface, and why.
struct Allowance {
    /// A path relative to the workspace root; `*` matches within a segment, `**` any segments.
    files: &'static str,
    /// The rules waived.
    rules: &'static [&'static str],
    /// For `privileged-hidden-api`, the names waived (`*` for all).
    names: &'static [&'static str],
    /// Why this is acceptable; printed as a note when it waives something.
    reason: &'static str,
}

const ALLOWLIST: &[Allowance] = &[
    Allowance {
        files: "contracts/src/manifest.rs",
        rules: &["privileged-hidden-api", "privileged-literal"],
        names: &["*"],
        reason: "defines CapabilityManifest, its hidden constructor and the test-manifests module",
    },
    Allowance {
        files: "contracts/tests/ui/*.rs",
        rules: &[
            "privileged-hidden-api",
            "privileged-literal",
            "privileged-macro",
        ],
        names: &["*"],
        reason: "trybuild compile-fail cases that prove these paths do not compile",
    },
    Allowance {
        files: "kernel/src/**/tests.rs",
        rules: &["privileged-hidden-api", "privileged-literal"],
        names: &["test_manifests", "RawManifest"],
        reason: "the kernel's negative tests build rule-breaking manifests (feature test-manifests)",
    },
    Allowance {
        files: "kernel/tests/**",
        rules: &["privileged-hidden-api", "privileged-literal"],
        names: &["test_manifests", "RawManifest"],
        reason: "the kernel's negative tests build rule-breaking manifests (feature test-manifests)",
    },
];

/// One thing the scan saw in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// 1-based line.
    pub line: usize,
    /// Rule id.
    pub rule: &'static str,
    /// The identifier that triggered it.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// Scans every `.rs` file of every member outside `system/`.
pub fn check(root: &Path, members: &[Member]) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut waived = BTreeSet::new();
    for member in members.iter().filter(|m| !is_system(root, &m.manifest)) {
        for file in rust_files(&member.dir)? {
            let path = relative(root, &file);
            let source =
                fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let hits = match scan_source(&source) {
                Ok(hits) => hits,
                Err(error) => {
                    let line = error.span().start().line;
                    findings.push(Finding::new(&path, line, "parse-error", error.to_string()));
                    continue;
                }
            };
            let path_text = path.to_string_lossy().replace('\\', "/");
            for hit in hits {
                match allowance(&path_text, &hit) {
                    Some(allowance) => {
                        waived.insert((path_text.clone(), allowance.reason));
                    }
                    None => findings.push(Finding::new(&path, hit.line, hit.rule, hit.message)),
                }
            }
        }
    }
    for (path, reason) in waived {
        println!("note: {path}: allowlisted: {reason}");
    }
    Ok(findings)
}

fn allowance(path: &str, hit: &Hit) -> Option<&'static Allowance> {
    ALLOWLIST.iter().find(|a| {
        glob_match(a.files, path)
            && a.rules.contains(&hit.rule)
            && (hit.rule != "privileged-hidden-api"
                || a.names.iter().any(|n| *n == "*" || *n == hit.name))
    })
}

/// Parses `source` and reports every privileged macro call, hidden name and privileged literal.
pub fn scan_source(source: &str) -> syn::Result<Vec<Hit>> {
    let file = syn::parse_file(source)?;
    let tokens = file.into_token_stream();
    let aliases = macro_aliases(&tokens);
    let mut hits = Vec::new();
    walk(tokens, &aliases, &mut hits);
    Ok(hits)
}

/// The privileged macros plus every name they are imported under (`use … as alias`), followed
/// transitively (`use alias as other`).
fn macro_aliases(tokens: &TokenStream) -> HashSet<String> {
    let mut renames = Vec::new();
    collect_renames(tokens.clone(), &mut renames);
    let mut names: HashSet<String> = PRIVILEGED_MACROS.iter().map(|s| s.to_string()).collect();
    loop {
        let before = names.len();
        for (from, to) in &renames {
            if names.contains(from) {
                names.insert(to.clone());
            }
        }
        if names.len() == before {
            return names;
        }
    }
}

fn collect_renames(tokens: TokenStream, renames: &mut Vec<(String, String)>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => collect_renames(group.stream(), renames),
            TokenTree::Ident(from) => {
                if let (Some(TokenTree::Ident(kw)), Some(TokenTree::Ident(to))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                    && kw == "as"
                {
                    renames.push((from.to_string(), to.to_string()));
                }
            }
            _ => {}
        }
    }
}

fn walk(tokens: TokenStream, macros: &HashSet<String>, hits: &mut Vec<Hit>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        let ident = match token {
            TokenTree::Group(group) => {
                walk(group.stream(), macros, hits);
                continue;
            }
            TokenTree::Ident(ident) => ident,
            _ => continue,
        };
        let name = ident.to_string();
        let line = ident.span().start().line;
        let mut hit = |rule, message: String| {
            hits.push(Hit {
                line,
                rule,
                name: name.clone(),
                message,
            });
        };
        let is_bang = matches!(tokens.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!');
        if is_bang && macros.contains(&name) {
            let alias = if PRIVILEGED_MACROS.contains(&name.as_str()) {
                String::new()
            } else {
                " (an alias of a privileged macro)".to_owned()
            };
            hit(
                "privileged-macro",
                format!(
                    "`{name}!`{alias} registers a system capability; only crates under system/ may call it"
                ),
            );
        } else if HIDDEN_NAMES.contains(&name.as_str()) {
            hit(
                "privileged-hidden-api",
                format!(
                    "`{name}` is part of the hidden privileged API; only system/ may use it (kernel tests: see the allowlist)"
                ),
            );
        }
        if !single_colon(tokens.get(i + 1)) {
            continue;
        }
        let value: Vec<&TokenTree> = tokens[i + 2..]
            .iter()
            .take_while(
                |t| !matches!(t, TokenTree::Punct(p) if matches!(p.as_char(), ',' | ';' | '=')),
            )
            .collect();
        let literal = match name.as_str() {
            "privileged" => matches!(value.as_slice(), [TokenTree::Ident(v)] if v == "true")
                .then(|| "`privileged: true`".to_owned()),
            "kind" => value.iter().find_map(|t| match t {
                TokenTree::Ident(v) if v == "SystemCapability" || v == "system_capability" => {
                    Some(format!("`kind: …{v}`"))
                }
                TokenTree::Literal(v) if v.to_string() == "\"system_capability\"" => {
                    Some("`kind: \"system_capability\"`".to_owned())
                }
                _ => None,
            }),
            _ => None,
        };
        if let Some(what) = literal {
            hit(
                "privileged-literal",
                format!(
                    "a literal sets {what}; only system_manifest() in system/ may build a privileged system_capability manifest"
                ),
            );
        }
    }
}

/// A lone `:` (a field's or a binding's colon), not half of `::`.
fn single_colon(token: Option<&TokenTree>) -> bool {
    matches!(token, Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Alone)
}

/// Whether `path` (`/`-separated) matches `pattern`: `*` matches within one segment, `**` any
/// number of segments.
fn glob_match(pattern: &str, path: &str) -> bool {
    fn segments(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => segments(&p[1..], s) || (!s.is_empty() && segments(p, &s[1..])),
            (Some(pat), Some(seg)) => segment(pat, seg) && segments(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn segment(pattern: &str, text: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == text,
            Some((head, tail)) => text.strip_prefix(head).is_some_and(|rest| {
                (0..=rest.len()).any(|i| rest.is_char_boundary(i) && segment(tail, &rest[i..]))
            }),
        }
    }
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    segments(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(source: &str) -> Vec<(usize, &'static str)> {
        scan_source(source)
            .unwrap()
            .into_iter()
            .map(|h| (h.line, h.rule))
            .collect()
    }

    #[test]
    fn flags_a_direct_macro_call() {
        let source = "plystra_privileged::register_system_capability! { manifest: M }\n";
        assert_eq!(
            rules(source),
            [(1, "privileged-hidden-api"), (1, "privileged-macro")]
        );
    }

    #[test]
    fn flags_a_macro_called_through_an_alias() {
        let source = "use p::register_system_capability as reg;\nuse reg as again;\n\nfn f() {}\nagain! { x }\nreg! { y }\n";
        assert_eq!(
            rules(source),
            [
                (1, "privileged-hidden-api"),
                (5, "privileged-macro"),
                (6, "privileged-macro"),
            ]
        );
    }

    #[test]
    fn flags_a_macro_nested_in_another_macro() {
        let source = "outer! {\n    inner!(\n        declare_system_bundle!(\"a\")\n    );\n}\n";
        assert_eq!(rules(source), [(3, "privileged-macro")]);
    }

    #[test]
    fn flags_privileged_literals_but_not_kind_checks() {
        let source = r#"
const M: CapabilityManifest = CapabilityManifest {
    privileged: true,
    kind: CapabilityKind::SystemCapability,
};
fn f(m: &CapabilityManifest) -> bool {
    let kind: CapabilityKind = m.kind(); let other = CapabilityKind::SystemCapability;
    let x = Row { kind: "system_capability", privileged: false };
    matches!(kind, CapabilityKind::SystemCapability)
}
"#;
        assert_eq!(
            rules(source),
            [
                (3, "privileged-literal"),
                (4, "privileged-literal"),
                (8, "privileged-literal")
            ]
        );
    }

    #[test]
    fn flags_hidden_names_in_paths_but_not_in_strings_or_docs() {
        let source = "/// system_manifest is fine in a doc\nfn f() { let s = \"PrivilegedSeal\"; x::PrivilegedSeal::__new(); }\n";
        assert_eq!(rules(source), [(2, "privileged-hidden-api")]);
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error() {
        assert!(scan_source("fn (").is_err());
    }

    fn allowed(path: &str, hit: &Hit) -> bool {
        allowance(path, hit).is_some()
    }

    #[test]
    fn allowlist_is_narrow() {
        let hit = |rule, name: &str| Hit {
            line: 1,
            rule,
            name: name.into(),
            message: String::new(),
        };
        assert!(allowed(
            "kernel/src/boot/tests.rs",
            &hit("privileged-hidden-api", "RawManifest")
        ));
        assert!(allowed(
            "kernel/tests/rules.rs",
            &hit("privileged-literal", "privileged")
        ));
        assert!(!allowed(
            "kernel/tests/rules.rs",
            &hit("privileged-hidden-api", "PrivilegedSeal")
        ));
        assert!(!allowed(
            "kernel/src/boot.rs",
            &hit("privileged-hidden-api", "RawManifest")
        ));
        assert!(!allowed(
            "kernel/tests/rules.rs",
            &hit("privileged-macro", "declare_system_bundle")
        ));
        assert!(allowed(
            "contracts/tests/ui/x.rs",
            &hit("privileged-macro", "register_system_capability")
        ));
    }

    #[test]
    fn glob_matches_segments() {
        assert!(glob_match("kernel/src/**/tests.rs", "kernel/src/tests.rs"));
        assert!(glob_match(
            "kernel/src/**/tests.rs",
            "kernel/src/a/b/tests.rs"
        ));
        assert!(!glob_match(
            "kernel/src/**/tests.rs",
            "kernel/src/a/b/tests_x.rs"
        ));
        assert!(glob_match("kernel/tests/**", "kernel/tests/a/b.rs"));
        assert!(glob_match(
            "contracts/tests/ui/*.rs",
            "contracts/tests/ui/x.rs"
        ));
        assert!(!glob_match(
            "contracts/tests/ui/*.rs",
            "contracts/tests/ui/a/x.rs"
        ));
    }
}
