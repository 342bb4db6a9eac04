//! The storage layer: opening the database from a URL, embedded migrations and their ledger, live
//! schema introspection and drift detection against the declared schema model, and the runtime
//! role's least privileges on PostgreSQL.
//!
//! The handle itself ([`Database`]), transactions and storage errors live in
//! `plystra_contracts::storage`, because capabilities receive them; this module opens and
//! maintains the database the handle points at.

pub mod boot;
pub mod drift;
pub mod introspect;
pub mod migrations;
pub mod probe;
pub mod roles;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use plystra_contracts::storage::{Database, Dialect, StorageError, Transaction};

/// The database URL used when none is configured: a SQLite file under `./data`, for development.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/plystra.db";

/// How to open the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://path`, `sqlite::memory:` or `postgres://…`.
    pub url: String,
    /// The pool's maximum number of connections (PostgreSQL; file-backed SQLite).
    pub max_connections: u32,
    /// How long to wait for a pooled connection (and for the first connection) before failing.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a locked database before reporting it busy.
    pub busy_timeout: Duration,
    /// A cap on the SQLite file's size, in pages (`PRAGMA max_page_count` on every pooled
    /// connection); a write past it fails as "database or disk is full". `None`: SQLite's default.
    /// Tests use it to fill a database without filling a disk.
    pub sqlite_max_page_count: Option<u32>,
}

impl DatabaseConfig {
    /// The defaults for `url`: 10 connections, 5 s acquire timeout, 5 s SQLite busy timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            sqlite_max_page_count: None,
        }
    }
}

/// The settings [`DatabaseConfig::from_lookup`] reads.
pub const MAX_CONNECTIONS_VAR: &str = "PLYSTRA_DATABASE_MAX_CONNECTIONS";
/// See [`MAX_CONNECTIONS_VAR`].
pub const ACQUIRE_TIMEOUT_VAR: &str = "PLYSTRA_DATABASE_ACQUIRE_TIMEOUT_SECS";

impl DatabaseConfig {
    /// The configuration from settings: the URL from `PLYSTRA_DATABASE_URL`, else `DATABASE_URL`,
    /// else [`DEFAULT_DATABASE_URL`]; `PLYSTRA_DATABASE_MAX_CONNECTIONS` (≥ 1) and
    /// `PLYSTRA_DATABASE_ACQUIRE_TIMEOUT_SECS` (≥ 1) override the defaults. The error names the
    /// bad setting.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let url = crate::config_guards::DATABASE_URL_VARS
            .iter()
            .find_map(|name| get(name))
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let mut config = Self::new(url);
        let positive = |name: &str| -> Result<Option<u32>, String> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n >= 1 => Ok(Some(n)),
                    _ => Err(format!("{name}={v}: expected a whole number of at least 1")),
                },
            }
        };
        if let Some(n) = positive(MAX_CONNECTIONS_VAR)? {
            config.max_connections = n;
        }
        if let Some(secs) = positive(ACQUIRE_TIMEOUT_VAR)? {
            config.acquire_timeout = Duration::from_secs(u64::from(secs));
        }
        Ok(config)
    }
}

/// The database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names no supported backend.
    #[error("unsupported database URL `{url}`: expected sqlite://… or postgres://…")]
    UnsupportedUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// The URL could not be parsed.
    #[error("invalid database URL `{url}`: {source}")]
    InvalidUrl {
        /// The URL, with any password removed.
        url: String,
        /// The driver's complaint.
        #[source]
        source: sqlx::Error,
    },
    /// The SQLite file's directory could not be created.
    #[error("cannot create the directory {dir} for the SQLite database: {source}")]
    CreateDir {
        /// The directory.
        dir: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database did not answer.
    #[error("cannot connect to the database at `{url}`: {source}")]
    Unreachable {
        /// The URL, with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// Opens the database `config.url` names and checks that it answers.
///
/// SQLite: creates the file and its parent directory, turns on WAL, foreign keys and the busy
/// timeout; `sqlite::memory:` is a single-connection in-memory database. PostgreSQL: a pool with
/// `max_connections` and `acquire_timeout`.
pub async fn connect(config: &DatabaseConfig) -> Result<Database, ConnectError> {
    let url = &config.url;
    let shown = redact_url(url);
    match Dialect::from_url(url) {
        Some(Dialect::Sqlite) => {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|source| ConnectError::InvalidUrl {
                    url: shown.clone(),
                    source,
                })?
                .foreign_keys(true)
                .busy_timeout(config.busy_timeout);
            let options = match config.sqlite_max_page_count {
                Some(pages) => options.pragma("max_page_count", pages.to_string()),
                None => options,
            };
            let in_memory = is_sqlite_memory(url);
            let pool_options = SqlitePoolOptions::new().acquire_timeout(config.acquire_timeout);
            let (options, pool_options) = if in_memory {
                // Every connection would otherwise see its own empty database.
                (
                    options,
                    pool_options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None),
                )
            } else {
                if let Some(dir) = options
                    .get_filename()
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    create_dir(dir)?;
                }
                (
                    options
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        // FULL: every commit fsyncs the WAL. "Acknowledged" must survive power
                        // loss, not only a crash; group commit is how throughput survives it.
                        .synchronous(SqliteSynchronous::Full),
                    guard_pool(pool_options.max_connections(config.max_connections.max(1))),
                )
            };
            let pool = pool_options
                .connect_with(options)
                .await
                .map_err(|source| ConnectError::Unreachable { url: shown, source })?;
            Ok(Database::Sqlite(pool))
        }
        Some(Dialect::Postgres) => {
            let options =
                PgConnectOptions::from_str(url).map_err(|source| ConnectError::InvalidUrl {
                    url: shown.clone(),
                    source,
                })?;
            let pool = guard_pool(PgPoolOptions::new())
                .max_connections(config.max_connections.max(1))
                .acquire_timeout(config.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(|source| ConnectError::Unreachable { url: shown, source })?;
            Ok(Database::Postgres(pool))
        }
        None => Err(ConnectError::UnsupportedUrl { url: shown }),
    }
}

/// Keeps connections that cannot be trusted out of the pool, so that the server recovers from a
/// storage fault by itself:
///
/// - a connection still inside a transaction when it comes back (its `ROLLBACK` failed, as after
///   SQLite's "database or disk is full" ended the transaction under the driver) is closed, not
///   reused: a reuse would fail every later `BEGIN`;
/// - from a write fault (full, read-only) until a write succeeds again, every connection is
///   closed after use, and after that those opened before the recovery (at release and before
///   reuse): SQLite keeps a file opened read-only read-only, and a PostgreSQL session keeps the
///   read-only default it started with, after the operator has fixed the cause.
///
/// Not for in-memory SQLite, whose one connection is the database.
fn guard_pool<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
) -> sqlx::pool::PoolOptions<DB> {
    options
        .before_acquire(|_conn, meta| {
            Box::pin(async move {
                Ok(!plystra_contracts::storage::connection_predates_last_fault(
                    meta.age,
                ))
            })
        })
        .after_release(|conn, meta| {
            Box::pin(async move {
                if plystra_contracts::storage::connection_predates_last_fault(meta.age) {
                    return Ok(false);
                }
                if sqlx::Connection::is_in_transaction(conn) {
                    // A dropped transaction's rollback is queued; let it run, then look again.
                    sqlx::Connection::ping(conn).await?;
                    if sqlx::Connection::is_in_transaction(conn) {
                        tracing::warn!(
                            "a pooled connection could not end its transaction; closing it"
                        );
                        return Ok(false);
                    }
                }
                Ok(true)
            })
        })
}

fn create_dir(dir: &Path) -> Result<(), ConnectError> {
    std::fs::create_dir_all(dir).map_err(|source| ConnectError::CreateDir {
        dir: dir.display().to_string(),
        source,
    })
}

fn is_sqlite_memory(url: &str) -> bool {
    url == "sqlite::memory:" || url.starts_with("sqlite::memory:?") || url.contains("mode=memory")
}

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://./data/plystra.db"),
            "sqlite://./data/plystra.db"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn config_from_settings() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let config = DatabaseConfig::from_lookup(&vars(&[])).unwrap();
        assert_eq!(config, DatabaseConfig::new(DEFAULT_DATABASE_URL));
        let config = DatabaseConfig::from_lookup(&vars(&[
            ("DATABASE_URL", "postgres://b/db"),
            (MAX_CONNECTIONS_VAR, "32"),
            (ACQUIRE_TIMEOUT_VAR, "9"),
        ]))
        .unwrap();
        assert_eq!(config.url, "postgres://b/db");
        assert_eq!(config.max_connections, 32);
        assert_eq!(config.acquire_timeout, Duration::from_secs(9));
        let config = DatabaseConfig::from_lookup(&vars(&[
            ("PLYSTRA_DATABASE_URL", "postgres://a/db"),
            ("DATABASE_URL", "postgres://b/db"),
        ]))
        .unwrap();
        assert_eq!(config.url, "postgres://a/db");
        let err = DatabaseConfig::from_lookup(&vars(&[(MAX_CONNECTIONS_VAR, "0")])).unwrap_err();
        assert!(err.starts_with(MAX_CONNECTIONS_VAR), "{err}");
    }

    #[tokio::test]
    async fn sqlite_creates_the_file_and_its_directory_with_wal_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/plystra.db");
        let db = connect(&DatabaseConfig::new(format!("sqlite://{}", path.display())))
            .await
            .unwrap();
        assert!(path.exists());
        let Database::Sqlite(pool) = &db else {
            panic!("not sqlite")
        };
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        db.close().await;
    }

    #[tokio::test]
    async fn sqlite_memory_keeps_its_data_across_queries() {
        let db = connect(&DatabaseConfig::new("sqlite::memory:"))
            .await
            .unwrap();
        let Database::Sqlite(pool) = &db else {
            panic!("not sqlite")
        };
        sqlx::query("CREATE TABLE t (id TEXT)")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES ('a')")
            .execute(pool)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn unsupported_and_unreachable_urls_fail() {
        assert!(matches!(
            connect(&DatabaseConfig::new("mysql://x@y/z")).await,
            Err(ConnectError::UnsupportedUrl { .. })
        ));
        let mut config = DatabaseConfig::new("postgres://nobody:pw@127.0.0.1:1/none");
        config.acquire_timeout = Duration::from_secs(2);
        let err = connect(&config).await.unwrap_err();
        assert!(matches!(err, ConnectError::Unreachable { .. }));
        assert!(!err.to_string().contains(":pw@"), "{err}");
    }
}
