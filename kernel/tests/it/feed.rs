//! The change-feed follower against a real database (both backends): changes apply once, in
//! revision order, whether they are handed over in process or read from the table; a gap the
//! feed no longer holds reloads at the head; a consistency token not yet read is refused after the
//! wait, one past the head at once; pruning keeps what a known follower still needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plystra_contracts::facts::Fact;
use plystra_contracts::feed::{self, Change, FactsConsumer, FactsFeed, FeedError};
use plystra_contracts::storage::Database;
use plystra_contracts::storage::sea_query::{Alias, Order, Query};
use plystra_kernel::feed::{FeedSettings, Follower};
use plystra_kernel::storage::testing::TestDatabase;

/// Records what the follower hands it.
#[derive(Default)]
struct Recorder {
    loads: Mutex<Vec<u64>>,
    applied: Mutex<Vec<u64>>,
}

#[async_trait::async_trait]
impl FactsConsumer for Recorder {
    async fn load(&self, revision: u64) -> Result<(), String> {
        self.loads.lock().unwrap().push(revision);
        Ok(())
    }

    fn apply(&self, change: &Change) {
        self.applied.lock().unwrap().push(change.revision);
    }
}

/// Commits one change of user `id`, as another process would (nothing handed over here).
async fn commit_elsewhere(db: &Database, id: &str) -> Change {
    let facts = vec![Fact::User {
        id: id.to_owned(),
        status: "active".to_owned(),
        username: Some(format!("{id}@example.com")),
        metadata: None,
    }];
    let mut tx = db.begin().await.unwrap();
    let revision = feed::append(&mut tx, &facts).await.unwrap();
    tx.commit().await.unwrap();
    Change {
        revision,
        facts: facts.into(),
    }
}

/// A follower that only reads when told to (no background tasks), with a short wait.
fn follower(db: &Database) -> (Arc<Follower>, Arc<Recorder>) {
    let follower = Follower::new(
        db.clone(),
        FeedSettings {
            consistency_wait: Duration::from_millis(100),
            ..FeedSettings::default()
        },
    );
    let recorder = Arc::new(Recorder::default());
    follower.follow(recorder.clone());
    (follower, recorder)
}

#[tokio::test]
async fn changes_apply_once_in_revision_order_whoever_hands_them_over() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let (follower, recorder) = follower(&t.db);
    assert!(matches!(
        follower.current(),
        Err(FeedError::NotCurrent { .. })
    ));
    follower.sync().await;
    assert_eq!(*recorder.loads.lock().unwrap(), [0]);
    assert_eq!(follower.current(), Ok(0));

    let first = commit_elsewhere(&t.db, "user_a").await;
    let second = commit_elsewhere(&t.db, "user_b").await;
    let third = commit_elsewhere(&t.db, "user_c").await;
    // Handed over out of order: the third waits for the others.
    follower.committed(third.clone());
    assert!(recorder.applied.lock().unwrap().is_empty());
    follower.committed(first.clone());
    assert_eq!(*recorder.applied.lock().unwrap(), [first.revision]);
    // The second is only in the table; the read fills the gap, and nothing applies twice.
    follower.sync().await;
    follower.committed(second.clone());
    assert_eq!(
        *recorder.applied.lock().unwrap(),
        [first.revision, second.revision, third.revision]
    );
    assert_eq!(follower.current(), Ok(third.revision));
    assert_eq!(follower.wait_for(third.revision).await, Ok(third.revision));
    // Committed, but this follower has no loop to read it: the wait runs out.
    let fourth = commit_elsewhere(&t.db, "user_d").await;
    assert!(matches!(
        follower.wait_for(fourth.revision).await,
        Err(FeedError::RevisionNotReached { wanted, at, .. }) if wanted == fourth.revision && at == third.revision
    ));
    // Never committed: refused (before any wait), naming the head.
    assert_eq!(
        follower.wait_for(fourth.revision + 5).await,
        Err(FeedError::RevisionNotIssued {
            wanted: fourth.revision + 5,
            head: fourth.revision
        })
    );
}

#[tokio::test]
async fn a_gap_the_feed_no_longer_holds_reloads_at_the_head() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    let (follower, recorder) = follower(&t.db);
    follower.sync().await;
    commit_elsewhere(&t.db, "user_a").await;
    let last = commit_elsewhere(&t.db, "user_b").await;
    // Pruned while this process was not reading.
    let mut prune = Query::delete();
    prune.from_table(Alias::new(feed::CHANGES));
    t.db.execute(&prune).await.unwrap();
    follower.sync().await;
    assert_eq!(*recorder.loads.lock().unwrap(), [0, last.revision]);
    assert!(recorder.applied.lock().unwrap().is_empty());
    assert_eq!(follower.current(), Ok(last.revision));
}

#[tokio::test]
async fn pruning_keeps_what_a_known_follower_still_needs() {
    let Some(t) = TestDatabase::migrated().await else {
        return;
    };
    for n in 0..5 {
        commit_elsewhere(&t.db, &format!("user_{n}")).await;
    }
    let remaining = |db: Database| async move {
        let mut q = Query::select();
        q.column(Alias::new("revision"))
            .from(Alias::new(feed::CHANGES))
            .order_by(Alias::new("revision"), Order::Asc);
        db.fetch_all::<(i64,), _>(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|(r,)| r)
            .collect::<Vec<_>>()
    };
    let now = plystra_contracts::storage::now();
    let hour = plystra_contracts::storage::time::Duration::hours(1);
    let second = plystra_contracts::storage::time::Duration::seconds(1);
    // Nobody is known to follow: nothing is removed.
    assert_eq!(
        feed::prune(&t.db, now - hour, now + second).await.unwrap(),
        0
    );
    feed::heartbeat(&t.db, "proc_a", 2, "host", now)
        .await
        .unwrap();
    feed::heartbeat(&t.db, "proc_b", 4, "host", now)
        .await
        .unwrap();
    // Too recent for the retention: kept.
    assert_eq!(feed::prune(&t.db, now - hour, now - hour).await.unwrap(), 0);
    // Old enough: only what both have read goes.
    assert_eq!(
        feed::prune(&t.db, now - hour, now + second).await.unwrap(),
        2
    );
    assert_eq!(remaining(t.db.clone()).await, [3, 4, 5]);
    feed::heartbeat(&t.db, "proc_a", 5, "host", now)
        .await
        .unwrap();
    feed::prune(&t.db, now - hour, now + second).await.unwrap();
    assert_eq!(remaining(t.db.clone()).await, [5]);
    let followers = feed::followers_since(&t.db, now - hour).await.unwrap();
    assert_eq!(followers.len(), 2);
    // Followers silent since before `alive_since` are forgotten and hold nothing back.
    feed::prune(&t.db, now + hour, now + second).await.unwrap();
    assert!(
        feed::followers_since(&t.db, now - hour)
            .await
            .unwrap()
            .is_empty()
    );
}
