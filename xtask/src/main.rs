//! `cargo xtask`: the repository's automation. `cargo xtask verify` is the one gate that CI and
//! contributors run; the other sub-commands run its steps one at a time.

mod browser;
mod cargo_toml;
mod clients;
mod finding;
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
    /// The workspace to check (defaults to this repository); the checks' tests point it at
    /// fixture workspaces.
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

fn run(cli: Cli) -> Result<bool> {
    let root = match cli.root {
        Some(root) => root,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
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
    }
}
