//! The command line: global flags, the sub-command tree, and dispatch.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use plystra_kernel::storage::{self, Database, DatabaseConfig, Dialect};

use crate::{Outcome, doctor, ent, migrate};

/// The Plystra operator CLI.
#[derive(Debug, Parser)]
#[command(name = "plystractl", version, about, long_about = None)]
pub struct Cli {
    /// Database URL [env: PLYSTRA_DATABASE_URL, DATABASE_URL] [default: sqlite://./data/plystra.db]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Versioned SQL migrations.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// The declared schema model against the live database.
    #[command(subcommand, alias = "schema")]
    Ent(EntCommand),
    /// Check the environment, configuration, database, migrations, schema and capabilities.
    Doctor {
        /// Also check a running server at this base URL (http://host:port): its readiness, and
        /// its capabilities with the API key.
        #[arg(long)]
        url: Option<String>,
        /// The API key for --url: a managed key (ply_ak_…) with capabilities:read, or the
        /// bootstrap key [env: PLYSTRACTL_API_KEY, then PLYSTRA_API_KEY]
        #[arg(long)]
        api_key: Option<String>,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Backups taken while plystrad runs, and their check.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// A running server's capabilities and their states.
    Capabilities {
        /// The server's base URL (http://host:port).
        #[arg(long)]
        url: String,
        /// A managed key (ply_ak_…) with capabilities:read, or the bootstrap key
        /// [env: PLYSTRACTL_API_KEY, then PLYSTRA_API_KEY]
        #[arg(long)]
        api_key: Option<String>,
    },
    /// Demo data, loaded through a running server's API.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// The bootstrap handoff: the first super admin, and API keys for headless setups.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `demo` sub-commands.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Loads the Finance Reviewer fixture (users alice and bob, space_acme, the finance and
    /// legal groups, invoices 001 and 002, the finance_approver role). Safe to rerun.
    Seed {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The API key [env: PLYSTRACTL_API_KEY, then PLYSTRA_API_KEY]
        #[arg(long)]
        api_key: Option<String>,
    },
}

/// What `bootstrap-super-admin` does when a super admin exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IfExistsArg {
    /// Succeed without change.
    Ok,
    /// Fail (exit 1).
    Error,
}

/// `admin` sub-commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create the first instance_super_admin grant for an active user; refuses when one exists.
    BootstrapSuperAdmin {
        /// The user (`user_…`).
        #[arg(long)]
        user_id: String,
        /// When an active super admin exists: `ok` (no change, exit 0) or `error` (exit 1).
        #[arg(long, value_enum, default_value = "error")]
        if_exists: IfExistsArg,
    },
    /// Create a managed API key and print it once. Needs PLYSTRA_API_KEY_SECRET.
    CreateApiKey {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// instance, space or group.
        #[arg(long)]
        level: String,
        /// A permission key (repeatable, or a comma list).
        #[arg(long, required = true)]
        permission: Vec<String>,
        /// The space of a space or group key.
        #[arg(long)]
        space_id: Option<String>,
        /// The group of a group key.
        #[arg(long)]
        group_id: Option<String>,
        /// When the key stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
}

/// `audit` sub-commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; print `audit chain verified (N records)` or the first broken link.
    Verify,
    /// Write the chain's records, from the first one created at or after --since (else from the
    /// first), as JSON lines with their seq, prev_hash, content_hash and entry_hash, so that a
    /// third party can check the range offline with `audit verify-export`.
    Export {
        /// RFC 3339 instant: start at the first record created at or after it.
        #[arg(long)]
        since: Option<String>,
        /// The format (JSON lines).
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Check an export offline (no database): every record recomputes to its hashes and follows
    /// the one before it; print the range and what it is chained to, or the first broken line.
    VerifyExport {
        /// The export (JSON lines); `-` for standard input.
        file: std::path::PathBuf,
    },
}

/// `backup` sub-commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write a consistent copy of the database (SQLite: an online copy; PostgreSQL: pg_dump's
    /// custom format) to a new file, while plystrad keeps running.
    Create {
        /// The file to write; it must not exist.
        #[arg(long)]
        output: std::path::PathBuf,
    },
    /// Check a backup: it opens, its migrations match this build, SQLite's integrity check
    /// passes and its audit chain verifies. A PostgreSQL dump is restored into a scratch database
    /// on the server --database-url names, then dropped.
    Verify {
        /// The backup file.
        file: std::path::PathBuf,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

/// Where migration files come from.
#[derive(Debug, Clone, Args)]
pub struct Source {
    /// Read migrations from this directory (holding sqlite/ and postgres/) instead of the files
    /// embedded in this binary.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `migrate` sub-commands.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Each migration file: applied, pending or checksum-mismatch.
    Status(Source),
    /// What `up` would apply, and whether every file respects its namespace.
    Plan(Source),
    /// Apply the pending migrations (as the owner role, on PostgreSQL).
    Up {
        #[command(flatten)]
        source: Source,
        /// PostgreSQL: then give this runtime role exactly what it needs, as `grants --apply`
        /// does (new tables need their grants before plystrad uses them).
        #[arg(long, value_name = "ROLE")]
        grant_to: Option<String>,
    },
    /// Check that applied files are unchanged and plystra.sum matches.
    Verify(Source),
    /// Write (or with --check, verify) plystra.sum for each dialect, and check that every file
    /// stays within a namespace a linked capability owns. Needs no database.
    Hash {
        /// Fail if a plystra.sum is out of date instead of writing it.
        #[arg(long)]
        check: bool,
        /// The migrations directory.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
    /// PostgreSQL: print (or with --apply, run as the owner role) the grants that give
    /// plystrad's runtime role exactly what it needs: read and write the tables, but only read
    /// and insert on the audit log, and own nothing.
    Grants {
        /// The runtime role (the one plystrad's PLYSTRA_DATABASE_URL logs in as).
        #[arg(long)]
        role: String,
        /// Run the statements in one transaction instead of printing them.
        #[arg(long)]
        apply: bool,
    },
    /// Create an empty migration for a namespace in every dialect.
    New {
        /// The namespace (a linked capability's provides.migrations.namespace).
        namespace: String,
        /// What the migration does, in snake_case.
        name: String,
        /// The migrations directory.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
    },
}

/// `ent` (alias `schema`) sub-commands.
#[derive(Debug, Subcommand)]
pub enum EntCommand {
    /// Compare the live tables, columns, indexes and triggers with the schema model; exit 0 only
    /// without drift.
    Check,
    /// Each modelled table and whether it matches, with the schema version.
    Status,
    /// Explains that schema changes are applied with `migrate up`.
    Apply,
}

/// The database URL: the flag, else `PLYSTRA_DATABASE_URL`, else `DATABASE_URL`, else the default.
pub fn database_url(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| {
            plystra_kernel::config_guards::DATABASE_URL_VARS
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
        .unwrap_or_else(|| storage::DEFAULT_DATABASE_URL.to_owned())
}

/// Opens the database at `url`, with the pool settings of the environment.
pub async fn open(url: &str) -> anyhow::Result<Database> {
    let mut config = DatabaseConfig::from_lookup(&|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)?;
    config.url = url.to_owned();
    Ok(storage::connect(&config).await?)
}

/// The dialect of `url`, or a usage error.
pub fn dialect_of(url: &str) -> anyhow::Result<Dialect> {
    Dialect::from_url(url).with_context(|| {
        format!(
            "unsupported database URL `{}`: expected sqlite://… or postgres://…",
            storage::redact_url(url)
        )
    })
}

/// The migration namespaces the linked capabilities own.
pub fn owned_namespaces() -> Vec<&'static str> {
    plystra_kernel::storage::migrations::linked_namespaces()
}

/// Runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let url = database_url(cli.database_url.as_deref());
    match cli.command {
        Command::Migrate(command) => migrate::run(command, &url, cli.json).await,
        Command::Ent(command) => ent::run(command, &url, cli.json).await,
        Command::Doctor {
            url: server,
            api_key,
        } => Ok(doctor::run(&url, server.as_deref(), api_key, cli.json).await),
        Command::Audit(AuditCommand::Verify) => crate::audit::verify(&url, cli.json).await,
        Command::Backup(BackupCommand::Create { output }) => {
            crate::backup::create(&url, &output).await
        }
        Command::Backup(BackupCommand::Verify { file }) => {
            crate::backup::verify(&url, &file, cli.json).await
        }
        Command::Audit(AuditCommand::Export {
            since,
            format: ExportFormat::Jsonl,
            output,
        }) => crate::audit::export(&url, since.as_deref(), output.as_deref()).await,
        Command::Audit(AuditCommand::VerifyExport { file }) => {
            crate::audit::verify_export(&file, cli.json)
        }
        Command::Demo(DemoCommand::Seed {
            url: server,
            api_key,
        }) => {
            crate::demo::seed(
                &server,
                crate::api::key(api_key).map(|(key, _)| key),
                cli.json,
            )
            .await
        }
        Command::Admin(command) => crate::admin::run(command, &url, cli.json).await,
        Command::Capabilities {
            url: server,
            api_key,
        } => Ok(crate::capabilities::run(&server, api_key, cli.json).await),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn schema_is_an_alias_of_ent() {
        let cli = Cli::try_parse_from(["plystractl", "schema", "check"]).unwrap();
        assert!(matches!(cli.command, Command::Ent(EntCommand::Check)));
        let cli =
            Cli::try_parse_from(["plystractl", "--json", "migrate", "hash", "--check"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Migrate(MigrateCommand::Hash { check: true, .. })
        ));
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        assert_eq!(database_url(Some("sqlite::memory:")), "sqlite::memory:");
    }
}
