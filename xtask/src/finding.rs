//! A located problem that a check found, printed as `path:line: rule-id: message`.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem, at a line of a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The file, relative to the workspace root when it lies inside it.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// A stable rule id, for example `privileged-dependency`.
    pub rule: &'static str,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl Finding {
    /// A finding at `path:line`.
    pub fn new(
        path: impl Into<PathBuf>,
        line: usize,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            line,
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.path.display(),
            self.line,
            self.rule,
            self.message
        )
    }
}

/// `path` relative to `root`, or `path` itself when it lies outside `root`.
pub fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}

/// Prints every finding, sorted, then a count line; true when there were none.
pub fn report(check: &str, mut findings: Vec<Finding>) -> bool {
    findings.sort();
    findings.dedup();
    for finding in &findings {
        println!("{finding}");
    }
    if findings.is_empty() {
        println!("{check}: ok");
    } else {
        println!("{check}: {} finding(s)", findings.len());
    }
    findings.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_path_line_rule_message() {
        let finding = Finding::new("a/b.rs", 7, "rule-id", "what is wrong");
        assert_eq!(finding.to_string(), "a/b.rs:7: rule-id: what is wrong");
    }

    #[test]
    fn relative_strips_the_root_only_when_inside() {
        assert_eq!(
            relative(Path::new("/w"), Path::new("/w/x/y.rs")),
            PathBuf::from("x/y.rs")
        );
        assert_eq!(
            relative(Path::new("/w"), Path::new("/v/y.rs")),
            PathBuf::from("/v/y.rs")
        );
    }
}
