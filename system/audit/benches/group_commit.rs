//! Throughput of durable audit writes: the group-commit writer against a naive writer that commits
//! one transaction per record, on SQLite and on PostgreSQL, measured in the same run.
//!
//! `cargo bench -p plystra-system-audit --bench group_commit`. PostgreSQL is measured when
//! `PLYSTRA_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) answers.
//! This is a throughput measurement with many concurrent producers, so it is a plain harness
//! rather than criterion's per-iteration timing. The records are shaped like real
//! `authz.decision` records (a decision trace of about 1.7 KB of JSON). The load average is
//! printed with each row, and a second table shows where one batch's time goes.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has no figure to report: the panic is its report"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use plystra_contracts::services::{AuditRecord, AuditRecorder};
use plystra_contracts::storage::{Database, Dialect};
use plystra_kernel::storage::migrations::MigrationSet;
use plystra_kernel::storage::testing::{SYSTEM_NAMESPACES, TestDatabase};
use plystra_system_audit::chain::{self, GENESIS};
use plystra_system_audit::redaction::RedactionPolicy;
use plystra_system_audit::service::{AuditService, AuditSettings, WriteMode};
use plystra_system_audit::store;

const PRODUCERS: usize = 512;

/// An `authz.decision` record shaped like the ones `POST /api/v1/authz/check` writes: the
/// decision trace with actor, target, registry, a matched candidate with its scope anchor and
/// check, and the request (about 1.7 KB of JSON), with the caller's address and user agent.
fn record(i: usize) -> AuditRecord {
    let candidate = |n: usize, scope: &str, covered: bool| {
        serde_json::json!({
            "role": format!("finance_approver_{n}"),
            "role_id": format!("role_01jd6n5ekz8vq{n:012}"),
            "role_space_id": "space_01jd6n5ekz8vq3r8b2c9d0e1f2",
            "permission": "invoice:approve",
            "scope": scope,
            "scope_anchor": if scope == "group_tree" {
                serde_json::json!({"id": "group_01jd6n5ekz8vq3r8b2c9d0e1f4", "path": "/acme/finance/emea", "space_id": "space_01jd6n5ekz8vq3r8b2c9d0e1f2"})
            } else {
                serde_json::Value::Null
            },
            "scope_check": {
                "covered": covered,
                "rule": if covered { "target_in_group_subtree" } else { "owner_mismatch" },
                "reason": if covered { "target group inside the anchor's subtree" } else { "owned by another member" },
                "deny_code": if covered { serde_json::Value::Null } else { "SCOPE_NOT_COVERED".into() },
            },
            "member_role_id": format!("mrole_01jd6n5ekz8vq{n:012}"),
            "member_role_space_id": "space_01jd6n5ekz8vq3r8b2c9d0e1f2",
        })
    };
    let trace = serde_json::json!({
        "trace_version": "1.0",
        "trace_id": format!("trace_01jd6n5ekz8vq3r8b{i:010}"),
        "mode": "managed",
        "revision": 48_213 + i,
        "decision": "allow",
        "deny_code": null,
        "reason": "finance_approver_1 grants invoice:approve",
        "actor": {
            "user_id": "user_01jd6n5ekz8vq3r8b2c9d0e1a1",
            "user_status": "active",
            "member_id": "member_01jd6n5ekz8vq3r8b2c9d0e1b1",
            "member_status": "active",
            "member_space_id": "space_01jd6n5ekz8vq3r8b2c9d0e1f2",
            "user_member_id": "um_01jd6n5ekz8vq3r8b2c9d0e1c1",
            "user_member_status": "active",
            "user_member_expires_at": null,
            "space_id": "space_01jd6n5ekz8vq3r8b2c9d0e1f2",
            "space_status": "active",
        },
        "target": {
            "resource_type": "invoice",
            "resource_id": format!("invoice_{i}"),
            "space_id": "space_01jd6n5ekz8vq3r8b2c9d0e1f2",
            "group": {"id": "group_01jd6n5ekz8vq3r8b2c9d0e1f5", "path": "/acme/finance/emea/north", "space_id": "space_01jd6n5ekz8vq3r8b2c9d0e1f2"},
            "owner_member_id": "member_01jd6n5ekz8vq3r8b2c9d0e1b9",
        },
        "resource_registry": {"resource_type": "invoice", "resource_type_known": true, "action": "approve", "action_known": true},
        "matched_candidates": [candidate(1, "group_tree", true)],
        "request": {
            "request_id": format!("req_01jd6n5ekz8vq3r8b{i:010}"),
            "ip": "203.0.113.24",
            "user_agent": "plystra-client/1.4 (python 3.12; linux x86_64)",
        },
        "audit": {"recorded": false, "audit_log_id": null},
    });
    AuditRecord {
        space_id: Some("space_01jd6n5ekz8vq3r8b2c9d0e1f2".to_owned()),
        actor_user_id: Some("user_01jd6n5ekz8vq3r8b2c9d0e1a1".to_owned()),
        actor_member_id: Some("member_01jd6n5ekz8vq3r8b2c9d0e1b1".to_owned()),
        actor_user_member_id: Some("um_01jd6n5ekz8vq3r8b2c9d0e1c1".to_owned()),
        resource_type: Some("invoice".to_owned()),
        resource_id: Some(format!("invoice_{i}")),
        decision: Some("allow".to_owned()),
        ip_address: Some("203.0.113.24".to_owned()),
        user_agent: Some("plystra-client/1.4 (python 3.12; linux x86_64)".to_owned()),
        trace,
        ..AuditRecord::new("req_bench", "authz.decision", "approve")
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

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// A stored entry built from `record` as the writer before content hashes built it.
fn legacy_entry(record: AuditRecord, trace: serde_json::Value) -> store::AuditEntry {
    store::AuditEntry {
        id: plystra_contracts::ids::generate("audit_"),
        seq: 0,
        event_type: record.event_type,
        request_id: Some(record.request_id).filter(|r| !r.is_empty()),
        space_id: record.space_id,
        actor_user_id: record.actor_user_id,
        actor_member_id: record.actor_member_id,
        actor_user_member_id: record.actor_user_member_id,
        action: record.action,
        resource_type: record.resource_type,
        resource_id: record.resource_id,
        decision: record.decision.unwrap_or_default(),
        deny_code: record.deny_code,
        ip_address: record.ip_address,
        user_agent: record.user_agent,
        trace,
        prev_hash: String::new(),
        entry_hash: String::new(),
        redaction_version: 2,
        created_at: plystra_contracts::storage::now(),
        redactions: Vec::new(),
        content_hash: None,
    }
}

/// CPU time this thread has run, in nanoseconds (`/proc/thread-self/schedstat`): unlike wall
/// time, not inflated by other processes competing for the cores.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Times the steps of a batch one by one (the per-record steps in CPU time of the thread): preparing a record (on the producer), linking it (the
/// writer's only per-record hashing), and, per batch of `MAX_BATCH`, `store::append` (chain lock,
/// head, the insert with its indexes) and the commit.
async fn breakdown(db: &Database) -> String {
    const BATCHES: usize = 8;
    let batch = plystra_system_audit::writer::MAX_BATCH;
    let policy = policy();
    let records: Vec<AuditRecord> = (0..BATCHES * batch).map(record).collect();
    let per_record = |ns: u64| ns as f64 / 1e3 / (BATCHES * batch) as f64;
    let cpu = thread_cpu_ns();
    let mut prepared: Vec<store::Prepared> = records
        .into_iter()
        .map(|r| store::prepare(&policy, r))
        .collect();
    let prepare = per_record(thread_cpu_ns() - cpu);
    let started = Instant::now();
    let mut prev = GENESIS.to_owned();
    for (seq, p) in (1..).zip(&prepared) {
        prev = chain::link_hash(&prev, seq, p.content_hash());
    }
    let link = started.elapsed().as_secs_f64() * 1e6 / (BATCHES * batch) as f64;
    // The same records the way the code before content hashes treated them: a redacted copy
    // and a text round trip on the producer, the whole record's canonical JSON and SHA-256 on
    // the writer.
    let records: Vec<AuditRecord> = (0..BATCHES * batch).map(record).collect();
    let cpu = thread_cpu_ns();
    let mut legacy: Vec<(store::AuditEntry, Vec<String>)> = records
        .into_iter()
        .map(|r| {
            let redacted = policy.redact(&r.trace);
            let trace = serde_json::from_str(&redacted.value.to_string()).unwrap_or_default();
            (legacy_entry(r, trace), redacted.redactions)
        })
        .collect();
    let legacy_prepare = per_record(thread_cpu_ns() - cpu);
    let cpu = thread_cpu_ns();
    let mut prev = GENESIS.to_owned();
    for (seq, (entry, redactions)) in (1..).zip(&mut legacy) {
        entry.seq = seq;
        entry.prev_hash = std::mem::take(&mut prev);
        entry.redactions = std::mem::take(redactions);
        prev = chain::legacy_entry_hash(&entry.prev_hash, &entry.hashed_body());
    }
    let legacy_link = per_record(thread_cpu_ns() - cpu);
    let (mut append, mut commit) = (0.0, 0.0);
    for _ in 0..BATCHES {
        let rest = prepared.split_off(batch);
        let records = std::mem::replace(&mut prepared, rest);
        let mut tx = db.begin().await.unwrap();
        let started = Instant::now();
        store::append(&mut tx, records).await.unwrap();
        let appended = Instant::now();
        tx.commit().await.unwrap();
        append += (appended - started).as_secs_f64() * 1e3 / BATCHES as f64;
        commit += appended.elapsed().as_secs_f64() * 1e3 / BATCHES as f64;
    }
    format!(
        "| {:<8} | {prepare:>5.1} µs (before: {legacy_prepare:>5.1} µs) | {link:>5.2} µs (before: {legacy_link:>5.1} µs) | {append:>6.1} ms | {commit:>6.1} ms | {} |",
        db.dialect(),
        load_average()
    )
}

async fn measure(dialect: Dialect) -> Option<String> {
    let t = TestDatabase::on(dialect).await?;
    MigrationSet::embedded(dialect)
        .apply_pending(&t.db, &SYSTEM_NAMESPACES)
        .await
        .unwrap();
    // Warm up connections and caches, then measure each writer for a comparable wall time.
    naive(&t.db, PRODUCERS * 2).await;
    let load_before = load_average();
    let naive_total = match dialect {
        Dialect::Sqlite => 2_000,
        Dialect::Postgres => 4_000,
    };
    let naive_rate = naive(&t.db, naive_total).await;
    let (group_rate, mean_batch) = grouped(&t.db, 50_000).await;
    let load_after = load_average();
    let breakdown = breakdown(&t.db).await;
    let verified = store::verify(&t.db).await.unwrap();
    assert!(
        verified.first_broken.is_none(),
        "the chain verifies after the benchmark"
    );
    println!(
        "| {dialect:<8} | {naive_rate:>12.0} | {group_rate:>14.0} | {:>6.1}x | {mean_batch:>10.1} | {:>9} | {load_before} → {load_after} |",
        group_rate / naive_rate,
        verified.records
    );
    Some(breakdown)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sample = serde_json::to_string(&record(0).trace).unwrap_or_default();
    println!(
        "audit write throughput, {PRODUCERS} concurrent producers, durable commits (records/s); \
         trace {} bytes of JSON; load average at start {}\n",
        sample.len(),
        load_average()
    );
    println!(
        "| backend  | naive (1 tx/record) | group commit | ratio | mean batch | chain verified | load average (1 5 15 min) before → after |"
    );
    println!(
        "|----------|--------------:|---------------:|-------:|-----------:|----------:|---------|"
    );
    let breakdowns = runtime.block_on(async {
        let mut breakdowns = Vec::new();
        breakdowns.extend(measure(Dialect::Sqlite).await);
        match measure(Dialect::Postgres).await {
            Some(b) => breakdowns.push(b),
            None => println!("| postgres | (unreachable: set PLYSTRA_TEST_DATABASE_URL) |"),
        }
        breakdowns
    });
    println!(
        "\nwhere a batch of {} records goes (timed step by step, after the runs above)\n",
        plystra_system_audit::writer::MAX_BATCH
    );
    println!(
        "| backend  | producer CPU per record: prepare | writer per record: link (before: hash, CPU) | append per batch (wall) | commit (wall) | load average |"
    );
    println!("|----------|------:|------:|------:|------:|------|");
    for line in breakdowns {
        println!("{line}");
    }
    std::thread::sleep(Duration::from_millis(100));
}
