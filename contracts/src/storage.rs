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

use sea_query::{ExprTrait, PostgresQueryBuilder, SelectStatement, SqliteQueryBuilder};
use sea_query_sqlx::{SqlxBinder, SqlxValues};
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, FromRow};

use crate::error::{ApiError, ErrorCode};
use crate::text_rows::TextRows;

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
    /// The database answers but refuses writes: it is full (disk, quota or page limit) or
    /// read-only (file permissions, a read-only session or replica).
    #[error("the database cannot be written: {reason}")]
    Unwritable {
        /// Why.
        reason: Unwritable,
        /// The driver's error, when a statement failed (a readiness check may find the fault
        /// without one).
        #[source]
        source: Option<sqlx::Error>,
    },
    /// Any other database failure.
    #[error("database operation failed")]
    Database {
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

/// Why the database refuses writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwritable {
    /// Disk full, quota exceeded or the SQLite page limit reached (SQLite `FULL`, PostgreSQL
    /// `53100`).
    Full,
    /// The file or the session is read-only (SQLite `READONLY`, PostgreSQL `25006`).
    ReadOnly,
}

impl Unwritable {
    /// The reason as `details.reason` spells it: `full` or `read_only`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::ReadOnly => "read_only",
        }
    }
}

impl std::fmt::Display for Unwritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "it is full (disk, quota or page limit)",
            Self::ReadOnly => "it is read-only",
        })
    }
}

/// Whether the database was found unwritable, and when a write first succeeded after that.
///
/// Pooled connections are not trusted across a write fault (see
/// [`connection_predates_last_fault`]): a SQLite connection opened while its file was read-only
/// stays read-only, and a PostgreSQL session opened while the database defaulted to read-only
/// keeps that default, after the operator has fixed the cause. So from a fault until a write
/// succeeds again, every connection is closed after use; after that, those opened before the
/// recovery are closed too.
#[derive(Debug, Clone, Copy)]
struct WriteFaults {
    recovered: Option<std::time::Instant>,
}

static WRITE_FAULTS: std::sync::Mutex<Option<WriteFaults>> = std::sync::Mutex::new(None);
/// Whether a fault was recorded and no write has succeeded since: the hot path's only cost.
static FAULT_ACTIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static ANY_FAULT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn write_faults() -> std::sync::MutexGuard<'static, Option<WriteFaults>> {
    WRITE_FAULTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn record_write_fault() {
    let mut faults = write_faults();
    *faults = Some(WriteFaults { recovered: None });
    ANY_FAULT.store(true, std::sync::atomic::Ordering::Release);
    FAULT_ACTIVE.store(true, std::sync::atomic::Ordering::Release);
}

fn record_write_success() {
    if !FAULT_ACTIVE.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let mut faults = write_faults();
    if let Some(f) = faults.as_mut()
        && f.recovered.is_none()
    {
        f.recovered = Some(std::time::Instant::now());
        tracing::info!("the database accepts writes again");
    }
    FAULT_ACTIVE.store(false, std::sync::atomic::Ordering::Release);
}

tokio::task_local! {
    /// Statements run by the current task, while [`counting_statements`] watches it.
    static STATEMENTS: std::cell::Cell<u64>;
}

/// Runs `future` and counts the statements (reads, writes, `BEGIN`) it runs through any
/// [`Database`] or [`Transaction`] on its own task; work it hands to other tasks (the audit
/// writer, a commit task) is not counted. Outside such a scope nothing is counted. Tests use it
/// to prove that a path reads no table.
pub async fn counting_statements<F: std::future::Future>(future: F) -> (F::Output, u64) {
    STATEMENTS
        .scope(std::cell::Cell::new(0), async {
            let output = future.await;
            (output, STATEMENTS.with(std::cell::Cell::get))
        })
        .await
}

tokio::task_local! {
    /// The bound on the statements the current task runs at once, and the connections they
    /// share, while [`with_statement_limit`] holds it.
    static STATEMENT_LIMIT: std::sync::Arc<StatementLimit>;
}

/// Runs `future` with at most `at_once` of its statements in flight at a time (at least one),
/// sharing at most `at_once` connections.
///
/// A pool opens a connection for every statement that finds none idle, and sqlx puts a
/// connection back on a task of its own, so even statements one after another can find none.
/// A start whose loads read a dozen tables at once opened ten connections, each a process
/// forked and initialised by PostgreSQL, on a machine whose cores were already busy with the
/// reads. Under this bound a statement waits for a place, and runs on a connection the scope
/// already holds (one of the same pool that the last statement left), or takes one from the
/// pool; the scope gives them back when `future` ends. A statement that fails, or is
/// cancelled, gives its connection back to the pool at once, where the pool's checks apply.
///
/// The change feed's load runs under this bound. It applies to the statements `future` runs
/// through a [`Database`] (`execute`, the `fetch_*` reads) on its own task; a [`Transaction`],
/// a readiness check and work handed to other tasks are not bounded. A bulk read on
/// PostgreSQL holds its place until its last row is read.
pub fn with_statement_limit<F: std::future::Future>(
    at_once: usize,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    STATEMENT_LIMIT.scope(
        std::sync::Arc::new(StatementLimit {
            places: std::sync::Arc::new(tokio::sync::Semaphore::new(at_once.max(1))),
            sqlite: std::sync::Mutex::new(Vec::new()),
            postgres: std::sync::Mutex::new(Vec::new()),
        }),
        future,
    )
}

/// A [`with_statement_limit`] scope: its places, and the connections it holds that no
/// statement is using, each with the pool it came from (the address of the pool's options).
struct StatementLimit {
    places: std::sync::Arc<tokio::sync::Semaphore>,
    sqlite: std::sync::Mutex<Vec<(usize, sqlx::pool::PoolConnection<Sqlite>)>>,
    postgres: std::sync::Mutex<Vec<(usize, sqlx::pool::PoolConnection<Postgres>)>>,
}

/// A backend whose connections a [`StatementLimit`] holds.
trait Leased: sqlx::Database {
    fn held(
        limit: &StatementLimit,
    ) -> &std::sync::Mutex<Vec<(usize, sqlx::pool::PoolConnection<Self>)>>;
}

impl Leased for Sqlite {
    fn held(
        limit: &StatementLimit,
    ) -> &std::sync::Mutex<Vec<(usize, sqlx::pool::PoolConnection<Self>)>> {
        &limit.sqlite
    }
}

impl Leased for Postgres {
    fn held(
        limit: &StatementLimit,
    ) -> &std::sync::Mutex<Vec<(usize, sqlx::pool::PoolConnection<Self>)>> {
        &limit.postgres
    }
}

/// What a [`Lease`] in a scope holds besides its connection: the scope, the pool and its key,
/// and the place.
struct LeaseScope<DB: Leased> {
    limit: std::sync::Arc<StatementLimit>,
    pool: sqlx::Pool<DB>,
    key: usize,
    _place: tokio::sync::OwnedSemaphorePermit,
}

/// The connection one statement runs on. Outside a [`with_statement_limit`] scope it is the
/// pool's, given back when dropped, as when a statement runs on the pool itself. Inside, it
/// holds a place, and goes back to the scope when dropped after [`Lease::keep`].
struct Lease<DB: Leased> {
    connection: Option<sqlx::pool::PoolConnection<DB>>,
    scope: Option<LeaseScope<DB>>,
    keep: bool,
}

impl<DB: Leased> Lease<DB> {
    /// A connection of `pool` for one statement, after a place when the task is in a scope.
    async fn of(pool: &sqlx::Pool<DB>) -> Result<Self, sqlx::Error> {
        let Ok(limit) = STATEMENT_LIMIT.try_with(std::sync::Arc::clone) else {
            return Ok(Self {
                connection: Some(pool.acquire().await?),
                scope: None,
                keep: false,
            });
        };
        let place = std::sync::Arc::clone(&limit.places)
            .acquire_owned()
            .await
            .expect("a scope's places are never closed");
        let key = std::ptr::from_ref(pool.options()) as usize;
        let held = {
            let mut held = DB::held(&limit).lock().unwrap_or_else(|p| p.into_inner());
            held.iter()
                .position(|(of, _)| *of == key)
                .map(|at| held.swap_remove(at).1)
        };
        let connection = match held {
            Some(connection) => connection,
            None => pool.acquire().await?,
        };
        Ok(Self {
            connection: Some(connection),
            scope: Some(LeaseScope {
                limit,
                pool: pool.clone(),
                key,
                _place: place,
            }),
            keep: false,
        })
    }

    /// The connection.
    fn connection(&mut self) -> &mut DB::Connection {
        self.connection
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }

    /// Lets the connection go back to the scope (not the pool) when the lease is dropped: the
    /// statement succeeded.
    fn keep(&mut self, statement_succeeded: bool) {
        self.keep = statement_succeeded;
    }
}

impl<DB: Leased> Drop for Lease<DB> {
    fn drop(&mut self) {
        // Back to the scope before the place is freed: the next statement finds it there. Not
        // from a pool that has opened all it may: a statement of this scope, or anyone else's,
        // may be waiting for the pool to give one back (a one-connection pool would otherwise
        // wait on itself). Otherwise it goes back to the pool, as any connection does.
        if let (true, Some(scope)) = (self.keep, &self.scope)
            && scope.pool.size() < scope.pool.options().get_max_connections()
            && let Some(connection) = self.connection.take()
        {
            DB::held(&scope.limit)
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((scope.key, connection));
        }
    }
}

/// Runs `$body` (a `Result`) with `$conn` bound to `&mut` the connection of a [`Lease`] of
/// `$pool`; a success keeps the connection for the scope.
macro_rules! leased {
    ($pool:expr, |$conn:ident| $body:expr) => {{
        let mut lease = Lease::of($pool).await?;
        let $conn = lease.connection();
        let out = $body;
        lease.keep(out.is_ok());
        out
    }};
}

/// [`leased!`] on the pool of `$db`, whichever backend it is.
macro_rules! on_lease {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            Database::Sqlite(pool) => leased!(pool, |$conn| $body),
            Database::Postgres(pool) => leased!(pool, |$conn| $body),
        }
    };
}

/// Counts one statement for [`counting_statements`].
fn note_statement() {
    let _ = STATEMENTS.try_with(|count| count.set(count.get() + 1));
}

/// Whether a pooled connection of age `age` must be closed instead of reused because of a write
/// fault: any connection while the fault lasts (no write has succeeded since), and afterwards
/// those opened before the recovery. The pools' acquire and release hooks ask this.
pub fn connection_predates_last_fault(age: std::time::Duration) -> bool {
    if !ANY_FAULT.load(std::sync::atomic::Ordering::Acquire) {
        return false;
    }
    match *write_faults() {
        None => false,
        Some(WriteFaults { recovered: None }) => true,
        Some(WriteFaults {
            recovered: Some(at),
        }) => age >= at.elapsed(),
    }
}

impl StorageError {
    /// The database refuses writes for `reason`; `source` is the driver's error, if any.
    /// Pooled connections are not reused until a write succeeds again.
    pub fn unwritable(reason: Unwritable, source: Option<sqlx::Error>) -> Self {
        record_write_fault();
        Self::Unwritable { reason, source }
    }

    /// Classifies a driver error.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        let code = match &err {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        if let Some(reason) = unwritable_code(code.as_deref()) {
            return Self::unwritable(reason, Some(err));
        }
        match &err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            // A connection whose transaction state went wrong: a fault of the connection, not of
            // the request (the pool hooks keep such connections out).
            | sqlx::Error::InvalidSavePointStatement
            | sqlx::Error::BeginFailed => Self::Unavailable { source: err },
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

    /// Why the database refuses writes, when that is the failure.
    pub fn unwritable_reason(&self) -> Option<Unwritable> {
        match self {
            Self::Unwritable { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// The driver's error, for logs (never for responses).
    pub fn driver_error(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Unavailable { source } | Self::Database { source } => Some(source),
            Self::Unwritable { source, .. } => source.as_ref(),
            _ => None,
        }
    }
}

/// SQLite `BUSY`/`LOCKED` (and their extended codes), `IOERR` and `CANTOPEN`; PostgreSQL
/// connection-class (`08…`), shutdown (`57P0…`) and resource (`53…`) SQLSTATEs.
fn is_unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    if code.len() != 5 {
        // SQLite reports numeric (possibly extended) result codes; SQLSTATEs have five characters.
        return code
            .parse::<i64>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 14));
    }
    code.starts_with("08") || code.starts_with("57P0") || code.starts_with("53")
}

/// SQLite `FULL` and `READONLY` (and their extended codes); PostgreSQL `disk_full` (`53100`) and
/// `read_only_sql_transaction` (`25006`).
fn unwritable_code(code: Option<&str>) -> Option<Unwritable> {
    let code = code?;
    if code.len() != 5 {
        return match code.parse::<i64>().ok()? & 0xff {
            13 => Some(Unwritable::Full),
            8 => Some(Unwritable::ReadOnly),
            _ => None,
        };
    }
    match code {
        "53100" => Some(Unwritable::Full),
        "25006" => Some(Unwritable::ReadOnly),
        _ => None,
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_sqlx(err)
    }
}

impl From<StorageError> for ApiError {
    /// Maps the failure onto a code. A failure that becomes a 5xx is logged here, once, at error
    /// level with the driver's error: the response never carries it, so the log must.
    fn from(err: StorageError) -> Self {
        if let Some(driver) = err.driver_error() {
            tracing::error!(error = %err, cause = %driver, "storage failure");
        } else if let StorageError::Unwritable { .. } = &err {
            tracing::error!(error = %err, "storage failure");
        }
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
            // A well-formed reference to nothing: 404, as the handlers' own reference checks
            // answer (`*_NOT_FOUND` with the field, where they know which reference it was).
            StorageError::InvalidReference { constraint } => with_constraint(
                ApiError::new(ErrorCode::NotFound, "a referenced record does not exist"),
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
            StorageError::Unwritable { reason, .. } => ApiError::new(
                ErrorCode::StorageUnwritable,
                format!("the database cannot be written: {reason}"),
            )
            .with_detail("reason", reason.as_str()),
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

/// Rows per JSON array in [`Database::fetch_all_bulk`] on SQLite.
const BULK_ROWS: u64 = 20_000;

/// Text per chunk of [`Database::fetch_text_in_parts`] on PostgreSQL, at which a chunk is cut
/// before `BULK_ROWS` (SQLite's folds are bounded by its string length limit, 1 GB at most).
const BULK_TEXT: usize = 64 << 20;

/// A bulk read's row that does not decode, as the storage error a read reports.
fn decode_error(e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Database {
        source: sqlx::Error::Decode(Box::new(e)),
    }
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

    /// Checks that the database answers and accepts writes, without writing: a full or read-only
    /// database is [`StorageError::Unwritable`]. For readiness.
    ///
    /// SQLite: a write rolled back on a pooled connection (refused on a read-only file; it waits
    /// for a concurrent writer like any write does), then the page count against
    /// `max_page_count` with no free page left means full. A disk that filled up below the page
    /// limit is not visible without writing; the audit writer reports that case from its
    /// failed commits. PostgreSQL: `transaction_read_only` (a read-only default or a standby).
    pub async fn check_writable(&self) -> Result<(), StorageError> {
        match self {
            Self::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                // A pooled connection, as a write would get one; the transaction is sqlx's, so a
                // check cancelled by its timeout still rolls back before the connection is reused.
                // Rewrite the header's user version (unused by Plystra) to its own value and roll
                // back: a read-only connection takes the write lock, and refuses only the write.
                let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                let version: i64 = sqlx::query_scalar("PRAGMA user_version")
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(AssertSqlSafe(format!("PRAGMA user_version = {version}")))
                    .execute(&mut *tx)
                    .await?;
                tx.rollback().await?;
                let (pages, limit, free): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT page_count FROM pragma_page_count()), \
                     (SELECT max_page_count FROM pragma_max_page_count()), \
                     (SELECT freelist_count FROM pragma_freelist_count())",
                )
                .fetch_one(&mut *conn)
                .await?;
                if pages >= limit && free == 0 {
                    return Err(StorageError::unwritable(Unwritable::Full, None));
                }
                record_write_success();
                Ok(())
            }
            Self::Postgres(pool) => {
                let read_only: String =
                    sqlx::query_scalar("SELECT current_setting('transaction_read_only')")
                        .fetch_one(pool)
                        .await?;
                if read_only == "on" {
                    return Err(StorageError::unwritable(Unwritable::ReadOnly, None));
                }
                record_write_success();
                Ok(())
            }
        }
    }

    /// Runs one statement; returns the number of rows it affected.
    pub async fn execute<S: SqlxBinder>(&self, statement: &S) -> Result<u64, StorageError> {
        note_statement();
        let (sql, values) = self.dialect().build(statement);
        let done = on_lease!(self, |conn| sqlx::query_with(AssertSqlSafe(sql), values)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        if done > 0 {
            record_write_success();
        }
        Ok(done)
    }

    /// Runs a query and decodes every row.
    pub async fn fetch_all<T: Record, S: SqlxBinder>(
        &self,
        statement: &S,
    ) -> Result<Vec<T>, StorageError> {
        note_statement();
        let (sql, values) = self.dialect().build(statement);
        let rows = on_lease!(self, |conn| sqlx::query_as_with::<_, T, _>(
            AssertSqlSafe(sql),
            values
        )
        .fetch_all(&mut *conn)
        .await)?;
        Ok(rows)
    }

    /// Reads every row of `from` (a select without columns, from table `table` and whatever it
    /// joins) as `columns`, for a load that reads whole tables at start. Row order is not kept.
    ///
    /// On SQLite the database folds the rows, `BULK_ROWS` at a time in `rowid` order, into one
    /// JSON array each (`json_group_array(json_array(…))`), parsed here: sqlx hands SQLite rows
    /// from its worker thread to the async side one at a time, about 5 µs a row, which made
    /// reading 100,000 resources take half a second where SQLite itself needs a tenth of that.
    /// The chunks keep each array far below SQLite's string length limit. The columns must be
    /// text, integers or NULL (what JSON carries as they are). `from` must not rely on its own
    /// `ORDER BY` or `LIMIT`: the chunks replace them. On PostgreSQL, rows are fetched as usual.
    pub async fn fetch_all_bulk<T>(
        &self,
        table: &str,
        from: &SelectStatement,
        columns: Vec<sea_query::Expr>,
    ) -> Result<Vec<T>, StorageError>
    where
        T: Record + serde::de::DeserializeOwned,
    {
        let mut out = Vec::new();
        self.fetch_bulk_in_parts(table, from, columns, |rows| out.extend(rows))
            .await?;
        Ok(out)
    }

    /// [`Database::fetch_all_bulk`], handing the rows to `part` as they are read, one call per
    /// chunk of at most `BULK_ROWS` rows, none for no rows: a load uses the first chunk while
    /// the next is read, and never holds every row at once. On PostgreSQL the chunks are cut
    /// from the rows as they stream in.
    pub async fn fetch_bulk_in_parts<T>(
        &self,
        table: &str,
        from: &SelectStatement,
        columns: Vec<sea_query::Expr>,
        mut part: impl FnMut(Vec<T>) + Send,
    ) -> Result<(), StorageError>
    where
        T: Record + serde::de::DeserializeOwned,
    {
        if let Self::Postgres(pool) = self {
            use futures_util::TryStreamExt as _;
            note_statement();
            let (sql, values) = self.dialect().build(from.clone().exprs(columns));
            return leased!(pool, |conn| async {
                let mut rows =
                    sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch(&mut *conn);
                let mut chunk = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    chunk.push(row);
                    if chunk.len() as u64 == BULK_ROWS {
                        // A table that filled one chunk likely fills the next: it starts full
                        // size.
                        part(std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(BULK_ROWS as usize),
                        ));
                    }
                }
                if !chunk.is_empty() {
                    part(chunk);
                }
                Ok::<_, StorageError>(())
            }
            .await);
        }
        self.sqlite_folds(table, from, &columns, |json, count| {
            let rows: Vec<T> = parse_rows(json, count).map_err(decode_error)?;
            if !rows.is_empty() {
                part(rows);
            }
            Ok(())
        })
        .await
    }

    /// [`Database::fetch_bulk_in_parts`] for columns that are all text (or NULL), handed over
    /// as [`TextRows`]: one text buffer per chunk instead of a `String` per value. A chunk is
    /// at most `BULK_ROWS` rows; on PostgreSQL it is also cut once it holds `BULK_TEXT` bytes.
    pub async fn fetch_text_in_parts(
        &self,
        table: &str,
        from: &SelectStatement,
        columns: Vec<sea_query::Expr>,
        mut part: impl FnMut(TextRows) + Send,
    ) -> Result<(), StorageError> {
        let width = columns.len();
        if let Self::Postgres(pool) = self {
            use futures_util::TryStreamExt as _;
            use sqlx::Row as _;
            note_statement();
            let (sql, values) = self.dialect().build(from.clone().exprs(columns));
            return leased!(pool, |conn| async {
                let mut rows = sqlx::query_with(AssertSqlSafe(sql), values).fetch(&mut *conn);
                let mut chunk = TextRows::new(width);
                let mut typed = false;
                while let Some(row) = rows.try_next().await? {
                    // Every row has the statement's column types: they are checked on the first
                    // (a column that is not text fails the read, as a checked decode would), and
                    // each value after that is only decoded. Checked per value, reading the
                    // 900,000 values of 100,000 resources took 54-58 ms of CPU; now 46-50 ms.
                    if !typed {
                        text_columns(&row, width)?;
                        typed = true;
                    }
                    for column in 0..width {
                        let value: Option<&str> = row.try_get_unchecked(column)?;
                        chunk.push(value).map_err(decode_error)?;
                    }
                    if chunk.len() as u64 == BULK_ROWS || chunk.text_len() >= BULK_TEXT {
                        // A table that filled one chunk likely fills the next: it starts that
                        // size.
                        let next = TextRows::with_capacity(width, chunk.len(), chunk.text_len());
                        part(std::mem::replace(&mut chunk, next));
                    }
                }
                if !chunk.is_empty() {
                    part(chunk);
                }
                Ok::<_, StorageError>(())
            }
            .await);
        }
        self.sqlite_folds(table, from, &columns, |json, count| {
            let rows = crate::text_rows::parse_json_rows(json, width, chunk_capacity(count))
                .map_err(decode_error)?;
            if !rows.is_empty() {
                part(rows);
            }
            Ok(())
        })
        .await
    }

    /// SQLite's side of the bulk reads: reads `from` as `columns`, `BULK_ROWS` rows at a time in
    /// `rowid` order, each chunk folded by the database into one JSON array of arrays, and hands
    /// each (the JSON text, its row count) to `chunk`.
    async fn sqlite_folds(
        &self,
        table: &str,
        from: &SelectStatement,
        columns: &[sea_query::Expr],
        mut chunk: impl FnMut(&str, i64) -> Result<(), StorageError> + Send,
    ) -> Result<(), StorageError> {
        let names: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
        let mut after = i64::MIN;
        loop {
            let mut select = from.clone();
            select.clear_order_by();
            for (column, name) in columns.iter().zip(&names) {
                select.expr_as(column.clone(), sea_query::Alias::new(name));
            }
            let rowid = sea_query::Expr::col((
                sea_query::Alias::new(table),
                sea_query::Alias::new("rowid"),
            ));
            select
                .expr_as(rowid.clone(), sea_query::Alias::new("bulk_rowid"))
                .and_where(rowid.clone().gt(after))
                .order_by_expr(rowid, sea_query::Order::Asc)
                .limit(BULK_ROWS);
            let folded = sea_query::Query::select()
                .expr(
                    sea_query::Func::cust("json_group_array").arg(
                        sea_query::Func::cust("json_array").args(
                            names
                                .iter()
                                .map(|n| sea_query::Expr::col(sea_query::Alias::new(n))),
                        ),
                    ),
                )
                .expr(sea_query::Func::max(sea_query::Expr::col(
                    sea_query::Alias::new("bulk_rowid"),
                )))
                .expr(sea_query::Func::count(sea_query::Expr::col(
                    sea_query::Alias::new("bulk_rowid"),
                )))
                .from_subquery(select, sea_query::Alias::new("bulk_chunk"))
                .to_owned();
            let Some((json, last, count)) = self
                .fetch_optional::<(String, Option<i64>, i64), _>(&folded)
                .await?
            else {
                break;
            };
            chunk(&json, count)?;
            drop(json);
            match last {
                Some(last) if count >= BULK_ROWS as i64 => after = last,
                _ => break,
            }
        }
        Ok(())
    }

    /// Runs a query and decodes its first row, if any.
    pub async fn fetch_optional<T: Record, S: SqlxBinder>(
        &self,
        statement: &S,
    ) -> Result<Option<T>, StorageError> {
        note_statement();
        let (sql, values) = self.dialect().build(statement);
        let row = on_lease!(self, |conn| sqlx::query_as_with::<_, T, _>(
            AssertSqlSafe(sql),
            values
        )
        .fetch_optional(&mut *conn)
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
        note_statement();
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

/// Checks that `row` has `width` columns, each of a type that decodes as text: what
/// [`Database::fetch_text_in_parts`] checks once per statement instead of once per value.
fn text_columns(row: &sqlx::postgres::PgRow, width: usize) -> Result<(), StorageError> {
    use sqlx::{Column as _, Row as _};
    if row.columns().len() != width {
        return Err(StorageError::Database {
            source: sqlx::Error::ColumnIndexOutOfBounds {
                index: width.saturating_sub(1),
                len: row.columns().len(),
            },
        });
    }
    for column in row.columns() {
        let found = column.type_info();
        if !<&str as sqlx::Type<sqlx::Postgres>>::compatible(found) {
            return Err(StorageError::Database {
                source: sqlx::Error::ColumnDecode {
                    index: format!("{:?}", column.name()),
                    source: sqlx::error::mismatched_types::<sqlx::Postgres, &str>(found),
                },
            });
        }
    }
    Ok(())
}

/// Room for the rows a SQLite fold announced: its count, at most a chunk (a count the database
/// got wrong costs a grown vector, never a huge one).
fn chunk_capacity(count: i64) -> usize {
    usize::try_from(count).unwrap_or(0).min(BULK_ROWS as usize)
}

/// Parses a JSON array of `count` rows into a vector made that size at once (grown as it was
/// parsed, a chunk's vector was copied a dozen times over).
fn parse_rows<T: serde::de::DeserializeOwned>(
    json: &str,
    count: i64,
) -> Result<Vec<T>, serde_json::Error> {
    use serde::de::{DeserializeSeed, SeqAccess, Visitor};
    struct Sized<T>(usize, std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for Sized<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of rows")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut rows = Vec::with_capacity(self.0);
            while let Some(row) = seq.next_element()? {
                rows.push(row);
            }
            Ok(rows)
        }
    }
    impl<'de, T: serde::Deserialize<'de>> DeserializeSeed<'de> for Sized<T> {
        type Value = Vec<T>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut parser = serde_json::Deserializer::from_str(json);
    let rows = Sized(chunk_capacity(count), std::marker::PhantomData).deserialize(&mut parser)?;
    parser.end()?;
    Ok(rows)
}

/// A connection to read through: the pool, or an open transaction. `&Database` and
/// `&mut Transaction` convert into it, so one read function serves both.
pub enum Conn<'a> {
    /// The pool.
    Db(&'a Database),
    /// An open transaction.
    Tx(&'a mut Transaction),
}

impl<'a> From<&'a Database> for Conn<'a> {
    fn from(db: &'a Database) -> Self {
        Self::Db(db)
    }
}

impl<'a> From<&'a mut Transaction> for Conn<'a> {
    fn from(tx: &'a mut Transaction) -> Self {
        Self::Tx(tx)
    }
}

impl<'a, 'b: 'a> From<&'a mut Conn<'b>> for Conn<'a> {
    fn from(conn: &'a mut Conn<'b>) -> Self {
        match conn {
            Conn::Db(db) => Conn::Db(db),
            Conn::Tx(tx) => Conn::Tx(tx),
        }
    }
}

impl Conn<'_> {
    /// The first row of `statement`, if any.
    pub async fn fetch_optional<T: Record, S: SqlxBinder>(
        &mut self,
        statement: &S,
    ) -> Result<Option<T>, StorageError> {
        match self {
            Self::Db(db) => db.fetch_optional(statement).await,
            Self::Tx(tx) => tx.fetch_optional(statement).await,
        }
    }

    /// Every row of `statement`.
    pub async fn fetch_all<T: Record, S: SqlxBinder>(
        &mut self,
        statement: &S,
    ) -> Result<Vec<T>, StorageError> {
        match self {
            Self::Db(db) => db.fetch_all(statement).await,
            Self::Tx(tx) => tx.fetch_all(statement).await,
        }
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
        note_statement();
        let (sql, values) = self.dialect().build(statement);
        let done = on_tx!(self, |tx| sqlx::query_with(AssertSqlSafe(sql), values)
            .execute(&mut **tx)
            .await
            .map(|r| r.rows_affected()))?;
        if done > 0 {
            // A connection that has just written is not read-only, and found room for the row.
            record_write_success();
        }
        Ok(done)
    }

    /// Runs a query inside the transaction and decodes every row.
    pub async fn fetch_all<T: Record, S: SqlxBinder>(
        &mut self,
        statement: &S,
    ) -> Result<Vec<T>, StorageError> {
        note_statement();
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
        note_statement();
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
    fn bulk_rows_parse_whatever_count_was_announced_and_nothing_after_the_array() {
        let json = r#"[["a", 1], ["b", null]]"#;
        for count in [0, 2, 5, -1, i64::MAX] {
            let rows: Vec<(String, Option<i64>)> = parse_rows(json, count).unwrap();
            assert_eq!(rows, [("a".to_owned(), Some(1)), ("b".to_owned(), None)]);
        }
        assert!(parse_rows::<(String, i64)>(r#"[["a", 1]] ["b", 2]"#, 1).is_err());
        assert!(parse_rows::<(String, i64)>(r#"{"a": 1}"#, 1).is_err());
    }

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
        assert_eq!(fk.code, ErrorCode::NotFound);
        assert_eq!(fk.status().as_u16(), 404);
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
    fn unwritable_codes_are_503_with_a_reason() {
        assert_eq!(unwritable_code(Some("13")), Some(Unwritable::Full));
        assert_eq!(unwritable_code(Some("8")), Some(Unwritable::ReadOnly));
        // SQLITE_READONLY_DBMOVED, an extended code.
        assert_eq!(unwritable_code(Some("1032")), Some(Unwritable::ReadOnly));
        assert_eq!(unwritable_code(Some("53100")), Some(Unwritable::Full));
        assert_eq!(unwritable_code(Some("25006")), Some(Unwritable::ReadOnly));
        assert_eq!(unwritable_code(Some("23505")), None);
        assert_eq!(unwritable_code(Some("5")), None);
        assert_eq!(unwritable_code(None), None);
        let full: ApiError = StorageError::Unwritable {
            reason: Unwritable::Full,
            source: None,
        }
        .into();
        assert_eq!(full.code, ErrorCode::StorageUnwritable);
        assert_eq!(full.status().as_u16(), 503);
        assert_eq!(full.details["reason"], "full");
        let read_only: ApiError = StorageError::Unwritable {
            reason: Unwritable::ReadOnly,
            source: None,
        }
        .into();
        assert_eq!(read_only.details["reason"], "read_only");
    }

    #[test]
    fn unavailable_codes() {
        assert!(is_unavailable_code(Some("5")));
        assert!(is_unavailable_code(Some("517")));
        assert!(is_unavailable_code(Some("08006")));
        assert!(is_unavailable_code(Some("57P01")));
        // SQLITE_IOERR_WRITE and SQLITE_CANTOPEN.
        assert!(is_unavailable_code(Some("778")));
        assert!(is_unavailable_code(Some("14")));
        assert!(!is_unavailable_code(Some("23505")));
        assert!(!is_unavailable_code(None));
    }
}
