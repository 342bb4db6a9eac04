//! The database handle capabilities receive, its transactions, and the typed storage errors that
//! map onto [`ApiError`] without ever exposing SQL text.
//!
//! A [`Database`] is either a SQLite or a PostgreSQL pool. Capabilities build every statement with
//! sea-query (re-exported here as [`sea_query`]) and run it through [`Database::execute`],
//! [`Database::fetch_all`] and friends, or through a [`Transaction`]; the handle picks the SQL
//! dialect. Row types implement `sqlx::FromRow` for both backends' rows (tuples do).
//!
//! Bind instants as `time::OffsetDateTime` (TEXT on SQLite, TIMESTAMPTZ on PostgreSQL) and JSON as
//! `serde_json::Value` (TEXT / JSONB): sea-query's `with-time` and `with-json` values encode
//! correctly on both backends, where a plain string would not type-check on PostgreSQL.

use sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_query_sqlx::{SqlxBinder, SqlxValues};
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, FromRow};

use crate::error::{ApiError, ErrorCode};

pub use sea_query;
pub use sea_query_sqlx;
pub use sqlx;
pub use time;

/// The SQL dialects Plystra runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    /// SQLite 3 (WAL, foreign keys on).
    Sqlite,
    /// PostgreSQL 14 or later.
    Postgres,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 2] = [Dialect::Sqlite, Dialect::Postgres];

    /// The dialect's name, as used in directory names (`migrations/<name>/`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The dialect a database URL names, from its scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split(':').next()?;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }

    /// The dialect named `name` (`sqlite` or `postgres`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }

    /// Renders a sea-query statement in this dialect, with its bound values.
    pub fn build<S: SqlxBinder>(self, statement: &S) -> (String, SqlxValues) {
        match self {
            Self::Sqlite => statement.build_sqlx(SqliteQueryBuilder),
            Self::Postgres => statement.build_sqlx(PostgresQueryBuilder),
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed storage operation. `Display` never includes SQL text or driver messages; the driver
/// error stays available as the `source` for logs.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique or primary key constraint refused the write.
    #[error("a record with the same unique key already exists")]
    Conflict {
        /// The constraint's name, when the driver reports it.
        constraint: Option<String>,
    },
    /// A foreign key constraint refused the write: a referenced record does not exist (or belongs
    /// to another space).
    #[error("a referenced record does not exist")]
    InvalidReference {
        /// The constraint's name, when the driver reports it.
        constraint: Option<String>,
    },
    /// A not-null or check constraint refused the write.
    #[error("a value violates a constraint")]
    ConstraintViolation {
        /// The constraint's name, when the driver reports it.
        constraint: Option<String>,
    },
    /// A query that must return a row returned none.
    #[error("no such record")]
    NotFound,
    /// The database cannot be reached (connection refused, pool timeout, database busy).
    #[error("the database is unavailable")]
    Unavailable {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Any other database failure.
    #[error("database operation failed")]
    Database {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl StorageError {
    /// Classifies a driver error.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable { source: err },
            sqlx::Error::Database(db) => {
                let constraint = db.constraint().map(str::to_owned);
                match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => Self::Conflict { constraint },
                    sqlx::error::ErrorKind::ForeignKeyViolation => {
                        Self::InvalidReference { constraint }
                    }
                    sqlx::error::ErrorKind::NotNullViolation
                    | sqlx::error::ErrorKind::CheckViolation => {
                        Self::ConstraintViolation { constraint }
                    }
                    _ if is_unavailable_code(db.code().as_deref()) => {
                        Self::Unavailable { source: err }
                    }
                    _ => Self::Database { source: err },
                }
            }
            _ => Self::Database { source: err },
        }
    }

    /// Whether the failure means the database cannot be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// SQLite `BUSY`/`LOCKED` (and their extended codes), PostgreSQL connection-class (`08…`),
/// shutdown (`57P0…`) and resource (`53…`) SQLSTATEs.
fn is_unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if code.len() != 5 {
        // SQLite reports numeric (possibly extended) result codes; SQLSTATEs have five characters.
        return code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6));
    }
    code.starts_with("08") || code.starts_with("57P0") || code.starts_with("53")
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_sqlx(err)
    }
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        let with_constraint = |e: ApiError, c: Option<String>| match c {
            Some(c) => e.with_detail("constraint", c),
            None => e,
        };
        match err {
            StorageError::Conflict { constraint } => with_constraint(
                ApiError::new(
                    ErrorCode::Conflict,
                    "a record with the same unique key already exists",
                ),
                constraint,
            ),
            StorageError::InvalidReference { constraint } => with_constraint(
                ApiError::new(
                    ErrorCode::ValidationFailed,
                    "a referenced record does not exist",
                ),
                constraint,
            ),
            StorageError::ConstraintViolation { constraint } => with_constraint(
                ApiError::new(ErrorCode::ValidationFailed, "a value violates a constraint"),
                constraint,
            ),
            StorageError::NotFound => ApiError::new(ErrorCode::NotFound, "no such record"),
            StorageError::Unavailable { .. } => ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "the database is unavailable",
            ),
            StorageError::Database { .. } => {
                ApiError::new(ErrorCode::InternalError, "internal error")
            }
        }
    }
}

/// A row type both backends can decode.
pub trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// The database handle: a connection pool of either backend. Cloning is cheap (the pool is shared).
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite pool.
    Sqlite(SqlitePool),
    /// A PostgreSQL pool.
    Postgres(PgPool),
}

macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Database::Sqlite($pool) => $body,
            Database::Postgres($pool) => $body,
        }
    };
}

impl Database {
    /// The handle's dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Checks that a connection can be acquired and answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Runs one statement; returns the number of rows it affected.
    pub async fn execute<S: SqlxBinder>(&self, statement: &S) -> Result<u64, StorageError> {
        let (sql, values) = self.dialect().build(statement);
        let done = on_pool!(self, |pool| sqlx::query_with(AssertSqlSafe(sql), values)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Runs a query and decodes every row.
    pub async fn fetch_all<T: Record, S: SqlxBinder>(
        &self,
        statement: &S,
    ) -> Result<Vec<T>, StorageError> {
        let (sql, values) = self.dialect().build(statement);
        let rows = on_pool!(self, |pool| sqlx::query_as_with::<_, T, _>(
            AssertSqlSafe(sql),
            values
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows)
    }

    /// Runs a query and decodes its first row, if any.
    pub async fn fetch_optional<T: Record, S: SqlxBinder>(
        &self,
        statement: &S,
    ) -> Result<Option<T>, StorageError> {
        let (sql, values) = self.dialect().build(statement);
        let row = on_pool!(self, |pool| sqlx::query_as_with::<_, T, _>(
            AssertSqlSafe(sql),
            values
        )
        .fetch_optional(pool)
        .await)?;
        Ok(row)
    }

    /// Runs a query that must return a row; no row is [`StorageError::NotFound`].
    pub async fn fetch_one<T: Record, S: SqlxBinder>(
        &self,
        statement: &S,
    ) -> Result<T, StorageError> {
        self.fetch_optional(statement)
            .await?
            .ok_or(StorageError::NotFound)
    }

    /// Begins a transaction. It rolls back when dropped without [`Transaction::commit`].
    ///
    /// On SQLite the transaction begins `IMMEDIATE`: it takes the write lock up front, so a
    /// transaction that reads before it writes can never fail to upgrade its snapshot, and
    /// concurrent writers wait (busy timeout) instead of erroring.
    pub async fn begin(&self) -> Result<Transaction, StorageError> {
        Ok(match self {
            Self::Sqlite(pool) => Transaction::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(pool) => Transaction::Postgres(pool.begin().await?),
        })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// An open transaction on either backend.
#[derive(Debug)]
pub enum Transaction {
    /// A SQLite transaction.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, Postgres>),
}

macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            Transaction::Sqlite($conn) => $body,
            Transaction::Postgres($conn) => $body,
        }
    };
}

impl Transaction {
    /// The transaction's dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement inside the transaction; returns the number of rows it affected.
    pub async fn execute<S: SqlxBinder>(&mut self, statement: &S) -> Result<u64, StorageError> {
        let (sql, values) = self.dialect().build(statement);
        let done = on_tx!(self, |tx| sqlx::query_with(AssertSqlSafe(sql), values)
            .execute(&mut **tx)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done)
    }

    /// Runs a query inside the transaction and decodes every row.
    pub async fn fetch_all<T: Record, S: SqlxBinder>(
        &mut self,
        statement: &S,
    ) -> Result<Vec<T>, StorageError> {
        let (sql, values) = self.dialect().build(statement);
        let rows = on_tx!(self, |tx| sqlx::query_as_with::<_, T, _>(
            AssertSqlSafe(sql),
            values
        )
        .fetch_all(&mut **tx)
        .await)?;
        Ok(rows)
    }

    /// Runs a query inside the transaction and decodes its first row, if any.
    pub async fn fetch_optional<T: Record, S: SqlxBinder>(
        &mut self,
        statement: &S,
    ) -> Result<Option<T>, StorageError> {
        let (sql, values) = self.dialect().build(statement);
        let row = on_tx!(self, |tx| sqlx::query_as_with::<_, T, _>(
            AssertSqlSafe(sql),
            values
        )
        .fetch_optional(&mut **tx)
        .await)?;
        Ok(row)
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), StorageError> {
        on_tx!(self, |tx| tx.commit().await)?;
        Ok(())
    }

    /// Rolls back.
    pub async fn rollback(self) -> Result<(), StorageError> {
        on_tx!(self, |tx| tx.rollback().await)?;
        Ok(())
    }
}

/// A JSON column as decoded.
pub type JsonColumn = Option<sqlx::types::Json<serde_json::Value>>;

/// Free-form metadata: a JSON object.
pub type Metadata = std::collections::BTreeMap<String, serde_json::Value>;

/// The `metadata` of a row as an API object.
pub fn metadata_out(column: JsonColumn) -> Option<Metadata> {
    match column.map(|j| j.0) {
        Some(serde_json::Value::Object(map)) => Some(map.into_iter().collect()),
        _ => None,
    }
}

/// The `metadata` of a request as a column value.
pub fn metadata_in(metadata: &Option<Metadata>) -> Option<serde_json::Value> {
    metadata
        .clone()
        .map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

/// The current instant at the microsecond precision both backends store, so a value written and
/// read back compares equal.
pub fn now() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// Implements `sqlx::FromRow` for both backends' rows with one body that reads columns by name:
/// `plystra_contracts::from_rows!(MyRow, |row| Ok(MyRow { id: row.try_get("id")? }));`
#[macro_export]
macro_rules! from_rows {
    ($ty:ty, |$row:ident| $body:expr) => {
        impl<'r> $crate::storage::sqlx::FromRow<'r, $crate::storage::sqlx::sqlite::SqliteRow>
            for $ty
        {
            fn from_row(
                $row: &'r $crate::storage::sqlx::sqlite::SqliteRow,
            ) -> Result<Self, $crate::storage::sqlx::Error> {
                #[allow(unused_imports)]
                use $crate::storage::sqlx::Row as _;
                $body
            }
        }
        impl<'r> $crate::storage::sqlx::FromRow<'r, $crate::storage::sqlx::postgres::PgRow>
            for $ty
        {
            fn from_row(
                $row: &'r $crate::storage::sqlx::postgres::PgRow,
            ) -> Result<Self, $crate::storage::sqlx::Error> {
                #[allow(unused_imports)]
                use $crate::storage::sqlx::Row as _;
                $body
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_from_url() {
        assert_eq!(
            Dialect::from_url("sqlite://./data/plystra.db"),
            Some(Dialect::Sqlite)
        );
        assert_eq!(Dialect::from_url("sqlite::memory:"), Some(Dialect::Sqlite));
        assert_eq!(
            Dialect::from_url("postgres://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(
            Dialect::from_url("postgresql://u@h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(Dialect::from_url("mysql://u@h/db"), None);
    }

    #[test]
    fn storage_errors_map_onto_api_codes_without_sql() {
        let conflict: ApiError = StorageError::Conflict {
            constraint: Some("sys_identity_users_email".into()),
        }
        .into();
        assert_eq!(conflict.code, ErrorCode::Conflict);
        assert_eq!(conflict.status().as_u16(), 409);
        let fk: ApiError = StorageError::InvalidReference { constraint: None }.into();
        assert_eq!(fk.code, ErrorCode::ValidationFailed);
        assert_eq!(fk.status().as_u16(), 400);
        let down: ApiError = StorageError::from_sqlx(sqlx::Error::PoolTimedOut).into();
        assert_eq!(down.code, ErrorCode::DatabaseUnavailable);
        assert_eq!(down.status().as_u16(), 503);
        let other: ApiError = StorageError::from_sqlx(sqlx::Error::Protocol(
            "SELECT password_hash FROM users".into(),
        ))
        .into();
        assert_eq!(other.code, ErrorCode::InternalError);
        assert!(!other.message.contains("SELECT"));
    }

    #[test]
    fn unavailable_codes() {
        assert!(is_unavailable_code(Some("5")));
        assert!(is_unavailable_code(Some("517")));
        assert!(is_unavailable_code(Some("08006")));
        assert!(is_unavailable_code(Some("57P01")));
        assert!(!is_unavailable_code(Some("23505")));
        assert!(!is_unavailable_code(None));
    }
}
