//! Throughput of durable audit writes: the group-commit writer against a naive writer that commits
//! one transaction per record, on SQLite and on PostgreSQL, measured in the same run.
//!
//! `cargo bench -p plystra-system-audit --bench group_commit`. PostgreSQL is measured when
//! `PLYSTRA_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) answers.
//! This is a throughput measurement with many concurrent producers, so it is a plain harness
//! rather than criterion's per-iteration timing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plystra_contracts::services::{AuditRecord, AuditRecorder};
use plystra_contracts::storage::{Database, Dialect};
use plystra_kernel::storage::migrations::MigrationSet;
use plystra_kernel::storage::testing::{SYSTEM_NAMESPACES, TestDatabase};
use plystra_system_audit::redaction::RedactionPolicy;
use plystra_system_audit::service::{AuditService, AuditSettings, WriteMode};
use plystra_system_audit::store;

const PRODUCERS: usize = 512;

fn record(i: usize) -> AuditRecord {
    AuditRecord {
        space_id: Some("space_acme".to_owned()),
        actor_user_id: Some("user_alice".to_owned()),
        resource_type: Some("invoice".to_owned()),
        resource_id: Some(format!("invoice_{i}")),
        decision: Some("allow".to_owned()),
        trace: serde_json::json!({"trace_version": "1.0", "i": i, "matched": [{"role": "finance_approver", "scope": "group_tree"}]}),
        ..AuditRecord::new("authz.decision", "approve")
    }
}

fn policy() -> RedactionPolicy {
    RedactionPolicy::with_key(b"bench".to_vec())
}

/// Records per second with `PRODUCERS` tasks sharing `total` records.
async fn naive(db: &Database, total: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let policy = policy();
            for i in (p..total).step_by(PRODUCERS) {
                let mut tx = db.begin().await.unwrap();
                store::append(&mut tx, vec![store::prepare(&policy, record(i))])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn grouped(db: &Database, total: usize) -> (f64, f64) {
    let settings = AuditSettings {
        mode: WriteMode::Always,
        policy: policy(),
    };
    let service = AuditService::start(db.clone(), settings);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let service: Arc<AuditService> = service.clone();
        tasks.push(tokio::spawn(async move {
            for i in (p..total).step_by(PRODUCERS) {
                service.record(record(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let stats = service.writer().stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed) as f64;
    let records = stats.records.load(std::sync::atomic::Ordering::Relaxed) as f64;
    service.shutdown().await;
    (rate, records / batches.max(1.0))
}

async fn measure(dialect: Dialect) -> Option<()> {
    let t = TestDatabase::on(dialect).await?;
    MigrationSet::embedded(dialect)
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();
    // Warm up connections and caches, then measure each writer for a comparable wall time.
    naive(&t.db, PRODUCERS * 2).await;
    let naive_total = match dialect {
        Dialect::Sqlite => 2_000,
        Dialect::Postgres => 4_000,
    };
    let naive_rate = naive(&t.db, naive_total).await;
    let (group_rate, mean_batch) = grouped(&t.db, 50_000).await;
    let verified = store::verify(&t.db).await.unwrap();
    assert!(
        verified.first_broken.is_none(),
        "the chain verifies after the benchmark"
    );
    println!(
        "| {dialect:<8} | {naive_rate:>12.0} | {group_rate:>14.0} | {:>6.1}x | {mean_batch:>10.1} | {:>9} |",
        group_rate / naive_rate,
        verified.records
    );
    Some(())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "audit write throughput, {PRODUCERS} concurrent producers, durable commits (records/s)\n"
    );
    println!(
        "| backend  | naive (1 tx/record) | group commit | ratio | mean batch | chain verified |"
    );
    println!("|----------|--------------:|---------------:|-------:|-----------:|----------:|");
    runtime.block_on(async {
        measure(Dialect::Sqlite).await;
        if measure(Dialect::Postgres).await.is_none() {
            println!("| postgres | (unreachable: set PLYSTRA_TEST_DATABASE_URL) |");
        }
    });
    std::thread::sleep(Duration::from_millis(100));
}
