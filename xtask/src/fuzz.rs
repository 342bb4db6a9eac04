//! `cargo xtask fuzz`: schemathesis, pinned, against a real plystrad on SQLite and on PostgreSQL.
//!
//! In a throwaway virtualenv under the target directory it installs [`PYTHON_PACKAGES`], builds
//! plystrad (release by default), and for each backend starts it on a fresh database and a free
//! loopback port with a bootstrap key that holds every permission, then runs `st run` on the
//! committed document with every check and every phase for a bounded time. Any finding fails the
//! step: a 5xx, a response that does not match the document, an undocumented status, a request
//! the document allows that is refused or one it forbids that is accepted, and so on — whatever
//! schemathesis's `--checks all` holds the server to.
//!
//! `cargo xtask verify` runs a smoke of it ([`Options::smoke`]): the debug build the test suite
//! already made, a short time budget per backend. Without python3, or without PostgreSQL for the
//! PostgreSQL run, the step is skipped with a warning, except under `CI=true`, where it fails.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::{clients, process, workspace};

/// What the virtualenv holds, pinned.
const PYTHON_PACKAGES: &[&str] = &["schemathesis==4.32.5"];

/// schemathesis's own settings (what the CLI flags do not say), relative to the root.
const CONFIG: &str = "xtask/fuzz/schemathesis.toml";

/// The committed document schemathesis generates requests from.
const DOCUMENT: &str = "openapi/plystra.v0.0.1.json";

/// Where the PostgreSQL run creates its throwaway database (the tests' setting, then a default).
const POSTGRES_URL_VAR: &str = "PLYSTRA_TEST_DATABASE_URL";
const POSTGRES_DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database backend the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A throwaway database on the PostgreSQL server of `PLYSTRA_TEST_DATABASE_URL`.
    Postgres,
}

/// How a fuzz run is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// The backends, in order.
    pub backends: Vec<Backend>,
    /// schemathesis's time budget per backend, in seconds.
    pub max_time_secs: u64,
    /// Whether the server is the release build (else the debug build).
    pub release: bool,
    /// The random seed, for a run that can be repeated.
    pub seed: u64,
}

impl Options {
    /// The short run `cargo xtask verify` makes: both backends, the debug build, 40 s each.
    pub fn smoke() -> Self {
        Self {
            backends: vec![Backend::Sqlite, Backend::Postgres],
            max_time_secs: 40,
            release: false,
            seed: 1,
        }
    }
}

/// Runs schemathesis against each backend; true when it found nothing on any.
pub fn run(root: &Path, options: &Options) -> Result<bool> {
    let strict = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(python) = clients::find_python() else {
        if strict {
            bail!("python3 is not installed, and CI=true needs the fuzz step");
        }
        println!("fuzz: SKIPPED: python3 is not installed (this fails under CI=true)");
        return Ok(true);
    };
    let target = workspace::metadata(root, false)?
        .target_directory
        .into_std_path_buf();
    let base = target.join("xtask-fuzz");
    let venv = clients::prepare_venv(&python, &base.join("venv"), PYTHON_PACKAGES)?;

    // The smoke run takes the debug binary the tests built; a release run builds its own.
    let binary = if options.release {
        let build = process::cargo(root, &["build", "-q", "--release", "-p", "plystrad"]);
        if !process::status(build)? {
            println!("fuzz: plystrad does not build");
            return Ok(false);
        }
        target.join("release").join("plystrad")
    } else {
        workspace::built_binary(root, "plystrad")?
    };

    let mut clean = true;
    for backend in &options.backends {
        let run_dir = base.join(format!("run-{}-{backend:?}", std::process::id()));
        if run_dir.exists() {
            fs::remove_dir_all(&run_dir)?;
        }
        fs::create_dir_all(&run_dir)?;
        let passed = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", run_dir.join("plystra.db").display());
                fuzz_one(root, &venv, &binary, &run_dir, &url, options, *backend)?
            }
            Backend::Postgres => match ThrowawayDatabase::create()? {
                Some(database) => fuzz_one(
                    root,
                    &venv,
                    &binary,
                    &run_dir,
                    &database.url,
                    options,
                    *backend,
                )?,
                None if strict => bail!("PostgreSQL is unreachable, and CI=true needs it"),
                None => {
                    println!("fuzz (postgres): SKIPPED: PostgreSQL is unreachable");
                    true
                }
            },
        };
        if passed {
            let _ = fs::remove_dir_all(&run_dir);
        } else {
            println!(
                "fuzz ({backend:?}): reports kept in {} (junit.xml; replay with the seed {})",
                run_dir.display(),
                options.seed
            );
        }
        clean &= passed;
    }
    Ok(clean)
}

/// One backend: the server on `database_url`, schemathesis against it.
fn fuzz_one(
    root: &Path,
    venv: &Path,
    binary: &Path,
    run_dir: &Path,
    database_url: &str,
    options: &Options,
    backend: Backend,
) -> Result<bool> {
    println!(
        "fuzz ({backend:?}): {}s of schemathesis",
        options.max_time_secs
    );
    clients::with_server(binary, run_dir, database_url, |url, key| {
        let mut st = Command::new(venv.join("bin/st"));
        st.arg("--config-file")
            .arg(root.join(CONFIG))
            .arg("run")
            .arg(root.join(DOCUMENT))
            .args(["--url", url])
            .args(["--checks", "all"])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args(["--max-time", &options.max_time_secs.to_string()])
            .args(["--seed", &options.seed.to_string()])
            .args(["--generation-database", "none"])
            .args(["--request-timeout", "10"])
            .args(["--suppress-health-check", "all"])
            .args(["--report", "junit", "--report-dir"])
            .arg(run_dir)
            .arg("--no-color")
            .args(["--header", &format!("X-Plystra-API-Key: {key}")])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // What schemathesis keeps between runs (`.schemathesis/`) stays with the run.
            .current_dir(run_dir);
        process::status(st)
    })
}

/// A database created for one run on the PostgreSQL server and dropped afterwards.
struct ThrowawayDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ThrowawayDatabase {
    /// Creates it; `None` when the server does not answer.
    fn create() -> Result<Option<Self>> {
        let admin_url = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| POSTGRES_DEFAULT_URL.to_owned());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("plystra_fuzz_{}_{nanos:x}", std::process::id());
        let Some(url) = with_database(&admin_url, &name) else {
            bail!("{POSTGRES_URL_VAR} is not a postgres://…/database URL");
        };
        let answered = psql(&admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(answered.then_some(Self {
            admin_url,
            name,
            url,
        }))
    }
}

impl Drop for ThrowawayDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> Option<String> {
    let (address, query) = match url.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (url, None),
    };
    let rest = address
        .strip_prefix("postgres://")
        .or_else(|| address.strip_prefix("postgresql://"))?;
    let host = rest.split('/').next()?;
    let scheme = &address[..address.len() - rest.len()];
    Some(match query {
        Some(query) => format!("{scheme}{host}/{name}?{query}"),
        None => format!("{scheme}{host}/{name}"),
    })
}

/// Runs one statement with `psql`; false when the server could not be reached.
fn psql(url: &str, statement: &str) -> Result<bool> {
    let output = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-Atqc", statement])
        .output()
        .context("starting psql (install PostgreSQL's client)")?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        if text.contains("could not connect") || text.contains("Connection refused") {
            return Ok(false);
        }
        bail!("psql `{statement}` failed: {}", text.trim());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/x")
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "y").as_deref(),
            Some("postgresql://u:p@h/y?sslmode=disable")
        );
        assert_eq!(with_database("sqlite://x.db", "z"), None);
    }
}
