//! Versioned SQL migrations: the embedded files, their `plystra.sum`, namespace ownership, and the
//! ledger table `plystra_schema_migrations` that records what was applied.
//!
//! Files are named `<version>_<namespace>_<name>.sql` under `migrations/<dialect>/`; versions are
//! decimal and unique across namespaces, and files apply in version order. Each file runs in one
//! transaction together with its ledger row. Runners serialise on a lock (PostgreSQL
//! `pg_advisory_xact_lock`, SQLite `BEGIN IMMEDIATE`) and re-check the ledger under it, so
//! concurrent runners apply every file exactly once.

pub mod ownership;
pub mod sum;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use plystra_contracts::storage::{Database, Dialect};
use sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sqlx::AssertSqlSafe;

pub use ownership::OwnershipViolation;
pub use sum::SumFile;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
}

/// The ledger table.
pub const LEDGER_TABLE: &str = "plystra_schema_migrations";

/// The advisory lock key runners take on PostgreSQL (`"plystra\0"` as a big-endian integer).
const ADVISORY_LOCK_KEY: i64 = 0x706c_7973_7472_6100;

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The version, a decimal string (`0001`).
    pub version: String,
    /// The file name after `<version>_`, without `.sql` (`sys_audit_init`).
    pub stem: String,
    /// The file name (`0001_sys_audit_init.sql`).
    pub file: String,
    /// The SQL.
    pub sql: String,
    /// The hex SHA-256 of the SQL, as the ledger records it.
    pub checksum: String,
}

/// A migration problem.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A file name does not follow `<version>_<namespace>_<name>.sql`.
    #[error(
        "{file}: migration files are named <version>_<namespace>_<name>.sql with a decimal version"
    )]
    BadFileName {
        /// The file.
        file: String,
    },
    /// Two files share a version.
    #[error("{first} and {second} share version {version}")]
    DuplicateVersion {
        /// The version.
        version: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// The migration directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `plystra.sum` is missing or malformed.
    #[error("{0}")]
    SumFile(String),
    /// `plystra.sum` does not match the files.
    #[error("{dialect} migrations: {difference} (run `plystractl migrate hash`)")]
    SumMismatch {
        /// The dialect.
        dialect: Dialect,
        /// The first difference.
        difference: String,
    },
    /// Files touch what their namespace does not own.
    #[error("migration ownership violated:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Ownership(Vec<OwnershipViolation>),
    /// An applied file changed since it was applied.
    #[error(
        "{file}: checksum mismatch: the file changed after it was applied (applied {recorded}, now {actual})"
    )]
    ChecksumMismatch {
        /// The file.
        file: String,
        /// The checksum in the ledger.
        recorded: String,
        /// The file's checksum now.
        actual: String,
    },
    /// The ledger records a version no file provides.
    #[error("version {version} ({namespace}_{name}) is applied but no migration file provides it")]
    MissingFile {
        /// The version.
        version: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The database does not use this set's dialect.
    #[error("the migration set is for {set}, the database is {database}")]
    DialectMismatch {
        /// The set's dialect.
        set: Dialect,
        /// The database's.
        database: Dialect,
    },
    /// A file failed to apply; it was rolled back.
    #[error("{file}: failed to apply: {source}")]
    Apply {
        /// The file.
        file: String,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// The ledger could not be read or written.
    #[error("migration ledger: {source}")]
    Ledger {
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
}

fn ledger_err(source: sqlx::Error) -> MigrationError {
    MigrationError::Ledger { source }
}

/// Where one file stands against the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Applied with the same checksum.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but the file has changed since.
    ChecksumMismatch,
    /// Applied, but no file provides it any more.
    MissingFile,
}

impl FileState {
    /// `applied`, `pending`, `checksum-mismatch` or `missing-file`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::ChecksumMismatch => "checksum-mismatch",
            Self::MissingFile => "missing-file",
        }
    }
}

/// One line of `migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The version.
    pub version: String,
    /// The file name (for a missing file: `<version>_<namespace>_<name>.sql` from the ledger).
    pub file: String,
    /// The state.
    pub state: FileState,
    /// When it was applied (as the database renders it).
    pub applied_at: Option<String>,
}

/// One applied file, as `apply_pending` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The version.
    pub version: String,
    /// The stem (`sys_audit_init`).
    pub stem: String,
    /// How long it took.
    pub execution_ms: i64,
}

/// A row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The version.
    pub version: String,
    /// The namespace.
    pub namespace: String,
    /// The name (after the namespace).
    pub name: String,
    /// The file's checksum when applied.
    pub checksum: String,
    /// When.
    pub applied_at: String,
    /// How long it took.
    pub execution_ms: i64,
}

/// The migration files of one dialect, in version order.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    dialect: Dialect,
    migrations: Vec<Migration>,
    sum: Option<String>,
    /// Whether the ledger table is expected to exist: true until a read finds it absent (a new
    /// database), true again once a read finds it. While true the set reads the ledger in one
    /// statement and asks whether the table exists only when that statement fails; readiness
    /// reads the ledger on every probe, and a new connection's first look at the catalog costs
    /// PostgreSQL milliseconds. Shared by clones.
    ledger_expected: Arc<AtomicBool>,
}

fn version_key(version: &str) -> (usize, &str) {
    let trimmed = version.trim_start_matches('0');
    (trimmed.len(), trimmed)
}

impl MigrationSet {
    /// The files embedded in this binary for `dialect`.
    pub fn embedded(dialect: Dialect) -> Self {
        let files = embedded::FILES
            .iter()
            .filter(|(d, _, _)| *d == dialect.as_str())
            .map(|(_, name, sql)| ((*name).to_owned(), (*sql).to_owned()))
            .collect();
        let sum = embedded::SUMS
            .iter()
            .find(|(d, _)| *d == dialect.as_str())
            .map(|(_, s)| (*s).to_owned());
        Self::from_files(dialect, files, sum)
            .expect("the embedded migration files are checked by the kernel's tests")
    }

    /// The `*.sql` files and `plystra.sum` of `dir` (a `migrations/<dialect>` directory).
    pub fn from_dir(dialect: Dialect, dir: &Path) -> Result<Self, MigrationError> {
        let io = |source| MigrationError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".sql") {
                let sql = std::fs::read_to_string(&path).map_err(|source| MigrationError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                files.push((name.to_owned(), sql));
            }
        }
        let sum_path = dir.join("plystra.sum");
        let sum = match std::fs::read_to_string(&sum_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(MigrationError::Io {
                    path: sum_path.display().to_string(),
                    source,
                });
            }
        };
        Self::from_files(dialect, files, sum)
    }

    /// A set from `(file name, SQL)` pairs and an optional `plystra.sum` text.
    pub fn from_files(
        dialect: Dialect,
        files: Vec<(String, String)>,
        sum: Option<String>,
    ) -> Result<Self, MigrationError> {
        let mut migrations = Vec::new();
        for (file, sql) in files {
            let (version, stem) = parse_file_name(&file)
                .ok_or_else(|| MigrationError::BadFileName { file: file.clone() })?;
            migrations.push(Migration {
                version,
                stem,
                checksum: sum::checksum(&sql),
                file,
                sql,
            });
        }
        migrations.sort_by(|a, b| {
            version_key(&a.version)
                .cmp(&version_key(&b.version))
                .then(a.file.cmp(&b.file))
        });
        for pair in migrations.windows(2) {
            if version_key(&pair[0].version) == version_key(&pair[1].version) {
                return Err(MigrationError::DuplicateVersion {
                    version: pair[1].version.clone(),
                    first: pair[0].file.clone(),
                    second: pair[1].file.clone(),
                });
            }
        }
        Ok(Self {
            dialect,
            migrations,
            sum,
            ledger_expected: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The set's dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The files, in version order.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The highest version this set knows: the schema version a current database has.
    pub fn expected_schema_version(&self) -> Option<&str> {
        self.migrations.last().map(|m| m.version.as_str())
    }

    /// The version the next new file should take (one more than the highest, four digits at least).
    pub fn next_version(&self) -> String {
        let next = self
            .migrations
            .last()
            .and_then(|m| m.version.parse::<u64>().ok())
            .map_or(1, |v| v + 1);
        let width = self.migrations.last().map_or(4, |m| m.version.len()).max(4);
        format!("{next:0width$}")
    }

    /// The `plystra.sum` these files should have. File order is name order, as in Atlas.
    pub fn computed_sum(&self) -> SumFile {
        let mut by_name: Vec<&Migration> = self.migrations.iter().collect();
        by_name.sort_by(|a, b| a.file.cmp(&b.file));
        SumFile::compute(by_name.iter().map(|m| (m.file.as_str(), m.sql.as_str())))
    }

    /// Checks the recorded `plystra.sum` against the files.
    pub fn check_sum(&self) -> Result<(), MigrationError> {
        let Some(text) = &self.sum else {
            return Err(MigrationError::SumFile(format!(
                "{} migrations: plystra.sum is missing (run `plystractl migrate hash`)",
                self.dialect
            )));
        };
        let recorded = SumFile::parse(text)
            .map_err(|e| MigrationError::SumFile(format!("{} migrations: {e}", self.dialect)))?;
        match recorded.first_difference(&self.computed_sum()) {
            None => Ok(()),
            Some(difference) => Err(MigrationError::SumMismatch {
                dialect: self.dialect,
                difference,
            }),
        }
    }

    /// Checks that every file's namespace is one of `owned` and that its statements only touch that
    /// namespace's objects. Returns each file's namespace, by file name.
    pub fn check_ownership(
        &self,
        owned: &[&str],
    ) -> Result<BTreeMap<String, String>, MigrationError> {
        let mut violations = Vec::new();
        let mut namespaces = BTreeMap::new();
        for m in &self.migrations {
            match ownership::namespace_of(&m.stem, owned) {
                None => violations.push(OwnershipViolation {
                    file: m.file.clone(),
                    line: None,
                    statement: None,
                    reason: "its namespace is not owned by any linked capability (provides.migrations.namespace)".to_owned(),
                }),
                Some(ns) => {
                    violations.extend(ownership::check_statements(&m.file, ns, &m.sql));
                    namespaces.insert(m.file.clone(), ns.to_owned());
                }
            }
        }
        if violations.is_empty() {
            Ok(namespaces)
        } else {
            Err(MigrationError::Ownership(violations))
        }
    }

    fn check_dialect(&self, db: &Database) -> Result<(), MigrationError> {
        if db.dialect() == self.dialect {
            Ok(())
        } else {
            Err(MigrationError::DialectMismatch {
                set: self.dialect,
                database: db.dialect(),
            })
        }
    }

    /// Each file's state, and any applied version no file provides. Reads only; an absent ledger
    /// means nothing is applied.
    pub async fn status(&self, db: &Database) -> Result<Vec<MigrationStatus>, MigrationError> {
        self.check_dialect(db)?;
        let ledger = self.read_ledger(db).await?;
        Ok(self.status_of(&ledger))
    }

    /// Each file's state against `ledger`, and any applied version no file provides.
    fn status_of(&self, ledger: &[LedgerEntry]) -> Vec<MigrationStatus> {
        let by_version: BTreeMap<(usize, &str), &LedgerEntry> = ledger
            .iter()
            .map(|e| (version_key(&e.version), e))
            .collect();
        let mut out: Vec<MigrationStatus> = self
            .migrations
            .iter()
            .map(|m| {
                let entry = by_version.get(&version_key(&m.version));
                MigrationStatus {
                    version: m.version.clone(),
                    file: m.file.clone(),
                    state: match entry {
                        None => FileState::Pending,
                        Some(e) if e.checksum == m.checksum => FileState::Applied,
                        Some(_) => FileState::ChecksumMismatch,
                    },
                    applied_at: entry.map(|e| e.applied_at.clone()),
                }
            })
            .collect();
        for e in ledger {
            if !self
                .migrations
                .iter()
                .any(|m| version_key(&m.version) == version_key(&e.version))
            {
                out.push(MigrationStatus {
                    version: e.version.clone(),
                    file: format!("{}_{}_{}.sql", e.version, e.namespace, e.name),
                    state: FileState::MissingFile,
                    applied_at: Some(e.applied_at.clone()),
                });
            }
        }
        out.sort_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)));
        out
    }

    /// The files not applied yet, in order.
    pub async fn pending(&self, db: &Database) -> Result<Vec<&Migration>, MigrationError> {
        self.check_dialect(db)?;
        let ledger = self.read_ledger(db).await?;
        Ok(self.pending_of(&ledger))
    }

    /// The files `ledger` does not hold, in order.
    fn pending_of(&self, ledger: &[LedgerEntry]) -> Vec<&Migration> {
        let status = self.status_of(ledger);
        self.migrations
            .iter()
            .filter(|m| {
                status
                    .iter()
                    .any(|s| s.file == m.file && s.state == FileState::Pending)
            })
            .collect()
    }

    /// Checks `plystra.sum` (when the set has one) and that every applied file is unchanged and
    /// present. The error names the first failing file.
    pub async fn verify(&self, db: &Database) -> Result<(), MigrationError> {
        self.verified_ledger(db).await.map(drop)
    }

    /// [`verify`](Self::verify), returning the ledger it read.
    async fn verified_ledger(&self, db: &Database) -> Result<Vec<LedgerEntry>, MigrationError> {
        if self.sum.is_some() {
            self.check_sum()?;
        }
        self.check_dialect(db)?;
        let ledger = self.read_ledger(db).await?;
        self.verify_ledger(&ledger)?;
        Ok(ledger)
    }

    /// [`read_ledger`], in one statement while the ledger table is expected to exist. If that
    /// statement fails (a new database, a dropped table, a database that is down), it asks as
    /// [`read_ledger`] does, so the answer is the same either way.
    async fn read_ledger(&self, db: &Database) -> Result<Vec<LedgerEntry>, MigrationError> {
        if self.ledger_expected.load(Ordering::Relaxed)
            && let Ok(entries) = select_ledger(db).await
        {
            return Ok(entries);
        }
        let exists = ledger_exists(db).await?;
        self.ledger_expected.store(exists, Ordering::Relaxed);
        if !exists {
            return Ok(Vec::new());
        }
        select_ledger(db).await
    }

    /// Checks that every entry of `ledger` names a file of this set, unchanged.
    fn verify_ledger(&self, ledger: &[LedgerEntry]) -> Result<(), MigrationError> {
        for e in ledger {
            match self
                .migrations
                .iter()
                .find(|m| version_key(&m.version) == version_key(&e.version))
            {
                None => {
                    return Err(MigrationError::MissingFile {
                        version: e.version.clone(),
                        namespace: e.namespace.clone(),
                        name: e.name.clone(),
                    });
                }
                Some(m) if m.checksum != e.checksum => {
                    return Err(MigrationError::ChecksumMismatch {
                        file: m.file.clone(),
                        recorded: e.checksum.clone(),
                        actual: m.checksum.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Applies every pending file, in order, each in its own transaction with its ledger row.
    /// Refuses to start when ownership or [`verify`](Self::verify) fails. Files another runner
    /// applied meanwhile are skipped. Returns what this call applied.
    pub async fn apply_pending(
        &self,
        db: &Database,
        owned: &[&str],
    ) -> Result<Vec<Applied>, MigrationError> {
        Ok(self.apply_pending_or_state(db, owned).await?.0)
    }

    /// [`MigrationSet::apply_pending`], and the schema state after it. A database with nothing
    /// pending is read once for both (a development boot's usual case); one that had migrations
    /// applied is read again.
    pub async fn apply_pending_then_state(
        &self,
        db: &Database,
        owned: &[&str],
    ) -> Result<(Vec<Applied>, SchemaState), MigrationError> {
        match self.apply_pending_or_state(db, owned).await? {
            (applied, Some(state)) => Ok((applied, state)),
            (applied, None) => Ok((applied, self.schema_state(db).await?)),
        }
    }

    /// What [`MigrationSet::apply_pending`] applied, with the schema state when nothing was
    /// pending (the ledger read to find that out shows it).
    async fn apply_pending_or_state(
        &self,
        db: &Database,
        owned: &[&str],
    ) -> Result<(Vec<Applied>, Option<SchemaState>), MigrationError> {
        let namespaces = self.check_ownership(owned)?;
        // One read of the ledger for both questions: a boot on a current database asks nothing
        // else of it.
        let ledger = self.verified_ledger(db).await?;
        // Nothing pending asks nothing of the role: a runtime role without CREATE (development
        // with least-privilege roles) boots on a current database without a refused DDL.
        if self.pending_of(&ledger).is_empty() {
            return Ok((Vec::new(), Some(self.state_of(&ledger))));
        }
        ensure_ledger(db).await?;
        let mut applied = Vec::new();
        for m in self.pending(db).await? {
            let namespace = &namespaces[&m.file];
            if let Some(execution_ms) = apply_one(db, m, namespace).await? {
                applied.push(Applied {
                    version: m.version.clone(),
                    stem: m.stem.clone(),
                    execution_ms,
                });
            }
        }
        Ok((applied, None))
    }
}

/// The migration namespaces of this binary, sorted: the kernel's own (the change feed,
/// `plystra_feed`) and those the linked capabilities own (`provides.migrations.namespace`).
pub fn linked_namespaces() -> Vec<&'static str> {
    let mut owned: Vec<&'static str> = std::iter::once(plystra_contracts::feed::NAMESPACE)
        .chain(
            plystra_contracts::registration::linked()
                .filter_map(|r| r.manifest.provides().migrations.namespace),
        )
        .collect();
    owned.sort_unstable();
    owned.dedup();
    owned
}

/// What the runtime reports about the schema (`/ready`, `/version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// The highest applied version, `None` on an empty database.
    pub schema_version: Option<String>,
    /// The highest version this binary knows.
    pub expected_schema_version: Option<String>,
    /// The files not applied yet.
    pub pending: Vec<String>,
}

impl SchemaState {
    /// Whether every known file is applied.
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

impl MigrationSet {
    /// The schema state of `db` against this set. Fails when the applied history does not verify.
    pub async fn schema_state(&self, db: &Database) -> Result<SchemaState, MigrationError> {
        // One read of the ledger for all three answers: readiness asks this on every probe.
        let ledger = self.verified_ledger(db).await?;
        Ok(self.state_of(&ledger))
    }

    /// The schema state a verified `ledger` shows.
    fn state_of(&self, ledger: &[LedgerEntry]) -> SchemaState {
        let pending = self
            .pending_of(ledger)
            .into_iter()
            .map(|m| m.file.clone())
            .collect();
        SchemaState {
            schema_version: highest_version(ledger),
            expected_schema_version: self.expected_schema_version().map(str::to_owned),
            pending,
        }
    }
}

/// Splits `0001_sys_audit_init.sql` into `("0001", "sys_audit_init")`.
pub fn parse_file_name(file: &str) -> Option<(String, String)> {
    let base = file.strip_suffix(".sql")?;
    let (version, stem) = base.split_once('_')?;
    let valid_stem = !stem.is_empty()
        && stem
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (!version.is_empty() && version.chars().all(|c| c.is_ascii_digit()) && valid_stem)
        .then(|| (version.to_owned(), stem.to_owned()))
}

/// The highest applied version, or `None` for a database with no migrations applied.
pub async fn schema_version(db: &Database) -> Result<Option<String>, MigrationError> {
    Ok(highest_version(&read_ledger(db).await?))
}

/// The highest version `ledger` holds.
fn highest_version(ledger: &[LedgerEntry]) -> Option<String> {
    ledger
        .iter()
        .map(|e| &e.version)
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .cloned()
}

fn ledger_ddl(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "CREATE TABLE IF NOT EXISTS plystra_schema_migrations (
    version TEXT NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    execution_ms INTEGER NOT NULL
)"
        }
        Dialect::Postgres => {
            "CREATE TABLE IF NOT EXISTS plystra_schema_migrations (
    version TEXT NOT NULL PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_ms BIGINT NOT NULL
)"
        }
    }
}

/// Whether the ledger table exists.
pub async fn ledger_exists(db: &Database) -> Result<bool, MigrationError> {
    let found = match db {
        Database::Sqlite(pool) => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(LEDGER_TABLE)
                .fetch_one(pool)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_scalar::<_, i64>(
                // The catalog, not `information_schema.tables` (a view that checks privileges
                // on every table, several milliseconds per call; readiness asks on every probe).
                "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = $1",
            )
            .bind(LEDGER_TABLE)
            .fetch_one(pool)
            .await
        }
    }
    .map_err(ledger_err)?;
    Ok(found > 0)
}

async fn ensure_ledger(db: &Database) -> Result<(), MigrationError> {
    let ddl = ledger_ddl(db.dialect());
    match db {
        Database::Sqlite(pool) => {
            sqlx::raw_sql(ddl).execute(pool).await.map_err(ledger_err)?;
        }
        Database::Postgres(pool) => {
            // CREATE TABLE IF NOT EXISTS races with itself on PostgreSQL; serialise it.
            let mut tx = pool.begin().await.map_err(ledger_err)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ADVISORY_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(ledger_err)?;
            sqlx::raw_sql(ddl)
                .execute(&mut *tx)
                .await
                .map_err(ledger_err)?;
            tx.commit().await.map_err(ledger_err)?;
        }
    }
    Ok(())
}

/// Every ledger row, in version order; empty when the ledger does not exist.
pub async fn read_ledger(db: &Database) -> Result<Vec<LedgerEntry>, MigrationError> {
    if !ledger_exists(db).await? {
        return Ok(Vec::new());
    }
    select_ledger(db).await
}

/// Every ledger row, in version order; an error when the ledger does not exist.
async fn select_ledger(db: &Database) -> Result<Vec<LedgerEntry>, MigrationError> {
    let select = Query::select()
        .columns(["version", "namespace", "name", "checksum"].map(Alias::new))
        .expr(Expr::col(Alias::new("applied_at")).cast_as(Alias::new("TEXT")))
        .column(Alias::new("execution_ms"))
        .from(Alias::new(LEDGER_TABLE))
        .order_by(Alias::new("version"), Order::Asc)
        .to_owned();
    type Row = (String, String, String, String, String, i64);
    let (sql, values) = db.dialect().build(&select);
    let rows: Vec<Row> = match db {
        Database::Sqlite(pool) => {
            sqlx::query_as_with(AssertSqlSafe(sql), values)
                .fetch_all(pool)
                .await
        }
        Database::Postgres(pool) => {
            sqlx::query_as_with(AssertSqlSafe(sql), values)
                .fetch_all(pool)
                .await
        }
    }
    .map_err(ledger_err)?;
    let mut entries: Vec<LedgerEntry> = rows
        .into_iter()
        .map(
            |(version, namespace, name, checksum, applied_at, execution_ms)| LedgerEntry {
                version,
                namespace,
                name,
                checksum,
                applied_at,
                execution_ms,
            },
        )
        .collect();
    entries.sort_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)));
    Ok(entries)
}

/// Applies one file under the runner lock; `None` when another runner applied it first.
async fn apply_one(
    db: &Database,
    m: &Migration,
    namespace: &str,
) -> Result<Option<i64>, MigrationError> {
    let name = m
        .stem
        .strip_prefix(namespace)
        .map(|s| s.trim_start_matches('_'))
        .unwrap_or(&m.stem);
    let exists = Query::select()
        .expr(Expr::val(1))
        .from(Alias::new(LEDGER_TABLE))
        .and_where(Expr::col(Alias::new("version")).eq(m.version.as_str()))
        .to_owned();
    let apply_err = |source| MigrationError::Apply {
        file: m.file.clone(),
        source,
    };
    let dialect = db.dialect();

    macro_rules! run {
        ($tx:ident) => {{
            let (sql, values) = dialect.build(&exists);
            let found = sqlx::query_with(AssertSqlSafe(sql), values)
                .fetch_optional(&mut *$tx)
                .await
                .map_err(ledger_err)?;
            if found.is_some() {
                $tx.rollback().await.map_err(ledger_err)?;
                return Ok(None);
            }
            let started = Instant::now();
            sqlx::raw_sql(AssertSqlSafe(m.sql.clone()))
                .execute(&mut *$tx)
                .await
                .map_err(apply_err)?;
            let execution_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            let insert = Query::insert()
                .into_table(Alias::new(LEDGER_TABLE))
                .columns(
                    ["version", "namespace", "name", "checksum", "execution_ms"].map(Alias::new),
                )
                .values_panic([
                    m.version.as_str().into(),
                    namespace.into(),
                    name.into(),
                    m.checksum.as_str().into(),
                    execution_ms.into(),
                ])
                .to_owned();
            let (sql, values) = dialect.build(&insert);
            sqlx::query_with(AssertSqlSafe(sql), values)
                .execute(&mut *$tx)
                .await
                .map_err(ledger_err)?;
            $tx.commit().await.map_err(apply_err)?;
            Ok(Some(execution_ms))
        }};
    }

    match db {
        Database::Sqlite(pool) => {
            let mut tx = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(ledger_err)?;
            run!(tx)
        }
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await.map_err(ledger_err)?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ADVISORY_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(ledger_err)?;
            run!(tx)
        }
    }
}
