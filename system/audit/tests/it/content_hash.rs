//! The content-hash rule on the selected backend: records with awkward JSON values hash as they
//! read back; records written before migration 0040 (no `content_hash`, the legacy rule) and
//! records written since verify in one chain; records written while PostgreSQL held traces as
//! JSONB verify after migration 0051 made them `json`; and a tampered record of either kind, any
//! field including `content_hash` itself, is found.

use plystra_contracts::services::{AuditRecord, AuditRecorder};
use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
use plystra_contracts::storage::sqlx::{self, AssertSqlSafe};
use plystra_contracts::storage::{Database, Dialect};
use plystra_kernel::storage::migrations::MigrationSet;
use plystra_kernel::storage::testing::{SYSTEM_NAMESPACES, TestDatabase};
use plystra_system_audit::chain::{GENESIS, legacy_entry_hash};
use plystra_system_audit::redaction::RedactionPolicy;
use plystra_system_audit::service::{AuditService, AuditSettings, WriteMode};
use plystra_system_audit::store::{self, AuditEntry};
use serde_json::{Value, json};

fn service(db: &Database) -> std::sync::Arc<AuditService> {
    AuditService::start(
        db.clone(),
        AuditSettings {
            mode: WriteMode::Always,
            policy: RedactionPolicy::with_key(b"k".to_vec()),
        },
    )
}

fn record(trace: Value) -> AuditRecord {
    AuditRecord {
        space_id: Some("space_1".to_owned()),
        resource_type: Some("invoice".to_owned()),
        resource_id: Some("invoice_1".to_owned()),
        decision: Some("deny".to_owned()),
        deny_code: Some("NO_GRANT".to_owned()),
        trace,
        ..AuditRecord::new("req_test", "authz.decision", "approve")
    }
}

/// Values whose JSON text could change on the way to the store and back.
fn awkward() -> Vec<Value> {
    vec![
        json!({"floats": [0.1, 0.2, 0.30000000000000004, 1e300, -1e-300, 5e-324, 1.7976931348623157e308]}),
        json!({"zeros": [-0.0, 0.0, 0, -0.5e-323]}),
        json!({"integral_floats": [1.0, -2.0, 1e15, 1e16, 1e19, 1.8446744073709552e19, 1e20, -(2f64.powi(63)), 2f64.powi(63), 9.007199254740993e15, -1.5e300]}),
        json!({"integers": [u64::MAX, i64::MIN, i64::MAX, 0, -1, 9_007_199_254_740_993_u64]}),
        json!({"fractions": [123456789.12345679, 2.2250738585072014e-308, 0.000001, 1e-7, 12.3451]}),
        json!({"text": "quote \" backslash \\ tab \t newline \n bell \u{7} del \u{7f} é ü 中文 😀 \u{2028}\u{2029} \u{fffd}"}),
        json!({"keys": {"b": 1, "a": 2, "é": 3, "E": 4, "": 5, "a b": 6, "\u{1}": 7, "😀": 8}}),
        json!({"nested": [[[], {}], [[[1, [2.5, [true, null, "x"]]]]], {"z": {"y": {"x": [[{"w": -0.0}]]}}}]}),
        json!([1, "two", 3.5, null]),
        json!("a bare string"),
        json!(-0.0),
        Value::Null,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_values_verify_and_read_back_as_stored() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let audit = service(&t.db);
    let mut ids = Vec::new();
    for trace in awkward() {
        ids.push(audit.record(record(trace)).await.unwrap().unwrap());
    }
    // The same values inside a caller's transaction.
    let mut tx = t.db.begin().await.unwrap();
    for trace in awkward() {
        ids.push(audit.record_in(&mut tx, record(trace)).await.unwrap());
    }
    tx.commit().await.unwrap();
    audit.shutdown().await;
    for entry in verified_as_written(&t.db, &ids).await {
        assert!(
            entry.content_hash.is_some(),
            "new records store a content hash"
        );
        assert_eq!(
            entry.computed_content_hash(),
            entry.content_hash.clone().unwrap()
        );
    }
}

/// Checks that the chain verifies and holds exactly the records `ids` (written with the values of
/// [`awkward`], round after round), each trace reading back equal by value to the one written:
/// the text as written, or, for a trace stored as JSONB, the same numbers as decimals. Returns
/// the entries.
async fn verified_as_written(db: &Database, ids: &[String]) -> Vec<AuditEntry> {
    let verification = store::verify(db).await.unwrap();
    assert_eq!(verification.first_broken, None);
    assert_eq!(verification.records, ids.len() as u64);
    let mut entries = Vec::new();
    for (id, trace) in ids.iter().zip(awkward().into_iter().cycle()) {
        let entry = store::get(db, id).await.unwrap().unwrap();
        assert!(
            same_json(&entry.trace, &trace),
            "{id}: stored {} read back as {}",
            trace,
            entry.trace
        );
        entries.push(entry);
    }
    entries
}

/// The first migration that stores traces as `json` on PostgreSQL (a comment on SQLite).
const TRACE_AS_JSON: &str = "0051";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_before_traces_became_json_verify_after() {
    let Some(t) = TestDatabase::new().await else {
        return;
    };
    let all = MigrationSet::embedded(t.db.dialect());
    let before: Vec<(String, String)> = all
        .migrations()
        .iter()
        .filter(|m| m.version.as_str() < TRACE_AS_JSON)
        .map(|m| (m.file.clone(), m.sql.clone()))
        .collect();
    assert!(
        all.migrations()
            .iter()
            .any(|m| m.version == TRACE_AS_JSON && m.file.contains("trace_as_json")),
        "the migration this test is about is embedded"
    );
    MigrationSet::from_files(t.db.dialect(), before, None)
        .unwrap()
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();
    if t.db.dialect() == Dialect::Postgres {
        assert_eq!(trace_type(&t.db).await, "jsonb");
    }
    let audit = service(&t.db);
    let mut ids = Vec::new();
    for trace in awkward() {
        ids.push(audit.record(record(trace)).await.unwrap().unwrap());
    }
    audit.shutdown().await;
    all.apply_pending(&t.db, &SYSTEM_NAMESPACES).await.unwrap();
    if t.db.dialect() == Dialect::Postgres {
        assert_eq!(trace_type(&t.db).await, "json");
    }
    // Converted records and new ones, in one chain.
    let audit = service(&t.db);
    for trace in awkward() {
        ids.push(audit.record(record(trace)).await.unwrap().unwrap());
    }
    audit.shutdown().await;
    assert_eq!(ids.len(), 2 * awkward().len());
    verified_as_written(&t.db, &ids).await;
}

/// PostgreSQL's type of the `trace` column.
async fn trace_type(db: &Database) -> String {
    let Database::Postgres(pool) = db else {
        unreachable!("asked on PostgreSQL only")
    };
    sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = 'sys_audit_audit_logs'::regclass AND attname = 'trace'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Equal, with numbers compared by value (JSONB turns `1e16` into `10000000000000000` and `-0.0`
/// into `0.0`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Runs raw SQL (test set-up only: the triggers are dropped or disabled through it).
async fn exec(db: &Database, sql: &str) {
    let sql = sql.to_owned();
    match db {
        Database::Sqlite(pool) => sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map(drop),
        Database::Postgres(pool) => sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map(drop),
    }
    .unwrap();
}

/// Lets the test rewrite rows, as an attacker with write access to the table could.
async fn allow_updates(db: &Database) {
    match db.dialect() {
        Dialect::Postgres => {
            exec(db, "ALTER TABLE sys_audit_audit_logs DISABLE TRIGGER USER").await
        }
        Dialect::Sqlite => exec(db, "DROP TRIGGER IF EXISTS sys_audit_audit_logs_no_update").await,
    }
}

/// Appends `count` records the way the code before migration 0040 did: no `content_hash`, the
/// legacy `entry_hash`.
async fn append_legacy(db: &Database, count: i64) {
    let mut tx = db.begin().await.unwrap();
    let mut head = Query::select();
    head.columns([Alias::new("seq"), Alias::new("entry_hash")])
        .from(Alias::new(store::HEAD));
    let (mut seq, mut prev): (i64, String) = tx
        .fetch_optional(&head)
        .await
        .unwrap()
        .unwrap_or((0, GENESIS.to_owned()));
    for i in 0..count {
        seq += 1;
        let mut entry = AuditEntry {
            id: format!("audit_legacy_{seq}"),
            seq,
            event_type: "users.create".to_owned(),
            request_id: Some(format!("req_{i}")),
            space_id: None,
            actor_user_id: Some("user_1".to_owned()),
            actor_member_id: None,
            actor_user_member_id: None,
            action: "users.create".to_owned(),
            resource_type: Some("user".to_owned()),
            resource_id: Some(format!("user_{i}")),
            decision: "allow".to_owned(),
            deny_code: None,
            ip_address: Some("10.0.0.1".to_owned()),
            user_agent: None,
            trace: json!({"i": i, "snapshot": {"email": "hmac:00", "nested": [1, 2.5]}}),
            prev_hash: prev.clone(),
            entry_hash: String::new(),
            redaction_version: 2,
            created_at: plystra_contracts::storage::now(),
            redactions: vec!["/snapshot/email".to_owned()],
            content_hash: None,
        };
        entry.entry_hash = legacy_entry_hash(&entry.prev_hash, &entry.hashed_body());
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(store::TABLE))
            .columns(
                [
                    "id",
                    "seq",
                    "event_type",
                    "request_id",
                    "actor_user_id",
                    "action",
                    "resource_type",
                    "resource_id",
                    "decision",
                    "ip_address",
                    "trace",
                    "prev_hash",
                    "entry_hash",
                    "redaction_version",
                    "created_at",
                    "redactions",
                ]
                .map(Alias::new),
            )
            .values_panic(
                [
                    entry.id.clone().into(),
                    entry.seq.into(),
                    entry.event_type.clone().into(),
                    entry.request_id.clone().into(),
                    entry.actor_user_id.clone().into(),
                    entry.action.clone().into(),
                    entry.resource_type.clone().into(),
                    entry.resource_id.clone().into(),
                    entry.decision.clone().into(),
                    entry.ip_address.clone().into(),
                    entry.trace.clone().into(),
                    entry.prev_hash.clone().into(),
                    entry.entry_hash.clone().into(),
                    entry.redaction_version.into(),
                    entry.created_at.into(),
                    Value::from(entry.redactions.clone()).into(),
                ]
                .map(|v: plystra_contracts::storage::sea_query::Value| Expr::val(v)),
            );
        tx.execute(&insert).await.unwrap();
        prev = entry.entry_hash;
    }
    let mut advance = Query::update();
    advance
        .table(Alias::new(store::HEAD))
        .values([
            (Alias::new("seq"), seq.into()),
            (Alias::new("entry_hash"), prev.into()),
        ])
        .and_where(Expr::col(Alias::new("id")).eq(1));
    tx.execute(&advance).await.unwrap();
    tx.commit().await.unwrap();
}

/// A chain of 3 legacy records followed by 3 current ones (seq 4 to 6).
async fn mixed_chain(db: &Database) {
    append_legacy(db, 3).await;
    let audit = service(db);
    for i in 0..3 {
        audit
            .record(record(
                json!({"i": i, "candidates": [{"role": "r", "score": 0.5}]}),
            ))
            .await
            .unwrap();
    }
    audit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_and_current_records_verify_in_one_chain() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    mixed_chain(&t.db).await;
    let verification = store::verify(&t.db).await.unwrap();
    assert_eq!((verification.records, verification.first_broken), (6, None));
    let legacy = store::get(&t.db, "audit_legacy_2").await.unwrap().unwrap();
    assert_eq!(legacy.content_hash, None);
    let page = store::list(&t.db, &store::Filter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 6);
    assert!(
        page.iter()
            .filter(|e| e.seq > 3)
            .all(|e| e.content_hash.is_some())
    );
}

/// Each way of tampering with one row, and the seq at which verify must report it.
const TAMPERINGS: &[(&str, i64, &str)] = &[
    // A current record: any field, its content hash, or dropping its content hash.
    (
        "UPDATE sys_audit_audit_logs SET action = 'forged' WHERE seq = 5",
        5,
        "altered",
    ),
    (
        "UPDATE sys_audit_audit_logs SET deny_code = NULL WHERE seq = 5",
        5,
        "altered",
    ),
    (
        "UPDATE sys_audit_audit_logs SET redaction_version = 1 WHERE seq = 5",
        5,
        "altered",
    ),
    (
        "UPDATE sys_audit_audit_logs SET content_hash = '0000000000000000000000000000000000000000000000000000000000000000' WHERE seq = 5",
        5,
        "altered",
    ),
    (
        "UPDATE sys_audit_audit_logs SET content_hash = NULL WHERE seq = 5",
        5,
        "altered",
    ),
    (
        "UPDATE sys_audit_audit_logs SET seq = 50 WHERE seq = 6",
        0,
        "",
    ),
    // A legacy record: any field, or a content hash added to it.
    (
        "UPDATE sys_audit_audit_logs SET actor_user_id = 'user_2' WHERE seq = 2",
        2,
        "altered",
    ),
    (
        "UPDATE sys_audit_audit_logs SET content_hash = 'ab' WHERE seq = 2",
        2,
        "altered",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_record_of_either_kind_is_found() {
    for (i, (sql, seq, reason)) in TAMPERINGS.iter().enumerate() {
        let Some(t) = TestDatabase::migrated().await else {
            return;
        };
        mixed_chain(&t.db).await;
        assert_eq!(store::verify(&t.db).await.unwrap().first_broken, None);
        allow_updates(&t.db).await;
        exec(&t.db, sql).await;
        let broken = store::verify(&t.db)
            .await
            .unwrap()
            .first_broken
            .unwrap_or_else(|| panic!("tampering {i} ({sql}) was not found"));
        if *seq > 0 {
            assert_eq!(broken.0, *seq, "{sql}: {broken:?}");
            assert!(broken.2.contains(reason), "{sql}: {broken:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_value_changed_in_place_is_found() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    mixed_chain(&t.db).await;
    allow_updates(&t.db).await;
    // The stored JSON with one number changed, the rest (and every hash) left as it was.
    let sql = match t.db.dialect() {
        Dialect::Postgres => {
            "UPDATE sys_audit_audit_logs SET trace = jsonb_set(trace::jsonb, '{candidates,0,score}', '0.75')::json WHERE seq = 4"
        }
        Dialect::Sqlite => {
            "UPDATE sys_audit_audit_logs SET trace = json_set(trace, '$.candidates[0].score', 0.75) WHERE seq = 4"
        }
    };
    exec(&t.db, sql).await;
    let broken = store::verify(&t.db).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.0, 4);
    assert!(broken.2.contains("content_hash"), "{broken:?}");
}
