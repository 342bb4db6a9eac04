//! The in-memory session table access tokens are verified against, kept current by the change
//! feed, so that authenticating a session reads no table.
//!
//! [`SessionIndex`] maps the HMAC of each live access token to its session (ID, user, acting
//! binding, expiry), each session ID to its current token HMAC (so a rotation or a revoke removes
//! the old token), and each user to its status (a session of a user who is not active does not
//! authenticate). [`FollowedSessions`] is its [`FactsConsumer`]: a load reads every active,
//! unexpired session and every user's status from the tables; each change applies its
//! [`Fact::Session`]s and [`Fact::User`]s, in revision order, and ignores the rest.
//!
//! Expired entries are swept on every applied change: the entries are also ordered by expiry
//! (a `BTreeSet` of (expiry, session ID)), so a sweep pops exactly the expired ones, in
//! O(expired · log n), and costs one look at the first entry when none has expired. Entries are
//! only ever added by a load or an applied change, so between two changes the table holds at
//! most the sessions that were live at the last one: it cannot grow while the feed is quiet.
//!
//! A lookup answers [`Lookup::Unknown`] when the table does not know the token (or its user):
//! the verifier then reads the database, and caches nothing (the fact arrives through the feed;
//! a cached read could resurrect a revoke applied meanwhile).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use plystra_contracts::facts::Fact;
use plystra_contracts::feed::{Change, FactsConsumer};
use plystra_contracts::storage::Database;
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query};
use plystra_contracts::storage::time::OffsetDateTime;
use plystra_contracts::storage::time::format_description::well_known::Rfc3339;

use crate::store::{SESSIONS, a, from_rows, now};

/// A live session as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSession {
    /// Its ID.
    pub session_id: String,
    /// The user.
    pub user_id: String,
    /// The binding it acts through, if one is selected.
    pub user_member_id: Option<String>,
    /// When its access token expires.
    pub expires_at: OffsetDateTime,
}

/// What the table says about an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live session of an active user: it authenticates.
    Live(IndexedSession),
    /// The token is known and does not authenticate (expired, or its user is not active).
    Refused,
    /// The table does not know the token (committed elsewhere and not applied here yet, or not
    /// a token at all), or does not know its user: only the database can say.
    Unknown,
}

/// The tables behind one lock.
#[derive(Debug, Default)]
struct Table {
    /// Token HMAC → session.
    by_token: HashMap<String, IndexedSession>,
    /// Session ID → its current token HMAC.
    token_of: HashMap<String, String>,
    /// User ID → status.
    users: HashMap<String, String>,
    /// Every entry by (expiry, session ID), for the sweep.
    expiry: BTreeSet<(OffsetDateTime, String)>,
}

impl Table {
    /// Forgets session `id` (its token, its expiry).
    fn remove(&mut self, id: &str) {
        if let Some(hmac) = self.token_of.remove(id)
            && let Some(old) = self.by_token.remove(&hmac)
        {
            self.expiry.remove(&(old.expires_at, old.session_id));
        }
    }

    /// Puts a live session under `token_hmac`, replacing whatever session `id` held before.
    fn insert(&mut self, token_hmac: String, session: IndexedSession) {
        self.remove(&session.session_id);
        // HMACs are unique in the table; should one name another session, that session's token
        // is gone there too.
        if let Some(other) = self.by_token.remove(&token_hmac) {
            self.token_of.remove(&other.session_id);
            self.expiry.remove(&(other.expires_at, other.session_id));
        }
        self.expiry
            .insert((session.expires_at, session.session_id.clone()));
        self.token_of
            .insert(session.session_id.clone(), token_hmac.clone());
        self.by_token.insert(token_hmac, session);
    }

    /// Applies one fact as of `now`; facts of other entities are ignored.
    fn apply(&mut self, fact: &Fact, now: OffsetDateTime) {
        match fact {
            Fact::Session {
                id,
                user_id,
                user_member_id,
                token_hmac,
                status,
                expires_at,
            } => {
                // An expiry that does not parse reads as expired: the entry goes, and the
                // database decides on that token.
                let expires_at = OffsetDateTime::parse(expires_at, &Rfc3339).ok();
                match expires_at {
                    Some(expires_at) if status == "active" && expires_at > now => self.insert(
                        token_hmac.clone(),
                        IndexedSession {
                            session_id: id.clone(),
                            user_id: user_id.clone(),
                            user_member_id: user_member_id.clone(),
                            expires_at,
                        },
                    ),
                    _ => self.remove(id),
                }
            }
            Fact::User { id, status, .. } => {
                self.users.insert(id.clone(), status.clone());
            }
            _ => {}
        }
    }

    /// Removes every entry expired at `now`.
    fn sweep(&mut self, now: OffsetDateTime) -> usize {
        let mut swept = 0;
        while let Some((expires_at, _)) = self.expiry.first()
            && *expires_at <= now
        {
            if let Some((_, id)) = self.expiry.pop_first()
                && let Some(hmac) = self.token_of.remove(&id)
            {
                self.by_token.remove(&hmac);
            }
            swept += 1;
        }
        swept
    }
}

/// The in-memory session table (see the module documentation).
#[derive(Debug, Default)]
pub struct SessionIndex {
    table: RwLock<Table>,
}

impl SessionIndex {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the table says, at `now`, about the access token whose HMACs (under every accepted
    /// secret) are `token_hmacs`.
    pub fn lookup(&self, token_hmacs: &[String], now: OffsetDateTime) -> Lookup {
        let table = self.read();
        let Some(session) = token_hmacs.iter().find_map(|h| table.by_token.get(h)) else {
            return Lookup::Unknown;
        };
        if session.expires_at <= now {
            return Lookup::Refused;
        }
        match table.users.get(&session.user_id).map(String::as_str) {
            Some("active") => Lookup::Live(session.clone()),
            Some(_) => Lookup::Refused,
            None => Lookup::Unknown,
        }
    }

    /// Replaces the whole table with `sessions` (token HMAC, session) and `users` (ID, status),
    /// leaving out sessions expired at `now`.
    pub fn install(
        &self,
        sessions: impl IntoIterator<Item = (String, IndexedSession)>,
        users: impl IntoIterator<Item = (String, String)>,
        now: OffsetDateTime,
    ) {
        let mut table = Table {
            users: users.into_iter().collect(),
            ..Table::default()
        };
        for (token_hmac, session) in sessions {
            if session.expires_at > now {
                table.insert(token_hmac, session);
            }
        }
        *self.write() = table;
    }

    /// Applies `facts` (one change, in order) as of `now`, then sweeps what has expired.
    pub fn apply_at(&self, facts: &[Fact], now: OffsetDateTime) {
        let mut table = self.write();
        for fact in facts {
            table.apply(fact, now);
        }
        table.sweep(now);
    }

    /// How many sessions the table holds.
    pub fn len(&self) -> usize {
        self.read().by_token.len()
    }

    /// Whether the table holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A session row as a load reads it.
struct LoadedSession {
    id: String,
    user_id: String,
    user_member_id: Option<String>,
    token_hmac: String,
    expires_at: OffsetDateTime,
}

from_rows!(LoadedSession, |row| {
    Ok(LoadedSession {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_member_id: row.try_get("user_member_id")?,
        token_hmac: row.try_get("token_hmac")?,
        expires_at: row.try_get("expires_at")?,
    })
});

/// The [`SessionIndex`] as the change feed's consumer: loads it from the tables and applies
/// every committed change to it.
pub struct FollowedSessions {
    index: Arc<SessionIndex>,
    db: Database,
}

impl FollowedSessions {
    /// Keeps `index` current from `db` and the feed.
    pub fn new(index: Arc<SessionIndex>, db: Database) -> Self {
        Self { index, db }
    }
}

#[async_trait]
impl FactsConsumer for FollowedSessions {
    async fn load(&self, revision: u64) -> Result<(), String> {
        let at = now();
        let mut sessions = Query::select();
        sessions
            .columns(
                [
                    "id",
                    "user_id",
                    "user_member_id",
                    "token_hmac",
                    "expires_at",
                ]
                .map(a),
            )
            .from(a(SESSIONS))
            .and_where(Expr::col(a("status")).eq("active"))
            .and_where(Expr::col(a("expires_at")).gt(at));
        let sessions = self
            .db
            .fetch_all::<LoadedSession, _>(&sessions)
            .await
            .map_err(|e| format!("cannot load sessions: {e}"))?;
        // Every user, in bulk (a row at a time, SQLite hands each over from its worker thread).
        let users = crate::facts::user_statuses(&self.db)
            .await
            .map_err(|e| format!("cannot load user statuses: {}", e.message))?;
        let (count, user_count) = (sessions.len(), users.len());
        self.index.install(
            sessions.into_iter().map(|s| {
                (
                    s.token_hmac,
                    IndexedSession {
                        session_id: s.id,
                        user_id: s.user_id,
                        user_member_id: s.user_member_id,
                        expires_at: s.expires_at,
                    },
                )
            }),
            users,
            at,
        );
        tracing::info!(
            sessions = count,
            users = user_count,
            revision,
            "session table loaded"
        );
        Ok(())
    }

    fn apply(&self, change: &Change) {
        self.index.apply_at(&change.facts, now());
    }
}

#[cfg(test)]
mod tests {
    use plystra_contracts::storage::time::Duration;

    use super::*;

    fn at(minutes: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn rfc3339(t: OffsetDateTime) -> String {
        t.format(&Rfc3339).unwrap()
    }

    fn session(id: &str, user: &str, hmac: &str, status: &str, expires_at: OffsetDateTime) -> Fact {
        Fact::Session {
            id: id.into(),
            user_id: user.into(),
            user_member_id: Some(format!("um_{user}")),
            token_hmac: hmac.into(),
            status: status.into(),
            expires_at: rfc3339(expires_at),
        }
    }

    fn user(id: &str, status: &str) -> Fact {
        Fact::User {
            id: id.into(),
            status: status.into(),
            username: Some(format!("{id}@example.com")),
            metadata: None,
        }
    }

    fn hmacs(h: &str) -> Vec<String> {
        vec!["not-this-one".into(), h.into()]
    }

    fn live_id(lookup: Lookup) -> Option<String> {
        match lookup {
            Lookup::Live(s) => Some(s.session_id),
            _ => None,
        }
    }

    #[test]
    fn a_created_session_of_an_active_user_is_live_under_any_accepted_secret() {
        let index = SessionIndex::new();
        index.apply_at(
            &[
                user("alice", "active"),
                session("s1", "alice", "h1", "active", at(15)),
            ],
            at(0),
        );
        let Lookup::Live(found) = index.lookup(&hmacs("h1"), at(1)) else {
            panic!("not live");
        };
        assert_eq!(
            found,
            IndexedSession {
                session_id: "s1".into(),
                user_id: "alice".into(),
                user_member_id: Some("um_alice".into()),
                expires_at: at(15),
            }
        );
        assert_eq!(index.lookup(&["h1".into()], at(1)), Lookup::Live(found));
        assert_eq!(index.lookup(&hmacs("h2"), at(1)), Lookup::Unknown);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_rotation_removes_the_old_token_and_a_revoke_removes_the_session() {
        let index = SessionIndex::new();
        index.apply_at(
            &[
                user("alice", "active"),
                session("s1", "alice", "h1", "active", at(15)),
            ],
            at(0),
        );
        index.apply_at(&[session("s1", "alice", "h2", "active", at(20))], at(5));
        assert_eq!(index.lookup(&hmacs("h1"), at(6)), Lookup::Unknown);
        assert_eq!(
            live_id(index.lookup(&hmacs("h2"), at(6))).as_deref(),
            Some("s1")
        );
        assert_eq!(index.len(), 1);
        // The swept expiry is the new one: the session outlives the old token's expiry.
        index.apply_at(&[], at(16));
        assert!(live_id(index.lookup(&hmacs("h2"), at(16))).is_some());

        index.apply_at(&[session("s1", "alice", "h2", "revoked", at(20))], at(17));
        assert_eq!(index.lookup(&hmacs("h2"), at(17)), Lookup::Unknown);
        assert!(index.is_empty());
        // A revoke of a session the table never held changes nothing.
        index.apply_at(&[session("s9", "alice", "h9", "revoked", at(20))], at(17));
        assert!(index.is_empty());
    }

    #[test]
    fn a_user_who_is_not_active_has_no_live_session_until_restored() {
        let index = SessionIndex::new();
        index.apply_at(
            &[
                user("alice", "active"),
                user("bob", "active"),
                session("s1", "alice", "h1", "active", at(15)),
                session("s2", "bob", "h2", "active", at(15)),
            ],
            at(0),
        );
        index.apply_at(&[user("alice", "disabled")], at(1));
        assert_eq!(index.lookup(&hmacs("h1"), at(2)), Lookup::Refused);
        assert!(live_id(index.lookup(&hmacs("h2"), at(2))).is_some());
        index.apply_at(&[user("alice", "active")], at(3));
        assert!(live_id(index.lookup(&hmacs("h1"), at(4))).is_some());
        // A session whose user the table does not know is for the database to judge.
        index.apply_at(&[session("s3", "carol", "h3", "active", at(15))], at(5));
        assert_eq!(index.lookup(&hmacs("h3"), at(5)), Lookup::Unknown);
    }

    #[test]
    fn an_expired_session_is_refused_and_never_inserted() {
        let index = SessionIndex::new();
        index.apply_at(
            &[
                user("alice", "active"),
                session("s1", "alice", "h1", "active", at(15)),
            ],
            at(0),
        );
        // Past its expiry, before any sweep: known, and refused.
        assert_eq!(index.lookup(&hmacs("h1"), at(15)), Lookup::Refused);
        // A fact that arrives expired is not inserted, and removes what the session held.
        index.apply_at(&[session("s1", "alice", "h1", "active", at(10))], at(12));
        assert!(index.is_empty());
        // Nor is one whose expiry does not parse.
        index.apply_at(
            &[Fact::Session {
                id: "s2".into(),
                user_id: "alice".into(),
                user_member_id: None,
                token_hmac: "h2".into(),
                status: "active".into(),
                expires_at: "soon".into(),
            }],
            at(12),
        );
        assert!(index.is_empty());
        // A load leaves expired sessions out.
        index.install(
            [
                (
                    "h3".to_owned(),
                    IndexedSession {
                        session_id: "s3".into(),
                        user_id: "alice".into(),
                        user_member_id: None,
                        expires_at: at(11),
                    },
                ),
                (
                    "h4".to_owned(),
                    IndexedSession {
                        session_id: "s4".into(),
                        user_id: "alice".into(),
                        user_member_id: None,
                        expires_at: at(30),
                    },
                ),
            ],
            [("alice".to_owned(), "active".to_owned())],
            at(12),
        );
        assert_eq!(index.len(), 1);
        assert!(live_id(index.lookup(&hmacs("h4"), at(12))).is_some());
        assert_eq!(index.lookup(&hmacs("h3"), at(12)), Lookup::Unknown);
    }

    #[test]
    fn every_applied_change_sweeps_exactly_the_expired_entries() {
        let index = SessionIndex::new();
        let facts: Vec<Fact> = std::iter::once(user("alice", "active"))
            .chain((0..100).map(|i| {
                session(
                    &format!("s{i}"),
                    "alice",
                    &format!("h{i}"),
                    "active",
                    at(i + 1),
                )
            }))
            .collect();
        index.apply_at(&facts, at(0));
        assert_eq!(index.len(), 100);
        // Any change, even one about other entities, sweeps.
        index.apply_at(&[user("bob", "active")], at(40));
        assert_eq!(index.len(), 60);
        {
            let table = index.read();
            assert_eq!(table.token_of.len(), 60);
            assert_eq!(table.expiry.len(), 60);
            assert!(table.expiry.iter().all(|(e, _)| *e > at(40)));
            assert!(!table.token_of.contains_key("s39"));
            assert!(table.token_of.contains_key("s40"));
        }
        assert_eq!(index.lookup(&hmacs("h39"), at(40)), Lookup::Unknown);
        assert!(live_id(index.lookup(&hmacs("h40"), at(40))).is_some());
        index.apply_at(&[], at(1000));
        assert!(index.is_empty());
        let table = index.read();
        assert!(table.token_of.is_empty() && table.expiry.is_empty());
        // User statuses stay: they are not session entries.
        assert_eq!(table.users.len(), 2);
    }

    #[test]
    fn facts_of_other_entities_are_ignored_and_a_load_replaces_everything() {
        let index = SessionIndex::new();
        index.apply_at(
            &[
                user("alice", "active"),
                session("s1", "alice", "h1", "active", at(15)),
                Fact::Space {
                    id: "space_a".into(),
                    status: "disabled".into(),
                },
            ],
            at(0),
        );
        assert_eq!(index.len(), 1);
        index.install(
            std::iter::empty(),
            [("bob".to_owned(), "active".to_owned())],
            at(1),
        );
        assert!(index.is_empty());
        assert_eq!(index.lookup(&hmacs("h1"), at(1)), Lookup::Unknown);
    }
}
