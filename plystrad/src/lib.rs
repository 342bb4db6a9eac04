//! plystrad, the Plystra HTTP server: configuration, logging, serving and offline introspection.
//!
//! It links the `plystra-system` bundle and serves whatever registered; it names no capability.

pub mod cli;
pub mod serve;

// Links the five system capabilities; their registrations reach the kernel through inventory.
extern crate plystra_system as _;
// The example business plugins, only with `--features example-plugins`.
#[cfg(feature = "example-plugins")]
extern crate plystra_example_notes as _;

/// The allocator of every binary that links this crate: the plystrad binary and the tests and
/// benchmarks that call into it. mimalloc, because glibc's malloc/free took 22 % of a check's
/// CPU; in an A/B of `check_load` (2026-12-04, on a loaded machine, before the regex fix of
/// `vendor/poem-openapi`) it served about 20-35 % more checks per second than the system
/// allocator and about as many as jemalloc, and its C part builds in seconds where jemalloc's
/// takes minutes. Built without transparent huge pages (the workspace's `no_thp` feature): with
/// them a server held 25-40 MB more resident memory for the same heap, and served no more
/// checks (BENCHMARKS.md, issue 17). With the workspace's `override` feature it also answers
/// C's `malloc`/`free`, so what SQLite allocates on its connections' threads comes from mimalloc
/// too and goes back to the system when freed, rather than staying in glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use cli::{Cli, Command, ServerSettings};
pub use serve::{ServeError, serve};

use std::process::ExitCode;

/// The entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse_with_settings();
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("plystrad: {message}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.clone().unwrap_or(Command::Serve);
    // Offline commands print documents on stdout; only warnings belong on stderr.
    let level = if matches!(command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    cli::init_logging(settings.log_format, level);
    match command {
        Command::Serve => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("plystrad: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve::run_until_signal(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("plystrad: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Openapi { format } => cli::print_openapi(format),
        Command::Capabilities { json } => cli::print_capabilities(json),
    }
}
