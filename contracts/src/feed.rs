//! The change feed: one ordered stream of committed facts in the database, which every process
//! follows, so that every plystrad decides on the same facts.
//!
//! A write that changes a fact authorization decides on appends its facts to
//! `plystra_feed_changes` in the *same transaction* as the change and its audit record
//! ([`commit_audited`], the one commit path). The revision comes from the one row of
//! `plystra_feed_head`, updated in that transaction: the update holds the row (PostgreSQL) or the
//! database's write lock (SQLite) until the transaction ends, so revisions are handed out in
//! commit order, across every process, without gaps. On PostgreSQL the transaction also sends a
//! `NOTIFY` on [`CHANNEL`], delivered when it commits.
//!
//! Each process runs one follower (the kernel's, offered as the [`SERVICE`] service through the
//! [`FactsFeed`] trait). It reads the feed by revision (polling is correct on its own; `NOTIFY`
//! only wakes it early) and hands each change, in order, to its [`FactsConsumer`]s (the
//! authorization index). The writer's own process gets its change at once through
//! [`FactsFeed::committed`]; the feed decides the order either way. A process that cannot
//! confirm it is current within the staleness bound says so ([`FactsFeed::current`]) and its
//! checks answer 503 instead of deciding on facts of unknown age.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sea_query::{Alias, Expr, ExprTrait, Order, Query};

use crate::facts::Fact;
use crate::schema::{Column, ColumnType, Index, Table};
use crate::services::{AuditRecord, AuditRecorder};
use crate::storage::{Database, StorageError, Transaction};
use crate::{ApiError, ErrorCode};

/// The migration namespace the kernel owns for the feed.
pub const NAMESPACE: &str = "plystra_feed";
/// The one-row revision counter.
pub const HEAD: &str = "plystra_feed_head";
/// The committed changes, by revision.
pub const CHANGES: &str = "plystra_feed_changes";
/// How far each following process has read.
pub const FOLLOWERS: &str = "plystra_feed_followers";
/// The PostgreSQL `LISTEN/NOTIFY` channel a committing write notifies.
pub const CHANNEL: &str = "plystra_feed";
/// The name the kernel offers its follower under.
pub const SERVICE: &str = "kernel.feed";
/// The header a write's answer carries its committed revision in, and a decision the revision it
/// was made on.
pub const REVISION_HEADER: &str = "X-Plystra-Authz-Revision";
/// The header a client sends to ask for facts at least as new as a revision it saw.
pub const AT_LEAST_REVISION_HEADER: &str = "X-Plystra-At-Least-Revision";

/// The head's model.
pub const HEAD_TABLE: Table = Table::new(
    HEAD,
    &[
        Column::required("id", ColumnType::BigInt),
        Column::required("revision", ColumnType::BigInt),
    ],
)
.checks(&["id = 1"]);

/// The changes' model.
pub const CHANGES_TABLE: Table = Table::new(
    CHANGES,
    &[
        Column::required("revision", ColumnType::BigInt),
        Column::required("facts", ColumnType::Text),
        Column::required("committed_at", ColumnType::Timestamp),
    ],
)
.indexes(&[Index::plain(
    "plystra_feed_changes_committed",
    &["committed_at"],
)])
.primary_key(&["revision"]);

/// The followers' model.
pub const FOLLOWERS_TABLE: Table = Table::new(
    FOLLOWERS,
    &[
        Column::required("id", ColumnType::Text),
        Column::required("revision", ColumnType::BigInt),
        Column::required("host", ColumnType::Text),
        Column::required("pid", ColumnType::BigInt),
        Column::required("started_at", ColumnType::Timestamp),
        Column::required("seen_at", ColumnType::Timestamp),
    ],
);

// linkme's element is a `link_section` static, which the workspace's `unsafe_code` lint flags
// only when the macro expands inside this crate.
#[allow(unsafe_code)]
mod declared {
    crate::declare_tables! {
        namespace: super::NAMESPACE,
        tables: [super::HEAD_TABLE, super::CHANGES_TABLE, super::FOLLOWERS_TABLE],
    }
}

/// One committed change: its revision and the facts it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its place in the feed.
    pub revision: u64,
    /// The full states of the entities it changed.
    pub facts: Arc<[Fact]>,
}

fn a(name: &str) -> Alias {
    Alias::new(name)
}

fn revision_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn stored(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

/// Appends `facts` to the feed inside `tx` and returns their revision. Takes the head (its row
/// lock, or SQLite's write lock) until `tx` ends: call it last, just before the commit.
pub async fn append(tx: &mut Transaction, facts: &[Fact]) -> Result<u64, StorageError> {
    let text = serde_json::to_string(facts).map_err(|e| StorageError::Database {
        source: sqlx::Error::Encode(Box::new(e)),
    })?;
    let committed_at = crate::storage::now();
    if let Transaction::Postgres(pg) = tx {
        // One round trip: bump the head, append, notify (delivered at commit).
        let appended = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(POSTGRES_APPEND))
            .bind(text)
            .bind(committed_at)
            .fetch_optional(&mut **pg)
            .await
            .map_err(StorageError::from_sqlx)?;
        return appended
            .map(|(revision,)| revision_of(revision))
            .ok_or(StorageError::NotFound);
    }
    let mut bump = Query::update();
    bump.table(a(HEAD))
        .value(a("revision"), Expr::col(a("revision")).add(1))
        .and_where(Expr::col(a("id")).eq(1))
        .returning_col(a("revision"));
    let Some((revision,)) = tx.fetch_optional::<(i64,), _>(&bump).await? else {
        return Err(StorageError::NotFound);
    };
    let mut insert = Query::insert();
    insert
        .into_table(a(CHANGES))
        .columns([a("revision"), a("facts"), a("committed_at")])
        .values_panic([revision.into(), text.into(), committed_at.into()]);
    tx.execute(&insert).await?;
    Ok(revision_of(revision))
}

/// [`append`] on PostgreSQL, as one statement: `$1` the facts, `$2` the commit time.
const POSTGRES_APPEND: &str = "WITH head AS (\
        UPDATE plystra_feed_head SET revision = revision + 1 WHERE id = 1 RETURNING revision), \
    change AS (\
        INSERT INTO plystra_feed_changes (revision, facts, committed_at) \
        SELECT revision, $1, $2 FROM head RETURNING revision), \
    notified AS (SELECT pg_notify('plystra_feed', revision::text) FROM change) \
    SELECT revision FROM change, notified";

/// The newest committed revision (0 on an empty feed).
pub async fn head(db: &Database) -> Result<u64, StorageError> {
    let mut q = Query::select();
    q.column(a("revision"))
        .from(a(HEAD))
        .and_where(Expr::col(a("id")).eq(1));
    Ok(db
        .fetch_optional::<(i64,), _>(&q)
        .await?
        .map_or(0, |(r,)| revision_of(r)))
}

/// Why the feed could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A row's facts could not be read back (written by a newer version, or damaged).
    #[error("revision {revision} carries unreadable facts: {reason}")]
    Unreadable {
        /// The row.
        revision: u64,
        /// The parser's word.
        reason: String,
    },
}

/// Up to `limit` changes after `after`, oldest first.
pub async fn changes_after(
    db: &Database,
    after: u64,
    limit: u64,
) -> Result<Vec<Change>, ReadError> {
    let mut q = Query::select();
    q.columns([a("revision"), a("facts")])
        .from(a(CHANGES))
        .and_where(Expr::col(a("revision")).gt(stored(after)))
        .order_by(a("revision"), Order::Asc)
        .limit(limit);
    db.fetch_all::<(i64, String), _>(&q)
        .await?
        .into_iter()
        .map(|(revision, text)| {
            let revision = revision_of(revision);
            serde_json::from_str::<Vec<Fact>>(&text)
                .map(|facts| Change {
                    revision,
                    facts: facts.into(),
                })
                .map_err(|e| ReadError::Unreadable {
                    revision,
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// Says that follower `id` (this process) has read up to `revision`.
pub async fn heartbeat(
    db: &Database,
    id: &str,
    revision: u64,
    host: &str,
    started_at: time::OffsetDateTime,
) -> Result<(), StorageError> {
    let mut q = Query::insert();
    q.into_table(a(FOLLOWERS))
        .columns(["id", "revision", "host", "pid", "started_at", "seen_at"].map(a))
        .values_panic([
            id.into(),
            stored(revision).into(),
            host.into(),
            i64::from(std::process::id()).into(),
            started_at.into(),
            crate::storage::now().into(),
        ])
        .on_conflict(
            sea_query::OnConflict::column(a("id"))
                .update_columns([a("revision"), a("seen_at")])
                .to_owned(),
        );
    db.execute(&q).await.map(drop)
}

/// The followers seen since `since`: (ID, revision read, host, process ID).
pub async fn followers_since(
    db: &Database,
    since: time::OffsetDateTime,
) -> Result<Vec<(String, u64, String, i64)>, StorageError> {
    let mut q = Query::select();
    q.columns(["id", "revision", "host", "pid"].map(a))
        .from(a(FOLLOWERS))
        .and_where(Expr::col(a("seen_at")).gte(since))
        .order_by(a("id"), Order::Asc);
    Ok(db
        .fetch_all::<(String, i64, String, i64), _>(&q)
        .await?
        .into_iter()
        .map(|(id, revision, host, pid)| (id, revision_of(revision), host, pid))
        .collect())
}

/// Removes the changes every follower seen since `alive_since` has read and that committed
/// before `older_than`; forgets followers not seen since `alive_since` (a process that comes
/// back after that finds a gap and reloads). Returns how many changes it removed.
pub async fn prune(
    db: &Database,
    alive_since: time::OffsetDateTime,
    older_than: time::OffsetDateTime,
) -> Result<u64, StorageError> {
    let mut forget = Query::delete();
    forget
        .from_table(a(FOLLOWERS))
        .and_where(Expr::col(a("seen_at")).lt(alive_since));
    db.execute(&forget).await?;
    let readers = followers_since(db, alive_since).await?;
    let Some(needed) = readers.iter().map(|(_, revision, _, _)| *revision).min() else {
        return Ok(0);
    };
    let mut q = Query::delete();
    q.from_table(a(CHANGES))
        .and_where(Expr::col(a("revision")).lte(stored(needed)))
        .and_where(Expr::col(a("committed_at")).lt(older_than));
    db.execute(&q).await
}

/// Why a process will not decide on its facts now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The process cannot confirm it is following the feed.
    #[error("this process cannot confirm its facts are current: {reason}")]
    NotCurrent {
        /// Why.
        reason: String,
    },
    /// A requested revision was not reached in time.
    #[error(
        "this process has applied revision {at}; revision {wanted} was not reached within {waited_ms} ms"
    )]
    RevisionNotReached {
        /// The revision asked for.
        wanted: u64,
        /// The revision applied.
        at: u64,
        /// How long it waited.
        waited_ms: u64,
    },
    /// A requested revision is past the newest the database has committed: no write returned
    /// it, so no wait would reach it.
    #[error(
        "revision {wanted} was never issued: the newest committed revision is {head} (a consistency token from another deployment, or from before a restore?)"
    )]
    RevisionNotIssued {
        /// The revision asked for.
        wanted: u64,
        /// The newest committed revision.
        head: u64,
    },
}

impl From<FeedError> for ApiError {
    fn from(e: FeedError) -> Self {
        match &e {
            FeedError::NotCurrent { .. } => {
                ApiError::new(ErrorCode::FactsNotCurrent, e.to_string())
            }
            FeedError::RevisionNotReached { wanted, at, .. } => {
                ApiError::new(ErrorCode::RevisionNotReached, e.to_string())
                    .with_detail("at_least_revision", *wanted)
                    .with_detail("revision", *at)
            }
            FeedError::RevisionNotIssued { wanted, head } => {
                ApiError::new(ErrorCode::RevisionNotIssued, e.to_string())
                    .with_detail("at_least_revision", *wanted)
                    .with_detail("head", *head)
            }
        }
    }
}

/// State that follows the feed (the authorization index).
#[async_trait]
pub trait FactsConsumer: Send + Sync {
    /// Replaces the state with a full load from the tables. The follower calls it with nothing
    /// else delivered meanwhile, after reading the feed's head; what the load reads is at least
    /// as new as that head, and the changes after it are delivered next.
    async fn load(&self, revision: u64) -> Result<(), String>;

    /// Applies one change, in revision order. Must be quick and must not block.
    fn apply(&self, change: &Change);
}

/// The feed as one process follows it (the kernel's follower).
#[async_trait]
pub trait FactsFeed: Send + Sync {
    /// Delivers every change from now on to `consumer` (loading it first).
    fn follow(&self, consumer: Arc<dyn FactsConsumer>);

    /// Hands over a change this process just committed, so it applies without a round trip to
    /// the database. Changes apply in revision order whatever order they arrive in.
    fn committed(&self, change: Change);

    /// The revision applied, if this process can confirm its facts are current (loaded, and the
    /// feed read successfully within the staleness bound).
    fn current(&self) -> Result<u64, FeedError>;

    /// Waits until revision `revision` is applied, at most the configured consistency wait, and
    /// returns the revision applied. A revision past the database's newest committed one is
    /// refused at once with [`FeedError::RevisionNotIssued`]: no wait would reach it.
    async fn wait_for(&self, revision: u64) -> Result<u64, FeedError>;

    /// Reads the feed now (loading first if needed) unless the facts are confirmed current; for
    /// health probes, so that readiness does not wait for the next poll after `migrate up` or
    /// an outage.
    async fn refresh(&self);
}

/// Parses the [`AT_LEAST_REVISION_HEADER`] value: `Ok(None)` when absent.
pub fn at_least_revision(req: &poem::Request) -> Result<Option<u64>, ApiError> {
    let Some(value) = req.headers().get(AT_LEAST_REVISION_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_field(
                AT_LEAST_REVISION_HEADER,
                "must be a revision: a whole number from 0 up",
            )
        })
}

tokio::task_local! {
    static COMMITTED: Arc<std::sync::atomic::AtomicU64>;
}

/// Runs `fut` with a slot for the revision the request's writes commit at; the kernel's pipeline
/// calls this and reads the slot back into [`REVISION_HEADER`].
///
/// A plain function returning the scope, not an `async fn`: an `async fn` would hold `fut` twice
/// (as its argument and inside the scope it awaits), doubling the future a request's pipeline
/// builds and copies.
pub fn with_revision_slot<F: std::future::Future>(
    slot: Arc<std::sync::atomic::AtomicU64>,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    COMMITTED.scope(slot, fut)
}

fn note_committed(revision: u64) {
    let _ = COMMITTED.try_with(|slot| {
        slot.fetch_max(revision, std::sync::atomic::Ordering::Relaxed);
    });
}

/// The one commit path of a management write: appends `records` to the audit log and `facts` to
/// the feed inside `tx`, commits, then hands the change to this process's follower and waits
/// (bounded) until it is applied, so the writer's next check already sees it. Returns the
/// revision (0 when `facts` is empty: nothing the index follows changed).
///
/// An audit failure rolls the change back and is a 503. Once the commit starts it runs on a task
/// of its own, so a client that disconnects mid-commit cannot leave the commit half-done; the
/// follower would read a change whose hand-over was lost from the feed anyway. `after_commit`
/// runs once the change is committed (events for subscribers).
pub async fn commit_audited(
    mut tx: Transaction,
    audit: &dyn AuditRecorder,
    records: Vec<AuditRecord>,
    facts: Vec<Fact>,
    feed: Option<&Arc<dyn FactsFeed>>,
    after_commit: impl FnOnce() + Send + 'static,
) -> Result<u64, ApiError> {
    for record in records {
        if let Err(e) = audit.record_in(&mut tx, record).await {
            tracing::warn!(error = %e, "audit unavailable; the change is rolled back");
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback after an audit failure failed");
            }
            return Err(ApiError::new(
                ErrorCode::AuditUnavailable,
                "the audit store cannot record this change, so it was not made",
            ));
        }
    }
    let revision = if facts.is_empty() {
        0
    } else {
        append(&mut tx, &facts).await?
    };
    let feed = feed.cloned();
    let handed = feed.clone();
    let task = tokio::spawn(async move {
        tx.commit().await?;
        if revision > 0
            && let Some(feed) = &handed
        {
            feed.committed(Change {
                revision,
                facts: facts.into(),
            });
        }
        after_commit();
        Ok::<_, StorageError>(())
    });
    match task.await {
        Ok(committed) => committed?,
        Err(stopped) if stopped.is_panic() => std::panic::resume_unwind(stopped.into_panic()),
        // Only a runtime shutting down cancels the task.
        Err(_) => {
            return Err(StorageError::Unavailable {
                source: sqlx::Error::PoolClosed,
            }
            .into());
        }
    }
    if revision > 0 {
        note_committed(revision);
        if let Some(feed) = &feed
            && let Err(e) = feed.wait_for(revision).await
        {
            // Committed and audited: the answer is a success. The follower catches up on its
            // own, and checks fail closed past the staleness bound meanwhile.
            tracing::warn!(revision, error = %e, "a committed change is not applied here yet");
        }
    }
    Ok(revision)
}

/// How long [`FactsFeed::wait_for`] waits by default.
pub const DEFAULT_CONSISTENCY_WAIT: Duration = Duration::from_secs(1);
/// How old the last confirmed read of the feed may be before checks fail closed.
pub const DEFAULT_STALENESS_BOUND: Duration = Duration::from_secs(5);
/// How often the follower reads the feed without a notification.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_append_names_the_feed_and_its_channel() {
        for name in [HEAD, CHANGES] {
            assert!(POSTGRES_APPEND.contains(name), "{name}");
        }
        assert!(POSTGRES_APPEND.contains(&format!("pg_notify('{CHANNEL}'")));
    }

    #[test]
    fn feed_errors_have_their_own_codes_503_but_for_a_revision_never_issued() {
        let e: ApiError = FeedError::NotCurrent {
            reason: "down".into(),
        }
        .into();
        assert_eq!(e.code, ErrorCode::FactsNotCurrent);
        let e: ApiError = FeedError::RevisionNotReached {
            wanted: 9,
            at: 7,
            waited_ms: 1000,
        }
        .into();
        assert_eq!(e.code, ErrorCode::RevisionNotReached);
        assert_eq!(e.code.status().as_u16(), 503);
        // Asking for a revision nobody issued conflicts with the server's state (well-formed, so
        // not a 400), and says what the head is.
        let e: ApiError = FeedError::RevisionNotIssued {
            wanted: 99,
            head: 7,
        }
        .into();
        assert_eq!(e.code, ErrorCode::RevisionNotIssued);
        assert_eq!(e.code.status().as_u16(), 409);
        assert_eq!(e.details.get("head"), Some(&serde_json::json!(7)));
    }
}
