//! The chain under concurrency and at shutdown, on the selected backend: group-committed and
//! in-transaction appends interleave without forking the chain, a shutdown commits everything
//! queued before it returns, and committed records are announced only to listeners.

use std::sync::Arc;

use plystra_contracts::services::{AuditRecord, AuditRecorder};
use plystra_kernel::storage::testing::TestDatabase;
use plystra_system_audit::redaction::RedactionPolicy;
use plystra_system_audit::service::{AuditService, AuditSettings, WriteMode};
use plystra_system_audit::store;

fn settings() -> AuditSettings {
    AuditSettings {
        mode: WriteMode::Always,
        policy: RedactionPolicy::with_key(b"k".to_vec()),
    }
}

fn record(i: usize) -> AuditRecord {
    AuditRecord {
        trace: serde_json::json!({"i": i}),
        ..AuditRecord::new("req_test", "users.create", "users.create")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_group_commits_and_transactions_keep_one_chain() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let service = AuditService::start(t.db.clone(), settings());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let service = service.clone();
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            if i % 5 == 0 {
                let mut tx = db.begin().await.unwrap();
                let id = service.record_in(&mut tx, record(i)).await.unwrap();
                tx.commit().await.unwrap();
                id
            } else {
                service.record(record(i)).await.unwrap().unwrap()
            }
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let verification = store::verify(&t.db).await.unwrap();
    assert_eq!(verification.first_broken, None);
    assert_eq!(verification.records, 200);
    let batches = service
        .writer()
        .stats()
        .batches
        .load(std::sync::atomic::Ordering::Relaxed);
    let records = service
        .writer()
        .stats()
        .records
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(records, 160);
    assert!(
        batches < records,
        "records shared commits ({batches} batches for {records} records)"
    );
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_transaction_leaves_no_record_and_no_gap() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let service = AuditService::start(t.db.clone(), settings());
    let mut tx = t.db.begin().await.unwrap();
    service.record_in(&mut tx, record(1)).await.unwrap();
    tx.rollback().await.unwrap();
    service.record(record(2)).await.unwrap();
    let v = store::verify(&t.db).await.unwrap();
    assert_eq!((v.records, v.first_broken), (1, None));
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_everything_queued() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let service: Arc<AuditService> = AuditService::start(t.db.clone(), settings());
    let mut pending = Vec::new();
    for i in 0..300 {
        let service = service.clone();
        pending.push(tokio::spawn(async move { service.record(record(i)).await }));
    }
    // Wait until every task has handed its record to the writer (queued, or already in a
    // committed batch), however busy the machine is; then stop while batches may still be
    // committing. A fixed sleep here was flaky on loaded machines.
    let stats = service.writer().stats();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while stats.queued.load(std::sync::atomic::Ordering::Relaxed)
        + stats.records.load(std::sync::atomic::Ordering::Relaxed)
        < 300
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the tasks never handed their records over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    service.shutdown().await;
    let mut acknowledged = 0;
    for task in pending {
        if let Ok(Some(_)) = task.await.unwrap() {
            acknowledged += 1;
        }
    }
    let v = store::verify(&t.db).await.unwrap();
    assert_eq!(v.first_broken, None);
    assert_eq!(
        v.records, acknowledged,
        "every acknowledged record is stored, and only those"
    );
    assert_eq!(
        acknowledged, 300,
        "records queued before shutdown are committed, not dropped"
    );
    assert!(
        service.record(record(999)).await.is_err(),
        "a stopped writer refuses new records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_committed_record_is_announced() {
    use plystra_contracts::events::EventPublisher;
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let bus = Arc::new(plystra_kernel::events::EventBus::new(16));
    let mut events = bus.subscribe();
    let service = AuditService::start_with_events(t.db.clone(), settings(), Some(bus.clone()));
    let id = service.record(record(1)).await.unwrap().unwrap();
    let event = events.recv().await.unwrap();
    assert_eq!(
        (event.name.as_str(), event.source.as_str()),
        ("audit.event_recorded", "audit.explainable")
    );
    assert_eq!(event.payload["audit_log_id"], id.as_str());
    service.shutdown().await;
}

/// A publisher that reports whether it has listeners as told and counts what it is given.
struct CountingPublisher {
    listening: bool,
    published: std::sync::atomic::AtomicUsize,
}

impl plystra_contracts::events::EventPublisher for CountingPublisher {
    fn publish(&self, _event: plystra_contracts::events::Event) {
        self.published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<plystra_contracts::events::Event> {
        tokio::sync::broadcast::channel(1).1
    }
    fn observe(&self, _observer: plystra_contracts::events::EventObserver) {}
    fn has_listeners(&self, name: &str) -> bool {
        assert_eq!(name, "audit.event_recorded");
        self.listening
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_published_while_nobody_listens() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    for listening in [false, true] {
        let publisher = Arc::new(CountingPublisher {
            listening,
            published: std::sync::atomic::AtomicUsize::new(0),
        });
        let service =
            AuditService::start_with_events(t.db.clone(), settings(), Some(publisher.clone()));
        for i in 0..3 {
            service.record(record(i)).await.unwrap();
        }
        service.shutdown().await;
        let published = publisher
            .published
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            published,
            if listening { 3 } else { 0 },
            "listening: {listening}"
        );
    }
}

/// A walk with a deadline stops after a page and says so; it claims nothing past what it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_cut_short_by_its_deadline_says_how_far_it_got() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let service = AuditService::start(t.db.clone(), settings());
    let mut tasks = Vec::new();
    for i in 0..1_001 {
        let service = service.clone();
        tasks.push(tokio::spawn(async move { service.record(record(i)).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    service.shutdown().await;
    let mut seen = Vec::new();
    let cut = store::verify_until(&t.db, Some(std::time::Instant::now()), |n| seen.push(n))
        .await
        .unwrap();
    assert_eq!(
        (cut.records, cut.first_broken.clone(), cut.complete),
        (1_000, None, false)
    );
    assert_eq!(seen, [1_000]);
    let whole = store::verify(&t.db).await.unwrap();
    assert_eq!(
        (whole.records, whole.first_broken, whole.complete),
        (1_001, None, true)
    );
}
