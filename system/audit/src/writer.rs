//! The durable group-commit writer: callers hand over records and wait; one task commits them in
//! batches of up to `MAX_BATCH` records, and every caller's future resolves only after its batch
//! has committed. Throughput comes from sharing one commit among many records; durability is
//! never traded for it.
//!
//! The writer never waits to fill a batch: it takes what is queued and commits. Under load the
//! records that arrive while one batch commits form the next one, so batches grow with the load
//! by themselves, and a lone record (one client, one request at a time) pays one commit and no
//! waiting window.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use plystra_contracts::events::{Event, EventPublisher};
use plystra_contracts::metrics::{Histogram, LATENCY_BUCKETS, Metrics, SIZE_BUCKETS};
use plystra_contracts::services::AuditUnavailable;
use plystra_contracts::storage::Database;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{self, Prepared};

/// The most records one batch commits.
pub const MAX_BATCH: usize = 512;
/// How many records may wait for the writer before callers are slowed down.
pub const QUEUE: usize = 8192;

type Reply = oneshot::Sender<Result<String, AuditUnavailable>>;

/// Measurements of the writer, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Batches committed.
    pub batches: std::sync::atomic::AtomicU64,
    /// When and why the latest batch failed because the store refused writes or could not be
    /// reached; cleared by the next committed batch.
    last_failure: Mutex<Option<(std::time::Instant, String)>>,
    /// Records committed.
    pub records: std::sync::atomic::AtomicU64,
    /// Records handed over and not yet taken into a batch.
    pub queued: std::sync::atomic::AtomicU64,
    /// Batch sizes and commit latencies, once `instrument` has run.
    histograms: std::sync::OnceLock<(Histogram<0>, Histogram<1>)>,
}

/// The writer's handle.
#[derive(Debug)]
pub struct GroupCommitWriter {
    sender: Mutex<Option<mpsc::Sender<(Prepared, Reply)>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    stats: std::sync::Arc<WriterStats>,
}

impl GroupCommitWriter {
    /// Starts the writer task on `db`; with `events`, it publishes `audit.event_recorded` for
    /// every record once its batch has committed, when the publisher has anyone listening
    /// ([`EventPublisher::has_listeners`]).
    pub fn start(db: Database, events: Option<std::sync::Arc<dyn EventPublisher>>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let stats = std::sync::Arc::new(WriterStats::default());
        let task = tokio::spawn(run(db, receiver, stats.clone(), events));
        Self {
            sender: Mutex::new(Some(sender)),
            task: Mutex::new(Some(task)),
            stats,
        }
    }

    /// Appends one record; resolves once it is durable.
    pub async fn append(&self, record: Prepared) -> Result<String, AuditUnavailable> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| AuditUnavailable("the audit writer has stopped".to_owned()))?;
        let (reply, answer) = oneshot::channel();
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        sender.send((record, reply)).await.map_err(|_| {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            AuditUnavailable("the audit writer has stopped".to_owned())
        })?;
        answer.await.map_err(|_| {
            AuditUnavailable("the audit writer stopped before committing".to_owned())
        })?
    }

    /// Why the latest batch could not be committed, if it failed within `window` because the
    /// store refused writes (full, read-only) or could not be reached, and nothing committed since.
    /// Only recent failures count, so that a store that recovered while no one wrote is not
    /// reported as failing forever.
    pub fn recent_failure(&self, window: Duration) -> Option<String> {
        let last = self
            .stats
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() <= window)
            .map(|(_, reason)| reason.clone())
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Exposes the writer in `metrics`: the queue depth, and from now on each batch's size and
    /// commit latency.
    pub fn instrument(&self, metrics: &Metrics) {
        let stats = self.stats.clone();
        metrics.gauge(
            "plystra_audit_queue_depth",
            "Audit records waiting for the group-commit writer.",
            &[],
            std::sync::Arc::new(move || {
                vec![(
                    Vec::new(),
                    i64::try_from(stats.queued.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
                )]
            }),
        );
        let _ = self.stats.histograms.set((
            metrics.histogram(
                "plystra_audit_batch_size",
                "Records per committed audit batch.",
                [],
                SIZE_BUCKETS,
            ),
            metrics.histogram(
                "plystra_audit_commit_duration_seconds",
                "Time to commit one audit batch, in seconds.",
                ["outcome"],
                LATENCY_BUCKETS,
            ),
        ));
    }

    /// Stops accepting records, commits every queued one, and waits for the task to end.
    pub async fn shutdown(&self) {
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(
    db: Database,
    mut receiver: mpsc::Receiver<(Prepared, Reply)>,
    stats: std::sync::Arc<WriterStats>,
    events: Option<std::sync::Arc<dyn EventPublisher>>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        // Let the tasks that are ready to hand over a record do so, once, then take what is
        // queued: no timed wait.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        stats
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        let (records, replies): (Vec<Prepared>, Vec<Reply>) = batch.into_iter().unzip();
        let count = records.len() as u64;
        let started = std::time::Instant::now();
        let outcome = commit(&db, records).await;
        if let Some((sizes, latency)) = stats.histograms.get() {
            sizes.observe([], count as f64);
            let label = if outcome.is_ok() {
                "committed"
            } else {
                "failed"
            };
            latency.observe([label.into()], started.elapsed().as_secs_f64());
        }
        match outcome {
            Ok(ids) => {
                *stats.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
                stats
                    .batches
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                stats
                    .records
                    .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                // Nothing is built for an event nobody would receive (no subscriber or observer
                // on the bus, the usual case): asked once per batch.
                let announce = events
                    .as_ref()
                    .filter(|events| events.has_listeners(crate::AUDIT_EVENT_RECORDED.name));
                for (reply, id) in replies.into_iter().zip(ids) {
                    if let Some(events) = announce {
                        events.publish(Event {
                            name: "audit.event_recorded".to_owned(),
                            source: crate::ID.to_owned(),
                            payload: serde_json::json!({ "audit_log_id": id }),
                        });
                    }
                    let _ = reply.send(Ok(id));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, cause = %e.driver_error().map_or_else(String::new, ToString::to_string), records = count, "audit batch could not be committed");
                if e.unwritable_reason().is_some() || e.is_unavailable() {
                    *stats.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((std::time::Instant::now(), e.to_string()));
                }
                for reply in replies {
                    let _ = reply.send(Err(AuditUnavailable(format!(
                        "the audit store could not commit: {e}"
                    ))));
                }
            }
        }
    }
}

async fn commit(
    db: &Database,
    records: Vec<Prepared>,
) -> Result<Vec<String>, plystra_contracts::storage::StorageError> {
    let mut tx = db.begin().await?;
    let ids = store::append(&mut tx, records).await?;
    tx.commit().await?;
    Ok(ids)
}
