//! The storage test harness (cargo feature `testing`): a fresh database per test on the backend
//! `PLYSTRA_TEST_BACKEND` selects (`sqlite`, the default, or `postgres`).
//!
//! PostgreSQL tests connect to `PLYSTRA_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), create a uniquely named database and drop it
//! when the [`TestDatabase`] is dropped. When PostgreSQL cannot be reached the test fails, naming
//! the URL and the reason, unless `PLYSTRA_TEST_SKIP_POSTGRES=1` asks for PostgreSQL tests to be
//! skipped: then the constructor prints a `skipped:` line and answers `None`, the only case in
//! which it does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plystra_contracts::storage::{Database, Dialect};
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use super::{DatabaseConfig, connect};

/// The default administrative URL for PostgreSQL tests.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The namespaces the kernel (the change feed) and the system capabilities own, for tests that
/// apply the embedded migrations without linking the capabilities.
pub const SYSTEM_NAMESPACES: [&str; 6] = [
    plystra_contracts::feed::NAMESPACE,
    "sys_audit",
    "sys_identity",
    "sys_resource",
    "sys_authz",
    "sys_admin",
];

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The backend `PLYSTRA_TEST_BACKEND` selects.
pub fn backend() -> Dialect {
    match std::env::var("PLYSTRA_TEST_BACKEND").ok().as_deref() {
        None | Some("") | Some("sqlite") => Dialect::Sqlite,
        Some("postgres") | Some("postgresql") => Dialect::Postgres,
        Some(other) => panic!("PLYSTRA_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

/// The variable that asks for PostgreSQL tests to be skipped when the server is unreachable.
pub const SKIP_POSTGRES: &str = "PLYSTRA_TEST_SKIP_POSTGRES";

fn skip_postgres() -> bool {
    std::env::var(SKIP_POSTGRES).is_ok_and(|v| v == "1" || v == "true")
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The open handle.
    pub db: Database,
    /// Its URL (for tests that run `plystractl` against it).
    pub url: String,
    postgres: Option<(String, String)>,
    /// Login roles made for this test, dropped after the database.
    roles: Vec<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A fresh database on the selected backend; `None` only when PostgreSQL is unreachable and
    /// `PLYSTRA_TEST_SKIP_POSTGRES=1` (the test is skipped).
    pub async fn new() -> Option<Self> {
        Self::on(backend()).await
    }

    /// A fresh database on `dialect`; `None` only when PostgreSQL is unreachable and
    /// `PLYSTRA_TEST_SKIP_POSTGRES=1`.
    pub async fn on(dialect: Dialect) -> Option<Self> {
        match dialect {
            Dialect::Sqlite => Some(Self::sqlite().await),
            Dialect::Postgres => Self::postgres().await,
        }
    }

    /// A fresh database on the selected backend with every embedded migration of
    /// [`SYSTEM_NAMESPACES`] applied; `None` only when PostgreSQL is unreachable and
    /// `PLYSTRA_TEST_SKIP_POSTGRES=1`.
    pub async fn migrated() -> Option<Self> {
        Self::migrated_on(backend()).await
    }

    /// [`TestDatabase::migrated`] on `dialect`.
    pub async fn migrated_on(dialect: Dialect) -> Option<Self> {
        let t = Self::on(dialect).await?;
        super::migrations::MigrationSet::embedded(dialect)
            .apply_pending(&t.db, &SYSTEM_NAMESPACES)
            .await
            .expect("apply the embedded migrations to the test database");
        Some(t)
    }

    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("data/plystra.db").display());
        let db = connect(&DatabaseConfig::new(url.clone()))
            .await
            .expect("open the SQLite test database");
        Self {
            db,
            url,
            postgres: None,
            roles: Vec::new(),
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database. Panics when the server is unreachable, unless
    /// `PLYSTRA_TEST_SKIP_POSTGRES=1`: then `None`, after a `skipped:` line.
    pub async fn postgres() -> Option<Self> {
        let admin = std::env::var("PLYSTRA_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_TEST_POSTGRES_URL.to_owned());
        let mut conn = match tokio::time::timeout(
            Duration::from_secs(5),
            PgConnection::connect(&admin),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            failure => {
                let reason = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                let shown = super::redact_url(&admin);
                if !skip_postgres() {
                    panic!(
                        "PostgreSQL at {shown} is unreachable ({reason}): start it, point \
                         PLYSTRA_TEST_DATABASE_URL at a server, or set {SKIP_POSTGRES}=1 to skip \
                         the PostgreSQL tests"
                    );
                }
                println!(
                    "skipped: PostgreSQL at {shown} is unreachable ({reason}) and {SKIP_POSTGRES}=1"
                );
                return None;
            }
        };
        let name = format!(
            "plystra_test_{}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the PostgreSQL test database");
        let _ = conn.close().await;
        let url = replace_database(&admin, &name);
        let db = connect(&DatabaseConfig::new(url.clone()))
            .await
            .expect("open the PostgreSQL test database");
        Some(Self {
            db,
            url,
            postgres: Some((admin, name)),
            roles: Vec::new(),
            _dir: None,
        })
    }

    /// A new PostgreSQL login role, without a password and with no privileges, named after this
    /// database and `purpose` (lowercase letters and `_`); returns its name and a URL of this
    /// database that logs in as it (the server must let it in without a password, as the test
    /// server's trust authentication does). The role is dropped with the database. Panics on
    /// SQLite.
    pub async fn login_role(&mut self, purpose: &str) -> (String, String) {
        let (admin, name) = self
            .postgres
            .as_ref()
            .expect("login roles are PostgreSQL's");
        assert!(purpose.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let role = format!("{name}_{purpose}");
        let mut conn = PgConnection::connect(admin)
            .await
            .expect("connect to create a role");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
            .execute(&mut conn)
            .await
            .expect("create a test role");
        let _ = conn.close().await;
        self.roles.push(role.clone());
        let url = replace_user(&self.url, &role);
        (role, url)
    }

    /// Opens another handle on the same database (for concurrency tests).
    pub async fn reopen(&self) -> Database {
        connect(&DatabaseConfig::new(self.url.clone()))
            .await
            .expect("reopen the test database")
    }
}

/// `url` with its database name replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// `url` logging in as `user`, without a password.
fn replace_user(url: &str, user: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_start = match rest.find(['/', '?']) {
        Some(end) => rest[..end].rfind('@').map_or(0, |at| at + 1),
        None => rest.rfind('@').map_or(0, |at| at + 1),
    };
    format!("{}{user}@{}", &url[..scheme_end], &rest[host_start..])
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        let roles = std::mem::take(&mut self.roles);
        // Drop runs inside the test's runtime; use a thread with its own runtime to drop the
        // database (WITH (FORCE) ends the pool's remaining connections).
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()?;
                for role in roles {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
                        .execute(&mut conn)
                        .await
                        .ok()?;
                }
                let _ = conn.close().await;
                Some(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("WARNING: could not drop a PostgreSQL test database or its roles");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }

    #[test]
    fn replaces_the_user() {
        assert_eq!(
            replace_user("postgres://postgres@127.0.0.1:5432/db", "app"),
            "postgres://app@127.0.0.1:5432/db"
        );
        assert_eq!(
            replace_user("postgres://u:p@ss@h/db?sslmode=disable", "app"),
            "postgres://app@h/db?sslmode=disable"
        );
        assert_eq!(
            replace_user("postgres://h/db", "app"),
            "postgres://app@h/db"
        );
    }
}
