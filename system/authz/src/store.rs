//! What every grant entity shares beyond the kit (`plystra_contracts::entity`): the context
//! handlers run in (database, audit, events), the change a grant write commits (its audit record,
//! fact and `authorization.grants_changed` payload), and the identity rows grants point at.

use std::sync::Arc;

use plystra_contracts::entity::Stored;
use plystra_contracts::events::{Event, EventPublisher};
use plystra_contracts::feed::FactsFeed;
use plystra_contracts::services::{AuditRecord, AuditRecorder, Caller};
use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Query};
use plystra_contracts::storage::{Database, Transaction};
use plystra_contracts::{ApiError, ErrorCode};

/// The event published after every committed grant change.
pub const GRANTS_CHANGED: &str = "authorization.grants_changed";

/// Table names.
pub(crate) const ROLES: &str = crate::schema::ROLES.name;
pub(crate) const PERMISSIONS: &str = crate::schema::PERMISSIONS.name;
pub(crate) const ROLE_PERMISSIONS: &str = crate::schema::ROLE_PERMISSIONS.name;
pub(crate) const MEMBER_ROLES: &str = crate::schema::MEMBER_ROLES.name;
/// Identity's tables grants point at, joined and checked through the shared schema.
pub(crate) const SPACES: &str = plystra_system_schema::identity::SPACES.name;
pub(crate) const GROUPS: &str = plystra_system_schema::identity::GROUPS.name;
pub(crate) const MEMBERS: &str = plystra_system_schema::identity::MEMBERS.name;

/// Which kind of grant entity changed, as named in the `authorization.grants_changed` payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// A role.
    Role,
    /// A permission.
    Permission,
    /// A permission granted to a role.
    RolePermission,
    /// A role granted to a member.
    MemberRole,
}

impl GrantKind {
    /// The name in the event payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Role => "role",
            Self::Permission => "permission",
            Self::RolePermission => "role_permission",
            Self::MemberRole => "member_role",
        }
    }
}

/// One committed change, described for the event and the audit record.
pub(crate) struct Change<'a> {
    pub(crate) kind: GrantKind,
    /// The audit event type (`roles.create`, …).
    pub(crate) event_type: &'static str,
    pub(crate) id: &'a str,
    pub(crate) space_id: Option<&'a str>,
    /// The entity after the change, as values.
    pub(crate) snapshot: serde_json::Value,
}

/// A grant entity (role, permission, role-permission, member-role): the kind its changes are
/// published as, and what its change record keeps.
pub(crate) trait Grant: Stored {
    /// The kind its changes are published as.
    const KIND: GrantKind;

    /// The entity as its change record and fact keep it (no secrets).
    fn snapshot(&self) -> serde_json::Value;
}

impl<'a> Change<'a> {
    /// The change `event_type` made to `entity`, filed under `space_id` (a role, a
    /// role-permission and a member-role: their own space; a permission: the one the caller
    /// named, if any). Every grant write ends by reading its entity back and committing this.
    pub(crate) fn of<T: Grant>(
        entity: &'a T,
        event_type: &'static str,
        space_id: Option<&'a str>,
    ) -> Self {
        Self {
            kind: T::KIND,
            event_type,
            id: entity.id(),
            space_id,
            snapshot: entity.snapshot(),
        }
    }

    /// The `authorization.grants_changed` payload, with the entity's new state as a fact.
    pub(crate) fn payload(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind.as_str(),
            "id": self.id,
            "space_id": self.space_id,
            "facts": plystra_contracts::facts::facts_value(&[self.fact()]),
        })
    }

    /// The entity's new state as the index's fact, read from the snapshot every change carries.
    /// A field missing from the snapshot reads as empty, which grants nothing (fail closed).
    pub(crate) fn fact(&self) -> plystra_contracts::facts::Fact {
        use plystra_contracts::facts::Fact;
        let s = &self.snapshot;
        let text = |field: &str| s[field].as_str().unwrap_or_default().to_owned();
        let id = self.id.to_owned();
        match self.kind {
            GrantKind::Role => Fact::Role {
                id,
                space_id: text("space_id"),
                key: text("key"),
                status: text("status"),
            },
            GrantKind::Permission => Fact::Permission {
                id,
                resource: text("resource"),
                action: text("action"),
                scope: text("scope"),
                status: text("status"),
                condition: s["condition"].as_str().map(str::to_owned),
            },
            GrantKind::RolePermission => Fact::RolePermission {
                id,
                role_id: text("role_id"),
                permission_id: text("permission_id"),
                deleted: s["deleted"].as_bool().unwrap_or(true),
            },
            GrantKind::MemberRole => Fact::MemberRole {
                id,
                space_id: text("space_id"),
                member_id: text("member_id"),
                role_id: text("role_id"),
                scope_anchor_group_id: s["scope_anchor_group_id"].as_str().map(str::to_owned),
                status: text("status"),
            },
        }
    }

    /// The audit record of the change, made by `caller`.
    pub(crate) fn audit_record(&self, caller: Caller<'_>) -> AuditRecord {
        change_record(
            caller,
            self.event_type,
            self.kind.as_str(),
            self.id,
            self.space_id,
            self.snapshot.clone(),
        )
    }
}

/// Everything a handler needs, shared by every route group of the capability.
pub(crate) struct Ctx {
    pub(crate) db: Database,
    pub(crate) audit: Arc<dyn AuditRecorder>,
    pub(crate) events: Arc<dyn EventPublisher>,
    /// The change feed the grant facts go out on; `None` without a database.
    pub(crate) feed: Option<Arc<dyn FactsFeed>>,
}

impl Ctx {
    /// Begins a transaction for a mutation.
    pub(crate) async fn begin(&self) -> Result<Transaction, ApiError> {
        Ok(self.db.begin().await?)
    }

    /// Commits the change with its audit record and its fact through the one commit path
    /// (`plystra_contracts::feed::commit_audited`), then publishes
    /// `authorization.grants_changed`. An audit failure is a 503 and rolls the change back.
    pub(crate) async fn commit_audited(
        &self,
        tx: Transaction,
        req: &poem::Request,
        change: Change<'_>,
    ) -> Result<(), ApiError> {
        let record = change.audit_record(Caller::of(req));
        let payload = change.payload();
        let events = self.events.clone();
        plystra_contracts::feed::commit_audited(
            tx,
            self.audit.as_ref(),
            vec![record],
            vec![change.fact()],
            self.feed.as_ref(),
            move || {
                events.publish(Event {
                    name: GRANTS_CHANGED.to_owned(),
                    source: crate::ID.to_owned(),
                    payload,
                });
            },
        )
        .await?;
        Ok(())
    }
}

pub(crate) use plystra_contracts::entity::{
    Created, Lifecycle, change_record, conflict, entity_id, keyword, name as a, reference,
    status_change, text,
};
pub(crate) use plystra_contracts::from_rows;
pub(crate) use plystra_contracts::pagination::KeyPage;
pub use plystra_contracts::storage::Metadata;
pub(crate) use plystra_contracts::storage::{Conn, JsonColumn, metadata_in, metadata_out, now};

/// A 404 for an ID a request body names, with the field that named it.
pub(crate) fn referenced_not_found(
    code: ErrorCode,
    entity: &str,
    field: &str,
    id: &str,
) -> ApiError {
    ApiError::not_found(code, entity, id).with_detail("field", field)
}

/// A 409 for a well-formed body reference to a record that lives in another space than it must:
/// the request contradicts the record it names (as a body that contradicts its path does), it is
/// not malformed.
pub(crate) fn other_space(field: &str, entity: &str, found: &str, expected: &str) -> ApiError {
    conflict(
        format!("{field}: the {entity} belongs to space {found}, not {expected}"),
        field,
    )
    .with_detail("expected_space_id", expected)
    .with_detail("found_space_id", found)
}

/// The space of a path, which must exist (404 `SPACE_NOT_FOUND`).
pub(crate) async fn require_space(conn: &mut Conn<'_>, space_id: &str) -> Result<(), ApiError> {
    let mut q = Query::select();
    q.column(a("id"))
        .from(a(SPACES))
        .and_where(Expr::col(a("id")).eq(space_id));
    let found: Option<(String,)> = conn.fetch_optional(&q).await?;
    match found {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(
            ErrorCode::SpaceNotFound,
            "space",
            space_id,
        )),
    }
}

/// The space of the member with `id`, if the member exists.
pub(crate) async fn member_space(
    conn: &mut Conn<'_>,
    id: &str,
) -> Result<Option<String>, ApiError> {
    space_of(conn, MEMBERS, id).await
}

/// The space of the group with `id`, if the group exists.
pub(crate) async fn group_space(conn: &mut Conn<'_>, id: &str) -> Result<Option<String>, ApiError> {
    space_of(conn, GROUPS, id).await
}

async fn space_of(conn: &mut Conn<'_>, table: &str, id: &str) -> Result<Option<String>, ApiError> {
    let mut q = Query::select();
    q.column(a("space_id"))
        .from(a(table))
        .and_where(Expr::col(a("id")).eq(id));
    let row: Option<(String,)> = conn.fetch_optional(&q).await?;
    Ok(row.map(|(space_id,)| space_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plystra_contracts::services::Credential;

    #[test]
    fn changes_describe_their_event_and_audit_record() {
        let change = Change {
            kind: GrantKind::MemberRole,
            event_type: "member_roles.create",
            id: "mr_x",
            space_id: Some("space_acme"),
            snapshot: serde_json::json!({
                "id": "mr_x",
                "space_id": "space_acme",
                "member_id": "member_a",
                "role_id": "role_a",
                "scope_anchor_group_id": null,
                "status": "active",
            }),
        };
        assert_eq!(
            change.payload(),
            serde_json::json!({
                "kind": "member_role",
                "id": "mr_x",
                "space_id": "space_acme",
                "facts": [{
                    "kind": "member_role",
                    "id": "mr_x",
                    "space_id": "space_acme",
                    "member_id": "member_a",
                    "role_id": "role_a",
                    "scope_anchor_group_id": null,
                    "status": "active",
                }],
            })
        );
        // A role-permission whose snapshot lacks `deleted` reads as removed: it grants nothing.
        let rp = Change {
            kind: GrantKind::RolePermission,
            event_type: "role_permissions.create",
            id: "rp_x",
            space_id: None,
            snapshot: serde_json::json!({"role_id": "role_a", "permission_id": "perm_a"}),
        };
        assert!(matches!(
            rp.fact(),
            plystra_contracts::facts::Fact::RolePermission { deleted: true, .. }
        ));
        let alice = Credential::Session {
            user_id: "user_alice".into(),
            session_id: "sess_1".into(),
        };
        let record = change.audit_record(Caller {
            credential: Some(&alice),
            request_id: "req_1",
        });
        assert_eq!(record.request_id, "req_1");
        assert_eq!(record.event_type, "member_roles.create");
        assert_eq!(record.resource_type.as_deref(), Some("member_role"));
        assert_eq!(record.actor_user_id.as_deref(), Some("user_alice"));
        assert_eq!(record.decision.as_deref(), Some("allow"));
        assert_eq!(record.trace["after"]["id"], "mr_x");
    }
}
