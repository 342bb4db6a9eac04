//! Identity's entities as the facts authorization indexes: one conversion per entity, the whole
//! set for the index's first load, and the `identity.facts_changed` event after each commit.

use std::sync::Arc;

use plystra_contracts::ApiError;
use plystra_contracts::events::{Event, EventPublisher};
use plystra_contracts::facts::{Fact, facts_value, metadata_text, stored_metadata_text};
use plystra_contracts::storage::Database;
use plystra_contracts::storage::time::format_description::well_known::Rfc3339;

use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query};

use crate::groups::Group;
use crate::members::Member;
use crate::spaces::Space;
use crate::store::{GROUPS, Lifecycle, MEMBERS, SPACES, Status, USER_MEMBERS, USERS, a};
use crate::user_members::{BindingStatus, UserMember};
use crate::users::User;
use plystra_contracts::entity::Stored;

/// The event identity publishes after each committed change to a fact.
pub const FACTS_CHANGED: &str = "identity.facts_changed";

impl From<&User> for Fact {
    fn from(u: &User) -> Self {
        Fact::User {
            id: u.id.clone(),
            status: u.status.as_str().to_owned(),
            username: Some(u.username.clone()),
            metadata: metadata_text(u.metadata.as_ref()),
        }
    }
}

impl From<&Space> for Fact {
    fn from(s: &Space) -> Self {
        Fact::Space {
            id: s.id.clone(),
            status: s.status.as_str().to_owned(),
        }
    }
}

impl From<&Member> for Fact {
    fn from(m: &Member) -> Self {
        Fact::Member {
            id: m.id.clone(),
            space_id: m.space_id.clone(),
            status: m.status.as_str().to_owned(),
            metadata: metadata_text(m.metadata.as_ref()),
        }
    }
}

impl From<&UserMember> for Fact {
    fn from(b: &UserMember) -> Self {
        Fact::UserMember {
            id: b.id.clone(),
            user_id: b.user_id.clone(),
            member_id: b.member_id.clone(),
            status: b.status.as_str().to_owned(),
            expires_at: b.expires_at.and_then(|e| e.format(&Rfc3339).ok()),
        }
    }
}

impl From<&Group> for Fact {
    fn from(g: &Group) -> Self {
        Fact::Group {
            id: g.id.clone(),
            space_id: g.space_id.clone(),
            path: g.path.clone(),
            status: g.status.as_str().to_owned(),
        }
    }
}

/// Every identity fact, table by table.
pub(crate) async fn all(db: &Database) -> Result<Vec<Fact>, ApiError> {
    let mut facts = Vec::new();
    all_in_parts(db, &mut |part| facts.extend(part)).await?;
    Ok(facts)
}

/// [`all`], handed to `part` a table at a time, each as soon as it is read: a load starts
/// applying the users while the members and bindings are still being read.
///
/// Only the columns a fact holds, read in bulk (the first load reads them whole). Bindings with
/// an expiry go through the entity, so that the expiry's text is the one a change of that
/// binding announces; the others (most) are read in bulk too. The tables are read at once, each
/// on its own connection.
pub(crate) async fn all_in_parts(
    db: &Database,
    part: &mut (dyn FnMut(Vec<Fact>) + Send),
) -> Result<(), ApiError> {
    use futures_util::StreamExt as _;
    use futures_util::future::BoxFuture;

    let tables: [BoxFuture<'_, Result<Vec<Fact>, ApiError>>; 6] = [
        Box::pin(async {
            let users: Vec<UserColumns> = bulk(db, USERS, USER_COLUMNS).await?;
            Ok(users.into_iter().map(user_fact).collect())
        }),
        Box::pin(async {
            let spaces: Vec<SpaceColumns> = bulk(db, SPACES, &["id", "status"]).await?;
            Ok(spaces
                .into_iter()
                .map(|(id, s)| Fact::Space {
                    id,
                    status: status(&s),
                })
                .collect())
        }),
        Box::pin(async {
            let members: Vec<MemberColumns> =
                bulk(db, MEMBERS, &["id", "space_id", "status", "metadata"]).await?;
            Ok(members
                .into_iter()
                .map(|(id, space_id, s, metadata)| Fact::Member {
                    id,
                    space_id,
                    status: status(&s),
                    metadata: stored_metadata_text(metadata),
                })
                .collect())
        }),
        Box::pin(async {
            let plain: Vec<BindingColumns> = bulk_where(
                db,
                USER_MEMBERS,
                &["id", "user_id", "member_id", "status"],
                Expr::col((a(USER_MEMBERS), a("expires_at"))).is_null(),
            )
            .await?;
            Ok(plain
                .into_iter()
                .map(|(id, user_id, member_id, s)| Fact::UserMember {
                    id,
                    user_id,
                    member_id,
                    status: BindingStatus::parse(&s).as_str().to_owned(),
                    expires_at: None,
                })
                .collect())
        }),
        Box::pin(async {
            let expiring: Vec<UserMember> = db
                .fetch_all(
                    UserMember::select()
                        .and_where(Expr::col((a(USER_MEMBERS), a("expires_at"))).is_not_null()),
                )
                .await?;
            Ok(expiring.iter().map(Fact::from).collect())
        }),
        Box::pin(async {
            let groups: Vec<GroupColumns> = bulk(db, GROUPS, GROUP_COLUMNS).await?;
            Ok(groups.into_iter().map(group_fact).collect())
        }),
    ];
    let mut read: futures_util::stream::FuturesUnordered<_> = tables.into_iter().collect();
    while let Some(facts) = read.next().await {
        let facts = facts?;
        if !facts.is_empty() {
            part(facts);
        }
    }
    Ok(())
}

/// Every user and group, as facts (the control plane's credentials need no more), read in bulk
/// and at once like [`all`].
pub(crate) async fn users_and_groups(db: &Database) -> Result<Vec<Fact>, ApiError> {
    let (users, groups): (Vec<UserColumns>, Vec<GroupColumns>) = futures_util::future::try_join(
        bulk(db, USERS, USER_COLUMNS),
        bulk(db, GROUPS, GROUP_COLUMNS),
    )
    .await?;
    let mut facts = Vec::with_capacity(users.len() + groups.len());
    facts.extend(users.into_iter().map(user_fact));
    facts.extend(groups.into_iter().map(group_fact));
    Ok(facts)
}

/// Every user's ID and stored status, read in bulk: what the session table needs of users.
pub(crate) async fn user_statuses(db: &Database) -> Result<Vec<(String, String)>, ApiError> {
    bulk(db, USERS, &["id", "status"]).await
}

/// A user's columns a fact holds: ID, status, username, metadata.
type UserColumns = (String, String, String, Option<String>);
const USER_COLUMNS: &[&str] = &["id", "status", "username", "metadata"];
/// A space's columns a fact holds: ID, status.
type SpaceColumns = (String, String);
/// A member's columns a fact holds: ID, space, status, metadata.
type MemberColumns = (String, String, String, Option<String>);
/// A binding's columns a fact holds when it has no expiry: ID, user, member, status.
type BindingColumns = (String, String, String, String);
/// A group's columns a fact holds: ID, space, path, status.
type GroupColumns = (String, String, String, String);
const GROUP_COLUMNS: &[&str] = &["id", "space_id", "path", "status"];

/// A stored status in its canonical form (what the entity would say).
fn status(stored: &str) -> String {
    Status::parse(stored).as_str().to_owned()
}

fn user_fact((id, s, username, metadata): UserColumns) -> Fact {
    Fact::User {
        id,
        status: status(&s),
        username: Some(username),
        metadata: stored_metadata_text(metadata),
    }
}

fn group_fact((id, space_id, path, s): GroupColumns) -> Fact {
    Fact::Group {
        id,
        space_id,
        path,
        status: status(&s),
    }
}

/// Every row of `table` as `columns`, read in bulk (`metadata` as JSON text).
async fn bulk<T>(db: &Database, table: &str, columns: &[&str]) -> Result<Vec<T>, ApiError>
where
    T: plystra_contracts::storage::Record + serde::de::DeserializeOwned,
{
    read_bulk(
        db,
        Query::select().from(a(table)).to_owned(),
        table,
        columns,
    )
    .await
}

/// The rows of `table` that meet `filter`, as `columns`, read in bulk.
async fn bulk_where<T>(
    db: &Database,
    table: &str,
    columns: &[&str],
    filter: Expr,
) -> Result<Vec<T>, ApiError>
where
    T: plystra_contracts::storage::Record + serde::de::DeserializeOwned,
{
    let from = Query::select().from(a(table)).and_where(filter).to_owned();
    read_bulk(db, from, table, columns).await
}

/// The rows `from` selects (from `table`), as `columns`, read in bulk (`metadata` as JSON text).
async fn read_bulk<T>(
    db: &Database,
    from: plystra_contracts::storage::sea_query::SelectStatement,
    table: &str,
    columns: &[&str],
) -> Result<Vec<T>, ApiError>
where
    T: plystra_contracts::storage::Record + serde::de::DeserializeOwned,
{
    // `metadata` is read as text on both backends (PostgreSQL holds it as JSONB).
    let columns = columns
        .iter()
        .map(|c| match *c {
            "metadata" => Expr::col((a(table), a(c))).cast_as("TEXT"),
            _ => Expr::col((a(table), a(c))),
        })
        .collect();
    Ok(db.fetch_all_bulk(table, &from, columns).await?)
}

/// Announces committed `facts` (nothing to announce without a bus). Sessions are left out: they
/// are credentials, followed through the feed only, and the event carries the entities it names.
pub(crate) fn publish(events: Option<&Arc<dyn EventPublisher>>, mut facts: Vec<Fact>) {
    facts.retain(|f| !matches!(f, Fact::Session { .. }));
    if let (Some(events), false) = (events, facts.is_empty()) {
        events.publish(Event {
            name: FACTS_CHANGED.to_owned(),
            source: crate::ID.to_owned(),
            payload: serde_json::json!({ "facts": facts_value(&facts) }),
        });
    }
}
