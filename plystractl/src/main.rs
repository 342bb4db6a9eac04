//! `plystractl`, the Plystra operator CLI: migrations, schema drift checks, `doctor`, audit
//! chain verification, the admin bootstrap steps, the demo seed and a running server's
//! capabilities.
//!
//! Exit codes: 0 success, 1 a check failed (or the operation did), 2 usage error.

/// Prints a line to stdout, ignoring a closed pipe (`plystractl … | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod admin;
mod api;
mod audit;
mod backup;
mod capabilities;
mod cli;
mod demo;
mod doctor;
mod ent;
mod migrate;

use std::process::ExitCode;

use clap::Parser;

// Links the system capabilities: their manifests (migration namespaces) and schema models.
extern crate plystra_system as _;

/// What a command concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success; exit 0.
    Ok,
    /// A check failed; exit 1.
    Failed,
    /// The command cannot do what was asked; exit 2.
    Usage,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::Usage => ExitCode::from(2),
        }
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
