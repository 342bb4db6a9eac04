//! `cargo xtask`: the repository's automation. `cargo xtask verify` is the one gate that CI and
//! contributors run; the other sub-commands run its steps one at a time.

mod browser;
mod cargo_toml;
mod clients;
mod finding;
mod fuzz;
mod migrations;
mod openapi;
mod privileged;
mod process;
mod quickstart;
mod suite;
mod tidy;
mod verify;
mod workspace;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Plystra's repository automation.
#[derive(Debug, Parser)]
#[command(bin_name = "cargo xtask", version, about)]
struct Cli {
    /// The workspace to check (defaults to the workspace that holds the current directory, as
    /// `cargo locate-project --workspace` finds it); the checks' tests point it at fixture
    /// workspaces.
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every gate (fmt, clippy, privileged, tidy, tests on both backends, OpenAPI and
    /// migration drift), report every failure, and exit non-zero if any failed.
    Verify,
    /// Check that only crates under system/ can reach the privileged registration path.
    Privileged,
    /// Write the OpenAPI documents under openapi/ (or, with --check, compare them).
    Openapi {
        /// Compare instead of writing; fail on any difference.
        #[arg(long)]
        check: bool,
    },
    /// Rewrite the migration checksum files (or, with --check, verify them).
    Migrations {
        /// Verify instead of writing; fail on any drift.
        #[arg(long)]
        check: bool,
    },
    /// Module docs, dbg!/todo!, workspace dependencies and the system bundle's links.
    Tidy,
    /// Run the workspace's tests on SQLite, then on PostgreSQL.
    Test,
    /// Drive Swagger UI of a running plystrad in headless Chromium (installs chromium and
    /// playwright-core when missing).
    Browser,
    /// Run the README's quickstart as written, against a throwaway database.
    Quickstart,
    /// Validate the OpenAPI document, generate a Python client from it and run the Finance
    /// Reviewer scenario through that client against a real plystrad.
    Clients,
    /// Run schemathesis (pinned, in a virtualenv) with every check and phase against a release
    /// plystrad on SQLite and on PostgreSQL; fail on any finding.
    Fuzz {
        /// Only this backend (default: both).
        #[arg(long, value_enum)]
        backend: Option<fuzz::Backend>,
        /// schemathesis's time budget per backend, in seconds.
        #[arg(long, default_value_t = 300)]
        max_time: u64,
        /// Fuzz the debug build instead of the release build.
        #[arg(long)]
        debug: bool,
        /// The random seed (a failing run is repeated with the same seed).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The root of the workspace that holds the current directory, found at run time.
///
/// Not the compile-time `CARGO_MANIFEST_DIR`: cargo reuses an already-built xtask from a shared
/// target directory when the repository is copied or cloned elsewhere, and the checks must
/// inspect the tree they were run in, not the one the binary was built from.
fn current_workspace() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("running `cargo locate-project --workspace`")?;
    if !output.status.success() {
        anyhow::bail!(
            "no Cargo workspace holds the current directory (run cargo xtask inside the \
             repository, or pass --root DIR): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    manifest
        .parent()
        .map(Path::to_path_buf)
        .with_context(|| format!("`{}` has no parent directory", manifest.display()))
}

fn run(cli: Cli) -> Result<bool> {
    let root = match cli.root {
        Some(root) => root,
        None => current_workspace()?,
    };
    let root = root
        .canonicalize()
        .with_context(|| format!("no workspace at {}", root.display()))?;
    match cli.command {
        Command::Verify => Ok(verify::run(&root)),
        Command::Privileged => privileged::run(&root),
        Command::Openapi { check } => openapi::run(&root, check),
        Command::Migrations { check } => migrations::run(&root, check),
        Command::Tidy => tidy::run(&root),
        Command::Test => suite::run_all(&root),
        Command::Browser => browser::run(&root),
        Command::Quickstart => quickstart::run(&root),
        Command::Clients => clients::run(&root),
        Command::Fuzz {
            backend,
            max_time,
            debug,
            seed,
        } => fuzz::run(
            &root,
            &fuzz::Options {
                backends: match backend {
                    Some(backend) => vec![backend],
                    None => vec![fuzz::Backend::Sqlite, fuzz::Backend::Postgres],
                },
                max_time_secs: max_time,
                release: !debug,
                seed,
            },
        ),
    }
}
