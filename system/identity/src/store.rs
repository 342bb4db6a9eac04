//! What every identity entity shares beyond the kit (`plystra_contracts::entity`): the context
//! handlers run in (database, audit, sessions), the one audited commit that also publishes
//! `identity.facts_changed`, the acting binding of a session caller, the table names and the
//! entity status.

use std::sync::Arc;

use plystra_contracts::entity;
use plystra_contracts::services::{AuditRecord, AuditRecorder, Caller, Credential};
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Value};
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, Envelope};
use poem_openapi::Enum;
use poem_openapi::payload::Json;

use crate::sessions::Sessions;

/// Table names.
pub(crate) const USERS: &str = crate::schema::USERS.name;
pub(crate) const SPACES: &str = crate::schema::SPACES.name;
pub(crate) const GROUPS: &str = crate::schema::GROUPS.name;
pub(crate) const MEMBERS: &str = crate::schema::MEMBERS.name;
pub(crate) const USER_MEMBERS: &str = crate::schema::USER_MEMBERS.name;
pub(crate) const SESSIONS: &str = crate::schema::SESSIONS.name;

/// Everything a handler needs, shared by every route group of the capability.
pub(crate) struct Ctx {
    pub(crate) db: Database,
    pub(crate) audit: Arc<dyn AuditRecorder>,
    pub(crate) sessions: Arc<Sessions>,
    /// The bus `identity.facts_changed` goes out on.
    pub(crate) events: Option<Arc<dyn plystra_contracts::events::EventPublisher>>,
    /// The change feed facts go out on; `None` without a database.
    pub(crate) feed: Option<Arc<dyn plystra_contracts::feed::FactsFeed>>,
}

impl Ctx {
    /// Begins a transaction for a mutation.
    pub(crate) async fn begin(&self) -> Result<Transaction, ApiError> {
        Ok(self.db.begin().await?)
    }

    /// Records `record` inside `tx` and commits both; an audit failure is a 503 and rolls back.
    /// Once committed, `fact` (the entity's new state) is in the change feed and goes out as
    /// `identity.facts_changed`.
    pub(crate) async fn commit_audited(
        &self,
        mut tx: Transaction,
        mut record: AuditRecord,
        fact: plystra_contracts::facts::Fact,
    ) -> Result<(), ApiError> {
        acting_binding(&mut tx, &mut record).await?;
        self.commit_facts(tx, vec![record], vec![fact]).await
    }

    /// Commits the change of `entity` that `req`'s caller made with `action`: its change record and
    /// its fact, through [`Ctx::commit_audited`].
    pub(crate) async fn commit_change<T>(
        &self,
        tx: Transaction,
        req: &poem::Request,
        action: &str,
        entity: &T,
    ) -> Result<(), ApiError>
    where
        T: Audited,
        for<'a> plystra_contracts::facts::Fact: From<&'a T>,
    {
        let record = change_of(Caller::of(req), action, entity);
        self.commit_audited(tx, record, plystra_contracts::facts::Fact::from(entity))
            .await
    }

    /// Applies `sets` to the `T` with `id`, reads it back, and commits the change `req`'s caller
    /// made with `action` as [`Ctx::commit_change`] does: what an update route answers.
    pub(crate) async fn commit_update<T>(
        &self,
        mut tx: Transaction,
        req: &poem::Request,
        action: &str,
        id: &str,
        sets: Vec<(&str, Value)>,
    ) -> Result<Json<Envelope<T>>, ApiError>
    where
        T: Audited,
        for<'a> plystra_contracts::facts::Fact: From<&'a T>,
    {
        entity::update(&mut tx, T::TABLE, id, sets).await?;
        let changed: T = entity::require(&mut tx, id).await?;
        self.commit_change(tx, req, action, &changed).await?;
        Ok(Json(Envelope::new(changed)))
    }

    /// Commits `records` and `facts` with `tx` through the one commit path
    /// (`plystra_contracts::feed::commit_audited`), then publishes `identity.facts_changed`.
    pub(crate) async fn commit_facts(
        &self,
        tx: Transaction,
        records: Vec<AuditRecord>,
        facts: Vec<plystra_contracts::facts::Fact>,
    ) -> Result<(), ApiError> {
        let events = self.events.clone();
        let published = facts.clone();
        plystra_contracts::feed::commit_audited(
            tx,
            self.audit.as_ref(),
            records,
            facts,
            self.feed.as_ref(),
            move || crate::facts::publish(events.as_ref(), published),
        )
        .await?;
        Ok(())
    }
}

/// Completes a session caller's actor with the binding and member the session acts through.
pub(crate) async fn acting_binding(
    tx: &mut Transaction,
    record: &mut AuditRecord,
) -> Result<(), ApiError> {
    let Some(session) = record.trace["caller"]["session"]
        .as_str()
        .filter(|s| !s.is_empty())
    else {
        return Ok(());
    };
    let mut q = plystra_contracts::storage::sea_query::Query::select();
    q.columns([
        (a(USER_MEMBERS), a("id")),
        (a(USER_MEMBERS), a("member_id")),
    ])
    .from(a(SESSIONS))
    .inner_join(
        a(USER_MEMBERS),
        Expr::col((a(USER_MEMBERS), a("id"))).equals((a(SESSIONS), a("user_member_id"))),
    )
    .and_where(Expr::col((a(SESSIONS), a("id"))).eq(session));
    if let Some((binding, member)) = tx.fetch_optional::<(String, String), _>(&q).await? {
        record.actor_user_member_id = Some(binding);
        record.actor_member_id = Some(member);
    }
    Ok(())
}

pub(crate) use plystra_contracts::entity::{
    Audited, Created, Lifecycle, change_of, entity_id, keyword, name as a, status_change, text,
};
pub(crate) use plystra_contracts::from_rows;
pub(crate) use plystra_contracts::pagination::KeyPage;
pub use plystra_contracts::storage::Metadata;
pub(crate) use plystra_contracts::storage::{JsonColumn, metadata_in, metadata_out, now};

/// The status of users, spaces, groups and members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case", rename = "EntityStatus")]
pub enum Status {
    /// In use.
    Active,
    /// Switched off; can be restored.
    Disabled,
}

impl Lifecycle for Status {
    const ALL: &'static [(Self, &'static str)] =
        &[(Self::Active, "active"), (Self::Disabled, "disabled")];
    const UNKNOWN: Self = Self::Disabled;
}

/// The moves between `active` and `disabled`.
pub(crate) const STATUS_MOVES: &[(Status, Status)] = &[
    (Status::Active, Status::Disabled),
    (Status::Disabled, Status::Active),
];

/// The caller's credential, as the kernel put it in the request.
pub(crate) fn credential(req: &poem::Request) -> Option<&Credential> {
    Credential::of(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_fails_closed() {
        for s in [Status::Active, Status::Disabled] {
            assert_eq!(Status::parse(s.as_str()), s);
        }
        assert_eq!(Status::parse("archived"), Status::Disabled);
    }
}
