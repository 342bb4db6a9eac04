//! The change feed's speed and cost, measured with real processes.
//!
//! `cargo build --release -p plystractl && cargo bench -p plystrad --bench feed_propagation` (the
//! fixture is seeded with the built `plystractl demo seed`). For each backend (SQLite always;
//! PostgreSQL when `PLYSTRA_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`,
//! answers):
//!
//! 1. **Propagation.** Two `plystrad` processes (the built binary) on one fresh database, the
//!    Finance Reviewer fixture seeded through A. Under load (checks on B from
//!    `FEED_BENCH_CHECKERS` concurrent clients, default 4), a writer revokes and re-grants the
//!    approver role through A `FEED_BENCH_WRITES` times (default 300). After each write, B is
//!    asked (checks without a token, back to back) until its decision reports a revision at least
//!    the write's. The delay is counted from *sending* the write (the commit happens before A
//!    answers, so this is an upper bound of commit → visible on B); p50, p99 and max are printed
//!    with the write's own latency for comparison.
//! 2. **Commit cost.** The shared commit path (`plystra_contracts::feed::commit_audited`: a
//!    business UPDATE, one audit record through the real audit service, the commit) with and
//!    without its feed append, in alternating rounds (A B B A …) of `FEED_BENCH_COMMITS` (default 500)
//!    sequential commits on one fresh database; writes per second of each and the ratio.
//!
//! The load average is printed before each part. Without `--bench` it does nothing.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark whose setup fails has no figure to report: the panic is its report"
)]

#[path = "../tests/it/support/processes.rs"]
mod processes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use plystra_contracts::facts::Fact;
use plystra_contracts::services::AuditRecord;
use plystra_contracts::storage::Dialect;
use plystra_contracts::storage::sea_query::{Alias, Expr, ExprTrait, Query};
use plystra_kernel::storage::testing::TestDatabase;
use processes::{KEY, Server, alice_approves_001, seed};
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn propagation(dialect: Dialect) {
    let Some(t) = TestDatabase::migrated_on(dialect).await else {
        println!("{dialect}: skipped (database unreachable)");
        return;
    };
    let a = Server::start(&t.url, &[]).await;
    let b = Server::start(&t.url, &[]).await;
    seed(&a);
    // B starts from the seeded state (it would otherwise answer 404 for what it has not read yet).
    let seeded = plystra_contracts::feed::head(&t.db)
        .await
        .expect("the feed's head");
    assert_eq!(
        b.decide(&alice_approves_001(), Some(seeded)).await,
        json!(null)
    );
    let writes = env_or("FEED_BENCH_WRITES", 300);
    let checkers = env_or("FEED_BENCH_CHECKERS", 4);
    println!(
        "{dialect}: propagation A → B, {writes} writes through A, {checkers} checking clients on B, load average {}",
        load_average()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..checkers {
        let (base, http, stop, checked) = (b.base(), b.http.clone(), stop.clone(), checked.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = http
                    .post(format!("{base}/api/v1/authz/check"))
                    .header("X-Plystra-API-Key", KEY)
                    .json(&alice_approves_001())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut delays = Vec::new();
    let mut write_latencies = Vec::new();
    let mut member_role = "mr_finance_reviewer_approver".to_owned();
    let started = Instant::now();
    for n in 0..writes {
        let sent = Instant::now();
        let revision = if n % 2 == 0 {
            a.revoke_approver(&member_role).await
        } else {
            let (granted, revision) = a.grant_approver().await;
            member_role = granted;
            revision
        };
        write_latencies.push(sent.elapsed());
        loop {
            let (status, seen, body) = b.check(&alice_approves_001()).await;
            assert_eq!(status, 200, "{body}");
            if seen.is_some_and(|s| s >= revision) {
                delays.push(sent.elapsed());
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "B never reached revision {revision}"
            );
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    delays.sort_unstable();
    write_latencies.sort_unstable();
    println!(
        "{dialect}: commit on A → visible on B: p50 {}, p99 {}, max {} (write latency on A: p50 {}, p99 {}); {:.0} checks/s on B meanwhile",
        ms(percentile(&delays, 0.5)),
        ms(percentile(&delays, 0.99)),
        ms(*delays.last().unwrap_or(&Duration::ZERO)),
        ms(percentile(&write_latencies, 0.5)),
        ms(percentile(&write_latencies, 0.99)),
        checked.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
    );
}

/// One round of `count` sequential commits through the shared commit path.
async fn commit_round(
    db: &plystra_contracts::storage::Database,
    audit: &dyn plystra_contracts::services::AuditRecorder,
    count: u64,
    with_feed: bool,
) -> f64 {
    let started = Instant::now();
    for n in 0..count {
        let status = if n % 2 == 0 { "disabled" } else { "active" };
        let mut tx = db.begin().await.expect("begin");
        let mut update = Query::update();
        update
            .table(Alias::new("sys_identity_users"))
            .value(Alias::new("status"), status)
            .and_where(Expr::col(Alias::new("id")).eq("user_bench"));
        tx.execute(&update).await.expect("update");
        let mut record = AuditRecord::new("req_bench", "users.update", "users.update");
        record.resource_type = Some("user".into());
        record.resource_id = Some("user_bench".into());
        record.decision = Some("allow".into());
        record.trace = json!({"after": {"id": "user_bench", "status": status}});
        let facts = if with_feed {
            vec![Fact::User {
                id: "user_bench".into(),
                status: status.into(),
                username: Some("bench".into()),
                metadata: None,
            }]
        } else {
            Vec::new()
        };
        plystra_contracts::feed::commit_audited(tx, audit, vec![record], facts, None, || {})
            .await
            .expect("commit");
    }
    count as f64 / started.elapsed().as_secs_f64()
}

async fn commit_cost(dialect: Dialect) {
    let Some(t) = TestDatabase::migrated_on(dialect).await else {
        return;
    };
    let mut insert = Query::insert();
    insert
        .into_table(Alias::new("sys_identity_users"))
        .columns(
            [
                "id",
                "email",
                "username",
                "status",
                "created_at",
                "updated_at",
            ]
            .map(Alias::new),
        )
        .values_panic([
            "user_bench".into(),
            "bench@example.com".into(),
            "bench".into(),
            "active".into(),
            plystra_contracts::storage::now().into(),
            plystra_contracts::storage::now().into(),
        ]);
    t.db.execute(&insert).await.expect("the bench user");
    let audit = plystra_system_audit::service::AuditService::start(
        t.db.clone(),
        plystra_system_audit::service::AuditSettings {
            mode: plystra_system_audit::service::WriteMode::Always,
            policy: plystra_system_audit::redaction::RedactionPolicy::with_key(b"bench".to_vec()),
        },
    );
    let count = env_or("FEED_BENCH_COMMITS", 500);
    println!(
        "{dialect}: commit path, {count} sequential commits a round, load average {}",
        load_average()
    );
    // Warm-up, then alternating rounds.
    commit_round(&t.db, audit.as_ref(), count / 5, true).await;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    // A B B A …: the rate drifts as the tables grow, so neither side always goes first.
    for round in 0..4 {
        if round % 2 == 0 {
            without.push(commit_round(&t.db, audit.as_ref(), count, false).await);
            with.push(commit_round(&t.db, audit.as_ref(), count, true).await);
        } else {
            with.push(commit_round(&t.db, audit.as_ref(), count, true).await);
            without.push(commit_round(&t.db, audit.as_ref(), count, false).await);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "{dialect}: writes/s without the feed {:?} (mean {:.0}), with it {:?} (mean {:.0}): {:.1} % of the rate without",
        without.iter().map(|r| r.round()).collect::<Vec<_>>(),
        mean(&without),
        with.iter().map(|r| r.round()).collect::<Vec<_>>(),
        mean(&with),
        100.0 * mean(&with) / mean(&without),
    );
    audit.shutdown().await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            propagation(dialect).await;
            commit_cost(dialect).await;
        }
    });
}
