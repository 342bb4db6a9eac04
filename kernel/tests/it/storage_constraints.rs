//! The migrated schema's constraints, through the capability-facing `Database` API: same-space
//! foreign keys, unique keys as conflicts, the append-only audit log, typed round trips, and bulk
//! reads.

use plystra_contracts::ApiError;
use plystra_contracts::error::ErrorCode;
use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
use plystra_contracts::storage::sqlx::types::Json;
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::{Database, StorageError};
use plystra_contracts::text_rows::TextRows;
use plystra_kernel::storage::testing::TestDatabase;

fn now() -> OffsetDateTime {
    // Whole microseconds: both backends store at least that precision.
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap()
}

async fn insert(
    db: &Database,
    table: &str,
    values: &[(&str, sea_query::Value)],
) -> Result<u64, StorageError> {
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new(table))
        .columns(values.iter().map(|(c, _)| Alias::new(*c)))
        .values_panic(values.iter().map(|(_, v)| Expr::val(v.clone())));
    db.execute(&insert).await
}

use plystra_contracts::storage::sea_query;

async fn space(db: &Database, id: &str) {
    let at = now();
    insert(
        db,
        "sys_identity_spaces",
        &[
            ("id", id.into()),
            ("name", id.into()),
            ("slug", id.into()),
            ("type", "team".into()),
            ("status", "active".into()),
            ("created_at", at.into()),
            ("updated_at", at.into()),
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn cross_space_references_are_invalid_and_duplicates_conflict() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let db = &t.db;
    space(db, "s1").await;
    space(db, "s2").await;
    let at = now();
    insert(
        db,
        "sys_identity_members",
        &[
            ("id", "m1".into()),
            ("space_id", "s1".into()),
            ("member_type", "person".into()),
            ("display_name", "M".into()),
            ("status", "active".into()),
            ("created_at", at.into()),
            ("updated_at", at.into()),
        ],
    )
    .await
    .unwrap();
    let user = |id: &'static str, username: &'static str| {
        vec![
            ("id", id.into()),
            ("username", username.into()),
            ("status", "active".into()),
            ("metadata", serde_json::json!({"k": 1}).into()),
            ("created_at", at.into()),
            ("updated_at", at.into()),
        ]
    };
    insert(db, "sys_identity_users", &user("u1", "alice"))
        .await
        .unwrap();

    let duplicate = insert(db, "sys_identity_users", &user("u2", "alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, StorageError::Conflict { .. }),
        "{duplicate:?}"
    );
    let api: ApiError = duplicate.into();
    assert_eq!(
        (api.code, api.status().as_u16()),
        (ErrorCode::Conflict, 409)
    );
    assert!(
        !api.message.to_lowercase().contains("insert"),
        "{}",
        api.message
    );

    let link = |id: &'static str, space: &'static str| {
        vec![
            ("id", id.into()),
            ("space_id", space.into()),
            ("user_id", "u1".into()),
            ("member_id", "m1".into()),
            ("relation_type", "self".into()),
            ("is_primary", true.into()),
            ("status", "active".into()),
            ("created_at", at.into()),
            ("updated_at", at.into()),
        ]
    };
    let cross = insert(db, "sys_identity_user_members", &link("um1", "s2"))
        .await
        .unwrap_err();
    assert!(
        matches!(cross, StorageError::InvalidReference { .. }),
        "{cross:?}"
    );
    // A well-formed reference to nothing (here: nothing in this space) is a 404.
    let api: ApiError = cross.into();
    assert_eq!(
        (api.code, api.status().as_u16()),
        (ErrorCode::NotFound, 404)
    );
    insert(db, "sys_identity_user_members", &link("um1", "s1"))
        .await
        .unwrap();

    // Typed round trip: timestamps, JSON and booleans decode the same on both backends.
    let select = Query::select()
        .columns(["id", "created_at", "metadata"].map(Alias::new))
        .from(Alias::new("sys_identity_users"))
        .and_where(Expr::col(Alias::new("id")).eq("u1"))
        .to_owned();
    let (id, created_at, metadata): (String, OffsetDateTime, Option<Json<serde_json::Value>>) =
        db.fetch_one(&select).await.unwrap();
    assert_eq!(id, "u1");
    assert_eq!(created_at, at);
    assert_eq!(metadata.unwrap().0, serde_json::json!({"k": 1}));
    let primary = Query::select()
        .column(Alias::new("is_primary"))
        .from(Alias::new("sys_identity_user_members"))
        .to_owned();
    let (is_primary,): (bool,) = db.fetch_one(&primary).await.unwrap();
    assert!(is_primary);
}

#[tokio::test]
async fn the_audit_log_is_append_only() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let db = &t.db;
    let mut tx = db.begin().await.unwrap();
    let mut entry = Query::insert();
    entry
        .into_table(Alias::new("sys_audit_audit_logs"))
        .columns(
            [
                "id",
                "seq",
                "event_type",
                "action",
                "decision",
                "trace",
                "entry_hash",
                "redaction_version",
                "created_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            "a1".into(),
            1i64.into(),
            "authz.decision".into(),
            "read".into(),
            "allow".into(),
            serde_json::json!({"steps": []}).into(),
            "h1".into(),
            1i64.into(),
            now().into(),
        ]);
    tx.execute(&entry).await.unwrap();
    tx.commit().await.unwrap();

    let update = Query::update()
        .table(Alias::new("sys_audit_audit_logs"))
        .value(Alias::new("decision"), "deny")
        .to_owned();
    let err = db.execute(&update).await.unwrap_err();
    assert!(matches!(err, StorageError::Database { .. }), "{err:?}");
    let delete = Query::delete()
        .from_table(Alias::new("sys_audit_audit_logs"))
        .to_owned();
    assert!(db.execute(&delete).await.is_err());

    let count = Query::select()
        .expr(Expr::col(Alias::new("id")).count())
        .from(Alias::new("sys_audit_audit_logs"))
        .to_owned();
    let (n,): (i64,) = db.fetch_one(&count).await.unwrap();
    assert_eq!(n, 1);
    let decision = Query::select()
        .column(Alias::new("decision"))
        .from(Alias::new("sys_audit_audit_logs"))
        .to_owned();
    let (d,): (String,) = db.fetch_one(&decision).await.unwrap();
    assert_eq!(d, "allow");
}

#[tokio::test]
async fn a_dropped_transaction_rolls_back() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    {
        let mut tx = t.db.begin().await.unwrap();
        let at = now();
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new("sys_authz_permissions"))
            .columns(
                [
                    "id",
                    "resource",
                    "action",
                    "scope",
                    "status",
                    "created_at",
                    "updated_at",
                ]
                .map(Alias::new),
            )
            .values_panic([
                "p1".into(),
                "doc".into(),
                "read".into(),
                "space".into(),
                "active".into(),
                at.into(),
                at.into(),
            ]);
        tx.execute(&insert).await.unwrap();
    }
    let count = Query::select()
        .expr(Expr::col(Alias::new("id")).count())
        .from(Alias::new("sys_authz_permissions"))
        .to_owned();
    let (n,): (i64,) = t.db.fetch_one(&count).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_bulk_read_returns_every_row_once_across_chunks_with_nulls_and_any_text() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let db = &t.db;
    let at = now();
    // Three SQLite chunks (20,000 rows each), odd text included.
    let total = 45_001usize;
    let resource = |i: usize| match i % 4 {
        0 => format!("r{i}"),
        1 => format!("r{i} \"quoted\" \\ back"),
        2 => format!("r{i} ünïcødé ✓"),
        _ => format!("[\"r{i}\", {{\"looks\": \"like json\"}}]"),
    };
    for start in (0..total).step_by(1_000) {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new("sys_authz_permissions"))
            .columns(
                [
                    "id",
                    "resource",
                    "action",
                    "scope",
                    "status",
                    "metadata",
                    "created_at",
                    "updated_at",
                ]
                .map(Alias::new),
            );
        for i in start..(start + 1_000).min(total) {
            let status = if i == 7 { "disabled" } else { "active" };
            let values: [sea_query::Value; 8] = [
                format!("p{i:06}").into(),
                resource(i).into(),
                "read".into(),
                "space".into(),
                status.into(),
                sea_query::Value::Json(None),
                at.into(),
                at.into(),
            ];
            insert.values_panic(values.map(Expr::val));
        }
        db.execute(&insert).await.unwrap();
    }
    let from = |status: &str| {
        Query::select()
            .from(Alias::new("sys_authz_permissions"))
            .and_where(Expr::col(Alias::new("status")).eq(status))
            .to_owned()
    };
    let columns = || {
        ["id", "resource", "scope"]
            .map(|c| Expr::col(Alias::new(c)))
            .into_iter()
            .chain([Expr::cust("NULL")])
            .collect::<Vec<_>>()
    };
    let mut rows: Vec<(String, String, String, Option<String>)> = db
        .fetch_all_bulk("sys_authz_permissions", &from("active"), columns())
        .await
        .unwrap();
    rows.sort();
    assert_eq!(rows.len(), total - 1);
    let expected: Vec<(String, String, String, Option<String>)> = (0..total)
        .filter(|&i| i != 7)
        .map(|i| (format!("p{i:06}"), resource(i), "space".to_owned(), None))
        .collect();
    assert_eq!(rows, expected);
    let none: Vec<(String, String, String, Option<String>)> = db
        .fetch_all_bulk("sys_authz_permissions", &from("archived"), columns())
        .await
        .unwrap();
    assert!(none.is_empty());
    // In parts: one per chunk as read (on PostgreSQL, as the rows stream in). Together, the
    // same rows.
    let mut sizes = Vec::new();
    let mut parted: Vec<(String, String, String, Option<String>)> = Vec::new();
    db.fetch_bulk_in_parts(
        "sys_authz_permissions",
        &from("active"),
        columns(),
        |part: Vec<(String, String, String, Option<String>)>| {
            sizes.push(part.len());
            parted.extend(part);
        },
    )
    .await
    .unwrap();
    parted.sort();
    assert_eq!(parted, expected);
    assert_eq!(sizes, [20_000, 20_000, 5_000]);
    // Packed as text: the same rows in the same chunks, NULL apart from text.
    let mut sizes = Vec::new();
    let mut packed: Vec<(String, String, String, Option<String>)> = Vec::new();
    db.fetch_text_in_parts(
        "sys_authz_permissions",
        &from("active"),
        columns(),
        |rows: TextRows| {
            assert_eq!(rows.columns(), 4);
            sizes.push(rows.len());
            packed.extend(rows.iter().map(|row| {
                let text = |c| row.get(c).expect("a text").to_owned();
                (text(0), text(1), text(2), row.get(3).map(str::to_owned))
            }));
        },
    )
    .await
    .unwrap();
    packed.sort();
    assert_eq!(packed, expected);
    assert_eq!(sizes, [20_000, 20_000, 5_000]);
    let mut none = 0;
    db.fetch_text_in_parts(
        "sys_authz_permissions",
        &from("archived"),
        columns(),
        |_| none += 1,
    )
    .await
    .unwrap();
    assert_eq!(none, 0, "no rows, no part");
    // A column that is not text fails the read, also when its first value is NULL (PostgreSQL
    // checks the columns' types once, on the first row, and then only decodes).
    for column in [
        "CAST(7 AS BIGINT)",
        "CASE WHEN id = 'p000000' THEN NULL ELSE 7 END",
    ] {
        let mut not_text = columns();
        not_text[3] = Expr::cust(column);
        let mut parts = 0;
        let read = db
            .fetch_text_in_parts("sys_authz_permissions", &from("active"), not_text, |_| {
                parts += 1
            })
            .await;
        assert!(read.is_err(), "{column} read as text");
        assert_eq!(parts, 0, "{column}: no part before the error");
    }
}

/// The pool's size: how many connections it holds (in use or idle).
fn pool_size(db: &Database) -> u32 {
    match db {
        Database::Sqlite(pool) => pool.size(),
        Database::Postgres(pool) => pool.size(),
    }
}

#[tokio::test]
async fn statements_under_a_limit_share_that_many_connections() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let db = &t.db;
    // A statement that keeps its connection for a while (tenths of a second) on each backend.
    let slow = Query::select()
        .expr(Expr::cust(match db.dialect() {
            plystra_contracts::storage::Dialect::Sqlite => {
                "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
                 SELECT COUNT(*) FROM c)"
            }
            plystra_contracts::storage::Dialect::Postgres => {
                "(SELECT CAST(300000 AS BIGINT) FROM pg_sleep(0.15))"
            }
        }))
        .to_owned();
    let burst = || futures_util::future::join_all((0..6).map(|_| db.fetch_one::<(i64,), _>(&slow)));
    let before = pool_size(db);
    let answers = plystra_contracts::storage::with_statement_limit(2, burst()).await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok((300_000,)))),
        "{answers:?}"
    );
    // Two at a time, on two connections the scope kept from one statement to the next.
    let limited = pool_size(db);
    assert!(
        limited <= Ord::max(before, 2),
        "six statements two at a time opened {limited} connections (the pool had {before})"
    );
    // A statement that fails gives its connection back to the pool; the next one still runs.
    let missing = Query::select()
        .expr(Expr::col(Alias::new("id")))
        .from(Alias::new("no_such_table"))
        .to_owned();
    let (failed, after) = plystra_contracts::storage::with_statement_limit(1, async {
        let failed = db.fetch_all::<(String,), _>(&missing).await;
        (failed, db.fetch_one::<(i64,), _>(&slow).await)
    })
    .await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(matches!(after, Ok((300_000,))), "{after:?}");
    // A pool of one connection: the scope gives it back after each statement (it would
    // otherwise wait for itself until the acquire timeout).
    let single = plystra_kernel::storage::connect(&plystra_kernel::storage::DatabaseConfig {
        max_connections: 1,
        ..plystra_kernel::storage::DatabaseConfig::new(t.url.clone())
    })
    .await
    .expect("a second pool on the test database");
    let answers = plystra_contracts::storage::with_statement_limit(
        2,
        futures_util::future::join_all((0..3).map(|_| single.fetch_one::<(i64,), _>(&slow))),
    )
    .await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok((300_000,)))),
        "{answers:?}"
    );
    single.close().await;
    // The same burst without the limit opens a connection per statement: what the limit saves.
    let answers = burst().await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok((300_000,)))),
        "{answers:?}"
    );
    let unlimited = pool_size(db);
    assert!(
        unlimited >= 6,
        "without the limit each statement has a connection: the pool holds {unlimited}"
    );
}
