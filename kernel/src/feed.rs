//! The follower: how this process follows the change feed (`plystra_contracts::feed`) and hands
//! every committed change, in revision order, to the state that decides on it.
//!
//! One task reads the feed by revision: every poll interval, at once when PostgreSQL notifies a
//! commit (a second task `LISTEN`s and only wakes the first), when a local writer hands over a
//! change it cannot apply yet, or when a request waits for a revision not reached. Polling alone
//! is correct; notifications only make it fast. A read that finds the feed's oldest row past
//! what this process has applied (the rows were pruned while it was away) reloads every consumer
//! from the tables.
//!
//! Staleness: the follower notes the instant it *started* each successful read of the head;
//! once everything up to that head is applied, every change committed before that instant is
//! applied. If that instant is older than the staleness bound (the database is unreachable, the
//! feed unreadable), [`Follower::current`] refuses and checks answer 503 until a read succeeds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use plystra_contracts::feed::{self, Change, FactsConsumer, FactsFeed, FeedError, ReadError};
use plystra_contracts::storage::Database;

/// How the follower runs; read from `PLYSTRA_*` settings.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// How often the feed is read without a notification (`PLYSTRA_FEED_POLL_INTERVAL_MS`).
    pub poll_interval: Duration,
    /// How old the last successful read may be before checks fail closed
    /// (`PLYSTRA_FEED_STALENESS_MS`).
    pub staleness_bound: Duration,
    /// How long a request waits for a revision it asked for (`PLYSTRA_CONSISTENCY_WAIT_MS`).
    pub consistency_wait: Duration,
    /// How long applied changes are kept (`PLYSTRA_FEED_RETENTION_SECS`).
    pub retention: Duration,
    /// After how long a silent follower no longer holds pruning back
    /// (`PLYSTRA_FEED_FOLLOWER_EXPIRY_SECS`).
    pub follower_expiry: Duration,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            poll_interval: feed::DEFAULT_POLL_INTERVAL,
            staleness_bound: feed::DEFAULT_STALENESS_BOUND,
            consistency_wait: feed::DEFAULT_CONSISTENCY_WAIT,
            retention: Duration::from_secs(24 * 3600),
            follower_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

impl FeedSettings {
    /// The settings in `settings` (`PLYSTRA_*` names), defaults for what is absent; a value that
    /// is not a positive whole number is an error naming it.
    pub fn from_settings(
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let mut out = Self::default();
        let read = |name: &str, unit: fn(u64) -> Duration, into: &mut Duration| {
            if let Some(raw) = settings.get(name) {
                match raw.trim().parse::<u64>() {
                    Ok(n) if n > 0 => *into = unit(n),
                    _ => {
                        return Err(format!(
                            "{name} must be a positive whole number, not {raw:?}"
                        ));
                    }
                }
            }
            Ok(())
        };
        read(
            "PLYSTRA_FEED_POLL_INTERVAL_MS",
            Duration::from_millis,
            &mut out.poll_interval,
        )?;
        read(
            "PLYSTRA_FEED_STALENESS_MS",
            Duration::from_millis,
            &mut out.staleness_bound,
        )?;
        read(
            "PLYSTRA_CONSISTENCY_WAIT_MS",
            Duration::from_millis,
            &mut out.consistency_wait,
        )?;
        read(
            "PLYSTRA_FEED_RETENTION_SECS",
            Duration::from_secs,
            &mut out.retention,
        )?;
        read(
            "PLYSTRA_FEED_FOLLOWER_EXPIRY_SECS",
            Duration::from_secs,
            &mut out.follower_expiry,
        )?;
        Ok(out)
    }
}

/// What is applied, and what waits to be.
#[derive(Default)]
struct Applied {
    /// The last revision handed to every consumer.
    revision: u64,
    /// Loaded at least once (consumers have state to apply changes to).
    loaded: bool,
    /// A load is running: hand-overs wait in `pending`.
    loading: bool,
    /// Changes handed over ahead of their turn, by revision.
    pending: BTreeMap<u64, Arc<[plystra_contracts::facts::Fact]>>,
    consumers: Vec<Arc<dyn FactsConsumer>>,
}

/// This process's follower of the feed.
pub struct Follower {
    db: Database,
    settings: FeedSettings,
    id: String,
    started_at: plystra_contracts::storage::time::OffsetDateTime,
    applied: Mutex<Applied>,
    /// The applied revision, for waiters.
    revision: tokio::sync::watch::Sender<u64>,
    /// The applied revision and whether a load succeeded, read lock-free by every check.
    applied_revision: AtomicU64,
    loaded: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
    /// Nanoseconds after `epoch` at which the last successful read began; 0 for never.
    confirmed_at: AtomicU64,
    epoch: Instant,
    problem: Mutex<Option<String>>,
    /// One read of the feed at a time (the loop, a probe's refresh).
    reading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("id", &self.id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How many changes one read takes.
const BATCH: u64 = 1000;

/// How many of a load's statements run at once: one per core, at least two. The reads and the
/// builders need the cores, and so does a local database; more statements at once would only
/// open more connections (on PostgreSQL a forked process each, about 5 ms of its CPU on the
/// machine BENCHMARKS.md measures), not read faster.
fn load_statements_at_once() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

impl Follower {
    /// A follower of the feed in `db`; nothing runs until [`Follower::start`].
    pub fn new(db: Database, settings: FeedSettings) -> Arc<Self> {
        Arc::new(Self {
            db,
            settings,
            id: plystra_contracts::ids::generate("proc_"),
            started_at: plystra_contracts::storage::now(),
            applied: Mutex::new(Applied::default()),
            revision: tokio::sync::watch::Sender::new(0),
            applied_revision: AtomicU64::new(0),
            loaded: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            confirmed_at: AtomicU64::new(0),
            epoch: Instant::now(),
            problem: Mutex::new(Some("not started".to_owned())),
            reading: tokio::sync::Mutex::new(()),
        })
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_problem(&self, problem: Option<String>) {
        let mut slot = self
            .problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = &problem
            && slot.as_deref() != Some(p)
        {
            tracing::error!(problem = %p, "the change feed cannot be followed; checks fail closed past the staleness bound");
        } else if problem.is_none()
            && let Some(previous) = slot.as_deref()
            && previous != "not started"
        {
            tracing::info!(previous = %previous, "the change feed is followed again");
        }
        *slot = problem;
    }

    /// Reads the feed once, then follows it on tasks of its own until the follower is dropped.
    pub async fn start(self: &Arc<Self>) {
        self.sync().await;
        let weak = Arc::downgrade(self);
        tokio::spawn(Self::follow_loop(weak.clone()));
        if let Database::Postgres(pool) = &self.db {
            tokio::spawn(Self::listen_loop(weak, pool.clone()));
        }
    }

    async fn follow_loop(weak: Weak<Self>) {
        let mut last_heartbeat: Option<Instant> = None;
        let mut last_prune = Instant::now();
        loop {
            let Some(this) = weak.upgrade() else { return };
            // Bounded by the poll interval, so a dropped follower ends the loop soon after.
            let _ = tokio::time::timeout(this.settings.poll_interval, this.wake.notified()).await;
            drop(this);
            let Some(this) = weak.upgrade() else { return };
            this.sync().await;
            let heartbeat_every = (this.settings.staleness_bound / 2).max(Duration::from_secs(1));
            if last_heartbeat.is_none_or(|at| at.elapsed() >= heartbeat_every) {
                last_heartbeat = Some(Instant::now());
                this.heartbeat().await;
            }
            if last_prune.elapsed() >= Duration::from_secs(60) {
                last_prune = Instant::now();
                this.prune().await;
            }
        }
    }

    async fn listen_loop(weak: Weak<Self>, pool: sqlx::PgPool) {
        loop {
            let listener = async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
                listener.listen(feed::CHANNEL).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let mut listener = match listener.await {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot LISTEN for feed notifications; polling meanwhile");
                    if weak.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Catch up on anything committed while not listening.
            match weak.upgrade() {
                Some(this) => this.wake.notify_one(),
                None => return,
            }
            loop {
                let next = tokio::time::timeout(Duration::from_secs(5), listener.try_recv()).await;
                let Some(this) = weak.upgrade() else { return };
                match next {
                    // Quiet: look again (and notice being dropped).
                    Err(_) => continue,
                    Ok(Ok(Some(_))) => this.wake.notify_one(),
                    // The connection was lost; reconnects on the next call. Catch up meanwhile.
                    Ok(Ok(None)) => this.wake.notify_one(),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "the feed listener failed; reconnecting");
                        this.wake.notify_one();
                        drop(this);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
        }
    }

    fn confirm(&self, began: Instant) {
        let at = u64::try_from(began.duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.confirmed_at.fetch_max(at, Ordering::AcqRel);
    }

    /// One read of the feed: loads first when not loaded, then applies every change up to the
    /// head it read; on success, confirms the instant the read began.
    pub async fn sync(&self) {
        let _one_read = self.reading.lock().await;
        let began = Instant::now();
        let needs_load = !self.applied().loaded;
        if needs_load && let Err(e) = self.load().await {
            self.set_problem(Some(e));
            return;
        }
        match self.catch_up().await {
            Ok(()) => {
                self.confirm(began);
                self.set_problem(None);
            }
            Err(e) => self.set_problem(Some(e)),
        }
    }

    async fn catch_up(&self) -> Result<(), String> {
        let head = feed::head(&self.db)
            .await
            .map_err(|e| format!("cannot read the feed's head: {e}"))?;
        if head < self.applied().revision {
            // The feed went back (a restore from a backup): what this process applied may not
            // exist any more. Start over from the tables.
            tracing::warn!(
                applied = self.applied().revision,
                head,
                "the feed's head is behind this process's revision (a restored database?); reloading"
            );
            self.load().await?;
        }
        loop {
            let from = self.applied().revision;
            if from >= head {
                return Ok(());
            }
            let changes = match feed::changes_after(&self.db, from, BATCH).await {
                Ok(changes) => changes,
                Err(ReadError::Storage(e)) => return Err(format!("cannot read the feed: {e}")),
                Err(e @ ReadError::Unreadable { .. }) => return Err(e.to_string()),
            };
            match changes.first() {
                Some(first) if first.revision <= from + 1 => {
                    for change in &changes {
                        self.deliver(change.revision, change.facts.clone());
                    }
                }
                // Removed before this process read them: start over from the tables.
                Some(_) | None => {
                    tracing::warn!(
                        applied = from,
                        head,
                        "the feed no longer holds the changes after this process's revision; reloading"
                    );
                    self.load().await?;
                }
            }
        }
    }

    /// Loads every consumer from the tables at the feed's current head, all at once.
    async fn load(&self) -> Result<(), String> {
        let consumers = {
            let mut applied = self.applied();
            applied.loading = true;
            applied.consumers.clone()
        };
        let loaded = async {
            let head = feed::head(&self.db)
                .await
                .map_err(|e| format!("cannot read the feed's head: {e}"))?;
            // Every consumer reads at once: a start waits for the slowest load, not for their
            // sum. Their statements run a few at a time (`load_statements_at_once`), so that
            // they share a few connections instead of opening one each. Each consumer either
            // installs what it read or records why it could not; the first failure fails the
            // whole load.
            let results = plystra_contracts::storage::with_statement_limit(
                load_statements_at_once(),
                futures_util::future::join_all(consumers.iter().map(|c| c.load(head))),
            )
            .await;
            results.into_iter().collect::<Result<Vec<()>, String>>()?;
            Ok::<_, String>(head)
        }
        .await;
        let mut applied = self.applied();
        applied.loading = false;
        let head = loaded?;
        applied.loaded = true;
        // Hand-overs stop (`loading`) before the head is read, so nothing applied is past it.
        applied.revision = head;
        let revision = head;
        self.publish_revision(revision);
        self.loaded.store(true, Ordering::Release);
        applied.pending.retain(|r, _| *r > revision);
        self.drain(&mut applied);
        drop(applied);
        Ok(())
    }

    /// Applies `facts` at `revision` if it is next, with whatever pending changes follow it.
    fn deliver(&self, revision: u64, facts: Arc<[plystra_contracts::facts::Fact]>) {
        let mut applied = self.applied();
        if revision <= applied.revision {
            return;
        }
        applied.pending.insert(revision, facts);
        self.drain(&mut applied);
    }

    fn drain(&self, applied: &mut Applied) {
        if !applied.loaded || applied.loading {
            return;
        }
        let before = applied.revision;
        while let Some(entry) = applied.pending.first_entry() {
            let revision = *entry.key();
            if revision != applied.revision + 1 {
                break;
            }
            let facts = entry.remove();
            let change = Change { revision, facts };
            for consumer in &applied.consumers {
                consumer.apply(&change);
            }
            applied.revision = revision;
        }
        if applied.revision != before {
            self.publish_revision(applied.revision);
        }
        if !applied.pending.is_empty() {
            // A gap: read it from the feed.
            self.wake.notify_one();
        }
    }

    /// Makes `revision` the applied one for checks and waiters (called under `applied`).
    fn publish_revision(&self, revision: u64) {
        self.applied_revision.store(revision, Ordering::Release);
        self.revision.send_replace(revision);
    }

    async fn heartbeat(&self) {
        let revision = self.applied().revision;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".to_owned());
        if let Err(e) = feed::heartbeat(&self.db, &self.id, revision, &host, self.started_at).await
        {
            tracing::debug!(error = %e, "cannot record this follower's revision");
        }
    }

    async fn prune(&self) {
        let now = plystra_contracts::storage::now();
        let alive_since = now - self.settings.follower_expiry;
        let older_than = now - self.settings.retention;
        match feed::prune(&self.db, alive_since, older_than).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned applied changes from the feed"),
            Err(e) => tracing::debug!(error = %e, "cannot prune the feed"),
        }
    }

    /// Why this process's facts are not confirmed current, if they are not.
    pub fn problem(&self) -> Option<String> {
        self.current().err().map(|e| e.to_string())
    }
}

#[async_trait]
impl FactsFeed for Follower {
    fn follow(&self, consumer: Arc<dyn FactsConsumer>) {
        let mut applied = self.applied();
        applied.consumers.push(consumer);
        // A consumer joining late needs a load before it can apply anything.
        applied.loaded = false;
        self.loaded.store(false, Ordering::Release);
    }

    fn committed(&self, change: Change) {
        self.deliver(change.revision, change.facts);
    }

    fn current(&self) -> Result<u64, FeedError> {
        if !self.loaded.load(Ordering::Acquire) {
            let reason = self
                .problem
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "not loaded yet".to_owned());
            return Err(FeedError::NotCurrent { reason });
        }
        let revision = self.applied_revision.load(Ordering::Acquire);
        let confirmed = self.confirmed_at.load(Ordering::Acquire);
        let age = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_nanos(confirmed));
        if confirmed == 0 || age > self.settings.staleness_bound {
            let why = self
                .problem
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "no read of the feed has completed".to_owned());
            return Err(FeedError::NotCurrent {
                reason: format!(
                    "last confirmed {} ms ago, past the bound of {} ms: {why}",
                    age.as_millis(),
                    self.settings.staleness_bound.as_millis()
                ),
            });
        }
        Ok(revision)
    }

    async fn refresh(&self) {
        if self.current().is_err() {
            self.sync().await;
        }
    }

    async fn wait_for(&self, revision: u64) -> Result<u64, FeedError> {
        let mut seen = self.revision.subscribe();
        let at = *seen.borrow_and_update();
        if at >= revision {
            return Ok(at);
        }
        // Ahead of this process: if the database never committed it, say so now rather than
        // answer 503 after the wait (a token from elsewhere would never be reached). A failed
        // read proves nothing; the wait below then decides.
        if let Ok(head) = feed::head(&self.db).await
            && head < revision
        {
            return Err(FeedError::RevisionNotIssued {
                wanted: revision,
                head,
            });
        }
        self.wake.notify_one();
        let wait = self.settings.consistency_wait;
        match tokio::time::timeout(wait, seen.wait_for(|r| *r >= revision)).await {
            Ok(Ok(at)) => Ok(*at),
            _ => Err(FeedError::RevisionNotReached {
                wanted: revision,
                at: *self.revision.borrow(),
                waited_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}

/// The follower as a readiness condition: `/ready` says why facts are not current.
pub(crate) struct FeedProbe(pub(crate) Arc<Follower>);

#[async_trait]
impl crate::runtime::ReadinessProbe for FeedProbe {
    async fn problem(&self) -> Option<String> {
        self.0.refresh().await;
        self.0.problem()
    }

    fn subject(&self) -> &'static str {
        "change feed (facts not confirmed current)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_their_names_and_refuse_nonsense() {
        let mut map = std::collections::BTreeMap::new();
        map.insert("PLYSTRA_FEED_STALENESS_MS".to_owned(), "750".to_owned());
        let s = FeedSettings::from_settings(&map).unwrap();
        assert_eq!(s.staleness_bound, Duration::from_millis(750));
        assert_eq!(s.poll_interval, feed::DEFAULT_POLL_INTERVAL);
        map.insert("PLYSTRA_CONSISTENCY_WAIT_MS".to_owned(), "soon".to_owned());
        let e = FeedSettings::from_settings(&map).unwrap_err();
        assert!(e.contains("PLYSTRA_CONSISTENCY_WAIT_MS"), "{e}");
    }
}
