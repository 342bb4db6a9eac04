//! The grants the authorization index is built from, read in one pass as plain values.
//!
//! [`load_grants`] returns every active role, every active permission, every role-permission
//! that was not removed, and every active member-role with its anchor group. It does not join
//! them: a role-permission of a disabled role or permission is returned, and the index drops it
//! when it finds no active role or permission with that ID. [`load_grant_facts_in_parts`] reads
//! the same grants as the index's facts, the member-roles a bulk chunk at a time: what the
//! index's load reads.

use plystra_contracts::storage::sea_query::{Expr, ExprTrait, Order, Query};
use plystra_contracts::storage::{Database, StorageError};

use crate::Scope;
use crate::store::{MEMBER_ROLES, PERMISSIONS, ROLE_PERMISSIONS, ROLES, a};

/// An active role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    /// `role_…`.
    pub id: String,
    /// Its space.
    pub space_id: String,
    /// Its key, unique in the space.
    pub key: String,
    /// Its name for people.
    pub name: String,
}

/// An active permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionGrant {
    /// `perm_…`.
    pub id: String,
    /// The resource type.
    pub resource: String,
    /// The action.
    pub action: String,
    /// The scope.
    pub scope: Scope,
    /// The condition (CEL source), if any.
    pub condition: Option<String>,
}

/// A permission a role holds (not removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePermissionGrant {
    /// `rp_…`.
    pub id: String,
    /// The role's space.
    pub space_id: String,
    /// The role.
    pub role_id: String,
    /// The permission.
    pub permission_id: String,
}

/// A role an active member-role grants to a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRoleGrant {
    /// `mr_…`.
    pub id: String,
    /// The space of the member, the role and the anchor.
    pub space_id: String,
    /// The member.
    pub member_id: String,
    /// The role.
    pub role_id: String,
    /// The anchor group, if any.
    pub scope_anchor_group_id: Option<String>,
}

/// Every grant in force, each list ordered by ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantSnapshot {
    /// Active roles.
    pub roles: Vec<RoleGrant>,
    /// Active permissions.
    pub permissions: Vec<PermissionGrant>,
    /// Role-permissions that were not removed.
    pub role_permissions: Vec<RolePermissionGrant>,
    /// Active member-roles.
    pub member_roles: Vec<MemberRoleGrant>,
}

/// Reads every grant in force. Permissions with a stored scope this build does not know are
/// left out (and logged): a grant that cannot be understood grants nothing.
pub async fn load_grants(db: &Database) -> Result<GrantSnapshot, StorageError> {
    let mut snapshot = load_definitions(db).await?;
    member_roles_in_parts(db, |chunk| snapshot.member_roles.extend(chunk)).await?;
    snapshot
        .member_roles
        .sort_unstable_by(|x, y| x.id.cmp(&y.id));
    Ok(snapshot)
}

/// [`load_grants`] as the index's facts, handed to `part` as they are read: the roles,
/// permissions and role-permissions first, then the member-roles (the largest table by far) a
/// bulk chunk at a time, in the table's order rather than by ID. A load applies each chunk while
/// the next is read.
pub async fn load_grant_facts_in_parts(
    db: &Database,
    part: &mut (dyn FnMut(Vec<plystra_contracts::facts::Fact>) + Send),
) -> Result<(), StorageError> {
    part(load_definitions(db).await?.into_facts());
    member_roles_in_parts(db, |member_roles| {
        part(
            GrantSnapshot {
                member_roles,
                ..GrantSnapshot::default()
            }
            .into_facts(),
        );
    })
    .await
}

/// Every active role and permission and every role-permission not removed, each list by ID;
/// no member-roles.
async fn load_definitions(db: &Database) -> Result<GrantSnapshot, StorageError> {
    let mut q = Query::select();
    q.columns(["id", "space_id", "key", "name"].map(a))
        .from(a(ROLES))
        .and_where(Expr::col(a("status")).eq("active"))
        .and_where(Expr::col(a("deleted_at")).is_null())
        .order_by(a("id"), Order::Asc);
    let roles: Vec<(String, String, String, String)> = db.fetch_all(&q).await?;

    let mut q = Query::select();
    q.columns(["id", "resource", "action", "scope", "condition"].map(a))
        .from(a(PERMISSIONS))
        .and_where(Expr::col(a("status")).eq("active"))
        .and_where(Expr::col(a("deleted_at")).is_null())
        .order_by(a("id"), Order::Asc);
    let permissions: Vec<(String, String, String, String, String)> = db.fetch_all(&q).await?;

    let mut q = Query::select();
    q.columns(["id", "space_id", "role_id", "permission_id"].map(a))
        .from(a(ROLE_PERMISSIONS))
        .and_where(Expr::col(a("deleted_at")).is_null())
        .order_by(a("id"), Order::Asc);
    let role_permissions: Vec<(String, String, String, String)> = db.fetch_all(&q).await?;

    Ok(GrantSnapshot {
        roles: roles
            .into_iter()
            .map(|(id, space_id, key, name)| RoleGrant {
                id,
                space_id,
                key,
                name,
            })
            .collect(),
        permissions: permissions
            .into_iter()
            .filter_map(
                |(id, resource, action, scope, condition)| match Scope::parse(&scope) {
                    Some(scope) => Some(PermissionGrant {
                        id,
                        resource,
                        action,
                        scope,
                        condition: crate::permissions::stored_condition(condition),
                    }),
                    None => {
                        tracing::warn!(permission = %id, scope = %scope, "unknown scope; the permission grants nothing");
                        None
                    }
                },
            )
            .collect(),
        role_permissions: role_permissions
            .into_iter()
            .map(|(id, space_id, role_id, permission_id)| RolePermissionGrant {
                id,
                space_id,
                role_id,
                permission_id,
            })
            .collect(),
        member_roles: Vec::new(),
    })
}

/// Every active member-role (one row per member and role, the largest of the four tables), read
/// in bulk and handed to `chunk` a bulk chunk at a time, in no particular order.
async fn member_roles_in_parts(
    db: &Database,
    mut chunk: impl FnMut(Vec<MemberRoleGrant>) + Send,
) -> Result<(), StorageError> {
    let mut q = Query::select();
    q.from(a(MEMBER_ROLES))
        .and_where(Expr::col(a("status")).eq("active"))
        .and_where(Expr::col(a("deleted_at")).is_null());
    let columns = [
        "id",
        "space_id",
        "member_id",
        "role_id",
        "scope_anchor_group_id",
    ]
    .map(|c| Expr::col(a(c)))
    .into();
    db.fetch_bulk_in_parts(
        MEMBER_ROLES,
        &q,
        columns,
        |rows: Vec<(String, String, String, String, Option<String>)>| {
            chunk(
                rows.into_iter()
                    .map(
                        |(id, space_id, member_id, role_id, scope_anchor_group_id)| {
                            MemberRoleGrant {
                                id,
                                space_id,
                                member_id,
                                role_id,
                                scope_anchor_group_id,
                            }
                        },
                    )
                    .collect(),
            );
        },
    )
    .await
}

impl GrantSnapshot {
    /// The grants as the index's facts (everything here is in force).
    pub fn into_facts(self) -> Vec<plystra_contracts::facts::Fact> {
        use plystra_contracts::facts::Fact;
        let mut facts = Vec::with_capacity(
            self.roles.len()
                + self.permissions.len()
                + self.role_permissions.len()
                + self.member_roles.len(),
        );
        facts.extend(self.roles.into_iter().map(|r| Fact::Role {
            id: r.id,
            space_id: r.space_id,
            key: r.key,
            status: "active".into(),
        }));
        facts.extend(self.permissions.into_iter().map(|p| Fact::Permission {
            id: p.id,
            resource: p.resource,
            action: p.action,
            scope: p.scope.as_str().into(),
            status: "active".into(),
            condition: p.condition,
        }));
        facts.extend(
            self.role_permissions
                .into_iter()
                .map(|rp| Fact::RolePermission {
                    id: rp.id,
                    role_id: rp.role_id,
                    permission_id: rp.permission_id,
                    deleted: false,
                }),
        );
        facts.extend(self.member_roles.into_iter().map(|mr| Fact::MemberRole {
            id: mr.id,
            space_id: mr.space_id,
            member_id: mr.member_id,
            role_id: mr.role_id,
            scope_anchor_group_id: mr.scope_anchor_group_id,
            status: "active".into(),
        }));
        facts
    }
}
