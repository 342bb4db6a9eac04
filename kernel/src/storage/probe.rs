//! What `plystractl doctor` asks a database about itself beyond answering: the file a SQLite URL
//! names (looked at before connecting, so that doctor creates nothing), SQLite's own integrity
//! check, and whether a PostgreSQL login is a superuser.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;

use super::{Database, StorageError};

/// The file a `sqlite://` URL names, or `None` for an in-memory database or another backend.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") || super::is_sqlite_memory(url) {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// SQLite's `PRAGMA quick_check`: `None` when it answers `ok`, else its first findings. Always
/// `None` on PostgreSQL, which checks its pages itself.
pub async fn integrity_problems(db: &Database) -> Result<Option<String>, StorageError> {
    match db {
        Database::Sqlite(pool) => {
            let rows: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
                .fetch_all(pool)
                .await?;
            Ok((rows != ["ok"]).then(|| rows.join("; ")))
        }
        Database::Postgres(_) => Ok(None),
    }
}

/// The PostgreSQL login doctor connected as, and whether it is a superuser; `None` on SQLite.
pub async fn login_role(db: &Database) -> Result<Option<(String, bool)>, StorageError> {
    match db {
        Database::Sqlite(_) => Ok(None),
        Database::Postgres(pool) => {
            let row: (String, bool) = sqlx::query_as(
                "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user",
            )
            .fetch_one(pool)
            .await?;
            Ok(Some(row))
        }
    }
}
