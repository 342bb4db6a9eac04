//! The tables of the `sys_authz` migration namespace, as the schema model declares them.
//!
//! The migrations `migrations/{sqlite,postgres}/*_sys_authz_*.sql` create them; `plystractl ent check`
//! compares this model with the live database. Keep both in step.

use plystra_contracts::schema::{Column, ColumnType, ForeignKey, Index, Stamps, Table};

use crate::identity::{GROUPS, MEMBERS, SPACES};

/// The migration namespace these tables belong to.
pub const NAMESPACE: &str = "sys_authz";

/// Roles of a space.
pub const ROLES: Table = Table::new(
    "sys_authz_roles",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("space_id", ColumnType::Text),
        Column::required("key", ColumnType::Text),
        Column::required("name", ColumnType::Text),
        Column::required("status", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::unique("sys_authz_roles_space_key", &["space_id", "key"]),
    Index::unique("sys_authz_roles_space_id_id", &["space_id", "id"]),
])
.foreign_keys(&[ForeignKey::new(&["space_id"], SPACES.name, &["id"])]);

/// Permissions: an action on a resource type within a scope, under an optional condition.
pub const PERMISSIONS: Table = Table::new(
    "sys_authz_permissions",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("resource", ColumnType::Text),
        Column::required("action", ColumnType::Text),
        Column::required("scope", ColumnType::Text),
        Column::required("status", ColumnType::Text),
        // The CEL source, `''` when the permission has none (so that the rule's unique index
        // counts "no condition" once).
        Column::required("condition", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[Index::unique(
    "sys_authz_permissions_rule",
    &["resource", "action", "scope", "condition"],
)]);

/// Permissions granted to a role.
pub const ROLE_PERMISSIONS: Table = Table::new(
    "sys_authz_role_permissions",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("space_id", ColumnType::Text),
        Column::required("role_id", ColumnType::Text),
        Column::required("permission_id", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[Index::unique(
    "sys_authz_role_permissions_role_permission",
    &["role_id", "permission_id"],
)])
.foreign_keys(&[
    ForeignKey::new(&["space_id", "role_id"], ROLES.name, &["space_id", "id"]),
    ForeignKey::new(&["permission_id"], PERMISSIONS.name, &["id"]),
]);

/// Roles assigned to members, optionally anchored at a group; all in one space.
pub const MEMBER_ROLES: Table = Table::new(
    "sys_authz_member_roles",
    &[
        Column::required("id", ColumnType::Text),
        Column::required("space_id", ColumnType::Text),
        Column::required("member_id", ColumnType::Text),
        Column::required("role_id", ColumnType::Text),
        Column::optional("scope_anchor_group_id", ColumnType::Text),
        Column::required("status", ColumnType::Text),
    ],
)
.stamped(Stamps::SoftDeleted)
.indexes(&[
    Index::plain("sys_authz_member_roles_member", &["space_id", "member_id"]),
    Index::plain("sys_authz_member_roles_role", &["space_id", "role_id"]),
])
.foreign_keys(&[
    ForeignKey::new(
        &["space_id", "member_id"],
        MEMBERS.name,
        &["space_id", "id"],
    ),
    ForeignKey::new(&["space_id", "role_id"], ROLES.name, &["space_id", "id"]),
    ForeignKey::new(
        &["space_id", "scope_anchor_group_id"],
        GROUPS.name,
        &["space_id", "id"],
    ),
]);
