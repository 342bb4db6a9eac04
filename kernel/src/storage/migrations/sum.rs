//! The Atlas-style integrity file `plystra.sum`: a first line `h1:<sum>` over the whole directory,
//! then one `<file> h1:<hash>` line per migration file.
//!
//! As in Atlas, each file's hash is the running SHA-256 over every file name and content up to and
//! including that file, so editing, reordering or inserting a file changes its line and every line
//! after it; the first line hashes the list of `(name, hash)` pairs. Hashes are standard base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// A parsed or computed sum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumFile {
    /// The directory hash (without the `h1:` prefix).
    pub total: String,
    /// `(file name, hash)` per file, in order (hashes without the `h1:` prefix).
    pub files: Vec<(String, String)>,
}

/// A sum file that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plystra.sum line {line}: {problem}")]
pub struct SumParseError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl SumFile {
    /// Computes the sum of `files` (`(name, contents)`, already in directory order).
    pub fn compute<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut running = Sha256::new();
        let mut pairs = Vec::new();
        for (name, contents) in files {
            running.update(name.as_bytes());
            running.update(contents.as_bytes());
            pairs.push((name.to_owned(), STANDARD.encode(running.clone().finalize())));
        }
        let mut total = Sha256::new();
        for (name, hash) in &pairs {
            total.update(name.as_bytes());
            total.update(hash.as_bytes());
        }
        Self {
            total: STANDARD.encode(total.finalize()),
            files: pairs,
        }
    }

    /// Parses the text of a `plystra.sum`.
    pub fn parse(text: &str) -> Result<Self, SumParseError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, first) = lines.next().ok_or(SumParseError {
            line: 1,
            problem: "the file is empty",
        })?;
        let total = first
            .trim()
            .strip_prefix("h1:")
            .ok_or(SumParseError {
                line: 1,
                problem: "the first line must be `h1:<sum>`",
            })?
            .to_owned();
        let mut files = Vec::new();
        for (index, line) in lines {
            let (name, hash) = line
                .trim()
                .rsplit_once(' ')
                .and_then(|(name, hash)| Some((name, hash.strip_prefix("h1:")?)))
                .ok_or(SumParseError {
                    line: index + 1,
                    problem: "expected `<file> h1:<hash>`",
                })?;
            files.push((name.to_owned(), hash.to_owned()));
        }
        Ok(Self { total, files })
    }

    /// The file's text, ending with a newline.
    pub fn render(&self) -> String {
        let mut out = format!("h1:{}\n", self.total);
        for (name, hash) in &self.files {
            out.push_str(&format!("{name} h1:{hash}\n"));
        }
        out
    }

    /// How `self` (recorded) differs from `actual` (computed from the files): the first file whose
    /// line differs, or the directory hash. `None` when they agree.
    pub fn first_difference(&self, actual: &SumFile) -> Option<String> {
        let longest = self.files.len().max(actual.files.len());
        for i in 0..longest {
            match (self.files.get(i), actual.files.get(i)) {
                (Some(recorded), Some(found)) if recorded == found => {}
                (Some((name, _)), Some((found, _))) if name == found => {
                    return Some(format!("{name} does not match its hash in plystra.sum"));
                }
                (Some((name, _)), Some((found, _))) => {
                    return Some(format!(
                        "plystra.sum lists {name} where the directory has {found}"
                    ));
                }
                (Some((name, _)), None) => {
                    return Some(format!("{name} is listed in plystra.sum but missing"));
                }
                (None, Some((found, _))) => {
                    return Some(format!("{found} is not listed in plystra.sum"));
                }
                (None, None) => {}
            }
        }
        (self.total != actual.total).then(|| "the plystra.sum directory hash is wrong".to_owned())
    }
}

/// The hex SHA-256 of one file's contents, as recorded in the ledger.
pub fn checksum(contents: &str) -> String {
    hex::encode(Sha256::digest(contents.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_edits() {
        let sum = SumFile::compute([
            ("0001_a_init.sql", "CREATE TABLE a_x (id TEXT);"),
            ("0002_b_init.sql", ""),
        ]);
        let text = sum.render();
        assert!(text.starts_with("h1:"));
        assert_eq!(text.lines().count(), 3);
        assert_eq!(SumFile::parse(&text).unwrap(), sum);
        assert_eq!(sum.first_difference(&sum), None);

        let edited = SumFile::compute([
            ("0001_a_init.sql", "CREATE TABLE a_y (id TEXT);"),
            ("0002_b_init.sql", ""),
        ]);
        assert_eq!(
            sum.first_difference(&edited).unwrap(),
            "0001_a_init.sql does not match its hash in plystra.sum"
        );
        // Hashes are cumulative: the second line changes too.
        assert_ne!(sum.files[1].1, edited.files[1].1);

        let added = SumFile::compute([
            ("0001_a_init.sql", "CREATE TABLE a_x (id TEXT);"),
            ("0002_b_init.sql", ""),
            ("0003_c_init.sql", ""),
        ]);
        assert_eq!(
            sum.first_difference(&added).unwrap(),
            "0003_c_init.sql is not listed in plystra.sum"
        );
    }

    #[test]
    fn matches_atlas_for_a_known_directory() {
        // Empty directory: the total is the SHA-256 of nothing.
        assert_eq!(
            SumFile::compute([]).total,
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn rejects_malformed_files() {
        assert!(SumFile::parse("").is_err());
        assert!(SumFile::parse("nope\n").is_err());
        assert!(SumFile::parse("h1:abc\nfile-without-hash\n").is_err());
    }
}
