//! Storage faults end to end: a full or read-only database answers 503 with a code and a logged
//! cause, `/ready` says why, and the server recovers by itself once the fault is gone.
//!
//! SQLite "disk full" is a page limit (`DatabaseConfig::sqlite_max_page_count`, applied to every
//! pooled connection) that a second, unlimited connection fills with a filler table and frees by
//! deleting it. SQLite "read-only files" is `chattr +i`, which binds root too: opening the file
//! for writing fails and SQLite falls back to read-only, as it does for a non-root user without
//! write permission. PostgreSQL "read-only" is `default_transaction_read_only` on the test
//! database; the "outage" is a TCP relay in front of the shared server that the test cuts, so
//! the server itself is never stopped.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plystra_contracts::storage::{Database, sqlx};
use plystra_kernel::storage::DatabaseConfig;
use plystra_kernel::storage::Dialect;
use plystra_kernel::storage::testing::{TestDatabase, backend};
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::{Value, json};

use crate::support::app::{Client, boot_with, call, code, config};

/// The write-fault state that decides when pooled connections are discarded is process-wide (one
/// server, one database), so these tests take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every log line the test's thread emits (the tests run on a current-thread runtime, so the
/// server's tasks log here too).
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn client(database: DatabaseConfig) -> Client {
    TestClient::new(boot_with(config(database, &[]), &[]).await.app)
}

async fn create_space(cli: &Client, n: usize) -> (StatusCode, Value) {
    call(
        cli,
        "POST",
        "/api/v1/spaces",
        Some(json!({"id": format!("space_fault_{n}"), "name": format!("Fault space {n}")})),
    )
    .await
}

async fn create_user(cli: &Client, n: usize) -> (StatusCode, Value) {
    call(
        cli,
        "POST",
        "/api/v1/users",
        Some(json!({
            "id": format!("user_fault_{n}"),
            "email": format!("fault{n}@example.com"),
            "password": "correct horse battery staple",
        })),
    )
    .await
}

async fn ready(cli: &Client) -> (StatusCode, Value) {
    call(cli, "GET", "/api/v1/ready", None).await
}

/// A 503 that names the storage fault (or the audit store that could not commit because of it).
fn assert_storage_503(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        ["STORAGE_UNWRITABLE", "AUDIT_UNAVAILABLE"].contains(&code(body)),
        "{body}"
    );
}

fn sqlite_pool(db: &Database) -> &sqlx::SqlitePool {
    match db {
        Database::Sqlite(pool) => pool,
        Database::Postgres(_) => panic!("not SQLite"),
    }
}

const PAGE_LIMIT: u32 = 2048;

#[tokio::test]
async fn sqlite_full_database_answers_503_and_recovers_once_space_is_freed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let log = CapturedLog::default();
    let _guard = log.install();
    let database = TestDatabase::on(Dialect::Sqlite).await.unwrap();
    let cli = client(DatabaseConfig {
        sqlite_max_page_count: Some(PAGE_LIMIT),
        ..DatabaseConfig::new(database.url.clone())
    })
    .await;
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = create_space(&cli, 0).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Fill the file up to (and past) the limit from a connection without one.
    let filler = database.reopen().await;
    let pool = sqlite_pool(&filler);
    sqlx::query("CREATE TABLE test_filler (chunk BLOB)")
        .execute(pool)
        .await
        .unwrap();
    loop {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(pool)
            .await
            .unwrap();
        if pages >= i64::from(PAGE_LIMIT) {
            break;
        }
        sqlx::query("INSERT INTO test_filler VALUES (zeroblob(262144))")
            .execute(pool)
            .await
            .unwrap();
    }

    // Writes fail with 503 and a code, and the cause is logged.
    let mut failed = None;
    for n in 1..200 {
        let (status, body) = create_space(&cli, n).await;
        if status != StatusCode::CREATED {
            failed = Some((status, body));
            break;
        }
    }
    let (status, body) = failed.expect("a write fails once the database is full");
    assert_storage_503(status, &body);
    let (status, body) = create_user(&cli, 1).await;
    if status != StatusCode::CREATED {
        assert_storage_503(status, &body);
    }
    let logged = log.text();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("database or disk is full")),
        "no error line with the cause:\n{logged}"
    );
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not writable"),
        "{body}"
    );

    // Free the space: the server recovers without a restart, on the first try.
    sqlx::query("DROP TABLE test_filler")
        .execute(pool)
        .await
        .unwrap();
    let (status, body) = create_space(&cli, 1000).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = create_user(&cli, 1000).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for n in 1001..1020 {
        let (status, body) = create_space(&cli, n).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!log.text().contains("InvalidSavePointStatement"));
}

fn chattr(flag: &str, path: &std::path::Path) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn sqlite_read_only_files_answer_503_and_recover_once_writable() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let log = CapturedLog::default();
    let _guard = log.install();
    let database = TestDatabase::migrated_on(Dialect::Sqlite).await.unwrap();
    let path = std::path::PathBuf::from(database.url.trim_start_matches("sqlite://"));
    if !chattr("+i", &path) {
        eprintln!("WARNING: skipping: `chattr +i` is not available here (needs root on ext4/xfs)");
        return;
    }
    // Whatever happens, leave the file deletable.
    struct Mutable(std::path::PathBuf);
    impl Drop for Mutable {
        fn drop(&mut self) {
            chattr("-i", &self.0);
        }
    }
    let immutable = Mutable(path.clone());
    assert!(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .is_err(),
        "chattr +i must refuse writes, even to root"
    );
    let cli = client(DatabaseConfig::new(database.url.clone())).await;
    let (status, body) = create_space(&cli, 1).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "STORAGE_UNWRITABLE", "{body}");
    assert_eq!(body["error"]["details"]["reason"], "read_only", "{body}");
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not writable"), "{body}");
    assert!(message.contains("read-only"), "{body}");
    let logged = log.text();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("readonly database")),
        "no error line with the cause:\n{logged}"
    );

    drop(immutable);
    std::io::stderr().flush().ok();
    let (status, body) = create_space(&cli, 2).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = create_user(&cli, 2).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The test database's name and a connection to the server's administrative database.
async fn postgres_admin(database: &TestDatabase) -> (String, sqlx::PgPool) {
    let name = database
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let admin_url = std::env::var("PLYSTRA_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    (name, admin)
}

async fn admin_sql(admin: &sqlx::PgPool, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(admin)
        .await
        .unwrap();
}

async fn terminate_backends(admin: &sqlx::PgPool, name: &str) {
    admin_sql(
        admin,
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
}

#[tokio::test]
async fn postgres_read_only_database_answers_503_and_recovers_without_restart() {
    let _turn = ONE_AT_A_TIME.lock().await;
    if backend() != Dialect::Postgres {
        return;
    }
    let log = CapturedLog::default();
    let _guard = log.install();
    let Some(database) = TestDatabase::on(Dialect::Postgres).await else {
        return;
    };
    let cli = client(DatabaseConfig::new(database.url.clone())).await;
    let (status, body) = create_space(&cli, 0).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (name, admin) = postgres_admin(&database).await;
    admin_sql(
        &admin,
        format!("ALTER DATABASE {name} SET default_transaction_read_only = on"),
    )
    .await;
    terminate_backends(&admin, &name).await;

    // Connections reopened by the pool are read-only now.
    let mut last = (StatusCode::OK, Value::Null);
    for n in 1..5 {
        last = create_space(&cli, n).await;
        if code(&last.1) == "STORAGE_UNWRITABLE" {
            break;
        }
    }
    let (status, body) = last;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(code(&body), "STORAGE_UNWRITABLE", "{body}");
    assert_eq!(body["error"]["details"]["reason"], "read_only", "{body}");
    let logged = log.text();
    assert!(
        logged
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("read-only transaction")),
        "no error line with the cause:\n{logged}"
    );
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{body}"
    );

    // Writable again: the read-only sessions are discarded, no restart needed.
    admin_sql(
        &admin,
        format!("ALTER DATABASE {name} RESET default_transaction_read_only"),
    )
    .await;
    let (status, body) = create_space(&cli, 100).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for n in 101..115 {
        let (status, body) = create_space(&cli, n).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A TCP relay to PostgreSQL that can cut the network: while cut, it drops every relayed
/// connection and holds new ones open without answering, as a partition does (so a connection
/// attempt hangs instead of being refused).
struct Relay {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn to(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut watch = watch.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if *watch.borrow_and_update() {
                        // Held, never answered, until the partition heals.
                        let _ = watch.wait_for(|cut| !cut).await;
                        return;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test]
async fn postgres_outage_is_reported_by_ready_within_about_a_second() {
    let _turn = ONE_AT_A_TIME.lock().await;
    if backend() != Dialect::Postgres {
        return;
    }
    let Some(database) = TestDatabase::on(Dialect::Postgres).await else {
        return;
    };
    let (credentials, rest) = database.url.split_once('@').unwrap();
    let (upstream, path) = rest.split_once('/').unwrap();
    let relay = Relay::to(upstream.to_owned()).await;
    let url = format!("{credentials}@127.0.0.1:{}/{path}", relay.port);
    let cli = client(DatabaseConfig::new(url)).await;
    let (status, body) = ready(&cli).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    relay.set_cut(true);
    let started = Instant::now();
    let (status, body) = ready(&cli).await;
    let took = started.elapsed();
    // Generous: the probes are bounded by 1 s each and run concurrently; before, this took the
    // 5 s acquire timeout plus a 2 s health timeout, and more.
    assert!(
        took < Duration::from_millis(2500),
        "ready took {took:?}: {body}"
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("database"), "{body}");
    assert!(message.contains("no answer within 1 s"), "{body}");

    relay.set_cut(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = ready(&cli).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
