//! What `plystractl doctor` asks a database about itself beyond answering: the file a SQLite URL
//! names and whether this user can write it and its directory (looked at before connecting, so
//! that doctor creates nothing), SQLite's own integrity
//! check, and whether a PostgreSQL login is a superuser; and the consistent copy of a SQLite
//! database `plystractl backup create` makes.

use std::path::{Path, PathBuf};
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

/// Why this process cannot write the SQLite database `file`, found without opening it: the file,
/// or its directory (where SQLite makes its `-wal` and `-shm` files), refuses writes to this
/// user (`access(2)`; an immutable file refuses even root). `None` when both take writes.
/// Opening a database that cannot be written still makes `-wal` and `-shm` files beside it when
/// the directory allows, so doctor asks this first and does not open such a file.
pub fn sqlite_unwritable(file: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use rustix::fs::{Access, access};
        if let Err(e) = access(file, Access::WRITE_OK) {
            return Some(format!(
                "{} is not writable by this user: {}",
                file.display(),
                std::io::Error::from(e)
            ));
        }
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Err(e) = access(dir, Access::WRITE_OK) {
            return Some(format!(
                "its directory {} is not writable by this user, and SQLite makes its -wal and \
                 -shm files there: {}",
                dir.display(),
                std::io::Error::from(e)
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    None
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

/// Writes a consistent copy of a SQLite database to `path` while others keep writing
/// (`VACUUM INTO`: one read transaction, so the copy is one committed state). `path` must not
/// exist. An error on PostgreSQL, which `pg_dump` copies.
pub async fn sqlite_copy_to(db: &Database, path: &std::path::Path) -> Result<(), StorageError> {
    match db {
        Database::Sqlite(pool) => {
            sqlx::query("VACUUM INTO ?")
                .bind(path.to_string_lossy().into_owned())
                .execute(pool)
                .await?;
            Ok(())
        }
        Database::Postgres(_) => Err(StorageError::from_sqlx(sqlx::Error::Protocol(
            "a PostgreSQL database is copied with pg_dump".into(),
        ))),
    }
}

/// Creates the PostgreSQL database `name` (a plain identifier) on the server `db` is connected
/// to; for checking a restored backup.
pub async fn create_database(db: &Database, name: &str) -> Result<(), StorageError> {
    on_postgres(db, &format!("CREATE DATABASE {}", identifier(name)?)).await
}

/// Drops the PostgreSQL database `name`, closing its sessions.
pub async fn drop_database(db: &Database, name: &str) -> Result<(), StorageError> {
    on_postgres(
        db,
        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", identifier(name)?),
    )
    .await
}

fn identifier(name: &str) -> Result<&str, StorageError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(name)
    } else {
        Err(StorageError::from_sqlx(sqlx::Error::Protocol(format!(
            "{name:?} is not a plain database name"
        ))))
    }
}

async fn on_postgres(db: &Database, statement: &str) -> Result<(), StorageError> {
    match db {
        Database::Postgres(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(pool)
                .await?;
            Ok(())
        }
        Database::Sqlite(_) => Err(StorageError::from_sqlx(sqlx::Error::Protocol(
            "databases are created only on PostgreSQL".into(),
        ))),
    }
}
